//! The `JOBS` consumer's deploy side: recorded GitHub deliveries and deploy steps,
//! handed to `edge_core::deploy`.

use edge_core::config::Config;
use edge_core::deploy::intake::{run_delivery, DeliveryVerdict};
use edge_core::deploy::pipeline::{run_step, Deps, StepVerdict};
use edge_core::github::deliveries::DeliveryId;
use edge_core::jobs::JobMessage;
use edge_core::retry::backoff_seconds;
use worker::{console_error, console_log, Env};

use crate::adapters::{self, now, FetchHttp};
use crate::crypto::{WebCryptoCipher, WebCryptoSigner};
use edge_core::orchestrate::runner::Verdict;
use edge_core::orchestrate::StepRef;
use edge_core::preview::flow::RunVerdict;

/// The bindings the deploy flows use, taken from `Env` once per event.
pub(crate) struct Bindings {
    pub(crate) sql: adapters::D1Sql,
    pub(crate) queue: adapters::WorkerQueue,
    kv: adapters::WorkerKv,
}

impl Bindings {
    pub(crate) fn from_env(env: &Env) -> Result<Bindings, edge_core::error::ApiError> {
        Ok(Bindings {
            sql: adapters::d1(env)?,
            queue: adapters::queue(env),
            kv: adapters::kv(env),
        })
    }

    pub(crate) fn deps<'a>(
        &'a self,
        config: &'a Config,
    ) -> Deps<
        'a,
        FetchHttp,
        &'a adapters::D1Sql,
        adapters::WorkerQueue,
        adapters::WorkerKv,
        WebCryptoSigner,
    > {
        Deps {
            config,
            http: &FetchHttp,
            sql: &self.sql,
            queue: &self.queue,
            kv: &self.kv,
            signer: &WebCryptoSigner,
        }
    }
}

/// What the queue does with the message.
pub enum Retry {
    No,
    After(u32),
}

pub async fn run(job: &JobMessage, env: &Env, config: &Config) -> Retry {
    let bindings = match Bindings::from_env(env) {
        Ok(b) => b,
        Err(e) => {
            console_error!("deploy: {e}");
            return Retry::After(backoff_seconds(1));
        }
    };
    let deps = bindings.deps(config);
    match job {
        JobMessage::GithubDelivery { id } => {
            let Some(id) = DeliveryId::parse(id) else {
                console_error!("deploy: dropping a message with an invalid delivery id");
                return Retry::No;
            };
            let run = run_delivery(&deps, &id, now()).await;
            match run.verdict {
                DeliveryVerdict::Ack => {
                    console_log!("github: {}", run.log);
                    Retry::No
                }
                DeliveryVerdict::RetryIn(delay_seconds) => {
                    console_error!("github: {}", run.log);
                    Retry::After(delay_seconds)
                }
            }
        }
        JobMessage::DeployStep { job_id, position } => {
            let run = run_step(&deps, *job_id, *position, now()).await;
            match run.verdict {
                StepVerdict::Ack => {
                    console_log!("deploy: {}", run.log);
                    Retry::No
                }
                StepVerdict::Retry { delay_seconds } => {
                    console_error!("deploy: {}; retrying in {delay_seconds} s", run.log);
                    Retry::After(delay_seconds)
                }
            }
        }
        JobMessage::Preview { id } => {
            let run = edge_core::preview::flow::run(&deps, &WebCryptoCipher, *id, now()).await;
            match run.verdict {
                RunVerdict::Ack => {
                    console_log!("{}", run.log);
                    Retry::No
                }
                RunVerdict::Retry { delay_seconds } => {
                    console_error!("{}; retrying in {delay_seconds} s", run.log);
                    Retry::After(delay_seconds)
                }
            }
        }
        JobMessage::WorkflowStep { workflow_id, step } => {
            let step = StepRef {
                workflow_id: *workflow_id,
                step: step.clone(),
            };
            let run = edge_core::orchestrate::drive::run_step(&deps, &step, now()).await;
            match run.verdict {
                Verdict::Ack => {
                    console_log!("orchestrate: {}", run.log);
                    Retry::No
                }
                Verdict::Retry { delay_seconds } => {
                    console_error!("orchestrate: {}; retrying in {delay_seconds} s", run.log);
                    Retry::After(delay_seconds)
                }
            }
        }
        JobMessage::Notify { .. } => Retry::No,
    }
}

/// The cron's deploy sweep.
pub async fn sweep(env: &Env, config: &Config) {
    let Ok(bindings) = Bindings::from_env(env) else {
        return;
    };
    let deps = bindings.deps(config);
    for line in edge_core::deploy::sweep::sweep(&deps, now()).await {
        console_log!("cron deploy sweep: {line}");
    }
    for line in edge_core::preview::flow::sweep(&deps, now()).await {
        console_log!("cron preview sweep: {line}");
    }
    for line in edge_core::orchestrate::drive::sweep(&deps, now()).await {
        console_log!("cron workflow sweep: {line}");
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
                &bindings.kv,
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
