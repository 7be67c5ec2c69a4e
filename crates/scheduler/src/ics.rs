//! RFC 5545 rendering of final shifts, with our own escaping and line folding (the format is
//! small; the tests check the output with an independent parser).

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use crate::model::ParticipantId;
use crate::schedule::{Shift, Source};

/// Renders `shifts` as an iCalendar (RFC 5545) calendar named `calendar_name`: one `VEVENT`
/// per shift that has someone on call (gaps are left out), times in UTC, `SUMMARY` naming the
/// person (via `name_of`) and the schedule.
///
/// UIDs are derived from the shift's start, end and person, scoped by `uid_scope` (e.g.
/// `"schedule-7.heliograph.example"`), so they stay the same across renderings of the same
/// shift. `DTSTAMP` is the shift's start, which keeps the output a pure function of its input.
pub fn render(
    calendar_name: &str,
    shifts: &[Shift],
    name_of: impl Fn(ParticipantId) -> String,
    uid_scope: &str,
) -> String {
    let mut out = String::new();
    line(&mut out, "BEGIN:VCALENDAR");
    line(&mut out, "VERSION:2.0");
    line(&mut out, "PRODID:-//Heliograph//Scheduler//EN");
    line(&mut out, "CALSCALE:GREGORIAN");
    line(&mut out, "METHOD:PUBLISH");
    line(
        &mut out,
        &format!("X-WR-CALNAME:{}", escape_text(calendar_name)),
    );
    for shift in shifts {
        let Some(p) = shift.participant else { continue };
        let name = name_of(p);
        line(&mut out, "BEGIN:VEVENT");
        line(
            &mut out,
            &format!("UID:{}", escape_text(&uid(shift, p, uid_scope))),
        );
        line(&mut out, &format!("DTSTAMP:{}", utc(shift.start)));
        line(&mut out, &format!("DTSTART:{}", utc(shift.start)));
        line(&mut out, &format!("DTEND:{}", utc(shift.end)));
        line(
            &mut out,
            &format!(
                "SUMMARY:{}",
                escape_text(&format!("On call: {name} ({calendar_name})"))
            ),
        );
        let origin = match shift.source {
            Source::Layer(i) => format!("layer {}", i + 1),
            Source::Override(id) => format!("override {id}"),
            Source::None => "nobody".to_owned(),
        };
        line(
            &mut out,
            &format!(
                "DESCRIPTION:{}",
                escape_text(&format!(
                    "{name} is on call for {calendar_name} (from {origin}).\n"
                ))
            ),
        );
        line(&mut out, "TRANSP:TRANSPARENT");
        line(&mut out, "END:VEVENT");
    }
    line(&mut out, "END:VCALENDAR");
    out
}

/// The stable UID [`render`] gives a shift of `participant`.
pub fn uid(shift: &Shift, participant: ParticipantId, uid_scope: &str) -> String {
    format!(
        "{}-{}-p{participant}@{uid_scope}",
        utc(shift.start),
        utc(shift.end)
    )
}

/// `DATE-TIME` in UTC form, e.g. `20260308T070000Z` (sub-second parts are dropped).
fn utc(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

/// Escapes a `TEXT` value (RFC 5545 §3.3.11): backslash, semicolon, comma and newlines;
/// other control characters are dropped.
pub fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\r' => {
                if chars.peek() != Some(&'\n') {
                    out.push_str("\\n");
                }
            }
            '\n' => out.push_str("\\n"),
            '\t' => out.push('\t'),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Appends one content line, folded at 75 octets (never inside a UTF-8 character), ending in
/// CRLF (RFC 5545 §3.1). A physical line never ends in a space: some parsers trim trailing
/// whitespace before unfolding, so a space at a fold moves to the continuation line.
fn line(out: &mut String, content: &str) {
    let mut width = 0;
    for c in content.chars() {
        let len = c.len_utf8();
        if width + len > 75 {
            let carried = if out.ends_with(' ') && width > 2 {
                out.pop();
                true
            } else {
                false
            };
            out.push_str("\r\n ");
            width = 1;
            if carried {
                out.push(' ');
                width += 1;
            }
        }
        out.push(c);
        width += len;
    }
    let _ = write!(out, "\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(
            escape_text("a,b;c\\d\ne\r\nf\u{7}"),
            "a\\,b\\;c\\\\d\\ne\\nf"
        );
    }

    #[test]
    fn folding_respects_octets_and_characters() {
        let mut out = String::new();
        let long = format!("SUMMARY:{}", "é".repeat(100));
        line(&mut out, &long);
        for l in out.split("\r\n").filter(|l| !l.is_empty()) {
            assert!(l.len() <= 75, "{} octets: {l}", l.len());
        }
        let unfolded = out.replace("\r\n ", "");
        assert_eq!(unfolded, format!("{long}\r\n"));

        let mut out = String::new();
        let spaced = format!("SUMMARY:{}x", "ab ".repeat(60));
        line(&mut out, &spaced);
        for l in out.split("\r\n").filter(|l| !l.is_empty()) {
            assert!(l.len() <= 75 && !l.ends_with(' '), "{l:?}");
        }
        assert_eq!(out.replace("\r\n ", ""), format!("{spaced}\r\n"));
    }
}
