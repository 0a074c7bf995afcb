//! The messages on the `JOBS` queue. One definition, serialised as JSON with a
//! `kind` tag, so that later flows add variants without breaking queued messages.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobMessage {
    /// Send the Telegram message for notification row `id`.
    Notify { id: i64 },
    /// Process the recorded GitHub delivery `id` (its event is in D1).
    GithubDelivery { id: String },
    /// Run step `position` of deploy job `job_id`.
    DeployStep { job_id: i64, position: i64 },
    /// Bring preview `id` to what its pull request wants.
    Preview { id: i64 },
    /// Run step `step` of orchestration workflow `workflow_id`.
    WorkflowStep {
        workflow_id: i64,
        step: crate::orchestrate::definition::StepId,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_is_tagged() {
        let m = JobMessage::Notify { id: 7 };
        let s = serde_json::to_string(&m).expect("serialises");
        assert_eq!(s, r#"{"kind":"notify","id":7}"#);
        assert_eq!(crate::json::from_str::<JobMessage>(&s).expect("parses"), m);
    }
}
