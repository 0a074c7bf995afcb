//! The status page's edge: which paths are pages, the pages' routes (each page's
//! load and render are `edge_core::web::pages`), and how a page's [`Html`] becomes a
//! response with the page headers and `Server-Timing` (its D1 round trips and render
//! time). Who may see a page is [`crate::web_auth`]'s gate, which runs before every
//! page but the stylesheet and `/signin`; every form POST goes through its
//! [`web_auth::posted_form`] (origin, body, CSRF token).

use crate::request::Request;
use edge_core::cursor::Cursor;
use edge_core::http::query_param;
use edge_core::web::layout::{self, STYLESHEET};
use edge_core::web::pages::{self, actions, PageError};
use edge_core::web::Html;
use worker::{console_error, Headers, Method, Response};

use crate::adapters::now;
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
            | "favicon.ico"
    )
}

/// What a path asks for.
enum Route {
    Overview,
    App(String),
    Job(i64),
    JobAction(i64, edge_core::chatops::Action),
    Previews,
    Workflow(String),
    Deliveries,
    Replay(String),
}

impl Route {
    fn parse(path: &str) -> Option<Route> {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let id = |s: &str| s.parse::<i64>().ok().filter(|n| *n > 0);
        Some(match segments.as_slice() {
            [""] => Route::Overview,
            ["apps", name] => Route::App((*name).to_owned()),
            ["jobs", n] => Route::Job(id(n)?),
            ["jobs", n, action] => Route::JobAction(id(n)?, actions::job_action(action)?),
            ["previews"] => Route::Previews,
            ["workflows", name] => Route::Workflow((*name).to_owned()),
            ["deliveries"] => Route::Deliveries,
            ["deliveries", d, "replay"] => Route::Replay((*d).to_owned()),
            _ => return None,
        })
    }

    /// The methods the route answers: a form's target takes POST, a page GET and
    /// HEAD.
    fn allowed(&self) -> &'static str {
        match self {
            Route::JobAction(..) | Route::Replay(_) => "POST",
            _ => "GET, HEAD",
        }
    }
}

pub async fn handle(req: Request, event: &Event<'_>) -> worker::Result<Response> {
    let path = req.path();
    if path == layout::stylesheet_path() {
        return stylesheet(&req);
    }
    match path.as_str() {
        // Browsers ask for it on every page; there is none (a `data:` icon would need
        // the CSP widened), so say so without a 404 page each time.
        "/favicon.ico" => return no_icon(),
        "/signin" => return web_auth::signin(req, event).await,
        "/signout" => return web_auth::signout(req, event).await,
        _ => {}
    }
    let Some(route) = Route::parse(&path) else {
        return send(not_found());
    };
    let method = req.method();
    let fits = match route.allowed() {
        "POST" => method == Method::Post,
        _ => matches!(method, Method::Get | Method::Head),
    };
    if !fits {
        return send_with(
            error_page(
                405,
                &format!("This address takes {} only.", route.allowed()),
            ),
            &[("allow", route.allowed().to_owned())],
        );
    }
    // The gate: every page below is for a signed-in viewer only.
    let viewer = match web_auth::viewer(&req, event).await {
        Ok(v) => v,
        Err(page) => return send(page),
    };
    let bindings = match event.bindings() {
        Ok(b) => b,
        Err(_) => return send(error_page(503, "The database is not bound.")),
    };
    let url = req.inner().url();
    let param = |name: &str| query_param(&url, name);
    if method == Method::Post {
        let form = match web_auth::posted_form(&req, &viewer).await {
            Ok(f) => f,
            Err(page) => return send(page),
        };
        let done = match route {
            Route::JobAction(id, action) => {
                let version = form.get("version").unwrap_or_default();
                let deps = bindings.deps(event.config);
                actions::on_job(&deps, &viewer, id, action, version, now()).await
            }
            Route::Replay(id) => {
                let version = form.get("version").unwrap_or_default();
                actions::replay(&bindings.sql, &bindings.queue, &viewer, &id, version, now()).await
            }
            _ => Err(PageError::NotFound),
        };
        return send(match done {
            Ok(to) => Html::see_other(to),
            Err(e) => failed(&e),
        });
    }
    let sql = &bindings.sql;
    let trips = sql.round_trips();
    let clock = now();
    let before = param("before");
    let rendered = match route {
        Route::Overview => match cursor(before.as_deref(), "nj") {
            Ok(c) => pages::overview::load(sql, c.as_ref(), clock)
                .await
                .map(|v| timed(|| pages::overview::render(&v, &viewer, clock))),
            Err(e) => Err(e),
        },
        Route::App(name) => match cursor(before.as_deref(), "j") {
            Ok(c) => pages::app::load(sql, &name, c.as_ref())
                .await
                .map(|v| timed(|| pages::app::render(&v, &viewer, clock))),
            Err(e) => Err(e),
        },
        Route::Job(id) => pages::job::load(sql, id)
            .await
            .map(|v| timed(|| pages::job::render(&v, &viewer, clock))),
        Route::Previews => match cursor(before.as_deref(), "p") {
            Ok(c) => pages::previews::load(sql, c.as_ref())
                .await
                .map(|v| timed(|| pages::previews::render(&v, &viewer, clock))),
            Err(e) => Err(e),
        },
        Route::Workflow(name) => pages::workflow::load(sql, &name)
            .await
            .map(|v| timed(|| pages::workflow::render(&v, &viewer, clock))),
        Route::Deliveries => pages::deliveries::load(
            sql,
            param("source").as_deref(),
            param("outcome").as_deref(),
            before.as_deref(),
            param("replayed").is_some(),
        )
        .await
        .map(|v| timed(|| pages::deliveries::render(&v, &viewer, clock))),
        Route::JobAction(..) | Route::Replay(_) => Err(PageError::NotFound),
    };
    let (page, render_ms) = match rendered {
        Ok((body, ms)) => (Html::ok(body), ms),
        Err(e) => (failed(&e), 0),
    };
    let timing = format!(
        "d1;desc=\"{}\", render;dur={render_ms}",
        sql.round_trips() - trips
    );
    send_with(page, &[("server-timing", timing)])
}

/// A page's HTML and how long rendering it took (whole milliseconds: the Workers
/// clock has no finer grain, and formatting a float costs the upload 10 KiB).
fn timed(render: impl FnOnce() -> String) -> (String, i64) {
    let start = now();
    let body = render();
    (body, now().millis() - start.millis())
}

fn cursor(before: Option<&str>, sources: &str) -> Result<Option<Cursor>, PageError> {
    Ok(Cursor::from_param(before, sources)?)
}

/// The error page of a [`PageError`]; a store's failure goes to the log.
fn failed(e: &PageError) -> Html {
    if let PageError::Store(detail) = e {
        console_error!("web: {detail}");
    }
    error_page(e.status(), &e.message())
}

/// The stylesheet, cached for a year: its path changes with its content.
fn stylesheet(req: &Request) -> worker::Result<Response> {
    if !matches!(req.method(), Method::Get | Method::Head) {
        return send_with(
            error_page(405, "Only GET is allowed here."),
            &[("allow", "GET, HEAD".to_owned())],
        );
    }
    let headers = Headers::new();
    headers.set("content-type", "text/css; charset=utf-8")?;
    headers.set("cache-control", "public, max-age=31536000, immutable")?;
    headers.set("x-content-type-options", "nosniff")?;
    Ok(Response::ok(STYLESHEET)?.with_headers(headers))
}

/// `204 No Content` for `/favicon.ico`, cached for a day.
fn no_icon() -> worker::Result<Response> {
    let headers = Headers::new();
    headers.set("cache-control", "public, max-age=86400")?;
    Ok(Response::empty()?.with_status(204).with_headers(headers))
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

/// [`send`] with more headers (`Allow`, `Server-Timing`).
fn send_with(page: Html, extra: &[(&str, String)]) -> worker::Result<Response> {
    let mut response = send(page)?;
    let headers = response.headers_mut();
    for (name, value) in extra {
        headers.set(name, value)?;
    }
    Ok(response)
}
