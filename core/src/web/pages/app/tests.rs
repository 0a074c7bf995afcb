//! The app page as scenarios, on SQLite with the real migrations.

use super::*;
use crate::deploy::JobStatus;
use crate::testing::block_on;
use crate::web::counted::Counted;
use crate::web::pages::fixtures::{operator, Db, NOW};

fn shown(db: &Db, name: &str, before: Option<&Cursor>) -> (AppView, String, u32) {
    let counted = Counted::new(&db.sql);
    let view = block_on(load(&counted, name, before)).expect("the app loads");
    let page = render(&view, &operator(), NOW);
    (view, page, counted.calls())
}

fn secret(db: &Db, env: &str, name: &str) {
    db.sql
        .conn_for_tests()
        .execute(
            "INSERT INTO app_secrets (app, env_type, name, key_id, nonce, ciphertext, updated_at) \
             VALUES ('api', ?1, ?2, 'k1', 'bm9uY2U=', 'c2VhbGVkLXZhbHVl', 0)",
            rusqlite::params![env, name],
        )
        .expect("secret");
}

#[test]
fn an_apps_page_shows_its_settings_secrets_by_name_previews_and_jobs() {
    let db = Db::new();
    db.app("api");
    secret(&db, "production", "DATABASE_URL");
    secret(&db, "preview", "API_KEY");
    db.preview("api", 12, "ready", 30);
    db.job("api", 1, "First", 60);
    db.run("api", 59, None, JobStatus::Finalized);
    let (view, page, trips) = shown(&db, "api", None);
    assert_eq!(trips, 3);
    assert!(page.contains("deploy hook at hooks.example.com"));
    assert!(
        !page.contains("secret-hook-token"),
        "a deploy hook's URL is a secret"
    );
    let secrets = &page[page.find("id=\"secrets\"").expect("secrets")..];
    assert!(secrets.contains("DATABASE_URL") && secrets.contains("data-env=\"preview\""));
    assert!(!page.contains("c2VhbGVkLXZhbHVl") && !page.contains("sealed-value"));
    let previews = &page[page.find("id=\"previews\"").expect("previews")..];
    assert!(previews.contains("data-pr=\"12\"") && previews.contains("https://api-pr-12.fly.dev"));
    assert!(previews.contains("data-state=\"ready\""));
    assert_eq!(view.jobs.len(), 1);
    assert!(page.contains("tr class=\"job\" data-job=\"1\""));
}

#[test]
fn the_job_history_pages_with_a_cursor() {
    let db = Db::new();
    db.app("api");
    db.app("web");
    for n in 0..55 {
        db.job("api", n + 1, "Change", 500 - i64::from(n));
    }
    db.job("web", 99, "Elsewhere", 1);
    let (first, page, _) = shown(&db, "api", None);
    assert_eq!(first.jobs.len(), PAGE_SIZE as usize);
    assert_eq!(first.jobs[0].id, 55, "newest first");
    let next = first.next.clone().expect("older jobs");
    assert!(page.contains(&format!("href=\"/apps/api?before={}\"", next.encode())));
    let (second, _, trips) = shown(&db, "api", Some(&next));
    assert_eq!(trips, 3);
    let ids: Vec<i64> = second.jobs.iter().map(|j| j.id).collect();
    assert_eq!(ids, vec![5, 4, 3, 2, 1], "the rest, and only this app's");
    assert_eq!(second.next, None);
}

#[test]
fn an_unknown_or_unreadable_app_name_is_not_found() {
    let db = Db::new();
    assert_eq!(
        block_on(load(&db.sql, "nope", None)),
        Err(PageError::NotFound)
    );
    assert_eq!(
        block_on(load(&db.sql, "../etc", None)),
        Err(PageError::NotFound)
    );
}
