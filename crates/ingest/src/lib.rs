//! Pure parsing and validation of the alerts monitoring systems send to Heliograph.
//!
//! Three formats arrive over HTTP (CONTRACT.md, "Alert ingestion"): PagerDuty Events API v2
//! ([`parse_events_v2`]), Prometheus Alertmanager webhooks ([`parse_alertmanager`]) and the
//! generic JSON webhook ([`parse_generic`]). Each turns request bytes into [`AlertEvent`]s or one
//! [`InvalidEvent`] listing every problem found, phrased the way PagerDuty phrases them.
//!
//! No I/O, no clock, no database: the crate is fuzzed with arbitrary bytes and must never panic.
//!
//! Decisions shared by the three parsers:
//! - Unknown fields are ignored; a field sent as JSON `null` counts as absent.
//! - Text fields shown on one line (summary, source, component, group, class, client, link text,
//!   image alt) are cleaned rather than rejected: control characters (newlines and tabs from
//!   alert templates included) become spaces, runs of whitespace collapse to one space, both
//!   ends are trimmed, and the invisible bidirectional-override characters that can make a
//!   summary read differently from what it says are removed. A field blank after cleaning is
//!   absent. Rejecting a page because its summary has a newline would lose the page.
//! - Identifiers (routing key, dedup key) are trimmed but never rewritten; a control character
//!   in one is an error, since a key that silently changed would no longer correlate events.
//! - URLs (links, images, client_url) must be `http://` or `https://`: they end up in `href`
//!   attributes, where `javascript:` would be an attack.
//! - Severity and action names are matched case-insensitively after trimming.
//! - Timestamps are ISO 8601 with a time zone offset (`Z`, `+00:00` or PagerDuty's own example
//!   form `+0000`); they are converted to UTC.

#![deny(unsafe_code)]

mod alertmanager;
mod check;
mod events_v2;
mod generic;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use heliograph_domain::Severity;
use serde::{Deserialize, Serialize};

pub use alertmanager::{label_fingerprint, parse_alertmanager, severity_from_label};
pub use events_v2::parse_events_v2;
pub use generic::parse_generic;

/// Largest request body accepted, in bytes (PagerDuty's documented 512 KB event limit).
///
/// The parsers check it too, but the web layer should refuse larger bodies before reading them.
pub const MAX_PAYLOAD_BYTES: usize = 512 * 1024;

/// Longest summary accepted, in characters (PagerDuty's `payload.summary` limit).
pub const MAX_SUMMARY_CHARS: usize = 1024;

/// Longest dedup key accepted, in characters (PagerDuty's `dedup_key` limit).
pub const MAX_DEDUP_KEY_CHARS: usize = 255;

/// Exact length of an Events API v2 `routing_key`, in characters.
///
/// PagerDuty rejects any other length, and so do we; Heliograph's integration keys for the
/// Events API v2 must therefore be 32 characters long (for example 16 random bytes in hex).
pub const ROUTING_KEY_CHARS: usize = 32;

/// Most error strings one [`InvalidEvent`] lists; the rest are counted in a last line.
pub const MAX_ERRORS: usize = 50;

/// The `status` of an [`InvalidEvent`] whose JSON parsed but whose fields are wrong.
pub const STATUS_INVALID: &str = "invalid event";

/// The `status` of an [`InvalidEvent`] that is not a JSON object at all.
pub const STATUS_UNRECOGNIZED: &str = "Unrecognized object";

/// What a monitoring system asks for: open (or re-trigger), acknowledge, or resolve an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// A problem was detected (again).
    Trigger,
    /// Someone is working on it; stop notifying.
    Acknowledge,
    /// The problem is gone.
    Resolve,
}

impl Action {
    /// The name used on the wire and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Trigger => "trigger",
            Action::Acknowledge => "acknowledge",
            Action::Resolve => "resolve",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The severity a monitoring system gives an alert (PagerDuty's four levels).
///
/// Not an incident [`Severity`]: a service maps one to the other, by default with
/// [`AlertSeverity::default_incident_severity`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertSeverity {
    /// Outage or data at risk.
    Critical,
    /// Major degradation.
    Error,
    /// Something to look at.
    Warning,
    /// For the record.
    Info,
}

impl AlertSeverity {
    /// Every value, most severe first.
    pub const ALL: &'static [AlertSeverity] = &[
        AlertSeverity::Critical,
        AlertSeverity::Error,
        AlertSeverity::Warning,
        AlertSeverity::Info,
    ];

    /// The name used on the wire and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertSeverity::Critical => "critical",
            AlertSeverity::Error => "error",
            AlertSeverity::Warning => "warning",
            AlertSeverity::Info => "info",
        }
    }

    /// The incident severity a new alert opens with unless its service maps it otherwise
    /// (issue 7): critical→SEV1, error→SEV2, warning→SEV3, info→SEV4.
    pub fn default_incident_severity(self) -> Severity {
        match self {
            AlertSeverity::Critical => Severity::Sev1,
            AlertSeverity::Error => Severity::Sev2,
            AlertSeverity::Warning => Severity::Sev3,
            AlertSeverity::Info => Severity::Sev4,
        }
    }
}

impl fmt::Display for AlertSeverity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing an [`AlertSeverity`] name that is none of the four.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("severity must be one of critical, error, warning, info; got {0}")]
pub struct UnknownSeverity(String);

impl FromStr for AlertSeverity {
    type Err = UnknownSeverity;

    /// Parses `critical`, `error`, `warning` or `info`, ignoring case and surrounding space.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        AlertSeverity::ALL
            .iter()
            .copied()
            .find(|v| v.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownSeverity(check::quote(s)))
    }
}

/// A link attached to an alert (PagerDuty `links[]`, Alertmanager `generatorURL`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// An `http(s)://` URL.
    pub href: String,
    /// What to show instead of the URL.
    pub text: Option<String>,
}

/// An image attached to an alert (PagerDuty `images[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// An `http(s)://` URL of the image.
    pub src: String,
    /// Where clicking the image leads, an `http(s)://` URL.
    pub href: Option<String>,
    /// Alternative text.
    pub alt: Option<String>,
}

/// One event about one alert, whatever format it came in.
///
/// Alerts are keyed by (integration, dedup key); the caller generates a dedup key when
/// `dedup_key` is `None`, which only happens for triggers (as PagerDuty does).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// What to do with the alert.
    pub action: Action,
    /// The key correlating events of one alert; `None` only on a trigger that sent none.
    pub dedup_key: Option<String>,
    /// One-line title, at most [`MAX_SUMMARY_CHARS`] characters. Always `Some` on a trigger;
    /// on acknowledge/resolve only when the sender included one.
    pub summary: Option<String>,
    /// Where the problem is, preferably a host name (PagerDuty `payload.source`).
    pub source: Option<String>,
    /// How bad it is. Always `Some` on a trigger; on acknowledge/resolve only when sent.
    pub severity: Option<AlertSeverity>,
    /// When the sender detected the event (not when it arrived), in UTC.
    pub timestamp: Option<DateTime<Utc>>,
    /// Part of the source responsible, e.g. `mysql`.
    pub component: Option<String>,
    /// Logical grouping of components, e.g. `app-stack`.
    pub group: Option<String>,
    /// Class or type of the event, e.g. `cpu load`.
    pub class: Option<String>,
    /// Free-form details, any JSON (`Null` when none were sent).
    pub details: serde_json::Value,
    /// Links to show with the alert.
    pub links: Vec<Link>,
    /// Images to show with the alert.
    pub images: Vec<Image>,
    /// Name of the sending monitoring client.
    pub client: Option<String>,
    /// URL of the sending monitoring client.
    pub client_url: Option<String>,
}

impl AlertEvent {
    /// An event with only its action set; parsers fill in the rest.
    fn new(action: Action) -> AlertEvent {
        AlertEvent {
            action,
            dedup_key: None,
            summary: None,
            source: None,
            severity: None,
            timestamp: None,
            component: None,
            group: None,
            class: None,
            details: serde_json::Value::Null,
            links: Vec::new(),
            images: Vec::new(),
            client: None,
            client_url: None,
        }
    }
}

/// A refused payload, with every problem found.
///
/// Serializes to PagerDuty's 400 body, e.g.
/// `{"status": "invalid event", "message": "Event object is invalid", "errors": ["'payload.summary' is missing or blank"]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{message}: {}", errors.join("; "))]
pub struct InvalidEvent {
    /// [`STATUS_INVALID`] or [`STATUS_UNRECOGNIZED`] (bytes that are not a JSON object).
    pub status: &'static str,
    /// The headline, as PagerDuty words it.
    pub message: String,
    /// One line per problem, naming the field.
    pub errors: Vec<String>,
}

impl InvalidEvent {
    /// Fields were wrong: PagerDuty's "Event object is invalid".
    fn invalid(errors: Vec<String>) -> InvalidEvent {
        InvalidEvent {
            status: STATUS_INVALID,
            message: "Event object is invalid".to_owned(),
            errors,
        }
    }

    /// Not a JSON object: PagerDuty's "Event object format is unrecognized".
    fn unrecognized(error: String) -> InvalidEvent {
        InvalidEvent {
            status: STATUS_UNRECOGNIZED,
            message: "Event object format is unrecognized".to_owned(),
            errors: vec![error],
        }
    }

    /// Whether the bytes were not even a JSON object (as opposed to an object with bad fields).
    pub fn is_unrecognized(&self) -> bool {
        self.status == STATUS_UNRECOGNIZED
    }
}
