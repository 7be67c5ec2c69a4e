//! Prometheus metrics: request counts and latency by route and status. A registry per
//! application (no globals), so several apps in one test process do not collide.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

/// The application's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    queue: Family<QueueLabel, Gauge>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RequestLabels, Histogram>,
}

/// Unfinished jobs by state (due now, scheduled later), read from the database at scrape.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabel {
    state: &'static str,
}

impl Metrics {
    pub fn new(engine: &heliograph_engine::Stats) -> Self {
        let mut registry = Registry::with_prefix("heliograph");
        let queue = Family::<QueueLabel, Gauge>::default();
        registry.register(
            "job_queue_depth",
            "Unfinished jobs in the database queue: due now, or scheduled for later",
            queue.clone(),
        );
        registry.register(
            "engine_jobs",
            "Jobs the engine ran, by kind",
            engine.jobs.clone(),
        );
        registry.register(
            "engine_job_latency_seconds",
            "Time from a job's due time to the engine starting it",
            engine.job_latency.clone(),
        );
        registry.register(
            "notification_deliveries",
            "Delivery attempts by outcome (sent, retried, failed, cancelled) and channel",
            engine.deliveries.clone(),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ])
        });
        registry.register(
            "http_requests",
            "HTTP requests served, by route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer HTTP requests, by route and status",
            latency.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            queue,
            requests,
            latency,
        }
    }

    fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Counts and times every request under its route pattern (not its raw path, so ids do not
/// explode the label set).
pub async fn record(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let response = next.run(request).await;
    let labels = RequestLabels {
        method,
        route,
        status: response.status().as_u16(),
    };
    state.metrics.requests.get_or_create(&labels).inc();
    state
        .metrics
        .latency
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`: the Prometheus text format.
pub async fn endpoint(State(state): State<AppState>) -> Response {
    if let Ok(depth) = state.store.queue_depth().await {
        state
            .metrics
            .queue
            .get_or_create(&QueueLabel { state: "due" })
            .set(depth.due);
        state
            .metrics
            .queue
            .get_or_create(&QueueLabel { state: "scheduled" })
            .set(depth.scheduled);
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
