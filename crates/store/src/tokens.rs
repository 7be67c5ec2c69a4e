//! API tokens: shown once at creation, stored as a hash, revocable.

use chrono::{DateTime, TimeDelta, Utc};
use heliograph_domain::TokenName;
use serde::Serialize;

use crate::audit::{Change, record};
use crate::users::User;
use crate::{Audit, Result, Store, StoreError, read, tx};

/// An API token's record (never the secret).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ApiToken {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    /// The first characters of the token, so people can tell their tokens apart.
    pub prefix: String,
    pub created_by: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Records a new token for `user_id`, made by the audit's actor.
    pub async fn create_token(
        &self,
        user_id: i64,
        name: &TokenName,
        token_hash: &str,
        prefix: &str,
        audit: &Audit,
    ) -> Result<ApiToken> {
        let owner = self.user(user_id).await?;
        let mut tx = self.db().begin().await?;
        let now = self.now();
        let token: ApiToken = tx!(&mut tx, c => sqlx::query_as(
            "INSERT INTO api_tokens (user_id, name, token_hash, prefix, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             RETURNING id, user_id, name, prefix, created_by, created_at, last_used_at, revoked_at",
        )
        .bind(user_id)
        .bind(name.as_str())
        .bind(token_hash)
        .bind(prefix)
        .bind(audit.actor_user_id)
        .bind(now)
        .fetch_one(c)
        .await)?;
        record(
            &mut tx,
            audit,
            now,
            Change::new(
                "token.create",
                "api_token",
                token.id,
                format!(
                    "created API token \"{}\" ({}…) for {}",
                    token.name, token.prefix, owner.email
                ),
            )
            .after(&token),
        )
        .await?;
        tx.commit().await?;
        Ok(token)
    }

    /// The tokens of one user, newest first, revoked ones included.
    pub async fn tokens_of(&self, user_id: i64) -> Result<Vec<ApiToken>> {
        read!(self.db(), c => sqlx::query_as(
            "SELECT id, user_id, name, prefix, created_by, created_at, last_used_at, revoked_at
             FROM api_tokens WHERE user_id = $1 ORDER BY id DESC",
        )
        .bind(user_id)
        .fetch_all(c)
        .await)
        .map_err(Into::into)
    }

    /// Every token with its owner, newest first (for admins).
    pub async fn all_tokens(&self) -> Result<Vec<(ApiToken, User)>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            token_id: i64,
            token_name: String,
            prefix: String,
            created_by: Option<i64>,
            token_created_at: DateTime<Utc>,
            last_used_at: Option<DateTime<Utc>>,
            revoked_at: Option<DateTime<Utc>>,
            #[sqlx(flatten)]
            user: User,
        }
        let rows: Vec<Row> = read!(self.db(), c => sqlx::query_as(
            "SELECT t.id AS token_id, t.name AS token_name, t.prefix, t.created_by, t.created_at AS token_created_at,
                    t.last_used_at, t.revoked_at,
                    u.id, u.email, u.name, u.time_zone, u.role, u.disabled, u.created_at, u.updated_at
             FROM api_tokens t JOIN users u ON u.id = t.user_id ORDER BY t.id DESC",
        )
        .fetch_all(c)
        .await)?;
        Ok(rows
            .into_iter()
            .map(|r| {
                (
                    ApiToken {
                        id: r.token_id,
                        user_id: r.user.id,
                        name: r.token_name,
                        prefix: r.prefix,
                        created_by: r.created_by,
                        created_at: r.token_created_at,
                        last_used_at: r.last_used_at,
                        revoked_at: r.revoked_at,
                    },
                    r.user,
                )
            })
            .collect())
    }

    /// The token with this id.
    pub async fn token(&self, id: i64) -> Result<ApiToken> {
        read!(self.db(), c => sqlx::query_as(
            "SELECT id, user_id, name, prefix, created_by, created_at, last_used_at, revoked_at FROM api_tokens WHERE id = $1",
        )
        .bind(id)
        .fetch_one(c)
        .await)
        .map_err(Into::into)
    }

    /// Revokes a token; revoking twice is a conflict.
    pub async fn revoke_token(&self, id: i64, audit: &Audit) -> Result<ApiToken> {
        let before = self.token(id).await?;
        let mut tx = self.db().begin().await?;
        let now = self.now();
        let after: Option<ApiToken> = tx!(&mut tx, c => sqlx::query_as(
            "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL
             RETURNING id, user_id, name, prefix, created_by, created_at, last_used_at, revoked_at",
        )
        .bind(id)
        .bind(now)
        .fetch_optional(c)
        .await)?;
        let Some(after) = after else {
            return Err(StoreError::Conflict("the token is already revoked".into()));
        };
        record(
            &mut tx,
            audit,
            now,
            Change::new(
                "token.revoke",
                "api_token",
                id,
                format!("revoked API token \"{}\" ({}…)", after.name, after.prefix),
            )
            .before(&before)
            .after(&after),
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    /// The live token with this hash and its (enabled) user. Records its use at most once a
    /// minute, so API calls are not each a write.
    pub async fn authenticate_token(&self, token_hash: &str) -> Result<Option<(ApiToken, User)>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            token_id: i64,
            token_name: String,
            prefix: String,
            created_by: Option<i64>,
            token_created_at: DateTime<Utc>,
            last_used_at: Option<DateTime<Utc>>,
            #[sqlx(flatten)]
            user: User,
        }
        let row: Option<Row> = read!(self.db(), c => sqlx::query_as(
            "SELECT t.id AS token_id, t.name AS token_name, t.prefix, t.created_by, t.created_at AS token_created_at, t.last_used_at,
                    u.id, u.email, u.name, u.time_zone, u.role, u.disabled, u.created_at, u.updated_at
             FROM api_tokens t JOIN users u ON u.id = t.user_id
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND NOT u.disabled",
        )
        .bind(token_hash)
        .fetch_optional(c)
        .await)?;
        let Some(row) = row else { return Ok(None) };
        let now = self.now();
        let mut last_used_at = row.last_used_at;
        if last_used_at.is_none_or(|t| now - t > TimeDelta::minutes(1)) {
            let mut tx = self.db().begin().await?;
            tx!(&mut tx, c => sqlx::query("UPDATE api_tokens SET last_used_at = $2 WHERE id = $1")
                .bind(row.token_id)
                .bind(now)
                .execute(c)
                .await.map(|r| r.rows_affected()))?;
            tx.commit().await?;
            last_used_at = Some(now);
        }
        let token = ApiToken {
            id: row.token_id,
            user_id: row.user.id,
            name: row.token_name,
            prefix: row.prefix,
            created_by: row.created_by,
            created_at: row.token_created_at,
            last_used_at,
            revoked_at: None,
        };
        Ok(Some((token, row.user)))
    }
}
