//! Postmortems: the blameless review of an incident, its reviewers and history, and its
//! action items.
//!
//! Like schedules, the document (sections and timeline) is JSON text replaced whole and guarded
//! by a version number: a save names the version it started from and a stale save changes
//! nothing and answers [`Saved::Stale`] with the current version, so the page can give the
//! loser back their own text. Every change writes a history row and an audit entry in the same
//! transaction. Resolving a SEV1 or SEV2 incident creates the draft inside the resolving
//! transaction ([`create_draft`], called from `incidents.rs`); one incident has at most one.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use heliograph_domain::Severity;
use serde::{Deserialize, Serialize};

use crate::audit::{Change, record};
use crate::incidents::Incident;
use crate::services::Service;
use crate::users::User;
use crate::{Audit, Page, Result, Store, StoreError, Tx, read, tx};

/// A TEXT column holding one of a fixed set of words (with a CHECK in the migrations).
macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal / $label:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name { $(#[serde(rename = $text)] $variant),+ }

        impl $name {
            /// Every value, in order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored (and API) word.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// The word shown on pages.
            pub fn label(self) -> &'static str {
                match self { $($name::$variant => $label),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> std::result::Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!("{other:?} is not one of: {}", [$($text),+].join(", "))),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> std::result::Result<Self, String> {
                s.parse()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// draft → in review → published.
    PostmortemStatus {
        Draft = "draft" / "Draft",
        InReview = "in_review" / "In review",
        Published = "published" / "Published",
    }
);

text_enum!(
    /// A reviewer's decision.
    Decision {
        Pending = "pending" / "Pending",
        Approved = "approved" / "Approved",
        ChangesRequested = "changes_requested" / "Changes requested",
    }
);

text_enum!(
    /// How urgent an action item is.
    Priority {
        High = "high" / "High",
        Medium = "medium" / "Medium",
        Low = "low" / "Low",
    }
);

text_enum!(
    /// Where an action item stands.
    ItemStatus {
        Open = "open" / "Open",
        InProgress = "in_progress" / "In progress",
        Done = "done" / "Done",
        WontDo = "wont_do" / "Won't do",
    }
);

impl ItemStatus {
    /// Open or in progress: still to be done.
    pub fn is_open(self) -> bool {
        matches!(self, ItemStatus::Open | ItemStatus::InProgress)
    }
}

/// The document's sections, Markdown as typed. Missing keys read as empty, so sections can be
/// added later without rewriting stored documents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Sections {
    pub summary: String,
    pub customer_impact: String,
    pub root_cause: String,
    pub detection: String,
    pub resolution: String,
    pub went_well: String,
    pub went_badly: String,
    pub lucky: String,
    pub lessons: String,
    /// AI appendix: the model or index version involved.
    pub ai_model_version: String,
    /// AI appendix: evaluation results before the incident (or the change that caused it).
    pub ai_eval_before: String,
    /// AI appendix: evaluation results after the fix.
    pub ai_eval_after: String,
}

/// The sections in document order: (key, heading). The keys are the JSON keys and form fields.
pub const SECTIONS: &[(&str, &str)] = &[
    ("summary", "Summary"),
    ("customer_impact", "Customer impact"),
    ("root_cause", "Root cause and contributing factors"),
    ("detection", "Detection"),
    ("resolution", "Resolution and recovery"),
    ("went_well", "What went well"),
    ("went_badly", "What went badly"),
    ("lucky", "Where we got lucky"),
    ("lessons", "Lessons"),
    ("ai_model_version", "AI appendix: model or index version"),
    ("ai_eval_before", "AI appendix: evaluation before"),
    ("ai_eval_after", "AI appendix: evaluation after"),
];

impl Sections {
    /// The text of the section `key` (empty for an unknown key).
    pub fn get(&self, key: &str) -> &str {
        match key {
            "summary" => &self.summary,
            "customer_impact" => &self.customer_impact,
            "root_cause" => &self.root_cause,
            "detection" => &self.detection,
            "resolution" => &self.resolution,
            "went_well" => &self.went_well,
            "went_badly" => &self.went_badly,
            "lucky" => &self.lucky,
            "lessons" => &self.lessons,
            "ai_model_version" => &self.ai_model_version,
            "ai_eval_before" => &self.ai_eval_before,
            "ai_eval_after" => &self.ai_eval_after,
            _ => "",
        }
    }

    /// Sets the section `key`; `false` for an unknown key.
    pub fn set(&mut self, key: &str, text: String) -> bool {
        let slot = match key {
            "summary" => &mut self.summary,
            "customer_impact" => &mut self.customer_impact,
            "root_cause" => &mut self.root_cause,
            "detection" => &mut self.detection,
            "resolution" => &mut self.resolution,
            "went_well" => &mut self.went_well,
            "went_badly" => &mut self.went_badly,
            "lucky" => &mut self.lucky,
            "lessons" => &mut self.lessons,
            "ai_model_version" => &mut self.ai_model_version,
            "ai_eval_before" => &mut self.ai_eval_before,
            "ai_eval_after" => &mut self.ai_eval_after,
            _ => return false,
        };
        *slot = text;
        true
    }
}

/// One entry of the postmortem's timeline: imported from the incident or added, editable,
/// and dropped from the document (but not forgotten) when `kept` is false.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PmTimelineEntry {
    pub at: DateTime<Utc>,
    pub text: String,
    #[serde(default = "yes")]
    pub kept: bool,
}

fn yes() -> bool {
    true
}

/// A stored postmortem.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Postmortem {
    pub id: i64,
    pub incident_id: i64,
    pub owner_id: Option<i64>,
    pub status: PostmortemStatus,
    pub title: String,
    pub sections: Sections,
    pub timeline: Vec<PmTimelineEntry>,
    /// Grows by one with every change of this row; saves name the version they started from.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub published_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct PostmortemRow {
    id: i64,
    incident_id: i64,
    owner_id: Option<i64>,
    status: String,
    title: String,
    sections: String,
    timeline: String,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    published_at: Option<DateTime<Utc>>,
}

impl TryFrom<PostmortemRow> for Postmortem {
    type Error = StoreError;

    fn try_from(row: PostmortemRow) -> Result<Self> {
        let corrupt = |what: &str, e: String| {
            StoreError::Corrupt(format!("postmortem {} {what}: {e}", row.id))
        };
        Ok(Postmortem {
            id: row.id,
            incident_id: row.incident_id,
            owner_id: row.owner_id,
            status: row.status.parse().map_err(|e| corrupt("status", e))?,
            title: row.title.clone(),
            sections: serde_json::from_str(&row.sections)
                .map_err(|e| corrupt("sections", e.to_string()))?,
            timeline: serde_json::from_str(&row.timeline)
                .map_err(|e| corrupt("timeline", e.to_string()))?,
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
            published_at: row.published_at,
        })
    }
}

macro_rules! pm_columns {
    () => {
        "id, incident_id, owner_id, status, title, sections, timeline, version, created_at, updated_at, published_at"
    };
}

/// A row of the postmortem list.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct PostmortemSummary {
    pub id: i64,
    pub incident_id: i64,
    pub incident_number: i64,
    #[sqlx(try_from = "String")]
    pub status: PostmortemStatus,
    pub title: String,
    #[sqlx(try_from = "String")]
    pub severity: Severity,
    pub owner_id: Option<i64>,
    pub owner_name: Option<String>,
    pub triggered_at: DateTime<Utc>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub published_at: Option<DateTime<Utc>>,
}

/// Filters of the postmortem list; each narrows it when set.
#[derive(Debug, Clone, Default)]
pub struct PostmortemFilter {
    pub status: Option<PostmortemStatus>,
    pub service_id: Option<i64>,
    pub severity: Option<Severity>,
    /// The incident began at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// The incident began before this instant.
    pub to: Option<DateTime<Utc>>,
    /// Words that must all appear in the title or the sections' text, as words or word
    /// beginnings ("replica" finds "replicas", not "areplica").
    pub search: Option<String>,
}

/// A reviewer and their decision.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Reviewer {
    pub user_id: i64,
    pub name: String,
    pub email: String,
    #[sqlx(try_from = "String")]
    pub decision: Decision,
    pub comment: String,
    pub decided_at: Option<DateTime<Utc>>,
}

/// One step of a postmortem's history.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct HistoryEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    /// created, edited, submitted, approved, changes_requested, published, action_item
    pub action: String,
    pub comment: String,
}

/// An action item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionItem {
    pub id: i64,
    pub postmortem_id: i64,
    pub title: String,
    pub owner_id: Option<i64>,
    pub owner_name: Option<String>,
    pub due_date: Option<NaiveDate>,
    pub priority: Priority,
    pub status: ItemStatus,
    pub tracker_url: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub reminded_at: Option<DateTime<Utc>>,
}

impl ActionItem {
    /// Whether the item is still open on `today` after its due date.
    pub fn is_overdue(&self, today: NaiveDate) -> bool {
        self.status.is_open() && self.due_date.is_some_and(|d| d < today)
    }
}

#[derive(sqlx::FromRow)]
struct ActionItemRow {
    id: i64,
    postmortem_id: i64,
    title: String,
    owner_id: Option<i64>,
    owner_name: Option<String>,
    due_date: Option<String>,
    priority: String,
    status: String,
    tracker_url: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    reminded_at: Option<DateTime<Utc>>,
}

impl TryFrom<ActionItemRow> for ActionItem {
    type Error = StoreError;

    fn try_from(row: ActionItemRow) -> Result<Self> {
        let corrupt = |e: String| StoreError::Corrupt(format!("action item {}: {e}", row.id));
        let due_date = match &row.due_date {
            Some(d) => {
                Some(NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(|e| corrupt(e.to_string()))?)
            }
            None => None,
        };
        Ok(ActionItem {
            id: row.id,
            postmortem_id: row.postmortem_id,
            title: row.title.clone(),
            owner_id: row.owner_id,
            owner_name: row.owner_name.clone(),
            due_date,
            priority: row.priority.parse().map_err(corrupt)?,
            status: row.status.parse().map_err(corrupt)?,
            tracker_url: row.tracker_url.clone(),
            created_at: row.created_at,
            updated_at: row.updated_at,
            reminded_at: row.reminded_at,
        })
    }
}

macro_rules! item_columns {
    () => {
        "a.id, a.postmortem_id, a.title, a.owner_id, u.name AS owner_name, a.due_date, a.priority, a.status, a.tracker_url, \
         a.created_at, a.updated_at, a.reminded_at FROM action_items a LEFT JOIN users u ON u.id = a.owner_id"
    };
}

/// The editable fields of an action item, already validated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionItemFields {
    pub title: String,
    pub owner_id: Option<i64>,
    pub due_date: Option<NaiveDate>,
    pub priority: Priority,
    pub status: ItemStatus,
    pub tracker_url: Option<String>,
}

/// An overdue action item with where it comes from (for reminders and the overview).
#[derive(Debug, Clone, Serialize)]
pub struct OverdueItem {
    pub item: ActionItem,
    pub incident_number: i64,
    pub postmortem_title: String,
    pub owner_email: Option<String>,
}

/// The editable parts of the document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PostmortemEdit {
    pub title: String,
    pub sections: Sections,
    pub timeline: Vec<PmTimelineEntry>,
}

/// What a versioned save did.
#[derive(Debug, Clone)]
pub enum Saved {
    /// The change is stored.
    Saved(Postmortem),
    /// Someone saved since `expected_version`; nothing was changed. `current` is what is stored.
    Stale { current: Postmortem },
}

/// A postmortem with everything its pages show.
#[derive(Debug, Clone, Serialize)]
pub struct PostmortemDetail {
    pub postmortem: Postmortem,
    pub incident: Incident,
    pub services: Vec<Service>,
    pub owner: Option<User>,
    pub reviewers: Vec<Reviewer>,
    pub history: Vec<HistoryEntry>,
    pub action_items: Vec<ActionItem>,
}

/// The key figures at the top of a postmortem, from its incident.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct KeyFigures {
    pub severity: Severity,
    pub triggered_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// From triggered to acknowledged.
    pub time_to_acknowledge: Option<TimeDelta>,
    /// From triggered to resolved (the incident's duration).
    pub time_to_resolve: Option<TimeDelta>,
}

impl KeyFigures {
    /// The figures of `incident`.
    pub fn of(incident: &Incident) -> Self {
        KeyFigures {
            severity: incident.severity,
            triggered_at: incident.triggered_at,
            acknowledged_at: incident.acknowledged_at,
            resolved_at: incident.resolved_at,
            time_to_acknowledge: incident.acknowledged_at.map(|a| a - incident.triggered_at),
            time_to_resolve: incident.resolved_at.map(|r| r - incident.triggered_at),
        }
    }
}

impl PostmortemDetail {
    /// The key figures from the incident.
    pub fn figures(&self) -> KeyFigures {
        KeyFigures::of(&self.incident)
    }

    /// Whether user `user_id` is a named reviewer.
    pub fn is_reviewer(&self, user_id: i64) -> bool {
        self.reviewers.iter().any(|r| r.user_id == user_id)
    }

    /// How many reviewers approved.
    pub fn approvals(&self) -> usize {
        self.reviewers
            .iter()
            .filter(|r| r.decision == Decision::Approved)
            .count()
    }
}

/// "1h 5m", "3m", "2d 4h": a duration for people.
pub fn human_duration(d: TimeDelta) -> String {
    let minutes = d.num_minutes().max(0);
    let (days, hours, mins) = (minutes / 1440, (minutes / 60) % 24, minutes % 60);
    match (days, hours) {
        (0, 0) => format!("{mins}m"),
        (0, _) => format!("{hours}h {mins}m"),
        _ => format!("{days}d {hours}h"),
    }
}

fn encode<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The words of a search, lowercased: runs of letters and digits (at most eight), the way
/// both full-text indexes split text. Punctuation only separates words.
fn search_words(raw: &str) -> Vec<String> {
    raw.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(8)
        .map(str::to_lowercase)
        .collect()
}

/// An FTS5 query: every word, each as a word beginning (`"replica"*`), all required.
fn fts5_query(words: &[String]) -> String {
    words
        .iter()
        .map(|w| format!("\"{w}\"*"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A PostgreSQL tsquery: every word, each as a word beginning (`replica:*`), all required.
fn tsquery(words: &[String]) -> String {
    words
        .iter()
        .map(|w| format!("{w}:*"))
        .collect::<Vec<_>>()
        .join(" & ")
}

async fn add_history(
    tx: &mut Tx,
    postmortem_id: i64,
    at: DateTime<Utc>,
    audit: &Audit,
    action: &str,
    comment: &str,
) -> Result<()> {
    tx!(tx, c => sqlx::query(
        "INSERT INTO postmortem_history (postmortem_id, at, actor_user_id, actor, action, comment) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(postmortem_id)
        .bind(at)
        .bind(audit.actor_user_id)
        .bind(&audit.actor)
        .bind(action)
        .bind(comment)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct SourceEntry {
    at: DateTime<Utc>,
    kind: String,
    body: String,
}

/// Creates the draft postmortem of `incident` inside the caller's transaction, filled from the
/// incident: title, a summary of its key figures and services, and its timeline. `Ok(None)`
/// when the incident already has one (so resolving twice creates one draft).
pub(crate) async fn create_draft(
    tx: &mut Tx,
    incident: &Incident,
    owner_id: Option<i64>,
    audit: &Audit,
    now: DateTime<Utc>,
) -> Result<Option<i64>> {
    let entries: Vec<SourceEntry> = tx!(tx, c => sqlx::query_as(
        "SELECT at, kind, body FROM timeline WHERE incident_id = $1 ORDER BY id")
        .bind(incident.id)
        .fetch_all(c)
        .await)?;
    let services: Vec<(String,)> = tx!(tx, c => sqlx::query_as(
        "SELECT s.name FROM services s JOIN incident_services i ON i.service_id = s.id WHERE i.incident_id = $1 ORDER BY s.name")
        .bind(incident.id)
        .fetch_all(c)
        .await)?;
    let timeline: Vec<PmTimelineEntry> = entries
        .into_iter()
        .filter(|e| !e.body.trim().is_empty())
        .map(|e| PmTimelineEntry {
            at: e.at,
            text: if e.kind == "note" {
                format!("Note: {}", e.body)
            } else {
                e.body
            },
            kept: true,
        })
        .collect();
    let figures = KeyFigures::of(incident);
    let services = services.into_iter().map(|s| s.0).collect::<Vec<_>>();
    let mut summary = format!(
        "{} incident #{} ({}) began {}",
        incident.severity,
        incident.number,
        if services.is_empty() {
            "no service named".to_owned()
        } else {
            services.join(", ")
        },
        incident.triggered_at.format("%Y-%m-%d %H:%M UTC"),
    );
    if let Some(tta) = figures.time_to_acknowledge {
        summary.push_str(&format!("; acknowledged after {}", human_duration(tta)));
    }
    if let Some(ttr) = figures.time_to_resolve {
        summary.push_str(&format!("; resolved after {}", human_duration(ttr)));
    }
    summary.push('.');
    let sections = Sections {
        summary,
        ..Sections::default()
    };
    let id: Option<(i64,)> = tx!(tx, c => sqlx::query_as(
        "INSERT INTO postmortems (incident_id, owner_id, status, title, sections, timeline, version, created_at, updated_at)
         VALUES ($1, $2, 'draft', $3, $4, $5, 1, $6, $6) ON CONFLICT (incident_id) DO NOTHING RETURNING id")
        .bind(incident.id)
        .bind(owner_id)
        .bind(&incident.title)
        .bind(encode(&sections)?)
        .bind(encode(&timeline)?)
        .bind(now)
        .fetch_optional(c)
        .await)?;
    let Some((id,)) = id else {
        return Ok(None);
    };
    add_history(tx, id, now, audit, "created", "").await?;
    record(
        tx,
        audit,
        now,
        Change::new(
            "postmortem.create",
            "postmortem",
            id,
            format!(
                "created the draft postmortem of #{} {}",
                incident.number, incident.title
            ),
        ),
    )
    .await?;
    Ok(Some(id))
}

impl Store {
    /// Starts the postmortem of incident `number` (any severity, any status) unless it has one;
    /// returns its id and whether it was created now. The owner is the commander, else the actor.
    pub async fn start_postmortem(&self, number: i64, audit: &Audit) -> Result<(i64, bool)> {
        let incident = self.incident(number).await?;
        let now = self.now();
        let mut tx = self.db().begin().await?;
        let owner = incident.commander_id.or(audit.actor_user_id);
        let created = create_draft(&mut tx, &incident, owner, audit, now).await?;
        tx.commit().await?;
        match created {
            Some(id) => Ok((id, true)),
            None => {
                let existing = self
                    .postmortem_of_incident(incident.id)
                    .await?
                    .ok_or(StoreError::NotFound)?;
                Ok((existing.id, false))
            }
        }
    }

    /// The postmortem with this id.
    pub async fn postmortem(&self, id: i64) -> Result<Postmortem> {
        let row: PostmortemRow = read!(self.db(), c => sqlx::query_as(concat!("SELECT ", pm_columns!(), " FROM postmortems WHERE id = $1"))
            .bind(id)
            .fetch_one(c)
            .await)?;
        row.try_into()
    }

    /// The postmortem of the incident with this id, if it has one.
    pub async fn postmortem_of_incident(&self, incident_id: i64) -> Result<Option<Postmortem>> {
        let row: Option<PostmortemRow> = read!(self.db(), c => sqlx::query_as(concat!("SELECT ", pm_columns!(), " FROM postmortems WHERE incident_id = $1"))
            .bind(incident_id)
            .fetch_optional(c)
            .await)?;
        row.map(TryInto::try_into).transpose()
    }

    /// The postmortem with its incident, services, owner, reviewers, history and action items.
    pub async fn postmortem_detail(&self, id: i64) -> Result<PostmortemDetail> {
        let postmortem = self.postmortem(id).await?;
        let incident: Incident = {
            let number: (i64,) = read!(self.db(), c => sqlx::query_as("SELECT number FROM incidents WHERE id = $1")
                .bind(postmortem.incident_id)
                .fetch_one(c)
                .await)?;
            self.incident(number.0).await?
        };
        let services: Vec<Service> = read!(self.db(), c => sqlx::query_as(
            "SELECT s.id, s.name, s.description, s.kind, s.workload_class, s.team_id, s.escalation_policy_id, s.response_targets, s.grouping_window_minutes, s.auto_resolve, s.severity_map, s.created_at, s.updated_at
             FROM services s JOIN incident_services i ON i.service_id = s.id WHERE i.incident_id = $1 ORDER BY s.name")
            .bind(incident.id)
            .fetch_all(c)
            .await)?;
        let owner = match postmortem.owner_id {
            Some(id) => Some(self.user(id).await?),
            None => None,
        };
        let reviewers: Vec<Reviewer> = read!(self.db(), c => sqlx::query_as(
            "SELECT r.user_id, u.name, u.email, r.decision, r.comment, r.decided_at
             FROM postmortem_reviewers r JOIN users u ON u.id = r.user_id WHERE r.postmortem_id = $1 ORDER BY u.name, u.id")
            .bind(id)
            .fetch_all(c)
            .await)?;
        let history: Vec<HistoryEntry> = read!(self.db(), c => sqlx::query_as(
            "SELECT id, at, actor, action, comment FROM postmortem_history WHERE postmortem_id = $1 ORDER BY id")
            .bind(id)
            .fetch_all(c)
            .await)?;
        let action_items = self.action_items(id).await?;
        Ok(PostmortemDetail {
            postmortem,
            incident,
            services,
            owner,
            reviewers,
            history,
            action_items,
        })
    }

    /// Postmortems matching `filter`, newest first, older than `cursor` (a postmortem id).
    pub async fn postmortems(
        &self,
        filter: &PostmortemFilter,
        limit: i64,
        cursor: Option<i64>,
    ) -> Result<Page<PostmortemSummary>> {
        let status = filter.status.map(PostmortemStatus::as_str);
        let severity = filter.severity.map(Severity::as_str);
        // Search uses the full-text index of migration 0010 (FTS5 / tsvector with GIN): words
        // and word beginnings in the title and the sections' text. A search with no letters or
        // digits in it matches nothing.
        let search = filter.search.as_deref().filter(|s| !s.trim().is_empty());
        let words = search.map(search_words).unwrap_or_default();
        let postgres = self.db().backend() == crate::Backend::Postgres;
        let rows: Vec<PostmortemSummary> = read!(self.db(), c => {
            let mut qb = sqlx::QueryBuilder::new("");
            if !words.is_empty() && postgres {
                // The matches first, on their own: the statement is prepared once and, after a
                // few runs, PostgreSQL may reuse a generic plan that cannot see the words and
                // walked every postmortem newest first (30 ms for a rare word at 5,000). Planned
                // alone, the only sensible route to the matches is the GIN index.
                qb.push("WITH hits AS MATERIALIZED (SELECT id FROM postmortems WHERE search @@ to_tsquery('simple', ")
                    .push_bind(tsquery(&words))
                    .push(")) ");
            }
            qb.push(
                "SELECT p.id, p.incident_id, i.number AS incident_number, p.status, p.title, i.severity, p.owner_id,
                        u.name AS owner_name, i.triggered_at, p.version, p.created_at, p.updated_at, p.published_at
                 FROM postmortems p JOIN incidents i ON i.id = p.incident_id LEFT JOIN users u ON u.id = p.owner_id
                 WHERE TRUE");
            if let Some(status) = status {
                qb.push(" AND p.status = ").push_bind(status);
            }
            if let Some(severity) = severity {
                qb.push(" AND i.severity = ").push_bind(severity);
            }
            if let Some(service_id) = filter.service_id {
                qb.push(" AND EXISTS (SELECT 1 FROM incident_services s WHERE s.incident_id = i.id AND s.service_id = ")
                    .push_bind(service_id)
                    .push(")");
            }
            if let Some(from) = filter.from {
                qb.push(" AND i.triggered_at >= ").push_bind(from);
            }
            if let Some(to) = filter.to {
                qb.push(" AND i.triggered_at < ").push_bind(to);
            }
            if search.is_some() && words.is_empty() {
                qb.push(" AND 1 = 0");
            } else if !words.is_empty() && postgres {
                qb.push(" AND p.id IN (SELECT id FROM hits)");
            } else if !words.is_empty() {
                qb.push(" AND p.id IN (SELECT rowid FROM postmortem_search WHERE postmortem_search MATCH ")
                    .push_bind(fts5_query(&words))
                    .push(")");
            }
            if let Some(cursor) = cursor {
                qb.push(" AND p.id < ").push_bind(cursor);
            }
            qb.push(" ORDER BY p.id DESC LIMIT ").push_bind(limit + 1);
            qb.build_query_as::<PostmortemSummary>().fetch_all(c).await
        })?;
        Ok(Page::from_rows(rows, limit, |p| p.id))
    }

    /// Saves the document if nobody saved since `expected_version`. Published postmortems are
    /// read-only (a conflict).
    pub async fn update_postmortem(
        &self,
        id: i64,
        edit: &PostmortemEdit,
        expected_version: i64,
        audit: &Audit,
    ) -> Result<Saved> {
        let before = self.postmortem(id).await?;
        if before.status == PostmortemStatus::Published {
            return Err(StoreError::Conflict(
                "a published postmortem cannot be edited".into(),
            ));
        }
        let now = self.now();
        let mut tx = self.db().begin().await?;
        let row: Option<PostmortemRow> = tx!(&mut tx, c => sqlx::query_as(concat!(
            "UPDATE postmortems SET title = $3, sections = $4, timeline = $5, version = version + 1, updated_at = $6
             WHERE id = $1 AND version = $2 AND status <> 'published' RETURNING ", pm_columns!()))
            .bind(id)
            .bind(expected_version)
            .bind(&edit.title)
            .bind(encode(&edit.sections)?)
            .bind(encode(&edit.timeline)?)
            .bind(now)
            .fetch_optional(c)
            .await)?;
        let Some(row) = row else {
            drop(tx);
            let current = self.postmortem(id).await?;
            return Ok(Saved::Stale { current });
        };
        let after = Postmortem::try_from(row)?;
        add_history(&mut tx, id, now, audit, "edited", "").await?;
        record(
            &mut tx,
            audit,
            now,
            Change::new(
                "postmortem.edit",
                "postmortem",
                id,
                format!("edited postmortem {}", after.title),
            )
            .before(&before)
            .after(&after),
        )
        .await?;
        tx.commit().await?;
        Ok(Saved::Saved(after))
    }

    /// Changes the status of a postmortem that is in `from` (and at `expected_version`, when
    /// given), bumping its version; writes history and audit. A conflict when it moved meanwhile.
    #[allow(clippy::too_many_arguments)]
    async fn transition(
        &self,
        tx: &mut Tx,
        id: i64,
        from: PostmortemStatus,
        to: PostmortemStatus,
        expected_version: Option<i64>,
        audit: &Audit,
        action: &str,
        comment: &str,
    ) -> Result<Postmortem> {
        let now = self.now();
        let row: Option<PostmortemRow> = tx!(tx, c => sqlx::query_as(concat!(
            "UPDATE postmortems SET status = $3, version = version + 1, updated_at = $5,
                 published_at = CASE WHEN $3 = 'published' THEN $5 ELSE published_at END
             WHERE id = $1 AND status = $2 AND ($4 IS NULL OR version = $4) RETURNING ", pm_columns!()))
            .bind(id)
            .bind(from.as_str())
            .bind(to.as_str())
            .bind(expected_version)
            .bind(now)
            .fetch_optional(c)
            .await)?;
        let Some(row) = row else {
            return Err(StoreError::Conflict(format!(
                "the postmortem is not {} any more, or someone changed it meanwhile; reload and try again",
                from.label().to_lowercase()
            )));
        };
        let after = Postmortem::try_from(row)?;
        add_history(tx, id, now, audit, action, comment).await?;
        record(
            tx,
            audit,
            now,
            Change::new(
                &format!("postmortem.{action}"),
                "postmortem",
                id,
                format!("postmortem {}: {} → {}", after.title, from, to),
            )
            .after(&after),
        )
        .await?;
        Ok(after)
    }

    /// Submits a draft for review by the named reviewers (at least one); earlier decisions are
    /// forgotten, everyone reviews afresh.
    pub async fn submit_postmortem(
        &self,
        id: i64,
        reviewer_ids: &[i64],
        expected_version: Option<i64>,
        audit: &Audit,
    ) -> Result<Postmortem> {
        let mut reviewers = reviewer_ids.to_vec();
        reviewers.sort_unstable();
        reviewers.dedup();
        if reviewers.is_empty() {
            return Err(StoreError::Conflict(
                "name at least one reviewer to submit for review".into(),
            ));
        }
        self.postmortem(id).await?;
        let mut tx = self.db().begin().await?;
        let after = self
            .transition(
                &mut tx,
                id,
                PostmortemStatus::Draft,
                PostmortemStatus::InReview,
                expected_version,
                audit,
                "submitted",
                "",
            )
            .await?;
        tx!(&mut tx, c => sqlx::query("DELETE FROM postmortem_reviewers WHERE postmortem_id = $1")
            .bind(id)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        for user_id in reviewers {
            tx!(&mut tx, c => sqlx::query(
                "INSERT INTO postmortem_reviewers (postmortem_id, user_id, decision, comment) VALUES ($1, $2, 'pending', '')")
                .bind(id)
                .bind(user_id)
                .execute(c)
                .await
                .map(|r| r.rows_affected()))
            .map_err(|e| match StoreError::from(e) {
                StoreError::Conflict(_) => StoreError::Conflict(format!("user {user_id} does not exist")),
                other => other,
            })?;
        }
        tx.commit().await?;
        Ok(after)
    }

    /// Records the acting reviewer's decision on a postmortem in review. Requesting changes
    /// (a comment is required) sends it back to draft; approving leaves it in review.
    pub async fn review_postmortem(
        &self,
        id: i64,
        decision: Decision,
        comment: &str,
        audit: &Audit,
    ) -> Result<Postmortem> {
        let before = self.postmortem(id).await?;
        if before.status != PostmortemStatus::InReview {
            return Err(StoreError::Conflict(
                "the postmortem is not in review".into(),
            ));
        }
        let Some(user_id) = audit.actor_user_id else {
            return Err(StoreError::Conflict("only a reviewer can review".into()));
        };
        if decision == Decision::Pending {
            return Err(StoreError::Conflict(
                "choose approve or request changes".into(),
            ));
        }
        if decision == Decision::ChangesRequested && comment.trim().is_empty() {
            return Err(StoreError::Conflict(
                "say what should change in a comment".into(),
            ));
        }
        let now = self.now();
        let mut tx = self.db().begin().await?;
        let changed = tx!(&mut tx, c => sqlx::query(
            "UPDATE postmortem_reviewers SET decision = $3, comment = $4, decided_at = $5 WHERE postmortem_id = $1 AND user_id = $2")
            .bind(id)
            .bind(user_id)
            .bind(decision.as_str())
            .bind(comment.trim())
            .bind(now)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        if changed == 0 {
            return Err(StoreError::Conflict(
                "you are not a reviewer of this postmortem".into(),
            ));
        }
        let after = match decision {
            Decision::ChangesRequested => {
                self.transition(
                    &mut tx,
                    id,
                    PostmortemStatus::InReview,
                    PostmortemStatus::Draft,
                    None,
                    audit,
                    "changes_requested",
                    comment.trim(),
                )
                .await?
            }
            _ => {
                add_history(&mut tx, id, now, audit, "approved", comment.trim()).await?;
                record(
                    &mut tx,
                    audit,
                    now,
                    Change::new(
                        "postmortem.approve",
                        "postmortem",
                        id,
                        format!("approved postmortem {}", before.title),
                    ),
                )
                .await?;
                before
            }
        };
        tx.commit().await?;
        Ok(after)
    }

    /// Publishes a postmortem in review that at least one reviewer approved.
    pub async fn publish_postmortem(
        &self,
        id: i64,
        expected_version: Option<i64>,
        audit: &Audit,
    ) -> Result<Postmortem> {
        self.postmortem(id).await?;
        let mut tx = self.db().begin().await?;
        let (approved,): (i64,) = tx!(&mut tx, c => sqlx::query_as(
            "SELECT COUNT(*) FROM postmortem_reviewers WHERE postmortem_id = $1 AND decision = 'approved'")
            .bind(id)
            .fetch_one(c)
            .await)?;
        if approved == 0 {
            return Err(StoreError::Conflict(
                "a postmortem needs at least one approval before it is published".into(),
            ));
        }
        let after = self
            .transition(
                &mut tx,
                id,
                PostmortemStatus::InReview,
                PostmortemStatus::Published,
                expected_version,
                audit,
                "published",
                "",
            )
            .await?;
        tx.commit().await?;
        Ok(after)
    }

    /// The action items of a postmortem, in the order they were added.
    pub async fn action_items(&self, postmortem_id: i64) -> Result<Vec<ActionItem>> {
        let rows: Vec<ActionItemRow> = read!(self.db(), c => sqlx::query_as(concat!(
            "SELECT ", item_columns!(), " WHERE a.postmortem_id = $1 ORDER BY a.id"))
            .bind(postmortem_id)
            .fetch_all(c)
            .await)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// The action item with this id.
    pub async fn action_item(&self, id: i64) -> Result<ActionItem> {
        let row: ActionItemRow = read!(self.db(), c => sqlx::query_as(concat!(
            "SELECT ", item_columns!(), " WHERE a.id = $1"))
            .bind(id)
            .fetch_one(c)
            .await)?;
        row.try_into()
    }

    /// Adds an action item to a postmortem.
    pub async fn add_action_item(
        &self,
        postmortem_id: i64,
        fields: &ActionItemFields,
        audit: &Audit,
    ) -> Result<ActionItem> {
        let pm = self.postmortem(postmortem_id).await?;
        let now = self.now();
        let mut tx = self.db().begin().await?;
        let (id,): (i64,) = tx!(&mut tx, c => sqlx::query_as(
            "INSERT INTO action_items (postmortem_id, title, owner_id, due_date, priority, status, tracker_url, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id")
            .bind(postmortem_id)
            .bind(&fields.title)
            .bind(fields.owner_id)
            .bind(fields.due_date.map(|d| d.format("%Y-%m-%d").to_string()))
            .bind(fields.priority.as_str())
            .bind(fields.status.as_str())
            .bind(&fields.tracker_url)
            .bind(now)
            .fetch_one(c)
            .await)
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => StoreError::Conflict("the owner does not exist".into()),
            other => other,
        })?;
        add_history(
            &mut tx,
            postmortem_id,
            now,
            audit,
            "action_item",
            &format!("added: {}", fields.title),
        )
        .await?;
        record(
            &mut tx,
            audit,
            now,
            Change::new(
                "action_item.create",
                "action_item",
                id,
                format!(
                    "added action item {} to postmortem {}",
                    fields.title, pm.title
                ),
            )
            .after(fields),
        )
        .await?;
        tx.commit().await?;
        self.action_item(id).await
    }

    /// Replaces an action item's fields.
    pub async fn update_action_item(
        &self,
        id: i64,
        fields: &ActionItemFields,
        audit: &Audit,
    ) -> Result<ActionItem> {
        let before = self.action_item(id).await?;
        let now = self.now();
        let mut tx = self.db().begin().await?;
        tx!(&mut tx, c => sqlx::query(
            "UPDATE action_items SET title = $2, owner_id = $3, due_date = $4, priority = $5, status = $6, tracker_url = $7, updated_at = $8,
                 reminded_at = CASE WHEN $9 THEN NULL ELSE reminded_at END
             WHERE id = $1")
            .bind(id)
            .bind(&fields.title)
            .bind(fields.owner_id)
            .bind(fields.due_date.map(|d| d.format("%Y-%m-%d").to_string()))
            .bind(fields.priority.as_str())
            .bind(fields.status.as_str())
            .bind(&fields.tracker_url)
            .bind(now)
            .bind(before.due_date != fields.due_date)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => StoreError::Conflict("the owner does not exist".into()),
            other => other,
        })?;
        let comment = if before.status != fields.status {
            format!(
                "{}: {} → {}",
                fields.title,
                before.status.label(),
                fields.status.label()
            )
        } else {
            format!("edited: {}", fields.title)
        };
        add_history(
            &mut tx,
            before.postmortem_id,
            now,
            audit,
            "action_item",
            &comment,
        )
        .await?;
        record(
            &mut tx,
            audit,
            now,
            Change::new(
                "action_item.update",
                "action_item",
                id,
                format!("action item {comment}"),
            )
            .before(&before)
            .after(fields),
        )
        .await?;
        tx.commit().await?;
        self.action_item(id).await
    }

    /// Deletes an action item.
    pub async fn delete_action_item(&self, id: i64, audit: &Audit) -> Result<()> {
        let before = self.action_item(id).await?;
        let now = self.now();
        let mut tx = self.db().begin().await?;
        tx!(&mut tx, c => sqlx::query("DELETE FROM action_items WHERE id = $1")
            .bind(id)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        add_history(
            &mut tx,
            before.postmortem_id,
            now,
            audit,
            "action_item",
            &format!("removed: {}", before.title),
        )
        .await?;
        record(
            &mut tx,
            audit,
            now,
            Change::new(
                "action_item.delete",
                "action_item",
                id,
                format!("deleted action item {}", before.title),
            )
            .before(&before),
        )
        .await?;
        tx.commit().await
    }

    /// Open or in-progress action items due before `today`, oldest due first.
    pub async fn overdue_action_items(&self, today: NaiveDate) -> Result<Vec<OverdueItem>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            item: ActionItemRow,
            incident_number: i64,
            postmortem_title: String,
            owner_email: Option<String>,
        }
        let rows: Vec<Row> = read!(self.db(), c => sqlx::query_as(concat!(
            "SELECT i.number AS incident_number, p.title AS postmortem_title, u.email AS owner_email, ", item_columns!(),
            " JOIN postmortems p ON p.id = a.postmortem_id JOIN incidents i ON i.id = p.incident_id
             WHERE a.status IN ('open', 'in_progress') AND a.due_date IS NOT NULL AND a.due_date < $1
             ORDER BY a.due_date, a.id"))
            .bind(today.format("%Y-%m-%d").to_string())
            .fetch_all(c)
            .await)?;
        rows.into_iter()
            .map(|r| {
                Ok(OverdueItem {
                    item: r.item.try_into()?,
                    incident_number: r.incident_number,
                    postmortem_title: r.postmortem_title,
                    owner_email: r.owner_email,
                })
            })
            .collect()
    }

    /// Notes that the owner of an action item was reminded (so the engine reminds once).
    pub async fn mark_action_item_reminded(&self, id: i64, at: DateTime<Utc>) -> Result<bool> {
        let mut tx = self.db().begin().await?;
        let n = tx!(&mut tx, c => sqlx::query("UPDATE action_items SET reminded_at = $2 WHERE id = $1 AND reminded_at IS NULL")
            .bind(id)
            .bind(at)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        tx.commit().await?;
        Ok(n == 1)
    }
}

/// Filters of the open action-item overview; each narrows it when set.
#[derive(Debug, Clone, Default)]
pub struct OpenItemFilter {
    pub owner_id: Option<i64>,
    /// Owned by a member of this team.
    pub team_id: Option<i64>,
    /// Only items due before this date (overdue on it).
    pub due_before: Option<NaiveDate>,
    /// Only items of published postmortems (what viewers may read).
    pub published_only: bool,
}

/// An open (or in-progress) action item with the postmortem it belongs to.
#[derive(Debug, Clone, Serialize)]
pub struct OpenItem {
    pub item: ActionItem,
    pub postmortem_title: String,
    pub postmortem_status: PostmortemStatus,
    pub incident_number: i64,
}

/// A person's membership of a team, for grouping action items by their owner's teams.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Membership {
    pub user_id: i64,
    pub team_id: i64,
    pub team_name: String,
}

impl Store {
    /// Open and in-progress action items matching `filter`, by owner name (unowned last), then
    /// due date (undated last); at most `limit`.
    pub async fn open_action_items(
        &self,
        filter: &OpenItemFilter,
        limit: i64,
    ) -> Result<Vec<OpenItem>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            item: ActionItemRow,
            incident_number: i64,
            postmortem_title: String,
            postmortem_status: String,
        }
        let due_before = filter.due_before.map(|d| d.format("%Y-%m-%d").to_string());
        let rows: Vec<Row> = read!(self.db(), c => {
            let mut qb = sqlx::QueryBuilder::new(concat!(
                "SELECT i.number AS incident_number, p.title AS postmortem_title, p.status AS postmortem_status, ",
                item_columns!(),
                " JOIN postmortems p ON p.id = a.postmortem_id JOIN incidents i ON i.id = p.incident_id
                 WHERE a.status IN ('open', 'in_progress')"));
            if filter.published_only {
                qb.push(" AND p.status = 'published'");
            }
            if let Some(owner) = filter.owner_id {
                qb.push(" AND a.owner_id = ").push_bind(owner);
            }
            if let Some(team) = filter.team_id {
                qb.push(" AND a.owner_id IN (SELECT m.user_id FROM team_members m WHERE m.team_id = ")
                    .push_bind(team)
                    .push(")");
            }
            if let Some(before) = &due_before {
                qb.push(" AND a.due_date IS NOT NULL AND a.due_date < ").push_bind(before.clone());
            }
            qb.push(" ORDER BY u.name IS NULL, u.name, a.owner_id, a.due_date IS NULL, a.due_date, a.id LIMIT ")
                .push_bind(limit);
            qb.build_query_as::<Row>().fetch_all(c).await
        })?;
        rows.into_iter()
            .map(|r| {
                Ok(OpenItem {
                    item: r.item.try_into()?,
                    incident_number: r.incident_number,
                    postmortem_title: r.postmortem_title,
                    postmortem_status: r.postmortem_status.parse().map_err(StoreError::Corrupt)?,
                })
            })
            .collect()
    }

    /// Every (person, team) membership, by team name.
    pub async fn memberships(&self) -> Result<Vec<Membership>> {
        read!(self.db(), c => sqlx::query_as(
            "SELECT m.user_id, t.id AS team_id, t.name AS team_name FROM team_members m JOIN teams t ON t.id = m.team_id
             ORDER BY t.name, t.id, m.user_id")
            .fetch_all(c)
            .await)
        .map_err(Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn searches_split_into_lowercase_words() {
        assert_eq!(search_words("Stale  REPLICA"), ["stale", "replica"]);
        assert_eq!(
            search_words("p99-latency, v4.2"),
            ["p99", "latency", "v4", "2"]
        );
        assert_eq!(
            search_words("Über \"quoted\" 100%"),
            ["über", "quoted", "100"]
        );
        assert!(search_words("%%% -- '").is_empty());
        assert_eq!(search_words("a b c d e f g h i j").len(), 8);
    }

    #[test]
    fn queries_ask_for_word_beginnings_all_required() {
        let words = search_words("stale replica");
        assert_eq!(fts5_query(&words), "\"stale\"* \"replica\"*");
        assert_eq!(tsquery(&words), "stale:* & replica:*");
    }
}
