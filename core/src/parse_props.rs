//! Property tests: every parser that sees unauthenticated or admin input returns
//! (`Ok` or `Err`) for arbitrary strings and bytes instead of panicking.

use proptest::prelude::*;

use crate::auth::check_bearer;
use crate::github::deliveries::DeliveryId;
use crate::github::redeliver::Hook;
use crate::github::webhook::Signature;
use crate::github::{CommitSha, RepoFullName};
use crate::http::query_param;
use crate::secret::Secret;

proptest! {
    #[test]
    fn signature_headers_never_panic(s in any::<String>()) {
        let _ = Signature::parse(Some(&s));
        let _ = Signature::parse(Some(&format!("sha256={s}")));
    }

    #[test]
    fn sixty_four_byte_signatures_of_any_characters_never_panic(
        s in "[0-9a-f\u{e9}\u{1F600}\u{0}]{1,64}"
    ) {
        let _ = Signature::parse(Some(&format!("sha256={s}")));
    }

    #[test]
    fn bearer_headers_never_panic(s in any::<String>()) {
        let _ = check_bearer(Some(&s), &Secret::new("token"));
        let _ = check_bearer(Some(&format!("Bearer {s}")), &Secret::new("token"));
    }

    #[test]
    fn identifiers_never_panic(s in any::<String>()) {
        let _ = DeliveryId::parse(&s);
        let _ = Hook::parse(&s);
        let _ = RepoFullName::parse(&s);
        let _ = CommitSha::parse(&s);
    }

    #[test]
    fn query_strings_never_panic(s in any::<String>(), name in any::<String>()) {
        let _ = query_param(&format!("https://x/?{s}"), &name);
        let _ = query_param(&s, "id");
    }

    #[test]
    fn notify_bodies_of_arbitrary_bytes_never_panic(body in any::<Vec<u8>>()) {
        let _ = crate::notify::parse_notify_body(
            &body,
            crate::time::Timestamp::from_millis(1_736_937_000_000),
        );
    }

    #[test]
    fn fly_app_names_are_valid_for_any_branch(branch in any::<String>(), pr in any::<u64>()) {
        let v = serde_json::json!({"org": "acme", "image": "registry.fly.io/hello:{sha}"});
        let settings: crate::preview::PreviewSettings =
            crate::json::from_value(&v).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        let name = settings.fly_app_name("hello", pr, &branch);
        prop_assert!(name.len() <= 63);
        prop_assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
    }
}

/// Text that leans on what breaks renderers and slicers: HTML's specials, multi-byte
/// and astral characters (two UTF-16 units), newlines, controls.
fn hostile_text(max: usize) -> impl Strategy<Value = String> {
    let chars = prop::sample::select(vec![
        'a', 'Z', '0', ' ', '<', '>', '&', '"', '\'', ';', '/', '\n', '\r', '\t', '\u{0}',
        '\u{7f}', 'é', 'ß', '€', '\u{200d}', '😀', '🎉', '𝔘',
    ]);
    prop_oneof![
        prop::collection::vec(chars, 0..=max).prop_map(String::from_iter),
        any::<String>(),
    ]
}

/// Checks text the way Telegram's HTML parse mode does (the e2e fake's rules) and
/// returns what it shows.
fn telegram_visible(html: &str) -> Result<String, String> {
    const TAGS: &[&str] = &["b", "strong", "i", "em", "u", "s", "code", "pre", "a"];
    let mut open: Vec<&str> = Vec::new();
    let mut visible = String::new();
    let mut rest = html;
    while let Some(c) = rest.chars().next() {
        match c {
            '<' => {
                let end = rest.find('>').ok_or("unclosed <")?;
                let tag = &rest[1..end];
                let (closing, tag) = match tag.strip_prefix('/') {
                    Some(t) => (true, t),
                    None => (false, tag),
                };
                let (name, attrs) = tag.split_once(' ').unwrap_or((tag, ""));
                if !TAGS.contains(&name) {
                    return Err(format!("unsupported tag {name:?}"));
                }
                if closing {
                    if open.pop() != Some(name) || !attrs.is_empty() {
                        return Err(format!("unbalanced </{name}>"));
                    }
                } else {
                    if !attrs.is_empty() {
                        let value = attrs
                            .strip_prefix("href=\"")
                            .and_then(|a| a.strip_suffix('"'))
                            .ok_or("bad attribute")?;
                        if value.contains(['"', '<', '>']) {
                            return Err("bad attribute value".into());
                        }
                    }
                    open.push(name);
                }
                rest = &rest[end + 1..];
            }
            '&' => {
                let end = rest.find(';').ok_or("unterminated entity")?;
                visible.push(match &rest[1..end] {
                    "lt" => '<',
                    "gt" => '>',
                    "amp" => '&',
                    "quot" => '"',
                    other => return Err(format!("unsupported entity {other:?}")),
                });
                rest = &rest[end + 1..];
            }
            '>' => return Err("unexpected >".into()),
            c => {
                visible.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    match open.pop() {
        Some(tag) => Err(format!("<{tag}> never closed")),
        None => Ok(visible),
    }
}

/// Any JSON value, nested, with keys a reader might look for.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let keys = prop::sample::select(vec![
        "deployment",
        "type",
        "projectName",
        "deploymentId",
        "url",
        "repository",
        "full_name",
        "ref",
        "after",
        "before",
        "commits",
        "id",
        "message",
        "action",
        "pull_request",
        "number",
        "head",
        "sha",
        "workflow_run",
        "deploy",
        "preview",
        "production_branch",
        "environment",
        "hook_id",
        "x",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        hostile_text(80).prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((keys.clone(), inner), 0..8).prop_map(|kv| Value::Object(
                kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
}

const EVENTS: &[&str] = &[
    "ping",
    "push",
    "pull_request",
    "workflow_run",
    "deployment_status",
    "issues",
];

/// The GitHub fixtures, each with some of its leaves replaced by any JSON value.
fn mutated_fixture() -> impl Strategy<Value = (&'static str, Vec<u8>)> {
    const FIXTURES: &[(&str, &str)] = &[
        (
            "ping",
            include_str!("../../tests/fixtures/github/ping.json"),
        ),
        (
            "push",
            include_str!("../../tests/fixtures/github/push.with-new-branch.json"),
        ),
        (
            "push",
            include_str!("../../tests/fixtures/github/push.tag-deleted.json"),
        ),
        (
            "pull_request",
            include_str!("../../tests/fixtures/github/pull_request.opened.json"),
        ),
        (
            "pull_request",
            include_str!("../../tests/fixtures/github/pull_request.closed.json"),
        ),
        (
            "workflow_run",
            include_str!("../../tests/fixtures/github/workflow_run.completed.json"),
        ),
        (
            "deployment_status",
            include_str!("../../tests/fixtures/github/deployment_status.json"),
        ),
    ];
    (
        prop::sample::select(FIXTURES),
        prop::collection::vec((any::<prop::sample::Index>(), json_value()), 1..6),
    )
        .prop_map(|((event, text), changes)| {
            let mut v: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
            for (at, new) in changes {
                let mut pointers = Vec::new();
                leaf_pointers(&v, String::new(), &mut pointers);
                if pointers.is_empty() {
                    break;
                }
                if let Some(slot) = v.pointer_mut(&pointers[at.index(pointers.len())]) {
                    *slot = new;
                }
            }
            (event, serde_json::to_vec(&v).unwrap_or_default())
        })
}

fn leaf_pointers(v: &serde_json::Value, at: String, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                leaf_pointers(
                    v,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        serde_json::Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                leaf_pointers(v, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

fn notify_payload() -> impl Strategy<Value = crate::notify::DeploymentPayload> {
    use crate::notify::{MAX_AUTHOR, MAX_BRANCH, MAX_ENVIRONMENT, MAX_PROJECT_NAME};
    let opt = |max| prop::option::of(hostile_text(max));
    (
        (
            opt(MAX_PROJECT_NAME),
            opt(128),
            opt(MAX_BRANCH + 10),
            opt(MAX_AUTHOR + 10),
        ),
        (
            opt(10_000),
            opt(MAX_ENVIRONMENT + 5),
            // Either anything, or a link of only what escapes longest.
            prop::option::of(prop_oneof![hostile_text(2040), "[&\"<>]{900,1020}"]),
        ),
        prop::option::of(prop::sample::select(vec![
            "abc1234",
            "ABCDEF0123456789abcdef",
            "é1234",
        ])),
        any::<bool>(),
    )
        .prop_map(
            |((project, id, branch, author), (message, environment, url), hash, pages)| {
                crate::notify::DeploymentPayload {
                    kind: Some(if pages { "pages" } else { "worker" }.into()),
                    project_name: Some(project.unwrap_or_else(|| "p".into())),
                    deployment_id: Some(id.unwrap_or_else(|| "d".into())),
                    branch,
                    commit_hash: hash.map(str::to_owned),
                    commit_message: message,
                    author,
                    environment,
                    url: url.map(|u| format!("https://x.example/{u}")),
                    ..Default::default()
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn telegram_messages_fit_and_parse_for_any_deployment(
        payload in notify_payload(),
        poll in any::<bool>(),
    ) {
        let source = if poll { crate::notify::Source::Poll } else { crate::notify::Source::Hook };
        // Whatever validation lets through is rendered; what it refuses never is.
        let valid = payload.validate(crate::time::Timestamp::from_millis(1_736_937_000_000), source);
        prop_assume!(valid.is_ok());
        if let Ok(d) = valid {
            let r = crate::template::render(&d);
            let limit = crate::telegram::MAX_MESSAGE_CHARS;
            prop_assert!(crate::telegram::utf16_len(&r.html) <= limit, "{} UTF-16 units", crate::telegram::utf16_len(&r.html));
            prop_assert!(crate::telegram::utf16_len(&r.plain) <= limit);
            let visible = telegram_visible(&r.html);
            prop_assert!(visible.is_ok(), "{visible:?} in {}", r.html);
        }
    }

    #[test]
    fn escaped_text_shows_exactly_itself(s in hostile_text(200)) {
        prop_assert_eq!(telegram_visible(&crate::telegram::escape_html(&s)), Ok(s));
    }

    #[test]
    fn text_is_cut_within_any_limit_at_a_character(s in hostile_text(300), max in 0usize..400) {
        let cut = crate::text::cut(&s, max);
        prop_assert!(cut.chars().count() <= max);
        if s.chars().count() <= max {
            prop_assert_eq!(cut, s);
        } else if max > 0 {
            let kept = cut.strip_suffix('…').map(str::to_owned);
            prop_assert_eq!(kept.as_deref().map(|k| s.starts_with(k)), Some(true));
            prop_assert_eq!(cut.chars().count(), max);
        }
    }

    #[test]
    fn content_types_are_json_by_their_media_type_alone(s in any::<String>(), params in any::<String>()) {
        use crate::http::is_json_content_type;
        let _ = is_json_content_type(Some(&s));
        let with_params = format!("Application/JSON;{params}");
        prop_assert!(is_json_content_type(Some(&with_params)));
        let media = s.split(';').next().unwrap_or("");
        if !media.trim().eq_ignore_ascii_case("application/json") {
            prop_assert!(!is_json_content_type(Some(&s)));
        }
    }

    #[test]
    fn a_body_cap_accepts_exactly_up_to_its_limit(
        limit in 0usize..100_000,
        chunks in prop::collection::vec(0usize..30_000, 0..20),
        declared in any::<String>(),
    ) {
        let mut cap = crate::http::BodyCap::new(limit);
        let _ = cap.check_declared(Some(&declared));
        prop_assert_eq!(cap.check_declared(Some(&limit.to_string())), Ok(()));
        let over = (limit as u64 + 1).to_string();
        prop_assert!(cap.check_declared(Some(&over)).is_err());
        let mut sum = 0;
        for n in chunks {
            sum += n;
            let took = cap.take(n);
            prop_assert_eq!(took.is_ok(), sum <= limit);
            if took.is_err() {
                break;
            }
            prop_assert_eq!(cap.read(), sum);
        }
        prop_assert!(cap.read() <= limit);
    }

    #[test]
    fn the_json_reader_returns_for_any_bytes(body in any::<Vec<u8>>()) {
        let _ = crate::json::read_slice::<serde_json::Value>(&body);
        let _ = crate::apps::App::parse(&body);
        for event in EVENTS {
            let _ = crate::github::events::parse(event, &body);
        }
    }

    #[test]
    fn the_json_readers_return_for_any_json(v in json_value()) {
        let body = serde_json::to_vec(&v).unwrap_or_default();
        let _ = crate::apps::App::parse(&body);
        let _ = crate::notify::parse_notify_body(&body, crate::time::Timestamp::from_millis(0));
        let _ = crate::notify::parse_notify_body(
            &serde_json::to_vec(&serde_json::json!({ "deployment": v })).unwrap_or_default(),
            crate::time::Timestamp::from_millis(0),
        );
        for event in EVENTS {
            let _ = crate::github::events::parse(event, &body);
        }
    }

    #[test]
    fn webhook_payloads_with_any_field_changed_never_panic((event, body) in mutated_fixture()) {
        let _ = crate::github::events::parse(event, &body);
    }

    #[test]
    fn the_json_reader_survives_deep_nesting(depth in 0usize..100_000, open in prop::sample::select(vec!["[", "{\"a\":"])) {
        let body = open.repeat(depth);
        let _ = crate::json::read_slice::<serde_json::Value>(body.as_bytes());
        let _ = crate::apps::App::parse(body.as_bytes());
    }

    #[test]
    fn delivery_ids_are_short_plain_and_read_back_as_sent(s in any::<String>(), uuid in "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}") {
        if let Some(id) = DeliveryId::parse(&s) {
            prop_assert_eq!(id.as_str(), s.trim());
            prop_assert!(id.as_str().len() <= 128);
            prop_assert!(id.as_str().bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));
        }
        prop_assert_eq!(DeliveryId::parse(&uuid).map(|id| id.as_str().to_owned()), Some(uuid));
    }
}
