// Multi-repository orchestration end to end on the real runtime: POST /api/services
// starts "create a service" against a strict fake of GitHub (REST and GraphQL) that
// keeps the repositories, branches, files and pull requests the workflow makes; the
// pull_request and workflow_run fixtures, adapted to those PRs and signed here, move
// it along.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { fakeTelegram, fakeGithub } from "./fakes.mjs";
import { startWorker } from "./worker.mjs";
import { appKeyPair, clients, d1Execute, fixture, sha, sleep } from "./github-kit.mjs";

const SECRET = "e2e orchestrate webhook secret";
const ADMIN = "e2e-orchestrate-admin";
const APP_ID = "616161";
const INSTALLATION = "77";
const { privateKey: APP_KEY, publicKey: APP_PUBLIC } = appKeyPair();
const BOT = "44:e2e-orchestrate-bot";
const CHAT = "-100999";
const INFRA_WORKFLOW = ".github/workflows/apply.yml";

let worker, gh, tg;
const { deliver, admin, settled } = clients(() => worker, { secret: SECRET, token: ADMIN });

const service = async (name) => (await admin("GET", `/api/services/${name}`)).json.service;
const step = (wf, id) => wf.steps.find((s) => s.id === id);

/** Waits until `check(workflow)` holds. */
async function waitUntil(name, what, check, timeoutMs = 25_000) {
  const until = Date.now() + timeoutMs;
  let wf;
  while (Date.now() < until) {
    wf = await service(name);
    if (wf && check(wf)) return wf;
    await sleep(150);
  }
  throw new Error(`${name}: ${what} did not happen: ${JSON.stringify(wf?.steps?.map((s) => [s.id, s.status, s.error]))}`);
}

/** The infra PR of a workflow, once raised. */
const infraPull = (wf) => step(wf, "infra_pr").pr;

/** The closed fixture, moved to the infra PR and merged as `merged`. */
function merged(pr, mergedSha, { merged: isMerged = true } = {}) {
  const p = fixture("pull_request.closed.json");
  p.repository.full_name = "acme/infra";
  p.number = pr.number;
  p.pull_request.number = pr.number;
  p.pull_request.node_id = pr.node_id;
  p.pull_request.html_url = pr.html_url;
  p.pull_request.head.ref = pr.ref;
  p.pull_request.head.sha = pr.sha;
  p.pull_request.head.repo.full_name = "acme/infra";
  p.pull_request.base.ref = "main";
  p.pull_request.merged = isMerged;
  p.pull_request.merge_commit_sha = isMerged ? mergedSha : null;
  p.installation = { id: Number(INSTALLATION) };
  return p;
}

/** The workflow_run fixture: the infra apply on `headSha`, concluding `conclusion`. */
function run(headSha, conclusion, id) {
  const p = fixture("workflow_run.completed.json");
  p.repository.full_name = "acme/infra";
  Object.assign(p.workflow_run, {
    id, name: "Apply", path: INFRA_WORKFLOW, head_sha: headSha, head_branch: "main", conclusion,
    html_url: `https://github.com/acme/infra/actions/runs/${id}`,
  });
  p.installation = { id: Number(INSTALLATION) };
  return p;
}

const waitingForMerge = (wf) => step(wf, "infra_merged").status === "waiting";

before(async () => {
  gh = await fakeGithub({ appId: APP_ID, publicKey: APP_PUBLIC });
  tg = await fakeTelegram({ token: BOT, chatId: CHAT });
  gh.state.addRepo("acme/infra", { "README.md": "# infra\n" });
  gh.state.addRepo("acme/app-config");
  gh.state.addRepo("acme/nginx-upstreams", { "upstreams.conf": "upstream billing-old {\n  server billing-old.internal:8080;\n}\n" });
  gh.state.addRepo("acme/service-definitions");
  gh.state.addRepo("acme/service-boilerplate");
  worker = await startWorker({
    vars: {
      GITHUB_WEBHOOK_SECRET: SECRET,
      ADMIN_TOKEN: ADMIN,
      GITHUB_APP_ID: APP_ID,
      GITHUB_APP_PRIVATE_KEY: APP_KEY,
      GITHUB_API_BASE: gh.base,
      TELEGRAM_BOT_TOKEN: BOT,
      TELEGRAM_CHAT_ID: CHAT,
      // The flows' messages unpaced: these scenarios are about the flows (the pace
      // has its own suite, telegram.test.mjs).
      TELEGRAM_PACE: "off",
      TELEGRAM_API_BASE: tg.base,
      ORCHESTRATE_OWNER: "acme",
      ORCHESTRATE_INSTALLATION_ID: INSTALLATION,
      SERVICE_TEMPLATES: "node=templates/node,go=templates/go",
      SWEEP_AFTER_SECONDS: "2",
    },
  });
});

after(async () => {
  await worker?.stop();
  await gh?.close();
  await tg?.close();
});

describe("POST /api/services", () => {
  test("invalid requests are 400s naming the field; no token is 401", async () => {
    for (const [body, field] of [
      [{ repositoryName: "Payments", serviceType: "node", owningTeam: "team" }, "repositoryName"],
      [{ repositoryName: "p", serviceType: "node", owningTeam: "team" }, "repositoryName"],
      [{ repositoryName: "payments", serviceType: "cobol", owningTeam: "team" }, "serviceType"],
      [{ repositoryName: "payments", serviceType: "node" }, "owningTeam"],
      [{ repositoryName: "payments", serviceType: "node", owningTeam: "team", extra: 1 }, "extra"],
    ]) {
      const r = await admin("POST", "/api/services", body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.json.success, false);
      assert.match(r.json.error, new RegExp(field));
    }
    assert.equal((await admin("POST", "/api/services", { repositoryName: "payments", serviceType: "node", owningTeam: "t" }, null)).status, 401);
    assert.equal((await admin("GET", "/api/services/nothing-here")).status, 404);
    assert.equal((await admin("DELETE", "/api/services")).status, 405);
  });
});

describe("create a service", () => {
  test("the whole path: PRs in order, merge recorded, apply run awaited, auto-merges, boilerplate dispatched", async () => {
    const started = await admin("POST", "/api/services", { repositoryName: "payments", serviceType: "node", owningTeam: "payments-team" });
    assert.equal(started.status, 202, JSON.stringify(started.json));
    assert.equal(started.json.service.status, "running");
    const dup = await admin("POST", "/api/services", { repositoryName: "payments", serviceType: "go", owningTeam: "x" });
    assert.equal(dup.status, 409, "one live workflow per name");

    let wf = await waitUntil("payments", "the infra merge wait", waitingForMerge);
    const infra = infraPull(wf);
    assert.equal(step(wf, "infra_pr").status, "auto_merge_enabled");
    for (const id of ["app_config_pr", "nginx_pr"]) assert.equal(step(wf, id).status, "raised", id);
    assert.equal(step(wf, "service_definition_pr").status, "pending", "not before the infra apply");
    assert.deepEqual(gh.state.graphql.map((g) => [g.repo, g.mutation]), [["acme/infra", "enablePullRequestAutoMerge"]]);
    const infraRepo = gh.state.repos.get("acme/infra");
    assert.match(infraRepo.files.get(`${infra.ref}:services/payments/main.tf`), /team\s+= "payments-team"/);
    assert.match(gh.state.repos.get("acme/nginx-upstreams").files.get(`${step(wf, "nginx_pr").pr.ref}:upstreams.conf`), /billing-old[\s\S]*upstream payments/);
    for (const k of ["number", "sha", "ref", "html_url", "node_id"]) assert.ok(infra[k], `pr.${k}`);

    const mergeSha = sha("9");
    await deliver("pull_request", merged(infra, mergeSha));
    wf = await waitUntil("payments", "the merge", (w) => step(w, "infra_merged").status === "succeeded" || step(w, "infra_merged").status === "merged");
    assert.equal(step(wf, "infra_merged").merged_sha, mergeSha);
    await deliver("workflow_run", run(mergeSha, "success", 9001));
    wf = await waitUntil("payments", "success", (w) => w.status !== "running");
    assert.equal(wf.status, "succeeded", wf.error);

    const applied = step(wf, "infra_applied");
    assert.equal(applied.run.id, 9001);
    for (const k of ["name", "id", "html_url", "created_at", "updated_at", "path"]) assert.ok(applied.run[k], `run.${k}`);
    assert.equal(applied.run.path, INFRA_WORKFLOW);
    assert.ok(applied.events.some((e) => e.source === "workflow_run"), "the event that moved it is kept");
    assert.ok(step(wf, "infra_merged").events.some((e) => e.source === "pull_request"));
    assert.deepEqual(
      gh.state.graphql.map((g) => g.repo).sort(),
      ["acme/app-config", "acme/infra", "acme/nginx-upstreams", "acme/service-definitions"],
    );
    const [dispatch] = gh.state.dispatches;
    assert.equal(dispatch.repo, "acme/service-boilerplate");
    assert.deepEqual(dispatch.inputs, { name: "payments", team: "payments-team", type: "node", template: "templates/node" });
    const listed = await admin("GET", "/api/services");
    assert.ok(listed.json.services.some((s) => s.name === "payments" && s.status === "succeeded"));

    // One Telegram message for the workflow, edited as it went.
    const msgs = tg.messages.filter((m) => m.text.includes("payments"));
    assert.equal(msgs.length, 1);
    assert.ok(msgs[0].edits.length >= 3, "edited in place");
  });

  test("a failing infra run fails the workflow and raises nothing after it", async () => {
    assert.equal((await admin("POST", "/api/services", { repositoryName: "billing", serviceType: "go", owningTeam: "billing" })).status, 202);
    const wf = await waitUntil("billing", "the merge wait", waitingForMerge);
    await deliver("pull_request", merged(infraPull(wf), sha("8")));
    await deliver("workflow_run", run(sha("8"), "failure", 8001));
    const done = await waitUntil("billing", "the end", (w) => w.status !== "running");
    assert.equal(done.status, "failed");
    assert.match(step(done, "infra_applied").error, /concluded failure/);
    assert.match(done.error, /infra_applied/);
    assert.equal(step(done, "service_definition_pr").status, "skipped");
    assert.ok(!gh.state.repos.get("acme/service-definitions").pulls.some((p) => p.head.ref.includes("billing")));
    assert.ok(!gh.state.dispatches.some((d) => d.inputs.name === "billing"));
  });

  test("events out of order and duplicated: a run before its merge is kept and matched; repeats change nothing", async () => {
    assert.equal((await admin("POST", "/api/services", { repositoryName: "ledger", serviceType: "node", owningTeam: "ledger" })).status, 202);
    const wf = await waitUntil("ledger", "the merge wait", waitingForMerge);
    const mergeSha = sha("7");
    // The apply run's event comes first.
    const early = await deliver("workflow_run", run(mergeSha, "success", 7001));
    assert.equal(early.status, 202);
    await settled(early.id);
    assert.equal(step(await service("ledger"), "infra_applied").status, "pending");
    const mergeEvent = merged(infraPull(wf), mergeSha);
    await deliver("pull_request", mergeEvent);
    await deliver("pull_request", mergeEvent); // GitHub's redelivery under a new id
    const done = await waitUntil("ledger", "the end", (w) => w.status !== "running");
    assert.equal(done.status, "succeeded", done.error);
    assert.equal(step(done, "infra_applied").run.id, 7001);
    assert.equal(step(done, "infra_merged").events.filter((e) => e.source === "pull_request").length, 1, "a duplicate is not recorded twice");
    // A late "raised"-era event (the PR's closing again) never moves a finished step back.
    const late = await deliver("pull_request", merged(infraPull(wf), sha("6")));
    await settled(late.id);
    const after = await service("ledger");
    assert.equal(step(after, "infra_merged").merged_sha, mergeSha);
    assert.equal(after.status, "succeeded");
  });

  test("a wait past its deadline fails the workflow with a clear error", async () => {
    assert.equal((await admin("POST", "/api/services", { repositoryName: "search", serviceType: "go", owningTeam: "search" })).status, 202);
    const wf = await waitUntil("search", "the merge wait", waitingForMerge);
    d1Execute(
      worker.persistTo,
      `UPDATE workflow_steps SET waiting_since = 0, deadline = 3600000 WHERE workflow_id = ${wf.id} AND step_id = 'infra_merged'`,
    );
    await worker.scheduled();
    const done = await waitUntil("search", "the timeout", (w) => w.status !== "running");
    assert.equal(done.status, "failed");
    assert.match(step(done, "infra_merged").error, /timed out after 60 minutes waiting for acme\/infra#\d+ to be merged/);
    // The name is free again for a new attempt.
    assert.equal((await admin("POST", "/api/services", { repositoryName: "search", serviceType: "go", owningTeam: "search" })).status, 202);
  });
});

test("the fake GitHub saw nothing unexpected and every call was made as the installation", () => {
  assert.deepEqual(gh.violations, []);
  assert.deepEqual(tg.violations, []);
  assert.ok(gh.state.exchanges.length >= 1 && gh.state.exchanges.every((e) => e.installation === Number(INSTALLATION)));
  const logs = worker.logs.join("\n");
  for (const secret of [SECRET, ADMIN, BOT, ...gh.state.issued]) assert.ok(!logs.includes(secret), "a secret in the logs");
});
