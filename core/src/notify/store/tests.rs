//! The store's SQL against native SQLite with the real migrations.

use super::*;
use crate::testing::{block_on, hook_deployment, SqliteSql};
use serde_json::json;

type Store<'a> = NotificationStore<&'a SqliteSql>;

fn t(s: i64) -> Timestamp {
    Timestamp::from_millis(1_700_000_000_000 + s * 1000)
}

fn dep(id: &str) -> Deployment {
    hook_deployment(
        json!({"type": "worker", "projectName": "api", "deploymentId": id, "commitHash": "abc1234"}),
    )
}

fn insert(store: &Store, id: &str, at: i64) -> i64 {
    block_on(store.insert(&dep(id), NotificationStatus::Pending, t(at)))
        .expect("insert")
        .expect("new row")
}

fn claim(store: &Store, ids: &[i64], now: i64, stale: i64) -> Vec<i64> {
    block_on(store.claim(ids, t(now), t(stale)))
        .expect("claim")
        .iter()
        .map(|c| c.id)
        .collect()
}

fn record(store: &Store, outcome: Outcome, now: i64) {
    block_on(store.record(&[outcome], t(now))).expect("record");
}

fn row(store: &Store, id: &str) -> NotificationRecord {
    block_on(store.get(DeployKind::Worker, "api", &dep(id).deployment_id))
        .expect("get")
        .expect("row")
}

#[test]
fn the_unique_key_decides_repeats() {
    let db = SqliteSql::migrated();
    let store = NotificationStore::new(&db);
    insert(&store, "b1", 0);
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

fn of_project(project: &str, id: &str) -> Deployment {
    hook_deployment(json!({"type": "worker", "projectName": project, "deploymentId": id}))
}

#[test]
fn one_run_id_in_two_projects_is_two_deployments() {
    let db = SqliteSql::migrated();
    let store = NotificationStore::new(&db);
    let put = |d: &Deployment| {
        block_on(store.insert(d, NotificationStatus::Pending, t(0))).expect("insert")
    };
    let api = put(&of_project("api", "gh-42-1")).expect("the first project's is new");
    let web = put(&of_project("web", "gh-42-1")).expect("the second project's is new too");
    assert_ne!(api, web);
    assert_eq!(
        put(&of_project("api", "gh-42-1")),
        None,
        "the same project and id is a repeat"
    );
    let id = DeploymentId::parse_for_tests("gh-42-1");
    let got = |project: &str| {
        block_on(store.get(DeployKind::Worker, project, &id))
            .expect("get")
            .map(|r| r.id)
    };
    assert_eq!(
        (got("api"), got("web"), got("docs")),
        (Some(api), Some(web), None)
    );
}

/// Writes a row as the code before 0009 did (its insert named the old key).
fn insert_before_0009(
    db: &SqliteSql,
    d: &Deployment,
    status: &str,
    at: i64,
) -> rusqlite::Result<usize> {
    let json = serde_json::to_string(d).expect("serialises");
    db.conn_for_tests().execute(
        "INSERT INTO notifications \
         (kind, deployment_id, project_name, commit_hash, source, deployment, status, created_at, updated_at) \
         VALUES (?1, ?2, ?3, NULL, 'hook', ?4, ?5, ?6, ?6) ON CONFLICT (kind, deployment_id) DO NOTHING",
        rusqlite::params![
            d.kind.as_str(),
            d.deployment_id.as_str(),
            d.project_name,
            json,
            status,
            t(at).millis()
        ],
    )
}

#[test]
fn the_migration_to_the_project_key_keeps_every_row() {
    // The schema before 0009, with rows written under it.
    let db = SqliteSql::migrated_through("0008");
    assert_eq!(
        insert_before_0009(&db, &of_project("api", "b-1"), "sent", 0),
        Ok(1)
    );
    assert_eq!(
        insert_before_0009(&db, &of_project("web", "b-2"), "pending", 3),
        Ok(1)
    );
    assert_eq!(
        insert_before_0009(&db, &of_project("web", "b-1"), "pending", 4),
        Ok(0),
        "before 0009 an id is unique per kind alone: the monorepo bug"
    );
    db.conn_for_tests()
        .execute(
            "UPDATE notifications SET telegram_message_id = 7, attempts = 1, updated_at = ?1 \
             WHERE deployment_id = 'b-1'",
            [t(2).millis()],
        )
        .expect("update");
    let ids: Vec<i64> = ["b-1", "b-2"]
        .iter()
        .map(|id| {
            db.conn_for_tests()
                .query_row(
                    "SELECT id FROM notifications WHERE deployment_id = ?1",
                    [id],
                    |r| r.get(0),
                )
                .expect("row")
        })
        .collect();
    let (sent, pending) = (ids[0], ids[1]);

    db.migrate_after("0008");
    let store = NotificationStore::new(&db);
    let rows = block_on(store.recent(10)).expect("recent");
    assert_eq!(rows.len(), 2, "every row survives");
    let r = block_on(store.get(
        DeployKind::Worker,
        "api",
        &of_project("api", "b-1").deployment_id,
    ))
    .expect("get")
    .expect("kept");
    assert_eq!(
        (
            r.id,
            r.status,
            r.telegram_message_id,
            r.attempts,
            r.created_at,
            r.updated_at
        ),
        (
            sent,
            NotificationStatus::Sent,
            Some(7),
            1,
            t(0).millis(),
            t(2).millis()
        )
    );
    let claimed = block_on(store.claim(&[pending], t(4), t(3))).expect("claim");
    assert_eq!(
        claimed.len(),
        1,
        "a pending row is still claimable by its id"
    );
    assert_eq!(claimed[0].deployment, of_project("web", "b-2"));
    // The old rows still decide repeats, now per project.
    let again = |d: &Deployment| {
        block_on(store.insert(d, NotificationStatus::Pending, t(5))).expect("insert")
    };
    assert_eq!(again(&of_project("api", "b-1")), None);
    let other = again(&of_project("web", "b-1")).expect("another project's b-1 is new");
    assert!(other > pending, "ids go on after the copied ones");
    // Both indexes are back.
    let indexes = block_on(db.query(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'notifications' \
         AND name NOT LIKE 'sqlite_autoindex%' ORDER BY name",
        &[],
    ))
    .expect("indexes");
    let names: Vec<_> = indexes
        .iter()
        .filter_map(|r| r.get("name")?.as_str())
        .collect();
    for index in ["notifications_by_commit", "notifications_by_status"] {
        assert!(names.contains(&index), "{index} in {names:?}");
    }
}

#[test]
fn known_by_id_or_by_project_and_commit() {
    let db = SqliteSql::migrated();
    let store = NotificationStore::new(&db);
    insert(&store, "build-1", 0);
    let commit = CommitHash::parse("abc1234");
    let other = DeploymentId::parse_for_tests("cf-deploy-9");
    let known = |id: &DeploymentId, project: &str, commit: Option<&CommitHash>| {
        block_on(store.is_known(DeployKind::Worker, id, project, commit)).expect("query")
    };
    assert!(known(&dep("build-1").deployment_id, "api", None));
    assert!(
        !known(&dep("build-1").deployment_id, "x", None),
        "the same id in another project is another deployment"
    );
    assert!(known(&other, "api", commit.as_ref()));
    assert!(!known(&other, "web", commit.as_ref()));
    assert!(!known(&other, "api", None));
}

#[test]
fn one_claim_at_a_time_and_stale_claims_are_taken_over() {
    let db = SqliteSql::migrated();
    let store = NotificationStore::new(&db);
    let id = insert(&store, "b1", 0);
    let claimed = block_on(store.claim(&[id], t(1), t(-59))).expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].attempt, 1);
    assert_eq!(claimed[0].deployment, dep("b1"));
    assert_eq!(
        claim(&store, &[id], 2, -58),
        Vec::<i64>::new(),
        "a fresh claim is held"
    );
    assert_eq!(
        claim(&store, &[id], 100, 40),
        vec![id],
        "a stale claim is taken over"
    );
    record(&store, Outcome::Sent { id, message_id: 77 }, 101);
    assert_eq!(
        claim(&store, &[id], 500, 440),
        Vec::<i64>::new(),
        "sent is final"
    );
    let r = row(&store, "b1");
    assert_eq!(r.status, NotificationStatus::Sent);
    assert_eq!(r.telegram_message_id, Some(77));
    assert_eq!(r.attempts, 2);
}

#[test]
fn a_batch_claims_what_is_claimable() {
    let db = SqliteSql::migrated();
    let store = NotificationStore::new(&db);
    let a = insert(&store, "a", 0);
    let b = insert(&store, "b", 0);
    let c = insert(&store, "c", 0);
    record(
        &store,
        Outcome::Sent {
            id: b,
            message_id: 1,
        },
        1,
    ); // not claimed: no effect
    assert_eq!(claim(&store, &[b], 2, 0), vec![b]);
    record(
        &store,
        Outcome::Sent {
            id: b,
            message_id: 1,
        },
        3,
    );
    let mut got = claim(&store, &[a, b, c, 999], 4, 0);
    got.sort_unstable();
    assert_eq!(got, vec![a, c]);
    assert_eq!(claim(&store, &[], 5, 0), Vec::<i64>::new());
}

#[test]
fn retrying_rows_are_claimable_and_final_rows_are_not() {
    let db = SqliteSql::migrated();
    let store = NotificationStore::new(&db);
    let id = insert(&store, "b1", 0);
    claim(&store, &[id], 1, 0);
    let next_attempt_at = t(3);
    record(
        &store,
        Outcome::Retrying {
            id,
            error: "Telegram 502".into(),
            next_attempt_at,
        },
        1,
    );
    assert_eq!(row(&store, "b1").status, NotificationStatus::Retrying);
    assert_eq!(claim(&store, &[id], 3, 2), vec![id]);
    let error = "Telegram 403: no".to_owned();
    record(
        &store,
        Outcome::Final {
            id,
            status: NotificationStatus::Failed,
            error,
        },
        4,
    );
    assert_eq!(claim(&store, &[id], 500, 440), Vec::<i64>::new());
    let r = row(&store, "b1");
    assert_eq!(r.status, NotificationStatus::Failed);
    assert_eq!(r.attempts, 2);
    assert_eq!(r.last_error.as_deref(), Some("Telegram 403: no"));
    assert!(
        !block_on(store.mark_dead_lettered(id, t(5))).expect("dlq"),
        "already final"
    );
}

#[test]
fn lost_rows_are_found_once_per_grace_period() {
    let db = SqliteSql::migrated();
    let store = NotificationStore::new(&db);
    let old_pending = insert(&store, "old", 0);
    let _fresh_pending = insert(&store, "fresh", 200);
    let retrying = insert(&store, "retrying", 0);
    claim(&store, &[retrying], 1, 0);
    record(
        &store,
        Outcome::Retrying {
            id: retrying,
            error: "502".into(),
            next_attempt_at: t(5),
        },
        1,
    );
    let stuck = insert(&store, "stuck", 0);
    claim(&store, &[stuck], 10, 0);
    let sent = insert(&store, "sent", 0);
    claim(&store, &[sent], 1, 0);
    record(
        &store,
        Outcome::Sent {
            id: sent,
            message_id: 1,
        },
        2,
    );

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
    // Still undelivered a grace period later: found again, with the fresh one.
    assert_eq!(
        block_on(store.lost_rows(t(371), 100)).expect("lost").len(),
        4
    );
}

#[test]
fn dead_lettered_rows_end_failed() {
    let db = SqliteSql::migrated();
    let store = NotificationStore::new(&db);
    let id = insert(&store, "b1", 0);
    assert!(block_on(store.mark_dead_lettered(id, t(1))).expect("dlq"));
    let rec = block_on(store.recent(10)).expect("recent");
    assert_eq!(rec[0].status, NotificationStatus::Failed);
    assert_eq!(
        rec[0].last_error.as_deref(),
        Some("delivery failed (dead-lettered)")
    );
}

#[test]
fn every_status_reads_back_from_its_column_text() {
    use NotificationStatus::*;
    for s in [Pending, Sending, Retrying, Sent, Failed, NotSent, Recorded] {
        assert_eq!(
            crate::json::from_value::<NotificationStatus>(&json!(s.as_str())),
            Ok(s)
        );
    }
    assert_eq!(
        crate::json::from_value::<NotificationStatus>(&json!("lost"))
            .expect_err("unknown")
            .to_string(),
        "unknown variant `lost`, expected one of `pending`, `sending`, `retrying`, `sent`, \
         `failed`, `not_sent`, `recorded`"
    );
}

#[test]
fn records_read_d1s_whole_doubles_and_nulls() {
    let rec = crate::json::from_value::<NotificationRecord>(&json!({
        "id": 3.0, "kind": "worker", "deployment_id": "b1", "project_name": "api",
        "source": "hook", "status": "sent", "attempts": 1, "telegram_message_id": 42.0,
        "last_error": null, "created_at": 1, "updated_at": 2
    }))
    .expect("record");
    assert_eq!(rec.id, 3);
    assert_eq!(rec.telegram_message_id, Some(42));
    assert_eq!(rec.last_error, None);
    assert_eq!(rec.status, NotificationStatus::Sent);
}

#[test]
fn one_statement_records_a_mixed_batch_and_only_claimed_rows_move() {
    let db = SqliteSql::migrated();
    let store = NotificationStore::new(&db);
    let sent = insert(&store, "sent", 0);
    let retrying = insert(&store, "retrying", 0);
    let failed = insert(&store, "failed", 0);
    let unclaimed = insert(&store, "unclaimed", 0);
    assert_eq!(claim(&store, &[sent, retrying, failed], 1, 0).len(), 3);
    block_on(store.record(
        &[
            Outcome::Sent {
                id: sent,
                message_id: 501,
            },
            Outcome::Retrying {
                id: retrying,
                error: "Telegram answered 502".into(),
                next_attempt_at: t(30),
            },
            Outcome::Final {
                id: failed,
                status: NotificationStatus::Failed,
                error: "Telegram answered 403: bot was kicked".into(),
            },
            Outcome::Sent {
                id: unclaimed,
                message_id: 502,
            },
        ],
        t(2),
    ))
    .expect("record");

    let r = row(&store, "sent");
    assert_eq!(
        (r.status, r.telegram_message_id, r.last_error),
        (NotificationStatus::Sent, Some(501), None)
    );
    let r = row(&store, "retrying");
    assert_eq!(r.status, NotificationStatus::Retrying);
    assert_eq!(r.last_error.as_deref(), Some("Telegram answered 502"));
    let next = block_on(db.query(
        "SELECT next_attempt_at FROM notifications WHERE id = ?1",
        &[retrying.into()],
    ))
    .expect("query");
    assert_eq!(next[0].get("next_attempt_at"), Some(&json!(t(30).millis())));
    let r = row(&store, "failed");
    assert_eq!(r.status, NotificationStatus::Failed);
    assert_eq!(
        r.last_error.as_deref(),
        Some("Telegram answered 403: bot was kicked")
    );
    let r = row(&store, "unclaimed");
    assert_eq!(
        (r.status, r.telegram_message_id),
        (NotificationStatus::Pending, None),
        "not claimed: untouched"
    );
    assert_eq!(r.updated_at, t(0).millis());
}
