//! End-to-end: schedules through the browser forms, on SQLite and PostgreSQL — the
//! follow-the-sun builder, the layer editor's refusals, overrides and who may do what.

mod common;

use chrono::{Duration, Utc, Weekday};
use common::{TestApp, backends};
use heliograph_domain::{Role, TeamName};
use heliograph_scheduler::Source;
use heliograph_store::Audit;
use reqwest::StatusCode;

/// A form's fields in order.
type Form<'a> = Vec<(&'a str, &'a str)>;

async fn post_form(
    app: &TestApp,
    client: &reqwest::Client,
    path: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let csrf = app.csrf(client, "/schedules").await;
    let mut all = vec![("csrf", csrf.as_str())];
    all.extend_from_slice(fields);
    client.post(app.url(path)).form(&all).send().await.unwrap()
}

/// A team of six (two per region) plus one outsider; returns (team id, member ids, outsider).
async fn team_of_six(app: &TestApp) -> (i64, Vec<i64>, i64) {
    let mut ids = Vec::new();
    for name in ["sg1", "sg2", "ldn1", "ldn2", "ny1", "ny2"] {
        let u = app
            .user(
                &format!("{name}@example.com"),
                Role::Responder,
                "a long password here",
            )
            .await;
        ids.push(u.id);
    }
    let outsider = app
        .user("out@example.com", Role::Responder, "a long password here")
        .await;
    let team = app
        .store
        .create_team(
            &TeamName::parse("AI platform").unwrap(),
            &ids,
            &Audit::cli(),
        )
        .await
        .unwrap();
    (team.team.id, ids, outsider.id)
}

fn sun_fields<'a>(team: &'a str, ids: &'a [String], action: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("team_id", team),
        ("name", "AI platform primary"),
        ("time_zone", "UTC"),
        ("count", "1"),
        ("unit", "weeks"),
        ("handoff_date", "2026-12-07"),
        ("region-0-name", "APAC"),
        ("region-0-zone", "Asia/Singapore"),
        ("region-0-start", "08:00"),
        ("region-0-end", "16:00"),
        ("region-0-people", ids[0].as_str()),
        ("region-0-people", ids[1].as_str()),
        ("region-1-name", "EMEA"),
        ("region-1-zone", "Europe/London"),
        ("region-1-start", "08:00"),
        ("region-1-end", "16:00"),
        ("region-1-people", ids[2].as_str()),
        ("region-1-people", ids[3].as_str()),
        ("region-2-name", "AMER"),
        ("region-2-zone", "America/New_York"),
        ("region-2-start", "11:00"),
        ("region-2-end", "19:00"),
        ("region-2-people", ids[4].as_str()),
        ("region-2-people", ids[5].as_str()),
        ("action", action),
    ]
}

#[tokio::test]
async fn a_manager_builds_a_three_region_follow_the_sun_schedule() {
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        app.user("max@example.com", Role::Manager, "max's long password")
            .await;
        let (team_id, ids, _) = team_of_six(&app).await;
        let browser = app.browser();
        app.sign_in(&browser, "max@example.com", "max's long password")
            .await;
        let page = browser
            .get(app.url(&format!("/schedules/new/follow-the-sun?team_id={team_id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        assert!(page.text().await.unwrap().contains("sg1"));

        let team = team_id.to_string();
        let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
        // Preview: the coverage is shown and nothing is saved. In winter the three regions
        // tile the day; in July London and New York are an hour earlier in UTC.
        let preview = post_form(
            &app,
            &browser,
            "/schedules/new/follow-the-sun",
            &sun_fields(&team, &ids, "preview"),
        )
        .await;
        assert_eq!(preview.status(), StatusCode::OK, "{backend:?}");
        let html = preview.text().await.unwrap();
        assert!(
            html.contains("The regions cover all 24 hours with no gap and no overlap."),
            "{html}"
        );
        assert!(html.contains("Every day 23:00–24:00 UTC"), "{html}");
        assert!(
            html.contains("APAC and EMEA overlap: Every day 07:00–08:00 UTC"),
            "{html}"
        );
        assert!(app.store.schedules().await.unwrap().is_empty());

        let created = post_form(
            &app,
            &browser,
            "/schedules/new/follow-the-sun",
            &sun_fields(&team, &ids, "create"),
        )
        .await;
        assert_eq!(created.status(), StatusCode::SEE_OTHER, "{backend:?}");
        let location = created.headers()["location"].to_str().unwrap().to_owned();
        let schedules = app.store.schedules().await.unwrap();
        assert_eq!(schedules.len(), 1);
        let s = &schedules[0];
        assert_eq!(location, format!("/schedules/{}", s.id));
        assert_eq!(s.name, "AI platform primary");
        let names: Vec<_> = s.layers.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["APAC", "EMEA", "AMER"]);
        let emea = &s.layers[1];
        assert_eq!(emea.rotation.handoff_time_zone, chrono_tz::Europe::London);
        assert_eq!(emea.rotation.handoff.to_string(), "2026-12-07 08:00:00");
        assert_eq!(emea.restrictions.len(), 1);
        assert_eq!(emea.restrictions[0].days.len(), 7);
        assert_eq!(emea.restrictions[0].start.to_string(), "08:00");
        assert_eq!(emea.restrictions[0].end.to_string(), "16:00");
        assert_eq!(
            emea.rotation.participants,
            vec![ids[2].parse::<i64>().unwrap(), ids[3].parse().unwrap()]
        );
        assert!(
            app.audit_actions()
                .await
                .contains(&"schedule.create".to_owned())
        );

        // The schedule page renders the timeline on 2026-12-08 in the schedule's zone:
        // at 09:00 UTC London's first person (ldn1) is on call.
        let page = browser
            .get(app.url(&format!(
                "/schedules/{}?start=2026-12-08&zone=schedule",
                s.id
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let html = page.text().await.unwrap();
        assert!(html.contains("<svg class=\"timeline-svg\""), "{html}");
        assert!(
            html.contains("ldn1: Tue 8 Dec 08:00 – Tue 8 Dec 16:00 (UTC)"),
            "{html}"
        );
        assert!(html.contains("No gaps in this period."), "{html}");
        app.stop().await;
    }
}

#[tokio::test]
async fn the_layer_editor_refuses_bad_input_keeps_it_and_saves_nothing() {
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        app.user("max@example.com", Role::Manager, "max's long password")
            .await;
        let (team_id, ids, outsider) = team_of_six(&app).await;
        let browser = app.browser();
        app.sign_in(&browser, "max@example.com", "max's long password")
            .await;
        let r = post_form(
            &app,
            &browser,
            "/schedules",
            &[
                ("name", "Vector DB"),
                ("team_id", &team_id.to_string()),
                ("time_zone", "Europe/London"),
            ],
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let id = app.store.schedules().await.unwrap()[0].id;
        let before = app.store.schedule(id).await.unwrap();
        let member = ids[0].to_string();
        let stranger = outsider.to_string();
        let good: Vec<(&str, &str)> = vec![
            ("version", "1"),
            ("name", "Primary"),
            ("participant", member.as_str()),
            ("count", "1"),
            ("unit", "weeks"),
            ("handoff", "2026-12-07T09:00"),
            ("handoff_zone", "Europe/London"),
            ("window-0-days", "mon"),
            ("window-0-start", "09:00"),
            ("window-0-end", "17:00"),
            ("window-0-zone", "Europe/London"),
        ];
        let with = |key: &'static str, value: &'static str| {
            let mut f = good.clone();
            for pair in &mut f {
                if pair.0 == key {
                    pair.1 = value;
                }
            }
            f
        };
        let mut outsider_form = good.clone();
        outsider_form.push(("participant", stranger.as_str()));
        let cases: Vec<(Form, &str, &str)> = vec![
            (with("window-0-end", "25:00"), "has hour 25", "25:00"),
            (
                with("handoff_zone", "Mars/Olympus"),
                "is not an IANA time zone",
                "Mars/Olympus",
            ),
            (
                with("window-0-zone", "Nowhere/Land"),
                "is not an IANA time zone",
                "Nowhere/Land",
            ),
            (with("count", "0"), "at least 1", "Primary"),
            (
                with("unit", "fortnights"),
                "Choose hours, days or weeks",
                "Primary",
            ),
            (
                with("handoff", "next tuesday"),
                "Enter the first handoff",
                "next tuesday",
            ),
            (with("window-0-start", "9am"), "is not a time of day", "9am"),
            (
                with("window-0-days", "funday"),
                "Unknown weekday",
                "Primary",
            ),
            (
                with("window-0-start", "24:00"),
                "cannot start at 24:00",
                "24:00",
            ),
            (with("window-0-end", "09:00"), "would be empty", "Primary"),
            (outsider_form, "Pick participants from the team", "Primary"),
            (
                with("name", "  "),
                "Layer name is required",
                "Europe/London",
            ),
        ];
        for (fields, message, kept) in cases {
            let r = post_form(&app, &browser, &format!("/schedules/{id}/layers"), &fields).await;
            assert_eq!(
                r.status(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "{backend:?} {message}"
            );
            let html = r.text().await.unwrap();
            assert!(html.contains(message), "{message}: {html}");
            assert!(html.contains(kept), "{kept} kept: {html}");
            assert!(html.contains("field-error"), "{html}");
        }
        assert_eq!(
            app.store.schedule(id).await.unwrap(),
            before,
            "nothing saved"
        );

        // The good form saves; the same (now stale) version is refused with a message.
        let r = post_form(&app, &browser, &format!("/schedules/{id}/layers"), &good).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let saved = app.store.schedule(id).await.unwrap();
        assert_eq!(saved.layers.len(), 1);
        assert_eq!(saved.layers[0].restrictions[0].days, vec![Weekday::Mon]);
        let r = post_form(&app, &browser, &format!("/schedules/{id}/layers"), &good).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.text().await.unwrap().contains("changed by someone else"));
        assert_eq!(app.store.schedule(id).await.unwrap(), saved);

        // Settings refuse an unknown zone and keep the name typed.
        let r = post_form(
            &app,
            &browser,
            &format!("/schedules/{id}/edit"),
            &[
                ("name", "Vector DB renamed"),
                ("team_id", &team_id.to_string()),
                ("time_zone", "Europe/Lundon"),
                ("version", "2"),
            ],
        )
        .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = r.text().await.unwrap();
        assert!(html.contains("Vector DB renamed") && html.contains("is not an IANA time zone"));
        assert_eq!(app.store.schedule(id).await.unwrap(), saved);
        app.stop().await;
    }
}

#[tokio::test]
async fn overrides_through_the_form_and_who_may_do_what() {
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        app.user("max@example.com", Role::Manager, "max's long password")
            .await;
        app.user("vic@example.com", Role::Viewer, "vic's long password")
            .await;
        let (team_id, ids, _) = team_of_six(&app).await;
        let browser = app.browser();
        app.sign_in(&browser, "max@example.com", "max's long password")
            .await;
        post_form(
            &app,
            &browser,
            "/schedules",
            &[
                ("name", "Feature store"),
                ("team_id", &team_id.to_string()),
                ("time_zone", "UTC"),
            ],
        )
        .await;
        let id = app.store.schedules().await.unwrap()[0].id;
        let (a, b) = (ids[0].to_string(), ids[1].to_string());
        let r = post_form(
            &app,
            &browser,
            &format!("/schedules/{id}/layers"),
            &[
                ("version", "1"),
                ("name", "Primary"),
                ("participant", &a),
                ("participant", &b),
                ("count", "1"),
                ("unit", "days"),
                ("handoff", "2026-01-01T00:00"),
                ("handoff_zone", "UTC"),
            ],
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);

        // A responder not on call now covers the next hours themself through the form.
        let now = Utc::now();
        let before = heliograph_web::schedules::load(&app.store, id, now, now)
            .await
            .unwrap();
        let on_now = before.schedule.on_call_at(now).participant;
        let (cover, cover_name, other) = if on_now == Some(ids[0]) {
            (ids[1], "sg2", ids[0])
        } else {
            (ids[0], "sg1", ids[1])
        };
        let (a, b) = (other.to_string(), cover.to_string());
        let responder = app.browser();
        app.sign_in(
            &responder,
            &format!("{cover_name}@example.com"),
            "a long password here",
        )
        .await;
        let form = responder
            .get(app.url(&format!("/schedules/{id}/overrides/new")))
            .send()
            .await
            .unwrap();
        assert_eq!(form.status(), StatusCode::OK);
        let start = (now - Duration::hours(1)).with_timezone(&chrono_tz::Europe::London);
        let end = (now + Duration::hours(3)).with_timezone(&chrono_tz::Europe::London);
        let (s, e) = (
            start.format("%Y-%m-%dT%H:%M").to_string(),
            end.format("%Y-%m-%dT%H:%M").to_string(),
        );
        // Someone else: refused.
        let r = post_form(
            &app,
            &responder,
            &format!("/schedules/{id}/overrides"),
            &[
                ("user_id", &a),
                ("start", &s),
                ("end", &e),
                ("time_zone", "Europe/London"),
            ],
        )
        .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        // End before start: refused beside the field, input kept.
        let r = post_form(
            &app,
            &responder,
            &format!("/schedules/{id}/overrides"),
            &[
                ("user_id", &b),
                ("start", &e),
                ("end", &s),
                ("time_zone", "Europe/London"),
            ],
        )
        .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = r.text().await.unwrap();
        assert!(html.contains("The end must be after the start") && html.contains(&e));
        assert!(
            app.store
                .overrides_between(id, now - Duration::days(1), now + Duration::days(1))
                .await
                .unwrap()
                .is_empty()
        );
        let r = post_form(
            &app,
            &responder,
            &format!("/schedules/{id}/overrides"),
            &[
                ("user_id", &b),
                ("start", &s),
                ("end", &e),
                ("time_zone", "Europe/London"),
            ],
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{backend:?}");
        let overrides = app
            .store
            .overrides_between(id, now - Duration::days(1), now + Duration::days(1))
            .await
            .unwrap();
        assert_eq!(overrides.len(), 1);
        assert_eq!(overrides[0].user_id, cover);
        // The final schedule now has sg2 on call, from the override.
        let loaded = heliograph_web::schedules::load(&app.store, id, now, now)
            .await
            .unwrap();
        let on = loaded.schedule.on_call_at(now);
        assert_eq!(
            (on.participant, on.source),
            (Some(cover), Source::Override(overrides[0].id))
        );
        let oncall = responder
            .get(app.url("/oncall"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            oncall.contains(&format!("<strong>{cover_name}</strong>")),
            "{oncall}"
        );
        assert!(
            oncall.contains("On call now</strong> · <a href=\"/schedules/"),
            "your shift first: {oncall}"
        );
        // Whoever it moved off call was recorded for the engine to tell.
        let notices = app.store.schedule_notices(id, 10).await.unwrap();
        assert!(
            notices
                .iter()
                .any(|n| n.user_id == cover && n.kind == "on_call"),
            "{notices:?}"
        );
        assert!(
            notices
                .iter()
                .any(|n| n.user_id == other && n.kind == "off_call"),
            "{notices:?}"
        );

        // A viewer reads everything and changes nothing.
        let viewer = app.browser();
        app.sign_in(&viewer, "vic@example.com", "vic's long password")
            .await;
        for path in [
            "/schedules",
            &format!("/schedules/{id}"),
            "/oncall",
            &format!("/schedules/{id}?start=2026-03-29"),
        ] {
            let r = viewer.get(app.url(path)).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{path}");
        }
        for path in [
            "/schedules/new",
            &format!("/schedules/{id}/edit"),
            &format!("/schedules/{id}/layers/new"),
            &format!("/schedules/{id}/overrides/new"),
            "/schedules/new/follow-the-sun",
        ] {
            let r = viewer.get(app.url(path)).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
        }
        let vic = ids[0].to_string();
        for (path, fields) in [
            (format!("/schedules/{id}/layers"), vec![("name", "x")]),
            (format!("/schedules/{id}/delete"), vec![]),
            (
                format!("/schedules/{id}/overrides"),
                vec![
                    ("user_id", vic.as_str()),
                    ("start", s.as_str()),
                    ("end", e.as_str()),
                    ("time_zone", "UTC"),
                ],
            ),
            (
                format!("/schedules/{id}/overrides/{}/delete", overrides[0].id),
                vec![],
            ),
            (
                format!("/schedules/{id}/layers/1/delete"),
                vec![("version", "2")],
            ),
        ] {
            let r = post_form(&app, &viewer, &path, &fields).await;
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
        }
        assert_eq!(app.store.schedule(id).await.unwrap().layers.len(), 1);
        // Bad query strings are a 400 with a message, not a 500.
        let r = viewer
            .get(app.url(&format!("/schedules/{id}?start=yesterday")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(r.text().await.unwrap().contains("is not a date"));
        let r = viewer
            .get(app.url("/oncall?team_id=abc"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);

        // The responder removes their own override; the rotation is back.
        let r = post_form(
            &app,
            &responder,
            &format!("/schedules/{id}/overrides/{}/delete", overrides[0].id),
            &[],
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let loaded = heliograph_web::schedules::load(&app.store, id, now, now)
            .await
            .unwrap();
        assert!(matches!(
            loaded.schedule.on_call_at(now).source,
            Source::Layer(0)
        ));
        app.stop().await;
    }
}
