//! `/insights/oncall` (issue 9, item 3): who carries the pager. Per person for the range: hours
//! on call from the final schedules, pages by class of their own local time (working,
//! evening/weekend, sleep), incidents commanded; per schedule, how hours and pages spread
//! across its participants, with anyone far above the schedule's mean flagged. The same
//! figures download as CSV with the same query string.

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use heliograph_store::oncall_load::{
    ClassCounts, OVERLOAD_FACTOR, OncallLoad, ScheduleLoad, Spread,
};

use super::{FilterBar, Filters, InsightsQuery, filter_bar, viewer_zone};
use crate::auth::{Auth, Viewer};
use crate::error::render_with_status;
use crate::views::Shell;
use crate::{AppError, AppState};

const ACTION: &str = "/insights/oncall";

/// Hours with two decimals (seconds are whole, so this is exact to 36 s).
fn hours(seconds: i64) -> String {
    format!("{:.2}", seconds as f64 / 3600.0)
}

/// `part` of `whole` in percent with one decimal; empty when the whole is 0.
fn percent(part: i64, whole: i64) -> String {
    if whole <= 0 {
        String::new()
    } else {
        format!("{:.1}", part as f64 * 100.0 / whole as f64)
    }
}

/// One row of the people table.
struct PersonRow {
    name: String,
    zone: String,
    hours: String,
    pages: ClassCounts,
    commanded: i64,
}

/// One stacked bar of the chart.
struct BarRow {
    label: String,
    label_y: f64,
    y: f64,
    segments: Vec<Segment>,
    total: i64,
    total_x: f64,
}

struct Segment {
    class: &'static str,
    x: f64,
    w: f64,
    title: String,
}

/// The chart of pages per person by class, drawn on the server.
struct Chart {
    width: u32,
    height: u32,
    label_width: u32,
    rows: Vec<BarRow>,
    title: String,
    /// Gridlines: (x, value).
    ticks: Vec<(f64, i64)>,
    axis_y: f64,
}

const ROW_HEIGHT: f64 = 26.0;
const BAR_HEIGHT: f64 = 18.0;
const LABEL_WIDTH: u32 = 170;
const PLOT_WIDTH: f64 = 460.0;

fn chart(people: &[PersonRow], label: &str) -> Option<Chart> {
    let rows: Vec<&PersonRow> = people.iter().filter(|p| p.pages.total() > 0).collect();
    if rows.is_empty() {
        return None;
    }
    let max = rows
        .iter()
        .map(|p| p.pages.total())
        .max()
        .unwrap_or(1)
        .max(1);
    let step = nice_step(max);
    let top = (max + step - 1) / step * step;
    let scale = PLOT_WIDTH / top as f64;
    let x0 = f64::from(LABEL_WIDTH);
    let bars = rows
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let y = 8.0 + i as f64 * ROW_HEIGHT;
            let mut x = x0;
            let mut segments = Vec::new();
            for (class, n, what) in [
                ("seg-working", p.pages.working, "working hours"),
                ("seg-evening", p.pages.evening, "evening/weekend"),
                ("seg-sleep", p.pages.sleep, "sleep hours"),
            ] {
                if n > 0 {
                    let w = n as f64 * scale;
                    segments.push(Segment {
                        class,
                        x,
                        w,
                        title: format!("{}: {n} {what}", p.name),
                    });
                    x += w;
                }
            }
            BarRow {
                label: truncate(&p.name, 22),
                label_y: y + BAR_HEIGHT - 5.0,
                y,
                segments,
                total: p.pages.total(),
                total_x: x + 4.0,
            }
        })
        .collect::<Vec<_>>();
    let axis_y = 8.0 + bars.len() as f64 * ROW_HEIGHT;
    let ticks = (0..=top / step)
        .map(|k| (x0 + (k * step) as f64 * scale, k * step))
        .collect();
    Some(Chart {
        width: LABEL_WIDTH + PLOT_WIDTH as u32 + 40,
        height: axis_y as u32 + 22,
        label_width: LABEL_WIDTH,
        rows: bars,
        title: format!(
            "Pages per person, {label}, stacked by working hours, evening/weekend and sleep hours"
        ),
        ticks,
        axis_y,
    })
}

/// A round gridline step giving at most about five lines up to `max`.
fn nice_step(max: i64) -> i64 {
    let mut step = 1;
    loop {
        for m in [1, 2, 5] {
            if max <= step * m * 5 {
                return step * m;
            }
        }
        step *= 10;
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

/// One participant row of a schedule's fairness table.
struct FairRow {
    name: String,
    hours: String,
    hours_share: String,
    pages: ClassCounts,
    sleep_share: String,
    overloaded: String,
}

struct FairView {
    name: String,
    team: String,
    total_hours: String,
    total_sleep: i64,
    hours_spread: String,
    sleep_spread: String,
    rows: Vec<FairRow>,
    any_overloaded: bool,
}

fn spread_text(s: Option<Spread>, unit: &str) -> String {
    match s {
        None => "—".to_owned(),
        Some(s) => {
            let mut text = format!(
                "min {:.1}, max {:.1}, mean {:.1} {unit}",
                s.min, s.max, s.mean
            );
            if let Some(r) = s.ratio() {
                text.push_str(&format!(", max/min {r:.2}"));
            }
            if let Some(cv) = s.cv {
                text.push_str(&format!(", coefficient of variation {cv:.2}"));
            }
            text
        }
    }
}

fn fairness_rows(s: &ScheduleLoad) -> Vec<FairRow> {
    let total = s.total_seconds();
    let sleep = s.total_sleep();
    s.participants
        .iter()
        .map(|p| FairRow {
            name: p.name.clone(),
            hours: hours(p.on_call_seconds),
            hours_share: percent(p.on_call_seconds, total),
            pages: p.pages,
            sleep_share: percent(p.pages.sleep, sleep),
            overloaded: s.overload(p).join(", "),
        })
        .collect()
}

struct View {
    people: Vec<PersonRow>,
    chart: Option<Chart>,
    schedules: Vec<FairView>,
    overload_factor: f64,
}

fn view(load: &OncallLoad, filters: &Filters, bar: &FilterBar) -> View {
    let people: Vec<PersonRow> = load
        .people
        .iter()
        .map(|p| PersonRow {
            name: p.name.clone(),
            zone: p.time_zone.clone(),
            hours: hours(p.on_call_seconds),
            pages: p.pages,
            commanded: p.commanded,
        })
        .collect();
    let chart = chart(&people, &filters.label);
    let schedules = load
        .schedules
        .iter()
        .map(|s| {
            let rows = fairness_rows(s);
            FairView {
                name: s.name.clone(),
                team: bar
                    .teams
                    .iter()
                    .find(|t| t.0 == s.team_id)
                    .map(|t| t.1.clone())
                    .unwrap_or_default(),
                total_hours: hours(s.total_seconds()),
                total_sleep: s.total_sleep(),
                hours_spread: spread_text(s.hours_spread(), "h"),
                sleep_spread: spread_text(s.sleep_spread(), "pages"),
                any_overloaded: rows.iter().any(|r| !r.overloaded.is_empty()),
                rows,
            }
        })
        .collect();
    View {
        people,
        chart,
        schedules,
        overload_factor: OVERLOAD_FACTOR,
    }
}

#[derive(Template)]
#[template(path = "insights/oncall.html")]
struct OncallPage {
    shell: Shell,
    bar: FilterBar,
    view: Option<View>,
}

/// Reads the query (a malformed one counts as empty, and is then refused by the checks).
fn query_of(query: Result<Query<InsightsQuery>, QueryRejection>) -> InsightsQuery {
    query.map(|q| q.0).unwrap_or_default()
}

/// `GET /insights/oncall`.
pub async fn get(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    shell: Shell,
    query: Result<Query<InsightsQuery>, QueryRejection>,
) -> Result<Response, AppError> {
    let q = query_of(query);
    let zone = viewer_zone(&auth);
    let (bar, filters) = filter_bar(&state, ACTION, &q, zone, state.store.now()).await?;
    let Some(filters) = filters else {
        return Ok(render_with_status(
            StatusCode::BAD_REQUEST,
            &OncallPage {
                shell,
                bar,
                view: None,
            },
        ));
    };
    let load = state.store.oncall_load(&filters.scope).await?;
    let view = view(&load, &filters, &bar);
    Ok(render_with_status(
        StatusCode::OK,
        &OncallPage {
            shell,
            bar,
            view: Some(view),
        },
    ))
}

/// The filters of a CSV download, or a 400 naming what was wrong.
async fn csv_filters(
    state: &AppState,
    auth: &Auth<Viewer>,
    q: &InsightsQuery,
) -> Result<Filters, AppError> {
    let (bar, filters) = filter_bar(state, ACTION, q, viewer_zone(auth), state.store.now()).await?;
    filters.ok_or_else(|| {
        let messages: Vec<String> = [
            "range", "quarter", "from", "to", "team", "service", "severity",
        ]
        .into_iter()
        .filter_map(|f| bar.errors.get(f).map(|m| format!("{f}: {m}")))
        .collect();
        AppError::BadRequest(messages.join("; "))
    })
}

/// A CSV field: quoted when it holds a comma, quote or line break; a leading `=`, `+`, `-` or
/// `@` in text is prefixed with `'` so spreadsheets do not run it as a formula.
fn field(raw: &str) -> String {
    let text = if raw.starts_with(['=', '+', '-', '@']) {
        format!("'{raw}")
    } else {
        raw.to_owned()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

fn csv_response(name: &str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// `GET /insights/oncall/people.csv`: one row per person, as in the page's table.
pub async fn people_csv(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    query: Result<Query<InsightsQuery>, QueryRejection>,
) -> Result<Response, AppError> {
    let q = query_of(query);
    let filters = csv_filters(&state, &auth, &q).await?;
    let load = state.store.oncall_load(&filters.scope).await?;
    let mut out = String::from(
        "user_id,name,time_zone,hours_on_call,working_pages,evening_weekend_pages,sleep_pages,total_pages,incidents_commanded\r\n",
    );
    for p in &load.people {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{}\r\n",
            p.user_id,
            field(&p.name),
            field(&p.time_zone),
            hours(p.on_call_seconds),
            p.pages.working,
            p.pages.evening,
            p.pages.sleep,
            p.pages.total(),
            p.commanded
        ));
    }
    Ok(csv_response("oncall-people.csv", out))
}

/// `GET /insights/oncall/fairness.csv`: one row per schedule and participant.
pub async fn fairness_csv(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    query: Result<Query<InsightsQuery>, QueryRejection>,
) -> Result<Response, AppError> {
    let q = query_of(query);
    let filters = csv_filters(&state, &auth, &q).await?;
    let load = state.store.oncall_load(&filters.scope).await?;
    let mut out = String::from(
        "schedule_id,schedule,user_id,name,hours_on_call,hours_share_pct,working_pages,evening_weekend_pages,sleep_pages,sleep_share_pct,overloaded\r\n",
    );
    for s in &load.schedules {
        let total = s.total_seconds();
        let sleep = s.total_sleep();
        for p in &s.participants {
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{},{}\r\n",
                s.schedule_id,
                field(&s.name),
                p.user_id,
                field(&p.name),
                hours(p.on_call_seconds),
                percent(p.on_call_seconds, total),
                p.pages.working,
                p.pages.evening,
                p.pages.sleep,
                percent(p.pages.sleep, sleep),
                field(&s.overload(p).join("; "))
            ));
        }
    }
    Ok(csv_response("oncall-fairness.csv", out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_defused() {
        assert_eq!(field("Ana"), "Ana");
        assert_eq!(field("Lee, Sam"), "\"Lee, Sam\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("=1+1"), "'=1+1");
    }

    #[test]
    fn steps_are_round() {
        assert_eq!(nice_step(3), 1);
        assert_eq!(nice_step(7), 2);
        assert_eq!(nice_step(24), 5);
        assert_eq!(nice_step(26), 10);
        assert_eq!(nice_step(480), 100);
    }

    #[test]
    fn percents_and_hours() {
        assert_eq!(percent(1, 3), "33.3");
        assert_eq!(percent(1, 0), "");
        assert_eq!(hours(23 * 3600), "23.00");
        assert_eq!(hours(90 * 60), "1.50");
    }
}
