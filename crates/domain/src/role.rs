use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::InvalidValue;

/// What a person may do. Each role includes everything the roles below it may do:
/// a viewer reads; a responder also works incidents; a manager also edits teams, schedules,
/// escalation policies and services; an admin also manages users, tokens, settings and the
/// audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Responder,
    Manager,
    Admin,
}

impl Role {
    /// All roles, least powerful first.
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Responder, Role::Manager, Role::Admin];

    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Responder => "responder",
            Role::Manager => "manager",
            Role::Admin => "admin",
        }
    }

    /// Whether this role includes everything `needed` may do.
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }

    /// One line on what the role may do, for forms and 403 pages.
    pub fn describe(self) -> &'static str {
        match self {
            Role::Viewer => "reads incidents, schedules, postmortems and insights",
            Role::Responder => "also declares and works incidents",
            Role::Manager => "also edits teams, schedules, escalation policies and services",
            Role::Admin => "also manages users, API tokens, settings and the audit log",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "viewer" => Ok(Role::Viewer),
            "responder" => Ok(Role::Responder),
            "manager" => Ok(Role::Manager),
            "admin" => Ok(Role::Admin),
            _ => Err(InvalidValue::new(
                "must be one of admin, manager, responder, viewer",
            )),
        }
    }
}

impl TryFrom<String> for Role {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_by_power() {
        assert!(Role::Admin.allows(Role::Manager));
        assert!(Role::Manager.allows(Role::Responder));
        assert!(Role::Responder.allows(Role::Viewer));
        assert!(!Role::Viewer.allows(Role::Responder));
        assert!(!Role::Manager.allows(Role::Admin));
    }

    #[test]
    fn parses_names_and_rejects_others() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        assert_eq!(" Admin ".parse::<Role>().unwrap(), Role::Admin);
        assert!("root".parse::<Role>().is_err());
    }
}
