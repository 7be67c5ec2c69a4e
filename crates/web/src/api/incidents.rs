//! `/api/v1/incidents`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use heliograph_domain::{IncidentStatus, Severity};
use heliograph_store::StoreError;
use heliograph_store::incidents::{Incident, IncidentFilter, NewIncident, TimelineEntry};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiAuth, ApiError, ApiJson, ApiQuery, ErrorBody, Fields};
use crate::AppState;
use crate::auth::{Responder, Viewer};

/// A person holding a role.
#[derive(Serialize, ToSchema)]
pub struct PersonRef {
    pub id: i64,
    pub name: String,
}

/// An incident.
#[derive(Serialize, ToSchema)]
pub struct IncidentOut {
    pub number: i64,
    pub title: String,
    pub description: String,
    /// SEV1 … SEV4
    pub severity: String,
    /// triggered, acknowledged or resolved
    pub status: String,
    /// investigating, identified, monitoring or resolved, from the last status update
    pub phase: Option<String>,
    /// The first affected service.
    pub service_id: Option<i64>,
    pub service_ids: Vec<i64>,
    pub commander: Option<PersonRef>,
    pub triggered_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
}

fn out(i: Incident, service_ids: Vec<i64>, commander: Option<String>) -> IncidentOut {
    IncidentOut {
        commander: i
            .commander_id
            .zip(commander)
            .map(|(id, name)| PersonRef { id, name }),
        service_id: service_ids.first().copied(),
        service_ids,
        number: i.number,
        title: i.title,
        description: i.description,
        severity: i.severity.to_string(),
        status: i.status.to_string(),
        phase: i.phase,
        triggered_at: i.triggered_at,
        acknowledged_at: i.acknowledged_at,
        resolved_at: i.resolved_at,
        version: i.version,
        updated_at: i.updated_at,
    }
}

async fn full(state: &AppState, number: i64) -> Result<IncidentOut, ApiError> {
    let d = state.store.incident_detail(number).await?;
    let ids = d.services.iter().map(|s| s.id).collect();
    Ok(out(
        d.incident,
        ids,
        d.commander.map(|u| u.name.to_string()),
    ))
}

/// A page of incidents.
#[derive(Serialize, ToSchema)]
pub struct IncidentList {
    pub incidents: Vec<IncidentOut>,
    pub next_cursor: Option<i64>,
}

/// Filters and pages of the list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct IncidentQuery {
    /// triggered, acknowledged or resolved
    pub status: Option<String>,
    /// SEV1 … SEV4
    pub severity: Option<String>,
    pub service_id: Option<i64>,
    /// 1–200, default 50
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<i64>,
}

/// List incidents, newest first.
#[utoipa::path(get, path = "/api/v1/incidents", tag = "incidents", params(IncidentQuery), responses((status = 200, body = IncidentList), (status = 400, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    _auth: ApiAuth<Viewer>,
    ApiQuery(q): ApiQuery<IncidentQuery>,
) -> Result<Json<IncidentList>, ApiError> {
    let mut fields = Fields::default();
    let filter = IncidentFilter {
        status: q
            .status
            .as_deref()
            .and_then(|s| fields.check("status", s.parse::<IncidentStatus>())),
        severity: q
            .severity
            .as_deref()
            .and_then(|s| fields.check("severity", s.parse::<Severity>())),
        service_id: q.service_id,
        ..Default::default()
    };
    let limit = match q.limit {
        None => 50,
        Some(n) if (1..=200).contains(&n) => n,
        Some(_) => {
            fields.add("limit", "limit must be between 1 and 200");
            50
        }
    };
    if !fields.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            fields.message_text(),
        ));
    }
    let page = state
        .store
        .incidents_newest(&filter, limit, q.cursor)
        .await?;
    let (lo, hi) = page.items.iter().fold((i64::MAX, i64::MIN), |(lo, hi), r| {
        (lo.min(r.incident.id), hi.max(r.incident.id))
    });
    let pairs = if page.items.is_empty() {
        Vec::new()
    } else {
        state.store.incident_service_ids(lo, hi).await?
    };
    let incidents = page
        .items
        .into_iter()
        .map(|r| {
            let ids = pairs
                .iter()
                .filter(|(i, _)| *i == r.incident.id)
                .map(|(_, s)| *s)
                .collect();
            out(r.incident, ids, r.commander_name)
        })
        .collect();
    Ok(Json(IncidentList {
        incidents,
        next_cursor: page.next_cursor,
    }))
}

/// An incident to declare.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeclareBody {
    pub title: String,
    /// SEV1 … SEV4
    pub severity: String,
    pub service_id: Option<i64>,
    #[serde(default)]
    pub service_ids: Vec<i64>,
    #[serde(default)]
    pub description: String,
    /// Defaults to the caller.
    pub commander_id: Option<i64>,
}

/// Declare an incident (responder).
#[utoipa::path(post, path = "/api/v1/incidents", tag = "incidents", request_body = DeclareBody,
    responses((status = 201, body = IncidentOut), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn declare(
    State(state): State<AppState>,
    auth: ApiAuth<Responder>,
    ApiJson(body): ApiJson<DeclareBody>,
) -> Result<(StatusCode, Json<IncidentOut>), ApiError> {
    let mut fields = Fields::default();
    let title = body.title.trim();
    if title.is_empty() {
        fields.add("title", "Title is required");
    } else if title.chars().count() > 200 {
        fields.add("title", "Title must be at most 200 characters");
    }
    if body.description.chars().count() > 100_000 {
        fields.add(
            "description",
            "Description must be at most 100000 characters",
        );
    }
    let severity = fields.check("severity", body.severity.parse::<Severity>());
    let mut service_ids: Vec<i64> = body
        .service_id
        .into_iter()
        .chain(body.service_ids.iter().copied())
        .collect();
    service_ids.dedup();
    let commander_id = body.commander_id.unwrap_or(auth.user.id);
    let commander = if commander_id == auth.user.id {
        Some(auth.user.name.to_string())
    } else {
        match state.store.user(commander_id).await {
            Ok(u) => Some(u.name.to_string()),
            Err(_) => {
                fields.add(
                    "commander_id",
                    format!("user {commander_id} does not exist"),
                );
                None
            }
        }
    };
    // The services by name, as an incident lists them. One service on an otherwise valid
    // request is not read here: the declaration reads it anyway and refuses a service that
    // does not exist (answered below as this field's error), which in a burst of triggers
    // saves a read per incident.
    let mut services = Vec::with_capacity(service_ids.len());
    let checked_by_declaration = service_ids.len() == 1 && fields.is_empty();
    if checked_by_declaration {
        services.push((String::new(), service_ids[0]));
    }
    for id in service_ids.iter().filter(|_| !checked_by_declaration) {
        match state.store.service(*id).await {
            Ok(s) => services.push((s.name, s.id)),
            Err(StoreError::NotFound) => {
                fields.add("service_id", format!("service {id} does not exist"))
            }
            Err(e) => return Err(e.into()),
        }
    }
    services.sort();
    services.dedup();
    fields.finish()?;
    let severity = severity.ok_or_else(|| ApiError::bad_request("invalid severity"))?;
    let new = NewIncident {
        title: title.to_owned(),
        description_html: crate::markdown::render(&body.description),
        description: body.description,
        severity,
        service_ids,
        commander_id: Some(commander_id),
    };
    let incident = match state.store.declare_incident(&new, &auth.audit()).await {
        Ok(incident) => incident,
        Err(StoreError::Conflict(why)) if checked_by_declaration && why.starts_with("service ") => {
            return Err(ApiError::validation(
                [("service_id".to_owned(), why)].into_iter().collect(),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    state.wake_engine();
    state.events.changed(incident.number);
    // The declaration returns the row as stored; what else the answer shows was just read.
    let service_ids = services.into_iter().map(|(_, id)| id).collect();
    Ok((
        StatusCode::CREATED,
        Json(out(incident, service_ids, commander)),
    ))
}

fn number(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
        ApiError::not_found(format!(
            "no incident {:?}",
            raw.chars().take(20).collect::<String>()
        ))
    })
}

/// One incident.
#[utoipa::path(get, path = "/api/v1/incidents/{number}", tag = "incidents", params(("number" = i64, Path)), responses((status = 200, body = IncidentOut), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    _auth: ApiAuth<Viewer>,
    Path(n): Path<String>,
) -> Result<Json<IncidentOut>, ApiError> {
    Ok(Json(full(&state, number(&n)?).await?))
}

/// Acknowledge a triggered incident (responder). 409 when it is not triggered.
#[utoipa::path(post, path = "/api/v1/incidents/{number}/acknowledge", tag = "incidents", params(("number" = i64, Path)),
    responses((status = 200, body = IncidentOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn acknowledge(
    State(state): State<AppState>,
    auth: ApiAuth<Responder>,
    Path(n): Path<String>,
) -> Result<Json<IncidentOut>, ApiError> {
    let n = number(&n)?;
    state.store.acknowledge_incident(n, &auth.audit()).await?;
    state.events.changed(n);
    Ok(Json(full(&state, n).await?))
}

/// Resolve an open incident (responder). 409 when already resolved.
#[utoipa::path(post, path = "/api/v1/incidents/{number}/resolve", tag = "incidents", params(("number" = i64, Path)),
    responses((status = 200, body = IncidentOut), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn resolve(
    State(state): State<AppState>,
    auth: ApiAuth<Responder>,
    Path(n): Path<String>,
) -> Result<Json<IncidentOut>, ApiError> {
    let n = number(&n)?;
    state.store.resolve_incident(n, &auth.audit()).await?;
    state.events.changed(n);
    Ok(Json(full(&state, n).await?))
}

/// A note to add.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    /// Markdown.
    pub body: String,
}

/// A timeline entry.
#[derive(Serialize, ToSchema)]
pub struct EntryOut {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub kind: String,
    pub body: String,
}

impl From<TimelineEntry> for EntryOut {
    fn from(e: TimelineEntry) -> Self {
        EntryOut {
            id: e.id,
            at: e.at,
            actor: e.actor,
            kind: e.kind,
            body: e.body,
        }
    }
}

/// Add a note to the timeline (responder).
#[utoipa::path(post, path = "/api/v1/incidents/{number}/notes", tag = "incidents", params(("number" = i64, Path)), request_body = NoteBody,
    responses((status = 201, body = EntryOut), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn add_note(
    State(state): State<AppState>,
    auth: ApiAuth<Responder>,
    Path(n): Path<String>,
    ApiJson(body): ApiJson<NoteBody>,
) -> Result<(StatusCode, Json<EntryOut>), ApiError> {
    let n = number(&n)?;
    let mut fields = Fields::default();
    if body.body.trim().is_empty() {
        fields.add("body", "The note is empty");
    } else if body.body.chars().count() > 100_000 {
        fields.add("body", "The note must be at most 100000 characters");
    }
    fields.finish()?;
    let incident = state
        .store
        .add_note(
            n,
            body.body.trim(),
            &crate::markdown::render(body.body.trim()),
            &auth.audit(),
        )
        .await?;
    state.events.changed(n);
    let entry = state
        .store
        .timeline(incident.id, false)
        .await?
        .into_iter()
        .next_back()
        .ok_or_else(|| ApiError::not_found("no entry"))?;
    Ok((StatusCode::CREATED, Json(entry.into())))
}
