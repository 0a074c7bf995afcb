//! The Cloudflare API client the cron poll uses: Workers script deployments and Pages
//! project deployments, turned into [`Deployment`]s. Generic over [`Http`]; the base
//! URL comes from config.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::config::CloudflareConfig;
use crate::http::{HttpError, HttpRequest};
use crate::json::{FromJson, Invalid, Obj, Path};
use crate::notify::{DeployKind, DeploymentPayload, Source};
use crate::ports::Http;
use crate::time::Timestamp;

/// One API call may take this long; the cron polls several names in one run.
pub const REQUEST_TIMEOUT_MS: u32 = 10_000;

/// A deployment the API reported.
#[derive(Debug, Clone, PartialEq)]
pub struct PolledDeployment {
    pub deployment: crate::notify::Deployment,
    /// Finished successfully and live. Pages deployments still building, or failed,
    /// are not announced.
    pub state: PolledState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolledState {
    Live,
    InProgress,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloudflareError {
    #[error("{0} is not a valid name")]
    InvalidName(String),
    #[error("Cloudflare API {status}: {message}")]
    Status { status: u16, message: String },
    #[error("Cloudflare API: {0}")]
    Http(#[from] HttpError),
    #[error("Cloudflare API: unexpected answer: {0}")]
    Malformed(String),
}

pub struct CloudflareClient<'a, H> {
    http: &'a H,
    config: &'a CloudflareConfig,
}

struct Envelope<T> {
    success: bool,
    errors: Vec<ApiMessage>,
    result: Option<T>,
}

impl<T: FromJson> FromJson for Envelope<T> {
    fn from_json(v: &Value, at: Path<'_>) -> Result<Self, Invalid> {
        let o = Obj::new(v, at)?;
        Ok(Envelope {
            success: o.or_default("success")?,
            errors: o.or_default("errors")?,
            result: o.opt("result")?,
        })
    }
}

struct ApiMessage {
    code: i64,
    message: String,
}

impl FromJson for ApiMessage {
    fn from_json(v: &Value, at: Path<'_>) -> Result<Self, Invalid> {
        let o = Obj::new(v, at)?;
        Ok(ApiMessage {
            code: o.or_default("code")?,
            message: o.or_default("message")?,
        })
    }
}

struct WorkerDeployments {
    deployments: Vec<WorkerDeployment>,
}

impl FromJson for WorkerDeployments {
    fn from_json(v: &Value, at: Path<'_>) -> Result<Self, Invalid> {
        Ok(WorkerDeployments {
            deployments: Obj::new(v, at)?.or_default("deployments")?,
        })
    }
}

struct WorkerDeployment {
    id: String,
    created_on: String,
    author_email: Option<String>,
    annotations: Option<BTreeMap<String, Value>>,
}

impl FromJson for WorkerDeployment {
    fn from_json(v: &Value, at: Path<'_>) -> Result<Self, Invalid> {
        let o = Obj::new(v, at)?;
        Ok(WorkerDeployment {
            id: o.req("id")?,
            created_on: o.req("created_on")?,
            author_email: o.opt("author_email")?,
            annotations: o.opt("annotations")?,
        })
    }
}

/// One Pages deployment, with the stage and trigger fields the poll needs read out
/// of their nested objects.
struct PagesDeployment {
    id: String,
    created_on: String,
    environment: Option<String>,
    url: Option<String>,
    latest_stage: Option<PagesStage>,
    /// `deployment_trigger.metadata`.
    metadata: Option<PagesTriggerMetadata>,
}

impl FromJson for PagesDeployment {
    fn from_json(v: &Value, at: Path<'_>) -> Result<Self, Invalid> {
        let o = Obj::new(v, at)?;
        let metadata = match o.opt_obj("deployment_trigger")? {
            Some(trigger) => trigger.opt("metadata")?,
            None => None,
        };
        Ok(PagesDeployment {
            id: o.req("id")?,
            created_on: o.req("created_on")?,
            environment: o.opt("environment")?,
            url: o.opt("url")?,
            latest_stage: o.opt("latest_stage")?,
            metadata,
        })
    }
}

struct PagesStage {
    name: String,
    status: String,
}

impl FromJson for PagesStage {
    fn from_json(v: &Value, at: Path<'_>) -> Result<Self, Invalid> {
        let o = Obj::new(v, at)?;
        Ok(PagesStage {
            name: o.or_default("name")?,
            status: o.or_default("status")?,
        })
    }
}

struct PagesTriggerMetadata {
    branch: Option<String>,
    commit_hash: Option<String>,
    commit_message: Option<String>,
}

impl FromJson for PagesTriggerMetadata {
    fn from_json(v: &Value, at: Path<'_>) -> Result<Self, Invalid> {
        let o = Obj::new(v, at)?;
        Ok(PagesTriggerMetadata {
            branch: o.opt("branch")?,
            commit_hash: o.opt("commit_hash")?,
            commit_message: o.opt("commit_message")?,
        })
    }
}

/// Script and project names are `[A-Za-z0-9_-]`: anything else would change the path.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl<'a, H: Http> CloudflareClient<'a, H> {
    pub fn new(http: &'a H, config: &'a CloudflareConfig) -> Self {
        CloudflareClient { http, config }
    }

    async fn get<T: FromJson>(&self, path: &str) -> Result<T, CloudflareError> {
        let url = format!(
            "{}/accounts/{}{}",
            self.config.api_base, self.config.account_id, path
        );
        let request = HttpRequest::get(url, REQUEST_TIMEOUT_MS)
            .header(
                "authorization",
                format!("Bearer {}", self.config.api_token.expose()),
            )
            .header("accept", "application/json");
        let response = self.http.send(request).await?;
        let envelope: Result<Envelope<T>, _> = crate::json::read(&response.body);
        match envelope {
            Ok(e) if e.success && (200..300).contains(&response.status) => e
                .result
                .ok_or_else(|| CloudflareError::Malformed("no result".into())),
            Ok(e) => Err(CloudflareError::Status {
                status: response.status,
                message: e
                    .errors
                    .first()
                    .map(|m| format!("{} (code {})", m.message, m.code))
                    .unwrap_or_else(|| "no error message".into()),
            }),
            Err(_) if !(200..300).contains(&response.status) => Err(CloudflareError::Status {
                status: response.status,
                message: "no error message".into(),
            }),
            Err(e) => Err(CloudflareError::Malformed(e.to_string())),
        }
    }

    /// `GET /accounts/{id}/workers/scripts/{name}/deployments`.
    pub async fn worker_deployments(
        &self,
        script: &str,
    ) -> Result<Vec<PolledDeployment>, CloudflareError> {
        if !valid_name(script) {
            return Err(CloudflareError::InvalidName(script.to_owned()));
        }
        let result: WorkerDeployments = self
            .get(&format!("/workers/scripts/{script}/deployments"))
            .await?;
        result
            .deployments
            .into_iter()
            .map(|d| {
                let created = parse_time(&d.created_on)?;
                let message = d
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("workers/message"))
                    .and_then(|m| m.as_str())
                    .map(str::to_owned);
                let payload = DeploymentPayload {
                    kind: Some(DeployKind::Worker.as_str().into()),
                    project_name: Some(script.to_owned()),
                    deployment_id: Some(d.id),
                    commit_message: message,
                    author: d.author_email,
                    environment: Some("production".into()),
                    ..Default::default()
                };
                to_polled(payload, created, PolledState::Live)
            })
            .collect()
    }

    /// `GET /accounts/{id}/pages/projects/{name}/deployments` (the first page, newest
    /// first, which is all a five-minute poll needs).
    pub async fn pages_deployments(
        &self,
        project: &str,
    ) -> Result<Vec<PolledDeployment>, CloudflareError> {
        if !valid_name(project) {
            return Err(CloudflareError::InvalidName(project.to_owned()));
        }
        let result: Vec<PagesDeployment> = self
            .get(&format!("/pages/projects/{project}/deployments"))
            .await?;
        result
            .into_iter()
            .map(|d| {
                let created = parse_time(&d.created_on)?;
                let state = match &d.latest_stage {
                    Some(s) if s.status == "failure" || s.status == "canceled" => {
                        PolledState::Failed
                    }
                    Some(s) if s.name == "deploy" && s.status == "success" => PolledState::Live,
                    _ => PolledState::InProgress,
                };
                let (branch, commit_hash, commit_message) = match d.metadata {
                    Some(m) => (m.branch, m.commit_hash, m.commit_message),
                    None => (None, None, None),
                };
                let payload = DeploymentPayload {
                    kind: Some(DeployKind::Pages.as_str().into()),
                    project_name: Some(project.to_owned()),
                    deployment_id: Some(d.id),
                    branch,
                    commit_hash,
                    commit_message,
                    environment: d.environment,
                    url: d.url,
                    ..Default::default()
                };
                to_polled(payload, created, state)
            })
            .collect()
    }
}

fn parse_time(s: &str) -> Result<Timestamp, CloudflareError> {
    Timestamp::parse_rfc3339(s)
        .ok_or_else(|| CloudflareError::Malformed(format!("created_on {s:?}")))
}

fn to_polled(
    mut payload: DeploymentPayload,
    created: Timestamp,
    state: PolledState,
) -> Result<PolledDeployment, CloudflareError> {
    payload.timestamp = Some(created.to_rfc3339());
    // Hold API data to the same bounds as a hook's; a value out of bounds is dropped
    // rather than losing the whole deployment.
    if payload
        .commit_hash
        .as_deref()
        .is_some_and(|h| crate::notify::CommitHash::parse(h).is_none())
    {
        payload.commit_hash = None;
    }
    if let Some(m) = &payload.commit_message {
        if m.chars().count() > crate::notify::MAX_COMMIT_MESSAGE {
            payload.commit_message =
                Some(m.chars().take(crate::notify::MAX_COMMIT_MESSAGE).collect());
        }
    }
    let deployment = payload
        .validate(created, Source::Poll)
        .map_err(|e| CloudflareError::Malformed(e.to_string()))?;
    Ok(PolledDeployment { deployment, state })
}

#[cfg(test)]
mod tests;
