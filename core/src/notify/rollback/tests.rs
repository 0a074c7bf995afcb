//! A press on a notification's Roll back button, against SQLite (the real
//! migrations), the queue, and one simulated world of the Cloudflare API and
//! Telegram.

use super::*;
use crate::http::{HttpError, HttpRequest, HttpResponse};
use crate::notify::deliver::Courier;
use crate::notify::store::NotificationStatus;
use crate::ports::Sql;
use crate::routing::Recipient;
use crate::row::Columns;
use crate::testing::{
    block_on, fake_deps, hook_deployment, json_response, FakeHttp, MemoryKv, MemoryQueue,
    NativeCipher, NoSigner, SqliteSql,
};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

const CF: &str = "http://cf.test/client/v4/accounts/acc123";
const V_LIVE: &str = "bcf48806-b317-4351-9ee7-36e7d557d4de";
const V_BEFORE: &str = "18f97339-c287-4872-9bdd-e2135c07ec12";

fn config(rollback: bool) -> Config {
    Config::from_lookup(|k| match k {
        "TELEGRAM_BOT_TOKEN" => Some("42:TOKEN".into()),
        "TELEGRAM_CHAT_ID" => Some("-100".into()),
        "TELEGRAM_API_BASE" => Some("http://tg.test".into()),
        "TELEGRAM_PACE" => Some("off".into()),
        "CLOUDFLARE_API_TOKEN" => Some("cf-token".into()),
        "CLOUDFLARE_ACCOUNT_ID" => Some("acc123".into()),
        "CLOUDFLARE_API_BASE" => Some("http://cf.test/client/v4".into()),
        "CLOUDFLARE_ROLLBACK" if rollback => Some("on".into()),
        "TELEGRAM_OPERATORS" => Some("111".into()),
        _ => None,
    })
}

fn t(s: i64) -> Timestamp {
    // 2025-01-15T10:59:00Z: the simulated API makes rollback deployments at 11:00.
    Timestamp::from_millis(1_736_938_740_000 + s * 1000)
}

/// How the simulated API answers the next rollback deployment.
#[derive(Clone, Copy)]
enum Post {
    /// Deploys it and answers 200.
    Deploy,
    /// Refuses it: a secret changed since the version was live (10220).
    SecretChanged,
    /// Deploys it, but the answer never comes (a timeout).
    DeployUnanswered,
    /// Answers 502 without deploying.
    BadGateway,
}

/// The Cloudflare API and Telegram as one scenario sees them.
#[derive(Default)]
struct World {
    /// The Worker `api`'s deployments, newest first.
    deployments: Vec<Value>,
    /// Answers for the next reads of the deployments: failures first, then the list.
    read_failures: VecDeque<u16>,
    posts: VecDeque<Post>,
    /// Bodies of the rollback deployments it was sent.
    posted: Vec<Value>,
    /// Telegram: texts sent, and edits as (message id, text); the bodies of both.
    sent: Vec<String>,
    edits: Vec<(i64, String)>,
    bodies: Vec<Value>,
    next_message: i64,
}

fn deployment(id: &str, created: &str, versions: Value, message: Option<&str>) -> Value {
    let mut d = json!({"id": id, "source": "wrangler", "strategy": "percentage",
        "author_email": "dev@example.com", "created_on": created, "versions": versions,
        "annotations": {"workers/triggered_by": "deployment"}});
    if let Some(m) = message {
        d["annotations"]["workers/message"] = m.into();
    }
    d
}

impl World {
    fn new() -> World {
        World {
            deployments: vec![
                deployment(
                    "dep-3",
                    "2025-01-15T10:30:00.123456Z",
                    json!([{"version_id": V_LIVE, "percentage": 100.0}]),
                    Some("Add JWT authentication"),
                ),
                deployment(
                    "dep-2",
                    "2025-01-15T09:00:00Z",
                    json!([{"version_id": V_LIVE, "percentage": 10.0}, {"version_id": V_BEFORE, "percentage": 90.0}]),
                    None,
                ),
                deployment(
                    "dep-1",
                    "2025-01-14T09:00:00Z",
                    json!([{"version_id": V_BEFORE, "percentage": 100}]),
                    None,
                ),
            ],
            next_message: 700,
            ..World::default()
        }
    }

    fn answer(&mut self, req: &HttpRequest) -> Result<HttpResponse, HttpError> {
        let body: Value = req
            .body
            .as_deref()
            .map(|b| serde_json::from_str(b).expect("a JSON body"))
            .unwrap_or(Value::Null);
        if let Some(method) = req.url.strip_prefix("http://tg.test/bot42:TOKEN/") {
            self.next_message += 1;
            let text = body["text"].as_str().unwrap_or_default().to_owned();
            self.bodies.push(body.clone());
            match method {
                "sendMessage" => self.sent.push(text),
                "editMessageText" => {
                    let id = body["message_id"].as_i64().expect("message_id");
                    self.edits.push((id, text));
                    return json_response(200, json!({"ok": true, "result": {"message_id": id}}));
                }
                other => panic!("Telegram {other}"),
            }
            return json_response(
                200,
                json!({"ok": true, "result": {"message_id": self.next_message}}),
            );
        }
        assert_eq!(
            req.header_value("authorization"),
            Some("Bearer cf-token"),
            "{}",
            req.url
        );
        let path = req.url.strip_prefix(CF).expect("the Cloudflare API");
        let envelope = |result: Value| {
            json_response(
                200,
                json!({"success": true, "errors": [], "messages": [], "result": result}),
            )
        };
        match (req.method.as_str(), path) {
            ("GET", "/workers/scripts/api/deployments") => match self.read_failures.pop_front() {
                Some(status) => Ok(HttpResponse::new(status, "<html>error</html>")),
                None => envelope(json!({"deployments": self.deployments})),
            },
            ("GET", p) if p.starts_with("/workers/scripts/api/versions/") => {
                let id = p.rsplit('/').next().unwrap_or_default();
                envelope(
                    json!({"id": id, "number": if id == V_BEFORE { 41 } else { 42 },
                    "metadata": {"created_on": "2025-01-14T08:59:00Z", "source": "wrangler"},
                    "resources": {"bindings": []}}),
                )
            }
            ("POST", "/workers/scripts/api/deployments") => {
                self.posted.push(body.clone());
                let made = deployment(
                    &format!("dep-{}", self.deployments.len() + 1),
                    "2025-01-15T11:00:00Z",
                    body["versions"].clone(),
                    body["annotations"]["workers/message"].as_str(),
                );
                match self.posts.pop_front().unwrap_or(Post::Deploy) {
                    Post::Deploy => {
                        self.deployments.insert(0, made.clone());
                        envelope(made)
                    }
                    Post::DeployUnanswered => {
                        self.deployments.insert(0, made);
                        Err(HttpError::Timeout(10_000))
                    }
                    Post::BadGateway => Ok(HttpResponse::new(502, "<html>bad gateway</html>")),
                    Post::SecretChanged => json_response(
                        400,
                        json!({"success": false, "messages": [], "result": null, "errors": [{"code": 10220,
                          "message": "A secret has changed since this version was active. If you are sure this is ok, add a ?force=true query parameter to allow the rollback. The following secrets have changed: API_KEY"}]}),
                    ),
                }
            }
            (m, p) => panic!("unexpected {m} {p}"),
        }
    }

    fn cloudflare_calls(&self, http: &FakeHttp) -> Vec<String> {
        http.calls()
            .into_iter()
            .filter(|c| c.contains("cf.test"))
            .map(|c| c.replace(CF, ""))
            .collect()
    }
}

struct Scene {
    db: SqliteSql,
    queue: MemoryQueue,
    kv: MemoryKv,
    cipher: NativeCipher,
    http: FakeHttp,
    world: Rc<RefCell<World>>,
    config: Config,
}

impl Scene {
    fn new(rollback: bool) -> Scene {
        let world = Rc::new(RefCell::new(World::new()));
        let w = world.clone();
        Scene {
            db: SqliteSql::migrated(),
            queue: MemoryQueue::default(),
            kv: MemoryKv::default(),
            cipher: NativeCipher::default(),
            http: FakeHttp::routed(move |req| w.borrow_mut().answer(req)),
            world,
            config: config(rollback),
        }
    }

    /// A deployment of `fields`, announced in the default chat: its notification.
    fn announced(&self, fields: Value, at: Timestamp) -> i64 {
        self.announced_as(hook_deployment(fields), at)
    }

    fn announced_as(&self, d: Deployment, at: Timestamp) -> i64 {
        let id =
            block_on(NotificationStore::new(&self.db).insert(&d, NotificationStatus::Pending, at))
                .expect("insert")
                .expect("new");
        let route = Recipient {
            route: "default".into(),
            chat_id: "-100".into(),
            thread: String::new(),
            silent: false,
            link_preview: false,
            template: None,
            per_second: 0,
            per_minute: 0,
            digest_threshold: 0,
        };
        let courier = self.courier();
        let out = block_on(courier.deliver(&move |_| vec![route.clone()], &[id], at));
        assert!(out[0].log.contains("sent as message"), "{out:?}");
        id
    }

    fn courier(&self) -> Courier<'_, FakeHttp, &SqliteSql, MemoryQueue> {
        Courier {
            config: &self.config,
            http: &self.http,
            sql: &self.db,
            queue: &self.queue,
        }
    }

    fn press(&self, id: i64, by: &str, at: Timestamp) -> Result<RolledBack, RollbackError> {
        let deps = fake_deps(
            &self.config,
            &self.http,
            &self.db,
            &self.queue,
            &self.kv,
            &NoSigner,
            &self.cipher,
        );
        block_on(roll_back(&deps, id, by, at))
    }

    /// Runs the live messages the presses queued: the messages' edits.
    fn edit_messages(&self, at: Timestamp) {
        let queued: Vec<JobMessage> = self.queue.telegram.borrow_mut().drain(..).collect();
        for m in queued {
            let JobMessage::TelegramLive { id } = m else {
                panic!("unexpected {m:?}")
            };
            let out = block_on(self.courier().flush_live(id, at));
            assert!(out.log.contains("shows version"), "{}", out.log);
        }
    }

    /// The Roll back button's token on the `n`th message sent (none: no keyboard).
    fn button(&self, n: usize) -> Option<String> {
        let w = self.world.borrow();
        let sends: Vec<&Value> = w
            .bodies
            .iter()
            .filter(|b| b.get("message_id").is_none())
            .collect();
        let markup = sends[n].get("reply_markup")?;
        assert_eq!(markup["inline_keyboard"][0][0]["text"], "↩️ Roll back");
        markup["inline_keyboard"][0][0]["callback_data"]
            .as_str()
            .map(str::to_owned)
    }

    /// User `by` (id, `@name`) presses `token` on message `on` (chat, message id):
    /// what the webhook answers, then what the consumer logs of the update.
    fn tap(
        &self,
        update: i64,
        (user, name): (i64, &str),
        (chat, message): (&str, i64),
        token: &str,
        at: Timestamp,
    ) -> (String, String) {
        let deps = fake_deps(
            &self.config,
            &self.http,
            &self.db,
            &self.queue,
            &self.kv,
            &NoSigner,
            &self.cipher,
        );
        let body = json!({"update_id": update, "callback_query": {"id": format!("cb-{update}"),
            "from": {"id": user, "is_bot": false, "first_name": name, "username": name},
            "message": {"message_id": message, "date": 1, "chat": {"id": chat.parse::<i64>().expect("chat"), "type": "supergroup"}},
            "chat_instance": "1", "data": token}});
        let received = block_on(crate::dispatch::telegram::receive(
            &deps,
            body.to_string().as_bytes(),
            at,
        ))
        .expect("received");
        let run = block_on(crate::dispatch::telegram::run_update(&deps, update, at));
        (
            received.body["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            run.log,
        )
    }

    fn audit(&self, id: i64) -> Vec<(String, String, Option<String>)> {
        block_on(
            crate::audit::AuditStore::new(&self.db).of(SubjectKind::Notification, &id.to_string()),
        )
        .expect("audit")
        .into_iter()
        .map(|e| (e.actor, e.result.as_str().to_owned(), e.detail))
        .collect()
    }

    fn row(&self) -> (String, i64, Option<String>) {
        let rows = block_on(self.db.query(
            "SELECT status, attempts, result FROM cloudflare_rollbacks",
            &[],
        ))
        .expect("query");
        let r = &rows[0];
        (
            r.opt_text("status").unwrap_or_default(),
            r.opt_int("attempts").unwrap_or(-1),
            r.opt_text("result"),
        )
    }
}

fn worker(id: &str) -> Value {
    json!({"type": "worker", "projectName": "api", "deploymentId": id, "environment": "production",
           "branch": "main", "commitMessage": "Add JWT authentication"})
}

#[test]
fn a_press_rolls_the_worker_back_once_and_says_so_in_the_message() {
    let s = Scene::new(true);
    let id = s.announced(worker("build-1"), t(0));
    let done = s.press(id, "@alice", t(60)).expect("rolled back");
    assert_eq!(
        done,
        RolledBack {
            kind: DeployKind::Worker,
            project: "api".into(),
            from: "dep-3".into(),
            to: V_BEFORE.into(),
            label: "version 41 (18f97339) of Jan 14, 2025, 9:00 AM UTC".into(),
            deployment: Some("dep-4".into()),
            by: "@alice".into(),
        }
    );
    {
        let w = s.world.borrow();
        assert_eq!(
            w.posted,
            vec![json!({"strategy": "percentage",
                "versions": [{"version_id": V_BEFORE, "percentage": 100}],
                "annotations": {"workers/message": "rollback by @alice via edge-notifier"}})]
        );
    }
    assert_eq!(
        s.world.borrow().cloudflare_calls(&s.http),
        vec![
            "GET /workers/scripts/api/deployments".to_owned(),
            format!("GET /workers/scripts/api/versions/{V_BEFORE}"),
            "POST /workers/scripts/api/deployments".to_owned(),
        ]
    );
    s.edit_messages(t(61));
    {
        let w = s.world.borrow();
        assert_eq!(w.edits.len(), 1);
        let (message, text) = &w.edits[0];
        assert_eq!(*message, 701, "the notification's own message");
        assert!(text.starts_with(&w.sent[0]), "{text}");
        assert!(
            text.ends_with("\n\n↩️ Rolled back by @alice to version 41 (18f97339) of Jan 14, 2025, 9:00 AM UTC"),
            "{text}"
        );
    }

    // A second press (another operator, another chat's button) acts on nothing new.
    let calls = s.http.seen.borrow().len();
    assert_eq!(s.press(id, "@bob", t(90)), Ok(done));
    assert_eq!(s.http.seen.borrow().len(), calls, "nothing sent again");
    assert!(
        s.queue.telegram.borrow().is_empty(),
        "the message already says it"
    );
    assert_eq!(s.row().0, "done");
}

#[test]
fn a_changed_secret_is_shown_as_cloudflare_states_it_and_never_retried() {
    let s = Scene::new(true);
    s.world.borrow_mut().posts.push_back(Post::SecretChanged);
    let id = s.announced(worker("build-1"), t(0));
    let refused = s.press(id, "@alice", t(60)).expect_err("refused");
    let words = "A secret has changed since this version was active. If you are sure this is ok, \
                 add a ?force=true query parameter to allow the rollback. The following secrets \
                 have changed: API_KEY (code 10220)";
    assert_eq!(refused, RollbackError::Refused(words.into()));
    s.edit_messages(t(61));
    let edited = s.world.borrow().edits[0].1.clone();
    assert!(
        edited.ends_with(&format!(
            "⛔ Rollback by @alice refused by Cloudflare: {words}"
        )),
        "{edited}"
    );
    // Pressed again: the refusal stands, nothing goes to Cloudflare.
    let calls = s.http.seen.borrow().len();
    assert_eq!(s.press(id, "@alice", t(120)), Err(refused));
    assert_eq!(s.http.seen.borrow().len(), calls);
    assert_eq!(s.world.borrow().posted.len(), 1);
    assert!(
        !s.http.calls().iter().any(|c| c.contains("force")),
        "a refusal is never forced"
    );
}

#[test]
fn a_rollback_without_an_answer_is_looked_for_never_sent_again() {
    let s = Scene::new(true);
    s.world.borrow_mut().posts.push_back(Post::DeployUnanswered);
    let id = s.announced(worker("build-1"), t(0));
    assert_eq!(
        s.press(id, "@alice", t(60)),
        Err(RollbackError::Later(
            "Cloudflare API: timed out after 10000 ms; the rollback may or may not have happened"
                .into()
        ))
    );
    assert_eq!(s.row().0, "unconfirmed");
    assert!(s.queue.telegram.borrow().is_empty(), "nothing to say yet");
    // The retry only reads the deployments: it happened.
    let done = s.press(id, "@alice", t(64)).expect("found");
    assert_eq!(done.deployment.as_deref(), Some("dep-4"));
    let calls = s.world.borrow().cloudflare_calls(&s.http);
    assert_eq!(
        calls.iter().filter(|c| c.starts_with("POST")).count(),
        1,
        "{calls:?}"
    );
    assert_eq!(
        calls.last().map(String::as_str),
        Some("GET /workers/scripts/api/deployments")
    );
    s.edit_messages(t(65));
    assert!(s.world.borrow().edits[0]
        .1
        .contains("↩️ Rolled back by @alice"));
}

#[test]
fn a_rollback_that_got_a_502_and_does_not_show_fails_without_a_second_post() {
    let s = Scene::new(true);
    s.world.borrow_mut().posts.push_back(Post::BadGateway);
    let id = s.announced(worker("build-1"), t(0));
    assert!(matches!(
        s.press(id, "@alice", t(60)),
        Err(RollbackError::Later(_))
    ));
    let failed = s.press(id, "@alice", t(64)).expect_err("not there");
    assert_eq!(
        failed,
        RollbackError::Final(
            "Cloudflare API 502: no error message; the rollback may or may not have happened; \
             it does not show among the deployments, and it was not sent again"
                .into()
        )
    );
    assert_eq!(s.world.borrow().posted.len(), 1);
    s.edit_messages(t(65));
    assert!(s.world.borrow().edits[0]
        .1
        .contains("⚠️ Rollback by @alice failed: Cloudflare API 502"));
}

#[test]
fn reads_that_keep_failing_give_up_after_the_attempts() {
    let s = Scene::new(true);
    s.world
        .borrow_mut()
        .read_failures
        .extend([502; MAX_STEP_ATTEMPTS as usize]);
    let id = s.announced(worker("build-1"), t(0));
    for attempt in 1..MAX_STEP_ATTEMPTS {
        assert_eq!(
            s.press(id, "@alice", t(60 + attempt * 10)),
            Err(RollbackError::Later(
                "Cloudflare API 502: no error message".into()
            )),
            "attempt {attempt}"
        );
        assert_eq!(s.row().1, attempt);
    }
    assert_eq!(
        s.press(id, "@alice", t(200)),
        Err(RollbackError::Final(
            "Cloudflare API 502: no error message (gave up after 5 attempts)".into()
        ))
    );
    assert!(s.world.borrow().posted.is_empty());
    s.edit_messages(t(201));
    assert_eq!(s.world.borrow().edits.len(), 1);
}

#[test]
fn a_fresh_claim_holds_off_another_attempt_and_a_stale_one_sent_is_looked_for() {
    let s = Scene::new(true);
    let id = s.announced(worker("build-1"), t(0));
    // An attempt took the row and sent the rollback, then its consumer died.
    s.db.conn_for_tests()
        .execute(
            "INSERT INTO cloudflare_rollbacks (notification_id, kind, project, requested_by, status, \
               live_deployment, target, target_label, message, attempts, claimed_at, posted_at, created_at, updated_at) \
             VALUES (?1, 'worker', 'api', '@alice', 'posting', 'dep-3', ?2, 'version 41', \
               'rollback by @alice via edge-notifier', 1, ?3, ?3, ?3, ?3)",
            rusqlite::params![id, V_BEFORE, t(60).millis()],
        )
        .expect("insert");
    assert_eq!(
        s.press(id, "@bob", t(70)),
        Err(RollbackError::Later(
            "the rollback of api is under way".into()
        ))
    );
    assert!(s.http.calls().iter().all(|c| !c.contains("cf.test")));
    // It did happen (the deployment is there); once the claim is stale, the next
    // attempt looks, finds it, and sends nothing.
    s.world.borrow_mut().deployments.insert(
        0,
        deployment(
            "dep-4",
            "2025-01-15T11:00:00Z",
            json!([{"version_id": V_BEFORE, "percentage": 100}]),
            Some("rollback by @alice via edge-notifier"),
        ),
    );
    let done = s.press(id, "@bob", t(60 + 181)).expect("found");
    assert_eq!(
        (done.by.as_str(), done.deployment.as_deref()),
        ("@alice", Some("dep-4"))
    );
    assert!(s.world.borrow().posted.is_empty());
}

#[test]
fn a_polled_deployment_that_is_no_longer_live_is_not_rolled_back() {
    let s = Scene::new(true);
    let mut d = hook_deployment(worker("dep-2"));
    d.source = Source::Poll;
    let id = s.announced_as(d, t(0));
    assert_eq!(
        s.press(id, "@alice", t(60)),
        Err(RollbackError::Final(
            "dep-2 is no longer live (dep-3 is): nothing was rolled back".into()
        ))
    );
    assert!(s.world.borrow().posted.is_empty());
    assert_eq!(s.row().0, "failed");
}

#[test]
fn only_workers_and_pages_production_offer_the_button_and_only_when_on() {
    let on = config(true);
    let pages = |env: &str| {
        hook_deployment(
            json!({"type": "pages", "projectName": "docs", "deploymentId": "a1b2c3d4", "environment": env}),
        )
    };
    assert!(offers_rollback(&on, &hook_deployment(worker("b"))));
    assert!(offers_rollback(&on, &pages("production")));
    assert!(!offers_rollback(&on, &pages("preview")));
    assert!(!offers_rollback(
        &config(false),
        &hook_deployment(worker("b"))
    ));

    let s = Scene::new(false);
    let id = s.announced(worker("build-1"), t(0));
    assert_eq!(
        s.press(id, "@alice", t(60)),
        Err(RollbackError::NotConfigured("CLOUDFLARE_ROLLBACK"))
    );
    let s = Scene::new(true);
    let id = s.announced_as(pages("preview"), t(0));
    assert_eq!(
        s.press(id, "@alice", t(60)),
        Err(RollbackError::Final(
            "docs is not a production deployment: nothing to roll back".into()
        ))
    );
    assert_eq!(
        s.press(999, "@alice", t(60)),
        Err(RollbackError::Final(
            "notification 999 does not exist".into()
        ))
    );
    assert!(s.http.calls().iter().all(|c| !c.contains("cf.test")));
}

#[test]
fn a_workers_notification_carries_the_button_only_when_rollbacks_are_on() {
    let on = Scene::new(true);
    on.announced(worker("build-1"), t(0));
    let token = on.button(0).expect("a Roll back button");
    let rows = block_on(on.db.query(
        "SELECT subject, action, app, chat_id, message_id FROM telegram_buttons WHERE token = ?1",
        &[token.as_str().into()],
    ))
    .expect("query");
    let r = &rows[0];
    assert_eq!(
        (
            r.opt_text("subject"),
            r.opt_text("action"),
            r.opt_text("app"),
            r.opt_text("chat_id"),
            r.opt_int("message_id")
        ),
        (
            Some("notification:1".into()),
            Some("rollback".into()),
            Some("api".into()),
            Some("-100".into()),
            Some(701)
        ),
        "the token names the notification and the message it went out on"
    );
    assert!(token.len() <= 64);

    let off = Scene::new(false);
    off.announced(worker("build-1"), t(0));
    assert_eq!(off.button(0), None);
}

#[test]
fn an_operators_press_rolls_back_records_it_and_the_message_loses_its_button() {
    let s = Scene::new(true);
    let id = s.announced(worker("build-1"), t(0));
    let token = s.button(0).expect("button");
    let (answer, log) = s.tap(9001, (111, "alice"), ("-100", 701), &token, t(60));
    assert_eq!(answer, "Rolling back…");
    assert!(
        log.contains("rollback done of notification:1 by @alice"),
        "{log}"
    );
    assert_eq!(s.world.borrow().posted.len(), 1);
    assert_eq!(
        s.audit(id),
        vec![(
            "@alice".into(),
            "done".into(),
            Some("worker api to version 41 (18f97339) of Jan 14, 2025, 9:00 AM UTC".into())
        )]
    );
    s.edit_messages(t(61));
    let w = s.world.borrow();
    let edit = w.bodies.last().expect("the edit");
    assert_eq!(edit["message_id"], 701);
    assert!(
        edit.get("reply_markup").is_none(),
        "the button is gone: {edit}"
    );
    assert!(edit["text"].as_str().unwrap_or_default().ends_with(
        "↩️ Rolled back by @alice to version 41 (18f97339) of Jan 14, 2025, 9:00 AM UTC"
    ));
}

#[test]
fn a_press_refused_with_10220_is_shown_recorded_and_not_retried() {
    let s = Scene::new(true);
    s.world.borrow_mut().posts.push_back(Post::SecretChanged);
    let id = s.announced(worker("build-1"), t(0));
    let token = s.button(0).expect("button");
    let (answer, log) = s.tap(9001, (111, "alice"), ("-100", 701), &token, t(60));
    assert_eq!(answer, "Rolling back…");
    assert!(
        log.contains(
            "rollback failed of notification:1 by @alice: Cloudflare refused the rollback"
        ),
        "{log}"
    );
    let audit = s.audit(id);
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].1, "failed");
    assert!(
        audit[0].2.as_deref().is_some_and(
            |d| d.ends_with("The following secrets have changed: API_KEY (code 10220)")
        ),
        "{audit:?}"
    );
    // The update again (a redelivered queue message), and a second tap: nothing more
    // goes to Cloudflare.
    let deps = fake_deps(
        &s.config, &s.http, &s.db, &s.queue, &s.kv, &NoSigner, &s.cipher,
    );
    block_on(crate::dispatch::telegram::run_update(&deps, 9001, t(62)));
    let (again, _) = s.tap(9002, (111, "alice"), ("-100", 701), &token, t(63));
    assert_eq!(again, "This was already done");
    assert_eq!(s.world.borrow().posted.len(), 1);
    s.edit_messages(t(64));
    assert!(s.world.borrow().edits[0]
        .1
        .contains("⛔ Rollback by @alice refused by Cloudflare: A secret has changed"));
}

#[test]
fn a_press_by_someone_not_an_operator_changes_nothing() {
    let s = Scene::new(true);
    let id = s.announced(worker("build-1"), t(0));
    let token = s.button(0).expect("button");
    let (answer, _) = s.tap(9001, (666, "mallory"), ("-100", 701), &token, t(60));
    assert_eq!(answer, "You are not allowed to do this");
    assert!(s.http.calls().iter().all(|c| !c.contains("cf.test")));
    assert_eq!(
        s.audit(id),
        vec![(
            "@mallory".into(),
            "refused".into(),
            Some("not an operator".into())
        )]
    );
    // Pressed elsewhere than on its message: not ours.
    let (elsewhere, _) = s.tap(9002, (111, "alice"), ("-100", 999), &token, t(61));
    assert_eq!(elsewhere, "This button is no longer valid");
    assert!(s.world.borrow().posted.is_empty());
}

#[test]
fn another_messages_button_after_the_rollback_has_moved_on() {
    let s = Scene::new(true);
    let d = hook_deployment(worker("build-1"));
    let id = block_on(NotificationStore::new(&s.db).insert(&d, NotificationStatus::Pending, t(0)))
        .expect("insert")
        .expect("new");
    let route = |chat: &str| Recipient {
        route: "r".into(),
        chat_id: chat.into(),
        thread: String::new(),
        silent: false,
        link_preview: false,
        template: None,
        per_second: 0,
        per_minute: 0,
        digest_threshold: 0,
    };
    let routes = vec![route("-100"), route("-200")];
    block_on(s.courier().deliver(&move |_| routes.clone(), &[id], t(1)));
    let (first, second) = (s.button(0).expect("one"), s.button(1).expect("two"));
    assert_ne!(first, second, "a token per message");
    s.tap(9001, (111, "alice"), ("-100", 701), &first, t(60));
    let (answer, _) = s.tap(9002, (111, "alice"), ("-200", 702), &second, t(61));
    assert_eq!(answer, "This deployment has moved on");
    assert_eq!(s.world.borrow().posted.len(), 1);
    // Both messages say what happened, without a button.
    s.edit_messages(t(62));
    let w = s.world.borrow();
    let edited: Vec<i64> = w.edits.iter().map(|(m, _)| *m).collect();
    assert_eq!(edited, vec![701, 702]);
    assert!(w
        .edits
        .iter()
        .all(|(_, t)| t.contains("↩️ Rolled back by @alice")));
}
