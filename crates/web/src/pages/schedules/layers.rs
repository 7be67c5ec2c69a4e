//! Editing one layer of a schedule at a time (managers): participants picked from the team in
//! rotation order, shift length, handoff and its zone, restriction windows per weekday. The
//! whole schedule is re-checked and saved with its version, so two managers editing at once
//! cannot silently overwrite each other.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{Datelike, NaiveDateTime, NaiveTime, Weekday};
use heliograph_scheduler::{Layer, LocalTimeOfDay, Restriction, Rotation, ShiftLength, ShiftUnit};
use heliograph_store::StoreError;
use heliograph_store::schedules::StoredSchedule;
use heliograph_store::users::User;
use serde::Deserialize;

use super::parse_local;
use crate::auth::{Auth, Manager};
use crate::csrf::CsrfForm;
use crate::error::render_with_status;
use crate::flash::redirect_with;
use crate::schedules::{self as logic, Draft, Problems};
use crate::views::{FieldErrors, Shell, zone_names};
use crate::{AppError, AppState};

/// Weekday values of the form, in order.
pub const DAYS: [(&str, &str); 7] = [
    ("mon", "Mon"),
    ("tue", "Tue"),
    ("wed", "Wed"),
    ("thu", "Thu"),
    ("fri", "Fri"),
    ("sat", "Sat"),
    ("sun", "Sun"),
];
const MAX_WINDOW_ROWS: usize = 21;
const MAX_SLOTS: usize = 100;

pub fn weekday(value: &str) -> Option<Weekday> {
    DAYS.iter()
        .position(|(v, _)| *v == value)
        .and_then(|i| Weekday::try_from(i as u8).ok())
}

fn day_value(d: Weekday) -> &'static str {
    DAYS[d.num_days_from_monday() as usize].0
}

/// One restriction window row as typed.
#[derive(Debug, Clone, Default)]
pub struct WindowForm {
    pub days: Vec<String>,
    pub start: String,
    pub end: String,
    pub zone: String,
}

impl WindowForm {
    pub fn has(&self, day: &str) -> bool {
        self.days.iter().any(|d| d == day)
    }

    fn is_blank(&self) -> bool {
        self.days.is_empty() && self.start.trim().is_empty() && self.end.trim().is_empty()
    }
}

/// The layer form as typed.
#[derive(Debug, Clone, Default)]
pub struct LayerForm {
    pub name: String,
    pub participants: Vec<String>,
    pub unit: String,
    pub count: String,
    pub handoff: String,
    pub handoff_zone: String,
    pub windows: Vec<WindowForm>,
    pub version: String,
}

impl LayerForm {
    /// Reads the form's repeated and numbered fields (`participant`, `window-3-start`).
    pub fn from_pairs(pairs: &[(String, String)]) -> Self {
        let mut form = LayerForm::default();
        for (key, value) in pairs {
            match key.as_str() {
                "name" => form.name = value.clone(),
                "participant" if form.participants.len() < MAX_SLOTS => {
                    form.participants.push(value.clone())
                }
                "unit" => form.unit = value.clone(),
                "count" => form.count = value.clone(),
                "handoff" => form.handoff = value.clone(),
                "handoff_zone" => form.handoff_zone = value.clone(),
                "version" => form.version = value.clone(),
                other => {
                    let Some(rest) = other.strip_prefix("window-") else {
                        continue;
                    };
                    let Some((index, field)) = rest.split_once('-') else {
                        continue;
                    };
                    let Ok(index) = index.parse::<usize>() else {
                        continue;
                    };
                    if index >= MAX_WINDOW_ROWS {
                        continue;
                    }
                    if form.windows.len() <= index {
                        form.windows.resize_with(index + 1, WindowForm::default);
                    }
                    let w = &mut form.windows[index];
                    match field {
                        "days" if w.days.len() < 7 => w.days.push(value.clone()),
                        "start" => w.start = value.clone(),
                        "end" => w.end = value.clone(),
                        "zone" => w.zone = value.clone(),
                        _ => {}
                    }
                }
            }
        }
        form
    }

    /// The form filled from a stored layer.
    pub fn from_layer(layer: &Layer, version: i64) -> Self {
        LayerForm {
            name: layer.name.clone(),
            participants: layer
                .rotation
                .participants
                .iter()
                .map(i64::to_string)
                .collect(),
            unit: layer.rotation.shift.unit.to_string(),
            count: layer.rotation.shift.count.to_string(),
            handoff: layer.rotation.handoff.format("%Y-%m-%dT%H:%M").to_string(),
            handoff_zone: layer.rotation.handoff_time_zone.name().to_owned(),
            windows: layer
                .restrictions
                .iter()
                .map(|r| WindowForm {
                    days: r.days.iter().map(|d| day_value(*d).to_owned()).collect(),
                    start: r.start.to_string(),
                    end: r.end.to_string(),
                    zone: r.time_zone.name().to_owned(),
                })
                .collect(),
            version: version.to_string(),
        }
    }

    /// Adds empty participant slots and window rows to fill in.
    fn padded(mut self, default_zone: &str) -> Self {
        let slots = (self.participants.len() + 2).max(4);
        self.participants.resize(slots, String::new());
        let rows = (self.windows.len() + 1).max(2);
        self.windows.resize_with(rows, || WindowForm {
            zone: default_zone.to_owned(),
            ..Default::default()
        });
        for w in &mut self.windows {
            if w.zone.is_empty() {
                w.zone = default_zone.to_owned();
            }
        }
        self
    }
}

/// Parses the form into a layer. Returns the layer and, for each of its restrictions, the
/// form row it came from (to put the scheduler's errors beside the right row).
pub fn parse(
    form: &LayerForm,
    members: &[User],
    errors: &mut FieldErrors,
) -> Option<(Layer, Vec<usize>)> {
    let mut participants = Vec::new();
    for raw in &form.participants {
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        match raw.parse::<i64>() {
            Ok(id) if members.iter().any(|m| m.id == id && !m.disabled) => participants.push(id),
            _ => errors.add("participants", "Pick participants from the team's members"),
        }
    }
    if participants.is_empty() {
        errors.add("participants", "Pick at least one participant");
    }
    let unit = match form.unit.as_str() {
        "hours" => Some(ShiftUnit::Hours),
        "days" => Some(ShiftUnit::Days),
        "weeks" => Some(ShiftUnit::Weeks),
        _ => {
            errors.add("unit", "Choose hours, days or weeks");
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
    let handoff = parse_local(&form.handoff);
    if handoff.is_none() {
        errors.add(
            "handoff",
            "Enter the first handoff as a date and time, e.g. 2026-11-30 09:00",
        );
    }
    let handoff_zone = errors.check(
        "handoff_zone",
        heliograph_domain::TimeZone::parse(&form.handoff_zone),
    );
    let mut restrictions = Vec::new();
    let mut rows = Vec::new();
    for (j, w) in form.windows.iter().enumerate() {
        if w.is_blank() {
            continue;
        }
        let mut days = Vec::new();
        for d in &w.days {
            match weekday(d) {
                Some(day) if !days.contains(&day) => days.push(day),
                Some(_) => {}
                None => errors.add(format!("window-{j}-days"), "Unknown weekday"),
            }
        }
        if days.is_empty() {
            errors.add(format!("window-{j}-days"), "Tick at least one day");
        }
        let start = errors.check(
            format!("window-{j}-start"),
            w.start.trim().parse::<LocalTimeOfDay>(),
        );
        let end = errors.check(
            format!("window-{j}-end"),
            w.end.trim().parse::<LocalTimeOfDay>(),
        );
        let zone = errors.check(
            format!("window-{j}-zone"),
            heliograph_domain::TimeZone::parse(&w.zone),
        );
        if let (Some(start), Some(end), Some(zone)) = (start, end, zone) {
            restrictions.push(Restriction {
                days,
                start,
                end,
                time_zone: zone.tz(),
            });
            rows.push(j);
        }
    }
    let name = form.name.trim();
    if name.is_empty() {
        errors.add("name", "Layer name is required");
    }
    if !errors.is_empty() {
        return None;
    }
    Some((
        Layer {
            name: name.to_owned(),
            rotation: Rotation {
                participants,
                shift: ShiftLength {
                    unit: unit?,
                    count: count?,
                },
                handoff: handoff?,
                handoff_time_zone: handoff_zone?.tz(),
            },
            restrictions,
        },
        rows,
    ))
}

/// Puts the whole-schedule checker's problems for layer `index` beside the form's fields.
pub fn layer_errors(problems: Problems, index: usize, rows: &[usize], errors: &mut FieldErrors) {
    let prefix = format!("layers[{index}].");
    for (field, message) in problems {
        let Some(rest) = field.strip_prefix(&prefix) else {
            errors.add("form", message);
            continue;
        };
        let target = match rest {
            "name" => "name".to_owned(),
            "participants" => "participants".to_owned(),
            "shift.count" => "count".to_owned(),
            "handoff" => "handoff".to_owned(),
            other => match other
                .strip_prefix("restrictions[")
                .and_then(|r| r.split_once("]."))
                .and_then(|(k, f)| Some((k.parse::<usize>().ok()?, f)))
            {
                Some((k, f)) => {
                    let row = rows.get(k).copied().unwrap_or(k);
                    match f {
                        "days" => format!("window-{row}-days"),
                        _ => format!("window-{row}-start"),
                    }
                }
                None => "form".to_owned(),
            },
        };
        errors.add(target, message);
    }
}

#[derive(Template)]
#[template(path = "schedules/layer.html")]
struct LayerPage {
    shell: Shell,
    schedule: StoredSchedule,
    /// 1-based number of the layer edited; `None` for a new layer.
    number: Option<usize>,
    form: LayerForm,
    errors: FieldErrors,
    members: Vec<User>,
    zones: &'static [&'static str],
    days: &'static [(&'static str, &'static str)],
    units: &'static [(&'static str, &'static str)],
}

const UNITS: [(&str, &str); 3] = [("hours", "hours"), ("days", "days"), ("weeks", "weeks")];

async fn layer_page(
    state: &AppState,
    shell: Shell,
    schedule: StoredSchedule,
    number: Option<usize>,
    form: LayerForm,
    errors: FieldErrors,
) -> Result<LayerPage, AppError> {
    let members = state.store.team_members(schedule.team_id).await?;
    let form = form.padded(schedule.time_zone.name());
    Ok(LayerPage {
        shell,
        schedule,
        number,
        form,
        errors,
        members: members.into_iter().filter(|m| !m.disabled).collect(),
        zones: zone_names(),
        days: &DAYS,
        units: &UNITS,
    })
}

/// The next Monday at 09:00 in the schedule's zone, as a local date-time.
fn next_monday(state: &AppState, schedule: &StoredSchedule) -> NaiveDateTime {
    let today = state
        .store
        .now()
        .with_timezone(&schedule.time_zone.tz())
        .date_naive();
    let ahead = (7 - today.weekday().num_days_from_monday()) % 7;
    let ahead = if ahead == 0 { 7 } else { ahead };
    today
        .checked_add_days(chrono::Days::new(ahead.into()))
        .unwrap_or(today)
        .and_time(NaiveTime::from_hms_opt(9, 0, 0).unwrap_or(NaiveTime::MIN))
}

pub async fn new_form(
    State(state): State<AppState>,
    _auth: Auth<Manager>,
    shell: Shell,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let id = super::super::parse_id(&id)?;
    let schedule = state.store.schedule(id).await?;
    let form = LayerForm {
        name: format!("Layer {}", schedule.layers.len() + 1),
        unit: "weeks".into(),
        count: "1".into(),
        handoff: next_monday(&state, &schedule)
            .format("%Y-%m-%dT%H:%M")
            .to_string(),
        handoff_zone: schedule.time_zone.name().to_owned(),
        version: schedule.version.to_string(),
        ..Default::default()
    };
    let page = layer_page(&state, shell, schedule, None, form, FieldErrors::default()).await?;
    Ok(render_with_status(StatusCode::OK, &page))
}

pub async fn edit_form(
    State(state): State<AppState>,
    _auth: Auth<Manager>,
    shell: Shell,
    Path((id, number)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let id = super::super::parse_id(&id)?;
    let schedule = state.store.schedule(id).await?;
    let number = layer_number(&number, &schedule)?;
    let form = LayerForm::from_layer(&schedule.layers[number - 1], schedule.version);
    let page = layer_page(
        &state,
        shell,
        schedule,
        Some(number),
        form,
        FieldErrors::default(),
    )
    .await?;
    Ok(render_with_status(StatusCode::OK, &page))
}

fn layer_number(raw: &str, schedule: &StoredSchedule) -> Result<usize, AppError> {
    raw.parse::<usize>()
        .ok()
        .filter(|n| (1..=schedule.layers.len()).contains(n))
        .ok_or(AppError::NotFound)
}

/// Saves `layers` as the schedule's new layers if the form's version is current.
async fn save_layers(
    state: &AppState,
    auth: &Auth<Manager>,
    schedule: &StoredSchedule,
    layers: Vec<Layer>,
    version: &str,
) -> Result<Result<StoredSchedule, Problems>, AppError> {
    let draft = Draft {
        name: schedule.name.clone(),
        time_zone: schedule.time_zone.name().to_owned(),
        team_id: Some(schedule.team_id),
        layers,
    };
    let fields = match logic::check(&state.store, &draft).await? {
        Ok(fields) => fields,
        Err(problems) => return Ok(Err(problems)),
    };
    let version = version
        .trim()
        .parse::<i64>()
        .ok()
        .or(Some(schedule.version));
    match state
        .store
        .update_schedule(schedule.id, &fields, version, &auth.audit())
        .await
    {
        Ok(saved) => Ok(Ok(saved)),
        Err(StoreError::Conflict(m)) => {
            let mut p = Problems::new();
            p.insert("form".into(), m);
            Ok(Err(p))
        }
        Err(e) => Err(e.into()),
    }
}

async fn submit(
    state: AppState,
    auth: Auth<Manager>,
    shell: Shell,
    schedule: StoredSchedule,
    number: Option<usize>,
    pairs: Vec<(String, String)>,
) -> Result<Response, AppError> {
    let form = LayerForm::from_pairs(&pairs);
    let members = state.store.team_members(schedule.team_id).await?;
    let mut errors = FieldErrors::default();
    if let Some((layer, rows)) = parse(&form, &members, &mut errors) {
        let mut layers = schedule.layers.clone();
        let index = match number {
            Some(n) => {
                layers[n - 1] = layer;
                n - 1
            }
            None => {
                layers.push(layer);
                layers.len() - 1
            }
        };
        match save_layers(&state, &auth, &schedule, layers, &form.version).await? {
            Ok(saved) => {
                return Ok(redirect_with(
                    &format!("/schedules/{}", saved.id),
                    "success",
                    format!(
                        "Layer {} {}.",
                        saved.layers[index].name,
                        if number.is_some() { "saved" } else { "added" }
                    ),
                ));
            }
            Err(problems) => layer_errors(problems, index, &rows, &mut errors),
        }
    }
    let page = layer_page(&state, shell, schedule, number, form, errors).await?;
    Ok(render_with_status(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

pub async fn create(
    State(state): State<AppState>,
    auth: Auth<Manager>,
    shell: Shell,
    Path(id): Path<String>,
    CsrfForm(pairs): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let id = super::super::parse_id(&id)?;
    let schedule = state.store.schedule(id).await?;
    submit(state, auth, shell, schedule, None, pairs).await
}

pub async fn update(
    State(state): State<AppState>,
    auth: Auth<Manager>,
    shell: Shell,
    Path((id, number)): Path<(String, String)>,
    CsrfForm(pairs): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let id = super::super::parse_id(&id)?;
    let schedule = state.store.schedule(id).await?;
    let number = layer_number(&number, &schedule)?;
    submit(state, auth, shell, schedule, Some(number), pairs).await
}

#[derive(Debug, Default, Deserialize)]
pub struct VersionForm {
    #[serde(default)]
    version: String,
    #[serde(default)]
    direction: String,
}

async fn rearrange(
    state: &AppState,
    auth: &Auth<Manager>,
    schedule: &StoredSchedule,
    layers: Vec<Layer>,
    version: &str,
    done: String,
) -> Result<Response, AppError> {
    let to = format!("/schedules/{}", schedule.id);
    match save_layers(state, auth, schedule, layers, version).await? {
        Ok(_) => Ok(redirect_with(&to, "success", done)),
        Err(problems) => Ok(redirect_with(
            &to,
            "error",
            problems
                .into_values()
                .next()
                .unwrap_or_else(|| "The change could not be saved.".into()),
        )),
    }
}

pub async fn delete(
    State(state): State<AppState>,
    auth: Auth<Manager>,
    Path((id, number)): Path<(String, String)>,
    CsrfForm(form): CsrfForm<VersionForm>,
) -> Result<Response, AppError> {
    let id = super::super::parse_id(&id)?;
    let schedule = state.store.schedule(id).await?;
    let number = layer_number(&number, &schedule)?;
    let mut layers = schedule.layers.clone();
    let gone = layers.remove(number - 1);
    rearrange(
        &state,
        &auth,
        &schedule,
        layers,
        &form.version,
        format!("Layer {} removed.", gone.name),
    )
    .await
}

pub async fn move_layer(
    State(state): State<AppState>,
    auth: Auth<Manager>,
    Path((id, number)): Path<(String, String)>,
    CsrfForm(form): CsrfForm<VersionForm>,
) -> Result<Response, AppError> {
    let id = super::super::parse_id(&id)?;
    let schedule = state.store.schedule(id).await?;
    let number = layer_number(&number, &schedule)?;
    let i = number - 1;
    let j = match form.direction.as_str() {
        "up" if i + 1 < schedule.layers.len() => i + 1,
        "down" if i > 0 => i - 1,
        "up" | "down" => {
            return Ok(redirect_with(
                &format!("/schedules/{id}"),
                "info",
                "The layer is already there.",
            ));
        }
        _ => return Err(AppError::BadRequest("Move a layer up or down.".into())),
    };
    let mut layers = schedule.layers.clone();
    layers.swap(i, j);
    rearrange(
        &state,
        &auth,
        &schedule,
        layers,
        &form.version,
        format!(
            "Layer {} moved {}.",
            schedule.layers[i].name, form.direction
        ),
    )
    .await
}
