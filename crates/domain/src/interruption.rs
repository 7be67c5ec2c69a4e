//! How a page interrupted a person, judged by their own local time when it was sent (issue 9):
//! working hours are Monday to Friday 08:00–18:00, sleep hours 22:00–08:00 on any day, and
//! everything else (weekday evenings 18:00–22:00, weekend days 08:00–22:00) is evening/weekend.
//! Sleep wins over weekend. Several pages to one person within 60 seconds count once; the
//! others are [`REPEAT`].
//!
//! The class is fixed for all people (not their own working hours) so that loads compare
//! across a team: "a page at 03:00" means the same thing for everyone.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, TimeDelta, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use serde::Serialize;

use crate::InvalidValue;

/// Pages to the same person closer together than this count as one interruption.
pub const REPEAT_WINDOW: TimeDelta = TimeDelta::seconds(60);

/// The stored value of a page within [`REPEAT_WINDOW`] of a counted interruption.
pub const REPEAT: &str = "repeat";

/// The class of a counted interruption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InterruptionClass {
    /// Monday to Friday, 08:00–18:00 local.
    Working,
    /// Weekday 18:00–22:00, or Saturday/Sunday 08:00–22:00 local.
    Evening,
    /// 22:00–08:00 local, any day.
    Sleep,
}

impl InterruptionClass {
    /// Every class, in display order.
    pub const ALL: [InterruptionClass; 3] = [
        InterruptionClass::Working,
        InterruptionClass::Evening,
        InterruptionClass::Sleep,
    ];

    /// The stored name (`working`, `evening`, `sleep`).
    pub fn as_str(self) -> &'static str {
        match self {
            InterruptionClass::Working => "working",
            InterruptionClass::Evening => "evening",
            InterruptionClass::Sleep => "sleep",
        }
    }

    /// The label shown to people.
    pub fn label(self) -> &'static str {
        match self {
            InterruptionClass::Working => "Working hours",
            InterruptionClass::Evening => "Evening/weekend",
            InterruptionClass::Sleep => "Sleep hours",
        }
    }
}

impl fmt::Display for InterruptionClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for InterruptionClass {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "working" => Ok(InterruptionClass::Working),
            "evening" => Ok(InterruptionClass::Evening),
            "sleep" => Ok(InterruptionClass::Sleep),
            other => Err(InvalidValue::new(format!(
                "unknown interruption class {:?}",
                other.chars().take(32).collect::<String>()
            ))),
        }
    }
}

/// The class of a page sent at `at` to a person whose zone is `zone`.
pub fn classify(at: DateTime<Utc>, zone: Tz) -> InterruptionClass {
    let local = at.with_timezone(&zone);
    let hour = local.hour();
    if !(8..22).contains(&hour) {
        return InterruptionClass::Sleep;
    }
    let weekend = matches!(local.weekday(), Weekday::Sat | Weekday::Sun);
    if weekend || hour >= 18 {
        InterruptionClass::Evening
    } else {
        InterruptionClass::Working
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use InterruptionClass::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn boundaries_in_utc() {
        let z = Tz::UTC;
        // 2026-11-30 is a Monday.
        assert_eq!(classify(at("2026-11-30T07:59:59Z"), z), Sleep);
        assert_eq!(classify(at("2026-11-30T08:00:00Z"), z), Working);
        assert_eq!(classify(at("2026-11-30T17:59:59Z"), z), Working);
        assert_eq!(classify(at("2026-11-30T18:00:00Z"), z), Evening);
        assert_eq!(classify(at("2026-11-30T21:59:59Z"), z), Evening);
        assert_eq!(classify(at("2026-11-30T22:00:00Z"), z), Sleep);
        assert_eq!(classify(at("2026-11-30T00:00:00Z"), z), Sleep);
    }

    #[test]
    fn weekends_are_evening_by_day_and_sleep_by_night() {
        let z = Tz::UTC;
        // Saturday 2026-11-28 and Sunday 2026-11-29.
        assert_eq!(classify(at("2026-11-28T12:00:00Z"), z), Evening);
        assert_eq!(classify(at("2026-11-28T08:00:00Z"), z), Evening);
        assert_eq!(classify(at("2026-11-29T21:30:00Z"), z), Evening);
        // Sleep wins over weekend.
        assert_eq!(classify(at("2026-11-28T03:00:00Z"), z), Sleep);
        assert_eq!(classify(at("2026-11-29T23:00:00Z"), z), Sleep);
        // Friday night after 22:00 is sleep, not weekend.
        assert_eq!(classify(at("2026-11-27T22:30:00Z"), z), Sleep);
    }

    #[test]
    fn kathmandu_is_five_forty_five_ahead() {
        let z: Tz = "Asia/Kathmandu".parse().unwrap();
        // Monday 2026-11-30: 02:10 UTC is 07:55 local (sleep), 02:20 UTC is 08:05 (working).
        assert_eq!(classify(at("2026-11-30T02:10:00Z"), z), Sleep);
        assert_eq!(classify(at("2026-11-30T02:14:59Z"), z), Sleep);
        assert_eq!(classify(at("2026-11-30T02:15:00Z"), z), Working);
        assert_eq!(classify(at("2026-11-30T02:20:00Z"), z), Working);
        // 12:14 UTC is 17:59 local; 12:15 UTC is 18:00 (evening); 16:15 UTC is 22:00 (sleep).
        assert_eq!(classify(at("2026-11-30T12:14:00Z"), z), Working);
        assert_eq!(classify(at("2026-11-30T12:15:00Z"), z), Evening);
        assert_eq!(classify(at("2026-11-30T16:15:00Z"), z), Sleep);
        // Sunday 2026-11-29 20:00 UTC is Monday 01:45 local: sleep.
        assert_eq!(classify(at("2026-11-29T20:00:00Z"), z), Sleep);
        // Friday 2026-11-27 20:00 UTC is Saturday 01:45; Saturday 04:00 UTC is Saturday 09:45.
        assert_eq!(classify(at("2026-11-28T04:00:00Z"), z), Evening);
    }

    #[test]
    fn london_across_the_spring_change() {
        let z: Tz = "Europe/London".parse().unwrap();
        // Friday 2026-03-27, GMT: 07:30 UTC is 07:30 local (sleep).
        assert_eq!(classify(at("2026-03-27T07:30:00Z"), z), Sleep);
        // Clocks go forward on Sunday 2026-03-29 at 01:00 UTC.
        assert_eq!(classify(at("2026-03-29T00:59:00Z"), z), Sleep);
        assert_eq!(classify(at("2026-03-29T07:30:00Z"), z), Evening); // 08:30 BST Sunday
        // Monday 2026-03-30, BST: 07:30 UTC is 08:30 local (working); 17:30 UTC is 18:30.
        assert_eq!(classify(at("2026-03-30T07:30:00Z"), z), Working);
        assert_eq!(classify(at("2026-03-30T17:30:00Z"), z), Evening);
        assert_eq!(classify(at("2026-03-30T21:00:00Z"), z), Sleep); // 22:00 BST
    }

    #[test]
    fn new_york_across_the_autumn_change() {
        let z: Tz = "America/New_York".parse().unwrap();
        // Clocks go back on Sunday 2026-11-01 at 06:00 UTC (02:00 EDT becomes 01:00 EST).
        // 05:30 UTC is 01:30 EDT and 06:30 UTC is 01:30 EST: both sleep.
        assert_eq!(classify(at("2026-11-01T05:30:00Z"), z), Sleep);
        assert_eq!(classify(at("2026-11-01T06:30:00Z"), z), Sleep);
        // Friday 2026-10-30 12:30 UTC is 08:30 EDT (working); Monday 2026-11-02 12:30 UTC is
        // 07:30 EST (sleep), 13:30 UTC is 08:30 EST (working).
        assert_eq!(classify(at("2026-10-30T12:30:00Z"), z), Working);
        assert_eq!(classify(at("2026-11-02T12:30:00Z"), z), Sleep);
        assert_eq!(classify(at("2026-11-02T13:30:00Z"), z), Working);
        // Monday 2026-11-02 02:30 UTC is Sunday 21:30 EST: weekend evening.
        assert_eq!(classify(at("2026-11-02T02:30:00Z"), z), Evening);
    }

    #[test]
    fn names_round_trip() {
        for c in InterruptionClass::ALL {
            assert_eq!(c.as_str().parse::<InterruptionClass>().unwrap(), c);
        }
        assert!(REPEAT.parse::<InterruptionClass>().is_err());
    }
}
