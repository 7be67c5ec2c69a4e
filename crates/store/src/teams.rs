//! Teams and their members.

use chrono::{DateTime, Utc};
use heliograph_domain::TeamName;
use serde::Serialize;

use crate::audit::{Change, record};
use crate::users::User;
use crate::{Audit, Page, Result, Store, StoreError, Tx, read, tx};

/// A team: people who own services, schedules and escalation policies.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Team {
    pub id: i64,
    #[sqlx(try_from = "String")]
    pub name: TeamName,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A team with its members' ids, as audited and as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TeamWithMembers {
    #[serde(flatten)]
    pub team: Team,
    pub members: Vec<i64>,
}

impl Store {
    /// Creates a team with these members (unknown user ids are a conflict).
    pub async fn create_team(
        &self,
        name: &TeamName,
        members: &[i64],
        audit: &Audit,
    ) -> Result<TeamWithMembers> {
        let mut tx = self.db().begin().await?;
        let now = self.now();
        let team: Team = tx!(&mut tx, c => sqlx::query_as(
            "INSERT INTO teams (name, created_at, updated_at) VALUES ($1, $2, $2) RETURNING id, name, created_at, updated_at",
        )
        .bind(name.as_str())
        .bind(now)
        .fetch_one(c)
        .await)
        .map_err(|e| taken(e, name))?;
        let members = set_members(&mut tx, team.id, members).await?;
        let created = TeamWithMembers { team, members };
        record(
            &mut tx,
            audit,
            now,
            Change::new(
                "team.create",
                "team",
                created.team.id,
                format!("created team {}", created.team.name),
            )
            .after(&created),
        )
        .await?;
        tx.commit().await?;
        Ok(created)
    }

    /// The team with this id and its members.
    pub async fn team(&self, id: i64) -> Result<TeamWithMembers> {
        let team: Team = read!(self.db(), c => sqlx::query_as("SELECT id, name, created_at, updated_at FROM teams WHERE id = $1")
            .bind(id)
            .fetch_one(c)
            .await)?;
        let members: Vec<(i64,)> = read!(self.db(), c => sqlx::query_as("SELECT user_id FROM team_members WHERE team_id = $1 ORDER BY user_id")
            .bind(id)
            .fetch_all(c)
            .await)?;
        Ok(TeamWithMembers {
            team,
            members: members.into_iter().map(|m| m.0).collect(),
        })
    }

    /// The members of a team, by name.
    pub async fn team_members(&self, team_id: i64) -> Result<Vec<User>> {
        read!(self.db(), c => sqlx::query_as(
            "SELECT u.id, u.email, u.name, u.time_zone, u.role, u.disabled, u.created_at, u.updated_at
             FROM users u JOIN team_members m ON m.user_id = u.id
             WHERE m.team_id = $1 ORDER BY u.name, u.id",
        )
        .bind(team_id)
        .fetch_all(c)
        .await)
        .map_err(Into::into)
    }

    /// Teams with their members, newest first.
    pub async fn teams(&self, limit: i64, cursor: Option<i64>) -> Result<Page<TeamWithMembers>> {
        let rows: Vec<Team> = read!(self.db(), c => sqlx::query_as(
            "SELECT id, name, created_at, updated_at FROM teams WHERE ($1 IS NULL OR id < $1) ORDER BY id DESC LIMIT $2",
        )
        .bind(cursor)
        .bind(limit + 1)
        .fetch_all(c)
        .await)?;
        let page = Page::from_rows(rows, limit, |t| t.id);
        let ids: Vec<i64> = page.items.iter().map(|t| t.id).collect();
        let pairs: Vec<(i64, i64)> = if ids.is_empty() {
            Vec::new()
        } else {
            let (lo, hi) = (
                ids.iter().copied().min().unwrap_or(0),
                ids.iter().copied().max().unwrap_or(0),
            );
            read!(self.db(), c => sqlx::query_as(
                "SELECT team_id, user_id FROM team_members WHERE team_id BETWEEN $1 AND $2 ORDER BY team_id, user_id",
            )
            .bind(lo)
            .bind(hi)
            .fetch_all(c)
            .await)?
        };
        let items = page
            .items
            .into_iter()
            .map(|team| {
                let members = pairs
                    .iter()
                    .filter(|(t, _)| *t == team.id)
                    .map(|(_, u)| *u)
                    .collect();
                TeamWithMembers { team, members }
            })
            .collect();
        Ok(Page {
            items,
            next_cursor: page.next_cursor,
        })
    }

    /// The teams a user belongs to.
    pub async fn teams_of(&self, user_id: i64) -> Result<Vec<Team>> {
        read!(self.db(), c => sqlx::query_as(
            "SELECT t.id, t.name, t.created_at, t.updated_at FROM teams t JOIN team_members m ON m.team_id = t.id
             WHERE m.user_id = $1 ORDER BY t.name",
        )
        .bind(user_id)
        .fetch_all(c)
        .await)
        .map_err(Into::into)
    }

    /// Renames a team and/or replaces its members.
    pub async fn update_team(
        &self,
        id: i64,
        name: Option<&TeamName>,
        members: Option<&[i64]>,
        audit: &Audit,
    ) -> Result<TeamWithMembers> {
        let before = self.team(id).await?;
        let mut tx = self.db().begin().await?;
        let now = self.now();
        let new_name = name.unwrap_or(&before.team.name);
        let team: Team = tx!(&mut tx, c => sqlx::query_as(
            "UPDATE teams SET name = $2, updated_at = $3 WHERE id = $1 RETURNING id, name, created_at, updated_at",
        )
        .bind(id)
        .bind(new_name.as_str())
        .bind(now)
        .fetch_one(c)
        .await)
        .map_err(|e| taken(e, new_name))?;
        let members = match members {
            Some(members) => set_members(&mut tx, id, members).await?,
            None => before.members.clone(),
        };
        let after = TeamWithMembers { team, members };
        record(
            &mut tx,
            audit,
            now,
            Change::new(
                "team.update",
                "team",
                id,
                format!("updated team {}", after.team.name),
            )
            .before(&before)
            .after(&after),
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Deletes a team (its memberships go with it).
    pub async fn delete_team(&self, id: i64, audit: &Audit) -> Result<()> {
        let before = self.team(id).await?;
        let mut tx = self.db().begin().await?;
        tx!(&mut tx, c => sqlx::query("DELETE FROM teams WHERE id = $1").bind(id).execute(c).await.map(|r| r.rows_affected()))?;
        record(
            &mut tx,
            audit,
            self.now(),
            Change::new(
                "team.delete",
                "team",
                id,
                format!("deleted team {}", before.team.name),
            )
            .before(&before),
        )
        .await?;
        tx.commit().await
    }
}

async fn set_members(tx: &mut Tx, team_id: i64, members: &[i64]) -> Result<Vec<i64>> {
    let mut members: Vec<i64> = members.to_vec();
    members.sort_unstable();
    members.dedup();
    tx!(tx, c => sqlx::query("DELETE FROM team_members WHERE team_id = $1").bind(team_id).execute(c).await.map(|r| r.rows_affected()))?;
    for user_id in &members {
        tx!(tx, c => sqlx::query("INSERT INTO team_members (team_id, user_id) VALUES ($1, $2)")
            .bind(team_id)
            .bind(user_id)
            .execute(c)
            .await.map(|r| r.rows_affected()))
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => {
                StoreError::Conflict(format!("user {user_id} does not exist"))
            }
            other => other,
        })?;
    }
    Ok(members)
}

fn taken(err: sqlx::Error, name: &TeamName) -> StoreError {
    match StoreError::from(err) {
        StoreError::Conflict(_) => {
            StoreError::Conflict(format!("a team named {name} already exists"))
        }
        other => other,
    }
}
