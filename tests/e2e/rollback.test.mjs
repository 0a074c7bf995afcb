// Rolling a Worker back from Telegram, end to end on workerd: deployments announced
// by the cron poll and by /notify carry a Roll back button (CLOUDFLARE_ROLLBACK=on);
// an operator's press, sent to /telegram as Telegram sends it (secret header), goes
// through the chat-ops dispatcher to the Cloudflare API fake, and the message says
// what came of it. The fakes are strict: anything unexpected fails the suite.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { fakeTelegram, fakeCloudflare } from "./fakes.mjs";
import { startWorker } from "./worker.mjs";

const TOKEN = "e2e-rollback-notify-token-0123456789";
const BOT = "123456:e2e-rollback-bot";
const CHAT = "-1001234567890";
const CF_TOKEN = "e2e-rollback-cf-token";
const ACCOUNT = "acc-rollback";
const SECRET = "e2e-webhook-secret_0123";
const ALICE = 4242;
const MALLORY = 6666;
const V_OLD = "0a1b2c3d-0000-4000-8000-000000000001";
const V_NEW = "18f97339-c287-4872-9bdd-e2135c07ec12";

let tg;
let cf;
let worker;
let updates = 7000;
const minutesAgo = (m) => new Date(Date.now() - m * 60_000).toISOString();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A Worker's deployments, newest first: the live one `minutes` ago, and one before. */
const deployments = (live, minutes) => [
  { id: live, created_on: minutesAgo(minutes), source: "wrangler", strategy: "percentage", author_email: "dev@example.com",
    annotations: { "workers/triggered_by": "deployment", "workers/message": "Add JWT authentication" },
    versions: [{ version_id: V_NEW, percentage: 100 }] },
  { id: `${live}-before`, created_on: minutesAgo(24 * 60), source: "wrangler", strategy: "percentage",
    annotations: { "workers/triggered_by": "deployment" }, versions: [{ version_id: V_OLD, percentage: 100 }] },
];

async function notify(fields) {
  const r = await fetch(`${worker.url}/notify`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify({ deployment: { type: "worker", isCI: true, environment: "production", ...fields } }),
  });
  assert.equal(r.status, 202, await r.text());
}

/** The Roll back button of the message about `s`: { message, token }. */
async function button(s) {
  const [message] = await tg.waitFor(s);
  const keyboard = message.body.reply_markup?.inline_keyboard;
  assert.ok(keyboard, `the message about ${s} has no keyboard`);
  assert.equal(keyboard[0][0].text, "↩️ Roll back");
  return { message, token: keyboard[0][0].callback_data };
}

/** `user` presses `token` on `message`, as Telegram delivers it: the webhook's answer. */
async function press(message, token, { user = ALICE, username = "alice" } = {}) {
  const update = {
    update_id: ++updates,
    callback_query: {
      id: `cb-${updates}`, chat_instance: "1", data: token,
      from: { id: user, is_bot: false, first_name: username, username },
      message: { message_id: message.messageId, date: Math.floor(message.at / 1000), chat: { id: Number(message.chatId), type: "supergroup" }, text: message.visible },
    },
  };
  const r = await fetch(`${worker.url}/telegram`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-telegram-bot-api-secret-token": SECRET },
    body: JSON.stringify(update),
  });
  assert.equal(r.status, 200);
  return r.json();
}

/** Waits until `message` has been edited to show `s`; answers that edit. */
async function editedTo(message, s, ms = 15_000) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const edit = message.edits.find((e) => e.text.includes(s));
    if (edit) return edit;
    await sleep(50);
  }
  throw new Error(`message ${message.messageId} was not edited to show ${s}: ${JSON.stringify(message.edits.map((e) => e.text))}`);
}

before(async () => {
  tg = await fakeTelegram({ token: BOT, chatId: CHAT });
  cf = await fakeCloudflare({ token: CF_TOKEN, accountId: ACCOUNT });
  worker = await startWorker({
    vars: {
      TELEGRAM_PACE: "off",
      DEPLOY_NOTIFY_TOKEN: TOKEN,
      TELEGRAM_BOT_TOKEN: BOT,
      TELEGRAM_CHAT_ID: CHAT,
      TELEGRAM_API_BASE: tg.base,
      TELEGRAM_WEBHOOK_SECRET: SECRET,
      TELEGRAM_OPERATORS: String(ALICE),
      CLOUDFLARE_API_TOKEN: CF_TOKEN,
      CLOUDFLARE_ACCOUNT_ID: ACCOUNT,
      CLOUDFLARE_API_BASE: cf.base,
      CLOUDFLARE_ROLLBACK: "on",
      WATCH_WORKERS: "svc-polled",
      POLL_LOOKBACK_MINUTES: "60",
    },
  });
});

after(async () => {
  await worker?.stop();
  await tg?.close();
  await cf?.close();
});

describe("the Roll back button of a Worker's notification", () => {
  test("a polled deployment's press rolls the Worker back to the version before and edits the message", async () => {
    cf.workers.set("svc-polled", deployments("dep-live", 2));
    await worker.scheduled();
    const { message, token } = await button("svc-polled");
    assert.match(message.visible, /via poll/);

    const answer = await press(message, token);
    assert.deepEqual(answer, { method: "answerCallbackQuery", callback_query_id: `cb-${updates}`, text: "Rolling back…" });
    const edit = await editedTo(message, "↩️ Rolled back by @alice to version 1 (0a1b2c3d)");
    assert.equal(edit.replyMarkup, undefined, "the button is gone");
    assert.ok(edit.visible.startsWith(message.visible), "the announcement stays above the outcome");

    const [rollback] = cf.rollbacks;
    assert.deepEqual(cf.rollbacks.length, 1);
    assert.equal(rollback.script, "svc-polled");
    assert.deepEqual(rollback.body, {
      strategy: "percentage",
      versions: [{ version_id: V_OLD, percentage: 100 }],
      annotations: { "workers/message": "rollback by @alice via edge-notifier" },
    });
    assert.equal(rollback.answered, 200);
    const reads = cf.requests.filter((r) => r.includes("/workers/scripts/svc-polled/"));
    assert.deepEqual(reads.slice(-3), [
      `GET /client/v4/accounts/${ACCOUNT}/workers/scripts/svc-polled/deployments`,
      `GET /client/v4/accounts/${ACCOUNT}/workers/scripts/svc-polled/versions/${V_OLD}`,
      `POST /client/v4/accounts/${ACCOUNT}/workers/scripts/svc-polled/deployments`,
    ]);
    assert.equal(cf.workers.get("svc-polled")[0].versions[0].version_id, V_OLD, "the old version is live");

    // A second tap on the same button: answered, and nothing more is done.
    assert.equal((await press(message, token)).text, "This was already done");
  });

  test("a rollback Cloudflare refuses with 10220 is shown as Cloudflare states it and never retried", async () => {
    cf.workers.set("api-secret", deployments("dep-a", 1));
    cf.refuse("api-secret");
    await notify({ projectName: "api-secret", deploymentId: "build-77", branch: "main", commitMessage: "Rotate the API key" });
    const { message, token } = await button("api-secret");
    assert.equal((await press(message, token)).text, "Rolling back…");
    const edit = await editedTo(message, "⛔ Rollback by @alice refused by Cloudflare: A secret has changed since this version was active.");
    assert.match(edit.visible, /The following secrets have changed: API_KEY \(code 10220\)$/);
    assert.equal(edit.replyMarkup, undefined);

    // The positive signal before the absence check: another Worker's press goes all
    // the way through after it; by then a retry of the refused one would have shown.
    cf.workers.set("api-marker", deployments("dep-m", 1));
    await notify({ projectName: "api-marker", deploymentId: "build-78" });
    const marker = await button("api-marker");
    await press(marker.message, marker.token);
    await editedTo(marker.message, "↩️ Rolled back by @alice");
    const refused = cf.rollbacks.filter((r) => r.script === "api-secret");
    assert.equal(refused.length, 1, "the refused rollback was sent once");
    assert.equal(refused[0].answered, 400);
    assert.equal(refused[0].query, "", "never forced");
    assert.equal(cf.workers.get("api-secret")[0].id, "dep-a", "nothing changed");
  });

  test("a Pages project goes back to its previous production deployment", async () => {
    const pages = (id, minutes, environment = "production") => ({
      id, short_id: id.slice(0, 8), project_name: "site", environment, url: `https://${id.slice(0, 8)}.site.pages.dev`,
      created_on: minutesAgo(minutes), latest_stage: { name: "deploy", status: "success" }, is_skipped: false,
      deployment_trigger: { type: "github:push", metadata: { branch: "main", commit_hash: "abc1234", commit_message: "Docs" } },
    });
    cf.pages.set("site", [pages("cccccccc-3", 1), pages("bbbbbbbb-2", 30, "preview"), pages("aaaaaaaa-1", 60)]);
    await notify({ type: "pages", projectName: "site", deploymentId: "cccccccc", url: "https://cccccccc.site.pages.dev" });
    const { message, token } = await button("site");
    await press(message, token);
    await editedTo(message, "↩️ Rolled back by @alice to deployment aaaaaaaa");
    assert.deepEqual(cf.rollbacks.filter((r) => r.project === "site").map((r) => [r.deployment, r.answered]), [["aaaaaaaa-1", 200]]);
    assert.equal(cf.pagesLive.get("site"), "aaaaaaaa-1");
  });

  test("a Pages preview has no button", async () => {
    await notify({ type: "pages", projectName: "site-preview", deploymentId: "dddddddd", environment: "preview" });
    const [message] = await tg.waitFor("site-preview");
    assert.equal(message.body.reply_markup, undefined);
  });

  test("someone who is not an operator changes nothing", async () => {
    cf.workers.set("api-guarded", deployments("dep-g", 1));
    await notify({ projectName: "api-guarded", deploymentId: "build-79" });
    const { message, token } = await button("api-guarded");
    const before = cf.requests.length;
    const answer = await press(message, token, { user: MALLORY, username: "mallory" });
    assert.equal(answer.text, "You are not allowed to do this");
    // The same button still works for an operator: the refusal used nothing.
    assert.equal((await press(message, token)).text, "Rolling back…");
    await editedTo(message, "↩️ Rolled back by @alice");
    assert.deepEqual(cf.rollbacks.filter((r) => r.script === "api-guarded").length, 1);
    assert.ok(cf.requests.slice(before).every((r) => r.includes("api-guarded")));
  });
});

test("the fakes saw nothing unexpected and no secret reached the logs", () => {
  assert.deepEqual(tg.violations, []);
  assert.deepEqual(cf.violations, []);
  const logs = worker.logs.join("\n");
  for (const secret of [TOKEN, BOT, CF_TOKEN, SECRET]) assert.ok(!logs.includes(secret), "a secret in the logs");
  assert.ok(logs.includes("rollback done of notification:"), "the press is logged");
});
