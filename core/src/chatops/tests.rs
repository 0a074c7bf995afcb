//! Telegram's updates as the webhook reads them, the commands, who may act and
//! where, and the buttons' tokens and the updates in D1 (SQLite, the real
//! migrations).

use serde_json::json;

use super::store::{ButtonStore, On, UpdateStore};
use super::*;
use crate::testing::{block_on, SqliteSql};
use crate::time::Timestamp;

fn read(v: serde_json::Value) -> Incoming {
    parse_update(v.to_string().as_bytes()).expect("an update")
}

fn alice() -> Actor {
    Actor {
        user_id: 42,
        name: "@alice".into(),
    }
}

#[test]
fn a_command_in_a_topic_is_read_with_its_chat_topic_and_sender() {
    let got = read(json!({"update_id": 7, "message": {
        "message_id": 70, "date": 1, "message_thread_id": 3, "is_topic_message": true,
        "from": {"id": 42, "is_bot": false, "first_name": "Alice", "username": "alice"},
        "chat": {"id": -1001234, "type": "supergroup", "username": "OpsRoom"},
        "text": "/deploys shop", "entities": [{"type": "bot_command", "offset": 0, "length": 8}]}}));
    assert_eq!(
        got,
        Incoming {
            update_id: 7,
            update: Some(Update::Command {
                chat_id: "-1001234".into(),
                chat_name: Some("@opsroom".into()),
                thread: Some(3),
                message_id: 70,
                by: alice(),
                text: "/deploys shop".into(),
            }),
        }
    );
    // A reply thread in a chat that is no forum is no topic.
    let got = read(
        json!({"update_id": 8, "message": {"message_id": 1, "message_thread_id": 9,
        "from": {"id": 5, "first_name": "  Bob "}, "chat": {"id": 5}, "text": "/help"}}),
    );
    let Some(Update::Command { thread, by, .. }) = got.update else {
        panic!("a command");
    };
    assert_eq!((thread, by.name.as_str()), (None, "Bob"));
}

#[test]
fn what_is_no_command_or_press_of_ours_is_left_alone() {
    for v in [
        json!({"update_id": 1, "message": {"message_id": 1, "chat": {"id": 1}, "from": {"id": 1}, "text": "hello"}}),
        json!({"update_id": 2, "message": {"message_id": 1, "chat": {"id": 1}, "from": {"id": 1}, "photo": []}}),
        // A channel's post has no sender to answer or to hold to account.
        json!({"update_id": 3, "message": {"message_id": 1, "chat": {"id": -1}, "text": "/status"}}),
        json!({"update_id": 4, "callback_query": {"id": "q", "from": {"id": 1}, "game_short_name": "g"}}),
        json!({"update_id": 5, "edited_message": {"message_id": 1}}),
    ] {
        assert_eq!(read(v.clone()).update, None, "{v}");
    }
}

#[test]
fn a_press_is_read_with_its_message_and_token() {
    let got = read(
        json!({"update_id": 9, "callback_query": {"id": "q1", "chat_instance": "c",
        "from": {"id": 42, "first_name": "A", "username": "alice"},
        "message": {"message_id": 501, "chat": {"id": -100, "type": "group"}}, "data": "0a1b2c"}}),
    );
    assert_eq!(
        got.update,
        Some(Update::Press {
            callback_id: "q1".into(),
            by: alice(),
            chat_id: Some("-100".into()),
            message_id: Some(501),
            token: "0a1b2c".into(),
        })
    );
    // Too old for Telegram to show the message: no message, so no button of ours.
    let got = read(json!({"update_id": 10, "callback_query": {"id": "q2",
        "from": {"id": 42}, "data": "x"}}));
    assert!(matches!(
        got.update,
        Some(Update::Press {
            chat_id: None,
            message_id: None,
            ..
        })
    ));
}

#[test]
fn a_body_that_is_no_update_says_why() {
    let bad = |body: &str| parse_update(body.as_bytes()).expect_err("refused").0;
    assert!(bad("{").starts_with("malformed JSON"));
    assert_eq!(bad("[]"), "invalid type: sequence, expected an object");
    assert_eq!(bad(r#"{"message": {}}"#), "missing field `update_id`");
    assert_eq!(
        bad(
            r#"{"update_id": 1, "message": {"text": "/x", "from": {"id": 1}, "chat": {"id": "x"}}}"#
        ),
        "message.chat.id: invalid type: string \"x\", expected i64"
    );
}

#[test]
fn commands_are_read_with_their_argument_and_the_bot_they_are_for() {
    let c = |t: &str| Command::parse(t, Some("edge_bot"));
    assert_eq!(c("/status"), Command::Status);
    assert_eq!(c("/STATUS@Edge_Bot extra"), Command::Status);
    assert_eq!(c("/status@other_bot"), Command::NotOurs);
    assert_eq!(c("/deploys  shop"), Command::Deploys("shop".into()));
    assert_eq!(
        c("/rollback@edge_bot shop"),
        Command::Rollback("shop".into())
    );
    assert_eq!(c("/rollback"), Command::Usage("rollback"));
    assert_eq!(c("/deploys"), Command::Usage("deploys"));
    assert_eq!(c("/start"), Command::Help);
    assert_eq!(c("/nope now"), Command::Unknown("nope".into()));
    // Not knowing our own name, any addressee is taken to be us.
    assert_eq!(Command::parse("/status@whoever", None), Command::Status);
    assert!(help_text().contains("/deploys &lt;app&gt; — the app's last 5 deploy jobs"));
}

#[test]
fn the_secret_header_must_be_the_secret() {
    let s = Secret::new("abc");
    assert!(check_secret(Some("abc"), &s));
    for h in [None, Some(""), Some("abd"), Some("abcd"), Some("ab")] {
        assert!(!check_secret(h, &s), "{h:?}");
    }
}

#[test]
fn who_may_act_and_where() {
    assert!(may_act(&[1, 2], &[], 2));
    assert!(may_act(&[], &[7], 7));
    assert!(!may_act(&[1], &[7], 8));
    let configured = vec!["-100".to_owned(), "@deploys".to_owned()];
    assert!(chat_is_configured("-100", None, &configured));
    assert!(chat_is_configured("-1009", Some("@Deploys"), &configured));
    assert!(!chat_is_configured("-1009", Some("@other"), &configured));
    assert!(!chat_is_configured("100", None, &configured));
}

#[test]
fn keyboards_answers_and_subjects() {
    assert_eq!(keyboard(&[]), None);
    assert_eq!(
        keyboard(&[
            (Action::Approve, "t1".into()),
            (Action::Reject, "t2".into())
        ]),
        Some(json!({"inline_keyboard": [
            [{"text": "✅ Approve", "callback_data": "t1"}],
            [{"text": "❌ Reject", "callback_data": "t2"}]]}))
    );
    assert_eq!(
        answer("q", "Rolling back…"),
        json!({"method": "answerCallbackQuery", "callback_query_id": "q", "text": "Rolling back…"})
    );
    assert_eq!(
        actions_text(&[Action::Approve, Action::Reject]),
        "approve,reject"
    );
    assert_eq!(
        actions_of("approve,nope,cancel"),
        vec![Action::Approve, Action::Cancel]
    );
    assert_eq!(actions_of(""), Vec::<Action>::new());
    let job = SubjectRef::parse("job:12").expect("a subject");
    assert_eq!(
        (job.kind, job.id, job.text()),
        (SubjectKind::Job, 12, "job:12".to_owned())
    );
    for s in ["job", "job:x", "preview:3", ":1"] {
        assert_eq!(SubjectRef::parse(s), None, "{s}");
    }
}

const T0: i64 = 1_700_000_000_000;

fn at(s: i64) -> Timestamp {
    Timestamp::from_millis(T0 + s * 1000)
}

#[test]
fn tokens_are_random_named_in_order_and_used_once_until_they_expire() {
    let db = SqliteSql::migrated();
    let store = ButtonStore::new(&db);
    let made = block_on(store.mint(
        On::Reply { chat_id: "-100" },
        "-100",
        "job:3",
        Some("shop"),
        &[Action::Approve, Action::Reject],
        at(0),
    ))
    .expect("minted");
    assert_eq!(
        made.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
        vec![Action::Approve, Action::Reject]
    );
    let (approve, reject) = (&made[0].1, &made[1].1);
    assert_ne!(approve, reject);
    assert!(approve.len() == 18 && approve.bytes().all(|b| b.is_ascii_hexdigit()));
    // A reply's buttons know their message once it is sent.
    let found = block_on(store.find(approve))
        .expect("find")
        .expect("a button");
    assert_eq!(
        (found.message_id, found.live_id, found.used),
        (None, None, false)
    );
    block_on(store.placed(&[approve.clone(), reject.clone()], 900)).expect("placed");
    let found = block_on(store.find(approve))
        .expect("find")
        .expect("a button");
    assert_eq!(
        (
            found.subject.as_str(),
            found.action,
            found.app.as_deref(),
            found.chat_id.as_str(),
            found.message_id
        ),
        (
            "job:3",
            Some(Action::Approve),
            Some("shop"),
            "-100",
            Some(900)
        )
    );
    // Two taps: one claims it.
    assert!(block_on(store.claim(approve, 42, 7001, at(1))).expect("claim"));
    assert!(!block_on(store.claim(approve, 42, 7002, at(1))).expect("claim"));
    let used = block_on(store.find(approve))
        .expect("find")
        .expect("a button");
    assert_eq!((used.used, used.used_by_update), (true, Some(7001)));
    // One good for a day is not claimed after it.
    let late = at(BUTTON_TTL_HOURS * 3600);
    assert!(!block_on(store.claim(reject, 42, 7003, late)).expect("claim"));
    assert_eq!(block_on(store.find("nope")).expect("find"), None);
}

#[test]
fn a_live_messages_buttons_are_on_its_current_message() {
    let db = SqliteSql::migrated();
    let conn = db.conn_for_tests();
    conn.execute(
        "INSERT INTO telegram_live (id, subject, project, route, chat_id, destination, html, message_id, created_at, updated_at) \
         VALUES (5, 'job:3', 'shop', 'default', '-100', '{}', 'x', 77, 0, 0)",
        [],
    )
    .expect("a live row");
    let store = ButtonStore::new(&db);
    let made = block_on(store.mint(
        On::Live(5),
        "-100",
        "job:3",
        Some("shop"),
        &[Action::Cancel],
        at(0),
    ))
    .expect("minted");
    assert_eq!(
        block_on(store.find(&made[0].1))
            .expect("find")
            .and_then(|b| b.message_id),
        Some(77)
    );
    // Telegram lost it and it was sent again: the same button, on the new message.
    conn.execute("UPDATE telegram_live SET message_id = 78 WHERE id = 5", [])
        .expect("resent");
    assert_eq!(
        block_on(store.find(&made[0].1))
            .expect("find")
            .and_then(|b| b.message_id),
        Some(78)
    );
}

#[test]
fn an_update_is_recorded_once_read_back_and_found_again_when_its_message_was_lost() {
    let db = SqliteSql::migrated();
    let store = UpdateStore::new(&db);
    let body = json!({"update_id": 11, "message": {"message_id": 1, "from": {"id": 42, "username": "alice"},
        "chat": {"id": -100}, "text": "/help"}})
    .to_string();
    let update = parse_update(body.as_bytes())
        .expect("read")
        .update
        .expect("a command");
    assert!(block_on(store.record(11, &update, body.as_bytes(), None, at(0))).expect("recorded"));
    assert!(!block_on(store.record(11, &update, body.as_bytes(), None, at(1))).expect("again"));
    let got = block_on(store.get(11)).expect("get").expect("recorded");
    assert_eq!(
        (&got.update, got.verdict.as_deref(), got.done, got.attempts),
        (&update, None, false, 0)
    );
    assert_eq!(
        block_on(store.failed(11, "Telegram 502", at(2))).expect("failed"),
        1
    );
    assert!(
        block_on(store.lost(at(2), at(3))).expect("lost").is_empty(),
        "touched at 2"
    );
    assert_eq!(
        block_on(store.lost(at(10), at(11))).expect("lost"),
        vec![11]
    );
    assert!(
        block_on(store.lost(at(10), at(12)))
            .expect("lost")
            .is_empty(),
        "given its time again"
    );
    block_on(store.finish(11, "answered", at(13))).expect("finished");
    assert!(
        block_on(store.get(11))
            .expect("get")
            .expect("recorded")
            .done
    );
    assert!(
        block_on(store.lost(at(100), at(100)))
            .expect("lost")
            .is_empty(),
        "done"
    );
}
