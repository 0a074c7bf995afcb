//! WebCrypto: HMAC-SHA256 and SHA-256 in the runtime's native code. Pure-Rust SHA-256 built for
//! size runs about ten times slower in workerd; a 25 MB webhook body would not fit
//! the free plan's CPU budget.

use js_sys::{Array, Object, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

fn subtle() -> Result<web_sys::SubtleCrypto, String> {
    let scope: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    Ok(scope
        .crypto()
        .map_err(|_| "crypto is unavailable".to_owned())?
        .subtle())
}

fn js_err(e: JsValue) -> String {
    e.as_string()
        .or_else(|| {
            e.dyn_ref::<js_sys::Error>()
                .map(|e| String::from(e.message()))
        })
        .unwrap_or_else(|| "WebCrypto error".to_owned())
}

/// Signs `data` (a JS buffer, never copied into wasm) with algorithm `name` over
/// SHA-256, under `key` in `format` (`raw` for HMAC, `pkcs8` for RSA).
async fn sign(format: &str, key: &[u8], name: &str, data: &Uint8Array) -> Result<Vec<u8>, String> {
    let subtle = subtle()?;
    let algorithm = Object::new();
    Reflect::set(&algorithm, &"name".into(), &name.into()).map_err(js_err)?;
    Reflect::set(&algorithm, &"hash".into(), &"SHA-256".into()).map_err(js_err)?;
    let usages = Array::of1(&"sign".into());
    let key_data = Uint8Array::from(key);
    let key = JsFuture::from(
        subtle
            .import_key_with_object(format, &key_data, &algorithm, false, &usages)
            .map_err(js_err)?,
    )
    .await
    .map_err(js_err)?;
    let key: web_sys::CryptoKey = key.unchecked_into();
    let signature = JsFuture::from(
        subtle
            .sign_with_str_and_buffer_source(name, &key, data)
            .map_err(js_err)?,
    )
    .await
    .map_err(js_err)?;
    Ok(Uint8Array::new(&signature).to_vec())
}

/// The webhook's hashes over its body, a JS buffer WebCrypto reads in place (it is
/// copied into wasm only once authentic, for the parser).
pub struct WebCryptoMac;

impl edge_core::github::intake::Mac for WebCryptoMac {
    type Body = Uint8Array;

    async fn hmac_sha256(&self, key: &[u8], data: &Uint8Array) -> Result<Vec<u8>, String> {
        sign("raw", key, "HMAC", data).await
    }

    async fn sha256(&self, data: &Uint8Array) -> Result<Vec<u8>, String> {
        let digest = JsFuture::from(
            subtle()?
                .digest_with_str_and_buffer_source("SHA-256", data)
                .map_err(js_err)?,
        )
        .await
        .map_err(js_err)?;
        Ok(Uint8Array::new(&digest).to_vec())
    }

    fn len(&self, data: &Uint8Array) -> usize {
        data.length() as usize
    }

    fn to_vec(&self, data: &Uint8Array) -> Vec<u8> {
        data.to_vec()
    }
}

/// RSASSA-PKCS1-v1_5 with SHA-256 under a PKCS#8 key: the GitHub App JWT.
pub struct WebCryptoSigner;

impl edge_core::github::app::RsaSigner for WebCryptoSigner {
    async fn sign_rs256(&self, pkcs8_der: &[u8], data: &[u8]) -> Result<Vec<u8>, String> {
        sign(
            "pkcs8",
            pkcs8_der,
            "RSASSA-PKCS1-v1_5",
            &Uint8Array::from(data),
        )
        .await
    }
}

/// AES-256-GCM, random nonces and SHA-256 from WebCrypto: app secrets.
pub struct WebCryptoCipher;

fn aes_gcm(nonce: &[u8], aad: &[u8]) -> Result<Object, String> {
    let algorithm = Object::new();
    Reflect::set(&algorithm, &"name".into(), &"AES-GCM".into()).map_err(js_err)?;
    Reflect::set(&algorithm, &"iv".into(), &Uint8Array::from(nonce)).map_err(js_err)?;
    Reflect::set(&algorithm, &"additionalData".into(), &Uint8Array::from(aad)).map_err(js_err)?;
    Ok(algorithm)
}

async fn aes_key(
    subtle: &web_sys::SubtleCrypto,
    key: &[u8],
    usage: &str,
) -> Result<web_sys::CryptoKey, String> {
    let usages = Array::of1(&usage.into());
    let key = JsFuture::from(
        subtle
            .import_key_with_str("raw", &Uint8Array::from(key), "AES-GCM", false, &usages)
            .map_err(js_err)?,
    )
    .await
    .map_err(js_err)?;
    Ok(key.unchecked_into())
}

impl edge_core::secrets::Cipher for WebCryptoCipher {
    async fn seal(
        &self,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, String> {
        let subtle = subtle()?;
        let key = aes_key(&subtle, key, "encrypt").await?;
        let data = Uint8Array::from(plaintext);
        let sealed = JsFuture::from(
            subtle
                .encrypt_with_object_and_buffer_source(&aes_gcm(nonce, aad)?, &key, &data)
                .map_err(js_err)?,
        )
        .await
        .map_err(js_err)?;
        Ok(Uint8Array::new(&sealed).to_vec())
    }

    async fn open(
        &self,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, String> {
        let subtle = subtle()?;
        let key = aes_key(&subtle, key, "decrypt").await?;
        let data = Uint8Array::from(ciphertext);
        let plain = JsFuture::from(
            subtle
                .decrypt_with_object_and_buffer_source(&aes_gcm(nonce, aad)?, &key, &data)
                .map_err(js_err)?,
        )
        .await
        .map_err(js_err)?;
        Ok(Uint8Array::new(&plain).to_vec())
    }

    fn nonce(&self) -> Result<[u8; 12], String> {
        let scope: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
        let crypto = scope
            .crypto()
            .map_err(|_| "crypto is unavailable".to_owned())?;
        let mut nonce = [0u8; 12];
        crypto
            .get_random_values_with_u8_array(&mut nonce)
            .map_err(js_err)?;
        Ok(nonce)
    }

    async fn sha256(&self, data: &[u8]) -> Result<Vec<u8>, String> {
        let digest = JsFuture::from(
            subtle()?
                .digest_with_str_and_u8_array("SHA-256", data)
                .map_err(js_err)?,
        )
        .await
        .map_err(js_err)?;
        Ok(Uint8Array::new(&digest).to_vec())
    }
}

/// HMAC-SHA256 over bytes: the status page's session cookies and CSRF tokens.
pub struct WebCryptoHmac;

impl edge_core::web::auth::session::Hmac for WebCryptoHmac {
    async fn hmac_sha256(&self, key: &[u8], data: &[u8]) -> Result<Vec<u8>, String> {
        sign("raw", key, "HMAC", &Uint8Array::from(data)).await
    }
}

/// RSASSA-PKCS1-v1_5 / SHA-256 verification under a JWK: Cloudflare Access tokens.
pub struct WebCryptoVerifier;

impl edge_core::web::auth::access::RsaVerifier for WebCryptoVerifier {
    async fn verify_rs256(
        &self,
        key: &edge_core::web::auth::access::Jwk,
        data: &[u8],
        signature: &[u8],
    ) -> Result<bool, String> {
        let subtle = subtle()?;
        let set = |o: &Object, k: &str, v: &JsValue| {
            Reflect::set(o, &JsValue::from_str(k), v)
                .map(drop)
                .map_err(js_err)
        };
        let jwk = Object::new();
        set(&jwk, "kty", &"RSA".into())?;
        set(&jwk, "n", &key.n.as_str().into())?;
        set(&jwk, "e", &key.e.as_str().into())?;
        set(&jwk, "alg", &"RS256".into())?;
        set(&jwk, "ext", &JsValue::TRUE)?;
        let algorithm = Object::new();
        set(&algorithm, "name", &"RSASSA-PKCS1-v1_5".into())?;
        set(&algorithm, "hash", &"SHA-256".into())?;
        let usages = Array::of1(&"verify".into());
        let key = JsFuture::from(
            subtle
                .import_key_with_object("jwk", &jwk, &algorithm, false, &usages)
                .map_err(js_err)?,
        )
        .await
        .map_err(js_err)?;
        let key: web_sys::CryptoKey = key.unchecked_into();
        let verified = JsFuture::from(
            subtle
                .verify_with_str_and_buffer_source_and_buffer_source(
                    "RSASSA-PKCS1-v1_5",
                    &key,
                    &Uint8Array::from(signature),
                    &Uint8Array::from(data),
                )
                .map_err(js_err)?,
        )
        .await
        .map_err(js_err)?;
        Ok(verified.as_bool().unwrap_or(false))
    }
}

/// `N` bytes from the runtime's CSPRNG (`crypto.getRandomValues`).
pub fn random_bytes<const N: usize>() -> Result<[u8; N], String> {
    let scope: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    let crypto = scope
        .crypto()
        .map_err(|_| "crypto is unavailable".to_owned())?;
    let mut bytes = [0u8; N];
    crypto
        .get_random_values_with_u8_array(&mut bytes)
        .map_err(js_err)?;
    Ok(bytes)
}
