//! How secrets (sessions, API tokens, feed and action links, integration keys) are stored.

use sha2::{Digest, Sha256};

/// The stored form of a secret: SHA-256, lowercase hex. The secrets are at least 128 random
/// bits, so a fast hash is enough; passwords use argon2id instead.
pub fn hash_secret(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn is_sha256_hex() {
        assert_eq!(
            super::hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
