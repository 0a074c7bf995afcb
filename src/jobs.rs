//! The `JOBS` queue consumer (and its dead-letter queue): each message is decoded,
//! handed to its flow, and acknowledged or retried as the flow decides.

use edge_core::config::Config;
use edge_core::delivery::{deliver, Verdict};
use edge_core::jobs::JobMessage;
use futures_util::future::join_all;
use worker::{
    console_error, console_log, Env, MessageBatch, MessageExt, QueueRetryOptionsBuilder, RawMessage,
};

use crate::adapters::{self, now, FetchHttp};

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
    let messages: Vec<RawMessage> = batch.raw_iter().collect();
    // Messages are independent: deliver them concurrently.
    join_all(messages.iter().map(|m| async {
        let job: JobMessage = match serde_wasm_bindgen::from_value(m.body()) {
            Ok(j) => j,
            Err(e) => {
                // Retrying cannot make it readable.
                console_error!("queue: dropping unreadable message {}: {e}", m.id());
                m.ack();
                return;
            }
        };
        match job {
            JobMessage::Notify { id } if dead_letters => {
                match store.mark_dead_lettered(id, now()).await {
                    Ok(true) => {
                        console_error!("queue: notification {id} dead-lettered and marked failed")
                    }
                    Ok(false) => {
                        console_log!("queue: notification {id} dead-lettered after it was finished")
                    }
                    Err(e) => {
                        console_error!("queue: notification {id} dead-lettered, not marked: {e}")
                    }
                }
                m.ack();
            }
            JobMessage::Notify { id } => {
                let out = deliver(config, &FetchHttp, &store, id, now()).await;
                match out.verdict {
                    Verdict::Ack => {
                        console_log!("queue: {}", out.log);
                        m.ack();
                    }
                    Verdict::Retry { delay_seconds } => {
                        console_error!("queue: {}", out.log);
                        m.retry_with_options(
                            &QueueRetryOptionsBuilder::new()
                                .with_delay_seconds(delay_seconds)
                                .build(),
                        );
                    }
                    Verdict::DeadLetter => {
                        console_error!("queue: {}", out.log);
                        m.retry();
                    }
                }
            }
        }
    }))
    .await;
}
