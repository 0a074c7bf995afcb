//! Production deploy jobs: a push to an app's production branch becomes a job whose
//! steps run one queue message at a time. This module owns the job and step state
//! machines (which moves are allowed, so a late event never moves anything
//! backwards) and the step plan per deploy target.

pub mod approval;
pub mod chatops;
pub mod intake;
pub mod message;
pub mod pipeline;
pub mod runs;
pub mod stale;
pub mod store;
pub mod sweep;

pub use intake::on_event;
pub use pipeline::run_step;

use crate::apps::{App, DeployTarget};
use crate::json::Names;

/// How one attempt at a step ended.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    Done(serde_json::Value),
    /// Still waiting for an event (a workflow run's result, a decision); the event
    /// moves it. With a time, nothing looks at it again before then (an approval's
    /// deadline); without one, the sweep looks again after `SWEEP_AFTER_SECONDS`.
    Waiting(serde_json::Value, Option<crate::time::Timestamp>),
    /// Worth retrying (network, 5xx, rate limits, a health check not yet green).
    Transient(String),
    Failed(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Names)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Waiting,
    Processing,
    Finalized,
    Failed,
    Reverting,
    Reverted,
    Cancelled,
}

impl JobStatus {
    /// The states a job may be in for a move to `self`; anything else is a late or
    /// duplicated event and changes nothing.
    pub fn allowed_from(self) -> &'static [JobStatus] {
        use JobStatus::*;
        match self {
            Waiting => &[],
            Processing => &[Waiting],
            Finalized => &[Processing],
            // A deploy fails while processing; a revert fails while reverting.
            Failed => &[Processing, Reverting],
            // A failed deploy goes straight to reverting when there is something to
            // revert to, so "failed" is only ever seen as an end state.
            Reverting => &[Processing],
            Reverted => &[Reverting],
            // A newer push cancels a waiting job, or a running one whose approval
            // nobody has decided yet (it has deployed nothing); an operator may cancel
            // a running one too (its running step finishes, nothing after it runs).
            Cancelled => &[Waiting, Processing],
        }
    }

    /// Whether the job holds its app and environment (no other job may start).
    pub fn is_active(self) -> bool {
        matches!(self, JobStatus::Processing | JobStatus::Reverting)
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Finalized | JobStatus::Reverted | JobStatus::Cancelled
        )
    }
}

/// What a job is for: a push's deploy, or one asked for from chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Names)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Deploy,
    /// Back to the commit of the app's previous finalized job (the one move to an
    /// older commit besides a failed deploy's revert).
    Rollback,
    /// A failed or reverted job's commit, deployed again.
    Retry,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Names)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Pending,
    Started,
    Done,
    Failed,
    Skipped,
}

impl StepState {
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            StepState::Done | StepState::Failed | StepState::Skipped
        )
    }
}

/// The steps of a deploy, in order; the revert steps are appended when a deploy fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Names)]
#[serde(rename_all = "snake_case")]
pub enum StepName {
    /// Wait for a person to approve the deploy (apps with `approval` only).
    AwaitingApproval,
    /// Create the GitHub Deployment and set it `in_progress`.
    CreateDeployment,
    /// Start the deploy target.
    Trigger,
    /// Wait for the target's result (workflow run, Fly machines started).
    AwaitResult,
    /// Check `health_url`.
    VerifyHealth,
    /// GitHub Deployment `success`, job finalized.
    Finalize,
    /// Re-trigger the target with the last finalized sha.
    RevertTrigger,
    RevertAwait,
    RevertVerify,
}

impl StepName {
    /// What a person reads in the Telegram message and the API.
    pub fn label(self) -> &'static str {
        match self {
            StepName::AwaitingApproval => "Approval",
            StepName::CreateDeployment => "GitHub deployment",
            StepName::Trigger => "Trigger deploy",
            StepName::AwaitResult => "Await result",
            StepName::VerifyHealth => "Health check",
            StepName::Finalize => "Finalize",
            StepName::RevertTrigger => "Revert: trigger",
            StepName::RevertAwait => "Revert: await result",
            StepName::RevertVerify => "Revert: health check",
        }
    }
}

/// Whether the app's target reports a result worth waiting for after it is
/// triggered (an app without one deploys nothing to wait for).
fn target_has_result(app: &App) -> bool {
    match app.deploy.as_ref().map(|d| &d.target) {
        Some(DeployTarget::GithubWorkflow { .. } | DeployTarget::Fly { .. }) => true,
        // A deploy hook only acknowledges; the health check is what tells.
        Some(DeployTarget::DeployHook { .. }) | None => false,
    }
}

/// Pending when the step applies, skipped when it does not.
fn applies(yes: bool) -> StepState {
    if yes {
        StepState::Pending
    } else {
        StepState::Skipped
    }
}

/// The deploy steps for an app, each pending or (when it does not apply) skipped.
/// An app with a required approval waits for it first, before anything (the GitHub
/// Deployment included) is made; an app without one has no approval step at all.
pub fn plan(app: &App) -> Vec<(StepName, StepState)> {
    let approval = app
        .deploy
        .as_ref()
        .and_then(|d| d.required_approval())
        .map(|_| (StepName::AwaitingApproval, StepState::Pending));
    approval
        .into_iter()
        .chain([
            (StepName::CreateDeployment, StepState::Pending),
            (StepName::Trigger, StepState::Pending),
            (StepName::AwaitResult, applies(target_has_result(app))),
            (StepName::VerifyHealth, applies(app.health_url.is_some())),
            (StepName::Finalize, StepState::Pending),
        ])
        .collect()
}

/// The revert steps appended to a failed job.
pub fn plan_revert(app: &App) -> Vec<(StepName, StepState)> {
    vec![
        (StepName::RevertTrigger, StepState::Pending),
        (StepName::RevertAwait, applies(target_has_result(app))),
        (StepName::RevertVerify, applies(app.health_url.is_some())),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::FromJson;
    use serde::Serialize;

    fn app(target: &str, health: bool) -> App {
        let health = if health {
            r#", "health_url": "https://x.example.com/health""#
        } else {
            ""
        };
        App::parse(
            format!(
                r#"{{"repository": "a/b", "production_branch": "main", "environment": "production",
                "deploy_on": "push", "deploy": {target}{health}}}"#
            )
            .as_bytes(),
        )
        .expect("valid app")
    }

    #[test]
    fn plans_per_target() {
        let hook = app(
            r#"{"type": "deploy_hook", "url": "https://hooks.example.com/x"}"#,
            true,
        );
        let states: Vec<_> = plan(&hook).into_iter().map(|(_, s)| s).collect();
        use StepState::*;
        assert_eq!(states, vec![Pending, Pending, Skipped, Pending, Pending]);
        let wf = app(
            r#"{"type": "github_workflow", "workflow": "deploy.yml"}"#,
            false,
        );
        let states: Vec<_> = plan(&wf).into_iter().map(|(_, s)| s).collect();
        assert_eq!(states, vec![Pending, Pending, Pending, Skipped, Pending]);
        assert_eq!(plan_revert(&wf).len(), 3);
        // With a required approval, it is waited for first; reverts need none.
        let mut gated = wf.clone();
        if let Some(d) = gated.deploy.as_mut() {
            d.approval = Some(crate::apps::ApprovalSettings {
                required: true,
                timeout_minutes: 5,
            });
        }
        let steps = plan(&gated);
        assert_eq!(steps[0], (StepName::AwaitingApproval, Pending));
        assert_eq!(&steps[1..], plan(&wf).as_slice());
        assert_eq!(plan_revert(&gated), plan_revert(&wf));
        // `required: false` plans as if there were no approval.
        if let Some(d) = gated.deploy.as_mut() {
            d.approval = d.approval.map(|a| crate::apps::ApprovalSettings {
                required: false,
                ..a
            });
        }
        assert_eq!(plan(&gated), plan(&wf));
    }

    #[test]
    fn statuses_never_move_backwards() {
        use JobStatus::*;
        assert!(Processing.allowed_from().contains(&Waiting));
        assert!(
            !Processing.allowed_from().contains(&Finalized),
            "a late start after the end"
        );
        assert!(!Waiting.allowed_from().contains(&Processing));
        assert!(Cancelled.allowed_from() == [Waiting, Processing]);
        assert!(
            !Cancelled.allowed_from().contains(&Reverting),
            "a revert is seen through"
        );
        for k in [JobKind::Deploy, JobKind::Rollback, JobKind::Retry] {
            assert_eq!(JobKind::parse(k.as_str()), Some(k));
        }
        for s in [
            Waiting, Processing, Finalized, Failed, Reverting, Reverted, Cancelled,
        ] {
            assert_eq!(JobStatus::parse(s.as_str()), Some(s));
        }
        for n in [
            StepName::AwaitingApproval,
            StepName::CreateDeployment,
            StepName::Trigger,
            StepName::AwaitResult,
            StepName::VerifyHealth,
            StepName::Finalize,
            StepName::RevertTrigger,
            StepName::RevertAwait,
            StepName::RevertVerify,
        ] {
            assert_eq!(StepName::parse(n.as_str()), Some(n));
        }
    }

    fn round_trip<T: Serialize + FromJson + PartialEq + std::fmt::Debug>(x: T) {
        let text = serde_json::to_string(&x).expect("serialises");
        assert_eq!(crate::json::read::<T>(&text).expect("reads back"), x);
    }

    #[test]
    fn states_and_names_round_trip_through_their_json() {
        use JobStatus::*;
        for s in [
            Waiting, Processing, Finalized, Failed, Reverting, Reverted, Cancelled,
        ] {
            round_trip(s);
        }
        for s in [
            StepState::Pending,
            StepState::Started,
            StepState::Done,
            StepState::Failed,
            StepState::Skipped,
        ] {
            round_trip(s);
        }
        for n in [
            StepName::AwaitingApproval,
            StepName::CreateDeployment,
            StepName::Trigger,
            StepName::AwaitResult,
            StepName::VerifyHealth,
            StepName::Finalize,
            StepName::RevertTrigger,
            StepName::RevertAwait,
            StepName::RevertVerify,
        ] {
            round_trip(n);
        }
    }
}
