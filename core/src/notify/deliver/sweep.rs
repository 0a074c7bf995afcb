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
    match sends.lost(cutoff, 100).await {
        Ok(ids) => {
            for id in ids {
                let line = match queue.send(&JobMessage::TelegramSend { id }).await {
                    Ok(()) => match sends.requeued(id, now).await {
                        Ok(()) => format!("telegram delivery {id} re-enqueued"),
                        Err(e) => format!("telegram delivery {id} re-enqueued, not marked: {e}"),
                    },
                    Err(e) => format!("telegram delivery {id}: {e}"),
                };
                log.push(line);
            }
        }
        Err(e) => log.push(format!("telegram deliveries: {e}")),
    }
    match sends.lost_digests(cutoff).await {
        Ok(ids) => {
            for id in ids {
                let line = match queue.send(&JobMessage::TelegramDigest { id }).await {
                    Ok(()) => match sends.schedule_flush(id, now, now).await {
                        Ok(()) => format!("digest {id} re-enqueued"),
                        Err(e) => format!("digest {id} re-enqueued, not marked: {e}"),
                    },
                    Err(e) => format!("digest {id}: {e}"),
                };
                log.push(line);
            }
        }
        Err(e) => log.push(format!("digests: {e}")),
    }
    let live = crate::live::LiveStore::new(sql);
    match live.lost(cutoff).await {
        Ok(ids) => {
            for id in ids {
                let line = match queue.send(&JobMessage::TelegramLive { id }).await {
                    Ok(()) => match live.requeued(id, now).await {
                        Ok(()) => format!("live message {id} re-enqueued"),
                        Err(e) => format!("live message {id} re-enqueued, not marked: {e}"),
                    },
                    Err(e) => format!("live message {id}: {e}"),
                };
                log.push(line);
            }
        }
        Err(e) => log.push(format!("live messages: {e}")),
    }
    if let Err(e) = PaceStore::new(sql).prune(now).await {
        log.push(format!("pace: {e}"));
    }
    log
}
