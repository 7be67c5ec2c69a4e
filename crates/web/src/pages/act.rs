//! Acknowledge and resolve links from emails. Mail scanners follow links, so the link (GET)
//! only shows a page with one button; the button (POST, with the form's CSRF token) acts,
//! once, as the person the page was sent to, without signing in.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use heliograph_store::{Audit, StoreError};
use serde::Deserialize;

use crate::auth::{ClientAddr, hash_secret};
use crate::csrf::CsrfForm;
use crate::error::render_with_status;
use crate::views::Shell;
use crate::{AppError, AppState};

#[derive(Template)]
#[template(path = "act.html")]
struct ActPage {
    shell: Shell,
    token: String,
    number: i64,
    title: String,
    action: String,
    /// Set once the link was used, expired or acted on.
    outcome: Option<String>,
    ok: bool,
}

fn well_formed(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

fn gone(shell: Shell, message: &str) -> Response {
    render_with_status(
        StatusCode::GONE,
        &ActPage {
            shell,
            token: String::new(),
            number: 0,
            title: String::new(),
            action: String::new(),
            outcome: Some(message.to_owned()),
            ok: false,
        },
    )
}

pub async fn show(
    State(state): State<AppState>,
    shell: Shell,
    Path(token): Path<String>,
) -> Result<Response, AppError> {
    if !well_formed(&token) {
        return Err(AppError::NotFound);
    }
    let Some(link) = state.store.action_token(&hash_secret(&token)).await? else {
        return Err(AppError::NotFound);
    };
    if link.used_at.is_some() {
        return Ok(gone(
            shell,
            "This link has already been used. Each link in a page works once.",
        ));
    }
    if link.expires_at <= state.store.now() {
        return Ok(gone(
            shell,
            "This link has expired. Open the incident in Heliograph instead.",
        ));
    }
    let incident = state.store.incident(link.number).await?;
    Ok(render_with_status(
        StatusCode::OK,
        &ActPage {
            shell,
            token,
            number: link.number,
            title: incident.title,
            action: link.action,
            outcome: None,
            ok: false,
        },
    ))
}

#[derive(Deserialize)]
pub struct Empty {}

pub async fn act(
    State(state): State<AppState>,
    shell: Shell,
    ClientAddr(addr): ClientAddr,
    Path(token): Path<String>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, AppError> {
    if !well_formed(&token) {
        return Err(AppError::NotFound);
    }
    let Some(link) = state.store.use_action_token(&hash_secret(&token)).await? else {
        return Ok(gone(
            shell,
            "This link has already been used or has expired. Each link in a page works once, for 24 hours.",
        ));
    };
    let actor = match link.user_id {
        Some(id) => state.store.user(id).await.ok(),
        None => None,
    };
    let audit = Audit {
        actor_user_id: actor.as_ref().map(|u| u.id),
        actor: actor
            .as_ref()
            .map(|u| format!("{} (email link)", u.email))
            .unwrap_or_else(|| "email link".into()),
        client_addr: addr,
    };
    let result = if link.action == "resolve" {
        state.store.resolve_incident(link.number, &audit).await
    } else {
        state.store.acknowledge_incident(link.number, &audit).await
    };
    let (status, outcome, ok) = match result {
        Ok(_) => (
            StatusCode::OK,
            format!(
                "Incident #{} is {}. Thank you.",
                link.number,
                if link.action == "resolve" {
                    "resolved"
                } else {
                    "acknowledged"
                }
            ),
            true,
        ),
        Err(StoreError::Conflict(m)) => (
            StatusCode::CONFLICT,
            format!("Nothing changed: {m}."),
            false,
        ),
        Err(e) => return Err(e.into()),
    };
    let incident = state.store.incident(link.number).await?;
    Ok(render_with_status(
        status,
        &ActPage {
            shell,
            token: String::new(),
            number: link.number,
            title: incident.title,
            action: link.action,
            outcome: Some(outcome),
            ok,
        },
    ))
}
