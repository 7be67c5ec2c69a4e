//! The postmortem store on both backends: the draft made when a SEV1/SEV2 is resolved, versioned
//! saves, the review steps, action items and the overdue query.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use heliograph_domain::{
    DisplayName, FixedClock, Role, ServiceKind, Severity, TimeZone, UserEmail, WorkloadClass,
};
use heliograph_store::incidents::NewIncident;
use heliograph_store::postmortems::{
    ActionItemFields, Decision, ItemStatus, PmTimelineEntry, PostmortemEdit, PostmortemFilter,
    PostmortemStatus, Priority, Saved,
};
use heliograph_store::services::ServiceFields;
use heliograph_store::testdb::{TestDatabase, backends};
use heliograph_store::users::{NewUser, User};
use heliograph_store::{Audit, Db, Store, StoreError};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn audit_of(user: &User) -> Audit {
    Audit {
        actor_user_id: Some(user.id),
        actor: user.email.to_string(),
        client_addr: None,
    }
}

struct Setup {
    _db: TestDatabase,
    store: Store,
    clock: FixedClock,
    ida: User,
    rev: User,
    service_id: i64,
}

async fn setup(backend: heliograph_store::Backend) -> Setup {
    let db = TestDatabase::fresh(backend).await;
    let conn = Db::connect(&db.url).await.unwrap();
    conn.migrate().await.unwrap();
    let clock = FixedClock::new(at("2026-05-04T10:00:00Z"));
    let store = Store::with_clock(conn, Arc::new(clock.clone()));
    let mut users = Vec::new();
    for name in ["ida", "rev"] {
        users.push(
            store
                .create_user(
                    &NewUser {
                        email: UserEmail::parse(&format!("{name}@example.com")).unwrap(),
                        name: DisplayName::parse(name).unwrap(),
                        time_zone: TimeZone::UTC,
                        role: Role::Responder,
                        password_hash: None,
                    },
                    &Audit::cli(),
                )
                .await
                .unwrap(),
        );
    }
    let service_id = store
        .create_service(
            &ServiceFields {
                name: "llm-gateway".into(),
                description: String::new(),
                kind: ServiceKind::LlmInference,
                workload_class: WorkloadClass::RealTime,
                team_id: None,
                escalation_policy_id: None,
                response_targets: Default::default(),
                grouping_window_minutes: 0,
                auto_resolve: true,
                severity_map: Default::default(),
            },
            &Audit::cli(),
        )
        .await
        .unwrap()
        .id;
    let rev = users.pop().unwrap();
    let ida = users.pop().unwrap();
    Setup {
        _db: db,
        store,
        clock,
        ida,
        rev,
        service_id,
    }
}

async fn declare(s: &Setup, severity: Severity, title: &str) -> i64 {
    s.store
        .declare_incident(
            &NewIncident {
                title: title.into(),
                description: String::new(),
                description_html: String::new(),
                severity,
                service_ids: vec![s.service_id],
                commander_id: Some(s.ida.id),
            },
            &audit_of(&s.ida),
        )
        .await
        .unwrap()
        .number
}

#[tokio::test]
async fn resolving_a_sev1_drafts_one_postmortem_with_the_incident_timeline() {
    for backend in backends() {
        let s = setup(backend).await;
        let audit = audit_of(&s.ida);
        let n = declare(&s, Severity::Sev1, "Embeddings 5xx").await;
        s.clock.advance(TimeDelta::minutes(4));
        s.store.acknowledge_incident(n, &audit).await.unwrap();
        s.store
            .add_note(n, "rolled back index v42", "", &audit)
            .await
            .unwrap();
        s.clock.advance(TimeDelta::minutes(61));
        let incident = s.store.resolve_incident(n, &audit).await.unwrap();
        let pm = s
            .store
            .postmortem_of_incident(incident.id)
            .await
            .unwrap()
            .expect("a draft exists");
        assert_eq!(pm.status, PostmortemStatus::Draft, "{backend:?}");
        assert_eq!(pm.title, "Embeddings 5xx");
        assert_eq!(pm.owner_id, Some(s.ida.id));
        let texts: Vec<&str> = pm.timeline.iter().map(|e| e.text.as_str()).collect();
        assert!(texts[0].starts_with("Declared SEV1"), "{texts:?}");
        assert!(texts.iter().any(|t| t.contains("rolled back index v42")));
        assert!(
            texts.last().unwrap().starts_with("Resolved by"),
            "{texts:?}"
        );
        assert!(
            pm.sections.summary.contains("acknowledged after 4m")
                && pm.sections.summary.contains("resolved after 1h 5m")
                && pm.sections.summary.contains("llm-gateway"),
            "{}",
            pm.sections.summary
        );

        // Reopened and resolved again: still one postmortem.
        s.store.reopen_incident(n, &audit).await.unwrap();
        s.store.resolve_incident(n, &audit).await.unwrap();
        let all = s
            .store
            .postmortems(&PostmortemFilter::default(), 50, None)
            .await
            .unwrap();
        assert_eq!(all.items.len(), 1);

        // A SEV3 gets none on its own, but can be started by hand (once).
        let minor = declare(&s, Severity::Sev3, "Slow batch").await;
        let minor_incident = s.store.resolve_incident(minor, &audit).await.unwrap();
        assert!(
            s.store
                .postmortem_of_incident(minor_incident.id)
                .await
                .unwrap()
                .is_none()
        );
        let (id, created) = s.store.start_postmortem(minor, &audit).await.unwrap();
        assert!(created);
        assert_eq!(
            s.store.start_postmortem(minor, &audit).await.unwrap(),
            (id, false)
        );

        let detail = s.store.postmortem_detail(pm.id).await.unwrap();
        assert_eq!(detail.history[0].action, "created");
        assert_eq!(detail.services[0].name, "llm-gateway");
        assert_eq!(
            detail.figures().time_to_acknowledge,
            Some(TimeDelta::minutes(4))
        );
    }
}

#[tokio::test]
async fn stale_saves_change_nothing_and_review_needs_an_approval() {
    for backend in backends() {
        let s = setup(backend).await;
        let ida = audit_of(&s.ida);
        let rev = audit_of(&s.rev);
        let n = declare(&s, Severity::Sev2, "Feature store lag").await;
        s.store.resolve_incident(n, &ida).await.unwrap();
        let pm = s
            .store
            .postmortems(&PostmortemFilter::default(), 10, None)
            .await
            .unwrap()
            .items
            .remove(0);
        let current = s.store.postmortem(pm.id).await.unwrap();

        let mut edit = PostmortemEdit {
            title: current.title.clone(),
            sections: current.sections.clone(),
            timeline: current.timeline.clone(),
        };
        edit.sections.root_cause = "A **stale** replica".into();
        edit.timeline[0].kept = false;
        edit.timeline.push(PmTimelineEntry {
            at: at("2026-05-04T09:55:00Z"),
            text: "Lag alert fired".into(),
            kept: true,
        });
        let saved = match s
            .store
            .update_postmortem(pm.id, &edit, current.version, &ida)
            .await
            .unwrap()
        {
            Saved::Saved(p) => p,
            Saved::Stale { .. } => panic!("first save is not stale"),
        };
        assert_eq!(saved.version, current.version + 1, "{backend:?}");
        assert_eq!(saved.sections.root_cause, "A **stale** replica");

        // The second editor started from the old version: nothing changes.
        let mut other = edit.clone();
        other.sections.root_cause = "my competing text".into();
        match s
            .store
            .update_postmortem(pm.id, &other, current.version, &rev)
            .await
            .unwrap()
        {
            Saved::Stale { current } => assert_eq!(current.version, saved.version),
            Saved::Saved(_) => panic!("stale save was stored"),
        }
        assert_eq!(
            s.store.postmortem(pm.id).await.unwrap().sections.root_cause,
            "A **stale** replica"
        );

        // Search over sections, filter by status.
        let found = s
            .store
            .postmortems(
                &PostmortemFilter {
                    search: Some("STALE replica".into()),
                    ..Default::default()
                },
                10,
                None,
            )
            .await
            .unwrap();
        assert_eq!(found.items.len(), 1);
        let published = PostmortemFilter {
            status: Some(PostmortemStatus::Published),
            ..Default::default()
        };
        assert!(
            s.store
                .postmortems(&published, 10, None)
                .await
                .unwrap()
                .items
                .is_empty()
        );

        // Review: nobody named → refused; publish without approval → refused.
        assert!(matches!(
            s.store.submit_postmortem(pm.id, &[], None, &ida).await,
            Err(StoreError::Conflict(_))
        ));
        s.store
            .submit_postmortem(pm.id, &[s.rev.id], None, &ida)
            .await
            .unwrap();
        assert!(matches!(
            s.store.publish_postmortem(pm.id, None, &ida).await,
            Err(StoreError::Conflict(m)) if m.contains("approval")
        ));
        // Only a named reviewer decides.
        assert!(matches!(
            s.store
                .review_postmortem(pm.id, Decision::Approved, "", &ida)
                .await,
            Err(StoreError::Conflict(_))
        ));
        let back = s
            .store
            .review_postmortem(
                pm.id,
                Decision::ChangesRequested,
                "Add the detection gap",
                &rev,
            )
            .await
            .unwrap();
        assert_eq!(back.status, PostmortemStatus::Draft);
        s.store
            .submit_postmortem(pm.id, &[s.rev.id], None, &ida)
            .await
            .unwrap();
        s.store
            .review_postmortem(pm.id, Decision::Approved, "Good", &rev)
            .await
            .unwrap();
        let done = s.store.publish_postmortem(pm.id, None, &ida).await.unwrap();
        assert_eq!(done.status, PostmortemStatus::Published);
        assert!(done.published_at.is_some());
        assert!(matches!(
            s.store
                .update_postmortem(pm.id, &edit, done.version, &ida)
                .await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(
            s.store
                .postmortems(&published, 10, None)
                .await
                .unwrap()
                .items
                .len(),
            1
        );

        let detail = s.store.postmortem_detail(pm.id).await.unwrap();
        let actions: Vec<&str> = detail.history.iter().map(|h| h.action.as_str()).collect();
        assert_eq!(
            actions,
            [
                "created",
                "edited",
                "submitted",
                "changes_requested",
                "submitted",
                "approved",
                "published"
            ]
        );
        assert_eq!(detail.approvals(), 1);
        let audit = s
            .store
            .audit_log(
                &heliograph_store::AuditFilter {
                    target_type: Some("postmortem".into()),
                    ..Default::default()
                },
                50,
                None,
            )
            .await
            .unwrap();
        assert!(
            audit
                .items
                .iter()
                .any(|e| e.action == "postmortem.published")
        );
        assert!(audit.items.iter().any(|e| e.action == "postmortem.edit"));
    }
}

#[tokio::test]
async fn action_items_and_the_overdue_query() {
    for backend in backends() {
        let s = setup(backend).await;
        let ida = audit_of(&s.ida);
        let n = declare(&s, Severity::Sev1, "Agent loop").await;
        let (pm, _) = s.store.start_postmortem(n, &ida).await.unwrap();
        let mut fields = ActionItemFields {
            title: "Alert on replica lag".into(),
            owner_id: Some(s.rev.id),
            due_date: NaiveDate::from_ymd_opt(2026, 5, 1),
            priority: Priority::High,
            status: ItemStatus::Open,
            tracker_url: Some("https://tracker.example.com/OPS-1".into()),
        };
        let item = s.store.add_action_item(pm, &fields, &ida).await.unwrap();
        assert_eq!(item.owner_name.as_deref(), Some("rev"), "{backend:?}");
        let later = ActionItemFields {
            title: "Runbook".into(),
            due_date: NaiveDate::from_ymd_opt(2026, 6, 1),
            ..fields.clone()
        };
        s.store.add_action_item(pm, &later, &ida).await.unwrap();

        let today = NaiveDate::from_ymd_opt(2026, 5, 4).unwrap();
        let overdue = s.store.overdue_action_items(today).await.unwrap();
        assert_eq!(overdue.len(), 1);
        assert_eq!(overdue[0].item.id, item.id);
        assert_eq!(overdue[0].incident_number, n);
        assert_eq!(overdue[0].owner_email.as_deref(), Some("rev@example.com"));
        assert!(overdue[0].item.is_overdue(today));
        assert!(
            s.store
                .mark_action_item_reminded(item.id, s.store.now())
                .await
                .unwrap()
        );
        assert!(
            !s.store
                .mark_action_item_reminded(item.id, s.store.now())
                .await
                .unwrap()
        );

        fields.status = ItemStatus::Done;
        let done = s
            .store
            .update_action_item(item.id, &fields, &ida)
            .await
            .unwrap();
        assert_eq!(done.status, ItemStatus::Done);
        assert!(
            done.reminded_at.is_some(),
            "same due date keeps the reminder"
        );
        assert!(
            s.store
                .overdue_action_items(today)
                .await
                .unwrap()
                .is_empty()
        );

        s.store.delete_action_item(item.id, &ida).await.unwrap();
        let left = s.store.action_items(pm).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].title, "Runbook");
        assert!(matches!(
            s.store.action_item(item.id).await,
            Err(StoreError::NotFound)
        ));
    }
}
