//! Who sees the status page, decided in the core: Cloudflare Access when
//! `ACCESS_TEAM_DOMAIN` and `ACCESS_AUD` are set ([`access`]), otherwise the sign-in
//! form that takes `ADMIN_TOKEN` and sets a signed session cookie ([`session`]),
//! rate-limited per client ([`limit`]); and the CSRF token every page form carries.
//! The Worker's `src/web_auth.rs` reads the request and performs what is decided
//! here; [`Denied`] is the one list of refusals, each with its status.
//!
//! - [`access`]: the Access JWT (shape, claims, keys by `kid`, signature through a port);
//! - [`session`]: the pages' key, the session cookie and the CSRF tokens;
//! - [`limit`]: the sign-in attempts per client in D1;
//! - [`signin`]: the sign-in form and where it may send the viewer back to.

pub mod access;
pub mod limit;
pub mod session;
pub mod signin;

#[cfg(test)]
mod tests;

use crate::auth::constant_time_eq;
use crate::ports::{Http, Kv, Sql, StoreError};
use crate::secret::Secret;
use crate::time::Timestamp;
use crate::web::viewer::Viewer;

use access::{AccessConfig, AccessError, RsaVerifier};
use limit::{Attempt, SignInLimits};
use session::{Hmac, PageKey, Session};

/// The name the audit trail gives whoever signed in with `ADMIN_TOKEN`.
pub const ADMIN_NAME: &str = "admin";

/// How the pages are guarded, from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate<'a> {
    /// Cloudflare Access: every request carries its JWT. `ADMIN_TOKEN`, when it is
    /// set too, keys the viewers' CSRF tokens.
    Access(&'a AccessConfig, Option<&'a Secret>),
    /// The sign-in form, for the holder of `ADMIN_TOKEN`.
    Form(&'a Secret),
    /// Access is half or badly configured: no page is shown (falling back to the
    /// form would open a door the operator meant to close).
    Misconfigured(&'a str),
    /// Neither is configured.
    Unconfigured,
}

/// Which guard the configuration asks for.
pub fn gate<'a>(
    access: &'a Result<Option<AccessConfig>, String>,
    admin_token: Option<&'a Secret>,
) -> Gate<'a> {
    match (access, admin_token) {
        (Err(problem), _) => Gate::Misconfigured(problem),
        (Ok(Some(access)), token) => Gate::Access(access, token),
        (Ok(None), Some(token)) => Gate::Form(token),
        (Ok(None), None) => Gate::Unconfigured,
    }
}

/// Why a page is not shown, each with its answer. The messages are for the page;
/// [`Denied::log`] says what the Worker logs (never a token or a cookie).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// No valid session: `303` to the sign-in form, which sends the viewer back to
    /// `next` afterwards.
    #[error("sign in first")]
    SignIn { next: String },
    /// An Access token that is missing or refused: `403` (`503` when the keys could
    /// not be had).
    #[error("{0}")]
    Access(AccessError),
    /// A form POST without the viewer's CSRF token, or from another site: `403`.
    #[error("this form has expired or did not come from this site")]
    Forgery,
    /// Too many sign-in attempts: `429` with `Retry-After`.
    #[error("too many sign-in attempts")]
    Limited { retry_after_seconds: u32 },
    /// Neither Access nor `ADMIN_TOKEN`: `503`.
    #[error("the status page is not configured")]
    Unconfigured,
    /// Access is configured wrongly: `503`.
    #[error("Cloudflare Access is misconfigured: {0}")]
    Misconfigured(String),
    /// The store or the MAC failed: `500`.
    #[error("internal error")]
    Internal(String),
}

impl From<StoreError> for Denied {
    fn from(e: StoreError) -> Self {
        Denied::Internal(e.to_string())
    }
}

impl Denied {
    pub fn status(&self) -> u16 {
        match self {
            Denied::SignIn { .. } => 303,
            Denied::Access(e) if e.is_internal() => 503,
            Denied::Access(_) | Denied::Forgery => 403,
            Denied::Limited { .. } => 429,
            Denied::Unconfigured | Denied::Misconfigured(_) => 503,
            Denied::Internal(_) => 500,
        }
    }

    /// What the page says.
    pub fn message(&self) -> String {
        match self {
            Denied::SignIn { .. } => "Sign in first.".into(),
            Denied::Access(e) if e.is_internal() => {
                "Cloudflare Access's keys could not be read; try again in a minute.".into()
            }
            Denied::Access(AccessError::Missing) => {
                "This page is behind Cloudflare Access; open it through your Access login.".into()
            }
            Denied::Access(e) => format!("Cloudflare Access did not let you in: {e}."),
            Denied::Forgery => {
                "This form has expired or did not come from this site. Go back, reload the page and try again.".into()
            }
            Denied::Limited { retry_after_seconds } => format!(
                "Too many sign-in attempts from your address. Try again in {} min.",
                retry_after_seconds.div_ceil(60)
            ),
            Denied::Unconfigured => "The status page needs ADMIN_TOKEN (for the sign-in form) or \
                 ACCESS_TEAM_DOMAIN and ACCESS_AUD (for Cloudflare Access) to be set."
                .into(),
            Denied::Misconfigured(problem) => format!("{problem}."),
            Denied::Internal(_) => "Something went wrong on our side; try again.".into(),
        }
    }

    /// What the Worker logs about it, if anything.
    pub fn log(&self) -> Option<String> {
        match self {
            Denied::SignIn { .. } => None,
            Denied::Access(e) => Some(format!("page refused: {e}")),
            Denied::Forgery => Some("page refused: a form without its CSRF token".into()),
            Denied::Limited { .. } => Some("sign-in refused: too many attempts".into()),
            Denied::Unconfigured => {
                Some("page refused: neither Access nor ADMIN_TOKEN is set".into())
            }
            Denied::Misconfigured(p) => Some(format!("page refused: {p}")),
            Denied::Internal(e) => Some(format!("page failed: {e}")),
        }
    }
}

/// The ports the gate uses: HTTP and KV for Access's keys, the RSA verifier for
/// its signatures, the HMAC for cookies and CSRF tokens.
pub struct AuthPorts<'a, H, K, V, M> {
    pub http: &'a H,
    pub kv: &'a K,
    pub verifier: &'a V,
    pub mac: &'a M,
}

/// What the gate reads from a request.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    /// `Cf-Access-Jwt-Assertion`.
    pub access_jwt: Option<&'a str>,
    /// `Cookie`.
    pub cookie: Option<&'a str>,
    /// The page asked for (path and query), for the way back after signing in.
    pub path: &'a str,
}

fn internal(e: String) -> Denied {
    Denied::Internal(e)
}

/// Who is looking, or why they may not: under Access, the token's email (an
/// operator when listed); under the form, the session's holder, `admin`, always an
/// operator.
pub async fn viewer<H: Http, K: Kv, V: RsaVerifier, M: Hmac>(
    gate: Gate<'_>,
    ports: &AuthPorts<'_, H, K, V, M>,
    credentials: Credentials<'_>,
    now: Timestamp,
) -> Result<Viewer, Denied> {
    match gate {
        Gate::Unconfigured => Err(Denied::Unconfigured),
        Gate::Misconfigured(problem) => Err(Denied::Misconfigured(problem.to_owned())),
        Gate::Access(config, admin_token) => {
            let identity = access::verify(
                credentials.access_jwt,
                config,
                ports.http,
                ports.kv,
                ports.verifier,
                now,
            )
            .await
            .map_err(Denied::Access)?;
            // Verified above, so present.
            let token = credentials.access_jwt.unwrap_or_default().trim();
            let key = match admin_token {
                Some(t) => PageKey::from_admin_token(ports.mac, t).await,
                None => PageKey::from_access_token(ports.mac, token).await,
            }
            .map_err(internal)?;
            let day = session::day_of(now);
            Ok(Viewer {
                csrf: session::access_csrf(ports.mac, &key, &identity.email, day)
                    .await
                    .map_err(internal)?,
                name: identity.email,
                operator: identity.operator,
            })
        }
        Gate::Form(admin_token) => {
            let key = PageKey::from_admin_token(ports.mac, admin_token)
                .await
                .map_err(internal)?;
            let session = session::read_session(ports.mac, &key, credentials.cookie, now)
                .await
                .map_err(internal)?
                .ok_or_else(|| Denied::SignIn {
                    next: signin::safe_next(Some(credentials.path)),
                })?;
            Ok(Viewer {
                name: ADMIN_NAME.to_owned(),
                operator: true,
                csrf: session.csrf(ports.mac, &key).await.map_err(internal)?,
            })
        }
    }
}

/// Whether a form POST came from one of our pages: `Sec-Fetch-Site` must be
/// `same-origin` when the browser sends it, else `Origin` must be `own_origin` when
/// it is sent. A client that sends neither (not a browser) is let through: the
/// session cookie and the CSRF token still decide.
pub fn same_origin(sec_fetch_site: Option<&str>, origin: Option<&str>, own_origin: &str) -> bool {
    if let Some(site) = sec_fetch_site {
        return site.trim().eq_ignore_ascii_case("same-origin");
    }
    match origin {
        Some(o) => o
            .trim()
            .trim_end_matches('/')
            .eq_ignore_ascii_case(own_origin),
        None => true,
    }
}

/// What a sign-in POST came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignedIn {
    /// The token was right: set `cookie`, `303` to `to`.
    Welcome { cookie: String, to: String },
    /// The token was wrong: the form again, `401`.
    Wrong,
}

/// The sign-in form's POST: counts the attempt for `client` (refused past the
/// limit before the token is even compared), compares `submitted` with
/// `ADMIN_TOKEN` in constant time, and on a match issues a session with the id
/// `random`.
#[expect(
    clippy::too_many_arguments,
    reason = "one call from the Worker's route, each argument a plain input of the decision"
)]
pub async fn sign_in<S: Sql, M: Hmac>(
    sql: S,
    mac: &M,
    admin_token: &Secret,
    client: &str,
    submitted: Option<&str>,
    next: Option<&str>,
    random: [u8; 16],
    now: Timestamp,
) -> Result<SignedIn, Denied> {
    let limits = SignInLimits::new(sql);
    if let Attempt::Refused {
        retry_after_seconds,
    } = limits.attempt(client, now).await?
    {
        return Err(Denied::Limited {
            retry_after_seconds,
        });
    }
    let submitted = submitted.unwrap_or_default();
    if submitted.is_empty()
        || !constant_time_eq(submitted.as_bytes(), admin_token.expose().as_bytes())
    {
        return Ok(SignedIn::Wrong);
    }
    limits.succeeded(client, now).await?;
    let key = PageKey::from_admin_token(mac, admin_token)
        .await
        .map_err(internal)?;
    let cookie = Session::new(random, now)
        .cookie(mac, &key)
        .await
        .map_err(internal)?;
    Ok(SignedIn::Welcome {
        cookie,
        to: signin::safe_next(next),
    })
}
