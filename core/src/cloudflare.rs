//! The Cloudflare API client the cron poll uses: Workers script deployments and Pages
//! project deployments, turned into [`Deployment`]s. Generic over [`Http`]; the base
//! URL comes from config.

use serde_json::Value;

use crate::config::CloudflareConfig;
use crate::http::{HttpError, HttpRequest, Method};
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

#[derive(FromJson)]
struct Envelope<T> {
    #[json(default)]
    success: bool,
    #[json(default)]
    errors: Vec<ApiMessage>,
    result: Option<T>,
}

#[derive(FromJson)]
struct ApiMessage {
    code: i64,
    message: String,
}

/// `result` of the Workers list: the entries stay raw, so that each is read on its own.
#[derive(FromJson)]
struct WorkerDeployments {
    deployments: Vec<Value>,
}

/// One Workers deployment. Only its id and time are required; the display fields
/// are read when they are strings and left out otherwise.
struct WorkerDeployment {
    id: String,
    created_on: String,
    author_email: Option<String>,
    /// `annotations["workers/message"]`.
    message: Option<String>,
}

impl FromJson for WorkerDeployment {
    fn from_json(v: &Value, at: Path<'_>) -> Result<Self, Invalid> {
        let o = Obj::new(v, at)?;
        Ok(WorkerDeployment {
            id: o.req("id")?,
            created_on: o.req("created_on")?,
            author_email: text_at(v, "/author_email"),
            message: text_at(v, "/annotations/workers~1message"),
        })
    }
}

/// One Pages deployment, with the stage and trigger fields the poll needs read out
/// of their nested objects. Its id, time and stage are required; the display fields
/// are read when they are strings and left out otherwise.
struct PagesDeployment {
    id: String,
    created_on: String,
    environment: Option<String>,
    url: Option<String>,
    latest_stage: Option<PagesStage>,
    /// From `deployment_trigger.metadata`.
    branch: Option<String>,
    commit_hash: Option<String>,
    commit_message: Option<String>,
}

impl FromJson for PagesDeployment {
    fn from_json(v: &Value, at: Path<'_>) -> Result<Self, Invalid> {
        let o = Obj::new(v, at)?;
        let metadata = |field: &str| text_at(v, &format!("/deployment_trigger/metadata/{field}"));
        Ok(PagesDeployment {
            id: o.req("id")?,
            created_on: o.req("created_on")?,
            environment: text_at(v, "/environment"),
            url: text_at(v, "/url"),
            latest_stage: o.opt("latest_stage")?,
            branch: metadata("branch"),
            commit_hash: metadata("commit_hash"),
            commit_message: metadata("commit_message"),
        })
    }
}

fn text_at(v: &Value, pointer: &str) -> Option<String> {
    crate::json::str_at(v, pointer).map(str::to_owned)
}

#[derive(FromJson)]
struct PagesStage {
    name: String,
    status: String,
}

/// One entry of a page: a deployment, or why this one could not be used (the others
/// of the page still are).
pub type Listed = Result<PolledDeployment, CloudflareError>;

/// Reads every entry of a page on its own: one the poll cannot use (no id, no time,
/// an id that is not one) costs only itself.
fn each_entry<T: FromJson>(entries: &[Value], to_polled: impl Fn(T) -> Listed) -> Vec<Listed> {
    entries
        .iter()
        .enumerate()
        .map(|(i, v)| {
            crate::json::from_value(v)
                .map_err(|e| {
                    let which = crate::json::str_at(v, "/id")
                        .map_or_else(|| format!("#{}", i + 1), |id| format!("{id:?}"));
                    CloudflareError::Malformed(format!("deployment {which}: {e}"))
                })
                .and_then(&to_polled)
        })
        .collect()
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
        let result = self.call(Method::Get, path, None).await?;
        crate::json::from_value(&result).map_err(|e| CloudflareError::Malformed(e.to_string()))
    }

    /// One call under `/accounts/{id}`: its `result`, or the API's errors (every one
    /// of them, in Cloudflare's words and codes). Not generic: every call shares it.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<Value, CloudflareError> {
        let url = format!(
            "{}/accounts/{}{}",
            self.config.api_base, self.config.account_id, path
        );
        let mut request = HttpRequest::get(url, REQUEST_TIMEOUT_MS);
        request.method = method;
        if let Some(body) = body {
            request = request.header("content-type", "application/json");
            request.body = Some(body);
        }
        let request = request
            .header(
                "authorization",
                format!("Bearer {}", self.config.api_token.expose()),
            )
            .header("accept", "application/json");
        let response = self.http.send(request).await?;
        let envelope: Result<Envelope<Value>, _> = crate::json::read(&response.body);
        match envelope {
            Ok(e) if e.success && (200..300).contains(&response.status) => e
                .result
                .ok_or_else(|| CloudflareError::Malformed("no result".into())),
            Ok(e) => Err(CloudflareError::Status {
                status: response.status,
                message: if e.errors.is_empty() {
                    "no error message".into()
                } else {
                    e.errors
                        .iter()
                        .map(|m| format!("{} (code {})", m.message, m.code))
                        .collect::<Vec<_>>()
                        .join("; ")
                },
            }),
            Err(_) if !(200..300).contains(&response.status) => Err(CloudflareError::Status {
                status: response.status,
                message: "no error message".into(),
            }),
            Err(e) => Err(CloudflareError::Malformed(e.to_string())),
        }
    }

    /// `GET /accounts/{id}/workers/scripts/{name}/deployments`. The call fails as a
    /// whole (an error answer, an unreadable list) or entry by entry (see [`Listed`]).
    pub async fn worker_deployments(&self, script: &str) -> Result<Vec<Listed>, CloudflareError> {
        if !valid_name(script) {
            return Err(CloudflareError::InvalidName(script.to_owned()));
        }
        let result: WorkerDeployments = self
            .get(&format!("/workers/scripts/{script}/deployments"))
            .await?;
        Ok(each_entry(&result.deployments, |d: WorkerDeployment| {
            let created = parse_time(&d.created_on)?;
            let payload = DeploymentPayload {
                kind: Some(DeployKind::Worker.as_str().into()),
                project_name: Some(script.to_owned()),
                deployment_id: Some(d.id),
                commit_message: d.message,
                author: d.author_email,
                environment: Some("production".into()),
                ..Default::default()
            };
            to_polled(payload, created, PolledState::Live)
        }))
    }

    /// `GET /accounts/{id}/pages/projects/{name}/deployments` (the first page, newest
    /// first, which is all a five-minute poll needs). Fails as
    /// [`worker_deployments`](Self::worker_deployments) does.
    pub async fn pages_deployments(&self, project: &str) -> Result<Vec<Listed>, CloudflareError> {
        if !valid_name(project) {
            return Err(CloudflareError::InvalidName(project.to_owned()));
        }
        let result: Vec<Value> = self
            .get(&format!("/pages/projects/{project}/deployments"))
            .await?;
        Ok(each_entry(&result, |d: PagesDeployment| {
            let created = parse_time(&d.created_on)?;
            let state = match &d.latest_stage {
                Some(s) if s.status == "failure" || s.status == "canceled" => PolledState::Failed,
                Some(s) if s.name == "deploy" && s.status == "success" => PolledState::Live,
                _ => PolledState::InProgress,
            };
            let payload = DeploymentPayload {
                kind: Some(DeployKind::Pages.as_str().into()),
                project_name: Some(project.to_owned()),
                deployment_id: Some(d.id),
                branch: d.branch,
                commit_hash: d.commit_hash,
                commit_message: d.commit_message,
                environment: d.environment,
                url: d.url,
                ..Default::default()
            };
            to_polled(payload, created, state)
        }))
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
    // API data is held to a hook's rules: the display fields are sanitised (see
    // [`DeploymentPayload::sanitised`]), only a bad id refuses this one deployment.
    let deployment = payload
        .validate(created, Source::Poll)
        .map_err(|e| CloudflareError::Malformed(e.to_string()))?;
    Ok(PolledDeployment { deployment, state })
}

pub mod rollback;

#[cfg(test)]
mod tests;
