//! End-to-end: the engine reminds owners of overdue postmortem action items by real email (a
//! real SMTP server, started by the test), once per item and due date, judging "overdue" by
//! the owner's own calendar day — on SQLite and PostgreSQL.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use common::{TestApp, backends};
use heliograph_domain::{DisplayName, FixedClock, Role, Severity, TimeZone, UserEmail};
use heliograph_notify::testing::SmtpSink;
use heliograph_store::incidents::NewIncident;
use heliograph_store::postmortems::{ActionItemFields, ItemStatus, Priority};
use heliograph_store::testdb::TestDatabase;
use heliograph_store::users::NewUser;
use heliograph_store::{Audit, Store};

fn item(title: &str, owner: i64, due: &str, status: ItemStatus) -> ActionItemFields {
    ActionItemFields {
        title: title.into(),
        owner_id: Some(owner),
        due_date: Some(due.parse::<NaiveDate>().unwrap()),
        priority: Priority::High,
        status,
        tracker_url: None,
    }
}

/// A postmortem (of incident #1) with its action items; returns the ids of the items.
async fn postmortem_with_items(store: &Store, items: &[ActionItemFields]) -> Vec<i64> {
    let incident = store
        .declare_incident(
            &NewIncident {
                title: "Embeddings API 5xx".into(),
                description: String::new(),
                description_html: String::new(),
                severity: Severity::Sev2,
                service_ids: vec![],
                commander_id: None,
            },
            &Audit::cli(),
        )
        .await
        .unwrap();
    let (pm, _) = store
        .start_postmortem(incident.number, &Audit::cli())
        .await
        .unwrap();
    let mut ids = Vec::new();
    for fields in items {
        ids.push(
            store
                .add_action_item(pm, fields, &Audit::cli())
                .await
                .unwrap()
                .id,
        );
    }
    ids
}

#[tokio::test]
async fn an_overdue_action_item_reminds_its_owner_by_email_once() {
    let smtp = SmtpSink::start().await;
    // Tuesday 10 March 2026, 12:00 UTC: already Wednesday 02:00 at UTC+14.
    let start: DateTime<Utc> = "2026-03-10T12:00:00Z".parse().unwrap();
    for backend in backends() {
        let clock = FixedClock::new(start);
        let db = Arc::new(TestDatabase::fresh(backend).await);
        let url: url::Url = smtp.url().parse().unwrap();
        let app = TestApp::spawn_configured(backend, db, Arc::new(clock.clone()), move |c| {
            c.smtp_url = Some(url)
        })
        .await;
        // ana lives in London; kai on Kiritimati (UTC+14), where 10 March is over.
        let ana = app
            .user("ana@example.com", Role::Responder, "ana's long password")
            .await;
        let kai = app
            .store
            .create_user(
                &NewUser {
                    email: UserEmail::parse("kai@example.com").unwrap(),
                    name: DisplayName::parse("Kai").unwrap(),
                    time_zone: TimeZone::parse("Pacific/Kiritimati").unwrap(),
                    role: Role::Responder,
                    password_hash: None,
                },
                &Audit::cli(),
            )
            .await
            .unwrap();
        let ids = postmortem_with_items(
            &app.store,
            &[
                // Due yesterday: overdue.
                item(
                    "Pin the embedding model version",
                    ana.id,
                    "2026-03-09",
                    ItemStatus::Open,
                ),
                // Due today in London: not yet overdue.
                item("Add a canary", ana.id, "2026-03-10", ItemStatus::Open),
                // Overdue but done: nothing to remind.
                item("Write the runbook", ana.id, "2026-03-01", ItemStatus::Done),
                // Due 10 March, which has ended on Kiritimati: overdue for kai.
                item(
                    "Alert on index staleness",
                    kai.id,
                    "2026-03-10",
                    ItemStatus::InProgress,
                ),
            ],
        )
        .await;
        let before = smtp.messages().len();

        // The next hourly pass finds the overdue items.
        clock.advance(TimeDelta::hours(1));
        let mails = smtp.wait_for(before + 2, Duration::from_secs(20)).await;
        let mut new: Vec<_> = mails[before..]
            .iter()
            .map(|m| (m.to.join(","), m.subject.clone()))
            .collect();
        new.sort();
        assert_eq!(
            new,
            [
                (
                    "ana@example.com".to_owned(),
                    "[Heliograph] Action item overdue: Pin the embedding model version (due 2026-03-09, postmortem #1)".to_owned()
                ),
                (
                    "kai@example.com".to_owned(),
                    "[Heliograph] Action item overdue: Alert on index staleness (due 2026-03-10, postmortem #1)".to_owned()
                ),
            ],
            "{backend:?}"
        );
        let reminded = |id: i64| {
            let store = app.store.clone();
            async move { store.action_item(id).await.unwrap().reminded_at }
        };
        assert!(reminded(ids[0]).await.is_some(), "{backend:?}");
        assert!(reminded(ids[1]).await.is_none());
        assert!(reminded(ids[2]).await.is_none());
        assert!(reminded(ids[3]).await.is_some());

        // Later passes send nothing more for the same items.
        for _ in 0..2 {
            clock.advance(TimeDelta::hours(1));
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        assert_eq!(smtp.messages().len(), before + 2, "{backend:?}: once each");

        // The next day ana's second item is overdue too: one more mail, for it alone.
        clock.advance(TimeDelta::hours(22));
        let mails = smtp.wait_for(before + 3, Duration::from_secs(20)).await;
        assert_eq!(
            mails.last().unwrap().subject,
            "[Heliograph] Action item overdue: Add a canary (due 2026-03-10, postmortem #1)"
        );
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(smtp.messages().len(), before + 3, "{backend:?}");
        app.stop().await;
    }
}
