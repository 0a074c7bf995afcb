//! Jobs and steps against SQLite with the real migrations.

use super::*;
use crate::deploy::{JobStatus, StepName, StepState};
use crate::retry::{StepClaims, StepClock};
use crate::testing::{block_on, SqliteSql};

fn t(s: i64) -> Timestamp {
    Timestamp::from_millis(1_700_000_000_000 + s * 1000)
}

fn sha(n: u8) -> CommitSha {
    CommitSha::parse(&format!("{n:02x}").repeat(20)).expect("sha")
}

const STEPS: &[(StepName, StepState)] = &[
    (StepName::CreateDeployment, StepState::Pending),
    (StepName::Trigger, StepState::Pending),
    (StepName::AwaitResult, StepState::Skipped),
    (StepName::Finalize, StepState::Pending),
];

fn create(
    store: &JobStore<&SqliteSql>,
    commit: &CommitSha,
    delivery: &str,
    at: i64,
) -> (i64, bool) {
    let app = AppName::parse("hello").expect("name");
    let delivery = DeliveryId::parse(delivery).expect("delivery");
    let commits = vec![PushCommit {
        id: commit.clone(),
        subject: "Ship it".into(),
        author: Some("octocat".into()),
        timestamp: None,
    }];
    block_on(store.create(
        &NewJob {
            app: &app,
            environment: "production",
            sha: commit,
            before: None,
            forced: false,
            git_ref: "refs/heads/main",
            delivery_id: Some(&delivery),
            pusher: Some("octocat"),
            installation_id: Some(1),
            commits: &commits,
            steps: STEPS,
        },
        t(at),
    ))
    .expect("create")
}

fn status(store: &JobStore<&SqliteSql>, id: i64) -> JobStatus {
    block_on(store.get(id)).expect("get").expect("job").status
}

#[test]
fn two_deliveries_of_one_push_make_one_job() {
    let db = SqliteSql::migrated();
    let store = JobStore::new(&db);
    let (a, created) = create(&store, &sha(1), "d-1", 0);
    assert!(created);
    let (b, created) = create(&store, &sha(1), "d-2", 1);
    assert_eq!((b, created), (a, false));
    let job = block_on(store.get(a)).expect("get").expect("job");
    assert_eq!(job.status, JobStatus::Waiting);
    assert_eq!(job.steps.len(), 4);
    assert_eq!(job.steps[2].state, StepState::Skipped);
    assert_eq!(job.commits[0].subject, "Ship it");
    assert_eq!(job.delivery_id.as_deref(), Some("d-1"));
}

#[test]
fn a_newer_push_supersedes_waiting_jobs_and_one_job_runs_at_a_time() {
    let db = SqliteSql::migrated();
    let store = JobStore::new(&db);
    let (first, _) = create(&store, &sha(1), "d-1", 0);
    assert_eq!(
        block_on(store.try_start("hello", "production", t(1))).expect("start"),
        Some(first)
    );
    assert_eq!(
        block_on(store.try_start("hello", "production", t(1))).expect("start"),
        None,
        "already active"
    );
    let (second, _) = create(&store, &sha(2), "d-2", 2);
    let (third, _) = create(&store, &sha(3), "d-3", 3);
    assert_eq!(
        block_on(store.supersede("hello", "production", third, t(3))).expect("supersede"),
        vec![second]
    );
    assert_eq!(status(&store, second), JobStatus::Cancelled);
    let cancelled = block_on(store.get(second)).expect("get").expect("job");
    assert_eq!(
        cancelled.error.as_deref(),
        Some(format!("superseded by job {third}").as_str())
    );
    assert!(cancelled
        .steps
        .iter()
        .all(|s| s.state == StepState::Skipped));
    assert_eq!(
        block_on(store.try_start("hello", "production", t(4))).expect("start"),
        None,
        "first still runs"
    );
    assert!(block_on(store.set_status(first, JobStatus::Finalized, None, t(5))).expect("finalize"));
    assert_eq!(
        block_on(store.try_start("hello", "production", t(6))).expect("start"),
        Some(third)
    );
}

#[test]
fn statuses_only_move_forward() {
    let db = SqliteSql::migrated();
    let store = JobStore::new(&db);
    let (id, _) = create(&store, &sha(1), "d-1", 0);
    assert!(
        !block_on(store.set_status(id, JobStatus::Finalized, None, t(1))).expect("set"),
        "not started"
    );
    block_on(store.try_start("hello", "production", t(1))).expect("start");
    assert!(
        block_on(store.set_status(id, JobStatus::Reverting, Some("trigger failed"), t(2)))
            .expect("set")
    );
    assert!(
        !block_on(store.set_status(id, JobStatus::Processing, None, t(3))).expect("set"),
        "a late start"
    );
    assert!(
        !block_on(store.set_status(id, JobStatus::Finalized, None, t(4))).expect("set"),
        "a late finish"
    );
    assert!(block_on(store.set_status(id, JobStatus::Reverted, None, t(5))).expect("set"));
    assert!(!block_on(store.set_status(id, JobStatus::Failed, Some("late"), t(6))).expect("set"));
    let job = block_on(store.get(id)).expect("get").expect("job");
    assert_eq!(job.status, JobStatus::Reverted);
    assert_eq!(job.error.as_deref(), Some("trigger failed"));
    assert_eq!(job.finished_at, Some(t(5).millis()));
}

#[test]
fn steps_are_claimed_once_and_finish_once() {
    let db = SqliteSql::migrated();
    let store = JobStore::new(&db);
    let claims = StepClaims::new(60);
    let (id, _) = create(&store, &sha(1), "d-1", 0);
    let step = block_on(store.claim_step(id, 0, t(1), claims))
        .expect("claim")
        .expect("claimed");
    assert_eq!((step.name, step.attempts), (StepName::CreateDeployment, 1));
    assert!(
        block_on(store.claim_step(id, 0, t(2), claims))
            .expect("claim")
            .is_none(),
        "held"
    );
    let again = block_on(store.claim_step(id, 0, t(120), claims))
        .expect("claim")
        .expect("stale, taken over");
    assert_eq!(again.attempts, 2);
    let result = serde_json::json!({"deployment_id": 42});
    assert!(
        block_on(store.finish_step(id, 0, StepState::Done, Some(&result), None, t(121)))
            .expect("finish")
    );
    assert!(
        !block_on(store.finish_step(id, 0, StepState::Failed, None, Some("late"), t(122)))
            .expect("finish")
    );
    assert!(
        block_on(store.claim_step(id, 0, t(500), claims))
            .expect("claim")
            .is_none(),
        "done is done"
    );
    assert!(
        block_on(store.take_step(id, 2, t(500)))
            .expect("claim")
            .is_none(),
        "skipped is done, even for a forced take"
    );
    let job = block_on(store.get(id)).expect("get").expect("job");
    assert_eq!(job.steps[0].result, Some(result));
    assert_eq!(job.steps[0].state, StepState::Done);
}

/// What the cron's sweep would run again at `now` (`SWEEP_AFTER_SECONDS` 120,
/// `STEP_STALE_SECONDS` 180).
fn swept(store: &JobStore<&SqliteSql>, now: Timestamp) -> Vec<(i64, i64)> {
    block_on(store.stale_steps(now.minus_seconds(120), StepClaims::new(180), now, 10))
        .expect("stale")
}

#[test]
fn the_sweep_leaves_a_fresh_claim_and_a_future_retry_alone_but_takes_stale_or_due_ones() {
    let db = SqliteSql::migrated();
    let store = JobStore::new(&db);
    let claims = StepClaims::new(180);
    let (id, _) = create(&store, &sha(1), "d-1", 0);
    block_on(store.try_start("hello", "production", t(0))).expect("start");
    // A long Fly update holds its claim: untouched for 129 s, but not stale.
    block_on(store.claim_step(id, 0, t(1), claims))
        .expect("claim")
        .expect("claimed");
    assert!(
        swept(&store, t(130)).is_empty(),
        "a fresh claim is left alone"
    );
    assert!(block_on(store.claim_step(id, 0, t(130), claims))
        .expect("claim")
        .is_none());
    // Its consumer died: the claim goes stale and the sweep takes it.
    assert_eq!(swept(&store, t(182)), vec![(id, 0)]);
    let step = block_on(store.claim_step(id, 0, t(182), claims))
        .expect("claim")
        .expect("stale, taken over");
    assert_eq!(step.attempts, 2);
    // A health retry scheduled 160 s out is left alone until it is due...
    block_on(store.release_step(id, 0, "GitHub 502", t(342), t(182))).expect("release");
    let job = block_on(store.get(id)).expect("get").expect("job");
    assert_eq!(
        (job.steps[0].state, job.steps[0].clock()),
        (
            StepState::Pending,
            StepClock {
                claimed_at: None,
                due_at: Some(t(342).millis())
            }
        )
    );
    assert!(
        swept(&store, t(320)).is_empty(),
        "a future retry is left alone"
    );
    assert!(
        block_on(store.claim_step(id, 0, t(320), claims))
            .expect("claim")
            .is_none(),
        "nothing runs it early"
    );
    // ...its own message runs it when it is due, and the sweep only once that
    // message has had SWEEP_AFTER_SECONDS to come.
    assert!(swept(&store, t(400)).is_empty());
    assert_eq!(swept(&store, t(463)), vec![(id, 0)]);
    let step = block_on(store.claim_step(id, 0, t(342), claims))
        .expect("claim")
        .expect("due");
    assert_eq!(
        (step.attempts, step.error.as_deref()),
        (3, Some("GitHub 502"))
    );
    let first =
        block_on(store.append_steps(id, &[(StepName::RevertTrigger, StepState::Pending)], t(400)))
            .expect("append");
    assert_eq!(first, 4);
}

#[test]
fn the_last_finalized_sha_is_what_a_revert_deploys() {
    let db = SqliteSql::migrated();
    let store = JobStore::new(&db);
    let (a, _) = create(&store, &sha(1), "d-1", 0);
    block_on(store.try_start("hello", "production", t(0))).expect("start");
    block_on(store.set_status(a, JobStatus::Finalized, None, t(1))).expect("set");
    let (b, _) = create(&store, &sha(2), "d-2", 2);
    assert_eq!(
        block_on(store.last_finalized_sha("hello", "production", b)).expect("query"),
        Some(sha(1).as_str().to_owned())
    );
    assert_eq!(
        block_on(store.last_finalized_sha("hello", "production", a)).expect("query"),
        None
    );
    let listed = block_on(store.list(Some("hello"), Some(JobStatus::Finalized), 10)).expect("list");
    assert_eq!(listed.iter().map(|j| j.id).collect::<Vec<_>>(), vec![a]);
}

#[test]
fn the_same_commit_again_after_its_job_finished_is_not_a_new_deploy() {
    let db = SqliteSql::migrated();
    let store = JobStore::new(&db);
    let (a, _) = create(&store, &sha(1), "d-1", 0);
    block_on(store.try_start("hello", "production", t(0))).expect("start");
    block_on(store.set_status(a, JobStatus::Finalized, None, t(1))).expect("set");
    assert_eq!(
        create(&store, &sha(1), "d-late", 2),
        (a, false),
        "a late second hook"
    );
    let (b, created) = create(&store, &sha(2), "d-2", 3);
    assert!(created);
    assert!(
        create(&store, &sha(1), "d-3", 4).1,
        "the store makes a job for an older commit; intake's stale check is what refuses it"
    );
    let job = block_on(store.get(b)).expect("get").expect("job");
    assert_eq!(job.status, JobStatus::Waiting);
}

#[test]
fn the_commits_a_push_must_be_newer_than_are_the_finalized_active_and_waiting_ones() {
    let db = SqliteSql::migrated();
    let store = JobStore::new(&db);
    let refs = |store: &JobStore<&SqliteSql>| {
        block_on(store.references("hello", "production")).expect("references")
    };
    assert!(
        refs(&store).is_empty(),
        "a first push has nothing to be newer than"
    );
    let (a, _) = create(&store, &sha(1), "d-1", 0);
    assert_eq!(refs(&store), vec![sha(1)], "waiting");
    block_on(store.try_start("hello", "production", t(0))).expect("start");
    block_on(store.set_status(a, JobStatus::Finalized, None, t(1))).expect("set");
    let (b, _) = create(&store, &sha(2), "d-2", 2);
    block_on(store.try_start("hello", "production", t(2))).expect("start");
    create(&store, &sha(3), "d-3", 3);
    let (d, _) = create(&store, &sha(4), "d-4", 4);
    block_on(store.supersede("hello", "production", d, t(4))).expect("supersede");
    // Finalized first, then the active one, then the newest waiting; not the cancelled.
    assert_eq!(refs(&store), vec![sha(1), sha(2), sha(4)]);
    block_on(store.set_status(b, JobStatus::Failed, Some("boom"), t(5))).expect("set");
    assert_eq!(
        refs(&store),
        vec![sha(1), sha(4)],
        "a failed job deploys nothing"
    );
}

#[test]
fn the_push_chain_comes_back_as_recorded() {
    let db = SqliteSql::migrated();
    let store = JobStore::new(&db);
    let app = AppName::parse("hello").expect("name");
    let delivery = DeliveryId::parse("d-9").expect("delivery");
    let commits: Vec<PushCommit> = [sha(8), sha(9)]
        .into_iter()
        .map(|id| PushCommit {
            id,
            subject: "Ship it".into(),
            author: None,
            timestamp: None,
        })
        .collect();
    create(&store, &sha(7), "d-7", 0);
    block_on(store.create(
        &NewJob {
            app: &app,
            environment: "production",
            sha: &sha(9),
            before: Some(&sha(7)),
            forced: true,
            git_ref: "refs/heads/main",
            delivery_id: Some(&delivery),
            pusher: None,
            installation_id: None,
            commits: &commits,
            steps: STEPS,
        },
        t(1),
    ))
    .expect("create");
    let history = block_on(store.push_history("hello", "production", 50)).expect("history");
    assert_eq!(
        history,
        vec![
            PushLink {
                before: Some(sha(7)),
                after: sha(9),
                forced: true,
                commits: vec![sha(8), sha(9)],
            },
            PushLink {
                before: None,
                after: sha(7),
                forced: false,
                commits: vec![sha(7)],
            },
        ]
    );
    assert_eq!(
        block_on(store.push_history("hello", "production", 1))
            .expect("history")
            .len(),
        1
    );
}

#[test]
fn the_migration_keeps_existing_jobs_and_recovers_their_chain_from_the_delivery_log() {
    // The schema as it was before 0012, with a job and its delivery in it.
    let conn = rusqlite::Connection::open_in_memory().expect("sqlite");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("migrations")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let (before, after): (Vec<_>, Vec<_>) = files.into_iter().partition(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n < "0012")
    });
    for f in &before {
        conn.execute_batch(&std::fs::read_to_string(f).expect("read"))
            .expect("migrates");
    }
    let push = format!(
        r#"{{"push": {{"before": "{}", "after": "{}", "forced": false}}}}"#,
        sha(1).as_str(),
        sha(2).as_str()
    );
    let created = format!(
        r#"{{"push": {{"before": "{}", "forced": false}}}}"#,
        "0".repeat(40)
    );
    conn.execute_batch(&format!(
        "INSERT INTO deliveries (id, event, outcome, payload, received_at, updated_at) VALUES          ('d-old', 'push', 'processed', '{push}', 1, 1), ('d-new-branch', 'push', 'processed', '{created}', 1, 1);          INSERT INTO deploy_jobs (app, environment, sha, git_ref, delivery_id, commits, status, created_at, updated_at) VALUES          ('hello', 'production', '{}', 'refs/heads/main', 'd-new-branch', '[]', 'finalized', 1, 1),          ('hello', 'production', '{}', 'refs/heads/main', 'd-old', '[]', 'finalized', 2, 2),          ('hello', 'production', '{}', 'refs/heads/main', NULL, '[]', 'cancelled', 3, 3);",
        sha(1).as_str(),
        sha(2).as_str(),
        sha(3).as_str()
    ))
    .expect("rows");
    for f in &after {
        conn.execute_batch(&std::fs::read_to_string(f).expect("read"))
            .expect("migrates");
    }
    let rows: Vec<(String, Option<String>, i64)> = conn
        .prepare("SELECT sha, before_sha, forced FROM deploy_jobs ORDER BY id")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(
        rows,
        vec![
            (sha(1).as_str().to_owned(), None, 0),
            (
                sha(2).as_str().to_owned(),
                Some(sha(1).as_str().to_owned()),
                0
            ),
            (sha(3).as_str().to_owned(), None, 0),
        ]
    );
    let deliveries: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM deliveries WHERE body_sha256 IS NULL AND attempts = 0",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(deliveries, 2, "the delivery log keeps its rows");
}

#[test]
fn steps_round_trip_through_their_json() {
    let round_trip = |s: &Step| {
        let text = serde_json::to_string(s).expect("serialises");
        assert_eq!(&crate::json::read::<Step>(&text).expect("reads back"), s);
    };
    round_trip(&Step {
        position: 2,
        name: StepName::AwaitResult,
        state: StepState::Failed,
        attempts: 3,
        result: Some(serde_json::json!({"run_id": 42})),
        error: Some("boom".into()),
        started_at: Some(10),
        finished_at: Some(20),
        claimed_at: Some(15),
        due_at: Some(30),
    });
    round_trip(&Step {
        position: 0,
        name: StepName::CreateDeployment,
        state: StepState::Pending,
        attempts: 0,
        result: None,
        error: None,
        started_at: None,
        finished_at: None,
        claimed_at: None,
        due_at: None,
    });
}

mod approvals;

#[test]
fn a_step_released_after_its_job_was_cancelled_is_skipped_not_pending_again() {
    let db = SqliteSql::migrated();
    let store = JobStore::new(&db);
    let claims = StepClaims::new(180);
    let (id, _) = create(&store, &sha(1), "d-1", 0);
    block_on(store.try_start("hello", "production", t(0))).expect("start");
    block_on(store.claim_step(id, 0, t(1), claims))
        .expect("claim")
        .expect("claimed");
    // Cancelled from chat while the step ran; its attempt then fails transiently.
    assert!(block_on(store.set_status(id, JobStatus::Cancelled, None, t(2))).expect("cancel"));
    block_on(store.skip_pending(id, t(2))).expect("skip");
    block_on(store.release_step(id, 0, "health answered 503", t(60), t(3))).expect("release");
    let job = block_on(store.get(id)).expect("get").expect("job");
    assert_eq!(
        (job.steps[0].state, job.steps[0].clock().due_at),
        (StepState::Skipped, None)
    );
    assert!(
        job.steps.iter().all(|s| s.state.is_finished()),
        "{:?}",
        job.steps
    );
}

#[test]
fn jobs_page_newest_first_with_a_cursor_to_the_end_and_keep_their_filters() {
    let db = SqliteSql::migrated();
    let store = JobStore::new(&db);
    // Two made in the same second: the cursor's id breaks the tie.
    for (n, at) in [(1u8, 0), (2, 10), (3, 10), (4, 20), (5, 30)] {
        create(&store, &sha(n), &format!("d-{n}"), at);
    }
    let ids = |page: &[Job]| page.iter().map(|j| j.id).collect::<Vec<_>>();
    let mut seen = Vec::new();
    let mut bound = crate::cursor::Bound::all();
    for _ in 0..5 {
        let page = block_on(store.page(None, None, &bound, 3)).expect("page");
        let (page, next) = crate::cursor::page(page, 2, |j| {
            crate::cursor::Cursor::new(j.created_at, 'j', j.id.to_string())
        });
        seen.extend(ids(&page));
        match next {
            Some(c) => bound = c.bound('j', "j", true).expect("bound"),
            None => break,
        }
    }
    assert_eq!(seen, vec![5, 4, 3, 2, 1], "newest first, each once");
    assert!(block_on(store.set_status(3, JobStatus::Cancelled, None, t(40))).expect("cancel"));
    let of_app = block_on(store.page(
        Some("hello"),
        Some(JobStatus::Waiting),
        &crate::cursor::Bound::all(),
        10,
    ))
    .expect("page");
    assert_eq!(ids(&of_app), vec![5, 4, 2, 1]);
    assert!(
        block_on(store.page(Some("other"), None, &crate::cursor::Bound::all(), 10))
            .expect("page")
            .is_empty()
    );
}
