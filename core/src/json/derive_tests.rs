//! One test per feature of `#[derive(FromJson)]` and `#[derive(Names)]`, and round
//! trips of the public config types that put a non-empty value in every optional
//! field: a key renamed in one direction only reads back as `None` and fails.
//! (`PreviewSettings` and `App` have theirs beside them: preview/tests.rs, apps/tests.rs.)

use std::collections::BTreeMap;
use std::fmt::Debug;

use serde::Serialize;
use serde_json::{json, Value};

use crate::json::{self, from_value, read, FromJson, Invalid, Kind, Names, Path};

fn err<T: FromJson + Debug>(v: Value) -> Invalid {
    from_value::<T>(&v).expect_err("invalid")
}

#[derive(Debug, PartialEq, Serialize, FromJson)]
#[serde(rename_all = "camelCase")]
struct Renamed {
    project_name: String,
    #[serde(rename = "isCI", skip_serializing_if = "Option::is_none")]
    is_ci: Option<bool>,
    #[serde(default)]
    tags: Vec<u32>,
}

#[test]
fn keys_follow_serdes_rename_all_and_rename_in_both_directions() {
    let x = Renamed {
        project_name: "api".into(),
        is_ci: Some(true),
        tags: vec![3],
    };
    let written = serde_json::to_value(&x).expect("writes");
    assert_eq!(
        written,
        json!({"projectName": "api", "isCI": true, "tags": [3]})
    );
    assert_eq!(from_value::<Renamed>(&written).expect("reads"), x);
}

#[test]
fn option_fields_may_be_absent_or_null_and_defaults_fill_in() {
    let read_back: Renamed =
        from_value(&json!({"projectName": "api", "isCI": null})).expect("reads");
    assert_eq!(read_back.is_ci, None);
    assert_eq!(read_back.tags, Vec::<u32>::new());
    let e = err::<Renamed>(json!({"isCI": true}));
    assert_eq!(e.kind, Kind::Missing);
    assert_eq!(e.to_string(), "missing field `projectName`");
}

fn seven() -> u32 {
    7
}

fn upper(v: &Value, at: Path<'_>) -> Result<String, Invalid> {
    let s = json::str_of(v, at, "a string")?;
    if s.chars().all(|c| c.is_ascii_uppercase()) {
        Ok(s.to_owned())
    } else {
        Err(Invalid::at(at, "must be upper case"))
    }
}

#[derive(Debug, PartialEq, FromJson)]
#[json(deny_unknown_fields)]
struct Checked {
    #[serde(default = "seven")]
    n: u32,
    #[json(with = "upper")]
    code: String,
    #[json(with = "upper")]
    alias: Option<String>,
    #[json(skip)]
    cache: Vec<u8>,
}

#[test]
fn default_functions_with_hooks_and_skipped_fields() {
    let c: Checked = from_value(&json!({"code": "AB"})).expect("reads");
    assert_eq!(
        c,
        Checked {
            n: 7,
            code: "AB".into(),
            alias: None,
            cache: vec![],
        }
    );
    let e = err::<Checked>(json!({"code": "ab"}));
    assert_eq!(
        (e.kind, e.to_string()),
        (Kind::Invalid, "code: must be upper case".into())
    );
    let e = err::<Checked>(json!({"code": "AB", "alias": "x"}));
    assert_eq!(e.to_string(), "alias: must be upper case");
    assert_eq!(err::<Checked>(json!({})).kind, Kind::Missing);
}

#[test]
fn deny_unknown_fields_names_the_field_and_what_is_known() {
    let e = err::<Checked>(json!({"code": "AB", "cache": [1]}));
    assert_eq!(e.kind, Kind::Unknown);
    assert_eq!(
        e.to_string(),
        "cache: unknown field `cache`, expected one of `n`, `code`, `alias`"
    );
    // Without it, unknown fields are ignored.
    assert!(from_value::<Renamed>(&json!({"projectName": "a", "x": 1})).is_ok());
}

#[derive(Debug, PartialEq, FromJson)]
#[serde(transparent)]
struct Plain(String);

#[derive(Debug, PartialEq, FromJson)]
#[json(try_from = "String")]
struct Even(String);

impl TryFrom<String> for Even {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.len().is_multiple_of(2) {
            Ok(Even(s))
        } else {
            Err(format!("{s:?} has an odd length"))
        }
    }
}

#[test]
fn newtypes_read_through_or_validate() {
    assert_eq!(
        from_value::<Plain>(&json!("x")).expect("reads"),
        Plain("x".into())
    );
    assert_eq!(
        from_value::<Even>(&json!("ab")).expect("reads"),
        Even("ab".into())
    );
    let e = err::<Even>(json!("abc"));
    assert_eq!(
        (e.kind, e.to_string()),
        (Kind::Invalid, "\"abc\" has an odd length".into())
    );
    assert_eq!(
        err::<Even>(json!(5)).to_string(),
        "invalid type: integer `5`, expected a string"
    );
}

#[derive(Debug, PartialEq, Serialize, FromJson)]
#[serde(tag = "op", rename_all = "snake_case")]
#[json(deny_unknown_fields)]
enum Op {
    InsertBefore {
        marker: String,
        #[serde(default)]
        content: String,
    },
    #[serde(rename = "rm")]
    Remove {
        #[serde(skip_serializing_if = "Option::is_none")]
        path: Option<String>,
    },
    Noop,
}

#[test]
fn internally_tagged_enums_read_their_tag_and_only_their_fields() {
    for op in [
        Op::InsertBefore {
            marker: "m".into(),
            content: "c".into(),
        },
        Op::Remove {
            path: Some("p".into()),
        },
        Op::Noop,
    ] {
        let written = serde_json::to_value(&op).expect("writes");
        assert_eq!(from_value::<Op>(&written).expect("reads back"), op);
    }
    assert_eq!(
        err::<Op>(json!({"op": "copy"})).to_string(),
        "op: unknown variant `copy`, expected one of `insert_before`, `rm`, `noop`"
    );
    assert_eq!(
        err::<Op>(json!({"op": "rm", "marker": "m"})).to_string(),
        "marker: unknown field `marker`, expected `op` or `path`"
    );
    assert_eq!(err::<Op>(json!({"marker": "m"})).kind, Kind::Missing);
}

#[derive(Debug, PartialEq, Serialize, FromJson)]
#[serde(rename_all = "snake_case")]
enum Event {
    Ping { hook_id: Option<u64> },
    PullRequest(Plain2),
}

#[derive(Debug, PartialEq, Serialize, FromJson)]
struct Plain2 {
    number: u64,
}

#[test]
fn externally_tagged_enums_read_one_key() {
    for e in [
        Event::Ping { hook_id: Some(3) },
        Event::PullRequest(Plain2 { number: 9 }),
    ] {
        let written = serde_json::to_value(&e).expect("writes");
        assert_eq!(from_value::<Event>(&written).expect("reads back"), e);
    }
    assert_eq!(
        err::<Event>(json!({"pull_request": {}})).to_string(),
        "pull_request: missing field `number`"
    );
    assert_eq!(
        err::<Event>(json!({"ping": {}, "push": {}})).to_string(),
        "invalid value: map, expected map with a single key"
    );
    assert_eq!(
        err::<Event>(json!({"push": {}})).to_string(),
        "unknown variant `push`, expected `ping` or `pull_request`"
    );
}

#[derive(Debug, PartialEq, FromJson)]
struct Wrapper<T> {
    result: Option<T>,
}

#[test]
fn generic_types_read_their_parameters() {
    let w: Wrapper<u8> = from_value(&json!({"result": 4})).expect("reads");
    assert_eq!(w, Wrapper { result: Some(4) });
    assert_eq!(
        err::<Wrapper<u8>>(json!({"result": 300})).to_string(),
        "result: invalid value: integer `300`, expected u8"
    );
}

#[derive(Debug, Clone, Copy, PartialEq, Names)]
#[serde(rename_all = "snake_case")]
enum Colour {
    DeepRed,
    #[serde(rename = "blu")]
    Blue,
}

#[test]
fn unit_enums_have_one_table_of_names() {
    assert_eq!(Colour::NAMES, &["deep_red", "blu"]);
    assert_eq!(Colour::from_index(1), Colour::Blue);
    assert_eq!(Colour::DeepRed.as_str(), "deep_red");
    assert_eq!(Colour::parse("blu"), Some(Colour::Blue));
    assert_eq!(Colour::parse("Blue"), None);
    assert_eq!(
        serde_json::to_string(&Colour::Blue).expect("writes"),
        "\"blu\""
    );
    assert_eq!(
        read::<Colour>("\"deep_red\"").expect("reads"),
        Colour::DeepRed
    );
    assert_eq!(
        read::<Colour>("\"red\"").expect_err("unknown").to_string(),
        "unknown variant `red`, expected `deep_red` or `blu`"
    );
}

fn round_trip<T: Serialize + FromJson + PartialEq + Debug>(x: &T) {
    let text = serde_json::to_string(x).expect("serialises");
    assert_eq!(&read::<T>(&text).expect("reads back"), x, "{text}");
}

#[test]
fn notify_bodies_round_trip_with_every_field_set() {
    use crate::notify::{DeploymentPayload, NotifyRequest};
    let some = |s: &str| Some(s.to_owned());
    round_trip(&NotifyRequest {
        deployment: DeploymentPayload {
            kind: some("pages"),
            project_name: some("site"),
            deployment_id: some("d1"),
            branch: some("main"),
            commit_hash: some("abcdef1"),
            commit_message: some("fix"),
            author: some("ann"),
            timestamp: some("2026-01-01T00:00:00Z"),
            environment: some("production"),
            is_ci: Some(true),
            url: some("https://site.pages.dev"),
        },
    });
}

#[test]
fn workflow_definitions_round_trip_with_every_field_set() {
    use crate::orchestrate::definition::{
        Action, Definition, FileChange, MergeMethod, StepDef, StepId,
    };
    let id = |s: &str| StepId::parse(s).expect("step id");
    let step = |name: &str, action| StepDef {
        id: id(name),
        after: vec![id("first")],
        timeout_minutes: Some(30),
        action,
    };
    round_trip(&Definition {
        steps: vec![
            step(
                "open",
                Action::OpenPr {
                    repository: "acme/infra".into(),
                    branch: "b".into(),
                    title: "t".into(),
                    body: "body".into(),
                    files: vec![
                        FileChange::Create {
                            path: "a".into(),
                            content: "c".into(),
                        },
                        FileChange::Append {
                            path: "b".into(),
                            content: "c".into(),
                        },
                        FileChange::InsertBefore {
                            path: "c".into(),
                            marker: "m".into(),
                            content: "c".into(),
                        },
                    ],
                },
            ),
            step(
                "merge",
                Action::EnableAutoMerge {
                    pr: id("open"),
                    merge_method: MergeMethod::Rebase,
                },
            ),
            step("wait", Action::AwaitMerge { pr: id("open") }),
            step(
                "applied",
                Action::AwaitWorkflow {
                    merge: id("wait"),
                    workflow: "apply.yml".into(),
                },
            ),
            step(
                "dispatch",
                Action::DispatchWorkflow {
                    repository: "acme/boilerplate".into(),
                    workflow: "create.yml".into(),
                    git_ref: Some("release".into()),
                    inputs: BTreeMap::from([("name".to_owned(), "{name}".to_owned())]),
                },
            ),
        ],
    });
}

#[test]
fn service_requests_read_back_what_they_write() {
    use crate::orchestrate::definition::{OrchestrateConfig, ServiceRequest};
    let config = OrchestrateConfig::from_lookup(|k| match k {
        "ORCHESTRATE_OWNER" => Some("acme".into()),
        "SERVICE_TEMPLATES" => Some("api=template-api".into()),
        _ => None,
    })
    .expect("config");
    let body = br#"{"repositoryName": "pay", "serviceType": "api", "owningTeam": "core"}"#;
    let request = ServiceRequest::parse(body, &config).expect("valid");
    let written = serde_json::to_vec(&request).expect("writes");
    assert_eq!(
        ServiceRequest::parse(&written, &config).expect("reads back"),
        request
    );
}
