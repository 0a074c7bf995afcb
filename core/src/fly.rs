//! The Fly.io Machines API client: production deploys of `fly` targets and preview
//! environments. Generic over [`Http`]; the base URL comes from config.

use serde_json::json;

use crate::config::FlyConfig;
use crate::http::{HttpError, HttpRequest, HttpResponse, Method};
use crate::json::FromJson;
use crate::ports::Http;

/// One call may take this long; `wait` asks Fly to hold for up to 60 s.
pub const REQUEST_TIMEOUT_MS: u32 = 70_000;

/// A failed Fly.io call. Boxed ([`FlyFailure`]), as `GithubError` is: it passes up
/// through every `?` of the preview and deploy flows.
#[derive(Clone, PartialEq, Eq)]
pub struct FlyError(Box<FlyFailure>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlyFailure {
    #[error("Fly.io {0}")]
    Transient(String),
    #[error("Fly.io {0}")]
    Rejected(String),
}

#[expect(
    non_snake_case,
    reason = "named as the kinds they make, so call sites read FlyError::Transient(text)"
)]
impl FlyError {
    pub fn Transient(e: String) -> FlyError {
        FlyError(Box::new(FlyFailure::Transient(e)))
    }

    pub fn Rejected(e: String) -> FlyError {
        FlyError(Box::new(FlyFailure::Rejected(e)))
    }
}

impl FlyError {
    pub fn is_transient(&self) -> bool {
        matches!(*self.0, FlyFailure::Transient(_))
    }

    pub fn failure(&self) -> &FlyFailure {
        &self.0
    }
}

// As the kind itself, as when it was not boxed.
crate::boxed::reads_as_its_kind!(FlyError, display);

impl std::error::Error for FlyError {}

#[derive(Debug, Clone, FromJson)]
pub struct Machine {
    pub id: String,
    #[json(default)]
    pub config: serde_json::Value,
}

fn classify(result: Result<HttpResponse, HttpError>) -> Result<HttpResponse, FlyError> {
    let resp = result.map_err(|e| FlyError::Transient(e.to_string()))?;
    if (200..300).contains(&resp.status) {
        return Ok(resp);
    }
    let message = crate::json::value(&resp.body)
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
        classify(self.send(method, path, body).await)
    }

    /// Like `call`, but a status in `expected` is an answer rather than an error
    /// (404 when deleting what is gone, 422 when creating what exists).
    async fn call_expecting(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        expected: &[u16],
    ) -> Result<HttpResponse, FlyError> {
        match self.send(method, path, body).await {
            Ok(resp) if expected.contains(&resp.status) => Ok(resp),
            other => classify(other),
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<HttpResponse, HttpError> {
        let url = format!("{}{path}", self.config.api_base);
        let mut req = match body {
            Some(b) => HttpRequest::post_json(url, crate::json::text(&b), REQUEST_TIMEOUT_MS),
            None => HttpRequest::get(url, REQUEST_TIMEOUT_MS),
        };
        req.method = method;
        let req = req.header(
            "authorization",
            format!("Bearer {}", self.config.token.expose()),
        );
        self.http.send(req).await
    }

    /// Creates app `name` in `org`; `false` when it already exists (a retry, or a
    /// preview brought back).
    pub async fn create_app(&self, name: &str, org: &str) -> Result<bool, FlyError> {
        let resp = self
            .call_expecting(
                Method::Post,
                "/v1/apps",
                Some(json!({ "app_name": name, "org_slug": org })),
                &[409, 422],
            )
            .await?;
        if resp.status < 300 {
            return Ok(true);
        }
        let text = resp.body.to_ascii_lowercase();
        if text.contains("already") || text.contains("taken") || text.contains("exists") {
            Ok(false)
        } else {
            Err(FlyError::Rejected(format!(
                "{}: could not create app {name}",
                resp.status
            )))
        }
    }

    /// Gives an app its public addresses (a shared IPv4 and an IPv6) unless it has
    /// some, so `{app}.fly.dev` answers.
    pub async fn ensure_public_ips(&self, app: &str) -> Result<(), FlyError> {
        let path = format!("/v1/apps/{app}/ip_assignments");
        let resp = self.call(Method::Get, &path, None).await?;
        let have = crate::json::value(&resp.body)
            .map_err(|e| FlyError::Transient(format!("unexpected answer: {e}")))?;
        if have
            .get("ips")
            .and_then(serde_json::Value::as_array)
            .is_some_and(|ips| !ips.is_empty())
        {
            return Ok(());
        }
        for kind in ["shared_v4", "v6"] {
            self.call(Method::Post, &path, Some(json!({ "type": kind })))
                .await?;
        }
        Ok(())
    }

    /// Creates a machine from `body` (`{"region", "config"}`); returns its id.
    pub async fn create_machine(
        &self,
        app: &str,
        body: serde_json::Value,
    ) -> Result<String, FlyError> {
        let resp = self
            .call(
                Method::Post,
                &format!("/v1/apps/{app}/machines"),
                Some(body),
            )
            .await?;
        crate::json::read::<Machine>(&resp.body)
            .map(|m| m.id)
            .map_err(|e| FlyError::Transient(format!("unexpected answer: {e}")))
    }

    /// Replaces a machine's configuration; `false` when the machine is gone.
    pub async fn update_machine(
        &self,
        app: &str,
        machine_id: &str,
        body: serde_json::Value,
    ) -> Result<bool, FlyError> {
        let resp = self
            .call_expecting(
                Method::Post,
                &format!("/v1/apps/{app}/machines/{machine_id}"),
                Some(body),
                &[404],
            )
            .await?;
        Ok(resp.status != 404)
    }

    /// Deletes an app with its machines; `false` when there was none.
    pub async fn delete_app(&self, app: &str) -> Result<bool, FlyError> {
        let resp = self
            .call_expecting(
                Method::Delete,
                &format!("/v1/apps/{app}?force=true"),
                None,
                &[404],
            )
            .await?;
        Ok(resp.status != 404)
    }

    /// Whether an app exists.
    pub async fn app_exists(&self, app: &str) -> Result<bool, FlyError> {
        let resp = self
            .call_expecting(Method::Get, &format!("/v1/apps/{app}"), None, &[404])
            .await?;
        Ok(resp.status != 404)
    }

    pub async fn machines(&self, app: &str) -> Result<Vec<Machine>, FlyError> {
        let resp = self
            .call(Method::Get, &format!("/v1/apps/{app}/machines"), None)
            .await?;
        crate::json::read(&resp.body)
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
