//! The `JOBS` queue consumer (and its dead-letter queue): each message is decoded,
//! handed to its flow, and acknowledged or retried as the flow decides.

use edge_core::config::Config;
use edge_core::jobs::JobMessage;
use edge_core::notify::deliver::{deliver, Verdict};
use worker::{console_error, console_log, Env, MessageBatch, MessageExt, QueueRetryOptionsBuilder};

use crate::adapters::{self, now, FetchHttp};
use crate::deploy::Retry;

/// Dead-letter queues are named after their queue with this suffix
/// (`edge-notifier-jobs-dlq` for `edge-notifier-jobs`).
const DEAD_LETTER_SUFFIX: &str = "-dlq";

pub async fn consume(batch: &MessageBatch<serde_json::Value>, env: &Env, config: &Config) {
    let store = match adapters::store(env) {
        Ok(s) => s,
        Err(e) => {
            console_error!("queue: {e}; retrying the batch");
            batch.retry_all();
            return;
        }
    };
    let dead_letters = batch.queue().ends_with(DEAD_LETTER_SUFFIX);
    let mut notify = Vec::new();
    let mut other = Vec::new();
    for m in batch.raw_iter() {
        // Read as JSON text through the crate's one reader, rather than a second
        // deserializer for this one enum.
        let text = js_sys::JSON::stringify(&m.body())
            .ok()
            .and_then(|s| s.as_string())
            .unwrap_or_default();
        match edge_core::json::read::<JobMessage>(&text) {
            Ok(JobMessage::Notify { id }) => notify.push((id, m)),
            Ok(job) => other.push((job, m)),
            Err(e) => {
                // Retrying cannot make it readable.
                console_error!("queue: dropping unreadable message {}: {e}", m.id());
                m.ack();
            }
        }
    }
    // Deploy steps and deliveries run one after another: steps of one job must not
    // race, and they are few.
    for (job, m) in &other {
        if dead_letters {
            console_error!(
                "queue: dead-lettered {job:?}; the cron sweep picks up what it left unfinished"
            );
            m.ack();
            continue;
        }
        match crate::deploy::run(job, env, config).await {
            Retry::No => m.ack(),
            Retry::After(delay_seconds) => m.retry_with_options(
                &QueueRetryOptionsBuilder::new()
                    .with_delay_seconds(delay_seconds)
                    .build(),
            ),
        }
    }
    if notify.is_empty() {
        return;
    }
    if dead_letters {
        for (id, m) in &notify {
            match store.mark_dead_lettered(*id, now()).await {
                Ok(true) => {
                    console_error!("queue: notification {id} dead-lettered and marked failed")
                }
                Ok(false) => {
                    console_log!("queue: notification {id} dead-lettered after it was finished")
                }
                Err(e) => console_error!("queue: notification {id} dead-lettered, not marked: {e}"),
            }
            m.ack();
        }
        return;
    }
    let ids: Vec<i64> = notify.iter().map(|(id, _)| *id).collect();
    for out in deliver(config, &FetchHttp, &store, &ids, now()).await {
        // A message may carry the same id twice (the sweep re-enqueued it): every
        // copy gets the verdict.
        for (_, m) in notify.iter().filter(|(id, _)| *id == out.id) {
            match out.verdict {
                Verdict::Ack => m.ack(),
                Verdict::Retry { delay_seconds } => m.retry_with_options(
                    &QueueRetryOptionsBuilder::new()
                        .with_delay_seconds(delay_seconds)
                        .build(),
                ),
                Verdict::DeadLetter => m.retry(),
            }
        }
        match out.verdict {
            Verdict::Ack => console_log!("queue: {}", out.log),
            _ => console_error!("queue: {}", out.log),
        }
    }
}
