//! Email over SMTP: lettre builds the mail and speaks SMTP on connections pooled by
//! [`crate::smtp`].

use std::fmt;
use std::sync::Arc;

use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use sha2::{Digest, Sha256};

use crate::smtp::Smtp;
use crate::{Channel, ConfigError, IDEMPOTENCY_HEADER, Message, SendError};

/// The sender used when `HELIOGRAPH_SMTP_FROM` is unset (CONTRACT.md).
pub const DEFAULT_FROM: &str = "Heliograph <heliograph@localhost>";

/// The email channel for the configuration in CONTRACT.md: [`Email`] when `smtp_url`
/// (`HELIOGRAPH_SMTP_URL`) is set, otherwise [`Disabled`], which refuses every message with a
/// permanent error naming the variable, so the notification is recorded as not sent with the
/// reason. `from` is `HELIOGRAPH_SMTP_FROM`, or [`DEFAULT_FROM`] when `None`. Call it inside a
/// Tokio runtime (see [`Email::new`]).
pub fn email_channel(
    smtp_url: Option<&str>,
    from: Option<&str>,
) -> Result<Arc<dyn Channel>, ConfigError> {
    match smtp_url.map(str::trim).filter(|url| !url.is_empty()) {
        Some(url) => Ok(Arc::new(Email::new(url, from.unwrap_or(DEFAULT_FROM))?)),
        None => Ok(Arc::new(Disabled::new(
            "SMTP is not configured (HELIOGRAPH_SMTP_URL)",
        ))),
    }
}

/// Sends [`Message`]s as email through one SMTP server.
///
/// Connections are pooled and reused, with Nagle's algorithm off (see [`crate::smtp`], which
/// also says how long each part of a send may take). With `html`, the mail is `multipart/alternative` (text, then HTML);
/// otherwise plain text. Every mail carries [`IDEMPOTENCY_HEADER`] and a `Message-ID` derived
/// from the idempotency key, so a mail re-sent after an uncertain failure is recognisable as
/// the same page (and threads with it).
#[derive(Clone)]
pub struct Email {
    smtp: Arc<Smtp>,
    from: Mailbox,
}

impl fmt::Debug for Email {
    // The transport holds the SMTP credentials: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Email")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl Email {
    /// Builds the channel from an SMTP URL and a sender.
    ///
    /// `smtp_url` follows lettre: `smtp://host:port` (plain, port 25 by default),
    /// `smtp://user:pass@host:587?tls=required` (STARTTLS required),
    /// `smtp://host?tls=opportunistic`, `smtps://user:pass@host` (TLS from the start, port
    /// 465). TLS uses rustls with the web PKI roots. Nothing connects until the first send.
    pub fn new(smtp_url: &str, from: &str) -> Result<Self, ConfigError> {
        let from: Mailbox = from
            .parse()
            .map_err(|e| ConfigError::SmtpFrom(from.to_owned(), format!("{e}")))?;
        let smtp = Smtp::from_url(smtp_url).map_err(ConfigError::SmtpUrl)?;
        Ok(Self {
            smtp: Arc::new(smtp),
            from,
        })
    }

    /// The sender of every mail.
    pub fn from(&self) -> &Mailbox {
        &self.from
    }

    /// Renders `message` into a MIME mail (public so callers can preview or test rendering).
    pub fn build(&self, message: &Message) -> Result<lettre::Message, SendError> {
        let to: Mailbox = message.to.trim().parse().map_err(|e| {
            SendError::Permanent(format!("invalid email address {:?}: {e}", message.to))
        })?;
        let builder = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(message.subject.as_str())
            .message_id(Some(message_id(
                &message.idempotency_key,
                self.from.email.domain(),
            )))
            .header(IdempotencyKey(message.idempotency_key.clone()));
        let built = match &message.html {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(
                message.text.clone(),
                html.clone(),
            )),
            None => builder
                .header(ContentType::TEXT_PLAIN)
                .body(message.text.clone()),
        };
        built.map_err(|e| SendError::Permanent(format!("cannot build the email: {e}")))
    }
}

#[async_trait::async_trait]
impl Channel for Email {
    async fn send(&self, message: &Message) -> Result<(), SendError> {
        let mail = self.build(message)?;
        self.smtp.send(mail.envelope(), &mail.formatted()).await
    }
}

/// SMTP 5xx replies are permanent (the server said no for good: unknown recipient, refused
/// sender, failed authentication); everything else (4xx, refused or dropped connections,
/// timeouts, TLS trouble) may pass later.
pub(crate) fn classify(error: &lettre::transport::smtp::Error) -> SendError {
    let text = error_chain(error);
    if error.is_permanent() {
        SendError::Permanent(format!("SMTP server refused the mail: {text}"))
    } else if error.is_timeout() {
        SendError::Temporary(format!("SMTP timed out: {text}"))
    } else {
        SendError::Temporary(format!("SMTP: {text}"))
    }
}

pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}

/// `<hg.{readable key}.{hash}@{domain}>`: the same key always gives the same id; the hash
/// keeps ids distinct when sanitising the key made two keys look alike.
fn message_id(idempotency_key: &str, domain: &str) -> String {
    let readable: String = idempotency_key
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let hash = hex::encode(&Sha256::digest(idempotency_key.as_bytes())[..8]);
    format!("<hg.{readable}.{hash}@{domain}>")
}

/// The `X-Heliograph-Idempotency-Key` header for lettre.
#[derive(Debug, Clone)]
struct IdempotencyKey(String);

impl Header for IdempotencyKey {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str(IDEMPOTENCY_HEADER)
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.to_owned()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// A channel that delivers nothing and says why: for a channel that is not configured.
#[derive(Debug, Clone)]
pub struct Disabled {
    reason: String,
}

impl Disabled {
    /// A channel refusing every message with `SendError::Permanent(reason)`.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

#[async_trait::async_trait]
impl Channel for Disabled {
    async fn send(&self, _message: &Message) -> Result<(), SendError> {
        Err(SendError::Permanent(self.reason.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(to: &str, html: Option<&str>) -> Message {
        Message {
            to: to.into(),
            subject: "[SEV1] #42 LLM gateway 5xx > 20%".into(),
            text: "Acknowledge: https://hg.example/a/xyz".into(),
            html: html.map(Into::into),
            json: None,
            idempotency_key: "page:42:1:0:0:7:3".into(),
        }
    }

    fn email() -> Email {
        Email::new("smtp://127.0.0.1:2525", DEFAULT_FROM).expect("valid config")
    }

    #[tokio::test]
    async fn config_errors() {
        assert!(matches!(
            Email::new("http://example.com", DEFAULT_FROM),
            Err(ConfigError::SmtpUrl(_))
        ));
        assert!(matches!(
            Email::new("not a url", DEFAULT_FROM),
            Err(ConfigError::SmtpUrl(_))
        ));
        assert!(matches!(
            Email::new("smtp://localhost", "not an address"),
            Err(ConfigError::SmtpFrom(..))
        ));
        assert!(Email::new("smtps://user:pa%20ss@smtp.example.com", "ops@example.com").is_ok());
        assert!(Email::new("smtp://smtp.example.com:587?tls=required", DEFAULT_FROM).is_ok());
        let debug = format!(
            "{:?}",
            Email::new("smtps://user:hunter2@smtp.example.com", DEFAULT_FROM).expect("valid")
        );
        assert!(!debug.contains("hunter2"), "{debug}");
    }

    #[tokio::test]
    async fn unset_url_gives_a_disabled_channel() {
        let channel = email_channel(None, None).expect("no config is valid");
        let err = channel
            .send(&message("ana@example.com", None))
            .await
            .expect_err("disabled");
        assert_eq!(
            err,
            SendError::Permanent("SMTP is not configured (HELIOGRAPH_SMTP_URL)".into())
        );
        assert!(email_channel(Some("  "), None).is_ok());
    }

    #[tokio::test]
    async fn an_invalid_address_is_permanent_without_connecting() {
        // Port 2525 has nobody listening; the address is refused before any connection.
        let err = email()
            .send(&message("not an address", None))
            .await
            .expect_err("invalid");
        assert!(matches!(err, SendError::Permanent(_)), "{err:?}");
    }

    #[tokio::test]
    async fn renders_headers_and_parts() {
        let mail = email()
            .build(&message(
                "Ana <ana@example.com>",
                Some("<p>Acknowledge</p>"),
            ))
            .expect("renders");
        let raw = String::from_utf8(mail.formatted()).expect("utf-8");
        assert!(raw.contains("To: Ana <ana@example.com>"), "{raw}");
        assert!(
            raw.contains("From: Heliograph <heliograph@localhost>"),
            "{raw}"
        );
        assert!(
            raw.contains("X-Heliograph-Idempotency-Key: page:42:1:0:0:7:3"),
            "{raw}"
        );
        assert!(raw.contains("Message-ID: <hg.page-42-1-0-0-7-3."), "{raw}");
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(raw.contains("text/plain"), "{raw}");
        assert!(raw.contains("text/html"), "{raw}");

        let plain = email()
            .build(&message("ana@example.com", None))
            .expect("renders");
        let raw = String::from_utf8(plain.formatted()).expect("utf-8");
        assert!(!raw.contains("multipart"), "{raw}");
        assert!(raw.contains("Content-Type: text/plain"), "{raw}");
    }

    #[test]
    fn message_ids_are_stable_and_distinct() {
        let a = message_id("page:1", "example.com");
        assert_eq!(a, message_id("page:1", "example.com"));
        assert_ne!(a, message_id("page/1", "example.com"));
        assert!(
            a.starts_with("<hg.page-1.") && a.ends_with("@example.com>"),
            "{a}"
        );
        assert!(message_id(&"x".repeat(500), "d").len() < 120);
    }
}
