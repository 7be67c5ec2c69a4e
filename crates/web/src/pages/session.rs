//! Signing in and out, and the one-time first-run setup.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use chrono::TimeDelta;
use heliograph_domain::{DisplayName, Password, Role, TimeZone, UserEmail};
use heliograph_store::Audit;
use heliograph_store::audit::Change;
use heliograph_store::users::NewUser;
use serde::Deserialize;

use crate::auth::{self, ClientAddr, MaybeUser, SESSION_COOKIE};
use crate::csrf::CsrfForm;
use crate::error::render_with_status;
use crate::flash::redirect_with;
use crate::views::{FieldErrors, Shell, zone_names};
use crate::{AppError, AppState};

/// Failed sign-ins counted over this window.
const THROTTLE_WINDOW: TimeDelta = TimeDelta::minutes(15);
/// Failures for one account within the window before it is locked for the rest of it.
const MAX_FAILURES_PER_ACCOUNT: i64 = 5;
/// Failures from one address within the window before it is locked for the rest of it.
const MAX_FAILURES_PER_ADDRESS: i64 = 30;

#[derive(Template)]
#[template(path = "session/login.html")]
struct LoginPage {
    shell: Shell,
    email: String,
    next: String,
    error: Option<String>,
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// Only same-site paths are followed after sign-in (no open redirect).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && !n.contains(['\r', '\n']) =>
        {
            n.to_owned()
        }
        _ => "/".to_owned(),
    }
}

pub async fn login_form(shell: Shell, Query(q): Query<NextQuery>) -> Response {
    let next = safe_next(q.next.as_deref());
    if shell.user.is_some() {
        return Redirect::to(&next).into_response();
    }
    render_with_status(
        StatusCode::OK,
        &LoginPage {
            shell,
            email: String::new(),
            next,
            error: None,
        },
    )
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

pub async fn login(
    State(state): State<AppState>,
    shell: Shell,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    jar: CookieJar,
    CsrfForm(form): CsrfForm<LoginForm>,
) -> Result<Response, AppError> {
    let store = &state.store;
    let email = form.email.trim().to_lowercase();
    let next = safe_next(Some(&form.next));
    let refuse = |status: StatusCode, error: String| {
        render_with_status(
            status,
            &LoginPage {
                shell: shell.clone(),
                email: form.email.clone(),
                next: next.clone(),
                error: Some(error),
            },
        )
    };
    if email.is_empty() || form.password.is_empty() {
        return Ok(refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Enter your email and password.".into(),
        ));
    }
    let email_key = format!("email:{email}");
    let addr_key = format!("addr:{}", addr.as_deref().unwrap_or("unknown"));
    let now = store.now();
    let since = now - THROTTLE_WINDOW;
    for (key, limit, whose) in [
        (&email_key, MAX_FAILURES_PER_ACCOUNT, "this account"),
        (&addr_key, MAX_FAILURES_PER_ADDRESS, "your address"),
    ] {
        let (failures, oldest) = store.login_failures_since(key, since).await?;
        if failures >= limit {
            let unlock = oldest.unwrap_or(now) + THROTTLE_WINDOW;
            let minutes = ((unlock - now).num_seconds() + 59) / 60;
            return Ok(refuse(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "Too many failed sign-ins for {whose}. Try again in {} minute{}.",
                    minutes.max(1),
                    if minutes > 1 { "s" } else { "" }
                ),
            ));
        }
    }
    let found = store.credentials(&email).await?;
    let (user, hash) = match found {
        Some((user, hash)) if !user.disabled => (Some(user), hash),
        _ => (None, None),
    };
    let valid = auth::verify_password(form.password.clone(), hash).await;
    let Some(user) = user.filter(|_| valid) else {
        store.record_login_failure(&[&email_key, &addr_key]).await?;
        let audit = Audit {
            actor_user_id: None,
            actor: email.chars().take(254).collect(),
            client_addr: addr.clone(),
        };
        store
            .audit(
                &audit,
                Change::new(
                    "auth.login_failed",
                    "session",
                    &email,
                    format!("failed sign-in for {email}"),
                ),
            )
            .await?;
        return Ok(refuse(
            StatusCode::UNAUTHORIZED,
            "That email and password do not match an account.".into(),
        ));
    };
    store.clear_login_failures(&email_key, since).await?;
    let secret = auth::new_secret();
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let session = store
        .create_session(
            user.id,
            &auth::hash_secret(&secret),
            addr.as_deref(),
            user_agent,
        )
        .await?;
    let audit = Audit {
        actor_user_id: Some(user.id),
        actor: user.email.to_string(),
        client_addr: addr,
    };
    store
        .audit(
            &audit,
            Change::new(
                "auth.login",
                "session",
                session.id,
                format!("{} signed in", user.email),
            ),
        )
        .await?;
    let jar = jar.add(auth::session_cookie(secret, state.secure_cookies));
    Ok((jar, Redirect::to(&next)).into_response())
}

#[derive(Deserialize)]
pub struct Empty {}

pub async fn logout(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    jar: CookieJar,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, AppError> {
    if let Some(user) = user {
        state.store.delete_session(user.session_id).await?;
        state
            .store
            .audit(
                &user.audit(),
                Change::new(
                    "auth.logout",
                    "session",
                    user.session_id,
                    format!("{} signed out", user.user.email),
                ),
            )
            .await?;
    }
    let jar = jar.remove(axum_extra::extract::cookie::Cookie::build(SESSION_COOKIE).path("/"));
    Ok((
        jar,
        redirect_with("/login", "success", "You are signed out."),
    )
        .into_response())
}

#[derive(Template)]
#[template(path = "session/setup.html")]
struct SetupPage {
    shell: Shell,
    token: String,
    name: String,
    email: String,
    time_zone: String,
    zones: &'static [&'static str],
    errors: FieldErrors,
}

async fn setup_token_valid(state: &AppState, token: &str) -> Result<bool, AppError> {
    let stored = state
        .store
        .setting(heliograph_store::settings::SETUP_TOKEN_HASH)
        .await?;
    Ok(stored.is_some_and(|hash| hash == auth::hash_secret(token))
        && state.store.user_count().await? == 0)
}

fn setup_gone() -> AppError {
    AppError::BadRequest("This setup link is not valid: setup is complete, or the server was restarted and printed a new link.".into())
}

pub async fn setup_form(
    State(state): State<AppState>,
    shell: Shell,
    Path(token): Path<String>,
) -> Result<Response, AppError> {
    if !setup_token_valid(&state, &token).await? {
        return Err(setup_gone());
    }
    Ok(render_with_status(
        StatusCode::OK,
        &SetupPage {
            shell,
            token,
            name: String::new(),
            email: String::new(),
            time_zone: "UTC".into(),
            zones: zone_names(),
            errors: FieldErrors::default(),
        },
    ))
}

#[derive(Deserialize)]
pub struct SetupForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    time_zone: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_confirm: String,
}

pub async fn setup(
    State(state): State<AppState>,
    shell: Shell,
    ClientAddr(addr): ClientAddr,
    Path(token): Path<String>,
    jar: CookieJar,
    CsrfForm(form): CsrfForm<SetupForm>,
) -> Result<Response, AppError> {
    if !setup_token_valid(&state, &token).await? {
        return Err(setup_gone());
    }
    let mut errors = FieldErrors::default();
    let name = errors.check("name", DisplayName::parse(&form.name));
    let email = errors.check("email", UserEmail::parse(&form.email));
    let time_zone = errors.check("time_zone", TimeZone::parse(&form.time_zone));
    let password = errors.check("password", Password::parse(&form.password));
    if password.is_some() && form.password != form.password_confirm {
        errors.add("password_confirm", "The two passwords differ");
    }
    let (Some(name), Some(email), Some(time_zone), Some(password), true) =
        (name, email, time_zone, password, errors.is_empty())
    else {
        return Ok(render_with_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            &SetupPage {
                shell,
                token,
                name: form.name,
                email: form.email,
                time_zone: form.time_zone,
                zones: zone_names(),
                errors,
            },
        ));
    };
    let hash = auth::hash_password(password).await?;
    let new = NewUser {
        email,
        name,
        time_zone,
        role: Role::Admin,
        password_hash: Some(hash),
    };
    let audit = Audit {
        actor_user_id: None,
        actor: "setup".into(),
        client_addr: addr.clone(),
    };
    let user = state
        .store
        .create_first_admin(&new, &audit)
        .await
        .map_err(|_| setup_gone())?;
    let secret = auth::new_secret();
    state
        .store
        .create_session(user.id, &auth::hash_secret(&secret), addr.as_deref(), None)
        .await?;
    let jar = jar.add(auth::session_cookie(secret, state.secure_cookies));
    Ok((
        jar,
        redirect_with(
            "/",
            "success",
            format!(
                "Welcome, {}. Heliograph is set up and you are its first admin.",
                user.name
            ),
        ),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(safe_next(Some("/teams?x=1")), "/teams?x=1");
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(None), "/");
    }
}
