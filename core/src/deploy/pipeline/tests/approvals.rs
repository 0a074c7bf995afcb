//! Approvals as scenarios: an app whose deploys wait for a person. Nothing is
//! deployed (no GitHub Deployment, no trigger) until someone approves; a rejection
//! or a timeout fails the job without a revert; a newer push supersedes a job still
//! waiting; a repeated decision acts once.

use super::*;
use crate::deploy::approval::{self, Approval, ApprovalError, Decided, Decision};

/// The app deploying through a deploy hook, with a required approval.
fn gated(timeout_minutes: u32) -> Scenario {
    let s = Scenario::new(HOOK);
    s.put_app(&format!(
        r#"{{"repository": "{REPO}", "production_branch": "main", "environment": "production",
        "deploy_on": "push", "health_url": "https://app.example.com/health", "deploy": {HOOK},
        "approval": {{"required": true, "timeout_minutes": {timeout_minutes}}}}}"#
    ));
    s
}

impl Scenario {
    fn decide(&self, job: i64, decision: Decision, by: &str) -> Result<Decided, ApprovalError> {
        block_on(approval::decide(
            &self.deps(),
            job,
            decision,
            by,
            self.now(),
        ))
    }

    fn sweep(&self) -> Vec<String> {
        block_on(crate::deploy::sweep::sweep(&self.deps(), self.now()))
    }

    /// The deploy hook's calls and the GitHub calls so far: what "deployed".
    fn deploy_calls(&self) -> usize {
        self.http
            .seen
            .borrow()
            .iter()
            .filter(|r| r.url.contains("hooks") || r.url.starts_with("http://gh.test"))
            .count()
    }

    fn advance_minutes(&self, minutes: i64) {
        *self.clock.borrow_mut() += minutes * 60 * 1000;
    }
}

#[test]
fn a_job_awaiting_approval_deploys_nothing_until_approved() {
    let s = gated(60);
    assert_eq!(s.push(1), "delivery delivery-1: app: job 1 started");
    s.drain();
    let job = s.job(1);
    use StepState::*;
    assert_eq!(job.status, JobStatus::Processing);
    assert_eq!(
        states(&job)[..3],
        [
            ("awaiting_approval", Started),
            ("create_deployment", Pending),
            ("trigger", Pending)
        ]
    );
    assert_eq!(s.deploy_calls(), 0, "no GitHub Deployment, no trigger");
    // An hour from when the job started, and so began to await approval.
    let started = job.started_at.expect("started");
    assert_eq!(
        approval::view(&job)["approval"],
        serde_json::json!({"state": "awaiting", "deadline": started + 3_600_000})
    );
    let message = crate::deploy::message::render(&job, None);
    assert!(
        message.starts_with("<b>⏸ Deploy app → production</b>"),
        "{message}"
    );
    assert!(
        message.contains("<b>Status:</b> awaiting approval\n"),
        "{message}"
    );
    assert!(
        message.contains("<b>Approval:</b> awaiting approval until "),
        "{message}"
    );

    // Messages for every step, redelivered or forged, run nothing past the approval.
    for position in 0..5 {
        s.queue.sent.borrow_mut().push(JobMessage::DeployStep {
            job_id: 1,
            position,
        });
    }
    let runs = s.drain();
    assert!(runs.iter().all(|r| r.verdict == Verdict::Ack), "{runs:?}");
    assert!(
        runs.iter()
            .filter(|r| r.log.contains("awaiting approval (step 0), not run"))
            .count()
            == 4,
        "{runs:?}"
    );
    assert_eq!(s.deploy_calls(), 0);
    // Nor does the cron: the wait is not polled.
    s.advance_minutes(10);
    assert!(s.sweep().is_empty());
    assert!(s.queue.sent.borrow().is_empty());

    let decided = s
        .decide(1, Decision::Approve, "admin API")
        .expect("approved");
    assert!(decided.acted);
    assert!(
        matches!(&decided.approval, Approval::Approved { by, .. } if by == "admin API"),
        "{decided:?}"
    );
    s.drain();
    let job = s.job(1);
    assert_eq!(job.status, JobStatus::Finalized, "{:?}", job.error);
    assert_eq!(job.steps[0].state, Done);
    assert_eq!(
        job.steps[0].result.as_ref().map(|r| r["by"].clone()),
        Some("admin API".into())
    );
    let calls = s.github_calls();
    assert_eq!(calls[0].0, "http://gh.test/repos/octo/app/deployments");
    assert_eq!(calls[0].1["ref"], sha(1).as_str());
    let message = crate::deploy::message::render(&job, None);
    assert!(
        message.contains("<b>Approval:</b> approved by admin API"),
        "{message}"
    );
    assert!(message.starts_with("<b>✅ Deploy app"), "{message}");
}

#[test]
fn a_second_approve_acts_once() {
    let s = gated(60);
    s.push(1);
    s.drain();
    let first = s.decide(1, Decision::Approve, "@ann").expect("approved");
    let again = s.decide(1, Decision::Approve, "@bob").expect("already");
    assert!(first.acted && !again.acted);
    assert_eq!(again.approval, first.approval, "the first decider's, kept");
    assert_eq!(
        s.decide(1, Decision::Reject, "@bob")
            .expect_err("refused")
            .to_string(),
        "job 1 was already approved by @ann"
    );
    s.drain();
    assert_eq!(s.job(1).status, JobStatus::Finalized);
    let deployments = s
        .github_calls()
        .iter()
        .filter(|(url, _)| url == "http://gh.test/repos/octo/app/deployments")
        .count();
    assert_eq!(deployments, 1);
    // Still approved once the job is done.
    assert!(
        !s.decide(1, Decision::Approve, "@ann")
            .expect("already")
            .acted
    );
}

#[test]
fn a_rejected_job_fails_without_deploying_or_reverting() {
    let s = gated(60);
    s.push(1);
    s.drain();
    s.decide(1, Decision::Approve, "admin API")
        .expect("approved");
    s.drain();
    assert_eq!(s.job(1).status, JobStatus::Finalized);
    let calls = s.deploy_calls();
    s.push(2);
    s.drain();
    let decided = s.decide(2, Decision::Reject, "@ann").expect("rejected");
    assert!(decided.acted);
    // The decision wakes the approval step, whose run fails the job.
    let runs = s.drain();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert!(
        runs[0]
            .log
            .ends_with("awaiting_approval: failed: rejected by @ann"),
        "{runs:?}"
    );
    let job = s.job(2);
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.error.as_deref(), Some("rejected by @ann"));
    assert_eq!(
        job.revert_sha, None,
        "nothing was deployed, nothing reverted"
    );
    use StepState::*;
    assert_eq!(
        states(&job),
        vec![
            ("awaiting_approval", Failed),
            ("create_deployment", Skipped),
            ("trigger", Skipped),
            ("await_result", Skipped),
            ("verify_health", Skipped),
            ("finalize", Skipped)
        ]
    );
    assert_eq!(s.deploy_calls(), calls);
    assert!(
        crate::deploy::message::render(&job, None).contains("<b>Approval:</b> rejected by @ann")
    );
    assert_eq!(
        s.decide(2, Decision::Approve, "admin API")
            .expect_err("refused")
            .to_string(),
        "job 2 was already rejected by @ann"
    );
    assert!(
        !s.decide(2, Decision::Reject, "admin API")
            .expect("already")
            .acted
    );
    // The next push deploys (after its own approval).
    s.push(3);
    s.drain();
    s.decide(3, Decision::Approve, "admin API")
        .expect("approved");
    s.drain();
    assert_eq!(s.job(3).status, JobStatus::Finalized);
}

#[test]
fn the_cron_fails_an_approval_that_times_out() {
    let s = gated(5);
    s.push(1);
    s.drain();
    s.advance_minutes(3);
    assert!(s.sweep().is_empty(), "not before its deadline");
    s.advance_minutes(2);
    // Past the deadline and before the cron: too late to approve.
    assert_eq!(
        s.decide(1, Decision::Approve, "admin API")
            .expect_err("refused")
            .to_string(),
        "job 1: approval timed out"
    );
    let log = s.sweep();
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(
        log[0].starts_with(
            "timed out: job 1 (app 0101010) awaiting_approval: failed: approval timed out"
        ),
        "{log:?}"
    );
    s.drain();
    let job = s.job(1);
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.error.as_deref(), Some("approval timed out"));
    assert_eq!(s.deploy_calls(), 0);
    assert!(matches!(
        approval::gate::of(&job),
        Some(Approval::TimedOut { .. })
    ));
    assert_eq!(
        s.decide(1, Decision::Approve, "admin API"),
        Err(ApprovalError::TimedOut { job: 1 })
    );
    assert!(s.sweep().is_empty(), "timed out once");
    // A message that comes after the deadline (its step never waited) times it out too.
    let s = gated(5);
    s.push(1);
    s.advance_minutes(6);
    s.drain();
    assert_eq!(s.job(1).error.as_deref(), Some("approval timed out"));
}

#[test]
fn approving_a_job_a_newer_push_superseded_is_refused() {
    let s = gated(60);
    s.push(1);
    s.drain();
    assert_eq!(
        s.push(2),
        "delivery delivery-2: app: job 2 started, superseding [1]"
    );
    s.drain();
    let old = s.job(1);
    assert_eq!(old.status, JobStatus::Cancelled);
    assert_eq!(old.error.as_deref(), Some("superseded by job 2"));
    assert_eq!(approval::gate::of(&old), Some(Approval::Cancelled));
    let refused = s
        .decide(1, Decision::Approve, "admin API")
        .expect_err("refused");
    assert_eq!(refused, ApprovalError::Superseded { job: 1, newer: 2 });
    assert_eq!(
        refused.to_string(),
        "job 1 was superseded by job 2, a newer push"
    );
    assert_eq!(crate::error::ApiError::from(refused).status(), 409);
    // The newer job awaits its own approval, and deploys its own commit.
    assert!(approval::gate::is_awaiting(&s.job(2)));
    s.decide(2, Decision::Approve, "admin API")
        .expect("approved");
    s.drain();
    assert_eq!(s.job(2).status, JobStatus::Finalized);
    let hooks: Vec<String> = s
        .http
        .seen
        .borrow()
        .iter()
        .filter(|r| r.url.contains("hooks"))
        .filter_map(|r| r.body.clone())
        .collect();
    assert_eq!(hooks.len(), 1);
    assert!(hooks[0].contains(sha(2).as_str()));
}

#[test]
fn a_job_queued_behind_a_running_one_awaits_approval_once_it_starts() {
    let s = gated(60);
    s.push(1);
    s.drain();
    s.decide(1, Decision::Approve, "admin API")
        .expect("approved");
    // Job 1 runs (its steps are queued); job 2 waits for it.
    assert_eq!(s.push(2), "delivery delivery-2: app: job 2 waiting");
    assert_eq!(
        s.decide(2, Decision::Approve, "admin API")
            .expect_err("refused")
            .to_string(),
        "job 2 has not started: it awaits approval once the app's running job is done"
    );
    assert!(crate::deploy::message::render(&s.job(2), None)
        .contains("<b>Approval:</b> needed once it starts"));
    s.drain();
    assert_eq!(s.job(1).status, JobStatus::Finalized);
    assert!(approval::gate::is_awaiting(&s.job(2)));
}

#[test]
fn an_app_without_approval_deploys_as_before() {
    let s = Scenario::new(HOOK);
    s.push(1);
    s.drain();
    let job = s.job(1);
    assert_eq!(job.status, JobStatus::Finalized);
    assert!(job
        .steps
        .iter()
        .all(|st| st.name != StepName::AwaitingApproval));
    assert_eq!(approval::view(&job).get("approval"), None);
    let message = crate::deploy::message::render(&job, None);
    assert!(!message.contains("Approval"), "{message}");
    assert_eq!(
        s.decide(1, Decision::Approve, "admin API"),
        Err(ApprovalError::NotRequired { job: 1 })
    );
    assert_eq!(
        s.decide(99, Decision::Approve, "admin API"),
        Err(ApprovalError::NotFound { job: 99 })
    );
    // `required: false` is the same.
    s.put_app(&format!(
        r#"{{"repository": "{REPO}", "production_branch": "main", "environment": "production",
        "deploy_on": "push", "deploy": {HOOK}, "approval": {{"required": false}}}}"#
    ));
    s.push(2);
    s.drain();
    assert_eq!(s.job(2).status, JobStatus::Finalized);
    assert_eq!(s.job(2).steps.len(), 5);
}

#[test]
fn a_decision_whose_message_was_lost_is_acted_on_when_the_sweep_comes() {
    let s = gated(60);
    s.push(1);
    s.drain();
    // The decision is recorded and the Worker dies before it sends the step.
    let decided = s.decide(1, Decision::Reject, "@ann").expect("rejected");
    assert!(decided.acted);
    s.queue.sent.borrow_mut().clear();
    assert_eq!(s.job(1).status, JobStatus::Processing);
    assert!(matches!(
        approval::gate::of(&s.job(1)),
        Some(Approval::Rejected { .. })
    ));
    s.advance_minutes(3);
    let log = s.sweep();
    assert_eq!(log, vec!["job 1 step 0 (awaiting_approval) re-enqueued"]);
    s.drain();
    let job = s.job(1);
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.error.as_deref(), Some("rejected by @ann"));
    assert_eq!(s.deploy_calls(), 0);
}

#[test]
fn a_rejection_interrupted_before_the_job_moved_on_is_finished_by_the_sweep() {
    let s = gated(60);
    s.push(1);
    s.drain();
    s.decide(1, Decision::Reject, "@ann").expect("rejected");
    // The step's run failed the step and died before the job moved on.
    s.queue.sent.borrow_mut().clear();
    let step = block_on(JobStore::new(&s.db).claim_step(1, 0, s.now(), s.config.step_claims()))
        .expect("claim")
        .expect("claimed");
    assert!(block_on(JobStore::new(&s.db).finish_step(
        1,
        0,
        StepState::Failed,
        None,
        Some("rejected by @ann"),
        s.now()
    ))
    .expect("finish"));
    assert_eq!(step.name, StepName::AwaitingApproval);
    // Its next step, sent by the sweep, does not run.
    s.advance_minutes(3);
    let log = s.sweep();
    assert!(
        log.contains(&"job 1: failed after an interruption".to_owned()),
        "{log:?}"
    );
    s.drain();
    let job = s.job(1);
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.error.as_deref(), Some("rejected by @ann"));
    assert_eq!(s.deploy_calls(), 0);
}

#[test]
fn a_decision_recorded_as_the_cron_times_the_approval_out_still_counts() {
    let s = gated(5);
    s.push(1);
    s.drain();
    // The cron found the wait past its deadline; before it takes the step, an
    // approval made in time (by its clock) is recorded.
    s.advance_minutes(4);
    s.decide(1, Decision::Approve, "@ann")
        .expect("approved in time");
    s.queue.sent.borrow_mut().clear();
    s.advance_minutes(2);
    let run = block_on(time_out_step(
        &s.deps(),
        1,
        0,
        approval::gate::TIMED_OUT.into(),
        s.now(),
    ));
    assert!(run.log.ends_with("awaiting_approval: done"), "{}", run.log);
    s.drain();
    let job = s.job(1);
    assert_eq!(job.status, JobStatus::Finalized, "{:?}", job.error);
    assert!(s.deploy_calls() > 0);
}

#[test]
fn the_admin_apis_decisions_leave_audit_rows_taken_or_refused() {
    use crate::audit::Outcome;
    let s = gated(60);
    s.push(1);
    s.drain();
    let admin = |decision| block_on(approval::decide_for_admin(&s.deps(), 1, decision, s.now()));
    assert!(admin(Decision::Approve).expect("approved").acted);
    assert!(!admin(Decision::Approve).expect("already").acted);
    assert!(admin(Decision::Reject).is_err());
    // An unknown job leaves no row (there is no subject to hang it on).
    assert!(block_on(approval::decide_for_admin(
        &s.deps(),
        9,
        Decision::Approve,
        s.now()
    ))
    .is_err());
    s.drain();
    let job = s.job(1);
    let trail: Vec<(&str, Outcome, Option<&str>, &str)> = job
        .actions
        .iter()
        .map(|e| {
            (
                e.action.as_str(),
                e.result,
                e.detail.as_deref(),
                e.actor.as_str(),
            )
        })
        .collect();
    assert_eq!(
        trail,
        vec![
            ("approve", Outcome::Done, None, "admin API"),
            (
                "approve",
                Outcome::Refused,
                Some("already approved"),
                "admin API"
            ),
            (
                "reject",
                Outcome::Refused,
                Some("job 1 was already approved by admin API"),
                "admin API"
            ),
        ]
    );
    // The message says it once, in its approval line.
    let message = crate::deploy::message::render(&job, None);
    assert_eq!(
        message.matches("approved by admin API").count(),
        1,
        "{message}"
    );
    assert!(!message.contains("Approved by"), "{message}");
}
