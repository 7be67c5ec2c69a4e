//! The example payloads of the formats' own documentation, parsed as their senders expect.
//!
//! Sources of tests/fixtures/ (copied as published; JSON comments removed where the docs had
//! them, since JSON has none):
//! - `pagerduty_trigger_openapi.json`: the "Example Event Body" of PagerDuty's Events API v2
//!   OpenAPI document (github.com/PagerDuty/api-schema, reference/events-v2/openapiv3.json).
//! - `pagerduty_trigger_docs.json`, `pagerduty_acknowledge_docs.json`,
//!   `pagerduty_resolve_docs.json`: the Trigger, Acknowledge and Resolve tabs of "Send an Alert
//!   Event" (developer.pagerduty.com; github.com/PagerDuty/developer-docs,
//!   docs/events-API-v2/02-Trigger-Events.md). Their routing keys are placeholders
//!   ("samplekeyhere") that PagerDuty itself refuses for length.
//! - `alertmanager_probe_failure_v4.json`: a version 4 Alertmanager notification published as
//!   the sample of the alertmanager-webhook-types crate (assets/sample-v4-payload.json); its
//!   labels were anonymised, so its fingerprint is not the hash of the labels shown.
//! - `grafana_webhook_firing.json`: the example JSON body of Grafana's webhook contact point
//!   (grafana.com/docs, "Configure the webhook notifier for Alerting").
//! - `alertmanager_group_firing.json`, `alertmanager_group_resolved.json`: a group of three
//!   alerts firing, then resolved, written by us in the exact shape of Alertmanager's
//!   `webhook_config` documentation (prometheus.io/docs/alerting/latest/configuration), with
//!   fingerprints computed as Alertmanager computes them.
//! - `generic_contract.json`: the generic webhook of CONTRACT.md.

use heliograph_domain::Severity;
use heliograph_ingest::{
    Action, AlertSeverity, Image, Link, label_fingerprint, parse_alertmanager, parse_events_v2,
    parse_generic,
};
use serde_json::{Value, json};

const KEY: &str = "e93facc04764012d7bfb002500d5d1a6";

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A fixture with its routing key replaced by a real-looking 32-character one.
fn with_key(name: &str) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&fixture(name)).unwrap();
    v["routing_key"] = json!(KEY);
    serde_json::to_vec(&v).unwrap()
}

#[test]
fn pagerduty_openapi_example_trigger() {
    let (key, e) = parse_events_v2(&fixture("pagerduty_trigger_openapi.json")).unwrap();
    assert_eq!(key, KEY);
    assert_eq!(e.action, Action::Trigger);
    assert_eq!(e.dedup_key.as_deref(), Some("srv01/mysql"));
    assert_eq!(
        e.summary.as_deref(),
        Some("DISK at 99% on machine prod-datapipe03.example.com")
    );
    assert_eq!(e.source.as_deref(), Some("prod-datapipe03.example.com"));
    assert_eq!(e.severity, Some(AlertSeverity::Critical));
    assert_eq!(
        e.severity.unwrap().default_incident_severity(),
        Severity::Sev1
    );
    assert_eq!(
        e.timestamp.unwrap().to_rfc3339(),
        "2015-07-17T08:42:58.315+00:00"
    );
    assert_eq!(e.component.as_deref(), Some("mysql"));
    assert_eq!(e.group.as_deref(), Some("prod-datapipe"));
    assert_eq!(e.class.as_deref(), Some("disk"));
    assert_eq!(
        e.details,
        json!({"free space": "1%", "ping time": "1500ms", "load avg": 0.75})
    );
    assert_eq!(
        e.links,
        [Link {
            href: "http://pagerduty.example.com".into(),
            text: Some("An example link.".into())
        }]
    );
    assert_eq!(e.images.len(), 1);
    assert_eq!(
        e.images[0].alt.as_deref(),
        Some("An example link with an image")
    );
    assert_eq!(e.client.as_deref(), Some("Sample Monitoring Service"));
    assert_eq!(
        e.client_url.as_deref(),
        Some("https://monitoring.service.com")
    );
}

#[test]
fn pagerduty_docs_examples_are_refused_for_their_placeholder_keys_as_pagerduty_does() {
    for name in [
        "pagerduty_trigger_docs.json",
        "pagerduty_acknowledge_docs.json",
        "pagerduty_resolve_docs.json",
    ] {
        let err = parse_events_v2(&fixture(name)).unwrap_err();
        assert_eq!(
            serde_json::to_value(&err).unwrap(),
            // The 400 answer in PagerDuty's own documentation.
            json!({
                "status": "invalid event",
                "message": "Event object is invalid",
                "errors": ["Length of 'routing_key' is incorrect (should be 32 characters)"]
            }),
            "{name}"
        );
    }
}

#[test]
fn pagerduty_docs_trigger_with_a_real_key() {
    let (key, e) = parse_events_v2(&with_key("pagerduty_trigger_docs.json")).unwrap();
    assert_eq!(key, KEY);
    assert_eq!(e.action, Action::Trigger);
    assert_eq!(e.dedup_key.as_deref(), Some("samplekeyhere"));
    assert_eq!(
        e.summary.as_deref(),
        Some("Example alert on host1.example.com")
    );
    assert_eq!(e.severity, Some(AlertSeverity::Info));
    assert_eq!(
        e.severity.unwrap().default_incident_severity(),
        Severity::Sev4
    );
    assert_eq!(e.class.as_deref(), Some("deploy"));
    assert_eq!(
        e.images,
        [Image {
            src: "https://www.pagerduty.com/wp-content/uploads/2016/05/pagerduty-logo-green.png"
                .into(),
            href: Some("https://example.com/".into()),
            alt: Some("Example text".into()),
        }]
    );
    assert_eq!(e.links[0].text.as_deref(), Some("Link text"));
}

#[test]
fn pagerduty_docs_trigger_without_dedup_key_leaves_it_to_the_caller() {
    let mut v: Value = serde_json::from_slice(&with_key("pagerduty_trigger_docs.json")).unwrap();
    v.as_object_mut().unwrap().remove("dedup_key");
    let (_, e) = parse_events_v2(&serde_json::to_vec(&v).unwrap()).unwrap();
    assert_eq!(e.dedup_key, None);
}

#[test]
fn pagerduty_docs_acknowledge_and_resolve_with_a_real_key() {
    for (name, action) in [
        ("pagerduty_acknowledge_docs.json", Action::Acknowledge),
        ("pagerduty_resolve_docs.json", Action::Resolve),
    ] {
        let (key, e) = parse_events_v2(&with_key(name)).unwrap();
        assert_eq!(key, KEY);
        assert_eq!(e.action, action);
        assert_eq!(e.dedup_key.as_deref(), Some("dedupkeyhere"));
        assert_eq!(e.summary, None);
    }
}

#[test]
fn alertmanager_v4_sample() {
    let events = parse_alertmanager(&fixture("alertmanager_probe_failure_v4.json")).unwrap();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.action, Action::Trigger);
    assert_eq!(e.dedup_key.as_deref(), Some("1a30ba71cca2921f"));
    assert_eq!(
        e.summary.as_deref(),
        Some("BlackBox Probe Failure: https://server.example.org")
    );
    assert_eq!(e.severity, Some(AlertSeverity::Critical));
    assert_eq!(e.source.as_deref(), Some("https://server.example.org"));
    assert_eq!(e.class.as_deref(), Some("ProbeFailure"));
    assert_eq!(
        e.timestamp.unwrap().to_rfc3339(),
        "2023-02-06T13:08:45.828+00:00"
    );
    assert_eq!(
        e.links[0].href,
        "http://prometheus.example.org:9090/graph?g0.expr=probe_success+%3D%3D+0&g0.tab=1"
    );
    assert_eq!(
        e.client_url.as_deref(),
        Some("http://prometheus.example.org:9093")
    );
    assert_eq!(e.details["receiver"], "sms");
    assert_eq!(e.details["alert"]["labels"]["monitor"], "master");
}

#[test]
fn grafana_example_two_alerts() {
    let events = parse_alertmanager(&fixture("grafana_webhook_firing.json")).unwrap();
    let keys: Vec<_> = events
        .iter()
        .map(|e| e.dedup_key.as_deref().unwrap())
        .collect();
    assert_eq!(keys, ["c6eadffa33fcdf37", "bc97ff14869b13e3"]);
    assert!(events.iter().all(|e| e.action == Action::Trigger));
    assert_eq!(
        events[0].summary.as_deref(),
        Some("This alert was triggered for zone us-1")
    );
    // No severity label: Alertmanager's PagerDuty default, error (SEV2).
    assert_eq!(events[0].severity, Some(AlertSeverity::Error));
    assert_eq!(
        events[1].timestamp.unwrap().to_rfc3339(),
        "2021-10-12T07:56:03.157076+00:00"
    );
    let texts: Vec<_> = events[0]
        .links
        .iter()
        .map(|l| l.text.as_deref().unwrap())
        .collect();
    assert_eq!(
        texts,
        ["Source", "Silence"],
        "empty dashboard/panel URLs skipped"
    );
    assert_eq!(events[0].details["alert"]["values"]["B"], 44.23943737541908);
}

#[test]
fn alertmanager_group_firing_then_resolved() {
    let firing = parse_alertmanager(&fixture("alertmanager_group_firing.json")).unwrap();
    let resolved = parse_alertmanager(&fixture("alertmanager_group_resolved.json")).unwrap();
    assert_eq!(firing.len(), 3);
    assert_eq!(resolved.len(), 3);
    for (f, r) in firing.iter().zip(&resolved) {
        assert_eq!(f.action, Action::Trigger);
        assert_eq!(r.action, Action::Resolve);
        assert_eq!(f.dedup_key, r.dedup_key, "one alert per fingerprint");
        assert_eq!(f.severity, Some(AlertSeverity::Critical), "severity=page");
        assert!(r.timestamp > f.timestamp, "resolved at endsAt");
    }
    let keys: std::collections::HashSet<_> = firing.iter().map(|e| &e.dedup_key).collect();
    assert_eq!(keys.len(), 3);
    assert_eq!(
        firing[1].summary.as_deref(),
        Some("p99 latency above 2s on gw-us-1:9090")
    );
}

#[test]
fn alertmanager_fingerprints_equal_the_label_hash() {
    let body: Value = serde_json::from_slice(&fixture("alertmanager_group_firing.json")).unwrap();
    for alert in body["alerts"].as_array().unwrap() {
        let labels = serde_json::from_value(alert["labels"].clone()).unwrap();
        assert_eq!(alert["fingerprint"], label_fingerprint(&labels));
    }
    // So a sender that leaves the fingerprint out still correlates with one that sends it.
    let mut stripped = body.clone();
    for alert in stripped["alerts"].as_array_mut().unwrap() {
        alert.as_object_mut().unwrap().remove("fingerprint");
    }
    let with = parse_alertmanager(&serde_json::to_vec(&body).unwrap()).unwrap();
    let without = parse_alertmanager(&serde_json::to_vec(&stripped).unwrap()).unwrap();
    let keys = |events: &[heliograph_ingest::AlertEvent]| {
        events
            .iter()
            .map(|e| e.dedup_key.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(&with), keys(&without));
}

#[test]
fn generic_contract_example() {
    let e = parse_generic(&fixture("generic_contract.json")).unwrap();
    assert_eq!(e.action, Action::Trigger);
    assert_eq!(
        e.dedup_key.as_deref(),
        Some("embedding-backfill/vector-db-2")
    );
    assert_eq!(e.severity, Some(AlertSeverity::Error));
    assert_eq!(
        e.severity.unwrap().default_incident_severity(),
        Severity::Sev2
    );
    assert_eq!(e.details["exit_code"], 137);
}

#[test]
fn each_parser_refuses_the_others_formats() {
    let pd = fixture("pagerduty_trigger_openapi.json");
    let am = fixture("alertmanager_probe_failure_v4.json");
    assert_eq!(
        parse_alertmanager(&pd).unwrap_err().errors,
        ["'alerts' is missing or blank"]
    );
    assert_eq!(
        parse_events_v2(&am).unwrap_err().errors,
        [
            "'routing_key' is missing or blank",
            "'event_action' is missing or blank"
        ]
    );
    assert_eq!(
        parse_generic(&am).unwrap_err().errors,
        ["'summary' is missing or blank"]
    );
}
