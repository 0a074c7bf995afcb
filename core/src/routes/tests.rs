use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::error::ApiError;
use crate::testing::{block_on, SqliteSql};

/// The issue's example route, every field set.
const FULL: &str = r#"{
  "position": 10,
  "match": {"source": ["notify", "poll"], "project": "api-*", "environment": "prod*",
            "branch": "release/*", "outcome": ["failure"]},
  "destinations": [
    {"chat_id": "-1001234567890", "message_thread_id": 42, "silent": true, "link_preview": true,
     "template": "<b>{{project}}</b> failed"},
    {"chat_id": "@Deploys_Channel", "topic": "auto"}
  ],
  "continue": true,
  "pace": {"per_second": 2, "per_minute": 40, "digest_threshold": 8}
}"#;

fn spec(body: serde_json::Value) -> RouteSpec {
    RouteSpec::parse(body.to_string().as_bytes()).expect("a valid route")
}

fn bad(body: &str) -> String {
    RouteSpec::parse(body.as_bytes())
        .expect_err("an invalid route")
        .to_string()
}

/// A route to one chat, with `conditions` as its `match`.
fn route(name: &str, conditions: serde_json::Value, chat: &str) -> Route {
    Route {
        name: RouteId::Stored(RouteName::parse(name).expect("route name")),
        spec: spec(json!({"match": conditions, "destinations": [{"chat_id": chat}]})),
    }
}

fn glob(p: &str) -> Glob {
    Glob::parse(p).expect("a valid glob")
}

fn subject<'a>(source: Source, project: &'a str, outcome: Outcome) -> Subject<'a> {
    Subject {
        source,
        project,
        environment: Some("production"),
        branch: Some("main"),
        outcome,
    }
}

/// Route name and chat of each target.
fn sent_to(targets: &[Target<'_>]) -> Vec<(String, String)> {
    targets
        .iter()
        .map(|t| {
            (
                t.route.to_string(),
                format!(
                    "{}{}",
                    t.destination.chat_id.as_str(),
                    match t.destination.thread() {
                        Thread::Chat => String::new(),
                        thread => format!("/{}", thread.key()),
                    }
                ),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

// ---- Reading a route ----

#[test]
fn the_issues_example_reads_with_every_field() {
    let s = RouteSpec::parse(FULL.as_bytes()).expect("valid");
    assert_eq!(s.position, 10);
    assert_eq!(
        s.conditions.source,
        Set::of(&[Source::Poll, Source::Notify])
    );
    assert_eq!(s.conditions.project, Some(glob("api-*")));
    assert_eq!(s.conditions.outcome, Set::of(&[Outcome::Failure]));
    assert!(s.and_continue);
    assert_eq!(
        s.pace,
        Pace {
            per_second: 2,
            per_minute: 40,
            digest_threshold: 8
        }
    );
    let [first, second] = s.destinations.as_slice() else {
        panic!("two destinations: {:?}", s.destinations);
    };
    assert_eq!(first.thread(), Thread::Forum(42));
    assert!(first.silent && first.link_preview);
    assert_eq!(first.template.as_deref(), Some("<b>{{project}}</b> failed"));
    // Channel names ignore case in Telegram: one chat, one key.
    assert_eq!(second.chat_id.as_str(), "@deploys_channel");
    assert_eq!(second.thread(), Thread::Auto);
    assert_eq!(second.thread().key(), "auto");
    assert!(!second.silent && !second.link_preview);
}

#[test]
fn a_bare_route_takes_the_defaults() {
    let s = spec(json!({"destinations": [{"chat_id": -100123}]}));
    assert_eq!(s.position, 100);
    assert_eq!(s.conditions, Match::default());
    assert!(!s.and_continue);
    assert_eq!(
        s.pace,
        Pace {
            per_second: 1,
            per_minute: 20,
            digest_threshold: 5
        }
    );
    let d = &s.destinations[0];
    assert_eq!(d.chat_id.as_str(), "-100123", "a number is kept as text");
    assert_eq!(
        (d.thread(), d.thread().key()),
        (Thread::Chat, String::new())
    );
    assert_eq!(*d, Destination::chat(ChatId::parse("-100123").expect("id")));
    // A pace with some fields takes the defaults for the others.
    let s = spec(json!({"destinations": [{"chat_id": 5}], "pace": {"per_minute": 30}}));
    assert_eq!((s.pace.per_second, s.pace.digest_threshold), (1, 5));
}

#[test]
fn source_and_outcome_lists_are_sets() {
    let s = spec(json!({"match": {"source": ["poll", "notify", "poll"]},
                        "destinations": [{"chat_id": "1"}]}));
    assert!(s.conditions.source.contains(Source::Poll));
    assert!(!s.conditions.source.contains(Source::Deploy));
    assert_eq!(
        serde_json::to_value(&s.conditions).expect("writes"),
        json!({"source": ["notify", "poll"]}),
        "in the order of the names, once each"
    );
}

#[test]
fn source_and_outcome_take_one_name_for_a_list_of_one() {
    let s = spec(
        json!({"match": {"source": "deploy", "outcome": "in_progress"},
                        "destinations": [{"chat_id": "1"}]}),
    );
    assert_eq!(s.conditions.source, Set::of(&[Source::Deploy]));
    assert_eq!(s.conditions.outcome, Set::of(&[Outcome::InProgress]));
}

#[test]
fn unknown_fields_are_refused_at_every_level() {
    assert_eq!(
        bad(r#"{"match": {"projekt": "api"}, "destinations": [{"chat_id": 1}]}"#),
        "match.projekt: unknown field `projekt`, expected one of `source`, `project`, `environment`, `branch`, `outcome`"
    );
    assert_eq!(
        bad(r#"{"destinations": [{"chat_id": 1}], "order": 3}"#),
        "order: unknown field `order`, expected one of `position`, `match`, `destinations`, `continue`, `pace`"
    );
    assert_eq!(
        bad(r#"{"destinations": [{"chat_id": 1}, {"chat_id": 2, "thread_id": 4}]}"#),
        "destinations[1].thread_id: unknown field `thread_id`, expected one of `chat_id`, `message_thread_id`, `topic`, `silent`, `link_preview`, `template`"
    );
    assert_eq!(
        bad(r#"{"destinations": [{"chat_id": 1}], "pace": {"per_hour": 3}}"#),
        "pace.per_hour: unknown field `per_hour`, expected one of `per_second`, `per_minute`, `digest_threshold`"
    );
}

#[test]
fn invalid_globs_name_the_field_and_the_problem() {
    let with = |field: &str, pattern: &str| {
        bad(&json!({"match": {field: pattern}, "destinations": [{"chat_id": 1}]}).to_string())
    };
    assert_eq!(
        with("project", "api-[ab"),
        "match.project: invalid glob: unclosed ["
    );
    assert_eq!(
        with("environment", ""),
        "match.environment: invalid glob: empty"
    );
    assert_eq!(
        with("branch", "release\\"),
        "match.branch: invalid glob: trailing \\"
    );
    assert_eq!(
        with("project", "x[]"),
        "match.project: invalid glob: empty class"
    );
    assert_eq!(
        with("project", "x[!]"),
        "match.project: invalid glob: empty class"
    );
    assert_eq!(
        with("project", "[z-a]"),
        "match.project: invalid glob: reversed range z-a"
    );
    assert_eq!(
        with("project", &"a".repeat(256)),
        "match.project: invalid glob: longer than 255 characters"
    );
    assert_eq!(
        bad(r#"{"match": {"project": 7}, "destinations": [{"chat_id": 1}]}"#),
        "match.project: invalid type: integer `7`, expected a string"
    );
}

#[test]
fn malformed_chat_ids_are_refused() {
    for chat in [
        json!("abc"),
        json!("@abcd"),
        json!(format!("@{}", "a".repeat(33))),
        json!("@with-dash"),
        json!("0"),
        json!("-"),
        json!("-0123"),
        json!("12a"),
        json!("+123"),
        json!(" 123"),
        json!("12345678901234567"),
        json!(""),
        json!(0),
        json!(1.5),
        json!(true),
        json!(null),
        json!(["1"]),
    ] {
        assert_eq!(
            bad(&json!({"destinations": [{"chat_id": 1}, {"chat_id": chat}]}).to_string()),
            "destinations[1].chat_id: must be a number or @channel name",
            "{chat}"
        );
    }
    for ok in ["12345", "-1001234567890", "@abcde", "@under_score_9"] {
        assert!(ChatId::parse(ok).is_ok(), "{ok}");
    }
    assert_eq!(
        bad(r#"{"destinations": [{"silent": true}]}"#),
        "destinations[0]: missing field `chat_id`"
    );
}

#[test]
fn a_destination_names_a_topic_one_way_only() {
    for id in [json!(0), json!(-3), json!("42"), json!(1.5)] {
        assert_eq!(
            bad(&json!({"destinations": [{"chat_id": 1, "message_thread_id": id}]}).to_string()),
            "destinations[0].message_thread_id: must be a whole number above 0",
            "{id}"
        );
    }
    assert_eq!(
        bad(r#"{"destinations": [{"chat_id": 1, "topic": "manual"}]}"#),
        "destinations[0].topic: unknown variant `manual`, expected `auto`"
    );
    assert_eq!(
        bad(
            r#"{"destinations": [{"chat_id": 1}, {"chat_id": 1, "message_thread_id": 4, "topic": "auto"}]}"#
        ),
        "destinations[1].topic: not with message_thread_id (one or the other)"
    );
}

#[test]
fn a_route_has_one_to_ten_destinations() {
    assert_eq!(bad(r#"{"position": 1}"#), "missing field `destinations`");
    assert_eq!(
        bad(r#"{"destinations": []}"#),
        "destinations: must list 1 to 10 destinations"
    );
    let eleven: Vec<_> = (1..=11).map(|n| json!({"chat_id": n})).collect();
    assert_eq!(
        bad(&json!({ "destinations": eleven }).to_string()),
        "destinations: must list 1 to 10 destinations"
    );
    let ten: Vec<_> = (1..=10).map(|n| json!({"chat_id": n})).collect();
    assert_eq!(spec(json!({ "destinations": ten })).destinations.len(), 10);
}

#[test]
fn position_pace_and_lists_stay_in_their_ranges() {
    let with = |extra: serde_json::Value| {
        let mut body = json!({"destinations": [{"chat_id": 1}]});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        bad(&body.to_string())
    };
    assert_eq!(
        with(json!({"position": 1_000_001})),
        "position: must be 0 to 1000000"
    );
    assert_eq!(
        with(json!({"position": -1})),
        "position: invalid value: integer `-1`, expected u32"
    );
    assert_eq!(
        with(json!({"pace": {"per_second": 0}})),
        "pace.per_second: must be 1 to 30"
    );
    assert_eq!(
        with(json!({"pace": {"per_second": 31}})),
        "pace.per_second: must be 1 to 30"
    );
    assert_eq!(
        with(json!({"pace": {"per_minute": 1801}})),
        "pace.per_minute: must be 1 to 1800"
    );
    assert_eq!(
        with(json!({"pace": {"per_second": 5, "per_minute": 4}})),
        "pace.per_minute: must be at least per_second (5)"
    );
    assert_eq!(
        with(json!({"pace": {"digest_threshold": 1}})),
        "pace.digest_threshold: must be 2 to 100"
    );
    assert_eq!(
        with(json!({"pace": {"digest_threshold": 101}})),
        "pace.digest_threshold: must be 2 to 100"
    );
    assert_eq!(
        with(json!({"match": {"source": "cron"}})),
        "match.source: unknown variant `cron`, expected one of `notify`, `poll`, `deploy`, `preview`, `workflow`"
    );
    assert_eq!(
        with(json!({"match": {"outcome": ["failure", "crashed"]}})),
        "match.outcome[1]: unknown variant `crashed`, expected one of `success`, `failure`, `in_progress`"
    );
    assert_eq!(
        with(json!({"match": {"source": []}})),
        "match.source: must name at least one (leave it out to match any)"
    );
    assert_eq!(
        with(json!({"continue": "yes"})),
        "continue: invalid type: string \"yes\", expected a boolean"
    );
    assert_eq!(
        spec(
            json!({"position": 1_000_000, "destinations": [{"chat_id": 1}],
                    "pace": {"per_second": 30, "per_minute": 1800, "digest_threshold": 100}})
        )
        .position,
        1_000_000
    );
}

#[test]
fn a_body_that_is_no_route_at_all() {
    assert_eq!(bad("[]"), "body must be a JSON object describing the route");
    assert!(bad("{").starts_with("malformed JSON: EOF while parsing an object"));
}

#[test]
fn templates_are_checked_when_the_route_is_saved() {
    let text = "<b>{{no_such_field}}</b>";
    let body = json!({"destinations": [{"chat_id": 1}, {"chat_id": 2, "template": text}]});
    assert_eq!(
        bad(&body.to_string()),
        "destinations[1].template: unknown field {{no_such_field}}"
    );
    let fine = json!({"destinations": [{"chat_id": 2, "template": "<b>{{project}}</b> is live"}]});
    assert!(RouteSpec::parse(fine.to_string().as_bytes()).is_ok());
}

#[test]
fn route_names_are_url_path_segments() {
    for ok in ["a", "0", "team-api.prod_2", &"x".repeat(64)] {
        assert!(RouteName::parse(ok).is_ok(), "{ok}");
    }
    for no in [
        "",
        "Api",
        "-x",
        ".x",
        "a/b",
        "app:api",
        "a b",
        &"x".repeat(65),
    ] {
        assert_eq!(RouteName::parse(no), Err(RouteError::Name), "{no}");
    }
    // The default route's name stays its own in the delivery log.
    assert_eq!(RouteName::parse("default"), Err(RouteError::Reserved));
    assert_eq!(
        RouteError::Reserved.to_string(),
        "route name default is taken by the default route (TELEGRAM_CHAT_ID)"
    );
}

#[test]
fn route_errors_are_400s_with_their_text() {
    let e = ApiError::from(
        RouteSpec::parse(br#"{"destinations": [{"chat_id": "x"}]}"#).expect_err("bad"),
    );
    assert_eq!(e.status(), 400);
    assert_eq!(
        e.body(),
        r#"{"success":false,"error":"destinations[0].chat_id: must be a number or @channel name"}"#
    );
    let e = ApiError::from(RouteName::parse("Nope").expect_err("bad"));
    assert_eq!(e.status(), 400);
    assert!(e.to_string().starts_with("route name must be"));
}

#[test]
fn a_route_reads_back_what_it_writes() {
    let s = RouteSpec::parse(FULL.as_bytes()).expect("valid");
    let written = serde_json::to_string(&s).expect("writes");
    assert_eq!(json::read::<RouteSpec>(&written).expect("reads back"), s);
    // Defaults and empty lists are written too, or left out, and read back the same.
    let bare = spec(json!({"destinations": [{"chat_id": "@abcdef"}]}));
    let written = serde_json::to_value(&bare).expect("writes");
    assert_eq!(
        written,
        json!({"position": 100, "match": {}, "destinations": [{"chat_id": "@abcdef",
               "silent": false, "link_preview": false}], "continue": false,
               "pace": {"per_second": 1, "per_minute": 20, "digest_threshold": 5}})
    );
    assert_eq!(
        json::from_value::<RouteSpec>(&written).expect("reads back"),
        bare
    );
}

// ---- Globs ----

#[test]
fn plain_text_matches_exactly_and_case_sensitively() {
    let g = glob("api");
    assert!(g.matches("api"));
    assert!(!g.matches("API"));
    assert!(!g.matches("api-2"));
    assert!(!g.matches("ap"));
    assert!(!g.matches(""));
}

#[test]
fn stars_and_question_marks() {
    assert!(glob("*").matches(""));
    assert!(glob("*").matches("anything/at all"));
    assert!(glob("api-*").matches("api-"));
    assert!(glob("api-*").matches("api-payments"));
    assert!(!glob("api-*").matches("web-api-x"));
    assert!(
        glob("release/*").matches("release/1.2/hotfix"),
        "* spans slashes"
    );
    assert!(!glob("release/*").matches("release"));
    assert!(glob("*-prod").matches("eu-west-prod"));
    assert!(glob("a**b").matches("ab"));
    assert!(glob("*a*b*").matches("xxaxxbxx"));
    assert!(!glob("*a*b*").matches("xxbxxaxx"));
    assert!(glob("pr-?").matches("pr-7"));
    assert!(!glob("pr-?").matches("pr-"));
    assert!(!glob("pr-?").matches("pr-17"));
    assert!(
        glob("caf?").matches("café"),
        "? is one character, not one byte"
    );
    assert!(glob("?😀?").matches("a😀b"));
}

#[test]
fn classes_ranges_negation_and_escapes() {
    assert!(glob("[abc]x").matches("bx"));
    assert!(!glob("[abc]x").matches("dx"));
    assert!(glob("v[0-9].[0-9]").matches("v1.5"));
    assert!(!glob("v[0-9]").matches("vx"));
    assert!(glob("[!x]").matches("y"));
    assert!(!glob("[!x]").matches("x"));
    assert!(!glob("[!x]").matches(""));
    assert!(glob("[a-cx-z]").matches("y"));
    assert!(glob("[a-]").matches("-"), "a dash before ] is itself");
    assert!(glob("[-a]").matches("-"));
    assert!(glob("[!!]").matches("a"));
    assert!(!glob("[!!]").matches("!"));
    assert!(glob("[\\]]").matches("]"));
    assert!(glob("[a\\-z]").matches("-"));
    assert!(!glob("[a\\-z]").matches("m"));
    assert!(glob("[é-ë]").matches("ê"));
    assert!(glob("\\*").matches("*"));
    assert!(!glob("\\*").matches("x"));
    assert!(glob("what\\?").matches("what?"));
    assert!(glob("\\[x]").matches("[x]"));
    assert!(glob("]").matches("]"), "a lone ] is itself");
    assert_eq!(Glob::parse("[a"), Err(GlobError::UnclosedClass));
    assert_eq!(Glob::parse("[a\\"), Err(GlobError::UnclosedClass));
    assert_eq!(Glob::parse("[a-\\"), Err(GlobError::UnclosedClass));
    assert_eq!(Glob::parse(&"é".repeat(255)).map(|g| g.text.len()), Ok(510));
}

#[test]
fn an_exact_glob_matches_only_its_text() {
    let g = Glob::exact("a*b[1]?\\");
    assert!(g.matches("a*b[1]?\\"));
    assert!(!g.matches("axb1?\\"));
    assert_eq!(g.as_str(), r"a\*b\[1\]\?\\");
    assert_eq!(glob(g.as_str()), g);
    assert!(glob(g.as_str()).matches("a*b[1]?\\"));
}

#[test]
fn patterns_that_make_backtracking_matchers_explode_are_fast() {
    let long = "a".repeat(100_000);
    let started = Instant::now();
    assert!(!glob("a*a*a*a*a*b").matches(&long));
    assert!(!glob("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b").matches(&long));
    assert!(glob("a*a*a*a*a*a").matches(&long));
    assert!(!glob(&"*?".repeat(100)).matches(&"a".repeat(99)));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

// ---- Resolving ----

#[test]
fn the_first_matching_route_wins() {
    let routes = [
        route("api", json!({"project": "api-*"}), "-1001"),
        route("api-again", json!({"project": "api-payments"}), "-1002"),
        route("web", json!({"project": "web"}), "-1003"),
    ];
    let s = subject(Source::Notify, "api-payments", Outcome::Success);
    assert_eq!(sent_to(&resolve(&routes, &s)), pairs(&[("api", "-1001")]));
    let s = subject(Source::Notify, "web", Outcome::Success);
    assert_eq!(sent_to(&resolve(&routes, &s)), pairs(&[("web", "-1003")]));
    let s = subject(Source::Notify, "docs", Outcome::Success);
    assert!(resolve(&routes, &s).is_empty(), "no route");
    assert!(resolve(&[], &s).is_empty(), "no route");
}

#[test]
fn a_route_that_continues_lets_later_matching_routes_add_theirs() {
    let mut all = route("everything", json!({}), "-1000");
    all.spec.and_continue = true;
    let routes = [
        all,
        route("web", json!({"project": "web"}), "-1003"),
        route("api", json!({"project": "api-*"}), "-1001"),
        route("api-too", json!({"project": "api-*"}), "-1002"),
    ];
    let s = subject(Source::Poll, "api-x", Outcome::Success);
    assert_eq!(
        sent_to(&resolve(&routes, &s)),
        pairs(&[("everything", "-1000"), ("api", "-1001")]),
        "api does not continue, so api-too adds nothing"
    );
}

#[test]
fn outcome_source_and_environment_filters() {
    let routes = [
        route(
            "prod-failures",
            json!({"environment": "prod*", "outcome": ["failure"]}),
            "-1001",
        ),
        route(
            "deploys",
            json!({"source": ["deploy", "workflow"]}),
            "-1002",
        ),
        route("rest", json!({}), "-1003"),
    ];
    let mut s = subject(Source::Notify, "api", Outcome::Failure);
    assert_eq!(sent_to(&resolve(&routes, &s))[0].0, "prod-failures");
    s.outcome = Outcome::Success;
    assert_eq!(sent_to(&resolve(&routes, &s))[0].0, "rest");
    s.outcome = Outcome::Failure;
    s.environment = Some("staging");
    assert_eq!(sent_to(&resolve(&routes, &s))[0].0, "rest");
    s.source = Source::Workflow;
    assert_eq!(sent_to(&resolve(&routes, &s))[0].0, "deploys");
    s.environment = None;
    s.source = Source::Notify;
    assert_eq!(
        sent_to(&resolve(&routes, &s))[0].0,
        "rest",
        "no environment: an environment glob does not match"
    );
}

#[test]
fn a_branch_glob_does_not_match_a_notification_without_a_branch() {
    let routes = [
        route("releases", json!({"branch": "release/*"}), "-1001"),
        route("rest", json!({}), "-1002"),
    ];
    let mut s = subject(Source::Notify, "api", Outcome::Success);
    s.branch = Some("release/2.0");
    assert_eq!(sent_to(&resolve(&routes, &s))[0].0, "releases");
    s.branch = None;
    assert_eq!(sent_to(&resolve(&routes, &s))[0].0, "rest");
    s.branch = Some("main");
    assert_eq!(sent_to(&resolve(&routes, &s))[0].0, "rest");
}

#[test]
fn a_chat_and_thread_get_a_notification_once() {
    let first = Route {
        name: RouteId::Stored(RouteName::parse("first").expect("name")),
        spec: spec(
            json!({"continue": true, "pace": {"per_minute": 30}, "destinations": [
                {"chat_id": -1001, "silent": true},
                {"chat_id": "-1001", "message_thread_id": 7},
                {"chat_id": "-1001"}
            ]}),
        ),
    };
    let second = Route {
        name: RouteId::Stored(RouteName::parse("second").expect("name")),
        spec: spec(json!({"destinations": [
            {"chat_id": "-1001", "message_thread_id": 7},
            {"chat_id": "-1001", "topic": "auto"},
            {"chat_id": "-1002"}
        ]})),
    };
    let routes = [first, second];
    let targets = resolve(&routes, &subject(Source::Notify, "api", Outcome::Success));
    assert_eq!(
        sent_to(&targets),
        pairs(&[
            ("first", "-1001"),
            ("first", "-1001/7"),
            ("second", "-1001/auto"),
            ("second", "-1002"),
        ])
    );
    assert!(targets[0].destination.silent, "the first one wins");
    assert_eq!(targets[0].pace.per_minute, 30, "with its route's pace");
    assert_eq!(targets[3].pace, Pace::default());
}

#[test]
fn app_shorthands_and_the_default_route_come_last() {
    let chat = |s: &str| ChatId::parse(s).expect("chat id");
    let api = AppName::parse("api").expect("app name");
    let routes = [
        route("failures", json!({"outcome": "failure"}), "-1001"),
        Route::for_app(&api, chat("-2002")),
        Route::default_route(chat("-3003")),
    ];
    let ok = Outcome::Success;
    for (s, expected) in [
        (
            subject(Source::Deploy, "api", Outcome::Failure),
            ("failures", "-1001"),
        ),
        (subject(Source::Deploy, "api", ok), ("app:api", "-2002")),
        (subject(Source::Preview, "api", ok), ("app:api", "-2002")),
        (subject(Source::Workflow, "api", ok), ("app:api", "-2002")),
        (subject(Source::Deploy, "api-2", ok), ("default", "-3003")),
        (subject(Source::Notify, "api", ok), ("default", "-3003")),
        (subject(Source::Poll, "web", ok), ("default", "-3003")),
    ] {
        assert_eq!(sent_to(&resolve(&routes, &s)), pairs(&[expected]), "{s:?}");
    }
    assert_eq!(
        serde_json::to_value(&routes[1]).expect("writes")["name"],
        "app:api"
    );
}

#[test]
fn notify_sources_are_route_sources() {
    assert_eq!(Source::from(crate::notify::Source::Hook), Source::Notify);
    assert_eq!(Source::from(crate::notify::Source::Poll), Source::Poll);
}

// ---- The store ----

#[test]
fn the_store_keeps_routes_in_the_order_they_are_tried() {
    let db = SqliteSql::migrated();
    let store = RouteStore::new(&db);
    let name = |s: &str| RouteName::parse(s).expect("name");
    let full = RouteSpec::parse(FULL.as_bytes()).expect("valid");
    let at = Timestamp::from_millis;
    block_on(async {
        assert!(store
            .put(&name("zeta"), &full, at(1000))
            .await
            .expect("put"));
        let mut later = spec(json!({"position": 20, "destinations": [{"chat_id": 1}]}));
        assert!(store
            .put(&name("alpha"), &later, at(1000))
            .await
            .expect("put"));
        assert!(store
            .put(&name("beta"), &later, at(1000))
            .await
            .expect("put"));

        let listed = store.list().await.expect("list");
        let names: Vec<String> = listed.iter().map(|r| r.name.to_string()).collect();
        assert_eq!(names, ["zeta", "alpha", "beta"], "by position, then name");
        assert_eq!(listed[0].spec, full, "read back as written");

        later.position = 5;
        assert!(
            !store
                .put(&name("beta"), &later, at(2000))
                .await
                .expect("put"),
            "replaced"
        );
        let beta = store.get(&name("beta")).await.expect("get").expect("there");
        assert_eq!(beta.spec.position, 5);
        let names: Vec<String> = store
            .list()
            .await
            .expect("list")
            .iter()
            .map(|r| r.name.to_string())
            .collect();
        assert_eq!(names, ["beta", "zeta", "alpha"]);

        assert!(store.delete(&name("zeta")).await.expect("delete"));
        assert!(!store.delete(&name("zeta")).await.expect("delete"));
        assert_eq!(store.get(&name("zeta")).await.expect("get"), None);
    });
    let times: (i64, i64) = db
        .conn_for_tests()
        .query_row(
            "SELECT created_at, updated_at FROM telegram_routes WHERE name = 'beta'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("row");
    assert_eq!(
        times,
        (1000, 2000),
        "a replaced route keeps its creation time"
    );
}

#[test]
fn a_stored_route_shows_its_name_beside_its_definition() {
    let db = SqliteSql::migrated();
    let store = RouteStore::new(&db);
    let name = RouteName::parse("ops").expect("name");
    let s = spec(json!({"match": {"project": "api"}, "destinations": [{"chat_id": 5}]}));
    let shown = block_on(async {
        store
            .put(&name, &s, Timestamp::from_millis(1))
            .await
            .expect("put");
        store.get(&name).await.expect("get").expect("there")
    });
    assert_eq!(
        serde_json::to_value(&shown).expect("writes"),
        json!({"name": "ops", "position": 100, "match": {"project": "api"},
               "destinations": [{"chat_id": "5", "silent": false, "link_preview": false}],
               "continue": false, "pace": {"per_second": 1, "per_minute": 20, "digest_threshold": 5}})
    );
}

#[test]
fn a_corrupt_stored_definition_is_a_row_error() {
    let db = SqliteSql::migrated();
    db.conn_for_tests()
        .execute(
            "INSERT INTO telegram_routes VALUES ('bad', 1, '{\"destinations\": [{\"chat_id\": \"x\"}]}', 0, 0)",
            [],
        )
        .expect("insert");
    let err = block_on(RouteStore::new(&db).list()).expect_err("corrupt");
    assert_eq!(
        err,
        StoreError::Row(
            "route bad: destinations[0].chat_id: must be a number or @channel name".into()
        )
    );
}

// ---- Never a panic ----

/// Strings made mostly of what globs treat specially.
fn globby() -> impl Strategy<Value = String> {
    let chars = prop::sample::select(vec![
        '*', '?', '[', ']', '!', '-', '\\', 'a', 'b', 'z', 'é', '😀', '/',
    ]);
    prop_oneof![
        prop::collection::vec(chars, 0..40).prop_map(String::from_iter),
        any::<String>(),
    ]
}

proptest! {
    #[test]
    fn parsing_and_matching_globs_never_panic(pattern in globby(), text in globby()) {
        if let Ok(g) = Glob::parse(&pattern) {
            let _ = g.matches(&text);
            let _ = g.matches(&pattern);
            prop_assert_eq!(g.as_str(), pattern.as_str());
        }
    }

    #[test]
    fn an_exact_glob_matches_its_text_and_reads_back(text in "\\PC{1,80}") {
        let g = Glob::exact(&text);
        prop_assert!(g.matches(&text));
        let parsed = Glob::parse(g.as_str());
        prop_assert!(parsed.as_ref().is_ok_and(|p| p.matches(&text)), "{:?}", parsed);
    }

    #[test]
    fn route_bodies_of_arbitrary_bytes_never_panic(body in any::<Vec<u8>>()) {
        let _ = RouteSpec::parse(&body);
    }

    #[test]
    fn chat_ids_and_route_names_never_panic(s in any::<String>()) {
        let _ = ChatId::parse(&s);
        let _ = RouteName::parse(&s);
    }
}

// ---- The admin API ----

#[test]
fn the_admin_api_creates_replaces_shows_and_deletes_a_route() {
    let db = SqliteSql::migrated();
    let name = || RouteName::parse("ops").expect("name");
    let at = Timestamp::from_millis(1);
    let call = |c| block_on(answer(&db, c, at));
    let body = br#"{"match": {"source": "deploy"}, "destinations": [{"chat_id": -100}]}"#.to_vec();
    let shown = json!({"name": "ops", "position": 100, "match": {"source": ["deploy"]},
        "destinations": [{"chat_id": "-100", "silent": false, "link_preview": false}],
        "continue": false, "pace": {"per_second": 1, "per_minute": 20, "digest_threshold": 5}});

    assert_eq!(
        call(RoutesCall::Put(name(), body.clone())),
        Ok((201, json!({"success": true, "route": shown})))
    );
    assert_eq!(
        call(RoutesCall::Put(name(), body)),
        Ok((200, json!({"success": true, "route": shown})))
    );
    assert_eq!(
        call(RoutesCall::Get(name())),
        Ok((200, json!({"success": true, "route": shown})))
    );
    assert_eq!(
        call(RoutesCall::List),
        Ok((200, json!({"success": true, "routes": [shown]})))
    );
    let refused =
        call(RoutesCall::Put(name(), br#"{"destinations": []}"#.to_vec())).expect_err("invalid");
    assert_eq!(
        ApiError::from(refused),
        ApiError::BadRequest("destinations: must list 1 to 10 destinations".into())
    );
    assert_eq!(
        call(RoutesCall::Delete(name())),
        Ok((200, json!({"success": true, "message": "Deleted"})))
    );
    assert_eq!(
        call(RoutesCall::Delete(name())),
        Err(RoutesApiError::NotFound)
    );
    assert_eq!(call(RoutesCall::Get(name())), Err(RoutesApiError::NotFound));
    assert_eq!(
        call(RoutesCall::List),
        Ok((200, json!({"success": true, "routes": []})))
    );
    assert_eq!(
        ApiError::from(RoutesApiError::Store(StoreError::Driver("D1 down".into()))),
        ApiError::Unavailable,
        "the detail is for the log"
    );
}
