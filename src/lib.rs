//! edge-notifier, the Worker: thin `#[event]` entry points that load configuration and
//! bindings once, hand off to the flows in `edge-core`, and map their results onto
//! HTTP responses and queue acknowledgements. Every `worker::` type stays in this
//! crate, most of them in [`adapters`].

use edge_core::error::ApiError;
use worker::{event, Context, Env, MessageBatch, Response, ScheduleContext, ScheduledEvent};

mod adapters;
mod admin;
mod body;
mod cron;
mod crypto;
mod deploy;
mod github;
mod health;
mod jobs;
mod notify;
mod request;
mod respond;
mod telegram;
mod web;
mod web_auth;

// The runtime's own request, not `worker::Request` (see `request`).
#[event(fetch)]
async fn fetch(req: web_sys::Request, env: Env, ctx: Context) -> worker::Result<Response> {
    let req = request::Request::new(req);
    let config = adapters::config(&env);
    let event = deploy::Event::new(&ctx, &config, &env);
    let path = req.path();
    let result = match path.as_str() {
        "/notify" => notify::handle(req, &event).await,
        "/health" => health::handle(&req, &env, &config),
        "/github" => github::handle(req, &event).await,
        "/telegram" => telegram::handle(req, &event).await,
        p if p == "/api" || p.starts_with("/api/") => admin::handle(req, &event).await,
        p if web::is_page(p) => return web::handle(req, &event).await,
        _ => Err(ApiError::NotFound),
    };
    respond::finish(result)
}

#[event(queue)]
async fn queue(
    batch: MessageBatch<serde_json::Value>,
    env: Env,
    _ctx: Context,
) -> worker::Result<()> {
    let config = adapters::config(&env);
    jobs::consume(&batch, &env, &config).await;
    Ok(())
}

#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    let config = adapters::config(&env);
    cron::run(&env, &config).await;
}
