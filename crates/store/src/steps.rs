//! Escalation steps on PostgreSQL, applied several to one statement (see
//! [`crate::together`]).
//!
//! A step finishes its job and, only if it could (this worker still held the lease), writes
//! the pages, their `deliver` jobs, the links, the next jobs, breaches, notices and reminders
//! marked, the position and the timeline entries. Every part of the statement joins its rows
//! to the steps whose job finish it made (`ok`), so a step whose lease was lost leaves no
//! trace, whatever the others do. A page's delivery is leased to the step's worker only while
//! the incident is still triggered in the step's round: that check share-locks the incident's
//! row, so an acknowledgement waits for the statement, and one that committed since the
//! statement began is seen (PostgreSQL re-checks a row it locks).

use chrono::{DateTime, Utc};

use crate::Result;
use crate::group::BoxFuture;
use crate::paging::{NewActionToken, NewNotification};

/// One step to apply (see [`crate::Store::apply_step_claiming`]).
#[derive(Debug, Clone)]
pub(crate) struct PgStep {
    pub(crate) job_id: i64,
    pub(crate) worker: String,
    pub(crate) at: DateTime<Utc>,
    pub(crate) incident_id: i64,
    /// The escalation round the step belongs to.
    pub(crate) epoch: Option<i64>,
    /// With a lease end, the pages due now are leased to `worker` until then.
    pub(crate) lease_end: Option<DateTime<Utc>>,
    /// Set when the step writes timeline entries: the incident's number is announced to the
    /// live pages once the step is applied (here, so it happens even if the caller has gone).
    pub(crate) announcer: Option<crate::Announcer>,
    /// The incident's number, when the caller knows it (else it is read for the announcement).
    pub(crate) incident_number: Option<i64>,
    pub(crate) notifications: Vec<NewNotification>,
    /// Jobs to enqueue: kind, payload, run at, dedup key.
    pub(crate) jobs: Vec<(String, String, DateTime<Utc>, Option<String>)>,
    pub(crate) tokens: Vec<NewActionToken>,
    /// (service id, kind, target minutes).
    pub(crate) breaches: Vec<(i64, &'static str, i64)>,
    pub(crate) notices_sent: Vec<i64>,
    pub(crate) reminders_sent: Vec<i64>,
    pub(crate) position: Option<(i64, i64)>,
    /// (kind, body), written as Heliograph.
    pub(crate) timeline: Vec<(&'static str, String)>,
}

/// What an applied step did: the pages leased for delivery now, as (idempotency key,
/// notification id, job id).
pub(crate) type Applied = Vec<(String, i64, i64)>;

impl crate::together::Write for PgStep {
    /// `None` when the step's lease was lost (nothing changed).
    type Answer = Option<Applied>;

    /// Two steps of one incident would both move its position in one statement.
    fn key(&self) -> Option<i64> {
        Some(self.incident_id)
    }

    fn together<'a>(
        pool: &'a sqlx::PgPool,
        group: &'a [PgStep],
    ) -> BoxFuture<'a, Result<Vec<Option<Applied>>>> {
        Box::pin(apply(pool, group))
    }

    fn alone<'a>(&'a self, pool: &'a sqlx::PgPool) -> BoxFuture<'a, Result<Option<Applied>>> {
        Box::pin(async move {
            Ok(apply(pool, std::slice::from_ref(self))
                .await?
                .pop()
                .flatten())
        })
    }
}

/// The steps of a group, a column each.
#[derive(Default)]
struct StepColumns<'a> {
    job: Vec<i64>,
    worker: Vec<&'a str>,
    at: Vec<DateTime<Utc>>,
    incident: Vec<i64>,
    epoch: Vec<Option<i64>>,
    lease_end: Vec<Option<DateTime<Utc>>>,
    want_number: Vec<bool>,
}

/// The pages of a group's steps, each with its step's job.
#[derive(Default)]
struct PageColumns<'a> {
    step: Vec<i64>,
    key: Vec<&'a str>,
    incident: Vec<Option<i64>>,
    user: Vec<Option<i64>>,
    method: Vec<Option<i64>>,
    purpose: Vec<&'a str>,
    channel: Vec<&'a str>,
    address: Vec<&'a str>,
    subject: Vec<&'a str>,
    level: Vec<Option<i64>>,
    repeat: Vec<Option<i64>>,
    due: Vec<DateTime<Utc>>,
}

/// The jobs to enqueue.
#[derive(Default)]
struct JobColumns<'a> {
    step: Vec<i64>,
    kind: Vec<&'a str>,
    payload: Vec<&'a str>,
    run_at: Vec<DateTime<Utc>>,
    dedup: Vec<Option<&'a str>>,
}

/// The one-time links.
#[derive(Default)]
struct TokenColumns<'a> {
    step: Vec<i64>,
    hash: Vec<&'a str>,
    user: Vec<Option<i64>>,
    action: Vec<&'a str>,
    expires: Vec<DateTime<Utc>>,
}

/// The response-target breaches.
#[derive(Default)]
struct BreachColumns<'a> {
    step: Vec<i64>,
    service: Vec<i64>,
    kind: Vec<&'a str>,
    minutes: Vec<i64>,
}

/// Rows to mark (schedule notices sent, action items reminded) by id.
#[derive(Default)]
struct IdColumns {
    step: Vec<i64>,
    id: Vec<i64>,
}

/// The escalations' new positions.
#[derive(Default)]
struct PositionColumns {
    step: Vec<i64>,
    level: Vec<i64>,
    repeat: Vec<i64>,
}

/// The timeline entries.
#[derive(Default)]
struct EntryColumns<'a> {
    step: Vec<i64>,
    kind: Vec<&'a str>,
    body: Vec<&'a str>,
}

/// The statement, one for any number of steps. Parameters: the steps ($1–$7), their pages
/// ($8–$19), jobs ($20–$24), links ($25–$29), breaches ($30–$33), notices ($34–$35),
/// reminders ($36–$37), positions ($38–$40), entries ($41–$43), and the engine's name ($44).
const STATEMENT: &str = r#"
WITH s AS (
  SELECT * FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::bigint[], $5::bigint[], $6::timestamptz[], $7::bool[])
    AS s(job_id, worker, at, incident_id, epoch, lease_end, want_number)),
f AS (
  UPDATE jobs j SET finished_at = s.at, locked_by = NULL, locked_until = NULL
  FROM s WHERE j.id = s.job_id AND j.locked_by = s.worker AND j.finished_at IS NULL
  RETURNING j.id),
ok AS MATERIALIZED (SELECT s.* FROM s JOIN f ON f.id = s.job_id),
st AS MATERIALIZED (
  SELECT i.id FROM incidents i JOIN incident_escalations e ON e.incident_id = i.id JOIN ok ON ok.incident_id = i.id
  WHERE ok.lease_end IS NOT NULL AND i.status = 'triggered' AND (ok.epoch IS NULL OR e.epoch = ok.epoch)
  ORDER BY i.id FOR SHARE OF i),
nv AS MATERIALIZED (
  SELECT * FROM unnest($8::bigint[], $9::text[], $10::bigint[], $11::bigint[], $12::bigint[], $13::text[], $14::text[],
                       $15::text[], $16::text[], $17::bigint[], $18::bigint[], $19::timestamptz[]) WITH ORDINALITY
    AS v(job_id, idempotency_key, incident_id, user_id, contact_method_id, purpose, channel, address, subject, level, repeat_no, due_at, ord)),
n AS (
  INSERT INTO notifications (idempotency_key, incident_id, user_id, contact_method_id, purpose, channel, address, subject, level, repeat_no, state, created_at, due_at)
  SELECT v.idempotency_key, v.incident_id, v.user_id, v.contact_method_id, v.purpose, v.channel, v.address, v.subject, v.level, v.repeat_no, 'pending', ok.at, v.due_at
  FROM nv v JOIN ok ON ok.job_id = v.job_id ORDER BY v.ord
  ON CONFLICT (idempotency_key) DO NOTHING RETURNING id, idempotency_key, due_at),
nj AS MATERIALIZED (
  SELECT n.id, n.idempotency_key, n.due_at, ok.job_id, ok.worker, ok.at, ok.lease_end,
         ok.lease_end IS NOT NULL AND n.due_at <= ok.at AND EXISTS (SELECT 1 FROM st WHERE st.id = ok.incident_id) AS leased
  FROM n JOIN nv v ON v.idempotency_key = n.idempotency_key JOIN ok ON ok.job_id = v.job_id),
d AS (
  INSERT INTO jobs (kind, payload, run_at, dedup_key, created_at, locked_by, locked_until, attempts)
  SELECT 'deliver', '{"notification_id":' || nj.id || '}', nj.due_at, 'deliver:' || nj.id, nj.at,
         CASE WHEN nj.leased THEN nj.worker END, CASE WHEN nj.leased THEN nj.lease_end END, CASE WHEN nj.leased THEN 1 ELSE 0 END
  FROM nj ORDER BY nj.id
  ON CONFLICT (dedup_key) DO NOTHING RETURNING id, dedup_key, locked_by),
jn AS (
  INSERT INTO jobs (kind, payload, run_at, dedup_key, created_at)
  SELECT v.kind, v.payload, v.run_at, v.dedup_key, ok.at
  FROM unnest($20::bigint[], $21::text[], $22::text[], $23::timestamptz[], $24::text[]) WITH ORDINALITY
    AS v(job_id, kind, payload, run_at, dedup_key, ord)
  JOIN ok ON ok.job_id = v.job_id ORDER BY v.ord
  ON CONFLICT (dedup_key) DO NOTHING),
t AS (
  INSERT INTO action_tokens (token_hash, incident_id, user_id, action, expires_at, created_at)
  SELECT v.token_hash, ok.incident_id, v.user_id, v.action, v.expires_at, ok.at
  FROM unnest($25::bigint[], $26::text[], $27::bigint[], $28::text[], $29::timestamptz[])
    AS v(job_id, token_hash, user_id, action, expires_at)
  JOIN ok ON ok.job_id = v.job_id),
b AS (
  INSERT INTO response_breaches (incident_id, service_id, kind, target_minutes, breached_at)
  SELECT ok.incident_id, v.service_id, v.kind, v.target_minutes, ok.at
  FROM unnest($30::bigint[], $31::bigint[], $32::text[], $33::bigint[]) AS v(job_id, service_id, kind, target_minutes)
  JOIN ok ON ok.job_id = v.job_id
  ON CONFLICT (incident_id, service_id, kind) DO NOTHING),
sn AS (
  UPDATE schedule_notices x SET sent_at = ok.at
  FROM unnest($34::bigint[], $35::bigint[]) AS v(job_id, id) JOIN ok ON ok.job_id = v.job_id
  WHERE x.id = v.id AND x.sent_at IS NULL),
r AS (
  UPDATE action_items x SET reminded_at = ok.at
  FROM unnest($36::bigint[], $37::bigint[]) AS v(job_id, id) JOIN ok ON ok.job_id = v.job_id
  WHERE x.id = v.id AND x.reminded_at IS NULL),
p AS (
  UPDATE incident_escalations x SET level = v.level, repeat_no = v.repeat_no, updated_at = ok.at
  FROM unnest($38::bigint[], $39::bigint[], $40::bigint[]) AS v(job_id, level, repeat_no) JOIN ok ON ok.job_id = v.job_id
  WHERE x.incident_id = ok.incident_id),
e AS (
  INSERT INTO timeline (incident_id, at, actor_user_id, actor, kind, body, body_html, phase)
  SELECT ok.incident_id, ok.at, NULL, $44, v.kind, v.body, '', NULL
  FROM unnest($41::bigint[], $42::text[], $43::text[]) WITH ORDINALITY AS v(job_id, kind, body, ord)
  JOIN ok ON ok.job_id = v.job_id ORDER BY v.ord)
SELECT ok.job_id, CASE WHEN ok.want_number THEN (SELECT number FROM incidents WHERE id = ok.incident_id) END,
       NULL::text, NULL::bigint, NULL::bigint
FROM ok
UNION ALL
SELECT nj.job_id, NULL, nj.idempotency_key, nj.id, d.id
FROM nj JOIN d ON d.dedup_key = 'deliver:' || nj.id WHERE d.locked_by IS NOT NULL
"#;

/// Applies `group` (keys distinct) in one statement: for each step, what it did.
async fn apply(pool: &sqlx::PgPool, group: &[PgStep]) -> Result<Vec<Option<Applied>>> {
    let mut steps = StepColumns::default();
    let mut pages = PageColumns::default();
    let mut jobs = JobColumns::default();
    let mut tokens = TokenColumns::default();
    let mut breaches = BreachColumns::default();
    let mut notices = IdColumns::default();
    let mut reminders = IdColumns::default();
    let mut positions = PositionColumns::default();
    let mut entries = EntryColumns::default();
    // A page's key twice in the statement would pair its one insert with both: the first
    // is kept, as the insert's `ON CONFLICT DO NOTHING` would keep it.
    let mut keys = std::collections::HashSet::new();
    for s in group {
        let step = s.job_id;
        steps.job.push(step);
        steps.worker.push(&s.worker);
        steps.at.push(s.at);
        steps.incident.push(s.incident_id);
        steps.epoch.push(s.epoch);
        steps.lease_end.push(s.lease_end);
        steps
            .want_number
            .push(s.announcer.is_some() && s.incident_number.is_none());
        for n in s
            .notifications
            .iter()
            .filter(|n| keys.insert(n.idempotency_key.as_str()))
        {
            pages.step.push(step);
            pages.key.push(&n.idempotency_key);
            pages.incident.push(n.incident_id);
            pages.user.push(n.user_id);
            pages.method.push(n.contact_method_id);
            pages.purpose.push(n.purpose);
            pages.channel.push(&n.channel);
            pages.address.push(&n.address);
            pages.subject.push(&n.subject);
            pages.level.push(n.level);
            pages.repeat.push(n.repeat_no);
            pages.due.push(n.due_at);
        }
        for (kind, payload, run_at, dedup) in &s.jobs {
            jobs.step.push(step);
            jobs.kind.push(kind);
            jobs.payload.push(payload);
            jobs.run_at.push(*run_at);
            jobs.dedup.push(dedup.as_deref());
        }
        for t in &s.tokens {
            tokens.step.push(step);
            tokens.hash.push(&t.token_hash);
            tokens.user.push(t.user_id);
            tokens.action.push(t.action);
            tokens.expires.push(t.expires_at);
        }
        for (service, kind, minutes) in &s.breaches {
            breaches.step.push(step);
            breaches.service.push(*service);
            breaches.kind.push(kind);
            breaches.minutes.push(*minutes);
        }
        for id in &s.notices_sent {
            notices.step.push(step);
            notices.id.push(*id);
        }
        for id in &s.reminders_sent {
            reminders.step.push(step);
            reminders.id.push(*id);
        }
        if let Some((level, repeat)) = s.position {
            positions.step.push(step);
            positions.level.push(level);
            positions.repeat.push(repeat);
        }
        for (kind, body) in &s.timeline {
            entries.step.push(step);
            entries.kind.push(kind);
            entries.body.push(body);
        }
    }
    type Row = (i64, Option<i64>, Option<String>, Option<i64>, Option<i64>);
    let rows: Vec<Row> = sqlx::query_as(STATEMENT)
        .bind(&steps.job)
        .bind(&steps.worker)
        .bind(&steps.at)
        .bind(&steps.incident)
        .bind(&steps.epoch)
        .bind(&steps.lease_end)
        .bind(&steps.want_number)
        .bind(&pages.step)
        .bind(&pages.key)
        .bind(&pages.incident)
        .bind(&pages.user)
        .bind(&pages.method)
        .bind(&pages.purpose)
        .bind(&pages.channel)
        .bind(&pages.address)
        .bind(&pages.subject)
        .bind(&pages.level)
        .bind(&pages.repeat)
        .bind(&pages.due)
        .bind(&jobs.step)
        .bind(&jobs.kind)
        .bind(&jobs.payload)
        .bind(&jobs.run_at)
        .bind(&jobs.dedup)
        .bind(&tokens.step)
        .bind(&tokens.hash)
        .bind(&tokens.user)
        .bind(&tokens.action)
        .bind(&tokens.expires)
        .bind(&breaches.step)
        .bind(&breaches.service)
        .bind(&breaches.kind)
        .bind(&breaches.minutes)
        .bind(&notices.step)
        .bind(&notices.id)
        .bind(&reminders.step)
        .bind(&reminders.id)
        .bind(&positions.step)
        .bind(&positions.level)
        .bind(&positions.repeat)
        .bind(&entries.step)
        .bind(&entries.kind)
        .bind(&entries.body)
        .bind(crate::paging::engine_audit().actor)
        .fetch_all(pool)
        .await?;
    // A row per applied step (its job, and its number when asked for), then a row per page
    // leased for delivery now.
    let mut applied: std::collections::HashMap<i64, (Option<i64>, Applied)> =
        std::collections::HashMap::new();
    let mut claimed = Vec::new();
    for (job, number, key, notification, deliver) in rows {
        match (key, notification, deliver) {
            (Some(key), Some(notification), Some(deliver)) => {
                claimed.push((job, (key, notification, deliver)));
            }
            _ => {
                applied.insert(job, (number, Vec::new()));
            }
        }
    }
    for (job, c) in claimed {
        if let Some((_, pages)) = applied.get_mut(&job) {
            pages.push(c);
        }
    }
    Ok(group
        .iter()
        .map(|s| {
            let (number, pages) = applied.remove(&s.job_id)?;
            if let Some(announcer) = &s.announcer
                && let Some(number) = s.incident_number.or(number)
            {
                announcer.announce(vec![number]);
            }
            Some(pages)
        })
        .collect())
}
