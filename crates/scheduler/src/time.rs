//! Local-time rules shared by the whole scheduler (and the app): the gap/fold rule of
//! CONTRACT.md, the supported horizon, and a compact nanosecond instant used internally.

use chrono::{
    DateTime, Datelike, MappedLocalTime, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeDelta,
    TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

/// Internal instant: nanoseconds since the Unix epoch. The supported horizon (1900..2200)
/// fits comfortably in an `i64` of nanoseconds (which covers 1677..2262).
pub(crate) type Ns = i64;

const NS_PER_SEC: i64 = 1_000_000_000;
/// Nanoseconds in one minute.
pub(crate) const NS_PER_MIN: i64 = 60 * NS_PER_SEC;
/// Nanoseconds in one hour.
pub(crate) const NS_PER_HOUR: i64 = 60 * NS_PER_MIN;

/// 1900-01-01T00:00:00Z in seconds since the epoch.
const HORIZON_START_SECS: i64 = -2_208_988_800;
/// 2200-01-01T00:00:00Z in seconds since the epoch.
const HORIZON_END_SECS: i64 = 7_258_118_400;

/// First instant the scheduler computes for (1900-01-01T00:00:00Z). Queries are clamped to
/// `[horizon_start(), horizon_end())`; nothing is on call outside it.
pub fn horizon_start() -> DateTime<Utc> {
    DateTime::from_timestamp(HORIZON_START_SECS, 0).unwrap_or(DateTime::UNIX_EPOCH)
}

/// End (exclusive) of the supported horizon (2200-01-01T00:00:00Z).
pub fn horizon_end() -> DateTime<Utc> {
    DateTime::from_timestamp(HORIZON_END_SECS, 0).unwrap_or(DateTime::UNIX_EPOCH)
}

pub(crate) const H0: Ns = HORIZON_START_SECS * NS_PER_SEC;
pub(crate) const H1: Ns = HORIZON_END_SECS * NS_PER_SEC;

/// Converts an instant to internal nanoseconds, clamped to the horizon.
pub(crate) fn to_ns(t: DateTime<Utc>) -> Ns {
    let secs = t.timestamp();
    if secs < HORIZON_START_SECS {
        H0
    } else if secs >= HORIZON_END_SECS {
        H1
    } else {
        secs * NS_PER_SEC + i64::from(t.timestamp_subsec_nanos())
    }
}

/// Converts internal nanoseconds back to an instant.
pub(crate) fn from_ns(t: Ns) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(t)
}

/// The UTC offset of `tz` at instant `t`, in seconds.
pub(crate) fn offset_secs(tz: Tz, t: Ns) -> i64 {
    let naive = from_ns(t.div_euclid(NS_PER_SEC) * NS_PER_SEC).naive_utc();
    i64::from(tz.offset_from_utc_datetime(&naive).fix().local_minus_utc())
}

/// The local date of instant `t` in `tz`.
pub(crate) fn local_date_of(tz: Tz, t: Ns) -> NaiveDate {
    let local_secs = t.div_euclid(NS_PER_SEC) + offset_secs(tz, t);
    // Days since 0001-01-01 (day 1 of the common era) for the Unix epoch: 719_163.
    let days = local_secs.div_euclid(86_400) + 719_163;
    i32::try_from(days)
        .ok()
        .and_then(NaiveDate::from_num_days_from_ce_opt)
        .unwrap_or(NaiveDate::MIN)
}

/// Resolves a local wall-clock time in `tz` to an instant, by the rule of CONTRACT.md:
///
/// * a local time that exists once maps to that instant;
/// * an ambiguous local time (clocks went back, the hour repeats) maps to the **earlier** instant;
/// * a local time that does not exist (clocks went forward, the hour is skipped) maps to the
///   **first instant after the gap**, i.e. the moment the clocks jumped.
///
/// Local times far outside the supported horizon are clamped to it (years 1800..2300 are
/// resolved as given), so this never panics.
pub fn resolve_local(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    from_ns(resolve_ns(tz, local))
}

/// [`resolve_local`] returning internal nanoseconds (clamped to the horizon).
pub(crate) fn resolve_ns(tz: Tz, local: NaiveDateTime) -> Ns {
    let year = local.year();
    if year < 1800 {
        return H0;
    }
    if year >= 2300 {
        return H1;
    }
    let (secs, nanos) = match tz.from_local_datetime(&local) {
        MappedLocalTime::Single(t) => (t.timestamp(), t.timestamp_subsec_nanos()),
        MappedLocalTime::Ambiguous(a, b) => {
            let earlier = if a.timestamp() <= b.timestamp() { a } else { b };
            (earlier.timestamp(), earlier.timestamp_subsec_nanos())
        }
        MappedLocalTime::None => {
            let t = first_instant_after_gap(tz, local);
            (t.timestamp(), t.timestamp_subsec_nanos())
        }
    };
    if secs < HORIZON_START_SECS {
        H0
    } else if secs >= HORIZON_END_SECS {
        H1
    } else {
        secs * NS_PER_SEC + i64::from(nanos)
    }
}

/// Offset (seconds east of UTC) of `tz` at the UTC instant written as `naive_utc`.
fn offset_secs_at(tz: Tz, naive_utc: NaiveDateTime) -> i64 {
    i64::from(
        tz.offset_from_utc_datetime(&naive_utc)
            .fix()
            .local_minus_utc(),
    )
}

/// The instant at which the clocks jumped over `local`, which lies in a gap of `tz`.
///
/// With `o1` the offset before the gap and `o2` after it, `local - o2` lies before the jump
/// and `local - o1` after it; a binary search on whole seconds finds the first instant whose
/// local time is at or past `local`, which is the jump itself.
fn first_instant_after_gap(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    let day = TimeDelta::hours(36);
    let (Some(before), Some(after)) =
        (local.checked_sub_signed(day), local.checked_add_signed(day))
    else {
        return local.and_utc();
    };
    let o1 = offset_secs_at(tz, before);
    let o2 = offset_secs_at(tz, after);
    let target = local.and_utc().timestamp();
    let local_at = |secs: i64| -> Option<i64> {
        let t = DateTime::from_timestamp(secs, 0)?;
        Some(secs + offset_secs_at(tz, t.naive_utc()))
    };
    if o2 > o1 {
        let mut lo = target - o2;
        let mut hi = target - o1;
        let ok_lo = local_at(lo).is_some_and(|l| l < target);
        let ok_hi = local_at(hi).is_some_and(|l| l >= target);
        if ok_lo && ok_hi {
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                match local_at(mid) {
                    Some(l) if l >= target => hi = mid,
                    Some(_) => lo = mid,
                    None => break,
                }
            }
            if let Some(t) = DateTime::from_timestamp(hi, 0) {
                return t;
            }
        }
    }
    // Unusual zone data: walk forward minute by minute (at most two days) to the first local
    // time that exists and take its earliest instant.
    let mut probe = local.with_second(0).unwrap_or(local);
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

/// `date` at `minutes` past its midnight (1440 = the next midnight).
pub(crate) fn at_minutes(date: NaiveDate, minutes: u16) -> Option<NaiveDateTime> {
    if minutes >= 1440 {
        let next = date.succ_opt()?;
        return Some(next.and_time(NaiveTime::MIN));
    }
    let time = NaiveTime::from_num_seconds_from_midnight_opt(u32::from(minutes) * 60, 0)?;
    Some(date.and_time(time))
}

/// Resolves `date` at `minutes` past midnight in `tz`; dates out of chrono's range clamp.
pub(crate) fn resolve_date_minutes(tz: Tz, date: NaiveDate, minutes: u16) -> Ns {
    match at_minutes(date, minutes) {
        Some(l) => resolve_ns(tz, l),
        None if date.year() < 0 => H0,
        None => H1,
    }
}

/// `date + days`, saturating at chrono's limits.
pub(crate) fn add_days(date: NaiveDate, days: i64) -> NaiveDate {
    let n = i64::from(date.num_days_from_ce()).saturating_add(days);
    match i32::try_from(n)
        .ok()
        .and_then(NaiveDate::from_num_days_from_ce_opt)
    {
        Some(d) => d,
        None if days < 0 => NaiveDate::MIN,
        None => NaiveDate::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::{America, Asia, Australia, Europe};

    fn l(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M").expect("test literal")
    }
    fn u(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("test literal")
            .to_utc()
    }

    #[test]
    fn new_york_spring_gap_maps_to_jump() {
        // 2026-03-08 02:00 EST -> 03:00 EDT; 02:30 does not exist.
        let t = resolve_local(America::New_York, l("2026-03-08T02:30"));
        assert_eq!(t, u("2026-03-08T07:00:00Z"));
        let t = resolve_local(America::New_York, l("2026-03-08T02:00"));
        assert_eq!(t, u("2026-03-08T07:00:00Z"));
        let t = resolve_local(America::New_York, l("2026-03-08T03:00"));
        assert_eq!(t, u("2026-03-08T07:00:00Z"));
        let t = resolve_local(America::New_York, l("2026-03-08T01:59"));
        assert_eq!(t, u("2026-03-08T06:59:00Z"));
    }

    #[test]
    fn new_york_fall_fold_maps_to_earlier() {
        // 2026-11-01 01:30 happens twice: 05:30Z (EDT) and 06:30Z (EST).
        let t = resolve_local(America::New_York, l("2026-11-01T01:30"));
        assert_eq!(t, u("2026-11-01T05:30:00Z"));
    }

    #[test]
    fn lord_howe_half_hour_gap_and_fold() {
        // Lord Howe: +10:30 standard, +11:00 summer. Spring forward 2026-10-04 02:00 -> 02:30.
        let t = resolve_local(Australia::Lord_Howe, l("2026-10-04T02:15"));
        assert_eq!(t, u("2026-10-03T15:30:00Z"));
        // Fall back 2026-04-05 02:00 -> 01:30; 01:45 is ambiguous, earlier is +11:00.
        let t = resolve_local(Australia::Lord_Howe, l("2026-04-05T01:45"));
        assert_eq!(t, u("2026-04-04T14:45:00Z"));
    }

    #[test]
    fn fixed_offset_zones() {
        assert_eq!(
            resolve_local(Asia::Kolkata, l("2026-03-08T09:00")),
            u("2026-03-08T03:30:00Z")
        );
        assert_eq!(
            resolve_local(Asia::Kathmandu, l("2026-03-08T09:00")),
            u("2026-03-08T03:15:00Z")
        );
    }

    #[test]
    fn london_and_sydney() {
        // London spring forward 2026-03-29 01:00 GMT -> 02:00 BST.
        assert_eq!(
            resolve_local(Europe::London, l("2026-03-29T01:30")),
            u("2026-03-29T01:00:00Z")
        );
        // Sydney spring forward 2026-10-04 02:00 AEST -> 03:00 AEDT.
        assert_eq!(
            resolve_local(Australia::Sydney, l("2026-10-04T02:30")),
            u("2026-10-03T16:00:00Z")
        );
        // Sydney fall back 2026-04-05 03:00 AEDT -> 02:00 AEST; 02:30 ambiguous.
        assert_eq!(
            resolve_local(Australia::Sydney, l("2026-04-05T02:30")),
            u("2026-04-04T15:30:00Z")
        );
    }

    #[test]
    fn extremes_do_not_panic() {
        let _ = resolve_local(America::New_York, NaiveDateTime::MIN);
        let _ = resolve_local(America::New_York, NaiveDateTime::MAX);
        assert_eq!(to_ns(DateTime::<Utc>::MIN_UTC), H0);
        assert_eq!(to_ns(DateTime::<Utc>::MAX_UTC), H1);
        assert_eq!(from_ns(H0), horizon_start());
        assert_eq!(from_ns(H1), horizon_end());
    }
}
