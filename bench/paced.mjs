// Bursts into chats that keep Telegram's pace (issue 12): a fresh Worker and a paced
// Telegram fake per run, `n` distinct /notify deployments posted at concurrency 16,
// then the admin API polled until every notification is final (sent or failed), with
// a ceiling. What it reads:
// - delivered / failed: the notifications' `status` in `GET /api/deliveries` (today's
//   listing calls it `outcome`; either is read). Per-destination rows (`deliveries`,
//   each with a `status`) must be final too where the listing has them.
// - whether a deployment is in a message, when, and in how many: from the fake. A
//   deployment is in a message when an accepted sendMessage's text, or an applied
//   edit of it, contains its deployment id or its commit's short sha (both unique per
//   run); edits of the same message (a digest growing) are one message, so a
//   deployment is duplicated when it is in more than one message.
// - the time until the last is in a message: from the first POST to the first accepted
//   send or edit that contains the last deployment to appear.
// - messages used: sendMessage and editMessageText calls the fake accepted (an edit
//   answered "not modified" is not one); 429s: the refusals the fake answered.
// Nothing here waits without a ceiling; every Worker and fake it starts is closed.
import { log } from "../scripts/lib.mjs";
import { fakeTelegramThread } from "./telegram-thread.mjs";
import { startOnWorkerd } from "./runtime.mjs";

/** Telegram's documented pace for a group: one message a second, 20 a minute. */
export const PACE = { perSecond: 1, perMinute: 20 };
/** How long a burst may take, from its first POST until every notification is final. */
export const CEILING_MS = 6 * 60_000;
const START_CEILING_MS = 120_000;
const POST_TIMEOUT_MS = 30_000;
const ADMIN_TIMEOUT_MS = 10_000;
const POLL_MS = 1000;
/** Notification and delivery statuses that are not final yet (migration 0016, notify store). */
const IN_PROGRESS = new Set(["pending", "waiting", "sending", "retrying", "digested"]);

const round = (x) => Math.round(x * 10) / 10;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** `promise`, or an error naming `what` once `ms` have passed. */
async function within(promise, ms, what) {
  let timer;
  try {
    return await Promise.race([
      promise,
      new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms / 1000} s`)), ms); }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** The body's JSON, or its text when it is not JSON. */
async function answer(r) {
  const text = await r.text();
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

async function admin(url, token, method, path, body) {
  try {
    const r = await fetch(`${url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(ADMIN_TIMEOUT_MS),
    });
    return { status: r.status, body: await answer(r) };
  } catch (e) {
    throw new Error(`${method} ${path}: no answer (${e.cause?.code ?? e.name}: ${e.cause?.message ?? e.message})`);
  }
}

/**
 * One burst's deployments: ids and short shas of the same length, so none is a
 * substring of another; the short sha is the only place its first letter is.
 */
export function burst(tag, n, projectOf) {
  const run = Date.now().toString(36);
  return Array.from({ length: n }, (_, i) => {
    const id = `paced-${tag}-${run}-${String(i).padStart(4, "0")}`;
    const short = `c${i.toString(16).padStart(6, "0")}`;
    const project = projectOf(i);
    return {
      id, short, project,
      body: {
        deployment: {
          type: "worker", projectName: project, deploymentId: id, branch: "main",
          commitHash: `${short}${"0123456789".repeat(4).slice(0, 33)}`, commitMessage: `Paced release ${id}`,
          author: "bench@example.com", environment: "production", isCI: true, url: `https://bench.example.com/d/${id}`,
        },
      },
    };
  });
}

/** Posts every body at concurrency 16; answers the statuses (errors under "error <code>"). */
async function post(url, token, items) {
  const statuses = {};
  const count = (k) => (statuses[k] = (statuses[k] ?? 0) + 1);
  let next = 0;
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < items.length) {
      const item = items[next++];
      try {
        const r = await fetch(`${url}/notify`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body: JSON.stringify(item.body),
          signal: AbortSignal.timeout(POST_TIMEOUT_MS),
        });
        await r.arrayBuffer();
        count(r.status);
      } catch (e) {
        count(`error ${e.cause?.code ?? e.code ?? e.name}`);
      }
    }
  }));
  return statuses;
}

/** Each deployment's listing entry (by the id's `:<deployment id>` suffix), or undefined. */
function entries(list, items) {
  const byId = new Map();
  for (const e of list) {
    if (e?.source === "notify" && typeof e.id === "string") byId.set(e.id.slice(e.id.lastIndexOf(":") + 1), e);
  }
  return items.map((it) => byId.get(it.id));
}

const statusOf = (e) => e?.status ?? e?.outcome;
const isFinal = (e) => {
  if (!e || statusOf(e) === undefined || IN_PROGRESS.has(statusOf(e))) return false;
  return !Array.isArray(e.deliveries) || e.deliveries.every((d) => !IN_PROGRESS.has(d?.status));
};

/**
 * Polls the admin API until every item's notification is final or `until` passes;
 * answers the last listing's entries and whether it timed out. A 4xx is an error at
 * once (wrong token, no such endpoint); a 5xx or no answer is tried again.
 */
async function waitFinal(url, adminToken, items, until) {
  let last = items.map(() => undefined);
  let lastError = null;
  let logged = Date.now();
  for (;;) {
    try {
      const r = await admin(url, adminToken, "GET", "/api/deliveries?limit=500");
      if (r.status >= 400 && r.status < 500) throw Object.assign(new Error(`GET /api/deliveries answered ${r.status}: ${JSON.stringify(r.body).slice(0, 300)}`), { fatal: true });
      if (r.status !== 200 || !Array.isArray(r.body?.deliveries)) {
        lastError = `GET /api/deliveries answered ${r.status}: ${JSON.stringify(r.body).slice(0, 300)}`;
      } else {
        last = entries(r.body.deliveries, items);
        lastError = null;
      }
    } catch (e) {
      if (e.fatal) throw e;
      lastError = `GET /api/deliveries: ${e.message}`;
    }
    const final = last.filter(isFinal).length;
    if (final === items.length) return { entries: last, timedOut: false };
    if (Date.now() >= until) return { entries: last, timedOut: true, lastError };
    if (Date.now() - logged >= 30_000) {
      logged = Date.now();
      log(`  ${final}/${items.length} final${lastError ? ` (${lastError})` : ""}`);
    }
    await sleep(POLL_MS);
  }
}

/** Where each item is in the fake's accepted messages: first time, messages, chats. */
function seen(snapshot, items) {
  const accepted = snapshot.messages.filter((m) => m.answered === 200);
  return items.map((it) => {
    const has = (text) => text.includes(it.id) || text.includes(it.short);
    let first = Infinity;
    const messages = new Set();
    const chats = new Set();
    for (const m of accepted) {
      if (has(m.text)) first = Math.min(first, m.at);
      const edit = m.edits.find((e) => has(e.text));
      if (edit) first = Math.min(first, edit.at);
      if (has(m.text) || edit) {
        messages.add(`${m.chatId}/${m.messageId}`);
        chats.add(m.chatId);
      }
    }
    return { first, messages: messages.size, chats: [...chats] };
  });
}

/**
 * The most sends and edits the pace allows in `chats` over `seconds`: per chat one a
 * second and PACE.perMinute a minute (every chat here is a group).
 */
const paceAllows = (chats, seconds) =>
  chats * Math.min(Math.floor(seconds * PACE.perSecond) + 1, PACE.perMinute * Math.ceil(Math.max(seconds, 1) / 60));

/**
 * One burst: `items` (from `burst`) posted to a fresh Worker whose default chat is
 * `defaultChat`, after `routes` ([{ name, definition }]) are put through the admin
 * API, into a fake that knows `defaultChat` and `chats` and keeps the pace.
 * `expectedChat(item)` is the chat the item must land in; `start` starts the Worker
 * ({ vars } → { url, stop }); `ceilingMs` bounds the wait. Never throws: a run that could not finish answers
 * { error, problems, ok: false }.
 */
export async function pacedBurst({ tokens, defaultChat, chats = [], routes = [], items, expectedChat, start = startOnWorkerd, ceilingMs = CEILING_MS }) {
  let tg;
  let worker;
  try {
    tg = await within(fakeTelegramThread({ token: tokens.bot, chats: [defaultChat, ...chats], pace: PACE }), START_CEILING_MS, "starting the paced Telegram fake");
    const starting = start({
      vars: {
        DEPLOY_NOTIFY_TOKEN: tokens.notify, ADMIN_TOKEN: tokens.admin, TELEGRAM_BOT_TOKEN: tokens.bot,
        TELEGRAM_CHAT_ID: defaultChat, TELEGRAM_API_BASE: tg.base, GITHUB_WEBHOOK_SECRET: tokens.webhook,
      },
    });
    worker = await within(starting, START_CEILING_MS, "starting the Worker").catch((e) => {
      // A Worker that starts after its ceiling is still stopped.
      starting.then((w) => w.stop(), () => {});
      throw e;
    });

    for (const { name, definition } of routes) {
      const r = await admin(worker.url, tokens.admin, "PUT", `/api/routes/${encodeURIComponent(name)}`, definition);
      if (r.status !== 200 && r.status !== 201) {
        throw new Error(`PUT /api/routes/${name} answered ${r.status}: ${JSON.stringify(r.body).slice(0, 300)} (does this Worker have routes yet?)`);
      }
    }

    const t0 = Date.now();
    const until = t0 + ceilingMs;
    const statuses = await post(worker.url, tokens.notify, items);
    const accepted = statuses[202] ?? 0;
    const posted_seconds = round((Date.now() - t0) / 1000);
    const { entries: rows, timedOut, lastError } = await waitFinal(worker.url, tokens.admin, items, until);
    const snapshot = await within(tg.snapshot(), 30_000, "the Telegram fake's snapshot");

    const where = seen(snapshot, items);
    const byStatus = {};
    for (const e of rows) byStatus[statusOf(e) ?? "missing"] = (byStatus[statusOf(e) ?? "missing"] ?? 0) + 1;
    const inMessages = where.filter((w) => w.first !== Infinity);
    const last = inMessages.length ? Math.max(...inMessages.map((w) => w.first)) : NaN;
    const usedChats = Object.entries(snapshot.stats).filter(([, s]) => s.accepted > 0);
    const messages_used = usedChats.reduce((n, [, s]) => n + s.accepted, 0);
    const seconds = round((last - t0) / 1000);
    const result = {
      notifications: items.length,
      post_statuses: statuses,
      posted_seconds,
      delivered: byStatus.sent ?? 0,
      failed: byStatus.failed ?? 0,
      duplicated: where.filter((w) => w.messages > 1).length,
      in_messages: inMessages.length,
      misrouted: expectedChat ? items.filter((it, i) => where[i].chats.some((c) => c !== expectedChat(it))).length : 0,
      statuses: byStatus,
      last_in_message_seconds: inMessages.length === items.length ? seconds : null,
      last_seen_seconds: Number.isNaN(last) ? null : seconds,
      messages_used,
      sends: usedChats.reduce((n, [, s]) => n + s.sent, 0),
      edits: usedChats.reduce((n, [, s]) => n + s.edited, 0),
      not_modified: Object.values(snapshot.stats).reduce((n, s) => n + s.notModified, 0),
      answered_429: Object.values(snapshot.stats).reduce((n, s) => n + s.refused429, 0),
      pace_allows: Number.isNaN(last) ? null : paceAllows(Math.max(usedChats.length, 1), (last - t0) / 1000),
      per_chat: snapshot.stats,
      timed_out: timedOut,
      ...(timedOut && lastError ? { last_error: lastError } : {}),
      violations: [...snapshot.violations, ...snapshot.paceViolations].slice(0, 20),
    };
    const n = items.length;
    result.problems = [
      accepted !== n && `${accepted} of ${n} POSTs answered 202: ${JSON.stringify(statuses)}`,
      timedOut && `not all final within ${ceilingMs / 1000} s: ${JSON.stringify(byStatus)}`,
      result.delivered !== n && `${result.delivered} of ${n} sent`,
      result.failed && `${result.failed} failed`,
      result.duplicated && `${result.duplicated} in more than one message`,
      result.in_messages !== n && `${result.in_messages} of ${n} in a message`,
      result.misrouted && `${result.misrouted} in a chat not theirs`,
      result.violations.length && `Telegram fake violations: ${result.violations.slice(0, 3).join("; ")}`,
    ].filter(Boolean);
    result.ok = result.problems.length === 0;
    return result;
  } catch (e) {
    return { error: e.message, problems: [e.message], ok: false };
  } finally {
    if (worker) await within(worker.stop(), 30_000, "stopping the Worker").catch((e) => log(e.message));
    if (tg) await within(tg.close(), 10_000, "closing the Telegram fake").catch((e) => log(e.message));
  }
}

/** The 10 routes of the spread run: project bench-p<k> to chat -100555<k>. */
export function spreadRoutes(k = 10) {
  return Array.from({ length: k }, (_, i) => ({
    name: `bench-p${i}`,
    definition: { position: i + 1, match: { project: `bench-p${i}` }, destinations: [{ chat_id: `-100555${i}` }] },
  }));
}
