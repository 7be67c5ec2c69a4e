//! Postmortems in the browser: the list (published ones for viewers, every state for
//! responders), the printable reading view with review steps and action items, the edit form
//! guarded by a version, and the Markdown export.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeZone as _, Utc};
use chrono_tz::Tz;
use heliograph_domain::{Role, Severity};
use heliograph_store::StoreError;
use heliograph_store::postmortems::{
    ActionItem, ActionItemFields, Decision, ItemStatus, PmTimelineEntry, PostmortemDetail,
    PostmortemEdit, PostmortemFilter, PostmortemStatus, PostmortemSummary, Priority, SECTIONS,
    Saved, human_duration,
};
use heliograph_store::services::Service;
use heliograph_store::users::User;
use serde::Deserialize;

use crate::auth::{Auth, Responder, Viewer};
use crate::csrf::CsrfForm;
use crate::error::render_with_status;
use crate::flash::redirect_with;
use crate::views::{FieldErrors, Shell, format_in};
use crate::{AppError, AppState, markdown};

use super::parse_id;

const MAX_TITLE: usize = 200;
const MAX_TEXT: usize = 100_000;
const PAGE_SIZE: i64 = 50;
/// What a stale save tells the editor who lost.
pub const STALE_MESSAGE: &str = "Someone else saved this postmortem while you were editing; your text is below — copy what you need, then reload";

fn audit_of(auth: &crate::auth::CurrentUser) -> heliograph_store::Audit {
    auth.audit()
}

/// Viewers read published postmortems only.
fn may_read(user: &crate::auth::CurrentUser, status: PostmortemStatus) -> Result<(), AppError> {
    if status == PostmortemStatus::Published || user.user.role.allows(Role::Responder) {
        Ok(())
    } else {
        Err(AppError::Forbidden {
            have: user.user.role,
            needed: Role::Responder,
        })
    }
}

// ---------------------------------------------------------------- the list

#[derive(Debug, Default, Deserialize, Clone)]
pub struct ListQuery {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub service_id: String,
    #[serde(default)]
    pub severity: String,
    /// `2026-Q2`
    #[serde(default)]
    pub quarter: String,
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub cursor: String,
}

#[derive(Template)]
#[template(path = "postmortems/list.html")]
struct ListPage {
    shell: Shell,
    rows: Vec<PostmortemSummary>,
    query: ListQuery,
    errors: FieldErrors,
    services: Vec<Service>,
    severities: &'static [Severity],
    statuses: &'static [PostmortemStatus],
    quarters: Vec<String>,
    responder: bool,
    next_link: Option<String>,
}

/// `2026-Q2` → [2026-04-01, 2026-07-01) in UTC.
fn parse_quarter(raw: &str) -> Result<(DateTime<Utc>, DateTime<Utc>), String> {
    let bad = || "Use a quarter like 2026-Q2".to_owned();
    let (year, q) = raw.trim().split_once("-Q").ok_or_else(bad)?;
    let year: i32 = year.parse().map_err(|_| bad())?;
    let q: u32 = q
        .parse()
        .ok()
        .filter(|q| (1..=4).contains(q))
        .ok_or_else(bad)?;
    let start = Utc
        .with_ymd_and_hms(year, 3 * (q - 1) + 1, 1, 0, 0, 0)
        .single()
        .ok_or_else(bad)?;
    let end = if q == 4 {
        Utc.with_ymd_and_hms(year + 1, 1, 1, 0, 0, 0)
    } else {
        Utc.with_ymd_and_hms(year, 3 * q + 1, 1, 0, 0, 0)
    }
    .single()
    .ok_or_else(bad)?;
    Ok((start, end))
}

pub async fn list(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    shell: Shell,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, AppError> {
    let query = query.map(|q| q.0).unwrap_or_default();
    let responder = auth.user.role.allows(Role::Responder);
    let mut errors = FieldErrors::default();
    let mut filter = PostmortemFilter::default();
    if !responder {
        filter.status = Some(PostmortemStatus::Published);
    } else if !query.status.is_empty() {
        filter.status = errors.check("status", query.status.parse::<PostmortemStatus>());
    }
    if !query.severity.is_empty() {
        filter.severity = errors.check("severity", query.severity.parse::<Severity>());
    }
    if !query.service_id.is_empty() {
        filter.service_id = errors.check(
            "service_id",
            query
                .service_id
                .parse::<i64>()
                .map_err(|_| "Choose a service from the list"),
        );
    }
    if !query.quarter.is_empty()
        && let Some((from, to)) = errors.check("quarter", parse_quarter(&query.quarter))
    {
        filter.from = Some(from);
        filter.to = Some(to);
    }
    if query.q.chars().count() > 200 {
        errors.add("q", "Search for at most 200 characters");
    } else if !query.q.trim().is_empty() {
        filter.search = Some(query.q.clone());
    }
    let cursor = query.cursor.parse::<i64>().ok();
    let (rows, next) = if errors.is_empty() {
        let page = state.store.postmortems(&filter, PAGE_SIZE, cursor).await?;
        (page.items, page.next_cursor)
    } else {
        (Vec::new(), None)
    };
    let next_link = next.map(|c| {
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("status", &query.status),
            ("service_id", &query.service_id),
            ("severity", &query.severity),
            ("quarter", &query.quarter),
            ("q", &query.q),
        ] {
            if !v.is_empty() {
                ser.append_pair(k, v);
            }
        }
        ser.append_pair("cursor", &c.to_string());
        format!("/postmortems?{}", ser.finish())
    });
    let now = state.store.now();
    let quarters = (0..8)
        .map(|back| {
            let idx = now.year() * 4 + (now.month0() / 3) as i32 - back;
            format!("{}-Q{}", idx.div_euclid(4), idx.rem_euclid(4) + 1)
        })
        .collect();
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let page = ListPage {
        shell,
        rows,
        query,
        errors,
        services: state.store.services().await?,
        severities: Severity::ALL,
        statuses: PostmortemStatus::ALL,
        quarters,
        responder,
        next_link,
    };
    Ok(render_with_status(status, &page))
}

// ---------------------------------------------------------------- starting

pub async fn start(
    State(state): State<AppState>,
    auth: Auth<Responder>,
    Path(number): Path<String>,
    CsrfForm(_): CsrfForm<serde::de::IgnoredAny>,
) -> Result<Response, AppError> {
    let number = number
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or(AppError::NotFound)?;
    let (id, created) = state
        .store
        .start_postmortem(number, &audit_of(&auth))
        .await?;
    let message = if created {
        "Postmortem draft started from the incident."
    } else {
        "This incident already has a postmortem."
    };
    Ok(redirect_with(
        &format!("/postmortems/{id}"),
        "success",
        message,
    ))
}

// ---------------------------------------------------------------- reading

/// What the action item form holds (kept as typed on an error).
#[derive(Debug, Default, Deserialize, Clone)]
pub struct ItemForm {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub owner_id: String,
    #[serde(default)]
    pub due_date: String,
    #[serde(default)]
    pub priority: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub tracker_url: String,
}

struct Figure {
    label: &'static str,
    value: String,
}

struct ShownEntry {
    at: String,
    text: String,
}

struct ShownItem {
    item: ActionItem,
    due: String,
    overdue: bool,
}

#[derive(Template)]
#[template(path = "postmortems/show.html")]
struct ShowPage {
    shell: Shell,
    detail: PostmortemDetail,
    figures: Vec<Figure>,
    sections: Vec<(&'static str, String)>,
    timeline: Vec<ShownEntry>,
    items: Vec<ShownItem>,
    users: Vec<User>,
    item_form: ItemForm,
    errors: FieldErrors,
    priorities: &'static [Priority],
    item_statuses: &'static [ItemStatus],
    responder: bool,
    my_review_pending: bool,
}

impl ShowPage {
    fn status_label(&self) -> &'static str {
        self.detail.postmortem.status.label()
    }
    fn is(&self, status: &str) -> bool {
        self.detail.postmortem.status.as_str() == status
    }
}

async fn show_page(
    state: &AppState,
    shell: Shell,
    id: i64,
    item_form: ItemForm,
    errors: FieldErrors,
) -> Result<ShowPage, AppError> {
    let detail = state.store.postmortem_detail(id).await?;
    let user = shell.user.clone().ok_or(AppError::NotFound)?;
    may_read(&user, detail.postmortem.status)?;
    let tz = shell.tz();
    let f = detail.figures();
    let services = detail
        .services
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let figures = vec![
        Figure {
            label: "Incident",
            value: format!("#{} {}", detail.incident.number, detail.incident.title),
        },
        Figure {
            label: "Severity",
            value: f.severity.to_string(),
        },
        Figure {
            label: "Services",
            value: if services.is_empty() {
                "—".into()
            } else {
                services
            },
        },
        Figure {
            label: "Began",
            value: format_in(&f.triggered_at, tz),
        },
        Figure {
            label: "Time to acknowledge",
            value: f
                .time_to_acknowledge
                .map(human_duration)
                .unwrap_or_else(|| "—".into()),
        },
        Figure {
            label: "Time to resolve (duration)",
            value: f
                .time_to_resolve
                .map(human_duration)
                .unwrap_or_else(|| "—".into()),
        },
    ];
    let sections = SECTIONS
        .iter()
        .filter(|(key, _)| !detail.postmortem.sections.get(key).trim().is_empty())
        .map(|(key, label)| {
            (
                *label,
                markdown::render(detail.postmortem.sections.get(key)),
            )
        })
        .collect();
    let timeline = detail
        .postmortem
        .timeline
        .iter()
        .filter(|e| e.kept)
        .map(|e| ShownEntry {
            at: format_in(&e.at, tz),
            text: e.text.clone(),
        })
        .collect();
    let today = Utc::now().with_timezone(&tz).date_naive();
    let items = detail
        .action_items
        .iter()
        .map(|i| ShownItem {
            item: i.clone(),
            due: i.due_date.map(|d| d.to_string()).unwrap_or_default(),
            overdue: i.is_overdue(today),
        })
        .collect();
    let my_review_pending = detail.postmortem.status == PostmortemStatus::InReview
        && detail
            .reviewers
            .iter()
            .any(|r| r.user_id == user.user.id && r.decision == Decision::Pending);
    Ok(ShowPage {
        responder: user.user.role.allows(Role::Responder),
        users: state.store.all_users().await?,
        shell,
        detail,
        figures,
        sections,
        timeline,
        items,
        item_form,
        errors,
        priorities: Priority::ALL,
        item_statuses: ItemStatus::ALL,
        my_review_pending,
    })
}

/// `/postmortems/{id}` (the reading view) and `/postmortems/{id}.md` (the export).
pub async fn show(
    State(state): State<AppState>,
    _auth: Auth<Viewer>,
    shell: Shell,
    Path(raw): Path<String>,
) -> Result<Response, AppError> {
    if let Some(id) = raw.strip_suffix(".md") {
        let id = parse_id(id)?;
        let detail = state.store.postmortem_detail(id).await?;
        let user = shell.user.clone().ok_or(AppError::NotFound)?;
        may_read(&user, detail.postmortem.status)?;
        return Ok((
            [
                (
                    header::CONTENT_TYPE,
                    "text/markdown; charset=utf-8".to_owned(),
                ),
                (
                    header::CONTENT_DISPOSITION,
                    format!("inline; filename=\"postmortem-{id}.md\""),
                ),
            ],
            export_markdown(&detail),
        )
            .into_response());
    }
    let id = parse_id(&raw)?;
    let page = show_page(
        &state,
        shell,
        id,
        ItemForm::default(),
        FieldErrors::default(),
    )
    .await?;
    Ok(render_with_status(StatusCode::OK, &page))
}

/// The whole document as Markdown (sections as written, times in UTC).
pub fn export_markdown(d: &PostmortemDetail) -> String {
    let f = d.figures();
    let p = &d.postmortem;
    let mut out = format!("# {}\n\n", p.title);
    out.push_str(&format!(
        "- Incident: #{} {}\n- Status: {}\n- Severity: {}\n- Services: {}\n- Began: {}\n",
        d.incident.number,
        d.incident.title,
        p.status.label(),
        f.severity,
        d.services
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        f.triggered_at.format("%Y-%m-%d %H:%M UTC"),
    ));
    if let Some(t) = f.time_to_acknowledge {
        out.push_str(&format!("- Time to acknowledge: {}\n", human_duration(t)));
    }
    if let Some(t) = f.time_to_resolve {
        out.push_str(&format!("- Time to resolve: {}\n", human_duration(t)));
    }
    for (key, label) in SECTIONS {
        let text = p.sections.get(key).trim();
        if !text.is_empty() {
            out.push_str(&format!("\n## {label}\n\n{text}\n"));
        }
        if *key == "customer_impact" {
            out.push_str("\n## Timeline\n\n");
            for e in p.timeline.iter().filter(|e| e.kept) {
                out.push_str(&format!(
                    "- {} — {}\n",
                    e.at.format("%Y-%m-%d %H:%M:%S UTC"),
                    e.text.replace('\n', " ")
                ));
            }
        }
    }
    if !d.action_items.is_empty() {
        out.push_str("\n## Action items\n\n");
        for i in &d.action_items {
            let done = if i.status == ItemStatus::Done {
                "x"
            } else {
                " "
            };
            out.push_str(&format!(
                "- [{done}] {} — owner: {}, due: {}, priority: {}, status: {}{}\n",
                i.title,
                i.owner_name.as_deref().unwrap_or("nobody"),
                i.due_date
                    .map(|d| d.to_string())
                    .unwrap_or_else(|| "—".into()),
                i.priority.label(),
                i.status.label(),
                i.tracker_url
                    .as_deref()
                    .map(|u| format!(", {u}"))
                    .unwrap_or_default(),
            ));
        }
    }
    out
}

// ---------------------------------------------------------------- editing

struct EditEntry {
    at: String,
    text: String,
    kept: bool,
    /// What is wrong with the time as typed.
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "postmortems/edit.html")]
struct EditPage {
    shell: Shell,
    id: i64,
    incident_number: i64,
    version: i64,
    title: String,
    sections: Vec<EditSection>,
    timeline: Vec<EditEntry>,
    new_at: String,
    new_text: String,
    errors: FieldErrors,
    conflict: Option<String>,
    /// The form came back from "Preview": nothing was saved.
    previewing: bool,
}

/// One section of the edit form: its key (the field name), heading, text as typed and, after
/// "Preview", its rendered and sanitized HTML (`None` when empty or not previewing).
struct EditSection {
    key: &'static str,
    label: &'static str,
    text: String,
    preview: Option<String>,
}

impl EditSection {
    fn new(key: &'static str, label: &'static str, text: String, preview: bool) -> Self {
        let preview = (preview && !text.trim().is_empty()).then(|| markdown::render(&text));
        EditSection {
            key,
            label,
            text,
            preview,
        }
    }
}

const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

fn local_text(at: &DateTime<Utc>, tz: Tz) -> String {
    at.with_timezone(&tz).format(TIME_FORMAT).to_string()
}

fn parse_local(raw: &str, tz: Tz) -> Result<DateTime<Utc>, String> {
    let raw = raw.trim();
    let naive = NaiveDateTime::parse_from_str(raw, TIME_FORMAT)
        .or_else(|_| NaiveDateTime::parse_from_str(raw, "%Y-%m-%d %H:%M"))
        .or_else(|_| NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M"))
        .map_err(|_| format!("Use a time like 2026-05-04 14:05 (in {tz})"))?;
    Ok(heliograph_scheduler::resolve_local(tz, naive))
}

pub async fn edit_form(
    State(state): State<AppState>,
    _auth: Auth<Responder>,
    shell: Shell,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let id = parse_id(&id)?;
    let detail = state.store.postmortem_detail(id).await?;
    let tz = shell.tz();
    let p = detail.postmortem;
    let page = EditPage {
        id,
        incident_number: detail.incident.number,
        version: p.version,
        title: p.title.clone(),
        sections: SECTIONS
            .iter()
            .map(|(k, l)| EditSection::new(k, l, p.sections.get(k).to_owned(), false))
            .collect(),
        timeline: p
            .timeline
            .iter()
            .map(|e| EditEntry {
                at: local_text(&e.at, tz),
                text: e.text.clone(),
                kept: e.kept,
                error: None,
            })
            .collect(),
        new_at: String::new(),
        new_text: String::new(),
        errors: FieldErrors::default(),
        conflict: None,
        previewing: false,
        shell,
    };
    Ok(render_with_status(StatusCode::OK, &page))
}

pub async fn edit(
    State(state): State<AppState>,
    auth: Auth<Responder>,
    shell: Shell,
    Path(id): Path<String>,
    CsrfForm(pairs): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let id = parse_id(&id)?;
    let current = state.store.postmortem_detail(id).await?;
    let tz = shell.tz();
    let one = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let many = |name: &str| {
        pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>()
    };
    let mut errors = FieldErrors::default();
    // "Preview" re-renders the form with what was typed and each section rendered; it saves
    // nothing, so the version stays the one the editor started from.
    let previewing = one("action") == "preview";
    let title = one("title");
    if title.trim().is_empty() {
        errors.add("title", "Title is required");
    } else if title.chars().count() > MAX_TITLE {
        errors.add(
            "title",
            format!("Title must be at most {MAX_TITLE} characters"),
        );
    }
    let mut sections = current.postmortem.sections.clone();
    let mut shown_sections = Vec::new();
    for (key, label) in SECTIONS {
        let text = one(key);
        if text.chars().count() > MAX_TEXT {
            errors.add(
                *key,
                format!("{label} must be at most {MAX_TEXT} characters"),
            );
        }
        shown_sections.push(EditSection::new(key, label, text.clone(), previewing));
        sections.set(key, text);
    }
    let (ats, texts, keeps) = (many("tl_at"), many("tl_text"), many("tl_keep"));
    let mut timeline = Vec::new();
    let mut shown_timeline = Vec::new();
    for (n, (at, text)) in ats.iter().zip(texts.iter()).enumerate() {
        let kept = keeps.iter().any(|k| k == &n.to_string());
        let mut error = None;
        match parse_local(at, tz) {
            Ok(at) => timeline.push(PmTimelineEntry {
                at,
                text: text.trim().to_owned(),
                kept,
            }),
            Err(e) => {
                errors.add(format!("tl_at_{n}"), e.clone());
                error = Some(e);
            }
        }
        shown_timeline.push(EditEntry {
            at: at.clone(),
            text: text.clone(),
            kept,
            error,
        });
    }
    let (new_at, new_text) = (one("new_at"), one("new_text"));
    if !new_text.trim().is_empty() {
        let at = if new_at.trim().is_empty() {
            Ok(state.store.now())
        } else {
            parse_local(&new_at, tz)
        };
        match at {
            Ok(at) => timeline.push(PmTimelineEntry {
                at,
                text: new_text.trim().to_owned(),
                kept: true,
            }),
            Err(e) => errors.add("new_at", e),
        }
    }
    timeline.sort_by_key(|e| e.at);
    let version = one("version").parse::<i64>().ok();
    if version.is_none() {
        errors.add(
            "version",
            "The form is missing its version; reload the page",
        );
    }
    let mut conflict = None;
    let mut status = if previewing {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    if let (Some(version), true, false) = (version, errors.is_empty(), previewing) {
        let edit = PostmortemEdit {
            title: title.trim().to_owned(),
            sections,
            timeline,
        };
        match state
            .store
            .update_postmortem(id, &edit, version, &auth.audit())
            .await
        {
            Ok(Saved::Saved(_)) => {
                return Ok(redirect_with(
                    &format!("/postmortems/{id}"),
                    "success",
                    "Postmortem saved.",
                ));
            }
            Ok(Saved::Stale { current }) => {
                conflict = Some(format!(
                    "{STALE_MESSAGE} (it is now at version {}, saved {}).",
                    current.version,
                    format_in(&current.updated_at, tz)
                ));
                status = StatusCode::CONFLICT;
            }
            Err(StoreError::Conflict(m)) => {
                conflict = Some(m);
                status = StatusCode::CONFLICT;
            }
            Err(e) => return Err(e.into()),
        }
    }
    // Everything typed comes back, with the version the editor started from: saving again
    // must be a deliberate choice made after reloading.
    let page = EditPage {
        id,
        incident_number: current.incident.number,
        version: version.unwrap_or(current.postmortem.version),
        title,
        sections: shown_sections,
        timeline: shown_timeline,
        new_at,
        new_text,
        errors,
        conflict,
        previewing,
        shell,
    };
    Ok(render_with_status(status, &page))
}

// ---------------------------------------------------------------- review

#[derive(Deserialize)]
pub struct SubmitForm {
    #[serde(default)]
    reviewers: Vec<String>,
}

pub async fn submit(
    State(state): State<AppState>,
    auth: Auth<Responder>,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<SubmitForm>,
) -> Result<Response, AppError> {
    let id = parse_id(&id)?;
    let reviewers: Vec<i64> = form
        .reviewers
        .iter()
        .filter_map(|r| r.parse().ok())
        .collect();
    let to = format!("/postmortems/{id}");
    match state
        .store
        .submit_postmortem(id, &reviewers, None, &auth.audit())
        .await
    {
        Ok(_) => Ok(redirect_with(&to, "success", "Submitted for review.")),
        Err(StoreError::Conflict(m)) => Ok(redirect_with(&to, "error", m)),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub struct ReviewForm {
    #[serde(default)]
    decision: String,
    #[serde(default)]
    comment: String,
}

pub async fn review(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<ReviewForm>,
) -> Result<Response, AppError> {
    let id = parse_id(&id)?;
    let to = format!("/postmortems/{id}");
    let Ok(decision) = form.decision.parse::<Decision>() else {
        return Ok(redirect_with(
            &to,
            "error",
            "Choose approve or request changes.",
        ));
    };
    match state
        .store
        .review_postmortem(id, decision, &form.comment, &auth.audit())
        .await
    {
        Ok(_) => Ok(redirect_with(
            &to,
            "success",
            match decision {
                Decision::Approved => "Approved.",
                _ => "Changes requested; the postmortem is a draft again.",
            },
        )),
        Err(StoreError::Conflict(m)) => Ok(redirect_with(&to, "error", m)),
        Err(e) => Err(e.into()),
    }
}

pub async fn publish(
    State(state): State<AppState>,
    auth: Auth<Responder>,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<serde::de::IgnoredAny>,
) -> Result<Response, AppError> {
    let id = parse_id(&id)?;
    let to = format!("/postmortems/{id}");
    match state
        .store
        .publish_postmortem(id, None, &auth.audit())
        .await
    {
        Ok(_) => Ok(redirect_with(&to, "success", "Published.")),
        Err(StoreError::Conflict(m)) => Ok(redirect_with(&to, "error", m)),
        Err(e) => Err(e.into()),
    }
}

// ---------------------------------------------------------------- action items

fn parse_item(
    form: &ItemForm,
    users: &[User],
    errors: &mut FieldErrors,
) -> Option<ActionItemFields> {
    let title = form.title.trim();
    if title.is_empty() {
        errors.add("item_title", "Title is required");
    } else if title.chars().count() > MAX_TITLE {
        errors.add(
            "item_title",
            format!("Title must be at most {MAX_TITLE} characters"),
        );
    }
    let owner_id = match form.owner_id.as_str() {
        "" => None,
        raw => errors.check(
            "item_owner_id",
            raw.parse::<i64>()
                .ok()
                .filter(|id| users.iter().any(|u| u.id == *id))
                .ok_or("Choose an owner from the list"),
        ),
    };
    let due_date = match form.due_date.trim() {
        "" => None,
        raw => errors.check(
            "item_due_date",
            NaiveDate::parse_from_str(raw, "%Y-%m-%d").map_err(|_| "Use a date like 2026-06-30"),
        ),
    };
    let priority = if form.priority.is_empty() {
        Some(Priority::Medium)
    } else {
        errors.check("item_priority", form.priority.parse::<Priority>())
    };
    let status = if form.status.is_empty() {
        Some(ItemStatus::Open)
    } else {
        errors.check("item_status", form.status.parse::<ItemStatus>())
    };
    let tracker = form.tracker_url.trim();
    let tracker_url = if tracker.is_empty() {
        None
    } else if url::Url::parse(tracker).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
        Some(tracker.to_owned())
    } else {
        errors.add("item_tracker_url", "Use a link starting with https://");
        None
    };
    if !errors.is_empty() {
        return None;
    }
    Some(ActionItemFields {
        title: title.to_owned(),
        owner_id,
        due_date,
        priority: priority?,
        status: status?,
        tracker_url,
    })
}

pub async fn add_item(
    State(state): State<AppState>,
    auth: Auth<Responder>,
    shell: Shell,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<ItemForm>,
) -> Result<Response, AppError> {
    let id = parse_id(&id)?;
    let users = state.store.all_users().await?;
    let mut errors = FieldErrors::default();
    if let Some(fields) = parse_item(&form, &users, &mut errors) {
        match state
            .store
            .add_action_item(id, &fields, &auth.audit())
            .await
        {
            Ok(_) => {
                return Ok(redirect_with(
                    &format!("/postmortems/{id}#action-items"),
                    "success",
                    "Action item added.",
                ));
            }
            Err(StoreError::Conflict(m)) => errors.add("item_owner_id", m),
            Err(e) => return Err(e.into()),
        }
    }
    let page = show_page(&state, shell, id, form, errors).await?;
    Ok(render_with_status(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

#[derive(Deserialize)]
pub struct ItemStatusForm {
    #[serde(default)]
    status: String,
}

pub async fn update_item(
    State(state): State<AppState>,
    auth: Auth<Responder>,
    Path((id, item_id)): Path<(String, String)>,
    CsrfForm(form): CsrfForm<ItemStatusForm>,
) -> Result<Response, AppError> {
    let (id, item_id) = (parse_id(&id)?, parse_id(&item_id)?);
    let item = state.store.action_item(item_id).await?;
    if item.postmortem_id != id {
        return Err(AppError::NotFound);
    }
    let to = format!("/postmortems/{id}#action-items");
    let Ok(status) = form.status.parse::<ItemStatus>() else {
        return Ok(redirect_with(
            &to,
            "error",
            "Choose a status from the list.",
        ));
    };
    let fields = ActionItemFields {
        title: item.title,
        owner_id: item.owner_id,
        due_date: item.due_date,
        priority: item.priority,
        status,
        tracker_url: item.tracker_url,
    };
    state
        .store
        .update_action_item(item_id, &fields, &auth.audit())
        .await?;
    Ok(redirect_with(&to, "success", "Action item updated."))
}
