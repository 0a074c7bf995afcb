//! The scheduled handler: the poll fallback, then the sweep of lost queue messages.

use edge_core::config::Config;
use worker::{console_error, console_log, Env};

use crate::adapters::{self, now, FetchHttp};

pub async fn run(env: &Env, config: &Config) {
    for problem in &config.problems {
        console_error!("config: {problem}");
    }
    let store = match adapters::store(env) {
        Ok(s) => s,
        Err(e) => {
            console_error!("cron: {e}; nothing to do");
            return;
        }
    };
    let (kv, queue) = (adapters::kv(env), adapters::queue(env));
    let started = now();

    let poll = edge_core::cron::poll(config, &FetchHttp, &store, &kv, &queue, started).await;
    for e in &poll.errors {
        console_error!("cron poll: {e}");
    }
    console_log!(
        "cron poll: {} announced {:?}, {} recorded",
        poll.announced.len(),
        poll.announced,
        poll.recorded.len()
    );

    let sweep = edge_core::cron::sweep(config, &store, &queue, now()).await;
    for e in &sweep.errors {
        console_error!("cron sweep: {e}");
    }
    if !sweep.requeued.is_empty() {
        console_log!("cron sweep: re-enqueued notifications {:?}", sweep.requeued);
    }

    crate::deploy::sweep(env, config).await;
}
