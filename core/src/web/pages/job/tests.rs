//! The job page as scenarios: loaded from SQLite with the real migrations (seeded
//! through the stores) in one round trip, and rendered from its view.

use super::*;
use crate::testing::block_on;
use crate::web::counted::Counted;
use crate::web::pages::fixtures::{ago, onlooker, operator, Db, HOSTILE, NOW};

fn shown(db: &Db, id: i64, viewer: &Viewer) -> (String, u32) {
    let counted = Counted::new(&db.sql);
    let view = block_on(load(&counted, id)).expect("the job loads");
    (render(&view, viewer, NOW), counted.calls())
}

/// The `<li>` of step `name` in the timeline.
fn step<'a>(page: &'a str, name: &str) -> &'a str {
    let at = page
        .find(&format!("data-step=\"{name}\""))
        .unwrap_or_else(|| panic!("no step {name} in {page}"));
    let rest = &page[at..];
    &rest[..rest.find("</li>").unwrap_or(rest.len())]
}

#[test]
fn a_failed_jobs_timeline_shows_the_failing_step_in_red_with_its_error() {
    let db = Db::new();
    db.app("api");
    let id = db.job("api", 1, "Ship it", 30);
    db.run(
        "api",
        29,
        Some((1, "deploy hook answered 500")),
        JobStatus::Failed,
    );
    let (page, trips) = shown(&db, id, &operator());
    assert_eq!(trips, 1, "one round trip for the whole page");
    assert!(page.contains("id=\"timeline\""));
    let trigger = step(&page, "trigger");
    assert!(trigger.contains("data-state=\"failed\""), "{trigger}");
    assert!(
        trigger.contains("class=\"bar bad\""),
        "the bar is red: {trigger}"
    );
    assert!(trigger.contains("<p class=\"error\">deploy hook answered 500</p>"));
    let done = step(&page, "create_deployment");
    assert!(
        done.contains("class=\"bar ok\"") && done.contains("1 min 0 s"),
        "{done}"
    );
    let skipped = step(&page, "verify_health");
    assert!(skipped.contains("data-state=\"skipped\"") && skipped.contains("not started"));
    assert!(page.contains("data-state=\"failed\">failed</span>"));
    // It is the app's latest and failed: an operator may retry it.
    assert!(page.contains("action=\"/jobs/1/retry\""), "{page}");
    assert!(page.contains("name=\"csrf\" value=\"csrf-token-1\""));
}

#[test]
fn the_bars_share_one_time_axis() {
    let db = Db::new();
    db.app("api");
    let id = db.job("api", 1, "Ship it", 10);
    db.run("api", 8, None, JobStatus::Finalized);
    let (page, _) = shown(&db, id, &operator());
    // Made 10 min ago, queued 2 min, four steps of a minute each, ended 3 min
    // ago: 7 min in all, each minute 1/7 of the axis.
    assert!(page.contains("7 min 0 s in all"), "{page}");
    let queued = step(&page, "queued");
    assert!(
        queued.contains("x=\"0\"") && queued.contains("width=\"285\""),
        "{queued}"
    );
    let finalize = step(&page, "finalize");
    assert!(
        finalize.contains("x=\"714\"") && finalize.contains("width=\"142\""),
        "{finalize}"
    );
    assert!(
        !page.contains("style="),
        "no inline style: the CSP would block it"
    );
}

#[test]
fn a_commit_message_of_script_shows_as_text() {
    let db = Db::new();
    db.app("api");
    let id = db.job("api", 1, HOSTILE, 10);
    let (page, _) = shown(&db, id, &operator());
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!page.contains("<script"), "{page}");
}

#[test]
fn the_actions_are_an_operators_and_only_those_the_job_offers() {
    let db = Db::new();
    db.app("api");
    let first = db.job("api", 1, "One", 60);
    db.run("api", 59, None, JobStatus::Finalized);
    let second = db.job("api", 2, "Two", 30);
    db.run("api", 29, None, JobStatus::Finalized);
    let (page, _) = shown(&db, second, &operator());
    assert!(page.contains("id=\"actions\""));
    assert!(page.contains("action=\"/jobs/2/rollback\""));
    assert!(page.contains("button type=\"submit\" name=\"action\" value=\"rollback\""));
    assert!(!page.contains("/retry\"") && !page.contains("/approve\""));
    let view = block_on(load(&db.sql, second)).expect("loads");
    assert!(page.contains(&format!("name=\"version\" value=\"{}\"", view.version)));
    let (older, _) = shown(&db, first, &operator());
    assert!(
        !older.contains("id=\"actions\""),
        "an older job offers nothing"
    );
    let (looking, _) = shown(&db, second, &onlooker());
    assert!(
        !looking.contains("<form class=\"inline action\""),
        "no buttons for a non-operator"
    );
}

#[test]
fn the_version_moves_with_the_job() {
    let db = Db::new();
    db.app("api");
    let id = db.job("api", 1, "One", 60);
    let before = block_on(load(&db.sql, id)).expect("loads").version;
    db.run("api", 59, None, JobStatus::Finalized);
    let after = block_on(load(&db.sql, id)).expect("loads").version;
    assert_ne!(before, after);
    db.job("api", 2, "Two", 30);
    let newer = block_on(load(&db.sql, id)).expect("loads").version;
    assert_ne!(after, newer, "a newer job changes what this one offers");
}

#[test]
fn the_trail_and_the_telegram_message_are_on_the_page() {
    let db = Db::new();
    db.app("api");
    let id = db.job("api", 1, "One", 60);
    block_on(
        crate::audit::AuditStore::new(&db.sql).record(&crate::audit::Entry {
            subject_kind: crate::audit::SubjectKind::Job,
            subject_id: id.to_string(),
            action: "cancel".into(),
            result: crate::audit::Outcome::Refused,
            detail: Some("not an operator".into()),
            actor: "@mallory".into(),
            user_id: Some(7),
            chat_id: Some("-1001".into()),
            update_id: Some(9),
            at: ago(5).millis(),
        }),
    )
    .expect("audited");
    db.sql
        .conn_for_tests()
        .execute(
            "INSERT INTO telegram_live (subject, project, route, chat_id, destination, html, message_id, \
             created_at, updated_at) VALUES (?1, 'api', 'default', '-1005', '{}', ?2, 42, 0, 0)",
            rusqlite::params![format!("job:{id}"), "<b>Deploy</b> api &lt;x&gt;"],
        )
        .expect("live row");
    let (page, trips) = shown(&db, id, &operator());
    assert_eq!(trips, 1);
    let audit = &page[page.find("id=\"audit\"").expect("audit")..];
    assert!(audit.contains("data-result=\"refused\"") && audit.contains("@mallory"));
    assert!(audit.contains("not an operator"));
    assert!(page.contains("href=\"https://t.me/c/5/42\""), "{page}");
    assert!(
        page.contains("Deploy api &lt;x&gt;"),
        "the text without markup, escaped again"
    );
}

#[test]
fn an_unknown_job_is_not_found() {
    let db = Db::new();
    assert_eq!(block_on(load(&db.sql, 99)), Err(PageError::NotFound));
}
