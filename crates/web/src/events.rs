//! Live updates: which incident changed, delivered to open browsers by server-sent events.
//!
//! On SQLite (one process) a change is broadcast in-process by the handler that made it. On
//! PostgreSQL the store NOTIFYs `heliograph_incidents` inside the change's transaction and
//! every replica LISTENs, so a change made through replica A reaches browsers on replica B.

use std::time::Duration;

use heliograph_store::{Db, Store};
use tokio::sync::{broadcast, watch};

/// The fan-out of incident changes inside one process.
#[derive(Clone)]
pub struct Events {
    tx: broadcast::Sender<i64>,
    in_process: bool,
    shutdown: watch::Receiver<bool>,
}

impl Events {
    /// Starts listening (PostgreSQL) or prepares the in-process channel (SQLite).
    pub fn start(store: &Store, shutdown: watch::Receiver<bool>) -> Self {
        let (tx, _) = broadcast::channel(1024);
        let in_process = matches!(store.db(), Db::Sqlite { .. });
        if !in_process {
            let store = store.clone();
            let sender = tx.clone();
            let mut stop = shutdown.clone();
            tokio::spawn(async move {
                loop {
                    match store.incident_listener().await {
                        Ok(Some(mut listener)) => loop {
                            tokio::select! {
                                _ = stop.changed() => return,
                                received = listener.recv() => match received {
                                    Ok(Some(number)) => {
                                        let _ = sender.send(number);
                                    }
                                    Ok(None) => {}
                                    Err(err) => {
                                        tracing::warn!(error = %err, "lost the LISTEN connection; reconnecting");
                                        break;
                                    }
                                }
                            }
                        },
                        Ok(None) => return,
                        Err(err) => {
                            tracing::warn!(error = %err, "cannot LISTEN for incident changes")
                        }
                    }
                    tokio::select! {
                        _ = stop.changed() => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            });
        }
        Events {
            tx,
            in_process,
            shutdown,
        }
    }

    /// Announces that an incident changed (on PostgreSQL the NOTIFY already did).
    pub fn changed(&self, number: i64) {
        if self.in_process {
            let _ = self.tx.send(number);
        }
    }

    /// A receiver of every change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<i64> {
        self.tx.subscribe()
    }

    /// Completes when the server is shutting down (so event streams end and shutdown is not
    /// held up by open browsers).
    pub async fn closing(&self) {
        let mut rx = self.shutdown.clone();
        while !*rx.borrow() {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
}
