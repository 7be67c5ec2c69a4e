//! `/api/v1/services`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use heliograph_store::services::Service;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiAuth, ApiError, ApiJson, ErrorBody, path_id};
use crate::AppState;
use crate::auth::{Manager, Viewer};
use crate::pages::services::{ServiceForm, parse_service};
use crate::views::FieldErrors;

/// A service.
#[derive(Serialize, ToSchema)]
pub struct ServiceOut {
    pub id: i64,
    pub name: String,
    pub description: String,
    /// llm-inference, vector-db, feature-store, agent-framework, data-pipeline or other
    pub kind: String,
    /// real-time, batch or on-demand
    pub workload_class: String,
    pub team_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Service> for ServiceOut {
    fn from(s: Service) -> Self {
        ServiceOut {
            id: s.id,
            name: s.name,
            description: s.description,
            kind: s.kind.to_string(),
            workload_class: s.workload_class.to_string(),
            team_id: s.team_id,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// Every service.
#[derive(Serialize, ToSchema)]
pub struct ServiceList {
    pub services: Vec<ServiceOut>,
}

/// A service to create or the fields to change. Escalation policies and response targets
/// attach to services in a later release; until then those fields are refused.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ServiceBody {
    pub name: Option<String>,
    pub description: Option<String>,
    pub kind: Option<String>,
    pub workload_class: Option<String>,
    pub team_id: Option<i64>,
}

async fn validate(
    state: &AppState,
    form: ServiceForm,
) -> Result<heliograph_store::services::ServiceFields, ApiError> {
    let teams = state.store.teams(500, None).await?.items;
    let mut errors = FieldErrors::default();
    parse_service(&form, &teams, &mut errors).ok_or_else(|| ApiError::validation(errors.into_map()))
}

/// List services, by name.
#[utoipa::path(get, path = "/api/v1/services", tag = "services", responses((status = 200, body = ServiceList), (status = 401, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    _auth: ApiAuth<Viewer>,
) -> Result<Json<ServiceList>, ApiError> {
    Ok(Json(ServiceList {
        services: state
            .store
            .services()
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    }))
}

/// Create a service (manager).
#[utoipa::path(post, path = "/api/v1/services", tag = "services", request_body = ServiceBody,
    responses((status = 201, body = ServiceOut), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    auth: ApiAuth<Manager>,
    ApiJson(body): ApiJson<ServiceBody>,
) -> Result<(StatusCode, Json<ServiceOut>), ApiError> {
    let form = ServiceForm {
        name: body.name.unwrap_or_default(),
        description: body.description.unwrap_or_default(),
        kind: body.kind.unwrap_or_default(),
        workload_class: body.workload_class.unwrap_or_default(),
        team_id: body.team_id.map(|t| t.to_string()).unwrap_or_default(),
    };
    let fields = validate(&state, form).await?;
    let service = state.store.create_service(&fields, &auth.audit()).await?;
    Ok((StatusCode::CREATED, Json(service.into())))
}

/// One service.
#[utoipa::path(get, path = "/api/v1/services/{id}", tag = "services", params(("id" = i64, Path)), responses((status = 200, body = ServiceOut), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    _auth: ApiAuth<Viewer>,
    Path(id): Path<String>,
) -> Result<Json<ServiceOut>, ApiError> {
    Ok(Json(state.store.service(path_id(&id)?).await?.into()))
}

/// Change a service (manager); absent fields stay as they are.
#[utoipa::path(patch, path = "/api/v1/services/{id}", tag = "services", params(("id" = i64, Path)), request_body = ServiceBody,
    responses((status = 200, body = ServiceOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    auth: ApiAuth<Manager>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ServiceBody>,
) -> Result<Json<ServiceOut>, ApiError> {
    let id = path_id(&id)?;
    let current = state.store.service(id).await?;
    let form = ServiceForm {
        name: body.name.unwrap_or(current.name),
        description: body.description.unwrap_or(current.description),
        kind: body.kind.unwrap_or_else(|| current.kind.to_string()),
        workload_class: body
            .workload_class
            .unwrap_or_else(|| current.workload_class.to_string()),
        team_id: body
            .team_id
            .or(current.team_id)
            .map(|t| t.to_string())
            .unwrap_or_default(),
    };
    let fields = validate(&state, form).await?;
    Ok(Json(
        state
            .store
            .update_service(id, &fields, &auth.audit())
            .await?
            .into(),
    ))
}

/// Delete a service (manager).
#[utoipa::path(delete, path = "/api/v1/services/{id}", tag = "services", params(("id" = i64, Path)), responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    auth: ApiAuth<Manager>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .store
        .delete_service(path_id(&id)?, &auth.audit())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
