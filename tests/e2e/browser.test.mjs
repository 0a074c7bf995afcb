// The status page in a real browser: headless Chromium (tests/e2e/browser.mjs) on the
// Worker under workerd, after real flows driven as the other suites drive them (a
// /notify, signed GitHub deliveries against the strict fakes, a preview on the Fly
// fake, an orchestration workflow). Every scenario also fails on anything the browser
// reports (a console error, a CSP violation, a failed request, a dialog), and saves
// screenshots under tests/e2e/screenshots/ for a person to look at.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { fakeTelegram, fakeGithub, fakeTarget, fakeFly } from "./fakes.mjs";
import { startWorker } from "./worker.mjs";
import { appKeyPair, clients, pushEvent, fixture, sha, sleep } from "./github-kit.mjs";
import { startBrowser, screenshot, visit, DESKTOP, PHONE } from "./browser.mjs";

const SECRET = "e2e browser webhook secret";
const ADMIN = "e2e-browser-admin-token";
const NOTIFY = "e2e-browser-notify-token";
const APP_ID = "535353";
const INSTALLATION = "53";
const { privateKey: APP_KEY, publicKey: APP_PUBLIC } = appKeyPair();
const BOT = "53:e2e-browser-bot";
const CHAT = "-100535";
const FLY_TOKEN = "fly_e2e_browser_token";
const SECRETS_KEY = Buffer.alloc(32, 5).toString("base64");
const PUBLIC_URL = "https://status.example.com";
const HOSTILE = "<script>alert(1)</script>";

const HELLO = "Codertocat/Hello-World";
const GATED = "Codertocat/Gated";
const REPLAYED = "Codertocat/Replayed";

let worker, gh, tg, target, fly, browser;
const { deliver, admin, settled, job, jobWhen } = clients(() => worker, { secret: SECRET, token: ADMIN });
/** What the flows made, for the scenarios to look for: jobs by name, the delivery to replay. */
const made = {};

const push = (repo, after, before, message) => pushEvent(repo, after, { before, message: message ?? `Release ${after.slice(0, 7)}` });

/** A pull_request fixture for PR `number` of hello at `head`, dated now. */
function pullRequest(number, head) {
  const p = fixture("pull_request.opened.json");
  p.number = number;
  p.pull_request.number = number;
  p.pull_request.head.sha = head;
  p.pull_request.html_url = `https://github.com/${HELLO}/pull/${number}`;
  p.pull_request.updated_at = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  return p;
}

const app = (repository, extra = {}) => ({
  repository,
  production_branch: "master",
  environment: "production",
  deploy_on: "push",
  deploy: { type: "deploy_hook", url: `${target.base}/hook` },
  health_url: `${target.base}/health`,
  ...extra,
});


const ended = (name, commit) => jobWhen(name, commit, (j) => ["finalized", "failed", "reverted", "cancelled"].includes(j.status), "finished");

async function waitUntil(what, check, timeoutMs = 25_000) {
  const until = Date.now() + timeoutMs;
  let last;
  while (Date.now() < until) {
    last = await check();
    if (last) return last;
    await sleep(150);
  }
  throw new Error(`${what} did not happen`);
}

before(async () => {
  gh = await fakeGithub({ appId: APP_ID, publicKey: APP_PUBLIC });
  tg = await fakeTelegram({ token: BOT, chatId: CHAT });
  target = await fakeTarget();
  fly = await fakeFly({ token: FLY_TOKEN });
  for (const repo of ["acme/infra", "acme/app-config", "acme/nginx-upstreams", "acme/service-definitions", "acme/service-boilerplate"]) {
    gh.state.addRepo(repo, repo === "acme/nginx-upstreams" ? { "upstreams.conf": "upstream billing-old {\n  server billing-old.internal:8080;\n}\n" } : {});
  }
  worker = await startWorker({
    vars: {
      GITHUB_WEBHOOK_SECRET: SECRET,
      ADMIN_TOKEN: ADMIN,
      DEPLOY_NOTIFY_TOKEN: NOTIFY,
      GITHUB_APP_ID: APP_ID,
      GITHUB_APP_PRIVATE_KEY: APP_KEY,
      GITHUB_API_BASE: gh.base,
      TELEGRAM_BOT_TOKEN: BOT,
      TELEGRAM_CHAT_ID: CHAT,
      TELEGRAM_PACE: "off",
      TELEGRAM_API_BASE: tg.base,
      PUBLIC_URL,
      HEALTH_CHECK_INTERVAL_SECONDS: "1",
      FLY_API_TOKEN: FLY_TOKEN,
      FLY_API_BASE: fly.base,
      SECRETS_KEY,
      ORCHESTRATE_OWNER: "acme",
      ORCHESTRATE_INSTALLATION_ID: INSTALLATION,
      SERVICE_TEMPLATES: "node=templates/node,go=templates/go",
      // The cron looks at anything untouched for 2 s; a delivery that fails is
      // retried at once, so its ten attempts take seconds.
      SWEEP_AFTER_SECONDS: "2",
      STEP_STALE_SECONDS: "2",
      DELIVERY_RETRY_BASE_SECONDS: "0",
    },
  });
  browser = await startBrowser();

  // The real flows the pages are to show.
  const hello = app(HELLO, {
    preview: { org: "acme", image: "registry.fly.io/hello:{sha}", region: "ams", internal_port: 3000 },
  });
  assert.equal((await admin("PUT", "/api/apps/hello", hello)).status, 201);
  assert.equal((await admin("PUT", "/api/apps/hello/secrets/production/DATABASE_URL", { value: "postgres://never-shown" })).status, 201);
  assert.equal((await admin("PUT", "/api/apps/gated", app(GATED, { approval: { required: true, timeout_minutes: 60 } }))).status, 201);
  assert.equal((await admin("PUT", "/api/apps/replayed", app(REPLAYED))).status, 201);

  // A build hook's notification.
  const notified = await fetch(`${worker.url}/notify`, {
    method: "POST",
    headers: { authorization: `Bearer ${NOTIFY}`, "content-type": "application/json" },
    body: JSON.stringify({ deployment: { type: "worker", projectName: "edge-site", deploymentId: "dep-browser-1", commitHash: "1234567890abcdef", commitMessage: "Tune the edge cache", author: "ada@example.com", isCI: true } }),
  });
  assert.equal(notified.status, 202, await notified.text());

  // A deploy job whose commit message is hostile; then a failed one, reverted to it.
  await deliver("push", push(HELLO, sha("a"), sha("0"), HOSTILE));
  made.good = await ended("hello", sha("a"));
  assert.equal(made.good.status, "finalized", made.good.error);
  target.state.failHookFor.add(sha("b"));
  await deliver("push", push(HELLO, sha("b"), sha("a"), "Break the build"));
  made.reverted = await ended("hello", sha("b"));
  assert.equal(made.reverted.status, "reverted", made.reverted.error);
  target.state.failHookFor.clear();

  // A preview of pull request 2.
  await deliver("pull_request", pullRequest(2, sha("c")));
  made.preview = await waitUntil("the preview of #2", async () => {
    const p = (await admin("GET", "/api/apps/hello/previews")).json.previews.find((x) => x.pr_number === 2);
    return p?.status === "ready" && p.done_revision === p.revision ? p : undefined;
  });

  // An orchestration workflow, waiting for its infra PR to merge.
  const started = await admin("POST", "/api/services", { repositoryName: "payments", serviceType: "node", owningTeam: "payments-team" });
  assert.equal(started.status, 202, JSON.stringify(started.json));
  made.workflow = await waitUntil("the workflow's infra PR", async () => {
    const wf = (await admin("GET", "/api/services/payments")).json.service;
    return wf?.steps.find((s) => s.id === "infra_merged")?.status === "waiting" ? wf : undefined;
  });
});

after(async () => {
  await browser?.close();
  await worker?.stop();
  await gh?.close();
  await tg?.close();
  await target?.close();
  await fly?.close();
});

/**
 * Signs in through the form with `token` (on the page `page` shows with `here`, else
 * on /signin); answers the response the form's POST led to.
 */
async function signIn(page, token = ADMIN, { here = false } = {}) {
  if (!here) await visit(page, worker.url, "/signin");
  await page.locator('form input[type="password"]').fill(token);
  const [response] = await Promise.all([page.waitForNavigation(), page.locator('form button[type="submit"]').click()]);
  return response;
}

/** The session cookie the browser holds for the Worker, if any. */
async function sessionCookie() {
  const cookies = await browser.context.cookies(worker.url);
  return cookies.find((c) => c.httpOnly);
}

/** Whether `page` is the sign-in page. */
const onSignIn = async (page) => new URL(page.url()).pathname === "/signin" && (await page.locator('form input[type="password"]').count()) === 1;

/** The page's headers as the issue asks for them, on every page. */
function assertPageHeaders(response) {
  const h = response.headers();
  assert.equal(h["content-security-policy"], "default-src 'self'; frame-ancestors 'none'");
  assert.equal(h["cache-control"], "no-store");
  assert.equal(h["x-content-type-options"], "nosniff");
  assert.equal(h["referrer-policy"], "same-origin");
}

/** Screenshots of the page at `path`: desktop, and at a phone's width. */
async function shots(page, path, name) {
  await page.setViewportSize(DESKTOP);
  const response = await visit(page, worker.url, path);
  assert.equal(response.status(), 200, `${path} answered ${response.status()}`);
  assertPageHeaders(response);
  await screenshot(page, `${name}-desktop`);
  await page.setViewportSize(PHONE);
  await page.reload();
  // Readable on a phone: nothing wider than the screen.
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `${path} is ${overflow}px wider than a phone`);
  await screenshot(page, `${name}-phone`);
  await page.setViewportSize(DESKTOP);
}

describe("signing in", () => {
  test("without a session every page leads to the sign-in form; a wrong token is refused; the right one signs in", async () => {
    await browser.context.clearCookies();
    const page = await browser.page();
    for (const path of ["/", `/jobs/${made.good.id}`, "/deliveries"]) {
      await visit(page, worker.url, path);
      assert.ok(await onSignIn(page), `${path} without a session shows the sign-in form, not ${page.url()}`);
    }
    await screenshot(page, "signin-desktop");
    await page.setViewportSize(PHONE);
    await screenshot(page, "signin-phone");
    await page.setViewportSize(DESKTOP);
    const wrong = await signIn(page, "not-the-admin-token");
    assert.equal(wrong.status(), 401);
    assert.ok(await onSignIn(page), "a wrong token shows the form again");
    assert.match(await page.locator("main").innerText(), /token/i);
    assert.equal(await sessionCookie(), undefined, "no session for a wrong token");

    const right = await signIn(page);
    assert.equal(new URL(page.url()).pathname, "/");
    assert.equal(right.status(), 200);
    const cookie = await sessionCookie();
    assert.ok(cookie, "a session cookie");
    assert.deepEqual([cookie.httpOnly, cookie.secure, cookie.sameSite], [true, true, "Strict"]);
    assert.ok(cookie.expires * 1000 - Date.now() <= 12 * 3_600_000 + 60_000, "12 hours at most");
    assert.ok(cookie.expires * 1000 - Date.now() >= 12 * 3_600_000 - 60_000, "12 hours");
    await page.close();
    browser.assertClean();
  });

  test("a wrong session cookie, and a missing one, land on the sign-in page", async () => {
    const page = await browser.page();
    if (!(await sessionCookie())) await signIn(page);
    const good = await sessionCookie();
    // The same cookie with its signature changed, then with another expiry.
    const tampered = good.value.slice(0, -2) + (good.value.endsWith("AA") ? "BB" : "AA");
    const later = good.value.replace(/^(v1\.\d+\.)(\d+)/, (_, head, exp) => `${head}${Number(exp) + 3600}`);
    for (const value of [tampered, later, "v1.garbage", ""]) {
      await browser.context.addCookies([{ ...good, value }]);
      await visit(page, worker.url, "/");
      assert.ok(await onSignIn(page), `a cookie of ${JSON.stringify(value.slice(0, 20))} shows the sign-in form`);
    }
    await browser.context.clearCookies();
    await visit(page, worker.url, "/apps/hello");
    assert.ok(await onSignIn(page), "no cookie shows the sign-in form");
    // Signing in there leads back to the page that was asked for.
    const back = await signIn(page, ADMIN, { here: true });
    assert.equal(back.status(), 200);
    assert.equal(new URL(page.url()).pathname, "/apps/hello");
    await page.close();
    browser.assertClean();
  });
});

describe("the pages after real flows", () => {
  let page;
  before(async () => {
    page = await browser.page();
    if (!(await sessionCookie())) await signIn(page);
  });
  after(() => page?.close());

  test("the overview shows every app, the failed job at the top, the recent deployments from every source, the preview and the workflow", async () => {
    const response = await visit(page, worker.url, "/");
    assert.equal(response.status(), 200);
    assertPageHeaders(response);
    // The reverted job is what needs someone first: it sits at the top.
    const failedItem = page.locator(`#attention li.item:has(a[href="/jobs/${made.reverted.id}"])`);
    assert.equal(await failedItem.count(), 1, "the reverted job is in the attention section");
    assert.equal(await failedItem.getAttribute("data-state"), "reverted");
    const first = await page.locator("main section").first().getAttribute("id");
    assert.equal(first, "attention", "the attention section comes first");
    // Every app, with its production commit, state, last job and live previews.
    assert.deepEqual(await page.locator("#apps tr.app").evaluateAll((rows) => rows.map((r) => r.dataset.app).sort()), ["gated", "hello", "replayed"]);
    const hello = page.locator('#apps tr.app[data-app="hello"]');
    assert.equal(await hello.locator(".production .sha").innerText(), sha("a").slice(0, 7), "the production commit is the one reverted to");
    assert.equal(await hello.locator(".production .subject").innerText(), HOSTILE, "its subject, as text");
    assert.ok(await hello.locator('.state[data-state="reverted"]').count() >= 1, "its last job's outcome");
    assert.match(await hello.locator(".previews a").first().innerText(), /#2/, "its live preview");
    assert.equal(await hello.locator(".previews a").first().getAttribute("href"), made.preview.url);
    // The workflow, and the recent deployments from every source, newest first.
    assert.match(await page.locator("#workflows li.workflow").first().innerText(), /payments/);
    const recent = page.locator("#recent tr.deployment");
    assert.match(await recent.filter({ hasText: "edge-site" }).first().getAttribute("data-source"), /notify/, "the /notify deployment");
    const jobs = await page.locator('#recent tr.deployment[data-source="job"]').allInnerTexts();
    const [at, bt] = [sha("a"), sha("b")].map((c) => jobs.findIndex((t) => t.includes(c.slice(0, 7))));
    assert.ok(bt >= 0 && at > bt, `both deploy jobs, the newer first: ${JSON.stringify(jobs)}`);
    const body = await page.locator("body").innerText();
    // Times in UTC, with how long ago beside them.
    assert.match(body, /\d{4}-\d\d-\d\d \d\d:\d\d UTC\s+(just now|\d+ (min|h|days?) ago)/);
    await shots(page, "/", "overview");
    await page.emulateMedia({ colorScheme: "dark" });
    await visit(page, worker.url, "/");
    const dark = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    await screenshot(page, "overview-dark");
    await page.emulateMedia({ colorScheme: "light" });
    await visit(page, worker.url, "/");
    const light = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    assert.notEqual(dark, light, "dark mode changes the page's colours");
    browser.assertClean();
  });

  test("a job's timeline: a bar per step on a time axis, the failing step's error and attempts", async () => {
    await shots(page, `/jobs/${made.reverted.id}`, "job");
    const steps = page.locator("#timeline li.step");
    const shown = await steps.evaluateAll((li) => li.map((l) => [l.dataset.step, l.dataset.state]));
    // Every step of the job, in its state, and the revert's after them.
    for (const s of made.reverted.steps) assert.ok(shown.some(([name, state]) => name === s.name && state === s.state), `${s.name} ${s.state} in ${JSON.stringify(shown)}`);
    const failing = page.locator('#timeline li.step[data-state="failed"]');
    assert.equal(await failing.count(), 1, "one failed step");
    assert.equal(await failing.getAttribute("data-step"), "trigger");
    assert.match(await failing.locator(".error").innerText(), /deploy hook answered 422/, "its error, at a glance");
    assert.equal(await failing.locator("rect.bar.bad").count(), 1, "drawn as a failure");
    // The bars sit on one time axis: a later step's bar starts no earlier.
    const xs = [];
    for (const li of await steps.all()) {
      const bar = li.locator("rect.bar");
      if ((await bar.count()) === 1) xs.push((await bar.boundingBox()).x);
    }
    assert.ok(xs.length >= 3, "the steps that ran are drawn");
    assert.deepEqual(xs, [...xs].sort((a, b) => a - b), "in time order");
    assert.match(await page.locator("#commits li.commit").first().innerText(), /Break the build/);
    assert.equal(await page.locator("#commits li.commit .sha").first().innerText(), sha("b").slice(0, 7));
    assert.equal(await page.locator(`#links a.deployment[href^="https://github.com/${HELLO}/deployments" i]`).count(), 1, "the GitHub deployment, linked");
    assert.ok(await page.locator("#telegram li.message").count() >= 1, "its Telegram message");
    browser.assertClean();
  });

  test("a hostile commit message shows as text, and no dialog opens", async () => {
    for (const path of ["/", `/jobs/${made.good.id}`, "/apps/hello"]) {
      const response = await visit(page, worker.url, path);
      assert.equal(response.status(), 200);
      assert.ok((await page.locator("body").innerText()).includes(HOSTILE), `${path} shows it as text`);
      assert.equal(await page.locator("script").count(), 0, `${path} has no script element`);
      assert.ok(!(await response.text()).includes(HOSTILE), `${path}'s HTML has it escaped`);
    }
    browser.assertClean();
  });

  test("the app, previews and workflow pages", async () => {
    await shots(page, "/apps/hello", "app");
    assert.match(await page.locator('#secrets li.secret[data-env="production"]').innerText(), /DATABASE_URL/, "its secrets by name");
    assert.ok(!(await page.content()).includes("postgres://never-shown"), "never by value");
    const preview = page.locator('#previews tr.preview[data-pr="2"]');
    assert.equal(await preview.locator(".url a").getAttribute("href"), made.preview.url, "its preview's URL");
    assert.equal(await preview.locator(".sha").first().innerText(), sha("c").slice(0, 7), "its head");
    assert.equal(await preview.locator(".state").getAttribute("data-state"), "ready");
    assert.deepEqual(await page.locator("#jobs tr.job").evaluateAll((rows) => rows.map((r) => Number(r.dataset.job))),
      [made.reverted.id, made.good.id], "its job history, newest first");

    await shots(page, "/previews", "previews");
    assert.equal(await page.locator('#previews tr.preview[data-app="hello"][data-pr="2"] .state').getAttribute("data-state"), "ready");

    await shots(page, "/workflows/payments", "workflow");
    const infra = made.workflow.steps.find((s) => s.id === "infra_pr");
    const step = page.locator('#steps li.step[data-step="infra_pr"]');
    assert.equal(await step.getAttribute("data-state"), infra.status);
    assert.equal(await step.locator(".pr-link a").getAttribute("href"), infra.pr.html_url, "the step's PR, linked");
    assert.equal(await page.locator('#steps li.step[data-step="infra_merged"]').getAttribute("data-state"), "waiting");
    assert.ok(await page.locator('#steps li.step[data-step="infra_merged"] .after a').count() >= 1, "what it waits for");
    browser.assertClean();
  });
});

describe("acting from the pages", () => {
  let page;
  before(async () => {
    page = await browser.page();
    if (!(await sessionCookie())) await signIn(page);
  });
  after(() => page?.close());

  test("Approve on the job page of a job awaiting approval deploys it; a forged form decides nothing", async () => {
    await deliver("push", push(GATED, sha("d")));
    const waiting = await jobWhen("gated", sha("d"), (j) => j.approval?.state === "awaiting" && j.steps[0].state === "started", "awaiting approval");
    await visit(page, worker.url, "/");
    assert.equal(await page.locator(`#attention li.item:has(a[href="/jobs/${waiting.id}"])`).count(), 1, "awaiting approval sits at the top");
    await visit(page, worker.url, `/jobs/${waiting.id}`);
    await screenshot(page, "job-awaiting-approval");
    assert.deepEqual(target.hooks.filter((h) => h.sha === sha("d")), [], "nothing deployed before the press");
    const form = page.locator('#actions form[action$="/approve"]');
    const approve = form.locator('button[name="action"][value="approve"]');
    // The same form with another CSRF token (what a form on another site would
    // carry) is refused, and decides nothing.
    await form.locator('input[name="csrf"]').evaluate((input) => { input.value = "forged-csrf-token"; });
    const [forged] = await Promise.all([page.waitForNavigation(), approve.click()]);
    assert.equal(forged.status(), 403);
    assert.equal((await job(waiting.id)).approval.state, "awaiting", "a forged form decides nothing");
    await visit(page, worker.url, `/jobs/${waiting.id}`);
    const [response] = await Promise.all([page.waitForNavigation(), approve.click()]);
    assert.equal(response.status(), 200);
    assert.equal(new URL(page.url()).pathname, `/jobs/${waiting.id}`, "back on the job page");
    const done = await ended("gated", sha("d"));
    assert.equal(done.status, "finalized", done.error);
    assert.equal(done.approval.state, "approved");
    assert.equal(target.hooks.filter((h) => h.sha === sha("d")).length, 1, "deployed once");
    // The audit trail names who pressed.
    await visit(page, worker.url, `/jobs/${waiting.id}`);
    const entry = page.locator('#audit li.entry[data-result="done"]').filter({ hasText: /approve/i });
    assert.equal(await entry.count(), 1, "one approval in the audit trail");
    assert.match(await entry.innerText(), /admin/, "naming who pressed");
    assert.equal(await page.locator('#actions button[value="approve"]').count(), 0, "no Approve once decided");
    browser.assertClean();
  });

  test("Replay on the deliveries page processes a failed delivery again", async () => {
    // replayed deploys 1; its next push comes on top of a commit the chain cannot
    // place, and the compare that would place it keeps failing: the delivery fails.
    await deliver("push", push(REPLAYED, sha("1")));
    assert.equal((await ended("replayed", sha("1"))).status, "finalized");
    const range = `${sha("1")}...${sha("3")}`;
    const broken = { failures: Infinity, status: "ahead" };
    gh.state.compareStatus.set(range, broken);
    const d = await deliver("push", push(REPLAYED, sha("3"), sha("2")));
    const find = async () => (await admin("GET", "/api/deliveries?limit=200")).json.deliveries.find((x) => x.id === d.id);
    await waitUntil("the dead letter", () => worker.logs.some((l) => l.includes("dead-lettered") && l.includes(d.id)));
    await sleep(2500);
    await worker.scheduled();
    const failed = await waitUntil("the delivery's failure", async () => ((await find())?.outcome === "failed" ? find() : undefined));
    assert.equal(failed.attempts, 10);
    const comparesBefore = gh.requests.filter((r) => r.path === `/repos/${REPLAYED}/compare/${range}`).length;

    await visit(page, worker.url, "/deliveries?outcome=failed");
    await shots(page, "/deliveries", "deliveries");
    await visit(page, worker.url, "/deliveries?outcome=failed");
    const row = page.locator(`#deliveries tr.delivery[data-id="${d.id}"]`);
    assert.equal(await row.getAttribute("data-source"), "github");
    assert.equal(await row.locator(".state").getAttribute("data-state"), "failed");
    // The filter shows only what it names.
    const outcomes = await page.locator("#deliveries tr.delivery .state").evaluateAll((b) => [...new Set(b.map((x) => x.dataset.state))]);
    assert.deepEqual(outcomes, ["failed"]);
    broken.failures = 0;
    const replay = row.locator(`form.replay[action="/deliveries/${d.id}/replay"] button[name="action"][value="replay"]`);
    const [response] = await Promise.all([page.waitForNavigation(), replay.click()]);
    assert.equal(response.status(), 200, `the replay answered ${response.status()}`);
    assert.ok(await page.locator("p.notice").count() === 1, "the page says it was replayed");
    const done = await ended("replayed", sha("3"));
    assert.equal(done.status, "finalized", done.error);
    assert.equal(gh.requests.filter((r) => r.path === `/repos/${REPLAYED}/compare/${range}`).length, comparesBefore + 1, "GitHub was asked again, once");
    assert.equal(target.hooks.filter((h) => h.sha === sha("3")).length, 1);
    const processed = await settled(d.id);
    assert.deepEqual([processed.outcome, processed.attempts], ["processed", 0]);
    browser.assertClean();
  });
});

test("the fakes saw nothing unexpected and no secret reached the logs or the pages", () => {
  assert.deepEqual(gh.violations, []);
  assert.deepEqual(tg.violations, []);
  assert.deepEqual(target.violations, []);
  assert.deepEqual(fly.violations, []);
  browser.assertClean();
  const logs = worker.logs.join("\n");
  for (const secret of [SECRET, ADMIN, NOTIFY, BOT, FLY_TOKEN, ...gh.state.issued]) assert.ok(!logs.includes(secret), "a secret in the logs");
  assert.ok(!logs.includes("PRIVATE KEY"), "the App key in the logs");
});
