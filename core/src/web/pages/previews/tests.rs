use super::*;
use crate::testing::block_on;
use crate::web::counted::Counted;
use crate::web::pages::fixtures::{operator, Db, NOW};

#[test]
fn every_apps_previews_newest_first_in_pages_of_one_round_trip() {
    let db = Db::new();
    for pr in 1..=60 {
        db.preview(
            if pr % 2 == 0 { "api" } else { "web" },
            pr,
            "ready",
            300 - pr,
        );
    }
    let counted = Counted::new(&db.sql);
    let first = block_on(load(&counted, None)).expect("loads");
    assert_eq!(counted.calls(), 1);
    assert_eq!(first.previews.len(), PAGE_SIZE as usize);
    assert_eq!(first.previews[0].pr_number, 60);
    let page = render(&first, &operator(), NOW);
    assert!(page.contains("data-pr=\"60\" data-app=\"api\""));
    assert!(page.contains("href=\"/apps/web\""));
    let next = first.next.expect("a second page");
    let second = block_on(load(&db.sql, Some(&next))).expect("loads");
    let prs: Vec<i64> = second.previews.iter().map(|p| p.pr_number).collect();
    assert_eq!(prs, (1..=10).rev().collect::<Vec<_>>());
    assert_eq!(second.next, None);
}

#[test]
fn a_preview_url_that_is_not_http_is_not_a_link() {
    let db = Db::new();
    db.preview("api", 1, "ready", 5);
    db.sql
        .conn_for_tests()
        .execute("UPDATE previews SET url = 'javascript:alert(1)'", [])
        .expect("tampered");
    let view = block_on(load(&db.sql, None)).expect("loads");
    let page = render(&view, &operator(), NOW);
    assert!(!page.contains("href=\"javascript:"), "{page}");
    assert!(page.contains("javascript:alert(1)"), "shown as text");
}
