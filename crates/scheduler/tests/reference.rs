//! Property tests: random schedules checked against a deliberately simple reference that
//! steps minute by minute and shares no code with the library's fast path.
//!
//! `PROPTEST_CASES` sets the number of cases (default 64).

use chrono::{
    DateTime, Datelike, Duration, MappedLocalTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone,
    Utc, Weekday,
};
use chrono_tz::Tz;
use heliograph_scheduler::{
    Layer, LocalTimeOfDay, Override, ParticipantId, Restriction, Rotation, Schedule, Shift,
    ShiftLength, ShiftUnit, Source,
};
use proptest::prelude::*;

// ---------------------------------------------------------------- the reference

/// Contract rule, written the slow obvious way: exact local time if it exists (earlier of
/// two), else walk forward a minute at a time to the first local time that exists.
fn ref_resolve(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    let mut l = local;
    for _ in 0..(48 * 60) {
        match tz.from_local_datetime(&l) {
            MappedLocalTime::Single(t) => return t.with_timezone(&Utc),
            MappedLocalTime::Ambiguous(a, b) => {
                return a.with_timezone(&Utc).min(b.with_timezone(&Utc));
            }
            MappedLocalTime::None => l += Duration::minutes(1),
        }
    }
    panic!("no local time near {local} in {tz}");
}

struct RefLayer {
    /// Start instants of shifts 0, 1, 2, … up to past the range end.
    boundaries: Vec<DateTime<Utc>>,
    participants: Vec<ParticipantId>,
    /// `None` = around the clock.
    windows: Option<Vec<(DateTime<Utc>, DateTime<Utc>)>>,
}

impl RefLayer {
    fn new(layer: &Layer, from: DateTime<Utc>, to: DateTime<Utc>) -> RefLayer {
        let r = &layer.rotation;
        let mut boundaries = Vec::new();
        let mut k: i64 = 0;
        loop {
            let b = match r.shift.unit {
                ShiftUnit::Hours => {
                    ref_resolve(r.handoff_time_zone, r.handoff)
                        + Duration::hours(k * i64::from(r.shift.count))
                }
                ShiftUnit::Days | ShiftUnit::Weeks => {
                    let per = if r.shift.unit == ShiftUnit::Weeks {
                        7
                    } else {
                        1
                    };
                    let mut date = r.handoff.date();
                    for _ in 0..(k * per * i64::from(r.shift.count)) {
                        date = date.succ_opt().expect("date in range");
                    }
                    ref_resolve(r.handoff_time_zone, date.and_time(r.handoff.time()))
                }
            };
            boundaries.push(b);
            if b > to {
                break;
            }
            k += 1;
        }
        let windows = if layer.restrictions.is_empty() {
            None
        } else {
            let mut w = Vec::new();
            let first = from.date_naive() - Duration::days(3);
            let last = to.date_naive() + Duration::days(3);
            for res in &layer.restrictions {
                let mut d = first;
                while d <= last {
                    if res.days.contains(&d.weekday()) {
                        let at = |date: NaiveDate, m: u16| {
                            let midnight = date.and_time(NaiveTime::MIN);
                            ref_resolve(res.time_zone, midnight + Duration::minutes(i64::from(m)))
                        };
                        let s = at(d, res.start.minutes());
                        let e = if res.end > res.start {
                            at(d, res.end.minutes())
                        } else {
                            at(d + Duration::days(1), res.end.minutes())
                        };
                        w.push((s, e));
                    }
                    d += Duration::days(1);
                }
            }
            Some(w)
        };
        RefLayer {
            boundaries,
            participants: r.participants.clone(),
            windows,
        }
    }

    fn who(&self, t: DateTime<Utc>) -> Option<ParticipantId> {
        if let Some(w) = &self.windows
            && !w.iter().any(|(s, e)| *s <= t && t < *e)
        {
            return None;
        }
        let k = self.boundaries.iter().rposition(|b| *b <= t)?;
        Some(self.participants[k % self.participants.len()])
    }
}

struct Reference {
    layers: Vec<RefLayer>,
    overrides: Vec<Override>,
}

impl Reference {
    fn new(
        layers: &[Layer],
        overrides: &[Override],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Self {
        Reference {
            layers: layers.iter().map(|l| RefLayer::new(l, from, to)).collect(),
            overrides: overrides.to_vec(),
        }
    }

    fn at(&self, t: DateTime<Utc>) -> (Option<ParticipantId>, Source) {
        if let Some(o) = self
            .overrides
            .iter()
            .filter(|o| o.start <= t && t < o.end)
            .max_by_key(|o| (o.created_seq, o.id))
        {
            return (Some(o.participant), Source::Override(o.id));
        }
        for (i, l) in self.layers.iter().enumerate().rev() {
            if let Some(p) = l.who(t) {
                return (Some(p), Source::Layer(i));
            }
        }
        (None, Source::None)
    }
}

// ---------------------------------------------------------------- generators

const ZONES: &[Tz] = &[
    chrono_tz::America::New_York,
    chrono_tz::Europe::London,
    chrono_tz::Australia::Sydney,
    chrono_tz::Asia::Kolkata,
    chrono_tz::Asia::Kathmandu,
    chrono_tz::Australia::Lord_Howe,
    chrono_tz::Asia::Singapore,
    chrono_tz::UTC,
    chrono_tz::America::St_Johns,
    chrono_tz::Pacific::Chatham,
    chrono_tz::Europe::Berlin,
];

/// Days around DST changes of the zones above (and one quiet day).
const ANCHORS: &[(i32, u32, u32)] = &[
    (2026, 3, 8),
    (2026, 11, 1),
    (2026, 3, 29),
    (2026, 10, 25),
    (2026, 4, 5),
    (2026, 10, 4),
    (2026, 9, 27),
    (2026, 6, 15),
];

const WEEKDAYS: [Weekday; 7] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
    Weekday::Sat,
    Weekday::Sun,
];

fn zone() -> impl Strategy<Value = Tz> {
    prop::sample::select(ZONES)
}

fn anchor() -> impl Strategy<Value = NaiveDate> {
    prop::sample::select(ANCHORS)
        .prop_map(|(y, m, d)| NaiveDate::from_ymd_opt(y, m, d).expect("anchor"))
}

/// A minute of the day, biased towards the hours clocks jump at.
fn minute_of_day() -> impl Strategy<Value = u16> {
    prop_oneof![
        3 => 0u16..1440,
        2 => 60u16..200,
        1 => prop::sample::select(vec![0u16, 120, 150, 90, 60, 1380, 540, 1020]),
    ]
}

fn restriction() -> impl Strategy<Value = Restriction> {
    (
        prop::sample::subsequence(WEEKDAYS.to_vec(), 1..=7),
        minute_of_day(),
        prop_oneof![minute_of_day(), Just(1440u16)],
        zone(),
    )
        .prop_filter("start != end", |(_, s, e, _)| s != e)
        .prop_map(|(days, s, e, tz)| Restriction {
            days,
            start: LocalTimeOfDay::from_hm(u32::from(s / 60), u32::from(s % 60)).expect("start"),
            end: LocalTimeOfDay::from_hm(u32::from(e / 60), u32::from(e % 60)).expect("end"),
            time_zone: tz,
        })
}

fn shift_length() -> impl Strategy<Value = ShiftLength> {
    prop_oneof![
        (1u32..=30).prop_map(|count| ShiftLength {
            unit: ShiftUnit::Hours,
            count
        }),
        (1u32..=4).prop_map(|count| ShiftLength {
            unit: ShiftUnit::Days,
            count
        }),
        (1u32..=2).prop_map(|count| ShiftLength {
            unit: ShiftUnit::Weeks,
            count
        }),
    ]
}

fn layer(anchor: NaiveDate) -> impl Strategy<Value = Layer> {
    (
        prop::collection::vec(1i64..=12, 1..=10),
        shift_length(),
        -40i64..=5,
        minute_of_day(),
        zone(),
        prop::collection::vec(restriction(), 0..=3),
    )
        .prop_map(
            move |(participants, shift, day, minute, tz, restrictions)| Layer {
                name: "layer".into(),
                rotation: Rotation {
                    participants,
                    shift,
                    handoff: (anchor + Duration::days(day)).and_time(NaiveTime::MIN)
                        + Duration::minutes(i64::from(minute)),
                    handoff_time_zone: tz,
                },
                restrictions,
            },
        )
}

#[derive(Debug, Clone)]
struct Case {
    layers: Vec<Layer>,
    overrides: Vec<Override>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

fn case() -> impl Strategy<Value = Case> {
    anchor().prop_flat_map(|anchor| {
        let base = anchor.and_time(NaiveTime::MIN).and_utc();
        (
            prop::collection::vec(layer(anchor), 1..=5),
            prop::collection::vec((-1500i64..4000, 15i64..2880, 1i64..=12, 0i64..10), 0..=6),
            -1800i64..=1800,
            60i64..=(3 * 1440),
        )
            .prop_map(move |(layers, ovs, start_min, len_min)| {
                let from = base + Duration::minutes(start_min);
                let overrides = ovs
                    .into_iter()
                    .enumerate()
                    .map(|(i, (s, len, p, seq))| Override {
                        id: i as i64 + 100,
                        participant: p,
                        start: base + Duration::minutes(s),
                        end: base + Duration::minutes(s + len),
                        created_seq: seq,
                    })
                    .collect();
                Case {
                    layers,
                    overrides,
                    from,
                    to: from + Duration::minutes(len_min),
                }
            })
    })
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

// ---------------------------------------------------------------- checks

fn check_tiling(
    shifts: &[Shift],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<(), TestCaseError> {
    prop_assert!(!shifts.is_empty());
    prop_assert_eq!(shifts[0].start, from);
    prop_assert_eq!(shifts[shifts.len() - 1].end, to);
    for s in shifts {
        prop_assert!(s.start < s.end, "empty shift {:?}", s);
        prop_assert_eq!(s.participant.is_none(), s.source == Source::None);
    }
    for w in shifts.windows(2) {
        prop_assert_eq!(w[0].end, w[1].start, "not contiguous");
        prop_assert!(
            (w[0].participant, w[0].source) != (w[1].participant, w[1].source),
            "equal neighbours not merged: {:?} {:?}",
            w[0],
            w[1]
        );
    }
    Ok(())
}

fn containing(shifts: &[Shift], t: DateTime<Utc>) -> &Shift {
    let i = shifts.partition_point(|s| s.end <= t);
    &shifts[i]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn fast_path_matches_minute_by_minute_reference(c in case()) {
        let schedule = Schedule::new(c.layers.clone(), c.overrides.clone()).expect("valid by construction");
        let reference = Reference::new(&c.layers, &c.overrides, c.from, c.to);
        let shifts = schedule.final_shifts(c.from, c.to);
        check_tiling(&shifts, c.from, c.to)?;

        let mut t = c.from;
        let mut minute = 0u32;
        while t < c.to {
            let s = containing(&shifts, t);
            let expected = reference.at(t);
            prop_assert_eq!((s.participant, s.source), expected, "at {}", t);
            if minute.is_multiple_of(97) {
                let oc = schedule.on_call_at(t);
                prop_assert_eq!((oc.participant, oc.source), expected, "on_call_at {}", t);
                prop_assert!(oc.since <= t && t < oc.until);
                if s.start > c.from { prop_assert_eq!(oc.since, s.start); }
                if s.end < c.to { prop_assert_eq!(oc.until, s.end); }
            }
            t += Duration::minutes(1);
            minute += 1;
        }

        // on_call_at's [since, until) is exactly the final shift containing t, as seen over a
        // range wide enough to contain it.
        let (wide_from, wide_to) = (c.from - Duration::days(8), c.to + Duration::days(8));
        let wide = schedule.final_shifts(wide_from, wide_to);
        check_tiling(&wide, wide_from, wide_to)?;
        for s in &shifts {
            let t = s.start + (s.end - s.start) / 2;
            let w = containing(&wide, t);
            let oc = schedule.on_call_at(t);
            prop_assert_eq!((oc.participant, oc.source), (w.participant, w.source));
            if w.start > wide_from { prop_assert_eq!(oc.since, w.start, "since at {}", t); }
            if w.end < wide_to { prop_assert_eq!(oc.until, w.end, "until at {}", t); }
        }

        // on_call_at at every shift start agrees with the final schedule.
        for s in &shifts {
            let oc = schedule.on_call_at(s.start);
            prop_assert_eq!((oc.participant, oc.source), (s.participant, s.source));
            if s.start > c.from { prop_assert_eq!(oc.since, s.start); }
            if s.end < c.to { prop_assert_eq!(oc.until, s.end); }
        }

        // Each layer alone tiles the range and agrees with the reference layer.
        for (i, rl) in reference.layers.iter().enumerate() {
            let ls = schedule.layer_shifts(i, c.from, c.to);
            check_tiling(&ls, c.from, c.to)?;
            let mut t = c.from;
            while t < c.to {
                let s = containing(&ls, t);
                prop_assert_eq!(s.participant, rl.who(t), "layer {} at {}", i, t);
                t += Duration::minutes(7);
            }
        }

        // Gaps are exactly the shifts without anybody.
        let gaps = schedule.gaps(c.from, c.to);
        let expected_gaps: Vec<_> = shifts.iter().filter(|s| s.participant.is_none()).map(|s| (s.start, s.end)).collect();
        prop_assert_eq!(gaps, expected_gaps);

        // Handoffs are exactly the changes of person.
        let handoffs = schedule.handoffs(c.from, c.to);
        let mut expected = Vec::new();
        for w in shifts.windows(2) {
            if w[0].participant != w[1].participant {
                expected.push((w[1].start, w[0].participant, w[1].participant));
            }
        }
        let got: Vec<_> = handoffs.iter().filter(|h| h.at > c.from).map(|h| (h.at, h.from, h.to)).collect();
        prop_assert_eq!(got, expected);
        if let Some(h) = handoffs.first().filter(|h| h.at == c.from) {
            prop_assert_eq!(h.from, reference.at(c.from - Duration::nanoseconds(1)).0);
            prop_assert_eq!(h.to, reference.at(c.from).0);
        }

        // Load adds up.
        let load = schedule.load(c.from, c.to, |p| ZONES[(p as usize) % ZONES.len()]);
        let total: Duration = load.values().map(|l| l.on_call).sum();
        let covered: Duration = shifts.iter().filter(|s| s.participant.is_some()).map(|s| s.end - s.start).sum();
        prop_assert_eq!(total, covered);
        for l in load.values() {
            prop_assert!(l.night <= l.on_call && l.weekend <= l.on_call);
            prop_assert!(l.night >= Duration::zero() && l.weekend >= Duration::zero());
        }
    }

}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases().div_ceil(4), ..ProptestConfig::default() })]

    #[test]
    fn decades_long_ranges_tile_without_panic(c in case(), years in 1i64..=30, back in 0i64..=80) {
        let schedule = Schedule::new(c.layers.clone(), c.overrides.clone()).expect("valid by construction");
        let from = c.from - Duration::days(365 * back);
        let to = from + Duration::days(365 * years);
        let shifts = schedule.final_shifts(from, to);
        check_tiling(&shifts, from, to)?;
        for s in shifts.iter().step_by(shifts.len() / 50 + 1) {
            let oc = schedule.on_call_at(s.start);
            prop_assert_eq!((oc.participant, oc.source), (s.participant, s.source));
        }
    }
}

#[test]
fn extreme_instants_do_not_panic() {
    let layer = Layer {
        name: "x".into(),
        rotation: Rotation {
            participants: vec![1, 2],
            shift: ShiftLength {
                unit: ShiftUnit::Days,
                count: 1,
            },
            handoff: NaiveDate::from_ymd_opt(2026, 1, 1)
                .expect("date")
                .and_time(NaiveTime::MIN),
            handoff_time_zone: chrono_tz::America::New_York,
        },
        restrictions: vec![],
    };
    let schedule = Schedule::new(vec![layer], vec![]).expect("valid");
    let min = DateTime::<Utc>::MIN_UTC;
    let max = DateTime::<Utc>::MAX_UTC;
    assert_eq!(schedule.on_call_at(min).participant, None);
    assert_eq!(schedule.on_call_at(max).participant, None);
    assert!(schedule.final_shifts(max, min).is_empty());
    let early = schedule.final_shifts(
        min,
        Utc.with_ymd_and_hms(1950, 1, 1, 0, 0, 0)
            .single()
            .expect("t"),
    );
    assert_eq!(early.len(), 1);
    assert_eq!(early[0].participant, None);
    let late = schedule.gaps(
        Utc.with_ymd_and_hms(2199, 12, 31, 0, 0, 0)
            .single()
            .expect("t"),
        max,
    );
    assert!(late.is_empty());
    let _ = schedule.handoffs(min, max);
}
