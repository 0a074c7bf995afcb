//! Validating a definition and filling in its templates when a workflow is created.

use super::{Action, Definition, FileChange, StepDef, StepId};
use crate::github::RepoFullName;

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
        let def: Definition =
            crate::json::read_body(json.as_bytes(), "a definition is {\"steps\": [...]}")
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
                        inputs: crate::maps::inserted(
                            inputs.iter().map(|(k, v)| (k.clone(), f(v))),
                        ),
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
            let mine = crate::maps::unique(mine);
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
pub(super) fn safe_path(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 255
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b))
        && p.split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}
