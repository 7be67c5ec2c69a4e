//! Heliograph's web application: pages, the REST API, health and metrics, in one axum router.
//!
//! [`Application::build`] binds the listener (port 0 in tests) and prepares the router; the
//! binary's `serve` runs it until SIGTERM or Ctrl-C. Handlers read like the feature: parse the
//! input, call the store, render. Roles are checked by the extractors each handler names
//! ([`auth::Auth`] for pages, [`api::ApiAuth`] for the API), so a route cannot forget its role.

#![deny(unsafe_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use heliograph_store::Store;
use tokio::net::TcpListener;

pub mod api;
pub mod auth;
mod csrf;
pub mod demo;
mod error;
pub mod events;
mod flash;
pub mod ingest;
pub mod markdown;
mod metrics;
mod middleware;
pub(crate) mod pages;
pub mod policies;
mod router;
pub mod schedules;
mod static_files;
mod views;

pub use error::AppError;

/// Settings from the environment (see CONTRACT.md and `heliograph --help`).
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen, e.g. `127.0.0.1:8080` (`127.0.0.1:0` picks a free port).
    pub bind: SocketAddr,
    /// The public URL of this installation, used in links; `None` means `http://` + bind.
    pub base_url: Option<url::Url>,
    /// SMTP server for email, e.g. `smtp://127.0.0.1:2525`; `None` records mail as not sent.
    pub smtp_url: Option<url::Url>,
    /// The From header of outgoing mail.
    pub smtp_from: String,
    /// Whether this process runs the notification engine (tests may drive it themselves).
    pub run_engine: bool,
    /// Alert events per second each integration key may send (`HELIOGRAPH_INGEST_RATE`).
    pub ingest_rate: f64,
}

impl Config {
    /// Defaults for a local run on `bind`.
    pub fn local(bind: SocketAddr) -> Self {
        Config {
            bind,
            base_url: None,
            smtp_url: None,
            smtp_from: "Heliograph <heliograph@localhost>".into(),
            run_engine: true,
            ingest_rate: ingest::RATE_PER_SECOND,
        }
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// The shared state behind [`AppState`].
pub struct Inner {
    pub store: Store,
    /// Cookies get the Secure flag when the base URL is https.
    pub secure_cookies: bool,
    pub(crate) metrics: metrics::Metrics,
    /// Live incident changes for server-sent events.
    pub events: events::Events,
    /// The public URL of this installation (`HELIOGRAPH_BASE_URL`), for links that leave the
    /// browser: calendar feed URLs.
    pub base_url: url::Url,
    /// Wakes the engine when work was just enqueued (a declared or reopened incident).
    pub engine_wake: Arc<tokio::sync::Notify>,
    /// The engine's counters, for `/metrics`.
    pub engine_stats: heliograph_engine::Stats,
    /// Per-integration rate limits of alert ingestion.
    pub ingest_limiter: ingest::Limiter,
    /// Group commit of alert events (SQLite only; see [`ingest::Batcher`]).
    pub ingest_batcher: Option<ingest::Batcher>,
}

impl Inner {
    /// Tells the engine that work is due now.
    pub fn wake_engine(&self) {
        self.engine_wake.notify_one();
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// A built application: a bound listener and the router that will serve it.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    base_url: url::Url,
    setup_url: Option<String>,
    store: Store,
    shutdown: tokio::sync::watch::Sender<bool>,
    engine: Option<heliograph_engine::Engine>,
}

/// The key of the webhook signing secret in the settings table.
const WEBHOOK_SECRET: &str = "WEBHOOK_SIGNING_SECRET";

/// The channels the engine sends through: email from the SMTP settings, webhooks signed with
/// the installation's webhook secret (made once and kept in the database, so every replica
/// signs alike).
pub async fn channels(
    config: &Config,
    store: &Store,
) -> Result<heliograph_engine::Channels, std::io::Error> {
    let secret = store
        .setting_or_insert(WEBHOOK_SECRET, &auth::new_secret())
        .await
        .map_err(std::io::Error::other)?;
    let email = heliograph_notify::email_channel(
        config.smtp_url.as_ref().map(url::Url::as_str),
        Some(&config.smtp_from),
    )
    .map_err(std::io::Error::other)?;
    let webhook =
        heliograph_notify::Webhook::json(secret.clone()).map_err(std::io::Error::other)?;
    let slack = heliograph_notify::Webhook::slack(secret).map_err(std::io::Error::other)?;
    Ok(heliograph_engine::Channels {
        email,
        webhook: Arc::new(webhook),
        slack: Arc::new(slack),
    })
}

impl Application {
    /// Binds the listener and builds the router over an already migrated store. When the
    /// database has no users yet, creates the one-time setup token (see [`Self::setup_url`]).
    pub async fn build(config: Config, store: Store) -> Result<Application, std::io::Error> {
        let listener = TcpListener::bind(config.bind).await?;
        let local = listener.local_addr()?;
        let base_url = match &config.base_url {
            Some(url) => url.clone(),
            None => url::Url::parse(&format!("http://{local}/")).map_err(std::io::Error::other)?,
        };
        let setup_url = auth::prepare_setup(&store, &base_url)
            .await
            .map_err(std::io::Error::other)?;
        let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
        let engine = heliograph_engine::Engine::new(
            store.clone(),
            channels(&config, &store).await?,
            base_url.as_str(),
            format!("{}:{}", std::process::id(), local),
        );
        let state = AppState(Arc::new(Inner {
            engine_wake: engine.waker(),
            engine_stats: engine.stats(),
            ingest_limiter: ingest::Limiter::new(config.ingest_rate),
            ingest_batcher: (store.db().backend() == heliograph_store::Backend::Sqlite)
                .then(|| ingest::Batcher::start(store.clone())),
            secure_cookies: base_url.scheme() == "https",
            metrics: metrics::Metrics::new(&engine.stats()),
            events: events::Events::start(&store, shutdown_rx),
            store: store.clone(),
            base_url: base_url.clone(),
        }));
        let router = router::build(state);
        Ok(Application {
            listener,
            router,
            base_url,
            setup_url,
            store,
            shutdown,
            engine: config.run_engine.then_some(engine),
        })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The base URL links are built from.
    pub fn base_url(&self) -> &url::Url {
        &self.base_url
    }

    /// The one-time URL at which the first admin is created, when there are no users yet.
    pub fn setup_url(&self) -> Option<&str> {
        self.setup_url.as_deref()
    }

    /// Serves until `shutdown` completes, then finishes the requests in flight.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        let stop = self.shutdown;
        let mut engine_stop = stop.subscribe();
        let engine = self.engine.map(|engine| {
            tokio::spawn(engine.run_until(async move {
                let _ = engine_stop.wait_for(|stopped| *stopped).await;
            }))
        });
        let shutdown = async move {
            shutdown.await;
            // End live event streams so that open browsers do not hold up the shutdown, and
            // stop the engine between jobs (a job cut short runs again after its lease).
            let _ = stop.send(true);
        };
        let result = axum::serve(self.listener, service)
            .with_graceful_shutdown(shutdown)
            .await;
        if let Some(engine) = engine {
            let _ = engine.await;
        }
        self.store.db().close().await;
        result
    }
}
