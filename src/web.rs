//! The status page's edge: which paths are pages, and how a page's [`Html`] becomes a
//! response with the page headers. What a page shows is decided in
//! `edge_core::web`; who may see it in [`crate::web_auth`]'s gate, which runs
//! before every page but the stylesheet and `/signin`.

use edge_core::web::layout::{self, STYLESHEET};
use edge_core::web::Html;
use maud::html;
use worker::{Headers, Method, Request, Response};

use crate::deploy::Event;
use crate::web_auth;

/// Whether `path` is one of the pages (or their stylesheet) rather than the API.
pub fn is_page(path: &str) -> bool {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    matches!(
        first,
        "" | "apps"
            | "jobs"
            | "previews"
            | "workflows"
            | "deliveries"
            | "signin"
            | "signout"
            | "assets"
    )
}

pub async fn handle(req: Request, event: &Event<'_>) -> worker::Result<Response> {
    let path = req.path();
    if path == layout::stylesheet_path() {
        return stylesheet(&req);
    }
    match path.as_str() {
        "/signin" => return web_auth::signin(req, event).await,
        "/signout" => return web_auth::signout(req, event).await,
        _ => {}
    }
    // The gate: every page below is for a signed-in viewer only.
    let viewer = match web_auth::viewer(&req, event).await {
        Ok(viewer) => viewer,
        Err(page) => return send(page),
    };
    match path.as_str() {
        "/" => send(Html::ok(layout::page(
            "Overview",
            Some(&viewer),
            html! { h1 { "Overview" } },
        ))),
        _ => send(not_found()),
    }
}

/// The stylesheet, cached for a year: its path changes with its content.
fn stylesheet(req: &Request) -> worker::Result<Response> {
    if !matches!(req.method(), Method::Get | Method::Head) {
        return send(error_page(405, "Only GET is allowed here."));
    }
    let headers = Headers::new();
    headers.set("content-type", "text/css; charset=utf-8")?;
    headers.set("cache-control", "public, max-age=31536000, immutable")?;
    headers.set("x-content-type-options", "nosniff")?;
    Ok(Response::ok(STYLESHEET)?.with_headers(headers))
}

fn not_found() -> Html {
    error_page(404, "There is no page here.")
}

/// A page that says what went wrong (rendered in the core, with the page headers
/// like any other page).
pub use edge_core::web::layout::error_page;

/// A page as a response, with the page headers (in [`crate::respond`], where every
/// answer becomes a response).
pub use crate::respond::page as send;
