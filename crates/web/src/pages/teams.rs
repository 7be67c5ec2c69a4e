//! Teams: everyone reads them; managers create, rename, change members and delete, and keep
//! the team's channels (Slack-compatible or generic webhooks that escalation policies post to).

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use heliograph_domain::TeamName;
use heliograph_store::StoreError;
use heliograph_store::team_channels::{self, ChannelKind, NewChannel, TeamChannel};
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
    channels: Vec<TeamChannel>,
    channel: ChannelForm,
    channel_errors: FieldErrors,
    kinds: [ChannelKind; 2],
}

/// The add-channel form: empty, or what the manager typed.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ChannelForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    url: String,
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
    team_page_with(
        state,
        shell,
        id,
        form,
        errors,
        ChannelForm::default(),
        FieldErrors::default(),
    )
    .await
}

async fn team_page_with(
    state: &AppState,
    shell: Shell,
    id: i64,
    form: Option<TeamFormValues>,
    errors: FieldErrors,
    channel: ChannelForm,
    channel_errors: FieldErrors,
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
        channels: state.store.team_channels(id).await?,
        channel,
        channel_errors,
        kinds: ChannelKind::ALL,
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

/// Adds a channel to the team (manager). Bad input re-shows the form with what was typed and
/// a message beside each field; nothing is saved.
pub async fn add_channel(
    State(state): State<AppState>,
    auth: Auth<Manager>,
    shell: Shell,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<ChannelForm>,
) -> Result<Response, AppError> {
    let id = super::parse_id(&id)?;
    let team = state.store.team(id).await?;
    let mut errors = FieldErrors::default();
    let name = errors.check("channel_name", team_channels::parse_name(&form.name));
    let kind = errors.check("channel_kind", form.kind.parse::<ChannelKind>());
    let url = errors.check("channel_url", team_channels::parse_url(&form.url));
    let mut status = StatusCode::UNPROCESSABLE_ENTITY;
    if let (Some(name), Some(kind), Some(url), true) = (name, kind, url, errors.is_empty()) {
        let new = NewChannel { name, kind, url };
        match state.store.add_team_channel(id, &new, &auth.audit()).await {
            Ok(channel) => {
                return Ok(redirect_with(
                    &format!("/teams/{id}#channels"),
                    "success",
                    format!(
                        "Channel {} added to {}. Send it a test to verify it.",
                        channel.name, team.team.name
                    ),
                ));
            }
            Err(StoreError::Conflict(m)) => {
                status = StatusCode::CONFLICT;
                errors.add("channel_name", m);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(render_with_status(
        status,
        &team_page_with(
            &state,
            shell,
            id,
            None,
            FieldErrors::default(),
            form,
            errors,
        )
        .await?,
    ))
}

/// The team's channel `raw`; another team's channel is not found.
async fn own_channel(state: &AppState, team_id: i64, raw: &str) -> Result<TeamChannel, AppError> {
    let channel = state.store.team_channel(super::parse_id(raw)?).await?;
    if channel.team_id != team_id {
        return Err(AppError::NotFound);
    }
    Ok(channel)
}

/// Asks the engine to post a test message to a channel; a successful delivery verifies it.
pub async fn test_channel(
    State(state): State<AppState>,
    auth: Auth<Manager>,
    Path((id, channel)): Path<(String, String)>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, AppError> {
    let id = super::parse_id(&id)?;
    let channel = own_channel(&state, id, &channel).await?;
    let back = format!("/teams/{id}#channels");
    match state
        .store
        .request_channel_test(channel.id, &auth.audit())
        .await
    {
        Ok(_) => {
            state.wake_engine();
            Ok(redirect_with(
                &back,
                "success",
                format!(
                    "Test sent to {}: the channel is marked verified when delivery succeeds.",
                    channel.name
                ),
            ))
        }
        Err(StoreError::Conflict(m)) => Ok(redirect_with(&back, "error", m)),
        Err(e) => Err(e.into()),
    }
}

/// Deletes a channel; one an escalation policy still posts to is refused, naming the policy.
pub async fn delete_channel(
    State(state): State<AppState>,
    auth: Auth<Manager>,
    shell: Shell,
    Path((id, channel)): Path<(String, String)>,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, AppError> {
    let id = super::parse_id(&id)?;
    let channel = own_channel(&state, id, &channel).await?;
    match state
        .store
        .delete_team_channel(channel.id, &auth.audit())
        .await
    {
        Ok(()) => Ok(redirect_with(
            &format!("/teams/{id}#channels"),
            "success",
            format!("Channel {} deleted.", channel.name),
        )),
        Err(StoreError::Conflict(m)) => {
            let mut errors = FieldErrors::default();
            errors.add("channel_list", m);
            Ok(render_with_status(
                StatusCode::CONFLICT,
                &team_page_with(
                    &state,
                    shell,
                    id,
                    None,
                    FieldErrors::default(),
                    ChannelForm::default(),
                    errors,
                )
                .await?,
            ))
        }
        Err(e) => Err(e.into()),
    }
}
