//! Services: everyone reads them; managers create, edit and delete.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use heliograph_domain::{ServiceKind, WorkloadClass};
use heliograph_store::StoreError;
use heliograph_store::services::{Service, ServiceFields};
use heliograph_store::teams::TeamWithMembers;
use serde::Deserialize;

use crate::auth::{Auth, Manager, Viewer};
use crate::csrf::CsrfForm;
use crate::error::render_with_status;
use crate::flash::redirect_with;
use crate::views::{FieldErrors, Shell};
use crate::{AppError, AppState};

/// The service form as typed.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ServiceForm {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub workload_class: String,
    #[serde(default)]
    pub team_id: String,
}

impl ServiceForm {
    fn from_service(s: &Service) -> Self {
        ServiceForm {
            name: s.name.clone(),
            description: s.description.clone(),
            kind: s.kind.to_string(),
            workload_class: s.workload_class.to_string(),
            team_id: s.team_id.map(|t| t.to_string()).unwrap_or_default(),
        }
    }
}

/// Checks a service form; the same rules serve the API.
pub fn parse_service(
    form: &ServiceForm,
    teams: &[TeamWithMembers],
    errors: &mut FieldErrors,
) -> Option<ServiceFields> {
    let name = form.name.trim();
    if name.is_empty() {
        errors.add("name", "Name is required");
    } else if name.chars().count() > 100 || name.chars().any(char::is_control) {
        errors.add(
            "name",
            "Name must be at most 100 characters, without control characters",
        );
    }
    if form.description.chars().count() > 2000 {
        errors.add(
            "description",
            "Description must be at most 2,000 characters",
        );
    }
    let kind = errors.check("kind", form.kind.parse::<ServiceKind>());
    let workload_class = errors.check(
        "workload_class",
        form.workload_class.parse::<WorkloadClass>(),
    );
    let team_id = match form.team_id.trim() {
        "" => None,
        raw => match raw.parse::<i64>() {
            Ok(id) if teams.iter().any(|t| t.team.id == id) => Some(id),
            _ => {
                errors.add("team_id", "Choose a team from the list");
                None
            }
        },
    };
    if !errors.is_empty() {
        return None;
    }
    Some(ServiceFields {
        name: name.to_owned(),
        description: form.description.trim().to_owned(),
        kind: kind?,
        workload_class: workload_class?,
        team_id,
    })
}

#[derive(Template)]
#[template(path = "services/list.html")]
struct ServicesPage {
    shell: Shell,
    services: Vec<Service>,
    teams: Vec<TeamWithMembers>,
    form: ServiceForm,
    errors: FieldErrors,
    kinds: &'static [ServiceKind],
    classes: &'static [WorkloadClass],
    action: String,
    submit: &'static str,
}

impl ServicesPage {
    fn team_name(&self, id: &Option<i64>) -> String {
        id.and_then(|id| self.teams.iter().find(|t| t.team.id == id))
            .map(|t| t.team.name.to_string())
            .unwrap_or_else(|| "—".into())
    }
}

async fn list_page(
    state: &AppState,
    shell: Shell,
    form: ServiceForm,
    errors: FieldErrors,
) -> Result<ServicesPage, AppError> {
    Ok(ServicesPage {
        shell,
        services: state.store.services().await?,
        teams: state.store.teams(500, None).await?.items,
        form,
        errors,
        kinds: ServiceKind::ALL,
        classes: WorkloadClass::ALL,
        action: "/services".into(),
        submit: "Create service",
    })
}

pub async fn list(
    State(state): State<AppState>,
    _auth: Auth<Viewer>,
    shell: Shell,
) -> Result<Response, AppError> {
    let form = ServiceForm {
        kind: "llm-inference".into(),
        workload_class: "real-time".into(),
        ..Default::default()
    };
    Ok(render_with_status(
        StatusCode::OK,
        &list_page(&state, shell, form, FieldErrors::default()).await?,
    ))
}

pub async fn create(
    State(state): State<AppState>,
    auth: Auth<Manager>,
    shell: Shell,
    CsrfForm(form): CsrfForm<ServiceForm>,
) -> Result<Response, AppError> {
    let teams = state.store.teams(500, None).await?.items;
    let mut errors = FieldErrors::default();
    if let Some(fields) = parse_service(&form, &teams, &mut errors) {
        match state.store.create_service(&fields, &auth.audit()).await {
            Ok(s) => {
                return Ok(redirect_with(
                    &format!("/services/{}", s.id),
                    "success",
                    format!("Service {} created.", s.name),
                ));
            }
            Err(StoreError::Conflict(m)) => errors.add("name", m),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(render_with_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &list_page(&state, shell, form, errors).await?,
    ))
}

#[derive(Template)]
#[template(path = "services/show.html")]
struct ServicePage {
    shell: Shell,
    service: Service,
    team: Option<String>,
    teams: Vec<TeamWithMembers>,
    form: ServiceForm,
    errors: FieldErrors,
    kinds: &'static [ServiceKind],
    classes: &'static [WorkloadClass],
    action: String,
    submit: &'static str,
}

async fn service_page(
    state: &AppState,
    shell: Shell,
    id: i64,
    form: Option<ServiceForm>,
    errors: FieldErrors,
) -> Result<ServicePage, AppError> {
    let service = state.store.service(id).await?;
    let teams = state.store.teams(500, None).await?.items;
    let team = service
        .team_id
        .and_then(|id| teams.iter().find(|t| t.team.id == id))
        .map(|t| t.team.name.to_string());
    let form = form.unwrap_or_else(|| ServiceForm::from_service(&service));
    Ok(ServicePage {
        shell,
        action: format!("/services/{id}"),
        service,
        team,
        teams,
        form,
        errors,
        kinds: ServiceKind::ALL,
        classes: WorkloadClass::ALL,
        submit: "Save service",
    })
}

pub async fn show(
    State(state): State<AppState>,
    _auth: Auth<Viewer>,
    shell: Shell,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let id = super::parse_id(&id)?;
    Ok(render_with_status(
        StatusCode::OK,
        &service_page(&state, shell, id, None, FieldErrors::default()).await?,
    ))
}

pub async fn update(
    State(state): State<AppState>,
    auth: Auth<Manager>,
    shell: Shell,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<ServiceForm>,
) -> Result<Response, AppError> {
    let id = super::parse_id(&id)?;
    state.store.service(id).await?;
    let teams = state.store.teams(500, None).await?.items;
    let mut errors = FieldErrors::default();
    if let Some(fields) = parse_service(&form, &teams, &mut errors) {
        match state.store.update_service(id, &fields, &auth.audit()).await {
            Ok(s) => {
                return Ok(redirect_with(
                    &format!("/services/{id}"),
                    "success",
                    format!("Service {} saved.", s.name),
                ));
            }
            Err(StoreError::Conflict(m)) => errors.add("name", m),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(render_with_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &service_page(&state, shell, id, Some(form), errors).await?,
    ))
}

#[derive(Deserialize)]
pub struct Empty {}

pub async fn delete(
    State(state): State<AppState>,
    auth: Auth<Manager>,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, AppError> {
    let id = super::parse_id(&id)?;
    let service = state.store.service(id).await?;
    state.store.delete_service(id, &auth.audit()).await?;
    Ok(redirect_with(
        "/services",
        "success",
        format!("Service {} deleted.", service.name),
    ))
}
