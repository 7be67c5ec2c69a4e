//! Unit tests pinning the time semantics of CONTRACT.md around real DST changes.

use super::*;
use crate::model::{LocalTimeOfDay, Restriction, Rotation, ShiftLength};
use chrono::{TimeZone, Weekday};
use chrono_tz::{America, Asia, Australia, Europe};

fn u(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test literal")
        .to_utc()
}

fn local(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M").expect("test literal")
}

fn tod(s: &str) -> LocalTimeOfDay {
    s.parse().expect("test literal")
}

fn layer(participants: &[i64], unit: ShiftUnit, count: u32, handoff: &str, tz: Tz) -> Layer {
    Layer {
        name: "test".into(),
        rotation: Rotation {
            participants: participants.to_vec(),
            shift: ShiftLength { unit, count },
            handoff: local(handoff),
            handoff_time_zone: tz,
        },
        restrictions: vec![],
    }
}

fn window(days: &[Weekday], start: &str, end: &str, tz: Tz) -> Restriction {
    Restriction {
        days: days.to_vec(),
        start: tod(start),
        end: tod(end),
        time_zone: tz,
    }
}

const WEEKDAYS: [Weekday; 5] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
];

fn handoff_instants(s: &Schedule, from: &str, to: &str) -> Vec<DateTime<Utc>> {
    s.handoffs(u(from), u(to)).iter().map(|h| h.at).collect()
}

fn one(l: Layer) -> Schedule {
    Schedule::new(vec![l], vec![]).expect("valid schedule")
}

#[test]
fn daily_handoff_new_york_stays_at_nine_local_across_gap_and_fold() {
    let s = one(layer(
        &[1, 2, 3],
        ShiftUnit::Days,
        1,
        "2026-03-01T09:00",
        America::New_York,
    ));
    assert_eq!(
        handoff_instants(&s, "2026-03-07T00:00:00Z", "2026-03-10T00:00:00Z"),
        vec![
            u("2026-03-07T14:00:00Z"), // 09:00 EST
            u("2026-03-08T13:00:00Z"), // 09:00 EDT: a 23-hour shift
            u("2026-03-09T13:00:00Z"),
        ]
    );
    assert_eq!(
        handoff_instants(&s, "2026-10-31T00:00:00Z", "2026-11-03T00:00:00Z"),
        vec![
            u("2026-10-31T13:00:00Z"), // 09:00 EDT
            u("2026-11-01T14:00:00Z"), // 09:00 EST: a 25-hour shift
            u("2026-11-02T14:00:00Z"),
        ]
    );
    // Participants keep their order: 2026-03-01 is participant 1, so 03-08 (day 7) is 2.
    let oc = s.on_call_at(u("2026-03-08T13:00:00Z"));
    assert_eq!(oc.participant, Some(2));
    assert_eq!(oc.since, u("2026-03-08T13:00:00Z"));
    assert_eq!(oc.until, u("2026-03-09T13:00:00Z"));
    assert_eq!(oc.source, Source::Layer(0));
}

#[test]
fn handoff_inside_the_gap_and_the_fold() {
    // 02:30 does not exist on 2026-03-08: that day's handoff is 03:00 EDT (07:00Z).
    let s = one(layer(
        &[1, 2],
        ShiftUnit::Days,
        1,
        "2026-03-01T02:30",
        America::New_York,
    ));
    assert_eq!(
        handoff_instants(&s, "2026-03-07T00:00:00Z", "2026-03-10T00:00:00Z"),
        vec![
            u("2026-03-07T07:30:00Z"),
            u("2026-03-08T07:00:00Z"),
            u("2026-03-09T06:30:00Z"),
        ]
    );
    // 01:30 happens twice on 2026-11-01: the handoff is the first (EDT, 05:30Z).
    let s = one(layer(
        &[1, 2],
        ShiftUnit::Days,
        1,
        "2026-10-01T01:30",
        America::New_York,
    ));
    assert_eq!(
        handoff_instants(&s, "2026-10-31T00:00:00Z", "2026-11-03T00:00:00Z"),
        vec![
            u("2026-10-31T05:30:00Z"),
            u("2026-11-01T05:30:00Z"),
            u("2026-11-02T06:30:00Z"),
        ]
    );
}

#[test]
fn weekly_handoff_london_follows_bst() {
    let s = one(layer(
        &[1, 2, 3, 4],
        ShiftUnit::Weeks,
        1,
        "2026-01-05T09:00",
        Europe::London,
    ));
    assert_eq!(
        handoff_instants(&s, "2026-03-20T00:00:00Z", "2026-04-08T00:00:00Z"),
        vec![
            u("2026-03-23T09:00:00Z"), // GMT
            u("2026-03-30T08:00:00Z"), // BST (clocks went forward 2026-03-29)
            u("2026-04-06T08:00:00Z"),
        ]
    );
    assert_eq!(
        handoff_instants(&s, "2026-10-17T00:00:00Z", "2026-11-03T00:00:00Z"),
        vec![
            u("2026-10-19T08:00:00Z"),
            u("2026-10-26T09:00:00Z"),
            u("2026-11-02T09:00:00Z")
        ]
    );
    // Decades later the index is computed arithmetically and still lands on 09:00 local.
    let later = handoff_instants(&s, "2096-07-01T00:00:00Z", "2096-07-09T00:00:00Z");
    assert_eq!(later.len(), 1);
    let l = later[0].with_timezone(&Europe::London);
    assert_eq!((l.weekday(), l.hour(), l.minute()), (Weekday::Mon, 9, 0));
}

use chrono::Timelike;

#[test]
fn sydney_southern_hemisphere_daily() {
    let s = one(layer(
        &[1, 2],
        ShiftUnit::Days,
        1,
        "2026-01-01T08:00",
        Australia::Sydney,
    ));
    assert_eq!(
        handoff_instants(&s, "2026-04-03T00:00:00Z", "2026-04-06T00:00:00Z"),
        vec![
            u("2026-04-03T21:00:00Z"), // 08:00 AEDT (+11)
            u("2026-04-04T22:00:00Z"), // 08:00 AEST (+10), DST ended 2026-04-05 03:00
            u("2026-04-05T22:00:00Z"),
        ]
    );
    assert_eq!(
        handoff_instants(&s, "2026-10-02T00:00:00Z", "2026-10-05T00:00:00Z"),
        vec![
            u("2026-10-02T22:00:00Z"), // AEST
            u("2026-10-03T21:00:00Z"), // AEDT from 2026-10-04 02:00
            u("2026-10-04T21:00:00Z"),
        ]
    );
}

#[test]
fn kolkata_and_kathmandu_fixed_offsets() {
    let s = one(layer(
        &[1, 2],
        ShiftUnit::Weeks,
        1,
        "2026-01-05T09:00",
        Asia::Kolkata,
    ));
    let h = handoff_instants(&s, "2026-02-27T00:00:00Z", "2026-11-10T00:00:00Z");
    assert_eq!(h.len(), 37); // Mondays 2026-03-02 ..= 2026-11-09
    assert!(h.iter().all(|t| (t.hour(), t.minute()) == (3, 30)), "{h:?}");
    let s = one(layer(
        &[1, 2, 3],
        ShiftUnit::Days,
        2,
        "2026-01-01T09:00",
        Asia::Kathmandu,
    ));
    let h = handoff_instants(&s, "2026-03-01T00:00:00Z", "2026-03-31T00:00:00Z");
    assert_eq!(h.len(), 15);
    assert!(h.iter().all(|t| (t.hour(), t.minute()) == (3, 15)), "{h:?}");
    assert_eq!(h[1] - h[0], TimeDelta::days(2));
}

#[test]
fn lord_howe_half_hour_dst() {
    let s = one(layer(
        &[1, 2],
        ShiftUnit::Days,
        1,
        "2026-01-01T09:00",
        Australia::Lord_Howe,
    ));
    assert_eq!(
        handoff_instants(&s, "2026-04-03T12:00:00Z", "2026-04-06T12:00:00Z"),
        vec![
            u("2026-04-03T22:00:00Z"), // 09:00 at +11:00
            u("2026-04-04T22:30:00Z"), // 09:00 at +10:30 (clocks back 30 minutes 2026-04-05)
            u("2026-04-05T22:30:00Z"),
        ]
    );
    assert_eq!(
        handoff_instants(&s, "2026-10-02T12:00:00Z", "2026-10-05T12:00:00Z"),
        vec![
            u("2026-10-02T22:30:00Z"),
            u("2026-10-03T22:00:00Z"),
            u("2026-10-04T22:00:00Z")
        ]
    );
}

#[test]
fn hourly_rotations_are_elapsed_hours_across_dst() {
    // 12-hour shifts from 21:00 EST on 2026-03-07 (02:00Z): the next handoff is 12 elapsed
    // hours later at 14:00Z, which is 10:00 EDT on the wall clock.
    let s = one(layer(
        &[1, 2],
        ShiftUnit::Hours,
        12,
        "2026-03-07T21:00",
        America::New_York,
    ));
    assert_eq!(
        handoff_instants(&s, "2026-03-08T00:00:00Z", "2026-03-09T06:00:00Z"),
        vec![
            u("2026-03-08T02:00:00Z"),
            u("2026-03-08T14:00:00Z"),
            u("2026-03-09T02:00:00Z")
        ]
    );
    for tz in [
        Europe::London,
        Australia::Lord_Howe,
        Asia::Kathmandu,
        Australia::Sydney,
    ] {
        let s = one(layer(
            &[1, 2, 3],
            ShiftUnit::Hours,
            5,
            "2026-01-01T00:00",
            tz,
        ));
        let h = handoff_instants(&s, "2026-03-01T00:00:00Z", "2026-11-30T00:00:00Z");
        assert!(
            h.windows(2).all(|w| w[1] - w[0] == TimeDelta::hours(5)),
            "{tz}"
        );
    }
}

#[test]
fn future_handoff_means_nobody_before_it() {
    let s = one(layer(
        &[7, 8],
        ShiftUnit::Weeks,
        1,
        "2027-01-04T09:00",
        Europe::London,
    ));
    let oc = s.on_call_at(u("2026-11-28T12:00:00Z"));
    assert_eq!(oc.participant, None);
    assert_eq!(oc.until, u("2027-01-04T09:00:00Z"));
    assert_eq!(oc.since, horizon_start_dt());
    let shifts = s.final_shifts(u("2026-12-01T00:00:00Z"), u("2027-01-12T00:00:00Z"));
    assert_eq!(shifts.len(), 3);
    assert_eq!(shifts[0].participant, None);
    assert_eq!(shifts[1].participant, Some(7));
    assert_eq!(shifts[1].start, u("2027-01-04T09:00:00Z"));
    assert_eq!(shifts[2].participant, Some(8));
    assert_eq!(
        s.gaps(u("2026-12-01T00:00:00Z"), u("2027-01-12T00:00:00Z")),
        vec![(u("2026-12-01T00:00:00Z"), u("2027-01-04T09:00:00Z"))]
    );
}

fn horizon_start_dt() -> DateTime<Utc> {
    crate::horizon_start()
}

/// Follow-the-sun: Singapore, London and New York each on 09:00–17:00 local, Mon–Fri, New
/// York the top layer. The gaps and overlaps move as each region changes its clocks.
fn follow_the_sun() -> Schedule {
    let mut sg = layer(
        &[1],
        ShiftUnit::Weeks,
        1,
        "2026-01-05T09:00",
        Asia::Singapore,
    );
    sg.restrictions = vec![window(&WEEKDAYS, "09:00", "17:00", Asia::Singapore)];
    let mut ldn = layer(
        &[2],
        ShiftUnit::Weeks,
        1,
        "2026-01-05T09:00",
        Europe::London,
    );
    ldn.restrictions = vec![window(&WEEKDAYS, "09:00", "17:00", Europe::London)];
    let mut ny = layer(
        &[3],
        ShiftUnit::Weeks,
        1,
        "2026-01-05T09:00",
        America::New_York,
    );
    ny.restrictions = vec![window(&WEEKDAYS, "09:00", "17:00", America::New_York)];
    Schedule::new(vec![sg, ldn, ny], vec![]).expect("valid")
}

/// The final schedule of one UTC day as `(start hour, end hour, participant)`.
fn day_plan(s: &Schedule, day: &str) -> Vec<(u32, u32, Option<i64>)> {
    let from = u(&format!("{day}T00:00:00Z"));
    s.final_shifts(from, from + TimeDelta::days(1))
        .iter()
        .map(|sh| {
            let end = if sh.end == from + TimeDelta::days(1) {
                24
            } else {
                sh.end.hour()
            };
            (sh.start.hour(), end, sh.participant)
        })
        .collect()
}

#[test]
fn follow_the_sun_gaps_and_overlaps_move_with_each_dst_change() {
    let s = follow_the_sun();
    // All on standard time: NY 14–22Z overlaps London 09–17Z by 3 h; gap 22–01Z (3 h).
    assert_eq!(
        day_plan(&s, "2026-03-03"),
        vec![
            (0, 1, None),
            (1, 9, Some(1)),
            (9, 14, Some(2)),
            (14, 22, Some(3)),
            (22, 24, None)
        ]
    );
    // US on EDT (from 03-08), UK still GMT: NY 13–21Z; the gap grows to 4 h, overlap to 4 h.
    assert_eq!(
        day_plan(&s, "2026-03-10"),
        vec![
            (0, 1, None),
            (1, 9, Some(1)),
            (9, 13, Some(2)),
            (13, 21, Some(3)),
            (21, 24, None)
        ]
    );
    // UK on BST too (from 03-29): London 08–16Z overlaps Singapore 08–09Z.
    assert_eq!(
        day_plan(&s, "2026-03-31"),
        vec![
            (0, 1, None),
            (1, 8, Some(1)),
            (8, 13, Some(2)),
            (13, 21, Some(3)),
            (21, 24, None)
        ]
    );
    // UK back on GMT (10-25), US still EDT: London 09–17Z, no overlap with Singapore.
    assert_eq!(
        day_plan(&s, "2026-10-27"),
        vec![
            (0, 1, None),
            (1, 9, Some(1)),
            (9, 13, Some(2)),
            (13, 21, Some(3)),
            (21, 24, None)
        ]
    );
    // Both on standard time again (US 11-01).
    assert_eq!(
        day_plan(&s, "2026-11-03"),
        vec![
            (0, 1, None),
            (1, 9, Some(1)),
            (9, 14, Some(2)),
            (14, 22, Some(3)),
            (22, 24, None)
        ]
    );
    // Weekly gaps around the US change: Friday 22Z (EST) ... Monday 01Z is one weekend gap;
    // Monday 2026-03-09's evening gap starts at 21Z.
    let gaps = s.gaps(u("2026-03-06T00:00:00Z"), u("2026-03-10T00:00:00Z"));
    assert_eq!(
        gaps,
        vec![
            (u("2026-03-06T00:00:00Z"), u("2026-03-06T01:00:00Z")),
            (u("2026-03-06T22:00:00Z"), u("2026-03-09T01:00:00Z")),
            (u("2026-03-09T21:00:00Z"), u("2026-03-10T00:00:00Z")),
        ]
    );
    // The overlaps, from the layer rows: London and New York overlap 14–17Z in winter, 13–17Z
    // in March's three-week mismatch.
    let overlap = |day: &str| {
        let from = u(&format!("{day}T00:00:00Z"));
        let to = from + TimeDelta::days(1);
        let on = |i| {
            s.layer_shifts(i, from, to)
                .into_iter()
                .filter(|sh| sh.participant.is_some())
                .map(|sh| (sh.start, sh.end))
                .collect::<Vec<_>>()
        };
        let (l, n) = (on(1), on(2));
        (n[0].0.hour(), l[0].1.hour())
    };
    assert_eq!(overlap("2026-03-03"), (14, 17));
    assert_eq!(overlap("2026-03-10"), (13, 17));
    assert_eq!(overlap("2026-03-31"), (13, 16));
}

#[test]
fn windows_follow_their_own_zone_not_the_handoff_zone() {
    let mut l = layer(&[1], ShiftUnit::Days, 1, "2026-01-01T00:00", chrono_tz::UTC);
    l.restrictions = vec![window(&WEEKDAYS, "09:00", "17:00", Europe::London)];
    let s = one(l);
    let on = |t: &str| s.on_call_at(u(t)).participant;
    assert_eq!(on("2026-03-27T09:00:00Z"), Some(1)); // Friday GMT
    assert_eq!(on("2026-03-27T08:30:00Z"), None);
    assert_eq!(on("2026-03-30T08:30:00Z"), Some(1)); // Monday BST: window 08–16Z
    assert_eq!(on("2026-03-30T16:30:00Z"), None);
}

#[test]
fn crossing_midnight_window_belongs_to_its_start_day() {
    let mut l = layer(
        &[1],
        ShiftUnit::Weeks,
        1,
        "2026-01-05T00:00",
        chrono_tz::UTC,
    );
    l.restrictions = vec![window(&[Weekday::Fri], "22:00", "06:00", chrono_tz::UTC)];
    let s = one(l);
    // Friday 2026-11-27 22:00 to Saturday 06:00.
    let shifts = s.final_shifts(u("2026-11-26T00:00:00Z"), u("2026-11-30T00:00:00Z"));
    let on: Vec<_> = shifts.iter().filter(|s| s.participant.is_some()).collect();
    assert_eq!(on.len(), 1);
    assert_eq!(
        (on[0].start, on[0].end),
        (u("2026-11-27T22:00:00Z"), u("2026-11-28T06:00:00Z"))
    );
    // Nothing on Thursday night into Friday.
    assert_eq!(s.on_call_at(u("2026-11-27T03:00:00Z")).participant, None);
}

#[test]
fn end_of_day_window_and_whole_week_coverage() {
    let mut l = layer(
        &[1],
        ShiftUnit::Days,
        1,
        "2026-01-01T00:00",
        America::New_York,
    );
    l.restrictions = vec![window(
        &[Weekday::Sat, Weekday::Sun],
        "18:00",
        "24:00",
        America::New_York,
    )];
    let s = one(l);
    let shifts = s.final_shifts(u("2026-11-28T00:00:00Z"), u("2026-11-30T12:00:00Z"));
    let on: Vec<_> = shifts
        .iter()
        .filter(|s| s.participant.is_some())
        .map(|s| (s.start, s.end))
        .collect();
    assert_eq!(
        on,
        vec![
            (u("2026-11-28T23:00:00Z"), u("2026-11-29T05:00:00Z")),
            (u("2026-11-29T23:00:00Z"), u("2026-11-30T05:00:00Z")),
        ]
    );
    // Two restrictions covering the whole week behave as no restriction: one long run.
    let mut l = layer(
        &[4],
        ShiftUnit::Days,
        1,
        "2026-01-01T00:00",
        America::New_York,
    );
    l.restrictions = vec![
        window(&WEEKDAYS, "00:00", "24:00", America::New_York),
        window(
            &[Weekday::Sat, Weekday::Sun],
            "00:00",
            "24:00",
            America::New_York,
        ),
    ];
    let s = one(l);
    let oc = s.on_call_at(u("2026-11-28T12:00:00Z"));
    assert_eq!(oc.participant, Some(4));
    assert_eq!(oc.since, u("2026-01-01T05:00:00Z"));
    assert_eq!(oc.until, crate::horizon_end());
}

#[test]
fn windows_mask_but_do_not_pause_the_rotation() {
    // Daily rotation of 1..=7 at 00:00 UTC from Monday 2026-11-02; weekday windows.
    let mut l = layer(
        &[1, 2, 3, 4, 5, 6, 7],
        ShiftUnit::Days,
        1,
        "2026-11-02T00:00",
        chrono_tz::UTC,
    );
    l.restrictions = vec![window(&WEEKDAYS, "09:00", "17:00", chrono_tz::UTC)];
    let s = one(l);
    let who: Vec<_> = s
        .final_shifts(u("2026-11-02T00:00:00Z"), u("2026-11-16T00:00:00Z"))
        .iter()
        .filter_map(|s| s.participant)
        .collect();
    // Saturday and Sunday (6 and 7) are masked, not skipped: Monday is 1 again.
    assert_eq!(who, vec![1, 2, 3, 4, 5, 1, 2, 3, 4, 5]);
}

#[test]
fn later_layers_and_overrides_win() {
    let base = layer(
        &[1, 2],
        ShiftUnit::Days,
        1,
        "2026-11-01T00:00",
        chrono_tz::UTC,
    );
    let mut top = layer(&[9], ShiftUnit::Days, 1, "2026-11-01T00:00", chrono_tz::UTC);
    top.restrictions = vec![window(&WEEKDAYS, "09:00", "17:00", chrono_tz::UTC)];
    let overrides = vec![
        Override {
            id: 10,
            participant: 20,
            start: u("2026-11-02T10:00:00Z"),
            end: u("2026-11-02T14:00:00Z"),
            created_seq: 1,
        },
        Override {
            id: 11,
            participant: 21,
            start: u("2026-11-02T12:00:00Z"),
            end: u("2026-11-02T13:00:00Z"),
            created_seq: 2,
        },
        // Created earlier than 10, so it loses where they overlap.
        Override {
            id: 12,
            participant: 22,
            start: u("2026-11-02T13:30:00Z"),
            end: u("2026-11-02T15:00:00Z"),
            created_seq: 0,
        },
    ];
    let s = Schedule::new(vec![base, top], overrides).expect("valid");
    let plan: Vec<_> = s
        .final_shifts(u("2026-11-02T08:00:00Z"), u("2026-11-02T18:00:00Z"))
        .iter()
        .map(|s| (s.start.hour(), s.start.minute(), s.participant, s.source))
        .collect();
    assert_eq!(
        plan,
        vec![
            (8, 0, Some(2), Source::Layer(0)),
            (9, 0, Some(9), Source::Layer(1)),
            (10, 0, Some(20), Source::Override(10)),
            (12, 0, Some(21), Source::Override(11)),
            (13, 0, Some(20), Source::Override(10)),
            (14, 0, Some(22), Source::Override(12)),
            (15, 0, Some(9), Source::Layer(1)),
            (17, 0, Some(2), Source::Layer(0)),
        ]
    );
    let h = s.handoffs(u("2026-11-02T09:00:00Z"), u("2026-11-02T10:00:01Z"));
    assert_eq!(
        h,
        vec![
            Handoff {
                at: u("2026-11-02T09:00:00Z"),
                from: Some(2),
                to: Some(9)
            },
            Handoff {
                at: u("2026-11-02T10:00:00Z"),
                from: Some(9),
                to: Some(20)
            },
        ]
    );
}

#[test]
fn load_counts_local_nights_and_weekends() {
    // Participant 1 on call around the clock for the week of 2026-11-23 (Mon) in London.
    let s = one(layer(
        &[1],
        ShiftUnit::Weeks,
        1,
        "2026-11-23T00:00",
        Europe::London,
    ));
    let from = u("2026-11-23T00:00:00Z");
    let to = u("2026-11-30T00:00:00Z");
    let load = s.load(from, to, |_| Europe::London);
    let l = load[&1];
    assert_eq!(l.on_call, TimeDelta::hours(168));
    // Nights: 00–08 on Monday morning, then 22–08 for six nights, then 22–24 on Sunday.
    assert_eq!(l.night, TimeDelta::hours(8 + 6 * 10 + 2));
    assert_eq!(l.weekend, TimeDelta::hours(48));
    // Seen from Kolkata (+05:30), the same week's UTC range holds different local nights.
    let l = s.load(from, to, |_| Asia::Kolkata)[&1];
    assert_eq!(l.night, TimeDelta::hours(70));
    assert_eq!(l.weekend, TimeDelta::hours(48));
    // A night across the fall-back change in New York lasts 11 hours.
    let s = one(layer(
        &[1],
        ShiftUnit::Weeks,
        1,
        "2026-10-26T00:00",
        America::New_York,
    ));
    let l = s.load(u("2026-10-31T12:00:00Z"), u("2026-11-01T18:00:00Z"), |_| {
        America::New_York
    })[&1];
    assert_eq!(l.night, TimeDelta::hours(11));
    // Members never on call still appear, with zero.
    let s = one(layer(
        &[1, 2],
        ShiftUnit::Weeks,
        1,
        "2026-11-23T00:00",
        Europe::London,
    ));
    let load = s.load(from, to, |_| Europe::London);
    assert_eq!(load[&2], Load::default());
}

#[test]
fn validation_errors_are_precise() {
    let ok = || layer(&[1], ShiftUnit::Days, 1, "2026-01-01T09:00", Europe::London);
    let err = |l: Layer| Schedule::new(vec![ok(), l], vec![]).expect_err("invalid");

    let mut l = ok();
    l.rotation.participants.clear();
    assert_eq!(err(l), ScheduleError::EmptyRotation { layer: 1 });
    let mut l = ok();
    l.rotation.participants = vec![1; 1001];
    assert!(matches!(
        err(l),
        ScheduleError::TooManyParticipants {
            layer: 1,
            count: 1001,
            ..
        }
    ));
    let mut l = ok();
    l.rotation.shift.count = 0;
    let e = err(l);
    assert_eq!(
        e,
        ScheduleError::ZeroShiftLength {
            layer: 1,
            unit: ShiftUnit::Days
        }
    );
    assert_eq!(e.field(), "layers[1].shift.count");
    for (unit, count) in [
        (ShiftUnit::Hours, 8761),
        (ShiftUnit::Days, 366),
        (ShiftUnit::Weeks, 53),
    ] {
        let mut l = ok();
        l.rotation.shift = ShiftLength { unit, count };
        assert!(matches!(
            err(l),
            ScheduleError::ShiftTooLong { layer: 1, .. }
        ));
    }
    let mut l = ok();
    l.rotation.shift = ShiftLength {
        unit: ShiftUnit::Weeks,
        count: 52,
    };
    assert!(Schedule::new(vec![l], vec![]).is_ok());
    let mut l = ok();
    l.rotation.handoff = local("1850-01-01T00:00");
    assert!(matches!(
        err(l),
        ScheduleError::HandoffOutOfRange { layer: 1, .. }
    ));
    let mut l = ok();
    l.restrictions = vec![
        window(&WEEKDAYS, "09:00", "17:00", Europe::London),
        window(&[], "09:00", "17:00", Europe::London),
    ];
    let e = err(l);
    assert_eq!(
        e,
        ScheduleError::NoDays {
            layer: 1,
            restriction: 1
        }
    );
    assert_eq!(e.field(), "layers[1].restrictions[1].days");
    assert_eq!(
        e.to_string(),
        "layer 1, restriction 1: no weekdays are selected"
    );
    let mut l = ok();
    l.restrictions = vec![window(&WEEKDAYS, "24:00", "17:00", Europe::London)];
    assert_eq!(
        err(l),
        ScheduleError::StartAtEndOfDay {
            layer: 1,
            restriction: 0
        }
    );
    let mut l = ok();
    l.restrictions = vec![window(&WEEKDAYS, "09:00", "09:00", Europe::London)];
    assert!(matches!(
        err(l),
        ScheduleError::EmptyWindow {
            layer: 1,
            restriction: 0,
            ..
        }
    ));
    let o = Override {
        id: 5,
        participant: 1,
        start: u("2026-01-01T10:00:00Z"),
        end: u("2026-01-01T10:00:00Z"),
        created_seq: 1,
    };
    let e = Schedule::new(vec![ok()], vec![o.clone()]).expect_err("empty override");
    assert!(matches!(
        e,
        ScheduleError::OverrideEndNotAfterStart { id: 5, .. }
    ));
    let mut o2 = o.clone();
    o2.end = u("2026-01-02T10:00:00Z");
    let e = Schedule::new(vec![ok()], vec![o2.clone(), o2]).expect_err("duplicate id");
    assert_eq!(e, ScheduleError::DuplicateOverrideId { id: 5 });
}

#[test]
fn shift_index_is_arithmetic_for_any_distance() {
    // Handoff in 1900, query in 2199: computed directly, not by walking 300 years.
    let s = one(layer(
        &[1, 2, 3],
        ShiftUnit::Days,
        1,
        "1900-01-01T09:00",
        Europe::London,
    ));
    let shifts = s.final_shifts(u("2199-06-01T00:00:00Z"), u("2199-06-03T00:00:00Z"));
    assert_eq!(shifts.len(), 3);
    let l = shifts[1].start.with_timezone(&Europe::London);
    assert_eq!((l.hour(), l.minute()), (9, 0));
    let days = (NaiveDate::from_ymd_opt(2199, 6, 1).expect("d")
        - NaiveDate::from_ymd_opt(1900, 1, 1).expect("d"))
    .num_days();
    assert_eq!(shifts[1].participant, Some([1, 2, 3][(days % 3) as usize]));
    let t = Utc
        .with_ymd_and_hms(2150, 3, 1, 0, 0, 0)
        .single()
        .expect("t");
    assert!(s.on_call_at(t).participant.is_some());
}

#[test]
fn windows_in_two_zones_covering_the_whole_week() {
    // London Mon–Fri all day plus Kolkata Sat–Mon all day: together around the clock, which
    // the single-zone check cannot see. Answers stay exact and bounded by the daily rotation.
    let mut l = layer(
        &[1, 2],
        ShiftUnit::Days,
        1,
        "2026-01-01T00:00",
        chrono_tz::UTC,
    );
    l.restrictions = vec![
        window(&WEEKDAYS, "00:00", "24:00", Europe::London),
        window(
            &[Weekday::Sat, Weekday::Sun, Weekday::Mon],
            "00:00",
            "24:00",
            Asia::Kolkata,
        ),
    ];
    let s = one(l);
    let (from, to) = (u("2026-11-01T00:00:00Z"), u("2026-12-01T00:00:00Z"));
    let shifts = s.final_shifts(from, to);
    assert_eq!(shifts.len(), 30);
    assert!(shifts.iter().all(|s| s.participant.is_some()));
    for sh in &shifts {
        let oc = s.on_call_at(sh.start + TimeDelta::hours(5));
        assert_eq!(
            (oc.since, oc.until, oc.participant),
            (sh.start, sh.end, sh.participant)
        );
    }
    // With a single participant the answer runs from the first handoff to the horizon.
    let mut l = layer(&[1], ShiftUnit::Days, 1, "2026-01-01T00:00", chrono_tz::UTC);
    l.restrictions = vec![
        window(&WEEKDAYS, "00:00", "24:00", Europe::London),
        window(
            &[Weekday::Sat, Weekday::Sun, Weekday::Mon],
            "00:00",
            "24:00",
            Asia::Kolkata,
        ),
    ];
    let oc = one(l).on_call_at(u("2026-11-28T12:00:00Z"));
    assert_eq!(oc.since, u("2026-01-01T00:00:00Z"));
    assert_eq!(oc.until, crate::horizon_end());
}

#[test]
fn every_daily_and_weekly_handoff_stays_at_local_wall_clock_all_year() {
    let zones = [
        America::New_York,
        Europe::London,
        Australia::Sydney,
        Asia::Kolkata,
        Asia::Kathmandu,
        Australia::Lord_Howe,
    ];
    let (from, to) = (u("2026-01-01T00:00:00Z"), u("2027-01-01T00:00:00Z"));
    for tz in zones {
        for (unit, expected) in [(ShiftUnit::Days, 365), (ShiftUnit::Weeks, 52)] {
            // Handoff at 09:30 local, starting 2025-12-29 (a Monday).
            let s = one(layer(&[1, 2, 3], unit, 1, "2025-12-29T09:30", tz));
            let h = s.handoffs(from, to);
            // Around New Year the first handoffs fall on either side of `from` by zone.
            assert!(
                (expected - 1..=expected + 1).contains(&h.len()),
                "{tz} {unit}: {}",
                h.len()
            );
            for x in &h {
                let l = x.at.with_timezone(&tz);
                assert_eq!((l.hour(), l.minute()), (9, 30), "{tz} {unit} at {}", x.at);
                if unit == ShiftUnit::Weeks {
                    assert_eq!(l.weekday(), Weekday::Mon, "{tz} at {}", x.at);
                }
            }
            // Shift lengths vary only by the DST changes of that zone (0, 30 or 60 minutes).
            for w in h.windows(2) {
                let nominal = if unit == ShiftUnit::Days { 24 } else { 168 };
                let diff = (w[1].at - w[0].at - TimeDelta::hours(nominal)).num_minutes();
                assert!([-60, -30, 0, 30, 60].contains(&diff), "{tz}: {diff}");
            }
        }
    }
}

#[test]
fn schedule_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Schedule>();
    assert_send_sync::<Shift>();
}
