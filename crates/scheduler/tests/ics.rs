//! The iCalendar output parses with an independent parser (the `ical` crate) and its events
//! are exactly the final schedule's shifts.

use std::io::BufReader;

use chrono::{DateTime, NaiveDateTime, Utc, Weekday};
use chrono_tz::{America, Asia, Europe};
use heliograph_scheduler::{
    Layer, Override, ParticipantId, Restriction, Rotation, Schedule, Shift, ShiftLength, ShiftUnit,
    ics,
};

fn u(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("literal").to_utc()
}

fn region(name: &str, people: &[i64], tz: chrono_tz::Tz) -> Layer {
    Layer {
        name: name.into(),
        rotation: Rotation {
            participants: people.to_vec(),
            shift: ShiftLength {
                unit: ShiftUnit::Weeks,
                count: 1,
            },
            handoff: NaiveDateTime::parse_from_str("2026-01-05T09:00", "%Y-%m-%dT%H:%M")
                .expect("literal"),
            handoff_time_zone: tz,
        },
        restrictions: vec![Restriction {
            days: vec![
                Weekday::Mon,
                Weekday::Tue,
                Weekday::Wed,
                Weekday::Thu,
                Weekday::Fri,
            ],
            start: "09:00".parse().expect("literal"),
            end: "17:00".parse().expect("literal"),
            time_zone: tz,
        }],
    }
}

fn schedule() -> Schedule {
    let layers = vec![
        region("APAC", &[1, 2], Asia::Singapore),
        region("EMEA", &[3, 4], Europe::London),
        region("AMER", &[5, 6], America::New_York),
    ];
    let overrides = vec![Override {
        id: 1,
        participant: 7,
        start: u("2026-03-10T10:00:00Z"),
        end: u("2026-03-10T12:30:00Z"),
        created_seq: 1,
    }];
    Schedule::new(layers, overrides).expect("valid")
}

fn name_of(p: ParticipantId) -> String {
    match p {
        1 => "Wei; \"night owl\"".into(),
        3 => "Ana, SRE \\ on-call\nlead".into(),
        7 => {
            "Ōsaka-born Søren with a very long display name that needs folding across lines".into()
        }
        p => format!("Person {p}"),
    }
}

/// RFC 5545 TEXT unescaping, written here independently of the library.
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('n') | Some('N') => out.push('\n'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

struct Event {
    uid: String,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    summary: String,
}

fn parse(text: &str) -> (String, Vec<Event>) {
    let mut parser = ical::IcalParser::new(BufReader::new(text.as_bytes()));
    let cal = parser.next().expect("one calendar").expect("parses");
    assert!(parser.next().is_none());
    let prop = |props: &[ical::property::Property], name: &str| {
        props
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| p.value.clone())
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    let when = |v: String| {
        NaiveDateTime::parse_from_str(&v, "%Y%m%dT%H%M%SZ")
            .expect("UTC DATE-TIME")
            .and_utc()
    };
    let name = unescape(&prop(&cal.properties, "X-WR-CALNAME"));
    assert_eq!(prop(&cal.properties, "VERSION"), "2.0");
    let events = cal
        .events
        .iter()
        .map(|e| {
            assert!(e.properties.iter().any(|p| p.name == "DTSTAMP"));
            Event {
                uid: prop(&e.properties, "UID"),
                start: when(prop(&e.properties, "DTSTART")),
                end: when(prop(&e.properties, "DTEND")),
                summary: unescape(&prop(&e.properties, "SUMMARY")),
            }
        })
        .collect();
    (name, events)
}

fn check(text: &str, shifts: &[Shift], cal_name: &str) -> Vec<String> {
    assert!(text.ends_with("END:VCALENDAR\r\n"));
    for l in text.split("\r\n") {
        assert!(l.len() <= 75, "line longer than 75 octets: {l:?}");
    }
    let (name, events) = parse(text);
    assert_eq!(name, cal_name);
    let on: Vec<&Shift> = shifts.iter().filter(|s| s.participant.is_some()).collect();
    assert_eq!(events.len(), on.len());
    for (e, s) in events.iter().zip(&on) {
        let p = s.participant.expect("filtered");
        assert_eq!((e.start, e.end), (s.start, s.end));
        assert_eq!(e.summary, format!("On call: {} ({cal_name})", name_of(p)));
    }
    events.into_iter().map(|e| e.uid).collect()
}

#[test]
fn ics_parses_and_equals_the_final_schedule() {
    let s = schedule();
    let cal_name = "AI platform, primary; \"follow the sun\"";
    let (from, to) = (u("2026-03-02T00:00:00Z"), u("2026-03-23T00:00:00Z"));
    let shifts = s.final_shifts(from, to);
    assert!(shifts.len() > 40);
    let text = ics::render(cal_name, &shifts, name_of, "schedule-1.heliograph.test");
    let uids = check(&text, &shifts, cal_name);
    let mut unique = uids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), uids.len(), "UIDs are unique");

    // Rendering the same shifts again gives the same text.
    assert_eq!(
        text,
        ics::render(cal_name, &shifts, name_of, "schedule-1.heliograph.test")
    );

    // A rolling feed: calendar_shifts keeps shifts whole, so every shift two renderings
    // share keeps its UID even when the ranges cut through different shifts.
    let a = s.calendar_shifts(u("2026-03-02T11:11:00Z"), u("2026-03-16T11:11:00Z"));
    let b = s.calendar_shifts(u("2026-03-04T03:33:00Z"), u("2026-03-18T03:33:00Z"));
    let ua = check(&ics::render(cal_name, &a, name_of, "s1"), &a, cal_name);
    let ub = check(&ics::render(cal_name, &b, name_of, "s1"), &b, cal_name);
    let in_both = a
        .iter()
        .filter(|sh| sh.participant.is_some() && sh.start >= b[0].start)
        .count();
    let shared = ub.iter().filter(|id| ua.contains(id)).count();
    assert!(in_both > 10);
    assert_eq!(shared, in_both);
    // The whole shifts start and end where on_call_at says.
    let oc = s.on_call_at(u("2026-03-02T11:11:00Z"));
    assert_eq!((a[0].start, a[0].end), (oc.since, oc.until));
}

#[test]
fn one_persons_calendar() {
    let s = schedule();
    let (from, to) = (u("2026-03-02T00:00:00Z"), u("2026-03-23T00:00:00Z"));
    let mine = s.person_shifts(3, from, to);
    assert!(!mine.is_empty());
    assert!(mine.iter().all(|s| s.participant == Some(3)));
    let text = ics::render("Ana's on-call", &mine, name_of, "user-3");
    check(&text, &mine, "Ana's on-call");
}
