//! A real Heliograph on a free port over a fresh database, and a cookie-keeping client.

#![allow(dead_code)]

use std::sync::Arc;

use heliograph_domain::{Clock, DisplayName, Role, SystemClock, TimeZone, UserEmail};
use heliograph_store::testdb::TestDatabase;
use heliograph_store::users::{NewUser, User};
use heliograph_store::{Audit, Backend, Db, Store};
use heliograph_web::{Application, Config};

#[allow(unused_imports)]
pub use heliograph_store::testdb::backends;

pub struct TestApp {
    pub base: String,
    pub store: Store,
    pub setup_url: Option<String>,
    pub backend: Backend,
    pub db: Arc<TestDatabase>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl TestApp {
    /// Starts the application on a fresh database of `backend`.
    pub async fn spawn(backend: Backend) -> TestApp {
        let db = Arc::new(TestDatabase::fresh(backend).await);
        Self::spawn_on(backend, db, Arc::new(SystemClock)).await
    }

    /// Starts the application on an existing test database (to restart it).
    pub async fn spawn_on(
        backend: Backend,
        db: Arc<TestDatabase>,
        clock: Arc<dyn Clock>,
    ) -> TestApp {
        Self::spawn_configured(backend, db, clock, |_| {}).await
    }

    /// Starts the application with its configuration adjusted (an SMTP server, say).
    pub async fn spawn_configured(
        backend: Backend,
        db: Arc<TestDatabase>,
        clock: Arc<dyn Clock>,
        configure: impl FnOnce(&mut Config),
    ) -> TestApp {
        let conn = Db::connect(&db.url).await.expect("connect");
        conn.migrate().await.expect("migrate");
        let store = Store::with_clock(conn, clock);
        let mut config = Config::local("127.0.0.1:0".parse().unwrap());
        configure(&mut config);
        let app = Application::build(config, store.clone())
            .await
            .expect("build");
        let base = format!("http://127.0.0.1:{}", app.port());
        let setup_url = app.setup_url().map(str::to_owned);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            app.run_until(async move {
                let _ = stopped.await;
            })
            .await
            .expect("serve");
        });
        TestApp {
            base,
            store,
            setup_url,
            backend,
            db,
            stop: Some(stop),
            handle: Some(handle),
        }
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) -> Arc<TestDatabase> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(handle) = self.handle.take() {
            let _ = handle.await;
        }
        self.db.clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A browser-like client: keeps cookies, does not follow redirects (tests look at them).
    pub fn browser(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    /// A user made directly in the store, with a password.
    pub async fn user(&self, email: &str, role: Role, password: &str) -> User {
        let hash = heliograph_web::auth::hash_password(
            heliograph_domain::Password::parse(password).unwrap(),
        )
        .await
        .unwrap();
        self.store
            .create_user(
                &NewUser {
                    email: UserEmail::parse(email).unwrap(),
                    name: DisplayName::parse(email.split('@').next().unwrap()).unwrap(),
                    time_zone: TimeZone::parse("Europe/London").unwrap(),
                    role,
                    password_hash: Some(hash),
                },
                &Audit::cli(),
            )
            .await
            .unwrap()
    }

    /// A new API token for the user with this email, made directly in the store.
    pub async fn token_for(&self, email: &str) -> String {
        let user = self
            .store
            .credentials(email)
            .await
            .unwrap()
            .expect("the user exists")
            .0;
        let token = heliograph_web::auth::new_api_token();
        let name = heliograph_domain::TokenName::parse("test").unwrap();
        let prefix = heliograph_web::auth::token_prefix(&token);
        self.store
            .create_token(
                user.id,
                &name,
                &heliograph_web::auth::hash_secret(&token),
                &prefix,
                &Audit::cli(),
            )
            .await
            .unwrap();
        token
    }

    /// GETs a page and returns the CSRF token of its first form.
    pub async fn csrf(&self, client: &reqwest::Client, path: &str) -> String {
        let html = client
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        csrf_in(&html).unwrap_or_else(|| panic!("no CSRF field on {path}: {html}"))
    }

    /// Signs in through the login form; returns the response to the POST.
    pub async fn sign_in(
        &self,
        client: &reqwest::Client,
        email: &str,
        password: &str,
    ) -> reqwest::Response {
        let csrf = self.csrf(client, "/login").await;
        client
            .post(self.url("/login"))
            .form(&[
                ("csrf", csrf.as_str()),
                ("email", email),
                ("password", password),
                ("next", "/"),
            ])
            .send()
            .await
            .unwrap()
    }

    /// Actions recorded in the audit log, newest first.
    pub async fn audit_actions(&self) -> Vec<String> {
        let page = self
            .store
            .audit_log(&Default::default(), 1000, None)
            .await
            .unwrap();
        page.items.into_iter().map(|e| e.action).collect()
    }
}

/// The value of the first `name="csrf"` hidden field in a page.
pub fn csrf_in(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf\" value=\"")?;
    let rest = &html[at + "name=\"csrf\" value=\"".len()..];
    Some(rest[..rest.find('"')?].to_owned())
}
