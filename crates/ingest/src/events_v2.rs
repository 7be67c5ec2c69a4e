//! PagerDuty Events API v2 (`POST /v2/enqueue`), as PagerDuty documents it in "Send an Alert
//! Event" (developer.pagerduty.com, events-API-v2/02-Trigger-Events.md) and its OpenAPI schema.

use serde_json::Value;

use crate::check::{Check, read_object};
use crate::{Action, AlertEvent, InvalidEvent, MAX_DEDUP_KEY_CHARS, ROUTING_KEY_CHARS};

/// Parses one Events API v2 alert event into its `routing_key` (the integration key) and the
/// event.
///
/// Follows PagerDuty: `routing_key` (exactly 32 characters) and `event_action`
/// (`trigger`/`acknowledge`/`resolve`) are required; `dedup_key` (at most 255 characters) is
/// required for acknowledge and resolve, and when a trigger has none the event's `dedup_key` is
/// `None` and the caller generates one; a trigger needs `payload.summary` (at most 1,024
/// characters), `payload.source` and `payload.severity` (`critical`/`error`/`warning`/`info`).
/// `payload.timestamp`, `component`, `group`, `class`, `custom_details` (any JSON), `links`,
/// `images`, `client` and `client_url` are optional; on acknowledge and resolve the payload is
/// optional, and what it holds is still checked. All problems are reported together in
/// PagerDuty's wording, e.g. `'payload.summary' is missing or blank`.
pub fn parse_events_v2(bytes: &[u8]) -> Result<(String, AlertEvent), InvalidEvent> {
    let body = read_object(bytes)?;
    let mut check = Check::default();

    let routing_key = match check.string(body.get("routing_key"), "routing_key") {
        Some(key) if key.trim().is_empty() => {
            check.missing("routing_key");
            None
        }
        Some(key) if key.trim().chars().count() != ROUTING_KEY_CHARS => {
            check.error(format!(
                "Length of 'routing_key' is incorrect (should be {ROUTING_KEY_CHARS} characters)"
            ));
            None
        }
        Some(key) if key.trim().chars().any(char::is_control) => {
            check.error("'routing_key' must not contain control characters".to_owned());
            None
        }
        Some(key) => Some(key.trim().to_owned()),
        None => {
            if body.get("routing_key").is_none_or(Value::is_null) {
                check.missing("routing_key");
            }
            None
        }
    };

    let action = event_action(&mut check, body.get("event_action"));
    let dedup_key = check.key(body.get("dedup_key"), "dedup_key", MAX_DEDUP_KEY_CHARS);
    let needs_key = matches!(action, Some(Action::Acknowledge | Action::Resolve));
    if needs_key && dedup_key.is_none() && body.get("dedup_key").is_none_or(is_blank) {
        check.missing("dedup_key");
    }

    let trigger = action == Some(Action::Trigger);
    let mut event = AlertEvent::new(action.unwrap_or(Action::Trigger));
    event.dedup_key = dedup_key;

    let payload = check.object(body.get("payload"), "payload");
    if payload.is_none() && trigger && body.get("payload").is_none_or(Value::is_null) {
        check.missing("payload");
    }
    if let Some(payload) = payload {
        event.summary = check.summary(payload.get("summary"), "payload.summary", trigger);
        event.source = check.required_line(payload.get("source"), "payload.source", trigger);
        event.severity = check.severity(payload.get("severity"), "payload.severity", trigger);
        event.timestamp = check.timestamp(payload.get("timestamp"), "payload.timestamp");
        event.component = check.line(payload.get("component"), "payload.component");
        event.group = check.line(payload.get("group"), "payload.group");
        event.class = check.line(payload.get("class"), "payload.class");
        event.details = payload
            .get("custom_details")
            .cloned()
            .unwrap_or(Value::Null);
    }
    event.links = check.links(body.get("links"), "links");
    event.images = check.images(body.get("images"), "images");
    event.client = check.line(body.get("client"), "client");
    event.client_url = check.url(body.get("client_url"), "client_url");

    check.finish(())?;
    match (routing_key, action) {
        (Some(key), Some(_)) => Ok((key, event)),
        // Unreachable: a missing key or action has always recorded an error above.
        _ => Err(InvalidEvent::invalid(vec![
            "'routing_key' and 'event_action' are required".to_owned(),
        ])),
    }
}

/// A JSON string that is empty after trimming.
fn is_blank(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

/// `event_action`: trigger, acknowledge or resolve.
fn event_action(check: &mut Check, value: Option<&Value>) -> Option<Action> {
    let Some(raw) = check.string(value, "event_action") else {
        if value.is_none_or(Value::is_null) {
            check.missing("event_action");
        }
        return None;
    };
    let s = raw.trim();
    if s.is_empty() {
        check.missing("event_action");
        return None;
    }
    [Action::Trigger, Action::Acknowledge, Action::Resolve]
        .into_iter()
        .find(|a| a.as_str().eq_ignore_ascii_case(s))
        .or_else(|| {
            check.error(format!(
                "'event_action' is invalid (must be one of the following: 'trigger', 'acknowledge' or 'resolve'), got {}",
                crate::check::quote(s)
            ));
            None
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{AlertSeverity, Image, Link, MAX_PAYLOAD_BYTES};

    const KEY: &str = "e93facc04764012d7bfb002500d5d1a6";

    fn trigger() -> Value {
        json!({
            "routing_key": KEY,
            "event_action": "trigger",
            "payload": {"summary": "DISK at 99%", "source": "db1", "severity": "critical"}
        })
    }

    fn parse(v: &Value) -> Result<(String, AlertEvent), InvalidEvent> {
        parse_events_v2(&serde_json::to_vec(v).unwrap())
    }

    fn errors(v: &Value) -> Vec<String> {
        let err = parse(v).unwrap_err();
        assert_eq!(err.status, "invalid event");
        assert_eq!(err.message, "Event object is invalid");
        err.errors
    }

    #[test]
    fn minimal_trigger() {
        let (key, event) = parse(&trigger()).unwrap();
        assert_eq!(key, KEY);
        assert_eq!(event.action, Action::Trigger);
        assert_eq!(event.dedup_key, None, "the caller generates one");
        assert_eq!(event.summary.as_deref(), Some("DISK at 99%"));
        assert_eq!(event.source.as_deref(), Some("db1"));
        assert_eq!(event.severity, Some(AlertSeverity::Critical));
        assert_eq!(event.details, Value::Null);
    }

    #[test]
    fn empty_object_lists_the_required_fields() {
        assert_eq!(
            errors(&json!({})),
            [
                "'routing_key' is missing or blank",
                "'event_action' is missing or blank"
            ]
        );
    }

    #[test]
    fn trigger_without_payload_fields() {
        let mut v = trigger();
        v["payload"] = json!({"summary": "  ", "custom_details": {"a": 1}});
        assert_eq!(
            errors(&v),
            [
                "'payload.summary' is missing or blank",
                "'payload.source' is missing or blank",
                "'payload.severity' is missing or blank",
            ]
        );
        v.as_object_mut().unwrap().remove("payload");
        assert_eq!(errors(&v), ["'payload' is missing or blank"]);
        v["payload"] = json!("text");
        assert_eq!(errors(&v), ["'payload' must be an object, got a string"]);
    }

    #[test]
    fn routing_key_length() {
        let mut v = trigger();
        v["routing_key"] = json!("samplekeyhere");
        assert_eq!(
            errors(&v),
            ["Length of 'routing_key' is incorrect (should be 32 characters)"]
        );
        v["routing_key"] = json!(12);
        assert_eq!(errors(&v), ["'routing_key' must be a string, got a number"]);
        v["routing_key"] = json!(format!("  {KEY}\n"));
        assert_eq!(parse(&v).unwrap().0, KEY, "trimmed");
        v["routing_key"] = json!(format!("{}\u{7}", &KEY[1..]));
        assert_eq!(
            errors(&v),
            ["'routing_key' must not contain control characters"]
        );
    }

    #[test]
    fn event_action_values() {
        let mut v = trigger();
        v["event_action"] = json!("escalate");
        assert_eq!(
            errors(&v),
            [
                "'event_action' is invalid (must be one of the following: 'trigger', 'acknowledge' or 'resolve'), got \"escalate\""
            ]
        );
        v["event_action"] = json!(" RESOLVE ");
        v["dedup_key"] = json!("k");
        assert_eq!(parse(&v).unwrap().1.action, Action::Resolve);
        v["event_action"] = json!(["trigger"]);
        assert_eq!(
            errors(&v),
            ["'event_action' must be a string, got an array"]
        );
    }

    #[test]
    fn severity_values() {
        let mut v = trigger();
        v["payload"]["severity"] = json!("fatal");
        assert_eq!(
            errors(&v),
            [
                "'payload.severity' is invalid (must be one of the following: 'critical', 'error', 'warning' or 'info'), got \"fatal\""
            ]
        );
        for (s, want) in [
            ("critical", AlertSeverity::Critical),
            ("Error", AlertSeverity::Error),
            (" warning ", AlertSeverity::Warning),
            ("INFO", AlertSeverity::Info),
        ] {
            v["payload"]["severity"] = json!(s);
            assert_eq!(parse(&v).unwrap().1.severity, Some(want), "{s}");
        }
    }

    #[test]
    fn acknowledge_and_resolve_need_a_dedup_key_and_nothing_else() {
        for action in ["acknowledge", "resolve"] {
            let v = json!({"routing_key": KEY, "event_action": action});
            assert_eq!(errors(&v), ["'dedup_key' is missing or blank"]);
            let v = json!({"routing_key": KEY, "event_action": action, "dedup_key": " "});
            assert_eq!(errors(&v), ["'dedup_key' is missing or blank"]);
            let v = json!({"routing_key": KEY, "event_action": action, "dedup_key": "srv01/mysql"});
            let (_, event) = parse(&v).unwrap();
            assert_eq!(event.dedup_key.as_deref(), Some("srv01/mysql"));
            assert_eq!(event.summary, None);
            assert_eq!(event.severity, None);
        }
    }

    #[test]
    fn a_payload_on_resolve_is_still_checked() {
        let v = json!({"routing_key": KEY, "event_action": "resolve", "dedup_key": "k",
            "payload": {"severity": "fatal", "summary": "fixed"}});
        assert_eq!(errors(&v).len(), 1);
        let v = json!({"routing_key": KEY, "event_action": "resolve", "dedup_key": "k",
            "payload": {"summary": "fixed"}});
        assert_eq!(parse(&v).unwrap().1.summary.as_deref(), Some("fixed"));
    }

    #[test]
    fn dedup_key_limits() {
        let mut v = trigger();
        v["dedup_key"] = json!("k".repeat(255));
        assert_eq!(parse(&v).unwrap().1.dedup_key.unwrap().len(), 255);
        v["dedup_key"] = json!("k".repeat(256));
        assert_eq!(
            errors(&v),
            ["Length of 'dedup_key' is too long (should be at most 255 characters, got 256)"]
        );
        v["dedup_key"] = json!("a\nb");
        assert_eq!(
            errors(&v),
            ["'dedup_key' must not contain control characters"]
        );
        v["dedup_key"] = json!(7);
        assert_eq!(errors(&v), ["'dedup_key' must be a string, got a number"]);
        v["dedup_key"] = json!("");
        assert_eq!(parse(&v).unwrap().1.dedup_key, None, "blank on trigger");
    }

    #[test]
    fn summary_limit_counts_characters_after_cleaning() {
        let mut v = trigger();
        v["payload"]["summary"] = json!("é".repeat(1024));
        assert!(parse(&v).is_ok());
        v["payload"]["summary"] = json!(format!("  {}  \n", "x".repeat(1024)));
        assert!(parse(&v).is_ok(), "trimmed before counting");
        v["payload"]["summary"] = json!("x".repeat(1025));
        assert_eq!(
            errors(&v),
            [
                "Length of 'payload.summary' is too long (should be at most 1024 characters, got 1025)"
            ]
        );
    }

    #[test]
    fn control_characters_in_text_become_spaces() {
        let mut v = trigger();
        v["payload"]["summary"] = json!("DISK\nat\u{0}99%\t on \u{202E}db1");
        v["payload"]["component"] = json!(" mysql\r\n");
        v["payload"]["group"] = json!("   ");
        let (_, event) = parse(&v).unwrap();
        assert_eq!(event.summary.as_deref(), Some("DISK at 99% on db1"));
        assert_eq!(event.component.as_deref(), Some("mysql"));
        assert_eq!(event.group, None, "blank is absent");
    }

    #[test]
    fn timestamps() {
        let mut v = trigger();
        v["payload"]["timestamp"] = json!("2015-07-17T08:42:58.315+0000");
        let t = parse(&v).unwrap().1.timestamp.unwrap();
        assert_eq!(t.to_rfc3339(), "2015-07-17T08:42:58.315+00:00");
        v["payload"]["timestamp"] = json!("last tuesday");
        assert_eq!(
            errors(&v),
            [
                "'payload.timestamp' is invalid (must be an ISO 8601 date-time with a time zone offset, e.g. 2015-07-17T08:42:58.315Z), got \"last tuesday\""
            ]
        );
        v["payload"]["timestamp"] = json!(1437122578);
        assert_eq!(
            errors(&v),
            ["'payload.timestamp' must be a string, got a number"]
        );
    }

    #[test]
    fn links_and_images() {
        let mut v = trigger();
        v["links"] =
            json!([{"href": "https://example.com/", "text": "Link text"}, {"href": "http://x.io"}]);
        v["images"] = json!([{"src": "https://example.com/a.png", "href": "https://example.com/", "alt": "A"}]);
        let (_, event) = parse(&v).unwrap();
        assert_eq!(
            event.links,
            [
                Link {
                    href: "https://example.com/".into(),
                    text: Some("Link text".into())
                },
                Link {
                    href: "http://x.io".into(),
                    text: None
                },
            ]
        );
        assert_eq!(
            event.images,
            [Image {
                src: "https://example.com/a.png".into(),
                href: Some("https://example.com/".into()),
                alt: Some("A".into())
            }]
        );

        v["links"] = json!([{"text": "no href"}, "x", {"href": "javascript:alert(1)"}]);
        v["images"] = json!({"src": "https://example.com/a.png"});
        assert_eq!(
            errors(&v),
            [
                "'links[0].href' is missing or blank",
                "'links[1]' must be an object, got a string",
                "'links[2].href' is invalid (must be an http:// or https:// URL), got \"javascript:alert(1)\"",
                "'images' must be an array, got an object",
            ]
        );
    }

    #[test]
    fn client_and_unknown_fields() {
        let mut v = trigger();
        v["client"] = json!("Sample Monitoring Service");
        v["client_url"] = json!("https://monitoring.example.com");
        v["something_new"] = json!({"deep": [1, 2, 3]});
        v["payload"]["extra"] = json!(true);
        let (_, event) = parse(&v).unwrap();
        assert_eq!(event.client.as_deref(), Some("Sample Monitoring Service"));
        assert_eq!(
            event.client_url.as_deref(),
            Some("https://monitoring.example.com")
        );
        v["client_url"] = json!("ftp://x");
        assert_eq!(errors(&v).len(), 1);
    }

    #[test]
    fn nulls_count_as_absent() {
        let mut v = trigger();
        v["dedup_key"] = Value::Null;
        v["payload"]["component"] = Value::Null;
        v["links"] = Value::Null;
        assert!(parse(&v).is_ok());
        v["payload"]["summary"] = Value::Null;
        assert_eq!(errors(&v), ["'payload.summary' is missing or blank"]);
    }

    #[test]
    fn custom_details_may_be_any_json() {
        for details in [
            json!({"a": {"b": [1]}}),
            json!("text"),
            json!(3),
            json!([1]),
        ] {
            let mut v = trigger();
            v["payload"]["custom_details"] = details.clone();
            assert_eq!(parse(&v).unwrap().1.details, details);
        }
    }

    #[test]
    fn not_json_or_not_an_object() {
        let err = parse_events_v2(b"{not json").unwrap_err();
        assert_eq!(err.status, "Unrecognized object");
        assert_eq!(err.message, "Event object format is unrecognized");
        assert!(err.errors[0].starts_with("JSON parse error: "), "{err:?}");
        assert!(err.is_unrecognized());
        let err = parse_events_v2(b"[1]").unwrap_err();
        assert_eq!(err.errors, ["Event must be a JSON object, got an array"]);
        assert!(parse_events_v2(b"").unwrap_err().is_unrecognized());
    }

    #[test]
    fn payload_size_limit() {
        let pad = " ".repeat(MAX_PAYLOAD_BYTES);
        let body = format!("{}{pad}", serde_json::to_string(&trigger()).unwrap());
        let err = parse_events_v2(body.as_bytes()).unwrap_err();
        assert_eq!(err.status, "invalid event");
        assert!(
            err.errors[0].starts_with("Event payload is too large"),
            "{err:?}"
        );
        let body = serde_json::to_vec(&trigger()).unwrap();
        let padded = [&body[..], &vec![b' '; MAX_PAYLOAD_BYTES - body.len()]].concat();
        assert!(
            parse_events_v2(&padded).is_ok(),
            "exactly the limit is fine"
        );
    }

    #[test]
    fn error_serializes_as_pagerduty_body() {
        let err = parse(&json!({"routing_key": KEY, "event_action": "trigger", "payload": {}}))
            .unwrap_err();
        assert_eq!(
            serde_json::to_value(&err).unwrap(),
            json!({
                "status": "invalid event",
                "message": "Event object is invalid",
                "errors": [
                    "'payload.summary' is missing or blank",
                    "'payload.source' is missing or blank",
                    "'payload.severity' is missing or blank",
                ]
            })
        );
        assert!(
            err.to_string()
                .starts_with("Event object is invalid: 'payload.summary'")
        );
    }
}
