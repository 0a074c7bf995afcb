//! The one module above the flows: a recorded GitHub delivery goes to every flow
//! that listens to its event ([`process_delivery`]), a `JOBS` message to the flow
//! that owns it ([`run_job`], a whole batch in [`consume`]), and the cron's sweep to
//! each flow's ([`sweep`]). What the flows share is below them in [`crate::flow`];
//! only this module imports the flows.

use crate::flow::{Deps, Ports, ProcessError, Run, Verdict};
use crate::github::deliveries::{AfterFailure, DeliveryId, DeliveryStore, Outcome};
use crate::github::events::GithubEvent;
use crate::jobs::JobMessage;
use crate::notify::deliver::deliver;
use crate::notify::store::NotificationStore;
use crate::orchestrate::StepRef;
use crate::time::Timestamp;
use crate::{deploy, orchestrate, preview};

/// Processes delivery `id` once; returns a line for the log. Its outcome is
/// recorded unless the failure is worth retrying.
pub async fn process_delivery<P: Ports>(
    deps: &Deps<'_, P>,
    id: &DeliveryId,
    now: Timestamp,
) -> Result<String, ProcessError> {
    let deliveries = DeliveryStore::new(deps.sql);
    let Some(event) = deliveries.event(id).await? else {
        return Ok(format!("delivery {}: not recorded", id.as_str()));
    };
    let processed = |detail: String| (Outcome::Processed, detail);
    let mut result = match &event {
        GithubEvent::PullRequest(pr) => {
            let seq = deliveries.sequence(id).await?;
            preview::on_event(deps, pr, seq.unwrap_or(0), now)
                .await
                .map(processed)
        }
        other => deploy::on_event(deps, id, other, now)
            .await
            .unwrap_or_else(|| Ok(processed("nothing to do".to_owned()))),
    };
    // The same event may also move an orchestration workflow.
    if let Ok((outcome, detail)) = &mut result {
        if let Some(more) = orchestrate::on_event(deps, id, &event, now).await? {
            detail.push_str("; ");
            detail.push_str(&more);
            *outcome = Outcome::Processed;
        }
    }
    match &result {
        Ok((outcome, detail)) => {
            deliveries
                .set_outcome(id, *outcome, Some(detail), now)
                .await?
        }
        Err(e) if !e.is_transient() => {
            deliveries
                .set_outcome(id, Outcome::Failed, Some(&e.to_string()), now)
                .await?
        }
        Err(_) => {}
    }
    result.map(|(_, detail)| format!("delivery {}: {detail}", id.as_str()))
}

/// Processes delivery `id` once for the queue. A transient failure counts as an
/// attempt: retried with a growing delay until the cap
/// ([`crate::github::deliveries::MAX_PROCESS_ATTEMPTS`]), then marked failed with the
/// last error.
pub async fn run_delivery<P: Ports>(deps: &Deps<'_, P>, id: &DeliveryId, now: Timestamp) -> Run {
    let error = match process_delivery(deps, id, now).await {
        Ok(log) => return Run::ack(log),
        Err(e) if !e.is_transient() => {
            return Run::ack(format!("delivery {} failed: {e}", id.as_str()))
        }
        Err(e) => e.to_string(),
    };
    let base = deps.config.delivery_retry_base_seconds;
    match DeliveryStore::new(deps.sql)
        .record_failure(id, &error, base, now)
        .await
    {
        Ok(Some((attempts, AfterFailure::RetryIn(delay_seconds)))) => Run::retry(
            delay_seconds,
            format!(
                "delivery {}: attempt {attempts} failed: {error}; retrying in {delay_seconds} s",
                id.as_str()
            ),
        ),
        Ok(Some((attempts, AfterFailure::GiveUp))) => Run::ack(format!(
            "delivery {}: failed after {attempts} attempts: {error}",
            id.as_str()
        )),
        // Finished meanwhile (another copy of the message): nothing to retry.
        Ok(None) => Run::ack(format!(
            "delivery {}: {error}; it is no longer queued",
            id.as_str()
        )),
        Err(e) => Run::retry(
            base.max(1),
            format!(
                "delivery {}: {error}; the attempt was not recorded: {e}",
                id.as_str()
            ),
        ),
    }
}

/// A line for the Worker's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Info(String),
    Error(String),
}

/// One message's verdict, and what to log about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handled {
    pub verdict: Verdict,
    pub line: Line,
}

impl Handled {
    /// An acknowledged run logs as information, a retried one as an error; `tag`
    /// is its flow's prefix and `say_delay` adds "retrying in …" to the line.
    fn from_run(run: Run, tag: &str, say_delay: bool) -> Handled {
        let line = match run.verdict {
            Verdict::Ack => Line::Info(format!("{tag}{}", run.log)),
            Verdict::Retry { delay_seconds } if say_delay => {
                Line::Error(format!("{tag}{}; retrying in {delay_seconds} s", run.log))
            }
            Verdict::Retry { .. } | Verdict::DeadLetter => Line::Error(format!("{tag}{}", run.log)),
        };
        Handled {
            verdict: run.verdict,
            line,
        }
    }
}

/// Runs one `JOBS` message (other than a notification, which [`consume`] delivers
/// with the rest of its batch) in the flow that owns it.
pub async fn run_job<P: Ports>(deps: &Deps<'_, P>, job: &JobMessage, now: Timestamp) -> Handled {
    match job {
        JobMessage::GithubDelivery { id } => {
            let Some(id) = DeliveryId::parse(id) else {
                return Handled {
                    verdict: Verdict::Ack,
                    line: Line::Error(
                        "deploy: dropping a message with an invalid delivery id".into(),
                    ),
                };
            };
            Handled::from_run(run_delivery(deps, &id, now).await, "github: ", false)
        }
        JobMessage::DeployStep { job_id, position } => Handled::from_run(
            deploy::run_step(deps, *job_id, *position, now).await,
            "deploy: ",
            true,
        ),
        JobMessage::Preview { id } => {
            Handled::from_run(preview::run_step(deps, *id, now).await, "", true)
        }
        JobMessage::WorkflowStep { workflow_id, step } => {
            let step = StepRef {
                workflow_id: *workflow_id,
                step: step.clone(),
            };
            Handled::from_run(
                orchestrate::run_step(deps, &step, now).await,
                "orchestrate: ",
                true,
            )
        }
        JobMessage::Notify { id } => {
            let store = NotificationStore::new(deps.sql);
            let out = deliver(deps.config, deps.http, &store, &[*id], now).await;
            match out.into_iter().next() {
                Some(out) => Handled::from_run(
                    Run {
                        verdict: out.verdict,
                        log: out.log,
                    },
                    "queue: ",
                    false,
                ),
                None => Handled {
                    verdict: Verdict::Ack,
                    line: Line::Info(format!("queue: notification {id}: nothing to deliver")),
                },
            }
        }
    }
}

/// What the queue does with each message of a batch (in the batch's order; `None`:
/// the batch's end acknowledges it), and the lines to log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Consumed {
    pub verdicts: Vec<Option<Verdict>>,
    pub log: Vec<Line>,
}

/// One `JOBS` batch (or one of its dead-letter queue, `dead_letters`). Deploy
/// steps, previews, workflow steps and deliveries run one after another (steps of
/// one job must not race, and they are few); the notifications are delivered
/// together. A dead-lettered notification is marked failed; any other dead letter
/// is acknowledged, and the cron's sweep picks up what it left unfinished. `now`
/// reads the clock for each message.
pub async fn consume<P: Ports>(
    deps: &Deps<'_, P>,
    messages: &[JobMessage],
    dead_letters: bool,
    now: impl Fn() -> Timestamp,
) -> Consumed {
    let mut out = Consumed {
        verdicts: vec![None; messages.len()],
        log: Vec::new(),
    };
    let mut notify = Vec::new();
    for (i, job) in messages.iter().enumerate() {
        if let JobMessage::Notify { id } = job {
            notify.push((i, *id));
            continue;
        }
        if dead_letters {
            out.log.push(Line::Error(format!(
                "queue: dead-lettered {job:?}; the cron sweep picks up what it left unfinished"
            )));
            out.verdicts[i] = Some(Verdict::Ack);
            continue;
        }
        let handled = run_job(deps, job, now()).await;
        out.verdicts[i] = Some(handled.verdict);
        out.log.push(handled.line);
    }
    if notify.is_empty() {
        return out;
    }
    let store = NotificationStore::new(deps.sql);
    if dead_letters {
        for (i, id) in notify {
            out.log
                .push(match store.mark_dead_lettered(id, now()).await {
                    Ok(true) => Line::Error(format!(
                        "queue: notification {id} dead-lettered and marked failed"
                    )),
                    Ok(false) => Line::Info(format!(
                        "queue: notification {id} dead-lettered after it was finished"
                    )),
                    Err(e) => Line::Error(format!(
                        "queue: notification {id} dead-lettered, not marked: {e}"
                    )),
                });
            out.verdicts[i] = Some(Verdict::Ack);
        }
        return out;
    }
    let ids: Vec<i64> = notify.iter().map(|(_, id)| *id).collect();
    for delivered in deliver(deps.config, deps.http, &store, &ids, now()).await {
        // A message may carry the same id twice (the sweep re-enqueued it): every
        // copy gets the verdict.
        for (i, _) in notify.iter().filter(|(_, id)| *id == delivered.id) {
            out.verdicts[*i] = Some(delivered.verdict);
        }
        out.log.push(match delivered.verdict {
            Verdict::Ack => Line::Info(format!("queue: {}", delivered.log)),
            _ => Line::Error(format!("queue: {}", delivered.log)),
        });
    }
    out
}

/// The cron's part in the flows: each flow's sweep, as lines for the log.
pub async fn sweep<P: Ports>(deps: &Deps<'_, P>, now: impl Fn() -> Timestamp) -> Vec<String> {
    let mut log = Vec::new();
    for line in deploy::sweep::sweep(deps, now()).await {
        log.push(format!("cron deploy sweep: {line}"));
    }
    for line in preview::flow::sweep(deps, now()).await {
        log.push(format!("cron preview sweep: {line}"));
    }
    for line in orchestrate::drive::sweep(deps, now()).await {
        log.push(format!("cron workflow sweep: {line}"));
    }
    log
}

#[cfg(test)]
mod tests;
