//! The messages on the `JOBS` queue. One definition, serialised as JSON with a
//! `kind` tag, so that later flows add variants without breaking queued messages.

use serde::Serialize;

use crate::json::FromJson;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromJson)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobMessage {
    /// Route notification row `id` and send its messages (the `TELEGRAM` queue).
    Notify { id: i64 },
    /// Send destination row `id` of a notification, whose wait is over.
    TelegramSend { id: i64 },
    /// Send or edit digest `id` at its slot.
    TelegramDigest { id: i64 },
    /// Bring live message `id` (a deploy job's, preview's or workflow's) up to date.
    TelegramLive { id: i64 },
    /// Process Telegram update `id` (a command or a button press; it is in D1).
    TelegramUpdate { id: i64 },
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
    /// Send the decided review of deployment protection request `id` to GitHub.
    ProtectionReview { id: i64 },
}

impl JobMessage {
    /// Whether it belongs on the `TELEGRAM` queue (notifications, their sends and
    /// digests), which never waits behind deploy steps on `JOBS`.
    pub fn is_telegram(&self) -> bool {
        matches!(
            self,
            JobMessage::Notify { .. }
                | JobMessage::TelegramSend { .. }
                | JobMessage::TelegramDigest { .. }
                | JobMessage::TelegramLive { .. }
                | JobMessage::TelegramUpdate { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_is_tagged() {
        let m = JobMessage::Notify { id: 7 };
        let s = serde_json::to_string(&m).expect("serialises");
        assert_eq!(s, r#"{"kind":"notify","id":7}"#);
        assert_eq!(crate::json::read::<JobMessage>(&s).expect("parses"), m);
    }

    #[test]
    fn every_variant_round_trips() {
        let step = crate::orchestrate::definition::StepId::parse("infra_pr").expect("step id");
        for m in [
            JobMessage::Notify { id: 1 },
            JobMessage::TelegramSend { id: 6 },
            JobMessage::TelegramDigest { id: 7 },
            JobMessage::TelegramLive { id: 8 },
            JobMessage::TelegramUpdate { id: 9 },
            JobMessage::GithubDelivery { id: "d-1".into() },
            JobMessage::DeployStep {
                job_id: 2,
                position: 3,
            },
            JobMessage::Preview { id: 4 },
            JobMessage::WorkflowStep {
                workflow_id: 5,
                step,
            },
            JobMessage::ProtectionReview { id: 9 },
        ] {
            let s = serde_json::to_string(&m).expect("serialises");
            assert_eq!(crate::json::read::<JobMessage>(&s).expect("parses"), m);
        }
    }

    #[test]
    fn unreadable_messages_say_why() {
        let e = |s: &str| {
            crate::json::read::<JobMessage>(s)
                .expect_err("invalid")
                .to_string()
        };
        assert_eq!(e(r#"{"id":1}"#), "missing field `kind`");
        assert_eq!(
            e(r#"{"kind":"lunch","id":1}"#),
            "kind: unknown variant `lunch`, expected one of `notify`, `telegram_send`, \
             `telegram_digest`, `telegram_live`, `telegram_update`, `github_delivery`, `deploy_step`, `preview`, `workflow_step`, `protection_review`"
        );
        assert_eq!(
            e(r#"{"kind":"deploy_step","job_id":1}"#),
            "missing field `position`"
        );
    }
}
