//! Prometheus Alertmanager webhooks (`webhook_config`, payload version 4), as documented in
//! Alertmanager's configuration reference; Grafana's webhook contact point sends the same shape
//! (with `version` "1" and a few extra fields), so it is accepted too.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Utc};
use serde_json::{Map, Value, json};

use crate::check::{Check, clean_line, is_http_url, read_object, truncate};
use crate::{
    Action, AlertEvent, AlertSeverity, InvalidEvent, Link, MAX_DEDUP_KEY_CHARS, MAX_SUMMARY_CHARS,
};

/// Parses an Alertmanager webhook notification into one event per alert.
///
/// - Each alert is keyed by its `fingerprint`, or, when the sender left it out, by
///   [`label_fingerprint`] of its labels (the same value Alertmanager would have sent).
/// - `status` `firing` triggers and `resolved` resolves; an alert without a status takes the
///   group's.
/// - The summary is `annotations.summary`, else `annotations.description`, else
///   `labels.alertname`, else the label set; it is cleaned to one line and cut to 1,024
///   characters (cut, not refused: the sender's templates made it, and a page must not be lost
///   over length).
/// - The severity comes from `labels.severity` by [`severity_from_label`].
/// - `source` is `labels.instance` (else `labels.job`); `class` is `labels.alertname`; the
///   timestamp is `startsAt` when firing and `endsAt` (else `startsAt`) when resolved; Go's zero
///   time `0001-01-01T00:00:00Z` means unset.
/// - `generatorURL` (and Grafana's `silenceURL`, `dashboardURL`, `panelURL`) become links when
///   they are http(s) URLs and are skipped otherwise; `externalURL` becomes `client_url`.
/// - `details` is `{"alert": <the alert as sent>, "groupKey", "receiver", "externalURL",
///   "truncatedAlerts"}`.
///
/// `version` is not checked (Alertmanager sends "4", Grafana "1"). A problem in any alert
/// refuses the whole notification, so nothing is half-applied; an empty `alerts` list is `Ok`
/// with no events.
pub fn parse_alertmanager(bytes: &[u8]) -> Result<Vec<AlertEvent>, InvalidEvent> {
    let body = read_object(bytes)?;
    let mut check = Check::default();

    let group_status = status(&mut check, body.get("status"), "status");
    let alerts = check.array(body.get("alerts"), "alerts");
    if alerts.is_none() && body.get("alerts").is_none_or(Value::is_null) {
        check.missing("alerts");
    }
    let client_url = body
        .get("externalURL")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|u| is_http_url(u))
        .map(str::to_owned);
    let group = |alert: &Value| {
        json!({
            "alert": alert,
            "groupKey": body.get("groupKey"),
            "receiver": body.get("receiver"),
            "externalURL": body.get("externalURL"),
            "truncatedAlerts": body.get("truncatedAlerts"),
        })
    };

    let mut events = Vec::new();
    for (i, raw) in alerts.into_iter().flatten().enumerate() {
        let path = format!("alerts[{i}]");
        let Some(alert) = check.object(Some(raw), &path) else {
            if raw.is_null() {
                check.missing(&path);
            }
            continue;
        };
        if let Some(mut event) = one_alert(&mut check, alert, &path, group_status) {
            event.details = group(raw);
            event.client_url.clone_from(&client_url);
            events.push(event);
        }
    }
    check.finish(events)
}

/// One element of `alerts`, or `None` with its problems recorded.
fn one_alert(
    check: &mut Check,
    alert: &Map<String, Value>,
    path: &str,
    group_status: Option<Action>,
) -> Option<AlertEvent> {
    let errors_before = check.len();
    let action = match status(check, alert.get("status"), &format!("{path}.status")) {
        Some(action) => Some(action),
        None if alert.get("status").is_none_or(Value::is_null) => {
            if group_status.is_none() {
                check.missing(&format!("{path}.status"));
            }
            group_status
        }
        None => None,
    };
    let labels = string_map(check, alert.get("labels"), &format!("{path}.labels"));
    let annotations = string_map(
        check,
        alert.get("annotations"),
        &format!("{path}.annotations"),
    );
    let fingerprint = check.key(
        alert.get("fingerprint"),
        &format!("{path}.fingerprint"),
        MAX_DEDUP_KEY_CHARS,
    );
    let starts_at = go_time(check, alert.get("startsAt"), &format!("{path}.startsAt"));
    let ends_at = go_time(check, alert.get("endsAt"), &format!("{path}.endsAt"));
    if check.len() != errors_before {
        return None;
    }
    let action = action?;

    let mut event = AlertEvent::new(action);
    event.dedup_key = Some(fingerprint.unwrap_or_else(|| label_fingerprint(&labels)));
    event.summary = Some(summary(&labels, &annotations));
    event.severity = Some(severity_from_label(
        labels.get("severity").map(String::as_str),
    ));
    event.source = ["instance", "job"]
        .iter()
        .filter_map(|k| labels.get(*k))
        .map(|v| clean_line(v))
        .find(|v| !v.is_empty());
    event.class = labels
        .get("alertname")
        .map(|v| clean_line(v))
        .filter(|v| !v.is_empty());
    event.timestamp = match action {
        Action::Resolve => ends_at.or(starts_at),
        _ => starts_at,
    };
    event.links = [
        ("generatorURL", "Source"),
        ("silenceURL", "Silence"),
        ("dashboardURL", "Dashboard"),
        ("panelURL", "Panel"),
    ]
    .iter()
    .filter_map(|(field, text)| {
        let href = alert.get(*field)?.as_str()?.trim();
        is_http_url(href).then(|| Link {
            href: href.to_owned(),
            text: Some((*text).to_owned()),
        })
    })
    .collect();
    Some(event)
}

/// `firing` → trigger, `resolved` → resolve; absent is `None` without an error.
fn status(check: &mut Check, value: Option<&Value>, path: &str) -> Option<Action> {
    let s = check.string(value, path)?.trim();
    if s.eq_ignore_ascii_case("firing") {
        Some(Action::Trigger)
    } else if s.eq_ignore_ascii_case("resolved") {
        Some(Action::Resolve)
    } else if s.is_empty() {
        check.missing(path);
        None
    } else {
        check.error(format!(
            "'{path}' is invalid (must be one of the following: 'firing' or 'resolved'), got {}",
            crate::check::quote(s)
        ));
        None
    }
}

/// Labels or annotations: an object whose values are all strings.
fn string_map(check: &mut Check, value: Option<&Value>, path: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for (k, v) in check.object(value, path).into_iter().flatten() {
        if let Some(s) = check.string(Some(v), &format!("{path}.{k}")) {
            map.insert(k.clone(), s.to_owned());
        }
    }
    map
}

/// An RFC 3339 time as Go writes it; the zero time means unset.
fn go_time(check: &mut Check, value: Option<&Value>, path: &str) -> Option<DateTime<Utc>> {
    check.timestamp(value, path).filter(|t| t.year() > 1)
}

/// The summary of an alert (see [`parse_alertmanager`]).
fn summary(labels: &BTreeMap<String, String>, annotations: &BTreeMap<String, String>) -> String {
    let chosen = [
        annotations.get("summary"),
        annotations.get("description"),
        labels.get("alertname"),
    ]
    .into_iter()
    .flatten()
    .map(|s| clean_line(s))
    .find(|s| !s.is_empty());
    let line = chosen.unwrap_or_else(|| {
        let pairs: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}={}", crate::check::quote(v)))
            .collect();
        let text = clean_line(&format!("{{{}}}", pairs.join(", ")));
        if pairs.is_empty() {
            "Alert without labels".to_owned()
        } else {
            text
        }
    });
    truncate(line, MAX_SUMMARY_CHARS)
}

/// Maps the conventional `severity` label to an alert severity, ignoring case and spaces.
///
/// | label | severity |
/// | --- | --- |
/// | critical, crit, page, fatal, emergency, p1, sev1 | critical |
/// | error, err, high, major, p2, sev2 | error |
/// | warning, warn, medium, minor, p3, sev3 | warning |
/// | info, informational, low, notice, none, p4, sev4 | info |
/// | absent or anything else | **error** |
///
/// Unknown means error (SEV2, pages now) because that is the default severity of
/// Alertmanager's own `pagerduty_config`, so alerts route as they did through PagerDuty, and
/// because a page sent too loudly beats one missed.
pub fn severity_from_label(label: Option<&str>) -> AlertSeverity {
    let label = label.unwrap_or("").trim().to_ascii_lowercase();
    match label.as_str() {
        "critical" | "crit" | "page" | "fatal" | "emergency" | "p1" | "sev1" => {
            AlertSeverity::Critical
        }
        "warning" | "warn" | "medium" | "minor" | "p3" | "sev3" => AlertSeverity::Warning,
        "info" | "informational" | "low" | "notice" | "none" | "p4" | "sev4" => AlertSeverity::Info,
        _ => AlertSeverity::Error,
    }
}

/// The fingerprint Alertmanager gives a label set: 64-bit FNV-1a over the labels sorted by
/// name, each name and value followed by the byte 0xff, as 16 lowercase hex digits
/// (prometheus/common `model.LabelSet.Fingerprint`). Used as the dedup key of an alert sent
/// without one, so it matches the key the same alert has when the fingerprint is present.
pub fn label_fingerprint(labels: &BTreeMap<String, String>) -> String {
    const OFFSET: u64 = 14_695_981_039_346_656_037;
    const PRIME: u64 = 1_099_511_628_211;
    let add = |mut h: u64, bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(PRIME);
        }
        h
    };
    let mut h = OFFSET;
    for (name, value) in labels {
        h = add(h, name.as_bytes());
        h = add(h, &[0xff]);
        h = add(h, value.as_bytes());
        h = add(h, &[0xff]);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(extra: Value) -> Value {
        let mut a = json!({
            "status": "firing",
            "labels": {"alertname": "HighLatency", "instance": "gw-1:9090", "job": "gateway", "severity": "page"},
            "annotations": {"summary": "p99 over 2s on gw-1"},
            "startsAt": "2026-03-01T10:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph?g0.expr=x",
            "fingerprint": "0123456789abcdef"
        });
        for (k, v) in extra.as_object().unwrap() {
            a[k] = v.clone();
        }
        a
    }

    fn parse(alerts: Vec<Value>) -> Result<Vec<AlertEvent>, InvalidEvent> {
        let body = json!({
            "version": "4", "groupKey": "{}:{alertname=\"HighLatency\"}", "truncatedAlerts": 0,
            "status": "firing", "receiver": "heliograph", "groupLabels": {}, "commonLabels": {},
            "commonAnnotations": {}, "externalURL": "http://alertmanager:9093", "alerts": alerts
        });
        parse_alertmanager(&serde_json::to_vec(&body).unwrap())
    }

    fn errors(alerts: Vec<Value>) -> Vec<String> {
        parse(alerts).unwrap_err().errors
    }

    #[test]
    fn one_firing_alert() {
        let events = parse(vec![alert(json!({}))]).unwrap();
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(e.action, Action::Trigger);
        assert_eq!(e.dedup_key.as_deref(), Some("0123456789abcdef"));
        assert_eq!(e.summary.as_deref(), Some("p99 over 2s on gw-1"));
        assert_eq!(e.severity, Some(AlertSeverity::Critical));
        assert_eq!(e.source.as_deref(), Some("gw-1:9090"));
        assert_eq!(e.class.as_deref(), Some("HighLatency"));
        assert_eq!(
            e.timestamp.unwrap().to_rfc3339(),
            "2026-03-01T10:00:00+00:00"
        );
        assert_eq!(e.links.len(), 1);
        assert_eq!(e.links[0].text.as_deref(), Some("Source"));
        assert_eq!(e.client_url.as_deref(), Some("http://alertmanager:9093"));
        assert_eq!(e.details["alert"]["fingerprint"], "0123456789abcdef");
        assert_eq!(e.details["receiver"], "heliograph");
        assert_eq!(e.details["truncatedAlerts"], 0);
    }

    #[test]
    fn resolved_uses_ends_at() {
        let events = parse(vec![alert(
            json!({"status": "resolved", "endsAt": "2026-03-01T10:05:00.5+01:00"}),
        )])
        .unwrap();
        assert_eq!(events[0].action, Action::Resolve);
        assert_eq!(
            events[0].timestamp.unwrap().to_rfc3339(),
            "2026-03-01T09:05:00.500+00:00"
        );
    }

    #[test]
    fn zero_time_is_unset() {
        let events = parse(vec![alert(
            json!({"status": "resolved", "startsAt": "0001-01-01T00:00:00Z"}),
        )])
        .unwrap();
        assert_eq!(events[0].timestamp, None);
    }

    #[test]
    fn summary_falls_back() {
        let e = |annotations: Value, labels: Value| {
            parse(vec![alert(
                json!({"annotations": annotations, "labels": labels}),
            )])
            .unwrap()[0]
                .summary
                .clone()
                .unwrap()
        };
        let labels = json!({"alertname": "DiskFull", "instance": "db1"});
        assert_eq!(
            e(json!({"summary": "s", "description": "d"}), labels.clone()),
            "s"
        );
        assert_eq!(
            e(
                json!({"summary": " \n", "description": "d\nmore"}),
                labels.clone()
            ),
            "d more"
        );
        assert_eq!(e(json!({}), labels), "DiskFull");
        assert_eq!(
            e(json!({}), json!({"b": "2", "a": "1"})),
            "{a=\"1\", b=\"2\"}"
        );
        assert_eq!(e(json!({}), json!({})), "Alert without labels");
        let long = e(json!({"description": "x".repeat(5000)}), json!({}));
        assert_eq!(long.chars().count(), MAX_SUMMARY_CHARS);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn severity_mapping() {
        for (label, want) in [
            (Some("critical"), AlertSeverity::Critical),
            (Some("page"), AlertSeverity::Critical),
            (Some(" High "), AlertSeverity::Error),
            (Some("error"), AlertSeverity::Error),
            (Some("warn"), AlertSeverity::Warning),
            (Some("WARNING"), AlertSeverity::Warning),
            (Some("info"), AlertSeverity::Info),
            (Some("none"), AlertSeverity::Info),
            (Some("bananas"), AlertSeverity::Error),
            (None, AlertSeverity::Error),
        ] {
            assert_eq!(severity_from_label(label), want, "{label:?}");
        }
    }

    #[test]
    fn missing_fingerprint_uses_the_label_hash() {
        let a = alert(json!({"fingerprint": null}));
        let b = alert(json!({"fingerprint": "  "}));
        let one = parse(vec![a]).unwrap()[0].dedup_key.clone().unwrap();
        let two = parse(vec![b]).unwrap()[0].dedup_key.clone().unwrap();
        assert_eq!(one, two);
        assert_eq!(one.len(), 16);
        let mut reordered = BTreeMap::new();
        reordered.insert("severity".to_owned(), "page".to_owned());
        reordered.insert("job".to_owned(), "gateway".to_owned());
        reordered.insert("instance".to_owned(), "gw-1:9090".to_owned());
        reordered.insert("alertname".to_owned(), "HighLatency".to_owned());
        assert_eq!(label_fingerprint(&reordered), one);
        assert_eq!(label_fingerprint(&BTreeMap::new()), "cbf29ce484222325");
        // The test vector of prometheus/common model.TestMetricToFingerprint: 5799056148416392346.
        let mut vector = BTreeMap::new();
        vector.insert("name".to_owned(), "garland, briggs".to_owned());
        vector.insert("fear".to_owned(), "love is not enough".to_owned());
        assert_eq!(
            label_fingerprint(&vector),
            format!("{:016x}", 5_799_056_148_416_392_346_u64)
        );
    }

    #[test]
    fn status_falls_back_to_the_group() {
        let events = parse(vec![alert(json!({"status": null}))]).unwrap();
        assert_eq!(events[0].action, Action::Trigger);
        let body = json!({"alerts": [alert(json!({"status": null}))]});
        let err = parse_alertmanager(&serde_json::to_vec(&body).unwrap()).unwrap_err();
        assert_eq!(err.errors, ["'alerts[0].status' is missing or blank"]);
    }

    #[test]
    fn each_error_names_its_alert_and_field() {
        assert_eq!(
            errors(vec![
                alert(json!({})),
                alert(json!({"status": "pending"})),
                alert(json!({"labels": {"severity": 3}})),
                alert(json!({"annotations": "text"})),
                alert(json!({"startsAt": "soon"})),
                alert(json!({"fingerprint": "f".repeat(256)})),
                json!("not an alert"),
                Value::Null,
            ]),
            [
                "'alerts[1].status' is invalid (must be one of the following: 'firing' or 'resolved'), got \"pending\"",
                "'alerts[2].labels.severity' must be a string, got a number",
                "'alerts[3].annotations' must be an object, got a string",
                "'alerts[4].startsAt' is invalid (must be an ISO 8601 date-time with a time zone offset, e.g. 2015-07-17T08:42:58.315Z), got \"soon\"",
                "Length of 'alerts[5].fingerprint' is too long (should be at most 255 characters, got 256)",
                "'alerts[6]' must be an object, got a string",
                "'alerts[7]' is missing or blank",
            ]
        );
    }

    #[test]
    fn top_level_problems() {
        let err = parse_alertmanager(b"{}").unwrap_err();
        assert_eq!(err.errors, ["'alerts' is missing or blank"]);
        let err = parse_alertmanager(br#"{"alerts": {}, "status": "maybe"}"#).unwrap_err();
        assert_eq!(
            err.errors,
            [
                "'status' is invalid (must be one of the following: 'firing' or 'resolved'), got \"maybe\"",
                "'alerts' must be an array, got an object"
            ]
        );
        assert!(parse_alertmanager(b"[]").unwrap_err().is_unrecognized());
        assert_eq!(parse(vec![]).unwrap(), vec![]);
    }

    #[test]
    fn bad_links_are_skipped_not_refused() {
        let events = parse(vec![alert(
            json!({"generatorURL": "javascript:x", "silenceURL": "https://g/silence"}),
        )])
        .unwrap();
        assert_eq!(
            events[0].links,
            [Link {
                href: "https://g/silence".into(),
                text: Some("Silence".into())
            }]
        );
    }
}
