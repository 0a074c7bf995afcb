//! The store's SQL against native SQLite with the real migrations.

use super::*;
use crate::testing::{block_on, hook_deployment, SqliteSql};
use serde_json::json;

fn t(s: i64) -> Timestamp {
    Timestamp::from_millis(1_700_000_000_000 + s * 1000)
}

fn dep(id: &str) -> Deployment {
    hook_deployment(
        json!({"type": "worker", "projectName": "api", "deploymentId": id, "commitHash": "abc1234"}),
    )
}

#[test]
fn the_unique_key_decides_repeats() {
    let db = SqliteSql::migrated();
    let store = NotificationStore::new(&db);
    let first =
        block_on(store.insert(&dep("b1"), NotificationStatus::Pending, t(0))).expect("insert");
    assert!(first.is_some());
    let again =
        block_on(store.insert(&dep("b1"), NotificationStatus::Pending, t(1))).expect("insert");
    assert_eq!(again, None);
    let mut pages = dep("b1");
    pages.kind = DeployKind::Pages;
    assert!(
        block_on(store.insert(&pages, NotificationStatus::Pending, t(1)))
            .expect("insert")
            .is_some()
    );
}

#[test]
fn known_by_id_or_by_project_and_commit() {
    let db = SqliteSql::migrated();
    let store = NotificationStore::new(&db);
    block_on(store.insert(&dep("build-1"), NotificationStatus::Pending, t(0))).expect("insert");
    let commit = CommitHash::parse("abc1234");
    let other = DeploymentId::parse_for_tests("cf-deploy-9");
    assert!(
        block_on(store.is_known(DeployKind::Worker, &dep("build-1").deployment_id, "x", None))
            .expect("q")
    );
    assert!(
        block_on(store.is_known(DeployKind::Worker, &other, "api", commit.as_ref())).expect("q")
    );
    assert!(
        !block_on(store.is_known(DeployKind::Worker, &other, "web", commit.as_ref())).expect("q")
    );
    assert!(!block_on(store.is_known(DeployKind::Worker, &other, "api", None)).expect("q"));
}

#[test]
fn one_claim_at_a_time_and_stale_claims_are_taken_over() {
    let db = SqliteSql::migrated();
    let store = NotificationStore::new(&db);
    let id = block_on(store.insert(&dep("b1"), NotificationStatus::Pending, t(0)))
        .expect("insert")
        .expect("new");
    let c = block_on(store.claim(id, t(1), t(-59)))
        .expect("claim")
        .expect("claimed");
    assert_eq!(c.attempt, 1);
    assert_eq!(c.deployment, dep("b1"));
    assert_eq!(
        block_on(store.claim(id, t(2), t(-58))).expect("claim"),
        None,
        "fresh claim held"
    );
    let c2 = block_on(store.claim(id, t(100), t(40)))
        .expect("claim")
        .expect("stale taken over");
    assert_eq!(c2.attempt, 2);
    block_on(store.mark_sent(id, 77, t(101))).expect("sent");
    assert_eq!(
        block_on(store.claim(id, t(500), t(440))).expect("claim"),
        None,
        "sent is final"
    );
    let rec = block_on(store.get(DeployKind::Worker, &dep("b1").deployment_id))
        .expect("get")
        .expect("row");
    assert_eq!(rec.status, NotificationStatus::Sent);
    assert_eq!(rec.telegram_message_id, Some(77));
    assert_eq!(rec.attempts, 2);
}

#[test]
fn retrying_rows_are_claimable_and_final_rows_are_not() {
    let db = SqliteSql::migrated();
    let store = NotificationStore::new(&db);
    let id = block_on(store.insert(&dep("b1"), NotificationStatus::Pending, t(0)))
        .expect("i")
        .expect("new");
    block_on(store.claim(id, t(1), t(0)))
        .expect("claim")
        .expect("claimed");
    block_on(store.mark_retrying(id, "Telegram 502", t(3), t(1))).expect("retrying");
    let c = block_on(store.claim(id, t(3), t(2)))
        .expect("claim")
        .expect("claimable again");
    assert_eq!(c.attempt, 2);
    block_on(store.mark_final(id, NotificationStatus::Failed, "Telegram 403: no", t(4)))
        .expect("final");
    assert_eq!(
        block_on(store.claim(id, t(500), t(440))).expect("claim"),
        None
    );
    let rec = block_on(store.get(DeployKind::Worker, &dep("b1").deployment_id))
        .expect("get")
        .expect("row");
    assert_eq!(rec.status, NotificationStatus::Failed);
    assert_eq!(rec.last_error.as_deref(), Some("Telegram 403: no"));
    assert!(
        !block_on(store.mark_dead_lettered(id, t(5))).expect("dlq"),
        "already final"
    );
}

#[test]
fn lost_rows_are_found_once_per_grace_period() {
    let db = SqliteSql::migrated();
    let store = NotificationStore::new(&db);
    let ins = |id: &str, at: i64| {
        block_on(store.insert(&dep(id), NotificationStatus::Pending, t(at)))
            .expect("insert")
            .expect("new")
    };
    let old_pending = ins("old", 0);
    let _fresh_pending = ins("fresh", 200);
    let retrying = ins("retrying", 0);
    block_on(store.claim(retrying, t(1), t(0)))
        .expect("c")
        .expect("claimed");
    block_on(store.mark_retrying(retrying, "502", t(5), t(1))).expect("r");
    let stuck = ins("stuck", 0);
    block_on(store.claim(stuck, t(10), t(0)))
        .expect("c")
        .expect("claimed");
    let sent = ins("sent", 0);
    block_on(store.claim(sent, t(1), t(0)))
        .expect("c")
        .expect("claimed");
    block_on(store.mark_sent(sent, 1, t(2))).expect("s");

    // At t=250 with a 120 s grace: cutoff t=130.
    let lost = block_on(store.lost_rows(t(130), 100)).expect("lost");
    assert_eq!(lost, vec![old_pending, retrying, stuck]);
    for id in &lost {
        block_on(store.mark_requeued(*id, t(250))).expect("requeued");
    }
    assert_eq!(
        block_on(store.lost_rows(t(130), 100)).expect("lost"),
        Vec::<i64>::new()
    );
    // Still undelivered a grace period later: found again.
    assert_eq!(
        block_on(store.lost_rows(t(371), 100)).expect("lost").len(),
        4
    );
}

#[test]
fn dead_lettered_rows_end_failed() {
    let db = SqliteSql::migrated();
    let store = NotificationStore::new(&db);
    let id = block_on(store.insert(&dep("b1"), NotificationStatus::Pending, t(0)))
        .expect("i")
        .expect("new");
    assert!(block_on(store.mark_dead_lettered(id, t(1))).expect("dlq"));
    let rec = block_on(store.recent(10)).expect("recent");
    assert_eq!(rec[0].status, NotificationStatus::Failed);
    assert_eq!(
        rec[0].last_error.as_deref(),
        Some("delivery failed (dead-lettered)")
    );
}
