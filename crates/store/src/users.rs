//! People: their account, role and time zone.

use chrono::{DateTime, Utc};
use heliograph_domain::{DisplayName, Role, TimeZone, UserEmail};
use serde::Serialize;

use crate::audit::{Change, record};
use crate::{Audit, Page, Result, Store, StoreError, read, tx};

/// A person with an account.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct User {
    pub id: i64,
    #[sqlx(try_from = "String")]
    pub email: UserEmail,
    #[sqlx(try_from = "String")]
    pub name: DisplayName,
    #[sqlx(try_from = "String")]
    pub time_zone: TimeZone,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

macro_rules! user_columns {
    () => {
        "id, email, name, time_zone, role, disabled, created_at, updated_at"
    };
}

/// What is needed to create a user.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: UserEmail,
    pub name: DisplayName,
    pub time_zone: TimeZone,
    pub role: Role,
    /// An argon2id PHC string, or `None` for an account that cannot sign in with a password.
    pub password_hash: Option<String>,
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub email: Option<UserEmail>,
    pub name: Option<DisplayName>,
    pub time_zone: Option<TimeZone>,
    pub role: Option<Role>,
    pub disabled: Option<bool>,
}

impl Store {
    /// How many users exist.
    pub async fn user_count(&self) -> Result<i64> {
        let (n,): (i64,) =
            read!(self.db(), c => sqlx::query_as("SELECT COUNT(*) FROM users").fetch_one(c).await)?;
        Ok(n)
    }

    /// Creates a user. A taken email is a [`StoreError::Conflict`].
    pub async fn create_user(&self, new: &NewUser, audit: &Audit) -> Result<User> {
        let mut tx = self.db().begin().await?;
        let user = insert_user(&mut tx, new, self.now()).await?;
        record(
            &mut tx,
            audit,
            self.now(),
            Change::new(
                "user.create",
                "user",
                user.id,
                format!("created {} ({}, {})", user.email, user.name, user.role),
            )
            .after(&user),
        )
        .await?;
        tx.commit().await?;
        Ok(user)
    }

    /// Creates the first admin, only while there are no users at all; otherwise
    /// [`StoreError::Conflict`]. Deletes the one-time setup token in the same transaction.
    pub async fn create_first_admin(&self, new: &NewUser, audit: &Audit) -> Result<User> {
        let mut tx = self.db().begin().await?;
        let (count,): (i64,) =
            tx!(&mut tx, c => sqlx::query_as("SELECT COUNT(*) FROM users").fetch_one(c).await)?;
        if count > 0 {
            return Err(StoreError::Conflict("setup is already complete".into()));
        }
        let user = insert_user(&mut tx, new, self.now()).await?;
        tx!(&mut tx, c => sqlx::query("DELETE FROM settings WHERE key = $1")
            .bind(crate::settings::SETUP_TOKEN_HASH)
            .execute(c)
            .await.map(|r| r.rows_affected()))?;
        let audit = Audit {
            actor_user_id: Some(user.id),
            actor: user.email.to_string(),
            ..audit.clone()
        };
        record(
            &mut tx,
            &audit,
            self.now(),
            Change::new(
                "setup.complete",
                "user",
                user.id,
                format!("first admin {} created at setup", user.email),
            )
            .after(&user),
        )
        .await?;
        tx.commit().await?;
        Ok(user)
    }

    /// The user with this id.
    pub async fn user(&self, id: i64) -> Result<User> {
        read!(self.db(), c => sqlx::query_as(concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1"))
            .bind(id)
            .fetch_one(c)
            .await)
        .map_err(Into::into)
    }

    /// The user with this email, if any.
    pub async fn user_by_email(&self, email: &UserEmail) -> Result<Option<User>> {
        read!(self.db(), c => sqlx::query_as(concat!("SELECT ", user_columns!(), " FROM users WHERE email = $1"))
            .bind(email.as_str())
            .fetch_optional(c)
            .await)
        .map_err(Into::into)
    }

    /// The user with this email and their password hash, for signing in.
    pub async fn credentials(&self, email: &str) -> Result<Option<(User, Option<String>)>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            user: User,
            password_hash: Option<String>,
        }
        let row: Option<Row> = read!(self.db(), c => sqlx::query_as(concat!("SELECT ", user_columns!(), ", password_hash FROM users WHERE email = $1"))
        .bind(email)
        .fetch_optional(c)
        .await)?;
        Ok(row.map(|r| (r.user, r.password_hash)))
    }

    /// The password hash of a user, for checking the current password before a change.
    pub async fn password_hash(&self, user_id: i64) -> Result<Option<String>> {
        let (hash,): (Option<String>,) = read!(self.db(), c => sqlx::query_as("SELECT password_hash FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_one(c)
            .await)?;
        Ok(hash)
    }

    /// Users, newest first.
    pub async fn users(&self, limit: i64, cursor: Option<i64>) -> Result<Page<User>> {
        let rows: Vec<User> = read!(self.db(), c => sqlx::query_as(concat!("SELECT ", user_columns!(), " FROM users WHERE ($1 IS NULL OR id < $1) ORDER BY id DESC LIMIT $2"))
        .bind(cursor)
        .bind(limit + 1)
        .fetch_all(c)
        .await)?;
        Ok(Page::from_rows(rows, limit, |u| u.id))
    }

    /// Every user, by name (for pickers).
    pub async fn all_users(&self) -> Result<Vec<User>> {
        read!(self.db(), c => sqlx::query_as(concat!("SELECT ", user_columns!(), " FROM users ORDER BY name, id"))
            .fetch_all(c)
            .await)
        .map_err(Into::into)
    }

    /// Applies `patch` to a user and records before and after.
    pub async fn update_user(&self, id: i64, patch: &UserPatch, audit: &Audit) -> Result<User> {
        let mut tx = self.db().begin().await?;
        let before: User = tx!(&mut tx, c => sqlx::query_as(concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1"))
            .bind(id)
            .fetch_one(c)
            .await)?;
        let email = patch.email.clone().unwrap_or_else(|| before.email.clone());
        let name = patch.name.clone().unwrap_or_else(|| before.name.clone());
        let time_zone = patch.time_zone.unwrap_or(before.time_zone);
        let role = patch.role.unwrap_or(before.role);
        let disabled = patch.disabled.unwrap_or(before.disabled);
        let after: User = tx!(&mut tx, c => sqlx::query_as(concat!("UPDATE users SET email = $2, name = $3, time_zone = $4, role = $5, disabled = $6, updated_at = $7
             WHERE id = $1 RETURNING ", user_columns!(), ""))
        .bind(id)
        .bind(email.as_str())
        .bind(name.as_str())
        .bind(time_zone.name())
        .bind(role.as_str())
        .bind(disabled)
        .bind(self.now())
        .fetch_one(c)
        .await)?;
        if disabled && !before.disabled {
            tx!(&mut tx, c => sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(id).execute(c).await.map(|r| r.rows_affected()))?;
        }
        record(
            &mut tx,
            audit,
            self.now(),
            Change::new(
                "user.update",
                "user",
                id,
                describe_user_change(&before, &after),
            )
            .before(&before)
            .after(&after),
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Sets a new password hash and ends the user's other sessions (all but `keep_session`).
    pub async fn set_password(
        &self,
        id: i64,
        hash: &str,
        keep_session: Option<i64>,
        audit: &Audit,
    ) -> Result<()> {
        let mut tx = self.db().begin().await?;
        let done = tx!(&mut tx, c => sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(hash)
            .bind(self.now())
            .execute(c)
            .await.map(|r| r.rows_affected()))?;
        if done == 0 {
            return Err(StoreError::NotFound);
        }
        tx!(&mut tx, c => sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND ($2 IS NULL OR id <> $2)")
            .bind(id)
            .bind(keep_session)
            .execute(c)
            .await.map(|r| r.rows_affected()))?;
        record(
            &mut tx,
            audit,
            self.now(),
            Change::new(
                "user.password",
                "user",
                id,
                "password changed; other sessions ended",
            ),
        )
        .await?;
        tx.commit().await
    }
}

async fn insert_user(tx: &mut crate::Tx, new: &NewUser, now: DateTime<Utc>) -> Result<User> {
    tx!(tx, c => sqlx::query_as(concat!("INSERT INTO users (email, name, time_zone, role, password_hash, disabled, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, FALSE, $6, $6) RETURNING ", user_columns!(), ""))
    .bind(new.email.as_str())
    .bind(new.name.as_str())
    .bind(new.time_zone.name())
    .bind(new.role.as_str())
    .bind(&new.password_hash)
    .bind(now)
    .fetch_one(c)
    .await)
    .map_err(|e| match StoreError::from(e) {
        StoreError::Conflict(_) => StoreError::Conflict(format!("{} is already taken", new.email)),
        other => other,
    })
}

fn describe_user_change(before: &User, after: &User) -> String {
    let mut parts = Vec::new();
    if before.email != after.email {
        parts.push(format!("email {} → {}", before.email, after.email));
    }
    if before.name != after.name {
        parts.push(format!("name {} → {}", before.name, after.name));
    }
    if before.time_zone != after.time_zone {
        parts.push(format!(
            "time zone {} → {}",
            before.time_zone, after.time_zone
        ));
    }
    if before.role != after.role {
        parts.push(format!("role {} → {}", before.role, after.role));
    }
    if before.disabled != after.disabled {
        parts.push(if after.disabled {
            "disabled".into()
        } else {
            "enabled".into()
        });
    }
    if parts.is_empty() {
        format!("{} saved without changes", after.email)
    } else {
        format!("{}: {}", after.email, parts.join(", "))
    }
}
