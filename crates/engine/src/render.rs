//! Notification texts: the subject line, plain text and HTML for email, JSON for webhooks and
//! a one-line message for Slack-compatible channels.

use heliograph_notify::Message;
use heliograph_store::paging::{EscalationContext, Notification};

/// The links a page carries.
#[derive(Clone)]
pub struct Links {
    pub acknowledge: String,
    pub resolve: String,
    pub incident: String,
}

/// `[SEV1] #42 LLM gateway 5xx > 20%`.
pub fn subject(ctx: &EscalationContext) -> String {
    format!("[{}] #{} {}", ctx.severity, ctx.number, ctx.title)
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The message for a notification.
pub fn message(
    n: &Notification,
    ctx: Option<&EscalationContext>,
    links: Option<&Links>,
    base_url: &str,
) -> Message {
    let services = ctx
        .map(|c| {
            c.services
                .iter()
                .map(|s| s.1.clone())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let mut text = String::new();
    let mut html = String::new();
    match (ctx, links) {
        (Some(ctx), Some(links)) => {
            text.push_str(&format!(
                "{}\nSeverity: {} ({})\nServices: {}\nTriggered: {} UTC\n\nAcknowledge: {}\nResolve: {}\nOpen the incident: {}\n\nThe acknowledge and resolve links work once, for 24 hours, without signing in; each opens a page with one button.\n",
                n.subject,
                ctx.severity,
                ctx.severity.meaning(),
                if services.is_empty() { "—" } else { &services },
                ctx.triggered_at.format("%Y-%m-%d %H:%M"),
                links.acknowledge,
                links.resolve,
                links.incident
            ));
            html.push_str(&format!(
                "<p><strong>{}</strong></p><p>Severity: {} ({})<br>Services: {}<br>Triggered: {} UTC</p>\
                 <p><a href=\"{}\">Acknowledge</a> · <a href=\"{}\">Resolve</a> · <a href=\"{}\">Open the incident</a></p>\
                 <p style=\"color:#555\">The acknowledge and resolve links work once, for 24 hours, without signing in; each opens a page with one button.</p>",
                escape(&n.subject),
                ctx.severity,
                escape(ctx.severity.meaning()),
                escape(if services.is_empty() { "—" } else { &services }),
                ctx.triggered_at.format("%Y-%m-%d %H:%M"),
                escape(&links.acknowledge),
                escape(&links.resolve),
                escape(&links.incident)
            ));
        }
        _ => {
            text.push_str(&format!(
                "{}\n\nThis is a message from Heliograph at {base_url}.\n",
                n.subject
            ));
            html.push_str(&format!(
                "<p>{}</p><p>This is a message from Heliograph at {}.</p>",
                escape(&n.subject),
                escape(base_url)
            ));
        }
    }
    let json = serde_json::json!({
        "event": n.purpose,
        "subject": n.subject,
        "incident": ctx.map(|c| serde_json::json!({
            "number": c.number,
            "title": c.title,
            "severity": c.severity.as_str(),
            "status": c.status.as_str(),
            "services": c.services.iter().map(|s| s.1.clone()).collect::<Vec<_>>(),
            "url": links.map(|l| l.incident.clone()),
        })),
        "acknowledge_url": links.map(|l| l.acknowledge.clone()),
        "resolve_url": links.map(|l| l.resolve.clone()),
        "idempotency_key": n.idempotency_key,
    });
    let slack = match links {
        Some(l) => format!(
            "{} — <{}|acknowledge> · <{}|resolve> · <{}|open>",
            n.subject, l.acknowledge, l.resolve, l.incident
        ),
        None => n.subject.clone(),
    };
    Message {
        to: n.address.clone(),
        subject: n.subject.clone(),
        text: if n.channel == "slack" { slack } else { text },
        html: Some(html),
        json: Some(json),
        idempotency_key: n.idempotency_key.clone(),
    }
}

/// The message for a team channel: the incident and a link to its page, never one-time
/// acknowledge or resolve links (anyone in the channel could follow them). A test message
/// (no incident) says what the channel will receive.
pub fn channel_message(
    n: &Notification,
    ctx: Option<&EscalationContext>,
    base_url: &str,
) -> Message {
    let (text, json) = match ctx {
        Some(ctx) => {
            let url = format!("{base_url}/incidents/{}", ctx.number);
            let services = ctx.services.iter().map(|s| s.1.clone()).collect::<Vec<_>>();
            let text = format!(
                "{}{} — <{url}|open the incident>",
                n.subject,
                if services.is_empty() {
                    String::new()
                } else {
                    format!(" · {}", services.join(", "))
                }
            );
            let json = serde_json::json!({
                "event": n.purpose,
                "subject": n.subject,
                "incident": {
                    "number": ctx.number,
                    "title": ctx.title,
                    "severity": ctx.severity.as_str(),
                    "status": ctx.status.as_str(),
                    "services": services,
                    "url": url,
                },
                "idempotency_key": n.idempotency_key,
            });
            (text, json)
        }
        None => (
            format!("{} (from Heliograph at {base_url})", n.subject),
            serde_json::json!({
                "event": n.purpose,
                "subject": n.subject,
                "incident": null,
                "idempotency_key": n.idempotency_key,
            }),
        ),
    };
    Message {
        to: n.address.clone(),
        subject: n.subject.clone(),
        html: Some(format!("<p>{}</p>", escape(&text))),
        text,
        json: Some(json),
        idempotency_key: n.idempotency_key.clone(),
    }
}
