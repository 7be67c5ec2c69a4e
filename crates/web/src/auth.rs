//! Who is asking: sessions, API tokens, passwords, and the role each route needs.

use std::marker::PhantomData;
use std::net::SocketAddr;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use base64::Engine;
use heliograph_domain::{Password, Role};
use heliograph_store::users::User;
use heliograph_store::{Audit, Store, StoreError};
use rand::Rng;

use crate::{AppError, AppState};

pub use crate::pages::{new_api_token, token_prefix};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "hg_session";

/// A random secret: 32 bytes, URL-safe base64.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub use heliograph_domain::hash_secret;

/// Hashes a password with argon2id (default parameters: 19 MiB, 2 passes), off the async runtime.
pub async fn hash_password(password: Password) -> Result<String, AppError> {
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        rand::rng().fill(&mut salt);
        let salt =
            SaltString::encode_b64(&salt).map_err(|e| AppError::Internal(e.to_string().into()))?;
        Argon2::default()
            .hash_password(password.expose().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| AppError::Internal(e.to_string().into()))
    })
    .await
    .map_err(AppError::internal)?
}

/// A hash of a password nobody has, checked when the account does not exist so that a
/// wrong email takes as long as a wrong password.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0Yc1AQEp+kYWPvG2EJpxOI4gmp7kC4Sbh0x2RWDw2Xc";

/// Checks a password against a stored hash (or a dummy when there is none), off the runtime.
pub async fn verify_password(password: String, hash: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| DUMMY_HASH.to_owned());
        let Ok(parsed) = PasswordHash::new(&hash) else {
            return false;
        };
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
            && known
    })
    .await
    .unwrap_or(false)
}

/// On a database with no users, creates the one-time setup token and returns its URL.
pub async fn prepare_setup(
    store: &Store,
    base_url: &url::Url,
) -> Result<Option<String>, StoreError> {
    if store.user_count().await? > 0 {
        return Ok(None);
    }
    let token = new_secret();
    store
        .set_setting(
            heliograph_store::settings::SETUP_TOKEN_HASH,
            &hash_secret(&token),
        )
        .await?;
    let url = base_url
        .join(&format!("setup/{token}"))
        .map(|u| u.to_string())
        .unwrap_or_else(|_| format!("{base_url}setup/{token}"));
    Ok(Some(url))
}

/// Builds the session cookie.
pub(crate) fn session_cookie(value: String, secure: bool) -> Cookie<'static> {
    Cookie::build((SESSION_COOKIE, value))
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .max_age(time_duration(
            heliograph_store::sessions::IDLE_LIFETIME.num_seconds(),
        ))
        .build()
}

pub(crate) fn time_duration(seconds: i64) -> time::Duration {
    time::Duration::seconds(seconds)
}

/// The client's address as seen by this server.
#[derive(Debug, Clone)]
pub struct ClientAddr(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ci| ci.0.ip().to_string()),
        ))
    }
}

/// The signed-in person of a browser request.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub user: User,
    pub session_id: i64,
    pub client_addr: Option<String>,
}

impl CurrentUser {
    /// The audit context for changes this person makes.
    pub fn audit(&self) -> Audit {
        Audit {
            actor_user_id: Some(self.user.id),
            actor: self.user.email.to_string(),
            client_addr: self.client_addr.clone(),
        }
    }
}

/// The signed-in user, if any (for pages that anyone may see, like the sign-in page).
pub struct MaybeUser(pub Option<CurrentUser>);

impl FromRequestParts<AppState> for MaybeUser {
    type Rejection = AppError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(found) = parts.extensions.get::<CurrentUser>() {
            return Ok(MaybeUser(Some(found.clone())));
        }
        let jar = CookieJar::from_headers(&parts.headers);
        let Some(cookie) = jar.get(SESSION_COOKIE) else {
            return Ok(MaybeUser(None));
        };
        let Some((session, user)) = state.store.session(&hash_secret(cookie.value())).await? else {
            return Ok(MaybeUser(None));
        };
        let ClientAddr(client_addr) = ClientAddr::from_request_parts(parts, state)
            .await
            .unwrap_or(ClientAddr(None));
        let current = CurrentUser {
            user,
            session_id: session.id,
            client_addr,
        };
        parts.extensions.insert(current.clone());
        Ok(MaybeUser(Some(current)))
    }
}

/// A role a route needs, as a type, so that the handler's signature says it.
pub trait MinRole: Send + Sync + 'static {
    const ROLE: Role;
}

/// Any signed-in person: viewers read.
pub struct Viewer;
/// Works incidents.
pub struct Responder;
/// Edits teams, schedules, escalation policies and services.
pub struct Manager;
/// Manages users, tokens, settings and the audit log.
pub struct Admin;

impl MinRole for Viewer {
    const ROLE: Role = Role::Viewer;
}
impl MinRole for Responder {
    const ROLE: Role = Role::Responder;
}
impl MinRole for Manager {
    const ROLE: Role = Role::Manager;
}
impl MinRole for Admin {
    const ROLE: Role = Role::Admin;
}

/// A signed-in browser user holding at least role `R`; otherwise the sign-in page (not
/// signed in) or a 403 page that says which role is needed.
pub struct Auth<R: MinRole>(pub CurrentUser, PhantomData<R>);

impl<R: MinRole> std::ops::Deref for Auth<R> {
    type Target = CurrentUser;
    fn deref(&self) -> &CurrentUser {
        &self.0
    }
}

impl<R: MinRole> FromRequestParts<AppState> for Auth<R> {
    type Rejection = AppError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let MaybeUser(user) = MaybeUser::from_request_parts(parts, state).await?;
        let Some(user) = user else {
            let next = if parts.method == axum::http::Method::GET {
                parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_else(|| "/".into())
            } else {
                "/".into()
            };
            return Err(AppError::SignInRequired { next });
        };
        if !user.user.role.allows(R::ROLE) {
            return Err(AppError::Forbidden {
                have: user.user.role,
                needed: R::ROLE,
            });
        }
        Ok(Auth(user, PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_hash_with_argon2id_and_verify() {
        let hash = hash_password(Password::parse("correct horse battery").unwrap())
            .await
            .unwrap();
        assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
        assert!(verify_password("correct horse battery".into(), Some(hash.clone())).await);
        assert!(!verify_password("wrong horse battery".into(), Some(hash)).await);
        assert!(
            !verify_password("anything".into(), None).await,
            "no account never verifies"
        );
        assert!(!verify_password("x".into(), Some("not a phc string".into())).await);
    }

    #[test]
    fn secrets_are_random_and_hashed() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(hash_secret(&a).len(), 64);
        assert_ne!(hash_secret(&a), a);
    }
}
