//! What the notification engine reads and writes: where an incident's escalation stands, whom
//! to page and how, notifications and their delivery state, one-time action links and
//! response-target breaches. Each engine step is applied in one transaction together with
//! finishing its job, so a crash either leaves the step undone (and the job to run again) or
//! done; notifications are keyed by an idempotency key, so a step run twice pages once.

use chrono::{DateTime, Utc};
use heliograph_domain::{IncidentStatus, Severity, TimeZone};
use serde::Serialize;

use crate::alerts::incident_number;
use crate::audit::Audit;
use crate::batch::Batch;
use crate::incidents::NewEntry;
use crate::jobs::{NewJob, enqueue};
use crate::{Result, Store, Tx, read, tx};

/// The actor the engine writes timeline entries as.
pub fn engine_audit() -> Audit {
    Audit {
        actor_user_id: None,
        actor: "Heliograph".into(),
        client_addr: None,
    }
}

/// What the timeline says when an incident's services have no escalation policy.
pub const NO_POLICY: &str = "No escalation policy on the incident's services: nobody was paged.";

/// Starts (or, on reopen, restarts) an incident's escalation inside the transaction that
/// declared or reopened it: a new epoch and an `escalate` job for level 1, due now. When
/// none of the incident's services has an escalation policy there is nobody to page, so the
/// engine's first step is done here instead (its timeline entry and, for a new incident, the
/// response-target checks), without a job: an alert storm on a service without a policy then
/// costs the engine nothing. Returns that step's timeline entry for the caller to write.
/// `services` are the incident's services as (id, response targets, escalation policy).
pub(crate) async fn start_escalation(
    tx: &mut Tx,
    incident: &crate::incidents::Incident,
    services: &[(i64, String, Option<i64>)],
    now: DateTime<Utc>,
) -> Result<Option<NewEntry<'static>>> {
    let incident_id = incident.id;
    let (epoch,): (i64,) = tx!(tx, c => sqlx::query_as(
        "INSERT INTO incident_escalations (incident_id, epoch, level, repeat_no, updated_at) VALUES ($1, 1, 0, 0, $2)
         ON CONFLICT (incident_id) DO UPDATE SET epoch = incident_escalations.epoch + 1, level = 0, repeat_no = 0, updated_at = $2
         RETURNING epoch")
        .bind(incident_id)
        .bind(now)
        .fetch_one(c)
        .await)?;
    let (jobs, entry) = plan_escalation(incident, services, epoch, now);
    for job in &jobs {
        enqueue(tx, job, now).await?;
    }
    Ok(entry)
}

/// What starting escalation round `epoch` of `incident` enqueues: its level-1 `escalate`
/// job when a service has a policy; otherwise no job but the timeline entry saying nobody
/// was paged, and, in the first round, the response-target checks.
pub(crate) fn plan_escalation(
    incident: &crate::incidents::Incident,
    services: &[(i64, String, Option<i64>)],
    epoch: i64,
    now: DateTime<Utc>,
) -> (Vec<NewJob<'static>>, Option<NewEntry<'static>>) {
    let incident_id = incident.id;
    if services.iter().any(|s| s.2.is_some()) {
        let job = NewJob {
            kind: "escalate",
            payload: serde_json::json!({"incident_id": incident_id, "epoch": epoch, "level": 0, "repeat": 0}),
            run_at: now,
            dedup_key: Some(format!("escalate:{incident_id}:{epoch}:0:0")),
        };
        return (vec![job], None);
    }
    let mut jobs = Vec::new();
    if epoch == 1 {
        let targets: Vec<(i64, &str)> = services.iter().map(|s| (s.0, s.1.as_str())).collect();
        jobs = target_check_jobs(
            incident_id,
            incident.severity,
            incident.triggered_at,
            &targets,
        );
    }
    let entry = NewEntry {
        kind: "escalation",
        body: NO_POLICY.into(),
        body_html: "",
        phase: None,
    };
    (jobs, Some(entry))
}

/// An incident's services as [`start_escalation`] needs them: (id, response targets,
/// escalation policy).
pub(crate) async fn incident_services_for_escalation(
    tx: &mut Tx,
    incident_id: i64,
) -> Result<Vec<(i64, String, Option<i64>)>> {
    tx!(tx, c => sqlx::query_as(
        "SELECT s.id, s.response_targets, s.escalation_policy_id
         FROM incident_services x JOIN services s ON s.id = x.service_id WHERE x.incident_id = $1 ORDER BY s.id")
        .bind(incident_id)
        .fetch_all(c)
        .await)
    .map_err(Into::into)
}

/// A response target of a service for one severity, as stored in `response_targets`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
struct ResponseTarget {
    #[serde(default)]
    acknowledge_minutes: Option<i64>,
    #[serde(default)]
    resolve_minutes: Option<i64>,
}

/// The `target_check` jobs of a new incident: one per service and kind (acknowledge,
/// resolve) whose response target for the incident's severity is set, due when it runs out.
/// `services` are (service id, response targets as stored).
pub fn target_check_jobs(
    incident_id: i64,
    severity: Severity,
    triggered_at: DateTime<Utc>,
    services: &[(i64, &str)],
) -> Vec<NewJob<'static>> {
    let mut jobs = Vec::new();
    for (service_id, targets) in services {
        let Ok(map) =
            serde_json::from_str::<std::collections::BTreeMap<String, ResponseTarget>>(targets)
        else {
            continue;
        };
        let Some(target) = map.get(severity.as_str()) else {
            continue;
        };
        for (kind, minutes) in [
            ("acknowledge", target.acknowledge_minutes),
            ("resolve", target.resolve_minutes),
        ] {
            let Some(minutes) = minutes.filter(|m| *m > 0) else {
                continue;
            };
            jobs.push(NewJob {
                kind: "target_check",
                payload: serde_json::json!({"incident_id": incident_id, "service_id": service_id, "kind": kind, "minutes": minutes}),
                run_at: triggered_at + chrono::TimeDelta::minutes(minutes),
                dedup_key: Some(format!("target:{incident_id}:{service_id}:{kind}")),
            });
        }
    }
    jobs
}

/// Everything an escalation step needs to know about its incident.
#[derive(Debug, Clone)]
pub struct EscalationContext {
    pub incident_id: i64,
    pub number: i64,
    pub title: String,
    pub severity: Severity,
    pub status: IncidentStatus,
    pub triggered_at: DateTime<Utc>,
    pub epoch: i64,
    /// The policy of the incident's first service that has one.
    pub policy: Option<PolicyRow>,
    /// The incident's services: (id, name, response targets JSON).
    pub services: Vec<(i64, String, String)>,
}

/// A policy as the engine reads it (levels as stored JSON).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PolicyRow {
    pub id: i64,
    pub name: String,
    pub repeat: i64,
    pub levels: String,
    pub low_severity_any_time: bool,
}

/// A person the engine may page, with their zone and working hours as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PagedPerson {
    pub id: i64,
    pub name: String,
    pub email: String,
    #[sqlx(try_from = "String")]
    pub time_zone: TimeZone,
    pub disabled: bool,
    pub work_days: String,
    pub work_start: String,
    pub work_end: String,
    pub handoff_lead_minutes: i64,
}

/// One way to reach a person, and after how many minutes of no acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageContact {
    /// `None` for the account email used when a person set up nothing else.
    pub contact_method_id: Option<i64>,
    pub rule_id: Option<i64>,
    pub channel: String,
    pub address: String,
    pub delay_minutes: i64,
}

impl PageContact {
    /// The account email, at once: for a person who set up no notification rules.
    fn account_email(person: &PagedPerson) -> PageContact {
        PageContact {
            contact_method_id: None,
            rule_id: None,
            channel: "email".into(),
            address: person.email.clone(),
            delay_minutes: 0,
        }
    }
}

/// A notification to record (and deliver at `due_at`).
#[derive(Debug, Clone, Serialize)]
pub struct NewNotification {
    pub idempotency_key: String,
    pub incident_id: Option<i64>,
    pub user_id: Option<i64>,
    pub contact_method_id: Option<i64>,
    pub purpose: &'static str,
    pub channel: String,
    pub address: String,
    pub subject: String,
    pub level: Option<i64>,
    pub repeat_no: Option<i64>,
    pub due_at: DateTime<Utc>,
}

impl NewNotification {
    /// Its columns from `idempotency_key` to `repeat_no`, in table order, as statement values.
    fn args(&self) -> Vec<crate::batch::Arg> {
        vec![
            self.idempotency_key.as_str().into(),
            self.incident_id.into(),
            self.user_id.into(),
            self.contact_method_id.into(),
            self.purpose.into(),
            self.channel.as_str().into(),
            self.address.as_str().into(),
            self.subject.as_str().into(),
            self.level.into(),
            self.repeat_no.into(),
        ]
    }
}

/// A recorded notification with its delivery state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Notification {
    pub id: i64,
    pub idempotency_key: String,
    pub incident_id: Option<i64>,
    pub user_id: Option<i64>,
    pub contact_method_id: Option<i64>,
    pub purpose: String,
    pub channel: String,
    pub address: String,
    pub subject: String,
    pub level: Option<i64>,
    pub repeat_no: Option<i64>,
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

macro_rules! notification_columns {
    () => {
        "id, idempotency_key, incident_id, user_id, contact_method_id, purpose, channel, address, subject, level, repeat_no, state, attempts, last_error, created_at, due_at, sent_at"
    };
}

/// The outcome of one escalation step, applied atomically with finishing its job.
#[derive(Debug, Clone, Default)]
pub struct Step<'a> {
    pub incident_id: i64,
    pub notifications: Vec<NewNotification>,
    pub jobs: Vec<NewJob<'a>>,
    /// Timeline entries (kind, text) written as Heliograph.
    pub timeline: Vec<(&'static str, String)>,
    /// Where the escalation now stands, if it moved.
    pub position: Option<(i64, i64)>,
    /// Response-target breaches to record: (service id, kind, target minutes).
    pub breaches: Vec<(i64, &'static str, i64)>,
    /// Schedule notices now handed to notifications (marked sent).
    pub notices_sent: Vec<i64>,
    /// Action items whose overdue reminder is now handed to notifications (marked reminded).
    pub reminders_sent: Vec<i64>,
    /// The incident's number, when the caller knows it (saves reading it for the live-update
    /// notification).
    pub incident_number: Option<i64>,
    /// The escalation round the step belongs to: with it, [`Store::apply_step_claiming`]
    /// leases deliveries to the caller only while the incident is still triggered in that
    /// round (checked as the step is written, with the incident's row share-locked), so a
    /// page acknowledged meanwhile goes through the queue, where its delivery is cancelled.
    pub epoch: Option<i64>,
    /// One-time action links (acknowledge, resolve) for the pages of this step that are
    /// delivered at once: stored with the step, so a page needs no transaction of its own
    /// for them.
    pub action_tokens: Vec<NewActionToken>,
}

/// A one-time action link's hash to store with a step.
#[derive(Debug, Clone)]
pub struct NewActionToken {
    pub token_hash: String,
    pub action: &'static str,
    pub user_id: Option<i64>,
    pub expires_at: DateTime<Utc>,
}

/// A notification a step recorded that was due at once, with its `deliver` job already
/// leased to the worker that applied the step: that worker sends it straight away, without
/// claiming it again. If the worker dies first, the lease runs out and any worker takes the
/// job over, as with every other job.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    /// Index of the notification in [`Step::notifications`].
    pub index: usize,
    pub notification_id: i64,
    pub job_id: i64,
}

/// How a delivery ended.
#[derive(Debug, Clone)]
pub enum Delivery {
    Sent,
    Failed(String),
    Cancelled(String),
}

/// The insert of a [`NewNotification`] on SQLite (parameters `$1`…`$12`: key, incident, user,
/// contact method, purpose, channel, address, subject, level, repeat, created, due), tagged
/// `'n'` in the step's rows; nothing when its idempotency key is already recorded.
macro_rules! insert_notification {
    () => {
        "INSERT INTO notifications (idempotency_key, incident_id, user_id, contact_method_id, purpose, channel, address, subject, level, repeat_no, state, created_at, due_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'pending', $11, $12)
         ON CONFLICT (idempotency_key) DO NOTHING RETURNING 'n', id, idempotency_key, 0"
    };
}

impl Step<'_> {
    /// The delivery of this step's page with idempotency key `key`, leased to the step's worker
    /// as job `job_id`.
    fn claimed(&self, key: &str, notification_id: i64, job_id: i64) -> Option<ClaimedDelivery> {
        let index = self
            .notifications
            .iter()
            .position(|n| n.idempotency_key == key)?;
        Some(ClaimedDelivery {
            index,
            notification_id,
            job_id,
        })
    }
}

/// Tagged rows of a SQLite query string: (tag, id, key, flag).
type TaggedRow = (String, i64, Option<String>, bool);

/// A SQLite query string (see [`crate::batch::Batch::fetch_all_sqlite`]) run as a unit of
/// group commit ([`crate::group`]): its changes are kept, and its rows returned, only if a row
/// tagged `keep_if` came back (the job's finish, when this worker still held its lease).
struct Script {
    head: Vec<(String, Vec<crate::batch::Arg>)>,
    batch: crate::batch::Batch,
    keep_if: &'static str,
}

impl crate::group::Unit for Script {
    type Output = Option<Vec<TaggedRow>>;

    fn run<'a>(
        &'a mut self,
        tx: &'a mut Tx,
    ) -> crate::group::BoxFuture<'a, Result<crate::group::Ran<Self::Output>>> {
        Box::pin(async move {
            let rows: Vec<TaggedRow> = self
                .batch
                .clone()
                .fetch_all_sqlite(tx, self.head.clone())
                .await?;
            Ok(if rows.iter().any(|r| r.0 == self.keep_if) {
                crate::group::Ran::Keep(Some(rows))
            } else {
                crate::group::Ran::Undo(None)
            })
        })
    }
}

impl Store {
    /// The escalation context of an incident, or `None` when it no longer exists.
    pub async fn escalation_context(&self, incident_id: i64) -> Result<Option<EscalationContext>> {
        Ok(self
            .escalation_contexts(&[incident_id])
            .await?
            .remove(&incident_id))
    }

    /// The escalation contexts of several incidents in one read, by incident id (incidents
    /// that no longer exist are left out): the engine reads those of all the escalation steps
    /// it claimed at once.
    pub async fn escalation_contexts(
        &self,
        incident_ids: &[i64],
    ) -> Result<std::collections::HashMap<i64, EscalationContext>> {
        // A row per service of each incident (one with no service when it has none), each
        // carrying the incident and the policy of its first service that has one.
        #[derive(sqlx::FromRow)]
        struct Row {
            incident_id: i64,
            number: i64,
            title: String,
            #[sqlx(try_from = "String")]
            severity: Severity,
            #[sqlx(try_from = "String")]
            status: IncidentStatus,
            triggered_at: DateTime<Utc>,
            epoch: Option<i64>,
            service_id: Option<i64>,
            service_name: Option<String>,
            response_targets: Option<String>,
            policy_id: Option<i64>,
            policy_name: Option<String>,
            policy_repeat: Option<i64>,
            policy_levels: Option<String>,
            low_severity_any_time: Option<bool>,
        }
        let mut contexts = std::collections::HashMap::new();
        if incident_ids.is_empty() {
            return Ok(contexts);
        }
        let rows: Vec<Row> = read!(self.db(), c => {
            let mut qb = sqlx::QueryBuilder::new(
                "SELECT i.id AS incident_id, i.number, i.title, i.severity, i.status, i.triggered_at, e.epoch,
                        s.id AS service_id, s.name AS service_name, s.response_targets,
                        p.id AS policy_id, p.name AS policy_name, p.repeat AS policy_repeat,
                        p.levels AS policy_levels, p.low_severity_any_time
                 FROM incidents i
                 LEFT JOIN incident_escalations e ON e.incident_id = i.id
                 LEFT JOIN incident_services x ON x.incident_id = i.id
                 LEFT JOIN services s ON s.id = x.service_id
                 LEFT JOIN escalation_policies p ON p.id = (
                   SELECT s2.escalation_policy_id FROM incident_services x2 JOIN services s2 ON s2.id = x2.service_id
                   WHERE x2.incident_id = i.id AND s2.escalation_policy_id IS NOT NULL
                   ORDER BY s2.id LIMIT 1)
                 WHERE i.id ",
            );
            if let [one] = incident_ids {
                qb.push("= ").push_bind(*one);
            } else {
                qb.push("IN (");
                let mut list = qb.separated(", ");
                for id in incident_ids {
                    list.push_bind(*id);
                }
                qb.push(")");
            }
            qb.push(" ORDER BY i.id, s.id");
            qb.build_query_as().fetch_all(c).await
        })?;
        let mut start = 0;
        while start < rows.len() {
            let incident_id = rows[start].incident_id;
            let end = rows[start..]
                .iter()
                .position(|r| r.incident_id != incident_id)
                .map_or(rows.len(), |n| start + n);
            let group = &rows[start..end];
            let first = &group[0];
            let policy = match (
                first.policy_id,
                &first.policy_name,
                first.policy_repeat,
                &first.policy_levels,
                first.low_severity_any_time,
            ) {
                (Some(id), Some(name), Some(repeat), Some(levels), Some(low_severity_any_time)) => {
                    Some(PolicyRow {
                        id,
                        name: name.clone(),
                        repeat,
                        levels: levels.clone(),
                        low_severity_any_time,
                    })
                }
                _ => None,
            };
            let services = group
                .iter()
                .filter_map(
                    |r| match (r.service_id, &r.service_name, &r.response_targets) {
                        (Some(id), Some(name), Some(targets)) => {
                            Some((id, name.clone(), targets.clone()))
                        }
                        _ => None,
                    },
                )
                .collect();
            contexts.insert(
                incident_id,
                EscalationContext {
                    incident_id,
                    number: first.number,
                    title: first.title.clone(),
                    severity: first.severity,
                    status: first.status,
                    triggered_at: first.triggered_at,
                    epoch: first.epoch.unwrap_or(0),
                    policy,
                    services,
                },
            );
            start = end;
        }
        Ok(contexts)
    }

    /// A person as the engine needs them.
    pub async fn paged_person(&self, user_id: i64) -> Result<Option<PagedPerson>> {
        read!(self.db(), c => sqlx::query_as(
            "SELECT id, name, email, time_zone, disabled, work_days, work_start, work_end, handoff_lead_minutes FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(c)
            .await)
        .map_err(Into::into)
    }

    /// [`Store::paged_person`] and [`Store::page_contacts`] in one read: a person to page,
    /// with how to reach them.
    pub async fn paged_person_and_contacts(
        &self,
        user_id: i64,
    ) -> Result<Option<(PagedPerson, Vec<PageContact>)>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            person: PagedPerson,
            rule_id: Option<i64>,
            method_id: Option<i64>,
            kind: Option<String>,
            address: Option<String>,
            delay_minutes: Option<i64>,
        }
        let rows: Vec<Row> = read!(self.db(), c => sqlx::query_as(
            "SELECT u.id, u.name, u.email, u.time_zone, u.disabled, u.work_days, u.work_start, u.work_end, u.handoff_lead_minutes,
                    r.id AS rule_id, m.id AS method_id, m.kind, m.address, r.delay_minutes
             FROM users u
             LEFT JOIN notification_rules r ON r.user_id = u.id
             LEFT JOIN contact_methods m ON m.id = r.contact_method_id
             WHERE u.id = $1 ORDER BY r.delay_minutes, r.id")
            .bind(user_id)
            .fetch_all(c)
            .await)?;
        let Some(person) = rows.first().map(|r| r.person.clone()) else {
            return Ok(None);
        };
        let mut contacts: Vec<PageContact> = rows
            .into_iter()
            .filter_map(|r| {
                Some(PageContact {
                    contact_method_id: Some(r.method_id?),
                    rule_id: Some(r.rule_id?),
                    channel: r.kind?,
                    address: r.address?,
                    delay_minutes: r.delay_minutes?,
                })
            })
            .collect();
        if contacts.is_empty() {
            contacts.push(PageContact::account_email(&person));
        }
        Ok(Some((person, contacts)))
    }

    /// How to reach a person: their notification rules in order of delay, or, when they set
    /// none, their account email at once.
    pub async fn page_contacts(&self, person: &PagedPerson) -> Result<Vec<PageContact>> {
        let rows: Vec<(i64, i64, String, String, i64)> = read!(self.db(), c => sqlx::query_as(
            "SELECT r.id, m.id, m.kind, m.address, r.delay_minutes
             FROM notification_rules r JOIN contact_methods m ON m.id = r.contact_method_id
             WHERE r.user_id = $1 ORDER BY r.delay_minutes, r.id")
            .bind(person.id)
            .fetch_all(c)
            .await)?;
        if rows.is_empty() {
            return Ok(vec![PageContact::account_email(person)]);
        }
        Ok(rows
            .into_iter()
            .map(|(rule, method, kind, address, delay)| PageContact {
                contact_method_id: Some(method),
                rule_id: Some(rule),
                channel: kind,
                address,
                delay_minutes: delay,
            })
            .collect())
    }

    /// Applies an escalation step and finishes its job, in one transaction. Returns false
    /// (and changes nothing) when the job's lease was lost to another worker.
    pub async fn apply_step(&self, job_id: i64, worker: &str, step: &Step<'_>) -> Result<bool> {
        Ok(self
            .apply_step_claiming(job_id, worker, step, None)
            .await?
            .is_some())
    }

    /// [`Store::apply_step`], and with `lease`, the `deliver` jobs of the new notifications
    /// due now are enqueued already leased to `worker` for `lease` and returned, for the
    /// worker to deliver at once. `None` when the step's job lease was lost (nothing changed).
    /// On SQLite one transaction (perhaps shared with other writes, see [`crate::group`]); on
    /// PostgreSQL one statement that commits on its own (perhaps shared with other steps, see
    /// [`crate::steps`]). Either way the step is applied whole or not at all.
    pub async fn apply_step_claiming(
        &self,
        job_id: i64,
        worker: &str,
        step: &Step<'_>,
        lease: Option<chrono::TimeDelta>,
    ) -> Result<Option<Vec<ClaimedDelivery>>> {
        let now = self.now();
        if let crate::Db::Postgres(pool, announcer) = self.db() {
            return self
                .apply_step_postgres(pool, announcer, job_id, worker, step, lease, now)
                .await;
        }
        // SQLite: one query string in one transaction (one writer, so nothing changes the
        // incident before it commits). It finishes the job first and says whether it could; if
        // the lease was lost, the transaction is rolled back. Each page's `deliver` job is
        // inserted right after the page, from its id (`last_insert_rowid()`), and only when the
        // page was (`changes() = 1`: an idempotency key already recorded inserts nothing).
        use crate::batch::Arg;
        let (finish_sql, finish_args) = crate::jobs::finish_statement(job_id, worker, now);
        let mut head: Vec<(String, Vec<Arg>)> = vec![(
            format!("{finish_sql} RETURNING 'f', id, NULL, 0"),
            finish_args,
        )];
        // Acknowledged, resolved or reopened since the step was planned: no direct send.
        let still =
            "EXISTS (SELECT 1 FROM incidents i JOIN incident_escalations e ON e.incident_id = i.id
                     WHERE i.id = $1 AND i.status = 'triggered' AND ($2 IS NULL OR e.epoch = $2))";
        for n in &step.notifications {
            head.push((insert_notification!().to_owned(), {
                let mut args = n.args();
                args.extend([now.into(), n.due_at.into()]);
                args
            }));
            let leased = match lease {
                Some(_) if n.due_at <= now => still,
                _ => "0",
            };
            head.push((
                format!(
                    "INSERT INTO jobs (kind, payload, run_at, dedup_key, created_at, locked_by, locked_until, attempts)
                     SELECT 'deliver', '{{\"notification_id\":' || last_insert_rowid() || '}}', $3, 'deliver:' || last_insert_rowid(), $4,
                            CASE WHEN {leased} THEN $5 END, CASE WHEN {leased} THEN $6 END, CASE WHEN {leased} THEN 1 ELSE 0 END
                     WHERE changes() = 1
                     ON CONFLICT (dedup_key) DO NOTHING RETURNING 'j', id, dedup_key, locked_by IS NOT NULL"
                ),
                vec![
                    step.incident_id.into(),
                    step.epoch.into(),
                    n.due_at.into(),
                    now.into(),
                    worker.into(),
                    lease.map(|l| now + l).into(),
                ],
            ));
        }
        let crate::Db::Sqlite { write, .. } = self.db() else {
            unreachable!("PostgreSQL applied above")
        };
        let unit = Script {
            head,
            batch: step_batch(step, now),
            keep_if: "f",
        };
        let Some(rows) = self.group.run(write, unit).await? else {
            return Ok(None);
        };
        // The rows come in statement order: each page inserted (`n`), right after it its
        // `deliver` job when inserted (`j`, with whether it is leased).
        let mut claimed = Vec::new();
        let mut page = None;
        for (tag, id, key, leased) in rows {
            match tag.as_str() {
                "n" => page = Some((id, key)),
                "j" if leased => {
                    let Some((notification_id, Some(key))) = page.take() else {
                        continue;
                    };
                    claimed.extend(step.claimed(&key, notification_id, id));
                }
                _ => {}
            }
        }
        claimed.sort_by_key(|c| c.index);
        Ok(Some(claimed))
    }

    /// [`Store::apply_step_claiming`] on PostgreSQL: one statement that commits on its own,
    /// with other steps waiting to be applied if there are any (see [`crate::steps`]).
    #[allow(clippy::too_many_arguments)]
    async fn apply_step_postgres(
        &self,
        pool: &sqlx::PgPool,
        announcer: &crate::Announcer,
        job_id: i64,
        worker: &str,
        step: &Step<'_>,
        lease: Option<chrono::TimeDelta>,
        now: DateTime<Utc>,
    ) -> Result<Option<Vec<ClaimedDelivery>>> {
        let planned = crate::steps::PgStep {
            job_id,
            worker: worker.to_owned(),
            at: now,
            incident_id: step.incident_id,
            epoch: step.epoch,
            // No page, no status check (and no share lock of the incident).
            lease_end: lease
                .filter(|_| !step.notifications.is_empty())
                .map(|l| now + l),
            announcer: (!step.timeline.is_empty()).then(|| announcer.clone()),
            incident_number: step.incident_number,
            notifications: step.notifications.clone(),
            jobs: step
                .jobs
                .iter()
                .map(|j| {
                    (
                        j.kind.to_owned(),
                        j.payload.to_string(),
                        j.run_at,
                        j.dedup_key.clone(),
                    )
                })
                .collect(),
            tokens: step.action_tokens.clone(),
            breaches: step.breaches.clone(),
            notices_sent: step.notices_sent.clone(),
            reminders_sent: step.reminders_sent.clone(),
            position: step.position,
            timeline: step.timeline.clone(),
        };
        let Some(applied) = self.steps.send(pool, planned).await? else {
            return Ok(None);
        };
        let mut claimed: Vec<ClaimedDelivery> = applied
            .iter()
            .filter_map(|(key, id, job)| step.claimed(key, *id, *job))
            .collect();
        claimed.sort_by_key(|c| c.index);
        Ok(Some(claimed))
    }

    /// Notices of override changes not yet handed to notifications, oldest first.
    pub async fn unsent_schedule_notices(
        &self,
        limit: i64,
    ) -> Result<Vec<crate::schedules::Notice>> {
        read!(self.db(), c => sqlx::query_as(
            "SELECT id, schedule_id, user_id, kind, start_at, end_at, reason, created_at, sent_at
             FROM schedule_notices WHERE sent_at IS NULL ORDER BY id LIMIT $1")
            .bind(limit)
            .fetch_all(c)
            .await)
        .map_err(Into::into)
    }

    /// The notification with this id.
    pub async fn notification(&self, id: i64) -> Result<Notification> {
        read!(self.db(), c => sqlx::query_as(concat!("SELECT ", notification_columns!(), " FROM notifications WHERE id = $1"))
            .bind(id)
            .fetch_one(c)
            .await)
        .map_err(Into::into)
    }

    /// An incident's notifications, oldest first.
    pub async fn incident_notifications(&self, incident_id: i64) -> Result<Vec<Notification>> {
        read!(self.db(), c => sqlx::query_as(concat!("SELECT ", notification_columns!(), " FROM notifications WHERE incident_id = $1 ORDER BY id"))
            .bind(incident_id)
            .fetch_all(c)
            .await)
        .map_err(Into::into)
    }

    /// Records how a delivery ended and finishes its job, with an optional timeline entry,
    /// in one transaction. Returns false when the lease was lost.
    pub async fn finish_delivery(
        &self,
        job_id: i64,
        worker: &str,
        notification: &Notification,
        outcome: &Delivery,
        timeline: Option<(&'static str, String)>,
    ) -> Result<bool> {
        self.finish_delivery_known(
            job_id,
            worker,
            notification,
            outcome,
            timeline,
            &Known::default(),
        )
        .await
    }

    /// [`Store::finish_delivery`] with what the caller already knows, to save reading it.
    pub async fn finish_delivery_known(
        &self,
        job_id: i64,
        worker: &str,
        notification: &Notification,
        outcome: &Delivery,
        timeline: Option<(&'static str, String)>,
        known: &Known,
    ) -> Result<bool> {
        let now = self.now();
        if let crate::Db::Postgres(pool, announcer) = self.db()
            && notification.purpose != "test"
            && (timeline.is_none() || known.incident_number.is_some())
        {
            return self
                .finish_delivery_postgres(
                    pool,
                    announcer,
                    job_id,
                    worker,
                    notification,
                    outcome,
                    timeline,
                    known,
                    now,
                )
                .await;
        }
        // The job is marked finished in the same round trip as the rest; if its lease was lost
        // meanwhile, nothing of this transaction (or unit) is kept.
        let (state, error, sent_at) = match outcome {
            Delivery::Sent => ("sent", None, Some(now)),
            Delivery::Failed(e) => ("failed", Some(e.as_str()), None),
            Delivery::Cancelled(why) => ("cancelled", Some(why.as_str()), None),
        };
        let attempts_add: i64 = if matches!(outcome, Delivery::Cancelled(_)) {
            0
        } else {
            1
        };
        // A page to a person that becomes sent is classified as an interruption (on-call
        // load) by the store's classifier, shortly after (see `oncall_load::Classifier`).
        let classify_after = notification.purpose == "page"
            && notification.state == "pending"
            && notification.user_id.is_some()
            && sent_at.is_some();
        // The update, the timeline entry and the live-update notification need no answers:
        // one round trip on SQLite.
        let mut batch = Batch::default();
        batch.push(
            "UPDATE notifications SET state = $2, last_error = COALESCE($3, last_error), sent_at = $4, attempts = attempts + $5
             WHERE id = $1 AND state = 'pending'",
            vec![
                notification.id.into(),
                state.into(),
                error.into(),
                sent_at.into(),
                attempts_add.into(),
            ],
        );
        let timeline_entry = |batch: &mut Batch, incident_id: i64, body: String, kind| {
            let audit = engine_audit();
            let entry = NewEntry {
                kind,
                body,
                body_html: "",
                phase: None,
            };
            let (sql, args) =
                crate::incidents::entries_statement(incident_id, now, &[(&audit, entry)]);
            batch.push(sql, args);
        };
        let (finish_sql, finish_args) = crate::jobs::finish_statement(job_id, worker, now);
        // SQLite, a page or notice: one query string, grouped with other writes.
        if let crate::Db::Sqlite { write, .. } = self.db()
            && notification.purpose != "test"
        {
            if let (Some((kind, body)), Some(incident_id)) = (timeline, notification.incident_id) {
                timeline_entry(&mut batch, incident_id, body, kind);
            }
            let unit = Script {
                head: vec![(
                    format!("{finish_sql} RETURNING 'f', id, NULL, 0"),
                    finish_args,
                )],
                batch,
                keep_if: "f",
            };
            let kept = self.group.run(write, unit).await?.is_some();
            if kept && classify_after {
                self.classifier.poke(self);
            }
            return Ok(kept);
        }
        let mut tx = self.db().begin().await?;
        if matches!(outcome, Delivery::Sent)
            && notification.purpose == "test"
            && notification.user_id.is_none()
            && let Some(channel) =
                crate::team_channels::channel_of_key(&notification.idempotency_key)
        {
            crate::team_channels::mark_verified(&mut tx, channel, now).await?;
        }
        if matches!(outcome, Delivery::Sent)
            && notification.purpose == "test"
            && let Some(method) = notification.contact_method_id
        {
            tx!(&mut tx, c => sqlx::query("UPDATE contact_methods SET verified_at = COALESCE(verified_at, $2) WHERE id = $1")
                .bind(method)
                .bind(now)
                .execute(c)
                .await
                .map(|r| r.rows_affected()))?;
        }
        if let (Some((kind, body)), Some(incident_id)) = (timeline, notification.incident_id) {
            timeline_entry(&mut batch, incident_id, body, kind);
            if let Tx::Postgres(_) = tx {
                let number = match known.incident_number {
                    Some(n) => Some(n),
                    None => incident_number(&mut tx, incident_id).await?,
                };
                if let Some(number) = number {
                    crate::incidents::notify(&mut tx, number).await?;
                }
            }
        }
        if !batch.run_guarded(&mut tx, finish_sql, finish_args).await? {
            return Ok(false);
        }
        tx.commit().await?;
        if classify_after {
            self.classifier.poke(self);
        }
        Ok(true)
    }

    /// [`Store::finish_delivery_known`] on PostgreSQL for a page or notice: the job, the
    /// notification and the timeline entry in one statement, which commits on its own (no
    /// `BEGIN` and `COMMIT` round trips); the notification and the entry change only if the
    /// job was still this worker's.
    #[allow(clippy::too_many_arguments)]
    async fn finish_delivery_postgres(
        &self,
        pool: &sqlx::PgPool,
        announcer: &crate::Announcer,
        job_id: i64,
        worker: &str,
        notification: &Notification,
        outcome: &Delivery,
        timeline: Option<(&'static str, String)>,
        known: &Known,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let (state, error, sent_at, attempts_add): (&str, Option<&str>, _, i64) = match outcome {
            Delivery::Sent => ("sent", None, Some(now), 1),
            Delivery::Failed(e) => ("failed", Some(e.as_str()), None, 1),
            Delivery::Cancelled(why) => ("cancelled", Some(why.as_str()), None, 0),
        };
        let entry = timeline.zip(notification.incident_id);
        let finish = crate::finishes::Finish {
            job_id,
            worker: worker.to_owned(),
            at: now,
            notification_id: notification.id,
            state,
            error: error.map(str::to_owned),
            sent_at,
            attempts_add,
            entry: entry
                .as_ref()
                .map(|((kind, body), incident_id)| (*incident_id, *kind, body.clone())),
        };
        if !self.finishes.send(pool, finish).await? {
            return Ok(false);
        }
        if entry.is_some()
            && let Some(number) = known.incident_number
        {
            announcer.announce(vec![number]);
        }
        if notification.purpose == "page"
            && notification.state == "pending"
            && notification.user_id.is_some()
            && sent_at.is_some()
        {
            self.classifier.poke(self);
        }
        Ok(true)
    }

    /// Records a failed attempt and puts the delivery job back for `run_at`.
    pub async fn retry_delivery(
        &self,
        job_id: i64,
        worker: &str,
        notification_id: i64,
        error: &str,
        run_at: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.db().begin().await?;
        tx!(&mut tx, c => sqlx::query(
            "UPDATE notifications SET attempts = attempts + 1, last_error = $2 WHERE id = $1 AND state = 'pending'")
            .bind(notification_id)
            .bind(error)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        tx!(&mut tx, c => sqlx::query(
            "UPDATE jobs SET run_at = $3, locked_by = NULL, locked_until = NULL, last_error = $4
             WHERE id = $1 AND locked_by = $2 AND finished_at IS NULL")
            .bind(job_id)
            .bind(worker)
            .bind(run_at)
            .bind(error)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores one-time action links' hashes (acknowledge and resolve) in one transaction.
    pub async fn create_action_tokens(
        &self,
        links: &[(&str, &'static str)],
        incident_id: i64,
        user_id: Option<i64>,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        let now = self.now();
        let mut tx = self.db().begin().await?;
        let tokens: Vec<NewActionToken> = links
            .iter()
            .map(|(token_hash, action)| NewActionToken {
                token_hash: (*token_hash).to_owned(),
                action,
                user_id,
                expires_at,
            })
            .collect();
        let mut batch = Batch::default();
        if let Some((sql, args)) = action_tokens_statement(&tokens, incident_id, now) {
            batch.push(sql, args);
        }
        batch.run(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The link behind a token hash: (incident number, user, action, used, expired).
    pub async fn action_token(&self, token_hash: &str) -> Result<Option<ActionLink>> {
        read!(self.db(), c => sqlx::query_as(
            "SELECT i.number, t.user_id, t.action, t.used_at, t.expires_at
             FROM action_tokens t JOIN incidents i ON i.id = t.incident_id WHERE t.token_hash = $1")
            .bind(token_hash)
            .fetch_optional(c)
            .await)
        .map_err(Into::into)
    }

    /// Uses a link once: `Ok(Some(link))` for the first use before it expires, `Ok(None)`
    /// when it was used already, expired or never existed.
    pub async fn use_action_token(&self, token_hash: &str) -> Result<Option<ActionLink>> {
        let now = self.now();
        let mut tx = self.db().begin().await?;
        let n = tx!(&mut tx, c => sqlx::query(
            "UPDATE action_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2")
            .bind(token_hash)
            .bind(now)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        tx.commit().await?;
        if n == 0 {
            return Ok(None);
        }
        self.action_token(token_hash).await
    }

    /// The latest response-target breaches of a service: (incident number, title, kind,
    /// target minutes, when).
    pub async fn service_breaches(
        &self,
        service_id: i64,
        limit: i64,
    ) -> Result<Vec<(i64, String, String, i64, DateTime<Utc>)>> {
        read!(self.db(), c => sqlx::query_as(
            "SELECT i.number, i.title, b.kind, b.target_minutes, b.breached_at FROM response_breaches b JOIN incidents i ON i.id = b.incident_id
             WHERE b.service_id = $1 ORDER BY b.breached_at DESC LIMIT $2")
            .bind(service_id)
            .bind(limit)
            .fetch_all(c)
            .await)
        .map_err(Into::into)
    }

    /// Response-target breaches of an incident: (service name, kind, target minutes, when).
    pub async fn incident_breaches(
        &self,
        incident_id: i64,
    ) -> Result<Vec<(String, String, i64, DateTime<Utc>)>> {
        read!(self.db(), c => sqlx::query_as(
            "SELECT s.name, b.kind, b.target_minutes, b.breached_at FROM response_breaches b JOIN services s ON s.id = b.service_id
             WHERE b.incident_id = $1 ORDER BY b.breached_at")
            .bind(incident_id)
            .fetch_all(c)
            .await)
        .map_err(Into::into)
    }
}

/// The parts of a step whose results nobody reads: its links, jobs, breaches, notices and
/// reminders marked, position and timeline entries.
fn step_batch(step: &Step<'_>, now: DateTime<Utc>) -> Batch {
    let mut batch = Batch::default();
    if let Some((sql, args)) = action_tokens_statement(&step.action_tokens, step.incident_id, now) {
        batch.push(sql, args);
    }
    for job in &step.jobs {
        let (sql, args) = crate::jobs::enqueue_statement(job, now);
        batch.push(sql, args);
    }
    for (service_id, kind, minutes) in &step.breaches {
        batch.push(
            "INSERT INTO response_breaches (incident_id, service_id, kind, target_minutes, breached_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (incident_id, service_id, kind) DO NOTHING",
            vec![step.incident_id.into(), (*service_id).into(), (*kind).into(), (*minutes).into(), now.into()],
        );
    }
    for id in &step.notices_sent {
        batch.push(
            "UPDATE schedule_notices SET sent_at = $2 WHERE id = $1 AND sent_at IS NULL",
            vec![(*id).into(), now.into()],
        );
    }
    for id in &step.reminders_sent {
        batch.push(
            "UPDATE action_items SET reminded_at = $2 WHERE id = $1 AND reminded_at IS NULL",
            vec![(*id).into(), now.into()],
        );
    }
    if let Some((level, repeat)) = step.position {
        batch.push(
            "UPDATE incident_escalations SET level = $2, repeat_no = $3, updated_at = $4 WHERE incident_id = $1",
            vec![step.incident_id.into(), level.into(), repeat.into(), now.into()],
        );
    }
    if !step.timeline.is_empty() {
        let audit = engine_audit();
        let entries: Vec<(&Audit, NewEntry<'_>)> = step
            .timeline
            .iter()
            .map(|(kind, body)| {
                (
                    &audit,
                    NewEntry {
                        kind,
                        body: body.clone(),
                        body_html: "",
                        phase: None,
                    },
                )
            })
            .collect();
        let (sql, args) = crate::incidents::entries_statement(step.incident_id, now, &entries);
        batch.push(sql, args);
    }
    batch
}

/// Stores action links' hashes in one statement.
/// The insert of a step's one-time links, if it has any.
fn action_tokens_statement(
    tokens: &[NewActionToken],
    incident_id: i64,
    now: DateTime<Utc>,
) -> Option<(String, Vec<crate::batch::Arg>)> {
    if tokens.is_empty() {
        return None;
    }
    let mut sql = String::from(
        "INSERT INTO action_tokens (token_hash, incident_id, user_id, action, expires_at, created_at) VALUES ",
    );
    let mut args: Vec<crate::batch::Arg> = vec![incident_id.into(), now.into()];
    for (i, t) in tokens.iter().enumerate() {
        let b = i * 4 + 2;
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "(${}, $1, ${}, ${}, ${}, $2)",
            b + 1,
            b + 2,
            b + 3,
            b + 4
        ));
        args.extend([
            t.token_hash.as_str().into(),
            t.user_id.into(),
            t.action.into(),
            t.expires_at.into(),
        ]);
    }
    Some((sql, args))
}

/// What the caller of [`Store::finish_delivery_known`] already knows.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// The incident's number (for the live-update notification).
    pub incident_number: Option<i64>,
    /// The paged person's time zone name (to classify the page).
    pub user_time_zone: Option<String>,
}

/// A one-time action link as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ActionLink {
    pub number: i64,
    pub user_id: Option<i64>,
    pub action: String,
    pub used_at: Option<DateTime<Utc>>,
    pub expires_at: DateTime<Utc>,
}
