//! The status page: HTML pages for people, rendered in the core from what the stores
//! hold and readable without JavaScript. The Worker's `src/web.rs` routes a request
//! here; the pages never see a `worker::` type.
//!
//! - [`viewer`]: who is looking, and whether they may act;
//! - [`layout`]: the page frame, the stylesheet and the time format every page shares;
//! - [`form`]: the urlencoded bodies the pages' forms send;
//! - [`auth`]: who may see the pages (Cloudflare Access or the sign-in form), the
//!   session cookie, the CSRF tokens and the sign-in rate limit;
//! - [`pages`]: each page's load (its D1 reads) and render (its HTML), and what its
//!   forms do;
//! - [`counted`]: the round-trip count each page is sent with.

pub mod auth;
pub mod counted;
pub mod form;
pub mod layout;
pub mod pages;
pub mod viewer;

/// The headers every page is sent with (the stylesheet has its own cache header).
pub const PAGE_HEADERS: [(&str, &str); 5] = [
    ("content-type", "text/html; charset=utf-8"),
    (
        "content-security-policy",
        "default-src 'self'; frame-ancestors 'none'",
    ),
    ("cache-control", "no-store"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
];

/// A page's answer: its status, its HTML, and what else the response carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Html {
    pub status: u16,
    pub body: String,
    /// `Set-Cookie` values, in order.
    pub cookies: Vec<String>,
    /// A redirect's target (with a 303 status: after a form POST, a GET).
    pub location: Option<String>,
}

impl Html {
    pub fn ok(body: String) -> Html {
        Html::with_status(200, body)
    }

    pub fn with_status(status: u16, body: String) -> Html {
        Html {
            status,
            body,
            cookies: Vec::new(),
            location: None,
        }
    }

    /// `303 See Other` to `to`: what a form POST answers.
    pub fn see_other(to: impl Into<String>) -> Html {
        Html {
            status: 303,
            body: String::new(),
            cookies: Vec::new(),
            location: Some(to.into()),
        }
    }

    pub fn with_cookie(mut self, cookie: String) -> Html {
        self.cookies.push(cookie);
        self
    }
}
