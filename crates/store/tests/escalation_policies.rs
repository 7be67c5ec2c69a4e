//! The escalation policy store on both backends: versioned levels, the targets mirror, the
//! audit entries, and services keeping their policy and response targets.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use heliograph_domain::{
    DisplayName, FixedClock, Role, ServiceKind, Severity, TeamName, TimeZone, UserEmail,
    WorkloadClass,
};
use heliograph_store::escalation_policies::{Level, PolicyFields, Target};
use heliograph_store::schedules::ScheduleFields;
use heliograph_store::services::{ResponseTarget, ResponseTargets, ServiceFields};
use heliograph_store::testdb::{TestDatabase, backends};
use heliograph_store::users::NewUser;
use heliograph_store::{Audit, Db, Store, StoreError};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

struct Setup {
    _db: TestDatabase,
    store: Store,
    users: Vec<i64>,
    team_id: i64,
    schedule_id: i64,
}

async fn setup(backend: heliograph_store::Backend) -> Setup {
    let db = TestDatabase::fresh(backend).await;
    let conn = Db::connect(&db.url).await.unwrap();
    conn.migrate().await.unwrap();
    let store = Store::with_clock(conn, Arc::new(FixedClock::new(at("2026-03-01T00:00:00Z"))));
    let mut users = Vec::new();
    for name in ["ana", "ben"] {
        users.push(
            store
                .create_user(
                    &NewUser {
                        email: UserEmail::parse(&format!("{name}@example.com")).unwrap(),
                        name: DisplayName::parse(name).unwrap(),
                        time_zone: TimeZone::UTC,
                        role: Role::Manager,
                        password_hash: None,
                    },
                    &Audit::cli(),
                )
                .await
                .unwrap()
                .id,
        );
    }
    let team_id = store
        .create_team(
            &TeamName::parse("AI platform").unwrap(),
            &users,
            &Audit::cli(),
        )
        .await
        .unwrap()
        .team
        .id;
    let layer = serde_json::from_value(serde_json::json!({
        "name": "Primary", "participants": [users[0]],
        "shift": {"unit": "days", "count": 1},
        "handoff": "2026-01-01T09:00:00", "handoff_time_zone": "UTC", "restrictions": []
    }))
    .unwrap();
    let schedule_id = store
        .create_schedule(
            &ScheduleFields {
                name: "Primary".into(),
                time_zone: TimeZone::UTC,
                team_id,
                layers: vec![layer],
            },
            &Audit::cli(),
        )
        .await
        .unwrap()
        .id;
    Setup {
        _db: db,
        store,
        users,
        team_id,
        schedule_id,
    }
}

fn fields(s: &Setup, name: &str) -> PolicyFields {
    PolicyFields {
        name: name.into(),
        team_id: s.team_id,
        repeat: 2,
        levels: vec![
            Level {
                delay_minutes: 5,
                min_severity: None,
                targets: vec![Target::schedule(s.schedule_id)],
            },
            Level {
                delay_minutes: 10,
                min_severity: Some(Severity::Sev2),
                targets: vec![Target::user(s.users[1])],
            },
        ],
        low_severity_any_time: false,
    }
}

#[test]
fn targets_and_levels_use_the_contract_shape() {
    let level: Level = serde_json::from_str(
        r#"{"delay_minutes": 10, "min_severity": "SEV2", "targets": [{"type": "user", "id": 7}]}"#,
    )
    .unwrap();
    assert_eq!(level.targets, vec![Target::user(7)]);
    assert!(level.applies_to(Severity::Sev1) && level.applies_to(Severity::Sev2));
    assert!(!level.applies_to(Severity::Sev3));
    assert_eq!(
        serde_json::to_value(Target::schedule(1)).unwrap(),
        serde_json::json!({"type": "schedule", "id": 1})
    );
    assert!(serde_json::from_str::<Target>(r#"{"type": "team", "id": 1}"#).is_err());
}

#[tokio::test]
async fn policies_are_created_read_updated_with_versions_and_deleted() {
    for backend in backends() {
        let s = setup(backend).await;
        let audit = Audit::cli();
        let p = s
            .store
            .create_policy(&fields(&s, "LLM gateway"), &audit)
            .await
            .unwrap();
        assert_eq!(p.version, 1);
        assert_eq!(p.repeat, 2);
        assert_eq!(s.store.policy(p.id).await.unwrap(), p, "{backend:?}");
        assert_eq!(
            s.store
                .policies_using_schedule(s.schedule_id)
                .await
                .unwrap(),
            vec![p.id]
        );
        assert_eq!(
            s.store.policies_using_user(s.users[1]).await.unwrap(),
            vec![p.id]
        );
        let dup = s
            .store
            .create_policy(&fields(&s, "LLM gateway"), &audit)
            .await;
        assert!(
            matches!(dup, Err(StoreError::Conflict(ref m)) if m.contains("already exists")),
            "{dup:?}"
        );
        // A schedule still paged cannot be deleted from under the policy.
        assert!(
            s.store
                .delete_schedule(s.schedule_id, &audit)
                .await
                .is_err()
        );

        let second = s
            .store
            .create_policy(&fields(&s, "Vector DB"), &audit)
            .await
            .unwrap();
        assert_eq!(
            s.store
                .policies()
                .await
                .unwrap()
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>(),
            ["LLM gateway", "Vector DB"]
        );
        let page = s.store.policies_page(1, None).await.unwrap();
        assert_eq!(page.items[0].id, second.id, "newest first");
        let rest = s.store.policies_page(1, page.next_cursor).await.unwrap();
        assert_eq!(rest.items[0].id, p.id);
        assert_eq!(rest.next_cursor, None);

        // Update: only users now; the mirror follows; a stale version changes nothing.
        let mut changed = fields(&s, "LLM gateway");
        changed.levels.truncate(1);
        changed.levels[0].targets = vec![Target::user(s.users[0])];
        changed.low_severity_any_time = true;
        let after = s
            .store
            .update_policy(p.id, &changed, Some(1), &audit)
            .await
            .unwrap();
        assert_eq!(after.version, 2);
        assert!(after.low_severity_any_time);
        assert_eq!(
            s.store
                .policies_using_schedule(s.schedule_id)
                .await
                .unwrap(),
            vec![second.id],
            "only the other policy still pages the schedule"
        );
        let stale = s
            .store
            .update_policy(p.id, &fields(&s, "X"), Some(1), &audit)
            .await;
        assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
        assert_eq!(s.store.policy(p.id).await.unwrap(), after);

        // A service keeps its policy and targets; deleting the policy leaves the service.
        let mut targets = BTreeMap::new();
        targets.insert(
            Severity::Sev1,
            ResponseTarget {
                acknowledge_minutes: Some(5),
                resolve_minutes: Some(60),
            },
        );
        let svc = s
            .store
            .create_service(
                &ServiceFields {
                    name: "llm-gateway".into(),
                    description: String::new(),
                    kind: ServiceKind::LlmInference,
                    workload_class: WorkloadClass::RealTime,
                    team_id: Some(s.team_id),
                    escalation_policy_id: Some(p.id),
                    response_targets: ResponseTargets(targets.clone()),
                    grouping_window_minutes: 0,
                    auto_resolve: true,
                    severity_map: Default::default(),
                },
                &audit,
            )
            .await
            .unwrap();
        assert_eq!(svc.escalation_policy_id, Some(p.id));
        assert_eq!(svc.response_targets.0, targets);
        assert_eq!(s.store.service(svc.id).await.unwrap(), svc);
        assert_eq!(
            s.store.services_using_policy(p.id).await.unwrap(),
            vec![svc.clone()]
        );
        s.store.delete_policy(p.id, &audit).await.unwrap();
        assert!(matches!(
            s.store.policy(p.id).await,
            Err(StoreError::NotFound)
        ));
        let kept = s.store.service(svc.id).await.unwrap();
        assert_eq!(kept.escalation_policy_id, None);
        assert_eq!(kept.response_targets.0, targets);

        let log = s
            .store
            .audit_log(&Default::default(), 100, None)
            .await
            .unwrap()
            .items;
        let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
        for action in [
            "escalation_policy.create",
            "escalation_policy.update",
            "escalation_policy.delete",
        ] {
            assert!(actions.contains(&action), "{backend:?}: {actions:?}");
        }
        let update = log
            .iter()
            .find(|e| e.action == "escalation_policy.update")
            .unwrap();
        assert!(update.before.is_some() && update.after.is_some());
    }
}

/// What the engine reads for an escalation step, in one query: the incident, its services in
/// id order, and the policy of the first of them that has one.
#[tokio::test]
async fn the_escalation_context_has_the_first_policy_among_the_services() {
    for backend in backends() {
        let s = setup(backend).await;
        let audit = Audit::cli();
        let policy = s
            .store
            .create_policy(&fields(&s, "Vector DB"), &audit)
            .await
            .unwrap();
        let service = |name: &str, policy: Option<i64>| ServiceFields {
            name: name.into(),
            description: String::new(),
            kind: ServiceKind::LlmInference,
            workload_class: WorkloadClass::RealTime,
            team_id: Some(s.team_id),
            escalation_policy_id: policy,
            response_targets: ResponseTargets(BTreeMap::new()),
            grouping_window_minutes: 0,
            auto_resolve: true,
            severity_map: Default::default(),
        };
        let without = s
            .store
            .create_service(&service("embeddings", None), &audit)
            .await
            .unwrap();
        let with = s
            .store
            .create_service(&service("vector-db", Some(policy.id)), &audit)
            .await
            .unwrap();
        let declare = |services: Vec<i64>| {
            let store = s.store.clone();
            async move {
                store
                    .declare_incident(
                        &heliograph_store::incidents::NewIncident {
                            title: "Recall dropped after reindex".into(),
                            description: String::new(),
                            description_html: String::new(),
                            severity: Severity::Sev2,
                            service_ids: services,
                            commander_id: None,
                        },
                        &Audit::cli(),
                    )
                    .await
                    .unwrap()
            }
        };
        let both = declare(vec![with.id, without.id]).await;
        let ctx = s
            .store
            .escalation_context(both.id)
            .await
            .unwrap()
            .expect("the incident exists");
        assert_eq!(ctx.number, both.number, "{backend:?}");
        assert_eq!(ctx.title, "Recall dropped after reindex");
        assert_eq!(ctx.severity, Severity::Sev2);
        assert_eq!(ctx.epoch, 1, "{backend:?}");
        assert_eq!(
            ctx.services
                .iter()
                .map(|(id, name, _)| (*id, name.as_str()))
                .collect::<Vec<_>>(),
            [(without.id, "embeddings"), (with.id, "vector-db")],
            "{backend:?}: every service, in id order"
        );
        let found = ctx.policy.expect("the second service's policy");
        assert_eq!((found.id, found.name.as_str()), (policy.id, "Vector DB"));
        assert_eq!(found.repeat, 2);
        assert!(!found.low_severity_any_time);

        let none = declare(vec![without.id]).await;
        let ctx = s.store.escalation_context(none.id).await.unwrap().unwrap();
        assert!(ctx.policy.is_none(), "{backend:?}");
        assert_eq!(ctx.services.len(), 1);
        let alone = declare(vec![]).await;
        let ctx = s.store.escalation_context(alone.id).await.unwrap().unwrap();
        assert!(
            ctx.policy.is_none() && ctx.services.is_empty(),
            "{backend:?}"
        );
        assert!(
            s.store
                .escalation_context(alone.id + 1000)
                .await
                .unwrap()
                .is_none()
        );
        // Read together (as the engine reads a claim's steps), each is the same as alone, and
        // an incident that does not exist is left out.
        let together = s
            .store
            .escalation_contexts(&[alone.id + 1000, both.id, none.id, alone.id])
            .await
            .unwrap();
        assert_eq!(together.len(), 3, "{backend:?}");
        for id in [both.id, none.id, alone.id] {
            let single = s.store.escalation_context(id).await.unwrap().unwrap();
            assert_eq!(
                format!("{:?}", together[&id]),
                format!("{single:?}"),
                "{backend:?}"
            );
        }
        assert_eq!(together[&both.id].services.len(), 2);
    }
}
