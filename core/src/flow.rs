//! What every flow shares, below all of them: the ports a flow runs on ([`Ports`],
//! bound once), its dependencies ([`Deps`]), the GitHub credentials for an event
//! ([`github_for`]), why processing a delivery failed ([`ProcessError`]), and what
//! the queue does with a message ([`Verdict`]).
//!
//! The flows (`deploy`, `preview`, `orchestrate`) import this module and nothing of
//! each other; [`crate::dispatch`] above them routes events and messages to them.

use crate::cloudflare::rollback::RollbackError;
use crate::config::Config;
use crate::github::app::{installation_token, RsaSigner};
use crate::github::client::{GithubConfig, GithubError};
use crate::ports::{Http, Kv, Queue, QueueError, Sql, StoreError};
use crate::secrets::Cipher;
use crate::time::Timestamp;

/// Transient failures of one step (5xx, rate limits, network) are tried this many
/// times in all, backing off per `crate::retry` (2+4+8+16 s): long enough for a
/// GitHub blip, short enough that a real outage fails the step visibly. Deploy and
/// orchestration steps share it.
pub const MAX_STEP_ATTEMPTS: i64 = 5;

/// The ports a flow runs on, named once: outgoing HTTP, the database, the `JOBS`
/// queue, KV, the GitHub App's signer and the secrets' cipher. Any tuple of
/// implementations is one.
pub trait Ports {
    type H: Http;
    type S: Sql + Copy;
    type Q: Queue;
    type K: Kv;
    type R: RsaSigner;
    type C: Cipher;
}

impl<H: Http, S: Sql + Copy, Q: Queue, K: Kv, R: RsaSigner, C: Cipher> Ports
    for (H, S, Q, K, R, C)
{
    type H = H;
    type S = S;
    type Q = Q;
    type K = K;
    type R = R;
    type C = C;
}

/// Everything a flow needs, built once per event (a request, a queue batch, a cron
/// run).
pub struct Deps<'a, P: Ports> {
    pub config: &'a Config,
    pub http: &'a P::H,
    pub sql: P::S,
    pub queue: &'a P::Q,
    /// Caches GitHub App installation tokens.
    pub kv: &'a P::K,
    /// Signs the GitHub App JWT.
    pub signer: &'a P::R,
    /// Opens the preview secrets.
    pub cipher: &'a P::C,
}

/// GitHub credentials for a job or delivery: the App installation's token when the
/// App is configured and the event came through an installation, else GITHUB_TOKEN.
pub async fn github_for<P: Ports>(
    deps: &Deps<'_, P>,
    installation_id: Option<u64>,
    now: Timestamp,
) -> Result<GithubConfig, GithubError> {
    let settings = deps
        .config
        .github
        .as_ref()
        .map_err(|missing| GithubError::Rejected(format!("{missing} is not configured")))?;
    if let (Some(app), Some(installation)) = (&settings.app, installation_id) {
        let token = installation_token(
            deps.http,
            deps.kv,
            deps.signer,
            &settings.api_base,
            app,
            installation,
            now,
        )
        .await?;
        return Ok(GithubConfig {
            api_base: settings.api_base.clone(),
            token,
        });
    }
    match &settings.token {
        Some(token) => Ok(GithubConfig { api_base: settings.api_base.clone(), token: token.clone() }),
        None => Err(GithubError::Rejected(
            "the GitHub App needs an installation id in the delivery, and GITHUB_TOKEN is not configured".into(),
        )),
    }
}

/// Why a flow could not do what an event or message asked. The text is for logs
/// and the delivery log, never for responses. Boxed ([`Failure`]): it passes up
/// through every step of the flows' async state machines, and one pointer is less to
/// keep and move than the largest kind.
#[derive(Clone, PartialEq, Eq)]
pub struct ProcessError(Box<Failure>);

/// What a flow's [`ProcessError`] is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The database failed: retried.
    #[error(transparent)]
    Store(StoreError),
    /// The `JOBS` queue refused a message: retried.
    #[error(transparent)]
    Queue(QueueError),
    /// GitHub failed (retried) or refused (for good).
    #[error(transparent)]
    Github(GithubError),
    /// A Cloudflare rollback is still under way (retried) or did not happen (for
    /// good).
    #[error(transparent)]
    Cloudflare(RollbackError),
    /// It will never work; recorded as failed.
    #[error("{0}")]
    Permanent(String),
    /// What the flow was doing when the database failed: retried.
    #[error("{what}: {source}")]
    During {
        what: &'static str,
        source: StoreError,
    },
}

impl From<Failure> for ProcessError {
    fn from(f: Failure) -> Self {
        ProcessError(Box::new(f))
    }
}

impl From<StoreError> for ProcessError {
    fn from(e: StoreError) -> Self {
        Failure::Store(e).into()
    }
}

impl From<QueueError> for ProcessError {
    fn from(e: QueueError) -> Self {
        Failure::Queue(e).into()
    }
}

impl From<RollbackError> for ProcessError {
    fn from(e: RollbackError) -> Self {
        Failure::Cloudflare(e).into()
    }
}

impl From<GithubError> for ProcessError {
    fn from(e: GithubError) -> Self {
        Failure::Github(e).into()
    }
}

// As the kind itself, as when it was not boxed.
crate::boxed::reads_as_its_kind!(ProcessError, display);

impl std::error::Error for ProcessError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl ProcessError {
    /// It will never work; recorded as failed.
    #[expect(
        non_snake_case,
        reason = "named as the kind it makes, so call sites read ProcessError::Permanent(text)"
    )]
    pub fn Permanent(why: String) -> ProcessError {
        Failure::Permanent(why).into()
    }

    pub fn failure(&self) -> &Failure {
        &self.0
    }

    /// Whether trying again later may work.
    pub fn is_transient(&self) -> bool {
        match &*self.0 {
            Failure::Store(_) | Failure::Queue(_) | Failure::During { .. } => true,
            Failure::Github(e) => e.is_transient(),
            Failure::Cloudflare(e) => {
                matches!(e, RollbackError::Later(_) | RollbackError::Unconfirmed(_))
            }
            Failure::Permanent(_) => false,
        }
    }

    /// Names what the flow was doing when the database failed: `"{what}: {e}"`.
    pub fn during(what: &'static str) -> impl Fn(StoreError) -> ProcessError {
        move |source| Failure::During { what, source }.into()
    }
}

/// What the queue does with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Done, finished earlier, or failed for good: acknowledge.
    Ack,
    /// Deliver it again after this delay.
    Retry { delay_seconds: u32 },
    /// Out of attempts: retry once more so the queue moves it to the dead-letter
    /// queue.
    DeadLetter,
}

/// One message's verdict and a line for the log (never containing a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub verdict: Verdict,
    pub log: String,
}

impl Run {
    pub fn ack(log: String) -> Run {
        Run {
            verdict: Verdict::Ack,
            log,
        }
    }

    pub fn retry(delay_seconds: u32, log: String) -> Run {
        Run {
            verdict: Verdict::Retry { delay_seconds },
            log,
        }
    }
}
