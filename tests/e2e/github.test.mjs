// GitHub webhooks and production deploys end to end on the real runtime: the real
// payloads from tests/fixtures/github, signed here, against strict fakes of GitHub,
// Telegram and a deploy target.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { fakeTelegram, fakeGithub, fakeTarget, fakeFly } from "./fakes.mjs";
import { startWorker } from "./worker.mjs";
import { appKeyPair, clients, pushEvent, fixture, sha, sign, sleep, workflowRun } from "./github-kit.mjs";

const SECRET = "e2e webhook secret";
const OLD_SECRET = "e2e previous webhook secret";
const ADMIN = "e2e-admin-token";
const APP_ID = "424242";
// The App's key as GitHub hands it out: PKCS#1 PEM.
const { privateKey: APP_KEY, publicKey: APP_PUBLIC } = appKeyPair();
const BOT = "42:e2e-bot";
const CHAT = "-100777";
const ONCALL = "-100778";

let worker;
let gh;
let tg;
let target;
let fly;
let vars;
const FLY_TOKEN = "fly_e2e_token";
const SECRETS_KEY = Buffer.alloc(32, 7).toString("base64");
const SECRET_VALUE = "postgres://app:s3cr3t-e2e-value@db.internal/app";
const { deliver, admin, settled } = clients(() => worker, { secret: SECRET, token: ADMIN });

const push = (repo, after, before, commits) => pushEvent(repo, after, { before, commits });

async function job(id) {
  return (await admin("GET", `/api/jobs/${id}`)).json.job;
}

async function waitForJob(app, sha, statuses, timeoutMs = 20_000) {
  const until = Date.now() + timeoutMs;
  let last;
  while (Date.now() < until) {
    const { json } = await admin("GET", `/api/jobs?app=${app}&limit=50`);
    last = json.jobs.find((j) => j.sha === sha);
    if (last && statuses.includes(last.status)) return job(last.id);
    await sleep(100);
  }
  throw new Error(`job of ${app} at ${sha.slice(0, 7)} is ${last?.status ?? "missing"}, not ${statuses}`);
}

const helloApp = () => ({
  repository: "Codertocat/Hello-World",
  production_branch: "master",
  environment: "production",
  deploy_on: "push",
  deploy: { type: "deploy_hook", url: `${target.base}/hook` },
  health_url: `${target.base}/health`,
});

before(async () => {
  gh = await fakeGithub({ appId: APP_ID, publicKey: APP_PUBLIC });
  tg = await fakeTelegram({ token: BOT, chatId: CHAT, chats: [ONCALL] });
  target = await fakeTarget();
  fly = await fakeFly({ token: FLY_TOKEN });
  worker = await startWorker({
    vars: (vars = {
      GITHUB_WEBHOOK_SECRET: SECRET,
      GITHUB_WEBHOOK_SECRET_PREVIOUS: OLD_SECRET,
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
      PUBLIC_URL: "https://notifier.example.com",
      HEALTH_CHECK_INTERVAL_SECONDS: "1",
      FLY_API_TOKEN: FLY_TOKEN,
      FLY_API_BASE: fly.base,
      // The cron looks at anything untouched for 2 s, a step's claim is stale after
      // 2 s, and a wait times out at once.
      SWEEP_AFTER_SECONDS: "2",
      STEP_STALE_SECONDS: "2",
      AWAIT_TIMEOUT_MINUTES: "0",
      // A delivery that fails is retried at once (no backoff), so its ten attempts
      // take seconds.
      DELIVERY_RETRY_BASE_SECONDS: "0",
      SECRETS_KEY: SECRETS_KEY,
    }),
  });
});

after(async () => {
  await worker?.stop();
  await gh?.close();
  await tg?.close();
  await target?.close();
  await fly?.close();
});

describe("POST /github", () => {
  test("signatures are checked on the raw body", async () => {
    const ping = JSON.stringify(fixture("ping.json"));
    assert.deepEqual((await deliver("ping", ping, { signature: null })).json, { success: false, error: "missing X-Hub-Signature-256 header" });
    assert.equal((await deliver("ping", ping, { signature: null })).status, 401);
    assert.deepEqual((await deliver("ping", ping, { signature: "sha256=zz" })).json, { success: false, error: "malformed X-Hub-Signature-256 header" });
    const wrong = await deliver("ping", ping, { secret: "not the secret" });
    assert.deepEqual([wrong.status, wrong.json.error], [401, "signature does not match"]);
    const tampered = await deliver("ping", `${ping} `, { signature: sign(ping, SECRET) });
    assert.equal(tampered.status, 401);
    // GitHub's documented test vector, under the documented secret, is refused here.
    const vector = await deliver("ping", "Hello, World!", { signature: "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17" });
    assert.equal(vector.status, 401);
  });

  test("ping answers at once; a redelivery is recognised", async () => {
    const id = randomUUID();
    const first = await deliver("ping", fixture("ping.json"), { id });
    assert.deepEqual([first.status, first.json], [200, { success: true, message: "pong" }]);
    const again = await deliver("ping", fixture("ping.json"), { id });
    assert.deepEqual([again.status, again.json], [200, { success: true, message: "Already processed" }]);
    // Signed with the previous secret (a rotation under way): accepted.
    assert.equal((await deliver("ping", fixture("ping.json"), { secret: OLD_SECRET })).status, 200);
  });

  test("bad requests", async () => {
    const r = await fetch(`${worker.url}/github`);
    assert.equal(r.status, 405);
    const big = "x".repeat(26 * 1024 * 1024);
    assert.equal((await deliver("push", big)).status, 413);
    assert.deepEqual((await deliver("ping", fixture("ping.json"), { headers: { "x-github-event": "" } })).json.error, "missing X-GitHub-Event header");
    const broken = await deliver("push", '{"ref": 5}');
    assert.equal(broken.status, 400);
    assert.match(broken.json.error, /^push payload: /);
  });

  test("events no app uses are recorded and answered 202", async () => {
    const r = await deliver("deployment_status", fixture("deployment_status.json"));
    assert.deepEqual([r.status, r.json.message], [202, "Ignored: no app uses deployment_status.created"]);
    const tag = await deliver("push", fixture("push.tag-deleted.json"));
    assert.deepEqual([tag.status, tag.json.message], [202, "Ignored: refs/tags/simple-tag was deleted"]);
    const { json } = await admin("GET", "/api/deliveries?limit=100");
    const recorded = json.deliveries.find((d) => d.id === r.id);
    assert.equal(recorded.outcome, "ignored");
    assert.equal(recorded.event, "deployment_status");
    assert.equal(recorded.repository, "Codertocat/Hello-World");
  });
});

describe("apps API", () => {
  test("is guarded and validated", async () => {
    assert.equal((await admin("GET", "/api/apps", undefined, null)).status, 401);
    assert.equal((await admin("GET", "/api/apps", undefined, "wrong")).status, 401);
    const bad = await admin("PUT", "/api/apps/hello", { ...helloApp(), deploy_on: "tag" });
    assert.equal(bad.status, 400);
    assert.match(bad.json.error, /^deploy_on: unknown variant `tag`/);
    assert.equal((await admin("PUT", "/api/apps/Bad_Name", helloApp())).status, 400);
    const created = await admin("PUT", "/api/apps/hello", helloApp());
    assert.equal(created.status, 201);
    assert.equal(created.json.app.name, "hello");
    assert.equal((await admin("PUT", "/api/apps/hello", helloApp())).status, 200);
    const listed = await admin("GET", "/api/apps");
    assert.deepEqual(listed.json.apps.map((a) => a.name), ["hello"]);
    assert.equal((await admin("DELETE", "/api/apps/nope")).status, 404);
    assert.equal((await admin("GET", "/api/apps/nope")).status, 404);
  });
});

describe("app secrets API", () => {
  test("is write-only: values go in encrypted and never come out", async () => {
    const put = await admin("PUT", "/api/apps/hello/secrets/preview/DATABASE_URL", { value: SECRET_VALUE });
    assert.equal(put.status, 201);
    assert.deepEqual(put.json, { success: true, secret: { name: "DATABASE_URL", env_type: "preview" } });
    assert.equal((await admin("PUT", "/api/apps/hello/secrets/preview/DATABASE_URL", { value: `${SECRET_VALUE}-2` })).status, 200);
    assert.equal((await admin("PUT", "/api/apps/hello/secrets/production/API_KEY", { value: "k" })).status, 201);
    const listed = await admin("GET", "/api/apps/hello/secrets/preview");
    assert.equal(listed.status, 200);
    assert.deepEqual(listed.json.secrets.map((s) => Object.keys(s).sort()), [["name", "updated_at"]]);
    assert.equal(listed.json.secrets[0].name, "DATABASE_URL");
    assert.ok(!JSON.stringify(listed.json).includes("s3cr3t"));
    const bad = [
      [await admin("PUT", "/api/apps/hello/secrets/preview/lower-case", { value: "x" }), 400],
      [await admin("PUT", "/api/apps/hello/secrets/staging/X", { value: "x" }), 400],
      [await admin("PUT", "/api/apps/nope/secrets/preview/X", { value: "x" }), 404],
      [await admin("PUT", "/api/apps/hello/secrets/preview/X", { val: "x" }), 400],
      [await admin("PUT", "/api/apps/hello/secrets/preview/X", { value: "x" }, null), 401],
      [await admin("GET", "/api/apps/hello/secrets/preview/DATABASE_URL"), 405],
    ];
    for (const [r, status] of bad) assert.equal(r.status, status, JSON.stringify(r.json));
    assert.equal((await admin("DELETE", "/api/apps/hello/secrets/production/API_KEY")).status, 200);
    assert.equal((await admin("DELETE", "/api/apps/hello/secrets/production/API_KEY")).status, 404);
  });
});

describe("deploys", () => {
  test("act as the App installation, with one cached token", async () => {
    await deliver("push", push("Codertocat/Hello-World", sha("9")));
    const done = await waitForJob("hello", sha("9"), ["finalized", "failed", "reverted"]);
    assert.equal(done.status, "finalized", done.error);
    assert.equal(done.installation_id, 1);
    assert.deepEqual(gh.state.exchanges.map((e) => e.installation), [1]);
  });

  test("a push to the production branch deploys, reported to GitHub and Telegram", async () => {
    const delivery = await deliver("push", push("Codertocat/Hello-World", sha("a"), sha("9")));
    assert.deepEqual([delivery.status, delivery.json.message], [202, "Queued"]);
    const done = await waitForJob("hello", sha("a"), ["finalized", "failed"]);
    assert.equal(done.status, "finalized", done.error);
    assert.deepEqual(done.steps.map((s) => [s.name, s.state]), [
      ["create_deployment", "done"], ["trigger", "done"], ["await_result", "skipped"], ["verify_health", "done"], ["finalize", "done"],
    ]);
    assert.equal(done.commits[0].subject, `Release ${sha("a").slice(0, 7)}`);
    assert.equal(done.pusher, "Codertocat");
    const all = gh.requests.filter((r) => r.path.startsWith("/repos/Codertocat/Hello-World/deployments"));
    const start = all.findIndex((c) => c.body?.ref === sha("a"));
    const calls = all.slice(start, start + 3);
    assert.equal(calls[0].body.ref, sha("a"));
    assert.equal(calls[0].body.environment, "production");
    assert.deepEqual(calls.slice(1).map((c) => c.body.state), ["in_progress", "success"]);
    assert.equal(calls[2].body.log_url, `https://notifier.example.com/jobs/${done.id}`);
    assert.equal(target.hooks.at(-1).sha, sha("a"));
    const [message] = await tg.waitFor(`Deploy hello`);
    await sleep(300);
    const last = message.edits.at(-1)?.visible ?? message.visible;
    assert.match(last, /^✅ Deploy hello → production/);
    assert.match(last, /✅ Finalize\n\nJob page$/, "with PUBLIC_URL the message links to the job page");
    const { json } = await admin("GET", "/api/deliveries?limit=100");
    assert.equal(json.deliveries.find((d) => d.id === delivery.id).outcome, "processed");
  });

  test("a redelivery, a second hook's delivery and a replay deploy nothing twice", async () => {
    const body = push("Codertocat/Hello-World", sha("b"), sha("a"));
    const id = randomUUID();
    // The second hook's delivery carries the same signed body under another id.
    const answers = await Promise.all([deliver("push", body, { id }), deliver("push", body), deliver("push", body, { id })]);
    assert.deepEqual(answers.map((a) => a.status).sort(), [200, 200, 202]);
    const done = await waitForJob("hello", sha("b"), ["finalized", "failed"]);
    assert.equal(done.status, "finalized", done.error);
    const replay = await admin("POST", `/api/deliveries/${id}/replay`);
    assert.deepEqual([replay.status, replay.json.message], [202, "Replay queued"]);
    await settled(id);
    const { json } = await admin("GET", "/api/jobs?app=hello&limit=50");
    assert.equal(json.jobs.filter((j) => j.sha === sha("b")).length, 1);
    assert.equal(gh.requests.filter((r) => r.method === "POST" && r.path.endsWith("/deployments") && r.body.ref === sha("b")).length, 1);
    assert.equal((await admin("POST", "/api/deliveries/no-such-delivery/replay")).status, 404);
  });

  test("a failed deploy is reverted to the last finalized commit, and a route for failures gets its message", async () => {
    const oncall = { match: { source: "deploy", outcome: ["failure"] }, destinations: [{ chat_id: ONCALL }], continue: true };
    assert.equal((await admin("PUT", "/api/routes/oncall", oncall)).status, 201);
    target.state.failHookFor.add(sha("c"));
    await deliver("push", push("Codertocat/Hello-World", sha("c"), sha("b")));
    const done = await waitForJob("hello", sha("c"), ["reverted", "failed"]);
    assert.equal(done.status, "reverted");
    assert.equal(done.revert_sha, sha("b"));
    assert.equal(done.error, "Trigger deploy: deploy hook answered 422");
    assert.deepEqual(target.hooks.slice(-2).map((h) => h.sha), [sha("c"), sha("b")]);
    const statuses = gh.requests.filter((r) => r.path.endsWith("/statuses")).map((r) => r.body.state);
    assert.equal(statuses.at(-1), "failure");
    // On-call hears of the job once it failed, in one message kept current; the
    // default chat's message followed it from the start.
    const until = Date.now() + 15_000;
    const current = (m) => m.edits.at(-1)?.visible ?? m.visible;
    const oncallJob = () => tg.inChat(ONCALL).filter((m) => m.text.includes(sha("c").slice(0, 7)));
    while (!oncallJob().some((m) => current(m).startsWith("↩️ Deploy hello")) && Date.now() < until) await sleep(100);
    assert.equal(oncallJob().length, 1, "one message in the on-call chat");
    assert.match(current(oncallJob()[0]), /^↩️ Deploy hello → production/);
    assert.equal(tg.inChat(CHAT).filter((m) => m.text.includes(sha("c").slice(0, 7))).length, 1);
    assert.equal((await admin("DELETE", "/api/routes/oncall")).status, 200);
  });

  test("with nothing to revert to, or a failing revert, the job ends failed", async () => {
    const solo = { ...helloApp(), repository: "Codertocat/Solo" };
    assert.equal((await admin("PUT", "/api/apps/solo", solo)).status, 201);
    target.state.failHookFor.add(sha("d"));
    await deliver("push", push("Codertocat/Solo", sha("d")));
    const failed = await waitForJob("solo", sha("d"), ["reverted", "failed"]);
    assert.equal(failed.status, "failed");
    assert.equal(failed.error, "Trigger deploy: deploy hook answered 422; nothing to revert to");

    target.state.failHookFor.add(sha("e"));
    target.state.failHookFor.add(sha("b"));
    await deliver("push", push("Codertocat/Hello-World", sha("e"), sha("c")));
    const revertFailed = await waitForJob("hello", sha("e"), ["reverted", "failed"]);
    assert.equal(revertFailed.status, "failed");
    assert.equal(revertFailed.error, "revert failed: Revert: trigger: deploy hook answered 422");
    target.state.failHookFor.clear();
  });

  test("a newer push supersedes waiting jobs", async () => {
    // Hold the first job in its health check so the others queue behind it.
    target.state.healthStatus = 503;
    await deliver("push", push("Codertocat/Hello-World", sha("1"), sha("e")));
    await waitForJob("hello", sha("1"), ["processing"]);
    await deliver("push", push("Codertocat/Hello-World", sha("2"), sha("1")));
    await waitForJob("hello", sha("2"), ["waiting"]);
    await deliver("push", push("Codertocat/Hello-World", sha("3"), sha("2")));
    const cancelled = await waitForJob("hello", sha("2"), ["cancelled"]);
    assert.match(cancelled.error, /^superseded by job \d+$/);
    target.state.healthStatus = 200;
    assert.equal((await waitForJob("hello", sha("1"), ["finalized", "failed", "reverted"])).status, "finalized");
    assert.equal((await waitForJob("hello", sha("3"), ["finalized", "failed", "reverted"])).status, "finalized");
  });

  test("a push at the 2,048-commit cap reads the whole list from the compare API", async () => {
    // On top of the deployed commit (3), so the chain of pushes places it.
    const base = sha("3");
    const head = sha("5");
    const all = Array.from({ length: 2100 }, (_, i) => {
      const id = i === 2099 ? head : i.toString(16).padStart(40, "f");
      return { sha: id, commit: { message: `Commit ${i}\n\nbody`, author: { email: "dev@example.com", date: "2025-01-15T10:30:00Z" } }, author: { login: "octocat" } };
    });
    gh.state.compare.set(`${base}...${head}`, all);
    const webhookCommits = all.slice(-2048).map((c) => ({ id: c.sha, message: c.commit.message, timestamp: "2025-01-15T10:30:00Z", author: { name: "Octo", email: "dev@example.com", username: "octocat" } }));
    await deliver("push", push("Codertocat/Hello-World", head, base, webhookCommits));
    const done = await waitForJob("hello", head, ["finalized", "failed", "reverted"]);
    assert.equal(done.status, "finalized", done.error);
    assert.equal(done.commits.length, 2100);
    assert.equal(done.commits[0].subject, "Commit 0");
    const pages = gh.requests.filter((r) => r.path.includes("/compare/"));
    assert.equal(pages.length, 21);
  });

  test("a workflow target waits for the workflow_run of its commit", async () => {
    const app = {
      repository: "octo-org/octo-repo",
      production_branch: "master",
      environment: "production",
      deploy_on: "push",
      deploy: { type: "github_workflow", workflow: "test.yml", inputs: { sha: "{sha}" } },
    };
    assert.equal((await admin("PUT", "/api/apps/octo", app)).status, 201);
    const head = fixture("workflow_run.completed.json").workflow_run.head_sha;
    await deliver("push", push("octo-org/octo-repo", head));
    const waiting = await waitForJob("octo", head, ["processing"]);
    const until = Date.now() + 15_000;
    while ((await job(waiting.id)).steps[2].state !== "started" && Date.now() < until) await sleep(100);
    const dispatch = gh.requests.find((r) => r.path === "/repos/octo-org/octo-repo/actions/workflows/test.yml/dispatches");
    assert.deepEqual(dispatch.body.inputs, { sha: head });
    assert.equal(dispatch.body.return_run_details, true);
    assert.equal((await job(waiting.id)).steps[2].state, "started");
    // The fixture's run of test.yml, as GitHub sends it for this dispatch: created
    // after it (the fixture's own date is years before).
    const run = workflowRun();
    const r = await deliver("workflow_run", run);
    assert.deepEqual([r.status, r.json.message], [202, "Queued"]);
    const done = await waitForJob("octo", head, ["finalized", "failed"]);
    assert.equal(done.status, "finalized", done.error);
    assert.equal(done.steps[2].result.workflow_run_id, run.workflow_run.id);
  });

  test("another workflow's failing run on the deployed commit leaves the step waiting; the deploy.yml run finalizes it", async () => {
    const repository = "Codertocat/Linted";
    const app = {
      repository, production_branch: "master", environment: "production", deploy_on: "push",
      deploy: { type: "github_workflow", workflow: "deploy.yml" },
    };
    assert.equal((await admin("PUT", "/api/apps/linted", app)).status, 201);
    const head = sha("e");
    await deliver("push", push(repository, head));
    const waiting = await waitForJob("linted", head, ["processing"]);
    const until = Date.now() + 15_000;
    while ((await job(waiting.id)).steps[2].state !== "started" && Date.now() < until) await sleep(100);
    assert.ok(gh.requests.some((r) => r.path === `/repos/${repository}/actions/workflows/deploy.yml/dispatches`));
    // The dispatch answered 204 without a run id: runs are matched by commit.
    const lint = await deliver("workflow_run", workflowRun({ repository, head_sha: head, id: 5101, path: ".github/workflows/ci.yml", conclusion: "failure" }));
    assert.equal(lint.status, 202);
    const delivery = async (id) => {
      const { json } = await admin("GET", "/api/deliveries?limit=100");
      return json.deliveries.find((d) => d.id === id);
    };
    const settled = Date.now() + 15_000;
    let recorded = await delivery(lint.id);
    while (recorded?.outcome === "queued" && Date.now() < settled) {
      await sleep(100);
      recorded = await delivery(lint.id);
    }
    assert.deepEqual([recorded?.outcome, recorded?.detail], ["processed", "workflow run 5101: no step waits for it"]);
    const still = await job(waiting.id);
    assert.deepEqual([still.status, still.steps[2].state], ["processing", "started"], "the lint run decided nothing");
    const deployRun = await deliver("workflow_run", workflowRun({ repository, head_sha: head, id: 5102, path: ".github/workflows/deploy.yml", conclusion: "success" }));
    assert.equal(deployRun.status, 202);
    const done = await waitForJob("linted", head, ["finalized", "failed", "reverted"]);
    assert.equal(done.status, "finalized", done.error);
    assert.equal(done.steps[2].result.workflow_run_id, 5102);
  });
});

describe("targets", () => {
  test("a fly target moves every machine to the new image and waits for them", async () => {
    fly.machines.set("fly-prod", [
      { id: "m-1", state: "started", config: { image: "registry.fly.io/fly-prod:old", env: { PORT: "8080" } } },
      { id: "m-2", state: "started", config: { image: "registry.fly.io/fly-prod:old" } },
    ]);
    const app = { ...helloApp(), repository: "Codertocat/Fly", deploy: { type: "fly", app: "fly-prod", image: "registry.fly.io/fly-prod:{sha}" } };
    assert.equal((await admin("PUT", "/api/apps/flyapp", app)).status, 201);
    await deliver("push", push("Codertocat/Fly", sha("f")));
    const done = await waitForJob("flyapp", sha("f"), ["finalized", "failed", "reverted"]);
    assert.equal(done.status, "finalized", done.error);
    for (const m of fly.machines.get("fly-prod")) {
      assert.equal(m.config.image, `registry.fly.io/fly-prod:${sha("f")}`);
    }
    assert.equal(fly.machines.get("fly-prod")[0].config.env.PORT, "8080", "the rest of the config is kept");
    assert.equal(fly.requests.filter((r) => r.path.endsWith("/wait")).length, 2);
  });
});

describe("stale and replayed pushes", () => {
  const REPO = "Codertocat/Stale";
  const deliveryOf = async (id) => (await admin("GET", "/api/deliveries?limit=200")).json.deliveries.find((d) => d.id === id);
  async function settled(id, outcomes = ["processed", "ignored", "failed"], timeoutMs = 20_000) {
    const until = Date.now() + timeoutMs;
    let last;
    while (Date.now() < until) {
      last = await deliveryOf(id);
      if (last && outcomes.includes(last.outcome)) return last;
      await sleep(100);
    }
    throw new Error(`delivery ${id} is ${last?.outcome ?? "missing"}, not ${outcomes}`);
  }
  const touching = (commit) => [
    ...gh.requests.filter((r) => r.body?.ref === commit),
    ...target.hooks.filter((h) => h.sha === commit),
  ];
  const compares = (range) => gh.requests.filter((r) => r.path === `/repos/${REPO}/compare/${range}`);
  let latest;

  test("a push older than the deployed commit is ignored, naming both, and deploys nothing", async () => {
    assert.equal((await admin("PUT", "/api/apps/stale", { ...helloApp(), repository: REPO })).status, 201);
    await deliver("push", push(REPO, sha("1")));
    assert.equal((await waitForJob("stale", sha("1"), ["finalized", "failed", "reverted"])).status, "finalized");
    // 2 and 3 were pushed together; 3's push arrives, 2's own (a delivery GitHub
    // failed to make, redelivered days later) comes last.
    const commit = (c) => ({ ...fixture("push.with-new-branch.json").commits[0], id: sha(c), message: `Change ${c}` });
    latest = push(REPO, sha("3"), sha("1"), [commit("2"), commit("3")]);
    await deliver("push", latest);
    assert.equal((await waitForJob("stale", sha("3"), ["finalized", "failed", "reverted"])).status, "finalized");
    const late = await deliver("push", push(REPO, sha("2"), sha("1"), [commit("2")]));
    assert.deepEqual([late.status, late.json.message], [202, "Queued"]);
    const recorded = await settled(late.id);
    assert.equal(recorded.outcome, "ignored");
    assert.equal(recorded.detail, "stale: older than the deployed commit (push 2222222, deployed 3333333)");
    const { json } = await admin("GET", "/api/jobs?app=stale&limit=50");
    assert.deepEqual(json.jobs.map((j) => j.sha), [sha("3"), sha("1")], "no job for the older commit");
    assert.deepEqual(touching(sha("2")), [], "no deployment, no dispatch");
    assert.deepEqual(gh.requests.filter((r) => r.path.startsWith(`/repos/${REPO}/compare/`)), [], "the chain decided");
  });

  test("the same signed body under a new delivery id is already processed", async () => {
    const jobs = (await admin("GET", "/api/jobs?app=stale&limit=50")).json.jobs.length;
    const again = await deliver("push", latest);
    assert.deepEqual([again.status, again.json], [200, { success: true, message: "Already processed" }]);
    assert.equal(await deliveryOf(again.id), undefined, "not recorded a second time");
    assert.equal((await admin("GET", "/api/jobs?app=stale&limit=50")).json.jobs.length, jobs);
  });

  test("what the chain cannot place is asked of the compare API; its errors are retried", async () => {
    // Pushed on top of a commit no job recorded: GitHub says it is behind 3.
    gh.state.compareStatus.set(`${sha("3")}...${sha("6")}`, "behind");
    const behind = await deliver("push", push(REPO, sha("6"), sha("5")));
    const recorded = await settled(behind.id);
    assert.equal(recorded.detail, "stale: older than the deployed commit (push 6666666, deployed 3333333)");
    assert.equal(compares(`${sha("3")}...${sha("6")}`).length, 1);
    assert.deepEqual(touching(sha("6")), []);
    // Ahead of 3, after two 502s: retried, then deployed.
    gh.state.compareStatus.set(`${sha("3")}...${sha("7")}`, { failures: 2, status: "ahead" });
    const ahead = await deliver("push", push(REPO, sha("7"), sha("6")));
    assert.equal((await waitForJob("stale", sha("7"), ["finalized", "failed", "reverted"])).status, "finalized");
    const done = await settled(ahead.id);
    assert.deepEqual([done.outcome, done.attempts, done.last_error], ["processed", 2, "GitHub 502: Server Error"]);
    assert.equal(compares(`${sha("3")}...${sha("7")}`).length, 3);
  });
});

describe("poison deliveries", () => {
  test("a delivery that keeps failing is given up after ten attempts, then replayed", async () => {
    const REPO = "Codertocat/Stale";
    const range = `${sha("7")}...${sha("8")}`;
    const broken = { failures: Infinity, status: "ahead" };
    gh.state.compareStatus.set(range, broken);
    const d = await deliver("push", push(REPO, sha("8"), sha("e")));
    const find = async () => (await admin("GET", "/api/deliveries?limit=200")).json.deliveries.find((x) => x.id === d.id);
    // The queue retries the message until it dead-letters it (6 deliveries)...
    let until = Date.now() + 20_000;
    while (!worker.logs.some((l) => l.includes("dead-lettered") && l.includes(d.id)) && Date.now() < until) await sleep(100);
    const dead = await find();
    assert.deepEqual([dead.outcome, dead.attempts], ["queued", 6]);
    // ...and the cron sends it again once its next attempt is overdue.
    await sleep(2500);
    await worker.scheduled();
    until = Date.now() + 20_000;
    let failed = await find();
    while (failed.outcome !== "failed" && Date.now() < until) {
      await sleep(100);
      failed = await find();
    }
    assert.deepEqual([failed.outcome, failed.attempts, failed.last_error], ["failed", 10, "GitHub 502: Server Error"]);
    assert.equal(failed.detail, "gave up after 10 attempts: GitHub 502: Server Error");
    assert.equal(gh.requests.filter((r) => r.path === `/repos/${REPO}/compare/${range}`).length, 10);
    // Replayed once GitHub is back: the count starts over, and it deploys.
    broken.failures = 0;
    const replay = await admin("POST", `/api/deliveries/${d.id}/replay`);
    assert.deepEqual([replay.status, replay.json.message], [202, "Replay queued"]);
    assert.equal((await waitForJob("stale", sha("8"), ["finalized", "failed", "reverted"])).status, "finalized");
    const done = await find();
    assert.deepEqual([done.outcome, done.attempts, done.last_error], ["processed", 0, null]);
  });
});

describe("cron", () => {
  test("a deploy interrupted by a crash between steps is finished after the restart", async () => {
    // The health check hangs; the Worker dies while the step runs, and its queue
    // (in memory, as a crashed isolate's would be) with it.
    target.state.healthDelayMs = 60_000;
    await deliver("push", push("Codertocat/Hello-World", sha("8"), sha("5")));
    const running = await waitForJob("hello", sha("8"), ["processing"]);
    const until = Date.now() + 15_000;
    while ((await job(running.id)).steps[3].state !== "started" && Date.now() < until) await sleep(100);
    await worker.stop();
    target.state.healthDelayMs = 0;
    worker = await startWorker({ persistTo: worker.persistTo, vars });
    assert.equal((await job(running.id)).status, "processing", "nothing finished it without the cron");
    await sleep(2500);
    await worker.scheduled();
    const done = await waitForJob("hello", sha("8"), ["finalized", "failed", "reverted"]);
    assert.equal(done.status, "finalized", done.error);
    assert.equal(done.steps[3].attempts, 2, "the health check ran again");
  });

  test("fails a deploy whose workflow run never comes", async () => {
    const app = {
      repository: "Codertocat/Waiting", production_branch: "master", environment: "production", deploy_on: "push",
      deploy: { type: "github_workflow", workflow: "deploy.yml" },
    };
    assert.equal((await admin("PUT", "/api/apps/waiting", app)).status, 201);
    await deliver("push", push("Codertocat/Waiting", sha("7")));
    const waiting = await waitForJob("waiting", sha("7"), ["processing"]);
    const until = Date.now() + 15_000;
    while ((await job(waiting.id)).steps[2].state !== "started" && Date.now() < until) await sleep(100);
    await sleep(2500);
    await worker.scheduled();
    const done = await waitForJob("waiting", sha("7"), ["failed", "reverted"]);
    assert.equal(done.status, "failed");
    assert.equal(done.error, "Await result: no result within 0 minutes; nothing to revert to");
  });

  test("asks GitHub to redeliver what failed and was never recorded, once", async () => {
    // A body of its own: the fixture's was recorded before (under another id).
    const recorded = await deliver("ping", { ...fixture("ping.json"), zen: `Recorded ${randomUUID()}` });
    const recent = new Date(Date.now() - 60_000).toISOString();
    gh.state.hookDeliveries = [
      { id: 501, guid: randomUUID(), delivered_at: recent, redelivery: false, status: "Invalid HTTP Response: 503", status_code: 503, event: "push" },
      { id: 502, guid: recorded.id, delivered_at: recent, redelivery: false, status: "Invalid HTTP Response: 500", status_code: 500, event: "ping" },
      { id: 503, guid: randomUUID(), delivered_at: recent, redelivery: false, status: "OK", status_code: 200, event: "push" },
      { id: 504, guid: randomUUID(), delivered_at: new Date(Date.now() - 5 * 86400_000).toISOString(), redelivery: false, status: "failed", status_code: 502, event: "push" },
    ];
    await worker.scheduled();
    const until = Date.now() + 10_000;
    while (!(gh.state.redeliveries ?? []).length && Date.now() < until) await sleep(100);
    assert.deepEqual(gh.state.redeliveries, [501]);
    // The positive signal: the second run listed the failed deliveries again, and
    // the run (which makes its requests inline) is over once scheduled() returns.
    const listings = () => gh.requests.filter((r) => r.method === "GET" && r.path === "/app/hook/deliveries").length;
    const before = listings();
    await worker.scheduled();
    assert.equal(listings(), before + 1, "the second run looked at the deliveries again");
    assert.deepEqual(gh.state.redeliveries, [501], "asked once");
  });
});

test("the fakes saw nothing unexpected and no secret reached the logs", () => {
  assert.deepEqual(gh.violations, []);
  assert.deepEqual(fly.violations, []);
  assert.deepEqual(tg.violations, []);
  assert.deepEqual(target.violations, []);
  const logs = worker.logs.join("\n");
  const tokens = [...gh.state.issued];
  for (const secret of [SECRET, OLD_SECRET, ADMIN, BOT, SECRETS_KEY, "s3cr3t-e2e-value", ...tokens]) {
    assert.ok(!logs.includes(secret), "a secret in the logs");
  }
  assert.ok(!logs.includes("PRIVATE KEY"), "the App key in the logs");
});
