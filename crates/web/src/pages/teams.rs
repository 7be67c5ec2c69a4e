//! Teams: everyone reads them; managers create, rename, change members and delete.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use heliograph_domain::TeamName;
use heliograph_store::StoreError;
use heliograph_store::teams::TeamWithMembers;
use heliograph_store::users::User;
use serde::Deserialize;

use crate::auth::{Auth, Manager, Viewer};
use crate::csrf::CsrfForm;
use crate::error::render_with_status;
use crate::flash::redirect_with;
use crate::views::{FieldErrors, Shell};
use crate::{AppError, AppState};

#[derive(Template)]
#[template(path = "teams/list.html")]
struct TeamsPage {
    shell: Shell,
    teams: Vec<(TeamWithMembers, Vec<String>)>,
    users: Vec<User>,
    form: TeamFormValues,
    errors: FieldErrors,
}

#[derive(Template)]
#[template(path = "teams/show.html")]
struct TeamPage {
    shell: Shell,
    team: TeamWithMembers,
    action: String,
    members: Vec<User>,
    users: Vec<User>,
    form: TeamFormValues,
    errors: FieldErrors,
}

/// What the team form shows: the saved values, or what the user typed.
#[derive(Debug, Clone, Default)]
struct TeamFormValues {
    name: String,
    members: Vec<i64>,
}

impl TeamFormValues {
    fn has(&self, id: &i64) -> bool {
        self.members.contains(id)
    }
}

#[derive(Deserialize)]
pub struct TeamForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    members: Vec<String>,
}

/// Checks a submitted team form against the known users.
fn parse_team_form(
    form: &TeamForm,
    users: &[User],
    errors: &mut FieldErrors,
) -> (Option<TeamName>, Vec<i64>) {
    let name = errors.check("name", TeamName::parse(&form.name));
    let mut members = Vec::new();
    for raw in &form.members {
        match raw.parse::<i64>() {
            Ok(id) if users.iter().any(|u| u.id == id) => members.push(id),
            _ => errors.add(
                "members",
                format!(
                    "\"{}\" is not a user",
                    raw.chars().take(20).collect::<String>()
                ),
            ),
        }
    }
    (name, members)
}

async fn list_page(
    state: &AppState,
    shell: Shell,
    form: TeamFormValues,
    errors: FieldErrors,
) -> Result<TeamsPage, AppError> {
    let users = state.store.all_users().await?;
    let teams = state.store.teams(500, None).await?.items;
    let teams = teams
        .into_iter()
        .map(|t| {
            let names = t
                .members
                .iter()
                .filter_map(|id| users.iter().find(|u| u.id == *id))
                .map(|u| u.name.to_string())
                .collect();
            (t, names)
        })
        .collect();
    Ok(TeamsPage {
        shell,
        teams,
        users,
        form,
        errors,
    })
}

pub async fn list(
    State(state): State<AppState>,
    _auth: Auth<Viewer>,
    shell: Shell,
) -> Result<Response, AppError> {
    Ok(render_with_status(
        StatusCode::OK,
        &list_page(
            &state,
            shell,
            TeamFormValues::default(),
            FieldErrors::default(),
        )
        .await?,
    ))
}

pub async fn create(
    State(state): State<AppState>,
    auth: Auth<Manager>,
    shell: Shell,
    CsrfForm(form): CsrfForm<TeamForm>,
) -> Result<Response, AppError> {
    let users = state.store.all_users().await?;
    let mut errors = FieldErrors::default();
    let (name, members) = parse_team_form(&form, &users, &mut errors);
    if let (Some(name), true) = (&name, errors.is_empty()) {
        match state.store.create_team(name, &members, &auth.audit()).await {
            Ok(team) => {
                return Ok(redirect_with(
                    &format!("/teams/{}", team.team.id),
                    "success",
                    format!("Team {} created.", team.team.name),
                ));
            }
            Err(StoreError::Conflict(m)) => errors.add("name", m),
            Err(e) => return Err(e.into()),
        }
    }
    let values = TeamFormValues {
        name: form.name,
        members,
    };
    Ok(render_with_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &list_page(&state, shell, values, errors).await?,
    ))
}

async fn team_page(
    state: &AppState,
    shell: Shell,
    id: i64,
    form: Option<TeamFormValues>,
    errors: FieldErrors,
) -> Result<TeamPage, AppError> {
    let team = state.store.team(id).await?;
    let members = state.store.team_members(id).await?;
    let users = state.store.all_users().await?;
    let form = form.unwrap_or_else(|| TeamFormValues {
        name: team.team.name.to_string(),
        members: team.members.clone(),
    });
    let action = format!("/teams/{}", team.team.id);
    Ok(TeamPage {
        shell,
        team,
        action,
        members,
        users,
        form,
        errors,
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
        &team_page(&state, shell, id, None, FieldErrors::default()).await?,
    ))
}

pub async fn update(
    State(state): State<AppState>,
    auth: Auth<Manager>,
    shell: Shell,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<TeamForm>,
) -> Result<Response, AppError> {
    let id = super::parse_id(&id)?;
    let users = state.store.all_users().await?;
    let mut errors = FieldErrors::default();
    let (name, members) = parse_team_form(&form, &users, &mut errors);
    if let (Some(name), true) = (&name, errors.is_empty()) {
        match state
            .store
            .update_team(id, Some(name), Some(&members), &auth.audit())
            .await
        {
            Ok(team) => {
                return Ok(redirect_with(
                    &format!("/teams/{id}"),
                    "success",
                    format!("Team {} saved.", team.team.name),
                ));
            }
            Err(StoreError::Conflict(m)) => errors.add("name", m),
            Err(e) => return Err(e.into()),
        }
    }
    let values = TeamFormValues {
        name: form.name,
        members,
    };
    Ok(render_with_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &team_page(&state, shell, id, Some(values), errors).await?,
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
    let team = state.store.team(id).await?;
    state.store.delete_team(id, &auth.audit()).await?;
    Ok(redirect_with(
        "/teams",
        "success",
        format!("Team {} deleted.", team.team.name),
    ))
}
