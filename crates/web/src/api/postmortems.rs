//! `/api/v1/postmortems`: the list (viewers see published postmortems only, responders every
//! state), one postmortem with its sections, timeline, key figures, reviewers, history and
//! action items, and `PATCH` for the document guarded by its version.
//!
//! A `PATCH` names the `version` it started from. A stale version changes nothing and answers
//! 409 `version_conflict` with `current_version`, so the client keeps its own text and can
//! merge; a published postmortem answers 409 `conflict`. Bodies are read with [`PathJson`], so
//! shape errors and checks alike come back as 422 keyed by field path (`sections.summary`,
//! `timeline[2].at`).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use heliograph_domain::{Role, Severity};
use heliograph_store::StoreError;
use heliograph_store::postmortems::{
    ActionItem, HistoryEntry, KeyFigures, PmTimelineEntry, PostmortemDetail, PostmortemEdit,
    PostmortemFilter, PostmortemStatus, PostmortemSummary, Reviewer, SECTIONS, Saved,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::schedules::PathJson;
use super::{ApiAuth, ApiError, ApiQuery, ErrorBody, PageQuery, path_id};
use crate::AppState;
use crate::auth::{Responder, Viewer};

const MAX_TITLE: usize = 200;
const MAX_TEXT: usize = 100_000;
const MAX_ENTRIES: usize = 2_000;

// ---------------------------------------------------------------------------------------------
// Answers

/// A person named by a postmortem.
#[derive(Serialize, ToSchema)]
pub struct PersonRef {
    pub id: i64,
    pub name: String,
}

/// A postmortem in the list.
#[derive(Serialize, ToSchema)]
pub struct PostmortemItem {
    pub id: i64,
    pub incident_number: i64,
    /// `draft`, `in_review` or `published`.
    #[schema(example = "published")]
    pub status: String,
    pub title: String,
    /// The incident's severity, `SEV1` … `SEV4`.
    pub severity: String,
    pub owner: Option<PersonRef>,
    /// When the incident began.
    pub incident_triggered_at: DateTime<Utc>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub published_at: Option<DateTime<Utc>>,
}

impl From<PostmortemSummary> for PostmortemItem {
    fn from(p: PostmortemSummary) -> Self {
        PostmortemItem {
            id: p.id,
            incident_number: p.incident_number,
            status: p.status.as_str().to_owned(),
            title: p.title,
            severity: p.severity.as_str().to_owned(),
            owner: p
                .owner_id
                .zip(p.owner_name)
                .map(|(id, name)| PersonRef { id, name }),
            incident_triggered_at: p.triggered_at,
            version: p.version,
            created_at: p.created_at,
            updated_at: p.updated_at,
            published_at: p.published_at,
        }
    }
}

/// A page of postmortems, newest first.
#[derive(Serialize, ToSchema)]
pub struct PostmortemList {
    pub postmortems: Vec<PostmortemItem>,
    pub next_cursor: Option<i64>,
}

/// The incident a postmortem reviews.
#[derive(Serialize, ToSchema)]
pub struct IncidentRef {
    pub number: i64,
    pub title: String,
    pub severity: String,
    /// `triggered`, `acknowledged` or `resolved`.
    pub status: String,
}

/// A service of the incident.
#[derive(Serialize, ToSchema)]
pub struct ServiceRef {
    pub id: i64,
    pub name: String,
    /// The service kind, e.g. `llm-inference`; AI kinds call for the AI appendix.
    pub kind: String,
}

/// The figures shown at the top of a postmortem, from its incident.
#[derive(Serialize, ToSchema)]
pub struct KeyFiguresOut {
    pub severity: String,
    pub triggered_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// From triggered to acknowledged.
    pub time_to_acknowledge_seconds: Option<i64>,
    /// From triggered to resolved: the incident's duration.
    pub time_to_resolve_seconds: Option<i64>,
}

impl From<KeyFigures> for KeyFiguresOut {
    fn from(f: KeyFigures) -> Self {
        KeyFiguresOut {
            severity: f.severity.as_str().to_owned(),
            triggered_at: f.triggered_at,
            acknowledged_at: f.acknowledged_at,
            resolved_at: f.resolved_at,
            time_to_acknowledge_seconds: f.time_to_acknowledge.map(|d| d.num_seconds()),
            time_to_resolve_seconds: f.time_to_resolve.map(|d| d.num_seconds()),
        }
    }
}

/// One entry of the postmortem's timeline.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct TimelineEntryOut {
    pub at: DateTime<Utc>,
    pub text: String,
    /// `false`: dropped from the document (kept for reference).
    pub kept: bool,
}

impl From<PmTimelineEntry> for TimelineEntryOut {
    fn from(e: PmTimelineEntry) -> Self {
        TimelineEntryOut {
            at: e.at,
            text: e.text,
            kept: e.kept,
        }
    }
}

/// A named reviewer and their decision.
#[derive(Serialize, ToSchema)]
pub struct ReviewerOut {
    pub user_id: i64,
    pub name: String,
    pub email: String,
    /// `pending`, `approved` or `changes_requested`.
    pub decision: String,
    pub comment: String,
    pub decided_at: Option<DateTime<Utc>>,
}

impl From<Reviewer> for ReviewerOut {
    fn from(r: Reviewer) -> Self {
        ReviewerOut {
            user_id: r.user_id,
            name: r.name,
            email: r.email,
            decision: r.decision.as_str().to_owned(),
            comment: r.comment,
            decided_at: r.decided_at,
        }
    }
}

/// One step of the postmortem's history.
#[derive(Serialize, ToSchema)]
pub struct HistoryOut {
    pub at: DateTime<Utc>,
    pub actor: String,
    /// `created`, `edited`, `submitted`, `approved`, `changes_requested`, `published` or
    /// `action_item`.
    pub action: String,
    pub comment: String,
}

impl From<HistoryEntry> for HistoryOut {
    fn from(h: HistoryEntry) -> Self {
        HistoryOut {
            at: h.at,
            actor: h.actor,
            action: h.action,
            comment: h.comment,
        }
    }
}

/// An action item.
#[derive(Serialize, ToSchema)]
pub struct ActionItemOut {
    pub id: i64,
    pub title: String,
    pub owner: Option<PersonRef>,
    /// `YYYY-MM-DD`.
    #[schema(value_type = Option<String>, example = "2026-04-30")]
    pub due_date: Option<NaiveDate>,
    /// `high`, `medium` or `low`.
    pub priority: String,
    /// `open`, `in_progress`, `done` or `wont_do`.
    pub status: String,
    pub tracker_url: Option<String>,
    /// Open or in progress, and due before today in the caller's time zone.
    pub overdue: bool,
    /// When the owner was emailed that it is overdue.
    pub reminded_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn item_out(i: ActionItem, today: NaiveDate) -> ActionItemOut {
    ActionItemOut {
        overdue: i.is_overdue(today),
        id: i.id,
        owner: i.owner_id.map(|id| PersonRef {
            id,
            name: i.owner_name.clone().unwrap_or_else(|| format!("user {id}")),
        }),
        title: i.title,
        due_date: i.due_date,
        priority: i.priority.as_str().to_owned(),
        status: i.status.as_str().to_owned(),
        tracker_url: i.tracker_url,
        reminded_at: i.reminded_at,
        created_at: i.created_at,
        updated_at: i.updated_at,
    }
}

/// A postmortem with everything its reading view shows.
#[derive(Serialize, ToSchema)]
pub struct PostmortemOut {
    pub id: i64,
    pub incident_number: i64,
    /// `draft`, `in_review` or `published`.
    pub status: String,
    pub title: String,
    pub owner: Option<PersonRef>,
    /// Send it back on PATCH.
    pub version: i64,
    pub incident: IncidentRef,
    pub services: Vec<ServiceRef>,
    pub key_figures: KeyFiguresOut,
    /// Markdown by section key: `summary`, `customer_impact`, `root_cause`, `detection`,
    /// `resolution`, `went_well`, `went_badly`, `lucky`, `lessons`, and the AI appendix
    /// `ai_model_version`, `ai_eval_before`, `ai_eval_after`. Every key is present.
    #[schema(value_type = BTreeMap<String, String>)]
    pub sections: BTreeMap<&'static str, String>,
    /// Oldest first, dropped entries included (`kept: false`).
    pub timeline: Vec<TimelineEntryOut>,
    pub reviewers: Vec<ReviewerOut>,
    pub history: Vec<HistoryOut>,
    pub action_items: Vec<ActionItemOut>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub published_at: Option<DateTime<Utc>>,
}

fn detail_out(d: PostmortemDetail, today: NaiveDate) -> PostmortemOut {
    let key_figures = d.figures().into();
    let p = d.postmortem;
    PostmortemOut {
        id: p.id,
        incident_number: d.incident.number,
        status: p.status.as_str().to_owned(),
        owner: d.owner.map(|u| PersonRef {
            id: u.id,
            name: u.name.to_string(),
        }),
        version: p.version,
        incident: IncidentRef {
            number: d.incident.number,
            title: d.incident.title,
            severity: d.incident.severity.as_str().to_owned(),
            status: d.incident.status.as_str().to_owned(),
        },
        services: d
            .services
            .into_iter()
            .map(|s| ServiceRef {
                id: s.id,
                name: s.name,
                kind: s.kind.to_string(),
            })
            .collect(),
        key_figures,
        sections: SECTIONS
            .iter()
            .map(|(key, _)| (*key, p.sections.get(key).to_owned()))
            .collect(),
        timeline: p.timeline.into_iter().map(Into::into).collect(),
        reviewers: d.reviewers.into_iter().map(Into::into).collect(),
        history: d.history.into_iter().map(Into::into).collect(),
        action_items: d
            .action_items
            .into_iter()
            .map(|i| item_out(i, today))
            .collect(),
        title: p.title,
        created_at: p.created_at,
        updated_at: p.updated_at,
        published_at: p.published_at,
    }
}

// ---------------------------------------------------------------------------------------------
// Requests

/// Filters and pages of the list.
#[derive(Debug, Deserialize, IntoParams)]
pub struct PostmortemQuery {
    /// `draft`, `in_review` or `published` (viewers only ever see published ones).
    pub status: Option<String>,
    /// Postmortems of incidents on this service.
    pub service_id: Option<i64>,
    /// `SEV1` … `SEV4`.
    pub severity: Option<String>,
    /// Words that must all appear in the title or the sections (at most 200 characters).
    pub q: Option<String>,
    /// 1–200, default 50.
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<i64>,
}

/// A change to a postmortem's document. Only what is sent changes: `sections` may name some
/// sections only; `timeline`, when sent, replaces the whole timeline.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostmortemPatch {
    /// The version the change started from (from a GET). If someone saved since, nothing is
    /// saved and the answer is 409 `version_conflict` with `current_version`.
    pub version: i64,
    /// At most 200 characters.
    pub title: Option<String>,
    /// Markdown by section key (see the GET answer); each at most 100,000 characters.
    pub sections: Option<BTreeMap<String, String>>,
    /// The whole timeline (sorted by `at` when saved).
    pub timeline: Option<Vec<TimelineEntryBody>>,
}

/// One timeline entry to save.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TimelineEntryBody {
    /// RFC 3339.
    #[schema(example = "2026-03-10T09:15:00Z")]
    pub at: String,
    pub text: String,
    /// Default `true`; `false` drops the entry from the document.
    pub kept: Option<bool>,
}

/// The 409 answer to a stale `PATCH`.
#[derive(Serialize, ToSchema)]
pub struct StaleBody {
    pub error: StaleDetail,
}

/// What a stale save is told.
#[derive(Serialize, ToSchema)]
pub struct StaleDetail {
    /// `version_conflict`.
    pub code: String,
    pub message: String,
    /// The version now stored: GET it, merge your text, and send again with it.
    pub current_version: i64,
    pub updated_at: DateTime<Utc>,
}

// ---------------------------------------------------------------------------------------------
// Handlers

fn not_found(id: i64) -> impl Fn(StoreError) -> ApiError {
    move |e| match e {
        StoreError::NotFound => ApiError::not_found(format!("There is no postmortem {id}.")),
        other => other.into(),
    }
}

fn today_for(state: &AppState, user: &heliograph_store::users::User) -> NaiveDate {
    state
        .store
        .now()
        .with_timezone(&user.time_zone.tz())
        .date_naive()
}

/// List postmortems, newest first. Viewers see published ones only.
#[utoipa::path(get, path = "/api/v1/postmortems", tag = "postmortems", params(PostmortemQuery),
    responses((status = 200, body = PostmortemList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    auth: ApiAuth<Viewer>,
    ApiQuery(q): ApiQuery<PostmortemQuery>,
) -> Result<Json<PostmortemList>, ApiError> {
    let limit = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .limit()?;
    let mut fields = super::Fields::default();
    let mut filter = PostmortemFilter {
        status: q
            .status
            .as_deref()
            .filter(|s| !s.is_empty())
            .and_then(|s| fields.check("status", s.parse::<PostmortemStatus>())),
        severity: q
            .severity
            .as_deref()
            .filter(|s| !s.is_empty())
            .and_then(|s| fields.check("severity", s.parse::<Severity>())),
        service_id: q.service_id,
        ..Default::default()
    };
    match q.q.as_deref().map(str::trim) {
        Some(text) if text.chars().count() > 200 => {
            fields.add("q", "search for at most 200 characters");
        }
        Some(text) if !text.is_empty() => filter.search = Some(text.to_owned()),
        _ => {}
    }
    if !fields.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            fields.message_text(),
        ));
    }
    if !auth.user.role.allows(Role::Responder) {
        match filter.status {
            None | Some(PostmortemStatus::Published) => {
                filter.status = Some(PostmortemStatus::Published);
            }
            // A viewer asking for drafts sees none.
            Some(_) => {
                return Ok(Json(PostmortemList {
                    postmortems: Vec::new(),
                    next_cursor: None,
                }));
            }
        }
    }
    let page = state.store.postmortems(&filter, limit, q.cursor).await?;
    Ok(Json(PostmortemList {
        postmortems: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One postmortem with its sections, timeline, key figures, reviewers, history and action
/// items. Viewers may read published postmortems only (403 otherwise).
#[utoipa::path(get, path = "/api/v1/postmortems/{id}", tag = "postmortems", params(("id" = i64, Path)),
    responses((status = 200, body = PostmortemOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    auth: ApiAuth<Viewer>,
    Path(id): Path<String>,
) -> Result<Json<PostmortemOut>, ApiError> {
    let id = path_id(&id)?;
    let detail = state
        .store
        .postmortem_detail(id)
        .await
        .map_err(not_found(id))?;
    if detail.postmortem.status != PostmortemStatus::Published
        && !auth.user.role.allows(Role::Responder)
    {
        return Err(ApiError::forbidden(format!(
            "Viewers read published postmortems only; this one is {}.",
            detail.postmortem.status.label().to_lowercase()
        )));
    }
    Ok(Json(detail_out(detail, today_for(&state, &auth.user))))
}

/// Change a postmortem's title, sections (some or all) or timeline (responder). `version` is
/// required: a stale one answers 409 `version_conflict` with `current_version` and saves
/// nothing; a published postmortem answers 409 `conflict`.
#[utoipa::path(patch, path = "/api/v1/postmortems/{id}", tag = "postmortems", params(("id" = i64, Path)), request_body = PostmortemPatch,
    responses((status = 200, body = PostmortemOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = StaleBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    auth: ApiAuth<Responder>,
    Path(id): Path<String>,
    PathJson(body): PathJson<PostmortemPatch>,
) -> Result<Response, ApiError> {
    let id = path_id(&id)?;
    let current = state.store.postmortem(id).await.map_err(not_found(id))?;
    let mut fields = super::Fields::default();
    let mut edit = PostmortemEdit {
        title: current.title.clone(),
        sections: current.sections.clone(),
        timeline: current.timeline.clone(),
    };
    if let Some(title) = &body.title {
        let title = title.trim();
        if title.is_empty() {
            fields.add("title", "Title is required");
        } else if title.chars().count() > MAX_TITLE {
            fields.add(
                "title",
                format!("Title must be at most {MAX_TITLE} characters"),
            );
        }
        edit.title = title.to_owned();
    }
    for (key, text) in body.sections.into_iter().flatten() {
        let field = format!("sections.{key}");
        if text.chars().count() > MAX_TEXT {
            fields.add(
                &field,
                format!("A section must be at most {MAX_TEXT} characters"),
            );
        }
        if !edit.sections.set(&key, text) {
            let known: Vec<&str> = SECTIONS.iter().map(|(k, _)| *k).collect();
            fields.add(
                &field,
                format!("Unknown section; use one of {}", known.join(", ")),
            );
        }
    }
    if let Some(entries) = body.timeline {
        if entries.len() > MAX_ENTRIES {
            fields.add(
                "timeline",
                format!("At most {MAX_ENTRIES} timeline entries"),
            );
        }
        let mut timeline = Vec::with_capacity(entries.len());
        for (i, entry) in entries.into_iter().enumerate() {
            let at = match DateTime::parse_from_rfc3339(entry.at.trim()) {
                Ok(at) => Some(at.with_timezone(&Utc)),
                Err(_) => {
                    fields.add(
                        &format!("timeline[{i}].at"),
                        format!(
                            "{:?} is not an RFC 3339 time; expected e.g. 2026-03-10T09:15:00Z",
                            entry.at.chars().take(60).collect::<String>()
                        ),
                    );
                    None
                }
            };
            let text = entry.text.trim();
            if text.is_empty() {
                fields.add(&format!("timeline[{i}].text"), "Text is required");
            } else if text.chars().count() > MAX_TEXT {
                fields.add(
                    &format!("timeline[{i}].text"),
                    format!("An entry must be at most {MAX_TEXT} characters"),
                );
            }
            if let Some(at) = at {
                timeline.push(PmTimelineEntry {
                    at,
                    text: text.to_owned(),
                    kept: entry.kept.unwrap_or(true),
                });
            }
        }
        timeline.sort_by_key(|e| e.at);
        edit.timeline = timeline;
    }
    fields.finish()?;
    match state
        .store
        .update_postmortem(id, &edit, body.version, &auth.audit())
        .await
        .map_err(not_found(id))?
    {
        Saved::Saved(_) => {
            let detail = state
                .store
                .postmortem_detail(id)
                .await
                .map_err(not_found(id))?;
            Ok(Json(detail_out(detail, today_for(&state, &auth.user))).into_response())
        }
        Saved::Stale { current } => {
            let body = StaleBody {
                error: StaleDetail {
                    code: "version_conflict".into(),
                    message: format!(
                        "Someone else saved this postmortem since version {}; it is now at version {}. Nothing was saved: fetch it, merge your text, and send it again with the current version.",
                        body.version, current.version
                    ),
                    current_version: current.version,
                    updated_at: current.updated_at,
                },
            };
            Ok((StatusCode::CONFLICT, Json(body)).into_response())
        }
    }
}
