// Approvals end to end on the real runtime: an app whose deploys wait for a person
// in an `awaiting_approval` step, decided through POST /api/jobs/{id}/approve and
// /reject, timed out by the cron, superseded by a newer push. Signed real payloads
// against strict fakes of GitHub, Telegram and a deploy target.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { fakeTelegram, fakeGithub, fakeTarget } from "./fakes.mjs";
import { startWorker } from "./worker.mjs";
import { appKeyPair, clients, pushEvent, sha, sleep } from "./github-kit.mjs";

const SECRET = "e2e approvals webhook secret";
const ADMIN = "e2e-approvals-admin-token";
const APP_ID = "434343";
const { privateKey: APP_KEY, publicKey: APP_PUBLIC } = appKeyPair();
const BOT = "43:e2e-approvals-bot";
const CHAT = "-100999";

let worker;
let gh;
let tg;
let target;
const { deliver, admin, job, jobWhen } = clients(() => worker, { secret: SECRET, token: ADMIN });

const push = (repo, after, before) => pushEvent(repo, after, { before });

const app = (repository, approval) => ({
  repository,
  production_branch: "master",
  environment: "production",
  deploy_on: "push",
  deploy: { type: "deploy_hook", url: `${target.base}/hook` },
  health_url: `${target.base}/health`,
  approval,
});


const awaiting = (name, commit) => jobWhen(name, commit, (j) => j.approval?.state === "awaiting" && j.steps[0].state === "started" && j.steps[0].result?.deadline, "awaiting approval");
const ended = (name, commit) => jobWhen(name, commit, (j) => ["finalized", "failed", "reverted", "cancelled"].includes(j.status), "finished");

/** What reached the deploy target or GitHub's deployments for `commit`. */
const deployed = (commit) => [
  ...target.hooks.filter((h) => h.sha === commit),
  ...gh.requests.filter((r) => r.body?.ref === commit),
];

/** The current text of the job message about `commit` in the chat, once it reads `pattern`. */
async function messageReads(commit, pattern, timeoutMs = 15_000) {
  const until = Date.now() + timeoutMs;
  const current = () => {
    const m = tg.delivered(commit.slice(0, 7)).at(-1);
    return m && (m.edits.at(-1)?.visible ?? m.visible);
  };
  while (Date.now() < until) {
    if (pattern.test(current() ?? "")) return current();
    await sleep(100);
  }
  throw new Error(`the message about ${commit.slice(0, 7)} reads ${JSON.stringify(current())}, not ${pattern}`);
}

const decide = (id, decision) => admin("POST", `/api/jobs/${id}/${decision}`);

// The timeout scenario's job waits out its one minute while the others run.
const SLOW = "Codertocat/Slow";
let slowPushedAt;

before(async () => {
  gh = await fakeGithub({ appId: APP_ID, publicKey: APP_PUBLIC });
  tg = await fakeTelegram({ token: BOT, chatId: CHAT });
  target = await fakeTarget();
  worker = await startWorker({
    vars: {
      GITHUB_WEBHOOK_SECRET: SECRET,
      ADMIN_TOKEN: ADMIN,
      GITHUB_APP_ID: APP_ID,
      GITHUB_APP_PRIVATE_KEY: APP_KEY,
      GITHUB_API_BASE: gh.base,
      TELEGRAM_BOT_TOKEN: BOT,
      TELEGRAM_CHAT_ID: CHAT,
      TELEGRAM_PACE: "off",
      TELEGRAM_API_BASE: tg.base,
      PUBLIC_URL: "https://notifier.example.com",
      HEALTH_CHECK_INTERVAL_SECONDS: "1",
      // The cron looks at anything untouched for 2 s; a claim is stale after 2 s.
      SWEEP_AFTER_SECONDS: "2",
      STEP_STALE_SECONDS: "2",
    },
  });
  assert.equal((await admin("PUT", "/api/apps/slow", app(SLOW, { required: true, timeout_minutes: 1 }))).status, 201);
  slowPushedAt = Date.now();
  assert.equal((await deliver("push", push(SLOW, sha("5")))).status, 202);
});

after(async () => {
  await worker?.stop();
  await gh?.close();
  await tg?.close();
  await target?.close();
});

const GATED = "Codertocat/Gated";

describe("apps with approval", () => {
  test("approval is validated, naming the field", async () => {
    const bad = async (approval) => (await admin("PUT", "/api/apps/gated", app(GATED, approval))).json;
    assert.match((await bad({ required: true, timeout: 5 })).error, /^approval\.timeout: unknown field `timeout`/);
    assert.deepEqual(await bad({ timeout_minutes: 0 }), { success: false, error: "approval.timeout_minutes must be 1 to 10080 (a week)" });
    assert.match((await bad({ required: "yes" })).error, /^approval\.required: invalid type/);
    const created = await admin("PUT", "/api/apps/gated", app(GATED, { required: true, timeout_minutes: 30 }));
    assert.equal(created.status, 201);
    assert.deepEqual(created.json.app.approval, { required: true, timeout_minutes: 30 });
  });

  test("a push waits for approval, deploying nothing; approving it via the API runs the trigger, once", async () => {
    await deliver("push", push(GATED, sha("a")));
    const waiting = await awaiting("gated", sha("a"));
    assert.equal(waiting.status, "processing");
    assert.deepEqual(waiting.steps.map((s) => [s.name, s.state]), [
      ["awaiting_approval", "started"], ["create_deployment", "pending"], ["trigger", "pending"],
      ["await_result", "skipped"], ["verify_health", "pending"], ["finalize", "pending"],
    ]);
    assert.equal(waiting.approval.deadline, waiting.started_at + 30 * 60_000);
    assert.match(await messageReads(sha("a"), /awaiting approval/), /^⏸ Deploy gated → production[\s\S]*Status: awaiting approval\nApproval: awaiting approval until /);
    // The cron runs and leaves it waiting: nothing polls it, nothing deploys it.
    await sleep(2500);
    await worker.scheduled();
    const still = await job(waiting.id);
    assert.deepEqual([still.steps[0].state, still.steps[0].attempts, still.steps[1].state], ["started", 1, "pending"]);
    assert.deepEqual(deployed(sha("a")), [], "no GitHub Deployment, no trigger before approval");

    const [first, second] = [await decide(waiting.id, "approve"), await decide(waiting.id, "approve")];
    assert.equal(first.status, 200);
    assert.equal(first.json.message, "Approved");
    assert.deepEqual([first.json.approval.state, first.json.approval.by], ["approved", "admin API"]);
    assert.deepEqual([second.status, second.json.message, second.json.approval], [200, "Already approved", first.json.approval]);
    const done = await ended("gated", sha("a"));
    assert.equal(done.status, "finalized", done.error);
    assert.deepEqual(done.approval, first.json.approval);
    assert.deepEqual(done.steps[0].result, {
      waiting_for: "approval", deadline: waiting.approval.deadline, decision: "approved", by: "admin API", at: first.json.approval.at,
    });
    // Both calls are in the job's audit trail; the second acted on nothing.
    assert.deepEqual(done.actions.map((a) => [a.action, a.result, a.detail, a.actor]), [
      ["approve", "done", null, "admin API"], ["approve", "refused", "already approved", "admin API"],
    ]);
    assert.equal(target.hooks.filter((h) => h.sha === sha("a")).length, 1, "triggered once");
    assert.equal(gh.requests.filter((r) => r.method === "POST" && r.path.endsWith("/deployments") && r.body.ref === sha("a")).length, 1);
    assert.match(await messageReads(sha("a"), /^✅/), /Approval: approved by admin API/);
    const late = await decide(waiting.id, "reject");
    assert.deepEqual([late.status, late.json], [409, { success: false, error: `job ${waiting.id} was already approved by admin API` }]);
  });

  test("a rejection fails the job, deploying and reverting nothing", async () => {
    await deliver("push", push(GATED, sha("b"), sha("a")));
    const waiting = await awaiting("gated", sha("b"));
    const rejected = await decide(waiting.id, "reject");
    assert.deepEqual([rejected.status, rejected.json.message, rejected.json.approval.by], [200, "Rejected", "admin API"]);
    const done = await ended("gated", sha("b"));
    assert.deepEqual([done.status, done.error, done.revert_sha], ["failed", "rejected by admin API", null]);
    assert.equal(done.approval.state, "rejected");
    assert.ok(done.steps.slice(1).every((s) => s.state === "skipped"));
    assert.deepEqual(deployed(sha("b")), []);
    assert.deepEqual(target.hooks.filter((h) => h.sha === sha("a")).length, 1, "no revert to the finalized commit");
    assert.match(await messageReads(sha("b"), /^❌/), /Approval: rejected by admin API/);
    const approve = await decide(waiting.id, "approve");
    assert.deepEqual([approve.status, approve.json.error], [409, `job ${waiting.id} was already rejected by admin API`]);
  });

  test("approving a job a newer push superseded is refused; the newer one is approved and deploys", async () => {
    await deliver("push", push(GATED, sha("c"), sha("b")));
    const older = await awaiting("gated", sha("c"));
    await deliver("push", push(GATED, sha("d"), sha("c")));
    const newer = await awaiting("gated", sha("d"));
    const cancelled = await job(older.id);
    assert.deepEqual([cancelled.status, cancelled.error, cancelled.approval.state], ["cancelled", `superseded by job ${newer.id}`, "cancelled"]);
    const refused = await decide(older.id, "approve");
    assert.deepEqual([refused.status, refused.json.error], [409, `job ${older.id} was superseded by job ${newer.id}, a newer push`]);
    assert.equal((await decide(newer.id, "approve")).status, 200);
    assert.equal((await ended("gated", sha("d"))).status, "finalized");
    assert.deepEqual(deployed(sha("c")), [], "the superseded commit was never deployed");
    assert.equal(target.hooks.filter((h) => h.sha === sha("d")).length, 1);
    assert.match(await messageReads(sha("c"), /^🚫/), /Status: cancelled/);
  });

  test("decisions are guarded and answer what cannot be done", async () => {
    const { json } = await admin("GET", "/api/jobs?app=gated&limit=1");
    const id = json.jobs[0].id;
    assert.equal((await admin("POST", `/api/jobs/${id}/approve`, undefined, null)).status, 401);
    assert.equal((await admin("POST", `/api/jobs/${id}/approve`, undefined, "wrong")).status, 401);
    assert.deepEqual((await admin("GET", `/api/jobs/${id}/approve`)).status, 405);
    assert.deepEqual((await decide(999999, "approve")).status, 404);
    assert.deepEqual((await decide("nope", "reject")).status, 404);
    assert.deepEqual((await admin("POST", `/api/jobs/${id}/maybe`)).status, 404);
    // A job of an app without approval.
    assert.equal((await admin("PUT", "/api/apps/plain", { ...app("Codertocat/Plain"), approval: undefined })).status, 201);
    await deliver("push", push("Codertocat/Plain", sha("e")));
    const plain = await ended("plain", sha("e"));
    assert.equal(plain.status, "finalized", plain.error);
    assert.equal(plain.approval, undefined);
    assert.ok(plain.steps.every((s) => s.name !== "awaiting_approval"));
    const none = await decide(plain.id, "approve");
    assert.deepEqual([none.status, none.json.error], [409, `job ${plain.id} needs no approval`]);
  });

  test("the cron fails an approval that timed out", async () => {
    const waiting = await awaiting("slow", sha("5"));
    assert.equal(waiting.approval.deadline, waiting.started_at + 60_000);
    assert.ok(waiting.started_at >= slowPushedAt);
    // The cron before the deadline leaves it waiting (the positive signal: it ran).
    await worker.scheduled();
    assert.equal((await job(waiting.id)).status, "processing");
    const wait = waiting.approval.deadline - Date.now() + 200;
    if (wait > 0) await sleep(wait);
    const late = await decide(waiting.id, "approve");
    assert.deepEqual([late.status, late.json.error], [409, `job ${waiting.id}: approval timed out`]);
    await worker.scheduled();
    const done = await ended("slow", sha("5"));
    assert.deepEqual([done.status, done.error, done.approval.state], ["failed", "approval timed out", "timed_out"]);
    assert.deepEqual(deployed(sha("5")), []);
    assert.match(await messageReads(sha("5"), /^❌/), /Approval: approval timed out/);
  });
});

test("the fakes saw nothing unexpected and no secret reached the logs", () => {
  assert.deepEqual(gh.violations, []);
  assert.deepEqual(tg.violations, []);
  assert.deepEqual(target.violations, []);
  const logs = worker.logs.join("\n");
  for (const secret of [SECRET, ADMIN, BOT, ...gh.state.issued]) assert.ok(!logs.includes(secret), "a secret in the logs");
  assert.ok(!logs.includes("PRIVATE KEY"), "the App key in the logs");
});
