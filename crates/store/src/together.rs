//! Writes on PostgreSQL sent several to one statement.
//!
//! In a burst of pages, each page is a few writes of the same shape (a declaration, an
//! escalation step, a delivery's outcome). One statement each is a parse, a plan, a commit (a
//! WAL flush) and a round trip per page. A [`Together`] is a task that takes whatever writes
//! of one kind are waiting (up to 64) and sends them as one statement over arrays (`unnest`),
//! which commits on its own; at most two such statements run at once, and the writes that
//! arrive meanwhile go in the next. Each write still stands on its own: the statement says,
//! for each, what it did (an engine's write whose job lease was lost changes nothing). If the
//! statement fails, each write of the group is sent alone, so one bad row does not fail the
//! others. A write is sent whether or not its caller still waits for the answer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, oneshot};

use crate::Result;
use crate::group::BoxFuture;

/// A kind of write that can be sent together.
pub(crate) trait Write: Send + Sync + 'static {
    /// What each write says it did.
    type Answer: Send + 'static;

    /// Writes that must not share a statement (two changes of one row in one statement have
    /// no set order) have the same key; `None` shares with anything.
    fn key(&self) -> Option<i64> {
        None
    }

    /// The writes of `group` (more than one, keys distinct) in one statement; an answer for
    /// each, in the group's order.
    fn together<'a>(
        pool: &'a sqlx::PgPool,
        group: &'a [Self],
    ) -> BoxFuture<'a, Result<Vec<Self::Answer>>>
    where
        Self: Sized;

    /// One write in a statement of its own.
    fn alone<'a>(&'a self, pool: &'a sqlx::PgPool) -> BoxFuture<'a, Result<Self::Answer>>;
}

type Waiting<W> = (W, oneshot::Sender<Result<<W as Write>::Answer>>);

/// The task sending writes of kind `W` for one PostgreSQL pool, started on first use.
pub(crate) struct Together<W: Write> {
    queue: Arc<OnceLock<mpsc::UnboundedSender<Waiting<W>>>>,
    /// Statements that carried more than one write.
    together: Arc<AtomicU64>,
}

impl<W: Write> Clone for Together<W> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
            together: self.together.clone(),
        }
    }
}

impl<W: Write> Default for Together<W> {
    fn default() -> Self {
        Self {
            queue: Arc::default(),
            together: Arc::default(),
        }
    }
}

impl<W: Write> std::fmt::Debug for Together<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Together").finish_non_exhaustive()
    }
}

impl<W: Write> Together<W> {
    /// The most writes in one statement.
    const MOST: usize = 64;
    /// The most statements running at once.
    const RUNNING: usize = 2;

    /// Sends `write`, with others waiting if there are any; what it did.
    pub(crate) async fn send(&self, pool: &sqlx::PgPool, write: W) -> Result<W::Answer> {
        let queue = self
            .queue
            .get_or_init(|| Self::start(pool.clone(), self.together.clone()));
        let (reply, answer) = oneshot::channel();
        match queue.send((write, reply)) {
            Ok(()) => match answer.await {
                Ok(result) => result,
                Err(_) => Err(crate::StoreError::Backend(sqlx::Error::WorkerCrashed)),
            },
            // The task is gone (its runtime shut down): send it here.
            Err(mpsc::error::SendError((write, _))) => write.alone(pool).await,
        }
    }

    /// How many statements carried more than one write.
    pub(crate) fn sent_together(&self) -> u64 {
        self.together.load(Ordering::Relaxed)
    }

    fn start(pool: sqlx::PgPool, together: Arc<AtomicU64>) -> mpsc::UnboundedSender<Waiting<W>> {
        let (queue, mut waiting) = mpsc::unbounded_channel::<Waiting<W>>();
        let running = Arc::new(tokio::sync::Semaphore::new(Self::RUNNING));
        tokio::spawn(async move {
            let mut group = Vec::with_capacity(Self::MOST);
            loop {
                let Ok(permit) = running.clone().acquire_owned().await else {
                    break;
                };
                if waiting.recv_many(&mut group, Self::MOST).await == 0 {
                    break;
                }
                // Its own task, so the next group's statement can run beside this one.
                let group = std::mem::replace(&mut group, Vec::with_capacity(Self::MOST));
                let (pool, together) = (pool.clone(), together.clone());
                tokio::spawn(async move {
                    send_group(&pool, group, &together).await;
                    drop(permit);
                });
            }
        });
        queue
    }
}

/// Sends `group`: the writes with distinct keys in one statement (or each alone if that
/// fails), then the rest one by one.
async fn send_group<W: Write>(pool: &sqlx::PgPool, group: Vec<Waiting<W>>, count: &AtomicU64) {
    let mut keys = std::collections::HashSet::new();
    let (first, rest): (Vec<_>, Vec<_>) = group
        .into_iter()
        .partition(|(w, _)| w.key().is_none_or(|k| keys.insert(k)));
    let mut alone = rest;
    if first.len() > 1 {
        tracing::debug!(writes = first.len(), "writes together");
        let (writes, replies): (Vec<W>, Vec<_>) = first.into_iter().unzip();
        match W::together(pool, &writes).await {
            Ok(answers) => {
                count.fetch_add(1, Ordering::Relaxed);
                for (answer, reply) in answers.into_iter().zip(replies) {
                    let _ = reply.send(Ok(answer));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "writes together failed; each is sent alone");
                alone.splice(0..0, writes.into_iter().zip(replies));
            }
        }
    } else {
        alone.splice(0..0, first);
    }
    for (write, reply) in alone {
        let _ = reply.send(write.alone(pool).await);
    }
}
