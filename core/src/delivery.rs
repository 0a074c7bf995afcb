//! The `JOBS` consumer's notification flow: claim the row, send it to Telegram, and
//! record what happened. Returns what the queue should do with the message.

use crate::config::Config;
use crate::ports::{Http, Sql};
use crate::store::{NotificationStatus, NotificationStore};
use crate::telegram::{decide, render, DeliveryAction, TelegramClient};
use crate::time::Timestamp;

/// A claim older than this belongs to a consumer that died: a delivery takes at most
/// two Telegram calls of [`crate::telegram::SEND_TIMEOUT_MS`] each.
pub const CLAIM_STALE_SECONDS: i64 = 60;

/// What to do with the queue message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Done (delivered, finished earlier, or failed for good): acknowledge.
    Ack,
    /// Deliver again after this delay.
    Retry { delay_seconds: u32 },
    /// Out of attempts: retry once more so the queue moves it to the dead-letter queue.
    DeadLetter,
}

/// The outcome plus a line for the log (never containing a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub verdict: Verdict,
    pub log: String,
}

/// Delivers notification `id` once.
pub async fn deliver<H: Http, S: Sql>(
    config: &Config,
    http: &H,
    store: &NotificationStore<S>,
    id: i64,
    now: Timestamp,
) -> Delivered {
    let claimed = match store
        .claim(id, now, now.minus_seconds(CLAIM_STALE_SECONDS))
        .await
    {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Delivered {
                verdict: Verdict::Ack,
                log: format!("notification {id}: already handled"),
            }
        }
        Err(e) => {
            return Delivered {
                verdict: Verdict::Retry {
                    delay_seconds: crate::retry::BACKOFF_BASE_SECONDS,
                },
                log: format!("notification {id}: claim failed: {e}"),
            }
        }
    };
    let key = claimed.deployment.dedupe_key();
    let telegram = match &config.telegram {
        Ok(t) => t,
        Err(missing) => {
            let reason = format!("not sent: Telegram is not configured ({missing} is missing)");
            let saved = store
                .mark_final(id, NotificationStatus::NotSent, &reason, now)
                .await;
            return Delivered {
                verdict: Verdict::Ack,
                log: format!("notification {id} ({key}): {reason}{}", store_note(saved)),
            };
        }
    };

    let message = render(&claimed.deployment);
    let outcome = TelegramClient::new(http, telegram)
        .deliver(&message, false)
        .await;
    match decide(outcome, claimed.attempt) {
        DeliveryAction::Sent { message_id } => {
            let saved = store.mark_sent(id, message_id, now).await;
            Delivered {
                verdict: Verdict::Ack,
                log: format!(
                    "notification {id} ({key}): sent as message {message_id}{}",
                    store_note(saved)
                ),
            }
        }
        DeliveryAction::Retry {
            delay_seconds,
            error,
        } => {
            let saved = store
                .mark_retrying(id, &error, now.plus_seconds(i64::from(delay_seconds)), now)
                .await;
            Delivered {
                verdict: Verdict::Retry { delay_seconds },
                log: format!(
                    "notification {id} ({key}): attempt {} failed: {error}; retrying in {delay_seconds} s{}",
                    claimed.attempt,
                    store_note(saved)
                ),
            }
        }
        DeliveryAction::GiveUp { error } => {
            let saved = store
                .mark_final(id, NotificationStatus::Failed, &error, now)
                .await;
            Delivered {
                verdict: Verdict::DeadLetter,
                log: format!(
                    "notification {id} ({key}): failed: {error}{}",
                    store_note(saved)
                ),
            }
        }
        DeliveryAction::Fail { error } => {
            let saved = store
                .mark_final(id, NotificationStatus::Failed, &error, now)
                .await;
            Delivered {
                verdict: Verdict::Ack,
                log: format!(
                    "notification {id} ({key}): failed permanently: {error}{}",
                    store_note(saved)
                ),
            }
        }
    }
}

fn store_note(saved: Result<(), crate::ports::StoreError>) -> String {
    match saved {
        Ok(()) => String::new(),
        Err(e) => format!(" (and recording it failed: {e})"),
    }
}

#[cfg(test)]
mod tests;
