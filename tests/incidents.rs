//! End-to-end: incidents through the browser forms and the API, on SQLite and PostgreSQL.

mod common;

use std::time::Duration;

use common::{TestApp, backends, csrf_in};
use futures::StreamExt;
use heliograph_domain::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn post_form(
    app: &TestApp,
    client: &reqwest::Client,
    path: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let csrf = app.csrf(client, "/incidents").await;
    let mut all = vec![("csrf", csrf.as_str())];
    all.extend_from_slice(fields);
    client.post(app.url(path)).form(&all).send().await.unwrap()
}

#[tokio::test]
async fn declare_and_work_an_incident_in_the_browser() {
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        app.user("ida@example.com", Role::Manager, "ida's long password")
            .await;
        let browser = app.browser();
        app.sign_in(&browser, "ida@example.com", "ida's long password")
            .await;
        let svc = post_form(
            &app,
            &browser,
            "/services",
            &[
                ("name", "llm-gateway"),
                ("kind", "llm-inference"),
                ("workload_class", "real-time"),
                ("description", "inference"),
            ],
        )
        .await;
        assert_eq!(svc.status(), StatusCode::SEE_OTHER, "{backend:?}");
        let service_id = app.store.services().await.unwrap()[0].id.to_string();

        // Bad input: nothing is declared, and the form keeps what was typed.
        let big = "x".repeat(1_000_000);
        for (fields, message) in [
            (
                vec![("title", "  "), ("severity", "SEV1")],
                "Title is required",
            ),
            (
                vec![("title", "Gateway down"), ("severity", "SEV9")],
                "Choose a severity",
            ),
            (
                vec![
                    ("title", "Gateway down"),
                    ("severity", "SEV1"),
                    ("services", "4242"),
                ],
                "is not a service",
            ),
            (
                vec![
                    ("title", "Gateway down"),
                    ("severity", "SEV1"),
                    ("description", big.as_str()),
                ],
                "at most 100000 characters",
            ),
        ] {
            let r = post_form(&app, &browser, "/incidents", &fields).await;
            assert_eq!(
                r.status(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "{backend:?} {message}"
            );
            let html = r.text().await.unwrap();
            assert!(html.contains(message), "{message}");
            if fields[0].1 == "Gateway down" {
                assert!(html.contains("value=\"Gateway down\""), "title kept");
            }
        }
        assert!(
            app.store
                .incidents(&Default::default(), 10, 0)
                .await
                .unwrap()
                .is_empty(),
            "nothing declared"
        );

        let declared = post_form(
            &app,
            &browser,
            "/incidents",
            &[("title", "llm-gateway 5xx > 20%"), ("severity", "SEV1"), ("services", &service_id), ("description", "Errors **spiked**.\n\n<script>alert(1)</script><img src=x onerror=alert(2)>\n\n[x](javascript:alert(3))")],
        )
        .await;
        assert_eq!(declared.status(), StatusCode::SEE_OTHER);
        assert_eq!(declared.headers()["location"], "/incidents/1");
        let page = browser
            .get(app.url("/incidents/1"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let rendered = page
            .split("<section class=\"card prose\">")
            .nth(1)
            .unwrap()
            .split("</section>")
            .next()
            .unwrap();
        assert!(rendered.contains("<strong>spiked</strong>"), "{rendered}");
        assert!(
            !page.contains("<script>alert"),
            "script inert everywhere on the page"
        );
        assert!(
            !rendered.contains("onerror")
                && !rendered.contains("href=\"javascript")
                && rendered.contains(">x</a>"),
            "handlers and javascript: links removed: {rendered}"
        );
        assert!(
            page.contains("script&gt;alert(1)") || page.contains("script&#62;alert(1)"),
            "the editable source is escaped"
        );

        for (path, fields) in [
            ("/incidents/1/acknowledge", vec![]),
            (
                "/incidents/1/updates",
                vec![
                    ("phase", "identified"),
                    ("message", "Bad tokenizer config; rolling back"),
                ],
            ),
            (
                "/incidents/1/severity",
                vec![("severity", "SEV2"), ("reason", "only EU affected")],
            ),
            ("/incidents/1/notes", vec![("body", "Rollback at 50%")]),
            ("/incidents/1/resolve", vec![]),
            ("/incidents/1/reopen", vec![]),
        ] {
            let r = post_form(&app, &browser, path, &fields).await;
            assert_eq!(r.status(), StatusCode::SEE_OTHER, "{backend:?} {path}");
        }
        let again = post_form(
            &app,
            &browser,
            "/incidents/1/severity",
            &[("severity", "SEV3"), ("reason", "")],
        )
        .await;
        assert_eq!(again.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(again.text().await.unwrap().contains("A reason is required"));

        let page = browser
            .get(app.url("/incidents/1"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for label in [
            "Declared",
            "Acknowledged",
            "Update",
            "Severity",
            "Note",
            "Resolved",
            "Reopened",
        ] {
            assert!(
                page.contains(&format!("<span class=\"label\">{label}</span>")),
                "{backend:?}: {label} missing from the timeline"
            );
        }
        assert!(page.contains("SEV1 → SEV2: only EU affected"));
        let updates = browser
            .get(app.url("/incidents/1?view=updates"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            updates.contains("Bad tokenizer config") && !updates.contains("Rollback at 50%"),
            "filtered to updates"
        );

        let incident = app.store.incident(1).await.unwrap();
        assert_eq!(incident.status.as_str(), "triggered");
        assert!(
            incident.acknowledged_at.is_some() && incident.resolved_at.is_some(),
            "timestamps kept on reopen"
        );

        let list = browser
            .get(app.url("/incidents?q=gateway"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            list.contains("llm-gateway 5xx &#62; 20%") && list.contains("1 triggered"),
            "{list}"
        );
        let bad = browser
            .get(app.url("/incidents?severity=SEV7&from=nope"))
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        assert!(
            bad.text()
                .await
                .unwrap()
                .contains("Use a date like 2026-11-28")
        );

        let actions = app.audit_actions().await;
        for a in [
            "incident.declare",
            "incident.acknowledge",
            "incident.update",
            "incident.severity",
            "incident.note",
            "incident.resolve",
            "incident.reopen",
            "service.create",
        ] {
            assert!(actions.iter().any(|x| x == a), "{a} not audited");
        }
        app.stop().await;
    }
}

#[tokio::test]
async fn viewers_read_but_cannot_act_and_stale_edits_keep_the_text() {
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        app.user("rae@example.com", Role::Responder, "rae's long password")
            .await;
        app.user("vic@example.com", Role::Viewer, "vic's long password")
            .await;
        let rae = app.browser();
        app.sign_in(&rae, "rae@example.com", "rae's long password")
            .await;
        post_form(
            &app,
            &rae,
            "/incidents",
            &[("title", "feature-store stale"), ("severity", "SEV3")],
        )
        .await;

        let vic = app.browser();
        app.sign_in(&vic, "vic@example.com", "vic's long password")
            .await;
        assert_eq!(
            vic.get(app.url("/incidents/1"))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
        assert_eq!(
            vic.get(app.url("/incidents/new"))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::FORBIDDEN
        );
        let ack = post_form(&app, &vic, "/incidents/1/acknowledge", &[]).await;
        assert_eq!(ack.status(), StatusCode::FORBIDDEN, "{backend:?}");
        assert_eq!(
            app.store.incident(1).await.unwrap().status.as_str(),
            "triggered"
        );
        let page = vic
            .get(app.url("/incidents/1"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            !page.contains("id=\"acknowledge\""),
            "no action buttons for viewers"
        );

        // Two editors open the page; the second save is refused and keeps its text.
        let page = rae
            .get(app.url("/incidents/1"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let version = page
            .split("name=\"version\" value=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_owned();
        let first = post_form(
            &app,
            &rae,
            "/incidents/1/edit",
            &[
                ("title", "feature-store stale features"),
                ("description", "first"),
                ("version", &version),
            ],
        )
        .await;
        assert_eq!(first.status(), StatusCode::SEE_OTHER);
        let second = post_form(
            &app,
            &rae,
            "/incidents/1/edit",
            &[
                ("title", "my title"),
                ("description", "my carefully written text"),
                ("version", &version),
            ],
        )
        .await;
        assert_eq!(second.status(), StatusCode::CONFLICT, "{backend:?}");
        let html = second.text().await.unwrap();
        assert!(html.contains("Someone else changed this incident"));
        assert!(
            html.contains("my carefully written text"),
            "the loser keeps their text"
        );
        assert_eq!(
            app.store.incident(1).await.unwrap().title,
            "feature-store stale features"
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn simultaneous_acknowledgements_over_http_yield_one() {
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        app.user("a@example.com", Role::Responder, "a's long password!")
            .await;
        let token = app.token_for("a@example.com").await;
        let api = reqwest::Client::new();
        let created = api
            .post(app.url("/api/v1/incidents"))
            .bearer_auth(&token)
            .json(&json!({"title": "embedding 500s", "severity": "SEV2"}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), StatusCode::CREATED);
        let requests = (0..6).map(|_| {
            api.post(app.url("/api/v1/incidents/1/acknowledge"))
                .bearer_auth(&token)
                .send()
        });
        let statuses: Vec<StatusCode> = futures::future::join_all(requests)
            .await
            .into_iter()
            .map(|r| r.unwrap().status())
            .collect();
        assert_eq!(
            statuses.iter().filter(|s| **s == StatusCode::OK).count(),
            1,
            "{backend:?}: {statuses:?}"
        );
        assert!(
            statuses
                .iter()
                .all(|s| *s == StatusCode::OK || *s == StatusCode::CONFLICT)
        );
        let incident = app.store.incident(1).await.unwrap();
        let acks = app
            .store
            .timeline(incident.id, false)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == "acknowledged")
            .count();
        assert_eq!(acks, 1);
        app.stop().await;
    }
}

#[tokio::test]
async fn the_incident_api() {
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        app.user("m@example.com", Role::Manager, "m's long password!")
            .await;
        let v = app
            .user("v@example.com", Role::Viewer, "v's long password!")
            .await;
        let token = app.token_for("m@example.com").await;
        let viewer = app.token_for("v@example.com").await;
        let api = reqwest::Client::new();
        let svc: Value = api
            .post(app.url("/api/v1/services"))
            .bearer_auth(&token)
            .json(&json!({"name": "vector-db", "description": "ANN index", "kind": "vector-db", "workload_class": "real-time"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let sid = svc["id"].as_i64().unwrap();
        let bad = api
            .post(app.url("/api/v1/services"))
            .bearer_auth(&token)
            .json(&json!({"name": "x", "kind": "gpu-farm", "workload_class": "real-time"}))
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            bad.json::<Value>().await.unwrap()["error"]["fields"]["kind"]
                .as_str()
                .unwrap()
                .contains("must be one of")
        );

        let bad = api
            .post(app.url("/api/v1/incidents"))
            .bearer_auth(&token)
            .json(&json!({"title": "", "severity": "SEV0", "service_id": 999}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            bad.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{backend:?}"
        );
        let body: Value = bad.json().await.unwrap();
        for f in ["title", "severity", "service_id"] {
            assert!(body["error"]["fields"].get(f).is_some(), "{f}: {body}");
        }
        // A valid request naming one service that does not exist: the declaration refuses it
        // (the handler leaves that check to it), as the same field error, and declares nothing.
        let missing = api
            .post(app.url("/api/v1/incidents"))
            .bearer_auth(&token)
            .json(&json!({"title": "Feature store lag", "severity": "SEV2", "service_id": 999}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            missing.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{backend:?}"
        );
        let body: Value = missing.json().await.unwrap();
        assert_eq!(
            body["error"]["fields"]["service_id"], "service 999 does not exist",
            "{body}"
        );
        let denied = api
            .post(app.url("/api/v1/incidents"))
            .bearer_auth(&viewer)
            .json(&json!({"title": "x", "severity": "SEV1"}))
            .send()
            .await
            .unwrap();
        assert_eq!(denied.status(), StatusCode::FORBIDDEN);

        let created: Value = api
            .post(app.url("/api/v1/incidents"))
            .bearer_auth(&token)
            .json(&json!({"title": "vector-db p99 > 2s", "severity": "SEV2", "service_id": sid, "description": "recall dropped"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(created["number"], 1);
        assert_eq!(created["status"], "triggered");
        assert_eq!(created["service_id"], sid);
        assert_eq!(created["commander"]["name"], "m");
        assert!(created["acknowledged_at"].is_null());
        let get = |n: i64| {
            api.get(app.url(&format!("/api/v1/incidents/{n}")))
                .bearer_auth(&token)
                .send()
        };
        let read: Value = get(1).await.unwrap().json().await.unwrap();
        assert_eq!(
            created, read,
            "{backend:?}: the 201 body is the incident as stored"
        );
        let acked: Value = api
            .post(app.url("/api/v1/incidents/1/acknowledge"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(acked["status"], "acknowledged");
        let note = api
            .post(app.url("/api/v1/incidents/1/notes"))
            .bearer_auth(&token)
            .json(&json!({"body": "reindexing"}))
            .send()
            .await
            .unwrap();
        assert_eq!(note.status(), StatusCode::CREATED);
        assert_eq!(note.json::<Value>().await.unwrap()["kind"], "note");
        let resolved: Value = api
            .post(app.url("/api/v1/incidents/1/resolve"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(resolved["status"], "resolved");
        assert_eq!(
            api.post(app.url("/api/v1/incidents/1/resolve"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::CONFLICT
        );

        api.post(app.url("/api/v1/incidents"))
            .bearer_auth(&token)
            .json(&json!({"title": "second", "severity": "SEV4"}))
            .send()
            .await
            .unwrap();
        let list: Value = api
            .get(app.url("/api/v1/incidents?limit=1"))
            .bearer_auth(&viewer)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(list["incidents"][0]["number"], 2, "newest first");
        let next: Value = api
            .get(app.url(&format!(
                "/api/v1/incidents?limit=1&cursor={}",
                list["next_cursor"]
            )))
            .bearer_auth(&viewer)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(next["incidents"][0]["number"], 1);
        assert_eq!(next["incidents"][0]["service_id"], sid);
        let filtered: Value = api
            .get(app.url("/api/v1/incidents?status=resolved&severity=SEV2"))
            .bearer_auth(&viewer)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(filtered["incidents"].as_array().unwrap().len(), 1);
        let bad = api
            .get(app.url("/api/v1/incidents?status=burning"))
            .bearer_auth(&viewer)
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            api.get(app.url("/api/v1/incidents/77"))
                .bearer_auth(&viewer)
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::NOT_FOUND
        );
        // Two services (listed by name, as an incident lists them, once each) and another
        // commander: the answer is still the incident as stored.
        let second_service: Value = api
            .post(app.url("/api/v1/services"))
            .bearer_auth(&token)
            .json(&json!({"name": "a-embedder", "kind": "vector-db", "workload_class": "batch"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let sid2 = second_service["id"].as_i64().unwrap();
        let created2: Value = api
            .post(app.url("/api/v1/incidents"))
            .bearer_auth(&token)
            .json(&json!({"title": "embeddings stale", "severity": "SEV3", "service_ids": [sid, sid2, sid], "commander_id": v.id}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(created2["service_ids"], json!([sid2, sid]), "{backend:?}");
        assert_eq!(created2["commander"]["name"], "v", "{backend:?}");
        let read2: Value = get(3).await.unwrap().json().await.unwrap();
        assert_eq!(created2, read2, "{backend:?}");
        app.stop().await;
    }
}

/// Reads server-sent events until one named `changed` carries `data`, or times out.
async fn wait_for_change(response: reqwest::Response, data: &str) -> bool {
    let mut stream = response.bytes_stream();
    let mut seen = String::new();
    let deadline = tokio::time::sleep(Duration::from_secs(10));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            () = &mut deadline => return false,
            chunk = stream.next() => match chunk {
                Some(Ok(bytes)) => {
                    seen.push_str(&String::from_utf8_lossy(&bytes));
                    if seen.contains(&format!("event: changed\ndata: {data}\n")) {
                        return true;
                    }
                }
                _ => return false,
            }
        }
    }
}

#[tokio::test]
async fn changes_reach_open_pages_live_even_through_another_replica() {
    for backend in backends() {
        let a = TestApp::spawn(backend).await;
        a.user("lee@example.com", Role::Responder, "lee's long password")
            .await;
        // On PostgreSQL a second replica serves the watcher; on SQLite the same process does.
        let b = match backend {
            heliograph_store::Backend::Postgres => Some(
                TestApp::spawn_on(
                    backend,
                    a.db.clone(),
                    std::sync::Arc::new(heliograph_domain::SystemClock),
                )
                .await,
            ),
            heliograph_store::Backend::Sqlite => None,
        };
        let watcher_app = b.as_ref().unwrap_or(&a);
        let watcher = watcher_app.browser();
        watcher_app
            .sign_in(&watcher, "lee@example.com", "lee's long password")
            .await;
        let actor = a.browser();
        a.sign_in(&actor, "lee@example.com", "lee's long password")
            .await;

        let list_stream = watcher
            .get(watcher_app.url("/incidents/events"))
            .send()
            .await
            .unwrap();
        assert_eq!(list_stream.headers()["content-type"], "text/event-stream");
        let csrf = csrf_in(
            &actor
                .get(a.url("/incidents/new"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        )
        .unwrap();
        actor
            .post(a.url("/incidents"))
            .form(&[
                ("csrf", csrf.as_str()),
                ("title", "agent-runtime loops"),
                ("severity", "SEV2"),
            ])
            .send()
            .await
            .unwrap();
        assert!(
            wait_for_change(list_stream, "1").await,
            "{backend:?}: the list hears of the new incident"
        );

        let page_stream = watcher
            .get(watcher_app.url("/incidents/1/events"))
            .send()
            .await
            .unwrap();
        actor
            .post(a.url("/incidents/1/acknowledge"))
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert!(
            wait_for_change(page_stream, "1").await,
            "{backend:?}: the incident page hears of the acknowledgement"
        );
        if let Some(b) = b {
            b.stop().await;
        }
        a.stop().await;
    }
}
