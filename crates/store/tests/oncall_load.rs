//! Interruptions classified once sent, on SQLite and PostgreSQL: one page delivered through
//! several contact methods that finish at the same instant counts once, even when the
//! deliveries run concurrently (the store's classifier classifies the burst a moment later, by
//! itself); a failed or cancelled delivery and a notification that is not a page are never
//! classified.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use heliograph_domain::{DisplayName, FixedClock, Role, TimeZone, UserEmail};
use heliograph_store::jobs::NewJob;
use heliograph_store::paging::{Delivery, NewNotification, Step};
use heliograph_store::testdb::{TestDatabase, backends};
use heliograph_store::users::NewUser;
use heliograph_store::{Audit, Db, Store};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

async fn store_on(backend: heliograph_store::Backend) -> (TestDatabase, Store, FixedClock) {
    let db = TestDatabase::fresh(backend).await;
    let conn = Db::connect(&db.url).await.expect("connect");
    conn.migrate().await.expect("migrate");
    // Saturday 2026-11-28 03:00 UTC: 03:00 in London, sleep hours.
    let clock = FixedClock::new(at("2026-11-28T03:00:00Z"));
    let store = Store::with_clock(conn, Arc::new(clock.clone()));
    (db, store, clock)
}

fn notification(key: &str, user: i64, purpose: &'static str, t: DateTime<Utc>) -> NewNotification {
    NewNotification {
        idempotency_key: key.into(),
        incident_id: None,
        user_id: Some(user),
        contact_method_id: None,
        purpose,
        channel: "email".into(),
        address: format!("{key}@example.com"),
        subject: "Page".into(),
        level: Some(1),
        repeat_no: Some(0),
        due_at: t,
    }
}

async fn interruption(store: &Store, id: i64) -> Option<String> {
    let sql = "SELECT interruption FROM notifications WHERE id = $1";
    let (class,): (Option<String>,) = match store.db() {
        Db::Sqlite { read, .. } => sqlx::query_as(sql).bind(id).fetch_one(read).await.unwrap(),
        Db::Postgres(pool, _) => sqlx::query_as(sql).bind(id).fetch_one(pool).await.unwrap(),
    };
    class
}

/// Waits until none of the pages `ids` is unclassified. Nothing here runs the classification:
/// the store's own classifier must, after the deliveries were recorded.
async fn settled(store: &Store, ids: &[i64]) {
    for _ in 0..100 {
        let mut pending = 0;
        for id in ids {
            if interruption(store, *id).await.is_none() {
                pending += 1;
            }
        }
        if pending == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("sent pages were not classified within 5 s");
}

/// Applies one escalation step recording `notifications` at `t`, and claims the delivery
/// jobs it enqueued: (job, notification) for each.
async fn record_step(
    store: &Store,
    t: DateTime<Utc>,
    notifications: Vec<NewNotification>,
) -> Vec<(
    heliograph_store::jobs::Job,
    heliograph_store::paging::Notification,
)> {
    store
        .enqueue_job(&NewJob {
            kind: "test_step",
            payload: serde_json::json!({}),
            run_at: t,
            dedup_key: None,
        })
        .await
        .unwrap();
    let jobs = store
        .claim_jobs("w", TimeDelta::minutes(5), 10)
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    let step = Step {
        notifications,
        ..Step::default()
    };
    assert!(store.apply_step(jobs[0].id, "w", &step).await.unwrap());
    let mut deliveries = Vec::new();
    for job in store
        .claim_jobs("w", TimeDelta::minutes(5), 10)
        .await
        .unwrap()
    {
        let payload: serde_json::Value = serde_json::from_str(&job.payload).unwrap();
        let n = store
            .notification(payload["notification_id"].as_i64().unwrap())
            .await
            .unwrap();
        deliveries.push((job, n));
    }
    deliveries
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_deliveries_of_one_page_at_once_count_once() {
    for backend in backends() {
        let (_db, store, clock) = store_on(backend).await;
        let start = clock_now(&clock);
        let lena = store
            .create_user(
                &NewUser {
                    email: UserEmail::parse("lena@example.com").unwrap(),
                    name: DisplayName::parse("Lena").unwrap(),
                    time_zone: TimeZone::parse("Europe/London").unwrap(),
                    role: Role::Responder,
                    password_hash: None,
                },
                &Audit::cli(),
            )
            .await
            .unwrap()
            .id;
        // Ten rounds two minutes apart (each counts on its own), so that a race between the
        // concurrent deliveries, if the lock were missing, would show.
        for round in 0..10 {
            let t = start + TimeDelta::minutes(2 * round);
            clock.set(t);
            // One escalation step records: the page through six contact methods, a handoff notice
            // (not a page), and two pages whose deliveries will fail or be cancelled.
            let deliveries = record_step(
                &store,
                t,
                (0..6)
                    .map(|k| notification(&format!("r{round}method{k}"), lena, "page", t))
                    .chain([
                        notification(&format!("r{round}handoff"), lena, "handoff", t),
                        notification(&format!("r{round}failed"), lena, "page", t),
                        notification(&format!("r{round}cancelled"), lena, "page", t),
                    ])
                    .collect(),
            )
            .await;
            assert_eq!(deliveries.len(), 9);
            let outcome = |key: &str| {
                if key.ends_with("failed") {
                    Delivery::Failed("SMTP said no".into())
                } else if key.ends_with("cancelled") {
                    Delivery::Cancelled("acknowledged".into())
                } else {
                    Delivery::Sent
                }
            };
            // All nine finish at the same instant, concurrently.
            let runs = deliveries.iter().map(|(job, n)| {
                let store = store.clone();
                let outcome = outcome(&n.idempotency_key);
                let (job_id, n) = (job.id, n.clone());
                async move {
                    assert!(
                        store
                            .finish_delivery(job_id, "w", &n, &outcome, None)
                            .await
                            .unwrap()
                    );
                }
            });
            futures_join_all(runs).await;
            let sent: Vec<i64> = deliveries
                .iter()
                .filter(|(_, n)| n.idempotency_key.contains("method"))
                .map(|(_, n)| n.id)
                .collect();
            settled(&store, &sent).await;

            let mut classes = Vec::new();
            for (_, n) in &deliveries {
                classes.push((n.idempotency_key.clone(), interruption(&store, n.id).await));
            }
            let of = |key: &str| {
                classes
                    .iter()
                    .find(|(k, _)| k == key)
                    .and_then(|(_, c)| c.clone())
            };
            // 03:00 in London: sleep; exactly one of the six sent pages counts.
            let mut sent: Vec<Option<String>> =
                (0..6).map(|k| of(&format!("r{round}method{k}"))).collect();
            sent.sort();
            let mut expected = vec![Some("repeat".to_owned()); 5];
            expected.push(Some("sleep".to_owned()));
            assert_eq!(sent, expected, "{backend:?}, round {round}");
            assert_eq!(of(&format!("r{round}handoff")), None);
            assert_eq!(of(&format!("r{round}failed")), None);
            assert_eq!(of(&format!("r{round}cancelled")), None);
        }
        // Deliveries can commit in another order than their pages were sent: a page sent 30 s
        // later is classified first. The burst still counts once.
        let t = start + TimeDelta::minutes(30);
        clock.set(t);
        let mut deliveries = record_step(
            &store,
            t,
            vec![
                notification("late-first", lena, "page", t),
                notification("late-second", lena, "page", t),
            ],
        )
        .await;
        deliveries.sort_by(|a, b| a.1.idempotency_key.cmp(&b.1.idempotency_key));
        let [(first_job, first), (second_job, second)] = <[_; 2]>::try_from(deliveries).unwrap();
        clock.set(t + TimeDelta::seconds(30));
        assert!(
            store
                .finish_delivery(second_job.id, "w", &second, &Delivery::Sent, None)
                .await
                .unwrap()
        );
        clock.set(t);
        assert!(
            store
                .finish_delivery(first_job.id, "w", &first, &Delivery::Sent, None)
                .await
                .unwrap()
        );
        settled(&store, &[first.id, second.id]).await;
        // The classifier orders a person's pages by when they were sent: the earlier counts.
        assert_eq!(
            (
                interruption(&store, first.id).await,
                interruption(&store, second.id).await
            ),
            (Some("sleep".to_owned()), Some("repeat".to_owned())),
            "{backend:?}"
        );
        // Nothing left for the catch-up pass.
        assert_eq!(store.classify_pending_interruptions().await.unwrap(), 0);
    }
}

fn clock_now(clock: &FixedClock) -> DateTime<Utc> {
    use heliograph_domain::Clock;
    clock.now()
}

/// Runs the futures concurrently on the runtime's threads and waits for all of them.
async fn futures_join_all<F>(futures: impl IntoIterator<Item = F>)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    for h in handles {
        h.await.unwrap();
    }
}
