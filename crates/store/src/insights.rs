//! Insights: incident metrics over a date range (MTTA, MTTR, counts by severity, response-target
//! attainment, postmortems, action items), read as compact rows and aggregated in one pass.

use chrono::{DateTime, Utc};
use heliograph_domain::Severity;

/// What an insights query covers: incidents triggered (pages sent) in [from, to), optionally one team's services, one service, one severity.
#[derive(Debug, Clone)]
pub struct Scope {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub team_id: Option<i64>,
    pub service_id: Option<i64>,
    pub severity: Option<Severity>,
}

/// How a range is cut into chart buckets, in the viewer's zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// One bucket per local calendar day.
    Day,
    /// One bucket per local week, Monday to Sunday.
    Week,
}

/// The nearest-rank percentile `p` (1..=100) of `sorted` (ascending): the value at rank
/// ⌈p/100 · n⌉ (1-based). The median is `percentile(sorted, 50)`: for an even count, the lower
/// of the two middle values. `None` for no values.
pub fn percentile<T: Copy>(sorted: &[T], p: u32) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    let rank = (n * p as usize).div_ceil(100).clamp(1, n);
    Some(sorted[rank - 1])
}

// ---------------------------------------------------------------- reading

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{Datelike, NaiveDate, TimeDelta};
use chrono_tz::Tz;

use crate::services::Service;
use crate::{Result, Store, read};

/// One incident of a scope, compact: what every figure of the insights page is computed from.
#[derive(Debug, Clone)]
pub struct IncidentFact {
    pub id: i64,
    pub number: i64,
    pub severity: Severity,
    pub triggered_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// The incident's services (usually one).
    pub service_ids: Vec<i64>,
}

/// One array per column, as PostgreSQL aggregates a range's incidents (`None` for no rows).
type PgColumns = (
    Option<Vec<i64>>,
    Option<Vec<i64>>,
    Option<Vec<String>>,
    Option<Vec<DateTime<Utc>>>,
    Option<Vec<Option<DateTime<Utc>>>>,
    Option<Vec<Option<DateTime<Utc>>>>,
);

fn instant(secs: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp(secs, 0)
        .ok_or_else(|| crate::StoreError::Corrupt(format!("instant out of range: {secs}")))
}

/// A SEV1/SEV2 incident resolved in the range, which needs a postmortem, and its postmortem.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PostmortemFact {
    pub number: i64,
    pub title: String,
    pub severity: String,
    pub resolved_at: DateTime<Utc>,
    pub postmortem_id: Option<i64>,
    pub status: Option<String>,
    pub published_at: Option<DateTime<Utc>>,
}

/// How long after an incident's resolution its postmortem is due.
pub const POSTMORTEM_DUE_DAYS: i64 = 7;

/// Where a needed postmortem stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostmortemOutcome {
    /// Published no later than due.
    OnTime,
    /// Published after it was due.
    Late,
    /// Not published and past due.
    Overdue,
    /// Not published, not yet due.
    Pending,
}

impl PostmortemOutcome {
    /// The name used in CSV and on the page.
    pub fn as_str(self) -> &'static str {
        match self {
            PostmortemOutcome::OnTime => "on_time",
            PostmortemOutcome::Late => "late",
            PostmortemOutcome::Overdue => "overdue",
            PostmortemOutcome::Pending => "pending",
        }
    }
}

impl PostmortemFact {
    /// Due: resolution + [`POSTMORTEM_DUE_DAYS`] days (elapsed time, 168 hours).
    pub fn due(&self) -> DateTime<Utc> {
        self.resolved_at + TimeDelta::days(POSTMORTEM_DUE_DAYS)
    }

    /// Where it stands at `now`.
    pub fn outcome(&self, now: DateTime<Utc>) -> PostmortemOutcome {
        let published = self
            .published_at
            .filter(|_| self.status.as_deref() == Some("published"));
        match published {
            Some(p) if p <= self.due() => PostmortemOutcome::OnTime,
            Some(_) => PostmortemOutcome::Late,
            None if now > self.due() => PostmortemOutcome::Overdue,
            None => PostmortemOutcome::Pending,
        }
    }
}

/// An open (open or in progress) action item of a postmortem of an incident in the scope.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ActionItemFact {
    pub id: i64,
    pub title: String,
    pub status: String,
    pub priority: String,
    /// `YYYY-MM-DD` as stored.
    pub due_date: Option<String>,
    pub owner_name: Option<String>,
    pub postmortem_id: i64,
    pub number: i64,
}

impl ActionItemFact {
    /// The due date, when set and readable.
    pub fn due(&self) -> Option<NaiveDate> {
        self.due_date
            .as_deref()
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
    }

    /// Whether it is past due on `today` (the viewer's calendar day).
    pub fn is_overdue(&self, today: NaiveDate) -> bool {
        self.due().is_some_and(|d| d < today)
    }
}

/// Alert volume of a service: how many alerts, how many events, the noisiest sources and keys.
#[derive(Debug, Clone, Default)]
pub struct AlertVolume {
    pub alerts: i64,
    pub events: i64,
    /// (integration name, alerts, events), most events first, at most 10.
    pub integrations: Vec<(String, i64, i64)>,
    /// (dedup key, alerts, events), most events first, at most 10.
    pub dedup_keys: Vec<(String, i64, i64)>,
}

/// Appends a scope's team/service/severity conditions on incidents `i` (only those set).
macro_rules! push_scope {
    ($qb:ident, $s:expr) => {
        if let Some(severity) = $s.severity {
            $qb.push(" AND i.severity = ").push_bind(severity.as_str());
        }
        if let Some(service_id) = $s.service_id {
            $qb.push(" AND EXISTS (SELECT 1 FROM incident_services s2 WHERE s2.incident_id = i.id AND s2.service_id = ").push_bind(service_id).push(")");
        }
        if let Some(team_id) = $s.team_id {
            $qb.push(" AND EXISTS (SELECT 1 FROM incident_services s2 JOIN services v ON v.id = s2.service_id WHERE s2.incident_id = i.id AND v.team_id = ")
                .push_bind(team_id)
                .push(")");
        }
    };
}

impl Store {
    /// Every incident triggered in the scope, with its services, in one query.
    pub async fn insight_incidents(&self, scope: &Scope) -> Result<Vec<IncidentFact>> {
        // The range's incidents come back in one row, not 100,000: handing rows one by one
        // across the driver costs more than the query. SQLite packs them into one text of
        // `id,number,severity digit,triggered,acknowledged,resolved` records (instants as epoch
        // seconds, empty when not yet), `;`-separated; PostgreSQL answers one array per column
        // (binary, no formatting).
        let mut out: Vec<IncidentFact> = Vec::new();
        let corrupt = |what: &str| crate::StoreError::Corrupt(format!("insights row: {what}"));
        if let crate::Db::Postgres(pool, _) = self.db() {
            let mut qb = sqlx::QueryBuilder::<sqlx::Postgres>::new(
                "SELECT array_agg(i.id), array_agg(i.number), array_agg(i.severity), array_agg(i.triggered_at),
                 array_agg(i.acknowledged_at), array_agg(i.resolved_at) FROM incidents i WHERE i.triggered_at >= ",
            );
            qb.push_bind(scope.from)
                .push(" AND i.triggered_at < ")
                .push_bind(scope.to);
            push_scope!(qb, scope);
            let row: PgColumns = qb.build_query_as().fetch_one(pool).await?;
            if let (Some(ids), Some(numbers), Some(sevs), Some(trig), Some(acks), Some(ress)) = row
            {
                out.reserve(ids.len());
                for (k, id) in ids.iter().enumerate() {
                    let (Some(number), Some(sev), Some(triggered_at), Some(ack), Some(res)) = (
                        numbers.get(k),
                        sevs.get(k),
                        trig.get(k),
                        acks.get(k),
                        ress.get(k),
                    ) else {
                        return Err(corrupt("arrays of different lengths"));
                    };
                    out.push(IncidentFact {
                        id: *id,
                        number: *number,
                        severity: sev
                            .parse::<Severity>()
                            .map_err(|e| corrupt(&e.to_string()))?,
                        triggered_at: *triggered_at,
                        acknowledged_at: *ack,
                        resolved_at: *res,
                        service_ids: Vec::new(),
                    });
                }
            }
        } else {
            let text: Option<String> = read!(self.db(), c => {
                let mut qb = sqlx::QueryBuilder::new(
                    "SELECT group_concat(i.id || ',' || i.number || ',' || substr(i.severity, 4, 1) || ',' || unixepoch(i.triggered_at)
                     || ',' || COALESCE(unixepoch(i.acknowledged_at), '') || ',' || COALESCE(unixepoch(i.resolved_at), ''), ';')");
                // Answered from the incidents_insights index alone (migration 0009).
                qb.push(" FROM incidents i WHERE i.triggered_at >= ");
                qb.push_bind(scope.from).push(" AND i.triggered_at < ").push_bind(scope.to);
                push_scope!(qb, scope);
                qb.build_query_scalar::<Option<String>>().fetch_one(c).await
            })?;
            for record in text
                .as_deref()
                .unwrap_or("")
                .split(';')
                .filter(|r| !r.is_empty())
            {
                let mut f = record.split(',');
                let mut int = |optional: bool| -> Result<Option<i64>> {
                    match f.next() {
                        Some("") if optional => Ok(None),
                        Some(v) => v.parse::<i64>().map(Some).map_err(|_| corrupt(record)),
                        None => Err(corrupt(record)),
                    }
                };
                let id = int(false)?.ok_or_else(|| corrupt(record))?;
                let number = int(false)?.ok_or_else(|| corrupt(record))?;
                let severity = match int(false)? {
                    Some(1) => Severity::Sev1,
                    Some(2) => Severity::Sev2,
                    Some(3) => Severity::Sev3,
                    Some(4) => Severity::Sev4,
                    _ => return Err(corrupt(record)),
                };
                let triggered = int(false)?.ok_or_else(|| corrupt(record))?;
                let acknowledged = int(true)?;
                let resolved = int(true)?;
                out.push(IncidentFact {
                    id,
                    number,
                    severity,
                    triggered_at: instant(triggered)?,
                    acknowledged_at: acknowledged.map(instant).transpose()?,
                    resolved_at: resolved.map(instant).transpose()?,
                    service_ids: Vec::new(),
                });
            }
        }
        let mut at: HashMap<i64, usize> = HashMap::with_capacity(out.len());
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        for (k, f) in out.iter().enumerate() {
            lo = lo.min(f.id);
            hi = hi.max(f.id);
            at.insert(f.id, k);
        }
        // Their services: one range scan of incident_services over the ids seen (incidents are
        // numbered in the order they are declared, so a range of time is a range of ids),
        // packed the same way, instead of one look-up per incident.
        if !out.is_empty() {
            let pairs: Option<String> = read!(self.db(), c => sqlx::query_scalar(match self.db().backend() {
                crate::Backend::Sqlite => "SELECT group_concat(incident_id || ',' || service_id, ';') FROM incident_services WHERE incident_id BETWEEN $1 AND $2",
                crate::Backend::Postgres => "SELECT string_agg(incident_id || ',' || service_id, ';') FROM incident_services WHERE incident_id BETWEEN $1 AND $2",
            })
            .bind(lo)
            .bind(hi)
            .fetch_one(c)
            .await)?;
            for pair in pairs.as_deref().unwrap_or("").split(';') {
                let Some((incident, service)) = pair.split_once(',') else {
                    continue;
                };
                let (Ok(incident), Ok(service)) = (incident.parse::<i64>(), service.parse::<i64>())
                else {
                    return Err(corrupt(pair));
                };
                if let Some(k) = at.get(&incident) {
                    out[*k].service_ids.push(service);
                }
            }
        }
        Ok(out)
    }

    /// SEV1 and SEV2 incidents resolved in the scope's range (and matching its filters), with
    /// their postmortems, newest resolution first. Titles are read only `with_titles` (the
    /// CSV); without them the partial index of migration 0009 answers alone.
    pub async fn insight_postmortems(
        &self,
        scope: &Scope,
        with_titles: bool,
    ) -> Result<Vec<PostmortemFact>> {
        let columns = if with_titles {
            "SELECT i.number, i.title,"
        } else {
            "SELECT i.number, '' AS title,"
        };
        read!(self.db(), c => {
            let mut qb = sqlx::QueryBuilder::new(columns);
            qb.push(" i.severity, i.resolved_at, p.id AS postmortem_id, p.status, p.published_at
                 FROM incidents i LEFT JOIN postmortems p ON p.incident_id = i.id
                 WHERE i.severity IN ('SEV1', 'SEV2') AND i.resolved_at >= ");
            qb.push_bind(scope.from).push(" AND i.resolved_at < ").push_bind(scope.to);
            push_scope!(qb, scope);
            qb.push(" ORDER BY i.resolved_at DESC, i.id DESC");
            qb.build_query_as::<PostmortemFact>().fetch_all(c).await
        })
        .map_err(Into::into)
    }

    /// The titles of the incidents with these numbers.
    pub async fn incident_titles(&self, numbers: &[i64]) -> Result<HashMap<i64, String>> {
        if numbers.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<(i64, String)> = read!(self.db(), c => {
            let mut qb = sqlx::QueryBuilder::new("SELECT number, title FROM incidents WHERE number IN (");
            let mut list = qb.separated(", ");
            for n in numbers {
                list.push_bind(*n);
            }
            qb.push(")");
            qb.build_query_as::<(i64, String)>().fetch_all(c).await
        })?;
        Ok(rows.into_iter().collect())
    }

    /// Open and in-progress action items of the postmortems of incidents triggered in the
    /// scope, by due date (undated last).
    pub async fn insight_action_items(&self, scope: &Scope) -> Result<Vec<ActionItemFact>> {
        self.action_items_of_scope(scope, None, None).await
    }

    /// The first `limit` of those due before `today`, by due date.
    pub async fn insight_overdue_action_items(
        &self,
        scope: &Scope,
        today: NaiveDate,
        limit: i64,
    ) -> Result<Vec<ActionItemFact>> {
        self.action_items_of_scope(scope, Some(today), Some(limit))
            .await
    }

    async fn action_items_of_scope(
        &self,
        scope: &Scope,
        overdue_on: Option<NaiveDate>,
        limit: Option<i64>,
    ) -> Result<Vec<ActionItemFact>> {
        read!(self.db(), c => {
            let mut qb = sqlx::QueryBuilder::new(
                "SELECT a.id, a.title, a.status, a.priority, a.due_date, u.name AS owner_name, a.postmortem_id, i.number
                 FROM action_items a JOIN postmortems p ON p.id = a.postmortem_id JOIN incidents i ON i.id = p.incident_id
                 LEFT JOIN users u ON u.id = a.owner_id
                 WHERE a.status IN ('open', 'in_progress') AND i.triggered_at >= ");
            qb.push_bind(scope.from).push(" AND i.triggered_at < ").push_bind(scope.to);
            push_scope!(qb, scope);
            if let Some(day) = overdue_on {
                qb.push(" AND a.due_date < ").push_bind(day.format("%Y-%m-%d").to_string());
            }
            qb.push(" ORDER BY CASE WHEN a.due_date IS NULL THEN 1 ELSE 0 END, a.due_date, a.id");
            if let Some(limit) = limit {
                qb.push(" LIMIT ").push_bind(limit);
            }
            qb.build_query_as::<ActionItemFact>().fetch_all(c).await
        })
        .map_err(Into::into)
    }

    /// How many open and in-progress action items [`Store::insight_action_items`] lists, and
    /// how many of them are due before `today`: (open, overdue), counted by the database.
    pub async fn insight_action_item_counts(
        &self,
        scope: &Scope,
        today: NaiveDate,
    ) -> Result<(i64, i64)> {
        let (open, overdue): (i64, Option<i64>) = read!(self.db(), c => {
            let mut qb = sqlx::QueryBuilder::new("SELECT COUNT(*), CAST(SUM(CASE WHEN a.due_date < ");
            qb.push_bind(today.format("%Y-%m-%d").to_string());
            qb.push(" THEN 1 ELSE 0 END) AS BIGINT)
                 FROM action_items a JOIN postmortems p ON p.id = a.postmortem_id JOIN incidents i ON i.id = p.incident_id
                 WHERE a.status IN ('open', 'in_progress') AND i.triggered_at >= ");
            qb.push_bind(scope.from).push(" AND i.triggered_at < ").push_bind(scope.to);
            push_scope!(qb, scope);
            qb.build_query_as::<(i64, Option<i64>)>().fetch_one(c).await
        })?;
        Ok((open, overdue.unwrap_or(0)))
    }

    /// [`Store::insight_postmortems`] without titles, packed by the database into one text row
    /// (`number,severity digit,resolved,postmortem id,status,published`, instants as epoch
    /// seconds), for the page, which only counts them and lists twenty.
    pub async fn insight_postmortems_packed(&self, scope: &Scope) -> Result<Vec<PostmortemFact>> {
        let packed = match self.db().backend() {
            crate::Backend::Sqlite => {
                "SELECT group_concat(i.number || ',' || substr(i.severity, 4, 1) || ',' || unixepoch(i.resolved_at)
                 || ',' || COALESCE(p.id, '') || ',' || COALESCE(p.status, '') || ',' || COALESCE(unixepoch(p.published_at), ''), ';')"
            }
            crate::Backend::Postgres => {
                "SELECT string_agg(i.number || ',' || substr(i.severity, 4, 1) || ',' || FLOOR(EXTRACT(EPOCH FROM i.resolved_at))::BIGINT
                 || ',' || COALESCE(p.id::TEXT, '') || ',' || COALESCE(p.status, '')
                 || ',' || COALESCE(FLOOR(EXTRACT(EPOCH FROM p.published_at))::BIGINT::TEXT, ''), ';')"
            }
        };
        let text: Option<String> = read!(self.db(), c => {
            let mut qb = sqlx::QueryBuilder::new(packed);
            qb.push(" FROM incidents i LEFT JOIN postmortems p ON p.incident_id = i.id
                 WHERE i.severity IN ('SEV1', 'SEV2') AND i.resolved_at >= ");
            qb.push_bind(scope.from).push(" AND i.resolved_at < ").push_bind(scope.to);
            push_scope!(qb, scope);
            qb.build_query_scalar::<Option<String>>().fetch_one(c).await
        })?;
        let corrupt = |what: &str| crate::StoreError::Corrupt(format!("insights row: {what}"));
        let mut out = Vec::new();
        for record in text
            .as_deref()
            .unwrap_or("")
            .split(';')
            .filter(|r| !r.is_empty())
        {
            let f: Vec<&str> = record.split(',').collect();
            let [number, severity, resolved, postmortem, status, published] = f[..] else {
                return Err(corrupt(record));
            };
            let int = |v: &str| v.parse::<i64>().map_err(|_| corrupt(record));
            let opt = |v: &str| (!v.is_empty()).then(|| int(v)).transpose();
            out.push(PostmortemFact {
                number: int(number)?,
                title: String::new(),
                severity: format!("SEV{severity}"),
                resolved_at: instant(int(resolved)?)?,
                postmortem_id: opt(postmortem)?,
                status: (!status.is_empty()).then(|| status.to_owned()),
                published_at: opt(published)?.map(instant).transpose()?,
            });
        }
        // Newest resolution first, as the row query orders them.
        out.sort_by(|a, b| {
            b.resolved_at
                .cmp(&a.resolved_at)
                .then(b.number.cmp(&a.number))
        });
        Ok(out)
    }

    /// Alerts of a service seen since `since`: counts, and the ten noisiest integrations and
    /// dedup keys by events received (an alert's `count`).
    pub async fn service_alert_volume(
        &self,
        service_id: i64,
        since: DateTime<Utc>,
    ) -> Result<AlertVolume> {
        let (alerts, events): (i64, i64) = read!(self.db(), c => sqlx::query_as(
            "SELECT COUNT(*), CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM alerts WHERE service_id = $1 AND last_seen_at >= $2")
            .bind(service_id).bind(since).fetch_one(c).await)?;
        let integrations: Vec<(String, i64, i64)> = read!(self.db(), c => sqlx::query_as(
            "SELECT g.name, COUNT(*), CAST(SUM(a.count) AS BIGINT) AS events FROM alerts a JOIN integrations g ON g.id = a.integration_id
             WHERE a.service_id = $1 AND a.last_seen_at >= $2 GROUP BY g.id, g.name ORDER BY events DESC, g.name LIMIT 10")
            .bind(service_id).bind(since).fetch_all(c).await)?;
        let dedup_keys: Vec<(String, i64, i64)> = read!(self.db(), c => sqlx::query_as(
            "SELECT dedup_key, COUNT(*), CAST(SUM(count) AS BIGINT) AS events FROM alerts
             WHERE service_id = $1 AND last_seen_at >= $2 GROUP BY dedup_key ORDER BY events DESC, dedup_key LIMIT 10")
            .bind(service_id).bind(since).fetch_all(c).await)?;
        Ok(AlertVolume {
            alerts,
            events,
            integrations,
            dedup_keys,
        })
    }
}

// ---------------------------------------------------------------- one pass

/// Median and p90 of a set of durations, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stat {
    /// How many durations (incidents acknowledged / resolved).
    pub n: usize,
    pub median: Option<i64>,
    pub p90: Option<i64>,
}

impl Stat {
    /// From unsorted durations (sorted in place).
    pub fn of(values: &mut [i64]) -> Stat {
        values.sort_unstable();
        Stat {
            n: values.len(),
            median: percentile(values, 50),
            p90: percentile(values, 90),
        }
    }
}

/// Met and missed response targets of one kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attainment {
    pub met: u64,
    pub missed: u64,
}

impl Attainment {
    /// Incidents counted (met + missed).
    pub fn total(&self) -> u64 {
        self.met + self.missed
    }

    /// The share met, in percent, when any was counted.
    pub fn percent(&self) -> Option<f64> {
        (self.total() > 0).then(|| self.met as f64 * 100.0 / self.total() as f64)
    }
}

/// One chart bucket: a local day or a Monday-start local week.
#[derive(Debug, Clone)]
pub struct BucketRow {
    /// The bucket's first local date.
    pub start: NaiveDate,
    /// Incidents by severity (SEV1..SEV4).
    pub counts: [u64; 4],
    pub mtta: Stat,
    pub mttr: Stat,
}

impl BucketRow {
    /// All incidents of the bucket.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// One service's figures for the scope.
#[derive(Debug, Clone)]
pub struct ServiceFigures {
    pub service_id: i64,
    pub name: String,
    pub incidents: u64,
    pub counts: [u64; 4],
    pub mtta: Stat,
    pub mttr: Stat,
    /// (acknowledge, resolve) attainment per severity (SEV1..SEV4).
    pub attainment: [(Attainment, Attainment); 4],
    /// Whether the service has any target for each severity.
    pub has_target: [bool; 4],
}

/// One missed response target.
#[derive(Debug, Clone)]
pub struct Breach {
    pub number: i64,
    pub service_id: i64,
    pub service: String,
    pub severity: Severity,
    /// "acknowledge" or "resolve".
    pub kind: &'static str,
    pub target_minutes: u32,
    /// How long it took, in seconds (`None`: not yet done).
    pub took: Option<i64>,
    pub triggered_at: DateTime<Utc>,
}

/// Everything the insights page shows about incidents, computed in one pass.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub buckets: Vec<BucketRow>,
    pub total: u64,
    pub counts: [u64; 4],
    pub mtta: Stat,
    pub mttr: Stat,
    /// Services the scope covers that had incidents, by MTTR median (slowest first, none last).
    pub services: Vec<ServiceFigures>,
    /// Missed targets, newest incident first.
    pub breaches: Vec<Breach>,
}

/// The first day of the Monday-start week of `day`.
pub fn week_start(day: NaiveDate) -> NaiveDate {
    day - TimeDelta::days(i64::from(day.weekday().num_days_from_monday()))
}

/// Whether a duration `took` (seconds, `None` if not yet done `elapsed` seconds after the
/// trigger) meets a target of `minutes`: `Some(true)` met (exactly on target counts as met),
/// `Some(false)` missed (including not done and already past the target), `None` not counted
/// (not done, still within the target).
pub fn judge(took: Option<i64>, elapsed: i64, minutes: u32) -> Option<bool> {
    let limit = i64::from(minutes) * 60;
    match took {
        Some(t) => Some(t <= limit),
        None if elapsed > limit => Some(false),
        None => None,
    }
}

fn sev_index(s: Severity) -> usize {
    match s {
        Severity::Sev1 => 0,
        Severity::Sev2 => 1,
        Severity::Sev3 => 2,
        Severity::Sev4 => 3,
    }
}

/// The local calendar a report is cut in.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub zone: Tz,
    pub bucket: Bucket,
    /// The first and last local dates of the range.
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
}

/// Computes the report over `facts` in one pass: buckets of the window's size from its first to
/// its last day (local dates in its zone), totals, per-service figures for the services of `scope`
/// (its service, or its team's, or all), and breaches judged at `now`.
pub fn compute(
    facts: &[IncidentFact],
    services: &[Service],
    scope: &Scope,
    window: &Window,
    now: DateTime<Utc>,
) -> Report {
    let Window {
        zone,
        bucket,
        first_day,
        last_day,
    } = *window;
    let origin = match bucket {
        Bucket::Day => first_day,
        Bucket::Week => week_start(first_day),
    };
    let step = match bucket {
        Bucket::Day => 1,
        Bucket::Week => 7,
    };
    let mut buckets: Vec<BucketRow> = Vec::new();
    let mut day = origin;
    while day <= last_day {
        buckets.push(BucketRow {
            start: day,
            counts: [0; 4],
            mtta: Stat::default(),
            mttr: Stat::default(),
        });
        day += TimeDelta::days(step);
    }
    let mut b_mtta: Vec<Vec<i64>> = vec![Vec::new(); buckets.len()];
    let mut b_mttr: Vec<Vec<i64>> = vec![Vec::new(); buckets.len()];
    let mut all_mtta = Vec::new();
    let mut all_mttr = Vec::new();
    let mut counts = [0u64; 4];

    let covered: HashMap<i64, &Service> = services
        .iter()
        .filter(|s| scope.service_id.is_none_or(|id| id == s.id))
        .filter(|s| scope.team_id.is_none_or(|t| s.team_id == Some(t)))
        .map(|s| (s.id, s))
        .collect();
    struct Acc {
        counts: [u64; 4],
        mtta: Vec<i64>,
        mttr: Vec<i64>,
        attainment: [(Attainment, Attainment); 4],
    }
    let mut per: BTreeMap<i64, Acc> = BTreeMap::new();
    let mut breaches = Vec::new();
    let mut seen: HashSet<i64> = HashSet::new();

    for f in facts {
        if !seen.insert(f.id) {
            continue;
        }
        let sev = sev_index(f.severity);
        counts[sev] += 1;
        let ack = f
            .acknowledged_at
            .map(|a| (a - f.triggered_at).num_seconds().max(0));
        let res = f
            .resolved_at
            .map(|r| (r - f.triggered_at).num_seconds().max(0));
        let local = f.triggered_at.with_timezone(&zone).date_naive();
        let k = (local - origin).num_days();
        let idx = (k >= 0)
            .then(|| (k / step) as usize)
            .filter(|i| *i < buckets.len());
        if let Some(i) = idx {
            buckets[i].counts[sev] += 1;
            b_mtta[i].extend(ack);
            b_mttr[i].extend(res);
        }
        all_mtta.extend(ack);
        all_mttr.extend(res);
        let elapsed = (now - f.triggered_at).num_seconds();
        let mut svc_seen = Vec::with_capacity(f.service_ids.len());
        for sid in &f.service_ids {
            if svc_seen.contains(sid) {
                continue;
            }
            svc_seen.push(*sid);
            let Some(service) = covered.get(sid) else {
                continue;
            };
            let acc = per.entry(*sid).or_insert_with(|| Acc {
                counts: [0; 4],
                mtta: Vec::new(),
                mttr: Vec::new(),
                attainment: Default::default(),
            });
            acc.counts[sev] += 1;
            acc.mtta.extend(ack);
            acc.mttr.extend(res);
            if let Some(target) = service.response_targets.get(f.severity) {
                for (kind, minutes, took) in [
                    ("acknowledge", target.acknowledge_minutes, ack),
                    ("resolve", target.resolve_minutes, res),
                ] {
                    let Some(minutes) = minutes else { continue };
                    let Some(met) = judge(took, elapsed, minutes) else {
                        continue;
                    };
                    let cell = if kind == "acknowledge" {
                        &mut acc.attainment[sev].0
                    } else {
                        &mut acc.attainment[sev].1
                    };
                    if met {
                        cell.met += 1;
                    } else {
                        cell.missed += 1;
                        breaches.push(Breach {
                            number: f.number,
                            service_id: *sid,
                            service: service.name.clone(),
                            severity: f.severity,
                            kind,
                            target_minutes: minutes,
                            took,
                            triggered_at: f.triggered_at,
                        });
                    }
                }
            }
        }
    }
    for (i, b) in buckets.iter_mut().enumerate() {
        b.mtta = Stat::of(&mut b_mtta[i]);
        b.mttr = Stat::of(&mut b_mttr[i]);
    }
    let mut services_out: Vec<ServiceFigures> = per
        .into_iter()
        .map(|(sid, mut acc)| {
            let service = covered[&sid];
            let mut has_target = [false; 4];
            for s in Severity::ALL {
                has_target[sev_index(*s)] = service.response_targets.get(*s).is_some();
            }
            ServiceFigures {
                service_id: sid,
                name: service.name.clone(),
                incidents: acc.counts.iter().sum(),
                counts: acc.counts,
                mtta: Stat::of(&mut acc.mtta),
                mttr: Stat::of(&mut acc.mttr),
                attainment: acc.attainment,
                has_target,
            }
        })
        .collect();
    services_out.sort_by(|a, b| {
        b.mttr
            .median
            .unwrap_or(-1)
            .cmp(&a.mttr.median.unwrap_or(-1))
            .then(b.incidents.cmp(&a.incidents))
            .then(a.name.cmp(&b.name))
    });
    breaches.sort_by(|a, b| {
        b.triggered_at
            .cmp(&a.triggered_at)
            .then(a.number.cmp(&b.number))
    });
    Report {
        buckets,
        total: counts.iter().sum(),
        counts,
        mtta: Stat::of(&mut all_mtta),
        mttr: Stat::of(&mut all_mttr),
        services: services_out,
        breaches,
    }
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank() {
        // MTTAs 2, 4, 6, 10, 30: median rank ⌈2.5⌉ = 3 → 6; p90 rank ⌈4.5⌉ = 5 → 30.
        let v = [2, 4, 6, 10, 30];
        assert_eq!(percentile(&v, 50), Some(6));
        assert_eq!(percentile(&v, 90), Some(30));
        // Four values: median rank 2 (the lower middle); p90 rank ⌈3.6⌉ = 4.
        let v = [1, 2, 3, 4];
        assert_eq!(percentile(&v, 50), Some(2));
        assert_eq!(percentile(&v, 90), Some(4));
        // Ten values: p90 rank 9.
        let v: Vec<i32> = (1..=10).collect();
        assert_eq!(percentile(&v, 90), Some(9));
        assert_eq!(percentile(&[7], 90), Some(7));
        assert_eq!(percentile::<i32>(&[], 50), None);
    }
}
