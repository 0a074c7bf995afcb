//! The pages, one module each: `load` reads what a page shows (through the [`Sql`]
//! port, in at most [`super::counted::MAX_ROUND_TRIPS`] round trips) into a plain
//! view, and `render` turns that view into HTML (maud, every value escaped), so
//! rendering is tested without a database.
//!
//! What every page shares is here: the one error type of the pages ([`PageError`],
//! turned into an HTML error page with its status by the Worker), the state badge
//! (`span.state[data-state]`), short shas, links and the "Older →" pager.
//!
//! [`Sql`]: crate::ports::Sql

pub mod actions;
pub mod app;
pub mod deliveries;
pub mod job;
pub mod overview;
pub mod previews;
pub mod workflow;

use maud::{html, Markup};

use crate::cursor::{BadCursor, Cursor};
use crate::ports::StoreError;

/// Rows a page's list shows before "Older →".
pub const PAGE_SIZE: u32 = 50;

/// Why a page cannot be shown. The store's detail is for the log, never the page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error("there is no such page")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    /// A form acted on a state that has changed since the page was shown.
    #[error("{0}")]
    MovedOn(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("store: {0}")]
    Store(StoreError),
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        PageError::Store(e)
    }
}

impl From<BadCursor> for PageError {
    fn from(e: BadCursor) -> Self {
        PageError::BadRequest(e.to_string())
    }
}

impl PageError {
    /// The HTTP status of the error page.
    pub fn status(&self) -> u16 {
        match self {
            PageError::NotFound => 404,
            PageError::BadRequest(_) => 400,
            PageError::MovedOn(_) => 409,
            PageError::Forbidden(_) => 403,
            PageError::Store(_) => 503,
        }
    }

    /// What the page says: never a store's detail.
    pub fn message(&self) -> String {
        match self {
            PageError::NotFound => "There is no page here.".into(),
            PageError::Store(_) => "The database did not answer; try again in a moment.".into(),
            other => other.to_string(),
        }
    }
}

/// A state as people read it: `awaiting_approval` is "awaiting approval".
pub fn label(state: &str) -> String {
    state.replace('_', " ")
}

/// The colour a state is shown in: `ok`, `bad`, `warn`, `run` or `idle`.
pub fn tone(state: &str) -> &'static str {
    match state {
        "finalized" | "sent" | "processed" | "ready" | "succeeded" | "done" | "merged"
        | "approved" => "ok",
        "failed" | "reverted" | "rejected" | "timed_out" | "stuck" => "bad",
        "awaiting_approval" | "reverting" | "retrying" | "queued" | "waiting" | "raised"
        | "auto_merge_enabled" => "warn",
        "processing" | "deploying" | "sending" | "running" | "started" | "pending" | "new" => "run",
        _ => "idle",
    }
}

/// A state badge: `<span class="state bad" data-state="failed">failed</span>`.
pub fn badge(state: &str) -> Markup {
    html! { span class={ "state " (tone(state)) } data-state=(state) { (label(state)) } }
}

/// The first seven characters of a commit sha.
pub fn short(sha: &str) -> String {
    sha.chars().take(7).collect()
}

/// A GitHub web URL for `path` under repository `repo` (`octo/app`), when `repo`
/// looks like one; a payload's repository never makes a link anywhere else.
pub fn github_url(repo: &str, path: &str) -> Option<String> {
    let ok = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    };
    match repo.split_once('/') {
        Some((owner, name)) if ok(owner) && ok(name) => {
            Some(format!("https://github.com/{owner}/{name}{path}"))
        }
        _ => None,
    }
}

/// Whether `url` may be a link's target: an absolute http(s) URL (a payload's
/// `javascript:` or relative URL is shown as text).
pub fn linkable(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://")
}

/// `url` as a link when [`linkable`], else as text.
pub fn link_or_text(url: &str, text: &str) -> Markup {
    html! {
        @if linkable(url) { a href=(url) { (text) } } @else { span.muted { (text) } }
    }
}

/// "Older →" to the next page, when there is one: `path` with `query` (already
/// encoded pairs, `&`-joined, may be empty) and `before`.
pub fn pager(path: &str, query: &str, next: Option<&Cursor>) -> Markup {
    html! {
        @if let Some(next) = next {
            nav.pager {
                a.older rel="next" href={ (path) "?" (query) @if !query.is_empty() { "&" } "before=" (next.encode()) } { "Older →" }
            }
        }
    }
}

/// Reads a stored JSON list column (`json_group_array(...)`) of `T`; a column that
/// is not there is an empty list.
pub(crate) fn json_list<T: crate::json::FromJson>(
    row: &crate::ports::Row,
    column: &str,
) -> Result<Vec<T>, StoreError> {
    use crate::row::Columns;
    match row.opt_str(column) {
        Some(text) => crate::json::read(text).map_err(StoreError::row),
        None => Ok(Vec::new()),
    }
}

#[cfg(test)]
pub(crate) mod fixtures;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_badge_names_its_state_for_people_and_for_selectors() {
        let out = badge("awaiting_approval").into_string();
        assert_eq!(
            out,
            "<span class=\"state warn\" data-state=\"awaiting_approval\">awaiting approval</span>"
        );
        assert_eq!(tone("failed"), "bad");
        assert_eq!(tone("finalized"), "ok");
        assert_eq!(tone("something new"), "idle");
    }

    #[test]
    fn links_go_only_where_they_should() {
        assert_eq!(
            github_url("octo/app", "/commit/abc").as_deref(),
            Some("https://github.com/octo/app/commit/abc")
        );
        assert_eq!(github_url("octo/../../evil", ""), None);
        assert_eq!(github_url("no-slash", ""), None);
        assert!(!linkable("javascript:alert(1)"));
        let out = link_or_text("javascript:alert(1)", "run").into_string();
        assert!(!out.contains("href"), "{out}");
    }

    #[test]
    fn no_page_needs_more_than_three_round_trips_however_full_the_tables() {
        use crate::deploy::JobStatus;
        use crate::github::deliveries::Outcome;
        use crate::testing::block_on;
        use crate::web::counted::{Counted, MAX_ROUND_TRIPS};
        use fixtures::{operator, Db, NOW};
        let db = Db::new();
        for app in ["api", "web", "docs"] {
            db.app(app);
        }
        for n in 0..120u32 {
            let app = ["api", "web", "docs"][(n % 3) as usize];
            db.job(app, n + 1, "Change", 2_000 - i64::from(n) * 10);
            if n < 3 {
                db.run(app, 1_999 - i64::from(n) * 10, None, JobStatus::Finalized);
            }
        }
        for pr in 1..=70 {
            db.preview(["api", "web"][pr as usize % 2], pr, "ready", 1_000 - pr);
        }
        for n in 0..200 {
            db.delivery(&format!("g-{n}"), Outcome::Processed, 900 - n);
            db.notification("docs", &format!("dep-{n}"), "Docs", 900 - n);
        }
        let viewer = operator();
        let trips = |what: &str, calls: u32| {
            assert!(calls <= MAX_ROUND_TRIPS, "{what}: {calls} round trips");
        };
        let c = Counted::new(&db.sql);
        let v = block_on(overview::load(&c, None, NOW)).expect("overview");
        overview::render(&v, &viewer, NOW);
        trips("/", c.calls());
        let c = Counted::new(&db.sql);
        let v = block_on(app::load(&c, "api", None)).expect("app");
        app::render(&v, &viewer, NOW);
        trips("/apps/api", c.calls());
        let c = Counted::new(&db.sql);
        let v = block_on(job::load(&c, 1)).expect("job");
        job::render(&v, &viewer, NOW);
        trips("/jobs/1", c.calls());
        let c = Counted::new(&db.sql);
        let v = block_on(previews::load(&c, None)).expect("previews");
        previews::render(&v, &viewer, NOW);
        trips("/previews", c.calls());
        let c = Counted::new(&db.sql);
        let v = block_on(deliveries::load(&c, None, None, None, false)).expect("deliveries");
        deliveries::render(&v, &viewer, NOW);
        trips("/deliveries", c.calls());
        let c = Counted::new(&db.sql);
        assert_eq!(
            block_on(workflow::load(&c, "none")),
            Err(PageError::NotFound)
        );
        trips("/workflows/none", c.calls());
    }

    #[test]
    fn the_lists_start_at_their_cursor_through_an_index_and_never_sort_a_table() {
        use crate::github::deliveries::Outcome;
        use crate::testing::{block_on, Planned};
        use fixtures::{Db, NOW};
        let db = Db::new();
        db.app("api");
        for n in 0..120u32 {
            db.job("api", n + 1, "Change", 2_000 - i64::from(n));
            db.delivery(&format!("g-{n}"), Outcome::Processed, 900 - i64::from(n));
            db.notification("docs", &format!("dep-{n}"), "Docs", 900 - i64::from(n));
            db.preview("api", i64::from(n) + 1, "ready", 500 - i64::from(n));
        }
        let planned = Planned::new(&db.sql);
        let first =
            block_on(deliveries::load(&planned, None, None, None, false)).expect("deliveries");
        block_on(deliveries::load(
            &planned,
            None,
            None,
            first.next.as_deref(),
            false,
        ))
        .expect("page 2");
        let first = block_on(overview::load(&planned, None, NOW)).expect("overview");
        block_on(overview::load(&planned, first.next.as_ref(), NOW)).expect("page 2");
        let first = block_on(app::load(&planned, "api", None)).expect("app");
        block_on(app::load(&planned, "api", first.next.as_ref())).expect("page 2");
        let first = block_on(previews::load(&planned, None)).expect("previews");
        block_on(previews::load(&planned, first.next.as_ref())).expect("page 2");
        let plans = planned.plans.borrow();
        for table in [
            "deliveries",
            "notifications",
            "previews",
            "deploy_jobs",
            "j",
        ] {
            let bare = format!("SCAN {table}");
            assert!(
                !plans
                    .iter()
                    .any(|l| l == &bare
                        || l.starts_with(&format!("{bare} ")) && !l.contains("INDEX")),
                "{table} is read whole: {plans:#?}"
            );
        }
        // The one sort: the Telegram rows of a page's notifications (a page's worth).
        for (i, line) in plans.iter().enumerate() {
            if line.contains("TEMP B-TREE FOR ORDER BY") {
                assert!(
                    i > 0 && plans[i - 1].starts_with("SCAN json_each"),
                    "a list is sorted instead of read in its index's order: {plans:#?}"
                );
            }
        }
        for index in [
            "deploy_jobs_by_app_time",
            "deploy_jobs_by_time",
            "deliveries_by_time_id",
            "previews_by_time",
            "deploy_jobs_by_status",
            "previews_by_wanted",
        ] {
            assert!(
                plans.iter().any(|l| l.contains(index)),
                "{index} unused: {plans:#?}"
            );
        }
    }

    #[test]
    fn an_error_page_never_shows_the_stores_detail() {
        let e = PageError::Store(StoreError::Driver("secret table name".into()));
        assert_eq!(e.status(), 503);
        assert!(!e.message().contains("secret"));
        assert_eq!(PageError::from(BadCursor).status(), 400);
    }
}
