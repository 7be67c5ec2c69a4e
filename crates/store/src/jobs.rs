//! The durable job queue: work due now or later lives in the `jobs` table, never only in
//! memory. A worker claims due jobs by taking a lease (`locked_by`, `locked_until`); on
//! PostgreSQL the claim skips rows another replica holds (`FOR UPDATE SKIP LOCKED`), and a
//! replica that dies mid-job simply lets its lease run out. `dedup_key` makes enqueueing the
//! same work twice a no-op.

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use crate::{Db, Result, Store, StoreError, Tx, read, tx};

/// A claimed job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub payload: String,
    pub run_at: DateTime<Utc>,
    /// Claims so far, this one included.
    pub attempts: i64,
}

/// Work to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    pub kind: &'a str,
    pub payload: serde_json::Value,
    pub run_at: DateTime<Utc>,
    pub dedup_key: Option<String>,
}

/// Adds a job inside a transaction; a job with the same dedup key already queued (or done)
/// makes this a no-op. Returns whether a job was added.
pub async fn enqueue(tx: &mut Tx, job: &NewJob<'_>, now: DateTime<Utc>) -> Result<bool> {
    let payload = job.payload.to_string();
    let n = tx!(tx, c => sqlx::query(
        "INSERT INTO jobs (kind, payload, run_at, dedup_key, created_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (dedup_key) DO NOTHING")
        .bind(job.kind)
        .bind(&payload)
        .bind(job.run_at)
        .bind(job.dedup_key.as_deref())
        .bind(now)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

/// [`enqueue`] as a statement for a [`crate::batch::Batch`].
pub(crate) fn enqueue_statement(
    job: &NewJob<'_>,
    now: DateTime<Utc>,
) -> (&'static str, Vec<crate::batch::Arg>) {
    (
        "INSERT INTO jobs (kind, payload, run_at, dedup_key, created_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (dedup_key) DO NOTHING",
        vec![
            job.kind.into(),
            job.payload.to_string().into(),
            job.run_at.into(),
            job.dedup_key.clone().into(),
            now.into(),
        ],
    )
}

/// The statement of [`finish`], for [`crate::batch::Batch::run_guarded`].
pub(crate) fn finish_statement(
    id: i64,
    worker: &str,
    now: DateTime<Utc>,
) -> (&'static str, Vec<crate::batch::Arg>) {
    (
        "UPDATE jobs SET finished_at = $3, locked_by = NULL, locked_until = NULL
         WHERE id = $1 AND locked_by = $2 AND finished_at IS NULL",
        vec![id.into(), worker.into(), now.into()],
    )
}

/// Marks a claimed job done inside a transaction, if `worker` still holds it. Returns false
/// when the lease was lost (another worker took the job over): the caller must roll back.
pub async fn finish(tx: &mut Tx, id: i64, worker: &str, now: DateTime<Utc>) -> Result<bool> {
    let n = tx!(tx, c => sqlx::query(
        "UPDATE jobs SET finished_at = $3, locked_by = NULL, locked_until = NULL
         WHERE id = $1 AND locked_by = $2 AND finished_at IS NULL")
        .bind(id)
        .bind(worker)
        .bind(now)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

/// Queue figures for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    /// Unfinished jobs already due.
    pub due: i64,
    /// Unfinished jobs due later.
    pub scheduled: i64,
}

impl Store {
    /// Enqueues one job in its own transaction.
    pub async fn enqueue_job(&self, job: &NewJob<'_>) -> Result<bool> {
        let mut tx = self.db().begin().await?;
        let added = enqueue(&mut tx, job, self.now()).await?;
        tx.commit().await?;
        Ok(added)
    }

    /// Claims up to `limit` due jobs for `worker`, leasing each for `lease`.
    pub async fn claim_jobs(&self, worker: &str, lease: TimeDelta, limit: i64) -> Result<Vec<Job>> {
        let now = self.now();
        let until = now + lease;
        let jobs: Vec<Job> = match self.db() {
            Db::Postgres(pool, _) => {
                sqlx::query_as(
                    "UPDATE jobs SET locked_by = $1, locked_until = $2, attempts = attempts + 1
                     WHERE id IN (
                        SELECT id FROM jobs
                        WHERE finished_at IS NULL AND run_at <= $3 AND (locked_until IS NULL OR locked_until < $3)
                        ORDER BY CASE WHEN kind = 'deliver' THEN 0 ELSE 1 END, run_at, id LIMIT $4
                        FOR UPDATE SKIP LOCKED)
                     RETURNING id, kind, payload, run_at, attempts",
                )
                .bind(worker)
                .bind(until)
                .bind(now)
                .bind(limit)
                .fetch_all(pool)
                .await?
            }
            // One writer connection serializes claims; one process runs the engine on SQLite.
            Db::Sqlite { write, .. } => {
                sqlx::query_as(
                    "UPDATE jobs SET locked_by = $1, locked_until = $2, attempts = attempts + 1
                     WHERE id IN (
                        SELECT id FROM jobs
                        WHERE finished_at IS NULL AND run_at <= $3 AND (locked_until IS NULL OR locked_until < $3)
                        ORDER BY CASE WHEN kind = 'deliver' THEN 0 ELSE 1 END, run_at, id LIMIT $4)
                     RETURNING id, kind, payload, run_at, attempts",
                )
                .bind(worker)
                .bind(until)
                .bind(now)
                .bind(limit)
                .fetch_all(write)
                .await?
            }
        };
        let mut jobs = jobs;
        // Deliveries first: a page already decided should not wait behind new escalations.
        jobs.sort_by_key(|j| (j.kind != "deliver", j.run_at, j.id));
        Ok(jobs)
    }

    /// Marks a job done (outside any other work).
    pub async fn finish_job(&self, id: i64, worker: &str) -> Result<bool> {
        let mut tx = self.db().begin().await?;
        let done = finish(&mut tx, id, worker, self.now()).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// Puts a job back to run again at `run_at`, keeping the error for operators.
    pub async fn retry_job(
        &self,
        id: i64,
        worker: &str,
        run_at: DateTime<Utc>,
        error: &str,
    ) -> Result<()> {
        let mut tx = self.db().begin().await?;
        tx!(&mut tx, c => sqlx::query(
            "UPDATE jobs SET run_at = $3, locked_by = NULL, locked_until = NULL, last_error = $4
             WHERE id = $1 AND locked_by = $2 AND finished_at IS NULL")
            .bind(id)
            .bind(worker)
            .bind(run_at)
            .bind(error)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        tx.commit().await?;
        Ok(())
    }

    /// Gives up on a job (it failed in a way retrying cannot fix).
    pub async fn fail_job(&self, id: i64, worker: &str, error: &str) -> Result<()> {
        let now = self.now();
        let mut tx = self.db().begin().await?;
        tx!(&mut tx, c => sqlx::query(
            "UPDATE jobs SET finished_at = $3, locked_by = NULL, locked_until = NULL, last_error = $4
             WHERE id = $1 AND locked_by = $2")
            .bind(id)
            .bind(worker)
            .bind(now)
            .bind(error)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        tx.commit().await?;
        Ok(())
    }

    /// How many unfinished jobs are due and scheduled.
    pub async fn queue_depth(&self) -> Result<QueueDepth> {
        let now = self.now();
        let (due, scheduled): (i64, i64) = read!(self.db(), c => sqlx::query_as(
            "SELECT COALESCE(SUM(CASE WHEN run_at <= $1 THEN 1 ELSE 0 END), 0),
                    COALESCE(SUM(CASE WHEN run_at > $1 THEN 1 ELSE 0 END), 0)
             FROM jobs WHERE finished_at IS NULL")
            .bind(now)
            .fetch_one(c)
            .await)?;
        Ok(QueueDepth { due, scheduled })
    }

    /// The earliest run time of an unfinished job, to sleep until it.
    pub async fn next_job_at(&self) -> Result<Option<DateTime<Utc>>> {
        let row: Option<(DateTime<Utc>,)> = read!(self.db(), c => sqlx::query_as(
            "SELECT run_at FROM jobs WHERE finished_at IS NULL ORDER BY run_at LIMIT 1")
            .fetch_optional(c)
            .await)?;
        Ok(row.map(|r| r.0))
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(err: serde_json::Error) -> Self {
        StoreError::Corrupt(err.to_string())
    }
}
