//! End-to-end paging with a real SMTP server (Debian's aiosmtpd, started by the test): a page
//! arrives by email and its link acknowledges once; an SMTP outage delays but loses nothing;
//! an engine that dies mid-job (or between an escalation step and its send) leaves the job
//! to another; two engines on one PostgreSQL
//! database send each page once.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use common::{TestApp, backends, csrf_in};
use heliograph_domain::{
    DisplayName, FixedClock, IncidentStatus, Role, ServiceKind, Severity, SystemClock, TeamName,
    TimeZone, UserEmail, WorkloadClass,
};
use heliograph_notify::testing::SmtpSink;
use heliograph_scheduler::{Layer, Rotation, ShiftLength, ShiftUnit};
use heliograph_store::escalation_policies::{Level, PolicyFields, Target};
use heliograph_store::incidents::NewIncident;
use heliograph_store::paging::{NewNotification, Step};
use heliograph_store::schedules::ScheduleFields;
use heliograph_store::services::{ResponseTargets, ServiceFields};
use heliograph_store::testdb::TestDatabase;
use heliograph_store::users::NewUser;
use heliograph_store::{Audit, Backend, Db, Store};
use reqwest::StatusCode;

/// ana is always on call; the service's policy pages her schedule. Returns the service id.
async fn paging_setup(store: &Store, ana_email: &str) -> i64 {
    let ana = store
        .user_by_email(&heliograph_domain::UserEmail::parse(ana_email).unwrap())
        .await
        .unwrap()
        .unwrap();
    let team = store
        .create_team(
            &TeamName::parse("AI platform").unwrap(),
            &[ana.id],
            &Audit::cli(),
        )
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
                        participants: vec![ana.id],
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
            &Audit::cli(),
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
            &Audit::cli(),
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
            &Audit::cli(),
        )
        .await
        .unwrap()
        .id
}

fn new_incident(service: i64, title: &str) -> NewIncident {
    NewIncident {
        title: title.into(),
        description: String::new(),
        description_html: String::new(),
        severity: Severity::Sev1,
        service_ids: vec![service],
        commander_id: None,
    }
}

async fn spawn_with_smtp(
    backend: Backend,
    db: Arc<TestDatabase>,
    clock: Arc<dyn heliograph_domain::Clock>,
    smtp: &SmtpSink,
) -> TestApp {
    let url: url::Url = smtp.url().parse().unwrap();
    TestApp::spawn_configured(backend, db, clock, move |c| c.smtp_url = Some(url)).await
}

/// A store on a fresh database with ana always on call (no engine running): the store, ana and
/// the paged service.
async fn store_with_ana(db: &TestDatabase) -> (Store, heliograph_store::users::User, i64) {
    let conn = Db::connect(&db.url).await.unwrap();
    conn.migrate().await.unwrap();
    let store = Store::with_clock(conn, Arc::new(SystemClock));
    let ana = store
        .create_user(
            &NewUser {
                email: UserEmail::parse("ana@example.com").unwrap(),
                name: DisplayName::parse("Ana").unwrap(),
                time_zone: TimeZone::UTC,
                role: Role::Responder,
                password_hash: None,
            },
            &Audit::cli(),
        )
        .await
        .unwrap();
    let service = paging_setup(&store, "ana@example.com").await;
    (store, ana, service)
}

/// The escalation step an engine would plan for `incident`'s first level: one email page to
/// ana, due now.
fn page_step(
    store: &Store,
    incident: &heliograph_store::incidents::Incident,
    ana: &heliograph_store::users::User,
) -> Step<'static> {
    Step {
        incident_id: incident.id,
        notifications: vec![NewNotification {
            idempotency_key: format!("page:{}:1:0:0:{}:0:0", incident.id, ana.id),
            incident_id: Some(incident.id),
            user_id: Some(ana.id),
            contact_method_id: None,
            purpose: "page",
            channel: "email".into(),
            address: "ana@example.com".into(),
            subject: format!("[SEV1] #{} {}", incident.number, incident.title),
            level: Some(0),
            repeat_no: Some(0),
            due_at: store.now(),
        }],
        ..Default::default()
    }
}

fn link(text: &str, word: &str) -> String {
    let at = text
        .find(&format!("{word}: http"))
        .expect("the link is in the mail")
        + word.len()
        + 2;
    text[at..].split_whitespace().next().unwrap().to_owned()
}

#[tokio::test]
async fn a_page_arrives_by_email_and_its_link_acknowledges_once() {
    let smtp = SmtpSink::start().await;
    for backend in backends() {
        let db = Arc::new(TestDatabase::fresh(backend).await);
        let app = spawn_with_smtp(backend, db, Arc::new(SystemClock), &smtp).await;
        app.user("ana@example.com", Role::Responder, "ana's long password")
            .await;
        app.user("max@example.com", Role::Manager, "max's long password")
            .await;
        let service = paging_setup(&app.store, "ana@example.com").await;
        let before = smtp.messages().len();
        // Declared through the API.
        let token = app.token_for("max@example.com").await;
        let r = reqwest::Client::new()
            .post(app.url("/api/v1/incidents"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"title": "LLM gateway 5xx > 20%", "severity": "SEV1", "service_id": service}))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{backend:?}: {body}");
        let number = body["number"].as_i64().unwrap();
        let mails = smtp.wait_for(before + 1, Duration::from_secs(15)).await;
        let mail = mails.last().unwrap().clone();
        assert_eq!(
            mail.subject,
            format!("[SEV1] #{number} LLM gateway 5xx > 20%")
        );
        assert_eq!(mail.to, ["ana@example.com"]);
        let text = mail.text.clone().unwrap();
        assert!(mail.html.as_deref().unwrap().contains("Acknowledge</a>"));
        let ack = link(&text, "Acknowledge");
        assert!(ack.starts_with(&app.base), "{ack}");

        // Following the link (what a mail scanner does) changes nothing.
        let anonymous = app.browser();
        let page = anonymous.get(&ack).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let html = page.text().await.unwrap();
        assert!(html.contains(&format!("Acknowledge #{number}")), "{html}");
        assert_eq!(
            app.store.incident(number).await.unwrap().status,
            IncidentStatus::Triggered
        );
        // The button acknowledges, as ana.
        let csrf = csrf_in(&html).unwrap();
        let done = anonymous
            .post(&ack)
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(done.status(), StatusCode::OK);
        assert!(done.text().await.unwrap().contains("is acknowledged"));
        let incident = app.store.incident(number).await.unwrap();
        assert_eq!(incident.status, IncidentStatus::Acknowledged);
        let timeline = app.store.timeline(incident.id, false).await.unwrap();
        assert!(
            timeline
                .iter()
                .any(|e| e.body == "Acknowledged by ana@example.com (email link)"),
            "{timeline:?}"
        );
        // A second use fails, and so does the GET.
        let again = anonymous
            .post(&ack)
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::GONE);
        assert_eq!(
            anonymous.get(&ack).send().await.unwrap().status(),
            StatusCode::GONE
        );
        // A made-up link is a 404.
        let fake = format!("{}/act/{}", app.base, "0".repeat(64));
        assert_eq!(
            anonymous.get(&fake).send().await.unwrap().status(),
            StatusCode::NOT_FOUND
        );
        // /metrics has the queue and the delivery outcomes.
        let metrics = reqwest::get(app.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains("heliograph_job_queue_depth{state=\"due\"}"),
            "{metrics}"
        );
        assert!(
            metrics.contains(
                "heliograph_notification_deliveries_total{outcome=\"sent\",channel=\"email\"} 1"
            ),
            "{metrics}"
        );
        assert!(
            metrics.contains("heliograph_engine_job_latency_seconds_count"),
            "{metrics}"
        );
        // The incident page lists the notification as sent.
        let browser = app.browser();
        app.sign_in(&browser, "max@example.com", "max's long password")
            .await;
        let page = browser
            .get(app.url(&format!("/incidents/{number}")))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            page.contains("notification-sent") && page.contains("ana@example.com"),
            "{page}"
        );
        // The level goes with the channel, and the time keeps its date and its clock time
        // each on one line, so the table fits its column without scrolling sideways.
        assert!(
            page.contains("email <span class=\"small muted nowrap\">· level 1</span>"),
            "{page}"
        );
        assert!(page.contains("<td><span class=\"nowrap\">20"), "{page}");
        app.stop().await;
    }
}

async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn an_smtp_outage_delays_a_page_but_loses_nothing() {
    let mut smtp = SmtpSink::start().await;
    for backend in backends() {
        let clock = FixedClock::new(Utc::now());
        let db = Arc::new(TestDatabase::fresh(backend).await);
        let app = spawn_with_smtp(backend, db, Arc::new(clock.clone()), &smtp).await;
        app.user("ana@example.com", Role::Responder, "ana's long password")
            .await;
        let service = paging_setup(&app.store, "ana@example.com").await;
        let before = smtp.messages().len();
        smtp.stop();
        let incident = app
            .store
            .declare_incident(&new_incident(service, "Vector DB latency"), &Audit::cli())
            .await
            .unwrap();
        // The engine tries, fails, and schedules a retry.
        wait_until("a failed attempt", || async {
            let n = app.store.incident_notifications(incident.id).await.unwrap();
            n.first()
                .is_some_and(|n| n.attempts >= 1 && n.state == "pending")
        })
        .await;
        let n = &app.store.incident_notifications(incident.id).await.unwrap()[0];
        assert!(n.last_error.is_some(), "{backend:?}: {n:?}");
        // The server comes back; time passes beyond the backoff; the page goes out, once.
        smtp.restart().await;
        clock.advance(TimeDelta::minutes(20));
        let mails = smtp.wait_for(before + 1, Duration::from_secs(15)).await;
        assert_eq!(
            mails.last().unwrap().subject,
            format!("[SEV1] #{} Vector DB latency", incident.number)
        );
        wait_until("the notification marked sent", || async {
            app.store.incident_notifications(incident.id).await.unwrap()[0].state == "sent"
        })
        .await;
        clock.advance(TimeDelta::minutes(20));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(smtp.messages().len(), before + 1, "sent once");
        app.stop().await;
    }
}

#[tokio::test]
async fn a_job_held_by_a_dead_engine_is_taken_over_after_its_lease() {
    let smtp = SmtpSink::start().await;
    for backend in backends() {
        let db = Arc::new(TestDatabase::fresh(backend).await);
        // Before any engine runs: an incident is declared and its escalation job is claimed
        // by an engine that then "dies", holding a three-second lease.
        let (store, _, service) = store_with_ana(&db).await;
        let incident = store
            .declare_incident(&new_incident(service, "Feature store stale"), &Audit::cli())
            .await
            .unwrap();
        let claimed = store
            .claim_jobs("dead-worker", TimeDelta::seconds(3), 10)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1, "{backend:?}");
        assert_eq!(claimed[0].kind, "escalate");
        let started = std::time::Instant::now();
        let before = smtp.messages().len();
        // A live engine starts; it takes the job over once the lease has run out.
        let app = spawn_with_smtp(backend, db.clone(), Arc::new(SystemClock), &smtp).await;
        let mails = smtp.wait_for(before + 1, Duration::from_secs(20)).await;
        assert!(
            started.elapsed() >= Duration::from_millis(2500),
            "not before the lease ends"
        );
        assert_eq!(
            mails.last().unwrap().subject,
            format!("[SEV1] #{} Feature store stale", incident.number)
        );
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(smtp.messages().len(), before + 1, "sent once");
        app.stop().await;
    }
}

/// An engine sends a page straight after its escalation step, holding the page's `deliver`
/// job on a lease it took in the step's transaction. If it dies between the step and the
/// send, nothing is lost: the job is in the queue, and another engine sends the page once the
/// lease runs out — not before, and only once.
#[tokio::test]
async fn a_page_whose_engine_died_after_its_step_is_sent_once_after_the_lease() {
    let smtp = SmtpSink::start().await;
    for backend in backends() {
        let db = Arc::new(TestDatabase::fresh(backend).await);
        let (store, ana, service) = store_with_ana(&db).await;
        let incident = store
            .declare_incident(&new_incident(service, "Embedding drift"), &Audit::cli())
            .await
            .unwrap();
        // The dying engine claims the escalation and applies its step, which records the
        // page and leases its delivery to the same engine for three seconds; then it dies.
        let claimed = store
            .claim_jobs("dead-worker", TimeDelta::seconds(3), 10)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1, "{backend:?}");
        let step = Step {
            position: Some((0, 0)),
            ..page_step(&store, &incident, &ana)
        };
        let leased = store
            .apply_step_claiming(
                claimed[0].id,
                "dead-worker",
                &step,
                Some(TimeDelta::seconds(3)),
            )
            .await
            .unwrap()
            .expect("the step's job was still leased");
        assert_eq!(
            leased.len(),
            1,
            "{backend:?}: the page's delivery is leased"
        );
        assert!(
            store
                .claim_jobs("someone-else", TimeDelta::seconds(60), 10)
                .await
                .unwrap()
                .is_empty(),
            "{backend:?}: nobody else may take the leased delivery"
        );
        let started = std::time::Instant::now();
        let before = smtp.messages().len();
        let app = spawn_with_smtp(backend, db.clone(), Arc::new(SystemClock), &smtp).await;
        let mails = smtp.wait_for(before + 1, Duration::from_secs(20)).await;
        assert!(
            started.elapsed() >= Duration::from_millis(2500),
            "{backend:?}: not before the lease ends"
        );
        let mail = mails.last().unwrap();
        assert_eq!(
            mail.subject,
            format!("[SEV1] #{} Embedding drift", incident.number)
        );
        assert!(
            mail.text
                .as_deref()
                .unwrap_or("")
                .contains("Acknowledge: http"),
            "{backend:?}: the page carries its acknowledge link"
        );
        wait_until("the page marked sent", || async {
            app.store.incident_notifications(incident.id).await.unwrap()[0].state == "sent"
        })
        .await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(smtp.messages().len(), before + 1, "{backend:?}: sent once");
        let notifications = app.store.incident_notifications(incident.id).await.unwrap();
        assert_eq!(notifications.len(), 1, "{backend:?}: {notifications:?}");
        app.stop().await;
    }
}

/// An escalation step planned while the incident was triggered, but applied after someone
/// acknowledged it: its page must not be sent directly. It goes through the queue, whose
/// delivery sees the acknowledgement and cancels it.
#[tokio::test]
async fn a_page_acknowledged_before_its_step_commits_is_not_sent_directly() {
    for backend in backends() {
        let db = TestDatabase::fresh(backend).await;
        let (store, ana, service) = store_with_ana(&db).await;
        let incident = store
            .declare_incident(&new_incident(service, "Agent loop"), &Audit::cli())
            .await
            .unwrap();
        let claimed = store
            .claim_jobs("engine", TimeDelta::seconds(60), 10)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1, "{backend:?}");
        store
            .acknowledge_incident(incident.number, &Audit::cli())
            .await
            .unwrap();
        let step = Step {
            epoch: Some(1),
            ..page_step(&store, &incident, &ana)
        };
        let leased = store
            .apply_step_claiming(claimed[0].id, "engine", &step, Some(TimeDelta::seconds(60)))
            .await
            .unwrap()
            .expect("the step's job was still leased");
        assert!(
            leased.is_empty(),
            "{backend:?}: no direct send after the acknowledgement"
        );
        let queued = store
            .claim_jobs("engine", TimeDelta::seconds(60), 10)
            .await
            .unwrap();
        assert_eq!(
            queued.iter().filter(|j| j.kind == "deliver").count(),
            1,
            "{backend:?}: the page is queued, for its delivery to cancel: {queued:?}"
        );
    }
}

#[tokio::test]
async fn two_engines_on_one_postgres_send_each_page_once() {
    if !backends().contains(&Backend::Postgres) {
        eprintln!("PostgreSQL is off for tests; skipping the two-replica test");
        return;
    }
    let smtp = SmtpSink::start().await;
    let db = Arc::new(TestDatabase::fresh(Backend::Postgres).await);
    let one = spawn_with_smtp(Backend::Postgres, db.clone(), Arc::new(SystemClock), &smtp).await;
    let two = spawn_with_smtp(Backend::Postgres, db.clone(), Arc::new(SystemClock), &smtp).await;
    one.user("ana@example.com", Role::Responder, "ana's long password")
        .await;
    let service = paging_setup(&one.store, "ana@example.com").await;
    let mut handles = Vec::new();
    for i in 0..200 {
        let store = if i % 2 == 0 {
            one.store.clone()
        } else {
            two.store.clone()
        };
        handles.push(tokio::spawn(async move {
            store
                .declare_incident(
                    &new_incident(service, &format!("Incident {i}")),
                    &Audit::cli(),
                )
                .await
                .unwrap()
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let mails = smtp.wait_for(200, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mails = if smtp.messages().len() > mails.len() {
        smtp.messages()
    } else {
        mails
    };
    assert_eq!(mails.len(), 200, "every page once, none twice");
    let keys: BTreeSet<String> = mails
        .iter()
        .map(|m| {
            m.header("X-Heliograph-Idempotency-Key")
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(keys.len(), 200);
    let subjects: BTreeSet<String> = mails.iter().map(|m| m.subject.clone()).collect();
    assert_eq!(subjects.len(), 200);
    one.stop().await;
    two.stop().await;
}
