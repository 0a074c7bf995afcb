//! The orchestration flow's edges inside the core: what the admin API, the `JOBS`
//! consumer and the cron call. Each resolves configuration and GitHub credentials,
//! calls the runner, then enqueues the steps it made ready and updates the
//! workflow's Telegram message.

use super::definition::OrchestrateConfig;
use super::runner::{self, AdminError, Effects, Runner};
use super::store::Workflow;
use super::StepRef;
use crate::error::ApiError;
use crate::flow::{github_for, Deps, Ports, ProcessError, Run};
use crate::github::deliveries::DeliveryId;
use crate::github::events::GithubEvent;
use crate::jobs::JobMessage;
use crate::ports::Queue;
use crate::retry::backoff_seconds;
use crate::time::Timestamp;

fn message(r: &StepRef) -> JobMessage {
    JobMessage::WorkflowStep {
        workflow_id: r.workflow_id,
        step: r.step.clone(),
    }
}

/// Whether orchestration is configured (else its events are not worth queueing).
pub fn configured(config: &crate::config::Config) -> bool {
    config.orchestrate.is_ok()
}

fn settings(config: &crate::config::Config) -> Result<&OrchestrateConfig, ApiError> {
    config.orchestrate.as_ref().map_err(|missing| {
        ApiError::Misconfigured(format!("orchestration is not configured: {missing}"))
    })
}

/// Enqueues the ready steps and announces the changed workflows; returns log lines
/// for what could not be done (the cron's sweep finds a step whose message was
/// never sent).
async fn carry_out<P: Ports>(deps: &Deps<'_, P>, effects: Effects, now: Timestamp) -> Vec<String> {
    let mut log = effects.log;
    for r in &effects.ready {
        if let Err(e) = deps.queue.send(&message(r)).await {
            log.push(format!(
                "workflow {} {}: not enqueued ({e}); the cron will",
                r.workflow_id,
                r.step.as_str()
            ));
        }
    }
    for id in effects.changed {
        log.extend(runner::announce(deps.config, deps.sql, deps.queue, id, now).await);
    }
    log
}

/// `POST /api/services`: starts a workflow and enqueues its first steps.
pub async fn start<P: Ports>(
    deps: &Deps<'_, P>,
    body: &[u8],
    now: Timestamp,
) -> Result<(Workflow, Vec<String>), AdminError> {
    let config = settings(deps.config)?;
    let created = runner::create_service(deps.sql, config, body, now).await?;
    let id = created.workflow.id;
    let log = carry_out(
        deps,
        Effects {
            ready: created.ready,
            changed: vec![id],
            log: Vec::new(),
        },
        now,
    )
    .await;
    Ok((created.workflow, log))
}

/// Applies a recorded delivery's event to the workflows waiting for it.
pub async fn on_event<P: Ports>(
    deps: &Deps<'_, P>,
    delivery: &DeliveryId,
    event: &GithubEvent,
    now: Timestamp,
) -> Result<Option<String>, ProcessError> {
    let relevant = match event {
        GithubEvent::PullRequest(pr) => pr.action == "closed",
        GithubEvent::WorkflowRun(run) => run.action == "completed",
        _ => false,
    };
    if !relevant || !configured(deps.config) {
        return Ok(None);
    }
    let effects = runner::apply_event(deps.sql, delivery, event, now).await?;
    let moved = effects.changed.clone();
    let mut log = carry_out(deps, effects, now).await;
    if !moved.is_empty() {
        log.push(format!("moved workflows {moved:?}"));
    }
    Ok((!log.is_empty()).then(|| log.join("; ")))
}

/// Runs one step (a `WorkflowStep` message) as the configured installation, or
/// with `GITHUB_TOKEN`.
pub async fn run_step<P: Ports>(deps: &Deps<'_, P>, step: &StepRef, now: Timestamp) -> Run {
    let github = match github_for(deps, deps.config.orchestrate_installation_id, now).await {
        Ok(g) => g,
        Err(e) => {
            return Run::retry(
                backoff_seconds(2),
                format!(
                    "workflow {} {}: no GitHub credentials: {e}",
                    step.workflow_id,
                    step.step.as_str()
                ),
            );
        }
    };
    let mut run = Runner {
        http: deps.http,
        sql: deps.sql,
        github: &github,
        claims: deps.config.step_claims(),
    }
    .run_step(step, now)
    .await;
    let log = carry_out(
        deps,
        Effects {
            ready: std::mem::take(&mut run.next),
            changed: vec![step.workflow_id],
            ..Effects::default()
        },
        now,
    )
    .await;
    if !log.is_empty() {
        run.log = format!("{}; {}", run.log, log.join("; "));
    }
    Run {
        verdict: run.verdict,
        log: run.log,
    }
}

/// The cron's part: timeouts, early events that now match, lost messages.
pub async fn sweep<P: Ports>(deps: &Deps<'_, P>, now: Timestamp) -> Vec<String> {
    if !configured(deps.config) {
        return Vec::new();
    }
    let effects = runner::sweep(deps.sql, deps.config.step_claims(), now).await;
    carry_out(deps, effects, now).await
}
