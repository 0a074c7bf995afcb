//! The `/notify` wire format, shared by `notify-deploy` (which writes it) and the
//! Worker (which validates it), and the validation that turns it into a
//! [`Deployment`].

use serde::Serialize;

use crate::json::{FromJson, Names};

use crate::time::Timestamp;

/// Largest `/notify` body accepted; a deployment's metadata is a few hundred bytes,
/// so 64 KiB leaves room for long commit messages and refuses anything else.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Field length bounds, in characters. Generous for real values (git allows 255-byte
/// ref names; Cloudflare project names are at most 58), small enough that one field
/// cannot crowd out the rest of a Telegram message.
pub const MAX_PROJECT_NAME: usize = 128;
pub const MAX_DEPLOYMENT_ID: usize = 128;
pub const MAX_BRANCH: usize = 255;
pub const MAX_COMMIT_MESSAGE: usize = 10_000;
pub const MAX_AUTHOR: usize = 256;
pub const MAX_ENVIRONMENT: usize = 64;
pub const MAX_TIMESTAMP: usize = 64;
pub const MAX_URL: usize = 2048;
/// A commit hash is hex: git's shortest abbreviation (4) up to a SHA-256 object id (64).
pub const COMMIT_HASH_LEN: std::ops::RangeInclusive<usize> = 4..=64;

/// The body of `POST /notify`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, FromJson)]
pub struct NotifyRequest {
    pub deployment: DeploymentPayload,
}

/// One deployment as a build hook reports it. Every field is optional on the wire so
/// that a missing one gets a message naming it; unknown fields are ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, FromJson)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentPayload {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit_message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(rename = "isCI", skip_serializing_if = "Option::is_none")]
    pub is_ci: Option<bool>,
    /// The deployment's URL (Pages sets `CF_PAGES_URL`); optional.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// What was deployed: a Worker script or a Pages project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Names)]
#[serde(rename_all = "snake_case")]
pub enum DeployKind {
    Worker,
    Pages,
}

/// A deployment id as the platform or the build system names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, FromJson)]
#[serde(transparent)]
pub struct DeploymentId(String);

impl DeploymentId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    #[cfg(test)]
    pub(crate) fn parse_for_tests(s: &str) -> Self {
        DeploymentId(s.to_owned())
    }
}

/// A git commit hash, lower-cased hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, FromJson)]
#[serde(transparent)]
pub struct CommitHash(String);

impl CommitHash {
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        (COMMIT_HASH_LEN.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| CommitHash(s.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 7-character form people recognise.
    pub fn short(&self) -> &str {
        &self.0[..self.0.len().min(7)]
    }
}

/// Where the Worker learned of a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Names)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A build hook posted it to `/notify`.
    Hook,
    /// The cron poll found it in the Cloudflare API.
    Poll,
}

/// A validated deployment: what is stored in D1 and formatted for Telegram.
#[derive(Debug, Clone, PartialEq, Serialize, FromJson)]
pub struct Deployment {
    pub kind: DeployKind,
    pub project_name: String,
    pub deployment_id: DeploymentId,
    pub branch: Option<String>,
    pub commit_hash: Option<CommitHash>,
    pub commit_message: Option<String>,
    pub author: Option<String>,
    /// When it was deployed (the payload's timestamp, else when it was received).
    pub timestamp: Timestamp,
    pub environment: String,
    pub is_ci: bool,
    pub url: Option<String>,
    pub source: Source,
}

impl Deployment {
    /// The identity two reports of one deployment share; the D1 unique key.
    pub fn dedupe_key(&self) -> String {
        dedupe_key(
            self.kind.as_str(),
            &self.project_name,
            self.deployment_id.as_str(),
        )
    }
}

/// `worker:<project>:<id>` / `pages:<project>:<id>`: a deployment's identity (type,
/// project and id, the D1 unique key) as the KV fast-path key suffix, the log and
/// the deliveries list show it. `%` and `:` in the project name are percent-escaped,
/// so two identities never spell the same key (the id is the rest of the key).
pub fn dedupe_key(kind: &str, project_name: &str, deployment_id: &str) -> String {
    format!("{kind}:{}", project_scoped(project_name, deployment_id))
}

/// `<project>:<id>`, escaped as in [`dedupe_key`]: a deployment's identity within
/// its type (the cron summary keeps these per type).
pub fn project_scoped(project_name: &str, deployment_id: &str) -> String {
    let project = project_name.replace('%', "%25").replace(':', "%3A");
    format!("{project}:{deployment_id}")
}

/// The environment a deployment goes to when the hook does not say.
pub const DEFAULT_ENVIRONMENT: &str = "production";

/// A `/notify` body that is refused (a 400); the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotifyError(pub String);

impl From<crate::json::BadBody> for NotifyError {
    fn from(e: crate::json::BadBody) -> Self {
        NotifyError(e.0)
    }
}

/// Parses and validates a `/notify` body. `received` stands in for a missing timestamp.
/// Errors name the offending field as `deployment.<field>`.
pub fn parse_notify_body(body: &[u8], received: Timestamp) -> Result<Deployment, NotifyError> {
    let request: NotifyRequest = crate::json::read_body(
        body,
        "body must be a JSON object with a \"deployment\" object",
    )?;
    request.deployment.validate(received, Source::Hook)
}

impl DeploymentPayload {
    /// The payload with every optional display field made acceptable: control
    /// characters dropped (a commit message keeps its line breaks and tabs, a
    /// single-line field turns them into spaces), cut to its bound with "…", and a
    /// commit hash, timestamp or URL that is not one left out. The identity fields
    /// (`type`, `projectName`, `deploymentId`) are left as they are: only they can make
    /// [`validate`](Self::validate) refuse. `notify-deploy` sends this form, so that a
    /// stray character in a commit message never costs the notification.
    pub fn sanitised(self) -> DeploymentPayload {
        DeploymentPayload {
            branch: self.branch.and_then(|b| single_line_text(&b, MAX_BRANCH)),
            commit_hash: non_empty(self.commit_hash).filter(|h| CommitHash::parse(h).is_some()),
            commit_message: self
                .commit_message
                .and_then(|m| message_text(&m, MAX_COMMIT_MESSAGE)),
            author: self.author.and_then(|a| single_line_text(&a, MAX_AUTHOR)),
            timestamp: non_empty(self.timestamp).filter(|t| {
                t.chars().count() <= MAX_TIMESTAMP && Timestamp::parse_rfc3339(t).is_some()
            }),
            environment: self
                .environment
                .and_then(|e| single_line_text(&e, MAX_ENVIRONMENT)),
            url: non_empty(self.url).filter(|u| valid_url(u)),
            ..self
        }
    }

    /// Checks the identity fields' presence, length and shape and turns the
    /// [sanitised](Self::sanitised) rest into a [`Deployment`]; see
    /// [`parse_notify_body`].
    pub fn validate(self, received: Timestamp, source: Source) -> Result<Deployment, NotifyError> {
        let p = self.sanitised();
        let kind_text = required("type", p.kind)?;
        let kind = DeployKind::parse(&kind_text)
            .ok_or_else(|| NotifyError("deployment.type must be \"worker\" or \"pages\"".into()))?;
        let project_name = required("projectName", p.project_name)?;
        single_line("projectName", &project_name, MAX_PROJECT_NAME)?;
        let deployment_id = required("deploymentId", p.deployment_id)?;
        single_line("deploymentId", &deployment_id, MAX_DEPLOYMENT_ID)?;
        Ok(Deployment {
            kind,
            project_name,
            deployment_id: DeploymentId(deployment_id),
            branch: p.branch,
            commit_hash: p.commit_hash.as_deref().and_then(CommitHash::parse),
            commit_message: p.commit_message,
            author: p.author,
            timestamp: p
                .timestamp
                .as_deref()
                .and_then(Timestamp::parse_rfc3339)
                .unwrap_or(received),
            environment: p
                .environment
                .unwrap_or_else(|| DEFAULT_ENVIRONMENT.to_owned()),
            is_ci: p.is_ci.unwrap_or(false),
            url: p.url,
            source,
        })
    }
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

fn required(field: &str, v: Option<String>) -> Result<String, NotifyError> {
    non_empty(v).ok_or_else(|| NotifyError(format!("deployment.{field} is required")))
}

/// An identity field: refused when too long or not a single line.
fn single_line(field: &str, s: &str, max: usize) -> Result<(), NotifyError> {
    if s.chars().count() > max {
        return Err(NotifyError(format!(
            "deployment.{field} is longer than {max} characters"
        )));
    }
    if s.chars().any(char::is_control) {
        return Err(NotifyError(format!(
            "deployment.{field} must be a single line without control characters"
        )));
    }
    Ok(())
}

/// A single-line display field: line breaks and tabs become spaces, other control
/// characters are dropped, then it is trimmed and cut to `max` characters.
fn single_line_text(s: &str, max: usize) -> Option<String> {
    let clean: String = s
        .chars()
        .filter_map(|c| match c {
            '\n' | '\r' | '\t' => Some(' '),
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect();
    Some(crate::text::cut(clean.trim(), max)).filter(|t| !t.is_empty())
}

/// A commit message: `\r\n` and a lone `\r` become `\n`, tabs stay, other control
/// characters are dropped, then it is trimmed and cut to `max` characters.
fn message_text(s: &str, max: usize) -> Option<String> {
    let clean: String = s
        .replace("\r\n", "\n")
        .chars()
        .filter_map(|c| match c {
            '\r' => Some('\n'),
            '\n' | '\t' => Some(c),
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect();
    Some(crate::text::cut(clean.trim(), max)).filter(|t| !t.is_empty())
}

/// A URL worth linking: http(s), within [`MAX_URL`], without spaces or control
/// characters (cutting one would only make a broken link, so it is left out instead).
fn valid_url(u: &str) -> bool {
    (u.starts_with("https://") || u.starts_with("http://"))
        && u.chars().count() <= MAX_URL
        && !u.chars().any(|c| c.is_control() || c.is_whitespace())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::notify) fn received() -> Timestamp {
        Timestamp::from_millis(1_736_937_000_000)
    }

    pub(in crate::notify) fn parse(body: &str) -> Result<Deployment, NotifyError> {
        parse_notify_body(body.as_bytes(), received())
    }

    fn bad(body: &str) -> String {
        match parse(body) {
            Err(NotifyError(m)) => m,
            other => panic!("expected 400, got {other:?}"),
        }
    }

    #[test]
    fn a_complete_build_hook_payload_validates() {
        let d = parse(
            r#"{"deployment":{"type":"worker","projectName":"api-service","deploymentId":"build-abc123",
            "branch":"feature/add-auth","commitHash":"ABC123DEF","commitMessage":"Add JWT authentication\n\nLong body",
            "author":"dev@example.com","timestamp":"2025-01-15T10:30:00Z","environment":"production","isCI":true,
            "somethingNew":{"ignored":true}}}"#,
        )
        .expect("valid");
        assert_eq!(d.kind, DeployKind::Worker);
        assert_eq!(d.project_name, "api-service");
        assert_eq!(d.deployment_id.as_str(), "build-abc123");
        assert_eq!(
            d.commit_hash.as_ref().map(CommitHash::as_str),
            Some("abc123def")
        );
        assert_eq!(
            d.commit_hash.as_ref().map(CommitHash::short),
            Some("abc123d")
        );
        assert_eq!(d.timestamp.to_rfc3339(), "2025-01-15T10:30:00.000Z");
        assert!(d.is_ci);
        assert_eq!(d.source, Source::Hook);
        assert_eq!(d.dedupe_key(), "worker:api-service:build-abc123");
    }

    #[test]
    fn minimal_payload_gets_defaults() {
        let d = parse(r#"{"deployment":{"type":"pages","projectName":"site","deploymentId":"d1","branch":""}}"#)
            .expect("valid");
        assert_eq!(d.environment, "production");
        assert_eq!(d.branch, None);
        assert_eq!(d.timestamp, received());
        assert!(!d.is_ci);
    }

    #[test]
    fn errors_name_the_field() {
        assert!(bad("{").starts_with("malformed JSON"));
        assert!(bad("[]").contains("deployment"));
        assert_eq!(bad(r#"{"deployment":{}}"#), "deployment.type is required");
        assert_eq!(
            bad(r#"{"deployment":{"type":"lambda","projectName":"p","deploymentId":"d"}}"#),
            "deployment.type must be \"worker\" or \"pages\""
        );
        assert_eq!(
            bad(r#"{"deployment":{"type":"worker","deploymentId":"d"}}"#),
            "deployment.projectName is required"
        );
        assert_eq!(
            bad(r#"{"deployment":{"type":"worker","projectName":"p"}}"#),
            "deployment.deploymentId is required"
        );
        assert!(
            bad(r#"{"deployment":{"type":"worker","projectName":5,"deploymentId":"d"}}"#)
                .starts_with("deployment.projectName: invalid type")
        );
        assert!(bad(
            r#"{"deployment":{"type":"worker","projectName":"p","deploymentId":"d","isCI":"yes"}}"#
        )
        .starts_with("deployment.isCI: invalid type"));
        assert_eq!(
            bad(r#"{"deployment":{"type":"worker","projectName":"a\nb","deploymentId":"d"}}"#),
            "deployment.projectName must be a single line without control characters"
        );
        assert_eq!(
            bad(r#"{"deployment":{"type":"worker","projectName":"p","deploymentId":"d\u0007"}}"#),
            "deployment.deploymentId must be a single line without control characters"
        );
        assert!(
            bad(r#"{"deployment":{"type":"worker","projectName":"p","deploymentId":"d","branch":7}}"#)
                .starts_with("deployment.branch: invalid type"),
            "a field of the wrong JSON type is still a malformed request"
        );
    }

    #[test]
    fn a_bad_optional_field_is_sanitised_and_the_deployment_still_accepted() {
        let long_branch = format!("feature/{}", "b".repeat(300));
        let body = serde_json::json!({"deployment": {
            "type": "worker", "projectName": "api", "deploymentId": "d-1",
            "branch": long_branch,
            "commitMessage": "Fix \u{1b}[31mred\u{7}\r\n\n\tbody\u{0}",
            "author": "Dev\u{0} <dev@example.com>\n",
            "environment": "stag\ning",
            "commitHash": "xyz",
            "timestamp": "yesterday",
            "url": "javascript:alert(1)",
        }})
        .to_string();
        let d = parse(&body).expect("only identity fields refuse");
        let branch = d.branch.expect("branch kept");
        assert_eq!(branch.chars().count(), MAX_BRANCH);
        assert!(branch.starts_with("feature/bbb") && branch.ends_with("b…"));
        assert_eq!(
            d.commit_message.as_deref(),
            Some("Fix [31mred\n\n\tbody"),
            "control characters dropped, line breaks and tabs kept"
        );
        assert_eq!(d.author.as_deref(), Some("Dev <dev@example.com>"));
        assert_eq!(d.environment, "stag ing");
        assert_eq!(d.commit_hash, None, "not a hash: left out");
        assert_eq!(d.timestamp, received(), "not a time: the received time");
        assert_eq!(d.url, None, "not an http(s) URL: left out");
        let long_message = "é".repeat(MAX_COMMIT_MESSAGE + 5);
        let body = serde_json::json!({"deployment": {
            "type": "pages", "projectName": "p", "deploymentId": "d", "commitMessage": long_message,
            "url": format!("https://example.com/{}", "u".repeat(MAX_URL)),
        }})
        .to_string();
        let d = parse(&body).expect("valid");
        let message = d.commit_message.expect("message kept");
        assert_eq!(message.chars().count(), MAX_COMMIT_MESSAGE);
        assert!(message.ends_with("é…"), "cut at a character boundary");
        assert_eq!(d.url, None, "a cut URL would be a broken link: left out");
    }

    #[test]
    fn ellipsize_cuts_characters_not_bytes() {
        assert_eq!(crate::text::cut("abc", 3), "abc");
        assert_eq!(crate::text::cut("abcd", 3), "ab…");
        assert_eq!(crate::text::cut("🎉🎉🎉🎉", 2), "🎉…");
    }

    #[test]
    fn length_bounds() {
        let long = "x".repeat(MAX_PROJECT_NAME + 1);
        let body = format!(
            r#"{{"deployment":{{"type":"worker","projectName":"{long}","deploymentId":"d"}}}}"#
        );
        assert_eq!(
            bad(&body),
            "deployment.projectName is longer than 128 characters"
        );
        let ok = "é".repeat(MAX_PROJECT_NAME);
        let body = format!(
            r#"{{"deployment":{{"type":"worker","projectName":"{ok}","deploymentId":"d"}}}}"#
        );
        assert!(parse(&body).is_ok(), "bounds count characters, not bytes");
        let id = "i".repeat(MAX_DEPLOYMENT_ID + 1);
        let body = format!(
            r#"{{"deployment":{{"type":"worker","projectName":"p","deploymentId":"{id}"}}}}"#
        );
        assert_eq!(
            bad(&body),
            "deployment.deploymentId is longer than 128 characters"
        );
    }

    #[test]
    fn the_cli_side_serialises_what_the_worker_parses() {
        let req = NotifyRequest {
            deployment: DeploymentPayload {
                kind: Some("pages".into()),
                project_name: Some("docs".into()),
                deployment_id: Some("abc".into()),
                is_ci: Some(true),
                ..Default::default()
            },
        };
        let json = serde_json::to_string(&req).expect("serialises");
        assert_eq!(
            json,
            r#"{"deployment":{"type":"pages","projectName":"docs","deploymentId":"abc","isCI":true}}"#
        );
        assert_eq!(parse(&json).expect("valid").kind, DeployKind::Pages);
    }

    #[test]
    fn payloads_round_trip() {
        let full = NotifyRequest {
            deployment: DeploymentPayload {
                kind: Some("worker".into()),
                project_name: Some("api".into()),
                deployment_id: Some("b-1".into()),
                branch: Some("main".into()),
                commit_hash: Some("abc1234".into()),
                commit_message: Some("Fix\nthings".into()),
                author: Some("dev@example.com".into()),
                timestamp: Some("2025-01-15T10:30:00Z".into()),
                environment: Some("staging".into()),
                is_ci: Some(false),
                url: Some("https://example.com".into()),
            },
        };
        for req in [full, NotifyRequest::default()] {
            let json = serde_json::to_string(&req).expect("serialises");
            assert_eq!(
                crate::json::read::<NotifyRequest>(&json).expect("reads"),
                req
            );
        }
    }

    #[test]
    fn stored_deployments_round_trip() {
        let full = parse(
            r#"{"deployment":{"type":"worker","projectName":"api","deploymentId":"b-1","branch":"main",
            "commitHash":"abc1234","commitMessage":"Fix","author":"dev","timestamp":"2025-01-15T10:30:00Z",
            "environment":"staging","isCI":true,"url":"https://example.com"}}"#,
        )
        .expect("valid");
        let mut bare =
            parse(r#"{"deployment":{"type":"pages","projectName":"site","deploymentId":"d"}}"#)
                .expect("valid");
        bare.source = Source::Poll;
        for d in [full, bare] {
            let json = serde_json::to_string(&d).expect("serialises");
            assert_eq!(crate::json::read::<Deployment>(&json).expect("reads"), d);
        }
    }

    #[test]
    fn a_deployment_that_is_not_an_object_is_refused_by_its_path() {
        assert_eq!(
            bad(r#"{"deployment": "x"}"#),
            "deployment: invalid type: string \"x\", expected an object"
        );
        assert_eq!(
            bad(r#"{"deployment": null}"#),
            "deployment: invalid type: null, expected an object"
        );
        assert_eq!(
            bad(r#"{"deployment": []}"#),
            "deployment: invalid type: sequence, expected an object"
        );
        assert_eq!(bad("{}"), "missing field `deployment`");
        assert_eq!(
            bad("[]"),
            "body must be a JSON object with a \"deployment\" object"
        );
    }

    #[test]
    fn the_identity_takes_in_the_project_unambiguously() {
        assert_eq!(dedupe_key("worker", "api", "gh-1-1"), "worker:api:gh-1-1");
        assert_eq!(dedupe_key("pages", "a:b%", "c"), "pages:a%3Ab%25:c");
        assert_ne!(
            dedupe_key("worker", "a:b", "c"),
            dedupe_key("worker", "a", "b:c")
        );
        assert_ne!(
            dedupe_key("worker", "a%3Ab", "c"),
            dedupe_key("worker", "a:b", "c")
        );
    }
}
