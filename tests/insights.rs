//! End-to-end: the /insights page and its CSV files on SQLite and PostgreSQL, over a hand-built
//! set of incidents whose answers are worked out by hand below.
//!
//! The viewer lives in America/New_York. Clocks there went forward on Sunday 2026-03-08 at
//! 02:00 EST (07:00 UTC): before it local = UTC − 5, after it UTC − 4. The clock of the
//! application stands at 2026-03-20T02:00Z = Thursday 19 March 22:00 EDT (in UTC it is
//! already the 20th).
//!
//! Percentiles are nearest-rank: the p-th of n sorted values is the one at rank ⌈p·n/100⌉.
//!
//! The custom range 2026-03-06 .. 2026-03-10 (inclusive, New York) is
//! [2026-03-06T05:00Z, 2026-03-11T04:00Z); its day buckets end at local midnight: Mar 8 is a
//! 23-hour day ending at 2026-03-09T04:00Z.

mod common;

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use common::{TestApp, backends};
use heliograph_domain::{
    DisplayName, FixedClock, IncidentStatus, Password, Role, ServiceKind, Severity, TeamName,
    TimeZone, UserEmail, WorkloadClass,
};
use heliograph_store::seed::SeedIncident;
use heliograph_store::services::{ResponseTarget, ResponseTargets, ServiceFields, SeverityMap};
use heliograph_store::testdb::TestDatabase;
use heliograph_store::users::NewUser;
use heliograph_store::{Audit, Db};
use reqwest::StatusCode;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn mins(m: i64) -> TimeDelta {
    TimeDelta::minutes(m)
}

/// Runs one statement with binds on the write side of either backend.
macro_rules! exec {
    ($app:expr, $sql:expr $(, $bind:expr)*) => {
        match $app.store.db() {
            Db::Sqlite { write, .. } => { sqlx::query($sql)$(.bind($bind))*.execute(write).await.unwrap(); }
            Db::Postgres(pool, _) => { sqlx::query($sql)$(.bind($bind))*.execute(pool).await.unwrap(); }
        }
    };
}

async fn id_of(app: &TestApp, sql: &'static str, number: i64) -> i64 {
    match app.store.db() {
        Db::Sqlite { read, .. } => sqlx::query_scalar(sql)
            .bind(number)
            .fetch_one(read)
            .await
            .unwrap(),
        Db::Postgres(pool, _) => sqlx::query_scalar(sql)
            .bind(number)
            .fetch_one(pool)
            .await
            .unwrap(),
    }
}

struct Fixture {
    app: TestApp,
    viewer: reqwest::Client,
    t2: i64,
    s1: i64,
    s2: i64,
    s3: i64,
}

fn targets(list: &[(Severity, u32, u32)]) -> ResponseTargets {
    ResponseTargets(
        list.iter()
            .map(|(s, a, r)| {
                (
                    *s,
                    ResponseTarget {
                        acknowledge_minutes: Some(*a),
                        resolve_minutes: Some(*r),
                    },
                )
            })
            .collect(),
    )
}

async fn fixture(backend: heliograph_store::Backend) -> Fixture {
    let clock = Arc::new(FixedClock::new(t("2026-03-20T02:00:00Z")));
    let db = Arc::new(TestDatabase::fresh(backend).await);
    let app = TestApp::spawn_on(backend, db, clock).await;
    let audit = Audit::cli();
    let hash =
        heliograph_web::auth::hash_password(Password::parse("vera's long password").unwrap())
            .await
            .unwrap();
    app.store
        .create_user(
            &NewUser {
                email: UserEmail::parse("vera@example.com").unwrap(),
                name: DisplayName::parse("Vera").unwrap(),
                time_zone: TimeZone::parse("America/New_York").unwrap(),
                role: Role::Viewer,
                password_hash: Some(hash),
            },
            &audit,
        )
        .await
        .unwrap();
    let viewer = app.browser();
    app.sign_in(&viewer, "vera@example.com", "vera's long password")
        .await;

    let t1 = app
        .store
        .create_team(&TeamName::parse("Inference").unwrap(), &[], &audit)
        .await
        .unwrap()
        .team
        .id;
    let t2 = app
        .store
        .create_team(&TeamName::parse("Data").unwrap(), &[], &audit)
        .await
        .unwrap()
        .team
        .id;
    let service = |name: &str, team: i64, targets: ResponseTargets| ServiceFields {
        name: name.into(),
        description: String::new(),
        kind: "llm-inference".parse::<ServiceKind>().unwrap(),
        workload_class: "real-time".parse::<WorkloadClass>().unwrap(),
        team_id: Some(team),
        escalation_policy_id: None,
        response_targets: targets,
        grouping_window_minutes: 0,
        auto_resolve: true,
        severity_map: SeverityMap::default(),
    };
    // S1: SEV1 acknowledge 5 / resolve 60 min; SEV2 15 / 240. S2: SEV1 10 / 120. S3: none.
    let s1 = app
        .store
        .create_service(
            &service(
                "llm-gateway",
                t1,
                targets(&[(Severity::Sev1, 5, 60), (Severity::Sev2, 15, 240)]),
            ),
            &audit,
        )
        .await
        .unwrap()
        .id;
    let s2 = app
        .store
        .create_service(
            &service("vector-db", t2, targets(&[(Severity::Sev1, 10, 120)])),
            &audit,
        )
        .await
        .unwrap()
        .id;
    let s3 = app
        .store
        .create_service(
            &service("feature-store", t2, ResponseTargets::default()),
            &audit,
        )
        .await
        .unwrap()
        .id;

    // (services, severity, triggered, ack after minutes, resolved after minutes)
    type Spec<'a> = (Vec<i64>, Severity, &'a str, Option<i64>, Option<i64>);
    let specs: Vec<Spec> = vec![
        // #1 Mar 6 09:00 EST
        (
            vec![s1],
            Severity::Sev1,
            "2026-03-06T14:00:00Z",
            Some(2),
            Some(30),
        ),
        // #2 Mar 7 09:00 EST; acknowledged exactly on the 5-minute target, resolved exactly on 60
        (
            vec![s1],
            Severity::Sev1,
            "2026-03-07T14:00:00Z",
            Some(5),
            Some(60),
        ),
        // #3 Mar 8 23:59 EDT: the last minute of the 23-hour day
        (
            vec![s1],
            Severity::Sev1,
            "2026-03-09T03:59:00Z",
            Some(6),
            Some(90),
        ),
        // #4 Mar 9 00:30 EDT (with EST's offset it would fall on the 8th)
        (
            vec![s1],
            Severity::Sev1,
            "2026-03-09T04:30:00Z",
            Some(10),
            Some(45),
        ),
        // #5 Mar 10; never resolved
        (
            vec![s1],
            Severity::Sev1,
            "2026-03-10T14:00:00Z",
            Some(30),
            None,
        ),
        // #6 Mar 8 01:00 EST, before the change; never acknowledged nor resolved
        (vec![s2], Severity::Sev1, "2026-03-08T06:00:00Z", None, None),
        // #7 Mar 10 23:59 EDT, the range's last minute; resolved after the range
        (
            vec![s2],
            Severity::Sev2,
            "2026-03-11T03:59:00Z",
            Some(20),
            Some(180),
        ),
        // #8 Mar 5 23:59 EST: before the range
        (
            vec![s3],
            Severity::Sev3,
            "2026-03-06T04:59:00Z",
            Some(1),
            Some(2),
        ),
        // #9 Mar 11 00:00 EDT: after the range
        (
            vec![s3],
            Severity::Sev3,
            "2026-03-11T04:00:00Z",
            Some(1),
            Some(2),
        ),
        // #10 Mar 7
        (
            vec![s3],
            Severity::Sev4,
            "2026-03-07T12:00:00Z",
            Some(1),
            Some(3),
        ),
        // #11 Mar 8 11:00 EDT, on two services; S1's SEV2 acknowledge target met exactly
        (
            vec![s1, s3],
            Severity::Sev2,
            "2026-03-08T15:00:00Z",
            Some(15),
            Some(300),
        ),
        // #12, #13: 10 and 2 minutes before now, open (for the last-7-days range)
        (vec![s1], Severity::Sev1, "2026-03-20T01:50:00Z", None, None),
        (vec![s1], Severity::Sev1, "2026-03-20T01:58:00Z", None, None),
        // #14 Mar 14, resolved: its postmortem is not yet due at now
        (
            vec![s2],
            Severity::Sev2,
            "2026-03-14T10:00:00Z",
            Some(4),
            Some(30),
        ),
    ];
    let items: Vec<SeedIncident> = specs
        .iter()
        .enumerate()
        .map(|(k, (services, severity, at, ack, res))| {
            let at = t(at);
            SeedIncident {
                title: format!("Incident {}", k + 1),
                description: String::new(),
                description_html: String::new(),
                severity: *severity,
                status: if res.is_some() {
                    IncidentStatus::Resolved
                } else if ack.is_some() {
                    IncidentStatus::Acknowledged
                } else {
                    IncidentStatus::Triggered
                },
                commander_id: None,
                service_ids: services.clone(),
                triggered_at: at,
                acknowledged_at: ack.map(|m| at + mins(m)),
                resolved_at: res.map(|m| at + mins(m)),
                timeline: Vec::new(),
            }
        })
        .collect();
    let numbers = app.store.seed_incidents(&items, &audit).await.unwrap();
    assert_eq!(numbers, (1..=14).collect::<Vec<i64>>());

    // Postmortems (due = resolution + 7 days):
    //  #1 resolved Mar 6 14:30Z, due Mar 13 14:30Z, published exactly then → on time
    //  #2 resolved Mar 7 15:00Z, due Mar 14 15:00Z, published Mar 15 → late
    //  #3 resolved Mar 9 05:29Z, draft → overdue; #11 resolved Mar 8 20:00Z, in review → overdue
    //  #4 resolved Mar 9 05:15Z, none → overdue; #14 resolved Mar 14 10:30Z, none → not yet due
    let pm = |number: i64, status: &'static str, published: Option<DateTime<Utc>>| {
        (number, status, published)
    };
    for (number, status, published) in [
        pm(1, "published", Some(t("2026-03-13T14:30:00Z"))),
        pm(2, "published", Some(t("2026-03-15T00:00:00Z"))),
        pm(3, "draft", None),
        pm(11, "in_review", None),
    ] {
        let incident = id_of(&app, "SELECT id FROM incidents WHERE number = $1", number).await;
        let now = t("2026-03-12T00:00:00Z");
        exec!(
            app,
            "INSERT INTO postmortems (incident_id, status, title, sections, timeline, created_at, updated_at, published_at) VALUES ($1, $2, $3, '{}', '[]', $4, $4, $5)",
            incident,
            status,
            format!("Review of #{number}"),
            now,
            published
        );
    }
    let pm1 = id_of(
        &app,
        "SELECT p.id FROM postmortems p JOIN incidents i ON i.id = p.incident_id WHERE i.number = $1",
        1,
    )
    .await;
    let pm3 = id_of(
        &app,
        "SELECT p.id FROM postmortems p JOIN incidents i ON i.id = p.incident_id WHERE i.number = $1",
        3,
    )
    .await;
    // Action items. Today in New York is 2026-03-19 (in UTC already the 20th):
    //  A1 open, due 03-18 → overdue; A2 in progress, due 03-19 → not overdue (it would be by
    //  UTC's date); A3 done → not listed; A4 open without a due date → not overdue.
    for (pm_id, title, status, due) in [
        (pm1, "Add a canary", "open", Some("2026-03-18")),
        (pm1, "Write the runbook", "in_progress", Some("2026-03-19")),
        (pm1, "Old fix", "done", Some("2026-03-01")),
        (pm3, "Dashboards, alerts", "open", None),
    ] {
        let now = t("2026-03-12T00:00:00Z");
        exec!(
            app,
            "INSERT INTO action_items (postmortem_id, title, due_date, status, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
            pm_id,
            title,
            due,
            status,
            now
        );
    }
    Fixture {
        app,
        viewer,
        t2,
        s1,
        s2,
        s3,
    }
}

/// Fetches a CSV as the viewer: its rows split into cells (a minimal reader: quoted cells may
/// hold commas and doubled quotes).
async fn csv(f: &Fixture, path: &str) -> Vec<Vec<String>> {
    let r = f.viewer.get(f.app.url(path)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "text/csv; charset=utf-8"
    );
    let disposition = r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        disposition.starts_with("attachment; filename="),
        "{disposition}"
    );
    let body = r.text().await.unwrap();
    body.split("\r\n")
        .filter(|l| !l.is_empty())
        .map(|line| {
            let mut cells = Vec::new();
            let mut cell = String::new();
            let mut quoted = false;
            let mut chars = line.chars().peekable();
            while let Some(c) = chars.next() {
                match (c, quoted) {
                    ('"', false) if cell.is_empty() => quoted = true,
                    ('"', true) if chars.peek() == Some(&'"') => {
                        chars.next();
                        cell.push('"');
                    }
                    ('"', true) => quoted = false,
                    (',', false) => cells.push(std::mem::take(&mut cell)),
                    (c, _) => cell.push(c),
                }
            }
            cells.push(cell);
            cells
        })
        .collect()
}

fn rows(expected: &[&[&str]]) -> Vec<Vec<String>> {
    expected
        .iter()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect()
}

const RANGE: &str = "range=custom&from=2026-03-06&to=2026-03-10";

#[tokio::test]
async fn counts_and_response_times_per_local_day_across_the_dst_change() {
    for backend in backends() {
        let f = fixture(backend).await;
        // In range: #1–#7, #10, #11 (9). Local days:
        //  Mar 6: #1 SEV1 · Mar 7: #2 SEV1, #10 SEV4 · Mar 8: #3 SEV1 (23:59 EDT), #6 SEV1
        //  (01:00 EST), #11 SEV2 · Mar 9: #4 SEV1 (00:30 EDT) · Mar 10: #5 SEV1, #7 SEV2 (23:59)
        let got = csv(&f, &format!("/insights/severity.csv?{RANGE}")).await;
        assert_eq!(
            got,
            rows(&[
                &["bucket_start", "SEV1", "SEV2", "SEV3", "SEV4", "total"],
                &["2026-03-06", "1", "0", "0", "0", "1"],
                &["2026-03-07", "1", "0", "0", "1", "2"],
                &["2026-03-08", "2", "1", "0", "0", "3"],
                &["2026-03-09", "1", "0", "0", "0", "1"],
                &["2026-03-10", "1", "1", "0", "0", "2"],
            ]),
            "{backend:?}"
        );
        // MTTA/MTTR per day (minutes), unacknowledged/unresolved left out:
        //  Mar 6: ack [2], res [30]
        //  Mar 7: ack [1, 5] → median rank 1 = 1, p90 rank ⌈1.8⌉ = 2 → 5; res [3, 60] → 3, 60
        //  Mar 8: ack [6, 15] (#6 never) → 6, 15; res [90, 300] → 90, 300
        //  Mar 9: ack [10], res [45]
        //  Mar 10: ack [20, 30] → 20, 30; res [180] (#5 open)
        let got = csv(&f, &format!("/insights/response-times.csv?{RANGE}")).await;
        assert_eq!(
            got,
            rows(&[
                &[
                    "bucket_start",
                    "incidents",
                    "acknowledged",
                    "mtta_median_minutes",
                    "mtta_p90_minutes",
                    "resolved",
                    "mttr_median_minutes",
                    "mttr_p90_minutes"
                ],
                &["2026-03-06", "1", "1", "2.0", "2.0", "1", "30.0", "30.0"],
                &["2026-03-07", "2", "2", "1.0", "5.0", "2", "3.0", "60.0"],
                &["2026-03-08", "3", "2", "6.0", "15.0", "2", "90.0", "300.0"],
                &["2026-03-09", "1", "1", "10.0", "10.0", "1", "45.0", "45.0"],
                &[
                    "2026-03-10",
                    "2",
                    "2",
                    "20.0",
                    "30.0",
                    "1",
                    "180.0",
                    "180.0"
                ],
            ]),
            "{backend:?}"
        );
        // Totals on the page: MTTA [1,2,5,6,10,15,20,30] → median rank 4 = 6 min, p90 rank
        // ⌈7.2⌉ = 8 → 30 min; MTTR [3,30,45,60,90,180,300] → rank 4 = 60 min, rank ⌈6.3⌉ = 7
        // → 300 min.
        let r = f
            .viewer
            .get(f.app.url(&format!("/insights?{RANGE}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let page = r.text().await.unwrap();
        for needle in [
            "6 Mar – 10 Mar 2026",
            "<dd>9</dd>",
            "median 6.0 min",
            "p90 30 min",
            "median 1 h 00 min",
            "p90 5 h 00 min",
            "8 acknowledged",
            "7 resolved",
            r#"role="img""#,
            "<title id=",
            "How these are computed",
            &format!("/insights/severity.csv?{}", RANGE.replace('&', "&#38;")),
        ] {
            assert!(page.contains(needle), "{backend:?}: {needle} missing");
        }
    }
}

#[tokio::test]
async fn services_attainment_breaches_and_filters() {
    for backend in backends() {
        let f = fixture(backend).await;
        let head = {
            let mut h: Vec<String> = [
                "service_id",
                "service",
                "incidents",
                "SEV1",
                "SEV2",
                "SEV3",
                "SEV4",
                "mtta_median_minutes",
                "mtta_p90_minutes",
                "mttr_median_minutes",
                "mttr_p90_minutes",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            for s in ["sev1", "sev2", "sev3", "sev4"] {
                for k in ["ack", "resolve"] {
                    for p in ["met", "missed", "attainment_pct"] {
                        h.push(format!("{s}_{k}_{p}"));
                    }
                }
            }
            h
        };
        let none = ["0", "0", ""];
        let line =
            |id: i64, name: &str, counts: [&str; 5], times: [&str; 4], att: [[&str; 3]; 8]| {
                let mut r = vec![id.to_string(), name.to_owned()];
                r.extend(counts.iter().map(|s| s.to_string()));
                r.extend(times.iter().map(|s| s.to_string()));
                for a in att {
                    r.extend(a.iter().map(|s| s.to_string()));
                }
                r
            };
        // S1 llm-gateway: #1–#5 SEV1, #11 SEV2.
        //  MTTA [2,5,6,10,15,30] → rank 3 = 6, rank ⌈5.4⌉ = 6 → 30
        //  MTTR [30,45,60,90,300] (#5 open) → rank 3 = 60, rank ⌈4.5⌉ = 5 → 300
        //  SEV1 ack ≤ 5: 2 ✓, 5 ✓ (exactly), 6 ✗, 10 ✗, 30 ✗ → 2 met, 3 missed, 40.0%
        //  SEV1 resolve ≤ 60: 30 ✓, 60 ✓ (exactly), 90 ✗, 45 ✓, #5 open weeks past → ✗ → 3/2, 60.0%
        //  SEV2 ack ≤ 15: 15 ✓ → 1/0 100.0; resolve ≤ 240: 300 ✗ → 0/1 0.0
        let s1 = line(
            f.s1,
            "llm-gateway",
            ["6", "5", "1", "0", "0"],
            ["6.0", "30.0", "60.0", "300.0"],
            [
                ["2", "3", "40.0"],
                ["3", "2", "60.0"],
                ["1", "0", "100.0"],
                ["0", "1", "0.0"],
                none,
                none,
                none,
                none,
            ],
        );
        // S2 vector-db: #6 SEV1 (never acknowledged: both targets long past → missed), #7 SEV2
        // (no SEV2 target). MTTA [20], MTTR [180].
        let s2 = line(
            f.s2,
            "vector-db",
            ["2", "1", "1", "0", "0"],
            ["20.0", "20.0", "180.0", "180.0"],
            [
                ["0", "1", "0.0"],
                ["0", "1", "0.0"],
                none,
                none,
                none,
                none,
                none,
                none,
            ],
        );
        // S3 feature-store: #10 SEV4, #11 SEV2; MTTA [1, 15] → 1, 15; MTTR [3, 300] → 3, 300.
        let s3 = line(
            f.s3,
            "feature-store",
            ["2", "0", "1", "0", "1"],
            ["1.0", "15.0", "3.0", "300.0"],
            [none; 8],
        );
        // Slowest first by MTTR median: S2 180, S1 60, S3 3.
        let got = csv(&f, &format!("/insights/services.csv?{RANGE}")).await;
        assert_eq!(
            got,
            vec![head.clone(), s2.clone(), s1.clone(), s3.clone()],
            "{backend:?}"
        );

        // Missed targets, newest incident first (acknowledge before resolve within one).
        let got = csv(&f, &format!("/insights/breaches.csv?{RANGE}")).await;
        let expected = rows(&[
            &[
                "incident",
                "service",
                "severity",
                "target",
                "target_minutes",
                "took_minutes",
                "triggered_at",
            ],
            &[
                "5",
                "llm-gateway",
                "SEV1",
                "acknowledge",
                "5",
                "30.0",
                "2026-03-10T14:00:00Z",
            ],
            &[
                "5",
                "llm-gateway",
                "SEV1",
                "resolve",
                "60",
                "",
                "2026-03-10T14:00:00Z",
            ],
            &[
                "4",
                "llm-gateway",
                "SEV1",
                "acknowledge",
                "5",
                "10.0",
                "2026-03-09T04:30:00Z",
            ],
            &[
                "3",
                "llm-gateway",
                "SEV1",
                "acknowledge",
                "5",
                "6.0",
                "2026-03-09T03:59:00Z",
            ],
            &[
                "3",
                "llm-gateway",
                "SEV1",
                "resolve",
                "60",
                "90.0",
                "2026-03-09T03:59:00Z",
            ],
            &[
                "11",
                "llm-gateway",
                "SEV2",
                "resolve",
                "240",
                "300.0",
                "2026-03-08T15:00:00Z",
            ],
            &[
                "6",
                "vector-db",
                "SEV1",
                "acknowledge",
                "10",
                "",
                "2026-03-08T06:00:00Z",
            ],
            &[
                "6",
                "vector-db",
                "SEV1",
                "resolve",
                "120",
                "",
                "2026-03-08T06:00:00Z",
            ],
        ]);
        assert_eq!(got, expected, "{backend:?}");

        // Team Data (S2, S3): incidents #6, #7, #10, #11; only its services listed.
        let got = csv(&f, &format!("/insights/severity.csv?{RANGE}&team={}", f.t2)).await;
        assert_eq!(
            got[1..],
            rows(&[
                &["2026-03-06", "0", "0", "0", "0", "0"],
                &["2026-03-07", "0", "0", "0", "1", "1"],
                &["2026-03-08", "1", "1", "0", "0", "2"],
                &["2026-03-09", "0", "0", "0", "0", "0"],
                &["2026-03-10", "0", "1", "0", "0", "1"],
            ])[..],
            "{backend:?}"
        );
        let got = csv(&f, &format!("/insights/services.csv?{RANGE}&team={}", f.t2)).await;
        assert_eq!(
            got,
            vec![head.clone(), s2.clone(), s3.clone()],
            "{backend:?}"
        );

        // Service S1: #1–#5, #11.
        let got = csv(
            &f,
            &format!("/insights/severity.csv?{RANGE}&service={}", f.s1),
        )
        .await;
        let totals: Vec<&str> = got[1..].iter().map(|r| r[5].as_str()).collect();
        assert_eq!(totals, ["1", "1", "2", "1", "1"], "{backend:?}");
        let got = csv(
            &f,
            &format!("/insights/services.csv?{RANGE}&service={}", f.s1),
        )
        .await;
        assert_eq!(got, vec![head.clone(), s1.clone()], "{backend:?}");

        // SEV2 only: #11 (Mar 8), #7 (Mar 10).
        let got = csv(&f, &format!("/insights/severity.csv?{RANGE}&severity=SEV2")).await;
        let sev2: Vec<(&str, &str)> = got[1..]
            .iter()
            .map(|r| (r[0].as_str(), r[2].as_str()))
            .collect();
        assert_eq!(
            sev2,
            [
                ("2026-03-06", "0"),
                ("2026-03-07", "0"),
                ("2026-03-08", "1"),
                ("2026-03-09", "0"),
                ("2026-03-10", "1")
            ]
        );
        assert!(got[1..].iter().all(|r| r[1] == "0" && r[4] == "0"));

        // Last 7 days = [Mar 13 02:00Z, Mar 20 02:00Z): #12 (10 min old, not acknowledged:
        // past the 5-minute target → missed; resolve target 60 not yet passed → not counted),
        // #13 (2 min old: within both targets → not counted), #14 on S2.
        let got = csv(&f, "/insights/services.csv?range=7d").await;
        let row = got.iter().find(|r| r[0] == f.s1.to_string()).unwrap();
        assert_eq!(row[2], "2", "{backend:?}");
        assert_eq!(&row[7..11], ["", "", "", ""]);
        assert_eq!(&row[11..17], ["0", "1", "0.0", "0", "0", ""], "{backend:?}");

        // A quarter in the viewer's zone, by Monday-start weeks: 2026 Q1 holds all 14; the
        // first week starts Monday 2025-12-29, the last Monday 2026-03-30 (14 buckets).
        let got = csv(&f, "/insights/severity.csv?range=quarter&quarter=2026-Q1").await;
        assert_eq!(got.len(), 15, "{backend:?}");
        assert_eq!(got[1][0], "2025-12-29");
        assert_eq!(got[14][0], "2026-03-30");
        let sum: u32 = got[1..].iter().map(|r| r[5].parse::<u32>().unwrap()).sum();
        assert_eq!(sum, 14);
    }
}

#[tokio::test]
async fn postmortems_and_action_items() {
    for backend in backends() {
        let f = fixture(backend).await;
        // SEV1/SEV2 resolved in the range: #3 (Mar 9 05:29Z), #4 (05:15Z), #11 (Mar 8 20:00Z),
        // #2 (Mar 7 15:00Z), #1 (Mar 6 14:30Z); #7 resolved after the range, #5 and #6 open.
        let got = csv(&f, &format!("/insights/postmortems.csv?{RANGE}")).await;
        let cols: Vec<(String, String, String)> = got
            .iter()
            .map(|r| (r[0].clone(), r[6].clone(), r[8].clone()))
            .collect();
        let expected: Vec<(String, String, String)> = [
            ("incident", "status", "outcome"),
            ("3", "draft", "overdue"),
            ("4", "none", "overdue"),
            ("11", "in_review", "overdue"),
            ("2", "published", "late"),
            ("1", "published", "on_time"),
        ]
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
        assert_eq!(cols, expected, "{backend:?}");
        assert_eq!(got[5][3], "2026-03-06T14:30:00Z");
        assert_eq!(got[5][4], "2026-03-13T14:30:00Z");
        assert_eq!(got[5][7], "2026-03-13T14:30:00Z");
        // Last 7 days: #14 resolved Mar 14 10:30Z, due Mar 21 → not yet due.
        let got = csv(&f, "/insights/postmortems.csv?range=7d").await;
        assert_eq!(got.len(), 2);
        assert_eq!((got[1][0].as_str(), got[1][8].as_str()), ("14", "pending"));

        // Open action items of postmortems of incidents in the range, by due date.
        let got = csv(&f, &format!("/insights/action-items.csv?{RANGE}")).await;
        let cols: Vec<(&str, &str, &str, &str)> = got[1..]
            .iter()
            .map(|r| (r[1].as_str(), r[2].as_str(), r[5].as_str(), r[8].as_str()))
            .collect();
        assert_eq!(
            cols,
            [
                ("Add a canary", "1", "open", "yes"),
                ("Write the runbook", "1", "in_progress", "no"),
                ("Dashboards, alerts", "3", "open", "no"),
            ],
            "{backend:?}"
        );
        let page = f
            .viewer
            .get(f.app.url(&format!("/insights?{RANGE}")))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains("3 open, 1 overdue"), "{backend:?}");
        // The page's counts agree with the CSV: 5 needed, 1 on time, 1 late, 3 overdue, 0 not
        // yet due.
        assert!(
            page.contains("<tr><td>5</td><td>1</td><td>1</td><td>3</td><td>0</td></tr>"),
            "{backend:?}"
        );
        // The overdue ones are listed with their titles.
        assert!(page.contains("#3</a> Incident 3 (SEV1)"), "{backend:?}");
        assert!(page.contains("#11</a> Incident 11 (SEV2)"), "{backend:?}");
        assert!(page.contains("8 targets missed"), "{backend:?}");
        // Service S2 has no postmortem or action item.
        let got = csv(
            &f,
            &format!("/insights/action-items.csv?{RANGE}&service={}", f.s2),
        )
        .await;
        assert_eq!(got.len(), 1);
    }
}

#[tokio::test]
async fn bad_filters_are_400s_with_the_message_and_access_needs_a_viewer() {
    for backend in backends() {
        let f = fixture(backend).await;
        for (query, message) in [
            ("range=fortnight", "Choose last 7, 30 or 90 days"),
            (
                "range=custom&from=2026-03-10&to=2026-03-01",
                "must not be before the first day",
            ),
            (
                "range=custom&from=March&to=2026-03-01",
                "Give a date as YYYY-MM-DD",
            ),
            (
                "range=custom&to=2026-03-01",
                "Give the first day of the range",
            ),
            (
                "range=custom&from=2020-01-01&to=2026-01-01",
                "at most three years",
            ),
            ("range=quarter&quarter=2026-Q5", "YYYY-Qn"),
            ("team=999", "There is no team 999"),
            ("service=abc", "Choose a service from the list"),
            ("service=12345", "There is no service 12345"),
            ("severity=SEV9", "Choose SEV1, SEV2, SEV3 or SEV4"),
        ] {
            let r = f
                .viewer
                .get(f.app.url(&format!("/insights?{query}")))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{backend:?} {query}");
            let page = r.text().await.unwrap();
            assert!(page.contains(message), "{backend:?} {query}: no {message}");
            assert!(page.contains("field-error"), "{query}");
            let r = f
                .viewer
                .get(f.app.url(&format!("/insights/services.csv?{query}")))
                .send()
                .await
                .unwrap();
            assert_eq!(
                r.status(),
                StatusCode::BAD_REQUEST,
                "{backend:?} csv {query}"
            );
            assert!(r.text().await.unwrap().contains(message));
        }
        // Unknown CSV names are 404s; unknown parameters are ignored.
        let r = f
            .viewer
            .get(f.app.url("/insights/nothing.csv"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let r = f
            .viewer
            .get(f.app.url("/insights?utm=x"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        // An empty range has a friendly state, not broken charts.
        let r = f
            .viewer
            .get(
                f.app
                    .url("/insights?range=custom&from=2025-01-01&to=2025-01-31"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let page = r.text().await.unwrap();
        assert!(page.contains("No incidents in this range"), "{backend:?}");
        assert!(!page.contains("<svg"));

        // Signed out: to the sign-in page, for the page and the CSV.
        let anon = f.app.browser();
        for path in ["/insights", "/insights/severity.csv"] {
            let r = anon.get(f.app.url(path)).send().await.unwrap();
            assert!(r.status().is_redirection(), "{path}: {}", r.status());
            assert!(
                r.headers()["location"]
                    .to_str()
                    .unwrap()
                    .starts_with("/login")
            );
        }
    }
}

#[tokio::test]
async fn the_service_page_shows_its_last_90_days_and_noisiest_alerts() {
    for backend in backends() {
        let f = fixture(backend).await;
        let created = t("2025-10-01T00:00:00Z");
        for (name, kind, hash) in [
            ("Prometheus", "alertmanager", "h1"),
            ("Datadog", "events_v2", "h2"),
        ] {
            exec!(
                f.app,
                "INSERT INTO integrations (service_id, kind, name, key_hash, key_prefix, created_at) VALUES ($1, $2, $3, $4, 'abcd', $5)",
                f.s1,
                kind,
                name,
                hash,
                created
            );
        }
        // The last 90 days run from 2025-12-20T02:00Z. Alerts (integration, key, events, last seen):
        //  Prometheus gpu-oom 5 (Mar 19), Prometheus gpu-oom 3 (Mar 1, resolved),
        //  Datadog latency 2 (Mar 18), Datadog old 100 (Nov 1: too old, left out)
        // → 3 alerts, 10 events; Prometheus 2 alerts / 8 events, Datadog 1 / 2;
        //   gpu-oom 2 / 8, latency 1 / 2.
        for (hash, key, status, count, seen) in [
            ("h1", "gpu-oom", "triggered", 5_i64, "2026-03-19T00:00:00Z"),
            ("h1", "gpu-oom", "resolved", 3, "2026-03-01T00:00:00Z"),
            ("h2", "latency", "triggered", 2, "2026-03-18T00:00:00Z"),
            ("h2", "old", "resolved", 100, "2025-11-01T00:00:00Z"),
        ] {
            let seen = t(seen);
            let integration: i64 = match f.app.store.db() {
                Db::Sqlite { read, .. } => {
                    sqlx::query_scalar("SELECT id FROM integrations WHERE key_hash = $1")
                        .bind(hash)
                        .fetch_one(read)
                        .await
                        .unwrap()
                }
                Db::Postgres(pool, _) => {
                    sqlx::query_scalar("SELECT id FROM integrations WHERE key_hash = $1")
                        .bind(hash)
                        .fetch_one(pool)
                        .await
                        .unwrap()
                }
            };
            exec!(
                f.app,
                "INSERT INTO alerts (integration_id, service_id, dedup_key, status, summary, severity, count, payload, first_seen_at, last_seen_at) VALUES ($1, $2, $3, $4, 'x', 'critical', $5, '{}', $6, $6)",
                integration,
                f.s1,
                key,
                status,
                count,
                seen
            );
        }
        let r = f
            .viewer
            .get(f.app.url(&format!("/services/{}", f.s1)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{backend:?}");
        let page = r.text().await.unwrap();
        let section = &page[page.find("Last 90 days").expect("section")..];
        // S1's incidents since Dec 20: #1–#5, #11, #12, #13 → 8 (SEV1 7, SEV2 1).
        //  MTTA [2,5,6,10,15,30] → median 6 min, p90 30 min; MTTR [30,45,60,90,300] → 60, 300.
        //  SEV1 acknowledge ≤ 5: #1 ✓ #2 ✓ #3 ✗ #4 ✗ #5 ✗ #12 ✗ (10 min, open), #13 not
        //  counted (2 min) → 2 of 6; resolve ≤ 60: #1 ✓ #2 ✓ #3 ✗ #4 ✓ #5 ✗, #12/#13 not
        //  counted → 3 of 5. SEV2: acknowledge 1 of 1, resolve 0 of 1.
        for needle in [
            "<dd>8</dd>",
            "SEV1 7 · SEV2 1 · SEV3 0 · SEV4 0",
            "median 6.0 min",
            "p90 30 min",
            "median 1 h 00 min",
            "p90 5 h 00 min",
            "<th scope=\"row\">SEV1</th><td>2 of 6 (33.3%)</td><td>3 of 5 (60.0%)</td>",
            "<th scope=\"row\">SEV2</th><td>1 of 1 (100.0%)</td><td>0 of 1 (0.0%)</td>",
            "3 alerts from 10 events",
            "<th scope=\"row\">Prometheus</th><td>2</td><td>8</td>",
            "<th scope=\"row\">Datadog</th><td>1</td><td>2</td>",
            "<th scope=\"row\" class=\"mono\">gpu-oom</th><td>2</td><td>8</td>",
            "<th scope=\"row\" class=\"mono\">latency</th><td>1</td><td>2</td>",
            &format!("/insights?range=90d&amp;service={}", f.s1),
        ] {
            assert!(section.contains(needle), "{backend:?}: {needle} missing");
        }
        assert!(!section.contains(">old<"));
    }
}
