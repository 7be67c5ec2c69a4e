//! Schedules: everyone reads them and sees who is on call; managers create and edit them and
//! their layers; responders cover shifts with overrides (their own; managers for anyone).

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Days, NaiveDate, NaiveDateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use heliograph_domain::Role;
use heliograph_scheduler::{Layer, ShiftUnit, Source, resolve_local};
use heliograph_store::StoreError;
use heliograph_store::schedules::StoredSchedule;
use heliograph_store::teams::TeamWithMembers;
use heliograph_store::users::User;
use serde::Deserialize;

use crate::auth::{Auth, Manager, Responder, Viewer};
use crate::csrf::CsrfForm;
use crate::error::render_with_status;
use crate::flash::redirect_with;
use crate::schedules::{self as logic, Draft, Loaded};
use crate::views::{FieldErrors, Shell, zone_names};
use crate::{AppError, AppState};

pub(crate) mod layers;
pub(crate) mod sun;
pub(crate) mod timeline;

use timeline::{Timeline, hours, short};

/// Days the schedule page shows at once.
const PERIOD_DAYS: u32 = 14;

/// Everyone's display name by id (disabled people included: old shifts still name them).
pub(crate) async fn names(state: &AppState) -> Result<HashMap<i64, User>, AppError> {
    Ok(state
        .store
        .all_users()
        .await?
        .into_iter()
        .map(|u| (u.id, u))
        .collect())
}

pub(crate) fn name_in(users: &HashMap<i64, User>, id: i64) -> String {
    users
        .get(&id)
        .map(|u| u.name.to_string())
        .unwrap_or_else(|| format!("user {id}"))
}

/// A layer's shift length in words, e.g. "1 week", "12 hours".
pub(crate) fn shift_words(layer: &Layer) -> String {
    let n = layer.rotation.shift.count;
    let unit = match layer.rotation.shift.unit {
        ShiftUnit::Hours => "hour",
        ShiftUnit::Days => "day",
        ShiftUnit::Weeks => "week",
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

// ---------------------------------------------------------------------------------------------
// The list

struct ListRow {
    id: i64,
    name: String,
    team: String,
    zone: String,
    layers: usize,
    on_call: String,
    until: String,
}

#[derive(Template)]
#[template(path = "schedules/list.html")]
struct ListPage {
    shell: Shell,
    rows: Vec<ListRow>,
}

pub async fn list(
    State(state): State<AppState>,
    _auth: Auth<Viewer>,
    shell: Shell,
) -> Result<Response, AppError> {
    let now = state.store.now();
    let users = names(&state).await?;
    let teams = teams_by_id(&state).await?;
    let mut rows = Vec::new();
    for stored in state.store.schedules().await? {
        let loaded =
            logic::load_stored(&state.store, stored, now, now + TimeDelta::days(1)).await?;
        let on = loaded.schedule.on_call_at(now);
        rows.push(ListRow {
            id: loaded.stored.id,
            name: loaded.stored.name.clone(),
            team: teams
                .get(&loaded.stored.team_id)
                .cloned()
                .unwrap_or_default(),
            zone: loaded.stored.time_zone.name().to_owned(),
            layers: loaded.stored.layers.len(),
            on_call: on
                .participant
                .map(|p| name_in(&users, p))
                .unwrap_or_else(|| "Nobody".into()),
            until: if on.until >= heliograph_scheduler::horizon_end() {
                "—".into()
            } else {
                shell.time(&on.until)
            },
        });
    }
    Ok(render_with_status(
        StatusCode::OK,
        &ListPage { shell, rows },
    ))
}

async fn teams_by_id(state: &AppState) -> Result<HashMap<i64, String>, AppError> {
    Ok(state
        .store
        .teams(1000, None)
        .await?
        .items
        .into_iter()
        .map(|t| (t.team.id, t.team.name.to_string()))
        .collect())
}

// ---------------------------------------------------------------------------------------------
// The schedule page

#[derive(Debug, Default, Deserialize)]
pub struct ShowQuery {
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    zone: Option<String>,
}

struct ShiftRow {
    start: String,
    end: String,
    who: String,
    source: String,
    gap: bool,
    hours: String,
    cover: Option<String>,
}

struct OverrideRow {
    id: i64,
    who: String,
    start: String,
    end: String,
    note: String,
    can_delete: bool,
}

struct LayerRow {
    number: usize,
    name: String,
    participants: Vec<String>,
    shift: String,
    handoff: String,
    windows: Vec<String>,
}

struct NowInfo {
    who: String,
    email: String,
    until: String,
    next_who: String,
    next_at: String,
}

#[derive(Template)]
#[template(path = "schedules/show.html")]
struct ShowPage {
    shell: Shell,
    schedule: StoredSchedule,
    team: String,
    now: NowInfo,
    timeline: Timeline,
    shifts: Vec<ShiftRow>,
    overrides: Vec<OverrideRow>,
    layers: Vec<LayerRow>,
    zone: String,
    schedule_zone: bool,
    zone_query: &'static str,
    first_day: String,
    prev: String,
    next: String,
    gaps: usize,
    gap_hours: String,
}

pub async fn show(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    shell: Shell,
    Path(id): Path<String>,
    Query(query): Query<ShowQuery>,
) -> Result<Response, AppError> {
    let id = super::parse_id(&id)?;
    let stored = state.store.schedule(id).await?;
    let schedule_zone = query.zone.as_deref() == Some("schedule");
    let tz: Tz = if schedule_zone {
        stored.time_zone.tz()
    } else {
        shell.tz()
    };
    let now = state.store.now();
    let first_day = match query.start.as_deref().map(str::trim) {
        None | Some("") => now.with_timezone(&tz).date_naive(),
        Some(raw) => raw
            .parse::<NaiveDate>()
            .ok()
            .filter(|d| (1900..2190).contains(&chrono::Datelike::year(d)))
            .ok_or_else(|| {
                AppError::BadRequest(format!(
                    "\"{}\" is not a date; use YYYY-MM-DD, for example 2026-11-30.",
                    raw.chars().take(40).collect::<String>()
                ))
            })?,
    };
    let (from, to) = timeline::period(first_day, PERIOD_DAYS, tz);
    let lookup_to = to.max(now + TimeDelta::days(1));
    let loaded = logic::load_stored(&state.store, stored, from.min(now), lookup_to).await?;
    let users = names(&state).await?;
    let name_of = |p: i64| name_in(&users, p);
    let me = &auth.user;
    let can_cover = me.role.allows(Role::Responder);
    let layer_names = loaded
        .stored
        .layers
        .iter()
        .map(|l| l.name.clone())
        .collect();
    let timeline = timeline::build(&timeline::Spec {
        schedule_id: id,
        schedule: &loaded.schedule,
        layer_names,
        first_day,
        days: PERIOD_DAYS,
        tz,
        now,
        name_of: &name_of,
        can_cover,
    });
    let finals = loaded.schedule.final_shifts(from, to);
    let zone = tz.name().to_owned();
    let shifts = finals
        .iter()
        .map(|s| ShiftRow {
            start: short(s.start, tz),
            end: short(s.end, tz),
            who: s
                .participant
                .map(name_of)
                .unwrap_or_else(|| "Nobody (gap)".into()),
            source: match s.source {
                Source::Layer(i) => loaded
                    .stored
                    .layers
                    .get(i)
                    .map(|l| format!("Layer {}: {}", i + 1, l.name))
                    .unwrap_or_default(),
                Source::Override(_) => "Override".into(),
                Source::None => "—".into(),
            },
            gap: s.participant.is_none(),
            hours: hours(s.end - s.start),
            cover: can_cover.then(|| {
                format!(
                    "/schedules/{id}/overrides/new?start={}&end={}",
                    timeline::urlencode(&s.start.to_rfc3339()),
                    timeline::urlencode(&s.end.to_rfc3339())
                )
            }),
        })
        .collect();
    let gap_total = finals
        .iter()
        .filter(|s| s.participant.is_none())
        .fold(TimeDelta::zero(), |acc, s| acc + (s.end - s.start));
    let gaps = finals.iter().filter(|s| s.participant.is_none()).count();
    let overrides = override_rows(&loaded, from, to, tz, &users, me);
    let layers = layer_rows(&loaded.stored, &users);
    let now_info = now_info(&loaded, now, tz, &users);
    let day_q = |d: NaiveDate| d.format("%Y-%m-%d").to_string();
    let page = ShowPage {
        team: teams_by_id(&state)
            .await?
            .remove(&loaded.stored.team_id)
            .unwrap_or_default(),
        prev: day_q(
            first_day
                .checked_sub_days(Days::new(PERIOD_DAYS.into()))
                .unwrap_or(first_day),
        ),
        next: day_q(
            first_day
                .checked_add_days(Days::new(PERIOD_DAYS.into()))
                .unwrap_or(first_day),
        ),
        first_day: day_q(first_day),
        zone_query: if schedule_zone { "&zone=schedule" } else { "" },
        schedule: loaded.stored,
        now: now_info,
        timeline,
        shifts,
        overrides,
        layers,
        zone,
        schedule_zone,
        gaps,
        gap_hours: hours(gap_total),
        shell,
    };
    Ok(render_with_status(StatusCode::OK, &page))
}

fn now_info(loaded: &Loaded, now: DateTime<Utc>, tz: Tz, users: &HashMap<i64, User>) -> NowInfo {
    let on = loaded.schedule.on_call_at(now);
    let end = heliograph_scheduler::horizon_end();
    let (who, email) = match on.participant.and_then(|p| users.get(&p)) {
        Some(u) => (u.name.to_string(), u.email.to_string()),
        None => ("Nobody".into(), String::new()),
    };
    let until = if on.until >= end {
        "no change ahead".into()
    } else {
        format!("{} {}", short(on.until, tz), tz.name())
    };
    // The next different person, skipping gaps of the same answer.
    let mut next_who = String::from("—");
    let mut next_at = String::new();
    let mut t = on.until;
    for _ in 0..50 {
        if t >= end {
            break;
        }
        let n = loaded.schedule.on_call_at(t);
        if n.participant.is_some() && n.participant != on.participant {
            next_who = n.participant.map(|p| name_in(users, p)).unwrap_or_default();
            next_at = format!("{} {}", short(n.since.max(t), tz), tz.name());
            break;
        }
        t = n.until;
    }
    NowInfo {
        who,
        email,
        until,
        next_who,
        next_at,
    }
}

fn override_rows(
    loaded: &Loaded,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    tz: Tz,
    users: &HashMap<i64, User>,
    me: &User,
) -> Vec<OverrideRow> {
    let visible: Vec<_> = loaded
        .overrides
        .iter()
        .filter(|o| o.end_at > from && o.start_at < to)
        .collect();
    visible
        .iter()
        .map(|o| {
            let overlaps = |p: &&&heliograph_store::schedules::StoredOverride| {
                p.id != o.id && p.start_at < o.end_at && o.start_at < p.end_at
            };
            let later: Vec<String> = visible
                .iter()
                .filter(overlaps)
                .filter(|p| p.id > o.id)
                .map(|p| name_in(users, p.user_id))
                .collect();
            let earlier: Vec<String> = visible
                .iter()
                .filter(overlaps)
                .filter(|p| p.id < o.id)
                .map(|p| name_in(users, p.user_id))
                .collect();
            let mut note = Vec::new();
            if !later.is_empty() {
                note.push(format!(
                    "Partly replaced by the later override of {} where they overlap",
                    later.join(", ")
                ));
            }
            if !earlier.is_empty() {
                note.push(format!(
                    "Wins over the earlier override of {} where they overlap",
                    earlier.join(", ")
                ));
            }
            OverrideRow {
                id: o.id,
                who: name_in(users, o.user_id),
                start: short(o.start_at, tz),
                end: short(o.end_at, tz),
                note: note.join(". "),
                can_delete: me.role.allows(Role::Manager)
                    || (me.role.allows(Role::Responder) && o.user_id == me.id),
            }
        })
        .collect()
}

fn layer_rows(stored: &StoredSchedule, users: &HashMap<i64, User>) -> Vec<LayerRow> {
    stored
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| LayerRow {
            number: i + 1,
            name: l.name.clone(),
            participants: l
                .rotation
                .participants
                .iter()
                .map(|p| name_in(users, *p))
                .collect(),
            shift: shift_words(l),
            handoff: format!(
                "{} {}",
                l.rotation.handoff.format("%Y-%m-%d %H:%M"),
                l.rotation.handoff_time_zone.name()
            ),
            windows: if l.restrictions.is_empty() {
                vec!["Around the clock".into()]
            } else {
                l.restrictions
                    .iter()
                    .map(|r| {
                        format!(
                            "{} {}–{} {}",
                            r.days
                                .iter()
                                .map(|d| d.to_string())
                                .collect::<Vec<_>>()
                                .join(" "),
                            r.start,
                            r.end,
                            r.time_zone.name()
                        )
                    })
                    .collect()
            },
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Settings: create, edit, delete

/// The schedule settings form as typed.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SettingsForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    team_id: String,
    #[serde(default)]
    time_zone: String,
    #[serde(default)]
    version: String,
}

#[derive(Template)]
#[template(path = "schedules/settings.html")]
struct SettingsPage {
    shell: Shell,
    existing: Option<StoredSchedule>,
    form: SettingsForm,
    errors: FieldErrors,
    teams: Vec<TeamWithMembers>,
    zones: &'static [&'static str],
}

async fn settings_page(
    state: &AppState,
    shell: Shell,
    existing: Option<StoredSchedule>,
    form: SettingsForm,
    errors: FieldErrors,
) -> Result<SettingsPage, AppError> {
    Ok(SettingsPage {
        shell,
        existing,
        form,
        errors,
        teams: state.store.teams(1000, None).await?.items,
        zones: zone_names(),
    })
}

pub async fn new_form(
    State(state): State<AppState>,
    auth: Auth<Manager>,
    shell: Shell,
) -> Result<Response, AppError> {
    let form = SettingsForm {
        time_zone: auth.user.time_zone.name().to_owned(),
        ..Default::default()
    };
    let page = settings_page(&state, shell, None, form, FieldErrors::default()).await?;
    Ok(render_with_status(StatusCode::OK, &page))
}

/// Moves the checker's problems onto a form's fields; problems with layers go to `layers_to`.
fn settings_errors(problems: logic::Problems, layers_to: &str) -> FieldErrors {
    let mut errors = FieldErrors::default();
    for (field, message) in problems {
        match field.as_str() {
            "name" | "time_zone" | "team_id" => errors.add(field, message),
            _ => errors.add(layers_to.to_owned(), message),
        }
    }
    errors
}

fn parse_team(raw: &str) -> Option<i64> {
    raw.trim().parse().ok()
}

pub async fn create(
    State(state): State<AppState>,
    auth: Auth<Manager>,
    shell: Shell,
    CsrfForm(form): CsrfForm<SettingsForm>,
) -> Result<Response, AppError> {
    let draft = Draft {
        name: form.name.clone(),
        time_zone: form.time_zone.clone(),
        team_id: parse_team(&form.team_id),
        layers: Vec::new(),
    };
    let mut errors = match logic::check(&state.store, &draft).await? {
        Ok(fields) => match state.store.create_schedule(&fields, &auth.audit()).await {
            Ok(s) => {
                return Ok(redirect_with(
                    &format!("/schedules/{}/layers/new", s.id),
                    "success",
                    format!("Schedule {} created. Now add its first layer.", s.name),
                ));
            }
            Err(StoreError::Conflict(m)) => {
                let mut e = FieldErrors::default();
                e.add("name", m);
                e
            }
            Err(e) => return Err(e.into()),
        },
        Err(problems) => settings_errors(problems, "team_id"),
    };
    if form.team_id.trim().is_empty() {
        errors.add("team_id", "Choose the team that owns this schedule");
    }
    let page = settings_page(&state, shell, None, form, errors).await?;
    Ok(render_with_status(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

pub async fn edit_form(
    State(state): State<AppState>,
    _auth: Auth<Manager>,
    shell: Shell,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let id = super::parse_id(&id)?;
    let stored = state.store.schedule(id).await?;
    let form = SettingsForm {
        name: stored.name.clone(),
        team_id: stored.team_id.to_string(),
        time_zone: stored.time_zone.name().to_owned(),
        version: stored.version.to_string(),
    };
    let page = settings_page(&state, shell, Some(stored), form, FieldErrors::default()).await?;
    Ok(render_with_status(StatusCode::OK, &page))
}

pub async fn update(
    State(state): State<AppState>,
    auth: Auth<Manager>,
    shell: Shell,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<SettingsForm>,
) -> Result<Response, AppError> {
    let id = super::parse_id(&id)?;
    let stored = state.store.schedule(id).await?;
    let draft = Draft {
        name: form.name.clone(),
        time_zone: form.time_zone.clone(),
        team_id: parse_team(&form.team_id),
        layers: stored.layers.clone(),
    };
    let errors = match logic::check(&state.store, &draft).await? {
        Ok(fields) => {
            let version = form.version.trim().parse().ok();
            match state
                .store
                .update_schedule(id, &fields, version, &auth.audit())
                .await
            {
                Ok(s) => {
                    return Ok(redirect_with(
                        &format!("/schedules/{id}"),
                        "success",
                        format!("Schedule {} saved.", s.name),
                    ));
                }
                Err(StoreError::Conflict(m)) => {
                    let mut e = FieldErrors::default();
                    e.add("name", m);
                    e
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(problems) => settings_errors(problems, "team_id"),
    };
    let page = settings_page(&state, shell, Some(stored), form, errors).await?;
    Ok(render_with_status(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

#[derive(Deserialize)]
pub struct Empty {}

pub async fn delete(
    State(state): State<AppState>,
    auth: Auth<Manager>,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, AppError> {
    let id = super::parse_id(&id)?;
    let stored = state.store.schedule(id).await?;
    state.store.delete_schedule(id, &auth.audit()).await?;
    Ok(redirect_with(
        "/schedules",
        "success",
        format!("Schedule {} deleted.", stored.name),
    ))
}

// ---------------------------------------------------------------------------------------------
// Overrides

/// The override form as typed: local date-times in a chosen zone.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct OverrideForm {
    #[serde(default)]
    user_id: String,
    #[serde(default)]
    start: String,
    #[serde(default)]
    end: String,
    #[serde(default)]
    time_zone: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct CoverQuery {
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    end: Option<String>,
}

#[derive(Template)]
#[template(path = "schedules/override.html")]
struct OverridePage {
    shell: Shell,
    schedule: StoredSchedule,
    form: OverrideForm,
    errors: FieldErrors,
    people: Vec<(i64, String)>,
    zones: &'static [&'static str],
    covering: String,
}

/// Whom the viewer may put on an override: themself, or (managers) any enabled person, the
/// schedule's team first.
async fn override_people(
    state: &AppState,
    me: &User,
    team_id: i64,
) -> Result<Vec<(i64, String)>, AppError> {
    if !me.role.allows(Role::Manager) {
        return Ok(vec![(me.id, me.name.to_string())]);
    }
    let team: Vec<User> = state.store.team_members(team_id).await?;
    let mut people: Vec<(i64, String)> = team
        .iter()
        .filter(|u| !u.disabled)
        .map(|u| (u.id, u.name.to_string()))
        .collect();
    let mut others: Vec<(i64, String)> = state
        .store
        .all_users()
        .await?
        .into_iter()
        .filter(|u| !u.disabled && !team.iter().any(|t| t.id == u.id))
        .map(|u| (u.id, format!("{} (not on the team)", u.name)))
        .collect();
    others.sort_by(|a, b| a.1.cmp(&b.1));
    people.extend(others);
    Ok(people)
}

fn local_input(at: DateTime<Utc>, tz: Tz) -> String {
    at.with_timezone(&tz).format("%Y-%m-%dT%H:%M").to_string()
}

fn parse_local(raw: &str) -> Option<NaiveDateTime> {
    let raw = raw.trim();
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(raw, f).ok())
        .filter(|d| (1900..2190).contains(&chrono::Datelike::year(d)))
}

pub async fn override_form(
    State(state): State<AppState>,
    auth: Auth<Responder>,
    shell: Shell,
    Path(id): Path<String>,
    Query(query): Query<CoverQuery>,
) -> Result<Response, AppError> {
    let id = super::parse_id(&id)?;
    let schedule = state.store.schedule(id).await?;
    let tz = shell.tz();
    let parse = |raw: &Option<String>| {
        raw.as_deref()
            .and_then(|r| DateTime::parse_from_rfc3339(r.trim()).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    let now = state.store.now();
    let start = parse(&query.start).unwrap_or(now);
    let end = parse(&query.end)
        .filter(|e| *e > start)
        .unwrap_or(start + TimeDelta::hours(8));
    let loaded = logic::load_stored(&state.store, schedule, start, end).await?;
    let users = names(&state).await?;
    let covering = loaded
        .schedule
        .final_shifts(start, end)
        .iter()
        .filter_map(|s| s.participant)
        .map(|p| name_in(&users, p))
        .fold(Vec::<String>::new(), |mut acc, n| {
            if !acc.contains(&n) {
                acc.push(n);
            }
            acc
        })
        .join(", ");
    let form = OverrideForm {
        user_id: auth.user.id.to_string(),
        start: local_input(start, tz),
        end: local_input(end, tz),
        time_zone: tz.name().to_owned(),
    };
    let page = OverridePage {
        people: override_people(&state, &auth.user, loaded.stored.team_id).await?,
        schedule: loaded.stored,
        form,
        errors: FieldErrors::default(),
        zones: zone_names(),
        covering,
        shell,
    };
    Ok(render_with_status(StatusCode::OK, &page))
}

pub async fn create_override(
    State(state): State<AppState>,
    auth: Auth<Responder>,
    shell: Shell,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<OverrideForm>,
) -> Result<Response, AppError> {
    let id = super::parse_id(&id)?;
    let schedule = state.store.schedule(id).await?;
    let mut errors = FieldErrors::default();
    let people = override_people(&state, &auth.user, schedule.team_id).await?;
    let user_id = match form.user_id.trim().parse::<i64>() {
        Ok(uid) if people.iter().any(|(p, _)| *p == uid) => Some(uid),
        Ok(uid) if uid != auth.user.id && !auth.user.role.allows(Role::Manager) => {
            return Err(AppError::Forbidden {
                have: auth.user.role,
                needed: Role::Manager,
            });
        }
        _ => {
            errors.add("user_id", "Choose who covers from the list");
            None
        }
    };
    let tz = errors.check(
        "time_zone",
        heliograph_domain::TimeZone::parse(&form.time_zone),
    );
    let start = parse_local(&form.start);
    if start.is_none() {
        errors.add(
            "start",
            "Enter the start as a date and time, e.g. 2026-11-30 09:00",
        );
    }
    let end = parse_local(&form.end);
    if end.is_none() {
        errors.add(
            "end",
            "Enter the end as a date and time, e.g. 2026-11-30 17:00",
        );
    }
    if let (Some(uid), Some(tz), Some(start), Some(end)) = (user_id, tz, start, end) {
        let (start, end) = (resolve_local(tz.tz(), start), resolve_local(tz.tz(), end));
        let problems = logic::check_override_range(start, end, state.store.now());
        for (field, message) in &problems {
            errors.add(field.clone(), message.clone());
        }
        if problems.is_empty() {
            let loaded = logic::load_stored(&state.store, schedule.clone(), start, end).await?;
            let created =
                logic::add_override(&state.store, &loaded, uid, start, end, &auth.audit()).await?;
            let users = names(&state).await?;
            return Ok(redirect_with(
                &format!(
                    "/schedules/{id}?start={}",
                    created
                        .start_at
                        .with_timezone(&shell.tz())
                        .format("%Y-%m-%d")
                ),
                "success",
                format!(
                    "{} covers {} from {} to {}.",
                    name_in(&users, uid),
                    schedule.name,
                    shell.time(&created.start_at),
                    shell.time(&created.end_at)
                ),
            ));
        }
    }
    let page = OverridePage {
        people,
        covering: String::new(),
        schedule,
        form,
        errors,
        zones: zone_names(),
        shell,
    };
    Ok(render_with_status(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

pub async fn delete_override(
    State(state): State<AppState>,
    auth: Auth<Responder>,
    Path((id, oid)): Path<(String, String)>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, AppError> {
    let id = super::parse_id(&id)?;
    let oid = super::parse_id(&oid)?;
    let target = state.store.schedule_override(id, oid).await?;
    if !auth.user.role.allows(Role::Manager) && target.user_id != auth.user.id {
        return Err(AppError::Forbidden {
            have: auth.user.role,
            needed: Role::Manager,
        });
    }
    let loaded = logic::load(&state.store, id, target.start_at, target.end_at).await?;
    logic::remove_override(&state.store, &loaded, oid, &auth.audit()).await?;
    Ok(redirect_with(
        &format!("/schedules/{id}"),
        "success",
        "Override removed.",
    ))
}
