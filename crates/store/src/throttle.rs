//! Failed sign-ins, counted per key ("email:…", "addr:…") over a sliding window, so that
//! password guessing is slowed across replicas and restarts.

use chrono::{DateTime, Utc};

use crate::{Result, Store, read, tx};

impl Store {
    /// Records one failed sign-in under each key.
    pub async fn record_login_failure(&self, keys: &[&str]) -> Result<()> {
        let now = self.now();
        let mut tx = self.db().begin().await?;
        for key in keys {
            tx!(&mut tx, c => sqlx::query("INSERT INTO login_failures (key, at) VALUES ($1, $2)")
                .bind(key)
                .bind(now)
                .execute(c)
                .await.map(|r| r.rows_affected()))?;
        }
        tx.commit().await
    }

    /// How many failures `key` has had since `since`, and the oldest of them.
    pub async fn login_failures_since(
        &self,
        key: &str,
        since: DateTime<Utc>,
    ) -> Result<(i64, Option<DateTime<Utc>>)> {
        let row: (i64, Option<DateTime<Utc>>) = read!(self.db(), c => sqlx::query_as(
            "SELECT COUNT(*), MIN(at) FROM login_failures WHERE key = $1 AND at >= $2",
        )
        .bind(key)
        .bind(since)
        .fetch_one(c)
        .await)?;
        Ok(row)
    }

    /// Forgets the failures of `key` (after a successful sign-in) and any older than `before`.
    pub async fn clear_login_failures(&self, key: &str, before: DateTime<Utc>) -> Result<()> {
        let mut tx = self.db().begin().await?;
        tx!(&mut tx, c => sqlx::query("DELETE FROM login_failures WHERE key = $1 OR at < $2")
            .bind(key)
            .bind(before)
            .execute(c)
            .await.map(|r| r.rows_affected()))?;
        tx.commit().await
    }
}
