//! Alerts: the list (filtered by status, service and integration) and one alert with its
//! events and raw payloads. Also what the service page and the API share about integrations:
//! checking a new one, its URL, and the configuration snippets shown with a new key.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use heliograph_store::alerts::{Alert, AlertEventRow, AlertFilter, Integration, NewIntegration};
use heliograph_store::services::Service;
use heliograph_store::{Audit, Page};
use serde::Deserialize;

use crate::auth::{Auth, Viewer, hash_secret};
use crate::error::render_with_status;
use crate::ingest::new_integration_key;
use crate::views::{FieldErrors, Shell};
use crate::{AppError, AppState};

// ---------------------------------------------------------------- integrations, shared

/// The integration types, with the words people see.
pub const KINDS: &[(&str, &str)] = &[
    ("events_v2", "PagerDuty Events API v2"),
    ("alertmanager", "Alertmanager webhook"),
    ("generic", "Generic webhook"),
    ("heartbeat", "Heartbeat"),
];

/// Bounds of a heartbeat's expected interval, in seconds (a minute to a week).
pub const MIN_HEARTBEAT_SECONDS: i64 = 60;
pub const MAX_HEARTBEAT_SECONDS: i64 = 604_800;

/// The label of an integration type.
pub fn kind_label(kind: &str) -> &'static str {
    KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, l)| *l)
        .unwrap_or("Integration")
}

/// An integration to add, checked.
#[derive(Debug, Clone)]
pub struct IntegrationInput {
    pub kind: &'static str,
    pub name: String,
    pub heartbeat_interval_seconds: Option<i64>,
}

/// Checks a new integration's type, name and (for heartbeats) interval, recording each
/// problem under its field (`type`, `name`, `heartbeat_interval_seconds`).
pub fn parse_integration(
    kind: &str,
    name: &str,
    interval: Option<i64>,
    interval_field_raw: Option<&str>,
    errors: &mut FieldErrors,
) -> Option<IntegrationInput> {
    let kind = match KINDS.iter().find(|(k, _)| *k == kind.trim()) {
        Some((k, _)) => Some(*k),
        None => {
            errors.add(
                "type",
                "Choose events_v2, alertmanager, generic or heartbeat",
            );
            None
        }
    };
    let name = name.trim();
    if name.chars().count() > 100 || name.chars().any(char::is_control) {
        errors.add(
            "name",
            "Name must be at most 100 characters, without control characters",
        );
    }
    let mut seconds = None;
    if interval.is_some() && kind.is_some_and(|k| k != "heartbeat") {
        errors.add(
            "heartbeat_interval_seconds",
            "Only heartbeat integrations have an interval",
        );
    }
    if kind == Some("heartbeat") {
        let parsed = match (interval, interval_field_raw.map(str::trim)) {
            (Some(n), _) => Some(n),
            (None, Some(raw)) if !raw.is_empty() => raw.parse::<i64>().ok().or(Some(-1)),
            _ => None,
        };
        match parsed {
            None => errors.add(
                "heartbeat_interval_seconds",
                "A heartbeat needs its expected interval in seconds",
            ),
            Some(n) if (MIN_HEARTBEAT_SECONDS..=MAX_HEARTBEAT_SECONDS).contains(&n) => {
                seconds = Some(n)
            }
            Some(_) => errors.add(
                "heartbeat_interval_seconds",
                format!(
                    "Give whole seconds from {MIN_HEARTBEAT_SECONDS} to {MAX_HEARTBEAT_SECONDS} (a minute to a week)"
                ),
            ),
        }
    }
    if !errors.is_empty() {
        return None;
    }
    let kind = kind?;
    Some(IntegrationInput {
        kind,
        name: if name.is_empty() {
            kind_label(kind).to_owned()
        } else {
            name.to_owned()
        },
        heartbeat_interval_seconds: seconds,
    })
}

/// The installation's base URL without its trailing slash.
pub fn base(state: &AppState) -> String {
    state.base_url.as_str().trim_end_matches('/').to_owned()
}

/// Where an integration's events go: `/v2/enqueue` for Events v2 (the key travels as the
/// `routing_key`), `/integrations/{key}/{type}` for the others.
pub fn integration_url(base: &str, kind: &str, key: &str) -> String {
    if kind == "events_v2" {
        format!("{base}/v2/enqueue")
    } else {
        format!("{base}/integrations/{key}/{kind}")
    }
}

/// The URL with the key left out, for lists.
pub fn url_pattern(base: &str, i: &Integration) -> String {
    integration_url(base, &i.kind, &format!("{}…", i.key_prefix))
}

/// A new key and its hashed form and prefix.
pub fn new_key() -> (String, String, String) {
    let key = new_integration_key();
    let hash = hash_secret(&key);
    let prefix = key.chars().take(8).collect();
    (key, hash, prefix)
}

/// Adds an integration; returns it with its key (shown once).
pub async fn add_integration(
    state: &AppState,
    service_id: i64,
    input: &IntegrationInput,
    audit: &Audit,
) -> Result<(Integration, String), heliograph_store::StoreError> {
    let (key, hash, prefix) = new_key();
    let created = state
        .store
        .create_integration(
            &NewIntegration {
                service_id,
                kind: input.kind,
                name: &input.name,
                key_hash: &hash,
                key_prefix: &prefix,
                heartbeat_interval_seconds: input.heartbeat_interval_seconds,
            },
            audit,
        )
        .await?;
    Ok((created, key))
}

/// Gives an integration a new key; the old one stops working at once.
pub async fn rotate_integration(
    state: &AppState,
    id: i64,
    audit: &Audit,
) -> Result<(Integration, String), heliograph_store::StoreError> {
    let (key, hash, prefix) = new_key();
    let after = state
        .store
        .rotate_integration_key(id, &hash, &prefix, audit)
        .await?;
    Ok((after, key))
}

/// A key just made, with what to paste where; shown once.
pub struct KeyShown {
    pub integration: Integration,
    pub key: String,
    pub url: String,
    /// (title, text) pairs.
    pub snippets: Vec<(String, String)>,
}

impl KeyShown {
    pub fn new(base: &str, integration: Integration, key: String) -> Self {
        let url = integration_url(base, &integration.kind, &key);
        let snippets = snippets(base, &integration, &key);
        KeyShown {
            integration,
            key,
            url,
            snippets,
        }
    }

    /// The words for its type.
    pub fn label(&self) -> &'static str {
        kind_label(&self.integration.kind)
    }
}

/// Copy-paste configuration for an integration with this key.
pub fn snippets(base: &str, i: &Integration, key: &str) -> Vec<(String, String)> {
    let url = integration_url(base, &i.kind, key);
    match i.kind.as_str() {
        "events_v2" => vec![
            (
                "Alertmanager (alertmanager.yml)".into(),
                format!(
                    "receivers:\n  - name: heliograph\n    pagerduty_configs:\n      - routing_key: {key}\n        url: {url}\n"
                ),
            ),
            (
                "Test with curl (a trigger event)".into(),
                format!(
                    "curl -sS -X POST {url} -H 'Content-Type: application/json' -d '{{\"routing_key\": \"{key}\", \"event_action\": \"trigger\", \"dedup_key\": \"test-1\", \"payload\": {{\"summary\": \"Test alert from curl\", \"source\": \"my-host\", \"severity\": \"warning\"}}}}'"
                ),
            ),
        ],
        "alertmanager" => vec![(
            "Alertmanager (alertmanager.yml)".into(),
            format!(
                "receivers:\n  - name: heliograph\n    webhook_configs:\n      - url: {url}\n        send_resolved: true\n"
            ),
        )],
        "generic" => vec![(
            "curl".into(),
            format!(
                "curl -sS -X POST {url} -H 'Content-Type: application/json' -d '{{\"summary\": \"Disk almost full on db-1\", \"severity\": \"warning\", \"dedup_key\": \"disk-db-1\", \"action\": \"trigger\", \"details\": {{}}}}'"
            ),
        )],
        _ => {
            // Check in twice per interval, so one slow or lost run does not open an incident.
            let half = i.heartbeat_interval_seconds.unwrap_or(300) / 2;
            let when = if half < 3600 {
                format!("*/{} * * * *", (half / 60).max(1))
            } else if half < 86_400 {
                format!("0 */{} * * *", half / 3600)
            } else {
                "0 0 * * *".to_owned()
            };
            vec![(
                "cron (or at the end of the job, with &&)".into(),
                format!("{when} curl -fsS -m 10 -X POST {url} > /dev/null"),
            )]
        }
    }
}

/// A payload as pretty-printed JSON when it is JSON, as received otherwise.
pub fn pretty(payload: &str) -> String {
    serde_json::from_str::<serde_json::Value>(payload)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| payload.to_owned())
}

// ---------------------------------------------------------------- the list

#[derive(Debug, Default, Deserialize, Clone)]
pub struct ListQuery {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub service_id: String,
    #[serde(default)]
    pub integration_id: String,
    #[serde(default)]
    pub cursor: String,
}

/// One row of the list.
struct AlertRow {
    alert: Alert,
    service: String,
    integration: String,
    last_seen: String,
}

#[derive(Template)]
#[template(path = "alerts/list.html")]
struct ListPage {
    shell: Shell,
    rows: Vec<AlertRow>,
    query: ListQuery,
    errors: FieldErrors,
    services: Vec<Service>,
    integrations: Vec<(Integration, String)>,
    next_link: Option<String>,
}

fn encode(q: &ListQuery) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("status", &q.status),
        ("service_id", &q.service_id),
        ("integration_id", &q.integration_id),
        ("cursor", &q.cursor),
    ] {
        if !v.is_empty() {
            ser.append_pair(k, v);
        }
    }
    ser.finish()
}

/// Every integration with its service's name.
async fn all_integrations(
    state: &AppState,
    services: &[Service],
) -> Result<Vec<(Integration, String)>, AppError> {
    let names: std::collections::HashMap<i64, &str> =
        services.iter().map(|s| (s.id, s.name.as_str())).collect();
    let mut out: Vec<(Integration, String)> = state
        .store
        .all_integrations()
        .await?
        .into_iter()
        .filter_map(|i| {
            let name = names.get(&i.service_id)?.to_string();
            Some((i, name))
        })
        .collect();
    // As before: by service name, then in order of creation.
    out.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.id.cmp(&b.0.id)));
    Ok(out)
}

pub async fn list(
    State(state): State<AppState>,
    _auth: Auth<Viewer>,
    shell: Shell,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, AppError> {
    let query = query.map(|q| q.0).unwrap_or_default();
    let mut errors = FieldErrors::default();
    let mut filter = AlertFilter::default();
    match query.status.as_str() {
        "" | "all" => {}
        s @ ("triggered" | "acknowledged" | "resolved") => filter.status = Some(s.to_owned()),
        _ => errors.add("status", "Choose triggered, acknowledged or resolved"),
    }
    if !query.service_id.is_empty() {
        filter.service_id = errors.check(
            "service_id",
            query
                .service_id
                .parse::<i64>()
                .map_err(|_| "Choose a service from the list"),
        );
    }
    if !query.integration_id.is_empty() {
        filter.integration_id = errors.check(
            "integration_id",
            query
                .integration_id
                .parse::<i64>()
                .map_err(|_| "Choose an integration from the list"),
        );
    }
    let cursor = query.cursor.parse::<i64>().ok().filter(|c| *c > 0);
    let services = state.store.services().await?;
    let integrations = all_integrations(&state, &services).await?;
    let page = if errors.is_empty() {
        state.store.alerts(&filter, 50, cursor).await?
    } else {
        Page {
            items: Vec::new(),
            next_cursor: None,
        }
    };
    let rows = page
        .items
        .into_iter()
        .map(|a| AlertRow {
            service: services
                .iter()
                .find(|s| s.id == a.service_id)
                .map(|s| s.name.clone())
                .unwrap_or_else(|| "—".into()),
            integration: integrations
                .iter()
                .find(|(i, _)| i.id == a.integration_id)
                .map(|(i, _)| i.name.clone())
                .unwrap_or_else(|| "—".into()),
            last_seen: shell.time(&a.last_seen_at),
            alert: a,
        })
        .collect();
    let next_link = page.next_cursor.map(|c| {
        let mut q = query.clone();
        q.cursor = c.to_string();
        format!("/alerts?{}", encode(&q))
    });
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok(render_with_status(
        status,
        &ListPage {
            shell,
            rows,
            query,
            errors,
            services,
            integrations,
            next_link,
        },
    ))
}

// ---------------------------------------------------------------- one alert

/// One event, its payload pretty-printed.
struct EventRow {
    at: String,
    action: String,
    payload: String,
}

#[derive(Template)]
#[template(path = "alerts/show.html")]
struct AlertPage {
    shell: Shell,
    alert: Alert,
    service: Service,
    integration: Option<Integration>,
    first_seen: String,
    last_seen: String,
    resolved: String,
    events: Vec<EventRow>,
}

/// How many of an alert's latest events its page and the API show.
pub const EVENTS_SHOWN: i64 = 50;

pub async fn show(
    State(state): State<AppState>,
    _auth: Auth<Viewer>,
    shell: Shell,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let id = super::parse_id(&id)?;
    let alert = state.store.alert(id).await?;
    let service = state.store.service(alert.service_id).await?;
    let integration = state.store.integration(alert.integration_id).await.ok();
    let events = state
        .store
        .alert_events(id, EVENTS_SHOWN)
        .await?
        .into_iter()
        .rev()
        .map(|e: AlertEventRow| EventRow {
            at: shell.time(&e.at),
            action: e.action,
            payload: pretty(&e.payload),
        })
        .collect();
    Ok(render_with_status(
        StatusCode::OK,
        &AlertPage {
            first_seen: shell.time(&alert.first_seen_at),
            last_seen: shell.time(&alert.last_seen_at),
            resolved: shell.time_opt(&alert.resolved_at),
            shell,
            alert,
            service,
            integration,
            events,
        },
    ))
}
