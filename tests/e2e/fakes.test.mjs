// The fakes themselves: whatever goes wrong inside one is a recorded violation,
// which fails the suite that used it, never only a 500 the Worker retries.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { fakeTelegram, fakeCloudflare, fakeGithub, fakeTarget, fakeFly, parseTelegramHtml, SECRET_CHANGED } from "./fakes.mjs";

async function send(base, method, path, { body, headers = {} } = {}) {
  const r = await fetch(`${base}${path}`, { method, headers, body });
  return { status: r.status, text: await r.text() };
}

const jsonHeaders = (token) => ({ "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) });

describe("a request a fake cannot read is a violation", () => {
  test("Telegram: an edit whose body is not JSON", async () => {
    const tg = await fakeTelegram({ token: "1:t", chatId: "-1" });
    try {
      const r = await send(tg.base, "POST", "/bot1:t/editMessageText", { body: "{not json", headers: jsonHeaders() });
      assert.equal(r.status, 500);
      assert.deepEqual(tg.violations, ["fake crashed on POST /bot<token>/editMessageText: editMessageText: body is not JSON"]);
    } finally {
      await tg.close();
    }
  });

  test("GitHub: a deployment whose body is not JSON, and an App token that is not one", async () => {
    const gh = await fakeGithub({ token: "ghp_t", appId: "1", publicKey: "unused" });
    try {
      const headers = { ...jsonHeaders("ghp_t"), accept: "application/vnd.github+json", "x-github-api-version": "2022-11-28", "user-agent": "t" };
      assert.equal((await send(gh.base, "POST", "/repos/o/r/deployments", { body: "nope", headers })).status, 500);
      const jwt = { ...headers, authorization: "Bearer a.b.c" };
      assert.equal((await send(gh.base, "POST", "/app/installations/1/access_tokens", { body: "{}", headers: jwt })).status, 500);
      assert.ok(gh.violations.includes("/repos/o/r/deployments: body is not JSON"), gh.violations.join("\n"));
      assert.ok(gh.violations.some((v) => v.startsWith("fake crashed on POST /repos/o/r/deployments: ")));
      assert.match(gh.violations.at(-1), /^fake crashed on POST \/app\/installations\/1\/access_tokens: /);
    } finally {
      await gh.close();
    }
  });

  test("GitHub: a protection rule's review is taken once, from the installation that asked for it", async () => {
    const gh = await fakeGithub({ token: "ghp_t", appId: "1", publicKey: "unused" });
    try {
      const headers = (t) => ({ ...jsonHeaders(t), accept: "application/vnd.github+json", "x-github-api-version": "2022-11-28", "user-agent": "t" });
      const review = (t, body) => send(gh.base, "POST", "/repos/o/r/actions/runs/7/deployment_protection_rule", { body: JSON.stringify(body), headers: headers(t) });
      gh.state.awaitReview("o/r", 7, "production", 5);
      gh.state.issued.add("ghs_installation_5_1");
      gh.state.issued.add("ghs_installation_6_1");
      const body = { environment_name: "production", state: "approved", comment: "Approved by @a" };
      assert.equal((await review("ghp_t", body)).status, 403);
      assert.equal((await review("ghs_installation_6_1", body)).status, 403);
      assert.equal((await review("ghs_installation_5_1", body)).status, 204);
      assert.equal((await review("ghs_installation_5_1", body)).status, 422);
      assert.equal((await review("ghs_installation_5_1", { ...body, state: "maybe" })).status, 422);
      assert.deepEqual(gh.state.reviews, [{ repo: "o/r", run: 7, environment: "production", state: "approved", comment: "Approved by @a", token: "ghs_installation_5_1" }]);
      assert.deepEqual(gh.violations, [
        "review of o/r:7:production with the personal token",
        "review of o/r:7:production with a token not of installation 5",
        "review of o/r:7:production, which waits for none",
        `review of run 7 with ${JSON.stringify({ ...body, state: "maybe" })}`,
      ]);
    } finally {
      await gh.close();
    }
  });

  test("Fly: a machine update whose body is not JSON", async () => {
    const fly = await fakeFly({ token: "fly" });
    try {
      const r = await send(fly.base, "POST", "/v1/apps/a/machines/m-1", { body: "<xml/>", headers: jsonHeaders("fly") });
      assert.equal(r.status, 500);
      assert.deepEqual(fly.violations, ["fake crashed on POST /v1/apps/a/machines/m-1: POST /v1/apps/a/machines/m-1: body is not JSON"]);
    } finally {
      await fly.close();
    }
  });

  test("Cloudflare: a request that is not the API's", async () => {
    const cf = await fakeCloudflare({ token: "cf", accountId: "acc" });
    try {
      assert.equal((await send(cf.base.replace("/client/v4", ""), "GET", "/elsewhere", { headers: jsonHeaders("cf") })).status, 404);
      assert.deepEqual(cf.violations, ["unexpected GET /elsewhere"]);
    } finally {
      await cf.close();
    }
  });
});

describe("the deploy target records what it did not expect", () => {
  test("a hook body that is not JSON, one without a commit, and an unknown path", async () => {
    const target = await fakeTarget();
    try {
      assert.equal((await send(target.base, "POST", "/hook", { body: "sha=abc", headers: jsonHeaders() })).status, 500);
      assert.equal((await send(target.base, "POST", "/hook", { body: "{}", headers: { "content-type": "text/plain" } })).status, 200);
      assert.equal((await send(target.base, "GET", "/somewhere")).status, 404);
      assert.deepEqual(target.violations, [
        "fake crashed on POST /hook: deploy hook: body is not JSON",
        "deploy hook with content-type text/plain",
        "deploy hook for app undefined at undefined",
        "unexpected GET /somewhere",
      ]);
    } finally {
      await target.close();
    }
  });

  test("the hook the Worker sends is no violation", async () => {
    const target = await fakeTarget();
    try {
      const body = JSON.stringify({ app: "hello", sha: "a".repeat(40), environment: "production" });
      assert.equal((await send(target.base, "POST", "/hook", { body, headers: jsonHeaders() })).status, 200);
      assert.equal((await send(target.base, "GET", "/health")).status, 200);
      assert.deepEqual(target.violations, []);
      assert.deepEqual(target.hooks.map((h) => h.sha), ["a".repeat(40)]);
    } finally {
      await target.close();
    }
  });
});

test("Telegram's HTML rules refuse what Telegram refuses", () => {
  assert.equal(parseTelegramHtml("<b>a &amp; b</b>"), "a & b");
  assert.throws(() => parseTelegramHtml("a & b"), /unsupported entity/);
  assert.throws(() => parseTelegramHtml("<b>open"), /can't find end tag/);
});

describe("the Telegram fake keeps Telegram's pace, topics and edits", () => {
  const BOT = "7:pace";
  const GROUP = "-100555";
  const OTHER = "-100556";
  const PRIVATE = "4242";
  const FORUM = "-100777";
  const call = async (tg, method, body) => {
    const r = await fetch(`${tg.base}/bot${BOT}/${method}`, { method: "POST", headers: jsonHeaders(), body: JSON.stringify(body) });
    return { status: r.status, json: await r.json() };
  };
  const say = (tg, chat, text, extra = {}) => call(tg, "sendMessage", { chat_id: chat, text, parse_mode: "HTML", ...extra });
  const tooMany = (n) => ({ ok: false, error_code: 429, description: `Too Many Requests: retry after ${n}`, parameters: { retry_after: n } });
  const fake = async (options, body) => {
    const tg = await fakeTelegram({ token: BOT, chats: [GROUP, OTHER, PRIVATE], ...options });
    try {
      await body(tg);
      assert.deepEqual(tg.violations, []);
      assert.deepEqual(tg.paceViolations(), []);
    } finally {
      await tg.close();
    }
  };

  test("a second message within the second is refused with retry_after, and the chat takes it once waited for", () =>
    fake({ pace: { perSecond: 1, perMinute: 20 } }, async (tg) => {
      assert.equal((await say(tg, GROUP, "first")).status, 200);
      const refused = await say(tg, GROUP, "second");
      assert.equal(refused.status, 429);
      assert.deepEqual(refused.json, tooMany(1));
      await new Promise((r) => setTimeout(r, refused.json.parameters.retry_after * 1000));
      assert.equal((await say(tg, GROUP, "second")).status, 200);
      assert.deepEqual(tg.inChat(GROUP).map((m) => m.text), ["first", "second"]);
      assert.deepEqual(tg.about("second").map((m) => m.answered), [429, 200]);
      assert.deepEqual(tg.stats(GROUP), { accepted: 2, sent: 2, edited: 0, refused429: 1, notModified: 0, threadNotFound: 0 });
    }));

  test("a group's message over the minute's limit waits for the minute; a private chat has no minute limit", () =>
    fake({ pace: { perSecond: 100, perMinute: 3 } }, async (tg) => {
      for (const n of [1, 2, 3]) assert.equal((await say(tg, GROUP, `g${n}`)).status, 200);
      const refused = await say(tg, GROUP, "g4");
      assert.equal(refused.status, 429);
      const wait = refused.json.parameters.retry_after;
      assert.ok(wait >= 59 && wait <= 60, `retry after ${wait}`);
      assert.deepEqual(refused.json, tooMany(wait));
      // Every refusal of the flood is told the same wait.
      assert.equal((await say(tg, GROUP, "g5")).json.parameters.retry_after, wait);
      for (const n of [1, 2, 3, 4, 5]) assert.equal((await say(tg, PRIVATE, `p${n}`)).status, 200);
      assert.equal(tg.stats(GROUP).refused429, 2);
      assert.equal(tg.stats(PRIVATE).accepted, 5);
    }));

  test("one chat's flood leaves another chat free", () =>
    fake({ pace: {} }, async (tg) => {
      assert.equal((await say(tg, GROUP, "a1")).status, 200);
      assert.equal((await say(tg, GROUP, "a2")).status, 429);
      assert.equal((await say(tg, OTHER, "b1")).status, 200);
      assert.equal((await say(tg, GROUP, "a3")).status, 429);
      assert.deepEqual(tg.stats(), {
        [GROUP]: { accepted: 1, sent: 1, edited: 0, refused429: 2, notModified: 0, threadNotFound: 0 },
        [OTHER]: { accepted: 1, sent: 1, edited: 0, refused429: 0, notModified: 0, threadNotFound: 0 },
      });
    }));

  test("with a flood penalty, a send before the wait is over makes the wait longer", () =>
    fake({ pace: { perSecond: 1 }, floodPenalty: 5 }, async (tg) => {
      assert.equal((await say(tg, GROUP, "x1")).status, 200);
      assert.deepEqual((await say(tg, GROUP, "x2")).json, tooMany(1));
      assert.deepEqual((await say(tg, GROUP, "x3")).json, tooMany(5));
    }));

  test("without a pace nothing is refused", () =>
    fake({}, async (tg) => {
      for (let i = 0; i < 5; i++) assert.equal((await say(tg, GROUP, `n${i}`)).status, 200);
      assert.equal(tg.stats(GROUP).accepted, 5);
    }));

  test("an edit takes a slot in the pace too, and one that changes nothing is 'not modified'", () =>
    fake({ pace: { perSecond: 1 } }, async (tg) => {
      const sent = await say(tg, GROUP, "<b>3 deployments</b>");
      const id = sent.json.result.message_id;
      const edit = (text) => call(tg, "editMessageText", { chat_id: GROUP, message_id: id, text, parse_mode: "HTML" });
      assert.deepEqual((await edit("<b>4 deployments</b>")).json, tooMany(1));
      await new Promise((r) => setTimeout(r, 1000));
      const same = await edit("<b>3 deployments</b>");
      assert.equal(same.status, 400);
      assert.equal(same.json.description, "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message");
      assert.equal((await edit("<b>4 deployments</b>")).status, 200);
      const [m] = tg.inChat(GROUP);
      assert.deepEqual(m.edits.map((e) => e.visible), ["4 deployments"]);
      assert.equal(m.current.visible, "4 deployments");
      assert.deepEqual(tg.editAttempts.map((a) => a.answered), [429, 400, 200]);
      assert.deepEqual(tg.shown("4 deployments"), [m]);
      assert.deepEqual(tg.stats(GROUP), { accepted: 2, sent: 1, edited: 1, refused429: 1, notModified: 1, threadNotFound: 0 });
    }));

  test("an edit longer than Telegram allows is a violation", async () => {
    const tg = await fakeTelegram({ token: BOT, chatId: GROUP });
    try {
      const id = (await say(tg, GROUP, "short")).json.result.message_id;
      const r = await call(tg, "editMessageText", { chat_id: GROUP, message_id: id, text: "x".repeat(4097) });
      assert.equal(r.status, 400);
      assert.deepEqual(tg.violations, ["edit to 4097 characters"]);
    } finally {
      await tg.close();
    }
  });

  test("topics: made in a forum, refused in a chat that is not one, and gone once deleted", () =>
    fake({ chats: [GROUP, FORUM], forums: [FORUM] }, async (tg) => {
      const made = await call(tg, "createForumTopic", { chat_id: FORUM, name: "payments" });
      assert.equal(made.status, 200);
      const thread = made.json.result.message_thread_id;
      assert.equal(made.json.result.name, "payments");
      assert.equal(typeof made.json.result.icon_color, "number");
      assert.deepEqual(await call(tg, "createForumTopic", { chat_id: GROUP, name: "payments" }), {
        status: 400, json: { ok: false, error_code: 400, description: "Bad Request: the chat is not a forum" },
      });

      const notFound = { status: 400, json: { ok: false, error_code: 400, description: "Bad Request: message thread not found" } };
      const silent = { message_thread_id: thread, disable_notification: true, link_preview_options: { is_disabled: true } };
      const inTopic = await say(tg, FORUM, "in the topic", silent);
      assert.equal(inTopic.status, 200);
      assert.equal(inTopic.json.result.message_thread_id, thread);
      assert.deepEqual(await say(tg, GROUP, "thread in a plain group", { message_thread_id: thread }), notFound);
      assert.deepEqual(await say(tg, FORUM, "unknown thread", { message_thread_id: thread + 1000 }), notFound);
      assert.equal((await say(tg, FORUM, "the forum's general topic")).status, 200);
      tg.deleteTopic(FORUM, thread);
      assert.deepEqual(await say(tg, FORUM, "deleted topic", { message_thread_id: thread }), notFound);

      const [m] = tg.inChat(FORUM, thread);
      assert.deepEqual(
        { chatId: m.chatId, threadId: m.threadId, disableNotification: m.disableNotification, linkPreviewOptions: m.linkPreviewOptions, parseMode: m.parseMode, visible: m.visible },
        { chatId: FORUM, threadId: thread, disableNotification: true, linkPreviewOptions: { is_disabled: true }, parseMode: "HTML", visible: "in the topic" },
      );
      assert.deepEqual(tg.inChat(FORUM, null).map((x) => x.text), ["the forum's general topic"]);
      assert.deepEqual(tg.topics(FORUM), [{ threadId: thread, name: "payments", iconColor: made.json.result.icon_color, deleted: true }]);
      assert.equal(tg.stats(FORUM).threadNotFound, 2);
      assert.equal(tg.stats(GROUP).threadNotFound, 1);
    }));

  test("a chat the bot is not in, an unknown field and an unknown method are violations", async () => {
    const tg = await fakeTelegram({ token: BOT, chatId: GROUP, chats: [OTHER] });
    try {
      assert.equal((await say(tg, OTHER, "second chat")).status, 200);
      assert.equal((await say(tg, "-1009", "elsewhere")).status, 400);
      assert.equal((await say(tg, GROUP, "old style", { disable_web_page_preview: true })).status, 200);
      assert.equal((await call(tg, "getChat", { chat_id: GROUP })).status, 404);
      assert.deepEqual(tg.violations, [
        "sendMessage to chat -1009",
        "sendMessage with unknown field(s) disable_web_page_preview",
        "unexpected POST /bot<token>/getChat",
      ]);
    } finally {
      await tg.close();
    }
  });

  test("keyboards: what a button may hold, what an edit keeps, and callback queries answered once", async () => {
    const tg = await fakeTelegram({ token: BOT, chatId: GROUP });
    try {
      const keyboard = (data) => ({ inline_keyboard: [[{ text: "Go", callback_data: data }]] });
      assert.equal((await say(tg, GROUP, "with buttons", { reply_markup: keyboard("t1") })).status, 200);
      const [m] = tg.inChat(GROUP);
      assert.deepEqual(tg.keyboard(m), [[{ text: "Go", data: "t1" }]]);
      // The same text and keyboard is not modified; the same text without one is an edit.
      const edit = (extra) => call(tg, "editMessageText", { chat_id: GROUP, message_id: m.messageId, text: "with buttons", parse_mode: "HTML", ...extra });
      assert.equal((await edit({ reply_markup: keyboard("t1") })).status, 400);
      assert.equal((await edit({})).status, 200);
      assert.equal(tg.keyboard(m), undefined, "an edit without reply_markup keeps no keyboard");
      // A press, answered once in the webhook's response; again, and unknown ones, are violations.
      const update = tg.press(m, { id: 5, username: "alice" }, "t1");
      assert.deepEqual([update.callback_query.message.message_id, update.callback_query.data], [m.messageId, "t1"]);
      tg.fromWebhook({ method: "answerCallbackQuery", callback_query_id: update.callback_query.id, text: "Done" });
      tg.fromWebhook({ method: "answerCallbackQuery", callback_query_id: update.callback_query.id, text: "Again" });
      assert.equal((await call(tg, "answerCallbackQuery", { callback_query_id: "made-up" })).status, 400);
      assert.deepEqual(tg.answers.map((a) => [a.text, a.via]), [["Done", "webhook"]]);
      assert.equal((await say(tg, GROUP, "too long", { reply_markup: keyboard("x".repeat(65)) })).status, 200);
      assert.deepEqual(tg.violations, [
        `answerCallbackQuery of an already answered query ${update.callback_query.id}`,
        "answerCallbackQuery of an unknown query made-up",
        `sendMessage with button ${JSON.stringify({ text: "Go", callback_data: "x".repeat(65) })}`,
      ]);
    } finally {
      await tg.close();
    }
  });
});

describe("the Cloudflare fake serves deployments and versions and records rollbacks", () => {
  const V1 = "0a1b2c3d-0000-4000-8000-000000000001";
  const V2 = "18f97339-c287-4872-9bdd-e2135c07ec12";
  const cfCall = (cf, method, path, body) =>
    send(cf.base, method, `/accounts/acc${path}`, { body: body === undefined ? undefined : JSON.stringify(body), headers: jsonHeaders("cf") });
  const worker = () => [
    { id: "dep-2", created_on: "2025-01-15T10:00:00Z", source: "wrangler", strategy: "percentage", versions: [{ version_id: V2, percentage: 100 }] },
    { id: "dep-1", created_on: "2025-01-14T10:00:00Z", source: "wrangler", strategy: "percentage", versions: [{ version_id: V1, percentage: 100 }] },
  ];

  test("a rollback is made live, or refused with the code it was told, and recorded either way", async () => {
    const cf = await fakeCloudflare({ token: "cf", accountId: "acc" });
    try {
      cf.workers.set("api", worker());
      const version = JSON.parse((await cfCall(cf, "GET", `/workers/scripts/api/versions/${V1}`)).text);
      assert.equal(version.result.number, 1);
      assert.equal((await cfCall(cf, "GET", "/workers/scripts/api/versions/nope")).status, 404);
      const body = { strategy: "percentage", versions: [{ version_id: V1, percentage: 100 }], annotations: { "workers/message": "rollback by @alice via edge-notifier" } };
      cf.refuse("api");
      const refused = await cfCall(cf, "POST", "/workers/scripts/api/deployments", body);
      assert.equal(refused.status, 400);
      assert.deepEqual(JSON.parse(refused.text).errors, [SECRET_CHANGED]);
      const made = await cfCall(cf, "POST", "/workers/scripts/api/deployments", body);
      assert.equal(made.status, 200);
      assert.deepEqual(cf.workers.get("api")[0].versions, [{ version_id: V1, percentage: 100 }]);
      assert.equal(cf.workers.get("api")[0].annotations["workers/message"], "rollback by @alice via edge-notifier");
      assert.deepEqual(cf.rollbacks.map((r) => r.answered), [400, 200]);
      assert.deepEqual(cf.violations, []);
    } finally {
      await cf.close();
    }
  });

  test("a rollback the API would not take is a violation", async () => {
    const cf = await fakeCloudflare({ token: "cf", accountId: "acc" });
    try {
      cf.workers.set("api", worker());
      await cfCall(cf, "POST", "/workers/scripts/api/deployments", { strategy: "immediate", versions: [{ version_id: V1, percentage: 100 }] });
      await cfCall(cf, "POST", "/workers/scripts/api/deployments", { strategy: "percentage", versions: [{ version_id: "v-unknown", percentage: 100 }] });
      await cfCall(cf, "POST", "/workers/scripts/api/deployments", { strategy: "percentage", versions: [{ version_id: V1, percentage: 90 }] });
      assert.deepEqual(cf.violations, [
        'rollback of api: strategy "immediate"',
        "rollback of api: unknown version v-unknown",
        "rollback of api: percentages do not add up to 100",
      ]);
      assert.equal(cf.workers.get("api").length, 2, "nothing was made live");
    } finally {
      await cf.close();
    }
  });

  test("a Pages rollback changes the live deployment", async () => {
    const cf = await fakeCloudflare({ token: "cf", accountId: "acc" });
    try {
      const pages = (id, created, env = "production", status = "success") => ({ id, short_id: id.slice(0, 8), environment: env, created_on: created, latest_stage: { name: "deploy", status } });
      cf.pages.set("docs", [pages("bbbbbbbb-2", "2025-01-15T10:00:00Z"), pages("pppppppp-1", "2025-01-15T09:30:00Z", "preview"), pages("aaaaaaaa-1", "2025-01-15T09:00:00Z")]);
      const live = async () => JSON.parse((await cfCall(cf, "GET", "/pages/projects/docs")).text).result.canonical_deployment.id;
      assert.equal(await live(), "bbbbbbbb-2");
      const production = JSON.parse((await cfCall(cf, "GET", "/pages/projects/docs/deployments?env=production")).text);
      assert.deepEqual(production.result.map((d) => d.id), ["bbbbbbbb-2", "aaaaaaaa-1"]);
      assert.equal((await send(cf.base, "POST", "/accounts/acc/pages/projects/docs/deployments/aaaaaaaa-1/rollback", { headers: { authorization: "Bearer cf" } })).status, 200);
      assert.equal(await live(), "aaaaaaaa-1");
      assert.equal((await send(cf.base, "POST", "/accounts/acc/pages/projects/docs/deployments/pppppppp-1/rollback", { headers: { authorization: "Bearer cf" } })).status, 400);
      assert.deepEqual(cf.violations, ["Pages rollback of docs to pppppppp-1, not a successful production deployment"]);
    } finally {
      await cf.close();
    }
  });
});
