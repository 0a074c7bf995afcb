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

#[test]
fn a_replay_from_the_page_happens_once_per_form_and_leaves_its_audit_rows() {
    use crate::audit::{AuditStore, Outcome as Result, SubjectKind};
    use crate::testing::MemoryQueue;
    use crate::web::pages::actions::replay;

    let db = Db::new();
    db.delivery("g-1", Outcome::Failed, 10);
    let queue = MemoryQueue::default();
    let shown = block_on(load(&db.sql, Some("github"), None, None, false)).expect("loads");
    let version = shown.entries[0].version.to_string();
    assert!(
        render(&shown, &operator(), NOW).contains(&format!("name=\"version\" value=\"{version}\""))
    );

    // A stranger's submit replays nothing, and is on the trail.
    let stranger = block_on(replay(&db.sql, &queue, &onlooker(), "g-1", &version, NOW));
    assert_eq!(stranger.expect_err("refused").status(), 403);
    assert!(queue.sent.borrow().is_empty());

    // The operator's submit replays; the same form again (a double submit, in the
    // same millisecond even) finds the delivery moved on.
    let done = block_on(replay(&db.sql, &queue, &operator(), "g-1", &version, NOW));
    assert_eq!(done.expect("replayed"), "/deliveries?replayed=1");
    let again = block_on(replay(&db.sql, &queue, &operator(), "g-1", &version, NOW));
    let again = again.expect_err("once per form");
    assert_eq!(again.status(), 409);
    assert!(
        again.message().contains("This delivery has moved on"),
        "{}",
        again.message()
    );
    assert_eq!(queue.sent.borrow().len(), 1, "queued once");

    // A form that lost its version is a bad request, an unknown delivery not found.
    let bad = block_on(replay(&db.sql, &queue, &operator(), "g-1", "", NOW));
    assert_eq!(bad.expect_err("no version").status(), 400);
    let unknown = block_on(replay(&db.sql, &queue, &operator(), "g-9", &version, NOW));
    assert_eq!(unknown.expect_err("unknown").status(), 404);

    let trail = block_on(AuditStore::new(&db.sql).of(SubjectKind::Delivery, "g-1")).expect("trail");
    let rows: Vec<_> = trail
        .iter()
        .map(|e| (e.actor.as_str(), e.action.as_str(), e.result))
        .collect();
    assert_eq!(
        rows,
        [
            (onlooker().name.as_str(), "replay", Result::Refused),
            (operator().name.as_str(), "replay", Result::Done),
            (operator().name.as_str(), "replay", Result::Refused),
        ]
    );
}
