//! Insights (issue 9): incident metrics for leadership over a date range, with filters shared
//! by the incidents page (`/insights`) and the on-call load page (`/insights/oncall`).
//!
//! The filters are parsed here once: a range (last 7/30/90 days, a calendar quarter, or custom
//! local dates) in the viewer's zone, plus optional team, service and severity. Bad values are
//! messages beside the field and a 400, never an extractor rejection or a 500.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Datelike, Months, NaiveDate, NaiveTime, TimeDelta, Utc};
use chrono_tz::Tz;
use heliograph_domain::Severity;
use heliograph_domain::working_hours::resolve_local;
use heliograph_store::insights::{Bucket, Scope};
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
        format!("{} – {}", first.format("%-d %b %Y"), last.format("%-d %b %Y"))
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
                errors.add("team", format!("There is no team {t}; choose one from the list"));
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
        None => serde_urlencoded::to_string([
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
        .collect::<Vec<_>>())
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
        label: filters.as_ref().map(|f| f.label.clone()).unwrap_or_default(),
    };
    Ok((bar, filters))
}

/// The viewer's zone.
pub(crate) fn viewer_zone(auth: &crate::auth::CurrentUser) -> Tz {
    auth.user.time_zone.tz()
}

#[derive(Template)]
#[template(path = "insights/index.html")]
struct InsightsPage {
    shell: Shell,
    bar: FilterBar,
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
    let status = if filters.is_some() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok(render_with_status(status, &InsightsPage { shell, bar }))
}
