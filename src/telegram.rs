//! `POST /telegram`: Telegram's webhook. The secret header is checked (constant
//! time) before the body is read under its cap; the update itself is taken by
//! [`edge_core::dispatch::telegram::receive`], whose answer (a press's
//! `answerCallbackQuery`) is the response, and its queue message goes after it.

use crate::request::Request;
use edge_core::chatops::{check_secret, MAX_UPDATE_BYTES};
use edge_core::dispatch::telegram::{receive, ReceiveError, Received};
use edge_core::error::ApiError;
use worker::{console_error, console_log, Method};

use crate::adapters::now;
use crate::deploy::Event;
use crate::respond::Reply;

pub async fn handle(req: Request, event: &Event<'_>) -> Result<Reply, ApiError> {
    if req.method() != Method::Post {
        return Err(ApiError::MethodNotAllowed { allowed: "POST" });
    }
    let config = event.config;
    let secret = config
        .telegram_webhook_secret
        .as_ref()
        .map_err(|missing| ApiError::NotConfigured(missing))?;
    let header = req
        .headers()
        .get("x-telegram-bot-api-secret-token")
        .ok()
        .flatten();
    if !check_secret(header.as_deref(), secret) {
        return Err(ApiError::Unauthorized(
            "missing or wrong X-Telegram-Bot-Api-Secret-Token header",
        ));
    }
    let body = crate::body::read_capped(&req, MAX_UPDATE_BYTES)
        .await?
        .to_vec();
    let bindings = event.bindings()?;
    let received = receive(&bindings.deps(config), &body, now())
        .await
        .map_err(|e| {
            if let ReceiveError::Store(_) = &e {
                console_error!("{e}");
            }
            ApiError::from(e)
        })?;
    if let Some(line) = &received.log {
        console_log!("{line}");
    }
    if let Some(id) = received.queue {
        let queue = bindings.queue.clone();
        event.ctx.wait_until(async move {
            if let Err(line) = Received::send(id, &queue).await {
                console_error!("{line}");
            }
        });
    }
    Ok(Reply::json(200, received.body))
}
