//! End-to-end alert ingestion on SQLite and PostgreSQL, with payloads from the formats' own
//! documentation (crates/ingest/tests/fixtures): PagerDuty Events v2 trigger, re-trigger,
//! acknowledge and resolve; an Alertmanager group firing then resolved; the generic webhook;
//! heartbeats missed and recovered; and every kind of bad request.

mod common;

use std::sync::Arc;

use chrono::{TimeDelta, Utc};
use common::{TestApp, backends};
use heliograph_domain::{FixedClock, IncidentStatus, ServiceKind, Severity, WorkloadClass};
use heliograph_store::alerts::{AlertFilter, NewIntegration};
use heliograph_store::services::{ResponseTargets, ServiceFields};
use heliograph_store::testdb::TestDatabase;
use heliograph_store::{Audit, Store};
use heliograph_web::auth::hash_secret;
use heliograph_web::ingest::new_integration_key;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/crates/ingest/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

async fn service(store: &Store) -> i64 {
    store
        .create_service(
            &ServiceFields {
                name: "llm-gateway".into(),
                description: String::new(),
                kind: ServiceKind::LlmInference,
                workload_class: WorkloadClass::RealTime,
                team_id: None,
                escalation_policy_id: None,
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

/// An integration of `kind` on `service`; returns (id, key).
async fn integration(
    store: &Store,
    service: i64,
    kind: &str,
    interval: Option<i64>,
) -> (i64, String) {
    let key = new_integration_key();
    let created = store
        .create_integration(
            &NewIntegration {
                service_id: service,
                kind,
                name: &format!("{kind} integration"),
                key_hash: &hash_secret(&key),
                key_prefix: &key[..8],
                heartbeat_interval_seconds: interval,
            },
            &Audit::cli(),
        )
        .await
        .unwrap();
    (created.id, key)
}

async fn post(app: &TestApp, path: &str, body: &Value) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .post(app.url(path))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn events_v2_trigger_retrigger_acknowledge_resolve() {
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        let svc = service(&app.store).await;
        let (integration_id, key) = integration(&app.store, svc, "events_v2", None).await;
        let mut trigger = fixture("pagerduty_trigger_docs.json");
        trigger["routing_key"] = json!(key);
        trigger["dedup_key"] = json!("gpu-node-7/latency");
        trigger["payload"]["severity"] = json!("critical");
        let (status, body) = post(&app, "/v2/enqueue", &trigger).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{backend:?}: {body}");
        assert_eq!(
            body,
            json!({"status": "success", "message": "Event processed", "dedup_key": "gpu-node-7/latency"})
        );
        // The alert opened an incident on the service, critical → SEV1.
        let alerts = app
            .store
            .alerts(&AlertFilter::default(), 10, None)
            .await
            .unwrap()
            .items;
        assert_eq!(alerts.len(), 1);
        let number = alerts[0].incident_number.expect("an incident");
        let incident = app.store.incident(number).await.unwrap();
        assert_eq!(incident.severity, Severity::Sev1);
        assert_eq!(incident.title, "Example alert on host1.example.com");
        // A re-trigger updates the same alert; no second incident.
        let (status, _) = post(&app, "/v2/enqueue", &trigger).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let alerts = app
            .store
            .alerts(&AlertFilter::default(), 10, None)
            .await
            .unwrap()
            .items;
        assert_eq!((alerts.len(), alerts[0].count), (1, 2));
        // Acknowledge and resolve, from the documentation's own examples.
        let mut ack = fixture("pagerduty_acknowledge_docs.json");
        ack["routing_key"] = json!(key);
        ack["dedup_key"] = json!("gpu-node-7/latency");
        assert_eq!(
            post(&app, "/v2/enqueue", &ack).await.0,
            StatusCode::ACCEPTED
        );
        assert_eq!(
            app.store.alert(alerts[0].id).await.unwrap().status,
            "acknowledged"
        );
        let mut resolve = fixture("pagerduty_resolve_docs.json");
        resolve["routing_key"] = json!(key);
        resolve["dedup_key"] = json!("gpu-node-7/latency");
        assert_eq!(
            post(&app, "/v2/enqueue", &resolve).await.0,
            StatusCode::ACCEPTED
        );
        assert_eq!(
            app.store.alert(alerts[0].id).await.unwrap().status,
            "resolved"
        );
        // Its only alert resolved, so the incident resolved (the service's default).
        let incident = app.store.incident(number).await.unwrap();
        assert_eq!(incident.status, IncidentStatus::Resolved);
        let timeline = app.store.timeline(incident.id, false).await.unwrap();
        assert!(
            timeline
                .iter()
                .any(|e| e.body.starts_with("Alert: Example alert")),
            "{timeline:?}"
        );
        // Opened by monitoring, then the alert, then (the service has no policy) the note that
        // nobody was paged, written with the declaration rather than by an engine job.
        let opening: Vec<(&str, &str)> = timeline
            .iter()
            .take(3)
            .map(|e| (e.kind.as_str(), e.actor.as_str()))
            .collect();
        assert_eq!(
            opening,
            [
                ("declared", "monitoring"),
                ("alert", "monitoring"),
                ("escalation", "Heliograph")
            ],
            "{backend:?}: {timeline:?}"
        );
        assert!(
            timeline
                .iter()
                .any(|e| e.body == "Resolved by monitoring: all of its alerts resolved")
        );
        // Acknowledge or resolve with no open alert: accepted, ignored.
        assert_eq!(
            post(&app, "/v2/enqueue", &resolve).await.0,
            StatusCode::ACCEPTED
        );
        // After resolution the same key opens a new alert and a new incident.
        assert_eq!(
            post(&app, "/v2/enqueue", &trigger).await.0,
            StatusCode::ACCEPTED
        );
        let alerts = app
            .store
            .alerts(
                &AlertFilter {
                    integration_id: Some(integration_id),
                    ..Default::default()
                },
                10,
                None,
            )
            .await
            .unwrap()
            .items;
        assert_eq!(alerts.len(), 2);
        assert_ne!(alerts[0].incident_number, Some(number));
        // Events are stored with their raw payloads.
        let events = app.store.alert_events(alerts[1].id, 10).await.unwrap();
        let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["trigger", "trigger", "acknowledge", "resolve"]);
        assert!(
            events[0].payload.contains("\"ping time\":\"1500ms\""),
            "{}",
            events[0].payload
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn an_alertmanager_group_fires_then_resolves() {
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        let svc = service(&app.store).await;
        let (_, key) = integration(&app.store, svc, "alertmanager", None).await;
        let path = format!("/integrations/{key}/alertmanager");
        let (status, body) = post(&app, &path, &fixture("alertmanager_group_firing.json")).await;
        assert_eq!(status, StatusCode::OK, "{backend:?}: {body}");
        let alerts = app
            .store
            .alerts(&AlertFilter::default(), 10, None)
            .await
            .unwrap()
            .items;
        assert_eq!(alerts.len(), 3, "one alert per fingerprint");
        let incidents: std::collections::BTreeSet<_> =
            alerts.iter().map(|a| a.incident_number).collect();
        // Three new alerts, three distinct dedup keys, no grouping window: three incidents.
        assert_eq!(incidents.len(), 3);
        assert!(alerts.iter().all(|a| a.status == "triggered"));
        // Firing again (Alertmanager repeats) updates the same three alerts.
        post(&app, &path, &fixture("alertmanager_group_firing.json")).await;
        let again = app
            .store
            .alerts(&AlertFilter::default(), 10, None)
            .await
            .unwrap()
            .items;
        assert_eq!(again.len(), 3);
        assert!(again.iter().all(|a| a.count == 2));
        let (status, _) = post(&app, &path, &fixture("alertmanager_group_resolved.json")).await;
        assert_eq!(status, StatusCode::OK);
        let resolved = app
            .store
            .alerts(&AlertFilter::default(), 10, None)
            .await
            .unwrap()
            .items;
        assert!(resolved.iter().all(|a| a.status == "resolved"));
        for n in incidents.into_iter().flatten() {
            assert_eq!(
                app.store.incident(n).await.unwrap().status,
                IncidentStatus::Resolved
            );
        }
        app.stop().await;
    }
}

#[tokio::test]
async fn generic_events_and_the_grouping_window() {
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        let svc = service(&app.store).await;
        // Group alerts of this service arriving within 10 minutes into one incident.
        if let heliograph_store::Db::Sqlite { write, .. } = app.store.db() {
            sqlx::query("UPDATE services SET grouping_window_minutes = 10")
                .execute(write)
                .await
                .unwrap();
        } else if let heliograph_store::Db::Postgres(pool, _) = app.store.db() {
            sqlx::query("UPDATE services SET grouping_window_minutes = 10")
                .execute(pool)
                .await
                .unwrap();
        }
        let (_, key) = integration(&app.store, svc, "generic", None).await;
        let path = format!("/integrations/{key}/generic");
        let first = fixture("generic_contract.json");
        let (status, body) = post(&app, &path, &first).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{backend:?}: {body}");
        let mut second = first.clone();
        second["dedup_key"] = json!("embedding-backfill/vector-db-3");
        assert_eq!(post(&app, &path, &second).await.0, StatusCode::ACCEPTED);
        let alerts = app
            .store
            .alerts(&AlertFilter::default(), 10, None)
            .await
            .unwrap()
            .items;
        assert_eq!(alerts.len(), 2);
        assert_eq!(
            alerts[0].incident_number, alerts[1].incident_number,
            "joined within the window"
        );
        let number = alerts[0].incident_number.unwrap();
        assert_eq!(
            app.store.incident(number).await.unwrap().severity,
            Severity::Sev2,
            "error → SEV2"
        );
        // Resolving one alert leaves the incident open; the second resolves it.
        let mut resolve = first.clone();
        resolve["action"] = json!("resolve");
        post(&app, &path, &resolve).await;
        assert_eq!(
            app.store.incident(number).await.unwrap().status,
            IncidentStatus::Triggered
        );
        let mut resolve2 = second.clone();
        resolve2["action"] = json!("resolve");
        post(&app, &path, &resolve2).await;
        assert_eq!(
            app.store.incident(number).await.unwrap().status,
            IncidentStatus::Resolved
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn bad_requests_are_refused_with_a_clear_answer_and_change_nothing() {
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        let svc = service(&app.store).await;
        let (_, key) = integration(&app.store, svc, "events_v2", None).await;
        let (_, generic_key) = integration(&app.store, svc, "generic", None).await;
        let client = reqwest::Client::new();
        // Not JSON, wrong content type, unknown key, invalid event, oversized body.
        let r = client
            .post(app.url("/v2/enqueue"))
            .header("content-type", "application/json")
            .body("{nope")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{backend:?}");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["status"].is_string() && body["errors"].is_array(),
            "{body}"
        );
        let r = client
            .post(app.url("/v2/enqueue"))
            .header("content-type", "text/plain")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let mut unknown = fixture("pagerduty_trigger_docs.json");
        unknown["routing_key"] = json!(new_integration_key());
        let (status, body) = post(&app, "/v2/enqueue", &unknown).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body["errors"][0].as_str().unwrap().contains("routing_key"),
            "{body}"
        );
        let mut invalid = fixture("pagerduty_trigger_docs.json");
        invalid["routing_key"] = json!(key);
        invalid["payload"]["severity"] = json!("fatal");
        invalid["payload"]["summary"] = json!("");
        let (status, body) = post(&app, "/v2/enqueue", &invalid).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["status"], "invalid event");
        let errors = body["errors"].to_string();
        assert!(
            errors.contains("payload.severity") && errors.contains("payload.summary"),
            "{body}"
        );
        let big = "x".repeat(600 * 1024);
        let mut huge = fixture("pagerduty_trigger_docs.json");
        huge["routing_key"] = json!(key);
        huge["payload"]["custom_details"] = json!({"blob": big});
        assert_eq!(
            post(&app, "/v2/enqueue", &huge).await.0,
            StatusCode::PAYLOAD_TOO_LARGE
        );
        // A key of another kind at the wrong endpoint; an unknown key on the webhook URL.
        let (status, _) = post(
            &app,
            &format!("/integrations/{key}/generic"),
            &fixture("generic_contract.json"),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = post(
            &app,
            &format!("/integrations/{}/generic", new_integration_key()),
            &fixture("generic_contract.json"),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, body) = post(
            &app,
            &format!("/integrations/{generic_key}/generic"),
            &json!({"severity": "loud"}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body["error"]["message"].is_string());
        // Nothing was stored.
        assert!(
            app.store
                .alerts(&AlertFilter::default(), 10, None)
                .await
                .unwrap()
                .items
                .is_empty()
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn over_the_rate_limit_the_answer_is_429_with_retry_after() {
    let backend = backends()[0];
    let db = Arc::new(TestDatabase::fresh(backend).await);
    // Two events a second per key, so a burst of four.
    let app =
        TestApp::spawn_configured(backend, db, Arc::new(heliograph_domain::SystemClock), |c| {
            c.ingest_rate = 2.0
        })
        .await;
    let svc = service(&app.store).await;
    let (_, key) = integration(&app.store, svc, "generic", None).await;
    let (_, other) = integration(&app.store, svc, "generic", None).await;
    let path = format!("/integrations/{key}/generic");
    let mut answers = Vec::new();
    for _ in 0..8 {
        let r = reqwest::Client::new()
            .post(app.url(&path))
            .json(&fixture("generic_contract.json"))
            .send()
            .await
            .unwrap();
        answers.push((r.status(), r.headers().get("retry-after").is_some()));
    }
    assert!(
        answers[..4].iter().all(|(s, _)| *s == StatusCode::ACCEPTED),
        "{answers:?}"
    );
    assert!(
        answers
            .iter()
            .any(|(s, retry)| *s == StatusCode::TOO_MANY_REQUESTS && *retry),
        "{answers:?}"
    );
    // Another key is not affected.
    let (status, _) = post(
        &app,
        &format!("/integrations/{other}/generic"),
        &fixture("generic_contract.json"),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    app.stop().await;
}

#[tokio::test]
async fn a_missed_heartbeat_opens_an_incident_and_the_next_check_in_resolves_it() {
    for backend in backends() {
        let clock = FixedClock::new(Utc::now());
        let db = Arc::new(TestDatabase::fresh(backend).await);
        let app = TestApp::spawn_on(backend, db, Arc::new(clock.clone())).await;
        let svc = service(&app.store).await;
        let (_, key) = integration(&app.store, svc, "heartbeat", Some(300)).await;
        let beat = format!("/integrations/{key}/heartbeat");
        let (status, body) = post(&app, &beat, &json!({})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{backend:?}: {body}");
        // Six minutes without a check-in: the engine opens an incident.
        clock.advance(TimeDelta::minutes(6));
        let mut opened = None;
        for _ in 0..100 {
            let alerts = app
                .store
                .alerts(&AlertFilter::default(), 10, None)
                .await
                .unwrap()
                .items;
            if let Some(a) = alerts.first() {
                opened = a.incident_number;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let number = opened.expect("a missed heartbeat opens an incident");
        let incident = app.store.incident(number).await.unwrap();
        assert!(
            incident
                .title
                .starts_with("Heartbeat missed: heartbeat integration"),
            "{}",
            incident.title
        );
        // The next check-in resolves it.
        assert_eq!(post(&app, &beat, &json!({})).await.0, StatusCode::ACCEPTED);
        assert_eq!(
            app.store.incident(number).await.unwrap().status,
            IncidentStatus::Resolved
        );
        app.stop().await;
    }
}

/// Group commit: several senders' requests in one transaction, each in its own savepoint, so a
/// request that fails is rolled back alone and the others are stored.
#[tokio::test]
async fn a_batch_stores_its_good_requests_and_rolls_back_a_failing_one_alone() {
    use heliograph_store::alerts::Incoming;
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        let svc = service(&app.store).await;
        let (id, _) = integration(&app.store, svc, "events_v2", None).await;
        let good = app.store.integration(id).await.unwrap();
        // A severity the alerts table refuses (the parser never lets one through): the
        // request opens an incident (incident, services, timeline, escalation, job and audit
        // rows) and then fails on the alert's check, so its savepoint must undo what it wrote.
        let event = |key: &str, severity: &'static str| Incoming {
            action: "trigger",
            dedup_key: key.into(),
            summary: Some(format!("{key} is failing")),
            source: Some("test".into()),
            severity: Some(severity),
            payload: "{}".into(),
        };
        let results = app
            .store
            .ingest_batch(&[
                (
                    good.clone(),
                    vec![event("first", "error"), event("first", "error")],
                ),
                (good.clone(), vec![event("lost", "bogus")]),
                (good.clone(), vec![event("third", "error")]),
            ])
            .await
            .unwrap();
        assert_eq!(results.len(), 3, "{backend:?}");
        let effects: Vec<_> = results[0]
            .as_ref()
            .unwrap()
            .iter()
            .map(|o| o.effect)
            .collect();
        assert_eq!(effects, ["opened", "updated"], "{backend:?}");
        assert!(results[1].is_err(), "{backend:?}: {:?}", results[1]);
        assert_eq!(results[2].as_ref().unwrap()[0].effect, "opened");
        let mut alerts: Vec<_> = app
            .store
            .alerts(&AlertFilter::default(), 10, None)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|a| (a.dedup_key, a.count))
            .collect();
        alerts.sort();
        assert_eq!(
            alerts,
            [("first".to_string(), 2), ("third".to_string(), 1)],
            "{backend:?}: the failed request left nothing behind"
        );
        let incidents = app
            .store
            .incidents(&Default::default(), 10, 0)
            .await
            .unwrap();
        assert_eq!(
            incidents.len(),
            2,
            "{backend:?}: the failed request's incident was rolled back"
        );
        app.stop().await;
    }
}

/// A replica reuses the integration it looked a key up by (for a few seconds), but a key
/// that another replica rotated, or whose integration it deleted, stops working at once:
/// the event is refused as from an unknown key and nothing is stored.
#[tokio::test]
async fn a_key_rotated_or_deleted_by_another_replica_stops_working_at_once() {
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        let other = Store::new(
            heliograph_store::Db::connect(&app.db.url)
                .await
                .expect("a second replica"),
        );
        let svc = service(&app.store).await;
        let (events_v2, key) = integration(&app.store, svc, "events_v2", None).await;
        let (generic, generic_key) = integration(&app.store, svc, "generic", None).await;
        let trigger = |key: &str, dedup: &str| {
            let mut t = fixture("pagerduty_trigger_docs.json");
            t["routing_key"] = json!(key);
            t["dedup_key"] = json!(dedup);
            t
        };
        let generic_path = format!("/integrations/{generic_key}/generic");
        let generic_event = json!({"summary": "Feature store lag", "dedup_key": "lag"});
        // Both keys work, so this replica has looked them up.
        assert_eq!(
            post(&app, "/v2/enqueue", &trigger(&key, "first")).await.0,
            StatusCode::ACCEPTED
        );
        assert_eq!(
            post(&app, &generic_path, &generic_event).await.0,
            StatusCode::ACCEPTED
        );
        // The other replica rotates the first key and deletes the generic integration.
        let new_key = new_integration_key();
        other
            .rotate_integration_key(
                events_v2,
                &hash_secret(&new_key),
                &new_key[..8],
                &Audit::cli(),
            )
            .await
            .unwrap();
        other
            .delete_integration(generic, &Audit::cli())
            .await
            .unwrap();
        // The old key is refused for an open alert's key and for a new one.
        for dedup in ["first", "second"] {
            let (status, body) = post(&app, "/v2/enqueue", &trigger(&key, dedup)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{backend:?}: {body}");
            assert_eq!(body["status"], "invalid event", "{backend:?}: {body}");
        }
        let (status, body) = post(&app, &generic_path, &generic_event).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{backend:?}: {body}");
        assert_eq!(body["error"]["code"], "unknown_key", "{backend:?}: {body}");
        // Nothing was stored: the first trigger's alert, seen once (the generic one went with
        // its integration), and the two incidents the first events opened.
        let alerts = app
            .store
            .alerts(&AlertFilter::default(), 10, None)
            .await
            .unwrap()
            .items;
        let seen: Vec<_> = alerts
            .iter()
            .map(|a| (a.dedup_key.as_str(), a.count))
            .collect();
        assert_eq!(seen, [("first", 1)], "{backend:?}");
        let incidents = app
            .store
            .incidents(&Default::default(), 10, 0)
            .await
            .unwrap();
        assert_eq!(incidents.len(), 2, "{backend:?}");
        // The new key works.
        let (status, body) = post(&app, "/v2/enqueue", &trigger(&new_key, "first")).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{backend:?}: {body}");
        app.stop().await;
    }
}

/// A burst of concurrent senders (batched on SQLite, side by side on PostgreSQL): every
/// accepted event is stored once, repeated keys update one alert, distinct keys open one
/// incident each.
#[tokio::test]
async fn a_burst_of_concurrent_events_is_stored_exactly() {
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        let svc = service(&app.store).await;
        let (_, key) = integration(&app.store, svc, "events_v2", None).await;
        let client = reqwest::Client::new();
        let sends = (0..120).map(|i| {
            let client = client.clone();
            let url = app.url("/v2/enqueue");
            let body = json!({
                "routing_key": key,
                "event_action": "trigger",
                "dedup_key": format!("burst-{}", i % 40),
                "payload": {"summary": format!("burst {}", i % 40), "source": "load", "severity": "warning"}
            });
            async move { client.post(url).json(&body).send().await.unwrap().status() }
        });
        let statuses = futures::future::join_all(sends).await;
        assert!(
            statuses.iter().all(|s| *s == StatusCode::ACCEPTED),
            "{backend:?}: {statuses:?}"
        );
        let alerts = app
            .store
            .alerts(&AlertFilter::default(), 100, None)
            .await
            .unwrap()
            .items;
        assert_eq!(alerts.len(), 40, "{backend:?}");
        assert!(alerts.iter().all(|a| a.count == 3), "{backend:?}");
        for alert in &alerts {
            let events = app.store.alert_events(alert.id, 10).await.unwrap();
            assert_eq!(
                events.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
                ["trigger"; 3],
                "{backend:?}: each event stored once with its alert"
            );
        }
        let mut incidents: Vec<_> = alerts.iter().map(|a| a.incident_number).collect();
        incidents.sort();
        incidents.dedup();
        assert_eq!(incidents.len(), 40, "{backend:?}: one incident per key");
        app.stop().await;
    }
}
