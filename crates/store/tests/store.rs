//! One store suite, run on SQLite and on PostgreSQL: the same calls must give the same answers.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use heliograph_domain::{DisplayName, FixedClock, Role, TeamName, TimeZone, TokenName, UserEmail};
use heliograph_store::testdb::{TestDatabase, backends};
use heliograph_store::users::{NewUser, UserPatch};
use heliograph_store::{Audit, AuditFilter, Db, Store, StoreError};

async fn store_on(backend: heliograph_store::Backend) -> (TestDatabase, Store, FixedClock) {
    let db = TestDatabase::fresh(backend).await;
    let conn = Db::connect(&db.url).await.expect("connect");
    conn.migrate().await.expect("migrate");
    let clock = FixedClock::new(at("2026-03-08T06:30:00.123456Z"));
    let store = Store::with_clock(conn, Arc::new(clock.clone()));
    (db, store, clock)
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn new_user(email: &str, role: Role) -> NewUser {
    NewUser {
        email: UserEmail::parse(email).unwrap(),
        name: DisplayName::parse(email.split('@').next().unwrap()).unwrap(),
        time_zone: TimeZone::parse("America/New_York").unwrap(),
        role,
        password_hash: Some("$argon2id$fake".into()),
    }
}

#[tokio::test]
async fn users_round_trip_and_conflict_on_duplicate_email() {
    for backend in backends() {
        let (_db, store, _clock) = store_on(backend).await;
        let audit = Audit::cli();
        let ana = store
            .create_user(&new_user("ana@example.com", Role::Responder), &audit)
            .await
            .unwrap();
        assert_eq!(
            ana.created_at,
            at("2026-03-08T06:30:00.123456Z"),
            "{backend:?}"
        );
        assert_eq!(store.user(ana.id).await.unwrap(), ana, "{backend:?}");
        let dup = store
            .create_user(&new_user("ana@example.com", Role::Viewer), &audit)
            .await;
        assert!(
            matches!(dup, Err(StoreError::Conflict(ref m)) if m.contains("already taken")),
            "{backend:?}: {dup:?}"
        );
        assert_eq!(store.user_count().await.unwrap(), 1);

        let patched = store
            .update_user(
                ana.id,
                &UserPatch {
                    role: Some(Role::Manager),
                    time_zone: Some(TimeZone::parse("Asia/Kathmandu").unwrap()),
                    ..Default::default()
                },
                &audit,
            )
            .await
            .unwrap();
        assert_eq!(patched.role, Role::Manager);
        assert_eq!(patched.time_zone.name(), "Asia/Kathmandu");
        let (found, hash) = store.credentials("ana@example.com").await.unwrap().unwrap();
        assert_eq!(found, patched);
        assert_eq!(hash.as_deref(), Some("$argon2id$fake"));
        assert!(
            store
                .credentials("nobody@example.com")
                .await
                .unwrap()
                .is_none()
        );
        assert!(matches!(store.user(999).await, Err(StoreError::NotFound)));
    }
}

#[tokio::test]
async fn first_admin_only_while_there_are_no_users() {
    for backend in backends() {
        let (_db, store, _clock) = store_on(backend).await;
        store
            .set_setting(heliograph_store::settings::SETUP_TOKEN_HASH, "abc")
            .await
            .unwrap();
        let admin = store
            .create_first_admin(&new_user("root@example.com", Role::Admin), &Audit::system())
            .await
            .unwrap();
        assert_eq!(admin.role, Role::Admin);
        assert_eq!(
            store
                .setting(heliograph_store::settings::SETUP_TOKEN_HASH)
                .await
                .unwrap(),
            None,
            "token consumed"
        );
        let again = store
            .create_first_admin(
                &new_user("second@example.com", Role::Admin),
                &Audit::system(),
            )
            .await;
        assert!(matches!(again, Err(StoreError::Conflict(_))), "{backend:?}");
        assert_eq!(store.user_count().await.unwrap(), 1);
    }
}

#[tokio::test]
async fn teams_members_and_pages() {
    for backend in backends() {
        let (_db, store, _clock) = store_on(backend).await;
        let audit = Audit::cli();
        let a = store
            .create_user(&new_user("a@example.com", Role::Responder), &audit)
            .await
            .unwrap();
        let b = store
            .create_user(&new_user("b@example.com", Role::Responder), &audit)
            .await
            .unwrap();
        let t1 = store
            .create_team(
                &TeamName::parse("AI platform").unwrap(),
                &[b.id, a.id, a.id],
                &audit,
            )
            .await
            .unwrap();
        assert_eq!(t1.members, vec![a.id, b.id]);
        let dup = store
            .create_team(&TeamName::parse("AI platform").unwrap(), &[], &audit)
            .await;
        assert!(
            matches!(dup, Err(StoreError::Conflict(ref m)) if m.contains("already exists")),
            "{dup:?}"
        );
        let bad = store
            .create_team(&TeamName::parse("Ghosts").unwrap(), &[4242], &audit)
            .await;
        assert!(
            matches!(bad, Err(StoreError::Conflict(ref m)) if m.contains("4242")),
            "{bad:?}"
        );
        assert!(
            store
                .teams(10, None)
                .await
                .unwrap()
                .items
                .iter()
                .all(|t| t.team.name.as_str() != "Ghosts"),
            "nothing half-written"
        );
        let t2 = store
            .create_team(&TeamName::parse("Search").unwrap(), &[b.id], &audit)
            .await
            .unwrap();
        let page = store.teams(1, None).await.unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.items[0].team.id, t2.team.id, "newest first");
        let next = store.teams(1, page.next_cursor).await.unwrap();
        assert_eq!(next.items[0].team.id, t1.team.id);
        assert_eq!(next.items[0].members, vec![a.id, b.id]);
        assert!(next.next_cursor.is_none());

        let renamed = store
            .update_team(
                t1.team.id,
                Some(&TeamName::parse("Inference").unwrap()),
                Some(&[a.id]),
                &audit,
            )
            .await
            .unwrap();
        assert_eq!(renamed.members, vec![a.id]);
        assert_eq!(store.teams_of(b.id).await.unwrap().len(), 1);
        store.delete_team(t2.team.id, &audit).await.unwrap();
        assert!(store.teams_of(b.id).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn sessions_expire_and_follow_the_user() {
    for backend in backends() {
        let (_db, store, clock) = store_on(backend).await;
        let user = store
            .create_user(&new_user("s@example.com", Role::Viewer), &Audit::cli())
            .await
            .unwrap();
        let session = store
            .create_session(user.id, "hash-1", Some("127.0.0.1"), Some("test"))
            .await
            .unwrap();
        let (found, who) = store.session("hash-1").await.unwrap().unwrap();
        assert_eq!((found.id, who.id), (session.id, user.id));
        assert!(store.session("other").await.unwrap().is_none());
        clock.advance(TimeDelta::days(15));
        assert!(
            store.session("hash-1").await.unwrap().is_none(),
            "{backend:?}: idle sessions expire"
        );

        clock.advance(TimeDelta::minutes(1));
        let s2 = store
            .create_session(user.id, "hash-2", None, None)
            .await
            .unwrap();
        clock.advance(TimeDelta::days(10));
        assert!(
            store.session("hash-2").await.unwrap().is_some(),
            "used sessions are extended"
        );
        clock.advance(TimeDelta::days(10));
        assert!(store.session("hash-2").await.unwrap().is_some());
        store
            .update_user(
                user.id,
                &UserPatch {
                    disabled: Some(true),
                    ..Default::default()
                },
                &Audit::cli(),
            )
            .await
            .unwrap();
        assert!(
            store.session("hash-2").await.unwrap().is_none(),
            "disabling ends sessions"
        );
        store.delete_session(s2.id).await.unwrap();
    }
}

#[tokio::test]
async fn tokens_authenticate_until_revoked() {
    for backend in backends() {
        let (_db, store, clock) = store_on(backend).await;
        let user = store
            .create_user(&new_user("t@example.com", Role::Responder), &Audit::cli())
            .await
            .unwrap();
        let token = store
            .create_token(
                user.id,
                &TokenName::parse("ci").unwrap(),
                "thash",
                "hgt_abcd",
                &Audit::cli(),
            )
            .await
            .unwrap();
        assert!(token.last_used_at.is_none());
        let (used, who) = store.authenticate_token("thash").await.unwrap().unwrap();
        assert_eq!(who.id, user.id);
        assert_eq!(used.last_used_at, Some(clock.now_for_test()));
        assert_eq!(
            store.tokens_of(user.id).await.unwrap()[0].last_used_at,
            Some(clock.now_for_test())
        );
        store.revoke_token(token.id, &Audit::cli()).await.unwrap();
        assert!(
            store.authenticate_token("thash").await.unwrap().is_none(),
            "{backend:?}"
        );
        assert!(matches!(
            store.revoke_token(token.id, &Audit::cli()).await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(store.all_tokens().await.unwrap().len(), 1);
    }
}

trait NowForTest {
    fn now_for_test(&self) -> DateTime<Utc>;
}
impl NowForTest for FixedClock {
    fn now_for_test(&self) -> DateTime<Utc> {
        heliograph_domain::Clock::now(self)
    }
}

#[tokio::test]
async fn login_failures_count_in_a_window() {
    for backend in backends() {
        let (_db, store, clock) = store_on(backend).await;
        let start = clock.now_for_test();
        store
            .record_login_failure(&["email:x", "addr:1"])
            .await
            .unwrap();
        clock.advance(TimeDelta::minutes(5));
        store.record_login_failure(&["email:x"]).await.unwrap();
        let (n, oldest) = store.login_failures_since("email:x", start).await.unwrap();
        assert_eq!((n, oldest), (2, Some(start)), "{backend:?}");
        assert_eq!(
            store
                .login_failures_since("email:x", start + TimeDelta::minutes(1))
                .await
                .unwrap()
                .0,
            1
        );
        store
            .clear_login_failures("email:x", start - TimeDelta::hours(1))
            .await
            .unwrap();
        assert_eq!(
            store
                .login_failures_since("email:x", start)
                .await
                .unwrap()
                .0,
            0
        );
        assert_eq!(
            store.login_failures_since("addr:1", start).await.unwrap().0,
            1
        );
    }
}

#[tokio::test]
async fn audit_log_records_every_change_and_filters() {
    for backend in backends() {
        let (_db, store, clock) = store_on(backend).await;
        let t0 = clock.now_for_test();
        let admin = store
            .create_user(&new_user("admin@example.com", Role::Admin), &Audit::cli())
            .await
            .unwrap();
        let as_admin = Audit {
            actor_user_id: Some(admin.id),
            actor: "admin@example.com".into(),
            client_addr: Some("10.0.0.1".into()),
        };
        clock.advance(TimeDelta::hours(1));
        let team = store
            .create_team(&TeamName::parse("SRE").unwrap(), &[admin.id], &as_admin)
            .await
            .unwrap();
        store
            .update_team(
                team.team.id,
                Some(&TeamName::parse("SRE EMEA").unwrap()),
                None,
                &as_admin,
            )
            .await
            .unwrap();

        let all = store
            .audit_log(&AuditFilter::default(), 50, None)
            .await
            .unwrap();
        let actions: Vec<_> = all.items.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(
            actions,
            ["team.update", "team.create", "user.create"],
            "{backend:?}"
        );
        let update = &all.items[0];
        assert_eq!(update.client_addr.as_deref(), Some("10.0.0.1"));
        assert!(update.before.as_deref().unwrap().contains("\"SRE\""));
        assert!(update.after.as_deref().unwrap().contains("SRE EMEA"));

        let by_admin = store
            .audit_log(
                &AuditFilter {
                    actor_user_id: Some(admin.id),
                    ..Default::default()
                },
                50,
                None,
            )
            .await
            .unwrap();
        assert_eq!(by_admin.items.len(), 2);
        let users = store
            .audit_log(
                &AuditFilter {
                    target_type: Some("user".into()),
                    ..Default::default()
                },
                50,
                None,
            )
            .await
            .unwrap();
        assert_eq!(users.items.len(), 1);
        let early = store
            .audit_log(
                &AuditFilter {
                    from: Some(t0),
                    to: Some(t0 + TimeDelta::minutes(30)),
                    ..Default::default()
                },
                50,
                None,
            )
            .await
            .unwrap();
        assert_eq!(early.items.len(), 1, "{backend:?}: date range");
        let page = store
            .audit_log(&AuditFilter::default(), 2, None)
            .await
            .unwrap();
        let rest = store
            .audit_log(&AuditFilter::default(), 2, page.next_cursor)
            .await
            .unwrap();
        assert_eq!(rest.items.len(), 1);
        assert_eq!(store.audit_target_types().await.unwrap(), ["team", "user"]);
    }
}
