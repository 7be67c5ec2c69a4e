//! Load script for paging: 1,000 incidents triggered at once through the API, each paging the
//! person on call by email; times each from sending the trigger to the mail arriving at a
//! real SMTP server.
//!
//!     cargo run --release --example paging_bench -- sqlite
//!     cargo run --release --example paging_bench -- postgres   # needs HELIOGRAPH_TEST_POSTGRES_URL or the default
//!
//! The SMTP server is Postfix's `smtp-sink` (Debian's `postfix` package,
//! `/usr/sbin/smtp-sink`), the SMTP server Postfix ships for measuring mail clients: written
//! in C, it costs the machine almost no CPU, as a mail relay on another machine would.
//! `SINK=aiosmtpd` uses the Python server of `tests/paging.rs` instead; on a 2-core machine it
//! spends about 2 ms of CPU per mail, next to Heliograph, which slows the whole run.
//!
//! `INCIDENTS=n` changes the number of incidents. Arrival is the time the server wrote the
//! mail (the modification time of `smtp-sink`'s file for it, or aiosmtpd's log line); mails
//! are matched to incidents by their subject (`[SEV1] #<number> …`). Prints the count
//! delivered, the median, p90, p99 and maximum, and the wall time until the last mail.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use heliograph_domain::{
    DisplayName, Password, Role, ServiceKind, SystemClock, TeamName, TimeZone, TokenName,
    UserEmail, WorkloadClass,
};
use heliograph_notify::testing::SmtpSink;
use heliograph_scheduler::{Layer, Rotation, ShiftLength, ShiftUnit};
use heliograph_store::escalation_policies::{Level, PolicyFields, Target};
use heliograph_store::schedules::ScheduleFields;
use heliograph_store::services::{ResponseTargets, ServiceFields};
use heliograph_store::testdb::TestDatabase;
use heliograph_store::users::NewUser;
use heliograph_store::{Audit, Backend, Db, Store};
use heliograph_web::{Application, Config};

const INCIDENTS: usize = 1_000;
/// How long to wait for the last mail before giving up.
const DEADLINE: Duration = Duration::from_secs(300);

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn user(email: &str, name: &str, role: Role, password_hash: Option<String>) -> NewUser {
    NewUser {
        email: UserEmail::parse(email).unwrap(),
        name: DisplayName::parse(name).unwrap(),
        time_zone: TimeZone::UTC,
        role,
        password_hash,
    }
}

/// `person` is always on call in a one-layer schedule; the service's policy pages that
/// schedule at level 1. Returns the service id.
async fn paging_setup(store: &Store, person: i64, audit: &Audit) -> i64 {
    let team = store
        .create_team(&TeamName::parse("AI platform").unwrap(), &[person], audit)
        .await
        .unwrap();
    let schedule = store
        .create_schedule(
            &ScheduleFields {
                name: "Primary".into(),
                time_zone: TimeZone::UTC,
                team_id: team.team.id,
                layers: vec![Layer {
                    name: "All".into(),
                    rotation: Rotation {
                        participants: vec![person],
                        shift: ShiftLength {
                            unit: ShiftUnit::Weeks,
                            count: 1,
                        },
                        handoff: "2026-01-05T09:00:00".parse().unwrap(),
                        handoff_time_zone: chrono_tz::UTC,
                    },
                    restrictions: vec![],
                }],
            },
            audit,
        )
        .await
        .unwrap();
    let policy = store
        .create_policy(
            &PolicyFields {
                name: "LLM gateway".into(),
                team_id: team.team.id,
                repeat: 0,
                levels: vec![Level {
                    delay_minutes: 30,
                    min_severity: None,
                    targets: vec![Target::schedule(schedule.id)],
                }],
                low_severity_any_time: false,
            },
            audit,
        )
        .await
        .unwrap();
    store
        .create_service(
            &ServiceFields {
                name: "llm-gateway".into(),
                description: String::new(),
                kind: ServiceKind::LlmInference,
                workload_class: WorkloadClass::RealTime,
                team_id: Some(team.team.id),
                escalation_policy_id: Some(policy.id),
                response_targets: ResponseTargets::default(),
                grouping_window_minutes: 0,
                auto_resolve: true,
                severity_map: Default::default(),
            },
            audit,
        )
        .await
        .unwrap()
        .id
}

/// The SMTP server receiving the pages.
enum Sink {
    /// Postfix's `smtp-sink`, writing each mail to a file of its own in `dir`.
    Postfix {
        port: u16,
        dir: tempfile::TempDir,
        child: std::process::Child,
    },
    Aiosmtpd(SmtpSink),
}

impl Sink {
    async fn start() -> Sink {
        if std::env::var("SINK").as_deref() == Ok("aiosmtpd") {
            return Sink::Aiosmtpd(SmtpSink::start_logging().await);
        }
        let program = "/usr/sbin/smtp-sink";
        assert!(
            std::path::Path::new(program).exists(),
            "{program} is missing: install Debian's postfix package \
             (apt-get install postfix), or run with SINK=aiosmtpd"
        );
        // In memory (tmpfs) where there is one: creating a file per mail on disk took the
        // machine's CPU too.
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm).unwrap()
        } else {
            tempfile::tempdir().unwrap()
        };
        // smtp-sink drops root privileges to `-u`'s user, who must be able to write here.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| o.stdout.trim_ascii() == b"0")
            .unwrap_or(false);
        let mut command = std::process::Command::new(program);
        if root {
            command.args(["-u", "nobody"]);
        }
        // `-d`: one file per mail, named from this template plus a random suffix.
        let template = format!("{}/%H%M%S.", dir.path().display());
        let child = command
            .args(["-d", &template, &format!("127.0.0.1:{port}"), "1024"])
            .spawn()
            .expect("start smtp-sink");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "smtp-sink did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Sink::Postfix { port, dir, child }
    }

    fn url(&self) -> String {
        match self {
            Sink::Postfix { port, .. } => format!("smtp://127.0.0.1:{port}"),
            Sink::Aiosmtpd(smtp) => smtp.url(),
        }
    }

    fn count(&self) -> usize {
        match self {
            Sink::Postfix { dir, .. } => std::fs::read_dir(dir.path()).map_or(0, |d| d.count()),
            Sink::Aiosmtpd(smtp) => smtp.arrivals().len(),
        }
    }

    /// Mails received: (incident number from the subject, arrival time).
    fn arrivals(&self) -> Vec<(Option<i64>, SystemTime)> {
        let received: Vec<(SystemTime, String)> = match self {
            Sink::Postfix { dir, .. } => std::fs::read_dir(dir.path())
                .unwrap()
                .map(|entry| {
                    let path = entry.unwrap().path();
                    let at = std::fs::metadata(&path).unwrap().modified().unwrap();
                    let mail = std::fs::read_to_string(&path).unwrap();
                    let subject = mail
                        .lines()
                        .find_map(|l| l.strip_prefix("Subject: "))
                        .unwrap_or_default()
                        .to_owned();
                    (at, subject)
                })
                .collect(),
            Sink::Aiosmtpd(smtp) => smtp.arrivals(),
        };
        received
            .into_iter()
            .map(|(at, subject)| {
                let number = subject
                    .strip_prefix("[SEV1] #")
                    .and_then(|rest| rest.split(' ').next())
                    .and_then(|n| n.parse().ok());
                (number, at)
            })
            .collect()
    }

    fn name(&self) -> &'static str {
        match self {
            Sink::Postfix { .. } => "Postfix smtp-sink",
            Sink::Aiosmtpd(_) => "aiosmtpd",
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if let Sink::Postfix { child, .. } = self {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
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
    let count = std::env::var("INCIDENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(INCIDENTS);
    let db = TestDatabase::fresh(backend).await;
    let conn = Db::connect(&db.url).await.unwrap();
    conn.migrate().await.unwrap();
    let store = Store::with_clock(conn, Arc::new(SystemClock));
    let audit = Audit::cli();
    let hash = heliograph_web::auth::hash_password(Password::parse("benchmark password").unwrap())
        .await
        .unwrap();
    let bench = store
        .create_user(
            &user("bench@example.com", "Bench", Role::Manager, Some(hash)),
            &audit,
        )
        .await
        .unwrap();
    let ana = store
        .create_user(
            &user("ana@example.com", "Ana", Role::Responder, None),
            &audit,
        )
        .await
        .unwrap();
    let service = paging_setup(&store, ana.id, &audit).await;
    let token = heliograph_web::auth::new_api_token();
    store
        .create_token(
            bench.id,
            &TokenName::parse("bench").unwrap(),
            &heliograph_web::auth::hash_secret(&token),
            &heliograph_web::auth::token_prefix(&token),
            &audit,
        )
        .await
        .unwrap();

    let smtp = Sink::start().await;
    let mut config = Config::local("127.0.0.1:0".parse().unwrap());
    config.smtp_url = Some(smtp.url().parse().unwrap());
    let app = Application::build(config, store.clone()).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until(std::future::pending()));
    let client = reqwest::Client::new();
    let url = format!("{base}/api/v1/incidents");
    let trigger = |title: String| {
        let request = client
            .post(&url)
            .bearer_auth(&token)
            .json(&serde_json::json!({"title": title, "severity": "SEV1", "service_id": service}));
        async move {
            let sent = SystemTime::now();
            let response = request.send().await.unwrap();
            let status = response.status();
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(status, 201, "{body}");
            let answered = SystemTime::now();
            (body["number"].as_i64().unwrap(), sent, answered)
        }
    };

    // Warm-up: one page end to end, so the SMTP pool and the database pools are connected.
    trigger("Warm-up".into()).await;
    let warm = Instant::now();
    while smtp.count() < 1 {
        assert!(warm.elapsed() < Duration::from_secs(30), "no warm-up mail");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let load_before = load_average();

    // All triggers at once, each on its own task (and its own connection).
    let started = Instant::now();
    let tasks: Vec<_> = (0..count)
        .map(|k| tokio::spawn(trigger(format!("LLM gateway 5xx > 20% ({k})"))))
        .collect();
    let mut triggers = BTreeMap::new();
    let mut answers = Vec::with_capacity(count);
    for task in tasks {
        let (number, sent, answered) = task.await.unwrap();
        answers.push(answered.duration_since(sent).unwrap_or_default());
        triggers.insert(number, sent);
    }
    let api_done = started.elapsed();
    let expected = count + 1;
    while smtp.count() < expected {
        assert!(
            started.elapsed() < DEADLINE,
            "only {} of {count} mails after {DEADLINE:?}",
            smtp.count() - 1
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all_arrived = started.elapsed();
    let load_after = load_average();
    // Anything sent twice would arrive shortly after.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
    let mut latencies = Vec::with_capacity(count);
    let first_sent = triggers.values().min().copied().unwrap();
    let mut last_arrival = first_sent;
    for (number, arrived) in smtp.arrivals() {
        let number = number.expect("every mail is a SEV1 page with a number");
        *seen.entry(number).or_default() += 1;
        if let Some(sent) = triggers.get(&number) {
            latencies.push(arrived.duration_since(*sent).unwrap_or_default());
            last_arrival = last_arrival.max(arrived);
        }
    }
    let duplicates: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicates.is_empty(), "sent more than once: {duplicates:?}");
    let missing: Vec<_> = triggers.keys().filter(|n| !seen.contains_key(n)).collect();
    assert!(missing.is_empty(), "never arrived: {missing:?}");
    assert_eq!(latencies.len(), count);

    latencies.sort();
    answers.sort();
    let at = |v: &[Duration], p: usize| ms(v[(v.len() * p / 100).min(v.len() - 1)]);
    println!(
        "{backend:?}: {} of {count} pages delivered exactly once; trigger to SMTP delivery: \
         median {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        latencies.len(),
        at(&latencies, 50),
        at(&latencies, 90),
        at(&latencies, 99),
        ms(latencies[latencies.len() - 1]),
    );
    println!(
        "{backend:?}: API answers (201): median {:.0} ms, p99 {:.0} ms, all {count} answered after {:.0} ms; \
         wall time from the first trigger to the last mail {:.0} ms (seen by polling after {:.0} ms)",
        at(&answers, 50),
        at(&answers, 99),
        ms(api_done),
        ms(last_arrival.duration_since(first_sent).unwrap_or_default()),
        ms(all_arrived),
    );
    println!(
        "SMTP server: {}; load average (1, 5, 15 min): before {load_before}, after {load_after}; \
         {} transactions or statements carried several writes",
        smtp.name(),
        store.writes_grouped()
    );
    if std::env::var_os("PROFILE").is_some() {
        profile(&db.url, first_sent).await;
    }
}

/// `PROFILE=1`: when the engine finished its jobs of each kind, counted from the first
/// trigger (finish times as the engine's clock wrote them).
async fn profile(url: &str, first: SystemTime) {
    let first: chrono::DateTime<chrono::Utc> = first.into();
    const SQL: &str = "SELECT kind, finished_at FROM jobs WHERE finished_at IS NOT NULL";
    let rows: Vec<(String, chrono::DateTime<chrono::Utc>)> = match Db::connect(url).await.unwrap() {
        Db::Sqlite { read, .. } => sqlx::query_as(SQL).fetch_all(&read).await.unwrap(),
        Db::Postgres(pool, _) => sqlx::query_as(SQL).fetch_all(&pool).await.unwrap(),
    };
    let mut by_kind: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (kind, at) in rows {
        let after = (at - first).num_milliseconds();
        if after >= 0 {
            by_kind.entry(kind).or_default().push(after);
        }
    }
    for (kind, mut v) in by_kind {
        v.sort();
        println!(
            "profile: {} {kind} jobs finished from {} ms to {} ms (median {} ms)",
            v.len(),
            v[0],
            v[v.len() - 1],
            v[v.len() / 2]
        );
    }
}
