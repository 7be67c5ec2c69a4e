//! `/api/v1/services/{id}/integrations`, `/api/v1/integrations/{id}` and `/api/v1/alerts`.
//! A key is answered once, when the integration is created or its key rotated; lists show
//! its prefix only.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use heliograph_store::alerts::{Alert, AlertFilter, Integration};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::schedules::PathJson;
use super::{ApiAuth, ApiError, ApiQuery, ErrorBody, PageQuery, path_id};
use crate::AppState;
use crate::auth::{Manager, Viewer};
use crate::pages::alerts::{
    EVENTS_SHOWN, add_integration, base, integration_url, parse_integration, rotate_integration,
    url_pattern,
};
use crate::views::FieldErrors;

/// An integration to add to a service.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntegrationBody {
    /// `events_v2`, `alertmanager`, `generic` or `heartbeat`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Defaults to the type's name.
    pub name: Option<String>,
    /// Required for heartbeats: how often a check-in is expected (60 to 604,800 seconds).
    pub heartbeat_interval_seconds: Option<i64>,
}

/// An integration just created or given a new key: the key is shown this once.
#[derive(Serialize, ToSchema)]
pub struct IntegrationCreated {
    pub id: i64,
    pub service_id: i64,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    /// The secret key (32 hexadecimal characters); it cannot be read again.
    pub key: String,
    /// Where to send events: for `events_v2` `/v2/enqueue` with the key as `routing_key`,
    /// otherwise `/integrations/{key}/{type}`.
    pub url: String,
    pub heartbeat_interval_seconds: Option<i64>,
}

impl IntegrationCreated {
    fn new(state: &AppState, i: Integration, key: String) -> Self {
        IntegrationCreated {
            url: integration_url(&base(state), &i.kind, &key),
            id: i.id,
            service_id: i.service_id,
            kind: i.kind,
            name: i.name,
            key,
            heartbeat_interval_seconds: i.heartbeat_interval_seconds,
        }
    }
}

/// An integration as listed: its key's first characters only.
#[derive(Serialize, ToSchema)]
pub struct IntegrationOut {
    pub id: i64,
    pub service_id: i64,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub key_prefix: String,
    /// The URL with the key elided.
    pub url_pattern: String,
    pub heartbeat_interval_seconds: Option<i64>,
    pub last_check_in_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub rotated_at: Option<DateTime<Utc>>,
}

/// A service's integrations.
#[derive(Serialize, ToSchema)]
pub struct IntegrationList {
    pub integrations: Vec<IntegrationOut>,
}

/// An alert.
#[derive(Serialize, ToSchema)]
pub struct AlertOut {
    pub id: i64,
    pub integration_id: i64,
    pub service_id: i64,
    pub dedup_key: String,
    /// `triggered`, `acknowledged` or `resolved`.
    pub status: String,
    pub summary: String,
    pub source: Option<String>,
    /// `critical`, `error`, `warning` or `info`.
    pub severity: String,
    pub incident_number: Option<i64>,
    /// How many triggers it has received.
    pub count: i64,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

impl From<Alert> for AlertOut {
    fn from(a: Alert) -> Self {
        AlertOut {
            id: a.id,
            integration_id: a.integration_id,
            service_id: a.service_id,
            dedup_key: a.dedup_key,
            status: a.status,
            summary: a.summary,
            source: a.source,
            severity: a.severity,
            incident_number: a.incident_number,
            count: a.count,
            first_seen_at: a.first_seen_at,
            last_seen_at: a.last_seen_at,
            resolved_at: a.resolved_at,
        }
    }
}

/// Alerts, newest first.
#[derive(Serialize, ToSchema)]
pub struct AlertList {
    pub alerts: Vec<AlertOut>,
    pub next_cursor: Option<i64>,
}

/// One event received for an alert.
#[derive(Serialize, ToSchema)]
pub struct AlertEventOut {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// `trigger`, `acknowledge` or `resolve`.
    pub action: String,
    /// The event as received: its JSON, or the text when it was not JSON.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

/// An alert with its latest events, newest first.
#[derive(Serialize, ToSchema)]
pub struct AlertDetail {
    #[serde(flatten)]
    pub alert: AlertOut,
    pub events: Vec<AlertEventOut>,
}

/// `GET /api/v1/alerts` filters.
#[derive(Deserialize, IntoParams)]
pub struct AlertQuery {
    /// `triggered`, `acknowledged` or `resolved`.
    pub status: Option<String>,
    pub service_id: Option<i64>,
    pub integration_id: Option<i64>,
    /// How many items (1–200, default 50).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<i64>,
}

fn field_errors(errors: FieldErrors) -> ApiError {
    ApiError::validation(errors.into_map())
}

/// Add an integration to a service (manager); the answer holds its key, shown once.
#[utoipa::path(post, path = "/api/v1/services/{id}/integrations", tag = "alerts", params(("id" = i64, Path)), request_body = IntegrationBody,
    responses((status = 201, body = IntegrationCreated), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_integration(
    State(state): State<AppState>,
    auth: ApiAuth<Manager>,
    Path(id): Path<String>,
    PathJson(body): PathJson<IntegrationBody>,
) -> Result<(StatusCode, Json<IntegrationCreated>), ApiError> {
    let service = state.store.service(path_id(&id)?).await?;
    let mut errors = FieldErrors::default();
    let Some(input) = parse_integration(
        body.kind.as_deref().unwrap_or_default(),
        body.name.as_deref().unwrap_or_default(),
        body.heartbeat_interval_seconds,
        None,
        &mut errors,
    ) else {
        return Err(field_errors(errors));
    };
    let (created, key) = add_integration(&state, service.id, &input, &auth.audit()).await?;
    Ok((
        StatusCode::CREATED,
        Json(IntegrationCreated::new(&state, created, key)),
    ))
}

/// A service's integrations, without their keys.
#[utoipa::path(get, path = "/api/v1/services/{id}/integrations", tag = "alerts", params(("id" = i64, Path)),
    responses((status = 200, body = IntegrationList), (status = 404, body = ErrorBody)))]
pub async fn list_integrations(
    State(state): State<AppState>,
    _auth: ApiAuth<Viewer>,
    Path(id): Path<String>,
) -> Result<Json<IntegrationList>, ApiError> {
    let service = state.store.service(path_id(&id)?).await?;
    let base = base(&state);
    let integrations = state
        .store
        .integrations_of(service.id)
        .await?
        .into_iter()
        .map(|i| IntegrationOut {
            url_pattern: url_pattern(&base, &i),
            id: i.id,
            service_id: i.service_id,
            kind: i.kind,
            name: i.name,
            key_prefix: i.key_prefix,
            heartbeat_interval_seconds: i.heartbeat_interval_seconds,
            last_check_in_at: i.last_check_in_at,
            created_at: i.created_at,
            rotated_at: i.rotated_at,
        })
        .collect();
    Ok(Json(IntegrationList { integrations }))
}

/// Give an integration a new key (manager); the old key stops working at once.
#[utoipa::path(post, path = "/api/v1/integrations/{id}/rotate", tag = "alerts", params(("id" = i64, Path)),
    responses((status = 200, body = IntegrationCreated), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn rotate(
    State(state): State<AppState>,
    auth: ApiAuth<Manager>,
    Path(id): Path<String>,
) -> Result<Json<IntegrationCreated>, ApiError> {
    let id = path_id(&id)?;
    state.store.integration(id).await?;
    let (after, key) = rotate_integration(&state, id, &auth.audit()).await?;
    Ok(Json(IntegrationCreated::new(&state, after, key)))
}

/// Delete an integration with its alerts (manager).
#[utoipa::path(delete, path = "/api/v1/integrations/{id}", tag = "alerts", params(("id" = i64, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_integration(
    State(state): State<AppState>,
    auth: ApiAuth<Manager>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .store
        .delete_integration(path_id(&id)?, &auth.audit())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List alerts, newest first.
#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts", params(AlertQuery),
    responses((status = 200, body = AlertList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    _auth: ApiAuth<Viewer>,
    ApiQuery(q): ApiQuery<AlertQuery>,
) -> Result<Json<AlertList>, ApiError> {
    let limit = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .limit()?;
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s @ ("triggered" | "acknowledged" | "resolved")) => Some(s.to_owned()),
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                "status must be triggered, acknowledged or resolved",
            ));
        }
    };
    let filter = AlertFilter {
        status,
        service_id: q.service_id,
        integration_id: q.integration_id,
    };
    let page = state.store.alerts(&filter, limit, q.cursor).await?;
    Ok(Json(AlertList {
        alerts: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One alert, with its latest events and their raw payloads (newest first).
#[utoipa::path(get, path = "/api/v1/alerts/{id}", tag = "alerts", params(("id" = i64, Path)),
    responses((status = 200, body = AlertDetail), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    _auth: ApiAuth<Viewer>,
    Path(id): Path<String>,
) -> Result<Json<AlertDetail>, ApiError> {
    let id = path_id(&id)?;
    let alert = state.store.alert(id).await?;
    let events = state
        .store
        .alert_events(id, EVENTS_SHOWN)
        .await?
        .into_iter()
        .rev()
        .map(|e| AlertEventOut {
            id: e.id,
            at: e.at,
            action: e.action,
            payload: serde_json::from_str(&e.payload)
                .unwrap_or(serde_json::Value::String(e.payload)),
        })
        .collect();
    Ok(Json(AlertDetail {
        alert: alert.into(),
        events,
    }))
}
