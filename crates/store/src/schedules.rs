//! On-call schedules, overrides, calendar feeds and the notices overrides cause.
//!
//! A schedule's layers are stored as one JSON document in CONTRACT.md's shape and replaced
//! whole: callers validate the complete schedule (with the scheduler crate) before saving, and
//! a version number turns a concurrent edit into a [`StoreError::Conflict`] instead of a lost
//! update. `schedule_participants` mirrors the people named in the layers.

use std::collections::BTreeSet;

use chrono::{DateTime, TimeDelta, Utc};
use heliograph_domain::TimeZone;
use heliograph_scheduler::Layer;
use serde::Serialize;

use crate::audit::{Change, record};
use crate::{Audit, Page, Result, Store, StoreError, Tx, read, tx};

/// A stored schedule with its layers (lowest first).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredSchedule {
    pub id: i64,
    pub name: String,
    pub time_zone: TimeZone,
    pub team_id: i64,
    pub layers: Vec<Layer>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl StoredSchedule {
    /// Everyone named in any layer, without repeats.
    pub fn participants(&self) -> BTreeSet<i64> {
        participants_of(&self.layers)
    }
}

/// The editable fields of a schedule, already validated (layers by the scheduler crate,
/// participants against the team).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScheduleFields {
    pub name: String,
    pub time_zone: TimeZone,
    pub team_id: i64,
    pub layers: Vec<Layer>,
}

#[derive(sqlx::FromRow)]
struct ScheduleRow {
    id: i64,
    name: String,
    time_zone: String,
    team_id: i64,
    layers: String,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<ScheduleRow> for StoredSchedule {
    type Error = StoreError;

    fn try_from(row: ScheduleRow) -> Result<Self> {
        let time_zone = TimeZone::parse(&row.time_zone)
            .map_err(|e| StoreError::Corrupt(format!("schedule {}: {e}", row.id)))?;
        let layers = serde_json::from_str(&row.layers)
            .map_err(|e| StoreError::Corrupt(format!("schedule {} layers: {e}", row.id)))?;
        Ok(StoredSchedule {
            id: row.id,
            name: row.name,
            time_zone,
            team_id: row.team_id,
            layers,
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

macro_rules! schedule_columns {
    () => {
        "id, name, time_zone, team_id, layers, version, created_at, updated_at"
    };
}

macro_rules! override_columns {
    () => {
        "id, schedule_id, user_id, start_at, end_at, created_by, created_at"
    };
}

/// A person covering part of a schedule over `[start_at, end_at)`, on top of every layer.
/// Later overrides (higher id) win where overrides overlap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct StoredOverride {
    pub id: i64,
    pub schedule_id: i64,
    pub user_id: i64,
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
    pub created_by: Option<i64>,
    pub created_at: DateTime<Utc>,
}

impl StoredOverride {
    /// The scheduler's view of this override; the id doubles as the creation order.
    pub fn to_override(&self) -> heliograph_scheduler::Override {
        heliograph_scheduler::Override {
            id: self.id,
            participant: self.user_id,
            start: self.start_at,
            end: self.end_at,
            created_seq: self.id,
        }
    }
}

/// Someone an override moves on or off call, over `[start, end)`, to be told by the engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewNotice {
    pub user_id: i64,
    pub on_call: bool,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub reason: String,
}

/// A recorded notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Notice {
    pub id: i64,
    pub schedule_id: i64,
    pub user_id: i64,
    pub kind: String,
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
    pub reason: String,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// A secret calendar feed: a person's own shifts (`schedule_id` none) or a whole schedule's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct CalendarFeed {
    pub id: i64,
    pub user_id: i64,
    pub schedule_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

fn participants_of(layers: &[Layer]) -> BTreeSet<i64> {
    layers
        .iter()
        .flat_map(|l| l.rotation.participants.iter().copied())
        .collect()
}

fn encode_layers(layers: &[Layer]) -> Result<String> {
    serde_json::to_string(layers).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn named(err: sqlx::Error, name: &str) -> StoreError {
    match StoreError::from(err) {
        StoreError::Conflict(m) if m.contains("name") || m.contains("UNIQUE") => {
            StoreError::Conflict(format!("a schedule named {name} already exists"))
        }
        StoreError::Conflict(_) => {
            StoreError::Conflict("the team or a participant does not exist".into())
        }
        other => other,
    }
}

async fn set_participants(tx: &mut Tx, schedule_id: i64, layers: &[Layer]) -> Result<()> {
    tx!(tx, c => sqlx::query("DELETE FROM schedule_participants WHERE schedule_id = $1")
        .bind(schedule_id)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    for user_id in participants_of(layers) {
        tx!(tx, c => sqlx::query("INSERT INTO schedule_participants (schedule_id, user_id) VALUES ($1, $2)")
            .bind(schedule_id)
            .bind(user_id)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!("participant {user_id} does not exist")),
            other => other,
        })?;
    }
    Ok(())
}

async fn insert_notices(
    tx: &mut Tx,
    schedule_id: i64,
    notices: &[NewNotice],
    now: DateTime<Utc>,
) -> Result<()> {
    if !notices.is_empty() {
        // The engine's handoff scan tells these people; run it now rather than at its next
        // period.
        crate::jobs::enqueue(
            tx,
            &crate::jobs::NewJob {
                kind: "handoff_scan",
                payload: serde_json::json!({}),
                run_at: now,
                dedup_key: None,
            },
            now,
        )
        .await?;
    }
    for n in notices {
        tx!(tx, c => sqlx::query(
            "INSERT INTO schedule_notices (schedule_id, user_id, kind, start_at, end_at, reason, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(schedule_id)
            .bind(n.user_id)
            .bind(if n.on_call { "on_call" } else { "off_call" })
            .bind(n.start)
            .bind(n.end)
            .bind(&n.reason)
            .bind(now)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
    }
    Ok(())
}

impl Store {
    /// Creates a schedule.
    pub async fn create_schedule(
        &self,
        fields: &ScheduleFields,
        audit: &Audit,
    ) -> Result<StoredSchedule> {
        let now = self.now();
        let layers = encode_layers(&fields.layers)?;
        let mut tx = self.db().begin().await?;
        let row: ScheduleRow = tx!(&mut tx, c => sqlx::query_as(concat!(
            "INSERT INTO schedules (name, time_zone, team_id, layers, version, created_at, updated_at)
             VALUES ($1, $2, $3, $4, 1, $5, $5) RETURNING ", schedule_columns!()))
            .bind(&fields.name)
            .bind(fields.time_zone.name())
            .bind(fields.team_id)
            .bind(&layers)
            .bind(now)
            .fetch_one(c)
            .await)
        .map_err(|e| named(e, &fields.name))?;
        let schedule = StoredSchedule::try_from(row)?;
        set_participants(&mut tx, schedule.id, &schedule.layers).await?;
        record(
            &mut tx,
            audit,
            now,
            Change::new(
                "schedule.create",
                "schedule",
                schedule.id,
                format!("created schedule {}", schedule.name),
            )
            .after(&schedule),
        )
        .await?;
        tx.commit().await?;
        Ok(schedule)
    }

    /// The schedule with this id.
    pub async fn schedule(&self, id: i64) -> Result<StoredSchedule> {
        let row: ScheduleRow = read!(self.db(), c => sqlx::query_as(concat!("SELECT ", schedule_columns!(), " FROM schedules WHERE id = $1"))
            .bind(id)
            .fetch_one(c)
            .await)?;
        row.try_into()
    }

    /// A schedule with the overrides that overlap `[from, to)` (by id), in one read, for
    /// resolving who is on call; `None` when the schedule does not exist.
    pub async fn schedule_with_overrides(
        &self,
        id: i64,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Option<(StoredSchedule, Vec<heliograph_scheduler::Override>)>> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            schedule: ScheduleRow,
            override_id: Option<i64>,
            override_user: Option<i64>,
            override_start: Option<DateTime<Utc>>,
            override_end: Option<DateTime<Utc>>,
        }
        let rows: Vec<Row> = read!(self.db(), c => sqlx::query_as(
            "SELECT s.id, s.name, s.time_zone, s.team_id, s.layers, s.version, s.created_at, s.updated_at,
                    o.id AS override_id, o.user_id AS override_user, o.start_at AS override_start, o.end_at AS override_end
             FROM schedules s
             LEFT JOIN schedule_overrides o ON o.schedule_id = s.id AND o.end_at > $2 AND o.start_at < $3
             WHERE s.id = $1 ORDER BY o.id")
            .bind(id)
            .bind(from)
            .bind(to)
            .fetch_all(c)
            .await)?;
        let mut overrides = Vec::with_capacity(rows.len());
        let mut schedule = None;
        for row in rows {
            if let (Some(id), Some(participant), Some(start), Some(end)) = (
                row.override_id,
                row.override_user,
                row.override_start,
                row.override_end,
            ) {
                overrides.push(heliograph_scheduler::Override {
                    id,
                    participant,
                    start,
                    end,
                    created_seq: id,
                });
            }
            if schedule.is_none() {
                schedule = Some(StoredSchedule::try_from(row.schedule)?);
            }
        }
        Ok(schedule.map(|s| (s, overrides)))
    }

    /// Every schedule, by name.
    pub async fn schedules(&self) -> Result<Vec<StoredSchedule>> {
        let rows: Vec<ScheduleRow> = read!(self.db(), c => sqlx::query_as(concat!("SELECT ", schedule_columns!(), " FROM schedules ORDER BY name, id"))
            .fetch_all(c)
            .await)?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// Schedules newest first, for the API.
    pub async fn schedules_page(
        &self,
        limit: i64,
        cursor: Option<i64>,
    ) -> Result<Page<StoredSchedule>> {
        let rows: Vec<ScheduleRow> = read!(self.db(), c => sqlx::query_as(concat!(
            "SELECT ", schedule_columns!(), " FROM schedules WHERE ($1 IS NULL OR id < $1) ORDER BY id DESC LIMIT $2"))
            .bind(cursor)
            .bind(limit + 1)
            .fetch_all(c)
            .await)?;
        let rows = rows
            .into_iter()
            .map(StoredSchedule::try_from)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(rows, limit, |s| s.id))
    }

    /// The ids of schedules in which `user_id` takes part in a layer or has an override
    /// ending after `since`.
    pub async fn schedule_ids_of(&self, user_id: i64, since: DateTime<Utc>) -> Result<Vec<i64>> {
        let rows: Vec<(i64,)> = read!(self.db(), c => sqlx::query_as(
            "SELECT schedule_id FROM schedule_participants WHERE user_id = $1
             UNION SELECT schedule_id FROM schedule_overrides WHERE user_id = $1 AND end_at > $2
             ORDER BY 1")
            .bind(user_id)
            .bind(since)
            .fetch_all(c)
            .await)?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Replaces a schedule's fields. With `expected_version`, a schedule changed since that
    /// version is a conflict and nothing is saved.
    pub async fn update_schedule(
        &self,
        id: i64,
        fields: &ScheduleFields,
        expected_version: Option<i64>,
        audit: &Audit,
    ) -> Result<StoredSchedule> {
        let before = self.schedule(id).await?;
        let now = self.now();
        let layers = encode_layers(&fields.layers)?;
        let version = expected_version.unwrap_or(before.version);
        let mut tx = self.db().begin().await?;
        let row: Option<ScheduleRow> = tx!(&mut tx, c => sqlx::query_as(concat!(
            "UPDATE schedules SET name = $3, time_zone = $4, team_id = $5, layers = $6, version = version + 1, updated_at = $7
             WHERE id = $1 AND version = $2 RETURNING ", schedule_columns!()))
            .bind(id)
            .bind(version)
            .bind(&fields.name)
            .bind(fields.time_zone.name())
            .bind(fields.team_id)
            .bind(&layers)
            .bind(now)
            .fetch_optional(c)
            .await)
        .map_err(|e| named(e, &fields.name))?;
        let Some(row) = row else {
            return Err(StoreError::Conflict(
                "the schedule was changed by someone else since you opened it; reload to see their change".into(),
            ));
        };
        let after = StoredSchedule::try_from(row)?;
        set_participants(&mut tx, id, &after.layers).await?;
        record(
            &mut tx,
            audit,
            now,
            Change::new(
                "schedule.update",
                "schedule",
                id,
                format!("updated schedule {}", after.name),
            )
            .before(&before)
            .after(&after),
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Deletes a schedule with its overrides and feeds.
    pub async fn delete_schedule(&self, id: i64, audit: &Audit) -> Result<()> {
        let before = self.schedule(id).await?;
        let used: Vec<(String,)> = read!(self.db(), c => sqlx::query_as(
            "SELECT DISTINCT p.name FROM escalation_policy_targets t JOIN escalation_policies p ON p.id = t.policy_id
             WHERE t.schedule_id = $1 ORDER BY p.name")
            .bind(id)
            .fetch_all(c)
            .await)?;
        if !used.is_empty() {
            let names: Vec<String> = used.into_iter().map(|r| r.0).collect();
            return Err(StoreError::Conflict(format!(
                "escalation policy {} pages this schedule; take it out of the policy first",
                names.join(", ")
            )));
        }
        let mut tx = self.db().begin().await?;
        tx!(&mut tx, c => sqlx::query("DELETE FROM schedules WHERE id = $1").bind(id).execute(c).await.map(|r| r.rows_affected()))?;
        record(
            &mut tx,
            audit,
            self.now(),
            Change::new(
                "schedule.delete",
                "schedule",
                id,
                format!("deleted schedule {}", before.name),
            )
            .before(&before),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Creates an override and records the notices it causes, in one transaction.
    pub async fn create_override(
        &self,
        schedule_id: i64,
        user_id: i64,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        notices: &[NewNotice],
        audit: &Audit,
    ) -> Result<StoredOverride> {
        if end <= start {
            return Err(StoreError::Conflict(
                "the end must be after the start".into(),
            ));
        }
        let schedule = self.schedule(schedule_id).await?;
        let now = self.now();
        let mut tx = self.db().begin().await?;
        let created: StoredOverride = tx!(&mut tx, c => sqlx::query_as(concat!(
            "INSERT INTO schedule_overrides (schedule_id, user_id, start_at, end_at, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING ", override_columns!()))
            .bind(schedule_id)
            .bind(user_id)
            .bind(start)
            .bind(end)
            .bind(audit.actor_user_id)
            .bind(now)
            .fetch_one(c)
            .await)?;
        insert_notices(&mut tx, schedule_id, notices, now).await?;
        record(
            &mut tx,
            audit,
            now,
            Change::new(
                "override.create",
                "schedule",
                schedule_id,
                format!(
                    "added override {} on {} for user {user_id}, {} to {}",
                    created.id,
                    schedule.name,
                    start.to_rfc3339(),
                    end.to_rfc3339()
                ),
            )
            .after(&created),
        )
        .await?;
        tx.commit().await?;
        Ok(created)
    }

    /// The override `override_id` of schedule `schedule_id`.
    pub async fn schedule_override(
        &self,
        schedule_id: i64,
        override_id: i64,
    ) -> Result<StoredOverride> {
        read!(self.db(), c => sqlx::query_as(concat!("SELECT ", override_columns!(), " FROM schedule_overrides WHERE id = $1 AND schedule_id = $2"))
            .bind(override_id)
            .bind(schedule_id)
            .fetch_one(c)
            .await)
        .map_err(Into::into)
    }

    /// Deletes an override and records the notices it causes.
    pub async fn delete_override(
        &self,
        schedule_id: i64,
        override_id: i64,
        notices: &[NewNotice],
        audit: &Audit,
    ) -> Result<StoredOverride> {
        let before = self.schedule_override(schedule_id, override_id).await?;
        let now = self.now();
        let mut tx = self.db().begin().await?;
        let gone = tx!(&mut tx, c => sqlx::query("DELETE FROM schedule_overrides WHERE id = $1 AND schedule_id = $2")
            .bind(override_id)
            .bind(schedule_id)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        if gone == 0 {
            return Err(StoreError::NotFound);
        }
        insert_notices(&mut tx, schedule_id, notices, now).await?;
        record(
            &mut tx,
            audit,
            now,
            Change::new(
                "override.delete",
                "schedule",
                schedule_id,
                format!("removed override {override_id} for user {}", before.user_id),
            )
            .before(&before),
        )
        .await?;
        tx.commit().await?;
        Ok(before)
    }

    /// A schedule's overrides overlapping `[from, to)`, oldest first.
    pub async fn overrides_between(
        &self,
        schedule_id: i64,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<StoredOverride>> {
        read!(self.db(), c => sqlx::query_as(concat!(
            "SELECT ", override_columns!(), " FROM schedule_overrides
             WHERE schedule_id = $1 AND end_at > $2 AND start_at < $3 ORDER BY id"))
            .bind(schedule_id)
            .bind(from)
            .bind(to)
            .fetch_all(c)
            .await)
        .map_err(Into::into)
    }

    /// Notices recorded for a schedule, newest first (at most `limit`).
    pub async fn schedule_notices(&self, schedule_id: i64, limit: i64) -> Result<Vec<Notice>> {
        read!(self.db(), c => sqlx::query_as(
            "SELECT id, schedule_id, user_id, kind, start_at, end_at, reason, created_at, sent_at
             FROM schedule_notices WHERE schedule_id = $1 ORDER BY id DESC LIMIT $2")
            .bind(schedule_id)
            .bind(limit)
            .fetch_all(c)
            .await)
        .map_err(Into::into)
    }

    /// Creates a calendar feed for `user_id` (of one schedule, or of their own shifts),
    /// revoking any earlier live feed of the same kind: regenerating a feed's URL.
    pub async fn create_calendar_feed(
        &self,
        user_id: i64,
        schedule_id: Option<i64>,
        secret_hash: &str,
        audit: &Audit,
    ) -> Result<CalendarFeed> {
        let now = self.now();
        let mut tx = self.db().begin().await?;
        tx!(&mut tx, c => sqlx::query(
            "UPDATE calendar_feeds SET revoked_at = $3
             WHERE user_id = $1 AND revoked_at IS NULL
               AND (schedule_id = $2 OR (schedule_id IS NULL AND $2 IS NULL))")
            .bind(user_id)
            .bind(schedule_id)
            .bind(now)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        let feed: CalendarFeed = tx!(&mut tx, c => sqlx::query_as(
            "INSERT INTO calendar_feeds (secret_hash, user_id, schedule_id, created_at)
             VALUES ($1, $2, $3, $4)
             RETURNING id, user_id, schedule_id, created_at, last_used_at, revoked_at")
            .bind(secret_hash)
            .bind(user_id)
            .bind(schedule_id)
            .bind(now)
            .fetch_one(c)
            .await)?;
        record(
            &mut tx,
            audit,
            now,
            Change::new(
                "calendar_feed.create",
                "calendar_feed",
                feed.id,
                match schedule_id {
                    Some(s) => {
                        format!("created a calendar feed of schedule {s} for user {user_id}")
                    }
                    None => format!("created a personal calendar feed for user {user_id}"),
                },
            )
            .after(&feed),
        )
        .await?;
        tx.commit().await?;
        Ok(feed)
    }

    /// A person's live calendar feeds.
    pub async fn calendar_feeds_of(&self, user_id: i64) -> Result<Vec<CalendarFeed>> {
        read!(self.db(), c => sqlx::query_as(
            "SELECT id, user_id, schedule_id, created_at, last_used_at, revoked_at
             FROM calendar_feeds WHERE user_id = $1 AND revoked_at IS NULL ORDER BY id")
            .bind(user_id)
            .fetch_all(c)
            .await)
        .map_err(Into::into)
    }

    /// Revokes feed `id` of `user_id`; its URL stops working at once.
    pub async fn revoke_calendar_feed(&self, user_id: i64, id: i64, audit: &Audit) -> Result<()> {
        let now = self.now();
        let mut tx = self.db().begin().await?;
        let n = tx!(&mut tx, c => sqlx::query(
            "UPDATE calendar_feeds SET revoked_at = $3 WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL")
            .bind(id)
            .bind(user_id)
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
                "calendar_feed.revoke",
                "calendar_feed",
                id,
                format!("revoked calendar feed {id} of user {user_id}"),
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The live feed with this secret hash whose owner is enabled. Records its use at most
    /// once an hour (calendar apps poll often).
    pub async fn calendar_feed_by_secret(&self, secret_hash: &str) -> Result<Option<CalendarFeed>> {
        let feed: Option<CalendarFeed> = read!(self.db(), c => sqlx::query_as(
            "SELECT f.id, f.user_id, f.schedule_id, f.created_at, f.last_used_at, f.revoked_at
             FROM calendar_feeds f JOIN users u ON u.id = f.user_id
             WHERE f.secret_hash = $1 AND f.revoked_at IS NULL AND NOT u.disabled")
            .bind(secret_hash)
            .fetch_optional(c)
            .await)?;
        let Some(mut feed) = feed else {
            return Ok(None);
        };
        let now = self.now();
        if feed
            .last_used_at
            .is_none_or(|t| now - t > TimeDelta::hours(1))
        {
            let mut tx = self.db().begin().await?;
            tx!(&mut tx, c => sqlx::query("UPDATE calendar_feeds SET last_used_at = $2 WHERE id = $1")
                .bind(feed.id)
                .bind(now)
                .execute(c)
                .await
                .map(|r| r.rows_affected()))?;
            tx.commit().await?;
            feed.last_used_at = Some(now);
        }
        Ok(Some(feed))
    }
}
