use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::error::ApiError;
use crate::github::deliveries::Outcome;
use crate::github::events::GithubEvent;
use crate::notify::store::NotificationStatus;
use crate::testing::{block_on, hook_deployment, MemoryQueue, SqliteSql};

fn t(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn record_delivery(db: &SqliteSql, id: &str, at: i64) {
    let event = GithubEvent::Other {
        event: "star".into(),
        action: None,
        repository: Some("octo/app".into()),
    };
    let id = DeliveryId::parse(id).expect("id");
    block_on(DeliveryStore::new(db).record(&id, &event, Outcome::Ignored, None, t(at)))
        .expect("recorded");
}

fn notify(db: &SqliteSql, deployment: &str, at: i64) {
    let d = hook_deployment(
        json!({"type": "worker", "projectName": "api", "deploymentId": deployment}),
    );
    block_on(NotificationStore::new(db).insert(&d, NotificationStatus::Sent, t(at)))
        .expect("inserted")
        .expect("new");
}

fn ids(list: &[Value]) -> Vec<&str> {
    list.iter().map(|v| v["id"].as_str().expect("id")).collect()
}

#[test]
fn both_logs_newest_first_even_when_a_notification_was_stamped_out_of_order() {
    let db = SqliteSql::migrated();
    // Inserted in this order (ids 1, 2, 3), stamped by clocks that disagree.
    notify(&db, "late-clock", 3_000);
    notify(&db, "early-clock", 1_000);
    notify(&db, "middle", 2_000);
    record_delivery(&db, "g-2500", 2_500);
    record_delivery(&db, "g-1500", 1_500);
    record_delivery(&db, "g-2000", 2_000);
    let all = block_on(deliveries(&db, 50)).expect("listed");
    assert_eq!(
        ids(&all),
        vec![
            "worker:api:late-clock",
            "g-2500",
            "g-2000",
            "worker:api:middle",
            "g-1500",
            "worker:api:early-clock"
        ],
        "a delivery and a notification of the same millisecond: the delivery first"
    );
    assert_eq!(
        ids(&block_on(deliveries(&db, 2)).expect("listed")),
        vec!["worker:api:late-clock", "g-2500"]
    );
}

#[test]
fn each_entry_keeps_its_shape() {
    let db = SqliteSql::migrated();
    notify(&db, "dep-1", 1_000);
    record_delivery(&db, "g-1", 2_000);
    let all = block_on(deliveries(&db, 50)).expect("listed");
    assert_eq!(
        all,
        vec![
            json!({
                "source": "github", "id": "g-1", "event": "star", "action": null,
                "repository": "octo/app", "outcome": "ignored", "detail": null,
                "attempts": 0, "last_error": null, "received_at": 2_000, "updated_at": 2_000,
            }),
            json!({
                "source": "notify", "id": "worker:api:dep-1", "event": "worker deployment",
                "repository": null, "project": "api", "via": "hook", "outcome": "sent",
                "detail": null, "attempts": 0, "destinations": [], "received_at": 1_000,
                "updated_at": 1_000,
            }),
        ]
    );
}

#[test]
fn an_unreadable_log_is_unavailable() {
    let db = SqliteSql::migrated();
    db.conn_for_tests()
        .execute_batch("DROP TABLE notifications")
        .expect("dropped");
    let e = block_on(deliveries(&db, 50)).expect_err("unreadable");
    assert!(
        e.to_string().starts_with("notifications: database error: "),
        "{e}"
    );
    assert_eq!(ApiError::from(e), ApiError::Unavailable);
}

/// The merge as the stable sort it replaces: both lists, deliveries first, sorted
/// newest first, cut to `limit`.
fn sorted(first: &[(i64, Value)], second: &[(i64, Value)], limit: usize) -> Vec<Value> {
    let mut all: Vec<(i64, Value)> = first.iter().chain(second).cloned().collect();
    all.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
    all.truncate(limit);
    all.into_iter().map(|(_, v)| v).collect()
}

fn newest_first_list(times: Vec<i64>, tag: &str) -> Vec<(i64, Value)> {
    let mut times = times;
    times.sort_by(|a, b| b.cmp(a));
    times
        .into_iter()
        .enumerate()
        .map(|(i, at)| (at, json!(format!("{tag}{i}"))))
        .collect()
}

proptest! {
    #[test]
    fn the_merge_lists_what_the_stable_sort_listed(
        a in proptest::collection::vec(0i64..20, 0..30),
        b in proptest::collection::vec(0i64..20, 0..30),
        limit in 0usize..70,
    ) {
        let (a, b) = (newest_first_list(a, "a"), newest_first_list(b, "b"));
        prop_assert_eq!(
            newest_first(a.clone().into_iter(), b.clone().into_iter(), limit),
            sorted(&a, &b, limit)
        );
    }
}

#[test]
fn a_replay_starts_the_delivery_over_and_enqueues_it() {
    let db = SqliteSql::migrated();
    record_delivery(&db, "g-1", 1_000);
    let id = DeliveryId::parse("g-1").expect("id");
    let store = DeliveryStore::new(&db);
    block_on(store.set_outcome(&id, Outcome::Failed, Some("gave up"), t(1_500))).expect("failed");
    let queue = MemoryQueue::default();
    block_on(replay(&db, &queue, "g-1", t(2_000))).expect("replayed");
    let listed = &block_on(store.recent(1)).expect("recent")[0];
    assert_eq!(
        (listed.outcome, listed.attempts, listed.updated_at),
        (Outcome::Queued, 0, 2_000)
    );
    assert_eq!(
        *queue.sent.borrow(),
        vec![JobMessage::GithubDelivery { id: "g-1".into() }]
    );
}

#[test]
fn only_a_recorded_delivery_is_replayed() {
    let db = SqliteSql::migrated();
    let queue = MemoryQueue::default();
    for id in ["no-such-delivery", "../x", ""] {
        let e = block_on(replay(&db, &queue, id, t(0))).expect_err("unknown");
        assert_eq!(e, LogError::NotFound);
        assert_eq!(ApiError::from(e).status(), 404);
    }
    assert!(queue.sent.borrow().is_empty());
}

#[test]
fn a_replay_that_cannot_be_sent_is_unavailable_and_stays_queued_for_the_sweep() {
    let db = SqliteSql::migrated();
    record_delivery(&db, "g-1", 1_000);
    let queue = MemoryQueue::default();
    queue.fail.set(true);
    let e = block_on(replay(&db, &queue, "g-1", t(2_000))).expect_err("not sent");
    assert_eq!(e.to_string(), "queue: queue error: queue unavailable");
    assert_eq!(
        ApiError::from(e).body(),
        r#"{"success":false,"error":"temporarily unavailable, try again"}"#
    );
    let listed = &block_on(DeliveryStore::new(&db).recent(1)).expect("recent")[0];
    assert_eq!(listed.outcome, Outcome::Queued);

    db.conn_for_tests()
        .execute_batch("DROP TABLE deliveries")
        .expect("dropped");
    let e = block_on(replay(&db, &queue, "g-1", t(3_000))).expect_err("unreadable");
    assert!(
        e.to_string().starts_with("delivery: database error: "),
        "{e}"
    );
    assert_eq!(ApiError::from(e), ApiError::Unavailable);
}
