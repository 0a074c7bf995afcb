//! Workflows as data. This module holds the schema: the definition types (a list of
//! steps with `after` dependencies) and how each is read and written. [`template`]
//! validates a definition and fills in its templates when a workflow is created;
//! [`reference`] holds the reference "create a service" definition, the settings it
//! is built from, and the admin request that starts one.

mod reference;
mod template;

pub use reference::{
    default_create_service, OrchestrateConfig, ServiceError, ServiceName, ServiceRequest, TeamSlug,
    DEFAULT_BOILERPLATE_WORKFLOW, DEFAULT_INFRA_WORKFLOW, DEFAULT_WAIT_TIMEOUT_MINUTES,
};
pub use template::Vars;

use std::collections::BTreeMap;

use serde::Serialize;

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
