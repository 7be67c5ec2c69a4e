//! `/api/v1/schedules`: schedules in CONTRACT.md's shape, who is on call, the final schedule
//! of a range, and overrides.
//!
//! Bodies are read with [`PathJson`], which names the field at fault (`layers[0].shift.unit`)
//! when JSON does not fit the types, and layers are converted by hand from the API's own body
//! types so that every problem (a bad zone, `"25:00"`, an unknown weekday) comes back keyed by
//! its field path. Checks shared with the pages go through [`crate::schedules`].

use std::collections::{BTreeMap, BTreeSet, HashMap};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{StatusCode, header};
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc, Weekday};
use heliograph_domain::Role;
use heliograph_scheduler::{
    Layer, LocalTimeOfDay, Restriction, Rotation, ShiftLength, ShiftUnit, horizon_end,
    horizon_start, parse_time_zone,
};
use heliograph_store::schedules::{StoredOverride, StoredSchedule};
use heliograph_store::{Store, StoreError};
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiAuth, ApiError, ApiQuery, ErrorBody, PageQuery, path_id};
use crate::AppState;
use crate::auth::{Manager, Responder, Viewer};
use crate::schedules::{self as shared, Draft, Problems};

/// Longest range `/shifts` and `/overrides` answer for, in days.
pub const MAX_RANGE_DAYS: i64 = 366;
/// Default length of the `/shifts` range, in days.
const DEFAULT_SHIFT_DAYS: i64 = 7;

// ---------------------------------------------------------------------------------------------
// Bodies

/// A JSON body whose shape errors name the field at fault: JSON that is not JSON answers 400
/// `invalid_json`; JSON of the wrong shape 422 `validation_failed` with `fields` keyed by the
/// path (`layers[0].restrictions[0].start`).
pub struct PathJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for PathJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                let essence = v
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                essence == "application/json"
                    || (essence.starts_with("application/") && essence.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Send the body as JSON with Content-Type: application/json.",
            ));
        }
        let bytes = Bytes::from_request(request, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!(
                        "The body is larger than the limit of {} bytes.",
                        crate::router::BODY_LIMIT
                    ),
                )
            } else {
                ApiError::bad_request(e.body_text())
            }
        })?;
        parse_body(&bytes).map(PathJson)
    }
}

/// Deserializes `bytes`, turning a shape error into a field error at its path.
fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let invalid_json = |e: &serde_json::Error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("The body is not valid JSON: {e}"),
        )
    };
    // serde would read a struct from a JSON array by position; the API speaks objects only.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(match serde_json::from_slice::<serde_json::Value>(bytes) {
            Err(e) => invalid_json(&e),
            Ok(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                "The body must be a JSON object.",
            ),
        });
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let err = match serde_path_to_error::deserialize(&mut de) {
        Ok(v) => {
            return match de.end() {
                Ok(()) => Ok(v),
                Err(e) => Err(invalid_json(&e)),
            };
        }
        Err(err) => err,
    };
    let path = err.path().to_string();
    let inner = err.into_inner();
    let text = inner.to_string();
    // serde_json appends " at line L column C"; the field path says more.
    let text = match text.rsplit_once(" at line ") {
        Some((head, _)) => head.to_owned(),
        None => text,
    };
    if !inner.is_data() {
        return Err(invalid_json(&inner));
    }
    let at_root = path == "." || path.is_empty();
    let (field, message) = if let Some(name) = quoted(&text, "missing field `") {
        let field = if at_root {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        };
        (field, format!("{name} is required"))
    } else if at_root {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            format!("The body must be a JSON object: {text}"),
        ));
    } else {
        (path, capitalise(&text))
    };
    Err(ApiError::validation(BTreeMap::from([(field, message)])))
}

/// The name in `` prefix`name` `` at the start of `text`.
fn quoted<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.strip_prefix(prefix)?.split('`').next()
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A schedule to create, or to replace a schedule with (CONTRACT.md's shape). The read-only
/// fields of a GET answer (`id`, `created_at`, `updated_at`) are accepted and ignored, so an
/// answer can be edited and sent back.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleBody {
    #[schema(required = true)]
    pub name: Option<String>,
    /// IANA zone in which the schedule is shown.
    #[schema(required = true, example = "UTC")]
    pub time_zone: Option<String>,
    #[schema(required = true)]
    pub team_id: Option<i64>,
    /// Lowest first; a later layer wins wherever it has someone on call.
    #[schema(required = true)]
    pub layers: Option<Vec<LayerBody>>,
    /// On PUT: the version last read. If the schedule changed since, nothing is saved and the
    /// answer is 409.
    pub version: Option<i64>,
    #[serde(default, rename = "id")]
    #[schema(ignore)]
    _id: Option<IgnoredAny>,
    #[serde(default, rename = "created_at")]
    #[schema(ignore)]
    _created_at: Option<IgnoredAny>,
    #[serde(default, rename = "updated_at")]
    #[schema(ignore)]
    _updated_at: Option<IgnoredAny>,
}

/// One layer: a rotation, optionally restricted to weekly windows.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LayerBody {
    #[schema(example = "APAC")]
    pub name: String,
    /// User ids in rotation order; `participants[0]` starts at `handoff`.
    pub participants: Vec<i64>,
    pub shift: ShiftBody,
    /// A local date-time in `handoff_time_zone`, e.g. `2026-01-05T09:00:00`.
    #[schema(example = "2026-01-05T09:00:00")]
    pub handoff: String,
    #[schema(example = "Asia/Singapore")]
    pub handoff_time_zone: String,
    /// None: around the clock.
    #[serde(default)]
    pub restrictions: Vec<RestrictionBody>,
}

/// How long one turn lasts.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShiftBody {
    pub unit: UnitBody,
    /// 1 to 8760 hours, 365 days or 52 weeks.
    pub count: u32,
}

/// Hours are elapsed hours; days and weeks are calendar units in `handoff_time_zone`.
#[derive(Deserialize, Serialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum UnitBody {
    Hours,
    Days,
    Weeks,
}

/// A weekly window of local time; it belongs to the weekday on which it starts.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestrictionBody {
    /// `mon` … `sun`.
    pub days: Vec<String>,
    /// `HH:MM`.
    #[schema(example = "09:00")]
    pub start: String,
    /// `HH:MM`; `24:00` is the end of the day; at or before `start` crosses midnight.
    #[schema(example = "17:00")]
    pub end: String,
    #[schema(example = "Asia/Singapore")]
    pub time_zone: String,
}

/// A stored schedule.
#[derive(Serialize, ToSchema)]
pub struct ScheduleOut {
    pub id: i64,
    pub name: String,
    pub time_zone: String,
    pub team_id: i64,
    #[schema(value_type = Vec<LayerBody>)]
    pub layers: Vec<Layer>,
    /// Send it back on PUT to refuse overwriting someone else's change.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<StoredSchedule> for ScheduleOut {
    fn from(s: StoredSchedule) -> Self {
        ScheduleOut {
            id: s.id,
            name: s.name,
            time_zone: s.time_zone.name().to_owned(),
            team_id: s.team_id,
            layers: s.layers,
            version: s.version,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// A page of schedules.
#[derive(Serialize, ToSchema)]
pub struct ScheduleList {
    pub schedules: Vec<ScheduleOut>,
    pub next_cursor: Option<i64>,
}

/// A person, as on-call answers name them.
#[derive(Serialize, ToSchema, Clone)]
pub struct PersonOut {
    pub id: i64,
    pub name: String,
    pub email: String,
}

/// Who is on call at `at`, and until when that answer holds.
#[derive(Serialize, ToSchema)]
pub struct OnCallOut {
    pub at: DateTime<Utc>,
    /// Empty in a gap.
    pub users: Vec<PersonOut>,
    /// When this answer stops holding (a handoff, a window closing, an override's edge).
    pub until: DateTime<Utc>,
}

/// One stretch of the final schedule.
#[derive(Serialize, ToSchema)]
pub struct ShiftOut {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// `null` in a gap.
    pub user: Option<PersonOut>,
}

/// The final schedule of a range: shifts tiling it exactly.
#[derive(Serialize, ToSchema)]
pub struct ShiftList {
    pub shifts: Vec<ShiftOut>,
}

/// A new override.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OverrideBody {
    pub user_id: i64,
    /// RFC 3339, inclusive.
    #[serde(deserialize_with = "rfc3339")]
    pub start: DateTime<Utc>,
    /// RFC 3339, exclusive.
    #[serde(deserialize_with = "rfc3339")]
    pub end: DateTime<Utc>,
}

/// An RFC 3339 instant, with a message that shows the expected form.
fn rfc3339<'de, D: serde::Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let text = String::deserialize(d)?;
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            serde::de::Error::custom(format!(
                "{:?} is not an RFC 3339 time; expected e.g. 2026-03-30T10:00:00Z",
                text.chars().take(60).collect::<String>()
            ))
        })
}

/// An override: `user_id` covers `[start, end)` on top of every layer.
#[derive(Serialize, ToSchema)]
pub struct OverrideOut {
    pub id: i64,
    pub schedule_id: i64,
    pub user_id: i64,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub created_by: Option<i64>,
    pub created_at: DateTime<Utc>,
}

impl From<StoredOverride> for OverrideOut {
    fn from(o: StoredOverride) -> Self {
        OverrideOut {
            id: o.id,
            schedule_id: o.schedule_id,
            user_id: o.user_id,
            start: o.start_at,
            end: o.end_at,
            created_by: o.created_by,
            created_at: o.created_at,
        }
    }
}

/// A schedule's overrides overlapping a range, oldest first.
#[derive(Serialize, ToSchema)]
pub struct OverrideList {
    pub overrides: Vec<OverrideOut>,
}

/// `?at=` (RFC 3339; default now).
#[derive(Deserialize, IntoParams)]
pub struct AtQuery {
    pub at: Option<String>,
}

/// `?from=&to=` (RFC 3339).
#[derive(Deserialize, IntoParams)]
pub struct RangeQuery {
    /// Default now.
    pub from: Option<String>,
    /// Default `from` + 7 days for shifts, + 366 days for overrides.
    pub to: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Converting and checking

fn layer_from(i: usize, body: &LayerBody, problems: &mut Problems) -> Option<Layer> {
    let at = |field: &str| format!("layers[{i}].{field}");
    let mut ok = true;
    let mut fail = |field: String, message: String| {
        problems.entry(field).or_insert(message);
        ok = false;
    };
    let handoff_time_zone = parse_time_zone(&body.handoff_time_zone)
        .map_err(|e| fail(at("handoff_time_zone"), capitalise(&e.to_string())))
        .ok();
    let handoff = parse_local(&body.handoff)
        .map_err(|m| fail(at("handoff"), m))
        .ok();
    let mut restrictions = Vec::with_capacity(body.restrictions.len());
    for (r, w) in body.restrictions.iter().enumerate() {
        let at = |field: &str| format!("layers[{i}].restrictions[{r}].{field}");
        let mut days = Vec::with_capacity(w.days.len());
        for d in &w.days {
            match d.parse::<Weekday>() {
                Ok(day) => days.push(day),
                Err(_) => fail(
                    at("days"),
                    format!("{d:?} is not a weekday; use mon, tue, wed, thu, fri, sat or sun"),
                ),
            }
        }
        let start = w
            .start
            .parse::<LocalTimeOfDay>()
            .map_err(|e| fail(at("start"), capitalise(&e.to_string())))
            .ok();
        let end = w
            .end
            .parse::<LocalTimeOfDay>()
            .map_err(|e| fail(at("end"), capitalise(&e.to_string())))
            .ok();
        let time_zone = parse_time_zone(&w.time_zone)
            .map_err(|e| fail(at("time_zone"), capitalise(&e.to_string())))
            .ok();
        if let (Some(start), Some(end), Some(time_zone)) = (start, end, time_zone) {
            restrictions.push(Restriction {
                days,
                start,
                end,
                time_zone,
            });
        }
    }
    let (Some(handoff), Some(handoff_time_zone)) = (handoff, handoff_time_zone) else {
        return None;
    };
    if !ok {
        return None;
    }
    Some(Layer {
        name: body.name.clone(),
        rotation: Rotation {
            participants: body.participants.clone(),
            shift: ShiftLength {
                unit: match body.shift.unit {
                    UnitBody::Hours => ShiftUnit::Hours,
                    UnitBody::Days => ShiftUnit::Days,
                    UnitBody::Weeks => ShiftUnit::Weeks,
                },
                count: body.shift.count,
            },
            handoff,
            handoff_time_zone,
        },
        restrictions,
    })
}

/// A local date-time such as `2026-01-05T09:00:00` (seconds optional).
fn parse_local(text: &str) -> Result<NaiveDateTime, String> {
    let text = text.trim();
    ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
        .ok_or_else(|| {
            if DateTime::parse_from_rfc3339(text).is_ok() {
                format!(
                    "{text:?} has an offset; give the local date-time without one (e.g. 2026-01-05T09:00:00) and its zone in handoff_time_zone"
                )
            } else {
                format!("{text:?} is not a local date-time; expected e.g. 2026-01-05T09:00:00")
            }
        })
}

/// Checks a body into the store's fields, or every problem found, by field path.
async fn checked(
    store: &Store,
    body: ScheduleBody,
) -> Result<heliograph_store::schedules::ScheduleFields, ApiError> {
    let mut problems = Problems::new();
    if body.name.is_none() {
        problems.insert("name".into(), "name is required".into());
    }
    if body.time_zone.is_none() {
        problems.insert("time_zone".into(), "time_zone is required".into());
    }
    if body.layers.is_none() {
        problems.insert(
            "layers".into(),
            "layers is required (a list, lowest layer first)".into(),
        );
    }
    let bodies = body.layers.unwrap_or_default();
    let converted: Vec<Option<Layer>> = bodies
        .iter()
        .enumerate()
        .map(|(i, l)| layer_from(i, l, &mut problems))
        .collect();
    // Layers that failed to convert are reported already; the rest is checked only when every
    // layer converted, so that the indices in the shared check's messages stay right.
    let layers: Vec<Layer> = if converted.iter().all(Option::is_some) {
        converted.into_iter().flatten().collect()
    } else {
        Vec::new()
    };
    let draft = Draft {
        name: body.name.unwrap_or_default(),
        time_zone: body.time_zone.unwrap_or_default(),
        team_id: body.team_id,
        layers,
    };
    match shared::check(store, &draft).await? {
        Ok(fields) if problems.is_empty() => Ok(fields),
        Ok(_) => Err(ApiError::validation(problems)),
        Err(more) => {
            for (k, v) in more {
                problems.entry(k).or_insert(v);
            }
            Err(ApiError::validation(problems))
        }
    }
}

/// Parses an RFC 3339 query parameter; `+` sent unescaped arrives as a space and is accepted.
fn instant(
    name: &str,
    raw: Option<&str>,
    default: DateTime<Utc>,
) -> Result<DateTime<Utc>, ApiError> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    let parsed = DateTime::parse_from_rfc3339(raw.trim())
        .or_else(|_| DateTime::parse_from_rfc3339(&raw.trim().replace(' ', "+")))
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                format!(
                    "{name}: {:?} is not an RFC 3339 time; expected e.g. 2026-03-29T08:30:00Z",
                    raw.chars().take(60).collect::<String>()
                ),
            )
        })?;
    if parsed < horizon_start() || parsed >= horizon_end() {
        return Err(ApiError::validation(BTreeMap::from([(
            name.to_owned(),
            "Times must be between the years 1900 and 2199".to_owned(),
        )])));
    }
    Ok(parsed)
}

/// `?from=&to=` checked: `to` after `from`, at most [`MAX_RANGE_DAYS`] apart.
fn range(
    q: &RangeQuery,
    now: DateTime<Utc>,
    default_days: i64,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let from = instant("from", q.from.as_deref(), now)?;
    let to = instant(
        "to",
        q.to.as_deref(),
        (from + TimeDelta::days(default_days)).min(horizon_end()),
    )?;
    let problem = if to <= from {
        Some("to must be after from".to_owned())
    } else if to - from > TimeDelta::days(MAX_RANGE_DAYS) {
        Some(format!("The range is at most {MAX_RANGE_DAYS} days"))
    } else {
        None
    };
    match problem {
        Some(p) => Err(ApiError::validation(BTreeMap::from([("to".to_owned(), p)]))),
        None => Ok((from, to)),
    }
}

/// Names the people behind participant ids, each looked up once.
async fn people(
    store: &Store,
    ids: impl IntoIterator<Item = i64>,
) -> Result<HashMap<i64, PersonOut>, ApiError> {
    let mut out = HashMap::new();
    for id in ids.into_iter().collect::<BTreeSet<_>>() {
        let person = match store.user(id).await {
            Ok(u) => PersonOut {
                id,
                name: u.name.to_string(),
                email: u.email.to_string(),
            },
            // A participant whose account is gone is still named by id.
            Err(StoreError::NotFound) => PersonOut {
                id,
                name: format!("user {id}"),
                email: String::new(),
            },
            Err(e) => return Err(e.into()),
        };
        out.insert(id, person);
    }
    Ok(out)
}

fn schedule_not_found(id: i64) -> impl Fn(StoreError) -> ApiError {
    move |e| match e {
        StoreError::NotFound => ApiError::not_found(format!("There is no schedule {id}.")),
        other => other.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Handlers

/// List schedules, newest first.
#[utoipa::path(get, path = "/api/v1/schedules", tag = "schedules", params(PageQuery),
    responses((status = 200, body = ScheduleList), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    _auth: ApiAuth<Viewer>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<ScheduleList>, ApiError> {
    let page = state.store.schedules_page(q.limit()?, q.cursor).await?;
    Ok(Json(ScheduleList {
        schedules: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Create a schedule (manager).
#[utoipa::path(post, path = "/api/v1/schedules", tag = "schedules", request_body = ScheduleBody,
    responses((status = 201, body = ScheduleOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    auth: ApiAuth<Manager>,
    PathJson(body): PathJson<ScheduleBody>,
) -> Result<(StatusCode, Json<ScheduleOut>), ApiError> {
    let fields = checked(&state.store, body).await?;
    let schedule = state.store.create_schedule(&fields, &auth.audit()).await?;
    Ok((StatusCode::CREATED, Json(schedule.into())))
}

/// One schedule.
#[utoipa::path(get, path = "/api/v1/schedules/{id}", tag = "schedules", params(("id" = i64, Path)),
    responses((status = 200, body = ScheduleOut), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    _auth: ApiAuth<Viewer>,
    Path(id): Path<String>,
) -> Result<Json<ScheduleOut>, ApiError> {
    let id = path_id(&id)?;
    let schedule = state
        .store
        .schedule(id)
        .await
        .map_err(schedule_not_found(id))?;
    Ok(Json(schedule.into()))
}

/// Replace a schedule whole (manager). With `version`, a schedule changed since that version
/// answers 409 and nothing is saved.
#[utoipa::path(put, path = "/api/v1/schedules/{id}", tag = "schedules", params(("id" = i64, Path)), request_body = ScheduleBody,
    responses((status = 200, body = ScheduleOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn replace(
    State(state): State<AppState>,
    auth: ApiAuth<Manager>,
    Path(id): Path<String>,
    PathJson(body): PathJson<ScheduleBody>,
) -> Result<Json<ScheduleOut>, ApiError> {
    let id = path_id(&id)?;
    state
        .store
        .schedule(id)
        .await
        .map_err(schedule_not_found(id))?;
    let version = body.version;
    let fields = checked(&state.store, body).await?;
    let schedule = state
        .store
        .update_schedule(id, &fields, version, &auth.audit())
        .await
        .map_err(schedule_not_found(id))?;
    Ok(Json(schedule.into()))
}

/// Delete a schedule with its overrides (manager).
#[utoipa::path(delete, path = "/api/v1/schedules/{id}", tag = "schedules", params(("id" = i64, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    auth: ApiAuth<Manager>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&id)?;
    state
        .store
        .delete_schedule(id, &auth.audit())
        .await
        .map_err(schedule_not_found(id))?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who is on call at `at` (default now), and until when.
#[utoipa::path(get, path = "/api/v1/schedules/{id}/oncall", tag = "schedules", params(("id" = i64, Path), AtQuery),
    responses((status = 200, body = OnCallOut), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn oncall(
    State(state): State<AppState>,
    _auth: ApiAuth<Viewer>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<AtQuery>,
) -> Result<Json<OnCallOut>, ApiError> {
    let id = path_id(&id)?;
    let at = instant("at", q.at.as_deref(), state.store.now())?;
    let stored = state
        .store
        .schedule(id)
        .await
        .map_err(schedule_not_found(id))?;
    // Overrides are loaded around `at`; if the answer lasts past them, load up to its end so
    // that an override starting later still cuts it short.
    let mut loaded = shared::load_stored(&state.store, stored, at, at).await?;
    let mut answer = loaded.schedule.on_call_at(at);
    if answer.until > at + TimeDelta::days(31) {
        loaded = shared::load_stored(&state.store, loaded.stored, at, answer.until).await?;
        answer = loaded.schedule.on_call_at(at);
    }
    let users = people(&state.store, answer.participant).await?;
    Ok(Json(OnCallOut {
        at,
        users: users.into_values().collect(),
        until: answer.until,
    }))
}

/// The final schedule of `[from, to)` (default: the next 7 days; at most 366).
#[utoipa::path(get, path = "/api/v1/schedules/{id}/shifts", tag = "schedules", params(("id" = i64, Path), RangeQuery),
    responses((status = 200, body = ShiftList), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn shifts(
    State(state): State<AppState>,
    _auth: ApiAuth<Viewer>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> Result<Json<ShiftList>, ApiError> {
    let id = path_id(&id)?;
    let (from, to) = range(&q, state.store.now(), DEFAULT_SHIFT_DAYS)?;
    let loaded = shared::load(&state.store, id, from, to)
        .await
        .map_err(schedule_not_found(id))?;
    let shifts = loaded.schedule.final_shifts(from, to);
    let names = people(&state.store, shifts.iter().filter_map(|s| s.participant)).await?;
    Ok(Json(ShiftList {
        shifts: shifts
            .into_iter()
            .map(|s| ShiftOut {
                start: s.start,
                end: s.end,
                user: s.participant.and_then(|p| names.get(&p).cloned()),
            })
            .collect(),
    }))
}

/// Overrides overlapping `[from, to)` (default: from now, 366 days), oldest first.
#[utoipa::path(get, path = "/api/v1/schedules/{id}/overrides", tag = "schedules", params(("id" = i64, Path), RangeQuery),
    responses((status = 200, body = OverrideList), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_overrides(
    State(state): State<AppState>,
    _auth: ApiAuth<Viewer>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<RangeQuery>,
) -> Result<Json<OverrideList>, ApiError> {
    let id = path_id(&id)?;
    let (from, to) = range(&q, state.store.now(), MAX_RANGE_DAYS)?;
    state
        .store
        .schedule(id)
        .await
        .map_err(schedule_not_found(id))?;
    let overrides = state.store.overrides_between(id, from, to).await?;
    Ok(Json(OverrideList {
        overrides: overrides.into_iter().map(Into::into).collect(),
    }))
}

/// Add an override: responders for themselves, managers for anyone. The people it moves on or
/// off call are told.
#[utoipa::path(post, path = "/api/v1/schedules/{id}/overrides", tag = "schedules", params(("id" = i64, Path)), request_body = OverrideBody,
    responses((status = 201, body = OverrideOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_override(
    State(state): State<AppState>,
    auth: ApiAuth<Responder>,
    Path(id): Path<String>,
    PathJson(body): PathJson<OverrideBody>,
) -> Result<(StatusCode, Json<OverrideOut>), ApiError> {
    let id = path_id(&id)?;
    if body.user_id != auth.user.id && !auth.user.role.allows(Role::Manager) {
        return Err(ApiError::forbidden(
            "Responders may add overrides for themselves only; covering someone else needs the manager role.",
        ));
    }
    let stored = state
        .store
        .schedule(id)
        .await
        .map_err(schedule_not_found(id))?;
    let mut problems = shared::check_override_range(body.start, body.end, state.store.now());
    if body.start < horizon_start() || body.end > horizon_end() {
        problems
            .entry("start".into())
            .or_insert_with(|| "Times must be between the years 1900 and 2199".into());
    }
    match state.store.user(body.user_id).await {
        Ok(u) if u.disabled => {
            problems.insert("user_id".into(), format!("{} is disabled", u.name));
        }
        Ok(_) => {}
        Err(StoreError::NotFound) => {
            problems.insert(
                "user_id".into(),
                format!("There is no user {}", body.user_id),
            );
        }
        Err(e) => return Err(e.into()),
    }
    if !problems.is_empty() {
        return Err(ApiError::validation(problems));
    }
    let loaded = shared::load_stored(&state.store, stored, body.start, body.end).await?;
    let created = shared::add_override(
        &state.store,
        &loaded,
        body.user_id,
        body.start,
        body.end,
        &auth.audit(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

/// One override.
#[utoipa::path(get, path = "/api/v1/schedules/{id}/overrides/{override_id}", tag = "schedules",
    params(("id" = i64, Path), ("override_id" = i64, Path)),
    responses((status = 200, body = OverrideOut), (status = 404, body = ErrorBody)))]
pub async fn get_override(
    State(state): State<AppState>,
    _auth: ApiAuth<Viewer>,
    Path((id, override_id)): Path<(String, String)>,
) -> Result<Json<OverrideOut>, ApiError> {
    let (id, override_id) = (path_id(&id)?, path_id(&override_id)?);
    let found = state
        .store
        .schedule_override(id, override_id)
        .await
        .map_err(override_not_found(id, override_id))?;
    Ok(Json(found.into()))
}

fn override_not_found(id: i64, override_id: i64) -> impl Fn(StoreError) -> ApiError {
    move |e| match e {
        StoreError::NotFound => {
            ApiError::not_found(format!("Schedule {id} has no override {override_id}."))
        }
        other => other.into(),
    }
}

/// Remove an override: managers any, responders their own.
#[utoipa::path(delete, path = "/api/v1/schedules/{id}/overrides/{override_id}", tag = "schedules",
    params(("id" = i64, Path), ("override_id" = i64, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_override(
    State(state): State<AppState>,
    auth: ApiAuth<Responder>,
    Path((id, override_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&id)?;
    let override_id = path_id(&override_id)?;
    let target = state
        .store
        .schedule_override(id, override_id)
        .await
        .map_err(override_not_found(id, override_id))?;
    if target.user_id != auth.user.id && !auth.user.role.allows(Role::Manager) {
        return Err(ApiError::forbidden(
            "Responders may remove their own overrides only; removing someone else's needs the manager role.",
        ));
    }
    let loaded = shared::load(&state.store, id, target.start_at, target.end_at).await?;
    shared::remove_override(&state.store, &loaded, override_id, &auth.audit()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields_of(err: ApiError) -> (StatusCode, Option<BTreeMap<String, String>>) {
        let ApiError { status, fields, .. } = err;
        (status, fields)
    }

    #[test]
    fn shape_errors_name_the_field() {
        let body = br#"{"name":"x","time_zone":"UTC","team_id":1,"layers":[{"name":"a","participants":[1],
            "shift":{"unit":"months","count":1},"handoff":"2026-01-05T09:00:00","handoff_time_zone":"UTC"}]}"#;
        let (status, fields) = fields_of(parse_body::<ScheduleBody>(body).err().unwrap());
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let fields = fields.unwrap();
        assert!(fields.contains_key("layers[0].shift.unit"), "{fields:?}");

        let body = br#"{"layers":[{"name":"a","participants":[1],"handoff":"2026-01-05T09:00:00","handoff_time_zone":"UTC"}]}"#;
        let (_, fields) = fields_of(parse_body::<ScheduleBody>(body).err().unwrap());
        assert_eq!(
            fields.unwrap().get("layers[0].shift").map(String::as_str),
            Some("shift is required")
        );

        let (status, fields) = fields_of(parse_body::<ScheduleBody>(b"[1]").err().unwrap());
        assert_eq!((status, fields), (StatusCode::UNPROCESSABLE_ENTITY, None));
        let (status, _) = fields_of(parse_body::<ScheduleBody>(b"{\"name\": ").err().unwrap());
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = fields_of(parse_body::<ScheduleBody>(b"{} x").err().unwrap());
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn layers_convert_with_every_problem_by_path() {
        let layer: LayerBody = serde_json::from_str(
            r#"{"name":"a","participants":[1],"shift":{"unit":"days","count":1},
                "handoff":"2026-01-05T09:00:00+01:00","handoff_time_zone":"Mars/Base",
                "restrictions":[{"days":["mon","funday"],"start":"25:00","end":"17:00","time_zone":"UTC"}]}"#,
        )
        .unwrap();
        let mut problems = Problems::new();
        assert!(layer_from(2, &layer, &mut problems).is_none());
        let keys: Vec<_> = problems.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "layers[2].handoff",
                "layers[2].handoff_time_zone",
                "layers[2].restrictions[0].days",
                "layers[2].restrictions[0].start"
            ]
        );
        assert!(problems["layers[2].handoff"].contains("has an offset"));
    }
}
