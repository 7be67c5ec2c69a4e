//! End-to-end: "My shifts" and secret calendar feeds, on SQLite and PostgreSQL. Feeds are
//! created through the page's form, fetched without a session, and parsed with an independent
//! iCalendar parser (the `ical` crate); their events are checked against the scheduler and
//! against times worked out by hand across the March 2027 DST change in Europe/London.

mod common;

use std::collections::BTreeSet;
use std::io::BufReader;
use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc, Weekday};
use common::{TestApp, backends};
use heliograph_domain::{FixedClock, Role, TeamName, TimeZone};
use heliograph_scheduler::{Layer, Restriction, Rotation, ShiftLength, ShiftUnit};
use heliograph_store::testdb::TestDatabase;
use heliograph_store::users::UserPatch;
use heliograph_store::{Audit, schedules::ScheduleFields};
use reqwest::StatusCode;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// Daily shifts handing off at 09:00 London time, optionally only Mon–Fri 09:00–17:00.
fn daily(name: &str, participants: Vec<i64>, office_hours: bool) -> Layer {
    let london = heliograph_scheduler::parse_time_zone("Europe/London").unwrap();
    Layer {
        name: name.into(),
        rotation: Rotation {
            participants,
            shift: ShiftLength {
                unit: ShiftUnit::Days,
                count: 1,
            },
            handoff: "2027-01-04T09:00:00".parse().unwrap(),
            handoff_time_zone: london,
        },
        restrictions: if office_hours {
            vec![Restriction {
                days: vec![
                    Weekday::Mon,
                    Weekday::Tue,
                    Weekday::Wed,
                    Weekday::Thu,
                    Weekday::Fri,
                ],
                start: "09:00".parse().unwrap(),
                end: "17:00".parse().unwrap(),
                time_zone: london,
            }]
        } else {
            vec![]
        },
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Event {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    summary: String,
    uid: String,
}

/// Parses a feed with the `ical` crate: exactly one calendar, every event with a UTC start and end.
fn parse(text: &str) -> (String, Vec<Event>) {
    let mut parser = ical::IcalParser::new(BufReader::new(text.as_bytes()));
    let cal = parser.next().expect("one calendar").expect("parses");
    assert!(parser.next().is_none(), "one calendar only");
    let prop = |props: &[ical::property::Property], name: &str| {
        props
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| p.value.clone())
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    let when = |v: String| {
        NaiveDateTime::parse_from_str(&v, "%Y%m%dT%H%M%SZ")
            .expect("UTC DATE-TIME")
            .and_utc()
    };
    assert_eq!(prop(&cal.properties, "VERSION"), "2.0");
    let mut events: Vec<Event> = cal
        .events
        .iter()
        .map(|e| Event {
            start: when(prop(&e.properties, "DTSTART")),
            end: when(prop(&e.properties, "DTEND")),
            summary: prop(&e.properties, "SUMMARY")
                .replace("\\,", ",")
                .replace("\\;", ";"),
            uid: prop(&e.properties, "UID"),
        })
        .collect();
    events.sort();
    let uids: BTreeSet<&str> = events.iter().map(|e| e.uid.as_str()).collect();
    assert_eq!(uids.len(), events.len(), "UIDs are unique");
    (prop(&cal.properties, "X-WR-CALNAME"), events)
}

fn spans(events: &[Event]) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    events.iter().map(|e| (e.start, e.end)).collect()
}

fn has(events: &[Event], start: &str, end: &str, summary: &str) -> bool {
    events
        .iter()
        .any(|e| e.start == t(start) && e.end == t(end) && e.summary == summary)
}

/// Posts a form of /my/shifts with that page's CSRF token.
async fn post(
    app: &TestApp,
    client: &reqwest::Client,
    path: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let csrf = app.csrf(client, "/my/shifts").await;
    let mut all = vec![("csrf", csrf.as_str())];
    all.extend_from_slice(fields);
    client.post(app.url(path)).form(&all).send().await.unwrap()
}

/// Creates a feed through the page's form; returns its URL as the page shows it, once.
async fn create_feed(app: &TestApp, client: &reqwest::Client, schedule: &str) -> String {
    let r = post(app, client, "/my/shifts/feeds", &[("schedule", schedule)]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    let marker = "id=\"feed-url\" class=\"mono\" readonly value=\"";
    let at = html.find(marker).expect("the URL is shown") + marker.len();
    let url = html[at..at + html[at..].find('"').unwrap()].to_owned();
    assert!(
        url.starts_with(&app.url("/calendar/")) && url.ends_with(".ics"),
        "{url}"
    );
    let webcal = url.replacen("http://", "webcal://", 1);
    assert!(html.contains(&webcal), "a webcal:// variant is shown");
    for words in [
        "From URL",
        "New Calendar Subscription",
        "Subscribe from web",
        "Anyone with this URL",
    ] {
        assert!(html.contains(words), "{words}");
    }
    url
}

/// Fetches a feed without any session; checks the headers of a found feed.
async fn fetch(url: &str) -> (StatusCode, String) {
    let r = reqwest::get(url).await.unwrap();
    let status = r.status();
    if status == StatusCode::OK {
        let header = |name: &str| r.headers().get(name).unwrap().to_str().unwrap().to_owned();
        assert_eq!(header("content-type"), "text/calendar; charset=utf-8");
        assert_eq!(header("cache-control"), "private, max-age=300");
    }
    (status, r.text().await.unwrap())
}

async fn page(client: &reqwest::Client, app: &TestApp, path: &str) -> (StatusCode, String) {
    let r = client.get(app.url(path)).send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

#[tokio::test]
async fn shifts_page_and_calendar_feeds() {
    for backend in backends() {
        // Monday 22 March 2027, 06:00 GMT; London moves to BST on Sunday the 28th.
        let now = t("2027-03-22T06:00:00Z");
        let clock = Arc::new(FixedClock::new(now));
        let db = Arc::new(TestDatabase::fresh(backend).await);
        let app = TestApp::spawn_on(backend, db, clock.clone()).await;
        let ana = app
            .user("ana@example.com", Role::Responder, "ana's long password")
            .await;
        let ben = app
            .user("ben@example.com", Role::Responder, "ben's long password")
            .await;
        let cai = app
            .user("cai@example.com", Role::Responder, "cai's long password")
            .await;
        let team = app
            .store
            .create_team(
                &TeamName::parse("AI platform").unwrap(),
                &[ana.id, ben.id, cai.id],
                &Audit::cli(),
            )
            .await
            .unwrap();
        let schedule = |name: &str, layer: Layer| ScheduleFields {
            name: name.into(),
            time_zone: TimeZone::parse("Europe/London").unwrap(),
            team_id: team.team.id,
            layers: vec![layer],
        };
        let desk = app
            .store
            .create_schedule(
                &schedule("Weekday desk", daily("Office", vec![ana.id], true)),
                &Audit::cli(),
            )
            .await
            .unwrap();
        let primary = app
            .store
            .create_schedule(
                &schedule(
                    "Primary",
                    daily("Around the clock", vec![ben.id, cai.id], false),
                ),
                &Audit::cli(),
            )
            .await
            .unwrap();

        // Signed out: the page asks for a sign-in.
        let anonymous = app.browser();
        let r = anonymous.get(app.url("/my/shifts")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{backend:?}");

        let browser = app.browser();
        app.sign_in(&browser, "ana@example.com", "ana's long password")
            .await;
        let (status, html) = page(&browser, &app, "/my/shifts").await;
        assert_eq!(status, StatusCode::OK, "{backend:?}");
        // Ten weekdays of 09:00–17:00 London time in the next 14 days, either side of the change.
        assert!(
            html.contains("<strong class=\"total-hours\">80 h</strong>"),
            "{backend:?}: {html}"
        );
        assert!(html.contains("2027-03-22 09:00 GMT") && html.contains("2027-03-22 17:00 GMT"));
        assert!(html.contains("2027-03-29 09:00 BST") && html.contains("2027-03-29 17:00 BST"));
        assert!(html.contains(&format!("href=\"/schedules/{}\"", desk.id)));
        assert!(html.contains("You have no calendar feeds."));

        // Feeds, made through the form.
        let personal_url = create_feed(&app, &browser, "").await;
        let primary_url = create_feed(&app, &browser, &primary.id.to_string()).await;
        let (from, to) = (now - TimeDelta::days(30), now + TimeDelta::days(180));

        let (status, body) = fetch(&personal_url).await;
        assert_eq!(status, StatusCode::OK, "{backend:?}");
        let (name, events) = parse(&body);
        assert_eq!(name, "ana: on-call shifts");
        let loaded = heliograph_web::schedules::load(&app.store, desk.id, from, to)
            .await
            .unwrap();
        let expected: Vec<_> = loaded
            .schedule
            .calendar_shifts(from, to)
            .into_iter()
            .filter(|s| s.participant == Some(ana.id))
            .map(|s| (s.start, s.end))
            .collect();
        assert_eq!(spans(&events), expected, "{backend:?}");
        // 20 February 2027 is a Saturday: the first shift is Monday the 22nd, the last one is
        // Friday 17 September (the feed ends on Saturday the 18th, 06:00).
        assert_eq!(events.len(), 150);
        let desk_summary = "On call: ana (Weekday desk)";
        assert!(has(
            &events,
            "2027-02-22T09:00:00Z",
            "2027-02-22T17:00:00Z",
            desk_summary
        ));
        assert!(has(
            &events,
            "2027-03-26T09:00:00Z",
            "2027-03-26T17:00:00Z",
            desk_summary
        ));
        assert!(has(
            &events,
            "2027-03-29T08:00:00Z",
            "2027-03-29T16:00:00Z",
            desk_summary
        ));
        assert!(has(
            &events,
            "2027-09-17T08:00:00Z",
            "2027-09-17T16:00:00Z",
            desk_summary
        ));

        let (status, body) = fetch(&primary_url).await;
        assert_eq!(status, StatusCode::OK);
        let (name, before) = parse(&body);
        assert_eq!(name, "Primary");
        let loaded = heliograph_web::schedules::load(&app.store, primary.id, from, to)
            .await
            .unwrap();
        let expected: Vec<_> = loaded
            .schedule
            .calendar_shifts(from, to)
            .into_iter()
            .filter(|s| s.participant.is_some())
            .map(|s| (s.start, s.end))
            .collect();
        assert_eq!(spans(&before), expected);
        // Saturday 27 March is ben's day (day 82 from the handoff), Sunday the 28th cai's; the
        // handoff stays at 09:00 local, so ben's shift is 23 hours long.
        assert!(has(
            &before,
            "2027-03-27T09:00:00Z",
            "2027-03-28T08:00:00Z",
            "On call: ben (Primary)"
        ));
        assert!(has(
            &before,
            "2027-03-28T08:00:00Z",
            "2027-03-29T08:00:00Z",
            "On call: cai (Primary)"
        ));

        // Ana covers Sunday 28 March, midnight to midnight London time: 23 hours.
        let (o_from, o_to) = (t("2027-03-28T00:00:00Z"), t("2027-03-28T23:00:00Z"));
        let loaded = heliograph_web::schedules::load(&app.store, primary.id, o_from, o_to)
            .await
            .unwrap();
        heliograph_web::schedules::add_override(
            &app.store,
            &loaded,
            ana.id,
            o_from,
            o_to,
            &Audit::cli(),
        )
        .await
        .unwrap();
        let (_, after) = parse(&fetch(&primary_url).await.1);
        assert_eq!(
            after.len(),
            before.len() + 1,
            "one event cut in two, one more for ana"
        );
        assert!(has(
            &after,
            "2027-03-27T09:00:00Z",
            "2027-03-28T00:00:00Z",
            "On call: ben (Primary)"
        ));
        assert!(has(
            &after,
            "2027-03-28T00:00:00Z",
            "2027-03-28T23:00:00Z",
            "On call: ana (Primary)"
        ));
        assert!(has(
            &after,
            "2027-03-28T23:00:00Z",
            "2027-03-29T08:00:00Z",
            "On call: cai (Primary)"
        ));
        let (_, mine) = parse(&fetch(&personal_url).await.1);
        assert_eq!(mine.len(), 151);
        assert!(has(
            &mine,
            "2027-03-28T00:00:00Z",
            "2027-03-28T23:00:00Z",
            "On call: ana (Primary)"
        ));

        // The page now counts the override too, and says where it comes from.
        let (_, html) = page(&browser, &app, "/my/shifts").await;
        assert!(
            html.contains("<strong class=\"total-hours\">103 h</strong>"),
            "{html}"
        );
        assert!(html.contains("2027-03-28 00:00 GMT") && html.contains("2027-03-29 00:00 BST"));
        assert!(
            html.contains("<td class=\"nowrap\">23 h</td>") && html.contains("<td>override</td>")
        );
        let (status, html) = page(&browser, &app, "/my/shifts?days=7").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            html.contains("<strong class=\"total-hours\">63 h</strong>"),
            "{html}"
        );
        for bad in ["5", "abc", "-14", "99999999999999999999"] {
            let (status, html) = page(&browser, &app, &format!("/my/shifts?days={bad}")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
            assert!(html.contains("Show 7, 14, 28 or 90 days"), "{bad}");
        }

        // The page lists the live feeds without their secrets.
        let (_, html) = page(&browser, &app, "/my/shifts").await;
        let secret_of = |url: &str| {
            url.rsplit('/')
                .next()
                .unwrap()
                .trim_end_matches(".ics")
                .to_owned()
        };
        assert!(html.contains("All your shifts") && html.contains("Schedule Primary"));
        assert!(
            !html.contains(&secret_of(&personal_url)) && !html.contains(&secret_of(&primary_url))
        );
        assert!(html.contains("Regenerate URL"));
        let feeds = app.store.calendar_feeds_of(ana.id).await.unwrap();
        assert_eq!(feeds.len(), 2);
        let personal_feed = feeds.iter().find(|f| f.schedule_id.is_none()).unwrap().id;
        let primary_feed = feeds
            .iter()
            .find(|f| f.schedule_id == Some(primary.id))
            .unwrap()
            .id;

        // Regenerating: the old URL stops, the new one works.
        let regenerated_url = create_feed(&app, &browser, "").await;
        assert_ne!(regenerated_url, personal_url);
        assert_eq!(fetch(&personal_url).await.0, StatusCode::NOT_FOUND);
        assert_eq!(fetch(&regenerated_url).await.0, StatusCode::OK);
        let personal_feed_now = app
            .store
            .calendar_feeds_of(ana.id)
            .await
            .unwrap()
            .into_iter()
            .find(|f| f.schedule_id.is_none())
            .unwrap()
            .id;
        assert_ne!(personal_feed_now, personal_feed);

        // Someone else cannot revoke ana's feed.
        let other = app.browser();
        app.sign_in(&other, "ben@example.com", "ben's long password")
            .await;
        let r = post(
            &app,
            &other,
            &format!("/my/shifts/feeds/{primary_feed}/revoke"),
            &[],
        )
        .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(fetch(&primary_url).await.0, StatusCode::OK);

        // Without the CSRF field nothing happens.
        let feeds_before = app.store.calendar_feeds_of(ana.id).await.unwrap();
        let r = browser
            .post(app.url("/my/shifts/feeds"))
            .form(&[("schedule", "")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let r = browser
            .post(app.url(&format!("/my/shifts/feeds/{primary_feed}/revoke")))
            .form(&[("csrf", "not the token")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            app.store.calendar_feeds_of(ana.id).await.unwrap(),
            feeds_before
        );
        assert_eq!(fetch(&regenerated_url).await.0, StatusCode::OK);

        // Revoking through the page.
        let r = post(
            &app,
            &browser,
            &format!("/my/shifts/feeds/{primary_feed}/revoke"),
            &[],
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(fetch(&primary_url).await.0, StatusCode::NOT_FOUND);
        let r = post(
            &app,
            &browser,
            &format!("/my/shifts/feeds/{primary_feed}/revoke"),
            &[],
        )
        .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "already revoked");

        // A schedule that does not exist makes no feed.
        let r = post(&app, &browser, "/my/shifts/feeds", &[("schedule", "4242")]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(app.store.calendar_feeds_of(ana.id).await.unwrap().len(), 1);

        // Malformed and unknown secrets.
        let unknown = format!("/calendar/{}.ics", "A".repeat(43));
        for path in [
            "/calendar/abc.ics",
            unknown.as_str(),
            "/calendar/.ics",
            "/calendar/x",
        ] {
            assert_eq!(
                fetch(&app.url(path)).await.0,
                StatusCode::NOT_FOUND,
                "{path}"
            );
        }
        let no_suffix = regenerated_url.trim_end_matches(".ics");
        assert_eq!(fetch(no_suffix).await.0, StatusCode::NOT_FOUND);

        // A disabled owner's feeds stop.
        app.store
            .update_user(
                ana.id,
                &UserPatch {
                    disabled: Some(true),
                    ..Default::default()
                },
                &Audit::cli(),
            )
            .await
            .unwrap();
        assert_eq!(fetch(&regenerated_url).await.0, StatusCode::NOT_FOUND);

        let actions = app.audit_actions().await;
        assert!(
            actions
                .iter()
                .filter(|a| *a == "calendar_feed.create")
                .count()
                >= 3
        );
        assert!(actions.iter().any(|a| a == "calendar_feed.revoke"));
        app.stop().await;
    }
}
