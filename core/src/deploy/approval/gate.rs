//! The approval step's rules, pure: what a job's approval says now ([`of`]), what
//! a run of its step does ([`wait`]: wait until the deadline, or act on the
//! decision recorded in its result), that nothing after it runs until it is
//! approved ([`holds`]), and whether a decision may be made ([`judge`]). The doing
//! is in [`super::decide`] and the pipeline.

use serde_json::{json, Value};

use crate::apps::{ApprovalSettings, DEFAULT_APPROVAL_TIMEOUT_MINUTES};
use crate::deploy::store::{Job, Step};
use crate::deploy::{JobStatus, StepName, StepOutcome, StepState};
use crate::ports::StoreError;
use crate::time::Timestamp;

/// The error a job whose approval timed out fails with.
pub const TIMED_OUT: &str = "approval timed out";

/// Who decided is kept to this many characters (a Telegram name is at most 64).
pub const MAX_DECIDER_CHARS: usize = 128;

/// A decision on a job awaiting approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject,
}

impl Decision {
    /// `approved` or `rejected`, as the step's result records it.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approved",
            Decision::Reject => "rejected",
        }
    }

    /// `approve` or `reject`, as the audit trail and the chat buttons name it.
    pub fn action(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Reject => "reject",
        }
    }
}

/// What a job's approval says now, as `GET /api/jobs/{id}` (`approval`) and the
/// Telegram message show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approval {
    /// The job waits for the app's running job; it awaits approval once it starts.
    Required,
    /// Waiting for a decision, until `deadline` (set when the step first waits).
    Awaiting {
        deadline: Option<i64>,
    },
    Approved {
        by: String,
        at: i64,
    },
    Rejected {
        by: String,
        at: i64,
    },
    TimedOut {
        at: Option<i64>,
    },
    /// A newer push superseded it before anyone decided.
    Cancelled,
    /// The step failed otherwise (its app was deleted); the job's error says why.
    Failed {
        error: Option<String>,
    },
}

impl Approval {
    /// Its JSON: `{"state": "awaiting", "deadline"}`, `{"state": "approved", "by",
    /// "at"}`, … Built by hand: a derived tagged `Serialize`, or `json!` per
    /// variant, costs the upload more than this one shape is worth.
    pub fn to_json(&self) -> Value {
        let (state, by, at, error) = match self {
            Approval::Required => ("required", None, None, None),
            Approval::Awaiting { deadline } => ("awaiting", None, *deadline, None),
            Approval::Approved { by, at } => ("approved", Some(by), Some(*at), None),
            Approval::Rejected { by, at } => ("rejected", Some(by), Some(*at), None),
            Approval::TimedOut { at } => ("timed_out", None, *at, None),
            Approval::Cancelled => ("cancelled", None, None, None),
            Approval::Failed { error } => ("failed", None, None, error.as_ref()),
        };
        let mut fields = serde_json::Map::new();
        fields.insert("state".into(), state.into());
        let time = if state == "awaiting" {
            "deadline"
        } else {
            "at"
        };
        for (key, value) in [
            ("by", by.map(|b| Value::from(b.as_str()))),
            (time, at.map(Value::from)),
            ("error", error.map(|e| Value::from(e.as_str()))),
        ] {
            if let Some(value) = value {
                fields.insert(key.into(), value);
            }
        }
        Value::Object(fields)
    }
}

/// A decision that cannot be made, and why; all but `NotFound` and `Store` are
/// conflicts with the job's state (409s).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalError {
    #[error("job {job} not found")]
    NotFound { job: i64 },
    #[error("job {job} needs no approval")]
    NotRequired { job: i64 },
    #[error("job {job} has not started: it awaits approval once the app's running job is done")]
    NotStarted { job: i64 },
    #[error("job {job} was superseded by job {newer}, a newer push")]
    Superseded { job: i64, newer: i64 },
    #[error("job {job} was already {} by {by}", decision.as_str())]
    AlreadyDecided {
        job: i64,
        decision: Decision,
        by: String,
    },
    #[error("job {job}: {TIMED_OUT}")]
    TimedOut { job: i64 },
    #[error("job {job} is {}, not awaiting approval", status.as_str())]
    NotAwaiting { job: i64, status: JobStatus },
    /// The step was held by a run (it had just started waiting) or moved meanwhile.
    #[error("job {job} changed while the decision was made; try again")]
    Changed { job: i64 },
    #[error("{what}: {error}")]
    Store {
        what: &'static str,
        error: StoreError,
    },
}

/// The job's approval step, if it has one.
pub fn step_of(job: &Job) -> Option<&Step> {
    job.steps
        .iter()
        .find(|s| s.name == StepName::AwaitingApproval)
}

fn text(step: &Step, key: &str) -> Option<String> {
    step.result.as_ref()?.get(key)?.as_str().map(str::to_owned)
}

fn int(step: &Step, key: &str) -> Option<i64> {
    step.result.as_ref()?.get(key)?.as_i64()
}

/// The decision recorded in the approval step's result, with who and when.
fn decision_of(step: &Step) -> Option<Approval> {
    let by = text(step, "by").unwrap_or_default();
    let at = int(step, "at").unwrap_or(0);
    match text(step, "decision")?.as_str() {
        "approved" => Some(Approval::Approved { by, at }),
        "rejected" => Some(Approval::Rejected { by, at }),
        _ => None,
    }
}

/// What the job's approval says now; `None` for a job that needs none. A decision
/// counts from when it is recorded, before the step's run acts on it.
pub fn of(job: &Job) -> Option<Approval> {
    let step = step_of(job)?;
    if let Some(decided) = decision_of(step) {
        if step.state != StepState::Skipped {
            return Some(decided);
        }
    }
    Some(match step.state {
        StepState::Pending | StepState::Started => match job.status {
            JobStatus::Waiting => Approval::Required,
            JobStatus::Processing => Approval::Awaiting {
                deadline: int(step, "deadline"),
            },
            _ => Approval::Cancelled,
        },
        // A done approval always carries its decision; this keeps `of` total.
        StepState::Done => Approval::Approved {
            by: String::new(),
            at: step.finished_at.unwrap_or(0),
        },
        StepState::Failed if step.error.as_deref() == Some(TIMED_OUT) => Approval::TimedOut {
            at: step.finished_at,
        },
        StepState::Failed => Approval::Failed {
            error: step.error.clone(),
        },
        StepState::Skipped => Approval::Cancelled,
    })
}

/// Whether the job waits for a decision now.
pub fn is_awaiting(job: &Job) -> bool {
    matches!(of(job), Some(Approval::Awaiting { .. }))
}

/// When the waiting step of `job` times out: the deadline it recorded when it first
/// waited, else `timeout_minutes` (the app's, or the default if the app dropped its
/// approval meanwhile) from when the job started (and so began to await it).
pub fn deadline(
    job: &Job,
    step: &Step,
    settings: Option<ApprovalSettings>,
    now: Timestamp,
) -> Timestamp {
    if let Some(at) = int(step, "deadline") {
        return Timestamp::from_millis(at);
    }
    let minutes = settings.map_or(DEFAULT_APPROVAL_TIMEOUT_MINUTES, |a| a.timeout_minutes);
    let since = job.started_at.or(step.started_at).unwrap_or(now.millis());
    Timestamp::from_millis(since).plus_seconds(i64::from(minutes) * 60)
}

/// A run of the approval step: done once approved, failed "rejected by …" once
/// rejected (a decision recorded in time counts, whenever the run comes); else it
/// waits, not looked at again before its deadline (a decision wakes it), and
/// fails with [`TIMED_OUT`] once that has passed.
pub fn wait(
    job: &Job,
    step: &Step,
    settings: Option<ApprovalSettings>,
    now: Timestamp,
) -> StepOutcome {
    match decision_of(step) {
        Some(Approval::Approved { .. }) => {
            return StepOutcome::Done(step.result.clone().unwrap_or_default())
        }
        Some(Approval::Rejected { by, .. }) => {
            return StepOutcome::Failed(format!("rejected by {by}"))
        }
        _ => {}
    }
    let deadline = deadline(job, step, settings, now);
    if now >= deadline {
        return StepOutcome::Failed(TIMED_OUT.into());
    }
    StepOutcome::Waiting(
        json!({ "waiting_for": "approval", "deadline": deadline.millis() }),
        Some(deadline),
    )
}

/// The approval step that holds step `position` back: the job's approval step,
/// when `position` comes after it and it is not approved. Nothing after an
/// approval step runs before a decision approves it.
pub fn holds(job: &Job, position: i64) -> Option<&Step> {
    step_of(job).filter(|s| s.position < position && s.state != StepState::Done)
}

/// Who decided, as recorded and shown: one line, at most [`MAX_DECIDER_CHARS`]
/// characters (a Telegram name comes from outside).
pub fn decider(by: &str) -> String {
    let line: String = by
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let line = crate::text::cut(line.trim(), MAX_DECIDER_CHARS);
    if line.is_empty() {
        "someone".into()
    } else {
        line
    }
}

/// What a decision on `job` may do, judged from its state: decide its approval step
/// at `position`, or nothing because the same decision was made before (a double
/// tap: answered as done), or not at all (an [`ApprovalError`]). `newer` is the
/// newest job of the app and environment after this one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Decide { position: i64 },
    Already(Approval),
}

pub fn judge(
    job: &Job,
    newer: Option<i64>,
    decision: Decision,
    now: Timestamp,
) -> Result<Verdict, ApprovalError> {
    let id = job.id;
    let step = step_of(job).ok_or(ApprovalError::NotRequired { job: id })?;
    let approval = of(job).ok_or(ApprovalError::NotRequired { job: id })?;
    let made = match &approval {
        Approval::Approved { by, .. } => Some((Decision::Approve, by)),
        Approval::Rejected { by, .. } => Some((Decision::Reject, by)),
        _ => None,
    };
    if let Some((made, by)) = made {
        return if made == decision {
            Ok(Verdict::Already(approval.clone()))
        } else {
            Err(ApprovalError::AlreadyDecided {
                job: id,
                decision: made,
                by: by.clone(),
            })
        };
    }
    if let Some(newer) = newer {
        return Err(ApprovalError::Superseded { job: id, newer });
    }
    match approval {
        Approval::Required => Err(ApprovalError::NotStarted { job: id }),
        Approval::TimedOut { .. } => Err(ApprovalError::TimedOut { job: id }),
        Approval::Awaiting { deadline: Some(d) } if d <= now.millis() => {
            Err(ApprovalError::TimedOut { job: id })
        }
        Approval::Awaiting { .. } => Ok(Verdict::Decide {
            position: step.position,
        }),
        _ => Err(ApprovalError::NotAwaiting {
            job: id,
            status: job.status,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn step(name: StepName, position: i64, state: StepState) -> Step {
        Step {
            position,
            name,
            state,
            attempts: 0,
            result: None,
            error: None,
            started_at: None,
            finished_at: None,
            claimed_at: None,
            due_at: None,
        }
    }

    /// A job of an app with approval: its approval step in `state`, then the deploy.
    fn job(status: JobStatus, approval: Step) -> Job {
        Job {
            id: 7,
            app: "api".into(),
            environment: "production".into(),
            sha: "ab".repeat(20),
            git_ref: "refs/heads/main".into(),
            delivery_id: None,
            pusher: None,
            installation_id: None,
            status,
            revert_sha: None,
            github_deployment_id: None,
            telegram_message_id: None,
            error: None,
            created_at: NOW,
            updated_at: NOW,
            started_at: Some(NOW),
            finished_at: None,
            commits: vec![],
            steps: vec![
                approval,
                step(StepName::CreateDeployment, 1, StepState::Pending),
                step(StepName::Trigger, 2, StepState::Pending),
            ],
            kind: crate::deploy::JobKind::Deploy,
            source_job: None,
            requested_by: None,
            actions: vec![],
        }
    }

    fn waiting(deadline: i64) -> Step {
        Step {
            result: Some(json!({"waiting_for": "approval", "deadline": deadline})),
            started_at: Some(NOW),
            due_at: Some(deadline),
            ..step(StepName::AwaitingApproval, 0, StepState::Started)
        }
    }

    /// The approval step once its run acted on `decision`.
    fn decided(decision: Decision, by: &str) -> Step {
        let recorded = recorded(decision, by);
        let outcome = wait(
            &job(JobStatus::Processing, recorded.clone()),
            &recorded,
            None,
            Timestamp::from_millis(NOW + 6),
        );
        let (state, error) = match outcome {
            StepOutcome::Done(_) => (StepState::Done, None),
            StepOutcome::Failed(e) => (StepState::Failed, Some(e)),
            other => panic!("{other:?}"),
        };
        Step {
            state,
            error,
            finished_at: Some(NOW + 6),
            ..recorded
        }
    }

    /// The waiting approval step with `decision` recorded, before its run.
    fn recorded(decision: Decision, by: &str) -> Step {
        let mut s = waiting(NOW + 1000);
        if let Some(r) = s.result.as_mut().and_then(|r| r.as_object_mut()) {
            r.insert("decision".into(), decision.as_str().into());
            r.insert("by".into(), by.into());
            r.insert("at".into(), (NOW + 5).into());
        }
        s.due_at = None;
        s
    }

    const ONE_HOUR: Option<ApprovalSettings> = Some(ApprovalSettings {
        required: true,
        timeout_minutes: 60,
    });

    #[test]
    fn the_step_waits_until_its_deadline_then_times_out() {
        let now = Timestamp::from_millis(NOW);
        let first = Step {
            started_at: Some(NOW + 500),
            ..step(StepName::AwaitingApproval, 0, StepState::Started)
        };
        let job = job(JobStatus::Processing, first.clone());
        // Counted from when the job started, whenever its step's message came.
        let hour_on = Timestamp::from_millis(NOW).plus_seconds(3600);
        assert_eq!(
            wait(&job, &first, ONE_HOUR, now),
            StepOutcome::Waiting(
                json!({"waiting_for": "approval", "deadline": hour_on.millis()}),
                Some(hour_on)
            )
        );
        // The deadline it recorded holds, whatever the app says later.
        let saved = waiting(NOW + 1000);
        let five = Some(ApprovalSettings {
            required: true,
            timeout_minutes: 5,
        });
        assert_eq!(
            deadline(&job, &saved, five, now),
            Timestamp::from_millis(NOW + 1000)
        );
        assert!(matches!(
            wait(&job, &saved, five, Timestamp::from_millis(NOW + 999)),
            StepOutcome::Waiting(_, Some(_))
        ));
        assert_eq!(
            wait(&job, &saved, five, Timestamp::from_millis(NOW + 1000)),
            StepOutcome::Failed(TIMED_OUT.into())
        );
        // A decision recorded in time counts, whenever the step's run comes.
        let approved = recorded(Decision::Approve, "ann");
        let late = Timestamp::from_millis(NOW + 5000);
        assert!(matches!(
            wait(&job, &approved, five, late),
            StepOutcome::Done(r) if r["by"] == "ann"
        ));
        assert_eq!(
            wait(&job, &recorded(Decision::Reject, "bob"), five, late),
            StepOutcome::Failed("rejected by bob".into())
        );
        // An app that dropped its approval still gives its waiting job the default.
        assert_eq!(
            deadline(&job, &first, None, now),
            now.plus_seconds(i64::from(DEFAULT_APPROVAL_TIMEOUT_MINUTES) * 60)
        );
    }

    #[test]
    fn nothing_after_the_approval_runs_until_it_is_approved() {
        let awaiting = job(JobStatus::Processing, waiting(NOW + 1000));
        assert_eq!(holds(&awaiting, 0), None, "the approval step itself runs");
        assert_eq!(holds(&awaiting, 1).map(|s| s.position), Some(0));
        assert_eq!(holds(&awaiting, 2).map(|s| s.position), Some(0));
        let rejected = job(JobStatus::Processing, decided(Decision::Reject, "ann"));
        assert!(
            holds(&rejected, 2).is_some(),
            "a rejection holds everything"
        );
        let approved = job(JobStatus::Processing, decided(Decision::Approve, "ann"));
        assert_eq!(holds(&approved, 2), None);
        let pending = job(JobStatus::Processing, recorded(Decision::Approve, "ann"));
        assert!(
            holds(&pending, 1).is_some(),
            "until the approval's own run acts on it"
        );
        let mut plain = job(JobStatus::Processing, waiting(NOW));
        plain.steps.remove(0);
        assert_eq!(holds(&plain, 2), None, "a job without approval");
    }

    #[test]
    fn the_approval_reads_from_its_step() {
        let now = Timestamp::from_millis(NOW);
        let mut awaiting = job(JobStatus::Processing, waiting(NOW + 1000));
        assert_eq!(
            of(&awaiting),
            Some(Approval::Awaiting {
                deadline: Some(NOW + 1000)
            })
        );
        assert!(is_awaiting(&awaiting));
        awaiting.status = JobStatus::Waiting;
        awaiting.steps[0] = step(StepName::AwaitingApproval, 0, StepState::Pending);
        assert_eq!(of(&awaiting), Some(Approval::Required));
        let approved = job(JobStatus::Processing, decided(Decision::Approve, "ann"));
        assert_eq!(
            of(&approved),
            Some(Approval::Approved {
                by: "ann".into(),
                at: NOW + 5
            })
        );
        // Recorded and not yet acted on: it already says so.
        assert_eq!(
            of(&job(
                JobStatus::Processing,
                recorded(Decision::Reject, "bob")
            )),
            Some(Approval::Rejected {
                by: "bob".into(),
                at: NOW + 5
            })
        );
        let rejected = job(JobStatus::Failed, decided(Decision::Reject, "bob"));
        assert_eq!(
            of(&rejected),
            Some(Approval::Rejected {
                by: "bob".into(),
                at: NOW + 5
            })
        );
        assert_eq!(rejected.steps[0].error.as_deref(), Some("rejected by bob"));
        let timed_out = Step {
            error: Some(TIMED_OUT.into()),
            finished_at: Some(NOW + 9),
            ..waiting(NOW)
        };
        let timed_out = Step {
            state: StepState::Failed,
            ..timed_out
        };
        assert_eq!(
            of(&job(JobStatus::Failed, timed_out)),
            Some(Approval::TimedOut { at: Some(NOW + 9) })
        );
        let skipped = step(StepName::AwaitingApproval, 0, StepState::Skipped);
        assert_eq!(
            of(&job(JobStatus::Cancelled, skipped)),
            Some(Approval::Cancelled)
        );
        assert_eq!(
            of(&approved).map(|a| a.to_json()),
            Some(json!({"state": "approved", "by": "ann", "at": NOW + 5}))
        );
        assert_eq!(
            Approval::Awaiting { deadline: None }.to_json(),
            json!({"state": "awaiting"})
        );
        assert_eq!(
            Approval::Awaiting {
                deadline: Some(NOW)
            }
            .to_json(),
            json!({"state": "awaiting", "deadline": NOW})
        );
        assert_eq!(
            Approval::TimedOut { at: Some(NOW) }.to_json(),
            json!({"state": "timed_out", "at": NOW})
        );
        let _ = now;
    }

    #[test]
    fn a_decision_is_judged_from_the_jobs_state() {
        use Decision::*;
        let now = Timestamp::from_millis(NOW);
        let awaiting = job(JobStatus::Processing, waiting(NOW + 1000));
        assert_eq!(
            judge(&awaiting, None, Approve, now),
            Ok(Verdict::Decide { position: 0 })
        );
        assert_eq!(
            judge(&awaiting, None, Reject, now),
            Ok(Verdict::Decide { position: 0 })
        );
        // A newer push superseded it.
        assert_eq!(
            judge(&awaiting, Some(9), Approve, now),
            Err(ApprovalError::Superseded { job: 7, newer: 9 })
        );
        // Past its deadline, before the cron failed it.
        assert_eq!(
            judge(&awaiting, None, Approve, Timestamp::from_millis(NOW + 1000)),
            Err(ApprovalError::TimedOut { job: 7 })
        );
        // The same decision again is answered as done; the other one is refused.
        let approved = job(JobStatus::Processing, decided(Approve, "ann"));
        assert!(matches!(
            judge(&approved, Some(9), Approve, now),
            Ok(Verdict::Already(Approval::Approved { .. }))
        ));
        // A double tap before the step's run acted on the first.
        assert!(matches!(
            judge(
                &job(JobStatus::Processing, recorded(Approve, "ann")),
                None,
                Approve,
                now
            ),
            Ok(Verdict::Already(Approval::Approved { .. }))
        ));
        let refused = judge(&approved, None, Reject, now).expect_err("refused");
        assert_eq!(refused.to_string(), "job 7 was already approved by ann");
        let rejected = job(JobStatus::Failed, decided(Reject, "bob"));
        assert!(matches!(
            judge(&rejected, None, Reject, now),
            Ok(Verdict::Already(Approval::Rejected { .. }))
        ));
        assert_eq!(
            judge(&rejected, None, Approve, now)
                .expect_err("refused")
                .to_string(),
            "job 7 was already rejected by bob"
        );
        // Not yet started, cancelled, and no approval at all.
        let queued = job(
            JobStatus::Waiting,
            step(StepName::AwaitingApproval, 0, StepState::Pending),
        );
        assert_eq!(
            judge(&queued, None, Approve, now),
            Err(ApprovalError::NotStarted { job: 7 })
        );
        let cancelled = job(
            JobStatus::Cancelled,
            step(StepName::AwaitingApproval, 0, StepState::Skipped),
        );
        assert_eq!(
            judge(&cancelled, Some(8), Approve, now)
                .expect_err("refused")
                .to_string(),
            "job 7 was superseded by job 8, a newer push"
        );
        assert_eq!(
            judge(&cancelled, None, Approve, now)
                .expect_err("refused")
                .to_string(),
            "job 7 is cancelled, not awaiting approval"
        );
        let mut plain = awaiting.clone();
        plain.steps.remove(0);
        assert_eq!(
            judge(&plain, None, Approve, now)
                .expect_err("refused")
                .to_string(),
            "job 7 needs no approval"
        );
    }

    #[test]
    fn who_decided_is_one_short_line() {
        assert_eq!(decider("admin API"), "admin API");
        assert_eq!(decider(" @ann\n(Ann)\u{7} "), "@ann (Ann)");
        assert_eq!(decider("\n"), "someone");
        assert_eq!(decider(&"é".repeat(300)).chars().count(), MAX_DECIDER_CHARS);
    }
}
