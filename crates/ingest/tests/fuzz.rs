//! Fuzz-style properties: whatever arrives, every parser answers `Ok` or `Err`, never panics,
//! and what it accepts keeps the promises of `AlertEvent`.
//!
//! Inputs: arbitrary bytes; JSON-looking text; arbitrary JSON built from the field names and
//! values the parsers look for (so the generated objects reach deep into the parsers); and the
//! documentation fixtures with fields dropped or replaced by arbitrary JSON.
//!
//! `PROPTEST_CASES` sets the number of cases (default 512, a few seconds in a debug build).

use heliograph_ingest::{
    Action, AlertEvent, InvalidEvent, MAX_DEDUP_KEY_CHARS, MAX_SUMMARY_CHARS, parse_alertmanager,
    parse_events_v2, parse_generic,
};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Map, Value};

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512)
}

/// Field names the parsers read, plus a few they don't.
const KEYS: &[&str] = &[
    "routing_key",
    "event_action",
    "dedup_key",
    "payload",
    "summary",
    "source",
    "severity",
    "timestamp",
    "component",
    "group",
    "class",
    "custom_details",
    "links",
    "images",
    "href",
    "text",
    "src",
    "alt",
    "client",
    "client_url",
    "version",
    "groupKey",
    "truncatedAlerts",
    "status",
    "receiver",
    "externalURL",
    "alerts",
    "labels",
    "annotations",
    "startsAt",
    "endsAt",
    "generatorURL",
    "fingerprint",
    "alertname",
    "description",
    "instance",
    "job",
    "action",
    "details",
    "unknown",
    "",
];

/// String values that mean something to the parsers, and some that are traps.
const WORDS: &[&str] = &[
    "trigger",
    "acknowledge",
    "resolve",
    "RESOLVE",
    "firing",
    "resolved",
    "critical",
    "error",
    "warning",
    "info",
    "page",
    "fatal",
    "e93facc04764012d7bfb002500d5d1a6",
    "2015-07-17T08:42:58.315+0000",
    "0001-01-01T00:00:00Z",
    "2026-03-01T10:00:00Z",
    "+262143-12-31T23:59:59Z",
    "https://example.com/",
    "javascript:alert(1)",
    "http://",
    "",
    " ",
    "\n\t",
    "\u{202E}",
    "\u{0}",
    "é",
    "🚨",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop::sample::select(WORDS).prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        (1usize..3000).prop_map(|n| Value::from("x".repeat(n))),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        4 => prop::sample::select(KEYS).prop_map(str::to_owned),
                        1 => any::<String>()
                    ],
                    inner
                ),
                0..8
            )
            .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

const FIXTURES: &[&str] = &[
    "pagerduty_trigger_openapi.json",
    "pagerduty_trigger_docs.json",
    "pagerduty_acknowledge_docs.json",
    "pagerduty_resolve_docs.json",
    "alertmanager_probe_failure_v4.json",
    "grafana_webhook_firing.json",
    "alertmanager_group_firing.json",
    "alertmanager_group_resolved.json",
    "generic_contract.json",
];

/// Every path to a value inside `v` (object keys and array indices), the root excluded.
fn paths(v: &Value, at: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                at.push(Step::Key(k.clone()));
                out.push(at.clone());
                paths(child, at, out);
                at.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                at.push(Step::Index(i));
                out.push(at.clone());
                paths(child, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

#[derive(Clone, Debug)]
enum Mutation {
    Drop(Index),
    Replace(Index, Value),
}

/// Applies one mutation at the path `which` picks; a no-op on a value without children.
fn mutate(root: &mut Value, mutation: &Mutation) {
    let mut all = Vec::new();
    paths(root, &mut Vec::new(), &mut all);
    if all.is_empty() {
        return;
    }
    let (which, replacement) = match mutation {
        Mutation::Drop(i) => (i, None),
        Mutation::Replace(i, v) => (i, Some(v.clone())),
    };
    let path = which.get(&all);
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut parent = &mut *root;
    for step in parent_path {
        parent = match step {
            Step::Key(k) => &mut parent[k.as_str()],
            Step::Index(i) => &mut parent[*i],
        };
    }
    match (last, replacement, parent) {
        (Step::Key(k), None, Value::Object(m)) => {
            m.remove(k);
        }
        (Step::Index(i), None, Value::Array(a)) => {
            a.remove(*i);
        }
        (Step::Key(k), Some(v), Value::Object(m)) => {
            m.insert(k.clone(), v);
        }
        (Step::Index(i), Some(v), Value::Array(a)) => a[*i] = v,
        _ => {}
    }
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<Index>().prop_map(Mutation::Drop),
        (any::<Index>(), json()).prop_map(|(i, v)| Mutation::Replace(i, v)),
    ]
}

/// What an accepted event promises.
fn check_event(e: &AlertEvent) -> Result<(), TestCaseError> {
    if e.action == Action::Trigger {
        let summary = e.summary.as_deref();
        prop_assert!(
            summary.is_some_and(|s| !s.is_empty()),
            "trigger without summary: {e:?}"
        );
        prop_assert!(e.severity.is_some(), "trigger without severity: {e:?}");
    }
    if let Some(s) = &e.summary {
        prop_assert!(s.chars().count() <= MAX_SUMMARY_CHARS);
        prop_assert!(
            !s.chars().any(char::is_control),
            "control character in {s:?}"
        );
        prop_assert_eq!(s.trim(), s.as_str());
    }
    if let Some(k) = &e.dedup_key {
        prop_assert!(!k.is_empty() && k.chars().count() <= MAX_DEDUP_KEY_CHARS);
        prop_assert!(!k.chars().any(char::is_control));
    } else {
        prop_assert_eq!(
            e.action,
            Action::Trigger,
            "only triggers may lack a dedup key"
        );
    }
    for href in e
        .links
        .iter()
        .map(|l| &l.href)
        .chain(e.images.iter().map(|i| &i.src))
    {
        prop_assert!(href.to_ascii_lowercase().starts_with("http"), "{href}");
    }
    Ok(())
}

fn check_error(e: &InvalidEvent) -> Result<(), TestCaseError> {
    prop_assert!(!e.errors.is_empty());
    prop_assert!(e.errors.iter().all(|line| !line.is_empty()));
    prop_assert!(e.errors.len() <= heliograph_ingest::MAX_ERRORS);
    Ok(())
}

/// Runs the three parsers on `bytes` and checks whatever they answer.
fn all_parsers(bytes: &[u8]) -> Result<(), TestCaseError> {
    match parse_events_v2(bytes) {
        Ok((key, e)) => {
            prop_assert_eq!(key.chars().count(), 32);
            check_event(&e)?;
        }
        Err(e) => check_error(&e)?,
    }
    match parse_alertmanager(bytes) {
        Ok(events) => events.iter().try_for_each(check_event)?,
        Err(e) => check_error(&e)?,
    }
    match parse_generic(bytes) {
        Ok(e) => check_event(&e)?,
        Err(e) => check_error(&e)?,
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        all_parsers(&bytes)?;
    }

    #[test]
    fn json_looking_text(text in r#"[\[\]{}",:0-9a-z \\.\-+eE]{0,300}"#) {
        all_parsers(text.as_bytes())?;
    }

    #[test]
    fn arbitrary_json(value in json()) {
        all_parsers(&serde_json::to_vec(&value).unwrap())?;
    }

    #[test]
    fn mutated_fixtures(
        which in prop::sample::select(FIXTURES),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let mut value = fixture(which);
        for m in &mutations {
            mutate(&mut value, m);
        }
        all_parsers(&serde_json::to_vec(&value).unwrap())?;
    }

    #[test]
    fn truncated_fixtures(which in prop::sample::select(FIXTURES), cut in any::<Index>()) {
        let bytes = serde_json::to_vec(&fixture(which)).unwrap();
        all_parsers(&bytes[..cut.index(bytes.len() + 1)])?;
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    for depth in [100, 1_000, 100_000] {
        let bytes = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert!(parse_events_v2(bytes.as_bytes()).is_err());
        let nested = format!(
            r#"{{"summary": "x", "details": {}{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        // Deeper than serde_json's recursion limit (128) is refused as unparseable.
        let result = parse_generic(nested.as_bytes());
        assert_eq!(result.is_ok(), depth < 128, "depth {depth}");
    }
}
