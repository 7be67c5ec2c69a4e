//! Criterion benchmarks: follow-the-sun (Singapore, London, New York layers of 8 people each,
//! weekly shifts, weekday 09:00–17:00 windows), a 24/7 secondary layer of 6 people on daily
//! shifts, and 1,000 overrides spread over 2026.
//!
//! Run: `cargo bench -p heliograph-scheduler`

mod fixture;

use std::hint::black_box;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::{America, Asia, Europe};
use criterion::{Criterion, criterion_group, criterion_main};
use fixture::{schedule, u};
use heliograph_scheduler::{Schedule, Source};

/// The first instant on 2026-06-17 (searching from 15:42Z, minute by minute) whose answer comes
/// from `source` and not from an override.
fn first_instant(s: &Schedule, source: Source) -> DateTime<Utc> {
    let start = u("2026-06-17T15:42:00Z");
    (0..3 * 24 * 60)
        .map(|m| start + TimeDelta::minutes(m))
        .find(|t| s.on_call_at(*t).source == source)
        .expect("such an instant")
}

fn benches(c: &mut Criterion) {
    let s = schedule();
    let year = (u("2026-01-01T00:00:00Z"), u("2027-01-01T00:00:00Z"));
    let q90 = (u("2026-03-01T00:00:00Z"), u("2026-05-30T00:00:00Z"));
    let far = (u("2150-03-01T00:00:00Z"), u("2150-05-30T00:00:00Z"));
    let year_shifts = s.final_shifts(year.0, year.1);
    let under_override: TimeDelta = year_shifts
        .iter()
        .filter(|sh| matches!(sh.source, Source::Override(_)))
        .map(|sh| sh.end - sh.start)
        .sum();
    eprintln!(
        "shifts: year {}, 90 days {}; hours under an override in 2026: {}",
        year_shifts.len(),
        s.final_shifts(q90.0, q90.1).len(),
        under_override.num_hours()
    );
    c.bench_function("final_shifts_1_year", |b| {
        b.iter(|| s.final_shifts(black_box(year.0), black_box(year.1)))
    });
    c.bench_function("final_shifts_90_days", |b| {
        b.iter(|| s.final_shifts(black_box(q90.0), black_box(q90.1)))
    });
    c.bench_function("final_shifts_90_days_in_2150", |b| {
        b.iter(|| s.final_shifts(black_box(far.0), black_box(far.1)))
    });
    // Three kinds of instant: a top-layer (New York) hour, a secondary-layer hour (all three
    // regions closed, so every layer is consulted) and an instant inside an override.
    let at_top = first_instant(&s, Source::Layer(3));
    let at_secondary = first_instant(&s, Source::Layer(0));
    let at_override = u("2026-06-17T00:00:00Z")
        + (0..24 * 60)
            .map(TimeDelta::minutes)
            .find(|d| {
                matches!(
                    s.on_call_at(u("2026-06-17T00:00:00Z") + *d).source,
                    Source::Override(_)
                )
            })
            .expect("an override on 2026-06-17");
    eprintln!(
        "on_call_at instants: top {at_top}, secondary {at_secondary}, override {at_override}"
    );
    c.bench_function("on_call_at", |b| b.iter(|| s.on_call_at(black_box(at_top))));
    c.bench_function("on_call_at_secondary", |b| {
        b.iter(|| s.on_call_at(black_box(at_secondary)))
    });
    c.bench_function("on_call_at_override", |b| {
        b.iter(|| s.on_call_at(black_box(at_override)))
    });
    let zone = |p: i64| match p {
        1..=8 => Asia::Singapore,
        11..=18 => Europe::London,
        21..=28 => America::New_York,
        _ => Europe::London,
    };
    // Validation and indexing (flattening the 1,000 overrides), inputs cloned each time.
    c.bench_function("schedule_new_with_1000_overrides", |b| {
        b.iter(|| Schedule::new(s.layers().to_vec(), s.overrides().to_vec()))
    });
    c.bench_function("load_1_year", |b| {
        b.iter(|| s.load(black_box(year.0), black_box(year.1), zone))
    });
}

criterion_group! {
    name = scheduler;
    config = Criterion::default().measurement_time(std::time::Duration::from_secs(4));
    targets = benches
}
criterion_main!(scheduler);
