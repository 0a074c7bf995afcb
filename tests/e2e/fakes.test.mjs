// The fakes themselves: whatever goes wrong inside one is a recorded violation,
// which fails the suite that used it, never only a 500 the Worker retries.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { fakeTelegram, fakeCloudflare, fakeGithub, fakeTarget, fakeFly, parseTelegramHtml } from "./fakes.mjs";

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
