//! Short, stable digests of text: SHA-256, as lower-case hex, cut to a few
//! characters. For names and cache keys that must tell inputs apart and stay the
//! same across releases, not for anything secret.

use sha2::{Digest, Sha256};

/// The first `chars` hex digits (at most 64) of the SHA-256 of `text`.
pub fn short_hex(text: &str, chars: usize) -> String {
    let mut out = String::with_capacity(64);
    for byte in Sha256::digest(text.as_bytes()) {
        out.push_str(&format!("{byte:02x}"));
    }
    out.truncate(chars.min(64));
    out
}

#[cfg(test)]
mod tests {
    use super::short_hex;

    #[test]
    fn short_digests_are_sha256_prefixes() {
        // sha256("abc") = ba7816bf…
        assert_eq!(short_hex("abc", 8), "ba7816bf");
        assert_eq!(short_hex("abc", 100).len(), 64);
        assert_ne!(short_hex("abd", 8), short_hex("abc", 8));
    }
}
