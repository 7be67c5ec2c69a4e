//! End-to-end: escalation policies and services' policies and response targets, through the
//! API and the browser forms, on SQLite and PostgreSQL.

mod common;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use common::{TestApp, backends};
use heliograph_domain::{FixedClock, Role};
use heliograph_store::testdb::TestDatabase;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const PASSWORD: &str = "a long password here";

/// An app at a fixed instant with a manager (1), a viewer (2), three responders in team 1
/// (3, 4, 5), a responder outside it (6) and a head of operations (7, as in CONTRACT.md's
/// example); schedule 1 has responder 3 on call around the clock. Tokens by user id.
struct World {
    app: TestApp,
    tokens: Vec<String>,
    http: reqwest::Client,
}

impl World {
    async fn new(backend: heliograph_store::Backend) -> World {
        let now = DateTime::parse_from_rfc3339("2026-03-02T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let db = Arc::new(TestDatabase::fresh(backend).await);
        let app = TestApp::spawn_on(backend, db, Arc::new(FixedClock::new(now))).await;
        let people = [
            ("mia@example.com", Role::Manager),
            ("vic@example.com", Role::Viewer),
            ("ana@example.com", Role::Responder),
            ("ben@example.com", Role::Responder),
            ("cho@example.com", Role::Responder),
            ("out@example.com", Role::Responder),
            ("hed@example.com", Role::Responder),
        ];
        let mut tokens = vec![String::new()];
        for (i, (email, role)) in people.into_iter().enumerate() {
            let user = app.user(email, role, PASSWORD).await;
            assert_eq!(user.id, i as i64 + 1, "{backend:?}: ids start at 1");
            tokens.push(app.token_for(email).await);
        }
        let w = World {
            app,
            tokens,
            http: reqwest::Client::new(),
        };
        let (status, team) = w
            .call(
                1,
                Method::POST,
                "/api/v1/teams",
                Some(json!({"name": "AI platform", "members": [3, 4, 5]})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{team}");
        let (status, schedule) = w
            .call(
                1,
                Method::POST,
                "/api/v1/schedules",
                Some(json!({
                    "name": "AI platform primary", "time_zone": "UTC", "team_id": 1,
                    "layers": [{"name": "Everyone", "participants": [3],
                                "shift": {"unit": "weeks", "count": 1},
                                "handoff": "2026-01-05T09:00:00", "handoff_time_zone": "UTC"}]
                })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{schedule}");
        assert_eq!(schedule["id"], 1);
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

    async fn policy_count(&self) -> usize {
        self.app.store.policies().await.unwrap().len()
    }

    /// A browser signed in as `email`.
    async fn browser(&self, email: &str) -> reqwest::Client {
        let browser = self.app.browser();
        let res = self.app.sign_in(&browser, email, PASSWORD).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        browser
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
}

/// CONTRACT.md's example policy, verbatim.
fn contract_policy() -> Value {
    json!({"name": "LLM gateway", "team_id": 1, "repeat": 2,
       "levels": [
         {"delay_minutes": 5, "min_severity": null,   "targets": [{"type": "schedule", "id": 1}]},
         {"delay_minutes": 10, "min_severity": "SEV2", "targets": [{"type": "user", "id": 7}]}]})
}

/// CONTRACT.md's example service, verbatim.
fn contract_service() -> Value {
    json!({"name": "llm-gateway", "description": "…", "kind": "llm-inference", "workload_class": "real-time",
       "team_id": 1, "escalation_policy_id": 1,
       "response_targets": {"SEV1": {"acknowledge_minutes": 5, "resolve_minutes": 60}}})
}

#[tokio::test]
async fn the_contract_example_is_created_read_listed_replaced_and_deleted() {
    for backend in backends() {
        let w = World::new(backend).await;
        let (status, created) = w
            .post(1, "/api/v1/escalation-policies", contract_policy())
            .await;
        assert_eq!(status, StatusCode::CREATED, "{backend:?}: {created}");
        assert_eq!(created["id"], 1);
        assert_eq!(created["name"], "LLM gateway");
        assert_eq!(created["team_id"], 1);
        assert_eq!(created["repeat"], 2);
        assert_eq!(created["low_severity_any_time"], false);
        assert_eq!(created["version"], 1);
        assert_eq!(created["levels"], contract_policy()["levels"]);

        let (status, read) = w.get(2, "/api/v1/escalation-policies/1").await;
        assert_eq!(status, StatusCode::OK, "viewers read");
        assert_eq!(read, created);

        let mut second = contract_policy();
        second["name"] = json!("Vector DB");
        second["low_severity_any_time"] = json!(true);
        let (status, second) = w.post(1, "/api/v1/escalation-policies", second).await;
        assert_eq!(status, StatusCode::CREATED, "{second}");
        assert_eq!(second["low_severity_any_time"], true);
        let (status, list) = w.get(2, "/api/v1/escalation-policies").await;
        assert_eq!(status, StatusCode::OK);
        let names: Vec<&str> = list["escalation_policies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Vector DB", "LLM gateway"], "newest first");
        let (_, page) = w.get(2, "/api/v1/escalation-policies?limit=1").await;
        assert_eq!(page["escalation_policies"].as_array().unwrap().len(), 1);
        let cursor = page["next_cursor"].as_i64().unwrap();
        let (_, rest) = w
            .get(
                2,
                &format!("/api/v1/escalation-policies?limit=1&cursor={cursor}"),
            )
            .await;
        assert_eq!(rest["escalation_policies"][0]["name"], "LLM gateway");

        // Viewers may not change anything.
        let (status, _) = w
            .post(2, "/api/v1/escalation-policies", contract_policy())
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = w
            .call(
                2,
                Method::PUT,
                "/api/v1/escalation-policies/1",
                Some(contract_policy()),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = w
            .call(2, Method::DELETE, "/api/v1/escalation-policies/1", None)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);

        // A GET answer edited and sent back with its version saves; sent again it is stale.
        let mut edited = read.clone();
        edited["repeat"] = json!(0);
        let (status, saved) = w
            .call(
                1,
                Method::PUT,
                "/api/v1/escalation-policies/1",
                Some(edited.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{saved}");
        assert_eq!(saved["version"], 2);
        assert_eq!(saved["repeat"], 0);
        edited["repeat"] = json!(5);
        let (status, stale) = w
            .call(
                1,
                Method::PUT,
                "/api/v1/escalation-policies/1",
                Some(edited),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{stale}");
        assert_eq!(stale["error"]["code"], "conflict");
        assert_eq!(w.app.store.policy(1).await.unwrap().repeat, 0);

        let (status, _) = w
            .call(1, Method::DELETE, "/api/v1/escalation-policies/1", None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, gone) = w.get(1, "/api/v1/escalation-policies/1").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{gone}");
        let actions = w.app.audit_actions().await;
        assert!(actions.contains(&"escalation_policy.delete".to_owned()));
    }
}

#[tokio::test]
async fn bad_policies_are_refused_field_by_field_and_nothing_is_saved() {
    for backend in backends() {
        let w = World::new(backend).await;
        let with = |path: &[&str], value: Value| {
            let mut body = contract_policy();
            let mut at = &mut body;
            for key in &path[..path.len() - 1] {
                at = match key.parse::<usize>() {
                    Ok(i) => &mut at[i],
                    Err(_) => &mut at[*key],
                };
            }
            at[path[path.len() - 1]] = value;
            body
        };
        let cases = [
            (
                with(
                    &["levels", "0", "targets"],
                    json!([{"type": "schedule", "id": 99}]),
                ),
                "levels[0].targets[0].id",
                "no schedule 99",
            ),
            (
                with(&["levels", "0", "delay_minutes"], json!(0)),
                "levels[0].delay_minutes",
                "1 to 1440",
            ),
            (
                with(&["levels", "1", "min_severity"], json!("SEV9")),
                "levels[1].min_severity",
                "SEV9",
            ),
            (
                with(&["levels", "0", "targets"], json!([])),
                "levels[0].targets",
                "at least one",
            ),
            (with(&["repeat"], json!(99)), "repeat", "0 to 20"),
            (
                with(
                    &["levels", "1", "targets"],
                    json!([{"type": "user", "id": 99}]),
                ),
                "levels[1].targets[0].id",
                "no user 99",
            ),
            (
                with(
                    &["levels", "1", "targets"],
                    json!([{"type": "team", "id": 1}]),
                ),
                "levels[1].targets[0].type",
                "nknown variant `team`",
            ),
            (with(&["levels"], json!([])), "levels", "at least one level"),
            (with(&["team_id"], json!(42)), "team_id", "no team 42"),
        ];
        for (body, field, words) in cases {
            let (status, answer) = w.post(1, "/api/v1/escalation-policies", body).await;
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{backend:?} {field}: {answer}"
            );
            assert_eq!(answer["error"]["code"], "validation_failed", "{answer}");
            let message = answer["error"]["fields"][field]
                .as_str()
                .unwrap_or_else(|| panic!("{field}: {answer}"));
            assert!(message.contains(words), "{field}: {message}");
        }
        assert_eq!(w.policy_count().await, 0, "nothing saved");
        assert!(
            !w.app
                .audit_actions()
                .await
                .contains(&"escalation_policy.create".to_owned())
        );
    }
}

#[tokio::test]
async fn services_take_a_policy_and_response_targets_through_the_api() {
    for backend in backends() {
        let w = World::new(backend).await;
        let (status, _) = w
            .post(1, "/api/v1/escalation-policies", contract_policy())
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, svc) = w.post(1, "/api/v1/services", contract_service()).await;
        assert_eq!(status, StatusCode::CREATED, "{backend:?}: {svc}");
        assert_eq!(svc["escalation_policy_id"], 1);
        assert_eq!(
            svc["response_targets"],
            json!({"SEV1": {"acknowledge_minutes": 5, "resolve_minutes": 60}})
        );
        let id = svc["id"].as_i64().unwrap();
        let (status, read) = w.get(2, &format!("/api/v1/services/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(read, svc);

        // PATCH: absent keeps, null clears the policy, a map replaces the targets.
        let (status, patched) = w
            .call(
                1,
                Method::PATCH,
                &format!("/api/v1/services/{id}"),
                Some(json!({"description": "gateway"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{patched}");
        assert_eq!(patched["escalation_policy_id"], 1);
        assert_eq!(patched["response_targets"], svc["response_targets"]);
        let (_, patched) = w
            .call(
                1,
                Method::PATCH,
                &format!("/api/v1/services/{id}"),
                Some(json!({"escalation_policy_id": null,
                            "response_targets": {"SEV2": {"acknowledge_minutes": 15}}})),
            )
            .await;
        assert_eq!(patched["escalation_policy_id"], Value::Null);
        assert_eq!(
            patched["response_targets"],
            json!({"SEV2": {"acknowledge_minutes": 15, "resolve_minutes": null}})
        );

        let before = w.app.store.services().await.unwrap();
        let bad = |field: &str, value: Value| {
            let mut body = contract_service();
            body["name"] = json!("another");
            body[field] = value;
            body
        };
        let cases = [
            (
                bad("escalation_policy_id", json!(99)),
                "escalation_policy_id",
            ),
            (
                bad(
                    "response_targets",
                    json!({"SEV7": {"acknowledge_minutes": 5}}),
                ),
                "response_targets.SEV7",
            ),
            (
                bad(
                    "response_targets",
                    json!({"SEV1": {"acknowledge_minutes": 0}}),
                ),
                "response_targets.SEV1.acknowledge_minutes",
            ),
            (
                bad("response_targets", json!({"SEV2": {"resolve_minutes": -5}})),
                "response_targets.SEV2.resolve_minutes",
            ),
            (
                bad("response_targets", json!({"SEV1": {"ack": 5}})),
                "response_targets.SEV1.ack",
            ),
        ];
        for (body, field) in cases {
            let (status, answer) = w.post(1, "/api/v1/services", body).await;
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{field}: {answer}"
            );
            assert!(
                answer["error"]["fields"][field].is_string(),
                "{backend:?} {field}: {answer}"
            );
        }
        assert_eq!(
            w.app.store.services().await.unwrap(),
            before,
            "nothing saved"
        );

        // Deleting the policy leaves the service without one.
        let (_, svc2) = w
            .post(1, "/api/v1/services", bad("name", json!("svc2")))
            .await;
        assert_eq!(svc2["escalation_policy_id"], 1, "{svc2}");
        w.call(1, Method::DELETE, "/api/v1/escalation-policies/1", None)
            .await;
        let (_, svc2) = w.get(1, &format!("/api/v1/services/{}", svc2["id"])).await;
        assert_eq!(svc2["escalation_policy_id"], Value::Null);
    }
}

#[tokio::test]
async fn a_manager_builds_a_two_level_policy_in_the_browser_and_oncall_shows_it() {
    for backend in backends() {
        let w = World::new(backend).await;
        let mia = w.browser("mia@example.com").await;
        let page = mia
            .get(w.app.url("/escalation-policies/new"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let html = page.text().await.unwrap();
        assert!(html.contains("AI platform primary") && html.contains("hed@example.com"));

        // Refused: level 1 waits 0 minutes, level 2 pages nobody; the input is kept.
        let refused = w
            .post_form(
                &mia,
                "/escalation-policies/new",
                "/escalation-policies",
                &[
                    ("name", "LLM gateway"),
                    ("team_id", "1"),
                    ("repeat", "1"),
                    ("level-0-delay", "0"),
                    ("level-0-min_severity", ""),
                    ("level-0-target", "schedule:1"),
                    ("level-1-delay", "10"),
                    ("level-1-min_severity", "SEV2"),
                    ("level-2-delay", ""),
                    ("level-2-min_severity", ""),
                ],
            )
            .await;
        assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = refused.text().await.unwrap();
        assert!(html.contains("Wait 1 to 1440 minutes"), "{html}");
        assert!(
            html.contains("Pick at least one person or schedule"),
            "{html}"
        );
        assert!(html.contains("value=\"LLM gateway\""), "input kept");
        assert!(html.contains("value=\"schedule:1\" checked"), "ticks kept");
        assert_eq!(w.policy_count().await, 0);

        let created = w
            .post_form(
                &mia,
                "/escalation-policies/new",
                "/escalation-policies",
                &[
                    ("name", "LLM gateway"),
                    ("team_id", "1"),
                    ("repeat", "1"),
                    ("low_severity_any_time", "on"),
                    ("level-0-delay", "5"),
                    ("level-0-min_severity", ""),
                    ("level-0-target", "schedule:1"),
                    ("level-1-delay", "10"),
                    ("level-1-min_severity", "SEV2"),
                    ("level-1-target", "user:7"),
                    ("level-1-target", "user:4"),
                    ("level-2-delay", ""),
                    ("level-2-min_severity", ""),
                ],
            )
            .await;
        assert_eq!(created.status(), StatusCode::SEE_OTHER, "{backend:?}");
        let location = created.headers()["location"].to_str().unwrap().to_owned();
        assert_eq!(location, "/escalation-policies/1");
        let policy = w.app.store.policy(1).await.unwrap();
        assert_eq!(policy.levels.len(), 2);
        assert_eq!(policy.repeat, 1);
        assert!(policy.low_severity_any_time);
        let (_, api) = w.get(2, "/api/v1/escalation-policies/1").await;
        assert_eq!(
            api["levels"],
            json!([
                {"delay_minutes": 5, "min_severity": null, "targets": [{"type": "schedule", "id": 1}]},
                {"delay_minutes": 10, "min_severity": "SEV2",
                 "targets": [{"type": "user", "id": 7}, {"type": "user", "id": 4}]}
            ])
        );

        // Edit: remove level 2 with its checkbox; a stale version is refused.
        let edit = [
            ("name", "LLM gateway"),
            ("team_id", "1"),
            ("repeat", "0"),
            ("version", "1"),
            ("level-0-delay", "5"),
            ("level-0-target", "schedule:1"),
            ("level-1-delay", "10"),
            ("level-1-target", "user:7"),
            ("level-1-remove", "on"),
        ];
        let saved = w
            .post_form(
                &mia,
                "/escalation-policies/1",
                "/escalation-policies/1",
                &edit,
            )
            .await;
        assert_eq!(saved.status(), StatusCode::SEE_OTHER);
        assert_eq!(w.app.store.policy(1).await.unwrap().levels.len(), 1);
        let stale = w
            .post_form(
                &mia,
                "/escalation-policies/1",
                "/escalation-policies/1",
                &edit,
            )
            .await;
        assert_eq!(stale.status(), StatusCode::CONFLICT);
        assert!(
            stale
                .text()
                .await
                .unwrap()
                .contains("changed by someone else")
        );

        // The service form: policy and response targets, shown on the service page.
        let svc = w
            .post_form(
                &mia,
                "/services",
                "/services",
                &[
                    ("name", "llm-gateway"),
                    ("kind", "llm-inference"),
                    ("workload_class", "real-time"),
                    ("team_id", "1"),
                    ("escalation_policy_id", "1"),
                    ("ack_sev1", "5"),
                    ("resolve_sev1", "90"),
                    ("ack_sev3", "7"),
                ],
            )
            .await;
        assert_eq!(svc.status(), StatusCode::SEE_OTHER);
        let service = &w.app.store.services().await.unwrap()[0];
        assert_eq!(service.escalation_policy_id, Some(1));
        let sev1 = service.response_targets.0[&heliograph_domain::Severity::Sev1];
        assert_eq!(
            (sev1.acknowledge_minutes, sev1.resolve_minutes),
            (Some(5), Some(90))
        );
        let html = mia
            .get(w.app.url(&format!("/services/{}", service.id)))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            html.contains("1 h 30 min") && html.contains("LLM gateway"),
            "{html}"
        );
        let bad = w
            .post_form(
                &mia,
                "/services",
                "/services",
                &[
                    ("name", "vector-db"),
                    ("kind", "vector-db"),
                    ("workload_class", "real-time"),
                    ("escalation_policy_id", "99"),
                    ("ack_sev2", "0"),
                ],
            )
            .await;
        assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = bad.text().await.unwrap();
        assert!(html.contains("There is no escalation policy 99"), "{html}");
        assert!(html.contains("Give whole minutes"), "{html}");
        assert_eq!(w.app.store.services().await.unwrap().len(), 1);

        // Viewers read the pages but cannot change anything.
        let vic = w.browser("vic@example.com").await;
        for path in ["/escalation-policies", "/escalation-policies/1", "/oncall"] {
            let res = vic.get(w.app.url(path)).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::OK, "{path}");
        }
        let list = vic
            .get(w.app.url("/escalation-policies"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            list.contains("LLM gateway") && list.contains("llm-gateway"),
            "{list}"
        );
        let denied = w
            .post_form(
                &vic,
                "/escalation-policies",
                "/escalation-policies/1",
                &edit,
            )
            .await;
        assert_eq!(denied.status(), StatusCode::FORBIDDEN);
        let denied = w
            .post_form(
                &vic,
                "/escalation-policies",
                "/escalation-policies/1/delete",
                &[],
            )
            .await;
        assert_eq!(denied.status(), StatusCode::FORBIDDEN);

        // /oncall: level 1 pages schedule 1, where ana is on call.
        let oncall = vic
            .get(w.app.url("/oncall?team_id=1"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let section = &oncall[oncall.find("Escalation policies").expect("section")..];
        assert!(section.contains("LLM gateway"), "{section}");
        assert!(section.contains("ana@example.com"), "{section}");

        // Delete with the manager.
        let deleted = w
            .post_form(
                &mia,
                "/escalation-policies/1",
                "/escalation-policies/1/delete",
                &[],
            )
            .await;
        assert_eq!(deleted.status(), StatusCode::SEE_OTHER);
        assert_eq!(w.policy_count().await, 0);
        assert_eq!(
            w.app.store.services().await.unwrap()[0].escalation_policy_id,
            None
        );
    }
}
