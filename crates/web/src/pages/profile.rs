//! Your own account: name, time zone, password and API tokens.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use heliograph_domain::{DisplayName, Password, TimeZone, TokenName};
use heliograph_store::tokens::ApiToken;
use heliograph_store::users::UserPatch;
use serde::Deserialize;

use crate::auth::{self, Auth, Viewer};
use crate::csrf::CsrfForm;
use crate::error::render_with_status;
use crate::flash::redirect_with;
use crate::views::{FieldErrors, Shell, zone_names};
use crate::{AppError, AppState};

#[derive(Template)]
#[template(path = "profile/profile.html")]
struct ProfilePage {
    shell: Shell,
    name: String,
    time_zone: String,
    zones: &'static [&'static str],
    tokens: Vec<ApiToken>,
    errors: FieldErrors,
    password_errors: FieldErrors,
    token_name: String,
    token_errors: FieldErrors,
}

#[derive(Template)]
#[template(path = "profile/token_created.html")]
pub(crate) struct TokenCreatedPage {
    pub shell: Shell,
    pub token: String,
    pub name: String,
    pub owner: String,
    pub back: &'static str,
}

impl ProfilePage {
    async fn load(state: &AppState, auth: &Auth<Viewer>, shell: Shell) -> Result<Self, AppError> {
        Ok(ProfilePage {
            shell,
            name: auth.user.name.to_string(),
            time_zone: auth.user.time_zone.to_string(),
            zones: zone_names(),
            tokens: state.store.tokens_of(auth.user.id).await?,
            errors: FieldErrors::default(),
            password_errors: FieldErrors::default(),
            token_name: String::new(),
            token_errors: FieldErrors::default(),
        })
    }
}

pub async fn get(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    shell: Shell,
) -> Result<Response, AppError> {
    Ok(render_with_status(
        StatusCode::OK,
        &ProfilePage::load(&state, &auth, shell).await?,
    ))
}

#[derive(Deserialize)]
pub struct ProfileForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    time_zone: String,
}

pub async fn update(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    shell: Shell,
    CsrfForm(form): CsrfForm<ProfileForm>,
) -> Result<Response, AppError> {
    let mut errors = FieldErrors::default();
    let name = errors.check("name", DisplayName::parse(&form.name));
    let time_zone = errors.check("time_zone", TimeZone::parse(&form.time_zone));
    let (Some(name), Some(time_zone)) = (name, time_zone) else {
        let mut page = ProfilePage::load(&state, &auth, shell).await?;
        page.name = form.name;
        page.time_zone = form.time_zone;
        page.errors = errors;
        return Ok(render_with_status(StatusCode::UNPROCESSABLE_ENTITY, &page));
    };
    let patch = UserPatch {
        name: Some(name),
        time_zone: Some(time_zone),
        ..Default::default()
    };
    state
        .store
        .update_user(auth.user.id, &patch, &auth.audit())
        .await?;
    Ok(redirect_with("/profile", "success", "Profile saved."))
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current: String,
    #[serde(default)]
    new: String,
    #[serde(default)]
    confirm: String,
}

pub async fn change_password(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    shell: Shell,
    CsrfForm(form): CsrfForm<PasswordForm>,
) -> Result<Response, AppError> {
    let mut errors = FieldErrors::default();
    let hash = state.store.password_hash(auth.user.id).await?;
    if !auth::verify_password(form.current.clone(), hash).await {
        errors.add("current", "This is not your current password");
    }
    let new = errors.check("new", Password::parse(&form.new));
    if new.is_some() && form.new != form.confirm {
        errors.add("confirm", "The two new passwords differ");
    }
    let (Some(new), true) = (new, errors.is_empty()) else {
        let mut page = ProfilePage::load(&state, &auth, shell).await?;
        page.password_errors = errors;
        return Ok(render_with_status(StatusCode::UNPROCESSABLE_ENTITY, &page));
    };
    let hash = auth::hash_password(new).await?;
    state
        .store
        .set_password(auth.user.id, &hash, Some(auth.session_id), &auth.audit())
        .await?;
    Ok(redirect_with(
        "/profile",
        "success",
        "Password changed. Your other sessions were signed out.",
    ))
}

#[derive(Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    name: String,
}

/// The prefix shown in token lists: enough to tell tokens apart, useless to an attacker.
pub fn token_prefix(token: &str) -> String {
    token.chars().take(10).collect()
}

/// A new API token: `hg_` and 43 URL-safe characters.
pub fn new_api_token() -> String {
    format!("hg_{}", auth::new_secret())
}

pub async fn create_token(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    shell: Shell,
    CsrfForm(form): CsrfForm<TokenForm>,
) -> Result<Response, AppError> {
    let mut errors = FieldErrors::default();
    let Some(name) = errors.check("token_name", TokenName::parse(&form.name)) else {
        let mut page = ProfilePage::load(&state, &auth, shell).await?;
        page.token_name = form.name;
        page.token_errors = errors;
        return Ok(render_with_status(StatusCode::UNPROCESSABLE_ENTITY, &page));
    };
    let token = new_api_token();
    state
        .store
        .create_token(
            auth.user.id,
            &name,
            &auth::hash_secret(&token),
            &token_prefix(&token),
            &auth.audit(),
        )
        .await?;
    Ok(render_with_status(
        StatusCode::OK,
        &TokenCreatedPage {
            shell,
            token,
            name: name.to_string(),
            owner: auth.user.email.to_string(),
            back: "/profile",
        },
    ))
}

#[derive(Deserialize)]
pub struct Empty {}

pub async fn revoke_token(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, AppError> {
    let id = super::parse_id(&id)?;
    let token = state.store.token(id).await?;
    if token.user_id != auth.user.id {
        return Err(AppError::NotFound);
    }
    state.store.revoke_token(id, &auth.audit()).await?;
    Ok(redirect_with(
        "/profile",
        "success",
        format!("Token \"{}\" revoked.", token.name),
    ))
}
