//! Who sees the status page, at the edge: reads the request (the Access header, the
//! cookie, the form), hands it to `edge_core::web::auth`, and turns what it decides
//! into pages. Cloudflare Access's keys come through [`FetchHttp`] and are cached in
//! `STATE`; signatures and MACs are WebCrypto's ([`crate::crypto`]).
//!
//! - [`viewer`]: the gate before every page;
//! - [`signin`] and [`signout`]: `/signin` (the form and its POST) and `/signout`;
//! - [`posted_form`]: what every page's form POST goes through once the gate has
//!   named its viewer (the origin, the body, the CSRF token).

use crate::request::Request;
use edge_core::error::ApiError;
use edge_core::github::intake::BodyError;
use edge_core::web::auth::{
    self, limit, session, signin as form, AuthPorts, Credentials, Denied, Gate, SignedIn,
};
use edge_core::web::form::{Form, FormError};
use edge_core::web::viewer::Viewer;
use edge_core::web::Html;
use worker::{console_error, console_log, Method, Response};

use crate::adapters::{self, FetchHttp};
use crate::crypto::{random_bytes, WebCryptoHmac, WebCryptoVerifier};
use crate::deploy::Event;
use crate::respond::page as send;
use edge_core::web::layout::error_page;

/// A page form's body may be at most this long: a CSRF token, a `next` path and a
/// few short fields (a token, a reason) fit many times over.
pub const MAX_FORM_BYTES: usize = 4 * 1024;

/// The header Cloudflare Access adds to every request it lets through.
const ACCESS_HEADER: &str = "cf-access-jwt-assertion";

/// Where Access ends its session.
const ACCESS_LOGOUT: &str = "/cdn-cgi/access/logout";

fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

/// The one mapping of a refusal to a page (and its log line).
fn refused(denied: Denied) -> Html {
    if let Some(line) = denied.log() {
        if matches!(denied, Denied::Internal(_)) || denied.status() >= 500 {
            console_error!("web: {line}");
        } else {
            console_log!("web: {line}");
        }
    }
    match denied {
        Denied::SignIn { next } => Html::see_other(form::location(&next)),
        other => error_page(other.status(), &other.message()),
    }
}

fn unbound(e: ApiError) -> Html {
    console_error!("web: {e}");
    error_page(503, &e.to_string())
}

/// The request's own origin and the page it asks for (path and query).
fn url_parts(req: &Request) -> (String, String) {
    form::split_url(&req.inner().url())
}

/// Who is looking, or the page that answers instead: under Access a `403` page for
/// a missing or refused token (logged with the reason, never the token), under the
/// sign-in form a `303` to `/signin?next=<this page>` (`/` for a POST), and a `503` page when
/// neither is configured.
pub async fn viewer(req: &Request, event: &Event<'_>) -> Result<Viewer, Html> {
    let config = event.config;
    let gate = auth::gate(&config.access, config.admin_token.as_ref());
    // Every page reads D1, so a missing binding is a 503 here already.
    let kv = &event.bindings().map_err(unbound)?.kv;
    let jwt = header(req, ACCESS_HEADER);
    let cookie = header(req, "cookie");
    // The way back after signing in is a page to GET: a form POST's own path is not
    // one, so a POST without a session comes back to the overview.
    let path = match req.method() {
        Method::Get | Method::Head => url_parts(req).1,
        _ => "/".to_owned(),
    };
    let ports = AuthPorts {
        http: &FetchHttp,
        kv,
        verifier: &WebCryptoVerifier,
        mac: &WebCryptoHmac,
    };
    let credentials = Credentials {
        access_jwt: jwt.as_deref(),
        cookie: cookie.as_deref(),
        path: &path,
    };
    auth::viewer(gate, &ports, credentials, adapters::now())
        .await
        .map_err(refused)
}

/// A page form's body: `application/x-www-form-urlencoded` (else `415`), sent from
/// one of our pages (else `403`), at most [`MAX_FORM_BYTES`] while it is read
/// (else `413`), and well-formed (else `400`).
async fn read_form(req: &Request) -> Result<Form, Html> {
    let site = header(req, "sec-fetch-site");
    let origin = header(req, "origin");
    if !auth::same_origin(site.as_deref(), origin.as_deref(), &url_parts(req).0) {
        return Err(refused(Denied::Forgery));
    }
    let content_type = header(req, "content-type").unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(error_page(
            415,
            "A form must be sent as application/x-www-form-urlencoded.",
        ));
    }
    let body = crate::body::read_capped(req, MAX_FORM_BYTES)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge { limit } => {
                error_page(413, &format!("The form is larger than {limit} bytes."))
            }
            BodyError::Unreadable => error_page(400, "The form could not be read."),
        })?;
    Form::parse(&body.to_vec(), MAX_FORM_BYTES).map_err(|e| match e {
        FormError::TooLarge { limit } => {
            error_page(413, &format!("The form is larger than {limit} bytes."))
        }
        other => error_page(400, &format!("The form is malformed: {other}.")),
    })
}

/// What every page's form POST goes through before it acts, once the gate has
/// named its `viewer`: the origin, the body, and the viewer's CSRF token in its
/// `csrf` field (else `403`). Whether the viewer may act (`viewer.operator`) is the
/// page's to check.
pub async fn posted_form(req: &Request, viewer: &Viewer) -> Result<Form, Html> {
    let form = read_form(req).await?;
    if !session::csrf_ok(viewer, form.get("csrf")) {
        return Err(refused(Denied::Forgery));
    }
    Ok(form)
}

/// `/signin`: the form (`GET`) and its POST. Under Access there is nothing to sign
/// in to (`303` to `/`); with neither Access nor `ADMIN_TOKEN`, a `503` page.
pub async fn signin(req: Request, event: &Event<'_>) -> worker::Result<Response> {
    let config = event.config;
    let token = match auth::gate(&config.access, config.admin_token.as_ref()) {
        Gate::Form(token) => token,
        Gate::Access(..) => return send(Html::see_other("/")),
        Gate::Misconfigured(p) => return send(refused(Denied::Misconfigured(p.to_owned()))),
        Gate::Unconfigured => return send(refused(Denied::Unconfigured)),
    };
    match req.method() {
        Method::Get | Method::Head => {
            let next = edge_core::http::query_param(&req.inner().url(), "next");
            send(Html::ok(form::page(
                &form::safe_next(next.as_deref()),
                false,
            )))
        }
        Method::Post => {
            let form = match read_form(&req).await {
                Ok(form) => form,
                Err(page) => return send(page),
            };
            let next = form::safe_next(form.get("next"));
            let bindings = match event.bindings() {
                Ok(b) => b,
                Err(e) => return send(unbound(e)),
            };
            let random = match random_bytes::<16>() {
                Ok(r) => r,
                Err(e) => return send(refused(Denied::Internal(e))),
            };
            let client = limit::client(header(&req, "cf-connecting-ip").as_deref());
            let outcome = auth::sign_in(
                &bindings.sql,
                &WebCryptoHmac,
                token,
                &client,
                form.get("token"),
                Some(&next),
                random,
                adapters::now(),
            )
            .await;
            match outcome {
                Ok(SignedIn::Welcome { cookie, to }) => {
                    console_log!("web: signed in with the admin token");
                    send(Html::see_other(to).with_cookie(cookie))
                }
                Ok(SignedIn::Wrong) => {
                    console_log!("web: sign-in refused: wrong token");
                    send(Html::with_status(401, form::page(&next, true)))
                }
                Err(
                    denied @ Denied::Limited {
                        retry_after_seconds,
                    },
                ) => {
                    let mut response = send(refused(denied))?;
                    response
                        .headers_mut()
                        .set("retry-after", &retry_after_seconds.to_string())?;
                    Ok(response)
                }
                Err(denied) => send(refused(denied)),
            }
        }
        _ => send(error_page(405, "Only GET and POST are allowed here.")),
    }
}

/// `POST /signout` with the viewer's CSRF token: clears the session cookie and
/// goes to `/signin` (under Access, to Access's own logout).
pub async fn signout(req: Request, event: &Event<'_>) -> worker::Result<Response> {
    if req.method() != Method::Post {
        return send(error_page(405, "Sign out with the button (a POST)."));
    }
    let viewer = match viewer(&req, event).await {
        Ok(viewer) => viewer,
        Err(page) => return send(page),
    };
    if let Err(page) = posted_form(&req, &viewer).await {
        return send(page);
    }
    let access = matches!(
        auth::gate(&event.config.access, event.config.admin_token.as_ref()),
        Gate::Access(..)
    );
    if access {
        return send(Html::see_other(ACCESS_LOGOUT));
    }
    send(Html::see_other("/signin").with_cookie(session::clear_cookie()))
}
