//! The overview as scenarios, on SQLite with the real migrations.

use super::*;
use crate::deploy::JobStatus;
use crate::testing::block_on;
use crate::web::counted::Counted;
use crate::web::pages::fixtures::{ago, operator, Db, HOSTILE, NOW};

fn shown(db: &Db, before: Option<&Cursor>) -> (Overview, String, u32) {
    let counted = Counted::new(&db.sql);
    let view = block_on(load(&counted, before, NOW)).expect("the overview loads");
    let page = render(&view, &operator(), NOW);
    (view, page, counted.calls())
}

fn section<'a>(page: &'a str, id: &str) -> &'a str {
    let at = page
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id}"));
    let rest = &page[at..];
    &rest[..rest.find("</section>").unwrap_or(rest.len())]
}

#[test]
fn after_a_real_flow_what_failed_comes_first_then_every_app_then_the_recent_deployments() {
    let db = Db::new();
    db.app("api");
    db.app("web");
    db.job("api", 1, "Add the status page", 120);
    db.run("api", 119, None, JobStatus::Finalized);
    db.job("web", 2, "Break the build", 60);
    db.run(
        "web",
        59,
        Some((2, "health check answered 503")),
        JobStatus::Reverted,
    );
    db.notification("docs", "dep-1", "Docs deployed", 30);
    db.preview("api", 7, "ready", 20);
    db.preview("web", 8, "failed", 10);
    let (view, page, trips) = shown(&db, None);
    assert!(
        trips <= crate::web::counted::MAX_ROUND_TRIPS,
        "{trips} round trips"
    );
    let attention = section(&page, "attention");
    assert!(
        attention.contains("data-kind=\"job\" data-state=\"reverted\""),
        "{attention}"
    );
    assert!(attention.contains("health check answered 503"));
    assert!(attention.contains("data-kind=\"preview\" data-state=\"failed\""));
    assert!(attention.contains("machine did not start"));
    assert!(
        page.find("id=\"attention\"") < page.find("id=\"apps\""),
        "attention first"
    );
    let apps = section(&page, "apps");
    let api = &apps[apps.find("data-app=\"api\"").expect("api")..];
    assert!(api.contains("Add the status page") && api.contains("octocat"));
    assert!(api.contains("https://api-pr-7.fly.dev"), "its live preview");
    assert_eq!(view.apps[0].state(), "finalized");
    assert_eq!(view.apps[1].state(), "reverted");
    assert_eq!(view.apps[1].production, None, "web never finalized");
    let recent: Vec<(char, &str)> = view
        .recent
        .iter()
        .map(|r| (r.source, r.project.as_str()))
        .collect();
    assert_eq!(
        recent,
        vec![('n', "docs"), ('j', "web"), ('j', "api")],
        "newest first"
    );
    assert!(section(&page, "recent").contains("Docs deployed"));
    assert!(!page.contains("a class=\"older\""), "one page");
}

#[test]
fn a_job_awaiting_approval_or_stuck_needs_attention() {
    let db = Db::new();
    db.app("api");
    let id = db.job("api", 1, "Slow", 180);
    let jobs = crate::deploy::store::JobStore::new(&db.sql);
    block_on(jobs.try_start("api", "production", ago(170))).expect("start");
    block_on(jobs.take_step(id, 0, ago(170))).expect("take");
    let (view, _, _) = shown(&db, None);
    assert_eq!(view.attention.len(), 1, "{:?}", view.attention);
    assert_eq!(view.attention[0].state, "stuck");
    assert_eq!(view.attention[0].href, "/jobs/1");
}

#[test]
fn an_idle_overview_says_all_is_clear() {
    let db = Db::new();
    let (_, page, trips) = shown(&db, None);
    assert!(trips <= 3);
    assert!(page.contains("Nothing failed, stuck or awaiting approval."));
    assert!(page.contains("No app is registered yet."));
}

#[test]
fn recent_deployments_page_with_a_cursor_and_never_repeat_one() {
    let db = Db::new();
    db.app("api");
    for n in 0..40 {
        db.notification("docs", &format!("dep-{n}"), "Docs", 200 - n);
        db.job("api", n as u32 + 1, "Change", 200 - n);
    }
    let (first, page, trips) = shown(&db, None);
    assert!(trips <= 3);
    assert_eq!(first.recent.len(), PAGE_SIZE as usize);
    let next = first.next.clone().expect("a second page");
    assert!(page.contains(&format!("href=\"/?before={}\"", next.encode())));
    let (second, _, trips) = shown(&db, Some(&next));
    assert!(trips <= 3);
    assert_eq!(second.recent.len(), 30);
    assert_eq!(second.next, None);
    let mut seen: Vec<(char, i64)> = first
        .recent
        .iter()
        .chain(&second.recent)
        .map(|r| (r.source, r.id))
        .collect();
    let all = seen.len();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), all, "no deployment on both pages");
    assert_eq!(all, 80);
}

#[test]
fn a_commit_message_of_script_shows_as_text() {
    let db = Db::new();
    db.app("api");
    db.job("api", 1, HOSTILE, 20);
    db.run("api", 19, None, JobStatus::Finalized);
    db.notification("docs", "dep-1", HOSTILE, 10);
    let (_, page, _) = shown(&db, None);
    assert_eq!(
        page.matches("&lt;script&gt;alert(1)&lt;/script&gt;")
            .count(),
        3,
        "production, and both recent rows"
    );
    assert!(!page.contains("<script"));
}
