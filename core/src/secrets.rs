//! Per-app secrets (for preview and production machines): AES-256-GCM under
//! `SECRETS_KEY`, a fresh nonce per value, the slot (`app/env_type/NAME`) as
//! associated data so a ciphertext cannot be moved to another secret, and the key's
//! id stored beside each value so the key can be rotated. The cipher is a port:
//! WebCrypto in the Worker.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Serialize;
use std::future::Future;

use crate::names::{AppName, EnvVarName};
use crate::ports::{Sql, StoreError};
use crate::row::Columns;
use crate::secret::Secret;
use crate::time::Timestamp;

/// AES-256-GCM and what it needs.
pub trait Cipher {
    fn seal(
        &self,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        plaintext: &[u8],
    ) -> impl Future<Output = Result<Vec<u8>, String>>;
    fn open(
        &self,
        key: &[u8],
        nonce: &[u8],
        aad: &[u8],
        ciphertext: &[u8],
    ) -> impl Future<Output = Result<Vec<u8>, String>>;
    /// 12 random bytes from a cryptographic source.
    fn nonce(&self) -> Result<[u8; 12], String>;
    /// SHA-256, for key ids.
    fn sha256(&self, data: &[u8]) -> impl Future<Output = Result<Vec<u8>, String>>;
}

/// A 256-bit key; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(Vec<u8>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(***)")
    }
}

impl Key {
    /// Parses a base64 key of exactly 32 bytes.
    pub fn parse(name: &str, text: &str) -> Result<Key, String> {
        match STANDARD.decode(text.trim()) {
            Ok(bytes) if bytes.len() == 32 => Ok(Key(bytes)),
            _ => Err(format!(
                "{name} must be 32 bytes, base64 (openssl rand -base64 32)"
            )),
        }
    }
}

/// `SECRETS_KEY` and, during a rotation, `SECRETS_KEY_PREVIOUS`.
#[derive(Debug, Clone)]
pub struct SecretsKeys {
    pub current: Key,
    pub previous: Option<Key>,
}

/// Which machines a secret is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvType {
    Preview,
    Production,
}

impl EnvType {
    pub fn parse(s: &str) -> Result<EnvType, SecretError> {
        match s {
            "preview" => Ok(EnvType::Preview),
            "production" => Ok(EnvType::Production),
            _ => Err(SecretError::EnvType),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EnvType::Preview => "preview",
            EnvType::Production => "production",
        }
    }
}

/// An environment type the admin API refuses (a 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("environment type must be preview or production")]
    EnvType,
}

/// Largest secret value accepted (Fly.io's own limit on a secret is far above
/// what configuration needs).
pub const MAX_VALUE_BYTES: usize = 32 * 1024;

/// A secret as the API lists it: never its value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecretInfo {
    pub name: String,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretsError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("secret {0} was encrypted with a key that is no longer configured")]
    UnknownKey(String),
    #[error("secret {0} cannot be decrypted (wrong key or altered data)")]
    Corrupt(String),
    #[error("encryption failed: {0}")]
    Cipher(String),
}

async fn key_id<C: Cipher>(cipher: &C, key: &Key) -> Result<String, SecretsError> {
    let digest = cipher.sha256(&key.0).await.map_err(SecretsError::Cipher)?;
    Ok(digest.iter().take(4).map(|b| format!("{b:02x}")).collect())
}

fn slot(app: &AppName, env: EnvType, name: &str) -> String {
    format!("{}/{}/{name}", app.as_str(), env.as_str())
}

pub struct SecretStore<S> {
    sql: S,
}

impl<S: Sql> SecretStore<S> {
    pub fn new(sql: S) -> Self {
        SecretStore { sql }
    }

    /// Encrypts and stores a value under the current key in its slot (app,
    /// environment type, name); `true` when created.
    pub async fn put<C: Cipher>(
        &self,
        cipher: &C,
        keys: &SecretsKeys,
        (app, env, name): (&AppName, EnvType, &EnvVarName),
        value: &Secret,
        now: Timestamp,
    ) -> Result<bool, SecretsError> {
        let nonce = cipher.nonce().map_err(SecretsError::Cipher)?;
        let aad = slot(app, env, name.as_str());
        let sealed = cipher
            .seal(
                &keys.current.0,
                &nonce,
                aad.as_bytes(),
                value.expose().as_bytes(),
            )
            .await
            .map_err(SecretsError::Cipher)?;
        let kid = key_id(cipher, &keys.current).await?;
        let existed = !self
            .sql
            .query(
                "SELECT 1 AS x FROM app_secrets WHERE app = ?1 AND env_type = ?2 AND name = ?3",
                &[
                    app.as_str().into(),
                    env.as_str().into(),
                    name.as_str().into(),
                ],
            )
            .await?
            .is_empty();
        self.sql
            .execute(
                "INSERT INTO app_secrets (app, env_type, name, key_id, nonce, ciphertext, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (app, env_type, name) DO UPDATE SET \
                 key_id = excluded.key_id, nonce = excluded.nonce, ciphertext = excluded.ciphertext, \
                 updated_at = excluded.updated_at",
                &[
                    app.as_str().into(),
                    env.as_str().into(),
                    name.as_str().into(),
                    kid.into(),
                    STANDARD.encode(nonce).into(),
                    STANDARD.encode(sealed).into(),
                    now.millis().into(),
                ],
            )
            .await?;
        Ok(!existed)
    }

    pub async fn list(&self, app: &AppName, env: EnvType) -> Result<Vec<SecretInfo>, StoreError> {
        let rows = self
            .sql
            .query(
                "SELECT name, updated_at FROM app_secrets WHERE app = ?1 AND env_type = ?2 ORDER BY name",
                &[app.as_str().into(), env.as_str().into()],
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                Some(SecretInfo {
                    name: r.opt_text("name")?,
                    updated_at: r.opt_int("updated_at")?,
                })
            })
            .collect())
    }

    /// `true` when it existed.
    pub async fn delete(
        &self,
        app: &AppName,
        env: EnvType,
        name: &EnvVarName,
    ) -> Result<bool, StoreError> {
        let done = self
            .sql
            .execute(
                "DELETE FROM app_secrets WHERE app = ?1 AND env_type = ?2 AND name = ?3",
                &[
                    app.as_str().into(),
                    env.as_str().into(),
                    name.as_str().into(),
                ],
            )
            .await?;
        Ok(done.changes > 0)
    }

    /// Every secret of an app's environment type, decrypted: only for configuring a
    /// machine. Values encrypted under the previous key are read with it.
    pub async fn reveal_all<C: Cipher>(
        &self,
        cipher: &C,
        keys: &SecretsKeys,
        app: &AppName,
        env: EnvType,
    ) -> Result<Vec<(String, Secret)>, SecretsError> {
        let rows = self
            .sql
            .query(
                "SELECT name, key_id, nonce, ciphertext FROM app_secrets WHERE app = ?1 AND env_type = ?2 ORDER BY name",
                &[app.as_str().into(), env.as_str().into()],
            )
            .await?;
        let current = key_id(cipher, &keys.current).await?;
        let previous = match &keys.previous {
            Some(k) => Some((key_id(cipher, k).await?, k)),
            None => None,
        };
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let text = |k: &str| r.opt_str(k).unwrap_or_default().to_owned();
            let name = text("name");
            let kid = text("key_id");
            let key = if kid == current {
                &keys.current
            } else {
                match &previous {
                    Some((id, k)) if *id == kid => k,
                    _ => return Err(SecretsError::UnknownKey(name)),
                }
            };
            let nonce = STANDARD
                .decode(text("nonce"))
                .map_err(|_| SecretsError::Corrupt(name.clone()))?;
            let sealed = STANDARD
                .decode(text("ciphertext"))
                .map_err(|_| SecretsError::Corrupt(name.clone()))?;
            let plain = cipher
                .open(&key.0, &nonce, slot(app, env, &name).as_bytes(), &sealed)
                .await
                .map_err(|_| SecretsError::Corrupt(name.clone()))?;
            let value =
                String::from_utf8(plain).map_err(|_| SecretsError::Corrupt(name.clone()))?;
            out.push((name, Secret::new(value)));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
