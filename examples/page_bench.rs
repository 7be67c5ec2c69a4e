//! Load script for the incident pages: the list over 100,000 incidents and an incident page
//! with a 2,000-entry timeline, timed over HTTP on loopback against the real server.
//!
//!     cargo run --release --example page_bench -- sqlite
//!     cargo run --release --example page_bench -- postgres   # needs HELIOGRAPH_TEST_POSTGRES_URL or the default
//!
//! Prints the median and 95th percentile of the full request time (server time plus loopback).

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use heliograph_domain::{
    DisplayName, IncidentStatus, Password, Role, ServiceKind, Severity, SystemClock, TimeZone,
    UserEmail, WorkloadClass,
};
use heliograph_store::seed::{SeedEntry, SeedIncident};
use heliograph_store::services::ServiceFields;
use heliograph_store::testdb::TestDatabase;
use heliograph_store::users::NewUser;
use heliograph_store::{Audit, Backend, Db, Store};

const INCIDENTS: usize = 100_000;
const TIMELINE: usize = 2_000;
const SAMPLES: usize = 200;

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
    let hash = heliograph_web::auth::hash_password(Password::parse("benchmark password").unwrap())
        .await
        .unwrap();
    let user = store
        .create_user(
            &NewUser {
                email: UserEmail::parse("bench@example.com").unwrap(),
                name: DisplayName::parse("Bench").unwrap(),
                time_zone: TimeZone::parse("Europe/London").unwrap(),
                role: Role::Manager,
                password_hash: Some(hash),
            },
            &audit,
        )
        .await
        .unwrap();
    let mut services = Vec::new();
    for (name, kind) in [
        ("llm-gateway", ServiceKind::LlmInference),
        ("embedding-service", ServiceKind::LlmInference),
        ("vector-db", ServiceKind::VectorDb),
        ("feature-store", ServiceKind::FeatureStore),
        ("agent-runtime", ServiceKind::AgentFramework),
    ] {
        let fields = ServiceFields {
            name: name.into(),
            description: String::new(),
            kind,
            workload_class: WorkloadClass::RealTime,
            team_id: None,
            escalation_policy_id: None,
            response_targets: Default::default(),
            grouping_window_minutes: 0,
            auto_resolve: true,
            severity_map: Default::default(),
        };
        services.push(store.create_service(&fields, &audit).await.unwrap().id);
    }

    let started = Instant::now();
    let now = Utc::now();
    let sevs = [
        Severity::Sev1,
        Severity::Sev2,
        Severity::Sev3,
        Severity::Sev3,
        Severity::Sev4,
    ];
    let count = std::env::var("INCIDENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(INCIDENTS);
    let items: Vec<SeedIncident> = (0..count)
        .map(|k| {
            let triggered = now - TimeDelta::minutes((count - k) as i64 * 5);
            let open = k + 40 >= count;
            SeedIncident {
                title: format!(
                    "{} error rate above threshold ({k})",
                    ["gateway", "embedding", "index", "features", "agent"][k % 5]
                ),
                description: String::new(),
                description_html: String::new(),
                severity: sevs[k % 5],
                status: if open {
                    IncidentStatus::Triggered
                } else {
                    IncidentStatus::Resolved
                },
                commander_id: Some(user.id),
                service_ids: vec![services[k % services.len()]],
                triggered_at: triggered,
                acknowledged_at: (!open).then(|| triggered + TimeDelta::minutes(4)),
                resolved_at: (!open).then(|| triggered + TimeDelta::minutes(47)),
                timeline: Vec::new(),
            }
        })
        .collect();
    store.seed_incidents(&items, &audit).await.unwrap();
    let big = SeedIncident {
        title: "Long-running incident with a 2,000-entry timeline".into(),
        description: "Everything **slow**".into(),
        description_html: heliograph_web::markdown::render("Everything **slow**"),
        severity: Severity::Sev1,
        status: IncidentStatus::Acknowledged,
        commander_id: Some(user.id),
        service_ids: vec![services[0]],
        triggered_at: now - TimeDelta::days(2),
        acknowledged_at: Some(now - TimeDelta::days(2) + TimeDelta::minutes(3)),
        resolved_at: None,
        timeline: (0..TIMELINE)
            .map(|k| {
                let body = format!(
                    "Step {k}: checked **shard {}**, p99 `{}ms`",
                    k % 16,
                    100 + k % 900
                );
                SeedEntry {
                    at: now - TimeDelta::days(2) + TimeDelta::minutes(k as i64),
                    actor: "bench@example.com".into(),
                    kind: if k % 3 == 0 { "status_update" } else { "note" }.into(),
                    body_html: heliograph_web::markdown::render(&body),
                    body,
                }
            })
            .collect(),
    };
    let big_number = store.seed_incidents(&[big], &audit).await.unwrap()[0];
    println!(
        "{backend:?}: loaded {INCIDENTS} incidents and a {TIMELINE}-entry timeline in {:.1?}",
        started.elapsed()
    );

    let (base, client) =
        common::serve_signed_in(&store, "bench@example.com", "benchmark password").await;

    if std::env::var_os("PROBE").is_some() {
        let id = store.incident(big_number).await.unwrap().id;
        for _ in 0..5 {
            let t = Instant::now();
            let rows = store.timeline(id, false).await.unwrap();
            let q = t.elapsed();
            let t = Instant::now();
            let _d = store.incident_detail(big_number).await.unwrap();
            let _u = store.all_users().await.unwrap();
            println!(
                "probe: timeline query {q:.1?} for {} rows; detail+users {:.1?}",
                rows.len(),
                t.elapsed()
            );
        }
    }
    for (label, path) in [
        (
            "incident list, first page (open first)",
            "/incidents".to_owned(),
        ),
        (
            "incident list, page 500 of resolved",
            "/incidents?status=resolved&page=500".to_owned(),
        ),
        (
            "incident list, title search",
            "/incidents?q=embedding+threshold".to_owned(),
        ),
        (
            "incident page, 2,000-entry timeline",
            format!("/incidents/{big_number}"),
        ),
    ] {
        let url = format!("{base}{path}");
        for _ in 0..10 {
            let body = client.get(&url).send().await.unwrap().text().await.unwrap();
            assert!(body.contains("Heliograph"));
        }
        let mut times: Vec<Duration> = Vec::with_capacity(SAMPLES);
        let mut bytes = 0;
        for _ in 0..SAMPLES {
            let t = Instant::now();
            let response = client.get(&url).send().await.unwrap();
            assert_eq!(response.status(), 200, "{url}");
            bytes = response.bytes().await.unwrap().len();
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "{backend:?}: {label}: median {:.1} ms, p95 {:.1} ms ({} KB, {SAMPLES} requests)",
            times[SAMPLES / 2].as_secs_f64() * 1000.0,
            times[SAMPLES * 95 / 100].as_secs_f64() * 1000.0,
            bytes / 1024
        );
    }
}
