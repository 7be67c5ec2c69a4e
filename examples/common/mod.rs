//! What the page benchmarks share: the real server on a free port over a loaded store, and a
//! client signed in through the login form (cookies kept, redirects not followed).

use heliograph_store::Store;
use heliograph_web::{Application, Config};

/// Starts the application over `store` and signs `email` in; returns the base URL and the
/// signed-in client.
pub async fn serve_signed_in(
    store: &Store,
    email: &str,
    password: &str,
) -> (String, reqwest::Client) {
    let app = Application::build(Config::local("127.0.0.1:0".parse().unwrap()), store.clone())
        .await
        .unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until(std::future::pending()));
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = client
        .get(format!("{base}/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = login
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let r = client
        .post(format!("{base}/login"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", email),
            ("password", password),
            ("next", "/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "signing {email} in failed");
    (base, client)
}
