//! The vocabulary of incidents and services (PRODUCT.md).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::InvalidValue;

/// Declares a closed set of names stored as TEXT, with parsing, display and serde.
macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident, $what:literal, { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub enum $name { $($(#[$vdoc])* $variant),+ }

        impl $name {
            /// Every value, in order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored and displayed name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = InvalidValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s.trim() {
                    $($text => Ok($name::$variant),)+
                    other => Err(InvalidValue::new(format!(
                        "{} must be one of {}, not \"{}\"",
                        $what,
                        [$($text),+].join(", "),
                        other.chars().take(40).collect::<String>()
                    ))),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidValue;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                value.parse()
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.as_str().to_owned()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// How bad an incident is; lower number = more severe.
    Severity, "Severity", {
        Sev1 => "SEV1",
        Sev2 => "SEV2",
        Sev3 => "SEV3",
        Sev4 => "SEV4",
    }
);

impl Severity {
    /// What the level means, shown beside the choice.
    pub fn meaning(self) -> &'static str {
        match self {
            Severity::Sev1 => {
                "Critical: customer-facing outage or data/safety risk. Pages now, around the clock."
            }
            Severity::Sev2 => "Major degradation. Pages now.",
            Severity::Sev3 => "Minor; a workaround exists. Notifies in working hours.",
            Severity::Sev4 => "No user impact. A ticket.",
        }
    }

    /// Whether `self` is at least as severe as `other` (SEV1 is the most severe).
    pub fn at_least(self, other: Severity) -> bool {
        self <= other
    }
}

text_enum!(
    /// Where an incident is in its life.
    IncidentStatus, "Status", {
        Triggered => "triggered",
        Acknowledged => "acknowledged",
        Resolved => "resolved",
    }
);

text_enum!(
    /// The public-facing phase of status updates.
    Phase, "Phase", {
        Investigating => "investigating",
        Identified => "identified",
        Monitoring => "monitoring",
        Resolved => "resolved",
    }
);

text_enum!(
    /// What kind of AI system a service is.
    ServiceKind, "Kind", {
        LlmInference => "llm-inference",
        VectorDb => "vector-db",
        FeatureStore => "feature-store",
        AgentFramework => "agent-framework",
        DataPipeline => "data-pipeline",
        Other => "other",
    }
);

text_enum!(
    /// How a service's work arrives.
    WorkloadClass, "Workload class", {
        RealTime => "real-time",
        Batch => "batch",
        OnDemand => "on-demand",
    }
);

text_enum!(
    /// A role on an incident.
    IncidentRole, "Role", {
        Commander => "commander",
        CommunicationsLead => "communications-lead",
        Scribe => "scribe",
    }
);

impl IncidentRole {
    /// The role's name for people.
    pub fn label(self) -> &'static str {
        match self {
            IncidentRole::Commander => "Commander",
            IncidentRole::CommunicationsLead => "Communications lead",
            IncidentRole::Scribe => "Scribe",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_parse_order_and_explain() {
        assert_eq!("SEV2".parse::<Severity>().unwrap(), Severity::Sev2);
        let err = "SEV5".parse::<Severity>().unwrap_err();
        assert_eq!(
            err.0,
            "Severity must be one of SEV1, SEV2, SEV3, SEV4, not \"SEV5\""
        );
        assert!(Severity::Sev1.at_least(Severity::Sev2));
        assert!(!Severity::Sev3.at_least(Severity::Sev2));
        assert!(Severity::ALL.iter().all(|s| !s.meaning().is_empty()));
    }

    #[test]
    fn kinds_round_trip() {
        for kind in ServiceKind::ALL {
            assert_eq!(kind.as_str().parse::<ServiceKind>().unwrap(), *kind);
        }
        assert!("gpu-farm".parse::<ServiceKind>().is_err());
        assert_eq!(
            "on-demand".parse::<WorkloadClass>().unwrap(),
            WorkloadClass::OnDemand
        );
    }
}
