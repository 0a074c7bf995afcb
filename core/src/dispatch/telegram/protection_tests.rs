//! Approve / Reject on a GitHub deployment protection request, from the signed
//! fixture's delivery to the review GitHub takes: SQLite with the real migrations, a
//! routed fake of GitHub (the App's installation tokens, the review endpoint) and of
//! Telegram's Bot API, presses sent to the webhook's core and the queues drained by
//! hand.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use serde_json::{json, Value};

use super::*;
use crate::apps::App;
use crate::config::Config;
use crate::dispatch::{process_delivery, run_job};
use crate::flow::Verdict;
use crate::github::deliveries::DeliveryId;
use crate::github::events::parse;
use crate::http::{HttpError, HttpResponse};
use crate::protection::{ProtectionStore, Status};
use crate::testing::{
    block_on, fake_deps, json_response, record_queued, FakeHttp, FakePorts, MemoryKv, MemoryQueue,
    NativeCipher, SqliteSql, StubSigner,
};

const TEST_APP_KEY: &str = include_str!("../../github/app/test-key.pkcs1.pem");
const CHAT: &str = "-100";
const ALICE: i64 = 111;
const BOB: i64 = 222;
const MALLORY: i64 = 666;
const REVIEW_URL: &str =
    "http://gh.test/repos/octo-org/octo-repo/actions/runs/289782451/deployment_protection_rule";

struct Scene {
    db: SqliteSql,
    queue: MemoryQueue,
    kv: MemoryKv,
    http: FakeHttp,
    cipher: NativeCipher,
    config: Config,
    /// The review bodies GitHub took.
    reviews: Rc<RefCell<Vec<Value>>>,
    clock: Cell<i64>,
    updates: Cell<i64>,
}

impl Scene {
    /// App `octo` (Bob its own operator) is registered for the fixture's repository;
    /// Alice is an operator of every app.
    fn new() -> Scene {
        let reviews = Rc::new(RefCell::new(Vec::new()));
        let taken = reviews.clone();
        let sent = Cell::new(500);
        let http = FakeHttp::routed(move |req| match req.url.as_str() {
            "http://gh.test/app/installations/12345678/access_tokens" => {
                json_response(201, json!({"token": "ghs_installation"}))
            }
            REVIEW_URL => {
                assert_eq!(
                    req.header_value("authorization"),
                    Some("Bearer ghs_installation")
                );
                taken
                    .borrow_mut()
                    .push(serde_json::from_str(req.body.as_deref().unwrap_or("")).expect("JSON"));
                Ok(HttpResponse::new(204, ""))
            }
            "http://tg.test/bot42:T/sendMessage" => {
                sent.set(sent.get() + 1);
                json_response(
                    200,
                    json!({"ok": true, "result": {"message_id": sent.get()}}),
                )
            }
            "http://tg.test/bot42:T/editMessageText" => {
                json_response(200, json!({"ok": true, "result": {}}))
            }
            url => Err(HttpError::Network(format!("the fake does not serve {url}"))),
        });
        let s = Scene {
            db: SqliteSql::migrated(),
            queue: MemoryQueue::default(),
            kv: MemoryKv::default(),
            http,
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
                        "GITHUB_APP_ID" => "7",
                        "GITHUB_APP_PRIVATE_KEY" => TEST_APP_KEY,
                        "GITHUB_API_BASE" => "http://gh.test",
                        _ => return None,
                    }
                    .to_owned(),
                )
            }),
            reviews,
            clock: Cell::new(1_700_000_000_000),
            updates: Cell::new(2000),
        };
        let app = App::parse(
            br#"{"repository": "octo-org/octo-repo", "production_branch": "master",
            "environment": "production", "deploy_on": "push", "operators": [222],
            "deploy": {"type": "deploy_hook", "url": "https://hooks.example.com/deploy"}}"#,
        )
        .expect("app");
        block_on(AppStore::new(&s.db).put(&AppName::parse("octo").expect("name"), &app, s.now()))
            .expect("put");
        s
    }

    fn now(&self) -> Timestamp {
        self.clock.set(self.clock.get() + 1000);
        Timestamp::from_millis(self.clock.get())
    }

    fn deps(&self) -> Deps<'_, FakePorts<'_, StubSigner>> {
        fake_deps(
            &self.config,
            &self.http,
            &self.db,
            &self.queue,
            &self.kv,
            &StubSigner,
            &self.cipher,
        )
    }

    /// The fixture's delivery, processed, and its message sent.
    fn requested(&self) {
        let path = format!(
            "{}/../tests/fixtures/github/deployment_protection_rule.requested.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let event = parse(
            "deployment_protection_rule",
            &std::fs::read(path).expect("fixture"),
        )
        .expect("parses");
        let id = DeliveryId::parse("d-rule").expect("id");
        record_queued(&self.db, &id, &event, self.now());
        block_on(process_delivery(&self.deps(), &id, self.now())).expect("processed");
        self.drain();
    }

    /// Runs every queued message until nothing is left.
    fn drain(&self) {
        for _ in 0..100 {
            let next = {
                let mut t = self.queue.telegram.borrow_mut();
                let mut j = self.queue.sent.borrow_mut();
                if !t.is_empty() {
                    Some(t.remove(0))
                } else if !j.is_empty() {
                    Some(j.remove(0))
                } else {
                    None
                }
            };
            let Some(message) = next else { return };
            let handled = block_on(run_job(&self.deps(), &message, self.now()));
            assert_eq!(handled.verdict, Verdict::Ack, "{:?}", handled.line);
        }
        panic!("the queue never drained");
    }

    /// The bodies of the Bot API calls of `method`.
    fn telegram(&self, method: &str) -> Vec<Value> {
        self.http
            .seen
            .borrow()
            .iter()
            .filter(|r| r.url == format!("http://tg.test/bot42:T/{method}"))
            .map(|r| serde_json::from_str(r.body.as_deref().unwrap_or("{}")).expect("JSON"))
            .collect()
    }

    /// The request's message: its id, and the (label, token) of each button it was
    /// sent with.
    fn sent(&self) -> (i64, Vec<(String, String)>) {
        let sent = self.telegram("sendMessage");
        assert_eq!(sent.len(), 1, "one message: {sent:?}");
        let buttons = sent[0]["reply_markup"]["inline_keyboard"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|row| row.as_array().cloned().unwrap_or_default())
            .map(|b| {
                (
                    b["text"].as_str().unwrap_or("").to_owned(),
                    b["callback_data"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        (501, buttons)
    }

    /// `user` presses `token` on message `message`: the webhook's answer, after
    /// which the queue is drained.
    fn press(&self, message: i64, user: i64, token: &str) -> Value {
        self.updates.set(self.updates.get() + 1);
        let id = self.updates.get();
        let name = match user {
            ALICE => "alice",
            BOB => "bob",
            _ => "mallory",
        };
        let body = json!({"update_id": id, "callback_query": {
            "id": format!("cb-{id}"), "chat_instance": "1",
            "from": {"id": user, "is_bot": false, "first_name": "Someone", "username": name},
            "message": {"message_id": message, "date": 1, "chat": {"id": -100, "type": "supergroup"}},
            "data": token}});
        let received = block_on(receive(
            &self.deps(),
            body.to_string().as_bytes(),
            self.now(),
        ))
        .expect("received");
        if let Some(id) = received.queue {
            block_on(Received::send(id, &self.queue)).expect("queued");
        }
        self.drain();
        let answer = received.body;
        assert_eq!(answer["callback_query_id"], format!("cb-{id}"));
        answer["text"].clone()
    }

    fn audit(&self) -> Vec<(String, Outcome, Option<String>, String)> {
        block_on(AuditStore::new(&self.db).of(SubjectKind::Protection, "1"))
            .expect("audit")
            .into_iter()
            .map(|e| (e.action, e.result, e.detail, e.actor))
            .collect()
    }
}

#[test]
fn an_operators_approve_is_the_review_github_takes_and_the_message_says_who() {
    let s = Scene::new();
    s.requested();
    let (message, buttons) = s.sent();
    let labels: Vec<&str> = buttons.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(labels, vec!["✅ Approve", "❌ Reject"]);
    let (approve, reject) = (buttons[0].1.clone(), buttons[1].1.clone());
    assert!(s.telegram("sendMessage")[0]["text"]
        .as_str()
        .is_some_and(|t| t.starts_with("<b>🛡 Deployment review: octo → production</b>")));

    // Someone who is no operator: refused, recorded, and nothing reaches GitHub.
    assert_eq!(
        s.press(message, MALLORY, &approve),
        "You are not allowed to do this"
    );
    assert!(s.reviews.borrow().is_empty());

    assert_eq!(s.press(message, ALICE, &approve), "Approving…");
    assert_eq!(
        *s.reviews.borrow(),
        vec![json!({
            "environment_name": "production",
            "state": "approved",
            "comment": "Approved in Telegram by @alice (Telegram user 111) via edge-notifier",
        })]
    );
    let request = block_on(ProtectionStore::new(&s.db).get(1))
        .expect("read")
        .expect("recorded");
    assert_eq!(
        (request.status, request.decided_by.as_deref()),
        (Status::Approved, Some("@alice"))
    );
    let edits = s.telegram("editMessageText");
    let last = edits.last().expect("the message is edited");
    assert!(last["text"]
        .as_str()
        .is_some_and(|t| t.ends_with("<b>Status:</b> ✅ approved by @alice")));
    assert!(
        last.get("reply_markup")
            .is_none_or(|m| m["inline_keyboard"].as_array().is_none_or(|k| k.is_empty())),
        "no buttons once decided: {last}"
    );

    // A double tap, and the other button of a decided request.
    assert_eq!(s.press(message, ALICE, &approve), "This was already done");
    assert_eq!(
        s.press(message, BOB, &reject),
        "This review has been decided"
    );
    assert_eq!(s.reviews.borrow().len(), 1);
    assert_eq!(
        s.audit(),
        vec![
            (
                "approve".into(),
                Outcome::Refused,
                Some("not an operator".into()),
                "@mallory".into()
            ),
            (
                "approve".into(),
                Outcome::Done,
                Some("GitHub took the review".into()),
                "@alice".into()
            ),
            (
                "reject".into(),
                Outcome::Refused,
                Some("the subject had moved on".into()),
                "@bob".into()
            ),
        ]
    );
}

#[test]
fn the_apps_own_operator_may_reject() {
    let s = Scene::new();
    s.requested();
    let (message, buttons) = s.sent();
    assert_eq!(s.press(message, BOB, &buttons[1].1), "Rejecting…");
    assert_eq!(s.reviews.borrow()[0]["state"], "rejected");
    assert_eq!(
        s.reviews.borrow()[0]["comment"],
        "Rejected in Telegram by @bob (Telegram user 222) via edge-notifier"
    );
}
