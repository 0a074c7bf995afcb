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
