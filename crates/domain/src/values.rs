use std::fmt;
use std::str::FromStr;

use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// Why a value was refused, in words meant for the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

impl InvalidValue {
    /// A refusal with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

fn bounded_text(raw: &str, what: &str, max: usize) -> Result<String, InvalidValue> {
    let text = raw.trim();
    if text.is_empty() {
        return Err(InvalidValue::new(format!("{what} is required")));
    }
    if text.chars().count() > max {
        return Err(InvalidValue::new(format!(
            "{what} must be at most {max} characters"
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(InvalidValue::new(format!(
            "{what} must not contain control characters"
        )));
    }
    Ok(text.to_owned())
}

macro_rules! text_newtype {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses and trims user input.
            pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
                bounded_text(raw, $what, $max).map(Self)
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidValue;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_newtype!(
    /// A person's name as shown to others (1–100 characters).
    DisplayName,
    "Name",
    100
);
text_newtype!(
    /// A team's name (1–100 characters).
    TeamName,
    "Team name",
    100
);
text_newtype!(
    /// A label for an API token, so its owner knows which script uses it (1–100 characters).
    TokenName,
    "Token name",
    100
);

/// An email address, trimmed and lower-cased, checked for the shape `local@domain`.
/// Deliverability is proven later by mail, not here.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserEmail(String);

impl UserEmail {
    /// Parses user input.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let email = raw.trim().to_lowercase();
        if email.is_empty() {
            return Err(InvalidValue::new("Email is required"));
        }
        if email.len() > 254 {
            return Err(InvalidValue::new("Email must be at most 254 characters"));
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err(InvalidValue::new("Email must look like name@example.com"));
        };
        let valid_domain = !domain.is_empty()
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && domain
                .chars()
                .all(|c| c.is_alphanumeric() || c == '.' || c == '-');
        if local.is_empty()
            || local.len() > 64
            || !valid_domain
            || email.chars().any(|c| c.is_whitespace() || c.is_control())
            || local.contains(['<', '>', '"', ',', ';', '@', '(', ')', '[', ']', '\\'])
        {
            return Err(InvalidValue::new("Email must look like name@example.com"));
        }
        Ok(Self(email))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for UserEmail {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<UserEmail> for String {
    fn from(value: UserEmail) -> String {
        value.0
    }
}

impl fmt::Display for UserEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An IANA time zone such as `Europe/London`, checked against the time zone database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeZone(Tz);

impl TimeZone {
    /// Coordinated Universal Time.
    pub const UTC: TimeZone = TimeZone(Tz::UTC);

    /// Parses an IANA name, exactly as the database spells it.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(InvalidValue::new("Time zone is required"));
        }
        Tz::from_str(name).map(Self).map_err(|_| {
            InvalidValue::new(format!(
                "\"{}\" is not an IANA time zone (for example Europe/London or Asia/Singapore)",
                name.chars().take(64).collect::<String>()
            ))
        })
    }

    /// The zone for computations.
    pub fn tz(self) -> Tz {
        self.0
    }

    /// The IANA name.
    pub fn name(self) -> &'static str {
        self.0.name()
    }

    /// Every zone name of the database, sorted, for pickers.
    pub fn all_names() -> impl Iterator<Item = &'static str> {
        chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name())
    }
}

impl From<Tz> for TimeZone {
    fn from(tz: Tz) -> Self {
        Self(tz)
    }
}

impl TryFrom<String> for TimeZone {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<TimeZone> for String {
    fn from(value: TimeZone) -> String {
        value.name().to_owned()
    }
}

impl fmt::Display for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A new password: at least 10 characters, at most 1,024 (argon2 input stays bounded).
/// Never printed: `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// The shortest password accepted.
    pub const MIN_CHARS: usize = 10;

    /// Checks a new password.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let count = raw.chars().count();
        if count < Self::MIN_CHARS {
            return Err(InvalidValue::new(format!(
                "Password must be at least {} characters",
                Self::MIN_CHARS
            )));
        }
        if raw.len() > 1024 {
            return Err(InvalidValue::new("Password must be at most 1024 bytes"));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The secret, to hash.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            UserEmail::parse("  Ana@Example.COM ").unwrap().as_str(),
            "ana@example.com"
        );
        for bad in [
            "",
            "ana",
            "@example.com",
            "ana@",
            "ana@.com",
            "a b@x.io",
            "ana@x..io",
            "<a>@x.io",
        ] {
            assert!(UserEmail::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn time_zones_come_from_the_iana_database() {
        assert_eq!(
            TimeZone::parse("Asia/Kathmandu").unwrap().name(),
            "Asia/Kathmandu"
        );
        let err = TimeZone::parse("Mars/Olympus_Mons").unwrap_err();
        assert!(err.0.contains("not an IANA time zone"), "{err}");
        assert!(TimeZone::parse(" ").is_err());
        assert!(TimeZone::all_names().any(|n| n == "Australia/Lord_Howe"));
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(DisplayName::parse("  Ana ").unwrap().as_str(), "Ana");
        assert!(DisplayName::parse("").is_err());
        assert!(DisplayName::parse(&"x".repeat(101)).is_err());
        assert!(TeamName::parse("AI\u{0007}platform").is_err());
    }

    #[test]
    fn passwords_have_a_minimum_and_hide_in_debug() {
        assert!(Password::parse("short").is_err());
        let p = Password::parse("correct horse battery").unwrap();
        assert_eq!(format!("{p:?}"), "Password(***)");
        assert!(Password::parse(&"x".repeat(2000)).is_err());
    }

    #[test]
    fn serde_parses_through_the_same_rules() {
        let tz: Result<TimeZone, _> = serde_json::from_str("\"Europe/Nowhere\"");
        assert!(tz.is_err());
    }
}
