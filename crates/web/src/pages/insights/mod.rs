//! Insights (issue 9): incident metrics for leadership over a date range, with filters shared
//! by the incidents page (`/insights`) and the on-call load page (`/insights/oncall`).
//!
//! The filters are parsed here once: a range (last 7/30/90 days, a calendar quarter, or custom
//! local dates) in the viewer's zone, plus optional team, service and severity. Bad values are
//! messages beside the field and a 400, never an extractor rejection or a 500.

mod charts;

pub(crate) mod oncall;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Datelike, Months, NaiveDate, NaiveTime, TimeDelta, Utc};
use chrono_tz::Tz;
use heliograph_domain::Severity;
use heliograph_domain::working_hours::resolve_local;
use heliograph_store::insights::{
    ActionItemFact, Bucket, PostmortemFact, PostmortemOutcome, Report, Scope, Stat, Window,
};
use heliograph_store::services::Service;
use serde::Deserialize;

use crate::auth::{Auth, Viewer};
use crate::error::render_with_status;
use crate::views::{FieldErrors, Shell};
use crate::{AppError, AppState};

/// The longest range a custom range may cover, in days (about three years).
pub(crate) const MAX_RANGE_DAYS: i64 = 3 * 366;

/// The filters as typed in the query string; every value is a string so that a bad one becomes
/// a message on the page. Unknown parameters are ignored.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct InsightsQuery {
    pub range: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub quarter: Option<String>,
    pub team: Option<String>,
    pub service: Option<String>,
    pub severity: Option<String>,
}

/// The filters, checked and resolved to instants.
#[derive(Debug, Clone)]
pub(crate) struct Filters {
    pub scope: Scope,
    /// The viewer's zone, in which days, weeks and quarters are cut.
    pub zone: Tz,
    /// The range in words, e.g. "Last 30 days", "2026 Q3", "3 Mar – 9 Mar 2026".
    pub label: String,
    /// Day buckets for ranges of up to 31 local days, Monday-start weeks otherwise.
    pub bucket: Bucket,
    /// The canonical query string of these filters (no leading `?`), to rebuild links.
    pub query_string: String,
    /// The first and last local dates the range touches.
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
}

fn value(raw: &Option<String>) -> &str {
    raw.as_deref().map(str::trim).unwrap_or("")
}

/// Parses `YYYY-MM-DD`.
fn parse_date(raw: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .filter(|d| (1970..=9999).contains(&d.year()))
}

/// Parses `YYYY-Qn` into (year, quarter).
fn parse_quarter(raw: &str) -> Option<(i32, u32)> {
    let (y, q) = raw.split_once(['-', ' '])?;
    let year: i32 = y.parse().ok().filter(|y| (1970..=9998).contains(y))?;
    let q: u32 = q
        .trim_start_matches(['Q', 'q'])
        .parse()
        .ok()
        .filter(|q| (1..=4).contains(q))?;
    Some((year, q))
}

/// The quarter containing `day`, as `YYYY-Qn`.
pub(crate) fn quarter_of(day: NaiveDate) -> String {
    format!("{}-Q{}", day.year(), day.month0() / 3 + 1)
}

/// Local midnight starting `day` in `zone` (DST gaps: the first instant after the gap).
fn midnight(zone: Tz, day: NaiveDate) -> DateTime<Utc> {
    resolve_local(zone, day.and_time(NaiveTime::MIN))
}

/// A pair of local dates in words: "3 Mar – 9 Mar 2026", or with both years when they differ.
fn dates_label(first: NaiveDate, last: NaiveDate) -> String {
    if first == last {
        first.format("%-d %b %Y").to_string()
    } else if first.year() == last.year() {
        format!("{} – {}", first.format("%-d %b"), last.format("%-d %b %Y"))
    } else {
        format!(
            "{} – {}",
            first.format("%-d %b %Y"),
            last.format("%-d %b %Y")
        )
    }
}

/// Checks the filters and resolves the range in `viewer_zone` (team and service ids are checked
/// to be numbers here; [`filter_bar`] also checks that they exist). Errors are (field, message).
pub(crate) fn resolve_filters(
    q: &InsightsQuery,
    viewer_zone: Tz,
    now: DateTime<Utc>,
) -> Result<Filters, Vec<(&'static str, String)>> {
    let mut errors: Vec<(&'static str, String)> = Vec::new();
    let today = now.with_timezone(&viewer_zone).date_naive();
    let range = match value(&q.range) {
        "" => "30d",
        r => r,
    };
    let mut pairs: Vec<(&str, String)> = vec![("range", range.to_owned())];
    let mut resolved: Option<(DateTime<Utc>, DateTime<Utc>, String)> = None;
    match range {
        "7d" | "30d" | "90d" => {
            let days: i64 = range.trim_end_matches('d').parse().unwrap_or(30);
            resolved = Some((
                now - TimeDelta::days(days),
                now,
                format!("Last {days} days"),
            ));
        }
        "quarter" => {
            let raw = value(&q.quarter);
            let parsed = if raw.is_empty() {
                parse_quarter(&quarter_of(today))
            } else {
                parse_quarter(raw)
            };
            match parsed.and_then(|(y, n)| {
                let first = NaiveDate::from_ymd_opt(y, (n - 1) * 3 + 1, 1)?;
                Some((y, n, first, first.checked_add_months(Months::new(3))?))
            }) {
                Some((y, n, first, next)) => {
                    pairs.push(("quarter", format!("{y}-Q{n}")));
                    resolved = Some((
                        midnight(viewer_zone, first),
                        midnight(viewer_zone, next),
                        format!("{y} Q{n}"),
                    ));
                }
                None => errors.push((
                    "quarter",
                    "Give a quarter as YYYY-Qn, e.g. 2026-Q3".to_owned(),
                )),
            }
        }
        "custom" => {
            let from = value(&q.from);
            let to = value(&q.to);
            let first = if from.is_empty() {
                errors.push(("from", "Give the first day of the range".to_owned()));
                None
            } else {
                let d = parse_date(from);
                if d.is_none() {
                    errors.push(("from", "Give a date as YYYY-MM-DD".to_owned()));
                }
                d
            };
            let last = if to.is_empty() {
                errors.push(("to", "Give the last day of the range".to_owned()));
                None
            } else {
                let d = parse_date(to);
                if d.is_none() {
                    errors.push(("to", "Give a date as YYYY-MM-DD".to_owned()));
                }
                d
            };
            if let (Some(first), Some(last)) = (first, last) {
                if first > last {
                    errors.push((
                        "to",
                        "The last day must not be before the first day".to_owned(),
                    ));
                } else if (last - first).num_days() + 1 > MAX_RANGE_DAYS {
                    errors.push((
                        "to",
                        "A range may cover at most three years; choose a shorter one".to_owned(),
                    ));
                } else if let Some(next) = last.succ_opt() {
                    pairs.push(("from", first.to_string()));
                    pairs.push(("to", last.to_string()));
                    resolved = Some((
                        midnight(viewer_zone, first),
                        midnight(viewer_zone, next),
                        dates_label(first, last),
                    ));
                }
            }
        }
        _ => errors.push((
            "range",
            "Choose last 7, 30 or 90 days, a quarter, or custom dates".to_owned(),
        )),
    }
    let id = |raw: &str, field: &'static str, what: &str, errors: &mut Vec<_>| {
        if raw.is_empty() || raw == "all" {
            return None;
        }
        match raw.parse::<i64>().ok().filter(|n| *n > 0) {
            Some(n) => Some(n),
            None => {
                errors.push((field, format!("Choose a {what} from the list")));
                None
            }
        }
    };
    let team_id = id(value(&q.team), "team", "team", &mut errors);
    let service_id = id(value(&q.service), "service", "service", &mut errors);
    let severity = match value(&q.severity) {
        "" | "all" => None,
        raw => match raw.parse::<Severity>() {
            Ok(s) => Some(s),
            Err(_) => {
                errors.push(("severity", "Choose SEV1, SEV2, SEV3 or SEV4".to_owned()));
                None
            }
        },
    };
    if let Some(t) = team_id {
        pairs.push(("team", t.to_string()));
    }
    if let Some(s) = service_id {
        pairs.push(("service", s.to_string()));
    }
    if let Some(s) = severity {
        pairs.push(("severity", s.as_str().to_owned()));
    }
    let Some((from, to, label)) = resolved.filter(|_| errors.is_empty()) else {
        return Err(errors);
    };
    let first_day = from.with_timezone(&viewer_zone).date_naive();
    let last_day = (to - TimeDelta::microseconds(1))
        .with_timezone(&viewer_zone)
        .date_naive()
        .max(first_day);
    let bucket = if (last_day - first_day).num_days() < 31 {
        Bucket::Day
    } else {
        Bucket::Week
    };
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in &pairs {
        ser.append_pair(k, v);
    }
    Ok(Filters {
        scope: Scope {
            from,
            to,
            team_id,
            service_id,
            severity,
        },
        zone: viewer_zone,
        label,
        bucket,
        query_string: ser.finish(),
        first_day,
        last_day,
    })
}

/// What the filter bar partial (`templates/insights/filters.html`) shows: the values as typed,
/// the messages, the choices, and the tab links. A page including the partial names its field
/// `bar`.
pub(crate) struct FilterBar {
    /// The action of the form: `/insights` or `/insights/oncall`.
    pub action: &'static str,
    pub range: String,
    pub quarter: String,
    pub from: String,
    pub to: String,
    pub team: String,
    pub service: String,
    pub severity: String,
    pub errors: FieldErrors,
    pub teams: Vec<(i64, String)>,
    pub services: Vec<(i64, String)>,
    pub quarters: Vec<String>,
    pub severities: &'static [Severity],
    /// The query string for the tab links (the canonical one when valid, else as typed).
    pub query_string: String,
    /// The range in words, when valid.
    pub label: String,
}

impl FilterBar {
    /// Whether the filters were refused.
    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }
}

/// Parses the filters for a page at `action`, loads the teams and services for the selects,
/// and checks that a chosen team or service exists. Returns the bar and, when every value is
/// good, the resolved filters (else the page should answer 400 with the bar's messages).
pub(crate) async fn filter_bar(
    state: &AppState,
    action: &'static str,
    q: &InsightsQuery,
    zone: Tz,
    now: DateTime<Utc>,
) -> Result<(FilterBar, Option<Filters>), AppError> {
    let teams: Vec<(i64, String)> = state
        .store
        .teams(1000, None)
        .await?
        .items
        .into_iter()
        .map(|t| (t.team.id, t.team.name.to_string()))
        .collect();
    let services: Vec<(i64, String)> = state
        .store
        .services()
        .await?
        .into_iter()
        .map(|s| (s.id, s.name))
        .collect();
    let mut errors = FieldErrors::default();
    let filters = match resolve_filters(q, zone, now) {
        Ok(f) => {
            if let Some(t) = f.scope.team_id.filter(|t| !teams.iter().any(|x| x.0 == *t)) {
                errors.add(
                    "team",
                    format!("There is no team {t}; choose one from the list"),
                );
            }
            if let Some(s) = f
                .scope
                .service_id
                .filter(|s| !services.iter().any(|x| x.0 == *s))
            {
                errors.add(
                    "service",
                    format!("There is no service {s}; choose one from the list"),
                );
            }
            Some(f).filter(|_| errors.is_empty())
        }
        Err(list) => {
            for (field, message) in list {
                errors.add(field, message);
            }
            None
        }
    };
    let today = now.with_timezone(&zone).date_naive();
    let mut quarters: Vec<String> = (0..12)
        .filter_map(|k| today.checked_sub_months(Months::new(3 * k)))
        .map(quarter_of)
        .collect();
    let quarter = match value(&q.quarter) {
        "" => quarter_of(today),
        raw => raw.to_owned(),
    };
    if !quarters.contains(&quarter) {
        quarters.insert(0, quarter.clone());
    }
    let query_string = match &filters {
        Some(f) => f.query_string.clone(),
        None => serde_urlencoded::to_string(
            [
                ("range", value(&q.range)),
                ("quarter", value(&q.quarter)),
                ("from", value(&q.from)),
                ("to", value(&q.to)),
                ("team", value(&q.team)),
                ("service", value(&q.service)),
                ("severity", value(&q.severity)),
            ]
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .collect::<Vec<_>>(),
        )
        .unwrap_or_default(),
    };
    let bar = FilterBar {
        action,
        range: match value(&q.range) {
            "" => "30d".to_owned(),
            r => r.to_owned(),
        },
        quarter,
        from: value(&q.from).to_owned(),
        to: value(&q.to).to_owned(),
        team: value(&q.team).to_owned(),
        service: value(&q.service).to_owned(),
        severity: value(&q.severity).to_owned(),
        errors,
        teams,
        services,
        quarters,
        severities: Severity::ALL,
        query_string,
        label: filters
            .as_ref()
            .map(|f| f.label.clone())
            .unwrap_or_default(),
    };
    Ok((bar, filters))
}

/// The viewer's zone.
pub(crate) fn viewer_zone(auth: &crate::auth::CurrentUser) -> Tz {
    auth.user.time_zone.tz()
}

impl Filters {
    /// The local calendar of the report.
    pub(crate) fn window(&self) -> Window {
        Window {
            zone: self.zone,
            bucket: self.bucket,
            first_day: self.first_day,
            last_day: self.last_day,
        }
    }
}

// ---------------------------------------------------------------- formatting

/// Seconds as minutes with one decimal, for CSV (empty when there is no value).
fn csv_minutes(secs: Option<i64>) -> String {
    secs.map(|s| format!("{:.1}", s as f64 / 60.0))
        .unwrap_or_default()
}

/// Seconds in words for the page: "45 s", "6 min", "2 h 05 min", "3 d 4 h"; a dash for none.
pub(crate) fn human(secs: Option<i64>) -> String {
    let Some(s) = secs else {
        return "—".to_owned();
    };
    if s < 60 {
        format!("{s} s")
    } else if s < 3600 {
        let m = s as f64 / 60.0;
        if m < 10.0 {
            format!("{m:.1} min")
        } else {
            format!("{} min", s / 60)
        }
    } else if s < 86_400 {
        format!("{} h {:02} min", s / 3600, (s % 3600) / 60)
    } else {
        format!("{} d {} h", s / 86_400, (s % 86_400) / 3600)
    }
}

fn pct(a: &heliograph_store::insights::Attainment) -> String {
    a.percent().map(|p| format!("{p:.1}")).unwrap_or_default()
}

/// An attainment in words: "3 of 4 (75.0%)", or a dash.
fn attainment_words(a: &heliograph_store::insights::Attainment) -> String {
    match a.percent() {
        Some(p) => format!("{} of {} ({p:.1}%)", a.met, a.total()),
        None => "—".to_owned(),
    }
}

/// The unit a chart of durations up to `max_secs` reads best in, and seconds per unit.
fn unit_for(max_secs: i64) -> (&'static str, f64) {
    if max_secs > 3 * 3600 {
        ("hours", 3600.0)
    } else {
        ("minutes", 60.0)
    }
}

fn capitalized(word: &str) -> String {
    let mut c = word.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// "day" or "week", for sentences.
fn bucket_noun(bucket: Bucket) -> &'static str {
    match bucket {
        Bucket::Day => "day",
        Bucket::Week => "week",
    }
}

/// The label of a bucket on charts and in tables.
fn bucket_label(bucket: Bucket, start: NaiveDate) -> String {
    match bucket {
        Bucket::Day => start.format("%-d %b").to_string(),
        Bucket::Week => format!("wk {}", start.format("%-d %b")),
    }
}

// ---------------------------------------------------------------- CSV

/// A CSV document built row by row (RFC 4180 quoting; text that a spreadsheet would run as a
/// formula is prefixed with an apostrophe).
#[derive(Default)]
struct Csv(String);

impl Csv {
    fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut first = true;
        for cell in cells {
            if !first {
                self.0.push(',');
            }
            first = false;
            let cell = cell.as_ref();
            let guarded;
            let cell = if cell.starts_with(['=', '+', '-', '@', '\t', '\r'])
                && cell.parse::<f64>().is_err()
            {
                guarded = format!("'{cell}");
                guarded.as_str()
            } else {
                cell
            };
            if cell.contains([',', '"', '\n', '\r']) || cell.starts_with(' ') || cell.ends_with(' ')
            {
                self.0.push('"');
                self.0.push_str(&cell.replace('"', "\"\""));
                self.0.push('"');
            } else {
                self.0.push_str(cell);
            }
        }
        self.0.push_str("\r\n");
    }

    fn response(self, name: &str) -> Response {
        (
            [
                (
                    axum::http::header::CONTENT_TYPE,
                    "text/csv; charset=utf-8".to_owned(),
                ),
                (
                    axum::http::header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"heliograph-{name}\""),
                ),
            ],
            self.0,
        )
            .into_response()
    }
}

fn utc(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn severity_csv(report: &Report) -> Csv {
    let mut csv = Csv::default();
    csv.row(["bucket_start", "SEV1", "SEV2", "SEV3", "SEV4", "total"]);
    for b in &report.buckets {
        let mut row = vec![b.start.to_string()];
        row.extend(b.counts.iter().map(u64::to_string));
        row.push(b.total().to_string());
        csv.row(row);
    }
    csv
}

fn response_times_csv(report: &Report) -> Csv {
    let mut csv = Csv::default();
    csv.row([
        "bucket_start",
        "incidents",
        "acknowledged",
        "mtta_median_minutes",
        "mtta_p90_minutes",
        "resolved",
        "mttr_median_minutes",
        "mttr_p90_minutes",
    ]);
    for b in &report.buckets {
        csv.row([
            b.start.to_string(),
            b.total().to_string(),
            b.mtta.n.to_string(),
            csv_minutes(b.mtta.median),
            csv_minutes(b.mtta.p90),
            b.mttr.n.to_string(),
            csv_minutes(b.mttr.median),
            csv_minutes(b.mttr.p90),
        ]);
    }
    csv
}

fn services_csv(report: &Report) -> Csv {
    let mut csv = Csv::default();
    let mut head: Vec<String> = [
        "service_id",
        "service",
        "incidents",
        "SEV1",
        "SEV2",
        "SEV3",
        "SEV4",
        "mtta_median_minutes",
        "mtta_p90_minutes",
        "mttr_median_minutes",
        "mttr_p90_minutes",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for s in Severity::ALL {
        for kind in ["ack", "resolve"] {
            for part in ["met", "missed", "attainment_pct"] {
                head.push(format!("{}_{kind}_{part}", s.as_str().to_lowercase()));
            }
        }
    }
    csv.row(head);
    for s in &report.services {
        let mut row = vec![
            s.service_id.to_string(),
            s.name.clone(),
            s.incidents.to_string(),
        ];
        row.extend(s.counts.iter().map(u64::to_string));
        row.extend([
            csv_minutes(s.mtta.median),
            csv_minutes(s.mtta.p90),
            csv_minutes(s.mttr.median),
            csv_minutes(s.mttr.p90),
        ]);
        for (ack, res) in &s.attainment {
            for a in [ack, res] {
                row.extend([a.met.to_string(), a.missed.to_string(), pct(a)]);
            }
        }
        csv.row(row);
    }
    csv
}

fn breaches_csv(report: &Report) -> Csv {
    let mut csv = Csv::default();
    csv.row([
        "incident",
        "service",
        "severity",
        "target",
        "target_minutes",
        "took_minutes",
        "triggered_at",
    ]);
    for b in &report.breaches {
        csv.row([
            b.number.to_string(),
            b.service.clone(),
            b.severity.as_str().to_owned(),
            b.kind.to_owned(),
            b.target_minutes.to_string(),
            csv_minutes(b.took),
            utc(&b.triggered_at),
        ]);
    }
    csv
}

fn postmortems_csv(list: &[PostmortemFact], now: DateTime<Utc>) -> Csv {
    let mut csv = Csv::default();
    csv.row([
        "incident",
        "title",
        "severity",
        "resolved_at",
        "due_at",
        "postmortem_id",
        "status",
        "published_at",
        "outcome",
    ]);
    for p in list {
        csv.row([
            p.number.to_string(),
            p.title.clone(),
            p.severity.clone(),
            utc(&p.resolved_at),
            utc(&p.due()),
            p.postmortem_id.map(|i| i.to_string()).unwrap_or_default(),
            p.status.clone().unwrap_or_else(|| "none".into()),
            p.published_at.as_ref().map(utc).unwrap_or_default(),
            p.outcome(now).as_str().to_owned(),
        ]);
    }
    csv
}

fn action_items_csv(list: &[ActionItemFact], today: NaiveDate) -> Csv {
    let mut csv = Csv::default();
    csv.row([
        "id",
        "title",
        "incident",
        "postmortem_id",
        "owner",
        "status",
        "priority",
        "due_date",
        "overdue",
    ]);
    for a in list {
        csv.row([
            a.id.to_string(),
            a.title.clone(),
            a.number.to_string(),
            a.postmortem_id.to_string(),
            a.owner_name.clone().unwrap_or_default(),
            a.status.clone(),
            a.priority.clone(),
            a.due_date.clone().unwrap_or_default(),
            if a.is_overdue(today) { "yes" } else { "no" }.to_owned(),
        ]);
    }
    csv
}

// ---------------------------------------------------------------- the page

/// One row of a bucket table.
struct BucketView {
    label: String,
    start: String,
    counts: [u64; 4],
    total: u64,
    mtta: Stat,
    mttr: Stat,
}

/// One row of the services table.
struct ServiceView {
    id: i64,
    name: String,
    incidents: u64,
    counts: [u64; 4],
    mtta_median: String,
    mtta_p90: String,
    mttr_median: String,
    mttr_p90: String,
    /// (severity, acknowledge words, resolve words) for severities with a target.
    targets: Vec<(&'static str, String, String)>,
    missed: u64,
}

struct PostmortemView {
    number: i64,
    title: String,
    severity: String,
    due: String,
    postmortem_id: Option<i64>,
    status: String,
}

struct ItemView {
    title: String,
    number: i64,
    postmortem_id: i64,
    owner: String,
    due: String,
    status: String,
}

#[derive(Template)]
#[template(path = "insights/index.html")]
struct InsightsPage {
    shell: Shell,
    bar: FilterBar,
    /// Empty when the filters were refused.
    ready: bool,
    zone: String,
    bucket_word: &'static str,
    bucket_noun: &'static str,
    total: u64,
    counts: [u64; 4],
    mtta: Stat,
    mttr: Stat,
    mtta_median: String,
    mtta_p90: String,
    mttr_median: String,
    mttr_p90: String,
    buckets: Vec<BucketView>,
    severity_chart: String,
    mtta_chart: String,
    mttr_chart: String,
    slow_chart: String,
    services: Vec<ServiceView>,
    breaches_total: usize,
    breaches: Vec<(i64, String)>,
    pm_needed: usize,
    pm_on_time: usize,
    pm_late: usize,
    pm_overdue: usize,
    pm_pending: usize,
    pm_list: Vec<PostmortemView>,
    items_open: i64,
    items_overdue: i64,
    item_list: Vec<ItemView>,
    csv_query: String,
}

impl BucketView {
    fn time(&self, which: &str) -> String {
        human(match which {
            "mtta_median" => self.mtta.median,
            "mtta_p90" => self.mtta.p90,
            "mttr_median" => self.mttr.median,
            _ => self.mttr.p90,
        })
    }
}

/// Colours of the severities on charts (SEV1..SEV4), distinguishable in greyscale too.
const SEV_COLORS: [&str; 4] = ["#991b1b", "#ea580c", "#ca8a04", "#64748b"];

async fn report(
    state: &AppState,
    filters: &Filters,
    now: DateTime<Utc>,
) -> Result<(Report, Vec<Service>), AppError> {
    let services = state.store.services().await?;
    let facts = state.store.insight_incidents(&filters.scope).await?;
    let report = heliograph_store::insights::compute(
        &facts,
        &services,
        &filters.scope,
        &filters.window(),
        now,
    );
    Ok((report, services))
}

/// `GET /insights`: incident metrics for the filters.
pub async fn get(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    shell: Shell,
    query: Result<Query<InsightsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, AppError> {
    let q = query.map(|q| q.0).unwrap_or_default();
    let zone = viewer_zone(&auth);
    let now = state.store.now();
    let (bar, filters) = filter_bar(&state, "/insights", &q, zone, now).await?;
    let Some(filters) = filters else {
        let page = empty_page(shell, bar, zone);
        return Ok(render_with_status(StatusCode::BAD_REQUEST, &page));
    };
    // The reads are independent: run them side by side on the pool.
    let today = now.with_timezone(&zone).date_naive();
    let ((report, _), postmortems, (items_open, items_overdue), overdue_items) = futures::try_join!(
        report(&state, &filters, now),
        async {
            Ok::<_, AppError>(
                state
                    .store
                    .insight_postmortems_packed(&filters.scope)
                    .await?,
            )
        },
        async {
            Ok::<_, AppError>(
                state
                    .store
                    .insight_action_item_counts(&filters.scope, today)
                    .await?,
            )
        },
        async {
            Ok::<_, AppError>(
                state
                    .store
                    .insight_overdue_action_items(&filters.scope, today, 20)
                    .await?,
            )
        },
    )?;

    let labels: Vec<String> = report
        .buckets
        .iter()
        .map(|b| bucket_label(filters.bucket, b.start))
        .collect();
    let (bucket_word, x_title) = match filters.bucket {
        Bucket::Day => ("Day", format!("Day ({})", zone.name())),
        Bucket::Week => ("Week from", format!("Week from Monday ({})", zone.name())),
    };
    let severity_chart = charts::stacked_bars(
        "Incidents by severity",
        &format!(
            "{} incidents in {}, stacked by severity per {}",
            report.total,
            filters.label,
            bucket_noun(filters.bucket)
        ),
        &labels,
        &x_title,
        "Incidents",
        &Severity::ALL
            .iter()
            .enumerate()
            .map(|(k, s)| charts::Series {
                name: s.as_str().to_owned(),
                color: SEV_COLORS[k],
                values: report
                    .buckets
                    .iter()
                    .map(|b| Some(b.counts[k] as f64))
                    .collect(),
            })
            .collect::<Vec<_>>(),
    );
    let trend = |title: &str, pick: fn(&heliograph_store::insights::BucketRow) -> Stat| {
        let most = report
            .buckets
            .iter()
            .filter_map(|b| pick(b).p90)
            .max()
            .unwrap_or(0);
        let (unit, per) = unit_for(most);
        let scaled = |s: Option<i64>| s.map(|s| s as f64 / per);
        charts::lines(
            title,
            &format!(
                "{title} per {}, median and p90, in {unit}",
                bucket_noun(filters.bucket)
            ),
            &labels,
            &x_title,
            &capitalized(unit),
            &[
                charts::Series {
                    name: "median".into(),
                    color: "#2563eb",
                    values: report
                        .buckets
                        .iter()
                        .map(|b| scaled(pick(b).median))
                        .collect(),
                },
                charts::Series {
                    name: "p90".into(),
                    color: "#db2777",
                    values: report.buckets.iter().map(|b| scaled(pick(b).p90)).collect(),
                },
            ],
        )
    };
    let mtta_chart = trend("Time to acknowledge (MTTA)", |b| b.mtta);
    let mttr_chart = trend("Time to resolve (MTTR)", |b| b.mttr);
    let (unit, per) = unit_for(
        report
            .services
            .first()
            .and_then(|s| s.mttr.median)
            .unwrap_or(0),
    );
    let slow: Vec<(String, f64)> = report
        .services
        .iter()
        .filter_map(|s| Some((s.name.clone(), s.mttr.median? as f64 / per)))
        .take(10)
        .collect();
    let slow_chart = if slow.is_empty() {
        String::new()
    } else {
        charts::hbars(
            "Slowest services",
            &format!("The ten services with the longest median time to resolve, in {unit}"),
            &format!("Median time to resolve ({unit})"),
            &slow,
        )
    };
    let services_view = report
        .services
        .iter()
        .map(|s| ServiceView {
            id: s.service_id,
            name: s.name.clone(),
            incidents: s.incidents,
            counts: s.counts,
            mtta_median: human(s.mtta.median),
            mtta_p90: human(s.mtta.p90),
            mttr_median: human(s.mttr.median),
            mttr_p90: human(s.mttr.p90),
            targets: Severity::ALL
                .iter()
                .enumerate()
                .filter(|(k, _)| s.has_target[*k])
                .map(|(k, sev)| {
                    (
                        sev.as_str(),
                        attainment_words(&s.attainment[k].0),
                        attainment_words(&s.attainment[k].1),
                    )
                })
                .collect(),
            missed: s.attainment.iter().map(|(a, r)| a.missed + r.missed).sum(),
        })
        .collect();
    let breaches = report
        .breaches
        .iter()
        .take(20)
        .map(|b| {
            (
                b.number,
                format!(
                    "{} · {} · {}: {} (target {} min), triggered {}",
                    b.service,
                    b.severity,
                    if b.kind == "acknowledge" {
                        "acknowledge"
                    } else {
                        "resolve"
                    },
                    match b.took {
                        Some(t) => format!("took {}", human(Some(t))),
                        None => format!(
                            "not yet {}d",
                            if b.kind == "acknowledge" {
                                "acknowledge"
                            } else {
                                "resolve"
                            }
                        ),
                    },
                    b.target_minutes,
                    shell.time(&b.triggered_at)
                ),
            )
        })
        .collect();
    let outcomes: Vec<PostmortemOutcome> = postmortems.iter().map(|p| p.outcome(now)).collect();
    let count = |o: PostmortemOutcome| outcomes.iter().filter(|x| **x == o).count();
    let shown: Vec<(&PostmortemFact, &PostmortemOutcome)> = postmortems
        .iter()
        .zip(&outcomes)
        .filter(|(_, o)| matches!(o, PostmortemOutcome::Overdue | PostmortemOutcome::Pending))
        .take(20)
        .collect();
    let titles = state
        .store
        .incident_titles(&shown.iter().map(|(p, _)| p.number).collect::<Vec<_>>())
        .await?;
    let pm_list = shown
        .into_iter()
        .map(|(p, o)| PostmortemView {
            number: p.number,
            title: titles.get(&p.number).cloned().unwrap_or_default(),
            severity: p.severity.clone(),
            due: shell.time(&p.due()),
            postmortem_id: p.postmortem_id,
            status: format!(
                "{}{}",
                p.status.clone().unwrap_or_else(|| "not started".into()),
                if *o == PostmortemOutcome::Overdue {
                    " · overdue"
                } else {
                    ""
                }
            ),
        })
        .collect();
    let item_list = overdue_items
        .iter()
        .map(|a| ItemView {
            title: a.title.clone(),
            number: a.number,
            postmortem_id: a.postmortem_id,
            owner: a.owner_name.clone().unwrap_or_else(|| "nobody".into()),
            due: a.due_date.clone().unwrap_or_default(),
            status: a.status.replace('_', " "),
        })
        .collect();
    let page = InsightsPage {
        ready: true,
        zone: zone.name().to_owned(),
        bucket_word,
        bucket_noun: bucket_noun(filters.bucket),
        total: report.total,
        counts: report.counts,
        mtta: report.mtta,
        mttr: report.mttr,
        mtta_median: human(report.mtta.median),
        mtta_p90: human(report.mtta.p90),
        mttr_median: human(report.mttr.median),
        mttr_p90: human(report.mttr.p90),
        buckets: report
            .buckets
            .iter()
            .zip(&labels)
            .map(|(b, l)| BucketView {
                label: l.clone(),
                start: b.start.to_string(),
                counts: b.counts,
                total: b.total(),
                mtta: b.mtta,
                mttr: b.mttr,
            })
            .collect(),
        severity_chart,
        mtta_chart,
        mttr_chart,
        slow_chart,
        services: services_view,
        breaches_total: report.breaches.len(),
        breaches,
        pm_needed: postmortems.len(),
        pm_on_time: count(PostmortemOutcome::OnTime),
        pm_late: count(PostmortemOutcome::Late),
        pm_overdue: count(PostmortemOutcome::Overdue),
        pm_pending: count(PostmortemOutcome::Pending),
        pm_list,
        items_open,
        items_overdue,
        item_list,
        csv_query: filters.query_string.clone(),
        shell,
        bar,
    };
    Ok(render_with_status(StatusCode::OK, &page))
}

fn empty_page(shell: Shell, bar: FilterBar, zone: Tz) -> InsightsPage {
    InsightsPage {
        shell,
        bar,
        ready: false,
        zone: zone.name().to_owned(),
        bucket_word: "Day",
        bucket_noun: "day",
        total: 0,
        counts: [0; 4],
        mtta: Stat::default(),
        mttr: Stat::default(),
        mtta_median: String::new(),
        mtta_p90: String::new(),
        mttr_median: String::new(),
        mttr_p90: String::new(),
        buckets: Vec::new(),
        severity_chart: String::new(),
        mtta_chart: String::new(),
        mttr_chart: String::new(),
        slow_chart: String::new(),
        services: Vec::new(),
        breaches_total: 0,
        breaches: Vec::new(),
        pm_needed: 0,
        pm_on_time: 0,
        pm_late: 0,
        pm_overdue: 0,
        pm_pending: 0,
        pm_list: Vec::new(),
        items_open: 0,
        items_overdue: 0,
        item_list: Vec::new(),
        csv_query: String::new(),
    }
}

/// `GET /insights/{chart}.csv`: one chart's numbers for the same filters.
pub async fn csv(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    Path(file): Path<String>,
    query: Result<Query<InsightsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, AppError> {
    const FILES: [&str; 6] = [
        "severity.csv",
        "response-times.csv",
        "services.csv",
        "breaches.csv",
        "postmortems.csv",
        "action-items.csv",
    ];
    if !FILES.contains(&file.as_str()) {
        return Err(AppError::NotFound);
    }
    let q = query.map(|q| q.0).unwrap_or_default();
    let zone = viewer_zone(&auth);
    let now = state.store.now();
    let (bar, filters) = filter_bar(&state, "/insights", &q, zone, now).await?;
    let Some(filters) = filters else {
        let mut text = String::from("The filters could not be used:\n");
        for field in [
            "range", "quarter", "from", "to", "team", "service", "severity",
        ] {
            if let Some(m) = bar.errors.get(field) {
                text.push_str(&format!("{field}: {m}\n"));
            }
        }
        return Ok((
            StatusCode::BAD_REQUEST,
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; charset=utf-8",
            )],
            text,
        )
            .into_response());
    };
    let csv = match file.as_str() {
        "postmortems.csv" => postmortems_csv(
            &state
                .store
                .insight_postmortems(&filters.scope, true)
                .await?,
            now,
        ),
        "action-items.csv" => action_items_csv(
            &state.store.insight_action_items(&filters.scope).await?,
            now.with_timezone(&zone).date_naive(),
        ),
        other => {
            let (report, _) = report(&state, &filters, now).await?;
            match other {
                "severity.csv" => severity_csv(&report),
                "response-times.csv" => response_times_csv(&report),
                "services.csv" => services_csv(&report),
                _ => breaches_csv(&report),
            }
        }
    };
    Ok(csv.response(&file))
}

// ---------------------------------------------------------------- per service

/// The "Last 90 days" section of a service's page (issue 9, item 4).
pub(crate) struct ServiceInsights {
    pub service_id: i64,
    pub total: u64,
    pub counts: [u64; 4],
    pub acknowledged: usize,
    pub resolved: usize,
    pub mtta_median: String,
    pub mtta_p90: String,
    pub mttr_median: String,
    pub mttr_p90: String,
    /// (severity, acknowledge attainment, resolve attainment) for severities with a target.
    pub targets: Vec<(&'static str, String, String)>,
    pub alerts: i64,
    pub events: i64,
    /// (integration, alerts, events), noisiest first.
    pub integrations: Vec<(String, i64, i64)>,
    /// (dedup key, alerts, events), noisiest first.
    pub dedup_keys: Vec<(String, i64, i64)>,
}

/// How far back the service page's section looks.
pub(crate) const SERVICE_DAYS: i64 = 90;

/// Figures of `service` over the last 90 days: incidents by severity, MTTA/MTTR, attainment,
/// and alert volume with the noisiest integrations and dedup keys.
pub(crate) async fn service_insights(
    state: &AppState,
    service: &Service,
    zone: Tz,
) -> Result<ServiceInsights, AppError> {
    let now = state.store.now();
    let scope = Scope {
        from: now - TimeDelta::days(SERVICE_DAYS),
        to: now,
        team_id: None,
        service_id: Some(service.id),
        severity: None,
    };
    let facts = state.store.insight_incidents(&scope).await?;
    let window = Window {
        zone,
        bucket: Bucket::Week,
        first_day: scope.from.with_timezone(&zone).date_naive(),
        last_day: now.with_timezone(&zone).date_naive(),
    };
    let report = heliograph_store::insights::compute(
        &facts,
        std::slice::from_ref(service),
        &scope,
        &window,
        now,
    );
    let figures = report.services.first();
    let volume = state
        .store
        .service_alert_volume(service.id, scope.from)
        .await?;
    Ok(ServiceInsights {
        service_id: service.id,
        total: report.total,
        counts: report.counts,
        acknowledged: report.mtta.n,
        resolved: report.mttr.n,
        mtta_median: human(report.mtta.median),
        mtta_p90: human(report.mtta.p90),
        mttr_median: human(report.mttr.median),
        mttr_p90: human(report.mttr.p90),
        targets: Severity::ALL
            .iter()
            .enumerate()
            .filter(|(_, s)| service.response_targets.get(**s).is_some())
            .map(|(k, s)| match figures {
                Some(f) => (
                    s.as_str(),
                    attainment_words(&f.attainment[k].0),
                    attainment_words(&f.attainment[k].1),
                ),
                None => (s.as_str(), "—".to_owned(), "—".to_owned()),
            })
            .collect(),
        alerts: volume.alerts,
        events: volume.events,
        integrations: volume.integrations,
        dedup_keys: volume.dedup_keys,
    })
}
