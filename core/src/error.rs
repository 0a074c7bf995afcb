//! Errors a caller of the HTTP API can see, and the one mapping to status and JSON.
//!
//! Internal failures (a D1 error, an upstream outage) are a separate tier: they are
//! logged with detail where they happen and reach the caller only as
//! [`ApiError::Internal`] or [`ApiError::Unavailable`], whose messages are fixed.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("not found")]
    NotFound,
    #[error("method not allowed; use {allowed}")]
    MethodNotAllowed { allowed: &'static str },
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("content type must be application/json")]
    UnsupportedMediaType,
    /// A feature is called whose configuration is missing; names the variable.
    #[error("{0} is not configured")]
    NotConfigured(&'static str),
    /// A feature's configuration is missing or wrong; says what.
    #[error("{0}")]
    Misconfigured(String),
    /// The request clashes with something live (a workflow for the same name).
    #[error("{0}")]
    Conflict(String),
    /// Storage or another dependency failed; the detail is in the log only.
    #[error("temporarily unavailable, try again")]
    Unavailable,
    #[error("internal error")]
    Internal,
}

impl ApiError {
    pub fn status(&self) -> u16 {
        match self {
            ApiError::BadRequest(_) => 400,
            ApiError::Unauthorized(_) => 401,
            ApiError::NotFound => 404,
            ApiError::MethodNotAllowed { .. } => 405,
            ApiError::PayloadTooLarge { .. } => 413,
            ApiError::UnsupportedMediaType => 415,
            ApiError::Conflict(_) => 409,
            ApiError::NotConfigured(_) | ApiError::Misconfigured(_) | ApiError::Unavailable => 503,
            ApiError::Internal => 500,
        }
    }

    /// The JSON body every error response carries.
    pub fn body(&self) -> String {
        #[derive(Serialize)]
        struct Body<'a> {
            success: bool,
            error: &'a str,
        }
        let error = self.to_string();
        serde_json::to_string(&Body {
            success: false,
            error: &error,
        })
        .unwrap_or_else(|_| r#"{"success":false,"error":"internal error"}"#.to_owned())
    }
}

/// Parses a JSON request body into `T`. Errors are 400s that name the offending
/// field by its path (`deployment.projectName: invalid type: ...`); a body of the
/// wrong shape altogether is described by `root_hint`.
pub fn parse_json_body<T: serde::de::DeserializeOwned>(
    body: &[u8],
    root_hint: &str,
) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::BadRequest(format!("malformed JSON: {inner}"));
        }
        // serde's text says what it expected; its position adds nothing to the path.
        let text = inner.to_string();
        let text = text.split(" at line ").next().unwrap_or(&text).to_owned();
        if path == "." {
            if text.starts_with("missing field") || text.starts_with("unknown field") {
                ApiError::BadRequest(text)
            } else {
                ApiError::BadRequest(root_hint.to_owned())
            }
        } else {
            ApiError::BadRequest(format!("{path}: {text}"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_bodies() {
        let e = ApiError::BadRequest("deployment.projectName is required".into());
        assert_eq!(e.status(), 400);
        assert_eq!(
            e.body(),
            r#"{"success":false,"error":"deployment.projectName is required"}"#
        );
        assert_eq!(ApiError::PayloadTooLarge { limit: 65536 }.status(), 413);
        assert_eq!(ApiError::UnsupportedMediaType.status(), 415);
        assert_eq!(
            ApiError::MethodNotAllowed { allowed: "POST" }.to_string(),
            "method not allowed; use POST"
        );
        assert_eq!(
            ApiError::NotConfigured("DEPLOY_NOTIFY_TOKEN").to_string(),
            "DEPLOY_NOTIFY_TOKEN is not configured"
        );
    }
}
