//! The Telegram consumer's flow against SQLite (the real migrations), a queue that
//! records what waits, and a scripted or simulated Telegram.

use super::*;
use crate::http::{HttpError, HttpRequest, HttpResponse};
use crate::notify::store::NotificationRecord;
use crate::ports::Sql;
use crate::retry::MAX_DELIVERY_ATTEMPTS;
use crate::row::Columns;
use crate::testing::{block_on, hook_deployment, json_response, FakeHttp, MemoryQueue, SqliteSql};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::rc::Rc;

fn config(with_telegram: bool) -> Config {
    Config::from_lookup(|k| match k {
        "TELEGRAM_BOT_TOKEN" if with_telegram => Some("42:TOKEN".into()),
        "TELEGRAM_CHAT_ID" => Some("-100".into()),
        "TELEGRAM_API_BASE" => Some("http://tg.test".into()),
        _ => None,
    })
}

fn t(s: i64) -> Timestamp {
    Timestamp::from_millis(1_700_000_000_000 + s * 1000)
}

fn dep(project: &str, id: &str) -> Deployment {
    hook_deployment(json!({"type": "worker", "projectName": project, "deploymentId": id}))
}

fn recipient(chat: &str, pace: Option<Pace>) -> Recipient {
    Recipient {
        route: "test".into(),
        chat_id: chat.into(),
        thread: String::new(),
        silent: false,
        link_preview: false,
        template: None,
        per_second: pace.map_or(0, |p| p.per_second),
        per_minute: pace.map_or(0, |p| p.per_minute),
        digest_threshold: pace.map_or(0, |p| p.digest_threshold),
    }
}

fn ok(id: i64) -> Result<HttpResponse, HttpError> {
    json_response(200, json!({"ok": true, "result": {"message_id": id}}))
}

fn rate_limited(after: u32) -> Result<HttpResponse, HttpError> {
    json_response(
        429,
        json!({"ok": false, "description": format!("Too Many Requests: retry after {after}"),
               "parameters": {"retry_after": after}}),
    )
}

/// (chat, status, attempts, message id, digest id, last error) of a destination row.
type RowView = (
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

/// One scenario's world: the database, the queue and Telegram.
struct Scene {
    db: SqliteSql,
    queue: MemoryQueue,
    http: FakeHttp,
    config: Config,
    routes: Vec<Recipient>,
}

impl Scene {
    fn new(http: FakeHttp) -> Scene {
        Scene {
            db: SqliteSql::migrated(),
            queue: MemoryQueue::default(),
            http,
            config: config(true),
            routes: vec![recipient("-100", None)],
        }
    }

    /// One chat paced as Telegram paces a group, with digests from `threshold`
    /// waiting, and the simulated Telegram behind it.
    fn paced(threshold: u32) -> (Rc<RefCell<Telegram>>, Scene) {
        let tg = Rc::new(RefCell::new(Telegram::default()));
        let mut s = Scene::new(simulated(tg.clone()));
        let pace = Pace {
            digest_threshold: threshold,
            ..Pace::TELEGRAM
        };
        s.routes = vec![recipient("-100", Some(pace))];
        (tg, s)
    }

    /// One chat's `thread` (a topic id or `auto`) in the simulated `telegram`.
    fn in_thread(telegram: Telegram, thread: &str) -> (Rc<RefCell<Telegram>>, Scene) {
        let tg = Rc::new(RefCell::new(telegram));
        let mut s = Scene::new(simulated(tg.clone()));
        let mut r = recipient("-100", None);
        r.thread = thread.into();
        s.routes = vec![r];
        (tg, s)
    }

    /// `n` deployments of projects `<prefix>0`… accepted at `at`.
    fn burst(&self, prefix: &str, n: usize, at: Timestamp) -> Vec<i64> {
        (0..n)
            .map(|i| self.accept(&dep(&format!("{prefix}{i}"), "b"), at))
            .collect()
    }

    fn courier(&self) -> Courier<'_, FakeHttp, &SqliteSql, MemoryQueue> {
        Courier {
            config: &self.config,
            http: &self.http,
            sql: &self.db,
            queue: &self.queue,
        }
    }

    /// A deployment accepted at `at`; its notification's id.
    fn accept(&self, d: &Deployment, at: Timestamp) -> i64 {
        block_on(NotificationStore::new(&self.db).insert(d, NotificationStatus::Pending, at))
            .expect("insert")
            .expect("new")
    }

    fn deliver(&self, ids: &[i64], at: Timestamp) -> Vec<Delivered> {
        let routes = self.routes.clone();
        block_on(self.courier().deliver(&move |_| routes.clone(), ids, at))
    }

    fn one(&self, id: i64, at: Timestamp) -> Delivered {
        let mut v = self.deliver(&[id], at);
        assert_eq!(v.len(), 1, "{v:?}");
        v.remove(0)
    }

    /// Runs every message that waits on the queue whose delay is over by `at`,
    /// as the queue would, until nothing more is due.
    fn run_queue_until(&self, at: Timestamp, from: Timestamp) -> Vec<String> {
        let mut log = Vec::new();
        // Each waiting message with the time the queue brings it back: its delay
        // counts from when it was sent (`from` for those already waiting).
        let mut waiting: Vec<(Timestamp, JobMessage)> = Vec::new();
        let mut now = from;
        loop {
            for (m, delay) in self.queue.later.borrow_mut().drain(..) {
                waiting.push((now.plus_seconds(i64::from(delay)), m));
            }
            let Some(next) = (0..waiting.len())
                .filter(|&i| waiting[i].0.millis() <= at.millis())
                .min_by_key(|&i| waiting[i].0.millis())
            else {
                // What is not due by `at` waits on (its delay from `from` again).
                let later = waiting.into_iter().map(|(when, m)| {
                    let delay = (when.millis() - from.millis()).max(0) / 1000;
                    (m, u32::try_from(delay).unwrap_or(u32::MAX))
                });
                self.queue.later.borrow_mut().extend(later);
                return log;
            };
            let (when, m) = waiting.remove(next);
            now = when;
            let out = match m {
                JobMessage::TelegramSend { id } => {
                    block_on(self.courier().deliver_rows(&[id], when))
                }
                JobMessage::TelegramDigest { id } => {
                    vec![block_on(self.courier().flush_digest(id, when))]
                }
                JobMessage::TelegramLive { id } => {
                    vec![block_on(self.courier().flush_live(id, when))]
                }
                other => panic!("unexpected {other:?}"),
            };
            log.extend(out.into_iter().map(|d| d.log));
        }
    }

    fn notification(&self, id: i64) -> NotificationRecord {
        let rows = block_on(self.db.query(
            "SELECT kind, project_name, deployment_id FROM notifications WHERE id = ?1",
            &[id.into()],
        ))
        .expect("query");
        let r = &rows[0];
        let d = dep(
            r.opt_str("project_name").expect("project"),
            r.opt_str("deployment_id").expect("id"),
        );
        block_on(NotificationStore::new(&self.db).get(d.kind, &d.project_name, &d.deployment_id))
            .expect("get")
            .expect("row")
    }

    /// (chat, status, attempts, message id, digest id, last error) of every row of
    /// notification `id`.
    fn rows(&self, id: i64) -> Vec<RowView> {
        block_on(SendStore::new(&self.db).of(&[id]))
            .expect("rows")
            .iter()
            .map(|r| {
                (
                    r.opt_text("chat_id").unwrap_or_default(),
                    r.opt_text("status").unwrap_or_default(),
                    r.opt_int("attempts").unwrap_or(-1),
                    r.opt_int("message_id"),
                    r.opt_int("digest_id"),
                    r.opt_text("last_error"),
                )
            })
            .collect()
    }

    fn status(&self, id: i64) -> String {
        self.rows(id)
            .into_iter()
            .map(|r| r.1)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A Telegram that keeps what it was sent: chats, threads, texts, edits, and
/// which chats are forums.
#[derive(Default)]
struct Telegram {
    sent: Vec<Value>,
    edits: Vec<Value>,
    topics: Vec<Value>,
    forums: Vec<&'static str>,
    gone: Vec<i64>,
    next: i64,
}

fn simulated(tg: Rc<RefCell<Telegram>>) -> FakeHttp {
    FakeHttp::routed(move |req: &HttpRequest| {
        let body: Value = serde_json::from_str(req.body.as_deref().unwrap_or("{}")).expect("JSON");
        let mut tg = tg.borrow_mut();
        tg.next += 1;
        let id = tg.next;
        let chat = body["chat_id"].as_str().unwrap_or_default().to_owned();
        let forum = tg.forums.iter().any(|f| *f == chat);
        if req.url.ends_with("/createForumTopic") {
            tg.topics.push(body.clone());
            if !forum {
                return json_response(
                    400,
                    json!({"ok": false, "description": "Bad Request: the chat is not a forum"}),
                );
            }
            return json_response(
                200,
                json!({"ok": true, "result": {"message_thread_id": id, "name": body["name"]}}),
            );
        }
        if req.url.ends_with("/editMessageText") {
            tg.edits.push(body);
            return ok(id);
        }
        assert!(req.url.ends_with("/sendMessage"), "{}", req.url);
        if let Some(thread) = body["message_thread_id"].as_i64() {
            if !forum || tg.gone.contains(&thread) {
                return json_response(
                    400,
                    json!({"ok": false, "description": "Bad Request: message thread not found"}),
                );
            }
        }
        tg.sent.push(body);
        ok(id)
    })
}

#[test]
fn a_notification_is_routed_sent_and_recorded_once() {
    let s = Scene::new(FakeHttp::answering(vec![ok(501)]));
    let id = s.accept(&dep("api", "b-1"), t(0));
    let out = s.one(id, t(1));
    assert_eq!(out.verdict, Verdict::Ack);
    assert!(out.log.contains("sent as message 501"), "{}", out.log);
    assert_eq!(
        s.rows(id),
        vec![("-100".into(), "sent".into(), 0, Some(501), None, None)]
    );
    let n = s.notification(id);
    assert_eq!(
        (n.status, n.telegram_message_id),
        (NotificationStatus::Sent, Some(501))
    );
    // The queue delivers the same message again: nothing is sent twice.
    assert_eq!(s.one(id, t(2)).verdict, Verdict::Ack);
    assert_eq!(s.http.seen.borrow().len(), 1);
}

#[test]
fn two_destinations_are_two_rows_each_sent_once() {
    let mut s = Scene::new(FakeHttp::answering(vec![ok(1), ok(2)]));
    s.routes = vec![recipient("-100", None), recipient("@ops_channel", None)];
    let id = s.accept(&dep("api", "b-1"), t(0));
    s.one(id, t(1));
    let rows = s.rows(id);
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.1 == "sent"), "{rows:?}");
    let chats: Vec<String> = s
        .http
        .bodies()
        .iter()
        .map(|b| b["chat_id"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(chats, vec!["-100", "@ops_channel"]);
    // Routed again (a redelivered message): no new rows, nothing sent.
    s.one(id, t(2));
    assert_eq!(s.rows(id).len(), 2);
    assert_eq!(s.http.seen.borrow().len(), 2);
}

#[test]
fn a_notification_whose_consumer_died_is_routed_again_once_its_claim_is_stale() {
    let mut s = Scene::new(FakeHttp::answering(vec![ok(1), ok(2)]));
    s.routes = vec![recipient("-100", None), recipient("@ops_channel", None)];
    let id = s.accept(&dep("api", "b-1"), t(0));
    // A consumer claimed it and died before it recorded anything: no rows yet.
    let held = block_on(s.courier().claim(&[id], t(1))).expect("claimed");
    assert_eq!(held.len(), 1);
    assert!(s.rows(id).is_empty());
    // While the claim is fresh, another copy of the message leaves it alone.
    assert!(s.one(id, t(30)).log.contains("already handled"));
    assert!(s.http.seen.borrow().is_empty());
    // Once it is stale, the next copy routes it again: each row added and sent once.
    s.one(id, t(1 + CLAIM_STALE_SECONDS + 1));
    let rows = s.rows(id);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r.1 == "sent"), "{rows:?}");
    assert_eq!(s.notification(id).status, NotificationStatus::Sent);
    assert_eq!(s.http.seen.borrow().len(), 2);
}

#[test]
fn a_notification_no_route_matches_is_recorded_as_no_route() {
    let mut s = Scene::new(FakeHttp::default());
    s.routes = vec![];
    let id = s.accept(&dep("api", "b-1"), t(0));
    let out = s.one(id, t(1));
    assert!(out.log.contains("no route"), "{}", out.log);
    let n = s.notification(id);
    assert_eq!(n.status, NotificationStatus::NotSent);
    assert_eq!(
        n.last_error.as_deref(),
        Some("no route: no route matches this deployment")
    );
}

#[test]
fn a_429_waits_as_telegram_asks_and_is_not_an_attempt() {
    let s = Scene::new(FakeHttp::answering(vec![rate_limited(3), ok(7)]));
    let id = s.accept(&dep("api", "b-1"), t(0));
    let out = s.one(id, t(1));
    assert_eq!(
        out.verdict,
        Verdict::Ack,
        "waits on the queue as a new message"
    );
    assert!(
        out.log.contains("429: retry after 3 s (not an attempt)"),
        "{}",
        out.log
    );
    assert_eq!(s.status(id), "waiting");
    let waiting: Vec<(JobMessage, u32)> = s.queue.later.borrow().clone();
    assert_eq!(waiting.len(), 1);
    assert!(
        matches!(waiting[0], (JobMessage::TelegramSend { .. }, 3)),
        "{waiting:?}"
    );
    assert_eq!(s.notification(id).status, NotificationStatus::Sending);
    s.run_queue_until(t(4), t(1));
    assert_eq!(
        s.rows(id),
        vec![("-100".into(), "sent".into(), 0, Some(7), None, None)]
    );
    assert_eq!(s.notification(id).status, NotificationStatus::Sent);
}

#[test]
fn server_errors_back_off_then_fail() {
    let answers = (0..MAX_DELIVERY_ATTEMPTS)
        .map(|_| {
            json_response(
                503,
                json!({"ok": false, "description": "Service Unavailable"}),
            )
        })
        .collect();
    let s = Scene::new(FakeHttp::answering(answers));
    let id = s.accept(&dep("api", "b-1"), t(0));
    s.one(id, t(1));
    let mut delays = Vec::new();
    let mut now = t(1);
    loop {
        let next = s.queue.later.borrow_mut().pop();
        let Some((m, delay)) = next else { break };
        delays.push(delay);
        now = now.plus_seconds(i64::from(delay));
        let JobMessage::TelegramSend { id: row } = m else {
            panic!("{m:?}")
        };
        block_on(s.courier().deliver_rows(&[row], now));
    }
    assert_eq!(delays, vec![2, 4, 8, 16, 32]);
    let rows = s.rows(id);
    assert_eq!(rows[0].1, "failed");
    assert_eq!(rows[0].2, i64::from(MAX_DELIVERY_ATTEMPTS));
    let n = s.notification(id);
    assert_eq!(n.status, NotificationStatus::Failed);
    assert_eq!(
        n.last_error.as_deref(),
        Some("-100: Telegram 503: Service Unavailable (gave up after 6 attempts)")
    );
}

#[test]
fn a_permanent_error_is_not_retried() {
    let s = Scene::new(FakeHttp::answering(vec![json_response(
        400,
        json!({"ok": false, "description": "Bad Request: chat not found"}),
    )]));
    let id = s.accept(&dep("api", "b-1"), t(0));
    let out = s.one(id, t(1));
    assert_eq!(out.verdict, Verdict::Ack);
    assert!(
        out.log
            .contains("failed permanently: Telegram 400: Bad Request: chat not found"),
        "{}",
        out.log
    );
    assert_eq!(s.notification(id).status, NotificationStatus::Failed);
    assert!(s.queue.later.borrow().is_empty());
}

#[test]
fn without_telegram_it_is_recorded_as_not_sent() {
    let mut s = Scene::new(FakeHttp::default());
    s.config = config(false);
    let d = dep("api", "b-1");
    let id = s.accept(&d, t(0));
    let out = s.one(id, t(1));
    assert_eq!(out.verdict, Verdict::Ack);
    let n = s.notification(id);
    assert_eq!(n.status, NotificationStatus::NotSent);
    let would = crate::template::render(&d).plain;
    assert_eq!(
        n.last_error.as_deref(),
        Some(
            format!(
                "not sent: Telegram is not configured (TELEGRAM_BOT_TOKEN is missing); it would have read:\n{would}"
            )
            .as_str()
        )
    );
    assert!(would.contains("Project: "), "the message itself: {would}");
    assert!(
        out.log.ends_with(&would),
        "logged as it would have been sent"
    );
    assert!(s.http.seen.borrow().is_empty());
}

#[test]
fn logs_never_carry_the_bot_token() {
    let s = Scene::new(FakeHttp::answering(vec![Err(HttpError::Network(
        "fetch http://tg.test/bot42:TOKEN/sendMessage refused".into(),
    ))]));
    let id = s.accept(&dep("api", "b-1"), t(0));
    let out = s.one(id, t(1));
    assert!(!out.log.contains("42:TOKEN"), "{}", out.log);
    assert!(s
        .rows(id)
        .iter()
        .all(|r| !r.5.clone().unwrap_or_default().contains("42:TOKEN")));
}

#[test]
fn a_paced_chat_gets_one_message_a_second_and_a_burst_becomes_a_digest() {
    let (tg, s) = Scene::paced(2);
    let ids = s.burst("p", 8, t(0));
    s.deliver(&ids, t(0));
    // The first goes at once, two wait for their slots, the rest join a digest.
    let statuses: Vec<String> = ids.iter().map(|id| s.status(*id)).collect();
    assert_eq!(
        statuses,
        vec![
            "sent", "waiting", "waiting", "digested", "digested", "digested", "digested",
            "digested"
        ]
    );
    assert_eq!(tg.borrow().sent.len(), 1);
    s.run_queue_until(t(60), t(0));
    let statuses: Vec<String> = ids.iter().map(|id| s.status(*id)).collect();
    assert!(statuses.iter().all(|st| st == "sent"), "{statuses:?}");
    // Three messages and one digest carrying the other five.
    let tg = tg.borrow();
    assert_eq!(tg.sent.len(), 4, "{:?}", tg.sent);
    let digest = tg.sent[3]["text"].as_str().unwrap_or_default().to_owned();
    assert!(
        digest.starts_with("<b>📦 5 deployments in the last minute</b>"),
        "{digest}"
    );
    for i in 3..8 {
        assert!(digest.contains(&format!("<b>p{i}</b>")), "{digest}");
    }
    // Every row in the digest records the digest's message.
    let digest_rows: Vec<Option<i64>> = ids[3..].iter().map(|id| s.rows(*id)[0].3).collect();
    assert!(
        digest_rows
            .windows(2)
            .all(|w| w[0] == w[1] && w[0].is_some()),
        "{digest_rows:?}"
    );
    assert!(ids
        .iter()
        .all(|id| s.notification(*id).status == NotificationStatus::Sent));
}

#[test]
fn lines_that_arrive_while_a_digest_is_open_edit_it_in_place() {
    let (tg, s) = Scene::paced(1);
    let first = s.burst("a", 4, t(0));
    s.deliver(&first, t(0));
    s.run_queue_until(t(10), t(0));
    assert_eq!(tg.borrow().edits.len(), 0);
    let sent_before = tg.borrow().sent.len();
    // More arrive within the minute: they join the open digest, which is edited.
    let more = s.burst("b", 2, t(10));
    s.deliver(&more, t(10));
    s.run_queue_until(t(30), t(10));
    let tg = tg.borrow();
    assert_eq!(tg.sent.len(), sent_before, "no new message");
    assert_eq!(tg.edits.len(), 1);
    let text = tg.edits[0]["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("<b>b0</b>") && text.contains("<b>b1</b>") && text.contains("<b>a2</b>"),
        "{text}"
    );
    assert!(more.iter().all(|id| s.status(*id) == "sent"));
}

#[test]
fn a_429_in_one_chat_leaves_another_flowing() {
    let tg = Rc::new(RefCell::new(Telegram::default()));
    let calls = Rc::new(RefCell::new(0));
    let inner = simulated(tg.clone());
    let counted = calls.clone();
    let http = FakeHttp::routed(move |req: &HttpRequest| {
        let body: Value = serde_json::from_str(req.body.as_deref().unwrap_or("{}")).expect("JSON");
        if body["chat_id"] == "-1" {
            *counted.borrow_mut() += 1;
            if *counted.borrow() == 1 {
                return rate_limited(30);
            }
        }
        block_on(crate::ports::Http::send(&inner, req.clone()))
    });
    let mut s = Scene::new(http);
    let pace = Pace {
        digest_threshold: 100,
        ..Pace::TELEGRAM
    };
    s.routes = vec![];
    let a = s.accept(&dep("a", "1"), t(0));
    s.routes = vec![recipient("-1", Some(pace))];
    s.deliver(&[a], t(0));
    s.routes = vec![recipient("-2", Some(pace))];
    let b: Vec<i64> = (0..3)
        .map(|i| s.accept(&dep(&format!("b{i}"), "1"), t(0)))
        .collect();
    s.deliver(&b, t(0));
    s.run_queue_until(t(5), t(0));
    assert_eq!(s.status(a), "waiting", "chat -1 waits out its 30 s");
    assert!(b.iter().all(|id| s.status(*id) == "sent"), "chat -2 flows");
    s.run_queue_until(t(31), t(0));
    assert_eq!(s.status(a), "sent");
    assert_eq!(s.rows(a)[0].2, 0, "the 429 was not an attempt");
}

#[test]
fn an_auto_topic_is_made_once_per_project_and_remembered() {
    let (tg, s) = Scene::in_thread(
        Telegram {
            forums: vec!["-100"],
            ..Telegram::default()
        },
        "auto",
    );
    let a1 = s.accept(&dep("api", "1"), t(0));
    let a2 = s.accept(&dep("api", "2"), t(0));
    let w = s.accept(&dep("web", "1"), t(0));
    s.deliver(&[a1], t(0));
    s.deliver(&[a2, w], t(1));
    let tg = tg.borrow();
    let names: Vec<&str> = tg
        .topics
        .iter()
        .map(|b| b["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, vec!["api", "web"], "one topic per project");
    let threads: Vec<i64> = tg
        .sent
        .iter()
        .map(|b| b["message_thread_id"].as_i64().unwrap_or(0))
        .collect();
    assert_eq!(threads[0], threads[1], "api's messages share its topic");
    assert_ne!(threads[0], threads[2]);
    assert!(threads.iter().all(|t| *t > 0));
}

#[test]
fn a_chat_that_is_not_a_forum_gets_the_message_itself() {
    let (tg, s) = Scene::in_thread(Telegram::default(), "auto");
    let a1 = s.accept(&dep("api", "1"), t(0));
    let a2 = s.accept(&dep("api", "2"), t(0));
    s.deliver(&[a1], t(0));
    s.deliver(&[a2], t(1));
    let tg = tg.borrow();
    assert_eq!(tg.topics.len(), 1, "asked once, remembered");
    assert_eq!(tg.sent.len(), 2);
    assert!(tg.sent.iter().all(|b| b.get("message_thread_id").is_none()));
}

#[test]
fn a_topic_that_is_gone_falls_back_to_the_chat() {
    let (tg, s) = Scene::in_thread(
        Telegram {
            forums: vec!["-100"],
            gone: vec![77],
            ..Telegram::default()
        },
        "77",
    );
    let id = s.accept(&dep("api", "1"), t(0));
    let out = s.one(id, t(0));
    assert!(
        out.log
            .contains("Telegram refused topic 77; sent to the chat itself"),
        "{}",
        out.log
    );
    let tg = tg.borrow();
    assert_eq!(tg.sent.len(), 1);
    assert!(tg.sent[0].get("message_thread_id").is_none());
    assert_eq!(s.status(id), "sent");
}

#[test]
fn silent_sends_and_link_previews_follow_the_destination() {
    let s0 = Scene::new(FakeHttp::answering(vec![ok(1)]));
    let mut s = s0;
    let mut r = recipient("-100", None);
    r.silent = true;
    r.link_preview = true;
    s.routes = vec![r];
    let id = s.accept(&dep("api", "1"), t(0));
    s.one(id, t(0));
    let body = &s.http.bodies()[0];
    assert_eq!(body["disable_notification"], true);
    assert_eq!(body["link_preview_options"]["is_disabled"], false);
}

#[test]
fn a_destination_with_a_template_gets_its_own_message_with_every_value_escaped() {
    let mut s = Scene::new(FakeHttp::answering(vec![ok(1)]));
    let mut r = recipient("-100", None);
    r.template =
        Some("<b>{{project}}</b> on {{environment}}{{#branch}} from {{branch}}{{/branch}}".into());
    s.routes = vec![r];
    let d = hook_deployment(
        json!({"type": "worker", "projectName": "a<b>&c", "deploymentId": "1", "branch": "x\"y"}),
    );
    let id = s.accept(&d, t(0));
    s.one(id, t(0));
    assert_eq!(
        s.http.bodies()[0]["text"],
        "<b>a&lt;b&gt;&amp;c</b> on production from x&quot;y"
    );
}

/// A deploy job's message as its flow shows it.
fn job_message(outcome: crate::routes::Outcome, html: &str) -> crate::live::Live<'static> {
    crate::live::Live {
        subject: "job:1".into(),
        source: crate::routes::Source::Deploy,
        project: "shop",
        environment: Some("production"),
        branch: Some("main"),
        outcome,
        html: html.into(),
        values: crate::template::Values::default()
            .with(crate::template::Field::Project, "shop")
            .with(crate::template::Field::Status, "failed"),
        silent: false,
        app_chat: None,
        buttons: Vec::new(),
    }
}

impl Scene {
    fn show(&self, live: &crate::live::Live<'_>, at: Timestamp) {
        assert_eq!(
            block_on(crate::live::show(
                &self.config,
                &self.db,
                &self.queue,
                live,
                at
            )),
            None
        );
    }

    /// Runs the live messages the flows queued, as the Telegram consumer would.
    fn run_live(&self, at: Timestamp) -> Vec<String> {
        let queued: Vec<JobMessage> = self.queue.telegram.borrow_mut().drain(..).collect();
        queued
            .into_iter()
            .map(|m| match m {
                JobMessage::TelegramLive { id } => block_on(self.courier().flush_live(id, at)).log,
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }
}

#[test]
fn a_jobs_message_is_sent_once_then_edited_as_it_moves_at_the_chats_pace() {
    use crate::routes::Outcome;
    let tg = Rc::new(RefCell::new(Telegram::default()));
    let s = Scene::new(simulated(tg.clone()));
    s.show(
        &job_message(Outcome::InProgress, "<b>Deploy shop</b> running"),
        t(0),
    );
    let log = s.run_live(t(0));
    assert!(log[0].contains("shows version 1 as message"), "{log:?}");
    // The same text again: nothing to send.
    s.show(
        &job_message(Outcome::InProgress, "<b>Deploy shop</b> running"),
        t(0),
    );
    assert!(s.queue.telegram.borrow().is_empty());
    // It moves on a moment later: the edit waits for the chat's next slot.
    s.show(
        &job_message(Outcome::Success, "<b>Deploy shop</b> finalized"),
        t(0),
    );
    let log = s.run_live(t(0));
    assert!(log[0].ends_with("waits for its slot"), "{log:?}");
    s.run_queue_until(t(5), t(0));
    let tg = tg.borrow();
    assert_eq!(tg.sent.len(), 1);
    assert_eq!(tg.edits.len(), 1);
    assert_eq!(tg.edits[0]["text"], "<b>Deploy shop</b> finalized");
}

#[test]
fn a_route_for_failures_gets_a_jobs_message_only_once_it_fails() {
    use crate::routes::{Outcome, RouteName, RouteSpec, RouteStore};
    let tg = Rc::new(RefCell::new(Telegram::default()));
    let s = Scene::new(simulated(tg.clone()));
    let spec = RouteSpec::parse(
        br#"{"match": {"source": "deploy", "outcome": ["failure"]}, "destinations": [{"chat_id": "-999"}], "continue": true}"#,
    )
    .expect("route");
    block_on(RouteStore::new(&s.db).put(&RouteName::parse("oncall").expect("name"), &spec, t(0)))
        .expect("stored");
    s.show(&job_message(Outcome::InProgress, "running"), t(0));
    s.run_live(t(0));
    s.show(&job_message(Outcome::Failure, "failed"), t(10));
    s.run_live(t(10));
    let tg = tg.borrow();
    let chats: Vec<&str> = tg
        .sent
        .iter()
        .map(|b| b["chat_id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        chats,
        vec!["-100", "-999"],
        "the default chat from the start, on-call once it failed"
    );
    assert_eq!(tg.sent[1]["text"], "failed");
    assert_eq!(tg.edits.len(), 1, "the default chat's message is edited");
}

#[test]
fn a_destination_with_a_template_shows_a_jobs_fields_in_its_own_words() {
    use crate::routes::{Outcome, RouteName, RouteSpec, RouteStore};
    let tg = Rc::new(RefCell::new(Telegram::default()));
    let s = Scene::new(simulated(tg.clone()));
    let spec = RouteSpec::parse(
        br#"{"match": {"source": "deploy"}, "destinations": [{"chat_id": "-999", "template": "<b>{{project}}</b> is {{status}}"}]}"#,
    )
    .expect("route");
    block_on(RouteStore::new(&s.db).put(&RouteName::parse("short").expect("name"), &spec, t(0)))
        .expect("stored");
    s.show(&job_message(Outcome::Failure, "the built-in text"), t(0));
    s.run_live(t(0));
    let tg = tg.borrow();
    assert_eq!(tg.sent.len(), 1);
    assert_eq!(tg.sent[0]["chat_id"], "-999");
    assert_eq!(tg.sent[0]["text"], "<b>shop</b> is failed");
}

#[test]
fn a_sends_timeout_allows_for_the_rounds_ahead_of_it() {
    // Eight at once into eight chats: the runtime takes six, then two, so the last
    // two may wait a round before they go out.
    let mut s = Scene::new(FakeHttp::answering((0..8).map(|i| ok(200 + i)).collect()));
    s.routes = (0..8)
        .map(|i| recipient(&format!("-20{i}"), None))
        .collect();
    let id = s.accept(&dep("fan", "1"), t(0));
    s.deliver(&[id], t(0));
    let mut timeouts: Vec<u32> = s.http.seen.borrow().iter().map(|r| r.timeout_ms).collect();
    timeouts.sort_unstable();
    assert_eq!(
        timeouts,
        vec![10_000, 10_000, 10_000, 10_000, 10_000, 10_000, 20_000, 20_000]
    );
    assert!(s.rows(id).iter().all(|r| r.1 == "sent"));
}

#[test]
fn a_digest_that_fills_up_leaves_the_rest_to_a_new_digest() {
    let (tg, s) = Scene::paced(1);
    let url = format!("https://example.com/{}", "x".repeat(400));
    let ids: Vec<i64> = (0..25)
        .map(|i| {
            let d = hook_deployment(json!({"type": "worker", "projectName": format!("p{i}"),
                                           "deploymentId": "b", "url": url}));
            s.accept(&d, t(0))
        })
        .collect();
    s.deliver(&ids, t(0));
    s.run_queue_until(t(120), t(0));
    let statuses: Vec<String> = ids.iter().map(|id| s.status(*id)).collect();
    assert!(statuses.iter().all(|st| st == "sent"), "{statuses:?}");
    // Every digest message fits Telegram's limit; more than one was needed, each
    // deployment is in exactly one of them.
    let tg = tg.borrow();
    let digests: Vec<&str> = tg
        .sent
        .iter()
        .filter_map(|b| b["text"].as_str())
        .filter(|t| t.starts_with("<b>📦"))
        .collect();
    assert!(digests.len() >= 2, "{} digests", digests.len());
    assert!(digests
        .iter()
        .all(|t| crate::telegram::utf16_len(t) <= 4096));
    for i in 0..25 {
        // A digest line, or a message of its own.
        let (line, own) = (format!("<b>p{i}</b>"), format!("<b>Project:</b> p{i}\n"));
        let shown = tg
            .sent
            .iter()
            .filter_map(|b| b["text"].as_str())
            .filter(|t| t.contains(&line) || t.contains(&own))
            .count();
        assert_eq!(shown, 1, "p{i}");
    }
}
