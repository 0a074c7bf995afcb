use super::*;
use crate::github::deliveries::Outcome;
use crate::testing::block_on;
use crate::web::counted::Counted;
use crate::web::pages::fixtures::{onlooker, operator, Db, NOW};

#[test]
fn the_log_shows_both_sources_with_replay_on_github_deliveries_for_an_operator() {
    let db = Db::new();
    db.delivery("g-1", Outcome::Failed, 10);
    db.notification("docs", "dep-1", "Docs", 5);
    let counted = Counted::new(&db.sql);
    let view = block_on(load(&counted, None, None, None, false)).expect("loads");
    assert!(counted.calls() <= 3);
    let page = render(&view, &operator(), NOW);
    assert!(page.contains("data-source=\"github\" data-id=\"g-1\""));
    assert!(page.contains("data-source=\"notify\" data-id=\"worker:docs:dep-1\""));
    assert!(page.contains("action=\"/deliveries/g-1/replay\""));
    assert_eq!(
        page.matches("class=\"inline replay\"").count(),
        1,
        "notifications have no replay"
    );
    assert!(!render(&view, &onlooker(), NOW).contains("/replay\""));
}

#[test]
fn the_filter_narrows_the_log_and_keeps_itself_in_the_pager() {
    let db = Db::new();
    for n in 0..55 {
        db.delivery(
            &format!("g-{n}"),
            if n % 5 == 0 {
                Outcome::Ignored
            } else {
                Outcome::Failed
            },
            200 - n,
        );
    }
    db.notification("docs", "dep-1", "Docs", 1);
    let view = block_on(load(&db.sql, Some("github"), Some("failed"), None, false)).expect("loads");
    assert_eq!(view.entries.len(), 44);
    assert!(view
        .entries
        .iter()
        .all(|e| e.source == "github" && e.outcome == "failed"));
    let all = block_on(load(&db.sql, Some("github"), None, None, false)).expect("loads");
    let page = render(&all, &operator(), NOW);
    assert!(page.contains("<option value=\"github\" selected>"));
    let next = all.next.clone().expect("a second page");
    assert!(
        page.contains(&format!(
            "href=\"/deliveries?source=github&amp;before={next}\""
        )),
        "{page}"
    );
    let second = block_on(load(&db.sql, Some("github"), None, Some(&next), false)).expect("loads");
    assert_eq!(second.entries.len(), 5);
}

#[test]
fn a_bad_filter_or_cursor_is_a_400_page() {
    let db = Db::new();
    for (source, outcome, before) in [
        (Some("gitlab"), None, None),
        (None, Some("<b>"), None),
        (None, None, Some("garbage")),
    ] {
        let e = block_on(load(&db.sql, source, outcome, before, false)).expect_err("refused");
        assert_eq!(e.status(), 400, "{e}");
    }
}
