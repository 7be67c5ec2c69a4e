//! End-to-end: health, readiness, metrics, security headers, static files, 404 pages.

mod common;

use common::{TestApp, backends};
use reqwest::StatusCode;

#[tokio::test]
async fn health_metrics_headers_and_static_files() {
    for backend in backends() {
        let app = TestApp::spawn(backend).await;
        let client = reqwest::Client::new();
        assert_eq!(
            client
                .get(app.url("/healthz"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
            "ok"
        );
        assert_eq!(
            client
                .get(app.url("/readyz"))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK,
            "{backend:?}"
        );

        let login = client.get(app.url("/login")).send().await.unwrap();
        let h = login.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'")
                && !csp.contains("unsafe-inline")
                && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "same-origin");
        assert!(h.contains_key("x-request-id"));
        let cookie = h["set-cookie"].to_str().unwrap();
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
            "{cookie}"
        );
        let html = login.text().await.unwrap();
        assert!(!html.contains("<script>"), "no inline script");

        let css = client
            .get(app.url("/static/style.css"))
            .send()
            .await
            .unwrap();
        assert_eq!(css.status(), StatusCode::OK);
        assert!(
            css.headers()["cache-control"]
                .to_str()
                .unwrap()
                .contains("max-age")
        );
        let etag = css.headers()["etag"].clone();
        let again = client
            .get(app.url("/static/style.css"))
            .header("if-none-match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(
            client
                .get(app.url("/static/nope.css"))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::NOT_FOUND
        );

        let missing = client
            .get(app.url("/definitely/not/here"))
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert!(
            missing
                .text()
                .await
                .unwrap()
                .contains("There is nothing at this address.")
        );

        let metrics = client
            .get(app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains(
                r#"heliograph_http_requests_total{method="GET",route="/login",status="200"} 1"#
            ),
            "{metrics}"
        );
        assert!(metrics.contains("heliograph_http_request_duration_seconds_bucket"));

        let openapi: serde_json::Value = client
            .get(app.url("/api/v1/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for path in [
            "/api/v1/users",
            "/api/v1/users/me",
            "/api/v1/users/{id}",
            "/api/v1/teams",
            "/api/v1/teams/{id}",
            "/api/v1/tokens",
        ] {
            assert!(
                openapi["paths"].get(path).is_some(),
                "{path} missing from the OpenAPI document"
            );
        }
        assert!(openapi["components"]["schemas"].get("ErrorBody").is_some());
        app.stop().await;
    }
}
