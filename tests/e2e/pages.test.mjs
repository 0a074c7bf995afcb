// The status pages end to end on the real runtime, with fetch (the Chromium
// scenarios are browser.test.mjs's): after a real flow (a /notify, a deploy job
// awaiting approval, a failed job, a GitHub delivery) the overview, a job's
// timeline, an approval from the job page (with and without its CSRF token, twice),
// a replay from /deliveries, the hostile-string check, the headers every page
// carries, and the admin API's cursor. Strict fakes of GitHub, Telegram and a deploy
// target record every request and fail on anything unexpected.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { fakeTelegram, fakeGithub, fakeTarget, fakeAccess } from "./fakes.mjs";
import { startWorker } from "./worker.mjs";
import { appKeyPair, clients, pushEvent, sha, sleep } from "./github-kit.mjs";

const SECRET = "e2e pages webhook secret";
const ADMIN = "e2e-pages-admin-token";
const NOTIFY = "e2e-pages-notify-token";
const APP_ID = "454545";
const { privateKey: APP_KEY, publicKey: APP_PUBLIC } = appKeyPair();
const BOT = "45:e2e-pages-bot";
const CHAT = "-100945";
const PUBLIC_URL = "https://notifier.example.com";
const HOSTILE = "<script>alert(1)</script>";

let worker;
let gh;
let tg;
let target;
let session;
const { deliver, admin, jobWhen } = clients(() => worker, { secret: SECRET, token: ADMIN });

/**
 * A page of `on` (the worker): its status, headers and HTML. `cookie` is the
 * session (null: none); `headers` adds others (an Access token).
 */
async function page(path, { cookie = session, headers: extra = {}, method = "GET", form, contentType, on = worker } = {}) {
  const headers = { ...extra };
  if (cookie) headers.cookie = cookie;
  let body;
  if (form !== undefined) {
    body = typeof form === "string" ? form : new URLSearchParams(form).toString();
    headers["content-type"] = contentType ?? "application/x-www-form-urlencoded";
  }
  const r = await fetch(`${on.url}${path}`, { method, headers, body, redirect: "manual" });
  return { status: r.status, headers: r.headers, html: await r.text() };
}

/** The value of hidden field `name` in the form posting to `action`. */
function field(html, action, name) {
  const at = html.indexOf(`action="${action}"`);
  assert.ok(at >= 0, `no form posting to ${action}`);
  const form = html.slice(at, html.indexOf("</form>", at));
  const m = form.match(new RegExp(`name="${name}" value="([^"]*)"`));
  assert.ok(m, `no ${name} in the form posting to ${action}`);
  return m[1];
}

const push = (repo, after, message, before) => pushEvent(repo, after, { before, message });

const app = (repository, approval) => ({
  repository,
  production_branch: "master",
  environment: "production",
  deploy_on: "push",
  deploy: { type: "deploy_hook", url: `${target.base}/hook` },
  health_url: `${target.base}/health`,
  approval,
});

const ended = (name, commit) => jobWhen(name, commit, (j) => ["finalized", "failed", "reverted"].includes(j.status), "finished");

const GATED = "Codertocat/Gated";
const PLAIN = "Codertocat/Plain";
let gatedJob;
let failedJob;
let pushDelivery;

before(async () => {
  gh = await fakeGithub({ appId: APP_ID, publicKey: APP_PUBLIC });
  tg = await fakeTelegram({ token: BOT, chatId: CHAT });
  target = await fakeTarget();
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
    },
  });
  // Signed in through the form with ADMIN_TOKEN: the session cookie.
  const signin = await fetch(`${worker.url}/signin`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", "cf-connecting-ip": "198.51.100.45" },
    body: new URLSearchParams({ token: ADMIN, next: "/" }).toString(),
    redirect: "manual",
  });
  assert.equal(signin.status, 303);
  session = signin.headers.getSetCookie()[0].split(";")[0];
  assert.equal((await admin("PUT", "/api/apps/gated", app(GATED, { required: true, timeout_minutes: 30 }))).status, 201);
  assert.equal((await admin("PUT", "/api/apps/plain", app(PLAIN))).status, 201);
  // A /notify with a hostile commit message.
  const notified = await fetch(`${worker.url}/notify`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${NOTIFY}` },
    body: JSON.stringify({ deployment: { type: "worker", isCI: true, projectName: "docs", deploymentId: "pages-1", commitHash: "abcdef1234567", commitMessage: HOSTILE, author: "alice" } }),
  });
  assert.equal(notified.status, 202);
  // A deploy job that waits for approval, its commit message hostile too.
  const pushed = await deliver("push", push(GATED, sha("a"), HOSTILE));
  assert.equal(pushed.status, 202);
  pushDelivery = pushed.id;
  gatedJob = await jobWhen("gated", sha("a"), (j) => j.approval?.state === "awaiting" && j.steps[0].state === "started", "awaiting approval");
  // A job whose deploy hook refuses: it fails, nothing to revert to.
  target.state.failHookFor.add(sha("f"));
  await deliver("push", push(PLAIN, sha("f"), "Break the build"));
  failedJob = await ended("plain", sha("f"));
  assert.equal(failedJob.status, "failed");
});

after(async () => {
  await worker?.stop();
  await gh?.close();
  await tg?.close();
  await target?.close();
});

describe("the pages", () => {
  test("every page carries the page headers and its D1 round trips; none needs more than three", async () => {
    for (const path of ["/", "/apps/gated", `/jobs/${gatedJob.id}`, "/previews", "/deliveries", "/deliveries?source=github&outcome=processed"]) {
      const r = await page(path);
      assert.equal(r.status, 200, `${path}: ${r.html.slice(0, 300)}`);
      assert.equal(r.headers.get("content-security-policy"), "default-src 'self'; frame-ancestors 'none'");
      assert.equal(r.headers.get("cache-control"), "no-store");
      assert.equal(r.headers.get("x-content-type-options"), "nosniff");
      assert.equal(r.headers.get("referrer-policy"), "same-origin");
      assert.match(r.headers.get("content-type"), /^text\/html/);
      const timing = r.headers.get("server-timing");
      const m = timing?.match(/^d1;desc="(\d+)", render;dur=(\d+)$/);
      assert.ok(m, `${path}: Server-Timing ${timing}`);
      assert.ok(Number(m[1]) >= 1 && Number(m[1]) <= 3, `${path}: ${m[1]} round trips`);
      assert.ok(!r.html.includes("<script"), `${path} has a script element`);
      assert.ok(!r.html.includes("style="), `${path} has an inline style`);
      const head = await page(path, { method: "HEAD" });
      assert.deepEqual([head.status, head.html, head.headers.get("cache-control")], [200, "", "no-store"], `HEAD ${path}`);
    }
    const post = await page("/", { method: "POST", form: {} });
    assert.deepEqual([post.status, post.headers.get("allow")], [405, "GET, HEAD"]);
  });

  test("without a session, or with a forged one, a page sends to sign in and shows no data", async () => {
    for (const cookie of [null, "__Host-edge-session=v1.1.1.00000000000000000000000000000000.forged", `${session}x`]) {
      for (const path of ["/", `/jobs/${gatedJob.id}`, "/deliveries"]) {
        const r = await page(path, { cookie });
        assert.equal(r.status, 303, `${path} with ${cookie}`);
        assert.match(r.headers.get("location"), /^\/signin/);
        assert.ok(!r.html.includes("gated"), "no data before sign-in");
      }
      const post = await page(`/jobs/${gatedJob.id}/approve`, { cookie, method: "POST", form: { csrf: "x", version: "1" } });
      assert.equal(post.status, 303, "a POST without a session acts on nothing");
    }
  });

  test("the overview shows what awaits approval and what failed first, every app, and the recent deployments", async () => {
    const { html } = await page("/");
    const attention = html.slice(html.indexOf('id="attention"'), html.indexOf('id="apps"'));
    assert.match(attention, new RegExp(`data-kind="job" data-state="awaiting_approval">[\\s\\S]*href="/jobs/${gatedJob.id}"`));
    assert.match(attention, new RegExp(`data-state="failed"[\\s\\S]*href="/jobs/${failedJob.id}"`));
    assert.match(html, /<tr class="app" data-app="gated">/);
    assert.match(html, /<tr class="app" data-app="plain">/);
    const recent = html.slice(html.indexOf('id="recent"'));
    assert.match(recent, /data-source="notify"/);
    assert.match(recent, /data-source="job"/);
  });

  test("a commit message of <script> shows as text on the overview and the job page", async () => {
    for (const path of ["/", `/jobs/${gatedJob.id}`]) {
      const { html } = await page(path);
      assert.ok(html.includes("&lt;script&gt;alert(1)&lt;/script&gt;"), `${path} shows the message as text`);
      assert.ok(!html.includes(HOSTILE), `${path} has the script unescaped`);
    }
  });

  test("a failed job's timeline shows the failing step in red with its error", async () => {
    const { html } = await page(`/jobs/${failedJob.id}`);
    const trigger = html.slice(html.indexOf('data-step="trigger"'));
    assert.match(trigger.slice(0, trigger.indexOf("</li>")), /data-state="failed"[\s\S]*class="bar bad"[\s\S]*<p class="error">[^<]*422/);
    assert.match(html, /<section id="timeline">/);
    assert.match(html, new RegExp(`action="/jobs/${failedJob.id}/retry"`), "the latest failed job offers Retry");
  });

  test("an approval from the job page needs its CSRF token, acts once, and names the viewer", async () => {
    const path = `/jobs/${gatedJob.id}`;
    const shown = (await page(path)).html;
    const action = `${path}/approve`;
    const csrf = field(shown, action, "csrf");
    const version = field(shown, action, "version");
    assert.match(shown, /<button type="submit" name="action" value="approve">Approve<\/button>/);

    const without = await page(action, { method: "POST", form: { version, action: "approve" } });
    assert.equal(without.status, 403);
    const wrong = await page(action, { method: "POST", form: { csrf: "forged", version } });
    assert.equal(wrong.status, 403);
    const json = await page(action, { method: "POST", form: JSON.stringify({ csrf, version }), contentType: "application/json" });
    assert.equal(json.status, 415);
    const get = await page(action);
    assert.deepEqual([get.status, get.headers.get("allow")], [405, "POST"]);
    assert.equal((await admin("GET", path.replace("/jobs", "/api/jobs"))).json.job.approval.state, "awaiting", "nothing decided yet");

    const done = await page(action, { method: "POST", form: { csrf, version, action: "approve" } });
    assert.deepEqual([done.status, done.headers.get("location")], [303, path]);
    const again = await page(action, { method: "POST", form: { csrf, version, action: "approve" } });
    assert.equal(again.status, 409);
    assert.match(again.html, /This job has moved on/);

    const finished = await ended("gated", sha("a"));
    assert.equal(finished.status, "finalized", finished.error);
    assert.equal(finished.approval.by, "admin");
    assert.deepEqual(finished.actions.map((a) => [a.action, a.result, a.actor]), [["approve", "done", "admin"], ["approve", "refused", "admin"]], "one action, by the viewer; the second submit refused, and on the trail");
    assert.equal(target.hooks.filter((h) => h.sha === sha("a")).length, 1, "deployed once");
    const after = (await page(path)).html;
    assert.match(after.slice(after.indexOf('id="audit"')), /<strong>admin<\/strong> approve/);
    // The deployment's statuses link to the job page.
    const statuses = gh.requests.filter((r) => r.method === "POST" && /\/deployments\/\d+\/statuses$/.test(r.path) && r.body?.state === "success");
    assert.ok(statuses.some((r) => r.body.log_url === `${PUBLIC_URL}/jobs/${gatedJob.id}`), JSON.stringify(statuses.map((r) => r.body)));
  });

  test("a replay from /deliveries processes the delivery again", async () => {
    const list = (await page("/deliveries?source=github")).html;
    const action = `/deliveries/${pushDelivery}/replay`;
    const csrf = field(list, action, "csrf");
    const version = field(list, action, "version");
    const before = (await admin("GET", "/api/deliveries?source=github&limit=500")).json.deliveries.find((d) => d.id === pushDelivery);
    assert.equal(version, String(before.updated_at), "the form carries the delivery as it was shown");
    assert.equal((await page(action, { method: "POST", form: { version, action: "replay" } })).status, 403, "no CSRF token, no replay");
    const replayed = await page(action, { method: "POST", form: { csrf, version, action: "replay" } });
    assert.deepEqual([replayed.status, replayed.headers.get("location")], [303, "/deliveries?replayed=1"]);
    assert.match((await page("/deliveries?replayed=1")).html, /Replay queued/);
    // The same form again (a double submit, a stale tab) replays nothing.
    const again = await page(action, { method: "POST", form: { csrf, version, action: "replay" } });
    assert.equal(again.status, 409);
    assert.match(again.html, /This delivery has moved on/);
    const until = Date.now() + 15_000;
    let now;
    while (Date.now() < until) {
      now = (await admin("GET", "/api/deliveries?source=github&limit=500")).json.deliveries.find((d) => d.id === pushDelivery);
      if (now.updated_at > before.updated_at && now.outcome !== "queued") break;
      await sleep(100);
    }
    assert.ok(now.updated_at > before.updated_at, "processed again");
    assert.equal((await page("/deliveries/no-such-delivery/replay", { method: "POST", form: { csrf, version } })).status, 404);
  });

  test("unknown pages and ids are 404 pages; a malformed cursor is a 400 page", async () => {
    for (const path of ["/jobs/999999", "/jobs/abc", "/apps/nope", "/workflows/nope", "/deliveries/x/y"]) {
      const r = await page(path);
      assert.equal(r.status, 404, path);
      assert.match(r.html, /Not found/);
    }
    const bad = await page("/?before=1%20OR%201=1");
    assert.equal(bad.status, 400);
    assert.match(bad.html, /before must be a cursor/);
  });
});

describe("under Cloudflare Access", () => {
  const TEAM = "e2e-pages.cloudflareaccess.com";
  const AUD = "e2e-pages-access-aud";
  let access;
  let guarded;

  before(async () => {
    access = await fakeAccess({ team: TEAM, aud: AUD });
    guarded = await startWorker({
      vars: {
        ACCESS_TEAM_DOMAIN: TEAM,
        ACCESS_AUD: AUD,
        ACCESS_OPERATORS: "ops@example.com",
        ACCESS_CERTS_URL: access.certsUrl,
        GITHUB_WEBHOOK_SECRET: SECRET,
        ADMIN_TOKEN: ADMIN,
        GITHUB_APP_ID: APP_ID,
        GITHUB_APP_PRIVATE_KEY: APP_KEY,
        GITHUB_API_BASE: gh.base,
        TELEGRAM_PACE: "off",
        HEALTH_CHECK_INTERVAL_SECONDS: "1",
      },
    });
  });

  after(async () => {
    await guarded?.stop();
    await access?.close();
    assert.deepEqual(access?.violations ?? [], []);
  });

  test("someone who is not an operator sees the job but is refused its approval; the operator approves it", async () => {
    const api = clients(() => guarded, { secret: SECRET, token: ADMIN });
    assert.equal((await api.admin("PUT", "/api/apps/gated", app(GATED, { required: true, timeout_minutes: 30 }))).status, 201);
    await api.deliver("push", push(GATED, sha("e"), "Behind Access"));
    const until = Date.now() + 20_000;
    let waiting;
    while (Date.now() < until && !waiting) {
      const listed = (await api.admin("GET", "/api/jobs?app=gated")).json.jobs[0];
      const job = listed && (await api.admin("GET", `/api/jobs/${listed.id}`)).json.job;
      if (job?.approval?.state === "awaiting" && job.steps[0].state === "started") waiting = job;
      else await sleep(100);
    }
    assert.ok(waiting, "the job awaits approval");
    const as = (email) => ({ "cf-access-jwt-assertion": access.token({ email }) });
    const path = `/jobs/${waiting.id}`;
    const dev = await page(path, { on: guarded, cookie: null, headers: as("dev@example.com") });
    assert.equal(dev.status, 200);
    assert.ok(!dev.html.includes('id="actions"'), "no buttons for a non-operator");
    const ops = await page(path, { on: guarded, cookie: null, headers: as("ops@example.com") });
    const version = field(ops.html, `${path}/approve`, "version");
    const devCsrf = dev.html.match(/name="csrf" value="([^"]+)"/)[1];
    const refused = await page(`${path}/approve`, { on: guarded, cookie: null, headers: as("dev@example.com"), method: "POST", form: { csrf: devCsrf, version } });
    assert.equal(refused.status, 403);
    assert.match(refused.html, /only an operator may act on a job/);
    const opsCsrf = field(ops.html, `${path}/approve`, "csrf");
    const done = await page(`${path}/approve`, { on: guarded, cookie: null, headers: as("ops@example.com"), method: "POST", form: { csrf: opsCsrf, version } });
    assert.deepEqual([done.status, done.headers.get("location")], [303, path]);
    const job = (await api.admin("GET", `/api/jobs/${waiting.id}`)).json.job;
    assert.equal(job.approval.by, "ops@example.com");
    assert.deepEqual(job.actions.map((a) => [a.actor, a.action, a.result]), [
      ["dev@example.com", "approve", "refused"], ["ops@example.com", "approve", "done"],
    ]);
  });
});

describe("the admin API's cursor", () => {
  test("a list pages with before and next, to null at the end, and refuses a malformed cursor", async () => {
    const seen = [];
    let before = null;
    for (let i = 0; i < 20; i++) {
      const q = before ? `&before=${encodeURIComponent(before)}` : "";
      const r = await admin("GET", `/api/deliveries?limit=1${q}`);
      assert.equal(r.status, 200);
      assert.equal(r.json.deliveries.length <= 1, true);
      seen.push(...r.json.deliveries.map((d) => d.id));
      before = r.json.next;
      if (before === null) break;
    }
    const whole = (await admin("GET", "/api/deliveries?limit=500")).json;
    assert.equal(whole.next, null);
    assert.deepEqual(seen, whole.deliveries.map((d) => d.id), "page by page, the whole log, once");

    const jobs = await admin("GET", "/api/jobs?limit=1");
    assert.equal(jobs.json.jobs.length, 1);
    const rest = await admin("GET", `/api/jobs?limit=50&before=${encodeURIComponent(jobs.json.next)}`);
    assert.equal(rest.json.next, null);
    const all = (await admin("GET", "/api/jobs?limit=50")).json.jobs.map((j) => j.id);
    assert.deepEqual([jobs.json.jobs[0].id, ...rest.json.jobs.map((j) => j.id)], all);

    for (const path of ["/api/jobs?before=oops", "/api/deliveries?before=1.z.1", "/api/services?before=x", "/api/protection?before=1.r.x", "/api/apps/gated/previews?before=-1.p.1"]) {
      const r = await admin("GET", path);
      assert.equal(r.status, 400, path);
      assert.deepEqual(r.json, { success: false, error: "before must be a cursor from a previous page's next" }, path);
    }
    for (const path of ["/api/services", "/api/protection", "/api/apps/gated/previews"]) {
      assert.equal((await admin("GET", path)).json.next, null, path);
    }
  });
});

test("the fakes saw nothing unexpected and no secret reached the logs", () => {
  assert.deepEqual(gh.violations, []);
  assert.deepEqual(tg.violations, []);
  assert.deepEqual(target.violations, []);
  const logs = worker.logs.join("\n");
  for (const secret of [SECRET, ADMIN, NOTIFY, BOT, ...gh.state.issued]) assert.ok(!logs.includes(secret), "a secret in the logs");
});
