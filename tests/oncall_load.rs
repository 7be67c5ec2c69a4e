//! On-call load (issue 9, item 3) end to end, on both databases: pages sent through the real
//! delivery path (`apply_step` records them, `finish_delivery` marks them sent, and the store's
//! classifier classifies them a moment later), a daily rotation across the 2026 spring DST
//! change with an override, incidents with commanders; then `/insights/oncall/people.csv` and
//! `/insights/oncall/fairness.csv`, fetched over HTTP as a viewer, compared cell by cell with
//! answers worked out by hand below. Classifying again from nothing, or beside pages already
//! classified (`classify_pending_interruptions`), must give the same classes.
//!
//! The cast (the viewer who reads the page is in UTC, so ranges are cut at UTC midnight):
//! - Kiran, Asia/Kathmandu (+05:45, no DST), team Platform
//! - Lena, Europe/London (GMT until 2026-03-29 01:00 UTC, then BST), team Platform
//! - Uma, UTC, team Platform
//! - Nate, America/New_York (EDT until 2026-11-01 06:00 UTC, then EST), team Edge
//!
//! Schedules:
//! - "Platform primary" (team Platform): daily rotation [Lena, Kiran], handoff 09:00
//!   Europe/London from Friday 2026-03-27 (shift 0 = Lena). Handoffs are 09:00 UTC while on GMT
//!   and 08:00 UTC on BST, so the shift from Saturday 03-28 09:00 UTC to Sunday 03-29 08:00 UTC
//!   (Kiran) lasts 23 hours, and the one from Saturday 10-24 08:00 UTC to Sunday 10-25 09:00 UTC
//!   (index 211, Kiran) 25 hours. Before the first handoff nobody is on call. Override: Uma
//!   covers Sunday 03-29 12:00–14:00 UTC (inside Lena's shift 2, Sunday 08:00 → Monday
//!   08:00 UTC).
//! - "Edge primary" (team Edge): weekly rotation [Nate] from Monday 2026-10-26 09:00 EDT
//!   (13:00 UTC): from then on Nate is always on call.

mod common;

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use common::TestApp;
use heliograph_domain::{
    DisplayName, FixedClock, Role, ServiceKind, Severity, TeamName, TimeZone, UserEmail,
    WorkloadClass,
};
use heliograph_scheduler::{Layer, Rotation, ShiftLength, ShiftUnit};
use heliograph_store::incidents::NewIncident;
use heliograph_store::jobs::NewJob;
use heliograph_store::paging::{Delivery, NewNotification, Step};
use heliograph_store::schedules::ScheduleFields;
use heliograph_store::services::{ResponseTargets, ServiceFields};
use heliograph_store::testdb::TestDatabase;
use heliograph_store::users::NewUser;
use heliograph_store::{Audit, Backend, Db, Store};
use reqwest::StatusCode;

const PASSWORD: &str = "correct horse battery";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

async fn person(store: &Store, name: &str, zone: &str, role: Role) -> i64 {
    let hash =
        heliograph_web::auth::hash_password(heliograph_domain::Password::parse(PASSWORD).unwrap())
            .await
            .unwrap();
    store
        .create_user(
            &NewUser {
                email: UserEmail::parse(&format!("{}@example.com", name.to_lowercase())).unwrap(),
                name: DisplayName::parse(name).unwrap(),
                time_zone: TimeZone::parse(zone).unwrap(),
                role,
                password_hash: Some(hash),
            },
            &Audit::cli(),
        )
        .await
        .unwrap()
        .id
}

async fn schedule(
    store: &Store,
    name: &str,
    team: i64,
    participants: Vec<i64>,
    unit: ShiftUnit,
    handoff: &str,
    zone: chrono_tz::Tz,
) -> i64 {
    store
        .create_schedule(
            &ScheduleFields {
                name: name.into(),
                time_zone: TimeZone::from(zone),
                team_id: team,
                layers: vec![Layer {
                    name: "Rotation".into(),
                    rotation: Rotation {
                        participants,
                        shift: ShiftLength { unit, count: 1 },
                        handoff: handoff.parse().unwrap(),
                        handoff_time_zone: zone,
                    },
                    restrictions: vec![],
                }],
            },
            &Audit::cli(),
        )
        .await
        .unwrap()
        .id
}

async fn service(store: &Store, name: &str, team: i64) -> i64 {
    store
        .create_service(
            &ServiceFields {
                name: name.into(),
                description: String::new(),
                kind: ServiceKind::LlmInference,
                workload_class: WorkloadClass::RealTime,
                team_id: Some(team),
                escalation_policy_id: None,
                response_targets: ResponseTargets::default(),
                grouping_window_minutes: 0,
                auto_resolve: true,
                severity_map: Default::default(),
            },
            &Audit::cli(),
        )
        .await
        .unwrap()
        .id
}

/// Declares an incident at `when` (its trigger time) with a commander; returns its id.
async fn incident(
    store: &Store,
    clock: &FixedClock,
    when: &str,
    severity: Severity,
    service: i64,
    commander: i64,
) -> i64 {
    clock.set(at(when));
    store
        .declare_incident(
            &NewIncident {
                title: format!("Incident at {when}"),
                description: String::new(),
                description_html: String::new(),
                severity,
                service_ids: vec![service],
                commander_id: Some(commander),
            },
            &Audit::cli(),
        )
        .await
        .unwrap()
        .id
}

/// Sends one page to `user` about `incident` at `when` through the engine's own store calls:
/// an escalation step records the notification (and its delivery job), then the delivery is
/// finished as sent, which classifies it. Other due jobs (escalations of the declared
/// incidents) are finished unrun. Returns the notification id.
async fn page(store: &Store, clock: &FixedClock, user: i64, incident: i64, when: &str) -> i64 {
    let t = at(when);
    clock.set(t);
    let worker = "test-worker";
    store
        .enqueue_job(&NewJob {
            kind: "test_step",
            payload: serde_json::json!({}),
            run_at: t,
            dedup_key: None,
        })
        .await
        .unwrap();
    let mut recorded = false;
    for job in store
        .claim_jobs(worker, TimeDelta::minutes(5), 100)
        .await
        .unwrap()
    {
        if job.kind == "test_step" && !recorded {
            let step = Step {
                incident_id: incident,
                notifications: vec![NewNotification {
                    idempotency_key: format!("test:{user}:{when}"),
                    incident_id: Some(incident),
                    user_id: Some(user),
                    contact_method_id: None,
                    purpose: "page",
                    channel: "email".into(),
                    address: format!("user{user}@example.com"),
                    subject: "Page".into(),
                    level: Some(1),
                    repeat_no: Some(0),
                    due_at: t,
                }],
                ..Step::default()
            };
            assert!(store.apply_step(job.id, worker, &step).await.unwrap());
            recorded = true;
        } else {
            store.finish_job(job.id, worker).await.unwrap();
        }
    }
    assert!(recorded);
    let mut sent = None;
    for job in store
        .claim_jobs(worker, TimeDelta::minutes(5), 100)
        .await
        .unwrap()
    {
        if job.kind == "deliver" {
            let payload: serde_json::Value = serde_json::from_str(&job.payload).unwrap();
            let id = payload["notification_id"].as_i64().unwrap();
            let n = store.notification(id).await.unwrap();
            assert!(
                store
                    .finish_delivery(job.id, worker, &n, &Delivery::Sent, None)
                    .await
                    .unwrap()
            );
            sent = Some(id);
        } else {
            store.finish_job(job.id, worker).await.unwrap();
        }
    }
    sent.expect("the page was delivered")
}

/// (id, interruption) of every notification, by id.
async fn classes(store: &Store) -> Vec<(i64, Option<String>)> {
    let sql = "SELECT id, interruption FROM notifications ORDER BY id";
    match store.db() {
        Db::Sqlite { read, .. } => sqlx::query_as(sql).fetch_all(read).await.unwrap(),
        Db::Postgres(pool, _) => sqlx::query_as(sql).fetch_all(pool).await.unwrap(),
    }
}

/// Forgets the class of the notifications with ids in `ids` (all when empty).
async fn forget_classes(store: &Store, ids: &[i64]) {
    let sql = "UPDATE notifications SET interruption = NULL WHERE $1 = 0 OR id = $2";
    let all = i64::from(ids.is_empty());
    for id in if ids.is_empty() { &[0][..] } else { ids } {
        match store.db() {
            Db::Sqlite { write, .. } => {
                sqlx::query(sql)
                    .bind(1 - all)
                    .bind(id)
                    .execute(write)
                    .await
                    .unwrap();
            }
            Db::Postgres(pool, _) => {
                sqlx::query(sql)
                    .bind(1 - all)
                    .bind(id)
                    .execute(pool)
                    .await
                    .unwrap();
            }
        }
    }
}

/// A CSV body as rows of cells (no quoted fields are expected in this test's data).
fn cells(body: &str) -> Vec<Vec<String>> {
    body.lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect()
}

async fn csv(app: &TestApp, client: &reqwest::Client, path: &str) -> Vec<Vec<String>> {
    let res = client.get(app.url(path)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{path}");
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "text/csv; charset=utf-8"
    );
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=")
    );
    cells(&res.text().await.unwrap())
}

fn rows(expected: &[&str]) -> Vec<Vec<String>> {
    expected
        .iter()
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect()
}

const PEOPLE_HEAD: &str = "user_id,name,time_zone,hours_on_call,working_pages,evening_weekend_pages,sleep_pages,total_pages,incidents_commanded";
const FAIR_HEAD: &str = "schedule_id,schedule,user_id,name,hours_on_call,hours_share_pct,working_pages,evening_weekend_pages,sleep_pages,sleep_share_pct,overloaded";

async fn scenario(backend: Backend) {
    let db = Arc::new(TestDatabase::fresh(backend).await);
    let clock = FixedClock::new(at("2026-02-01T00:00:00Z"));
    let app = TestApp::spawn_configured(backend, db, Arc::new(clock.clone()), |c| {
        c.run_engine = false
    })
    .await;
    let store = &app.store;

    let _vera = person(store, "Vera", "UTC", Role::Viewer).await;
    let kiran = person(store, "Kiran", "Asia/Kathmandu", Role::Responder).await;
    let lena = person(store, "Lena", "Europe/London", Role::Responder).await;
    let uma = person(store, "Uma", "UTC", Role::Responder).await;
    let nate = person(store, "Nate", "America/New_York", Role::Responder).await;
    let platform = store
        .create_team(
            &TeamName::parse("Platform").unwrap(),
            &[kiran, lena, uma],
            &Audit::cli(),
        )
        .await
        .unwrap()
        .team
        .id;
    let edge = store
        .create_team(&TeamName::parse("Edge").unwrap(), &[nate], &Audit::cli())
        .await
        .unwrap()
        .team
        .id;
    let primary = schedule(
        store,
        "Platform primary",
        platform,
        vec![lena, kiran],
        ShiftUnit::Days,
        "2026-03-27T09:00:00",
        chrono_tz::Europe::London,
    )
    .await;
    let edge_primary = schedule(
        store,
        "Edge primary",
        edge,
        vec![nate],
        ShiftUnit::Weeks,
        "2026-10-26T09:00:00",
        chrono_tz::America::New_York,
    )
    .await;
    store
        .create_override(
            primary,
            uma,
            at("2026-03-29T12:00:00Z"),
            at("2026-03-29T14:00:00Z"),
            &[],
            &Audit::cli(),
        )
        .await
        .unwrap();
    let gateway = service(store, "llm-gateway", platform).await;
    let vector = service(store, "vector-db", edge).await;

    // Incidents and commanders. D is before every range asked for below.
    let inc_d = "2026-02-15T10:00:00Z";
    incident(store, &clock, inc_d, Severity::Sev3, gateway, lena).await;
    let c = incident(
        store,
        &clock,
        "2026-03-27T07:00:00Z",
        Severity::Sev3,
        gateway,
        kiran,
    )
    .await;
    let a = incident(
        store,
        &clock,
        "2026-03-28T11:59:00Z",
        Severity::Sev1,
        gateway,
        lena,
    )
    .await;
    let b = incident(
        store,
        &clock,
        "2026-10-30T12:00:00Z",
        Severity::Sev2,
        vector,
        nate,
    )
    .await;

    // The pages, in time order, each with its class worked out by hand.
    // Lena, Friday 03-27 07:30 UTC = 07:30 GMT: sleep. (Before the first handoff: nobody is
    // on call.)
    let l1 = page(store, &clock, lena, c, "2026-03-27T07:30:00Z").await;
    // Uma, Saturday 03-28 12:00:00 UTC: weekend daytime → evening/weekend.
    let u1 = page(store, &clock, uma, c, "2026-03-28T12:00:00Z").await;
    // 30 s later: within 60 s of a counted page → repeat.
    let u2 = page(store, &clock, uma, c, "2026-03-28T12:00:30Z").await;
    // 70 s after the first: counts again (evening/weekend).
    let u3 = page(store, &clock, uma, c, "2026-03-28T12:01:10Z").await;
    // Kiran, Saturday 03-28 20:00 UTC = Sunday 01:45 Kathmandu: sleep; on call (shift 1).
    let k3 = page(store, &clock, kiran, a, "2026-03-28T20:00:00Z").await;
    // Lena, Sunday 03-29 13:00 UTC = 14:00 BST Sunday: evening/weekend; Uma's override
    // covers 12:00–14:00 UTC, so Lena is not on call for it.
    let l4 = page(store, &clock, lena, a, "2026-03-29T13:00:00Z").await;
    // Uma, Sunday 13:30 UTC: evening/weekend; on call (her override).
    let u4 = page(store, &clock, uma, a, "2026-03-29T13:30:00Z").await;
    // Kiran, Monday 03-30 02:10 UTC = 07:55 Kathmandu: sleep; Lena's shift 2, not Kiran's.
    let k1 = page(store, &clock, kiran, c, "2026-03-30T02:10:00Z").await;
    // Kiran, Monday 02:20 UTC = 08:05 Kathmandu: working (10 minutes later, counts).
    let k2 = page(store, &clock, kiran, c, "2026-03-30T02:20:00Z").await;
    // Lena, Monday 03-30 07:30 UTC = 08:30 BST: working; on call (shift 2 ends 08:00 UTC).
    // (The same instant a week earlier, 07:30 GMT, was sleep: see l1.)
    let l2 = page(store, &clock, lena, a, "2026-03-30T07:30:00Z").await;
    // Lena, Monday 03-30 21:30 UTC = 22:30 BST: sleep; Kiran's shift 3 (Monday 08:00 →
    // Tuesday 08:00 UTC), not Lena's.
    let l3 = page(store, &clock, lena, a, "2026-03-30T21:30:00Z").await;
    // Kiran, Wednesday 04-01 20:00 UTC = Thursday 01:45 Kathmandu: sleep; on call (shift 5,
    // Wednesday 08:00 → Thursday 08:00 UTC).
    let k5 = page(store, &clock, kiran, a, "2026-04-01T20:00:00Z").await;
    // Nate, Friday 10-30 12:30 UTC = 08:30 EDT: working.
    let n5 = page(store, &clock, nate, b, "2026-10-30T12:30:00Z").await;
    // Nate, Sunday 11-01 05:30 UTC = 01:30 EDT, and 06:30 UTC = 01:30 EST (clocks went back
    // at 06:00 UTC): both sleep, an hour apart so both count.
    let n1 = page(store, &clock, nate, b, "2026-11-01T05:30:00Z").await;
    let n2 = page(store, &clock, nate, b, "2026-11-01T06:30:00Z").await;
    // Nate, Monday 11-02 12:30 UTC = 07:30 EST: sleep; 13:30 UTC = 08:30 EST: working.
    let n3 = page(store, &clock, nate, b, "2026-11-02T12:30:00Z").await;
    let n4 = page(store, &clock, nate, b, "2026-11-02T13:30:00Z").await;

    let expected_classes = [
        (l1, "sleep"),
        (u1, "evening"),
        (u2, "repeat"),
        (u3, "evening"),
        (k3, "sleep"),
        (l4, "evening"),
        (u4, "evening"),
        (k1, "sleep"),
        (k2, "working"),
        (l2, "working"),
        (l3, "sleep"),
        (k5, "sleep"),
        (n5, "working"),
        (n1, "sleep"),
        (n2, "sleep"),
        (n3, "sleep"),
        (n4, "working"),
    ];
    // The store's classifier classifies pages a moment after they are sent.
    let mut waited = 0;
    while classes(store)
        .await
        .iter()
        .any(|(id, class)| class.is_none() && expected_classes.iter().any(|(e, _)| e == id))
    {
        assert!(waited < 100, "sent pages were not classified within 5 s");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        waited += 1;
    }
    let sent = classes(store).await;
    for (id, class) in expected_classes {
        let got = sent.iter().find(|(i, _)| *i == id).unwrap();
        assert_eq!(got.1.as_deref(), Some(class), "page {id}");
    }
    // The catch-up pass, from nothing classified, gives the same classes.
    forget_classes(store, &[]).await;
    assert_eq!(store.classify_pending_interruptions().await.unwrap(), 17);
    assert_eq!(classes(store).await, sent);
    assert_eq!(store.classify_pending_interruptions().await.unwrap(), 0);
    // Beside pages already classified: u2 alone forgotten is a repeat again (u1 counted 30 s
    // before), and u1 and l3 forgotten come back as they were.
    forget_classes(store, &[u2]).await;
    assert_eq!(store.classify_pending_interruptions().await.unwrap(), 1);
    assert_eq!(classes(store).await, sent);
    forget_classes(store, &[u1, l3]).await;
    assert_eq!(store.classify_pending_interruptions().await.unwrap(), 2);
    assert_eq!(classes(store).await, sent);
    // Pages left unclassified (sent before the feature existed) are classified when the
    // engine starts: restart the server with its engine on.
    forget_classes(store, &[]).await;
    let db = app.stop().await;
    let app = TestApp::spawn_on(backend, db, Arc::new(clock.clone())).await;
    let store = &app.store;
    let mut waited = 0;
    while classes(store).await != sent {
        assert!(
            waited < 100,
            "the engine did not classify earlier pages at start"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    }

    // Read as a viewer (in UTC), later on.
    let client = app.browser();
    app.sign_in(&client, "vera@example.com", PASSWORD).await;
    let page_res = client
        .get(app.url("/insights/oncall?range=custom&from=2026-03-27&to=2026-11-30"))
        .send()
        .await
        .unwrap();
    assert_eq!(page_res.status(), StatusCode::OK);
    let html = page_res.text().await.unwrap();
    assert!(html.contains("role=\"img\""), "chart drawn");
    assert!(html.contains("How these are computed"));
    assert!(html.contains("Platform primary") && html.contains("someone is overloaded"));

    // Wide range [2026-03-27 00:00, 2026-12-01 00:00) UTC = 249 days = 5,976 hours.
    //
    // Hours on call. Nate: from 10-26 13:00 UTC to 12-01 00:00 UTC = 36 days − 13 h = 851.
    // Platform primary: shifts start each day from 03-27 09:00 UTC (index 0) to 11-30
    // (index 248); before 03-27 09:00 nobody is on call (a 9-hour gap).
    // - Kiran: odd shifts 1..247 = 124 shifts of 24 h, one of them 23 h (index 1, spring)
    //   and one 25 h (index 211, autumn) → 2976.
    // - Lena: even shifts 0..246 = 124 × 24 = 2976 h; shift 248 from 11-30 09:00 UTC to the
    //   end of the range = 15 h; minus Uma's 2 h override → 2989.
    // - Uma: 2 h. (Check: 9 + 2976 + 2989 + 2 = 5976, the whole range.)
    // Pages (counted; u2 is a repeat): Nate W2 (n4, n5) S3 (n1, n2, n3); Kiran W1 (k2)
    // S3 (k1, k3, k5); Lena W1 (l2) E1 (l4) S2 (l1, l3); Uma E3 (u1, u3, u4).
    // Commanded in range: Nate b, Kiran c, Lena a (d is before the range).
    // Sorted by sleep pages, then total: Nate (3, 5), Kiran (3, 4), Lena (2, 4), Uma (0, 3).
    let wide = "range=custom&from=2026-03-27&to=2026-11-30";
    let people = csv(
        &app,
        &client,
        &format!("/insights/oncall/people.csv?{wide}"),
    )
    .await;
    assert_eq!(
        people,
        rows(&[
            PEOPLE_HEAD,
            &format!("{nate},Nate,America/New_York,851.00,2,0,3,5,1"),
            &format!("{kiran},Kiran,Asia/Kathmandu,2976.00,1,0,3,4,1"),
            &format!("{lena},Lena,Europe/London,2989.00,1,1,2,4,1"),
            &format!("{uma},Uma,UTC,2.00,0,3,0,3,0"),
        ])
    );

    // Fairness, wide range. Schedules by name: Edge primary, then Platform primary.
    // Edge primary: Nate alone, 851 h (100.0%), every one of his pages while on call
    // (W2 S3), all its sleep pages (100.0%); he is the whole mean, so not overloaded.
    // Platform primary, pages while on call for it:
    // - Lena: l2 (shift 2, working); l1 fell before the first handoff, l3 in Kiran's shift 3,
    //   l4 in Uma's override → W1.
    // - Kiran: k3 (shift 1, sleep), k5 (shift 5, sleep); k1/k2 fell in Lena's shift 2 → S2.
    // - Uma: u4 (her override, evening) → E1; u1–u3 were not on call.
    // Shares of the 5967 h covered: Lena 2989 → 50.09 → 50.1%, Kiran 2976 → 49.87 → 49.9%,
    // Uma 2 → 0.03 → 0.0%. Sleep pages on
    // call: 2 in all, both Kiran's → Kiran 100.0%, Lena and Uma 0.0%.
    // Overload, against the rotation's members (Lena, Kiran; Uma only covered an override):
    // hours mean 2982.5, 1.5 × = 4473.75 → nobody; sleep mean 1, 1.5 × = 1.5 → Kiran's 2.
    // Sorted by hours: Lena, Kiran, Uma.
    let fair = csv(
        &app,
        &client,
        &format!("/insights/oncall/fairness.csv?{wide}"),
    )
    .await;
    assert_eq!(
        fair,
        rows(&[
            FAIR_HEAD,
            &format!("{edge_primary},Edge primary,{nate},Nate,851.00,100.0,2,0,3,100.0,"),
            &format!("{primary},Platform primary,{lena},Lena,2989.00,50.1,1,0,0,0.0,"),
            &format!(
                "{primary},Platform primary,{kiran},Kiran,2976.00,49.9,0,0,2,100.0,sleep pages"
            ),
            &format!("{primary},Platform primary,{uma},Uma,2.00,0.0,0,1,0,0.0,"),
        ])
    );

    // Narrow range, team Platform: [03-28 00:00, 03-30 00:00) UTC = 48 h.
    // Hours: Kiran shift 1 (Sat 09:00 UTC → Sun 08:00 UTC, the 23-hour DST shift) = 23;
    // Lena shift 0 tail (Sat 00:00–09:00) 9 + shift 2 to the range end (Sun 08:00 → Mon
    // 00:00) 16 − Uma's 2 = 23; Uma 2. Nate is not in Platform: not listed.
    // Pages: Kiran k3 (S); Uma u1, u3, u4 (E3); Lena l4 (E).
    // Commanded: Lena a (03-28); c (03-27, Kiran) is before the range.
    // Sorted: Kiran (S1), then Uma (S0, T3), Lena (S0, T1).
    let narrow = format!("range=custom&from=2026-03-28&to=2026-03-29&team={platform}");
    let people = csv(
        &app,
        &client,
        &format!("/insights/oncall/people.csv?{narrow}"),
    )
    .await;
    assert_eq!(
        people,
        rows(&[
            PEOPLE_HEAD,
            &format!("{kiran},Kiran,Asia/Kathmandu,23.00,0,0,1,1,0"),
            &format!("{uma},Uma,UTC,2.00,0,3,0,3,0"),
            &format!("{lena},Lena,Europe/London,23.00,0,1,0,1,1"),
        ])
    );
    // Fairness, narrow: only Platform primary. By hours, then name: Kiran 23 (47.9%), Lena 23
    // (47.9%), Uma 2 (4.2%). On call: Kiran k3 (S), Uma u4 (E); Lena's l4 was Uma's time.
    // Sleep shares 100.0, 0.0, 0.0. Members' means: 23 h (nobody above 34.5) and 0.5 sleep
    // pages (Kiran's 1 is above 0.75: overloaded).
    let fair = csv(
        &app,
        &client,
        &format!("/insights/oncall/fairness.csv?{narrow}"),
    )
    .await;
    assert_eq!(
        fair,
        rows(&[
            FAIR_HEAD,
            &format!("{primary},Platform primary,{kiran},Kiran,23.00,47.9,0,0,1,100.0,sleep pages"),
            &format!("{primary},Platform primary,{lena},Lena,23.00,47.9,0,0,0,0.0,"),
            &format!("{primary},Platform primary,{uma},Uma,2.00,4.2,0,1,0,0.0,"),
        ])
    );

    // Severity SEV1 (incident a only), wide range: pages k3, k5 (Kiran S2), l2, l3, l4 (Lena
    // W1 E1 S1), u4 (Uma E1); commanded: Lena (a). Hours are not narrowed by severity, so
    // Nate stays with his hours and no pages.
    let people = csv(
        &app,
        &client,
        &format!("/insights/oncall/people.csv?{wide}&severity=SEV1"),
    )
    .await;
    assert_eq!(
        people,
        rows(&[
            PEOPLE_HEAD,
            &format!("{kiran},Kiran,Asia/Kathmandu,2976.00,0,0,2,2,0"),
            &format!("{lena},Lena,Europe/London,2989.00,1,1,1,3,1"),
            &format!("{uma},Uma,UTC,2.00,0,1,0,1,0"),
            &format!("{nate},Nate,America/New_York,851.00,0,0,0,0,0"),
        ])
    );
    // Service vector-db (incident b only): Nate's five pages and his command.
    let people = csv(
        &app,
        &client,
        &format!("/insights/oncall/people.csv?{wide}&service={vector}&team={edge}"),
    )
    .await;
    assert_eq!(
        people,
        rows(&[
            PEOPLE_HEAD,
            &format!("{nate},Nate,America/New_York,851.00,2,0,3,5,1"),
        ])
    );

    // Bad input: a clear 400, never a 500.
    for bad in [
        "/insights/oncall?range=forever",
        "/insights/oncall?range=custom&from=2026-13-01&to=2026-12-01",
        "/insights/oncall?team=abc",
        "/insights/oncall?team=999999",
        "/insights/oncall?severity=SEV9",
        "/insights/oncall/people.csv?range=custom&from=2026-03-02&to=2026-03-01",
        "/insights/oncall/fairness.csv?service=-1",
        "/insights/oncall/people.csv?range=custom&from=%FF",
    ] {
        let res = client.get(app.url(bad)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    // Signed out: no figures.
    let res = app
        .browser()
        .get(app.url("/insights/oncall/people.csv"))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_redirection() || res.status() == StatusCode::UNAUTHORIZED);

    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oncall_load_by_hand_on_both_databases() {
    for backend in common::backends() {
        scenario(backend).await;
    }
}
