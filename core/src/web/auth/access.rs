//! Cloudflare Access: the `Cf-Access-Jwt-Assertion` header, a compact JWS signed
//! RS256 by the team's keys. Read from bytes under a cap, never panicking; the
//! claims are checked against the configuration and the clock; the key is picked by
//! `kid` from the team's JWKS (cached in KV, refreshed once when the `kid` is
//! unknown, at most once per [`REFRESH_COOLDOWN_SECONDS`]); the signature is checked
//! through [`RsaVerifier`] (WebCrypto in the Worker), so this module stays pure.
//!
//! The order is: shape, `alg`, claims, key, signature. The claims come before the
//! signature only to spare the keys endpoint: a token whose `iss`, `aud` or times
//! are wrong is refused either way, and nothing it says is trusted (or returned)
//! before its signature holds.

use std::future::Future;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;

use crate::http::HttpRequest;
use crate::ports::{Http, Kv};
use crate::time::Timestamp;

/// A token longer than this is refused before it is decoded. Access's application
/// tokens are about 1 KiB (the identity's groups are not in them); 8 KiB leaves
/// room for long emails and custom claims and keeps a hostile header cheap.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// How far `exp`, `nbf` and `iat` may be off from our clock, in seconds: the
/// Worker's clock and Access's are both NTP-synced, but a token issued the second
/// before it reaches us must not read as "not yet valid". A minute is the usual
/// allowance (and Access tokens live for hours, so it widens nothing that matters).
pub const LEEWAY_SECONDS: i64 = 60;

/// A keys document larger than this is refused (Cloudflare's holds two keys, about
/// 3 KiB); the cap keeps a broken or hostile endpoint from filling the isolate.
pub const MAX_CERTS_BYTES: usize = 64 * 1024;

/// Where the team's keys are cached in KV (`STATE`).
pub const CERTS_CACHE_KEY: &str = "access:certs";

/// How long the cached keys are used before they are fetched again. Access rotates
/// its signing key every six weeks and publishes the next one ahead of time, and an
/// unknown `kid` refreshes at once, so an hour only bounds how long a revoked key
/// is still accepted.
pub const CERTS_TTL_SECONDS: u64 = 3_600;

/// After the keys were fetched for an unknown `kid`, how long another unknown `kid`
/// is refused without fetching again (as `jose`'s remote key sets do, 30 s). The claims
/// that come before the key are no secret (`iss`, `aud`), so without it every token
/// with an invented `kid` would cost a fetch; with it, a flood of them costs two a
/// minute. A rotation is still picked up at its first token, unless a refresh for an
/// unknown `kid` happened in the half minute before: then within 30 s.
pub const REFRESH_COOLDOWN_SECONDS: i64 = 30;

/// How long the keys endpoint has to answer.
const CERTS_TIMEOUT_MS: u32 = 5_000;

/// Cloudflare Access as configured: `ACCESS_TEAM_DOMAIN`, `ACCESS_AUD`,
/// `ACCESS_CERTS_URL` and `ACCESS_OPERATORS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessConfig {
    /// The team's host, `<team>.cloudflareaccess.com`; tokens are issued by
    /// `https://<team_domain>`.
    pub team_domain: String,
    /// The application's audience tag, which every token's `aud` must hold.
    pub aud: String,
    /// Where the team's keys are (default `https://<team_domain>/cdn-cgi/access/certs`).
    pub certs_url: String,
    /// The operators' emails, lower-cased.
    pub operators: Vec<String>,
}

impl AccessConfig {
    /// The settings as read from the environment (trimmed, empty as `None`): `Ok(None)`
    /// when Access is off (neither the team nor the audience is set), `Err` naming what
    /// is wrong when it is half or badly configured. An operator entry that is not an
    /// email is left out, with a line in `problems`.
    pub fn from_settings(
        team_domain: Option<String>,
        aud: Option<String>,
        certs_url: Option<String>,
        operators: Option<String>,
        problems: &mut Vec<String>,
    ) -> Result<Option<AccessConfig>, String> {
        let (team_domain, aud) = match (team_domain, aud) {
            (None, None) => return Ok(None),
            (Some(_), None) => return Err("ACCESS_TEAM_DOMAIN is set without ACCESS_AUD".into()),
            (None, Some(_)) => return Err("ACCESS_AUD is set without ACCESS_TEAM_DOMAIN".into()),
            (Some(t), Some(a)) => (t, a),
        };
        let host = team_domain
            .strip_prefix("https://")
            .unwrap_or(&team_domain)
            .trim_end_matches('/')
            .to_ascii_lowercase();
        if !is_hostname(&host) {
            return Err(
                "ACCESS_TEAM_DOMAIN must be a host name such as myteam.cloudflareaccess.com".into(),
            );
        }
        if aud.len() > 256 || !aud.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("ACCESS_AUD must be the application's audience tag".into());
        }
        let certs_url = match certs_url {
            None => format!("https://{host}/cdn-cgi/access/certs"),
            Some(u) if u.starts_with("https://") || u.starts_with("http://") => u,
            Some(_) => return Err("ACCESS_CERTS_URL must be an http(s) URL".into()),
        };
        let mut emails = Vec::new();
        for entry in operators.unwrap_or_default().split(',').map(str::trim) {
            if entry.is_empty() {
                continue;
            }
            if is_email(entry) {
                emails.push(entry.to_ascii_lowercase());
            } else {
                problems.push(format!(
                    "ACCESS_OPERATORS: {entry:?} is not an email; left out"
                ));
            }
        }
        Ok(Some(AccessConfig {
            team_domain: host,
            aud,
            certs_url,
            operators: emails,
        }))
    }

    /// `https://<team_domain>`, what `iss` must be.
    pub fn issuer(&self) -> String {
        format!("https://{}", self.team_domain)
    }

    /// Whether `email` is listed in `ACCESS_OPERATORS` (case-insensitively).
    pub fn is_operator(&self, email: &str) -> bool {
        self.operators.iter().any(|o| o.eq_ignore_ascii_case(email))
    }
}

/// A DNS host name: labels of letters, digits and hyphens (not at either end),
/// at least two of them, at most 253 characters in all.
fn is_hostname(host: &str) -> bool {
    let labels: Vec<&str> = host.split('.').collect();
    host.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Enough of an email to tell a typo from an address: one `@` with text on both
/// sides, printable and without spaces.
fn is_email(s: &str) -> bool {
    s.len() <= 254
        && s.bytes().all(|b| b.is_ascii_graphic() || b >= 0x80)
        && s.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.contains('@')
        })
}

/// Why an Access token was refused. The texts are safe to log: they never hold the
/// token or anything read out of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error("no Cf-Access-Jwt-Assertion header")]
    Missing,
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("the token's alg is not RS256")]
    WrongAlg,
    #[error("the token's kid is not among the team's keys")]
    UnknownKid,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token is for another application (aud)")]
    WrongAud,
    #[error("the token is from another issuer (iss)")]
    WrongIss,
    #[error("the token names no email (a service token?)")]
    NoEmail,
    /// The keys could not be had (the endpoint failed, or sent no usable keys), or
    /// the verifier broke: nothing the viewer did.
    #[error("the team's keys are unavailable: {0}")]
    Keys(String),
}

impl AccessError {
    /// Whether the fault is ours (the keys or the verifier) rather than the token's.
    pub fn is_internal(&self) -> bool {
        matches!(self, AccessError::Keys(_))
    }
}

/// A compact JWS taken apart: what was signed, its `kid`, its claims and its
/// signature. Only [`verify`] hands out what it says, once the signature holds.
struct Jws<'a> {
    signing_input: &'a str,
    kid: String,
    claims: Claims,
    signature: Vec<u8>,
}

/// The claims that decide.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Claims {
    aud: Vec<String>,
    iss: Option<String>,
    exp: Option<i64>,
    nbf: Option<i64>,
    iat: Option<i64>,
    email: Option<String>,
    sub: Option<String>,
}

fn segment(part: &str, what: &'static str) -> Result<Vec<u8>, AccessError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AccessError::Malformed(what))
}

fn object(bytes: &[u8], what: &'static str) -> Result<serde_json::Map<String, Value>, AccessError> {
    let text = std::str::from_utf8(bytes).map_err(|_| AccessError::Malformed(what))?;
    match crate::json::value(text) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(AccessError::Malformed(what)),
    }
}

/// A NumericDate: whole seconds (a whole-valued float reads as one too).
fn seconds(v: Option<&Value>) -> Result<Option<i64>, AccessError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .or_else(|| {
                v.as_f64()
                    .filter(|f| f.is_finite() && f.abs() < 1e15)
                    .map(|f| f.floor() as i64)
            })
            .map(Some)
            .ok_or(AccessError::Malformed("a time claim is not a number")),
    }
}

fn text(v: Option<&Value>, what: &'static str) -> Result<Option<String>, AccessError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(AccessError::Malformed(what)),
    }
}

fn parse(token: &str) -> Result<Jws<'_>, AccessError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AccessError::Malformed("longer than the cap"));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AccessError::Malformed("not three dot-separated parts"));
    };
    let header = object(
        &segment(header, "the header is not base64url")?,
        "the header is not a JSON object",
    )?;
    if header.get("alg").and_then(Value::as_str) != Some("RS256") {
        return Err(AccessError::WrongAlg);
    }
    // A JWS that asks for critical extensions we do not know must be refused (RFC 7515 4.1.11).
    if header.contains_key("crit") {
        return Err(AccessError::Malformed("the header has crit extensions"));
    }
    let kid = match header.get("kid") {
        Some(Value::String(k)) if !k.is_empty() && k.len() <= 256 => k.clone(),
        _ => return Err(AccessError::Malformed("the header has no kid")),
    };
    let claims = object(
        &segment(payload, "the claims are not base64url")?,
        "the claims are not a JSON object",
    )?;
    let aud = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(all)) => all
            .iter()
            .map(|a| {
                a.as_str()
                    .map(str::to_owned)
                    .ok_or(AccessError::Malformed("aud holds a non-string"))
            })
            .collect::<Result<_, _>>()?,
        None | Some(Value::Null) => Vec::new(),
        Some(_) => {
            return Err(AccessError::Malformed(
                "aud is neither a string nor an array",
            ))
        }
    };
    let claims = Claims {
        aud,
        iss: text(claims.get("iss"), "iss is not a string")?,
        exp: seconds(claims.get("exp"))?,
        nbf: seconds(claims.get("nbf"))?,
        iat: seconds(claims.get("iat"))?,
        email: text(claims.get("email"), "email is not a string")?,
        sub: text(claims.get("sub"), "sub is not a string")?,
    };
    let signature = segment(signature, "the signature is not base64url")?;
    if signature.is_empty() {
        return Err(AccessError::Malformed("the signature is empty"));
    }
    let signing_input = token
        .rsplit_once('.')
        .map(|(input, _)| input)
        .ok_or(AccessError::Malformed("not three dot-separated parts"))?;
    Ok(Jws {
        signing_input,
        kid,
        claims,
        signature,
    })
}

/// The claims against the configuration and `now`, with [`LEEWAY_SECONDS`]:
/// `iss` is the team, `aud` holds the application's tag, `exp` is ahead, `nbf` and
/// `iat` are not (an absent `exp` is refused: Access always sets one).
fn check(claims: &Claims, config: &AccessConfig, now: Timestamp) -> Result<(), AccessError> {
    let now = now.millis().div_euclid(1000);
    if claims.iss.as_deref() != Some(config.issuer().as_str()) {
        return Err(AccessError::WrongIss);
    }
    if !claims.aud.iter().any(|a| a == &config.aud) {
        return Err(AccessError::WrongAud);
    }
    match claims.exp {
        None => return Err(AccessError::Malformed("no exp claim")),
        Some(exp) if exp.saturating_add(LEEWAY_SECONDS) <= now => return Err(AccessError::Expired),
        Some(_) => {}
    }
    for at in [claims.nbf, claims.iat].into_iter().flatten() {
        if at > now.saturating_add(LEEWAY_SECONDS) {
            return Err(AccessError::NotYetValid);
        }
    }
    Ok(())
}

/// One of the team's public keys (an RSA JWK), its parts as the document has them
/// (base64url, checked to decode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwk {
    pub kid: String,
    /// The modulus, base64url.
    pub n: String,
    /// The public exponent, base64url.
    pub e: String,
}

impl Jwk {
    /// The modulus, big-endian.
    pub fn modulus(&self) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(&self.n).unwrap_or_default()
    }

    /// The public exponent, big-endian.
    pub fn exponent(&self) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(&self.e).unwrap_or_default()
    }
}

/// A JWKS document's RSA signing keys (`{"keys":[{"kid","kty":"RSA","n","e",...}]}`).
/// Keys of another type, for another use or algorithm, or without a `kid` are
/// skipped; a document with no usable key at all is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwks(Vec<Jwk>);

impl Jwks {
    pub fn parse(text: &str) -> Result<Jwks, AccessError> {
        if text.len() > MAX_CERTS_BYTES {
            return Err(AccessError::Keys(format!(
                "the keys document is larger than {MAX_CERTS_BYTES} bytes"
            )));
        }
        let doc: Value = crate::json::value(text)
            .map_err(|_| AccessError::Keys("the keys document is not JSON".into()))?;
        let keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| AccessError::Keys("the keys document has no keys array".into()))?;
        let usable = |k: &Value| -> Option<Jwk> {
            let field = |name: &str| k.get(name).and_then(Value::as_str);
            if field("kty") != Some("RSA")
                || field("alg").is_some_and(|a| a != "RS256")
                || field("use").is_some_and(|u| u != "sig")
            {
                return None;
            }
            let (kid, n, e) = (field("kid")?, field("n")?, field("e")?);
            let decodes = |s: &str| URL_SAFE_NO_PAD.decode(s).is_ok_and(|b| !b.is_empty());
            (!kid.is_empty() && decodes(n) && decodes(e)).then(|| Jwk {
                kid: kid.to_owned(),
                n: n.to_owned(),
                e: e.to_owned(),
            })
        };
        let keys: Vec<Jwk> = keys.iter().filter_map(usable).collect();
        if keys.is_empty() {
            return Err(AccessError::Keys(
                "the keys document has no RS256 key".into(),
            ));
        }
        Ok(Jwks(keys))
    }

    pub fn find(&self, kid: &str) -> Option<&Jwk> {
        self.0.iter().find(|k| k.kid == kid)
    }
}

/// What the keys cache does about a token's `kid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLookup<'a> {
    /// The key is there.
    Found(&'a Jwk),
    /// Not in the cached copy: fetch the keys again (the team may have rotated).
    Refresh,
    /// Not even in a copy fetched for this token, or not in one fetched for an
    /// unknown `kid` less than [`REFRESH_COOLDOWN_SECONDS`] ago: refuse it.
    Refuse,
}

/// Where the keys in hand came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeysCopy {
    /// Fetched for this token.
    Fetched,
    /// Read from the cache: fetched at `at`, for an unknown `kid` or not.
    Cached {
        at: Timestamp,
        for_unknown_kid: bool,
    },
}

/// The cache's rule: a known `kid` is used; an unknown one refreshes the keys once,
/// then is refused. So a rotation is picked up at the first token signed by the new
/// key, and a token with an invented `kid` costs at most one fetch; a copy fetched
/// for an unknown `kid` less than [`REFRESH_COOLDOWN_SECONDS`] ago is not fetched
/// again, so a flood of them costs one fetch per cooldown.
pub fn lookup<'a>(keys: &'a Jwks, kid: &str, copy: KeysCopy, now: Timestamp) -> KeyLookup<'a> {
    let cooling = |at: Timestamp| at > now.minus_seconds(REFRESH_COOLDOWN_SECONDS);
    match (keys.find(kid), copy) {
        (Some(key), _) => KeyLookup::Found(key),
        (None, KeysCopy::Fetched) => KeyLookup::Refuse,
        (
            None,
            KeysCopy::Cached {
                at,
                for_unknown_kid: true,
            },
        ) if cooling(at) => KeyLookup::Refuse,
        (None, KeysCopy::Cached { .. }) => KeyLookup::Refresh,
    }
}

/// The cache's text: a line with the fetch's time in milliseconds and why (`kid`
/// for an unknown `kid`, `ttl` for none cached), then the keys document as served.
fn cache_text(body: &str, at: Timestamp, for_unknown_kid: bool) -> String {
    let why = if for_unknown_kid { "kid" } else { "ttl" };
    format!("{} {why}\n{body}", at.millis())
}

/// The cached keys and where they came from; `None` for anything else (a copy in an
/// older layout, or one that does not parse), which is then fetched again.
fn read_cache(text: &str) -> Option<(Jwks, KeysCopy)> {
    let (line, body) = text.split_once('\n')?;
    let (at, why) = line.split_once(' ')?;
    let at = Timestamp::from_millis(at.parse().ok()?);
    let for_unknown_kid = match why {
        "kid" => true,
        "ttl" => false,
        _ => return None,
    };
    let keys = Jwks::parse(body).ok()?;
    Some((
        keys,
        KeysCopy::Cached {
            at,
            for_unknown_kid,
        },
    ))
}

/// RSASSA-PKCS1-v1_5 / SHA-256 verification under a public key: WebCrypto in the
/// Worker. `Ok(false)` is a signature that does not verify; `Err` is a key the
/// verifier could not use (the text is for logs).
pub trait RsaVerifier {
    fn verify_rs256(
        &self,
        key: &Jwk,
        data: &[u8],
        signature: &[u8],
    ) -> impl Future<Output = Result<bool, String>>;
}

/// Who a valid token says is looking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessIdentity {
    /// The `email` claim, as Access wrote it.
    pub email: String,
    /// The `sub` claim (the user's id at Access), when there is one.
    pub sub: Option<String>,
    /// Whether `email` is listed in `ACCESS_OPERATORS`.
    pub operator: bool,
}

/// Fetches the team's keys and caches them in KV, with the time and whether it was
/// for an unknown `kid`. A KV failure on the write only loses the cache, so it is
/// not an error.
async fn fetch_keys<H: Http, K: Kv>(
    http: &H,
    kv: &K,
    config: &AccessConfig,
    now: Timestamp,
    for_unknown_kid: bool,
) -> Result<Jwks, AccessError> {
    let answer = http
        .send(HttpRequest::get(config.certs_url.clone(), CERTS_TIMEOUT_MS))
        .await
        .map_err(|e| AccessError::Keys(format!("the keys endpoint: {e}")))?;
    if answer.status != 200 {
        return Err(AccessError::Keys(format!(
            "the keys endpoint answered {}",
            answer.status
        )));
    }
    let keys = Jwks::parse(&answer.body)?;
    // The cache is a fast path only: a failed write means the next token fetches again.
    let text = cache_text(&answer.body, now, for_unknown_kid);
    let _ = kv.put(CERTS_CACHE_KEY, &text, CERTS_TTL_SECONDS).await;
    Ok(keys)
}

/// Checks an Access token (the `Cf-Access-Jwt-Assertion` header's value) and
/// names who it is for: shape and `alg`, then the claims (see [`check`]), then the
/// key by `kid` (the KV copy, or fetched; see [`lookup`]), then the signature.
pub async fn verify<H: Http, K: Kv, V: RsaVerifier>(
    token: Option<&str>,
    config: &AccessConfig,
    http: &H,
    kv: &K,
    verifier: &V,
    now: Timestamp,
) -> Result<AccessIdentity, AccessError> {
    let token = token
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(AccessError::Missing)?;
    let jws = parse(token)?;
    check(&jws.claims, config, now)?;
    let cached = match kv.get(CERTS_CACHE_KEY).await {
        Ok(Some(text)) => read_cache(&text),
        _ => None,
    };
    let (mut keys, mut copy) = match cached {
        Some(cached) => cached,
        None => (
            fetch_keys(http, kv, config, now, false).await?,
            KeysCopy::Fetched,
        ),
    };
    let key = loop {
        match lookup(&keys, &jws.kid, copy, now) {
            KeyLookup::Found(key) => break key.clone(),
            KeyLookup::Refuse => return Err(AccessError::UnknownKid),
            KeyLookup::Refresh => {
                keys = fetch_keys(http, kv, config, now, true).await?;
                copy = KeysCopy::Fetched;
            }
        }
    };
    let verified = verifier
        .verify_rs256(&key, jws.signing_input.as_bytes(), &jws.signature)
        .await
        .map_err(AccessError::Keys)?;
    if !verified {
        return Err(AccessError::BadSignature);
    }
    let email = jws
        .claims
        .email
        .filter(|e| is_email(e))
        .ok_or(AccessError::NoEmail)?;
    Ok(AccessIdentity {
        operator: config.is_operator(&email),
        email,
        sub: jws.claims.sub,
    })
}
