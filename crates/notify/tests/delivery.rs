//! Delivery against real receivers: aiosmtpd for email, an axum server for webhooks.

use std::time::{Duration, SystemTime};

use heliograph_notify::testing::{SmtpSink, WebhookSink};
use heliograph_notify::{
    Channel, Email, IDEMPOTENCY_HEADER, Message, SIGNATURE_HEADER, SendError, Webhook,
    email_channel, verify_signature,
};

const WAIT: Duration = Duration::from_secs(10);

fn page(to: &str) -> Message {
    Message {
        to: to.into(),
        subject: "[SEV1] #42 LLM gateway 5xx > 20%".into(),
        text: "LLM gateway 5xx > 20%\nAcknowledge: http://127.0.0.1/a/tok".into(),
        html: Some(
            "<p>LLM gateway 5xx &gt; 20%</p><a href=\"http://127.0.0.1/a/tok\">Acknowledge</a>"
                .into(),
        ),
        json: Some(serde_json::json!({"incident": {"number": 42, "severity": "SEV1"}})),
        idempotency_key: "page:42:e1:l1:r0:u7:c3".into(),
    }
}

#[tokio::test]
async fn email_with_text_and_html_arrives() {
    let smtp = SmtpSink::start().await;
    let email = Email::new(&smtp.url(), "Heliograph <pager@heliograph.test>").expect("config");
    email
        .send(&page("Ana <ana@example.com>"))
        .await
        .expect("sent");

    let mails = smtp.wait_for(1, WAIT).await;
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.subject, "[SEV1] #42 LLM gateway 5xx > 20%");
    assert_eq!(mail.from, "pager@heliograph.test");
    assert_eq!(mail.to, ["ana@example.com"]);
    let text = mail.text.as_deref().expect("a text part");
    assert!(
        text.contains("Acknowledge: http://127.0.0.1/a/tok"),
        "{text}"
    );
    let html = mail.html.as_deref().expect("an HTML part");
    assert!(
        html.contains("<a href=\"http://127.0.0.1/a/tok\">Acknowledge</a>"),
        "{html}"
    );
    assert_eq!(
        mail.header(IDEMPOTENCY_HEADER),
        Some("page:42:e1:l1:r0:u7:c3")
    );
    let id = mail.header("Message-ID").expect("a Message-ID");
    assert!(id.starts_with("<hg.page-42-e1-l1-r0-u7-c3."), "{id}");
    assert!(id.ends_with("@heliograph.test>"), "{id}");
}

#[tokio::test]
async fn plain_text_email_through_the_configured_channel() {
    let smtp = SmtpSink::start().await;
    let channel = email_channel(Some(&smtp.url()), None).expect("config");
    let mut message = page("bob@example.com");
    message.html = None;
    channel.send(&message).await.expect("sent");
    let mails = smtp.wait_for(1, WAIT).await;
    assert_eq!(mails[0].from, "heliograph@localhost");
    assert_eq!(mails[0].to, ["bob@example.com"]);
    assert!(mails[0].html.is_none());
    assert!(
        mails[0]
            .text
            .as_deref()
            .unwrap_or_default()
            .contains("Acknowledge")
    );
}

#[tokio::test]
async fn mails_one_after_another_share_one_connection() {
    let smtp = SmtpSink::start().await;
    let email = Email::new(&smtp.url(), "pager@heliograph.test").expect("config");
    for to in ["ana@example.com", "bob@example.com", "cy@example.com"] {
        email.send(&page(to)).await.expect("sent");
    }
    let mails = smtp.wait_for(3, WAIT).await;
    // aiosmtpd writes the client's address and port into each mail.
    let peers: Vec<_> = mails.iter().map(|m| m.header("X-Peer")).collect();
    assert!(peers[0].is_some(), "{peers:?}");
    assert!(peers.iter().all(|p| *p == peers[0]), "{peers:?}");

    // Two at once need two connections; both go back to the pool for the next ones.
    for pair in [["dee", "eve"], ["fay", "gus"]] {
        let [a, b] = pair.map(|name| page(&format!("{name}@example.com")));
        let (a, b) = tokio::join!(email.send(&a), email.send(&b));
        a.expect("sent");
        b.expect("sent");
    }
    let mails = smtp.wait_for(7, WAIT).await;
    let mut peers: Vec<_> = mails.iter().filter_map(|m| m.header("X-Peer")).collect();
    peers.sort();
    peers.dedup();
    assert_eq!(peers.len(), 2, "{peers:?}");
}

#[tokio::test]
async fn smtp_outage_is_temporary_and_delivery_resumes_after_restart() {
    let mut smtp = SmtpSink::start().await;
    let email = Email::new(&smtp.url(), "pager@heliograph.test").expect("config");
    email
        .send(&page("ana@example.com"))
        .await
        .expect("first mail");
    smtp.wait_for(1, WAIT).await;

    smtp.stop();
    let err = email
        .send(&page("ana@example.com"))
        .await
        .expect_err("server is down");
    assert!(matches!(err, SendError::Temporary(_)), "{err:?}");

    smtp.restart().await;
    // The pooled connection to the old process is dead; the transport must notice and reconnect.
    email
        .send(&page("ana@example.com"))
        .await
        .expect("sent after the restart");
    let mails = smtp.wait_for(2, WAIT).await;
    assert_eq!(mails.len(), 2, "mail received before the outage is kept");
}

#[tokio::test]
async fn nothing_listening_is_temporary() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let email =
        Email::new(&format!("smtp://127.0.0.1:{port}"), "pager@heliograph.test").expect("config");
    let err = email
        .send(&page("ana@example.com"))
        .await
        .expect_err("refused");
    assert!(err.is_temporary(), "{err:?}");
}

#[tokio::test]
async fn webhook_is_signed_and_carries_the_json() {
    let sink = WebhookSink::start().await;
    let hook = Webhook::json("hook-secret").expect("client");
    hook.send(&page(&sink.url())).await.expect("delivered");

    let requests = sink.wait_for(1, WAIT).await;
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/hook");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.header(IDEMPOTENCY_HEADER),
        Some("page:42:e1:l1:r0:u7:c3")
    );
    assert_eq!(
        request.json(),
        serde_json::json!({"incident": {"number": 42, "severity": "SEV1"}})
    );
    let signature = request.header(SIGNATURE_HEADER).expect("signed");
    let five_minutes = Duration::from_secs(300);
    assert!(verify_signature(
        b"hook-secret",
        signature,
        &request.body,
        SystemTime::now(),
        five_minutes
    ));
    assert!(!verify_signature(
        b"another-secret",
        signature,
        &request.body,
        SystemTime::now(),
        five_minutes
    ));
    assert!(!verify_signature(
        b"hook-secret",
        signature,
        b"{\"tampered\":true}",
        SystemTime::now(),
        five_minutes
    ));
}

#[tokio::test]
async fn webhook_errors_are_classified() {
    let sink = WebhookSink::start().await;
    let hook = Webhook::json("s").expect("client");
    let message = page(&sink.url());

    sink.fail_next(1);
    let err = hook.send(&message).await.expect_err("500");
    assert!(matches!(err, SendError::Temporary(_)), "{err:?}");

    sink.respond_next(1, axum::http::StatusCode::TOO_MANY_REQUESTS);
    let err = hook.send(&message).await.expect_err("429");
    assert!(matches!(err, SendError::Temporary(_)), "{err:?}");

    sink.respond_next(1, axum::http::StatusCode::NOT_FOUND);
    let err = hook.send(&message).await.expect_err("404");
    assert!(matches!(err, SendError::Permanent(_)), "{err:?}");
    assert!(err.reason().contains("404"), "{err:?}");

    hook.send(&message).await.expect("answers 200 again");
    let statuses: Vec<u16> = sink.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 429, 404, 200]);
}

#[tokio::test]
async fn slack_webhook_posts_text() {
    let sink = WebhookSink::start().await;
    let hook = Webhook::slack("s").expect("client");
    hook.send(&page(&sink.url())).await.expect("delivered");
    let requests = sink.wait_for(1, WAIT).await;
    assert_eq!(
        requests[0].json(),
        serde_json::json!({"text": "LLM gateway 5xx > 20%\nAcknowledge: http://127.0.0.1/a/tok"})
    );
    assert!(requests[0].header(SIGNATURE_HEADER).is_some());
}
