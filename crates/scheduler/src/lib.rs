//! Heliograph's on-call scheduler: a pure library. Given layers of rotations (each optionally
//! restricted to local-time windows) and overrides, it answers who is on call at an instant,
//! the final schedule of a range, its gaps and handoffs, per-person load, and renders shifts
//! as iCalendar. No I/O and no clock: every instant is passed in.
//!
//! Time follows CONTRACT.md: day and week shifts are calendar units in the handoff zone,
//! hour shifts are elapsed hours, and local times resolve by [`resolve_local`] (a skipped
//! local time means the first instant after the gap; a repeated one the earlier instant).
//! Everything is computed within the horizon [`horizon_start`]..[`horizon_end`] (1900..2200).
//!
//! ```
//! use chrono::{DateTime, NaiveDateTime, Utc, Weekday};
//! use heliograph_scheduler::{Layer, Restriction, Rotation, Schedule, ShiftLength, ShiftUnit, Source};
//!
//! let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
//! let apac = Layer {
//!     name: "APAC".into(),
//!     rotation: Rotation {
//!         participants: vec![3, 4, 5],
//!         shift: ShiftLength { unit: ShiftUnit::Weeks, count: 1 },
//!         handoff: "2026-01-05T09:00:00".parse::<NaiveDateTime>().unwrap(),
//!         handoff_time_zone: chrono_tz::Asia::Singapore,
//!     },
//!     restrictions: vec![Restriction {
//!         days: vec![Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri],
//!         start: "09:00".parse().unwrap(),
//!         end: "17:00".parse().unwrap(),
//!         time_zone: chrono_tz::Asia::Singapore,
//!     }],
//! };
//! let schedule = Schedule::new(vec![apac], vec![]).unwrap();
//! // Monday 2026-11-30, 10:00 in Singapore: week 47 of the rotation, so participant 5.
//! let now = schedule.on_call_at(t("2026-11-30T02:00:00Z"));
//! assert_eq!((now.participant, now.source), (Some(5), Source::Layer(0)));
//! assert_eq!(now.until, t("2026-11-30T09:00:00Z")); // 17:00 in Singapore
//! let gaps = schedule.gaps(t("2026-11-30T00:00:00Z"), t("2026-12-01T00:00:00Z"));
//! assert_eq!(gaps.len(), 2);
//! ```
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod ics;
mod model;
mod schedule;
mod time;

pub use model::{
    Layer, LocalTimeOfDay, MAX_LAYERS, MAX_PARTICIPANTS, MAX_SHIFT_DAYS, MAX_SHIFT_HOURS,
    MAX_SHIFT_WEEKS, Override, ParticipantId, Restriction, Rotation, ScheduleError, ShiftLength,
    ShiftUnit, TimeOfDayError, parse_time_zone,
};
pub use schedule::{Handoff, Load, OnCall, Schedule, Shift, Source};
pub use time::{horizon_end, horizon_start, resolve_local};
