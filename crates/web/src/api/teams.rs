//! `/api/v1/teams`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use heliograph_domain::TeamName;
use heliograph_store::teams::TeamWithMembers;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiAuth, ApiError, ApiJson, ApiQuery, ErrorBody, Fields, PageQuery, path_id};
use crate::AppState;
use crate::auth::{Manager, Viewer};

/// A team and its members' user ids.
#[derive(Serialize, ToSchema)]
pub struct TeamOut {
    pub id: i64,
    pub name: String,
    pub members: Vec<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<TeamWithMembers> for TeamOut {
    fn from(t: TeamWithMembers) -> Self {
        TeamOut {
            id: t.team.id,
            name: t.team.name.to_string(),
            members: t.members,
            created_at: t.team.created_at,
            updated_at: t.team.updated_at,
        }
    }
}

/// A page of teams.
#[derive(Serialize, ToSchema)]
pub struct TeamList {
    pub teams: Vec<TeamOut>,
    pub next_cursor: Option<i64>,
}

/// A new team.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTeam {
    pub name: String,
    #[serde(default)]
    pub members: Vec<i64>,
}

/// Changes to a team; `members` replaces the whole list.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTeam {
    pub name: Option<String>,
    pub members: Option<Vec<i64>>,
}

/// List teams, newest first.
#[utoipa::path(get, path = "/api/v1/teams", tag = "teams", params(PageQuery), responses((status = 200, body = TeamList), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    _auth: ApiAuth<Viewer>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<TeamList>, ApiError> {
    let page = state.store.teams(q.limit()?, q.cursor).await?;
    Ok(Json(TeamList {
        teams: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

async fn check_members(
    state: &AppState,
    members: &[i64],
    fields: &mut Fields,
) -> Result<(), ApiError> {
    for id in members {
        match state.store.user(*id).await {
            Ok(_) => {}
            Err(heliograph_store::StoreError::NotFound) => {
                fields.add("members", format!("user {id} does not exist"))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Create a team (manager).
#[utoipa::path(post, path = "/api/v1/teams", tag = "teams", request_body = CreateTeam,
    responses((status = 201, body = TeamOut), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    auth: ApiAuth<Manager>,
    ApiJson(body): ApiJson<CreateTeam>,
) -> Result<(StatusCode, Json<TeamOut>), ApiError> {
    let mut fields = Fields::default();
    let name = fields.check("name", TeamName::parse(&body.name));
    check_members(&state, &body.members, &mut fields).await?;
    fields.finish()?;
    let name = name.ok_or_else(|| ApiError::bad_request("invalid name"))?;
    let team = state
        .store
        .create_team(&name, &body.members, &auth.audit())
        .await?;
    Ok((StatusCode::CREATED, Json(team.into())))
}

/// One team.
#[utoipa::path(get, path = "/api/v1/teams/{id}", tag = "teams", params(("id" = i64, Path)), responses((status = 200, body = TeamOut), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    _auth: ApiAuth<Viewer>,
    Path(id): Path<String>,
) -> Result<Json<TeamOut>, ApiError> {
    Ok(Json(state.store.team(path_id(&id)?).await?.into()))
}

/// Rename a team or replace its members (manager).
#[utoipa::path(patch, path = "/api/v1/teams/{id}", tag = "teams", params(("id" = i64, Path)), request_body = UpdateTeam,
    responses((status = 200, body = TeamOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    auth: ApiAuth<Manager>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateTeam>,
) -> Result<Json<TeamOut>, ApiError> {
    let id = path_id(&id)?;
    state.store.team(id).await?;
    let mut fields = Fields::default();
    let name = body
        .name
        .as_deref()
        .and_then(|n| fields.check("name", TeamName::parse(n)));
    if let Some(members) = &body.members {
        check_members(&state, members, &mut fields).await?;
    }
    fields.finish()?;
    let team = state
        .store
        .update_team(id, name.as_ref(), body.members.as_deref(), &auth.audit())
        .await?;
    Ok(Json(team.into()))
}

/// Delete a team (manager).
#[utoipa::path(delete, path = "/api/v1/teams/{id}", tag = "teams", params(("id" = i64, Path)), responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    auth: ApiAuth<Manager>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .store
        .delete_team(path_id(&id)?, &auth.audit())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
