//! The poll and the sweep against SQLite, in-memory KV and queue, and a scripted
//! Cloudflare API.

use super::*;
use crate::http::HttpResponse;
use crate::notify::{accept, Accepted};
use crate::testing::{
    block_on, hook_deployment, json_response, FakeHttp, MemoryKv, MemoryQueue, SqliteSql,
};
use serde_json::json;

const NOW: &str = "2025-01-15T12:00:00Z";

fn now() -> Timestamp {
    Timestamp::parse_rfc3339(NOW).expect("time")
}

fn config(workers: &str, pages: &str) -> Config {
    let (w, p) = (workers.to_owned(), pages.to_owned());
    Config::from_lookup(move |k| match k {
        "CLOUDFLARE_API_TOKEN" => Some("cf".into()),
        "CLOUDFLARE_ACCOUNT_ID" => Some("acc".into()),
        "CLOUDFLARE_API_BASE" => Some("http://cf.test".into()),
        "WATCH_WORKERS" => Some(w.clone()),
        "WATCH_PAGES" => Some(p.clone()),
        _ => None,
    })
}

fn worker_list(items: &[(&str, &str)]) -> Result<HttpResponse, crate::http::HttpError> {
    let deployments: Vec<_> = items
        .iter()
        .map(|(id, at)| json!({"id": id, "created_on": at, "source": "wrangler", "author_email": "dev@example.com"}))
        .collect();
    json_response(
        200,
        json!({"success": true, "errors": [], "result": {"deployments": deployments}}),
    )
}

fn pages_list(items: &[(&str, &str, &str)]) -> Result<HttpResponse, crate::http::HttpError> {
    let result: Vec<_> = items
        .iter()
        .map(|(id, at, sha)| json!({"id": id, "created_on": at, "environment": "production",
            "latest_stage": {"name": "deploy", "status": "success"},
            "deployment_trigger": {"metadata": {"branch": "main", "commit_hash": sha, "commit_message": "m"}}}))
        .collect();
    json_response(
        200,
        json!({"success": true, "errors": [], "result": result}),
    )
}

#[test]
fn summary_is_bounded_and_newest_first() {
    let mut s = Summary::default();
    for i in 0..150 {
        s.remember(DeployKind::Worker, "api", &format!("d{i}"));
    }
    s.remember(DeployKind::Worker, "api", "d140");
    assert_eq!(s.workers.len(), SUMMARY_LIMIT);
    assert_eq!(s.workers[0], "api:d140");
    assert_eq!(s.workers[1], "api:d149");
    assert!(!s.contains(DeployKind::Worker, "api", "d10"));
    assert!(!s.contains(DeployKind::Pages, "api", "d140"));
    assert!(s.contains(DeployKind::Worker, "api", "d141"));
    assert!(
        !s.contains(DeployKind::Worker, "web", "d141"),
        "the same id in another project is another deployment"
    );
    let text = serde_json::to_string(&s).expect("json");
    assert!(text.starts_with(r#"{"workers":["api:d140","api:d149""#));
    assert!(text.ends_with(r#""pages":[],"lastCheck":null}"#));
    assert_eq!(Summary::parse(Some("not json")), Summary::default());
    assert_eq!(Summary::parse(Some(&text)), s);
    let full = Summary {
        workers: vec!["w1".into()],
        pages: vec!["p1".into(), "p2".into()],
        last_check: Some("2025-01-15T10:30:00.000Z".into()),
    };
    let text = serde_json::to_string(&full).expect("json");
    assert_eq!(Summary::parse(Some(&text)), full);
    assert_eq!(Summary::parse(Some("{}")), Summary::default());
}

#[test]
fn new_deployments_are_announced_old_ones_only_recorded() {
    let db = SqliteSql::migrated();
    let store = NotificationStore::new(&db);
    let (kv, queue) = (MemoryKv::default(), MemoryQueue::default());
    let http = FakeHttp::answering(vec![worker_list(&[
        ("new", "2025-01-15T11:58:00Z"),
        ("old", "2025-01-15T10:00:00Z"),
    ])]);
    let report = block_on(poll(&config("api", ""), &http, &store, &kv, &queue, now()));
    assert_eq!(report.announced, vec!["worker:api:new"]);
    assert_eq!(report.recorded, vec!["worker:api:old"]);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(queue.telegram.borrow().len(), 1);
    let summary = Summary::parse(kv.map.borrow().get(SUMMARY_KEY).map(|(v, _)| v.as_str()));
    assert_eq!(summary.workers, vec!["api:new", "api:old"]);
    assert_eq!(
        summary.last_check.as_deref(),
        Some("2025-01-15T12:00:00.000Z")
    );

    // The next run sees the same list: nothing new, no database lookups needed.
    let http = FakeHttp::answering(vec![worker_list(&[("new", "2025-01-15T11:58:00Z")])]);
    let report = block_on(poll(&config("api", ""), &http, &store, &kv, &queue, now()));
    assert!(report.announced.is_empty() && report.recorded.is_empty());
    assert_eq!(queue.telegram.borrow().len(), 1);
}

#[test]
fn what_a_hook_announced_is_not_announced_again() {
    let db = SqliteSql::migrated();
    let store = NotificationStore::new(&db);
    let (kv, queue) = (MemoryKv::default(), MemoryQueue::default());
    // The hook announced the build by its own id and commit.
    let hooked = hook_deployment(
        json!({"type": "pages", "projectName": "docs", "deploymentId": "build-77", "commitHash": "abcdef1234"}),
    );
    assert!(matches!(
        block_on(accept(&store, &kv, &hooked, now())).expect("accept"),
        Accepted::New { .. }
    ));
    // A Worker deployment whose id a hook used verbatim.
    let same_id =
        hook_deployment(json!({"type": "worker", "projectName": "api", "deploymentId": "dep-9"}));
    block_on(accept(&store, &kv, &same_id, now())).expect("accept");

    let http = FakeHttp::answering(vec![
        worker_list(&[("dep-9", "2025-01-15T11:59:00Z")]),
        pages_list(&[
            ("cf-1", "2025-01-15T11:59:00Z", "abcdef1234"),
            ("cf-2", "2025-01-15T11:59:30Z", "1234567"),
        ]),
    ]);
    let report = block_on(poll(
        &config("api", "docs"),
        &http,
        &store,
        &kv,
        &queue,
        now(),
    ));
    assert_eq!(report.announced, vec!["pages:docs:cf-2"]);
    assert_eq!(report.recorded, vec!["pages:docs:cf-1"]);
    assert_eq!(queue.telegram.borrow().len(), 1);
}

#[test]
fn one_failing_name_does_not_stop_the_others() {
    let db = SqliteSql::migrated();
    let store = NotificationStore::new(&db);
    let (kv, queue) = (MemoryKv::default(), MemoryQueue::default());
    let http = FakeHttp::answering(vec![
        json_response(
            401,
            json!({"success": false, "errors": [{"code": 10000, "message": "Authentication error"}]}),
        ),
        Err(crate::http::HttpError::Timeout(10_000)),
        worker_list(&[("ok-1", "2025-01-15T11:59:00Z")]),
    ]);
    let report = block_on(poll(
        &config("denied,slow,fine", ""),
        &http,
        &store,
        &kv,
        &queue,
        now(),
    ));
    assert_eq!(report.announced, vec!["worker:fine:ok-1"]);
    assert_eq!(
        report.errors,
        vec![
            "worker denied: Cloudflare API 401: Authentication error (code 10000)",
            "worker slow: Cloudflare API: timed out after 10000 ms",
        ]
    );
}

#[test]
fn poll_without_cloudflare_config_names_the_variable() {
    let db = SqliteSql::migrated();
    let store = NotificationStore::new(&db);
    let cfg = Config::from_lookup(|k| (k == "WATCH_WORKERS").then(|| "api".to_owned()));
    let report = block_on(poll(
        &cfg,
        &FakeHttp::default(),
        &store,
        &MemoryKv::default(),
        &MemoryQueue::default(),
        now(),
    ));
    assert_eq!(
        report.errors,
        vec!["poll skipped: CLOUDFLARE_API_TOKEN is not configured"]
    );
}

#[test]
fn a_failed_queue_send_is_recovered_by_the_sweep() {
    let db = SqliteSql::migrated();
    let store = NotificationStore::new(&db);
    let (kv, queue) = (MemoryKv::default(), MemoryQueue::default());
    queue.fail.set(true);
    let d = hook_deployment(json!({"type": "worker", "projectName": "api", "deploymentId": "b-1"}));
    let accepted = block_on(accept(&store, &kv, &d, now())).expect("committed");
    let Accepted::New { id } = accepted else {
        panic!("{accepted:?}")
    };
    // The send after the answer fails: the row stays pending.
    assert!(block_on(queue.send(&JobMessage::Notify { id })).is_err());
    queue.fail.set(false);

    let cfg = config("", "");
    // Too early: a healthy queue may still be delivering it.
    assert!(
        block_on(sweep(&cfg, &store, &queue, now().plus_seconds(60)))
            .requeued
            .is_empty()
    );
    let report = block_on(sweep(&cfg, &store, &queue, now().plus_seconds(121)));
    assert_eq!(report.requeued, vec![id]);
    assert_eq!(
        queue.telegram.borrow().as_slice(),
        &[JobMessage::Notify { id }]
    );
    // Not again before another grace period has passed.
    assert!(
        block_on(sweep(&cfg, &store, &queue, now().plus_seconds(180)))
            .requeued
            .is_empty()
    );
}

#[test]
fn triage_rules() {
    let d = |at: &str, state| crate::cloudflare::PolledDeployment {
        deployment: {
            let mut d = hook_deployment(
                json!({"type": "pages", "projectName": "p", "deploymentId": "x", "timestamp": at}),
            );
            d.source = crate::notify::Source::Poll;
            d
        },
        state,
    };
    let empty = Summary::default();
    assert_eq!(
        triage(
            &d("2025-01-15T11:30:00Z", PolledState::Live),
            &empty,
            now(),
            60
        ),
        Triage::Announce
    );
    assert_eq!(
        triage(
            &d("2025-01-15T10:59:59Z", PolledState::Live),
            &empty,
            now(),
            60
        ),
        Triage::RecordOnly
    );
    assert_eq!(
        triage(
            &d("2025-01-15T11:30:00Z", PolledState::InProgress),
            &empty,
            now(),
            60
        ),
        Triage::NotYet
    );
    assert_eq!(
        triage(
            &d("2025-01-15T11:30:00Z", PolledState::Failed),
            &empty,
            now(),
            60
        ),
        Triage::RecordOnly
    );
    let mut seen = Summary::default();
    seen.remember(DeployKind::Pages, "p", "x");
    assert_eq!(
        triage(
            &d("2025-01-15T11:30:00Z", PolledState::Live),
            &seen,
            now(),
            60
        ),
        Triage::Seen
    );
}

#[test]
fn one_bad_display_field_costs_neither_the_page_nor_the_deployment() {
    let db = SqliteSql::migrated();
    let store = NotificationStore::new(&db);
    let (kv, queue) = (MemoryKv::default(), MemoryQueue::default());
    let long_branch = format!("release/{}", "r".repeat(400));
    let http = FakeHttp::answering(vec![
        json_response(
            200,
            json!({"success": true, "errors": [], "result": {"deployments": [
                {"id": "w-3", "created_on": "2025-01-15T11:59:00Z",
                 "annotations": {"workers/message": "Fix\u{0}the\u{1b} build"}},
                {"id": "w-2", "created_on": "2025-01-15T11:58:00Z", "author_email": 42},
                {"created_on": "2025-01-15T11:57:30Z"},
                {"id": "w-1", "created_on": "2025-01-15T11:57:00Z"}
            ]}}),
        ),
        json_response(
            200,
            json!({"success": true, "errors": [], "result": [
                {"id": "p-2", "created_on": "2025-01-15T11:59:00Z", "environment": "production",
                 "latest_stage": {"name": "deploy", "status": "success"},
                 "deployment_trigger": {"metadata": {"branch": long_branch, "commit_hash": "abcdef1",
                   "commit_message": "Docs\u{7}"}}},
                {"id": "p-1", "created_on": "2025-01-15T11:58:00Z", "environment": "production",
                 "latest_stage": {"name": "deploy", "status": "success"}}
            ]}),
        ),
    ]);
    let cfg = config("api", "docs");
    let report = block_on(poll(&cfg, &http, &store, &kv, &queue, now()));
    assert_eq!(
        report.announced,
        vec![
            "worker:api:w-1",
            "worker:api:w-2",
            "worker:api:w-3",
            "pages:docs:p-1",
            "pages:docs:p-2"
        ]
    );
    assert_eq!(
        report.errors,
        vec!["worker api: Cloudflare API: unexpected answer: deployment #3: missing field `id`"],
        "an entry without an id is the one thing left out, and said"
    );
    let stored = |kind, project: &str, id: &str| {
        let row = block_on(db.query(
            "SELECT deployment FROM notifications WHERE kind = ?1 AND project_name = ?2 AND deployment_id = ?3",
            &[DeployKind::as_str(kind).into(), project.into(), id.into()],
        ))
        .expect("query");
        let json = row[0]["deployment"].as_str().expect("json").to_owned();
        crate::json::read::<crate::notify::Deployment>(&json).expect("deployment")
    };
    let w3 = stored(DeployKind::Worker, "api", "w-3");
    assert_eq!(w3.commit_message.as_deref(), Some("Fixthe build"));
    assert_eq!(stored(DeployKind::Worker, "api", "w-2").author, None);
    let p2 = stored(DeployKind::Pages, "docs", "p-2");
    let branch = p2.branch.expect("branch");
    assert_eq!(branch.chars().count(), crate::notify::MAX_BRANCH);
    assert!(branch.starts_with("release/rrr") && branch.ends_with("r…"));
    assert_eq!(p2.commit_message.as_deref(), Some("Docs"));
    assert_eq!(queue.telegram.borrow().len(), 5);
}
