//! Small named settings kept in the database (shared by every replica).

use crate::{Result, Store, read, tx};

/// The hash of the one-time first-run setup token.
pub const SETUP_TOKEN_HASH: &str = "setup_token_hash";

impl Store {
    /// A setting's value.
    pub async fn setting(&self, key: &str) -> Result<Option<String>> {
        let row: Option<(String,)> = read!(self.db(), c => sqlx::query_as("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_optional(c)
            .await)?;
        Ok(row.map(|r| r.0))
    }

    /// Sets a setting.
    pub async fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        let mut tx = self.db().begin().await?;
        tx!(&mut tx, c => sqlx::query(
            "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(key)
        .bind(value)
        .bind(self.now())
        .execute(c)
        .await.map(|r| r.rows_affected()))?;
        tx.commit().await
    }

    /// Sets a setting unless it is set already; returns the value that holds afterwards
    /// (so replicas starting together agree on one value).
    pub async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String> {
        let mut tx = self.db().begin().await?;
        tx!(&mut tx, c => sqlx::query(
            "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .bind(self.now())
        .execute(c)
        .await.map(|r| r.rows_affected()))?;
        tx.commit().await?;
        Ok(self.setting(key).await?.unwrap_or_else(|| value.to_owned()))
    }
}
