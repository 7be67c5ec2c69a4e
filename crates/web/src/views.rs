//! What every page shares: the shell (signed-in user, CSRF token, flash message, active
//! navigation item), field errors for forms, and times shown in the viewer's zone.

use std::collections::BTreeMap;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use heliograph_domain::Role;

use crate::auth::{CurrentUser, MaybeUser};
use crate::csrf::CsrfToken;
use crate::flash::Flash;
use crate::{AppError, AppState};

/// The frame around every page.
#[derive(Debug, Clone)]
pub struct Shell {
    pub user: Option<CurrentUser>,
    pub csrf: String,
    pub flash: Option<Flash>,
    /// The request path, to mark the current navigation item.
    pub path: String,
}

impl Shell {
    /// Whether the navigation item for `prefix` is the current one.
    pub fn active(&self, prefix: &str) -> bool {
        self.path == prefix || self.path.starts_with(&format!("{prefix}/"))
    }

    /// Whether the viewer holds at least `role`.
    pub fn can(&self, role: &str) -> bool {
        let needed: Role = role.parse().unwrap_or(Role::Admin);
        self.user
            .as_ref()
            .is_some_and(|u| u.user.role.allows(needed))
    }

    /// The viewer's zone (UTC when signed out).
    pub fn tz(&self) -> Tz {
        self.user
            .as_ref()
            .map(|u| u.user.time_zone.tz())
            .unwrap_or(Tz::UTC)
    }

    /// An instant in the viewer's zone, e.g. `2026-11-28 14:05 GMT`.
    pub fn time(&self, at: &DateTime<Utc>) -> String {
        format_in(at, self.tz())
    }

    /// An optional instant, or a dash.
    pub fn time_opt(&self, at: &Option<DateTime<Utc>>) -> String {
        at.as_ref()
            .map(|t| self.time(t))
            .unwrap_or_else(|| "—".into())
    }
}

/// An instant in `tz`, with the zone's abbreviation (or offset) named.
pub fn format_in(at: &DateTime<Utc>, tz: Tz) -> String {
    at.with_timezone(&tz)
        .format("%Y-%m-%d %H:%M %Z")
        .to_string()
}

impl FromRequestParts<AppState> for Shell {
    type Rejection = AppError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let MaybeUser(user) = MaybeUser::from_request_parts(parts, state).await?;
        let CsrfToken(csrf) = parts
            .extensions
            .get::<CsrfToken>()
            .cloned()
            .unwrap_or(CsrfToken(String::new()));
        Ok(Shell {
            user,
            csrf,
            flash: parts.extensions.get::<Flash>().cloned(),
            path: parts.uri.path().to_owned(),
        })
    }
}

/// Messages to show beside the fields of a form that was refused.
#[derive(Debug, Clone, Default)]
pub struct FieldErrors(BTreeMap<String, String>);

impl FieldErrors {
    /// Records an error for `field`.
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.entry(field.into()).or_insert_with(|| message.into());
    }

    /// The error for `field`, if any.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.get(field).map(String::as_str)
    }

    /// Whether there is any error.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The errors by field name, for the API's error body.
    pub fn into_map(self) -> std::collections::BTreeMap<String, String> {
        self.0
    }

    /// Runs a parse, recording its error under `field`.
    pub fn check<T, E: std::fmt::Display>(
        &mut self,
        field: impl Into<String>,
        result: Result<T, E>,
    ) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.add(field, e.to_string());
                None
            }
        }
    }
}

/// Every IANA zone name, for pickers (computed once).
pub fn zone_names() -> &'static [&'static str] {
    static NAMES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        let mut names: Vec<&'static str> = heliograph_domain::TimeZone::all_names().collect();
        names.sort_unstable();
        names
    })
}
