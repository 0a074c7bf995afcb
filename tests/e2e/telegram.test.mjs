// Telegram delivery for a busy team, end to end on workerd: routes in D1 through the
// admin API, several destinations, forum topics and their fallback, Telegram's pace
// (a fake that enforces it and answers 429 beyond it), digests for bursts, and
// templates checked when saved.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { fakeTelegram } from "./fakes.mjs";
import { startWorker } from "./worker.mjs";

const TOKEN = "e2e-telegram-notify-token";
const ADMIN = "e2e-telegram-admin-token";
const BOT = "555:e2e-telegram-bot";
const DEFAULT_CHAT = "-100100"; // TELEGRAM_CHAT_ID: the default route
const API_CHAT = "-100201";
const STAGING_CHAT = "-100202";
const FAILURES_CHAT = "-100203";
const OPS_CHAT = "-100204";
const FORUM = "-100300";
const PLAIN_GROUP = "-100301";
const STORMY = "-100401";
const CALM = "-100402";
const TEMPLATED = "-100501";

let tg;
let worker;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function call(path, { method = "GET", token = ADMIN, body } = {}) {
  const r = await fetch(`${worker.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* asserted by callers */ }
  return { status: r.status, json, text };
}

const notify = (fields) =>
  call("/notify", { method: "POST", token: TOKEN, body: { deployment: { type: "worker", isCI: true, environment: "production", ...fields } } });

const putRoute = (name, route) => call(`/api/routes/${name}`, { method: "PUT", body: route });

/** The delivery log's entry of deployment `id` (of a Worker project), once it is final. */
async function settled(project, id, timeoutMs = 30_000) {
  const until = Date.now() + timeoutMs;
  let entry;
  while (Date.now() < until) {
    const r = await call("/api/deliveries?limit=500");
    assert.equal(r.status, 200, r.text);
    entry = r.json.deliveries.find((d) => d.source === "notify" && d.id === `worker:${project}:${id}`);
    if (entry && !["pending", "sending", "retrying"].includes(entry.outcome)) return entry;
    await sleep(200);
  }
  throw new Error(`${project}:${id} not final within ${timeoutMs} ms: ${JSON.stringify(entry)}`);
}

before(async () => {
  tg = await fakeTelegram({
    token: BOT,
    chats: [DEFAULT_CHAT, API_CHAT, STAGING_CHAT, FAILURES_CHAT, OPS_CHAT, FORUM, PLAIN_GROUP, STORMY, CALM, TEMPLATED],
    forums: [FORUM],
    pace: { perSecond: 1, perMinute: 20 },
  });
  worker = await startWorker({
    vars: {
      DEPLOY_NOTIFY_TOKEN: TOKEN,
      ADMIN_TOKEN: ADMIN,
      TELEGRAM_BOT_TOKEN: BOT,
      TELEGRAM_CHAT_ID: DEFAULT_CHAT,
      TELEGRAM_API_BASE: tg.base,
    },
  });
});

after(async () => {
  await worker?.stop();
  await tg?.close();
});

describe("routes", () => {
  test("route by project, environment and outcome; the default route takes the rest", async () => {
    assert.equal((await putRoute("api-prod", {
      position: 10, match: { project: "api-*", environment: "production" }, destinations: [{ chat_id: API_CHAT }],
    })).status, 201);
    assert.equal((await putRoute("staging", {
      position: 20, match: { environment: "stag*" }, destinations: [{ chat_id: STAGING_CHAT }],
    })).status, 201);
    // A deployment reported to /notify went out: it is a success, never a failure.
    assert.equal((await putRoute("failures", {
      position: 5, match: { outcome: ["failure"] }, destinations: [{ chat_id: FAILURES_CHAT }],
    })).status, 201);
    const listed = await call("/api/routes");
    assert.deepEqual(listed.json.routes.map((r) => r.name), ["failures", "api-prod", "staging"]);

    assert.equal((await notify({ projectName: "api-core", deploymentId: "r-1" })).status, 202);
    assert.equal((await notify({ projectName: "api-core", deploymentId: "r-2", environment: "staging" })).status, 202);
    assert.equal((await notify({ projectName: "web", deploymentId: "r-3" })).status, 202);
    const [a, b, c] = await Promise.all([settled("api-core", "r-1"), settled("api-core", "r-2"), settled("web", "r-3")]);
    assert.deepEqual(a.destinations.map((d) => [d.route, d.chat_id, d.status]), [["api-prod", API_CHAT, "sent"]]);
    assert.deepEqual(b.destinations.map((d) => [d.route, d.chat_id, d.status]), [["staging", STAGING_CHAT, "sent"]]);
    assert.deepEqual(c.destinations.map((d) => [d.route, d.chat_id, d.status]), [["default", DEFAULT_CHAT, "sent"]]);
    assert.equal(tg.inChat(API_CHAT).length, 1);
    assert.ok(tg.inChat(API_CHAT)[0].visible.includes("Deployment ID: r-1"));
    assert.equal(tg.inChat(STAGING_CHAT).length, 1);
    assert.equal(tg.inChat(FAILURES_CHAT).length, 0, "no failure was reported");
    for (const name of ["api-prod", "staging", "failures"]) {
      assert.equal((await call(`/api/routes/${name}`, { method: "DELETE" })).status, 200);
    }
    assert.equal((await call("/api/routes/staging", { method: "DELETE" })).status, 404);
  });

  test("two destinations: each gets the message exactly once, silently where asked", async () => {
    const thread = tg.addTopic(FORUM, "ops");
    assert.equal((await putRoute("two", {
      match: { project: "twice" },
      destinations: [{ chat_id: OPS_CHAT, silent: true }, { chat_id: FORUM, message_thread_id: thread }],
    })).status, 201);
    assert.equal((await notify({ projectName: "twice", deploymentId: "t-1" })).status, 202);
    // A repeat changes nothing.
    assert.equal((await notify({ projectName: "twice", deploymentId: "t-1" })).status, 200);
    const entry = await settled("twice", "t-1");
    assert.equal(entry.outcome, "sent");
    assert.deepEqual(entry.destinations.map((d) => [d.chat_id, d.status]), [[OPS_CHAT, "sent"], [FORUM, "sent"]]);
    assert.equal(tg.inChat(OPS_CHAT).length, 1);
    assert.equal(tg.inChat(OPS_CHAT)[0].disableNotification, true);
    assert.equal(tg.inChat(FORUM, thread).length, 1);
    assert.equal(tg.about("twice").length, 2, "two sends in all");
    await call("/api/routes/two", { method: "DELETE" });
  });

  test("topics: one per project in a forum; a chat that is not a forum, or a topic that is gone, gets the message itself", async () => {
    assert.equal((await putRoute("topics", {
      match: { project: "topic-*" },
      destinations: [{ chat_id: FORUM, topic: "auto" }, { chat_id: PLAIN_GROUP, topic: "auto" }],
    })).status, 201);
    assert.equal((await notify({ projectName: "topic-a", deploymentId: "1" })).status, 202);
    await settled("topic-a", "1");
    assert.equal((await notify({ projectName: "topic-a", deploymentId: "2" })).status, 202);
    await settled("topic-a", "2");
    const made = tg.topics(FORUM).filter((t) => t.name === "topic-a");
    assert.equal(made.length, 1, "one topic for the project");
    assert.equal(tg.inChat(FORUM, made[0].threadId).length, 2);
    assert.equal(tg.inChat(PLAIN_GROUP, null).length, 2, "the group that is not a forum gets both in the chat");

    // The topic is deleted: the next message goes to the forum itself, and says so in the log.
    tg.deleteTopic(FORUM, made[0].threadId);
    assert.equal((await notify({ projectName: "topic-a", deploymentId: "3" })).status, 202);
    const entry = await settled("topic-a", "3");
    assert.equal(entry.outcome, "sent");
    assert.ok(tg.inChat(FORUM, null).some((m) => m.visible.includes("Deployment ID: 3")));
    assert.ok(await worker.waitForLog(`Telegram refused topic ${made[0].threadId}; sent to the chat itself`));
    await call("/api/routes/topics", { method: "DELETE" });
  });

  test("a route that names an unknown field, an invalid glob or a malformed chat id is a 400 naming it", async () => {
    const bad = async (route, error) => {
      const r = await putRoute("bad", route);
      assert.equal(r.status, 400, r.text);
      assert.deepEqual(r.json, { success: false, error });
    };
    await bad({ match: { projekt: "x" }, destinations: [{ chat_id: API_CHAT }] }, "match.projekt: unknown field `projekt`, expected one of `source`, `project`, `environment`, `branch`, `outcome`");
    await bad({ match: { project: "api-[" }, destinations: [{ chat_id: API_CHAT }] }, "match.project: invalid glob: unclosed [");
    await bad({ destinations: [{ chat_id: "chat-one" }] }, "destinations[0].chat_id: must be a number or @channel name");
    assert.equal((await call("/api/routes/bad")).status, 404, "nothing was saved");
  });
});

describe("templates", () => {
  test("a template is checked when saved, and its message escapes every value", async () => {
    const bad = async (template, error) => {
      const r = await putRoute("templated", { match: { project: "tpl" }, destinations: [{ chat_id: TEMPLATED, template }] });
      assert.equal(r.status, 400, r.text);
      assert.equal(r.json.error, `destinations[0].template: ${error}`);
    };
    await bad("<b>{{projet}}</b>", "unknown field {{projet}}");
    await bad("<div>{{project}}</div>", "tag <div> is not allowed by Telegram");
    await bad("<b>{{project}}", "unclosed tag <b>");
    const ok = await putRoute("templated", {
      match: { project: "tpl*" },
      destinations: [{ chat_id: TEMPLATED, template: "<b>{{project}}</b> is live on {{environment}}{{#branch}} from <code>{{branch}}</code>{{/branch}}" }],
    });
    assert.equal(ok.status, 201, ok.text);
    assert.equal((await notify({ projectName: "tpl<script>alert(1)</script>", deploymentId: "1", branch: "a&b" })).status, 202);
    await settled("tpl<script>alert(1)</script>", "1");
    const [m] = tg.inChat(TEMPLATED);
    assert.equal(m.text, "<b>tpl&lt;script&gt;alert(1)&lt;/script&gt;</b> is live on production from <code>a&amp;b</code>");
    await call("/api/routes/templated", { method: "DELETE" });
  });
});

describe("pace", () => {
  test("a burst of 60 into one group: all delivered, none failed, in digests, under the pace", async () => {
    const ids = Array.from({ length: 60 }, (_, i) => `burst-${i}`);
    const posted = await Promise.all(ids.map((id, i) => notify({ projectName: `burst-app-${i % 6}`, deploymentId: id })));
    assert.ok(posted.every((r) => r.status === 202), posted.map((r) => r.status).join(","));
    const entries = await Promise.all(ids.map((id, i) => settled(`burst-app-${i % 6}`, id, 150_000)));
    assert.deepEqual(entries.filter((e) => e.outcome !== "sent").map((e) => e.id), [], "none failed");
    const messages = tg.inChat(DEFAULT_CHAT).filter((m) => ids.some((id) => m.text.includes(id) || m.edits.some((e) => e.text.includes(id))));
    assert.ok(messages.length < 20, `${messages.length} messages for 60 notifications`);
    for (const id of ids) {
      assert.ok(tg.shown(id).length >= 1, `${id} is in a message`);
    }
    const digested = entries.flatMap((e) => e.destinations).filter((d) => /^sent in digest message \d+$/.test(d.detail ?? ""));
    assert.ok(digested.length > 30, `${digested.length} in digests`);
    assert.deepEqual(tg.paceViolations(), []);
    assert.equal(tg.stats(DEFAULT_CHAT).refused429, 0, "the pace kept Telegram from refusing any");
  });

  test("a 429 storm on one chat while another chat flows freely", async () => {
    assert.equal((await putRoute("stormy", { match: { project: "stormy" }, destinations: [{ chat_id: STORMY }] })).status, 201);
    assert.equal((await putRoute("calm", { match: { project: "calm" }, destinations: [{ chat_id: CALM }] })).status, 201);
    const storm = { ok: false, error_code: 429, description: "Too Many Requests: retry after 3", parameters: { retry_after: 3 } };
    tg.script("stormy", [{ status: 429, body: storm }, { status: 429, body: storm }, { status: 429, body: storm }]);
    const started = Date.now();
    assert.equal((await notify({ projectName: "stormy", deploymentId: "s-1" })).status, 202);
    for (let i = 0; i < 3; i++) {
      assert.equal((await notify({ projectName: "calm", deploymentId: `c-${i}` })).status, 202);
    }
    const calm = await Promise.all([0, 1, 2].map((i) => settled("calm", `c-${i}`)));
    assert.ok(calm.every((e) => e.outcome === "sent"));
    const stormy = await settled("stormy", "s-1", 60_000);
    assert.equal(stormy.outcome, "sent");
    assert.equal(stormy.destinations[0].attempts, 0, "a 429 is not a failed attempt");
    const sentAt = tg.inChat(STORMY)[0].at;
    assert.ok(sentAt - started >= 9_000, `waited out three retry_after of 3 s: ${sentAt - started} ms`);
    assert.ok(tg.inChat(CALM).every((m) => m.at < sentAt), "the calm chat did not wait for the stormy one");
    assert.equal(tg.about("stormy").length, 4);
  });
});

test("the fake saw nothing unexpected and no secret reached the logs", () => {
  assert.deepEqual(tg.violations, []);
  const logs = worker.logs.join("\n");
  for (const secret of [BOT, TOKEN, ADMIN]) assert.ok(!logs.includes(secret), `${secret} in the logs`);
});
