//! The `JOBS` queue consumer (and its dead-letter queue): the batch is decoded and
//! handed to `edge_core::dispatch::consume`, which decides each message's verdict;
//! this applies them.

use edge_core::config::Config;
use edge_core::dispatch::{consume as dispatch, Line};
use edge_core::flow::Verdict;
use edge_core::jobs::JobMessage;
use worker::{console_error, console_log, Env, MessageBatch, MessageExt, QueueRetryOptionsBuilder};

use crate::adapters::now;
use crate::deploy::Bindings;

/// Dead-letter queues are named after their queue with this suffix
/// (`edge-notifier-jobs-dlq` for `edge-notifier-jobs`).
const DEAD_LETTER_SUFFIX: &str = "-dlq";

pub async fn consume(batch: &MessageBatch<serde_json::Value>, env: &Env, config: &Config) {
    let bindings = match Bindings::from_env(env) {
        Ok(b) => b,
        Err(e) => {
            console_error!("queue: {e}; retrying the batch");
            batch.retry_all();
            return;
        }
    };
    let dead_letters = batch.queue().ends_with(DEAD_LETTER_SUFFIX);
    let mut jobs = Vec::new();
    let mut messages = Vec::new();
    for m in batch.raw_iter() {
        // Read as JSON text through the crate's one reader, rather than a second
        // deserializer for this one enum.
        let text = js_sys::JSON::stringify(&m.body())
            .ok()
            .and_then(|s| s.as_string())
            .unwrap_or_default();
        match edge_core::json::read::<JobMessage>(&text) {
            Ok(job) => {
                jobs.push(job);
                messages.push(m);
            }
            Err(e) => {
                // Retrying cannot make it readable.
                console_error!("queue: dropping unreadable message {}: {e}", m.id());
                m.ack();
            }
        }
    }
    let consumed = dispatch(&bindings.deps(config), &jobs, dead_letters, now).await;
    for line in &consumed.log {
        match line {
            Line::Info(text) => console_log!("{text}"),
            Line::Error(text) => console_error!("{text}"),
        }
    }
    for (m, verdict) in messages.iter().zip(consumed.verdicts) {
        match verdict {
            None => {}
            Some(Verdict::Ack) => m.ack(),
            Some(Verdict::Retry { delay_seconds }) => m.retry_with_options(
                &QueueRetryOptionsBuilder::new()
                    .with_delay_seconds(delay_seconds)
                    .build(),
            ),
            Some(Verdict::DeadLetter) => m.retry(),
        }
    }
}
