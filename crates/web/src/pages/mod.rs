//! Server-rendered pages, one module per feature, each with its `get`/`post` handlers.

use axum::Router;
use axum::routing::{get, post};

use crate::AppState;

mod admin;
mod home;
mod profile;
mod session;
mod teams;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home::get))
        .route("/login", get(session::login_form).post(session::login))
        .route("/logout", post(session::logout))
        .route(
            "/setup/{token}",
            get(session::setup_form).post(session::setup),
        )
        .route("/profile", get(profile::get).post(profile::update))
        .route("/profile/password", post(profile::change_password))
        .route("/profile/tokens", post(profile::create_token))
        .route("/profile/tokens/{id}/revoke", post(profile::revoke_token))
        .route("/teams", get(teams::list).post(teams::create))
        .route("/teams/{id}", get(teams::show).post(teams::update))
        .route("/teams/{id}/delete", post(teams::delete))
        .route("/admin", get(admin::index))
        .route("/admin/users", get(admin::users).post(admin::create_user))
        .route(
            "/admin/users/{id}",
            get(admin::user_form).post(admin::update_user),
        )
        .route(
            "/admin/tokens",
            get(admin::tokens).post(admin::create_token),
        )
        .route("/admin/tokens/{id}/revoke", post(admin::revoke_token))
        .route("/admin/audit", get(admin::audit))
}

/// Parses an id from a path segment; anything else is a 404, not a 400 or a panic.
pub(crate) fn parse_id(raw: &str) -> Result<i64, crate::AppError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or(crate::AppError::NotFound)
}

pub use profile::{new_api_token, token_prefix};
