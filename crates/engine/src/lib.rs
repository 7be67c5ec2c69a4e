//! Heliograph's engine: the background work that makes it a pager. It runs inside `serve`,
//! takes due jobs from the database queue (see `heliograph_store::jobs`) and runs them:
//!
//! - `escalate`: one level of an incident's escalation policy — resolve the level's targets
//!   (schedules to whoever is on call at that instant), record a notification per person and
//!   notification rule, and enqueue the next level after the level's delay;
//! - `deliver`: send one notification by email or webhook; temporary failures retry with
//!   exponential backoff and jitter, permanent ones (or too many attempts) fail visibly;
//! - `target_check`: record a response-target breach when an incident is still not
//!   acknowledged (or resolved) when its service's target runs out;
//! - `handoff_scan` (every five minutes) and `action_item_reminders` (hourly): handoff notices,
//!   and one reminder to the owner of each postmortem action item that fell overdue.
//!
//! Every step is applied in one transaction with finishing its job; notifications carry an
//! idempotency key. A crash before the commit leaves the job to run again after its lease; a
//! second replica cannot claim a leased job. The one window left is a crash after the SMTP
//! server accepted a message and before the commit: that message is sent again (at least
//! once, never lost).

#![deny(unsafe_code)]

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use heliograph_domain::{IncidentStatus, Severity, WorkingHours};
use heliograph_notify::{Channel, Message, SendError};
use heliograph_scheduler::Schedule;
use heliograph_store::jobs::{Job, NewJob};
use heliograph_store::paging::{
    self, Delivery, EscalationContext, Known, NewActionToken, NewNotification, Notification,
    PageContact, PagedPerson, Step,
};
use heliograph_store::team_channels::TeamChannel;
use heliograph_store::{Store, StoreError, team_channels};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use rand::Rng;
use serde::Deserialize;
use tokio::sync::Notify;

mod render;

/// What the jobs of one claim read together instead of each on its own: the escalation
/// contexts of their incidents (one query, before they start), and each schedule with its
/// overrides and each person with their contact rules (read by the first step that needs
/// them, then shared). In a storm every step pages the same schedule's person, and a claim
/// holds up to [`CONCURRENCY`] steps: their reads of the same rows become one. The claim's
/// jobs start together, so what they share is a few milliseconds old at most; whether the
/// incident is still triggered is checked again where it matters, when the step is applied
/// (no page is handed straight to a worker after an acknowledgement).
#[derive(Default)]
struct Shared {
    contexts: HashMap<i64, EscalationContext>,
    schedules: tokio::sync::Mutex<HashMap<i64, Arc<tokio::sync::OnceCell<Option<ScheduleRead>>>>>,
    people: tokio::sync::Mutex<HashMap<i64, Arc<tokio::sync::OnceCell<Option<PersonRead>>>>>,
}

/// A schedule as [`Shared`] keeps it: built (or why it could not be), and its name.
type ScheduleRead = (std::result::Result<Schedule, String>, String);
/// A person to page and how to reach them.
type PersonRead = (PagedPerson, Vec<PageContact>);

/// How long a claimed job is leased before another worker may take it over.
pub const LEASE: TimeDelta = TimeDelta::seconds(120);
/// Delivery attempts before a notification is marked failed.
pub const MAX_ATTEMPTS: i64 = 8;
/// How often the handoff scan runs (and how far ahead of a lead time it looks).
pub const HANDOFF_SCAN_PERIOD: TimeDelta = TimeDelta::minutes(5);
/// How often overdue action items are looked for (one reminder each, however often).
pub const REMINDER_PERIOD: TimeDelta = TimeDelta::hours(1);
/// Jobs one engine runs at once.
pub const CONCURRENCY: usize = 64;
/// How long acknowledge/resolve links in emails work.
pub const LINK_LIFETIME: TimeDelta = TimeDelta::hours(24);

/// Where messages go, by channel kind.
#[derive(Clone)]
pub struct Channels {
    pub email: Arc<dyn Channel>,
    pub webhook: Arc<dyn Channel>,
    pub slack: Arc<dyn Channel>,
}

/// The engine's metrics, registered by the web application into its `/metrics` registry.
#[derive(Clone, Debug)]
pub struct Stats {
    /// Jobs run, by kind.
    pub jobs: Family<KindLabel, Counter>,
    /// Seconds from a job's due time to its start.
    pub job_latency: Histogram,
    /// Delivery outcomes: sent, retried, failed, cancelled.
    pub deliveries: Family<OutcomeLabel, Counter>,
}

/// A job kind label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

/// A delivery outcome label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
    pub channel: String,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            jobs: Family::default(),
            job_latency: Histogram::new([
                0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 15.0, 60.0, 300.0,
            ]),
            deliveries: Family::default(),
        }
    }
}

impl Stats {
    fn delivery(&self, outcome: &'static str, channel: &str) {
        self.deliveries
            .get_or_create(&OutcomeLabel {
                outcome,
                channel: channel.to_owned(),
            })
            .inc();
    }
}

/// The engine: one per process; several processes may share a PostgreSQL database.
#[derive(Clone)]
pub struct Engine {
    store: Store,
    channels: Channels,
    base_url: String,
    worker: String,
    wake: Arc<Notify>,
    stats: Stats,
}

#[derive(Debug, Deserialize)]
struct EscalatePayload {
    incident_id: i64,
    epoch: i64,
    level: i64,
    repeat: i64,
}

#[derive(Debug, Deserialize)]
struct DeliverPayload {
    notification_id: i64,
}

#[derive(Debug, Deserialize)]
struct HeartbeatPayload {
    integration_id: i64,
}

#[derive(Debug, Deserialize)]
struct TargetPayload {
    incident_id: i64,
    service_id: i64,
    kind: String,
    minutes: i64,
}

/// One level of a policy, as stored.
#[derive(Debug, Clone, Deserialize)]
struct Level {
    delay_minutes: i64,
    #[serde(default)]
    min_severity: Option<Severity>,
    targets: Vec<Target>,
}

#[derive(Debug, Clone, Deserialize)]
struct Target {
    #[serde(rename = "type")]
    kind: String,
    id: i64,
}

/// How the escalation step delivers one of its notifications at once. (No `Debug`: the
/// links are secrets.)
#[derive(Clone)]
enum Direct {
    /// A page to a person, with their name (for the timeline) and one-time links.
    Person {
        name: String,
        time_zone: String,
        links: Option<render::Links>,
    },
    /// A post to a team channel (no links).
    Channel(TeamChannel),
    /// Not due now: its `deliver` job runs when it is due.
    Later,
}

/// Why a job could not run (logged; the job runs again after its lease).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How action-link tokens are stored: the one hash every secret uses.
pub use heliograph_domain::hash_secret as hash_token;

fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Exponential backoff with jitter: about 15 s, 30 s, 1 min, … capped at 15 minutes.
pub fn backoff(attempt: i64) -> TimeDelta {
    let base = 15_i64.saturating_mul(1_i64 << attempt.clamp(0, 6));
    let capped = base.min(900);
    let jitter = rand::rng().random_range(0..=capped / 4 + 1);
    TimeDelta::seconds(capped + jitter)
}

impl Engine {
    /// An engine over `store` sending through `channels`; links in messages start with
    /// `base_url`. `worker` names this process in job leases (host and pid, say).
    pub fn new(store: Store, channels: Channels, base_url: &str, worker: String) -> Engine {
        Engine {
            store,
            channels,
            base_url: base_url.trim_end_matches('/').to_owned(),
            worker,
            wake: Arc::new(Notify::new()),
            stats: Stats::default(),
        }
    }

    /// Wakes the engine now (e.g. right after an incident is declared), instead of at its
    /// next poll.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// The engine's counters.
    pub fn stats(&self) -> Stats {
        self.stats.clone()
    }

    /// Runs until `shutdown` completes: due jobs at once, then sleeps until the next job is
    /// due, a wake-up, or a second (other replicas may have enqueued work).
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        // Pages sent before interruptions were classified (or bulk-loaded) are classified
        // once at start; new ones are classified as they are sent.
        if let Err(e) = self.store.classify_pending_interruptions().await {
            tracing::warn!(error = %e, "classifying earlier pages as interruptions failed");
        }
        loop {
            if let Err(e) = self.run_due().await {
                tracing::warn!(error = %e, "engine pass failed; retrying shortly");
            }
            let pause = match self.store.next_job_at().await {
                Ok(Some(at)) => (at - self.store.now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .min(Duration::from_secs(1)),
                _ => Duration::from_secs(1),
            };
            tokio::select! {
                _ = &mut shutdown => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(pause.max(Duration::from_millis(20))) => {}
            }
        }
        tracing::info!("engine stopped");
    }

    /// Runs every job due now until none is left, up to [`CONCURRENCY`] at a time: whenever
    /// a quarter of the slots are free, due jobs are claimed to fill them, so a slow job (a
    /// delivery waiting for the SMTP server) never holds up the claiming of the next ones.
    /// Returns how many jobs ran. Tests call this with a fixed clock.
    pub async fn run_due(&self) -> Result<usize, EngineError> {
        self.schedule_handoff_scan().await?;
        self.schedule_periodic("action_item_reminders", REMINDER_PERIOD)
            .await?;
        let mut total = 0;
        // Spawned, not merely polled here: a job holding a transaction must keep running
        // while this loop waits for its next claim.
        let mut running = tokio::task::JoinSet::new();
        loop {
            let free = CONCURRENCY - running.len();
            if free >= CONCURRENCY / 4 {
                let jobs = match self
                    .store
                    .claim_jobs(&self.worker, LEASE, free as i64)
                    .await
                {
                    Ok(jobs) => jobs,
                    Err(e) if running.is_empty() => return Err(e.into()),
                    Err(e) => {
                        tracing::warn!(error = %e, "claiming jobs failed; finishing the running ones");
                        Vec::new()
                    }
                };
                if jobs.is_empty() && running.is_empty() {
                    return Ok(total);
                }
                total += jobs.len();
                let shared = Arc::new(self.shared_reads(&jobs).await);
                for job in jobs {
                    let engine = self.clone();
                    let shared = shared.clone();
                    running.spawn(async move {
                        let latency = (engine.store.now() - job.run_at).num_milliseconds().max(0);
                        engine.count_job(&job.kind, latency);
                        if let Err(e) = engine.run_job(&job, &shared).await {
                            tracing::warn!(job = job.id, kind = %job.kind, error = %e, "job failed; it runs again after its lease");
                        }
                    });
                }
            }
            // Wait for a slot, but claim again on a wake-up (new work) or after a second,
            // so one slow job does not hold up the work that arrives meanwhile.
            tokio::select! {
                done = running.join_next() => {
                    if let Some(Err(e)) = done {
                        tracing::error!(error = %e, "an engine job panicked; it runs again after its lease");
                    }
                }
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// What the escalation steps among `jobs` (one claim) can read together: their incidents'
    /// contexts, in one query. If that read fails, each step reads its own.
    async fn shared_reads(&self, jobs: &[Job]) -> Shared {
        let ids: Vec<i64> = jobs
            .iter()
            .filter(|j| j.kind == "escalate")
            .filter_map(|j| serde_json::from_str::<EscalatePayload>(&j.payload).ok())
            .map(|p| p.incident_id)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let contexts = if ids.len() > 1 {
            match self.store.escalation_contexts(&ids).await {
                Ok(contexts) => contexts,
                Err(e) => {
                    tracing::warn!(error = %e, "reading escalation contexts together failed; each step reads its own");
                    HashMap::new()
                }
            }
        } else {
            HashMap::new()
        };
        Shared {
            contexts,
            ..Shared::default()
        }
    }

    async fn run_job(&self, job: &Job, shared: &Shared) -> Result<(), EngineError> {
        match job.kind.as_str() {
            "escalate" => match serde_json::from_str::<EscalatePayload>(&job.payload) {
                Ok(p) => self.escalate(job, p, shared).await,
                Err(e) => self.bad_payload(job, e).await,
            },
            "deliver" => match serde_json::from_str::<DeliverPayload>(&job.payload) {
                Ok(p) => self.deliver(job, p).await,
                Err(e) => self.bad_payload(job, e).await,
            },
            "handoff_scan" => self.handoff_scan(job).await,
            "action_item_reminders" => self.action_item_reminders(job).await,
            "heartbeat_check" => match serde_json::from_str::<HeartbeatPayload>(&job.payload) {
                Ok(p) => self.heartbeat_check(job, p).await,
                Err(e) => self.bad_payload(job, e).await,
            },
            "target_check" => match serde_json::from_str::<TargetPayload>(&job.payload) {
                Ok(p) => self.target_check(job, p).await,
                Err(e) => self.bad_payload(job, e).await,
            },
            other => {
                tracing::error!(job = job.id, kind = other, "unknown job kind");
                self.store
                    .fail_job(job.id, &self.worker, &format!("unknown job kind {other}"))
                    .await?;
                Ok(())
            }
        }
    }

    async fn bad_payload(&self, job: &Job, e: serde_json::Error) -> Result<(), EngineError> {
        tracing::error!(job = job.id, error = %e, "unreadable job payload");
        self.store
            .fail_job(job.id, &self.worker, &format!("unreadable payload: {e}"))
            .await?;
        Ok(())
    }

    /// Who is on call in schedule `id` at `at`, and the schedule's name. The schedule and its
    /// overrides are read once per claim (`shared`).
    async fn on_call(
        &self,
        id: i64,
        at: DateTime<Utc>,
        shared: &Shared,
    ) -> Result<(Option<i64>, String), EngineError> {
        let cell = shared.schedules.lock().await.entry(id).or_default().clone();
        let read = cell
            .get_or_try_init(|| async {
                self.store
                    .schedule_with_overrides(id, at - TimeDelta::days(1), at + TimeDelta::days(1))
                    .await
                    .map(|found| {
                        found.map(|(stored, overrides)| {
                            let schedule = Schedule::new(stored.layers.clone(), overrides)
                                .map_err(|e| format!("schedule {id}: {e}"));
                            (schedule, stored.name)
                        })
                    })
            })
            .await?;
        let Some((schedule, name)) = read else {
            return Ok((None, format!("schedule {id} (deleted)")));
        };
        let schedule = schedule
            .as_ref()
            .map_err(|e| StoreError::Corrupt(e.clone()))?;
        Ok((schedule.on_call_at(at).participant, name.clone()))
    }

    /// A person to page and how to reach them, read once per claim (`shared`).
    async fn paged_person(
        &self,
        user_id: i64,
        shared: &Shared,
    ) -> Result<Option<PersonRead>, EngineError> {
        let cell = shared
            .people
            .lock()
            .await
            .entry(user_id)
            .or_default()
            .clone();
        Ok(cell
            .get_or_try_init(|| self.store.paged_person_and_contacts(user_id))
            .await?
            .clone())
    }

    async fn escalate(
        &self,
        job: &Job,
        p: EscalatePayload,
        shared: &Shared,
    ) -> Result<(), EngineError> {
        let now = self.store.now();
        let ctx = match shared.contexts.get(&p.incident_id) {
            Some(ctx) => Some(ctx.clone()),
            None => self.store.escalation_context(p.incident_id).await?,
        };
        let Some(ctx) = ctx else {
            self.store.finish_job(job.id, &self.worker).await?;
            return Ok(());
        };
        let mut step = Step {
            incident_id: ctx.incident_id,
            ..Default::default()
        };
        let first = p.level == 0 && p.repeat == 0;
        if first && p.epoch == 1 {
            self.plan_target_checks(&ctx, &mut step);
        }
        // Acknowledged, resolved, or reopened since (a newer epoch took over): stand down.
        if ctx.epoch != p.epoch || ctx.status != IncidentStatus::Triggered {
            self.store.apply_step(job.id, &self.worker, &step).await?;
            return Ok(());
        }
        let Some(policy) = ctx.policy.clone() else {
            if first {
                step.timeline.push(("escalation", paging::NO_POLICY.into()));
            }
            self.store.apply_step(job.id, &self.worker, &step).await?;
            return Ok(());
        };
        let levels: Vec<Level> = serde_json::from_str(&policy.levels)
            .map_err(|e| StoreError::Corrupt(format!("policy {}: {e}", policy.id)))?;
        let next = |level: i64, repeat: i64, at: DateTime<Utc>| NewJob {
            kind: "escalate",
            payload: serde_json::json!({"incident_id": ctx.incident_id, "epoch": p.epoch, "level": level, "repeat": repeat}),
            run_at: at,
            dedup_key: Some(format!(
                "escalate:{}:{}:{level}:{repeat}",
                ctx.incident_id, p.epoch
            )),
        };
        let Some(level) = usize::try_from(p.level).ok().and_then(|i| levels.get(i)) else {
            // Past the last level: start again, or stop.
            if p.repeat < policy.repeat && !levels.is_empty() {
                step.jobs.push(next(0, p.repeat + 1, now));
                step.timeline.push((
                    "escalation",
                    format!(
                        "Nobody acknowledged: policy {} starts again (repeat {} of {}).",
                        policy.name,
                        p.repeat + 1,
                        policy.repeat
                    ),
                ));
            } else {
                step.timeline.push((
                    "escalation",
                    format!(
                        "Nobody acknowledged and policy {} has no more levels or repeats.",
                        policy.name
                    ),
                ));
            }
            self.store.apply_step(job.id, &self.worker, &step).await?;
            return Ok(());
        };
        let number = p.level + 1;
        if let Some(min) = level.min_severity
            && !ctx.severity.at_least(min)
        {
            step.jobs.push(next(p.level + 1, p.repeat, now));
            step.timeline.push((
                "escalation",
                format!("Level {number} skipped: it pages only for {min} and more severe."),
            ));
            self.store.apply_step(job.id, &self.worker, &step).await?;
            return Ok(());
        }
        // Resolve the targets to people.
        let mut people: Vec<(i64, String)> = Vec::new();
        let mut nobody: Vec<String> = Vec::new();
        let mut channels: Vec<i64> = Vec::new();
        for target in &level.targets {
            match target.kind.as_str() {
                "user" => people.push((target.id, String::new())),
                "channel" if !channels.contains(&target.id) => channels.push(target.id),
                "schedule" => match self.on_call(target.id, now, shared).await? {
                    (Some(user), name) => people.push((user, format!(" (on call in {name})"))),
                    (None, name) => nobody.push(format!("{name} has nobody on call")),
                },
                _ => {}
            }
        }
        let mut seen = BTreeSet::new();
        people.retain(|(id, _)| seen.insert(*id));
        let low = matches!(ctx.severity, Severity::Sev3 | Severity::Sev4);
        let subject = render::subject(&ctx);
        let mut paged = Vec::new();
        // How to deliver each notification of the step at once, if it is due now (same
        // order as `step.notifications`).
        let mut direct: Vec<Direct> = Vec::new();
        // Team channels: posted to at once (no person, so no working hours and no
        // interruption counted), keyed by the channel in place of the person.
        for channel_id in &channels {
            let channel = match self.store.team_channel(*channel_id).await {
                Ok(c) => c,
                Err(StoreError::NotFound) => {
                    nobody.push(format!("channel {channel_id} no longer exists"));
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            step.notifications.push(NewNotification {
                idempotency_key: format!(
                    "page:{}:{}:{}:{}:channel:{}",
                    ctx.incident_id, p.epoch, p.level, p.repeat, channel.id
                ),
                incident_id: Some(ctx.incident_id),
                user_id: None,
                contact_method_id: None,
                purpose: "page",
                channel: channel.kind.as_str().to_owned(),
                address: channel.url.clone(),
                subject: subject.clone(),
                level: Some(p.level),
                repeat_no: Some(p.repeat),
                due_at: now,
            });
            paged.push(format!(
                "channel {} ({})",
                channel.name,
                channel.kind.label()
            ));
            direct.push(Direct::Channel(channel));
        }
        for (user_id, why) in &people {
            let Some((person, contacts)) = self.paged_person(*user_id, shared).await? else {
                continue;
            };
            if person.disabled {
                nobody.push(format!("{} is disabled", person.name));
                continue;
            }
            let hold = if low && !policy.low_severity_any_time {
                working_hours(&person)
            } else {
                None
            };
            let mut held = false;
            for contact in contacts {
                let mut due = now + TimeDelta::minutes(contact.delay_minutes);
                if let Some(hours) = &hold {
                    let available = hours.available_from(due, person.time_zone.tz());
                    held |= available > due;
                    due = available;
                }
                step.notifications.push(NewNotification {
                    idempotency_key: format!(
                        "page:{}:{}:{}:{}:{}:{}:{}",
                        ctx.incident_id,
                        p.epoch,
                        p.level,
                        p.repeat,
                        person.id,
                        contact.contact_method_id.unwrap_or(0),
                        contact.rule_id.unwrap_or(0)
                    ),
                    incident_id: Some(ctx.incident_id),
                    user_id: Some(person.id),
                    contact_method_id: contact.contact_method_id,
                    purpose: "page",
                    channel: contact.channel.clone(),
                    address: contact.address.clone(),
                    subject: subject.clone(),
                    level: Some(p.level),
                    repeat_no: Some(p.repeat),
                    due_at: due,
                });
                direct.push(if due <= now {
                    Direct::Person {
                        name: person.name.clone(),
                        time_zone: person.time_zone.to_string(),
                        links: Some(self.new_links(&ctx, Some(person.id), &mut step)),
                    }
                } else {
                    Direct::Later
                });
            }
            paged.push(format!(
                "{}{why}{}",
                person.name,
                if held {
                    " — held until their working hours (SEV3/SEV4)"
                } else {
                    ""
                }
            ));
        }
        let mut text = format!(
            "Escalation level {number}{}: ",
            if p.repeat > 0 {
                format!(" (repeat {})", p.repeat)
            } else {
                String::new()
            }
        );
        if paged.is_empty() {
            text.push_str("nobody to page");
        } else {
            text.push_str(&format!("paging {}", paged.join(", ")));
        }
        if !nobody.is_empty() {
            text.push_str(&format!("; {}", nobody.join("; ")));
        }
        text.push('.');
        step.timeline.push(("escalation", text));
        step.position = Some((p.level, p.repeat));
        step.incident_number = Some(ctx.number);
        step.epoch = Some(p.epoch);
        step.jobs.push(next(
            p.level + 1,
            p.repeat,
            now + TimeDelta::minutes(level.delay_minutes.max(1)),
        ));
        let Some(claimed) = self
            .store
            .apply_step_claiming(job.id, &self.worker, &step, Some(LEASE))
            .await?
        else {
            return Ok(());
        };
        if claimed.len() < step.notifications.len() {
            // Some are due later (or were recorded by an earlier run of this step).
            self.wake.notify_one();
        }
        // Deliver what is due now straight away: no second claim, no re-reading. The
        // `deliver` jobs are leased to this worker, so no one else sends them meanwhile,
        // and they stay in the queue if this process dies before finishing them.
        let sends = claimed.into_iter().map(|c| {
            let new = &step.notifications[c.index];
            let notification = Notification {
                id: c.notification_id,
                idempotency_key: new.idempotency_key.clone(),
                incident_id: new.incident_id,
                user_id: new.user_id,
                contact_method_id: new.contact_method_id,
                purpose: new.purpose.to_owned(),
                channel: new.channel.clone(),
                address: new.address.clone(),
                subject: new.subject.clone(),
                level: new.level,
                repeat_no: new.repeat_no,
                state: "pending".into(),
                attempts: 0,
                last_error: None,
                created_at: now,
                due_at: new.due_at,
                sent_at: None,
            };
            let how = direct.get(c.index).cloned().unwrap_or(Direct::Later);
            let ctx = &ctx;
            async move {
                self.count_job("deliver", 0);
                let mut known = Known {
                    incident_number: Some(ctx.number),
                    user_time_zone: None,
                };
                let (message, who, team_channel) = match how {
                    Direct::Channel(channel) => (
                        render::channel_message(&notification, Some(ctx), &self.base_url),
                        notification.address.clone(),
                        Some(channel),
                    ),
                    Direct::Person {
                        name,
                        time_zone,
                        links,
                    } => {
                        known.user_time_zone = Some(time_zone);
                        (
                            render::message(
                                &notification,
                                Some(ctx),
                                links.as_ref(),
                                &self.base_url,
                            ),
                            name,
                            None,
                        )
                    }
                    // Leased by the store but planned for later (it fell due between the
                    // two clocks' readings): deliver it the usual way, now.
                    Direct::Later => {
                        let job = Job {
                            id: c.job_id,
                            kind: "deliver".into(),
                            payload: serde_json::json!({"notification_id": c.notification_id})
                                .to_string(),
                            run_at: new.due_at,
                            attempts: 1,
                        };
                        return self
                            .deliver(
                                &job,
                                DeliverPayload {
                                    notification_id: c.notification_id,
                                },
                            )
                            .await;
                    }
                };
                self.send(
                    c.job_id,
                    &notification,
                    &message,
                    &who,
                    team_channel.as_ref(),
                    &known,
                )
                .await
            }
        });
        for result in futures::future::join_all(sends).await {
            if let Err(e) = result {
                tracing::warn!(error = %e, "delivery failed to record; it runs again after its lease");
            }
        }
        Ok(())
    }

    /// Fresh one-time acknowledge and resolve links for a page to `user_id`, their hashes
    /// added to `step` to be stored with it.
    fn new_links(
        &self,
        ctx: &EscalationContext,
        user_id: Option<i64>,
        step: &mut Step<'_>,
    ) -> render::Links {
        let expires_at = self.store.now() + LINK_LIFETIME;
        let (ack, resolve) = (new_token(), new_token());
        for (token, action) in [(&ack, "acknowledge"), (&resolve, "resolve")] {
            step.action_tokens.push(NewActionToken {
                token_hash: hash_token(token),
                action,
                user_id,
                expires_at,
            });
        }
        render::Links {
            acknowledge: format!("{}/act/{ack}", self.base_url),
            resolve: format!("{}/act/{resolve}", self.base_url),
            incident: format!("{}/incidents/{}", self.base_url, ctx.number),
        }
    }

    fn count_job(&self, kind: &str, latency_ms: i64) {
        self.stats.job_latency.observe(latency_ms as f64 / 1000.0);
        self.stats
            .jobs
            .get_or_create(&KindLabel {
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Makes sure one handoff scan runs per period (the dedup key names the period, so every
    /// replica enqueueing it adds one job).
    async fn schedule_handoff_scan(&self) -> Result<(), EngineError> {
        self.schedule_periodic("handoff_scan", HANDOFF_SCAN_PERIOD)
            .await
    }

    /// Enqueues one job of `kind` for the current period (keyed `kind:<period start>`), due
    /// at the period's start.
    async fn schedule_periodic(
        &self,
        kind: &'static str,
        period: TimeDelta,
    ) -> Result<(), EngineError> {
        let now = self.store.now();
        let period = period.num_seconds();
        let bucket = now.timestamp().div_euclid(period) * period;
        let at = DateTime::<Utc>::from_timestamp(bucket, 0).unwrap_or(now);
        self.store
            .enqueue_job(&NewJob {
                kind,
                payload: serde_json::json!({}),
                run_at: at,
                dedup_key: Some(format!("{kind}:{bucket}")),
            })
            .await?;
        Ok(())
    }

    /// Reminders for overdue action items: each open or in-progress item whose due date is
    /// before "today" in its owner's time zone, and whose owner was not reminded yet, gets one
    /// notification per immediate contact of the owner (keyed by item and due date), and is
    /// marked reminded in the same transaction. Changing the due date re-arms the reminder.
    async fn action_item_reminders(&self, job: &Job) -> Result<(), EngineError> {
        let now = self.store.now();
        // The furthest-ahead zone is UTC+14: anything overdue anywhere is due before this.
        let latest_today = (now + TimeDelta::hours(14)).date_naive();
        let mut step = Step::default();
        let mut people = std::collections::HashMap::new();
        for overdue in self.store.overdue_action_items(latest_today).await? {
            let item = &overdue.item;
            let (Some(owner), Some(due), None) = (item.owner_id, item.due_date, item.reminded_at)
            else {
                continue;
            };
            if let std::collections::hash_map::Entry::Vacant(slot) = people.entry(owner) {
                slot.insert(self.store.paged_person(owner).await?);
            }
            let Some(person) = people.get(&owner).and_then(Option::as_ref) else {
                continue;
            };
            let today = now.with_timezone(&person.time_zone.tz()).date_naive();
            if person.disabled || due >= today {
                continue;
            }
            let subject = format!(
                "[Heliograph] Action item overdue: {} (due {due}, postmortem #{})",
                item.title, overdue.incident_number
            );
            let person = person.clone();
            self.person_notifications(
                &person,
                "reminder",
                &format!("reminder:{}:{due}", item.id),
                subject,
                now,
                &mut step,
            )
            .await?;
            step.reminders_sent.push(item.id);
        }
        self.store.apply_step(job.id, &self.worker, &step).await?;
        if !step.notifications.is_empty() {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Handoff notices: people an override moved on or off call hear of it; people whose
    /// shift starts within their lead time hear of it before it starts. Keyed so each is
    /// sent once however often the scan runs.
    async fn handoff_scan(&self, job: &Job) -> Result<(), EngineError> {
        let now = self.store.now();
        let mut step = Step::default();
        let mut names = std::collections::HashMap::new();
        for notice in self.store.unsent_schedule_notices(500).await? {
            let Some(person) = self.store.paged_person(notice.user_id).await? else {
                step.notices_sent.push(notice.id);
                continue;
            };
            let schedule = match names.get(&notice.schedule_id) {
                Some(n) => n,
                None => {
                    let name = self
                        .store
                        .schedule(notice.schedule_id)
                        .await
                        .map(|s| s.name)
                        .unwrap_or_else(|_| format!("schedule {}", notice.schedule_id));
                    names.entry(notice.schedule_id).or_insert(name)
                }
            };
            let tz = person.time_zone.tz();
            let subject = format!(
                "[Heliograph] You are {} for {schedule} from {} to {}",
                if notice.kind == "on_call" {
                    "now on call"
                } else {
                    "no longer on call"
                },
                notice
                    .start_at
                    .with_timezone(&tz)
                    .format("%a %-d %b %H:%M %Z"),
                notice
                    .end_at
                    .with_timezone(&tz)
                    .format("%a %-d %b %H:%M %Z"),
            );
            self.person_notifications(
                &person,
                "handoff",
                &format!("notice:{}", notice.id),
                subject,
                now,
                &mut step,
            )
            .await?;
            step.notices_sent.push(notice.id);
        }
        // Shifts starting soon: look as far ahead as the longest lead time allows.
        let horizon = now + TimeDelta::hours(24) + HANDOFF_SCAN_PERIOD;
        for stored in self.store.schedules().await? {
            let overrides = self
                .store
                .overrides_between(
                    stored.id,
                    now - TimeDelta::days(1),
                    horizon + TimeDelta::days(1),
                )
                .await?;
            let Ok(schedule) = Schedule::new(
                stored.layers.clone(),
                overrides.iter().map(|o| o.to_override()).collect(),
            ) else {
                continue;
            };
            for handoff in schedule.handoffs(now, horizon) {
                let Some(user) = handoff.to else { continue };
                let Some(person) = self.store.paged_person(user).await? else {
                    continue;
                };
                let lead = TimeDelta::minutes(person.handoff_lead_minutes.clamp(0, 1440));
                if person.disabled || handoff.at - lead > now + HANDOFF_SCAN_PERIOD {
                    continue;
                }
                let tz = person.time_zone.tz();
                let subject = format!(
                    "[Heliograph] Your on-call shift for {} starts {}",
                    stored.name,
                    handoff.at.with_timezone(&tz).format("%a %-d %b %H:%M %Z")
                );
                let key = format!("handoff:{}:{user}:{}", stored.id, handoff.at.timestamp());
                self.person_notifications(
                    &person,
                    "handoff",
                    &key,
                    subject,
                    (handoff.at - lead).max(now),
                    &mut step,
                )
                .await?;
            }
        }
        self.store.apply_step(job.id, &self.worker, &step).await?;
        Ok(())
    }

    /// One notification (a handoff notice or a reminder) per immediate contact method of
    /// `person` (their account email when they set up nothing else).
    async fn person_notifications(
        &self,
        person: &PagedPerson,
        purpose: &'static str,
        key: &str,
        subject: String,
        due: DateTime<Utc>,
        step: &mut Step<'_>,
    ) -> Result<(), EngineError> {
        let contacts = self.store.page_contacts(person).await?;
        let first_delay = contacts.iter().map(|c| c.delay_minutes).min().unwrap_or(0);
        for contact in contacts.iter().filter(|c| c.delay_minutes == first_delay) {
            step.notifications.push(NewNotification {
                idempotency_key: format!("{key}:{}", contact.contact_method_id.unwrap_or(0)),
                incident_id: None,
                user_id: Some(person.id),
                contact_method_id: contact.contact_method_id,
                purpose,
                channel: contact.channel.clone(),
                address: contact.address.clone(),
                subject: subject.clone(),
                level: None,
                repeat_no: None,
                due_at: due,
            });
        }
        Ok(())
    }

    /// A heartbeat integration that has not checked in within its interval opens an alert
    /// (and so an incident); the next check-in resolves it.
    async fn heartbeat_check(&self, job: &Job, p: HeartbeatPayload) -> Result<(), EngineError> {
        let integration = match self.store.integration(p.integration_id).await {
            Ok(i) => i,
            Err(StoreError::NotFound) => {
                self.store.finish_job(job.id, &self.worker).await?;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let now = self.store.now();
        let missed = match (
            integration.heartbeat_interval_seconds,
            integration.last_check_in_at,
        ) {
            (Some(seconds), Some(last)) => last + TimeDelta::seconds(seconds) <= now,
            (Some(_), None) => true,
            _ => false,
        };
        if missed {
            let since = integration
                .last_check_in_at
                .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_else(|| "it was created".into());
            self.store
                .ingest(
                    &integration,
                    &[heliograph_store::alerts::Incoming {
                        action: "trigger",
                        dedup_key: heliograph_store::alerts::HEARTBEAT_KEY.into(),
                        summary: Some(format!("Heartbeat missed: {} has not checked in since {since}", integration.name)),
                        source: Some("heliograph".into()),
                        severity: Some("error"),
                        payload: serde_json::json!({"heartbeat_missed": true, "last_check_in_at": integration.last_check_in_at}).to_string(),
                    }],
                )
                .await?;
            self.wake.notify_one();
        }
        self.store.finish_job(job.id, &self.worker).await?;
        Ok(())
    }

    fn plan_target_checks(&self, ctx: &EscalationContext, step: &mut Step<'_>) {
        let services: Vec<(i64, &str)> = ctx
            .services
            .iter()
            .map(|(id, _, targets)| (*id, targets.as_str()))
            .collect();
        step.jobs.extend(paging::target_check_jobs(
            ctx.incident_id,
            ctx.severity,
            ctx.triggered_at,
            &services,
        ));
    }

    async fn target_check(&self, job: &Job, p: TargetPayload) -> Result<(), EngineError> {
        let Some(ctx) = self.store.escalation_context(p.incident_id).await? else {
            self.store.finish_job(job.id, &self.worker).await?;
            return Ok(());
        };
        let incident = self.store.incident(ctx.number).await?;
        let met = match p.kind.as_str() {
            "acknowledge" => incident
                .acknowledged_at
                .or(incident.resolved_at)
                .is_some_and(|t| t <= ctx.triggered_at + TimeDelta::minutes(p.minutes)),
            _ => incident
                .resolved_at
                .is_some_and(|t| t <= ctx.triggered_at + TimeDelta::minutes(p.minutes)),
        };
        let mut step = Step {
            incident_id: ctx.incident_id,
            ..Default::default()
        };
        if !met {
            let service = ctx
                .services
                .iter()
                .find(|s| s.0 == p.service_id)
                .map(|s| s.1.clone())
                .unwrap_or_else(|| format!("service {}", p.service_id));
            let kind: &'static str = if p.kind == "acknowledge" {
                "acknowledge"
            } else {
                "resolve"
            };
            step.breaches.push((p.service_id, kind, p.minutes));
            step.timeline.push((
                "breach",
                format!(
                    "Response target missed: {service} expects {} incidents to be {} within {} minutes.",
                    ctx.severity,
                    if kind == "acknowledge" { "acknowledged" } else { "resolved" },
                    p.minutes
                ),
            ));
        }
        self.store.apply_step(job.id, &self.worker, &step).await?;
        Ok(())
    }

    async fn deliver(&self, job: &Job, p: DeliverPayload) -> Result<(), EngineError> {
        let notification = match self.store.notification(p.notification_id).await {
            Ok(n) => n,
            Err(StoreError::NotFound) => {
                self.store.finish_job(job.id, &self.worker).await?;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        if notification.state != "pending" {
            self.store.finish_job(job.id, &self.worker).await?;
            return Ok(());
        }
        let mut context = None;
        if let Some(incident_id) = notification.incident_id {
            context = self.store.escalation_context(incident_id).await?;
            if notification.purpose == "page"
                && let Some(ctx) = &context
                && ctx.status != IncidentStatus::Triggered
            {
                let why = format!("not sent: the incident was {} first", ctx.status);
                self.store
                    .finish_delivery(
                        job.id,
                        &self.worker,
                        &notification,
                        &Delivery::Cancelled(why),
                        None,
                    )
                    .await?;
                self.stats.delivery("cancelled", &notification.channel);
                return Ok(());
            }
        }
        // A page to a team channel: no person, so no one-time links (anyone in the channel
        // could follow them), only the incident page.
        let team_channel = match notification.user_id {
            None => match team_channels::channel_of_key(&notification.idempotency_key) {
                Some(id) => match self.store.team_channel(id).await {
                    Ok(c) => Some(c),
                    Err(StoreError::NotFound) => None,
                    Err(e) => return Err(e.into()),
                },
                None => None,
            },
            Some(_) => None,
        };
        let message = if team_channel.is_some() {
            render::channel_message(&notification, context.as_ref(), &self.base_url)
        } else {
            self.message(&notification, context.as_ref()).await?
        };
        let mut known = Known {
            incident_number: context.as_ref().map(|c| c.number),
            user_time_zone: None,
        };
        let who = match notification.user_id {
            Some(id) => match self.store.paged_person(id).await? {
                Some(person) => {
                    known.user_time_zone = Some(person.time_zone.to_string());
                    person.name
                }
                None => format!("user {id}"),
            },
            None => notification.address.clone(),
        };
        self.send(
            job.id,
            &notification,
            &message,
            &who,
            team_channel.as_ref(),
            &known,
        )
        .await
    }

    /// Sends a notification whose `deliver` job (`job_id`) this worker holds, and records
    /// the outcome: sent, retried later with backoff, or failed for good.
    async fn send(
        &self,
        job_id: i64,
        notification: &Notification,
        message: &Message,
        who: &str,
        team_channel: Option<&TeamChannel>,
        known: &Known,
    ) -> Result<(), EngineError> {
        let channel = match notification.channel.as_str() {
            "webhook" => &self.channels.webhook,
            "slack" => &self.channels.slack,
            _ => &self.channels.email,
        };
        match channel.send(message).await {
            Ok(()) => {
                let entry = (notification.purpose == "page").then(|| {
                    let text = match team_channel {
                        Some(c) => format!("Posted to {} ({}).", c.name, c.kind.label()),
                        None => format!(
                            "Paged {who} by {} ({}).",
                            notification.channel, notification.address
                        ),
                    };
                    ("notification", text)
                });
                self.store
                    .finish_delivery_known(
                        job_id,
                        &self.worker,
                        notification,
                        &Delivery::Sent,
                        entry,
                        known,
                    )
                    .await?;
                self.stats.delivery("sent", &notification.channel);
            }
            Err(SendError::Temporary(e)) if notification.attempts + 1 < MAX_ATTEMPTS => {
                let at = self.store.now() + backoff(notification.attempts);
                tracing::info!(notification = notification.id, error = %e, retry_at = %at, "delivery failed; will retry");
                self.store
                    .retry_delivery(job_id, &self.worker, notification.id, &e, at)
                    .await?;
                self.stats.delivery("retried", &notification.channel);
            }
            Err(e) => {
                let reason = e.reason().to_owned();
                tracing::warn!(notification = notification.id, error = %reason, "delivery failed for good");
                let entry = notification.incident_id.map(|_| {
                    let text = match team_channel {
                        Some(c) => {
                            format!(
                                "Could not post to {} ({}): {reason}",
                                c.name,
                                c.kind.label()
                            )
                        }
                        None => format!(
                            "Could not page {who} by {} ({}): {reason}",
                            notification.channel, notification.address
                        ),
                    };
                    ("notification", text)
                });
                self.store
                    .finish_delivery_known(
                        job_id,
                        &self.worker,
                        notification,
                        &Delivery::Failed(reason),
                        entry,
                        known,
                    )
                    .await?;
                self.stats.delivery("failed", &notification.channel);
            }
        }
        Ok(())
    }

    /// Renders a notification, with fresh one-time acknowledge and resolve links for pages.
    async fn message(
        &self,
        n: &heliograph_store::paging::Notification,
        ctx: Option<&EscalationContext>,
    ) -> Result<Message, EngineError> {
        let mut links = None;
        if let (Some(ctx), "page") = (ctx, n.purpose.as_str()) {
            let expires = self.store.now() + LINK_LIFETIME;
            let ack = new_token();
            let resolve = new_token();
            let (ack_hash, resolve_hash) = (hash_token(&ack), hash_token(&resolve));
            self.store
                .create_action_tokens(
                    &[(&ack_hash, "acknowledge"), (&resolve_hash, "resolve")],
                    ctx.incident_id,
                    n.user_id,
                    expires,
                )
                .await?;
            links = Some(render::Links {
                acknowledge: format!("{}/act/{ack}", self.base_url),
                resolve: format!("{}/act/{resolve}", self.base_url),
                incident: format!("{}/incidents/{}", self.base_url, ctx.number),
            });
        }
        Ok(render::message(n, ctx, links.as_ref(), &self.base_url))
    }
}

/// A person's working hours, if they are readable (otherwise they are paged at once: better
/// a page out of hours than none).
fn working_hours(person: &PagedPerson) -> Option<WorkingHours> {
    WorkingHours::from_stored(
        &person.work_days,
        &person.work_start,
        &person.work_end,
        person.handoff_lead_minutes,
    )
    .ok()
}
