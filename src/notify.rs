//! `POST /notify`: authenticate, validate, dedupe, persist, enqueue, answer.

use crate::request::Request;
use edge_core::auth::require_bearer;
use edge_core::error::ApiError;
use edge_core::jobs::JobMessage;
use edge_core::notify::store::NotificationStore;
use edge_core::notify::{
    accept, parse_notify_body, remember_processed, Accepted, KnownFrom, MAX_BODY_BYTES,
};
use edge_core::ports::Queue;
use worker::{console_error, Method};

use crate::adapters::now;
use crate::deploy::Event;
use crate::respond::{json_body, Reply};

pub async fn handle(mut req: Request, event: &Event<'_>) -> Result<Reply, ApiError> {
    let (ctx, config) = (event.ctx, event.config);
    if req.method() != Method::Post {
        return Err(ApiError::MethodNotAllowed { allowed: "POST" });
    }
    // Authenticate before looking at the body.
    let auth = req.headers().get("authorization").ok().flatten();
    require_bearer(
        auth.as_deref(),
        config.notify_token.as_ref(),
        "DEPLOY_NOTIFY_TOKEN",
    )?;

    let body = json_body(&mut req, MAX_BODY_BYTES).await?;
    let received = now();
    let deployment = parse_notify_body(&body, received)?;

    let bindings = event.bindings()?;
    let store = NotificationStore::new(bindings.sql.clone());
    let kv = bindings.kv.clone();
    let key = deployment.dedupe_key();
    match accept(&store, &kv, &deployment, received).await {
        Ok(Accepted::New { id }) => {
            // Committed: answer now and enqueue after. If the send fails the row stays
            // pending and the cron sweep enqueues it.
            let queue = bindings.queue.clone();
            ctx.wait_until(async move {
                if let Err(e) = queue.send(&JobMessage::Notify { id }).await {
                    console_error!("notify: {key} accepted as notification {id}, not enqueued ({e}); the cron sweep will enqueue it");
                }
            });
            Ok(Reply::message(202, "Notification queued"))
        }
        Ok(Accepted::AlreadyProcessed { known_from }) => {
            if known_from == KnownFrom::Database {
                // Repeats of this one now take the KV fast path; the answer need not
                // wait for the write.
                ctx.wait_until(async move {
                    if let Err(e) = remember_processed(&kv, &deployment).await {
                        console_error!("notify: KV fast path not updated for {key}: {e}");
                    }
                });
            }
            Ok(Reply::message(200, "Already processed"))
        }
        Err(e) => {
            console_error!("notify: {key} not stored: {e}");
            Err(ApiError::Unavailable)
        }
    }
}
