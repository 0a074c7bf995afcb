//! Previews in the core: the pure plan and names, then whole pull-request stories
//! on SQLite with the real migrations, against a stateful fake of GitHub, Fly.io and
//! Telegram that keeps the apps, machines and comments it was asked to make.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::flow::{on_pull_request, run, sweep};
use super::store::PreviewStore;
use super::*;
use crate::apps::{App, AppStore};
use crate::config::Config;
use crate::flow::{Deps, Verdict};
use crate::github::events::{parse, GithubEvent, PullRequestEvent};
use crate::http::{HttpError, HttpResponse, Method};
use crate::jobs::JobMessage;
use crate::names::AppName;
use crate::secrets::{EnvType, SecretStore, SecretsKeys};
use crate::testing::{
    block_on, fake_deps, json_response, FakeHttp, FakePorts, MemoryKv, MemoryQueue, NativeCipher,
    SqliteSql, StubSigner,
};

const TEST_APP_KEY: &str = include_str!("../github/app/test-key.pkcs1.pem");

const SECRET_VALUE: &str = "s3cr3t-database-password";
const HOUR_MS: i64 = 3_600_000;

fn settings(extra: serde_json::Value) -> PreviewSettings {
    let mut v = serde_json::json!({"org": "acme", "image": "registry.fly.io/hello:{sha}"});
    if let (Some(base), Some(more)) = (v.as_object_mut(), extra.as_object()) {
        base.extend(more.clone());
    }
    crate::json::from_value(&v).expect("settings")
}

#[test]
fn fly_app_names_follow_flys_rules() {
    let s = settings(serde_json::json!({}));
    assert_eq!(s.fly_app_name("hello", 12, "main"), "hello-pr-12");
    let s = settings(serde_json::json!({"app_name": "{app}--{branch}-{pr}"}));
    assert_eq!(
        s.fly_app_name("hello", 7, "Feature/Add_Auth!"),
        "hello-feature-add-auth-7"
    );
    let s = settings(serde_json::json!({"app_name": "{pr}-{app}"}));
    assert_eq!(s.fly_app_name("hello", 7, "x"), "pr-7-hello");
    let long = "a".repeat(80);
    let name =
        settings(serde_json::json!({"app_name": "{branch}-{pr}"})).fly_app_name("x", 4321, &long);
    assert!(name.len() <= 63 && name.ends_with("-4321"), "{name}");
}

#[test]
fn long_fly_app_names_are_cut_apart_by_a_digest() {
    let s = settings(serde_json::json!({"app_name": "{branch}-{pr}"}));
    let shared = "feature-".repeat(9);
    let a = s.fly_app_name("x", 4321, &format!("{shared}login"));
    let b = s.fly_app_name("x", 4321, &format!("{shared}logout"));
    assert_ne!(a, b, "the same first 63 characters, different names");
    for name in [&a, &b] {
        assert!(name.len() <= 63, "{name}");
        assert!(name.ends_with("-4321"), "{name}");
        assert!(name.starts_with("feature-feature-"), "{name}");
        assert!(
            name.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-'),
            "{name}"
        );
        assert!(!name.contains("--"), "{name}");
    }
    assert_eq!(
        a,
        s.fly_app_name("x", 4321, &format!("{shared}login")),
        "stable"
    );
    // Multi-byte characters are cut as characters, never inside one.
    let wide = s.fly_app_name("x", 7, &"ü€😀".repeat(40));
    assert!(wide.len() <= 63 && wide.ends_with("-7"), "{wide}");
    // A name that fits is left as it is.
    assert_eq!(s.fly_app_name("x", 7, "short"), "short-7");
}

fn named(name: &str, app_name: Option<&str>) -> crate::apps::NamedApp {
    let mut preview = serde_json::json!({"org": "acme", "image": "reg/x:{sha}"});
    if let Some(t) = app_name {
        preview["app_name"] = t.into();
    }
    let app = serde_json::json!({
        "repository": "octo/app", "production_branch": "main", "environment": "production",
        "deploy_on": "push", "deploy": {"type": "deploy_hook", "url": "https://hooks.example.com/x"},
        "preview": preview,
    });
    crate::apps::NamedApp {
        name: AppName::parse(name).expect("name"),
        app: App::parse(app.to_string().as_bytes()).expect("app"),
        created_at: 0,
        updated_at: 0,
    }
}

#[test]
fn a_preview_name_template_that_can_make_another_apps_fly_names_is_refused() {
    let clash = |(a, ta): (&str, Option<&str>), (b, tb): (&str, Option<&str>)| {
        let mine = named(a, ta);
        mine.app.check_fly_names(&mine.name, &[named(b, tb)])
    };
    let err = clash(("web", Some("pr-{pr}")), ("api", Some("pr-{pr}"))).expect_err("clash");
    assert_eq!(crate::error::ApiError::from(err.clone()).status(), 409);
    let text = err.to_string();
    assert!(
        text.contains("preview.app_name") && text.contains("api") && text.contains("pr-1"),
        "{text}"
    );
    // Shapes that differ yet meet: a digit prefix, a branch, an app name that
    // becomes the other's once made a Fly name.
    assert!(clash(("web", Some("{pr}-x")), ("api", Some("pr-{pr}-x"))).is_err());
    assert!(clash(("web", Some("pr-{pr}")), ("api", Some("pr-1{pr}"))).is_err());
    assert!(clash(("web", Some("{branch}-{pr}")), ("api", Some("main-{pr}"))).is_err());
    assert!(clash(("web", Some("{app}-pr-{pr}")), ("x", Some("web-pr-{pr}"))).is_err());
    // The default template keeps apps apart; an app replacing itself is fine.
    assert!(clash(("web", None), ("api", None)).is_ok());
    assert!(clash(("web", Some("pr-{pr}")), ("web", Some("pr-{pr}"))).is_ok());
    assert!(clash(("web", Some("web-{pr}")), ("api", Some("api-{pr}"))).is_ok());
}

#[test]
fn images_get_the_sha_branch_and_number() {
    let s = settings(serde_json::json!({"image": "reg/app:{branch}-{pr}-{sha}"}));
    let sha = crate::github::CommitSha::parse(&"ab".repeat(20)).expect("sha");
    assert_eq!(
        s.image_for(&sha, "feat/x y", 3),
        format!("reg/app:feat-x-y-3-{}", "ab".repeat(20))
    );
}

#[test]
fn settings_errors_name_the_field() {
    let bad = |v: serde_json::Value| {
        let s: PreviewSettings = crate::json::from_value(&v).expect("shape");
        s.validate().expect_err("invalid").to_string()
    };
    assert!(bad(serde_json::json!({"org": "acme", "image": "x:{tag}"})).contains("preview.image"));
    assert!(bad(serde_json::json!({"org": "", "image": "x"})).contains("preview.org"));
    assert!(
        bad(serde_json::json!({"org": "a", "image": "x", "app_name": "{app}-preview"}))
            .contains("must contain {pr}")
    );
    assert!(
        bad(serde_json::json!({"org": "a", "image": "x", "max_concurrent": 0}))
            .contains("preview.max_concurrent")
    );
    assert!(
        bad(serde_json::json!({"org": "a", "image": "x", "env": {"1BAD": "v"}}))
            .contains("preview.env")
    );
}

fn a_preview() -> Preview {
    Preview {
        id: 1,
        app: "hello".into(),
        repository: crate::github::RepoFullName::parse("octo/app").expect("repo"),
        pr_number: 2,
        installation_id: None,
        head_ref: "changes".into(),
        head_sha: crate::github::CommitSha::parse(&"ab".repeat(20)).expect("sha"),
        draft: false,
        fork: false,
        wanted: Wanted::Live,
        revision: 1,
        done_revision: 0,
        status: Status::New,
        fly_app: "hello-pr-2".into(),
        url: "https://hello-pr-2.fly.dev".into(),
        machine_id: None,
        deployed_sha: None,
        deployment_id: None,
        deployment_sha: None,
        comment_id: None,
        telegram_message_id: None,
        error: None,
        attempts: 0,
        queued_at: 0,
        queue_ahead: None,
        expires_at: None,
        claimed_at: None,
        created_at: 0,
        updated_at: 0,
        fly_owned: false,
    }
}

#[test]
fn the_plan_compares_what_is_wanted_with_what_exists() {
    let s = settings(serde_json::json!({"skip_drafts": true}));
    let p = a_preview();
    assert_eq!(plan(&p, Some(&s)), Action::Deploy);
    let settled = |status| Preview {
        done_revision: 1,
        status,
        ..a_preview()
    };
    assert_eq!(plan(&settled(Status::Ready), Some(&s)), Action::Nothing);
    assert_eq!(plan(&settled(Status::Failed), Some(&s)), Action::Nothing);
    assert_eq!(plan(&settled(Status::Queued), Some(&s)), Action::Deploy);
    let draft = Preview {
        draft: true,
        ..a_preview()
    };
    assert_eq!(plan(&draft, Some(&s)), Action::Skip(SkipReason::Draft));
    let fork = Preview {
        fork: true,
        ..a_preview()
    };
    assert_eq!(plan(&fork, Some(&s)), Action::Skip(SkipReason::Fork));
    let forks_ok = settings(serde_json::json!({"allow_forks": true}));
    assert_eq!(plan(&fork, Some(&forks_ok)), Action::Deploy);
    let closed = Preview {
        wanted: Wanted::Closed,
        ..settled(Status::Ready)
    };
    assert_eq!(
        plan(&closed, Some(&s)),
        Action::Teardown(TeardownReason::Closed)
    );
    let gone = Preview {
        wanted: Wanted::Closed,
        ..settled(Status::Destroyed)
    };
    assert_eq!(plan(&gone, Some(&s)), Action::Nothing);
    let off = settings(serde_json::json!({"enabled": false}));
    assert_eq!(
        plan(&settled(Status::Ready), Some(&off)),
        Action::Teardown(TeardownReason::Disabled)
    );
    assert_eq!(
        plan(&settled(Status::Ready), None),
        Action::Teardown(TeardownReason::Disabled)
    );
}

#[test]
fn the_comment_carries_the_marker_and_the_state() {
    let mut p = a_preview();
    p.expires_at = Some(1_736_937_000_000);
    let ready = render_comment(&p, &Shown::Ready);
    assert!(ready.starts_with("<!-- edge-notifier:preview:hello -->"));
    assert!(ready.contains("https://hello-pr-2.fly.dev") && ready.contains("`ababab"));
    assert!(ready.contains("Expires"));
    let failed = render_comment(&p, &Shown::Failed("boom ``` |x|"));
    assert!(failed.contains("failed") && !failed.contains("boom ```"));
    let queued = render_comment(&p, &Shown::Queued { ahead: 2, max: 5 });
    assert!(queued.contains("2 previews ahead; at most 5 run at once"));
    let tg = render_telegram(&p, &Shown::Failed("<b>"));
    assert!(tg.contains("&lt;b&gt;"));
}

// ---- Stories -----------------------------------------------------------------

/// What the fakes hold and how they misbehave.
#[derive(Default)]
struct World {
    fly_apps: BTreeSet<String>,
    /// app → machine ids
    machines: BTreeMap<String, Vec<String>>,
    /// machine id → image
    images: BTreeMap<String, String>,
    ips: BTreeMap<String, u32>,
    comments: BTreeMap<i64, String>,
    deployments: BTreeMap<i64, Vec<String>>,
    deleted_environments: Vec<String>,
    telegram: BTreeMap<i64, String>,
    next_id: i64,
    /// Machine creation answers this status and message.
    machine_create_fails: Option<(u16, &'static str)>,
    /// Machine creation for an image containing this fails with a 422.
    bad_image: Option<String>,
    /// `wait` answers 503 this many times.
    wait_failures: u32,
    /// comment id → its author's login (ours is [`TOKEN_USER`]).
    comment_authors: BTreeMap<i64, String>,
}

/// The login of the user `GITHUB_TOKEN` belongs to.
const TOKEN_USER: &str = "edge-bot";

fn answer(
    w: &mut World,
    method: Method,
    url: &str,
    body: &serde_json::Value,
) -> Result<HttpResponse, HttpError> {
    w.next_id += 1;
    let id = w.next_id;
    let path = url
        .strip_prefix("http://gh.test/repos/octo/app")
        .map(|p| ("gh", p))
        .or_else(|| url.strip_prefix("http://fly.test/v1").map(|p| ("fly", p)))
        .or_else(|| {
            url.strip_prefix("http://tg.test/bottg-token/")
                .map(|p| ("tg", p))
        });
    if (method, url) == (Method::Get, "http://gh.test/app") {
        return json_response(200, serde_json::json!({"slug": "edge-notifier", "id": 7}));
    }
    if (method, url) == (Method::Get, "http://gh.test/user") {
        return json_response(200, serde_json::json!({"login": TOKEN_USER, "id": 9}));
    }
    match (method, path) {
        (Method::Get, Some(("gh", p)))
            if p.starts_with("/issues/") && p.ends_with("/comments?per_page=100") =>
        {
            let list: Vec<_> = w
                .comments
                .iter()
                .map(|(id, body)| {
                    let login = w
                        .comment_authors
                        .get(id)
                        .expect("every comment has an author");
                    serde_json::json!({"id": id, "body": body, "user": {"login": login}})
                })
                .collect();
            json_response(200, serde_json::json!(list))
        }
        (Method::Post, Some(("gh", p)))
            if p.starts_with("/issues/") && p.ends_with("/comments") =>
        {
            w.comments
                .insert(id, body["body"].as_str().expect("body").to_owned());
            w.comment_authors.insert(id, TOKEN_USER.to_owned());
            json_response(201, serde_json::json!({"id": id}))
        }
        (Method::Patch, Some(("gh", p))) if p.starts_with("/issues/comments/") => {
            let cid: i64 = p["/issues/comments/".len()..].parse().expect("id");
            match w.comments.get_mut(&cid) {
                Some(c) => {
                    *c = body["body"].as_str().expect("body").to_owned();
                    json_response(200, serde_json::json!({"id": cid}))
                }
                None => json_response(404, serde_json::json!({"message": "Not Found"})),
            }
        }
        (Method::Post, Some(("gh", "/deployments"))) => {
            assert_eq!(body["transient_environment"], true);
            assert_eq!(body["production_environment"], false);
            w.deployments.insert(id, Vec::new());
            json_response(201, serde_json::json!({"id": id}))
        }
        (Method::Post, Some(("gh", p))) if p.starts_with("/deployments/") => {
            let did: i64 = p["/deployments/".len()..p.len() - "/statuses".len()]
                .parse()
                .expect("id");
            let state = body["state"].as_str().expect("state").to_owned();
            w.deployments
                .get_mut(&did)
                .expect("known deployment")
                .push(state);
            json_response(201, serde_json::json!({"id": id}))
        }
        (Method::Delete, Some(("gh", p))) if p.starts_with("/environments/") => {
            w.deleted_environments
                .push(p["/environments/".len()..].to_owned());
            Ok(HttpResponse::new(204, ""))
        }
        (Method::Post, Some(("fly", "/apps"))) => {
            let name = body["app_name"].as_str().expect("name").to_owned();
            assert_eq!(body["org_slug"], "acme");
            if w.fly_apps.insert(name) {
                json_response(201, serde_json::json!({"id": "x"}))
            } else {
                json_response(422, serde_json::json!({"error": "app name already taken"}))
            }
        }
        (Method::Get | Method::Delete, Some(("fly", p)))
            if p.starts_with("/apps/") && !p["/apps/".len()..].contains('/') =>
        {
            let name = p["/apps/".len()..].trim_end_matches("?force=true");
            let existed = w.fly_apps.contains(name);
            if method == Method::Delete {
                w.fly_apps.remove(name);
                if let Some(ms) = w.machines.remove(name) {
                    for m in ms {
                        w.images.remove(&m);
                    }
                }
                w.ips.remove(name);
            }
            if existed {
                json_response(
                    if method == Method::Delete { 202 } else { 200 },
                    serde_json::json!({"name": name}),
                )
            } else {
                json_response(404, serde_json::json!({"error": "not found"}))
            }
        }
        (_, Some(("fly", p))) if p.starts_with("/apps/") => {
            let rest = &p["/apps/".len()..];
            let (app, tail) = rest.split_once('/').expect("app/…");
            assert!(w.fly_apps.contains(app), "{app} must exist before {tail}");
            match (method, tail) {
                (Method::Get, "ip_assignments") => {
                    let n = w.ips.get(app).copied().unwrap_or(0);
                    json_response(
                        200,
                        serde_json::json!({"ips": vec![serde_json::json!({}); n as usize]}),
                    )
                }
                (Method::Post, "ip_assignments") => {
                    *w.ips.entry(app.to_owned()).or_default() += 1;
                    json_response(200, serde_json::json!({"ip": "::1"}))
                }
                (Method::Get, "machines") => {
                    let list: Vec<_> = w
                        .machines
                        .get(app)
                        .into_iter()
                        .flatten()
                        .map(|m| serde_json::json!({"id": m}))
                        .collect();
                    json_response(200, serde_json::json!(list))
                }
                (Method::Post, "machines") => {
                    if let Some((status, error)) = w.machine_create_fails {
                        return json_response(status, serde_json::json!({"error": error}));
                    }
                    let image = body["config"]["image"].as_str().unwrap_or_default();
                    if w.bad_image
                        .as_deref()
                        .is_some_and(|bad| image.contains(bad))
                    {
                        return json_response(422, serde_json::json!({"error": "image not found"}));
                    }
                    let m = format!("m{id}");
                    w.machines
                        .entry(app.to_owned())
                        .or_default()
                        .push(m.clone());
                    w.images.insert(
                        m.clone(),
                        body["config"]["image"].as_str().expect("image").to_owned(),
                    );
                    json_response(200, serde_json::json!({"id": m}))
                }
                (Method::Get, t) if t.ends_with("/wait?state=started&timeout=60") => {
                    if w.wait_failures > 0 {
                        w.wait_failures -= 1;
                        return json_response(503, serde_json::json!({"error": "unavailable"}));
                    }
                    json_response(200, serde_json::json!({"ok": true}))
                }
                (Method::Post, t) if t.starts_with("machines/") => {
                    let m = &t["machines/".len()..];
                    if !w.images.contains_key(m) {
                        return json_response(
                            404,
                            serde_json::json!({"error": "machine not found"}),
                        );
                    }
                    w.images.insert(
                        m.to_owned(),
                        body["config"]["image"].as_str().expect("image").to_owned(),
                    );
                    json_response(200, serde_json::json!({"id": m}))
                }
                other => panic!("the fake Fly does not serve {other:?}"),
            }
        }
        (Method::Post, Some(("tg", "sendMessage"))) => {
            assert_eq!(
                body["disable_notification"], true,
                "preview messages are quiet"
            );
            w.telegram
                .insert(id, body["text"].as_str().expect("text").to_owned());
            json_response(
                200,
                serde_json::json!({"ok": true, "result": {"message_id": id}}),
            )
        }
        (Method::Post, Some(("tg", "editMessageText"))) => {
            let mid = body["message_id"].as_i64().expect("id");
            w.telegram
                .insert(mid, body["text"].as_str().expect("text").to_owned());
            json_response(
                200,
                serde_json::json!({"ok": true, "result": {"message_id": mid}}),
            )
        }
        _ => Err(HttpError::Network(format!(
            "the fake does not serve {} {url}",
            method.as_str()
        ))),
    }
}

struct Story {
    /// The bodies of `access_tokens` exchanges, in order.
    exchanges: Rc<RefCell<Vec<serde_json::Value>>>,
    db: SqliteSql,
    queue: MemoryQueue,
    kv: MemoryKv,
    http: FakeHttp,
    world: Rc<RefCell<World>>,
    config: Config,
    clock: RefCell<i64>,
    /// The delivery log's next place (what `DeliveryStore::sequence` gives).
    seq: Cell<i64>,
    cipher: NativeCipher,
}

const T0: i64 = 1_764_000_000_000;

/// The Worker's own installation token (asked for with `{}`), and the scoped one
/// each machine gets.
const WORKER_TOKEN: &str = "ghs_test";
const MACHINE_TOKEN: &str = "ghs_machine";

impl Story {
    /// GitHub through `GITHUB_TOKEN` (a PAT) alone.
    fn new(preview: serde_json::Value) -> Story {
        Story::configured(preview, false)
    }

    /// GitHub through the App: the Worker's installation token is `WORKER_TOKEN`,
    /// each scoped exchange issues `MACHINE_TOKEN`.
    fn with_app(preview: serde_json::Value) -> Story {
        Story::configured(preview, true)
    }

    fn configured(preview: serde_json::Value, github_app: bool) -> Story {
        let world = Rc::new(RefCell::new(World::default()));
        let w = world.clone();
        let exchanges = Rc::new(RefCell::new(Vec::new()));
        let seen_exchanges = exchanges.clone();
        let http = FakeHttp::routed(move |req| {
            // Every call carries its credentials.
            let auth = req.header_value("authorization");
            let body: serde_json::Value =
                serde_json::from_str(req.body.as_deref().unwrap_or("null")).expect("JSON body");
            if req.url == "http://gh.test/app/installations/1/access_tokens" {
                assert!(github_app, "no App is configured");
                assert!(
                    auth.is_some_and(|a| a.starts_with("Bearer ey")),
                    "the App JWT"
                );
                let token = if body == serde_json::json!({}) {
                    WORKER_TOKEN
                } else {
                    MACHINE_TOKEN
                };
                seen_exchanges.borrow_mut().push(body);
                return json_response(201, serde_json::json!({"token": token}));
            }
            if req.url == "http://gh.test/app" {
                // Our own identity (the App's bot user), asked with the App JWT.
                assert!(
                    auth.is_some_and(|a| a.starts_with("Bearer ey")),
                    "the App JWT"
                );
            } else if req.url.starts_with("http://gh.test") {
                assert_eq!(auth, Some("Bearer ghs_test"), "the Worker's own token");
            } else if req.url.starts_with("http://fly.test") {
                assert_eq!(auth, Some("Bearer fly_test_token"));
            }
            answer(&mut w.borrow_mut(), req.method, &req.url, &body)
        });
        let key = STANDARD.encode([7u8; 32]);
        let config = Config::from_lookup(move |k| {
            Some(
                match k {
                    "GITHUB_TOKEN" if !github_app => "ghs_test",
                    "GITHUB_APP_ID" if github_app => "7",
                    "GITHUB_APP_PRIVATE_KEY" if github_app => TEST_APP_KEY,
                    "GITHUB_API_BASE" => "http://gh.test",
                    "FLY_API_TOKEN" => "fly_test_token",
                    "FLY_API_BASE" => "http://fly.test",
                    "TELEGRAM_BOT_TOKEN" => "tg-token",
                    "TELEGRAM_CHAT_ID" => "42",
                    "TELEGRAM_API_BASE" => "http://tg.test",
                    // The stories are about previews, not Telegram's pace.
                    "TELEGRAM_PACE" => "off",
                    "SECRETS_KEY" => key.as_str(),
                    _ => return None,
                }
                .to_owned(),
            )
        });
        let story = Story {
            exchanges,
            db: SqliteSql::migrated(),
            queue: MemoryQueue::default(),
            kv: MemoryKv::default(),
            http,
            world,
            config,
            clock: RefCell::new(T0),
            seq: Cell::new(0),
            cipher: NativeCipher::default(),
        };
        let mut app = serde_json::json!({
            "repository": "octo/app", "production_branch": "main", "environment": "production",
            "deploy_on": "push", "deploy": {"type": "deploy_hook", "url": "https://hooks.example.com/x"},
            "preview": settings(preview),
        });
        app["preview"]["env"] =
            serde_json::json!({"PORT": "8080", "DATABASE_PASSWORD": "placeholder"});
        let app = App::parse(app.to_string().as_bytes()).expect("app");
        let name = AppName::parse("hello").expect("name");
        block_on(AppStore::new(&story.db).put(&name, &app, story.now())).expect("stored");
        let keys: &SecretsKeys = story.config.secrets_keys.as_ref().expect("key");
        block_on(SecretStore::new(&story.db).put(
            &NativeCipher::default(),
            keys,
            (
                &name,
                EnvType::Preview,
                &crate::names::EnvVarName::parse("DATABASE_PASSWORD").expect("name"),
            ),
            &crate::secret::Secret::new(SECRET_VALUE.to_owned()),
            story.now(),
        ))
        .expect("secret stored");
        story
    }

    fn now(&self) -> crate::time::Timestamp {
        crate::time::Timestamp::from_millis(*self.clock.borrow())
    }

    fn later(&self, ms: i64) {
        *self.clock.borrow_mut() += ms;
    }

    fn deps(&self) -> Deps<'_, FakePorts<'_, StubSigner>> {
        fake_deps(
            &self.config,
            &self.http,
            &self.db,
            &self.queue,
            &self.kv,
            &StubSigner,
            &self.cipher,
        )
    }

    /// The body of the first machine created for `fly_app`.
    fn machine_created(&self, fly_app: &str) -> serde_json::Value {
        let url = format!("http://fly.test/v1/apps/{fly_app}/machines");
        self.http
            .seen
            .borrow()
            .iter()
            .find(|r| r.method == Method::Post && r.url == url)
            .map(|r| {
                serde_json::from_str::<serde_json::Value>(r.body.as_deref().expect("body"))
                    .expect("JSON")
            })
            .expect("machine created")
    }

    /// A fixture event dated now (`pull_request.updated_at`, as GitHub dates an
    /// event when it happens), changed by `edit` (the number, sha, draft flag,
    /// fork).
    fn event(&self, fixture: &str, edit: impl FnOnce(&mut serde_json::Value)) -> PullRequestEvent {
        let path = format!(
            "{}/../tests/fixtures/github/{fixture}",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).expect("fixture")).expect("JSON");
        v["repository"]["full_name"] = "octo/app".into();
        v["pull_request"]["head"]["repo"]["full_name"] = "octo/app".into();
        v["pull_request"]["updated_at"] = self.now().to_rfc3339().into();
        edit(&mut v);
        match parse("pull_request", v.to_string().as_bytes()).expect("parses") {
            GithubEvent::PullRequest(pr) => pr,
            other => panic!("{other:?}"),
        }
    }

    /// Delivers the event as a new delivery, then runs the queue dry (a retried
    /// message runs again after its delay).
    fn deliver(&self, pr: &PullRequestEvent) -> Vec<String> {
        self.record(pr, self.next_seq());
        self.drain()
    }

    /// Records the event as the delivery at place `seq` in the log; returns the
    /// delivery log's line.
    fn record(&self, pr: &PullRequestEvent, seq: i64) -> String {
        block_on(on_pull_request(&self.deps(), pr, seq, self.now())).expect("recorded")
    }

    fn next_seq(&self) -> i64 {
        self.seq.set(self.seq.get() + 1);
        self.seq.get()
    }

    /// Runs what the `TELEGRAM` queue holds (the preview's message), as its
    /// consumer would.
    fn send_telegram(&self) {
        let messages: Vec<JobMessage> = self.queue.telegram.borrow_mut().drain(..).collect();
        for m in messages {
            block_on(crate::dispatch::run_job(&self.deps(), &m, self.now()));
        }
    }

    fn drain(&self) -> Vec<String> {
        let mut logs = Vec::new();
        for _ in 0..50 {
            self.send_telegram();
            let next = {
                let mut sent = self.queue.sent.borrow_mut();
                if sent.is_empty() {
                    return logs;
                }
                sent.remove(0)
            };
            let JobMessage::Preview { id } = next else {
                panic!("unexpected message {next:?}");
            };
            let r = block_on(run(&self.deps(), id, self.now()));
            if let Verdict::Retry { delay_seconds } = r.verdict {
                self.later(i64::from(delay_seconds) * 1000);
                self.queue
                    .sent
                    .borrow_mut()
                    .push(JobMessage::Preview { id });
            }
            logs.push(r.log);
        }
        panic!("the queue never drained: {logs:?}");
    }

    /// Runs the first queued message only.
    fn run_one(&self) -> Verdict {
        let JobMessage::Preview { id } = self.queue.sent.borrow_mut().remove(0) else {
            panic!("not a preview message");
        };
        let verdict = block_on(run(&self.deps(), id, self.now())).verdict;
        self.send_telegram();
        verdict
    }

    fn preview(&self, pr: u64) -> Preview {
        block_on(PreviewStore::new(&self.db).list("hello"))
            .expect("list")
            .into_iter()
            .find(|p| p.pr_number == pr)
            .expect("preview exists")
    }
}

fn sha(n: u8) -> String {
    format!("{n:02x}").repeat(20)
}

fn with(number: u64, head: u8) -> impl FnOnce(&mut serde_json::Value) {
    move |v| {
        v["number"] = number.into();
        v["pull_request"]["number"] = number.into();
        v["pull_request"]["head"]["sha"] = sha(head).into();
    }
}

#[test]
fn opened_deploys_synchronize_updates_close_tears_down_reopen_restores() {
    let s = Story::new(serde_json::json!({"region": "ams"}));
    s.deliver(&s.event("pull_request.opened.json", with(2, 1)));
    let p = s.preview(2);
    assert_eq!(p.status, Status::Ready, "{p:?}");
    assert_eq!(p.url, "https://hello-pr-2.fly.dev");
    assert_eq!(p.expires_at, Some(T0 + 72 * HOUR_MS));
    {
        let w = s.world.borrow();
        assert!(w.fly_apps.contains("hello-pr-2"));
        assert_eq!(w.ips.get("hello-pr-2"), Some(&2), "shared v4 and v6");
        assert_eq!(w.comments.len(), 1);
        let comment = w.comments.values().next().expect("comment");
        assert!(comment.contains("ready") && comment.contains("https://hello-pr-2.fly.dev"));
        let states: Vec<_> = w.deployments.values().flatten().cloned().collect();
        assert_eq!(states, ["in_progress", "success"]);
        assert!(w.telegram.values().any(|t| t.contains("✅ ready")));
    }
    // The machine got the image, the settings' env and the secret (which wins over
    // a plain variable of the same name); not the Worker's own GitHub token.
    let create = s.machine_created("hello-pr-2");
    assert_eq!(create["region"], "ams");
    assert_eq!(
        create["config"]["image"],
        format!("registry.fly.io/hello:{}", sha(1))
    );
    assert_eq!(create["config"]["env"]["DATABASE_PASSWORD"], SECRET_VALUE);
    assert_eq!(create["config"]["env"]["PORT"], "8080");
    assert!(create["config"]["env"].get("GITHUB_TOKEN").is_none());
    assert!(
        !create.to_string().contains("ghs_test"),
        "the PAT is nowhere in the machine"
    );
    assert_eq!(create["config"]["services"][0]["internal_port"], 8080);
    assert_eq!(create["config"]["services"][0]["ports"][0]["port"], 443);

    // A new push updates the same machine and edits the same comment.
    s.later(HOUR_MS);
    s.deliver(&s.event("pull_request.synchronize.json", with(2, 2)));
    let p = s.preview(2);
    assert_eq!(
        (p.status, p.deployed_sha.as_deref()),
        (Status::Ready, Some(sha(2).as_str()))
    );
    assert_eq!(
        p.expires_at,
        Some(T0 + 73 * HOUR_MS),
        "each deploy extends the expiry"
    );
    {
        let w = s.world.borrow();
        assert_eq!(w.machines["hello-pr-2"].len(), 1, "updated, not added");
        let m = &w.machines["hello-pr-2"][0];
        assert_eq!(w.images[m], format!("registry.fly.io/hello:{}", sha(2)));
        assert_eq!(w.comments.len(), 1, "edited, not added");
        assert!(w.comments.values().all(|c| c.contains(&sha(2)[..7])));
        assert_eq!(w.telegram.len(), 1, "one Telegram message, edited");
    }

    // Closing removes the Fly app, ends the environment and says so.
    s.deliver(&s.event("pull_request.closed.json", with(2, 2)));
    let p = s.preview(2);
    assert_eq!(p.status, Status::Destroyed);
    {
        let w = s.world.borrow();
        assert!(w.fly_apps.is_empty());
        assert_eq!(w.deleted_environments, ["pr-2"]);
        assert!(w
            .comments
            .values()
            .all(|c| c.contains("destroyed") && c.contains("closed")));
        // The latest deployment is marked inactive (GitHub already made the older
        // one inactive when the newer succeeded).
        let latest = w.deployments.values().last().expect("deployments");
        assert_eq!(latest.last().map(String::as_str), Some("inactive"));
    }

    // Reopening brings it back.
    s.deliver(&s.event("pull_request.reopened.json", with(2, 2)));
    assert_eq!(s.preview(2).status, Status::Ready);
    assert!(s.world.borrow().fly_apps.contains("hello-pr-2"));
    assert_eq!(s.world.borrow().comments.len(), 1);

    // The secret went to Fly's machine API and nowhere else.
    for r in s.http.seen.borrow().iter() {
        let body = r.body.as_deref().unwrap_or_default();
        let machine_call = r
            .url
            .starts_with("http://fly.test/v1/apps/hello-pr-2/machines");
        assert!(
            machine_call || !body.contains(SECRET_VALUE),
            "secret sent to {}",
            r.url
        );
    }
    let listed = serde_json::to_string(&s.preview(2)).expect("json");
    assert!(!listed.contains(SECRET_VALUE));
}

/// The Fly calls made so far.
fn fly_calls(s: &Story) -> usize {
    s.http
        .seen
        .borrow()
        .iter()
        .filter(|r| r.url.starts_with("http://fly.test"))
        .count()
}

#[test]
fn a_late_synchronize_after_closed_leaves_the_preview_closed() {
    let s = Story::new(serde_json::json!({}));
    s.deliver(&s.event("pull_request.opened.json", with(2, 1)));
    // A push GitHub dated before the close, whose delivery comes after it (late,
    // or redelivered).
    s.later(60_000);
    let late = s.event("pull_request.synchronize.json", with(2, 2));
    s.later(60_000);
    s.deliver(&s.event("pull_request.closed.json", with(2, 1)));
    assert_eq!(s.preview(2).status, Status::Destroyed);
    let (calls, before) = (fly_calls(&s), s.preview(2));

    let log = s.record(&late, s.next_seq());
    assert!(log.contains("the pull request is closed"), "{log}");
    assert!(s.queue.sent.borrow().is_empty(), "no run for it");
    s.drain();
    // Replayed with a date after the close, it still cannot bring the preview back:
    // only a reopened does.
    s.later(60_000);
    let replayed = s.event("pull_request.synchronize.json", with(2, 2));
    s.record(&replayed, s.next_seq());
    s.drain();
    let p = s.preview(2);
    assert_eq!(p, before, "the row is as the close left it");
    assert_eq!((p.wanted, p.status), (Wanted::Closed, Status::Destroyed));
    assert_eq!(p.head_sha.as_str(), sha(1));
    assert_eq!(fly_calls(&s), calls, "no Fly call");
    assert!(s.world.borrow().fly_apps.is_empty());
}

#[test]
fn an_older_synchronize_after_a_newer_one_keeps_the_newer_sha() {
    let s = Story::new(serde_json::json!({}));
    s.deliver(&s.event("pull_request.opened.json", with(2, 1)));
    s.later(60_000);
    let older = s.event("pull_request.synchronize.json", with(2, 2));
    s.later(60_000);
    s.deliver(&s.event("pull_request.synchronize.json", with(2, 3)));
    assert_eq!(s.preview(2).deployed_sha.as_deref(), Some(sha(3).as_str()));
    let calls = fly_calls(&s);

    let log = s.record(&older, s.next_seq());
    assert!(log.contains("older than the one it follows"), "{log}");
    s.drain();
    let p = s.preview(2);
    assert_eq!(p.head_sha.as_str(), sha(3));
    assert_eq!(
        (p.status, p.deployed_sha.as_deref()),
        (Status::Ready, Some(sha(3).as_str()))
    );
    assert_eq!(fly_calls(&s), calls, "no Fly call");
    let w = s.world.borrow();
    let m = &w.machines["hello-pr-2"][0];
    assert_eq!(w.images[m], format!("registry.fly.io/hello:{}", sha(3)));
}

#[test]
fn events_dated_the_same_second_follow_the_delivery_log() {
    let s = Story::new(serde_json::json!({}));
    s.deliver(&s.event("pull_request.opened.json", with(2, 1)));
    s.later(60_000);
    // Two pushes GitHub dated the same second, delivered in this order.
    let first = s.event("pull_request.synchronize.json", with(2, 2));
    let second = s.event("pull_request.synchronize.json", with(2, 3));
    let (first_seq, second_seq) = (s.next_seq(), s.next_seq());
    s.record(&first, first_seq);
    s.record(&second, second_seq);
    s.drain();
    assert_eq!(s.preview(2).deployed_sha.as_deref(), Some(sha(3).as_str()));
    // The first one replayed keeps its place in the log: it changes nothing.
    let log = s.record(&first, first_seq);
    assert!(log.contains("older than the one it follows"), "{log}");
    s.drain();
    assert_eq!(s.preview(2).head_sha.as_str(), sha(3));
}

#[test]
fn only_a_reopened_newer_than_the_close_reopens() {
    let s = Story::new(serde_json::json!({}));
    s.deliver(&s.event("pull_request.opened.json", with(2, 1)));
    // A reopened from before the close (an earlier close and reopen, delivered
    // late) is older: the preview stays closed.
    s.later(60_000);
    let old_reopen = s.event("pull_request.reopened.json", with(2, 1));
    s.later(60_000);
    s.deliver(&s.event("pull_request.closed.json", with(2, 1)));
    let log = s.record(&old_reopen, s.next_seq());
    assert!(log.contains("the pull request is closed"), "{log}");
    s.drain();
    assert_eq!(s.preview(2).status, Status::Destroyed);
    // A newer reopened brings it back, at its head.
    s.later(60_000);
    s.deliver(&s.event("pull_request.reopened.json", with(2, 4)));
    let p = s.preview(2);
    assert_eq!((p.wanted, p.status), (Wanted::Live, Status::Ready));
    assert_eq!(p.deployed_sha.as_deref(), Some(sha(4).as_str()));
    assert!(s.world.borrow().fly_apps.contains("hello-pr-2"));
}

#[test]
fn rows_from_before_the_event_order_take_the_next_event() {
    let s = Story::new(serde_json::json!({}));
    s.deliver(&s.event("pull_request.opened.json", with(2, 1)));
    // A row recorded before migration 0011 has no event order.
    s.db.conn_for_tests()
        .execute("UPDATE previews SET event_at = NULL, event_seq = NULL", [])
        .expect("update");
    s.later(60_000);
    s.deliver(&s.event("pull_request.synchronize.json", with(2, 2)));
    assert_eq!(s.preview(2).deployed_sha.as_deref(), Some(sha(2).as_str()));
}

#[test]
fn a_fly_app_this_preview_did_not_make_is_never_adopted_or_deleted() {
    let s = Story::new(serde_json::json!({}));
    // Someone else's app has the name PR 2's preview would get.
    s.world.borrow_mut().fly_apps.insert("hello-pr-2".into());
    s.deliver(&s.event("pull_request.opened.json", with(2, 1)));
    let p = s.preview(2);
    assert_eq!(p.status, Status::Failed, "{p:?}");
    assert!(!p.fly_owned);
    let error = p.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("hello-pr-2 already exists and this preview did not create it")
            && error.contains("preview.app_name"),
        "{error}"
    );
    {
        let w = s.world.borrow();
        assert!(w.fly_apps.contains("hello-pr-2"), "left alone");
        assert!(w.machines.is_empty(), "nothing deployed into it");
        assert!(w.comments.values().any(|c| c.contains("already exists")));
    }
    // Neither the cron nor closing the pull request deletes it.
    s.later(HOUR_MS);
    block_on(sweep(&s.deps(), s.now()));
    s.drain();
    s.deliver(&s.event("pull_request.closed.json", with(2, 1)));
    assert_eq!(s.preview(2).status, Status::Destroyed);
    assert!(s.world.borrow().fly_apps.contains("hello-pr-2"));
    let deletes = s
        .http
        .seen
        .borrow()
        .iter()
        .filter(|r| r.method == Method::Delete && r.url.starts_with("http://fly.test"))
        .count();
    assert_eq!(deletes, 0, "no Fly delete");
}

#[test]
fn a_fly_app_this_preview_made_is_reused_after_a_run_died() {
    let s = Story::new(serde_json::json!({}));
    // The first run creates the app, then stops at a transient failure of the
    // machine's start; the retry finds the name taken, by the app it made.
    s.world.borrow_mut().wait_failures = 1;
    s.deliver(&s.event("pull_request.opened.json", with(2, 1)));
    let p = s.preview(2);
    assert_eq!(p.status, Status::Ready, "{p:?}");
    assert!(p.fly_owned);
    let creates = s
        .http
        .seen
        .borrow()
        .iter()
        .filter(|r| r.method == Method::Post && r.url == "http://fly.test/v1/apps")
        .count();
    assert_eq!(
        creates, 2,
        "the second run found the app its row says it made"
    );
}

/// Someone's comment on the pull request, carrying `body`; returns its id.
fn comment_by(s: &Story, login: &str, body: &str) -> i64 {
    let mut w = s.world.borrow_mut();
    w.next_id += 1;
    let id = w.next_id;
    w.comments.insert(id, body.to_owned());
    w.comment_authors.insert(id, login.to_owned());
    id
}

#[test]
fn a_comment_with_our_marker_by_someone_else_is_not_adopted() {
    let s = Story::new(serde_json::json!({}));
    let planted = format!(
        "{}\nclick here: https://evil.example.com",
        comment_marker("hello")
    );
    let theirs = comment_by(&s, "mallory", &planted);
    s.deliver(&s.event("pull_request.opened.json", with(2, 1)));
    let p = s.preview(2);
    assert_eq!(p.status, Status::Ready);
    let ours = p.comment_id.expect("a comment of ours");
    assert_ne!(ours, theirs);
    let w = s.world.borrow();
    assert_eq!(w.comments[&theirs], planted, "theirs is left as it was");
    assert_eq!(w.comment_authors[&ours], TOKEN_USER);
    assert!(w.comments[&ours].contains("ready"));
}

#[test]
fn our_own_comment_is_found_again_by_its_marker_and_author() {
    let s = Story::new(serde_json::json!({}));
    // A run posted it, then died before recording it.
    let ours = comment_by(&s, TOKEN_USER, &comment_marker("hello"));
    s.deliver(&s.event("pull_request.opened.json", with(2, 1)));
    assert_eq!(s.preview(2).comment_id, Some(ours));
    assert_eq!(s.world.borrow().comments.len(), 1, "edited, not added");
    // The comment is deleted by someone: the next change posts a new one, and the
    // token's user was looked up once (it is cached).
    s.world.borrow_mut().comments.clear();
    s.later(60_000);
    s.deliver(&s.event("pull_request.synchronize.json", with(2, 2)));
    assert_eq!(s.world.borrow().comments.len(), 1);
    let lookups = s
        .http
        .seen
        .borrow()
        .iter()
        .filter(|r| r.url == "http://gh.test/user")
        .count();
    assert_eq!(lookups, 1);
}

#[test]
fn with_a_github_app_the_machine_gets_a_fresh_token_for_its_repository_alone() {
    let s = Story::with_app(serde_json::json!({}));
    s.deliver(&s.event("pull_request.opened.json", with(2, 1)));
    assert_eq!(s.preview(2).status, Status::Ready, "{:?}", s.preview(2));
    let create = s.machine_created("hello-pr-2");
    assert_eq!(create["config"]["env"]["GITHUB_TOKEN"], MACHINE_TOKEN);
    assert!(!create.to_string().contains(WORKER_TOKEN));
    let scoped = serde_json::json!({
        "repositories": ["app"],
        "permissions": {"contents": "read"},
    });
    let exchanges = s.exchanges.borrow().clone();
    assert_eq!(
        exchanges,
        [serde_json::json!({}), scoped.clone()],
        "the Worker's own token (cached), then the machine's"
    );

    // Each deploy asks for a fresh one: the machine's token is never cached, nor
    // handed to the Worker's own calls (which the fake checks carry WORKER_TOKEN).
    s.later(HOUR_MS / 2);
    s.deliver(&s.event("pull_request.synchronize.json", with(2, 2)));
    assert_eq!(s.preview(2).deployed_sha.as_deref(), Some(sha(2).as_str()));
    let exchanges = s.exchanges.borrow().clone();
    assert_eq!(exchanges, [serde_json::json!({}), scoped.clone(), scoped]);
}

#[test]
fn github_permissions_widen_the_machine_token_within_the_allowlist() {
    let s = Story::with_app(serde_json::json!({
        "github_permissions": {"pull_requests": "write", "checks": "read", "contents": "write"}
    }));
    s.deliver(&s.event("pull_request.opened.json", with(3, 1)));
    assert_eq!(s.preview(3).status, Status::Ready);
    assert_eq!(
        s.exchanges.borrow().last(),
        Some(&serde_json::json!({
            "repositories": ["app"],
            "permissions": {"contents": "write", "pull_requests": "write", "checks": "read"},
        }))
    );

    let refused = |permissions: serde_json::Value| {
        let app = serde_json::json!({
            "repository": "octo/app",
            "preview": {"org": "acme", "image": "x:{sha}", "github_permissions": permissions},
        });
        match App::parse(app.to_string().as_bytes()) {
            Err(crate::apps::AppError::Invalid(m)) => m,
            other => panic!("{permissions} must be refused, got {other:?}"),
        }
    };
    for name in [
        "administration",
        "workflows",
        "secrets",
        "members",
        "contents_extra",
    ] {
        let e = refused(serde_json::json!({ name: "read" }));
        assert!(
            e.starts_with(&format!(
                "preview.github_permissions.{name}: not a permission"
            )),
            "{e}"
        );
    }
    assert_eq!(
        refused(serde_json::json!({"contents": "admin"})),
        "preview.github_permissions.contents: unknown variant `admin`, expected `read` or `write`"
    );
    assert_eq!(
        refused(serde_json::json!(["contents"])),
        "preview.github_permissions: invalid type: sequence, expected a map"
    );
    assert_eq!(
        settings(serde_json::json!({})).token_permissions(),
        serde_json::json!({"contents": "read"})
    );
}

#[test]
fn a_preview_only_app_gets_previews() {
    let s = Story::new(serde_json::json!({}));
    let only_previews = App::parse(
        serde_json::json!({
            "repository": "octo/app",
            "preview": settings(serde_json::json!({})),
        })
        .to_string()
        .as_bytes(),
    )
    .expect("a preview-only app");
    let name = AppName::parse("hello").expect("name");
    block_on(AppStore::new(&s.db).put(&name, &only_previews, s.now())).expect("stored");
    s.deliver(&s.event("pull_request.opened.json", with(2, 1)));
    assert_eq!(s.preview(2).status, Status::Ready);
    assert!(s.world.borrow().fly_apps.contains("hello-pr-2"));
}

#[test]
fn a_long_failure_is_cut_to_fit_in_telegram() {
    let p = a_preview();
    // Multi-byte characters, and ones that escaping makes six times longer.
    let error = "é\"".repeat(5_000);
    let text = render_telegram(&p, &Shown::Failed(&error));
    assert!(
        crate::telegram::utf16_len(&text) <= crate::telegram::MAX_MESSAGE_CHARS,
        "{} UTF-16 units",
        crate::telegram::utf16_len(&text)
    );
    assert!(text.contains("❌ failed: é&quot;é&quot;") && text.contains("…"));
    // A short one is shown whole.
    let text = render_telegram(&p, &Shown::Failed("image not found"));
    assert!(text.contains("❌ failed: image not found\n"));
}

#[test]
fn duplicate_deliveries_change_nothing() {
    let s = Story::new(serde_json::json!({}));
    let opened = s.event("pull_request.opened.json", with(2, 1));
    s.deliver(&opened);
    let calls = s.http.seen.borrow().len();
    let logs = s.deliver(&opened);
    let p = s.preview(2);
    assert_eq!(
        (p.revision, p.done_revision, p.status),
        (1, 1, Status::Ready)
    );
    assert_eq!(
        s.http.seen.borrow().len(),
        calls,
        "no call for a duplicate: {logs:?}"
    );
}

#[test]
fn previews_past_their_slots_wait_and_start_when_one_frees() {
    let s = Story::new(serde_json::json!({"max_concurrent": 1}));
    s.deliver(&s.event("pull_request.opened.json", with(1, 1)));
    s.deliver(&s.event("pull_request.opened.json", with(2, 2)));
    s.later(1000);
    s.deliver(&s.event("pull_request.opened.json", with(3, 3)));
    assert_eq!(s.preview(1).status, Status::Ready);
    assert_eq!(s.preview(2).status, Status::Queued);
    assert_eq!(s.preview(3).status, Status::Queued);
    assert_eq!(s.preview(3).queue_ahead, Some(1));
    assert!(s
        .world
        .borrow()
        .comments
        .values()
        .any(|c| c.contains("1 preview ahead")));
    assert_eq!(s.world.borrow().fly_apps.len(), 1);

    // Waiting previews do not wake each other.
    assert!(s.queue.sent.borrow().is_empty());

    // A fourth in line moves up when one ahead of it closes.
    s.later(1000);
    s.deliver(&s.event("pull_request.opened.json", with(4, 4)));
    assert_eq!(s.preview(4).queue_ahead, Some(2));
    s.deliver(&s.event("pull_request.closed.json", with(3, 3)));
    assert_eq!(s.preview(3).status, Status::Destroyed);
    assert_eq!(
        s.preview(4).queue_ahead,
        Some(1),
        "its comment shows its new place"
    );
    s.later(1000);
    s.deliver(&s.event("pull_request.reopened.json", with(3, 3)));
    assert_eq!(
        s.preview(3).queue_ahead,
        Some(2),
        "back at the end of the queue"
    );
    s.deliver(&s.event("pull_request.closed.json", with(4, 4)));

    // Closing #1 frees its slot: #2 (first in line) starts, #3 moves up.
    s.deliver(&s.event("pull_request.closed.json", with(1, 1)));
    assert_eq!(s.preview(2).status, Status::Ready);
    assert_eq!(s.preview(3).status, Status::Queued);
    assert_eq!(s.preview(3).queue_ahead, Some(0));
    assert!(s
        .world
        .borrow()
        .comments
        .values()
        .any(|c| c.contains("next in line")));
}

#[test]
fn a_deploy_that_fails_after_taking_a_slot_gives_it_back() {
    let s = Story::new(serde_json::json!({"max_concurrent": 1}));
    s.world.borrow_mut().bad_image = Some(sha(2));
    s.deliver(&s.event("pull_request.opened.json", with(1, 1)));
    s.deliver(&s.event("pull_request.opened.json", with(2, 2)));
    s.later(1000);
    s.deliver(&s.event("pull_request.opened.json", with(3, 3)));
    assert_eq!(s.preview(3).status, Status::Queued);
    s.record(
        &s.event("pull_request.closed.json", with(1, 1)),
        s.next_seq(),
    );
    assert_eq!(s.run_one(), Verdict::Ack);
    assert_eq!(s.preview(1).status, Status::Destroyed);
    // #1's wake-up call to #3 is lost; #2 takes the slot and fails.
    let p3 = s.preview(3).id;
    s.queue
        .sent
        .borrow_mut()
        .retain(|m| *m != JobMessage::Preview { id: p3 });
    assert_eq!(s.run_one(), Verdict::Ack);
    assert_eq!(s.preview(2).status, Status::Failed);
    assert!(
        s.queue
            .sent
            .borrow()
            .contains(&JobMessage::Preview { id: p3 }),
        "the failed deploy gave its slot back"
    );
    s.drain();
    assert_eq!(s.preview(3).status, Status::Ready);
}

#[test]
fn a_failure_midway_cleans_up_and_says_why() {
    let s = Story::new(serde_json::json!({}));
    s.world.borrow_mut().machine_create_fails = Some((422, "image not found"));
    s.deliver(&s.event("pull_request.opened.json", with(2, 1)));
    let p = s.preview(2);
    assert_eq!(p.status, Status::Failed);
    assert!(
        p.error
            .as_deref()
            .unwrap_or_default()
            .contains("image not found"),
        "{p:?}"
    );
    let w = s.world.borrow();
    assert!(w.fly_apps.is_empty(), "the half-made app is deleted");
    assert!(w
        .comments
        .values()
        .all(|c| c.contains("failed") && c.contains("image not found")));
    assert!(w
        .deployments
        .values()
        .all(|d| d.last().map(String::as_str) == Some("failure")));
}

#[test]
fn transient_failures_are_retried_then_give_up_cleanly() {
    let s = Story::new(serde_json::json!({}));
    s.world.borrow_mut().wait_failures = 2;
    let logs = s.deliver(&s.event("pull_request.opened.json", with(2, 1)));
    assert_eq!(s.preview(2).status, Status::Ready, "{logs:?}");
    assert_eq!(
        s.world.borrow().machines["hello-pr-2"].len(),
        1,
        "the retry reused the machine"
    );

    s.world.borrow_mut().wait_failures = 100;
    s.deliver(&s.event("pull_request.synchronize.json", with(2, 2)));
    let p = s.preview(2);
    assert_eq!(p.status, Status::Failed);
    assert!(p.error.as_deref().unwrap_or_default().contains("503"));
    assert!(s.world.borrow().fly_apps.is_empty());
}

#[test]
fn forks_and_drafts_are_not_deployed_and_the_comment_says_why() {
    let s = Story::new(serde_json::json!({"skip_drafts": true}));
    s.deliver(&s.event("pull_request.opened.json", |v| {
        with(5, 1)(v);
        v["pull_request"]["head"]["repo"]["full_name"] = "stranger/app".into();
    }));
    assert_eq!(s.preview(5).status, Status::Skipped);
    assert!(s
        .world
        .borrow()
        .comments
        .values()
        .any(|c| c.contains("forks")));

    s.deliver(&s.event("pull_request.opened.json", |v| {
        with(6, 2)(v);
        v["pull_request"]["draft"] = true.into();
    }));
    assert_eq!(s.preview(6).status, Status::Skipped);
    assert!(s.world.borrow().fly_apps.is_empty());
    // Ready for review: now it deploys.
    s.deliver(&s.event("pull_request.opened.json", |v| {
        with(6, 2)(v);
        v["action"] = "ready_for_review".into();
    }));
    assert_eq!(s.preview(6).status, Status::Ready);
}

#[test]
fn converting_to_draft_takes_a_live_preview_down_when_drafts_are_skipped() {
    let s = Story::new(serde_json::json!({"skip_drafts": true}));
    s.deliver(&s.event("pull_request.opened.json", with(2, 1)));
    assert_eq!(s.preview(2).status, Status::Ready);
    s.deliver(&s.event("pull_request.opened.json", |v| {
        with(2, 1)(v);
        v["action"] = "converted_to_draft".into();
        v["pull_request"]["draft"] = true.into();
    }));
    let p = s.preview(2);
    assert_eq!((p.status, p.wanted), (Status::Skipped, Wanted::Live));
    let w = s.world.borrow();
    assert!(
        w.fly_apps.is_empty(),
        "the machine does not run for a draft"
    );
    assert_eq!(w.comments.len(), 1);
    assert!(w.comments.values().all(|c| c.contains("draft")));
    let latest = w.deployments.values().last().expect("deployment");
    assert_eq!(latest.last().map(String::as_str), Some("inactive"));
}

#[test]
fn the_cron_expires_previews_and_deletes_fly_apps_that_outlived_teardown() {
    let s = Story::new(serde_json::json!({"ttl_hours": 1}));
    s.deliver(&s.event("pull_request.opened.json", with(2, 1)));
    s.later(HOUR_MS + 1);
    block_on(sweep(&s.deps(), s.now()));
    s.drain();
    let p = s.preview(2);
    assert_eq!((p.status, p.wanted), (Status::Destroyed, Wanted::Expired));
    assert!(s
        .world
        .borrow()
        .comments
        .values()
        .all(|c| c.contains("expired")));

    // Someone (or a lost delete) left the app behind: the cron removes it once.
    s.world.borrow_mut().fly_apps.insert("hello-pr-2".into());
    let log = block_on(sweep(&s.deps(), s.now()));
    assert!(log.iter().any(|l| l.contains("outlived")), "{log:?}");
    assert!(s.world.borrow().fly_apps.is_empty());
    let log = block_on(sweep(&s.deps(), s.now()));
    assert!(log.is_empty(), "{log:?}");
}

#[test]
fn a_run_that_died_is_picked_up_by_the_cron() {
    let s = Story::new(serde_json::json!({}));
    s.record(
        &s.event("pull_request.opened.json", with(2, 1)),
        s.next_seq(),
    );
    // The message is lost and a run claimed the row, then died.
    s.queue.sent.borrow_mut().clear();
    let store = PreviewStore::new(&s.db);
    let id = s.preview(2).id;
    assert!(block_on(store.claim(id, s.now(), s.now())).expect("claim"));
    s.later(60_000);
    block_on(sweep(&s.deps(), s.now()));
    s.drain();
    assert_eq!(
        s.preview(2).status,
        Status::New,
        "the claim is not stale yet"
    );
    s.later(CLAIM_STALE_SECONDS * 1000);
    block_on(sweep(&s.deps(), s.now()));
    s.drain();
    assert_eq!(s.preview(2).status, Status::Ready);
}

#[test]
fn settings_and_states_round_trip_through_their_json() {
    let round_trip = |s: &PreviewSettings| {
        let text = serde_json::to_string(s).expect("serialises");
        assert_eq!(
            &crate::json::read::<PreviewSettings>(&text).expect("reads"),
            s
        );
    };
    let defaults = settings(serde_json::json!({}));
    assert!(defaults.enabled && defaults.region.is_none() && defaults.env.is_empty());
    assert_eq!(
        (defaults.internal_port, defaults.app_name.as_str()),
        (8080, "{app}-pr-{pr}")
    );
    assert_eq!((defaults.ttl_hours, defaults.max_concurrent), (72, 5));
    round_trip(&defaults);
    round_trip(&PreviewSettings {
        enabled: false,
        org: "acme".into(),
        image: "reg/app:{sha}".into(),
        region: Some("ams".into()),
        internal_port: 3000,
        env: BTreeMap::from([("MODE".to_owned(), "preview".to_owned())]),
        app_name: "{app}-{pr}".into(),
        ttl_hours: 24,
        max_concurrent: 2,
        skip_drafts: true,
        allow_forks: true,
        github_permissions: BTreeMap::from([
            (Permission::PullRequests, Access::Write),
            (Permission::Checks, Access::Read),
        ]),
    });
    assert_eq!(
        crate::json::read::<PreviewSettings>(r#"{"org": "a", "image": "x", "ttl": 1}"#)
            .expect_err("unknown field")
            .to_string(),
        "ttl: unknown field `ttl`, expected one of `enabled`, `org`, `image`, `region`, \
         `internal_port`, `env`, `app_name`, `ttl_hours`, `max_concurrent`, `skip_drafts`, `allow_forks`, \
         `github_permissions`"
    );
    for w in [Wanted::Live, Wanted::Closed, Wanted::Expired] {
        let text = serde_json::to_string(&w).expect("serialises");
        assert_eq!(crate::json::read::<Wanted>(&text).expect("reads"), w);
    }
    for s in [
        Status::New,
        Status::Queued,
        Status::Deploying,
        Status::Ready,
        Status::Failed,
        Status::Destroyed,
        Status::Skipped,
    ] {
        let text = serde_json::to_string(&s).expect("serialises");
        assert_eq!(crate::json::read::<Status>(&text).expect("reads"), s);
    }
}
