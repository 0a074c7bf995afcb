//! Token checks on raw header values, in constant time.

use crate::secret::Secret;

/// Compares two byte strings in time that depends only on their lengths, so a caller
/// cannot learn a token byte by byte from response timings.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Fold the length difference into the accumulator instead of returning early on
    // it; then compare every byte of the longer input against a cycled shorter one.
    let mut diff = (a.len() ^ b.len()) as u64;
    let n = a.len().max(b.len());
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= u64::from(x ^ y);
    }
    diff == 0
}

/// Why a bearer check failed; both map to 401, the difference is only for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BearerError {
    Missing,
    Mismatch,
}

/// Checks an `Authorization` header value against the expected bearer token.
pub fn check_bearer(header: Option<&str>, expected: &Secret) -> Result<(), BearerError> {
    let header = header.ok_or(BearerError::Missing)?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or(BearerError::Missing)?
        .trim();
    if token.is_empty() {
        return Err(BearerError::Missing);
    }
    if constant_time_eq(token.as_bytes(), expected.expose().as_bytes()) {
        Ok(())
    } else {
        Err(BearerError::Mismatch)
    }
}

/// The bearer check every guarded endpoint makes: the token must be configured
/// (503 naming `variable` otherwise) and match (401 otherwise).
pub fn require_bearer(
    header: Option<&str>,
    token: Option<&Secret>,
    variable: &'static str,
) -> Result<(), crate::error::ApiError> {
    use crate::error::ApiError;
    let token = token.ok_or(ApiError::NotConfigured(variable))?;
    check_bearer(header, token).map_err(|e| {
        ApiError::Unauthorized(match e {
            BearerError::Missing => "missing bearer token",
            BearerError::Mismatch => "invalid token",
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_and_unequal_inputs() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn required_bearer_names_what_is_wrong() {
        use crate::error::ApiError;
        let s = Secret::new("t");
        assert_eq!(
            require_bearer(Some("Bearer t"), Some(&s), "ADMIN_TOKEN"),
            Ok(())
        );
        assert_eq!(
            require_bearer(None, Some(&s), "ADMIN_TOKEN"),
            Err(ApiError::Unauthorized("missing bearer token"))
        );
        assert_eq!(
            require_bearer(Some("Bearer x"), Some(&s), "ADMIN_TOKEN"),
            Err(ApiError::Unauthorized("invalid token"))
        );
        assert_eq!(
            require_bearer(Some("Bearer t"), None, "ADMIN_TOKEN"),
            Err(ApiError::NotConfigured("ADMIN_TOKEN"))
        );
    }

    #[test]
    fn bearer_header_forms() {
        let s = Secret::new("tok-123");
        assert_eq!(check_bearer(Some("Bearer tok-123"), &s), Ok(()));
        assert_eq!(check_bearer(Some("bearer tok-123"), &s), Ok(()));
        assert_eq!(
            check_bearer(Some("Bearer tok-124"), &s),
            Err(BearerError::Mismatch)
        );
        assert_eq!(
            check_bearer(Some("Basic dG9r"), &s),
            Err(BearerError::Missing)
        );
        assert_eq!(check_bearer(Some("Bearer "), &s), Err(BearerError::Missing));
        assert_eq!(check_bearer(None, &s), Err(BearerError::Missing));
    }
}
