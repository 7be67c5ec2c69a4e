//! `/api/v1/users`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use heliograph_domain::{DisplayName, Password, Role, TimeZone, UserEmail};
use heliograph_store::users::{NewUser, User, UserPatch};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiAuth, ApiError, ApiJson, ApiQuery, ErrorBody, Fields, PageQuery, path_id};
use crate::AppState;
use crate::auth::{Admin, Viewer, hash_password};

/// A person with an account.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserOut {
    pub id: i64,
    pub name: String,
    pub email: String,
    /// admin, manager, responder or viewer
    pub role: String,
    /// IANA time zone, e.g. Europe/London
    pub time_zone: String,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<User> for UserOut {
    fn from(u: User) -> Self {
        UserOut {
            id: u.id,
            name: u.name.to_string(),
            email: u.email.to_string(),
            role: u.role.to_string(),
            time_zone: u.time_zone.to_string(),
            disabled: u.disabled,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// A page of users.
#[derive(Serialize, ToSchema)]
pub struct UserList {
    pub users: Vec<UserOut>,
    pub next_cursor: Option<i64>,
}

/// A new user.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub name: String,
    pub email: String,
    /// admin, manager, responder or viewer
    pub role: String,
    /// IANA zone; UTC when absent.
    pub time_zone: Option<String>,
    /// At least 10 characters; without one the account cannot sign in to the web app.
    pub password: Option<String>,
}

/// Changes to a user; absent fields stay as they are. Only admins may change email, role,
/// disabled and password; people may change their own name and time zone.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    pub name: Option<String>,
    pub email: Option<String>,
    pub role: Option<String>,
    pub time_zone: Option<String>,
    pub disabled: Option<bool>,
    pub password: Option<String>,
}

/// List users, newest first.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(PageQuery),
    responses((status = 200, body = UserList), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    _auth: ApiAuth<Viewer>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<UserList>, ApiError> {
    let page = state.store.users(q.limit()?, q.cursor).await?;
    Ok(Json(UserList {
        users: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Create a user (admin).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = CreateUser,
    responses((status = 201, body = UserOut), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    auth: ApiAuth<Admin>,
    ApiJson(body): ApiJson<CreateUser>,
) -> Result<(StatusCode, Json<UserOut>), ApiError> {
    let mut fields = Fields::default();
    let name = fields.check("name", DisplayName::parse(&body.name));
    let email = fields.check("email", UserEmail::parse(&body.email));
    let role = fields.check("role", body.role.parse::<Role>());
    let time_zone = fields.check(
        "time_zone",
        TimeZone::parse(body.time_zone.as_deref().unwrap_or("UTC")),
    );
    let password = match &body.password {
        Some(p) => fields.check("password", Password::parse(p)).map(Some),
        None => Some(None),
    };
    fields.finish()?;
    let (Some(name), Some(email), Some(role), Some(time_zone), Some(password)) =
        (name, email, role, time_zone, password)
    else {
        return Err(ApiError::bad_request("invalid user"));
    };
    let password_hash = match password {
        Some(p) => Some(hash_password(p).await?),
        None => None,
    };
    let user = state
        .store
        .create_user(
            &NewUser {
                email,
                name,
                time_zone,
                role,
                password_hash,
            },
            &auth.audit(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// The caller.
#[utoipa::path(get, path = "/api/v1/users/me", tag = "users", responses((status = 200, body = UserOut), (status = 401, body = ErrorBody)))]
pub async fn me(auth: ApiAuth<Viewer>) -> Json<UserOut> {
    Json(auth.user.into())
}

/// One user.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", params(("id" = i64, Path)),
    responses((status = 200, body = UserOut), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    _auth: ApiAuth<Viewer>,
    Path(id): Path<String>,
) -> Result<Json<UserOut>, ApiError> {
    Ok(Json(state.store.user(path_id(&id)?).await?.into()))
}

/// Change a user: admins any field, anyone their own name and time zone.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", params(("id" = i64, Path)), request_body = UpdateUser,
    responses((status = 200, body = UserOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    auth: ApiAuth<Viewer>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateUser>,
) -> Result<Json<UserOut>, ApiError> {
    let id = path_id(&id)?;
    let is_admin = auth.user.role.allows(Role::Admin);
    if !is_admin
        && (id != auth.user.id
            || body.email.is_some()
            || body.role.is_some()
            || body.disabled.is_some()
            || body.password.is_some())
    {
        return Err(ApiError::forbidden(
            "Only admins may change other users, or anyone's email, role, password or disabled flag.",
        ));
    }
    let target = state.store.user(id).await?;
    let mut fields = Fields::default();
    let patch = UserPatch {
        name: body
            .name
            .as_deref()
            .and_then(|v| fields.check("name", DisplayName::parse(v))),
        email: body
            .email
            .as_deref()
            .and_then(|v| fields.check("email", UserEmail::parse(v))),
        role: body
            .role
            .as_deref()
            .and_then(|v| fields.check("role", v.parse::<Role>())),
        time_zone: body
            .time_zone
            .as_deref()
            .and_then(|v| fields.check("time_zone", TimeZone::parse(v))),
        disabled: body.disabled,
    };
    let password = body
        .password
        .as_deref()
        .and_then(|v| fields.check("password", Password::parse(v)));
    if target.id == auth.user.id
        && (patch.role.is_some_and(|r| r != Role::Admin) && is_admin
            || patch.disabled == Some(true))
    {
        fields.add(
            "role",
            "You cannot remove your own admin role or disable yourself.",
        );
    }
    fields.finish()?;
    let user = state.store.update_user(id, &patch, &auth.audit()).await?;
    if let Some(password) = password {
        state
            .store
            .set_password(id, &hash_password(password).await?, None, &auth.audit())
            .await?;
    }
    Ok(Json(user.into()))
}
