//! `/oncall`: who is on call now in every schedule, until when, who is next and how to reach
//! them; the viewer's own next shifts first. Filterable by team.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::TimeDelta;
use heliograph_store::teams::TeamWithMembers;
use serde::Deserialize;

use super::schedules::timeline::hours;
use super::schedules::{name_in, names};
use crate::auth::{Auth, Viewer};
use crate::error::render_with_status;
use crate::schedules as logic;
use crate::views::Shell;
use crate::{AppError, AppState};

/// How far ahead "next" and "your shifts" look.
const LOOKAHEAD_DAYS: i64 = 28;

struct Row {
    schedule_id: i64,
    schedule: String,
    team: String,
    who: Option<String>,
    email: String,
    until: String,
    next_who: String,
    next_at: String,
}

/// A policy's level-1 first responders now.
struct PolicyRow {
    policy_id: i64,
    policy: String,
    team: String,
    /// (name, email) of each person paged first right now.
    responders: Vec<(String, String)>,
    /// Team channels level 1 posts to ("#ai-ops-incidents (Slack)").
    channels: Vec<String>,
}

struct MyShift {
    schedule_id: i64,
    schedule: String,
    start: String,
    end: String,
    hours: String,
    now: bool,
}

#[derive(Template)]
#[template(path = "oncall.html")]
struct OnCallPage {
    shell: Shell,
    rows: Vec<Row>,
    policies: Vec<PolicyRow>,
    mine: Vec<MyShift>,
    teams: Vec<TeamWithMembers>,
    team_id: Option<i64>,
}

impl OnCallPage {
    fn is_team(&self, id: &i64) -> bool {
        self.team_id == Some(*id)
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct Filter {
    #[serde(default)]
    team_id: Option<String>,
}

pub async fn get(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    shell: Shell,
    Query(filter): Query<Filter>,
) -> Result<Response, AppError> {
    let team_id = match filter.team_id.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(raw) => Some(raw.parse::<i64>().map_err(|_| {
            AppError::BadRequest("The team filter must be a team from the list.".into())
        })?),
    };
    let now = state.store.now();
    let horizon = now + TimeDelta::days(LOOKAHEAD_DAYS);
    let users = names(&state).await?;
    let teams = state.store.teams(1000, None).await?.items;
    let team_names: HashMap<i64, String> = teams
        .iter()
        .map(|t| (t.team.id, t.team.name.to_string()))
        .collect();
    let me = auth.user.id;
    let mine_ids = state.store.schedule_ids_of(me, now).await?;
    let mut rows = Vec::new();
    let mut mine = Vec::new();
    for stored in state.store.schedules().await? {
        let include_row = team_id.is_none_or(|t| t == stored.team_id);
        let include_mine = mine_ids.contains(&stored.id);
        if !include_row && !include_mine {
            continue;
        }
        let loaded = logic::load_stored(&state.store, stored, now, horizon).await?;
        if include_mine {
            for s in loaded.schedule.person_shifts(me, now, horizon) {
                mine.push((
                    s.start,
                    MyShift {
                        schedule_id: loaded.stored.id,
                        schedule: loaded.stored.name.clone(),
                        start: shell.time(&s.start),
                        end: shell.time(&s.end),
                        hours: hours(s.end - s.start),
                        now: s.start <= now,
                    },
                ));
            }
        }
        if !include_row {
            continue;
        }
        let on = loaded.schedule.on_call_at(now);
        let person = on.participant.and_then(|p| users.get(&p));
        let next = loaded
            .schedule
            .handoffs(now, horizon)
            .into_iter()
            .find(|h| h.to.is_some() && h.to != on.participant);
        rows.push(Row {
            schedule_id: loaded.stored.id,
            schedule: loaded.stored.name.clone(),
            team: team_names
                .get(&loaded.stored.team_id)
                .cloned()
                .unwrap_or_default(),
            who: person.map(|u| u.name.to_string()),
            email: person.map(|u| u.email.to_string()).unwrap_or_default(),
            until: if on.until >= horizon {
                format!("beyond {LOOKAHEAD_DAYS} days")
            } else {
                shell.time(&on.until)
            },
            next_who: next
                .and_then(|h| h.to)
                .map(|p| name_in(&users, p))
                .unwrap_or_else(|| "—".into()),
            next_at: next.map(|h| shell.time(&h.at)).unwrap_or_default(),
        });
    }
    let mut policies = Vec::new();
    for policy in state.store.policies().await? {
        if team_id.is_some_and(|t| t != policy.team_id) {
            continue;
        }
        let responders = crate::policies::first_responders(&state.store, &policy, now)
            .await?
            .into_iter()
            .map(|id| match users.get(&id) {
                Some(u) => (u.name.to_string(), u.email.to_string()),
                None => (name_in(&users, id), String::new()),
            })
            .collect();
        let mut channels = Vec::new();
        for target in policy.levels.first().map_or(&[][..], |l| &l.targets[..]) {
            if target.kind == heliograph_store::escalation_policies::TargetKind::Channel {
                channels.push(match state.store.team_channel(target.id).await {
                    Ok(c) => format!("{} ({})", c.name, c.kind.label()),
                    Err(heliograph_store::StoreError::NotFound) => {
                        format!("channel {}", target.id)
                    }
                    Err(e) => return Err(e.into()),
                });
            }
        }
        policies.push(PolicyRow {
            policy_id: policy.id,
            channels,
            team: team_names.get(&policy.team_id).cloned().unwrap_or_default(),
            policy: policy.name,
            responders,
        });
    }
    mine.sort_by_key(|(start, _)| *start);
    let mine = mine.into_iter().take(5).map(|(_, s)| s).collect();
    Ok(render_with_status(
        StatusCode::OK,
        &OnCallPage {
            shell,
            rows,
            policies,
            mine,
            teams,
            team_id,
        },
    ))
}
