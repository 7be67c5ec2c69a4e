//! Load script for the postmortem list: 5,000 published postmortems with realistic section
//! text over several services and teams, then `/postmortems` timed over HTTP on loopback
//! against the real server, signed in as a viewer (leadership).
//!
//!     cargo run --release --example postmortem_bench -- sqlite
//!     cargo run --release --example postmortem_bench -- postgres   # needs HELIOGRAPH_TEST_POSTGRES_URL or the default
//!
//! Prints the median and 90th percentile of the full request time over 50 requests after 10
//! warm-up requests, and how many postmortems each search matches. POSTMORTEMS=n changes the
//! count; EXPLAIN=1 prints PostgreSQL's plans of the search query.

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Datelike, TimeDelta, Utc};
use heliograph_domain::{
    DisplayName, IncidentStatus, Password, Role, ServiceKind, Severity, SystemClock, TeamName,
    TimeZone, UserEmail, WorkloadClass,
};
use heliograph_store::demo::DemoPostmortem;
use heliograph_store::postmortems::{
    PmTimelineEntry, PostmortemFilter, PostmortemStatus, Sections,
};
use heliograph_store::seed::SeedIncident;
use heliograph_store::services::ServiceFields;
use heliograph_store::testdb::TestDatabase;
use heliograph_store::users::NewUser;
use heliograph_store::{Audit, Backend, Db, Store};

const POSTMORTEMS: usize = 5_000;
const WARM_UP: usize = 10;
const SAMPLES: usize = 50;

/// Words for section text; `latency` is in most documents, `tokenizer` in one in a hundred.
const CAUSES: &[&str] = &[
    "a stale replica of the vector index served old embeddings",
    "the GPU node pool ran out of memory after a batch size change",
    "a feature store backfill doubled read latency for online features",
    "the agent runtime retried tool calls without backoff and saturated the queue",
    "a certificate on the inference gateway expired at midnight UTC",
    "a model rollout shipped a quantized checkpoint with degraded recall",
    "the data pipeline dropped late events during a schema migration",
];
const DETECTIONS: &[&str] = &[
    "The p99 latency alert on the gateway paged the primary after four minutes.",
    "Customers reported empty search results through support before any alert fired.",
    "The heartbeat of the nightly batch job went missing and opened an incident.",
    "An evaluation canary flagged a drop in answer quality below the threshold.",
];

fn paragraph(k: usize, salt: usize) -> String {
    let cause = CAUSES[(k + salt) % CAUSES.len()];
    let detection = DETECTIONS[(k / 3 + salt) % DETECTIONS.len()];
    format!(
        "During incident {k}, {cause}. {detection} Error rates peaked at {}% on shard {} and \
         latency stayed elevated for {} minutes while the team rolled back. See the dashboard \
         for request volume, saturation and queue depth; the runbook step **drain and restart** \
         was followed.",
        2 + (k * 7 + salt) % 40,
        (k + salt) % 32,
        5 + (k * 13) % 120,
    )
}

fn sections(k: usize) -> Sections {
    let mut s = Sections {
        summary: paragraph(k, 0),
        customer_impact: format!(
            "About {} requests failed; {} enterprise tenants saw errors in the chat product.",
            1_000 + (k * 37) % 90_000,
            1 + k % 12
        ),
        root_cause: paragraph(k, 1),
        detection: paragraph(k, 2),
        resolution: format!(
            "Rolled back to the previous release, re-warmed caches and replayed {} queued jobs.",
            k % 500
        ),
        went_well:
            "- The escalation policy reached the secondary quickly\n- Rollback was one command"
                .into(),
        went_badly: "- Dashboards lagged by five minutes\n- The runbook was out of date".into(),
        lucky: "It happened during APAC working hours, with the owning team awake.".into(),
        lessons: paragraph(k, 3),
        ai_model_version: format!("reranker-v{}.{}", 3 + k % 4, k % 10),
        ai_eval_before: format!("nDCG@10 0.{}", 60 + k % 30),
        ai_eval_after: format!("nDCG@10 0.{}", 70 + k % 25),
    };
    if k % 100 == 7 {
        s.root_cause
            .push_str(" The tokenizer update changed how whitespace was split.");
    }
    s
}

fn median_p90(mut times: Vec<Duration>) -> (f64, f64) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (
        ms(times[times.len() / 2]),
        ms(times[(times.len() * 9 / 10).min(times.len() - 1)]),
    )
}

#[tokio::main]
async fn main() {
    let backend = match std::env::args().nth(1).as_deref() {
        Some("postgres") => Backend::Postgres,
        _ => Backend::Sqlite,
    };
    let count = std::env::var("POSTMORTEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(POSTMORTEMS);
    let db = TestDatabase::fresh(backend).await;
    let conn = Db::connect(&db.url).await.unwrap();
    conn.migrate().await.unwrap();
    let store = Store::with_clock(conn, Arc::new(SystemClock));
    let audit = Audit::cli();
    let hash = heliograph_web::auth::hash_password(Password::parse("benchmark password").unwrap())
        .await
        .unwrap();
    let mut people = Vec::new();
    for (email, role) in [
        ("lead@example.com", Role::Viewer),
        ("ana@example.com", Role::Responder),
        ("kai@example.com", Role::Responder),
        ("mei@example.com", Role::Responder),
        ("raj@example.com", Role::Responder),
    ] {
        let user = store
            .create_user(
                &NewUser {
                    email: UserEmail::parse(email).unwrap(),
                    name: DisplayName::parse(email.split('@').next().unwrap()).unwrap(),
                    time_zone: TimeZone::parse("Europe/London").unwrap(),
                    role,
                    password_hash: Some(hash.clone()),
                },
                &audit,
            )
            .await
            .unwrap();
        people.push(user.id);
    }
    let mut teams = Vec::new();
    for (name, members) in [
        ("AI platform", &people[1..3]),
        ("Search", &people[3..4]),
        ("Data", &people[4..5]),
    ] {
        teams.push(
            store
                .create_team(&TeamName::parse(name).unwrap(), members, &audit)
                .await
                .unwrap()
                .team
                .id,
        );
    }
    let mut services = Vec::new();
    for (n, (name, kind)) in [
        ("llm-gateway", ServiceKind::LlmInference),
        ("embedding-service", ServiceKind::LlmInference),
        ("vector-db", ServiceKind::VectorDb),
        ("reranker", ServiceKind::LlmInference),
        ("feature-store", ServiceKind::FeatureStore),
        ("agent-runtime", ServiceKind::AgentFramework),
        ("ingest-pipeline", ServiceKind::DataPipeline),
    ]
    .into_iter()
    .enumerate()
    {
        let fields = ServiceFields {
            name: name.into(),
            description: String::new(),
            kind,
            workload_class: WorkloadClass::RealTime,
            team_id: Some(teams[n % teams.len()]),
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
    // One incident every three hours, going back about 21 months at 5,000.
    let incidents: Vec<SeedIncident> = (0..count)
        .map(|k| {
            let triggered = now - TimeDelta::hours(3 * (count - k) as i64);
            SeedIncident {
                title: format!(
                    "{} errors on {} ({k})",
                    ["Elevated", "Spiking", "Intermittent", "Sustained"][k % 4],
                    [
                        "gateway",
                        "embeddings",
                        "index",
                        "reranker",
                        "features",
                        "agents",
                        "ingest"
                    ][k % 7]
                ),
                description: String::new(),
                description_html: String::new(),
                severity: if k % 3 == 0 {
                    Severity::Sev1
                } else {
                    Severity::Sev2
                },
                status: IncidentStatus::Resolved,
                commander_id: Some(people[1 + k % 4]),
                service_ids: if k % 5 == 0 {
                    vec![services[k % 7], services[(k + 1) % 7]]
                } else {
                    vec![services[k % 7]]
                },
                triggered_at: triggered,
                acknowledged_at: Some(triggered + TimeDelta::minutes(3 + (k % 9) as i64)),
                resolved_at: Some(triggered + TimeDelta::minutes(40 + (k % 200) as i64)),
                timeline: Vec::new(),
            }
        })
        .collect();
    let numbers = store.seed_incidents(&incidents, &audit).await.unwrap();
    let mut postmortems = Vec::with_capacity(count);
    for (k, number) in numbers.iter().enumerate() {
        let incident = store.incident(*number).await.unwrap();
        let resolved = incident.resolved_at.unwrap();
        postmortems.push(DemoPostmortem {
            incident_id: incident.id,
            owner_id: incident.commander_id,
            status: "published",
            title: incident.title.clone(),
            sections: sections(k),
            timeline: (0..12)
                .map(|n| PmTimelineEntry {
                    at: incident.triggered_at + TimeDelta::minutes(n * 4),
                    text: format!(
                        "Step {n}: checked shard {} and the p99 latency graph",
                        n * 3
                    ),
                    kept: n % 5 != 4,
                })
                .collect(),
            created_at: resolved,
            updated_at: resolved + TimeDelta::days(3),
            published_at: Some(resolved + TimeDelta::days(3)),
            reviewers: vec![(
                people[1 + (k + 1) % 4],
                "approved",
                Some(resolved + TimeDelta::days(2)),
            )],
            history: Vec::new(),
            action_items: Vec::new(),
        });
    }
    store.load_postmortems(&postmortems, &audit).await.unwrap();
    println!(
        "{backend:?}: loaded {count} published postmortems in {:.1?}",
        started.elapsed()
    );
    let count_of = |search: &str| {
        let store = store.clone();
        let filter = PostmortemFilter {
            status: Some(PostmortemStatus::Published),
            search: Some(search.to_owned()),
            ..PostmortemFilter::default()
        };
        async move {
            let mut total = 0;
            let mut cursor = None;
            loop {
                let page = store.postmortems(&filter, 500, cursor).await.unwrap();
                total += page.items.len();
                match page.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => return total,
                }
            }
        }
    };
    println!(
        "{backend:?}: 'tokenizer' matches {}, 'latency' matches {}, 'stale replica' matches {}",
        count_of("tokenizer").await,
        count_of("latency").await,
        count_of("stale replica").await,
    );

    if std::env::var_os("EXPLAIN").is_some()
        && let Db::Postgres(pool, _) = store.db()
    {
        // The plan of the search query as the list runs it (see Store::postmortems).
        for q in ["tokenizer:*", "kubernetes:*", "latency:*"] {
            let plan: Vec<(String,)> = sqlx::query_as(
                "EXPLAIN ANALYZE WITH hits AS MATERIALIZED (SELECT id FROM postmortems WHERE search @@ to_tsquery('simple', $1))
                 SELECT p.id FROM postmortems p JOIN incidents i ON i.id = p.incident_id
                 LEFT JOIN users u ON u.id = p.owner_id
                 WHERE TRUE AND p.status = 'published' AND p.id IN (SELECT id FROM hits)
                 ORDER BY p.id DESC LIMIT 51",
            )
            .bind(q)
            .fetch_all(pool)
            .await
            .unwrap();
            println!("{q}:");
            for (line,) in plan {
                println!("  {line}");
            }
        }
    }

    let (base, client) =
        common::serve_signed_in(&store, "lead@example.com", "benchmark password").await;

    let last_quarter = {
        let idx = now.year() * 4 + (now.month0() / 3) as i32 - 2;
        format!("{}-Q{}", idx.div_euclid(4), idx.rem_euclid(4) + 1)
    };
    for (label, path) in [
        ("list, no filter", "/postmortems".to_owned()),
        (
            "list, one service",
            format!("/postmortems?service_id={}", services[3]),
        ),
        (
            "list, one quarter",
            format!("/postmortems?quarter={last_quarter}"),
        ),
        (
            "search, rare word (~1%)",
            "/postmortems?q=tokenizer".to_owned(),
        ),
        (
            "search, common word (most)",
            "/postmortems?q=latency".to_owned(),
        ),
        (
            "search, two words",
            "/postmortems?q=stale+replica".to_owned(),
        ),
        ("search, no match", "/postmortems?q=kubernetes".to_owned()),
    ] {
        let url = format!("{base}{path}");
        let mut rows = 0;
        for _ in 0..WARM_UP {
            let body = client.get(&url).send().await.unwrap().text().await.unwrap();
            rows = body.matches("<tr><td><a href=\"/postmortems/").count();
        }
        let mut times: Vec<Duration> = Vec::with_capacity(SAMPLES);
        for _ in 0..SAMPLES {
            let t = Instant::now();
            let response = client.get(&url).send().await.unwrap();
            assert_eq!(response.status(), 200, "{url}");
            response.bytes().await.unwrap();
            times.push(t.elapsed());
        }
        let (median, p90) = median_p90(times);
        println!(
            "{backend:?}: {label} ({path}): {rows} rows shown, median {median:.1} ms, p90 {p90:.1} ms ({SAMPLES} requests)"
        );
    }
}
