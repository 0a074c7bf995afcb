// End to end on the real runtime: the built Worker under workerd (wrangler dev) with
// local D1, KV and Queues, talking to strict fakes of Telegram and the Cloudflare API.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { fakeTelegram, fakeCloudflare } from "./fakes.mjs";
import { startWorker, tempDir, freePort } from "./worker.mjs";
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { root, toolEnv } from "../../scripts/lib.mjs";

const TOKEN = "e2e-notify-token-0123456789";
const BOT = "123456:e2e-bot-token";
const CHAT = "-1001234567890";
const CF_TOKEN = "e2e-cf-api-token";
const ACCOUNT = "acc0123";

let tg;
let cf;
let worker;
const minutesAgo = (m) => new Date(Date.now() - m * 60_000).toISOString();

async function post(body, { token = TOKEN, contentType = "application/json", method = "POST", path = "/notify", base = worker?.url } = {}) {
  const headers = { "content-type": contentType };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  const r = await fetch(`${base}${path}`, {
    method,
    headers,
    body: method === "GET" ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* asserted by callers */ }
  return { status: r.status, json, text, headers: r.headers };
}

function deployment(fields) {
  return { deployment: { type: "worker", isCI: true, ...fields } };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const ADMIN = "e2e-notify-admin-token";

let markers = 0;
/**
 * The positive signal before an absence check: a fresh notification posted now is
 * announced (the queue has worked through what came before it), and every
 * notification the Worker accepted, but those in `held`, has its final outcome in
 * /api/deliveries. A late effect would have shown by then.
 */
async function drained({ held = [] } = {}) {
  const marker = `marker-${++markers}`;
  assert.equal((await post(deployment({ projectName: "marker-app", deploymentId: marker }))).status, 202);
  await tg.waitFor(marker);
  const until = Date.now() + 15_000;
  let open;
  while (Date.now() < until) {
    const r = await post(undefined, { method: "GET", path: "/api/deliveries?limit=500", token: ADMIN });
    assert.equal(r.status, 200, r.text);
    open = r.json.deliveries.filter((d) => d.source === "notify" && !held.includes(d.project) &&
      ["pending", "sending", "retrying"].includes(d.outcome));
    if (open.length === 0) return;
    await sleep(100);
  }
  throw new Error(`notifications without an outcome: ${open.map((d) => `${d.id} ${d.outcome}`).join(", ")}`);
}

before(async () => {
  tg = await fakeTelegram({ token: BOT, chatId: CHAT });
  cf = await fakeCloudflare({ token: CF_TOKEN, accountId: ACCOUNT });
  const persistTo = tempDir("state");

  // A Queues outage: the Worker runs without its JOBS binding and accepts one
  // notification, which must survive until the queue is back.
  const outage = await startWorker({ persistTo, config: "tests/e2e/wrangler.noqueue.toml", vars: { DEPLOY_NOTIFY_TOKEN: TOKEN } });
  try {
    const r = await post(deployment({ projectName: "outage-app", deploymentId: "outage-1" }), { base: outage.url });
    assert.equal(r.status, 202, r.text);
  } finally {
    await outage.stop();
  }

  worker = await startWorker({
    persistTo,
    vars: {
      // These scenarios share one chat for dozens of notifications; the pace and
      // digests have their own suite (telegram.test.mjs).
      TELEGRAM_PACE: "off",
      DEPLOY_NOTIFY_TOKEN: TOKEN,
      ADMIN_TOKEN: ADMIN,
      TELEGRAM_BOT_TOKEN: BOT,
      TELEGRAM_CHAT_ID: CHAT,
      TELEGRAM_API_BASE: tg.base,
      CLOUDFLARE_API_TOKEN: CF_TOKEN,
      CLOUDFLARE_ACCOUNT_ID: ACCOUNT,
      CLOUDFLARE_API_BASE: cf.base,
      WATCH_WORKERS: "svc-a,svc-broken",
      WATCH_PAGES: "site-b",
      POLL_LOOKBACK_MINUTES: "60",
      SWEEP_AFTER_SECONDS: "1",
    },
  });
});

after(async () => {
  await worker?.stop();
  await tg?.close();
  await cf?.close();
});

describe("POST /notify", () => {
  test("the reference flow reaches Telegram in the reference format", async () => {
    const r = await post(deployment({
      projectName: "api-service", deploymentId: "build-abc123", branch: "feature/add-auth",
      commitHash: "abc123def4567890abc123def4567890abc123de", commitMessage: "Add JWT authentication\n\nLonger body",
      author: "dev@example.com", timestamp: "2025-01-15T10:30:00Z", environment: "production",
    }));
    assert.equal(r.status, 202);
    assert.deepEqual(r.json, { success: true, message: "Notification queued" });
    const [m] = await tg.waitFor("api-service");
    assert.equal(m.parseMode, "HTML");
    assert.equal(m.visible, [
      "⚡ New Worker Deployment", "",
      "Project: api-service", "Environment: 🚀 production", "Deployment ID: build-abc123",
      "Author: dev@example.com", "Branch: feature/add-auth", "Commit: abc123d - Add JWT authentication",
      "Time: Jan 15, 2025, 10:30 AM UTC",
    ].join("\n"));
    assert.equal(m.body.link_preview_options.is_disabled, true);
  });

  test("a repeat is answered 'Already processed' and not announced again", async () => {
    const body = deployment({ projectName: "repeat-app", deploymentId: "rep-1" });
    assert.equal((await post(body)).status, 202);
    const again = await post(body);
    assert.equal(again.status, 200);
    assert.deepEqual(again.json, { success: true, message: "Already processed" });
    await tg.waitFor("repeat-app");
    await drained({ held: ["outage-app"] });
    assert.equal(tg.about("repeat-app").length, 1);
    // The same id as a Pages deployment is another deployment.
    assert.equal((await post({ deployment: { ...body.deployment, type: "pages" } })).status, 202);
  });

  test("one CI run deploying two Workers under one deploymentId announces both", async () => {
    const [api, web] = [
      await post(deployment({ projectName: "mono-api", deploymentId: "gh-777-1" })),
      await post(deployment({ projectName: "mono-web", deploymentId: "gh-777-1" })),
    ];
    assert.equal(api.status, 202, api.text);
    assert.equal(web.status, 202, web.text);
    assert.deepEqual(web.json, { success: true, message: "Notification queued" });
    const [a] = await tg.waitFor("mono-api");
    const [w] = await tg.waitFor("mono-web");
    assert.ok(a.visible.includes("Deployment ID: gh-777-1"));
    assert.ok(w.visible.includes("Deployment ID: gh-777-1"));
    // The same project and id is still one deployment.
    const again = await post(deployment({ projectName: "mono-web", deploymentId: "gh-777-1" }));
    assert.equal(again.status, 200);
    assert.deepEqual(again.json, { success: true, message: "Already processed" });
  });

  test("a bad optional field is sanitised, not refused", async () => {
    const r = await post(deployment({
      projectName: "sanitised-app", deploymentId: "san-1", branch: `feature/${"b".repeat(300)}`,
      commitHash: "abcdef1", commitMessage: "Fix\u0007 the\u001b build\n\nbody", author: "dev\u0000@example.com",
    }));
    assert.equal(r.status, 202, r.text);
    const [m] = await tg.waitFor("sanitised-app");
    assert.ok(m.visible.includes("Commit: abcdef1 - Fix the build\n"), m.visible);
    assert.ok(m.visible.includes("Author: dev@example.com"), m.visible);
    const branch = m.visible.split("\n").find((l) => l.startsWith("Branch: "));
    assert.equal([...branch.slice("Branch: ".length)].length, 255);
    assert.ok(branch.endsWith("b…"), branch);
  });

  test("concurrent repeats: exactly one is queued and one message is sent", async () => {
    const body = deployment({ projectName: "race-app", deploymentId: "race-1" });
    const answers = await Promise.all(Array.from({ length: 12 }, () => post(body)));
    const statuses = answers.map((a) => a.status).sort();
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 202]);
    await tg.waitFor("race-app");
    await drained({ held: ["outage-app"] });
    assert.equal(tg.about("race-app").length, 1);
  });

  test("bad requests get a JSON error with the right status", async () => {
    const ok = deployment({ projectName: "errors-app", deploymentId: "err-1" });
    const cases = [
      [await post(ok, { token: null }), 401, "missing bearer token"],
      [await post(ok, { token: "wrong" }), 401, "invalid token"],
      [await post("{not json", {}), 400, /^malformed JSON/],
      [await post({ deployment: { type: "worker", deploymentId: "x" } }), 400, "deployment.projectName is required"],
      [await post({ deployment: { type: "lambda", projectName: "p", deploymentId: "x" } }), 400, 'deployment.type must be "worker" or "pages"'],
      [await post({ deployment: { type: "worker", projectName: "p", deploymentId: "x\u0007" } }), 400, "deployment.deploymentId must be a single line without control characters"],
      [await post({ deployment: { type: "worker", projectName: "p".repeat(129), deploymentId: "x" } }), 400, "deployment.projectName is longer than 128 characters"],
      [await post({ deployment: { type: "worker", projectName: 7, deploymentId: "x" } }), 400, /^deployment\.projectName: invalid type/],
      [await post(deployment({ projectName: "p", deploymentId: "x", commitMessage: "x".repeat(70_000) })), 413, "request body is larger than 65536 bytes"],
      [await post(ok, { contentType: "text/plain" }), 415, "content type must be application/json"],
      [await post(null, { method: "GET" }), 405, "method not allowed; use POST"],
      [await post(ok, { path: "/nope" }), 404, "not found"],
    ];
    for (const [r, status, error] of cases) {
      assert.equal(r.status, status, `${r.text}`);
      assert.equal(r.json.success, false);
      if (error instanceof RegExp) assert.match(r.json.error, error);
      else assert.equal(r.json.error, error);
      assert.match(r.headers.get("content-type"), /^application\/json/);
      assert.ok(!r.text.includes(TOKEN));
    }
    assert.equal(cases[10][0].headers.get("allow"), "POST");
    // None of them was accepted.
    assert.equal((await post(ok)).status, 202);
  });

  test("user strings are escaped and long messages cut to Telegram's limit", async () => {
    const r = await post(deployment({
      projectName: "esc<ape>&app", deploymentId: "esc-1", author: '"Eve" <eve@example.com>',
      commitHash: "abcdef1", commitMessage: `Fix <b>bold</b> & ${"🎉<&>".repeat(2400)}`,
    }));
    assert.equal(r.status, 202);
    const [m] = await tg.waitFor("esc&lt;ape&gt;&amp;app");
    assert.ok(m.visible.includes("Project: esc<ape>&app"));
    assert.ok(m.visible.includes('Author: "Eve" <eve@example.com>'));
    assert.ok(m.visible.includes("Commit: abcdef1 - Fix <b>bold</b> & 🎉<&>"));
    assert.ok([...m.visible].length <= 4096);
    assert.ok(m.text.length <= 4096);
    assert.match(m.visible, /…\nTime: /);
  });
});

describe("Telegram failures", () => {
  test("429: waits retry_after, then succeeds", async () => {
    tg.script("rate-app", [{ status: 429, body: { ok: false, error_code: 429, description: "Too Many Requests: retry after 1", parameters: { retry_after: 1 } } }]);
    assert.equal((await post(deployment({ projectName: "rate-app", deploymentId: "rl-1" }))).status, 202);
    const [m] = await tg.waitFor("rate-app");
    const attempts = tg.about("rate-app");
    assert.equal(attempts.length, 2);
    assert.equal(attempts[0].answered, 429);
    assert.ok(m.at - attempts[0].at >= 900, `retried after ${m.at - attempts[0].at} ms`);
  });

  test("5xx: backs off, then succeeds", async () => {
    tg.script("flaky-app", [{ status: 502, body: { ok: false, error_code: 502, description: "Bad Gateway" } }]);
    assert.equal((await post(deployment({ projectName: "flaky-app", deploymentId: "fl-1" }))).status, 202);
    const [m] = await tg.waitFor("flaky-app");
    const attempts = tg.about("flaky-app");
    assert.equal(attempts.length, 2);
    assert.ok(m.at - attempts[0].at >= 1900, `retried after ${m.at - attempts[0].at} ms`);
  });

  test("a permanent 400 is not retried", async () => {
    tg.script("doomed-app", [{ status: 400, body: { ok: false, error_code: 400, description: "Bad Request: not enough rights to send text messages to the chat" } }]);
    assert.equal((await post(deployment({ projectName: "doomed-app", deploymentId: "dm-1" }))).status, 202);
    const until = Date.now() + 10_000;
    while (tg.about("doomed-app").length === 0 && Date.now() < until) await sleep(50);
    await drained({ held: ["outage-app"] });
    assert.equal(tg.about("doomed-app").length, 1);
    assert.ok(await worker.waitForLog("failed permanently: Telegram 400: Bad Request: not enough rights"));
  });

  test("HTML Telegram cannot parse is resent as plain text", async () => {
    tg.script("plain-app", [{ status: 400, body: { ok: false, error_code: 400, description: "Bad Request: can't parse entities: Unsupported start tag \"x\" at byte offset 3" } }]);
    assert.equal((await post(deployment({ projectName: "plain-app", deploymentId: "pl-1", branch: "main" }))).status, 202);
    const [m] = await tg.waitFor("plain-app");
    const attempts = tg.about("plain-app");
    assert.equal(attempts.length, 2);
    assert.equal(attempts[0].parseMode, "HTML");
    assert.equal(m.parseMode, undefined);
    assert.ok(m.text.startsWith("⚡ New Worker Deployment\n\nProject: plain-app\n"), m.text);
    assert.ok(!m.text.includes("<b>"));
  });
});

describe("cron", () => {
  // First in this suite: nothing has run the cron yet.
  test("the sweep sends what was accepted while the queue was down", async () => {
    await drained({ held: ["outage-app"] });
    assert.equal(tg.about("outage-app").length, 0, "nothing but the sweep can send it");
    await worker.scheduled();
    const [m] = await tg.waitFor("outage-app");
    assert.ok(m.visible.includes("Deployment ID: outage-1"));
    await worker.scheduled();
    await drained();
    assert.equal(tg.about("outage-app").length, 1);
  });

  test("the poll announces what no hook announced, once", async () => {
    // A hook announced this Pages build under its own id.
    const hooked = await post({ deployment: { type: "pages", projectName: "site-b", deploymentId: "hook-build-9", commitHash: "feedbeef42", environment: "production" } });
    assert.equal(hooked.status, 202);
    await tg.waitFor("hook-build-9");
    cf.workers.set("svc-a", [
      { id: "wd-new", created_on: minutesAgo(2), source: "wrangler", author_email: "ops@example.com", annotations: { "workers/message": "Polled release" }, versions: [] },
      { id: "wd-old", created_on: minutesAgo(180), source: "wrangler", versions: [] },
    ]);
    cf.workers.set("svc-broken", { status: 500, raw: "<html>internal error</html>" });
    cf.pages.set("site-b", [
      { id: "pd-building", created_on: minutesAgo(1), environment: "preview", latest_stage: { name: "build", status: "active" }, deployment_trigger: { metadata: { branch: "wip", commit_hash: "0123abcd", commit_message: "WIP" } } },
      { id: "pd-new", created_on: minutesAgo(3), environment: "production", url: "https://pd-new.site-b.pages.dev", latest_stage: { name: "deploy", status: "success" }, deployment_trigger: { metadata: { branch: "main", commit_hash: "c0ffee1234", commit_message: "New docs" } } },
      { id: "pd-hooked", created_on: minutesAgo(4), environment: "production", latest_stage: { name: "deploy", status: "success" }, deployment_trigger: { metadata: { branch: "main", commit_hash: "feedbeef42", commit_message: "Hooked" } } },
    ]);
    const brokenCalls = () => cf.requests.filter((r) => r.includes("svc-broken")).length;
    const brokenBefore = brokenCalls();
    await worker.scheduled();
    const [w] = await tg.waitFor("wd-new");
    assert.ok(w.visible.includes("Project: svc-a"));
    assert.ok(w.visible.includes("Commit: Polled release"));
    assert.ok(w.visible.endsWith("via poll"));
    const [p] = await tg.waitFor("pd-new");
    assert.ok(p.visible.startsWith("📄 New Pages Deployment"));
    assert.ok(p.text.includes('<a href="https://pd-new.site-b.pages.dev">'));
    assert.equal(brokenCalls(), brokenBefore + 1, "the failing name was tried, once");
    assert.ok(await worker.waitForLog("worker svc-broken: Cloudflare API 500"));

    // Once the build finishes it is announced; nothing else is announced again.
    cf.pages.get("site-b")[0].latest_stage = { name: "deploy", status: "success" };
    await worker.scheduled();
    await tg.waitFor("pd-building");
    await drained();
    for (const id of ["wd-new", "pd-new", "pd-building"]) assert.equal(tg.about(id).length, 1, id);
    for (const id of ["wd-old", "pd-hooked"]) assert.equal(tg.about(id).length, 0, id);
  });
});

describe("cron: one bad field in a polled page", () => {
  test("the poll announces every deployment of a page with a control character or a long branch in one", async () => {
    cf.workers.set("svc-a", [
      { id: "wd-ctl", created_on: minutesAgo(1), source: "wrangler", annotations: { "workers/message": "Ship\u0007 it\u0000" }, versions: [] },
      { id: "wd-plain", created_on: minutesAgo(2), source: "wrangler", annotations: { "workers/message": "Plain" }, versions: [] },
    ]);
    cf.pages.set("site-b", [
      { id: "pd-longbranch", created_on: minutesAgo(1), environment: "preview", latest_stage: { name: "deploy", status: "success" }, deployment_trigger: { metadata: { branch: `topic/${"t".repeat(300)}`, commit_hash: "9876fedc", commit_message: "Long\u001b branch" } } },
      { id: "pd-plain", created_on: minutesAgo(2), environment: "production", latest_stage: { name: "deploy", status: "success" }, deployment_trigger: { metadata: { branch: "main", commit_hash: "4567abcd", commit_message: "Plain docs" } } },
    ]);
    await worker.scheduled();
    const [ctl] = await tg.waitFor("wd-ctl");
    assert.ok(ctl.visible.includes("Commit: Ship it"), ctl.visible);
    await tg.waitFor("wd-plain");
    const [long] = await tg.waitFor("pd-longbranch");
    assert.ok(long.visible.includes(`Branch: topic/${"t".repeat(248)}…`), long.visible);
    assert.ok(long.visible.includes("Commit: 9876fed - Long branch"), long.visible);
    await tg.waitFor("pd-plain");
  });
});

describe("notify-deploy", () => {
  const bin = join(root, "target", "debug", "notify-deploy");
  // A clean environment: no CI variables from whatever runs the suite.
  const cli = (args, { cwd, env = {} } = {}) =>
    spawnSync(bin, args, { cwd, encoding: "utf8", timeout: 30_000, env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env } });
  const project = (name) => {
    const dir = tempDir("cli");
    writeFileSync(join(dir, "wrangler.toml"), `name = "${name}"\nmain = "src/index.js"\n`);
    return dir;
  };

  test("announces the project named in ./wrangler.toml", async () => {
    const r = cli(["--deployment-id", "cli-1"], { cwd: project("cli-e2e-app"), env: { NOTIFY_URL: worker.url, NOTIFY_TOKEN: TOKEN } });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, "notify-deploy: announced worker cli-e2e-app cli-1\n");
    const [m] = await tg.waitFor("cli-e2e-app");
    assert.ok(m.visible.includes("Deployment ID: cli-1"));
    const again = cli(["--deployment-id", "cli-1"], { cwd: project("cli-e2e-app"), env: { NOTIFY_URL: worker.url, NOTIFY_TOKEN: TOKEN } });
    assert.equal(again.stderr, "notify-deploy: worker cli-e2e-app cli-1 was already announced\n");
  });

  test("under GitHub Actions, one run deploying two Workers announces both", async () => {
    const env = { NOTIFY_URL: worker.url, NOTIFY_TOKEN: TOKEN, GITHUB_ACTIONS: "true", GITHUB_RUN_ID: "555", GITHUB_RUN_ATTEMPT: "1" };
    for (const name of ["mono-cli-api", "mono-cli-web"]) {
      const r = cli([], { cwd: project(name), env });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stderr, `notify-deploy: announced worker ${name} gh-555-1-${name}\n`);
      const [m] = await tg.waitFor(name);
      assert.ok(m.visible.includes(`Deployment ID: gh-555-1-${name}`));
    }
  });

  test("--dry-run prints the payload and sends nothing", async () => {
    const r = cli(["--dry-run", "--type", "pages", "--deployment-id", "dry-1"], { cwd: project("dry-e2e-app"), env: { NOTIFY_URL: worker.url, NOTIFY_TOKEN: TOKEN } });
    assert.equal(r.status, 0, r.stderr);
    const body = JSON.parse(r.stdout);
    assert.equal(body.deployment.projectName, "dry-e2e-app");
    assert.equal(body.deployment.type, "pages");
    assert.ok(!r.stdout.includes(TOKEN));
    await drained();
    assert.equal(tg.about("dry-e2e-app").length, 0);
  });

  test("an unreachable Worker never breaks the build; --strict does", async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const env = { NOTIFY_URL: url, NOTIFY_TOKEN: TOKEN };
    const r = cli(["--deployment-id", "x", "--timeout", "2"], { cwd: project("down-e2e-app"), env });
    assert.equal(r.status, 0);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.match(r.stderr, /^notify-deploy: could not announce worker down-e2e-app x: could not reach 127\.0\.0\.1/);
    assert.ok(!r.stderr.includes(TOKEN));
    const strict = cli(["--deployment-id", "x", "--timeout", "2", "--strict"], { cwd: project("down-e2e-app"), env });
    assert.notEqual(strict.status, 0);
  });

  test("a project whose build command runs notify-deploy announces itself", async () => {
    const outdir = tempDir("sample-out");
    const r = spawnSync(join(root, "node_modules", ".bin", "wrangler"), ["deploy", "--dry-run", "--outdir", outdir], {
      cwd: join(root, "tests", "sample-hook-project"),
      encoding: "utf8",
      timeout: 120_000,
      env: toolEnv({
        CI: "true",
        PATH: `${join(root, "target", "debug")}:${toolEnv().PATH}`,
        NOTIFY_URL: worker.url,
        NOTIFY_TOKEN: TOKEN,
        WORKERS_CI: "1",
        WORKERS_CI_BUILD_UUID: "sample-build-0001",
        WORKERS_CI_BRANCH: "main",
      }),
    });
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(`${r.stdout}${r.stderr}`, /notify-deploy: announced worker sample-hook-app sample-build-0001/);
    const [m] = await tg.waitFor("sample-hook-app");
    assert.ok(m.visible.includes("Deployment ID: sample-build-0001"));
    assert.ok(m.visible.includes("Branch: main"));
  });
});

describe("GET /health", () => {
  test("reports bindings and settings, never their values", async () => {
    const r = await fetch(`${worker.url}/health`);
    const text = await r.text();
    const body = JSON.parse(text);
    assert.equal(r.status, 200);
    assert.equal(body.success, true);
    assert.deepEqual(body.bindings, { DB: true, STATE: true, JOBS: true, TELEGRAM: true });
    assert.equal(body.settings.TELEGRAM_BOT_TOKEN, true);
    assert.equal(body.settings.WATCH_WORKERS, true);
    for (const secret of [TOKEN, BOT, CF_TOKEN]) assert.ok(!text.includes(secret));
  });
});

describe("without Telegram configured", () => {
  test("a notification is recorded as not sent, with the message it would have sent in the log and in /api/deliveries", async () => {
    const bare = await startWorker({ persistTo: tempDir("no-telegram"), vars: { DEPLOY_NOTIFY_TOKEN: TOKEN, ADMIN_TOKEN: ADMIN } });
    try {
      const r = await post(deployment({ projectName: "newcomer-app", deploymentId: "first-1", commitHash: "abc1234def", environment: "production" }), { base: bare.url });
      assert.equal(r.status, 202, r.text);
      let entry;
      const until = Date.now() + 15_000;
      while (Date.now() < until) {
        const list = await post(undefined, { method: "GET", path: "/api/deliveries?limit=10", token: ADMIN, base: bare.url });
        entry = list.json.deliveries.find((d) => d.project === "newcomer-app");
        if (entry && entry.outcome !== "pending" && entry.outcome !== "sending") break;
        await sleep(100);
      }
      assert.equal(entry?.outcome, "not_sent", JSON.stringify(entry));
      const [reason, message] = entry.detail.split("; it would have read:\n");
      assert.equal(reason, "not sent: Telegram is not configured (TELEGRAM_BOT_TOKEN is missing)");
      for (const line of ["Project: newcomer-app", "production", "Deployment ID: first-1"]) {
        assert.ok(message.includes(line), `${line} in ${message}`);
      }
      assert.ok(await bare.waitForLog("Project: newcomer-app"), "the message is logged as it would have been sent");
    } finally {
      await bare.stop();
    }
  });
});

test("the fakes saw nothing unexpected and no secret reached the logs", () => {
  assert.deepEqual(tg.violations, []);
  assert.deepEqual(cf.violations, []);
  const logs = worker.logs.join("\n");
  for (const secret of [TOKEN, BOT, CF_TOKEN]) assert.ok(!logs.includes(secret), `a secret in the logs`);
});
