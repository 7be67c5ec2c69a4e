//! Delivery of notifications that are already rendered: email over SMTP and signed JSON (or
//! Slack-compatible) webhooks, behind one small [`Channel`] trait.
//!
//! This crate knows nothing of incidents or the database. The engine renders a [`Message`],
//! hands it to a channel, and records the outcome: `Ok(())`, or a [`SendError`] that says
//! whether trying again later may help ([`SendError::Temporary`]) or not
//! ([`SendError::Permanent`]).
//!
//! - [`Email`] sends with lettre over pooled SMTP connections without Nagle's delay, configured from
//!   `HELIOGRAPH_SMTP_URL` (`smtp://host:port`, `smtps://user:pass@host:465`,
//!   `smtp://host:587?tls=required`); [`email_channel`] returns [`Disabled`] when it is unset.
//! - [`Webhook`] POSTs JSON signed with an HMAC-SHA256 header (see [`signature`]) that
//!   receivers check with [`verify_signature`].
//!
//! With the `test-support` feature, [`testing`] offers a real SMTP server (Debian's
//! `python3-aiosmtpd`) and an in-process webhook receiver for tests.

#![deny(unsafe_code)]

mod email;
pub mod signature;
mod smtp;
#[cfg(feature = "test-support")]
pub mod testing;
mod webhook;

use std::sync::Arc;

pub use email::{DEFAULT_FROM, Disabled, Email, email_channel};
pub use signature::{SIGNATURE_HEADER, sign, verify_signature};
pub use webhook::{Webhook, WebhookFormat};

/// The header carrying [`Message::idempotency_key`] on every email and webhook, so that a
/// receiver can recognise a message delivered twice (e.g. after a lost acknowledgement).
pub const IDEMPOTENCY_HEADER: &str = "X-Heliograph-Idempotency-Key";

/// How long a channel waits to connect, or for one SMTP reply or HTTP response.
pub const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// One rendered notification, ready to send.
///
/// A channel uses the fields that suit it: email uses `subject`, `text` and `html`; a generic
/// webhook posts `json` (or, if absent, a small JSON document made of the other fields); a
/// Slack webhook posts `{"text": text}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// An email address (`Ana <ana@example.com>` or `ana@example.com`) or a webhook URL.
    pub to: String,
    /// The email subject, e.g. `[SEV1] #42 LLM gateway 5xx > 20%`.
    pub subject: String,
    /// The plain-text body; also the Slack message.
    pub text: String,
    /// An HTML alternative of `text`, for email.
    pub html: Option<String>,
    /// The body of a generic webhook.
    pub json: Option<serde_json::Value>,
    /// Names this notification uniquely and stays the same on every retry; sent as
    /// [`IDEMPOTENCY_HEADER`] (and, for email, folded into the `Message-ID`).
    pub idempotency_key: String,
}

/// Why a message was not delivered, classified for the retry policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Trying again later may succeed: connection refused, timeout, SMTP 4xx, HTTP 5xx, 408
    /// or 429.
    #[error("temporary failure: {0}")]
    Temporary(String),
    /// Trying again will not help: SMTP 5xx (e.g. recipient rejected), HTTP 4xx other than
    /// 408 and 429, an invalid address or URL, or a channel that is not configured.
    #[error("permanent failure: {0}")]
    Permanent(String),
}

impl SendError {
    /// Whether the delivery should be retried (with backoff).
    pub fn is_temporary(&self) -> bool {
        matches!(self, SendError::Temporary(_))
    }

    /// The human-readable reason, without the classification prefix.
    pub fn reason(&self) -> &str {
        match self {
            SendError::Temporary(reason) | SendError::Permanent(reason) => reason,
        }
    }
}

/// A channel configuration that cannot work; reported at startup rather than per message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `HELIOGRAPH_SMTP_URL` is not an `smtp://` or `smtps://` URL lettre understands.
    #[error("invalid HELIOGRAPH_SMTP_URL: {0}")]
    SmtpUrl(String),
    /// `HELIOGRAPH_SMTP_FROM` is not a mailbox such as `Heliograph <pager@example.com>`.
    #[error("invalid HELIOGRAPH_SMTP_FROM {0:?}: {1}")]
    SmtpFrom(String, String),
    /// The HTTP client for webhooks could not be built.
    #[error("cannot build the webhook HTTP client: {0}")]
    HttpClient(String),
}

/// A way to deliver a [`Message`]: email, a webhook, or a test double.
///
/// Object safe (through `async_trait`), so the engine can hold an `Arc<dyn Channel>` per
/// channel kind and tests can substitute their own.
#[async_trait::async_trait]
pub trait Channel: Send + Sync {
    /// Delivers one message, or says why not. Never panics on bad input.
    async fn send(&self, message: &Message) -> Result<(), SendError>;
}

#[async_trait::async_trait]
impl<C: Channel + ?Sized> Channel for Arc<C> {
    async fn send(&self, message: &Message) -> Result<(), SendError> {
        (**self).send(message).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_error_classification_helpers() {
        let t = SendError::Temporary("connection refused".into());
        let p = SendError::Permanent("550 no such user".into());
        assert!(t.is_temporary());
        assert!(!p.is_temporary());
        assert_eq!(p.reason(), "550 no such user");
        assert_eq!(t.to_string(), "temporary failure: connection refused");
    }
}
