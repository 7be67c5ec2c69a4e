//! Load script for alert ingestion: PagerDuty Events v2 triggers posted to `/v2/enqueue` as
//! fast as the real server answers, from many concurrent connections.
//!
//!     cargo run --release --example ingest_bench -- sqlite
//!     cargo run --release --example ingest_bench -- postgres   # needs HELIOGRAPH_TEST_POSTGRES_URL or the default
//!
//! A fresh database, one service (no escalation policy, so nobody is paged) with one
//! `events_v2` integration, and the real `Application` with the rate limit lifted. Then
//! `EVENTS` triggers (default 20,000): the first `KEYS` (default 10,000) with distinct dedup
//! keys, each opening an alert and an incident; the rest with keys drawn from the same
//! `KEYS` (a fixed pseudo-random sequence), each updating its open alert. `CONNECTIONS`
//! (default 32) tasks each send one request at a time on their own keep-alive connection.
//!
//! The server runs on its own Tokio runtime (threads named `server`), the client on the
//! main one, so `perf record -g -p <pid>` can tell them apart (`perf report --sort comm`).
//! Prints the events sent, the wall time, events per second, the latency percentiles (request
//! sent to answer read), per phase as well, and checks that every accepted event is stored.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use heliograph_domain::{ServiceKind, SystemClock, WorkloadClass};
use heliograph_store::alerts::NewIntegration;
use heliograph_store::services::{ResponseTargets, ServiceFields};
use heliograph_store::testdb::TestDatabase;
use heliograph_store::{Audit, Backend, Db, Store};
use heliograph_web::{Application, Config};

const EVENTS: usize = 20_000;
const KEYS: usize = 10_000;
const CONNECTIONS: usize = 32;
const WARM_UP_KEY: &str = "warm-up";

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The dedup key of event `i`: distinct for the first `keys`, then drawn from them.
fn key_of(i: usize, keys: usize) -> usize {
    if i < keys {
        i
    } else {
        // splitmix64: a fixed, well-spread sequence.
        let mut z = (i as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) % keys as u64) as usize
    }
}

fn event(routing_key: &str, dedup_key: &str, n: usize) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": {
            "summary": format!("GPU node {dedup_key}: p99 latency above 2 s"),
            "source": format!("gpu-node-{dedup_key}"),
            "severity": "critical",
            "component": "inference",
            "custom_details": {"p99_ms": 2000 + n % 1000, "event": n},
        },
        "client": "ingest_bench",
    }))
    .unwrap()
}

/// One answered request: which event, how long, what status.
struct Sample {
    index: usize,
    latency: Duration,
    done: Duration,
    status: u16,
}

fn percentiles(name: &str, mut v: Vec<Duration>, wall: Duration) {
    if v.is_empty() {
        return;
    }
    v.sort();
    let at = |p: f64| ms(v[((v.len() as f64 * p) as usize).min(v.len() - 1)]);
    println!(
        "  {name}: {} events in {:.2} s = {:.0} events/s; latency p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        v.len(),
        wall.as_secs_f64(),
        v.len() as f64 / wall.as_secs_f64(),
        at(0.50),
        at(0.90),
        at(0.99),
        ms(v[v.len() - 1]),
    );
}

async fn query_i64(db: &Db, sql: &str) -> i64 {
    let row: (i64,) = match db {
        Db::Sqlite { read, .. } => sqlx::query_as(sql).fetch_one(read).await.unwrap(),
        Db::Postgres(pool, _) => sqlx::query_as(sql).fetch_one(pool).await.unwrap(),
    };
    row.0
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
    let total = env_or("EVENTS", EVENTS);
    let keys = env_or("KEYS", KEYS).min(total).max(1);
    let connections = env_or("CONNECTIONS", CONNECTIONS).max(1);

    let db = TestDatabase::fresh(backend).await;
    let conn = Db::connect(&db.url).await.unwrap();
    conn.migrate().await.unwrap();
    let store = Store::with_clock(conn.clone(), Arc::new(SystemClock));
    let audit = Audit::cli();
    let service = store
        .create_service(
            &ServiceFields {
                name: "llm-gateway".into(),
                description: String::new(),
                kind: ServiceKind::LlmInference,
                workload_class: WorkloadClass::RealTime,
                team_id: None,
                escalation_policy_id: None,
                response_targets: ResponseTargets::default(),
                grouping_window_minutes: 0,
                auto_resolve: true,
                severity_map: Default::default(),
            },
            &audit,
        )
        .await
        .unwrap()
        .id;
    let routing_key = heliograph_web::ingest::new_integration_key();
    store
        .create_integration(
            &NewIntegration {
                service_id: service,
                kind: "events_v2",
                name: "Prometheus via PagerDuty",
                key_hash: &heliograph_web::auth::hash_secret(&routing_key),
                key_prefix: &routing_key[..8],
                heartbeat_interval_seconds: None,
            },
            &audit,
        )
        .await
        .unwrap();

    // The server on its own runtime and threads, with its own pools.
    let (port_tx, port_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let url = db.url.clone();
    let server = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name("server")
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let store = Store::with_clock(Db::connect(&url).await.unwrap(), Arc::new(SystemClock));
            let config = Config {
                ingest_rate: 1e9,
                // ENGINE=off measures ingestion alone, without the engine working through
                // the incidents' escalation jobs on the same database meanwhile.
                run_engine: std::env::var("ENGINE").map_or(true, |v| v != "off"),
                ..Config::local("127.0.0.1:0".parse().unwrap())
            };
            let app = Application::build(config, store).await.unwrap();
            port_tx.send(app.port()).unwrap();
            app.run_until(async {
                let _ = stop_rx.await;
            })
            .await
            .unwrap();
        });
    });
    let port = port_rx.await.unwrap();
    let url = format!("http://127.0.0.1:{port}/v2/enqueue");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()
        .unwrap();
    let post = |body: Vec<u8>| {
        client
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    // Warm-up: every connection once, on a key of its own that the checks leave out.
    let warm_up: Vec<_> = (0..connections)
        .map(|n| {
            let request = post(event(&routing_key, WARM_UP_KEY, n));
            async move {
                let r = request.await.unwrap();
                let status = r.status();
                let text = r.text().await.unwrap();
                assert_eq!(status, 202, "{text}");
            }
        })
        .collect();
    futures::future::join_all(warm_up).await;
    let warm_up_events = connections as i64;

    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..total)
            .map(|i| event(&routing_key, &format!("k{:05}", key_of(i, keys)), i))
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let load_before = load_average();
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let (client, url, bodies, next) =
                (client.clone(), url.clone(), bodies.clone(), next.clone());
            tokio::spawn(async move {
                let mut samples = Vec::new();
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(index) else {
                        break;
                    };
                    let sent = Instant::now();
                    let response = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                        .unwrap();
                    let status = response.status().as_u16();
                    let _ = response.bytes().await.unwrap();
                    samples.push(Sample {
                        index,
                        latency: sent.elapsed(),
                        done: started.elapsed(),
                        status,
                    });
                }
                samples
            })
        })
        .collect();
    let mut samples = Vec::with_capacity(total);
    for task in tasks {
        samples.extend(task.await.unwrap());
    }
    let wall = started.elapsed();
    let load_after = load_average();

    let accepted = samples.iter().filter(|s| s.status == 202).count();
    let mut others: Vec<(u16, usize)> = Vec::new();
    for s in samples.iter().filter(|s| s.status != 202) {
        match others.iter_mut().find(|(status, _)| *status == s.status) {
            Some((_, n)) => *n += 1,
            None => others.push((s.status, 1)),
        }
    }
    println!(
        "{backend:?}: {total} Events v2 triggers ({keys} distinct dedup keys, then {} repeats) from {connections} connections: \
         {accepted} accepted (202){}; wall time {:.2} s, {:.0} events/s",
        total - keys,
        if others.is_empty() {
            String::new()
        } else {
            format!(", others {others:?}")
        },
        wall.as_secs_f64(),
        total as f64 / wall.as_secs_f64(),
    );
    percentiles("all", samples.iter().map(|s| s.latency).collect(), wall);
    // Each phase's rate: its events over the time from the start (or the end of the first
    // phase) to its last answer; the phases overlap by at most `connections` requests.
    let first_done = samples
        .iter()
        .filter(|s| s.index < keys)
        .map(|s| s.done)
        .max()
        .unwrap_or_default();
    percentiles(
        "new keys (alert + incident opened)",
        samples
            .iter()
            .filter(|s| s.index < keys)
            .map(|s| s.latency)
            .collect(),
        first_done,
    );
    percentiles(
        "repeated keys (open alert updated)",
        samples
            .iter()
            .filter(|s| s.index >= keys)
            .map(|s| s.latency)
            .collect(),
        wall.saturating_sub(first_done),
    );
    println!("load average (1, 5, 15 min): before {load_before}, after {load_after}");

    // Every accepted event is stored.
    let accepted_triggers = accepted as i64;
    let alerts = query_i64(
        &conn,
        "SELECT COUNT(*) FROM alerts WHERE dedup_key <> 'warm-up'",
    )
    .await;
    let counted = query_i64(
        &conn,
        "SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM alerts WHERE dedup_key <> 'warm-up'",
    )
    .await;
    let events = query_i64(&conn, "SELECT COUNT(*) FROM alert_events").await - warm_up_events;
    let incidents = query_i64(&conn, "SELECT COUNT(*) FROM incidents").await - 1;
    let distinct_keys = samples
        .iter()
        .filter(|s| s.status == 202)
        .map(|s| key_of(s.index, keys))
        .collect::<std::collections::HashSet<_>>()
        .len() as i64;
    println!(
        "stored: {alerts} alerts (expected {distinct_keys}), sum of their counts {counted} and {events} alert events \
         (expected {accepted_triggers}), {incidents} incidents opened (expected {distinct_keys}, no grouping)"
    );
    let ok = alerts == distinct_keys
        && counted == accepted_triggers
        && events == accepted_triggers
        && incidents == distinct_keys;
    println!(
        "check: {}",
        if ok {
            "every accepted event is stored"
        } else {
            "MISMATCH"
        }
    );
    let _ = stop_tx.send(());
    server.join().unwrap();
    drop(db);
    assert!(ok, "stored counts do not match the accepted events");
}
