//! End-to-end: contact methods, notification rules and working hours on the profile page,
//! on SQLite and PostgreSQL — adding through the forms, refusals that keep input and save
//! nothing, test sends, and nobody touching anyone else's contacts.

mod common;

use common::{TestApp, backends};
use heliograph_domain::Role;
use heliograph_store::Db;
use heliograph_store::contacts::ContactKind;
use reqwest::StatusCode;

const PASSWORD: &str = "a long password here";

/// A refused form: path, fields, status, the message shown, and a sign the input was kept.
type Refusal<'a> = (
    &'a str,
    Vec<(&'a str, &'a str)>,
    StatusCode,
    &'a str,
    &'a str,
);

async fn post_form(
    app: &TestApp,
    client: &reqwest::Client,
    path: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let csrf = app.csrf(client, "/profile").await;
    let mut all = vec![("csrf", csrf.as_str())];
    all.extend_from_slice(fields);
    client.post(app.url(path)).form(&all).send().await.unwrap()
}

async fn profile(app: &TestApp, client: &reqwest::Client) -> String {
    let page = client.get(app.url("/profile")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    page.text().await.unwrap()
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    let (n,): (i64,) = match app.store.db() {
        Db::Sqlite { read, .. } => sqlx::query_as(sql).fetch_one(read).await.unwrap(),
        Db::Postgres(pool, _) => sqlx::query_as(sql).fetch_one(pool).await.unwrap(),
    };
    n
}

/// (contact methods, rules) of a user.
async fn sizes(app: &TestApp, user_id: i64) -> (usize, usize) {
    (
        app.store.contact_methods_of(user_id).await.unwrap().len(),
        app.store.rules_of(user_id).await.unwrap().len(),
    )
}

#[tokio::test]
async fn a_responder_sets_up_contacts_rules_and_working_hours() {
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        let ana = app.user("ana@example.com", Role::Responder, PASSWORD).await;
        let browser = app.browser();
        app.sign_in(&browser, "ana@example.com", PASSWORD).await;

        // First view: the account email is the first contact method, used at once.
        let html = profile(&app, &browser).await;
        assert!(
            html.contains("ana@example.com <strong>(account email)</strong>"),
            "{html}"
        );
        assert!(html.contains("Email ana@example.com at once"), "{html}");
        assert!(html.contains(
            "SEV1 and SEV2 page you at any hour; SEV3 and SEV4 wait for your working hours unless the escalation policy says otherwise."
        ));
        assert!(html.contains("Times are in your time zone, <strong>Europe/London</strong>"));
        assert_eq!(sizes(&app, ana.id).await, (1, 1));

        for (kind, address) in [
            ("email", "Ana.Phone@Example.com"),
            ("webhook", "https://hooks.example.com/ana"),
            ("slack", "https://hooks.slack.com/services/T0/B0/XYZ"),
        ] {
            let r = post_form(
                &app,
                &browser,
                "/profile/contacts",
                &[("kind", kind), ("address", address), ("label", "")],
            )
            .await;
            assert_eq!(r.status(), StatusCode::SEE_OTHER, "{backend:?} {address}");
        }
        let methods = app.store.contact_methods_of(ana.id).await.unwrap();
        assert_eq!(methods.len(), 4);
        assert_eq!(methods[1].address, "ana.phone@example.com");
        let hook = methods
            .iter()
            .find(|m| m.kind == ContactKind::Webhook)
            .unwrap()
            .clone();

        let r = post_form(
            &app,
            &browser,
            "/profile/rules",
            &[
                ("contact_method_id", &hook.id.to_string()),
                ("delay_minutes", "5"),
            ],
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let html = profile(&app, &browser).await;
        assert!(html.contains("Rule added: Webhook https://hooks.example.com/ana after 5 minutes if still unacknowledged."), "{html}");
        assert!(html.contains("Email ana@example.com at once"));

        // Refusals: 4xx, the message beside the field, the input kept, nothing saved.
        let audit_before = app.audit_actions().await.len();
        let hook_id = hook.id.to_string();
        let refusals: [Refusal; 7] = [
            (
                "/profile/contacts",
                vec![
                    ("kind", "email"),
                    ("address", "not-an-email"),
                    ("label", "x"),
                ],
                StatusCode::UNPROCESSABLE_ENTITY,
                "Email must look like name@example.com",
                "value=\"not-an-email\"",
            ),
            (
                "/profile/contacts",
                vec![
                    ("kind", "webhook"),
                    ("address", "ftp://hooks.example.com/x"),
                    ("label", ""),
                ],
                StatusCode::UNPROCESSABLE_ENTITY,
                "URL must start with https:// or http://",
                "value=\"ftp://hooks.example.com/x\"",
            ),
            (
                "/profile/contacts",
                vec![("kind", "pigeon"), ("address", "roof"), ("label", "")],
                StatusCode::UNPROCESSABLE_ENTITY,
                "is not a kind of contact method",
                "value=\"roof\"",
            ),
            (
                "/profile/contacts",
                vec![
                    ("kind", "webhook"),
                    ("address", "https://hooks.example.com/ana"),
                    ("label", ""),
                ],
                StatusCode::CONFLICT,
                "is already one of your contact methods",
                "value=\"https://hooks.example.com/ana\"",
            ),
            (
                "/profile/rules",
                vec![("contact_method_id", &hook_id), ("delay_minutes", "5000")],
                StatusCode::UNPROCESSABLE_ENTITY,
                "Delay must be a whole number of minutes from 0 to 1440",
                "value=\"5000\"",
            ),
            (
                "/profile/rules",
                vec![("contact_method_id", "abc"), ("delay_minutes", "3")],
                StatusCode::UNPROCESSABLE_ENTITY,
                "Choose one of your contact methods",
                "value=\"3\"",
            ),
            (
                "/profile/rules",
                vec![("contact_method_id", &hook_id), ("delay_minutes", "5")],
                StatusCode::CONFLICT,
                "There is already a rule for https://hooks.example.com/ana after 5 minutes",
                "value=\"5\"",
            ),
        ];
        for (path, fields, status, message, kept) in &refusals {
            let r = post_form(&app, &browser, path, fields).await;
            assert_eq!(r.status(), *status, "{backend:?} {path} {fields:?}");
            let html = r.text().await.unwrap();
            assert!(html.contains(message), "{message}: {html}");
            assert!(html.contains(kept), "{kept}: {html}");
        }
        assert_eq!(sizes(&app, ana.id).await, (4, 2));

        // No CSRF field: 403 and nothing saved.
        let r = browser
            .post(app.url("/profile/contacts"))
            .form(&[("kind", "email"), ("address", "sneaky@example.com")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let r = browser
            .post(app.url(&format!("/profile/contacts/{}/delete", hook.id)))
            .form(&[("x", "y")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(sizes(&app, ana.id).await, (4, 2));
        assert_eq!(app.audit_actions().await.len(), audit_before);

        // Working hours: saved in Ana's zone and shown again.
        let r = post_form(
            &app,
            &browser,
            "/profile/working-hours",
            &[
                ("days", "mon"),
                ("days", "tue"),
                ("days", "sat"),
                ("start", "08:30"),
                ("end", "24:00"),
                ("handoff_lead_minutes", "30"),
            ],
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let hours = app.store.working_hours(ana.id).await.unwrap();
        assert_eq!(hours.days_text(), "mon,tue,sat");
        assert_eq!(hours.start().to_string(), "08:30");
        assert_eq!(hours.end().to_string(), "24:00");
        assert_eq!(hours.handoff_lead_minutes(), 30);
        let html = profile(&app, &browser).await;
        assert!(html.contains("Working hours saved."));
        assert!(html.contains("name=\"start\" value=\"08:30\""), "{html}");
        assert!(html.contains("name=\"end\" value=\"24:00\""));
        assert!(html.contains("name=\"handoff_lead_minutes\" type=\"number\" min=\"0\" max=\"1440\" step=\"1\" value=\"30\""));
        assert!(html.contains("value=\"sat\" checked"));
        assert!(!html.contains("value=\"wed\" checked"));

        for (fields, field, message) in [
            (
                vec![
                    ("days", "mon"),
                    ("start", "25:00"),
                    ("end", "17:00"),
                    ("handoff_lead_minutes", "30"),
                ],
                "work_start-error",
                "Use the 24-hour form HH:MM",
            ),
            (
                vec![
                    ("start", "09:00"),
                    ("end", "17:00"),
                    ("handoff_lead_minutes", "30"),
                ],
                "work_days-error",
                "Pick at least one working day",
            ),
            (
                vec![
                    ("days", "mon"),
                    ("start", "09:00"),
                    ("end", "09:00"),
                    ("handoff_lead_minutes", "30"),
                ],
                "work_end-error",
                "The end must differ from the start",
            ),
            (
                vec![
                    ("days", "mon"),
                    ("start", "09:00"),
                    ("end", "17:00"),
                    ("handoff_lead_minutes", "2000"),
                ],
                "handoff_lead_minutes-error",
                "Lead time must be a whole number of minutes from 0 to 1440",
            ),
            (
                vec![
                    ("days", "someday"),
                    ("start", "09:00"),
                    ("end", "17:00"),
                    ("handoff_lead_minutes", "5"),
                ],
                "work_days-error",
                "is not a day of the week",
            ),
        ] {
            let r = post_form(&app, &browser, "/profile/working-hours", &fields).await;
            assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{fields:?}");
            let html = r.text().await.unwrap();
            assert!(
                html.contains(&format!("id=\"{field}\">")),
                "{field}: {html}"
            );
            assert!(html.contains(message), "{message}: {html}");
            for (name, value) in &fields {
                if *name != "days" {
                    assert!(html.contains(&format!("name=\"{name}\"")));
                    assert!(html.contains(&format!("value=\"{value}\"")), "{value} kept");
                }
            }
        }
        assert_eq!(app.store.working_hours(ana.id).await.unwrap(), hours);

        // A test send records the notification and its delivery job.
        let r = post_form(
            &app,
            &browser,
            &format!("/profile/contacts/{}/test", hook.id),
            &[],
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let html = profile(&app, &browser).await;
        assert!(html.contains("Test sent to https://hooks.example.com/ana — check your inbox; the method is marked verified when delivery succeeds."), "{html}");
        assert_eq!(
            count(
                &app,
                &format!(
                    "SELECT COUNT(*) FROM notifications WHERE purpose = 'test' AND contact_method_id = {} AND subject = 'Heliograph test notification' AND channel = 'webhook'",
                    hook.id
                )
            )
            .await,
            1
        );
        assert_eq!(
            count(
                &app,
                "SELECT COUNT(*) FROM jobs j JOIN notifications n ON j.dedup_key = 'deliver:' || CAST(n.id AS TEXT) WHERE j.kind = 'deliver' AND n.purpose = 'test'"
            )
            .await,
            1
        );

        // A second test straight away is refused with a message, and records nothing.
        let r = post_form(
            &app,
            &browser,
            &format!("/profile/contacts/{}/test", hook.id),
            &[],
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let html = profile(&app, &browser).await;
        assert!(html.contains("less than a minute ago"), "{html}");
        assert_eq!(
            count(
                &app,
                "SELECT COUNT(*) FROM notifications WHERE purpose = 'test'"
            )
            .await,
            1
        );

        // Deleting: the webhook and its rule go; the account email may go while another
        // email remains; the last email may not.
        let r = post_form(
            &app,
            &browser,
            &format!("/profile/contacts/{}/delete", hook.id),
            &[],
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(sizes(&app, ana.id).await, (3, 1));
        let methods = app.store.contact_methods_of(ana.id).await.unwrap();
        let r = post_form(
            &app,
            &browser,
            &format!("/profile/contacts/{}/delete", methods[0].id),
            &[],
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let r = post_form(
            &app,
            &browser,
            &format!("/profile/contacts/{}/delete", methods[1].id),
            &[],
        )
        .await;
        assert_eq!(r.status(), StatusCode::CONFLICT);
        let html = r.text().await.unwrap();
        assert!(html.contains("This is your only email address"), "{html}");
        assert_eq!(sizes(&app, ana.id).await.0, 2);
        // With no rules left the page says where pages go.
        let html = profile(&app, &browser).await;
        assert!(html.contains("You have no rules: pages go to your account email at once."));

        let actions = app.audit_actions().await;
        for action in [
            "contact_method.create",
            "contact_method.delete",
            "contact_method.test",
            "notification_rule.create",
            "user.working_hours",
        ] {
            assert!(actions.iter().any(|a| a == action), "{action} not audited");
        }
        app.stop().await;
    }
}

#[tokio::test]
async fn a_viewer_manages_their_own_contacts_but_never_anyone_elses() {
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        let ana = app.user("ana@example.com", Role::Responder, PASSWORD).await;
        let vic = app.user("vic@example.com", Role::Viewer, PASSWORD).await;
        app.store.ensure_default_contact(ana.id).await.unwrap();
        let anas = app.store.contact_methods_of(ana.id).await.unwrap()[0].clone();
        let anas_rule = app.store.rules_of(ana.id).await.unwrap()[0].clone();

        let browser = app.browser();
        app.sign_in(&browser, "vic@example.com", PASSWORD).await;
        let html = profile(&app, &browser).await;
        assert!(html.contains("vic@example.com <strong>(account email)</strong>"));
        assert!(!html.contains("ana@example.com"));
        assert!(!html.contains(&format!("/profile/contacts/{}/", anas.id)));

        let r = post_form(
            &app,
            &browser,
            "/profile/contacts",
            &[
                ("kind", "webhook"),
                ("address", "https://vic.example.net/hook"),
                ("label", "bridge"),
            ],
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{backend:?}");
        let vics = app.store.contact_methods_of(vic.id).await.unwrap();
        assert_eq!(vics.len(), 2);
        let r = post_form(
            &app,
            &browser,
            "/profile/rules",
            &[
                ("contact_method_id", &vics[1].id.to_string()),
                ("delay_minutes", "10"),
            ],
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let r = post_form(
            &app,
            &browser,
            &format!("/profile/contacts/{}/test", vics[1].id),
            &[],
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);

        // Ana's method and rule are not found for Vic, whatever he tries.
        let audit_before = app.audit_actions().await.len();
        for path in [
            format!("/profile/contacts/{}/delete", anas.id),
            format!("/profile/contacts/{}/test", anas.id),
            format!("/profile/rules/{}/delete", anas_rule.id),
            "/profile/contacts/999999/delete".to_owned(),
            "/profile/contacts/nope/test".to_owned(),
        ] {
            let r = post_form(&app, &browser, &path, &[]).await;
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        }
        let r = post_form(
            &app,
            &browser,
            "/profile/rules",
            &[
                ("contact_method_id", &anas.id.to_string()),
                ("delay_minutes", "1"),
            ],
        )
        .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(sizes(&app, ana.id).await, (1, 1));
        assert_eq!(sizes(&app, vic.id).await, (2, 2));
        assert_eq!(app.audit_actions().await.len(), audit_before);
        assert_eq!(
            count(
                &app,
                &format!(
                    "SELECT COUNT(*) FROM notifications WHERE contact_method_id = {}",
                    anas.id
                )
            )
            .await,
            0
        );

        // Signed out, the forms send you to sign in and change nothing.
        let stranger = app.browser();
        let csrf = app.csrf(&stranger, "/login").await;
        let r = stranger
            .post(app.url(&format!("/profile/contacts/{}/delete", anas.id)))
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert!(r.status().is_redirection(), "{}", r.status());
        assert_eq!(sizes(&app, ana.id).await, (1, 1));
        app.stop().await;
    }
}
