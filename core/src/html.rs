//! Telegram's HTML (`parse_mode: HTML`): escaping, how Telegram counts a message's
//! length, a message in its two renderings, and the built-in message's header. Below
//! both the client (`crate::telegram`) and the templates (`crate::template`).

use crate::notify::DeployKind;

/// Telegram's limit for one message's text.
pub const MAX_MESSAGE_CHARS: usize = 4096;

/// Links longer than this are shown as plain (cut) text: an `href` cannot be cut.
pub(crate) const MAX_LINK_CHARS: usize = 1024;

/// Escapes text for Telegram's HTML parse mode, which knows exactly these three.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

/// A message in two renderings: HTML for `parse_mode: HTML`, and plain text for the
/// resend when Telegram cannot parse the HTML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub html: String,
    pub plain: String,
}

/// The header line: its own emoji and title for Workers, Pages and non-production.
pub fn header(kind: DeployKind, environment: &str) -> String {
    let production = environment.eq_ignore_ascii_case("production");
    match (kind, production) {
        (DeployKind::Worker, true) => "⚡ New Worker Deployment".into(),
        (DeployKind::Pages, true) => "📄 New Pages Deployment".into(),
        (DeployKind::Worker, false) => format!(
            "{} New Worker {} Deployment",
            env_emoji(environment),
            title_case(environment)
        ),
        (DeployKind::Pages, false) => format!(
            "{} New Pages {} Deployment",
            env_emoji(environment),
            title_case(environment)
        ),
    }
}

pub fn env_emoji(environment: &str) -> &'static str {
    match environment.to_ascii_lowercase().as_str() {
        "production" | "prod" => "🚀",
        "preview" => "👀",
        "staging" | "stage" => "🧪",
        "development" | "dev" => "🛠",
        _ => "🔹",
    }
}

fn title_case(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Telegram measures text in UTF-16 code units.
pub fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}
