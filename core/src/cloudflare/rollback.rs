//! Rolling a Worker or a Pages project back through the Cloudflare API: the pure
//! choice of what goes live again ([`pick_version`], [`pick_pages`]) and the calls
//! ([`CloudflareClient::choose`], [`CloudflareClient::send_rollback`],
//! [`CloudflareClient::find_rollback`]). Which of them may run, and how often, is
//! the notify flow's to decide (`crate::notify::rollback`): the rollback itself is
//! sent at most once.

use serde_json::Value;

use super::{valid_name, CloudflareClient, CloudflareError};
use crate::http::Method;
use crate::json::{FromJson, Invalid, Obj, Path};
use crate::notify::DeployKind;
use crate::ports::Http;
use crate::time::Timestamp;

/// Whether a notification's messages carry the Roll back button: rollbacks are on
/// (`CLOUDFLARE_ROLLBACK`), and it is a Worker's, or a Pages project's production
/// deployment (Pages rolls back production only).
pub fn offers_rollback(config: &crate::config::Config, d: &crate::notify::Deployment) -> bool {
    config.cloudflare_rollback
        && (d.kind == DeployKind::Worker || d.environment == crate::notify::DEFAULT_ENVIRONMENT)
}

/// What a Roll back button acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    pub kind: DeployKind,
    /// The Worker script or Pages project.
    pub name: &'a str,
    /// The deployment the message announced, when the id is Cloudflare's own (the
    /// poll's): once another deployment has replaced it, nothing is rolled back.
    pub announced: Option<&'a str>,
}

/// What goes live again, chosen from the deployments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The deployment live when it was chosen.
    pub live: String,
    /// A Worker version id, or a Pages deployment id.
    pub to: String,
    /// How the message names it: `version 41 (8c1f2e3a) of Jan 14, 2025, 9:00 AM UTC`.
    pub label: String,
}

/// Why a rollback did not happen (yet).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RollbackError {
    /// Nothing was rolled back, and trying again would not change that: Cloudflare
    /// refused it (in its words), there is nothing to go back to, or another
    /// deployment came first.
    #[error("{0}")]
    Final(String),
    /// Cloudflare refused the rollback itself, in its words and codes (a changed
    /// secret is code 10220; a Durable Object migration or a deleted binding since
    /// the version was live are refused too). It is never retried.
    #[error("Cloudflare refused the rollback: {0}")]
    Refused(String),
    /// Nothing was sent: trying again later may work (5xx, 429, network).
    #[error("{0}")]
    Later(String),
    /// The rollback was sent and no answer came: it may have happened. It is never
    /// sent again; [`CloudflareClient::find_rollback`] tells.
    #[error("{0}")]
    Unconfirmed(String),
    /// `CLOUDFLARE_ROLLBACK` is not on, or the Cloudflare API is not configured.
    #[error("{0} is not configured")]
    NotConfigured(&'static str),
}

impl RollbackError {
    /// A read failed: a refusal (4xx) is final, a 429, 5xx or network error is not.
    fn reading(e: CloudflareError) -> RollbackError {
        match e {
            CloudflareError::Status { status, message } if status != 429 && status < 500 => {
                RollbackError::Final(format!("Cloudflare API {status}: {message}"))
            }
            CloudflareError::Status { .. } | CloudflareError::Http(_) => {
                RollbackError::Later(e.to_string())
            }
            CloudflareError::InvalidName(_) | CloudflareError::Malformed(_) => {
                RollbackError::Final(e.to_string())
            }
        }
    }
}

/// One Workers deployment: which versions took what share of the traffic.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptDeployment {
    pub id: String,
    pub created_on: Timestamp,
    /// (version id, percentage).
    pub versions: Vec<(String, f64)>,
    /// `annotations["workers/message"]`.
    pub message: Option<String>,
}

impl FromJson for ScriptDeployment {
    fn from_json(v: &Value, at: Path<'_>) -> Result<Self, Invalid> {
        let o = Obj::new(v, at)?;
        let created: String = o.req("created_on")?;
        let versions: Vec<Share> = o.req("versions")?;
        Ok(ScriptDeployment {
            id: o.req("id")?,
            created_on: Timestamp::parse_rfc3339(&created)
                .ok_or_else(|| Invalid::at(at, format!("created_on {created:?}")))?,
            versions: versions.into_iter().map(|s| (s.0, s.1)).collect(),
            message: crate::json::str_at(v, "/annotations/workers~1message").map(str::to_owned),
        })
    }
}

/// One entry of a deployment's `versions`.
struct Share(String, f64);

impl FromJson for Share {
    fn from_json(v: &Value, at: Path<'_>) -> Result<Self, Invalid> {
        let o = Obj::new(v, at)?;
        let percentage = o
            .get("percentage")
            .and_then(Value::as_f64)
            .ok_or_else(|| Invalid::missing(at, "percentage"))?;
        Ok(Share(o.req("version_id")?, percentage))
    }
}

#[derive(FromJson)]
struct ScriptDeployments {
    deployments: Vec<ScriptDeployment>,
}

/// The version a deployment sent all of its traffic to.
fn whole(d: &ScriptDeployment) -> Option<&str> {
    d.versions
        .iter()
        .find(|(_, p)| (p - 100.0).abs() < 1e-9)
        .map(|(v, _)| v.as_str())
}

/// The live deployment (the newest) and the one to go back to, as `wrangler
/// rollback` picks it: the newest deployment before the live one that sent one
/// version 100% of the traffic. One whose version is the very one live is passed
/// over (deploying it would change nothing).
pub fn pick_version<'d>(
    deployments: &'d [ScriptDeployment],
    target: Target<'_>,
) -> Result<(&'d ScriptDeployment, &'d ScriptDeployment), RollbackError> {
    let live = deployments
        .iter()
        .max_by_key(|d| d.created_on)
        .ok_or_else(|| RollbackError::Final(format!("{} has no deployments", target.name)))?;
    moved_on(target, &live.id, None)?;
    let live_version = whole(live);
    deployments
        .iter()
        .filter(|d| d.created_on < live.created_on)
        .filter(|d| whole(d).is_some_and(|v| Some(v) != live_version))
        .max_by_key(|d| d.created_on)
        .map(|d| (live, d))
        .ok_or_else(|| {
            RollbackError::Final(format!(
                "no earlier deployment of {} sent one version 100% of its traffic",
                target.name
            ))
        })
}

/// Refuses a rollback when the announced deployment is no longer the live one.
fn moved_on(target: Target<'_>, live: &str, live_short: Option<&str>) -> Result<(), RollbackError> {
    match target.announced {
        Some(a) if a != live && Some(a) != live_short => Err(RollbackError::Final(format!(
            "{a} is no longer live ({live} is): nothing was rolled back"
        ))),
        _ => Ok(()),
    }
}

/// One Pages deployment, as the rollback reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct PagesEntry {
    pub id: String,
    pub short_id: Option<String>,
    pub created_on: Timestamp,
    /// A production deployment that built and deployed: a valid rollback target.
    pub good: bool,
}

impl FromJson for PagesEntry {
    fn from_json(v: &Value, at: Path<'_>) -> Result<Self, Invalid> {
        let o = Obj::new(v, at)?;
        let created: String = o.req("created_on")?;
        let text = |p: &str| crate::json::str_at(v, p);
        Ok(PagesEntry {
            id: o.req("id")?,
            short_id: text("/short_id").map(str::to_owned),
            created_on: Timestamp::parse_rfc3339(&created)
                .ok_or_else(|| Invalid::at(at, format!("created_on {created:?}")))?,
            good: text("/environment") == Some("production")
                && text("/latest_stage/name") == Some("deploy")
                && text("/latest_stage/status") == Some("success")
                && v.get("is_skipped") != Some(&Value::Bool(true)),
        })
    }
}

/// The Pages deployment to go back to: the newest good production deployment
/// before the one live (the project's `canonical_deployment`).
pub fn pick_pages<'d>(
    live: &PagesEntry,
    deployments: &'d [PagesEntry],
    target: Target<'_>,
) -> Result<&'d PagesEntry, RollbackError> {
    moved_on(target, &live.id, live.short_id.as_deref())?;
    deployments
        .iter()
        .filter(|d| d.good && d.id != live.id && d.created_on < live.created_on)
        .max_by_key(|d| d.created_on)
        .ok_or_else(|| {
            RollbackError::Final(format!(
                "{} has no earlier successful production deployment",
                target.name
            ))
        })
}

/// The first eight characters of an id, for people.
fn short(id: &str) -> String {
    id.chars().take(8).collect()
}

/// `annotations["workers/message"]` holds at most this many characters.
pub const MAX_MESSAGE: usize = 100;

/// The annotation a rollback carries: "rollback by @alice via edge-notifier".
pub fn annotation(by: &str) -> String {
    let tail = " via edge-notifier";
    let room = MAX_MESSAGE - "rollback by ".len() - tail.len();
    format!("rollback by {}{tail}", crate::text::cut(by, room))
}

impl<H: Http> CloudflareClient<'_, H> {
    async fn script_deployments(
        &self,
        script: &str,
    ) -> Result<Vec<ScriptDeployment>, RollbackError> {
        let list: ScriptDeployments = self
            .get(&format!("/workers/scripts/{script}/deployments"))
            .await
            .map_err(RollbackError::reading)?;
        Ok(list.deployments)
    }

    /// Lists the deployments and picks what goes live again (see [`pick_version`]
    /// and [`pick_pages`]). Only reads.
    pub async fn choose(&self, target: Target<'_>) -> Result<Choice, RollbackError> {
        let name = target.name;
        if !valid_name(name) {
            return Err(RollbackError::Final(format!("{name} is not a valid name")));
        }
        match target.kind {
            DeployKind::Worker => {
                let deployments = self.script_deployments(name).await?;
                let (live, to) = pick_version(&deployments, target)?;
                let version = whole(to).unwrap_or_default();
                if !valid_name(version) {
                    return Err(RollbackError::Final(format!(
                        "version {version:?} is not a valid id"
                    )));
                }
                // The version itself, as wrangler shows it before rolling back: its
                // number, and that it is still there.
                let about: Value = self
                    .get(&format!("/workers/scripts/{name}/versions/{version}"))
                    .await
                    .map_err(RollbackError::reading)?;
                let number = crate::json::int_at(&about, "/number")
                    .map(|n| format!("version {n} ({})", short(version)))
                    .unwrap_or_else(|| format!("version {}", short(version)));
                Ok(Choice {
                    live: live.id.clone(),
                    to: version.to_owned(),
                    label: format!("{number} of {}", to.created_on.to_human()),
                })
            }
            DeployKind::Pages => {
                let project: Value = self
                    .get(&format!("/pages/projects/{name}"))
                    .await
                    .map_err(RollbackError::reading)?;
                let live: PagesEntry = match project.get("canonical_deployment") {
                    Some(d) if !d.is_null() => crate::json::from_value(d).map_err(|e| {
                        RollbackError::Final(format!(
                            "Cloudflare API: unexpected answer: canonical_deployment: {e}"
                        ))
                    })?,
                    _ => {
                        return Err(RollbackError::Final(format!(
                            "{name} has no production deployment"
                        )))
                    }
                };
                let list: Vec<PagesEntry> = self
                    .get(&format!(
                        "/pages/projects/{name}/deployments?env=production"
                    ))
                    .await
                    .map_err(RollbackError::reading)?;
                let to = pick_pages(&live, &list, target)?;
                if !valid_name(&to.id) {
                    return Err(RollbackError::Final(format!(
                        "deployment {:?} is not a valid id",
                        to.id
                    )));
                }
                Ok(Choice {
                    live: live.id.clone(),
                    to: to.id.clone(),
                    label: format!(
                        "deployment {} of {}",
                        to.short_id.clone().unwrap_or_else(|| short(&to.id)),
                        to.created_on.to_human()
                    ),
                })
            }
        }
    }

    /// Sends the rollback, once: a Workers deployment of the chosen version at 100%
    /// annotated with `message`, or the Pages rollback to the chosen deployment.
    /// Answers the deployment live now (the new Workers deployment's id when the
    /// answer names it; the chosen Pages deployment). A 4xx is Cloudflare's refusal
    /// ([`RollbackError::Refused`]); no answer, a 429 or a 5xx leaves it
    /// [`RollbackError::Unconfirmed`].
    pub async fn send_rollback(
        &self,
        target: Target<'_>,
        choice: &Choice,
        message: &str,
    ) -> Result<Option<String>, RollbackError> {
        let name = target.name;
        if !valid_name(name) || !valid_name(&choice.to) {
            return Err(RollbackError::Final(format!("{name} is not a valid name")));
        }
        let sent = match target.kind {
            DeployKind::Worker => {
                // Written out: the one body of this shape (`json!` builds a map).
                let body = format!(
                    "{{\"strategy\":\"percentage\",\"versions\":[{{\"version_id\":{},\"percentage\":100}}],\
                     \"annotations\":{{\"workers/message\":{}}}}}",
                    crate::json::text(&Value::from(choice.to.as_str())),
                    crate::json::text(&Value::from(message))
                );
                self.call(
                    Method::Post,
                    &format!("/workers/scripts/{name}/deployments"),
                    Some(body),
                )
                .await
            }
            DeployKind::Pages => {
                self.call(
                    Method::Post,
                    &format!("/pages/projects/{name}/deployments/{}/rollback", choice.to),
                    None,
                )
                .await
            }
        };
        match sent {
            Ok(result) => Ok(match target.kind {
                DeployKind::Worker => crate::json::str_at(&result, "/id").map(str::to_owned),
                DeployKind::Pages => Some(choice.to.clone()),
            }),
            Err(CloudflareError::Status { status, message }) if status != 429 && status < 500 => {
                Err(RollbackError::Refused(message))
            }
            Err(e) => Err(RollbackError::Unconfirmed(format!(
                "{e}; the rollback may or may not have happened"
            ))),
        }
    }

    /// Whether a rollback sent at `sent_at` that got no answer happened after all:
    /// the Worker's deployments show one of the chosen version at 100% with this
    /// `message`, made since; or the Pages project serves the chosen deployment.
    /// Answers the deployment live now, as [`Self::send_rollback`] does; `None` if
    /// it did not happen.
    pub async fn find_rollback(
        &self,
        target: Target<'_>,
        choice: &Choice,
        message: &str,
        sent_at: Timestamp,
    ) -> Result<Option<String>, RollbackError> {
        let name = target.name;
        match target.kind {
            DeployKind::Worker => {
                let deployments = self.script_deployments(name).await?;
                // A minute of slack for the clocks of the Worker and the API.
                let since = sent_at.minus_seconds(60);
                Ok(deployments
                    .into_iter()
                    .find(|d| {
                        d.created_on >= since
                            && d.message.as_deref() == Some(message)
                            && d.versions.len() == 1
                            && whole(d) == Some(choice.to.as_str())
                    })
                    .map(|d| d.id))
            }
            DeployKind::Pages => {
                let project: Value = self
                    .get(&format!("/pages/projects/{name}"))
                    .await
                    .map_err(RollbackError::reading)?;
                let live = crate::json::str_at(&project, "/canonical_deployment/id");
                Ok((live == Some(choice.to.as_str())).then(|| choice.to.clone()))
            }
        }
    }
}

#[cfg(test)]
mod tests;
