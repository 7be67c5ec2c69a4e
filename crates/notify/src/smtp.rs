//! SMTP connections for [`Email`](crate::Email): lettre speaks SMTP, this module opens and
//! pools the connections so that they can have `TCP_NODELAY`.
//!
//! lettre 0.11.23 writes a mail's content and its closing `.` as two writes on a socket that
//! has Nagle's algorithm on. The `.` then waits for the server to acknowledge the content,
//! and a server with nothing to answer yet delays that acknowledgement: 40 ms on Linux, for
//! every mail, and a connection sends at most ~20 mails a second. lettre has fixed this
//! (lettre PR 1159), but not in a release yet. Until it is, this module connects the TCP
//! socket itself, sets `TCP_NODELAY`, and hands it to lettre's [`AsyncSmtpConnection`], which
//! does all of SMTP as before: EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA. With `smtps://` (TLS
//! from the first byte) lettre still opens the connection itself.
//!
//! The pool works like lettre's: a connection is reused after a `NOOP` shows it still works,
//! one that failed is dropped, and idle ones are closed after [`IDLE_TIMEOUT`].

use std::sync::Mutex;
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, Tokio1Executor};
use tokio::net::TcpStream;

use crate::{SendError, TIMEOUT};

/// How many idle connections are kept for the next mails.
const MAX_IDLE: usize = 16;
/// How long an idle connection may take to answer `NOOP` before another is tried.
const NOOP_TIMEOUT: Duration = Duration::from_secs(2);
/// How long connecting, greeting, STARTTLS and AUTH may take together (each address of the
/// host gets [`TIMEOUT`] to accept the TCP connection).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one mail's commands and the server's replies may take together. A server may
/// take a while to accept the content (virus and spam scanning), and giving up after it has
/// accepted means sending the page again; this stays well inside the engine's lease on the
/// delivery job (120 s).
const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// An idle connection older than this is closed rather than reused.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// One SMTP server and a pool of connections to it.
pub(crate) struct Smtp {
    host: String,
    port: u16,
    tls: Tls,
    hello: ClientId,
    credentials: Option<Credentials>,
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
}

impl Smtp {
    /// The server of a `HELIOGRAPH_SMTP_URL`, read as lettre reads it:
    /// `smtp://[user:pass@]host[:port][/ehlo-name][?tls=required|opportunistic]` (port 25, or
    /// 587 with `tls`) or `smtps://…` (port 465). The error is lettre's (it never repeats the
    /// URL, so no password leaks).
    pub(crate) fn from_url(smtp_url: &str) -> Result<Smtp, String> {
        // lettre checks the URL (and builds nothing that runs).
        AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp_url).map_err(|e| e.to_string())?;
        let url = url::Url::parse(smtp_url).map_err(|e| e.to_string())?;
        let host = url.host_str().ok_or("smtp host undefined")?.to_owned();
        let tls_mode = url
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        let parameters = || TlsParameters::new(host.clone()).map_err(|e| e.to_string());
        let (tls, default_port) = match (url.scheme(), tls_mode.as_deref()) {
            ("smtp", None) => (Tls::None, 25),
            ("smtp", Some("required")) => (Tls::Required(parameters()?), 587),
            ("smtp", Some("opportunistic")) => (Tls::Opportunistic(parameters()?), 587),
            ("smtps", _) => (Tls::Wrapper(parameters()?), 465),
            (scheme, tls) => {
                return Err(format!(
                    "unknown scheme '{scheme}' or tls parameter '{tls:?}'"
                ));
            }
        };
        let hello = match url.path().trim_matches('/') {
            "" => ClientId::default(),
            name => ClientId::Domain(name.to_owned()),
        };
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let credentials = url
            .password()
            .map(|password| Credentials::new(decode(url.username()), decode(password)));
        Ok(Smtp {
            port: url.port().unwrap_or(default_port),
            host,
            tls,
            hello,
            credentials,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Sends one mail on a pooled connection (or a new one): see [`CONNECT_TIMEOUT`] and
    /// [`SEND_TIMEOUT`] for how long each part may take.
    pub(crate) async fn send(&self, envelope: &Envelope, mail: &[u8]) -> Result<(), SendError> {
        let mut conn = self.checkout().await?;
        match tokio::time::timeout(SEND_TIMEOUT, conn.send(envelope, mail)).await {
            Ok(Ok(_)) => {
                self.park(conn);
                Ok(())
            }
            // lettre closes the connection after any failed command (`has_broken`); the check
            // keeps a connection that is still sound, should that change.
            Ok(Err(e)) => {
                if !conn.has_broken() {
                    self.park(conn);
                }
                Err(crate::email::classify(&e))
            }
            Err(_) => Err(SendError::Temporary(
                "SMTP timed out waiting for the server's reply".into(),
            )),
        }
    }

    /// An idle connection that still answers `NOOP`, or a new one.
    async fn checkout(&self) -> Result<AsyncSmtpConnection, SendError> {
        loop {
            let next = {
                let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                // The newest idle connection is the likeliest to be alive; expired ones go.
                idle.retain(|(_, since)| since.elapsed() < IDLE_TIMEOUT);
                idle.pop()
            };
            let Some((mut conn, _)) = next else { break };
            // A connection a firewall dropped silently would never answer: give up on it soon.
            if let Ok(true) = tokio::time::timeout(NOOP_TIMEOUT, conn.test_connected()).await {
                return Ok(conn);
            }
        }
        match tokio::time::timeout(CONNECT_TIMEOUT, self.connect()).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(Connect::Io(e))) => Err(SendError::Temporary(format!(
                "SMTP: cannot connect to {}:{}: {e}",
                self.host, self.port
            ))),
            Ok(Err(Connect::Smtp(e))) => Err(crate::email::classify(&e)),
            Err(_) => Err(SendError::Temporary(format!(
                "SMTP timed out connecting to {}:{}",
                self.host, self.port
            ))),
        }
    }

    fn park(&self, conn: AsyncSmtpConnection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push((conn, Instant::now()));
        }
    }

    /// A new connection, greeted, encrypted as configured, and signed in.
    async fn connect(&self) -> Result<AsyncSmtpConnection, Connect> {
        let mut conn = match &self.tls {
            Tls::Wrapper(parameters) => {
                AsyncSmtpConnection::connect_tokio1(
                    (self.host.as_str(), self.port),
                    Some(TIMEOUT),
                    &self.hello,
                    Some(parameters.clone()),
                    None,
                )
                .await?
            }
            tls => {
                let stream = connect_tcp(&self.host, self.port).await?;
                let mut conn =
                    AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello)
                        .await?;
                match tls {
                    Tls::Required(parameters) => {
                        conn.starttls(parameters.clone(), &self.hello).await?;
                    }
                    Tls::Opportunistic(parameters) if conn.can_starttls() => {
                        conn.starttls(parameters.clone(), &self.hello).await?;
                    }
                    _ => {}
                }
                conn
            }
        };
        if let Some(credentials) = &self.credentials {
            conn.auth(DEFAULT_MECHANISMS, credentials).await?;
        }
        Ok(conn)
    }
}

/// A TCP connection to `host:port` with Nagle's algorithm off, trying each of the host's
/// addresses in turn for at most [`TIMEOUT`] each (as lettre does), so an address that drops
/// packets (a broken IPv6 route) does not use up the time the next one needs.
pub(crate) async fn connect_tcp(host: &str, port: u16) -> std::io::Result<TcpStream> {
    let mut last_error = None;
    for addr in tokio::net::lookup_host((host, port)).await? {
        match tokio::time::timeout(TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Ok(Err(e)) => last_error = Some(e),
            Err(_) => {
                last_error = Some(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("{addr} did not answer within {TIMEOUT:?}"),
                ));
            }
        }
    }
    Err(last_error.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "the host has no address")
    }))
}

enum Connect {
    Io(std::io::Error),
    Smtp(lettre::transport::smtp::Error),
}

impl From<std::io::Error> for Connect {
    fn from(e: std::io::Error) -> Self {
        Connect::Io(e)
    }
}

impl From<lettre::transport::smtp::Error> for Connect {
    fn from(e: lettre::transport::smtp::Error) -> Self {
        Connect::Smtp(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_are_opened_without_nagles_delay() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let stream = connect_tcp("127.0.0.1", port).await.unwrap();
        assert!(stream.nodelay().unwrap());
    }

    #[test]
    fn urls_are_read_as_lettre_reads_them() {
        let plain = Smtp::from_url("smtp://mail.example.com").unwrap();
        assert_eq!((plain.host.as_str(), plain.port), ("mail.example.com", 25));
        assert!(matches!(plain.tls, Tls::None));
        assert!(plain.credentials.is_none());

        let submission =
            Smtp::from_url("smtp://pager%40example.com:p%2Fw@mail.example.com?tls=required")
                .unwrap();
        assert_eq!(submission.port, 587);
        assert!(matches!(submission.tls, Tls::Required(_)));
        assert_eq!(
            submission.credentials,
            Some(Credentials::new("pager@example.com".into(), "p/w".into()))
        );

        let opportunistic =
            Smtp::from_url("smtp://mail.example.com:2525/heliograph.example.com?tls=opportunistic")
                .unwrap();
        assert_eq!(opportunistic.port, 2525);
        assert!(matches!(opportunistic.tls, Tls::Opportunistic(_)));
        assert_eq!(
            opportunistic.hello,
            ClientId::Domain("heliograph.example.com".into())
        );

        let wrapped = Smtp::from_url("smtps://mail.example.com").unwrap();
        assert_eq!(wrapped.port, 465);
        assert!(matches!(wrapped.tls, Tls::Wrapper(_)));

        for bad in [
            "http://mail.example.com",
            "smtp://mail.example.com?tls=maybe",
            "smtp://",
        ] {
            assert!(Smtp::from_url(bad).is_err(), "{bad}");
        }
    }
}
