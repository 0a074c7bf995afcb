use super::*;
use crate::html::header;
use crate::notify::{parse_notify_body, DeploymentPayload};
use crate::notify::{DeployKind, Deployment, Source};
use crate::template::render;
use crate::testing::{block_on, json_response, FakeHttp};
use crate::time::Timestamp;

fn deployment(json: &str) -> Deployment {
    parse_notify_body(json.as_bytes(), Timestamp::from_millis(0)).expect("valid deployment")
}

fn reference() -> Deployment {
    deployment(
        r#"{"deployment":{"type":"worker","projectName":"api-service","deploymentId":"build-abc123",
        "branch":"feature/add-auth","commitHash":"abc123def4567890","commitMessage":"Add JWT authentication\n\nDetails follow",
        "author":"dev@example.com","timestamp":"2025-01-15T10:30:00Z","environment":"production","isCI":true}}"#,
    )
}

#[test]
fn the_reference_message() {
    let r = render(&reference());
    assert_eq!(
        r.plain,
        "⚡ New Worker Deployment\n\nProject: api-service\nEnvironment: 🚀 production\n\
         Deployment ID: build-abc123\nAuthor: dev@example.com\nBranch: feature/add-auth\n\
         Commit: abc123d - Add JWT authentication\nTime: Jan 15, 2025, 10:30 AM UTC"
    );
    assert_eq!(
        r.html,
        "<b>⚡ New Worker Deployment</b>\n\n<b>Project:</b> api-service\n\
         <b>Environment:</b> 🚀 production\n<b>Deployment ID:</b> <code>build-abc123</code>\n\
         <b>Author:</b> dev@example.com\n<b>Branch:</b> feature/add-auth\n\
         <b>Commit:</b> <code>abc123d</code> - Add JWT authentication\n\
         <b>Time:</b> Jan 15, 2025, 10:30 AM UTC"
    );
}

#[test]
fn pages_and_non_production_have_their_own_headers() {
    assert_eq!(
        header(DeployKind::Pages, "production"),
        "📄 New Pages Deployment"
    );
    assert_eq!(
        header(DeployKind::Pages, "preview"),
        "👀 New Pages Preview Deployment"
    );
    assert_eq!(
        header(DeployKind::Worker, "staging"),
        "🧪 New Worker Staging Deployment"
    );
    assert_eq!(
        header(DeployKind::Worker, "qa"),
        "🔹 New Worker Qa Deployment"
    );
    let d = deployment(
        r#"{"deployment":{"type":"pages","projectName":"docs","deploymentId":"d-1","environment":"preview",
        "url":"https://abc.docs.pages.dev","timestamp":"2025-01-15T10:30:00Z"}}"#,
    );
    let r = render(&d);
    assert!(r.html.starts_with("<b>👀 New Pages Preview Deployment</b>"));
    assert!(r.html.contains("<b>Environment:</b> 👀 preview"));
    assert!(r
        .html
        .contains(r#"<a href="https://abc.docs.pages.dev">https://abc.docs.pages.dev</a>"#));
}

#[test]
fn polled_deployments_say_so() {
    let mut d = reference();
    d.source = Source::Poll;
    let r = render(&d);
    assert!(r.html.ends_with("\n\n<i>via poll</i>"));
    assert!(r.plain.ends_with("\n\nvia poll"));
}

#[test]
fn user_strings_are_escaped() {
    let d = deployment(
        r#"{"deployment":{"type":"worker","projectName":"a<b>&c","deploymentId":"<script>",
        "author":"\"Eve\" <eve@example.com>","commitMessage":"Fix <T> & </b> 🎉","commitHash":"abcdef1"}}"#,
    );
    let r = render(&d);
    assert!(r.html.contains("<b>Project:</b> a&lt;b&gt;&amp;c"));
    assert!(r.html.contains("<code>&lt;script&gt;</code>"));
    assert!(r.html.contains("&quot;Eve&quot; &lt;eve@example.com&gt;"));
    assert!(r.html.contains("- Fix &lt;T&gt; &amp; &lt;/b&gt; 🎉"));
    // The plain rendering is the text a reader sees, unescaped.
    assert!(r.plain.contains("Project: a<b>&c"));
    // Every tag left in the HTML is one of ours.
    let stripped = ["<b>", "</b>", "<code>", "</code>", "<i>", "</i>"]
        .iter()
        .fold(r.html.clone(), |s, t| s.replace(t, ""));
    assert!(
        !stripped.contains('<') && !stripped.contains('>'),
        "{stripped}"
    );
}

#[test]
fn only_the_first_line_of_the_commit_message() {
    let d = deployment(
        r#"{"deployment":{"type":"worker","projectName":"p","deploymentId":"d","commitMessage":"\n\n  Subject line  \nbody line"}}"#,
    );
    let r = render(&d);
    assert!(r.plain.contains("\nCommit: Subject line\n"), "{}", r.plain);
    assert!(!r.plain.contains("body line"));
}

#[test]
fn long_messages_are_cut_to_4096_with_an_ellipsis() {
    let payload = DeploymentPayload {
        kind: Some("worker".into()),
        project_name: Some("p".into()),
        deployment_id: Some("d".into()),
        branch: Some("b".repeat(200)),
        commit_hash: Some("abcdef1".into()),
        commit_message: Some("<&>".repeat(3000)),
        author: Some("🎉".repeat(200)),
        ..Default::default()
    };
    let d = payload
        .validate(Timestamp::from_millis(0), Source::Hook)
        .expect("valid");
    let r = render(&d);
    assert!(
        utf16_len(&r.html) <= MAX_MESSAGE_CHARS,
        "{}",
        utf16_len(&r.html)
    );
    assert!(
        utf16_len(&r.html) > MAX_MESSAGE_CHARS - 40,
        "cut no more than needed"
    );
    assert!(
        r.html.contains("…\n<b>Time:</b>"),
        "the commit message, the longest field, is cut"
    );
    assert!(
        r.html.contains(&"b".repeat(200)),
        "shorter fields are intact"
    );
    assert!(
        !r.html.contains("&am…") && !r.html.contains("&lt…"),
        "never cut inside an entity"
    );
}

fn ok(message_id: i64) -> Result<HttpResponse, HttpError> {
    json_response(
        200,
        serde_json::json!({"ok": true, "result": {"message_id": message_id}}),
    )
}

#[test]
fn classifies_telegram_answers() {
    assert_eq!(classify(ok(42)), SendOutcome::Sent { message_id: 42 });
    assert_eq!(
        classify(json_response(
            429,
            serde_json::json!({"ok": false, "error_code": 429,
            "description": "Too Many Requests: retry after 7", "parameters": {"retry_after": 7}})
        )),
        SendOutcome::RateLimited { retry_after: 7 }
    );
    assert!(matches!(
        classify(json_response(
            400,
            serde_json::json!({"ok": false,
            "description": "Bad Request: can't parse entities: Unsupported start tag \"x\""})
        )),
        SendOutcome::UnparsableEntities { .. }
    ));
    assert_eq!(
        classify(json_response(
            502,
            serde_json::json!({"ok": false, "description": "Bad Gateway"})
        )),
        SendOutcome::Transient {
            error: "Telegram 502: Bad Gateway".into()
        }
    );
    assert_eq!(
        classify(json_response(
            403,
            serde_json::json!({"ok": false, "description": "Forbidden: bot was kicked"})
        )),
        SendOutcome::Permanent {
            error: "Telegram 403: Forbidden: bot was kicked".into()
        }
    );
    assert!(matches!(
        classify(Err(HttpError::Timeout(10_000))),
        SendOutcome::Transient { .. }
    ));
    assert!(matches!(
        classify(Ok(HttpResponse::new(200, "<html>"))),
        SendOutcome::Transient { .. }
    ));
}

#[test]
fn decisions_per_attempt() {
    assert_eq!(
        decide(SendOutcome::RateLimited { retry_after: 3 }, 1),
        DeliveryAction::Retry {
            delay_seconds: 3,
            error: "Telegram 429: retry after 3 s".into()
        }
    );
    assert_eq!(
        decide(SendOutcome::Transient { error: "x".into() }, 3),
        DeliveryAction::Retry {
            delay_seconds: 8,
            error: "x".into()
        }
    );
    assert!(matches!(
        decide(
            SendOutcome::Transient { error: "x".into() },
            MAX_DELIVERY_ATTEMPTS
        ),
        DeliveryAction::GiveUp { .. }
    ));
    assert!(matches!(
        decide(SendOutcome::Permanent { error: "x".into() }, 1),
        DeliveryAction::Fail { .. }
    ));
}

fn config() -> TelegramConfig {
    TelegramConfig {
        api_base: "http://telegram.test".into(),
        bot_token: Secret::new("123:SECRET"),
        chat_id: "-1001234".into(),
    }
}

#[test]
fn sends_html_to_the_configured_chat() {
    let http = FakeHttp::answering(vec![ok(9)]);
    let cfg = config();
    let out = block_on(TelegramClient::new(&http, &cfg).deliver(&render(&reference()), false));
    assert_eq!(out, SendOutcome::Sent { message_id: 9 });
    let seen = http.seen.borrow();
    assert_eq!(
        seen[0].url,
        "http://telegram.test/bot123:SECRET/sendMessage"
    );
    let body = &http.bodies()[0];
    assert_eq!(body["chat_id"], "-1001234");
    assert_eq!(body["parse_mode"], "HTML");
    assert_eq!(body["disable_notification"], false);
}

#[test]
fn unparsable_html_is_resent_as_plain_text() {
    let http = FakeHttp::answering(vec![
        json_response(
            400,
            serde_json::json!({"ok": false, "description": "Bad Request: can't parse entities: x"}),
        ),
        ok(10),
    ]);
    let cfg = config();
    let message = render(&reference());
    let out = block_on(TelegramClient::new(&http, &cfg).deliver(&message, false));
    assert_eq!(out, SendOutcome::Sent { message_id: 10 });
    let bodies = http.bodies();
    assert_eq!(bodies.len(), 2);
    assert!(bodies[1].get("parse_mode").is_none());
    assert_eq!(bodies[1]["text"], message.plain.as_str());
}

#[test]
fn errors_never_carry_the_token() {
    let http = FakeHttp::answering(vec![Err(HttpError::Network(
        "connect failed: http://telegram.test/bot123:SECRET/sendMessage".into(),
    ))]);
    let cfg = config();
    let out = block_on(TelegramClient::new(&http, &cfg).deliver(&render(&reference()), false));
    match out {
        SendOutcome::Transient { error } => {
            assert!(!error.contains("SECRET"), "{error}");
            assert!(error.contains("bot***"), "{error}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_link_that_escapes_past_the_limit_is_shown_cut_as_text() {
    // A URL within the link limit whose every character escapes to five: shown
    // twice in `<a href="…">…</a>`, it alone would pass Telegram's 4096.
    let payload = DeploymentPayload {
        kind: Some("pages".into()),
        project_name: Some("p".into()),
        deployment_id: Some("d".into()),
        url: Some(format!("https://x.example/?{}", "&".repeat(1000))),
        ..Default::default()
    };
    let d = payload
        .validate(Timestamp::from_millis(0), Source::Hook)
        .expect("valid");
    let r = render(&d);
    assert!(
        utf16_len(&r.html) <= MAX_MESSAGE_CHARS,
        "{}",
        utf16_len(&r.html)
    );
    assert!(!r.html.contains("<a href"), "a cut URL is no link");
    assert!(r.html.contains("<b>URL:</b> https://x.example/?&amp;"));
    assert!(utf16_len(&r.plain) <= MAX_MESSAGE_CHARS);
}
