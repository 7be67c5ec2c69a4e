//! End-to-end: first-run setup, signing in and out, CSRF, roles, API tokens and the audit
//! log, through HTTP against the real server, on SQLite and PostgreSQL.

mod common;

use common::{TestApp, backends};
use heliograph_domain::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn first_run_setup_then_sign_in_and_out() {
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        let setup = app
            .setup_url
            .clone()
            .expect("a fresh database prints a setup URL");
        let setup_path = setup.trim_start_matches(&app.base).to_owned();
        let browser = app.browser();

        // A wrong token is refused.
        let wrong = browser
            .get(app.url("/setup/not-the-token"))
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), StatusCode::BAD_REQUEST, "{backend:?}");

        // Bad input re-renders the form with what was typed and creates nothing.
        let csrf = app.csrf(&browser, &setup_path).await;
        let bad = browser
            .post(&setup)
            .form(&[
                ("csrf", csrf.as_str()),
                ("name", "Ana Admin"),
                ("email", "ana@example.com"),
                ("time_zone", "Mars/Base"),
                ("password", "short"),
                ("password_confirm", "short"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = bad.text().await.unwrap();
        assert!(html.contains("not an IANA time zone"), "{html}");
        assert!(html.contains("at least 10 characters"));
        assert!(
            html.contains("value=\"ana@example.com\""),
            "typed email kept"
        );
        assert_eq!(app.store.user_count().await.unwrap(), 0);

        let ok = browser
            .post(&setup)
            .form(&[
                ("csrf", csrf.as_str()),
                ("name", "Ana Admin"),
                ("email", "Ana@Example.com"),
                ("time_zone", "Asia/Kathmandu"),
                ("password", "correct horse battery"),
                ("password_confirm", "correct horse battery"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(
            ok.status(),
            StatusCode::SEE_OTHER,
            "{backend:?}: {}",
            ok.text().await.unwrap()
        );
        let home = browser
            .get(app.url("/"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            home.contains("Hello, Ana Admin"),
            "signed in after setup: {home}"
        );
        assert!(home.contains("Asia/Kathmandu"));

        // The link works once.
        assert_eq!(
            browser.get(&setup).send().await.unwrap().status(),
            StatusCode::BAD_REQUEST
        );

        // Sign out, then fail and succeed to sign in.
        let csrf = app.csrf(&browser, "/").await;
        let out = browser
            .post(app.url("/logout"))
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(out.status(), StatusCode::SEE_OTHER);
        let after = browser.get(app.url("/profile")).send().await.unwrap();
        assert_eq!(after.status(), StatusCode::SEE_OTHER);
        assert!(
            after.headers()["location"]
                .to_str()
                .unwrap()
                .starts_with("/login?next=%2Fprofile")
        );

        let wrong = app
            .sign_in(&browser, "ana@example.com", "wrong password!")
            .await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        let text = wrong.text().await.unwrap();
        assert!(text.contains("do not match"), "{text}");
        assert!(
            text.contains("value=\"ana@example.com\""),
            "email kept on error"
        );
        let right = app
            .sign_in(&browser, "ANA@example.com", "correct horse battery")
            .await;
        assert_eq!(right.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            browser
                .get(app.url("/profile"))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );

        let actions = app.audit_actions().await;
        for expected in [
            "setup.complete",
            "auth.logout",
            "auth.login_failed",
            "auth.login",
        ] {
            assert!(
                actions.iter().any(|a| a == expected),
                "{backend:?}: {expected} missing from {actions:?}"
            );
        }
        app.stop().await;
    }
}

#[tokio::test]
async fn repeated_failures_lock_the_account_for_a_while() {
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        app.user("bo@example.com", Role::Responder, "bo's long password")
            .await;
        let browser = app.browser();
        for _ in 0..5 {
            assert_eq!(
                app.sign_in(&browser, "bo@example.com", "guess guess guess")
                    .await
                    .status(),
                StatusCode::UNAUTHORIZED
            );
        }
        let locked = app
            .sign_in(&browser, "bo@example.com", "bo's long password")
            .await;
        assert_eq!(
            locked.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "{backend:?}"
        );
        let text = locked.text().await.unwrap();
        assert!(
            text.contains("Too many failed sign-ins for this account. Try again in 15 minutes."),
            "{text}"
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn forms_without_a_valid_csrf_token_change_nothing() {
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        let user = app
            .user("cy@example.com", Role::Manager, "cy's long password")
            .await;
        let browser = app.browser();
        app.sign_in(&browser, "cy@example.com", "cy's long password")
            .await;

        let missing = browser
            .post(app.url("/profile"))
            .form(&[("name", "Mallory"), ("time_zone", "UTC")])
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), StatusCode::FORBIDDEN, "{backend:?}");
        assert!(missing.text().await.unwrap().contains("security token"));
        let forged = browser
            .post(app.url("/profile"))
            .form(&[
                ("csrf", "forged-token-forged-token-forged-token"),
                ("name", "Mallory"),
                ("time_zone", "UTC"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), StatusCode::FORBIDDEN);
        let team = browser
            .post(app.url("/teams"))
            .form(&[("name", "Sneaky")])
            .send()
            .await
            .unwrap();
        assert_eq!(team.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            app.store.user(user.id).await.unwrap().name.as_str(),
            "cy",
            "nothing changed"
        );
        assert!(app.store.teams(10, None).await.unwrap().items.is_empty());

        // With the token, the same change goes through.
        let csrf = app.csrf(&browser, "/profile").await;
        let ok = browser
            .post(app.url("/profile"))
            .form(&[
                ("csrf", csrf.as_str()),
                ("name", "Cy Manager"),
                ("time_zone", "America/New_York"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), StatusCode::SEE_OTHER);
        let saved = app.store.user(user.id).await.unwrap();
        assert_eq!(
            (saved.name.as_str(), saved.time_zone.name()),
            ("Cy Manager", "America/New_York")
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn roles_are_enforced_on_pages_and_the_api() {
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        app.user("vi@example.com", Role::Viewer, "viewer password")
            .await;
        let browser = app.browser();
        assert_eq!(
            browser
                .get(app.url("/admin/users"))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::SEE_OTHER,
            "signed out → sign in"
        );
        app.sign_in(&browser, "vi@example.com", "viewer password")
            .await;

        let admin_page = browser.get(app.url("/admin/users")).send().await.unwrap();
        assert_eq!(admin_page.status(), StatusCode::FORBIDDEN, "{backend:?}");
        let text = admin_page.text().await.unwrap();
        assert!(
            text.contains("This needs the admin role; you are signed in as a viewer."),
            "{text}"
        );
        assert_eq!(
            browser
                .get(app.url("/admin/audit"))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            browser
                .get(app.url("/teams"))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK,
            "viewers read"
        );
        let csrf = app.csrf(&browser, "/teams").await;
        let create = browser
            .post(app.url("/teams"))
            .form(&[("csrf", csrf.as_str()), ("name", "Nope")])
            .send()
            .await
            .unwrap();
        assert_eq!(
            create.status(),
            StatusCode::FORBIDDEN,
            "viewers cannot edit teams"
        );

        // The API: a viewer's token reads but may not make a manager-only call.
        let token = heliograph_web::auth::new_api_token();
        let viewer = app
            .store
            .credentials("vi@example.com")
            .await
            .unwrap()
            .unwrap()
            .0;
        app.store
            .create_token(
                viewer.id,
                &heliograph_domain::TokenName::parse("t").unwrap(),
                &heliograph_web::auth::hash_secret(&token),
                "hg_x",
                &heliograph_store::Audit::cli(),
            )
            .await
            .unwrap();
        let api = reqwest::Client::new();
        let me = api
            .get(app.url("/api/v1/users/me"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), StatusCode::OK);
        let post = api
            .post(app.url("/api/v1/teams"))
            .bearer_auth(&token)
            .json(&json!({"name": "Nope"}))
            .send()
            .await
            .unwrap();
        assert_eq!(post.status(), StatusCode::FORBIDDEN);
        let body: Value = post.json().await.unwrap();
        assert_eq!(body["error"]["code"], "forbidden");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("manager")
        );
        assert!(app.store.teams(10, None).await.unwrap().items.is_empty());
        app.stop().await;
    }
}

#[tokio::test]
async fn api_tokens_work_until_revoked_and_everything_is_audited() {
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        app.user("dee@example.com", Role::Responder, "dee's long password")
            .await;
        let browser = app.browser();
        app.sign_in(&browser, "dee@example.com", "dee's long password")
            .await;

        let csrf = app.csrf(&browser, "/profile").await;
        let created = browser
            .post(app.url("/profile/tokens"))
            .form(&[("csrf", csrf.as_str()), ("name", "ci pipeline")])
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), StatusCode::OK);
        let html = created.text().await.unwrap();
        let at = html.find("value=\"hg_").expect("the token is shown once");
        let token = html[at + 7..].split('"').next().unwrap().to_owned();

        let api = reqwest::Client::new();
        let me: Value = api
            .get(app.url("/api/v1/users/me"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(me["email"], "dee@example.com", "{backend:?}");
        assert_eq!(me["role"], "responder");

        let profile = browser
            .get(app.url("/profile"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(profile.contains("ci pipeline"));
        assert!(!profile.contains(&token), "the secret is never shown again");
        let id = app
            .store
            .tokens_of(me["id"].as_i64().unwrap())
            .await
            .unwrap()[0]
            .id;
        assert!(
            app.store
                .tokens_of(me["id"].as_i64().unwrap())
                .await
                .unwrap()[0]
                .last_used_at
                .is_some(),
            "last use recorded"
        );
        let csrf = app.csrf(&browser, "/profile").await;
        let revoked = browser
            .post(app.url(&format!("/profile/tokens/{id}/revoke")))
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(revoked.status(), StatusCode::SEE_OTHER);

        let after = api
            .get(app.url("/api/v1/users/me"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
        let body: Value = after.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
        let none = api.get(app.url("/api/v1/users/me")).send().await.unwrap();
        assert_eq!(none.status(), StatusCode::UNAUTHORIZED);

        let actions = app.audit_actions().await;
        assert!(
            actions.contains(&"token.create".to_owned())
                && actions.contains(&"token.revoke".to_owned()),
            "{actions:?}"
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn sessions_survive_a_restart() {
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        app.user("eve@example.com", Role::Viewer, "eve's long password")
            .await;
        let browser = app.browser();
        app.sign_in(&browser, "eve@example.com", "eve's long password")
            .await;
        let db = app.stop().await;
        let again = TestApp::spawn_on(
            backend,
            db,
            std::sync::Arc::new(heliograph_domain::SystemClock),
        )
        .await;
        // The new server listens on another port; the cookie is for 127.0.0.1 and any port.
        let page = browser.get(again.url("/profile")).send().await.unwrap();
        assert_eq!(
            page.status(),
            StatusCode::OK,
            "{backend:?}: the session is in the database"
        );
        assert!(again.setup_url.is_none(), "no setup link once users exist");
        again.stop().await;
    }
}
