//! Browser sessions, stored so that they survive a restart and work on every replica.
//! Only a hash of the cookie's secret is stored.

use chrono::{DateTime, TimeDelta, Utc};

use crate::users::User;
use crate::{Result, Store, read, tx};

/// A signed-in browser.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Session {
    pub id: i64,
    pub user_id: i64,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// How long a session lasts without use.
pub const IDLE_LIFETIME: TimeDelta = TimeDelta::days(14);

impl Store {
    /// Starts a session for a user; `token_hash` is the hash of the cookie's secret.
    pub async fn create_session(
        &self,
        user_id: i64,
        token_hash: &str,
        client_addr: Option<&str>,
        user_agent: Option<&str>,
    ) -> Result<Session> {
        let now = self.now();
        let mut tx = self.db().begin().await?;
        let session = tx!(&mut tx, c => sqlx::query_as(
            "INSERT INTO sessions (token_hash, user_id, created_at, last_seen_at, expires_at, client_addr, user_agent)
             VALUES ($1, $2, $3, $3, $4, $5, $6)
             RETURNING id, user_id, created_at, last_seen_at, expires_at",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(now)
        .bind(now + IDLE_LIFETIME)
        .bind(client_addr)
        .bind(user_agent.map(|ua| ua.chars().take(256).collect::<String>()))
        .fetch_one(c)
        .await)?;
        // Expired sessions are swept whenever someone signs in: cheap, and needs no timer.
        tx!(&mut tx, c => sqlx::query("DELETE FROM sessions WHERE expires_at < $1").bind(now).execute(c).await.map(|r| r.rows_affected()))?;
        tx.commit().await?;
        Ok(session)
    }

    /// The live session with this token hash and its (enabled) user. Extends the session's
    /// life at most once a minute, so reads do not turn into a write on every request.
    pub async fn session(&self, token_hash: &str) -> Result<Option<(Session, User)>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            session_id: i64,
            created_at_s: DateTime<Utc>,
            last_seen_at: DateTime<Utc>,
            expires_at: DateTime<Utc>,
            #[sqlx(flatten)]
            user: User,
        }
        let now = self.now();
        let row: Option<Row> = read!(self.db(), c => sqlx::query_as(
            "SELECT s.id AS session_id, s.created_at AS created_at_s, s.last_seen_at, s.expires_at,
                    u.id, u.email, u.name, u.time_zone, u.role, u.disabled, u.created_at, u.updated_at
             FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.token_hash = $1 AND s.expires_at > $2 AND NOT u.disabled",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(c)
        .await)?;
        let Some(row) = row else { return Ok(None) };
        let mut session = Session {
            id: row.session_id,
            user_id: row.user.id,
            created_at: row.created_at_s,
            last_seen_at: row.last_seen_at,
            expires_at: row.expires_at,
        };
        if now - session.last_seen_at > TimeDelta::minutes(1) {
            let mut tx = self.db().begin().await?;
            tx!(&mut tx, c => sqlx::query("UPDATE sessions SET last_seen_at = $2, expires_at = $3 WHERE id = $1")
                .bind(session.id)
                .bind(now)
                .bind(now + IDLE_LIFETIME)
                .execute(c)
                .await.map(|r| r.rows_affected()))?;
            tx.commit().await?;
            session.last_seen_at = now;
            session.expires_at = now + IDLE_LIFETIME;
        }
        Ok(Some((session, row.user)))
    }

    /// Ends a session (sign-out).
    pub async fn delete_session(&self, id: i64) -> Result<()> {
        let mut tx = self.db().begin().await?;
        tx!(&mut tx, c => sqlx::query("DELETE FROM sessions WHERE id = $1").bind(id).execute(c).await.map(|r| r.rows_affected()))?;
        tx.commit().await
    }
}
