//! Multi-repository orchestration workflows (creating a service across the infra,
//! app-config, nginx-upstreams and service-definition repositories, then the
//! boilerplate workflow). This module owns the state machines and the pure engine:
//! which steps are ready, how an incoming event moves a step (forward only, so a
//! late or duplicated event changes nothing), and when a wait has timed out.
//!
//! [`definition`] holds workflows as data, [`store`] the SQL, [`github`] the calls
//! a step makes, [`runner`] the effects, [`message`] the Telegram text.

pub mod definition;
pub mod drive;
pub mod github;
pub mod message;
pub mod runner;
pub mod status;
pub mod store;

pub use drive::{on_event, run_step};
pub use status::{StepKind, StepStatus, WorkflowStatus};
pub use store::Move;

use serde::Serialize;

use crate::github::events::{PullRequestEvent, WorkflowRunEvent};
use crate::time::Timestamp;
use definition::{Action, Definition, StepDef, StepId};
use store::{EventRecord, StepRecord, WorkflowRun};

impl StepRecord {
    pub fn is_done(&self) -> bool {
        !matches!(self.status, StepStatus::Failed | StepStatus::Skipped)
            && self.status >= self.kind.done_at()
    }
}

/// A step of a workflow, as the queue message that runs it names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepRef {
    pub workflow_id: i64,
    pub step: StepId,
}

/// Where a workflow stands, decided from its definition and its steps' states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Still running; these pending steps have everything they come after done.
    Continue(Vec<StepId>),
    Succeeded,
    Failed(String),
}

fn record<'a>(steps: &'a [StepRecord], id: &StepId) -> Option<&'a StepRecord> {
    steps.iter().find(|s| &s.id == id)
}

/// Whether every step `step` comes after is done.
pub fn deps_done(step: &StepDef, steps: &[StepRecord]) -> bool {
    step.after
        .iter()
        .all(|d| record(steps, d).is_some_and(StepRecord::is_done))
}

/// Pure: where the workflow stands. A failed step fails it (the steps after it
/// never run); all steps done is success.
pub fn progress(def: &Definition, steps: &[StepRecord]) -> Progress {
    let mut ready = Vec::new();
    let mut all_done = true;
    for step in &def.steps {
        let Some(rec) = record(steps, &step.id) else {
            return Progress::Failed(format!(
                "step {} was never stored: the workflow was interrupted while being created",
                step.id.as_str()
            ));
        };
        if rec.status == StepStatus::Failed {
            let error = rec.error.as_deref().unwrap_or("failed");
            return Progress::Failed(format!("{}: {error}", step.id.as_str()));
        }
        all_done &= rec.is_done();
        if rec.status == StepStatus::Pending && deps_done(step, steps) {
            ready.push(step.id.clone());
        }
    }
    if all_done {
        Progress::Succeeded
    } else {
        Progress::Continue(ready)
    }
}

/// Pure: moves that follow from other steps' states: an `await_merge` step that
/// is waiting completes once its PR step has recorded the merge (whichever of the
/// two got there first).
pub fn derived_moves(def: &Definition, steps: &[StepRecord]) -> Vec<(StepId, Move)> {
    def.steps
        .iter()
        .filter_map(|s| {
            let Action::AwaitMerge { pr } = &s.action else {
                return None;
            };
            let me = record(steps, &s.id)?;
            let pr_step = record(steps, pr)?;
            (me.status == StepStatus::Waiting && pr_step.status == StepStatus::Merged).then(|| {
                let mv = Move {
                    to: StepStatus::Merged,
                    pr: pr_step.pr.clone(),
                    merged_sha: pr_step.merged_sha.clone(),
                    event: pr_step.events.last().cloned(),
                    ..Move::default()
                };
                (s.id.clone(), mv)
            })
        })
        .collect()
}

/// Pure: how a `pull_request` event moves an `open_pr` step that raised that PR.
/// Closed and merged records the merge commit; closed without merging fails the
/// step (the workflow cannot complete without it). Other actions move nothing.
pub fn pr_move(step: &StepRecord, ev: &PullRequestEvent, event: EventRecord) -> Option<Move> {
    if step.kind != StepKind::OpenPr || ev.action != "closed" {
        return None;
    }
    if ev.merged {
        let sha = ev.merge_commit_sha.as_ref()?;
        Some(Move {
            to: StepStatus::Merged,
            merged_sha: Some(sha.as_str().to_owned()),
            event: Some(event),
            ..Move::default()
        })
    } else {
        Some(Move::failed(
            format!("PR #{} was closed without being merged", ev.number),
            Some(event),
        ))
    }
}

/// Pure: how a `workflow_run` event moves an `await_workflow` step: a completed
/// run of the step's workflow on the merged commit, on the branch the PR merged
/// into. Success is done; any other conclusion fails the step.
pub fn run_move(step: &StepRecord, ev: &WorkflowRunEvent, event: EventRecord) -> Option<Move> {
    let matches = step.kind == StepKind::AwaitWorkflow
        && step.status == StepStatus::Waiting
        && ev.action == "completed"
        && step
            .repository
            .as_deref()
            .is_some_and(|r| r.eq_ignore_ascii_case(ev.repository.as_str()))
        && step.merged_sha.as_deref() == Some(ev.head_sha.as_str())
        && step.workflow_path.is_some()
        && ev.path == step.workflow_path
        // The merged commit can also be the head of another branch; only the run on
        // the branch the PR merged into is the apply we wait for.
        && match (&step.pr, &ev.head_branch) {
            (Some(pr), Some(branch)) => pr.base.as_deref().is_none_or(|b| b == branch),
            _ => true,
        };
    if !matches {
        return None;
    }
    let run = WorkflowRun {
        name: ev.name.clone(),
        id: ev.id,
        html_url: ev.html_url.clone(),
        created_at: ev.created_at.clone(),
        updated_at: ev.updated_at.clone(),
        path: ev.path.clone(),
        conclusion: ev.conclusion.clone(),
    };
    let conclusion = ev.conclusion.as_deref().unwrap_or("no conclusion");
    let mut mv = if conclusion == "success" {
        Move::to(StepStatus::Succeeded)
    } else {
        Move::failed(
            format!(
                "workflow {} concluded {conclusion}{}",
                ev.name.as_deref().or(ev.path.as_deref()).unwrap_or("run"),
                ev.html_url
                    .as_deref()
                    .map(|u| format!(": {u}"))
                    .unwrap_or_default()
            ),
            None,
        )
    };
    mv.run = Some(run);
    mv.event = Some(event);
    Some(mv)
}

/// Pure: the error of a waiting step whose deadline has passed, else `None`.
pub fn timed_out(step: &StepRecord, now: Timestamp) -> Option<String> {
    let deadline = step.deadline?;
    if step.status != StepStatus::Waiting || deadline > now.millis() {
        return None;
    }
    let minutes = (deadline - step.waiting_since.unwrap_or(deadline)) / 60_000;
    let repo = step.repository.as_deref().unwrap_or("?");
    let what = match (step.kind, &step.pr) {
        (StepKind::AwaitMerge, Some(pr)) => format!("{repo}#{} to be merged", pr.number),
        (StepKind::AwaitWorkflow, _) => format!(
            "{} in {repo} to complete on {}",
            step.workflow_path.as_deref().unwrap_or("the workflow"),
            step.merged_sha
                .as_deref()
                .map(|s| &s[..s.len().min(7)])
                .unwrap_or("the merged commit")
        ),
        _ => format!("{} in {repo}", step.kind.as_str()),
    };
    Some(format!(
        "timed out after {minutes} minutes waiting for {what}"
    ))
}

#[cfg(test)]
mod tests;
