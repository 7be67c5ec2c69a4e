//! End-to-end: the schedules API on SQLite and PostgreSQL. Who is on call across the 2026 DST
//! changes must agree with the scheduler crate and with answers worked out by hand.

mod common;

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use common::{TestApp, backends};
use heliograph_domain::{DisplayName, FixedClock, Role, TimeZone, UserEmail};
use heliograph_scheduler::{Layer, Schedule};
use heliograph_store::Audit;
use heliograph_store::testdb::TestDatabase;
use heliograph_store::users::NewUser;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// "Now" in these tests: before the DST changes, so overrides around them are in the future.
const NOW: &str = "2026-03-01T00:00:00Z";

/// An app whose clock stands at [`NOW`], with a manager (1), a viewer (2), three responders
/// (3, 4, 5) in team 1, and a responder outside it (6). Tokens by user id.
struct World {
    app: TestApp,
    tokens: Vec<String>,
    http: reqwest::Client,
}

impl World {
    async fn new(backend: heliograph_store::Backend) -> World {
        let db = Arc::new(TestDatabase::fresh(backend).await);
        let app = TestApp::spawn_on(backend, db, Arc::new(FixedClock::new(t(NOW)))).await;
        let people = [
            ("mia@example.com", Role::Manager),
            ("vic@example.com", Role::Viewer),
            ("ana@example.com", Role::Responder),
            ("ben@example.com", Role::Responder),
            ("cho@example.com", Role::Responder),
            ("out@example.com", Role::Responder),
        ];
        let mut tokens = vec![String::new()];
        for (i, (email, role)) in people.into_iter().enumerate() {
            let user = app
                .store
                .create_user(
                    &NewUser {
                        email: UserEmail::parse(email).unwrap(),
                        name: DisplayName::parse(email.split('@').next().unwrap()).unwrap(),
                        time_zone: TimeZone::parse("Europe/London").unwrap(),
                        role,
                        password_hash: None,
                    },
                    &Audit::cli(),
                )
                .await
                .unwrap();
            assert_eq!(user.id, i as i64 + 1, "{backend:?}: ids start at 1");
            tokens.push(app.token_for(email).await);
        }
        let world = World {
            app,
            tokens,
            http: reqwest::Client::new(),
        };
        let (status, team) = world
            .call(
                1,
                reqwest::Method::POST,
                "/api/v1/teams",
                Some(json!({"name": "AI platform", "members": [3, 4, 5]})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{team}");
        assert_eq!(team["id"], 1);
        world
    }

    /// Calls the API as user `as_user`; answers the status and the JSON body (null if none).
    async fn call(
        &self,
        as_user: usize,
        method: reqwest::Method,
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
        self.call(as_user, reqwest::Method::GET, path, None).await
    }

    async fn post(&self, as_user: usize, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(as_user, reqwest::Method::POST, path, Some(body))
            .await
    }

    /// Sends raw bytes as JSON.
    async fn post_raw(&self, as_user: usize, path: &str, body: &str) -> (StatusCode, Value) {
        let res = self
            .http
            .post(self.app.url(path))
            .bearer_auth(&self.tokens[as_user])
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn schedule_count(&self) -> usize {
        self.app.store.schedules().await.unwrap().len()
    }
}

/// CONTRACT.md's example schedule, verbatim.
fn contract_example() -> Value {
    json!({
      "name": "AI platform primary",
      "time_zone": "UTC",
      "team_id": 1,
      "layers": [
        {
          "name": "APAC",
          "participants": [3, 4, 5],
          "shift": {"unit": "weeks", "count": 1},
          "handoff": "2026-01-05T09:00:00",
          "handoff_time_zone": "Asia/Singapore",
          "restrictions": [
            {"days": ["mon","tue","wed","thu","fri"], "start": "09:00", "end": "17:00", "time_zone": "Asia/Singapore"}
          ]
        }
      ]
    })
}

/// A daily 09:00 London rotation of 3, 4, 5 under a weekly New York evening layer of 3, 4
/// (Monday to Friday, 18:00–22:00 New York time).
fn dst_layers() -> Value {
    json!([
        {
            "name": "London days",
            "participants": [3, 4, 5],
            "shift": {"unit": "days", "count": 1},
            "handoff": "2026-03-01T09:00:00",
            "handoff_time_zone": "Europe/London"
        },
        {
            "name": "New York evenings",
            "participants": [3, 4],
            "shift": {"unit": "weeks", "count": 1},
            "handoff": "2026-03-02T00:00:00",
            "handoff_time_zone": "America/New_York",
            "restrictions": [
                {"days": ["mon","tue","wed","thu","fri"], "start": "18:00", "end": "22:00", "time_zone": "America/New_York"}
            ]
        }
    ])
}

fn dst_schedule() -> Value {
    json!({"name": "Follow the sun", "time_zone": "Europe/London", "team_id": 1, "layers": dst_layers()})
}

/// Who `/oncall` names at `at`, and its `until`.
async fn oncall(w: &World, id: i64, at: &str) -> (Option<i64>, DateTime<Utc>) {
    let (status, body) = w
        .get(2, &format!("/api/v1/schedules/{id}/oncall?at={at}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{at}: {body}");
    assert_eq!(t(body["at"].as_str().unwrap()), t(at));
    let users = body["users"].as_array().unwrap();
    assert!(users.len() <= 1, "{body}");
    let who = users.first().map(|u| {
        assert!(u["name"].is_string() && u["email"].is_string(), "{u}");
        u["id"].as_i64().unwrap()
    });
    (who, t(body["until"].as_str().unwrap()))
}

#[tokio::test]
async fn a_manager_creates_the_contract_example_and_reads_it_back() {
    for backend in backends() {
        let w = World::new(backend).await;
        let (status, created) = w.post(1, "/api/v1/schedules", contract_example()).await;
        assert_eq!(status, StatusCode::CREATED, "{backend:?}: {created}");
        let id = created["id"].as_i64().unwrap();
        assert_eq!(created["name"], "AI platform primary");
        assert_eq!(created["time_zone"], "UTC");
        assert_eq!(created["team_id"], 1);
        assert_eq!(created["version"], 1);
        assert!(created["created_at"].is_string() && created["updated_at"].is_string());
        // The layers come back exactly as given.
        assert_eq!(
            created["layers"],
            contract_example()["layers"],
            "{backend:?}"
        );

        let (status, got) = w.get(2, &format!("/api/v1/schedules/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(got, created);

        let (status, list) = w.get(2, "/api/v1/schedules").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(list["schedules"].as_array().unwrap().len(), 1);
        assert_eq!(list["schedules"][0], created);

        // Newest first, paginated like the other lists.
        let mut second = contract_example();
        second["name"] = json!("AI platform secondary");
        let (status, newer) = w.post(1, "/api/v1/schedules", second).await;
        assert_eq!(status, StatusCode::CREATED, "{newer}");
        let (_, page) = w.get(2, "/api/v1/schedules?limit=1").await;
        assert_eq!(page["schedules"][0]["id"], newer["id"]);
        let cursor = page["next_cursor"].as_i64().expect("a next page");
        let (_, rest) = w
            .get(2, &format!("/api/v1/schedules?limit=1&cursor={cursor}"))
            .await;
        assert_eq!(rest["schedules"][0]["id"], id);
        assert_eq!(rest["next_cursor"], Value::Null);

        // The OpenAPI document describes the schedule endpoints.
        let (_, doc) = w.get(2, "/api/v1/openapi.json").await;
        for path in [
            "/api/v1/schedules",
            "/api/v1/schedules/{id}",
            "/api/v1/schedules/{id}/oncall",
            "/api/v1/schedules/{id}/shifts",
            "/api/v1/schedules/{id}/overrides",
            "/api/v1/schedules/{id}/overrides/{override_id}",
        ] {
            assert!(doc["paths"][path].is_object(), "{path} documented");
        }

        // Replace whole; an answer can be edited and sent back as it is.
        let mut edited = got.clone();
        edited["name"] = json!("AI platform primary (APAC)");
        edited["layers"][0]["restrictions"] = json!([]);
        let (status, replaced) = w
            .call(
                1,
                reqwest::Method::PUT,
                &format!("/api/v1/schedules/{id}"),
                Some(edited),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{replaced}");
        assert_eq!(replaced["version"], 2);
        assert_eq!(replaced["layers"][0]["restrictions"], json!([]));

        let (status, _) = w
            .call(
                1,
                reqwest::Method::DELETE,
                &format!("/api/v1/schedules/{id}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, gone) = w.get(2, &format!("/api/v1/schedules/{id}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(gone["error"]["code"], "not_found");
        let actions = w.app.audit_actions().await;
        for action in ["schedule.create", "schedule.update", "schedule.delete"] {
            assert!(actions.iter().any(|a| a == action), "{action} audited");
        }
        w.app.stop().await;
    }
}

#[tokio::test]
async fn on_call_across_dst_changes_matches_the_scheduler_and_hand_checks() {
    for backend in backends() {
        let w = World::new(backend).await;
        let (status, created) = w.post(1, "/api/v1/schedules", dst_schedule()).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let id = created["id"].as_i64().unwrap();
        let layers: Vec<Layer> = serde_json::from_value(dst_layers()).unwrap();
        let reference = Schedule::new(layers, vec![]).unwrap();

        // Hand-checked. London hands off daily at 09:00 local (08:00Z once BST starts on
        // 29 March); days since 1 March pick 3, 4, 5 in turn. New York's window is
        // 18:00–22:00 local: 23:00Z–03:00Z before 8 March, 22:00Z–02:00Z after.
        let hand = [
            // Sat 28 Mar, 09:00 GMT handoff: day 27 → 3, until Sunday's 09:00 BST = 08:00Z.
            ("2026-03-29T07:59:00Z", Some(3), "2026-03-29T08:00:00Z"),
            // Mon 30 Mar 07:30Z is 08:30 BST: still day 28 → 4, until the 08:00Z handoff.
            ("2026-03-30T07:30:00Z", Some(4), "2026-03-30T08:00:00Z"),
            // 08:30Z is 09:30 BST: the handoff has happened, day 29 → 5, until New York's
            // window opens at 18:00 EDT = 22:00Z.
            ("2026-03-30T08:30:00Z", Some(5), "2026-03-30T22:00:00Z"),
            // Fri 6 Mar 22:30Z is 17:30 EST: London's day 5 → 5 until the window at 23:00Z.
            ("2026-03-06T22:30:00Z", Some(5), "2026-03-06T23:00:00Z"),
            // …then New York's first week → 3, until 22:00 EST = 03:00Z.
            ("2026-03-06T23:30:00Z", Some(3), "2026-03-07T03:00:00Z"),
            // Mon 9 Mar 22:30Z is 18:30 EDT: the window is open an hour earlier in UTC, and
            // New York's second week → 4, until 22:00 EDT = 02:00Z.
            ("2026-03-09T22:30:00Z", Some(4), "2026-03-10T02:00:00Z"),
        ];
        for (at, who, until) in hand {
            assert_eq!(
                oncall(&w, id, at).await,
                (who, t(until)),
                "{backend:?} at {at}"
            );
        }

        // Every half hour around both changes agrees with the scheduler crate.
        for (from, to) in [
            ("2026-03-06T00:00:00Z", "2026-03-10T12:00:00Z"),
            ("2026-03-27T00:00:00Z", "2026-03-31T12:00:00Z"),
        ] {
            let mut at = t(from);
            while at < t(to) {
                let expected = reference.on_call_at(at);
                let got = oncall(
                    &w,
                    id,
                    &at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                )
                .await;
                assert_eq!(
                    got,
                    (expected.participant, expected.until),
                    "{backend:?} at {at}"
                );
                at += TimeDelta::minutes(30);
            }
        }

        // /shifts is the scheduler's final schedule, with names.
        let (status, body) = w
            .get(
                2,
                &format!(
                    "/api/v1/schedules/{id}/shifts?from=2026-03-05T00:00:00Z&to=2026-04-01T00:00:00Z"
                ),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let got: Vec<(DateTime<Utc>, DateTime<Utc>, Option<i64>)> = body["shifts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    t(s["start"].as_str().unwrap()),
                    t(s["end"].as_str().unwrap()),
                    s["user"]["id"].as_i64(),
                )
            })
            .collect();
        let expected: Vec<_> = reference
            .final_shifts(t("2026-03-05T00:00:00Z"), t("2026-04-01T00:00:00Z"))
            .into_iter()
            .map(|s| (s.start, s.end, s.participant))
            .collect();
        assert_eq!(got, expected, "{backend:?}");
        assert!(got.len() > 40);
        assert_eq!(
            body["shifts"][0]["user"]["name"], "ana",
            "{}",
            body["shifts"][0]
        );
        assert_eq!(body["shifts"][0]["user"]["email"], "ana@example.com");

        // Defaults: from now, a week.
        let (status, body) = w.get(2, &format!("/api/v1/schedules/{id}/shifts")).await;
        assert_eq!(status, StatusCode::OK);
        let shifts = body["shifts"].as_array().unwrap();
        assert_eq!(t(shifts[0]["start"].as_str().unwrap()), t(NOW));
        assert_eq!(
            t(shifts.last().unwrap()["end"].as_str().unwrap()),
            t(NOW) + TimeDelta::days(7)
        );
        // Before the first handoff nobody is on call: a gap has user null.
        assert_eq!(shifts[0]["user"], Value::Null);
        let (_, now) = w.get(2, &format!("/api/v1/schedules/{id}/oncall")).await;
        assert_eq!(t(now["at"].as_str().unwrap()), t(NOW));
        assert_eq!(now["users"], json!([]));
        assert_eq!(t(now["until"].as_str().unwrap()), t("2026-03-01T09:00:00Z"));
        w.app.stop().await;
    }
}

#[tokio::test]
async fn an_override_moves_the_on_call_person_until_it_is_deleted() {
    for backend in backends() {
        let w = World::new(backend).await;
        let (_, created) = w.post(1, "/api/v1/schedules", dst_schedule()).await;
        let id = created["id"].as_i64().unwrap();
        let inside = "2026-03-30T12:00:00Z";
        assert_eq!(oncall(&w, id, inside).await.0, Some(5));

        let (status, o) = w
            .post(
                1,
                &format!("/api/v1/schedules/{id}/overrides"),
                json!({"user_id": 3, "start": "2026-03-30T10:00:00Z", "end": "2026-03-30T14:00:00Z"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{backend:?}: {o}");
        assert_eq!(o["schedule_id"], id);
        assert_eq!(o["user_id"], 3);
        assert_eq!(t(o["start"].as_str().unwrap()), t("2026-03-30T10:00:00Z"));
        assert_eq!(t(o["end"].as_str().unwrap()), t("2026-03-30T14:00:00Z"));
        assert_eq!(o["created_by"], 1);
        assert!(o["created_at"].is_string());
        let oid = o["id"].as_i64().unwrap();

        assert_eq!(
            oncall(&w, id, inside).await,
            (Some(3), t("2026-03-30T14:00:00Z"))
        );
        // Just before it, the answer ends where the override starts.
        assert_eq!(
            oncall(&w, id, "2026-03-30T09:00:00Z").await,
            (Some(5), t("2026-03-30T10:00:00Z"))
        );
        // An override far from `at` still ends the answer: a lone participant's layer would
        // otherwise hold to the end of the horizon.
        let (_, listed) = w
            .get(
                2,
                &format!(
                    "/api/v1/schedules/{id}/overrides?from=2026-03-30T00:00:00Z&to=2026-03-31T00:00:00Z"
                ),
            )
            .await;
        assert_eq!(listed["overrides"].as_array().unwrap().len(), 1);
        assert_eq!(listed["overrides"][0]["id"], oid);

        let notices = w.app.store.schedule_notices(id, 10).await.unwrap();
        let mut summary: Vec<_> = notices
            .iter()
            .map(|n| (n.user_id, n.kind.as_str(), n.start_at, n.end_at))
            .collect();
        summary.sort();
        assert_eq!(
            summary,
            vec![
                (
                    3,
                    "on_call",
                    t("2026-03-30T10:00:00Z"),
                    t("2026-03-30T14:00:00Z")
                ),
                (
                    5,
                    "off_call",
                    t("2026-03-30T10:00:00Z"),
                    t("2026-03-30T14:00:00Z")
                ),
            ],
            "{backend:?}"
        );

        let (status, _) = w
            .call(
                1,
                reqwest::Method::DELETE,
                &format!("/api/v1/schedules/{id}/overrides/{oid}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(
            oncall(&w, id, inside).await,
            (Some(5), t("2026-03-30T22:00:00Z"))
        );
        assert_eq!(
            w.app.store.schedule_notices(id, 10).await.unwrap().len(),
            4,
            "removing it tells both people again"
        );
        let (status, body) = w
            .call(
                1,
                reqwest::Method::DELETE,
                &format!("/api/v1/schedules/{id}/overrides/{oid}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

        // A lone participant is on call to the horizon unless a distant override cuts it.
        let mut lone = dst_schedule();
        lone["name"] = json!("Lone");
        lone["layers"] = json!([dst_layers()[0].clone()]);
        lone["layers"][0]["participants"] = json!([4]);
        let (_, lone) = w.post(1, "/api/v1/schedules", lone).await;
        let lone_id = lone["id"].as_i64().unwrap();
        let (status, _) = w
            .post(
                1,
                &format!("/api/v1/schedules/{lone_id}/overrides"),
                json!({"user_id": 5, "start": "2026-10-01T00:00:00Z", "end": "2026-10-02T00:00:00Z"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(
            oncall(&w, lone_id, "2026-03-02T00:00:00Z").await,
            (Some(4), t("2026-10-01T00:00:00Z"))
        );
        let actions = w.app.audit_actions().await;
        assert!(actions.iter().any(|a| a == "override.create"));
        assert!(actions.iter().any(|a| a == "override.delete"));
        w.app.stop().await;
    }
}

#[tokio::test]
async fn roles_decide_who_may_change_schedules_and_overrides() {
    for backend in backends() {
        let w = World::new(backend).await;
        let (_, created) = w.post(1, "/api/v1/schedules", dst_schedule()).await;
        let id = created["id"].as_i64().unwrap();
        let viewer = 2;
        for path in [
            "/api/v1/schedules".to_owned(),
            format!("/api/v1/schedules/{id}"),
            format!("/api/v1/schedules/{id}/oncall"),
            format!("/api/v1/schedules/{id}/shifts"),
            format!("/api/v1/schedules/{id}/overrides"),
        ] {
            let (status, body) = w.get(viewer, &path).await;
            assert_eq!(status, StatusCode::OK, "{backend:?} {path}: {body}");
        }
        let override_body =
            json!({"user_id": 2, "start": "2026-03-30T10:00:00Z", "end": "2026-03-30T14:00:00Z"});
        for (method, path, body) in [
            (
                reqwest::Method::POST,
                "/api/v1/schedules".to_owned(),
                Some(dst_schedule()),
            ),
            (
                reqwest::Method::PUT,
                format!("/api/v1/schedules/{id}"),
                Some(dst_schedule()),
            ),
            (
                reqwest::Method::DELETE,
                format!("/api/v1/schedules/{id}"),
                None,
            ),
            (
                reqwest::Method::POST,
                format!("/api/v1/schedules/{id}/overrides"),
                Some(override_body.clone()),
            ),
        ] {
            let (status, body) = w.call(viewer, method.clone(), &path, body).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{backend:?} {method} {path}");
            assert_eq!(body["error"]["code"], "forbidden");
            assert!(body["error"]["message"].is_string());
        }
        // Responders may not edit schedules either.
        let (status, _) = w.post(3, "/api/v1/schedules", dst_schedule()).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        // Unauthenticated: 401.
        let res = w
            .http
            .get(w.app.url("/api/v1/schedules"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

        // A responder covers themself, but not someone else.
        let path = format!("/api/v1/schedules/{id}/overrides");
        let (status, mine) = w
            .post(3, &path, json!({"user_id": 3, "start": "2026-03-30T10:00:00Z", "end": "2026-03-30T14:00:00Z"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{mine}");
        let (status, body) = w
            .post(3, &path, json!({"user_id": 4, "start": "2026-03-30T10:00:00Z", "end": "2026-03-30T14:00:00Z"}))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["error"]["code"], "forbidden");
        // A manager's override for user 5; the responder may delete their own but not that.
        let (status, theirs) = w
            .post(1, &path, json!({"user_id": 5, "start": "2026-03-31T10:00:00Z", "end": "2026-03-31T14:00:00Z"}))
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let del = |oid: &Value| format!("{path}/{oid}");
        let (status, _) = w
            .call(3, reqwest::Method::DELETE, &del(&theirs["id"]), None)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = w
            .call(2, reqwest::Method::DELETE, &del(&mine["id"]), None)
            .await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "viewers cannot delete overrides"
        );
        let (status, _) = w
            .call(3, reqwest::Method::DELETE, &del(&mine["id"]), None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = w
            .call(1, reqwest::Method::DELETE, &del(&theirs["id"]), None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(w.schedule_count().await, 1);
        w.app.stop().await;
    }
}

#[tokio::test]
async fn bad_input_is_refused_with_the_field_named_and_nothing_saved() {
    for backend in backends() {
        let w = World::new(backend).await;
        let (_, created) = w.post(1, "/api/v1/schedules", dst_schedule()).await;
        let id = created["id"].as_i64().unwrap();
        let before = w.app.store.schedule(id).await.unwrap();

        let with = |edit: &dyn Fn(&mut Value)| {
            let mut body = dst_schedule();
            edit(&mut body);
            body
        };
        let bodies: Vec<(Value, &str, &str)> = vec![
            (
                with(&|b| b["time_zone"] = json!("Mars/Base")),
                "time_zone",
                "Mars/Base",
            ),
            (
                with(&|b| b["layers"][0]["handoff_time_zone"] = json!("Europe/Lodnon")),
                "layers[0].handoff_time_zone",
                "Europe/Lodnon",
            ),
            (
                with(&|b| b["layers"][1]["restrictions"][0]["start"] = json!("25:00")),
                "layers[1].restrictions[0].start",
                "hour 25",
            ),
            (
                with(&|b| b["layers"][1]["restrictions"][0]["time_zone"] = json!("Nowhere")),
                "layers[1].restrictions[0].time_zone",
                "Nowhere",
            ),
            (
                with(&|b| b["layers"][1]["restrictions"][0]["days"] = json!(["mon", "someday"])),
                "layers[1].restrictions[0].days",
                "someday",
            ),
            (
                with(&|b| b["layers"][1]["participants"] = json!([3, 6])),
                "layers[1].participants",
                "not a member",
            ),
            (with(&|b| b["team_id"] = json!(99)), "team_id", "no team 99"),
            (
                with(&|b| b["team_id"] = json!("one")),
                "team_id",
                "expected",
            ),
            (with(&|b| b["name"] = json!("  ")), "name", "required"),
            (with(&|b| b["layers"] = json!("x")), "layers", "sequence"),
            (
                with(&|b| b["layers"][0]["shift"]["count"] = json!(0)),
                "layers[0].shift.count",
                "at least 1",
            ),
            (
                with(&|b| b["layers"][0]["shift"]["count"] = json!(-1)),
                "layers[0].shift.count",
                "-1",
            ),
            (
                with(&|b| b["layers"][0]["shift"]["unit"] = json!("months")),
                "layers[0].shift.unit",
                "months",
            ),
            (
                with(&|b| b["layers"][0]["handoff"] = json!("next tuesday")),
                "layers[0].handoff",
                "local date-time",
            ),
            (
                with(&|b| b["layers"][0]["handoff"] = json!(20260301)),
                "layers[0].handoff",
                "string",
            ),
            (
                with(&|b| b["layers"][0]["participants"] = json!([])),
                "layers[0].participants",
                "no participants",
            ),
            (
                with(&|b| b["layers"][0]["colour"] = json!("red")),
                "layers[0].colour",
                "colour",
            ),
            (
                with(&|b| {
                    b["layers"][0].as_object_mut().unwrap().remove("handoff");
                }),
                "layers[0].handoff",
                "required",
            ),
            (json!({}), "name", "required"),
        ];
        for (body, field, words) in bodies {
            for (method, path) in [
                (reqwest::Method::POST, "/api/v1/schedules".to_owned()),
                (reqwest::Method::PUT, format!("/api/v1/schedules/{id}")),
            ] {
                let (status, answer) = w.call(1, method.clone(), &path, Some(body.clone())).await;
                assert_eq!(
                    status,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "{backend:?} {method} {field}: {answer}"
                );
                assert_eq!(answer["error"]["code"], "validation_failed", "{answer}");
                let message = answer["error"]["fields"][field]
                    .as_str()
                    .unwrap_or_else(|| panic!("{field} named: {answer}"));
                assert!(
                    message.contains(words),
                    "{field}: {message:?} should say {words:?}"
                );
                assert!(answer["error"]["message"].as_str().unwrap().contains(field));
            }
        }
        // An empty object names every missing field at once.
        let (_, answer) = w.post(1, "/api/v1/schedules", json!({})).await;
        let fields = answer["error"]["fields"].as_object().unwrap();
        for field in ["name", "time_zone", "team_id", "layers"] {
            assert!(fields.contains_key(field), "{field}: {answer}");
        }

        // Not JSON at all, or not an object.
        for (raw, status, code) in [
            ("{\"name\": ", StatusCode::BAD_REQUEST, "invalid_json"),
            ("not json", StatusCode::BAD_REQUEST, "invalid_json"),
            ("", StatusCode::BAD_REQUEST, "invalid_json"),
            ("[1, 2]", StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
            (
                "[\"x\", \"UTC\", 1, []]",
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
            ),
            (
                "\"schedule\"",
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
            ),
            ("{} {}", StatusCode::BAD_REQUEST, "invalid_json"),
        ] {
            let (got, answer) = w.post_raw(1, "/api/v1/schedules", raw).await;
            assert_eq!(got, status, "{raw:?}: {answer}");
            assert_eq!(answer["error"]["code"], code, "{raw:?}");
        }
        let res = w
            .http
            .post(w.app.url("/api/v1/schedules"))
            .bearer_auth(&w.tokens[1])
            .header("content-type", "text/plain")
            .body(dst_schedule().to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

        // Overrides.
        let path = format!("/api/v1/schedules/{id}/overrides");
        for (body, field, words) in [
            (
                json!({"user_id": 3, "start": "2026-03-30T14:00:00Z", "end": "2026-03-30T10:00:00Z"}),
                "end",
                "after the start",
            ),
            (
                json!({"user_id": 3, "start": "2026-02-01T10:00:00Z", "end": "2026-02-02T10:00:00Z"}),
                "end",
                "past",
            ),
            (
                json!({"user_id": 3, "start": "2026-03-30T10:00:00Z", "end": "2027-06-30T10:00:00Z"}),
                "end",
                "at most",
            ),
            (
                json!({"user_id": 77, "start": "2026-03-30T10:00:00Z", "end": "2026-03-30T14:00:00Z"}),
                "user_id",
                "no user 77",
            ),
            (
                json!({"user_id": 3, "start": "tomorrow", "end": "2026-03-30T14:00:00Z"}),
                "start",
                "RFC 3339",
            ),
            (
                json!({"user_id": "ana", "start": "2026-03-30T10:00:00Z", "end": "2026-03-30T14:00:00Z"}),
                "user_id",
                "expected",
            ),
            (
                json!({"start": "2026-03-30T10:00:00Z", "end": "2026-03-30T14:00:00Z"}),
                "user_id",
                "required",
            ),
        ] {
            let (status, answer) = w.post(1, &path, body).await;
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{field}: {answer}"
            );
            let message = answer["error"]["fields"][field]
                .as_str()
                .unwrap_or_else(|| panic!("{field} named: {answer}"));
            assert!(
                message.contains(words),
                "{field}: {message:?} should say {words:?}"
            );
        }
        let (status, _) = w.post_raw(1, &path, "[]").await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

        // Query strings and ids.
        for (query, status, words) in [
            ("oncall?at=yesterday", StatusCode::BAD_REQUEST, "at"),
            (
                "oncall?at=2026-13-01T00:00:00Z",
                StatusCode::BAD_REQUEST,
                "at",
            ),
            (
                "oncall?at=1700-01-01T00:00:00Z",
                StatusCode::UNPROCESSABLE_ENTITY,
                "at",
            ),
            (
                "shifts?from=2026-03-10T00:00:00Z&to=2026-03-01T00:00:00Z",
                StatusCode::UNPROCESSABLE_ENTITY,
                "to",
            ),
            (
                "shifts?from=2026-03-10T00:00:00Z&to=2026-03-10T00:00:00Z",
                StatusCode::UNPROCESSABLE_ENTITY,
                "to",
            ),
            (
                "shifts?from=2026-01-01T00:00:00Z&to=2027-06-01T00:00:00Z",
                StatusCode::UNPROCESSABLE_ENTITY,
                "366",
            ),
            ("shifts?from=soon", StatusCode::BAD_REQUEST, "from"),
            ("overrides?to=later", StatusCode::BAD_REQUEST, "to"),
        ] {
            let (got, answer) = w.get(2, &format!("/api/v1/schedules/{id}/{query}")).await;
            assert_eq!(got, status, "{query}: {answer}");
            let text = answer["error"].to_string();
            assert!(text.contains(words), "{query}: {answer}");
        }
        for path in [
            "/api/v1/schedules/abc".to_owned(),
            "/api/v1/schedules/-1".to_owned(),
            "/api/v1/schedules/99999999999999999999999".to_owned(),
            "/api/v1/schedules/abc/oncall".to_owned(),
            "/api/v1/schedules/abc/shifts".to_owned(),
            format!("/api/v1/schedules/{id}/overrides/abc"),
            "/api/v1/schedules/999".to_owned(),
            "/api/v1/schedules/999/oncall".to_owned(),
            "/api/v1/schedules/999/shifts".to_owned(),
            "/api/v1/schedules/999/overrides".to_owned(),
            "/api/v1/schedules?limit=0".to_owned(),
            "/api/v1/schedules?cursor=x".to_owned(),
        ] {
            let (status, answer) = w.get(2, &path).await;
            assert!(status.is_client_error(), "{path}: {status}");
            assert!(answer["error"]["code"].is_string(), "{path}: {answer}");
        }
        for (method, path) in [
            (reqwest::Method::DELETE, "/api/v1/schedules/abc".to_owned()),
            (
                reqwest::Method::DELETE,
                format!("/api/v1/schedules/{id}/overrides/x"),
            ),
            (
                reqwest::Method::DELETE,
                "/api/v1/schedules/999/overrides/1".to_owned(),
            ),
        ] {
            let (status, answer) = w.call(1, method, &path, None).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {answer}");
            assert_eq!(answer["error"]["code"], "not_found");
        }
        let (status, _) = w.post(1, "/api/v1/schedules/999/overrides",
            json!({"user_id": 3, "start": "2026-03-30T10:00:00Z", "end": "2026-03-30T14:00:00Z"})).await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // Nothing was saved.
        assert_eq!(w.schedule_count().await, 1);
        assert_eq!(w.app.store.schedule(id).await.unwrap(), before);
        assert!(
            w.app
                .store
                .overrides_between(id, t("1900-01-01T00:00:00Z"), t("2199-01-01T00:00:00Z"))
                .await
                .unwrap()
                .is_empty()
        );
        w.app.stop().await;
    }
}

#[tokio::test]
async fn a_stale_version_is_a_conflict_and_changes_nothing() {
    for backend in backends() {
        let w = World::new(backend).await;
        let (_, created) = w.post(1, "/api/v1/schedules", dst_schedule()).await;
        let id = created["id"].as_i64().unwrap();
        let path = format!("/api/v1/schedules/{id}");

        let mut first = dst_schedule();
        first["name"] = json!("Renamed once");
        first["version"] = json!(1);
        let (status, saved) = w.call(1, reqwest::Method::PUT, &path, Some(first)).await;
        assert_eq!(status, StatusCode::OK, "{saved}");
        assert_eq!(saved["version"], 2);

        let mut stale = dst_schedule();
        stale["name"] = json!("Renamed from an old copy");
        stale["version"] = json!(1);
        let (status, answer) = w.call(1, reqwest::Method::PUT, &path, Some(stale)).await;
        assert_eq!(status, StatusCode::CONFLICT, "{backend:?}: {answer}");
        assert_eq!(answer["error"]["code"], "conflict");
        let (_, now) = w.get(2, &path).await;
        assert_eq!(now, saved, "nothing changed");

        // Without a version the last writer wins.
        let mut blind = dst_schedule();
        blind["name"] = json!("Renamed blindly");
        let (status, saved) = w.call(1, reqwest::Method::PUT, &path, Some(blind)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(saved["version"], 3);

        // A missing schedule is 404, not a conflict.
        let (status, _) = w
            .call(
                1,
                reqwest::Method::PUT,
                "/api/v1/schedules/999",
                Some(dst_schedule()),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        w.app.stop().await;
    }
}
