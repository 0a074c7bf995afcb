//! `POST /github`, in order: the body caps, the signature (HMAC-SHA256 under the
//! current secret, then the previous one), the delivery headers, the parse, the
//! decision, the record (its id and body hash are the idempotency keys) and the
//! message to enqueue. [`decide`] is the pure part: a ping is answered, what no app
//! uses is recorded as ignored (202), the rest is queued.
//!
//! The hashing sits behind [`Mac`], whose body type is the port's own: the Worker
//! reads the body into a JavaScript buffer that WebCrypto hashes in place, and copies
//! it into Rust only once it is authentic.

use std::borrow::Cow;
use std::future::Future;

use super::deliveries::{BodyHash, DeliveryId, DeliveryStore, Outcome};
use super::events::{self, GithubEvent};
use super::webhook::{Signature, SignatureError, MAX_BODY_BYTES};
use crate::apps::{AppStore, NamedApp};
use crate::config::Config;
use crate::http::BodyCap;
use crate::jobs::JobMessage;
use crate::ports::{Queue, Sql, StoreError};
use crate::time::Timestamp;

/// The `pull_request` actions that change a preview.
const PREVIEW_ACTIONS: &[&str] = &[
    "opened",
    "reopened",
    "synchronize",
    "closed",
    "ready_for_review",
    "converted_to_draft",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intake {
    /// `ping`: answered 200 at once.
    Pong,
    /// Recorded as ignored, answered 202, with the reason.
    Ignore(String),
    /// Recorded as queued; the consumer does the work.
    Enqueue,
}

/// Who listens to events no app is registered for: orchestration workflows (they
/// wait on merges and workflow runs in any repository) and, with the GitHub App,
/// deployment protection rules (the App reviews deployments wherever it is installed
/// as one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Listeners {
    pub orchestrating: bool,
    pub protection_rules: bool,
}

impl Listeners {
    pub fn of(config: &Config) -> Listeners {
        Listeners {
            orchestrating: crate::orchestrate::drive::configured(config),
            protection_rules: config.github.as_ref().is_ok_and(|g| g.app.is_some()),
        }
    }
}

/// Decides from the event, the apps registered for its repository, and who else
/// listens.
pub fn decide(event: &GithubEvent, apps: &[NamedApp], listeners: Listeners) -> Intake {
    let orchestrating = listeners.orchestrating;
    match event {
        GithubEvent::Ping { .. } => Intake::Pong,
        GithubEvent::Push(push) => {
            if push.deleted || push.after.is_zero() {
                return Intake::Ignore(format!("{} was deleted", push.git_ref));
            }
            let Some(branch) = push.branch() else {
                return Intake::Ignore(format!("{} is not a branch", push.git_ref));
            };
            if apps.iter().any(|a| a.app.watches(&push.repository, branch)) {
                Intake::Enqueue
            } else {
                Intake::Ignore(format!(
                    "no app deploys {} from {branch}",
                    push.repository.as_str()
                ))
            }
        }
        GithubEvent::DeploymentProtectionRule(rule) if rule.action == "requested" => {
            if !listeners.protection_rules {
                Intake::Ignore(
                    "deployment protection rules are reviewed through the GitHub App, and GITHUB_APP_ID is not configured".into(),
                )
            } else if rule.installation_id.is_none() {
                Intake::Ignore("the delivery names no installation to review it as".into())
            } else {
                Intake::Enqueue
            }
        }
        GithubEvent::PullRequest(pr) if orchestrating && pr.action == "closed" => Intake::Enqueue,
        GithubEvent::WorkflowRun(run) if orchestrating && run.action == "completed" => {
            Intake::Enqueue
        }
        GithubEvent::PullRequest(pr)
            if PREVIEW_ACTIONS.contains(&pr.action.as_str())
                && apps.iter().any(|a| a.app.preview.is_some() && a.app.repository.same_as(&pr.repository)) =>
        {
            Intake::Enqueue
        }
        GithubEvent::WorkflowRun(run)
            if run.action == "completed"
                && apps.iter().any(|a| {
                    matches!(a.app.deploy.as_ref().map(|d| &d.target), Some(crate::apps::DeployTarget::GithubWorkflow { repository, .. })
                        if repository.as_ref().unwrap_or(&a.app.repository).same_as(&run.repository))
                }) =>
        {
            Intake::Enqueue
        }
        other => {
            let (name, action, _) = other.summary();
            Intake::Ignore(match action {
                Some(a) => format!("no app uses {name}.{a}"),
                None => format!("no app uses {name}"),
            })
        }
    }
}

/// The incoming request: its headers, and its body read under a cap.
pub trait Incoming {
    type Body;
    fn header(&self, name: &str) -> Option<String>;
    /// The whole body, refused at the first chunk past `limit` bytes.
    fn read_body(&self, limit: usize) -> impl Future<Output = Result<Self::Body, BodyError>>;
}

/// HMAC-SHA256 and SHA-256 over a body wherever it lives. The errors are for logs.
pub trait Mac {
    type Body;
    fn hmac_sha256(
        &self,
        key: &[u8],
        body: &Self::Body,
    ) -> impl Future<Output = Result<Vec<u8>, String>>;
    fn sha256(&self, body: &Self::Body) -> impl Future<Output = Result<Vec<u8>, String>>;
    /// The body's length in bytes.
    fn len(&self, body: &Self::Body) -> usize;
    /// The body's bytes, for the parser (called once the body is authentic).
    fn to_vec(&self, body: &Self::Body) -> Vec<u8>;
}

/// A request body that could not be taken whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("unreadable body")]
    Unreadable,
}

/// Why a delivery was not taken. Each maps to one HTTP answer
/// (`From<IntakeError> for ApiError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntakeError {
    /// A secret or binding the intake needs is missing; names it.
    #[error("{0} is not configured")]
    NotConfigured(&'static str),
    #[error(transparent)]
    Body(#[from] BodyError),
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error("missing X-GitHub-Event header")]
    MissingEvent,
    #[error("missing or invalid X-GitHub-Delivery header")]
    MissingDelivery,
    /// The payload does not parse as its event; the text names what is wrong.
    #[error("{0}")]
    Payload(String),
    /// Something failed inside: the caller sees a fixed message, the log this.
    #[error(transparent)]
    Failed(#[from] IntakeFailure),
}

/// What failed inside the intake, for the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntakeFailure {
    #[error("HMAC failed: {0}")]
    Hmac(String),
    #[error("SHA-256 of the body failed")]
    Digest,
    #[error("apps not readable: {0}")]
    Apps(StoreError),
    #[error("delivery {delivery} not recorded: {error}")]
    Record { delivery: String, error: StoreError },
}

/// What became of an authentic, recorded delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    Pong,
    /// Its id or its body was recorded before: nothing more happens.
    Duplicate,
    Ignored(String),
    /// Recorded as queued; [`Receipt::enqueue`] is its message.
    Queued,
}

/// The answer to a delivery that was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub delivery: DeliveryId,
    /// `X-GitHub-Event`.
    pub event: String,
    pub received: Received,
    /// The `Server-Timing` value: how long the signature check took (the benchmark
    /// reads the hashing cost from it). Whole milliseconds: Workers' clock counts
    /// no finer, and an integer spares the upload float formatting (some 14 KiB).
    pub timing: String,
}

impl Receipt {
    pub fn status(&self) -> u16 {
        match self.received {
            Received::Pong | Received::Duplicate => 200,
            Received::Ignored(_) | Received::Queued => 202,
        }
    }

    pub fn message(&self) -> Cow<'static, str> {
        match &self.received {
            Received::Pong => "pong".into(),
            Received::Duplicate => "Already processed".into(),
            Received::Ignored(reason) => format!("Ignored: {reason}").into(),
            Received::Queued => "Queued".into(),
        }
    }

    /// The log line of an ignored delivery.
    pub fn log(&self) -> Option<String> {
        match &self.received {
            Received::Ignored(reason) => Some(format!(
                "github: delivery {} ({}) ignored: {reason}",
                self.delivery.as_str(),
                self.event
            )),
            _ => None,
        }
    }

    /// The message to send once the answer is out, for a queued delivery only.
    pub fn enqueue(&self) -> Option<Enqueue> {
        (self.received == Received::Queued).then(|| Enqueue(self.delivery.clone()))
    }
}

/// A recorded delivery's queue message, sent after the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueue(DeliveryId);

impl Enqueue {
    pub fn message(&self) -> JobMessage {
        JobMessage::GithubDelivery {
            id: self.0.as_str().to_owned(),
        }
    }

    /// Sends it; the error is the log line (the row stays queued, and the cron
    /// sweep enqueues it).
    pub async fn send<Q: Queue>(self, queue: &Q) -> Result<(), String> {
        queue.send(&self.message()).await.map_err(|e| {
            format!(
                "github: delivery {} recorded, not enqueued ({e}); the cron sweep will enqueue it",
                self.0.as_str()
            )
        })
    }
}

/// Takes a delivery: caps, signature, headers, parse, decision, record. `sql` is
/// the database binding or the name of the missing one (needed only once the
/// delivery is authentic and parsed); `clock` is read for the signature's timing
/// and the record.
pub async fn receive<I: Incoming, M: Mac<Body = I::Body>, S: Sql + Copy>(
    request: &I,
    mac: &M,
    config: &Config,
    sql: Result<S, &'static str>,
    clock: &dyn Fn() -> Timestamp,
) -> Result<Receipt, IntakeError> {
    let secrets = config
        .github_webhook
        .as_ref()
        .map_err(|missing| IntakeError::NotConfigured(missing))?;
    BodyCap::new(MAX_BODY_BYTES)
        .check_declared(request.header("content-length").as_deref())
        .map_err(|_| BodyError::TooLarge {
            limit: MAX_BODY_BYTES,
        })?;
    let signature = Signature::parse(request.header("x-hub-signature-256").as_deref())?;
    let body = request.read_body(MAX_BODY_BYTES).await?;

    let started = clock();
    let mut authentic = false;
    for secret in secrets.all() {
        let computed = mac
            .hmac_sha256(secret.expose().as_bytes(), &body)
            .await
            .map_err(IntakeFailure::Hmac)?;
        if signature.matches(&computed) {
            authentic = true;
            break;
        }
    }
    if !authentic {
        return Err(SignatureError::Mismatch.into());
    }
    let timing = format!(
        "verify;dur={};desc=\"HMAC-SHA256 of {} bytes\"",
        clock().millis() - started.millis(),
        mac.len(&body)
    );

    let event_name = request
        .header("x-github-event")
        .filter(|e| !e.is_empty() && e.len() <= 64)
        .ok_or(IntakeError::MissingEvent)?;
    let delivery = request
        .header("x-github-delivery")
        .as_deref()
        .and_then(DeliveryId::parse)
        .ok_or(IntakeError::MissingDelivery)?;
    let event = events::parse(&event_name, &mac.to_vec(&body))
        .map_err(|e| IntakeError::Payload(e.to_string()))?;

    let sql = sql.map_err(IntakeError::NotConfigured)?;
    let apps = match event.summary().2.and_then(super::RepoFullName::parse) {
        Some(repo) => AppStore::new(sql)
            .for_repository(&repo)
            .await
            .map_err(IntakeFailure::Apps)?,
        None => Vec::new(),
    };
    let intake = decide(&event, &apps, Listeners::of(config));
    let (outcome, detail) = match &intake {
        Intake::Pong => (Outcome::Processed, None),
        Intake::Ignore(reason) => (Outcome::Ignored, Some(reason.as_str())),
        Intake::Enqueue => (Outcome::Queued, None),
    };
    // Only the body is signed: the same body under a fresh delivery id is the same
    // delivery.
    let body_hash = mac
        .sha256(&body)
        .await
        .ok()
        .and_then(|d| BodyHash::from_digest(&d))
        .ok_or(IntakeFailure::Digest)?;
    let fresh = DeliveryStore::new(sql)
        .record_body(
            &delivery,
            Some(&body_hash),
            &event,
            outcome,
            detail,
            clock(),
        )
        .await
        .map_err(|error| IntakeFailure::Record {
            delivery: delivery.as_str().to_owned(),
            error,
        })?;
    let received = match intake {
        _ if !fresh => Received::Duplicate,
        Intake::Pong => Received::Pong,
        Intake::Ignore(reason) => Received::Ignored(reason),
        Intake::Enqueue => Received::Queued,
    };
    Ok(Receipt {
        delivery,
        event: event_name,
        received,
        timing,
    })
}

#[cfg(test)]
mod receive_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apps::App;
    use crate::names::AppName;

    fn app(repo: &str, branch: &str) -> NamedApp {
        let body = format!(
            r#"{{"repository": "{repo}", "production_branch": "{branch}", "environment": "production",
            "deploy_on": "push", "deploy": {{"type": "deploy_hook", "url": "https://hooks.example.com/x"}}}}"#
        );
        NamedApp {
            name: AppName::parse("hello").expect("name"),
            app: App::parse(body.as_bytes()).expect("app"),
            created_at: 0,
            updated_at: 0,
        }
    }

    fn fixture(name: &str, event: &str) -> GithubEvent {
        let path = format!(
            "{}/../tests/fixtures/github/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        super::super::events::parse(event, &std::fs::read(path).expect("fixture")).expect("parses")
    }

    #[test]
    fn pushes_to_a_watched_branch_are_enqueued() {
        let push = fixture("push.with-new-branch.json", "push");
        assert_eq!(
            decide(
                &push,
                &[app("Codertocat/Hello-World", "master")],
                Listeners::default()
            ),
            Intake::Enqueue
        );
        assert_eq!(
            decide(
                &push,
                &[app("Codertocat/Hello-World", "main")],
                Listeners::default()
            ),
            Intake::Ignore("no app deploys Codertocat/Hello-World from master".into())
        );
        assert!(matches!(
            decide(&push, &[], Listeners::default()),
            Intake::Ignore(_)
        ));
    }

    #[test]
    fn a_preview_only_app_takes_pull_requests_but_no_pushes() {
        let only_previews = NamedApp {
            app: App::parse(
                br#"{"repository": "Codertocat/Hello-World",
                "preview": {"org": "acme", "image": "registry.fly.io/hello:{sha}"}}"#,
            )
            .expect("app"),
            ..app("Codertocat/Hello-World", "master")
        };
        let apps = [only_previews];
        assert_eq!(
            decide(
                &fixture("push.with-new-branch.json", "push"),
                &apps,
                Listeners::default()
            ),
            Intake::Ignore("no app deploys Codertocat/Hello-World from master".into())
        );
        assert_eq!(
            decide(
                &fixture("pull_request.opened.json", "pull_request"),
                &apps,
                Listeners::default()
            ),
            Intake::Enqueue
        );
    }

    #[test]
    fn deletions_tags_pings_and_the_rest() {
        let tag = fixture("push.tag-deleted.json", "push");
        assert_eq!(
            decide(
                &tag,
                &[app("Codertocat/Hello-World", "master")],
                Listeners::default()
            ),
            Intake::Ignore("refs/tags/simple-tag was deleted".into())
        );
        assert_eq!(
            decide(&fixture("ping.json", "ping"), &[], Listeners::default()),
            Intake::Pong
        );
        assert_eq!(
            decide(
                &fixture("deployment_status.json", "deployment_status"),
                &[],
                Listeners::default()
            ),
            Intake::Ignore("no app uses deployment_status.created".into())
        );
    }

    #[test]
    fn a_protection_rule_is_queued_when_the_github_app_reviews_it() {
        let rule = fixture(
            "deployment_protection_rule.requested.json",
            "deployment_protection_rule",
        );
        let app = Listeners {
            protection_rules: true,
            ..Listeners::default()
        };
        // No app needs to be registered for the repository: the App is installed on it.
        assert_eq!(decide(&rule, &[], app), Intake::Enqueue);
        assert_eq!(
            decide(&rule, &[], Listeners::default()),
            Intake::Ignore(
                "deployment protection rules are reviewed through the GitHub App, and GITHUB_APP_ID is not configured".into()
            )
        );
        let GithubEvent::DeploymentProtectionRule(r) = &rule else {
            panic!("not a protection rule")
        };
        let without_installation =
            GithubEvent::DeploymentProtectionRule(super::super::events::ProtectionRuleEvent {
                installation_id: None,
                ..r.clone()
            });
        assert_eq!(
            decide(&without_installation, &[], app),
            Intake::Ignore("the delivery names no installation to review it as".into())
        );
        let other_action =
            GithubEvent::DeploymentProtectionRule(super::super::events::ProtectionRuleEvent {
                action: "resolved".into(),
                ..r.clone()
            });
        assert_eq!(
            decide(&other_action, &[], app),
            Intake::Ignore("no app uses deployment_protection_rule.resolved".into())
        );
    }
}
