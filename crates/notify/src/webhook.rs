//! Webhooks: generic JSON or Slack-compatible, signed with HMAC-SHA256.

use std::fmt;
use std::time::SystemTime;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderValue};

use crate::email::error_chain;
use crate::signature::{SIGNATURE_HEADER, sign};
use crate::{Channel, ConfigError, IDEMPOTENCY_HEADER, Message, SendError, TIMEOUT};

/// What a [`Webhook`] posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFormat {
    /// [`Message::json`], or `{"subject", "text", "idempotency_key"}` when it is `None`.
    Json,
    /// `{"text": Message::text}`, as Slack (and Mattermost, Rocket.Chat, ...) incoming
    /// webhooks expect.
    Slack,
}

/// POSTs [`Message`]s to the URL in [`Message::to`].
///
/// Each request carries `Content-Type: application/json`, [`IDEMPOTENCY_HEADER`] and
/// [`SIGNATURE_HEADER`] (`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, see
/// [`crate::signature`]). Redirects are not followed (a POST must not silently become a GET):
/// a 3xx answer is a permanent failure naming the new location. The whole request, connection
/// included, waits at most [`TIMEOUT`].
#[derive(Clone)]
pub struct Webhook {
    client: reqwest::Client,
    secret: Vec<u8>,
    format: WebhookFormat,
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl Webhook {
    /// A webhook channel in `format`, signing with `secret`.
    pub fn new(secret: impl Into<Vec<u8>>, format: WebhookFormat) -> Result<Self, ConfigError> {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Heliograph/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConfigError::HttpClient(e.to_string()))?;
        Ok(Self {
            client,
            secret: secret.into(),
            format,
        })
    }

    /// A generic JSON webhook channel.
    pub fn json(secret: impl Into<Vec<u8>>) -> Result<Self, ConfigError> {
        Self::new(secret, WebhookFormat::Json)
    }

    /// A Slack-compatible webhook channel (`{"text": …}`).
    pub fn slack(secret: impl Into<Vec<u8>>) -> Result<Self, ConfigError> {
        Self::new(secret, WebhookFormat::Slack)
    }

    /// The format this channel posts.
    pub fn format(&self) -> WebhookFormat {
        self.format
    }

    /// The exact bytes posted for `message` (the bytes that are signed).
    pub fn body(&self, message: &Message) -> Vec<u8> {
        let value = match (self.format, &message.json) {
            (WebhookFormat::Slack, _) => serde_json::json!({ "text": message.text }),
            (WebhookFormat::Json, Some(json)) => json.clone(),
            (WebhookFormat::Json, None) => serde_json::json!({
                "subject": message.subject,
                "text": message.text,
                "idempotency_key": message.idempotency_key,
            }),
        };
        // Serialising a `Value` cannot fail.
        serde_json::to_vec(&value).unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl Channel for Webhook {
    async fn send(&self, message: &Message) -> Result<(), SendError> {
        let url = url::Url::parse(message.to.trim())
            .map_err(|e| SendError::Permanent(format!("invalid webhook URL: {e}")))?;
        // The URL may be a secret (Slack's are): errors below never repeat it.
        if !matches!(url.scheme(), "http" | "https") {
            return Err(SendError::Permanent(format!(
                "invalid webhook URL: scheme {:?} is not http or https",
                url.scheme()
            )));
        }
        let key = HeaderValue::from_str(&message.idempotency_key).map_err(|_| {
            SendError::Permanent("the idempotency key is not a valid header value".into())
        })?;
        let body = self.body(message);
        let signature = sign(&self.secret, SystemTime::now(), &body);
        let response = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .header(IDEMPOTENCY_HEADER, key)
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                // Slack-style webhook URLs embed a token: keep the URL out of the error text,
                // which is stored and shown on the incident page.
                let e = e.without_url();
                let text = error_chain(&e);
                if e.is_builder() {
                    SendError::Permanent(format!("webhook request: {text}"))
                } else if e.is_timeout() {
                    SendError::Temporary(format!("webhook timed out: {text}"))
                } else {
                    SendError::Temporary(format!("webhook: {text}"))
                }
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned);
        let snippet: String = response
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect();
        let mut reason = format!("webhook answered {status}");
        if let Some(location) = location.filter(|_| status.is_redirection()) {
            reason.push_str(&format!(" (redirect to {location}; use that URL)"));
        }
        if !snippet.trim().is_empty() {
            reason.push_str(": ");
            reason.push_str(snippet.trim());
        }
        Err(if is_temporary_status(status) {
            SendError::Temporary(reason)
        } else {
            SendError::Permanent(reason)
        })
    }
}

/// 408 Request Timeout, 429 Too Many Requests and every 5xx may pass later; other answers
/// (redirects, 4xx) will not change by retrying.
fn is_temporary_status(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(json: Option<serde_json::Value>) -> Message {
        Message {
            to: "https://hooks.example.com/x".into(),
            subject: "[SEV2] #7 Vector DB latency".into(),
            text: "Vector DB latency p99 > 2 s".into(),
            html: None,
            json,
            idempotency_key: "k1".into(),
        }
    }

    #[test]
    fn status_classification() {
        for code in [500, 502, 503, 504, 408, 429] {
            assert!(
                is_temporary_status(StatusCode::from_u16(code).expect("code")),
                "{code}"
            );
        }
        for code in [301, 302, 400, 401, 403, 404, 410, 413, 422] {
            assert!(
                !is_temporary_status(StatusCode::from_u16(code).expect("code")),
                "{code}"
            );
        }
    }

    #[test]
    fn bodies() {
        let slack = Webhook::slack("s").expect("client");
        let json: serde_json::Value =
            serde_json::from_slice(&slack.body(&message(Some(serde_json::json!({"a": 1})))))
                .expect("json");
        assert_eq!(
            json,
            serde_json::json!({"text": "Vector DB latency p99 > 2 s"})
        );

        let generic = Webhook::json("s").expect("client");
        let json: serde_json::Value =
            serde_json::from_slice(&generic.body(&message(Some(serde_json::json!({"a": 1})))))
                .expect("json");
        assert_eq!(json, serde_json::json!({"a": 1}));
        let json: serde_json::Value =
            serde_json::from_slice(&generic.body(&message(None))).expect("json");
        assert_eq!(json["subject"], "[SEV2] #7 Vector DB latency");
        assert_eq!(json["idempotency_key"], "k1");
    }

    #[tokio::test]
    async fn invalid_urls_are_permanent() {
        let hook = Webhook::json("s").expect("client");
        for to in [
            "not a url",
            "ftp://example.com/x",
            "mailto:ana@example.com",
            "",
        ] {
            let err = hook
                .send(&Message {
                    to: to.into(),
                    ..message(None)
                })
                .await
                .expect_err("invalid");
            assert!(matches!(err, SendError::Permanent(_)), "{to}: {err:?}");
        }
    }

    #[tokio::test]
    async fn a_refused_connection_is_temporary() {
        // Bind then drop a listener: nothing listens on that port afterwards.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let err = Webhook::json("s")
            .expect("client")
            .send(&Message {
                to: format!("http://127.0.0.1:{port}/services/T0/B0/SECRET"),
                ..message(None)
            })
            .await
            .expect_err("refused");
        assert!(err.is_temporary(), "{err:?}");
        assert!(
            !err.reason().contains("SECRET"),
            "the URL is a secret: {err:?}"
        );
    }
}
