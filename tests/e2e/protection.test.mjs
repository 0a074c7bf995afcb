// GitHub custom deployment protection rules end to end on the real runtime: the
// fixture built from GitHub's documented schema, signed here, posts its request's
// message; a decision becomes the review the strict GitHub fake records (with the
// token of the event's installation), and the message shows who decided.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { fakeTelegram, fakeGithub } from "./fakes.mjs";
import { startWorker } from "./worker.mjs";
import { appKeyPair, clients, d1Execute, fixture, sleep } from "./github-kit.mjs";

const SECRET = "e2e protection webhook secret";
const ADMIN = "e2e-protection-admin";
const APP_ID = "434343";
const { privateKey: APP_KEY, publicKey: APP_PUBLIC } = appKeyPair();
const BOT = "43:e2e-protection-bot";
const CHAT = "-100779";
const REPO = "octo-org/octo-repo";
const INSTALLATION = 12345678;
const TG_SECRET = "e2e-telegram-webhook-secret";
const ALICE = 4201;
const MALLORY = 4666;

let worker;
let gh;
let tg;
const { deliver, admin, settled } = clients(() => worker, { secret: SECRET, token: ADMIN });

/**
 * The fixture as GitHub would send it for run `run` (and `environment`), and the
 * GitHub fake told that the rule waits there for this App's review.
 */
function rule(run, environment = "production") {
  const p = fixture("deployment_protection_rule.requested.json");
  p.environment = environment;
  p.deployment.environment = environment;
  p.deployment_callback_url = `https://api.github.com/repos/${REPO}/actions/runs/${run}/deployment_protection_rule`;
  gh.state.awaitReview(REPO, run, environment, INSTALLATION);
  return p;
}

/** Run `run`'s request once its status is one of `statuses`. */
async function requestOf(run, statuses, timeoutMs = 20_000) {
  const until = Date.now() + timeoutMs;
  let last;
  while (Date.now() < until) {
    last = (await admin("GET", "/api/protection?limit=500")).json.requests.find((r) => r.run_id === run);
    if (last && statuses.includes(last.status)) return last;
    await sleep(100);
  }
  throw new Error(`run ${run}'s request is ${last?.status ?? "missing"}, not ${statuses}`);
}

/** Run `run`'s message in the chat, once it reads (after its edits) what `pattern` matches. */
async function messageOf(run, pattern, timeoutMs = 15_000) {
  const until = Date.now() + timeoutMs;
  const current = (m) => m.edits.at(-1)?.visible ?? m.visible;
  let found;
  while (Date.now() < until) {
    found = tg.inChat(CHAT).filter((m) => m.visible.includes(`Run: ${run} `));
    if (found.length && pattern.test(current(found[0]))) return { message: found[0], count: found.length, text: current(found[0]) };
    await sleep(50);
  }
  throw new Error(`run ${run}'s message is ${found?.length ? JSON.stringify(current(found[0])) : "missing"}, not ${pattern}`);
}

const reviewsOf = (run) => gh.state.reviews.filter((r) => r.run === run);

let nextUpdate = 9000;
/**
 * `user` (`@name`) taps `token` on `message`, as Telegram posts it to the webhook
 * with the secret header (`secret`): the status and the webhook's answer.
 */
async function tap(message, user, name, token, secret = TG_SECRET) {
  const id = nextUpdate++;
  const update = {
    update_id: id,
    callback_query: {
      id: `cb-${id}`, chat_instance: "1", data: token,
      from: { id: user, is_bot: false, first_name: name, username: name },
      message: { message_id: message.messageId, date: 1, chat: { id: Number(CHAT), type: "supergroup" } },
    },
  };
  const headers = { "content-type": "application/json" };
  if (secret) headers["x-telegram-bot-api-secret-token"] = secret;
  const r = await fetch(`${worker.url}/telegram`, { method: "POST", headers, body: JSON.stringify(update) });
  return { status: r.status, json: JSON.parse(await r.text()) };
}

/** The buttons message `m` was sent with, or shows after its last edit: [label, token]. */
const buttonsOf = (m) => {
  const markup = m.edits.length ? m.edits.at(-1).replyMarkup : m.body.reply_markup;
  return (markup?.inline_keyboard ?? []).flat().map((b) => [b.text, b.callback_data]);
};

before(async () => {
  gh = await fakeGithub({ appId: APP_ID, publicKey: APP_PUBLIC });
  tg = await fakeTelegram({ token: BOT, chatId: CHAT });
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
      SWEEP_AFTER_SECONDS: "2",
      STEP_STALE_SECONDS: "2",
      TELEGRAM_WEBHOOK_SECRET: TG_SECRET,
      TELEGRAM_OPERATORS: String(ALICE),
    },
  });
});

after(async () => {
  await worker?.stop();
  await gh?.close();
  await tg?.close();
});

describe("deployment protection rules", () => {
  test("a signed request posts its message, and a decision is the review GitHub records", async () => {
    const delivery = await deliver("deployment_protection_rule", rule(1001));
    assert.deepEqual([delivery.status, delivery.json], [202, { success: true, message: "Queued" }]);
    const { text } = await messageOf(1001, /waiting for approval until/);
    assert.match(
      text,
      /^🛡 Deployment review: octo-org\/octo-repo → production\nRepository: octo-org\/octo-repo\nCommit: 3484a3f on master\nRun: 1001 \(repository_dispatch by Codertocat\)\nStatus: ⏳ waiting for approval until /,
    );
    const pending = await requestOf(1001, ["pending"]);
    assert.equal((await settled(delivery.id)).outcome, "processed");
    assert.deepEqual(reviewsOf(1001), [], "nothing is reviewed before someone decides");

    const approved = await admin("POST", `/api/protection/${pending.id}/approve`);
    assert.equal(approved.status, 200, JSON.stringify(approved.json));
    assert.equal(approved.json.request.status, "approved");
    assert.equal(approved.json.request.decided_by, "admin API");
    const [review] = reviewsOf(1001);
    assert.deepEqual(
      { ...review, token: review.token.replace(/_\d+$/, "_n") },
      { repo: REPO, run: 1001, environment: "production", state: "approved", comment: "Approved by admin API via edge-notifier", token: `ghs_installation_${INSTALLATION}_n` },
    );
    const shown = await messageOf(1001, /Status: ✅ approved by admin API$/);
    assert.equal(shown.count, 1, "one message, edited in place");

    // Decided once: a second decision is told who decided first, and GitHub hears nothing more.
    for (const action of ["approve", "reject"]) {
      const again = await admin("POST", `/api/protection/${pending.id}/${action}`);
      assert.deepEqual([again.status, again.json], [409, { success: false, error: "already approved by admin API" }]);
    }
    assert.equal(reviewsOf(1001).length, 1);
  });

  test("a redelivery, the same body under a new id and a replay make no second request", async () => {
    const body = JSON.stringify(rule(1002));
    const id = randomUUID();
    const answers = await Promise.all([
      deliver("deployment_protection_rule", body, { id }),
      deliver("deployment_protection_rule", body),
      deliver("deployment_protection_rule", body, { id }),
    ]);
    assert.deepEqual(answers.map((a) => a.status).sort(), [200, 200, 202]);
    await requestOf(1002, ["pending"]);
    const replay = await admin("POST", `/api/deliveries/${id}/replay`);
    assert.equal(replay.status, 202);
    await settled(id);
    const requests = (await admin("GET", "/api/protection?limit=500")).json.requests.filter((r) => r.run_id === 1002);
    assert.equal(requests.length, 1);
    await messageOf(1002, /waiting for approval/);
    assert.equal(tg.inChat(CHAT).filter((m) => m.visible.includes("Run: 1002 ")).length, 1);
  });

  test("nobody deciding in time: the cron rejects it on GitHub, and a late decision is refused", async () => {
    await deliver("deployment_protection_rule", rule(1003, "staging"));
    const pending = await requestOf(1003, ["pending"]);
    // A day passes (the request was made a day earlier, and expired now).
    d1Execute(worker.persistTo, `UPDATE protection_requests SET created_at = created_at - 86400000, expires_at = expires_at - 86400000 WHERE id = ${pending.id}`);
    const late = await admin("POST", `/api/protection/${pending.id}/approve`);
    assert.deepEqual([late.status, late.json.error], [409, "this review request expired; GitHub is told it was rejected"]);
    await worker.scheduled();
    const done = await requestOf(1003, ["timed_out", "failed"]);
    assert.equal(done.status, "timed_out", done.last_error);
    assert.deepEqual(
      reviewsOf(1003).map(({ environment, state, comment }) => ({ environment, state, comment })),
      [{ environment: "staging", state: "rejected", comment: "Rejected by edge-notifier: nobody decided within 24 h" }],
    );
    await messageOf(1003, /Status: ⌛ rejected on GitHub: nobody decided within 24 h$/);
  });

  test("a GitHub outage is retried; a review GitHub refuses is final and shown", async () => {
    await deliver("deployment_protection_rule", rule(1004));
    const outage = await requestOf(1004, ["pending"]);
    gh.state.reviewAnswers.push(502);
    const first = await admin("POST", `/api/protection/${outage.id}/reject`);
    assert.deepEqual([first.status, first.json.request.status], [200, "reviewing"]);
    assert.equal((await requestOf(1004, ["rejected"])).attempts, 1);
    assert.equal(reviewsOf(1004).length, 1, "sent again once GitHub was back, and only then taken");
    await messageOf(1004, /Status: ❌ rejected by admin API$/);

    await deliver("deployment_protection_rule", rule(1005));
    const refused = await requestOf(1005, ["pending"]);
    gh.state.reviewAnswers.push(422);
    const answer = await admin("POST", `/api/protection/${refused.id}/approve`);
    assert.equal(answer.json.request.status, "failed");
    assert.equal(answer.json.request.last_error, "GitHub 422: No pending deployment requests to approve or reject");
    await messageOf(1005, /Status: ⚠️ approved by admin API, but GitHub did not take the review: GitHub 422: No pending deployment requests to approve or reject$/);
    await sleep(300);
    assert.equal(reviewsOf(1005).length, 0);
  });

  test("an operator's tap in Telegram is the review GitHub records, and the message shows who decided", async () => {
    await deliver("deployment_protection_rule", rule(1007));
    const { message } = await messageOf(1007, /waiting for approval/);
    const buttons = buttonsOf(message);
    assert.deepEqual(buttons.map(([label]) => label), ["✅ Approve", "❌ Reject"]);
    const [[, approve], [, reject]] = buttons;
    assert.ok(approve.length <= 64 && !approve.includes("1007"), "an opaque token, not the action");

    // Without the secret, or from someone who is no operator: nothing changes.
    assert.equal((await tap(message, ALICE, "alice", approve, "wrong")).status, 401);
    const refused = await tap(message, MALLORY, "mallory", approve);
    assert.deepEqual(refused.json, { method: "answerCallbackQuery", callback_query_id: refused.json.callback_query_id, text: "You are not allowed to do this" });

    const tapped = await tap(message, ALICE, "alice", approve);
    assert.deepEqual([tapped.status, tapped.json.text], [200, "Approving…"]);
    const done = await requestOf(1007, ["approved", "failed"]);
    assert.equal(done.status, "approved", done.last_error);
    assert.equal(done.decided_by, "@alice");
    assert.deepEqual(
      reviewsOf(1007).map(({ state, comment }) => ({ state, comment })),
      [{ state: "approved", comment: `Approved in Telegram by @alice (Telegram user ${ALICE}) via edge-notifier` }],
    );
    const shown = await messageOf(1007, /Status: ✅ approved by @alice$/);
    assert.deepEqual(buttonsOf(shown.message), [], "decided: the buttons are gone");

    // A double tap, and the other button: answered, and nothing more reaches GitHub.
    assert.equal((await tap(message, ALICE, "alice", approve)).json.text, "This was already done");
    assert.equal((await tap(message, ALICE, "alice", reject)).json.text, "This review has been decided");
    await sleep(500);
    assert.equal(reviewsOf(1007).length, 1);
    const { json } = await admin("GET", `/api/protection/${done.id}`);
    assert.deepEqual(
      json.actions.map(({ action, result, actor }) => [action, result, actor]),
      [["approve", "refused", "@mallory"], ["approve", "done", "@alice"], ["reject", "refused", "@alice"]],
    );
  });

  test("a payload that names another repository's run is refused; the admin API checks its callers", async () => {
    const p = rule(1006);
    p.deployment_callback_url = "https://api.github.com/repos/someone/else/actions/runs/1006/deployment_protection_rule";
    const bad = await deliver("deployment_protection_rule", p);
    assert.equal(bad.status, 400);
    assert.match(bad.json.error, /^deployment_protection_rule payload: deployment_callback_url is not this repository's /);
    gh.state.pendingReviews.delete(`${REPO}:1006:production`);
    assert.equal((await admin("POST", "/api/protection/999999/approve")).status, 404);
    assert.equal((await admin("GET", "/api/protection/nope")).status, 404);
    assert.equal((await admin("GET", "/api/protection/1/approve")).status, 405);
    assert.equal((await admin("POST", "/api/protection/1/maybe")).status, 404);
    assert.equal((await admin("POST", "/api/protection/1/approve", undefined, "wrong")).status, 401);
  });
});

test("the fakes saw nothing unexpected", () => {
  assert.deepEqual(gh.violations, []);
  assert.deepEqual(tg.violations, []);
  assert.deepEqual([...gh.state.pendingReviews.keys()].sort(), [`${REPO}:1002:production`], "every other rule was reviewed");
});
