//! A recorded GitHub delivery's part in deploys (called by [`crate::dispatch`]): a
//! push becomes deploy jobs, a completed workflow run wakes the steps waiting for
//! it.

use super::pipeline::{notify_job, start_next};
use super::plan;
use super::runs::wake_waiting_steps;
use super::stale::{self, PushLink, Verdict};
use super::store::{JobStore, NewJob};
use crate::apps::{AppStore, DeployOn};
use crate::flow::{github_for, Deps, Ports, ProcessError};
use crate::github::client::GithubClient;
use crate::github::deliveries::{DeliveryId, Outcome};
use crate::github::events::{GithubEvent, PushEvent, WorkflowRunEvent};
use crate::github::CommitSha;
use crate::jobs::JobMessage;
use crate::ports::Queue;
use crate::time::Timestamp;

/// What a recorded delivery's event means for deploys: a push becomes deploy jobs,
/// a completed workflow run wakes the steps waiting for it. `None`: nothing here
/// listens to the event.
pub async fn on_event<P: Ports>(
    deps: &Deps<'_, P>,
    id: &DeliveryId,
    event: &GithubEvent,
    now: Timestamp,
) -> Option<Result<(Outcome, String), ProcessError>> {
    match event {
        GithubEvent::Push(push) => Some(process_push(deps, id, push, now).await),
        GithubEvent::WorkflowRun(run) if run.action == "completed" => Some(
            process_run(deps, run, now)
                .await
                .map(|detail| (Outcome::Processed, detail)),
        ),
        _ => None,
    }
}

async fn process_push<P: Ports>(
    deps: &Deps<'_, P>,
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
        .await?;
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
            let gh = github_for(deps, push.installation_id, now).await?;
            if !GithubClient::new(deps.http, &gh)
                .is_merge(&push.repository, &push.after)
                .await?
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
            .await?
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
                let gh = github_for(deps, push.installation_id, now).await?;
                GithubClient::new(deps.http, &gh)
                    .compare_commits(&push.repository, &push.before, &push.after)
                    .await?
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
            .await?;
        if !created {
            done.push(format!(
                "{}: job {job_id} exists for this commit",
                named.name.as_str()
            ));
            continue;
        }
        let cancelled = jobs
            .supersede(named.name.as_str(), &deploy.environment, job_id, now)
            .await?;
        let mut problems = Vec::new();
        for old in &cancelled {
            problems.extend(notify_job(deps, *old, Some(app), now).await);
        }
        let started = start_next(deps, named.name.as_str(), &deploy.environment, now).await?;
        if started != Some(job_id) {
            problems.extend(notify_job(deps, job_id, Some(app), now).await);
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
        for problem in problems {
            done.push(problem);
        }
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
async fn older_than<P: Ports>(
    deps: &Deps<'_, P>,
    jobs: &JobStore<P::S>,
    app: &str,
    environment: &str,
    push: &PushEvent,
    now: Timestamp,
) -> Result<Option<CommitSha>, ProcessError> {
    let references = jobs.references(app, environment).await?;
    if references.is_empty() {
        return Ok(None);
    }
    let history = jobs
        .push_history(app, environment, STALE_HISTORY_JOBS)
        .await?;
    let ask = match stale::verdict(&PushLink::of(push), &references, &history) {
        Verdict::StaleAgainst(deployed) => return Ok(Some(deployed.clone())),
        Verdict::Ask(ask) if ask.is_empty() => return Ok(None),
        Verdict::Ask(ask) => ask,
    };
    let gh = github_for(deps, push.installation_id, now).await?;
    let client = GithubClient::new(deps.http, &gh);
    for deployed in ask {
        if client
            .compare_status(&push.repository, deployed, &push.after)
            .await?
            .is_stale()
        {
            return Ok(Some(deployed.clone()));
        }
    }
    Ok(None)
}

async fn process_run<P: Ports>(
    deps: &Deps<'_, P>,
    run: &WorkflowRunEvent,
    now: Timestamp,
) -> Result<String, ProcessError> {
    let woken = wake_waiting_steps(deps.sql, run, now).await?;
    for (job_id, position) in &woken {
        deps.queue
            .send(&JobMessage::DeployStep {
                job_id: *job_id,
                position: *position,
            })
            .await?;
    }
    Ok(if woken.is_empty() {
        format!("workflow run {}: no step waits for it", run.id)
    } else {
        format!("workflow run {}: resumed job steps {woken:?}", run.id)
    })
}
