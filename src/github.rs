//! `POST /github`: verify the signature on the raw bytes, parse, record the delivery
//! (its id is the idempotency key), and answer at once; work goes through the queue.

use edge_core::apps::AppStore;
use edge_core::config::Config;
use edge_core::error::ApiError;
use edge_core::github::deliveries::{BodyHash, DeliveryId, DeliveryStore, Outcome};
use edge_core::github::events;
use edge_core::github::intake::{decide, Intake};
use edge_core::github::webhook::{Signature, MAX_BODY_BYTES};
use edge_core::jobs::JobMessage;
use edge_core::ports::Queue;
use worker::{console_error, console_log, Context, Env, Method, Request};

use crate::adapters::{self, now};
use crate::respond::Reply;

fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

pub async fn handle(
    req: Request,
    env: &Env,
    ctx: &Context,
    config: &Config,
) -> Result<Reply, ApiError> {
    if req.method() != Method::Post {
        return Err(ApiError::MethodNotAllowed { allowed: "POST" });
    }
    let secrets = config
        .github_webhook
        .as_ref()
        .map_err(|missing| ApiError::NotConfigured(missing))?;
    crate::body::check_declared(&req, MAX_BODY_BYTES)?;
    let signature = Signature::parse(header(&req, "x-hub-signature-256").as_deref())
        .map_err(|e| ApiError::Unauthorized(signature_message(e)))?;

    // The body stays a JS buffer until it is authentic: WebCrypto hashes it in place.
    // Read as a stream, so a chunked body over the cap is cut off at the cap.
    let body = crate::body::read_capped(&req, MAX_BODY_BYTES).await?;
    let started = js_sys::Date::now();
    let mut authentic = false;
    for secret in secrets.all() {
        let mac = crate::crypto::hmac_sha256(secret.expose().as_bytes(), &body)
            .await
            .map_err(|e| {
                console_error!("github: HMAC failed: {e}");
                ApiError::Internal
            })?;
        if signature.matches(&mac) {
            authentic = true;
            break;
        }
    }
    if !authentic {
        return Err(ApiError::Unauthorized("signature does not match"));
    }
    // Reported as Server-Timing, so the benchmark can read the hashing cost. Workers'
    // clock counts whole milliseconds, and an integer spares the upload float
    // formatting (some 14 KiB of code).
    let timing = Some(format!(
        "verify;dur={};desc=\"HMAC-SHA256 of {} bytes\"",
        (js_sys::Date::now() - started) as i64,
        body.length()
    ));

    let event_name = header(&req, "x-github-event")
        .filter(|e| !e.is_empty() && e.len() <= 64)
        .ok_or_else(|| ApiError::BadRequest("missing X-GitHub-Event header".into()))?;
    let delivery = header(&req, "x-github-delivery")
        .as_deref()
        .and_then(DeliveryId::parse)
        .ok_or_else(|| {
            ApiError::BadRequest("missing or invalid X-GitHub-Delivery header".into())
        })?;
    let bytes = body.to_vec();
    let event = events::parse(&event_name, &bytes)?;

    let sql = adapters::d1(env)?;
    let apps = match event
        .summary()
        .2
        .and_then(edge_core::github::RepoFullName::parse)
    {
        Some(repo) => AppStore::new(&sql)
            .for_repository(&repo)
            .await
            .map_err(|e| {
                console_error!("github: apps not readable: {e}");
                ApiError::Unavailable
            })?,
        None => Vec::new(),
    };
    let intake = decide(
        &event,
        &apps,
        edge_core::orchestrate::drive::configured(config),
    );
    let (outcome, detail) = match &intake {
        Intake::Pong => (Outcome::Processed, None),
        Intake::Ignore(reason) => (Outcome::Ignored, Some(reason.as_str())),
        Intake::Enqueue => (Outcome::Queued, None),
    };
    // Only the body is signed: the same body under a fresh delivery id is the same
    // delivery.
    let body_hash = crate::crypto::sha256(&body)
        .await
        .ok()
        .and_then(|d| BodyHash::from_digest(&d))
        .ok_or_else(|| {
            console_error!("github: SHA-256 of the body failed");
            ApiError::Internal
        })?;
    let fresh = DeliveryStore::new(&sql)
        .record_body(&delivery, Some(&body_hash), &event, outcome, detail, now())
        .await
        .map_err(|e| {
            console_error!("github: delivery {} not recorded: {e}", delivery.as_str());
            ApiError::Unavailable
        })?;
    if !fresh {
        return Ok(Reply::message(200, "Already processed").with_timing(timing));
    }
    match intake {
        Intake::Pong => Ok(Reply::message(200, "pong").with_timing(timing)),
        Intake::Ignore(reason) => {
            console_log!(
                "github: delivery {} ({event_name}) ignored: {reason}",
                delivery.as_str()
            );
            Ok(Reply::message(202, &format!("Ignored: {reason}")).with_timing(timing))
        }
        Intake::Enqueue => {
            let queue = adapters::queue(env);
            let id = delivery.as_str().to_owned();
            ctx.wait_until(async move {
                if let Err(e) = queue.send(&JobMessage::GithubDelivery { id: id.clone() }).await {
                    console_error!("github: delivery {id} recorded, not enqueued ({e}); the cron sweep will enqueue it");
                }
            });
            Ok(Reply::message(202, "Queued").with_timing(timing))
        }
    }
}

fn signature_message(e: edge_core::github::webhook::SignatureError) -> &'static str {
    use edge_core::github::webhook::SignatureError;
    match e {
        SignatureError::Missing => "missing X-Hub-Signature-256 header",
        SignatureError::Malformed => "malformed X-Hub-Signature-256 header",
        SignatureError::Mismatch => "signature does not match",
    }
}
