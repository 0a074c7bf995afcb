// Chat-ops end to end on workerd: Telegram updates (with the secret header) sent to
// /telegram as Telegram sends them, the webhook's answer executed by the Telegram
// fake as Telegram would, deploy jobs through GitHub and a deploy-hook target, and
// the buttons and commands that act on them (or are refused).
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { fakeTelegram, fakeGithub, fakeTarget } from "./fakes.mjs";
import { startWorker } from "./worker.mjs";
import { clients, fixture, sha, sleep } from "./github-kit.mjs";

const SECRET = "e2e-chatops-webhook-secret";
const TG_SECRET = "e2e_chatops_telegram_secret-1";
const ADMIN = "e2e-chatops-admin-token";
const GH_TOKEN = "ghp_e2e_chatops";
const BOT = "77:e2e-chatops-bot";
const CHAT = "-100900";
const STRANGERS = "-100999"; // a chat no route or app posts to
const ALICE = { id: 9001, username: "alice" }; // TELEGRAM_OPERATORS
const BOB = { id: 9002, username: "bob" }; // the app's own operator
const MALLORY = { id: 9666, username: "mallory" };
const PUBLIC_URL = "https://notifier.example.com";

let worker;
let gh;
let tg;
let target;
const { deliver, admin } = clients(() => worker, { secret: SECRET, token: ADMIN });

/** Posts `update` to /telegram as Telegram does; Telegram then runs the method the answer names. */
async function send(update, { secret = TG_SECRET, raw } = {}) {
  const headers = { "content-type": "application/json" };
  if (secret !== null) headers["x-telegram-bot-api-secret-token"] = secret;
  const r = await fetch(`${worker.url}/telegram`, { method: "POST", headers, body: raw ?? JSON.stringify(update) });
  const json = JSON.parse(await r.text());
  if (r.status === 200) tg.fromWebhook(json);
  return { status: r.status, json };
}

/** Presses button `label` of message `m` as `who`: the webhook's answer. */
async function press(m, who, label = undefined, data = undefined) {
  const button = tg.keyboard(m)?.flat().find((b) => label === undefined || b.text.includes(label));
  const r = await send(tg.press(m, who, data ?? button.data));
  assert.equal(r.status, 200);
  return r.json.text;
}

function push(after, before) {
  const p = fixture("push.with-new-branch.json");
  Object.assign(p, { before, after, created: false });
  p.head_commit.id = after;
  p.commits = [{ ...p.commits[0], id: after, message: `Release ${after.slice(0, 7)}` }];
  return p;
}

async function job(id) {
  return (await admin("GET", `/api/jobs/${id}`)).json.job;
}

async function until(what, check, timeoutMs = 20_000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) {
      const lines = worker.logs.filter((l) => l.includes("telegram") || l.includes("update")).slice(-15);
      throw new Error(`timed out waiting for ${what}; the Worker's last Telegram lines:\n${lines.join("\n")}`);
    }
    await sleep(100);
  }
}

async function jobOf(commit, statuses, kind = "deploy") {
  return until(`${kind} job of ${commit.slice(0, 7)} in ${statuses}`, async () => {
    const { json } = await admin("GET", "/api/jobs?app=hello&limit=50");
    const j = json.jobs.find((x) => x.sha === commit && x.kind === kind && statuses.includes(x.status));
    return j && job(j.id);
  });
}

async function deployed(commit, before) {
  await deliver("push", push(commit, before));
  const j = await jobOf(commit, ["finalized", "failed", "reverted"]);
  return j;
}

/**
 * Job `j`'s message (the first one naming its commit, of its kind: a retry's says
 * "Retry of", a rollback's is titled "Rollback"), once its keyboard is `labels`.
 */
function shown(j, labels) {
  const short = j.sha.slice(0, 7);
  const kindOf = (m) => (m.text.includes("Rollback ") ? "rollback" : m.text.includes("Retry of") ? "retry" : "deploy");
  return until(`job ${j.id}'s message with ${JSON.stringify(labels)}`, () => {
    const mine = tg.inChat(CHAT).filter((m) => m.text.includes(`<code>${short}</code>`) && kindOf(m) === j.kind);
    const m = mine[0];
    if (!m) return undefined;
    const now = (tg.keyboard(m) ?? []).flat().map((b) => b.text);
    return JSON.stringify(now) === JSON.stringify(labels) && m;
  });
}

const app = () => ({
  repository: "Codertocat/Hello-World",
  production_branch: "master",
  environment: "production",
  deploy_on: "push",
  deploy: { type: "deploy_hook", url: `${target.base}/hook` },
  health_url: `${target.base}/health`,
  operators: [BOB.id],
});

before(async () => {
  gh = await fakeGithub({ token: GH_TOKEN });
  // The chat is a forum, so a command may come from one of its topics.
  tg = await fakeTelegram({ token: BOT, chatId: CHAT, forums: [CHAT], username: "edge_e2e_bot" });
  target = await fakeTarget();
  worker = await startWorker({
    vars: {
      GITHUB_WEBHOOK_SECRET: SECRET,
      GITHUB_TOKEN: GH_TOKEN,
      GITHUB_API_BASE: gh.base,
      ADMIN_TOKEN: ADMIN,
      TELEGRAM_BOT_TOKEN: BOT,
      TELEGRAM_CHAT_ID: CHAT,
      TELEGRAM_API_BASE: tg.base,
      TELEGRAM_PACE: "off",
      TELEGRAM_WEBHOOK_SECRET: TG_SECRET,
      TELEGRAM_OPERATORS: String(ALICE.id),
      PUBLIC_URL,
      HEALTH_CHECK_INTERVAL_SECONDS: "1",
      SWEEP_AFTER_SECONDS: "2",
    },
  });
  assert.equal((await admin("PUT", "/api/apps/hello", app())).status, 201);
});

after(async () => {
  await worker?.stop();
  await gh?.close();
  await tg?.close();
  await target?.close();
});

describe("the webhook", () => {
  test("POST /api/telegram/setup points Telegram at /telegram with the secret and lists the commands", async () => {
    assert.equal((await admin("POST", "/api/telegram/setup", undefined, "wrong")).status, 401);
    const r = await admin("POST", "/api/telegram/setup");
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.deepEqual(r.json, {
      success: true,
      webhook: { ok: true, url: `${PUBLIC_URL}/telegram` },
      commands: { ok: true },
      bot: { ok: true, username: "edge_e2e_bot" },
    });
    const [webhook, commands] = tg.setupCalls;
    assert.deepEqual(webhook, {
      method: "setWebhook",
      body: { url: `${PUBLIC_URL}/telegram`, secret_token: TG_SECRET, allowed_updates: ["message", "callback_query"] },
    });
    assert.deepEqual(commands.body.commands.map((c) => c.command), ["status", "deploys", "rollback", "help"]);
    assert.equal(tg.setupCalls[2].method, "getMe");
  });

  test("a missing or wrong secret header is a 401 and nothing is processed", async () => {
    const update = tg.userMessage(CHAT, ALICE, "/help");
    for (const secret of [null, "not-the-secret", `${TG_SECRET}x`]) {
      const r = await send(update, { secret });
      assert.deepEqual([r.status, r.json], [401, { success: false, error: "missing or wrong X-Telegram-Bot-Api-Secret-Token header" }]);
    }
    // The same update with the secret is taken: it was not recorded before.
    const sent = tg.messages.length;
    assert.deepEqual(await send(update), { status: 200, json: {} });
    await until("the reply to /help", () => tg.messages.length > sent);
    assert.match(tg.messages.at(-1).text, /^<b>Commands<\/b>/);
  });

  test("bad bodies", async () => {
    assert.equal((await fetch(`${worker.url}/telegram`)).status, 405);
    const big = await send(null, { raw: `{"update_id": 1, "pad": "${"x".repeat(1024 * 1024)}"}` });
    assert.deepEqual([big.status, big.json.error], [413, "request body is larger than 1048576 bytes"]);
    const broken = await send(null, { raw: "{not json" });
    assert.equal(broken.status, 400);
    assert.match(broken.json.error, /^malformed JSON/);
    assert.deepEqual((await send(null, { raw: '{"message": {}}' })).json, { success: false, error: "missing field `update_id`" });
    // An update we do nothing with (an edit, a plain message) is answered and left.
    assert.deepEqual(await send({ update_id: 6000, edited_message: { message_id: 1 } }), { status: 200, json: {} });
    assert.deepEqual(await send(tg.userMessage(CHAT, ALICE, "just chatting")), { status: 200, json: {} });
  });
});

describe("buttons on deploy-job messages", () => {
  let first;
  let second;
  let rollback;

  test("a running job offers Cancel; the latest finalized one Roll back, once there is an earlier commit", async () => {
    first = await deployed(sha("a"), sha("0"));
    assert.equal(first.status, "finalized", first.error);
    await shown(first, []);
    second = await deployed(sha("b"), sha("a"));
    assert.equal(second.status, "finalized", second.error);
    const m = await shown(second, ["↩️ Roll back"]);
    // While it ran it offered Cancel: the first send carried it, an edit took it off.
    assert.deepEqual(m.keyboard.flat().map((b) => b.text), ["✖️ Cancel"]);
    const data = tg.keyboard(m)[0][0].data;
    assert.ok(Buffer.byteLength(data) <= 64 && !/rollback|job/.test(data), "an opaque token");
  });

  test("a press by someone who is not an operator is refused and recorded", async () => {
    const m = await shown(second, ["↩️ Roll back"]);
    assert.equal(await press(m, MALLORY), "You are not allowed to do this");
    const refused = await until("the refusal in the job's trail", async () => (await job(second.id)).actions.find((a) => a.result === "refused"));
    assert.deepEqual(
      { action: refused.action, detail: refused.detail, actor: refused.actor, user_id: refused.user_id, chat_id: refused.chat_id },
      { action: "rollback", detail: "not an operator", actor: "@mallory", user_id: MALLORY.id, chat_id: CHAT },
    );
    const { json } = await admin("GET", "/api/jobs?app=hello&limit=50");
    assert.equal(json.jobs[0].id, second.id, "nothing was started");
    assert.equal(tg.answers.at(-1).via, "webhook", "answered in the webhook's own response");
  });

  test("a double tap by an operator rolls back once, through the app's own target, and names who did it", async () => {
    const m = await shown(second, ["↩️ Roll back"]);
    const [a, b] = await Promise.all([press(m, ALICE), press(m, ALICE)]);
    assert.deepEqual([a, b].sort(), ["Rolling back…", "This was already done"]);
    rollback = await jobOf(sha("a"), ["finalized", "failed", "reverted"], "rollback");
    assert.equal(rollback.status, "finalized", rollback.error);
    assert.deepEqual([rollback.kind, rollback.source_job, rollback.requested_by], ["rollback", second.id, "@alice"]);
    assert.equal(target.hooks.at(-1).sha, sha("a"), "the older commit, deployed over the newer one");
    const { json } = await admin("GET", "/api/jobs?app=hello&limit=50");
    assert.equal(json.jobs.filter((j) => j.kind === "rollback").length, 1, "one rollback job");
    const done = (await job(second.id)).actions.filter((x) => x.result === "done");
    assert.deepEqual(done.map((x) => [x.action, x.actor, x.detail]), [["rollback", "@alice", `job ${rollback.id}`]]);
    // Its message names who rolled it back and offers nothing more.
    await until("the message to name who rolled back", () => m.current.visible.includes(`Rolled back by @alice (job ${rollback.id})`) && !tg.keyboard(m));
    const rolled = await shown(rollback, ["↩️ Roll back"]);
    assert.match(rolled.current.visible, /^✅ Rollback hello → production/);
    assert.ok(rolled.current.visible.includes(`Rolls back job ${second.id}, asked by @alice`));
  });

  test("a replayed update_id changes nothing", async () => {
    const m = await shown(rollback, ["↩️ Roll back"]);
    const update = tg.press(m, MALLORY, tg.keyboard(m)[0][0].data);
    assert.equal((await send(update)).json.text, "You are not allowed to do this");
    await until("the refusal", async () => (await job(rollback.id)).actions.length === 1);
    // Telegram sends it again (its answer got lost, say): answered the same, queued never again.
    const again = await fetch(`${worker.url}/telegram`, {
      method: "POST", headers: { "content-type": "application/json", "x-telegram-bot-api-secret-token": TG_SECRET }, body: JSON.stringify(update),
    });
    assert.equal(again.status, 200);
    assert.equal(JSON.parse(await again.text()).text, "You are not allowed to do this");
    assert.ok(await worker.waitForLog(`update ${update.update_id} was taken before`), "recognised");
    assert.equal((await job(rollback.id)).actions.length, 1, "one record");
  });

  test("a stale button says the job moved on and its message's keyboard is refreshed", async () => {
    // The first job's message never offered anything; job 2's Roll back is gone, but
    // its old keyboard's token, pressed now (from a phone that had not refreshed):
    const m = tg.inChat(CHAT).find((x) => x.keyboard && x.text.includes(`<code>${sha("b").slice(0, 7)}</code>`));
    const token = m.keyboard[0][0].data; // Cancel, from while it ran
    assert.equal(await press(m, ALICE, undefined, token), "This job has moved on");
    await until("the moved-on refusal", async () => (await job(second.id)).actions.some((x) => x.detail === "the subject had moved on"));
    assert.equal(tg.keyboard(m), undefined, "still no keyboard: nothing to offer");
    // The same token on another message, or from another chat, is no button of ours.
    const other = await shown(rollback, ["↩️ Roll back"]);
    assert.equal(await press(other, ALICE, undefined, token), "This button is no longer valid");
    const { json } = await admin("GET", "/api/jobs?app=hello&limit=50");
    assert.equal(json.jobs[0].id, rollback.id, "nothing started");
  });

  test("Cancel stops a running job after its step; Retry deploys a failed job's commit again", async () => {
    target.state.healthStatus = 503;
    await deliver("push", push(sha("c"), sha("b")));
    const running = await jobOf(sha("c"), ["processing"]);
    const m = await shown(running, ["✖️ Cancel"]);
    assert.equal(await press(m, BOB), "Cancelling…", "the app's own operator");
    const cancelled = await jobOf(sha("c"), ["cancelled"]);
    target.state.healthStatus = 200;
    assert.ok(cancelled.steps.every((s) => ["done", "failed", "skipped"].includes(s.state)), JSON.stringify(cancelled.steps));
    assert.equal(cancelled.steps.find((s) => s.name === "finalize").state, "skipped");
    assert.deepEqual(cancelled.actions.map((x) => [x.action, x.result, x.actor]), [["cancel", "done", "@bob"]]);
    await until("the message to show the cancel", () => m.current.visible.includes("Cancelled by @bob") && !tg.keyboard(m));

    target.state.failHookFor.add(sha("d"));
    await deliver("push", push(sha("d"), sha("c")));
    const failed = await jobOf(sha("d"), ["reverted", "failed"]);
    const f = await shown(failed, ["🔁 Retry"]);
    target.state.failHookFor.delete(sha("d"));
    assert.equal(await press(f, ALICE), "Retrying…");
    const retried = await until("the retry", async () => {
      const { json } = await admin("GET", "/api/jobs?app=hello&limit=50");
      const r = json.jobs.find((j) => j.kind === "retry" && ["finalized", "failed", "reverted"].includes(j.status));
      return r && job(r.id);
    });
    assert.deepEqual([retried.status, retried.sha, retried.source_job], ["finalized", sha("d"), failed.id]);
  });
});

describe("commands", () => {
  const reply = (id) => until(`the reply to message ${id}`, () => tg.inChat(CHAT).find((m) => m.replyTo === id));

  test("/status, /deploys, /help and what is unknown are answered in the same chat and topic", async () => {
    const topic = tg.addTopic(CHAT, "ops");
    const status = tg.userMessage(CHAT, BOB, "/status", topic);
    assert.deepEqual(await send(status), { status: 200, json: {} });
    const r = await reply(status.message.message_id);
    assert.equal(r.threadId, topic, "in the topic it was asked in");
    assert.match(r.visible, /^Status\n\nhello → production: \w{7} Release \w{7} \(job \d+\)$/);

    const asked = tg.userMessage(CHAT, BOB, "/deploys@edge_e2e_bot hello");
    await send(asked);
    const deploys = await reply(asked.message.message_id);
    assert.match(deploys.visible, /^Last deploys of hello/);
    assert.equal((deploys.text.match(/<a href="https:\/\/notifier\.example\.com\/jobs\/\d+">job \d+<\/a>/g) ?? []).length, 5, "the last 5, linked");

    for (const [text, answer] of [
      ["/deploys nope", "Unknown app nope. /status lists the apps."],
      ["/frobnicate", "Unknown command /frobnicate. /help lists the commands."],
      ["/rollback", "Usage: /rollback <app>"],
    ]) {
      const u = tg.userMessage(CHAT, BOB, text);
      await send(u);
      assert.equal((await reply(u.message.message_id)).visible, answer);
    }
    const help = tg.userMessage(CHAT, MALLORY, "/help");
    await send(help);
    assert.match((await reply(help.message.message_id)).visible, /\/rollback <app> — /);
  });

  test("/rollback asks first; only an operator may ask, and its button rolls back", async () => {
    const denied = tg.userMessage(CHAT, MALLORY, "/rollback hello");
    await send(denied);
    assert.equal((await reply(denied.message.message_id)).visible, "You are not allowed to do this.");

    const asked = tg.userMessage(CHAT, ALICE, "/rollback hello");
    await send(asked);
    const offer = await reply(asked.message.message_id);
    const { json } = await admin("GET", "/api/jobs?app=hello&limit=50");
    const latest = json.jobs[0];
    assert.match(offer.visible, new RegExp(`^Roll back hello in production from \\w{7} \\(job ${latest.id}\\) to \\w{7}\\?$`));
    assert.deepEqual(tg.keyboard(offer).flat().map((b) => b.text), ["↩️ Roll back"]);
    assert.equal((await admin("GET", "/api/jobs?app=hello&limit=1")).json.jobs[0].id, latest.id, "nothing yet");
    assert.equal(await press(offer, MALLORY), "You are not allowed to do this");
    assert.equal(await press(offer, ALICE), "Rolling back…");
    const rolled = await until("the rollback it asked for", async () => {
      const j = (await admin("GET", "/api/jobs?app=hello&limit=1")).json.jobs[0];
      return j.kind === "rollback" && j.source_job === latest.id && j.status === "finalized" && j;
    });
    await until("the offer to be settled", () => offer.current.visible === `Rolled back by @alice (job ${rolled.id})` && !tg.keyboard(offer));
  });

  test("nothing from a chat no route or app posts to changes anything or is answered", async () => {
    const before = tg.messages.length;
    const jobs = (await admin("GET", "/api/jobs?app=hello&limit=50")).json.jobs.length;
    const u = tg.userMessage(STRANGERS, ALICE, "/rollback hello");
    await send(u);
    await send(tg.userMessage(STRANGERS, ALICE, "/status"));
    assert.ok(await worker.waitForLog(`update ${u.update_id}: a command in chat ${STRANGERS}, which no route or app posts to: ignored`));
    assert.equal(tg.messages.length, before, "not a word");
    assert.equal((await admin("GET", "/api/jobs?app=hello&limit=50")).json.jobs.length, jobs);
  });
});

describe("approvals from chat", () => {
  // The app now waits for a person before it deploys (after the commands above).
  async function awaiting(commit) {
    const latest = (await admin("GET", "/api/jobs?app=hello&limit=1")).json.jobs[0];
    await deliver("push", push(commit, latest.sha));
    const j = await until(`job of ${commit.slice(0, 7)} awaiting approval`, async () => {
      const found = (await admin("GET", "/api/jobs?app=hello&limit=5")).json.jobs.find((x) => x.sha === commit);
      const full = found && (await job(found.id));
      return full?.approval?.state === "awaiting" && full;
    });
    return { j, m: await shown(j, ["✅ Approve", "❌ Reject"]) };
  }

  test("a job awaiting approval offers Approve / Reject; an operator's Approve deploys it, a stranger's changes nothing", async () => {
    const gated = { ...app(), approval: { required: true, timeout_minutes: 60 } };
    assert.equal((await admin("PUT", "/api/apps/hello", gated)).status, 200);
    const { j, m } = await awaiting(sha("e"));
    const token = tg.keyboard(m).flat().find((b) => b.text.includes("Approve")).data;
    assert.equal(await press(m, MALLORY, "Approve"), "You are not allowed to do this");
    assert.equal((await job(j.id)).approval.state, "awaiting", "a stranger's press decides nothing");
    assert.equal(await press(m, ALICE, "Approve"), "Approving…");
    const done = await jobOf(sha("e"), ["finalized", "failed"]);
    assert.equal(done.status, "finalized", done.error);
    assert.equal(done.approval.state, "approved");
    assert.match(done.approval.by, /alice/);
    const approve = done.actions.filter((a) => a.action === "approve");
    assert.equal(approve.filter((a) => a.result === "done").length, 1, JSON.stringify(done.actions));
    assert.match(approve.find((a) => a.result === "done").actor, /alice/);
    // The spent button again (a late double tap) acts no more.
    assert.notEqual(await press(m, ALICE, undefined, token), "Approving…");
    assert.equal((await job(j.id)).actions.filter((a) => a.action === "approve" && a.result === "done").length, 1);
  });

  test("Reject fails the job, named after the app's own operator who pressed it", async () => {
    const { m } = await awaiting(sha("f"));
    assert.equal(await press(m, BOB, "Reject"), "Rejecting…");
    const failed = await jobOf(sha("f"), ["failed"]);
    assert.equal(failed.approval.state, "rejected");
    assert.match(failed.approval.by, /bob/);
    await until("the message to lose its approval buttons", () => !(tg.keyboard(m) ?? []).flat().some((b) => b.text.includes("Approve")));
  });
});

test("the fakes saw nothing unexpected and no secret reached the logs", () => {
  assert.deepEqual(tg.violations, []);
  assert.deepEqual(gh.violations, []);
  assert.deepEqual(target.violations, []);
  assert.ok(tg.answers.every((a) => a.via === "webhook"), "every press answered in the webhook's response");
  const logs = worker.logs.join("\n");
  for (const secret of [SECRET, TG_SECRET, ADMIN, GH_TOKEN, BOT]) assert.ok(!logs.includes(secret), "a secret in the logs");
});
