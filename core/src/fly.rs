//! The Fly.io Machines API client (production deploys of `fly` targets; preview
//! environments later). Generic over [`Http`]; the base URL comes from config.

use serde::Deserialize;
use serde_json::json;

use crate::config::FlyConfig;
use crate::http::{HttpError, HttpRequest, HttpResponse, Method};
use crate::ports::Http;

/// One call may take this long; `wait` asks Fly to hold for up to 60 s.
pub const REQUEST_TIMEOUT_MS: u32 = 70_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlyError {
    #[error("Fly.io {0}")]
    Transient(String),
    #[error("Fly.io {0}")]
    Rejected(String),
}

impl FlyError {
    pub fn is_transient(&self) -> bool {
        matches!(self, FlyError::Transient(_))
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Machine {
    pub id: String,
    #[serde(default)]
    pub config: serde_json::Value,
}

fn classify(result: Result<HttpResponse, HttpError>) -> Result<HttpResponse, FlyError> {
    let resp = result.map_err(|e| FlyError::Transient(e.to_string()))?;
    if (200..300).contains(&resp.status) {
        return Ok(resp);
    }
    let message = serde_json::from_str::<serde_json::Value>(&resp.body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_else(|| "no message".into());
    let text = format!("{}: {message}", resp.status);
    if resp.status == 429 || resp.status == 408 || resp.status >= 500 {
        Err(FlyError::Transient(text))
    } else {
        Err(FlyError::Rejected(text))
    }
}

pub struct FlyClient<'a, H> {
    http: &'a H,
    config: &'a FlyConfig,
}

impl<'a, H: Http> FlyClient<'a, H> {
    pub fn new(http: &'a H, config: &'a FlyConfig) -> Self {
        FlyClient { http, config }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<HttpResponse, FlyError> {
        let url = format!("{}{path}", self.config.api_base);
        let mut req = match body {
            Some(b) => HttpRequest::post_json(url, b.to_string(), REQUEST_TIMEOUT_MS),
            None => HttpRequest::get(url, REQUEST_TIMEOUT_MS),
        };
        req.method = method;
        let req = req.header(
            "authorization",
            format!("Bearer {}", self.config.token.expose()),
        );
        classify(self.http.send(req).await)
    }

    pub async fn machines(&self, app: &str) -> Result<Vec<Machine>, FlyError> {
        let resp = self
            .call(Method::Get, &format!("/v1/apps/{app}/machines"), None)
            .await?;
        serde_json::from_str(&resp.body)
            .map_err(|e| FlyError::Transient(format!("unexpected answer: {e}")))
    }

    /// Updates one machine to `image`, keeping the rest of its configuration.
    pub async fn update_image(
        &self,
        app: &str,
        machine: &Machine,
        image: &str,
    ) -> Result<(), FlyError> {
        let mut config = if machine.config.is_object() {
            machine.config.clone()
        } else {
            json!({})
        };
        config["image"] = image.into();
        self.call(
            Method::Post,
            &format!("/v1/apps/{app}/machines/{}", machine.id),
            Some(json!({ "config": config })),
        )
        .await
        .map(drop)
    }

    /// Waits (up to 60 s, on Fly's side) until a machine is started.
    pub async fn wait_started(&self, app: &str, machine_id: &str) -> Result<(), FlyError> {
        self.call(
            Method::Get,
            &format!("/v1/apps/{app}/machines/{machine_id}/wait?state=started&timeout=60"),
            None,
        )
        .await
        .map(drop)
    }
}
