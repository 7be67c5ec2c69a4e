//! `/action-items`: every open or in-progress action item, grouped by owner, with overdue ones
//! (due before today in the viewer's own zone) marked and counted, a summary per owner and per
//! team, and filters for team, owner and "overdue only".
//!
//! A team here is the owner's team: an item counts for every team its owner belongs to (and
//! under "No team" when its owner belongs to none or it has no owner). Viewers (leadership)
//! read the items of published postmortems only, as they can only open those.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use heliograph_domain::Role;
use heliograph_store::postmortems::{Membership, OpenItem, OpenItemFilter};
use heliograph_store::users::User;
use serde::Deserialize;

use crate::auth::{Auth, Viewer};
use crate::error::render_with_status;
use crate::views::{FieldErrors, Shell};
use crate::{AppError, AppState};

/// The most items the page lists; beyond it the page says so and asks for a filter.
const LIMIT: i64 = 2_000;

/// The query as typed, kept to refill the filter form.
#[derive(Debug, Default, Deserialize, Clone)]
pub struct OverviewQuery {
    #[serde(default)]
    pub team: String,
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub overdue: String,
}

/// An item as the page shows it.
pub struct ShownItem {
    pub item: OpenItem,
    pub due: String,
    pub overdue: bool,
}

/// One owner's items and counts.
pub struct OwnerGroup {
    pub name: String,
    pub teams: String,
    pub items: Vec<ShownItem>,
    pub overdue: usize,
}

/// Open and overdue counts of a team (or of "No team").
pub struct TeamSummary {
    pub name: String,
    pub open: usize,
    pub overdue: usize,
}

#[derive(Template)]
#[template(path = "action_items/overview.html")]
struct OverviewPage {
    shell: Shell,
    query: OverviewQuery,
    errors: FieldErrors,
    teams: Vec<(i64, String)>,
    users: Vec<User>,
    groups: Vec<OwnerGroup>,
    team_summaries: Vec<TeamSummary>,
    total_open: usize,
    total_overdue: usize,
    today: String,
    truncated: bool,
    published_only: bool,
}

/// Parses one query value: empty means "any"; anything else must be a known id.
fn known_id(raw: &str, known: impl Fn(i64) -> bool, message: &str) -> Result<Option<i64>, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    raw.parse::<i64>()
        .ok()
        .filter(|id| known(*id))
        .map(Some)
        .ok_or_else(|| message.to_owned())
}

pub async fn overview(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    shell: Shell,
    query: Result<Query<OverviewQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, AppError> {
    let mut errors = FieldErrors::default();
    let query = match query {
        Ok(Query(q)) => q,
        Err(e) => {
            errors.add("query", format!("The address is not understood: {e}"));
            OverviewQuery::default()
        }
    };
    let memberships: Vec<Membership> = state.store.memberships().await?;
    let mut teams: Vec<(i64, String)> = state
        .store
        .teams(500, None)
        .await?
        .items
        .into_iter()
        .map(|t| (t.team.id, t.team.name.to_string()))
        .collect();
    teams.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
    let users = state.store.all_users().await?;

    let published_only = !auth.user.role.allows(Role::Responder);
    let tz = shell.tz();
    let today = state.store.now().with_timezone(&tz).date_naive();
    let mut filter = OpenItemFilter {
        published_only,
        ..OpenItemFilter::default()
    };
    filter.team_id = errors
        .check(
            "team",
            known_id(
                &query.team,
                |id| teams.iter().any(|t| t.0 == id),
                "Choose a team from the list",
            ),
        )
        .flatten();
    filter.owner_id = errors
        .check(
            "owner",
            known_id(
                &query.owner,
                |id| users.iter().any(|u| u.id == id),
                "Choose an owner from the list",
            ),
        )
        .flatten();
    match query.overdue.as_str() {
        "" => {}
        "1" | "on" | "true" => filter.due_before = Some(today),
        _ => errors.add("overdue", "Tick \"Overdue only\" or leave it empty"),
    }

    let (items, status) = if errors.is_empty() {
        (
            state.store.open_action_items(&filter, LIMIT + 1).await?,
            StatusCode::OK,
        )
    } else {
        (Vec::new(), StatusCode::BAD_REQUEST)
    };
    let truncated = items.len() as i64 > LIMIT;

    let mut teams_of: BTreeMap<i64, Vec<&Membership>> = BTreeMap::new();
    for m in &memberships {
        teams_of.entry(m.user_id).or_default().push(m);
    }
    let mut groups: Vec<OwnerGroup> = Vec::new();
    let mut by_team: BTreeMap<(String, i64), (usize, usize)> = BTreeMap::new();
    let (mut total_open, mut total_overdue) = (0, 0);
    for item in items.into_iter().take(LIMIT as usize) {
        let overdue = item.item.is_overdue(today);
        total_open += 1;
        total_overdue += usize::from(overdue);
        let owner_teams = item
            .item
            .owner_id
            .and_then(|id| teams_of.get(&id))
            .cloned()
            .unwrap_or_default();
        if owner_teams.is_empty() {
            let e = by_team.entry(("\u{10FFFF}No team".into(), 0)).or_default();
            e.0 += 1;
            e.1 += usize::from(overdue);
        }
        for m in &owner_teams {
            let e = by_team.entry((m.team_name.clone(), m.team_id)).or_default();
            e.0 += 1;
            e.1 += usize::from(overdue);
        }
        let name = item
            .item
            .owner_name
            .clone()
            .unwrap_or_else(|| "Nobody yet".into());
        // Items arrive ordered by owner, so a new owner starts a new group.
        let same_owner = groups
            .last()
            .zip(groups.last().and_then(|g| g.items.last()))
            .is_some_and(|(_, last)| last.item.item.owner_id == item.item.owner_id);
        if !same_owner {
            groups.push(OwnerGroup {
                name,
                teams: owner_teams
                    .iter()
                    .map(|m| m.team_name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                items: Vec::new(),
                overdue: 0,
            });
        }
        if let Some(group) = groups.last_mut() {
            group.overdue += usize::from(overdue);
            group.items.push(ShownItem {
                due: item
                    .item
                    .due_date
                    .map(|d| d.to_string())
                    .unwrap_or_default(),
                overdue,
                item,
            });
        }
    }
    let team_summaries = by_team
        .into_iter()
        .map(|((name, _), (open, overdue))| TeamSummary {
            name: name.trim_start_matches('\u{10FFFF}').to_owned(),
            open,
            overdue,
        })
        .collect();

    let page = OverviewPage {
        shell,
        query,
        errors,
        teams,
        users,
        groups,
        team_summaries,
        total_open,
        total_overdue,
        today: today.to_string(),
        truncated,
        published_only,
    };
    Ok(render_with_status(status, &page))
}
