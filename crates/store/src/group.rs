//! Group commit on SQLite: the small write transactions of a burst (declarations, escalation
//! steps, delivery outcomes) run several to one transaction.
//!
//! SQLite has one writer connection, driven by sqlx from a thread of its own, and each
//! command sent to it (`BEGIN`, a statement, `COMMIT`) is a round trip between that thread and
//! an async task: two thread wake-ups. Under a burst those wake-ups, not SQLite's work, were
//! what the writer waited on: it was busy half the time while the queue behind it grew. A
//! [`Group`] is a task that holds the writer for a group of waiting units, runs them one after
//! another in one transaction and commits once, so each unit costs only its own statements.
//!
//! All or nothing per unit still holds. If any unit fails, or asks for its changes to be
//! undone (a job's lease lost), the group's transaction is rolled back and each of its units
//! runs again in a transaction of its own, as it would have without grouping, so a unit's
//! failure never touches another's changes. A unit's answer is sent only after its changes
//! committed. A caller that stops waiting does not stop its unit: it commits or fails as a
//! whole, like any other.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, oneshot};

use crate::{Result, StoreError, Tx};

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Work for one transaction, which may run more than once (alone, after its group failed);
/// every run must start from its own data, not from what an earlier run left.
pub(crate) trait Unit: Send + 'static {
    type Output: Send + 'static;

    /// Runs in `tx`; [`Ran::Undo`] asks for this unit's changes to be rolled back (the output
    /// is still the answer).
    fn run<'a>(&'a mut self, tx: &'a mut Tx) -> BoxFuture<'a, Result<Ran<Self::Output>>>;
}

/// What a [`Unit`] decided.
pub(crate) enum Ran<T> {
    /// Keep the changes; answer `T` once they are committed.
    Keep(T),
    /// Roll this unit's changes back and answer `T`.
    Undo(T),
}

/// A unit with its answer's channel, its type erased for the queue.
trait Queued: Send {
    /// Runs the unit; whether its changes may be kept.
    fn run<'a>(&'a mut self, tx: &'a mut Tx) -> BoxFuture<'a, Result<bool>>;
    /// Sends the answer: the last run's output, or `failed`.
    fn answer(self: Box<Self>, failed: Option<StoreError>);
}

struct Waiting<U: Unit> {
    unit: U,
    output: Option<U::Output>,
    reply: oneshot::Sender<Result<U::Output>>,
}

impl<U: Unit> Queued for Waiting<U> {
    fn run<'a>(&'a mut self, tx: &'a mut Tx) -> BoxFuture<'a, Result<bool>> {
        Box::pin(async move {
            let (keep, output) = match self.unit.run(tx).await? {
                Ran::Keep(output) => (true, output),
                Ran::Undo(output) => (false, output),
            };
            self.output = Some(output);
            Ok(keep)
        })
    }

    fn answer(self: Box<Self>, failed: Option<StoreError>) {
        let answer = match (failed, self.output) {
            (Some(e), _) => Err(e),
            (None, Some(output)) => Ok(output),
            (None, None) => Err(stopped()),
        };
        // The caller may have stopped waiting; its unit ran all the same.
        let _ = self.reply.send(answer);
    }
}

fn stopped() -> StoreError {
    StoreError::Backend(sqlx::Error::WorkerCrashed)
}

/// The group-commit task of one SQLite database (see the module's documentation), started on
/// first use. Cloning shares the task.
#[derive(Clone, Default)]
pub(crate) struct Group {
    queue: Arc<OnceLock<mpsc::UnboundedSender<Box<dyn Queued>>>>,
    /// Transactions committed with more than one unit.
    together: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group").finish_non_exhaustive()
    }
}

impl Group {
    /// The most units in one transaction: enough to take a burst's queue in a few groups,
    /// few enough that the first of them is not kept waiting long for the commit.
    const MOST: usize = 64;

    /// Runs `unit` on the writer `write`, grouped with whatever else is waiting, and answers
    /// once its changes are committed (or undone).
    pub(crate) async fn run<U: Unit>(
        &self,
        write: &sqlx::SqlitePool,
        unit: U,
    ) -> Result<U::Output> {
        let (reply, answer) = oneshot::channel();
        let waiting: Box<dyn Queued> = Box::new(Waiting {
            unit,
            output: None,
            reply,
        });
        let queue = self
            .queue
            .get_or_init(|| Self::start(write.clone(), self.together.clone()));
        match queue.send(waiting) {
            Ok(()) => answer.await.unwrap_or_else(|_| Err(stopped())),
            // The task is gone (its runtime shut down): run here, alone.
            Err(mpsc::error::SendError(mut waiting)) => {
                let failed = alone(write, waiting.as_mut()).await.err();
                waiting.answer(failed);
                answer.await.unwrap_or_else(|_| Err(stopped()))
            }
        }
    }

    /// How many transactions committed more than one unit.
    pub(crate) fn committed_together(&self) -> u64 {
        self.together.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn start(
        write: sqlx::SqlitePool,
        together_count: Arc<std::sync::atomic::AtomicU64>,
    ) -> mpsc::UnboundedSender<Box<dyn Queued>> {
        let (queue, mut units) = mpsc::unbounded_channel::<Box<dyn Queued>>();
        tokio::spawn(async move {
            let mut group = Vec::with_capacity(Self::MOST);
            while units.recv_many(&mut group, Self::MOST).await > 0 {
                if group.len() > 1 && together(&write, &mut group).await {
                    together_count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    for unit in group.drain(..) {
                        unit.answer(None);
                    }
                    continue;
                }
                for mut unit in group.drain(..) {
                    let failed = alone(&write, unit.as_mut()).await.err();
                    unit.answer(failed);
                }
            }
        });
        queue
    }
}

/// Runs `group` in one transaction; whether all of it committed. On `false` nothing of it was.
async fn together(write: &sqlx::SqlitePool, group: &mut [Box<dyn Queued>]) -> bool {
    let mut tx = match write.begin().await {
        Ok(t) => Tx::Sqlite(t),
        Err(_) => return false,
    };
    for unit in group.iter_mut() {
        match unit.run(&mut tx).await {
            Ok(true) => {}
            Ok(false) | Err(_) => {
                rollback(tx).await;
                return false;
            }
        }
    }
    match tx.commit().await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "a group commit failed; its units run one by one");
            false
        }
    }
}

/// Runs one unit in a transaction of its own.
async fn alone(write: &sqlx::SqlitePool, unit: &mut dyn Queued) -> Result<()> {
    let mut tx = Tx::Sqlite(write.begin().await?);
    if unit.run(&mut tx).await? {
        tx.commit().await
    } else {
        rollback(tx).await;
        Ok(())
    }
}

async fn rollback(tx: Tx) {
    if let Tx::Sqlite(t) = tx
        && let Err(e) = t.rollback().await
    {
        tracing::warn!(error = %e, "rolling back a group failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdb::TestDatabase;
    use crate::{Backend, Db};

    /// Inserts `key` into `t`; `undo` asks for the insert to be rolled back.
    struct Insert {
        key: String,
        undo: bool,
    }

    impl Unit for Insert {
        type Output = String;

        fn run<'a>(&'a mut self, tx: &'a mut Tx) -> BoxFuture<'a, Result<Ran<String>>> {
            Box::pin(async move {
                let Tx::Sqlite(t) = tx else { unreachable!() };
                sqlx::query("INSERT INTO t (k) VALUES ($1)")
                    .bind(&self.key)
                    .execute(&mut **t)
                    .await?;
                let key = self.key.clone();
                Ok(if self.undo {
                    Ran::Undo(key)
                } else {
                    Ran::Keep(key)
                })
            })
        }
    }

    async fn keys(write: &sqlx::SqlitePool) -> Vec<String> {
        sqlx::query_scalar("SELECT k FROM t ORDER BY k")
            .fetch_all(write)
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn units_commit_together_and_a_failing_or_undone_unit_changes_nothing() {
        let db = TestDatabase::fresh(Backend::Sqlite).await;
        let Db::Sqlite { write, .. } = Db::connect(&db.url).await.unwrap() else {
            unreachable!()
        };
        sqlx::query("CREATE TABLE t (k TEXT PRIMARY KEY)")
            .execute(&write)
            .await
            .unwrap();
        sqlx::query("INSERT INTO t (k) VALUES ('taken')")
            .execute(&write)
            .await
            .unwrap();
        let group = Group::default();

        // Clean runs: while the writer is held, the units queue, and then commit in groups.
        let held = write.acquire().await.unwrap();
        let clean: Vec<_> = (0..40)
            .map(|i| {
                let (group, write) = (group.clone(), write.clone());
                let key = format!("a{i:02}");
                tokio::spawn(async move { group.run(&write, Insert { key, undo: false }).await })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        drop(held);
        for (i, task) in clean.into_iter().enumerate() {
            assert_eq!(task.await.unwrap().unwrap(), format!("a{i:02}"));
        }
        assert!(group.committed_together() >= 1, "no units were grouped");
        assert_eq!(keys(&write).await.len(), 41);

        // An undone unit among good ones, then a failing one among good ones: each answers
        // for itself, and neither leaves a change.
        let mixed = |prefix: &'static str, odd: usize, key: &'static str, undo: bool| {
            let (group, write) = (group.clone(), write.clone());
            async move {
                let held = write.acquire().await.unwrap();
                let tasks: Vec<_> = (0..20)
                    .map(|i| {
                        let (group, write) = (group.clone(), write.clone());
                        let unit = if i == odd {
                            Insert {
                                key: key.to_owned(),
                                undo,
                            }
                        } else {
                            Insert {
                                key: format!("{prefix}{i:02}"),
                                undo: false,
                            }
                        };
                        tokio::spawn(async move { group.run(&write, unit).await })
                    })
                    .collect();
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                drop(held);
                let mut answers = Vec::new();
                for task in tasks {
                    answers.push(task.await.unwrap());
                }
                answers
            }
        };
        let answers = mixed("b", 13, "undone", true).await;
        for (i, answer) in answers.into_iter().enumerate() {
            let expected = if i == 13 {
                "undone".to_owned()
            } else {
                format!("b{i:02}")
            };
            assert_eq!(answer.unwrap(), expected);
        }
        let answers = mixed("c", 7, "taken", false).await;
        for (i, answer) in answers.into_iter().enumerate() {
            if i == 7 {
                assert!(matches!(answer, Err(StoreError::Conflict(_))), "{answer:?}");
            } else {
                assert_eq!(answer.unwrap(), format!("c{i:02}"));
            }
        }
        let keys = keys(&write).await;
        assert_eq!(keys.len(), 41 + 19 + 19, "{keys:?}");
        assert!(!keys.contains(&"undone".to_owned()));
        assert_eq!(keys.iter().filter(|k| *k == "taken").count(), 1);
    }
}
