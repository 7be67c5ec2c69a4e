//! The vocabulary of Heliograph (see PRODUCT.md) as types.
//!
//! Input is parsed into these types once, at the edge ("parse, don't validate"); everything
//! inside the program can then rely on a `UserEmail` being a plausible address or a `TimeZone`
//! being a real IANA zone. No I/O lives here.

mod clock;
mod incident;
pub mod interruption;
mod role;
mod secret;
mod values;
pub mod working_hours;

pub use clock::{Clock, FixedClock, SystemClock};
pub use incident::{IncidentRole, IncidentStatus, Phase, ServiceKind, Severity, WorkloadClass};
pub use interruption::{InterruptionClass, classify as classify_interruption};
pub use role::Role;
pub use secret::hash_secret;
pub use values::{DisplayName, InvalidValue, Password, TeamName, TimeZone, TokenName, UserEmail};
pub use working_hours::{TimeOfDay, WorkingHours};
