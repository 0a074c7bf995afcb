//! Deploy jobs end to end in the core: SQLite with the real migrations, a strict
//! routed fake of GitHub, the deploy hook and the health endpoint, and the queue
//! drained by hand (a retried message is simply run again).

use std::cell::RefCell;
use std::rc::Rc;

use super::*;
use crate::apps::{App, AppStore};
use crate::dispatch::{process_delivery, run_delivery};
use crate::github::deliveries::{DeliveryId, DeliveryStore, Outcome};
use crate::github::events::{GithubEvent, PushCommit, PushEvent, WorkflowRunEvent};
use crate::http::{HttpError, HttpResponse};
use crate::names::AppName;
use crate::testing::{
    block_on, fake_deps, json_response, record_queued, FakeHttp, FakePorts, MemoryKv, MemoryQueue,
    NativeCipher, NoSigner, SqliteSql,
};

const REPO: &str = "octo/app";

fn sha(n: u8) -> CommitSha {
    CommitSha::parse(&format!("{n:02x}").repeat(20)).expect("sha")
}

fn config() -> Config {
    Config::from_lookup(|k| {
        Some(
            match k {
                "GITHUB_TOKEN" => "ghs_test",
                "GITHUB_API_BASE" => "http://gh.test",
                "PUBLIC_URL" => "https://notifier.example.com",
                "HEALTH_CHECK_INTERVAL_SECONDS" => "1",
                "FLY_API_TOKEN" => "fly_test_token",
                "FLY_API_BASE" => "http://fly.test",
                _ => return None,
            }
            .to_owned(),
        )
    })
}

/// What the fakes answer; tests flip these.
#[derive(Default)]
struct World {
    hook_fails_for: Vec<String>,
    health_failures_left: u32,
    dispatch_run_id: Option<u64>,
    /// GitHub's compare `status`; `None` fails the test on a compare request.
    compare_status: Option<&'static str>,
    /// Compare requests answered 502 before `compare_status` is.
    compare_failures_left: u32,
    /// `base...head` of every compare request.
    compares: Vec<String>,
}

fn fake(world: Rc<RefCell<World>>) -> FakeHttp {
    let next_deployment = RefCell::new(100);
    FakeHttp::routed(move |req| {
        let w = world.borrow_mut();
        let url = req.url.as_str();
        if url == "http://gh.test/repos/octo/app/deployments" {
            let mut n = next_deployment.borrow_mut();
            *n += 1;
            return json_response(201, serde_json::json!({"id": *n}));
        }
        if url.starts_with("http://gh.test/repos/octo/app/deployments/")
            && url.ends_with("/statuses")
        {
            return json_response(201, serde_json::json!({"id": 1}));
        }
        if url == "http://gh.test/repos/octo/app/actions/workflows/deploy.yml/dispatches" {
            return match w.dispatch_run_id {
                Some(id) => json_response(200, serde_json::json!({"workflow_run_id": id})),
                None => Ok(HttpResponse::new(204, "")),
            };
        }
        if url == "https://hooks.example.com/deploy" {
            let body = req.body.clone().unwrap_or_default();
            if w.hook_fails_for.iter().any(|s| body.contains(s.as_str())) {
                return json_response(400, serde_json::json!({"error": "bad build"}));
            }
            return json_response(200, serde_json::json!({"ok": true}));
        }
        if url == "http://fly.test/v1/apps/app-prod/machines" {
            return json_response(
                200,
                serde_json::json!([
                    {"id": "m1", "state": "started", "config": {"image": "registry.fly.io/app:old", "env": {"PORT": "8080"}}},
                    {"id": "m2", "state": "started", "config": {"image": "registry.fly.io/app:old"}}
                ]),
            );
        }
        if let Some(machine) = url.strip_prefix("http://fly.test/v1/apps/app-prod/machines/") {
            assert!(req
                .headers
                .contains(&("authorization".into(), "Bearer fly_test_token".into())));
            return if machine.ends_with("/wait?state=started&timeout=60") {
                json_response(200, serde_json::json!({"ok": true}))
            } else {
                json_response(200, serde_json::json!({"id": machine}))
            };
        }
        if url.starts_with("http://gh.test/repos/octo/app/commits/") {
            let merge = url.contains(&"77".repeat(20));
            return if url.ends_with("/pulls") {
                json_response(200, serde_json::json!([]))
            } else if merge {
                json_response(
                    200,
                    serde_json::json!({"parents": [{"sha": "1"}, {"sha": "2"}]}),
                )
            } else {
                json_response(200, serde_json::json!({"parents": [{"sha": "1"}]}))
            };
        }
        if let Some(range) = url.strip_prefix("http://gh.test/repos/octo/app/compare/") {
            drop(w);
            let mut w = world.borrow_mut();
            let range = range.trim_end_matches("?per_page=1").to_owned();
            w.compares.push(range.clone());
            if w.compare_failures_left > 0 {
                w.compare_failures_left -= 1;
                return json_response(502, serde_json::json!({"message": "Server Error"}));
            }
            let status = w
                .compare_status
                .unwrap_or_else(|| panic!("a compare of {range} the test did not expect"));
            return json_response(200, serde_json::json!({"status": status, "commits": []}));
        }
        if url == "https://app.example.com/health" {
            drop(w);
            let mut w = world.borrow_mut();
            if w.health_failures_left > 0 {
                w.health_failures_left -= 1;
                return Ok(HttpResponse::new(503, "starting"));
            }
            return Ok(HttpResponse::new(200, "ok"));
        }
        Err(HttpError::Network(format!(
            "the fake does not serve {} {url}",
            req.method.as_str()
        )))
    })
}

struct Scenario {
    db: SqliteSql,
    queue: MemoryQueue,
    kv: MemoryKv,
    http: FakeHttp,
    world: Rc<RefCell<World>>,
    config: Config,
    clock: RefCell<i64>,
    deliveries: RefCell<u32>,
    cipher: NativeCipher,
}

impl Scenario {
    fn new(target: &str) -> Scenario {
        let world = Rc::new(RefCell::new(World::default()));
        let s = Scenario {
            db: SqliteSql::migrated(),
            queue: MemoryQueue::default(),
            kv: MemoryKv::default(),
            http: fake(world.clone()),
            world,
            config: config(),
            clock: RefCell::new(1_700_000_000_000),
            deliveries: RefCell::new(0),
            cipher: NativeCipher::default(),
        };
        s.put_app(&format!(
            r#"{{"repository": "{REPO}", "production_branch": "main", "environment": "production",
            "deploy_on": "push", "health_url": "https://app.example.com/health", "deploy": {target}}}"#
        ));
        s
    }

    /// Registers the app `app` from its JSON, or replaces it.
    fn put_app(&self, json: &str) {
        let app = App::parse(json.as_bytes()).expect("app");
        block_on(AppStore::new(&self.db).put(
            &AppName::parse("app").expect("name"),
            &app,
            self.now(),
        ))
        .expect("put");
    }

    fn now(&self) -> Timestamp {
        let mut c = self.clock.borrow_mut();
        *c += 1000;
        Timestamp::from_millis(*c)
    }

    fn deps(&self) -> Deps<'_, FakePorts<'_, NoSigner>> {
        fake_deps(
            &self.config,
            &self.http,
            &self.db,
            &self.queue,
            &self.kv,
            &NoSigner,
            &self.cipher,
        )
    }

    /// Records `event` as a fresh, queued delivery under the next id.
    fn record(&self, event: &GithubEvent) -> DeliveryId {
        let mut n = self.deliveries.borrow_mut();
        *n += 1;
        let id = DeliveryId::parse(&format!("delivery-{n}")).expect("id");
        record_queued(&self.db, &id, event, self.now());
        id
    }

    fn deliver(&self, event: GithubEvent) -> Result<String, ProcessError> {
        let id = self.record(&event);
        block_on(process_delivery(&self.deps(), &id, self.now()))
    }

    fn push(&self, n: u8) -> String {
        self.deliver(push_event(n.wrapping_sub(1), n))
            .expect("processed")
    }

    /// Records `event` as a fresh delivery and runs it as the queue consumer does.
    fn process(&self, event: GithubEvent) -> (DeliveryId, Run) {
        let id = self.record(&event);
        let run = block_on(run_delivery(&self.deps(), &id, self.now()));
        (id, run)
    }

    /// The delivery as `/api/deliveries` lists it.
    fn delivery(&self, id: &DeliveryId) -> crate::github::deliveries::DeliveryRecord {
        block_on(DeliveryStore::new(&self.db).recent(100))
            .expect("recent")
            .into_iter()
            .find(|d| d.id == id.as_str())
            .expect("recorded")
    }

    fn job_count(&self) -> usize {
        block_on(JobStore::new(&self.db).list(None, None, 100))
            .expect("list")
            .len()
    }

    /// Runs queued step messages until the queue is empty; returns the verdicts.
    fn drain(&self) -> Vec<Run> {
        let mut runs = Vec::new();
        for _ in 0..200 {
            let next = {
                let mut sent = self.queue.sent.borrow_mut();
                if sent.is_empty() {
                    return runs;
                }
                sent.remove(0)
            };
            let JobMessage::DeployStep { job_id, position } = next else {
                continue;
            };
            let run = block_on(run_step(&self.deps(), job_id, position, self.now()));
            if let Verdict::Retry { delay_seconds } = run.verdict {
                // The queue delivers it again after the delay.
                *self.clock.borrow_mut() += i64::from(delay_seconds) * 1000;
                self.queue
                    .sent
                    .borrow_mut()
                    .push(JobMessage::DeployStep { job_id, position });
            }
            runs.push(run);
        }
        panic!("the queue never drained");
    }

    fn job(&self, id: i64) -> Job {
        block_on(JobStore::new(&self.db).get(id))
            .expect("get")
            .expect("job")
    }

    fn github_calls(&self) -> Vec<(String, serde_json::Value)> {
        self.http
            .seen
            .borrow()
            .iter()
            .filter(|r| r.url.starts_with("http://gh.test"))
            .map(|r| {
                (
                    r.url.clone(),
                    serde_json::from_str(r.body.as_deref().unwrap_or("null")).unwrap_or_default(),
                )
            })
            .collect()
    }
}

/// A push of `after` on top of `before` (0: a new branch).
fn push_event(before: u8, after: u8) -> GithubEvent {
    GithubEvent::Push(PushEvent {
        repository: RepoFullName::parse(REPO).expect("repo"),
        git_ref: "refs/heads/main".into(),
        before: if before == 0 {
            CommitSha::parse(&"0".repeat(40)).expect("zero")
        } else {
            sha(before)
        },
        after: sha(after),
        created: before == 0,
        deleted: false,
        forced: false,
        commits: vec![PushCommit {
            id: sha(after),
            subject: format!("Change {after}"),
            author: Some("octocat".into()),
            timestamp: None,
        }],
        pusher: Some("octocat".into()),
        installation_id: None,
    })
}

const HOOK: &str = r#"{"type": "deploy_hook", "url": "https://hooks.example.com/deploy"}"#;
const WORKFLOW: &str =
    r#"{"type": "github_workflow", "workflow": "deploy.yml", "inputs": {"sha": "{sha}"}}"#;

fn states(job: &Job) -> Vec<(&'static str, StepState)> {
    job.steps
        .iter()
        .map(|s| (s.name.as_str(), s.state))
        .collect()
}

#[test]
fn a_push_deploys_through_every_step() {
    let s = Scenario::new(HOOK);
    assert_eq!(s.push(1), "delivery delivery-1: app: job 1 started");
    s.drain();
    let job = s.job(1);
    assert_eq!(job.status, JobStatus::Finalized, "{:?}", job.error);
    use StepState::*;
    assert_eq!(
        states(&job),
        vec![
            ("create_deployment", Done),
            ("trigger", Done),
            ("await_result", Skipped),
            ("verify_health", Done),
            ("finalize", Done)
        ]
    );
    let calls = s.github_calls();
    assert_eq!(calls[0].0, "http://gh.test/repos/octo/app/deployments");
    assert_eq!(calls[0].1["ref"], sha(1).as_str());
    assert_eq!(calls[0].1["environment"], "production");
    assert_eq!(calls[1].1["state"], "in_progress");
    assert_eq!(calls[2].1["state"], "success");
    assert_eq!(calls[2].1["environment_url"], "https://app.example.com");
    assert_eq!(calls[2].1["log_url"], "https://notifier.example.com/jobs/1");
    let hook = s
        .http
        .seen
        .borrow()
        .iter()
        .find(|r| r.url.contains("hooks"))
        .and_then(|r| r.body.clone())
        .unwrap_or_default();
    assert!(hook.contains(sha(1).as_str()));
}

#[test]
fn a_redelivered_step_message_changes_nothing() {
    let s = Scenario::new(HOOK);
    s.push(1);
    s.drain();
    let calls = s.http.seen.borrow().len();
    for position in 0..5 {
        s.queue.sent.borrow_mut().push(JobMessage::DeployStep {
            job_id: 1,
            position,
        });
    }
    let runs = s.drain();
    assert!(runs.iter().all(|r| r.verdict == Verdict::Ack));
    assert_eq!(s.http.seen.borrow().len(), calls, "no step ran twice");
    assert_eq!(s.job(1).status, JobStatus::Finalized);
}

#[test]
fn a_failed_deploy_is_reverted_to_the_last_finalized_commit() {
    let s = Scenario::new(HOOK);
    s.push(1);
    s.drain();
    s.world.borrow_mut().health_failures_left = MAX_HEALTH_ATTEMPTS as u32;
    s.push(2);
    s.drain();
    let job = s.job(2);
    assert_eq!(job.status, JobStatus::Reverted, "{:?}", job.error);
    assert_eq!(job.revert_sha.as_deref(), Some(sha(1).as_str()));
    assert!(job.error.as_deref().unwrap_or("").starts_with(
        "Health check: https://app.example.com/health answered 503 (after 6 attempts)"
    ));
    use StepState::*;
    assert_eq!(
        states(&job),
        vec![
            ("create_deployment", Done),
            ("trigger", Done),
            ("await_result", Skipped),
            ("verify_health", Failed),
            ("finalize", Skipped),
            ("revert_trigger", Done),
            ("revert_await", Skipped),
            ("revert_verify", Done),
        ]
    );
    let failure = s
        .github_calls()
        .into_iter()
        .rev()
        .find(|(_, b)| b["state"] == "failure");
    assert!(failure.is_some(), "GitHub deployment marked failed");
    let hooks: Vec<String> = s
        .http
        .seen
        .borrow()
        .iter()
        .filter(|r| r.url.contains("hooks"))
        .filter_map(|r| r.body.clone())
        .collect();
    assert!(
        hooks.last().is_some_and(|b| b.contains(sha(1).as_str())),
        "the revert re-deployed the good commit"
    );
}

#[test]
fn nothing_to_revert_to() {
    let s = Scenario::new(HOOK);
    s.world
        .borrow_mut()
        .hook_fails_for
        .push(sha(1).as_str().to_owned());
    s.push(1);
    s.drain();
    let job = s.job(1);
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(
        job.error.as_deref(),
        Some("Trigger deploy: deploy hook answered 400; nothing to revert to")
    );
}

#[test]
fn a_revert_that_fails_leaves_the_job_failed() {
    let s = Scenario::new(HOOK);
    s.push(1);
    s.drain();
    s.world.borrow_mut().hook_fails_for =
        vec![sha(2).as_str().to_owned(), sha(1).as_str().to_owned()];
    s.push(2);
    s.drain();
    let job = s.job(2);
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(
        job.error.as_deref(),
        Some("revert failed: Revert: trigger: deploy hook answered 400")
    );
    // The next push deploys normally.
    s.world.borrow_mut().hook_fails_for.clear();
    s.push(3);
    s.drain();
    assert_eq!(s.job(3).status, JobStatus::Finalized);
}

#[test]
fn newer_pushes_supersede_waiting_jobs() {
    let s = Scenario::new(HOOK);
    s.push(1); // started; its steps are queued but not run yet
    assert_eq!(s.push(2), "delivery delivery-2: app: job 2 waiting");
    assert_eq!(
        s.push(3),
        "delivery delivery-3: app: job 3 waiting, superseding [2]"
    );
    s.drain();
    assert_eq!(s.job(1).status, JobStatus::Finalized);
    assert_eq!(s.job(2).status, JobStatus::Cancelled);
    assert_eq!(s.job(2).error.as_deref(), Some("superseded by job 3"));
    assert_eq!(s.job(3).status, JobStatus::Finalized);
}

#[test]
fn two_deliveries_of_one_push_deploy_once() {
    let s = Scenario::new(HOOK);
    s.push(1);
    let again = s.deliver(GithubEvent::Push(PushEvent {
        repository: RepoFullName::parse(REPO).expect("repo"),
        git_ref: "refs/heads/main".into(),
        before: sha(0),
        after: sha(1),
        created: false,
        deleted: false,
        forced: false,
        commits: vec![],
        pusher: None,
        installation_id: None,
    }));
    assert_eq!(
        again.expect("ok"),
        "delivery delivery-2: app: job 1 exists for this commit"
    );
    s.drain();
    let deployments = s
        .github_calls()
        .iter()
        .filter(|(u, _)| u.ends_with("/deployments"))
        .count();
    assert_eq!(deployments, 1);
}

const DEPLOY_YML: &str = ".github/workflows/deploy.yml";
const CI_YML: &str = ".github/workflows/ci.yml";

/// A completed run of the workflow at `path` on `head`, created at `created`.
fn run_event(
    id: u64,
    head: &CommitSha,
    conclusion: &str,
    path: &str,
    created: Timestamp,
) -> GithubEvent {
    GithubEvent::WorkflowRun(WorkflowRunEvent {
        action: "completed".into(),
        repository: RepoFullName::parse(REPO).expect("repo"),
        id,
        name: Some("Deploy".into()),
        path: Some(path.into()),
        workflow_id: Some(4242),
        head_sha: head.clone(),
        head_branch: Some("main".into()),
        status: Some("completed".into()),
        conclusion: Some(conclusion.into()),
        html_url: Some(format!("https://github.com/octo/app/actions/runs/{id}")),
        created_at: Some(created.to_rfc3339()),
        updated_at: None,
        installation_id: None,
    })
}

/// The id of the run that decided step `position` of `job`.
fn run_that_decided(job: &Job, position: usize) -> Option<u64> {
    job.steps[position].result.as_ref()?["workflow_run_id"].as_u64()
}

impl Scenario {
    /// A run created just now (after every dispatch so far).
    fn run(&self, id: u64, head: &CommitSha, conclusion: &str, path: &str) -> GithubEvent {
        run_event(id, head, conclusion, path, self.now())
    }

    /// Runs queued step messages until job `job`'s step `position` has run.
    fn run_through(&self, job: i64, position: i64) {
        for _ in 0..50 {
            let next = self.queue.sent.borrow_mut().remove(0);
            let JobMessage::DeployStep {
                job_id,
                position: p,
            } = next
            else {
                continue;
            };
            block_on(run_step(&self.deps(), job_id, p, self.now()));
            if (job_id, p) == (job, position) {
                return;
            }
        }
        panic!("step {position} of job {job} never ran");
    }
}

#[test]
fn a_workflow_target_waits_for_its_run_by_id() {
    let s = Scenario::new(WORKFLOW);
    s.world.borrow_mut().dispatch_run_id = Some(991);
    s.push(1);
    s.drain();
    let job = s.job(1);
    assert_eq!(job.status, JobStatus::Processing);
    assert_eq!(job.steps[2].state, StepState::Started, "awaiting the run");
    let dispatch = s
        .github_calls()
        .into_iter()
        .find(|(u, _)| u.ends_with("/dispatches"))
        .expect("dispatched");
    assert_eq!(dispatch.1["inputs"]["sha"], sha(1).as_str());
    assert_eq!(dispatch.1["ref"], "main");
    // Another run on the same sha is not ours.
    assert_eq!(
        s.deliver(s.run(990, &sha(1), "failure", DEPLOY_YML))
            .expect("ok"),
        "delivery delivery-2: workflow run 990: no step waits for it"
    );
    assert_eq!(
        s.deliver(s.run(991, &sha(1), "success", DEPLOY_YML))
            .expect("ok"),
        "delivery delivery-3: workflow run 991: resumed job steps [(1, 2)]"
    );
    s.drain();
    let job = s.job(1);
    assert_eq!(job.status, JobStatus::Finalized, "{:?}", job.error);
    assert_eq!(run_that_decided(&job, 2), Some(991));
}

#[test]
fn a_run_that_finished_first_is_found_by_head_sha() {
    let s = Scenario::new(WORKFLOW);
    // GitHub returned no run id, and the run completed before the step waited.
    s.push(1);
    s.run_through(1, 1);
    s.deliver(s.run(555, &sha(1), "success", DEPLOY_YML))
        .expect("recorded");
    s.drain();
    let job = s.job(1);
    assert_eq!(job.status, JobStatus::Finalized, "{:?}", job.error);
    assert_eq!(run_that_decided(&job, 2), Some(555));
}

#[test]
fn a_failed_run_fails_the_deploy() {
    let s = Scenario::new(WORKFLOW);
    s.world.borrow_mut().dispatch_run_id = Some(7);
    s.push(1);
    s.drain();
    s.deliver(s.run(7, &sha(1), "failure", DEPLOY_YML))
        .expect("ok");
    s.drain();
    let job = s.job(1);
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(
        job.error.as_deref(),
        Some("Await result: workflow run 7 concluded failure; nothing to revert to")
    );
}

#[test]
fn another_workflows_run_or_an_older_run_on_the_commit_decides_nothing() {
    let s = Scenario::new(WORKFLOW);
    // The dispatch answers 204 without a run id: runs are matched by commit.
    s.push(1);
    s.drain();
    let waiting = |s: &Scenario| {
        let job = s.job(1);
        (job.status, job.steps[2].state)
    };
    assert_eq!(waiting(&s), (JobStatus::Processing, StepState::Started));
    let dispatched = s.job(1).steps[1].result.clone().expect("trigger result");
    assert_eq!(dispatched["workflow"], "deploy.yml");
    // A failing lint run on the deployed commit is not the deploy's.
    assert_eq!(
        s.deliver(s.run(70, &sha(1), "failure", CI_YML))
            .expect("ok"),
        "delivery delivery-2: workflow run 70: no step waits for it"
    );
    // Nor is a deploy.yml run created before this dispatch.
    let earlier =
        Timestamp::from_millis(dispatched["dispatched_at"].as_i64().expect("at")).minus_seconds(60);
    assert_eq!(
        s.deliver(run_event(71, &sha(1), "failure", DEPLOY_YML, earlier))
            .expect("ok"),
        "delivery delivery-3: workflow run 71: no step waits for it"
    );
    s.drain();
    // Nor does the sweep's next look find them in the delivery log.
    *s.clock.borrow_mut() += 121 * 1000;
    let log = block_on(crate::deploy::sweep::sweep(&s.deps(), s.now()));
    assert_eq!(log, vec!["job 1 step 2 (await_result) re-enqueued"]);
    s.drain();
    assert_eq!(waiting(&s), (JobStatus::Processing, StepState::Started));
    // The deploy.yml run of this dispatch decides.
    assert_eq!(
        s.deliver(s.run(72, &sha(1), "success", DEPLOY_YML))
            .expect("ok"),
        "delivery delivery-4: workflow run 72: resumed job steps [(1, 2)]"
    );
    s.drain();
    let job = s.job(1);
    assert_eq!(job.status, JobStatus::Finalized, "{:?}", job.error);
    assert_eq!(run_that_decided(&job, 2), Some(72));
}

#[test]
fn a_revert_waits_for_its_own_run_not_the_old_commits_old_one() {
    let s = Scenario::new(WORKFLOW);
    s.push(1);
    s.drain();
    s.deliver(s.run(100, &sha(1), "success", DEPLOY_YML))
        .expect("ok");
    s.drain();
    assert_eq!(s.job(1).status, JobStatus::Finalized);
    s.push(2);
    s.drain();
    s.deliver(s.run(200, &sha(2), "failure", DEPLOY_YML))
        .expect("ok");
    s.drain();
    // Reverting to sha 1, whose successful run 100 is in the delivery log: it
    // predates the revert's dispatch, so the revert waits.
    let job = s.job(2);
    assert_eq!(job.status, JobStatus::Reverting, "{:?}", job.error);
    assert_eq!(job.steps[6].name, StepName::RevertAwait);
    assert_eq!(job.steps[6].state, StepState::Started);
    assert_eq!(
        s.deliver(s.run(300, &sha(1), "failure", CI_YML))
            .expect("ok"),
        "delivery delivery-5: workflow run 300: no step waits for it"
    );
    assert_eq!(
        s.deliver(s.run(301, &sha(1), "success", DEPLOY_YML))
            .expect("ok"),
        "delivery delivery-6: workflow run 301: resumed job steps [(2, 6)]"
    );
    s.drain();
    let job = s.job(2);
    assert_eq!(job.status, JobStatus::Reverted, "{:?}", job.error);
    assert_eq!(run_that_decided(&job, 6), Some(301));
}

#[test]
fn the_decision_after_a_step_is_pure() {
    let s = Scenario::new(HOOK);
    s.push(1);
    let job = s.job(1);
    let step = job.steps[1].clone();
    let done = StepOutcome::Done(serde_json::json!({}));
    assert_eq!(
        after_step(&job, &step, &done, None, 10),
        Next::Step(3),
        "skips the skipped await"
    );
    let mut tried = step.clone();
    tried.attempts = 2;
    assert_eq!(
        after_step(
            &job,
            &tried,
            &StepOutcome::Transient("502".into()),
            None,
            10
        ),
        Next::RetryIn(4)
    );
    tried.attempts = MAX_STEP_ATTEMPTS;
    assert_eq!(
        after_step(
            &job,
            &tried,
            &StepOutcome::Transient("502".into()),
            Some(&"ab".repeat(20)),
            10
        ),
        Next::Revert {
            sha: "ab".repeat(20),
            error: "Trigger deploy: 502 (after 5 attempts)".into()
        }
    );
    assert_eq!(
        after_step(
            &job,
            &step,
            &StepOutcome::Waiting(serde_json::json!({}), None),
            None,
            10
        ),
        Next::Wait
    );
}

#[test]
fn the_sweep_times_out_a_wait_that_never_ends() {
    let s = Scenario::new(WORKFLOW);
    s.world.borrow_mut().dispatch_run_id = Some(12);
    s.push(1);
    s.drain();
    // Ten minutes on: the sweep looks again (nothing came) and leaves it waiting.
    *s.clock.borrow_mut() += 10 * 60 * 1000;
    let log = block_on(crate::deploy::sweep::sweep(&s.deps(), s.now()));
    assert_eq!(log, vec!["job 1 step 2 (await_result) re-enqueued"]);
    s.drain();
    assert_eq!(s.job(1).status, JobStatus::Processing);
    *s.clock.borrow_mut() += 31 * 60 * 1000;
    let log = block_on(crate::deploy::sweep::sweep(&s.deps(), s.now()));
    assert!(log[0].starts_with("timed out: job 1"), "{log:?}");
    s.drain();
    let job = s.job(1);
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(
        job.error.as_deref(),
        Some("Await result: no result within 30 minutes; nothing to revert to")
    );
}

#[test]
fn a_step_whose_consumer_died_is_run_again_by_the_sweep() {
    let s = Scenario::new(HOOK);
    s.push(1);
    // The consumer claims the first step and dies: its message is gone.
    s.queue.sent.borrow_mut().clear();
    block_on(JobStore::new(&s.db).claim_step(1, 0, s.now(), s.config.step_claims()))
        .expect("claim")
        .expect("claimed");
    s.drain();
    assert_eq!(s.job(1).status, JobStatus::Processing);
    *s.clock.borrow_mut() += (i64::from(s.config.step_stale_seconds) + 1) * 1000;
    let log = block_on(crate::deploy::sweep::sweep(&s.deps(), s.now()));
    assert_eq!(log, vec!["job 1 step 0 (create_deployment) re-enqueued"]);
    s.drain();
    let job = s.job(1);
    assert_eq!(job.status, JobStatus::Finalized);
    assert_eq!(job.steps[0].attempts, 2);
}

#[test]
fn a_health_retry_scheduled_160_s_out_is_run_neither_by_the_sweep_nor_by_an_early_message() {
    let mut s = Scenario::new(HOOK);
    s.config.health_check_interval_seconds = 160;
    s.world.borrow_mut().health_failures_left = 1;
    s.push(1);
    let health_checks = |s: &Scenario| {
        s.http
            .seen
            .borrow()
            .iter()
            .filter(|r| r.url == "https://app.example.com/health")
            .count()
    };
    // Run the steps up to the first health check, which is answered 503.
    let retry = loop {
        let next = s.queue.sent.borrow_mut().remove(0);
        let JobMessage::DeployStep { job_id, position } = next else {
            panic!("a step message")
        };
        let run = block_on(run_step(&s.deps(), job_id, position, s.now()));
        if let Verdict::Retry { delay_seconds } = run.verdict {
            break (position, delay_seconds);
        }
    };
    assert_eq!(retry, (3, 160));
    assert_eq!(health_checks(&s), 1);
    // 130 s on, the step is untouched past SWEEP_AFTER_SECONDS, but not due.
    *s.clock.borrow_mut() += 130 * 1000;
    let log = block_on(crate::deploy::sweep::sweep(&s.deps(), s.now()));
    assert!(log.is_empty(), "{log:?}");
    assert!(s.queue.sent.borrow().is_empty());
    // A duplicated message before its time runs nothing and comes back when due.
    let due = Timestamp::from_millis(s.job(1).steps[3].due_at.expect("due"));
    let now = s.now();
    assert!(now.plus_seconds(20) < due && due < now.plus_seconds(40));
    let early = block_on(run_step(&s.deps(), 1, 3, now));
    assert_eq!(
        early.verdict,
        Verdict::Retry {
            delay_seconds: crate::retry::seconds_until(due, now)
        }
    );
    assert_eq!((health_checks(&s), s.job(1).steps[3].attempts), (1, 1));
    // Its own message, when due, runs it.
    *s.clock.borrow_mut() = due.millis();
    s.queue.sent.borrow_mut().push(JobMessage::DeployStep {
        job_id: 1,
        position: 3,
    });
    s.drain();
    let job = s.job(1);
    assert_eq!(job.status, JobStatus::Finalized, "{:?}", job.error);
    assert_eq!((health_checks(&s), job.steps[3].attempts), (2, 2));
}

#[test]
fn a_lost_delivery_message_is_enqueued_again() {
    let s = Scenario::new(HOOK);
    let id = DeliveryId::parse("lost-1").expect("id");
    let event = GithubEvent::Other {
        event: "push".into(),
        action: None,
        repository: None,
    };
    block_on(DeliveryStore::new(&s.db).record(&id, &event, Outcome::Queued, None, s.now()))
        .expect("record");
    *s.clock.borrow_mut() += 200 * 1000;
    let log = block_on(crate::deploy::sweep::sweep(&s.deps(), s.now()));
    assert_eq!(log, vec!["delivery lost-1 re-enqueued"]);
    assert_eq!(
        s.queue.sent.borrow().as_slice(),
        &[JobMessage::GithubDelivery {
            id: "lost-1".into()
        }]
    );
    let log = block_on(crate::deploy::sweep::sweep(&s.deps(), s.now()));
    assert!(log.is_empty(), "not again before another grace period");
}

#[test]
fn a_fly_target_moves_every_machine_to_the_new_image() {
    let s = Scenario::new(
        r#"{"type": "fly", "app": "app-prod", "image": "registry.fly.io/app:{sha}"}"#,
    );
    s.push(1);
    s.drain();
    let job = s.job(1);
    assert_eq!(job.status, JobStatus::Finalized, "{:?}", job.error);
    let seen = s.http.seen.borrow();
    let updates: Vec<serde_json::Value> = seen
        .iter()
        .filter(|r| {
            r.method == crate::http::Method::Post
                && r.url
                    .starts_with("http://fly.test/v1/apps/app-prod/machines/")
        })
        .map(|r| serde_json::from_str(r.body.as_deref().unwrap_or("{}")).expect("json"))
        .collect();
    assert_eq!(updates.len(), 2);
    assert_eq!(
        updates[0]["config"]["image"],
        format!("registry.fly.io/app:{}", sha(1).as_str())
    );
    assert_eq!(
        updates[0]["config"]["env"]["PORT"], "8080",
        "the rest of the config is kept"
    );
    let waits = seen
        .iter()
        .filter(|r| r.url.ends_with("/wait?state=started&timeout=60"))
        .count();
    assert_eq!(waits, 2);
    assert_eq!(
        job.steps[2].result.as_ref().map(|r| r["started"].clone()),
        Some(serde_json::json!(["m1", "m2"]))
    );
}

#[test]
fn deploy_on_merge_skips_direct_pushes() {
    let s = Scenario::new(HOOK);
    s.put_app(&format!(
        r#"{{"repository": "{REPO}", "production_branch": "main", "environment": "production",
        "deploy_on": "merge", "deploy": {HOOK}}}"#
    ));
    assert_eq!(s.push(1), "delivery delivery-1: app: not a merge");
    assert_eq!(s.push(0x77), "delivery delivery-2: app: job 1 started");
    s.drain();
    assert_eq!(s.job(1).sha, sha(0x77).as_str());
    assert_eq!(s.job(1).status, JobStatus::Finalized);
}

#[test]
fn a_step_whose_message_was_lost_is_run_by_the_sweep() {
    let s = Scenario::new(HOOK);
    s.push(1);
    // The first step's message never arrives (a failed send, a dead letter).
    s.queue.sent.borrow_mut().clear();
    *s.clock.borrow_mut() += 121 * 1000;
    let log = block_on(crate::deploy::sweep::sweep(&s.deps(), s.now()));
    assert_eq!(log, vec!["job 1 step 0 (create_deployment) re-enqueued"]);
    s.drain();
    assert_eq!(s.job(1).status, JobStatus::Finalized);
    // A waiting job's steps are not the sweep's business.
    s.push(2);
    s.push(3);
    s.queue.sent.borrow_mut().clear();
    *s.clock.borrow_mut() += 121 * 1000;
    let log = block_on(crate::deploy::sweep::sweep(&s.deps(), s.now()));
    assert_eq!(log, vec!["job 2 step 0 (create_deployment) re-enqueued"]);
}

#[test]
fn a_job_stranded_after_its_last_step_is_finished_by_the_sweep() {
    let s = Scenario::new(HOOK);
    s.push(1);
    s.drain();
    // The Worker died after the last step of job 1 and before its status moved.
    s.db.conn_for_tests()
        .execute(
            "UPDATE deploy_jobs SET status = 'processing' WHERE id = 1",
            [],
        )
        .expect("simulate");
    s.push(2);
    assert_eq!(
        s.job(2).status,
        JobStatus::Waiting,
        "blocked behind the stranded job"
    );
    *s.clock.borrow_mut() += 121 * 1000;
    let log = block_on(crate::deploy::sweep::sweep(&s.deps(), s.now()));
    assert!(
        log.contains(&"job 1: finalized after an interruption".to_owned()),
        "{log:?}"
    );
    assert_eq!(s.job(1).status, JobStatus::Finalized);
    s.drain();
    assert_eq!(s.job(2).status, JobStatus::Finalized);
}

/// Push 1, then 2 on top of it, both deployed.
fn two_finalized_pushes() -> Scenario {
    let s = Scenario::new(HOOK);
    s.push(1);
    s.drain();
    s.push(2);
    s.drain();
    assert_eq!(s.job(2).status, JobStatus::Finalized);
    s
}

#[test]
fn a_late_push_older_than_the_finalized_commit_starts_no_job() {
    let s = two_finalized_pushes();
    let calls = s.http.seen.borrow().len();
    // Push 1 again, late (a redelivery from days ago, or its body under a new id).
    let (id, run) = s.process(push_event(0, 1));
    assert_eq!(run.verdict, Verdict::Ack);
    assert_eq!(
        run.log,
        "delivery delivery-3: app: older than the deployed commit (push 0101010, deployed 0202020)"
    );
    let recorded = s.delivery(&id);
    assert_eq!(recorded.outcome, Outcome::Ignored);
    assert_eq!(
        recorded.detail.as_deref(),
        Some("app: older than the deployed commit (push 0101010, deployed 0202020)")
    );
    assert_eq!(s.job_count(), 2, "no job for the older commit");
    assert!(s.queue.sent.borrow().is_empty(), "nothing dispatched");
    assert_eq!(
        s.http.seen.borrow().len(),
        calls,
        "no call: the chain decided"
    );
}

#[test]
fn the_finalized_push_posted_again_under_a_new_id_starts_no_job() {
    let s = Scenario::new(HOOK);
    s.push(1);
    s.drain();
    // Push 2 fails and is reverted: 1 is deployed again, 2's job is the newest.
    s.world
        .borrow_mut()
        .hook_fails_for
        .push(sha(2).as_str().to_owned());
    s.push(2);
    s.drain();
    assert_eq!(s.job(2).status, JobStatus::Reverted);
    let (id, _) = s.process(push_event(0, 1));
    assert_eq!(s.delivery(&id).outcome, Outcome::Ignored);
    assert_eq!(
        s.delivery(&id).detail.as_deref(),
        Some("app: older than the deployed commit (push 0101010, deployed 0101010)")
    );
    assert_eq!(s.job_count(), 2);
    assert!(s.queue.sent.borrow().is_empty());
}

#[test]
fn a_push_older_than_the_active_or_the_waiting_job_starts_no_job() {
    let s = Scenario::new(HOOK);
    s.push(1); // processing
    s.push(2); // waiting behind it
    s.push(3);
    // 2 (cancelled by 3) again: older than 3, the job that waits.
    let (id, _) = s.process(push_event(1, 2));
    assert_eq!(
        s.delivery(&id).detail.as_deref(),
        Some("app: older than the deployed commit (push 0202020, deployed 0303030)")
    );
    s.drain();
    assert_eq!(s.job(3).status, JobStatus::Finalized);
    assert_eq!(s.job_count(), 3);
}

#[test]
fn a_newer_push_after_a_finalized_one_still_deploys() {
    let s = two_finalized_pushes();
    assert_eq!(s.push(3), "delivery delivery-3: app: job 3 started");
    s.drain();
    assert_eq!(s.job(3).status, JobStatus::Finalized);
    assert!(s.world.borrow().compares.is_empty(), "the chain decided");
}

#[test]
fn what_the_chain_cannot_place_is_asked_of_the_compare_api() {
    for (status, deploys) in [
        ("ahead", true),
        ("diverged", true),
        ("behind", false),
        ("identical", false),
    ] {
        let s = two_finalized_pushes();
        s.world.borrow_mut().compare_status = Some(status);
        // Pushed on top of a commit no job recorded.
        let (id, run) = s.process(push_event(8, 9));
        assert_eq!(
            s.world.borrow().compares,
            vec![format!("{}...{}", sha(2).as_str(), sha(9).as_str())],
            "{status}: deployed...candidate"
        );
        assert_eq!(s.job_count() == 3, deploys, "{status}: {}", run.log);
        let outcome = s.delivery(&id).outcome;
        if deploys {
            assert_eq!(outcome, Outcome::Processed, "{status}");
            s.drain();
            assert_eq!(s.job(3).status, JobStatus::Finalized, "{status}");
        } else {
            assert_eq!(outcome, Outcome::Ignored, "{status}");
            assert_eq!(
                s.delivery(&id).detail.as_deref(),
                Some("app: older than the deployed commit (push 0909090, deployed 0202020)")
            );
        }
    }
}

#[test]
fn a_compare_error_is_retried_not_lost() {
    let s = two_finalized_pushes();
    {
        let mut w = s.world.borrow_mut();
        w.compare_failures_left = 1;
        w.compare_status = Some("ahead");
    }
    let (id, run) = s.process(push_event(8, 9));
    assert_eq!(run.verdict, Verdict::Retry { delay_seconds: 30 });
    let recorded = s.delivery(&id);
    assert_eq!(recorded.outcome, Outcome::Queued, "still to be done");
    assert_eq!(recorded.attempts, 1);
    assert_eq!(
        recorded.last_error.as_deref(),
        Some("GitHub 502: Server Error")
    );
    assert_eq!(s.job_count(), 2, "nothing decided on a failed compare");
    // The queue delivers it again.
    let again = block_on(run_delivery(&s.deps(), &id, s.now()));
    assert_eq!(again.verdict, Verdict::Ack);
    assert_eq!(s.delivery(&id).outcome, Outcome::Processed);
    s.drain();
    assert_eq!(s.job(3).status, JobStatus::Finalized);
}

#[test]
fn a_delivery_that_keeps_failing_is_given_up_after_ten_attempts_and_replay_starts_over() {
    use crate::flow::Verdict::Ack;
    let retry_in = |delay_seconds| Verdict::Retry { delay_seconds };
    use crate::github::deliveries::MAX_PROCESS_ATTEMPTS;
    let s = two_finalized_pushes();
    s.world.borrow_mut().compare_failures_left = u32::MAX;
    let (id, first) = s.process(push_event(8, 9));
    let mut verdicts = vec![first.verdict];
    for _ in 1..MAX_PROCESS_ATTEMPTS {
        let run = block_on(run_delivery(&s.deps(), &id, s.now()));
        verdicts.push(run.verdict);
    }
    assert_eq!(
        verdicts,
        vec![
            retry_in(30),
            retry_in(60),
            retry_in(120),
            retry_in(240),
            retry_in(480),
            retry_in(960),
            retry_in(1920),
            retry_in(3840),
            retry_in(7680),
            Ack
        ]
    );
    let recorded = s.delivery(&id);
    assert_eq!(recorded.outcome, Outcome::Failed);
    assert_eq!(recorded.attempts, 10);
    assert_eq!(
        recorded.detail.as_deref(),
        Some("gave up after 10 attempts: GitHub 502: Server Error")
    );
    assert_eq!(
        recorded.last_error.as_deref(),
        Some("GitHub 502: Server Error")
    );
    // The sweep leaves a failed delivery alone, however long it waits.
    *s.clock.borrow_mut() += 86_400 * 1000;
    assert!(block_on(crate::deploy::sweep::sweep(&s.deps(), s.now())).is_empty());
    // A replay (GitHub is back) starts the count over and processes it.
    s.world.borrow_mut().compare_failures_left = 0;
    s.world.borrow_mut().compare_status = Some("ahead");
    block_on(DeliveryStore::new(&s.db).replay(&id, s.now())).expect("replay");
    assert_eq!(s.delivery(&id).attempts, 0);
    let run = block_on(run_delivery(&s.deps(), &id, s.now()));
    assert_eq!(run.verdict, Ack, "{}", run.log);
    assert_eq!(s.delivery(&id).outcome, Outcome::Processed);
}

#[test]
fn the_sweep_re_enqueues_a_failing_delivery_only_once_its_next_attempt_is_due() {
    let s = two_finalized_pushes();
    s.world.borrow_mut().compare_failures_left = u32::MAX;
    let (id, _) = s.process(push_event(8, 9));
    for _ in 0..4 {
        block_on(run_delivery(&s.deps(), &id, s.now()));
    }
    // Fifth failure: the next attempt is 480 s away; its message waits in the queue.
    assert_eq!(s.delivery(&id).attempts, 5);
    *s.clock.borrow_mut() += 300 * 1000;
    let log = block_on(crate::deploy::sweep::sweep(&s.deps(), s.now()));
    assert!(log.is_empty(), "not before its time: {log:?}");
    // Its message was dead-lettered: once the attempt is overdue, the sweep sends it.
    *s.clock.borrow_mut() += 400 * 1000;
    let log = block_on(crate::deploy::sweep::sweep(&s.deps(), s.now()));
    assert_eq!(log, vec![format!("delivery {} re-enqueued", id.as_str())]);
    assert_eq!(s.delivery(&id).attempts, 5, "the sweep keeps the count");
}

mod approvals;
mod web_pages;
