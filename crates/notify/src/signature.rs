//! The webhook signature: `X-Heliograph-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`.
//!
//! The MAC is computed over `"<t>.<body>"` (the decimal timestamp, a dot, then the raw request
//! body bytes) keyed with the shared secret. Binding the timestamp lets a receiver refuse
//! replays of an old request; [`verify_signature`] does both checks in constant time.
//!
//! A receiver checks a request like this:
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! # let secret = b"s3cret";
//! # let body = br#"{"text":"hi"}"#;
//! # let header = heliograph_notify::sign(secret, SystemTime::now(), body);
//! let ok = heliograph_notify::verify_signature(
//!     secret,                      // the webhook secret shared with Heliograph
//!     &header,                     // the X-Heliograph-Signature header
//!     body,                        // the raw body, before any JSON parsing
//!     SystemTime::now(),
//!     Duration::from_secs(300),    // refuse requests signed more than 5 minutes away
//! );
//! assert!(ok);
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The name of the signature header on every webhook request.
pub const SIGNATURE_HEADER: &str = "X-Heliograph-Signature";

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], timestamp: u64, body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = HmacSha256::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

fn unix_seconds(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The value of [`SIGNATURE_HEADER`] for `body` sent at `at`, keyed with `secret`.
pub fn sign(secret: &[u8], at: SystemTime, body: &[u8]) -> String {
    let t = unix_seconds(at);
    let digest = mac(secret, t, body).finalize().into_bytes();
    format!("t={t},v1={}", hex::encode(digest))
}

/// Whether `header` (a [`SIGNATURE_HEADER`] value) is a valid signature of `body` with
/// `secret`, made within `tolerance` of `now`.
///
/// Several `v1=` entries are accepted (any one matching suffices), so a sender may sign with
/// an old and a new secret while rotating. Malformed headers are simply invalid.
pub fn verify_signature(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: SystemTime,
    tolerance: Duration,
) -> bool {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<u64>().ok(),
            Some(("v1", v)) => {
                if let Ok(bytes) = hex::decode(v) {
                    signatures.push(bytes);
                }
            }
            _ => {}
        }
    }
    let Some(t) = timestamp else {
        return false;
    };
    if unix_seconds(now).abs_diff(t) > tolerance.as_secs() {
        return false;
    }
    signatures
        .iter()
        .any(|candidate| mac(secret, t, body).verify_slice(candidate).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    const FIVE_MINUTES: Duration = Duration::from_secs(300);

    #[test]
    fn known_vector() {
        // printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac secret
        assert_eq!(
            sign(b"secret", at(1_700_000_000), br#"{"a":1}"#),
            "t=1700000000,v1=49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686"
        );
    }

    #[test]
    fn round_trip() {
        let body = br#"{"incident":42}"#;
        let header = sign(b"k", at(1_000), body);
        assert!(verify_signature(
            b"k",
            &header,
            body,
            at(1_000),
            FIVE_MINUTES
        ));
        assert!(verify_signature(
            b"k",
            &header,
            body,
            at(1_299),
            FIVE_MINUTES
        ));
        assert!(verify_signature(b"k", &header, body, at(701), FIVE_MINUTES));
    }

    #[test]
    fn wrong_secret_body_or_time_fail() {
        let body = br#"{"incident":42}"#;
        let header = sign(b"k", at(1_000), body);
        assert!(!verify_signature(
            b"other",
            &header,
            body,
            at(1_000),
            FIVE_MINUTES
        ));
        assert!(!verify_signature(
            b"k",
            &header,
            b"{}",
            at(1_000),
            FIVE_MINUTES
        ));
        assert!(!verify_signature(
            b"k",
            &header,
            body,
            at(1_301),
            FIVE_MINUTES
        ));
        assert!(!verify_signature(
            b"k",
            &header,
            body,
            at(699),
            FIVE_MINUTES
        ));
        // A replayed signature with a forged timestamp does not match.
        let forged = header.replace("t=1000", "t=2000");
        assert!(!verify_signature(
            b"k",
            &forged,
            body,
            at(2_000),
            FIVE_MINUTES
        ));
    }

    #[test]
    fn malformed_headers_are_invalid() {
        for header in [
            "",
            "t=",
            "v1=00",
            "t=abc,v1=00",
            "t=1000",
            "t=1000,v1=zz",
            "garbage",
        ] {
            assert!(
                !verify_signature(b"k", header, b"", at(1_000), FIVE_MINUTES),
                "{header}"
            );
        }
    }

    #[test]
    fn any_of_several_signatures_may_match() {
        let body = b"x";
        let new = sign(b"new", at(1_000), body);
        let old_sig = sign(b"old", at(1_000), body);
        let old_v1 = old_sig.split(",v1=").nth(1).unwrap_or_default();
        let both = format!("{new},v1={old_v1}");
        assert!(verify_signature(
            b"old",
            &both,
            body,
            at(1_000),
            FIVE_MINUTES
        ));
        assert!(verify_signature(
            b"new",
            &both,
            body,
            at(1_000),
            FIVE_MINUTES
        ));
    }
}
