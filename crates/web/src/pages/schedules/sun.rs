//! The follow-the-sun builder: regions (zone, working hours, people) become one restricted
//! layer each. Before saving, the page shows the 24-hour coverage they yield and names every
//! gap and overlap — for the coming week and for weeks in January and July, because regions
//! whose zones change clocks on different dates drift apart for part of the year.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, Utc, Weekday};
use chrono_tz::Tz;
use heliograph_scheduler::{
    Layer, LocalTimeOfDay, Restriction, Rotation, Schedule, ShiftLength, ShiftUnit,
};
use heliograph_store::StoreError;
use heliograph_store::teams::TeamWithMembers;
use heliograph_store::users::User;
use serde::Deserialize;

use super::timeline::{self, Timeline};
use crate::auth::{Auth, Manager};
use crate::csrf::CsrfForm;
use crate::error::render_with_status;
use crate::flash::redirect_with;
use crate::schedules::{self as logic, Draft};
use crate::views::{FieldErrors, Shell, zone_names};
use crate::{AppError, AppState};

const MAX_REGIONS: usize = 6;

/// One region as typed.
#[derive(Debug, Clone, Default)]
pub struct RegionForm {
    pub name: String,
    pub zone: String,
    pub start: String,
    pub end: String,
    pub people: Vec<String>,
}

impl RegionForm {
    pub fn has(&self, id: &i64) -> bool {
        let id = id.to_string();
        self.people.contains(&id)
    }

    fn is_blank(&self) -> bool {
        self.name.trim().is_empty() && self.people.is_empty()
    }
}

/// The builder form as typed.
#[derive(Debug, Clone, Default)]
pub struct SunForm {
    pub name: String,
    pub team_id: String,
    pub time_zone: String,
    pub unit: String,
    pub count: String,
    pub handoff_date: String,
    pub weekdays_only: bool,
    pub regions: Vec<RegionForm>,
    pub action: String,
}

impl SunForm {
    fn from_pairs(pairs: &[(String, String)]) -> Self {
        let mut form = SunForm::default();
        for (key, value) in pairs {
            match key.as_str() {
                "name" => form.name = value.clone(),
                "team_id" => form.team_id = value.clone(),
                "time_zone" => form.time_zone = value.clone(),
                "unit" => form.unit = value.clone(),
                "count" => form.count = value.clone(),
                "handoff_date" => form.handoff_date = value.clone(),
                "weekdays_only" => form.weekdays_only = !value.is_empty(),
                "action" => form.action = value.clone(),
                other => {
                    let Some((index, field)) = other
                        .strip_prefix("region-")
                        .and_then(|r| r.split_once('-'))
                    else {
                        continue;
                    };
                    let Some(index) = index.parse::<usize>().ok().filter(|i| *i < MAX_REGIONS)
                    else {
                        continue;
                    };
                    if form.regions.len() <= index {
                        form.regions.resize_with(index + 1, RegionForm::default);
                    }
                    let r = &mut form.regions[index];
                    match field {
                        "name" => r.name = value.clone(),
                        "zone" => r.zone = value.clone(),
                        "start" => r.start = value.clone(),
                        "end" => r.end = value.clone(),
                        "people" if r.people.len() < 100 => r.people.push(value.clone()),
                        _ => {}
                    }
                }
            }
        }
        form
    }

    /// The three classic regions, ready to adjust.
    fn defaults(team_id: i64, handoff: NaiveDate) -> Self {
        let region = |name: &str, zone: &str, start: &str, end: &str| RegionForm {
            name: name.into(),
            zone: zone.into(),
            start: start.into(),
            end: end.into(),
            people: Vec::new(),
        };
        SunForm {
            name: String::new(),
            team_id: team_id.to_string(),
            time_zone: "UTC".into(),
            unit: "weeks".into(),
            count: "1".into(),
            handoff_date: handoff.format("%Y-%m-%d").to_string(),
            weekdays_only: false,
            regions: vec![
                region("APAC", "Asia/Singapore", "08:00", "16:00"),
                region("EMEA", "Europe/London", "08:00", "16:00"),
                region("AMER", "America/New_York", "11:00", "19:00"),
            ],
            action: String::new(),
        }
    }

    fn padded(mut self) -> Self {
        let last_blank = self.regions.last().is_some_and(RegionForm::is_blank);
        if !last_blank && self.regions.len() < MAX_REGIONS {
            self.regions.push(RegionForm::default());
        }
        if self.regions.len() < 3 {
            self.regions.resize_with(3, RegionForm::default);
        }
        self
    }
}

/// Coverage of one reference week: gaps and overlaps in words.
pub struct Coverage {
    pub label: String,
    pub gaps: Vec<String>,
    pub overlaps: Vec<String>,
}

#[derive(Template)]
#[template(path = "schedules/sun.html")]
struct SunPage {
    shell: Shell,
    teams: Vec<TeamWithMembers>,
    team: Option<TeamWithMembers>,
    members: Vec<User>,
    form: SunForm,
    errors: FieldErrors,
    zones: &'static [&'static str],
    preview: Option<Timeline>,
    coverage: Vec<Coverage>,
}

#[derive(Debug, Default, Deserialize)]
pub struct TeamQuery {
    #[serde(default)]
    team_id: Option<String>,
}

fn next_monday(today: NaiveDate) -> NaiveDate {
    let ahead = (7 - today.weekday().num_days_from_monday()) % 7;
    today
        .checked_add_days(Days::new(if ahead == 0 { 7 } else { ahead.into() }))
        .unwrap_or(today)
}

pub async fn form(
    State(state): State<AppState>,
    _auth: Auth<Manager>,
    shell: Shell,
    Query(query): Query<TeamQuery>,
) -> Result<Response, AppError> {
    let teams = state.store.teams(1000, None).await?.items;
    let team_id = query
        .team_id
        .as_deref()
        .and_then(|t| t.trim().parse::<i64>().ok());
    let team = team_id.and_then(|id| teams.iter().find(|t| t.team.id == id).cloned());
    if query
        .team_id
        .as_deref()
        .is_some_and(|t| !t.trim().is_empty())
        && team.is_none()
    {
        return Err(AppError::BadRequest("Choose a team from the list.".into()));
    }
    let members = match &team {
        Some(t) => state.store.team_members(t.team.id).await?,
        None => Vec::new(),
    };
    let today = state.store.now().date_naive();
    let form = SunForm::defaults(
        team.as_ref().map(|t| t.team.id).unwrap_or_default(),
        next_monday(today),
    )
    .padded();
    let page = SunPage {
        shell,
        teams,
        team,
        members: members.into_iter().filter(|m| !m.disabled).collect(),
        form,
        errors: FieldErrors::default(),
        zones: zone_names(),
        preview: None,
        coverage: Vec::new(),
    };
    Ok(render_with_status(StatusCode::OK, &page))
}

/// Turns the form into layers, one per region.
fn layers_of(form: &SunForm, members: &[User], errors: &mut FieldErrors) -> Vec<Layer> {
    let unit = match form.unit.as_str() {
        "days" => Some(ShiftUnit::Days),
        "weeks" => Some(ShiftUnit::Weeks),
        _ => {
            errors.add("unit", "Choose days or weeks");
            None
        }
    };
    let count = match form.count.trim().parse::<u32>() {
        Ok(n) if n >= 1 => Some(n),
        _ => {
            errors.add("count", "Enter a whole number of at least 1");
            None
        }
    };
    let date = NaiveDate::parse_from_str(form.handoff_date.trim(), "%Y-%m-%d")
        .ok()
        .filter(|d| (1900..2190).contains(&d.year()));
    if date.is_none() {
        errors.add("handoff_date", "Enter the first handoff date as YYYY-MM-DD");
    }
    let days: Vec<Weekday> = if form.weekdays_only {
        vec![
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
        ]
    } else {
        vec![
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
            Weekday::Sat,
            Weekday::Sun,
        ]
    };
    let mut layers = Vec::new();
    let used: Vec<_> = form
        .regions
        .iter()
        .enumerate()
        .filter(|(_, r)| !r.is_blank())
        .collect();
    if used.len() < 2 {
        errors.add("regions", "Follow the sun needs at least two regions");
    }
    for (i, r) in used {
        let name = r.name.trim();
        if name.is_empty() {
            errors.add(format!("region-{i}-name"), "Name the region, e.g. APAC");
        }
        let zone = errors.check(
            format!("region-{i}-zone"),
            heliograph_domain::TimeZone::parse(&r.zone),
        );
        let start = errors.check(
            format!("region-{i}-start"),
            r.start.trim().parse::<LocalTimeOfDay>(),
        );
        let end = errors.check(
            format!("region-{i}-end"),
            r.end.trim().parse::<LocalTimeOfDay>(),
        );
        if let (Some(s), Some(e)) = (start, end) {
            if s == e {
                errors.add(
                    format!("region-{i}-end"),
                    "The working hours start and end at the same time",
                );
            } else if s == LocalTimeOfDay::END_OF_DAY {
                errors.add(
                    format!("region-{i}-start"),
                    "A window cannot start at 24:00; use 00:00",
                );
            }
        }
        let mut people = Vec::new();
        for p in &r.people {
            match p.parse::<i64>() {
                Ok(id) if members.iter().any(|m| m.id == id && !m.disabled) => people.push(id),
                _ => errors.add(format!("region-{i}-people"), "Pick people from the team"),
            }
        }
        if people.is_empty() {
            errors.add(
                format!("region-{i}-people"),
                "Pick at least one person for this region",
            );
        }
        if let (Some(zone), Some(start), Some(end), Some(unit), Some(count), Some(date)) =
            (zone, start, end, unit, count, date)
        {
            let start_time = NaiveTime::from_num_seconds_from_midnight_opt(
                u32::from(start.minutes()) * 60 % 86_400,
                0,
            )
            .unwrap_or(NaiveTime::MIN);
            layers.push(Layer {
                name: name.to_owned(),
                rotation: Rotation {
                    participants: people,
                    shift: ShiftLength { unit, count },
                    handoff: date.and_time(start_time),
                    handoff_time_zone: zone.tz(),
                },
                restrictions: vec![Restriction {
                    days: days.clone(),
                    start,
                    end,
                    time_zone: zone.tz(),
                }],
            });
        }
    }
    layers
}

/// Describes stretches of a week in `tz` grouped by time of day: "Mon–Fri 15:00–16:00".
fn describe(stretches: &[(DateTime<Utc>, DateTime<Utc>)], tz: Tz) -> Vec<String> {
    let mut by_time: BTreeMap<(String, String), Vec<Weekday>> = BTreeMap::new();
    for &(a, b) in stretches {
        let mut t = a;
        while t < b {
            let local = t.with_timezone(&tz);
            let next_midnight = heliograph_scheduler::resolve_local(
                tz,
                local
                    .date_naive()
                    .succ_opt()
                    .unwrap_or(local.date_naive())
                    .and_time(NaiveTime::MIN),
            );
            let piece_end = b.min(next_midnight);
            if piece_end <= t {
                break;
            }
            let end_text = if piece_end == next_midnight {
                "24:00".to_owned()
            } else {
                piece_end.with_timezone(&tz).format("%H:%M").to_string()
            };
            let days = by_time
                .entry((local.format("%H:%M").to_string(), end_text))
                .or_default();
            if !days.contains(&local.weekday()) {
                days.push(local.weekday());
            }
            t = piece_end;
        }
    }
    let mut out: Vec<(Vec<Weekday>, String)> = by_time
        .into_iter()
        .map(|((s, e), mut days)| {
            days.sort_by_key(|d| d.num_days_from_monday());
            (days, format!("{s}–{e}"))
        })
        .collect();
    out.sort_by_key(|(days, _)| days.first().map(|d| d.num_days_from_monday()));
    out.into_iter()
        .map(|(days, times)| format!("{} {times} {}", day_span(&days), tz.name()))
        .collect()
}

fn day_span(days: &[Weekday]) -> String {
    let all = days.len() == 7;
    if all {
        return "Every day".into();
    }
    let n: Vec<u32> = days.iter().map(|d| d.num_days_from_monday()).collect();
    let consecutive = n.windows(2).all(|w| w[1] == w[0] + 1);
    if consecutive && days.len() > 2 {
        format!("{}–{}", days[0], days[days.len() - 1])
    } else {
        days.iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn intersect(
    a: &[heliograph_scheduler::Shift],
    b: &[heliograph_scheduler::Shift],
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut out = Vec::new();
    for x in a.iter().filter(|s| s.participant.is_some()) {
        for y in b.iter().filter(|s| s.participant.is_some()) {
            let (s, e) = (x.start.max(y.start), x.end.min(y.end));
            if s < e {
                out.push((s, e));
            }
        }
    }
    out
}

/// Gaps and overlaps of `layers` over the week starting on `monday` in `tz`.
pub fn analyse(layers: &[Layer], monday: NaiveDate, tz: Tz, label: String) -> Option<Coverage> {
    let schedule = Schedule::new(layers.to_vec(), Vec::new()).ok()?;
    let (from, to) = timeline::period(monday, 7, tz);
    let gaps = describe(&schedule.gaps(from, to), tz);
    let mut overlaps = Vec::new();
    let shifts: Vec<_> = (0..layers.len())
        .map(|i| schedule.layer_shifts(i, from, to))
        .collect();
    for i in 0..layers.len() {
        for j in i + 1..layers.len() {
            for text in describe(&intersect(&shifts[i], &shifts[j]), tz) {
                overlaps.push(format!(
                    "{} and {} overlap: {text} ({}, the later layer, is paged)",
                    layers[i].name, layers[j].name, layers[j].name
                ));
            }
        }
    }
    Some(Coverage {
        label,
        gaps,
        overlaps,
    })
}

/// The coming week plus a January and a July week, keeping the seasonal ones only when they
/// differ from the first.
pub fn coverage(layers: &[Layer], first: NaiveDate, tz: Tz) -> Vec<Coverage> {
    let monday = |d: NaiveDate| {
        let back = d.weekday().num_days_from_monday();
        let m = d.checked_sub_days(Days::new(back.into())).unwrap_or(d);
        if m < d {
            m.checked_add_days(Days::new(7)).unwrap_or(m)
        } else {
            m
        }
    };
    let first = monday(first);
    let mut out = Vec::new();
    if let Some(c) = analyse(layers, first, tz, format!("Week of {first}")) {
        out.push(c);
    }
    let mut seasonal = Vec::new();
    for (month, season) in [(1, "January"), (7, "July")] {
        let year = if first.month() < month || (first.month() == month && first.day() <= 15) {
            first.year()
        } else {
            first.year() + 1
        };
        let Some(d) = NaiveDate::from_ymd_opt(year, month, 15) else {
            continue;
        };
        let m = monday(d);
        if let Some(c) = analyse(layers, m, tz, format!("Week of {m} ({season})")) {
            seasonal.push(c);
        }
    }
    seasonal.sort_by(|a, b| a.label.cmp(&b.label));
    for c in seasonal {
        let same = out
            .first()
            .is_some_and(|f| f.gaps == c.gaps && f.overlaps == c.overlaps);
        if !same {
            out.push(c);
        }
    }
    out
}

pub async fn submit(
    State(state): State<AppState>,
    auth: Auth<Manager>,
    shell: Shell,
    CsrfForm(pairs): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let form = SunForm::from_pairs(&pairs);
    let teams = state.store.teams(1000, None).await?.items;
    let team = form
        .team_id
        .trim()
        .parse::<i64>()
        .ok()
        .and_then(|id| teams.iter().find(|t| t.team.id == id).cloned());
    let mut errors = FieldErrors::default();
    let members = match &team {
        Some(t) => state.store.team_members(t.team.id).await?,
        None => {
            errors.add("team_id", "Choose a team from the list");
            Vec::new()
        }
    };
    let tz = errors.check(
        "time_zone",
        heliograph_domain::TimeZone::parse(&form.time_zone),
    );
    let layers = layers_of(&form, &members, &mut errors);
    let mut preview = None;
    let mut coverage = Vec::new();
    if errors.is_empty() {
        if let (Some(tz), Ok(date)) = (
            tz,
            NaiveDate::parse_from_str(form.handoff_date.trim(), "%Y-%m-%d"),
        ) {
            let tz = tz.tz();
            coverage = self::coverage(&layers, date, tz);
            if let Ok(schedule) = Schedule::new(layers.clone(), Vec::new()) {
                let first = coverage
                    .first()
                    .and_then(|c| c.label.strip_prefix("Week of "))
                    .and_then(|d| d.get(..10))
                    .and_then(|d| d.parse().ok())
                    .unwrap_or(date);
                let users: std::collections::HashMap<i64, String> =
                    members.iter().map(|m| (m.id, m.name.to_string())).collect();
                let name_of = |p: i64| users.get(&p).cloned().unwrap_or_default();
                preview = Some(timeline::build(&timeline::Spec {
                    schedule_id: 0,
                    schedule: &schedule,
                    layer_names: layers.iter().map(|l| l.name.clone()).collect(),
                    first_day: first,
                    days: 1,
                    tz,
                    now: state.store.now(),
                    name_of: &name_of,
                    can_cover: false,
                }));
            }
        }
        if form.action == "create" {
            let draft = Draft {
                name: form.name.clone(),
                time_zone: form.time_zone.clone(),
                team_id: team.as_ref().map(|t| t.team.id),
                layers: layers.clone(),
            };
            match logic::check(&state.store, &draft).await? {
                Ok(fields) => match state.store.create_schedule(&fields, &auth.audit()).await {
                    Ok(s) => {
                        return Ok(redirect_with(
                            &format!("/schedules/{}", s.id),
                            "success",
                            format!(
                                "Schedule {} created with {} regions.",
                                s.name,
                                s.layers.len()
                            ),
                        ));
                    }
                    Err(StoreError::Conflict(m)) => errors.add("name", m),
                    Err(e) => return Err(e.into()),
                },
                Err(problems) => {
                    for (field, message) in problems {
                        let target = match field.as_str() {
                            "name" | "time_zone" | "team_id" => field,
                            _ => "regions".into(),
                        };
                        errors.add(target, message);
                    }
                }
            }
        }
    }
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let page = SunPage {
        shell,
        teams,
        team,
        members: members.into_iter().filter(|m| !m.disabled).collect(),
        form: form.padded(),
        errors,
        zones: zone_names(),
        preview,
        coverage,
    };
    Ok(render_with_status(status, &page))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(name: &str, zone: Tz, start: &str, end: &str, who: i64) -> Layer {
        Layer {
            name: name.into(),
            rotation: Rotation {
                participants: vec![who],
                shift: ShiftLength {
                    unit: ShiftUnit::Weeks,
                    count: 1,
                },
                handoff: "2026-11-30T00:00:00".parse().unwrap(),
                handoff_time_zone: zone,
            },
            restrictions: vec![Restriction {
                days: vec![
                    Weekday::Mon,
                    Weekday::Tue,
                    Weekday::Wed,
                    Weekday::Thu,
                    Weekday::Fri,
                    Weekday::Sat,
                    Weekday::Sun,
                ],
                start: start.parse().unwrap(),
                end: end.parse().unwrap(),
                time_zone: zone,
            }],
        }
    }

    #[test]
    fn the_default_regions_fit_in_winter_and_drift_apart_in_summer() {
        let layers = vec![
            region("APAC", chrono_tz::Asia::Singapore, "08:00", "16:00", 1),
            region("EMEA", chrono_tz::Europe::London, "08:00", "16:00", 2),
            region("AMER", chrono_tz::America::New_York, "11:00", "19:00", 3),
        ];
        let start: NaiveDate = "2026-12-01".parse().unwrap();
        let c = coverage(&layers, start, chrono_tz::UTC);
        assert_eq!(c[0].label, "Week of 2026-12-07");
        assert!(c[0].gaps.is_empty(), "{:?}", c[0].gaps);
        assert!(c[0].overlaps.is_empty(), "{:?}", c[0].overlaps);
        // January is the same as December; July (both in summer time) is not.
        assert_eq!(c.len(), 2);
        assert_eq!(c[1].label, "Week of 2027-07-19 (July)");
        assert_eq!(c[1].gaps, vec!["Every day 23:00–24:00 UTC".to_owned()]);
        assert_eq!(
            c[1].overlaps,
            vec!["APAC and EMEA overlap: Every day 07:00–08:00 UTC (EMEA, the later layer, is paged)".to_owned()]
        );
    }
}
