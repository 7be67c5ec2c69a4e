//! `heliograph demo`: the demo organisation loads on both databases with plausible history,
//! pages went to whoever the scheduler says was on call, a second load refuses and changes
//! nothing, and the main pages answer with content for a signed-in viewer.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use common::{TestApp, backends};
use heliograph_domain::Role;
use heliograph_scheduler::Schedule;
use heliograph_store::testdb::TestDatabase;
use heliograph_store::{Db, Store};
use heliograph_web::demo::{self, DemoError, DemoOptions};
use reqwest::StatusCode;

/// One number from a query, on either backend.
async fn scalar(store: &Store, sql: &'static str) -> i64 {
    match store.db() {
        Db::Sqlite { read, .. } => sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(read)
            .await
            .unwrap(),
        Db::Postgres(pool, _) => sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(pool)
            .await
            .unwrap(),
    }
}

/// Rows of (user id, level, due_at) of first-rule pages, on either backend.
async fn first_pages(store: &Store) -> Vec<(i64, i64, DateTime<Utc>)> {
    let sql = "SELECT n.user_id, n.level, n.due_at FROM notifications n
               JOIN contact_methods m ON m.id = n.contact_method_id
               JOIN users u ON u.id = n.user_id AND u.email = m.address
               WHERE n.purpose = 'page'";
    match store.db() {
        Db::Sqlite { read, .. } => sqlx::query_as(sql).fetch_all(read).await.unwrap(),
        Db::Postgres(pool, _) => sqlx::query_as(sql).fetch_all(pool).await.unwrap(),
    }
}

const TABLES: &[&str] = &[
    "SELECT COUNT(*) FROM users",
    "SELECT COUNT(*) FROM teams",
    "SELECT COUNT(*) FROM services",
    "SELECT COUNT(*) FROM schedules",
    "SELECT COUNT(*) FROM escalation_policies",
    "SELECT COUNT(*) FROM incidents",
    "SELECT COUNT(*) FROM alerts",
    "SELECT COUNT(*) FROM notifications",
    "SELECT COUNT(*) FROM postmortems",
    "SELECT COUNT(*) FROM audit_log",
];

async fn counts(store: &Store) -> Vec<i64> {
    let mut out = Vec::new();
    for sql in TABLES {
        out.push(scalar(store, sql).await);
    }
    out
}

#[tokio::test]
async fn demo_organisation_loads_once_and_populates_every_page() {
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        let store = app.store.clone();
        let started = Instant::now();
        let summary = demo::load(
            &store,
            &DemoOptions {
                admin_password: Some("demo admin password".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{backend:?}: {e}"));
        eprintln!(
            "{backend:?}: demo loaded in {:.1} s: {summary:?}",
            started.elapsed().as_secs_f64()
        );
        assert!(
            started.elapsed().as_secs() < 60,
            "{backend:?}: the demo took {:?}",
            started.elapsed()
        );

        // About 1,500 incidents over the last twelve months, with plausible severities.
        let now = store.now();
        let incidents = scalar(&store, "SELECT COUNT(*) FROM incidents").await;
        assert_eq!(incidents, 1500, "{backend:?}");
        assert_eq!(summary.incidents, 1500);
        let sevs: HashMap<String, i64> = {
            let sql = "SELECT severity, COUNT(*) FROM incidents GROUP BY severity";
            match store.db() {
                Db::Sqlite { read, .. } => sqlx::query_as(sql).fetch_all(read).await.unwrap(),
                Db::Postgres(pool, _) => sqlx::query_as(sql).fetch_all(pool).await.unwrap(),
            }
            .into_iter()
            .collect()
        };
        let share = |s: &str| sevs.get(s).copied().unwrap_or(0) as f64 / incidents as f64;
        assert!((0.01..0.06).contains(&share("SEV1")), "{sevs:?}");
        assert!((0.08..0.17).contains(&share("SEV2")), "{sevs:?}");
        assert!((0.28..0.42).contains(&share("SEV3")), "{sevs:?}");
        assert!(share("SEV4") > 0.4, "{sevs:?}");
        let (first, last): (DateTime<Utc>, DateTime<Utc>) = {
            let sql = "SELECT MIN(triggered_at), MAX(triggered_at) FROM incidents";
            match store.db() {
                Db::Sqlite { read, .. } => sqlx::query_as(sql).fetch_one(read).await.unwrap(),
                Db::Postgres(pool, _) => sqlx::query_as(sql).fetch_one(pool).await.unwrap(),
            }
        };
        assert!(first >= now - TimeDelta::days(366) && first < now - TimeDelta::days(355));
        assert!(last <= now && last > now - TimeDelta::days(1));
        let open = scalar(
            &store,
            "SELECT COUNT(*) FROM incidents WHERE status <> 'resolved'",
        )
        .await;
        assert!((1..=5).contains(&open), "{open} open incidents");

        // All six services, each with incidents; llm-gateway and vector-db busiest.
        let services = store.services().await.unwrap();
        let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
        for name in [
            "llm-gateway",
            "embedding-service",
            "vector-db",
            "feature-store",
            "agent-runtime",
            "nightly-finetune",
        ] {
            assert!(names.contains(&name), "{name} missing from {names:?}");
        }
        assert!(
            services
                .iter()
                .all(|s| s.escalation_policy_id.is_some() && !s.response_targets.0.is_empty())
        );

        // The follow-the-sun schedule: three regional layers that together cover the day,
        // in winter and in summer.
        let sun = store.schedule(summary.follow_the_sun_id).await.unwrap();
        let layer_names: Vec<&str> = sun.layers.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(layer_names, ["APAC", "EMEA", "AMER"]);
        let layers_only = Schedule::new(sun.layers.clone(), Vec::new()).unwrap();
        for week in [
            now,
            NaiveDate::from_ymd_opt(2027, 1, 11)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc(),
            NaiveDate::from_ymd_opt(2027, 7, 12)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc(),
        ] {
            let gaps = layers_only.gaps(week, week + TimeDelta::days(7));
            assert!(gaps.is_empty(), "gaps in the week of {week}: {gaps:?}");
        }

        // Pages went to whoever was on call at the time (overrides included).
        let overrides = |id: i64| {
            let store = store.clone();
            async move {
                store
                    .overrides_between(id, now - TimeDelta::days(400), now + TimeDelta::days(30))
                    .await
                    .unwrap()
                    .iter()
                    .map(|o| o.to_override())
                    .collect::<Vec<_>>()
            }
        };
        let sun_final = Schedule::new(sun.layers.clone(), overrides(sun.id).await).unwrap();
        assert!(
            !overrides(sun.id).await.is_empty(),
            "the demo has overrides"
        );
        let secondary = store.schedule(summary.secondary_id).await.unwrap();
        let secondary_final =
            Schedule::new(secondary.layers.clone(), overrides(secondary.id).await).unwrap();
        let pages = first_pages(&store).await;
        assert!(
            pages.len() as i64 >= incidents * 9 / 10,
            "{} first pages for {incidents} incidents",
            pages.len()
        );
        let mut checked = [0, 0];
        for (user, level, due) in &pages {
            let expected = match level {
                0 => sun_final.on_call_at(*due).participant,
                1 => secondary_final.on_call_at(*due).participant,
                _ => continue,
            };
            assert_eq!(
                expected,
                Some(*user),
                "{backend:?}: page at level {level} at {due} went to {user}"
            );
            checked[*level as usize] += 1;
        }
        assert!(checked[0] > 1000 && checked[1] > 10, "{checked:?}");
        let unsent = scalar(
            &store,
            "SELECT COUNT(*) FROM notifications WHERE state <> 'sent' OR sent_at IS NULL OR sent_at < due_at",
        )
        .await;
        assert_eq!(unsent, 0);
        let unclassified = scalar(
            &store,
            "SELECT COUNT(*) FROM notifications WHERE purpose = 'page' AND interruption IS NULL",
        )
        .await;
        assert_eq!(unclassified, 0, "every page is classified");
        let sleep = scalar(
            &store,
            "SELECT COUNT(*) FROM notifications WHERE interruption = 'sleep'",
        )
        .await;
        assert!(sleep > 0, "some pages fall in someone's night");

        // Alerts with dedup keys and event counts, some of them noisy.
        let alerts = scalar(&store, "SELECT COUNT(*) FROM alerts").await;
        assert!(alerts >= incidents, "{alerts} alerts");
        let noisy = scalar(&store, "SELECT COUNT(*) FROM alerts WHERE count >= 50").await;
        assert!(noisy > 20, "{noisy} noisy alerts");
        let events = scalar(&store, "SELECT COUNT(*) FROM alert_events").await;
        let total: i64 = scalar(&store, "SELECT CAST(SUM(count) AS BIGINT) FROM alerts").await;
        let resolved_alerts = scalar(
            &store,
            "SELECT COUNT(*) FROM alerts WHERE status = 'resolved'",
        )
        .await;
        assert_eq!(
            events,
            total + resolved_alerts,
            "one event per trigger and resolve"
        );

        // Breaches where targets were missed, and only there.
        let breaches = scalar(&store, "SELECT COUNT(*) FROM response_breaches").await;
        assert!(breaches > 0 && breaches < incidents * 2);
        let early = scalar(
            &store,
            "SELECT COUNT(*) FROM response_breaches b JOIN incidents i ON i.id = b.incident_id
             WHERE b.kind = 'acknowledge' AND i.acknowledged_at IS NOT NULL AND i.acknowledged_at <= b.breached_at",
        )
        .await;
        assert_eq!(early, 0, "no breach for an acknowledgement within target");

        // Postmortems: most SEV1/SEV2 have one, most published, some not yet; action items
        // done, open and overdue.
        let sev12 = scalar(
            &store,
            "SELECT COUNT(*) FROM incidents WHERE severity IN ('SEV1', 'SEV2') AND status = 'resolved'",
        )
        .await;
        let published = scalar(
            &store,
            "SELECT COUNT(*) FROM postmortems WHERE status = 'published'",
        )
        .await;
        let pending = scalar(
            &store,
            "SELECT COUNT(*) FROM postmortems WHERE status <> 'published'",
        )
        .await;
        assert!(published * 2 > sev12, "{published} published of {sev12}");
        assert!(pending > 0);
        let today = now.date_naive().format("%Y-%m-%d").to_string();
        let overdue = {
            let sql = "SELECT COUNT(*) FROM action_items WHERE status IN ('open', 'in_progress') AND due_date < $1";
            match store.db() {
                Db::Sqlite { read, .. } => sqlx::query_scalar::<_, i64>(sql)
                    .bind(&today)
                    .fetch_one(read)
                    .await
                    .unwrap(),
                Db::Postgres(pool, _) => sqlx::query_scalar::<_, i64>(sql)
                    .bind(&today)
                    .fetch_one(pool)
                    .await
                    .unwrap(),
            }
        };
        let done = scalar(
            &store,
            "SELECT COUNT(*) FROM action_items WHERE status = 'done'",
        )
        .await;
        assert!(
            overdue > 0 && done > overdue,
            "{overdue} overdue, {done} done"
        );

        // A second load refuses with a clear message and changes nothing.
        let before = counts(&store).await;
        match demo::load(&store, &DemoOptions::default()).await {
            Err(DemoError::NotEmpty(what)) => {
                assert!(
                    what.contains("6 services") && what.contains("1500 incidents"),
                    "{what}"
                )
            }
            other => panic!("{backend:?}: the second load should refuse: {other:?}"),
        }
        assert_eq!(before, counts(&store).await, "{backend:?}");

        // The admin can sign in; a viewer sees every main page populated.
        let admin = app.browser();
        let signed = app
            .sign_in(&admin, demo::ADMIN_EMAIL, "demo admin password")
            .await;
        assert_eq!(signed.status(), StatusCode::SEE_OTHER);
        app.user("leader@example.com", Role::Viewer, "viewer password 1")
            .await;
        let viewer = app.browser();
        let signed = app
            .sign_in(&viewer, "leader@example.com", "viewer password 1")
            .await;
        assert_eq!(signed.status(), StatusCode::SEE_OTHER);
        let llm = summary
            .services
            .iter()
            .find(|(n, _)| n == "llm-gateway")
            .unwrap()
            .1;
        for (path, needle) in [
            ("/incidents".to_owned(), "SEV"),
            ("/oncall".to_owned(), "AI platform follow-the-sun"),
            (format!("/schedules/{}", summary.follow_the_sun_id), "APAC"),
            ("/postmortems".to_owned(), "Postmortem: "),
            (format!("/services/{llm}"), "llm-gateway"),
            ("/insights".to_owned(), "SEV1"),
        ] {
            let response = viewer.get(app.url(&path)).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{backend:?} {path}");
            let html = response.text().await.unwrap();
            assert!(html.contains(needle), "{backend:?} {path}: no {needle:?}");
        }
        app.stop().await;
    }
}

fn heliograph(db: &str, args: &[&str]) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_heliograph"))
        .args(args)
        .env("HELIOGRAPH_DATABASE_URL", db)
        .env("RUST_LOG", "warn")
        .env_remove("HELIOGRAPH_BASE_URL")
        .env_remove("HELIOGRAPH_BIND")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run heliograph");
    child.stdin.take().unwrap().write_all(b"").unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn heliograph_demo_command_loads_then_refuses() {
    for backend in backends() {
        let db = Arc::new(TestDatabase::fresh(backend).await);
        let (ok, out, err) = heliograph(&db.url, &["demo", "--incidents", "200"]);
        assert!(ok, "{backend:?}: {err}");
        assert!(out.contains("200 incidents"), "{out}");
        let password = out
            .lines()
            .last()
            .and_then(|l| l.strip_prefix("as admin@demo.example with password "))
            .unwrap_or_else(|| panic!("no sign-in line in {out}"))
            .trim()
            .to_owned();
        assert!(password.len() >= 16, "{password}");
        assert!(out.contains("http://127.0.0.1:8080"), "{out}");

        let (ok, out, err) = heliograph(&db.url, &["demo"]);
        assert!(!ok, "{backend:?}: a second demo load must fail: {out}");
        assert!(
            err.contains("already has") && err.contains("nothing was changed"),
            "{err}"
        );

        let (ok, _, err) = heliograph(&db.url, &["demo", "--incidents", "0"]);
        assert!(!ok && err.contains("--incidents"), "{err}");

        let app = TestApp::spawn_on(backend, db, Arc::new(heliograph_domain::SystemClock)).await;
        let client = app.browser();
        let signed = app.sign_in(&client, "admin@demo.example", &password).await;
        assert_eq!(signed.status(), StatusCode::SEE_OTHER, "{backend:?}");
        let html = client
            .get(app.url("/incidents"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains("SEV"), "{html}");
        app.stop().await;
    }
}
