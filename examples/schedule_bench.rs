//! Load script for the schedule pages and APIs: a schedule with 6 layers (hour, day and week
//! shifts in five zones, restriction windows, one crossing midnight) and 200 overrides, timed
//! over HTTP on loopback against the real server.
//!
//!     cargo run --release --example schedule_bench -- sqlite
//!     cargo run --release --example schedule_bench -- postgres   # needs HELIOGRAPH_TEST_POSTGRES_URL or the default
//!
//! Prints the median and 90th percentile of the full request time (server time plus loopback).

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime, TimeDelta, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use heliograph_domain::{
    DisplayName, Password, Role, SystemClock, TeamName, TimeZone, TokenName, UserEmail,
};
use heliograph_scheduler::{Layer, LocalTimeOfDay, Restriction, Rotation, ShiftLength, ShiftUnit};
use heliograph_store::schedules::ScheduleFields;
use heliograph_store::testdb::TestDatabase;
use heliograph_store::users::NewUser;
use heliograph_store::{Audit, Backend, Db, Store};

const PEOPLE: usize = 30;
const OVERRIDES: usize = 200;
const SAMPLES: usize = 200;
const WARM_UP: usize = 10;

/// A small deterministic pseudo-random sequence (64-bit LCG), so every run seeds the same.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

fn time(h: u32, m: u32) -> LocalTimeOfDay {
    LocalTimeOfDay::from_hm(h, m).unwrap()
}

fn window(days: &[Weekday], start: LocalTimeOfDay, end: LocalTimeOfDay, tz: Tz) -> Restriction {
    Restriction {
        days: days.to_vec(),
        start,
        end,
        time_zone: tz,
    }
}

fn layer(
    name: &str,
    participants: &[i64],
    unit: ShiftUnit,
    count: u32,
    handoff: &str,
    tz: Tz,
    restrictions: Vec<Restriction>,
) -> Layer {
    Layer {
        name: name.into(),
        rotation: Rotation {
            participants: participants.to_vec(),
            shift: ShiftLength { unit, count },
            handoff: handoff.parse::<NaiveDateTime>().unwrap(),
            handoff_time_zone: tz,
        },
        restrictions,
    }
}

/// Six layers, lowest first: a weekly 24/7 secondary, then regional day and week rotations
/// restricted to office hours, 12-hour nights across midnight, and 8-hour weekend shifts.
fn layers(people: &[i64]) -> Vec<Layer> {
    use Weekday::*;
    let weekdays = [Mon, Tue, Wed, Thu, Fri];
    let every_day = [Mon, Tue, Wed, Thu, Fri, Sat, Sun];
    vec![
        layer(
            "Secondary 24/7",
            &people[0..6],
            ShiftUnit::Weeks,
            1,
            "2026-01-05T09:00:00",
            chrono_tz::Europe::London,
            vec![],
        ),
        layer(
            "APAC",
            &people[6..11],
            ShiftUnit::Days,
            1,
            "2026-01-05T09:00:00",
            chrono_tz::Asia::Singapore,
            vec![window(
                &weekdays,
                time(9, 0),
                time(18, 0),
                chrono_tz::Asia::Singapore,
            )],
        ),
        layer(
            "EMEA",
            &people[11..16],
            ShiftUnit::Weeks,
            1,
            "2026-01-05T09:00:00",
            chrono_tz::Europe::London,
            vec![window(
                &weekdays,
                time(9, 0),
                time(17, 30),
                chrono_tz::Europe::London,
            )],
        ),
        layer(
            "Americas",
            &people[16..21],
            ShiftUnit::Days,
            2,
            "2026-01-05T09:00:00",
            chrono_tz::America::New_York,
            vec![
                window(
                    &weekdays,
                    time(9, 0),
                    time(17, 0),
                    chrono_tz::America::New_York,
                ),
                window(
                    &[Sat],
                    time(10, 0),
                    time(14, 0),
                    chrono_tz::America::New_York,
                ),
            ],
        ),
        layer(
            "Nights",
            &people[21..25],
            ShiftUnit::Hours,
            12,
            "2026-01-05T06:00:00",
            chrono_tz::Asia::Kathmandu,
            vec![window(
                &every_day,
                time(22, 0),
                time(6, 0),
                chrono_tz::Asia::Kathmandu,
            )],
        ),
        layer(
            "Weekend",
            &people[25..30],
            ShiftUnit::Hours,
            8,
            "2026-01-03T00:00:00",
            chrono_tz::Australia::Sydney,
            vec![window(
                &[Sat, Sun],
                LocalTimeOfDay::MIDNIGHT,
                LocalTimeOfDay::END_OF_DAY,
                chrono_tz::Australia::Sydney,
            )],
        ),
    ]
}

#[tokio::main]
async fn main() {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let backend = match std::env::args().nth(1).as_deref() {
        Some("postgres") => Backend::Postgres,
        _ => Backend::Sqlite,
    };
    let db = TestDatabase::fresh(backend).await;
    let conn = Db::connect(&db.url).await.unwrap();
    conn.migrate().await.unwrap();
    let store = Store::with_clock(conn, Arc::new(SystemClock));
    let audit = Audit::cli();
    let started = Instant::now();
    let hash = heliograph_web::auth::hash_password(Password::parse("benchmark password").unwrap())
        .await
        .unwrap();
    // The viewer's zone differs from the schedule's, so the default page converts.
    let me = store
        .create_user(
            &NewUser {
                email: UserEmail::parse("bench@example.com").unwrap(),
                name: DisplayName::parse("Bench").unwrap(),
                time_zone: TimeZone::parse("America/New_York").unwrap(),
                role: Role::Manager,
                password_hash: Some(hash),
            },
            &audit,
        )
        .await
        .unwrap();
    let zones = [
        "Asia/Singapore",
        "Europe/London",
        "America/New_York",
        "Asia/Kathmandu",
        "Australia/Sydney",
    ];
    let mut people = Vec::with_capacity(PEOPLE);
    for k in 0..PEOPLE {
        let user = store
            .create_user(
                &NewUser {
                    email: UserEmail::parse(&format!("person{k}@example.com")).unwrap(),
                    name: DisplayName::parse(&format!("Person {k:02} Responder")).unwrap(),
                    time_zone: TimeZone::parse(zones[k % zones.len()]).unwrap(),
                    role: Role::Responder,
                    password_hash: None,
                },
                &audit,
            )
            .await
            .unwrap();
        people.push(user.id);
    }
    let mut members = people.clone();
    members.push(me.id);
    let team = store
        .create_team(&TeamName::parse("Platform").unwrap(), &members, &audit)
        .await
        .unwrap();
    let schedule = store
        .create_schedule(
            &ScheduleFields {
                name: "Platform on-call".into(),
                time_zone: TimeZone::parse("Europe/London").unwrap(),
                team_id: team.team.id,
                layers: layers(&people),
            },
            &audit,
        )
        .await
        .unwrap();
    let id = schedule.id;

    // 200 overrides from 14 days before today to 28 days after (the page shows 14 days from
    // today, so about a third of them): mostly 30 minutes to 4 hours on 15-minute boundaries,
    // every twentieth a whole day, so several overlap and the layers still show between them.
    let now = Utc::now();
    let today = now
        .with_hour(0)
        .and_then(|t| t.with_minute(0))
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap();
    let mut rng = Lcg(0x5eed);
    for k in 0..OVERRIDES {
        let quarter = rng.below(42 * 24 * 4) as i64;
        let start = today - TimeDelta::days(14) + TimeDelta::minutes(15 * quarter);
        let length = if k % 20 == 0 {
            TimeDelta::days(1)
        } else {
            TimeDelta::minutes(30 * (1 + rng.below(8) as i64))
        };
        let who = people[rng.below(PEOPLE as u64) as usize];
        store
            .create_override(id, who, start, start + length, &[], &audit)
            .await
            .unwrap();
    }

    let token = heliograph_web::auth::new_api_token();
    store
        .create_token(
            me.id,
            &TokenName::parse("bench").unwrap(),
            &heliograph_web::auth::hash_secret(&token),
            &heliograph_web::auth::token_prefix(&token),
            &audit,
        )
        .await
        .unwrap();
    let secret = heliograph_web::auth::new_secret();
    store
        .create_calendar_feed(
            me.id,
            Some(id),
            &heliograph_web::auth::hash_secret(&secret),
            &audit,
        )
        .await
        .unwrap();
    println!(
        "{backend:?}: loaded {PEOPLE} people, a 6-layer schedule and {OVERRIDES} overrides in {:.1?}",
        started.elapsed()
    );

    let (base, client) =
        common::serve_signed_in(&store, "bench@example.com", "benchmark password").await;

    let rfc = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    // (label, path, with the API token, a text the answer must contain)
    let pages: [(&str, String, bool, &str); 6] = [
        (
            "schedule page, 14 days in the viewer's zone",
            format!("/schedules/{id}"),
            false,
            "America/New_York",
        ),
        (
            "schedule page, schedule zone, across DST",
            format!("/schedules/{id}?zone=schedule&start=2027-03-25"),
            false,
            "Europe/London",
        ),
        ("/oncall", "/oncall".to_owned(), false, "Platform on-call"),
        (
            "API oncall",
            format!("/api/v1/schedules/{id}/oncall"),
            true,
            "\"until\"",
        ),
        (
            "API shifts, 14 days",
            format!(
                "/api/v1/schedules/{id}/shifts?from={}&to={}",
                rfc(today),
                rfc(today + TimeDelta::days(14))
            ),
            true,
            "\"shifts\"",
        ),
        (
            "calendar feed (-30..+180 days)",
            format!("/calendar/{secret}.ics"),
            false,
            "BEGIN:VEVENT",
        ),
    ];
    // DUMP=folder writes each answer there, to look at what was measured.
    let dump = std::env::var_os("DUMP").map(std::path::PathBuf::from);
    for (n, (label, path, api, expect)) in pages.into_iter().enumerate() {
        let url = format!("{base}{path}");
        let request = || {
            let r = client.get(&url);
            if api { r.bearer_auth(&token) } else { r }
        };
        for _ in 0..WARM_UP {
            let response = request().send().await.unwrap();
            assert_eq!(response.status(), 200, "{url}");
            let body = response.text().await.unwrap();
            assert!(body.contains(expect), "{url} lacks {expect}");
            if let Some(dir) = &dump {
                std::fs::write(dir.join(format!("{n}.txt")), &body).unwrap();
            }
        }
        let mut times: Vec<Duration> = Vec::with_capacity(SAMPLES);
        let mut bytes = 0;
        for _ in 0..SAMPLES {
            let t = Instant::now();
            let response = request().send().await.unwrap();
            assert_eq!(response.status(), 200, "{url}");
            bytes = response.bytes().await.unwrap().len();
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "{backend:?}: {label}: median {:.1} ms, p90 {:.1} ms ({} KB, {SAMPLES} requests)",
            times[SAMPLES / 2].as_secs_f64() * 1000.0,
            times[SAMPLES * 90 / 100].as_secs_f64() * 1000.0,
            bytes / 1024
        );
    }
}
