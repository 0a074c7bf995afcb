//! The bindings the flows run on, taken from `Env` once per event (a request, a
//! queue batch, a cron run) and handed to `edge_core::dispatch` as its `Deps`.

use edge_core::config::Config;
use edge_core::error::ApiError;
use edge_core::flow::Deps;
use worker::{Context, Env};

use crate::adapters::{self, FetchHttp};
use crate::crypto::{WebCryptoCipher, WebCryptoSigner};

/// The ports the flows run on in the Worker.
pub(crate) type WorkerPorts<'a> = (
    FetchHttp,
    &'a adapters::D1Sql,
    adapters::WorkerQueue,
    adapters::WorkerKv,
    WebCryptoSigner,
    WebCryptoCipher,
);

pub(crate) struct Bindings {
    pub(crate) sql: adapters::D1Sql,
    pub(crate) queue: adapters::WorkerQueue,
    pub(crate) kv: adapters::WorkerKv,
}

impl Bindings {
    pub(crate) fn from_env(env: &Env) -> Result<Bindings, edge_core::error::ApiError> {
        Ok(Bindings {
            sql: adapters::d1(env)?,
            queue: adapters::queue(env),
            kv: adapters::kv(env),
        })
    }

    pub(crate) fn deps<'a>(&'a self, config: &'a Config) -> Deps<'a, WorkerPorts<'a>> {
        Deps {
            config,
            http: &FetchHttp,
            sql: &self.sql,
            queue: &self.queue,
            kv: &self.kv,
            signer: &WebCryptoSigner,
            cipher: &WebCryptoCipher,
        }
    }
}

/// One fetch event: its configuration and its bindings, looked up once. A missing
/// database is an error only where a route needs it.
pub(crate) struct Event<'a> {
    pub ctx: &'a Context,
    pub config: &'a Config,
    bindings: Option<Bindings>,
}

impl<'a> Event<'a> {
    pub fn new(ctx: &'a Context, config: &'a Config, env: &Env) -> Self {
        Event {
            ctx,
            config,
            bindings: Bindings::from_env(env).ok(),
        }
    }

    /// `503` without the database (the one binding they cannot do without).
    pub fn bindings(&self) -> Result<&Bindings, ApiError> {
        self.bindings
            .as_ref()
            .ok_or(ApiError::NotConfigured(adapters::NO_DB))
    }
}
