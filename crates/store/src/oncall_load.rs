//! On-call load (issue 9, item 3): pages classified by the person's local time, hours on call
//! from the scheduler's final schedules, incidents commanded, and fairness per schedule.
//!
//! A page to a person is classified once it is sent, into `notifications.interruption`: the
//! class of a counted interruption (`working`, `evening`, `sleep`), or `repeat` when the same
//! person already had a counted interruption in the 60 seconds up to it. The store's
//! [`Classifier`] does it a moment after the delivery is recorded, for a whole burst at once,
//! with the ordered pass [`Store::classify_pending_interruptions`], which also classifies pages
//! sent before the column existed, or bulk-loaded. Reading the load runs that pass first and
//! is then an indexed `GROUP BY` over the range.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, TimeDelta, Utc};
use heliograph_domain::interruption::{REPEAT, REPEAT_WINDOW};
use heliograph_domain::{InterruptionClass, TimeZone, classify_interruption};

use heliograph_scheduler::Schedule;
use serde::Serialize;

use crate::insights::Scope;
use crate::schedules::{StoredOverride, StoredSchedule};
use crate::{Result, Store, StoreError, Tx, read, tx};

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

/// Classifies sent pages off the delivery path, a moment after a burst.
///
/// A page's class is derived data for the on-call load reports, and a page to the person on
/// call is the one write a storm cannot wait for. Classifying each page as its delivery was
/// recorded cost PostgreSQL as much as recording the delivery itself (a second, non-HOT update
/// of the same row, in a transaction that locked the person's row so that two deliveries of
/// one page could not both count), and SQLite a read in its one writer's transaction per
/// page. So a recorded delivery only pokes this task, and the task
/// runs [`Store::classify_pending_interruptions`] once the pokes pause for
/// [`Classifier::QUIET`], or [`Classifier::MOST_WAIT`] after the first one in a steady
/// stream: one read and a few updates for a whole storm.
///
/// Nothing is lost by waiting: an unclassified page is pending in the database (the
/// `notifications_unclassified` index), so a crash only postpones it to the next pass (every
/// engine start runs one), and every reading of the on-call load runs one first, so a report
/// never counts a page as not sent. Passes are serialized per process by a mutex and across
/// replicas by a transaction-level advisory lock.
#[derive(Clone, Default)]
pub(crate) struct Classifier {
    /// The task's queue (one pending poke is enough).
    queue: std::sync::Arc<std::sync::OnceLock<tokio::sync::mpsc::Sender<()>>>,
    /// Held while a catch-up pass runs in this process.
    running: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl Classifier {
    /// How long the pokes must pause before the task classifies.
    const QUIET: std::time::Duration = std::time::Duration::from_millis(250);
    /// The longest a poke waits for its pass while the pokes keep coming.
    const MOST_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

    /// Says a page was recorded as sent; it is classified shortly (see [`Classifier`]).
    pub(crate) fn poke(&self, store: &Store) {
        let queue = self.queue.get_or_init(|| {
            // The task's store must not hold this queue, or the task would keep itself alive:
            // it gets a classifier of its own that shares only the mutex.
            let store = Store {
                classifier: Classifier {
                    queue: Default::default(),
                    running: self.running.clone(),
                },
                ..store.clone()
            };
            Self::start(store)
        });
        // Full: a poke is already waiting, which covers this page too.
        let _ = queue.try_send(());
    }

    /// Starts the task; it ends when the last handle to the queue is dropped.
    fn start(store: Store) -> tokio::sync::mpsc::Sender<()> {
        let (queue, mut pokes) = tokio::sync::mpsc::channel::<()>(1);
        tokio::spawn(async move {
            while pokes.recv().await.is_some() {
                let deadline = tokio::time::Instant::now() + Self::MOST_WAIT;
                let mut open = true;
                loop {
                    let wait = (tokio::time::Instant::now() + Self::QUIET).min(deadline);
                    tokio::select! {
                        poke = pokes.recv() => match poke {
                            Some(()) if tokio::time::Instant::now() < deadline => continue,
                            Some(()) => break,
                            None => { open = false; break; }
                        },
                        _ = tokio::time::sleep_until(wait) => break,
                    }
                }
                if let Err(e) = store.classify_pending_interruptions().await {
                    tracing::warn!(error = %e, "classifying sent pages failed; the next pass retries");
                }
                if !open {
                    break;
                }
            }
        });
        queue
    }
}

/// The advisory lock that serializes catch-up passes across replicas (PostgreSQL).
const CLASSIFY_LOCK: i64 = 0x4865_6c69_6f43_6c61; // "HelioCla"

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
/// class it already has (its person's zone may have changed since it was sent). Pages before
/// the first unclassified one keep their classes and only say when the last counted page was.
fn decide(pages: &[(i64, DateTime<Utc>, Option<i64>)], zone: TimeZone, out: &mut Vec<(i64, i64)>) {
    let first_pending = pages
        .iter()
        .position(|p| p.2.is_none())
        .unwrap_or(pages.len());
    let (settled, open) = pages.split_at(first_pending);
    let mut last_counted: Option<DateTime<Utc>> = settled
        .iter()
        .rev()
        .find(|p| p.2.is_some_and(|c| c != REPEAT_CODE))
        .map(|p| p.1);
    for &(id, sent_at, stored) in open {
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
    /// Classifies every sent page to a person that is not classified yet, and returns how
    /// many notifications changed. Pages are read from 60 seconds before the earliest pending
    /// one on, ordered by (user_id, sent_at, id), for the people who have a pending page:
    /// pages before a person's first pending page only say when their last counted page was
    /// (their classes stay), and from it on each page is decided again, so a page sent a
    /// moment before one already counted makes that one the repeat. Updates go in chunks.
    ///
    /// This is how sent pages are classified (see [`Classifier`]), including pages sent
    /// before the column existed, or bulk-loaded. One pass at a time: a mutex in the process
    /// and, on PostgreSQL, an advisory lock held by the pass's first transaction, which reads
    /// and decides under it. Its commit does not wait for the disk: the class is derived, and
    /// a page whose class a crash lost is pending again for the next pass.
    pub async fn classify_pending_interruptions(&self) -> Result<u64> {
        #[derive(sqlx::FromRow)]
        struct Row {
            id: i64,
            user_id: i64,
            sent_at: DateTime<Utc>,
            code: Option<i64>,
            time_zone: String,
        }
        const FIRST_PENDING: &str = "SELECT sent_at FROM notifications
             WHERE purpose = 'page' AND state = 'sent' AND user_id IS NOT NULL AND interruption IS NULL
               AND sent_at IS NOT NULL
             ORDER BY sent_at LIMIT 1";
        // Usually nothing is pending (every on-call load read asks): answer that from a read,
        // without taking SQLite's writer or PostgreSQL's lock.
        let pending: Option<(DateTime<Utc>,)> = read!(self.db(), c => sqlx::query_as(FIRST_PENDING)
            .fetch_optional(c)
            .await)?;
        if pending.is_none() {
            return Ok(0);
        }
        let _one = self.classifier.running.lock().await;
        let mut tx = self.db().begin().await?;
        if let Tx::Postgres(t) = &mut tx {
            sqlx::query(
                "SELECT set_config('synchronous_commit', 'off', true), pg_advisory_xact_lock($1)",
            )
            .bind(CLASSIFY_LOCK)
            .execute(&mut **t)
            .await?;
        }
        // Again under the lock: another pass may have classified them meanwhile.
        let first: Option<(DateTime<Utc>,)> = tx!(&mut tx, c => sqlx::query_as(FIRST_PENDING)
            .fetch_optional(c)
            .await)?;
        let Some((first,)) = first else {
            return Ok(0);
        };
        // Pending pages, and the classified pages of their people since 60 s before the
        // earliest (over `notifications_user_interruptions`).
        let rows: Vec<Row> = tx!(&mut tx, c => sqlx::query_as(
            "SELECT n.id, n.user_id, n.sent_at, NULL AS code, u.time_zone
             FROM notifications n JOIN users u ON u.id = n.user_id
             WHERE n.purpose = 'page' AND n.state = 'sent' AND n.user_id IS NOT NULL AND n.interruption IS NULL
               AND n.sent_at IS NOT NULL
             UNION ALL
             SELECT n.id, n.user_id, n.sent_at,
                    CAST(CASE n.interruption WHEN 'working' THEN 0 WHEN 'evening' THEN 1 WHEN 'sleep' THEN 2 ELSE 3 END AS BIGINT) AS code,
                    u.time_zone
             FROM notifications n JOIN users u ON u.id = n.user_id
             WHERE n.user_id IN (SELECT p.user_id FROM notifications p
                                 WHERE p.purpose = 'page' AND p.state = 'sent' AND p.user_id IS NOT NULL AND p.interruption IS NULL)
               AND n.interruption IN ('working', 'evening', 'sleep', 'repeat')
               AND n.sent_at > $1 AND n.purpose = 'page' AND n.state = 'sent'
             ORDER BY 2, 3, 1")
            .bind(first - REPEAT_WINDOW)
            .fetch_all(c)
            .await)?;
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
        // Group by new code, then update in chunks of ids: the first group of statements in
        // the transaction that decided them.
        changes.sort_unstable_by_key(|&(id, code)| (code, id));
        let mut statements: Vec<(i64, &[(i64, i64)])> = Vec::new();
        for code in 0..CODES.len() as i64 {
            let lo = changes.partition_point(|&(_, c)| c < code);
            let hi = changes.partition_point(|&(_, c)| c <= code);
            for chunk in changes[lo..hi].chunks(UPDATE_CHUNK) {
                statements.push((code, chunk));
            }
        }
        let mut tx = Some(tx);
        for batch in statements.chunks(UPDATES_PER_TX) {
            let mut t = match tx.take() {
                Some(t) => t,
                None => self.db().begin().await?,
            };
            for &(code, ids) in batch {
                let class = CODES[code as usize];
                tx!(&mut t, c => {
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
            t.commit().await?;
        }
        if changed > 0 {
            tracing::debug!(changed, "classified pages as interruptions");
        }
        Ok(changed)
    }
}

// ---------------------------------------------------------------- reading

/// A stretch of time `[start, end)`.
type Span = (DateTime<Utc>, DateTime<Utc>);

/// Counted interruptions by class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ClassCounts {
    pub working: i64,
    pub evening: i64,
    pub sleep: i64,
}

impl ClassCounts {
    /// All counted interruptions.
    pub fn total(&self) -> i64 {
        self.working + self.evening + self.sleep
    }
}

/// One person's on-call load over a scope.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PersonLoad {
    pub user_id: i64,
    pub name: String,
    /// The person's zone (their pages are classified in it).
    pub time_zone: String,
    /// Seconds on call in any of the scope's schedules (overlapping schedules counted once).
    pub on_call_seconds: i64,
    pub pages: ClassCounts,
    /// Incidents triggered in the range with this person as commander.
    pub commanded: i64,
}

/// A participant of a schedule over the range: their hours in it, and the pages they received
/// while on call for it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParticipantLoad {
    pub user_id: i64,
    pub name: String,
    /// Named in the schedule's layers (false for someone who only covered an override).
    pub in_rotation: bool,
    pub on_call_seconds: i64,
    pub pages: ClassCounts,
}

/// How a schedule's load spreads across its participants.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScheduleLoad {
    pub schedule_id: i64,
    pub name: String,
    pub team_id: i64,
    /// Everyone named in the schedule's layers, plus anyone who covered an override in the
    /// range; by hours on call, most first.
    pub participants: Vec<ParticipantLoad>,
}

/// The spread of one figure across a schedule's participants.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    /// Population standard deviation over the mean; `None` when the mean is 0.
    pub cv: Option<f64>,
}

impl Spread {
    /// The spread of `values`; `None` for none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let values: Vec<f64> = values.into_iter().collect();
        if values.is_empty() {
            return None;
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        let cv = (mean > 0.0).then(|| var.sqrt() / mean);
        Some(Spread { min, max, mean, cv })
    }

    /// max / min, when min is above zero.
    pub fn ratio(&self) -> Option<f64> {
        (self.min > 0.0).then(|| self.max / self.min)
    }
}

/// Above this multiple of the schedule's mean (hours on call or sleep pages while on call), a
/// participant is flagged as overloaded.
pub const OVERLOAD_FACTOR: f64 = 1.5;

impl ScheduleLoad {
    /// Seconds covered by someone (gaps excluded).
    pub fn total_seconds(&self) -> i64 {
        self.participants.iter().map(|p| p.on_call_seconds).sum()
    }

    /// Sleep-hours pages received while on call for this schedule.
    pub fn total_sleep(&self) -> i64 {
        self.participants.iter().map(|p| p.pages.sleep).sum()
    }

    /// The participants named in the layers: the people expected to share the load.
    fn members(&self) -> impl Iterator<Item = &ParticipantLoad> {
        self.participants.iter().filter(|p| p.in_rotation)
    }

    /// The spread of hours on call across the rotation's members.
    pub fn hours_spread(&self) -> Option<Spread> {
        Spread::of(self.members().map(|p| p.on_call_seconds as f64 / 3600.0))
    }

    /// The spread of sleep-hours pages while on call across the rotation's members.
    pub fn sleep_spread(&self) -> Option<Spread> {
        Spread::of(self.members().map(|p| p.pages.sleep as f64))
    }

    /// Why `p` is overloaded: hours on call or sleep-hours pages while on call above
    /// [`OVERLOAD_FACTOR`] (1.5) times the mean of the rotation's members (people who only
    /// covered an override are compared but do not pull the mean down). Empty when not.
    /// Compared in whole numbers (2·x·n > 3·Σ), so a value exactly at 1.5× is not flagged.
    pub fn overload(&self, p: &ParticipantLoad) -> Vec<&'static str> {
        let n = self.members().count() as i64;
        let hours: i64 = self.members().map(|m| m.on_call_seconds).sum();
        let sleep: i64 = self.members().map(|m| m.pages.sleep).sum();
        let mut why = Vec::new();
        if hours > 0 && 2 * p.on_call_seconds * n > 3 * hours {
            why.push("hours");
        }
        if sleep > 0 && 2 * p.pages.sleep * n > 3 * sleep {
            why.push("sleep pages");
        }
        why
    }
}

/// The on-call load of a scope: per person, and per schedule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OncallLoad {
    /// Sorted by sleep-hours pages, then all pages, then hours on call (most first), then name.
    pub people: Vec<PersonLoad>,
    /// The scope's schedules (the team's when a team is chosen), by name.
    pub schedules: Vec<ScheduleLoad>,
}

/// Pushes `(SELECT COUNT(*) …)` of the counted interruptions of class `$class` to the person
/// `$user` sent in `[$from, $to)` (SQL expressions: columns of the outer query or binds pushed
/// by `$push_range`), narrowed by the scope's filters (team: pages to its members; service and
/// severity: pages about incidents on that service / of that severity). Each count is one seek
/// into `notifications_user_interruptions` (user_id, interruption, sent_at): no sort and no
/// rows leave the database.
macro_rules! push_count {
    ($qb:expr, $scope:expr, $user:expr, $class:expr, |$q:ident| $push_range:expr) => {{
        let scope: &Scope = $scope;
        $qb.push(concat!(
            "(SELECT COUNT(*) FROM notifications n WHERE n.user_id = ",
            $user,
            " AND n.interruption = '",
            $class,
            "'"
        ));
        {
            let $q = &mut $qb;
            $push_range;
        }
        if let Some(team) = scope.team_id {
            $qb.push(" AND n.user_id IN (SELECT tm.user_id FROM team_members tm WHERE tm.team_id = ")
                .push_bind(team)
                .push(")");
        }
        if let Some(service) = scope.service_id {
            $qb.push(" AND n.incident_id IN (SELECT x.incident_id FROM incident_services x WHERE x.service_id = ")
                .push_bind(service)
                .push(")");
        }
        if let Some(severity) = scope.severity {
            $qb.push(" AND n.incident_id IN (SELECT i.id FROM incidents i WHERE i.severity = ")
                .push_bind(severity.as_str())
                .push(")");
        }
        $qb.push(")");
    }};
}

/// Spans per statement when counting pages while on call (4 binds each).
const SPANS_PER_QUERY: usize = 500;

/// Merged length of intervals, in seconds.
fn union_seconds(intervals: &mut [Span]) -> i64 {
    intervals.sort_unstable();
    let mut total = TimeDelta::zero();
    let mut current: Option<Span> = None;
    for &(start, end) in intervals.iter() {
        match current {
            Some((s, e)) if start <= e => current = Some((s, e.max(end))),
            Some((s, e)) => {
                total += e - s;
                current = Some((start, end));
            }
            None => current = Some((start, end)),
        }
    }
    if let Some((s, e)) = current {
        total += e - s;
    }
    total.num_seconds()
}

impl Store {
    /// The on-call load of `scope`: per person, counted interruptions by class (a count per
    /// person and class, each one seek into the index), incidents commanded (one `GROUP BY`)
    /// and hours on call from the final schedules; per schedule, each participant's hours and
    /// the pages they received while on call for it (their final shifts sent to the database
    /// in batches and counted there the same way). No page leaves the database as a row.
    /// Hours on call are not narrowed by service or severity.
    pub async fn oncall_load(&self, scope: &Scope) -> Result<OncallLoad> {
        // Pages sent a moment ago may still wait for the classifier (PostgreSQL): count them.
        self.classify_pending_interruptions().await?;
        let users: Vec<(i64, String, String)> = read!(self.db(), c => sqlx::query_as(
            "SELECT id, name, time_zone FROM users ORDER BY id")
            .fetch_all(c)
            .await)?;
        let users: HashMap<i64, (String, String)> = users
            .into_iter()
            .map(|(id, name, zone)| (id, (name, zone)))
            .collect();
        let name_of = |id: i64| {
            users
                .get(&id)
                .map_or_else(|| format!("User {id}"), |u| u.0.clone())
        };

        // Pages by person and class: a count per (person, class) over the index, rather than
        // a GROUP BY, which SQLite would answer by sorting every page of the range.
        let counted: Vec<(i64, i64, i64, i64)> = read!(self.db(), c => {
            let mut qb = sqlx::QueryBuilder::new("SELECT u.id, ");
            let range = |q: &mut sqlx::QueryBuilder<_>| {
                q.push(" AND n.sent_at >= ").push_bind(scope.from).push(" AND n.sent_at < ").push_bind(scope.to);
            };
            push_count!(qb, scope, "u.id", "working", |q| range(q));
            qb.push(", ");
            push_count!(qb, scope, "u.id", "evening", |q| range(q));
            qb.push(", ");
            push_count!(qb, scope, "u.id", "sleep", |q| range(q));
            qb.push(" FROM users u");
            if let Some(team) = scope.team_id {
                qb.push(" WHERE u.id IN (SELECT tm.user_id FROM team_members tm WHERE tm.team_id = ")
                    .push_bind(team)
                    .push(")");
            }
            qb.build_query_as::<(i64, i64, i64, i64)>().fetch_all(c).await
        })?;
        // Incidents commanded.
        let commanded: Vec<(i64, i64)> = read!(self.db(), c => {
            let mut qb = sqlx::QueryBuilder::new(
                "SELECT i.commander_id, COUNT(*) FROM incidents i WHERE i.commander_id IS NOT NULL AND i.triggered_at >= ");
            qb.push_bind(scope.from).push(" AND i.triggered_at < ").push_bind(scope.to);
            if let Some(team) = scope.team_id {
                qb.push(" AND i.commander_id IN (SELECT tm.user_id FROM team_members tm WHERE tm.team_id = ")
                    .push_bind(team)
                    .push(")");
            }
            if let Some(service) = scope.service_id {
                qb.push(" AND i.id IN (SELECT x.incident_id FROM incident_services x WHERE x.service_id = ")
                    .push_bind(service)
                    .push(")");
            }
            if let Some(severity) = scope.severity {
                qb.push(" AND i.severity = ").push_bind(severity.as_str());
            }
            qb.push(" GROUP BY i.commander_id");
            qb.build_query_as::<(i64, i64)>().fetch_all(c).await
        })?;

        // Final schedules over the range.
        let stored: Vec<StoredSchedule> = self
            .schedules()
            .await?
            .into_iter()
            .filter(|s| scope.team_id.is_none_or(|t| s.team_id == t))
            .collect();
        let overrides: Vec<StoredOverride> = read!(self.db(), c => sqlx::query_as(
            "SELECT id, schedule_id, user_id, start_at, end_at, created_by, created_at FROM schedule_overrides
             WHERE end_at > $1 AND start_at < $2 ORDER BY id")
            .bind(scope.from)
            .bind(scope.to)
            .fetch_all(c)
            .await)?;
        // Per schedule: each participant's shifts, in order.
        type Shifts = BTreeMap<i64, Vec<Span>>;
        let mut finals: Vec<(&StoredSchedule, BTreeSet<i64>, Shifts)> =
            Vec::with_capacity(stored.len());
        for s in &stored {
            let own: Vec<_> = overrides
                .iter()
                .filter(|o| o.schedule_id == s.id)
                .map(StoredOverride::to_override)
                .collect();
            let schedule = Schedule::new(s.layers.clone(), own)
                .map_err(|e| StoreError::Corrupt(format!("schedule {}: {e}", s.id)))?;
            let members = s.participants();
            let mut shifts: Shifts = members.iter().map(|p| (*p, Vec::new())).collect();
            for shift in schedule.final_shifts(scope.from, scope.to) {
                if let Some(p) = shift.participant {
                    shifts.entry(p).or_default().push((shift.start, shift.end));
                }
            }
            finals.push((s, members, shifts));
        }

        // Pages while on call: for every (schedule, participant) shift, its counts by class,
        // counted in the database over the index; a few statements of many shifts each.
        let spans: Vec<(usize, i64, Span)> = finals
            .iter()
            .enumerate()
            .flat_map(|(k, (_, _, shifts))| {
                shifts
                    .iter()
                    .flat_map(move |(user, list)| list.iter().map(move |span| (k, *user, *span)))
            })
            .collect();
        let mut on_call_pages: HashMap<(usize, i64), ClassCounts> = HashMap::new();
        for chunk in spans.chunks(SPANS_PER_QUERY) {
            let rows: Vec<(i64, i64, i64, i64)> = read!(self.db(), c => {
                let mut qb = sqlx::QueryBuilder::new("WITH s (i, u, a, b) AS (VALUES ");
                let mut list = qb.separated(", ");
                for (i, (_, user, (start, end))) in chunk.iter().enumerate() {
                    list.push("(")
                        .push_bind_unseparated(i as i64)
                        .push_unseparated(", ")
                        .push_bind_unseparated(*user)
                        .push_unseparated(", ")
                        .push_bind_unseparated(*start)
                        .push_unseparated(", ")
                        .push_bind_unseparated(*end)
                        .push_unseparated(")");
                }
                qb.push(") SELECT s.i");
                let range = |q: &mut sqlx::QueryBuilder<_>| {
                    q.push(" AND n.sent_at >= s.a AND n.sent_at < s.b");
                };
                qb.push(", ");
                push_count!(qb, scope, "s.u", "working", |q| range(q));
                qb.push(", ");
                push_count!(qb, scope, "s.u", "evening", |q| range(q));
                qb.push(", ");
                push_count!(qb, scope, "s.u", "sleep", |q| range(q));
                qb.push(" FROM s");
                qb.build_query_as::<(i64, i64, i64, i64)>().fetch_all(c).await
            })?;
            for (i, working, evening, sleep) in rows {
                let Some((k, user, _)) = usize::try_from(i).ok().and_then(|i| chunk.get(i)) else {
                    continue;
                };
                let counts = on_call_pages.entry((*k, *user)).or_default();
                counts.working += working;
                counts.evening += evening;
                counts.sleep += sleep;
            }
        }

        let mut schedules = Vec::with_capacity(finals.len());
        let mut on_call: HashMap<i64, Vec<Span>> = HashMap::new();
        for (k, (s, members, shifts)) in finals.into_iter().enumerate() {
            let mut participants: Vec<ParticipantLoad> = shifts
                .into_iter()
                .map(|(user, list)| {
                    let seconds = list.iter().map(|(a, b)| (*b - *a).num_seconds()).sum();
                    let pages = on_call_pages.get(&(k, user)).copied().unwrap_or_default();
                    on_call.entry(user).or_default().extend(list);
                    ParticipantLoad {
                        user_id: user,
                        name: name_of(user),
                        in_rotation: members.contains(&user),
                        on_call_seconds: seconds,
                        pages,
                    }
                })
                .collect();
            participants.sort_by(|a, b| {
                b.on_call_seconds
                    .cmp(&a.on_call_seconds)
                    .then_with(|| a.name.cmp(&b.name))
            });
            schedules.push(ScheduleLoad {
                schedule_id: s.id,
                name: s.name.clone(),
                team_id: s.team_id,
                participants,
            });
        }

        // Per person.
        let mut people: BTreeMap<i64, PersonLoad> = BTreeMap::new();
        let blank = |id: i64| PersonLoad {
            user_id: id,
            name: name_of(id),
            time_zone: users.get(&id).map(|u| u.1.clone()).unwrap_or_default(),
            on_call_seconds: 0,
            pages: ClassCounts::default(),
            commanded: 0,
        };
        for (user, working, evening, sleep) in counted {
            if working + evening + sleep > 0 {
                people.entry(user).or_insert_with(|| blank(user)).pages = ClassCounts {
                    working,
                    evening,
                    sleep,
                };
            }
        }
        for (user, n) in commanded {
            people.entry(user).or_insert_with(|| blank(user)).commanded = n;
        }
        for (user, mut intervals) in on_call {
            let seconds = union_seconds(&mut intervals);
            if seconds > 0 {
                people
                    .entry(user)
                    .or_insert_with(|| blank(user))
                    .on_call_seconds = seconds;
            }
        }
        let mut people: Vec<PersonLoad> = people.into_values().collect();
        people.sort_by(|a, b| {
            b.pages
                .sleep
                .cmp(&a.pages.sleep)
                .then_with(|| b.pages.total().cmp(&a.pages.total()))
                .then_with(|| b.on_call_seconds.cmp(&a.on_call_seconds))
                .then_with(|| a.name.cmp(&b.name))
                .then_with(|| a.user_id.cmp(&b.user_id))
        });
        Ok(OncallLoad { people, schedules })
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

    #[test]
    fn pages_before_the_first_pending_one_only_seed_the_rule() {
        // A pass reads from 60 s before the earliest pending page, so a repeat may arrive
        // without the page that made it one: it stays a repeat, and does not count.
        let pages = vec![
            (1, t("2026-11-30T10:00:00Z"), Some(3)),
            (2, t("2026-11-30T10:00:30Z"), None),
        ];
        let mut out = Vec::new();
        decide(&pages, TimeZone::UTC, &mut out);
        assert_eq!(out, vec![(2, 0)]);
        // A counted page 50 s before the pending one makes it a repeat and is left as it is;
        // a page 70 s after it counts still.
        let pages = vec![
            (1, t("2026-11-30T09:59:40Z"), Some(2)),
            (2, t("2026-11-30T10:00:30Z"), None),
            (3, t("2026-11-30T10:00:50Z"), Some(0)),
        ];
        let mut out = Vec::new();
        decide(&pages, TimeZone::UTC, &mut out);
        assert_eq!(out, vec![(2, 3)]);
    }

    #[test]
    fn overlapping_shifts_count_once() {
        let mut v = vec![
            (t("2026-11-30T12:00:00Z"), t("2026-11-30T18:00:00Z")),
            (t("2026-11-30T09:00:00Z"), t("2026-11-30T13:00:00Z")),
            (t("2026-11-30T20:00:00Z"), t("2026-11-30T21:00:00Z")),
        ];
        // 09:00-18:00 (9 h) and 20:00-21:00 (1 h).
        assert_eq!(union_seconds(&mut v), 10 * 3600);
    }

    #[test]
    fn spread_and_overload() {
        let p = |id, hours: i64, sleep| ParticipantLoad {
            user_id: id,
            name: format!("P{id}"),
            in_rotation: true,
            on_call_seconds: hours * 3600,
            pages: ClassCounts {
                working: 0,
                evening: 0,
                sleep,
            },
        };
        let s = ScheduleLoad {
            schedule_id: 1,
            name: "S".into(),
            team_id: 1,
            participants: vec![p(1, 48, 6), p(2, 24, 1), p(3, 24, 2)],
        };
        // Hours: mean 32, 48 = 1.5 x 32 is not above; sleep: mean 3, 6 > 4.5.
        let h = s.hours_spread().unwrap();
        assert_eq!((h.min, h.max, h.mean), (24.0, 48.0, 32.0));
        assert_eq!(h.ratio(), Some(2.0));
        assert_eq!(s.overload(&s.participants[0]), vec!["sleep pages"]);
        assert!(s.overload(&s.participants[1]).is_empty());
        assert_eq!(s.total_sleep(), 9);
        assert_eq!(s.total_seconds(), 96 * 3600);
    }
}
