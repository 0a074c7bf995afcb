//! The consumer flow against SQLite and a scripted Telegram.

use super::*;
use crate::http::HttpError;
use crate::notify::store::NotificationRecord;
use crate::notify::Deployment;
use crate::retry::MAX_DELIVERY_ATTEMPTS;
use crate::testing::{block_on, hook_deployment, json_response, FakeHttp, SqliteSql};
use serde_json::json;

fn config(with_telegram: bool) -> Config {
    Config::from_lookup(|k| match k {
        "TELEGRAM_BOT_TOKEN" if with_telegram => Some("42:TOKEN".into()),
        "TELEGRAM_CHAT_ID" => Some("-100".into()),
        "TELEGRAM_API_BASE" => Some("http://tg.test".into()),
        _ => None,
    })
}

fn dep() -> Deployment {
    hook_deployment(json!({"type": "worker", "projectName": "api", "deploymentId": "b-1"}))
}

fn t(s: i64) -> Timestamp {
    Timestamp::from_millis(1_700_000_000_000 + s * 1000)
}

fn one(f: impl std::future::Future<Output = Vec<Delivered>>) -> Delivered {
    let mut v = block_on(f);
    assert_eq!(v.len(), 1);
    v.remove(0)
}

fn setup(db: &SqliteSql) -> (NotificationStore<&SqliteSql>, i64) {
    let store = NotificationStore::new(db);
    let id = block_on(store.insert(&dep(), NotificationStatus::Pending, t(0)))
        .expect("insert")
        .expect("new");
    (store, id)
}

fn row(store: &NotificationStore<&SqliteSql>) -> NotificationRecord {
    block_on(store.get(dep().kind, &dep().project_name, &dep().deployment_id))
        .expect("get")
        .expect("row")
}

fn ok(id: i64) -> Result<crate::http::HttpResponse, HttpError> {
    json_response(200, json!({"ok": true, "result": {"message_id": id}}))
}

#[test]
fn delivers_and_records_the_message_id() {
    let db = SqliteSql::migrated();
    let (store, id) = setup(&db);
    let http = FakeHttp::answering(vec![ok(501)]);
    let out = one(deliver(&config(true), &http, &store, &[id], t(1)));
    assert_eq!(out.verdict, Verdict::Ack);
    assert_eq!(row(&store).telegram_message_id, Some(501));
    // The queue delivers the same message again: nothing is sent twice.
    let out = one(deliver(&config(true), &http, &store, &[id], t(2)));
    assert_eq!(out.verdict, Verdict::Ack);
    assert_eq!(http.seen.borrow().len(), 1);
}

#[test]
fn rate_limits_wait_as_telegram_asks_then_succeed() {
    let db = SqliteSql::migrated();
    let (store, id) = setup(&db);
    let http = FakeHttp::answering(vec![
        json_response(
            429,
            json!({"ok": false, "description": "Too Many Requests: retry after 3", "parameters": {"retry_after": 3}}),
        ),
        ok(7),
    ]);
    let out = one(deliver(&config(true), &http, &store, &[id], t(1)));
    assert_eq!(out.verdict, Verdict::Retry { delay_seconds: 3 });
    assert_eq!(row(&store).status, NotificationStatus::Retrying);
    let out = one(deliver(&config(true), &http, &store, &[id], t(4)));
    assert_eq!(out.verdict, Verdict::Ack);
    let r = row(&store);
    assert_eq!(
        (r.status, r.attempts, r.last_error),
        (NotificationStatus::Sent, 2, None)
    );
}

#[test]
fn server_errors_back_off_then_dead_letter() {
    let db = SqliteSql::migrated();
    let (store, id) = setup(&db);
    let answers = (0..MAX_DELIVERY_ATTEMPTS)
        .map(|_| {
            json_response(
                503,
                json!({"ok": false, "description": "Service Unavailable"}),
            )
        })
        .collect();
    let http = FakeHttp::answering(answers);
    let mut delays = Vec::new();
    for i in 0..MAX_DELIVERY_ATTEMPTS {
        let out = one(deliver(
            &config(true),
            &http,
            &store,
            &[id],
            t(i64::from(i) * 100),
        ));
        match out.verdict {
            Verdict::Retry { delay_seconds } => delays.push(delay_seconds),
            Verdict::DeadLetter => assert_eq!(i + 1, MAX_DELIVERY_ATTEMPTS),
            Verdict::Ack => panic!("acked a failure: {}", out.log),
        }
    }
    assert_eq!(delays, vec![2, 4, 8, 16, 32]);
    let r = row(&store);
    assert_eq!(r.status, NotificationStatus::Failed);
    assert_eq!(
        r.last_error.as_deref(),
        Some("Telegram 503: Service Unavailable (gave up after 6 attempts)")
    );
}

#[test]
fn a_permanent_error_is_not_retried() {
    let db = SqliteSql::migrated();
    let (store, id) = setup(&db);
    let http = FakeHttp::answering(vec![json_response(
        400,
        json!({"ok": false, "description": "Bad Request: chat not found"}),
    )]);
    let out = one(deliver(&config(true), &http, &store, &[id], t(1)));
    assert_eq!(out.verdict, Verdict::Ack);
    assert!(out
        .log
        .contains("failed permanently: Telegram 400: Bad Request: chat not found"));
    assert_eq!(row(&store).status, NotificationStatus::Failed);
}

#[test]
fn without_telegram_it_is_recorded_as_not_sent() {
    let db = SqliteSql::migrated();
    let (store, id) = setup(&db);
    let http = FakeHttp::default();
    let out = one(deliver(&config(false), &http, &store, &[id], t(1)));
    assert_eq!(out.verdict, Verdict::Ack);
    let r = row(&store);
    assert_eq!(r.status, NotificationStatus::NotSent);
    let would = crate::telegram::render(&dep()).plain;
    assert_eq!(
        r.last_error.as_deref(),
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
    assert!(http.seen.borrow().is_empty());
}

#[test]
fn logs_never_carry_the_bot_token() {
    let db = SqliteSql::migrated();
    let (store, id) = setup(&db);
    let http = FakeHttp::answering(vec![Err(HttpError::Network(
        "fetch http://tg.test/bot42:TOKEN/sendMessage refused".into(),
    ))]);
    let out = one(deliver(&config(true), &http, &store, &[id], t(1)));
    assert!(!out.log.contains("42:TOKEN"), "{}", out.log);
    assert!(!row(&store)
        .last_error
        .unwrap_or_default()
        .contains("42:TOKEN"));
}
