//! Escalation policies: ordered levels of people and schedules to page, each waiting a number
//! of minutes for an acknowledgement before the next, the whole repeated N times.
//!
//! Like schedules, the levels are one JSON document in CONTRACT.md's shape, replaced whole and
//! guarded by a version number; `escalation_policy_targets` mirrors the users and schedules the
//! levels name (and `escalation_policy_channels` the team channels), so a person, schedule or
//! channel still paged cannot be deleted from under a policy and "which policies page this
//! schedule" is one indexed query.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use heliograph_domain::Severity;
use serde::{Deserialize, Serialize};

use crate::audit::{Change, record};
use crate::{Audit, Page, Result, Store, StoreError, Tx, read, tx};

/// What a level pages: a person, whoever is on call in a schedule at the time, or a team
/// channel (a Slack-compatible or generic webhook; see `team_channels`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    User,
    Schedule,
    Channel,
}

impl TargetKind {
    /// `user`, `schedule` or `channel`.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::User => "user",
            TargetKind::Schedule => "schedule",
            TargetKind::Channel => "channel",
        }
    }
}

/// One target of a level, `{"type": "schedule", "id": 1}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    #[serde(rename = "type")]
    pub kind: TargetKind,
    pub id: i64,
}

impl Target {
    /// A person.
    pub fn user(id: i64) -> Self {
        Target {
            kind: TargetKind::User,
            id,
        }
    }

    /// A schedule (whoever is on call in it when the level runs).
    pub fn schedule(id: i64) -> Self {
        Target {
            kind: TargetKind::Schedule,
            id,
        }
    }

    /// A team channel (posted to, not a person).
    pub fn channel(id: i64) -> Self {
        Target {
            kind: TargetKind::Channel,
            id,
        }
    }
}

/// One level: its targets, how long to wait for an acknowledgement before the next level,
/// and the least severe incident it applies to (`None`: every severity).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Level {
    pub delay_minutes: u32,
    #[serde(default)]
    pub min_severity: Option<Severity>,
    pub targets: Vec<Target>,
}

impl Level {
    /// Whether this level runs for an incident of `severity` (a level limited to SEV2 runs for
    /// SEV1 and SEV2 and is skipped for SEV3 and SEV4).
    pub fn applies_to(&self, severity: Severity) -> bool {
        self.min_severity.is_none_or(|m| severity.at_least(m))
    }
}

/// A stored escalation policy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredPolicy {
    pub id: i64,
    pub name: String,
    pub team_id: i64,
    /// How many more times the whole policy runs after the last level (0 = once).
    pub repeat: u32,
    pub levels: Vec<Level>,
    /// Page SEV3/SEV4 at any hour instead of waiting for each person's working hours.
    pub low_severity_any_time: bool,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl StoredPolicy {
    /// Every target of every level, without repeats.
    pub fn targets(&self) -> BTreeSet<Target> {
        targets_of(&self.levels)
    }
}

/// The editable fields of a policy, already validated (see the web crate's `policies::check`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyFields {
    pub name: String,
    pub team_id: i64,
    pub repeat: u32,
    pub levels: Vec<Level>,
    pub low_severity_any_time: bool,
}

#[derive(sqlx::FromRow)]
struct PolicyRow {
    id: i64,
    name: String,
    team_id: i64,
    repeat: i64,
    levels: String,
    low_severity_any_time: bool,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<PolicyRow> for StoredPolicy {
    type Error = StoreError;

    fn try_from(row: PolicyRow) -> Result<Self> {
        let levels = serde_json::from_str(&row.levels).map_err(|e| {
            StoreError::Corrupt(format!("escalation policy {} levels: {e}", row.id))
        })?;
        let repeat = u32::try_from(row.repeat).map_err(|_| {
            StoreError::Corrupt(format!(
                "escalation policy {} repeat {}",
                row.id, row.repeat
            ))
        })?;
        Ok(StoredPolicy {
            id: row.id,
            name: row.name,
            team_id: row.team_id,
            repeat,
            levels,
            low_severity_any_time: row.low_severity_any_time,
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

macro_rules! policy_columns {
    () => {
        "id, name, team_id, repeat, levels, low_severity_any_time, version, created_at, updated_at"
    };
}

fn targets_of(levels: &[Level]) -> BTreeSet<Target> {
    levels
        .iter()
        .flat_map(|l| l.targets.iter().copied())
        .collect()
}

fn encode_levels(levels: &[Level]) -> Result<String> {
    serde_json::to_string(levels).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn named(err: sqlx::Error, name: &str) -> StoreError {
    match StoreError::from(err) {
        StoreError::Conflict(m) if m.contains("name") || m.contains("UNIQUE") => {
            StoreError::Conflict(format!("an escalation policy named {name} already exists"))
        }
        StoreError::Conflict(_) => StoreError::Conflict("the team does not exist".into()),
        other => other,
    }
}

async fn set_targets(tx: &mut Tx, policy_id: i64, levels: &[Level]) -> Result<()> {
    tx!(tx, c => sqlx::query("DELETE FROM escalation_policy_targets WHERE policy_id = $1")
        .bind(policy_id)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    tx!(tx, c => sqlx::query("DELETE FROM escalation_policy_channels WHERE policy_id = $1")
        .bind(policy_id)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    for target in targets_of(levels) {
        let (user_id, schedule_id) = match target.kind {
            TargetKind::User => (Some(target.id), None),
            TargetKind::Schedule => (None, Some(target.id)),
            TargetKind::Channel => {
                tx!(tx, c => sqlx::query(
                    "INSERT INTO escalation_policy_channels (policy_id, channel_id) VALUES ($1, $2)")
                    .bind(policy_id)
                    .bind(target.id)
                    .execute(c)
                    .await
                    .map(|r| r.rows_affected()))
                .map_err(|e| match StoreError::from(e) {
                    StoreError::Conflict(_) => {
                        StoreError::Conflict(format!("channel {} does not exist", target.id))
                    }
                    other => other,
                })?;
                continue;
            }
        };
        tx!(tx, c => sqlx::query(
            "INSERT INTO escalation_policy_targets (policy_id, user_id, schedule_id) VALUES ($1, $2, $3)")
            .bind(policy_id)
            .bind(user_id)
            .bind(schedule_id)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!(
                "{} {} does not exist",
                target.kind.as_str(),
                target.id
            )),
            other => other,
        })?;
    }
    Ok(())
}

impl Store {
    /// Creates an escalation policy.
    pub async fn create_policy(
        &self,
        fields: &PolicyFields,
        audit: &Audit,
    ) -> Result<StoredPolicy> {
        let now = self.now();
        let levels = encode_levels(&fields.levels)?;
        let mut tx = self.db().begin().await?;
        let row: PolicyRow = tx!(&mut tx, c => sqlx::query_as(concat!(
            "INSERT INTO escalation_policies (name, team_id, repeat, levels, low_severity_any_time, version, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, 1, $6, $6) RETURNING ", policy_columns!()))
            .bind(&fields.name)
            .bind(fields.team_id)
            .bind(i64::from(fields.repeat))
            .bind(&levels)
            .bind(fields.low_severity_any_time)
            .bind(now)
            .fetch_one(c)
            .await)
        .map_err(|e| named(e, &fields.name))?;
        let policy = StoredPolicy::try_from(row)?;
        set_targets(&mut tx, policy.id, &policy.levels).await?;
        record(
            &mut tx,
            audit,
            now,
            Change::new(
                "escalation_policy.create",
                "escalation_policy",
                policy.id,
                format!("created escalation policy {}", policy.name),
            )
            .after(&policy),
        )
        .await?;
        tx.commit().await?;
        Ok(policy)
    }

    /// The escalation policy with this id.
    pub async fn policy(&self, id: i64) -> Result<StoredPolicy> {
        let row: PolicyRow = read!(self.db(), c => sqlx::query_as(concat!("SELECT ", policy_columns!(), " FROM escalation_policies WHERE id = $1"))
            .bind(id)
            .fetch_one(c)
            .await)?;
        row.try_into()
    }

    /// Every escalation policy, by name.
    pub async fn policies(&self) -> Result<Vec<StoredPolicy>> {
        let rows: Vec<PolicyRow> = read!(self.db(), c => sqlx::query_as(concat!("SELECT ", policy_columns!(), " FROM escalation_policies ORDER BY name, id"))
            .fetch_all(c)
            .await)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Escalation policies newest first, for the API.
    pub async fn policies_page(
        &self,
        limit: i64,
        cursor: Option<i64>,
    ) -> Result<Page<StoredPolicy>> {
        let rows: Vec<PolicyRow> = read!(self.db(), c => sqlx::query_as(concat!(
            "SELECT ", policy_columns!(), " FROM escalation_policies WHERE ($1 IS NULL OR id < $1) ORDER BY id DESC LIMIT $2"))
            .bind(cursor)
            .bind(limit + 1)
            .fetch_all(c)
            .await)?;
        let rows = rows
            .into_iter()
            .map(StoredPolicy::try_from)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(rows, limit, |p| p.id))
    }

    /// The ids of the policies that page schedule `schedule_id` at some level, in id order
    /// (a schedule still paged cannot be deleted).
    pub async fn policies_using_schedule(&self, schedule_id: i64) -> Result<Vec<i64>> {
        let rows: Vec<(i64,)> = read!(self.db(), c => sqlx::query_as(
            "SELECT DISTINCT policy_id FROM escalation_policy_targets WHERE schedule_id = $1 ORDER BY policy_id")
            .bind(schedule_id)
            .fetch_all(c)
            .await)?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// The ids of the policies that page user `user_id` directly at some level, in id order.
    pub async fn policies_using_user(&self, user_id: i64) -> Result<Vec<i64>> {
        let rows: Vec<(i64,)> = read!(self.db(), c => sqlx::query_as(
            "SELECT DISTINCT policy_id FROM escalation_policy_targets WHERE user_id = $1 ORDER BY policy_id")
            .bind(user_id)
            .fetch_all(c)
            .await)?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Replaces a policy's fields. With `expected_version`, a policy changed since that
    /// version is a conflict and nothing is saved.
    pub async fn update_policy(
        &self,
        id: i64,
        fields: &PolicyFields,
        expected_version: Option<i64>,
        audit: &Audit,
    ) -> Result<StoredPolicy> {
        let before = self.policy(id).await?;
        let now = self.now();
        let levels = encode_levels(&fields.levels)?;
        let version = expected_version.unwrap_or(before.version);
        let mut tx = self.db().begin().await?;
        let row: Option<PolicyRow> = tx!(&mut tx, c => sqlx::query_as(concat!(
            "UPDATE escalation_policies SET name = $3, team_id = $4, repeat = $5, levels = $6, low_severity_any_time = $7,
             version = version + 1, updated_at = $8
             WHERE id = $1 AND version = $2 RETURNING ", policy_columns!()))
            .bind(id)
            .bind(version)
            .bind(&fields.name)
            .bind(fields.team_id)
            .bind(i64::from(fields.repeat))
            .bind(&levels)
            .bind(fields.low_severity_any_time)
            .bind(now)
            .fetch_optional(c)
            .await)
        .map_err(|e| named(e, &fields.name))?;
        let Some(row) = row else {
            return Err(StoreError::Conflict(
                "the escalation policy was changed by someone else since you opened it; reload to see their change".into(),
            ));
        };
        let after = StoredPolicy::try_from(row)?;
        set_targets(&mut tx, id, &after.levels).await?;
        record(
            &mut tx,
            audit,
            now,
            Change::new(
                "escalation_policy.update",
                "escalation_policy",
                id,
                format!("updated escalation policy {}", after.name),
            )
            .before(&before)
            .after(&after),
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Deletes a policy. Services that used it keep existing, without a policy.
    pub async fn delete_policy(&self, id: i64, audit: &Audit) -> Result<()> {
        let before = self.policy(id).await?;
        let mut tx = self.db().begin().await?;
        tx!(&mut tx, c => sqlx::query("DELETE FROM escalation_policies WHERE id = $1").bind(id).execute(c).await.map(|r| r.rows_affected()))?;
        record(
            &mut tx,
            audit,
            self.now(),
            Change::new(
                "escalation_policy.delete",
                "escalation_policy",
                id,
                format!("deleted escalation policy {}", before.name),
            )
            .before(&before),
        )
        .await?;
        tx.commit().await
    }
}
