//! The apps registry: what to deploy for which repository and branch, and how. Apps
//! live in D1 and are managed through the admin API; this module owns their shape,
//! their validation (errors name the field) and their SQL.

use serde::Serialize;
use serde_json::Value;

use crate::github::RepoFullName;
use crate::json::{FromJson, Invalid, Names, Obj, Path};
use crate::names::AppName;
use crate::ports::{Sql, StoreError};
use crate::row::Columns;
use crate::time::Timestamp;

/// An app the admin API refuses: a 400 naming the field, or a 409 where it clashes
/// with another app.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
}

impl From<crate::json::BadBody> for AppError {
    fn from(e: crate::json::BadBody) -> Self {
        AppError::Invalid(e.0)
    }
}

impl From<crate::preview::SettingsError> for AppError {
    fn from(e: crate::preview::SettingsError) -> Self {
        AppError::Invalid(e.0)
    }
}

impl From<crate::names::NameError> for AppError {
    fn from(e: crate::names::NameError) -> Self {
        AppError::Invalid(e.to_string())
    }
}

/// When a push to the production branch deploys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Names)]
#[serde(rename_all = "snake_case")]
pub enum DeployOn {
    /// Every push.
    Push,
    /// Only merges (a merge commit, or a commit of a merged pull request).
    Merge,
}

/// How an app is deployed. Internally tagged by `type`; each variant refuses fields
/// it does not know.
#[derive(Debug, Clone, PartialEq, Serialize, FromJson)]
#[serde(tag = "type", rename_all = "snake_case")]
#[json(deny_unknown_fields)]
pub enum DeployTarget {
    /// Dispatch a GitHub Actions workflow and wait for its run.
    GithubWorkflow {
        /// Defaults to the app's repository.
        #[serde(skip_serializing_if = "Option::is_none")]
        repository: Option<RepoFullName>,
        /// The workflow file name (`deploy.yml`) or id.
        workflow: String,
        /// The ref to run it on; defaults to the production branch.
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        git_ref: Option<String>,
        /// Workflow inputs; `{sha}` in a value becomes the commit being deployed.
        #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
        inputs: serde_json::Map<String, serde_json::Value>,
    },
    /// POST to a deploy hook URL (Cloudflare Pages, Render, Vercel).
    DeployHook { url: String },
    /// Update the app's Fly.io machines to a new image.
    Fly {
        /// The Fly app.
        app: String,
        /// The image; `{sha}` becomes the commit being deployed.
        image: String,
    },
}

/// What pushes to an app's production branch deploy, and how. Written flat into
/// the app's JSON (`production_branch`, `environment`, `deploy_on`, `deploy`,
/// `approval`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeployConfig {
    pub production_branch: String,
    pub environment: String,
    pub deploy_on: DeployOn,
    #[serde(rename = "deploy")]
    pub target: DeployTarget,
    /// Whether deploys to `environment` wait for a person's approval. An app deploys
    /// one environment, so this is that environment's; another environment of the
    /// same repository is another app, with approval settings of its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalSettings>,
}

/// Default `approval.timeout_minutes`: an hour, long enough for someone to notice
/// the message, short enough that a forgotten deploy does not hold the app for
/// the rest of the day.
pub const DEFAULT_APPROVAL_TIMEOUT_MINUTES: u32 = 60;
/// Longest `approval.timeout_minutes`: a week. A job waiting longer holds its app's
/// deploys (newer pushes still supersede it).
pub const MAX_APPROVAL_TIMEOUT_MINUTES: u32 = 7 * 24 * 60;

fn approval_required() -> bool {
    true
}
fn approval_timeout() -> u32 {
    DEFAULT_APPROVAL_TIMEOUT_MINUTES
}

/// An app's `approval`: its deploy jobs wait in an `awaiting_approval` step before
/// anything is deployed, until approved, rejected or `timeout_minutes` pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, FromJson)]
#[json(deny_unknown_fields)]
pub struct ApprovalSettings {
    /// On unless set to false (the block is there to be used).
    #[serde(default = "approval_required")]
    pub required: bool,
    /// How long a job waits for a decision before the cron fails it.
    #[serde(default = "approval_timeout")]
    pub timeout_minutes: u32,
}

/// The app fields that belong to [`DeployConfig`].
const DEPLOY_FIELDS: &[&str] = &["production_branch", "environment", "deploy_on", "approval"];

/// An app as stored and as the API shows it: a deploy target, previews, or both.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct App {
    pub repository: RepoFullName,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub telegram_chat_id: Option<String>,
    /// None for an app that only previews pull requests.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub deploy: Option<DeployConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_url: Option<String>,
    /// Preview environments for pull requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview: Option<crate::preview::PreviewSettings>,
    /// Telegram user ids who may act on this app's jobs from chat, beside
    /// `TELEGRAM_OPERATORS`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub operators: Vec<i64>,
}

/// Most `operators` of one app.
const MAX_OPERATORS: usize = 50;

/// Hand-written: the wire shape is flat (`production_branch`, `environment`,
/// `deploy_on` beside `deploy`) where the type nests them in [`DeployConfig`], and those
/// keys are refused when `deploy` is absent.
impl FromJson for App {
    fn from_json(v: &Value, at: Path<'_>) -> Result<Self, Invalid> {
        let o = Obj::new(v, at)?;
        o.only(&[
            "repository",
            "production_branch",
            "environment",
            "deploy_on",
            "telegram_chat_id",
            "deploy",
            "health_url",
            "preview",
            "approval",
            "operators",
        ])?;
        let repository = o.req("repository")?;
        let deploy = match o.get("deploy") {
            Some(v) if !v.is_null() => Some(DeployConfig {
                production_branch: o.req("production_branch")?,
                environment: o.req("environment")?,
                deploy_on: o.req("deploy_on")?,
                target: o.req("deploy")?,
                approval: o.opt("approval")?,
            }),
            _ => {
                if let Some(field) = DEPLOY_FIELDS.iter().find(|f| o.get(f).is_some()) {
                    return Err(Invalid::at(
                        Path::Key(&o.at(), field),
                        "only an app with `deploy` has one (an app without it only previews)",
                    ));
                }
                None
            }
        };
        Ok(App {
            repository,
            telegram_chat_id: o.opt("telegram_chat_id")?,
            deploy,
            health_url: o.opt("health_url")?,
            preview: o.opt("preview")?,
            operators: o.or_default("operators")?,
        })
    }
}

fn http_url(field: &str, url: &str) -> Result<(), AppError> {
    if (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() <= 2048
        && !url.contains(char::is_whitespace)
    {
        Ok(())
    } else {
        Err(AppError::Invalid(format!("{field} must be an http(s) URL")))
    }
}

fn simple(field: &str, s: &str, max: usize) -> Result<(), AppError> {
    if s.is_empty() || s.len() > max || s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        Err(AppError::Invalid(format!(
            "{field} must be 1 to {max} characters without spaces"
        )))
    } else {
        Ok(())
    }
}

impl App {
    /// Parses and validates an app from the admin API's JSON body.
    pub fn parse(body: &[u8]) -> Result<App, AppError> {
        let app: App =
            crate::json::read_body(body, "body must be a JSON object describing the app")?;
        app.validate()?;
        Ok(app)
    }

    fn validate(&self) -> Result<(), AppError> {
        if self.deploy.is_none() && self.preview.is_none() {
            return Err(AppError::Invalid(
                "deploy: an app needs `deploy`, `preview` or both".into(),
            ));
        }
        if let Some(chat) = &self.telegram_chat_id {
            simple("telegram_chat_id", chat, 64)?;
        }
        if let Some(url) = &self.health_url {
            http_url("health_url", url)?;
        }
        if self.operators.len() > MAX_OPERATORS {
            return Err(AppError::Invalid(format!(
                "operators: at most {MAX_OPERATORS} Telegram user ids"
            )));
        }
        if let Some(i) = self.operators.iter().position(|&id| id <= 0) {
            return Err(AppError::Invalid(format!(
                "operators[{i}]: must be a Telegram user id (a number above 0)"
            )));
        }
        if let Some(preview) = &self.preview {
            preview.validate()?;
        }
        if let Some(deploy) = &self.deploy {
            deploy.validate()?;
        }
        Ok(())
    }

    /// Whether a push to `repository`'s `branch` deploys this app (one without a
    /// deploy target deploys nothing).
    pub fn watches(&self, repository: &RepoFullName, branch: &str) -> bool {
        self.repository.same_as(repository)
            && self
                .deploy
                .as_ref()
                .is_some_and(|d| d.production_branch == branch)
    }

    /// Refuses preview settings whose Fly app names could also be another app's
    /// (`pr-{pr}` in two apps, say): one app's teardown would delete the other's
    /// preview. A 409 naming `preview.app_name`, the other app and a name both
    /// could make.
    pub fn check_fly_names(&self, name: &AppName, others: &[NamedApp]) -> Result<(), AppError> {
        let Some(mine) = &self.preview else {
            return Ok(());
        };
        for other in others.iter().filter(|o| o.name != *name) {
            let Some(theirs) = &other.app.preview else {
                continue;
            };
            if let Some(clash) = mine.fly_name_clash(name.as_str(), theirs, other.name.as_str()) {
                return Err(AppError::Conflict(format!(
                    "preview.app_name: {:?} can make the same Fly app name as app {}'s {:?} (both can make {clash}); make the names distinct, for example with {{app}}",
                    mine.app_name,
                    other.name.as_str(),
                    theirs.app_name
                )));
            }
        }
        Ok(())
    }
}

impl DeployConfig {
    /// The approval its deploys wait for, if they wait for one.
    pub fn required_approval(&self) -> Option<ApprovalSettings> {
        self.approval.filter(|a| a.required)
    }

    fn validate(&self) -> Result<(), AppError> {
        simple("production_branch", &self.production_branch, 255)?;
        simple("environment", &self.environment, 64)?;
        if let Some(approval) = &self.approval {
            if !(1..=MAX_APPROVAL_TIMEOUT_MINUTES).contains(&approval.timeout_minutes) {
                return Err(AppError::Invalid(format!(
                    "approval.timeout_minutes must be 1 to {MAX_APPROVAL_TIMEOUT_MINUTES} (a week)"
                )));
            }
        }
        match &self.target {
            DeployTarget::GithubWorkflow {
                workflow,
                git_ref,
                inputs,
                ..
            } => {
                simple("deploy.workflow", workflow, 255)?;
                if let Some(r) = git_ref {
                    simple("deploy.ref", r, 255)?;
                }
                if inputs.len() > 10 {
                    return Err(AppError::Invalid(
                        "deploy.inputs: GitHub accepts at most 10 inputs".into(),
                    ));
                }
            }
            DeployTarget::DeployHook { url } => http_url("deploy.url", url)?,
            DeployTarget::Fly { app, image } => {
                simple("deploy.app", app, 63)?;
                simple("deploy.image", image, 512)?;
            }
        }
        Ok(())
    }
}

/// An app with its name and times, as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NamedApp {
    pub name: AppName,
    #[serde(flatten)]
    pub app: App,
    pub created_at: i64,
    pub updated_at: i64,
}

pub struct AppStore<S> {
    sql: S,
}

impl<S: Sql> AppStore<S> {
    pub fn new(sql: S) -> Self {
        AppStore { sql }
    }

    /// Creates or replaces an app; `true` when it was created.
    pub async fn put(&self, name: &AppName, app: &App, now: Timestamp) -> Result<bool, StoreError> {
        let config = serde_json::to_string(app).map_err(StoreError::encode)?;
        let existed = !self
            .sql
            .query(
                "SELECT 1 AS x FROM apps WHERE name = ?1",
                &[name.as_str().into()],
            )
            .await?
            .is_empty();
        self.sql
            .execute(
                "INSERT INTO apps (name, repository, config, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4) \
                 ON CONFLICT (name) DO UPDATE SET repository = excluded.repository, config = excluded.config, \
                 updated_at = excluded.updated_at",
                &[
                    name.as_str().into(),
                    app.repository.as_str().to_ascii_lowercase().into(),
                    config.into(),
                    now.millis().into(),
                ],
            )
            .await?;
        Ok(!existed)
    }

    pub async fn get(&self, name: &AppName) -> Result<Option<NamedApp>, StoreError> {
        let rows = self
            .sql
            .query(
                "SELECT name, config, created_at, updated_at FROM apps WHERE name = ?1",
                &[name.as_str().into()],
            )
            .await?;
        rows.into_iter().next().map(named).transpose()
    }

    pub async fn list(&self) -> Result<Vec<NamedApp>, StoreError> {
        let rows = self
            .sql
            .query(
                "SELECT name, config, created_at, updated_at FROM apps ORDER BY name",
                &[],
            )
            .await?;
        rows.into_iter().map(named).collect()
    }

    /// The apps registered for a repository.
    pub async fn for_repository(
        &self,
        repository: &RepoFullName,
    ) -> Result<Vec<NamedApp>, StoreError> {
        let rows = self
            .sql
            .query(
                "SELECT name, config, created_at, updated_at FROM apps WHERE repository = ?1 ORDER BY name",
                &[repository.as_str().to_ascii_lowercase().into()],
            )
            .await?;
        rows.into_iter().map(named).collect()
    }

    /// `true` when it existed.
    pub async fn delete(&self, name: &AppName) -> Result<bool, StoreError> {
        let done = self
            .sql
            .execute("DELETE FROM apps WHERE name = ?1", &[name.as_str().into()])
            .await?;
        Ok(done.changes > 0)
    }
}

fn named(row: crate::ports::Row) -> Result<NamedApp, StoreError> {
    let name = row.text("name")?;
    let config = row
        .opt_text("config")
        .ok_or_else(|| StoreError::Row(format!("app {name} without config")))?;
    Ok(NamedApp {
        app: crate::json::read(&config).map_err(|e| StoreError::Row(format!("app {name}: {e}")))?,
        name: AppName(name),
        created_at: row.opt_int("created_at").unwrap_or(0),
        updated_at: row.opt_int("updated_at").unwrap_or(0),
    })
}

#[cfg(test)]
mod tests;
