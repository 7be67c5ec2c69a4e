//! The incident store on both backends: declare, transitions, concurrency, versions, lists.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use heliograph_domain::{
    DisplayName, FixedClock, IncidentRole, IncidentStatus, Phase, Role, ServiceKind, Severity,
    TeamName, TimeZone, UserEmail, WorkloadClass,
};
use heliograph_store::incidents::{IncidentFilter, NewIncident};
use heliograph_store::services::ServiceFields;
use heliograph_store::testdb::{TestDatabase, backends};
use heliograph_store::users::{NewUser, User};
use heliograph_store::{Audit, Db, Store, StoreError};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

async fn setup(
    backend: heliograph_store::Backend,
) -> (TestDatabase, Store, FixedClock, User, Audit) {
    let db = TestDatabase::fresh(backend).await;
    let conn = Db::connect(&db.url).await.unwrap();
    conn.migrate().await.unwrap();
    let clock = FixedClock::new(at("2026-11-01T05:00:00Z"));
    let store = Store::with_clock(conn, Arc::new(clock.clone()));
    let user = store
        .create_user(
            &NewUser {
                email: UserEmail::parse("ic@example.com").unwrap(),
                name: DisplayName::parse("Ida").unwrap(),
                time_zone: TimeZone::UTC,
                role: Role::Responder,
                password_hash: None,
            },
            &Audit::cli(),
        )
        .await
        .unwrap();
    let audit = Audit {
        actor_user_id: Some(user.id),
        actor: "ic@example.com".into(),
        client_addr: None,
    };
    (db, store, clock, user, audit)
}

fn service(name: &str, team_id: Option<i64>) -> ServiceFields {
    ServiceFields {
        name: name.into(),
        description: "LLM gateway".into(),
        kind: ServiceKind::LlmInference,
        workload_class: WorkloadClass::RealTime,
        team_id,
        escalation_policy_id: None,
        response_targets: Default::default(),
        grouping_window_minutes: 0,
        auto_resolve: true,
        severity_map: Default::default(),
    }
}

#[tokio::test]
async fn declare_acknowledge_resolve_reopen_with_a_timeline() {
    for backend in backends() {
        let (_db, store, clock, user, audit) = setup(backend).await;
        let svc = store
            .create_service(&service("llm-gateway", None), &audit)
            .await
            .unwrap();
        let dup = store
            .create_service(&service("llm-gateway", None), &audit)
            .await;
        assert!(
            matches!(dup, Err(StoreError::Conflict(ref m)) if m.contains("already exists")),
            "{dup:?}"
        );
        let new = NewIncident {
            title: "5xx > 20%".into(),
            description: "**bad**".into(),
            description_html: "<p><strong>bad</strong></p>".into(),
            severity: Severity::Sev1,
            service_ids: vec![svc.id],
            commander_id: Some(user.id),
        };
        let first = store.declare_incident(&new, &audit).await.unwrap();
        let second = store.declare_incident(&new, &audit).await.unwrap();
        assert_eq!((first.number, second.number), (1, 2), "{backend:?}");
        assert_eq!(first.status, IncidentStatus::Triggered);

        clock.advance(TimeDelta::minutes(3));
        let acked = store.acknowledge_incident(1, &audit).await.unwrap();
        assert_eq!(acked.acknowledged_at, Some(at("2026-11-01T05:03:00Z")));
        assert!(matches!(
            store.acknowledge_incident(1, &audit).await,
            Err(StoreError::Conflict(_))
        ));
        store
            .post_update(
                1,
                Phase::Identified,
                "Bad deploy of the tokenizer",
                "<p>Bad deploy of the tokenizer</p>",
                &audit,
            )
            .await
            .unwrap();
        store
            .change_severity(1, Severity::Sev2, "only EU affected", &audit)
            .await
            .unwrap();
        clock.advance(TimeDelta::minutes(30));
        let resolved = store.resolve_incident(1, &audit).await.unwrap();
        assert_eq!(resolved.resolved_at, Some(at("2026-11-01T05:33:00Z")));
        let reopened = store.reopen_incident(1, &audit).await.unwrap();
        assert_eq!(reopened.status, IncidentStatus::Triggered);
        assert_eq!(
            reopened.acknowledged_at, acked.acknowledged_at,
            "history kept on reopen"
        );
        assert_eq!(reopened.resolved_at, resolved.resolved_at);

        let timeline = store.timeline(first.id, false).await.unwrap();
        let kinds: Vec<&str> = timeline.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds,
            // No escalation policy on the incident's services: declaring and reopening say
            // at once that nobody was paged, without waiting for the engine.
            [
                "declared",
                "escalation",
                "acknowledged",
                "status_update",
                "severity_changed",
                "resolved",
                "reopened",
                "escalation"
            ],
            "{backend:?}"
        );
        assert!(timeline[4].body.contains("SEV1 → SEV2: only EU affected"));
        assert_eq!(timeline[1].actor, "Heliograph");
        let updates = store.timeline(first.id, true).await.unwrap();
        assert_eq!(updates.len(), 1);
        assert_eq!(updates[0].phase.as_deref(), Some("identified"));
        assert_eq!(
            updates[0].body_html, "<p>Bad deploy of the tokenizer</p>",
            "rendered HTML stored with the entry"
        );
        assert_eq!(
            store.incident(1).await.unwrap().description_html,
            "<p><strong>bad</strong></p>"
        );

        let detail = store.incident_detail(1).await.unwrap();
        assert_eq!(detail.services[0].name, "llm-gateway");
        assert_eq!(detail.commander.as_ref().map(|u| u.id), Some(user.id));
        store
            .assign_role(1, IncidentRole::Scribe, Some(&user), &audit)
            .await
            .unwrap();
        store.add_responder(1, &user, &audit).await.unwrap();
        assert!(matches!(
            store.add_responder(1, &user, &audit).await,
            Err(StoreError::Conflict(_))
        ));
        let detail = store.incident_detail(1).await.unwrap();
        assert_eq!(detail.scribe.map(|u| u.id), Some(user.id));
        assert_eq!(detail.responders.len(), 1);

        let bad = store
            .declare_incident(
                &NewIncident {
                    service_ids: vec![999],
                    ..new.clone()
                },
                &audit,
            )
            .await;
        assert!(
            matches!(bad, Err(StoreError::Conflict(ref m)) if m.contains("999")),
            "{bad:?}"
        );
        assert!(
            matches!(store.incident(3).await, Err(StoreError::NotFound)),
            "nothing half-written"
        );
    }
}

/// A declaration returns its row exactly as stored (instants to the microsecond), with its
/// services, timeline and audit entry; one naming a service that does not exist is refused
/// whole and takes no number.
#[tokio::test]
async fn a_declaration_returns_its_row_and_a_refused_one_takes_no_number() {
    for backend in backends() {
        let (_db, store, clock, user, audit) = setup(backend).await;
        clock.set(at("2026-11-01T05:00:00.123456789Z"));
        let a = store
            .create_service(&service("llm-gateway", None), &audit)
            .await
            .unwrap();
        let b = store
            .create_service(&service("vector-db", None), &audit)
            .await
            .unwrap();
        let new = |service_ids: Vec<i64>| NewIncident {
            title: "Embeddings stale".into(),
            description: "Index build stuck".into(),
            description_html: "<p>Index build stuck</p>".into(),
            severity: Severity::Sev2,
            service_ids,
            commander_id: Some(user.id),
        };
        let refused = store
            .declare_incident(&new(vec![a.id, b.id + 100]), &audit)
            .await;
        assert!(
            matches!(refused, Err(StoreError::Conflict(ref m)) if m.contains("does not exist")),
            "{backend:?}: {refused:?}"
        );
        let declared = store
            .declare_incident(&new(vec![b.id, a.id, b.id]), &audit)
            .await
            .unwrap();
        assert_eq!(
            declared.number, 1,
            "{backend:?}: the refused one took no number"
        );
        assert_eq!(
            declared,
            store.incident(1).await.unwrap(),
            "{backend:?}: what was returned is the row"
        );
        assert_eq!(
            store
                .incident_service_ids(declared.id, declared.id)
                .await
                .unwrap(),
            [(declared.id, a.id), (declared.id, b.id)],
            "{backend:?}"
        );
        let kinds: Vec<String> = store
            .timeline(declared.id, false)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, ["declared", "escalation"], "{backend:?}");
        assert_eq!(
            store
                .incidents(&IncidentFilter::default(), 10, 0)
                .await
                .unwrap()
                .len(),
            1,
            "{backend:?}"
        );
    }
}

#[tokio::test]
async fn simultaneous_acknowledgements_yield_one() {
    for backend in backends() {
        let (_db, store, _clock, _user, audit) = setup(backend).await;
        let new = NewIncident {
            title: "vector-db p99".into(),
            description: String::new(),
            description_html: String::new(),
            severity: Severity::Sev2,
            service_ids: vec![],
            commander_id: None,
        };
        let incident = store.declare_incident(&new, &audit).await.unwrap();
        let attempts = (0..8).map(|_| {
            let store = store.clone();
            let audit = audit.clone();
            tokio::spawn(async move { store.acknowledge_incident(1, &audit).await })
        });
        let results = futures_join(attempts.collect()).await;
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "{backend:?}"
        );
        let acks = store
            .timeline(incident.id, false)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == "acknowledged")
            .count();
        assert_eq!(acks, 1);
    }
}

async fn futures_join<T>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn stale_edits_are_refused() {
    for backend in backends() {
        let (_db, store, _clock, _user, audit) = setup(backend).await;
        let new = NewIncident {
            title: "t".into(),
            description: "d".into(),
            description_html: "<p>d</p>".into(),
            severity: Severity::Sev3,
            service_ids: vec![],
            commander_id: None,
        };
        let incident = store.declare_incident(&new, &audit).await.unwrap();
        let edited = store
            .edit_incident(1, "first edit", "d1", "<p>d1</p>", incident.version, &audit)
            .await
            .unwrap();
        assert_eq!(edited.version, incident.version + 1);
        let stale = store
            .edit_incident(
                1,
                "second edit",
                "d2",
                "<p>d2</p>",
                incident.version,
                &audit,
            )
            .await;
        assert!(
            matches!(stale, Err(StoreError::Conflict(ref m)) if m.contains("Someone else changed")),
            "{backend:?} {stale:?}"
        );
        assert_eq!(store.incident(1).await.unwrap().title, "first edit");
    }
}

#[tokio::test]
async fn the_list_filters_searches_and_counts() {
    for backend in backends() {
        let (_db, store, clock, _user, audit) = setup(backend).await;
        let team = store
            .create_team(&TeamName::parse("Search").unwrap(), &[], &audit)
            .await
            .unwrap();
        let vdb = store
            .create_service(
                &ServiceFields {
                    kind: ServiceKind::VectorDb,
                    ..service("vector-db", Some(team.team.id))
                },
                &audit,
            )
            .await
            .unwrap();
        let gw = store
            .create_service(&service("llm-gateway", None), &audit)
            .await
            .unwrap();
        for (title, sev, svc) in [
            ("Gateway 5xx", Severity::Sev1, gw.id),
            ("Index rebuild slow", Severity::Sev3, vdb.id),
            ("Gateway latency 100%_ok", Severity::Sev2, gw.id),
        ] {
            store
                .declare_incident(
                    &NewIncident {
                        title: title.into(),
                        description: String::new(),
                        description_html: String::new(),
                        severity: sev,
                        service_ids: vec![svc],
                        commander_id: None,
                    },
                    &audit,
                )
                .await
                .unwrap();
            clock.advance(TimeDelta::hours(1));
        }
        store.resolve_incident(3, &audit).await.unwrap();
        let all = store
            .incidents(&IncidentFilter::default(), 50, 0)
            .await
            .unwrap();
        let numbers: Vec<i64> = all.iter().map(|r| r.incident.number).collect();
        assert_eq!(numbers, [2, 1, 3], "{backend:?}: open first, then recent");
        let by = |f: IncidentFilter| {
            let store = store.clone();
            async move {
                store
                    .incidents(&f, 50, 0)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.incident.number)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            by(IncidentFilter {
                severity: Some(Severity::Sev1),
                ..Default::default()
            })
            .await,
            [1]
        );
        assert_eq!(
            by(IncidentFilter {
                service_id: Some(gw.id),
                ..Default::default()
            })
            .await,
            [1, 3]
        );
        assert_eq!(
            by(IncidentFilter {
                team_id: Some(team.team.id),
                ..Default::default()
            })
            .await,
            [2]
        );
        assert_eq!(
            by(IncidentFilter {
                open_only: true,
                ..Default::default()
            })
            .await,
            [2, 1]
        );
        assert_eq!(
            by(IncidentFilter {
                status: Some(IncidentStatus::Resolved),
                ..Default::default()
            })
            .await,
            [3]
        );
        assert_eq!(
            by(IncidentFilter {
                search: Some("gateway 5XX".into()),
                ..Default::default()
            })
            .await,
            [1]
        );
        assert_eq!(
            by(IncidentFilter {
                search: Some("#2".into()),
                ..Default::default()
            })
            .await,
            [2]
        );
        assert_eq!(
            by(IncidentFilter {
                search: Some("100%_".into()),
                ..Default::default()
            })
            .await,
            [3],
            "LIKE wildcards are literal"
        );
        assert_eq!(
            by(IncidentFilter {
                search: Some("%".into()),
                ..Default::default()
            })
            .await,
            [3]
        );
        let start = at("2026-11-01T05:00:00Z");
        assert_eq!(
            by(IncidentFilter {
                from: Some(start + TimeDelta::minutes(30)),
                to: Some(start + TimeDelta::minutes(90)),
                ..Default::default()
            })
            .await,
            [2]
        );
        let counts = store
            .incident_counts(&IncidentFilter {
                service_id: Some(gw.id),
                status: Some(IncidentStatus::Resolved),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(
            (counts.triggered, counts.acknowledged, counts.resolved),
            (1, 0, 1)
        );
        assert_eq!(
            store
                .incidents(&IncidentFilter::default(), 1, 1)
                .await
                .unwrap()[0]
                .incident
                .number,
            1,
            "pages"
        );
    }
}

#[tokio::test]
async fn declared_and_seeded_incidents_share_one_number_sequence() {
    for backend in backends() {
        let (_db, store, _clock, _user, audit) = setup(backend).await;
        let new = NewIncident {
            title: "First".into(),
            description: String::new(),
            description_html: String::new(),
            severity: Severity::Sev2,
            service_ids: vec![],
            commander_id: None,
        };
        assert_eq!(
            store.declare_incident(&new, &audit).await.unwrap().number,
            1
        );
        let seed = |title: &str| heliograph_store::seed::SeedIncident {
            title: title.into(),
            description: String::new(),
            description_html: String::new(),
            severity: Severity::Sev3,
            status: IncidentStatus::Resolved,
            commander_id: None,
            service_ids: vec![],
            triggered_at: store.now() - TimeDelta::hours(2),
            acknowledged_at: None,
            resolved_at: Some(store.now() - TimeDelta::hours(1)),
            timeline: vec![],
        };
        let numbers = store
            .seed_incidents(&[seed("a"), seed("b"), seed("c")], &audit)
            .await
            .unwrap();
        assert_eq!(numbers, [2, 3, 4], "{backend:?}");
        assert_eq!(
            store.declare_incident(&new, &audit).await.unwrap().number,
            5
        );
        assert_eq!(store.incident(3).await.unwrap().title, "b");
    }
}

/// The next announced incident number, or `None` after 5 s.
async fn next(listener: &mut heliograph_store::incidents::IncidentListener) -> Option<Option<i64>> {
    tokio::time::timeout(std::time::Duration::from_secs(5), listener.recv())
        .await
        .ok()
        .map(|n| n.unwrap())
}

/// PostgreSQL announces each changed incident to every replica's listener, after the change
/// has committed (so a listener that reads on hearing it sees the change), once per
/// transaction, and not at all for a change that failed.
#[tokio::test]
async fn changes_are_announced_after_they_commit() {
    let Some(backend) = backends()
        .into_iter()
        .find(|b| *b == heliograph_store::Backend::Postgres)
    else {
        return;
    };
    let (_db, store, _clock, _user, audit) = setup(backend).await;
    let mut listener = store.incident_listener().await.unwrap().unwrap();
    let new = NewIncident {
        title: "vector index rebuild stalled".into(),
        description: String::new(),
        description_html: String::new(),
        severity: Severity::Sev2,
        service_ids: vec![],
        commander_id: None,
    };
    let declared = store.declare_incident(&new, &audit).await.unwrap();
    assert_eq!(next(&mut listener).await, Some(Some(declared.number)));
    // Read through another connection the moment the announcement arrives.
    store
        .acknowledge_incident(declared.number, &audit)
        .await
        .unwrap();
    assert_eq!(next(&mut listener).await, Some(Some(declared.number)));
    let seen = store.incident(declared.number).await.unwrap();
    assert_eq!(seen.status, IncidentStatus::Acknowledged);
    // A refused change (already acknowledged) commits nothing and announces nothing; the next
    // announcement is the resolution's.
    assert!(
        store
            .acknowledge_incident(declared.number, &audit)
            .await
            .is_err()
    );
    store
        .resolve_incident(declared.number, &audit)
        .await
        .unwrap();
    assert_eq!(next(&mut listener).await, Some(Some(declared.number)));
    assert_eq!(
        store.incident(declared.number).await.unwrap().status,
        IncidentStatus::Resolved
    );
    assert_eq!(
        tokio::time::timeout(std::time::Duration::from_millis(300), listener.recv())
            .await
            .ok()
            .map(|n| n.unwrap()),
        None,
        "nothing else was announced"
    );
}

async fn count(store: &Store, sql: &str) -> i64 {
    let (n,): (i64,) = match store.db() {
        Db::Sqlite { read, .. } => sqlx::query_as(sql).fetch_one(read).await.unwrap(),
        Db::Postgres(pool, _) => sqlx::query_as(sql).fetch_one(pool).await.unwrap(),
    };
    n
}

/// Declarations made at the same moment go to the database together (one transaction on
/// SQLite; on PostgreSQL one statement to read their services and draw their numbers, one to
/// write them all), and each is still whole or refused on its own: one naming a service that
/// does not exist takes no number, one whose commander does not exist fails alone, and every
/// other is written with its services, entries, response-target check and audit entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_declarations_are_written_together_each_whole_or_refused() {
    const EACH: usize = 20;
    for backend in backends() {
        let (_db, store, _clock, user, audit) = setup(backend).await;
        let mut with_target = service("llm-gateway", None);
        with_target.response_targets.0.insert(
            Severity::Sev2,
            heliograph_store::services::ResponseTarget {
                acknowledge_minutes: Some(15),
                resolve_minutes: None,
            },
        );
        let a = store.create_service(&with_target, &audit).await.unwrap();
        let b = store
            .create_service(&service("vector-db", None), &audit)
            .await
            .unwrap();
        // In the second wave, some name a service that does not exist, some a commander
        // who does not exist.
        let missing_service = |i: usize| i >= EACH && i % 5 == 1;
        let missing_commander = |i: usize| i >= EACH && i % 5 == 3;
        let declare = |range: std::ops::Range<usize>| {
            range
                .map(|i| {
                    let (store, audit) = (store.clone(), audit.clone());
                    let mut service_ids = if i % 2 == 0 {
                        vec![a.id]
                    } else {
                        vec![b.id, a.id]
                    };
                    if missing_service(i) {
                        service_ids.push(b.id + 1000);
                    }
                    let new = NewIncident {
                        title: format!("Feature store lagging ({i})"),
                        description: String::new(),
                        description_html: String::new(),
                        severity: Severity::Sev2,
                        service_ids,
                        commander_id: Some(if missing_commander(i) {
                            user.id + 1000
                        } else {
                            user.id
                        }),
                    };
                    tokio::spawn(async move { (i, store.declare_incident(&new, &audit).await) })
                })
                .collect::<Vec<_>>()
        };
        let mut results = Vec::new();
        let grouped_before = store.writes_grouped();
        for task in declare(0..EACH) {
            results.push(task.await.unwrap());
        }
        let grouped_first = store.writes_grouped();
        assert!(
            grouped_first > grouped_before,
            "{backend:?}: no declarations were written together"
        );
        for task in declare(EACH..2 * EACH) {
            results.push(task.await.unwrap());
        }
        // On SQLite a failing declaration undoes its group, whose declarations then run
        // again alone; on PostgreSQL they share statements.
        if backend == heliograph_store::Backend::Postgres {
            assert!(
                store.writes_grouped() > grouped_first,
                "{backend:?}: no declarations were written together beside refused ones"
            );
        }
        let mut numbers = std::collections::BTreeSet::new();
        let mut refused_commanders = 0;
        for (i, result) in results {
            if missing_service(i) {
                assert!(
                    matches!(result, Err(StoreError::Conflict(ref m)) if m.contains("does not exist")),
                    "{backend:?}: {i}: {result:?}"
                );
                continue;
            }
            if missing_commander(i) {
                assert!(result.is_err(), "{backend:?}: {i}: {result:?}");
                refused_commanders += 1;
                continue;
            }
            let incident = result.unwrap_or_else(|e| panic!("{backend:?}: {i}: {e}"));
            assert!(
                numbers.insert(incident.number),
                "{backend:?}: {i}: number twice"
            );
            assert_eq!(
                incident,
                store.incident(incident.number).await.unwrap(),
                "{backend:?}: {i}: what was returned is the row"
            );
            let mut services = vec![a.id];
            if i % 2 == 1 {
                services.push(b.id);
            }
            services.sort_unstable();
            let stored: Vec<i64> = store
                .incident_service_ids(incident.id, incident.id)
                .await
                .unwrap()
                .into_iter()
                .map(|(_, s)| s)
                .collect();
            assert_eq!(stored, services, "{backend:?}: {i}");
            let kinds: Vec<String> = store
                .timeline(incident.id, false)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.kind)
                .collect();
            assert_eq!(kinds, ["declared", "escalation"], "{backend:?}: {i}");
            let rows = |sql: String| {
                let store = store.clone();
                async move { count(&store, &sql).await }
            };
            let checks = rows(format!(
                "SELECT COUNT(*) FROM jobs WHERE dedup_key = 'target:{}:{}:acknowledge' AND run_at > created_at",
                incident.id, a.id
            ))
            .await;
            let positions = rows(format!(
                "SELECT COUNT(*) FROM incident_escalations WHERE incident_id = {} AND epoch = 1",
                incident.id
            ))
            .await;
            let audited = rows(format!(
                "SELECT COUNT(*) FROM audit_log WHERE action = 'incident.declare' AND target_id = '{}' AND actor_user_id = {}",
                incident.number, user.id
            ))
            .await;
            assert_eq!((checks, positions, audited), (1, 1, 1), "{backend:?}: {i}");
        }
        assert_eq!(numbers.len(), 2 * EACH - 8, "{backend:?}");
        // Only a declaration that failed after drawing its number leaves a gap.
        let last = *numbers.last().unwrap() as usize;
        assert!(
            last <= numbers.len() + refused_commanders,
            "{backend:?}: numbers {numbers:?}"
        );
        assert_eq!(
            count(&store, "SELECT COUNT(*) FROM incidents").await as usize,
            numbers.len(),
            "{backend:?}"
        );
    }
}
