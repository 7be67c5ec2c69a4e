//! A person's working hours, in their own zone: the days and the local window in which SEV3
//! and SEV4 may page them, and how long before a shift they hear of it.
//!
//! Local times are resolved by the rule of CONTRACT.md: a local time skipped when clocks go
//! forward means the first instant after the gap; a repeated one means the earlier instant.
//! Days are added on the calendar (`NaiveDate`), never as 24 hours, so 09:00 stays 09:00
//! across a DST change.

use std::fmt;
use std::str::FromStr;

use chrono::{
    DateTime, Datelike, MappedLocalTime, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeDelta,
    TimeZone, Utc, Weekday,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::InvalidValue;

/// A local time of day in whole minutes, `00:00` to `24:00` (the midnight that ends a day).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeOfDay(u16);

impl TimeOfDay {
    /// Midnight at the start of a day.
    pub const MIDNIGHT: TimeOfDay = TimeOfDay(0);
    /// Midnight at the end of a day (`24:00`).
    pub const END_OF_DAY: TimeOfDay = TimeOfDay(1440);

    /// Parses `HH:MM` (`24:00` included), as typed in a form.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let bad = || InvalidValue::new("Use the 24-hour form HH:MM, for example 09:00 or 17:30");
        let text = raw.trim();
        let (h, m) = text.split_once(':').ok_or_else(bad)?;
        if h.is_empty() || h.len() > 2 || m.len() != 2 {
            return Err(bad());
        }
        let h: u16 = h.parse().map_err(|_| bad())?;
        let m: u16 = m.parse().map_err(|_| bad())?;
        if m >= 60 || h > 24 || (h == 24 && m != 0) {
            return Err(bad());
        }
        Ok(TimeOfDay(h * 60 + m))
    }

    /// The time `minutes` past midnight, if within `0..=1440`.
    pub fn from_minutes(minutes: u16) -> Option<Self> {
        (minutes <= 1440).then_some(TimeOfDay(minutes))
    }

    /// Minutes past midnight (1440 for `24:00`).
    pub fn minutes(self) -> u16 {
        self.0
    }

    /// This time on `date` as a local date-time (`24:00` is the next day's midnight).
    fn on(self, date: NaiveDate) -> Option<NaiveDateTime> {
        if self.0 >= 1440 {
            return Some(date.succ_opt()?.and_time(NaiveTime::MIN));
        }
        let time = NaiveTime::from_num_seconds_from_midnight_opt(u32::from(self.0) * 60, 0)?;
        Some(date.and_time(time))
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl FromStr for TimeOfDay {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for TimeOfDay {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<TimeOfDay> for String {
    fn from(value: TimeOfDay) -> String {
        value.to_string()
    }
}

/// The longest handoff notice lead time, in minutes (one day).
pub const MAX_HANDOFF_LEAD_MINUTES: u16 = 1440;

/// When a person may be paged for SEV3 and SEV4, in their own zone.
///
/// A window starts on each of `days` at `start` and runs to `end` the same day, or, when `end`
/// is not after `start`, to `end` the next day: a window crossing midnight belongs to the day
/// it starts on (as schedule restrictions do). `end` may be `24:00`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkingHours {
    days: Vec<Weekday>,
    start: TimeOfDay,
    end: TimeOfDay,
    handoff_lead_minutes: u16,
}

impl Default for WorkingHours {
    /// Monday to Friday, 09:00–18:00, handoff notices an hour ahead (the database defaults).
    fn default() -> Self {
        WorkingHours {
            days: vec![
                Weekday::Mon,
                Weekday::Tue,
                Weekday::Wed,
                Weekday::Thu,
                Weekday::Fri,
            ],
            start: TimeOfDay(9 * 60),
            end: TimeOfDay(18 * 60),
            handoff_lead_minutes: 60,
        }
    }
}

impl WorkingHours {
    /// Checked working hours: at least one day (kept in Monday-first order, without
    /// repeats), a start before `24:00`, an end that differs from the start, and a lead time
    /// of at most a day.
    pub fn new(
        days: impl IntoIterator<Item = Weekday>,
        start: TimeOfDay,
        end: TimeOfDay,
        handoff_lead_minutes: u16,
    ) -> Result<Self, InvalidValue> {
        let mut days: Vec<Weekday> = days.into_iter().collect();
        days.sort_by_key(|d| d.num_days_from_monday());
        days.dedup();
        if days.is_empty() {
            return Err(InvalidValue::new("Pick at least one working day"));
        }
        if start >= TimeOfDay::END_OF_DAY {
            return Err(InvalidValue::new("The start must be before 24:00"));
        }
        if start == end {
            return Err(InvalidValue::new(
                "The end must differ from the start (use 00:00 to 24:00 for the whole day)",
            ));
        }
        if handoff_lead_minutes > MAX_HANDOFF_LEAD_MINUTES {
            return Err(InvalidValue::new(format!(
                "The lead time must be between 0 and {MAX_HANDOFF_LEAD_MINUTES} minutes"
            )));
        }
        Ok(WorkingHours {
            days,
            start,
            end,
            handoff_lead_minutes,
        })
    }

    /// Parses the stored form: days as `mon,tue,…`, times as `HH:MM`.
    pub fn from_stored(
        days: &str,
        start: &str,
        end: &str,
        handoff_lead_minutes: i64,
    ) -> Result<Self, InvalidValue> {
        let days = parse_days(days)?;
        let lead = u16::try_from(handoff_lead_minutes)
            .map_err(|_| InvalidValue::new("The lead time is out of range"))?;
        Self::new(days, TimeOfDay::parse(start)?, TimeOfDay::parse(end)?, lead)
    }

    /// The working days, Monday first.
    pub fn days(&self) -> &[Weekday] {
        &self.days
    }

    /// Whether `day` is a working day.
    pub fn works_on(&self, day: Weekday) -> bool {
        self.days.contains(&day)
    }

    /// The days as stored: `mon,tue,wed`.
    pub fn days_text(&self) -> String {
        self.days
            .iter()
            .map(|d| day_code(*d))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Local start of each window.
    pub fn start(&self) -> TimeOfDay {
        self.start
    }

    /// Local end of each window (`24:00` = midnight ending the start day; at or before the
    /// start = the next day).
    pub fn end(&self) -> TimeOfDay {
        self.end
    }

    /// Whether a window runs past midnight into the next day.
    pub fn crosses_midnight(&self) -> bool {
        self.end <= self.start
    }

    /// How many minutes before a shift starts the person gets a handoff notice.
    pub fn handoff_lead_minutes(&self) -> u16 {
        self.handoff_lead_minutes
    }

    /// The window that starts on local `date`, as instants, if `date` is a working day.
    /// A window that falls wholly in a DST gap is empty (`start == end`).
    fn window_on(&self, date: NaiveDate, tz: Tz) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        if !self.works_on(date.weekday()) {
            return None;
        }
        let end_date = if self.crosses_midnight() {
            date.succ_opt()?
        } else {
            date
        };
        let start = resolve_local(tz, self.start.on(date)?);
        let end = resolve_local(tz, self.end.on(end_date)?);
        Some((start, end))
    }

    /// Whether `t` falls within working hours in `tz`.
    pub fn contains(&self, t: DateTime<Utc>, tz: Tz) -> bool {
        let today = t.with_timezone(&tz).date_naive();
        // A window that began yesterday may still be open; tomorrow's is checked too for
        // zones whose clocks go back across midnight.
        [today.pred_opt(), Some(today), today.succ_opt()]
            .into_iter()
            .flatten()
            .filter_map(|d| self.window_on(d, tz))
            .any(|(start, end)| start <= t && t < end)
    }

    /// The first instant at or after `t` at which a window of working hours begins. When `t`
    /// is inside a window, that is the start of the next one; see [`Self::available_from`]
    /// for "now, or when working hours next begin".
    pub fn next_start(&self, t: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
        let today = t.with_timezone(&tz).date_naive();
        let mut date = today.pred_opt().unwrap_or(today);
        // Every week has a working day, so nine days always reach one; the bound only guards
        // against the end of chrono's calendar.
        for _ in 0..10 {
            if let Some((start, end)) = self.window_on(date, tz)
                && start >= t
                && start < end
            {
                return start;
            }
            match date.succ_opt() {
                Some(next) => date = next,
                None => break,
            }
        }
        t
    }

    /// `t` when it lies within working hours, otherwise the next instant they begin: when a
    /// SEV3 or SEV4 page held for working hours may go out.
    pub fn available_from(&self, t: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
        if self.contains(t, tz) {
            t
        } else {
            self.next_start(t, tz)
        }
    }
}

/// The stored code of a weekday: `mon` … `sun`.
pub fn day_code(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "mon",
        Weekday::Tue => "tue",
        Weekday::Wed => "wed",
        Weekday::Thu => "thu",
        Weekday::Fri => "fri",
        Weekday::Sat => "sat",
        Weekday::Sun => "sun",
    }
}

/// Parses one weekday code (`mon` … `sun`, any case).
pub fn parse_day(raw: &str) -> Result<Weekday, InvalidValue> {
    let code = raw.trim().to_ascii_lowercase();
    [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ]
    .into_iter()
    .find(|d| day_code(*d) == code)
    .ok_or_else(|| InvalidValue::new(format!("\"{}\" is not a day of the week", raw.trim())))
}

/// Parses `mon,tue,…` (empty parts ignored).
fn parse_days(raw: &str) -> Result<Vec<Weekday>, InvalidValue> {
    raw.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(parse_day)
        .collect()
}

/// Resolves a local time in `tz` by the rule of CONTRACT.md: ambiguous → the earlier
/// instant; skipped → the first instant after the gap (the moment the clocks jumped).
pub fn resolve_local(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        MappedLocalTime::Single(t) => t.with_timezone(&Utc),
        MappedLocalTime::Ambiguous(a, b) => a.with_timezone(&Utc).min(b.with_timezone(&Utc)),
        MappedLocalTime::None => first_instant_after_gap(tz, local),
    }
}

/// The instant the clocks jumped over `local`, which lies in a gap of `tz`: the first whole
/// second whose local time is at or past `local`, found by bisection between the readings
/// with the offsets from before and after the gap.
fn first_instant_after_gap(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    let offset_at = |utc_secs: i64| -> i64 {
        DateTime::from_timestamp(utc_secs, 0)
            .map(|t| {
                i64::from(
                    tz.offset_from_utc_datetime(&t.naive_utc())
                        .fix()
                        .local_minus_utc(),
                )
            })
            .unwrap_or(0)
    };
    let target = local.and_utc().timestamp();
    let day = TimeDelta::days(1).num_seconds();
    let (before, after) = (offset_at(target - day), offset_at(target + day));
    let (mut lo, mut hi) = (target - before.max(after), target - before.min(after));
    let reached = |secs: i64| secs + offset_at(secs) >= target;
    if lo < hi && !reached(lo) && reached(hi) {
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if reached(mid) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        if let Some(t) = DateTime::from_timestamp(hi, 0) {
            return t;
        }
    }
    // Unusual zone data: walk forward a minute at a time to the first local time that exists.
    let mut probe = local;
    for _ in 0..(2 * 24 * 60) {
        probe += TimeDelta::minutes(1);
        match tz.from_local_datetime(&probe) {
            MappedLocalTime::Single(t) => return t.with_timezone(&Utc),
            MappedLocalTime::Ambiguous(a, b) => {
                return a.with_timezone(&Utc).min(b.with_timezone(&Utc));
            }
            MappedLocalTime::None => {}
        }
    }
    local.and_utc()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::{America, Asia, Europe};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn hours(days: &str, start: &str, end: &str) -> WorkingHours {
        WorkingHours::from_stored(days, start, end, 60).unwrap()
    }

    #[test]
    fn times_of_day_parse_with_24_00() {
        assert_eq!(TimeOfDay::parse("09:30").unwrap().minutes(), 570);
        assert_eq!(TimeOfDay::parse(" 7:05 ").unwrap().to_string(), "07:05");
        assert_eq!(TimeOfDay::parse("24:00").unwrap(), TimeOfDay::END_OF_DAY);
        for bad in [
            "", "9", "24:01", "25:00", "09:60", "09:5", "ab:cd", "-1:00", "09:00:00",
        ] {
            assert!(TimeOfDay::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn construction_checks_its_input() {
        let t = TimeOfDay::parse;
        assert!(WorkingHours::new([], t("09:00").unwrap(), t("17:00").unwrap(), 0).is_err());
        assert!(
            WorkingHours::new([Weekday::Mon], t("24:00").unwrap(), t("17:00").unwrap(), 0).is_err()
        );
        assert!(
            WorkingHours::new([Weekday::Mon], t("09:00").unwrap(), t("09:00").unwrap(), 0).is_err()
        );
        assert!(
            WorkingHours::new(
                [Weekday::Mon],
                t("09:00").unwrap(),
                t("17:00").unwrap(),
                1441
            )
            .is_err()
        );
        let h = WorkingHours::new(
            [Weekday::Fri, Weekday::Mon, Weekday::Fri],
            t("00:00").unwrap(),
            t("24:00").unwrap(),
            1440,
        )
        .unwrap();
        assert_eq!(h.days_text(), "mon,fri");
        assert!(!h.crosses_midnight());
        assert_eq!(
            WorkingHours::from_stored("mon,tue,wed,thu,fri", "09:00", "18:00", 60).unwrap(),
            WorkingHours::default()
        );
        assert!(WorkingHours::from_stored("mon,funday", "09:00", "18:00", 60).is_err());
        assert!(WorkingHours::from_stored("", "09:00", "18:00", 60).is_err());
    }

    #[test]
    fn office_hours_in_london_across_the_spring_change() {
        // Clocks go forward on Sunday 2026-03-29; Monday 30 March 09:00 BST is 08:00 UTC,
        // while Friday 27 March 09:00 GMT is 09:00 UTC.
        let h = hours("mon,tue,wed,thu,fri", "09:00", "17:00");
        let tz = Europe::London;
        assert!(h.contains(at("2026-03-27T09:00:00Z"), tz));
        assert!(!h.contains(at("2026-03-27T08:59:59Z"), tz));
        assert!(!h.contains(at("2026-03-27T17:00:00Z"), tz));
        assert!(!h.contains(at("2026-03-28T12:00:00Z"), tz), "Saturday");
        assert!(h.contains(at("2026-03-30T08:00:00Z"), tz));
        assert!(!h.contains(at("2026-03-30T07:59:00Z"), tz));
        assert!(!h.contains(at("2026-03-30T16:00:00Z"), tz));
        // From Friday evening the next start is Monday 09:00 BST: calendar days, not 72 hours.
        assert_eq!(
            h.next_start(at("2026-03-27T18:00:00Z"), tz),
            at("2026-03-30T08:00:00Z")
        );
        assert_eq!(
            h.available_from(at("2026-03-27T18:00:00Z"), tz),
            at("2026-03-30T08:00:00Z")
        );
        // Inside a window, available at once; the next start is tomorrow's.
        assert_eq!(
            h.available_from(at("2026-03-31T10:00:00Z"), tz),
            at("2026-03-31T10:00:00Z")
        );
        assert_eq!(
            h.next_start(at("2026-03-31T10:00:00Z"), tz),
            at("2026-04-01T08:00:00Z")
        );
        // Exactly at a start, that start.
        assert_eq!(
            h.next_start(at("2026-03-31T08:00:00Z"), tz),
            at("2026-03-31T08:00:00Z")
        );
    }

    #[test]
    fn a_start_in_the_skipped_hour_begins_when_the_clocks_jump() {
        // New York skips 02:00–03:00 on Sunday 2026-03-08 (07:00 UTC = 03:00 EDT).
        let h = hours("sun", "02:30", "04:00");
        let tz = America::New_York;
        assert_eq!(
            h.next_start(at("2026-03-07T12:00:00Z"), tz),
            at("2026-03-08T07:00:00Z")
        );
        assert!(h.contains(at("2026-03-08T07:00:00Z"), tz));
        assert!(!h.contains(at("2026-03-08T06:59:59Z"), tz));
        assert!(
            !h.contains(at("2026-03-08T08:00:00Z"), tz),
            "04:00 EDT ends it"
        );
        // The week after, 02:30 EDT exists: 06:30 UTC.
        assert_eq!(
            h.next_start(at("2026-03-08T09:00:00Z"), tz),
            at("2026-03-15T06:30:00Z")
        );
    }

    #[test]
    fn a_start_in_the_repeated_hour_is_the_earlier_instant() {
        // New York repeats 01:00–02:00 on Sunday 2026-11-01: 01:30 EDT = 05:30 UTC, then
        // 01:30 EST = 06:30 UTC.
        let h = hours("sun", "01:30", "03:00");
        let tz = America::New_York;
        assert_eq!(
            h.next_start(at("2026-10-31T12:00:00Z"), tz),
            at("2026-11-01T05:30:00Z")
        );
        // 03:00 EST = 08:00 UTC: the window is two and a half hours long that night.
        assert!(h.contains(at("2026-11-01T07:59:00Z"), tz));
        assert!(!h.contains(at("2026-11-01T08:00:00Z"), tz));
    }

    #[test]
    fn kathmandu_is_five_forty_five_ahead() {
        let h = hours("mon,tue,wed,thu,fri", "10:00", "17:00");
        let tz = Asia::Kathmandu;
        // Monday 2026-06-01 10:00 +05:45 = 04:15 UTC.
        assert!(!h.contains(at("2026-06-01T04:14:59Z"), tz));
        assert!(h.contains(at("2026-06-01T04:15:00Z"), tz));
        assert!(h.contains(at("2026-06-01T11:14:59Z"), tz));
        assert!(!h.contains(at("2026-06-01T11:15:00Z"), tz));
        assert_eq!(
            h.next_start(at("2026-06-01T11:15:00Z"), tz),
            at("2026-06-02T04:15:00Z")
        );
        // Sunday 2026-05-31 22:00 UTC is already Monday 03:45 in Kathmandu.
        assert_eq!(
            h.next_start(at("2026-05-31T22:00:00Z"), tz),
            at("2026-06-01T04:15:00Z")
        );
    }

    #[test]
    fn a_night_window_belongs_to_the_day_it_starts() {
        // Friday 22:00 to 06:00: runs into Saturday morning; nothing starts on Saturday night.
        let h = hours("fri", "22:00", "06:00");
        let tz = chrono_tz::UTC;
        assert!(h.crosses_midnight());
        assert!(h.contains(at("2026-06-05T22:00:00Z"), tz));
        assert!(h.contains(at("2026-06-06T05:59:59Z"), tz), "Saturday early");
        assert!(!h.contains(at("2026-06-06T06:00:00Z"), tz));
        assert!(
            !h.contains(at("2026-06-06T23:00:00Z"), tz),
            "Saturday night"
        );
        assert!(!h.contains(at("2026-06-05T02:00:00Z"), tz), "Friday early");
        assert_eq!(
            h.next_start(at("2026-06-06T01:00:00Z"), tz),
            at("2026-06-12T22:00:00Z")
        );
    }

    #[test]
    fn an_end_of_24_00_is_the_midnight_ending_the_day() {
        let h = hours("sat,sun", "00:00", "24:00");
        let tz = Europe::London;
        // Saturday 2026-10-24 00:00 BST = Friday 23:00 UTC; clocks go back on Sunday, which
        // ends at Monday 00:00 GMT (a 25-hour day).
        assert!(!h.contains(at("2026-10-23T22:59:59Z"), tz));
        assert!(h.contains(at("2026-10-23T23:00:00Z"), tz));
        assert!(h.contains(at("2026-10-25T23:59:59Z"), tz));
        assert!(!h.contains(at("2026-10-26T00:00:00Z"), tz));
        assert_eq!(
            h.next_start(at("2026-10-26T00:00:00Z"), tz),
            at("2026-10-31T00:00:00Z"),
            "GMT again by the next Saturday"
        );
        let evening = hours("mon", "18:00", "24:00");
        assert!(!evening.crosses_midnight());
        assert!(evening.contains(at("2026-06-01T22:59:00Z"), tz));
        assert!(!evening.contains(at("2026-06-01T23:00:00Z"), tz));
    }

    #[test]
    fn serialises_times_as_text_for_the_audit_log() {
        let json = serde_json::to_string(&WorkingHours::default()).unwrap();
        assert!(json.contains("\"start\":\"09:00\""), "{json}");
        let t: TimeOfDay = serde_json::from_str("\"24:00\"").unwrap();
        assert_eq!(t, TimeOfDay::END_OF_DAY);
        assert!(serde_json::from_str::<TimeOfDay>("\"24:30\"").is_err());
    }
}
