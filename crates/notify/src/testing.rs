//! Real receivers for tests (feature `test-support`): an SMTP server and a webhook endpoint.
//!
//! [`SmtpSink`] runs Debian's `python3-aiosmtpd` as a child process storing every mail in a
//! temporary maildir, so tests exercise lettre against a real SMTP server, can stop it to
//! simulate an outage and start it again on the same port. [`WebhookSink`] is an axum server
//! on a free port recording every request and able to fail on demand.
//!
//! ```no_run
//! # async fn demo() {
//! use std::time::Duration;
//! use heliograph_notify::testing::{SmtpSink, WebhookSink};
//!
//! let smtp = SmtpSink::start().await;       // HELIOGRAPH_SMTP_URL = smtp.url()
//! // ... make the app send mail ...
//! let mails = smtp.wait_for(1, Duration::from_secs(10)).await;
//! assert_eq!(mails[0].to, ["ana@example.com"]);
//!
//! let hooks = WebhookSink::start().await;   // a contact method's URL = hooks.url()
//! hooks.fail_next(2);                       // the next two requests get a 500
//! # }
//! ```

use std::collections::VecDeque;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};

/// How long [`SmtpSink::start`] and [`SmtpSink::restart`] wait for the server to listen.
const STARTUP: Duration = Duration::from_secs(20);

/// The Python script run as the SMTP server: aiosmtpd's `Mailbox` handler on the given port
/// and maildir. It exits when its standard input closes, which happens when the test process
/// ends however it ends (even killed), so no server outlives the tests.
///
/// With a third argument `log`, mail is not stored: one line per mail, the arrival time
/// (seconds since the epoch) and the subject, is appended to `<dir>/arrivals.log` instead —
/// for load scripts, where writing a maildir file per mail costs this machine's CPU.
const SERVER_SCRIPT: &str = r#"
import sys, time, email.parser
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
class Log:
    def __init__(self, path):
        self.file = open(path, "a", buffering=1)
        self.parser = email.parser.BytesHeaderParser()
    async def handle_DATA(self, server, session, envelope):
        at = time.time()
        subject = self.parser.parsebytes(envelope.content).get("Subject", "")
        self.file.write("%.6f\t%s\n" % (at, " ".join(str(subject).split())))
        return "250 OK"
if len(sys.argv) > 3 and sys.argv[3] == "log":
    handler = Log(sys.argv[2] + "/arrivals.log")
else:
    handler = Mailbox(sys.argv[2])
controller = Controller(handler, hostname="127.0.0.1", port=int(sys.argv[1]))
controller.start()
print("ready", flush=True)
sys.stdin.read()
controller.stop()
"#;

/// A Python interpreter that can import aiosmtpd: `$HELIOGRAPH_TEST_PYTHON`, then `python3`
/// on the PATH, then Debian's `/usr/bin/python3` (a pyenv `python3` on the PATH does not see
/// Debian's `python3-aiosmtpd`).
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let candidates = std::env::var_os("HELIOGRAPH_TEST_PYTHON")
            .map(PathBuf::from)
            .into_iter()
            .chain([PathBuf::from("python3"), PathBuf::from("/usr/bin/python3")]);
        for candidate in candidates {
            let ok = Command::new(&candidate)
                .args(["-c", "import aiosmtpd"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return candidate;
            }
        }
        panic!(
            "the SMTP test server needs Python's aiosmtpd: run `apt-get install -y python3-aiosmtpd` \
             (or set HELIOGRAPH_TEST_PYTHON to a python3 that can `import aiosmtpd`)"
        );
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

/// A real SMTP server (aiosmtpd) on `127.0.0.1`, storing mail in a temporary maildir.
///
/// Killed on drop. Mail stays readable across [`stop`](Self::stop) and
/// [`restart`](Self::restart).
pub struct SmtpSink {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Only log arrivals (see [`SmtpSink::start_logging`]).
    log_only: bool,
}

impl std::fmt::Debug for SmtpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSink")
            .field("port", &self.port)
            .field("running", &self.child.is_some())
            .finish()
    }
}

impl SmtpSink {
    /// Starts a server on a free port and waits until it accepts connections.
    ///
    /// Panics with installation advice if aiosmtpd is missing.
    pub async fn start() -> Self {
        Self::start_mode(false).await
    }

    /// Starts a server that stores no mail and only logs each arrival (time and subject, see
    /// [`SmtpSink::arrivals`]): for load scripts, where a file per mail costs the machine's CPU.
    pub async fn start_logging() -> Self {
        Self::start_mode(true).await
    }

    async fn start_mode(log_only: bool) -> Self {
        let mut dir = tempfile::Builder::new()
            .prefix("heliograph-smtp-")
            .tempdir()
            .expect("temporary directory for the SMTP sink");
        let mut last_error = String::new();
        // Another process may take the free port between our check and the server's bind.
        for _ in 0..5 {
            let mut sink = Self {
                port: free_port(),
                dir,
                child: None,
                log_only,
            };
            match sink.launch().await {
                Ok(()) => return sink,
                Err(e) => {
                    last_error = e;
                    dir = sink.take_dir();
                }
            }
        }
        panic!("the SMTP test server did not start: {last_error}");
    }

    fn take_dir(mut self) -> tempfile::TempDir {
        self.kill();
        // Swap in a throwaway directory so `Drop` has something to clean.
        std::mem::replace(
            &mut self.dir,
            tempfile::tempdir().expect("temporary directory"),
        )
    }

    /// `smtp://127.0.0.1:<port>`: a value for `HELIOGRAPH_SMTP_URL`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The port the server listens on (the same after a restart).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The maildir holding received mail (`new/` has one file per mail).
    pub fn maildir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    /// With [`SmtpSink::start_logging`]: every arrival so far as (when, subject), in order.
    pub fn arrivals(&self) -> Vec<(SystemTime, String)> {
        let log = std::fs::read_to_string(self.dir.path().join("arrivals.log")).unwrap_or_default();
        log.lines()
            .filter_map(|line| {
                let (at, subject) = line.split_once('\t')?;
                let at = Duration::try_from_secs_f64(at.parse().ok()?).ok()?;
                Some((SystemTime::UNIX_EPOCH + at, subject.to_owned()))
            })
            .collect()
    }

    /// Every mail received so far, oldest first.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        let new = self.maildir().join("new");
        let Ok(entries) = std::fs::read_dir(&new) else {
            return Vec::new();
        };
        let mut files: Vec<(SystemTime, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let modified = e.metadata().ok()?.modified().ok()?;
                Some((modified, e.path()))
            })
            .collect();
        files.sort();
        files
            .into_iter()
            .filter_map(|(_, path)| std::fs::read(path).ok())
            .map(|raw| ReceivedMail::parse(&raw))
            .collect()
    }

    /// Waits until at least `n` mails arrived and returns all of them; panics after `timeout`
    /// saying how many came.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let deadline = Instant::now() + timeout;
        loop {
            let mails = self.messages();
            if mails.len() >= n {
                return mails;
            }
            if Instant::now() >= deadline {
                let subjects: Vec<_> = mails.iter().map(|m| m.subject.as_str()).collect();
                panic!(
                    "expected {n} mails within {timeout:?}, got {}: {subjects:?}",
                    mails.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Kills the server (an SMTP outage): connections are refused until
    /// [`restart`](Self::restart). Mail already received stays readable.
    pub fn stop(&mut self) {
        self.kill();
    }

    /// Starts the server again on the same port, after [`stop`](Self::stop).
    pub async fn restart(&mut self) {
        self.kill();
        if let Err(e) = self.launch().await {
            panic!(
                "the SMTP test server did not restart on port {}: {e}",
                self.port
            );
        }
    }

    /// Whether the server is running (not stopped).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    async fn launch(&mut self) -> Result<(), String> {
        let log_path = self.dir.path().join("aiosmtpd.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
        let mut child = Command::new(python())
            .arg("-c")
            .arg(SERVER_SCRIPT)
            .arg(self.port.to_string())
            .arg(if self.log_only {
                self.dir.path().to_path_buf()
            } else {
                self.maildir()
            })
            .args(self.log_only.then_some("log"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", python().display()))?;
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                return Err(format!("aiosmtpd exited with {status}: {log}"));
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("aiosmtpd did not listen within {STARTUP:?}"));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One mail as the SMTP server received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    /// The address in the `From` header.
    pub from: String,
    /// Every envelope recipient (`RCPT TO`), including any not named in the headers.
    pub to: Vec<String>,
    /// The decoded `Subject`.
    pub subject: String,
    /// The first text/plain body, decoded.
    pub text: Option<String>,
    /// The first text/html body, decoded.
    pub html: Option<String>,
    /// Every top-level header as (name, unfolded raw value), in order.
    pub headers: Vec<(String, String)>,
    /// The whole mail as stored.
    pub raw: String,
}

impl ReceivedMail {
    fn parse(raw: &[u8]) -> Self {
        let parsed = mail_parser::MessageParser::default().parse(raw);
        let Some(message) = parsed else {
            return Self {
                from: String::new(),
                to: Vec::new(),
                subject: String::new(),
                text: None,
                html: None,
                headers: Vec::new(),
                raw: String::from_utf8_lossy(raw).into_owned(),
            };
        };
        let headers: Vec<(String, String)> = message
            .headers()
            .iter()
            .map(|h| {
                let value = raw
                    .get(h.offset_start as usize..h.offset_end as usize)
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                (h.name.as_str().to_owned(), unfold(&value))
            })
            .collect();
        let envelope_to = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("X-RcptTo"))
            .map(|(_, value)| {
                value
                    .split(',')
                    .map(|a| a.trim().to_owned())
                    .filter(|a| !a.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        // mail-parser treats a part without a text/plain alternative as text too (it converts
        // HTML); keep only real text/plain here so tests see what was sent.
        let text = message
            .text_bodies()
            .find(|p| p.is_text() && !p.is_text_html())
            .and_then(|p| p.text_contents())
            .map(str::to_owned);
        let html = message
            .html_bodies()
            .find(|p| p.is_text_html())
            .and_then(|p| p.text_contents())
            .map(str::to_owned);
        Self {
            from: message
                .from()
                .and_then(|a| a.first())
                .and_then(|a| a.address())
                .unwrap_or_default()
                .to_owned(),
            to: envelope_to,
            subject: message.subject().unwrap_or_default().to_owned(),
            text,
            html,
            headers,
            raw: String::from_utf8_lossy(raw).into_owned(),
        }
    }

    /// The first header called `name` (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn unfold(value: &str) -> String {
    value
        .split(['\r', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// One HTTP request as [`WebhookSink`] received it.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    /// The request method, e.g. `POST`.
    pub method: String,
    /// The path and query, e.g. `/hook`.
    pub path: String,
    /// Every header as (lower-case name, value), in order.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
    /// The status the sink answered.
    pub status: u16,
}

impl ReceivedRequest {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON; panics if it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "webhook body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

#[derive(Default)]
struct SinkState {
    requests: Vec<ReceivedRequest>,
    /// Statuses for the next requests, used up one per request; then 200.
    script: VecDeque<StatusCode>,
}

/// An in-process HTTP server on `127.0.0.1` recording every request; answers 200 unless
/// told otherwise. Stops on drop.
pub struct WebhookSink {
    addr: SocketAddr,
    state: Arc<Mutex<SinkState>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSink")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl WebhookSink {
    /// Starts the server on a free port (needs a Tokio runtime).
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(SinkState::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the webhook sink");
        let addr = listener.local_addr().expect("webhook sink address");
        let handler_state = Arc::clone(&state);
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let state = Arc::clone(&handler_state);
                async move {
                    let mut state = lock(&state);
                    let status = state.script.pop_front().unwrap_or(StatusCode::OK);
                    state.requests.push(ReceivedRequest {
                        method: method.to_string(),
                        path: uri
                            .path_and_query()
                            .map_or_else(|| uri.path().to_owned(), |p| p.to_string()),
                        headers: headers
                            .iter()
                            .map(|(n, v)| {
                                (
                                    n.as_str().to_owned(),
                                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                )
                            })
                            .collect(),
                        body: body.to_vec(),
                        status: status.as_u16(),
                    });
                    (
                        status,
                        if status.is_success() {
                            "ok"
                        } else {
                            "sink says no"
                        },
                    )
                }
            },
        );
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, state, task }
    }

    /// `http://127.0.0.1:<port>/hook`; any other path on the same port works as well.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// The address the sink listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far (failed ones included), oldest first.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        lock(&self.state).requests.clone()
    }

    /// The next `n` requests are answered `500 Internal Server Error`.
    pub fn fail_next(&self, n: usize) {
        self.respond_next(n, StatusCode::INTERNAL_SERVER_ERROR);
    }

    /// The next `n` requests are answered with `status` (after any already scheduled).
    pub fn respond_next(&self, n: usize, status: StatusCode) {
        lock(&self.state)
            .script
            .extend(std::iter::repeat_n(status, n));
    }

    /// Waits until at least `n` requests arrived and returns all of them; panics after
    /// `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedRequest> {
        let deadline = Instant::now() + timeout;
        loop {
            let requests = self.requests();
            if requests.len() >= n {
                return requests;
            }
            if Instant::now() >= deadline {
                panic!(
                    "expected {n} webhook requests within {timeout:?}, got {}",
                    requests.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for WebhookSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(state: &Mutex<SinkState>) -> MutexGuard<'_, SinkState> {
    // A panicking test thread must not hide the requests from the others.
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stored_mail() {
        let raw = b"From: Heliograph <pager@example.com>\r\nTo: ana@example.com\r\n\
Subject: =?utf-8?q?=5BSEV1=5D_caf=C3=A9?=\r\nX-Long: a\r\n  b\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b\"\r\n\
X-RcptTo: ana@example.com, bob@example.com\r\n\r\n\
--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nplain body\r\n\
--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>html body</p>\r\n--b--\r\n";
        let mail = ReceivedMail::parse(raw);
        assert_eq!(mail.from, "pager@example.com");
        assert_eq!(mail.to, ["ana@example.com", "bob@example.com"]);
        assert_eq!(mail.subject, "[SEV1] café");
        assert_eq!(mail.text.as_deref().map(str::trim), Some("plain body"));
        assert_eq!(
            mail.html.as_deref().map(str::trim),
            Some("<p>html body</p>")
        );
        assert_eq!(mail.header("x-long"), Some("a b"));
    }
}
