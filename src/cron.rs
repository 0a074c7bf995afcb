//! The scheduled handler: the poll fallback, the sweep of lost queue messages, each
//! flow's sweep, and the redelivery of what GitHub failed to deliver. The bindings
//! are taken once for the whole run.

use edge_core::config::Config;
use edge_core::notify::store::NotificationStore;
use worker::{console_error, console_log, Env};

use crate::adapters::{now, FetchHttp};
use crate::crypto::WebCryptoSigner;
use crate::deploy::Bindings;

pub async fn run(env: &Env, config: &Config) {
    for problem in &config.problems {
        console_error!("config: {problem}");
    }
    let bindings = match Bindings::from_env(env) {
        Ok(b) => b,
        Err(e) => {
            console_error!("cron: {e}; nothing to do");
            return;
        }
    };
    // Over the connection itself, as `/notify`'s store is: one copy of its code.
    let store = NotificationStore::new(bindings.sql.clone());
    let (kv, queue) = (&bindings.kv, &bindings.queue);
    let started = now();

    let poll = edge_core::cron::poll(config, &FetchHttp, &store, kv, queue, started).await;
    for e in &poll.errors {
        console_error!("cron poll: {e}");
    }
    console_log!(
        "cron poll: {} announced {:?}, {} recorded",
        poll.announced.len(),
        poll.announced,
        poll.recorded.len()
    );

    let sweep = edge_core::cron::sweep(config, &store, queue, now()).await;
    for e in &sweep.errors {
        console_error!("cron sweep: {e}");
    }
    if !sweep.requeued.is_empty() {
        console_log!("cron sweep: re-enqueued notifications {:?}", sweep.requeued);
    }

    for line in edge_core::dispatch::sweep(&bindings.deps(config), now).await {
        console_log!("{line}");
    }

    // Deliveries GitHub failed to make are not retried by GitHub: ask for them.
    match edge_core::github::redeliver::from_config(config) {
        Ok(None) => {}
        Err(e) => console_error!("cron redelivery: {e}"),
        Ok(Some((hook, auth))) => {
            let api_base = config
                .github
                .as_ref()
                .map(|g| g.api_base.as_str())
                .unwrap_or_default();
            match edge_core::github::redeliver::redeliver_failed(
                &FetchHttp,
                &bindings.sql,
                kv,
                &WebCryptoSigner,
                api_base,
                &hook,
                auth,
                now(),
            )
            .await
            {
                Ok(asked) if asked.is_empty() => {}
                Ok(asked) => console_log!("cron redelivery: asked GitHub to redeliver {asked:?}"),
                Err(e) => console_error!("cron redelivery: {e}"),
            }
        }
    }
}
