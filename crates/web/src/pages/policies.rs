//! Escalation policy pages: everyone reads them; managers create, edit and delete. The form
//! shows the levels as numbered fieldsets (the existing ones plus one empty level to add), and
//! the whole policy is checked by [`crate::policies::check`] and saved with its version, so two
//! managers editing at once cannot silently overwrite each other.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use heliograph_domain::Severity;
use heliograph_store::StoreError;
use heliograph_store::escalation_policies::{Level, StoredPolicy, Target, TargetKind};
use heliograph_store::services::Service;
use heliograph_store::teams::TeamWithMembers;
use serde::Deserialize;

use crate::auth::{Auth, Manager, Viewer};
use crate::csrf::CsrfForm;
use crate::error::render_with_status;
use crate::flash::redirect_with;
use crate::policies::{self as logic, Draft, DraftLevel, MAX_LEVELS, Problems};
use crate::views::{FieldErrors, Shell};
use crate::{AppError, AppState};

/// Most level rows read from one form (levels plus empty and removed rows).
const MAX_ROWS: usize = MAX_LEVELS + 10;
/// Most targets read from one level row.
const MAX_ROW_TARGETS: usize = 200;

/// One level's fieldset as typed.
#[derive(Debug, Clone, Default)]
pub struct LevelForm {
    pub delay: String,
    pub min_severity: String,
    /// `user:7`, `schedule:1`.
    pub targets: Vec<String>,
    pub remove: bool,
}

impl LevelForm {
    /// Whether `value` (`user:7`) is ticked.
    pub fn has(&self, value: &str) -> bool {
        self.targets.iter().any(|t| t == value)
    }

    fn is_blank(&self) -> bool {
        self.targets.is_empty() && self.delay.trim().is_empty() && self.min_severity.is_empty()
    }

    fn from_level(level: &Level) -> Self {
        LevelForm {
            delay: level.delay_minutes.to_string(),
            min_severity: level
                .min_severity
                .map(|s| s.to_string())
                .unwrap_or_default(),
            targets: level.targets.iter().map(target_value).collect(),
            remove: false,
        }
    }
}

/// The policy form as typed.
#[derive(Debug, Clone, Default)]
pub struct PolicyForm {
    pub name: String,
    pub team_id: String,
    pub repeat: String,
    pub low_severity_any_time: bool,
    pub version: String,
    pub levels: Vec<LevelForm>,
}

impl PolicyForm {
    /// Reads the form's numbered fields (`level-0-delay`, repeated `level-0-target`).
    pub fn from_pairs(pairs: &[(String, String)]) -> Self {
        let mut form = PolicyForm::default();
        for (key, value) in pairs {
            match key.as_str() {
                "name" => form.name = value.clone(),
                "team_id" => form.team_id = value.clone(),
                "repeat" => form.repeat = value.clone(),
                "low_severity_any_time" => form.low_severity_any_time = true,
                "version" => form.version = value.clone(),
                other => {
                    let Some((index, field)) = other
                        .strip_prefix("level-")
                        .and_then(|rest| rest.split_once('-'))
                    else {
                        continue;
                    };
                    let Ok(index) = index.parse::<usize>() else {
                        continue;
                    };
                    if index >= MAX_ROWS {
                        continue;
                    }
                    if form.levels.len() <= index {
                        form.levels.resize_with(index + 1, LevelForm::default);
                    }
                    let level = &mut form.levels[index];
                    match field {
                        "delay" => level.delay = value.clone(),
                        "min_severity" => level.min_severity = value.clone(),
                        "target" if level.targets.len() < MAX_ROW_TARGETS => {
                            level.targets.push(value.clone())
                        }
                        "remove" => level.remove = true,
                        _ => {}
                    }
                }
            }
        }
        form
    }

    /// The form filled from a stored policy.
    pub fn from_policy(policy: &StoredPolicy) -> Self {
        PolicyForm {
            name: policy.name.clone(),
            team_id: policy.team_id.to_string(),
            repeat: policy.repeat.to_string(),
            low_severity_any_time: policy.low_severity_any_time,
            version: policy.version.to_string(),
            levels: policy.levels.iter().map(LevelForm::from_level).collect(),
        }
    }

    /// Adds one empty level to fill in, unless the last one is empty already.
    fn padded(mut self) -> Self {
        if self.levels.last().is_none_or(|l| !l.is_blank() || l.remove) {
            self.levels.push(LevelForm::default());
        }
        self
    }

    /// The draft to check, the form row each of its levels came from, and the problems found
    /// reading the form itself (keyed like the checker's, by row).
    fn draft(&self) -> (Draft, Vec<usize>, Problems) {
        let mut problems = Problems::new();
        let mut levels = Vec::new();
        let mut rows = Vec::new();
        for (i, row) in self.levels.iter().enumerate() {
            if row.remove || row.is_blank() {
                continue;
            }
            let mut targets = Vec::new();
            for value in &row.targets {
                match parse_target(value) {
                    Some(t) => targets.push(t),
                    None => {
                        problems.insert(
                            format!("levels[{i}].targets"),
                            "Pick people, schedules and channels from the lists".into(),
                        );
                    }
                }
            }
            let delay = row.delay.trim().parse::<i64>().ok();
            levels.push(DraftLevel {
                delay_minutes: delay,
                min_severity: Some(row.min_severity.clone()),
                targets,
            });
            rows.push(i);
        }
        let repeat = match self.repeat.trim() {
            "" => Some(0),
            raw => match raw.parse::<i64>() {
                Ok(n) => Some(n),
                Err(_) => Some(-1),
            },
        };
        let draft = Draft {
            name: self.name.clone(),
            team_id: self.team_id.trim().parse::<i64>().ok(),
            repeat,
            levels,
            low_severity_any_time: self.low_severity_any_time,
        };
        (draft, rows, problems)
    }
}

/// `user:7` or `schedule:1`.
fn target_value(t: &Target) -> String {
    format!("{}:{}", t.kind.as_str(), t.id)
}

fn parse_target(value: &str) -> Option<Target> {
    let (kind, id) = value.split_once(':')?;
    let id = id.parse::<i64>().ok().filter(|id| *id > 0)?;
    match kind {
        "user" => Some(Target::user(id)),
        "schedule" => Some(Target::schedule(id)),
        "channel" => Some(Target::channel(id)),
        _ => None,
    }
}

/// Puts the checker's problems beside the form's fields: `levels[k]` of the draft is form row
/// `rows[k]`; a target's problem goes beside its level's targets.
fn form_errors(problems: Problems, rows: &[usize], errors: &mut FieldErrors) {
    for (field, message) in problems {
        let Some(rest) = field.strip_prefix("levels[") else {
            errors.add(field, message);
            continue;
        };
        let Some((k, tail)) = rest.split_once("].") else {
            errors.add("levels", message);
            continue;
        };
        let row = k
            .parse::<usize>()
            .ok()
            .and_then(|k| rows.get(k).copied())
            .unwrap_or(0);
        let tail = if tail.starts_with("targets") {
            "targets"
        } else {
            tail
        };
        errors.add(format!("levels[{row}].{tail}"), message);
    }
}

/// A target to tick: its form value and its label.
pub struct Choice {
    pub value: String,
    pub label: String,
}

/// Names of people, schedules and team channels, looked up once per page.
struct Names {
    users: HashMap<i64, String>,
    schedules: HashMap<i64, String>,
    channels: HashMap<i64, String>,
}

impl Names {
    async fn load(state: &AppState) -> Result<Self, AppError> {
        Ok(Names {
            users: state
                .store
                .all_users()
                .await?
                .into_iter()
                .map(|u| (u.id, u.name.to_string()))
                .collect(),
            schedules: state
                .store
                .schedules()
                .await?
                .into_iter()
                .map(|s| (s.id, s.name))
                .collect(),
            channels: state
                .store
                .all_team_channels()
                .await?
                .into_iter()
                .map(|c| (c.id, format!("{} ({})", c.name, c.kind.label())))
                .collect(),
        })
    }

    fn target(&self, t: &Target) -> String {
        match t.kind {
            TargetKind::User => self
                .users
                .get(&t.id)
                .cloned()
                .unwrap_or_else(|| format!("user {}", t.id)),
            TargetKind::Schedule => format!(
                "on call in {}",
                self.schedules
                    .get(&t.id)
                    .cloned()
                    .unwrap_or_else(|| format!("schedule {}", t.id))
            ),
            TargetKind::Channel => format!(
                "channel {}",
                self.channels
                    .get(&t.id)
                    .cloned()
                    .unwrap_or_else(|| t.id.to_string())
            ),
        }
    }
}

/// One level of a policy in words, for the list and the page.
pub struct LevelLine {
    pub number: usize,
    pub delay_minutes: u32,
    pub severity: String,
    pub targets: Vec<String>,
    pub summary: String,
}

fn level_lines(policy: &StoredPolicy, names: &Names) -> Vec<LevelLine> {
    policy
        .levels
        .iter()
        .enumerate()
        .map(|(i, l)| LevelLine {
            number: i + 1,
            delay_minutes: l.delay_minutes,
            severity: match l.min_severity {
                None => "all severities".into(),
                Some(Severity::Sev1) => "SEV1 only".into(),
                Some(s) => format!("SEV1 to {s}"),
            },
            targets: l.targets.iter().map(|t| names.target(t)).collect(),
            summary: logic::level_summary(l),
        })
        .collect()
}

fn team_name(teams: &[TeamWithMembers], id: i64) -> String {
    teams
        .iter()
        .find(|t| t.team.id == id)
        .map(|t| t.team.name.to_string())
        .unwrap_or_else(|| format!("team {id}"))
}

// ---------------------------------------------------------------------------------------------
// List

struct ListRow {
    id: i64,
    name: String,
    team: String,
    levels: Vec<LevelLine>,
    repeat: u32,
    services: Vec<(i64, String)>,
}

#[derive(Template)]
#[template(path = "policies/list.html")]
struct ListPage {
    shell: Shell,
    rows: Vec<ListRow>,
}

pub async fn list(
    State(state): State<AppState>,
    _auth: Auth<Viewer>,
    shell: Shell,
) -> Result<Response, AppError> {
    let names = Names::load(&state).await?;
    let teams = state.store.teams(1000, None).await?.items;
    let services = state.store.services().await?;
    let rows = state
        .store
        .policies()
        .await?
        .into_iter()
        .map(|p| ListRow {
            id: p.id,
            name: p.name.clone(),
            team: team_name(&teams, p.team_id),
            levels: level_lines(&p, &names),
            repeat: p.repeat,
            services: services
                .iter()
                .filter(|s| s.escalation_policy_id == Some(p.id))
                .map(|s| (s.id, s.name.clone()))
                .collect(),
        })
        .collect();
    Ok(render_with_status(
        StatusCode::OK,
        &ListPage { shell, rows },
    ))
}

// ---------------------------------------------------------------------------------------------
// The form (new and edit) and the policy page

#[derive(Template)]
#[template(path = "policies/show.html")]
struct PolicyPage {
    shell: Shell,
    /// `None` on the new-policy page.
    policy: Option<StoredPolicy>,
    team: String,
    levels: Vec<LevelLine>,
    services: Vec<Service>,
    /// The form, for managers.
    form: PolicyForm,
    errors: FieldErrors,
    teams: Vec<TeamWithMembers>,
    schedules: Vec<Choice>,
    people: Vec<Choice>,
    /// Team channels, labelled with their team (a policy may use only its own team's).
    channels: Vec<Choice>,
    severities: &'static [(&'static str, &'static str)],
}

impl PolicyPage {
    fn is_team(&self, id: &i64) -> bool {
        self.form.team_id == id.to_string()
    }

    fn action(&self) -> String {
        match &self.policy {
            Some(p) => format!("/escalation-policies/{}", p.id),
            None => "/escalation-policies".into(),
        }
    }

    fn error(&self, row: &usize, field: &str) -> Option<&str> {
        self.errors.get(&format!("levels[{row}].{field}"))
    }
}

const SEVERITIES: [(&str, &str); 4] = [
    ("", "all severities"),
    ("SEV1", "SEV1 only"),
    ("SEV2", "SEV1 and SEV2"),
    ("SEV3", "SEV1 to SEV3"),
];

async fn policy_page(
    state: &AppState,
    shell: Shell,
    policy: Option<StoredPolicy>,
    form: PolicyForm,
    errors: FieldErrors,
) -> Result<PolicyPage, AppError> {
    let names = Names::load(state).await?;
    let teams = state.store.teams(1000, None).await?.items;
    let (team, levels, services) = match &policy {
        Some(p) => (
            team_name(&teams, p.team_id),
            level_lines(p, &names),
            state.store.services_using_policy(p.id).await?,
        ),
        None => (String::new(), Vec::new(), Vec::new()),
    };
    let schedules = state
        .store
        .schedules()
        .await?
        .into_iter()
        .map(|s| Choice {
            value: format!("schedule:{}", s.id),
            label: s.name,
        })
        .collect();
    let people = state
        .store
        .all_users()
        .await?
        .into_iter()
        .filter(|u| !u.disabled || form.levels.iter().any(|l| l.has(&format!("user:{}", u.id))))
        .map(|u| Choice {
            value: format!("user:{}", u.id),
            label: format!("{} ({})", u.name, u.email),
        })
        .collect();
    let channels = state
        .store
        .all_team_channels()
        .await?
        .into_iter()
        .map(|c| Choice {
            value: format!("channel:{}", c.id),
            label: format!(
                "{} ({}, team {})",
                c.name,
                c.kind.label(),
                team_name(&teams, c.team_id)
            ),
        })
        .collect();
    Ok(PolicyPage {
        shell,
        policy,
        team,
        levels,
        services,
        form: form.padded(),
        errors,
        teams,
        schedules,
        people,
        channels,
        severities: &SEVERITIES,
    })
}

pub async fn new_form(
    State(state): State<AppState>,
    _auth: Auth<Manager>,
    shell: Shell,
) -> Result<Response, AppError> {
    let teams = state.store.teams(1, None).await?.items;
    let form = PolicyForm {
        team_id: teams
            .first()
            .map(|t| t.team.id.to_string())
            .unwrap_or_default(),
        repeat: "0".into(),
        levels: vec![LevelForm {
            delay: "5".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let page = policy_page(&state, shell, None, form, FieldErrors::default()).await?;
    Ok(render_with_status(StatusCode::OK, &page))
}

pub async fn create(
    State(state): State<AppState>,
    auth: Auth<Manager>,
    shell: Shell,
    CsrfForm(pairs): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let form = PolicyForm::from_pairs(&pairs);
    let (draft, rows, read_problems) = form.draft();
    let mut errors = FieldErrors::default();
    match logic::check(&state.store, &draft).await? {
        Ok(fields) if read_problems.is_empty() => {
            match state.store.create_policy(&fields, &auth.audit()).await {
                Ok(p) => {
                    return Ok(redirect_with(
                        &format!("/escalation-policies/{}", p.id),
                        "success",
                        format!("Escalation policy {} created.", p.name),
                    ));
                }
                Err(StoreError::Conflict(m)) => errors.add("name", m),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(_) => form_errors(read_problems, &rows, &mut errors),
        Err(mut problems) => {
            problems.extend(read_problems);
            form_errors(problems, &rows, &mut errors);
        }
    }
    let page = policy_page(&state, shell, None, form, errors).await?;
    Ok(render_with_status(StatusCode::UNPROCESSABLE_ENTITY, &page))
}

pub async fn show(
    State(state): State<AppState>,
    _auth: Auth<Viewer>,
    shell: Shell,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let id = super::parse_id(&id)?;
    let policy = state.store.policy(id).await?;
    let form = PolicyForm::from_policy(&policy);
    let page = policy_page(&state, shell, Some(policy), form, FieldErrors::default()).await?;
    Ok(render_with_status(StatusCode::OK, &page))
}

pub async fn update(
    State(state): State<AppState>,
    auth: Auth<Manager>,
    shell: Shell,
    Path(id): Path<String>,
    CsrfForm(pairs): CsrfForm<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let id = super::parse_id(&id)?;
    let policy = state.store.policy(id).await?;
    let form = PolicyForm::from_pairs(&pairs);
    let (draft, rows, read_problems) = form.draft();
    let version = form.version.trim().parse::<i64>().ok();
    let mut errors = FieldErrors::default();
    let mut status = StatusCode::UNPROCESSABLE_ENTITY;
    match logic::check(&state.store, &draft).await? {
        Ok(fields) if read_problems.is_empty() => {
            match state
                .store
                .update_policy(id, &fields, version, &auth.audit())
                .await
            {
                Ok(p) => {
                    return Ok(redirect_with(
                        &format!("/escalation-policies/{id}"),
                        "success",
                        format!("Escalation policy {} saved.", p.name),
                    ));
                }
                Err(StoreError::Conflict(m)) if m.contains("already exists") => {
                    errors.add("name", m)
                }
                Err(StoreError::Conflict(m)) => {
                    status = StatusCode::CONFLICT;
                    errors.add("form", m);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(_) => form_errors(read_problems, &rows, &mut errors),
        Err(mut problems) => {
            problems.extend(read_problems);
            form_errors(problems, &rows, &mut errors);
        }
    }
    let page = policy_page(&state, shell, Some(policy), form, errors).await?;
    Ok(render_with_status(status, &page))
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
    let policy = state.store.policy(id).await?;
    state.store.delete_policy(id, &auth.audit()).await?;
    Ok(redirect_with(
        "/escalation-policies",
        "success",
        format!("Escalation policy {} deleted.", policy.name),
    ))
}
