//! Secret calendar feeds: `GET /calendar/{secret}.ics`, subscribed to by calendar apps. No
//! session: the secret in the URL authenticates, so an unknown, malformed or revoked secret,
//! a disabled owner and a deleted schedule all answer the same 404. The feed is the final
//! schedule (overrides included) from 30 days back to 180 days ahead.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::TimeDelta;
use heliograph_domain::Role;
use heliograph_scheduler::ics;
use heliograph_store::StoreError;
use heliograph_store::schedules::CalendarFeed;
use heliograph_store::users::User;

use crate::auth::hash_secret;
use crate::{AppError, AppState};

/// How far back a feed reaches.
pub const FEED_PAST_DAYS: i64 = 30;
/// How far ahead a feed reaches.
pub const FEED_FUTURE_DAYS: i64 = 180;

/// Whether `raw` can be a secret from [`crate::auth::new_secret`] (43 URL-safe base64
/// characters); anything else is refused before the database is asked.
fn well_formed(raw: &str) -> bool {
    raw.len() == 43
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether the owner of a feed may still read what it shows. Any enabled user may read
/// schedules; the check lives here so that a stricter rule later has one place to go.
fn may_read(owner: &User) -> bool {
    !owner.disabled && owner.role.allows(Role::Viewer)
}

/// `GET /calendar/{secret}.ics`
pub async fn feed(
    State(state): State<AppState>,
    Path(file): Path<String>,
) -> Result<Response, AppError> {
    let secret = file
        .strip_suffix(".ics")
        .filter(|s| well_formed(s))
        .ok_or(AppError::NotFound)?;
    let feed = state
        .store
        .calendar_feed_by_secret(&hash_secret(secret))
        .await?
        .ok_or(AppError::NotFound)?;
    let owner = state.store.user(feed.user_id).await?;
    if !may_read(&owner) {
        return Err(AppError::NotFound);
    }
    let body = match render(&state, &feed, &owner).await {
        Err(StoreError::NotFound) => return Err(AppError::NotFound),
        other => other?,
    };
    Ok((
        [
            (header::CONTENT_TYPE, "text/calendar; charset=utf-8"),
            (header::CACHE_CONTROL, "private, max-age=300"),
        ],
        body,
    )
        .into_response())
}

/// The feed's calendar text.
async fn render(state: &AppState, feed: &CalendarFeed, owner: &User) -> Result<String, StoreError> {
    let now = state.store.now();
    let from = now - TimeDelta::days(FEED_PAST_DAYS);
    let to = now + TimeDelta::days(FEED_FUTURE_DAYS);
    let host = state.base_url.host_str().unwrap_or("heliograph.invalid");
    match feed.schedule_id {
        Some(id) => {
            let loaded = crate::schedules::load(&state.store, id, from, to).await?;
            let names: HashMap<i64, String> = state
                .store
                .all_users()
                .await?
                .into_iter()
                .map(|u| (u.id, u.name.to_string()))
                .collect();
            let shifts = loaded.schedule.calendar_shifts(from, to);
            Ok(ics::render(
                &loaded.stored.name,
                &shifts,
                |p| {
                    names
                        .get(&p)
                        .cloned()
                        .unwrap_or_else(|| format!("user {p}"))
                },
                &format!("schedule-{id}.{host}"),
            ))
        }
        None => {
            let owner_name = owner.name.to_string();
            let mut events = String::new();
            for (schedule, shifts) in
                super::shifts::person_shifts(&state.store, owner.id, from, to).await?
            {
                // Rendered per schedule so that each summary names its schedule, then the
                // events are gathered into one calendar. UIDs are scoped by person too, so
                // they differ from the same shift's UID in the schedule's own feed.
                let one = ics::render(
                    &schedule.name,
                    &shifts,
                    |_| owner_name.clone(),
                    &format!("user-{}.schedule-{}.{host}", owner.id, schedule.id),
                );
                events.push_str(events_of(&one));
            }
            let mut calendar = ics::render(
                &format!("{owner_name}: on-call shifts"),
                &[],
                |_| String::new(),
                host,
            );
            let at = calendar.rfind(END).unwrap_or(calendar.len());
            calendar.insert_str(at, &events);
            Ok(calendar)
        }
    }
}

/// The last line of every rendered calendar.
const END: &str = "END:VCALENDAR\r\n";

/// The `VEVENT` blocks of a calendar rendered by [`ics::render`]: from its first
/// `BEGIN:VEVENT` line to just before its `END:VCALENDAR` line. Folded continuation lines
/// start with a space, so a match after a line break is a whole line.
fn events_of(calendar: &str) -> &str {
    let end = calendar.strip_suffix(END).map_or(0, str::len);
    let start = calendar
        .find("\r\nBEGIN:VEVENT\r\n")
        .map_or(end, |i| i + 2)
        .min(end);
    &calendar[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use heliograph_scheduler::{Shift, Source};

    #[test]
    fn secrets_are_checked_for_shape_first() {
        assert!(well_formed(&crate::auth::new_secret()));
        assert!(!well_formed("short"));
        assert!(!well_formed(&"a".repeat(44)));
        assert!(!well_formed(&format!("{}/", "a".repeat(42))));
        assert!(!well_formed(&format!("{}.", "a".repeat(42))));
    }

    #[test]
    fn events_are_cut_out_whole() {
        let shift = Shift {
            start: "2026-11-02T09:00:00Z".parse().unwrap(),
            end: "2026-11-02T17:00:00Z".parse().unwrap(),
            participant: Some(1),
            source: Source::Layer(0),
        };
        let tricky = "BEGIN:VEVENT";
        let one = ics::render(tricky, &[shift], |_| "Ana".into(), "x");
        let events = events_of(&one);
        assert!(events.starts_with("BEGIN:VEVENT\r\n"), "{events}");
        assert!(events.ends_with("END:VEVENT\r\n"), "{events}");
        assert_eq!(events.matches("BEGIN:VEVENT\r\n").count(), 1);
        assert_eq!(
            events_of(&ics::render(tricky, &[], |_| "Ana".into(), "x")),
            ""
        );
    }
}
