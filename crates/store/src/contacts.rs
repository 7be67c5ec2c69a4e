//! How each person is reached: contact methods (email addresses, webhook URLs), notification
//! rules ("email at once, again after 5 minutes if still unacknowledged"), and working hours.
//!
//! A person's account email is their first email contact method: [`Store::ensure_default_contact`]
//! creates it (verified, since the account email is known) with a rule "at once" for anyone
//! who has no contact method yet, and the last email method cannot be deleted.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeDelta, Utc};
use heliograph_domain::{InvalidValue, UserEmail, WorkingHours};
use serde::Serialize;

use crate::audit::{Change, record};
use crate::{Audit, Result, Store, StoreError, Tx, read, tx};

/// The longest URL accepted for a webhook.
pub const MAX_URL_CHARS: usize = 2000;
/// The longest label of a contact method.
pub const MAX_LABEL_CHARS: usize = 100;
/// The longest wait a notification rule may have, in minutes (one day).
pub const MAX_DELAY_MINUTES: u16 = 1440;
/// How many test notifications one person may request in an hour.
pub const MAX_TESTS_PER_HOUR: i64 = 10;
/// The subject of a test notification.
pub const TEST_SUBJECT: &str = "Heliograph test notification";

/// How a contact method delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactKind {
    /// An email address, sent to over SMTP.
    Email,
    /// A URL that receives Heliograph's generic JSON, signed.
    Webhook,
    /// A Slack-compatible incoming-webhook URL that receives `{"text": …}`.
    Slack,
}

impl ContactKind {
    /// Every kind, in the order forms offer them.
    pub const ALL: [ContactKind; 3] =
        [ContactKind::Email, ContactKind::Webhook, ContactKind::Slack];

    /// The stored name: `email`, `webhook` or `slack`.
    pub fn as_str(self) -> &'static str {
        match self {
            ContactKind::Email => "email",
            ContactKind::Webhook => "webhook",
            ContactKind::Slack => "slack",
        }
    }

    /// A name for people: "Email", "Webhook", "Slack webhook".
    pub fn label(self) -> &'static str {
        match self {
            ContactKind::Email => "Email",
            ContactKind::Webhook => "Webhook",
            ContactKind::Slack => "Slack webhook",
        }
    }

    /// Checks and normalises an address of this kind: an email through [`UserEmail`]
    /// (trimmed, lower-cased); a URL must be http(s) with a host and at most
    /// [`MAX_URL_CHARS`] characters, and is kept in its parsed (canonical) form so that the
    /// same URL typed twice is recognised as a duplicate.
    pub fn parse_address(self, raw: &str) -> Result<String, InvalidValue> {
        match self {
            ContactKind::Email => UserEmail::parse(raw).map(String::from),
            ContactKind::Webhook | ContactKind::Slack => parse_webhook_url(raw),
        }
    }
}

fn parse_webhook_url(raw: &str) -> Result<String, InvalidValue> {
    let text = raw.trim();
    if text.is_empty() {
        return Err(InvalidValue::new("URL is required"));
    }
    if text.chars().count() > MAX_URL_CHARS {
        return Err(InvalidValue::new(format!(
            "URL must be at most {MAX_URL_CHARS} characters"
        )));
    }
    let shape = || InvalidValue::new("URL must start with https:// or http:// and name a host");
    let url = url::Url::parse(text).map_err(|_| shape())?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none_or(str::is_empty)
        || url.cannot_be_a_base()
    {
        return Err(shape());
    }
    let canonical = url.to_string();
    if canonical.chars().count() > MAX_URL_CHARS {
        return Err(InvalidValue::new(format!(
            "URL must be at most {MAX_URL_CHARS} characters"
        )));
    }
    Ok(canonical)
}

/// Checks an optional label: trimmed, at most [`MAX_LABEL_CHARS`], no control characters.
pub fn parse_label(raw: &str) -> Result<String, InvalidValue> {
    let text = raw.trim();
    if text.chars().count() > MAX_LABEL_CHARS {
        return Err(InvalidValue::new(format!(
            "Label must be at most {MAX_LABEL_CHARS} characters"
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(InvalidValue::new(
            "Label must not contain control characters",
        ));
    }
    Ok(text.to_owned())
}

/// Checks a rule's delay: whole minutes from 0 to [`MAX_DELAY_MINUTES`].
pub fn parse_delay_minutes(raw: &str) -> Result<u16, InvalidValue> {
    let bad = || {
        InvalidValue::new(format!(
            "Delay must be a whole number of minutes from 0 to {MAX_DELAY_MINUTES}"
        ))
    };
    let minutes: u16 = raw.trim().parse().map_err(|_| bad())?;
    if minutes > MAX_DELAY_MINUTES {
        return Err(bad());
    }
    Ok(minutes)
}

impl fmt::Display for ContactKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ContactKind {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "email" => Ok(ContactKind::Email),
            "webhook" => Ok(ContactKind::Webhook),
            "slack" => Ok(ContactKind::Slack),
            other => Err(InvalidValue::new(format!(
                "\"{}\" is not a kind of contact method (email, webhook or slack)",
                other.chars().take(32).collect::<String>()
            ))),
        }
    }
}

impl TryFrom<String> for ContactKind {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

/// One way to reach a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ContactMethod {
    pub id: i64,
    pub user_id: i64,
    #[sqlx(try_from = "String")]
    pub kind: ContactKind,
    /// An email address or a URL, normalised by [`ContactKind::parse_address`].
    pub address: String,
    /// The person's own name for it ("phone mail", "team channel"); may be empty.
    pub label: String,
    /// When a test send (or the account email being known) proved it works.
    pub verified_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl ContactMethod {
    /// Whether this is the person's account email (given that email).
    pub fn is_account_email(&self, account_email: &str) -> bool {
        self.kind == ContactKind::Email && self.address == account_email
    }
}

/// A new contact method, its address already checked by [`ContactKind::parse_address`].
#[derive(Debug, Clone)]
pub struct NewContactMethod {
    pub kind: ContactKind,
    pub address: String,
    pub label: String,
}

/// "Contact method M, `delay_minutes` after the page, if still unacknowledged."
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct NotificationRule {
    pub id: i64,
    pub user_id: i64,
    pub contact_method_id: i64,
    pub delay_minutes: i64,
    pub created_at: DateTime<Utc>,
}

/// What a test send request created: the notification and the job that delivers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestRequest {
    pub notification_id: i64,
    pub job_id: i64,
}

macro_rules! method_columns {
    () => {
        "id, user_id, kind, address, label, verified_at, created_at"
    };
}

macro_rules! rule_columns {
    () => {
        "id, user_id, contact_method_id, delay_minutes, created_at"
    };
}

/// Serialises changes to one person's contacts: the row lock on PostgreSQL makes a second
/// transaction wait until the first commits, and then see its work; SQLite has one writer.
async fn lock_user(tx: &mut Tx, user_id: i64) -> Result<()> {
    let n = tx!(tx, c => sqlx::query("UPDATE users SET id = id WHERE id = $1")
        .bind(user_id)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// The contact method `id` if it belongs to `user_id`, inside a transaction.
async fn owned_method(tx: &mut Tx, user_id: i64, id: i64) -> Result<ContactMethod> {
    tx!(tx, c => sqlx::query_as(concat!("SELECT ", method_columns!(), " FROM contact_methods WHERE id = $1 AND user_id = $2"))
        .bind(id)
        .bind(user_id)
        .fetch_optional(c)
        .await)?
    .ok_or(StoreError::NotFound)
}

async fn insert_method(
    tx: &mut Tx,
    user_id: i64,
    new: &NewContactMethod,
    verified_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<Option<ContactMethod>> {
    tx!(tx, c => sqlx::query_as(concat!(
        "INSERT INTO contact_methods (user_id, kind, address, label, verified_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (user_id, kind, address) DO NOTHING
         RETURNING ", method_columns!()))
        .bind(user_id)
        .bind(new.kind.as_str())
        .bind(&new.address)
        .bind(&new.label)
        .bind(verified_at)
        .bind(now)
        .fetch_optional(c)
        .await)
    .map_err(Into::into)
}

async fn insert_rule(
    tx: &mut Tx,
    method: &ContactMethod,
    delay_minutes: u16,
    now: DateTime<Utc>,
) -> Result<NotificationRule> {
    tx!(tx, c => sqlx::query_as(concat!(
        "INSERT INTO notification_rules (user_id, contact_method_id, delay_minutes, created_at)
         VALUES ($1, $2, $3, $4) RETURNING ", rule_columns!()))
        .bind(method.user_id)
        .bind(method.id)
        .bind(i64::from(delay_minutes))
        .bind(now)
        .fetch_one(c)
        .await)
    .map_err(|e| match StoreError::from(e) {
        StoreError::Conflict(_) => StoreError::Conflict(format!(
            "There is already a rule for {} after {delay_minutes} minutes",
            method.address
        )),
        other => other,
    })
}

/// How a rule reads: "Email ana@example.com at once", "… after 5 minutes if still
/// unacknowledged".
pub fn describe_rule(method: &ContactMethod, delay_minutes: i64) -> String {
    let when = match delay_minutes {
        0 => "at once".to_owned(),
        1 => "after 1 minute if still unacknowledged".to_owned(),
        n => format!("after {n} minutes if still unacknowledged"),
    };
    format!("{} {} {when}", method.kind.label(), method.address)
}

impl Store {
    /// A person's contact methods: the account email first, then the others oldest first.
    pub async fn contact_methods_of(&self, user_id: i64) -> Result<Vec<ContactMethod>> {
        let account: Option<(String,)> = read!(self.db(), c => sqlx::query_as("SELECT email FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(c)
            .await)?;
        let mut methods: Vec<ContactMethod> = read!(self.db(), c => sqlx::query_as(concat!(
            "SELECT ", method_columns!(), " FROM contact_methods WHERE user_id = $1 ORDER BY id"))
            .bind(user_id)
            .fetch_all(c)
            .await)?;
        if let Some((email,)) = account {
            // Stable: the account email moves to the front, the rest keep their order.
            methods.sort_by_key(|m| !m.is_account_email(&email));
        }
        Ok(methods)
    }

    /// The contact method with this id, whoever owns it (callers check the owner).
    pub async fn contact_method(&self, id: i64) -> Result<ContactMethod> {
        read!(self.db(), c => sqlx::query_as(concat!("SELECT ", method_columns!(), " FROM contact_methods WHERE id = $1"))
            .bind(id)
            .fetch_one(c)
            .await)
        .map_err(Into::into)
    }

    /// Adds a contact method for `user_id`. The same kind and address twice is a
    /// [`StoreError::Conflict`]; an address that fails [`ContactKind::parse_address`] too.
    pub async fn add_contact_method(
        &self,
        user_id: i64,
        new: &NewContactMethod,
        audit: &Audit,
    ) -> Result<ContactMethod> {
        let address = new
            .kind
            .parse_address(&new.address)
            .map_err(|e| StoreError::Conflict(e.to_string()))?;
        let label = parse_label(&new.label).map_err(|e| StoreError::Conflict(e.to_string()))?;
        let new = NewContactMethod {
            kind: new.kind,
            address,
            label,
        };
        let now = self.now();
        let mut tx = self.db().begin().await?;
        lock_user(&mut tx, user_id).await?;
        let method = insert_method(&mut tx, user_id, &new, None, now)
            .await?
            .ok_or_else(|| {
                StoreError::Conflict(format!(
                    "{} {} is already one of your contact methods",
                    new.kind.label(),
                    new.address
                ))
            })?;
        record(
            &mut tx,
            audit,
            now,
            Change::new(
                "contact_method.create",
                "contact_method",
                method.id,
                format!(
                    "added {} {} for user {user_id}",
                    method.kind.label().to_lowercase(),
                    method.address
                ),
            )
            .after(&method),
        )
        .await?;
        tx.commit().await?;
        Ok(method)
    }

    /// Deletes one of `user_id`'s contact methods and its rules. Someone else's method is
    /// [`StoreError::NotFound`]; the person's last email method is a [`StoreError::Conflict`]
    /// (the account email must stay reachable).
    pub async fn delete_contact_method(&self, user_id: i64, id: i64, audit: &Audit) -> Result<()> {
        let now = self.now();
        let mut tx = self.db().begin().await?;
        lock_user(&mut tx, user_id).await?;
        let method = owned_method(&mut tx, user_id, id).await?;
        if method.kind == ContactKind::Email {
            let (emails,): (i64,) = tx!(&mut tx, c => sqlx::query_as(
                "SELECT COUNT(*) FROM contact_methods WHERE user_id = $1 AND kind = 'email'")
                .bind(user_id)
                .fetch_one(c)
                .await)?;
            if emails <= 1 {
                return Err(StoreError::Conflict(
                    "This is your only email address; add another before deleting it".into(),
                ));
            }
        }
        let rules: Vec<NotificationRule> = tx!(&mut tx, c => sqlx::query_as(concat!(
            "SELECT ", rule_columns!(), " FROM notification_rules WHERE contact_method_id = $1 ORDER BY id"))
            .bind(id)
            .fetch_all(c)
            .await)?;
        tx!(&mut tx, c => sqlx::query("DELETE FROM notification_rules WHERE contact_method_id = $1")
            .bind(id)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        tx!(&mut tx, c => sqlx::query("DELETE FROM contact_methods WHERE id = $1")
            .bind(id)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        record(
            &mut tx,
            audit,
            now,
            Change::new(
                "contact_method.delete",
                "contact_method",
                id,
                format!(
                    "deleted {} {} of user {user_id} and its {} rule(s)",
                    method.kind.label().to_lowercase(),
                    method.address,
                    rules.len()
                ),
            )
            .before(serde_json::json!({"method": &method, "rules": &rules})),
        )
        .await?;
        tx.commit().await
    }

    /// Marks a contact method verified (a test send to it succeeded); a method verified
    /// before keeps its first time. Returns whether it was newly verified.
    pub async fn mark_contact_verified(&self, id: i64, audit: &Audit) -> Result<bool> {
        let now = self.now();
        let mut tx = self.db().begin().await?;
        let updated: Option<ContactMethod> = tx!(&mut tx, c => sqlx::query_as(concat!(
            "UPDATE contact_methods SET verified_at = $2 WHERE id = $1 AND verified_at IS NULL RETURNING ",
            method_columns!()))
            .bind(id)
            .bind(now)
            .fetch_optional(c)
            .await)?;
        let Some(method) = updated else {
            let exists: Option<(i64,)> = tx!(&mut tx, c => sqlx::query_as("SELECT id FROM contact_methods WHERE id = $1")
                .bind(id)
                .fetch_optional(c)
                .await)?;
            return match exists {
                Some(_) => Ok(false),
                None => Err(StoreError::NotFound),
            };
        };
        record(
            &mut tx,
            audit,
            now,
            Change::new(
                "contact_method.verify",
                "contact_method",
                id,
                format!(
                    "verified {} {} of user {}",
                    method.kind.label().to_lowercase(),
                    method.address,
                    method.user_id
                ),
            )
            .after(&method),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// A person's notification rules, soonest first.
    pub async fn rules_of(&self, user_id: i64) -> Result<Vec<NotificationRule>> {
        read!(self.db(), c => sqlx::query_as(concat!(
            "SELECT ", rule_columns!(), " FROM notification_rules WHERE user_id = $1 ORDER BY delay_minutes, id"))
            .bind(user_id)
            .fetch_all(c)
            .await)
        .map_err(Into::into)
    }

    /// Adds a rule: notify through `contact_method_id` (which must be `user_id`'s, else
    /// [`StoreError::NotFound`]) `delay_minutes` after a page if still unacknowledged. A
    /// delay over [`MAX_DELAY_MINUTES`] or the same method and delay twice is a conflict.
    pub async fn add_notification_rule(
        &self,
        user_id: i64,
        contact_method_id: i64,
        delay_minutes: u16,
        audit: &Audit,
    ) -> Result<NotificationRule> {
        if delay_minutes > MAX_DELAY_MINUTES {
            return Err(StoreError::Conflict(format!(
                "Delay must be at most {MAX_DELAY_MINUTES} minutes"
            )));
        }
        let now = self.now();
        let mut tx = self.db().begin().await?;
        lock_user(&mut tx, user_id).await?;
        let method = owned_method(&mut tx, user_id, contact_method_id).await?;
        let rule = insert_rule(&mut tx, &method, delay_minutes, now).await?;
        record(
            &mut tx,
            audit,
            now,
            Change::new(
                "notification_rule.create",
                "notification_rule",
                rule.id,
                format!(
                    "added rule for user {user_id}: {}",
                    describe_rule(&method, rule.delay_minutes)
                ),
            )
            .after(&rule),
        )
        .await?;
        tx.commit().await?;
        Ok(rule)
    }

    /// Deletes one of `user_id`'s rules (someone else's is [`StoreError::NotFound`]). With no
    /// rules left, pages go to the account email at once.
    pub async fn delete_notification_rule(
        &self,
        user_id: i64,
        id: i64,
        audit: &Audit,
    ) -> Result<()> {
        let now = self.now();
        let mut tx = self.db().begin().await?;
        let rule: NotificationRule = tx!(&mut tx, c => sqlx::query_as(concat!(
            "DELETE FROM notification_rules WHERE id = $1 AND user_id = $2 RETURNING ", rule_columns!()))
            .bind(id)
            .bind(user_id)
            .fetch_optional(c)
            .await)?
        .ok_or(StoreError::NotFound)?;
        let method = owned_method(&mut tx, user_id, rule.contact_method_id).await?;
        record(
            &mut tx,
            audit,
            now,
            Change::new(
                "notification_rule.delete",
                "notification_rule",
                id,
                format!(
                    "deleted rule of user {user_id}: {}",
                    describe_rule(&method, rule.delay_minutes)
                ),
            )
            .before(&rule),
        )
        .await?;
        tx.commit().await
    }

    /// A person's working hours (in their own zone) and handoff notice lead time.
    pub async fn working_hours(&self, user_id: i64) -> Result<WorkingHours> {
        let (days, start, end, lead): (String, String, String, i64) = read!(self.db(), c => sqlx::query_as(
            "SELECT work_days, work_start, work_end, handoff_lead_minutes FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_one(c)
            .await)?;
        WorkingHours::from_stored(&days, &start, &end, lead)
            .map_err(|e| StoreError::Corrupt(format!("working hours of user {user_id}: {e}")))
    }

    /// Replaces a person's working hours and handoff notice lead time.
    pub async fn set_working_hours(
        &self,
        user_id: i64,
        hours: &WorkingHours,
        audit: &Audit,
    ) -> Result<WorkingHours> {
        let before = self.working_hours(user_id).await?;
        let now = self.now();
        let mut tx = self.db().begin().await?;
        let n = tx!(&mut tx, c => sqlx::query(
            "UPDATE users SET work_days = $2, work_start = $3, work_end = $4, handoff_lead_minutes = $5, updated_at = $6 WHERE id = $1")
            .bind(user_id)
            .bind(hours.days_text())
            .bind(hours.start().to_string())
            .bind(hours.end().to_string())
            .bind(i64::from(hours.handoff_lead_minutes()))
            .bind(now)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        record(
            &mut tx,
            audit,
            now,
            Change::new(
                "user.working_hours",
                "user",
                user_id,
                format!(
                    "set working hours of user {user_id} to {} {}–{}, handoff notices {} minutes ahead",
                    hours.days_text(),
                    hours.start(),
                    hours.end(),
                    hours.handoff_lead_minutes()
                ),
            )
            .before(&before)
            .after(hours),
        )
        .await?;
        tx.commit().await?;
        Ok(hours.clone())
    }

    /// For a person with no contact method at all, creates one for the account email
    /// (verified: the account email is known) and a rule to use it at once. Safe to call on
    /// every profile view and from the engine; returns the method when one was created.
    pub async fn ensure_default_contact(&self, user_id: i64) -> Result<Option<ContactMethod>> {
        let existing: (i64,) = read!(self.db(), c => sqlx::query_as(
            "SELECT COUNT(*) FROM contact_methods WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(c)
            .await)?;
        if existing.0 > 0 {
            return Ok(None);
        }
        let now = self.now();
        let mut tx = self.db().begin().await?;
        lock_user(&mut tx, user_id).await?;
        // Checked again under the lock: another request may have just done it.
        let (count, email): (i64, String) = tx!(&mut tx, c => sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM contact_methods WHERE user_id = $1), email FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_one(c)
            .await)?;
        if count > 0 {
            return Ok(None);
        }
        let new = NewContactMethod {
            kind: ContactKind::Email,
            address: email,
            label: String::new(),
        };
        let Some(method) = insert_method(&mut tx, user_id, &new, Some(now), now).await? else {
            return Ok(None);
        };
        let rule = insert_rule(&mut tx, &method, 0, now).await?;
        record(
            &mut tx,
            &Audit::system(),
            now,
            Change::new(
                "contact_method.create",
                "contact_method",
                method.id,
                format!(
                    "added the account email {} of user {user_id} as a contact method, used at once",
                    method.address
                ),
            )
            .after(serde_json::json!({"method": &method, "rule": &rule})),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(method))
    }

    /// Records a request to send a test notification to one contact method: a pending
    /// notification (purpose `test`) and the `deliver` job that sends it, in one transaction.
    /// The engine marks the method verified when delivery succeeds. Callers check the owner.
    /// A second test to the same method within a minute, or more than [`MAX_TESTS_PER_HOUR`]
    /// from one person in an hour, is a [`StoreError::Conflict`].
    pub async fn request_test_notification(
        &self,
        contact_method_id: i64,
        audit: &Audit,
    ) -> Result<TestRequest> {
        let now = self.now();
        let mut tx = self.db().begin().await?;
        let method: ContactMethod = tx!(&mut tx, c => sqlx::query_as(concat!("SELECT ", method_columns!(), " FROM contact_methods WHERE id = $1"))
            .bind(contact_method_id)
            .fetch_optional(c)
            .await)?
        .ok_or(StoreError::NotFound)?;
        // Test sends go to addresses nobody has proven yet: a few, slowly.
        lock_user(&mut tx, method.user_id).await?;
        let (this_minute, this_hour): (i64, i64) = tx!(&mut tx, c => sqlx::query_as(
            "SELECT COALESCE(SUM(CASE WHEN contact_method_id = $2 AND created_at > $3 THEN 1 ELSE 0 END), 0),
                    COUNT(*)
             FROM notifications WHERE purpose = 'test' AND user_id = $1 AND created_at > $4")
            .bind(method.user_id)
            .bind(method.id)
            .bind(now - TimeDelta::minutes(1))
            .bind(now - TimeDelta::hours(1))
            .fetch_one(c)
            .await)?;
        if this_minute > 0 {
            return Err(StoreError::Conflict(
                "A test was sent to this method less than a minute ago; check for it before sending another".into(),
            ));
        }
        if this_hour >= MAX_TESTS_PER_HOUR {
            return Err(StoreError::Conflict(format!(
                "You have sent {MAX_TESTS_PER_HOUR} tests in the last hour; try again later"
            )));
        }
        let key = format!("test:{}:{}", method.id, now.timestamp_millis());
        let (notification_id,): (i64,) = tx!(&mut tx, c => sqlx::query_as(
            "INSERT INTO notifications (idempotency_key, user_id, contact_method_id, purpose, channel, address, subject, state, created_at, due_at)
             VALUES ($1, $2, $3, 'test', $4, $5, $6, 'pending', $7, $7) RETURNING id")
            .bind(&key)
            .bind(method.user_id)
            .bind(method.id)
            .bind(method.kind.as_str())
            .bind(&method.address)
            .bind(TEST_SUBJECT)
            .bind(now)
            .fetch_one(c)
            .await)
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => {
                StoreError::Conflict("A test was just requested; wait a moment".into())
            }
            other => other,
        })?;
        let payload = serde_json::json!({ "notification_id": notification_id }).to_string();
        let (job_id,): (i64,) = tx!(&mut tx, c => sqlx::query_as(
            "INSERT INTO jobs (kind, payload, run_at, dedup_key, created_at) VALUES ('deliver', $1, $2, $3, $2) RETURNING id")
            .bind(&payload)
            .bind(now)
            .bind(format!("deliver:{notification_id}"))
            .fetch_one(c)
            .await)?;
        record(
            &mut tx,
            audit,
            now,
            Change::new(
                "contact_method.test",
                "contact_method",
                method.id,
                format!(
                    "requested a test notification to {} {}",
                    method.kind.label().to_lowercase(),
                    method.address
                ),
            )
            .after(serde_json::json!({"notification_id": notification_id, "job_id": job_id})),
        )
        .await?;
        tx.commit().await?;
        Ok(TestRequest {
            notification_id,
            job_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_by_kind() {
        assert_eq!(
            ContactKind::Email
                .parse_address(" Ana@Example.com ")
                .unwrap(),
            "ana@example.com"
        );
        assert!(ContactKind::Email.parse_address("ana").is_err());
        assert_eq!(
            ContactKind::Webhook
                .parse_address("https://hooks.example.com")
                .unwrap(),
            "https://hooks.example.com/"
        );
        assert!(
            ContactKind::Slack
                .parse_address("http://10.0.0.1:8080/x?y=1")
                .is_ok()
        );
        for bad in [
            "",
            "ftp://example.com/x",
            "https://",
            "mailto:ana@example.com",
            "example.com/hook",
            "javascript:alert(1)",
            "file:///etc/passwd",
        ] {
            assert!(
                ContactKind::Webhook.parse_address(bad).is_err(),
                "{bad:?} accepted"
            );
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_CHARS));
        assert!(ContactKind::Webhook.parse_address(&long).is_err());
        assert!("sms".parse::<ContactKind>().is_err());
    }

    #[test]
    fn delays_and_labels_are_bounded() {
        assert_eq!(parse_delay_minutes("5").unwrap(), 5);
        assert_eq!(parse_delay_minutes("1440").unwrap(), 1440);
        for bad in ["", "-1", "1441", "5000", "2.5", "five"] {
            assert!(parse_delay_minutes(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(parse_label("  phone ").unwrap(), "phone");
        assert!(parse_label(&"x".repeat(101)).is_err());
        assert!(parse_label("a\u{7}b").is_err());
    }
}
