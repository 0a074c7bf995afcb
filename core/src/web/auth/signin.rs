//! The sign-in form, and where it may send the viewer back to: only a path of this
//! site (`next`), so the form cannot be used as an open redirect.

use maud::html;

use crate::web::layout;

/// A `next` longer than this is dropped (a page's path and cursor are far shorter).
const MAX_NEXT: usize = 1_024;

/// `raw` when it is a path of this site, else `/`: it starts with one `/` (not `//`
/// or `/\`, which browsers read as another host), holds only printable ASCII
/// without spaces (anything else arrives percent-encoded), and is not the sign-in
/// or sign-out route itself.
pub fn safe_next(raw: Option<&str>) -> String {
    let ok = |p: &str| {
        let b = p.as_bytes();
        p.len() <= MAX_NEXT
            && b.first() == Some(&b'/')
            && !matches!(b.get(1), Some(b'/' | b'\\'))
            && b.iter().all(|c| (0x21..=0x7e).contains(c) && *c != b'\\')
            && !["/signin", "/signout"].iter().any(|r| {
                p == *r || p.starts_with(&format!("{r}?")) || p.starts_with(&format!("{r}/"))
            })
    };
    match raw {
        Some(p) if ok(p) => p.to_owned(),
        _ => "/".to_owned(),
    }
}

/// A request URL (as the runtime gives it, absolute) as its origin
/// (`https://host[:port]`) and its path with the query (no fragment). Split by hand:
/// a URL parser and its IDNA tables would add some 90 KiB to the Worker.
pub fn split_url(url: &str) -> (String, String) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (String::new(), "/".to_owned());
    };
    let rest = rest.split('#').next().unwrap_or_default();
    let host: String = rest
        .chars()
        .take_while(|c| *c != '/' && *c != '?')
        .collect();
    let tail: String = rest.chars().skip(host.chars().count()).collect();
    let path = if tail.starts_with('/') {
        tail
    } else {
        format!("/{tail}")
    };
    (
        format!(
            "{}://{}",
            scheme.to_ascii_lowercase(),
            host.to_ascii_lowercase()
        ),
        path,
    )
}

/// `/signin?next=<next, percent-encoded>`, or `/signin` when `next` is `/`.
pub fn location(next: &str) -> String {
    if next == "/" {
        return "/signin".to_owned();
    }
    let mut out = String::from("/signin?next=");
    for b in next.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The form: one password field for `ADMIN_TOKEN`, `next` carried along, and
/// `wrong` when the last token was not it. The token is never put back in the page.
pub fn page(next: &str, wrong: bool) -> String {
    layout::page(
        "Sign in",
        None,
        html! {
            h1 { "Sign in" }
            @if wrong {
                p.error role="alert" { "Wrong token." }
            }
            form.signin method="post" action="/signin" {
                input type="hidden" name="next" value=(next);
                label for="token" { "Admin token" }
                input #token type="password" name="token" autocomplete="current-password" required autofocus;
                button type="submit" { "Sign in" }
            }
            p.muted { "The token is the Worker's ADMIN_TOKEN. The session lasts 12 hours." }
        },
    )
}
