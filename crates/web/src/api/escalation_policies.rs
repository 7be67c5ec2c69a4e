//! `/api/v1/escalation-policies`: policies in CONTRACT.md's shape, replaced whole with an
//! optional version check. Shape errors name their field path (`levels[1].min_severity`);
//! the rules shared with the pages live in [`crate::policies`].

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use heliograph_store::StoreError;
use heliograph_store::escalation_policies::{Level, StoredPolicy, Target, TargetKind};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::schedules::PathJson;
use super::{ApiAuth, ApiError, ApiQuery, ErrorBody, PageQuery, path_id};
use crate::AppState;
use crate::auth::{Manager, Viewer};
use crate::policies::{self as shared, Draft, DraftLevel};

/// A policy to create, or to replace a policy with (CONTRACT.md's shape). The read-only
/// fields of a GET answer are accepted and ignored, so an answer can be edited and sent back.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyBody {
    #[schema(required = true, example = "LLM gateway")]
    pub name: Option<String>,
    #[schema(required = true)]
    pub team_id: Option<i64>,
    /// How many more times the whole policy runs after the last level (0 to 20; default 0 =
    /// once).
    pub repeat: Option<i64>,
    /// 1 to 20 levels, in the order they run.
    #[schema(required = true)]
    pub levels: Option<Vec<LevelBody>>,
    /// Page SEV3/SEV4 at any hour instead of within each person's working hours (default
    /// false).
    pub low_severity_any_time: Option<bool>,
    /// On PUT: the version last read. If the policy changed since, nothing is saved and the
    /// answer is 409.
    pub version: Option<i64>,
    #[serde(default, rename = "id")]
    #[schema(ignore)]
    _id: Option<IgnoredAny>,
    #[serde(default, rename = "created_at")]
    #[schema(ignore)]
    _created_at: Option<IgnoredAny>,
    #[serde(default, rename = "updated_at")]
    #[schema(ignore)]
    _updated_at: Option<IgnoredAny>,
}

/// One level: whom to page and how long to wait for an acknowledgement before the next.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LevelBody {
    /// 1 to 1440.
    #[schema(example = 5)]
    pub delay_minutes: i64,
    /// `SEV1`…`SEV4`: the level runs only for incidents at least this severe; `null` for all.
    #[serde(default)]
    #[schema(example = "SEV2")]
    pub min_severity: Option<String>,
    /// At least one.
    pub targets: Vec<TargetBody>,
}

/// A person, whoever is on call in a schedule when the level runs, or a channel of the
/// policy's own team (posted to; see the team's page).
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetBody {
    #[serde(rename = "type")]
    pub kind: TargetType,
    pub id: i64,
}

/// `user`, `schedule` or `channel`.
#[derive(Deserialize, Serialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum TargetType {
    User,
    Schedule,
    Channel,
}

/// A stored escalation policy.
#[derive(Serialize, ToSchema)]
pub struct PolicyOut {
    pub id: i64,
    pub name: String,
    pub team_id: i64,
    pub repeat: u32,
    #[schema(value_type = Vec<LevelBody>)]
    pub levels: Vec<Level>,
    pub low_severity_any_time: bool,
    /// Send it back on PUT to refuse overwriting someone else's change.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<StoredPolicy> for PolicyOut {
    fn from(p: StoredPolicy) -> Self {
        PolicyOut {
            id: p.id,
            name: p.name,
            team_id: p.team_id,
            repeat: p.repeat,
            levels: p.levels,
            low_severity_any_time: p.low_severity_any_time,
            version: p.version,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// A page of escalation policies, newest first.
#[derive(Serialize, ToSchema)]
pub struct PolicyList {
    pub escalation_policies: Vec<PolicyOut>,
    pub next_cursor: Option<i64>,
}

/// Checks a body into the store's fields, or every problem found, by field path.
async fn checked(
    state: &AppState,
    body: PolicyBody,
) -> Result<heliograph_store::escalation_policies::PolicyFields, ApiError> {
    let mut missing = shared::Problems::new();
    if body.name.is_none() {
        missing.insert("name".into(), "name is required".into());
    }
    if body.levels.is_none() {
        missing.insert(
            "levels".into(),
            "levels is required (a list, first level first)".into(),
        );
    }
    let draft = Draft {
        name: body.name.unwrap_or_default(),
        team_id: body.team_id,
        repeat: body.repeat,
        levels: body
            .levels
            .unwrap_or_default()
            .into_iter()
            .map(|l| DraftLevel {
                delay_minutes: Some(l.delay_minutes),
                min_severity: l.min_severity,
                targets: l
                    .targets
                    .into_iter()
                    .map(|t| Target {
                        kind: match t.kind {
                            TargetType::User => TargetKind::User,
                            TargetType::Schedule => TargetKind::Schedule,
                            TargetType::Channel => TargetKind::Channel,
                        },
                        id: t.id,
                    })
                    .collect(),
            })
            .collect(),
        low_severity_any_time: body.low_severity_any_time.unwrap_or(false),
    };
    match shared::check(&state.store, &draft).await? {
        Ok(fields) if missing.is_empty() => Ok(fields),
        Ok(_) => Err(ApiError::validation(missing)),
        Err(mut problems) => {
            problems.extend(missing);
            Err(ApiError::validation(problems))
        }
    }
}

fn not_found(id: i64) -> impl Fn(StoreError) -> ApiError {
    move |e| match e {
        StoreError::NotFound => ApiError::not_found(format!("There is no escalation policy {id}.")),
        other => other.into(),
    }
}

/// List escalation policies, newest first.
#[utoipa::path(get, path = "/api/v1/escalation-policies", tag = "escalation policies", params(PageQuery),
    responses((status = 200, body = PolicyList), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    _auth: ApiAuth<Viewer>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<PolicyList>, ApiError> {
    let page = state.store.policies_page(q.limit()?, q.cursor).await?;
    Ok(Json(PolicyList {
        escalation_policies: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Create an escalation policy (manager).
#[utoipa::path(post, path = "/api/v1/escalation-policies", tag = "escalation policies", request_body = PolicyBody,
    responses((status = 201, body = PolicyOut), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    auth: ApiAuth<Manager>,
    PathJson(body): PathJson<PolicyBody>,
) -> Result<(StatusCode, Json<PolicyOut>), ApiError> {
    let fields = checked(&state, body).await?;
    let policy = state.store.create_policy(&fields, &auth.audit()).await?;
    Ok((StatusCode::CREATED, Json(policy.into())))
}

/// One escalation policy.
#[utoipa::path(get, path = "/api/v1/escalation-policies/{id}", tag = "escalation policies", params(("id" = i64, Path)),
    responses((status = 200, body = PolicyOut), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    _auth: ApiAuth<Viewer>,
    Path(id): Path<String>,
) -> Result<Json<PolicyOut>, ApiError> {
    let id = path_id(&id)?;
    let policy = state.store.policy(id).await.map_err(not_found(id))?;
    Ok(Json(policy.into()))
}

/// Replace an escalation policy whole (manager). With `version`, a policy changed since that
/// version answers 409 and nothing is saved.
#[utoipa::path(put, path = "/api/v1/escalation-policies/{id}", tag = "escalation policies", params(("id" = i64, Path)), request_body = PolicyBody,
    responses((status = 200, body = PolicyOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn replace(
    State(state): State<AppState>,
    auth: ApiAuth<Manager>,
    Path(id): Path<String>,
    PathJson(body): PathJson<PolicyBody>,
) -> Result<Json<PolicyOut>, ApiError> {
    let id = path_id(&id)?;
    state.store.policy(id).await.map_err(not_found(id))?;
    let version = body.version;
    let fields = checked(&state, body).await?;
    let policy = state
        .store
        .update_policy(id, &fields, version, &auth.audit())
        .await
        .map_err(not_found(id))?;
    Ok(Json(policy.into()))
}

/// Delete an escalation policy (manager). Services that used it stay, without a policy.
#[utoipa::path(delete, path = "/api/v1/escalation-policies/{id}", tag = "escalation policies", params(("id" = i64, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    auth: ApiAuth<Manager>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&id)?;
    state
        .store
        .delete_policy(id, &auth.audit())
        .await
        .map_err(not_found(id))?;
    Ok(StatusCode::NO_CONTENT)
}
