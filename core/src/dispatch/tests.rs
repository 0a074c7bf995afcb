//! The dispatcher in scenarios: SQLite with the real migrations, a routed fake of
//! GitHub, the deploy hook and Telegram, and the queue read by hand. Each event and
//! message kind reaches its flow, and each flow's verdict reaches the queue.

use std::cell::Cell;

use super::*;
use crate::apps::{App, AppStore};
use crate::config::Config;
use crate::github::events::parse;
use crate::http::HttpError;
use crate::names::AppName;
use crate::notify::store::NotificationStatus;
use crate::retry::MAX_DELIVERY_ATTEMPTS;
use crate::testing::{
    block_on, fake_deps, hook_deployment, json_response, record_queued, FakeHttp, FakePorts,
    MemoryKv, MemoryQueue, NativeCipher, NoSigner, SqliteSql,
};

const REPO: &str = "Codertocat/Hello-World";

struct Queue {
    db: SqliteSql,
    queue: MemoryQueue,
    kv: MemoryKv,
    http: FakeHttp,
    cipher: NativeCipher,
    config: Config,
    clock: Cell<i64>,
}

impl Queue {
    /// One app deploying `REPO`'s `master` through a deploy hook; Telegram answers
    /// `telegram_status`.
    fn new(telegram_status: u16) -> Queue {
        let q = Queue {
            db: SqliteSql::migrated(),
            queue: MemoryQueue::default(),
            kv: MemoryKv::default(),
            http: FakeHttp::routed(move |req| match req.url.as_str() {
                "http://gh.test/repos/Codertocat/Hello-World/deployments" => {
                    json_response(201, serde_json::json!({"id": 101}))
                }
                "http://gh.test/repos/Codertocat/Hello-World/deployments/101/statuses" => {
                    json_response(201, serde_json::json!({"id": 1}))
                }
                "http://tg.test/bot42:TOKEN/sendMessage" if telegram_status == 200 => {
                    json_response(
                        200,
                        serde_json::json!({"ok": true, "result": {"message_id": 7}}),
                    )
                }
                "http://tg.test/bot42:TOKEN/sendMessage" => json_response(
                    telegram_status,
                    serde_json::json!({"ok": false, "description": "Service Unavailable"}),
                ),
                url => Err(HttpError::Network(format!("the fake does not serve {url}"))),
            }),
            cipher: NativeCipher::default(),
            config: Config::from_lookup(|k| {
                Some(
                    match k {
                        "GITHUB_TOKEN" => "ghs_test",
                        "GITHUB_API_BASE" => "http://gh.test",
                        "TELEGRAM_BOT_TOKEN" => "42:TOKEN",
                        "TELEGRAM_CHAT_ID" => "-100",
                        "TELEGRAM_API_BASE" => "http://tg.test",
                        _ => return None,
                    }
                    .to_owned(),
                )
            }),
            clock: Cell::new(1_700_000_000_000),
        };
        let app = App::parse(
            format!(
                r#"{{"repository": "{REPO}", "production_branch": "master", "environment": "production",
                "deploy_on": "push", "deploy": {{"type": "deploy_hook", "url": "https://hooks.example.com/deploy"}}}}"#
            )
            .as_bytes(),
        )
        .expect("app");
        block_on(AppStore::new(&q.db).put(&AppName::parse("app").expect("name"), &app, q.now()))
            .expect("app stored");
        q
    }

    /// The clock moves an hour each time it is read: every retry is due.
    fn now(&self) -> Timestamp {
        self.clock.set(self.clock.get() + 3_600_000);
        Timestamp::from_millis(self.clock.get())
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

    /// Records the fixture `fixture` as delivery `id` of `event` and returns the
    /// message `/github` enqueues for it.
    fn delivered(&self, id: &str, event: &str, fixture: &str) -> JobMessage {
        let path = format!(
            "{}/../tests/fixtures/github/{fixture}",
            env!("CARGO_MANIFEST_DIR")
        );
        let body = std::fs::read(path).expect("fixture");
        let event = parse(event, &body).expect("parses");
        let id = DeliveryId::parse(id).expect("id");
        record_queued(&self.db, &id, &event, self.now());
        JobMessage::GithubDelivery {
            id: id.as_str().to_owned(),
        }
    }

    fn consume(&self, messages: &[JobMessage], dead_letters: bool) -> Consumed {
        block_on(consume(&self.deps(), messages, dead_letters, || self.now()))
    }

    /// The messages the flows enqueued, taken off the queue.
    fn enqueued(&self) -> Vec<JobMessage> {
        self.queue.sent.take()
    }

    fn notification(&self) -> i64 {
        self.notification_for("b-1")
    }

    fn delivery_outcome(&self, id: &str) -> Outcome {
        block_on(DeliveryStore::new(&self.db).recent(10))
            .expect("recent")
            .into_iter()
            .find(|d| d.id == id)
            .expect("recorded")
            .outcome
    }
}

fn info(text: &str) -> Line {
    Line::Info(text.to_owned())
}

fn error(text: &str) -> Line {
    Line::Error(text.to_owned())
}

#[test]
fn each_delivery_reaches_the_flows_that_listen_to_its_event() {
    let q = Queue::new(200);
    let push = q.delivered("d-push", "push", "push.with-new-branch.json");
    let pr = q.delivered("d-pr", "pull_request", "pull_request.opened.json");
    let run = q.delivered("d-run", "workflow_run", "workflow_run.completed.json");
    let ping = q.delivered("d-ping", "ping", "ping.json");

    let done = q.consume(&[push, pr, run, ping], false);

    assert_eq!(done.verdicts, vec![Some(Verdict::Ack); 4]);
    assert_eq!(
        done.log,
        vec![
            // The deploy flow made a job and enqueued its first step.
            info("github: delivery d-push: app: job 1 started"),
            // The preview flow looked for apps that preview the repository.
            info("github: delivery d-pr: no app previews Codertocat/Hello-World"),
            // The deploy flow looked for steps waiting for the run.
            info("github: delivery d-run: workflow run 289782451: no step waits for it"),
            info("github: delivery d-ping: nothing to do"),
        ]
    );
    assert!(matches!(
        q.enqueued().as_slice(),
        [JobMessage::DeployStep { job_id: 1, .. }]
    ));
    assert_eq!(q.delivery_outcome("d-push"), Outcome::Processed);
    assert_eq!(q.delivery_outcome("d-ping"), Outcome::Processed);
}

#[test]
fn a_protection_rule_and_its_review_reach_the_protection_flow() {
    // This queue has GITHUB_TOKEN and no App: the flow says why it cannot review
    // (the protection flow's own scenarios run with the App).
    let q = Queue::new(200);
    let rule = q.delivered(
        "d-rule",
        "deployment_protection_rule",
        "deployment_protection_rule.requested.json",
    );
    let done = q.consume(&[rule, JobMessage::ProtectionReview { id: 5 }], false);
    assert_eq!(done.verdicts, vec![Some(Verdict::Ack); 2]);
    assert_eq!(
        done.log,
        vec![
            info("github: delivery d-rule: deployment protection rules are reviewed through the GitHub App, and GITHUB_APP_ID is not configured"),
            info("protection: protection request 5: no review due"),
        ]
    );
    assert_eq!(q.delivery_outcome("d-rule"), Outcome::Processed);
    assert!(q.enqueued().is_empty());
}

#[test]
fn each_message_reaches_the_flow_that_owns_it() {
    let q = Queue::new(200);
    let push = q.delivered("d-push", "push", "push.with-new-branch.json");
    q.consume(&[push], false);
    let step = q.enqueued().remove(0);
    let workflow_step = JobMessage::WorkflowStep {
        workflow_id: 7,
        step: crate::orchestrate::definition::StepId::parse("infra_pr").expect("step id"),
    };
    let bad_delivery = JobMessage::GithubDelivery {
        id: "../admin".into(),
    };

    let done = q.consume(
        &[
            step,
            JobMessage::Preview { id: 99 },
            workflow_step,
            bad_delivery,
        ],
        false,
    );

    assert_eq!(done.verdicts, vec![Some(Verdict::Ack); 4]);
    assert_eq!(
        done.log,
        vec![
            info("deploy: job 1 (app 6113728) create_deployment: done"),
            info("preview 99: held by another run, which picks up this change"),
            info("orchestrate: workflow 7 infra_pr: no such workflow"),
            error("deploy: dropping a message with an invalid delivery id"),
        ]
    );
    // The deploy step enqueued the job's next one.
    assert!(matches!(
        q.enqueued().as_slice(),
        [JobMessage::DeployStep { job_id: 1, .. }]
    ));
}

#[test]
fn a_transient_failure_is_retried_after_its_delay_and_its_dead_letter_acknowledged() {
    let q = Queue::new(200);
    let push = q.delivered("d-push", "push", "push.with-new-branch.json");
    q.queue.fail.set(true);

    let done = q.consume(std::slice::from_ref(&push), false);

    let base = q.config.delivery_retry_base_seconds;
    assert_eq!(
        done.verdicts,
        vec![Some(Verdict::Retry {
            delay_seconds: base
        })]
    );
    let [Line::Error(line)] = done.log.as_slice() else {
        panic!("one error line: {:?}", done.log);
    };
    assert!(
        line.starts_with("github: delivery d-push: attempt 1 failed: ")
            && line.ends_with(&format!("; retrying in {base} s")),
        "{line}"
    );
    assert_eq!(q.delivery_outcome("d-push"), Outcome::Queued);

    // The queue gave up on it: acknowledged, and left for the cron's sweep.
    let dead = q.consume(std::slice::from_ref(&push), true);
    assert_eq!(dead.verdicts, vec![Some(Verdict::Ack)]);
    assert_eq!(
        dead.log,
        vec![error(
            "queue: dead-lettered GithubDelivery { id: \"d-push\" }; the cron sweep picks up what it left unfinished"
        )]
    );
    assert_eq!(q.delivery_outcome("d-push"), Outcome::Queued);
}

#[test]
fn a_failing_notification_is_retried_as_its_own_message_until_it_fails() {
    let q = Queue::new(503);
    let id = q.notification();
    // The sweep re-enqueued it: both copies are acknowledged, one send is made.
    let copies = [JobMessage::Notify { id }, JobMessage::Notify { id }];
    let done = q.consume(&copies, false);
    assert_eq!(done.verdicts, vec![Some(Verdict::Ack); 2]);
    let mut delays = Vec::new();
    for _ in 1..MAX_DELIVERY_ATTEMPTS {
        let next = q.queue.later.borrow_mut().pop();
        let Some((message, delay)) = next else {
            panic!("the failed send waits on the queue")
        };
        assert!(
            matches!(message, JobMessage::TelegramSend { .. }),
            "{message:?}"
        );
        delays.push(delay);
        let done = q.consume(&[message], false);
        assert_eq!(done.verdicts, vec![Some(Verdict::Ack)]);
    }
    assert_eq!(delays, vec![2, 4, 8, 16, 32]);
    assert!(q.queue.later.borrow().is_empty(), "given up on");
    assert_eq!(q.notification_status(id), NotificationStatus::Failed);

    // On the dead-letter queue: a send whose consumer never finished is marked
    // failed, and its notification with it; one finished already stays as it is.
    let stuck = q.notification_for("b-2");
    q.consume(&[JobMessage::Notify { id: stuck }], false);
    let Some((send, _)) = q.queue.later.borrow_mut().pop() else {
        panic!("waits")
    };
    let dead = q.consume(&[send, JobMessage::Notify { id }], true);
    assert_eq!(dead.verdicts, vec![Some(Verdict::Ack); 2]);
    assert!(
        matches!(&dead.log[0], Line::Error(l) if l.contains("dead-lettered and marked failed")),
        "{:?}",
        dead.log
    );
    assert_eq!(
        dead.log[1],
        info(&format!(
            "queue: notification {id} dead-lettered after it was finished"
        ))
    );
    assert_eq!(q.notification_status(stuck), NotificationStatus::Failed);
}

#[test]
fn unreadable_routes_give_the_claim_back_and_the_retry_sends_it() {
    let q = Queue::new(200);
    let id = q.notification();
    q.db.conn_for_tests()
        .execute_batch("ALTER TABLE telegram_routes RENAME TO routes_away")
        .expect("routes gone");
    let done = q.consume(&[JobMessage::Notify { id }], false);
    assert_eq!(
        done.verdicts,
        vec![Some(Verdict::Retry {
            delay_seconds: crate::retry::BACKOFF_BASE_SECONDS
        })]
    );
    assert!(
        matches!(done.log.as_slice(), [Line::Error(l)] if l.contains("the routes could not be read")),
        "{:?}",
        done.log
    );
    // Claimed while the routes were read, it is not left held: the retried message
    // (at once, not after the claim's 60 s) finds it due and sends it.
    assert_eq!(q.notification_status(id), NotificationStatus::Retrying);
    q.db.conn_for_tests()
        .execute_batch("ALTER TABLE routes_away RENAME TO telegram_routes")
        .expect("routes back");
    let done = q.consume(&[JobMessage::Notify { id }], false);
    assert_eq!(done.verdicts, vec![Some(Verdict::Ack)]);
    assert_eq!(q.notification_status(id), NotificationStatus::Sent);
}

#[test]
fn a_successful_notification_is_acknowledged() {
    let q = Queue::new(200);
    let id = q.notification();
    let done = q.consume(&[JobMessage::Notify { id }], false);
    assert_eq!(done.verdicts, vec![Some(Verdict::Ack)]);
    assert!(
        matches!(done.log.as_slice(), [Line::Info(l)] if l.starts_with(&format!("queue: notification {id} ")))
    );
    // One message through `run_job` is the same flow.
    let again = block_on(run_job(&q.deps(), &JobMessage::Notify { id }, q.now()));
    assert_eq!(again.verdict, Verdict::Ack);
}

#[test]
fn the_sweep_reaches_every_flow() {
    let q = Queue::new(200);
    let push = q.delivered("d-push", "push", "push.with-new-branch.json");
    q.consume(&[push], false);
    // The step message was lost; the sweep finds the step untouched.
    q.enqueued();
    // A sign-in client whose window has ended.
    let limits = crate::web::auth::limit::SignInLimits::new(&q.db);
    let ended = q
        .now()
        .minus_seconds(crate::web::auth::limit::WINDOW_SECONDS + 1);
    block_on(limits.attempt("192.0.2.1", ended)).expect("counted");
    let log = block_on(sweep(&q.deps(), || q.now()));
    assert_eq!(
        block_on(limits.prune(q.now())),
        Ok(0),
        "the sweep forgot the ended sign-in window"
    );
    assert!(
        log.iter()
            .any(|l| l.starts_with("cron deploy sweep: job 1 step ") && l.ends_with("re-enqueued")),
        "{log:?}"
    );
    assert!(matches!(
        q.enqueued().as_slice(),
        [JobMessage::DeployStep { job_id: 1, .. }]
    ));
}

impl Queue {
    fn notification_for(&self, deployment_id: &str) -> i64 {
        let deployment = hook_deployment(serde_json::json!(
            {"type": "worker", "projectName": "api", "deploymentId": deployment_id}
        ));
        block_on(NotificationStore::new(&self.db).insert(
            &deployment,
            NotificationStatus::Pending,
            self.now(),
        ))
        .expect("insert")
        .expect("new")
    }

    fn notification_status(&self, id: i64) -> NotificationStatus {
        block_on(NotificationStore::new(&self.db).recent(50))
            .expect("recent")
            .into_iter()
            .find(|n| n.id == id)
            .expect("recorded")
            .status
    }
}

#[test]
fn an_unknown_delivery_is_acknowledged_as_not_recorded() {
    let q = Queue::new(200);
    let done = q.consume(
        &[JobMessage::GithubDelivery {
            id: "d-missing".into(),
        }],
        false,
    );
    assert_eq!(done.verdicts, vec![Some(Verdict::Ack)]);
    assert_eq!(
        done.log,
        vec![info("github: delivery d-missing: not recorded")]
    );
}
