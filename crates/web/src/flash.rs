//! One-shot messages shown on the next page ("Team saved."), carried in a short-lived cookie.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};

const FLASH_COOKIE: &str = "hg_flash";

/// A message for the next page.
#[derive(Debug, Clone)]
pub struct Flash {
    /// `success` or `error`; used as a CSS class.
    pub kind: &'static str,
    pub message: String,
}

/// Redirects (303) to `to`, showing `message` there.
pub fn redirect_with(to: &str, kind: &'static str, message: impl Into<String>) -> Response {
    let value = format!("{kind}|{}", message.into());
    let encoded: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
    let cookie = Cookie::build((FLASH_COOKIE, encoded))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .build();
    let mut response = Redirect::to(to).into_response();
    if let Ok(value) = cookie.to_string().parse() {
        response
            .headers_mut()
            .append(axum::http::header::SET_COOKIE, value);
    }
    response
}

/// Moves a pending flash message into the request of the next page and clears the cookie.
pub async fn take(mut request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let is_page = request.method() == axum::http::Method::GET
        && !path.starts_with("/static/")
        && !path.starts_with("/api/");
    let jar = CookieJar::from_headers(request.headers());
    let pending = jar.get(FLASH_COOKIE).map(|c| c.value().to_owned());
    let mut taken = false;
    if let (true, Some(raw)) = (is_page, pending) {
        let decoded: String = url::form_urlencoded::parse(format!("v={raw}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        if let Some((kind, message)) = decoded.split_once('|') {
            let kind = if kind == "success" {
                "success"
            } else {
                "error"
            };
            request.extensions_mut().insert(Flash {
                kind,
                message: message.chars().take(500).collect(),
            });
        }
        taken = true;
    }
    let mut response = next.run(request).await;
    if taken {
        let clear = Cookie::build((FLASH_COOKIE, ""))
            .path("/")
            .max_age(crate::auth::time_duration(0))
            .build();
        if let Ok(value) = clear.to_string().parse() {
            response
                .headers_mut()
                .append(axum::http::header::SET_COOKIE, value);
        }
    }
    response
}
