//! The start page: who you are, your teams, where to go next.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use heliograph_store::teams::Team;

use crate::auth::{Auth, Viewer};
use crate::views::Shell;
use crate::{AppError, AppState};

#[derive(Template, WebTemplate)]
#[template(path = "home.html")]
pub struct HomePage {
    shell: Shell,
    teams: Vec<Team>,
    user_count: i64,
}

pub async fn get(
    State(state): State<AppState>,
    auth: Auth<Viewer>,
    shell: Shell,
) -> Result<HomePage, AppError> {
    let teams = state.store.teams_of(auth.user.id).await?;
    let user_count = state.store.user_count().await?;
    Ok(HomePage {
        shell,
        teams,
        user_count,
    })
}
