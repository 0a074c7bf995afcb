//! Chat-ops in scenarios: SQLite with the real migrations, a routed fake of GitHub,
//! the deploy hook, the health endpoint and Telegram's Bot API, Telegram's updates
//! sent to the webhook's core and the queue drained by hand. Deploys become
//! messages with buttons; presses and commands act (or are refused) as the webhook
//! and the consumer decide.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use serde_json::{json, Value};

use super::*;
use crate::apps::App;
use crate::config::Config;
use crate::deploy::store::{Job, JobStore};
use crate::deploy::{JobKind, JobStatus};
use crate::dispatch::{process_delivery, run_job};
use crate::flow::Verdict;
use crate::github::deliveries::DeliveryId;
use crate::github::events::{GithubEvent, PushCommit, PushEvent};
use crate::github::{CommitSha, RepoFullName};
use crate::http::{HttpError, HttpResponse};
use crate::ports::Sql;
use crate::testing::{
    block_on, fake_deps, json_response, record_queued, FakeHttp, FakePorts, MemoryKv, MemoryQueue,
    NativeCipher, NoSigner, SqliteSql,
};

const CHAT: &str = "-100";
const OTHER_CHAT: &str = "-999";
const ALICE: i64 = 111;
const MALLORY: i64 = 666;
const BOB: i64 = 222;

fn sha(n: u8) -> CommitSha {
    CommitSha::parse(&format!("{n:02x}").repeat(20)).expect("sha")
}

/// What the fakes answer; tests flip these.
#[derive(Default)]
struct World {
    health_failing: bool,
    hook_fails_for: Vec<String>,
    telegram_429: u32,
}

struct Scene {
    db: SqliteSql,
    queue: MemoryQueue,
    kv: MemoryKv,
    http: FakeHttp,
    cipher: NativeCipher,
    config: Config,
    world: Rc<RefCell<World>>,
    clock: Cell<i64>,
    updates: Cell<i64>,
    deliveries: Cell<u32>,
}

fn fake(world: Rc<RefCell<World>>) -> FakeHttp {
    let next_message = Cell::new(500);
    FakeHttp::routed(move |req| {
        let url = req.url.as_str();
        let mut w = world.borrow_mut();
        if url == "http://gh.test/repos/octo/app/deployments" {
            return json_response(201, json!({"id": 77}));
        }
        if url == "http://gh.test/repos/octo/app/deployments/77/statuses" {
            return json_response(201, json!({"id": 1}));
        }
        if url == "https://hooks.example.com/deploy" {
            let body = req.body.clone().unwrap_or_default();
            let fails = w.hook_fails_for.iter().any(|s| body.contains(s.as_str()));
            return json_response(if fails { 422 } else { 200 }, json!({}));
        }
        if url == "https://app.example.com/health" {
            return Ok(HttpResponse::new(
                if w.health_failing { 503 } else { 200 },
                "",
            ));
        }
        if let Some(method) = url.strip_prefix("http://tg.test/bot42:T/") {
            if w.telegram_429 > 0 {
                w.telegram_429 -= 1;
                return json_response(
                    429,
                    json!({"ok": false, "description": "Too Many Requests: retry after 3", "parameters": {"retry_after": 3}}),
                );
            }
            return match method {
                "sendMessage" => {
                    next_message.set(next_message.get() + 1);
                    json_response(
                        200,
                        json!({"ok": true, "result": {"message_id": next_message.get()}}),
                    )
                }
                "editMessageText" => json_response(200, json!({"ok": true, "result": {}})),
                "setWebhook" | "setMyCommands" => {
                    json_response(200, json!({"ok": true, "result": true}))
                }
                "getMe" => json_response(
                    200,
                    json!({"ok": true, "result": {"id": 42, "username": "edge_bot"}}),
                ),
                other => Err(HttpError::Network(format!(
                    "Telegram has no method {other}"
                ))),
            };
        }
        Err(HttpError::Network(format!("the fake does not serve {url}")))
    })
}

impl Scene {
    /// App `app` (operator Bob of its own) deploys `octo/app` through a deploy hook
    /// with a health check; Alice is an operator of every app.
    fn new() -> Scene {
        let world = Rc::new(RefCell::new(World::default()));
        let s = Scene {
            db: SqliteSql::migrated(),
            queue: MemoryQueue::default(),
            kv: MemoryKv::default(),
            http: fake(world.clone()),
            cipher: NativeCipher::default(),
            config: Config::from_lookup(|k| {
                Some(
                    match k {
                        "TELEGRAM_BOT_TOKEN" => "42:T",
                        "TELEGRAM_CHAT_ID" => CHAT,
                        "TELEGRAM_API_BASE" => "http://tg.test",
                        "TELEGRAM_PACE" => "off",
                        "TELEGRAM_OPERATORS" => "111",
                        "TELEGRAM_WEBHOOK_SECRET" => "s3cret",
                        "GITHUB_TOKEN" => "ghs_test",
                        "GITHUB_API_BASE" => "http://gh.test",
                        "PUBLIC_URL" => "https://notifier.example.com",
                        "HEALTH_CHECK_INTERVAL_SECONDS" => "1",
                        _ => return None,
                    }
                    .to_owned(),
                )
            }),
            world,
            clock: Cell::new(1_700_000_000_000),
            updates: Cell::new(1000),
            deliveries: Cell::new(0),
        };
        let app = App::parse(
            br#"{"repository": "octo/app", "production_branch": "main", "environment": "production",
            "deploy_on": "push", "health_url": "https://app.example.com/health", "operators": [222],
            "deploy": {"type": "deploy_hook", "url": "https://hooks.example.com/deploy"}}"#,
        )
        .expect("app");
        block_on(AppStore::new(&s.db).put(&AppName::parse("app").expect("name"), &app, s.now()))
            .expect("put");
        s
    }

    fn now(&self) -> Timestamp {
        self.clock.set(self.clock.get() + 1000);
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

    /// A push of commit `n` on top of `n - 1`, deployed to the end.
    fn deploy(&self, n: u8) -> i64 {
        let event = GithubEvent::Push(PushEvent {
            repository: RepoFullName::parse("octo/app").expect("repo"),
            git_ref: "refs/heads/main".into(),
            before: if n == 1 {
                CommitSha::parse(&"0".repeat(40)).expect("zero")
            } else {
                sha(n - 1)
            },
            after: sha(n),
            created: n == 1,
            deleted: false,
            forced: false,
            commits: vec![PushCommit {
                id: sha(n),
                subject: format!("Change {n}"),
                author: None,
                timestamp: None,
            }],
            pusher: Some("octocat".into()),
            installation_id: None,
        });
        self.deliveries.set(self.deliveries.get() + 1);
        let id = DeliveryId::parse(&format!("d-{}", self.deliveries.get())).expect("id");
        record_queued(&self.db, &id, &event, self.now());
        block_on(process_delivery(&self.deps(), &id, self.now())).expect("processed");
        self.drain();
        self.newest()
    }

    /// Runs every queued message (a retry after its delay, by the clock) until
    /// nothing is left.
    fn drain(&self) {
        for _ in 0..500 {
            // Telegram's queue first: a job's message keeps up with its steps.
            let next = pop(&self.queue.telegram)
                .or_else(|| pop(&self.queue.sent))
                .or_else(|| {
                    let mut later = self.queue.later.borrow_mut();
                    (!later.is_empty()).then(|| {
                        let (m, delay) = later.remove(0);
                        self.clock.set(self.clock.get() + i64::from(delay) * 1000);
                        m
                    })
                });
            let Some(message) = next else {
                return;
            };
            let handled = block_on(run_job(&self.deps(), &message, self.now()));
            if let Verdict::Retry { delay_seconds } = handled.verdict {
                self.queue.later.borrow_mut().push((message, delay_seconds));
            }
        }
        panic!("the queue never drained");
    }

    fn newest(&self) -> i64 {
        block_on(JobStore::new(&self.db).list(None, None, 1)).expect("list")[0].id
    }

    fn job(&self, id: i64) -> Job {
        block_on(JobStore::new(&self.db).get(id))
            .expect("get")
            .expect("job")
    }

    /// Job `id`'s message in the chat: its message id and its buttons (label,
    /// token), as Telegram was last told to show them.
    fn message(&self, id: i64) -> (i64, Vec<(String, String)>) {
        let row = block_on(self.db.query(
            "SELECT message_id FROM telegram_live WHERE subject = ?1 AND chat_id = ?2",
            &[format!("job:{id}").into(), CHAT.into()],
        ))
        .expect("query");
        let message = row[0]["message_id"].as_i64().expect("sent");
        (message, self.buttons_of(message))
    }

    /// The buttons message `message` was last sent or edited with.
    fn buttons_of(&self, message: i64) -> Vec<(String, String)> {
        let seen = self.http.seen.borrow();
        let mut sent_ids = 500;
        let mut last: Option<Value> = None;
        for r in seen.iter() {
            let body: Value =
                serde_json::from_str(r.body.as_deref().unwrap_or("{}")).unwrap_or_default();
            if r.url.ends_with("/sendMessage") {
                sent_ids += 1;
                if sent_ids == message {
                    last = Some(body);
                }
            } else if r.url.ends_with("/editMessageText") && body["message_id"] == message {
                last = Some(body);
            }
        }
        let markup = last.map(|b| b["reply_markup"].clone()).unwrap_or_default();
        markup["inline_keyboard"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .flat_map(|row| row.as_array().cloned().unwrap_or_default())
                    .map(|b| {
                        (
                            b["text"].as_str().unwrap_or("").to_owned(),
                            b["callback_data"].as_str().unwrap_or("").to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The bodies of every Bot API call of `method`.
    fn telegram(&self, method: &str) -> Vec<Value> {
        self.http
            .seen
            .borrow()
            .iter()
            .filter(|r| r.url == format!("http://tg.test/bot42:T/{method}"))
            .map(|r| serde_json::from_str(r.body.as_deref().unwrap_or("{}")).expect("JSON"))
            .collect()
    }

    fn next_update(&self) -> i64 {
        self.updates.set(self.updates.get() + 1);
        self.updates.get()
    }

    /// `user` presses `token` on message `message` of `chat`: the webhook's answer.
    fn press_in(&self, chat: &str, message: i64, user: i64, token: &str) -> (i64, Value) {
        let id = self.next_update();
        let body = json!({"update_id": id, "callback_query": {
            "id": format!("cb-{id}"), "chat_instance": "1",
            "from": {"id": user, "is_bot": false, "first_name": "Someone", "username": name(user)},
            "message": {"message_id": message, "date": 1, "chat": {"id": chat.parse::<i64>().expect("chat"), "type": "supergroup"}},
            "data": token}});
        (id, self.webhook(&body))
    }

    fn press(&self, message: i64, user: i64, token: &str) -> (i64, Value) {
        self.press_in(CHAT, message, user, token)
    }

    /// `user` writes `text` in `chat` (topic `thread`): the update's id.
    fn say(&self, chat: &str, thread: Option<i64>, user: i64, text: &str) -> i64 {
        let id = self.next_update();
        let mut message = json!({"message_id": id * 10, "date": 1, "text": text,
            "from": {"id": user, "is_bot": false, "first_name": "Someone", "username": name(user)},
            "chat": {"id": chat.parse::<i64>().expect("chat"), "type": "supergroup", "title": "Ops"}});
        if let Some(t) = thread {
            message["message_thread_id"] = t.into();
            message["is_topic_message"] = true.into();
        }
        assert_eq!(
            self.webhook(&json!({"update_id": id, "message": message})),
            json!({})
        );
        id
    }

    /// The webhook's answer to `update`; its queue message goes to the queue.
    fn webhook(&self, update: &Value) -> Value {
        let received = block_on(receive(
            &self.deps(),
            update.to_string().as_bytes(),
            self.now(),
        ))
        .expect("received");
        if let Some(id) = received.queue {
            block_on(Received::send(id, &self.queue)).expect("queued");
        }
        received.body
    }

    fn audit(&self, job: i64) -> Vec<(String, Outcome, Option<String>, String)> {
        block_on(AuditStore::new(&self.db).of(SubjectKind::Job, &job.to_string()))
            .expect("audit")
            .into_iter()
            .map(|e| (e.action, e.result, e.detail, e.actor))
            .collect()
    }

    fn last_reply(&self) -> Value {
        self.telegram("sendMessage")
            .into_iter()
            .rfind(|b| b.get("reply_parameters").is_some())
            .expect("a reply")
    }
}

/// The first message of a queue, taken off it.
fn pop(queue: &RefCell<Vec<JobMessage>>) -> Option<JobMessage> {
    let mut q = queue.borrow_mut();
    (!q.is_empty()).then(|| q.remove(0))
}

fn name(user: i64) -> &'static str {
    match user {
        ALICE => "alice",
        BOB => "bob",
        _ => "mallory",
    }
}

fn answer(text: &str, id: i64) -> Value {
    json!({"method": "answerCallbackQuery", "callback_query_id": format!("cb-{id}"), "text": text})
}

fn labels(buttons: &[(String, String)]) -> Vec<&str> {
    buttons.iter().map(|(l, _)| l.as_str()).collect()
}

#[test]
fn a_finalized_jobs_message_offers_roll_back_once_there_is_an_earlier_commit() {
    let s = Scene::new();
    let first = s.deploy(1);
    assert_eq!(s.job(first).status, JobStatus::Finalized);
    assert!(
        labels(&s.message(first).1).is_empty(),
        "nothing to roll back to yet"
    );
    let second = s.deploy(2);
    let (message, buttons) = s.message(second);
    assert_eq!(labels(&buttons), vec!["↩️ Roll back"]);
    assert_eq!(
        buttons[0].1.len(),
        18,
        "an opaque token, well within 64 bytes"
    );
    // While it ran, it offered Cancel.
    let sent = s.telegram("sendMessage");
    let first_of_second = sent
        .iter()
        .find(|b| b["text"].as_str().unwrap_or("").contains("Change 2"))
        .expect("sent");
    assert_eq!(
        first_of_second["reply_markup"]["inline_keyboard"][0][0]["text"],
        "✖️ Cancel"
    );
    assert!(message > 0);
}

#[test]
fn an_operators_press_rolls_back_once_through_the_deploy_target() {
    let s = Scene::new();
    s.deploy(1);
    let second = s.deploy(2);
    let (message, buttons) = s.message(second);
    let token = &buttons[0].1;
    // Two quick taps: one acts, the other is told it was done.
    let (first_tap, a) = s.press(message, ALICE, token);
    let (second_tap, b) = s.press(message, ALICE, token);
    assert_eq!(a, answer("Rolling back…", first_tap));
    assert_eq!(b, answer("This was already done", second_tap));
    s.drain();
    let rollback = s.job(s.newest());
    assert_eq!(rollback.id, second + 1, "one new job");
    assert_eq!(rollback.kind, JobKind::Rollback);
    assert_eq!(
        rollback.sha,
        sha(1).as_str(),
        "the previous finalized commit, over a newer one"
    );
    assert_eq!(
        rollback.status,
        JobStatus::Finalized,
        "{:?}",
        rollback.error
    );
    assert_eq!(
        (rollback.source_job, rollback.requested_by.as_deref()),
        (Some(second), Some("@alice"))
    );
    let hooks: Vec<String> = s
        .http
        .seen
        .borrow()
        .iter()
        .filter(|r| r.url == "https://hooks.example.com/deploy")
        .map(|r| r.body.clone().unwrap_or_default())
        .collect();
    assert!(
        hooks.last().expect("hook").contains(sha(1).as_str()),
        "through the app's own target"
    );
    assert_eq!(
        s.audit(second),
        vec![(
            "rollback".into(),
            Outcome::Done,
            Some(format!("job {}", rollback.id)),
            "@alice".into()
        )]
    );
    // The job's message names who rolled it back, and offers nothing more.
    let edits = s.telegram("editMessageText");
    let last = edits
        .iter()
        .rfind(|b| b["message_id"] == message)
        .expect("edited");
    assert!(last["text"]
        .as_str()
        .unwrap_or("")
        .contains(&format!("Rolled back by @alice (job {})", rollback.id)));
    assert!(last.get("reply_markup").is_none(), "its keyboard is gone");
    // The rollback's own message says what it is and offers Roll back (to commit 2).
    let (_, offered) = s.message(rollback.id);
    assert_eq!(labels(&offered), vec!["↩️ Roll back"]);
    let text = s
        .telegram("sendMessage")
        .into_iter()
        .find(|b| b["text"].as_str().unwrap_or("").contains("Rollback app"))
        .expect("its message");
    assert!(text["text"]
        .as_str()
        .unwrap_or("")
        .contains(&format!("<b>Rolls back</b> job {second}, asked by @alice")));
}

#[test]
fn a_press_by_someone_else_is_refused_and_recorded() {
    let s = Scene::new();
    s.deploy(1);
    let second = s.deploy(2);
    let (message, buttons) = s.message(second);
    let (id, said) = s.press(message, MALLORY, &buttons[0].1);
    assert_eq!(said, answer("You are not allowed to do this", id));
    s.drain();
    assert_eq!(s.newest(), second, "nothing happened");
    assert_eq!(
        s.audit(second),
        vec![(
            "rollback".into(),
            Outcome::Refused,
            Some("not an operator".into()),
            "@mallory".into()
        )]
    );
    // The button is still good for an operator.
    let (id, said) = s.press(message, ALICE, &buttons[0].1);
    assert_eq!(said, answer("Rolling back…", id));
}

#[test]
fn an_apps_own_operators_may_act_on_it() {
    let s = Scene::new();
    s.deploy(1);
    let second = s.deploy(2);
    let (message, buttons) = s.message(second);
    let (id, said) = s.press(message, BOB, &buttons[0].1);
    assert_eq!(said, answer("Rolling back…", id));
}

#[test]
fn a_button_pressed_elsewhere_or_made_up_does_nothing() {
    let s = Scene::new();
    s.deploy(1);
    let second = s.deploy(2);
    let (message, buttons) = s.message(second);
    let token = &buttons[0].1;
    // The same token on another message, in another chat, or none of ours.
    for (chat, msg, data) in [
        (CHAT, message + 1, token.as_str()),
        (OTHER_CHAT, message, token.as_str()),
        (CHAT, message, "rollback:job:2"),
    ] {
        let (id, said) = s.press_in(chat, msg, ALICE, data);
        assert_eq!(said, answer("This button is no longer valid", id));
    }
    s.drain();
    assert_eq!(s.newest(), second);
    assert!(s.audit(second).is_empty());
}

#[test]
fn a_stale_button_says_the_job_moved_on_and_refreshes_the_keyboard() {
    let s = Scene::new();
    s.deploy(1);
    let second = s.deploy(2);
    let (message, old) = s.message(second);
    // A newer push: job 2 is no longer the latest.
    let third = s.deploy(3);
    assert_eq!(s.job(third).status, JobStatus::Finalized);
    let (id, said) = s.press(message, ALICE, &old[0].1);
    assert_eq!(said, answer("This job has moved on", id));
    s.drain();
    assert_eq!(s.newest(), third, "nothing rolled back");
    assert!(
        s.buttons_of(message).is_empty(),
        "the message's keyboard is refreshed: nothing to offer"
    );
    assert_eq!(
        s.audit(second),
        vec![(
            "rollback".into(),
            Outcome::Refused,
            Some("the subject had moved on".into()),
            "@alice".into()
        )]
    );
}

#[test]
fn an_expired_button_is_refused_and_the_message_gets_fresh_ones() {
    let s = Scene::new();
    s.deploy(1);
    let second = s.deploy(2);
    let (message, old) = s.message(second);
    s.clock
        .set(s.clock.get() + crate::chatops::BUTTON_TTL_HOURS * 3_600_000);
    let (id, said) = s.press(message, ALICE, &old[0].1);
    assert_eq!(
        said,
        answer("This button has expired; the message gets fresh ones", id)
    );
    s.drain();
    let fresh = s.buttons_of(message);
    assert_eq!(labels(&fresh), vec!["↩️ Roll back"]);
    assert_ne!(fresh[0].1, old[0].1, "a new token");
    let (id, said) = s.press(message, ALICE, &fresh[0].1);
    assert_eq!(said, answer("Rolling back…", id));
}

#[test]
fn a_replayed_update_changes_nothing() {
    let s = Scene::new();
    s.deploy(1);
    let second = s.deploy(2);
    let (message, buttons) = s.message(second);
    let body = json!({"update_id": 5000, "callback_query": {"id": "cb-x", "chat_instance": "1",
        "from": {"id": ALICE, "is_bot": false, "first_name": "Alice", "username": "alice"},
        "message": {"message_id": message, "date": 1, "chat": {"id": -100, "type": "supergroup"}},
        "data": buttons[0].1}});
    assert_eq!(s.webhook(&body)["text"], "Rolling back…");
    assert_eq!(
        s.webhook(&body)["text"],
        "Rolling back…",
        "the same update_id again comes to the same answer (it claimed the button)"
    );
    assert_eq!(s.queue.telegram.borrow().len(), 1, "and is queued once");
    s.drain();
    // Its queue message delivered twice: one job, one audit row.
    s.queue
        .telegram
        .borrow_mut()
        .push(JobMessage::TelegramUpdate { id: 5000 });
    s.drain();
    assert_eq!(s.newest(), second + 1);
    assert_eq!(s.audit(second).len(), 1);
}

#[test]
fn cancel_stops_a_running_job_after_its_step() {
    let s = Scene::new();
    s.deploy(1);
    s.world.borrow_mut().health_failing = true;
    // Push 2 and run only until its health check is retrying.
    let event_job = s.deploy_until_health(2);
    assert_eq!(s.job(event_job).status, JobStatus::Processing);
    let (message, buttons) = s.message(event_job);
    assert_eq!(labels(&buttons), vec!["✖️ Cancel"]);
    let (id, said) = s.press(message, ALICE, &buttons[0].1);
    assert_eq!(said, answer("Cancelling…", id));
    s.world.borrow_mut().health_failing = false;
    s.drain();
    let job = s.job(event_job);
    assert_eq!(job.status, JobStatus::Cancelled);
    assert!(
        job.steps.iter().all(|st| st.state.is_finished()),
        "{:?}",
        job.steps
    );
    assert_eq!(
        job.steps
            .iter()
            .find(|st| st.name.as_str() == "finalize")
            .map(|st| st.state),
        Some(crate::deploy::StepState::Skipped)
    );
    assert_eq!(
        s.audit(event_job),
        vec![("cancel".into(), Outcome::Done, None, "@alice".into())]
    );
    let statuses: Vec<String> = s
        .http
        .seen
        .borrow()
        .iter()
        .filter(|r| r.url.ends_with("/statuses"))
        .map(|r| r.body.clone().unwrap_or_default())
        .collect();
    assert!(
        statuses.last().expect("status").contains("\"failure\"")
            && statuses
                .last()
                .expect("status")
                .contains("Cancelled by @alice"),
        "GitHub hears it was cancelled"
    );
    assert!(s.buttons_of(message).is_empty());
}

impl Scene {
    /// A push of commit `n` whose health check keeps failing: run until the job
    /// waits for its retry.
    fn deploy_until_health(&self, n: u8) -> i64 {
        let event = GithubEvent::Push(PushEvent {
            repository: RepoFullName::parse("octo/app").expect("repo"),
            git_ref: "refs/heads/main".into(),
            before: sha(n - 1),
            after: sha(n),
            created: false,
            deleted: false,
            forced: false,
            commits: vec![PushCommit {
                id: sha(n),
                subject: format!("Change {n}"),
                author: None,
                timestamp: None,
            }],
            pusher: None,
            installation_id: None,
        });
        self.deliveries.set(self.deliveries.get() + 1);
        let id = DeliveryId::parse(&format!("d-{}", self.deliveries.get())).expect("id");
        record_queued(&self.db, &id, &event, self.now());
        block_on(process_delivery(&self.deps(), &id, self.now())).expect("processed");
        // Everything but the retried health check.
        for _ in 0..50 {
            let next = pop(&self.queue.sent).or_else(|| pop(&self.queue.telegram));
            let Some(message) = next else { break };
            let handled = block_on(run_job(&self.deps(), &message, self.now()));
            if let Verdict::Retry { delay_seconds } = handled.verdict {
                self.queue.later.borrow_mut().push((message, delay_seconds));
            }
        }
        self.newest()
    }
}

#[test]
fn retry_deploys_a_failed_jobs_commit_again() {
    let s = Scene::new();
    s.world
        .borrow_mut()
        .hook_fails_for
        .push(sha(1).as_str().to_owned());
    let failed = s.deploy(1);
    assert_eq!(s.job(failed).status, JobStatus::Failed);
    let (message, buttons) = s.message(failed);
    assert_eq!(labels(&buttons), vec!["🔁 Retry"]);
    s.world.borrow_mut().hook_fails_for.clear();
    let (id, said) = s.press(message, ALICE, &buttons[0].1);
    assert_eq!(said, answer("Retrying…", id));
    s.drain();
    let retry = s.job(s.newest());
    assert_eq!(
        (retry.kind, retry.sha.as_str(), retry.status),
        (JobKind::Retry, sha(1).as_str(), JobStatus::Finalized)
    );
    assert_eq!(s.audit(failed)[0].2, Some(format!("job {}", retry.id)));
}

#[test]
fn commands_are_answered_in_their_chat_and_topic() {
    let s = Scene::new();
    s.deploy(1);
    let second = s.deploy(2);
    s.say(CHAT, Some(9), BOB, "/status");
    s.drain();
    let reply = s.last_reply();
    assert_eq!(
        (
            reply["chat_id"].as_str(),
            reply["message_thread_id"].as_i64()
        ),
        (Some(CHAT), Some(9))
    );
    assert_eq!(
        reply["reply_parameters"]["allow_sending_without_reply"],
        true
    );
    let text = reply["text"].as_str().unwrap_or("");
    assert!(text.contains(&format!("<b>app</b> → production: <code>0202020</code> Change 2 (<a href=\"https://notifier.example.com/jobs/{second}\">job {second}</a>)")), "{text}");

    s.say(CHAT, None, BOB, "/deploys@edge_bot app");
    s.drain();
    let text = s.last_reply()["text"].as_str().unwrap_or("").to_owned();
    assert!(text.starts_with("<b>Last deploys of app</b>"), "{text}");
    assert_eq!(text.matches("finalized").count(), 2);

    for (said, replied) in [
        (
            "/deploys nope",
            "Unknown app <code>nope</code>. /status lists the apps.",
        ),
        ("/rollback", "Usage: /rollback &lt;app&gt;"),
        (
            "/frobnicate",
            "Unknown command /frobnicate. /help lists the commands.",
        ),
    ] {
        s.say(CHAT, None, BOB, said);
        s.drain();
        assert_eq!(s.last_reply()["text"], replied);
    }
    s.say(CHAT, None, BOB, "/help");
    s.drain();
    assert!(s.last_reply()["text"]
        .as_str()
        .unwrap_or("")
        .contains("/rollback &lt;app&gt; — roll the app back"));
}

#[test]
fn a_command_for_another_bot_is_left_to_it_once_we_know_our_name() {
    let s = Scene::new();
    let (status, body) =
        block_on(crate::chatops::setup(&s.http, &s.kv, &s.config)).expect("configured");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["bot"]["username"], "edge_bot");
    let replies = |s: &Scene| s.telegram("sendMessage").len();
    let before = replies(&s);
    s.say(CHAT, None, BOB, "/status@other_bot");
    s.drain();
    assert_eq!(replies(&s), before);
    s.say(CHAT, None, BOB, "/status@Edge_Bot");
    s.drain();
    assert_eq!(replies(&s), before + 1);
}

#[test]
fn nothing_from_an_unknown_chat_changes_anything_or_is_answered() {
    let s = Scene::new();
    s.deploy(1);
    let second = s.deploy(2);
    let replies = s.telegram("sendMessage").len();
    s.say(OTHER_CHAT, None, ALICE, "/rollback app");
    s.say(OTHER_CHAT, None, ALICE, "/status");
    s.drain();
    assert_eq!(
        s.telegram("sendMessage").len(),
        replies,
        "not a word to an unknown chat"
    );
    assert_eq!(s.newest(), second);
    let detail = block_on(s.db.query(
        "SELECT detail FROM telegram_updates ORDER BY update_id",
        &[],
    ))
    .expect("q");
    assert!(detail.iter().all(|r| r["detail"]
        .as_str()
        .unwrap_or("")
        .contains("which no route or app posts to: ignored")));
}

#[test]
fn rollback_asks_first_and_its_button_rolls_back() {
    let s = Scene::new();
    s.deploy(1);
    let second = s.deploy(2);
    // Someone who is not an operator is refused, and it is recorded.
    s.say(CHAT, None, MALLORY, "/rollback app");
    s.drain();
    assert_eq!(s.last_reply()["text"], "You are not allowed to do this.");
    let refused = block_on(AuditStore::new(&s.db).of(SubjectKind::App, "app")).expect("audit");
    assert_eq!(
        (refused[0].actor.as_str(), refused[0].result),
        ("@mallory", Outcome::Refused)
    );

    s.say(CHAT, None, ALICE, "/rollback app");
    s.drain();
    let offer = s.last_reply();
    assert_eq!(
        offer["text"],
        format!("Roll back <b>app</b> in production from <code>0202020</code> (job {second}) to <code>0101010</code>?")
    );
    assert_eq!(s.newest(), second, "nothing yet");
    let token = offer["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        .as_str()
        .expect("button")
        .to_owned();
    let message = 500 + i64::try_from(s.telegram("sendMessage").len()).expect("count");
    let (id, said) = s.press(message, ALICE, &token);
    assert_eq!(said, answer("Rolling back…", id));
    s.drain();
    let rollback = s.job(s.newest());
    assert_eq!(
        (rollback.kind, rollback.sha.as_str()),
        (JobKind::Rollback, sha(1).as_str())
    );
    let settled = s
        .telegram("editMessageText")
        .into_iter()
        .find(|b| b["message_id"] == message)
        .expect("the offer is settled");
    assert_eq!(
        settled["text"],
        format!("Rolled back by @alice (job {})", rollback.id)
    );
    assert!(settled.get("reply_markup").is_none());
}

#[test]
fn a_reply_telegram_refuses_with_429_waits_and_is_sent_once() {
    let s = Scene::new();
    s.world.borrow_mut().telegram_429 = 1;
    s.say(CHAT, None, BOB, "/help");
    s.drain();
    let helps = s
        .telegram("sendMessage")
        .into_iter()
        .filter(|b| {
            b["text"]
                .as_str()
                .unwrap_or("")
                .starts_with("<b>Commands</b>")
        })
        .count();
    assert_eq!(helps, 2, "refused once, then sent");
    let done = block_on(s.db.query("SELECT status FROM telegram_updates", &[])).expect("q");
    assert_eq!(done[0]["status"], "done");
}

#[test]
fn the_sweep_queues_an_update_whose_message_was_lost() {
    let s = Scene::new();
    let id = s.next_update();
    let body = json!({"update_id": id, "message": {"message_id": 1, "date": 1, "text": "/help",
        "from": {"id": BOB, "is_bot": false, "first_name": "Bob"}, "chat": {"id": -100, "type": "group"}}});
    let received =
        block_on(receive(&s.deps(), body.to_string().as_bytes(), s.now())).expect("received");
    assert_eq!(received.queue, Some(id));
    // Its message never reached the queue.
    assert!(block_on(sweep(&s.deps(), s.now())).is_empty(), "not yet");
    s.clock.set(s.clock.get() + 200_000);
    assert_eq!(
        block_on(sweep(&s.deps(), s.now())),
        vec![format!("update {id} queued again")]
    );
    s.drain();
    assert_eq!(s.last_reply()["reply_parameters"]["message_id"], 1);
}

impl Scene {
    /// The app as before, now waiting for a person's approval before it deploys.
    fn with_approval(self) -> Scene {
        let app = App::parse(
            br#"{"repository": "octo/app", "production_branch": "main", "environment": "production",
            "deploy_on": "push", "health_url": "https://app.example.com/health", "operators": [222],
            "approval": {"required": true, "timeout_minutes": 60},
            "deploy": {"type": "deploy_hook", "url": "https://hooks.example.com/deploy"}}"#,
        )
        .expect("app");
        block_on(AppStore::new(&self.db).put(
            &AppName::parse("app").expect("name"),
            &app,
            self.now(),
        ))
        .expect("put");
        self
    }
}

#[test]
fn a_job_awaiting_approval_offers_approve_and_reject_and_an_approval_deploys_it() {
    let s = Scene::new().with_approval();
    let job = s.deploy(1);
    assert_eq!(s.job(job).status, JobStatus::Processing);
    let (message, buttons) = s.message(job);
    assert_eq!(labels(&buttons), vec!["✅ Approve", "❌ Reject"]);
    let (id, said) = s.press(message, ALICE, &buttons[0].1);
    assert_eq!(said, answer("Approving…", id));
    s.drain();
    assert_eq!(s.job(job).status, JobStatus::Finalized);
    assert_eq!(
        s.audit(job),
        vec![("approve".into(), Outcome::Done, None, "@alice".into())]
    );
    // The same button again (a double tap that came late) does nothing more.
    let (id, said) = s.press(message, ALICE, &buttons[0].1);
    assert_ne!(said, answer("Approving…", id));
    s.drain();
    assert_eq!(s.audit(job).len(), 1, "{:?}", s.audit(job));
}

#[test]
fn a_rejection_from_chat_fails_the_job_naming_who_rejected_it() {
    let s = Scene::new().with_approval();
    let job = s.deploy(1);
    let (message, buttons) = s.message(job);
    let (_, _) = s.press(message, ALICE, &buttons[1].1);
    s.drain();
    let j = s.job(job);
    assert_eq!(j.status, JobStatus::Failed);
    assert!(
        j.steps.iter().any(|st| st
            .error
            .as_deref()
            .is_some_and(|e| e.contains("rejected by @alice"))),
        "{:?}",
        j.steps
    );
    assert_eq!(s.audit(job)[0].0, "reject");
    assert!(s.buttons_of(message).iter().all(|(l, _)| l != "✅ Approve"));
}

#[test]
fn approving_a_job_a_newer_push_superseded_is_refused() {
    let s = Scene::new().with_approval();
    let old = s.deploy(1);
    let (message, buttons) = s.message(old);
    let newer = s.deploy(2);
    assert_ne!(old, newer);
    assert_eq!(s.job(old).status, JobStatus::Cancelled);
    let (id, said) = s.press(message, ALICE, &buttons[0].1);
    assert_eq!(said, answer("This job has moved on", id));
    s.drain();
    assert_eq!(s.job(old).status, JobStatus::Cancelled);
    assert!(s.audit(old).iter().all(|(_, o, ..)| *o != Outcome::Done));
}
