//! A worker whose job lease ran out (another worker took the job over) must change nothing
//! when it finishes late, on SQLite and PostgreSQL: not the escalation step it applied (its
//! pages, links, jobs and timeline entries), not the delivery it recorded. On PostgreSQL each
//! of these is a few statements combined into one, with the job's lease checked inside it; the
//! worker that holds the lease records everything once.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use heliograph_domain::{Clock, FixedClock, Severity};
use heliograph_store::incidents::NewIncident;
use heliograph_store::jobs::NewJob;
use heliograph_store::paging::{Delivery, Known, NewActionToken, NewNotification, Step};
use heliograph_store::testdb::{TestDatabase, backends};
use heliograph_store::{Audit, Db, Store};

async fn store_on(backend: heliograph_store::Backend) -> (TestDatabase, Store, FixedClock) {
    let db = TestDatabase::fresh(backend).await;
    let conn = Db::connect(&db.url).await.expect("connect");
    conn.migrate().await.expect("migrate");
    let clock = FixedClock::new(
        DateTime::parse_from_rfc3339("2026-11-29T02:00:00Z")
            .unwrap()
            .with_timezone(&Utc),
    );
    let store = Store::with_clock(conn, Arc::new(clock.clone()));
    (db, store, clock)
}

async fn count(store: &Store, sql: &str) -> i64 {
    let (n,): (i64,) = match store.db() {
        Db::Sqlite { read, .. } => sqlx::query_as(sql).fetch_one(read).await.unwrap(),
        Db::Postgres(pool, _) => sqlx::query_as(sql).fetch_one(pool).await.unwrap(),
    };
    n
}

/// Declares an incident on no service.
async fn declare(
    store: &Store,
    title: &str,
    severity: Severity,
) -> heliograph_store::incidents::Incident {
    store
        .declare_incident(
            &NewIncident {
                title: title.into(),
                description: String::new(),
                description_html: String::new(),
                severity,
                service_ids: vec![],
                commander_id: None,
            },
            &Audit::cli(),
        )
        .await
        .unwrap()
}

/// A level-1 email page about `incident` to ana@example.com, due at `due`.
fn page_to_ana(
    incident: &heliograph_store::incidents::Incident,
    key: &str,
    due: DateTime<Utc>,
) -> NewNotification {
    NewNotification {
        idempotency_key: key.into(),
        incident_id: Some(incident.id),
        user_id: None,
        contact_method_id: None,
        purpose: "page",
        channel: "email".into(),
        address: "ana@example.com".into(),
        subject: format!("[{}] {}", incident.severity.as_str(), incident.title),
        level: Some(0),
        repeat_no: Some(0),
        due_at: due,
    }
}

/// Enqueues a job standing for an escalation step, due at `run_at`.
async fn enqueue_step(store: &Store, run_at: DateTime<Utc>) {
    store
        .enqueue_job(&NewJob {
            kind: "test_step",
            payload: serde_json::json!({}),
            run_at,
            dedup_key: None,
        })
        .await
        .unwrap();
}

/// Claims the one due job as `worker` for a minute.
async fn claim_one(store: &Store, worker: &str) -> heliograph_store::jobs::Job {
    let jobs = store
        .claim_jobs(worker, TimeDelta::minutes(1), 10)
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1, "{worker} claims one job");
    jobs.into_iter().next().unwrap()
}

#[tokio::test]
async fn a_worker_that_lost_its_lease_changes_nothing() {
    for backend in backends() {
        let (_db, store, clock) = store_on(backend).await;
        let incident = declare(&store, "Reranker latency above SLO", Severity::Sev2).await;
        let entries = |store: &Store| {
            let sql = format!(
                "SELECT COUNT(*) FROM timeline WHERE incident_id = {}",
                incident.id
            );
            let store = store.clone();
            async move { count(&store, &sql).await }
        };
        let entries_before = entries(&store).await;
        let now = clock.now();
        enqueue_step(&store, now).await;
        let late = claim_one(&store, "late").await;
        clock.set(now + TimeDelta::minutes(2));
        let owner = claim_one(&store, "owner").await;
        assert_eq!(late.id, owner.id, "{backend:?}: the job was taken over");

        let step = Step {
            incident_id: incident.id,
            incident_number: Some(incident.number),
            notifications: vec![page_to_ana(&incident, "page:lease-test", clock.now())],
            jobs: vec![NewJob {
                kind: "test_next_level",
                payload: serde_json::json!({}),
                run_at: clock.now() + TimeDelta::minutes(5),
                dedup_key: Some("lease-test-next".into()),
            }],
            timeline: vec![("escalation", "Escalation level 1: paging Ana.".into())],
            action_tokens: vec![NewActionToken {
                token_hash: "lease-test-token".into(),
                action: "acknowledge",
                user_id: None,
                expires_at: clock.now() + TimeDelta::hours(24),
            }],
            ..Step::default()
        };
        // The late worker's step is refused whole.
        assert!(
            store
                .apply_step_claiming(late.id, "late", &step, Some(TimeDelta::minutes(1)))
                .await
                .unwrap()
                .is_none(),
            "{backend:?}: the late worker's step is refused"
        );
        assert_eq!(count(&store, "SELECT COUNT(*) FROM notifications").await, 0);
        assert_eq!(count(&store, "SELECT COUNT(*) FROM action_tokens").await, 0);
        assert_eq!(
            count(
                &store,
                "SELECT COUNT(*) FROM jobs WHERE kind IN ('deliver', 'test_next_level')"
            )
            .await,
            0,
            "{backend:?}"
        );
        assert_eq!(entries(&store).await, entries_before, "{backend:?}");

        // The owner's step is kept whole, its page's delivery leased to it.
        let claimed = store
            .apply_step_claiming(owner.id, "owner", &step, Some(TimeDelta::minutes(1)))
            .await
            .unwrap()
            .expect("the owner holds the lease");
        assert_eq!(
            claimed.len(),
            1,
            "{backend:?}: the page's delivery is leased"
        );
        assert_eq!(count(&store, "SELECT COUNT(*) FROM notifications").await, 1);
        assert_eq!(count(&store, "SELECT COUNT(*) FROM action_tokens").await, 1);
        assert_eq!(
            count(
                &store,
                "SELECT COUNT(*) FROM jobs WHERE kind IN ('deliver', 'test_next_level') AND finished_at IS NULL"
            )
            .await,
            2,
            "{backend:?}"
        );
        assert_eq!(entries(&store).await, entries_before + 1, "{backend:?}");
        assert!(
            store
                .claim_jobs("someone-else", TimeDelta::minutes(1), 10)
                .await
                .unwrap()
                .is_empty(),
            "{backend:?}: nobody else takes the leased delivery; the next level is not due"
        );

        // The delivery, taken over in turn: the late worker's record is refused.
        let deliver_late = claimed[0].job_id;
        clock.set(clock.now() + TimeDelta::minutes(2));
        let deliver_owner = claim_one(&store, "owner").await;
        assert_eq!(deliver_owner.id, deliver_late, "{backend:?}");
        let pending = store
            .notification(claimed[0].notification_id)
            .await
            .unwrap();
        let known = Known {
            incident_number: Some(incident.number),
            user_time_zone: None,
        };
        let recorded = |worker: &'static str, job: i64| {
            let (store, pending, known) = (store.clone(), pending.clone(), known.clone());
            async move {
                store
                    .finish_delivery_known(
                        job,
                        worker,
                        &pending,
                        &Delivery::Sent,
                        Some(("notification", "Paged by email.".into())),
                        &known,
                    )
                    .await
                    .unwrap()
            }
        };
        assert!(!recorded("late", deliver_late).await, "{backend:?}");
        let still = store.notification(pending.id).await.unwrap();
        assert_eq!(still.state, "pending", "{backend:?}");
        assert_eq!(still.attempts, 0, "{backend:?}");
        assert_eq!(entries(&store).await, entries_before + 1, "{backend:?}");

        assert!(recorded("owner", deliver_owner.id).await, "{backend:?}");
        let sent = store.notification(pending.id).await.unwrap();
        assert_eq!(sent.state, "sent", "{backend:?}");
        assert_eq!(sent.attempts, 1, "{backend:?}");
        assert_eq!(sent.sent_at, Some(clock.now()), "{backend:?}");
        assert_eq!(entries(&store).await, entries_before + 2, "{backend:?}");
        assert_eq!(
            count(
                &store,
                &format!(
                    "SELECT COUNT(*) FROM jobs WHERE id = {} AND finished_at IS NOT NULL",
                    deliver_owner.id
                )
            )
            .await,
            1,
            "{backend:?}: the delivery's job is finished"
        );
        // Recording it again (a retry of the same job) changes nothing, whether or not the
        // caller knows the incident's number (on PostgreSQL, a transaction of its own then).
        assert!(!recorded("owner", deliver_owner.id).await, "{backend:?}");
        assert!(
            !store
                .finish_delivery(
                    deliver_owner.id,
                    "owner",
                    &pending,
                    &Delivery::Failed("late".into()),
                    Some(("notification", "Paging by email failed.".into())),
                )
                .await
                .unwrap(),
            "{backend:?}"
        );
        assert_eq!(entries(&store).await, entries_before + 2, "{backend:?}");
        assert_eq!(
            store.notification(pending.id).await.unwrap().state,
            "sent",
            "{backend:?}"
        );
    }
}

/// A step's page is handed straight to its worker only while the incident is still triggered
/// in the step's escalation round; otherwise it is recorded and queued (where its delivery is
/// cancelled), not leased. On PostgreSQL that check is part of the step's one statement.
#[tokio::test]
async fn a_step_leases_its_page_only_while_the_incident_is_still_triggered_in_its_round() {
    for backend in backends() {
        let (_db, store, clock) = store_on(backend).await;
        let incident = declare(&store, "Feature store lagging", Severity::Sev1).await;
        // A step planned for round 1 and one planned for a round that is not the current one,
        // then the same after an acknowledgement: only the first is leased.
        for (key, epoch, acknowledge, leased) in [
            ("round-1", 1, false, 1),
            ("round-2", 2, false, 0),
            ("after-ack", 1, true, 0),
        ] {
            if acknowledge {
                store
                    .acknowledge_incident(incident.number, &Audit::cli())
                    .await
                    .unwrap();
            }
            enqueue_step(&store, clock.now()).await;
            let job = store
                .claim_jobs("w", TimeDelta::minutes(1), 10)
                .await
                .unwrap()
                .into_iter()
                .find(|j| j.kind == "test_step")
                .expect("the step's job");
            let step = Step {
                incident_id: incident.id,
                epoch: Some(epoch),
                notifications: vec![page_to_ana(&incident, &format!("page:{key}"), clock.now())],
                ..Step::default()
            };
            let claimed = store
                .apply_step_claiming(job.id, "w", &step, Some(TimeDelta::minutes(1)))
                .await
                .unwrap()
                .expect("the worker holds the lease");
            assert_eq!(claimed.len(), leased, "{backend:?}: {key}");
            // Recorded either way, its delivery queued: leased to the worker, or free.
            let sql = format!(
                "SELECT COUNT(*) FROM jobs j JOIN notifications n ON j.dedup_key = 'deliver:' || n.id
                 WHERE n.idempotency_key = 'page:{key}' AND j.finished_at IS NULL
                   AND (j.locked_by IS NULL) = {}",
                if leased == 1 { "false" } else { "true" }
            );
            assert_eq!(count(&store, &sql).await, 1, "{backend:?}: {key}");
        }
    }
}

/// Many delivery outcomes recorded at once go to the database together (one transaction on
/// SQLite, one statement on PostgreSQL), and each still counts only if its worker held its
/// job: the late worker's outcomes change nothing, the owner's are each recorded once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_recorded_together_each_depend_on_their_own_lease() {
    const PAGES: usize = 40;
    for backend in backends() {
        let (_db, store, clock) = store_on(backend).await;
        let incident = declare(&store, "Vector index rebuild stalled", Severity::Sev1).await;
        let now = clock.now();
        enqueue_step(&store, now).await;
        let step_job = claim_one(&store, "owner").await;
        let step = Step {
            incident_id: incident.id,
            incident_number: Some(incident.number),
            notifications: (0..PAGES)
                .map(|i| page_to_ana(&incident, &format!("page:together-{i}"), now))
                .collect(),
            ..Step::default()
        };
        let claimed = store
            .apply_step_claiming(step_job.id, "owner", &step, Some(TimeDelta::minutes(1)))
            .await
            .unwrap()
            .expect("the owner holds the step's lease");
        assert_eq!(claimed.len(), PAGES, "{backend:?}");
        let entries_sql = format!(
            "SELECT COUNT(*) FROM timeline WHERE incident_id = {} AND kind = 'notification'",
            incident.id
        );

        // In the first half, every fourth outcome comes from a worker that does not hold the
        // job; the second half are all the owner's.
        let late = |i: usize| i < PAGES / 2 && i.is_multiple_of(4);
        let record = |range: std::ops::Range<usize>| {
            let tasks: Vec<_> = range
                .map(|i| {
                    let store = store.clone();
                    let (job, notification_id) = (claimed[i].job_id, claimed[i].notification_id);
                    let known = Known {
                        incident_number: Some(incident.number),
                        user_time_zone: None,
                    };
                    tokio::spawn(async move {
                        let pending = store.notification(notification_id).await.unwrap();
                        let worker = if late(i) { "late" } else { "owner" };
                        let kept = store
                            .finish_delivery_known(
                                job,
                                worker,
                                &pending,
                                &Delivery::Sent,
                                Some(("notification", format!("Paged Ana ({i})."))),
                                &known,
                            )
                            .await
                            .unwrap();
                        (i, kept)
                    })
                })
                .collect();
            async move {
                for task in tasks {
                    let (i, kept) = task.await.unwrap();
                    assert_eq!(kept, !late(i), "{backend:?}: outcome {i}");
                }
            }
        };
        record(0..PAGES / 2).await;
        let grouped_before = store.writes_grouped();
        record(PAGES / 2..PAGES).await;
        assert!(
            store.writes_grouped() > grouped_before,
            "{backend:?}: no outcomes were recorded together"
        );
        for (i, c) in claimed.iter().enumerate() {
            let n = store.notification(c.notification_id).await.unwrap();
            let finished = count(
                &store,
                &format!(
                    "SELECT COUNT(*) FROM jobs WHERE id = {} AND finished_at IS NOT NULL",
                    c.job_id
                ),
            )
            .await;
            if late(i) {
                assert_eq!(
                    (n.state.as_str(), n.attempts),
                    ("pending", 0),
                    "{backend:?}: {i}"
                );
                assert_eq!(finished, 0, "{backend:?}: {i}");
            } else {
                assert_eq!(
                    (n.state.as_str(), n.attempts),
                    ("sent", 1),
                    "{backend:?}: {i}"
                );
                assert_eq!(n.sent_at, Some(clock.now()), "{backend:?}: {i}");
                assert_eq!(finished, 1, "{backend:?}: {i}");
            }
        }
        let owned = (0..PAGES).filter(|i| !late(*i)).count() as i64;
        assert_eq!(count(&store, &entries_sql).await, owned, "{backend:?}");
    }
}

/// Many escalation steps applied at once go to the database together (one transaction on
/// SQLite, one statement on PostgreSQL), and each still counts only if its worker held its
/// job: a late worker's step leaves no page, link, job, entry or position behind, while each
/// of the owner's is applied whole, its page due now leased to the owner and the one due
/// later left in the queue. A step that fails (a link already stored) fails alone, and an
/// incident acknowledged meanwhile gets no page leased, whatever the other steps do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_applied_together_each_depend_on_their_own_lease() {
    const STEPS: usize = 24;
    for backend in backends() {
        let (_db, store, clock) = store_on(backend).await;
        let now = clock.now();
        let mut incidents = Vec::new();
        for i in 0..STEPS {
            incidents
                .push(declare(&store, &format!("Embedding drift ({i})"), Severity::Sev2).await);
            enqueue_step(&store, now).await;
        }
        let mut jobs = store
            .claim_jobs("owner", TimeDelta::minutes(1), STEPS as i64 + 1)
            .await
            .unwrap();
        jobs.sort_by_key(|j| j.id);
        assert_eq!(jobs.len(), STEPS, "{backend:?}");
        // The first half are all the owner's; in the second, every third comes from a worker
        // that does not hold its job.
        let late = |i: usize| i >= STEPS / 2 && i % 3 == 1;
        // In the second half too: a step whose link repeats one the first half stored, and an
        // incident acknowledged before its step.
        let (acknowledged, failing) = (STEPS / 2 + 2, STEPS * 3 / 4 + 2);
        assert!(!late(failing) && !late(acknowledged));
        let apply = |range: std::ops::Range<usize>| {
            range
                .map(|i| {
                    let (job, incident) = (&jobs[i], &incidents[i]);
                    let (store, job, incident) = (store.clone(), job.id, incident.clone());
                    tokio::spawn(async move {
                        let step = Step {
                            incident_id: incident.id,
                            epoch: Some(1),
                            position: Some((1, 0)),
                            notifications: vec![
                                page_to_ana(&incident, &format!("page:now-{i}"), now),
                                page_to_ana(
                                    &incident,
                                    &format!("page:later-{i}"),
                                    now + TimeDelta::minutes(5),
                                ),
                            ],
                            action_tokens: ["acknowledge", "resolve"]
                                .into_iter()
                                .map(|action| NewActionToken {
                                    token_hash: format!(
                                        "{action}-{}",
                                        if i == failing { 0 } else { i }
                                    ),
                                    action,
                                    user_id: None,
                                    expires_at: now + TimeDelta::hours(24),
                                })
                                .collect(),
                            jobs: vec![NewJob {
                                kind: "test_next",
                                payload: serde_json::json!({"step": i}),
                                run_at: now + TimeDelta::minutes(30),
                                dedup_key: Some(format!("next:{i}")),
                            }],
                            timeline: vec![(
                                "escalation",
                                format!("Escalation level 1: paging Ana ({i})."),
                            )],
                            ..Step::default()
                        };
                        let worker = if late(i) { "late" } else { "owner" };
                        let applied = store
                            .apply_step_claiming(job, worker, &step, Some(TimeDelta::minutes(1)))
                            .await;
                        (i, applied)
                    })
                })
                .collect::<Vec<_>>()
        };
        let mut results = Vec::new();
        let grouped_before = store.writes_grouped();
        for task in apply(0..STEPS / 2) {
            results.push(task.await.unwrap());
        }
        let grouped_first = store.writes_grouped();
        assert!(
            grouped_first > grouped_before,
            "{backend:?}: no steps were applied together"
        );
        store
            .acknowledge_incident(incidents[acknowledged].number, &Audit::cli())
            .await
            .unwrap();
        for task in apply(STEPS / 2..STEPS * 3 / 4) {
            results.push(task.await.unwrap());
        }
        // On PostgreSQL steps whose lease was lost share statements with the others; on
        // SQLite one undoes its group, whose steps then run again alone.
        if backend == heliograph_store::Backend::Postgres {
            assert!(
                store.writes_grouped() > grouped_first,
                "{backend:?}: no steps were applied together beside lost leases"
            );
        }
        // A failing step fails its group's statement (or transaction), whose steps then run
        // again alone.
        for task in apply(STEPS * 3 / 4..STEPS) {
            results.push(task.await.unwrap());
        }
        for (i, applied) in results {
            let incident = &incidents[i];
            let one = |sql: String| {
                let store = store.clone();
                async move { count(&store, &sql).await }
            };
            let pages = one(format!(
                "SELECT COUNT(*) FROM notifications WHERE incident_id = {}",
                incident.id
            ))
            .await;
            let links = one(format!(
                "SELECT COUNT(*) FROM action_tokens WHERE incident_id = {}",
                incident.id
            ))
            .await;
            let entries = one(format!(
                "SELECT COUNT(*) FROM timeline WHERE incident_id = {} AND body LIKE 'Escalation level 1:%'",
                incident.id
            ))
            .await;
            let level = one(format!(
                "SELECT level FROM incident_escalations WHERE incident_id = {}",
                incident.id
            ))
            .await;
            let next = one(format!(
                "SELECT COUNT(*) FROM jobs WHERE dedup_key = 'next:{i}'"
            ))
            .await;
            let finished = one(format!(
                "SELECT COUNT(*) FROM jobs WHERE id = {} AND finished_at IS NOT NULL",
                jobs[i].id
            ))
            .await;
            if i == failing {
                assert!(applied.is_err(), "{backend:?}: step {i}: {applied:?}");
                assert_eq!(
                    (pages, links, entries, level, next, finished),
                    (0, 0, 0, 0, 0, 0),
                    "{backend:?}: step {i}"
                );
                continue;
            }
            let applied = applied.unwrap_or_else(|e| panic!("{backend:?}: step {i}: {e}"));
            if late(i) {
                assert!(applied.is_none(), "{backend:?}: step {i}");
                assert_eq!(
                    (pages, links, entries, level, next, finished),
                    (0, 0, 0, 0, 0, 0),
                    "{backend:?}: step {i}"
                );
                continue;
            }
            let claimed = applied.expect("the owner holds the lease");
            assert_eq!(
                (pages, links, entries, level, next, finished),
                (2, 2, 1, 1, 1, 1),
                "{backend:?}: step {i}"
            );
            let free_now = one(format!(
                "SELECT COUNT(*) FROM jobs j JOIN notifications n ON j.dedup_key = 'deliver:' || n.id
                 WHERE n.idempotency_key = 'page:now-{i}' AND j.locked_by IS NULL AND j.finished_at IS NULL"
            ))
            .await;
            if i == acknowledged {
                // Recorded, its delivery left to the queue (which cancels it).
                assert!(claimed.is_empty(), "{backend:?}: step {i}: {claimed:?}");
                assert_eq!(free_now, 1, "{backend:?}: step {i}");
                continue;
            }
            assert_eq!(free_now, 0, "{backend:?}: step {i}");
            assert_eq!(claimed.len(), 1, "{backend:?}: step {i}");
            assert_eq!(claimed[0].index, 0, "{backend:?}: step {i}");
            let page = store
                .notification(claimed[0].notification_id)
                .await
                .unwrap();
            assert_eq!(page.idempotency_key, format!("page:now-{i}"));
            // The page due now is leased to the owner under the job returned; the one due
            // later waits in the queue, free.
            let leased = one(format!(
                "SELECT COUNT(*) FROM jobs WHERE id = {} AND dedup_key = 'deliver:{}' AND locked_by = 'owner'",
                claimed[0].job_id, claimed[0].notification_id
            ))
            .await;
            assert_eq!(leased, 1, "{backend:?}: step {i}");
            let waiting = one(format!(
                "SELECT COUNT(*) FROM jobs j JOIN notifications n ON j.dedup_key = 'deliver:' || n.id
                 WHERE n.idempotency_key = 'page:later-{i}' AND j.locked_by IS NULL AND j.finished_at IS NULL"
            ))
            .await;
            assert_eq!(waiting, 1, "{backend:?}: step {i}");
        }
    }
}
