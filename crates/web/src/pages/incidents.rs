//! Incidents in the browser: the list, declaring, the incident page with its actions and
//! timeline, and the live event streams that keep open pages current.

use std::convert::Infallible;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use futures::{Stream, StreamExt};
use heliograph_domain::{IncidentRole, IncidentStatus, Phase, Severity};
use heliograph_store::StoreError;
use heliograph_store::incidents::{
    IncidentDetail, IncidentFilter, IncidentRow, NewIncident, StatusCounts, TimelineEntry,
};
use heliograph_store::services::Service;
use heliograph_store::teams::TeamWithMembers;
use heliograph_store::users::User;
use serde::Deserialize;
use tokio_stream::wrappers::BroadcastStream;

use crate::auth::{Auth, Responder, Viewer};
use crate::csrf::CsrfForm;
use crate::error::render_with_status;
use crate::flash::redirect_with;
use crate::views::{FieldErrors, Shell};
use crate::{AppError, AppState, markdown};

/// The longest title accepted.
const MAX_TITLE: usize = 200;
/// The longest description, note or update accepted (Markdown source).
const MAX_TEXT: usize = 100_000;
/// Incidents per page of the list.
const PAGE_SIZE: i64 = 50;

/// "3d 4h", "2h 5m", "40s": how long since `since`.
pub fn age(since: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let d = (now - since).max(TimeDelta::zero());
    let (days, hours, minutes) = (d.num_days(), d.num_hours() % 24, d.num_minutes() % 60);
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {minutes}m")
    } else if minutes > 0 {
        format!("{minutes}m")
    } else {
        format!("{}s", d.num_seconds())
    }
}

fn check_text(
    errors: &mut FieldErrors,
    field: &'static str,
    what: &str,
    text: &str,
    required: bool,
    max: usize,
) {
    if required && text.trim().is_empty() {
        errors.add(field, format!("{what} is required"));
    } else if text.chars().count() > max {
        errors.add(field, format!("{what} must be at most {max} characters"));
    }
}

// ---------------------------------------------------------------- the list

#[derive(Debug, Default, Deserialize, Clone)]
pub struct ListQuery {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub severity: String,
    #[serde(default)]
    pub service_id: String,
    #[serde(default)]
    pub team_id: String,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub page: String,
}

#[derive(Template)]
#[template(path = "incidents/list.html")]
struct ListPage {
    shell: Shell,
    rows: Vec<IncidentRow>,
    counts: StatusCounts,
    query: ListQuery,
    errors: FieldErrors,
    services: Vec<Service>,
    teams: Vec<TeamWithMembers>,
    severities: &'static [Severity],
    now: DateTime<Utc>,
    page: i64,
    prev_link: Option<String>,
    next_link: Option<String>,
}

impl ListPage {
    fn age(&self, row: &IncidentRow) -> String {
        age(
            row.incident.triggered_at,
            row.incident
                .resolved_at
                .filter(|_| row.incident.status == IncidentStatus::Resolved)
                .unwrap_or(self.now),
        )
    }
    fn status_link(&self, status: &str) -> String {
        let mut q = self.query.clone();
        q.status = status.to_owned();
        q.page = String::new();
        format!("/incidents?{}", encode_query(&q))
    }
}

fn encode_query(q: &ListQuery) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("status", &q.status),
        ("severity", &q.severity),
        ("service_id", &q.service_id),
        ("team_id", &q.team_id),
        ("from", &q.from),
        ("to", &q.to),
        ("q", &q.q),
        ("page", &q.page),
    ] {
        if !v.is_empty() {
            ser.append_pair(k, v);
        }
    }
    ser.finish()
}

fn local_day(raw: &str, tz: chrono_tz::Tz) -> Result<DateTime<Utc>, String> {
    let date = NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
        .map_err(|_| "Use a date like 2026-11-28".to_owned())?;
    Ok(heliograph_scheduler::resolve_local(
        tz,
        date.and_time(chrono::NaiveTime::MIN),
    ))
}

/// Turns the list's query string into a store filter, recording what is wrong.
fn parse_filter(q: &ListQuery, tz: chrono_tz::Tz, errors: &mut FieldErrors) -> IncidentFilter {
    let mut f = IncidentFilter::default();
    match q.status.as_str() {
        "" | "all" => {}
        "open" => f.open_only = true,
        other => f.status = errors.check("status", other.parse::<IncidentStatus>()),
    }
    if !q.severity.is_empty() {
        f.severity = errors.check("severity", q.severity.parse::<Severity>());
    }
    if !q.service_id.is_empty() {
        f.service_id = errors.check(
            "service_id",
            q.service_id
                .parse::<i64>()
                .map_err(|_| "Choose a service from the list"),
        );
    }
    if !q.team_id.is_empty() {
        f.team_id = errors.check(
            "team_id",
            q.team_id
                .parse::<i64>()
                .map_err(|_| "Choose a team from the list"),
        );
    }
    if !q.from.is_empty() {
        f.from = errors.check("from", local_day(&q.from, tz));
    }
    if !q.to.is_empty() {
        f.to = errors.check("to", local_day(&q.to, tz).map(|t| t + TimeDelta::days(1)));
    }
    if let (Some(from), Some(to)) = (f.from, f.to)
        && to <= from
    {
        errors.add("to", "The end date must not be before the start date");
    }
    if q.q.chars().count() > 200 {
        errors.add("q", "Search for at most 200 characters");
    } else if !q.q.trim().is_empty() {
        f.search = Some(q.q.clone());
    }
    f
}

pub async fn list(
    State(state): State<AppState>,
    _auth: Auth<Viewer>,
    shell: Shell,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, AppError> {
    let query = query.map(|q| q.0).unwrap_or_default();
    let mut errors = FieldErrors::default();
    let filter = parse_filter(&query, shell.tz(), &mut errors);
    let page = match query.page.as_str() {
        "" => 1,
        raw => errors
            .check(
                "page",
                raw.parse::<i64>()
                    .ok()
                    .filter(|p| (1..=100_000).contains(p))
                    .ok_or("Not a page number"),
            )
            .unwrap_or(1),
    };
    let services = state.store.services().await?;
    let teams = state.store.teams(500, None).await?.items;
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let (rows, counts) = if errors.is_empty() {
        let (mut rows, counts) = state
            .store
            .incident_list(&filter, PAGE_SIZE + 1, (page - 1) * PAGE_SIZE)
            .await?;
        let more = rows.len() as i64 > PAGE_SIZE;
        rows.truncate(PAGE_SIZE as usize);
        (Some((rows, more)), counts)
    } else {
        (None, StatusCounts::default())
    };
    let link = |p: i64| {
        let mut q = query.clone();
        q.page = p.to_string();
        format!("/incidents?{}", encode_query(&q))
    };
    let (rows, more) = rows.unwrap_or_default();
    let view = ListPage {
        now: state.store.now(),
        prev_link: (page > 1).then(|| link(page - 1)),
        next_link: more.then(|| link(page + 1)),
        shell,
        rows,
        counts,
        query,
        errors,
        services,
        teams,
        severities: Severity::ALL,
        page,
    };
    Ok(render_with_status(status, &view))
}

// ---------------------------------------------------------------- declaring

#[derive(Debug, Clone, Default, Deserialize)]
pub struct DeclareForm {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub severity: String,
    #[serde(default)]
    pub services: Vec<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub commander_id: String,
}

#[derive(Template)]
#[template(path = "incidents/new.html")]
struct DeclarePage {
    shell: Shell,
    form: DeclareForm,
    errors: FieldErrors,
    severities: &'static [Severity],
    services: Vec<Service>,
    users: Vec<User>,
}

impl DeclarePage {
    fn has_service(&self, id: &i64) -> bool {
        self.form.services.iter().any(|s| s == &id.to_string())
    }
}

pub async fn new_form(
    State(state): State<AppState>,
    auth: Auth<Responder>,
    shell: Shell,
) -> Result<Response, AppError> {
    let form = DeclareForm {
        commander_id: auth.user.id.to_string(),
        ..Default::default()
    };
    let page = DeclarePage {
        shell,
        form,
        errors: FieldErrors::default(),
        severities: Severity::ALL,
        services: state.store.services().await?,
        users: state.store.all_users().await?,
    };
    Ok(render_with_status(StatusCode::OK, &page))
}

/// Checks a declare form against the known services and users.
fn parse_declare(
    form: &DeclareForm,
    services: &[Service],
    users: &[User],
    errors: &mut FieldErrors,
) -> Option<NewIncident> {
    check_text(errors, "title", "Title", &form.title, true, MAX_TITLE);
    let severity = errors.check(
        "severity",
        form.severity
            .parse::<Severity>()
            .map_err(|_| "Choose a severity".to_owned()),
    );
    let mut service_ids = Vec::new();
    for raw in &form.services {
        match raw.parse::<i64>() {
            Ok(id) if services.iter().any(|s| s.id == id) => service_ids.push(id),
            _ => errors.add(
                "services",
                format!(
                    "\"{}\" is not a service",
                    raw.chars().take(20).collect::<String>()
                ),
            ),
        }
    }
    check_text(
        errors,
        "description",
        "Description",
        &form.description,
        false,
        MAX_TEXT,
    );
    let commander_id = match form.commander_id.trim() {
        "" => None,
        raw => match raw.parse::<i64>() {
            Ok(id) if users.iter().any(|u| u.id == id && !u.disabled) => Some(id),
            _ => {
                errors.add("commander_id", "Choose the commander from the list");
                None
            }
        },
    };
    if !errors.is_empty() {
        return None;
    }
    Some(NewIncident {
        title: form.title.trim().to_owned(),
        description: form.description.clone(),
        description_html: markdown::render(&form.description),
        severity: severity?,
        service_ids,
        commander_id,
    })
}

pub async fn declare(
    State(state): State<AppState>,
    auth: Auth<Responder>,
    shell: Shell,
    CsrfForm(form): CsrfForm<DeclareForm>,
) -> Result<Response, AppError> {
    let services = state.store.services().await?;
    let users = state.store.all_users().await?;
    let mut errors = FieldErrors::default();
    if let Some(new) = parse_declare(&form, &services, &users, &mut errors) {
        let incident = state.store.declare_incident(&new, &auth.audit()).await?;
        state.wake_engine();
        state.events.changed(incident.number);
        return Ok(redirect_with(
            &format!("/incidents/{}", incident.number),
            "success",
            format!("Incident #{} declared.", incident.number),
        ));
    }
    let page = DeclarePage {
        shell,
        form,
        errors,
        severities: Severity::ALL,
        services,
        users,
    };
    Ok(render_with_status(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

// ---------------------------------------------------------------- the incident page

/// A timeline entry ready to show.
pub struct EntryView {
    pub at: String,
    pub actor: String,
    pub kind: String,
    pub label: &'static str,
    /// Sanitized HTML for notes and updates (Markdown); `None` for system entries.
    pub html: Option<String>,
    pub text: String,
    pub phase: Option<String>,
}

fn entry_view(e: TimelineEntry, shell: &Shell) -> EntryView {
    let label = match e.kind.as_str() {
        "declared" => "Declared",
        "acknowledged" => "Acknowledged",
        "resolved" => "Resolved",
        "reopened" => "Reopened",
        "severity_changed" => "Severity",
        "status_update" => "Update",
        "note" => "Note",
        "role_assigned" => "Role",
        "responder_added" => "Responder",
        "edited" => "Edited",
        "escalation" => "Escalation",
        "notification" => "Notification",
        "breach" => "Target missed",
        "alert" => "Alert",
        _ => "Event",
    };
    let html = matches!(e.kind.as_str(), "note" | "status_update").then(|| {
        // Rendered and sanitized when written; rows without the stored HTML render now.
        if e.body_html.is_empty() {
            markdown::render(&e.body)
        } else {
            e.body_html.clone()
        }
    });
    EntryView {
        at: shell.time(&e.at),
        actor: e.actor,
        kind: e.kind,
        label,
        html,
        text: e.body,
        phase: e.phase,
    }
}

/// What the page's forms show: blank, or what was typed when a post was refused.
#[derive(Debug, Clone, Default)]
pub struct Typed {
    pub title: String,
    pub description: String,
    pub version: i64,
    pub update_phase: String,
    pub update_message: String,
    pub note: String,
    pub severity: String,
    pub reason: String,
}

impl Typed {
    /// The forms filled from the incident as it is now, nothing typed yet.
    fn current(i: heliograph_store::incidents::Incident) -> Self {
        Typed {
            title: i.title,
            description: i.description,
            version: i.version,
            severity: i.severity.to_string(),
            ..Default::default()
        }
    }
}

#[derive(Template)]
#[template(path = "incidents/show.html")]
struct IncidentPage {
    shell: Shell,
    detail: IncidentDetail,
    description_html: String,
    timeline: Vec<EntryView>,
    updates_only: bool,
    age: String,
    users: Vec<User>,
    severities: &'static [Severity],
    phases: &'static [Phase],
    roles: &'static [IncidentRole],
    typed: Typed,
    errors: FieldErrors,
    conflict: Option<String>,
    notifications: Vec<NotificationRow>,
    breaches: Vec<String>,
    /// The alerts that opened or joined this incident, with their last-seen times.
    alerts: Vec<(heliograph_store::alerts::Alert, String)>,
}

/// One notification on the incident page.
struct NotificationRow {
    who: String,
    channel: String,
    address: String,
    level: String,
    state: String,
    at: String,
    attempts: i64,
    error: String,
}

impl IncidentPage {
    fn holder_name(&self, role: &IncidentRole) -> String {
        let u = match role {
            IncidentRole::Commander => &self.detail.commander,
            IncidentRole::CommunicationsLead => &self.detail.comms_lead,
            IncidentRole::Scribe => &self.detail.scribe,
        };
        u.as_ref()
            .map(|u| u.name.to_string())
            .unwrap_or_else(|| "nobody".into())
    }
    fn is_open(&self) -> bool {
        self.detail.incident.status != IncidentStatus::Resolved
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct ShowQuery {
    #[serde(default)]
    view: String,
}

fn parse_number(raw: &str) -> Result<i64, AppError> {
    raw.trim_start_matches('#')
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or(AppError::NotFound)
}

async fn incident_page(
    state: &AppState,
    shell: Shell,
    number: i64,
    updates_only: bool,
    typed: impl FnOnce(Typed) -> Typed,
    errors: FieldErrors,
    conflict: Option<String>,
) -> Result<IncidentPage, AppError> {
    let detail = state.store.incident_detail(number).await?;
    let timeline = state
        .store
        .timeline(detail.incident.id, updates_only)
        .await?
        .into_iter()
        .map(|e| entry_view(e, &shell))
        .collect();
    let i = &detail.incident;
    let end = if i.status == IncidentStatus::Resolved {
        i.resolved_at.unwrap_or_else(|| state.store.now())
    } else {
        state.store.now()
    };
    let typed = typed(Typed::current(i.clone()));
    let users = state.store.all_users().await?;
    let notifications = state
        .store
        .incident_notifications(i.id)
        .await?
        .into_iter()
        .map(|n| NotificationRow {
            who: n
                .user_id
                .and_then(|id| users.iter().find(|u| u.id == id))
                .map(|u| u.name.to_string())
                .unwrap_or_else(|| "—".into()),
            address: shown_address(&n.channel, &n.address),
            error: n
                .last_error
                .unwrap_or_default()
                .replace(&n.address, &shown_address(&n.channel, &n.address)),
            channel: n.channel,
            level: match (n.level, n.repeat_no) {
                (Some(l), Some(r)) if r > 0 => format!("{} (repeat {r})", l + 1),
                (Some(l), _) => (l + 1).to_string(),
                _ => "—".into(),
            },
            at: shell.time(&n.sent_at.unwrap_or(n.due_at)),
            state: n.state,
            attempts: n.attempts,
        })
        .collect();
    let breaches = state
        .store
        .incident_breaches(i.id)
        .await?
        .into_iter()
        .map(|(service, kind, minutes, at)| {
            format!(
                "{service}: not {} within {minutes} min (missed at {})",
                if kind == "acknowledge" {
                    "acknowledged"
                } else {
                    "resolved"
                },
                shell.time(&at)
            )
        })
        .collect();
    let alerts = state
        .store
        .incident_alerts(i.id)
        .await?
        .into_iter()
        .map(|a| {
            let seen = shell.time(&a.last_seen_at);
            (a, seen)
        })
        .collect();
    Ok(IncidentPage {
        alerts,
        notifications,
        breaches,
        description_html: i.description_html.clone(),
        age: age(i.triggered_at, end),
        users: users.into_iter().filter(|u| !u.disabled).collect(),
        severities: Severity::ALL,
        phases: Phase::ALL,
        roles: IncidentRole::ALL,
        shell,
        detail,
        timeline,
        updates_only,
        typed,
        errors,
        conflict,
    })
}

pub async fn show(
    State(state): State<AppState>,
    _auth: Auth<Viewer>,
    shell: Shell,
    Path(number): Path<String>,
    query: Result<Query<ShowQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, AppError> {
    let number = parse_number(&number)?;
    let updates_only = query.map(|q| q.0.view == "updates").unwrap_or(false);
    Ok(render_with_status(
        StatusCode::OK,
        &incident_page(
            &state,
            shell,
            number,
            updates_only,
            |t| t,
            FieldErrors::default(),
            None,
        )
        .await?,
    ))
}

#[derive(Deserialize)]
pub struct Empty {}

/// After a change: back to the incident, live-update other browsers.
fn done(state: &AppState, number: i64, message: impl Into<String>) -> Response {
    state.events.changed(number);
    redirect_with(&format!("/incidents/{number}"), "success", message)
}

/// A transition that someone else already made is not an error of the user's.
fn transition(
    state: &AppState,
    number: i64,
    result: Result<heliograph_store::incidents::Incident, StoreError>,
    message: &str,
) -> Result<Response, AppError> {
    match result {
        Ok(_) => Ok(done(state, number, message)),
        Err(StoreError::Conflict(m)) => {
            Ok(redirect_with(&format!("/incidents/{number}"), "error", m))
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn acknowledge(
    State(state): State<AppState>,
    auth: Auth<Responder>,
    Path(number): Path<String>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, AppError> {
    let number = parse_number(&number)?;
    let result = state
        .store
        .acknowledge_incident(number, &auth.audit())
        .await;
    transition(&state, number, result, "Acknowledged.")
}

pub async fn resolve(
    State(state): State<AppState>,
    auth: Auth<Responder>,
    Path(number): Path<String>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, AppError> {
    let number = parse_number(&number)?;
    let result = state.store.resolve_incident(number, &auth.audit()).await;
    transition(&state, number, result, "Resolved.")
}

pub async fn reopen(
    State(state): State<AppState>,
    auth: Auth<Responder>,
    Path(number): Path<String>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, AppError> {
    let number = parse_number(&number)?;
    let result = state.store.reopen_incident(number, &auth.audit()).await;
    state.wake_engine();
    transition(&state, number, result, "Reopened.")
}

#[derive(Deserialize)]
pub struct SeverityForm {
    #[serde(default)]
    severity: String,
    #[serde(default)]
    reason: String,
}

pub async fn change_severity(
    State(state): State<AppState>,
    auth: Auth<Responder>,
    shell: Shell,
    Path(number): Path<String>,
    CsrfForm(form): CsrfForm<SeverityForm>,
) -> Result<Response, AppError> {
    let number = parse_number(&number)?;
    let mut errors = FieldErrors::default();
    let severity = errors.check("severity", form.severity.parse::<Severity>());
    check_text(&mut errors, "reason", "A reason", &form.reason, true, 2000);
    if let (Some(severity), true) = (severity, errors.is_empty()) {
        match state
            .store
            .change_severity(number, severity, form.reason.trim(), &auth.audit())
            .await
        {
            Ok(_) => return Ok(done(&state, number, format!("Severity is now {severity}."))),
            Err(StoreError::Conflict(m)) => errors.add("severity", m),
            Err(e) => return Err(e.into()),
        }
    }
    let typed = |t: Typed| Typed {
        severity: form.severity,
        reason: form.reason,
        ..t
    };
    Ok(render_with_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &incident_page(&state, shell, number, false, typed, errors, None).await?,
    ))
}

#[derive(Deserialize)]
pub struct RoleForm {
    #[serde(default)]
    role: String,
    #[serde(default)]
    user_id: String,
}

pub async fn assign_role(
    State(state): State<AppState>,
    auth: Auth<Responder>,
    Path(number): Path<String>,
    CsrfForm(form): CsrfForm<RoleForm>,
) -> Result<Response, AppError> {
    let number = parse_number(&number)?;
    let role: IncidentRole = form
        .role
        .parse()
        .map_err(|e: heliograph_domain::InvalidValue| AppError::BadRequest(e.0))?;
    let user =
        match form.user_id.trim() {
            "" => None,
            raw => {
                let id = raw
                    .parse::<i64>()
                    .map_err(|_| AppError::BadRequest("Choose a person from the list.".into()))?;
                Some(
                    state.store.user(id).await.map_err(|_| {
                        AppError::BadRequest("Choose a person from the list.".into())
                    })?,
                )
            }
        };
    state
        .store
        .assign_role(number, role, user.as_ref(), &auth.audit())
        .await?;
    Ok(done(&state, number, format!("{} updated.", role.label())))
}

#[derive(Deserialize)]
pub struct ResponderForm {
    #[serde(default)]
    user_id: String,
}

pub async fn add_responder(
    State(state): State<AppState>,
    auth: Auth<Responder>,
    Path(number): Path<String>,
    CsrfForm(form): CsrfForm<ResponderForm>,
) -> Result<Response, AppError> {
    let number = parse_number(&number)?;
    let id = form
        .user_id
        .parse::<i64>()
        .map_err(|_| AppError::BadRequest("Choose a person from the list.".into()))?;
    let user = state
        .store
        .user(id)
        .await
        .map_err(|_| AppError::BadRequest("Choose a person from the list.".into()))?;
    match state
        .store
        .add_responder(number, &user, &auth.audit())
        .await
    {
        Ok(()) => Ok(done(
            &state,
            number,
            format!("{} added as a responder.", user.name),
        )),
        Err(StoreError::Conflict(m)) => {
            Ok(redirect_with(&format!("/incidents/{number}"), "error", m))
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub struct EditForm {
    #[serde(default)]
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    version: String,
}

pub async fn edit(
    State(state): State<AppState>,
    auth: Auth<Responder>,
    shell: Shell,
    Path(number): Path<String>,
    CsrfForm(form): CsrfForm<EditForm>,
) -> Result<Response, AppError> {
    let number = parse_number(&number)?;
    let mut errors = FieldErrors::default();
    check_text(&mut errors, "title", "Title", &form.title, true, MAX_TITLE);
    check_text(
        &mut errors,
        "description",
        "Description",
        &form.description,
        false,
        MAX_TEXT,
    );
    let version = errors.check(
        "version",
        form.version
            .parse::<i64>()
            .map_err(|_| "The form is missing its version; reload the page"),
    );
    let mut conflict = None;
    let mut status = StatusCode::UNPROCESSABLE_ENTITY;
    if let (Some(version), true) = (version, errors.is_empty()) {
        match state
            .store
            .edit_incident(
                number,
                form.title.trim(),
                &form.description,
                &markdown::render(&form.description),
                version,
                &auth.audit(),
            )
            .await
        {
            Ok(_) => return Ok(done(&state, number, "Title and description saved.")),
            Err(StoreError::Conflict(m)) => {
                conflict = Some(m);
                status = StatusCode::CONFLICT;
            }
            Err(e) => return Err(e.into()),
        }
    }
    // Keep what the user typed; the version stays theirs so a second save is a deliberate choice
    // made after reading the current text above.
    let typed = |t: Typed| Typed {
        title: form.title,
        description: form.description,
        ..t
    };
    Ok(render_with_status(
        status,
        &incident_page(&state, shell, number, false, typed, errors, conflict).await?,
    ))
}

#[derive(Deserialize)]
pub struct UpdateForm {
    #[serde(default)]
    phase: String,
    #[serde(default)]
    message: String,
}

pub async fn post_update(
    State(state): State<AppState>,
    auth: Auth<Responder>,
    shell: Shell,
    Path(number): Path<String>,
    CsrfForm(form): CsrfForm<UpdateForm>,
) -> Result<Response, AppError> {
    let number = parse_number(&number)?;
    let mut errors = FieldErrors::default();
    let phase = errors.check("update_phase", form.phase.parse::<Phase>());
    check_text(
        &mut errors,
        "update_message",
        "The update",
        &form.message,
        true,
        MAX_TEXT,
    );
    if let (Some(phase), true) = (phase, errors.is_empty()) {
        state
            .store
            .post_update(
                number,
                phase,
                form.message.trim(),
                &markdown::render(form.message.trim()),
                &auth.audit(),
            )
            .await?;
        return Ok(done(&state, number, "Update posted."));
    }
    let typed = |t: Typed| Typed {
        update_phase: form.phase,
        update_message: form.message,
        ..t
    };
    Ok(render_with_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &incident_page(&state, shell, number, false, typed, errors, None).await?,
    ))
}

#[derive(Deserialize)]
pub struct NoteForm {
    #[serde(default)]
    body: String,
}

pub async fn add_note(
    State(state): State<AppState>,
    auth: Auth<Responder>,
    shell: Shell,
    Path(number): Path<String>,
    CsrfForm(form): CsrfForm<NoteForm>,
) -> Result<Response, AppError> {
    let number = parse_number(&number)?;
    let mut errors = FieldErrors::default();
    check_text(&mut errors, "note", "The note", &form.body, true, MAX_TEXT);
    if errors.is_empty() {
        state
            .store
            .add_note(
                number,
                form.body.trim(),
                &markdown::render(form.body.trim()),
                &auth.audit(),
            )
            .await?;
        return Ok(done(&state, number, "Note added."));
    }
    let typed = |t: Typed| Typed {
        note: form.body,
        ..t
    };
    Ok(render_with_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &incident_page(&state, shell, number, false, typed, errors, None).await?,
    ))
}

// ---------------------------------------------------------------- live updates

fn change_stream(
    state: &AppState,
    only: Option<i64>,
) -> impl Stream<Item = Result<Event, Infallible>> + use<> {
    let events = state.events.clone();
    let closing = {
        let events = events.clone();
        async move { events.closing().await }
    };
    BroadcastStream::new(events.subscribe())
        .filter_map(move |changed| async move {
            match changed {
                Ok(number) if only.is_none_or(|n| n == number) => Some(Ok(Event::default()
                    .event("changed")
                    .data(number.to_string()))),
                Ok(_) => None,
                // Missed some changes: tell the page to refresh anyway.
                Err(_) => Some(Ok(Event::default().event("changed").data("*"))),
            }
        })
        .take_until(closing)
}

/// `GET /incidents/events`: every incident change, for the list.
pub async fn list_events(State(state): State<AppState>, _auth: Auth<Viewer>) -> impl IntoResponse {
    Sse::new(change_stream(&state, None)).keep_alive(KeepAlive::default())
}

/// `GET /incidents/{number}/events`: changes of one incident, for its page.
pub async fn incident_events(
    State(state): State<AppState>,
    _auth: Auth<Viewer>,
    Path(number): Path<String>,
) -> Result<impl IntoResponse, AppError> {
    let number = parse_number(&number)?;
    Ok(Sse::new(change_stream(&state, Some(number))).keep_alive(KeepAlive::default()))
}

/// A notification's address as the incident page shows it: email addresses whole, webhook
/// URLs by host only, because their path is the secret that lets anyone post (Slack's
/// `hooks.slack.com/services/T…/B…/…`) and everyone who can read the incident sees this page.
fn shown_address(channel: &str, address: &str) -> String {
    if channel == "email" {
        return address.to_owned();
    }
    match url::Url::parse(address) {
        Ok(u) => format!("{}://{}/…", u.scheme(), u.host_str().unwrap_or("?")),
        Err(_) => "(webhook)".into(),
    }
}

#[cfg(test)]
mod address_tests {
    use super::shown_address;

    #[test]
    fn webhook_urls_are_shown_by_host_only() {
        assert_eq!(
            shown_address("slack", "https://hooks.slack.com/services/T0/B0/secret"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            shown_address("webhook", "http://127.0.0.1:9000/hook?token=x"),
            "http://127.0.0.1/…"
        );
        assert_eq!(shown_address("email", "ana@example.com"), "ana@example.com");
        assert_eq!(shown_address("webhook", "not a url"), "(webhook)");
    }
}
