//! End-to-end: integrations through the API and the service page (keys shown once, rotation),
//! an Events v2 trigger sent to the URL the API answered, and the alert on the API, on
//! `/alerts`, `/alerts/{id}` and its incident's page; on SQLite and PostgreSQL.

mod common;

use common::{TestApp, backends};
use heliograph_domain::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const PASSWORD: &str = "a long password here";

/// A summary that must come back escaped everywhere.
const SUMMARY: &str = "<script>alert(1)</script> GPU OOM on node-7";

/// An app with a manager (1) and a viewer (2), and service 1.
struct World {
    app: TestApp,
    tokens: Vec<String>,
    http: reqwest::Client,
}

impl World {
    async fn new(backend: heliograph_store::Backend) -> World {
        let app = TestApp::spawn(backend).await;
        let mut tokens = vec![String::new()];
        for (email, role) in [
            ("mia@example.com", Role::Manager),
            ("vic@example.com", Role::Viewer),
        ] {
            app.user(email, role, PASSWORD).await;
            tokens.push(app.token_for(email).await);
        }
        let w = World {
            app,
            tokens,
            http: reqwest::Client::new(),
        };
        let (status, service) = w
            .call(
                1,
                Method::POST,
                "/api/v1/services",
                Some(json!({"name": "llm-gateway", "kind": "llm-inference", "workload_class": "real-time"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{service}");
        assert_eq!(service["id"], 1);
        w
    }

    async fn call(
        &self,
        as_user: usize,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, self.app.url(path))
            .bearer_auth(&self.tokens[as_user]);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn get(&self, as_user: usize, path: &str) -> (StatusCode, Value) {
        self.call(as_user, Method::GET, path, None).await
    }

    async fn post(&self, as_user: usize, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(as_user, Method::POST, path, Some(body)).await
    }

    /// A browser signed in as `email`.
    async fn browser(&self, email: &str) -> reqwest::Client {
        let browser = self.app.browser();
        let res = self.app.sign_in(&browser, email, PASSWORD).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        browser
    }

    async fn page(&self, browser: &reqwest::Client, path: &str) -> (StatusCode, String) {
        let res = browser.get(self.app.url(path)).send().await.unwrap();
        (res.status(), res.text().await.unwrap())
    }

    /// Posts a form with the CSRF token of `csrf_page`.
    async fn post_form(
        &self,
        browser: &reqwest::Client,
        csrf_page: &str,
        path: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let csrf = self.app.csrf(browser, csrf_page).await;
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        browser
            .post(self.app.url(path))
            .form(&all)
            .send()
            .await
            .unwrap()
    }

    /// Posts an Events v2 trigger to `url` with `key`; returns the status and body.
    async fn trigger(&self, url: &str, key: &str, dedup: &str) -> (StatusCode, Value) {
        let res = self
            .http
            .post(url)
            .json(&json!({
                "routing_key": key,
                "event_action": "trigger",
                "dedup_key": dedup,
                "payload": {"summary": SUMMARY, "source": "node-7", "severity": "critical",
                            "custom_details": {"free_memory": "0 MiB"}}
            }))
            .send()
            .await
            .unwrap();
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }
}

fn is_key(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|k| k.len() == 32 && k.chars().all(|c| c.is_ascii_hexdigit()))
}

#[tokio::test]
async fn integrations_api_events_v2_alerts_and_rotation() {
    for backend in backends() {
        let w = World::new(backend).await;
        let base = w.app.base.clone();

        // Roles and refusals: nothing is created by them.
        let (status, body) = w
            .post(
                2,
                "/api/v1/services/1/integrations",
                json!({"type": "events_v2", "name": "Prometheus"}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{backend:?}: {body}");
        assert_eq!(body["error"]["code"], "forbidden");
        let (status, body) = w
            .post(
                1,
                "/api/v1/services/1/integrations",
                json!({"type": "pagerduty", "name": "Prometheus"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(body["error"]["fields"]["type"].is_string(), "{body}");
        let (status, body) = w
            .post(
                1,
                "/api/v1/services/1/integrations",
                json!({"type": "heartbeat", "name": "Nightly backup"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            body["error"]["fields"]["heartbeat_interval_seconds"].is_string(),
            "{body}"
        );
        let (status, body) = w
            .post(
                1,
                "/api/v1/services/1/integrations",
                json!({"type": "heartbeat", "heartbeat_interval_seconds": 30}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let (status, body) = w
            .post(
                1,
                "/api/v1/services/1/integrations",
                json!({"type": "generic", "colour": "red"}),
            )
            .await;
        assert!(status.is_client_error(), "{status} {body}");
        let (status, body) = w
            .post(
                1,
                "/api/v1/services/1/integrations",
                json!({"type": "generic", "heartbeat_interval_seconds": 600}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let (status, _) = w
            .post(
                1,
                "/api/v1/services/99/integrations",
                json!({"type": "generic"}),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (_, list) = w.get(2, "/api/v1/services/1/integrations").await;
        assert_eq!(list["integrations"], json!([]), "{backend:?}");

        // Creation: 201 with the key and the URL to send to.
        let (status, ev2) = w
            .post(
                1,
                "/api/v1/services/1/integrations",
                json!({"type": "events_v2", "name": "Prometheus"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{backend:?}: {ev2}");
        assert_eq!(ev2["type"], "events_v2");
        assert_eq!(ev2["name"], "Prometheus");
        assert!(is_key(&ev2["key"]), "{ev2}");
        assert_eq!(ev2["url"], format!("{base}/v2/enqueue"));
        let key = ev2["key"].as_str().unwrap().to_owned();
        let (status, generic) = w
            .post(
                1,
                "/api/v1/services/1/integrations",
                json!({"type": "generic", "name": "Cron scripts"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{generic}");
        assert_eq!(
            generic["url"],
            format!(
                "{base}/integrations/{}/generic",
                generic["key"].as_str().unwrap()
            )
        );
        let (status, hb) = w
            .post(
                1,
                "/api/v1/services/1/integrations",
                json!({"type": "heartbeat", "name": "Nightly backup", "heartbeat_interval_seconds": 86400}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{hb}");
        assert_eq!(hb["heartbeat_interval_seconds"], 86400);

        // Listing shows prefixes, never keys.
        let res = w
            .http
            .get(w.app.url("/api/v1/services/1/integrations"))
            .bearer_auth(&w.tokens[2])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let text = res.text().await.unwrap();
        assert!(!text.contains(&key), "a key leaked into the list: {text}");
        let list: Value = serde_json::from_str(&text).unwrap();
        let items = list["integrations"].as_array().unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(items[0]["key_prefix"], key[..8]);
        assert!(items[0].get("key").is_none());

        // An Events v2 trigger to the URL the API answered.
        let (status, body) = w
            .trigger(&format!("{base}/v2/enqueue"), &key, "oom-7")
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{backend:?}: {body}");
        assert_eq!(body["status"], "success");

        let (status, alerts) = w.get(2, "/api/v1/alerts").await;
        assert_eq!(status, StatusCode::OK, "{alerts}");
        let list = alerts["alerts"].as_array().unwrap();
        assert_eq!(list.len(), 1, "{alerts}");
        let a = &list[0];
        assert_eq!(a["integration_id"], ev2["id"]);
        assert_eq!(a["service_id"], 1);
        assert_eq!(a["dedup_key"], "oom-7");
        assert_eq!(a["status"], "triggered");
        assert_eq!(a["summary"], SUMMARY);
        assert_eq!(a["severity"], "critical");
        assert_eq!(a["count"], 1);
        assert!(a["incident_number"].is_i64(), "{a}");
        assert!(a["first_seen_at"].is_string() && a["last_seen_at"].is_string());
        assert!(alerts["next_cursor"].is_null());
        let alert_id = a["id"].as_i64().unwrap();
        let incident = a["incident_number"].as_i64().unwrap();

        // Filters.
        let (_, none) = w.get(2, "/api/v1/alerts?status=resolved").await;
        assert_eq!(none["alerts"], json!([]));
        let (_, some) = w
            .get(
                2,
                &format!(
                    "/api/v1/alerts?integration_id={}&service_id=1&status=triggered",
                    ev2["id"]
                ),
            )
            .await;
        assert_eq!(some["alerts"].as_array().unwrap().len(), 1, "{some}");
        for bad in [
            "/api/v1/alerts?status=open-ish",
            "/api/v1/alerts?service_id=abc",
            "/api/v1/alerts?limit=0",
            "/api/v1/alerts?cursor=x",
        ] {
            let (status, body) = w.get(2, bad).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
            assert!(body["error"]["code"].is_string(), "{bad}: {body}");
        }
        let (status, _) = w.get(2, "/api/v1/alerts/999").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = w.get(2, "/api/v1/alerts/abc").await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // One alert with its events and raw payloads.
        let (status, detail) = w.get(2, &format!("/api/v1/alerts/{alert_id}")).await;
        assert_eq!(status, StatusCode::OK, "{detail}");
        assert_eq!(detail["summary"], SUMMARY);
        let events = detail["events"].as_array().unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["action"], "trigger");
        assert_eq!(
            events[0]["payload"]["payload"]["custom_details"]["free_memory"],
            "0 MiB"
        );

        // Pages: the list, the alert and its incident, everything escaped.
        let browser = w.browser("vic@example.com").await;
        let (status, html) = w.page(&browser, "/alerts").await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("href=\"/alerts\""), "nav link");
        assert!(
            html.contains(&format!("href=\"/alerts/{alert_id}\"")),
            "{html}"
        );
        assert!(
            html.contains("&#60;script&#62;alert(1)&#60;/script&#62; GPU OOM"),
            "{html}"
        );
        assert!(!html.contains("<script>alert(1)"), "unescaped summary");
        assert!(html.contains(&format!("href=\"/incidents/{incident}\"")));
        assert!(html.contains("Prometheus"));
        let (_, filtered) = w.page(&browser, "/alerts?status=resolved").await;
        assert!(!filtered.contains(&format!("href=\"/alerts/{alert_id}\"")));
        let (status, _) = w.page(&browser, "/alerts?status=nonsense").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let (status, html) = w.page(&browser, &format!("/alerts/{alert_id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("<pre"), "{html}");
        assert!(html.contains("free_memory"), "{html}");
        assert!(html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"));
        assert!(!html.contains("<script>alert(1)"), "unescaped payload");
        assert!(html.contains(&format!("href=\"/incidents/{incident}\"")));
        assert!(html.contains("oom-7"));
        let (status, _) = w.page(&browser, "/alerts/999").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, html) = w.page(&browser, &format!("/incidents/{incident}")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("id=\"alerts\""), "{html}");
        assert!(html.contains(&format!("href=\"/alerts/{alert_id}\"")));

        // Rotation: the old key is refused at once, the new one works.
        let ev2_id = ev2["id"].as_i64().unwrap();
        let (status, _) = w
            .post(
                2,
                &format!("/api/v1/integrations/{ev2_id}/rotate"),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, rotated) = w
            .post(
                1,
                &format!("/api/v1/integrations/{ev2_id}/rotate"),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{rotated}");
        assert!(is_key(&rotated["key"]), "{rotated}");
        assert_ne!(rotated["key"], ev2["key"]);
        assert_eq!(rotated["url"], format!("{base}/v2/enqueue"));
        let new_key = rotated["key"].as_str().unwrap();
        let (status, body) = w
            .trigger(&format!("{base}/v2/enqueue"), &key, "oom-8")
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "old key: {body}");
        let (status, body) = w
            .trigger(&format!("{base}/v2/enqueue"), new_key, "oom-7")
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "new key: {body}");
        let (_, alerts) = w.get(2, "/api/v1/alerts").await;
        let list = alerts["alerts"].as_array().unwrap();
        assert_eq!(
            list.len(),
            1,
            "the re-trigger updates the open alert: {alerts}"
        );
        assert_eq!(list[0]["count"], 2);
        let (status, _) = w
            .post(1, "/api/v1/integrations/999/rotate", json!({}))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // Deletion.
        let generic_id = generic["id"].as_i64().unwrap();
        let (status, _) = w
            .call(
                2,
                Method::DELETE,
                &format!("/api/v1/integrations/{generic_id}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = w
            .call(
                1,
                Method::DELETE,
                &format!("/api/v1/integrations/{generic_id}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = w
            .call(
                1,
                Method::DELETE,
                &format!("/api/v1/integrations/{generic_id}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (_, list) = w.get(2, "/api/v1/services/1/integrations").await;
        assert_eq!(list["integrations"].as_array().unwrap().len(), 2);

        // The OpenAPI document names the new paths.
        let (_, doc) = w.get(2, "/api/v1/openapi.json").await;
        for path in [
            "/api/v1/services/{id}/integrations",
            "/api/v1/integrations/{id}/rotate",
            "/api/v1/alerts",
            "/api/v1/alerts/{id}",
        ] {
            assert!(doc["paths"][path].is_object(), "{path} missing");
        }
    }
}

/// The part of `html` after `marker` up to the next `"`.
fn value_after<'a>(html: &'a str, marker: &str) -> &'a str {
    let at = html
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker} in {html}"))
        + marker.len();
    let rest = &html[at..];
    &rest[..rest.find('"').unwrap()]
}

#[tokio::test]
async fn service_page_integrations_show_the_key_once() {
    for backend in backends() {
        let w = World::new(backend).await;
        let base = w.app.base.clone();
        let manager = w.browser("mia@example.com").await;

        // A refused form keeps what was typed and names the field.
        let res = w
            .post_form(
                &manager,
                "/services/1",
                "/services/1/integrations",
                &[
                    ("type", "heartbeat"),
                    ("name", "Backup"),
                    ("heartbeat_interval_seconds", "5"),
                ],
            )
            .await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = res.text().await.unwrap();
        assert!(html.contains("a minute to a week"), "{html}");
        assert!(w.app.store.integrations_of(1).await.unwrap().is_empty());

        // Adding shows the key, the URL and the snippets, once.
        let res = w
            .post_form(
                &manager,
                "/services/1",
                "/services/1/integrations",
                &[("type", "events_v2"), ("name", "Prometheus prod")],
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK, "{backend:?}");
        assert_eq!(res.headers().get("cache-control").unwrap(), "no-store");
        let html = res.text().await.unwrap();
        let key = value_after(
            &html,
            "id=\"integration-key\" class=\"mono\" readonly value=\"",
        )
        .to_owned();
        assert_eq!(key.len(), 32, "{html}");
        assert!(html.contains("shown only now"));
        assert!(html.contains("pagerduty_configs:"), "{html}");
        assert!(html.contains(&format!("routing_key: {key}")));
        assert!(html.contains(&format!("url: {base}/v2/enqueue")));
        assert!(html.contains("curl"));
        let (status, body) = w
            .trigger(&format!("{base}/v2/enqueue"), &key, "page-1")
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");

        let (status, html) = w.page(&manager, "/services/1").await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("Prometheus prod"));
        assert!(html.contains(&format!("{}…", &key[..8])), "prefix shown");
        assert!(!html.contains(&key), "the key is shown once only");
        assert!(!html.contains("shown only now"));

        // Other types: their snippets.
        let res = w
            .post_form(
                &manager,
                "/services/1",
                "/services/1/integrations",
                &[("type", "alertmanager"), ("name", "AM")],
            )
            .await;
        let html = res.text().await.unwrap();
        let am_key = value_after(
            &html,
            "id=\"integration-key\" class=\"mono\" readonly value=\"",
        )
        .to_owned();
        assert!(html.contains("webhook_configs:"));
        assert!(html.contains(&format!("url: {base}/integrations/{am_key}/alertmanager")));
        assert!(html.contains("send_resolved: true"));
        let res = w
            .post_form(
                &manager,
                "/services/1",
                "/services/1/integrations",
                &[
                    ("type", "heartbeat"),
                    ("name", "Backup"),
                    ("heartbeat_interval_seconds", "600"),
                ],
            )
            .await;
        let html = res.text().await.unwrap();
        let hb_key = value_after(
            &html,
            "id=\"integration-key\" class=\"mono\" readonly value=\"",
        )
        .to_owned();
        assert!(
            html.contains(&format!(
                "*/5 * * * * curl -fsS -m 10 -X POST {base}/integrations/{hb_key}/heartbeat"
            )),
            "{html}"
        );
        let (_, html) = w.page(&manager, "/services/1").await;
        assert!(html.contains("every 600 s"), "{html}");
        assert!(html.contains("last check-in"));

        // Rotating on the page shows the new key once; the old key is refused.
        let integrations = w.app.store.integrations_of(1).await.unwrap();
        let ev2 = integrations.iter().find(|i| i.kind == "events_v2").unwrap();
        let res = w
            .post_form(
                &manager,
                "/services/1",
                &format!("/services/1/integrations/{}/rotate", ev2.id),
                &[],
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        let html = res.text().await.unwrap();
        let new_key = value_after(
            &html,
            "id=\"integration-key\" class=\"mono\" readonly value=\"",
        )
        .to_owned();
        assert_ne!(new_key, key);
        let (status, _) = w
            .trigger(&format!("{base}/v2/enqueue"), &key, "page-2")
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = w
            .trigger(&format!("{base}/v2/enqueue"), &new_key, "page-2")
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);

        // Viewers see the list but no forms, and cannot post them.
        let viewer = w.browser("vic@example.com").await;
        let (_, html) = w.page(&viewer, "/services/1").await;
        assert!(html.contains("Prometheus prod"));
        assert!(!html.contains("Add an integration"));
        assert!(!html.contains("/rotate"));
        let res = w
            .post_form(
                &viewer,
                "/services/1",
                &format!("/services/1/integrations/{}/rotate", ev2.id),
                &[],
            )
            .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);

        // An integration of another service is not reachable through this one.
        let res = w
            .post_form(
                &manager,
                "/services/1",
                &format!("/services/2/integrations/{}/delete", ev2.id),
                &[],
            )
            .await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);

        // Deleting.
        let res = w
            .post_form(
                &manager,
                "/services/1",
                &format!("/services/1/integrations/{}/delete", ev2.id),
                &[],
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let (_, html) = w.page(&manager, "/services/1").await;
        assert!(!html.contains("class=\"integration-events_v2\""), "{html}");
        assert_eq!(w.app.store.integrations_of(1).await.unwrap().len(), 2);
        let (status, _) = w
            .trigger(&format!("{base}/v2/enqueue"), &new_key, "page-3")
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}
