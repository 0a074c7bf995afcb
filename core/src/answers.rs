//! The one mapping of every layer's errors to the HTTP answers of [`ApiError`].
//!
//! It sits above the modules whose errors it maps (nothing imports it: the `From`
//! impls are found by `?`), so `error.rs` stays a leaf that `http.rs` and `auth.rs`
//! can use without tying every domain module to each other.

use crate::error::ApiError;

/// Reads a JSON request body as a `T` (see [`crate::json::read_body`]); its errors
/// are 400s.
pub fn parse_body<T: crate::json::FromJson>(body: &[u8], root_hint: &str) -> Result<T, ApiError> {
    Ok(crate::json::read_body(body, root_hint)?)
}

// The one mapping of the domain's errors to HTTP: what a caller sent is refused with
// a 400 naming the field (a 409 where it clashes with another app), the texts as the
// domain wrote them.

impl From<crate::apps::AppError> for ApiError {
    fn from(e: crate::apps::AppError) -> Self {
        match e {
            crate::apps::AppError::Invalid(m) => ApiError::BadRequest(m),
            crate::apps::AppError::Conflict(m) => ApiError::Conflict(m),
        }
    }
}

impl From<crate::names::NameError> for ApiError {
    fn from(e: crate::names::NameError) -> Self {
        ApiError::BadRequest(e.to_string())
    }
}

impl From<crate::routes::RouteError> for ApiError {
    fn from(e: crate::routes::RouteError) -> Self {
        ApiError::BadRequest(e.to_string())
    }
}

/// The routes API: what the caller sent is a 400; a store failure, logged by the
/// caller, is answered with a fixed message.
impl From<crate::routes::RoutesApiError> for ApiError {
    fn from(e: crate::routes::RoutesApiError) -> Self {
        use crate::routes::RoutesApiError;
        match e {
            RoutesApiError::Invalid(e) => e.into(),
            RoutesApiError::NotFound => ApiError::NotFound,
            RoutesApiError::Store(_) => ApiError::Unavailable,
        }
    }
}

impl From<crate::secrets::SecretError> for ApiError {
    fn from(e: crate::secrets::SecretError) -> Self {
        ApiError::BadRequest(e.to_string())
    }
}

/// Domain errors that are one message naming the field: a 400 with that message.
macro_rules! bad_request {
    ($($t:ty),* $(,)?) => {$(
        impl From<$t> for ApiError {
            fn from(e: $t) -> Self {
                ApiError::BadRequest(e.0)
            }
        }
    )*};
}

bad_request!(
    crate::json::BadBody,
    crate::preview::SettingsError,
    crate::github::events::BadPayload,
    crate::notify::NotifyError,
    crate::orchestrate::definition::ServiceError,
);

// ---- Domain errors at the edge: each flow's typed error, mapped to its answer. ----

impl From<crate::github::intake::BodyError> for ApiError {
    fn from(e: crate::github::intake::BodyError) -> Self {
        use crate::github::intake::BodyError;
        match e {
            BodyError::TooLarge { limit } => ApiError::PayloadTooLarge { limit },
            BodyError::Unreadable => ApiError::BadRequest("unreadable body".into()),
        }
    }
}

/// The `/github` intake: its refusals name the header or the field; what failed
/// inside is logged by the caller and answered with a fixed message.
impl From<crate::github::intake::IntakeError> for ApiError {
    fn from(e: crate::github::intake::IntakeError) -> Self {
        use crate::github::intake::{IntakeError, IntakeFailure};
        use crate::github::webhook::SignatureError;
        match e {
            IntakeError::NotConfigured(missing) => ApiError::NotConfigured(missing),
            IntakeError::Body(e) => e.into(),
            IntakeError::Signature(e) => ApiError::Unauthorized(match e {
                SignatureError::Missing => "missing X-Hub-Signature-256 header",
                SignatureError::Malformed => "malformed X-Hub-Signature-256 header",
                SignatureError::Mismatch => "signature does not match",
            }),
            IntakeError::MissingEvent => {
                ApiError::BadRequest("missing X-GitHub-Event header".into())
            }
            IntakeError::MissingDelivery => {
                ApiError::BadRequest("missing or invalid X-GitHub-Delivery header".into())
            }
            IntakeError::Payload(text) => ApiError::BadRequest(text),
            IntakeError::Failed(IntakeFailure::Hmac(_) | IntakeFailure::Digest) => {
                ApiError::Internal
            }
            IntakeError::Failed(IntakeFailure::Apps(_) | IntakeFailure::Record { .. }) => {
                ApiError::Unavailable
            }
        }
    }
}

/// `/telegram`: a body that is not an update is a 400; a store failure, logged by
/// the caller, a 503 (Telegram sends the update again).
impl From<crate::dispatch::telegram::ReceiveError> for ApiError {
    fn from(e: crate::dispatch::telegram::ReceiveError) -> Self {
        use crate::dispatch::telegram::ReceiveError;
        match e {
            ReceiveError::Bad(e) => ApiError::BadRequest(e.0),
            ReceiveError::Store(_) => ApiError::Unavailable,
        }
    }
}

impl From<crate::chatops::SetupError> for ApiError {
    fn from(e: crate::chatops::SetupError) -> Self {
        ApiError::NotConfigured(e.0)
    }
}

/// The admin API's delivery log.
impl From<crate::admin::LogError> for ApiError {
    fn from(e: crate::admin::LogError) -> Self {
        use crate::admin::LogError;
        match e {
            LogError::NotFound => ApiError::NotFound,
            LogError::Invalid(why) => ApiError::BadRequest(why),
            LogError::Store { .. } | LogError::Queue(_) => ApiError::Unavailable,
        }
    }
}

/// A decision on a deploy job's approval: an unknown job is a 404, one whose state
/// does not allow the decision a 409 saying why, a store failure (logged by the
/// caller) a 503.
impl From<crate::deploy::approval::ApprovalError> for ApiError {
    fn from(e: crate::deploy::approval::ApprovalError) -> Self {
        use crate::deploy::approval::ApprovalError;
        match e {
            ApprovalError::NotFound { .. } => ApiError::NotFound,
            ApprovalError::Store { .. } => ApiError::Unavailable,
            conflict => ApiError::Conflict(conflict.to_string()),
        }
    }
}

/// A decision on a deployment protection request: one that someone (or the timeout)
/// took first is a conflict naming it.
impl From<crate::protection::DecideError> for ApiError {
    fn from(e: crate::protection::DecideError) -> Self {
        use crate::protection::DecideError;
        match e {
            DecideError::NotFound => ApiError::NotFound,
            DecideError::Decided(_) | DecideError::Expired => ApiError::Conflict(e.to_string()),
            DecideError::Store(_) => ApiError::Unavailable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body shaped like `/notify`'s, read the way every request body is.
    #[derive(Debug, crate::json::FromJson)]
    #[json(deny_unknown_fields)]
    #[expect(dead_code, reason = "only read, to see its errors")]
    struct Outer {
        deployment: Inner,
        #[json(default)]
        tags: Vec<u32>,
    }

    #[derive(Debug, crate::json::FromJson)]
    #[serde(rename_all = "camelCase")]
    #[expect(dead_code, reason = "only read, to see its errors")]
    struct Inner {
        project_name: String,
        #[json(default)]
        is_ci: bool,
    }

    fn error(body: &str) -> String {
        parse_body::<Outer>(body.as_bytes(), "body must be an object")
            .expect_err("invalid")
            .to_string()
    }

    #[test]
    fn body_errors_name_the_field_by_its_path() {
        assert_eq!(
            error(r#"{"deployment": {"projectName": 5}}"#),
            "deployment.projectName: invalid type: integer `5`, expected a string"
        );
        assert_eq!(
            error("{\n  \"deployment\": {\n    \"projectName\": \"x\",\n    \"isCi\": \"yes\"\n  }\n}"),
            "deployment.isCi: invalid type: string \"yes\", expected a boolean"
        );
        assert_eq!(
            error(r#"{"deployment": {"isCi": true}}"#),
            "deployment: missing field `projectName`"
        );
        assert_eq!(
            error(r#"{"deployment": {"projectName": "a\"b,c"}, "tags": [1, 2, "x"]}"#),
            "tags[2]: invalid type: string \"x\", expected u32"
        );
        assert!(error(r#"{"deployment": {"projectName": "x"}, "extra": 1}"#)
            .starts_with("extra: unknown field `extra`"));
        assert_eq!(error("{}"), "missing field `deployment`");
        assert_eq!(error(r#""x""#), "body must be an object");
        assert!(error("{").starts_with("malformed JSON"));
    }

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
