//! All of Heliograph's SQL, written once and run on SQLite or PostgreSQL.
//!
//! [`Db`] is chosen from the database URL's scheme. Each query is a static string with `$1…`
//! placeholders that both dialects accept, run through `query_as` into `FromRow` structs, and
//! expanded over the two pools by the small macros below. On SQLite all writes go through a
//! pool of one connection, so writers queue in-process instead of failing with `SQLITE_BUSY`;
//! reads use a separate pool and WAL lets them run beside the writer.
//!
//! Every mutation takes an [`Audit`] and records its audit-log entry in the same transaction
//! as the change, so a change and its record cannot part.

#![deny(unsafe_code)]

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use heliograph_domain::{Clock, SystemClock};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub mod alerts;
pub mod audit;
mod batch;
pub mod contacts;
mod declarations;
pub mod demo;
pub mod escalation_policies;
mod finishes;
mod group;
pub mod incidents;
pub mod insights;
pub mod jobs;
pub mod oncall_load;
pub mod paging;
pub mod postmortems;
pub mod schedules;
pub mod seed;
pub mod services;
pub mod sessions;
pub mod settings;
mod steps;
pub mod team_channels;
pub mod teams;
pub mod throttle;
mod together;
pub mod tokens;
pub mod users;

pub use audit::{Audit, AuditEntry, AuditFilter};

/// Runs `$body` with `$c` bound to a connection pool suitable for reading.
macro_rules! read {
    ($db:expr, $c:ident => $body:expr) => {
        match $db {
            $crate::Db::Sqlite { read: $c, .. } => $body,
            $crate::Db::Postgres($c, _) => $body,
        }
    };
}

/// Runs `$body` with `$c` bound to the connection of a [`Tx`].
macro_rules! tx {
    ($tx:expr, $c:ident => $body:expr) => {
        match $tx {
            $crate::Tx::Sqlite(t) => {
                let $c = &mut **t;
                $body
            }
            $crate::Tx::Postgres(t) => {
                let $c = &mut **t;
                $body
            }
        }
    };
}

pub(crate) use {read, tx};

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row asked for does not exist.
    #[error("not found")]
    NotFound,
    /// The change breaks a rule of the data (a duplicate, a reference to nothing, a stale version).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database failed.
    #[error("database error: {0}")]
    Backend(#[source] sqlx::Error),
    /// A stored value could not be read back (corrupt or from a newer version).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(db) => match db.kind() {
                sqlx::error::ErrorKind::UniqueViolation => StoreError::Conflict(
                    db.constraint()
                        .map(str::to_owned)
                        .unwrap_or_else(|| db.message().to_owned()),
                ),
                sqlx::error::ErrorKind::ForeignKeyViolation => {
                    StoreError::Conflict("a referenced row does not exist".into())
                }
                _ => StoreError::Backend(err),
            },
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
                StoreError::Corrupt(err.to_string())
            }
            _ => StoreError::Backend(err),
        }
    }
}

impl StoreError {
    /// Whether this is a uniqueness conflict (for "already taken" messages).
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict(_))
    }
}

/// A store call's result.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A connection to one of the two supported databases.
#[derive(Clone, Debug)]
pub enum Db {
    /// An embedded SQLite file: a pool for reads and a single-connection pool for writes.
    Sqlite { read: SqlitePool, write: SqlitePool },
    /// A PostgreSQL server, and the task that announces changed incidents on it.
    Postgres(PgPool, Announcer),
}

/// An open write transaction on either backend.
pub enum Tx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(PgTx),
}

impl Tx {
    /// Makes the transaction's changes durable, then (PostgreSQL) announces the incidents it
    /// changed to every replica.
    pub async fn commit(self) -> Result<()> {
        match self {
            Tx::Sqlite(t) => t.commit().await?,
            Tx::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }
}

/// A PostgreSQL transaction, with the incidents it changed (see
/// [`incidents::NOTIFY_CHANNEL`]). Dereferences to its connection.
///
/// The changes are announced with `pg_notify` only after the commit, by the [`Announcer`], in
/// a statement of their own. PostgreSQL holds one database-wide lock from a notifying transaction's commit until
/// its commit record is flushed to disk, so notifying inside the transaction that made the
/// change put every declaration, alert and page of every replica in one queue behind each
/// other's disk flushes. The announcing statement's own commit does not wait for the disk
/// (`synchronous_commit` off for it alone): a notification is not durable anyway, and the
/// change it announces already is.
pub struct PgTx {
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
    announcer: Announcer,
    changed: Vec<i64>,
}

impl PgTx {
    /// Records that incident `number` changed, to be announced after the commit.
    pub(crate) fn changed(&mut self, number: i64) {
        if !self.changed.contains(&number) {
            self.changed.push(number);
        }
    }

    async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        self.announcer.announce(self.changed);
        Ok(())
    }
}

/// Announces changed incidents on PostgreSQL (`pg_notify` on [`incidents::NOTIFY_CHANNEL`]),
/// after the commits that changed them, from a task of its own: neither a caller that stops
/// waiting (a browser that went away) nor a busy pool loses or delays an announcement, and
/// the numbers that arrive while one statement runs go out together in the next, so a burst
/// of changes costs a few statements, not one each. A lost announcement leaves a browser's
/// page stale until its next change; the change itself is committed either way.
#[derive(Clone, Debug)]
pub struct Announcer {
    queue: tokio::sync::mpsc::UnboundedSender<i64>,
}

impl Announcer {
    /// The most numbers one statement announces.
    const MAX_BATCH: usize = 1024;

    /// Starts the announcing task; it ends when the last `Announcer` is dropped.
    fn start(pool: PgPool) -> Announcer {
        let (queue, mut pending) = tokio::sync::mpsc::unbounded_channel::<i64>();
        tokio::spawn(async move {
            let mut numbers = Vec::with_capacity(Self::MAX_BATCH);
            while pending.recv_many(&mut numbers, Self::MAX_BATCH).await > 0 {
                numbers.sort_unstable();
                numbers.dedup();
                if let Err(e) = sqlx::query(
                    "SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, n::text)
                     FROM unnest($2::bigint[]) AS n",
                )
                .bind(incidents::NOTIFY_CHANNEL)
                .bind(&numbers)
                .execute(&pool)
                .await
                {
                    tracing::warn!(error = %e, incidents = ?numbers, "cannot announce incident changes");
                }
                numbers.clear();
            }
        });
        Announcer { queue }
    }

    pub(crate) fn announce(&self, numbers: Vec<i64>) {
        for n in numbers {
            // Fails only once the task has stopped, at shutdown.
            let _ = self.queue.send(n);
        }
    }
}

impl std::ops::Deref for PgTx {
    type Target = sqlx::PgConnection;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for PgTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

/// Which database backs a [`Db`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Connections to PostgreSQL per process, by default. A backend per core of the database
/// server keeps it busy; more only take turns on the cores. On a 2-core server, 1,000
/// simultaneous incidents were paged about a fifth sooner with 8 than with 16
/// (docs/benchmarks.md).
pub const DEFAULT_POSTGRES_POOL: u32 = 8;

/// How long a PostgreSQL connection may have been idle in the pool and still be handed out
/// without a ping.
const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// The default database: a SQLite file under `./data/`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/heliograph.db";

impl Db {
    /// Connects to the database named by `url`: `postgres://…` or `postgresql://…` selects
    /// PostgreSQL; `sqlite://path` (relative to the working directory) or `sqlite::memory:`
    /// selects SQLite, creating the file and its folder when missing.
    pub async fn connect(url: &str) -> Result<Db> {
        Self::connect_pooled(url, DEFAULT_POSTGRES_POOL).await
    }

    /// [`Db::connect`] with at most `max_connections` connections to PostgreSQL (one of them
    /// listens for other replicas' changes). SQLite's pools do not depend on it.
    pub async fn connect_pooled(url: &str, max_connections: u32) -> Result<Db> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(max_connections.max(2))
                .acquire_timeout(Duration::from_secs(10))
                // sqlx pings every connection it hands out: a round trip to the server per
                // statement or transaction, which in a burst of pages was a third as many
                // round trips again as the statements themselves. A connection that worked
                // within the last second is handed out as it is; one idle for longer (the
                // server may have restarted, a firewall may have dropped it) is pinged first.
                .test_before_acquire(false)
                .before_acquire(|conn, meta| {
                    Box::pin(async move {
                        if meta.idle_for >= PING_AFTER_IDLE {
                            sqlx::Connection::ping(conn).await?;
                        }
                        Ok(true)
                    })
                })
                .connect_with(options)
                .await?;
            let announcer = Announcer::start(pool.clone());
            return Ok(Db::Postgres(pool, announcer));
        }
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.trim_start_matches("//");
            if !path.is_empty() && !path.starts_with(':') {
                let file = path.split('?').next().unwrap_or(path);
                if let Some(dir) = Path::new(file)
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        StoreError::Backend(sqlx::Error::Configuration(
                            format!("cannot create database folder {}: {e}", dir.display()).into(),
                        ))
                    })?;
                }
            }
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
                // Rows cross from the SQLite worker thread in batches of this size; the
                // default (50) makes long lists ping-pong between threads.
                .row_buffer_size(1024)
                // A bigger page cache keeps hot pages out of read(2). No memory-mapped I/O:
                // in WAL mode SQLite unmaps a connection's whole mapping whenever it begins a
                // read after another connection wrote, and each munmap interrupts every core
                // to flush its TLB, which under a burst of writes cost more than the mapping
                // ever saved (docs/benchmarks.md).
                .pragma("cache_size", "-32768")
                .pragma("mmap_size", "0");
            // No ping before handing out a connection: SQLite runs in this process, and a
            // ping is only a round trip to the connection's own thread, which for the one
            // writer was a fifth of its commands.
            let write = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(30))
                .test_before_acquire(false)
                .connect_with(options.clone())
                .await?;
            let read = SqlitePoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(30))
                .test_before_acquire(false)
                .connect_with(options.read_only(true))
                .await?;
            return Ok(Db::Sqlite { read, write });
        }
        Err(StoreError::Backend(sqlx::Error::Configuration(
            format!(
                "unsupported database URL {:?}: use sqlite://path/to/file.db or postgres://user@host/db",
                url.split('@').next_back().unwrap_or(url)
            )
            .into(),
        )))
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite { .. } => Backend::Sqlite,
            Db::Postgres(..) => Backend::Postgres,
        }
    }

    /// Applies the embedded migrations for this backend (idempotent; safe to run from
    /// several replicas at once on PostgreSQL, which takes an advisory lock).
    pub async fn migrate(&self) -> Result<()> {
        match self {
            Db::Sqlite { write, .. } => sqlx::migrate!("../../migrations/sqlite")
                .run(write)
                .await
                .map_err(|e| StoreError::Backend(e.into()))?,
            Db::Postgres(pool, _) => sqlx::migrate!("../../migrations/postgres")
                .run(pool)
                .await
                .map_err(|e| StoreError::Backend(e.into()))?,
        }
        Ok(())
    }

    /// Begins a write transaction.
    pub async fn begin(&self) -> Result<Tx> {
        Ok(match self {
            Db::Sqlite { write, .. } => Tx::Sqlite(write.begin().await?),
            Db::Postgres(pool, announcer) => Tx::Postgres(PgTx {
                tx: pool.begin().await?,
                announcer: announcer.clone(),
                changed: Vec::new(),
            }),
        })
    }

    /// Checks that the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<()> {
        read!(self, c => sqlx::query("SELECT 1").execute(c).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Closes every connection (at shutdown).
    pub async fn close(&self) {
        match self {
            Db::Sqlite { read, write } => {
                read.close().await;
                write.close().await;
            }
            Db::Postgres(pool, _) => pool.close().await,
        }
    }
}

/// The database plus the clock every stored instant comes from.
#[derive(Clone)]
pub struct Store {
    db: Db,
    clock: Arc<dyn Clock>,
    integrations: alerts::KeyCache,
    classifier: oncall_load::Classifier,
    group: group::Group,
    finishes: together::Together<finishes::Finish>,
    steps: together::Together<steps::PgStep>,
    declarations: together::Together<declarations::PgDeclaration>,
}

impl Store {
    /// A store on `db` using the wall clock.
    pub fn new(db: Db) -> Self {
        Self::with_clock(db, Arc::new(SystemClock))
    }

    /// A store on `db` whose notion of now comes from `clock` (tests move it by hand).
    pub fn with_clock(db: Db, clock: Arc<dyn Clock>) -> Self {
        Self {
            db,
            clock,
            integrations: alerts::KeyCache::default(),
            classifier: oncall_load::Classifier::default(),
            group: group::Group::default(),
            finishes: together::Together::default(),
            steps: together::Together::default(),
            declarations: together::Together::default(),
        }
    }

    /// How many times several writes went to the database together: SQLite transactions
    /// that committed more than one unit ([`group`]), PostgreSQL statements that carried more
    /// than one delivery outcome, escalation step or declaration ([`together`]). For tests and benchmarks.
    #[doc(hidden)]
    pub fn writes_grouped(&self) -> u64 {
        self.group.committed_together()
            + self.finishes.sent_together()
            + self.steps.sent_together()
            + self.declarations.sent_together()
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Now, from the store's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The clock itself, for components that schedule work.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }
}

/// A page of a list, newest first, with the cursor for the next page.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next (older) page; `None` on the last page.
    pub next_cursor: Option<i64>,
}

impl<T> Page<T> {
    /// Splits `rows` (fetched with `limit + 1`) into a page and its cursor.
    pub(crate) fn from_rows(mut rows: Vec<T>, limit: i64, id: impl Fn(&T) -> i64) -> Self {
        let limit = usize::try_from(limit).unwrap_or(0);
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(&id)
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }
}

pub mod testdb;
