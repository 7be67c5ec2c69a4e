//! Load script for the insights pages (issue 9 criterion): the demo organisation with 100,000
//! incidents over twelve months and 1,000,000 page notifications, then GET /insights (default
//! range, 90 days, 12 months) and GET /insights/oncall (default range, 12 months) timed over
//! HTTP on loopback against the real server.
//!
//!     cargo run --release --example insights_bench -- sqlite
//!     cargo run --release --example insights_bench -- postgres   # needs HELIOGRAPH_TEST_POSTGRES_URL or the default
//!
//! `INCIDENTS` and `NOTIFICATIONS` override the volumes; `SAMPLES` the requests per page.
//! Prints the median and 90th percentile of the full request time after three warm-up requests.

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use heliograph_domain::SystemClock;
use heliograph_store::demo::DemoNotification;
use heliograph_store::testdb::TestDatabase;
use heliograph_store::{Audit, Backend, Db, Store};
use heliograph_web::demo::{self, DemoOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
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
    let incidents = env_or("INCIDENTS", 100_000);
    let target_notifications = env_or("NOTIFICATIONS", 1_000_000);
    let samples = env_or("SAMPLES", 30).max(2);

    let db = TestDatabase::fresh(backend).await;
    let conn = Db::connect(&db.url).await.unwrap();
    conn.migrate().await.unwrap();
    let store = Store::with_clock(conn, Arc::new(SystemClock));
    let audit = Audit::cli();

    let started = Instant::now();
    let summary = demo::load(
        &store,
        &DemoOptions {
            incidents,
            admin_password: Some("benchmark password".into()),
            timelines: false,
            max_events_per_alert: 3,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    println!(
        "{backend:?}: demo organisation with {} incidents, {} alerts, {} pages, {} postmortems in {:.1?}",
        summary.incidents,
        summary.alerts,
        summary.notifications,
        summary.postmortems,
        started.elapsed()
    );

    // Top up to the target with more pages: people on the rotations, incidents of the last
    // twelve months, sent at any hour, some within a minute of each other (repeats).
    let started = Instant::now();
    let extra = target_notifications.saturating_sub(summary.notifications as usize);
    let users: Vec<(i64, String)> = store
        .all_users()
        .await
        .unwrap()
        .into_iter()
        .filter(|u| u.role == heliograph_domain::Role::Responder)
        .map(|u| (u.id, u.email.to_string()))
        .collect();
    let incident_ids: Vec<i64> = store
        .incident_ids_by_number()
        .await
        .unwrap()
        .into_values()
        .collect();
    let now = Utc::now();
    let mut rng = StdRng::seed_from_u64(7);
    let span = TimeDelta::days(365).num_seconds();
    let mut batch = Vec::with_capacity(100_000);
    let mut loaded = 0usize;
    while loaded < extra {
        batch.clear();
        for k in 0..(extra - loaded).min(100_000) {
            let (user, email) = &users[rng.random_range(0..users.len())];
            let sent = now - TimeDelta::seconds(rng.random_range(60..span));
            batch.push(DemoNotification {
                idempotency_key: format!("bench:page:{}", loaded + k),
                incident_id: Some(incident_ids[rng.random_range(0..incident_ids.len())]),
                user_id: Some(*user),
                contact_method_id: None,
                purpose: "page",
                channel: "email",
                address: email.clone(),
                subject: "[SEV3] #1 bench page".into(),
                level: Some(0),
                repeat_no: Some(0),
                state: "sent",
                attempts: 1,
                created_at: sent - TimeDelta::seconds(5),
                due_at: sent - TimeDelta::seconds(5),
                sent_at: Some(sent),
            });
        }
        loaded += batch.len();
        store.load_notifications(&batch, &audit).await.unwrap();
    }
    let classified = store.classify_pending_interruptions().await.unwrap();
    println!(
        "{backend:?}: {extra} more pages ({} in all), {classified} classified, in {:.1?}",
        summary.notifications as usize + extra,
        started.elapsed()
    );

    // What autovacuum does soon after a bulk load in production: on PostgreSQL, set the
    // visibility map so that the insights' index-only scans need not visit the heap.
    if backend == Backend::Postgres {
        let started = Instant::now();
        if let Db::Postgres(pool, _) = store.db() {
            sqlx::query("VACUUM ANALYZE").execute(pool).await.unwrap();
        }
        println!("{backend:?}: VACUUM ANALYZE in {:.1?}", started.elapsed());
    }
    if std::env::var_os("KEEP").is_some() {
        println!("{backend:?}: keeping the database at {}", db.url);
        std::mem::forget(db);
    }

    let (base, client) =
        common::serve_signed_in(&store, demo::ADMIN_EMAIL, "benchmark password").await;

    let today = now.date_naive();
    if std::env::var_os("PROBE").is_some() {
        probe(&store, now).await;
    }
    let year = format!(
        "range=custom&from={}&to={}",
        (today - chrono::Days::new(364)).format("%Y-%m-%d"),
        today.format("%Y-%m-%d")
    );
    for (label, path) in [
        ("/insights, default range (30 days)", "/insights".to_owned()),
        ("/insights, 90 days", "/insights?range=90d".to_owned()),
        ("/insights, 12 months", format!("/insights?{year}")),
        (
            "/insights/oncall, default range (30 days)",
            "/insights/oncall".to_owned(),
        ),
        (
            "/insights/oncall, 12 months",
            format!("/insights/oncall?{year}"),
        ),
    ] {
        let url = format!("{base}{path}");
        for _ in 0..3 {
            let response = client.get(&url).send().await.unwrap();
            assert_eq!(response.status(), 200, "{url}");
            let body = response.text().await.unwrap();
            assert!(body.contains("Heliograph"));
        }
        let mut times: Vec<Duration> = Vec::with_capacity(samples);
        let mut bytes = 0;
        for _ in 0..samples {
            let t = Instant::now();
            let response = client.get(&url).send().await.unwrap();
            assert_eq!(response.status(), 200, "{url}");
            bytes = response.bytes().await.unwrap().len();
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "{backend:?}: {label}: median {:.1} ms, p90 {:.1} ms ({} KB, {samples} requests)",
            times[samples / 2].as_secs_f64() * 1000.0,
            times[samples * 9 / 10].as_secs_f64() * 1000.0,
            bytes / 1024
        );
    }
}

/// Times each store call behind the 12-month /insights and /insights/oncall pages, to find
/// where the time goes.
async fn probe(store: &Store, now: chrono::DateTime<Utc>) {
    use heliograph_store::insights::{Bucket, Scope, Window, compute};
    let today = now.date_naive();
    let first_day = today - chrono::Days::new(364);
    let scope = Scope {
        from: first_day.and_hms_opt(0, 0, 0).unwrap().and_utc(),
        to: (today + chrono::Days::new(1))
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc(),
        team_id: None,
        service_id: None,
        severity: None,
    };
    let window = Window {
        zone: chrono_tz::UTC,
        bucket: Bucket::Week,
        first_day,
        last_day: today,
    };
    for _ in 0..5 {
        let t = Instant::now();
        let services = store.services().await.unwrap();
        let t_services = t.elapsed();
        let t = Instant::now();
        let facts = store.insight_incidents(&scope).await.unwrap();
        let t_facts = t.elapsed();
        let t = Instant::now();
        let _report = compute(&facts, &services, &scope, &window, now);
        let t_compute = t.elapsed();
        let t = Instant::now();
        let pms = store.insight_postmortems(&scope, false).await.unwrap();
        let t_pms = t.elapsed();
        let t = Instant::now();
        let items = store.insight_action_items(&scope).await.unwrap();
        let t_items = t.elapsed();
        let t = Instant::now();
        let _load = store.oncall_load(&scope).await.unwrap();
        let t_load = t.elapsed();
        println!(
            "probe (12 months): services {t_services:.1?}; insight_incidents {t_facts:.1?} ({} rows); compute {t_compute:.1?}; \
             insight_postmortems {t_pms:.1?} ({} rows); insight_action_items {t_items:.1?} ({} rows); oncall_load {t_load:.1?}",
            facts.len(),
            pms.len(),
            items.len()
        );
    }
}
