//! `/api/v1/services`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use heliograph_domain::Severity;
use heliograph_store::services::{
    ALERT_SEVERITIES, MAX_GROUPING_WINDOW_MINUTES, ResponseTarget, ResponseTargets, Service,
    SeverityMap,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::schedules::PathJson;
use super::{ApiAuth, ApiError, ErrorBody, path_id};
use crate::AppState;
use crate::auth::{Manager, Viewer};
use crate::pages::services::{ServiceForm, parse_service};
use crate::policies::target_minutes;
use crate::views::FieldErrors;

/// A service.
#[derive(Serialize, ToSchema)]
pub struct ServiceOut {
    pub id: i64,
    pub name: String,
    pub description: String,
    /// llm-inference, vector-db, feature-store, agent-framework, data-pipeline or other
    pub kind: String,
    /// real-time, batch or on-demand
    pub workload_class: String,
    pub team_id: Option<i64>,
    /// The policy that pages people for this service's incidents.
    pub escalation_policy_id: Option<i64>,
    /// By severity (`SEV1`…`SEV4`); severities without targets are left out.
    #[schema(value_type = BTreeMap<String, ResponseTargetBody>)]
    pub response_targets: BTreeMap<String, ResponseTarget>,
    /// Alerts arriving within this many minutes of the open incident's last alert join it
    /// (0: off).
    pub grouping_window_minutes: i64,
    /// Whether resolving all of an incident's alerts resolves the incident.
    pub auto_resolve: bool,
    /// The incident severity for each alert severity (critical, error, warning, info), all
    /// four given, defaults included.
    pub severity_map: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Service> for ServiceOut {
    fn from(s: Service) -> Self {
        ServiceOut {
            id: s.id,
            name: s.name,
            description: s.description,
            kind: s.kind.to_string(),
            workload_class: s.workload_class.to_string(),
            team_id: s.team_id,
            escalation_policy_id: s.escalation_policy_id,
            response_targets: s
                .response_targets
                .0
                .into_iter()
                .filter(|(_, t)| !t.is_empty())
                .map(|(k, t)| (k.to_string(), t))
                .collect(),
            grouping_window_minutes: s.grouping_window_minutes,
            auto_resolve: s.auto_resolve,
            severity_map: ALERT_SEVERITIES
                .iter()
                .map(|&a| (a.to_owned(), s.severity_map.get(a).to_string()))
                .collect(),
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// Every service.
#[derive(Serialize, ToSchema)]
pub struct ServiceList {
    pub services: Vec<ServiceOut>,
}

/// How quickly incidents of one severity should be acknowledged and resolved, in minutes
/// (1 to 43,200; absent or null: no target).
#[derive(Deserialize, Serialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ResponseTargetBody {
    #[serde(default)]
    pub acknowledge_minutes: Option<i64>,
    #[serde(default)]
    pub resolve_minutes: Option<i64>,
}

/// A service to create or the fields to change.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ServiceBody {
    pub name: Option<String>,
    pub description: Option<String>,
    pub kind: Option<String>,
    pub workload_class: Option<String>,
    pub team_id: Option<i64>,
    /// On PATCH, `null` removes the policy; absent keeps it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub escalation_policy_id: Option<Option<i64>>,
    /// By severity, e.g. `{"SEV1": {"acknowledge_minutes": 5, "resolve_minutes": 60}}`. On
    /// PATCH the whole map is replaced; absent keeps it.
    pub response_targets: Option<BTreeMap<String, ResponseTargetBody>>,
    /// 0 to 1440 minutes; 0 turns grouping off. Absent: 0 on create, kept on PATCH.
    pub grouping_window_minutes: Option<i64>,
    /// Absent: true on create, kept on PATCH.
    pub auto_resolve: Option<bool>,
    /// Alert severity (critical, error, warning, info) to incident severity (SEV1…SEV4), e.g.
    /// `{"warning": "SEV2"}`; missing keys use critical→SEV1, error→SEV2, warning→SEV3,
    /// info→SEV4. On PATCH the whole map is replaced; absent keeps it.
    pub severity_map: Option<BTreeMap<String, String>>,
}

/// The alert settings given in a body, each `None` when absent.
struct AlertSettings<'a> {
    grouping_window_minutes: Option<i64>,
    auto_resolve: Option<bool>,
    severity_map: Option<&'a BTreeMap<String, String>>,
}

/// Checks a severity map given as JSON, keyed by field path (`severity_map.warning`).
fn severity_map_from(
    body: &BTreeMap<String, String>,
    problems: &mut BTreeMap<String, String>,
) -> SeverityMap {
    let mut out = SeverityMap::default();
    for (key, value) in body {
        if !ALERT_SEVERITIES.contains(&key.as_str()) {
            problems.insert(
                format!("severity_map.{key}"),
                "Alert severity must be one of critical, error, warning, info".into(),
            );
            continue;
        }
        match value.parse::<Severity>() {
            Ok(s) => {
                out.0.insert(key.clone(), s);
            }
            Err(e) => {
                problems.insert(format!("severity_map.{key}"), e.to_string());
            }
        }
    }
    out
}

/// Tells a field sent as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(d).map(Some)
}

/// Checks response targets given as JSON, keyed by field path
/// (`response_targets.SEV1.acknowledge_minutes`).
fn targets_from(
    body: &BTreeMap<String, ResponseTargetBody>,
    problems: &mut BTreeMap<String, String>,
) -> ResponseTargets {
    let mut out = ResponseTargets::default();
    for (key, target) in body {
        let severity = match key.parse::<Severity>() {
            Ok(s) => s,
            Err(e) => {
                problems.insert(format!("response_targets.{key}"), e.to_string());
                continue;
            }
        };
        let mut minutes = |name: &str, value: Option<i64>| {
            value.and_then(|m| match target_minutes(m) {
                Ok(m) => Some(m),
                Err(e) => {
                    problems.insert(format!("response_targets.{key}.{name}"), e);
                    None
                }
            })
        };
        let target = ResponseTarget {
            acknowledge_minutes: minutes("acknowledge_minutes", target.acknowledge_minutes),
            resolve_minutes: minutes("resolve_minutes", target.resolve_minutes),
        };
        if !target.is_empty() {
            out.0.insert(severity, target);
        }
    }
    out
}

async fn validate(
    state: &AppState,
    form: ServiceForm,
    targets: Option<&BTreeMap<String, ResponseTargetBody>>,
    settings: AlertSettings<'_>,
    current: Option<Service>,
) -> Result<heliograph_store::services::ServiceFields, ApiError> {
    let teams = state.store.teams(500, None).await?.items;
    let policies = state.store.policies().await?;
    let mut errors = FieldErrors::default();
    let fields = parse_service(&form, &teams, &policies, &mut errors);
    let mut problems = errors.into_map();
    let response_targets = match targets {
        Some(t) => targets_from(t, &mut problems),
        None => current
            .as_ref()
            .map(|c| c.response_targets.clone())
            .unwrap_or_default(),
    };
    let grouping_window_minutes = match settings.grouping_window_minutes {
        Some(m) if (0..=MAX_GROUPING_WINDOW_MINUTES).contains(&m) => m,
        Some(_) => {
            problems.insert(
                "grouping_window_minutes".into(),
                format!("Give whole minutes from 0 to {MAX_GROUPING_WINDOW_MINUTES} (0: off)"),
            );
            0
        }
        None => current.as_ref().map_or(0, |c| c.grouping_window_minutes),
    };
    let auto_resolve = settings
        .auto_resolve
        .unwrap_or_else(|| current.as_ref().is_none_or(|c| c.auto_resolve));
    let severity_map = match settings.severity_map {
        Some(m) => severity_map_from(m, &mut problems),
        None => current.map(|c| c.severity_map).unwrap_or_default(),
    };
    match fields {
        Some(mut fields) if problems.is_empty() => {
            fields.response_targets = response_targets;
            fields.grouping_window_minutes = grouping_window_minutes;
            fields.auto_resolve = auto_resolve;
            fields.severity_map = severity_map;
            Ok(fields)
        }
        _ => Err(ApiError::validation(problems)),
    }
}

/// List services, by name.
#[utoipa::path(get, path = "/api/v1/services", tag = "services", responses((status = 200, body = ServiceList), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    _auth: ApiAuth<Viewer>,
) -> Result<Json<ServiceList>, ApiError> {
    Ok(Json(ServiceList {
        services: state
            .store
            .services()
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    }))
}

/// Create a service (manager).
#[utoipa::path(post, path = "/api/v1/services", tag = "services", request_body = ServiceBody,
    responses((status = 201, body = ServiceOut), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    auth: ApiAuth<Manager>,
    PathJson(body): PathJson<ServiceBody>,
) -> Result<(StatusCode, Json<ServiceOut>), ApiError> {
    let form = ServiceForm {
        name: body.name.unwrap_or_default(),
        description: body.description.unwrap_or_default(),
        kind: body.kind.unwrap_or_default(),
        workload_class: body.workload_class.unwrap_or_default(),
        team_id: body.team_id.map(|t| t.to_string()).unwrap_or_default(),
        escalation_policy_id: body
            .escalation_policy_id
            .flatten()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        ..Default::default()
    };
    let settings = AlertSettings {
        grouping_window_minutes: body.grouping_window_minutes,
        auto_resolve: body.auto_resolve,
        severity_map: body.severity_map.as_ref(),
    };
    let fields = validate(&state, form, body.response_targets.as_ref(), settings, None).await?;
    let service = state.store.create_service(&fields, &auth.audit()).await?;
    Ok((StatusCode::CREATED, Json(service.into())))
}

/// One service.
#[utoipa::path(get, path = "/api/v1/services/{id}", tag = "services", params(("id" = i64, Path)), responses((status = 200, body = ServiceOut), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    _auth: ApiAuth<Viewer>,
    Path(id): Path<String>,
) -> Result<Json<ServiceOut>, ApiError> {
    Ok(Json(state.store.service(path_id(&id)?).await?.into()))
}

/// Change a service (manager); absent fields stay as they are.
#[utoipa::path(patch, path = "/api/v1/services/{id}", tag = "services", params(("id" = i64, Path)), request_body = ServiceBody,
    responses((status = 200, body = ServiceOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    auth: ApiAuth<Manager>,
    Path(id): Path<String>,
    PathJson(body): PathJson<ServiceBody>,
) -> Result<Json<ServiceOut>, ApiError> {
    let id = path_id(&id)?;
    let current = state.store.service(id).await?;
    let form = ServiceForm {
        name: body.name.unwrap_or_else(|| current.name.clone()),
        description: body
            .description
            .unwrap_or_else(|| current.description.clone()),
        kind: body.kind.unwrap_or_else(|| current.kind.to_string()),
        workload_class: body
            .workload_class
            .unwrap_or_else(|| current.workload_class.to_string()),
        team_id: body
            .team_id
            .or(current.team_id)
            .map(|t| t.to_string())
            .unwrap_or_default(),
        escalation_policy_id: body
            .escalation_policy_id
            .unwrap_or(current.escalation_policy_id)
            .map(|p| p.to_string())
            .unwrap_or_default(),
        ..Default::default()
    };
    let settings = AlertSettings {
        grouping_window_minutes: body.grouping_window_minutes,
        auto_resolve: body.auto_resolve,
        severity_map: body.severity_map.as_ref(),
    };
    let fields = validate(
        &state,
        form,
        body.response_targets.as_ref(),
        settings,
        Some(current),
    )
    .await?;
    Ok(Json(
        state
            .store
            .update_service(id, &fields, &auth.audit())
            .await?
            .into(),
    ))
}

/// Delete a service (manager).
#[utoipa::path(delete, path = "/api/v1/services/{id}", tag = "services", params(("id" = i64, Path)), responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    auth: ApiAuth<Manager>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .store
        .delete_service(path_id(&id)?, &auth.audit())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
