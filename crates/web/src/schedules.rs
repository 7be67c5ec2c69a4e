//! What the schedule pages and the schedule API share: checking a schedule before it is saved,
//! loading a stored schedule into the scheduler crate, and working out whom an override moves
//! on or off call.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, TimeDelta, Utc};
use heliograph_domain::TimeZone;
use heliograph_scheduler::{Layer, Schedule, ScheduleError, Shift};
use heliograph_store::schedules::{NewNotice, ScheduleFields, StoredOverride, StoredSchedule};
use heliograph_store::users::User;
use heliograph_store::{Store, StoreError};

/// Longest schedule or layer name.
pub const MAX_NAME: usize = 100;
/// Longest override, in days.
pub const MAX_OVERRIDE_DAYS: i64 = 366;
/// How far around a range overrides are loaded, so "until" and "next" answers near its edges
/// see the overrides just outside it.
const OVERRIDE_MARGIN_DAYS: i64 = 62;

/// Field errors keyed by the API's field path (`layers[1].participants`).
pub type Problems = BTreeMap<String, String>;

/// A schedule as submitted, before it is checked against the team and the scheduler's rules.
#[derive(Debug, Clone)]
pub struct Draft {
    pub name: String,
    pub time_zone: String,
    pub team_id: Option<i64>,
    pub layers: Vec<Layer>,
}

/// Checks a draft: name, zone, team, every layer by the scheduler crate, and every participant
/// an enabled member of the team. All problems are reported at once.
pub async fn check(
    store: &Store,
    draft: &Draft,
) -> Result<Result<ScheduleFields, Problems>, StoreError> {
    let mut problems = Problems::new();
    let name = draft.name.trim();
    if name.is_empty() {
        problems.insert("name".into(), "Name is required".into());
    } else if name.chars().count() > MAX_NAME {
        problems.insert(
            "name".into(),
            format!("Name is at most {MAX_NAME} characters"),
        );
    }
    let time_zone = match TimeZone::parse(&draft.time_zone) {
        Ok(z) => Some(z),
        Err(e) => {
            problems.insert("time_zone".into(), e.to_string());
            None
        }
    };
    let mut members: HashMap<i64, User> = HashMap::new();
    let mut team_found = false;
    match draft.team_id {
        None => {
            problems.insert(
                "team_id".into(),
                "Choose the team that owns this schedule".into(),
            );
        }
        Some(team_id) => match store.team(team_id).await {
            Ok(_) => {
                team_found = true;
                members = store
                    .team_members(team_id)
                    .await?
                    .into_iter()
                    .map(|u| (u.id, u))
                    .collect();
            }
            Err(StoreError::NotFound) => {
                problems.insert("team_id".into(), format!("There is no team {team_id}"));
            }
            Err(e) => return Err(e),
        },
    }
    for (i, layer) in draft.layers.iter().enumerate() {
        let layer_name = layer.name.trim();
        if layer_name.is_empty() {
            problems.insert(format!("layers[{i}].name"), "Layer name is required".into());
        } else if layer_name.chars().count() > MAX_NAME {
            problems.insert(
                format!("layers[{i}].name"),
                format!("Layer name is at most {MAX_NAME} characters"),
            );
        }
        if team_found {
            for p in &layer.rotation.participants {
                let problem = match members.get(p) {
                    None => Some(format!("User {p} is not a member of the schedule's team")),
                    Some(u) if u.disabled => Some(format!("{} is disabled", u.name)),
                    Some(_) => None,
                };
                if let Some(problem) = problem {
                    problems
                        .entry(format!("layers[{i}].participants"))
                        .or_insert(problem);
                }
            }
        }
    }
    if let Err(e) = Schedule::new(draft.layers.clone(), Vec::new()) {
        problems.entry(e.field()).or_insert_with(|| sentence(&e));
    }
    if !problems.is_empty() {
        return Ok(Err(problems));
    }
    Ok(Ok(ScheduleFields {
        name: name.to_owned(),
        time_zone: time_zone.unwrap_or(TimeZone::UTC),
        team_id: draft.team_id.unwrap_or_default(),
        layers: draft
            .layers
            .iter()
            .cloned()
            .map(|mut l| {
                l.name = l.name.trim().to_owned();
                l
            })
            .collect(),
    }))
}

/// A scheduler error as a sentence for a person (capitalised, without the layer index that
/// the field already names).
pub fn sentence(e: &ScheduleError) -> String {
    let text = e.to_string();
    let text = match text.split_once(": ") {
        Some((head, rest)) if head.starts_with("layer ") => rest.to_owned(),
        _ => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => text,
    }
}

/// A stored schedule with the overrides around a range, ready to answer questions.
pub struct Loaded {
    pub stored: StoredSchedule,
    pub overrides: Vec<StoredOverride>,
    pub schedule: Schedule,
}

/// Builds the scheduler's schedule from stored layers and overrides.
pub fn build(
    stored: &StoredSchedule,
    overrides: &[StoredOverride],
) -> Result<Schedule, StoreError> {
    Schedule::new(
        stored.layers.clone(),
        overrides.iter().map(StoredOverride::to_override).collect(),
    )
    .map_err(|e| StoreError::Corrupt(format!("schedule {}: {e}", stored.id)))
}

/// Loads schedule `id` with the overrides that can matter for answers within `[from, to)`.
pub async fn load(
    store: &Store,
    id: i64,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Loaded, StoreError> {
    let stored = store.schedule(id).await?;
    load_stored(store, stored, from, to).await
}

/// Like [`load`], for a schedule already read.
pub async fn load_stored(
    store: &Store,
    stored: StoredSchedule,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Loaded, StoreError> {
    let margin = TimeDelta::days(OVERRIDE_MARGIN_DAYS);
    let overrides = store
        .overrides_between(stored.id, from - margin, to + margin)
        .await?;
    let schedule = build(&stored, &overrides)?;
    Ok(Loaded {
        stored,
        overrides,
        schedule,
    })
}

/// Whom a change of overrides moves on or off call within `[from, to)`: comparing the final
/// schedule before and after, one notice per person and direction, spanning their changes.
pub fn notices(
    before: &Schedule,
    after: &Schedule,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    reason: &str,
) -> Vec<NewNotice> {
    let old = before.final_shifts(from, to);
    let new = after.final_shifts(from, to);
    // Every boundary of either answer splits the range into pieces where both are constant.
    let mut cuts: BTreeSet<DateTime<Utc>> = BTreeSet::new();
    for s in old.iter().chain(new.iter()) {
        cuts.insert(s.start);
        cuts.insert(s.end);
    }
    let who_at = |shifts: &[Shift], t: DateTime<Utc>| {
        shifts
            .iter()
            .find(|s| s.start <= t && t < s.end)
            .and_then(|s| s.participant)
    };
    let mut spans: BTreeMap<(i64, bool), (DateTime<Utc>, DateTime<Utc>)> = BTreeMap::new();
    let cuts: Vec<_> = cuts.into_iter().collect();
    for pair in cuts.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let (was, is) = (who_at(&old, a), who_at(&new, a));
        if was == is {
            continue;
        }
        for (person, on) in [(is, true), (was, false)] {
            if let Some(p) = person {
                spans
                    .entry((p, on))
                    .and_modify(|span| span.1 = b)
                    .or_insert((a, b));
            }
        }
    }
    spans
        .into_iter()
        .map(|((user_id, on_call), (start, end))| NewNotice {
            user_id,
            on_call,
            start,
            end,
            reason: reason.to_owned(),
        })
        .collect()
}

/// Why an override cannot be made, by field (`user_id`, `start`, `end`).
pub fn check_override_range(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Problems {
    let mut problems = Problems::new();
    if end <= start {
        problems.insert("end".into(), "The end must be after the start".into());
    } else if end - start > TimeDelta::days(MAX_OVERRIDE_DAYS) {
        problems.insert(
            "end".into(),
            format!("An override lasts at most {MAX_OVERRIDE_DAYS} days"),
        );
    } else if end <= now {
        problems.insert("end".into(), "The override would end in the past".into());
    }
    problems
}

/// Creates an override on a loaded schedule, recording whom it moves on or off call.
pub async fn add_override(
    store: &Store,
    loaded: &Loaded,
    user_id: i64,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    audit: &heliograph_store::Audit,
) -> Result<StoredOverride, StoreError> {
    let mut with = loaded.schedule.overrides().to_vec();
    let next_id = with.iter().map(|o| o.id).max().unwrap_or(0) + 1;
    with.push(heliograph_scheduler::Override {
        id: next_id,
        participant: user_id,
        start,
        end,
        created_seq: i64::MAX,
    });
    let after = Schedule::new(loaded.schedule.layers().to_vec(), with)
        .map_err(|e| StoreError::Conflict(e.to_string()))?;
    let notices = notices(
        &loaded.schedule,
        &after,
        start,
        end,
        &format!("override added on {}", loaded.stored.name),
    );
    store
        .create_override(loaded.stored.id, user_id, start, end, &notices, audit)
        .await
}

/// Deletes an override of a loaded schedule, recording whom it moves on or off call.
pub async fn remove_override(
    store: &Store,
    loaded: &Loaded,
    override_id: i64,
    audit: &heliograph_store::Audit,
) -> Result<StoredOverride, StoreError> {
    let target = loaded
        .overrides
        .iter()
        .find(|o| o.id == override_id)
        .ok_or(StoreError::NotFound)?;
    let rest: Vec<_> = loaded
        .schedule
        .overrides()
        .iter()
        .filter(|o| o.id != override_id)
        .cloned()
        .collect();
    let after = Schedule::new(loaded.schedule.layers().to_vec(), rest)
        .map_err(|e| StoreError::Conflict(e.to_string()))?;
    let notices = notices(
        &loaded.schedule,
        &after,
        target.start_at,
        target.end_at,
        &format!("override removed from {}", loaded.stored.name),
    );
    store
        .delete_override(loaded.stored.id, override_id, &notices, audit)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use heliograph_scheduler::{Override, Rotation, ShiftLength, ShiftUnit};

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn daily(participants: Vec<i64>) -> Layer {
        Layer {
            name: "Primary".into(),
            rotation: Rotation {
                participants,
                shift: ShiftLength {
                    unit: ShiftUnit::Days,
                    count: 1,
                },
                handoff: "2026-11-02T09:00:00".parse().unwrap(),
                handoff_time_zone: chrono_tz::UTC,
            },
            restrictions: vec![],
        }
    }

    #[test]
    fn an_override_notifies_the_person_it_moves_on_and_the_one_it_moves_off() {
        let before = Schedule::new(vec![daily(vec![1, 2])], vec![]).unwrap();
        let over = Override {
            id: 1,
            participant: 3,
            start: t("2026-11-02T12:00:00Z"),
            end: t("2026-11-03T12:00:00Z"),
            created_seq: 1,
        };
        let after = Schedule::new(vec![daily(vec![1, 2])], vec![over.clone()]).unwrap();
        let got = notices(&before, &after, over.start, over.end, "test");
        let summary: Vec<_> = got
            .iter()
            .map(|n| (n.user_id, n.on_call, n.start, n.end))
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    1,
                    false,
                    t("2026-11-02T12:00:00Z"),
                    t("2026-11-03T09:00:00Z")
                ),
                (
                    2,
                    false,
                    t("2026-11-03T09:00:00Z"),
                    t("2026-11-03T12:00:00Z")
                ),
                (
                    3,
                    true,
                    t("2026-11-02T12:00:00Z"),
                    t("2026-11-03T12:00:00Z")
                ),
            ]
        );
        // Covering yourself changes nothing and tells nobody.
        let own = Override {
            participant: 1,
            end: t("2026-11-02T13:00:00Z"),
            ..over
        };
        let same = Schedule::new(vec![daily(vec![1, 2])], vec![own.clone()]).unwrap();
        assert!(notices(&before, &same, own.start, own.end, "test").is_empty());
    }

    #[test]
    fn sentences_drop_the_layer_prefix() {
        let e = ScheduleError::EmptyRotation { layer: 2 };
        assert_eq!(sentence(&e), "The rotation has no participants");
    }
}
