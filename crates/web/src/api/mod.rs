//! The REST API under `/api/v1`: JSON, `Authorization: Bearer <token>`, the error shape of
//! CONTRACT.md everywhere, and an OpenAPI document generated from these handlers.

use std::collections::BTreeMap;
use std::marker::PhantomData;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use heliograph_store::users::User;
use heliograph_store::{Audit, StoreError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::{ClientAddr, MinRole, hash_secret};

mod alerts;
mod escalation_policies;
mod incidents;
mod postmortems;
mod schedules;
mod services;
mod teams;
mod tokens;
mod users;

#[derive(OpenApi)]
#[openapi(
    info(title = "Heliograph API", description = "Incident management and on-call. Authenticate with `Authorization: Bearer <token>`; create tokens on your profile page or with `heliograph token create`."),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags((name = "users"), (name = "teams"), (name = "tokens"), (name = "services"), (name = "schedules"), (name = "escalation policies"), (name = "incidents"), (name = "alerts"), (name = "postmortems"))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The API's routes (full paths under `/api/v1`) plus `/api/v1/openapi.json`.
pub fn routes() -> Router<AppState> {
    let (router, doc) = OpenApiRouter::<AppState>::with_openapi(ApiDoc::openapi())
        .routes(routes!(users::list, users::create))
        .routes(routes!(users::me))
        .routes(routes!(users::get, users::update))
        .routes(routes!(teams::list, teams::create))
        .routes(routes!(teams::get, teams::update, teams::delete))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::revoke))
        .routes(routes!(services::list, services::create))
        .routes(routes!(services::get, services::update, services::delete))
        .routes(routes!(schedules::list, schedules::create))
        .routes(routes!(
            schedules::get,
            schedules::replace,
            schedules::delete
        ))
        .routes(routes!(schedules::oncall))
        .routes(routes!(schedules::shifts))
        .routes(routes!(
            schedules::list_overrides,
            schedules::create_override
        ))
        .routes(routes!(schedules::get_override, schedules::delete_override))
        .routes(routes!(
            escalation_policies::list,
            escalation_policies::create
        ))
        .routes(routes!(
            escalation_policies::get,
            escalation_policies::replace,
            escalation_policies::delete
        ))
        .routes(routes!(incidents::list, incidents::declare))
        .routes(routes!(incidents::get))
        .routes(routes!(incidents::acknowledge))
        .routes(routes!(incidents::resolve))
        .routes(routes!(incidents::add_note))
        .routes(routes!(
            alerts::list_integrations,
            alerts::create_integration
        ))
        .routes(routes!(alerts::rotate))
        .routes(routes!(alerts::delete_integration))
        .routes(routes!(alerts::list))
        .routes(routes!(alerts::get))
        .routes(routes!(postmortems::list))
        .routes(routes!(postmortems::get, postmortems::update))
        .split_for_parts();
    let doc = std::sync::Arc::new(doc);
    router.route(
        "/api/v1/openapi.json",
        axum::routing::get(move || {
            let doc = doc.clone();
            async move { Json(doc.as_ref().clone()) }
        }),
    )
}

/// The error body of every API answer that is not a success.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable snake_case code, e.g. `validation_failed`.
    pub code: String,
    /// A sentence for people.
    pub message: String,
    /// Per-field messages, for validation errors only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<BTreeMap<String, String>>,
}

/// An API failure: a status and the CONTRACT.md error body.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    fields: Option<BTreeMap<String, String>>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            fields: None,
        }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    /// A validation failure naming each bad field.
    pub fn validation(fields: BTreeMap<String, String>) -> Self {
        let names: Vec<&str> = fields.keys().map(String::as_str).collect();
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "validation_failed",
            message: format!("Some fields are invalid: {}.", names.join(", ")),
            fields: Some(fields),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => ApiError::not_found("not found"),
            StoreError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            other => {
                tracing::error!(error = %other, "API request failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "Something went wrong on our side; it has been logged.",
                )
            }
        }
    }
}

impl From<crate::AppError> for ApiError {
    fn from(err: crate::AppError) -> Self {
        match err {
            crate::AppError::NotFound => ApiError::not_found("not found"),
            crate::AppError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            crate::AppError::BadRequest(m) => ApiError::bad_request(m),
            other => {
                tracing::error!(error = %other, "API request failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "Something went wrong on our side; it has been logged.",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.into(),
                message: self.message,
                fields: self.fields,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// Collects field errors for an API body.
#[derive(Default)]
pub struct Fields(BTreeMap<String, String>);

impl Fields {
    /// Runs a parse, recording its error under `field`.
    pub fn check<T, E: std::fmt::Display>(
        &mut self,
        field: &str,
        result: Result<T, E>,
    ) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.insert(field.to_owned(), e.to_string());
                None
            }
        }
    }
    /// Records an error.
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0
            .entry(field.to_owned())
            .or_insert_with(|| message.into());
    }
    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The recorded messages as one sentence.
    pub fn message_text(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Fails with every recorded error, if any.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::validation(self.0))
        }
    }
}

/// A JSON body whose rejections answer in the API's error shape.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;
    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(match rejection {
                JsonRejection::MissingJsonContentType(_) => ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "Send the body as JSON with Content-Type: application/json.",
                ),
                JsonRejection::JsonSyntaxError(e) => ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_json",
                    format!("The body is not valid JSON: {}", e.body_text()),
                ),
                JsonRejection::JsonDataError(e) => ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_body",
                    e.body_text(),
                ),
                JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "payload_too_large",
                        format!(
                            "The body is larger than the limit of {} bytes.",
                            crate::router::BODY_LIMIT
                        ),
                    )
                }
                other => ApiError::bad_request(other.body_text()),
            }),
        }
    }
}

/// A query string whose rejections answer in the API's error shape.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e: QueryRejection| {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text())
            })
    }
}

/// Parses a numeric id from the path; anything else is a 404.
pub fn path_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
        ApiError::not_found(format!(
            "no resource with id {:?}",
            raw.chars().take(40).collect::<String>()
        ))
    })
}

/// `?limit=&cursor=` on every list.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
pub struct PageQuery {
    /// How many items (1–200, default 50).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<i64>,
}

impl PageQuery {
    pub fn limit(&self) -> Result<i64, ApiError> {
        match self.limit {
            None => Ok(50),
            Some(n) if (1..=200).contains(&n) => Ok(n),
            Some(_) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                "limit must be between 1 and 200",
            )),
        }
    }
}

/// The caller of an API request, authenticated by a bearer token, holding at least role `R`.
pub struct ApiAuth<R: MinRole> {
    pub user: User,
    pub client_addr: Option<String>,
    _role: PhantomData<R>,
}

impl<R: MinRole> ApiAuth<R> {
    /// The audit context for changes this caller makes.
    pub fn audit(&self) -> Audit {
        Audit {
            actor_user_id: Some(self.user.id),
            actor: format!("{} (API)", self.user.email),
            client_addr: self.client_addr.clone(),
        }
    }
}

impl<R: MinRole> FromRequestParts<AppState> for ApiAuth<R> {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("Send an API token as Authorization: Bearer <token>."))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauthorized("The Authorization header must be Bearer <token>."))?;
        let (_, user) = state
            .store
            .authenticate_token(&hash_secret(token))
            .await?
            .ok_or_else(|| unauthorized("The API token is not valid or has been revoked."))?;
        if !user.role.allows(R::ROLE) {
            return Err(ApiError::forbidden(format!(
                "This needs the {} role; the token belongs to a {}.",
                R::ROLE,
                user.role
            )));
        }
        let ClientAddr(client_addr) = ClientAddr::from_request_parts(parts, state)
            .await
            .unwrap_or(ClientAddr(None));
        Ok(ApiAuth {
            user,
            client_addr,
            _role: PhantomData,
        })
    }
}
