//! Runs deploy jobs one step per queue message. Each step is claimed (a conditional
//! update), performed, and recorded; then the next step is enqueued. A redelivered or
//! duplicated message finds its step claimed or finished and changes nothing.
//!
//! Deciding what follows a step ([`after_step`]) is pure; [`run_step`] does it.

use serde_json::json;

use super::approval::gate;
use super::store::{Job, JobField, JobStore, Step};
use super::{plan_revert, JobStatus, StepName, StepOutcome, StepState};
use crate::apps::{App, AppStore, DeployConfig, DeployTarget};
use crate::config::Config;
use crate::flow::{github_for, Deps, Ports, ProcessError, Run, Verdict, MAX_STEP_ATTEMPTS};
use crate::fly::FlyClient;
use crate::github::client::{GithubClient, GithubError};
use crate::github::{CommitSha, RepoFullName};
use crate::http::HttpRequest;
use crate::jobs::JobMessage;
use crate::live::Live;
use crate::names::AppName;
use crate::ports::{Http, Queue, SqlValue, StoreError};
use crate::retry::{backoff_seconds, seconds_until};
use crate::routes::{Outcome, Source};
use crate::telegram::escape_html;
use crate::template::{Field, Values};
use crate::time::Timestamp;

/// Health checks are tried this many times (waits double from the interval).
pub const MAX_HEALTH_ATTEMPTS: i64 = 6;
/// Deploy hooks and health checks get this long to answer.
const TARGET_TIMEOUT_MS: u32 = 30_000;

/// What the job does after a step ended, decided from the job and the outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Run the step at this position.
    Step(i64),
    /// The deploy succeeded.
    Finalized,
    /// The deploy failed; revert to this sha (appending the revert steps).
    Revert { sha: String, error: String },
    /// The deploy failed and there is nothing to revert to, or the revert failed.
    Fail { error: String },
    /// The revert succeeded.
    Reverted,
    /// Retry this step later.
    RetryIn(u32),
    /// Wait for an event; nothing to enqueue.
    Wait,
}

/// Pure: the next move after `step` of `job` ended with `outcome`.
pub fn after_step(
    job: &Job,
    step: &Step,
    outcome: &StepOutcome,
    last_good_sha: Option<&str>,
    health_interval: u32,
) -> Next {
    let reverting = job.status == JobStatus::Reverting;
    let fail = |error: String| {
        if reverting {
            Next::Fail {
                error: format!("revert failed: {error}"),
            }
        } else {
            match last_good_sha {
                Some(sha) if sha != job.sha => Next::Revert {
                    sha: sha.to_owned(),
                    error,
                },
                _ => Next::Fail {
                    error: format!("{error}; nothing to revert to"),
                },
            }
        }
    };
    if let (StepName::AwaitingApproval, StepOutcome::Failed(error)) = (step.name, outcome) {
        // Rejected or timed out: nothing was deployed, so nothing is reverted, and
        // the job's error is the decision's own ("rejected by …").
        return Next::Fail {
            error: error.clone(),
        };
    }
    match outcome {
        StepOutcome::Waiting(..) => Next::Wait,
        StepOutcome::Transient(error) => {
            let health = matches!(step.name, StepName::VerifyHealth | StepName::RevertVerify);
            let limit = if health {
                MAX_HEALTH_ATTEMPTS
            } else {
                MAX_STEP_ATTEMPTS
            };
            if step.attempts < limit {
                let attempt = u32::try_from(step.attempts).unwrap_or(u32::MAX);
                let delay = if health {
                    health_interval.saturating_mul(1 << attempt.saturating_sub(1).min(6))
                } else {
                    backoff_seconds(attempt)
                };
                Next::RetryIn(delay)
            } else {
                fail(format!(
                    "{}: {error} (after {} attempts)",
                    step.name.label(),
                    step.attempts
                ))
            }
        }
        StepOutcome::Failed(error) => fail(format!("{}: {error}", step.name.label())),
        StepOutcome::Done(_) => {
            let next = job
                .steps
                .iter()
                .find(|s| s.position > step.position && s.state == StepState::Pending);
            match next {
                Some(s) => Next::Step(s.position),
                None if reverting => Next::Reverted,
                None => Next::Finalized,
            }
        }
    }
}

fn store_err(what: &'static str) -> impl Fn(StoreError) -> ProcessError {
    ProcessError::during(what)
}

/// Runs step `position` of job `job_id` once.
pub async fn run_step<P: Ports>(
    deps: &Deps<'_, P>,
    job_id: i64,
    position: i64,
    now: Timestamp,
) -> Run {
    run_step_with(deps, job_id, position, now, None).await
}

/// Ends a step that has waited too long (the cron's timeout), as if it had failed.
pub async fn time_out_step<P: Ports>(
    deps: &Deps<'_, P>,
    job_id: i64,
    position: i64,
    error: String,
    now: Timestamp,
) -> Run {
    run_step_with(
        deps,
        job_id,
        position,
        now,
        Some(StepOutcome::Failed(error)),
    )
    .await
}

async fn run_step_with<P: Ports>(
    deps: &Deps<'_, P>,
    job_id: i64,
    position: i64,
    now: Timestamp,
    forced: Option<StepOutcome>,
) -> Run {
    match try_run_step(deps, job_id, position, now, forced).await {
        Ok(run) => run,
        // The database failed: retry the message; the claim makes that safe.
        Err(e) => Run::retry(
            backoff_seconds(1),
            format!("job {job_id} step {position}: {e}"),
        ),
    }
}

async fn try_run_step<P: Ports>(
    deps: &Deps<'_, P>,
    job_id: i64,
    position: i64,
    now: Timestamp,
    forced: Option<StepOutcome>,
) -> Result<Run, ProcessError> {
    let jobs = JobStore::new(deps.sql);
    let ack = |log: String| Ok(Run::ack(log));
    let Some(job) = jobs.get(job_id).await.map_err(store_err("job"))? else {
        return ack(format!("job {job_id}: not found"));
    };
    if !job.status.is_active() {
        return ack(format!(
            "job {job_id}: {}, step {position} not run",
            job.status.as_str()
        ));
    }
    // Nothing after an approval step runs before its run has acted on an approval
    // (one that failed it ends the job; the sweep ends it if the Worker died first).
    if let Some(held) = gate::holds(&job, position) {
        return ack(format!(
            "job {job_id} step {position}: awaiting approval (step {}), not run",
            held.position
        ));
    }
    // A forced outcome (a timeout) takes the step whatever its claim or due time.
    let claims = deps.config.step_claims();
    let claimed = if forced.is_some() {
        jobs.take_step(job_id, position, now).await
    } else {
        jobs.claim_step(job_id, position, now, claims).await
    };
    let Some(step) = claimed.map_err(store_err("claim"))? else {
        // A retry's message that came before its time goes back to wait for it.
        let due = job
            .steps
            .iter()
            .find(|s| s.position == position && s.state == StepState::Pending)
            .and_then(|s| claims.claimable_at(s.clock(), now));
        if let Some(due) = due {
            return Ok(Run::retry(
                seconds_until(due, now),
                format!("job {job_id} step {position}: not due yet"),
            ));
        }
        return ack(format!(
            "job {job_id} step {position}: finished or held elsewhere"
        ));
    };
    let app = load_app(deps, &job).await?;
    let outcome = match (&app, forced) {
        // The cron's timeout of an approval still honours a decision recorded in
        // time (between its look and its take): the step's own rule decides.
        (_, Some(_)) if step.name == StepName::AwaitingApproval => {
            let settings = app.as_ref().and_then(|a| a.deploy.as_ref()?.approval);
            gate::wait(&job, &step, settings, now)
        }
        (_, Some(forced)) => forced,
        (None, None) => StepOutcome::Failed(format!("app {} no longer exists", job.app)),
        (Some(app), None) => perform(deps, &job, &step, app, now).await,
    };
    let log_line = format!(
        "job {job_id} ({} {}) {}: {}",
        job.app,
        &job.sha[..7.min(job.sha.len())],
        step.name.as_str(),
        describe(&outcome)
    );

    let last_good = match (&outcome, job.status) {
        (StepOutcome::Failed(_) | StepOutcome::Transient(_), JobStatus::Processing) => jobs
            .last_finalized_sha(&job.app, &job.environment, job.id)
            .await
            .map_err(store_err("last finalized"))?,
        _ => None,
    };
    let next = after_step(
        &job,
        &step,
        &outcome,
        last_good.as_deref(),
        deps.config.health_check_interval_seconds,
    );

    let finished = match (&outcome, &next) {
        (StepOutcome::Done(result), _) => jobs
            .finish_step(job_id, position, StepState::Done, Some(result), None, now)
            .await
            .map_err(store_err("finish"))?,
        (StepOutcome::Waiting(result, until), _) => {
            jobs.touch_step(job_id, position, result, *until, now)
                .await
                .map_err(store_err("touch"))?;
            true
        }
        (StepOutcome::Transient(error), Next::RetryIn(delay)) => {
            let due = now.plus_seconds(i64::from(*delay));
            jobs.release_step(job_id, position, error, due, now)
                .await
                .map_err(store_err("release"))?;
            true
        }
        (StepOutcome::Transient(error) | StepOutcome::Failed(error), _) => jobs
            .finish_step(job_id, position, StepState::Failed, None, Some(error), now)
            .await
            .map_err(store_err("finish"))?,
    };
    if !finished {
        // Something else finished the step meanwhile (a decision on an approval the
        // cron was timing out): what finished it moves the job on.
        return ack(format!(
            "{log_line}; the step was finished elsewhere meanwhile"
        ));
    }
    let verdict = follow(deps, &job, app.as_ref(), next, now).await?;
    let mut log = log_line;
    if let Some(problem) = notify_job(deps, job_id, app.as_ref(), now).await {
        log.push_str(&format!(" ({problem})"));
    }
    Ok(Run { verdict, log })
}

/// The job's app as it is now (`None` once deleted).
async fn load_app<P: Ports>(deps: &Deps<'_, P>, job: &Job) -> Result<Option<App>, ProcessError> {
    let name = AppName::parse(&job.app).map_err(|e| ProcessError::Permanent(e.to_string()))?;
    Ok(AppStore::new(deps.sql)
        .get(&name)
        .await
        .map_err(store_err("app"))?
        .map(|a| a.app))
}

fn describe(outcome: &StepOutcome) -> String {
    match outcome {
        StepOutcome::Done(_) => "done".into(),
        StepOutcome::Waiting(..) => "waiting".into(),
        StepOutcome::Transient(e) => format!("transient failure: {e}"),
        StepOutcome::Failed(e) => format!("failed: {e}"),
    }
}

/// Carries out a [`Next`].
async fn follow<P: Ports>(
    deps: &Deps<'_, P>,
    job: &Job,
    app: Option<&App>,
    next: Next,
    now: Timestamp,
) -> Result<Verdict, ProcessError> {
    let jobs = JobStore::new(deps.sql);
    let enqueue = |position: i64| async move {
        deps.queue
            .send(&JobMessage::DeployStep {
                job_id: job.id,
                position,
            })
            .await
            .map_err(ProcessError::from)
    };
    match next {
        Next::Wait => Ok(Verdict::Ack),
        Next::RetryIn(delay_seconds) => Ok(Verdict::Retry { delay_seconds }),
        Next::Step(position) => {
            enqueue(position).await?;
            Ok(Verdict::Ack)
        }
        Next::Finalized => {
            jobs.set_status(job.id, JobStatus::Finalized, None, now)
                .await
                .map_err(store_err("status"))?;
            start_next(deps, &job.app, &job.environment, now).await?;
            Ok(Verdict::Ack)
        }
        Next::Reverted => {
            jobs.set_status(job.id, JobStatus::Reverted, None, now)
                .await
                .map_err(store_err("status"))?;
            start_next(deps, &job.app, &job.environment, now).await?;
            Ok(Verdict::Ack)
        }
        Next::Fail { error } => {
            jobs.skip_pending(job.id, now)
                .await
                .map_err(store_err("skip"))?;
            jobs.set_status(job.id, JobStatus::Failed, Some(&error), now)
                .await
                .map_err(store_err("status"))?;
            report_failure(deps, job, app, &error).await;
            start_next(deps, &job.app, &job.environment, now).await?;
            Ok(Verdict::Ack)
        }
        Next::Revert { sha, error } => {
            jobs.skip_pending(job.id, now)
                .await
                .map_err(store_err("skip"))?;
            report_failure(deps, job, app, &error).await;
            let Some(app) = app else {
                // A revert is only planned for an app that exists; stay safe anyway.
                jobs.set_status(job.id, JobStatus::Failed, Some(&error), now)
                    .await
                    .map_err(store_err("status"))?;
                start_next(deps, &job.app, &job.environment, now).await?;
                return Ok(Verdict::Ack);
            };
            jobs.set_field(job.id, JobField::RevertSha, SqlValue::Text(sha), now)
                .await
                .map_err(store_err("revert sha"))?;
            let first = jobs
                .append_steps(job.id, &plan_revert(app), now)
                .await
                .map_err(store_err("revert steps"))?;
            // Straight from processing: "failed" is only ever an end state.
            jobs.set_status(job.id, JobStatus::Reverting, Some(&error), now)
                .await
                .map_err(store_err("status"))?;
            enqueue(first).await?;
            Ok(Verdict::Ack)
        }
    }
}

/// Starts the app's next waiting job, if any and if none is active.
pub async fn start_next<P: Ports>(
    deps: &Deps<'_, P>,
    app: &str,
    environment: &str,
    now: Timestamp,
) -> Result<Option<i64>, ProcessError> {
    let jobs = JobStore::new(deps.sql);
    let Some(id) = jobs
        .try_start(app, environment, now)
        .await
        .map_err(store_err("start"))?
    else {
        return Ok(None);
    };
    let job = jobs
        .get(id)
        .await
        .map_err(store_err("job"))?
        .ok_or_else(|| StoreError::Row("started job vanished".into()))?;
    if let Some(first) = job.steps.iter().find(|s| s.state == StepState::Pending) {
        deps.queue
            .send(&JobMessage::DeployStep {
                job_id: id,
                position: first.position,
            })
            .await?;
    }
    Ok(Some(id))
}

/// GitHub Deployment `failure` for a failed (or cancelled) deploy (best effort: the
/// job's own record is what counts).
pub(super) async fn report_failure<P: Ports>(
    deps: &Deps<'_, P>,
    job: &Job,
    app: Option<&App>,
    error: &str,
) {
    let (Some(app), Some(deployment_id)) = (app, job.github_deployment_id) else {
        return;
    };
    if job.status != JobStatus::Processing {
        return;
    }
    let now = Timestamp::from_millis(job.updated_at);
    let Ok(github) = github_for(deps, installation(job), now).await else {
        return;
    };
    let client = GithubClient::new(deps.http, &github);
    let _ = client
        .deployment_status(
            &app.repository,
            deployment_id,
            "failure",
            &crate::text::cut(error, 140),
            None,
            job_link(deps.config, job.id).as_deref(),
        )
        .await;
}

fn job_link(config: &Config, id: i64) -> Option<String> {
    config.public_url.as_ref().map(|u| format!("{u}/jobs/{id}"))
}

fn github_err(e: GithubError) -> StepOutcome {
    if e.is_transient() {
        StepOutcome::Transient(e.to_string())
    } else {
        StepOutcome::Failed(e.to_string())
    }
}

fn installation(job: &Job) -> Option<u64> {
    job.installation_id.and_then(|i| u64::try_from(i).ok())
}

/// The sha a step deploys: the job's, or the revert's.
fn target_sha(job: &Job, step: &Step) -> Option<CommitSha> {
    let sha = match step.name {
        StepName::RevertTrigger | StepName::RevertAwait | StepName::RevertVerify => {
            job.revert_sha.as_deref()?
        }
        _ => &job.sha,
    };
    CommitSha::parse(sha)
}

async fn perform<P: Ports>(
    deps: &Deps<'_, P>,
    job: &Job,
    step: &Step,
    app: &App,
    now: Timestamp,
) -> StepOutcome {
    let Some(sha) = target_sha(job, step) else {
        return StepOutcome::Failed("no commit to deploy".into());
    };
    match step.name {
        StepName::AwaitingApproval => {
            gate::wait(job, step, app.deploy.as_ref().and_then(|d| d.approval), now)
        }
        StepName::CreateDeployment => {
            let github = match github_for(deps, installation(job), now).await {
                Ok(g) => g,
                Err(e) => return github_err(e),
            };
            let client = GithubClient::new(deps.http, &github);
            // A retried attempt reuses the deployment an earlier attempt created.
            let id = match job.github_deployment_id {
                Some(id) => id,
                None => match client
                    .create_deployment(
                        &app.repository,
                        &sha,
                        &job.environment,
                        &format!("Deploy {} by edge-notifier", job.app),
                    )
                    .await
                {
                    Ok(id) => {
                        if let Err(e) = JobStore::new(deps.sql)
                            .set_field(
                                job.id,
                                JobField::GithubDeploymentId,
                                SqlValue::Integer(id),
                                Timestamp::from_millis(job.updated_at),
                            )
                            .await
                        {
                            return StepOutcome::Transient(e.to_string());
                        }
                        id
                    }
                    Err(e) => return github_err(e),
                },
            };
            match client
                .deployment_status(
                    &app.repository,
                    id,
                    "in_progress",
                    "Deploying",
                    None,
                    job_link(deps.config, job.id).as_deref(),
                )
                .await
            {
                Ok(()) => StepOutcome::Done(json!({ "deployment_id": id })),
                Err(e) => github_err(e),
            }
        }
        StepName::Trigger | StepName::RevertTrigger => trigger(deps, job, app, &sha, now).await,
        StepName::AwaitResult | StepName::RevertAwait => await_result(deps, job, step, app).await,
        StepName::VerifyHealth | StepName::RevertVerify => match &app.health_url {
            None => StepOutcome::Done(json!({ "skipped": "no health_url" })),
            Some(url) => {
                let req = HttpRequest::get(url.clone(), TARGET_TIMEOUT_MS)
                    .header("user-agent", "edge-notifier health check");
                match deps.http.send(req).await {
                    Ok(r) if (200..300).contains(&r.status) => {
                        StepOutcome::Done(json!({ "status": r.status }))
                    }
                    Ok(r) => StepOutcome::Transient(format!("{url} answered {}", r.status)),
                    Err(e) => StepOutcome::Transient(format!("{url}: {e}")),
                }
            }
        },
        StepName::Finalize => {
            let github = match github_for(deps, installation(job), now).await {
                Ok(g) => g,
                Err(e) => return github_err(e),
            };
            let Some(id) = job.github_deployment_id else {
                return StepOutcome::Failed("no GitHub deployment was created".into());
            };
            let env_url = app.health_url.as_deref().map(origin);
            match GithubClient::new(deps.http, &github)
                .deployment_status(
                    &app.repository,
                    id,
                    "success",
                    "Deployed",
                    env_url.as_deref(),
                    job_link(deps.config, job.id).as_deref(),
                )
                .await
            {
                Ok(()) => StepOutcome::Done(json!({ "deployment_id": id, "state": "success" })),
                Err(e) => github_err(e),
            }
        }
    }
}

/// `https://host/path` → `https://host`.
fn origin(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{}", rest.split('/').next().unwrap_or(rest)),
        None => url.to_owned(),
    }
}

fn substitute(value: &serde_json::Value, sha: &CommitSha) -> serde_json::Value {
    match value {
        serde_json::Value::String(s) => s.replace("{sha}", sha.as_str()).into(),
        other => other.clone(),
    }
}

/// The app's deploy target, or the failure of a step whose app no longer has one
/// (it was changed to only preview while the job ran).
fn deploy_config(app: &App) -> Result<&DeployConfig, StepOutcome> {
    app.deploy
        .as_ref()
        .ok_or_else(|| StepOutcome::Failed("the app no longer has a deploy target".into()))
}

async fn trigger<P: Ports>(
    deps: &Deps<'_, P>,
    job: &Job,
    app: &App,
    sha: &CommitSha,
    now: Timestamp,
) -> StepOutcome {
    let deploy = match deploy_config(app) {
        Ok(d) => d,
        Err(failed) => return failed,
    };
    match &deploy.target {
        DeployTarget::DeployHook { url } => {
            let body = crate::json::text(
                &json!({ "app": job.app, "sha": sha.as_str(), "environment": job.environment }),
            );
            let req = HttpRequest::post_json(url.clone(), body, TARGET_TIMEOUT_MS)
                .header("user-agent", "edge-notifier");
            match deps.http.send(req).await {
                Ok(r) if (200..300).contains(&r.status) => {
                    StepOutcome::Done(json!({ "status": r.status }))
                }
                Ok(r) if r.status >= 500 || r.status == 429 => {
                    StepOutcome::Transient(format!("deploy hook answered {}", r.status))
                }
                Ok(r) => StepOutcome::Failed(format!("deploy hook answered {}", r.status)),
                Err(e) => StepOutcome::Transient(format!("deploy hook: {e}")),
            }
        }
        DeployTarget::GithubWorkflow {
            repository,
            workflow,
            git_ref,
            inputs,
        } => {
            let github = match github_for(deps, installation(job), now).await {
                Ok(g) => g,
                Err(e) => return github_err(e),
            };
            let repo: &RepoFullName = repository.as_ref().unwrap_or(&app.repository);
            let git_ref = git_ref.as_deref().unwrap_or(&deploy.production_branch);
            let inputs =
                crate::maps::object(inputs.iter().map(|(k, v)| (k.clone(), substitute(v, sha))));
            match GithubClient::new(deps.http, &github)
                .dispatch_workflow(repo, workflow, git_ref, &inputs)
                .await
            {
                // What the await step matches runs on (`super::runs::decides`); the
                // run GitHub creates for this dispatch is created after `now`.
                Ok(run) => StepOutcome::Done(json!({
                    "workflow_run_id": run.map(|r| r.id),
                    "repository": repo.as_str(),
                    "head_sha": sha.as_str(),
                    "workflow": workflow,
                    "dispatched_at": now.millis(),
                })),
                Err(e) => github_err(e),
            }
        }
        DeployTarget::Fly {
            app: fly_app,
            image,
        } => {
            let Ok(fly) = &deps.config.fly else {
                return StepOutcome::Failed("FLY_API_TOKEN is not configured".into());
            };
            let client = FlyClient::new(deps.http, fly);
            let image = image.replace("{sha}", sha.as_str());
            let machines = match client.machines(fly_app).await {
                Ok(m) if m.is_empty() => {
                    return StepOutcome::Failed(format!("Fly app {fly_app} has no machines"))
                }
                Ok(m) => m,
                Err(e) if e.is_transient() => return StepOutcome::Transient(e.to_string()),
                Err(e) => return StepOutcome::Failed(e.to_string()),
            };
            for m in &machines {
                if let Err(e) = client.update_image(fly_app, m, &image).await {
                    return if e.is_transient() {
                        StepOutcome::Transient(e.to_string())
                    } else {
                        StepOutcome::Failed(e.to_string())
                    };
                }
            }
            StepOutcome::Done(
                json!({ "image": image, "machines": machines.iter().map(|m| m.id.clone()).collect::<Vec<_>>() }),
            )
        }
    }
}

/// The trigger step's result, which tells what to wait for. A trigger recorded
/// before it noted its workflow and dispatch time gets the app's workflow and the
/// time the trigger step first started.
fn trigger_result(job: &Job, step: &Step, target: &DeployTarget) -> Option<serde_json::Value> {
    let trigger = job.steps.iter().rev().find(|s| {
        s.position < step.position && matches!(s.name, StepName::Trigger | StepName::RevertTrigger)
    })?;
    let mut result = trigger.result.clone()?;
    if let (Some(fields), DeployTarget::GithubWorkflow { workflow, .. }) =
        (result.as_object_mut(), target)
    {
        fields
            .entry("workflow")
            .or_insert_with(|| workflow.as_str().into());
        if let Some(started) = trigger.started_at {
            fields
                .entry("dispatched_at")
                .or_insert_with(|| started.into());
        }
    }
    Some(result)
}

async fn await_result<P: Ports>(
    deps: &Deps<'_, P>,
    job: &Job,
    step: &Step,
    app: &App,
) -> StepOutcome {
    let deploy = match deploy_config(app) {
        Ok(d) => d,
        Err(failed) => return failed,
    };
    let Some(triggered) = trigger_result(job, step, &deploy.target) else {
        return StepOutcome::Failed("the trigger left no result to wait for".into());
    };
    match &deploy.target {
        DeployTarget::DeployHook { .. } => {
            StepOutcome::Done(json!({ "skipped": "deploy hooks report no result" }))
        }
        DeployTarget::Fly { app: fly_app, .. } => {
            let Ok(fly) = &deps.config.fly else {
                return StepOutcome::Failed("FLY_API_TOKEN is not configured".into());
            };
            let client = FlyClient::new(deps.http, fly);
            let ids: Vec<String> = triggered["machines"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            for id in &ids {
                if let Err(e) = client.wait_started(fly_app, id).await {
                    return if e.is_transient() {
                        StepOutcome::Transient(e.to_string())
                    } else {
                        StepOutcome::Failed(e.to_string())
                    };
                }
            }
            StepOutcome::Done(json!({ "started": ids }))
        }
        DeployTarget::GithubWorkflow { .. } => {
            // The result comes as a workflow_run event; it may already be here.
            let waiting = json!({
                "waiting_for": "workflow_run",
                "workflow_run_id": triggered["workflow_run_id"],
                "repository": triggered["repository"],
                "head_sha": triggered["head_sha"],
                "workflow": triggered["workflow"],
                "dispatched_at": triggered["dispatched_at"],
            });
            match super::runs::find_completed_run(deps.sql, &waiting).await {
                Ok(Some(run)) => super::runs::outcome_of(&run),
                Ok(None) => StepOutcome::Waiting(waiting, None),
                Err(e) => StepOutcome::Transient(e.to_string()),
            }
        }
    }
}

/// Brings the job's Telegram message up to date wherever its routes send it (best
/// effort; never fails the job). The app's `telegram_chat_id` is a route of its own.
/// What went wrong, if anything, for the log.
pub async fn notify_job<P: Ports>(
    deps: &Deps<'_, P>,
    job_id: i64,
    app: Option<&App>,
    now: Timestamp,
) -> Option<String> {
    let jobs = JobStore::new(deps.sql);
    let job = match jobs.get(job_id).await {
        Ok(Some(job)) => job,
        Ok(None) => return None,
        Err(e) => return Some(format!("telegram: job {job_id}: {e}")),
    };
    let outcome = match job.status {
        JobStatus::Finalized => Outcome::Success,
        JobStatus::Failed | JobStatus::Reverted | JobStatus::Cancelled => Outcome::Failure,
        JobStatus::Waiting | JobStatus::Processing | JobStatus::Reverting => Outcome::InProgress,
    };
    let values = job_values(deps.config, &job);
    // Where it stands matters only to what an ended job offers.
    let here = super::store::Standing {
        status: job.status,
        newest: None,
        previous: None,
        awaiting: super::approval::gate::is_awaiting(&job),
    };
    let standing = match job.status {
        JobStatus::Finalized | JobStatus::Failed | JobStatus::Reverted => {
            match jobs.standing(job_id).await {
                Ok(s) => s.unwrap_or(here),
                Err(e) => return Some(format!("telegram: job {job_id}: {e}")),
            }
        }
        _ => here,
    };
    let live = Live {
        buttons: super::message::buttons(job_id, &standing),
        values,
        subject: format!("job:{job_id}"),
        source: Source::Deploy,
        project: &job.app,
        environment: Some(&job.environment),
        branch: job.git_ref.strip_prefix("refs/heads/"),
        outcome,
        html: super::message::render(&job, deps.config.public_url.as_deref()),
        silent: false,
        app_chat: app.and_then(|a| a.telegram_chat_id.as_deref()),
    };
    crate::live::show(deps.config, deps.sql, deps.queue, &live, now).await
}

/// A job's fields for a destination's template.
fn job_values(config: &crate::config::Config, job: &super::store::Job) -> Values {
    let head = job
        .commits
        .iter()
        .find(|c| c.id.as_str() == job.sha)
        .or(job.commits.last());
    let mut v = Values::default()
        .with(Field::Project, job.app.as_str())
        .with(Field::Environment, job.environment.as_str())
        .with(
            Field::EnvironmentEmoji,
            crate::html::env_emoji(&job.environment),
        )
        .with(Field::Commit, job.sha.as_str())
        .with(
            Field::CommitShort,
            job.sha.chars().take(7).collect::<String>(),
        )
        .with(Field::Status, super::message::status(job))
        .with(
            Field::Time,
            Timestamp::from_millis(job.updated_at).to_human(),
        );
    v.set(
        Field::Branch,
        job.git_ref.strip_prefix("refs/heads/").map(str::to_owned),
    );
    v.set(Field::CommitSubject, head.map(|c| c.subject.clone()));
    v.set(Field::Author, job.pusher.clone());
    v.set(
        Field::JobUrl,
        config
            .public_url
            .as_ref()
            .map(|u| format!("{u}/jobs/{}", job.id)),
    );
    v
}

/// Used by the Telegram message.
pub fn escape(s: &str) -> String {
    escape_html(s)
}

#[cfg(test)]
mod tests;
