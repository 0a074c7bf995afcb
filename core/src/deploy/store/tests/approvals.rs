//! The approval step's SQL against SQLite with the real migrations: one decision
//! wins, a newer push or a passed deadline wins over a decision, and the cron finds
//! only the waits past their deadline.

use super::*;
use serde_json::json;

const GATED: &[(StepName, StepState)] = &[
    (StepName::AwaitingApproval, StepState::Pending),
    (StepName::CreateDeployment, StepState::Pending),
    (StepName::Trigger, StepState::Pending),
    (StepName::Finalize, StepState::Pending),
];

/// A job of `hello` for commit `n` with the approval step first (or `steps`).
fn job_with(store: &JobStore<&SqliteSql>, n: u8, steps: &[(StepName, StepState)], at: i64) -> i64 {
    let app = AppName::parse("hello").expect("name");
    let delivery = DeliveryId::parse(&format!("d-{n}")).expect("delivery");
    block_on(store.create(
        &NewJob {
            app: &app,
            environment: "production",
            sha: &sha(n),
            before: None,
            forced: false,
            git_ref: "refs/heads/main",
            delivery_id: Some(&delivery),
            pusher: None,
            installation_id: None,
            commits: &[],
            steps,
        },
        t(at),
    ))
    .expect("create")
    .0
}

/// A started job whose approval step waits until `deadline` (seconds, as `t`).
fn awaiting(store: &JobStore<&SqliteSql>, n: u8, deadline: i64) -> i64 {
    let id = job_with(store, n, GATED, 0);
    assert_eq!(
        block_on(store.try_start("hello", "production", t(1))).expect("start"),
        Some(id)
    );
    block_on(store.claim_step(id, 0, t(1), StepClaims::new(180)))
        .expect("claim")
        .expect("claimed");
    let waiting = json!({"waiting_for": "approval", "deadline": t(deadline).millis()});
    block_on(store.touch_step(id, 0, &waiting, Some(t(deadline)), t(1))).expect("touch");
    id
}

fn decide(store: &JobStore<&SqliteSql>, id: i64, approved: bool, at: i64) -> bool {
    let decision = if approved { "approved" } else { "rejected" };
    block_on(store.decide_step(id, 0, (decision, "ann"), t(at), StepClaims::new(180)))
        .expect("decide")
}

fn step0(store: &JobStore<&SqliteSql>, id: i64) -> Step {
    block_on(store.get(id)).expect("get").expect("job").steps[0].clone()
}

#[test]
fn a_waiting_approval_keeps_its_deadline_and_nothing_sweeps_it_before() {
    let db = SqliteSql::migrated();
    let store = JobStore::new(&db);
    let id = awaiting(&store, 1, 3600);
    let step = step0(&store, id);
    assert_eq!(
        (step.state, step.clock()),
        (
            StepState::Started,
            StepClock {
                claimed_at: None,
                due_at: Some(t(3600).millis())
            }
        )
    );
    assert!(
        swept(&store, t(600)).is_empty(),
        "not polled while it waits"
    );
    assert!(
        block_on(store.claim_step(id, 0, t(600), StepClaims::new(180)))
            .expect("claim")
            .is_none(),
        "a duplicated message runs nothing"
    );
    assert!(block_on(store.expired_approvals(t(3599), 10))
        .expect("expired")
        .is_empty());
    assert_eq!(
        block_on(store.expired_approvals(t(3600), 10)).expect("expired"),
        vec![(id, 0)]
    );
    // Held by the attempt timing it out: left to that attempt.
    block_on(store.take_step(id, 0, t(3600)))
        .expect("take")
        .expect("taken");
    assert!(block_on(store.expired_approvals(t(3700), 10))
        .expect("expired")
        .is_empty());
}

#[test]
fn of_two_decisions_one_wins_and_wakes_the_step() {
    let db = SqliteSql::migrated();
    let store = JobStore::new(&db);
    let id = awaiting(&store, 1, 3600);
    assert!(decide(&store, id, true, 10));
    assert!(!decide(&store, id, true, 11), "a double tap");
    assert!(
        !decide(&store, id, false, 12),
        "a rejection after the approval"
    );
    let step = step0(&store, id);
    // Recorded beside what it waited for; the step's run acts on it.
    assert_eq!(step.state, StepState::Started);
    assert_eq!(
        step.result,
        Some(
            json!({"waiting_for": "approval", "deadline": t(3600).millis(),
                    "decision": "approved", "by": "ann", "at": t(10).millis()})
        )
    );
    assert_eq!(step.clock(), StepClock::default(), "claimable at once");
    let run = block_on(store.claim_step(id, 0, t(11), StepClaims::new(180)))
        .expect("claim")
        .expect("its run");
    assert_eq!(run.attempts, 2);
    // The cron has no deadline left to time out.
    assert!(block_on(store.expired_approvals(t(3601), 10))
        .expect("expired")
        .is_empty());
}

#[test]
fn a_decision_waits_for_a_run_that_holds_the_step() {
    let db = SqliteSql::migrated();
    let store = JobStore::new(&db);
    let id = job_with(&store, 1, GATED, 0);
    block_on(store.try_start("hello", "production", t(1))).expect("start");
    // A pending approval (its first run has not come) can be decided...
    assert!(decide(&store, id, false, 2));
    let db = SqliteSql::migrated();
    let store = JobStore::new(&db);
    let id = job_with(&store, 1, GATED, 0);
    block_on(store.try_start("hello", "production", t(1))).expect("start");
    // ...but not while a run holds it, until that claim is stale.
    block_on(store.claim_step(id, 0, t(2), StepClaims::new(180)))
        .expect("claim")
        .expect("claimed");
    assert!(!decide(&store, id, true, 3));
    assert!(decide(&store, id, true, 183));
}

#[test]
fn no_decision_after_the_deadline_or_on_a_job_not_awaiting_it() {
    let db = SqliteSql::migrated();
    let store = JobStore::new(&db);
    let id = awaiting(&store, 1, 3600);
    assert!(!decide(&store, id, true, 3600), "the deadline has passed");
    // Taken by the cron's timeout (its claim clears due_at): still too late.
    block_on(store.take_step(id, 0, t(3600)))
        .expect("take")
        .expect("taken");
    assert!(!decide(&store, id, true, 3601));
    // A waiting job (not started) has nothing to decide yet.
    let db = SqliteSql::migrated();
    let store = JobStore::new(&db);
    let queued = job_with(&store, 1, GATED, 0);
    assert!(!decide(&store, queued, true, 5));
    // Nor has a job without an approval step at its position.
    let plain = job_with(&store, 2, STEPS, 0);
    block_on(store.try_start("hello", "production", t(1))).expect("start");
    assert!(!decide(&store, plain, true, 5));
    assert_eq!(step0(&store, plain).state, StepState::Pending);
}

#[test]
fn a_newer_push_supersedes_a_job_awaiting_approval_and_wins_over_a_decision() {
    let db = SqliteSql::migrated();
    let store = JobStore::new(&db);
    let first = awaiting(&store, 1, 3600);
    let second = job_with(&store, 2, GATED, 5);
    // Between the newer job's creation and the supersede, a decision already loses.
    assert!(!decide(&store, first, true, 6));
    assert_eq!(
        block_on(store.newer_job("hello", "production", first)).expect("newer"),
        Some(second)
    );
    assert_eq!(
        block_on(store.supersede("hello", "production", second, t(7))).expect("supersede"),
        vec![first]
    );
    let cancelled = block_on(store.get(first)).expect("get").expect("job");
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    assert!(cancelled
        .steps
        .iter()
        .all(|s| s.state == StepState::Skipped && s.claimed_at.is_none() && s.due_at.is_none()));
    assert!(block_on(store.expired_approvals(t(4000), 10))
        .expect("expired")
        .is_empty());
    assert_eq!(
        block_on(store.try_start("hello", "production", t(8))).expect("start"),
        Some(second),
        "the newer job starts at once"
    );
    assert_eq!(
        block_on(store.newer_job("hello", "production", second)).expect("newer"),
        None
    );
}

#[test]
fn a_newer_push_leaves_an_approved_job_running() {
    let db = SqliteSql::migrated();
    let store = JobStore::new(&db);
    let first = awaiting(&store, 1, 3600);
    assert!(decide(&store, first, true, 2));
    let second = job_with(&store, 2, GATED, 5);
    assert!(
        block_on(store.supersede("hello", "production", second, t(6)))
            .expect("supersede")
            .is_empty()
    );
    assert_eq!(status(&store, first), JobStatus::Processing);
    // A running job without approval is not superseded either.
    let db = SqliteSql::migrated();
    let store = JobStore::new(&db);
    let plain = job_with(&store, 1, STEPS, 0);
    block_on(store.try_start("hello", "production", t(1))).expect("start");
    let newer = job_with(&store, 2, STEPS, 2);
    assert!(
        block_on(store.supersede("hello", "production", newer, t(3)))
            .expect("supersede")
            .is_empty()
    );
    assert_eq!(status(&store, plain), JobStatus::Processing);
}
