//! On-call load (issue 9, item 3): pages classified by the person's local time, hours on call
//! from the scheduler's final schedules, incidents commanded, and fairness per schedule.
//!
//! A page to a person is classified once, when it is sent ([`classify_sent_page`], called by
//! `finish_delivery` in the same transaction), into `notifications.interruption`: the class of
//! a counted interruption (`working`, `evening`, `sleep`), or `repeat` when the same person
//! already had a counted interruption in the 60 seconds up to it. Reading the load is then an
//! indexed `GROUP BY` over the range. [`Store::classify_pending_interruptions`] catches up on
//! pages sent before the column existed, or bulk-loaded, in one ordered pass.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use heliograph_domain::interruption::{REPEAT, REPEAT_WINDOW};
use heliograph_domain::{InterruptionClass, TimeZone, classify_interruption};

use crate::{Result, Store, Tx, read, tx};

/// Ids per `UPDATE … WHERE id IN (…)` in the catch-up pass.
const UPDATE_CHUNK: usize = 1000;
/// Updates per transaction in the catch-up pass, so other writers get a turn on SQLite.
const UPDATES_PER_TX: usize = 20;

/// The zone of a stored time-zone name; a corrupt name (never accepted on input) counts as UTC
/// rather than leaving the page unclassified forever.
fn zone_of(name: &str) -> TimeZone {
    TimeZone::parse(name).unwrap_or_else(|_| {
        tracing::warn!(
            zone = name,
            "stored time zone is invalid; classifying pages in UTC"
        );
        TimeZone::UTC
    })
}

/// Classifies a page notification that has just been marked sent at `sent_at`, inside the
/// transaction that marked it: `repeat` when the person already has a counted interruption in
/// `(sent_at − 60 s, sent_at]`, otherwise the class of `sent_at` in their own zone.
///
/// On PostgreSQL the person's row is locked first, so two deliveries of one page through two
/// contact methods, finishing at once, cannot both count; SQLite has one writer anyway.
pub(crate) async fn classify_sent_page(
    tx: &mut Tx,
    notification_id: i64,
    user_id: i64,
    sent_at: DateTime<Utc>,
) -> Result<()> {
    let zone: Option<(String,)> = match tx {
        Tx::Sqlite(t) => {
            sqlx::query_as("SELECT time_zone FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_optional(&mut **t)
                .await?
        }
        Tx::Postgres(t) => {
            sqlx::query_as("SELECT time_zone FROM users WHERE id = $1 FOR NO KEY UPDATE")
                .bind(user_id)
                .fetch_optional(&mut **t)
                .await?
        }
    };
    let Some((zone,)) = zone else { return Ok(()) };
    let earlier: Option<(i64,)> = tx!(tx, c => sqlx::query_as(
        "SELECT id FROM notifications
         WHERE user_id = $1 AND interruption IN ('working', 'evening', 'sleep')
           AND sent_at > $2 AND sent_at <= $3 AND id <> $4 LIMIT 1")
        .bind(user_id)
        .bind(sent_at - REPEAT_WINDOW)
        .bind(sent_at)
        .bind(notification_id)
        .fetch_optional(c)
        .await)?;
    let class = match earlier {
        Some(_) => REPEAT,
        None => classify_interruption(sent_at, zone_of(&zone).tz()).as_str(),
    };
    tx!(tx, c => sqlx::query("UPDATE notifications SET interruption = $2 WHERE id = $1")
        .bind(notification_id)
        .bind(class)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// The stored class as a small code, so the catch-up pass reads compact rows.
const CODES: [&str; 4] = ["working", "evening", "sleep", REPEAT];

fn code_of(class: InterruptionClass) -> i64 {
    match class {
        InterruptionClass::Working => 0,
        InterruptionClass::Evening => 1,
        InterruptionClass::Sleep => 2,
    }
}

const REPEAT_CODE: i64 = 3;

/// What the catch-up pass decides for one person's pages, given in (sent_at, id) order with
/// their stored codes (`None` for unclassified): the new code of each page whose code changes.
/// A page counts unless a counted page lies in the 60 seconds up to it; a counted page keeps a
/// class it already has (its person's zone may have changed since it was sent).
fn decide(pages: &[(i64, DateTime<Utc>, Option<i64>)], zone: TimeZone, out: &mut Vec<(i64, i64)>) {
    let mut last_counted: Option<DateTime<Utc>> = None;
    for &(id, sent_at, stored) in pages {
        let repeat = last_counted.is_some_and(|t| sent_at - t < REPEAT_WINDOW);
        let code = if repeat {
            REPEAT_CODE
        } else {
            last_counted = Some(sent_at);
            match stored {
                Some(c) if c != REPEAT_CODE => c,
                _ => code_of(classify_interruption(sent_at, zone.tz())),
            }
        };
        if stored != Some(code) {
            out.push((id, code));
        }
    }
}

impl Store {
    /// Classifies every sent page to a person that is not classified yet (pages sent before
    /// this feature, or bulk-loaded), in one pass ordered by (user_id, sent_at, id), and
    /// returns how many notifications changed. The pages of each person concerned are read
    /// whole, so the 60-second rule also sees pages classified earlier; updates go in chunks.
    pub async fn classify_pending_interruptions(&self) -> Result<u64> {
        #[derive(sqlx::FromRow)]
        struct Row {
            id: i64,
            user_id: i64,
            sent_at: DateTime<Utc>,
            code: Option<i64>,
            time_zone: String,
        }
        let rows: Vec<Row> = read!(self.db(), c => sqlx::query_as(
            "SELECT n.id, n.user_id, n.sent_at,
                    CASE n.interruption WHEN 'working' THEN 0 WHEN 'evening' THEN 1 WHEN 'sleep' THEN 2 WHEN 'repeat' THEN 3 END AS code,
                    u.time_zone
             FROM notifications n JOIN users u ON u.id = n.user_id
             WHERE n.purpose = 'page' AND n.state = 'sent' AND n.sent_at IS NOT NULL
               AND n.user_id IN (SELECT p.user_id FROM notifications p
                                 WHERE p.purpose = 'page' AND p.state = 'sent' AND p.user_id IS NOT NULL AND p.interruption IS NULL)
             ORDER BY n.user_id, n.sent_at, n.id")
            .fetch_all(c)
            .await)?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut changes: Vec<(i64, i64)> = Vec::new();
        let mut zones: HashMap<&str, TimeZone> = HashMap::new();
        let mut pages = Vec::new();
        let mut start = 0;
        while start < rows.len() {
            let user = rows[start].user_id;
            let end = rows[start..]
                .iter()
                .position(|r| r.user_id != user)
                .map_or(rows.len(), |n| start + n);
            let zone = *zones
                .entry(rows[start].time_zone.as_str())
                .or_insert_with(|| zone_of(&rows[start].time_zone));
            pages.clear();
            pages.extend(rows[start..end].iter().map(|r| (r.id, r.sent_at, r.code)));
            decide(&pages, zone, &mut changes);
            start = end;
        }
        drop(rows);
        let changed = changes.len() as u64;
        // Group by new code, then update in chunks of ids.
        changes.sort_unstable_by_key(|&(id, code)| (code, id));
        let mut statements: Vec<(i64, &[(i64, i64)])> = Vec::new();
        for code in 0..CODES.len() as i64 {
            let lo = changes.partition_point(|&(_, c)| c < code);
            let hi = changes.partition_point(|&(_, c)| c <= code);
            for chunk in changes[lo..hi].chunks(UPDATE_CHUNK) {
                statements.push((code, chunk));
            }
        }
        for batch in statements.chunks(UPDATES_PER_TX) {
            let mut tx = self.db().begin().await?;
            for &(code, ids) in batch {
                let class = CODES[code as usize];
                tx!(&mut tx, c => {
                    let mut qb = sqlx::QueryBuilder::new("UPDATE notifications SET interruption = ");
                    qb.push_bind(class).push(" WHERE id IN (");
                    let mut list = qb.separated(", ");
                    for &(id, _) in ids {
                        list.push_bind(id);
                    }
                    qb.push(")");
                    qb.build().execute(c).await.map(|r| r.rows_affected())
                })?;
            }
            tx.commit().await?;
        }
        if changed > 0 {
            tracing::info!(changed, "classified pages as interruptions");
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn sixty_second_rule_counts_from_the_last_counted_page() {
        // t, t+30 s, t+70 s, t+100 s, t+125 s: t counts; t+30 repeats; t+70 counts (70 s after
        // the last counted); t+100 repeats (30 s after t+70); t+125 repeats (55 s after t+70).
        let pages = vec![
            (1, t("2026-11-30T10:00:00Z"), None),
            (2, t("2026-11-30T10:00:30Z"), None),
            (3, t("2026-11-30T10:01:10Z"), None),
            (4, t("2026-11-30T10:01:40Z"), None),
            (5, t("2026-11-30T10:02:05Z"), None),
            (6, t("2026-11-30T10:02:10Z"), None),
        ];
        let mut out = Vec::new();
        decide(&pages, TimeZone::UTC, &mut out);
        // t+130 s (id 6) is exactly 60 s after t+70: outside (t − 60 s, t], so it counts.
        assert_eq!(out, vec![(1, 0), (2, 3), (3, 0), (4, 3), (5, 3), (6, 0)]);
    }

    #[test]
    fn stored_classes_are_kept_and_only_changes_reported() {
        let pages = vec![
            // Already counted as sleep (zone since changed): kept.
            (1, t("2026-11-30T10:00:00Z"), Some(2)),
            // Unclassified, 20 s later: a repeat.
            (2, t("2026-11-30T10:00:20Z"), None),
            // Stored as repeat but nothing counted within 60 s: now counts (evening at 19:00).
            (3, t("2026-11-30T19:00:00Z"), Some(3)),
        ];
        let mut out = Vec::new();
        decide(&pages, TimeZone::UTC, &mut out);
        assert_eq!(out, vec![(2, 3), (3, 1)]);
    }
}
