//! The `/github` intake's order, step by step: caps → signature → headers → parse →
//! record → enqueue. Each scenario shows that a later step never runs when an earlier
//! one refuses, and pins the answer each refusal gives.

use std::cell::{Cell, RefCell};

use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use super::*;
use crate::apps::App;
use crate::error::ApiError;
use crate::github::webhook::to_hex;
use crate::names::AppName;
use crate::testing::{block_on, MemoryQueue, SqliteSql};

const SECRET: &str = "current-secret";
const PREVIOUS: &str = "previous-secret";

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../tests/fixtures/github/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(path).expect("fixture")
}

fn signature(key: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", to_hex(&mac.finalize().into_bytes()))
}

/// A request as the Worker sees it; counts how often its body was read.
struct Request {
    headers: Vec<(&'static str, String)>,
    body: Result<Vec<u8>, BodyError>,
    reads: Cell<u32>,
}

impl Request {
    /// A delivery of `event` signed with `key`.
    fn signed(key: &str, event: &str, delivery: &str, body: Vec<u8>) -> Request {
        Request {
            headers: vec![
                ("content-length", body.len().to_string()),
                ("x-hub-signature-256", signature(key, &body)),
                ("x-github-event", event.to_owned()),
                ("x-github-delivery", delivery.to_owned()),
            ],
            body: Ok(body),
            reads: Cell::new(0),
        }
    }

    fn set(mut self, name: &'static str, value: Option<&str>) -> Request {
        self.headers.retain(|(n, _)| *n != name);
        if let Some(v) = value {
            self.headers.push((name, v.to_owned()));
        }
        self
    }
}

impl Incoming for Request {
    type Body = Vec<u8>;

    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    }

    async fn read_body(&self, limit: usize) -> Result<Vec<u8>, BodyError> {
        assert_eq!(limit, MAX_BODY_BYTES);
        self.reads.set(self.reads.get() + 1);
        self.body.clone()
    }
}

/// Native HMAC and SHA-256; records each call, and fails on demand.
#[derive(Default)]
struct NativeMac {
    calls: RefCell<Vec<&'static str>>,
    hmac_fails: bool,
    digest_fails: bool,
}

impl Mac for NativeMac {
    type Body = Vec<u8>;

    async fn hmac_sha256(&self, key: &[u8], body: &Vec<u8>) -> Result<Vec<u8>, String> {
        self.calls.borrow_mut().push("hmac");
        if self.hmac_fails {
            return Err("crypto is unavailable".into());
        }
        let mut mac = Hmac::<Sha256>::new_from_slice(key).map_err(|e| e.to_string())?;
        mac.update(body);
        Ok(mac.finalize().into_bytes().to_vec())
    }

    async fn sha256(&self, body: &Vec<u8>) -> Result<Vec<u8>, String> {
        self.calls.borrow_mut().push("sha256");
        if self.digest_fails {
            return Err("crypto is unavailable".into());
        }
        Ok(<Sha256 as sha2::Digest>::digest(body).to_vec())
    }

    fn len(&self, body: &Vec<u8>) -> usize {
        body.len()
    }

    fn to_vec(&self, body: &Vec<u8>) -> Vec<u8> {
        self.calls.borrow_mut().push("copy");
        body.clone()
    }
}

fn config(secrets: &[(&str, &str)]) -> Config {
    Config::from_lookup(|name| {
        secrets
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned())
    })
}

fn configured() -> Config {
    config(&[
        ("GITHUB_WEBHOOK_SECRET", SECRET),
        ("GITHUB_WEBHOOK_SECRET_PREVIOUS", PREVIOUS),
    ])
}

/// A clock that moves 7 ms each time it is read.
fn ticking() -> impl Fn() -> Timestamp {
    let now = Cell::new(1_736_937_000_000);
    move || {
        now.set(now.get() + 7);
        Timestamp::from_millis(now.get())
    }
}

/// Runs the intake as the Worker does, enqueueing what the receipt says.
fn deliver(
    request: &Request,
    mac: &NativeMac,
    config: &Config,
    db: Result<&SqliteSql, &'static str>,
    queue: &MemoryQueue,
) -> Result<Receipt, IntakeError> {
    let receipt = block_on(receive(request, mac, config, db, &ticking()))?;
    if let Some(job) = receipt.enqueue() {
        block_on(job.send(queue)).expect("sent");
    }
    Ok(receipt)
}

/// Runs the intake with no database bound, for the steps before it is needed.
fn refused_without_a_database(request: &Request, mac: &NativeMac) -> IntakeError {
    deliver(
        request,
        mac,
        &configured(),
        Err("the D1 binding DB"),
        &MemoryQueue::default(),
    )
    .expect_err("refused")
}

fn answer(e: IntakeError) -> (u16, String) {
    let e = ApiError::from(e);
    (e.status(), e.body())
}

fn recorded(db: &SqliteSql) -> Vec<(String, String)> {
    block_on(DeliveryStore::new(db).recent(100))
        .expect("recent")
        .into_iter()
        .map(|d| (d.id, d.outcome.as_str().to_owned()))
        .collect()
}

fn register_hello_world(db: &SqliteSql) {
    let app = App::parse(
        br#"{"repository": "Codertocat/Hello-World", "production_branch": "master",
        "environment": "production", "deploy_on": "push",
        "deploy": {"type": "deploy_hook", "url": "https://hooks.example.com/x"}}"#,
    )
    .expect("app");
    block_on(AppStore::new(db).put(
        &AppName::parse("hello").expect("name"),
        &app,
        Timestamp::from_millis(0),
    ))
    .expect("registered");
}

fn push(delivery: &str) -> Request {
    Request::signed(
        SECRET,
        "push",
        delivery,
        fixture("push.with-new-branch.json"),
    )
}

#[test]
fn a_signed_push_for_a_watched_branch_is_recorded_then_queued() {
    let db = SqliteSql::migrated();
    register_hello_world(&db);
    let (mac, queue) = (NativeMac::default(), MemoryQueue::default());
    let request = push("d-1");
    let receipt = deliver(&request, &mac, &configured(), Ok(&db), &queue).expect("taken");
    assert_eq!(
        (receipt.status(), receipt.message()),
        (202, "Queued".into())
    );
    assert_eq!(
        receipt.timing,
        format!(
            "verify;dur=7;desc=\"HMAC-SHA256 of {} bytes\"",
            fixture("push.with-new-branch.json").len()
        )
    );
    assert_eq!(receipt.log(), None);
    assert_eq!(recorded(&db), vec![("d-1".into(), "queued".into())]);
    assert_eq!(
        *queue.sent.borrow(),
        vec![JobMessage::GithubDelivery { id: "d-1".into() }],
        "the queue message keeps its shape"
    );
    assert_eq!(
        *mac.calls.borrow(),
        vec!["hmac", "copy", "sha256"],
        "hashed once under the current secret, copied once, after the signature"
    );
}

#[test]
fn the_previous_secret_is_tried_after_the_current_one() {
    let db = SqliteSql::migrated();
    let mac = NativeMac::default();
    let request = Request::signed(PREVIOUS, "ping", "d-1", fixture("ping.json"));
    let receipt = deliver(
        &request,
        &mac,
        &configured(),
        Ok(&db),
        &MemoryQueue::default(),
    )
    .expect("taken");
    assert_eq!((receipt.status(), receipt.message()), (200, "pong".into()));
    assert_eq!(*mac.calls.borrow(), vec!["hmac", "hmac", "copy", "sha256"]);

    let only_current = config(&[("GITHUB_WEBHOOK_SECRET", SECRET)]);
    let again = Request::signed(PREVIOUS, "ping", "d-2", fixture("ping.json"));
    assert_eq!(
        deliver(
            &again,
            &mac,
            &only_current,
            Ok(&db),
            &MemoryQueue::default()
        ),
        Err(IntakeError::Signature(SignatureError::Mismatch))
    );
}

#[test]
fn without_a_webhook_secret_nothing_is_read() {
    let request = push("d-1");
    let e = deliver(
        &request,
        &NativeMac::default(),
        &config(&[]),
        Err("the D1 binding DB"),
        &MemoryQueue::default(),
    )
    .expect_err("refused");
    assert_eq!(
        answer(e),
        (
            503,
            r#"{"success":false,"error":"GITHUB_WEBHOOK_SECRET is not configured"}"#.into()
        )
    );
    assert_eq!(request.reads.get(), 0);
}

#[test]
fn the_declared_length_is_capped_before_the_signature_is_looked_at() {
    let request = push("d-1")
        .set("content-length", Some(&(MAX_BODY_BYTES + 1).to_string()))
        .set("x-hub-signature-256", None);
    let e = refused_without_a_database(&request, &NativeMac::default());
    assert_eq!(
        answer(e),
        (
            413,
            r#"{"success":false,"error":"request body is larger than 26214400 bytes"}"#.into()
        )
    );
    assert_eq!(request.reads.get(), 0, "not read at all");
}

#[test]
fn the_signature_header_is_checked_before_the_body_is_read() {
    for (header, text) in [
        (None, "missing X-Hub-Signature-256 header"),
        (Some("sha1=abc"), "malformed X-Hub-Signature-256 header"),
    ] {
        let mut request = push("d-1").set("x-hub-signature-256", header);
        // A chunked body over the cap would be a 413, but it is never read.
        request.body = Err(BodyError::TooLarge {
            limit: MAX_BODY_BYTES,
        });
        let mac = NativeMac::default();
        let e = refused_without_a_database(&request, &mac);
        assert_eq!(
            answer(e),
            (401, format!(r#"{{"success":false,"error":"{text}"}}"#))
        );
        assert_eq!(request.reads.get(), 0);
        assert!(mac.calls.borrow().is_empty());
    }
}

#[test]
fn a_streamed_body_over_the_cap_or_unreadable_is_refused_before_any_hashing() {
    for (error, answered) in [
        (
            BodyError::TooLarge {
                limit: MAX_BODY_BYTES,
            },
            (
                413,
                r#"{"success":false,"error":"request body is larger than 26214400 bytes"}"#,
            ),
        ),
        (
            BodyError::Unreadable,
            (400, r#"{"success":false,"error":"unreadable body"}"#),
        ),
    ] {
        let mut request = push("d-1").set("content-length", None);
        request.body = Err(error);
        let mac = NativeMac::default();
        let e = refused_without_a_database(&request, &mac);
        assert_eq!(answer(e), (answered.0, answered.1.to_owned()));
        assert!(mac.calls.borrow().is_empty());
    }
}

#[test]
fn a_bad_signature_never_parses_or_records() {
    let db = SqliteSql::migrated();
    let (mac, queue) = (NativeMac::default(), MemoryQueue::default());
    // Not JSON, no event header: either would be a 400 if it were looked at.
    let request = Request::signed("a stranger's secret", "push", "d-1", b"{not json".to_vec())
        .set("x-github-event", None);
    let e = deliver(&request, &mac, &configured(), Ok(&db), &queue).expect_err("refused");
    assert_eq!(
        answer(e),
        (
            401,
            r#"{"success":false,"error":"signature does not match"}"#.into()
        )
    );
    assert_eq!(
        *mac.calls.borrow(),
        vec!["hmac", "hmac"],
        "both secrets tried, the body never copied or hashed for the record"
    );
    assert!(recorded(&db).is_empty());
    assert!(queue.sent.borrow().is_empty());
}

#[test]
fn a_failing_hmac_is_an_internal_error() {
    let mac = NativeMac {
        hmac_fails: true,
        ..NativeMac::default()
    };
    let e = refused_without_a_database(&push("d-1"), &mac);
    assert!(matches!(e, IntakeError::Failed(_)));
    assert_eq!(e.to_string(), "HMAC failed: crypto is unavailable");
    assert_eq!(
        answer(e),
        (500, r#"{"success":false,"error":"internal error"}"#.into())
    );
}

#[test]
fn the_delivery_headers_are_checked_before_the_payload_is_parsed() {
    let long = "x".repeat(65);
    for (name, value, text) in [
        ("x-github-event", None, "missing X-GitHub-Event header"),
        ("x-github-event", Some(""), "missing X-GitHub-Event header"),
        (
            "x-github-event",
            Some(long.as_str()),
            "missing X-GitHub-Event header",
        ),
        (
            "x-github-delivery",
            None,
            "missing or invalid X-GitHub-Delivery header",
        ),
        (
            "x-github-delivery",
            Some("../x"),
            "missing or invalid X-GitHub-Delivery header",
        ),
    ] {
        let request =
            Request::signed(SECRET, "push", "d-1", b"{not json".to_vec()).set(name, value);
        let mac = NativeMac::default();
        let e = refused_without_a_database(&request, &mac);
        assert_eq!(
            answer(e),
            (400, format!(r#"{{"success":false,"error":"{text}"}}"#)),
            "{name}: {value:?}"
        );
        assert_eq!(*mac.calls.borrow(), vec!["hmac"], "authentic, never parsed");
    }
}

#[test]
fn the_payload_is_parsed_before_the_database_is_needed() {
    let request = Request::signed(SECRET, "push", "d-1", b"{not json".to_vec());
    let e = refused_without_a_database(&request, &NativeMac::default());
    let (status, body) = answer(e);
    assert_eq!(status, 400);
    assert!(
        body.starts_with(r#"{"success":false,"error":"push payload: malformed JSON"#),
        "{body}"
    );

    let e = refused_without_a_database(&push("d-1"), &NativeMac::default());
    assert_eq!(
        answer(e),
        (
            503,
            r#"{"success":false,"error":"the D1 binding DB is not configured"}"#.into()
        )
    );
}

#[test]
fn unreadable_apps_record_nothing() {
    let db = SqliteSql::migrated();
    db.conn_for_tests()
        .execute_batch("DROP TABLE apps")
        .expect("dropped");
    let (mac, queue) = (NativeMac::default(), MemoryQueue::default());
    let e = deliver(&push("d-1"), &mac, &configured(), Ok(&db), &queue).expect_err("refused");
    assert!(matches!(e, IntakeError::Failed(_)));
    assert!(e.to_string().starts_with("apps not readable: "), "{e}");
    assert_eq!(
        answer(e),
        (
            503,
            r#"{"success":false,"error":"temporarily unavailable, try again"}"#.into()
        )
    );
    assert!(recorded(&db).is_empty());
    assert!(queue.sent.borrow().is_empty());
}

#[test]
fn a_failing_digest_records_nothing() {
    let db = SqliteSql::migrated();
    register_hello_world(&db);
    let mac = NativeMac {
        digest_fails: true,
        ..NativeMac::default()
    };
    let queue = MemoryQueue::default();
    let e = deliver(&push("d-1"), &mac, &configured(), Ok(&db), &queue).expect_err("refused");
    assert_eq!(e, IntakeError::Failed(IntakeFailure::Digest));
    assert_eq!(
        answer(e),
        (500, r#"{"success":false,"error":"internal error"}"#.into())
    );
    assert!(recorded(&db).is_empty());
    assert!(queue.sent.borrow().is_empty());
}

#[test]
fn a_record_failure_enqueues_nothing() {
    let db = SqliteSql::migrated();
    register_hello_world(&db);
    db.conn_for_tests()
        .execute_batch("DROP TABLE deliveries")
        .expect("dropped");
    let queue = MemoryQueue::default();
    let e = deliver(
        &push("d-1"),
        &NativeMac::default(),
        &configured(),
        Ok(&db),
        &queue,
    )
    .expect_err("refused");
    assert!(matches!(e, IntakeError::Failed(_)));
    assert!(
        e.to_string().starts_with("delivery d-1 not recorded: "),
        "{e}"
    );
    assert_eq!(
        answer(e),
        (
            503,
            r#"{"success":false,"error":"temporarily unavailable, try again"}"#.into()
        )
    );
    assert!(queue.sent.borrow().is_empty());
}

#[test]
fn a_duplicate_answers_already_processed_and_enqueues_nothing() {
    let db = SqliteSql::migrated();
    register_hello_world(&db);
    let queue = MemoryQueue::default();
    let mac = NativeMac::default();
    deliver(&push("d-1"), &mac, &configured(), Ok(&db), &queue).expect("taken");
    for again in [push("d-1"), push("d-2")] {
        let receipt = deliver(&again, &mac, &configured(), Ok(&db), &queue).expect("taken");
        assert_eq!(receipt.received, Received::Duplicate);
        assert_eq!(
            (receipt.status(), receipt.message()),
            (200, "Already processed".into())
        );
        assert_eq!(receipt.enqueue(), None);
        assert!(receipt.timing.starts_with("verify;dur="));
    }
    assert_eq!(queue.sent.borrow().len(), 1, "only the first was enqueued");
    assert_eq!(recorded(&db), vec![("d-1".into(), "queued".into())]);
}

#[test]
fn what_no_app_uses_is_recorded_as_ignored_and_not_enqueued() {
    let db = SqliteSql::migrated();
    let queue = MemoryQueue::default();
    let receipt = deliver(
        &push("d-1"),
        &NativeMac::default(),
        &configured(),
        Ok(&db),
        &queue,
    )
    .expect("taken");
    assert_eq!(
        (receipt.status(), receipt.message()),
        (
            202,
            "Ignored: no app deploys Codertocat/Hello-World from master".into()
        )
    );
    assert_eq!(
        receipt.log().as_deref(),
        Some("github: delivery d-1 (push) ignored: no app deploys Codertocat/Hello-World from master")
    );
    assert_eq!(receipt.enqueue(), None);
    assert!(queue.sent.borrow().is_empty());
    assert_eq!(recorded(&db), vec![("d-1".into(), "ignored".into())]);
}

#[test]
fn a_failed_send_is_a_log_line_and_the_row_stays_queued() {
    let db = SqliteSql::migrated();
    register_hello_world(&db);
    let receipt = block_on(receive(
        &push("d-1"),
        &NativeMac::default(),
        &configured(),
        Ok(&db),
        &ticking(),
    ))
    .expect("taken");
    let queue = MemoryQueue::default();
    queue.fail.set(true);
    let job = receipt.enqueue().expect("queued");
    assert_eq!(
        block_on(job.send(&queue)),
        Err("github: delivery d-1 recorded, not enqueued (queue error: queue unavailable); the cron sweep will enqueue it".into())
    );
    assert_eq!(recorded(&db), vec![("d-1".into(), "queued".into())]);
}
