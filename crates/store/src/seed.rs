//! Bulk loading of incidents with their timelines, for the demo organisation and for
//! benchmarks: thousands of rows per transaction instead of one transaction each.

use chrono::{DateTime, Utc};
use heliograph_domain::{IncidentStatus, Severity};

use crate::audit::{Change, record};
use crate::{Audit, Result, Store, tx};

/// One historical incident to load.
#[derive(Debug, Clone)]
pub struct SeedIncident {
    pub title: String,
    pub description: String,
    /// `description` rendered and sanitized.
    pub description_html: String,
    pub severity: Severity,
    pub status: IncidentStatus,
    pub commander_id: Option<i64>,
    pub service_ids: Vec<i64>,
    pub triggered_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// Timeline entries after the declaration.
    pub timeline: Vec<SeedEntry>,
}

/// One timeline entry to load.
#[derive(Debug, Clone)]
pub struct SeedEntry {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub kind: String,
    pub body: String,
    /// `body` rendered and sanitized, for notes and updates; empty otherwise.
    pub body_html: String,
}

impl Store {
    /// Loads incidents with consecutive numbers, 500 per transaction, and records one audit
    /// entry for the whole load. Returns the numbers given.
    pub async fn seed_incidents(&self, items: &[SeedIncident], audit: &Audit) -> Result<Vec<i64>> {
        let mut numbers = Vec::with_capacity(items.len());
        for chunk in items.chunks(500) {
            let mut tx = self.db().begin().await?;
            let taken: Vec<(i64,)> = match &mut tx {
                crate::Tx::Postgres(t) => {
                    sqlx::query_as("SELECT nextval('incident_numbers') FROM generate_series(1, $1)")
                        .bind(chunk.len() as i64)
                        .fetch_all(&mut **t)
                        .await?
                }
                crate::Tx::Sqlite(t) => {
                    let (last,): (i64,) = sqlx::query_as(
                        "UPDATE counters SET value = value + $1 WHERE name = 'incident_number' RETURNING value",
                    )
                    .bind(chunk.len() as i64)
                    .fetch_one(&mut **t)
                    .await?;
                    let first = last - chunk.len() as i64 + 1;
                    (first..=last).map(|n| (n,)).collect()
                }
            };
            let mut taken: Vec<i64> = taken.into_iter().map(|r| r.0).collect();
            taken.sort_unstable();
            for (k, item) in chunk.iter().enumerate() {
                let number = taken[k];
                let updated = item
                    .resolved_at
                    .or(item.acknowledged_at)
                    .unwrap_or(item.triggered_at);
                let (id,): (i64,) = tx!(&mut tx, c => sqlx::query_as(
                    "INSERT INTO incidents (number, title, description, severity, status, commander_id, triggered_at, acknowledged_at, resolved_at, updated_at, description_html)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
                )
                .bind(number)
                .bind(&item.title)
                .bind(&item.description)
                .bind(item.severity.as_str())
                .bind(item.status.as_str())
                .bind(item.commander_id)
                .bind(item.triggered_at)
                .bind(item.acknowledged_at)
                .bind(item.resolved_at)
                .bind(updated)
                .bind(&item.description_html)
                .fetch_one(c)
                .await)?;
                for service_id in &item.service_ids {
                    tx!(&mut tx, c => sqlx::query("INSERT INTO incident_services (incident_id, service_id) VALUES ($1, $2)")
                        .bind(id)
                        .bind(service_id)
                        .execute(c)
                        .await
                        .map(|r| r.rows_affected()))?;
                }
                let declared = SeedEntry {
                    at: item.triggered_at,
                    actor: audit.actor.clone(),
                    kind: "declared".into(),
                    body: format!("Declared {} — {}", item.severity, item.title),
                    body_html: String::new(),
                };
                for e in std::iter::once(&declared).chain(item.timeline.iter()) {
                    tx!(&mut tx, c => sqlx::query("INSERT INTO timeline (incident_id, at, actor, kind, body, body_html) VALUES ($1, $2, $3, $4, $5, $6)")
                        .bind(id)
                        .bind(e.at)
                        .bind(&e.actor)
                        .bind(&e.kind)
                        .bind(&e.body)
                        .bind(&e.body_html)
                        .execute(c)
                        .await
                        .map(|r| r.rows_affected()))?;
                }
                numbers.push(number);
            }
            tx.commit().await?;
        }
        // A bulk load changes the data's shape: refresh the planner's statistics now rather
        // than waiting for autovacuum (PostgreSQL) or never (SQLite).
        let mut tx = self.db().begin().await?;
        tx!(&mut tx, c => sqlx::query("ANALYZE").execute(c).await.map(|r| r.rows_affected()))?;
        tx.commit().await?;
        let mut tx = self.db().begin().await?;
        record(
            &mut tx,
            audit,
            self.now(),
            Change::new(
                "incident.seed",
                "incident",
                numbers.len(),
                format!("loaded {} incidents in bulk", numbers.len()),
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(numbers)
    }
}
