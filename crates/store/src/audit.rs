//! The audit log: who changed what, when, and from where.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{Page, Result, Store, Tx, read, tx};

/// Who is making a change, recorded with it.
#[derive(Debug, Clone)]
pub struct Audit {
    /// The signed-in user, if any (none for the command line, first-run setup, or a failed sign-in).
    pub actor_user_id: Option<i64>,
    /// A readable name for the actor: an email, `cli` or `system`.
    pub actor: String,
    /// The client's address, for changes made over HTTP.
    pub client_addr: Option<String>,
}

impl Audit {
    /// Changes made from the command line on this machine.
    pub fn cli() -> Self {
        Audit {
            actor_user_id: None,
            actor: "cli".into(),
            client_addr: None,
        }
    }

    /// Changes made by Heliograph itself.
    pub fn system() -> Self {
        Audit {
            actor_user_id: None,
            actor: "system".into(),
            client_addr: None,
        }
    }
}

/// What happened, for one audit entry.
pub struct Change<'a> {
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: Option<String>,
    pub summary: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

impl<'a> Change<'a> {
    /// A change of `action` on a target, described by `summary`.
    pub fn new(
        action: &'a str,
        target_type: &'a str,
        target_id: impl ToString,
        summary: impl Into<String>,
    ) -> Self {
        Change {
            action,
            target_type,
            target_id: Some(target_id.to_string()),
            summary: summary.into(),
            before: None,
            after: None,
        }
    }

    /// Records the state before the change.
    pub fn before(mut self, value: impl Serialize) -> Self {
        self.before = serde_json::to_value(value).ok();
        self
    }

    /// Records the state after the change.
    pub fn after(mut self, value: impl Serialize) -> Self {
        self.after = serde_json::to_value(value).ok();
        self
    }
}

/// One recorded change.
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor_user_id: Option<i64>,
    pub actor: String,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    pub summary: String,
    pub before: Option<String>,
    pub after: Option<String>,
    pub client_addr: Option<String>,
}

/// Which entries to list; every field narrows the list when set.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor_user_id: Option<i64>,
    pub target_type: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// Writes one entry inside the caller's transaction.
/// [`record`] as a statement for a [`crate::batch::Batch`].
pub(crate) fn record_statement(
    audit: &Audit,
    at: DateTime<Utc>,
    change: Change<'_>,
) -> (&'static str, Vec<crate::batch::Arg>) {
    (
        "INSERT INTO audit_log (at, actor_user_id, actor, action, target_type, target_id, summary, before, after, client_addr)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        vec![
            at.into(),
            audit.actor_user_id.into(),
            audit.actor.as_str().into(),
            change.action.into(),
            change.target_type.into(),
            change.target_id.into(),
            change.summary.into(),
            change.before.map(|v| v.to_string()).into(),
            change.after.map(|v| v.to_string()).into(),
            audit.client_addr.clone().into(),
        ],
    )
}

pub async fn record(
    tx: &mut Tx,
    audit: &Audit,
    at: DateTime<Utc>,
    change: Change<'_>,
) -> Result<()> {
    let before = change.before.map(|v| v.to_string());
    let after = change.after.map(|v| v.to_string());
    tx!(tx, c => sqlx::query(
        "INSERT INTO audit_log (at, actor_user_id, actor, action, target_type, target_id, summary, before, after, client_addr)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(at)
    .bind(audit.actor_user_id)
    .bind(&audit.actor)
    .bind(change.action)
    .bind(change.target_type)
    .bind(&change.target_id)
    .bind(&change.summary)
    .bind(&before)
    .bind(&after)
    .bind(&audit.client_addr)
    .execute(c)
    .await.map(|r| r.rows_affected()))?;
    Ok(())
}

impl Store {
    /// Records a change that has no other row to write (a sign-in, a failed sign-in).
    pub async fn audit(&self, audit: &Audit, change: Change<'_>) -> Result<()> {
        let mut tx = self.db().begin().await?;
        record(&mut tx, audit, self.now(), change).await?;
        tx.commit().await
    }

    /// Lists audit entries, newest first.
    pub async fn audit_log(
        &self,
        filter: &AuditFilter,
        limit: i64,
        cursor: Option<i64>,
    ) -> Result<Page<AuditEntry>> {
        let rows: Vec<AuditEntry> = read!(self.db(), c => sqlx::query_as(
            "SELECT id, at, actor_user_id, actor, action, target_type, target_id, summary, before, after, client_addr
             FROM audit_log
             WHERE ($1 IS NULL OR actor_user_id = $1)
               AND ($2 IS NULL OR target_type = $2)
               AND ($3 IS NULL OR at >= $3)
               AND ($4 IS NULL OR at < $4)
               AND ($5 IS NULL OR id < $5)
             ORDER BY id DESC
             LIMIT $6",
        )
        .bind(filter.actor_user_id)
        .bind(&filter.target_type)
        .bind(filter.from)
        .bind(filter.to)
        .bind(cursor)
        .bind(limit + 1)
        .fetch_all(c)
        .await)?;
        Ok(Page::from_rows(rows, limit, |e| e.id))
    }

    /// The distinct target types in the log, for the filter's choices.
    pub async fn audit_target_types(&self) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = read!(self.db(), c => sqlx::query_as(
            "SELECT DISTINCT target_type FROM audit_log ORDER BY target_type",
        )
        .fetch_all(c)
        .await)?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }
}
