//! `heliograph demo`: a realistic organisation so that a newcomer sees every page populated.
//!
//! Teams in Singapore, London and New York (and one engineer in Kathmandu), six AI services
//! with response targets and integrations, a follow-the-sun schedule and a secondary rotation
//! with overrides, escalation policies, and twelve months of history ending now: incidents
//! with timelines, alerts, the pages the scheduler says went to whoever was on call,
//! response-target breaches, postmortems and action items.
//!
//! Everything is drawn from a seeded RNG and placed relative to the store's clock, so two loads
//! at the same instant give the same data. Configuration goes through the store's ordinary
//! functions; history goes through the bulk loaders (`seed_incidents`, `store::demo`).
//! The load refuses, changing nothing, when the database already has teams, services,
//! schedules, policies, incidents or demo users.

use std::collections::HashSet;

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, TimeDelta, Utc, Weekday};
use chrono_tz::Tz;
use heliograph_domain::{
    DisplayName, IncidentStatus, Password, Role, ServiceKind, Severity, TeamName, TimeZone,
    UserEmail, WorkingHours, WorkloadClass,
};
use heliograph_scheduler::{
    Layer, LocalTimeOfDay, Restriction, Rotation, Schedule, ShiftLength, ShiftUnit,
};
use heliograph_store::contacts::{ContactKind, NewContactMethod};
use heliograph_store::demo::{
    DemoActionItem, DemoAlert, DemoBreach, DemoNotification, DemoPostmortem,
};
use heliograph_store::escalation_policies::{Level, PolicyFields, Target};
use heliograph_store::postmortems::{PmTimelineEntry, Sections};
use heliograph_store::schedules::ScheduleFields;
use heliograph_store::seed::{SeedEntry, SeedIncident};
use heliograph_store::services::{ResponseTarget, ResponseTargets, ServiceFields};
use heliograph_store::users::NewUser;
use heliograph_store::{Audit, Store, StoreError};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The email domain of every demo person.
pub const DEMO_DOMAIN: &str = "demo.example";
/// The demo administrator, who signs in with the printed password.
pub const ADMIN_EMAIL: &str = "admin@demo.example";

/// How much to load.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Seed of the RNG: the same seed and clock give the same organisation.
    pub seed: u64,
    /// Incidents over the history.
    pub incidents: usize,
    /// Days of history, ending now.
    pub days: i64,
    /// The admin's password; `None` makes a random one (printed by the command).
    pub admin_password: Option<String>,
    /// Whether incidents get timelines beyond their declaration (benchmarks skip them).
    pub timelines: bool,
    /// Most trigger events stored per alert (the alert's count stays as drawn); benchmarks
    /// lower it so that noisy alerts do not dominate the load.
    pub max_events_per_alert: usize,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            seed: 2026,
            incidents: 1_500,
            days: 365,
            admin_password: None,
            timelines: true,
            max_events_per_alert: usize::MAX,
        }
    }
}

/// What was loaded.
#[derive(Debug, Clone)]
pub struct DemoSummary {
    pub admin_email: String,
    pub admin_password: String,
    pub people: usize,
    /// Service ids by name.
    pub services: Vec<(String, i64)>,
    pub follow_the_sun_id: i64,
    pub secondary_id: i64,
    pub policies: Vec<i64>,
    pub incidents: usize,
    pub alerts: u64,
    pub notifications: u64,
    pub interruptions_classified: u64,
    pub breaches: u64,
    pub postmortems: u64,
    pub action_items: u64,
}

/// Why the demo was not loaded.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The database already has data; nothing was changed.
    #[error(
        "this database already has {0}; the demo loads only into an empty database \
         (nothing was changed). Point HELIOGRAPH_DATABASE_URL at a new database, \
         e.g. sqlite://data/demo.db, and run `heliograph demo` again"
    )]
    NotEmpty(String),
    /// A store call failed part-way.
    #[error("loading the demo failed: {0}")]
    Store(#[from] StoreError),
    /// A built-in value did not validate (a bug in the demo data).
    #[error("demo data is invalid: {0}")]
    Invalid(String),
}

fn invalid(e: impl std::fmt::Display) -> DemoError {
    DemoError::Invalid(e.to_string())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Region {
    Apac,
    Emea,
    Amer,
    Staff,
}

struct PersonSpec {
    name: &'static str,
    local: &'static str,
    zone: &'static str,
    role: Role,
    region: Region,
    /// Working days and hours in the person's zone.
    days: &'static [Weekday],
    start: &'static str,
    end: &'static str,
    secondary: bool,
}

const MON_FRI: &[Weekday] = &[
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
];
const SUN_FRI: &[Weekday] = &[
    Weekday::Sun,
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
];

const fn person(
    name: &'static str,
    local: &'static str,
    zone: &'static str,
    region: Region,
    start: &'static str,
    end: &'static str,
    secondary: bool,
) -> PersonSpec {
    PersonSpec {
        name,
        local,
        zone,
        role: Role::Responder,
        region,
        days: MON_FRI,
        start,
        end,
        secondary,
    }
}

fn people() -> Vec<PersonSpec> {
    use Region::*;
    let sg = "Asia/Singapore";
    let ldn = "Europe/London";
    let ny = "America/New_York";
    vec![
        person(
            "Wei Ling Tan",
            "weiling.tan",
            sg,
            Apac,
            "09:00",
            "18:00",
            true,
        ),
        person(
            "Arjun Menon",
            "arjun.menon",
            sg,
            Apac,
            "09:00",
            "18:00",
            true,
        ),
        person(
            "Siti Rahman",
            "siti.rahman",
            sg,
            Apac,
            "08:30",
            "17:30",
            false,
        ),
        person(
            "Daniel Lim",
            "daniel.lim",
            sg,
            Apac,
            "09:00",
            "18:00",
            false,
        ),
        person("Mei Chen", "mei.chen", sg, Apac, "10:00", "19:00", false),
        PersonSpec {
            days: SUN_FRI,
            ..person(
                "Prakash Shrestha",
                "prakash.shrestha",
                "Asia/Kathmandu",
                Apac,
                "10:00",
                "18:00",
                false,
            )
        },
        person(
            "Olivia Hughes",
            "olivia.hughes",
            ldn,
            Emea,
            "09:00",
            "17:30",
            true,
        ),
        person(
            "Tom Okafor",
            "tom.okafor",
            ldn,
            Emea,
            "08:30",
            "17:00",
            true,
        ),
        person(
            "Priya Patel",
            "priya.patel",
            ldn,
            Emea,
            "09:00",
            "17:30",
            false,
        ),
        person(
            "James Whitfield",
            "james.whitfield",
            ldn,
            Emea,
            "09:30",
            "18:00",
            false,
        ),
        person(
            "Sofia Rossi",
            "sofia.rossi",
            ldn,
            Emea,
            "09:00",
            "17:30",
            false,
        ),
        person(
            "Marcus Johnson",
            "marcus.johnson",
            ny,
            Amer,
            "09:00",
            "17:30",
            true,
        ),
        person(
            "Emily Carter",
            "emily.carter",
            ny,
            Amer,
            "08:30",
            "17:00",
            true,
        ),
        person(
            "Diego Alvarez",
            "diego.alvarez",
            ny,
            Amer,
            "09:00",
            "17:30",
            false,
        ),
        person(
            "Hannah Kim",
            "hannah.kim",
            ny,
            Amer,
            "10:00",
            "18:30",
            false,
        ),
        person(
            "Noah Goldberg",
            "noah.goldberg",
            ny,
            Amer,
            "09:00",
            "17:30",
            false,
        ),
        PersonSpec {
            role: Role::Manager,
            ..person(
                "Rachel Adams",
                "rachel.adams",
                ldn,
                Staff,
                "09:00",
                "17:30",
                false,
            )
        },
        PersonSpec {
            role: Role::Manager,
            ..person(
                "Kenji Watanabe",
                "kenji.watanabe",
                ny,
                Staff,
                "08:00",
                "18:00",
                false,
            )
        },
        PersonSpec {
            role: Role::Viewer,
            ..person(
                "Victoria Lane",
                "victoria.lane",
                ldn,
                Staff,
                "09:00",
                "17:30",
                false,
            )
        },
    ]
}

/// A person as loaded.
#[derive(Clone)]
struct Person {
    id: i64,
    name: String,
    email: String,
    tz: Tz,
    hours: WorkingHours,
    /// (contact method id, address, rule delay minutes), account email first.
    contacts: Vec<(i64, String, i64)>,
}

struct IncidentTemplate {
    title: &'static str,
    key: &'static str,
    /// Index into the service's integrations.
    integration: usize,
    /// Alerts from this source fire again and again before anyone resolves them.
    noisy: bool,
}

const fn tpl(
    title: &'static str,
    key: &'static str,
    integration: usize,
    noisy: bool,
) -> IncidentTemplate {
    IncidentTemplate {
        title,
        key,
        integration,
        noisy,
    }
}

struct ServiceSpec {
    name: &'static str,
    description: &'static str,
    kind: ServiceKind,
    class: WorkloadClass,
    /// Relative share of incidents.
    weight: u32,
    data_team: bool,
    templates: Vec<IncidentTemplate>,
    actions: &'static [&'static str],
}

fn services() -> Vec<ServiceSpec> {
    vec![
        ServiceSpec {
            name: "llm-gateway",
            description: "Routes chat and completion requests to the self-hosted and vendor LLM backends: authentication, per-tenant token budgets, retries, prompt caching.",
            kind: ServiceKind::LlmInference,
            class: WorkloadClass::RealTime,
            weight: 30,
            data_team: false,
            templates: vec![
                tpl("LLM gateway 5xx > 20%", "llm-gateway-5xx-rate", 1, false),
                tpl(
                    "LLM gateway p95 latency > 8 s on /v1/chat/completions",
                    "llm-gateway-latency-p95",
                    1,
                    true,
                ),
                tpl(
                    "Upstream provider rate limiting (429) on the vendor backend",
                    "llm-gateway-upstream-429",
                    0,
                    true,
                ),
                tpl(
                    "Token budget exhausted for tenant acme-support",
                    "llm-gateway-budget-acme",
                    0,
                    false,
                ),
                tpl(
                    "Prompt cache hit rate below 30%",
                    "llm-gateway-cache-hit",
                    1,
                    false,
                ),
                tpl(
                    "GPU node unhealthy in the inference pool (Xid 79)",
                    "gpu-node-unhealthy",
                    1,
                    true,
                ),
                tpl(
                    "Streaming responses truncated after model rollout",
                    "llm-gateway-truncated-streams",
                    0,
                    false,
                ),
            ],
            actions: &[
                "Add a circuit breaker per upstream backend",
                "Alert on 5xx by backend, not only in aggregate",
                "Canary new model versions on 5% of traffic first",
                "Raise the vendor rate limit before launches",
                "Load-test the gateway at 2x peak tokens per second",
            ],
        },
        ServiceSpec {
            name: "embedding-service",
            description: "Turns documents and queries into embeddings for retrieval; batch and online paths share one GPU pool.",
            kind: ServiceKind::LlmInference,
            class: WorkloadClass::RealTime,
            weight: 12,
            data_team: false,
            templates: vec![
                tpl(
                    "Embedding queue backlog > 50k requests",
                    "embedding-backlog",
                    1,
                    true,
                ),
                tpl(
                    "embedding-service OOMKilled on GPU pods",
                    "embedding-oom",
                    1,
                    false,
                ),
                tpl(
                    "Embedding dimension mismatch after model rollout",
                    "embedding-dim-mismatch",
                    0,
                    false,
                ),
                tpl(
                    "embedding-service p99 latency > 1.5 s",
                    "embedding-latency-p99",
                    1,
                    true,
                ),
            ],
            actions: &[
                "Separate the batch and online GPU pools",
                "Check the embedding dimension in the deploy pipeline",
                "Set memory limits from measured peak batch size",
            ],
        },
        ServiceSpec {
            name: "vector-db",
            description: "The vector database behind retrieval-augmented generation: 24 shards, HNSW indexes, nightly compaction.",
            kind: ServiceKind::VectorDb,
            class: WorkloadClass::RealTime,
            weight: 25,
            data_team: false,
            templates: vec![
                tpl(
                    "vector-db p99 query latency > 800 ms",
                    "vector-db-p99-latency",
                    1,
                    true,
                ),
                tpl(
                    "vector-db shard 7 replica lag > 60 s",
                    "vector-db-replica-lag",
                    1,
                    true,
                ),
                tpl(
                    "vector-db disk usage > 90% on node vdb-3",
                    "vector-db-disk",
                    1,
                    false,
                ),
                tpl(
                    "HNSW index rebuild stuck on collection support-kb",
                    "vector-db-index-rebuild",
                    0,
                    false,
                ),
                tpl(
                    "vector-db recall@10 below 0.85 on canary queries",
                    "vector-db-recall",
                    0,
                    false,
                ),
            ],
            actions: &[
                "Alert on compaction duration before it hurts latency",
                "Add disk headroom alerts at 75%",
                "Run recall canaries after every index rebuild",
                "Document the shard rebalancing runbook",
            ],
        },
        ServiceSpec {
            name: "feature-store",
            description: "Online and offline features for ranking and fraud models; streaming ingestion from Kafka.",
            kind: ServiceKind::FeatureStore,
            class: WorkloadClass::RealTime,
            weight: 13,
            data_team: true,
            templates: vec![
                tpl(
                    "feature-store freshness lag > 15 min",
                    "feature-store-freshness",
                    1,
                    true,
                ),
                tpl(
                    "Online feature store read errors > 2%",
                    "feature-store-read-errors",
                    1,
                    false,
                ),
                tpl(
                    "Feature backfill failed for user_activity_daily",
                    "feature-store-backfill",
                    0,
                    false,
                ),
                tpl(
                    "Kafka consumer lag on feature ingestion > 500k",
                    "feature-store-kafka-lag",
                    1,
                    true,
                ),
            ],
            actions: &[
                "Page on freshness per feature group",
                "Make backfills resumable",
                "Add consumer-lag autoscaling for ingestion",
            ],
        },
        ServiceSpec {
            name: "agent-runtime",
            description: "Runs customer-support agents: tool calls, sandboxes, conversation state. Scales on demand.",
            kind: ServiceKind::AgentFramework,
            class: WorkloadClass::OnDemand,
            weight: 12,
            data_team: false,
            templates: vec![
                tpl(
                    "agent-runtime tool-call error rate > 10%",
                    "agent-tool-errors",
                    0,
                    false,
                ),
                tpl(
                    "Agent runs stuck in 'waiting' > 30 min",
                    "agent-stuck-runs",
                    0,
                    true,
                ),
                tpl(
                    "agent-runtime sandbox pool exhausted",
                    "agent-sandbox-pool",
                    1,
                    false,
                ),
                tpl(
                    "Runaway agent loop: token spend 10x normal",
                    "agent-runaway-spend",
                    0,
                    false,
                ),
            ],
            actions: &[
                "Cap tokens per agent run",
                "Time out tool calls after 60 s",
                "Pre-warm the sandbox pool before business hours",
            ],
        },
        ServiceSpec {
            name: "nightly-finetune",
            description: "Nightly fine-tuning of the support model on the day's resolved conversations, then evals and promotion.",
            kind: ServiceKind::DataPipeline,
            class: WorkloadClass::Batch,
            weight: 8,
            data_team: true,
            templates: vec![
                tpl("nightly-finetune OOM on shard 3", "finetune-oom", 0, false),
                tpl(
                    "nightly-finetune heartbeat missed",
                    "finetune-heartbeat",
                    0,
                    false,
                ),
                tpl(
                    "Eval regression after finetune: accuracy -4.2 pts",
                    "finetune-eval-regression",
                    0,
                    false,
                ),
                tpl(
                    "Training data snapshot missing",
                    "finetune-snapshot-missing",
                    0,
                    false,
                ),
                tpl(
                    "Checkpoint upload to object storage failed",
                    "finetune-checkpoint-upload",
                    0,
                    false,
                ),
            ],
            actions: &[
                "Block promotion when evals regress by more than 1 point",
                "Checkpoint every 30 minutes",
                "Validate the training snapshot before the job starts",
            ],
        },
    ]
}

fn targets_for(class: WorkloadClass) -> ResponseTargets {
    let t = |ack: u32, res: u32| ResponseTarget {
        acknowledge_minutes: Some(ack),
        resolve_minutes: Some(res),
    };
    let rows = match class {
        WorkloadClass::RealTime => [t(5, 60), t(15, 240), t(60, 1440), t(480, 4320)],
        WorkloadClass::OnDemand => [t(10, 120), t(30, 480), t(120, 2880), t(480, 10080)],
        WorkloadClass::Batch => [t(15, 240), t(30, 480), t(240, 2880), t(1440, 10080)],
    };
    ResponseTargets(
        [
            Severity::Sev1,
            Severity::Sev2,
            Severity::Sev3,
            Severity::Sev4,
        ]
        .into_iter()
        .zip(rows)
        .collect(),
    )
}

/// A normal sample (Box–Muller).
fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A log-normal duration in seconds with this median (minutes) and spread.
fn lognormal_minutes(rng: &mut StdRng, median: f64, sigma: f64) -> TimeDelta {
    let minutes = median * (sigma * normal(rng)).exp();
    TimeDelta::seconds((minutes * 60.0).round().max(30.0) as i64)
}

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

fn local_time(hhmm: &str) -> Result<LocalTimeOfDay, DemoError> {
    hhmm.parse().map_err(invalid)
}

/// The Monday on or before `date`.
fn monday_of(date: NaiveDate) -> NaiveDate {
    date - Days::new(u64::from(date.weekday().num_days_from_monday()))
}

/// One page to record.
struct Page {
    level: i64,
    person: usize,
    at: DateTime<Utc>,
    created: DateTime<Utc>,
}

/// One incident as planned, before it has an id.
struct Plan {
    service: usize,
    template: usize,
    severity: Severity,
    triggered: DateTime<Utc>,
    acknowledged: Option<DateTime<Utc>>,
    resolved: Option<DateTime<Utc>>,
    acknowledger: Option<usize>,
    commander: Option<usize>,
    pages: Vec<Page>,
    timeline: Vec<SeedEntry>,
}

/// Loads the demo organisation into `store`, or refuses (changing nothing) when the database
/// already has data it would collide with.
pub async fn load(store: &Store, options: &DemoOptions) -> Result<DemoSummary, DemoError> {
    let occupancy = store.demo_occupancy(DEMO_DOMAIN).await?;
    if !occupancy.is_empty() {
        let mut found = Vec::new();
        for (n, what) in [
            (occupancy.teams, "team"),
            (occupancy.services, "service"),
            (occupancy.schedules, "schedule"),
            (occupancy.escalation_policies, "escalation policy"),
            (occupancy.incidents, "incident"),
            (occupancy.demo_users, "demo user"),
        ] {
            if n > 0 {
                found.push(format!("{n} {what}{}", if n == 1 { "" } else { "s" }));
            }
        }
        return Err(DemoError::NotEmpty(found.join(", ")));
    }

    let mut rng = StdRng::seed_from_u64(options.seed);
    let audit = Audit::cli();
    let now = store.now();
    let days = options.days.max(7);
    let start = now - TimeDelta::days(days);

    // The admin first, so that a failure later still leaves a way in.
    let admin_password = match &options.admin_password {
        Some(p) => p.clone(),
        None => random_password(),
    };
    let hash = crate::auth::hash_password(Password::parse(&admin_password).map_err(invalid)?)
        .await
        .map_err(|e| DemoError::Invalid(format!("{e:?}")))?;
    store
        .create_user(
            &NewUser {
                email: UserEmail::parse(ADMIN_EMAIL).map_err(invalid)?,
                name: DisplayName::parse("Demo Admin").map_err(invalid)?,
                time_zone: TimeZone::parse("Europe/London").map_err(invalid)?,
                role: Role::Admin,
                password_hash: Some(hash),
            },
            &audit,
        )
        .await?;

    // People, their working hours and how to reach them.
    let specs = people();
    let mut persons: Vec<Person> = Vec::new();
    for spec in &specs {
        let email = format!("{}@{DEMO_DOMAIN}", spec.local);
        let user = store
            .create_user(
                &NewUser {
                    email: UserEmail::parse(&email).map_err(invalid)?,
                    name: DisplayName::parse(spec.name).map_err(invalid)?,
                    time_zone: TimeZone::parse(spec.zone).map_err(invalid)?,
                    role: spec.role,
                    password_hash: None,
                },
                &audit,
            )
            .await?;
        let hours = WorkingHours::new(
            spec.days.iter().copied(),
            spec.start.parse().map_err(invalid)?,
            spec.end.parse().map_err(invalid)?,
            60,
        )
        .map_err(invalid)?;
        store.set_working_hours(user.id, &hours, &audit).await?;
        store.ensure_default_contact(user.id).await?;
        let mut contacts: Vec<(i64, String, i64)> = Vec::new();
        for method in store.contact_methods_of(user.id).await? {
            contacts.push((method.id, method.address.clone(), 0));
        }
        if spec.role == Role::Responder || spec.role == Role::Manager {
            let phone = store
                .add_contact_method(
                    user.id,
                    &NewContactMethod {
                        kind: ContactKind::Email,
                        address: format!("{}+phone@{DEMO_DOMAIN}", spec.local),
                        label: "phone mail".into(),
                    },
                    &audit,
                )
                .await?;
            store
                .add_notification_rule(user.id, phone.id, 5, &audit)
                .await?;
            contacts.push((phone.id, phone.address, 5));
        }
        persons.push(Person {
            id: user.id,
            name: spec.name.to_owned(),
            email,
            tz: TimeZone::parse(spec.zone).map_err(invalid)?.tz(),
            hours,
            contacts,
        });
    }
    let index_of = |local: &str| {
        specs
            .iter()
            .position(|s| s.local == local)
            .ok_or_else(|| DemoError::Invalid(format!("no demo person {local}")))
    };
    let manager = index_of("rachel.adams")?;
    let head = index_of("kenji.watanabe")?;
    let region = |r: Region| -> Vec<usize> {
        specs
            .iter()
            .enumerate()
            .filter(|(_, s)| s.region == r)
            .map(|(i, _)| i)
            .collect()
    };
    let (apac, emea, amer) = (
        region(Region::Apac),
        region(Region::Emea),
        region(Region::Amer),
    );
    let responders: Vec<usize> = [apac.clone(), emea.clone(), amer.clone()].concat();
    let ids = |idx: &[usize]| idx.iter().map(|&i| persons[i].id).collect::<Vec<i64>>();

    // Teams.
    let mut platform_members = ids(&responders);
    platform_members.extend([persons[manager].id, persons[head].id]);
    let platform = store
        .create_team(
            &TeamName::parse("AI Platform").map_err(invalid)?,
            &platform_members,
            &audit,
        )
        .await?;
    let data_members: Vec<i64> = [
        "priya.patel",
        "diego.alvarez",
        "siti.rahman",
        "rachel.adams",
    ]
    .into_iter()
    .map(|l| index_of(l).map(|i| persons[i].id))
    .collect::<Result<_, _>>()?;
    let data_team = store
        .create_team(
            &TeamName::parse("ML Data Pipelines").map_err(invalid)?,
            &data_members,
            &audit,
        )
        .await?;
    store
        .create_team(
            &TeamName::parse("AI Leadership").map_err(invalid)?,
            &[
                persons[head].id,
                persons[manager].id,
                persons[index_of("victoria.lane")?].id,
            ],
            &audit,
        )
        .await?;

    // Schedules: follow the sun (one layer per region, restricted to local working hours,
    // as the /schedules builder makes them) and an around-the-clock secondary.
    let handoff_date = monday_of((start - TimeDelta::days(14)).date_naive());
    let every_day = vec![
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];
    let weekly = ShiftLength {
        unit: ShiftUnit::Weeks,
        count: 1,
    };
    let mut sun_layers = Vec::new();
    for (name, zone, from, to, members) in [
        ("APAC", chrono_tz::Asia::Singapore, "07:00", "17:00", &apac),
        ("EMEA", chrono_tz::Europe::London, "08:00", "17:00", &emea),
        (
            "AMER",
            chrono_tz::America::New_York,
            "11:00",
            "19:00",
            &amer,
        ),
    ] {
        let start_time = local_time(from)?;
        sun_layers.push(Layer {
            name: name.into(),
            rotation: Rotation {
                participants: ids(members),
                shift: weekly,
                handoff: handoff_date.and_time(
                    NaiveTime::from_num_seconds_from_midnight_opt(
                        u32::from(start_time.minutes()) * 60,
                        0,
                    )
                    .unwrap_or(NaiveTime::MIN),
                ),
                handoff_time_zone: zone,
            },
            restrictions: vec![Restriction {
                days: every_day.clone(),
                start: start_time,
                end: local_time(to)?,
                time_zone: zone,
            }],
        });
    }
    Schedule::new(sun_layers.clone(), Vec::new()).map_err(invalid)?;
    let sun = store
        .create_schedule(
            &ScheduleFields {
                name: "AI platform follow-the-sun".into(),
                time_zone: TimeZone::parse("UTC").map_err(invalid)?,
                team_id: platform.team.id,
                layers: sun_layers.clone(),
            },
            &audit,
        )
        .await?;
    let secondary_people: Vec<usize> = specs
        .iter()
        .enumerate()
        .filter(|(_, s)| s.secondary)
        .map(|(i, _)| i)
        .collect();
    let secondary_layers = vec![Layer {
        name: "Secondary".into(),
        rotation: Rotation {
            participants: ids(&secondary_people),
            shift: weekly,
            handoff: handoff_date.and_time(NaiveTime::from_hms_opt(9, 0, 0).unwrap_or_default()),
            handoff_time_zone: chrono_tz::Europe::London,
        },
        restrictions: Vec::new(),
    }];
    let secondary = store
        .create_schedule(
            &ScheduleFields {
                name: "AI platform secondary".into(),
                time_zone: TimeZone::parse("Europe/London").map_err(invalid)?,
                team_id: platform.team.id,
                layers: secondary_layers.clone(),
            },
            &audit,
        )
        .await?;

    // A few overrides: cover for a sick day last month, a swap next week, a holiday on the
    // secondary.
    let london = chrono_tz::Europe::London;
    let at_local = |tz: Tz, date: NaiveDate, h: u32| {
        heliograph_scheduler::resolve_local(
            tz,
            date.and_time(NaiveTime::from_hms_opt(h, 0, 0).unwrap_or_default()),
        )
    };
    let today_ldn = now.with_timezone(&london).date_naive();
    let mut sun_overrides = Vec::new();
    for (who, date, h_from, h_to) in [
        ("sofia.rossi", today_ldn - Days::new(26), 8, 17),
        ("james.whitfield", today_ldn - Days::new(9), 8, 17),
        ("tom.okafor", today_ldn + Days::new(6), 8, 17),
    ] {
        let o = store
            .create_override(
                sun.id,
                persons[index_of(who)?].id,
                at_local(london, date, h_from),
                at_local(london, date, h_to),
                &[],
                &audit,
            )
            .await?;
        sun_overrides.push(o.to_override());
    }
    let mut secondary_overrides = Vec::new();
    {
        let d = today_ldn - Days::new(60);
        let o = store
            .create_override(
                secondary.id,
                persons[index_of("emily.carter")?].id,
                at_local(london, d, 9),
                at_local(london, d + Days::new(3), 9),
                &[],
                &audit,
            )
            .await?;
        secondary_overrides.push(o.to_override());
    }
    let sun_schedule = Schedule::new(sun_layers, sun_overrides).map_err(invalid)?;
    let secondary_schedule =
        Schedule::new(secondary_layers, secondary_overrides).map_err(invalid)?;

    // Escalation policies.
    let realtime_policy = store
        .create_policy(
            &PolicyFields {
                name: "AI platform real-time".into(),
                team_id: platform.team.id,
                repeat: 1,
                levels: vec![
                    Level {
                        delay_minutes: 10,
                        min_severity: None,
                        targets: vec![Target::schedule(sun.id)],
                    },
                    Level {
                        delay_minutes: 15,
                        min_severity: None,
                        targets: vec![Target::schedule(secondary.id)],
                    },
                    Level {
                        delay_minutes: 15,
                        min_severity: Some(Severity::Sev2),
                        targets: vec![Target::user(persons[head].id)],
                    },
                ],
                low_severity_any_time: false,
            },
            &audit,
        )
        .await?;
    let batch_policy = store
        .create_policy(
            &PolicyFields {
                name: "AI platform batch and agents".into(),
                team_id: platform.team.id,
                repeat: 0,
                levels: vec![
                    Level {
                        delay_minutes: 30,
                        min_severity: None,
                        targets: vec![Target::schedule(sun.id)],
                    },
                    Level {
                        delay_minutes: 30,
                        min_severity: Some(Severity::Sev2),
                        targets: vec![Target::schedule(secondary.id)],
                    },
                    Level {
                        delay_minutes: 15,
                        min_severity: Some(Severity::Sev1),
                        targets: vec![Target::user(persons[head].id)],
                    },
                ],
                low_severity_any_time: false,
            },
            &audit,
        )
        .await?;

    // Services and their integrations.
    let service_specs = services();
    let mut service_ids = Vec::new();
    let mut integrations: Vec<Vec<(i64, String)>> = Vec::new();
    let mut policy_levels: Vec<Vec<(u32, Option<Severity>, u8)>> = Vec::new();
    for s in &service_specs {
        let realtime = s.class == WorkloadClass::RealTime;
        let policy = if realtime {
            &realtime_policy
        } else {
            &batch_policy
        };
        let created = store
            .create_service(
                &ServiceFields {
                    name: s.name.into(),
                    description: s.description.into(),
                    kind: s.kind,
                    workload_class: s.class,
                    team_id: Some(if s.data_team {
                        data_team.team.id
                    } else {
                        platform.team.id
                    }),
                    escalation_policy_id: Some(policy.id),
                    response_targets: targets_for(s.class),
                    grouping_window_minutes: if realtime { 10 } else { 0 },
                    auto_resolve: true,
                    severity_map: Default::default(),
                },
                &audit,
            )
            .await?;
        service_ids.push(created.id);
        // Levels as (delay, min severity, target: 0 follow-the-sun, 1 secondary, 2 head).
        policy_levels.push(
            policy
                .levels
                .iter()
                .map(|l| {
                    let target = match l.targets.first() {
                        Some(t) if *t == Target::schedule(sun.id) => 0,
                        Some(t) if *t == Target::schedule(secondary.id) => 1,
                        _ => 2,
                    };
                    (l.delay_minutes, l.min_severity, target)
                })
                .collect(),
        );
        let mut list = Vec::new();
        let kinds: &[(&str, &str, Option<i64>)] = if s.class == WorkloadClass::Batch {
            &[
                ("events_v2", "Airflow failure callbacks", None),
                ("heartbeat", "Nightly run heartbeat", Some(26 * 3600)),
            ]
        } else {
            &[
                ("events_v2", "Datadog monitors", None),
                ("alertmanager", "Prometheus (prod)", None),
            ]
        };
        for (kind, name, interval) in kinds {
            let (_, hash, prefix) = crate::pages::alerts::new_key();
            let integration = store
                .create_integration(
                    &heliograph_store::alerts::NewIntegration {
                        service_id: created.id,
                        kind,
                        name,
                        key_hash: &hash,
                        key_prefix: &prefix,
                        heartbeat_interval_seconds: *interval,
                    },
                    &audit,
                )
                .await?;
            list.push((integration.id, integration.name));
        }
        integrations.push(list);
    }

    // History: plan every incident first (times, who was paged, who acknowledged).
    let person_at = |id: i64| persons.iter().position(|p| p.id == id);
    let weights: Vec<u32> = service_specs.iter().map(|s| s.weight).collect();
    let total_weight: u32 = weights.iter().sum();
    let span = (now - TimeDelta::hours(6) - start).num_seconds().max(1);
    let mut times: Vec<DateTime<Utc>> = Vec::with_capacity(options.incidents);
    while times.len() < options.incidents {
        let t = start + TimeDelta::seconds(rng.random_range(0..span));
        // Fewer incidents at weekends (less traffic, fewer deploys).
        let weekend = matches!(t.weekday(), Weekday::Sat | Weekday::Sun);
        if weekend && rng.random_bool(0.45) {
            continue;
        }
        times.push(t);
    }
    times.sort();
    let open_count = 3.min(times.len());
    let n = times.len();
    for (k, t) in times.iter_mut().enumerate().skip(n - open_count) {
        *t = now - TimeDelta::minutes(35 + 90 * (n - 1 - k) as i64);
    }

    let mut plans: Vec<Plan> = Vec::with_capacity(n);
    for (k, &triggered) in times.iter().enumerate() {
        let open = k >= n - open_count;
        let mut roll = rng.random_range(0..total_weight);
        let mut service = 0;
        for (i, w) in weights.iter().enumerate() {
            if roll < *w {
                service = i;
                break;
            }
            roll -= w;
        }
        if open {
            // Different services, so the open alerts have different keys.
            service = [0, 2, 3][n - 1 - k];
        }
        let spec = &service_specs[service];
        let template = rng.random_range(0..spec.templates.len());
        let p: f64 = rng.random();
        let severity = if p < 0.03 {
            Severity::Sev1
        } else if p < 0.15 {
            Severity::Sev2
        } else if p < 0.50 {
            Severity::Sev3
        } else {
            Severity::Sev4
        };
        // Responses get faster over the year (runbooks, better alerts): from 1.35x to 0.75x.
        let progress = (triggered - start).num_seconds() as f64 / span as f64;
        let trend = 1.35 - 0.6 * progress.clamp(0.0, 1.0);
        let (ack_median, res_median) = match severity {
            Severity::Sev1 => (2.5, 55.0),
            Severity::Sev2 => (4.0, 130.0),
            Severity::Sev3 => (5.0, 380.0),
            Severity::Sev4 => (7.0, 1500.0),
        };

        // The first page: SEV1/SEV2 at once; SEV3/SEV4 wait for the on-call person's working
        // hours (the policies do not page low severities at any hour).
        let levels = &policy_levels[service];
        let on_call = |level: u8, at: DateTime<Utc>| -> Option<usize> {
            match level {
                0 => sun_schedule.on_call_at(at).participant.and_then(person_at),
                1 => secondary_schedule
                    .on_call_at(at)
                    .participant
                    .and_then(person_at),
                _ => Some(head),
            }
        };
        let mut pages = Vec::new();
        let declared = triggered + TimeDelta::seconds(rng.random_range(5..40));
        let first_person = on_call(0, declared);
        let first_at = match (severity, first_person) {
            (Severity::Sev3 | Severity::Sev4, Some(p)) => {
                persons[p].hours.available_from(declared, persons[p].tz)
            }
            _ => declared,
        };
        let missed = rng.random_bool(0.05);
        let ack_delay = if missed {
            TimeDelta::minutes(rng.random_range(11..45))
        } else {
            lognormal_minutes(&mut rng, ack_median * trend, 0.6)
        };
        let mut acknowledged = Some(first_at + ack_delay);
        if open && k == n - 1 {
            acknowledged = None;
        }
        // Walk the policy's levels until the acknowledgement.
        let mut level_at = first_at;
        let mut acknowledger = None;
        for (i, (delay, min, target)) in levels.iter().enumerate() {
            if min.is_some_and(|m| !severity.at_least(m)) {
                continue;
            }
            if acknowledged.is_some_and(|a| a <= level_at) || level_at > now {
                break;
            }
            if let Some(p) = on_call(*target, level_at) {
                pages.push(Page {
                    level: i as i64,
                    person: p,
                    at: level_at,
                    created: if i == 0 { declared } else { level_at },
                });
                acknowledger = Some(p);
            }
            level_at += TimeDelta::minutes(i64::from(*delay));
        }
        if acknowledged.is_none() {
            acknowledger = None;
        } else if acknowledger.is_none() {
            acknowledger = Some(*pick(&mut rng, &responders));
        }
        let resolved = if open {
            None
        } else {
            let base = acknowledged.unwrap_or(triggered);
            let r = triggered + lognormal_minutes(&mut rng, res_median * trend, 0.8);
            Some(r.max(base + TimeDelta::minutes(rng.random_range(2..15))))
        }
        .map(|r| r.min(now - TimeDelta::minutes(5)));
        let commander = match severity {
            Severity::Sev1 if rng.random_bool(0.3) => Some(manager),
            Severity::Sev4 if rng.random_bool(0.5) => None,
            _ => acknowledger,
        };
        plans.push(Plan {
            service,
            template,
            severity,
            triggered,
            acknowledged,
            resolved,
            acknowledger,
            commander,
            pages,
            timeline: Vec::new(),
        });
    }

    // Timelines, then the incidents in bulk.
    let tpl_of = |p: &Plan| &service_specs[p.service].templates[p.template];
    let mut seeds = Vec::with_capacity(plans.len());
    for plan in &mut plans {
        let spec = &service_specs[plan.service];
        let template = &spec.templates[plan.template];
        let (_, integration_name) = &integrations[plan.service][template
            .integration
            .min(integrations[plan.service].len() - 1)];
        let mut timeline = vec![SeedEntry {
            at: plan.triggered,
            actor: "monitoring".into(),
            kind: "alert".into(),
            body: format!(
                "Alert opened: {} (from {integration_name}).",
                template.title
            ),
            body_html: String::new(),
        }];
        for page in &plan.pages {
            let who = &persons[page.person];
            timeline.push(SeedEntry {
                at: page.created,
                actor: "Heliograph".into(),
                kind: "escalation".into(),
                body: format!("Escalation level {}: paging {}.", page.level + 1, who.name),
                body_html: String::new(),
            });
            timeline.push(SeedEntry {
                at: page.at + TimeDelta::seconds(4),
                actor: "Heliograph".into(),
                kind: "notification".into(),
                body: format!("Paged {} by email ({}).", who.name, who.email),
                body_html: String::new(),
            });
        }
        if let (Some(at), Some(p)) = (plan.acknowledged, plan.acknowledger) {
            timeline.push(SeedEntry {
                at,
                actor: persons[p].email.clone(),
                kind: "acknowledged".into(),
                body: format!("Acknowledged by {}", persons[p].email),
                body_html: String::new(),
            });
            if matches!(plan.severity, Severity::Sev1 | Severity::Sev2) {
                let body = format!(
                    "**Investigating.** {} is degraded; we are looking at recent deploys and upstream dependencies of `{}`.",
                    spec.name, spec.name
                );
                timeline.push(SeedEntry {
                    at: at + TimeDelta::minutes(3),
                    actor: persons[p].email.clone(),
                    kind: "status_update".into(),
                    body_html: crate::markdown::render(&body),
                    body,
                });
                let note = format!(
                    "Rolled back the last change to `{}`; watching the dashboards.",
                    spec.name
                );
                let note_at = plan
                    .resolved
                    .map(|r| at + (r - at) / 2)
                    .unwrap_or(at + TimeDelta::minutes(10));
                timeline.push(SeedEntry {
                    at: note_at,
                    actor: persons[p].email.clone(),
                    kind: "note".into(),
                    body_html: crate::markdown::render(&note),
                    body: note,
                });
            }
        }
        if let Some(at) = plan.resolved {
            let who = plan
                .acknowledger
                .map(|p| persons[p].email.clone())
                .unwrap_or_else(|| "monitoring".into());
            timeline.push(SeedEntry {
                at,
                actor: who.clone(),
                kind: "resolved".into(),
                body: format!("Resolved by {who}"),
                body_html: String::new(),
            });
        }
        timeline.sort_by_key(|e| e.at);
        if !options.timelines {
            timeline.clear();
        }
        plan.timeline = timeline.clone();
        let description = format!(
            "{} on **{}** ({}). Opened from {integration_name}.",
            template.title, spec.name, spec.description
        );
        seeds.push(SeedIncident {
            title: template.title.to_owned(),
            description_html: crate::markdown::render(&description),
            description,
            severity: plan.severity,
            status: match (plan.acknowledged, plan.resolved) {
                (_, Some(_)) => IncidentStatus::Resolved,
                (Some(_), None) => IncidentStatus::Acknowledged,
                (None, None) => IncidentStatus::Triggered,
            },
            commander_id: plan.commander.map(|p| persons[p].id),
            service_ids: vec![service_ids[plan.service]],
            triggered_at: plan.triggered,
            acknowledged_at: plan.acknowledged,
            resolved_at: plan.resolved,
            timeline,
        });
    }
    let numbers = store.seed_incidents(&seeds, &audit).await?;
    drop(seeds);
    let id_of = store.incident_ids_by_number().await?;
    let incident_ids: Vec<i64> = numbers
        .iter()
        .map(|n| {
            id_of
                .get(n)
                .copied()
                .ok_or_else(|| DemoError::Invalid(format!("incident #{n} vanished")))
        })
        .collect::<Result<_, _>>()?;

    // Alerts, pages and breaches.
    let mut alerts = Vec::new();
    let mut seen_keys: HashSet<(i64, String, DateTime<Utc>)> = HashSet::new();
    let mut notifications = Vec::new();
    let mut breaches = Vec::new();
    for (k, plan) in plans.iter().enumerate() {
        let id = incident_ids[k];
        let number = numbers[k];
        let spec = &service_specs[plan.service];
        let template = tpl_of(plan);
        let list = &integrations[plan.service];
        let mut sources = vec![template];
        if plan.severity == Severity::Sev1 && spec.templates.len() > 1 {
            let other = (plan.template + 1) % spec.templates.len();
            sources.push(&spec.templates[other]);
        }
        for (j, t) in sources.into_iter().enumerate() {
            let (integration_id, integration_name) = &list[t.integration.min(list.len() - 1)];
            let mut first = plan.triggered - TimeDelta::seconds(30) + TimeDelta::minutes(j as i64);
            while !seen_keys.insert((*integration_id, t.key.to_owned(), first)) {
                first += TimeDelta::seconds(1);
            }
            let end = plan
                .resolved
                .unwrap_or(now)
                .max(first + TimeDelta::seconds(1));
            let count: i64 = if t.noisy {
                // Noisy sources re-fire every evaluation interval until fixed.
                rng.random_range(8..=240)
            } else {
                rng.random_range(1..=4)
            };
            let step = (end - first) / (count as i32).max(1);
            let mut events: Vec<(DateTime<Utc>, &'static str)> = (0..count)
                .take(options.max_events_per_alert)
                .map(|c| (first + step * c as i32, "trigger"))
                .collect();
            let last_seen = first + step * (count - 1) as i32;
            let status = match (plan.resolved, plan.acknowledged) {
                (Some(r), _) => {
                    events.push((r, "resolve"));
                    "resolved"
                }
                (None, Some(_)) => "acknowledged",
                (None, None) => "triggered",
            };
            let severity = match plan.severity {
                Severity::Sev1 => "critical",
                Severity::Sev2 => "error",
                Severity::Sev3 => "warning",
                Severity::Sev4 => "info",
            };
            let source = if integration_name.starts_with("Prometheus") {
                "prometheus"
            } else if integration_name.starts_with("Airflow") {
                "airflow"
            } else {
                "datadog"
            };
            let payload = serde_json::json!({
                "summary": t.title,
                "severity": severity,
                "source": format!("{source}/{}", spec.name),
                "dedup_key": t.key,
                "component": spec.name,
            })
            .to_string();
            alerts.push(DemoAlert {
                integration_id: *integration_id,
                service_id: service_ids[plan.service],
                incident_id: Some(id),
                dedup_key: t.key.to_owned(),
                status,
                summary: t.title.to_owned(),
                source: Some(format!("{source}/{}", spec.name)),
                severity,
                count,
                payload,
                first_seen_at: first,
                last_seen_at: last_seen,
                resolved_at: plan.resolved,
                events,
            });
        }
        for page in &plan.pages {
            let who = &persons[page.person];
            for (method_id, address, delay) in &who.contacts {
                let due = page.at + TimeDelta::minutes(*delay);
                if *delay > 0 && plan.acknowledged.is_none_or(|a| a <= due) {
                    continue;
                }
                if due > now {
                    continue;
                }
                notifications.push(DemoNotification {
                    idempotency_key: format!(
                        "demo:page:{id}:{}:{}:{method_id}",
                        page.level, who.id
                    ),
                    incident_id: Some(id),
                    user_id: Some(who.id),
                    contact_method_id: Some(*method_id),
                    purpose: "page",
                    channel: "email",
                    address: address.clone(),
                    subject: format!("[{}] #{number} {}", plan.severity, template.title),
                    level: Some(page.level),
                    repeat_no: Some(0),
                    state: "sent",
                    attempts: 1,
                    created_at: if *delay == 0 { page.created } else { due },
                    due_at: due,
                    sent_at: Some(due + TimeDelta::seconds(rng.random_range(2..20))),
                });
            }
        }
        if let Some(target) = targets_for(spec.class).get(plan.severity) {
            let checks = [
                ("acknowledge", target.acknowledge_minutes, plan.acknowledged),
                ("resolve", target.resolve_minutes, plan.resolved),
            ];
            for (kind, minutes, done) in checks {
                let Some(minutes) = minutes else { continue };
                let due = plan.triggered + TimeDelta::minutes(i64::from(minutes));
                if done.unwrap_or(now) > due && due <= now {
                    breaches.push(DemoBreach {
                        incident_id: id,
                        service_id: service_ids[plan.service],
                        kind,
                        target_minutes: i64::from(minutes),
                        breached_at: due,
                    });
                }
            }
        }
    }
    let alert_count = store.load_alerts(&alerts, &audit).await?;
    drop(alerts);
    let notification_count = store.load_notifications(&notifications, &audit).await?;
    drop(notifications);
    let classified = store.classify_pending_interruptions().await?;
    let breach_count = store.load_breaches(&breaches, &audit).await?;

    // Postmortems for most resolved SEV1/SEV2 incidents.
    let today = now.date_naive();
    let mut postmortems = Vec::new();
    for (k, plan) in plans.iter().enumerate() {
        let Some(resolved) = plan.resolved else {
            continue;
        };
        if !matches!(plan.severity, Severity::Sev1 | Severity::Sev2)
            || now - resolved < TimeDelta::hours(6)
            || rng.random_bool(0.08)
        {
            continue;
        }
        let spec = &service_specs[plan.service];
        let template = tpl_of(plan);
        let owner = plan.commander.or(plan.acknowledger).unwrap_or(manager);
        let created = resolved + TimeDelta::minutes(rng.random_range(30..360));
        let age = now - resolved;
        let late = rng.random_bool(0.2);
        let publish_after = if late {
            TimeDelta::days(rng.random_range(10..26))
        } else {
            lognormal_minutes(&mut rng, 4.0 * 1440.0, 0.4)
        };
        let mut published = Some(resolved + publish_after).filter(|p| *p < now);
        let mut status = "published";
        if published.is_none() || age < TimeDelta::days(4) {
            published = None;
            status = if rng.random_bool(0.5) {
                "in_review"
            } else {
                "draft"
            };
        } else {
            let r: f64 = rng.random();
            if r < 0.06 {
                published = None;
                status = "in_review";
            } else if r < 0.12 {
                published = None;
                status = "draft";
            }
        }
        let submitted = created + TimeDelta::hours(rng.random_range(20..70));
        let owner_p = &persons[owner];
        let mut history = vec![(
            created,
            Some(owner_p.id),
            owner_p.email.clone(),
            "created",
            String::new(),
        )];
        let mut reviewers = Vec::new();
        let updated = match published {
            Some(p) => {
                let submitted = submitted.min(p - TimeDelta::hours(2));
                history.push((
                    submitted,
                    Some(owner_p.id),
                    owner_p.email.clone(),
                    "submitted",
                    String::new(),
                ));
                for r in [head, manager] {
                    let at = p - TimeDelta::minutes(rng.random_range(10..90));
                    reviewers.push((persons[r].id, "approved", Some(at)));
                    history.push((
                        at,
                        Some(persons[r].id),
                        persons[r].email.clone(),
                        "approved",
                        "Clear and blameless; thanks.".into(),
                    ));
                }
                history.push((
                    p,
                    Some(owner_p.id),
                    owner_p.email.clone(),
                    "published",
                    String::new(),
                ));
                p
            }
            None if status == "in_review" => {
                let submitted = submitted.min(now - TimeDelta::minutes(30)).max(created);
                history.push((
                    submitted,
                    Some(owner_p.id),
                    owner_p.email.clone(),
                    "submitted",
                    String::new(),
                ));
                reviewers.push((persons[head].id, "pending", None));
                reviewers.push((persons[manager].id, "pending", None));
                submitted
            }
            None => created,
        };
        history.sort_by_key(|h| h.0);
        let mut items = Vec::new();
        if status != "draft" || rng.random_bool(0.5) {
            for title in spec.actions.iter().take(rng.random_range(1..=3)) {
                let item_created = created + TimeDelta::hours(rng.random_range(1..30));
                let due = item_created.date_naive() + Days::new(rng.random_range(14..45));
                let item_status = if due < today {
                    let r: f64 = rng.random();
                    if r < 0.70 {
                        "done"
                    } else if r < 0.78 {
                        "wont_do"
                    } else if r < 0.85 {
                        "in_progress"
                    } else {
                        "open"
                    }
                } else {
                    *pick(&mut rng, &["open", "open", "in_progress", "done"])
                };
                items.push(DemoActionItem {
                    title: title.to_string(),
                    owner_id: Some(persons[*pick(&mut rng, &responders)].id),
                    due_date: Some(due),
                    priority: ["high", "medium", "medium", "low"][rng.random_range(0..4)],
                    status: item_status,
                    created_at: item_created,
                    updated_at: item_created.max(updated),
                });
            }
        }
        let fill = status != "draft" || rng.random_bool(0.5);
        postmortems.push(DemoPostmortem {
            incident_id: incident_ids[k],
            owner_id: Some(owner_p.id),
            status,
            title: format!("Postmortem: {}", template.title),
            sections: sections_for(spec, plan, template.title, fill),
            timeline: plan
                .timeline
                .iter()
                .map(|e| PmTimelineEntry {
                    at: e.at,
                    text: e.body.clone(),
                    kept: e.kind != "notification",
                })
                .collect(),
            created_at: created,
            updated_at: updated,
            published_at: published,
            reviewers,
            history,
            action_items: items,
        });
    }
    let (pm_count, item_count) = store.load_postmortems(&postmortems, &audit).await?;

    Ok(DemoSummary {
        admin_email: ADMIN_EMAIL.into(),
        admin_password,
        people: persons.len() + 1,
        services: service_specs
            .iter()
            .zip(&service_ids)
            .map(|(s, id)| (s.name.to_owned(), *id))
            .collect(),
        follow_the_sun_id: sun.id,
        secondary_id: secondary.id,
        policies: vec![realtime_policy.id, batch_policy.id],
        incidents: numbers.len(),
        alerts: alert_count,
        notifications: notification_count,
        interruptions_classified: classified,
        breaches: breach_count,
        postmortems: pm_count,
        action_items: item_count,
    })
}

/// The sections of a postmortem, filled from the incident (or mostly empty for an early draft).
fn sections_for(spec: &ServiceSpec, plan: &Plan, title: &str, fill: bool) -> Sections {
    let minutes = |a: Option<DateTime<Utc>>| {
        a.map(|a| (a - plan.triggered).num_minutes())
            .unwrap_or_default()
    };
    let mut s = Sections {
        summary: format!(
            "On {}, **{}** ({}) for {} minutes: {title}.",
            plan.triggered.format("%Y-%m-%d"),
            spec.name,
            plan.severity,
            minutes(plan.resolved)
        ),
        ..Sections::default()
    };
    if !fill {
        return s;
    }
    s.customer_impact = match spec.kind {
        ServiceKind::LlmInference => "Support assistants answered slowly or with errors; about 8% of conversations fell back to human agents.".into(),
        ServiceKind::VectorDb => "Retrieval returned stale or no context; answer quality dropped on knowledge-base questions.".into(),
        ServiceKind::FeatureStore => "Ranking and fraud models scored with stale features; no data was lost.".into(),
        ServiceKind::AgentFramework => "Some agent runs stalled and customers waited for replies; a few were retried by hand.".into(),
        _ => "The nightly model was not promoted; production kept serving the previous day's model.".into(),
    };
    s.root_cause = format!(
        "A change to `{}` combined with peak traffic exhausted a shared resource. Contributing: the alert fired on a symptom, not the cause, and the runbook step for this case was missing.",
        spec.name
    );
    s.detection = format!(
        "Detected by monitoring; acknowledged after {} minutes.",
        minutes(plan.acknowledged)
    );
    s.resolution =
        "Rolled back the change, drained the affected nodes and confirmed recovery on the dashboards."
            .into();
    s.went_well = "- Paging reached the on-call engineer at once\n- The rollback was quick and well practised".into();
    s.went_badly =
        "- The first alert pointed at the wrong component\n- The status page was updated late"
            .into();
    s.lucky = "The incident started outside the busiest hour of the day.".into();
    s.lessons =
        "Alert on causes (saturation, queue depth), not only on error rates; keep runbooks next to alerts."
            .into();
    if matches!(
        spec.kind,
        ServiceKind::LlmInference | ServiceKind::VectorDb | ServiceKind::DataPipeline
    ) {
        s.ai_model_version = match spec.kind {
            ServiceKind::VectorDb => "support-kb index v2026.03 (HNSW, M=32)".into(),
            _ => "support-assistant-8b, finetune of the previous night".into(),
        };
        s.ai_eval_before = "Answer accuracy 87.1% on the support eval set.".into();
        s.ai_eval_after = "Answer accuracy 87.4% after the fix.".into();
    }
    s
}

/// A password for the demo admin: 20 random letters and digits.
fn random_password() -> String {
    const CHARS: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}
