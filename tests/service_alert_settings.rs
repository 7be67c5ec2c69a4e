//! A service's alert settings (grouping window, auto-resolve, severity mapping) set through
//! the API and the service form, and obeyed by ingestion; on SQLite and PostgreSQL.

mod common;

use common::{TestApp, backends};
use heliograph_domain::{IncidentStatus, Role, Severity};
use heliograph_store::Audit;
use heliograph_store::alerts::{AlertFilter, NewIntegration};
use heliograph_web::auth::hash_secret;
use heliograph_web::ingest::new_integration_key;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const PASSWORD: &str = "a long password here";

async fn call(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new()
        .request(method, app.url(path))
        .bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn settings_through_the_api_drive_ingestion() {
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        app.user("mia@example.com", Role::Manager, PASSWORD).await;
        let token = app.token_for("mia@example.com").await;
        let (status, created) = call(
            &app,
            &token,
            Method::POST,
            "/api/v1/services",
            Some(json!({"name": "llm-gateway", "kind": "llm-inference", "workload_class": "real-time"})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{backend:?}: {created}");
        assert_eq!(created["grouping_window_minutes"], 0);
        assert_eq!(created["auto_resolve"], true);
        assert_eq!(
            created["severity_map"],
            json!({"critical": "SEV1", "error": "SEV2", "warning": "SEV3", "info": "SEV4"})
        );
        let id = created["id"].as_i64().unwrap();
        let path = format!("/api/v1/services/{id}");

        let (status, changed) = call(
            &app,
            &token,
            Method::PATCH,
            &path,
            Some(json!({"severity_map": {"warning": "SEV1"}, "auto_resolve": false})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{changed}");
        assert_eq!(changed["auto_resolve"], false);
        assert_eq!(
            changed["severity_map"],
            json!({"critical": "SEV1", "error": "SEV2", "warning": "SEV1", "info": "SEV4"})
        );
        assert_eq!(changed["name"], "llm-gateway", "other fields kept");

        // Bad values: 422 naming the field, nothing changed.
        for (body, field) in [
            (
                json!({"severity_map": {"warning": "SEV9"}, "auto_resolve": true}),
                "severity_map.warning",
            ),
            (
                json!({"severity_map": {"fatal": "SEV1"}}),
                "severity_map.fatal",
            ),
            (
                json!({"grouping_window_minutes": 5000, "auto_resolve": true}),
                "grouping_window_minutes",
            ),
            (
                json!({"grouping_window_minutes": -1}),
                "grouping_window_minutes",
            ),
        ] {
            let (status, answer) = call(&app, &token, Method::PATCH, &path, Some(body)).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
            assert!(
                answer["error"]["fields"][field].is_string(),
                "{field}: {answer}"
            );
        }
        let (_, now) = call(&app, &token, Method::GET, &path, None).await;
        assert_eq!(now["severity_map"], changed["severity_map"]);
        assert_eq!(now["auto_resolve"], false);
        assert_eq!(now["grouping_window_minutes"], 0);

        // A generic warning maps to SEV1; resolving the alert leaves the incident open.
        let key = new_integration_key();
        app.store
            .create_integration(
                &NewIntegration {
                    service_id: id,
                    kind: "generic",
                    name: "generic integration",
                    key_hash: &hash_secret(&key),
                    key_prefix: &key[..8],
                    heartbeat_interval_seconds: None,
                },
                &Audit::cli(),
            )
            .await
            .unwrap();
        let ingest = format!("/integrations/{key}/generic");
        let trigger = json!({"summary": "p99 latency above 2 s", "severity": "warning",
            "dedup_key": "latency", "action": "trigger"});
        let r = reqwest::Client::new()
            .post(app.url(&ingest))
            .json(&trigger)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let alerts = app
            .store
            .alerts(&AlertFilter::default(), 10, None)
            .await
            .unwrap()
            .items;
        assert_eq!(alerts.len(), 1);
        let number = alerts[0].incident_number.expect("an incident");
        assert_eq!(
            app.store.incident(number).await.unwrap().severity,
            Severity::Sev1,
            "warning → SEV1 by the service's mapping"
        );
        let mut resolve = trigger.clone();
        resolve["action"] = json!("resolve");
        let r = reqwest::Client::new()
            .post(app.url(&ingest))
            .json(&resolve)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let alerts = app
            .store
            .alerts(&AlertFilter::default(), 10, None)
            .await
            .unwrap()
            .items;
        assert_eq!(alerts[0].status, "resolved");
        assert_eq!(
            app.store.incident(number).await.unwrap().status,
            IncidentStatus::Triggered,
            "auto-resolve is off"
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn the_service_form_saves_the_settings() {
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        app.user("mia@example.com", Role::Manager, PASSWORD).await;
        let token = app.token_for("mia@example.com").await;
        let (status, created) = call(
            &app,
            &token,
            Method::POST,
            "/api/v1/services",
            Some(json!({"name": "vector-db", "kind": "vector-db", "workload_class": "real-time"})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let id = created["id"].as_i64().unwrap();
        let browser = app.browser();
        app.sign_in(&browser, "mia@example.com", PASSWORD).await;
        let page = format!("/services/{id}");
        let html = browser
            .get(app.url(&page))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains("Resolve the incident when all its alerts resolve"));
        assert!(
            html.contains(r#"name="auto_resolve" value="on" checked"#),
            "default on"
        );
        let csrf = app.csrf(&browser, &page).await;
        let form = |grouping: &'static str, error_sev: &'static str| {
            vec![
                ("csrf", csrf.clone()),
                ("name", "vector-db".to_owned()),
                ("kind", "vector-db".to_owned()),
                ("workload_class", "real-time".to_owned()),
                ("grouping_window_minutes", grouping.to_owned()),
                ("sev_critical", "SEV1".to_owned()),
                ("sev_error", error_sev.to_owned()),
                ("sev_warning", "SEV3".to_owned()),
                ("sev_info", "SEV4".to_owned()),
            ]
        };
        // Bad values: errors beside the fields, input kept, nothing saved.
        let r = browser
            .post(app.url(&page))
            .form(&form("5000", "SEV9"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = r.text().await.unwrap();
        assert!(html.contains("Give whole minutes from 0 to 1440"), "{html}");
        assert!(html.contains(r#"value="5000""#));
        assert!(html.contains("Choose a severity from SEV1 to SEV4"));
        let kept = app.store.service(id).await.unwrap();
        assert_eq!((kept.grouping_window_minutes, kept.auto_resolve), (0, true));
        // Good values (checkbox left unticked): saved.
        let r = browser
            .post(app.url(&page))
            .form(&form("15", "SEV1"))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_redirection(), "{}", r.status());
        let saved = app.store.service(id).await.unwrap();
        assert_eq!(saved.grouping_window_minutes, 15);
        assert!(!saved.auto_resolve);
        assert_eq!(saved.severity_map.get("error"), Severity::Sev1);
        assert_eq!(saved.severity_map.get("warning"), Severity::Sev3);
        assert_eq!(saved.severity_map.0.len(), 1, "defaults are not stored");
        let html = browser
            .get(app.url(&page))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains("Grouping window: 15 min"), "{html}");
        assert!(html.contains("The incident stays open when all its alerts resolve"));
        assert!(!html.contains(r#"name="auto_resolve" value="on" checked"#));
        app.stop().await;
    }
}
