use super::*;
use crate::testing::{block_on, SqliteSql};

const WORKFLOW_APP: &str = r#"{"repository": "Codertocat/Hello-World", "production_branch": "master",
  "environment": "production", "deploy_on": "push", "health_url": "https://hello.example.com/health",
  "deploy": {"type": "github_workflow", "workflow": "deploy.yml", "inputs": {"sha": "{sha}"}}}"#;

fn bad(body: &str) -> String {
    match App::parse(body.as_bytes()) {
        Err(AppError::Invalid(m)) => m,
        other => panic!("expected 400, got {other:?}"),
    }
}

#[test]
fn valid_apps_of_each_target() {
    let app = App::parse(WORKFLOW_APP.as_bytes()).expect("valid");
    assert_eq!(
        app.deploy.as_ref().map(|d| d.deploy_on),
        Some(DeployOn::Push)
    );
    assert!(app.watches(
        &RepoFullName::parse("codertocat/hello-world").expect("repo"),
        "master"
    ));
    assert!(!app.watches(
        &RepoFullName::parse("codertocat/hello-world").expect("repo"),
        "main"
    ));
    let hook = r#"{"repository": "a/b", "production_branch": "main", "environment": "production", "deploy_on": "merge",
      "deploy": {"type": "deploy_hook", "url": "https://api.cloudflare.com/client/v4/pages/webhooks/deploy_hooks/x"}}"#;
    assert!(matches!(
        App::parse(hook.as_bytes())
            .expect("valid")
            .deploy
            .map(|d| d.target),
        Some(DeployTarget::DeployHook { .. })
    ));
    let fly = r#"{"repository": "a/b", "production_branch": "main", "environment": "production", "deploy_on": "push",
      "deploy": {"type": "fly", "app": "b-prod", "image": "registry.fly.io/b:{sha}"}}"#;
    assert!(matches!(
        App::parse(fly.as_bytes())
            .expect("valid")
            .deploy
            .map(|d| d.target),
        Some(DeployTarget::Fly { .. })
    ));
}

#[test]
fn errors_name_the_field() {
    assert!(bad("{").starts_with("malformed JSON: EOF while parsing an object"));
    assert_eq!(bad("[]"), "body must be a JSON object describing the app");
    assert!(bad(r#"{"production_branch": "main"}"#).starts_with("missing field `repository`"));
    assert!(bad(&WORKFLOW_APP.replace("Codertocat/Hello-World", "nope"))
        .starts_with("repository: \"nope\" is not owner/repo"));
    assert!(bad(&WORKFLOW_APP.replace("\"push\"", "\"tag\""))
        .starts_with("deploy_on: unknown variant `tag`"));
    let e = bad(&WORKFLOW_APP.replace("github_workflow", "ftp"));
    assert!(
        e.starts_with("deploy") && e.contains("unknown variant `ftp`"),
        "{e}"
    );
    assert_eq!(
        bad(&WORKFLOW_APP.replace("https://hello.example.com/health", "ftp://x")),
        "health_url must be an http(s) URL"
    );
    assert_eq!(
        bad(&WORKFLOW_APP.replace("\"master\"", "\"\"")),
        "production_branch must be 1 to 255 characters without spaces"
    );
    assert!(
        bad(&WORKFLOW_APP.replace("\"deploy_on\"", "\"deploy_onn\""))
            .starts_with("deploy_onn: unknown field `deploy_onn`")
    );
}

#[test]
fn the_store_round_trips() {
    let db = SqliteSql::migrated();
    let store = AppStore::new(&db);
    let name = AppName::parse("hello").expect("name");
    let app = App::parse(WORKFLOW_APP.as_bytes()).expect("valid");
    assert!(block_on(store.put(&name, &app, Timestamp::from_millis(1))).expect("put"));
    assert!(
        !block_on(store.put(&name, &app, Timestamp::from_millis(2))).expect("put"),
        "replaced, not created"
    );
    let got = block_on(store.get(&name)).expect("get").expect("exists");
    assert_eq!(got.app, app);
    assert_eq!((got.created_at, got.updated_at), (1, 2));
    let repo = RepoFullName::parse("CODERTOCAT/hello-world").expect("repo");
    assert_eq!(
        block_on(store.for_repository(&repo)).expect("query").len(),
        1
    );
    assert_eq!(block_on(store.list()).expect("list").len(), 1);
    assert!(block_on(store.delete(&name)).expect("delete"));
    assert!(!block_on(store.delete(&name)).expect("delete"));
    assert!(block_on(store.get(&name)).expect("get").is_none());
}

fn round_trip(app: &App) {
    let text = serde_json::to_string(app).expect("serialises");
    assert_eq!(&crate::json::read::<App>(&text).expect("reads back"), app);
}

#[test]
fn apps_round_trip_through_their_json() {
    let preview = crate::json::read::<crate::preview::PreviewSettings>(
        r#"{"org": "acme", "image": "reg/app:{sha}", "region": "ams", "env": {"A": "1"}}"#,
    )
    .expect("settings");
    let deploy = DeployConfig {
        production_branch: "main".into(),
        environment: "production".into(),
        deploy_on: DeployOn::Merge,
        target: DeployTarget::GithubWorkflow {
            repository: Some(RepoFullName::parse("a/deployer").expect("repo")),
            workflow: "deploy.yml".into(),
            git_ref: Some("release".into()),
            inputs: serde_json::json!({"sha": "{sha}", "n": 1})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        },
        approval: Some(ApprovalSettings {
            required: true,
            timeout_minutes: 30,
        }),
    };
    let mut app = App {
        repository: RepoFullName::parse("a/b").expect("repo"),
        telegram_chat_id: Some("-100".into()),
        deploy: Some(deploy.clone()),
        health_url: Some("https://b.example.com/health".into()),
        preview: Some(preview.clone()),
        operators: vec![111, 222],
    };
    round_trip(&app);
    app.operators = Vec::new();
    let with_target = |target| {
        Some(DeployConfig {
            deploy_on: DeployOn::Push,
            target,
            approval: None,
            ..deploy.clone()
        })
    };
    app.deploy = with_target(DeployTarget::GithubWorkflow {
        repository: None,
        workflow: "7".into(),
        git_ref: None,
        inputs: serde_json::Map::new(),
    });
    app.telegram_chat_id = None;
    app.health_url = None;
    app.preview = None;
    round_trip(&app);
    app.deploy = with_target(DeployTarget::DeployHook {
        url: "https://hooks.example.com/x".into(),
    });
    round_trip(&app);
    app.deploy = with_target(DeployTarget::Fly {
        app: "b-prod".into(),
        image: "registry.fly.io/b:{sha}".into(),
    });
    round_trip(&app);
    // Preview-only.
    app.deploy = None;
    app.preview = Some(preview);
    round_trip(&app);
}

#[test]
fn deploy_targets_are_tagged_and_closed() {
    assert_eq!(
        bad(&WORKFLOW_APP.replace("\"type\": \"github_workflow\", ", "")),
        "deploy: missing field `type`"
    );
    assert_eq!(
        bad(&WORKFLOW_APP.replace("\"workflow\"", "\"url\"")),
        "deploy.url: unknown field `url`, expected one of `type`, `repository`, `workflow`, `ref`, `inputs`"
    );
    assert_eq!(
        bad(&WORKFLOW_APP.replace("{\"sha\": \"{sha}\"}", "[]")),
        "deploy.inputs: invalid type: sequence, expected a map"
    );
}

const PREVIEW_ONLY: &str = r#"{"repository": "octo/app",
  "preview": {"org": "acme", "image": "registry.fly.io/app:{sha}"}}"#;

#[test]
fn an_app_may_only_preview_but_needs_deploy_or_preview() {
    let app = App::parse(PREVIEW_ONLY.as_bytes()).expect("a preview-only app is valid");
    assert!(app.deploy.is_none() && app.preview.is_some());
    // It deploys no branch.
    let repo = RepoFullName::parse("octo/app").expect("repo");
    assert!(!app.watches(&repo, "main"));
    assert!(!app.watches(&repo, ""));
    assert_eq!(
        bad(r#"{"repository": "octo/app"}"#),
        "deploy: an app needs `deploy`, `preview` or both"
    );
    assert_eq!(
        bad(r#"{"repository": "octo/app", "deploy": null, "preview": null}"#),
        "deploy: an app needs `deploy`, `preview` or both"
    );
    // The deploy fields come with `deploy`, both ways.
    assert_eq!(
        bad(&PREVIEW_ONLY.replace(
            "\"repository\"",
            "\"production_branch\": \"main\", \"repository\""
        )),
        "production_branch: only an app with `deploy` has one (an app without it only previews)"
    );
    assert_eq!(
        bad(&WORKFLOW_APP.replace("\"environment\": \"production\",", "")),
        "missing field `environment`"
    );
}

#[test]
fn approval_belongs_to_the_deploy_and_names_its_bad_fields() {
    let with = |approval: &str| {
        WORKFLOW_APP.replace(
            r#""deploy_on": "push","#,
            &format!(r#""deploy_on": "push", "approval": {approval},"#),
        )
    };
    let app =
        App::parse(with(r#"{"required": true, "timeout_minutes": 15}"#).as_bytes()).expect("valid");
    let deploy = app.deploy.as_ref().expect("deploy");
    assert_eq!(
        deploy.required_approval(),
        Some(ApprovalSettings {
            required: true,
            timeout_minutes: 15
        })
    );
    // Written back flat beside `environment`, as it came.
    let text = serde_json::to_value(&app).expect("json");
    assert_eq!(
        text["approval"],
        serde_json::json!({"required": true, "timeout_minutes": 15})
    );
    // `{}` means required, for an hour; `required: false` waits for nobody.
    let defaults = App::parse(with("{}").as_bytes()).expect("valid");
    assert_eq!(
        defaults.deploy.and_then(|d| d.required_approval()),
        Some(ApprovalSettings {
            required: true,
            timeout_minutes: 60
        })
    );
    let off = App::parse(with(r#"{"required": false}"#).as_bytes()).expect("valid");
    assert_eq!(off.deploy.and_then(|d| d.required_approval()), None);
    // Without one, deploys are as they were.
    let plain = App::parse(WORKFLOW_APP.as_bytes()).expect("valid");
    assert_eq!(plain.deploy.and_then(|d| d.approval), None);

    assert!(bad(&with(r#"{"required": true, "timout_minutes": 5}"#))
        .starts_with("approval.timout_minutes: unknown field `timout_minutes`"));
    assert!(bad(&with(r#"{"required": "yes"}"#))
        .starts_with("approval.required: invalid type: string \"yes\", expected a boolean"));
    assert!(bad(&with(r#"{"timeout_minutes": -5}"#)).starts_with("approval.timeout_minutes: "));
    assert!(bad(&with("true")).starts_with("approval: invalid type: boolean `true`"));
    for minutes in ["0", "10081"] {
        assert_eq!(
            bad(&with(&format!(r#"{{"timeout_minutes": {minutes}}}"#))),
            "approval.timeout_minutes must be 1 to 10080 (a week)"
        );
    }
    // An app that only previews deploys nothing to approve.
    assert!(bad(r#"{"repository": "a/b", "approval": {"required": true},
            "preview": {"org": "acme", "image": "reg/app:{sha}"}}"#)
    .starts_with("approval: only an app with `deploy` has one"));
}

#[test]
fn operators_are_telegram_user_ids() {
    let with = |ops: &str| WORKFLOW_APP.replacen('{', &format!("{{\"operators\": {ops}, "), 1);
    let app = App::parse(with("[111, 222]").as_bytes()).expect("valid");
    assert_eq!(app.operators, vec![111, 222]);
    assert!(App::parse(WORKFLOW_APP.as_bytes())
        .expect("valid")
        .operators
        .is_empty());
    assert_eq!(
        bad(&with("[111, 0]")),
        "operators[1]: must be a Telegram user id (a number above 0)"
    );
    assert_eq!(
        bad(&with("[\"alice\"]")),
        "operators[0]: invalid type: string \"alice\", expected i64"
    );
    let many: Vec<String> = (1..=51).map(|n| n.to_string()).collect();
    assert_eq!(
        bad(&with(&format!("[{}]", many.join(",")))),
        "operators: at most 50 Telegram user ids"
    );
}
