//! Administration: users, everyone's API tokens, and the audit log.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, NaiveDate, Utc};
use heliograph_domain::{DisplayName, Password, Role, TimeZone, TokenName, UserEmail};
use heliograph_store::audit::AuditEntry;
use heliograph_store::tokens::ApiToken;
use heliograph_store::users::{NewUser, User, UserPatch};
use heliograph_store::{AuditFilter, StoreError};
use serde::Deserialize;

use super::profile::{TokenCreatedPage, new_api_token, token_prefix};
use crate::auth::{self, Admin, Auth};
use crate::csrf::CsrfForm;
use crate::error::render_with_status;
use crate::flash::redirect_with;
use crate::views::{FieldErrors, Shell, zone_names};
use crate::{AppError, AppState};

#[derive(Template)]
#[template(path = "admin/index.html")]
struct IndexPage {
    shell: Shell,
    user_count: i64,
}

pub async fn index(
    State(state): State<AppState>,
    _auth: Auth<Admin>,
    shell: Shell,
) -> Result<Response, AppError> {
    let user_count = state.store.user_count().await?;
    Ok(render_with_status(
        StatusCode::OK,
        &IndexPage { shell, user_count },
    ))
}

/// The values of the user form, as typed.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct UserForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    time_zone: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    disabled: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/users.html")]
struct UsersPage {
    shell: Shell,
    users: Vec<User>,
    form: UserForm,
    roles: [Role; 4],
    zones: &'static [&'static str],
    errors: FieldErrors,
}

async fn users_page(
    state: &AppState,
    shell: Shell,
    form: UserForm,
    errors: FieldErrors,
) -> Result<UsersPage, AppError> {
    Ok(UsersPage {
        shell,
        users: state.store.all_users().await?,
        form,
        roles: Role::ALL,
        zones: zone_names(),
        errors,
    })
}

pub async fn users(
    State(state): State<AppState>,
    _auth: Auth<Admin>,
    shell: Shell,
) -> Result<Response, AppError> {
    let form = UserForm {
        role: "responder".into(),
        time_zone: "UTC".into(),
        ..Default::default()
    };
    Ok(render_with_status(
        StatusCode::OK,
        &users_page(&state, shell, form, FieldErrors::default()).await?,
    ))
}

pub async fn create_user(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    shell: Shell,
    CsrfForm(form): CsrfForm<UserForm>,
) -> Result<Response, AppError> {
    let mut errors = FieldErrors::default();
    let name = errors.check("name", DisplayName::parse(&form.name));
    let email = errors.check("email", UserEmail::parse(&form.email));
    let role = errors.check("role", form.role.parse::<Role>());
    let time_zone = errors.check("time_zone", TimeZone::parse(&form.time_zone));
    let password = errors.check("password", Password::parse(&form.password));
    if let (Some(name), Some(email), Some(role), Some(time_zone), Some(password)) =
        (name, email, role, time_zone, password)
    {
        let password_hash = Some(auth::hash_password(password).await?);
        let new = NewUser {
            email,
            name,
            time_zone,
            role,
            password_hash,
        };
        match state.store.create_user(&new, &auth.audit()).await {
            Ok(user) => {
                return Ok(redirect_with(
                    "/admin/users",
                    "success",
                    format!("{} ({}) can now sign in.", user.name, user.email),
                ));
            }
            Err(StoreError::Conflict(m)) => errors.add("email", m),
            Err(e) => return Err(e.into()),
        }
    }
    let form = UserForm {
        password: String::new(),
        ..form
    };
    Ok(render_with_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &users_page(&state, shell, form, errors).await?,
    ))
}

#[derive(Template)]
#[template(path = "admin/user_edit.html")]
struct UserEditPage {
    shell: Shell,
    user: User,
    form: UserForm,
    roles: [Role; 4],
    zones: &'static [&'static str],
    errors: FieldErrors,
    is_self: bool,
}

pub async fn user_form(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    shell: Shell,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let user = state.store.user(super::parse_id(&id)?).await?;
    let form = UserForm {
        name: user.name.to_string(),
        email: user.email.to_string(),
        role: user.role.to_string(),
        time_zone: user.time_zone.to_string(),
        password: String::new(),
        disabled: user.disabled.then(|| "on".into()),
    };
    let is_self = user.id == auth.user.id;
    Ok(render_with_status(
        StatusCode::OK,
        &UserEditPage {
            shell,
            user,
            form,
            roles: Role::ALL,
            zones: zone_names(),
            errors: FieldErrors::default(),
            is_self,
        },
    ))
}

pub async fn update_user(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    shell: Shell,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<UserForm>,
) -> Result<Response, AppError> {
    let user = state.store.user(super::parse_id(&id)?).await?;
    let is_self = user.id == auth.user.id;
    let mut errors = FieldErrors::default();
    let name = errors.check("name", DisplayName::parse(&form.name));
    let email = errors.check("email", UserEmail::parse(&form.email));
    let role = errors.check("role", form.role.parse::<Role>());
    let time_zone = errors.check("time_zone", TimeZone::parse(&form.time_zone));
    let disabled = form.disabled.is_some();
    let password = if form.password.is_empty() {
        None
    } else {
        errors.check("password", Password::parse(&form.password))
    };
    if is_self && role.is_some_and(|r| r != Role::Admin) {
        errors.add(
            "role",
            "You cannot remove your own admin role; ask another admin",
        );
    }
    if is_self && disabled {
        errors.add("disabled", "You cannot disable your own account");
    }
    if let (Some(name), Some(email), Some(role), Some(time_zone), true) =
        (name, email, role, time_zone, errors.is_empty())
    {
        let patch = UserPatch {
            email: Some(email),
            name: Some(name),
            time_zone: Some(time_zone),
            role: Some(role),
            disabled: Some(disabled),
        };
        match state
            .store
            .update_user(user.id, &patch, &auth.audit())
            .await
        {
            Ok(saved) => {
                if let Some(password) = password {
                    let hash = auth::hash_password(password).await?;
                    state
                        .store
                        .set_password(saved.id, &hash, None, &auth.audit())
                        .await?;
                }
                return Ok(redirect_with(
                    "/admin/users",
                    "success",
                    format!("{} saved.", saved.email),
                ));
            }
            Err(StoreError::Conflict(m)) => errors.add("email", m),
            Err(e) => return Err(e.into()),
        }
    }
    let form = UserForm {
        password: String::new(),
        ..form
    };
    Ok(render_with_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &UserEditPage {
            shell,
            user,
            form,
            roles: Role::ALL,
            zones: zone_names(),
            errors,
            is_self,
        },
    ))
}

#[derive(Template)]
#[template(path = "admin/tokens.html")]
struct TokensPage {
    shell: Shell,
    tokens: Vec<(ApiToken, User)>,
    users: Vec<User>,
    user_id: String,
    name: String,
    errors: FieldErrors,
}

pub async fn tokens(
    State(state): State<AppState>,
    _auth: Auth<Admin>,
    shell: Shell,
) -> Result<Response, AppError> {
    let page = TokensPage {
        shell,
        tokens: state.store.all_tokens().await?,
        users: state.store.all_users().await?,
        user_id: String::new(),
        name: String::new(),
        errors: FieldErrors::default(),
    };
    Ok(render_with_status(StatusCode::OK, &page))
}

#[derive(Deserialize)]
pub struct AdminTokenForm {
    #[serde(default)]
    user_id: String,
    #[serde(default)]
    name: String,
}

pub async fn create_token(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    shell: Shell,
    CsrfForm(form): CsrfForm<AdminTokenForm>,
) -> Result<Response, AppError> {
    let mut errors = FieldErrors::default();
    let users = state.store.all_users().await?;
    let owner = form
        .user_id
        .parse::<i64>()
        .ok()
        .and_then(|id| users.iter().find(|u| u.id == id))
        .cloned();
    if owner.is_none() {
        errors.add("user_id", "Choose the user the token is for");
    }
    let name = errors.check("name", TokenName::parse(&form.name));
    let (Some(owner), Some(name)) = (owner, name) else {
        let page = TokensPage {
            shell,
            tokens: state.store.all_tokens().await?,
            users,
            user_id: form.user_id,
            name: form.name,
            errors,
        };
        return Ok(render_with_status(StatusCode::UNPROCESSABLE_ENTITY, &page));
    };
    let token = new_api_token();
    state
        .store
        .create_token(
            owner.id,
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
            owner: owner.email.to_string(),
            back: "/admin/tokens",
        },
    ))
}

#[derive(Deserialize)]
pub struct Empty {}

pub async fn revoke_token(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, AppError> {
    let id = super::parse_id(&id)?;
    let token = state.store.revoke_token(id, &auth.audit()).await?;
    Ok(redirect_with(
        "/admin/tokens",
        "success",
        format!("Token \"{}\" revoked.", token.name),
    ))
}

#[derive(Deserialize, Default)]
pub struct AuditQuery {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    target_type: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    cursor: String,
}

#[derive(Template)]
#[template(path = "admin/audit.html")]
struct AuditPage {
    shell: Shell,
    entries: Vec<AuditEntry>,
    users: Vec<User>,
    target_types: Vec<String>,
    query: AuditQuery,
    errors: FieldErrors,
    next_link: Option<String>,
}

/// The start of a local calendar day in `tz`, as an instant.
fn day_start(raw: &str, tz: chrono_tz::Tz) -> Result<DateTime<Utc>, String> {
    let date = NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
        .map_err(|_| "Use a date like 2026-11-28".to_owned())?;
    let local = date.and_hms_opt(0, 0, 0).ok_or("Not a valid date")?;
    Ok(heliograph_scheduler::resolve_local(tz, local))
}

pub async fn audit(
    State(state): State<AppState>,
    _auth: Auth<Admin>,
    shell: Shell,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, AppError> {
    let query = query.map(|q| q.0).unwrap_or_default();
    let tz = shell.tz();
    let mut errors = FieldErrors::default();
    let mut filter = AuditFilter::default();
    if !query.actor.is_empty() {
        filter.actor_user_id = errors.check(
            "actor",
            query
                .actor
                .parse::<i64>()
                .map_err(|_| "Choose a user from the list"),
        );
    }
    if !query.target_type.is_empty() {
        filter.target_type = Some(query.target_type.clone());
    }
    if !query.from.is_empty() {
        filter.from = errors.check("from", day_start(&query.from, tz));
    }
    if !query.to.is_empty() {
        filter.to = errors.check(
            "to",
            day_start(&query.to, tz).map(|t| t + chrono::TimeDelta::days(1)),
        );
    }
    if let (Some(from), Some(to)) = (filter.from, filter.to)
        && to <= from
    {
        errors.add("to", "The end date must not be before the start date");
    }
    let cursor = query.cursor.parse::<i64>().ok();
    let users = state.store.all_users().await?;
    let target_types = state.store.audit_target_types().await?;
    if !errors.is_empty() {
        let page = AuditPage {
            shell,
            entries: Vec::new(),
            users,
            target_types,
            query,
            errors,
            next_link: None,
        };
        return Ok(render_with_status(StatusCode::BAD_REQUEST, &page));
    }
    let page = state.store.audit_log(&filter, 100, cursor).await?;
    let next_link = page.next_cursor.map(|c| {
        let params = [
            ("actor", &query.actor),
            ("target_type", &query.target_type),
            ("from", &query.from),
            ("to", &query.to),
        ];
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in params {
            ser.append_pair(k, v);
        }
        ser.append_pair("cursor", &c.to_string());
        format!("/admin/audit?{}", ser.finish())
    });
    let page = AuditPage {
        shell,
        entries: page.items,
        users,
        target_types,
        query,
        errors,
        next_link,
    };
    Ok(render_with_status(StatusCode::OK, &page))
}
