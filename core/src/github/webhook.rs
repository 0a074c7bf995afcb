//! Webhook authentication: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw
//! body>`. The HMAC itself is computed by the caller (WebCrypto in the Worker, where
//! pure-Rust SHA-256 is ten times slower); this module parses the header and compares
//! in constant time against the MAC of each configured secret.

use crate::auth::constant_time_eq;
use crate::secret::Secret;

/// GitHub caps webhook payloads at 25 MB; anything larger is not from GitHub.
pub const MAX_BODY_BYTES: usize = 25 * 1024 * 1024;

/// The secrets a delivery may be signed with: the current one and, during a
/// rotation, the previous one.
#[derive(Debug, Clone)]
pub struct WebhookSecrets {
    pub current: Secret,
    pub previous: Option<Secret>,
}

impl WebhookSecrets {
    pub fn all(&self) -> impl Iterator<Item = &Secret> {
        std::iter::once(&self.current).chain(self.previous.iter())
    }
}

/// A parsed `X-Hub-Signature-256` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature([u8; 32]);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing X-Hub-Signature-256 header")]
    Missing,
    #[error("malformed X-Hub-Signature-256 header")]
    Malformed,
    #[error("signature does not match")]
    Mismatch,
}

impl Signature {
    pub fn parse(header: Option<&str>) -> Result<Signature, SignatureError> {
        let value = header.ok_or(SignatureError::Missing)?.trim();
        let hex = value
            .strip_prefix("sha256=")
            .ok_or(SignatureError::Malformed)?;
        // Work on bytes: a multi-byte UTF-8 character would put a `str` slice off a
        // char boundary and panic before any authentication has happened.
        let hex = hex.as_bytes();
        if hex.len() != 64 {
            return Err(SignatureError::Malformed);
        }
        let mut mac = [0u8; 32];
        for (byte, pair) in mac.iter_mut().zip(hex.chunks_exact(2)) {
            let (hi, lo) = match pair {
                [hi, lo] => (hex_digit(*hi)?, hex_digit(*lo)?),
                _ => return Err(SignatureError::Malformed),
            };
            *byte = (hi << 4) | lo;
        }
        Ok(Signature(mac))
    }

    /// Whether `computed` (the HMAC of the body under one secret) is this signature.
    pub fn matches(&self, computed: &[u8]) -> bool {
        constant_time_eq(&self.0, computed)
    }
}

fn hex_digit(b: u8) -> Result<u8, SignatureError> {
    match b {
        b'0'..=b'9' => Ok(b - b'0'),
        b'a'..=b'f' => Ok(b - b'a' + 10),
        b'A'..=b'F' => Ok(b - b'A' + 10),
        _ => Err(SignatureError::Malformed),
    }
}

/// Lower-case hex, for signing in tests and tools.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    fn hmac(key: &str, body: &[u8]) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
        mac.update(body);
        mac.finalize().into_bytes().to_vec()
    }

    #[test]
    fn githubs_documented_test_vector() {
        let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let sig = Signature::parse(Some(header)).expect("parses");
        assert!(sig.matches(&hmac("It's a Secret to Everybody", b"Hello, World!")));
        assert!(!sig.matches(&hmac("It's a Secret to Everybody", b"Hello, World?")));
        assert!(!sig.matches(&hmac("another secret", b"Hello, World!")));
        assert_eq!(
            to_hex(&hmac("It's a Secret to Everybody", b"Hello, World!")),
            &header[7..]
        );
    }

    #[test]
    fn malformed_headers() {
        assert_eq!(Signature::parse(None), Err(SignatureError::Missing));
        assert_eq!(
            Signature::parse(Some("sha1=abc")),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            Signature::parse(Some("sha256=xyz")),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            Signature::parse(Some(&format!("sha256={}", "g".repeat(64)))),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn a_multibyte_character_in_the_signature_is_malformed_not_a_panic() {
        let header = format!("sha256=a\u{e9}{}", "0".repeat(61));
        assert_eq!(header.len() - "sha256=".len(), 64);
        assert_eq!(
            Signature::parse(Some(&header)),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn rotation_accepts_both_secrets() {
        let secrets = WebhookSecrets {
            current: Secret::new("new"),
            previous: Some(Secret::new("old")),
        };
        let body = b"{}";
        let sig = Signature::parse(Some(&format!("sha256={}", to_hex(&hmac("old", body)))))
            .expect("parses");
        assert!(secrets.all().any(|s| sig.matches(&hmac(s.expose(), body))));
        let stranger = Signature::parse(Some(&format!("sha256={}", to_hex(&hmac("x", body)))))
            .expect("parses");
        assert!(!secrets
            .all()
            .any(|s| stranger.matches(&hmac(s.expose(), body))));
    }
}
