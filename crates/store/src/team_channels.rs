//! Team channels: a team's Slack-compatible or generic webhook ("#ai-ops-incidents") that an
//! escalation policy level can post to beside people and schedules.
//!
//! A channel is verified by a test send through the engine, like a contact method. Policies
//! that post to a channel are mirrored in `escalation_policy_channels` (see
//! `escalation_policies`), so a channel still used cannot be deleted. Notifications to a
//! channel have no person; their idempotency key names the channel (`…:channel:{id}`), which
//! is how the engine and [`Store::finish_delivery`](crate::Store::finish_delivery) recognise them.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeDelta, Utc};
use heliograph_domain::InvalidValue;
use serde::Serialize;

use crate::audit::{Change, record};
use crate::{Audit, Result, Store, StoreError, Tx, read, tx};

/// The longest channel name.
pub const MAX_NAME_CHARS: usize = 80;
/// The longest channel URL.
pub const MAX_URL_CHARS: usize = 2000;
/// The subject of a channel's test message.
pub const TEST_SUBJECT: &str = "Heliograph test message: this channel will receive pages";

/// How a channel is posted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// A Slack-compatible incoming webhook: `{"text": …}`.
    Slack,
    /// Heliograph's generic JSON webhook.
    Webhook,
}

impl ChannelKind {
    /// Every kind, in the order forms offer them.
    pub const ALL: [ChannelKind; 2] = [ChannelKind::Slack, ChannelKind::Webhook];

    /// The stored name (also the notification channel): `slack` or `webhook`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Slack => "slack",
            ChannelKind::Webhook => "webhook",
        }
    }

    /// A name for people: "Slack", "Webhook".
    pub fn label(self) -> &'static str {
        match self {
            ChannelKind::Slack => "Slack",
            ChannelKind::Webhook => "Webhook",
        }
    }
}

impl fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ChannelKind {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "slack" => Ok(ChannelKind::Slack),
            "webhook" => Ok(ChannelKind::Webhook),
            "" => Err(InvalidValue::new("Choose Slack or Webhook")),
            other => Err(InvalidValue::new(format!(
                "\"{}\" is not a kind of channel (slack or webhook)",
                other.chars().take(32).collect::<String>()
            ))),
        }
    }
}

impl TryFrom<String> for ChannelKind {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

/// Checks a channel name: trimmed, 1 to [`MAX_NAME_CHARS`] characters, no control characters.
pub fn parse_name(raw: &str) -> Result<String, InvalidValue> {
    let text = raw.trim();
    if text.is_empty() {
        return Err(InvalidValue::new(
            "Name is required, e.g. #ai-ops-incidents",
        ));
    }
    if text.chars().count() > MAX_NAME_CHARS || text.chars().any(char::is_control) {
        return Err(InvalidValue::new(format!(
            "Name must be at most {MAX_NAME_CHARS} characters, without control characters"
        )));
    }
    Ok(text.to_owned())
}

/// Checks a channel URL: https with a host, or http only to 127.0.0.1 or localhost (a
/// receiver on the same machine, for tests); kept in its parsed form.
pub fn parse_url(raw: &str) -> Result<String, InvalidValue> {
    let text = raw.trim();
    if text.is_empty() {
        return Err(InvalidValue::new("URL is required"));
    }
    if text.chars().count() > MAX_URL_CHARS {
        return Err(InvalidValue::new(format!(
            "URL must be at most {MAX_URL_CHARS} characters"
        )));
    }
    let shape = || InvalidValue::new("URL must start with https:// and name a host");
    let url = url::Url::parse(text).map_err(|_| shape())?;
    let host = url.host_str().unwrap_or_default();
    if host.is_empty() || url.cannot_be_a_base() {
        return Err(shape());
    }
    match url.scheme() {
        "https" => {}
        "http" if matches!(host, "127.0.0.1" | "localhost") => {}
        "http" => {
            return Err(InvalidValue::new(
                "URL must use https:// (plain http:// only to 127.0.0.1 or localhost)",
            ));
        }
        _ => return Err(shape()),
    }
    Ok(url.to_string())
}

/// The channel a notification's idempotency key names: `page:…:channel:{id}` or
/// `test:channel:{id}:…`. `None` for notifications to people.
pub fn channel_of_key(key: &str) -> Option<i64> {
    let parts: Vec<&str> = key.split(':').collect();
    match parts.as_slice() {
        ["page", _, _, _, _, "channel", id] => id.parse().ok(),
        ["test", "channel", id, _] => id.parse().ok(),
        _ => None,
    }
}

/// A team's channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct TeamChannel {
    pub id: i64,
    pub team_id: i64,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub kind: ChannelKind,
    pub url: String,
    pub verified_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A channel to add, already checked by [`parse_name`] and [`parse_url`].
#[derive(Debug, Clone)]
pub struct NewChannel {
    pub name: String,
    pub kind: ChannelKind,
    pub url: String,
}

macro_rules! channel_columns {
    () => {
        "id, team_id, name, kind, url, verified_at, created_at"
    };
}

/// Marks channel `id` verified inside a delivery's transaction (first time kept).
pub(crate) async fn mark_verified(tx: &mut Tx, id: i64, now: DateTime<Utc>) -> Result<()> {
    tx!(tx, c => sqlx::query("UPDATE team_channels SET verified_at = COALESCE(verified_at, $2) WHERE id = $1")
        .bind(id)
        .bind(now)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

impl Store {
    /// A team's channels, by name.
    pub async fn team_channels(&self, team_id: i64) -> Result<Vec<TeamChannel>> {
        read!(self.db(), c => sqlx::query_as(concat!("SELECT ", channel_columns!(), " FROM team_channels WHERE team_id = $1 ORDER BY name, id"))
            .bind(team_id)
            .fetch_all(c)
            .await)
        .map_err(Into::into)
    }

    /// Every team's channels, by team and name (for policy editors).
    pub async fn all_team_channels(&self) -> Result<Vec<TeamChannel>> {
        read!(self.db(), c => sqlx::query_as(concat!("SELECT ", channel_columns!(), " FROM team_channels ORDER BY team_id, name, id"))
            .fetch_all(c)
            .await)
        .map_err(Into::into)
    }

    /// The channel with this id.
    pub async fn team_channel(&self, id: i64) -> Result<TeamChannel> {
        read!(self.db(), c => sqlx::query_as(concat!("SELECT ", channel_columns!(), " FROM team_channels WHERE id = $1"))
            .bind(id)
            .fetch_one(c)
            .await)
        .map_err(Into::into)
    }

    /// Adds a channel to a team. A name the team already uses is a [`StoreError::Conflict`].
    pub async fn add_team_channel(
        &self,
        team_id: i64,
        new: &NewChannel,
        audit: &Audit,
    ) -> Result<TeamChannel> {
        let name = parse_name(&new.name).map_err(|e| StoreError::Conflict(e.to_string()))?;
        let url = parse_url(&new.url).map_err(|e| StoreError::Conflict(e.to_string()))?;
        let now = self.now();
        let mut tx = self.db().begin().await?;
        let channel: TeamChannel = tx!(&mut tx, c => sqlx::query_as(concat!(
            "INSERT INTO team_channels (team_id, name, kind, url, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING ",
            channel_columns!()))
            .bind(team_id)
            .bind(&name)
            .bind(new.kind.as_str())
            .bind(&url)
            .bind(now)
            .fetch_one(c)
            .await)
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(m) if m.contains("UNIQUE") || m.contains("team_channels_team_id_name") || m.contains("name") => {
                StoreError::Conflict(format!("The team already has a channel named {name}"))
            }
            StoreError::Conflict(_) => StoreError::Conflict("the team does not exist".into()),
            other => other,
        })?;
        record(
            &mut tx,
            audit,
            now,
            Change::new(
                "team_channel.create",
                "team_channel",
                channel.id,
                format!(
                    "added {} channel {} to team {team_id}",
                    channel.kind.label(),
                    channel.name
                ),
            )
            .after(&channel),
        )
        .await?;
        tx.commit().await?;
        Ok(channel)
    }

    /// Deletes a channel. A channel an escalation policy posts to is a
    /// [`StoreError::Conflict`] naming the policy.
    pub async fn delete_team_channel(&self, id: i64, audit: &Audit) -> Result<()> {
        let before = self.team_channel(id).await?;
        let now = self.now();
        let mut tx = self.db().begin().await?;
        let users: Vec<(String,)> = tx!(&mut tx, c => sqlx::query_as(
            "SELECT p.name FROM escalation_policy_channels pc JOIN escalation_policies p ON p.id = pc.policy_id
             WHERE pc.channel_id = $1 ORDER BY p.name")
            .bind(id)
            .fetch_all(c)
            .await)?;
        if !users.is_empty() {
            let names: Vec<String> = users.into_iter().map(|r| r.0).collect();
            return Err(StoreError::Conflict(format!(
                "{} is used by escalation policy {}; remove it from the policy first",
                before.name,
                names.join(", ")
            )));
        }
        tx!(&mut tx, c => sqlx::query("DELETE FROM team_channels WHERE id = $1")
            .bind(id)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!(
                "{} is used by an escalation policy; remove it from the policy first",
                before.name
            )),
            other => other,
        })?;
        record(
            &mut tx,
            audit,
            now,
            Change::new(
                "team_channel.delete",
                "team_channel",
                id,
                format!("deleted channel {} of team {}", before.name, before.team_id),
            )
            .before(&before),
        )
        .await?;
        tx.commit().await
    }

    /// Records a test message to a channel: a pending notification (purpose `test`, no
    /// person) and its `deliver` job, in one transaction. The engine marks the channel
    /// verified when delivery succeeds. A second test within a minute is a conflict.
    pub async fn request_channel_test(&self, id: i64, audit: &Audit) -> Result<i64> {
        let channel = self.team_channel(id).await?;
        let now = self.now();
        let mut tx = self.db().begin().await?;
        let (recent,): (i64,) = tx!(&mut tx, c => sqlx::query_as(
            "SELECT COUNT(*) FROM notifications WHERE purpose = 'test' AND user_id IS NULL
             AND idempotency_key LIKE $1 AND created_at > $2")
            .bind(format!("test:channel:{id}:%"))
            .bind(now - TimeDelta::minutes(1))
            .fetch_one(c)
            .await)?;
        if recent > 0 {
            return Err(StoreError::Conflict(format!(
                "A test was sent to {} less than a minute ago; check the channel before sending another",
                channel.name
            )));
        }
        let key = format!("test:channel:{id}:{}", now.timestamp_millis());
        let (notification_id,): (i64,) = tx!(&mut tx, c => sqlx::query_as(
            "INSERT INTO notifications (idempotency_key, purpose, channel, address, subject, state, created_at, due_at)
             VALUES ($1, 'test', $2, $3, $4, 'pending', $5, $5) RETURNING id")
            .bind(&key)
            .bind(channel.kind.as_str())
            .bind(&channel.url)
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
        tx!(&mut tx, c => sqlx::query(
            "INSERT INTO jobs (kind, payload, run_at, dedup_key, created_at) VALUES ('deliver', $1, $2, $3, $2)")
            .bind(&payload)
            .bind(now)
            .bind(format!("deliver:{notification_id}"))
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        record(
            &mut tx,
            audit,
            now,
            Change::new(
                "team_channel.test",
                "team_channel",
                id,
                format!("requested a test message to channel {}", channel.name),
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(notification_id)
    }

    /// The ids of the escalation policies that post to channel `id`.
    pub async fn policies_using_channel(&self, id: i64) -> Result<Vec<i64>> {
        let rows: Vec<(i64,)> = read!(self.db(), c => sqlx::query_as(
            "SELECT policy_id FROM escalation_policy_channels WHERE channel_id = $1 ORDER BY policy_id")
            .bind(id)
            .fetch_all(c)
            .await)?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(parse_url("https://hooks.slack.com/services/T/B/x").is_ok());
        assert!(parse_url("http://127.0.0.1:8080/hook").is_ok());
        assert!(parse_url("http://localhost/hook").is_ok());
        assert!(parse_url("http://example.com/hook").is_err());
        assert!(parse_url("ftp://example.com/").is_err());
        assert!(parse_url("").is_err());
        assert!(parse_url("not a url").is_err());
    }

    #[test]
    fn keys() {
        assert_eq!(channel_of_key("page:1:1:0:0:channel:7"), Some(7));
        assert_eq!(channel_of_key("test:channel:7:12345"), Some(7));
        assert_eq!(channel_of_key("page:1:1:0:0:5:3:2"), None);
        assert_eq!(channel_of_key("test:3:12345"), None);
    }
}
