//! End-to-end: postmortems in the browser on SQLite and PostgreSQL — the draft a resolved SEV1
//! leaves, editing with a version (the loser keeps their text), review to publication, viewers
//! reading but not editing, inert Markdown, action items and the Markdown export.

mod common;

use common::{TestApp, backends};
use heliograph_domain::Role;
use heliograph_store::postmortems::{PostmortemFilter, PostmortemStatus};
use reqwest::StatusCode;

async fn post_form(
    app: &TestApp,
    client: &reqwest::Client,
    path: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let csrf = app.csrf(client, "/postmortems").await;
    let mut all = vec![("csrf", csrf.as_str())];
    all.extend_from_slice(fields);
    client.post(app.url(path)).form(&all).send().await.unwrap()
}

async fn text(client: &reqwest::Client, url: String) -> (StatusCode, String) {
    let r = client.get(url).send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

const EVIL: &str = "Gateway **fell over**.\n\n<script>alert(1)</script>\n\n<img src=x onerror=alert(2)>\n\n[click](javascript:alert(3))";

#[tokio::test]
async fn a_resolved_sev1_goes_from_draft_through_review_to_a_published_postmortem() {
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
        let (b_ida, b_rev, b_val) = (app.browser(), app.browser(), app.browser());
        app.sign_in(&b_ida, "ida@example.com", "ida's long password")
            .await;
        app.sign_in(&b_rev, "rev@example.com", "rev's long password")
            .await;
        app.sign_in(&b_val, "val@example.com", "val's long password")
            .await;

        // Declare and resolve a SEV1: the draft exists, filled from the incident.
        let r = post_form(
            &app,
            &b_ida,
            "/incidents",
            &[
                ("title", "Embeddings API 5xx"),
                ("severity", "SEV1"),
                ("commander_id", &ida.id.to_string()),
            ],
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{backend:?}");
        post_form(
            &app,
            &b_ida,
            "/incidents/1/notes",
            &[("body", "Rolled back index v42")],
        )
        .await;
        let r = post_form(&app, &b_ida, "/incidents/1/resolve", &[]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let list = app
            .store
            .postmortems(&PostmortemFilter::default(), 10, None)
            .await
            .unwrap();
        assert_eq!(list.items.len(), 1, "{backend:?}");
        let id = list.items[0].id;
        let pm = app.store.postmortem(id).await.unwrap();
        assert_eq!(pm.status, PostmortemStatus::Draft);
        assert_eq!(pm.owner_id, Some(ida.id));
        assert!(pm.timeline[0].text.starts_with("Declared SEV1"));
        assert!(
            pm.timeline
                .iter()
                .any(|e| e.text.contains("Rolled back index v42"))
        );
        let (status, page) = text(&b_ida, app.url(&format!("/postmortems/{id}"))).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("Declared SEV1") && page.contains("Rolled back index v42"));
        assert!(page.contains(">Draft<"));

        // The viewer can neither read the draft nor edit it.
        for path in [
            format!("/postmortems/{id}"),
            format!("/postmortems/{id}/edit"),
        ] {
            let (status, _) = text(&b_val, app.url(&path)).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        }
        let r = post_form(
            &app,
            &b_val,
            &format!("/postmortems/{id}/edit"),
            &[("title", "viewer"), ("version", &pm.version.to_string())],
        )
        .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);

        // Edit: sections, one entry dropped, one added.
        let (status, form) = text(&b_ida, app.url(&format!("/postmortems/{id}/edit"))).await;
        assert_eq!(status, StatusCode::OK);
        assert!(form.contains("name=\"root_cause\""));
        let tz: chrono_tz::Tz = "Europe/London".parse().unwrap();
        let ats: Vec<String> = pm
            .timeline
            .iter()
            .map(|e| {
                e.at.with_timezone(&tz)
                    .format("%Y-%m-%d %H:%M:%S")
                    .to_string()
            })
            .collect();
        let version = pm.version.to_string();
        let mut fields: Vec<(&str, &str)> = vec![
            ("version", &version),
            ("title", "Embeddings API 5xx for 40 minutes"),
            ("summary", EVIL),
            ("root_cause", "A stale replica"),
        ];
        let keep: Vec<String> = (1..pm.timeline.len()).map(|n| n.to_string()).collect();
        for (n, e) in pm.timeline.iter().enumerate() {
            fields.push(("tl_at", &ats[n]));
            fields.push(("tl_text", &e.text));
        }
        for k in &keep {
            fields.push(("tl_keep", k));
        }
        fields.push(("new_at", "2026-01-01 00:00"));
        fields.push(("new_text", "Customer reported errors"));
        let r = post_form(&app, &b_ida, &format!("/postmortems/{id}/edit"), &fields).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{backend:?}");
        let saved = app.store.postmortem(id).await.unwrap();
        assert_eq!(saved.title, "Embeddings API 5xx for 40 minutes");
        assert_eq!(saved.sections.root_cause, "A stale replica");
        assert!(
            !saved
                .timeline
                .iter()
                .find(|e| e.text.starts_with("Declared"))
                .unwrap()
                .kept
        );
        assert_eq!(
            saved.timeline[0].text, "Customer reported errors",
            "sorted by time"
        );

        // A second editor who started from the old version loses, and keeps their text.
        let mut theirs = fields.clone();
        theirs[3] = ("root_cause", "Rev's competing analysis");
        let r = post_form(&app, &b_rev, &format!("/postmortems/{id}/edit"), &theirs).await;
        assert_eq!(r.status(), StatusCode::CONFLICT);
        let html = r.text().await.unwrap();
        assert!(
            html.contains("Someone else saved this postmortem while you were editing"),
            "{html}"
        );
        assert!(
            html.contains("Rev&#39;s competing analysis")
                || html.contains("Rev&#x27;s competing analysis"),
            "{html}"
        );
        assert_eq!(
            app.store.postmortem(id).await.unwrap().sections.root_cause,
            "A stale replica"
        );

        // The reading view renders Markdown, inert.
        let (_, page) = text(&b_ida, app.url(&format!("/postmortems/{id}"))).await;
        assert!(page.contains("<strong>fell over</strong>"), "{page}");
        assert!(!page.contains("<script>alert"), "no script");
        assert!(!page.contains("onerror"), "no handlers");
        assert!(!page.contains("javascript:"), "no javascript: links");
        assert!(page.contains("Time to acknowledge"));

        // Action items: a bad date keeps the form; a good one is added.
        let r = post_form(
            &app,
            &b_ida,
            &format!("/postmortems/{id}/action-items"),
            &[("title", "Alert on replica lag"), ("due_date", "next week")],
        )
        .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = r.text().await.unwrap();
        assert!(
            html.contains("Use a date like") && html.contains("value=\"Alert on replica lag\"")
        );
        let r = post_form(
            &app,
            &b_ida,
            &format!("/postmortems/{id}/action-items"),
            &[
                ("title", "Alert on replica lag"),
                ("owner_id", &rev.id.to_string()),
                ("due_date", "2026-06-30"),
                ("priority", "high"),
            ],
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let item = app.store.action_items(id).await.unwrap().remove(0);
        let r = post_form(
            &app,
            &b_rev,
            &format!("/postmortems/{id}/action-items/{}", item.id),
            &[("status", "in_progress")],
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            app.store
                .action_item(item.id)
                .await
                .unwrap()
                .status
                .as_str(),
            "in_progress"
        );

        // Review: publishing needs an approval; changes requested sends it back to draft.
        let rev_id = rev.id.to_string();
        let r = post_form(
            &app,
            &b_ida,
            &format!("/postmortems/{id}/submit"),
            &[("reviewers", &rev_id)],
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        post_form(&app, &b_ida, &format!("/postmortems/{id}/publish"), &[]).await;
        assert_eq!(
            app.store.postmortem(id).await.unwrap().status,
            PostmortemStatus::InReview
        );
        let (_, page) = text(&b_rev, app.url(&format!("/postmortems/{id}"))).await;
        assert!(
            page.contains("id=\"approve\""),
            "the reviewer sees the review form"
        );
        post_form(
            &app,
            &b_rev,
            &format!("/postmortems/{id}/review"),
            &[
                ("decision", "changes_requested"),
                ("comment", "Say how we detected it"),
            ],
        )
        .await;
        assert_eq!(
            app.store.postmortem(id).await.unwrap().status,
            PostmortemStatus::Draft
        );
        post_form(
            &app,
            &b_ida,
            &format!("/postmortems/{id}/submit"),
            &[("reviewers", &rev_id)],
        )
        .await;
        post_form(
            &app,
            &b_rev,
            &format!("/postmortems/{id}/review"),
            &[("decision", "approved"), ("comment", "")],
        )
        .await;
        let r = post_form(&app, &b_ida, &format!("/postmortems/{id}/publish"), &[]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let published = app.store.postmortem(id).await.unwrap();
        assert_eq!(published.status, PostmortemStatus::Published, "{backend:?}");
        let detail = app.store.postmortem_detail(id).await.unwrap();
        let steps: Vec<&str> = detail.history.iter().map(|h| h.action.as_str()).collect();
        for step in [
            "created",
            "edited",
            "submitted",
            "changes_requested",
            "approved",
            "published",
        ] {
            assert!(steps.contains(&step), "{step} in {steps:?}");
        }
        let audit = app.audit_actions().await;
        assert!(audit.iter().any(|a| a == "postmortem.published"));

        // The viewer now reads it, finds it in the list, and still cannot edit.
        let (status, page) = text(&b_val, app.url(&format!("/postmortems/{id}"))).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("Embeddings API 5xx for 40 minutes"));
        assert!(!page.contains("<script>alert") && !page.contains("onerror"));
        assert!(!page.contains("id=\"edit\""));
        let (_, list) = text(&b_val, app.url("/postmortems?q=stale+replica")).await;
        assert!(list.contains(&format!("/postmortems/{id}\"")), "{list}");
        let (status, _) = text(&b_val, app.url(&format!("/postmortems/{id}/edit"))).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let r = post_form(
            &app,
            &b_val,
            &format!("/postmortems/{id}/action-items"),
            &[("title", "x")],
        )
        .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);

        // The Markdown export.
        let r = b_val
            .get(app.url(&format!("/postmortems/{id}.md")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/markdown")
        );
        let md = r.text().await.unwrap();
        assert!(md.starts_with("# Embeddings API 5xx for 40 minutes"));
        assert!(md.contains("## Root cause and contributing factors\n\nA stale replica"));
        assert!(md.contains("## Timeline") && md.contains("Customer reported errors"));
        assert!(md.contains("Alert on replica lag"));
    }
}

#[tokio::test]
async fn responders_start_a_postmortem_for_any_incident_once() {
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        app.user("ida@example.com", Role::Responder, "ida's long password")
            .await;
        let b = app.browser();
        app.sign_in(&b, "ida@example.com", "ida's long password")
            .await;
        post_form(
            &app,
            &b,
            "/incidents",
            &[("title", "Slow batch"), ("severity", "SEV3")],
        )
        .await;
        let (_, page) = text(&b, app.url("/incidents/1")).await;
        assert!(page.contains("Start a postmortem"));
        post_form(&app, &b, "/incidents/1/resolve", &[]).await;
        assert!(
            app.store
                .postmortems(&PostmortemFilter::default(), 10, None)
                .await
                .unwrap()
                .items
                .is_empty(),
            "a SEV3 gets none by itself"
        );
        let first = post_form(&app, &b, "/incidents/1/postmortem", &[]).await;
        assert_eq!(first.status(), StatusCode::SEE_OTHER, "{backend:?}");
        let again = post_form(&app, &b, "/incidents/1/postmortem", &[]).await;
        assert_eq!(first.headers()["location"], again.headers()["location"]);
        let (_, list) = text(&b, app.url("/postmortems?status=draft")).await;
        assert!(list.contains("Slow batch"));
        let (status, _) = text(&b, app.url("/postmortems?quarter=2026-Q9")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn preview_renders_sanitized_markdown_keeps_every_field_and_saves_nothing() {
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        app.user("ida@example.com", Role::Responder, "ida's long password")
            .await;
        let b = app.browser();
        app.sign_in(&b, "ida@example.com", "ida's long password")
            .await;
        post_form(
            &app,
            &b,
            "/incidents",
            &[("title", "Reranker timeouts"), ("severity", "SEV2")],
        )
        .await;
        post_form(&app, &b, "/incidents/1/resolve", &[]).await;
        let id = app
            .store
            .postmortems(&PostmortemFilter::default(), 10, None)
            .await
            .unwrap()
            .items[0]
            .id;
        let before = app.store.postmortem(id).await.unwrap();
        let (_, form) = text(&b, app.url(&format!("/postmortems/{id}/edit"))).await;
        assert!(
            form.contains("name=\"action\" value=\"preview\""),
            "the form has a Preview button"
        );
        assert!(
            !form.contains("class=\"pm-preview"),
            "no preview before asking"
        );

        let version = before.version.to_string();
        let fields = [
            ("version", version.as_str()),
            ("title", "Reranker timeouts, previewed"),
            ("summary", EVIL),
            ("lessons", "- one\n- two"),
            ("new_at", "2026-01-01 00:05"),
            ("new_text", "Typed but not saved"),
            ("action", "preview"),
        ];
        let r = post_form(&app, &b, &format!("/postmortems/{id}/edit"), &fields).await;
        assert_eq!(r.status(), StatusCode::OK, "{backend:?}");
        let html = r.text().await.unwrap();
        // Rendered beside the fields, inert.
        let summary = &html[html
            .find("id=\"preview-summary\"")
            .expect("a preview of the summary")..];
        let summary = &summary[..summary.find("</div>").unwrap()];
        assert!(summary.contains("<strong>fell over</strong>"), "{summary}");
        assert!(
            html.contains("id=\"preview-lessons\"") && html.contains("<li>two</li>"),
            "{html}"
        );
        assert!(
            !html.contains("id=\"preview-root_cause\""),
            "empty sections get no preview"
        );
        assert!(!html.contains("<script>alert"), "no script");
        assert!(!summary.contains("onerror"), "no handlers: {summary}");
        assert!(!summary.contains("javascript:"), "no javascript: links");
        // Everything typed comes back, with the version the editor started from.
        assert!(
            html.contains("&#60;script&#62;alert(1)&#60;/script&#62;")
                || html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "the typed text, escaped, in its textarea: {html}"
        );
        assert!(html.contains("value=\"Reranker timeouts, previewed\""));
        assert!(html.contains("value=\"Typed but not saved\""));
        assert!(html.contains("value=\"2026-01-01 00:05\""));
        assert!(html.contains(&format!("name=\"version\" value=\"{version}\"")));
        assert!(html.contains("nothing is saved yet"));
        // Nothing was saved.
        let after = app.store.postmortem(id).await.unwrap();
        assert_eq!(after, before, "{backend:?}");
        let detail = app.store.postmortem_detail(id).await.unwrap();
        assert!(detail.history.iter().all(|h| h.action != "edited"));

        // Saving the same form afterwards stores it (the version was kept).
        let save: Vec<(&str, &str)> = fields
            .iter()
            .copied()
            .filter(|(k, _)| *k != "action")
            .collect();
        let r = post_form(&app, &b, &format!("/postmortems/{id}/edit"), &save).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let saved = app.store.postmortem(id).await.unwrap();
        assert_eq!(saved.version, before.version + 1);
        assert_eq!(saved.sections.summary, EVIL);
        assert!(
            saved
                .timeline
                .iter()
                .any(|e| e.text == "Typed but not saved")
        );
    }
}

#[tokio::test]
async fn search_finds_words_and_word_beginnings_in_the_text_and_follows_edits() {
    use heliograph_store::Audit;
    use heliograph_store::postmortems::{PostmortemEdit, Saved};
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        app.user("ida@example.com", Role::Responder, "ida's long password")
            .await;
        let b = app.browser();
        app.sign_in(&b, "ida@example.com", "ida's long password")
            .await;
        for title in ["Reranker timeouts", "Gateway 502s"] {
            post_form(
                &app,
                &b,
                "/incidents",
                &[("title", title), ("severity", "SEV3")],
            )
            .await;
        }
        let (first, _) = app.store.start_postmortem(1, &Audit::cli()).await.unwrap();
        let (second, _) = app.store.start_postmortem(2, &Audit::cli()).await.unwrap();
        let edit = |title: &str, root_cause: &str| {
            let sections = heliograph_store::postmortems::Sections {
                root_cause: root_cause.into(),
                ..Default::default()
            };
            PostmortemEdit {
                title: title.into(),
                sections,
                timeline: vec![],
            }
        };
        let saved = app
            .store
            .update_postmortem(
                first,
                &edit(
                    "Reranker timeouts",
                    "A **stale replica** of the Über-index.\n\nNew line",
                ),
                1,
                &Audit::cli(),
            )
            .await
            .unwrap();
        assert!(matches!(saved, Saved::Saved(_)));
        let found = |q: &'static str| {
            let store = app.store.clone();
            async move {
                let filter = PostmortemFilter {
                    search: Some(q.into()),
                    ..PostmortemFilter::default()
                };
                let mut ids: Vec<i64> = store
                    .postmortems(&filter, 10, None)
                    .await
                    .unwrap()
                    .items
                    .iter()
                    .map(|p| p.id)
                    .collect();
                ids.sort();
                ids
            }
        };
        assert_eq!(found("stale replica").await, [first], "{backend:?}");
        assert_eq!(found("STALE").await, [first], "case does not matter");
        assert_eq!(found("replic").await, [first], "word beginnings");
        assert_eq!(found("über").await, [first]);
        assert_eq!(found("reranker").await, [first], "titles are searched");
        assert_eq!(found("gateway").await, [second]);
        assert!(found("eplica").await.is_empty(), "not the middle of a word");
        assert!(
            found("stale gateway").await.is_empty(),
            "every word is required"
        );
        assert!(found("root_cause").await.is_empty(), "not the JSON keys");
        assert!(found("nnew").await.is_empty(), "not JSON escapes");
        assert!(found("%%% --").await.is_empty(), "no words, no matches");
        // Edits are followed: the old text is forgotten, the new one found.
        let saved = app
            .store
            .update_postmortem(
                first,
                &edit("Reranker timeouts", "A cold cache after the deploy"),
                2,
                &Audit::cli(),
            )
            .await
            .unwrap();
        assert!(matches!(saved, Saved::Saved(_)));
        assert!(found("replica").await.is_empty(), "{backend:?}");
        assert_eq!(found("cold cache").await, [first]);
        // The page searches the same way.
        let (status, list) = text(&b, app.url("/postmortems?q=cold+cach")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(list.contains(&format!("/postmortems/{first}\"")), "{list}");
        assert!(!list.contains(&format!("/postmortems/{second}\"")));
    }
}
