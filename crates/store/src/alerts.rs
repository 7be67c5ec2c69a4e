//! Integrations (how monitoring reaches a service) and alerts (what it says). An event is
//! stored, and its effect on alerts and incidents applied, in one transaction before the
//! sender gets its answer, so an accepted event is never lost and never half-applied.
//!
//! Alerts are keyed by (integration, dedup key), with at most one open alert per key (a
//! partial unique index): a trigger on an open key updates it; after resolution the same key
//! opens a new alert. A new alert opens an incident on its service, or joins the service's
//! open incident for the same dedup key, or (with a grouping window) its latest open incident.

use chrono::{DateTime, TimeDelta, Utc};
use heliograph_domain::Severity;
use serde::Serialize;

use crate::audit::{Audit, Change, record};
use std::collections::HashMap;

use crate::batch::Batch;
use crate::incidents::{DeclareExtras, NewEntry, NewIncident, add_entry, declare_in_with, notify};
use crate::{Page, Result, Store, Tx, read, tx};

/// A way in for monitoring: its key is shown once and stored hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Integration {
    pub id: i64,
    pub service_id: i64,
    /// `events_v2`, `alertmanager`, `generic` or `heartbeat`.
    pub kind: String,
    pub name: String,
    pub key_prefix: String,
    pub heartbeat_interval_seconds: Option<i64>,
    pub last_check_in_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub rotated_at: Option<DateTime<Utc>>,
}

macro_rules! integration_columns {
    () => {
        "id, service_id, kind, name, key_prefix, heartbeat_interval_seconds, last_check_in_at, created_at, rotated_at"
    };
}

macro_rules! alert_columns {
    () => {
        "a.id, a.integration_id, a.service_id, a.dedup_key, a.status, a.summary, a.source, a.severity, a.incident_id, \
         i.number AS incident_number, a.count, a.first_seen_at, a.last_seen_at, a.resolved_at"
    };
}

/// An integration to add; the key is stored as its hash and shown once.
#[derive(Debug, Clone, Copy)]
pub struct NewIntegration<'a> {
    pub service_id: i64,
    /// `events_v2`, `alertmanager`, `generic` or `heartbeat`.
    pub kind: &'a str,
    pub name: &'a str,
    pub key_hash: &'a str,
    pub key_prefix: &'a str,
    pub heartbeat_interval_seconds: Option<i64>,
}

/// An alert as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Alert {
    pub id: i64,
    pub integration_id: i64,
    pub service_id: i64,
    pub dedup_key: String,
    pub status: String,
    pub summary: String,
    pub source: Option<String>,
    pub severity: String,
    #[serde(skip)]
    pub incident_id: Option<i64>,
    pub incident_number: Option<i64>,
    pub count: i64,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

/// One event received for an alert, with its raw payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct AlertEventRow {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub action: String,
    pub payload: String,
}

/// An event to apply, already parsed and validated.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// `trigger`, `acknowledge` or `resolve`.
    pub action: &'static str,
    pub dedup_key: String,
    /// Required for a trigger.
    pub summary: Option<String>,
    pub source: Option<String>,
    /// `critical`, `error`, `warning` or `info`; required for a trigger.
    pub severity: Option<&'static str>,
    /// The event as received (stored with the alert and its event).
    pub payload: String,
}

/// What one event did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub dedup_key: String,
    pub alert_id: Option<i64>,
    pub incident_number: Option<i64>,
    /// `opened`, `updated`, `acknowledged`, `resolved` or `ignored` (no open alert).
    pub effect: &'static str,
}

/// The dedup key of a heartbeat integration's missed-check-in alert.
pub const HEARTBEAT_KEY: &str = "heartbeat";

/// Filters of the alert list.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    pub status: Option<String>,
    pub service_id: Option<i64>,
    pub integration_id: Option<i64>,
}

/// The default incident severity of an alert severity (critical→SEV1 … info→SEV4), unless
/// the service's map says otherwise.
pub fn incident_severity(alert: &str, service_map: &str) -> Severity {
    let map: std::collections::BTreeMap<String, String> =
        serde_json::from_str(service_map).unwrap_or_default();
    if let Some(s) = map.get(alert).and_then(|s| s.parse::<Severity>().ok()) {
        return s;
    }
    match alert {
        "critical" => Severity::Sev1,
        "error" => Severity::Sev2,
        "warning" => Severity::Sev3,
        _ => Severity::Sev4,
    }
}

fn system() -> Audit {
    Audit {
        actor_user_id: None,
        actor: "monitoring".into(),
        client_addr: None,
    }
}

async fn timeline(
    tx: &mut Tx,
    incident_id: i64,
    now: DateTime<Utc>,
    kind: &str,
    body: String,
) -> Result<()> {
    let entry = NewEntry {
        kind,
        body,
        body_html: "",
        phase: None,
    };
    add_entry(tx, incident_id, now, &system(), &entry).await
}

/// The number of the incident with this id, inside a transaction.
pub(crate) async fn incident_number(tx: &mut Tx, incident_id: i64) -> Result<Option<i64>> {
    let row: Option<(i64,)> = tx!(tx, c => sqlx::query_as("SELECT number FROM incidents WHERE id = $1")
        .bind(incident_id)
        .fetch_optional(c)
        .await)?;
    Ok(row.map(|r| r.0))
}

impl Store {
    /// Adds an integration to a service.
    pub async fn create_integration(
        &self,
        new: &NewIntegration<'_>,
        audit: &Audit,
    ) -> Result<Integration> {
        let NewIntegration {
            service_id,
            kind,
            name,
            key_hash,
            key_prefix,
            heartbeat_interval_seconds,
        } = *new;
        let now = self.now();
        let mut tx = self.db().begin().await?;
        let created: Integration = tx!(&mut tx, c => sqlx::query_as(concat!(
            "INSERT INTO integrations (service_id, kind, name, key_hash, key_prefix, heartbeat_interval_seconds, last_check_in_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING ", integration_columns!()))
            .bind(service_id)
            .bind(kind)
            .bind(name)
            .bind(key_hash)
            .bind(key_prefix)
            .bind(heartbeat_interval_seconds)
            .bind(now)
            .fetch_one(c)
            .await)?;
        if let Some(seconds) = heartbeat_interval_seconds {
            crate::jobs::enqueue(
                &mut tx,
                &crate::jobs::NewJob {
                    kind: "heartbeat_check",
                    payload: serde_json::json!({"integration_id": created.id}),
                    run_at: now + TimeDelta::seconds(seconds),
                    dedup_key: Some(format!(
                        "heartbeat:{}:{}",
                        created.id,
                        now.timestamp_micros()
                    )),
                },
                now,
            )
            .await?;
        }
        record(
            &mut tx,
            audit,
            now,
            Change::new(
                "integration.create",
                "service",
                service_id,
                format!("added {kind} integration {name} ({key_prefix}…)"),
            )
            .after(&created),
        )
        .await?;
        tx.commit().await?;
        Ok(created)
    }

    /// A service's integrations.
    pub async fn integrations_of(&self, service_id: i64) -> Result<Vec<Integration>> {
        read!(self.db(), c => sqlx::query_as(concat!("SELECT ", integration_columns!(), " FROM integrations WHERE service_id = $1 ORDER BY id"))
            .bind(service_id)
            .fetch_all(c)
            .await)
        .map_err(Into::into)
    }

    /// Every integration, by service and id.
    pub async fn all_integrations(&self) -> Result<Vec<Integration>> {
        read!(self.db(), c => sqlx::query_as(concat!("SELECT ", integration_columns!(), " FROM integrations ORDER BY service_id, id"))
            .fetch_all(c)
            .await)
        .map_err(Into::into)
    }

    /// The integration with this id.
    pub async fn integration(&self, id: i64) -> Result<Integration> {
        read!(self.db(), c => sqlx::query_as(concat!("SELECT ", integration_columns!(), " FROM integrations WHERE id = $1"))
            .bind(id)
            .fetch_one(c)
            .await)
        .map_err(Into::into)
    }

    /// The integration whose key hashes to `key_hash`.
    ///
    /// Answers from a cache for up to [`KeyCache::TTL`], so that a busy sender costs no
    /// lookup per event. A key that was rotated or deleted still stops working at once, on
    /// every replica: [`Store::ingest`] checks that the integration is as it was looked up
    /// (same row, same rotation), in the statements that store the events, and stores
    /// nothing and answers [`crate::StoreError::NotFound`] when it is not.
    pub async fn integration_by_key(&self, key_hash: &str) -> Result<Option<Integration>> {
        if let Some(found) = self.integrations.get(key_hash) {
            return Ok(Some(found));
        }
        let found: Option<Integration> = read!(self.db(), c => sqlx::query_as(concat!("SELECT ", integration_columns!(), " FROM integrations WHERE key_hash = $1"))
            .bind(key_hash)
            .fetch_optional(c)
            .await)?;
        if let Some(integration) = &found {
            self.integrations.put(key_hash, integration);
        }
        Ok(found)
    }

    /// Replaces an integration's key; the old one stops working at once.
    pub async fn rotate_integration_key(
        &self,
        id: i64,
        key_hash: &str,
        key_prefix: &str,
        audit: &Audit,
    ) -> Result<Integration> {
        let now = self.now();
        let mut tx = self.db().begin().await?;
        let after: Integration = tx!(&mut tx, c => sqlx::query_as(concat!(
            "UPDATE integrations SET key_hash = $2, key_prefix = $3, rotated_at = $4 WHERE id = $1 RETURNING ", integration_columns!()))
            .bind(id)
            .bind(key_hash)
            .bind(key_prefix)
            .bind(now)
            .fetch_one(c)
            .await)?;
        record(
            &mut tx,
            audit,
            now,
            Change::new(
                "integration.rotate",
                "service",
                after.service_id,
                format!(
                    "rotated the key of integration {} (now {key_prefix}…)",
                    after.name
                ),
            ),
        )
        .await?;
        tx.commit().await?;
        self.integrations.clear();
        Ok(after)
    }

    /// Deletes an integration with its alerts.
    pub async fn delete_integration(&self, id: i64, audit: &Audit) -> Result<()> {
        let before = self.integration(id).await?;
        let mut tx = self.db().begin().await?;
        tx!(&mut tx, c => sqlx::query("DELETE FROM integrations WHERE id = $1").bind(id).execute(c).await.map(|r| r.rows_affected()))?;
        record(
            &mut tx,
            audit,
            self.now(),
            Change::new(
                "integration.delete",
                "service",
                before.service_id,
                format!("deleted integration {}", before.name),
            )
            .before(&before),
        )
        .await?;
        tx.commit().await?;
        self.integrations.clear();
        Ok(())
    }

    /// Applies events from one integration, all in one transaction, in order.
    pub async fn ingest(
        &self,
        integration: &Integration,
        events: &[Incoming],
    ) -> Result<Vec<Outcome>> {
        let now = self.now();
        // PostgreSQL, one trigger: most are repeats of an open alert, which one statement
        // updates (with its event) and commits on its own; a new key with a new incident
        // takes one more. Only a key joining an incident needs the transaction.
        if let (crate::Db::Postgres(pool, announcer), [e]) = (self.db(), events)
            && e.action == "trigger"
            && let Some(outcome) = trigger_postgres(pool, announcer, integration, e, now).await?
        {
            return Ok(vec![outcome]);
        }
        let mut tx = self.db().begin().await?;
        let outcomes = ingest_in(&mut tx, integration, events, now, None)
            .await
            .inspect_err(|e| self.forget_stale_key(e))?;
        tx.commit().await?;
        Ok(outcomes)
    }

    /// After [`ingest_in`] found the integration gone or its key rotated (by another
    /// replica, or before this one's cache expired): look keys up afresh.
    fn forget_stale_key(&self, e: &crate::StoreError) {
        if matches!(e, crate::StoreError::NotFound) {
            self.integrations.clear();
        }
    }

    /// Applies several senders' requests in one transaction (group commit), each request
    /// inside its own savepoint: a request that fails is rolled back alone and answered with
    /// its error, the others commit together. When the commit itself fails, nothing of the
    /// batch is stored and the whole call fails. On SQLite, where every write goes through one
    /// connection, this turns a burst of events into one transaction instead of one each.
    pub async fn ingest_batch(
        &self,
        requests: &[(Integration, Vec<Incoming>)],
    ) -> Result<Vec<Result<Vec<Outcome>>>> {
        let now = self.now();
        let mut tx = self.db().begin().await?;
        let mut results = Vec::with_capacity(requests.len());
        // On SQLite the savepoint goes with the request's first statement.
        let sqlite = matches!(tx, Tx::Sqlite(_));
        for (integration, events) in requests {
            if !sqlite || events.is_empty() {
                execute(&mut tx, "SAVEPOINT ingest_request").await?;
            }
            let savepoint = (sqlite && !events.is_empty()).then_some("SAVEPOINT ingest_request");
            match ingest_in(&mut tx, integration, events, now, savepoint).await {
                Ok(outcomes) => {
                    execute(&mut tx, "RELEASE SAVEPOINT ingest_request").await?;
                    results.push(Ok(outcomes));
                }
                Err(e) => {
                    self.forget_stale_key(&e);
                    execute(&mut tx, "ROLLBACK TO SAVEPOINT ingest_request").await?;
                    execute(&mut tx, "RELEASE SAVEPOINT ingest_request").await?;
                    results.push(Err(e));
                }
            }
        }
        tx.commit().await?;
        Ok(results)
    }

    /// Records a heartbeat check-in: resolves a missed-heartbeat alert (and so, by the
    /// service's rule, its incident), and schedules the next check. Returns when the next
    /// check-in is due.
    pub async fn heartbeat_check_in(
        &self,
        integration: &Integration,
    ) -> Result<Option<DateTime<Utc>>> {
        self.ingest(
            integration,
            &[Incoming {
                action: "resolve",
                dedup_key: HEARTBEAT_KEY.into(),
                summary: None,
                source: None,
                severity: None,
                payload: "{\"check_in\": true}".into(),
            }],
        )
        .await?;
        let now = self.now();
        let mut tx = self.db().begin().await?;
        tx!(&mut tx, c => sqlx::query("UPDATE integrations SET last_check_in_at = $2 WHERE id = $1")
            .bind(integration.id)
            .bind(now)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        let next = integration
            .heartbeat_interval_seconds
            .map(|s| now + TimeDelta::seconds(s));
        if let Some(at) = next {
            crate::jobs::enqueue(
                &mut tx,
                &crate::jobs::NewJob {
                    kind: "heartbeat_check",
                    payload: serde_json::json!({"integration_id": integration.id}),
                    run_at: at,
                    dedup_key: Some(format!(
                        "heartbeat:{}:{}",
                        integration.id,
                        now.timestamp_micros()
                    )),
                },
                now,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(next)
    }

    /// Alerts newest first.
    pub async fn alerts(
        &self,
        filter: &AlertFilter,
        limit: i64,
        cursor: Option<i64>,
    ) -> Result<Page<Alert>> {
        let rows: Vec<Alert> = read!(self.db(), c => sqlx::query_as(concat!(
            "SELECT ", alert_columns!(), " FROM alerts a LEFT JOIN incidents i ON i.id = a.incident_id
             WHERE ($1 IS NULL OR a.status = $1) AND ($2 IS NULL OR a.service_id = $2) AND ($3 IS NULL OR a.integration_id = $3)
               AND ($4 IS NULL OR a.id < $4)
             ORDER BY a.id DESC LIMIT $5"))
            .bind(filter.status.as_deref())
            .bind(filter.service_id)
            .bind(filter.integration_id)
            .bind(cursor)
            .bind(limit + 1)
            .fetch_all(c)
            .await)?;
        Ok(Page::from_rows(rows, limit, |a| a.id))
    }

    /// One alert.
    pub async fn alert(&self, id: i64) -> Result<Alert> {
        read!(self.db(), c => sqlx::query_as(concat!("SELECT ", alert_columns!(), " FROM alerts a LEFT JOIN incidents i ON i.id = a.incident_id WHERE a.id = $1"))
            .bind(id)
            .fetch_one(c)
            .await)
        .map_err(Into::into)
    }

    /// An alert's events, oldest first (at most `limit`, the latest ones).
    pub async fn alert_events(&self, alert_id: i64, limit: i64) -> Result<Vec<AlertEventRow>> {
        let mut rows: Vec<AlertEventRow> = read!(self.db(), c => sqlx::query_as(
            "SELECT id, at, action, payload FROM alert_events WHERE alert_id = $1 ORDER BY id DESC LIMIT $2")
            .bind(alert_id)
            .bind(limit)
            .fetch_all(c)
            .await)?;
        rows.reverse();
        Ok(rows)
    }

    /// The alerts of an incident.
    pub async fn incident_alerts(&self, incident_id: i64) -> Result<Vec<Alert>> {
        read!(self.db(), c => sqlx::query_as(concat!("SELECT ", alert_columns!(), " FROM alerts a LEFT JOIN incidents i ON i.id = a.incident_id WHERE a.incident_id = $1 ORDER BY a.id"))
            .bind(incident_id)
            .fetch_all(c)
            .await)
        .map_err(Into::into)
    }
}

/// Integrations recently looked up by key hash (see [`Store::integration_by_key`]). Only
/// keys that exist are kept, so unknown keys sent at random cannot grow it.
#[derive(Clone, Default)]
pub(crate) struct KeyCache {
    entries: std::sync::Arc<std::sync::Mutex<HashMap<String, (Integration, std::time::Instant)>>>,
}

impl KeyCache {
    /// How long a looked-up integration is reused.
    pub const TTL: std::time::Duration = std::time::Duration::from_secs(10);
    /// The most keys kept; past it the cache starts again empty.
    const MAX: usize = 4096;

    fn get(&self, key_hash: &str) -> Option<Integration> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key_hash)
            .filter(|(_, at)| at.elapsed() < Self::TTL)
            .map(|(i, _)| i.clone())
    }

    fn put(&self, key_hash: &str, integration: &Integration) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= Self::MAX {
            entries.clear();
        }
        entries.insert(
            key_hash.to_owned(),
            (integration.clone(), std::time::Instant::now()),
        );
    }

    /// Forgets every key (after a rotation or deletion, or a failed check).
    fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

/// The statement of [`ingest_in`] that looks up, per event, the service's settings, the open
/// alert with this key (and its incident's number), and, when there is none, the service's
/// latest unresolved incident for this key (to join rather than open another), with the
/// `new_id` and `new_number` columns given (SQLite draws an incident's in the same read).
/// The integration must still be as it was looked up (see [`Store::integration_by_key`]).
macro_rules! found_sql {
    ($new:literal) => {
        concat!(
            "SELECT s.name, s.grouping_window_minutes, s.auto_resolve, s.severity_map, s.response_targets, s.escalation_policy_id,
                    a.id AS alert_id, a.incident_id, a.status, i.number,
                    CASE WHEN a.id IS NULL THEN
                      (SELECT a2.incident_id FROM alerts a2 JOIN incidents i2 ON i2.id = a2.incident_id
                        WHERE a2.service_id = s.id AND a2.dedup_key = $2 AND i2.status <> 'resolved'
                        ORDER BY a2.id DESC LIMIT 1) END AS same_key_incident, ",
            $new,
            " FROM services s
             LEFT JOIN alerts a ON a.integration_id = $1 AND a.dedup_key = $2 AND a.status <> 'resolved'
             LEFT JOIN incidents i ON i.id = a.incident_id
             WHERE s.id = $3 AND EXISTS (SELECT 1 FROM integrations g WHERE g.id = $1 AND (g.rotated_at = $4 OR (g.rotated_at IS NULL AND $4 IS NULL)))
             LIMIT 1"
        )
    };
}

/// What [`ingest_in`] looks up per event in one statement.
#[derive(sqlx::FromRow)]
struct Found {
    name: String,
    grouping_window_minutes: i64,
    auto_resolve: bool,
    severity_map: String,
    response_targets: String,
    escalation_policy_id: Option<i64>,
    alert_id: Option<i64>,
    incident_id: Option<i64>,
    status: Option<String>,
    number: Option<i64>,
    same_key_incident: Option<i64>,
    new_id: Option<i64>,
    new_number: Option<i64>,
}

/// What [`first_trigger_postgres`] found: the open alert it updated, or, when the key has
/// none, the service's settings, the incident to join (same key, or grouping window) and,
/// when there is none to join, the new incident's id and number.
#[derive(sqlx::FromRow)]
struct FirstTrigger {
    alert_id: Option<i64>,
    number: Option<i64>,
    name: Option<String>,
    severity_map: Option<String>,
    response_targets: Option<String>,
    escalation_policy_id: Option<i64>,
    new_id: Option<i64>,
    new_number: Option<i64>,
}

/// A trigger on PostgreSQL, in at most two statements that commit on their own. The first
/// updates the key's open alert and stores the event (most triggers are repeats, and end
/// here) or, when the key has no open alert, reads what opening one needs. PostgreSQL
/// re-checks the open status on the alert's latest version, so a trigger racing a
/// resolution opens a new alert. The second opens the alert with a new incident: the
/// incident, its declaration's rows, the alert and its event, all or nothing. `None` when the
/// alert joins an existing incident or the service is gone; the transaction path does those.
async fn trigger_postgres(
    pool: &sqlx::PgPool,
    announcer: &crate::Announcer,
    integration: &Integration,
    e: &Incoming,
    now: DateTime<Utc>,
) -> Result<Option<Outcome>> {
    let found: FirstTrigger = sqlx::query_as(
        "WITH g AS (SELECT 1 FROM integrations WHERE id = $1 AND rotated_at IS NOT DISTINCT FROM $9),
         a AS (
           UPDATE alerts SET count = count + 1, last_seen_at = $3, payload = $4,
             summary = COALESCE($5, summary), severity = COALESCE($6, severity), source = COALESCE($7, source)
           WHERE integration_id = $1 AND dedup_key = $2 AND status <> 'resolved' AND EXISTS (SELECT 1 FROM g)
           RETURNING id, incident_id),
         e AS (INSERT INTO alert_events (alert_id, at, action, payload) SELECT id, $3, 'trigger', $4 FROM a),
         f AS (
           SELECT s.name, s.severity_map, s.response_targets, s.escalation_policy_id,
             COALESCE(
               (SELECT a2.incident_id FROM alerts a2 JOIN incidents i2 ON i2.id = a2.incident_id
                 WHERE a2.service_id = s.id AND a2.dedup_key = $2 AND i2.status <> 'resolved'
                 ORDER BY a2.id DESC LIMIT 1),
               CASE WHEN s.grouping_window_minutes > 0 THEN
                 (SELECT i.id FROM incidents i JOIN incident_services x ON x.incident_id = i.id
                   WHERE x.service_id = s.id AND i.status <> 'resolved'
                     AND i.triggered_at >= $3 - make_interval(mins => s.grouping_window_minutes::int)
                   ORDER BY i.triggered_at DESC LIMIT 1) END) AS join_incident
           FROM services s WHERE s.id = $8 AND EXISTS (SELECT 1 FROM g) AND NOT EXISTS (SELECT 1 FROM a))
         SELECT a.id AS alert_id, i.number, f.name, f.severity_map, f.response_targets, f.escalation_policy_id,
           n.new_id, n.new_number
         FROM (SELECT 1) one
         LEFT JOIN a ON true LEFT JOIN incidents i ON i.id = a.incident_id
         LEFT JOIN f ON true
         LEFT JOIN LATERAL (SELECT nextval('incidents_id_seq') AS new_id, nextval('incident_numbers') AS new_number
                            WHERE f.name IS NOT NULL AND f.join_incident IS NULL) n ON true",
    )
    .bind(integration.id)
    .bind(&e.dedup_key)
    .bind(now)
    .bind(&e.payload)
    .bind(e.summary.as_deref())
    .bind(e.severity)
    .bind(e.source.as_deref())
    .bind(integration.service_id)
    .bind(integration.rotated_at)
    .fetch_one(pool)
    .await?;
    if let Some(alert_id) = found.alert_id {
        return Ok(Some(Outcome {
            dedup_key: e.dedup_key.clone(),
            alert_id: Some(alert_id),
            incident_number: found.number,
            effect: "updated",
        }));
    }
    let (Some(service_name), Some(severity_map), Some(response_targets), Some(id), Some(number)) = (
        found.name,
        found.severity_map,
        found.response_targets,
        found.new_id,
        found.new_number,
    ) else {
        return Ok(None);
    };
    let summary = e.summary.clone().unwrap_or_else(|| e.dedup_key.clone());
    let severity = e.severity.unwrap_or("error");
    let (sql, args) = new_alert(integration, e, &summary, severity, id, now);
    let alert = (format!("{sql} RETURNING id"), args);
    let event = (
        "INSERT INTO alert_events (alert_id, at, action, payload) SELECT id, $1, 'trigger', $2 FROM {prev} RETURNING alert_id"
            .to_string(),
        vec![now.into(), e.payload.as_str().into()],
    );
    let (_, alert_id) = crate::incidents::declare_postgres(
        pool,
        announcer,
        (id, number),
        &opened_incident(
            integration,
            &service_name,
            &summary,
            severity,
            &severity_map,
        ),
        &[(
            integration.service_id,
            response_targets,
            found.escalation_policy_id,
        )],
        &system(),
        now,
        vec![alert_entry(integration, &summary)],
        vec![alert, event],
    )
    .await?;
    Ok(Some(Outcome {
        dedup_key: e.dedup_key.clone(),
        alert_id,
        incident_number: Some(number),
        effect: "opened",
    }))
}

/// The insert of a new alert (without `RETURNING`).
fn new_alert(
    integration: &Integration,
    e: &Incoming,
    summary: &str,
    severity: &str,
    incident_id: i64,
    now: DateTime<Utc>,
) -> (String, Vec<crate::batch::Arg>) {
    (
        "INSERT INTO alerts (integration_id, service_id, dedup_key, status, summary, source, severity, incident_id, count, payload, first_seen_at, last_seen_at)
         VALUES ($1, $2, $3, 'triggered', $4, $5, $6, $7, 1, $8, $9, $9)"
            .to_string(),
        vec![
            integration.id.into(),
            integration.service_id.into(),
            e.dedup_key.as_str().into(),
            summary.into(),
            e.source.as_deref().into(),
            severity.into(),
            incident_id.into(),
            e.payload.as_str().into(),
            now.into(),
        ],
    )
}

/// The incident a new alert opens.
fn opened_incident(
    integration: &Integration,
    service_name: &str,
    summary: &str,
    severity: &str,
    severity_map: &str,
) -> NewIncident {
    NewIncident {
        title: summary.chars().take(200).collect(),
        description: format!(
            "Opened by the {} integration {} of {service_name}.",
            integration.kind, integration.name
        ),
        description_html: String::new(),
        severity: incident_severity(severity, severity_map),
        service_ids: vec![integration.service_id],
        commander_id: None,
    }
}

/// The timeline entry of the alert that opened an incident.
fn alert_entry(integration: &Integration, summary: &str) -> NewEntry<'static> {
    NewEntry {
        kind: "alert",
        body: format!("Alert: {summary} (from {}).", integration.name),
        body_html: "",
        phase: None,
    }
}

/// One request's events, in order, inside the caller's transaction.
/// `savepoint` (SQLite): a statement to run first, sent in the same query string as the
/// first event's lookup.
async fn ingest_in(
    tx: &mut Tx,
    integration: &Integration,
    events: &[Incoming],
    now: DateTime<Utc>,
    savepoint: Option<&str>,
) -> Result<Vec<Outcome>> {
    let mut outcomes = Vec::with_capacity(events.len());
    let mut first = savepoint;
    for e in events {
        // One statement per event: the service's settings, the open alert with this key (and
        // its incident's number), and, when there is none, the service's latest unresolved
        // incident for this key (to join rather than open another).
        let sql = match tx {
            Tx::Sqlite(_) => found_sql!(
                "CASE WHEN a.id IS NULL THEN (SELECT coalesce(max(id), 0) + 1 FROM incidents) END AS new_id,
                 CASE WHEN a.id IS NULL THEN (SELECT value + 1 FROM counters WHERE name = 'incident_number') END AS new_number"
            ),
            Tx::Postgres(_) => found_sql!("NULL::bigint AS new_id, NULL::bigint AS new_number"),
        };
        let sql = match first.take() {
            Some(before) => std::borrow::Cow::Owned(format!("{before};\n{sql}")),
            None => std::borrow::Cow::Borrowed(sql),
        };
        let found: Option<Found> = tx!(tx, c => sqlx::query_as(&sql)
            .bind(integration.id)
            .bind(&e.dedup_key)
            .bind(integration.service_id)
            .bind(integration.rotated_at)
            .fetch_optional(c)
            .await)?;
        let Some(found) = found else {
            return Err(crate::StoreError::NotFound);
        };
        let service_name = &found.name;
        let grouping = found.grouping_window_minutes;
        let auto_resolve = found.auto_resolve;
        let severity_map = &found.severity_map;
        let open = found.alert_id.map(|id| {
            (
                id,
                found.incident_id,
                found.status.clone().unwrap_or_default(),
            )
        });
        let mut batch = Batch::default();
        let postgres = matches!(tx, Tx::Postgres(_));
        let mut event_stored = false;
        let outcome = match (e.action, open) {
            ("trigger", Some((alert_id, _, _))) => {
                // Sent together with the event row below (one round trip on SQLite).
                batch.push(
                    "UPDATE alerts SET count = count + 1, last_seen_at = $2, payload = $3,
                        summary = COALESCE($4, summary), severity = COALESCE($5, severity), source = COALESCE($6, source)
                     WHERE id = $1",
                    vec![
                        alert_id.into(),
                        now.into(),
                        e.payload.as_str().into(),
                        e.summary.as_deref().into(),
                        e.severity.into(),
                        e.source.as_deref().into(),
                    ],
                );
                (Some(alert_id), found.number, "updated")
            }
            ("trigger", None) => {
                let summary = e.summary.clone().unwrap_or_else(|| e.dedup_key.clone());
                let severity = e.severity.unwrap_or("error");
                // Join the service's open incident for this key, or its latest open one
                // within the grouping window; otherwise open a new incident.
                let mut join = found.same_key_incident;
                if join.is_none() && grouping > 0 {
                    let since = now - TimeDelta::minutes(grouping);
                    let recent: Option<(i64,)> = tx!(tx, c => sqlx::query_as(
                        "SELECT i.id FROM incidents i JOIN incident_services s ON s.incident_id = i.id
                         WHERE s.service_id = $1 AND i.status <> 'resolved' AND i.triggered_at >= $2
                         ORDER BY i.triggered_at DESC LIMIT 1")
                        .bind(integration.service_id)
                        .bind(since)
                        .fetch_optional(c)
                        .await)?;
                    join = recent.map(|r| r.0);
                }
                let opened =
                    opened_incident(integration, service_name, &summary, severity, severity_map);
                if join.is_none()
                    && let (Tx::Sqlite(_), Some(id), Some(number)) =
                        (&*tx, found.new_id, found.new_number)
                {
                    // A new incident on SQLite: the incident, its declaration's rows, the
                    // alert and its event in one query string.
                    let (_, mut batch) = crate::incidents::declaration_with_ids(
                        true,
                        (id, number),
                        &opened,
                        &[(
                            integration.service_id,
                            found.response_targets.clone(),
                            found.escalation_policy_id,
                        )],
                        &system(),
                        now,
                        vec![alert_entry(integration, &summary)],
                    );
                    let (sql, args) = new_alert(integration, e, &summary, severity, id, now);
                    batch.push(sql, args);
                    let alert_id = batch
                        .fetch_sqlite(
                            tx,
                            (
                                "INSERT INTO alert_events (alert_id, at, action, payload)
                                 VALUES (last_insert_rowid(), $1, 'trigger', $2) RETURNING alert_id"
                                    .into(),
                                vec![now.into(), e.payload.as_str().into()],
                            ),
                        )
                        .await?;
                    outcomes.push(Outcome {
                        dedup_key: e.dedup_key.clone(),
                        alert_id,
                        incident_number: Some(number),
                        effect: "opened",
                    });
                    continue;
                }
                let (incident_id, number) = match join {
                    Some(id) => {
                        timeline(
                            tx,
                            id,
                            now,
                            "alert",
                            format!("Alert joined: {summary} (from {}).", integration.name),
                        )
                        .await?;
                        let number = incident_number(tx, id).await?;
                        if let Some(n) = number {
                            notify(tx, n).await?;
                        }
                        (id, number)
                    }
                    None => {
                        let incident = declare_in_with(
                            tx,
                            &opened,
                            &system(),
                            now,
                            DeclareExtras {
                                entries: vec![alert_entry(integration, &summary)],
                                services: Some(vec![(
                                    integration.service_id,
                                    found.response_targets.clone(),
                                    found.escalation_policy_id,
                                )]),
                            },
                        )
                        .await?;
                        (incident.id, Some(incident.number))
                    }
                };
                // On PostgreSQL the alert's first event goes in the same statement.
                let (alert_id,): (i64,) = tx!(tx, c => sqlx::query_as(if postgres {
                    "WITH a AS (
                       INSERT INTO alerts (integration_id, service_id, dedup_key, status, summary, source, severity, incident_id, count, payload, first_seen_at, last_seen_at)
                       VALUES ($1, $2, $3, 'triggered', $4, $5, $6, $7, 1, $8, $9, $9) RETURNING id),
                     e AS (INSERT INTO alert_events (alert_id, at, action, payload) SELECT id, $9, 'trigger', $8 FROM a)
                     SELECT id FROM a"
                } else {
                    "INSERT INTO alerts (integration_id, service_id, dedup_key, status, summary, source, severity, incident_id, count, payload, first_seen_at, last_seen_at)
                     VALUES ($1, $2, $3, 'triggered', $4, $5, $6, $7, 1, $8, $9, $9) RETURNING id"
                })
                    .bind(integration.id)
                    .bind(integration.service_id)
                    .bind(&e.dedup_key)
                    .bind(&summary)
                    .bind(e.source.as_deref())
                    .bind(severity)
                    .bind(incident_id)
                    .bind(&e.payload)
                    .bind(now)
                    .fetch_one(c)
                    .await)?;
                event_stored = postgres;
                (Some(alert_id), number, "opened")
            }
            ("acknowledge", Some((alert_id, _, status))) => {
                if status == "triggered" {
                    tx!(tx, c => sqlx::query("UPDATE alerts SET status = 'acknowledged', last_seen_at = $2 WHERE id = $1")
                        .bind(alert_id)
                        .bind(now)
                        .execute(c)
                        .await
                        .map(|r| r.rows_affected()))?;
                }
                (Some(alert_id), found.number, "acknowledged")
            }
            ("resolve", Some((alert_id, incident_id, _))) => {
                tx!(tx, c => sqlx::query("UPDATE alerts SET status = 'resolved', resolved_at = $2, last_seen_at = $2 WHERE id = $1")
                    .bind(alert_id)
                    .bind(now)
                    .execute(c)
                    .await
                    .map(|r| r.rows_affected()))?;
                let number = found.number;
                if let Some(id) = incident_id {
                    let (open,): (i64,) = tx!(tx, c => sqlx::query_as(
                        "SELECT COUNT(*) FROM alerts WHERE incident_id = $1 AND status <> 'resolved'")
                        .bind(id)
                        .fetch_one(c)
                        .await)?;
                    if open == 0 && auto_resolve {
                        let changed = tx!(tx, c => sqlx::query(
                            "UPDATE incidents SET status = 'resolved', resolved_at = $2, version = version + 1, updated_at = $2
                             WHERE id = $1 AND status <> 'resolved'")
                            .bind(id)
                            .bind(now)
                            .execute(c)
                            .await
                            .map(|r| r.rows_affected()))?;
                        if changed > 0 {
                            let entry = NewEntry {
                                kind: "resolved",
                                body: "Resolved by monitoring: all of its alerts resolved".into(),
                                body_html: "",
                                phase: None,
                            };
                            add_entry(tx, id, now, &system(), &entry).await?;
                        }
                    } else {
                        timeline(tx, id, now, "alert", "An alert resolved.".into()).await?;
                    }
                    if let Some(n) = number {
                        notify(tx, n).await?;
                    }
                }
                (Some(alert_id), number, "resolved")
            }
            (_, _) => (None, None, "ignored"),
        };
        if let Some(alert_id) = outcome.0.filter(|_| !event_stored) {
            batch.push(
                "INSERT INTO alert_events (alert_id, at, action, payload) VALUES ($1, $2, $3, $4)",
                vec![
                    alert_id.into(),
                    now.into(),
                    e.action.into(),
                    e.payload.as_str().into(),
                ],
            );
        }
        batch.run(tx).await?;
        outcomes.push(Outcome {
            dedup_key: e.dedup_key.clone(),
            alert_id: outcome.0,
            incident_number: outcome.1,
            effect: outcome.2,
        });
    }
    Ok(outcomes)
}

/// Runs one statement without parameters (savepoints).
async fn execute(tx: &mut Tx, sql: &'static str) -> Result<()> {
    tx!(tx, c => sqlx::query(sql).execute(c).await.map(|r| r.rows_affected()))?;
    Ok(())
}
