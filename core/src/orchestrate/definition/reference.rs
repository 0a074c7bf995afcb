//! The reference "create a service" workflow, the settings it is built from, and
//! the admin request that starts one.

use std::collections::BTreeMap;

use serde::Serialize;

use super::template::{safe_path, Vars};
use super::{Action, Definition, FileChange, MergeMethod, StepDef, StepId};
use crate::github::RepoFullName;
use crate::json::FromJson;

/// The new service's repository name: `^[a-z][a-z0-9-]{1,38}$`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ServiceName(String);

impl ServiceName {
    pub fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        (b.len() >= 2
            && b.len() <= 39
            && b[0].is_ascii_lowercase()
            && b[1..]
                .iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-'))
        .then(|| ServiceName(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The owning team, as a GitHub team slug. Restricted to characters that need no
/// escaping in the files the templates write (HCL, YAML, JSON, nginx).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct TeamSlug(String);

impl TeamSlug {
    pub fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        (!b.is_empty()
            && b.len() <= 64
            && b[0].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"-_".contains(c)))
        .then(|| TeamSlug(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Default `ORCHESTRATE_WAIT_TIMEOUT_MINUTES`: how long a waiting step (a merge, a
/// workflow run) may wait. An hour covers required reviews by bots and a slow
/// Terraform apply; a human review takes longer and should be raised with a larger
/// value.
pub const DEFAULT_WAIT_TIMEOUT_MINUTES: u32 = 60;
/// Default `ORCHESTRATE_INFRA_WORKFLOW`.
pub const DEFAULT_INFRA_WORKFLOW: &str = ".github/workflows/apply.yml";
/// Default `ORCHESTRATE_BOILERPLATE_WORKFLOW`.
pub const DEFAULT_BOILERPLATE_WORKFLOW: &str = "create-service.yml";

/// The settings the orchestration reads, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrchestrateConfig {
    /// `ORCHESTRATE_INFRA_REPO`, default `{owner}/infra`.
    pub infra_repo: RepoFullName,
    /// `ORCHESTRATE_INFRA_WORKFLOW`: the path of the infra repository's apply
    /// workflow, default `.github/workflows/apply.yml`.
    pub infra_workflow: String,
    /// `ORCHESTRATE_APP_CONFIG_REPO`, default `{owner}/app-config`.
    pub app_config_repo: RepoFullName,
    /// `ORCHESTRATE_NGINX_REPO`, default `{owner}/nginx-upstreams`.
    pub nginx_repo: RepoFullName,
    /// `ORCHESTRATE_SERVICE_DEFINITION_REPO`, default `{owner}/service-definitions`.
    pub service_definition_repo: RepoFullName,
    /// `ORCHESTRATE_BOILERPLATE_REPO`, default `{owner}/service-boilerplate`.
    pub boilerplate_repo: RepoFullName,
    /// `ORCHESTRATE_BOILERPLATE_WORKFLOW`: the workflow file that creates and
    /// templates the new repository, default `create-service.yml`.
    pub boilerplate_workflow: String,
    /// `SERVICE_TEMPLATES`: `type=template` pairs, comma-separated; the accepted
    /// `serviceType`s and the boilerplate template each uses. No default.
    pub service_templates: BTreeMap<String, String>,
    /// `ORCHESTRATE_WAIT_TIMEOUT_MINUTES`, default 60.
    pub wait_timeout_minutes: u32,
    /// `ORCHESTRATE_DEFINITION`: a definition (JSON) replacing the default one.
    pub definition: Option<Definition>,
}

impl OrchestrateConfig {
    /// Reads the settings; `ORCHESTRATE_OWNER` (the GitHub organization the
    /// repositories live in, unless a setting names `owner/repo`) and
    /// `SERVICE_TEMPLATES` are required. The error names the setting.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let owner = get("ORCHESTRATE_OWNER").ok_or("ORCHESTRATE_OWNER is not configured")?;
        let repo = |name: &str, default: &str| -> Result<RepoFullName, String> {
            let value = get(name).unwrap_or_else(|| default.to_owned());
            let full = if value.contains('/') {
                value
            } else {
                format!("{owner}/{value}")
            };
            RepoFullName::parse(&full).ok_or_else(|| format!("{name}: {full:?} is not owner/repo"))
        };
        let templates = get("SERVICE_TEMPLATES").ok_or("SERVICE_TEMPLATES is not configured")?;
        let mut service_templates = BTreeMap::new();
        for pair in templates
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let (ty, template) = pair
                .split_once('=')
                .map(|(a, b)| (a.trim(), b.trim()))
                .filter(|(a, b)| TeamSlug::parse(a).is_some() && safe_path(b))
                .ok_or_else(|| format!("SERVICE_TEMPLATES: {pair:?} is not type=template"))?;
            service_templates.insert(ty.to_owned(), template.to_owned());
        }
        let wait_timeout_minutes = match get("ORCHESTRATE_WAIT_TIMEOUT_MINUTES") {
            None => DEFAULT_WAIT_TIMEOUT_MINUTES,
            Some(v) => v
                .parse()
                .ok()
                .filter(|m| *m > 0)
                .ok_or("ORCHESTRATE_WAIT_TIMEOUT_MINUTES must be a whole number of minutes")?,
        };
        let definition = get("ORCHESTRATE_DEFINITION")
            .map(|json| Definition::parse(&json))
            .transpose()
            .map_err(|e| format!("ORCHESTRATE_DEFINITION: {e}"))?;
        let config = OrchestrateConfig {
            infra_repo: repo("ORCHESTRATE_INFRA_REPO", "infra")?,
            infra_workflow: get("ORCHESTRATE_INFRA_WORKFLOW")
                .unwrap_or_else(|| DEFAULT_INFRA_WORKFLOW.to_owned()),
            app_config_repo: repo("ORCHESTRATE_APP_CONFIG_REPO", "app-config")?,
            nginx_repo: repo("ORCHESTRATE_NGINX_REPO", "nginx-upstreams")?,
            service_definition_repo: repo(
                "ORCHESTRATE_SERVICE_DEFINITION_REPO",
                "service-definitions",
            )?,
            boilerplate_repo: repo("ORCHESTRATE_BOILERPLATE_REPO", "service-boilerplate")?,
            boilerplate_workflow: get("ORCHESTRATE_BOILERPLATE_WORKFLOW")
                .unwrap_or_else(|| DEFAULT_BOILERPLATE_WORKFLOW.to_owned()),
            service_templates,
            wait_timeout_minutes,
            definition,
        };
        // Fail at configuration time, not on the first request.
        let sample = Vars {
            name: "example".into(),
            team: "team".into(),
            service_type: "type".into(),
            template: "template".into(),
        };
        config
            .definition()
            .render(&sample, config.wait_timeout_minutes)
            .validate()
            .map_err(|e| format!("orchestration definition: {e}"))?;
        Ok(config)
    }

    /// The create-a-service definition in force: the configured one, else the default.
    pub fn definition(&self) -> Definition {
        self.definition
            .clone()
            .unwrap_or_else(|| default_create_service(self))
    }
}

fn id(s: &str) -> StepId {
    // The ids below are literals that satisfy StepId::parse; a test checks them.
    StepId(s.to_owned())
}

fn open_pr(repo: &RepoFullName, what: &str, files: Vec<FileChange>) -> Action {
    Action::OpenPr {
        repository: repo.as_str().to_owned(),
        branch: "create-service/{name}".into(),
        title: format!("Create service {{name}}: {what}"),
        body: format!(
            "Opened by edge-notifier for the new service `{{name}}` ({{type}}, owned by `{{team}}`): {what}."
        ),
        files,
    }
}

fn step(name: &str, after: &[&str], action: Action) -> StepDef {
    StepDef {
        id: id(name),
        after: after.iter().map(|a| id(a)).collect(),
        timeout_minutes: None,
        action,
    }
}

fn auto_merge(pr: &str) -> Action {
    Action::EnableAutoMerge {
        pr: id(pr),
        merge_method: MergeMethod::Squash,
    }
}

/// The reference "create a service" order, on the configured repositories: open
/// the infra PR and enable its auto-merge; open the app-config and nginx-upstreams
/// PRs without auto-merge; await the infra merge, then its apply run on the merged
/// commit; open the service-definition PR; enable auto-merge on app-config, service
/// definition and nginx-upstreams; dispatch the boilerplate workflow that creates
/// and templates the new repository.
pub fn default_create_service(config: &OrchestrateConfig) -> Definition {
    let infra_files = vec![FileChange::Create {
        path: "services/{name}/main.tf".into(),
        content: "module \"{name}\" {\n  source = \"../../modules/service\"\n  name   = \"{name}\"\n  team   = \"{team}\"\n  type   = \"{type}\"\n}\n".into(),
    }];
    let app_config_files = vec![FileChange::Create {
        path: "services/{name}.yaml".into(),
        content: "name: {name}\nteam: {team}\ntype: {type}\n".into(),
    }];
    let nginx_files = vec![FileChange::Append {
        path: "upstreams.conf".into(),
        content: "upstream {name} {\n  server {name}.internal:8080;\n}\n".into(),
    }];
    let definition_files = vec![FileChange::Create {
        path: "services/{name}.json".into(),
        content: "{\n  \"name\": \"{name}\",\n  \"team\": \"{team}\",\n  \"type\": \"{type}\",\n  \"template\": \"{template}\"\n}\n".into(),
    }];
    let inputs = crate::maps::inserted(
        [
            ("name", "{name}"),
            ("team", "{team}"),
            ("type", "{type}"),
            ("template", "{template}"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    Definition {
        steps: vec![
            step(
                "infra_pr",
                &[],
                open_pr(&config.infra_repo, "infrastructure", infra_files),
            ),
            step("infra_auto_merge", &["infra_pr"], auto_merge("infra_pr")),
            step(
                "app_config_pr",
                &["infra_auto_merge"],
                open_pr(&config.app_config_repo, "app config", app_config_files),
            ),
            step(
                "nginx_pr",
                &["infra_auto_merge"],
                open_pr(&config.nginx_repo, "nginx upstream", nginx_files),
            ),
            step(
                "infra_merged",
                &["app_config_pr", "nginx_pr"],
                Action::AwaitMerge { pr: id("infra_pr") },
            ),
            step(
                "infra_applied",
                &["infra_merged"],
                Action::AwaitWorkflow {
                    merge: id("infra_merged"),
                    workflow: config.infra_workflow.clone(),
                },
            ),
            step(
                "service_definition_pr",
                &["infra_applied"],
                open_pr(
                    &config.service_definition_repo,
                    "service definition",
                    definition_files,
                ),
            ),
            step(
                "app_config_auto_merge",
                &["service_definition_pr"],
                auto_merge("app_config_pr"),
            ),
            step(
                "service_definition_auto_merge",
                &["service_definition_pr"],
                auto_merge("service_definition_pr"),
            ),
            step(
                "nginx_auto_merge",
                &["service_definition_pr"],
                auto_merge("nginx_pr"),
            ),
            step(
                "boilerplate",
                &[
                    "app_config_auto_merge",
                    "service_definition_auto_merge",
                    "nginx_auto_merge",
                ],
                Action::DispatchWorkflow {
                    repository: config.boilerplate_repo.as_str().to_owned(),
                    workflow: config.boilerplate_workflow.clone(),
                    git_ref: None,
                    inputs,
                },
            ),
        ],
    }
}

/// A `POST /api/services` body that is refused (a 400); the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ServiceError(pub String);

impl From<crate::json::BadBody> for ServiceError {
    fn from(e: crate::json::BadBody) -> Self {
        ServiceError(e.0)
    }
}

/// `POST /api/services`, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRequest {
    pub repository_name: ServiceName,
    pub service_type: String,
    pub owning_team: TeamSlug,
}

impl ServiceRequest {
    /// Parses and validates the body; a 400 names the field.
    pub fn parse(body: &[u8], config: &OrchestrateConfig) -> Result<Self, ServiceError> {
        #[derive(FromJson)]
        #[serde(rename_all = "camelCase")]
        #[json(deny_unknown_fields)]
        struct Body {
            repository_name: String,
            service_type: String,
            owning_team: String,
        }
        let raw: Body = crate::json::read_body(
            body,
            "body must be {\"repositoryName\", \"serviceType\", \"owningTeam\"}",
        )?;
        let repository_name = ServiceName::parse(&raw.repository_name).ok_or_else(|| {
            ServiceError("repositoryName must match ^[a-z][a-z0-9-]{1,38}$".into())
        })?;
        if !config.service_templates.contains_key(&raw.service_type) {
            let known: Vec<&str> = config
                .service_templates
                .keys()
                .map(String::as_str)
                .collect();
            return Err(ServiceError(format!(
                "serviceType must be one of: {}",
                known.join(", ")
            )));
        }
        let owning_team = TeamSlug::parse(&raw.owning_team).ok_or_else(|| {
            ServiceError("owningTeam must be a team slug (a-z, 0-9, - and _, at most 64)".into())
        })?;
        Ok(ServiceRequest {
            repository_name,
            service_type: raw.service_type,
            owning_team,
        })
    }

    pub fn vars(&self, config: &OrchestrateConfig) -> Vars {
        Vars {
            name: self.repository_name.as_str().to_owned(),
            team: self.owning_team.as_str().to_owned(),
            template: config
                .service_templates
                .get(&self.service_type)
                .cloned()
                .unwrap_or_default(),
            service_type: self.service_type.clone(),
        }
    }
}
