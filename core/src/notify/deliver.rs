//! The `JOBS` consumer's notification flow, a batch at a time: claim the rows in one
//! statement, send the messages to Telegram concurrently, record every outcome in
//! one round trip, and tell the queue what to do with each message.

use futures_util::future::join_all;

use crate::config::Config;
use crate::flow::Verdict;
use crate::notify::store::{ClaimedNotification, NotificationStatus, NotificationStore, Outcome};
use crate::ports::{Http, Sql};
use crate::telegram::{decide, render, DeliveryAction, TelegramClient};
use crate::time::Timestamp;

/// A claim older than this belongs to a consumer that died: a delivery takes at most
/// two Telegram calls of [`crate::telegram::SEND_TIMEOUT_MS`] each.
pub const CLAIM_STALE_SECONDS: i64 = 60;

/// The verdict for one message plus a line for the log (never containing a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub id: i64,
    pub verdict: Verdict,
    pub log: String,
}

/// Delivers the notifications `ids` (one queue batch) once each.
pub async fn deliver<H: Http, S: Sql>(
    config: &Config,
    http: &H,
    store: &NotificationStore<S>,
    ids: &[i64],
    now: Timestamp,
) -> Vec<Delivered> {
    let claimed = match store
        .claim(ids, now, now.minus_seconds(CLAIM_STALE_SECONDS))
        .await
    {
        Ok(c) => c,
        Err(e) => {
            return ids
                .iter()
                .map(|&id| Delivered {
                    id,
                    verdict: Verdict::Retry {
                        delay_seconds: crate::retry::BACKOFF_BASE_SECONDS,
                    },
                    log: format!("notification {id}: claim failed: {e}"),
                })
                .collect()
        }
    };
    let mut results: Vec<Delivered> = ids
        .iter()
        .filter(|id| !claimed.iter().any(|c| c.id == **id))
        .map(|&id| Delivered {
            id,
            verdict: Verdict::Ack,
            log: format!("notification {id}: already handled"),
        })
        .collect();

    let attempts = join_all(claimed.iter().map(|c| attempt(config, http, c, now))).await;
    let (outcomes, delivered): (Vec<Outcome>, Vec<Delivered>) = attempts.into_iter().unzip();
    let saved = store.record(&outcomes, now).await;
    results.extend(delivered.into_iter().map(|mut d| {
        if let Err(e) = &saved {
            d.log.push_str(&format!(" (and recording it failed: {e})"));
        }
        d
    }));
    results
}

/// One claimed notification: send it and decide what follows.
async fn attempt<H: Http>(
    config: &Config,
    http: &H,
    claimed: &ClaimedNotification,
    now: Timestamp,
) -> (Outcome, Delivered) {
    let id = claimed.id;
    let key = claimed.deployment.dedupe_key();
    let telegram = match &config.telegram {
        Ok(t) => t,
        Err(missing) => {
            // What it would have said, in the log and in `/api/deliveries`: a newcomer
            // sees the product work before setting up a bot.
            let error = format!(
                "not sent: Telegram is not configured ({missing} is missing); it would have read:\n{}",
                render(&claimed.deployment).plain
            );
            let log = format!("notification {id} ({key}): {error}");
            return finished(id, NotificationStatus::NotSent, error, Verdict::Ack, log);
        }
    };
    let message = render(&claimed.deployment);
    let sent = TelegramClient::new(http, telegram)
        .deliver(&message, false)
        .await;
    match decide(sent, claimed.attempt) {
        DeliveryAction::Sent { message_id } => (
            Outcome::Sent { id, message_id },
            Delivered {
                id,
                verdict: Verdict::Ack,
                log: format!("notification {id} ({key}): sent as message {message_id}"),
            },
        ),
        DeliveryAction::Retry {
            delay_seconds,
            error,
        } => {
            let log = format!(
                "notification {id} ({key}): attempt {} failed: {error}; retrying in {delay_seconds} s",
                claimed.attempt
            );
            let next_attempt_at = now.plus_seconds(i64::from(delay_seconds));
            (
                Outcome::Retrying {
                    id,
                    error,
                    next_attempt_at,
                },
                Delivered {
                    id,
                    verdict: Verdict::Retry { delay_seconds },
                    log,
                },
            )
        }
        DeliveryAction::GiveUp { error } => {
            let log = format!("notification {id} ({key}): failed: {error}");
            finished(
                id,
                NotificationStatus::Failed,
                error,
                Verdict::DeadLetter,
                log,
            )
        }
        DeliveryAction::Fail { error } => {
            let log = format!("notification {id} ({key}): failed permanently: {error}");
            finished(id, NotificationStatus::Failed, error, Verdict::Ack, log)
        }
    }
}

/// A notification that is done with (failed or not sent): its final row and verdict.
fn finished(
    id: i64,
    status: NotificationStatus,
    error: String,
    verdict: Verdict,
    log: String,
) -> (Outcome, Delivered) {
    (
        Outcome::Final { id, status, error },
        Delivered { id, verdict, log },
    )
}

#[cfg(test)]
mod tests;
