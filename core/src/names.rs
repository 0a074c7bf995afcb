//! Names the admin API validates, shared by the apps registry, the secrets and the
//! preview settings (a leaf: it imports none of them).

use serde::Serialize;
use serde_json::Value;

use crate::error::ApiError;
use crate::json::{FromJson, Invalid, Path};

/// An app's name: lower-case letters, digits and dashes, as in a URL path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct AppName(pub(crate) String);

/// Stored values are read back as written (validation happened on the way in).
impl FromJson for AppName {
    fn from_json(v: &Value, at: Path<'_>) -> Result<Self, Invalid> {
        String::from_json(v, at).map(AppName)
    }
}

impl AppName {
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let ok = !s.is_empty()
            && s.len() <= 63
            && s.bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(AppName(s.to_owned()))
        } else {
            Err(ApiError::BadRequest(
                "app name must be 1 to 63 lower-case letters, digits and dashes, starting with a letter or digit"
                    .into(),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A secret's name: an environment variable name.
pub fn parse_name(s: &str) -> Result<&str, ApiError> {
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_uppercase() || b == b'_')
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(s)
    } else {
        Err(ApiError::BadRequest(
            "secret name must be upper-case letters, digits and underscores, starting with a letter or underscore".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names_are_url_path_segments() {
        assert!(AppName::parse("Hello").is_err());
        assert!(AppName::parse("-x").is_err());
        assert!(AppName::parse("api-2").is_ok());
    }

    #[test]
    fn secret_names_are_environment_variable_names() {
        assert!(parse_name("DATABASE_URL").is_ok());
        assert!(parse_name("_X1").is_ok());
        assert!(parse_name("lower").is_err());
        assert!(parse_name("1ABC").is_err());
        assert!(parse_name("A-B").is_err());
    }
}
