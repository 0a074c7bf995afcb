//! Approvals: a deploy job of an app with `approval` waits in its
//! `awaiting_approval` step, before anything is deployed, until someone decides.
//! [`decide`] is the one way a decision is made, from the admin API
//! (`POST /api/jobs/{id}/approve|reject`) or a chat button: judged from the job's
//! state ([`gate::judge`], pure) and recorded in the approval step's result by one
//! conditional update, which also makes the step claimable; the step is enqueued,
//! and its run (claimed as any step's) acts on the decision: done, so the deploy
//! goes on, or failed "rejected by …", so the job fails (nothing deployed, nothing
//! reverted). A lost message is sent again by the sweep. The cron fails a wait past its deadline with
//! "approval timed out" ([`super::sweep`]); a newer push supersedes a job still
//! waiting ([`super::store::JobStore::supersede`]).

pub mod gate;

pub use gate::{Approval, ApprovalError, Decision};

use super::store::{Job, JobStore};
use crate::audit::{AuditStore, Entry, Outcome, SubjectKind};
use crate::flow::{Deps, Ports};
use crate::jobs::JobMessage;
use crate::ports::{Queue, StoreError};
use crate::time::Timestamp;

/// A decision that holds: the one just made, or the same one made before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    pub job_id: i64,
    /// `Approved` or `Rejected`, with who and when (the first decider's, for a
    /// repeat).
    pub approval: Approval,
    /// `false` when the same decision had been made before (a double tap): this
    /// call changed nothing.
    pub acted: bool,
    /// What failed after the decision was recorded (the step's queue message),
    /// for the log; the cron's sweep sends it again.
    pub problem: Option<String>,
}

fn store(what: &'static str) -> impl Fn(StoreError) -> ApprovalError {
    move |error| ApprovalError::Store { what, error }
}

/// Approves or rejects job `job_id` on behalf of `by` (who decided, as the job and
/// its message show it: "admin API", a Telegram user). Approving enqueues the step
/// after the approval; rejecting fails the job "rejected by {by}". A repeat of the
/// decision already made acts once (`acted: false`); a decision the job's state
/// does not allow is an [`ApprovalError`] saying why (superseded by a newer push,
/// timed out, already decided the other way, not awaiting approval).
pub async fn decide<P: Ports>(
    deps: &Deps<'_, P>,
    job_id: i64,
    decision: Decision,
    by: &str,
    now: Timestamp,
) -> Result<Decided, ApprovalError> {
    let jobs = JobStore::new(deps.sql);
    let by = gate::decider(by);
    // Twice at most: a decision that loses a race is judged again on what won.
    for _ in 0..2 {
        let job = jobs
            .get(job_id)
            .await
            .map_err(store("job"))?
            .ok_or(ApprovalError::NotFound { job: job_id })?;
        let newer = jobs
            .newer_job(&job.app, &job.environment, job.id)
            .await
            .map_err(store("newer job"))?;
        let position = match gate::judge(&job, newer, decision, now)? {
            gate::Verdict::Already(approval) => {
                return Ok(Decided {
                    job_id,
                    approval,
                    acted: false,
                    problem: None,
                })
            }
            gate::Verdict::Decide { position } => position,
        };
        if !jobs
            .decide_step(
                job_id,
                position,
                (decision.as_str(), &by),
                now,
                deps.config.step_claims(),
            )
            .await
            .map_err(store("decision"))?
        {
            continue;
        }
        // The decision wakes the step; its run moves the job on.
        let problem = deps
            .queue
            .send(&JobMessage::DeployStep { job_id, position })
            .await
            .err()
            .map(|e| format!("job {job_id} step {position}: {e}"));
        let (by, at) = (by.clone(), now.millis());
        let approval = if decision == Decision::Approve {
            Approval::Approved { by, at }
        } else {
            Approval::Rejected { by, at }
        };
        return Ok(Decided {
            job_id,
            approval,
            acted: true,
            problem,
        });
    }
    Err(ApprovalError::Changed { job: job_id })
}

/// Who the admin API's decisions are by.
pub const ADMIN_API: &str = "admin API";

/// A decision through the admin API (`POST /api/jobs/{id}/approve|reject`), left in
/// the job's audit trail as the admin API's: done, or refused and why (a repeat of
/// the decision made is refused as "already …": it acted once). A chat button's
/// press is recorded by the chat-ops dispatcher instead.
pub async fn decide_for_admin<P: Ports>(
    deps: &Deps<'_, P>,
    job_id: i64,
    decision: Decision,
    now: Timestamp,
) -> Result<Decided, ApprovalError> {
    let decided = decide(deps, job_id, decision, ADMIN_API, now).await;
    let (result, detail) = match &decided {
        Ok(d) if d.acted => (Outcome::Done, None),
        Ok(_) => (
            Outcome::Refused,
            Some(format!("already {}", decision.as_str())),
        ),
        Err(ApprovalError::NotFound { .. } | ApprovalError::Store { .. }) => return decided,
        Err(e) => (Outcome::Refused, Some(e.to_string())),
    };
    let entry = Entry {
        subject_kind: SubjectKind::Job,
        subject_id: job_id.to_string(),
        action: decision.action().to_owned(),
        result,
        detail,
        actor: ADMIN_API.into(),
        user_id: None,
        chat_id: None,
        update_id: None,
        at: now.millis(),
    };
    AuditStore::new(deps.sql)
        .record(&entry)
        .await
        .map_err(store("audit"))?;
    decided
}

/// A job as `GET /api/jobs/{id}` shows it: its fields and steps, and for a job of
/// an app with approval, `approval`: what it says now (`awaiting` with its
/// `deadline`, `approved`/`rejected` with `by` and `at`, `timed_out`, …).
pub fn view(job: &Job) -> serde_json::Value {
    let mut v = serde_json::to_value(job).unwrap_or_default();
    if let (Some(fields), Some(approval)) = (v.as_object_mut(), gate::of(job)) {
        fields.insert("approval".into(), approval.to_json());
    }
    v
}
