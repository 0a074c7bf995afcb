//! Where a workflow and its steps stand, and which kind of step each action is: the
//! states the store keeps and the engine moves forward.

use crate::json::Names;

use super::definition::Action;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Names)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowStatus {
    Running,
    Succeeded,
    Failed,
}

/// A step's status, in the order it may move (declaration order); `succeeded`,
/// `failed` and `skipped` are terminal. Each kind is done at its own status
/// ([`StepKind::done_at`]); an `open_pr` step goes on to mirror its PR
/// (`auto_merge_enabled`, `merged`) after it is done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Names)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    #[default]
    Pending,
    /// Claimed by an attempt (or released between attempts of a retry).
    Running,
    /// Waiting for an event (a merge, a workflow run).
    Waiting,
    Raised,
    AutoMergeEnabled,
    Merged,
    Succeeded,
    Failed,
    Skipped,
}

impl StepStatus {
    pub const ALL: [StepStatus; 9] = [
        StepStatus::Pending,
        StepStatus::Running,
        StepStatus::Waiting,
        StepStatus::Raised,
        StepStatus::AutoMergeEnabled,
        StepStatus::Merged,
        StepStatus::Succeeded,
        StepStatus::Failed,
        StepStatus::Skipped,
    ];

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            StepStatus::Succeeded | StepStatus::Failed | StepStatus::Skipped
        )
    }

    /// The statuses a move to `self` may start from: any earlier, non-terminal
    /// one. Everything else is a late or duplicated move and changes nothing.
    pub fn allowed_from(self) -> Vec<StepStatus> {
        Self::ALL
            .into_iter()
            .filter(|s| !s.is_terminal() && *s < self)
            // Skipping is for steps that have done nothing yet: a running step's
            // effect (a PR raised) must still be recorded when it ends.
            .filter(|s| {
                self != StepStatus::Skipped
                    || matches!(s, StepStatus::Pending | StepStatus::Waiting)
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Names)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    OpenPr,
    EnableAutoMerge,
    AwaitMerge,
    AwaitWorkflow,
    DispatchWorkflow,
}

impl StepKind {
    pub fn of(action: &Action) -> StepKind {
        match action {
            Action::OpenPr { .. } => StepKind::OpenPr,
            Action::EnableAutoMerge { .. } => StepKind::EnableAutoMerge,
            Action::AwaitMerge { .. } => StepKind::AwaitMerge,
            Action::AwaitWorkflow { .. } => StepKind::AwaitWorkflow,
            Action::DispatchWorkflow { .. } => StepKind::DispatchWorkflow,
        }
    }

    /// The status at which a step of this kind is done (its dependents may run).
    pub fn done_at(self) -> StepStatus {
        match self {
            StepKind::OpenPr => StepStatus::Raised,
            StepKind::EnableAutoMerge => StepStatus::AutoMergeEnabled,
            StepKind::AwaitMerge => StepStatus::Merged,
            StepKind::AwaitWorkflow | StepKind::DispatchWorkflow => StepStatus::Succeeded,
        }
    }
}
