//! The cron's part in deploys: approvals waiting past their deadline fail ("approval
//! timed out"), steps whose consumer died are run again, await steps re-check for
//! their result (it may have come in a delivery no app claimed) and fail once they
//! have waited longer than `AWAIT_TIMEOUT_MINUTES`, and deliveries whose queue
//! message was lost are enqueued again.

use super::approval::gate;
use super::pipeline::{start_next, time_out_step};
use super::store::JobStore;
use super::{JobStatus, StepName, StepState};
use crate::flow::{Deps, Ports};
use crate::github::deliveries::DeliveryStore;
use crate::jobs::JobMessage;
use crate::ports::Queue;
use crate::time::Timestamp;

/// Steps and deliveries handled per cron run; the rest wait for the next.
pub const SWEEP_BATCH: u32 = 50;

pub async fn sweep<P: Ports>(deps: &Deps<'_, P>, now: Timestamp) -> Vec<String> {
    let mut log = Vec::new();
    let jobs = JobStore::new(deps.sql);
    // An approval is never looked at before its deadline (nothing polls it); once
    // that has passed, the job fails.
    match jobs.expired_approvals(now, SWEEP_BATCH).await {
        Ok(expired) => {
            for (job_id, position) in expired {
                let run = time_out_step(deps, job_id, position, gate::TIMED_OUT.into(), now).await;
                log.push(format!("timed out: {}", run.log));
            }
        }
        Err(e) => log.push(format!("approvals: {e}")),
    }
    // A step untouched for SWEEP_AFTER_SECONDS lost its consumer or its message,
    // or is a wait due for another look; it is run again only when the claim rule
    // allows (a stale claim, a retry whose time has come).
    let cutoff = now.minus_seconds(i64::from(deps.config.sweep_after_seconds));
    let claims = deps.config.step_claims();
    let stale = match jobs.stale_steps(cutoff, claims, now, SWEEP_BATCH).await {
        Ok(s) => s,
        Err(e) => return vec![format!("deploy sweep: {e}")],
    };
    let timeout = i64::from(deps.config.await_timeout_minutes) * 60;
    for (job_id, position) in stale {
        let step = match jobs.get(job_id).await {
            Ok(Some(job)) => job.steps.into_iter().find(|s| s.position == position),
            Ok(None) => None,
            Err(e) => {
                log.push(format!("job {job_id}: {e}"));
                continue;
            }
        };
        let Some(step) = step else { continue };
        let waiting = matches!(step.name, StepName::AwaitResult | StepName::RevertAwait);
        let started = step.started_at.map(Timestamp::from_millis).unwrap_or(now);
        if waiting && started < now.minus_seconds(timeout) {
            let minutes = deps.config.await_timeout_minutes;
            let run = time_out_step(
                deps,
                job_id,
                position,
                format!("no result within {minutes} minutes"),
                now,
            )
            .await;
            log.push(format!("timed out: {}", run.log));
            continue;
        }
        // Run it again: its claim takes it over from a dead consumer, and a waiting
        // step looks for its result once more.
        match deps
            .queue
            .send(&JobMessage::DeployStep { job_id, position })
            .await
        {
            Ok(()) => log.push(format!(
                "job {job_id} step {position} ({}) re-enqueued",
                step.name.as_str()
            )),
            Err(e) => log.push(format!("job {job_id} step {position}: {e}")),
        }
    }

    // Jobs whose last step finished but whose status never moved: finish them from
    // their steps, and let the app's next job start.
    match jobs.stranded(cutoff, SWEEP_BATCH).await {
        Ok(ids) => {
            for id in ids {
                let Ok(Some(job)) = jobs.get(id).await else {
                    continue;
                };
                let failed = job.steps.iter().find(|s| s.state == StepState::Failed);
                let (to, error) = match (failed, job.status) {
                    // A rejected or timed out approval ends the job as it said.
                    (Some(s), _) if s.name == StepName::AwaitingApproval => {
                        (JobStatus::Failed, s.error.clone())
                    }
                    (Some(s), _) => (
                        JobStatus::Failed,
                        Some(format!(
                            "{} failed; interrupted before the job moved on",
                            s.name.label()
                        )),
                    ),
                    (None, JobStatus::Reverting) => (JobStatus::Reverted, None),
                    (None, _) => (JobStatus::Finalized, None),
                };
                match jobs.set_status(id, to, error.as_deref(), now).await {
                    Ok(true) => {
                        log.push(format!("job {id}: {} after an interruption", to.as_str()));
                        if let Err(e) = start_next(deps, &job.app, &job.environment, now).await {
                            log.push(format!("job {id}: next job not started: {e}"));
                        }
                    }
                    Ok(false) => {}
                    Err(e) => log.push(format!("job {id}: {e}")),
                }
            }
        }
        Err(e) => log.push(format!("stranded jobs: {e}")),
    }

    let deliveries = DeliveryStore::new(deps.sql);
    match deliveries.lost(cutoff, SWEEP_BATCH).await {
        Ok(ids) => {
            for id in ids {
                match deps
                    .queue
                    .send(&JobMessage::GithubDelivery {
                        id: id.as_str().to_owned(),
                    })
                    .await
                {
                    Ok(()) => {
                        let _ = deliveries.touch(&id, now).await;
                        log.push(format!("delivery {} re-enqueued", id.as_str()));
                    }
                    Err(e) => log.push(format!("delivery {}: {e}", id.as_str())),
                }
            }
        }
        Err(e) => log.push(format!("delivery sweep: {e}")),
    }
    log
}
