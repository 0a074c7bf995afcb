//! Names the admin API validates, shared by the apps registry, the secrets and the
//! preview settings (a leaf: it imports none of them).

use serde::Serialize;

use crate::json::FromJson;

/// A name the admin API refuses (a 400 with this text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("app name must be 1 to 63 lower-case letters, digits and dashes, starting with a letter or digit")]
    App,
    #[error("secret name must be upper-case letters, digits and underscores, starting with a letter or underscore")]
    EnvVar,
}

/// An app's name: lower-case letters, digits and dashes, as in a URL path. Stored
/// values are read back as written (validation happened on the way in).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, FromJson)]
#[serde(transparent)]
pub struct AppName(pub(crate) String);

impl AppName {
    pub fn parse(s: &str) -> Result<Self, NameError> {
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
            Err(NameError::App)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An environment variable's name (a secret's, a preview variable's): upper-case
/// letters, digits and underscores, starting with a letter or underscore.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct EnvVarName(String);

impl EnvVarName {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let ok = !s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .next()
                .is_some_and(|b| b.is_ascii_uppercase() || b == b'_')
            && s.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
        if ok {
            Ok(EnvVarName(s.to_owned()))
        } else {
            Err(NameError::EnvVar)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
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
        assert!(EnvVarName::parse("DATABASE_URL").is_ok());
        assert!(EnvVarName::parse("_X1").is_ok());
        assert!(EnvVarName::parse("lower").is_err());
        assert!(EnvVarName::parse("1ABC").is_err());
        assert!(EnvVarName::parse("A-B").is_err());
    }
}
