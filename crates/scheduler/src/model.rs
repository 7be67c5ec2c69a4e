//! The schedule model as the API describes it (CONTRACT.md), with serde shapes matching the
//! JSON there, and the precise validation errors.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// An opaque participant id (a user id in the app).
pub type ParticipantId = i64;

/// Most participants one rotation may have.
pub const MAX_PARTICIPANTS: usize = 1000;
/// Most layers one schedule may have.
pub const MAX_LAYERS: usize = 100;
/// Longest shift in hours (one year of hours).
pub const MAX_SHIFT_HOURS: u32 = 8760;
/// Longest shift in days.
pub const MAX_SHIFT_DAYS: u32 = 365;
/// Longest shift in weeks.
pub const MAX_SHIFT_WEEKS: u32 = 52;

/// The unit of a shift length: hours are elapsed hours; days and weeks are calendar units in
/// the rotation's handoff zone (a 09:00 handoff stays at 09:00 local across DST).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShiftUnit {
    /// Exact elapsed hours.
    Hours,
    /// Calendar days in the handoff zone.
    Days,
    /// Calendar weeks (7 calendar days) in the handoff zone.
    Weeks,
}

impl fmt::Display for ShiftUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ShiftUnit::Hours => "hours",
            ShiftUnit::Days => "days",
            ShiftUnit::Weeks => "weeks",
        })
    }
}

/// How long each participant's turn lasts, e.g. `{"unit": "weeks", "count": 1}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ShiftLength {
    /// The unit.
    pub unit: ShiftUnit,
    /// How many units; at least 1, at most 8760 hours / 365 days / 52 weeks.
    pub count: u32,
}

/// Participants taking turns in order, each for one shift, starting at `handoff` (a local
/// date-time in `handoff_time_zone`) with `participants[0]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rotation {
    /// Participants in rotation order; the same id may appear more than once.
    pub participants: Vec<ParticipantId>,
    /// Length of one shift.
    pub shift: ShiftLength,
    /// Local date-time at which `participants[0]` starts; nobody from this rotation is on call
    /// before it.
    pub handoff: NaiveDateTime,
    /// Zone of `handoff`, and the zone in which days and weeks are counted.
    pub handoff_time_zone: Tz,
}

/// A local time of day in whole minutes, `00:00` to `24:00` inclusive (`24:00` is the midnight
/// at the end of the day and only makes sense as the end of a window).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LocalTimeOfDay(u16);

impl LocalTimeOfDay {
    /// Midnight at the start of the day.
    pub const MIDNIGHT: LocalTimeOfDay = LocalTimeOfDay(0);
    /// Midnight at the end of the day (`24:00`).
    pub const END_OF_DAY: LocalTimeOfDay = LocalTimeOfDay(1440);

    /// Builds a time from hours and minutes; `None` unless it is within `00:00..=24:00`.
    pub fn from_hm(hour: u32, minute: u32) -> Option<LocalTimeOfDay> {
        if minute >= 60 || hour > 24 || (hour == 24 && minute != 0) {
            return None;
        }
        u16::try_from(hour * 60 + minute).ok().map(LocalTimeOfDay)
    }

    /// Minutes since midnight, `0..=1440`.
    pub fn minutes(self) -> u16 {
        self.0
    }
}

/// Why a `"HH:MM"` string is not a [`LocalTimeOfDay`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeOfDayError {
    /// Not of the form `HH:MM`.
    #[error("{0:?} is not a time of day; expected HH:MM, e.g. 09:00")]
    Format(String),
    /// Hour above 24.
    #[error("{input:?} has hour {hour}; hours go from 00 to 23 (24:00 ends a day)")]
    Hour {
        /// The text given.
        input: String,
        /// The hour found.
        hour: u32,
    },
    /// Minute above 59.
    #[error("{input:?} has minute {minute}; minutes go from 00 to 59")]
    Minute {
        /// The text given.
        input: String,
        /// The minute found.
        minute: u32,
    },
    /// `24:MM` with `MM` not `00`.
    #[error("{0:?} is past the end of the day; the latest time is 24:00")]
    PastEndOfDay(String),
}

impl FromStr for LocalTimeOfDay {
    type Err = TimeOfDayError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let format = || TimeOfDayError::Format(s.to_owned());
        let (h, m) = s.split_once(':').ok_or_else(format)?;
        let digits =
            |p: &str| !p.is_empty() && p.len() <= 2 && p.bytes().all(|b| b.is_ascii_digit());
        if !digits(h) || m.len() != 2 || !digits(m) {
            return Err(format());
        }
        let hour: u32 = h.parse().map_err(|_| format())?;
        let minute: u32 = m.parse().map_err(|_| format())?;
        if hour > 24 {
            return Err(TimeOfDayError::Hour {
                input: s.to_owned(),
                hour,
            });
        }
        if minute > 59 {
            return Err(TimeOfDayError::Minute {
                input: s.to_owned(),
                minute,
            });
        }
        LocalTimeOfDay::from_hm(hour, minute)
            .ok_or_else(|| TimeOfDayError::PastEndOfDay(s.to_owned()))
    }
}

impl fmt::Display for LocalTimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl Serialize for LocalTimeOfDay {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LocalTimeOfDay {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A weekly window of local time in which a layer is on call: on each of `days`, from `start`
/// to `end` in `time_zone`. A window with `end <= start` crosses midnight and belongs to the
/// day it starts on (Friday 22:00–06:00 runs into Saturday morning).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restriction {
    /// Weekdays on which a window starts (`["mon","tue",…]` in JSON).
    #[serde(with = "weekdays_serde")]
    pub days: Vec<Weekday>,
    /// Local start, `00:00..24:00`.
    pub start: LocalTimeOfDay,
    /// Local end, `00:00..=24:00`; at or before `start` means the next day.
    pub end: LocalTimeOfDay,
    /// Zone of the window; it follows that zone's DST, whatever the schedule's zone.
    pub time_zone: Tz,
}

/// One layer: a rotation masked by zero or more restriction windows (none = around the clock).
/// Windows mask the layer but never pause the rotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    /// Display name, e.g. "APAC".
    pub name: String,
    /// The rotation; flattened in JSON as in CONTRACT.md.
    #[serde(flatten)]
    pub rotation: Rotation,
    /// Windows in which the layer is on call; empty means around the clock.
    #[serde(default)]
    pub restrictions: Vec<Restriction>,
}

/// A person covering `[start, end)` on top of every layer. Where overrides overlap, the one
/// with the higher `created_seq` wins (ties: the higher `id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Override {
    /// The override's id (unique within a schedule).
    pub id: i64,
    /// Who covers.
    pub participant: ParticipantId,
    /// Start (inclusive).
    pub start: DateTime<Utc>,
    /// End (exclusive); must be after `start`.
    pub end: DateTime<Utc>,
    /// Creation order; later overrides win.
    pub created_seq: i64,
}

/// Why a schedule is invalid. Each variant names the layer (0-based, lowest first), the
/// restriction or the override at fault; [`ScheduleError::field`] gives an API field path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// More layers than [`MAX_LAYERS`].
    #[error("a schedule has {count} layers; at most {max} are allowed")]
    TooManyLayers {
        /// Layers given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A rotation without participants.
    #[error("layer {layer}: the rotation has no participants")]
    EmptyRotation {
        /// Layer index.
        layer: usize,
    },
    /// More participants than [`MAX_PARTICIPANTS`].
    #[error("layer {layer}: the rotation has {count} participants; at most {max} are allowed")]
    TooManyParticipants {
        /// Layer index.
        layer: usize,
        /// Participants given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A shift of zero units.
    #[error("layer {layer}: the shift length must be at least 1 {unit}, not 0")]
    ZeroShiftLength {
        /// Layer index.
        layer: usize,
        /// The unit given.
        unit: ShiftUnit,
    },
    /// A shift longer than a year.
    #[error(
        "layer {layer}: a shift of {count} {unit} is too long; at most {max} {unit} are allowed"
    )]
    ShiftTooLong {
        /// Layer index.
        layer: usize,
        /// The unit given.
        unit: ShiftUnit,
        /// The count given.
        count: u32,
        /// The limit for that unit.
        max: u32,
    },
    /// A handoff outside the supported years.
    #[error("layer {layer}: handoff {handoff} is outside the supported years 1900 to 2199")]
    HandoffOutOfRange {
        /// Layer index.
        layer: usize,
        /// The handoff given.
        handoff: NaiveDateTime,
    },
    /// A restriction without weekdays.
    #[error("layer {layer}, restriction {restriction}: no weekdays are selected")]
    NoDays {
        /// Layer index.
        layer: usize,
        /// Restriction index within the layer.
        restriction: usize,
    },
    /// A window starting at 24:00.
    #[error("layer {layer}, restriction {restriction}: a window cannot start at 24:00; use 00:00")]
    StartAtEndOfDay {
        /// Layer index.
        layer: usize,
        /// Restriction index within the layer.
        restriction: usize,
    },
    /// A window whose start equals its end.
    #[error(
        "layer {layer}, restriction {restriction}: the window starts and ends at {time} and would be empty; use 00:00-24:00 for a whole day"
    )]
    EmptyWindow {
        /// Layer index.
        layer: usize,
        /// Restriction index within the layer.
        restriction: usize,
        /// The start (= end) given.
        time: LocalTimeOfDay,
    },
    /// An override that ends at or before it starts.
    #[error("override {id}: end {end} is not after start {start}")]
    OverrideEndNotAfterStart {
        /// Override id.
        id: i64,
        /// Start given.
        start: DateTime<Utc>,
        /// End given.
        end: DateTime<Utc>,
    },
    /// Two overrides with one id.
    #[error("override id {id} is used more than once")]
    DuplicateOverrideId {
        /// The repeated id.
        id: i64,
    },
    /// A time zone name not in the IANA database (see [`parse_time_zone`]).
    #[error("unknown time zone {name:?}; use an IANA name such as \"Europe/London\"")]
    UnknownTimeZone {
        /// The name given.
        name: String,
    },
}

impl ScheduleError {
    /// The field of the schedule JSON at fault, e.g. `layers[1].shift.count`, for the
    /// `fields` map of an API validation error.
    pub fn field(&self) -> String {
        match self {
            ScheduleError::TooManyLayers { .. } => "layers".into(),
            ScheduleError::EmptyRotation { layer }
            | ScheduleError::TooManyParticipants { layer, .. } => {
                format!("layers[{layer}].participants")
            }
            ScheduleError::ZeroShiftLength { layer, .. }
            | ScheduleError::ShiftTooLong { layer, .. } => format!("layers[{layer}].shift.count"),
            ScheduleError::HandoffOutOfRange { layer, .. } => format!("layers[{layer}].handoff"),
            ScheduleError::NoDays { layer, restriction } => {
                format!("layers[{layer}].restrictions[{restriction}].days")
            }
            ScheduleError::StartAtEndOfDay { layer, restriction }
            | ScheduleError::EmptyWindow {
                layer, restriction, ..
            } => format!("layers[{layer}].restrictions[{restriction}].start"),
            ScheduleError::OverrideEndNotAfterStart { .. } => "overrides.end".into(),
            ScheduleError::DuplicateOverrideId { .. } => "overrides.id".into(),
            ScheduleError::UnknownTimeZone { .. } => "time_zone".into(),
        }
    }
}

/// Parses an IANA time zone name, with the precise [`ScheduleError::UnknownTimeZone`] error.
pub fn parse_time_zone(name: &str) -> Result<Tz, ScheduleError> {
    name.parse::<Tz>()
        .map_err(|_| ScheduleError::UnknownTimeZone {
            name: name.to_owned(),
        })
}

/// Weekdays as `"mon"`, `"tue"`, … in JSON (any case and full names accepted on input).
mod weekdays_serde {
    use chrono::Weekday;
    use serde::{Deserialize, Deserializer, Serializer, ser::SerializeSeq};

    pub(super) fn serialize<S: Serializer>(days: &[Weekday], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(days.len()))?;
        for d in days {
            let name = match d {
                Weekday::Mon => "mon",
                Weekday::Tue => "tue",
                Weekday::Wed => "wed",
                Weekday::Thu => "thu",
                Weekday::Fri => "fri",
                Weekday::Sat => "sat",
                Weekday::Sun => "sun",
            };
            seq.serialize_element(name)?;
        }
        seq.end()
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Weekday>, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        names
            .iter()
            .map(|n| {
                n.parse::<Weekday>().map_err(|_| {
                    serde::de::Error::custom(format!(
                        "{n:?} is not a weekday; expected mon, tue, wed, thu, fri, sat or sun"
                    ))
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_of_day_parsing() {
        assert_eq!(
            "09:00".parse::<LocalTimeOfDay>().map(|t| t.minutes()),
            Ok(540)
        );
        assert_eq!(
            "24:00".parse::<LocalTimeOfDay>(),
            Ok(LocalTimeOfDay::END_OF_DAY)
        );
        assert_eq!("0:05".parse::<LocalTimeOfDay>().map(|t| t.minutes()), Ok(5));
        assert_eq!(
            "25:00".parse::<LocalTimeOfDay>(),
            Err(TimeOfDayError::Hour {
                input: "25:00".into(),
                hour: 25
            })
        );
        assert_eq!(
            "12:60".parse::<LocalTimeOfDay>(),
            Err(TimeOfDayError::Minute {
                input: "12:60".into(),
                minute: 60
            })
        );
        assert_eq!(
            "24:30".parse::<LocalTimeOfDay>(),
            Err(TimeOfDayError::PastEndOfDay("24:30".into()))
        );
        for bad in [
            "", "9", "09:0", "09:000", "ab:cd", "-1:00", "09-00", "123:00", " 9:00",
        ] {
            assert!(
                matches!(
                    bad.parse::<LocalTimeOfDay>(),
                    Err(TimeOfDayError::Format(_))
                ),
                "{bad:?}"
            );
        }
        assert_eq!(
            "25:00".parse::<LocalTimeOfDay>().map_err(|e| e.to_string()),
            Err("\"25:00\" has hour 25; hours go from 00 to 23 (24:00 ends a day)".to_owned())
        );
        assert_eq!(LocalTimeOfDay::END_OF_DAY.to_string(), "24:00");
        assert_eq!(
            LocalTimeOfDay::from_hm(7, 5).map(|t| t.to_string()),
            Some("07:05".into())
        );
    }

    #[test]
    fn contract_json_round_trips() {
        let json = r#"{
          "name": "APAC",
          "participants": [3, 4, 5],
          "shift": {"unit": "weeks", "count": 1},
          "handoff": "2026-01-05T09:00:00",
          "handoff_time_zone": "Asia/Singapore",
          "restrictions": [
            {"days": ["mon","tue","wed","thu","fri"], "start": "09:00", "end": "17:00", "time_zone": "Asia/Singapore"}
          ]
        }"#;
        let layer: Layer = serde_json::from_str(json).expect("contract layer parses");
        assert_eq!(layer.rotation.participants, vec![3, 4, 5]);
        assert_eq!(layer.rotation.shift.unit, ShiftUnit::Weeks);
        assert_eq!(layer.restrictions[0].days.len(), 5);
        assert_eq!(layer.restrictions[0].end.minutes(), 17 * 60);
        let back = serde_json::to_value(&layer).expect("serializes");
        assert_eq!(back["restrictions"][0]["days"][0], "mon");
        assert_eq!(back["restrictions"][0]["start"], "09:00");
        assert_eq!(back["shift"]["unit"], "weeks");
        assert_eq!(back["handoff_time_zone"], "Asia/Singapore");
        let again: Layer = serde_json::from_value(back).expect("round trip");
        assert_eq!(again, layer);

        let bad = json.replace("17:00", "25:00");
        let err = serde_json::from_str::<Layer>(&bad).expect_err("25:00 rejected");
        assert!(err.to_string().contains("hour 25"), "{err}");
        let bad = json.replace(
            "Asia/Singapore\",\n          \"restrictions",
            "Mars/Olympus\",\n          \"restrictions",
        );
        assert!(serde_json::from_str::<Layer>(&bad).is_err());
    }

    #[test]
    fn unknown_zone_is_precise() {
        assert_eq!(
            parse_time_zone("Europe/Lodnon"),
            Err(ScheduleError::UnknownTimeZone {
                name: "Europe/Lodnon".into()
            })
        );
        assert_eq!(
            parse_time_zone("Asia/Kathmandu"),
            Ok(chrono_tz::Asia::Kathmandu)
        );
    }
}
