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
    /// Read the incident's number (for the live-update notification).
    pub(crate) want_number: bool,
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

/// What an applied step did.
#[derive(Debug, Clone, Default)]
pub(crate) struct Applied {
    /// The incident's number, when asked for.
    pub(crate) number: Option<i64>,
    /// The pages leased for delivery now: (idempotency key, notification id, job id).
    pub(crate) claimed: Vec<(String, i64, i64)>,
}

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

/// Rows of one table as columns (`int`, `text`: its columns of those types, in the order they
/// are bound), with the job of the step each row belongs to.
#[derive(Default)]
struct Columns<'a> {
    step: Vec<i64>,
    int: [Vec<Option<i64>>; 5],
    text: [Vec<Option<&'a str>>; 7],
    time: Vec<Option<DateTime<Utc>>>,
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
  FOR SHARE OF i),
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
    let mut steps = Columns::default();
    let mut pages = Columns::default();
    let mut jobs = Columns::default();
    let mut tokens = Columns::default();
    let mut breaches = Columns::default();
    let mut notices = Columns::default();
    let mut reminders = Columns::default();
    let mut positions = Columns::default();
    let mut entries = Columns::default();
    for s in group {
        let job = s.job_id;
        steps.step.push(job);
        steps.text[0].push(Some(&s.worker));
        steps.time.push(Some(s.at));
        steps.int[0].push(Some(s.incident_id));
        steps.int[1].push(s.epoch);
        for n in &s.notifications {
            pages.step.push(job);
            let [key, purpose, channel, address, subject, ..] = &mut pages.text;
            key.push(Some(&n.idempotency_key));
            purpose.push(Some(n.purpose));
            channel.push(Some(&n.channel));
            address.push(Some(&n.address));
            subject.push(Some(&n.subject));
            let [incident, user, method, level, repeat] = &mut pages.int;
            incident.push(n.incident_id);
            user.push(n.user_id);
            method.push(n.contact_method_id);
            level.push(n.level);
            repeat.push(n.repeat_no);
            pages.time.push(Some(n.due_at));
        }
        for (kind, payload, run_at, dedup) in &s.jobs {
            jobs.step.push(job);
            jobs.text[0].push(Some(kind));
            jobs.text[1].push(Some(payload));
            jobs.text[2].push(dedup.as_deref());
            jobs.time.push(Some(*run_at));
        }
        for t in &s.tokens {
            tokens.step.push(job);
            tokens.text[0].push(Some(&t.token_hash));
            tokens.text[1].push(Some(t.action));
            tokens.int[0].push(t.user_id);
            tokens.time.push(Some(t.expires_at));
        }
        for (service, kind, minutes) in &s.breaches {
            breaches.step.push(job);
            breaches.int[0].push(Some(*service));
            breaches.text[0].push(Some(kind));
            breaches.int[1].push(Some(*minutes));
        }
        for id in &s.notices_sent {
            notices.step.push(job);
            notices.int[0].push(Some(*id));
        }
        for id in &s.reminders_sent {
            reminders.step.push(job);
            reminders.int[0].push(Some(*id));
        }
        if let Some((level, repeat)) = s.position {
            positions.step.push(job);
            positions.int[0].push(Some(level));
            positions.int[1].push(Some(repeat));
        }
        for (kind, body) in &s.timeline {
            entries.step.push(job);
            entries.text[0].push(Some(kind));
            entries.text[1].push(Some(body));
        }
    }
    let lease_ends: Vec<Option<DateTime<Utc>>> = group.iter().map(|s| s.lease_end).collect();
    let want_number: Vec<bool> = group.iter().map(|s| s.want_number).collect();
    type Row = (i64, Option<i64>, Option<String>, Option<i64>, Option<i64>);
    let rows: Vec<Row> = sqlx::query_as(STATEMENT)
        // The steps.
        .bind(&steps.step)
        .bind(&steps.text[0])
        .bind(&steps.time)
        .bind(&steps.int[0])
        .bind(&steps.int[1])
        .bind(&lease_ends)
        .bind(&want_number)
        // Their pages.
        .bind(&pages.step)
        .bind(&pages.text[0])
        .bind(&pages.int[0])
        .bind(&pages.int[1])
        .bind(&pages.int[2])
        .bind(&pages.text[1])
        .bind(&pages.text[2])
        .bind(&pages.text[3])
        .bind(&pages.text[4])
        .bind(&pages.int[3])
        .bind(&pages.int[4])
        .bind(&pages.time)
        // Jobs.
        .bind(&jobs.step)
        .bind(&jobs.text[0])
        .bind(&jobs.text[1])
        .bind(&jobs.time)
        .bind(&jobs.text[2])
        // Links.
        .bind(&tokens.step)
        .bind(&tokens.text[0])
        .bind(&tokens.int[0])
        .bind(&tokens.text[1])
        .bind(&tokens.time)
        // Breaches.
        .bind(&breaches.step)
        .bind(&breaches.int[0])
        .bind(&breaches.text[0])
        .bind(&breaches.int[1])
        // Notices and reminders marked.
        .bind(&notices.step)
        .bind(&notices.int[0])
        .bind(&reminders.step)
        .bind(&reminders.int[0])
        // Positions.
        .bind(&positions.step)
        .bind(&positions.int[0])
        .bind(&positions.int[1])
        // Timeline entries.
        .bind(&entries.step)
        .bind(&entries.text[0])
        .bind(&entries.text[1])
        .bind(crate::paging::engine_audit().actor)
        .fetch_all(pool)
        .await?;
    let mut applied: std::collections::HashMap<i64, Applied> = std::collections::HashMap::new();
    let mut claimed = Vec::new();
    for (job, number, key, notification, deliver) in rows {
        match (key, notification, deliver) {
            (Some(key), Some(notification), Some(deliver)) => {
                claimed.push((job, (key, notification, deliver)));
            }
            _ => {
                applied.insert(
                    job,
                    Applied {
                        number,
                        claimed: Vec::new(),
                    },
                );
            }
        }
    }
    for (job, c) in claimed {
        if let Some(a) = applied.get_mut(&job) {
            a.claimed.push(c);
        }
    }
    Ok(group.iter().map(|s| applied.remove(&s.job_id)).collect())
}
