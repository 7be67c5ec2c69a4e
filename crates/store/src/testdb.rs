//! Fresh, throw-away databases for tests, on both backends.
//!
//! SQLite: a file in a new temporary folder. PostgreSQL: a new database on the server named
//! by `HELIOGRAPH_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`),
//! dropped when the [`TestDatabase`] is dropped. Set `HELIOGRAPH_TEST_POSTGRES=off` to run the
//! SQLite half alone on a machine without PostgreSQL.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use rand::Rng;

use crate::Backend;

/// The PostgreSQL server tests use unless `HELIOGRAPH_TEST_POSTGRES_URL` says otherwise.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The backends the tests run on: SQLite always, PostgreSQL unless switched off.
pub fn backends() -> Vec<Backend> {
    let postgres_off =
        std::env::var("HELIOGRAPH_TEST_POSTGRES").is_ok_and(|v| v == "off" || v == "0");
    if postgres_off {
        vec![Backend::Sqlite]
    } else {
        vec![Backend::Sqlite, Backend::Postgres]
    }
}

/// A database that exists for one test.
pub struct TestDatabase {
    /// Connect here.
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Dir(PathBuf),
    Postgres { admin_url: String, name: String },
}

impl TestDatabase {
    /// Creates an empty database on `backend`. Panics with a clear message when PostgreSQL
    /// cannot be reached (tests only).
    pub async fn fresh(backend: Backend) -> TestDatabase {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tag: u32 = rand::rng().random();
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!(
                    "heliograph-test-{}-{n}-{tag:08x}",
                    std::process::id()
                ));
                std::fs::create_dir_all(&dir).expect("create a temporary folder");
                let url = format!("sqlite://{}/heliograph.db", dir.display());
                TestDatabase {
                    url,
                    cleanup: Cleanup::Dir(dir),
                }
            }
            Backend::Postgres => {
                let admin_url = std::env::var("HELIOGRAPH_TEST_POSTGRES_URL")
                    .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.into());
                let name = format!("hg_test_{}_{n}_{tag:08x}", std::process::id());
                let admin = sqlx::PgPool::connect(&admin_url).await.unwrap_or_else(|e| {
                    panic!(
                        "PostgreSQL is not reachable at {admin_url} ({e}). Start it, point HELIOGRAPH_TEST_POSTGRES_URL at a server \
                         where this user may create databases, or set HELIOGRAPH_TEST_POSTGRES=off to test SQLite alone."
                    )
                });
                sqlx::query(&format!("CREATE DATABASE \"{name}\""))
                    .execute(&admin)
                    .await
                    .expect("create a test database");
                admin.close().await;
                let mut url =
                    url::Url::parse(&admin_url).expect("HELIOGRAPH_TEST_POSTGRES_URL is a URL");
                url.set_path(&format!("/{name}"));
                TestDatabase {
                    url: url.to_string(),
                    cleanup: Cleanup::Postgres { admin_url, name },
                }
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Dir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Postgres { admin_url, name } => {
                let (admin_url, name) = (admin_url.clone(), name.clone());
                // Dropping needs async I/O; do it on a runtime of its own, off the test's.
                let _ = std::thread::spawn(move || {
                    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    else {
                        return;
                    };
                    rt.block_on(async move {
                        if let Ok(admin) = sqlx::PgPool::connect(&admin_url).await {
                            let _ = sqlx::query(&format!(
                                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                            ))
                            .execute(&admin)
                            .await;
                            admin.close().await;
                        }
                    });
                })
                .join();
            }
        }
    }
}
