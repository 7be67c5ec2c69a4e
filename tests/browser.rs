//! End-to-end in a real browser: headless Chromium driven over WebDriver (chromedriver).
//! One person declares an incident; a second browser context sees it appear on the list
//! without reloading; then it is acknowledged and resolved by clicking.
//!
//! Needs Debian's `chromium` and `chromium-driver` (CI installs them). Without them the test
//! fails under CI and is skipped, with a message, elsewhere.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::TestApp;
use fantoccini::{Client, ClientBuilder, Locator};
use heliograph_domain::Role;
use heliograph_store::Backend;

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn find(binaries: &[&str]) -> Option<String> {
    binaries
        .iter()
        .find(|b| std::path::Path::new(b).exists())
        .map(|b| b.to_string())
}

async fn browser(port: u16, profile: &std::path::Path, chromium: &str) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic",
                     "--window-size=1280,900", format!("--user-data-dir={}", profile.display())]
        }),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(client) => return client,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("cannot start a Chromium session: {e}"),
        }
    }
}

async fn sign_in(c: &Client, app: &TestApp, email: &str, password: &str) {
    c.goto(&app.url("/login")).await.unwrap();
    c.find(Locator::Id("email"))
        .await
        .unwrap()
        .send_keys(email)
        .await
        .unwrap();
    c.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
    c.find(Locator::Css("button.primary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(c, "Hello,").await;
}

/// The page's text; empty while a navigation is under way (the body may be gone for a moment).
async fn page_text(c: &Client) -> String {
    match c.find(Locator::Css("body")).await {
        Ok(body) => body.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

async fn wait_for_text(c: &Client, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if page_text(c).await.contains(text) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "\"{text}\" did not appear; the page says: {}",
            page_text(c).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn declare_see_it_live_elsewhere_acknowledge_and_resolve() {
    let chromium = find(&["/usr/bin/chromium", "/usr/bin/chromium-browser"]);
    let chromedriver = find(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]);
    let (Some(chromium), Some(chromedriver)) = (chromium, chromedriver) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install chromium and chromium-driver for the browser test"
        );
        eprintln!("SKIPPED: install Debian's chromium and chromium-driver to run the browser test");
        return;
    };
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.user("sre@example.com", Role::Responder, "sre's long password")
        .await;
    app.user("lead@example.com", Role::Manager, "lead's long password")
        .await;

    let port = free_port();
    let _driver = Driver(
        Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver"),
    );
    let profiles =
        std::env::temp_dir().join(format!("heliograph-browser-{}-{port}", std::process::id()));
    let watcher = browser(port, &profiles.join("a"), &chromium).await;
    let declarer = browser(port, &profiles.join("b"), &chromium).await;

    sign_in(&watcher, &app, "lead@example.com", "lead's long password").await;
    watcher.goto(&app.url("/incidents")).await.unwrap();
    wait_for_text(&watcher, "No incidents match").await;
    // A marker that a reload would wipe out.
    watcher
        .execute(
            "window.__heliographMarker = 'still here'; return null;",
            vec![],
        )
        .await
        .unwrap();

    sign_in(&declarer, &app, "sre@example.com", "sre's long password").await;
    declarer
        .find(Locator::Css("a.declare"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    declarer
        .find(Locator::Id("title"))
        .await
        .unwrap()
        .send_keys("embedding-service OOM loop")
        .await
        .unwrap();
    declarer
        .find(Locator::Css("input[name=severity][value=SEV2]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    declarer
        .find(Locator::Id("description"))
        .await
        .unwrap()
        .send_keys("Pods restart every **90s**")
        .await
        .unwrap();
    declarer
        .find(Locator::XPath("//button[text()='Declare incident']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&declarer, "Incident #1 declared.").await;

    // The other browser sees it without reloading.
    wait_for_text(&watcher, "embedding-service OOM loop").await;
    let marker = watcher
        .execute("return window.__heliographMarker || null;", vec![])
        .await
        .unwrap();
    assert_eq!(
        marker,
        serde_json::json!("still here"),
        "the list updated in place, not by a reload"
    );

    declarer
        .find(Locator::Id("acknowledge"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&declarer, "Acknowledged.").await;
    declarer
        .find(Locator::Id("resolve"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&declarer, "Resolved.").await;
    assert_eq!(
        app.store.incident(1).await.unwrap().status.as_str(),
        "resolved"
    );
    wait_for_text(&watcher, "0 open").await;

    watcher.close().await.unwrap();
    declarer.close().await.unwrap();
    let _ = std::fs::remove_dir_all(&profiles);
    app.stop().await;
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .click()
        .await
        .unwrap();
}

/// Issue 8 in a real browser: a responder resolves a SEV1, which leaves a draft postmortem;
/// they write its summary, save and submit it for review; the reviewer approves in a second
/// browser; it is published; a viewer in a third browser finds and reads it, without an edit
/// control.
#[tokio::test]
async fn write_review_publish_and_read_a_postmortem() {
    let chromium = find(&["/usr/bin/chromium", "/usr/bin/chromium-browser"]);
    let chromedriver = find(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]);
    let (Some(chromium), Some(chromedriver)) = (chromium, chromedriver) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install chromium and chromium-driver for the browser test"
        );
        eprintln!("SKIPPED: install Debian's chromium and chromium-driver to run the browser test");
        return;
    };
    let app = TestApp::spawn(Backend::Sqlite).await;
    let sre = app
        .user("sre@example.com", Role::Responder, "sre's long password")
        .await;
    let rev = app
        .user("rev@example.com", Role::Responder, "rev's long password")
        .await;
    app.user("val@example.com", Role::Viewer, "val's long password")
        .await;
    app.store
        .declare_incident(
            &heliograph_store::incidents::NewIncident {
                title: "Reranker returns empty results".into(),
                description: String::new(),
                description_html: String::new(),
                severity: heliograph_domain::Severity::Sev1,
                service_ids: vec![],
                commander_id: Some(sre.id),
            },
            &heliograph_store::Audit::cli(),
        )
        .await
        .unwrap();

    let port = free_port();
    let _driver = Driver(
        Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver"),
    );
    let profiles = std::env::temp_dir().join(format!(
        "heliograph-browser-pm-{}-{port}",
        std::process::id()
    ));
    let author = browser(port, &profiles.join("author"), &chromium).await;
    let reviewer = browser(port, &profiles.join("reviewer"), &chromium).await;
    let reader = browser(port, &profiles.join("reader"), &chromium).await;

    // The responder resolves the SEV1: a draft postmortem exists.
    sign_in(&author, &app, "sre@example.com", "sre's long password").await;
    author.goto(&app.url("/incidents/1")).await.unwrap();
    click(&author, "#resolve").await;
    wait_for_text(&author, "Resolved.").await;
    let id = app
        .store
        .postmortem_of_incident(app.store.incident(1).await.unwrap().id)
        .await
        .unwrap()
        .expect("resolving a SEV1 drafts a postmortem")
        .id;
    author
        .goto(&app.url("/postmortems?status=draft"))
        .await
        .unwrap();
    wait_for_text(&author, "Reranker returns empty results").await;
    author
        .find(Locator::LinkText("Reranker returns empty results"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&author, "Draft").await;

    // Write the summary and save.
    click(&author, "#edit").await;
    wait_for_text(&author, "Edit postmortem").await;
    let summary = author.find(Locator::Id("summary")).await.unwrap();
    summary.clear().await.unwrap();
    summary
        .send_keys("The reranker index was rebuilt from an **empty snapshot**.")
        .await
        .unwrap();
    click(&author, "#save").await;
    wait_for_text(&author, "Postmortem saved.").await;
    wait_for_text(
        &author,
        "The reranker index was rebuilt from an empty snapshot.",
    )
    .await;

    // Submit for review, naming the reviewer.
    click(&author, &format!("#reviewers option[value='{}']", rev.id)).await;
    click(&author, "#submit-review").await;
    wait_for_text(&author, "Submitted for review.").await;
    assert!(page_text(&author).await.contains("In review"));

    // The reviewer approves in their own browser.
    sign_in(&reviewer, &app, "rev@example.com", "rev's long password").await;
    reviewer
        .goto(&app.url(&format!("/postmortems/{id}")))
        .await
        .unwrap();
    wait_for_text(&reviewer, "rev: Pending").await;
    click(&reviewer, "#approve").await;
    wait_for_text(&reviewer, "Approved.").await;
    wait_for_text(&reviewer, "rev: Approved").await;

    // The author publishes.
    author.refresh().await.unwrap();
    wait_for_text(&author, "rev: Approved").await;
    click(&author, "#publish").await;
    wait_for_text(&author, "Published.").await;
    assert_eq!(
        app.store.postmortem(id).await.unwrap().status.as_str(),
        "published"
    );

    // A viewer finds it in the list and reads it; there is nothing to edit.
    sign_in(&reader, &app, "val@example.com", "val's long password").await;
    reader.goto(&app.url("/postmortems")).await.unwrap();
    wait_for_text(&reader, "Reranker returns empty results").await;
    reader
        .find(Locator::LinkText("Reranker returns empty results"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(
        &reader,
        "The reranker index was rebuilt from an empty snapshot.",
    )
    .await;
    let text = page_text(&reader).await;
    assert!(
        text.contains("Published") && text.contains("Time to resolve"),
        "{text}"
    );
    let bold = reader
        .find(Locator::Css(".pm-section .prose strong"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(bold, "empty snapshot", "the Markdown is rendered");
    assert!(
        reader.find(Locator::Id("edit")).await.is_err(),
        "a viewer sees no edit control"
    );
    assert!(reader.find(Locator::Css("#add-action-item")).await.is_err());
    reader
        .goto(&app.url(&format!("/postmortems/{id}/edit")))
        .await
        .unwrap();
    wait_for_text(&reader, "This needs the responder role").await;

    author.close().await.unwrap();
    reviewer.close().await.unwrap();
    reader.close().await.unwrap();
    let _ = std::fs::remove_dir_all(&profiles);
    app.stop().await;
}

/// The edit form's copy in localStorage: text typed and never saved survives leaving the page,
/// comes back on request with the version it was typed against, and Save is then refused (with
/// the text kept) because someone else saved meanwhile — the copy never overwrites their work.
#[tokio::test]
async fn unsaved_postmortem_text_is_kept_in_the_browser_and_still_meets_the_version_check() {
    let chromium = find(&["/usr/bin/chromium", "/usr/bin/chromium-browser"]);
    let chromedriver = find(&["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]);
    let (Some(chromium), Some(chromedriver)) = (chromium, chromedriver) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install chromium and chromium-driver for the browser test"
        );
        eprintln!("SKIPPED: install Debian's chromium and chromium-driver to run the browser test");
        return;
    };
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.user("sre@example.com", Role::Responder, "sre's long password")
        .await;
    let incident = app
        .store
        .declare_incident(
            &heliograph_store::incidents::NewIncident {
                title: "Vector DB compaction stall".into(),
                description: String::new(),
                description_html: String::new(),
                severity: heliograph_domain::Severity::Sev3,
                service_ids: vec![],
                commander_id: None,
            },
            &heliograph_store::Audit::cli(),
        )
        .await
        .unwrap();
    let (id, _) = app
        .store
        .start_postmortem(incident.number, &heliograph_store::Audit::cli())
        .await
        .unwrap();
    let port = free_port();
    let _driver = Driver(
        Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver"),
    );
    let profiles = std::env::temp_dir().join(format!(
        "heliograph-browser-draft-{}-{port}",
        std::process::id()
    ));
    let c = browser(port, &profiles.join("a"), &chromium).await;
    sign_in(&c, &app, "sre@example.com", "sre's long password").await;

    // Type, never save, leave.
    c.goto(&app.url(&format!("/postmortems/{id}/edit")))
        .await
        .unwrap();
    wait_for_text(&c, "Edit postmortem").await;
    assert!(
        c.find(Locator::Id("draft-restore")).await.is_err(),
        "nothing to restore yet"
    );
    c.find(Locator::Id("lessons"))
        .await
        .unwrap()
        .send_keys("Compaction needs its own IO budget.")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while c
        .execute("return window.localStorage.length;", vec![])
        .await
        .unwrap()
        == serde_json::json!(0)
    {
        assert!(Instant::now() < deadline, "the draft was not kept");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.goto(&app.url(&format!("/postmortems/{id}")))
        .await
        .unwrap();
    let stored = app.store.postmortem(id).await.unwrap();
    assert_eq!(stored.sections.lessons, "", "nothing reached the server");

    // Someone else saves meanwhile.
    let mut other = heliograph_store::postmortems::PostmortemEdit {
        title: stored.title.clone(),
        sections: stored.sections.clone(),
        timeline: stored.timeline.clone(),
    };
    other.sections.root_cause = "Someone else's analysis".into();
    app.store
        .update_postmortem(id, &other, stored.version, &heliograph_store::Audit::cli())
        .await
        .unwrap();

    // Back on the form: the text is offered back, with the version it was typed against.
    c.goto(&app.url(&format!("/postmortems/{id}/edit")))
        .await
        .unwrap();
    wait_for_text(&c, "that was not saved").await;
    let lessons = c.find(Locator::Id("lessons")).await.unwrap();
    assert_eq!(lessons.prop("value").await.unwrap().as_deref(), Some(""));
    c.find(Locator::Id("draft-restore-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(
        lessons.prop("value").await.unwrap().as_deref(),
        Some("Compaction needs its own IO budget.")
    );
    let version = c
        .find(Locator::Css("input[name=version]"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    assert_eq!(version, Some(stored.version.to_string()), "the old version");

    // Save is refused, the other save stands, and the text is still in the form.
    c.find(Locator::Id("save"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(
        &c,
        "Someone else saved this postmortem while you were editing",
    )
    .await;
    let lessons = c.find(Locator::Id("lessons")).await.unwrap();
    assert_eq!(
        lessons.prop("value").await.unwrap().as_deref(),
        Some("Compaction needs its own IO budget.")
    );
    let now = app.store.postmortem(id).await.unwrap();
    assert_eq!(now.sections.root_cause, "Someone else's analysis");
    assert_eq!(now.sections.lessons, "");

    c.close().await.unwrap();
    let _ = std::fs::remove_dir_all(&profiles);
    app.stop().await;
}
