//! The one place where results become HTTP responses: successes as
//! `{"success":true,...}`, errors as `{"success":false,"error":"..."}` with the
//! status [`ApiError::status`] gives.

use crate::request::Request;
use edge_core::error::ApiError;
use edge_core::http::is_json_content_type;
use edge_core::web::{Html, PAGE_HEADERS};
use worker::{Headers, Response};

/// A successful answer: its status and JSON body.
pub struct Reply {
    pub status: u16,
    pub body: serde_json::Value,
    /// A `Server-Timing` header value (how long the signature check took).
    pub server_timing: Option<String>,
}

impl Reply {
    pub fn json(status: u16, body: serde_json::Value) -> Reply {
        Reply {
            status,
            body,
            server_timing: None,
        }
    }

    pub fn message(status: u16, message: &str) -> Reply {
        Reply::json(
            status,
            serde_json::json!({ "success": true, "message": message }),
        )
    }

    pub fn with_timing(mut self, timing: Option<String>) -> Reply {
        self.server_timing = timing;
        self
    }
}

pub fn finish(result: Result<Reply, ApiError>) -> worker::Result<Response> {
    let mut timing = None;
    let (status, body, allow) = match result {
        Ok(reply) => {
            timing = reply.server_timing;
            (reply.status, edge_core::json::text(&reply.body), None)
        }
        Err(e) => {
            let allow = match &e {
                ApiError::MethodNotAllowed { allowed } => Some(*allowed),
                _ => None,
            };
            (e.status(), e.body(), allow)
        }
    };
    let headers = Headers::new();
    headers.set("content-type", "application/json; charset=utf-8")?;
    headers.set("cache-control", "no-store")?;
    if let Some(allow) = allow {
        headers.set("allow", allow)?;
    }
    if let Some(t) = timing {
        headers.set("server-timing", &t)?;
    }
    if status == 401 {
        headers.set("www-authenticate", "Bearer")?;
    }
    Ok(Response::ok(body)?
        .with_status(status)
        .with_headers(headers))
}

/// Reads a JSON request body: `415` unless the content type is JSON, `413` over
/// `limit` bytes (by the declared length first, so a huge body is not read, then
/// as it streams in).
pub async fn json_body(req: &mut Request, limit: usize) -> Result<Vec<u8>, ApiError> {
    let media = req.headers().get("content-type").ok().flatten();
    if !is_json_content_type(media.as_deref()) {
        return Err(ApiError::UnsupportedMediaType);
    }
    Ok(crate::body::read_capped(req, limit).await?.to_vec())
}

/// A page as a response: its status, HTML, cookies and redirect, with
/// [`PAGE_HEADERS`] on every one.
pub fn page(page: Html) -> worker::Result<Response> {
    let headers = Headers::new();
    for (name, value) in PAGE_HEADERS {
        headers.set(name, value)?;
    }
    for cookie in &page.cookies {
        headers.append("set-cookie", cookie)?;
    }
    if let Some(to) = &page.location {
        headers.set("location", to)?;
    }
    Ok(Response::ok(page.body)?
        .with_status(page.status)
        .with_headers(headers))
}
