//! `POST /github`: the request and WebCrypto behind the intake's ports; the
//! sequence itself (caps, signature, headers, parse, record) is
//! [`edge_core::github::intake::receive`]. Its message is sent after the answer.

use crate::request::Request;
use edge_core::error::ApiError;
use edge_core::github::intake::{self, BodyError, Incoming, IntakeError};
use js_sys::Uint8Array;
use worker::{console_error, console_log, Method};

use crate::crypto::WebCryptoMac;
use crate::deploy::Event;
use crate::respond::Reply;

/// The request behind [`Incoming`]: its headers, and its body streamed into one JS
/// buffer under the cap.
struct Webhook<'a>(&'a Request);

impl Incoming for Webhook<'_> {
    type Body = Uint8Array;

    fn header(&self, name: &str) -> Option<String> {
        self.0.headers().get(name).ok().flatten()
    }

    async fn read_body(&self, limit: usize) -> Result<Uint8Array, BodyError> {
        crate::body::read_capped(self.0, limit).await
    }
}

pub async fn handle(req: Request, event: &Event<'_>) -> Result<Reply, ApiError> {
    if req.method() != Method::Post {
        return Err(ApiError::MethodNotAllowed { allowed: "POST" });
    }
    let bindings = event.bindings();
    let sql = match bindings {
        Ok(b) => Ok(&b.sql),
        Err(_) => Err(crate::adapters::NO_DB),
    };
    let receipt = intake::receive(
        &Webhook(&req),
        &WebCryptoMac,
        event.config,
        sql,
        &crate::adapters::now,
    )
    .await
    .map_err(|e| {
        if let IntakeError::Failed(failure) = &e {
            console_error!("github: {failure}");
        }
        ApiError::from(e)
    })?;
    if let Some(line) = receipt.log() {
        console_log!("{line}");
    }
    if let (Some(job), Ok(bindings)) = (receipt.enqueue(), bindings) {
        let queue = bindings.queue.clone();
        event.ctx.wait_until(async move {
            if let Err(line) = job.send(&queue).await {
                console_error!("{line}");
            }
        });
    }
    Ok(Reply::message(receipt.status(), &receipt.message()).with_timing(Some(receipt.timing)))
}
