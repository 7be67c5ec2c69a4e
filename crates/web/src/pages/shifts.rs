//! "My shifts": the viewer's upcoming shifts across every schedule (the final schedule, so
//! overrides included), and their secret calendar feeds, which are created, shown once,
//! regenerated and revoked like API tokens. The feeds themselves are served by
//! [`super::calendar`].

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, TimeDelta, Utc};
use heliograph_scheduler::{Shift, Source};
use heliograph_store::schedules::StoredSchedule;
use heliograph_store::{Store, StoreError};
use serde::Deserialize;

use crate::auth::{self, Auth, Viewer};
use crate::csrf::CsrfForm;
use crate::error::render_with_status;
use crate::flash::redirect_with;
use crate::views::Shell;
use crate::{AppError, AppState};

/// The ranges the page offers, in days.
pub const DAY_CHOICES: [i64; 4] = [7, 14, 28, 90];
/// The range shown without `?days=`.
pub const DEFAULT_DAYS: i64 = 14;

/// One shift of one schedule, ready to show.
struct ShiftView {
    schedule_id: i64,
    schedule_name: String,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    duration: String,
    from_override: bool,
    in_progress: bool,
}

/// A live feed, without its secret (only its hash is stored).
struct FeedView {
    id: i64,
    /// "All your shifts" or the schedule's name.
    what: String,
    schedule_id: Option<i64>,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
}

#[derive(Template)]
#[template(path = "shifts/shifts.html")]
struct ShiftsPage {
    shell: Shell,
    days: i64,
    choices: &'static [i64],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    shifts: Vec<ShiftView>,
    total: String,
    schedules: Vec<(i64, String)>,
    feeds: Vec<FeedView>,
    has_personal_feed: bool,
}

#[derive(Template)]
#[template(path = "shifts/feed_created.html")]
struct FeedCreatedPage {
    shell: Shell,
    what: String,
    url: String,
    webcal: String,
    regenerated: bool,
}

#[derive(Deserialize)]
pub struct ShiftsQuery {
    days: Option<String>,
}

/// Parses `?days=`: absent or empty is the default; anything but one of [`DAY_CHOICES`] is
/// refused with a sentence saying what is accepted.
fn parse_days(raw: Option<&str>) -> Result<i64, AppError> {
    let raw = raw.map(str::trim).unwrap_or("");
    if raw.is_empty() {
        return Ok(DEFAULT_DAYS);
    }
    raw.parse::<i64>()
        .ok()
        .filter(|d| DAY_CHOICES.contains(d))
        .ok_or_else(|| {
            AppError::BadRequest(format!(
                "Show 7, 14, 28 or 90 days of shifts; \"{}\" is not one of them.",
                raw.chars().take(20).collect::<String>()
            ))
        })
}

/// A duration as people say it: `8 h`, `7 h 30 min`, `45 min`.
pub fn hours(d: TimeDelta) -> String {
    let minutes = d.num_minutes().max(0);
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

/// Time covered by `intervals` within `[from, to)`, overlaps counted once (someone on call
/// for two schedules at once is on call once).
fn covered(
    mut intervals: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> TimeDelta {
    intervals.sort_unstable();
    let mut total = TimeDelta::zero();
    let mut reach = from;
    for (start, end) in intervals {
        let start = start.max(reach);
        let end = end.min(to);
        if end > start {
            total += end - start;
            reach = end;
        }
    }
    total
}

/// Every schedule `user_id` takes part in (layers, or overrides still running at `from`),
/// each loaded once with its overrides, and that person's final shifts overlapping
/// `[from, to)` at their full extent (a shift in progress keeps its real start).
pub async fn person_shifts(
    store: &Store,
    user_id: i64,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<(StoredSchedule, Vec<Shift>)>, StoreError> {
    let mut out = Vec::new();
    for id in store.schedule_ids_of(user_id, from).await? {
        let loaded = match crate::schedules::load(store, id, from, to).await {
            Ok(l) => l,
            // Deleted between the two reads: it has no shifts any more.
            Err(StoreError::NotFound) => continue,
            Err(e) => return Err(e),
        };
        let shifts: Vec<Shift> = loaded
            .schedule
            .calendar_shifts(from, to)
            .into_iter()
            .filter(|s| s.participant == Some(user_id))
            .collect();
        out.push((loaded.stored, shifts));
    }
    Ok(out)
}

/// The full URL of a feed and its `webcal://` twin, from the installation's base URL (which
/// may carry a path prefix).
pub fn feed_urls(base: &url::Url, secret: &str) -> (String, String) {
    let url = format!(
        "{}/calendar/{secret}.ics",
        base.as_str().trim_end_matches('/')
    );
    let webcal = match url.split_once("://") {
        Some((_, rest)) => format!("webcal://{rest}"),
        None => url.clone(),
    };
    (url, webcal)
}

/// `GET /my/shifts?days=14`
pub async fn get(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    shell: Shell,
    Query(query): Query<ShiftsQuery>,
) -> Result<Response, AppError> {
    let days = parse_days(query.days.as_deref())?;
    let now = state.store.now();
    let to = now + TimeDelta::days(days);
    let user_id = auth.user.id;

    let mut shifts = Vec::new();
    for (schedule, list) in person_shifts(&state.store, user_id, now, to).await? {
        for s in list {
            shifts.push(ShiftView {
                schedule_id: schedule.id,
                schedule_name: schedule.name.clone(),
                start: s.start,
                end: s.end,
                duration: hours(s.end - s.start),
                from_override: matches!(s.source, Source::Override(_)),
                in_progress: s.start <= now,
            });
        }
    }
    shifts.sort_by(|a, b| (a.start, &a.schedule_name).cmp(&(b.start, &b.schedule_name)));
    let total = covered(shifts.iter().map(|s| (s.start, s.end)).collect(), now, to);

    let schedules: Vec<(i64, String)> = state
        .store
        .schedules()
        .await?
        .into_iter()
        .map(|s| (s.id, s.name))
        .collect();
    let feeds: Vec<FeedView> = state
        .store
        .calendar_feeds_of(user_id)
        .await?
        .into_iter()
        .map(|f| FeedView {
            id: f.id,
            what: match f.schedule_id {
                None => "All your shifts".to_owned(),
                Some(sid) => schedules
                    .iter()
                    .find(|(id, _)| *id == sid)
                    .map(|(_, name)| format!("Schedule {name}"))
                    .unwrap_or_else(|| format!("Schedule {sid}")),
            },
            schedule_id: f.schedule_id,
            created_at: f.created_at,
            last_used_at: f.last_used_at,
        })
        .collect();
    let has_personal_feed = feeds.iter().any(|f| f.schedule_id.is_none());
    Ok(render_with_status(
        StatusCode::OK,
        &ShiftsPage {
            shell,
            days,
            choices: &DAY_CHOICES,
            from: now,
            to,
            shifts,
            total: hours(total),
            schedules,
            feeds,
            has_personal_feed,
        },
    ))
}

#[derive(Deserialize)]
pub struct FeedForm {
    /// Empty for the personal feed, otherwise a schedule id.
    #[serde(default)]
    schedule: String,
}

/// `POST /my/shifts/feeds`: creates a feed, revoking the earlier one of the same kind
/// (regenerating its URL), and shows the new URL once.
pub async fn create_feed(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    shell: Shell,
    CsrfForm(form): CsrfForm<FeedForm>,
) -> Result<Response, AppError> {
    let raw = form.schedule.trim();
    let (schedule_id, what) = if raw.is_empty() || raw == "personal" {
        (None, "all your shifts".to_owned())
    } else {
        let schedule = match raw.parse::<i64>() {
            Ok(id) if id > 0 => match state.store.schedule(id).await {
                Ok(s) => Some(s),
                Err(StoreError::NotFound) => None,
                Err(e) => return Err(e.into()),
            },
            _ => None,
        };
        let Some(schedule) = schedule else {
            return Ok(redirect_with(
                "/my/shifts",
                "error",
                "Choose a schedule from the list; that one does not exist (any more). No feed was made.",
            ));
        };
        (Some(schedule.id), format!("schedule {}", schedule.name))
    };
    let regenerated = state
        .store
        .calendar_feeds_of(auth.user.id)
        .await?
        .iter()
        .any(|f| f.schedule_id == schedule_id);
    let secret = auth::new_secret();
    state
        .store
        .create_calendar_feed(
            auth.user.id,
            schedule_id,
            &auth::hash_secret(&secret),
            &auth.audit(),
        )
        .await?;
    let (url, webcal) = feed_urls(&state.base_url, &secret);
    Ok(render_with_status(
        StatusCode::OK,
        &FeedCreatedPage {
            shell,
            what,
            url,
            webcal,
            regenerated,
        },
    ))
}

#[derive(Deserialize)]
pub struct Empty {}

/// `POST /my/shifts/feeds/{id}/revoke`: only the owner's own live feeds; anything else is a 404.
pub async fn revoke_feed(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, AppError> {
    let id = super::parse_id(&id)?;
    state
        .store
        .revoke_calendar_feed(auth.user.id, id, &auth.audit())
        .await?;
    Ok(redirect_with(
        "/my/shifts",
        "success",
        "Calendar feed revoked: its URL no longer works. Calendars subscribed to it stop updating.",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn days_are_one_of_the_choices() {
        assert_eq!(parse_days(None).unwrap(), 14);
        assert_eq!(parse_days(Some("")).unwrap(), 14);
        assert_eq!(parse_days(Some("90")).unwrap(), 90);
        for bad in ["3", "-7", "x", "14.0", "1000000000000000000000"] {
            assert!(parse_days(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_read_like_speech() {
        assert_eq!(hours(TimeDelta::hours(8)), "8 h");
        assert_eq!(hours(TimeDelta::minutes(450)), "7 h 30 min");
        assert_eq!(hours(TimeDelta::minutes(45)), "45 min");
        assert_eq!(hours(TimeDelta::zero()), "0 min");
    }

    #[test]
    fn coverage_clips_and_counts_overlaps_once() {
        let from = t("2026-11-02T00:00:00Z");
        let to = t("2026-11-03T00:00:00Z");
        let got = covered(
            vec![
                (t("2026-11-01T20:00:00Z"), t("2026-11-02T02:00:00Z")),
                (t("2026-11-02T09:00:00Z"), t("2026-11-02T17:00:00Z")),
                (t("2026-11-02T12:00:00Z"), t("2026-11-02T18:00:00Z")),
                (t("2026-11-02T22:00:00Z"), t("2026-11-03T09:00:00Z")),
            ],
            from,
            to,
        );
        assert_eq!(got, TimeDelta::hours(2 + 9 + 2));
    }

    #[test]
    fn feed_urls_keep_a_path_prefix() {
        let base = url::Url::parse("https://ops.example.com/heliograph/").unwrap();
        let (url, webcal) = feed_urls(&base, "abc");
        assert_eq!(url, "https://ops.example.com/heliograph/calendar/abc.ics");
        assert_eq!(
            webcal,
            "webcal://ops.example.com/heliograph/calendar/abc.ics"
        );
    }
}
