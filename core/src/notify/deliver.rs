//! The Telegram consumer's notification flow.
//!
//! A `notify` message routes its notifications: each matching destination becomes
//! its own row ([`crate::notify::sends`]), sent exactly once and retried on its own.
//! A row is sent when its chat's pace allows ([`crate::pace`]); until then it waits
//! on the queue (a `telegram_send` message with `delaySeconds`), never in a loop.
//! When too many are already waiting for one chat, further rows join the
//! destination's digest, one message edited in place as lines arrive (a
//! `telegram_digest` message sends or edits it at its own slot). A 429 delays that
//! chat only, by Telegram's `retry_after`, and is not a failed attempt.

use crate::config::Config;
use crate::flow::Verdict;
use crate::jobs::JobMessage;
use crate::notify::burst::render_digest;
use crate::notify::sends::{ClaimedDigest, ClaimedSend, Recipient, SendOutcome, SendStore};
use crate::notify::store::{ClaimedNotification, NotificationStatus, NotificationStore, Outcome};
use crate::notify::Deployment;
use crate::pace::{delay_seconds, Pace, PaceStore, Slot};
use crate::ports::{Http, Queue, Sql, StoreError};
use crate::telegram::{self, Target, TelegramClient, TelegramConfig};
use crate::template::render;
use crate::time::Timestamp;

/// A claim older than this belongs to a consumer that died: a delivery takes at most
/// a few Telegram calls of [`crate::telegram::SEND_TIMEOUT_MS`] each.
pub const CLAIM_STALE_SECONDS: i64 = 60;

/// A digest takes lines for this long after its last one.
const DIGEST_WINDOW_MS: i64 = 60_000;

/// Another consumer is making the project's topic: look again this much later.
const TOPIC_WAIT_SECONDS: u32 = 2;

/// The verdict for one message plus a line for the log (never containing a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub id: i64,
    pub verdict: Verdict,
    pub log: String,
}

/// What the flow needs: configuration, Telegram, the database and the queue for
/// messages that wait.
pub struct Courier<'a, H, S, Q> {
    pub config: &'a Config,
    pub http: &'a H,
    pub sql: S,
    pub queue: &'a Q,
}

/// The destinations a deployment goes to (the routes, resolved), or none.
pub type Router<'r> = dyn Fn(&Deployment) -> Vec<Recipient> + 'r;

impl<'a, H: Http, S: Sql + Copy, Q: Queue> Courier<'a, H, S, Q> {
    fn notifications(&self) -> NotificationStore<S> {
        NotificationStore::new(self.sql)
    }
    fn sends(&self) -> SendStore<S> {
        SendStore::new(self.sql)
    }
    fn pace(&self) -> PaceStore<S> {
        PaceStore::new(self.sql)
    }
    fn stale_before(now: Timestamp) -> Timestamp {
        now.minus_seconds(CLAIM_STALE_SECONDS)
    }
    async fn queue_later(&self, message: &JobMessage, delay: u32, log: &mut String) {
        if let Err(e) = self.queue.send_later(message, delay).await {
            log.push_str(&format!(" (queueing it failed: {e}; the sweep will)"));
        }
    }
}

pub(super) fn thread_tag(thread: &str) -> String {
    if thread.is_empty() {
        String::new()
    } else {
        format!(" (topic {thread})")
    }
}

mod digest;
mod live;
mod notifications;
mod post;
mod sweep;

pub(crate) use notifications::message_for;
pub use notifications::subject_of;
pub use sweep::sweep;

#[cfg(test)]
mod tests;
