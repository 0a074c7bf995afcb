//! The one module above the flows: a recorded GitHub delivery goes to every flow
//! that listens to its event ([`process_delivery`]), a `JOBS` message to the flow
//! that owns it ([`run_job`], a whole batch in [`consume`]), and the cron's sweep to
//! each flow's ([`sweep`]). What the flows share is below them in [`crate::flow`];
//! only this module imports the flows.

use crate::flow::{Deps, Ports, ProcessError, Run, Verdict};
use crate::github::deliveries::{AfterFailure, DeliveryId, DeliveryStore, Outcome};
use crate::github::events::GithubEvent;
use crate::jobs::JobMessage;
use crate::notify::deliver::{Courier, Delivered};
use crate::notify::sends::SendStore;
use crate::notify::store::NotificationStore;
use crate::orchestrate::StepRef;
use crate::routing;
use crate::time::Timestamp;
use crate::{deploy, orchestrate, preview, protection};

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
        GithubEvent::DeploymentProtectionRule(rule) => protection::on_event(deps, id, rule, now)
            .await
            .map(processed),
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
        JobMessage::ProtectionReview { id } => Handled::from_run(
            protection::run_review(deps, *id, now).await,
            "protection: ",
            true,
        ),
        JobMessage::Notify { .. }
        | JobMessage::TelegramSend { .. }
        | JobMessage::TelegramDigest { .. }
        | JobMessage::TelegramLive { .. }
        | JobMessage::TelegramUpdate { .. } => {
            let mut out = telegram_batch(deps, std::slice::from_ref(job), now).await;
            match out.pop() {
                Some((_, handled)) => handled,
                None => Handled {
                    verdict: Verdict::Ack,
                    line: Line::Info("queue: nothing to deliver".into()),
                },
            }
        }
    }
}

/// The courier for a batch's notifications.
fn courier<'a, P: Ports>(deps: &'a Deps<'a, P>) -> Courier<'a, P::H, P::S, P::Q> {
    Courier {
        config: deps.config,
        http: deps.http,
        sql: deps.sql,
        queue: deps.queue,
    }
}

/// Delivers the Telegram messages of one batch together: notifications to route,
/// destination rows whose wait is over, digests due. Returns each message's index
/// in `jobs` with its verdict and line.
async fn telegram_batch<P: Ports>(
    deps: &Deps<'_, P>,
    jobs: &[JobMessage],
    now: Timestamp,
) -> Vec<(usize, Handled)> {
    // Each kind's messages, with their place in `jobs`.
    let (mut notify, mut sends, mut digests, mut live) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut out = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        match job {
            JobMessage::Notify { id } => notify.push((i, *id)),
            JobMessage::TelegramSend { id } => sends.push((i, *id)),
            JobMessage::TelegramDigest { id } => digests.push((i, *id)),
            JobMessage::TelegramLive { id } => live.push((i, *id)),
            // A person waits for these: first, one by one (a press's action and its
            // message come before the batch's other messages).
            JobMessage::TelegramUpdate { id } => {
                let run = telegram::run_update(deps, *id, now).await;
                out.push((i, Handled::from_run(run, "telegram: ", true)));
            }
            _ => {}
        }
    }
    let courier = courier(deps);
    let mut give = |indexed: &[(usize, i64)], delivered: Vec<Delivered>| {
        for d in delivered {
            // A batch may carry the same id twice (the sweep re-enqueued it): every
            // copy gets the verdict.
            for (i, _) in indexed.iter().filter(|(_, id)| *id == d.id) {
                let line = match d.verdict {
                    Verdict::Ack => Line::Info(format!("queue: {}", d.log)),
                    _ => Line::Error(format!("queue: {}", d.log)),
                };
                out.push((
                    *i,
                    Handled {
                        verdict: d.verdict,
                        line,
                    },
                ));
            }
        }
    };
    if !notify.is_empty() {
        let ids: Vec<i64> = notify.iter().map(|(_, id)| *id).collect();
        // The routes and the claim in one round trip's time: neither needs the other.
        let (routes, claimed) = futures_util::future::join(
            routing::Routes::load(deps.sql, deps.config),
            courier.claim(&ids, now),
        )
        .await;
        let delivered = match routes {
            Ok(routes) => {
                courier
                    .deliver_claimed(
                        &|d| routes.recipients(&crate::notify::deliver::subject_of(d)),
                        &ids,
                        claimed,
                        now,
                    )
                    .await
            }
            Err(e) => {
                let why = format!("the routes could not be read: {e}");
                courier.release(&ids, claimed, &why, now).await
            }
        };
        give(&notify, delivered);
    }
    if !sends.is_empty() {
        let ids: Vec<i64> = sends.iter().map(|(_, id)| *id).collect();
        give(&sends, courier.deliver_rows(&ids, now).await);
    }
    for (_, id) in &digests {
        give(&digests, vec![courier.flush_digest(*id, now).await]);
    }
    for (_, id) in &live {
        give(&live, vec![courier.flush_live(*id, now).await]);
    }
    out
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
    let telegram: Vec<usize> = (0..messages.len())
        .filter(|&i| messages[i].is_telegram())
        .collect();
    if dead_letters {
        for (i, job) in messages.iter().enumerate() {
            out.log.push(dead_letter(deps, job, now()).await);
            out.verdicts[i] = Some(Verdict::Ack);
        }
        return out;
    }
    // Notifications never wait behind deploy steps: the two run side by side.
    let others = async {
        let mut done = Vec::new();
        for (i, job) in messages
            .iter()
            .enumerate()
            .filter(|(_, j)| !j.is_telegram())
        {
            done.push((i, run_job(deps, job, now()).await));
        }
        done
    };
    let notes: Vec<JobMessage> = telegram.iter().map(|&i| messages[i].clone()).collect();
    let (sent, done) =
        futures_util::future::join(telegram_batch(deps, &notes, now()), others).await;
    for (k, handled) in sent {
        if let Some(&i) = telegram.get(k) {
            out.verdicts[i] = Some(handled.verdict);
            out.log.push(handled.line);
        }
    }
    for (i, handled) in done {
        out.verdicts[i] = Some(handled.verdict);
        out.log.push(handled.line);
    }
    out
}

/// A dead-lettered message: a notification or one of its messages is marked
/// failed; anything else is left to the cron's sweep.
async fn dead_letter<P: Ports>(deps: &Deps<'_, P>, job: &JobMessage, now: Timestamp) -> Line {
    match job {
        JobMessage::Notify { id } => match NotificationStore::new(deps.sql)
            .mark_dead_lettered(*id, now)
            .await
        {
            Ok(true) => Line::Error(format!(
                "queue: notification {id} dead-lettered and marked failed"
            )),
            Ok(false) => Line::Info(format!(
                "queue: notification {id} dead-lettered after it was finished"
            )),
            Err(e) => Line::Error(format!(
                "queue: notification {id} dead-lettered, not marked: {e}"
            )),
        },
        JobMessage::TelegramSend { id } => {
            let sends = SendStore::new(deps.sql);
            match sends.mark_dead_lettered(*id, now).await {
                Ok(Some(notification)) => {
                    let settled = sends.settle(&[notification], now).await;
                    let tail = settled.err().map(|e| format!(" ({e})")).unwrap_or_default();
                    Line::Error(format!(
                        "queue: telegram delivery {id} dead-lettered and marked failed{tail}"
                    ))
                }
                Ok(None) => Line::Info(format!(
                    "queue: telegram delivery {id} dead-lettered after it was finished"
                )),
                Err(e) => Line::Error(format!(
                    "queue: telegram delivery {id} dead-lettered, not marked: {e}"
                )),
            }
        }
        other => Line::Error(format!(
            "queue: dead-lettered {other:?}; the cron sweep picks up what it left unfinished"
        )),
    }
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
    for line in protection::sweep(deps, now()).await {
        log.push(format!("cron protection sweep: {line}"));
    }
    for line in crate::notify::deliver::sweep(deps.config, deps.sql, deps.queue, now()).await {
        log.push(format!("cron telegram sweep: {line}"));
    }
    for line in telegram::sweep(deps, now()).await {
        log.push(format!("cron telegram sweep: {line}"));
    }
    let limits = crate::web::auth::limit::SignInLimits::new(deps.sql);
    if let Err(e) = limits.prune(now()).await {
        log.push(format!("cron sign-in sweep: signin_attempts: {e}"));
    }
    log
}

pub mod telegram;

#[cfg(test)]
mod tests;
