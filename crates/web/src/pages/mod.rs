//! Server-rendered pages, one module per feature, each with its `get`/`post` handlers.

use axum::Router;
use axum::routing::{get, post};

use crate::AppState;

mod act;
mod action_items;
mod admin;
pub(crate) mod alerts;
mod calendar;
mod home;
pub(crate) mod incidents;
pub(crate) mod insights;
mod oncall;
mod policies;
mod postmortems;
mod profile;
pub(crate) mod schedules;
pub(crate) mod services;
mod session;
mod shifts;
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
        .route("/profile/contacts", post(profile::add_contact))
        .route(
            "/profile/contacts/{id}/delete",
            post(profile::delete_contact),
        )
        .route("/profile/contacts/{id}/test", post(profile::test_contact))
        .route("/profile/rules", post(profile::add_rule))
        .route("/profile/rules/{id}/delete", post(profile::delete_rule))
        .route("/profile/working-hours", post(profile::save_working_hours))
        .route("/teams", get(teams::list).post(teams::create))
        .route("/teams/{id}", get(teams::show).post(teams::update))
        .route("/teams/{id}/delete", post(teams::delete))
        .route("/teams/{id}/channels", post(teams::add_channel))
        .route(
            "/teams/{id}/channels/{channel}/test",
            post(teams::test_channel),
        )
        .route(
            "/teams/{id}/channels/{channel}/delete",
            post(teams::delete_channel),
        )
        .route("/services", get(services::list).post(services::create))
        .route("/services/{id}", get(services::show).post(services::update))
        .route("/services/{id}/delete", post(services::delete))
        .route(
            "/services/{id}/integrations",
            post(services::add_integration),
        )
        .route(
            "/services/{id}/integrations/{iid}/rotate",
            post(services::rotate_integration),
        )
        .route(
            "/services/{id}/integrations/{iid}/delete",
            post(services::delete_integration),
        )
        .route("/alerts", get(alerts::list))
        .route("/alerts/{id}", get(alerts::show))
        .route("/incidents", get(incidents::list).post(incidents::declare))
        .route("/incidents/new", get(incidents::new_form))
        .route("/incidents/events", get(incidents::list_events))
        .route("/incidents/{number}", get(incidents::show))
        .route(
            "/incidents/{number}/events",
            get(incidents::incident_events),
        )
        .route(
            "/incidents/{number}/acknowledge",
            post(incidents::acknowledge),
        )
        .route("/incidents/{number}/resolve", post(incidents::resolve))
        .route("/incidents/{number}/reopen", post(incidents::reopen))
        .route(
            "/incidents/{number}/severity",
            post(incidents::change_severity),
        )
        .route("/incidents/{number}/roles", post(incidents::assign_role))
        .route(
            "/incidents/{number}/responders",
            post(incidents::add_responder),
        )
        .route("/incidents/{number}/edit", post(incidents::edit))
        .route("/incidents/{number}/updates", post(incidents::post_update))
        .route("/incidents/{number}/notes", post(incidents::add_note))
        .route("/incidents/{number}/postmortem", post(postmortems::start))
        .route("/action-items", get(action_items::overview))
        .route("/postmortems", get(postmortems::list))
        .route("/postmortems/{id}", get(postmortems::show))
        .route(
            "/postmortems/{id}/edit",
            get(postmortems::edit_form).post(postmortems::edit),
        )
        .route("/postmortems/{id}/submit", post(postmortems::submit))
        .route("/postmortems/{id}/review", post(postmortems::review))
        .route("/postmortems/{id}/publish", post(postmortems::publish))
        .route(
            "/postmortems/{id}/action-items",
            post(postmortems::add_item),
        )
        .route(
            "/postmortems/{id}/action-items/{item}",
            post(postmortems::update_item),
        )
        .route("/act/{token}", get(act::show).post(act::act))
        .route("/oncall", get(oncall::get))
        .route("/insights", get(insights::get))
        .route("/insights/oncall", get(insights::oncall::get))
        .route(
            "/insights/oncall/people.csv",
            get(insights::oncall::people_csv),
        )
        .route(
            "/insights/oncall/fairness.csv",
            get(insights::oncall::fairness_csv),
        )
        .route("/insights/{file}", get(insights::csv))
        .route("/schedules", get(schedules::list).post(schedules::create))
        .route("/schedules/new", get(schedules::new_form))
        .route(
            "/schedules/new/follow-the-sun",
            get(schedules::sun::form).post(schedules::sun::submit),
        )
        .route("/schedules/{id}", get(schedules::show))
        .route(
            "/schedules/{id}/edit",
            get(schedules::edit_form).post(schedules::update),
        )
        .route("/schedules/{id}/delete", post(schedules::delete))
        .route("/schedules/{id}/layers", post(schedules::layers::create))
        .route(
            "/schedules/{id}/layers/new",
            get(schedules::layers::new_form),
        )
        .route(
            "/schedules/{id}/layers/{number}",
            get(schedules::layers::edit_form).post(schedules::layers::update),
        )
        .route(
            "/schedules/{id}/layers/{number}/delete",
            post(schedules::layers::delete),
        )
        .route(
            "/schedules/{id}/layers/{number}/move",
            post(schedules::layers::move_layer),
        )
        .route(
            "/schedules/{id}/overrides",
            post(schedules::create_override),
        )
        .route(
            "/schedules/{id}/overrides/new",
            get(schedules::override_form),
        )
        .route(
            "/schedules/{id}/overrides/{oid}/delete",
            post(schedules::delete_override),
        )
        .route(
            "/escalation-policies",
            get(policies::list).post(policies::create),
        )
        .route("/escalation-policies/new", get(policies::new_form))
        .route(
            "/escalation-policies/{id}",
            get(policies::show).post(policies::update),
        )
        .route("/escalation-policies/{id}/delete", post(policies::delete))
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
        .route("/my/shifts", get(shifts::get))
        .route("/my/shifts/feeds", post(shifts::create_feed))
        .route("/my/shifts/feeds/{id}/revoke", post(shifts::revoke_feed))
        .route("/calendar/{file}", get(calendar::feed))
}

/// Parses an id from a path segment; anything else is a 404, not a 400 or a panic.
pub(crate) fn parse_id(raw: &str) -> Result<i64, crate::AppError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or(crate::AppError::NotFound)
}

pub use profile::{new_api_token, token_prefix};
