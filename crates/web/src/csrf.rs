//! CSRF protection for every state-changing form: a random token in an HttpOnly,
//! SameSite=Lax cookie must come back in the form's hidden `csrf` field (double submit).
//! Another site can make a browser post a form, but it can neither read nor set our cookie,
//! so it cannot supply the matching field.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use serde::de::DeserializeOwned;

use crate::{AppError, AppState, auth};

/// The CSRF cookie's name; forms carry the same value in the field `csrf`.
pub const CSRF_COOKIE: &str = "hg_csrf";

/// This request's CSRF token, for rendering into forms.
#[derive(Debug, Clone)]
pub struct CsrfToken(pub String);

impl<S: Send + Sync> FromRequestParts<S> for CsrfToken {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<CsrfToken>()
            .cloned()
            .unwrap_or(CsrfToken(String::new())))
    }
}

/// Makes sure every browser has a CSRF cookie, issuing one with the response when missing.
pub async fn ensure_cookie(
    axum::extract::State(state): axum::extract::State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if path.starts_with("/api/")
        || path.starts_with("/static/")
        || matches!(path, "/healthz" | "/readyz" | "/metrics")
    {
        return next.run(request).await;
    }
    let jar = CookieJar::from_headers(request.headers());
    let existing = jar
        .get(CSRF_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| v.len() >= 32);
    let (token, fresh) = match existing {
        Some(token) => (token, false),
        None => (auth::new_secret(), true),
    };
    request.extensions_mut().insert(CsrfToken(token.clone()));
    let mut response = next.run(request).await;
    if fresh {
        let cookie = Cookie::build((CSRF_COOKIE, token))
            .path("/")
            .http_only(true)
            .secure(state.secure_cookies)
            .same_site(SameSite::Lax)
            .build();
        if let Ok(value) = cookie.to_string().parse() {
            response
                .headers_mut()
                .append(axum::http::header::SET_COOKIE, value);
        }
    }
    response
}

/// A urlencoded form whose `csrf` field matched the cookie. The rest of the body is
/// deserialised into `T`; keep `T`'s fields as strings and validate them in the handler, so
/// that bad input re-renders the form with messages instead of failing here.
pub struct CsrfForm<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequest<AppState> for CsrfForm<T> {
    type Rejection = AppError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let cookie = CookieJar::from_headers(request.headers())
            .get(CSRF_COOKIE)
            .map(|c| c.value().to_owned());
        let is_form = request
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    AppError::BadRequest(
                        "The form is too large to accept (the limit is 1 MiB).".into(),
                    )
                } else {
                    AppError::BadRequest("The form could not be read.".into())
                }
            })?;
        let sent = url::form_urlencoded::parse(&body)
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.into_owned());
        match (cookie, sent) {
            (Some(cookie), Some(sent))
                if !cookie.is_empty() && constant_time_eq(cookie.as_bytes(), sent.as_bytes()) => {}
            _ => return Err(AppError::Csrf),
        }
        if !is_form {
            return Err(AppError::BadRequest(
                "Forms must be sent as application/x-www-form-urlencoded.".into(),
            ));
        }
        serde_html_form::from_bytes(&body)
            .map(CsrfForm)
            .map_err(|e| AppError::BadRequest(format!("The form could not be read: {e}.")))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn compares_exactly() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
