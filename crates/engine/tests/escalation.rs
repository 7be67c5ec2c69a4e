//! Escalation driven with a controllable clock, on SQLite and PostgreSQL: levels, delays,
//! repeats, severity-limited levels, working hours in each person's zone, acknowledgement.
//! Messages go to a recording channel here; real SMTP delivery is tested end to end in the
//! root package's tests.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};
use heliograph_domain::{
    DisplayName, FixedClock, Role, ServiceKind, Severity, TeamName, TimeZone, UserEmail,
    WorkloadClass,
};
use heliograph_engine::{Channels, Engine};
use heliograph_notify::{Channel, Message, SendError};
use heliograph_scheduler::{Layer, Rotation, ShiftLength, ShiftUnit};
use heliograph_store::escalation_policies::{Level, PolicyFields, Target};
use heliograph_store::incidents::NewIncident;
use heliograph_store::schedules::ScheduleFields;
use heliograph_store::services::{ResponseTarget, ResponseTargets, ServiceFields};
use heliograph_store::testdb::{TestDatabase, backends};
use heliograph_store::users::NewUser;
use heliograph_store::{Audit, Db, Store};

#[derive(Default, Clone)]
struct Recorder(Arc<Mutex<Vec<Message>>>);

#[async_trait::async_trait]
impl Channel for Recorder {
    async fn send(&self, message: &Message) -> Result<(), SendError> {
        self.0.lock().unwrap().push(message.clone());
        Ok(())
    }
}

impl Recorder {
    fn to(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|m| m.to.clone())
            .collect()
    }
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

struct World {
    _db: TestDatabase,
    store: Store,
    clock: FixedClock,
    engine: Engine,
    sent: Recorder,
    service: i64,
}

async fn user(store: &Store, name: &str, zone: &str) -> i64 {
    store
        .create_user(
            &NewUser {
                email: UserEmail::parse(&format!("{name}@example.com")).unwrap(),
                name: DisplayName::parse(name).unwrap(),
                time_zone: TimeZone::parse(zone).unwrap(),
                role: Role::Responder,
                password_hash: None,
            },
            &Audit::cli(),
        )
        .await
        .unwrap()
        .id
}

/// ana is always on call in the schedule; the policy pages the schedule, then bo, then cy
/// (SEV2 and more severe only), and runs twice.
async fn world(backend: heliograph_store::Backend, now: &str) -> World {
    let db = TestDatabase::fresh(backend).await;
    let conn = Db::connect(&db.url).await.unwrap();
    conn.migrate().await.unwrap();
    let clock = FixedClock::new(at(now));
    let store = Store::with_clock(conn, Arc::new(clock.clone()));
    let ana = user(&store, "ana", "Europe/London").await;
    let bo = user(&store, "bo", "America/New_York").await;
    let cy = user(&store, "cy", "Asia/Kathmandu").await;
    let team = store
        .create_team(
            &TeamName::parse("AI platform").unwrap(),
            &[ana, bo, cy],
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
                        participants: vec![ana],
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
                repeat: 1,
                levels: vec![
                    Level {
                        delay_minutes: 5,
                        min_severity: None,
                        targets: vec![Target::schedule(schedule.id)],
                    },
                    Level {
                        delay_minutes: 10,
                        min_severity: None,
                        targets: vec![Target::user(bo)],
                    },
                    Level {
                        delay_minutes: 5,
                        min_severity: Some(Severity::Sev2),
                        targets: vec![Target::user(cy)],
                    },
                ],
                low_severity_any_time: false,
            },
            &Audit::cli(),
        )
        .await
        .unwrap();
    let mut targets = ResponseTargets::default();
    targets.0.insert(
        Severity::Sev1,
        ResponseTarget {
            acknowledge_minutes: Some(10),
            resolve_minutes: Some(60),
        },
    );
    let service = store
        .create_service(
            &ServiceFields {
                name: "llm-gateway".into(),
                description: String::new(),
                kind: ServiceKind::LlmInference,
                workload_class: WorkloadClass::RealTime,
                team_id: Some(team.team.id),
                escalation_policy_id: Some(policy.id),
                response_targets: targets,
                grouping_window_minutes: 0,
                auto_resolve: true,
                severity_map: Default::default(),
            },
            &Audit::cli(),
        )
        .await
        .unwrap()
        .id;
    let sent = Recorder::default();
    let channel: Arc<dyn Channel> = Arc::new(sent.clone());
    let engine = Engine::new(
        store.clone(),
        Channels {
            email: channel.clone(),
            webhook: channel.clone(),
            slack: channel,
        },
        "http://heliograph.test",
        "test-worker".into(),
    );
    World {
        _db: db,
        store,
        clock,
        engine,
        sent,
        service,
    }
}

async fn declare(w: &World, severity: Severity) -> i64 {
    w.store
        .declare_incident(
            &NewIncident {
                title: "LLM gateway 5xx > 20%".into(),
                description: String::new(),
                description_html: String::new(),
                severity,
                service_ids: vec![w.service],
                commander_id: None,
            },
            &Audit::cli(),
        )
        .await
        .unwrap()
        .number
}

async fn step(w: &World, minutes: i64) -> Vec<String> {
    w.clock.advance(TimeDelta::minutes(minutes));
    w.engine.run_due().await.unwrap();
    w.sent.to()
}

#[tokio::test]
async fn levels_delays_repeats_and_acknowledgement() {
    for backend in backends() {
        // Monday 10:00 UTC: working hours for everyone but it does not matter for SEV1.
        let w = world(backend, "2026-11-30T10:00:00Z").await;
        let number = declare(&w, Severity::Sev1).await;
        assert_eq!(
            step(&w, 0).await,
            ["ana@example.com"],
            "{backend:?}: level 1 at once"
        );
        let first = w.sent.0.lock().unwrap()[0].clone();
        assert_eq!(first.subject, "[SEV1] #1 LLM gateway 5xx > 20%");
        assert!(
            first.text.contains("http://heliograph.test/act/"),
            "{}",
            first.text
        );
        assert_eq!(
            step(&w, 4).await.len(),
            1,
            "level 2 waits for level 1's 5 minutes"
        );
        assert_eq!(
            step(&w, 1).await[1],
            "bo@example.com",
            "level 2 after 5 minutes"
        );
        assert_eq!(step(&w, 9).await.len(), 2);
        assert_eq!(
            step(&w, 1).await[2],
            "cy@example.com",
            "level 3 (SEV2+) after 10 more"
        );
        // After level 3's 5 minutes the policy starts again: level 1 pages ana a second time.
        assert_eq!(step(&w, 5).await[3], "ana@example.com", "repeat 1");
        // The acknowledge-target of 10 minutes was missed and is on the incident.
        let incident = w.store.incident(number).await.unwrap();
        let breaches = w.store.incident_breaches(incident.id).await.unwrap();
        assert_eq!(breaches.len(), 1);
        assert_eq!(breaches[0].1, "acknowledge");
        // Acknowledgement stops it: nothing more, ever.
        w.store
            .acknowledge_incident(number, &Audit::cli())
            .await
            .unwrap();
        assert_eq!(step(&w, 5).await.len(), 4);
        assert_eq!(step(&w, 60).await.len(), 4);
        let notes = w.store.incident_notifications(incident.id).await.unwrap();
        assert_eq!(notes.len(), 4);
        assert!(notes.iter().all(|n| n.state == "sent"));
        let timeline = w.store.timeline(incident.id, false).await.unwrap();
        let texts: Vec<String> = timeline.iter().map(|e| e.body.clone()).collect();
        assert!(
            texts
                .iter()
                .any(|t| t.starts_with("Escalation level 1: paging ana")),
            "{texts:?}"
        );
        assert!(
            texts
                .iter()
                .any(|t| t.contains("starts again (repeat 1 of 1)")),
            "{texts:?}"
        );
        assert!(
            texts
                .iter()
                .any(|t| t.starts_with("Response target missed")),
            "{texts:?}"
        );
        // Running everything again sends nothing twice.
        assert_eq!(step(&w, 0).await.len(), 4);
    }
}

#[tokio::test]
async fn a_reopened_incident_starts_again_and_resolution_stops_it() {
    for backend in backends() {
        let w = world(backend, "2026-11-30T10:00:00Z").await;
        let number = declare(&w, Severity::Sev2).await;
        assert_eq!(step(&w, 0).await.len(), 1);
        w.store
            .resolve_incident(number, &Audit::cli())
            .await
            .unwrap();
        assert_eq!(
            step(&w, 30).await.len(),
            1,
            "{backend:?}: resolution stops escalation"
        );
        w.store
            .reopen_incident(number, &Audit::cli())
            .await
            .unwrap();
        assert_eq!(
            step(&w, 0).await,
            ["ana@example.com", "ana@example.com"],
            "reopen pages level 1 again"
        );
        assert_eq!(step(&w, 5).await[2], "bo@example.com");
    }
}

#[tokio::test]
async fn low_severity_waits_for_working_hours_in_each_persons_zone() {
    for backend in backends() {
        // Saturday 2026-11-28 10:00 UTC: a SEV3 is not paged on the weekend.
        let w = world(backend, "2026-11-28T10:00:00Z").await;
        let number = declare(&w, Severity::Sev3).await;
        assert!(
            step(&w, 0).await.is_empty(),
            "{backend:?}: held for ana's working hours"
        );
        let incident = w.store.incident(number).await.unwrap();
        let held = w.store.incident_notifications(incident.id).await.unwrap();
        assert_eq!(held.len(), 1);
        // Monday 09:00 in London (UTC in winter).
        assert_eq!(held[0].due_at, at("2026-11-30T09:00:00Z"));
        // Level 2 (bo, New York) after 5 minutes: also held, to Monday 09:00 EST = 14:00 UTC.
        step(&w, 5).await;
        let held = w.store.incident_notifications(incident.id).await.unwrap();
        assert_eq!(held[1].due_at, at("2026-11-30T14:00:00Z"));
        // Level 3 is SEV2-and-up only: skipped for this SEV3; the policy repeats instead.
        step(&w, 10).await;
        let timeline = w.store.timeline(incident.id, false).await.unwrap();
        assert!(
            timeline
                .iter()
                .any(|e| e.body == "Level 3 skipped: it pages only for SEV2 and more severe.")
        );
        // Monday 09:00 London: ana's page goes out; bo's waits for New York's morning.
        w.clock.set(at("2026-11-30T09:00:00Z"));
        w.engine.run_due().await.unwrap();
        assert_eq!(
            w.sent.to(),
            ["ana@example.com", "ana@example.com"],
            "level 1 and its repeat"
        );
        w.clock.set(at("2026-11-30T14:00:00Z"));
        w.engine.run_due().await.unwrap();
        assert!(w.sent.to().contains(&"bo@example.com".to_owned()));
    }
}

#[tokio::test]
async fn working_hours_in_a_quarter_hour_zone() {
    for backend in backends() {
        // Monday 03:00 UTC is 08:45 in Kathmandu (+05:45): cy's day starts at 09:00 local,
        // that is 03:15 UTC. A SEV3 policy paging cy directly waits fifteen minutes.
        let w = world(backend, "2026-11-30T03:00:00Z").await;
        let cy = w
            .store
            .user_by_email(&UserEmail::parse("cy@example.com").unwrap())
            .await
            .unwrap()
            .unwrap();
        let team = w.store.teams_of(cy.id).await.unwrap()[0].id;
        let policy = w
            .store
            .create_policy(
                &PolicyFields {
                    name: "Kathmandu".into(),
                    team_id: team,
                    repeat: 0,
                    levels: vec![Level {
                        delay_minutes: 30,
                        min_severity: None,
                        targets: vec![Target::user(cy.id)],
                    }],
                    low_severity_any_time: false,
                },
                &Audit::cli(),
            )
            .await
            .unwrap();
        let mut service = w.store.service(w.service).await.unwrap();
        service.escalation_policy_id = Some(policy.id);
        w.store
            .update_service(
                w.service,
                &ServiceFields {
                    name: service.name.clone(),
                    description: service.description.clone(),
                    kind: service.kind,
                    workload_class: service.workload_class,
                    team_id: service.team_id,
                    escalation_policy_id: Some(policy.id),
                    response_targets: service.response_targets.clone(),
                    grouping_window_minutes: 0,
                    auto_resolve: true,
                    severity_map: Default::default(),
                },
                &Audit::cli(),
            )
            .await
            .unwrap();
        let number = declare(&w, Severity::Sev4).await;
        assert!(step(&w, 0).await.is_empty());
        let incident = w.store.incident(number).await.unwrap();
        assert_eq!(
            w.store.incident_notifications(incident.id).await.unwrap()[0].due_at,
            at("2026-11-30T03:15:00Z"),
            "{backend:?}"
        );
        assert!(step(&w, 14).await.is_empty());
        assert_eq!(step(&w, 1).await, ["cy@example.com"]);
        // A SEV1 pages at any hour.
        w.clock.set(at("2026-11-29T01:00:00Z"));
        let _ = declare(&w, Severity::Sev1).await;
        assert_eq!(step(&w, 0).await.len(), 2);
    }
}

#[tokio::test]
async fn handoff_notices_before_a_shift_and_when_an_override_moves_people() {
    for backend in backends() {
        let w = world(backend, "2026-11-30T07:00:00Z").await;
        let ana = w
            .store
            .user_by_email(&UserEmail::parse("ana@example.com").unwrap())
            .await
            .unwrap()
            .unwrap()
            .id;
        let bo = w
            .store
            .user_by_email(&UserEmail::parse("bo@example.com").unwrap())
            .await
            .unwrap()
            .unwrap()
            .id;
        let team = w.store.teams_of(ana).await.unwrap()[0].id;
        // A daily rotation ana → bo handing off at 09:00 UTC; bo is on from Tuesday 09:00.
        let schedule = w
            .store
            .create_schedule(
                &ScheduleFields {
                    name: "Daily".into(),
                    time_zone: TimeZone::UTC,
                    team_id: team,
                    layers: vec![Layer {
                        name: "Day".into(),
                        rotation: Rotation {
                            participants: vec![ana, bo],
                            shift: ShiftLength {
                                unit: ShiftUnit::Days,
                                count: 1,
                            },
                            handoff: "2026-11-30T09:00:00".parse().unwrap(),
                            handoff_time_zone: chrono_tz::UTC,
                        },
                        restrictions: vec![],
                    }],
                },
                &Audit::cli(),
            )
            .await
            .unwrap();
        // Monday 07:00: ana starts at 09:00, her lead time is 60 minutes: nothing yet.
        assert!(step(&w, 0).await.is_empty(), "{backend:?}");
        // 08:00: ana hears of her shift.
        let sent = step(&w, 60).await;
        assert_eq!(sent, ["ana@example.com"]);
        let subject = w.sent.0.lock().unwrap()[0].subject.clone();
        assert_eq!(
            subject,
            "[Heliograph] Your on-call shift for Daily starts Mon 30 Nov 09:00 GMT"
        );
        // Scanning again sends nothing twice.
        assert_eq!(step(&w, 3).await.len(), 1);
        // An override puts bo on call for Monday afternoon: bo is told he is on, ana off.
        let start = at("2026-11-30T13:00:00Z");
        let end = at("2026-11-30T17:00:00Z");
        w.store
            .create_override(
                schedule.id,
                bo,
                start,
                end,
                &[
                    heliograph_store::schedules::NewNotice {
                        user_id: bo,
                        on_call: true,
                        start,
                        end,
                        reason: "test".into(),
                    },
                    heliograph_store::schedules::NewNotice {
                        user_id: ana,
                        on_call: false,
                        start,
                        end,
                        reason: "test".into(),
                    },
                ],
                &Audit::cli(),
            )
            .await
            .unwrap();
        let sent = step(&w, 0).await;
        assert_eq!(sent.len(), 3);
        let subjects: Vec<String> = w
            .sent
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|m| m.subject.clone())
            .collect();
        // Each in their own zone: bo is in New York.
        assert!(subjects.iter().any(|s| s == "[Heliograph] You are now on call for Daily from Mon 30 Nov 08:00 EST to Mon 30 Nov 12:00 EST"), "{subjects:?}");
        assert!(subjects.iter().any(|s| s == "[Heliograph] You are no longer on call for Daily from Mon 30 Nov 13:00 GMT to Mon 30 Nov 17:00 GMT"), "{subjects:?}");
        assert!(
            w.store
                .unsent_schedule_notices(10)
                .await
                .unwrap()
                .is_empty()
        );
    }
}

/// The escalation steps of one claim read their contexts, schedules and people together; each
/// still pages its own level's people, and an incident acknowledged before the claim pages
/// nobody.
#[tokio::test]
async fn the_steps_of_one_claim_each_page_their_own_people() {
    for backend in backends() {
        let w = world(backend, "2026-11-30T10:00:00Z").await;
        let first = declare(&w, Severity::Sev1).await;
        assert_eq!(step(&w, 0).await, ["ana@example.com"], "{backend:?}");
        // Five minutes on, the first incident's level 2 is due together with level 1 of two
        // new incidents and of a third acknowledged at once: one claim.
        w.clock.advance(TimeDelta::minutes(5));
        let second = declare(&w, Severity::Sev1).await;
        let third = declare(&w, Severity::Sev2).await;
        let acknowledged = declare(&w, Severity::Sev1).await;
        w.store
            .acknowledge_incident(acknowledged, &Audit::cli())
            .await
            .unwrap();
        let mut sent = step(&w, 0).await;
        sent.sort();
        assert_eq!(
            sent,
            [
                "ana@example.com",
                "ana@example.com",
                "ana@example.com",
                "bo@example.com"
            ],
            "{backend:?}"
        );
        for (number, expected) in [
            (first, vec!["ana@example.com", "bo@example.com"]),
            (second, vec!["ana@example.com"]),
            (third, vec!["ana@example.com"]),
            (acknowledged, vec![]),
        ] {
            let incident = w.store.incident(number).await.unwrap();
            let to: Vec<String> = w
                .store
                .incident_notifications(incident.id)
                .await
                .unwrap()
                .into_iter()
                .map(|n| n.address)
                .collect();
            assert_eq!(to, expected, "{backend:?}: incident #{number}");
        }
    }
}
