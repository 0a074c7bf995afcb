//! The status page's edge: which paths are pages, who is looking ([`viewer`]), the
//! pages' routes (each page's load and render are `edge_core::web::pages`), the
//! forms' bodies and CSRF check, and how a page's [`Html`] becomes a response with
//! the page headers and `Server-Timing` (its D1 round trips and render time).

use edge_core::auth::constant_time_eq;
use edge_core::config::Config;
use edge_core::cursor::Cursor;
use edge_core::http::query_param;
use edge_core::web::counted::Counted;
use edge_core::web::form::{Form, FormError};
use edge_core::web::layout::{self, STYLESHEET};
use edge_core::web::pages::{self, actions, PageError};
use edge_core::web::viewer::Viewer;
use edge_core::web::{Html, PAGE_HEADERS};
use maud::html;
use worker::{console_error, Headers, Method, Request, Response};

use crate::adapters::now;
use crate::deploy::Event;

/// Largest form body: a form carries a token, a version and a button (a few
/// hundred bytes).
const MAX_FORM_BYTES: usize = 8 * 1024;

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

    /// The methods the route answers.
    fn allowed(&self) -> &'static str {
        match self {
            Route::JobAction(..) | Route::Replay(_) => "POST",
            _ => "GET",
        }
    }
}

pub async fn handle(mut req: Request, event: &Event<'_>) -> worker::Result<Response> {
    let path = req.path();
    if path == layout::stylesheet_path() {
        return stylesheet(&req);
    }
    let Some(route) = Route::parse(&path) else {
        return send(not_found());
    };
    let method = req.method();
    let wanted = if route.allowed() == "POST" {
        Method::Post
    } else {
        Method::Get
    };
    if method != wanted {
        return send_with(
            error_page(405, &format!("Only {} is allowed here.", route.allowed())),
            &[("allow", route.allowed().to_owned())],
        );
    }
    let viewer = match viewer(&req, event.config).await {
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
        let form = match read_form(&mut req).await {
            Ok(f) => f,
            Err(page) => return send(page),
        };
        if let Err(page) = check_csrf(&viewer, &form) {
            return send(page);
        }
        let done = match route {
            Route::JobAction(id, action) => {
                let version = form.get("version").unwrap_or_default();
                let deps = bindings.deps(event.config);
                actions::on_job(&deps, &viewer, id, action, version, now()).await
            }
            Route::Replay(id) if viewer.operator => {
                actions::replay(&bindings.sql, &bindings.queue, &id, now()).await
            }
            Route::Replay(_) => Err(PageError::Forbidden(
                "Not done: only an operator may replay a delivery.".into(),
            )),
            _ => Err(PageError::NotFound),
        };
        return send(match done {
            Ok(to) => Html::see_other(to),
            Err(e) => failed(&e),
        });
    }
    let sql = Counted::new(&bindings.sql);
    let clock = now();
    let before = param("before");
    let rendered = match route {
        Route::Overview => match cursor(before.as_deref(), "nj") {
            Ok(c) => pages::overview::load(&sql, c.as_ref(), clock)
                .await
                .map(|v| timed(|| pages::overview::render(&v, &viewer, clock))),
            Err(e) => Err(e),
        },
        Route::App(name) => match cursor(before.as_deref(), "j") {
            Ok(c) => pages::app::load(&sql, &name, c.as_ref())
                .await
                .map(|v| timed(|| pages::app::render(&v, &viewer, clock))),
            Err(e) => Err(e),
        },
        Route::Job(id) => pages::job::load(&sql, id)
            .await
            .map(|v| timed(|| pages::job::render(&v, &viewer, clock))),
        Route::Previews => match cursor(before.as_deref(), "p") {
            Ok(c) => pages::previews::load(&sql, c.as_ref())
                .await
                .map(|v| timed(|| pages::previews::render(&v, &viewer, clock))),
            Err(e) => Err(e),
        },
        Route::Workflow(name) => pages::workflow::load(&sql, &name)
            .await
            .map(|v| timed(|| pages::workflow::render(&v, &viewer, clock))),
        Route::Deliveries => pages::deliveries::load(
            &sql,
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
    let timing = format!("d1;desc=\"{}\", render;dur={render_ms}", sql.calls());
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

/// Who is looking. Until the sign-in gate lands, the holder of `ADMIN_TOKEN` (as a
/// bearer token) is the operator `admin`, with a CSRF token made from the token by
/// HMAC (the same for every request of theirs, unguessable without the token).
async fn viewer(req: &Request, config: &Config) -> Result<Viewer, Html> {
    let header = req.headers().get("authorization").ok().flatten();
    edge_core::auth::require_bearer(
        header.as_deref(),
        config.admin_token.as_ref(),
        "ADMIN_TOKEN",
    )
    .map_err(|e| match e {
        edge_core::error::ApiError::NotConfigured(_) => {
            error_page(503, "The status page needs ADMIN_TOKEN to be set.")
        }
        _ => error_page(401, "Sign in to see this page."),
    })?;
    let token = config
        .admin_token
        .as_ref()
        .ok_or_else(|| error_page(503, "The status page needs ADMIN_TOKEN to be set."))?;
    let mac = crate::crypto::hmac(token.expose().as_bytes(), b"edge-notifier status page csrf")
        .await
        .map_err(|e| {
            console_error!("web: csrf: {e}");
            error_page(500, "The page could not be prepared.")
        })?;
    Ok(Viewer {
        name: "admin".into(),
        operator: true,
        csrf: mac.iter().map(|b| format!("{b:02x}")).collect(),
    })
}

/// Every form POST carries its viewer's CSRF token: a form from elsewhere does not.
fn check_csrf(viewer: &Viewer, form: &Form) -> Result<(), Html> {
    let sent = form.get("csrf").unwrap_or_default();
    if !sent.is_empty() && constant_time_eq(sent.as_bytes(), viewer.csrf.as_bytes()) {
        Ok(())
    } else {
        Err(error_page(
            403,
            "This form did not come from this page (its CSRF token is missing or wrong). Reload the page and try again.",
        ))
    }
}

/// A form's fields: `application/x-www-form-urlencoded` only (415 otherwise), at
/// most [`MAX_FORM_BYTES`] (413), counted while it is read.
async fn read_form(req: &mut Request) -> Result<Form, Html> {
    let kind = req.headers().get("content-type").ok().flatten();
    let essence = kind
        .as_deref()
        .and_then(|k| k.split(';').next())
        .map(|k| k.trim().to_ascii_lowercase());
    if essence.as_deref() != Some("application/x-www-form-urlencoded") {
        return Err(error_page(
            415,
            "A form must be sent as application/x-www-form-urlencoded.",
        ));
    }
    let body = crate::body::read_capped(req, MAX_FORM_BYTES)
        .await
        .map_err(|_| {
            error_page(
                413,
                &format!("The form is larger than {MAX_FORM_BYTES} bytes."),
            )
        })?;
    Form::parse(&body.to_vec(), MAX_FORM_BYTES).map_err(|e| match e {
        FormError::TooLarge { limit } => {
            error_page(413, &format!("The form is larger than {limit} bytes."))
        }
        other => error_page(400, &format!("The form cannot be read: {other}.")),
    })
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

fn not_found() -> Html {
    error_page(404, "There is no page here.")
}

/// A page that says what went wrong, with the page headers like any other.
pub fn error_page(status: u16, message: &str) -> Html {
    let title = match status {
        400 => "Bad request",
        401 => "Sign in",
        403 => "Not allowed",
        404 => "Not found",
        405 => "Method not allowed",
        409 => "This has moved on",
        413 => "Too large",
        415 => "Unsupported form",
        429 => "Too many attempts",
        503 => "Not configured",
        _ => "Something went wrong",
    };
    Html::with_status(
        status,
        layout::page(title, None, html! { h1 { (title) } p.error { (message) } }),
    )
}

/// A page as a response: its status, HTML, cookies and redirect, with
/// [`PAGE_HEADERS`] on every one.
pub fn send(page: Html) -> worker::Result<Response> {
    send_with(page, &[])
}

/// [`send`] with more headers (`Allow`, `Server-Timing`).
fn send_with(page: Html, extra: &[(&str, String)]) -> worker::Result<Response> {
    let headers = Headers::new();
    for (name, value) in PAGE_HEADERS {
        headers.set(name, value)?;
    }
    for (name, value) in extra {
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
