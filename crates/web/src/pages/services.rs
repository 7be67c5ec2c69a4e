//! Services: everyone reads them; managers create, edit and delete.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use heliograph_domain::{ServiceKind, Severity, WorkloadClass};
use heliograph_store::StoreError;
use heliograph_store::escalation_policies::StoredPolicy;
use heliograph_store::services::{
    ALERT_SEVERITIES, MAX_GROUPING_WINDOW_MINUTES, ResponseTarget, ResponseTargets, Service,
    ServiceFields, SeverityMap, default_incident_severity,
};
use heliograph_store::teams::TeamWithMembers;
use serde::Deserialize;

use super::alerts::{KINDS, KeyShown, kind_label, parse_integration, url_pattern};
use crate::auth::{Auth, Manager, Viewer};
use crate::csrf::CsrfForm;
use crate::error::render_with_status;
use crate::flash::redirect_with;
use crate::policies::{MAX_TARGET_MINUTES, target_minutes};
use crate::views::{FieldErrors, Shell};
use crate::{AppError, AppState};

/// The service form as typed.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ServiceForm {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub workload_class: String,
    #[serde(default)]
    pub team_id: String,
    #[serde(default)]
    pub escalation_policy_id: String,
    #[serde(default)]
    pub ack_sev1: String,
    #[serde(default)]
    pub resolve_sev1: String,
    #[serde(default)]
    pub ack_sev2: String,
    #[serde(default)]
    pub resolve_sev2: String,
    #[serde(default)]
    pub ack_sev3: String,
    #[serde(default)]
    pub resolve_sev3: String,
    #[serde(default)]
    pub ack_sev4: String,
    #[serde(default)]
    pub resolve_sev4: String,
    /// Minutes, 0 to 1440 (empty or 0: off).
    #[serde(default)]
    pub grouping_window_minutes: String,
    /// The checkbox: present (any value) when ticked.
    #[serde(default)]
    pub auto_resolve: Option<String>,
    /// The incident severity (SEV1…SEV4) for each alert severity; empty: the default.
    #[serde(default)]
    pub sev_critical: String,
    #[serde(default)]
    pub sev_error: String,
    #[serde(default)]
    pub sev_warning: String,
    #[serde(default)]
    pub sev_info: String,
}

/// One alert severity's select of the severity mapping, for the template.
pub struct SeverityRow<'a> {
    /// critical, error, warning or info.
    pub alert: &'static str,
    pub field: String,
    /// The value chosen (SEV1…SEV4), or the default when none is.
    pub selected: &'a str,
    pub default: Severity,
}

/// One severity's row of response-target inputs, for the template.
pub struct TargetRow<'a> {
    pub severity: Severity,
    pub ack_field: String,
    pub ack: &'a str,
    pub resolve_field: String,
    pub resolve: &'a str,
}

impl ServiceForm {
    fn from_service(s: &Service) -> Self {
        let mut form = ServiceForm {
            name: s.name.clone(),
            description: s.description.clone(),
            kind: s.kind.to_string(),
            workload_class: s.workload_class.to_string(),
            team_id: s.team_id.map(|t| t.to_string()).unwrap_or_default(),
            escalation_policy_id: s
                .escalation_policy_id
                .map(|p| p.to_string())
                .unwrap_or_default(),
            grouping_window_minutes: s.grouping_window_minutes.to_string(),
            auto_resolve: s.auto_resolve.then(|| "on".to_owned()),
            ..Default::default()
        };
        for alert in ALERT_SEVERITIES {
            *form.mapping_mut(alert) = s.severity_map.get(alert).to_string();
        }
        for (severity, target) in &s.response_targets.0 {
            let text = |m: Option<u32>| m.map(|m| m.to_string()).unwrap_or_default();
            let (ack, resolve) = form.targets_mut(*severity);
            *ack = text(target.acknowledge_minutes);
            *resolve = text(target.resolve_minutes);
        }
        form
    }

    fn targets_mut(&mut self, severity: Severity) -> (&mut String, &mut String) {
        match severity {
            Severity::Sev1 => (&mut self.ack_sev1, &mut self.resolve_sev1),
            Severity::Sev2 => (&mut self.ack_sev2, &mut self.resolve_sev2),
            Severity::Sev3 => (&mut self.ack_sev3, &mut self.resolve_sev3),
            Severity::Sev4 => (&mut self.ack_sev4, &mut self.resolve_sev4),
        }
    }

    fn targets(&self, severity: Severity) -> (&str, &str) {
        match severity {
            Severity::Sev1 => (&self.ack_sev1, &self.resolve_sev1),
            Severity::Sev2 => (&self.ack_sev2, &self.resolve_sev2),
            Severity::Sev3 => (&self.ack_sev3, &self.resolve_sev3),
            Severity::Sev4 => (&self.ack_sev4, &self.resolve_sev4),
        }
    }

    fn mapping_mut(&mut self, alert: &str) -> &mut String {
        match alert {
            "critical" => &mut self.sev_critical,
            "error" => &mut self.sev_error,
            "warning" => &mut self.sev_warning,
            _ => &mut self.sev_info,
        }
    }

    fn mapping(&self, alert: &str) -> &str {
        match alert {
            "critical" => &self.sev_critical,
            "error" => &self.sev_error,
            "warning" => &self.sev_warning,
            _ => &self.sev_info,
        }
    }

    /// The severity-mapping selects, one per alert severity.
    pub fn severity_rows(&self) -> Vec<SeverityRow<'_>> {
        ALERT_SEVERITIES
            .iter()
            .map(|&alert| {
                let default = default_incident_severity(alert);
                let chosen = self.mapping(alert);
                SeverityRow {
                    alert,
                    field: format!("sev_{alert}"),
                    selected: if chosen.trim().is_empty() {
                        default.as_str()
                    } else {
                        chosen
                    },
                    default,
                }
            })
            .collect()
    }

    /// Whether the auto-resolve checkbox is ticked.
    pub fn auto_resolve_checked(&self) -> bool {
        self.auto_resolve.is_some()
    }

    /// The response-target inputs, one row per severity.
    pub fn target_rows(&self) -> Vec<TargetRow<'_>> {
        Severity::ALL
            .iter()
            .map(|&severity| {
                let (ack, resolve) = self.targets(severity);
                let key = severity.as_str().to_ascii_lowercase();
                TargetRow {
                    severity,
                    ack_field: format!("ack_{key}"),
                    ack,
                    resolve_field: format!("resolve_{key}"),
                    resolve,
                }
            })
            .collect()
    }
}

/// Checks a service form; the same rules serve the API (which checks response targets given
/// as JSON itself, keyed by its field paths, and leaves the form's target fields empty).
pub fn parse_service(
    form: &ServiceForm,
    teams: &[TeamWithMembers],
    policies: &[StoredPolicy],
    errors: &mut FieldErrors,
) -> Option<ServiceFields> {
    let name = form.name.trim();
    if name.is_empty() {
        errors.add("name", "Name is required");
    } else if name.chars().count() > 100 || name.chars().any(char::is_control) {
        errors.add(
            "name",
            "Name must be at most 100 characters, without control characters",
        );
    }
    if form.description.chars().count() > 2000 {
        errors.add(
            "description",
            "Description must be at most 2,000 characters",
        );
    }
    let kind = errors.check("kind", form.kind.parse::<ServiceKind>());
    let workload_class = errors.check(
        "workload_class",
        form.workload_class.parse::<WorkloadClass>(),
    );
    let team_id = match form.team_id.trim() {
        "" => None,
        raw => match raw.parse::<i64>() {
            Ok(id) if teams.iter().any(|t| t.team.id == id) => Some(id),
            _ => {
                errors.add("team_id", "Choose a team from the list");
                None
            }
        },
    };
    let escalation_policy_id = match form.escalation_policy_id.trim() {
        "" => None,
        raw => match raw.parse::<i64>() {
            Ok(id) if policies.iter().any(|p| p.id == id) => Some(id),
            _ => {
                errors.add(
                    "escalation_policy_id",
                    format!(
                        "There is no escalation policy {}; choose one from the list",
                        raw.chars().take(20).collect::<String>()
                    ),
                );
                None
            }
        },
    };
    let mut response_targets = ResponseTargets::default();
    for row in form.target_rows() {
        let mut minutes = |field: &str, raw: &str| match raw.trim() {
            "" => None,
            raw => match raw
                .parse::<i64>()
                .map_err(|_| String::new())
                .and_then(target_minutes)
            {
                Ok(m) => Some(m),
                Err(_) => {
                    errors.add(
                        field,
                        format!(
                            "Give whole minutes from 1 to {MAX_TARGET_MINUTES}, or leave empty"
                        ),
                    );
                    None
                }
            },
        };
        let target = ResponseTarget {
            acknowledge_minutes: minutes(&row.ack_field, row.ack),
            resolve_minutes: minutes(&row.resolve_field, row.resolve),
        };
        if !target.is_empty() {
            response_targets.0.insert(row.severity, target);
        }
    }
    let grouping_window_minutes = match form.grouping_window_minutes.trim() {
        "" => 0,
        raw => match raw.parse::<i64>() {
            Ok(m) if (0..=MAX_GROUPING_WINDOW_MINUTES).contains(&m) => m,
            _ => {
                errors.add(
                    "grouping_window_minutes",
                    format!(
                        "Give whole minutes from 0 to {MAX_GROUPING_WINDOW_MINUTES} (0 turns grouping off)"
                    ),
                );
                0
            }
        },
    };
    let mut severity_map = SeverityMap::default();
    for row in form.severity_rows() {
        match row.selected.trim().parse::<Severity>() {
            Ok(s) if s == row.default => {}
            Ok(s) => {
                severity_map.0.insert(row.alert.to_owned(), s);
            }
            Err(_) => errors.add(&row.field, "Choose a severity from SEV1 to SEV4"),
        }
    }
    if !errors.is_empty() {
        return None;
    }
    Some(ServiceFields {
        grouping_window_minutes,
        auto_resolve: form.auto_resolve.is_some(),
        severity_map,
        name: name.to_owned(),
        description: form.description.trim().to_owned(),
        kind: kind?,
        workload_class: workload_class?,
        team_id,
        escalation_policy_id,
        response_targets,
    })
}

#[derive(Template)]
#[template(path = "services/list.html")]
struct ServicesPage {
    shell: Shell,
    services: Vec<Service>,
    teams: Vec<TeamWithMembers>,
    policies: Vec<StoredPolicy>,
    form: ServiceForm,
    errors: FieldErrors,
    kinds: &'static [ServiceKind],
    classes: &'static [WorkloadClass],
    action: String,
    submit: &'static str,
}

impl ServicesPage {
    fn team_name(&self, id: &Option<i64>) -> String {
        id.and_then(|id| self.teams.iter().find(|t| t.team.id == id))
            .map(|t| t.team.name.to_string())
            .unwrap_or_else(|| "—".into())
    }

    fn policy_name(&self, id: &Option<i64>) -> String {
        id.and_then(|id| self.policies.iter().find(|p| p.id == id))
            .map(|p| p.name.clone())
            .unwrap_or_else(|| "—".into())
    }
}

async fn list_page(
    state: &AppState,
    shell: Shell,
    form: ServiceForm,
    errors: FieldErrors,
) -> Result<ServicesPage, AppError> {
    Ok(ServicesPage {
        shell,
        services: state.store.services().await?,
        teams: state.store.teams(500, None).await?.items,
        policies: state.store.policies().await?,
        form,
        errors,
        kinds: ServiceKind::ALL,
        classes: WorkloadClass::ALL,
        action: "/services".into(),
        submit: "Create service",
    })
}

pub async fn list(
    State(state): State<AppState>,
    _auth: Auth<Viewer>,
    shell: Shell,
) -> Result<Response, AppError> {
    let form = ServiceForm {
        kind: "llm-inference".into(),
        workload_class: "real-time".into(),
        grouping_window_minutes: "0".into(),
        auto_resolve: Some("on".into()),
        ..Default::default()
    };
    Ok(render_with_status(
        StatusCode::OK,
        &list_page(&state, shell, form, FieldErrors::default()).await?,
    ))
}

pub async fn create(
    State(state): State<AppState>,
    auth: Auth<Manager>,
    shell: Shell,
    CsrfForm(form): CsrfForm<ServiceForm>,
) -> Result<Response, AppError> {
    let teams = state.store.teams(500, None).await?.items;
    let policies = state.store.policies().await?;
    let mut errors = FieldErrors::default();
    if let Some(fields) = parse_service(&form, &teams, &policies, &mut errors) {
        match state.store.create_service(&fields, &auth.audit()).await {
            Ok(s) => {
                return Ok(redirect_with(
                    &format!("/services/{}", s.id),
                    "success",
                    format!("Service {} created.", s.name),
                ));
            }
            Err(StoreError::Conflict(m)) => errors.add("name", m),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(render_with_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &list_page(&state, shell, form, errors).await?,
    ))
}

impl ServicePage {
    /// The response targets set, in severity order, as (severity, acknowledge, resolve) words.
    fn target_lines(&self) -> Vec<(Severity, String, String)> {
        let words = |m: Option<u32>| m.map(minutes_words).unwrap_or_else(|| "—".into());
        Severity::ALL
            .iter()
            .filter_map(|&s| {
                self.service
                    .response_targets
                    .get(s)
                    .map(|t| (s, words(t.acknowledge_minutes), words(t.resolve_minutes)))
            })
            .collect()
    }

    /// The severity mapping in effect, as (alert severity, incident severity) pairs.
    fn mapping_lines(&self) -> Vec<(&'static str, Severity)> {
        ALERT_SEVERITIES
            .iter()
            .map(|&a| (a, self.service.severity_map.get(a)))
            .collect()
    }
}

/// Minutes in words, e.g. "5 min", "2 h", "1 h 30 min".
pub fn minutes_words(m: u32) -> String {
    match (m / 60, m % 60) {
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

#[derive(Template)]
#[template(path = "services/show.html")]
struct ServicePage {
    shell: Shell,
    service: Service,
    team: Option<String>,
    policy: Option<StoredPolicy>,
    teams: Vec<TeamWithMembers>,
    policies: Vec<StoredPolicy>,
    form: ServiceForm,
    errors: FieldErrors,
    kinds: &'static [ServiceKind],
    classes: &'static [WorkloadClass],
    action: String,
    submit: &'static str,
    /// Recent response-target breaches, as sentences.
    breaches: Vec<(i64, String)>,
    integrations: Vec<IntegrationRow>,
    integration_kinds: &'static [(&'static str, &'static str)],
    integration_form: IntegrationForm,
    integration_errors: FieldErrors,
    /// A key just made or rotated: shown in this answer only.
    new_key: Option<KeyShown>,
    /// The last 90 days of incidents and alerts (insights).
    insights: super::insights::ServiceInsights,
}

/// One integration on the service page.
pub struct IntegrationRow {
    pub id: i64,
    pub kind: String,
    pub label: &'static str,
    pub name: String,
    pub key_prefix: String,
    pub url_pattern: String,
    /// For heartbeats: the interval and the last check-in, in words.
    pub heartbeat: Option<(String, String)>,
}

/// The add-integration form as typed.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct IntegrationForm {
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub heartbeat_interval_seconds: String,
}

async fn service_page(
    state: &AppState,
    shell: Shell,
    id: i64,
    form: Option<ServiceForm>,
    errors: FieldErrors,
) -> Result<ServicePage, AppError> {
    let service = state.store.service(id).await?;
    let teams = state.store.teams(500, None).await?.items;
    let team = service
        .team_id
        .and_then(|id| teams.iter().find(|t| t.team.id == id))
        .map(|t| t.team.name.to_string());
    let policies = state.store.policies().await?;
    let policy = service
        .escalation_policy_id
        .and_then(|id| policies.iter().find(|p| p.id == id))
        .cloned();
    let form = form.unwrap_or_else(|| ServiceForm::from_service(&service));
    let breaches = state
        .store
        .service_breaches(id, 20)
        .await?
        .into_iter()
        .map(|(number, title, kind, minutes, at)| {
            (
                number,
                format!(
                    "{title}: not {} within {minutes} min (missed {})",
                    if kind == "acknowledge" {
                        "acknowledged"
                    } else {
                        "resolved"
                    },
                    shell.time(&at)
                ),
            )
        })
        .collect();
    let base = super::alerts::base(state);
    let integrations = state
        .store
        .integrations_of(id)
        .await?
        .into_iter()
        .map(|i| IntegrationRow {
            url_pattern: url_pattern(&base, &i),
            label: kind_label(&i.kind),
            heartbeat: i
                .heartbeat_interval_seconds
                .map(|s| (format!("every {s} s"), shell.time_opt(&i.last_check_in_at))),
            id: i.id,
            kind: i.kind,
            name: i.name,
            key_prefix: i.key_prefix,
        })
        .collect();
    let insights = super::insights::service_insights(state, &service, shell.tz()).await?;
    Ok(ServicePage {
        insights,
        breaches,
        integrations,
        integration_kinds: KINDS,
        integration_form: IntegrationForm {
            kind: "events_v2".into(),
            ..Default::default()
        },
        integration_errors: FieldErrors::default(),
        new_key: None,
        shell,
        action: format!("/services/{id}"),
        service,
        team,
        policy,
        teams,
        policies,
        form,
        errors,
        kinds: ServiceKind::ALL,
        classes: WorkloadClass::ALL,
        submit: "Save service",
    })
}

pub async fn show(
    State(state): State<AppState>,
    _auth: Auth<Viewer>,
    shell: Shell,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let id = super::parse_id(&id)?;
    Ok(render_with_status(
        StatusCode::OK,
        &service_page(&state, shell, id, None, FieldErrors::default()).await?,
    ))
}

pub async fn update(
    State(state): State<AppState>,
    auth: Auth<Manager>,
    shell: Shell,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<ServiceForm>,
) -> Result<Response, AppError> {
    let id = super::parse_id(&id)?;
    state.store.service(id).await?;
    let teams = state.store.teams(500, None).await?.items;
    let policies = state.store.policies().await?;
    let mut errors = FieldErrors::default();
    if let Some(fields) = parse_service(&form, &teams, &policies, &mut errors) {
        match state.store.update_service(id, &fields, &auth.audit()).await {
            Ok(s) => {
                return Ok(redirect_with(
                    &format!("/services/{id}"),
                    "success",
                    format!("Service {} saved.", s.name),
                ));
            }
            Err(StoreError::Conflict(m)) => errors.add("name", m),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(render_with_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &service_page(&state, shell, id, Some(form), errors).await?,
    ))
}

#[derive(Deserialize)]
pub struct Empty {}

pub async fn delete(
    State(state): State<AppState>,
    auth: Auth<Manager>,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, AppError> {
    let id = super::parse_id(&id)?;
    let service = state.store.service(id).await?;
    state.store.delete_service(id, &auth.audit()).await?;
    Ok(redirect_with(
        "/services",
        "success",
        format!("Service {} deleted.", service.name),
    ))
}

/// The answer that shows a new key: the service page, never cached.
fn key_page(page: &ServicePage) -> Response {
    let mut response = render_with_status(StatusCode::OK, page);
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}

/// The integration `iid` of service `id`, or a 404.
async fn integration_of(
    state: &AppState,
    id: &str,
    iid: &str,
) -> Result<(i64, heliograph_store::alerts::Integration), AppError> {
    let id = super::parse_id(id)?;
    let iid = super::parse_id(iid)?;
    let integration = state.store.integration(iid).await?;
    if integration.service_id != id {
        return Err(AppError::NotFound);
    }
    Ok((id, integration))
}

pub async fn add_integration(
    State(state): State<AppState>,
    auth: Auth<Manager>,
    shell: Shell,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<IntegrationForm>,
) -> Result<Response, AppError> {
    let id = super::parse_id(&id)?;
    state.store.service(id).await?;
    let mut errors = FieldErrors::default();
    let input = parse_integration(
        &form.kind,
        &form.name,
        None,
        Some(&form.heartbeat_interval_seconds),
        &mut errors,
    );
    let Some(input) = input else {
        let mut page = service_page(&state, shell, id, None, FieldErrors::default()).await?;
        page.integration_form = form;
        page.integration_errors = errors;
        return Ok(render_with_status(StatusCode::UNPROCESSABLE_ENTITY, &page));
    };
    let (created, key) = super::alerts::add_integration(&state, id, &input, &auth.audit()).await?;
    let base = super::alerts::base(&state);
    let mut page = service_page(&state, shell, id, None, FieldErrors::default()).await?;
    page.new_key = Some(KeyShown::new(&base, created, key));
    Ok(key_page(&page))
}

pub async fn rotate_integration(
    State(state): State<AppState>,
    auth: Auth<Manager>,
    shell: Shell,
    Path((id, iid)): Path<(String, String)>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, AppError> {
    let (id, integration) = integration_of(&state, &id, &iid).await?;
    let (after, key) =
        super::alerts::rotate_integration(&state, integration.id, &auth.audit()).await?;
    let base = super::alerts::base(&state);
    let mut page = service_page(&state, shell, id, None, FieldErrors::default()).await?;
    page.new_key = Some(KeyShown::new(&base, after, key));
    Ok(key_page(&page))
}

pub async fn delete_integration(
    State(state): State<AppState>,
    auth: Auth<Manager>,
    Path((id, iid)): Path<(String, String)>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, AppError> {
    let (id, integration) = integration_of(&state, &id, &iid).await?;
    state
        .store
        .delete_integration(integration.id, &auth.audit())
        .await?;
    Ok(redirect_with(
        &format!("/services/{id}"),
        "success",
        format!("Integration {} deleted.", integration.name),
    ))
}
