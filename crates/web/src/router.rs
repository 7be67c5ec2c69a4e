//! The whole router and its layers.

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower::ServiceBuilder;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::{AppError, AppState, api, csrf, flash, metrics, middleware, pages, static_files};

/// The largest request body accepted (forms and API). Larger bodies get a clear 413.
pub const BODY_LIMIT: usize = 1024 * 1024;

pub fn build(state: AppState) -> Router {
    let request_id = axum::http::HeaderName::from_static("x-request-id");
    Router::new()
        .merge(pages::routes())
        .merge(api::routes())
        .merge(crate::ingest::routes())
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::endpoint))
        .route("/static/{name}", get(static_files::serve))
        .fallback(fallback)
        .layer(axum::middleware::from_fn(flash::take))
        .layer(axum::middleware::from_fn_with_state(state.clone(), csrf::ensure_cookie))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::record))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
                    let id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
                    tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %id)
                }))
                .layer(PropagateRequestIdLayer::new(request_id))
                .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::security_headers))
                .layer(CompressionLayer::new())
                .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, Duration::from_secs(30))),
        )
        .with_state(state)
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.db().ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response()
        }
    }
}

async fn fallback(uri: Uri) -> Response {
    if uri.path().starts_with("/api/") {
        api::ApiError::not_found("no such API endpoint").into_response()
    } else {
        AppError::NotFound.into_response()
    }
}
