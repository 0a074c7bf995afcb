// Request bodies from a hostile client, end to end on workerd: a chunked body
// declares no length, so its size cap has to hold while it streams in. The client
// here is node:http writing chunk by chunk and watching for the answer while it
// writes, so the test sees how much the Worker pulled before it answered.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { request } from "node:http";
import { randomUUID } from "node:crypto";
import { fakeTelegram } from "./fakes.mjs";
import { startWorker } from "./worker.mjs";
import { fixture, sign } from "./github-kit.mjs";

const TOKEN = "e2e-bodies-notify-token";
const ADMIN = "e2e-bodies-admin-token";
const SECRET = "e2e bodies webhook secret";
const BOT = "77:e2e-bodies-bot";
const CHAT = "-100555";
const KiB = 1024;
const MiB = 1024 * KiB;

let worker;
let tg;

before(async () => {
  tg = await fakeTelegram({ token: BOT, chatId: CHAT });
  worker = await startWorker({
    vars: {
      DEPLOY_NOTIFY_TOKEN: TOKEN,
      ADMIN_TOKEN: ADMIN,
      GITHUB_WEBHOOK_SECRET: SECRET,
      TELEGRAM_BOT_TOKEN: BOT,
      TELEGRAM_CHAT_ID: CHAT,
      TELEGRAM_API_BASE: tg.base,
    },
  });
});

after(async () => {
  if (process.env.E2E_DEBUG) console.log(worker?.logs.join("\n"));
  await worker?.stop();
  await tg?.close();
});

/**
 * POSTs the buffers `parts()` yields, with chunked transfer encoding and no
 * Content-Length, honouring backpressure. Once `holdAt` bytes are out it stops and
 * waits up to `holdMs` for the answer with the body still open: a Worker that
 * needs the whole body first cannot answer then. Without an answer it sends the
 * rest. Resolves with the answer and `sentBeforeAnswer`, the bytes written before
 * the answer's head arrived.
 *
 * Holding at the byte, rather than writing on while the answer comes, keeps the
 * answer readable: a connection closed with unread bytes in it is reset, and a
 * reset can overtake the answer on its way. Under `wrangler dev` the bytes left
 * unread between its proxy and the Worker also spoil the proxy's pooled
 * connection: the request after gets the proxy's 503 "Your worker restarted
 * mid-request". Neither is the Worker's answer, and neither exists in production:
 * that one 503 (not JSON, the proxy's text), or a reset before any answer, makes the
 * request be sent again, once.
 */
async function postChunked(path, options) {
  let first;
  try {
    first = await postChunkedOnce(path, { ...options, parts: options.parts() });
  } catch (e) {
    // The same spoiled pooled connection can also be reset by the proxy before any
    // answer comes: the Worker never answered, so the request is sent once more.
    if (!["ECONNRESET", "EPIPE"].includes(e.code)) throw e;
    return postChunkedOnce(path, { ...options, parts: options.parts() });
  }
  if (!isProxyRestart(first)) return first;
  // wrangler dev's own answer, not the Worker's (see above): the request never reached
  // the Worker whole, so it is sent once more.
  return postChunkedOnce(path, { ...options, parts: options.parts() });
}

/** The 503 that wrangler dev's proxy gives on a spoiled pooled connection. */
function isProxyRestart(r) {
  return r.status === 503 && r.json === null && r.text.includes("restarted mid-request");
}

function postChunkedOnce(path, { method = "POST", headers, parts, holdAt = Infinity, holdMs = 10_000 }) {
  const url = new URL(path, worker.url);
  return new Promise((resolve, reject) => {
    let sent = 0;
    let answered = null;
    let onAnswer = () => {};
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`no answer within 60 s after ${sent} bytes`));
    }, 60_000);
    const req = request(url, { method, headers: { ...headers, "transfer-encoding": "chunked" } });
    req.on("response", (res) => {
      answered = sent;
      onAnswer();
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d) => (text += d));
      res.on("end", () => {
        clearTimeout(timer);
        req.destroy();
        let json = null;
        try { json = JSON.parse(text); } catch { /* asserted by callers */ }
        resolve({ status: res.statusCode, json, text, sentBeforeAnswer: answered });
      });
    });
    req.on("error", (e) => {
      if (answered === null) {
        clearTimeout(timer);
        reject(e);
      }
    });
    const flushed = (part) => new Promise((r) => req.write(part, r));
    let held = false;
    (async () => {
      for (const whole of parts) {
        // The part that crosses `holdAt` is split there, so the hold starts with
        // exactly `holdAt` bytes out.
        const cut = held ? whole.length : Math.min(whole.length, holdAt - sent);
        for (const part of cut < whole.length ? [whole.subarray(0, cut), whole.subarray(cut)] : [whole]) {
          if (answered !== null || req.destroyed) return;
          sent += part.length;
          await flushed(part);
          if (!held && sent >= holdAt) await hold();
        }
      }
      if (answered === null && !req.destroyed) req.end();
    })().catch(reject);
    function hold() {
      held = true;
      return new Promise((r) => {
        onAnswer = r;
        setTimeout(r, holdMs);
      });
    }
  });
}

/** `total` bytes of `byte` in parts of at most `size`, made as they are asked for. */
function* filler(total, size, byte = 0x20) {
  const full = Buffer.alloc(size, byte);
  for (let left = total; left > 0; left -= size) yield left >= size ? full : full.subarray(0, left);
}

/** `json` padded with spaces to exactly `total` bytes, in parts of `size`. */
function* paddedJson(json, total, size) {
  const head = Buffer.from(JSON.stringify(json));
  yield head;
  yield* filler(total - head.length, size);
}

const notifyHeaders = { "content-type": "application/json", authorization: `Bearer ${TOKEN}` };
const githubHeaders = (event, signature) => ({
  "content-type": "application/json",
  "x-github-event": event,
  "x-github-delivery": randomUUID(),
  "x-hub-signature-256": signature,
});
const NOTIFY_CAP = 64 * KiB;
const GITHUB_CAP = 25 * MiB;

describe("a chunked body over its cap gets 413 while it is still being sent", () => {
  test("/notify: answered once 64 KiB + 1 byte are in, of 16 MiB offered", async () => {
    const r = await postChunked("/notify", {
      headers: notifyHeaders, parts: () => filler(16 * MiB, 16 * KiB, 0x61), holdAt: NOTIFY_CAP + 1,
    });
    assert.deepEqual([r.status, r.json], [413, { success: false, error: `request body is larger than ${NOTIFY_CAP} bytes` }]);
    assert.equal(r.sentBeforeAnswer, NOTIFY_CAP + 1, "answered with the body still open");
  });

  test("the admin API: answered once 64 KiB + 1 byte are in", async () => {
    const r = await postChunked("/api/apps/hostile", {
      method: "PUT",
      headers: { "content-type": "application/json", authorization: `Bearer ${ADMIN}` },
      parts: () => filler(16 * MiB, 16 * KiB, 0x61), holdAt: 64 * KiB + 1,
    });
    assert.deepEqual([r.status, r.json], [413, { success: false, error: `request body is larger than ${64 * KiB} bytes` }]);
    assert.equal(r.sentBeforeAnswer, 64 * KiB + 1, "answered with the body still open");
  });

  test("/github: answered once 25 MiB + 1 byte are in, of 64 MiB offered, before any signature check", async () => {
    const r = await postChunked("/github", {
      headers: githubHeaders("push", `sha256=${"0".repeat(64)}`),
      parts: () => filler(64 * MiB, 256 * KiB, 0x61), holdAt: GITHUB_CAP + 1,
    });
    assert.deepEqual([r.status, r.json], [413, { success: false, error: `request body is larger than ${GITHUB_CAP} bytes` }]);
    assert.equal(r.sentBeforeAnswer, GITHUB_CAP + 1, "answered with the body still open");
  });
});

describe("a chunked body up to its cap is read whole", () => {
  test("/notify: a body of exactly 64 KiB in many small chunks notifies", async () => {
    const body = { deployment: { type: "worker", projectName: "chunked-app", deploymentId: "chunked-1", isCI: true } };
    const r = await postChunked("/notify", { headers: notifyHeaders, parts: () => paddedJson(body, NOTIFY_CAP, 997) });
    assert.equal(r.status, 202, r.text);
    await tg.waitFor("chunked-app");
  });

  test("/github: a signed body of exactly 25 MiB is authentic: the signature covers every chunk", async () => {
    const parts = [...paddedJson(fixture("ping.json"), GITHUB_CAP, 256 * KiB)];
    const r = await postChunked("/github", { headers: githubHeaders("ping", sign(Buffer.concat(parts), SECRET)), parts: () => parts });
    assert.deepEqual([r.status, r.json], [200, { success: true, message: "pong" }]);
  });
});

test("the Telegram fake saw nothing unexpected", () => {
  assert.deepEqual(tg.violations, []);
});
