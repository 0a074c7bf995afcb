//! GitHub App authentication: an RS256 JWT signed with the App's private key
//! (WebCrypto in the Worker, behind [`RsaSigner`]), exchanged for an installation
//! token that is cached in KV until shortly before it expires.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::Serialize;
use std::future::Future;

use super::client::{api_request, GithubError};
use super::RepoFullName;
use crate::http::Method;
use crate::ports::{Http, Kv};
use crate::secret::Secret;
use crate::time::Timestamp;

/// Signs with RSASSA-PKCS1-v1_5 / SHA-256 under a PKCS#8 private key.
pub trait RsaSigner {
    fn sign_rs256(
        &self,
        pkcs8_der: &[u8],
        data: &[u8],
    ) -> impl Future<Output = Result<Vec<u8>, String>>;
}

/// The App's id and private key (PKCS#8 DER).
#[derive(Clone)]
pub struct GithubApp {
    pub app_id: String,
    pub private_key_pkcs8: Vec<u8>,
}

impl std::fmt::Debug for GithubApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubApp")
            .field("app_id", &self.app_id)
            .field("private_key", &"***")
            .finish()
    }
}

/// The DER encoding of `rsaEncryption` (1.2.840.113549.1.1.1) with NULL parameters.
const RSA_ALGORITHM: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

fn der_length(len: usize) -> Vec<u8> {
    if len < 0x80 {
        vec![len as u8]
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|b| *b == 0)
            .collect();
        let mut out = vec![0x80 | bytes.len() as u8];
        out.extend(bytes);
        out
    }
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(der_length(content.len()));
    out.extend_from_slice(content);
    out
}

/// Wraps a PKCS#1 `RSAPrivateKey` in a PKCS#8 `PrivateKeyInfo`: WebCrypto imports
/// only PKCS#8, and GitHub hands App keys out as PKCS#1.
pub fn pkcs1_to_pkcs8(pkcs1: &[u8]) -> Vec<u8> {
    let mut body = vec![0x02, 0x01, 0x00]; // version 0
    body.extend_from_slice(RSA_ALGORITHM);
    body.extend(der(0x04, pkcs1));
    der(0x30, &body)
}

/// Reads the App's private key as GitHub gives it (`BEGIN RSA PRIVATE KEY`) or as
/// PKCS#8 (`BEGIN PRIVATE KEY`). Literal `\n` sequences (a key pasted into a
/// one-line secret) are accepted.
pub fn private_key_pkcs8(pem: &str) -> Result<Vec<u8>, String> {
    let pem = pem.replace("\\n", "\n");
    let (kind, rest) = if let Some(r) = pem.split("-----BEGIN RSA PRIVATE KEY-----").nth(1) {
        ("RSA PRIVATE KEY", r)
    } else if let Some(r) = pem.split("-----BEGIN PRIVATE KEY-----").nth(1) {
        ("PRIVATE KEY", r)
    } else {
        return Err("GITHUB_APP_PRIVATE_KEY is not a PEM private key".into());
    };
    let body = rest
        .split(&format!("-----END {kind}-----"))
        .next()
        .ok_or("GITHUB_APP_PRIVATE_KEY has no END line")?;
    let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let der = STANDARD
        .decode(b64)
        .map_err(|_| "GITHUB_APP_PRIVATE_KEY is not valid base64".to_owned())?;
    Ok(if kind == "RSA PRIVATE KEY" {
        pkcs1_to_pkcs8(&der)
    } else {
        der
    })
}

/// The JWT's header and claims, base64url: what gets signed. Issued a minute in the
/// past against clock drift, valid for nine minutes (GitHub allows ten).
pub fn jwt_signing_input(app_id: &str, now: Timestamp) -> String {
    let iat = now.millis() / 1000 - 60;
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let claims = serde_json::json!({ "iat": iat, "exp": iat + 600 - 60, "iss": app_id });
    format!(
        "{header}.{}",
        URL_SAFE_NO_PAD.encode(crate::json::text(&claims))
    )
}

/// Signs a JWT for the App.
pub async fn app_jwt<R: RsaSigner>(
    signer: &R,
    app: &GithubApp,
    now: Timestamp,
) -> Result<Secret, GithubError> {
    let input = jwt_signing_input(&app.app_id, now);
    let signature = signer
        .sign_rs256(&app.private_key_pkcs8, input.as_bytes())
        .await
        .map_err(|e| GithubError::Rejected(format!("cannot sign the App JWT: {e}")))?;
    Ok(Secret::new(format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    )))
}

/// A cached installation token.
#[derive(Serialize)]
struct Cached {
    token: String,
    expires_at: i64,
}

/// Renew a cached token this long before it expires (an hour-long token is reused
/// for 55 minutes).
pub const TOKEN_RENEW_MARGIN_SECONDS: i64 = 300;

/// An installation token for `installation_id`, from the KV cache or a fresh
/// exchange (`POST /app/installations/{id}/access_tokens`).
pub async fn installation_token<H: Http, K: Kv, R: RsaSigner>(
    http: &H,
    kv: &K,
    signer: &R,
    api_base: &str,
    app: &GithubApp,
    installation_id: u64,
    now: Timestamp,
) -> Result<Secret, GithubError> {
    let key = format!("github:installation-token:{}:{installation_id}", app.app_id);
    if let Ok(Some(text)) = kv.get(&key).await {
        if let Ok(c) = crate::json::value(&text) {
            let fresh = crate::json::int_at(&c, "/expires_at")
                .is_some_and(|at| at > now.plus_seconds(TOKEN_RENEW_MARGIN_SECONDS).millis());
            if let (true, Some(token)) = (fresh, crate::json::str_at(&c, "/token")) {
                return Ok(Secret::new(token.to_owned()));
            }
        }
    }
    let (token, expires_at) = exchange(
        http,
        signer,
        api_base,
        app,
        installation_id,
        serde_json::json!({}),
        now,
    )
    .await?;
    let ttl = (expires_at - now.millis()) / 1000 - TOKEN_RENEW_MARGIN_SECONDS;
    if ttl >= 60 {
        let cached = serde_json::to_string(&Cached {
            token: token.expose().to_owned(),
            expires_at,
        })
        .unwrap_or_default();
        // A cache miss next time only costs another exchange.
        let _ = kv.put(&key, &cached, ttl as u64).await;
    }
    Ok(token)
}

/// What a scoped installation token may reach: one repository (of the
/// installation's owner), with these permissions (`{"contents": "read"}`).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenScope<'a> {
    pub repository: &'a RepoFullName,
    pub permissions: serde_json::Value,
}

/// A fresh installation token limited to `scope`, for code the Worker does not
/// control (a preview machine running a pull request). Never cached, so it is never
/// the token the Worker acts with, and the Worker's is never handed out.
pub async fn scoped_installation_token<H: Http, R: RsaSigner>(
    http: &H,
    signer: &R,
    api_base: &str,
    app: &GithubApp,
    installation_id: u64,
    scope: &TokenScope<'_>,
    now: Timestamp,
) -> Result<Secret, GithubError> {
    let body = serde_json::json!({
        "repositories": [scope.repository.name()],
        "permissions": scope.permissions,
    });
    exchange(http, signer, api_base, app, installation_id, body, now)
        .await
        .map(|(token, _)| token)
}

/// `POST /app/installations/{id}/access_tokens` with `body`: the token and when it
/// expires (an hour from now when the answer does not say).
async fn exchange<H: Http, R: RsaSigner>(
    http: &H,
    signer: &R,
    api_base: &str,
    app: &GithubApp,
    installation_id: u64,
    body: serde_json::Value,
    now: Timestamp,
) -> Result<(Secret, i64), GithubError> {
    let jwt = app_jwt(signer, app, now).await?;
    let req = api_request(
        Method::Post,
        format!("{api_base}/app/installations/{installation_id}/access_tokens"),
        Some(body),
        jwt.expose(),
    );
    let resp = super::client::classify(http.send(req).await)?;
    let issued = crate::json::value(&resp.body).map_err(|e| {
        GithubError::Transient(format!("installation token: unexpected answer: {e}"))
    })?;
    let token = crate::json::str_at(&issued, "/token")
        .ok_or_else(|| GithubError::Transient("installation token: no token in the answer".into()))?
        .to_owned();
    let expires_at = crate::json::str_at(&issued, "/expires_at")
        .and_then(Timestamp::parse_rfc3339)
        .unwrap_or_else(|| now.plus_seconds(3600))
        .millis();
    Ok((Secret::new(token), expires_at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{block_on, json_response, FakeHttp, MemoryKv};

    const PKCS1: &str = include_str!("app/test-key.pkcs1.pem");
    const PKCS8: &str = include_str!("app/test-key.pkcs8.pem");

    #[test]
    fn a_pkcs1_key_is_wrapped_exactly_as_openssl_does() {
        let wrapped = private_key_pkcs8(PKCS1).expect("pkcs1");
        let native = private_key_pkcs8(PKCS8).expect("pkcs8");
        assert_eq!(wrapped, native);
        let one_line = PKCS1.replace('\n', "\\n");
        assert_eq!(
            private_key_pkcs8(&one_line).expect("escaped newlines"),
            native
        );
        assert!(private_key_pkcs8("not a key").is_err());
    }

    #[test]
    fn der_lengths() {
        assert_eq!(der_length(5), vec![5]);
        assert_eq!(der_length(200), vec![0x81, 200]);
        assert_eq!(der_length(1200), vec![0x82, 0x04, 0xb0]);
    }

    #[test]
    fn the_jwt_claims() {
        let input = jwt_signing_input("12345", Timestamp::from_millis(1_700_000_000_000));
        let (header, claims) = input.split_once('.').expect("two parts");
        assert_eq!(
            URL_SAFE_NO_PAD.decode(header).expect("b64"),
            br#"{"alg":"RS256","typ":"JWT"}"#
        );
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).expect("b64")).expect("json");
        assert_eq!(
            claims,
            serde_json::json!({"iat": 1_699_999_940, "exp": 1_700_000_480, "iss": "12345"})
        );
    }

    struct FakeSigner;
    impl RsaSigner for FakeSigner {
        async fn sign_rs256(&self, key: &[u8], data: &[u8]) -> Result<Vec<u8>, String> {
            assert_eq!(key, b"key");
            Ok(data.iter().rev().copied().take(4).collect())
        }
    }

    #[test]
    fn installation_tokens_are_cached_until_near_expiry() {
        let http = FakeHttp::answering(vec![
            json_response(
                201,
                serde_json::json!({"token": "ghs_one", "expires_at": "2023-11-14T23:13:20Z"}),
            ),
            json_response(
                201,
                serde_json::json!({"token": "ghs_two", "expires_at": "2023-11-15T00:13:20Z"}),
            ),
        ]);
        let kv = MemoryKv::default();
        let app = GithubApp {
            app_id: "7".into(),
            private_key_pkcs8: b"key".to_vec(),
        };
        // 2023-11-14T22:13:20Z: the first token lives an hour.
        let t0 = Timestamp::from_millis(1_700_000_000_000);
        let get = |now| {
            block_on(installation_token(
                &http,
                &kv,
                &FakeSigner,
                "http://gh.test",
                &app,
                1,
                now,
            ))
            .expect("token")
        };
        assert_eq!(get(t0).expose(), "ghs_one");
        assert_eq!(get(t0.plus_seconds(3000)).expose(), "ghs_one", "cached");
        assert_eq!(
            get(t0.plus_seconds(3400)).expose(),
            "ghs_two",
            "renewed near expiry"
        );
        let seen = http.seen.borrow();
        assert_eq!(seen.len(), 2);
        assert_eq!(
            seen[0].url,
            "http://gh.test/app/installations/1/access_tokens"
        );
        let auth = seen[0].header_value("authorization").unwrap_or_default();
        assert!(
            auth.starts_with("Bearer eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9."),
            "{auth}"
        );
        assert_eq!(
            format!("{app:?}"),
            r#"GithubApp { app_id: "7", private_key: "***" }"#
        );
    }
}
