use proptest::prelude::*;

use super::render;
use super::*;
use crate::notify::DeploymentPayload;
use crate::time::Timestamp;

fn parsed(text: &str) -> Template {
    match Template::parse(text) {
        Ok(t) => t,
        Err(e) => panic!("{text:?} should parse: {e}"),
    }
}

fn refused(text: &str) -> String {
    match Template::parse(text) {
        Ok(_) => panic!("{text:?} should be refused"),
        Err(e) => e.to_string(),
    }
}

fn reference() -> Deployment {
    crate::testing::hook_deployment(serde_json::json!({
        "type": "worker", "projectName": "api-service", "deploymentId": "build-abc123",
        "branch": "feature/add-auth", "commitHash": "abc123def4567890",
        "commitMessage": "Add JWT authentication\n\nDetails follow", "author": "dev@example.com",
        "timestamp": "2025-01-15T10:30:00Z", "environment": "production"
    }))
}

#[test]
fn a_deployment_gives_every_field_a_value() {
    let v = Values::from_deployment(&reference());
    let shown: Vec<(&str, Option<&str>)> = Field::all().map(|f| (f.as_str(), v.get(f))).collect();
    assert_eq!(
        shown,
        vec![
            ("project", Some("api-service")),
            ("environment", Some("production")),
            ("environment_emoji", Some("🚀")),
            ("kind", Some("worker")),
            ("title", Some("⚡ New Worker Deployment")),
            ("deployment_id", Some("build-abc123")),
            ("branch", Some("feature/add-auth")),
            ("commit", Some("abc123def4567890")),
            ("commit_short", Some("abc123d")),
            ("commit_subject", Some("Add JWT authentication")),
            ("author", Some("dev@example.com")),
            ("url", None),
            ("status", Some("deployed")),
            ("job_url", None),
            ("time", Some("Jan 15, 2025, 10:30 AM UTC")),
            ("source", Some("hook")),
            ("via", None),
        ]
    );
}

#[test]
fn the_default_template_is_todays_message() {
    let d = reference();
    assert_eq!(
        Template::default_notification().render(&Values::from_deployment(&d)),
        render(&d)
    );
    assert_eq!(oracle::render(&d), render(&d));
}

#[test]
fn the_default_template_parses() {
    assert!(Parser::run(DEFAULT_NOTIFICATION).is_ok_and(|t| !t.nodes.is_empty()));
}

#[test]
fn the_default_template_relies_on_the_cut_so_it_cannot_be_saved_as_it_is() {
    assert_eq!(
        refused(DEFAULT_NOTIFICATION),
        "could exceed 4096 characters: at most 4806"
    );
}

#[test]
fn values_are_escaped_in_text_and_in_hrefs() {
    let t = parsed("<b>{{project}}</b> by {{author}}: <a href=\"{{url}}\">open</a>");
    let v = Values::default()
        .with(Field::Project, "<script>alert(1)</script>")
        .with(Field::Author, "Tom & \"Jerry\"")
        .with(Field::Url, "https://x.example/?q=\"><b>&x=1");
    let r = t.render(&v);
    assert_eq!(
        r.html,
        "<b>&lt;script&gt;alert(1)&lt;/script&gt;</b> by Tom &amp; &quot;Jerry&quot;: \
         <a href=\"https://x.example/?q=&quot;&gt;&lt;b&gt;&amp;x=1\">open</a>"
    );
    assert_eq!(
        r.plain,
        "<script>alert(1)</script> by Tom & \"Jerry\": open"
    );
}

#[test]
fn plain_text_is_the_html_without_tags_and_entities() {
    let t = parsed(
        "<b>Deployed</b> &lt;{{project}}&gt; &amp; &quot;ok&quot; &#128640; &#x1F600;\n\
         <pre><code class=\"language-rust\">{{commit_subject}}</code></pre>",
    );
    let r = t.render(
        &Values::default()
            .with(Field::Project, "api")
            .with(Field::CommitSubject, "a<b"),
    );
    assert_eq!(r.plain, "Deployed <api> & \"ok\" 🚀 😀\na<b");
    assert!(r
        .html
        .ends_with("<pre><code class=\"language-rust\">a&lt;b</code></pre>"));
}

#[test]
fn sections_show_when_their_field_has_a_value_or_has_none() {
    let t =
        parsed("{{project}}{{#branch}} on {{branch}}{{/branch}}{{^branch}} (no branch){{/branch}}");
    let v = Values::default().with(Field::Project, "api");
    assert_eq!(t.render(&v).html, "api (no branch)");
    assert_eq!(
        t.render(&v.clone().with(Field::Branch, "")).html,
        "api (no branch)",
        "an empty value is none"
    );
    assert_eq!(t.render(&v.with(Field::Branch, "main")).html, "api on main");
}

#[test]
fn spaces_inside_braces_and_upper_case_tags_are_fine() {
    let t = parsed("<B>{{ project }}</B>{{# branch }}/{{branch}}{{/ branch }}");
    let v = Values::default()
        .with(Field::Project, "p")
        .with(Field::Branch, "b");
    assert_eq!(t.render(&v).html, "<B>p</B>/b");
}

#[test]
fn everything_telegram_accepts_is_accepted() {
    parsed(
        "<b>b</b><strong>s</strong><i>i</i><em>e</em><u>u</u><ins>i</ins><s>s</s>\
         <strike>s</strike><del>d</del><span class=\"tg-spoiler\">x</span>\
         <tg-spoiler>x</tg-spoiler><a href=\"https://x.example/{{project}}?a=1&amp;b=2\">x</a>\
         <tg-emoji emoji-id=\"5368324170671202286\">👍</tg-emoji><code>c</code><pre>p</pre>\
         <pre><code class=\"language-python\">x</code></pre><blockquote>q</blockquote>\
         <blockquote expandable>q</blockquote><b><i><u>nested</u></i></b> 1 > 0 {single} }}",
    );
}

#[test]
fn each_mistake_is_named() {
    let cases = [
        ("{{projet}}", "unknown field {{projet}}"),
        ("{{#projet}}x{{/projet}}", "unknown field {{projet}}"),
        ("{{project", "unclosed placeholder: {{ without }}"),
        ("<div>x</div>", "tag <div> is not allowed by Telegram"),
        ("<br>", "tag <br> is not allowed by Telegram"),
        ("<b>x", "unclosed tag <b>"),
        ("<b><i>x</b></i>", "unclosed tag <i>"),
        ("{{#branch}}<b>{{/branch}}</b>", "unclosed tag <b>"),
        ("{{#branch}}x", "unclosed section {{#branch}}"),
        (
            "<b>{{#branch}}</b>{{/branch}}",
            "unclosed section {{#branch}}",
        ),
        ("{{#branch}}{{/author}}", "unclosed section {{#branch}}"),
        ("x</b>", "</b> closes nothing that is open"),
        ("{{/branch}}", "{{/branch}} closes nothing that is open"),
        (
            "<b class=\"{{project}}\">x</b>",
            "placeholders are only allowed in text and in <a href>",
        ),
        (
            "<b {{project}}>x</b>",
            "placeholders are only allowed in text and in <a href>",
        ),
        (
            "<a href=\"{{#url}}x{{/url}}\">x</a>",
            "placeholders are only allowed in text and in <a href>",
        ),
        ("<a href=\"{{urll}}\">x</a>", "unknown field {{urll}}"),
        (
            "<span class=\"x\">a</span>",
            "attribute class is not allowed on <span>",
        ),
        ("<span>a</span>", "tag <span> needs class=\"tg-spoiler\""),
        ("<a>x</a>", "tag <a> needs href"),
        (
            "<a href=\"x\" title=\"y\">x</a>",
            "attribute title is not allowed on <a>",
        ),
        (
            "<a href=\"x\" href=\"y\">x</a>",
            "attribute href is not allowed on <a>",
        ),
        (
            "<b style=\"x\">x</b>",
            "attribute style is not allowed on <b>",
        ),
        (
            "<blockquote expandable=\"yes\">x</blockquote>",
            "attribute expandable is not allowed on <blockquote>",
        ),
        (
            "<code class=\"language-rust\">x</code>",
            "class=\"language-…\" is only allowed on <code> inside <pre>",
        ),
        (
            "<code><b>x</b></code>",
            "tag <b> is not allowed inside <code>",
        ),
        ("<pre><b>x</b></pre>", "tag <b> is not allowed inside <pre>"),
        (
            "<a href=\"x\"><a href=\"y\">z</a></a>",
            "tag <a> is not allowed inside <a>",
        ),
        (
            "<a href=\"x\"><code>z</code></a>",
            "tag <code> is not allowed inside <a>",
        ),
        (
            "<blockquote><blockquote>x</blockquote></blockquote>",
            "tag <blockquote> is not allowed inside <blockquote>",
        ),
        ("<b/>", "malformed tag <b>"),
        ("<a href='x'>x</a>", "malformed tag <a>"),
        ("<b", "malformed tag <b>"),
        ("a < b", "a bare < must be written &lt;"),
        ("<3", "a bare < must be written &lt;"),
        ("a & b", "a bare & must be written &amp;"),
        ("&amp", "a bare & must be written &amp;"),
        (
            "<a href=\"https://x/?a=1&b=2\">x</a>",
            "a bare & must be written &amp;",
        ),
        ("&nbsp;", "entity &nbsp; is not supported by Telegram"),
        ("&#0;", "entity &#0; is not supported by Telegram"),
        ("&#xD800;", "entity &#xD800; is not supported by Telegram"),
        (
            "&#99999999999;",
            "entity &#99999999999; is not supported by Telegram",
        ),
        (
            "{{url}} {{job_url}}",
            "could exceed 4096 characters: at most 4097",
        ),
        (
            "<a href=\"{{url}}\">{{url}}</a>{{job_url}}",
            "could exceed 4096 characters: at most 5135",
        ),
    ];
    for (template, error) in cases {
        assert_eq!(refused(template), error, "{template:?}");
    }
    assert_eq!(
        refused(&"x".repeat(4097)),
        "template is longer than 4096 characters"
    );
    parsed(&"é".repeat(4096));
}

#[test]
fn a_link_counts_its_href_at_most_1024_since_a_longer_one_shows_as_text() {
    // 15 for the tag, 1024 for the href, 2048 for the text.
    parsed(&format!(
        "<a href=\"{{{{url}}}}\">{{{{url}}}}</a>{}",
        "x".repeat(1009)
    ));
    assert_eq!(
        refused(&format!(
            "<a href=\"{{{{url}}}}\">{{{{url}}}}</a>{}",
            "x".repeat(1010)
        )),
        "could exceed 4096 characters: at most 4097"
    );
}

#[test]
fn a_saved_template_shows_a_commit_subject_of_at_most_256_characters() {
    let t = parsed("{{commit_subject}}");
    let r = t.render(&Values::default().with(Field::CommitSubject, "s".repeat(300)));
    assert_eq!(r.html, format!("{}…", "s".repeat(255)));
}

#[test]
fn a_message_that_escapes_past_4096_is_cut_at_its_longest_value() {
    let t = parsed("{{project}}\n{{branch}}\n{{author}}\n{{commit_subject}}\n{{time}}");
    let v = Values::default()
        .with(Field::Project, "\"".repeat(128))
        .with(Field::Branch, "&".repeat(255))
        .with(Field::Author, "\"".repeat(256))
        .with(Field::CommitSubject, "<".repeat(200))
        .with(Field::Time, "Jan 15, 2025, 10:30 AM UTC");
    let r = t.render(&v);
    let len = utf16_len(&r.html);
    assert!(
        len <= 4096 && len > 4096 - 6,
        "cut no more than needed: {len}"
    );
    let lines: Vec<&str> = r.html.split('\n').collect();
    assert_eq!(lines[0], "&quot;".repeat(128));
    assert_eq!(lines[1], "&amp;".repeat(255));
    assert!(
        lines[2].ends_with("&quot;…"),
        "the author, the longest, is cut"
    );
    assert_eq!(lines[3], "&lt;".repeat(200));
    assert_eq!(lines[4], "Jan 15, 2025, 10:30 AM UTC");
    assert!(r
        .plain
        .split('\n')
        .nth(2)
        .is_some_and(|a| a.ends_with("\"…")));
}

#[test]
fn a_link_too_long_for_an_href_or_to_be_cut_shows_as_its_text() {
    let t = parsed("<a href=\"{{url}}\">{{url}}</a>");
    let long = format!("https://x.example/{}", "a".repeat(1010));
    let r = t.render(&Values::default().with(Field::Url, long.as_str()));
    assert_eq!(r.html, long, "past 1024 characters, no link");

    // Within 1024 but escaping to five each: shown twice it passes 4096, so the
    // link becomes text, and that text is cut.
    let url = format!("https://x.example/?{}", "&".repeat(1000));
    let r = t.render(&Values::default().with(Field::Url, url.as_str()));
    assert!(!r.html.contains("<a href"), "{}", r.html);
    assert!(r.html.starts_with("https://x.example/?&amp;&amp;"));
    assert!(r.html.ends_with("&amp;…"));
    assert!(utf16_len(&r.html) <= 4096);

    // Past 1024 and escaping long: cut to well within 1024, it still shows as text.
    let url = format!("https://x.example/?{}", "&".repeat(1100));
    let r = t.render(&Values::default().with(Field::Url, url.as_str()));
    assert!(!r.html.contains("<a href"), "{}", r.html);
    assert!(r.html.ends_with("&amp;…"));
}

#[test]
fn a_section_without_tags_is_cut_as_one_piece() {
    // As the built-in message's " - subject" after a commit hash.
    let t = Parser::run(
        "<code>{{commit_short}}</code>{{#commit_subject}} - {{commit_subject}}{{/commit_subject}}",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let v = Values::default()
        .with(Field::CommitShort, "abc123d")
        .with(Field::CommitSubject, "\"".repeat(1000));
    let r = t.render(&v);
    assert!(r.html.starts_with("<code>abc123d</code> - &quot;"));
    assert!(r.html.ends_with("&quot;…"));
    assert!(utf16_len(&r.html) <= 4096);
}

#[test]
fn the_default_cuts_as_the_old_message_did_even_past_its_separators() {
    // The subject (with its " - ", the longest) goes first, all of it, then the URL.
    let d = crate::testing::hook_deployment(serde_json::json!({
        "type": "pages", "projectName": "p", "deploymentId": "d", "commitHash": "abc1234",
        "commitMessage": "\"".repeat(2000),
        "url": format!("https://x.example/{}", "&".repeat(1900)),
    }));
    let r = render(&d);
    assert_eq!(r, oracle::render(&d));
    assert!(
        r.html.contains("<b>Commit:</b> <code>abc1234</code>…\n"),
        "{}",
        r.html
    );
    assert!(r.html.contains("<b>URL:</b> https://x.example/&amp;"));
    assert!(utf16_len(&r.html) <= MAX_MESSAGE_CHARS);
}

#[test]
fn the_readme_lists_every_field() {
    let readme = include_str!("../../../README.md");
    let templates = readme
        .split_once("### Templates")
        .map(|(_, t)| t)
        .unwrap_or_default();
    for f in Field::all() {
        assert!(
            templates.contains(&format!("`{}`", f.as_str())),
            "README's Templates section lacks `{}`",
            f.as_str()
        );
    }
}

/// Text that escapes long, with characters of two UTF-16 units.
fn hostile(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec!['a', 'z', ' ', '"', '&', '<', '>', '😀', 'é', '\n']),
        0..=max,
    )
    .prop_map(|v| v.into_iter().collect())
}

/// Text of only what escapes longest, so that several fields need cutting.
fn escaping(len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec!['"', '&', '<', '>']), len)
        .prop_map(|v| v.into_iter().collect())
}

/// Deployments whose messages often need one, and sometimes several, cuts.
fn payload() -> impl Strategy<Value = DeploymentPayload> {
    (
        (
            prop_oneof![hostile(140), escaping(100..127)],
            prop_oneof![hostile(140), escaping(100..127)],
            prop::option::of(prop_oneof![hostile(300), escaping(200..300)]),
        ),
        (
            prop::option::of(prop_oneof![hostile(300), escaping(200..300)]),
            prop::option::of(prop_oneof![
                hostile(400),
                hostile(4000),
                escaping(200..1200)
            ]),
            prop::option::of(prop_oneof![
                Just("production".to_owned()),
                Just("Preview".to_owned()),
                Just("staging".to_owned()),
                hostile(70)
            ]),
        ),
        (
            prop::option::of(prop_oneof![
                "[a&\"<>]{0,1100}".prop_map(|u| format!("https://x.example/{u}")),
                "[a&\"]{1000,2030}".prop_map(|u| format!("https://x.example/{u}")),
            ]),
            prop::option::of(prop::sample::select(vec![
                "abc1234",
                "ABCDEF0123456789abcdef",
                "x",
            ])),
            any::<bool>(),
        ),
    )
        .prop_map(
            |((project, id, branch), (author, message, environment), (url, hash, pages))| {
                DeploymentPayload {
                    kind: Some(if pages { "pages" } else { "worker" }.into()),
                    project_name: Some(format!("p{}", project.replace('\n', ""))),
                    deployment_id: Some(format!("d{}", id.replace('\n', ""))),
                    branch,
                    commit_hash: hash.map(str::to_owned),
                    commit_message: message,
                    author,
                    environment,
                    url,
                    ..Default::default()
                }
            },
        )
}

/// Template text near the language's edges: fields, tags, sections, entities, strays.
fn template_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec![
            "{{project}}",
            "{{url}}",
            "{{commit_subject}}",
            "{{title}}",
            "{{via}}",
            "{{job_url}}",
            "{{author}}",
            "{{#branch}}",
            "{{/branch}}",
            "{{^author}}",
            "{{/author}}",
            "{{#url}}",
            "{{/url}}",
            "{{branch}}",
            "<b>",
            "</b>",
            "<i>",
            "</i>",
            "<a href=\"{{url}}\">",
            "<a href=\"https://x/{{project}}?a=1&amp;b\">",
            "</a>",
            "<code>",
            "</code>",
            "<pre>",
            "</pre>",
            "<span class=\"tg-spoiler\">",
            "</span>",
            "<blockquote expandable>",
            "</blockquote>",
            "&lt;",
            "&#x1F600;",
            "&",
            "<",
            "{{",
            "}}",
            "{{nope}}",
            " - ",
            "\n",
            "text",
            "é😀",
            "\"",
            ">",
        ]),
        0..40,
    )
    .prop_map(|v| v.concat())
}

fn values() -> impl Strategy<Value = Values> {
    prop::collection::vec(
        prop::option::of(prop_oneof![hostile(40), hostile(3000)]),
        FIELDS,
    )
    .prop_map(|v| {
        let mut values = Values::default();
        for (f, s) in Field::all().zip(v) {
            values.set(f, s);
        }
        values
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_default_template_renders_as_the_old_code_did(payload in payload(), poll in any::<bool>()) {
        let source = if poll { Source::Poll } else { Source::Hook };
        let valid = payload.validate(Timestamp::from_millis(1_736_937_000_000), source);
        prop_assume!(valid.is_ok());
        if let Ok(d) = valid {
            let new = render(&d);
            prop_assert_eq!(&new, &oracle::render(&d));
            prop_assert!(utf16_len(&new.html) <= MAX_MESSAGE_CHARS);
        }
    }

    #[test]
    fn parsing_returns_for_any_text(s in any::<String>(), t in template_text()) {
        let _ = Template::parse(&s);
        let _ = Template::parse(&t);
    }

    #[test]
    fn a_saved_template_never_renders_past_4096(t in template_text(), v in values()) {
        if let Ok(t) = Template::parse(&t) {
            let r = t.render(&v);
            prop_assert!(utf16_len(&r.html) <= MAX_MESSAGE_CHARS, "{}", utf16_len(&r.html));
            prop_assert!(utf16_len(&r.plain) <= MAX_MESSAGE_CHARS);
        }
    }
}

/// `telegram::render` as it was before templates, kept to compare with.
mod oracle {
    use crate::html::{header, utf16_len, Rendered, MAX_MESSAGE_CHARS};
    use crate::notify::{Deployment, Source};

    const MAX_LINK_CHARS: usize = 1024;

    fn env_emoji(environment: &str) -> &'static str {
        crate::html::env_emoji(environment)
    }

    fn escape_html(s: &str) -> String {
        crate::telegram::escape_html(s)
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Style {
        Text,
        Code,
        Link,
    }

    #[derive(Debug, Clone)]
    struct Field {
        label: &'static str,
        /// Shown in `<code>` before the text, never cut (a short commit hash).
        code_prefix: Option<String>,
        text: String,
        style: Style,
    }

    /// Formats a deployment in the reference layout:
    ///
    /// ```text
    /// ⚡ New Worker Deployment
    ///
    /// Project: api-service
    /// Environment: 🚀 production
    /// Deployment ID: build-abc123
    /// Author: dev@example.com
    /// Branch: feature/add-auth
    /// Commit: abc123d - Add JWT authentication
    /// Time: Jan 15, 2025, 10:30 AM UTC
    /// ```
    ///
    /// Only the commit message's first line is shown. If the result would pass
    /// Telegram's 4096-character limit, the longest field is cut with an ellipsis until
    /// it fits.
    pub(super) fn render(d: &Deployment) -> Rendered {
        // The header is never cut: it names at most a validated environment's length.
        let header = header(
            d.kind,
            &crate::text::cut(&d.environment, crate::notify::MAX_ENVIRONMENT),
        );
        let mut fields = vec![
            field("Project", &d.project_name, Style::Text),
            field(
                "Environment",
                &format!("{} {}", env_emoji(&d.environment), d.environment),
                Style::Text,
            ),
            field("Deployment ID", d.deployment_id.as_str(), Style::Code),
        ];
        if let Some(a) = &d.author {
            fields.push(field("Author", a, Style::Text));
        }
        if let Some(b) = &d.branch {
            fields.push(field("Branch", b, Style::Text));
        }
        let first_line = d
            .commit_message
            .as_deref()
            .and_then(|m| m.lines().map(str::trim).find(|l| !l.is_empty()));
        match (&d.commit_hash, first_line) {
            (Some(h), Some(m)) => fields.push(Field {
                label: "Commit",
                code_prefix: Some(h.short().to_owned()),
                text: format!(" - {m}"),
                style: Style::Text,
            }),
            (Some(h), None) => fields.push(field("Commit", h.short(), Style::Code)),
            (None, Some(m)) => fields.push(field("Commit", m, Style::Text)),
            (None, None) => {}
        }
        if let Some(u) = &d.url {
            let style = if u.chars().count() <= MAX_LINK_CHARS {
                Style::Link
            } else {
                Style::Text
            };
            fields.push(field("URL", u, style));
        }
        fields.push(field("Time", &d.timestamp.to_human(), Style::Text));
        let footer = match d.source {
            Source::Poll => Some("via poll"),
            Source::Hook => None,
        };

        loop {
            let html = render_html(&header, &fields, footer);
            if utf16_len(&html) <= MAX_MESSAGE_CHARS {
                let plain = render_plain(&header, &fields, footer);
                return Rendered { html, plain };
            }
            // Cut the longest field, keeping as much of it as still fits (escaping makes
            // a character worth up to six, so search rather than count). A link shows
            // its text twice; an `href` cannot be cut, so the longest link first
            // becomes plain text, and is cut as such if that is still too long.
            let Some(i) = fields
                .iter()
                .enumerate()
                .filter(|(_, f)| !f.text.is_empty() && f.text != "…")
                .max_by_key(|(_, f)| {
                    f.text.chars().count() * if f.style == Style::Link { 2 } else { 1 }
                })
                .map(|(i, _)| i)
            else {
                // Nothing left to cut: cannot happen (every field is down to "…"
                // and the header is bounded), but never loop forever.
                let plain = render_plain(&header, &fields, footer);
                return Rendered { html, plain };
            };
            if fields[i].style == Style::Link {
                fields[i].style = Style::Text;
                continue;
            }
            let original: Vec<char> = fields[i].text.chars().collect();
            let (mut lo, mut hi) = (0, original.len().saturating_sub(1));
            while lo < hi {
                let mid = (lo + hi).div_ceil(2);
                fields[i].text = original[..mid].iter().collect::<String>() + "…";
                if utf16_len(&render_html(&header, &fields, footer)) <= MAX_MESSAGE_CHARS {
                    lo = mid;
                } else {
                    hi = mid - 1;
                }
            }
            fields[i].text = original[..lo].iter().collect::<String>() + "…";
        }
    }

    fn field(label: &'static str, text: &str, style: Style) -> Field {
        Field {
            label,
            code_prefix: None,
            text: text.to_owned(),
            style,
        }
    }

    fn render_html(header: &str, fields: &[Field], footer: Option<&str>) -> String {
        let mut out = format!("<b>{}</b>\n", escape_html(header));
        for f in fields {
            out.push_str(&format!("\n<b>{}:</b> ", f.label));
            if let Some(code) = &f.code_prefix {
                out.push_str(&format!("<code>{}</code>", escape_html(code)));
            }
            let text = escape_html(&f.text);
            match f.style {
                Style::Text => out.push_str(&text),
                Style::Code => out.push_str(&format!("<code>{text}</code>")),
                Style::Link => out.push_str(&format!("<a href=\"{text}\">{text}</a>")),
            }
        }
        if let Some(footer) = footer {
            out.push_str(&format!("\n\n<i>{}</i>", escape_html(footer)));
        }
        out
    }

    fn render_plain(header: &str, fields: &[Field], footer: Option<&str>) -> String {
        let mut out = format!("{header}\n");
        for f in fields {
            out.push_str(&format!(
                "\n{}: {}{}",
                f.label,
                f.code_prefix.as_deref().unwrap_or(""),
                f.text
            ));
        }
        if let Some(footer) = footer {
            out.push_str(&format!("\n\n{footer}"));
        }
        out
    }
}
