//! The one error type of the pages. Every variant renders a page that says what happened in
//! plain words; internal errors are logged with their whole chain and shown as an opaque
//! message.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use heliograph_domain::Role;
use heliograph_store::StoreError;

/// Why a page request failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    /// Not signed in: pages redirect to the sign-in page and come back afterwards.
    #[error("sign-in required")]
    SignInRequired { next: String },
    #[error("forbidden")]
    Forbidden { have: Role, needed: Role },
    #[error("the form's security token is missing or stale")]
    Csrf,
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("too many requests: {0}")]
    TooManyRequests(String),
    #[error("internal error: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl AppError {
    /// Wraps an unexpected failure.
    pub fn internal(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        AppError::Internal(Box::new(err))
    }
}

impl From<StoreError> for AppError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => AppError::NotFound,
            StoreError::Conflict(m) => AppError::Conflict(m),
            other => AppError::internal(other),
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    title: &'a str,
    message: String,
    hint: Option<String>,
}

/// Renders a template with a status, falling back to plain text if rendering fails.
pub(crate) fn render_with_status(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (
            status,
            [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html,
        )
            .into_response(),
        Err(err) => {
            tracing::error!(error = %err, "template failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on our side.",
            )
                .into_response()
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, title, message, hint) = match self {
            AppError::SignInRequired { next } => {
                let target = format!("/login?next={}", url_escape(&next));
                return Redirect::to(&target).into_response();
            }
            AppError::NotFound => (StatusCode::NOT_FOUND, "Not found", "There is nothing at this address.".to_owned(), Some("Check the link, or start again from the navigation above.".to_owned())),
            AppError::Forbidden { have, needed } => (
                StatusCode::FORBIDDEN,
                "Not allowed",
                format!("This needs the {needed} role; you are signed in as a {have}."),
                Some(format!("A {needed} {}. Ask an admin if you need it.", needed.describe())),
            ),
            AppError::Csrf => (
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form's security token was missing or did not match, so nothing was changed.".to_owned(),
                Some("Go back, reload the page and try again. This protects you from forms posted by other sites.".to_owned()),
            ),
            AppError::BadRequest(m) => (StatusCode::BAD_REQUEST, "Bad request", m, None),
            AppError::Conflict(m) => (StatusCode::CONFLICT, "Conflict", m, Some("Reload the page to see the current state.".to_owned())),
            AppError::TooManyRequests(m) => (StatusCode::TOO_MANY_REQUESTS, "Too many requests", m, None),
            AppError::Internal(err) => {
                let mut chain = err.to_string();
                let mut source = err.source();
                while let Some(s) = source {
                    chain.push_str(": ");
                    chain.push_str(&s.to_string());
                    source = s.source();
                }
                tracing::error!(error = %chain, "request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong", "Something went wrong on our side; nothing you typed is at fault. It has been logged.".to_owned(), Some("Try again in a moment.".to_owned()))
            }
        };
        render_with_status(
            status,
            &ErrorPage {
                status: status.as_u16(),
                title,
                message,
                hint,
            },
        )
    }
}

/// Percent-encodes a path for use in a query string.
pub(crate) fn url_escape(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
