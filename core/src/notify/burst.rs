//! How a digest reads: a title ("7 deployments in the last minute") and one line per
//! deployment (project, environment, short sha, link), in Telegram HTML, as many
//! lines as fit one message.

use crate::notify::Deployment;
use crate::telegram::{escape_html, utf16_len, MAX_MESSAGE_CHARS};
use crate::time::Timestamp;

/// Longest link shown as a link in a digest line; a longer one is left out (an
/// `href` cannot be cut).
const MAX_LINE_LINK: usize = 512;
/// A line's project and environment are cut to this many characters.
const MAX_LINE_FIELD: usize = 64;

/// A digest's text and how many of the deployments it shows (the first ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestText {
    pub html: String,
    pub shown: usize,
}

/// The digest of `deployments` (oldest first), opened at `opened_at`, as of `now`.
/// Shows as many as fit Telegram's 4,096 characters; the caller starts a new digest
/// for the rest. At least one is always shown.
pub fn render_digest(
    deployments: &[&Deployment],
    opened_at: Timestamp,
    now: Timestamp,
) -> DigestText {
    let lines: Vec<String> = deployments.iter().map(|d| line(d)).collect();
    let mut shown = lines.len();
    loop {
        let html = compose(&lines[..shown], opened_at, now);
        if shown <= 1 || utf16_len(&html) <= MAX_MESSAGE_CHARS {
            return DigestText { html, shown };
        }
        shown -= 1;
    }
}

fn compose(lines: &[String], opened_at: Timestamp, now: Timestamp) -> String {
    let n = lines.len();
    let noun = if n == 1 { "deployment" } else { "deployments" };
    let span = if now.millis() - opened_at.millis() <= 60_000 {
        "in the last minute".to_owned()
    } else {
        format!("since {}", opened_at.to_human())
    };
    let mut html = format!("<b>📦 {n} {noun} {span}</b>\n");
    for l in lines {
        html.push('\n');
        html.push_str(l);
    }
    html
}

fn line(d: &Deployment) -> String {
    let mut out = format!(
        "• <b>{}</b> · {}",
        escape_html(&crate::text::cut(&d.project_name, MAX_LINE_FIELD)),
        escape_html(&crate::text::cut(&d.environment, MAX_LINE_FIELD)),
    );
    match &d.commit_hash {
        Some(h) => out.push_str(&format!(" · <code>{}</code>", escape_html(h.short()))),
        None => out.push_str(&format!(
            " · <code>{}</code>",
            escape_html(&crate::text::cut(d.deployment_id.as_str(), 16))
        )),
    }
    if let Some(url) = d
        .url
        .as_deref()
        .filter(|u| u.chars().count() <= MAX_LINE_LINK)
    {
        let url = escape_html(url);
        out.push_str(&format!(" · <a href=\"{url}\">open</a>"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::hook_deployment;
    use serde_json::json;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_millis(1_736_937_000_000 + s * 1000)
    }

    fn dep(project: &str, sha: Option<&str>, url: Option<&str>) -> Deployment {
        let mut f = json!({"type": "worker", "projectName": project, "deploymentId": format!("b-{project}"),
                           "environment": "production"});
        if let Some(sha) = sha {
            f["commitHash"] = sha.into();
        }
        if let Some(url) = url {
            f["url"] = url.into();
        }
        hook_deployment(f)
    }

    #[test]
    fn a_digest_has_a_title_and_a_line_per_deployment() {
        let a = dep(
            "api",
            Some("abcdef1234567"),
            Some("https://api.example.com"),
        );
        let b = dep("web<x>", None, None);
        let text = render_digest(&[&a, &b], t(0), t(30));
        assert_eq!(
            text.html,
            "<b>📦 2 deployments in the last minute</b>\n\
             \n• <b>api</b> · production · <code>abcdef1</code> · <a href=\"https://api.example.com\">open</a>\
             \n• <b>web&lt;x&gt;</b> · production · <code>b-web&lt;x&gt;</code>"
        );
        assert_eq!(text.shown, 2);
    }

    #[test]
    fn an_older_digest_says_since_when() {
        let a = dep("api", None, None);
        let text = render_digest(&[&a], t(0), t(300));
        assert!(
            text.html
                .starts_with("<b>📦 1 deployment since Jan 15, 2025"),
            "{}",
            text.html
        );
    }

    #[test]
    fn lines_that_do_not_fit_are_left_for_the_next_digest() {
        let url = format!("https://example.com/{}", "x".repeat(400));
        let many: Vec<Deployment> = (0..40)
            .map(|i| dep(&format!("project-{i}"), Some("abcdef1"), Some(&url)))
            .collect();
        let refs: Vec<&Deployment> = many.iter().collect();
        let text = render_digest(&refs, t(0), t(1));
        assert!(text.shown < 40 && text.shown > 1, "{}", text.shown);
        assert!(utf16_len(&text.html) <= MAX_MESSAGE_CHARS);
        let one_more = render_digest(&refs[..text.shown + 1], t(0), t(1));
        assert_eq!(
            one_more.shown, text.shown,
            "the next line would not have fitted"
        );
    }
}
