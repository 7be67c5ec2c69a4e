//! Contact methods, notification rules, working hours and test sends on both backends.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc, Weekday};
use heliograph_domain::{
    DisplayName, FixedClock, Role, TimeOfDay, TimeZone, UserEmail, WorkingHours,
};
use heliograph_store::contacts::{ContactKind, NewContactMethod, TEST_SUBJECT};
use heliograph_store::testdb::{TestDatabase, backends};
use heliograph_store::users::{NewUser, User};
use heliograph_store::{Audit, Db, Store, StoreError};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

async fn setup(backend: heliograph_store::Backend) -> (TestDatabase, Store, FixedClock) {
    let db = TestDatabase::fresh(backend).await;
    let conn = Db::connect(&db.url).await.unwrap();
    conn.migrate().await.unwrap();
    let clock = FixedClock::new(at("2026-11-02T09:00:00Z"));
    let store = Store::with_clock(conn, Arc::new(clock.clone()));
    (db, store, clock)
}

async fn person(store: &Store, email: &str) -> (User, Audit) {
    let user = store
        .create_user(
            &NewUser {
                email: UserEmail::parse(email).unwrap(),
                name: DisplayName::parse(email.split('@').next().unwrap()).unwrap(),
                time_zone: TimeZone::parse("Asia/Kathmandu").unwrap(),
                role: Role::Responder,
                password_hash: None,
            },
            &Audit::cli(),
        )
        .await
        .unwrap();
    let audit = Audit {
        actor_user_id: Some(user.id),
        actor: email.into(),
        client_addr: None,
    };
    (user, audit)
}

fn method(kind: ContactKind, address: &str) -> NewContactMethod {
    NewContactMethod {
        kind,
        address: address.into(),
        label: String::new(),
    }
}

async fn count(store: &Store, table: &str) -> i64 {
    let sql = format!("SELECT COUNT(*) FROM {table}");
    let (n,): (i64,) = match store.db() {
        Db::Sqlite { read, .. } => sqlx::query_as(&sql).fetch_one(read).await.unwrap(),
        Db::Postgres(pool, _) => sqlx::query_as(&sql).fetch_one(pool).await.unwrap(),
    };
    n
}

#[tokio::test]
async fn the_account_email_becomes_the_first_contact_method_once() {
    for backend in backends() {
        let (_db, store, _clock) = setup(backend).await;
        let (ana, _) = person(&store, "ana@example.com").await;
        assert!(store.contact_methods_of(ana.id).await.unwrap().is_empty());

        // Two at once (two tabs opening the profile) still make one method and one rule.
        let (a, b) = tokio::join!(
            store.ensure_default_contact(ana.id),
            store.ensure_default_contact(ana.id)
        );
        let created: Vec<_> = [a.unwrap(), b.unwrap()].into_iter().flatten().collect();
        assert_eq!(created.len(), 1, "{backend:?}");
        assert!(
            store
                .ensure_default_contact(ana.id)
                .await
                .unwrap()
                .is_none()
        );

        let methods = store.contact_methods_of(ana.id).await.unwrap();
        assert_eq!(methods.len(), 1);
        let email = &methods[0];
        assert_eq!(email.kind, ContactKind::Email);
        assert_eq!(email.address, "ana@example.com");
        assert!(email.is_account_email("ana@example.com"));
        assert_eq!(email.verified_at, Some(at("2026-11-02T09:00:00Z")));
        let rules = store.rules_of(ana.id).await.unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].contact_method_id, email.id);
        assert_eq!(rules[0].delay_minutes, 0);
        let log = store
            .audit_log(&Default::default(), 10, None)
            .await
            .unwrap();
        assert_eq!(log.items[0].action, "contact_method.create");
        assert_eq!(log.items[0].actor, "system");
    }
}

#[tokio::test]
async fn methods_and_rules_belong_to_their_owner() {
    for backend in backends() {
        let (_db, store, clock) = setup(backend).await;
        let (ana, audit) = person(&store, "ana@example.com").await;
        let (bo, bo_audit) = person(&store, "bo@example.com").await;
        store.ensure_default_contact(ana.id).await.unwrap();
        let account = store.contact_methods_of(ana.id).await.unwrap()[0].clone();

        clock.advance(TimeDelta::minutes(1));
        let hook = store
            .add_contact_method(
                ana.id,
                &NewContactMethod {
                    kind: ContactKind::Webhook,
                    address: " https://hooks.example.com/ana ".into(),
                    label: " pager bridge ".into(),
                },
                &audit,
            )
            .await
            .unwrap();
        assert_eq!(hook.address, "https://hooks.example.com/ana");
        assert_eq!(hook.label, "pager bridge");
        assert_eq!(hook.verified_at, None);
        let other = store
            .add_contact_method(
                ana.id,
                &method(ContactKind::Email, "Ana.Mobile@Example.com"),
                &audit,
            )
            .await
            .unwrap();
        assert_eq!(other.address, "ana.mobile@example.com");

        // Duplicates and bad addresses are refused and change nothing.
        for (kind, address) in [
            (ContactKind::Webhook, "https://hooks.example.com/ana"),
            (ContactKind::Email, "ANA@example.com"),
            (ContactKind::Webhook, "ftp://hooks.example.com/ana"),
            (ContactKind::Email, "not an email"),
        ] {
            let err = store
                .add_contact_method(ana.id, &method(kind, address), &audit)
                .await
                .unwrap_err();
            assert!(matches!(err, StoreError::Conflict(_)), "{address}: {err:?}");
        }
        // The same URL is fine for someone else, and as another kind.
        store
            .add_contact_method(
                bo.id,
                &method(ContactKind::Webhook, "https://hooks.example.com/ana"),
                &bo_audit,
            )
            .await
            .unwrap();
        store
            .add_contact_method(
                ana.id,
                &method(ContactKind::Slack, "https://hooks.example.com/ana"),
                &audit,
            )
            .await
            .unwrap();

        let methods = store.contact_methods_of(ana.id).await.unwrap();
        assert_eq!(methods[0].id, account.id, "account email first");
        assert_eq!(methods.len(), 4);

        // Rules: after 5 minutes by webhook; someone else's method is not found.
        let rule = store
            .add_notification_rule(ana.id, hook.id, 5, &audit)
            .await
            .unwrap();
        assert_eq!(rule.delay_minutes, 5);
        assert!(matches!(
            store
                .add_notification_rule(ana.id, hook.id, 5, &audit)
                .await
                .unwrap_err(),
            StoreError::Conflict(_)
        ));
        assert!(matches!(
            store
                .add_notification_rule(ana.id, hook.id, 1441, &audit)
                .await
                .unwrap_err(),
            StoreError::Conflict(_)
        ));
        assert!(matches!(
            store
                .add_notification_rule(bo.id, hook.id, 1, &bo_audit)
                .await
                .unwrap_err(),
            StoreError::NotFound
        ));
        let delays: Vec<i64> = store
            .rules_of(ana.id)
            .await
            .unwrap()
            .iter()
            .map(|r| r.delay_minutes)
            .collect();
        assert_eq!(delays, [0, 5]);
        // The engine's one read gives the person and the same contacts: Ana's rules in order
        // of delay; Bo, with no rules, his account email at once; nobody for a missing id.
        for user in [ana.id, bo.id] {
            let person = store.paged_person(user).await.unwrap().unwrap();
            let contacts = store.page_contacts(&person).await.unwrap();
            let (one_read, its_contacts) = store
                .paged_person_and_contacts(user)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(its_contacts, contacts, "{backend:?}");
            assert_eq!(
                (one_read.id, one_read.email, one_read.time_zone),
                (person.id, person.email, person.time_zone)
            );
        }
        let (_, contacts) = store
            .paged_person_and_contacts(ana.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            contacts.iter().map(|c| c.delay_minutes).collect::<Vec<_>>(),
            [0, 5]
        );
        assert!(
            store
                .paged_person_and_contacts(bo.id + 100)
                .await
                .unwrap()
                .is_none()
        );

        // Bo cannot delete Ana's rule or method.
        assert!(matches!(
            store
                .delete_notification_rule(bo.id, rule.id, &bo_audit)
                .await
                .unwrap_err(),
            StoreError::NotFound
        ));
        assert!(matches!(
            store
                .delete_contact_method(bo.id, hook.id, &bo_audit)
                .await
                .unwrap_err(),
            StoreError::NotFound
        ));

        // Deleting the webhook takes its rule along.
        store
            .delete_contact_method(ana.id, hook.id, &audit)
            .await
            .unwrap();
        assert_eq!(store.rules_of(ana.id).await.unwrap().len(), 1);
        assert!(matches!(
            store.contact_method(hook.id).await.unwrap_err(),
            StoreError::NotFound
        ));

        // Two emails: one may go, the last may not.
        store
            .delete_contact_method(ana.id, account.id, &audit)
            .await
            .unwrap();
        assert!(store.rules_of(ana.id).await.unwrap().is_empty());
        let err = store
            .delete_contact_method(ana.id, other.id, &audit)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
        // The default is not re-created: Ana has a method (the engine falls back to the
        // account email when there are no rules).
        assert!(
            store
                .ensure_default_contact(ana.id)
                .await
                .unwrap()
                .is_none()
        );

        let rule = store
            .add_notification_rule(ana.id, other.id, 0, &audit)
            .await
            .unwrap();
        store
            .delete_notification_rule(ana.id, rule.id, &audit)
            .await
            .unwrap();

        let actions: Vec<String> = store
            .audit_log(&Default::default(), 100, None)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|e| e.action)
            .collect();
        for action in [
            "contact_method.create",
            "contact_method.delete",
            "notification_rule.create",
            "notification_rule.delete",
        ] {
            assert!(actions.iter().any(|a| a == action), "{action} not audited");
        }
    }
}

#[tokio::test]
async fn the_last_two_emails_deleted_at_once_leave_one() {
    for backend in backends() {
        let (_db, store, _clock) = setup(backend).await;
        let (ana, audit) = person(&store, "ana@example.com").await;
        store.ensure_default_contact(ana.id).await.unwrap();
        store
            .add_contact_method(
                ana.id,
                &method(ContactKind::Email, "a2@example.com"),
                &audit,
            )
            .await
            .unwrap();
        let ids: Vec<i64> = store
            .contact_methods_of(ana.id)
            .await
            .unwrap()
            .iter()
            .map(|m| m.id)
            .collect();
        let (a, b) = tokio::join!(
            store.delete_contact_method(ana.id, ids[0], &audit),
            store.delete_contact_method(ana.id, ids[1], &audit)
        );
        assert_eq!(
            [a.is_ok(), b.is_ok()].iter().filter(|ok| **ok).count(),
            1,
            "{backend:?}"
        );
        assert_eq!(store.contact_methods_of(ana.id).await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn working_hours_round_trip_with_defaults() {
    for backend in backends() {
        let (_db, store, _clock) = setup(backend).await;
        let (ana, audit) = person(&store, "ana@example.com").await;
        assert_eq!(
            store.working_hours(ana.id).await.unwrap(),
            WorkingHours::default()
        );
        let night = WorkingHours::new(
            [Weekday::Sun, Weekday::Sat],
            TimeOfDay::parse("22:00").unwrap(),
            TimeOfDay::parse("06:30").unwrap(),
            15,
        )
        .unwrap();
        store
            .set_working_hours(ana.id, &night, &audit)
            .await
            .unwrap();
        let stored = store.working_hours(ana.id).await.unwrap();
        assert_eq!(stored, night);
        assert_eq!(stored.days_text(), "sat,sun");
        assert!(stored.crosses_midnight());
        // Saturday 2026-11-07 22:00 in Kathmandu (+05:45) is 16:15 UTC.
        let tz = ana.time_zone.tz();
        assert_eq!(
            stored.next_start(at("2026-11-02T09:00:00Z"), tz),
            at("2026-11-07T16:15:00Z")
        );
        assert!(matches!(
            store.working_hours(9999).await.unwrap_err(),
            StoreError::NotFound
        ));
        assert!(matches!(
            store
                .set_working_hours(9999, &night, &audit)
                .await
                .unwrap_err(),
            StoreError::NotFound
        ));
        let log = store.audit_log(&Default::default(), 1, None).await.unwrap();
        assert_eq!(log.items[0].action, "user.working_hours");
        assert!(log.items[0].after.as_deref().unwrap().contains("22:00"));
    }
}

#[tokio::test]
async fn a_test_send_records_a_notification_and_its_delivery_job() {
    for backend in backends() {
        let (_db, store, clock) = setup(backend).await;
        let (ana, audit) = person(&store, "ana@example.com").await;
        let hook = store
            .add_contact_method(
                ana.id,
                &method(ContactKind::Slack, "https://hooks.slack.com/services/T/B/X"),
                &audit,
            )
            .await
            .unwrap();
        let now = store.now();
        let req = store
            .request_test_notification(hook.id, &audit)
            .await
            .unwrap();

        #[derive(sqlx::FromRow, Debug)]
        struct Row {
            idempotency_key: String,
            user_id: Option<i64>,
            contact_method_id: Option<i64>,
            purpose: String,
            channel: String,
            address: String,
            subject: String,
            state: String,
            due_at: DateTime<Utc>,
        }
        let sql = "SELECT idempotency_key, user_id, contact_method_id, purpose, channel, address, subject, state, due_at FROM notifications WHERE id = $1";
        let row: Row = match store.db() {
            Db::Sqlite { read, .. } => sqlx::query_as(sql)
                .bind(req.notification_id)
                .fetch_one(read)
                .await
                .unwrap(),
            Db::Postgres(pool, _) => sqlx::query_as(sql)
                .bind(req.notification_id)
                .fetch_one(pool)
                .await
                .unwrap(),
        };
        assert_eq!(
            row.idempotency_key,
            format!("test:{}:{}", hook.id, now.timestamp_millis())
        );
        assert_eq!(row.user_id, Some(ana.id));
        assert_eq!(row.contact_method_id, Some(hook.id));
        assert_eq!(row.purpose, "test");
        assert_eq!(row.channel, "slack");
        assert_eq!(row.address, hook.address);
        assert_eq!(row.subject, TEST_SUBJECT);
        assert_eq!(row.state, "pending");
        assert_eq!(row.due_at, now);

        let sql = "SELECT kind, payload, run_at, dedup_key FROM jobs WHERE id = $1";
        let job: (String, String, DateTime<Utc>, Option<String>) = match store.db() {
            Db::Sqlite { read, .. } => sqlx::query_as(sql)
                .bind(req.job_id)
                .fetch_one(read)
                .await
                .unwrap(),
            Db::Postgres(pool, _) => sqlx::query_as(sql)
                .bind(req.job_id)
                .fetch_one(pool)
                .await
                .unwrap(),
        };
        assert_eq!(job.0, "deliver");
        let payload: serde_json::Value = serde_json::from_str(&job.1).unwrap();
        assert_eq!(
            payload,
            serde_json::json!({"notification_id": req.notification_id})
        );
        assert_eq!(job.2, now);
        assert_eq!(job.3, Some(format!("deliver:{}", req.notification_id)));

        // Again within a minute is refused, nothing half-written; a minute later is fine.
        assert!(matches!(
            store
                .request_test_notification(hook.id, &audit)
                .await
                .unwrap_err(),
            StoreError::Conflict(_)
        ));
        assert_eq!(count(&store, "notifications").await, 1);
        assert_eq!(count(&store, "jobs").await, 1);
        clock.advance(TimeDelta::seconds(59));
        assert!(matches!(
            store
                .request_test_notification(hook.id, &audit)
                .await
                .unwrap_err(),
            StoreError::Conflict(_)
        ));
        clock.advance(TimeDelta::seconds(2));
        store
            .request_test_notification(hook.id, &audit)
            .await
            .unwrap();
        assert_eq!(count(&store, "jobs").await, 2);
        // At most ten an hour per person.
        for _ in 2..10 {
            clock.advance(TimeDelta::seconds(61));
            store
                .request_test_notification(hook.id, &audit)
                .await
                .unwrap();
        }
        clock.advance(TimeDelta::seconds(61));
        let err = store
            .request_test_notification(hook.id, &audit)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("10 tests in the last hour"),
            "{err}"
        );
        assert_eq!(count(&store, "notifications").await, 10);
        assert!(matches!(
            store
                .request_test_notification(9999, &audit)
                .await
                .unwrap_err(),
            StoreError::NotFound
        ));

        // Delivery succeeded: the engine marks the method verified, once.
        clock.advance(TimeDelta::seconds(3));
        assert!(
            store
                .mark_contact_verified(hook.id, &Audit::system())
                .await
                .unwrap()
        );
        let first = store.contact_method(hook.id).await.unwrap().verified_at;
        assert_eq!(first, Some(store.now()));
        clock.advance(TimeDelta::seconds(3));
        assert!(
            !store
                .mark_contact_verified(hook.id, &Audit::system())
                .await
                .unwrap()
        );
        assert_eq!(
            store.contact_method(hook.id).await.unwrap().verified_at,
            first
        );
        assert!(matches!(
            store
                .mark_contact_verified(9999, &Audit::system())
                .await
                .unwrap_err(),
            StoreError::NotFound
        ));
    }
}
