//! End-to-end: bad input of every kind answers 4xx with a clear message, never 500, and
//! writes nothing; forms come back with what was typed.

mod common;

use common::{TestApp, backends};
use heliograph_domain::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn admin_token(app: &TestApp) -> String {
    app.user("root@example.com", Role::Admin, "root's long password")
        .await;
    app.token_for("root@example.com").await
}

#[tokio::test]
async fn api_refuses_bad_bodies_with_the_contract_error_shape() {
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        let token = admin_token(&app).await;
        let api = reqwest::Client::new();
        let post = |body: reqwest::Body, content_type: &str| {
            api.post(app.url("/api/v1/users"))
                .bearer_auth(&token)
                .header("content-type", content_type)
                .body(body)
                .send()
        };
        let before = app.store.user_count().await.unwrap();

        let cases: Vec<(reqwest::Body, &str, StatusCode, &str)> = vec![
            (
                "{not json".into(),
                "application/json",
                StatusCode::BAD_REQUEST,
                "invalid_json",
            ),
            (
                r#"{"name": 5, "email": "x@example.com", "role": "viewer"}"#.into(),
                "application/json",
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
            ),
            (
                r#"{"name": "X", "email": "x@example.com", "role": "viewer", "shoe_size": 9}"#
                    .into(),
                "application/json",
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
            ),
            (
                r#"{"name": "X", "email": "x@example.com", "role": "viewer"}"#.into(),
                "text/plain",
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
            ),
            (
                format!(
                    r#"{{"name": "{}", "email": "x@example.com", "role": "viewer"}}"#,
                    "x".repeat(2 * 1024 * 1024)
                )
                .into(),
                "application/json",
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
            ),
        ];
        for (body, content_type, status, code) in cases {
            let response = post(body, content_type).await.unwrap();
            assert_eq!(response.status(), status, "{backend:?} {code}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], code, "{body}");
            assert!(!body["error"]["message"].as_str().unwrap().is_empty());
        }

        let invalid = api
            .post(app.url("/api/v1/users"))
            .bearer_auth(&token)
            .json(&json!({"name": "", "email": "not-an-email", "role": "overlord", "time_zone": "Europe/Atlantis", "password": "short"}))
            .send()
            .await
            .unwrap();
        assert_eq!(invalid.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body: Value = invalid.json().await.unwrap();
        assert_eq!(body["error"]["code"], "validation_failed");
        let fields = body["error"]["fields"].as_object().unwrap();
        for field in ["name", "email", "role", "time_zone", "password"] {
            assert!(fields.contains_key(field), "{field} not named in {body}");
        }
        assert!(
            fields["time_zone"]
                .as_str()
                .unwrap()
                .contains("not an IANA time zone")
        );

        let dup = api
            .post(app.url("/api/v1/users"))
            .bearer_auth(&token)
            .json(&json!({"name": "Root", "email": "ROOT@example.com", "role": "viewer"}))
            .send()
            .await
            .unwrap();
        assert_eq!(dup.status(), StatusCode::CONFLICT);
        assert_eq!(
            dup.json::<Value>().await.unwrap()["error"]["code"],
            "conflict"
        );
        assert_eq!(
            app.store.user_count().await.unwrap(),
            before,
            "{backend:?}: nothing written"
        );

        for path in [
            "/api/v1/users/abc",
            "/api/v1/users/999999",
            "/api/v1/teams/-1",
            "/api/v1/nothing",
        ] {
            let r = api
                .get(app.url(path))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
            assert_eq!(
                r.json::<Value>().await.unwrap()["error"]["code"],
                "not_found"
            );
        }
        let bad_query = api
            .get(app.url("/api/v1/users?limit=lots"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(bad_query.status(), StatusCode::BAD_REQUEST);
        let bad_limit = api
            .get(app.url("/api/v1/users?limit=100000"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(bad_limit.status(), StatusCode::BAD_REQUEST);

        let team = api
            .post(app.url("/api/v1/teams"))
            .bearer_auth(&token)
            .json(&json!({"name": "Ghosts", "members": [424242]}))
            .send()
            .await
            .unwrap();
        assert_eq!(team.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            team.json::<Value>().await.unwrap()["error"]["fields"]["members"]
                .as_str()
                .unwrap()
                .contains("424242")
        );
        assert!(app.store.teams(10, None).await.unwrap().items.is_empty());
        app.stop().await;
    }
}

#[tokio::test]
async fn forms_with_errors_come_back_with_what_was_typed() {
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        app.user("root@example.com", Role::Admin, "root's long password")
            .await;
        let browser = app.browser();
        app.sign_in(&browser, "root@example.com", "root's long password")
            .await;
        let before = app.store.user_count().await.unwrap();

        let csrf = app.csrf(&browser, "/admin/users").await;
        let bad = browser
            .post(app.url("/admin/users"))
            .form(&[
                ("csrf", csrf.as_str()),
                ("name", "Fay <b>Responder</b>"),
                ("email", "fay@"),
                ("role", "responder"),
                ("time_zone", "Nowhere/Special"),
                ("password", "long enough password"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(
            bad.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{backend:?}"
        );
        let html = bad.text().await.unwrap();
        assert!(html.contains("Email must look like name@example.com"));
        assert!(html.contains("not an IANA time zone"));
        assert!(html.contains("value=\"fay@\""), "typed email kept");
        assert!(
            html.contains("Fay &lt;b&gt;Responder&lt;/b&gt;") || html.contains("Fay &#60;b&#62;"),
            "typed name kept and escaped"
        );
        assert!(!html.contains("<b>Responder</b>"), "user text is escaped");

        let dup = browser
            .post(app.url("/admin/users"))
            .form(&[
                ("csrf", csrf.as_str()),
                ("name", "Root Two"),
                ("email", "Root@Example.com"),
                ("role", "viewer"),
                ("time_zone", "UTC"),
                ("password", "long enough password"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(dup.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(dup.text().await.unwrap().contains("already taken"));
        assert_eq!(
            app.store.user_count().await.unwrap(),
            before,
            "nothing written"
        );

        // Garbage the form cannot even parse, and a huge body.
        let garbage = browser
            .post(app.url("/admin/users"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("csrf={csrf}&name=%ZZ%"))
            .send()
            .await
            .unwrap();
        assert!(garbage.status().is_client_error(), "{}", garbage.status());
        let huge = browser
            .post(app.url("/profile"))
            .form(&[
                ("csrf", csrf.as_str()),
                ("name", &"x".repeat(2 * 1024 * 1024)),
                ("time_zone", "UTC"),
            ])
            .send()
            .await
            .unwrap();
        assert!(huge.status().is_client_error(), "{}", huge.status());
        assert!(huge.text().await.unwrap().contains("too large"));

        let bad_tz = browser
            .post(app.url("/profile"))
            .form(&[
                ("csrf", csrf.as_str()),
                ("name", "Root"),
                ("time_zone", "Europe/Lndon"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(bad_tz.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            bad_tz
                .text()
                .await
                .unwrap()
                .contains("Europe/Lndon&#34; is not an IANA time zone")
        );

        let audit = browser
            .get(app.url("/admin/audit?from=yesterday"))
            .send()
            .await
            .unwrap();
        assert_eq!(audit.status(), StatusCode::BAD_REQUEST);
        assert!(
            audit
                .text()
                .await
                .unwrap()
                .contains("Use a date like 2026-11-28")
        );
        for path in [
            "/admin/users/abc",
            "/admin/users/99999",
            "/teams/0",
            "/no/such/page",
        ] {
            assert_eq!(
                browser.get(app.url(path)).send().await.unwrap().status(),
                StatusCode::NOT_FOUND,
                "{path}"
            );
        }
        app.stop().await;
    }
}

#[tokio::test]
async fn admins_read_the_audit_log_with_filters() {
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        let admin = app
            .user("root@example.com", Role::Admin, "root's long password")
            .await;
        let browser = app.browser();
        app.sign_in(&browser, "root@example.com", "root's long password")
            .await;
        let csrf = app.csrf(&browser, "/teams").await;
        let created = browser
            .post(app.url("/teams"))
            .form(&[
                ("csrf", csrf.as_str()),
                ("name", "Inference SRE"),
                ("members", &admin.id.to_string()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), StatusCode::SEE_OTHER);

        let teams_only = browser
            .get(app.url("/admin/audit?target_type=team"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            teams_only.contains("created team Inference SRE"),
            "{teams_only}"
        );
        assert!(!teams_only.contains("signed in"), "filtered by target type");
        let by_actor = browser
            .get(app.url(&format!("/admin/audit?actor={}", admin.id)))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(by_actor.contains("signed in") && by_actor.contains("created team"));
        assert!(by_actor.contains("127.0.0.1"), "client address recorded");
        let today = chrono::Utc::now().date_naive();
        let future = browser
            .get(app.url(&format!(
                "/admin/audit?from={}",
                today + chrono::Days::new(2)
            )))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(future.contains("No entries match."));
        app.stop().await;
    }
}
