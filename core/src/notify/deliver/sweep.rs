//! The cron's part in Telegram delivery.

use super::*;

/// The cron's part: destination rows and digests whose queue message was evidently
/// lost (due or claimed more than `SWEEP_AFTER_SECONDS` ago) are queued again, and
/// pace slots that can no longer limit anything are forgotten. A duplicate message
/// is harmless: rows and digests are claimed before anything is sent.
pub async fn sweep<S: Sql + Copy, Q: Queue>(
    config: &Config,
    sql: S,
    queue: &Q,
    now: Timestamp,
) -> Vec<String> {
    let mut log = Vec::new();
    let cutoff = now.minus_seconds(i64::from(config.sweep_after_seconds));
    let sends = SendStore::new(sql);
    let live = crate::live::LiveStore::new(sql);
    let lost = [
        (Lost::Send, sends.lost(cutoff, 100).await),
        (Lost::Digest, sends.lost_digests(cutoff).await),
        (Lost::Live, live.lost(cutoff).await),
    ];
    for (kind, ids) in lost {
        let what = kind.name();
        let ids = match ids {
            Ok(ids) => ids,
            Err(e) => {
                log.push(format!("{what}s: {e}"));
                continue;
            }
        };
        for id in ids {
            if let Err(e) = queue.send(&kind.message(id)).await {
                log.push(format!("{what} {id}: {e}"));
                continue;
            }
            // Due now, so the next sweep leaves it alone for another grace period.
            let marked = match kind {
                Lost::Send => sends.requeued(id, now).await,
                Lost::Digest => sends.schedule_flush(id, now, now).await,
                Lost::Live => live.requeued(id, now).await,
            };
            log.push(match marked {
                Ok(()) => format!("{what} {id} re-enqueued"),
                Err(e) => format!("{what} {id} re-enqueued, not marked: {e}"),
            });
        }
    }
    if let Err(e) = PaceStore::new(sql).prune(now).await {
        log.push(format!("pace: {e}"));
    }
    log
}

/// What the sweep finds lost.
#[derive(Clone, Copy)]
enum Lost {
    Send,
    Digest,
    Live,
}

impl Lost {
    fn name(self) -> &'static str {
        match self {
            Lost::Send => "telegram delivery",
            Lost::Digest => "digest",
            Lost::Live => "live message",
        }
    }

    fn message(self, id: i64) -> JobMessage {
        match self {
            Lost::Send => JobMessage::TelegramSend { id },
            Lost::Digest => JobMessage::TelegramDigest { id },
            Lost::Live => JobMessage::TelegramLive { id },
        }
    }
}
