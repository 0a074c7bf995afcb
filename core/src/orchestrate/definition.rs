//! Workflows as data: the definition types (a list of steps with `after`
//! dependencies), their validation, the templates filled in when a workflow is
//! created, the reference "create a service" definition, and the admin request.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::{parse_body, ApiError};
use crate::github::RepoFullName;
use crate::json::{FromJson, Names};

/// A step's id within its definition: `infra_pr`, `await_infra_merge`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, FromJson)]
#[json(try_from = "String")]
#[serde(into = "String")]
pub struct StepId(String);

impl StepId {
    /// Lower-case letters, digits and `_`, starting with a letter, at most 40.
    pub fn parse(s: &str) -> Option<Self> {
        let mut bytes = s.bytes();
        let first_ok = bytes.next().is_some_and(|b| b.is_ascii_lowercase());
        (first_ok
            && s.len() <= 40
            && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
        .then(|| StepId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for StepId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        StepId::parse(&s).ok_or_else(|| format!("{s:?} is not a step id (a-z, 0-9, _)"))
    }
}

impl From<StepId> for String {
    fn from(s: StepId) -> String {
        s.0
    }
}

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

/// A workflow definition: steps run as soon as every step in their `after` is done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromJson)]
#[json(deny_unknown_fields)]
pub struct Definition {
    pub steps: Vec<StepDef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromJson)]
#[json(deny_unknown_fields)]
pub struct StepDef {
    pub id: StepId,
    /// Steps that must be done first; each must come earlier in the list, which
    /// rules out cycles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<StepId>,
    /// Waiting steps only: how long to wait before the workflow fails. Filled in
    /// from the configured default when a workflow is created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_minutes: Option<u32>,
    pub action: Action,
}

/// What a step does. Strings may hold `{name}`, `{team}`, `{type}` and
/// `{template}`, filled in when the workflow is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromJson)]
#[json(deny_unknown_fields)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// Commits `files` on a new branch off the default branch and opens a PR.
    OpenPr {
        repository: String,
        branch: String,
        title: String,
        #[serde(default)]
        body: String,
        files: Vec<FileChange>,
    },
    /// Enables auto-merge (GraphQL `enablePullRequestAutoMerge`) on step `pr`'s PR.
    EnableAutoMerge {
        pr: StepId,
        #[serde(default)]
        merge_method: MergeMethod,
    },
    /// Waits for step `pr`'s PR to be merged; records its merge commit.
    AwaitMerge { pr: StepId },
    /// Waits for a completed run of `workflow` (its path) on the commit step
    /// `merge` recorded, on the default branch; success continues.
    AwaitWorkflow { merge: StepId, workflow: String },
    /// Starts `workflow` (its file name) with `inputs` (`workflow_dispatch`).
    DispatchWorkflow {
        repository: String,
        workflow: String,
        /// The ref to run on; the repository's default branch when absent.
        #[serde(skip_serializing_if = "Option::is_none")]
        git_ref: Option<String>,
        #[serde(default)]
        inputs: BTreeMap<String, String>,
    },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Names)]
#[serde(rename_all = "snake_case")]
pub enum MergeMethod {
    Merge,
    #[default]
    Squash,
    Rebase,
}

impl MergeMethod {
    /// GraphQL's `PullRequestMergeMethod`.
    pub fn graphql(self) -> &'static str {
        match self {
            MergeMethod::Merge => "MERGE",
            MergeMethod::Squash => "SQUASH",
            MergeMethod::Rebase => "REBASE",
        }
    }
}

/// A change to one file of an `open_pr` step's commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromJson)]
#[json(deny_unknown_fields)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum FileChange {
    /// A new file; the step fails if it exists already (the service exists).
    Create { path: String, content: String },
    /// Appends to an existing file (nothing if the text is there already).
    Append { path: String, content: String },
    /// Inserts before the first line containing `marker`.
    InsertBefore {
        path: String,
        marker: String,
        content: String,
    },
}

impl FileChange {
    pub fn path(&self) -> &str {
        match self {
            FileChange::Create { path, .. }
            | FileChange::Append { path, .. }
            | FileChange::InsertBefore { path, .. } => path,
        }
    }

    /// Pure: the file's new content given its current one (`None`: it does not
    /// exist). `Ok(None)` when the change is there already, so a change someone
    /// made by hand is not made twice; `Err` says why it cannot be made.
    pub fn apply(&self, current: Option<&str>) -> Result<Option<String>, String> {
        let path = self.path();
        match (self, current) {
            (FileChange::Create { content, .. }, None) => Ok(Some(content.clone())),
            (FileChange::Create { content, .. }, Some(c)) if c == content => Ok(None),
            (FileChange::Create { .. }, Some(_)) => Err(format!("{path} already exists")),
            (_, None) => Err(format!("{path} does not exist")),
            (FileChange::Append { content, .. }, Some(c))
            | (FileChange::InsertBefore { content, .. }, Some(c))
                if c.contains(content.trim()) =>
            {
                Ok(None)
            }
            (FileChange::Append { content, .. }, Some(c)) => {
                let sep = if c.is_empty() || c.ends_with('\n') {
                    ""
                } else {
                    "\n"
                };
                Ok(Some(format!("{c}{sep}{content}")))
            }
            (
                FileChange::InsertBefore {
                    marker, content, ..
                },
                Some(c),
            ) => {
                let at = c
                    .match_indices(marker.as_str())
                    .next()
                    .map(|(i, _)| c[..i].rfind('\n').map_or(0, |n| n + 1))
                    .ok_or_else(|| format!("{path} has no line containing {marker:?}"))?;
                let sep = if content.ends_with('\n') { "" } else { "\n" };
                Ok(Some(format!("{}{content}{sep}{}", &c[..at], &c[at..])))
            }
        }
    }
}

/// The values templates may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vars {
    pub name: String,
    pub team: String,
    pub service_type: String,
    pub template: String,
}

impl Vars {
    /// Fills in the known placeholders only: file contents are full of other
    /// braces (HCL, JSON, nginx) that must stay as they are.
    pub fn fill(&self, s: &str) -> String {
        s.replace("{name}", &self.name)
            .replace("{team}", &self.team)
            .replace("{type}", &self.service_type)
            .replace("{template}", &self.template)
    }
}

impl Definition {
    /// Parses a definition from JSON (the `ORCHESTRATE_DEFINITION` setting); errors
    /// name the field by its path.
    pub fn parse(json: &str) -> Result<Definition, String> {
        let def: Definition = parse_body(json.as_bytes(), "a definition is {\"steps\": [...]}")
            .map_err(|e| e.to_string())?;
        Ok(def)
    }

    pub fn step(&self, id: &StepId) -> Option<&StepDef> {
        self.steps.iter().find(|s| &s.id == id)
    }

    /// The repository a step acts on or waits in, lower-cased: events are matched
    /// on it and GitHub compares names case-insensitively.
    pub fn repository_of(&self, step: &StepDef) -> Option<String> {
        let mut current = step;
        // References point at earlier steps, so this ends; the bound is a guard.
        for _ in 0..=self.steps.len() {
            match &current.action {
                Action::OpenPr { repository, .. } | Action::DispatchWorkflow { repository, .. } => {
                    return Some(repository.to_ascii_lowercase())
                }
                Action::EnableAutoMerge { pr, .. } | Action::AwaitMerge { pr } => {
                    current = self.step(pr)?
                }
                Action::AwaitWorkflow { merge, .. } => current = self.step(merge)?,
            }
        }
        None
    }

    /// The definition with every template filled in and every waiting step given
    /// a timeout.
    pub fn render(&self, vars: &Vars, default_timeout_minutes: u32) -> Definition {
        let f = |s: &String| vars.fill(s);
        let steps = self
            .steps
            .iter()
            .map(|s| {
                let action = match &s.action {
                    Action::OpenPr {
                        repository,
                        branch,
                        title,
                        body,
                        files,
                    } => Action::OpenPr {
                        repository: f(repository),
                        branch: f(branch),
                        title: f(title),
                        body: f(body),
                        files: files
                            .iter()
                            .map(|c| match c {
                                FileChange::Create { path, content } => FileChange::Create {
                                    path: f(path),
                                    content: f(content),
                                },
                                FileChange::Append { path, content } => FileChange::Append {
                                    path: f(path),
                                    content: f(content),
                                },
                                FileChange::InsertBefore {
                                    path,
                                    marker,
                                    content,
                                } => FileChange::InsertBefore {
                                    path: f(path),
                                    marker: f(marker),
                                    content: f(content),
                                },
                            })
                            .collect(),
                    },
                    Action::AwaitWorkflow { merge, workflow } => Action::AwaitWorkflow {
                        merge: merge.clone(),
                        workflow: f(workflow),
                    },
                    Action::DispatchWorkflow {
                        repository,
                        workflow,
                        git_ref,
                        inputs,
                    } => Action::DispatchWorkflow {
                        repository: f(repository),
                        workflow: f(workflow),
                        git_ref: git_ref.as_ref().map(f),
                        inputs: inputs.iter().map(|(k, v)| (k.clone(), f(v))).collect(),
                    },
                    other => other.clone(),
                };
                let waits = matches!(
                    action,
                    Action::AwaitMerge { .. } | Action::AwaitWorkflow { .. }
                );
                StepDef {
                    id: s.id.clone(),
                    after: s.after.clone(),
                    timeout_minutes: s
                        .timeout_minutes
                        .or(waits.then_some(default_timeout_minutes)),
                    action,
                }
            })
            .collect();
        Definition { steps }
    }

    /// Checks a rendered definition; the error names the field
    /// (`steps[3].action.pr: ...`).
    pub fn validate(&self) -> Result<(), String> {
        if self.steps.is_empty() {
            return Err("steps: a workflow needs at least one step".into());
        }
        // ancestors[i]: every step that step i (transitively) comes after.
        let mut ancestors: Vec<Vec<usize>> = Vec::with_capacity(self.steps.len());
        for (i, step) in self.steps.iter().enumerate() {
            let at = |field: &str| format!("steps[{i}].{field}");
            if self.steps[..i].iter().any(|s| s.id == step.id) {
                return Err(format!(
                    "{}: {:?} is used twice",
                    at("id"),
                    step.id.as_str()
                ));
            }
            let mut mine = Vec::new();
            for (j, dep) in step.after.iter().enumerate() {
                let Some(k) = self.steps[..i].iter().position(|s| &s.id == dep) else {
                    return Err(format!(
                        "{}: {:?} is not a step before this one",
                        at(&format!("after[{j}]")),
                        dep.as_str()
                    ));
                };
                mine.push(k);
                mine.extend_from_slice(&ancestors[k]);
            }
            mine.sort_unstable();
            mine.dedup();
            // A referenced step must be done before this one runs.
            let refers = |field: &str, id: &StepId, kind: &str| -> Result<(), String> {
                let found = mine.iter().any(|&k| {
                    let s = &self.steps[k];
                    &s.id == id
                        && match kind {
                            "open_pr" => matches!(s.action, Action::OpenPr { .. }),
                            _ => matches!(s.action, Action::AwaitMerge { .. }),
                        }
                });
                if found {
                    Ok(())
                } else {
                    Err(format!(
                        "{}: {:?} is not an {kind} step this step comes after",
                        at(field),
                        id.as_str()
                    ))
                }
            };
            let repo = |field: &str, r: &str| {
                RepoFullName::parse(r)
                    .map(drop)
                    .ok_or_else(|| format!("{}: {r:?} is not owner/repo", at(field)))
            };
            match &step.action {
                Action::OpenPr {
                    repository,
                    branch,
                    title,
                    files,
                    ..
                } => {
                    repo("action.repository", repository)?;
                    if !safe_path(branch) {
                        return Err(format!(
                            "{}: {branch:?} is not a branch name",
                            at("action.branch")
                        ));
                    }
                    if title.trim().is_empty() {
                        return Err(format!("{}: must not be empty", at("action.title")));
                    }
                    if files.is_empty() {
                        return Err(format!(
                            "{}: a PR needs at least one file",
                            at("action.files")
                        ));
                    }
                    for (j, file) in files.iter().enumerate() {
                        if !safe_path(file.path()) {
                            return Err(format!(
                                "{}: {:?} is not a relative path of a-z, 0-9, ., _, -, /",
                                at(&format!("action.files[{j}].path")),
                                file.path()
                            ));
                        }
                    }
                }
                Action::EnableAutoMerge { pr, .. } | Action::AwaitMerge { pr } => {
                    refers("action.pr", pr, "open_pr")?;
                }
                Action::AwaitWorkflow { merge, workflow } => {
                    refers("action.merge", merge, "await_merge")?;
                    if !workflow.starts_with(".github/workflows/") || !safe_path(workflow) {
                        return Err(format!(
                            "{}: {workflow:?} is not a path under .github/workflows/",
                            at("action.workflow")
                        ));
                    }
                }
                Action::DispatchWorkflow {
                    repository,
                    workflow,
                    git_ref,
                    ..
                } => {
                    repo("action.repository", repository)?;
                    if workflow.contains('/') || !safe_path(workflow) {
                        return Err(format!(
                            "{}: {workflow:?} is not a workflow file name",
                            at("action.workflow")
                        ));
                    }
                    if git_ref.as_deref().is_some_and(|r| !safe_path(r)) {
                        return Err(format!(
                            "{}: not a branch or tag name",
                            at("action.git_ref")
                        ));
                    }
                }
            }
            ancestors.push(mine);
        }
        Ok(())
    }
}

/// A relative path (or branch name) that needs no escaping in a URL: a-z, 0-9,
/// `.`, `_`, `-`, `/`, no empty, `.` or `..` segment.
fn safe_path(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 255
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b))
        && p.split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
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
    let inputs = [
        ("name", "{name}"),
        ("team", "{team}"),
        ("type", "{type}"),
        ("template", "{template}"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
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
    pub fn parse(body: &[u8], config: &OrchestrateConfig) -> Result<Self, ApiError> {
        #[derive(FromJson)]
        #[serde(rename_all = "camelCase")]
        #[json(deny_unknown_fields)]
        struct Body {
            repository_name: String,
            service_type: String,
            owning_team: String,
        }
        let raw: Body = parse_body(
            body,
            "body must be {\"repositoryName\", \"serviceType\", \"owningTeam\"}",
        )?;
        let repository_name = ServiceName::parse(&raw.repository_name).ok_or_else(|| {
            ApiError::BadRequest("repositoryName must match ^[a-z][a-z0-9-]{1,38}$".into())
        })?;
        if !config.service_templates.contains_key(&raw.service_type) {
            let known: Vec<&str> = config
                .service_templates
                .keys()
                .map(String::as_str)
                .collect();
            return Err(ApiError::BadRequest(format!(
                "serviceType must be one of: {}",
                known.join(", ")
            )));
        }
        let owning_team = TeamSlug::parse(&raw.owning_team).ok_or_else(|| {
            ApiError::BadRequest(
                "owningTeam must be a team slug (a-z, 0-9, - and _, at most 64)".into(),
            )
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
