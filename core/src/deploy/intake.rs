//! Processing a recorded GitHub delivery (the `JOBS` consumer's side of `/github`):
//! a push becomes deploy jobs, a completed workflow run wakes the steps waiting for
//! it. The delivery's outcome is recorded either way.

use super::pipeline::{github_for, notify_job, start_next, Deps};
use super::plan;
use super::runs::wake_waiting_steps;
use super::stale::{self, PushLink, Verdict};
use super::store::{JobStore, NewJob};
use crate::apps::{AppStore, DeployOn};
use crate::github::app::RsaSigner;
use crate::github::client::{GithubClient, GithubError};
use crate::github::deliveries::{AfterFailure, DeliveryId, DeliveryStore, Outcome};
use crate::github::events::{GithubEvent, PushEvent, WorkflowRunEvent};
use crate::github::CommitSha;
use crate::jobs::JobMessage;
use crate::ports::{Http, Kv, Queue, Sql};
use crate::time::Timestamp;

/// Why a delivery could not be processed now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessError {
    /// Retry the message later (GitHub or the database hiccuped).
    Transient(String),
    /// It will never work; recorded as failed.
    Permanent(String),
}

fn transient(e: impl std::fmt::Display) -> ProcessError {
    ProcessError::Transient(e.to_string())
}

fn github(e: GithubError) -> ProcessError {
    if e.is_transient() {
        ProcessError::Transient(e.to_string())
    } else {
        ProcessError::Permanent(e.to_string())
    }
}

/// Processes delivery `id` once; returns a line for the log.
pub async fn process_delivery<H: Http, S: Sql + Copy, Q: Queue, K: Kv, R: RsaSigner>(
    deps: &Deps<'_, H, S, Q, K, R>,
    id: &DeliveryId,
    now: Timestamp,
) -> Result<String, ProcessError> {
    let deliveries = DeliveryStore::new(deps.sql);
    let Some(event) = deliveries.event(id).await.map_err(transient)? else {
        return Ok(format!("delivery {}: not recorded", id.as_str()));
    };
    let processed = |detail: String| (Outcome::Processed, detail);
    let mut result = match &event {
        GithubEvent::Push(push) => process_push(deps, id, push, now).await,
        GithubEvent::WorkflowRun(run) if run.action == "completed" => {
            process_run(deps, run, now).await.map(processed)
        }
        GithubEvent::PullRequest(pr) => {
            let seq = deliveries.sequence(id).await.map_err(transient)?;
            crate::preview::flow::on_pull_request(deps, pr, seq.unwrap_or(0), now)
                .await
                .map(processed)
        }
        _ => Ok(processed("nothing to do".to_owned())),
    };
    // The same event may also move an orchestration workflow.
    if let Ok((outcome, detail)) = &mut result {
        if let Some(more) = crate::orchestrate::drive::on_event(deps, id, &event, now).await? {
            detail.push_str("; ");
            detail.push_str(&more);
            *outcome = Outcome::Processed;
        }
    }
    match &result {
        Ok((outcome, detail)) => deliveries
            .set_outcome(id, *outcome, Some(detail), now)
            .await
            .map_err(transient)?,
        Err(ProcessError::Permanent(e)) => deliveries
            .set_outcome(id, Outcome::Failed, Some(e), now)
            .await
            .map_err(transient)?,
        Err(ProcessError::Transient(_)) => {}
    }
    result.map(|(_, detail)| format!("delivery {}: {detail}", id.as_str()))
}

/// What the queue does with a delivery's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryVerdict {
    /// Done, failed for good, or given up on: acknowledge.
    Ack,
    /// Deliver it again after this many seconds.
    RetryIn(u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRun {
    pub verdict: DeliveryVerdict,
    pub log: String,
}

/// Processes delivery `id` once for the queue. A transient failure counts as an
/// attempt: retried with a growing delay until the cap
/// ([`crate::github::deliveries::MAX_PROCESS_ATTEMPTS`]), then marked failed with the
/// last error.
pub async fn run_delivery<H: Http, S: Sql + Copy, Q: Queue, K: Kv, R: RsaSigner>(
    deps: &Deps<'_, H, S, Q, K, R>,
    id: &DeliveryId,
    now: Timestamp,
) -> DeliveryRun {
    let ack = |log: String| DeliveryRun {
        verdict: DeliveryVerdict::Ack,
        log,
    };
    let error = match process_delivery(deps, id, now).await {
        Ok(log) => return ack(log),
        Err(ProcessError::Permanent(e)) => {
            return ack(format!("delivery {} failed: {e}", id.as_str()))
        }
        Err(ProcessError::Transient(e)) => e,
    };
    let base = deps.config.delivery_retry_base_seconds;
    match DeliveryStore::new(deps.sql)
        .record_failure(id, &error, base, now)
        .await
    {
        Ok(Some((attempts, AfterFailure::RetryIn(delay_seconds)))) => DeliveryRun {
            verdict: DeliveryVerdict::RetryIn(delay_seconds),
            log: format!(
                "delivery {}: attempt {attempts} failed: {error}; retrying in {delay_seconds} s",
                id.as_str()
            ),
        },
        Ok(Some((attempts, AfterFailure::GiveUp))) => ack(format!(
            "delivery {}: failed after {attempts} attempts: {error}",
            id.as_str()
        )),
        // Finished meanwhile (another copy of the message): nothing to retry.
        Ok(None) => ack(format!(
            "delivery {}: {error}; it is no longer queued",
            id.as_str()
        )),
        Err(e) => DeliveryRun {
            verdict: DeliveryVerdict::RetryIn(base.max(1)),
            log: format!(
                "delivery {}: {error}; the attempt was not recorded: {e}",
                id.as_str()
            ),
        },
    }
}

async fn process_push<H: Http, S: Sql + Copy, Q: Queue, K: Kv, R: RsaSigner>(
    deps: &Deps<'_, H, S, Q, K, R>,
    delivery: &DeliveryId,
    push: &PushEvent,
    now: Timestamp,
) -> Result<(Outcome, String), ProcessError> {
    let Some(branch) = push.branch() else {
        return Ok((
            Outcome::Processed,
            format!("{} is not a branch", push.git_ref),
        ));
    };
    if push.deleted || push.after.is_zero() {
        return Ok((Outcome::Processed, format!("{} was deleted", push.git_ref)));
    }
    let apps = AppStore::new(deps.sql)
        .for_repository(&push.repository)
        .await
        .map_err(transient)?;
    let jobs = JobStore::new(deps.sql);
    let mut done = Vec::new();
    let mut stale_apps = 0;
    let mut complete_commits = None;
    // An app without a deploy target (one that only previews) watches no branch.
    for (named, deploy) in apps
        .iter()
        .filter(|a| a.app.watches(&push.repository, branch))
        .filter_map(|a| Some((a, a.app.deploy.as_ref()?)))
    {
        let app = &named.app;
        if deploy.deploy_on == DeployOn::Merge {
            let gh = github_for(deps, push.installation_id, now)
                .await
                .map_err(github)?;
            if !GithubClient::new(deps.http, &gh)
                .is_merge(&push.repository, &push.after)
                .await
                .map_err(github)?
            {
                done.push(format!("{}: not a merge", named.name.as_str()));
                continue;
            }
        }
        if let Some(job_id) = jobs
            .existing(
                &named.name,
                &deploy.environment,
                &push.after,
                Some(delivery),
            )
            .await
            .map_err(transient)?
        {
            done.push(format!(
                "{}: job {job_id} exists for this commit",
                named.name.as_str()
            ));
            continue;
        }
        if let Some(deployed) = older_than(
            deps,
            &jobs,
            named.name.as_str(),
            &deploy.environment,
            push,
            now,
        )
        .await?
        {
            stale_apps += 1;
            done.push(format!(
                "{}: {}",
                named.name.as_str(),
                stale::reason(&push.after, &deployed)
            ));
            continue;
        }
        // A webhook lists at most 2,048 commits: at the cap, ask for all of them.
        if complete_commits.is_none() {
            complete_commits = Some(if push.commits_capped() && !push.before.is_zero() {
                let gh = github_for(deps, push.installation_id, now)
                    .await
                    .map_err(github)?;
                GithubClient::new(deps.http, &gh)
                    .compare_commits(&push.repository, &push.before, &push.after)
                    .await
                    .map_err(github)?
            } else {
                push.commits.clone()
            });
        }
        let commits = complete_commits.as_deref().unwrap_or(&push.commits);
        let steps = plan(app);
        let (job_id, created) = jobs
            .create(
                &NewJob {
                    app: &named.name,
                    environment: &deploy.environment,
                    sha: &push.after,
                    before: (!push.before.is_zero()).then_some(&push.before),
                    forced: push.forced,
                    git_ref: &push.git_ref,
                    delivery_id: Some(delivery),
                    pusher: push.pusher.as_deref(),
                    installation_id: push.installation_id,
                    commits,
                    steps: &steps,
                },
                now,
            )
            .await
            .map_err(transient)?;
        if !created {
            done.push(format!(
                "{}: job {job_id} exists for this commit",
                named.name.as_str()
            ));
            continue;
        }
        let cancelled = jobs
            .supersede(named.name.as_str(), &deploy.environment, job_id, now)
            .await
            .map_err(transient)?;
        for old in &cancelled {
            notify_job(deps, *old, Some(app), now).await;
        }
        let started = start_next(deps, named.name.as_str(), &deploy.environment, now)
            .await
            .map_err(ProcessError::Transient)?;
        if started != Some(job_id) {
            notify_job(deps, job_id, Some(app), now).await;
        }
        done.push(format!(
            "{}: job {job_id} {}{}",
            named.name.as_str(),
            if started == Some(job_id) {
                "started"
            } else {
                "waiting"
            },
            if cancelled.is_empty() {
                String::new()
            } else {
                format!(", superseding {cancelled:?}")
            }
        ));
    }
    if done.is_empty() {
        done.push(format!(
            "no app deploys {} from {branch}",
            push.repository.as_str()
        ));
    }
    // Older than what every app deploys: ignored, and it says why.
    let outcome = if stale_apps > 0 && stale_apps == done.len() {
        Outcome::Ignored
    } else {
        Outcome::Processed
    };
    Ok((outcome, done.join("; ")))
}

/// The recorded pushes a stale check walks: the app's newest jobs. Older history
/// goes to GitHub's compare API.
const STALE_HISTORY_JOBS: u32 = 50;

/// The commit the app deploys (or is deploying, or will deploy next) that `push` is
/// not newer than, if any: decided from the recorded chain of pushes where it
/// reaches, else by GitHub's compare API (an error there is retried).
async fn older_than<H: Http, S: Sql + Copy, Q: Queue, K: Kv, R: RsaSigner>(
    deps: &Deps<'_, H, S, Q, K, R>,
    jobs: &JobStore<S>,
    app: &str,
    environment: &str,
    push: &PushEvent,
    now: Timestamp,
) -> Result<Option<CommitSha>, ProcessError> {
    let references = jobs.references(app, environment).await.map_err(transient)?;
    if references.is_empty() {
        return Ok(None);
    }
    let history = jobs
        .push_history(app, environment, STALE_HISTORY_JOBS)
        .await
        .map_err(transient)?;
    let ask = match stale::verdict(&PushLink::of(push), &references, &history) {
        Verdict::StaleAgainst(deployed) => return Ok(Some(deployed.clone())),
        Verdict::Ask(ask) if ask.is_empty() => return Ok(None),
        Verdict::Ask(ask) => ask,
    };
    let gh = github_for(deps, push.installation_id, now)
        .await
        .map_err(github)?;
    let client = GithubClient::new(deps.http, &gh);
    for deployed in ask {
        if client
            .compare_status(&push.repository, deployed, &push.after)
            .await
            .map_err(github)?
            .is_stale()
        {
            return Ok(Some(deployed.clone()));
        }
    }
    Ok(None)
}

async fn process_run<H: Http, S: Sql + Copy, Q: Queue, K: Kv, R: RsaSigner>(
    deps: &Deps<'_, H, S, Q, K, R>,
    run: &WorkflowRunEvent,
    now: Timestamp,
) -> Result<String, ProcessError> {
    let woken = wake_waiting_steps(deps.sql, run, now)
        .await
        .map_err(transient)?;
    for (job_id, position) in &woken {
        deps.queue
            .send(&JobMessage::DeployStep {
                job_id: *job_id,
                position: *position,
            })
            .await
            .map_err(transient)?;
    }
    Ok(if woken.is_empty() {
        format!("workflow run {}: no step waits for it", run.id)
    } else {
        format!("workflow run {}: resumed job steps {woken:?}", run.id)
    })
}
