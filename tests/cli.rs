//! End-to-end: the command line creates users and tokens that the server then accepts.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{TestApp, backends};
use heliograph_store::testdb::TestDatabase;
use reqwest::StatusCode;

fn heliograph(db: &str, args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_heliograph"))
        .args(args)
        .env("HELIOGRAPH_DATABASE_URL", db)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run heliograph");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn user_and_token_create_from_the_command_line() {
    for backend in backends() {
        let db = std::sync::Arc::new(TestDatabase::fresh(backend).await);
        let (ok, out, err) = heliograph(&db.url, &["migrate"], "");
        assert!(ok, "{err}");
        assert!(out.contains("migrations applied"));

        let (ok, out, err) = heliograph(
            &db.url,
            &[
                "user",
                "create",
                "--email",
                "gus@example.com",
                "--name",
                "Gus",
                "--role",
                "manager",
                "--time-zone",
                "Australia/Sydney",
                "--password-stdin",
            ],
            "gus's long password\n",
        );
        assert!(ok, "{backend:?}: {err}");
        let id: i64 = out
            .lines()
            .last()
            .unwrap()
            .trim()
            .parse()
            .expect("the id on the last line");

        let (ok, _, err) = heliograph(
            &db.url,
            &[
                "user",
                "create",
                "--email",
                "x@example.com",
                "--name",
                "X",
                "--role",
                "emperor",
            ],
            "",
        );
        assert!(!ok);
        assert!(
            err.contains("must be one of admin, manager, responder, viewer"),
            "{err}"
        );
        let (ok, _, err) = heliograph(
            &db.url,
            &[
                "user",
                "create",
                "--email",
                "y@example.com",
                "--name",
                "Y",
                "--role",
                "viewer",
                "--time-zone",
                "Moon/Base",
            ],
            "",
        );
        assert!(!ok);
        assert!(err.contains("not an IANA time zone"), "{err}");

        let (ok, out, err) = heliograph(
            &db.url,
            &[
                "token",
                "create",
                "--email",
                "gus@example.com",
                "--name",
                "deploy bot",
            ],
            "",
        );
        assert!(ok, "{err}");
        let token = out.lines().last().unwrap().trim().to_owned();
        assert!(token.starts_with("hg_"));
        let (ok, _, err) = heliograph(
            &db.url,
            &[
                "token",
                "create",
                "--email",
                "nobody@example.com",
                "--name",
                "x",
            ],
            "",
        );
        assert!(!ok && err.contains("no user with the email"), "{err}");

        let app = TestApp::spawn_on(
            backend,
            db,
            std::sync::Arc::new(heliograph_domain::SystemClock),
        )
        .await;
        let me = reqwest::Client::new()
            .get(app.url("/api/v1/users/me"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), StatusCode::OK);
        let me: serde_json::Value = me.json().await.unwrap();
        assert_eq!(
            (me["id"].as_i64(), me["time_zone"].as_str()),
            (Some(id), Some("Australia/Sydney"))
        );
        let browser = app.browser();
        assert_eq!(
            app.sign_in(&browser, "gus@example.com", "gus's long password")
                .await
                .status(),
            StatusCode::SEE_OTHER
        );
        let actions = app.audit_actions().await;
        assert!(
            actions.contains(&"user.create".to_owned())
                && actions.contains(&"token.create".to_owned())
        );
        app.stop().await;
    }
}

#[test]
fn help_explains_the_environment() {
    let out = Command::new(env!("CARGO_BIN_EXE_heliograph"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for var in [
        "HELIOGRAPH_DATABASE_URL",
        "HELIOGRAPH_BIND",
        "HELIOGRAPH_BASE_URL",
        "HELIOGRAPH_SMTP_URL",
        "HELIOGRAPH_SMTP_FROM",
        "HELIOGRAPH_DATABASE_POOL",
    ] {
        assert!(help.contains(var), "{var} missing from --help: {help}");
    }
}

#[tokio::test]
async fn the_postgres_pool_size_is_checked_and_used() {
    let db = TestDatabase::fresh(heliograph_store::Backend::Sqlite).await;
    for bad in ["1", "0", "many", "1001"] {
        let out = Command::new(env!("CARGO_BIN_EXE_heliograph"))
            .arg("migrate")
            .env("HELIOGRAPH_DATABASE_URL", &db.url)
            .env("HELIOGRAPH_DATABASE_POOL", bad)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "pool {bad} accepted");
        assert!(err.contains("database-pool"), "{bad}: {err}");
    }
    for backend in backends() {
        let db = TestDatabase::fresh(backend).await;
        let out = Command::new(env!("CARGO_BIN_EXE_heliograph"))
            .arg("migrate")
            .env("HELIOGRAPH_DATABASE_URL", &db.url)
            .env("HELIOGRAPH_DATABASE_POOL", "3")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if let heliograph_store::Db::Postgres(pool, _) =
            heliograph_store::Db::connect_pooled(&db.url, 3)
                .await
                .unwrap()
        {
            assert_eq!(pool.options().get_max_connections(), 3);
        }
    }
}
