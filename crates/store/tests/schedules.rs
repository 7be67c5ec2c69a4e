//! The schedule store on both backends: schedules with versions, the participants mirror,
//! overrides and their notices, calendar feeds, and the audit entries all of them write.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use heliograph_domain::{DisplayName, FixedClock, Role, TeamName, TimeZone, UserEmail};
use heliograph_scheduler::Layer;
use heliograph_store::schedules::{NewNotice, ScheduleFields};
use heliograph_store::testdb::{TestDatabase, backends};
use heliograph_store::users::{NewUser, User, UserPatch};
use heliograph_store::{Audit, Db, Store, StoreError};
use serde_json::json;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

struct Setup {
    _db: TestDatabase,
    store: Store,
    clock: FixedClock,
    users: Vec<User>,
    team_id: i64,
    audit: Audit,
}

/// A store at 2026-03-01 with users ana, ben, cho, dee (in that order) and a team of the first
/// three.
async fn setup(backend: heliograph_store::Backend) -> Setup {
    let db = TestDatabase::fresh(backend).await;
    let conn = Db::connect(&db.url).await.unwrap();
    conn.migrate().await.unwrap();
    let clock = FixedClock::new(at("2026-03-01T00:00:00Z"));
    let store = Store::with_clock(conn, Arc::new(clock.clone()));
    let mut users = Vec::new();
    for name in ["ana", "ben", "cho", "dee"] {
        users.push(
            store
                .create_user(
                    &NewUser {
                        email: UserEmail::parse(&format!("{name}@example.com")).unwrap(),
                        name: DisplayName::parse(name).unwrap(),
                        time_zone: TimeZone::UTC,
                        role: Role::Manager,
                        password_hash: None,
                    },
                    &Audit::cli(),
                )
                .await
                .unwrap(),
        );
    }
    let team = store
        .create_team(
            &TeamName::parse("AI platform").unwrap(),
            &[users[0].id, users[1].id, users[2].id],
            &Audit::cli(),
        )
        .await
        .unwrap();
    let audit = Audit {
        actor_user_id: Some(users[0].id),
        actor: "ana@example.com".into(),
        client_addr: Some("192.0.2.1".into()),
    };
    Setup {
        _db: db,
        store,
        clock,
        users,
        team_id: team.team.id,
        audit,
    }
}

fn daily(participants: &[i64]) -> Layer {
    serde_json::from_value(json!({
        "name": "Primary",
        "participants": participants,
        "shift": {"unit": "days", "count": 1},
        "handoff": "2026-03-01T09:00:00",
        "handoff_time_zone": "Europe/London",
        "restrictions": [
            {"days": ["mon","tue","wed","thu","fri"], "start": "22:00", "end": "06:00", "time_zone": "Europe/London"}
        ]
    }))
    .unwrap()
}

fn fields(name: &str, team_id: i64, participants: &[i64]) -> ScheduleFields {
    ScheduleFields {
        name: name.into(),
        time_zone: TimeZone::parse("Europe/London").unwrap(),
        team_id,
        layers: vec![daily(participants)],
    }
}

async fn actions(store: &Store) -> Vec<String> {
    store
        .audit_log(&Default::default(), 1000, None)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| e.action)
        .collect()
}

#[tokio::test]
async fn schedules_round_trip_with_versions_and_a_participants_mirror() {
    for backend in backends() {
        let s = setup(backend).await;
        let [ana, ben, cho, dee] = [0, 1, 2, 3].map(|i| s.users[i].id);
        let since = at("2026-03-01T00:00:00Z");
        let created = s
            .store
            .create_schedule(&fields("Primary", s.team_id, &[ana, ben]), &s.audit)
            .await
            .unwrap();
        assert_eq!(created.version, 1, "{backend:?}");
        assert_eq!(created.created_at, at("2026-03-01T00:00:00Z"));
        assert_eq!(
            created.layers,
            vec![daily(&[ana, ben])],
            "layers round-trip"
        );
        assert_eq!(s.store.schedule(created.id).await.unwrap(), created);
        assert_eq!(
            s.store.schedule_ids_of(ana, since).await.unwrap(),
            vec![created.id]
        );
        assert!(
            s.store
                .schedule_ids_of(cho, since)
                .await
                .unwrap()
                .is_empty()
        );

        // A duplicate name, a missing team and a missing participant are conflicts.
        let dup = s
            .store
            .create_schedule(&fields("Primary", s.team_id, &[ana]), &s.audit)
            .await;
        assert!(
            matches!(dup, Err(StoreError::Conflict(ref m)) if m.contains("already exists")),
            "{backend:?}: {dup:?}"
        );
        let no_team = s
            .store
            .create_schedule(&fields("Other", 999, &[ana]), &s.audit)
            .await;
        assert!(
            matches!(no_team, Err(StoreError::Conflict(_))),
            "{no_team:?}"
        );
        let no_user = s
            .store
            .create_schedule(&fields("Other", s.team_id, &[ana, 999]), &s.audit)
            .await;
        assert!(
            matches!(no_user, Err(StoreError::Conflict(ref m)) if m.contains("999")),
            "{no_user:?}"
        );
        assert_eq!(
            s.store.schedules().await.unwrap().len(),
            1,
            "nothing half-saved"
        );

        // Update: the mirror follows the layers; the version moves on.
        s.clock.advance(TimeDelta::minutes(5));
        let updated = s
            .store
            .update_schedule(
                created.id,
                &fields("Primary", s.team_id, &[cho, ben]),
                Some(1),
                &s.audit,
            )
            .await
            .unwrap();
        assert_eq!(updated.version, 2);
        assert_eq!(updated.created_at, created.created_at);
        assert_eq!(updated.updated_at, at("2026-03-01T00:05:00Z"));
        assert!(
            s.store
                .schedule_ids_of(ana, since)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            s.store.schedule_ids_of(cho, since).await.unwrap(),
            vec![created.id]
        );
        assert_eq!(
            updated.participants().into_iter().collect::<Vec<_>>(),
            vec![ben, cho]
        );

        // A stale version is a conflict and changes nothing.
        let stale = s
            .store
            .update_schedule(
                created.id,
                &fields("Renamed", s.team_id, &[dee]),
                Some(1),
                &s.audit,
            )
            .await;
        assert!(
            matches!(stale, Err(StoreError::Conflict(ref m)) if m.contains("changed by someone else")),
            "{backend:?}: {stale:?}"
        );
        assert_eq!(s.store.schedule(created.id).await.unwrap(), updated);
        assert!(
            s.store
                .schedule_ids_of(dee, since)
                .await
                .unwrap()
                .is_empty()
        );
        // Without a version, the last writer wins.
        let blind = s
            .store
            .update_schedule(
                created.id,
                &fields("Renamed", s.team_id, &[ana]),
                None,
                &s.audit,
            )
            .await
            .unwrap();
        assert_eq!((blind.version, blind.name.as_str()), (3, "Renamed"));
        assert!(matches!(
            s.store
                .update_schedule(999, &fields("X", s.team_id, &[ana]), None, &s.audit)
                .await,
            Err(StoreError::NotFound)
        ));

        // Pages, newest first.
        let second = s
            .store
            .create_schedule(&fields("Secondary", s.team_id, &[ben]), &s.audit)
            .await
            .unwrap();
        let page = s.store.schedules_page(1, None).await.unwrap();
        assert_eq!(page.items[0].id, second.id);
        let rest = s.store.schedules_page(1, page.next_cursor).await.unwrap();
        assert_eq!(rest.items[0].id, created.id);
        assert_eq!(rest.next_cursor, None);

        // Delete takes the overrides, feeds and notices with it.
        s.store
            .create_override(
                created.id,
                ben,
                at("2026-03-02T00:00:00Z"),
                at("2026-03-03T00:00:00Z"),
                &[],
                &s.audit,
            )
            .await
            .unwrap();
        s.store
            .create_calendar_feed(ana, Some(created.id), "hash-of-schedule-feed", &s.audit)
            .await
            .unwrap();
        s.store.delete_schedule(created.id, &s.audit).await.unwrap();
        assert!(matches!(
            s.store.schedule(created.id).await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            s.store.delete_schedule(created.id, &s.audit).await,
            Err(StoreError::NotFound)
        ));
        assert!(
            s.store
                .calendar_feed_by_secret("hash-of-schedule-feed")
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(s.store.schedules().await.unwrap().len(), 1);

        let log = s
            .store
            .audit_log(&Default::default(), 1000, None)
            .await
            .unwrap();
        // The log is newest first: the last update entry is the first update.
        let update = log
            .items
            .iter()
            .rev()
            .find(|e| e.action == "schedule.update")
            .expect("update audited");
        assert_eq!(update.actor_user_id, Some(ana));
        assert_eq!(update.target_type, "schedule");
        assert!(update.before.as_deref().unwrap().contains("\"version\":1"));
        assert!(update.after.is_some());
        let all = actions(&s.store).await;
        assert_eq!(
            all.iter().filter(|a| *a == "schedule.update").count(),
            2,
            "only successful updates are audited: {all:?}"
        );
        for action in ["schedule.create", "schedule.delete", "override.create"] {
            assert!(all.iter().any(|a| a == action), "{action}: {all:?}");
        }
    }
}

#[tokio::test]
async fn overrides_record_their_notices_and_are_found_by_range() {
    for backend in backends() {
        let s = setup(backend).await;
        let [ana, ben, cho, _] = [0, 1, 2, 3].map(|i| s.users[i].id);
        let schedule = s
            .store
            .create_schedule(&fields("Primary", s.team_id, &[ana, ben]), &s.audit)
            .await
            .unwrap();
        let (start, end) = (at("2026-03-10T10:00:00Z"), at("2026-03-10T14:00:00Z"));
        let notices = vec![
            NewNotice {
                user_id: cho,
                on_call: true,
                start,
                end,
                reason: "override added on Primary".into(),
            },
            NewNotice {
                user_id: ana,
                on_call: false,
                start,
                end,
                reason: "override added on Primary".into(),
            },
        ];
        let first = s
            .store
            .create_override(schedule.id, cho, start, end, &notices, &s.audit)
            .await
            .unwrap();
        assert_eq!((first.start_at, first.end_at), (start, end), "{backend:?}");
        assert_eq!(first.created_by, Some(ana));
        assert_eq!(first.created_at, at("2026-03-01T00:00:00Z"));
        let second = s
            .store
            .create_override(
                schedule.id,
                ben,
                at("2026-03-12T00:00:00Z"),
                at("2026-03-13T00:00:00Z"),
                &[],
                &s.audit,
            )
            .await
            .unwrap();

        let recorded = s.store.schedule_notices(schedule.id, 10).await.unwrap();
        let mut summary: Vec<_> = recorded
            .iter()
            .map(|n| (n.user_id, n.kind.as_str(), n.start_at, n.end_at, n.sent_at))
            .collect();
        summary.sort();
        assert_eq!(
            summary,
            vec![
                (ana, "off_call", start, end, None),
                (cho, "on_call", start, end, None),
            ],
            "{backend:?}"
        );
        assert!(
            recorded
                .iter()
                .all(|n| n.reason == "override added on Primary")
        );

        // Ranges are half-open: touching is not overlapping.
        let ids = |v: Vec<heliograph_store::schedules::StoredOverride>| {
            v.into_iter().map(|o| o.id).collect::<Vec<_>>()
        };
        let between = |a: &str, b: &str| s.store.overrides_between(schedule.id, at(a), at(b));
        assert_eq!(
            ids(between("2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z")
                .await
                .unwrap()),
            vec![first.id, second.id]
        );
        assert_eq!(
            ids(between("2026-03-10T14:00:00Z", "2026-03-12T00:00:00Z")
                .await
                .unwrap()),
            Vec::<i64>::new()
        );
        assert_eq!(
            ids(between("2026-03-10T13:59:59Z", "2026-03-12T00:00:01Z")
                .await
                .unwrap()),
            vec![first.id, second.id]
        );
        assert_eq!(
            ids(between("2026-03-09T00:00:00Z", "2026-03-10T10:00:01Z")
                .await
                .unwrap()),
            vec![first.id]
        );
        let other = s
            .store
            .create_schedule(&fields("Other", s.team_id, &[ana]), &s.audit)
            .await
            .unwrap();
        assert!(
            s.store
                .overrides_between(
                    other.id,
                    at("2026-03-01T00:00:00Z"),
                    at("2026-04-01T00:00:00Z")
                )
                .await
                .unwrap()
                .is_empty(),
            "overrides belong to their schedule"
        );
        // The engine's one read: the schedule with the same overrides, by id.
        for (a, b) in [
            ("2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z"),
            ("2026-03-10T14:00:00Z", "2026-03-12T00:00:00Z"),
            ("2026-03-09T00:00:00Z", "2026-03-10T10:00:01Z"),
        ] {
            let (stored, overrides) = s
                .store
                .schedule_with_overrides(schedule.id, at(a), at(b))
                .await
                .unwrap()
                .expect("the schedule");
            assert_eq!(stored, s.store.schedule(schedule.id).await.unwrap());
            let expected: Vec<_> = between(a, b)
                .await
                .unwrap()
                .iter()
                .map(|o| o.to_override())
                .collect();
            assert_eq!(overrides, expected, "{backend:?}: {a} to {b}");
        }
        let (stored, overrides) = s
            .store
            .schedule_with_overrides(
                other.id,
                at("2026-03-01T00:00:00Z"),
                at("2026-04-01T00:00:00Z"),
            )
            .await
            .unwrap()
            .expect("the other schedule");
        assert_eq!((stored.id, overrides.len()), (other.id, 0));
        assert!(
            s.store
                .schedule_with_overrides(
                    other.id + 100,
                    at("2026-03-01T00:00:00Z"),
                    at("2026-04-01T00:00:00Z")
                )
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            s.store
                .schedule_ids_of(cho, at("2026-03-10T13:00:00Z"))
                .await
                .unwrap(),
            vec![schedule.id],
            "an override counts until it ends"
        );
        assert!(
            s.store
                .schedule_ids_of(cho, at("2026-03-10T14:00:00Z"))
                .await
                .unwrap()
                .is_empty()
        );

        // An empty range is refused.
        let backwards = s
            .store
            .create_override(schedule.id, cho, end, start, &[], &s.audit)
            .await;
        assert!(
            matches!(backwards, Err(StoreError::Conflict(_))),
            "{backwards:?}"
        );

        // Deleting records its notices too; a second delete finds nothing.
        assert!(matches!(
            s.store.schedule_override(other.id, first.id).await,
            Err(StoreError::NotFound)
        ));
        let gone = s
            .store
            .delete_override(
                schedule.id,
                first.id,
                &[NewNotice {
                    user_id: ana,
                    on_call: true,
                    start,
                    end,
                    reason: "override removed from Primary".into(),
                }],
                &s.audit,
            )
            .await
            .unwrap();
        assert_eq!(gone, first);
        assert_eq!(
            s.store
                .schedule_notices(schedule.id, 10)
                .await
                .unwrap()
                .len(),
            3
        );
        assert_eq!(
            s.store.schedule_notices(schedule.id, 10).await.unwrap()[0].reason,
            "override removed from Primary",
            "newest first"
        );
        assert!(matches!(
            s.store
                .delete_override(schedule.id, first.id, &[], &s.audit)
                .await,
            Err(StoreError::NotFound)
        ));
        let all = actions(&s.store).await;
        assert_eq!(all.iter().filter(|a| *a == "override.create").count(), 2);
        assert_eq!(all.iter().filter(|a| *a == "override.delete").count(), 1);
    }
}

#[tokio::test]
async fn calendar_feeds_regenerate_revoke_and_stop_for_disabled_people() {
    for backend in backends() {
        let s = setup(backend).await;
        let [ana, ben, _, _] = [0, 1, 2, 3].map(|i| s.users[i].id);
        let schedule = s
            .store
            .create_schedule(&fields("Primary", s.team_id, &[ana, ben]), &s.audit)
            .await
            .unwrap();

        let personal = s
            .store
            .create_calendar_feed(ana, None, "hash-one", &s.audit)
            .await
            .unwrap();
        assert_eq!(
            (personal.user_id, personal.schedule_id),
            (ana, None),
            "{backend:?}"
        );
        assert_eq!(personal.last_used_at, None);
        let of_schedule = s
            .store
            .create_calendar_feed(ana, Some(schedule.id), "hash-two", &s.audit)
            .await
            .unwrap();
        assert_eq!(
            s.store
                .calendar_feeds_of(ana)
                .await
                .unwrap()
                .into_iter()
                .map(|f| f.id)
                .collect::<Vec<_>>(),
            vec![personal.id, of_schedule.id],
            "a personal feed and a schedule feed live side by side"
        );

        // Use is recorded at most once an hour.
        let used = s
            .store
            .calendar_feed_by_secret("hash-one")
            .await
            .unwrap()
            .expect("live");
        assert_eq!(used.id, personal.id);
        assert_eq!(used.last_used_at, Some(at("2026-03-01T00:00:00Z")));
        s.clock.advance(TimeDelta::minutes(30));
        let again = s
            .store
            .calendar_feed_by_secret("hash-one")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again.last_used_at, Some(at("2026-03-01T00:00:00Z")));
        s.clock.advance(TimeDelta::minutes(31));
        let later = s
            .store
            .calendar_feed_by_secret("hash-one")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(later.last_used_at, Some(at("2026-03-01T01:01:00Z")));
        assert!(
            s.store
                .calendar_feed_by_secret("no-such-hash")
                .await
                .unwrap()
                .is_none()
        );

        // Regenerating the personal feed revokes the old URL only.
        let regenerated = s
            .store
            .create_calendar_feed(ana, None, "hash-three", &s.audit)
            .await
            .unwrap();
        assert!(
            s.store
                .calendar_feed_by_secret("hash-one")
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            s.store
                .calendar_feed_by_secret("hash-three")
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            s.store
                .calendar_feed_by_secret("hash-two")
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(s.store.calendar_feeds_of(ana).await.unwrap().len(), 2);

        // Revoking: only the owner's, once.
        assert!(matches!(
            s.store
                .revoke_calendar_feed(ben, regenerated.id, &s.audit)
                .await,
            Err(StoreError::NotFound)
        ));
        s.store
            .revoke_calendar_feed(ana, regenerated.id, &s.audit)
            .await
            .unwrap();
        assert!(
            s.store
                .calendar_feed_by_secret("hash-three")
                .await
                .unwrap()
                .is_none()
        );
        assert!(matches!(
            s.store
                .revoke_calendar_feed(ana, regenerated.id, &s.audit)
                .await,
            Err(StoreError::NotFound)
        ));

        // A disabled person's feeds stop answering.
        s.store
            .update_user(
                ana,
                &UserPatch {
                    disabled: Some(true),
                    ..Default::default()
                },
                &Audit::cli(),
            )
            .await
            .unwrap();
        assert!(
            s.store
                .calendar_feed_by_secret("hash-two")
                .await
                .unwrap()
                .is_none()
        );

        let all = actions(&s.store).await;
        assert_eq!(
            all.iter().filter(|a| *a == "calendar_feed.create").count(),
            3
        );
        assert_eq!(
            all.iter().filter(|a| *a == "calendar_feed.revoke").count(),
            1
        );
    }
}
