//! Reading fields out of a parsed JSON object while collecting every problem, PagerDuty-style.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::{AlertSeverity, InvalidEvent, MAX_ERRORS, MAX_PAYLOAD_BYTES, MAX_SUMMARY_CHARS};

/// Checks the size, parses the JSON and insists on an object at the top.
pub(crate) fn read_object(bytes: &[u8]) -> Result<Map<String, Value>, InvalidEvent> {
    if bytes.len() > MAX_PAYLOAD_BYTES {
        return Err(InvalidEvent::invalid(vec![format!(
            "Event payload is too large (should be at most {MAX_PAYLOAD_BYTES} bytes, got {})",
            bytes.len()
        )]));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(InvalidEvent::unrecognized(format!(
            "Event must be a JSON object, got {}",
            type_name(&other)
        ))),
        Err(e) => Err(InvalidEvent::unrecognized(format!("JSON parse error: {e}"))),
    }
}

/// A value for an error message: JSON-quoted (so control characters show escaped), cut at 40
/// characters.
pub(crate) fn quote(s: &str) -> String {
    const MAX: usize = 40;
    let mut cut: String = s.chars().take(MAX).collect();
    if s.chars().nth(MAX).is_some() {
        cut.push('…');
    }
    serde_json::to_string(&cut).unwrap_or_else(|_| "\"?\"".to_owned())
}

/// "a string", "an object", …: what a value is, for error messages.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Invisible characters that reorder text (bidirectional embeddings, overrides and isolates).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
}

/// One line of text: control characters become spaces, whitespace runs collapse, ends are
/// trimmed, bidirectional controls are dropped.
pub(crate) fn clean_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        if is_bidi_control(c) {
            continue;
        }
        if c.is_control() || c.is_whitespace() {
            space = !out.is_empty();
            continue;
        }
        if space {
            out.push(' ');
            space = false;
        }
        out.push(c);
    }
    out
}

/// Cuts `s` to at most `max` characters, ending with "…" when something was cut.
pub(crate) fn truncate(s: String, max: usize) -> String {
    match s.char_indices().nth(max.saturating_sub(1)) {
        Some((at, _)) if s.chars().nth(max).is_some() => {
            let mut cut = s[..at].to_owned();
            cut.push('…');
            cut
        }
        _ => s,
    }
}

/// Whether `s` is an absolute `http://` or `https://` URL with a host and no spaces.
pub(crate) fn is_http_url(s: &str) -> bool {
    let lower = s.get(..8).unwrap_or(s).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &s[8..]
    } else if lower.starts_with("http://") {
        &s[7..]
    } else {
        return false;
    };
    !rest.is_empty()
        && !rest.starts_with('/')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// An ISO 8601 date-time with an offset: RFC 3339 (`2015-07-17T08:42:58.315Z`,
/// `…+00:00`) or the basic offset form of PagerDuty's own examples (`…315+0000`).
pub(crate) fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z"]
        .iter()
        .find_map(|f| DateTime::parse_from_str(s, f).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// Collects error lines while fields are read; absent and `null` fields read as `None`.
#[derive(Default)]
pub(crate) struct Check {
    errors: Vec<String>,
}

impl Check {
    /// Records one problem.
    pub(crate) fn error(&mut self, line: String) {
        self.errors.push(line);
    }

    /// Records "'path' is missing or blank".
    pub(crate) fn missing(&mut self, path: &str) {
        self.error(format!("'{path}' is missing or blank"));
    }

    /// Records "'path' must be X, got Y".
    fn wrong_type(&mut self, path: &str, want: &str, got: &Value) {
        self.error(format!("'{path}' must be {want}, got {}", type_name(got)));
    }

    /// A string field as sent (`None` if absent, null, or not a string, the last recorded).
    pub(crate) fn string<'a>(&mut self, value: Option<&'a Value>, path: &str) -> Option<&'a str> {
        match value {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(other) => {
                self.wrong_type(path, "a string", other);
                None
            }
        }
    }

    /// An object field (`None` if absent, null, or not an object, the last recorded).
    pub(crate) fn object<'a>(
        &mut self,
        value: Option<&'a Value>,
        path: &str,
    ) -> Option<&'a Map<String, Value>> {
        match value {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(m),
            Some(other) => {
                self.wrong_type(path, "an object", other);
                None
            }
        }
    }

    /// An array field (`None` if absent, null, or not an array, the last recorded).
    pub(crate) fn array<'a>(
        &mut self,
        value: Option<&'a Value>,
        path: &str,
    ) -> Option<&'a Vec<Value>> {
        match value {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => Some(a),
            Some(other) => {
                self.wrong_type(path, "an array", other);
                None
            }
        }
    }

    /// A one-line text field, cleaned (see the crate docs); blank reads as `None`.
    pub(crate) fn line(&mut self, value: Option<&Value>, path: &str) -> Option<String> {
        self.string(value, path)
            .map(clean_line)
            .filter(|s| !s.is_empty())
    }

    /// Like [`Check::line`], but absence is an error when `required`.
    pub(crate) fn required_line(
        &mut self,
        value: Option<&Value>,
        path: &str,
        required: bool,
    ) -> Option<String> {
        let before = self.errors.len();
        let line = self.line(value, path);
        if line.is_none() && required && self.errors.len() == before {
            self.missing(path);
        }
        line
    }

    /// A summary: a line of at most [`MAX_SUMMARY_CHARS`] characters.
    pub(crate) fn summary(
        &mut self,
        value: Option<&Value>,
        path: &str,
        required: bool,
    ) -> Option<String> {
        let summary = self.required_line(value, path, required)?;
        let chars = summary.chars().count();
        if chars > MAX_SUMMARY_CHARS {
            self.error(format!(
                "Length of '{path}' is too long (should be at most {MAX_SUMMARY_CHARS} characters, got {chars})"
            ));
            return None;
        }
        Some(summary)
    }

    /// An identifier: trimmed, at most `max` characters, no control characters; blank is `None`.
    pub(crate) fn key(&mut self, value: Option<&Value>, path: &str, max: usize) -> Option<String> {
        let key = self.string(value, path)?.trim();
        if key.is_empty() {
            return None;
        }
        let chars = key.chars().count();
        if chars > max {
            self.error(format!(
                "Length of '{path}' is too long (should be at most {max} characters, got {chars})"
            ));
            return None;
        }
        if key.chars().any(char::is_control) {
            self.error(format!("'{path}' must not contain control characters"));
            return None;
        }
        Some(key.to_owned())
    }

    /// One of the four severities; absence is an error when `required`.
    pub(crate) fn severity(
        &mut self,
        value: Option<&Value>,
        path: &str,
        required: bool,
    ) -> Option<AlertSeverity> {
        let before = self.errors.len();
        let Some(s) = self
            .string(value, path)
            .map(str::trim)
            .filter(|s| !s.is_empty())
        else {
            if required && self.errors.len() == before {
                self.missing(path);
            }
            return None;
        };
        match s.parse() {
            Ok(severity) => Some(severity),
            Err(_) => {
                self.error(format!(
                    "'{path}' is invalid (must be one of the following: 'critical', 'error', 'warning' or 'info'), got {}",
                    quote(s)
                ));
                None
            }
        }
    }

    /// An optional `http(s)://` URL.
    pub(crate) fn url(&mut self, value: Option<&Value>, path: &str) -> Option<String> {
        let url = self.string(value, path)?.trim();
        if url.is_empty() {
            return None;
        }
        if !is_http_url(url) {
            self.error(format!(
                "'{path}' is invalid (must be an http:// or https:// URL), got {}",
                quote(url)
            ));
            return None;
        }
        Some(url.to_owned())
    }

    /// Like [`Check::url`], but absence is an error.
    pub(crate) fn required_url(&mut self, value: Option<&Value>, path: &str) -> Option<String> {
        let before = self.errors.len();
        let url = self.url(value, path);
        if url.is_none() && self.errors.len() == before {
            self.missing(path);
        }
        url
    }

    /// An optional ISO 8601 timestamp with an offset.
    pub(crate) fn timestamp(&mut self, value: Option<&Value>, path: &str) -> Option<DateTime<Utc>> {
        let s = self.string(value, path)?.trim();
        if s.is_empty() {
            return None;
        }
        let parsed = parse_timestamp(s);
        if parsed.is_none() {
            self.error(format!(
                "'{path}' is invalid (must be an ISO 8601 date-time with a time zone offset, e.g. 2015-07-17T08:42:58.315Z), got {}",
                quote(s)
            ));
        }
        parsed
    }

    /// Links: `[{href, text}]`, href required.
    pub(crate) fn links(&mut self, value: Option<&Value>, path: &str) -> Vec<crate::Link> {
        let mut links = Vec::new();
        for (i, item) in self.array(value, path).into_iter().flatten().enumerate() {
            let at = format!("{path}[{i}]");
            let Some(obj) = self.required_object(Some(item), &at) else {
                continue;
            };
            let href = self.required_url(obj.get("href"), &format!("{at}.href"));
            let text = self.line(obj.get("text"), &format!("{at}.text"));
            if let Some(href) = href {
                links.push(crate::Link { href, text });
            }
        }
        links
    }

    /// Images: `[{src, href, alt}]`, src required.
    pub(crate) fn images(&mut self, value: Option<&Value>, path: &str) -> Vec<crate::Image> {
        let mut images = Vec::new();
        for (i, item) in self.array(value, path).into_iter().flatten().enumerate() {
            let at = format!("{path}[{i}]");
            let Some(obj) = self.required_object(Some(item), &at) else {
                continue;
            };
            let src = self.required_url(obj.get("src"), &format!("{at}.src"));
            let href = self.url(obj.get("href"), &format!("{at}.href"));
            let alt = self.line(obj.get("alt"), &format!("{at}.alt"));
            if let Some(src) = src {
                images.push(crate::Image { src, href, alt });
            }
        }
        images
    }

    /// An object that must be there (an array element, say).
    fn required_object<'a>(
        &mut self,
        value: Option<&'a Value>,
        path: &str,
    ) -> Option<&'a Map<String, Value>> {
        let before = self.errors.len();
        let obj = self.object(value, path);
        if obj.is_none() && self.errors.len() == before {
            self.missing(path);
        }
        obj
    }

    /// How many problems were recorded so far.
    pub(crate) fn len(&self) -> usize {
        self.errors.len()
    }

    /// `Ok(value)` if no problem was recorded, else every problem (at most [`MAX_ERRORS`] lines).
    pub(crate) fn finish<T>(mut self, value: T) -> Result<T, InvalidEvent> {
        if self.errors.is_empty() {
            return Ok(value);
        }
        if self.errors.len() > MAX_ERRORS {
            let more = self.errors.len() - (MAX_ERRORS - 1);
            self.errors.truncate(MAX_ERRORS - 1);
            self.errors.push(format!("… and {more} more errors"));
        }
        Err(InvalidEvent::invalid(self.errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_line_flattens_controls_and_bidi() {
        assert_eq!(
            clean_line("  Disk\n\tfull  on\u{0}db1 "),
            "Disk full on db1"
        );
        assert_eq!(clean_line("a\u{202E}b\u{2066}c"), "abc");
        assert_eq!(clean_line("\n\r\t "), "");
        assert_eq!(clean_line("ünïcødé 🚨"), "ünïcødé 🚨");
    }

    #[test]
    fn truncate_counts_characters() {
        assert_eq!(truncate("abcdef".into(), 4), "abc…");
        assert_eq!(truncate("abcd".into(), 4), "abcd");
        assert_eq!(truncate("ééééé".into(), 3), "éé…");
        assert_eq!(truncate(String::new(), 3), "");
    }

    #[test]
    fn urls_must_be_http_with_a_host() {
        assert!(is_http_url("https://example.com/"));
        assert!(is_http_url("HTTP://example.com"));
        assert!(!is_http_url("javascript:alert(1)"));
        assert!(!is_http_url("https://"));
        assert!(!is_http_url("https:///path"));
        assert!(!is_http_url("https://exa mple.com"));
        assert!(!is_http_url("/relative"));
        assert!(!is_http_url("ht"));
        assert!(!is_http_url("éééééééé"));
    }

    #[test]
    fn timestamps_in_the_forms_senders_use() {
        let want = DateTime::parse_from_rfc3339("2015-07-17T08:42:58.315Z").unwrap();
        for s in [
            "2015-07-17T08:42:58.315Z",
            "2015-07-17T08:42:58.315+00:00",
            "2015-07-17T08:42:58.315+0000",
            "2015-07-17T10:42:58.315+0200",
            "2015-07-17 08:42:58.315+00:00",
        ] {
            assert_eq!(parse_timestamp(s), Some(want.with_timezone(&Utc)), "{s}");
        }
        assert!(parse_timestamp("2015-07-17T08:42:58+0000").is_some());
        assert!(
            parse_timestamp("2015-07-17T08:42:58").is_none(),
            "no offset"
        );
        assert!(parse_timestamp("yesterday").is_none());
        assert!(parse_timestamp("1437122578").is_none());
    }

    #[test]
    fn quote_escapes_and_cuts() {
        assert_eq!(quote("fatal"), "\"fatal\"");
        assert_eq!(quote("a\nb"), "\"a\\nb\"");
        assert_eq!(quote(&"x".repeat(50)), format!("\"{}…\"", "x".repeat(40)));
    }

    #[test]
    fn errors_are_capped() {
        let mut check = Check::default();
        for i in 0..(MAX_ERRORS + 10) {
            check.error(format!("e{i}"));
        }
        let err = check.finish(()).unwrap_err();
        assert_eq!(err.errors.len(), MAX_ERRORS);
        assert_eq!(err.errors.last().unwrap(), "… and 11 more errors");
    }
}
