//! What the escalation policy pages and API share: checking a policy before it is saved, the
//! rule for response-target minutes, and who a policy's first level pages right now.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, TimeDelta, Utc};
use heliograph_domain::Severity;
use heliograph_store::escalation_policies::{
    Level, PolicyFields, StoredPolicy, Target, TargetKind,
};
use heliograph_store::users::User;
use heliograph_store::{Store, StoreError};

/// Longest policy name.
pub const MAX_NAME: usize = 100;
/// Most levels in one policy.
pub const MAX_LEVELS: usize = 20;
/// Most targets in one level.
pub const MAX_TARGETS: usize = 50;
/// Longest wait of a level, in minutes (a day).
pub const MAX_DELAY_MINUTES: i64 = 1440;
/// Most repeats of a whole policy.
pub const MAX_REPEAT: i64 = 20;
/// Longest response target, in minutes (30 days).
pub const MAX_TARGET_MINUTES: i64 = 43_200;

/// Field errors keyed by the API's field path (`levels[1].targets[0].id`).
pub type Problems = BTreeMap<String, String>;

/// A policy as submitted, before it is checked.
#[derive(Debug, Clone, Default)]
pub struct Draft {
    pub name: String,
    pub team_id: Option<i64>,
    /// `None`: not given (0).
    pub repeat: Option<i64>,
    pub levels: Vec<DraftLevel>,
    pub low_severity_any_time: bool,
}

/// One level as submitted.
#[derive(Debug, Clone, Default)]
pub struct DraftLevel {
    /// `None`: not given or not a number.
    pub delay_minutes: Option<i64>,
    /// `None` or empty: every severity.
    pub min_severity: Option<String>,
    pub targets: Vec<Target>,
}

/// Checks a draft: name, team, 1 to 20 levels each waiting 1 to 1440 minutes with at least
/// one target, a known severity, targets that exist (people enabled; anyone, not only the
/// team's members, since a policy may page a head of operations), and 0 to 20 repeats. All
/// problems are reported at once, keyed by API field path.
pub async fn check(
    store: &Store,
    draft: &Draft,
) -> Result<Result<PolicyFields, Problems>, StoreError> {
    let mut problems = Problems::new();
    let name = draft.name.trim();
    if name.is_empty() {
        problems.insert("name".into(), "Name is required".into());
    } else if name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        problems.insert(
            "name".into(),
            format!("Name is at most {MAX_NAME} characters, without control characters"),
        );
    }
    match draft.team_id {
        None => {
            problems.insert(
                "team_id".into(),
                "Choose the team that owns this policy".into(),
            );
        }
        Some(team_id) => match store.team(team_id).await {
            Ok(_) => {}
            Err(StoreError::NotFound) => {
                problems.insert("team_id".into(), format!("There is no team {team_id}"));
            }
            Err(e) => return Err(e),
        },
    }
    let repeat = draft.repeat.unwrap_or(0);
    if !(0..=MAX_REPEAT).contains(&repeat) {
        problems.insert(
            "repeat".into(),
            format!("Repeat the policy 0 to {MAX_REPEAT} times"),
        );
    }
    if draft.levels.is_empty() {
        problems.insert("levels".into(), "Add at least one level".into());
    } else if draft.levels.len() > MAX_LEVELS {
        problems.insert(
            "levels".into(),
            format!("A policy has at most {MAX_LEVELS} levels"),
        );
    }
    let mut users: HashMap<i64, Option<User>> = HashMap::new();
    let mut schedules: HashMap<i64, bool> = HashMap::new();
    let mut channels: HashMap<i64, Option<i64>> = HashMap::new();
    let mut levels = Vec::with_capacity(draft.levels.len());
    for (i, level) in draft.levels.iter().enumerate() {
        let at = |field: &str| format!("levels[{i}].{field}");
        let delay = match level.delay_minutes {
            Some(d) if (1..=MAX_DELAY_MINUTES).contains(&d) => d as u32,
            _ => {
                problems.insert(
                    at("delay_minutes"),
                    format!("Wait 1 to {MAX_DELAY_MINUTES} minutes for an acknowledgement"),
                );
                0
            }
        };
        let min_severity = match level.min_severity.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(raw) => match raw.parse::<Severity>() {
                Ok(s) => Some(s),
                Err(e) => {
                    problems.insert(at("min_severity"), e.to_string());
                    None
                }
            },
        };
        if level.targets.is_empty() {
            problems.insert(
                at("targets"),
                "Pick at least one person or schedule (or a channel) to page".into(),
            );
        } else if level.targets.len() > MAX_TARGETS {
            problems.insert(
                at("targets"),
                format!("A level pages at most {MAX_TARGETS} targets"),
            );
        }
        let mut targets = Vec::with_capacity(level.targets.len());
        for (j, target) in level.targets.iter().enumerate() {
            let field = format!("levels[{i}].targets[{j}].id");
            let problem = match target.kind {
                TargetKind::User => {
                    let user = match users.get(&target.id) {
                        Some(known) => known.clone(),
                        None => {
                            let found = match store.user(target.id).await {
                                Ok(u) => Some(u),
                                Err(StoreError::NotFound) => None,
                                Err(e) => return Err(e),
                            };
                            users.insert(target.id, found.clone());
                            found
                        }
                    };
                    match user {
                        None => Some(format!("There is no user {}", target.id)),
                        Some(u) if u.disabled => Some(format!("{} is disabled", u.name)),
                        Some(_) => None,
                    }
                }
                TargetKind::Schedule => {
                    let found = match schedules.get(&target.id) {
                        Some(known) => *known,
                        None => {
                            let found = match store.schedule(target.id).await {
                                Ok(_) => true,
                                Err(StoreError::NotFound) => false,
                                Err(e) => return Err(e),
                            };
                            schedules.insert(target.id, found);
                            found
                        }
                    };
                    if found {
                        None
                    } else {
                        Some(format!("There is no schedule {}", target.id))
                    }
                }
                // A policy posts only to its own team's channels: the team owns both.
                TargetKind::Channel => {
                    let team = match channels.get(&target.id) {
                        Some(known) => *known,
                        None => {
                            let found = match store.team_channel(target.id).await {
                                Ok(c) => Some(c.team_id),
                                Err(StoreError::NotFound) => None,
                                Err(e) => return Err(e),
                            };
                            channels.insert(target.id, found);
                            found
                        }
                    };
                    match team {
                        None => Some(format!("There is no channel {}", target.id)),
                        Some(t) if draft.team_id.is_some_and(|d| d != t) => Some(format!(
                            "Channel {} belongs to another team; a policy posts only to its own team's channels",
                            target.id
                        )),
                        Some(_) => None,
                    }
                }
            };
            match problem {
                Some(p) => {
                    problems.entry(field).or_insert(p);
                }
                None if !targets.contains(target) => targets.push(*target),
                None => {}
            }
        }
        levels.push(Level {
            delay_minutes: delay,
            min_severity,
            targets,
        });
    }
    if !problems.is_empty() {
        return Ok(Err(problems));
    }
    Ok(Ok(PolicyFields {
        name: name.to_owned(),
        team_id: draft.team_id.unwrap_or_default(),
        repeat: repeat as u32,
        levels,
        low_severity_any_time: draft.low_severity_any_time,
    }))
}

/// Checks a response target in minutes: a whole number from 1 to [`MAX_TARGET_MINUTES`].
pub fn target_minutes(minutes: i64) -> Result<u32, String> {
    if (1..=MAX_TARGET_MINUTES).contains(&minutes) {
        Ok(minutes as u32)
    } else {
        Err(format!(
            "Give a whole number of minutes from 1 to {MAX_TARGET_MINUTES}, or nothing for no target"
        ))
    }
}

/// A level in words, e.g. "after 5 min · SEV2 and worse · 2 targets".
pub fn level_summary(level: &Level) -> String {
    let severity = match level.min_severity {
        None => "all severities".to_owned(),
        Some(Severity::Sev1) => "SEV1 only".to_owned(),
        Some(s) => format!("SEV1–{s}"),
    };
    let n = level.targets.len();
    format!(
        "waits {} min · {severity} · {n} target{}",
        level.delay_minutes,
        if n == 1 { "" } else { "s" }
    )
}

/// Whom level 1 of `policy` pages at `now`: people named directly, and whoever is on call
/// in each schedule it names (a schedule in a gap pages nobody). Each person once, in order.
pub async fn first_responders(
    store: &Store,
    policy: &StoredPolicy,
    now: DateTime<Utc>,
) -> Result<Vec<i64>, StoreError> {
    let mut out: Vec<i64> = Vec::new();
    let Some(level) = policy.levels.first() else {
        return Ok(out);
    };
    for target in &level.targets {
        let person = match target.kind {
            TargetKind::User => Some(target.id),
            TargetKind::Channel => None,
            TargetKind::Schedule => {
                match crate::schedules::load(store, target.id, now, now + TimeDelta::days(1)).await
                {
                    Ok(loaded) => loaded.schedule.on_call_at(now).participant,
                    Err(StoreError::NotFound) => None,
                    Err(e) => return Err(e),
                }
            }
        };
        if let Some(p) = person
            && !out.contains(&p)
        {
            out.push(p);
        }
    }
    Ok(out)
}
