//! Where monitoring sends alerts: PagerDuty's Events API v2 (`POST /v2/enqueue`), Alertmanager
//! and generic webhooks, and heartbeat check-ins. No session: the integration key
//! authenticates. Each accepted event is in the database before the answer goes out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use heliograph_ingest::{AlertEvent, InvalidEvent, MAX_PAYLOAD_BYTES};
use heliograph_store::alerts::{Incoming, Integration, Outcome};
use heliograph_store::{Store, StoreError};
use rand::Rng;
use serde_json::json;

use crate::AppState;
use crate::auth::hash_secret;

/// Events per second each integration key may send by default (twice that as a burst).
pub const RATE_PER_SECOND: f64 = 1000.0;

/// A token bucket per integration, per process.
pub struct Limiter {
    rate: f64,
    buckets: Mutex<HashMap<i64, (f64, Instant)>>,
}

impl Limiter {
    /// A limiter allowing `rate` events per second per integration.
    pub fn new(rate: f64) -> Self {
        Limiter {
            rate: rate.max(0.1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `n` tokens for `integration`; `Err(seconds)` to wait when there are too few.
    pub fn take(&self, integration: i64, n: f64) -> Result<(), u64> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let burst = self.rate * 2.0;
        let (tokens, last) = buckets.entry(integration).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(burst);
        *last = now;
        if *tokens >= n {
            *tokens -= n;
            Ok(())
        } else {
            Err((((n - *tokens) / self.rate).ceil() as u64).max(1))
        }
    }
}

/// A new integration key: 32 hexadecimal characters, the length PagerDuty senders expect.
pub fn new_integration_key() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/enqueue", post(enqueue))
        .route("/integrations/{key}/alertmanager", post(alertmanager))
        .route("/integrations/{key}/generic", post(generic))
        .route("/integrations/{key}/heartbeat", post(heartbeat))
}

/// PagerDuty's error body.
fn pd_error(status: StatusCode, e: &InvalidEvent) -> Response {
    (
        status,
        Json(json!({"status": e.status, "message": e.message, "errors": e.errors})),
    )
        .into_response()
}

fn pd_invalid(message: &str, error: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"status": "invalid event", "message": message, "errors": [error]})),
    )
        .into_response()
}

/// CONTRACT's error body, for the Heliograph-specific endpoints.
fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message.into()}})),
    )
        .into_response()
}

fn too_many(seconds: u64) -> Response {
    let mut r = (
        StatusCode::TOO_MANY_REQUESTS,
        Json(json!({"status": "throttle event", "message": "Requests for this integration key are arriving faster than the rate limit.", "errors": [format!("retry after {seconds} s")]})),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/json")
        })
        .unwrap_or(false)
}

fn incoming(event: &AlertEvent, dedup_key: String, payload: String) -> Incoming {
    Incoming {
        action: event.action.as_str(),
        dedup_key,
        summary: event.summary.clone(),
        source: event.source.clone(),
        severity: event.severity.map(|s| s.as_str()),
        payload,
    }
}

async fn find(state: &AppState, key: &str, kind: &str) -> Result<Integration, Response> {
    let found = state
        .store
        .integration_by_key(&hash_secret(key.trim()))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "integration lookup failed");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Try again shortly.",
            )
        })?;
    match found {
        Some(i) if i.kind == kind => Ok(i),
        Some(i) => Err(error(
            StatusCode::BAD_REQUEST,
            "wrong_endpoint",
            format!(
                "This key belongs to a {} integration; send its events to that integration's URL.",
                i.kind
            ),
        )),
        None => Err(unknown_key()),
    }
}

fn unknown_key() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "unknown_key",
        "No integration has this key.",
    )
}

/// PagerDuty's answer to a routing key that is not an Events API v2 integration's.
fn not_events_v2() -> Response {
    pd_invalid(
        "Event object is invalid",
        "'routing_key' is not the key of an Events API v2 integration".into(),
    )
}

/// Group commit of alert events on SQLite, where every write goes through one connection:
/// requests that arrive while a transaction is running wait in a queue, and the next
/// transaction takes all of them (up to [`Batcher::MAX_BATCH`]), each in its own savepoint.
/// Nothing waits for a batch to fill, so a lone event is stored as soon as the writer is free;
/// under load, one commit answers many senders. Every request is still answered only after
/// its events are committed. PostgreSQL runs requests side by side on its pool instead.
pub struct Batcher {
    queue: tokio::sync::mpsc::Sender<BatchRequest>,
}

type Outcomes = Result<Vec<Outcome>, StoreError>;

struct BatchRequest {
    integration: Integration,
    events: Vec<Incoming>,
    reply: tokio::sync::oneshot::Sender<Outcomes>,
}

impl Batcher {
    /// The most requests one transaction takes.
    pub const MAX_BATCH: usize = 128;

    /// Starts the task that drains the queue; it ends when the last `Batcher` is dropped.
    pub fn start(store: Store) -> Batcher {
        let (queue, mut rx) = tokio::sync::mpsc::channel::<BatchRequest>(4 * Self::MAX_BATCH);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(Self::MAX_BATCH);
            while rx.recv_many(&mut batch, Self::MAX_BATCH).await > 0 {
                let (requests, replies): (Vec<_>, Vec<_>) = batch
                    .drain(..)
                    .map(|r| ((r.integration, r.events), r.reply))
                    .unzip();
                match store.ingest_batch(&requests).await {
                    Ok(results) => {
                        for (reply, result) in replies.into_iter().zip(results) {
                            let _ = reply.send(result);
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, requests = replies.len(), "storing a batch of alert events failed");
                        for reply in replies {
                            let _ = reply.send(Err(StoreError::Corrupt(
                                "the batch's transaction failed".into(),
                            )));
                        }
                    }
                }
            }
        });
        Batcher { queue }
    }

    async fn ingest(&self, integration: &Integration, events: &[Incoming]) -> Outcomes {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let request = BatchRequest {
            integration: integration.clone(),
            events: events.to_vec(),
            reply,
        };
        if self.queue.send(request).await.is_err() {
            return Err(StoreError::Corrupt(
                "the ingestion queue has stopped".into(),
            ));
        }
        answer.await.unwrap_or_else(|_| {
            Err(StoreError::Corrupt(
                "the ingestion queue has stopped".into(),
            ))
        })
    }
}

/// Stores events through the batcher (SQLite) or directly (PostgreSQL).
async fn store_events(
    state: &AppState,
    integration: &Integration,
    events: &[Incoming],
) -> Outcomes {
    match &state.ingest_batcher {
        Some(batcher) => batcher.ingest(integration, events).await,
        None => state.store.ingest(integration, events).await,
    }
}

/// Applies events, retrying once when a concurrent event for the same key won a race.
/// Answers `unknown` when the integration was deleted or its key rotated since it was looked
/// up (nothing is stored then).
async fn apply(
    state: &AppState,
    integration: &Integration,
    events: &[Incoming],
    unknown: fn() -> Response,
) -> Result<Vec<Outcome>, Response> {
    let mut result = store_events(state, integration, events).await;
    if matches!(result, Err(StoreError::Conflict(_))) {
        result = state.store.ingest(integration, events).await;
    }
    match result {
        Ok(outcomes) => {
            state.wake_engine();
            for n in outcomes.iter().filter_map(|o| o.incident_number) {
                state.events.changed(n);
            }
            Ok(outcomes)
        }
        Err(StoreError::NotFound) => Err(unknown()),
        Err(e) => {
            tracing::error!(error = %e, "storing alert events failed");
            Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "The event was not stored; send it again.",
            ))
        }
    }
}

/// `POST /v2/enqueue`: PagerDuty Events API v2.
pub async fn enqueue(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if body.len() > MAX_PAYLOAD_BYTES {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            Json(json!({"status": "invalid event", "message": "Event object is too large", "errors": [format!("the body is {} bytes; the limit is {MAX_PAYLOAD_BYTES}", body.len())]})),
        )
            .into_response();
    }
    if !is_json(&headers) {
        return pd_invalid(
            "Event object is invalid",
            "Content-Type must be application/json".into(),
        );
    }
    let (routing_key, event) = match heliograph_ingest::parse_events_v2(&body) {
        Ok(parsed) => parsed,
        Err(e) => return pd_error(StatusCode::BAD_REQUEST, &e),
    };
    let integration = match state
        .store
        .integration_by_key(&hash_secret(&routing_key))
        .await
    {
        Ok(Some(i)) if i.kind == "events_v2" => i,
        Ok(_) => return not_events_v2(),
        Err(e) => {
            tracing::error!(error = %e, "integration lookup failed");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Try again shortly.",
            );
        }
    };
    if let Err(wait) = state.ingest_limiter.take(integration.id, 1.0) {
        return too_many(wait);
    }
    let dedup_key = event.dedup_key.clone().unwrap_or_else(new_integration_key);
    let payload = String::from_utf8_lossy(&body).into_owned();
    match apply(
        &state,
        &integration,
        &[incoming(&event, dedup_key.clone(), payload)],
        not_events_v2,
    )
    .await
    {
        Ok(_) => (
            StatusCode::ACCEPTED,
            Json(
                json!({"status": "success", "message": "Event processed", "dedup_key": dedup_key}),
            ),
        )
            .into_response(),
        Err(r) => r,
    }
}

fn invalid_contract(e: &InvalidEvent) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": {"code": "invalid_event", "message": format!("{}: {}", e.message, e.errors.join("; ")), "errors": e.errors}})),
    )
        .into_response()
}

#[allow(clippy::result_large_err)] // the error is the answer itself
fn precheck(headers: &HeaderMap, body: &Bytes) -> Result<(), Response> {
    if body.len() > MAX_PAYLOAD_BYTES {
        return Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "The body is {} bytes; the limit is {MAX_PAYLOAD_BYTES}.",
                body.len()
            ),
        ));
    }
    if !is_json(headers) {
        return Err(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Send the body as JSON with Content-Type: application/json.",
        ));
    }
    Ok(())
}

/// `POST /integrations/{key}/alertmanager`: an Alertmanager webhook notification.
pub async fn alertmanager(
    State(state): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = precheck(&headers, &body) {
        return r;
    }
    let integration = match find(&state, &key, "alertmanager").await {
        Ok(i) => i,
        Err(r) => return r,
    };
    let events = match heliograph_ingest::parse_alertmanager(&body) {
        Ok(events) => events,
        Err(e) => return invalid_contract(&e),
    };
    if let Err(wait) = state
        .ingest_limiter
        .take(integration.id, events.len().max(1) as f64)
    {
        return too_many(wait);
    }
    let incoming: Vec<Incoming> = events
        .iter()
        .map(|e| {
            let key = e.dedup_key.clone().unwrap_or_else(new_integration_key);
            incoming(e, key, e.details.to_string())
        })
        .collect();
    match apply(&state, &integration, &incoming, unknown_key).await {
        Ok(outcomes) => (
            StatusCode::OK,
            Json(json!({"status": "success", "alerts": outcomes})),
        )
            .into_response(),
        Err(r) => r,
    }
}

/// `POST /integrations/{key}/generic`: `{"summary", "severity", "dedup_key", "action", "details"}`.
pub async fn generic(
    State(state): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = precheck(&headers, &body) {
        return r;
    }
    let integration = match find(&state, &key, "generic").await {
        Ok(i) => i,
        Err(r) => return r,
    };
    let event = match heliograph_ingest::parse_generic(&body) {
        Ok(e) => e,
        Err(e) => return invalid_contract(&e),
    };
    if let Err(wait) = state.ingest_limiter.take(integration.id, 1.0) {
        return too_many(wait);
    }
    let dedup_key = event.dedup_key.clone().unwrap_or_else(new_integration_key);
    let payload = String::from_utf8_lossy(&body).into_owned();
    match apply(
        &state,
        &integration,
        &[incoming(&event, dedup_key.clone(), payload)],
        unknown_key,
    )
    .await
    {
        Ok(outcomes) => (
            StatusCode::ACCEPTED,
            Json(json!({"status": "success", "dedup_key": dedup_key, "alert": outcomes.first()})),
        )
            .into_response(),
        Err(r) => r,
    }
}

/// `POST /integrations/{key}/heartbeat`: a check-in; resolves a missed-heartbeat incident.
pub async fn heartbeat(
    State(state): State<AppState>,
    Path(key): Path<String>,
    body: Bytes,
) -> Response {
    if body.len() > MAX_PAYLOAD_BYTES {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "The body is too large.",
        );
    }
    let integration = match find(&state, &key, "heartbeat").await {
        Ok(i) => i,
        Err(r) => return r,
    };
    if let Err(wait) = state.ingest_limiter.take(integration.id, 1.0) {
        return too_many(wait);
    }
    match state.store.heartbeat_check_in(&integration).await {
        Ok(next) => {
            state.wake_engine();
            (
                StatusCode::ACCEPTED,
                Json(json!({"status": "success", "next_check_in_before": next})),
            )
                .into_response()
        }
        Err(StoreError::NotFound) => unknown_key(),
        Err(e) => {
            tracing::error!(error = %e, "heartbeat check-in failed");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "The check-in was not stored; send it again.",
            )
        }
    }
}
