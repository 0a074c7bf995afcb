//! The sign-in form's session cookie and every viewer's CSRF token, both HMAC-SHA256
//! under the pages' key (through [`Hmac`], WebCrypto in the Worker).
//!
//! **The key.** [`PageKey::from_admin_token`] is HMAC-SHA256 keyed by `ADMIN_TOKEN`
//! over a fixed label, so the token itself never signs anything and rotating it
//! ends every session and voids every form. Under Cloudflare Access without
//! `ADMIN_TOKEN`, [`PageKey::from_access_token`] derives it from the viewer's own
//! Access token instead (a secret only their browser holds).
//!
//! **The cookie.** `v1.<issued>.<expires>.<id>.<mac>`: issue and expiry in Unix
//! seconds, 16 random bytes as hex, and the MAC (base64url) over the rest. It is
//! `HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=43200`, and its name has the
//! `__Host-` prefix, so a browser takes it only from this origin over HTTPS and
//! never with a `Domain`. Anything that does not verify (tampered, expired, under
//! another key, malformed) reads as "not signed in".
//!
//! **CSRF.** A session's token is the MAC of its id; an Access viewer's is the MAC of
//! their email and the UTC day. [`csrf_ok`] compares in constant time.

use std::future::Future;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::auth::constant_time_eq;
use crate::secret::Secret;
use crate::time::Timestamp;
use crate::web::viewer::Viewer;

/// The session cookie's name (`__Host-`: Secure, `Path=/`, no `Domain`).
pub const COOKIE_NAME: &str = "__Host-edge-session";

/// How long a session lasts: 12 hours, a working day; then sign in again.
pub const SESSION_SECONDS: i64 = 43_200;

/// A `Cookie` header longer than this is not read (browsers send at most a few KiB
/// to one origin; anything longer is not ours).
const MAX_COOKIE_HEADER: usize = 8 * 1024;

/// The labels the MACs are taken over, one per use, so no MAC can stand for another.
const KEY_LABEL: &[u8] = b"edge-notifier status page key v1";
const ACCESS_KEY_LABEL: &[u8] = b"edge-notifier status page key v1 (access)";
const SESSION_LABEL: &str = "session\0";
const SESSION_CSRF_LABEL: &str = "csrf\0session\0";
const ACCESS_CSRF_LABEL: &str = "csrf\0access\0";

/// HMAC-SHA256 over bytes. The error text is for logs.
pub trait Hmac {
    fn hmac_sha256(&self, key: &[u8], data: &[u8])
        -> impl Future<Output = Result<Vec<u8>, String>>;
}

/// The key the pages sign with. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct PageKey(Vec<u8>);

impl std::fmt::Debug for PageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PageKey(***)")
    }
}

impl PageKey {
    /// HMAC-SHA256(`ADMIN_TOKEN`, label).
    pub async fn from_admin_token<M: Hmac>(mac: &M, token: &Secret) -> Result<PageKey, String> {
        mac.hmac_sha256(token.expose().as_bytes(), KEY_LABEL)
            .await
            .map(PageKey)
    }

    /// HMAC-SHA256(the viewer's verified Access token, label): for the CSRF tokens
    /// of an Access viewer when `ADMIN_TOKEN` is not set.
    pub async fn from_access_token<M: Hmac>(mac: &M, token: &str) -> Result<PageKey, String> {
        mac.hmac_sha256(token.as_bytes(), ACCESS_KEY_LABEL)
            .await
            .map(PageKey)
    }

    async fn sign<M: Hmac>(&self, mac: &M, label: &str, data: &str) -> Result<String, String> {
        let mut message = Vec::with_capacity(label.len() + data.len());
        message.extend_from_slice(label.as_bytes());
        message.extend_from_slice(data.as_bytes());
        let tag = mac.hmac_sha256(&self.0, &message).await?;
        Ok(URL_SAFE_NO_PAD.encode(tag))
    }
}

/// A signed-in session of the sign-in form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// 32 lowercase hex digits.
    pub id: String,
    /// Unix seconds.
    pub issued: i64,
    /// Unix seconds.
    pub expires: i64,
}

impl Session {
    /// A session from `now` for [`SESSION_SECONDS`], with the id `random` (16 bytes
    /// from the runtime's CSPRNG).
    pub fn new(random: [u8; 16], now: Timestamp) -> Session {
        let issued = now.millis().div_euclid(1000);
        Session {
            id: random.iter().map(|b| format!("{b:02x}")).collect(),
            issued,
            expires: issued + SESSION_SECONDS,
        }
    }

    fn payload(&self) -> String {
        format!("v1.{}.{}.{}", self.issued, self.expires, self.id)
    }

    /// The `Set-Cookie` value that stores it.
    pub async fn cookie<M: Hmac>(&self, mac: &M, key: &PageKey) -> Result<String, String> {
        let payload = self.payload();
        let tag = key.sign(mac, SESSION_LABEL, &payload).await?;
        Ok(format!(
            "{COOKIE_NAME}={payload}.{tag}; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age={SESSION_SECONDS}"
        ))
    }

    /// The session's CSRF token.
    pub async fn csrf<M: Hmac>(&self, mac: &M, key: &PageKey) -> Result<String, String> {
        key.sign(mac, SESSION_CSRF_LABEL, &self.id).await
    }
}

/// The `Set-Cookie` value that ends a session.
pub fn clear_cookie() -> String {
    format!("{COOKIE_NAME}=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0")
}

/// The session cookie's value in a `Cookie` header, if there is one.
fn cookie_value(header: &str) -> Option<&str> {
    if header.len() > MAX_COOKIE_HEADER {
        return None;
    }
    header.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == COOKIE_NAME).then_some(value)
    })
}

/// Unix seconds as the cookie writes them: 1 to 12 ASCII digits.
fn seconds(s: &str) -> Option<i64> {
    (!s.is_empty() && s.len() <= 12 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// The session a request's `Cookie` header carries, if it verifies under `key` and
/// is current at `now`. `Err` only when the MAC itself could not be computed.
pub async fn read_session<M: Hmac>(
    mac: &M,
    key: &PageKey,
    cookie_header: Option<&str>,
    now: Timestamp,
) -> Result<Option<Session>, String> {
    let Some(value) = cookie_header.and_then(cookie_value) else {
        return Ok(None);
    };
    let parts: Vec<&str> = value.split('.').collect();
    let [version, issued, expires, id, tag] = parts.as_slice() else {
        return Ok(None);
    };
    let (Some(issued), Some(expires)) = (seconds(issued), seconds(expires)) else {
        return Ok(None);
    };
    if *version != "v1"
        || id.len() != 32
        || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Ok(None);
    }
    let session = Session {
        id: (*id).to_owned(),
        issued,
        expires,
    };
    let expected = key.sign(mac, SESSION_LABEL, &session.payload()).await?;
    if !constant_time_eq(expected.as_bytes(), tag.as_bytes()) {
        return Ok(None);
    }
    let now = now.millis().div_euclid(1000);
    let current = issued <= now + super::access::LEEWAY_SECONDS
        && now < expires
        && expires - issued <= SESSION_SECONDS;
    Ok(current.then_some(session))
}

/// The UTC day of `now` (days since 1970-01-01): what an Access viewer's CSRF token
/// is bound to, so it changes daily without any state.
pub fn day_of(now: Timestamp) -> i64 {
    now.millis().div_euclid(86_400_000)
}

/// An Access viewer's CSRF token: the MAC of who they are and the day.
pub async fn access_csrf<M: Hmac>(
    mac: &M,
    key: &PageKey,
    who: &str,
    day: i64,
) -> Result<String, String> {
    key.sign(
        mac,
        ACCESS_CSRF_LABEL,
        &format!("{}\0{day}", who.to_ascii_lowercase()),
    )
    .await
}

/// Whether a form's `csrf` field is the viewer's token, compared in constant time.
/// Every POST from a page checks it before it does anything.
pub fn csrf_ok(viewer: &Viewer, submitted: Option<&str>) -> bool {
    match submitted {
        Some(token) if !viewer.csrf.is_empty() => {
            constant_time_eq(token.as_bytes(), viewer.csrf.as_bytes())
        }
        _ => false,
    }
}
