//! Orchestration workflows in the core, as scenarios: SQLite with the real
//! migrations, a strict stateful fake of GitHub (anything it does not know fails the
//! test), real webhook fixtures adapted per scenario, and the queue drained by hand.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use super::definition::{Definition, FileChange, OrchestrateConfig, StepId};
use super::runner::{
    announce, apply_event, create_service, get_service, list_services, sweep, Runner,
};
use super::store::{Workflow, WorkflowStore};
use super::*;
use crate::flow::Verdict;
use crate::github::client::GithubConfig;
use crate::github::deliveries::DeliveryId;
use crate::github::events::{parse, GithubEvent};
use crate::http::{HttpRequest, HttpResponse, Method};
use crate::retry::StepClaims;
use crate::secret::Secret;
use crate::testing::{block_on, json_response, FakeHttp, SqliteSql};

const GH: &str = "http://gh.test";
const T0: i64 = 1_736_937_000_000;
const INFRA_APPLY: &str = ".github/workflows/apply.yml";

fn config() -> OrchestrateConfig {
    OrchestrateConfig::from_lookup(|k| {
        Some(
            match k {
                "ORCHESTRATE_OWNER" => "acme",
                "SERVICE_TEMPLATES" => "node-api=template-node, go-grpc=template-go",
                _ => return None,
            }
            .to_owned(),
        )
    })
    .expect("valid config")
}

fn sha(n: u8) -> String {
    format!("{n:02x}").repeat(20)
}

/// GitHub as the fake keeps it; tests look at it and flip its failures.
#[derive(Default)]
struct World {
    branches: BTreeSet<(String, String)>,
    /// Files on the default branch: (repo, path) → text.
    files: BTreeMap<(String, String), String>,
    /// Files written on a branch: (repo, branch, path) → text.
    written: BTreeMap<(String, String, String), String>,
    /// (repo, number, branch, node id)
    pulls: Vec<(String, u64, String, String)>,
    /// Answers to give before the normal one, by "METHOD path" prefix.
    failures: Vec<(String, u16, Value)>,
    /// GraphQL answers "clean status" to enablePullRequestAutoMerge.
    clean_status: bool,
    telegram_sent: u32,
}

/// A stand-in for a git blob sha: anything that changes with the text.
fn blob(text: &str) -> String {
    format!(
        "blob-{}-{}",
        text.len(),
        text.bytes().map(u64::from).sum::<u64>()
    )
}

fn fake(world: Rc<RefCell<World>>) -> FakeHttp {
    FakeHttp::routed(move |req| route(&mut world.borrow_mut(), req))
}

fn route(w: &mut World, req: &HttpRequest) -> Result<HttpResponse, crate::http::HttpError> {
    if req.url.starts_with("http://tg.test/") {
        w.telegram_sent += 1;
        return json_response(200, json!({"ok": true, "result": {"message_id": 77}}));
    }
    let rest = req
        .url
        .strip_prefix(GH)
        .unwrap_or_else(|| panic!("unexpected host: {}", req.url));
    let call = format!("{} {rest}", req.method.as_str());
    if let Some(i) = w.failures.iter().position(|(p, _, _)| call.starts_with(p)) {
        let (_, status, body) = w.failures.remove(i);
        return json_response(status, body);
    }
    let body: Value = req
        .body
        .as_deref()
        .map(|b| serde_json::from_str(b).expect("JSON body"))
        .unwrap_or(Value::Null);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path == "/graphql" {
        let q = body["query"].as_str().unwrap_or_default();
        if q.contains("enablePullRequestAutoMerge") && w.clean_status {
            return json_response(
                200,
                json!({"data": null, "errors": [{"type": "UNPROCESSABLE", "message": "Pull request Pull request is in clean status"}]}),
            );
        }
        return json_response(200, json!({"data": {"x": {"clientMutationId": null}}}));
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    assert_eq!(parts[0], "repos", "unexpected call {call}");
    let repo = format!("{}/{}", parts[1], parts[2]);
    let tail = parts[3..].join("/");
    let pr_json = |n: u64, branch: &str, node: &str| {
        json!({
            "number": n, "node_id": node, "html_url": format!("https://github.com/{repo}/pull/{n}"),
            "head": {"ref": branch, "sha": sha(0xee)}, "base": {"ref": "main", "sha": sha(0xbb)},
        })
    };
    match (req.method, tail.as_str()) {
        (Method::Get, "") => json_response(200, json!({"default_branch": "main"})),
        (Method::Get, "pulls") => {
            let head = query
                .split('&')
                .find_map(|p| p.strip_prefix("head="))
                .expect("head= query");
            let branch = head.split_once(':').expect("owner:branch").1;
            let found: Vec<Value> = w
                .pulls
                .iter()
                .filter(|(r, _, b, _)| *r == repo && b == branch)
                .map(|(_, n, b, node)| pr_json(*n, b, node))
                .collect();
            json_response(200, json!(found))
        }
        (Method::Post, "pulls") => {
            let branch = body["head"].as_str().expect("head").to_owned();
            assert!(
                w.branches.contains(&(repo.clone(), branch.clone())),
                "a PR for a branch that does not exist"
            );
            let n = 10 + w.pulls.len() as u64;
            let node = format!("PR_node_{n}");
            w.pulls
                .push((repo.clone(), n, branch.clone(), node.clone()));
            json_response(201, pr_json(n, &branch, &node))
        }
        (Method::Get, t) if t.starts_with("branches/") => {
            let branch = &t["branches/".len()..];
            if branch == "main" || w.branches.contains(&(repo.clone(), branch.to_owned())) {
                json_response(
                    200,
                    json!({"commit": {"sha": sha(0xbb), "commit": {"tree": {"sha": sha(0xcc)}}}}),
                )
            } else {
                json_response(404, json!({"message": "Branch not found"}))
            }
        }
        (Method::Get, t) if t.starts_with("contents/") => {
            let path = t["contents/".len()..].to_owned();
            let at = query
                .split('&')
                .find_map(|p| p.strip_prefix("ref="))
                .expect("contents are read at a ref")
                .to_owned();
            let text = w
                .written
                .get(&(repo.clone(), at.clone(), path.clone()))
                .or_else(|| w.files.get(&(repo.clone(), path.clone())));
            match text {
                Some(c) => json_response(
                    200,
                    json!({"type": "file", "encoding": "base64", "content": STANDARD.encode(c), "sha": blob(c)}),
                ),
                None => json_response(404, json!({"message": "Not Found"})),
            }
        }
        (Method::Put, t) if t.starts_with("contents/") => {
            let path = t["contents/".len()..].to_owned();
            let branch = body["branch"].as_str().expect("a branch").to_owned();
            assert!(
                w.branches.contains(&(repo.clone(), branch.clone())),
                "writes go to the PR's branch, made first"
            );
            let current = w
                .written
                .get(&(repo.clone(), branch.clone(), path.clone()))
                .or_else(|| w.files.get(&(repo.clone(), path.clone())));
            // GitHub needs the sha of the blob being replaced, and only then.
            assert_eq!(
                body.get("sha").and_then(Value::as_str),
                current.map(|c| blob(c)).as_deref(),
                "the sha of {path}"
            );
            let text = String::from_utf8(
                STANDARD
                    .decode(body["content"].as_str().expect("content"))
                    .expect("base64"),
            )
            .expect("utf-8");
            w.written.insert((repo, branch, path), text);
            json_response(201, json!({"content": {"sha": "x"}}))
        }
        (Method::Post, "git/refs") => {
            assert_eq!(body["sha"], json!(sha(0xbb)), "branched from main's head");
            let branch = body["ref"]
                .as_str()
                .and_then(|r| r.strip_prefix("refs/heads/"))
                .expect("a branch ref")
                .to_owned();
            if !w.branches.insert((repo, branch)) {
                return json_response(422, json!({"message": "Reference already exists"}));
            }
            json_response(201, json!({"ref": body["ref"]}))
        }
        (Method::Post, t) if t.starts_with("actions/workflows/") && t.ends_with("/dispatches") => {
            Ok(HttpResponse::new(204, ""))
        }
        _ => panic!("unexpected call {call}"),
    }
}

struct Harness {
    sql: SqliteSql,
    http: FakeHttp,
    world: Rc<RefCell<World>>,
    github: GithubConfig,
    config: OrchestrateConfig,
    queue: RefCell<Vec<StepRef>>,
    now: std::cell::Cell<i64>,
}

impl Harness {
    fn new() -> Self {
        let world = Rc::new(RefCell::new(World::default()));
        world.borrow_mut().files.insert(
            ("acme/nginx-upstreams".into(), "upstreams.conf".into()),
            "upstream billing {\n  server billing.internal:8080;\n}\n".into(),
        );
        Harness {
            sql: SqliteSql::migrated(),
            http: fake(world.clone()),
            world,
            github: GithubConfig {
                api_base: GH.into(),
                token: Secret::new("ghs_test"),
            },
            config: config(),
            queue: RefCell::default(),
            now: std::cell::Cell::new(T0),
        }
    }

    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.now.get())
    }

    /// `STEP_STALE_SECONDS` at its default.
    fn claims(&self) -> StepClaims {
        StepClaims::new(crate::retry::DEFAULT_STEP_STALE_SECONDS)
    }

    fn later(&self, seconds: i64) {
        self.now.set(self.now.get() + seconds * 1000);
    }

    fn create(&self, name: &str) -> i64 {
        let body = json!({"repositoryName": name, "serviceType": "node-api", "owningTeam": "payments-team"});
        let created = block_on(create_service(
            &self.sql,
            &self.config,
            body.to_string().as_bytes(),
            self.now(),
        ))
        .expect("created");
        self.queue.borrow_mut().extend(created.ready);
        created.workflow.id
    }

    fn runner(&self) -> Runner<'_, FakeHttp, &SqliteSql> {
        Runner {
            http: &self.http,
            sql: &self.sql,
            github: &self.github,
            claims: self.claims(),
        }
    }

    /// Runs queued steps until none is left; a retried message runs again.
    fn drain(&self) -> Vec<String> {
        let mut log = Vec::new();
        for _ in 0..100 {
            let next = self.queue.borrow_mut().pop();
            let Some(step) = next else { return log };
            let run = block_on(self.runner().run_step(&step, self.now()));
            log.push(run.log.clone());
            if let Verdict::Retry { delay_seconds } = run.verdict {
                self.later(i64::from(delay_seconds));
                self.queue.borrow_mut().insert(0, step);
            }
            self.queue.borrow_mut().extend(run.next);
        }
        panic!("the queue never drained: {log:#?}")
    }

    fn deliver(&self, delivery: &str, event: &GithubEvent) -> runner::Effects {
        let fx = block_on(apply_event(
            &self.sql,
            &DeliveryId::parse(delivery).expect("delivery id"),
            event,
            self.now(),
        ))
        .expect("applied");
        self.queue.borrow_mut().extend(fx.ready.clone());
        fx
    }

    fn workflow(&self, id: i64) -> Workflow {
        block_on(WorkflowStore::new(&self.sql).get(id))
            .expect("db")
            .expect("exists")
    }

    fn step(&self, id: i64, step: &str) -> store::StepRecord {
        self.workflow(id)
            .steps
            .into_iter()
            .find(|s| s.id.as_str() == step)
            .expect("step exists")
    }

    fn status(&self, id: i64, step: &str) -> StepStatus {
        self.step(id, step).status
    }

    fn calls_matching(&self, needle: &str) -> Vec<String> {
        self.http
            .calls()
            .into_iter()
            .filter(|c| c.contains(needle))
            .collect()
    }

    /// The JSON bodies of POSTs to URLs containing `needle`.
    fn bodies_to(&self, needle: &str) -> Vec<Value> {
        self.http
            .seen
            .borrow()
            .iter()
            .filter(|r| r.url.contains(needle) && r.body.is_some())
            .map(|r| serde_json::from_str(r.body.as_deref().unwrap_or("null")).expect("JSON"))
            .collect()
    }
}

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../tests/fixtures/github/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("JSON")
}

/// `pull_request.closed.json` as the merge (or close) of `repo`#`number`.
fn pr_closed(repo: &str, number: u64, merged_as: Option<&str>) -> GithubEvent {
    let mut v = fixture("pull_request.closed.json");
    v["number"] = json!(number);
    v["repository"]["full_name"] = json!(repo);
    v["pull_request"]["number"] = json!(number);
    v["pull_request"]["node_id"] = json!(format!("PR_node_{number}"));
    v["pull_request"]["merged"] = json!(merged_as.is_some());
    v["pull_request"]["merge_commit_sha"] = json!(merged_as.unwrap_or(&sha(0x99)));
    v["pull_request"]["base"]["ref"] = json!("main");
    parse("pull_request", v.to_string().as_bytes()).expect("parses")
}

/// `workflow_run.completed.json` as a run of `path` in `repo` on `head_sha`.
fn run_completed(repo: &str, path: &str, head_sha: &str, conclusion: &str) -> GithubEvent {
    let mut v = fixture("workflow_run.completed.json");
    v["repository"]["full_name"] = json!(repo);
    v["workflow_run"]["path"] = json!(path);
    v["workflow_run"]["name"] = json!("Apply");
    v["workflow_run"]["head_sha"] = json!(head_sha);
    v["workflow_run"]["head_branch"] = json!("main");
    v["workflow_run"]["conclusion"] = json!(conclusion);
    parse("workflow_run", v.to_string().as_bytes()).expect("parses")
}

const MERGED: u8 = 0x4e;

/// Creates `payments` and runs it to where it waits for the infra merge.
fn up_to_the_infra_merge(h: &Harness) -> i64 {
    let id = h.create("payments");
    h.drain();
    assert_eq!(h.status(id, "infra_merged"), StepStatus::Waiting);
    id
}

#[test]
fn creates_a_service_end_to_end() {
    let h = Harness::new();
    let id = up_to_the_infra_merge(&h);

    // Infra PR: a branch made from one commit with the new file, then the PR, then
    // auto-merge. App-config and nginx PRs are open, without auto-merge yet.
    assert_eq!(h.status(id, "infra_pr"), StepStatus::AutoMergeEnabled);
    for s in ["app_config_pr", "nginx_pr"] {
        assert_eq!(h.status(id, s), StepStatus::Raised, "{s}");
    }
    assert_eq!(h.status(id, "service_definition_pr"), StepStatus::Pending);
    let written = |repo: &str, path: &str| {
        h.world
            .borrow()
            .written
            .get(&(repo.into(), "create-service/payments".into(), path.into()))
            .cloned()
            .unwrap_or_else(|| panic!("{path} written in {repo}"))
    };
    assert_eq!(h.bodies_to("/contents/").len(), 3, "one write per file");
    let tf = written("acme/infra", "services/payments/main.tf");
    assert!(
        tf.contains("module \"payments\" {") && tf.contains("team   = \"payments-team\""),
        "{tf}"
    );
    assert_eq!(
        written("acme/nginx-upstreams", "upstreams.conf"),
        "upstream billing {\n  server billing.internal:8080;\n}\nupstream payments {\n  server payments.internal:8080;\n}\n",
        "appended to the file as it is on main"
    );
    let refs = h.bodies_to("/git/refs");
    assert!(refs
        .iter()
        .all(|r| r["ref"] == "refs/heads/create-service/payments"));
    let pulls = h.bodies_to("/pulls");
    assert_eq!(pulls[0]["base"], "main");
    assert_eq!(pulls[0]["title"], "Create service payments: infrastructure");
    let graphql = h.bodies_to("/graphql");
    assert_eq!(graphql.len(), 1, "only the infra PR gets auto-merge now");
    assert_eq!(
        graphql[0]["variables"],
        json!({"id": "PR_node_10", "method": "SQUASH"})
    );
    assert!(graphql[0]["query"]
        .as_str()
        .expect("query")
        .contains("enablePullRequestAutoMerge"));

    // The infra PR merges; the wait moves on to the apply run on the merged commit.
    let fx = h.deliver("d-merge", &pr_closed("acme/infra", 10, Some(&sha(MERGED))));
    assert_eq!(fx.changed, vec![id]);
    h.drain();
    let infra_pr = h.step(id, "infra_pr");
    assert_eq!(infra_pr.status, StepStatus::Merged);
    assert_eq!(infra_pr.merged_sha.as_deref(), Some(sha(MERGED).as_str()));
    let applied = h.step(id, "infra_applied");
    assert_eq!(applied.status, StepStatus::Waiting);
    assert_eq!(applied.merged_sha.as_deref(), Some(sha(MERGED).as_str()));
    assert!(h.calls_matching("service-definitions/pulls").is_empty());

    h.deliver(
        "d-run",
        &run_completed("acme/infra", INFRA_APPLY, &sha(MERGED), "success"),
    );
    h.drain();
    let wf = h.workflow(id);
    assert_eq!(wf.status, WorkflowStatus::Succeeded, "{wf:#?}");
    assert!(wf.steps.iter().all(StepRecord::is_done));
    let graphql = h.bodies_to("/graphql");
    let nodes: BTreeSet<&str> = graphql
        .iter()
        .filter_map(|b| b["variables"]["id"].as_str())
        .collect();
    assert_eq!(
        nodes,
        ["PR_node_10", "PR_node_11", "PR_node_12", "PR_node_13"]
            .into_iter()
            .collect(),
        "auto-merge on infra, app-config, nginx and the service definition"
    );
    let dispatch = h.bodies_to("/dispatches");
    assert_eq!(
        dispatch,
        vec![json!({
            "ref": "main",
            "inputs": {"name": "payments", "team": "payments-team", "type": "node-api", "template": "template-node"},
            "return_run_details": true,
        })]
    );
    assert_eq!(
        h.calls_matching("/dispatches"),
        vec!["POST http://gh.test/repos/acme/service-boilerplate/actions/workflows/create-service.yml/dispatches"]
    );

    // The status record, as GET /api/services/payments shows it.
    let record = serde_json::to_value(block_on(get_service(&h.sql, "payments")).expect("found"))
        .expect("serialises");
    let step = |id: &str| {
        record["steps"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["id"] == id))
            .cloned()
            .expect("step")
    };
    let infra = step("infra_merged");
    assert_eq!(infra["status"], "merged");
    assert_eq!(
        infra["pr"],
        json!({"number": 10, "node_id": "PR_node_10", "sha": sha(0xee), "ref": "create-service/payments",
               "base": "main", "html_url": "https://github.com/acme/infra/pull/10"})
    );
    assert_eq!(infra["merged_sha"], json!(sha(MERGED)));
    let applied = step("infra_applied");
    assert_eq!(applied["run"]["id"], 289_782_451);
    assert_eq!(applied["run"]["path"], INFRA_APPLY);
    assert_eq!(applied["run"]["conclusion"], "success");
    assert_eq!(applied["run"]["created_at"], "2020-10-05T16:33:24Z");
    assert_eq!(applied["events"][0]["source"], "workflow_run");
    assert_eq!(applied["events"][0]["delivery"], "d-run");
    assert_eq!(
        step("infra_pr")["events"][0]["detail"],
        format!("PR #10 merged as {}", &sha(MERGED)[..7])
    );
    assert_eq!(record["input"]["owningTeam"], "payments-team");
    let list = block_on(list_services(&h.sql, None, 10)).expect("lists");
    assert_eq!((list.len(), list[0].name.as_str()), (1, "payments"));
}

#[test]
fn a_failed_infra_apply_fails_the_workflow_and_raises_no_more_prs() {
    let h = Harness::new();
    let id = up_to_the_infra_merge(&h);
    h.deliver("d-merge", &pr_closed("acme/infra", 10, Some(&sha(MERGED))));
    h.drain();
    h.deliver(
        "d-run",
        &run_completed("acme/infra", INFRA_APPLY, &sha(MERGED), "failure"),
    );
    h.drain();
    let wf = h.workflow(id);
    assert_eq!(wf.status, WorkflowStatus::Failed);
    let error = wf.error.as_deref().expect("an error");
    assert!(
        error.starts_with("infra_applied: workflow Apply concluded failure: https://github.com/octo-org/octo-repo/actions/runs/289782451"),
        "{error}"
    );
    assert_eq!(h.status(id, "infra_applied"), StepStatus::Failed);
    for s in [
        "service_definition_pr",
        "app_config_auto_merge",
        "boilerplate",
    ] {
        assert_eq!(h.status(id, s), StepStatus::Skipped, "{s}");
    }
    assert!(h.calls_matching("service-definitions").is_empty());
    assert!(h.calls_matching("/dispatches").is_empty());
    assert_eq!(
        h.bodies_to("/graphql").len(),
        1,
        "no auto-merge enabled after the failure"
    );
}

#[test]
fn a_run_before_the_merge_is_kept_and_matched_when_the_merge_comes() {
    let h = Harness::new();
    let id = up_to_the_infra_merge(&h);
    let run = run_completed("acme/infra", INFRA_APPLY, &sha(MERGED), "success");
    let fx = h.deliver("d-run", &run);
    assert!(fx.changed.is_empty() && fx.ready.is_empty());
    assert_eq!(fx.log, vec!["delivery d-run: kept for later"]);
    // A run in a repository no workflow uses is not ours to keep.
    let other = h.deliver(
        "d-other",
        &run_completed("octo-org/octo-repo", INFRA_APPLY, &sha(1), "success"),
    );
    assert!(other.log.is_empty());

    h.deliver("d-merge", &pr_closed("acme/infra", 10, Some(&sha(MERGED))));
    h.drain();
    let applied = h.step(id, "infra_applied");
    assert_eq!(applied.status, StepStatus::Succeeded, "{applied:#?}");
    assert_eq!(applied.events[0].delivery.as_deref(), Some("d-run"));
    assert_eq!(h.workflow(id).status, WorkflowStatus::Succeeded);
    let kept: i64 = h
        .sql
        .conn_for_tests()
        .query_row(
            "SELECT COUNT(*) FROM workflow_events WHERE matched_at IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(kept, 1);
}

#[test]
fn duplicate_events_change_nothing() {
    let h = Harness::new();
    let id = up_to_the_infra_merge(&h);
    let merge = pr_closed("acme/infra", 10, Some(&sha(MERGED)));
    h.deliver("d-merge", &merge);
    // The same delivery again, and the same event from a second hook.
    assert_eq!(h.deliver("d-merge", &merge), runner::Effects::default());
    assert_eq!(
        h.deliver("d-merge-org-hook", &merge),
        runner::Effects::default()
    );
    h.drain();
    let run = run_completed("acme/infra", INFRA_APPLY, &sha(MERGED), "success");
    h.deliver("d-run", &run);
    assert_eq!(h.deliver("d-run", &run), runner::Effects::default());
    h.drain();
    assert_eq!(h.step(id, "infra_pr").events.len(), 1);
    assert_eq!(h.step(id, "infra_applied").events.len(), 1);
    // A failure for the same commit after the success cannot undo it.
    h.deliver(
        "d-rerun",
        &run_completed("acme/infra", INFRA_APPLY, &sha(MERGED), "failure"),
    );
    assert_eq!(h.workflow(id).status, WorkflowStatus::Succeeded);
    assert_eq!(h.bodies_to("/pulls").len(), 4, "one PR per repository");
}

#[test]
fn a_step_only_moves_forward() {
    let h = Harness::new();
    let id = h.create("payments");
    // Run just the infra PR, then the merge arrives before auto-merge is enabled.
    let first = h.queue.borrow_mut().pop().expect("infra_pr");
    let run = block_on(h.runner().run_step(&first, h.now()));
    h.queue.borrow_mut().extend(run.next);
    h.deliver("d-merge", &pr_closed("acme/infra", 10, Some(&sha(MERGED))));
    h.drain();
    let pr = h.step(id, "infra_pr");
    assert_eq!(
        pr.status,
        StepStatus::Merged,
        "auto-merge never overwrites merged"
    );
    assert!(
        h.bodies_to("/graphql").is_empty(),
        "no auto-merge on a merged PR"
    );
    // A late "raised" (a redelivered step, a stale writer) is refused.
    let store = WorkflowStore::new(&h.sql);
    let late = Move::to(StepStatus::Raised);
    assert!(!block_on(store.advance(id, &pr.id, &late, h.now())).expect("db"));
    assert_eq!(h.status(id, "infra_pr"), StepStatus::Merged);
    // Running a finished step again does nothing.
    let again = block_on(h.runner().run_step(&first, h.now()));
    assert_eq!(again.verdict, Verdict::Ack);
    assert!(
        again.log.ends_with("finished or held elsewhere"),
        "{}",
        again.log
    );
    assert_eq!(h.bodies_to("/pulls").len(), 3);
}

#[test]
fn a_pr_closed_without_merging_fails_the_workflow() {
    let h = Harness::new();
    let id = up_to_the_infra_merge(&h);
    h.deliver("d-close", &pr_closed("acme/infra", 10, None));
    let wf = h.workflow(id);
    assert_eq!(wf.status, WorkflowStatus::Failed);
    assert_eq!(
        wf.error.as_deref(),
        Some("infra_pr: PR #10 was closed without being merged")
    );
    assert_eq!(h.status(id, "infra_merged"), StepStatus::Skipped);
}

#[test]
fn a_wait_times_out_and_fails_the_workflow() {
    let h = Harness::new();
    let id = up_to_the_infra_merge(&h);
    h.later(59 * 60);
    assert_eq!(
        block_on(sweep(&h.sql, h.claims(), h.now())).changed,
        Vec::<i64>::new()
    );
    h.later(2 * 60);
    let fx = block_on(sweep(&h.sql, h.claims(), h.now()));
    assert_eq!(fx.changed, vec![id]);
    let wf = h.workflow(id);
    assert_eq!(wf.status, WorkflowStatus::Failed);
    assert_eq!(
        wf.error.as_deref(),
        Some("infra_merged: timed out after 60 minutes waiting for acme/infra#10 to be merged")
    );
    let step = h.step(id, "infra_merged");
    assert_eq!(
        step.events.last().map(|e| e.source.as_str()),
        Some("timeout")
    );
    // A merge after the timeout changes nothing.
    h.deliver("d-late", &pr_closed("acme/infra", 10, Some(&sha(MERGED))));
    assert_eq!(h.workflow(id).status, WorkflowStatus::Failed);
}

#[test]
fn the_sweep_requeues_a_lost_message() {
    let h = Harness::new();
    let id = h.create("payments");
    h.queue.borrow_mut().clear(); // the message was lost
    assert!(
        block_on(sweep(&h.sql, h.claims(), h.now()))
            .ready
            .is_empty(),
        "too soon to tell"
    );
    h.later(600);
    let fx = block_on(sweep(&h.sql, h.claims(), h.now()));
    assert_eq!(
        fx.ready,
        vec![StepRef {
            workflow_id: id,
            step: StepId::parse("infra_pr").expect("id")
        }]
    );
}

#[test]
fn the_sweep_leaves_a_fresh_claim_and_a_future_retry_alone_but_takes_stale_or_due_ones() {
    let h = Harness::new();
    let id = h.create("payments");
    h.queue.borrow_mut().clear();
    let store = WorkflowStore::new(&h.sql);
    let infra = StepId::parse("infra_pr").expect("id");
    let swept = |h: &Harness| block_on(sweep(&h.sql, h.claims(), h.now())).ready;
    let ours = vec![StepRef {
        workflow_id: id,
        step: infra.clone(),
    }];
    // An attempt holds the step: untouched for 170 s, but its claim is fresh.
    block_on(store.claim(id, &infra, h.now(), h.claims()))
        .expect("db")
        .expect("claimed");
    h.later(170);
    assert!(swept(&h).is_empty(), "a fresh claim is left alone");
    // Its consumer died: once the claim is stale the sweep takes it.
    h.later(11);
    assert_eq!(swept(&h), ours);
    let taken = block_on(store.claim(id, &infra, h.now(), h.claims()))
        .expect("db")
        .expect("stale, taken over");
    assert_eq!(taken.attempts, 2);
    // Released for a retry due in 400 s: untouched past the stale time, but not due.
    let due = h.now().plus_seconds(400);
    block_on(store.release(id, &infra, "GitHub 502", due, h.now())).expect("db");
    h.later(200);
    assert!(swept(&h).is_empty(), "a future retry is left alone");
    assert!(
        block_on(store.claim(id, &infra, h.now(), h.claims()))
            .expect("db")
            .is_none(),
        "nothing claims it early"
    );
    h.later(200);
    assert_eq!(swept(&h), ours, "due: its message was lost");
    let retried = block_on(store.claim(id, &infra, h.now(), h.claims()))
        .expect("db")
        .expect("due");
    assert_eq!(retried.attempts, 3);
}

#[test]
fn transient_github_errors_are_retried_with_backoff() {
    let h = Harness::new();
    let id = h.create("payments");
    h.world.borrow_mut().failures = vec![
        (
            "POST /repos/acme/infra/pulls".into(),
            502,
            json!({"message": "Bad Gateway"}),
        ),
        (
            "POST /repos/acme/infra/pulls".into(),
            403,
            json!({"message": "API rate limit exceeded"}),
        ),
    ];
    let step = h.queue.borrow_mut().pop().expect("infra_pr");
    let first = block_on(h.runner().run_step(&step, h.now()));
    assert_eq!(first.verdict, Verdict::Retry { delay_seconds: 2 });
    let rec = h.step(id, "infra_pr");
    assert_eq!((rec.status, rec.attempts), (StepStatus::Running, 1));
    assert_eq!(rec.error.as_deref(), Some("GitHub 502: Bad Gateway"));
    // A message before the retry's time runs nothing and comes back when it is due.
    let early = block_on(h.runner().run_step(&step, h.now()));
    assert_eq!(early.verdict, Verdict::Retry { delay_seconds: 2 });
    assert_eq!(h.step(id, "infra_pr").attempts, 1, "not run early");
    h.later(2);
    let second = block_on(h.runner().run_step(&step, h.now()));
    assert_eq!(second.verdict, Verdict::Retry { delay_seconds: 4 });
    h.later(4);
    let third = block_on(h.runner().run_step(&step, h.now()));
    assert_eq!(third.verdict, Verdict::Ack);
    let rec = h.step(id, "infra_pr");
    assert_eq!(
        (rec.status, rec.attempts, rec.error),
        (StepStatus::Raised, 3, None)
    );
    // The branch made by the first attempt was reused, not made again.
    assert_eq!(h.bodies_to("/git/refs").len(), 1);
}

#[test]
fn a_rejected_call_fails_the_step_at_once() {
    let h = Harness::new();
    let id = h.create("payments");
    h.world.borrow_mut().files.insert(
        ("acme/infra".into(), "services/payments/main.tf".into()),
        "# someone else's\n".into(),
    );
    h.drain();
    let wf = h.workflow(id);
    assert_eq!(wf.status, WorkflowStatus::Failed);
    assert_eq!(
        wf.error.as_deref(),
        Some("infra_pr: GitHub services/payments/main.tf already exists in acme/infra")
    );
    assert_eq!(h.step(id, "infra_pr").attempts, 1);
    assert!(h.bodies_to("/pulls").is_empty());
}

#[test]
fn an_open_pr_from_an_earlier_attempt_is_reused() {
    let h = Harness::new();
    let id = h.create("payments");
    {
        let mut w = h.world.borrow_mut();
        w.branches
            .insert(("acme/infra".into(), "create-service/payments".into()));
        w.pulls.push((
            "acme/infra".into(),
            10,
            "create-service/payments".into(),
            "PR_node_10".into(),
        ));
    }
    let step = h.queue.borrow_mut().pop().expect("infra_pr");
    block_on(h.runner().run_step(&step, h.now()));
    assert_eq!(h.step(id, "infra_pr").pr.map(|p| p.number), Some(10));
    assert!(h.calls_matching("/repos/acme/infra/git/").is_empty());
    assert!(h.calls_matching("PUT ").is_empty());
    assert!(!h
        .calls_matching("POST http://gh.test/repos/acme/infra/pulls")
        .iter()
        .any(|_| true));
}

#[test]
fn a_clean_pr_is_merged_when_auto_merge_is_refused() {
    let h = Harness::new();
    h.world.borrow_mut().clean_status = true;
    let id = up_to_the_infra_merge(&h);
    assert_eq!(
        h.status(id, "infra_auto_merge"),
        StepStatus::AutoMergeEnabled
    );
    let graphql = h.bodies_to("/graphql");
    assert!(graphql[1]["query"]
        .as_str()
        .expect("query")
        .contains("mergePullRequest"));
}

#[test]
fn invalid_and_duplicate_requests() {
    let h = Harness::new();
    let create = |body: Value| {
        block_on(create_service(
            &h.sql,
            &h.config,
            body.to_string().as_bytes(),
            h.now(),
        ))
    };
    let err = |body: Value| {
        let e = create(body).expect_err("refused");
        (e.status(), e.to_string())
    };
    let ok = json!({"repositoryName": "payments", "serviceType": "go-grpc", "owningTeam": "core"});
    for (bad, field) in [
        ("Payments", "repositoryName"),
        ("p", "repositoryName"),
        ("9lives", "repositoryName"),
        (&"x".repeat(40), "repositoryName"),
    ] {
        let mut body = ok.clone();
        body["repositoryName"] = json!(bad);
        let (status, text) = err(body);
        assert_eq!(status, 400);
        assert!(text.starts_with(field), "{text}");
    }
    let mut body = ok.clone();
    body["serviceType"] = json!("cobol");
    assert_eq!(
        err(body),
        (400, "serviceType must be one of: go-grpc, node-api".into())
    );
    let mut body = ok.clone();
    body["owningTeam"] = json!("<b>");
    assert!(err(body).1.starts_with("owningTeam"));
    assert_eq!(
        err(json!({"repositoryName": "payments", "serviceType": "go-grpc"})),
        (400, "missing field `owningTeam`".into())
    );
    let mut body = ok.clone();
    body["repositoryName"] = json!(7);
    assert!(err(body).1.starts_with("repositoryName: invalid type"));

    let first = create(ok.clone()).expect("created");
    assert_eq!(first.ready.len(), 1);
    let dup = create(ok.clone()).expect_err("a duplicate");
    assert_eq!(dup.status(), 409);
    assert_eq!(
        dup.body(),
        r#"{"error":"a workflow for payments is already running","success":false}"#
    );
    assert_eq!(
        block_on(get_service(&h.sql, "nope"))
            .expect_err("404")
            .status(),
        404
    );
    // Once it has failed, the name may be tried again.
    let store = WorkflowStore::new(&h.sql);
    block_on(store.finish(
        first.workflow.id,
        WorkflowStatus::Failed,
        Some("x"),
        h.now(),
    ))
    .expect("db");
    assert!(create(ok).is_ok());
}

#[test]
fn the_telegram_message_follows_the_workflow_through_its_live_message() {
    let h = Harness::new();
    let config = crate::config::Config::from_lookup(|k| match k {
        "TELEGRAM_BOT_TOKEN" => Some("123:abc".into()),
        "TELEGRAM_CHAT_ID" => Some("-100".into()),
        _ => None,
    });
    let queue = crate::testing::MemoryQueue::default();
    let id = up_to_the_infra_merge(&h);
    let announce_now = || block_on(announce(&config, &h.sql, &queue, id, h.now()));
    assert_eq!(announce_now(), None);
    let live = crate::live::LiveStore::new(&h.sql);
    let subject = format!("workflow:{id}");
    assert_eq!(
        block_on(live.messages(&subject)).expect("rows"),
        vec![("-100".to_owned(), String::new(), None)],
        "one message, in the default route's chat"
    );
    let queued = |q: &crate::testing::MemoryQueue| {
        q.telegram
            .borrow()
            .iter()
            .filter(|m| matches!(m, crate::jobs::JobMessage::TelegramLive { .. }))
            .count()
    };
    assert_eq!(queued(&queue), 1);
    let html: String = {
        let rows = block_on(crate::ports::Sql::query(
            &h.sql,
            "SELECT html, version FROM telegram_live WHERE subject = ?1",
            &[subject.as_str().into()],
        ))
        .expect("row");
        crate::row::Columns::opt_text(&rows[0], "html").expect("html")
    };
    assert!(
        html.starts_with("<b>🛠 Create service payments</b>"),
        "{html}"
    );
    assert!(html.contains("⏱ Merge of"), "{html}");
    // Nothing changed: nothing to send.
    announce_now();
    assert_eq!(queued(&queue), 1);
    // An event moves the workflow: the same message is brought up to date.
    let fx = h.deliver("d-merge", &pr_closed("acme/infra", 10, Some(&sha(MERGED))));
    assert_eq!(fx.changed, vec![id]);
    announce_now();
    assert_eq!(queued(&queue), 2);
    assert_eq!(block_on(live.messages(&subject)).expect("rows").len(), 1);
}

#[test]
fn the_message_escapes_what_comes_from_outside() {
    let h = Harness::new();
    let id = h.create("payments");
    let mut wf = h.workflow(id);
    wf.error = Some("x <script> & \"y\"".into());
    wf.input["owningTeam"] = json!("<team>");
    let text = message::render(&wf);
    assert!(
        text.contains("<b>Error:</b> x &lt;script&gt; &amp; &quot;y&quot;"),
        "{text}"
    );
    assert!(text.contains("&lt;team&gt;"));
    assert!(
        text.contains("⏳ PR in acme/infra <i>pending</i>"),
        "{text}"
    );
}

#[test]
fn the_default_definition_is_valid_and_uses_the_configured_repositories() {
    let mut c = config();
    c.infra_repo = crate::github::RepoFullName::parse("other/tf").expect("repo");
    let def = default_create_service_for(&c);
    for s in &def.steps {
        assert_eq!(StepId::parse(s.id.as_str()).as_ref(), Some(&s.id));
    }
    let Action::OpenPr { repository, .. } = &def.steps[0].action else {
        panic!("open_pr first")
    };
    assert_eq!(repository, "other/tf");
    let json = serde_json::to_string(&def).expect("serialises");
    assert_eq!(Definition::parse(&json).expect("round trips"), def);
    let rendered = c.definition().render(
        &super::definition::Vars {
            name: "svc".into(),
            team: "t".into(),
            service_type: "node-api".into(),
            template: "template-node".into(),
        },
        45,
    );
    rendered.validate().expect("valid");
    assert_eq!(
        rendered.steps[4].timeout_minutes,
        Some(45),
        "waits get the default"
    );
    assert_eq!(rendered.steps[0].timeout_minutes, None);
}

fn default_create_service_for(c: &OrchestrateConfig) -> Definition {
    definition::default_create_service(c)
}

#[test]
fn definitions_are_validated_naming_the_field() {
    let parse = |steps: Value| Definition::parse(&json!({ "steps": steps }).to_string());
    let pr = json!({"id": "pr", "action": {"kind": "open_pr", "repository": "a/b", "branch": "x",
        "title": "t", "files": [{"op": "create", "path": "f", "content": "c"}]}});
    let e = parse(json!([{"id": "a", "action": {"kind": "await_merge", "pr": "x"}, "extra": 1}]))
        .expect_err("unknown field");
    assert!(
        e.starts_with("steps[0]: unknown field `extra`") || e.contains("extra"),
        "{e}"
    );
    let e = parse(json!([{"id": "A", "action": {"kind": "await_merge", "pr": "x"}}]))
        .expect_err("bad id");
    assert!(
        e.starts_with("steps[0]") && e.contains("is not a step id"),
        "{e}"
    );
    let e = parse(json!([pr, {"id": "m", "action": {"kind": "teleport"}}])).expect_err("bad kind");
    assert!(e.starts_with("steps[1].action"), "{e}");

    let check = |steps: Value| parse(steps).expect("parses").validate();
    assert_eq!(
        check(
            json!([pr, {"id": "m", "after": ["nope"], "action": {"kind": "await_merge", "pr": "pr"}}])
        ),
        Err("steps[1].after[0]: \"nope\" is not a step before this one".into())
    );
    assert_eq!(
        check(json!([pr, {"id": "m", "action": {"kind": "await_merge", "pr": "pr"}}])),
        Err("steps[1].action.pr: \"pr\" is not an open_pr step this step comes after".into())
    );
    assert_eq!(
        check(
            json!([pr, {"id": "w", "after": ["pr"], "action": {"kind": "await_workflow", "merge": "pr", "workflow": ".github/workflows/a.yml"}}])
        ),
        Err(
            "steps[1].action.merge: \"pr\" is not an await_merge step this step comes after".into()
        )
    );
    let mut bad = pr.clone();
    bad["action"]["repository"] = json!("nope");
    assert_eq!(
        check(json!([bad])),
        Err("steps[0].action.repository: \"nope\" is not owner/repo".into())
    );
    let mut bad = pr.clone();
    bad["action"]["files"][0]["path"] = json!("../etc/passwd");
    assert!(check(json!([bad]))
        .expect_err("unsafe path")
        .starts_with("steps[0].action.files[0].path"));
    assert_eq!(
        check(json!([pr.clone(), pr])),
        Err("steps[1].id: \"pr\" is used twice".into())
    );
}

#[test]
fn every_action_and_file_change_round_trips() {
    use super::definition::{Action, MergeMethod, StepDef};
    let id = |s: &str| StepId::parse(s).expect("id");
    let step = |name: &str, after: &[&str], timeout_minutes, action| StepDef {
        id: id(name),
        after: after.iter().map(|a| id(a)).collect(),
        timeout_minutes,
        action,
    };
    let files = vec![
        FileChange::Create {
            path: "a".into(),
            content: "x".into(),
        },
        FileChange::Append {
            path: "b".into(),
            content: "y".into(),
        },
        FileChange::InsertBefore {
            path: "c".into(),
            marker: "# end".into(),
            content: "z".into(),
        },
    ];
    let mut steps = vec![
        step(
            "pr",
            &[],
            None,
            Action::OpenPr {
                repository: "a/b".into(),
                branch: "x".into(),
                title: "t".into(),
                body: String::new(),
                files,
            },
        ),
        step(
            "merged",
            &["pr"],
            Some(30),
            Action::AwaitMerge { pr: id("pr") },
        ),
        step(
            "applied",
            &["merged", "pr"],
            Some(5),
            Action::AwaitWorkflow {
                merge: id("merged"),
                workflow: ".github/workflows/a.yml".into(),
            },
        ),
        step(
            "dispatch",
            &[],
            None,
            Action::DispatchWorkflow {
                repository: "a/b".into(),
                workflow: "w.yml".into(),
                git_ref: Some("main".into()),
                inputs: [("k".to_owned(), "v".to_owned())].into(),
            },
        ),
        step(
            "dispatch_default",
            &[],
            None,
            Action::DispatchWorkflow {
                repository: "a/b".into(),
                workflow: "w.yml".into(),
                git_ref: None,
                inputs: BTreeMap::new(),
            },
        ),
    ];
    for (name, merge_method) in [
        ("merge", MergeMethod::Merge),
        ("squash", MergeMethod::Squash),
        ("rebase", MergeMethod::Rebase),
    ] {
        steps.push(step(
            name,
            &["pr"],
            None,
            Action::EnableAutoMerge {
                pr: id("pr"),
                merge_method,
            },
        ));
    }
    let def = Definition { steps };
    let json = serde_json::to_string(&def).expect("serialises");
    assert_eq!(crate::json::read::<Definition>(&json).expect("reads"), def);
    assert_eq!(Definition::parse(&json).expect("parses"), def);
}

#[test]
fn definition_errors_name_the_whole_path() {
    let parse = |steps: Value| {
        Definition::parse(&json!({ "steps": steps }).to_string()).expect_err("refused")
    };
    let pr = |file: Value| {
        json!([{"id": "pr", "action": {"kind": "open_pr", "repository": "a/b", "branch": "x",
            "title": "t", "files": [file]}}])
    };
    assert_eq!(
        parse(json!([{"id": "a", "action": {"kind": "await_merge", "pr": "x", "extra": 1}}])),
        "steps[0].action.extra: unknown field `extra`, expected `kind` or `pr`"
    );
    assert_eq!(
        parse(json!([{"id": "a", "action": {"pr": "x"}}])),
        "steps[0].action: missing field `kind`"
    );
    assert_eq!(
        parse(json!([{"id": "a", "action": {"kind": "await_merge", "pr": "X"}}])),
        "steps[0].action.pr: \"X\" is not a step id (a-z, 0-9, _)"
    );
    assert_eq!(
        parse(json!([{"id": "a", "action": {"kind": "enable_auto_merge", "pr": "x", "merge_method": "fast"}}])),
        "steps[0].action.merge_method: unknown variant `fast`, expected one of `merge`, `squash`, `rebase`"
    );
    assert_eq!(
        parse(pr(json!({"op": "move", "path": "f"}))),
        "steps[0].action.files[0].op: unknown variant `move`, expected one of `create`, `append`, `insert_before`"
    );
    assert_eq!(
        parse(pr(json!({"op": "create", "path": "f"}))),
        "steps[0].action.files[0]: missing field `content`"
    );
    assert_eq!(
        parse(pr(json!({"op": "append", "path": "f", "content": "c", "marker": "m"}))),
        "steps[0].action.files[0].marker: unknown field `marker`, expected one of `op`, `path`, `content`"
    );
    assert_eq!(
        parse(
            json!([{"id": "a", "action": {"kind": "dispatch_workflow", "repository": "a/b",
            "workflow": "w", "inputs": {"k": 1}}}])
        ),
        "steps[0].action.inputs.k: invalid type: integer `1`, expected a string"
    );
    assert_eq!(
        Definition::parse("[]").expect_err("not an object"),
        "a definition is {\"steps\": [...]}"
    );
}

#[test]
fn stored_runs_and_events_round_trip() {
    use super::store::{EventRecord, WorkflowRun};
    let full = WorkflowRun {
        name: Some("apply".into()),
        id: 7,
        html_url: Some("https://github.com/a/b/actions/runs/7".into()),
        created_at: Some("2025-01-15T10:00:00Z".into()),
        updated_at: Some("2025-01-15T10:05:00Z".into()),
        path: Some(INFRA_APPLY.into()),
        conclusion: Some("success".into()),
    };
    let bare = WorkflowRun {
        name: None,
        id: 8,
        html_url: None,
        created_at: None,
        updated_at: None,
        path: None,
        conclusion: None,
    };
    for run in [full, bare] {
        let json = serde_json::to_string(&run).expect("serialises");
        assert_eq!(crate::json::read::<WorkflowRun>(&json).expect("reads"), run);
    }
    let events = vec![
        EventRecord {
            source: "pull_request".into(),
            delivery: Some("d-1".into()),
            at: T0,
            detail: "merged".into(),
        },
        EventRecord {
            source: "timeout".into(),
            delivery: None,
            at: T0 + 1,
            detail: "timed out".into(),
        },
    ];
    let json = serde_json::to_string(&events).expect("serialises");
    assert_eq!(
        crate::json::read::<Vec<EventRecord>>(&json).expect("reads"),
        events
    );
}

#[test]
fn file_changes() {
    let create = FileChange::Create {
        path: "a".into(),
        content: "x\n".into(),
    };
    assert_eq!(create.apply(None), Ok(Some("x\n".into())));
    assert_eq!(
        create.apply(Some("x\n")),
        Ok(None),
        "made by an earlier attempt"
    );
    assert_eq!(create.apply(Some("y")), Err("a already exists".into()));
    let append = FileChange::Append {
        path: "a".into(),
        content: "b\n".into(),
    };
    assert_eq!(append.apply(Some("a")), Ok(Some("a\nb\n".into())));
    assert_eq!(append.apply(Some("a\nb\n")), Ok(None));
    assert_eq!(append.apply(None), Err("a does not exist".into()));
    let insert = FileChange::InsertBefore {
        path: "a".into(),
        marker: "# end".into(),
        content: "new".into(),
    };
    assert_eq!(
        insert.apply(Some("one\n  # end of list\n")),
        Ok(Some("one\nnew\n  # end of list\n".into()))
    );
    assert_eq!(
        insert.apply(Some("one\n")),
        Err("a has no line containing \"# end\"".into())
    );
}

#[test]
fn statuses_only_move_forward() {
    use StepStatus::*;
    assert!(Merged.allowed_from().contains(&Raised));
    assert!(!Raised.allowed_from().contains(&Merged));
    assert!(
        !Raised.allowed_from().contains(&Raised),
        "a duplicate is no move"
    );
    assert!(Failed.allowed_from().contains(&Waiting));
    assert!(!Failed.allowed_from().contains(&Succeeded));
    assert_eq!(Skipped.allowed_from(), vec![Pending, Waiting]);
    for s in StepStatus::ALL {
        assert_eq!(StepStatus::parse(s.as_str()), Some(s));
    }
    assert_eq!(StepKind::OpenPr.done_at(), Raised);
}

#[test]
fn a_merge_before_its_pr_number_is_stored_is_kept_and_matched() {
    let h = Harness::new();
    let id = h.create("payments");
    // The merge event is processed before the step that opened the PR recorded it.
    let fx = h.deliver("d-merge", &pr_closed("acme/infra", 10, Some(&sha(MERGED))));
    assert_eq!(fx.log, vec!["delivery d-merge: kept for later"]);
    h.drain();
    let pr = h.step(id, "infra_pr");
    assert_eq!(pr.status, StepStatus::Merged);
    assert_eq!(pr.events[0].delivery.as_deref(), Some("d-merge"));
    assert!(
        h.bodies_to("/graphql").is_empty(),
        "no auto-merge on a merged PR"
    );
    assert_eq!(h.status(id, "infra_merged"), StepStatus::Merged);
    assert_eq!(h.status(id, "infra_applied"), StepStatus::Waiting);
}
