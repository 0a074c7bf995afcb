//! The frame every page shares: the document head, the top navigation, who is signed
//! in, the stylesheet (served at a content-hashed path, so it can be cached for good),
//! and the one way a time is shown (UTC, with "3 min ago" beside it).

use maud::{html, Markup, DOCTYPE};

use super::viewer::Viewer;
use super::Html;
use crate::time::Timestamp;

/// The stylesheet, served by the Worker at [`stylesheet_path`].
pub const STYLESHEET: &str = include_str!("app.css");

/// FNV-1a over the stylesheet: its path changes whenever its text does.
const STYLESHEET_HASH: u64 = {
    let bytes = STYLESHEET.as_bytes();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
};

/// `/assets/app.<hash>.css`.
pub fn stylesheet_path() -> String {
    format!("/assets/app.{STYLESHEET_HASH:016x}.css")
}

/// The links of the top navigation.
const NAV: [(&str, &str); 3] = [
    ("/", "Overview"),
    ("/previews", "Previews"),
    ("/deliveries", "Deliveries"),
];

/// A whole page: `title` in the tab and as its heading's context, `viewer` named at
/// the top (with a sign-out button), `body` inside `<main>`.
pub fn page(title: &str, viewer: Option<&Viewer>, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · edge-notifier" }
                link rel="stylesheet" href=(stylesheet_path());
            }
            body {
                header.top {
                    a.brand href="/" { "edge-notifier" }
                    @if viewer.is_some() {
                        nav {
                            @for (href, label) in NAV {
                                a href=(href) { (label) }
                            }
                        }
                    }
                    @if let Some(v) = viewer {
                        span.who {
                            (v.name)
                            @if v.operator { " · operator" }
                            " "
                            form.inline method="post" action="/signout" {
                                input type="hidden" name="csrf" value=(v.csrf);
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
    .into_string()
}

/// A page that says what went wrong, with the page headers like any other.
pub fn error_page(status: u16, message: &str) -> Html {
    let title = match status {
        400 => "Bad request",
        403 => "Not allowed",
        404 => "Not found",
        405 => "Method not allowed",
        409 => "This has moved on",
        413 => "Too large",
        415 => "Unsupported form",
        429 => "Too many attempts",
        503 => "Not configured",
        _ => "Something went wrong",
    };
    Html::with_status(
        status,
        page(title, None, html! { h1 { (title) } p.error { (message) } }),
    )
}

/// `2026-12-04 01:56 UTC` with `3 min ago` beside it, in a `<time>` element.
pub fn when(at: Timestamp, now: Timestamp) -> Markup {
    let iso = at.to_rfc3339();
    // `YYYY-MM-DDTHH:MM` is the first 16 characters of the RFC 3339 form.
    let shown: String = iso.chars().take(16).collect::<String>().replace('T', " ");
    html! {
        time datetime=(iso) { (shown) " UTC" }
        " "
        span.ago { (ago(at, now)) }
    }
}

/// How long ago `at` was, as people say it: `just now`, `3 min ago`, `2 h ago`,
/// `5 days ago`; a time ahead of `now` is `in 4 min`.
pub fn ago(at: Timestamp, now: Timestamp) -> String {
    let seconds = (now.millis() - at.millis()) / 1000;
    let (n, ahead) = if seconds < 0 {
        (-seconds, true)
    } else {
        (seconds, false)
    };
    let span = match n {
        0..=44 => return "just now".to_owned(),
        45..=3_599 => format!("{} min", (n + 30) / 60),
        3_600..=86_399 => format!("{} h", (n + 1_800) / 3_600),
        _ => {
            let days = (n + 43_200) / 86_400;
            format!("{days} day{}", if days == 1 { "" } else { "s" })
        }
    };
    if ahead {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp::from_millis(1_764_813_360_000);

    #[test]
    fn times_read_as_people_say_them() {
        let before = |s: i64| ago(NOW.minus_seconds(s), NOW);
        assert_eq!(before(10), "just now");
        assert_eq!(before(180), "3 min ago");
        assert_eq!(before(2 * 3_600), "2 h ago");
        assert_eq!(before(86_400), "1 day ago");
        assert_eq!(before(5 * 86_400), "5 days ago");
        assert_eq!(ago(NOW.plus_seconds(240), NOW), "in 4 min");
    }

    #[test]
    fn a_time_is_shown_in_utc_beside_how_long_ago() {
        let at = Timestamp::parse_rfc3339("2025-12-04T01:50:00Z").expect("time");
        let shown = when(at, at.plus_seconds(360)).into_string();
        assert_eq!(
            shown,
            "<time datetime=\"2025-12-04T01:50:00.000Z\">2025-12-04 01:50 UTC</time> <span class=\"ago\">6 min ago</span>"
        );
    }

    #[test]
    fn an_error_page_says_what_went_wrong_with_its_status() {
        let page = error_page(415, "Send <a form>.");
        assert_eq!(page.status, 415);
        assert!(page.body.contains("<h1>Unsupported form</h1>"));
        assert!(page.body.contains("Send &lt;a form&gt;."));
        assert_eq!((page.cookies.len(), page.location), (0, None));
    }

    #[test]
    fn the_stylesheet_path_follows_its_content() {
        let path = stylesheet_path();
        assert!(path.starts_with("/assets/app.") && path.ends_with(".css"));
        assert_eq!(path.len(), "/assets/app.".len() + 16 + ".css".len());
    }

    #[test]
    fn a_viewers_name_is_escaped_and_the_page_has_no_inline_script() {
        let viewer = Viewer {
            name: "<script>alert(1)</script>".into(),
            operator: true,
            csrf: "t".into(),
        };
        let out = page("Overview", Some(&viewer), html! { p { "hi" } });
        assert!(out.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!out.contains("<script"));
        assert!(out.contains("name=\"csrf\" value=\"t\""));
    }
}
