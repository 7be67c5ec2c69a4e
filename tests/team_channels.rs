//! Team channels end to end, on both databases, with a real webhook receiver: a manager adds a
//! Slack channel through the team page (bad input, a missing CSRF token and a viewer are
//! refused), a test send verifies it, a policy level posts to it through the API, a SEV1 posts
//! one signed `{"text": …}` (and a generic channel the JSON body), the timeline says so, a
//! restart sends nothing twice, and a channel in use cannot be deleted.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::{TestApp, backends};
use heliograph_domain::{Role, ServiceKind, SystemClock, TeamName, WorkloadClass};
use heliograph_notify::testing::{ReceivedRequest, WebhookSink};
use heliograph_notify::{SIGNATURE_HEADER, verify_signature};
use heliograph_store::Audit;
use heliograph_store::services::{ResponseTargets, ServiceFields};
use reqwest::StatusCode;
use serde_json::json;

const PASSWORD: &str = "a long enough password";

async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

fn on_path(requests: &[ReceivedRequest], path: &str) -> Vec<ReceivedRequest> {
    requests
        .iter()
        .filter(|r| r.path == path)
        .cloned()
        .collect()
}

async fn post(
    app: &TestApp,
    client: &reqwest::Client,
    csrf: Option<&str>,
    path: &str,
    fields: &[(&str, &str)],
) -> (StatusCode, String) {
    let mut all: Vec<(&str, &str)> = csrf.map(|c| ("csrf", c)).into_iter().collect();
    all.extend_from_slice(fields);
    let r = client.post(app.url(path)).form(&all).send().await.unwrap();
    let status = r.status();
    (status, r.text().await.unwrap())
}

#[tokio::test]
async fn a_team_channel_receives_a_signed_page_once() {
    let sink = WebhookSink::start().await;
    let slack_url = format!("http://{}/slack", sink.addr());
    let generic_url = format!("http://{}/generic", sink.addr());
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        let max = app.user("max@example.com", Role::Manager, PASSWORD).await;
        app.user("vic@example.com", Role::Viewer, PASSWORD).await;
        let team = app
            .store
            .create_team(
                &TeamName::parse("AI operations").unwrap(),
                &[max.id],
                &Audit::cli(),
            )
            .await
            .unwrap()
            .team
            .id;
        let other_team = app
            .store
            .create_team(&TeamName::parse("Data").unwrap(), &[], &Audit::cli())
            .await
            .unwrap()
            .team
            .id;
        let page = format!("/teams/{team}");
        let add = format!("/teams/{team}/channels");
        let manager = app.browser();
        app.sign_in(&manager, "max@example.com", PASSWORD).await;
        let csrf = app.csrf(&manager, &page).await;

        // Plain http to anywhere but this machine: refused beside the field, form kept.
        let (status, html) = post(
            &app,
            &manager,
            Some(&csrf),
            &add,
            &[
                ("name", "#ai-ops-incidents"),
                ("kind", "slack"),
                ("url", "http://hooks.example.com/x"),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{backend:?}");
        assert!(html.contains("must use https://"), "{html}");
        assert!(html.contains("value=\"#ai-ops-incidents\""), "{html}");
        assert!(
            html.contains("value=\"http://hooks.example.com/x\""),
            "{html}"
        );
        let (status, html) = post(
            &app,
            &manager,
            Some(&csrf),
            &add,
            &[
                ("name", " "),
                ("kind", "sms"),
                ("url", "https://ok.example.com/"),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(html.contains("Name is required"), "{html}");
        assert!(html.contains("is not a kind of channel"), "{html}");
        // No CSRF token; a viewer.
        let good = [
            ("name", "#ai-ops-incidents"),
            ("kind", "slack"),
            ("url", slack_url.as_str()),
        ];
        let (status, _) = post(&app, &manager, None, &add, &good).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let viewer = app.browser();
        app.sign_in(&viewer, "vic@example.com", PASSWORD).await;
        let viewer_csrf = app.csrf(&viewer, "/profile").await;
        let (status, _) = post(&app, &viewer, Some(&viewer_csrf), &add, &good).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(app.store.team_channels(team).await.unwrap().is_empty());

        // The manager adds it; it is not verified until a test arrives.
        let (status, _) = post(&app, &manager, Some(&csrf), &add, &good).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{backend:?}");
        let (status, html) = post(&app, &manager, Some(&csrf), &add, &good).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(
            html.contains("already has a channel named #ai-ops-incidents"),
            "{html}"
        );
        let channels = app.store.team_channels(team).await.unwrap();
        assert_eq!(channels.len(), 1);
        let slack = channels[0].clone();
        assert!(slack.verified_at.is_none());
        let generic = app
            .store
            .add_team_channel(
                team,
                &heliograph_store::team_channels::NewChannel {
                    name: "ops-bot".into(),
                    kind: heliograph_store::team_channels::ChannelKind::Webhook,
                    url: generic_url.clone(),
                },
                &Audit::cli(),
            )
            .await
            .unwrap();
        let before = sink.requests().len();
        let (status, _) = post(
            &app,
            &manager,
            Some(&csrf),
            &format!("/teams/{team}/channels/{}/test", slack.id),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        sink.wait_for(before + 1, Duration::from_secs(15)).await;
        wait_until("the channel to be verified", || async {
            app.store
                .team_channel(slack.id)
                .await
                .unwrap()
                .verified_at
                .is_some()
        })
        .await;
        // The viewer sees the list, not the forms.
        let html = viewer
            .get(app.url(&page))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            html.contains("#ai-ops-incidents") && html.contains("verified"),
            "{html}"
        );
        assert!(!html.contains(&format!("action=\"{add}\"")), "{html}");
        assert!(!html.contains("/test\""), "{html}");

        // A policy posts to both channels, through the API; unknown or foreign ids are 422.
        let token = app.token_for("max@example.com").await;
        let api = reqwest::Client::new();
        let policy = |targets: serde_json::Value| json!({"name": "AI ops", "team_id": team, "levels": [{"delay_minutes": 30, "targets": targets}]});
        let foreign = app
            .store
            .add_team_channel(
                other_team,
                &heliograph_store::team_channels::NewChannel {
                    name: "#data".into(),
                    kind: heliograph_store::team_channels::ChannelKind::Slack,
                    url: "https://hooks.example.com/data".into(),
                },
                &Audit::cli(),
            )
            .await
            .unwrap();
        for (id, words) in [(999_999, "no channel 999999"), (foreign.id, "another team")] {
            let r = api
                .post(app.url("/api/v1/escalation-policies"))
                .bearer_auth(&token)
                .json(&policy(
                    json!([{"type": "user", "id": max.id}, {"type": "channel", "id": id}]),
                ))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
            let body: serde_json::Value = r.json().await.unwrap();
            let message = body["error"]["fields"]["levels[0].targets[1].id"]
                .as_str()
                .unwrap_or_else(|| panic!("{body}"));
            assert!(message.contains(words), "{message}");
        }
        let r = api
            .post(app.url("/api/v1/escalation-policies"))
            .bearer_auth(&token)
            .json(&policy(json!([
                {"type": "channel", "id": slack.id},
                {"type": "channel", "id": generic.id}
            ])))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{backend:?}: {body}");
        assert_eq!(body["levels"][0]["targets"][0]["type"], "channel");
        let policy_id = body["id"].as_i64().unwrap();
        // The policy editor offers the channels and saves a ticked one; another team's is refused.
        let html = manager
            .get(app.url("/escalation-policies/new"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            html.contains(&format!("value=\"channel:{}\"", slack.id)),
            "{html}"
        );
        let team_field = team.to_string();
        let form = |channel: i64| {
            vec![
                ("name", "AI ops (form)".to_owned()),
                ("team_id", team_field.clone()),
                ("repeat", "0".to_owned()),
                ("level-0-delay", "10".to_owned()),
                ("level-0-target", format!("channel:{channel}")),
            ]
        };
        let fields = form(foreign.id);
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, html) =
            post(&app, &manager, Some(&csrf), "/escalation-policies", &fields).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{backend:?}");
        assert!(html.contains("belongs to another team"), "{html}");
        let fields = form(slack.id);
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, html) =
            post(&app, &manager, Some(&csrf), "/escalation-policies", &fields).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{backend:?}: {html}");
        let saved = app
            .store
            .policies()
            .await
            .unwrap()
            .into_iter()
            .find(|p| p.name == "AI ops (form)")
            .expect("saved from the form");
        assert_eq!(
            saved.levels[0].targets,
            vec![heliograph_store::escalation_policies::Target::channel(
                slack.id
            )]
        );
        // The policy page names the channel.
        let html = manager
            .get(app.url(&format!("/escalation-policies/{policy_id}")))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(html.contains("channel #ai-ops-incidents (Slack)"), "{html}");
        let html = manager
            .get(app.url("/oncall"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            html.contains("Also posts to #ai-ops-incidents (Slack), ops-bot (Webhook)"),
            "{html}"
        );
        let service = app
            .store
            .create_service(
                &ServiceFields {
                    name: "llm-gateway".into(),
                    description: String::new(),
                    kind: ServiceKind::LlmInference,
                    workload_class: WorkloadClass::RealTime,
                    team_id: Some(team),
                    escalation_policy_id: Some(policy_id),
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

        // A SEV1 posts one signed Slack text and one generic JSON body.
        let slack_before = on_path(&sink.requests(), "/slack").len();
        let generic_before = on_path(&sink.requests(), "/generic").len();
        let r = api
            .post(app.url("/api/v1/incidents"))
            .bearer_auth(&token)
            .json(&json!({"title": "LLM gateway 5xx > 20%", "severity": "SEV1", "service_id": service}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let number = r.json::<serde_json::Value>().await.unwrap()["number"]
            .as_i64()
            .unwrap();
        wait_until("both channels to be posted to", || async {
            let all = sink.requests();
            on_path(&all, "/slack").len() > slack_before
                && on_path(&all, "/generic").len() > generic_before
        })
        .await;
        let secret = app
            .store
            .setting("WEBHOOK_SIGNING_SECRET")
            .await
            .unwrap()
            .expect("the installation's webhook secret");
        let posts = on_path(&sink.requests(), "/slack");
        let hook = posts.last().unwrap();
        let body = hook.json();
        let text = body["text"].as_str().unwrap_or_else(|| panic!("{body}"));
        assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
        assert!(
            text.contains(&format!("#{number} LLM gateway 5xx > 20%")),
            "{text}"
        );
        assert!(
            text.contains(&format!("{}/incidents/{number}", app.base)),
            "{text}"
        );
        assert!(
            !text.contains("/act/"),
            "no one-time links in a channel: {text}"
        );
        let signature = hook.header(SIGNATURE_HEADER).expect("signed");
        assert!(verify_signature(
            secret.as_bytes(),
            signature,
            &hook.body,
            SystemTime::now(),
            Duration::from_secs(300)
        ));
        let generic_body = on_path(&sink.requests(), "/generic").last().unwrap().json();
        assert_eq!(generic_body["incident"]["number"], number, "{generic_body}");
        assert_eq!(generic_body["incident"]["title"], "LLM gateway 5xx > 20%");
        assert_eq!(
            generic_body["incident"]["url"],
            format!("{}/incidents/{number}", app.base)
        );
        assert!(
            generic_body.get("acknowledge_url").is_none(),
            "{generic_body}"
        );

        // The timeline says so; the notifications have no person.
        let incident = app.store.incident(number).await.unwrap();
        wait_until("the timeline entry", || async {
            app.store
                .timeline(incident.id, false)
                .await
                .unwrap()
                .iter()
                .any(|e| e.body == "Posted to #ai-ops-incidents (Slack).")
        })
        .await;
        let sent = app.store.incident_notifications(incident.id).await.unwrap();
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert!(
            sent.iter()
                .all(|n| n.user_id.is_none() && n.state == "sent")
        );
        assert!(sent.iter().any(|n| {
            n.idempotency_key
                .ends_with(&format!(":channel:{}", slack.id))
        }));

        let r = manager
            .get(app.url(&format!("/incidents/{number}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let incident_page = r.text().await.unwrap();
        assert!(incident_page.contains("Posted to #ai-ops-incidents (Slack)."));
        // The webhook URL's path is its secret: the incident page shows the host only.
        assert!(
            !incident_page.contains(&slack_url),
            "{backend:?}: the incident page shows the channel's webhook URL"
        );

        // A restart (the engine runs again over the same database) posts nothing twice.
        let total = sink.requests().len();
        let db = app.stop().await;
        let app = TestApp::spawn_on(backend, db, Arc::new(SystemClock)).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            sink.requests().len(),
            total,
            "{backend:?}: sent again after a restart"
        );

        // A channel a policy posts to cannot be deleted; the refusal names the policy.
        let manager = app.browser();
        app.sign_in(&manager, "max@example.com", PASSWORD).await;
        let csrf = app.csrf(&manager, &page).await;
        let (status, html) = post(
            &app,
            &manager,
            Some(&csrf),
            &format!("/teams/{team}/channels/{}/delete", slack.id),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT, "{backend:?}");
        assert!(html.contains("used by escalation policy AI ops"), "{html}");
        assert!(app.store.team_channel(slack.id).await.is_ok());
        // Another team's channel is not found at this team's address.
        let (status, _) = post(
            &app,
            &manager,
            Some(&csrf),
            &format!("/teams/{team}/channels/{}/delete", foreign.id),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // An unused one can be.
        let (status, _) = post(
            &app,
            &manager,
            Some(&csrf),
            &format!("/teams/{other_team}/channels/{}/delete", foreign.id),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert!(app.store.team_channel(foreign.id).await.is_err());
        app.stop().await;
    }
}
