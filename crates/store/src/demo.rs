//! Bulk loaders for the demo organisation and for benchmarks: alerts with their events,
//! notifications, response breaches and postmortems with their action items, thousands of rows
//! per statement and transaction instead of one transaction per row.
//!
//! Like [`Store::seed_incidents`](crate::Store::seed_incidents), each load records one audit
//! entry for the whole load. The rows are written as given: callers build consistent history.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};

use crate::audit::{Change, record};
use crate::postmortems::{PmTimelineEntry, Sections};
use crate::{Audit, Result, Store, StoreError, read, tx};

/// Rows per multi-row `INSERT` (well under both backends' bind-parameter limits).
const ROWS_PER_STATEMENT: usize = 1_000;
/// Rows per transaction.
const ROWS_PER_TX: usize = 20_000;

/// One alert to load, with the events received for it (oldest first).
#[derive(Debug, Clone)]
pub struct DemoAlert {
    pub integration_id: i64,
    pub service_id: i64,
    pub incident_id: Option<i64>,
    pub dedup_key: String,
    /// `triggered`, `acknowledged` or `resolved`.
    pub status: &'static str,
    pub summary: String,
    pub source: Option<String>,
    /// `critical`, `error`, `warning` or `info`.
    pub severity: &'static str,
    /// How many trigger events the alert has seen.
    pub count: i64,
    pub payload: String,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// `(at, action)` with action `trigger`, `acknowledge` or `resolve`; each stored with
    /// `payload`.
    pub events: Vec<(DateTime<Utc>, &'static str)>,
}

/// One notification to load (a page, typically already sent).
#[derive(Debug, Clone)]
pub struct DemoNotification {
    /// Unique across all notifications.
    pub idempotency_key: String,
    pub incident_id: Option<i64>,
    pub user_id: Option<i64>,
    pub contact_method_id: Option<i64>,
    /// `page`, `handoff`, `reminder`, `test` or `breach`.
    pub purpose: &'static str,
    /// `email`, `webhook` or `slack`.
    pub channel: &'static str,
    pub address: String,
    pub subject: String,
    pub level: Option<i64>,
    pub repeat_no: Option<i64>,
    /// `pending`, `sent`, `failed` or `cancelled`.
    pub state: &'static str,
    pub attempts: i64,
    pub created_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// One missed response target to load.
#[derive(Debug, Clone)]
pub struct DemoBreach {
    pub incident_id: i64,
    pub service_id: i64,
    /// `acknowledge` or `resolve`.
    pub kind: &'static str,
    pub target_minutes: i64,
    pub breached_at: DateTime<Utc>,
}

/// One postmortem to load with its reviewers, history and action items.
#[derive(Debug, Clone)]
pub struct DemoPostmortem {
    pub incident_id: i64,
    pub owner_id: Option<i64>,
    /// `draft`, `in_review` or `published`.
    pub status: &'static str,
    pub title: String,
    pub sections: Sections,
    pub timeline: Vec<PmTimelineEntry>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub published_at: Option<DateTime<Utc>>,
    /// `(user, decision, decided_at)`; decision `pending`, `approved` or `changes_requested`.
    pub reviewers: Vec<(i64, &'static str, Option<DateTime<Utc>>)>,
    /// Oldest first.
    pub history: Vec<DemoHistory>,
    pub action_items: Vec<DemoActionItem>,
}

/// One history entry of a [`DemoPostmortem`]: `(at, actor user, actor, action, comment)`, the
/// action `created`, `edited`, `submitted`, `approved` or `published`.
pub type DemoHistory = (DateTime<Utc>, Option<i64>, String, &'static str, String);

/// One action item of a [`DemoPostmortem`].
#[derive(Debug, Clone)]
pub struct DemoActionItem {
    pub title: String,
    pub owner_id: Option<i64>,
    pub due_date: Option<NaiveDate>,
    /// `high`, `medium` or `low`.
    pub priority: &'static str,
    /// `open`, `in_progress`, `done` or `wont_do`.
    pub status: &'static str,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What already exists that a demo load would collide with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Occupancy {
    pub teams: i64,
    pub services: i64,
    pub schedules: i64,
    pub escalation_policies: i64,
    pub incidents: i64,
    /// Users whose email is in `domain`.
    pub demo_users: i64,
}

impl Occupancy {
    /// Whether the database holds none of the things the demo creates.
    pub fn is_empty(&self) -> bool {
        *self == Occupancy::default()
    }
}

impl Store {
    /// Counts what a demo load would collide with: any team, service, schedule, escalation
    /// policy or incident, and users whose email ends in `@{domain}`.
    pub async fn demo_occupancy(&self, domain: &str) -> Result<Occupancy> {
        let pattern = format!("%@{domain}");
        let row: (i64, i64, i64, i64, i64, i64) = read!(self.db(), c => sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM teams), (SELECT COUNT(*) FROM services), (SELECT COUNT(*) FROM schedules),
                    (SELECT COUNT(*) FROM escalation_policies), (SELECT COUNT(*) FROM incidents),
                    (SELECT COUNT(*) FROM users WHERE email LIKE $1)")
            .bind(&pattern)
            .fetch_one(c)
            .await)?;
        Ok(Occupancy {
            teams: row.0,
            services: row.1,
            schedules: row.2,
            escalation_policies: row.3,
            incidents: row.4,
            demo_users: row.5,
        })
    }

    /// The ids of incidents by number.
    pub async fn incident_ids_by_number(&self) -> Result<HashMap<i64, i64>> {
        let rows: Vec<(i64, i64)> = read!(self.db(), c => sqlx::query_as("SELECT number, id FROM incidents")
            .fetch_all(c)
            .await)?;
        Ok(rows.into_iter().collect())
    }

    /// Loads alerts and their events. Returns how many alerts were loaded.
    pub async fn load_alerts(&self, alerts: &[DemoAlert], audit: &Audit) -> Result<u64> {
        for chunk in alerts.chunks(ROWS_PER_TX / 4) {
            let mut tx = self.db().begin().await?;
            for part in chunk.chunks(ROWS_PER_STATEMENT / 2) {
                // Each alert is found again by (integration, dedup key, first seen), which the
                // generator keeps unique, so the events attach to the right ids whatever order
                // RETURNING gives.
                let ids: Vec<(i64, i64, String, DateTime<Utc>)> = tx!(&mut tx, c => {
                    let mut qb = sqlx::QueryBuilder::new(
                        "INSERT INTO alerts (integration_id, service_id, dedup_key, status, summary, source, severity, incident_id, count, payload, first_seen_at, last_seen_at, resolved_at) ");
                    qb.push_values(part, |mut b, a| {
                        b.push_bind(a.integration_id)
                            .push_bind(a.service_id)
                            .push_bind(&a.dedup_key)
                            .push_bind(a.status)
                            .push_bind(&a.summary)
                            .push_bind(&a.source)
                            .push_bind(a.severity)
                            .push_bind(a.incident_id)
                            .push_bind(a.count)
                            .push_bind(&a.payload)
                            .push_bind(a.first_seen_at)
                            .push_bind(a.last_seen_at)
                            .push_bind(a.resolved_at);
                    });
                    qb.push(" RETURNING id, integration_id, dedup_key, first_seen_at");
                    qb.build_query_as().fetch_all(c).await
                })?;
                let by_key: HashMap<(i64, &str, DateTime<Utc>), i64> = ids
                    .iter()
                    .map(|(id, i, k, t)| ((*i, k.as_str(), *t), *id))
                    .collect();
                let mut events: Vec<(i64, DateTime<Utc>, &'static str, &str)> = Vec::new();
                for a in part {
                    let id = by_key
                        .get(&(a.integration_id, a.dedup_key.as_str(), a.first_seen_at))
                        .copied()
                        .ok_or_else(|| {
                            StoreError::Conflict(format!(
                                "two demo alerts share integration {}, key {} and first-seen time",
                                a.integration_id, a.dedup_key
                            ))
                        })?;
                    events.extend(
                        a.events
                            .iter()
                            .map(|(at, action)| (id, *at, *action, a.payload.as_str())),
                    );
                }
                for rows in events.chunks(ROWS_PER_STATEMENT) {
                    tx!(&mut tx, c => {
                        let mut qb = sqlx::QueryBuilder::new("INSERT INTO alert_events (alert_id, at, action, payload) ");
                        qb.push_values(rows, |mut b, (id, at, action, payload)| {
                            b.push_bind(*id).push_bind(*at).push_bind(*action).push_bind(*payload);
                        });
                        qb.build().execute(c).await.map(|r| r.rows_affected())
                    })?;
                }
            }
            tx.commit().await?;
        }
        self.analyze_and_record(audit, "alert.seed", "alert", alerts.len())
            .await?;
        Ok(alerts.len() as u64)
    }

    /// Loads notifications. Returns how many were loaded.
    pub async fn load_notifications(
        &self,
        notifications: &[DemoNotification],
        audit: &Audit,
    ) -> Result<u64> {
        for chunk in notifications.chunks(ROWS_PER_TX) {
            let mut tx = self.db().begin().await?;
            for rows in chunk.chunks(ROWS_PER_STATEMENT) {
                tx!(&mut tx, c => {
                    let mut qb = sqlx::QueryBuilder::new(
                        "INSERT INTO notifications (idempotency_key, incident_id, user_id, contact_method_id, purpose, channel, address, subject, level, repeat_no, state, attempts, created_at, due_at, sent_at) ");
                    qb.push_values(rows, |mut b, n| {
                        b.push_bind(&n.idempotency_key)
                            .push_bind(n.incident_id)
                            .push_bind(n.user_id)
                            .push_bind(n.contact_method_id)
                            .push_bind(n.purpose)
                            .push_bind(n.channel)
                            .push_bind(&n.address)
                            .push_bind(&n.subject)
                            .push_bind(n.level)
                            .push_bind(n.repeat_no)
                            .push_bind(n.state)
                            .push_bind(n.attempts)
                            .push_bind(n.created_at)
                            .push_bind(n.due_at)
                            .push_bind(n.sent_at);
                    });
                    qb.build().execute(c).await.map(|r| r.rows_affected())
                })?;
            }
            tx.commit().await?;
        }
        self.analyze_and_record(
            audit,
            "notification.seed",
            "notification",
            notifications.len(),
        )
        .await?;
        Ok(notifications.len() as u64)
    }

    /// Loads response-target breaches. Returns how many were loaded.
    pub async fn load_breaches(&self, breaches: &[DemoBreach], audit: &Audit) -> Result<u64> {
        for chunk in breaches.chunks(ROWS_PER_TX) {
            let mut tx = self.db().begin().await?;
            for rows in chunk.chunks(ROWS_PER_STATEMENT) {
                tx!(&mut tx, c => {
                    let mut qb = sqlx::QueryBuilder::new(
                        "INSERT INTO response_breaches (incident_id, service_id, kind, target_minutes, breached_at) ");
                    qb.push_values(rows, |mut b, r| {
                        b.push_bind(r.incident_id)
                            .push_bind(r.service_id)
                            .push_bind(r.kind)
                            .push_bind(r.target_minutes)
                            .push_bind(r.breached_at);
                    });
                    qb.build().execute(c).await.map(|r| r.rows_affected())
                })?;
            }
            tx.commit().await?;
        }
        self.analyze_and_record(audit, "breach.seed", "response_breach", breaches.len())
            .await?;
        Ok(breaches.len() as u64)
    }

    /// Loads postmortems with their reviewers, history and action items, 500 per
    /// transaction. Returns how many postmortems and action items were loaded.
    pub async fn load_postmortems(
        &self,
        postmortems: &[DemoPostmortem],
        audit: &Audit,
    ) -> Result<(u64, u64)> {
        let mut items = 0u64;
        for chunk in postmortems.chunks(500) {
            let mut tx = self.db().begin().await?;
            for pm in chunk {
                let sections = serde_json::to_string(&pm.sections)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let timeline = serde_json::to_string(&pm.timeline)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let version = 1 + pm.history.len() as i64;
                let (id,): (i64,) = tx!(&mut tx, c => sqlx::query_as(
                    "INSERT INTO postmortems (incident_id, owner_id, status, title, sections, timeline, version, created_at, updated_at, published_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id")
                    .bind(pm.incident_id)
                    .bind(pm.owner_id)
                    .bind(pm.status)
                    .bind(&pm.title)
                    .bind(&sections)
                    .bind(&timeline)
                    .bind(version)
                    .bind(pm.created_at)
                    .bind(pm.updated_at)
                    .bind(pm.published_at)
                    .fetch_one(c)
                    .await)?;
                for (user_id, decision, decided_at) in &pm.reviewers {
                    tx!(&mut tx, c => sqlx::query(
                        "INSERT INTO postmortem_reviewers (postmortem_id, user_id, decision, decided_at) VALUES ($1, $2, $3, $4)")
                        .bind(id)
                        .bind(user_id)
                        .bind(*decision)
                        .bind(decided_at)
                        .execute(c)
                        .await
                        .map(|r| r.rows_affected()))?;
                }
                if !pm.history.is_empty() {
                    tx!(&mut tx, c => {
                        let mut qb = sqlx::QueryBuilder::new(
                            "INSERT INTO postmortem_history (postmortem_id, at, actor_user_id, actor, action, comment) ");
                        qb.push_values(&pm.history, |mut b, (at, user, actor, action, comment)| {
                            b.push_bind(id).push_bind(*at).push_bind(*user).push_bind(actor).push_bind(*action).push_bind(comment);
                        });
                        qb.build().execute(c).await.map(|r| r.rows_affected())
                    })?;
                }
                if !pm.action_items.is_empty() {
                    tx!(&mut tx, c => {
                        let mut qb = sqlx::QueryBuilder::new(
                            "INSERT INTO action_items (postmortem_id, title, owner_id, due_date, priority, status, created_at, updated_at) ");
                        qb.push_values(&pm.action_items, |mut b, a| {
                            b.push_bind(id)
                                .push_bind(&a.title)
                                .push_bind(a.owner_id)
                                .push_bind(a.due_date.map(|d| d.format("%Y-%m-%d").to_string()))
                                .push_bind(a.priority)
                                .push_bind(a.status)
                                .push_bind(a.created_at)
                                .push_bind(a.updated_at);
                        });
                        qb.build().execute(c).await.map(|r| r.rows_affected())
                    })?;
                    items += pm.action_items.len() as u64;
                }
            }
            tx.commit().await?;
        }
        self.analyze_and_record(audit, "postmortem.seed", "postmortem", postmortems.len())
            .await?;
        Ok((postmortems.len() as u64, items))
    }

    /// Refreshes the planner's statistics after a bulk load and records one audit entry.
    async fn analyze_and_record(
        &self,
        audit: &Audit,
        action: &str,
        target: &str,
        count: usize,
    ) -> Result<()> {
        let mut tx = self.db().begin().await?;
        tx!(&mut tx, c => sqlx::query("ANALYZE").execute(c).await.map(|r| r.rows_affected()))?;
        tx.commit().await?;
        let mut tx = self.db().begin().await?;
        record(
            &mut tx,
            audit,
            self.now(),
            Change::new(
                action,
                target,
                count,
                format!("loaded {count} {target} rows in bulk"),
            ),
        )
        .await?;
        tx.commit().await
    }
}
