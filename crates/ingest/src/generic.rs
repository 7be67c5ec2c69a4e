//! The generic JSON webhook (CONTRACT.md): `{"summary", "severity", "dedup_key", "action",
//! "details"}`, for scripts and tools that speak neither PagerDuty nor Alertmanager.

use serde_json::Value;

use crate::check::{Check, quote, read_object};
use crate::{Action, AlertEvent, AlertSeverity, InvalidEvent, MAX_DEDUP_KEY_CHARS};

/// Parses a generic webhook event.
///
/// - `action`: `trigger` (the default when absent) or `resolve`.
/// - `summary`: required for a trigger, at most 1,024 characters, cleaned to one line.
/// - `severity`: `critical`, `error`, `warning` or `info`; absent means `error`, the same
///   default as for Alertmanager alerts without a severity label.
/// - `dedup_key`: at most 255 characters; required for resolve; on a trigger without one the
///   caller generates it.
/// - `details`: any JSON, kept as sent.
///
/// The smallest useful call is `{"summary": "nightly backup failed"}`.
pub fn parse_generic(bytes: &[u8]) -> Result<AlertEvent, InvalidEvent> {
    let body = read_object(bytes)?;
    let mut check = Check::default();

    let action = match check.string(body.get("action"), "action").map(str::trim) {
        None | Some("") => Some(Action::Trigger),
        Some(s) if s.eq_ignore_ascii_case("trigger") => Some(Action::Trigger),
        Some(s) if s.eq_ignore_ascii_case("resolve") => Some(Action::Resolve),
        Some(s) => {
            check.error(format!(
                "'action' is invalid (must be one of the following: 'trigger' or 'resolve'), got {}",
                quote(s)
            ));
            None
        }
    };
    // A wrongly typed action was recorded by `string`; don't also demand trigger fields.
    let action = if check.len() == 0 { action } else { None };
    let trigger = action == Some(Action::Trigger);

    let mut event = AlertEvent::new(action.unwrap_or(Action::Trigger));
    event.dedup_key = check.key(body.get("dedup_key"), "dedup_key", MAX_DEDUP_KEY_CHARS);
    if action == Some(Action::Resolve)
        && event.dedup_key.is_none()
        && body
            .get("dedup_key")
            .is_none_or(|v| v.as_str().is_some_and(|s| s.trim().is_empty()) || v.is_null())
    {
        check.missing("dedup_key");
    }
    event.summary = check.summary(body.get("summary"), "summary", trigger);
    event.severity = check.severity(body.get("severity"), "severity", false);
    if trigger && event.severity.is_none() && body.get("severity").is_none_or(is_blank) {
        event.severity = Some(AlertSeverity::Error);
    }
    event.details = body.get("details").cloned().unwrap_or(Value::Null);
    check.finish(event)
}

/// Absent-like: null or a blank string.
fn is_blank(value: &Value) -> bool {
    value.is_null() || value.as_str().is_some_and(|s| s.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(v: Value) -> Result<AlertEvent, InvalidEvent> {
        parse_generic(&serde_json::to_vec(&v).unwrap())
    }

    fn errors(v: Value) -> Vec<String> {
        parse(v).unwrap_err().errors
    }

    #[test]
    fn the_contract_example() {
        let e = parse(json!({
            "summary": "Feature store lag over 10 min",
            "severity": "warning",
            "dedup_key": "fs-lag",
            "action": "trigger",
            "details": {"lag_seconds": 640}
        }))
        .unwrap();
        assert_eq!(e.action, Action::Trigger);
        assert_eq!(e.summary.as_deref(), Some("Feature store lag over 10 min"));
        assert_eq!(e.severity, Some(AlertSeverity::Warning));
        assert_eq!(e.dedup_key.as_deref(), Some("fs-lag"));
        assert_eq!(e.details, json!({"lag_seconds": 640}));
    }

    #[test]
    fn defaults() {
        let e = parse(json!({"summary": "nightly backup failed"})).unwrap();
        assert_eq!(e.action, Action::Trigger);
        assert_eq!(e.severity, Some(AlertSeverity::Error));
        assert_eq!(e.dedup_key, None);
        assert_eq!(e.details, Value::Null);
    }

    #[test]
    fn resolve_needs_only_a_key() {
        let e = parse(json!({"action": "resolve", "dedup_key": "fs-lag"})).unwrap();
        assert_eq!(e.action, Action::Resolve);
        assert_eq!(e.summary, None);
        assert_eq!(e.severity, None);
        assert_eq!(
            errors(json!({"action": "resolve"})),
            ["'dedup_key' is missing or blank"]
        );
        assert_eq!(
            errors(json!({"action": "resolve", "dedup_key": ""})),
            ["'dedup_key' is missing or blank"]
        );
    }

    #[test]
    fn each_error() {
        assert_eq!(errors(json!({})), ["'summary' is missing or blank"]);
        assert_eq!(
            errors(json!({"summary": "x", "action": "acknowledge"})),
            [
                "'action' is invalid (must be one of the following: 'trigger' or 'resolve'), got \"acknowledge\""
            ]
        );
        assert_eq!(
            errors(json!({"summary": "x", "action": 1})),
            ["'action' must be a string, got a number"]
        );
        assert_eq!(
            errors(json!({"summary": "x", "severity": "sev1"})),
            [
                "'severity' is invalid (must be one of the following: 'critical', 'error', 'warning' or 'info'), got \"sev1\""
            ]
        );
        assert_eq!(
            errors(json!({"summary": ["x"]})),
            ["'summary' must be a string, got an array"]
        );
        assert_eq!(
            errors(json!({"summary": "x".repeat(1025)})),
            ["Length of 'summary' is too long (should be at most 1024 characters, got 1025)"]
        );
        assert_eq!(
            errors(json!({"summary": "x", "dedup_key": "k".repeat(256)})),
            ["Length of 'dedup_key' is too long (should be at most 255 characters, got 256)"]
        );
        assert!(parse_generic(b"\"summary\"").unwrap_err().is_unrecognized());
    }
}
