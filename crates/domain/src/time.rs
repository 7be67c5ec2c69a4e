use chrono::{DateTime, LocalResult, NaiveDateTime, Offset, TimeDelta, TimeZone as _, Utc};
use chrono_tz::Tz;

/// The instant of a local wall-clock time in `tz`, by the rule of CONTRACT.md: an ambiguous
/// time (clocks going back) is the earlier instant; a time that does not exist (clocks going
/// forward) is the first instant after the gap.
pub fn resolve_local(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(earlier, _) => earlier.with_timezone(&Utc),
        LocalResult::None => {
            // `local` lies in a spring-forward gap. Read with the offset in force before the
            // gap it names an instant after the transition; read with the offset after, one
            // before it. The transition lies between: find the first instant using the new
            // offset by bisection (to the second).
            let before = tz
                .offset_from_utc_datetime(&(local - TimeDelta::days(1)))
                .fix();
            let after = tz
                .offset_from_utc_datetime(&(local + TimeDelta::days(1)))
                .fix();
            let mut lo = (local - after).and_utc().timestamp();
            let mut hi = (local - before).and_utc().timestamp();
            let at = |secs: i64| {
                DateTime::<Utc>::from_timestamp(secs, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
            };
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if tz.offset_from_utc_datetime(&at(mid).naive_utc()).fix() == after {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            at(hi)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn local(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(h, min, 0)
            .unwrap()
    }

    #[test]
    fn gap_maps_to_the_first_instant_after_it() {
        // New York springs forward at 02:00 local (07:00 UTC) on 2026-03-08.
        let t = resolve_local(chrono_tz::America::New_York, local(2026, 3, 8, 2, 30));
        assert_eq!(t.to_rfc3339(), "2026-03-08T07:00:00+00:00");
    }

    #[test]
    fn fold_maps_to_the_earlier_instant() {
        // New York falls back at 02:00 EDT on 2026-11-01; 01:30 happens twice.
        let t = resolve_local(chrono_tz::America::New_York, local(2026, 11, 1, 1, 30));
        assert_eq!(t.to_rfc3339(), "2026-11-01T05:30:00+00:00");
    }

    #[test]
    fn lord_howe_half_hour_gap() {
        // Lord Howe moves from +10:30 to +11:00 at 02:00 local on 2026-10-04.
        let t = resolve_local(chrono_tz::Australia::Lord_Howe, local(2026, 10, 4, 2, 10));
        assert_eq!(t.to_rfc3339(), "2026-10-03T15:30:00+00:00");
    }

    #[test]
    fn ordinary_times_and_odd_offsets() {
        let t = resolve_local(chrono_tz::Asia::Kathmandu, local(2026, 1, 5, 9, 0));
        assert_eq!(t.to_rfc3339(), "2026-01-05T03:15:00+00:00");
    }
}
