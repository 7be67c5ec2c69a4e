//! End-to-end: `/api/v1/postmortems` on SQLite and PostgreSQL — the draft a resolved SEV1
//! leaves, listed and read with its sections, timeline, key figures and action items; PATCH
//! guarded by a version (a stale one is 409 with the current version and saves nothing),
//! field-path validation errors, filters and pages; viewers read published ones only and
//! cannot edit; a published postmortem is read-only.

mod common;

use common::{TestApp, backends};
use heliograph_domain::{Role, ServiceKind, WorkloadClass};
use heliograph_store::Audit;
use heliograph_store::postmortems::{ActionItemFields, Decision, ItemStatus, Priority};
use heliograph_store::services::{ResponseTargets, ServiceFields};
use reqwest::StatusCode;
use serde_json::{Value, json};

struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    fn new(app: &TestApp) -> Api {
        Api {
            client: reqwest::Client::new(),
            base: app.url("/api/v1"),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
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

    async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, token, path, None).await
    }

    async fn post(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, token, path, Some(body))
            .await
    }

    async fn patch(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::PATCH, token, path, Some(body))
            .await
    }
}

fn ids(list: &Value) -> Vec<i64> {
    list["postmortems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn postmortems_are_listed_read_and_edited_through_the_api_with_versions() {
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        let ida = app
            .user("ida@example.com", Role::Responder, "ida's long password")
            .await;
        let rev = app
            .user("rev@example.com", Role::Responder, "rev's long password")
            .await;
        app.user("val@example.com", Role::Viewer, "val's long password")
            .await;
        let (ida_t, rev_t, val_t) = (
            app.token_for("ida@example.com").await,
            app.token_for("rev@example.com").await,
            app.token_for("val@example.com").await,
        );
        let service = app
            .store
            .create_service(
                &ServiceFields {
                    name: "embeddings-api".into(),
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
            .id;
        let api = Api::new(&app);

        // A SEV1 declared and resolved through the API leaves a draft owned by its commander.
        let (status, _) = api
            .post(
                &ida_t,
                "/incidents",
                json!({"title": "Embeddings API 5xx", "severity": "SEV1", "service_id": service}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{backend:?}");
        let (status, _) = api
            .post(
                &ida_t,
                "/incidents/1/notes",
                json!({"body": "Rolled back index v42"}),
            )
            .await;
        assert!(status.is_success());
        let (status, _) = api.post(&ida_t, "/incidents/1/resolve", json!({})).await;
        assert!(status.is_success(), "{backend:?}");

        let (status, list) = api.get(&ida_t, "/postmortems").await;
        assert_eq!(status, StatusCode::OK, "{backend:?}: {list}");
        assert_eq!(list["postmortems"].as_array().unwrap().len(), 1);
        let item = &list["postmortems"][0];
        assert_eq!(item["incident_number"], 1);
        assert_eq!(item["status"], "draft");
        assert_eq!(item["title"], "Embeddings API 5xx");
        assert_eq!(item["severity"], "SEV1");
        assert_eq!(item["owner"]["id"], ida.id);
        assert!(list["next_cursor"].is_null());
        let id = item["id"].as_i64().unwrap();
        let path = format!("/postmortems/{id}");

        // Viewers see neither the draft in the list nor the draft itself, and cannot edit.
        let (status, list) = api.get(&val_t, "/postmortems").await;
        assert_eq!(status, StatusCode::OK);
        assert!(ids(&list).is_empty(), "{backend:?}: {list}");
        let (_, list) = api.get(&val_t, "/postmortems?status=draft").await;
        assert!(ids(&list).is_empty());
        let (status, body) = api.get(&val_t, &path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["error"]["code"], "forbidden");
        let (status, _) = api
            .patch(&val_t, &path, json!({"version": 1, "title": "viewer"}))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);

        // The whole postmortem: sections, timeline, key figures.
        let (status, pm) = api.get(&ida_t, &path).await;
        assert_eq!(status, StatusCode::OK, "{pm}");
        assert_eq!(pm["incident"]["number"], 1);
        assert_eq!(pm["incident"]["status"], "resolved");
        assert_eq!(pm["services"][0]["name"], "embeddings-api");
        assert_eq!(pm["services"][0]["kind"], "llm-inference");
        assert_eq!(pm["key_figures"]["severity"], "SEV1");
        assert!(pm["key_figures"]["time_to_resolve_seconds"].is_i64());
        let sections = pm["sections"].as_object().unwrap();
        assert_eq!(sections.len(), 12, "{pm}");
        assert!(
            sections["summary"]
                .as_str()
                .unwrap()
                .starts_with("SEV1 incident #1 (embeddings-api)")
        );
        assert_eq!(sections["ai_eval_after"], "");
        let timeline = pm["timeline"].as_array().unwrap();
        assert!(
            timeline[0]["text"]
                .as_str()
                .unwrap()
                .starts_with("Declared SEV1")
        );
        assert!(timeline.iter().any(|e| {
            e["text"]
                .as_str()
                .unwrap()
                .contains("Rolled back index v42")
        }));
        assert_eq!(pm["history"][0]["action"], "created");
        let version = pm["version"].as_i64().unwrap();
        let summary = sections["summary"].as_str().unwrap().to_owned();

        // A partial edit: the title and one section; the rest stays.
        let (status, saved) = api
            .patch(
                &ida_t,
                &path,
                json!({"version": version, "title": "Embeddings API returned 5xx for 40 minutes",
                       "sections": {"root_cause": "Index **v43** shipped without its shards."}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{backend:?}: {saved}");
        assert_eq!(saved["version"], version + 1);
        assert_eq!(saved["title"], "Embeddings API returned 5xx for 40 minutes");
        assert_eq!(
            saved["sections"]["root_cause"],
            "Index **v43** shipped without its shards."
        );
        assert_eq!(saved["sections"]["summary"], summary.as_str());
        assert_eq!(saved["timeline"], pm["timeline"]);

        // A second editor who started from the old version loses: 409 with the current
        // version, and nothing of theirs is saved.
        let (status, body) = api
            .patch(
                &rev_t,
                &path,
                json!({"version": version, "sections": {"root_cause": "Cosmic rays."}}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{backend:?}: {body}");
        assert_eq!(body["error"]["code"], "version_conflict");
        assert_eq!(body["error"]["current_version"], version + 1);
        let stored = app.store.postmortem(id).await.unwrap();
        assert_eq!(stored.version, version + 1);
        assert_eq!(
            stored.sections.root_cause,
            "Index **v43** shipped without its shards."
        );

        // Bad input: 422 with every field path at fault, nothing saved.
        let (status, body) = api
            .patch(
                &rev_t,
                &path,
                json!({"version": version + 1, "title": "  ",
                       "sections": {"nope": "x", "lessons": "ok"},
                       "timeline": [{"at": "2026-03-10T09:00:00Z", "text": "fine"},
                                    {"at": "yesterday", "text": ""}]}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"]["code"], "validation_failed");
        let fields = body["error"]["fields"].as_object().unwrap();
        let mut keys: Vec<&str> = fields.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "sections.nope",
                "timeline[1].at",
                "timeline[1].text",
                "title"
            ],
            "{body}"
        );
        let (status, body) = api
            .patch(
                &rev_t,
                &path,
                json!({"sections": {"summary": "no version"}}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["error"]["fields"]["version"], "version is required");
        let (status, body) = api
            .patch(
                &rev_t,
                &path,
                json!({"version": version + 1, "sections": {"summary": 5}}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            body["error"]["fields"]["sections.summary"].is_string(),
            "{body}"
        );
        let (status, body) = api
            .patch(
                &rev_t,
                &path,
                json!({"version": version + 1, "colour": "blue"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(app.store.postmortem(id).await.unwrap().version, version + 1);

        // The timeline is replaced whole: an entry dropped, one added, sorted by time.
        let mut entries: Vec<Value> = saved["timeline"].as_array().unwrap().clone();
        entries[0]["kept"] = json!(false);
        entries.push(json!({"at": "2000-01-01T00:00:00Z", "text": "Index v43 built"}));
        let (status, saved) = api
            .patch(
                &rev_t,
                &path,
                json!({"version": version + 1, "timeline": entries}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{saved}");
        let timeline = saved["timeline"].as_array().unwrap();
        assert_eq!(timeline.len(), entries.len());
        assert_eq!(timeline[0]["text"], "Index v43 built");
        assert_eq!(timeline[0]["kept"], true);
        assert_eq!(timeline[1]["kept"], false);
        assert_eq!(saved["version"], version + 2);

        // Action items come with the postmortem.
        app.store
            .add_action_item(
                id,
                &ActionItemFields {
                    title: "Gate index rollouts on shard count".into(),
                    owner_id: Some(ida.id),
                    due_date: Some("2000-01-31".parse().unwrap()),
                    priority: Priority::High,
                    status: ItemStatus::Open,
                    tracker_url: Some("https://tracker.example.com/AI-7".into()),
                },
                &Audit::cli(),
            )
            .await
            .unwrap();
        let (_, pm) = api.get(&rev_t, &path).await;
        let item = &pm["action_items"][0];
        assert_eq!(item["title"], "Gate index rollouts on shard count");
        assert_eq!(item["owner"]["name"], "ida");
        assert_eq!(item["due_date"], "2000-01-31");
        assert_eq!(item["priority"], "high");
        assert_eq!(item["status"], "open");
        assert_eq!(item["overdue"], true);
        assert_eq!(item["tracker_url"], "https://tracker.example.com/AI-7");

        // Review and publish; then viewers read it and nobody edits it.
        let v = pm["version"].as_i64().unwrap();
        app.store
            .submit_postmortem(id, &[rev.id], Some(v), &Audit::cli())
            .await
            .unwrap();
        let as_rev = Audit {
            actor_user_id: Some(rev.id),
            actor: "rev@example.com".into(),
            client_addr: None,
        };
        app.store
            .review_postmortem(id, Decision::Approved, "", &as_rev)
            .await
            .unwrap();
        app.store
            .publish_postmortem(id, None, &Audit::cli())
            .await
            .unwrap();
        let (_, list) = api.get(&val_t, "/postmortems").await;
        assert_eq!(ids(&list), [id], "{backend:?}");
        assert_eq!(list["postmortems"][0]["status"], "published");
        let (status, pm) = api.get(&val_t, &path).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(pm["reviewers"][0]["decision"], "approved");
        assert!(pm["published_at"].is_string());
        let (status, body) = api
            .patch(
                &ida_t,
                &path,
                json!({"version": pm["version"], "title": "too late"}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["error"]["code"], "conflict");

        // Filters and pages. A second, newer postmortem (a draft of a SEV3).
        let (status, _) = api
            .post(
                &ida_t,
                "/incidents",
                json!({"title": "Slow reranker", "severity": "SEV3"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let (second, _) = app.store.start_postmortem(2, &Audit::cli()).await.unwrap();
        for (query, want) in [
            ("", vec![second, id]),
            ("?status=draft", vec![second]),
            ("?status=published", vec![id]),
            ("?severity=SEV1", vec![id]),
            ("?severity=SEV2", vec![]),
            (&format!("?service_id={service}") as &str, vec![id]),
            ("?service_id=999", vec![]),
            ("?q=shards%20V43", vec![id]),
            ("?q=reranker", vec![second]),
            ("?q=zebra", vec![]),
        ] {
            let (status, list) = api.get(&rev_t, &format!("/postmortems{query}")).await;
            assert_eq!(status, StatusCode::OK, "{query}: {list}");
            assert_eq!(ids(&list), want, "{backend:?}: {query}");
        }
        let (_, list) = api.get(&val_t, "/postmortems?q=reranker").await;
        assert!(ids(&list).is_empty(), "viewers never see drafts");
        let (_, page) = api.get(&rev_t, "/postmortems?limit=1").await;
        assert_eq!(ids(&page), [second]);
        let cursor = page["next_cursor"].as_i64().expect("a next page");
        let (_, page) = api
            .get(&rev_t, &format!("/postmortems?limit=1&cursor={cursor}"))
            .await;
        assert_eq!(ids(&page), [id]);
        assert!(page["next_cursor"].is_null());
        for bad in ["?status=finished", "?severity=SEV9", "?limit=0"] {
            let (status, body) = api.get(&rev_t, &format!("/postmortems{bad}")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
            assert_eq!(body["error"]["code"], "invalid_query");
        }
        let (status, _) = api.get(&rev_t, "/postmortems/999").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = api
            .patch(&rev_t, "/postmortems/999", json!({"version": 1}))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // The OpenAPI document describes the calls.
        let (_, doc) = api.get(&rev_t, "/openapi.json").await;
        assert!(doc["paths"]["/api/v1/postmortems"]["get"].is_object());
        assert!(doc["paths"]["/api/v1/postmortems/{id}"]["patch"].is_object());
        assert!(doc["components"]["schemas"]["PostmortemPatch"].is_object());
        app.stop().await;
    }
}
