//! End-to-end: the open action-item overview (`/action-items`) on SQLite and PostgreSQL —
//! grouping by owner, overdue judged by the viewer's own calendar day, the owner's-team
//! filter and summaries, "overdue only", viewers seeing published postmortems' items only,
//! the sign-in redirect and bad query values answered with 400.

mod common;

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use common::{TestApp, backends};
use heliograph_domain::{FixedClock, Role, Severity, TeamName, TimeZone};
use heliograph_store::incidents::NewIncident;
use heliograph_store::postmortems::{ActionItemFields, Decision, ItemStatus, Priority};
use heliograph_store::testdb::TestDatabase;
use heliograph_store::users::UserPatch;
use heliograph_store::{Audit, Store};
use reqwest::StatusCode;

fn item(
    title: &str,
    owner: Option<i64>,
    due: Option<&str>,
    status: ItemStatus,
) -> ActionItemFields {
    ActionItemFields {
        title: title.into(),
        owner_id: owner,
        due_date: due.map(|d| d.parse::<NaiveDate>().unwrap()),
        priority: Priority::High,
        status,
        tracker_url: None,
    }
}

/// A postmortem of a new incident with these items; returns its id.
async fn postmortem_with(store: &Store, title: &str, items: &[ActionItemFields]) -> i64 {
    let incident = store
        .declare_incident(
            &NewIncident {
                title: title.into(),
                description: String::new(),
                description_html: String::new(),
                severity: Severity::Sev2,
                service_ids: vec![],
                commander_id: None,
            },
            &Audit::cli(),
        )
        .await
        .unwrap();
    let (pm, _) = store
        .start_postmortem(incident.number, &Audit::cli())
        .await
        .unwrap();
    for fields in items {
        store
            .add_action_item(pm, fields, &Audit::cli())
            .await
            .unwrap();
    }
    pm
}

fn as_user(id: i64) -> Audit {
    Audit {
        actor_user_id: Some(id),
        actor: format!("user {id}"),
        client_addr: None,
    }
}

/// The cells of each body row of the table with this id, tags stripped.
fn table_rows(html: &str, id: &str) -> Vec<Vec<String>> {
    let Some(start) = html.find(&format!("<table id=\"{id}\">")) else {
        return Vec::new();
    };
    let table = &html[start..start + html[start..].find("</table>").unwrap()];
    let body = &table[table.find("<tbody>").unwrap()..];
    body.split("<tr>")
        .skip(1)
        .map(|row| {
            row.split("<td>")
                .skip(1)
                .map(|cell| {
                    let mut out = String::new();
                    let mut in_tag = false;
                    for ch in cell.chars() {
                        match ch {
                            '<' => in_tag = true,
                            '>' => in_tag = false,
                            c if !in_tag => out.push(c),
                            _ => {}
                        }
                    }
                    out.trim().to_owned()
                })
                .collect()
        })
        .collect()
}

fn row<'a>(rows: &'a [Vec<String>], name: &str) -> Option<&'a [String]> {
    rows.iter().find(|r| r[0] == name).map(|r| &r[1..])
}

async fn get(client: &reqwest::Client, url: String) -> (StatusCode, String) {
    let r = client.get(url).send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

#[tokio::test]
async fn open_action_items_by_owner_and_team_with_overdue_in_the_viewers_zone() {
    // Tuesday 10 March 2026, 12:00 UTC: still the 10th in London, already the 11th on
    // Kiritimati (UTC+14).
    let now: DateTime<Utc> = "2026-03-10T12:00:00Z".parse().unwrap();
    for backend in backends() {
        let db = Arc::new(TestDatabase::fresh(backend).await);
        let app = TestApp::spawn_on(backend, db, Arc::new(FixedClock::new(now))).await;
        let ana = app
            .user("ana@example.com", Role::Responder, "ana's long password")
            .await;
        let kai = app
            .user("kai@example.com", Role::Responder, "kai's long password")
            .await;
        app.user("val@example.com", Role::Viewer, "val's long password")
            .await;
        app.store
            .update_user(
                kai.id,
                &UserPatch {
                    time_zone: Some(TimeZone::parse("Pacific/Kiritimati").unwrap()),
                    ..UserPatch::default()
                },
                &Audit::cli(),
            )
            .await
            .unwrap();
        let inference = app
            .store
            .create_team(
                &TeamName::parse("Inference").unwrap(),
                &[ana.id],
                &Audit::cli(),
            )
            .await
            .unwrap();
        let data = app
            .store
            .create_team(&TeamName::parse("Data").unwrap(), &[kai.id], &Audit::cli())
            .await
            .unwrap();

        let published = postmortem_with(
            &app.store,
            "Embeddings API 5xx",
            &[
                item(
                    "Alert on replica lag",
                    Some(ana.id),
                    Some("2026-03-09"),
                    ItemStatus::Open,
                ),
                item(
                    "Runbook for index rollback",
                    Some(ana.id),
                    Some("2026-03-10"),
                    ItemStatus::InProgress,
                ),
                item(
                    "Already done",
                    Some(ana.id),
                    Some("2026-03-01"),
                    ItemStatus::Done,
                ),
                item(
                    "Dropped idea",
                    Some(kai.id),
                    Some("2026-03-01"),
                    ItemStatus::WontDo,
                ),
                item(
                    "Load test the gateway",
                    Some(kai.id),
                    Some("2026-03-11"),
                    ItemStatus::Open,
                ),
                item("Nobody's chore", None, None, ItemStatus::Open),
            ],
        )
        .await;
        let draft = postmortem_with(
            &app.store,
            "Feature store lag",
            &[item(
                "Draft-only fix",
                Some(kai.id),
                Some("2026-03-01"),
                ItemStatus::Open,
            )],
        )
        .await;
        app.store
            .submit_postmortem(published, &[kai.id], None, &Audit::cli())
            .await
            .unwrap();
        app.store
            .review_postmortem(published, Decision::Approved, "", &as_user(kai.id))
            .await
            .unwrap();
        app.store
            .publish_postmortem(published, None, &Audit::cli())
            .await
            .unwrap();

        // Signed out: to the sign-in page.
        let anon = app.browser();
        let r = anon.get(app.url("/action-items")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{backend:?}");
        assert!(
            r.headers()["location"]
                .to_str()
                .unwrap()
                .starts_with("/login"),
            "{:?}",
            r.headers()["location"]
        );

        let (b_ana, b_kai, b_val) = (app.browser(), app.browser(), app.browser());
        app.sign_in(&b_ana, "ana@example.com", "ana's long password")
            .await;
        app.sign_in(&b_kai, "kai@example.com", "kai's long password")
            .await;
        app.sign_in(&b_val, "val@example.com", "val's long password")
            .await;

        // London (ana): the 10th; only what was due by the 9th is overdue.
        let (status, html) = get(&b_ana, app.url("/action-items")).await;
        assert_eq!(status, StatusCode::OK, "{backend:?}: {html}");
        assert!(html.contains("<strong>5</strong> open"), "{html}");
        for listed in [
            "Alert on replica lag",
            "Runbook for index rollback",
            "Load test the gateway",
            "Nobody&#39;s chore",
            "Draft-only fix",
        ] {
            assert!(
                html.contains(listed) || html.contains(&listed.replace("&#39;", "&#x27;")),
                "{listed} listed"
            );
        }
        assert!(!html.contains("Already done") && !html.contains("Dropped idea"));
        assert!(html.contains(&format!("href=\"/postmortems/{published}#action-items\"")));
        assert!(html.contains(&format!("href=\"/postmortems/{draft}#action-items\"")));
        let owners = table_rows(&html, "owner-summary");
        assert_eq!(
            row(&owners, "ana"),
            Some(&["2".to_owned(), "1".to_owned()][..])
        );
        assert_eq!(
            row(&owners, "kai"),
            Some(&["2".to_owned(), "1".to_owned()][..])
        );
        assert_eq!(
            row(&owners, "Nobody yet"),
            Some(&["1".to_owned(), "0".to_owned()][..])
        );
        assert_eq!(
            owners[0][0], "ana",
            "owners by name, nobody last: {owners:?}"
        );
        assert_eq!(owners.last().unwrap()[0], "Nobody yet");
        let teams = table_rows(&html, "team-summary");
        assert_eq!(
            row(&teams, "Inference"),
            Some(&["2".to_owned(), "1".to_owned()][..])
        );
        assert_eq!(
            row(&teams, "Data"),
            Some(&["2".to_owned(), "1".to_owned()][..])
        );
        assert_eq!(
            row(&teams, "No team"),
            Some(&["1".to_owned(), "0".to_owned()][..])
        );
        // Each owner's items sit under their heading; the overdue one is marked.
        let ana_section = &html[html.find("<h2>ana ").unwrap()..];
        let ana_section = &ana_section[..ana_section.find("</section>").unwrap()];
        assert!(ana_section.contains("Alert on replica lag"));
        assert!(ana_section.contains("Runbook for index rollback"));
        assert!(!ana_section.contains("Load test the gateway"));
        assert_eq!(ana_section.matches("class=\"overdue\"").count(), 1);

        // Kiritimati (kai): already the 11th, so the item due on the 10th is overdue too.
        let (status, html) = get(&b_kai, app.url("/action-items")).await;
        assert_eq!(status, StatusCode::OK);
        let owners = table_rows(&html, "owner-summary");
        assert_eq!(
            row(&owners, "ana"),
            Some(&["2".to_owned(), "2".to_owned()][..]),
            "{backend:?}"
        );
        assert!(
            html.contains("<strong class=\"overdue-flag\">3</strong> overdue"),
            "{html}"
        );

        // Overdue only, in each viewer's zone.
        let (_, html) = get(&b_ana, app.url("/action-items?overdue=1")).await;
        assert!(html.contains("Alert on replica lag") && html.contains("Draft-only fix"));
        assert!(!html.contains("Runbook for index rollback") && !html.contains("Load test"));
        let (_, html) = get(&b_kai, app.url("/action-items?overdue=1")).await;
        assert!(html.contains("Runbook for index rollback"));
        assert!(!html.contains("Load test the gateway"));

        // The owner's team, and the owner.
        let (status, html) = get(
            &b_ana,
            app.url(&format!("/action-items?team={}", inference.team.id)),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            html.contains("Alert on replica lag") && html.contains("Runbook for index rollback")
        );
        assert!(!html.contains("Load test the gateway") && !html.contains("Nobody&#"));
        let teams = table_rows(&html, "team-summary");
        assert_eq!(
            teams,
            vec![vec!["Inference".to_owned(), "2".into(), "1".into()]]
        );
        let (_, html) = get(
            &b_ana,
            app.url(&format!("/action-items?team={}&overdue=1", data.team.id)),
        )
        .await;
        assert!(html.contains("Draft-only fix") && !html.contains("Load test the gateway"));
        let (_, html) = get(&b_ana, app.url(&format!("/action-items?owner={}", kai.id))).await;
        let owners = table_rows(&html, "owner-summary");
        assert_eq!(owners, vec![vec!["kai".to_owned(), "2".into(), "1".into()]]);

        // A viewer (leadership) reads it, with the items of published postmortems only.
        let (status, html) = get(&b_val, app.url("/action-items")).await;
        assert_eq!(status, StatusCode::OK, "{backend:?}");
        assert!(html.contains("<strong>4</strong> open"), "{html}");
        assert!(html.contains("Alert on replica lag") && !html.contains("Draft-only fix"));
        assert!(html.contains("published postmortems only"));

        // Linked from the postmortem list and the navigation.
        let (_, html) = get(&b_val, app.url("/postmortems")).await;
        assert!(html.contains("id=\"action-items-link\""));

        // Bad query values: 400 with a message, not an error page.
        for (query, message) in [
            ("team=abc", "Choose a team from the list"),
            ("team=99999", "Choose a team from the list"),
            ("owner=-3", "Choose an owner from the list"),
            ("overdue=maybe", "Tick"),
        ] {
            let (status, html) = get(&b_ana, app.url(&format!("/action-items?{query}"))).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
            assert!(html.contains(message), "{query}: {html}");
            assert!(
                !html.contains("Alert on replica lag"),
                "{query} lists nothing"
            );
        }
    }
}
