//! `/api/v1/tokens`: your API tokens (admins: anyone's).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use heliograph_domain::{Role, TokenName};
use heliograph_store::tokens::ApiToken;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiAuth, ApiError, ApiJson, ErrorBody, Fields, path_id};
use crate::AppState;
use crate::auth::{Viewer, hash_secret};
use crate::pages::{new_api_token, token_prefix};

/// An API token's record; the secret is never shown again after creation.
#[derive(Serialize, ToSchema)]
pub struct TokenOut {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<ApiToken> for TokenOut {
    fn from(t: ApiToken) -> Self {
        TokenOut {
            id: t.id,
            user_id: t.user_id,
            name: t.name,
            prefix: t.prefix,
            created_at: t.created_at,
            last_used_at: t.last_used_at,
            revoked_at: t.revoked_at,
        }
    }
}

/// The caller's tokens.
#[derive(Serialize, ToSchema)]
pub struct TokenList {
    pub tokens: Vec<TokenOut>,
}

/// A new token, for the caller or (admins) for `user_id`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    pub name: String,
    pub user_id: Option<i64>,
}

/// A created token, with its secret (shown this once).
#[derive(Serialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub record: TokenOut,
    pub token: String,
}

/// List your tokens.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", responses((status = 200, body = TokenList), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    auth: ApiAuth<Viewer>,
) -> Result<Json<TokenList>, ApiError> {
    let tokens = state.store.tokens_of(auth.user.id).await?;
    Ok(Json(TokenList {
        tokens: tokens.into_iter().map(Into::into).collect(),
    }))
}

/// Create a token.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = CreateToken,
    responses((status = 201, body = CreatedToken), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    auth: ApiAuth<Viewer>,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let owner = body.user_id.unwrap_or(auth.user.id);
    if owner != auth.user.id && !auth.user.role.allows(Role::Admin) {
        return Err(ApiError::forbidden(
            "Only admins may create tokens for other users.",
        ));
    }
    let mut fields = Fields::default();
    let name = fields.check("name", TokenName::parse(&body.name));
    fields.finish()?;
    let name = name.ok_or_else(|| ApiError::bad_request("invalid name"))?;
    let token = new_api_token();
    let record = state
        .store
        .create_token(
            owner,
            &name,
            &hash_secret(&token),
            &token_prefix(&token),
            &auth.audit(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            record: record.into(),
            token,
        }),
    ))
}

/// Revoke a token (yours, or anyone's as an admin).
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", params(("id" = i64, Path)), responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    auth: ApiAuth<Viewer>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&id)?;
    let token = state.store.token(id).await?;
    if token.user_id != auth.user.id && !auth.user.role.allows(Role::Admin) {
        return Err(ApiError::not_found("no such token"));
    }
    state.store.revoke_token(id, &auth.audit()).await?;
    Ok(StatusCode::NO_CONTENT)
}
