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

/// Both logs, every outcome, from the top.
fn all_of(limit: u32) -> LogQuery {
    LogQuery::parse(None, None, None, limit).expect("no parameters")
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
    let all = block_on(deliveries(&db, &all_of(50)))
        .expect("listed")
        .entries;
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
        ids(&block_on(deliveries(&db, &all_of(2)))
            .expect("listed")
            .entries),
        vec!["worker:api:late-clock", "g-2500"]
    );
}

#[test]
fn each_entry_keeps_its_shape() {
    let db = SqliteSql::migrated();
    notify(&db, "dep-1", 1_000);
    record_delivery(&db, "g-1", 2_000);
    let all = block_on(deliveries(&db, &all_of(50)))
        .expect("listed")
        .entries;
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
    let e = block_on(deliveries(&db, &all_of(50))).expect_err("unreadable");
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
            {
                let mut merged = crate::cursor::merge_newest(a.clone(), b.clone(), |e| e.0);
                merged.truncate(limit);
                merged.into_iter().map(|(_, v)| v).collect::<Vec<_>>()
            },
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

#[test]
fn the_log_pages_through_both_sources_with_its_cursor_and_never_repeats_an_entry() {
    let db = SqliteSql::migrated();
    // Ties across the sources and within each, so every branch of the cursor runs.
    for (i, at) in [1_000, 2_000, 2_000, 3_000, 3_000].iter().enumerate() {
        notify(&db, &format!("n{i}"), *at);
        record_delivery(&db, &format!("g{i}"), *at);
    }
    let whole = ids(&block_on(deliveries(&db, &all_of(50)))
        .expect("listed")
        .entries)
    .into_iter()
    .map(str::to_owned)
    .collect::<Vec<_>>();
    assert_eq!(whole.len(), 10);
    let mut paged = Vec::new();
    let mut before: Option<String> = None;
    for _ in 0..10 {
        let q = LogQuery::parse(None, None, before.as_deref(), 3).expect("query");
        let page = block_on(deliveries(&db, &q)).expect("listed");
        paged.extend(ids(&page.entries).into_iter().map(str::to_owned));
        match page.next {
            Some(next) => before = Some(next.encode()),
            None => break,
        }
    }
    assert_eq!(paged, whole, "the pages, end to end, are the whole log");
}

#[test]
fn the_log_filters_by_source_and_outcome_and_refuses_what_it_does_not_know() {
    let db = SqliteSql::migrated();
    notify(&db, "dep-1", 1_000);
    record_delivery(&db, "g-1", 2_000);
    let only = |source: Option<&str>, outcome: Option<&str>| {
        let q = LogQuery::parse(source, outcome, None, 50).expect("query");
        ids(&block_on(deliveries(&db, &q)).expect("listed").entries)
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(only(Some("github"), None), vec!["g-1"]);
    assert_eq!(only(Some("notify"), None), vec!["worker:api:dep-1"]);
    assert_eq!(only(None, Some("ignored")), vec!["g-1"]);
    assert_eq!(only(None, Some("sent")), vec!["worker:api:dep-1"]);
    assert!(only(Some("github"), Some("sent")).is_empty());
    for (source, outcome, before) in [
        (Some("gitlab"), None, None),
        (None, Some("exploded"), None),
        (None, None, Some("not-a-cursor")),
        (None, None, Some("1000.n.abc")),
    ] {
        let e = LogQuery::parse(source, outcome, before, 50)
            .and_then(|q| block_on(deliveries(&db, &q)))
            .expect_err("refused");
        assert!(matches!(ApiError::from(e), ApiError::BadRequest(_)));
    }
}
