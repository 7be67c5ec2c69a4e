//! Delivery outcomes on PostgreSQL, recorded several to one statement.
//!
//! After a burst of pages, every sent mail's outcome is a write: the `deliver` job finished,
//! the notification marked sent, a timeline entry. They go several to one statement over
//! arrays (see [`crate::together`]). Each outcome still depends on its own job's lease: the
//! statement changes a notification and adds its entry only for the jobs whose finish it
//! made, and says which those were. (A failed outcome leaves its job leased, and a mail sent
//! twice is what a lost outcome would cost.)

use chrono::{DateTime, Utc};

use crate::Result;
use crate::group::BoxFuture;

/// One delivery's outcome to record (see [`crate::Store::finish_delivery`]).
#[derive(Debug, Clone)]
pub(crate) struct Finish {
    pub(crate) job_id: i64,
    pub(crate) worker: String,
    pub(crate) at: DateTime<Utc>,
    pub(crate) notification_id: i64,
    pub(crate) state: &'static str,
    pub(crate) error: Option<String>,
    pub(crate) sent_at: Option<DateTime<Utc>>,
    pub(crate) attempts_add: i64,
    /// A timeline entry: (incident id, kind, body).
    pub(crate) entry: Option<(i64, &'static str, String)>,
}

impl crate::together::Write for Finish {
    /// Whether its job was still this worker's (if not, nothing changed).
    type Answer = bool;

    fn together<'a>(
        pool: &'a sqlx::PgPool,
        group: &'a [Finish],
    ) -> BoxFuture<'a, Result<Vec<bool>>> {
        Box::pin(async move {
            let finished = together(pool, group).await?;
            Ok(group.iter().map(|f| finished.contains(&f.job_id)).collect())
        })
    }

    fn alone<'a>(&'a self, pool: &'a sqlx::PgPool) -> BoxFuture<'a, Result<bool>> {
        Box::pin(alone(pool, self))
    }
}

/// The outcomes of `group` in one statement; the jobs it finished.
async fn together(pool: &sqlx::PgPool, group: &[Finish]) -> Result<Vec<i64>> {
    let column = |f: fn(&Finish) -> i64| group.iter().map(f).collect::<Vec<_>>();
    let job_ids = column(|f| f.job_id);
    let notification_ids = column(|f| f.notification_id);
    let attempts = column(|f| f.attempts_add);
    let workers: Vec<&str> = group.iter().map(|f| f.worker.as_str()).collect();
    let ats: Vec<DateTime<Utc>> = group.iter().map(|f| f.at).collect();
    let states: Vec<&str> = group.iter().map(|f| f.state).collect();
    let errors: Vec<Option<&str>> = group.iter().map(|f| f.error.as_deref()).collect();
    let sent: Vec<Option<DateTime<Utc>>> = group.iter().map(|f| f.sent_at).collect();
    let incidents: Vec<Option<i64>> = group
        .iter()
        .map(|f| f.entry.as_ref().map(|e| e.0))
        .collect();
    let kinds: Vec<Option<&str>> = group
        .iter()
        .map(|f| f.entry.as_ref().map(|e| e.1))
        .collect();
    let bodies: Vec<Option<&str>> = group
        .iter()
        .map(|f| f.entry.as_ref().map(|e| e.2.as_str()))
        .collect();
    let finished: Vec<(i64,)> = sqlx::query_as(
        "WITH i AS (
           SELECT * FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::bigint[], $5::text[],
                                $6::text[], $7::timestamptz[], $8::bigint[], $9::bigint[], $10::text[], $11::text[])
             AS i(job_id, worker, at, notification_id, state, error, sent_at, attempts_add, incident_id, kind, body)),
         f AS (
           UPDATE jobs j SET finished_at = i.at, locked_by = NULL, locked_until = NULL
           FROM i WHERE j.id = i.job_id AND j.locked_by = i.worker AND j.finished_at IS NULL
           RETURNING j.id),
         n AS (
           UPDATE notifications n SET state = i.state, last_error = COALESCE(i.error, n.last_error),
                  sent_at = i.sent_at, attempts = n.attempts + i.attempts_add
           FROM i JOIN f ON f.id = i.job_id
           WHERE n.id = i.notification_id AND n.state = 'pending'),
         t AS (
           INSERT INTO timeline (incident_id, at, actor_user_id, actor, kind, body, body_html, phase)
           SELECT i.incident_id, i.at, NULL, $12, i.kind, i.body, '', NULL
           FROM i JOIN f ON f.id = i.job_id WHERE i.kind IS NOT NULL)
         SELECT id FROM f",
    )
    .bind(&job_ids)
    .bind(&workers)
    .bind(&ats)
    .bind(&notification_ids)
    .bind(&states)
    .bind(&errors)
    .bind(&sent)
    .bind(&attempts)
    .bind(&incidents)
    .bind(&kinds)
    .bind(&bodies)
    .bind(crate::paging::engine_audit().actor)
    .fetch_all(pool)
    .await?;
    Ok(finished.into_iter().map(|r| r.0).collect())
}

/// One outcome in a statement of its own; whether its job was still this worker's.
async fn alone(pool: &sqlx::PgPool, f: &Finish) -> Result<bool> {
    let mut sql = String::from(
        "WITH f AS (
           UPDATE jobs SET finished_at = $3, locked_by = NULL, locked_until = NULL
           WHERE id = $1 AND locked_by = $2 AND finished_at IS NULL RETURNING id),
         n AS (
           UPDATE notifications SET state = $5, last_error = COALESCE($6, last_error), sent_at = $7, attempts = attempts + $8
           WHERE id = $4 AND state = 'pending' AND EXISTS (SELECT 1 FROM f))",
    );
    if f.entry.is_some() {
        sql.push_str(
            ", t AS (
               INSERT INTO timeline (incident_id, at, actor_user_id, actor, kind, body, body_html, phase)
               SELECT $9, $3, NULL, $10, $11, $12, '', NULL FROM f)",
        );
    }
    sql.push_str(" SELECT count(*) FROM f");
    let mut query = sqlx::query_as(&sql)
        .bind(f.job_id)
        .bind(&f.worker)
        .bind(f.at)
        .bind(f.notification_id)
        .bind(f.state)
        .bind(f.error.as_deref())
        .bind(f.sent_at)
        .bind(f.attempts_add);
    if let Some((incident_id, kind, body)) = &f.entry {
        query = query
            .bind(*incident_id)
            .bind(crate::paging::engine_audit().actor)
            .bind(*kind)
            .bind(body.as_str());
    }
    let (finished,): (i64,) = query.fetch_one(pool).await?;
    Ok(finished > 0)
}
