// Strict fakes of the upstream APIs, on loopback. Each one checks every request it
// receives the way the real service would (token, chat, markup, auth header) and
// records anything unexpected as a violation; the suite fails if any were recorded.
import { createHash } from "node:crypto";
import { createServer } from "node:http";
import { verify as cryptoVerify, sign as cryptoSign, generateKeyPairSync } from "node:crypto";

/**
 * Serves `handler` on loopback. A fake that throws (a body that is not the JSON it
 * expects, a field it cannot read) answers 500 like a crashed upstream, and the
 * crash is recorded in `violations`, so the suite fails instead of the Worker
 * quietly retrying.
 */
function listen(violations, handler) {
  return new Promise((resolve) => {
    const server = createServer(async (req, res) => {
      try {
        const chunks = [];
        for await (const c of req) chunks.push(c);
        const body = Buffer.concat(chunks).toString("utf8");
        await handler(req, body, res);
      } catch (e) {
        const path = new URL(req.url, "http://x").pathname.replace(/^\/bot[^/]+/, "/bot<token>");
        violations.push(`fake crashed on ${req.method} ${path}: ${e.message}`);
        if (!res.headersSent) res.writeHead(500, { "content-type": "application/json" });
        res.end(JSON.stringify({ ok: false, description: "fake crashed" }));
      }
    });
    server.listen(0, "127.0.0.1", () => resolve(server));
  });
}

/** A request body the fake expects to be JSON; anything else throws (a violation). */
function parseJson(raw, what) {
  try {
    return JSON.parse(raw);
  } catch {
    throw new Error(`${what}: body is not JSON`);
  }
}

function json(res, status, body) {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

const ALLOWED_TAGS = new Set(["b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "code", "pre", "a", "tg-spoiler", "blockquote", "span"]);

/**
 * Checks text the way Telegram's HTML parse mode does and returns the visible text,
 * or throws with Telegram's kind of message.
 */
export function parseTelegramHtml(html) {
  const stack = [];
  let visible = "";
  let i = 0;
  while (i < html.length) {
    const c = html[i];
    if (c === "<") {
      const m = /^<(\/?)([a-z-]+)((?:\s+[a-z-]+="[^"<>]*")*)\s*>/.exec(html.slice(i));
      if (!m) throw new Error(`can't parse entities: unexpected "<" at byte offset ${i}`);
      const [whole, closing, tag] = m;
      if (!ALLOWED_TAGS.has(tag)) throw new Error(`can't parse entities: unsupported start tag "${tag}" at byte offset ${i}`);
      if (closing) {
        if (stack.pop() !== tag) throw new Error(`can't parse entities: can't find end tag corresponding to start tag "${tag}"`);
      } else {
        stack.push(tag);
      }
      i += whole.length;
    } else if (c === "&") {
      const m = /^&(lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);/.exec(html.slice(i));
      if (!m) throw new Error(`can't parse entities: unsupported entity at byte offset ${i}`);
      visible += { lt: "<", gt: ">", amp: "&", quot: '"' }[m[1]] ?? "?";
      i += m[0].length;
    } else if (c === ">") {
      throw new Error(`can't parse entities: unexpected ">" at byte offset ${i}`);
    } else {
      visible += c;
      i += 1;
    }
  }
  if (stack.length) throw new Error(`can't parse entities: can't find end tag corresponding to start tag "${stack.pop()}"`);
  return visible;
}

/**
 * Telegram's documented flood limits, per chat: about one message a second in any
 * chat, and at most 20 a minute in a group or channel (an id starting with "-", or
 * a channel's "@name"). See https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this
 */
export const TELEGRAM_PACE = Object.freeze({ perSecond: 1, perMinute: 20 });

const isGroup = (chat) => chat.startsWith("-") || chat.startsWith("@");

/**
 * The windows one chat is paced by, from `pace` ({ perSecond, perMinute,
 * privatePerSecond, privatePerMinute }): groups and channels get both; private
 * chats the per-second limit (`privatePerSecond`, default `perSecond`) and a
 * per-minute one only if `privatePerMinute` is given.
 */
function windowsFor(pace, chat) {
  if (!pace) return [];
  const group = isGroup(chat);
  const perSecond = group ? pace.perSecond : pace.privatePerSecond ?? pace.perSecond;
  const perMinute = group ? pace.perMinute : pace.privatePerMinute;
  const out = [];
  if (perSecond !== undefined) out.push({ ms: 1000, max: perSecond, name: `${perSecond} a second` });
  if (perMinute !== undefined) out.push({ ms: 60_000, max: perMinute, name: `${perMinute} a minute` });
  return out;
}

/** The fields sendMessage takes (Bot API 9.x); any other is a violation. */
const SEND_FIELDS = new Set([
  "business_connection_id", "chat_id", "message_thread_id", "direct_messages_topic_id", "text", "parse_mode",
  "entities", "link_preview_options", "disable_notification", "protect_content", "allow_paid_broadcast",
  "message_effect_id", "suggested_post_parameters", "reply_parameters", "reply_markup",
]);
const EDIT_FIELDS = new Set([
  "business_connection_id", "chat_id", "message_id", "inline_message_id", "text", "parse_mode", "entities",
  "link_preview_options", "reply_markup",
]);
const LINK_PREVIEW_FIELDS = new Set(["is_disabled", "url", "prefer_small_media", "prefer_large_media", "show_above_text"]);
/** The colours Telegram lets a bot pick for a new topic's icon. */
const TOPIC_COLORS = [7322096, 16766590, 13338331, 9367192, 16749490, 16478047];

const NOT_MODIFIED = "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message";
const THREAD_NOT_FOUND = "Bad Request: message thread not found";
const NOT_A_FORUM = "Bad Request: the chat is not a forum";

/**
 * The Telegram Bot API as the Worker uses it: sendMessage, editMessageText and
 * createForumTopic, on loopback, checked the way Telegram checks them.
 *
 * Options:
 * - `token`: the bot token; any other is a violation (401).
 * - `chatId` and/or `chats`: the chat(s) the bot is in; a send anywhere else is a
 *   violation (400 "chat not found").
 * - `pace` (opt-in; `true` or any field left out means TELEGRAM_PACE's): { perSecond,
 *   perMinute, privatePerSecond, privatePerMinute } (Infinity: no such limit), sliding
 *   windows per chat over the sends and edits it accepted. A send or edit that would break one is answered 429
 *   "Too Many Requests: retry after N" (`parameters.retry_after` N: the whole seconds
 *   until the chat accepts again, at least 1) and counted in the chat's `refused429`.
 *   Refusals take no slot, so a client that waits what it is told gets through.
 * - `floodPenalty` (seconds, default 0: off): a send or edit that comes before the
 *   time a 429 told it to wait blocks that chat until `floodPenalty` seconds later
 *   (never shorter than it already was). With 0, refused sends extend nothing.
 * - `forums`: the chats that are forums. `message_thread_id` naming no live topic
 *   (in a forum, or any id in a chat that is not one) is answered 400 "message
 *   thread not found", as Telegram does; createForumTopic in a chat that is not a
 *   forum 400 "the chat is not a forum". Neither is a violation: the Worker must
 *   handle them. createForumTopic is not paced.
 *
 * Every request is recorded. `messages` holds every sendMessage that passed the
 * basic checks, accepted or not: { chatId, threadId, text, visible, parseMode,
 * disableNotification, linkPreviewOptions, body, at, answered, description,
 * messageId, edits, current, notModified }. `edits` are the edits applied ({ text,
 * visible, parseMode, linkPreviewOptions, replyMarkup, at }); `current` what the
 * message shows now (`replyMarkup`: its inline keyboard, none after an edit without one, as in
 * Telegram). `editAttempts` lists every editMessageText of a known message with its
 * answer. An edit to the very text and keyboard the message shows is answered 400
 * "message is not modified" (compared as raw text, parse mode and keyboard).
 *
 * Chat-ops: `reply_markup` (an inline keyboard: rows of { text, callback_data of 1 to
 * 64 bytes }) is checked on sends and edits and kept as `keyboard` (an edit without
 * one leaves the message none; `keyboard(m)` is what it shows now); `reply_parameters`
 * as `replyTo`. `press(m, from, data)` and `userMessage(chat, from, text, threadId)`
 * make the updates Telegram would send, `fromWebhook(body)` does what Telegram does
 * with a webhook's response (an `answerCallbackQuery`), and `answers` lists the
 * answers (a query answered twice, or one never handed out, is a violation).
 * setWebhook, setMyCommands and getMe (`username`) are checked and kept in
 * `setupCalls`.
 *
 * Scripts: `script(substring, [responses])` answers the next sends whose text
 * contains `substring` with the given responses ({ status, body }), in order, before
 * falling back to the real checks. A scripted 200 takes a pace slot, a scripted 429
 * counts as refused; sends over the pace get the 429 before any script.
 */
export async function fakeTelegram({ token, chatId, chats = [], pace, floodPenalty = 0, forums = [], username = "edge_e2e_bot" }) {
  const messages = []; // every sendMessage request that passed the checks
  const editAttempts = [];
  // Chat-ops: the callback queries handed out (id -> { answered }), their answers,
  // and the setup calls (setWebhook, setMyCommands, getMe) with their bodies.
  const queries = new Map();
  const answers = [];
  const setupCalls = [];
  let nextUpdate = 7000;
  const violations = [];
  const scripts = [];
  const allowed = new Set([...(chatId === undefined ? [] : [chatId]), ...chats].map(String));
  const paceOf = pace ? { ...TELEGRAM_PACE, ...(pace === true ? {} : pace) } : undefined;
  const forumChats = new Set(forums.map(String));
  const topics = new Map(); // chat -> Map(threadId -> { threadId, name, iconColor, deleted })
  for (const f of forumChats) topics.set(f, new Map());
  const perChat = new Map(); // chat -> { accepted: [ms], sent, edited, refused429, notModified, threadNotFound, toldUntil, blockedUntil }
  let nextId = 1000;
  let nextColor = 0;

  const freshChat = () => ({ accepted: [], sent: 0, edited: 0, refused429: 0, notModified: 0, threadNotFound: 0, toldUntil: 0, blockedUntil: 0 });
  const chatState = (chat) => {
    if (!perChat.has(chat)) perChat.set(chat, freshChat());
    return perChat.get(chat);
  };

  /** When `chat` accepts its next send or edit (ms), as of `now`. */
  const freeAt = (chat, s, now) => {
    let at = Math.max(now, s.blockedUntil);
    for (const w of windowsFor(paceOf, chat)) {
      if (s.accepted.length >= w.max) at = Math.max(at, s.accepted[s.accepted.length - w.max] + w.ms);
    }
    return at;
  };

  /**
   * Takes a slot in `chat` for a send or edit and answers 0, or answers the 429 and
   * returns its retry_after. Checks, after taking a slot, that the chat's accepted
   * sends keep the pace: if not, the fake itself is wrong (a violation).
   */
  const refusedByPace = (chat, res, now) => {
    const s = chatState(chat);
    if (paceOf) {
      if (floodPenalty > 0 && now < s.toldUntil) s.blockedUntil = Math.max(s.blockedUntil, now + floodPenalty * 1000);
      const at = freeAt(chat, s, now);
      if (at > now) {
        const retryAfter = Math.max(1, Math.ceil((at - now) / 1000));
        s.refused429++;
        s.toldUntil = Math.max(s.toldUntil, now + retryAfter * 1000);
        json(res, 429, { ok: false, error_code: 429, description: `Too Many Requests: retry after ${retryAfter}`, parameters: { retry_after: retryAfter } });
        return retryAfter;
      }
    }
    s.accepted.push(now);
    for (const w of windowsFor(paceOf, chat)) {
      const a = s.accepted;
      if (a.length > w.max && a[a.length - 1] - a[a.length - 1 - w.max] < w.ms) {
        violations.push(`fake bug: chat ${chat} accepted more than ${w.name}`);
      }
    }
    return 0;
  };

  /** A field check that failed: a violation, and Telegram's 400. */
  const badRequest = (res, violation, description) => {
    violations.push(violation);
    json(res, 400, { ok: false, error_code: 400, description });
  };

  const unknownFields = (body, known, method) => {
    const extra = Object.keys(body).filter((k) => !known.has(k));
    if (extra.length) violations.push(`${method} with unknown field(s) ${extra.join(", ")}`);
    const lp = body.link_preview_options;
    if (lp !== undefined) {
      if (typeof lp !== "object" || lp === null || Array.isArray(lp)) violations.push(`${method} with link_preview_options ${JSON.stringify(lp)}`);
      else for (const k of Object.keys(lp)) if (!LINK_PREVIEW_FIELDS.has(k)) violations.push(`${method} with link_preview_options.${k}`);
    }
    if (body.disable_notification !== undefined && typeof body.disable_notification !== "boolean") {
      violations.push(`${method} with disable_notification ${JSON.stringify(body.disable_notification)}`);
    }
  };

  /** The visible text of `text` in `parseMode`, or throws Telegram's complaint. */
  const render = (text, parseMode) => (parseMode === "HTML" ? parseTelegramHtml(text) : text);

  /** The live topic `threadId` of `chat`, or undefined. */
  const liveTopic = (chat, threadId) => {
    const t = topics.get(chat)?.get(threadId);
    return t && !t.deleted ? t : undefined;
  };

  /** The request's JSON body, or undefined after answering (and recording) why not. */
  const readBody = (req, raw, res, method) => {
    if (!(req.headers["content-type"] ?? "").startsWith("application/json")) {
      violations.push(`${method} with content-type ${req.headers["content-type"]}`);
    }
    try {
      const body = JSON.parse(raw);
      if (typeof body === "object" && body !== null && !Array.isArray(body)) return body;
    } catch {
      // answered below
    }
    violations.push(`${method} body is not JSON`);
    json(res, 400, { ok: false, error_code: 400, description: "Bad Request: invalid JSON" });
    return undefined;
  };

  /**
   * An inline keyboard as Telegram takes it: rows of buttons, each with a text and
   * a callback_data of 1 to 64 bytes. Returns [[{ text, data }]], or records a
   * violation and returns undefined.
   */
  const keyboardOf = (markup, method) => {
    if (markup === undefined) return undefined;
    const rows = markup?.inline_keyboard;
    const extra = Object.keys(markup ?? {}).filter((k) => k !== "inline_keyboard");
    if (!Array.isArray(rows) || extra.length || rows.some((r) => !Array.isArray(r) || r.length === 0)) {
      violations.push(`${method} with reply_markup ${JSON.stringify(markup)}`);
      return undefined;
    }
    return rows.map((r) => r.map((b) => {
      const fields = Object.keys(b ?? {});
      const bytes = typeof b?.callback_data === "string" ? Buffer.byteLength(b.callback_data) : 0;
      if (typeof b?.text !== "string" || !b.text || bytes < 1 || bytes > 64 || fields.some((f) => !["text", "callback_data"].includes(f))) {
        violations.push(`${method} with button ${JSON.stringify(b)}`);
      }
      return { text: b?.text, data: b?.callback_data };
    }));
  };
  const sameKeyboard = (a, b) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

  function editMessageText(req, raw, res) {
    // A body that is not JSON crashes this method (a violation and a 500), as before.
    const body = parseJson(raw, "editMessageText");
    if (!(req.headers["content-type"] ?? "").startsWith("application/json")) {
      violations.push(`editMessageText with content-type ${req.headers["content-type"]}`);
    }
    const original = messages.find((m) => m.messageId !== undefined && m.messageId === body.message_id);
    if (!original || String(body.chat_id) !== original.chatId) {
      return badRequest(res, `editMessageText of unknown message ${body.message_id}`, "Bad Request: message to edit not found");
    }
    unknownFields(body, EDIT_FIELDS, "editMessageText");
    const attempt = { messageId: original.messageId, chatId: original.chatId, text: body.text, parseMode: body.parse_mode, replyMarkup: body.reply_markup, at: Date.now() };
    editAttempts.push(attempt);
    const answer = (status, description) => {
      attempt.answered = status;
      attempt.description = description;
    };
    if (typeof body.text !== "string" || body.text.length === 0) {
      answer(400, "Bad Request: message text is empty");
      return badRequest(res, "editMessageText without text", "Bad Request: message text is empty");
    }
    if (body.parse_mode !== undefined && body.parse_mode !== "HTML") violations.push(`edit with parse_mode ${body.parse_mode}`);
    let visible;
    try {
      visible = render(body.text, body.parse_mode);
    } catch (e) {
      answer(400, `Bad Request: ${e.message}`);
      return badRequest(res, `edit with HTML Telegram would refuse: ${e.message}`, `Bad Request: ${e.message}`);
    }
    if ([...visible].length > 4096) {
      answer(400, "Bad Request: MESSAGE_TOO_LONG");
      return badRequest(res, `edit to ${[...visible].length} characters`, "Bad Request: MESSAGE_TOO_LONG");
    }
    const retryAfter = refusedByPace(original.chatId, res, attempt.at);
    if (retryAfter) return answer(429, `Too Many Requests: retry after ${retryAfter}`);
    const keyboard = keyboardOf(body.reply_markup, "editMessageText");
    attempt.keyboard = keyboard;
    if (body.text === original.current.text && body.parse_mode === original.current.parseMode && sameKeyboard(keyboard, original.current.keyboard)) {
      // Not modified: Telegram changed nothing, so the slot is given back.
      chatState(original.chatId).accepted.pop();
      chatState(original.chatId).notModified++;
      original.notModified++;
      answer(400, NOT_MODIFIED);
      return json(res, 400, { ok: false, error_code: 400, description: NOT_MODIFIED });
    }
    // Without reply_markup, the edited message keeps no keyboard.
    const edit = { text: body.text, visible, parseMode: body.parse_mode, linkPreviewOptions: body.link_preview_options, keyboard, replyMarkup: body.reply_markup, at: attempt.at };
    original.edits.push(edit);
    original.current = edit;
    chatState(original.chatId).edited++;
    answer(200);
    return json(res, 200, { ok: true, result: { message_id: original.messageId, chat: { id: original.chatId }, date: Math.floor(original.at / 1000), edit_date: Math.floor(edit.at / 1000), text: visible } });
  }

  function createForumTopic(_req, body, res) {
    const chat = String(body.chat_id);
    if (!allowed.has(chat)) return badRequest(res, `createForumTopic in chat ${body.chat_id}`, "Bad Request: chat not found");
    const extra = Object.keys(body).filter((k) => !["chat_id", "name", "icon_color", "icon_custom_emoji_id"].includes(k));
    if (extra.length) violations.push(`createForumTopic with unknown field(s) ${extra.join(", ")}`);
    if (typeof body.name !== "string" || [...body.name].length < 1 || [...body.name].length > 128) {
      return badRequest(res, `createForumTopic named ${JSON.stringify(body.name)}`, "Bad Request: invalid forum topic name");
    }
    if (body.icon_color !== undefined && !TOPIC_COLORS.includes(body.icon_color)) {
      return badRequest(res, `createForumTopic with icon_color ${body.icon_color}`, "Bad Request: invalid icon color");
    }
    if (!forumChats.has(chat)) return json(res, 400, { ok: false, error_code: 400, description: NOT_A_FORUM });
    const topic = addTopic(chat, body.name, body.icon_color);
    return json(res, 200, { ok: true, result: { message_thread_id: topic.threadId, name: topic.name, icon_color: topic.iconColor } });
  }

  function addTopic(chat, name, iconColor) {
    const topic = { threadId: nextId++, name, iconColor: iconColor ?? TOPIC_COLORS[nextColor++ % TOPIC_COLORS.length], deleted: false };
    topics.get(chat).set(topic.threadId, topic);
    return topic;
  }

  function sendMessage(req, raw, res) {
    const body = readBody(req, raw, res, "sendMessage");
    if (!body) return;
    const chat = String(body.chat_id);
    if (!allowed.has(chat)) return badRequest(res, `sendMessage to chat ${body.chat_id}`, "Bad Request: chat not found");
    if (typeof body.text !== "string" || body.text.length === 0) {
      return badRequest(res, "sendMessage without text", "Bad Request: message text is empty");
    }
    unknownFields(body, SEND_FIELDS, "sendMessage");
    if (body.parse_mode !== undefined && body.parse_mode !== "HTML") violations.push(`parse_mode ${body.parse_mode}`);
    const threadId = body.message_thread_id;
    const keyboard = keyboardOf(body.reply_markup, "sendMessage");
    const reply = body.reply_parameters;
    if (reply !== undefined && (!Number.isInteger(reply?.message_id) || Object.keys(reply).some((k) => !["message_id", "chat_id", "allow_sending_without_reply", "quote"].includes(k)))) {
      violations.push(`sendMessage with reply_parameters ${JSON.stringify(reply)}`);
    }
    const record = {
      chatId: chat, threadId, text: body.text, parseMode: body.parse_mode, disableNotification: body.disable_notification,
      linkPreviewOptions: body.link_preview_options, body, at: Date.now(), edits: [], notModified: 0, keyboard, replyTo: reply?.message_id,
    };
    messages.push(record);
    const refuse = (status, description) => {
      record.answered = status;
      record.description = description;
      json(res, status, { ok: false, error_code: status, description });
    };
    if (threadId !== undefined) {
      if (!Number.isInteger(threadId)) violations.push(`message_thread_id ${JSON.stringify(threadId)}`);
      if (!liveTopic(chat, threadId)) {
        chatState(chat).threadNotFound++;
        return refuse(400, THREAD_NOT_FOUND);
      }
    }
    const retryAfter = refusedByPace(chat, res, record.at);
    if (retryAfter) {
      record.answered = 429;
      record.description = `Too Many Requests: retry after ${retryAfter}`;
      return;
    }
    // The slot is taken; an answer other than success gives it back.
    const giveBack = () => chatState(chat).accepted.pop();
    const script = scripts.find((s) => body.text.includes(s.match) && s.responses.length);
    if (script) {
      const r = script.responses.shift();
      record.answered = r.status;
      if (r.status === 200) chatState(chat).sent++;
      else giveBack();
      if (r.status === 429) chatState(chat).refused429++;
      return json(res, r.status, r.body);
    }
    let visible;
    try {
      visible = render(body.text, body.parse_mode);
    } catch (e) {
      giveBack();
      violations.push(`HTML Telegram would refuse: ${e.message}`);
      return refuse(400, `Bad Request: ${e.message}`);
    }
    if ([...visible].length > 4096) {
      giveBack();
      violations.push(`message of ${visible.length} characters`);
      return refuse(400, "Bad Request: message is too long");
    }
    record.answered = 200;
    record.visible = visible;
    record.messageId = nextId++;
    record.current = { text: body.text, visible, parseMode: body.parse_mode, keyboard, replyMarkup: body.reply_markup };
    chatState(chat).sent++;
    const result = { message_id: record.messageId, chat: { id: chat }, date: Math.floor(record.at / 1000), text: visible };
    if (threadId !== undefined) Object.assign(result, { message_thread_id: threadId, is_topic_message: true });
    return json(res, 200, { ok: true, result });
  }

  /** answerCallbackQuery, however it came (`via`: "webhook" or "api"); answers an error or undefined. */
  function answerCallbackQuery(body, via) {
    const extra = Object.keys(body).filter((k) => !["method", "callback_query_id", "text", "show_alert", "url", "cache_time"].includes(k));
    if (extra.length) violations.push(`answerCallbackQuery with unknown field(s) ${extra.join(", ")}`);
    const q = queries.get(body.callback_query_id);
    if (!q || q.answered) {
      violations.push(`answerCallbackQuery of ${q ? "an already answered" : "an unknown"} query ${body.callback_query_id}`);
      return "Bad Request: query is too old and response timeout expired or query ID is invalid";
    }
    if (body.text !== undefined && (typeof body.text !== "string" || [...body.text].length > 200)) violations.push(`answerCallbackQuery with text ${JSON.stringify(body.text)}`);
    q.answered = true;
    answers.push({ callbackQueryId: body.callback_query_id, text: body.text, showAlert: body.show_alert ?? false, via, at: Date.now() });
    return undefined;
  }

  function setupCall(method, body, res) {
    setupCalls.push({ method, body });
    if (method === "getMe") return json(res, 200, { ok: true, result: { id: 4242, is_bot: true, first_name: "Edge", username } });
    if (method === "setWebhook") {
      const extra = Object.keys(body).filter((k) => !["url", "certificate", "ip_address", "max_connections", "allowed_updates", "drop_pending_updates", "secret_token"].includes(k));
      if (extra.length) violations.push(`setWebhook with unknown field(s) ${extra.join(", ")}`);
      if (!/^https:\/\//.test(body.url ?? "")) return json(res, 400, { ok: false, error_code: 400, description: "Bad Request: bad webhook: An HTTPS URL must be provided for webhook" });
      if (body.secret_token !== undefined && !/^[A-Za-z0-9_-]{1,256}$/.test(body.secret_token)) violations.push("setWebhook with a secret_token Telegram refuses");
      if (body.allowed_updates !== undefined && (!Array.isArray(body.allowed_updates) || body.allowed_updates.some((u) => typeof u !== "string"))) violations.push("setWebhook with allowed_updates that are not a list of names");
      return json(res, 200, { ok: true, result: true, description: "Webhook was set" });
    }
    const list = body.commands;
    if (!Array.isArray(list) || !list.length || list.length > 100 || list.some((c) => !/^[a-z0-9_]{1,32}$/.test(c?.command ?? "") || typeof c?.description !== "string" || c.description.length < 1 || c.description.length > 256)) {
      violations.push(`setMyCommands with ${JSON.stringify(list)}`);
      return json(res, 400, { ok: false, error_code: 400, description: "Bad Request: BOT_COMMAND_INVALID" });
    }
    return json(res, 200, { ok: true, result: true });
  }

  const server = await listen(violations, (req, raw, res) => {
    const path = new URL(req.url, "http://x").pathname;
    const m = /^\/bot([^/]+)\/([A-Za-z]+)$/.exec(path);
    const method = m?.[2];
    const known = ["sendMessage", "editMessageText", "createForumTopic", "answerCallbackQuery", "setWebhook", "setMyCommands", "getMe"];
    if (req.method !== "POST" || !known.includes(method)) {
      violations.push(`unexpected ${req.method} ${path.replace(token, "<token>")}`);
      return json(res, 404, { ok: false, error_code: 404, description: "Not Found" });
    }
    if (m[1] !== token) {
      violations.push(`${method} with a wrong bot token`);
      return json(res, 401, { ok: false, error_code: 401, description: "Unauthorized" });
    }
    if (method === "editMessageText") return editMessageText(req, raw, res);
    if (method === "sendMessage") return sendMessage(req, raw, res);
    if (["setWebhook", "setMyCommands", "getMe"].includes(method)) {
      const body = readBody(req, raw, res, method);
      return body && setupCall(method, body, res);
    }
    if (method === "answerCallbackQuery") {
      const body = readBody(req, raw, res, method);
      if (!body) return;
      const error = answerCallbackQuery(body, "api");
      return error ? json(res, 400, { ok: false, error_code: 400, description: error }) : json(res, 200, { ok: true, result: true });
    }
    const body = readBody(req, raw, res, "createForumTopic");
    if (body) createForumTopic(req, body, res);
  });

  /** Every accepted send or edit in each chat, checked against the pace afresh. */
  function paceViolations() {
    const out = [];
    for (const [chat, s] of perChat) {
      for (const w of windowsFor(paceOf, chat)) {
        for (let i = 0; i + w.max < s.accepted.length; i++) {
          if (s.accepted[i + w.max] - s.accepted[i] < w.ms) {
            out.push(`chat ${chat}: ${w.max + 1} accepted within ${s.accepted[i + w.max] - s.accepted[i]} ms (pace ${w.name})`);
          }
        }
      }
    }
    return out;
  }

  const stats1 = (s) => ({
    accepted: s.accepted.length, sent: s.sent, edited: s.edited, refused429: s.refused429,
    notModified: s.notModified, threadNotFound: s.threadNotFound,
  });

  return {
    base: `http://127.0.0.1:${server.address().port}`,
    messages,
    editAttempts,
    violations,
    script(match, responses) {
      scripts.push({ match, responses: [...responses] });
    },
    /** Every request whose text mentions `s`. */
    about(s) {
      return messages.filter((m) => m.text.includes(s));
    },
    /** Messages Telegram accepted that mention `s`. */
    delivered(s) {
      return messages.filter((m) => m.answered === 200 && m.text.includes(s));
    },
    /** Accepted messages whose text, or any applied edit of it, mentions `s` (a digest line). */
    shown(s) {
      return messages.filter((m) => m.answered === 200 && (m.text.includes(s) || m.edits.some((e) => e.text.includes(s))));
    },
    /**
     * The messages accepted in `chat`, in order; only those in topic `threadId` when
     * given (`null`: only those outside any topic).
     */
    inChat(chat, threadId) {
      const inThread = (m) => threadId === undefined || (threadId === null ? m.threadId === undefined : m.threadId === threadId);
      return messages.filter((m) => m.answered === 200 && m.chatId === String(chat) && inThread(m));
    },
    /**
     * Per chat, what it accepted and refused: { accepted (sends and edits that took a
     * slot), sent, edited, refused429, notModified, threadNotFound }; of one chat
     * when `chat` is given (zeros if it saw nothing).
     */
    stats(chat) {
      if (chat !== undefined) return stats1(perChat.get(String(chat)) ?? freshChat());
      return Object.fromEntries([...perChat].map(([c, s]) => [c, stats1(s)]));
    },
    paceViolations,
    /** The topics of forum `chat`: [{ threadId, name, iconColor, deleted }]. */
    topics(chat) {
      return [...(topics.get(String(chat))?.values() ?? [])];
    },
    /** A topic made in forum `chat` (as someone in the chat would); answers its thread id. */
    addTopic(chat, name) {
      if (!topics.has(String(chat))) throw new Error(`chat ${chat} is not one of the fake's forums`);
      return addTopic(String(chat), name).threadId;
    },
    /** Deletes a topic: sends into it answer "message thread not found" from now on. */
    deleteTopic(chat, threadId) {
      const t = topics.get(String(chat))?.get(threadId);
      if (!t) throw new Error(`chat ${chat} has no topic ${threadId}`);
      t.deleted = true;
    },
    async waitFor(s, count = 1, timeoutMs = 15000) {
      const until = Date.now() + timeoutMs;
      while (Date.now() < until) {
        if (this.delivered(s).length >= count) return this.delivered(s);
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`Telegram got ${this.delivered(s).length} of ${count} messages about ${s} within ${timeoutMs} ms`);
    },
    /** The answers to callback queries: { callbackQueryId, text, showAlert, via, at }. */
    answers,
    /** setWebhook, setMyCommands and getMe as they came: { method, body }. */
    setupCalls,
    /** The keyboard message `m` shows now ([[{ text, data }]], or undefined). */
    keyboard(m) {
      return m.current?.keyboard;
    },
    /**
     * The update Telegram sends when `from` ({ id, username, first_name }) presses
     * button `data` on message `m` (one of the bot's messages): a fresh update_id
     * and callback query id.
     */
    press(m, from, data) {
      const id = `q${nextUpdate}`;
      queries.set(id, { answered: false });
      return {
        update_id: nextUpdate++,
        callback_query: {
          id, from: { is_bot: false, first_name: from.username ?? "Someone", ...from }, chat_instance: "e2e",
          message: { message_id: m.messageId, date: Math.floor(m.at / 1000), chat: { id: Number(m.chatId), type: "supergroup" }, text: m.current?.visible },
          data,
        },
      };
    },
    /** The update of a message `from` writes in `chat` (forum topic `threadId`). */
    userMessage(chat, from, text, threadId) {
      const message = {
        message_id: nextUpdate * 10, date: Math.floor(Date.now() / 1000), text,
        from: { is_bot: false, first_name: from.username ?? "Someone", ...from },
        chat: { id: Number(chat), type: "supergroup", title: "Ops" },
      };
      if (text.startsWith("/")) message.entities = [{ type: "bot_command", offset: 0, length: text.split(" ")[0].length }];
      if (threadId !== undefined) Object.assign(message, { message_thread_id: threadId, is_topic_message: true });
      return { update_id: nextUpdate++, message };
    },
    /**
     * What Telegram does with a webhook's response: a body naming a `method` is
     * that call (only answerCallbackQuery is expected there); any other body is
     * ignored.
     */
    fromWebhook(body) {
      if (body?.method === undefined) return;
      if (body.method !== "answerCallbackQuery") {
        violations.push(`webhook response calls ${body.method}`);
        return;
      }
      answerCallbackQuery(body, "webhook");
    },
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }),
  };
}

/** Cloudflare's answer when a rollback crosses a changed secret (wrangler's own tests quote it). */
export const SECRET_CHANGED = Object.freeze({
  code: 10220,
  message: "A secret has changed since this version was active. If you are sure this is ok, add a ?force=true query parameter to allow the rollback. The following secrets have changed: API_KEY",
});

/**
 * The Cloudflare API as the poll and the rollbacks use it, checked the way the API
 * checks requests (token, account, path, body).
 *
 * - `workers`: script name -> its deployments, newest first (or `{ status, body | raw }`
 *   to answer the listing with an error). `GET …/workers/scripts/{s}/deployments`.
 * - `versions`: version id -> `{ number, … }`, served by `GET …/versions/{id}`; a
 *   version the listing names is served too (numbered by its place), anything else
 *   is 404 (code 10225 "version not found").
 * - `POST …/workers/scripts/{s}/deployments` (a rollback): the body must be
 *   `{ strategy: "percentage", versions: [{ version_id, percentage }], annotations? }`
 *   with known versions summing to 100, else 400 and a violation. Recorded in
 *   `rollbacks` ({ script, query, body, answered }). It is answered from
 *   `refuse(script, error)` when one is waiting (a 400 with that error, e.g.
 *   SECRET_CHANGED), else made live: a new deployment first in the list, answered.
 * - `pages`: project name -> its deployments, newest first. `GET
 *   …/pages/projects/{p}/deployments` (`?env=production` filters); `GET
 *   …/pages/projects/{p}` serves `canonical_deployment`: `pagesLive.get(p)` (an id),
 *   else the newest production deployment that succeeded. `POST
 *   …/pages/projects/{p}/deployments/{id}/rollback` (no body) to a successful
 *   production deployment makes it the live one; recorded in `rollbacks` too.
 */
export async function fakeCloudflare({ token, accountId }) {
  const requests = [];
  const violations = [];
  const workers = new Map(); // name -> { status, body } or deployments array
  const pages = new Map();
  const pagesLive = new Map();
  const versions = new Map();
  const refusals = new Map(); // script or project -> [error]
  const rollbacks = [];
  let nextDeployment = 1;
  const envelope = (result, extra = {}) => ({ success: true, errors: [], messages: [], result, ...extra });
  const failure = (code, message) => ({ success: false, errors: [{ code, message }], messages: [], result: null });
  const succeeded = (d) => d.environment === "production" && d.latest_stage?.name === "deploy" && d.latest_stage?.status === "success" && !d.is_skipped;
  const canonical = (name) => {
    const list = pages.get(name) ?? [];
    return list.find((d) => d.id === pagesLive.get(name)) ?? list.find(succeeded) ?? null;
  };
  const versionOf = (script, id) => {
    if (versions.has(id)) return { id, ...versions.get(id) };
    const listed = Array.isArray(workers.get(script)) ? workers.get(script) : [];
    const ids = [...new Set(listed.flatMap((d) => d.versions.map((v) => v.version_id)))].reverse();
    return ids.includes(id) ? { id, number: ids.indexOf(id) + 1, metadata: { source: "wrangler" }, resources: { bindings: [] } } : undefined;
  };
  const refused = (name, res, record) => {
    const error = refusals.get(name)?.shift();
    if (!error) return false;
    record.answered = 400;
    json(res, 400, failure(error.code, error.message));
    return true;
  };

  function rollBackWorker(script, url, raw, req, res) {
    const record = { script, query: url.search, body: undefined, answered: undefined };
    rollbacks.push(record);
    if (!(req.headers["content-type"] ?? "").startsWith("application/json")) violations.push(`rollback of ${script} with content-type ${req.headers["content-type"]}`);
    if (url.search) violations.push(`rollback of ${script} with query ${url.search}`);
    const body = parseJson(raw, `rollback of ${script}`);
    record.body = body;
    const bad = (why) => {
      violations.push(`rollback of ${script}: ${why}`);
      record.answered = 400;
      return json(res, 400, failure(10021, `Invalid deployment: ${why}`));
    };
    const listed = workers.get(script);
    if (!Array.isArray(listed)) return bad("no such Worker");
    const extra = Object.keys(body).filter((k) => !["strategy", "versions", "annotations"].includes(k));
    if (extra.length) return bad(`unknown field(s) ${extra.join(", ")}`);
    if (body.strategy !== "percentage") return bad(`strategy ${JSON.stringify(body.strategy)}`);
    if (!Array.isArray(body.versions) || body.versions.length === 0) return bad("no versions");
    for (const v of body.versions) {
      if (Object.keys(v).some((k) => !["version_id", "percentage"].includes(k)) || typeof v.percentage !== "number") return bad(`version ${JSON.stringify(v)}`);
      if (!versionOf(script, v.version_id)) return bad(`unknown version ${v.version_id}`);
    }
    if (body.versions.reduce((a, v) => a + v.percentage, 0) !== 100) return bad("percentages do not add up to 100");
    const annotations = body.annotations ?? {};
    if (Object.keys(annotations).some((k) => k !== "workers/message")) return bad(`annotations ${JSON.stringify(annotations)}`);
    if (typeof annotations["workers/message"] === "string" && annotations["workers/message"].length > 100) return bad("workers/message is longer than 100 characters");
    if (refused(script, res, record)) return undefined;
    const made = {
      id: `rollback-${nextDeployment++}`, source: "api", strategy: "percentage", author_email: "token@example.com",
      created_on: new Date().toISOString(), annotations: { ...annotations, "workers/triggered_by": "rollback" }, versions: body.versions,
    };
    listed.unshift(made);
    record.answered = 200;
    return json(res, 200, envelope(made));
  }

  function rollBackPages(project, id, raw, res) {
    const record = { project, deployment: id, body: raw || undefined, answered: undefined };
    rollbacks.push(record);
    if (raw) violations.push(`Pages rollback of ${project} with a body`);
    const target = (pages.get(project) ?? []).find((d) => d.id === id);
    if (!target || !succeeded(target)) {
      violations.push(`Pages rollback of ${project} to ${id}, not a successful production deployment`);
      record.answered = 400;
      return json(res, 400, failure(8000035, "You can only rollback to a successful production deployment."));
    }
    if (refused(project, res, record)) return undefined;
    pagesLive.set(project, id);
    record.answered = 200;
    return json(res, 200, envelope(target));
  }

  const server = await listen(violations, (req, raw, res) => {
    const url = new URL(req.url, "http://x");
    const path = url.pathname;
    requests.push(`${req.method} ${path}${url.search}`);
    if (req.headers.authorization !== `Bearer ${token}`) {
      violations.push(`${path} without the API token`);
      return json(res, 401, failure(10000, "Authentication error"));
    }
    const prefix = `/client/v4/accounts/${accountId}`;
    const inAccount = path.startsWith(`${prefix}/`);
    const rest = inAccount ? path.slice(prefix.length) : "";
    let m;
    let entry;
    if (req.method === "GET" && (m = rest.match(/^\/workers\/scripts\/([^/]+)\/deployments$/))) {
      entry = workers.get(m[1]);
      if (Array.isArray(entry)) return json(res, 200, envelope({ deployments: entry }));
    } else if (req.method === "GET" && (m = rest.match(/^\/workers\/scripts\/([^/]+)\/versions\/([^/]+)$/))) {
      const version = versionOf(m[1], m[2]);
      if (version) return json(res, 200, envelope(version));
      return json(res, 404, failure(10225, "The requested version was not found."));
    } else if (req.method === "POST" && (m = rest.match(/^\/workers\/scripts\/([^/]+)\/deployments$/))) {
      return rollBackWorker(m[1], url, raw, req, res);
    } else if (req.method === "GET" && (m = rest.match(/^\/pages\/projects\/([^/]+)\/deployments$/))) {
      entry = pages.get(m[1]);
      const env = url.searchParams.get("env");
      if ([...url.searchParams.keys()].some((k) => k !== "env")) violations.push(`GET ${path} with query ${url.search}`);
      if (Array.isArray(entry)) {
        const list = env ? entry.filter((d) => d.environment === env) : entry;
        return json(res, 200, envelope(list, { result_info: { page: 1, per_page: 25, count: list.length, total_count: list.length } }));
      }
    } else if (req.method === "GET" && (m = rest.match(/^\/pages\/projects\/([^/]+)$/))) {
      if (pages.has(m[1])) return json(res, 200, envelope({ name: m[1], subdomain: `${m[1]}.pages.dev`, production_branch: "main", canonical_deployment: canonical(m[1]), latest_deployment: pages.get(m[1])[0] ?? null }));
      return json(res, 404, failure(8000007, "Project not found. The specified project name does not match any of your existing projects."));
    } else if (req.method === "POST" && (m = rest.match(/^\/pages\/projects\/([^/]+)\/deployments\/([^/]+)\/rollback$/))) {
      return rollBackPages(m[1], m[2], raw, res);
    } else {
      violations.push(`unexpected ${req.method} ${path}`);
      return json(res, 404, failure(7003, "No route for that URI"));
    }
    if (entry && entry.status) {
      res.writeHead(entry.status, { "content-type": "application/json" });
      return res.end(entry.raw ?? JSON.stringify(entry.body));
    }
    return json(res, 404, failure(10007, "This Worker does not exist on your account."));
  });
  return {
    base: `http://127.0.0.1:${server.address().port}/client/v4`,
    requests,
    violations,
    workers,
    pages,
    pagesLive,
    versions,
    rollbacks,
    /** The next rollback of `name` (a script or a project) is refused with `error` ({ code, message }). */
    refuse(name, error = SECRET_CHANGED) {
      if (!refusals.has(name)) refusals.set(name, []);
      refusals.get(name).push(error);
    },
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }),
  };
}

/**
 * GitHub's REST API as the deploy flow uses it. Checks the headers GitHub requires
 * on every request; answers from state the test can inspect and steer.
 */
export async function fakeGithub({ token, appId, publicKey, appSlug = "edge-notifier-e2e", tokenUser = "edge-deployer" }) {
  const requests = [];
  const violations = [];
  const state = {
    nextDeployment: 1000, dispatchRunId: null, compare: new Map(), compareStatus: new Map(), parents: new Map(), pulls: new Map(), exchanges: [], issued: new Set(),
    // Pull request comments (id -> { repo, number, body, edits, author }), deployments
    // (id -> { repo, environment, transient, statuses }), deleted environments.
    comments: new Map(), nextComment: 5000, deployments: new Map(), deletedEnvironments: [],
    // Repositories the orchestration works in (name -> { defaultBranch, head,
    // branches: Map(name -> sha), files: Map("branch:path" -> text), pulls: [] }),
    // GraphQL mutations seen, workflow dispatches.
    repos: new Map(), nextPull: 100, graphql: [], dispatches: [],
    // Deployment protection rules waiting for this App's review
    // ("repo:run:environment" -> the installation whose event asked), the reviews it
    // took ({ repo, run, environment, state, comment, token }), and statuses to
    // answer the next reviews with instead (422 for a run cancelled meanwhile, 502).
    pendingReviews: new Map(), reviews: [], reviewAnswers: [],
  };
  /** A protection rule of `environment` now waits in run `run` of `repo`, for `installation`. */
  state.awaitReview = (repo, run, environment, installation) => {
    state.pendingReviews.set(`${repo}:${run}:${environment}`, installation);
  };
  /** Adds a repository with `files` on its default branch `main`. */
  state.addRepo = (name, files = {}) => {
    const head = createHash("sha1").update(name).digest("hex");
    const repo = { defaultBranch: "main", head, branches: new Map([["main", head]]), files: new Map(), pulls: [] };
    for (const [path, text] of Object.entries(files)) repo.files.set(`main:${path}`, text);
    state.repos.set(name, repo);
    return repo;
  };
  /** A comment someone (`author`, a login) wrote on `repo`#`number`; returns its id. */
  state.addComment = (repo, number, body, author) => {
    const id = state.nextComment++;
    state.comments.set(id, { repo, number, body, edits: 0, author });
    return id;
  };
  // Who a token speaks for, as GitHub answers it: the App's bot for an
  // installation token, the token's user for the personal token.
  const botLogin = `${appSlug}[bot]`;
  const authorOf = (bearer) => (bearer === token ? tokenUser : botLogin);
  const blobSha = (text) => createHash("sha1").update(`blob ${Buffer.byteLength(text)}\0${text}`).digest("hex");
  if (token) state.issued.add(token);
  const server = await listen(violations, (req, raw, res) => {
    const url = new URL(req.url, "http://x");
    const path = url.pathname;
    let body = null;
    if (raw) {
      try { body = JSON.parse(raw); } catch { violations.push(`${path}: body is not JSON`); }
    }
    requests.push({ method: req.method, path, search: url.search, body });
    for (const [h, want] of [["accept", "application/vnd.github+json"], ["x-github-api-version", "2022-11-28"]]) {
      if (req.headers[h] !== want) violations.push(`${req.method} ${path}: ${h} is ${req.headers[h] === undefined ? "missing" : "wrong"}`);
    }
    if (!req.headers["user-agent"]) violations.push(`${req.method} ${path}: no User-Agent`);
    const bearer = (req.headers.authorization ?? "").replace(/^Bearer /, "");
    let m;
    if (req.method === "POST" && (m = path.match(/^\/app\/installations\/(\d+)\/access_tokens$/))) {
      // The App JWT: RS256 over header.claims, verified with the App's public key.
      const problem = verifyAppJwt(bearer, appId, publicKey);
      if (problem) {
        violations.push(`installation token asked with ${problem}`);
        return json(res, 401, { message: "A JSON web token could not be decoded" });
      }
      const issued = `ghs_installation_${m[1]}_${state.exchanges.length + 1}`;
      // What was asked for (`{}`, or the repositories and permissions of a scoped token).
      state.exchanges.push({ installation: Number(m[1]), at: Date.now(), token: issued, body });
      state.issued.add(issued);
      return json(res, 201, { token: issued, expires_at: new Date(Date.now() + 3600_000).toISOString() });
    }
    if ((m = path.match(/^\/app\/hook\/deliveries(?:\/(\d+)\/attempts)?$/))) {
      const problem = verifyAppJwt(bearer, appId, publicKey);
      if (problem) {
        violations.push(`hook deliveries asked with ${problem}`);
        return json(res, 401, { message: "A JSON web token could not be decoded" });
      }
      if (req.method === "GET" && !m[1]) return json(res, 200, state.hookDeliveries ?? []);
      if (req.method === "POST" && m[1]) {
        state.redeliveries = [...(state.redeliveries ?? []), Number(m[1])];
        return json(res, 202, {});
      }
    }
    if (req.method === "GET" && path === "/app") {
      const problem = verifyAppJwt(bearer, appId, publicKey);
      if (problem) {
        violations.push(`GET /app with ${problem}`);
        return json(res, 401, { message: "A JSON web token could not be decoded" });
      }
      return json(res, 200, { id: Number(appId), slug: appSlug, name: "Edge Notifier e2e" });
    }
    if (!state.issued.has(bearer)) {
      violations.push(`${req.method} ${path}: not authenticated with an issued token`);
      return json(res, 401, { message: "Bad credentials" });
    }
    if (req.method === "POST" && (m = path.match(/^\/repos\/([^/]+\/[^/]+)\/actions\/runs\/(\d+)\/deployment_protection_rule$/))) {
      // Only the App that is the rule reviews, with a token of the installation the
      // event came through, once per waiting rule.
      const [repo, run] = [m[1], Number(m[2])];
      const environment = body?.environment_name;
      const key = `${repo}:${run}:${environment}`;
      const installation = state.pendingReviews.get(key);
      if (!["approved", "rejected"].includes(body?.state) || typeof environment !== "string" || typeof body?.comment !== "string") {
        violations.push(`review of run ${run} with ${JSON.stringify(body)}`);
        return json(res, 422, { message: "Invalid request." });
      }
      if (installation === undefined) {
        violations.push(`review of ${key}, which waits for none`);
        return json(res, 422, { message: "No pending deployment requests to approve or reject" });
      }
      if (!bearer.startsWith(`ghs_installation_${installation}_`)) {
        violations.push(`review of ${key} with ${bearer === token ? "the personal token" : `a token not of installation ${installation}`}`);
        return json(res, 403, { message: "Resource not accessible by integration" });
      }
      const answer = state.reviewAnswers.shift();
      if (answer === 422) state.pendingReviews.delete(key);
      if (answer) return json(res, answer, { message: answer === 422 ? "No pending deployment requests to approve or reject" : "Server Error" });
      state.pendingReviews.delete(key);
      state.reviews.push({ repo, run, environment, state: body.state, comment: body.comment, token: bearer });
      res.writeHead(204);
      return res.end();
    }
    if (req.method === "POST" && (m = path.match(/^\/repos\/([^/]+\/[^/]+)\/deployments$/))) {
      if (!/^[0-9a-f]{40}$/.test(body?.ref ?? "")) violations.push(`deployment ref ${body?.ref}`);
      if (body?.auto_merge !== false || !Array.isArray(body?.required_contexts) || body.required_contexts.length) {
        violations.push("deployment without auto_merge false and required_contexts []");
      }
      const preview = /^pr-\d+$/.test(body.environment ?? "");
      if (preview && (body.transient_environment !== true || body.production_environment !== false)) {
        violations.push(`preview deployment ${body.environment} not transient, or marked production`);
      }
      const id = state.nextDeployment++;
      state.deployments.set(id, { repo: m[1], environment: body.environment, transient: body.transient_environment, ref: body.ref, statuses: [] });
      return json(res, 201, { id, ref: body.ref, environment: body.environment });
    }
    if (req.method === "POST" && (m = path.match(/^\/repos\/([^/]+\/[^/]+)\/deployments\/(\d+)\/statuses$/))) {
      if (!["in_progress", "success", "failure", "inactive", "queued", "error"].includes(body?.state)) violations.push(`status ${body?.state}`);
      state.deployments.get(Number(m[2]))?.statuses.push({ state: body.state, environment_url: body.environment_url });
      return json(res, 201, { id: 1, state: body.state });
    }
    if (req.method === "POST" && (m = path.match(/^\/repos\/([^/]+\/[^/]+)\/actions\/workflows\/([^/]+)\/dispatches$/))) {
      if (typeof body?.ref !== "string") violations.push("dispatch without ref");
      state.dispatches.push({ repo: m[1], workflow: m[2], ref: body.ref, inputs: body.inputs });
      if (state.dispatchRunId) return json(res, 200, { workflow_run_id: state.dispatchRunId, run_url: "x", html_url: "y" });
      res.writeHead(204);
      return res.end();
    }
    if (req.method === "GET" && (m = path.match(/^\/repos\/([^/]+\/[^/]+)\/compare\/([0-9a-f]+)\.\.\.([0-9a-f]+)$/))) {
      // `compare` holds a range's commits (paged), `compareStatus` how head relates
      // to base: "ahead" | "behind" | "identical" | "diverged", or
      // { failures: n, status } to answer 502 n times first.
      const key = `${m[2]}...${m[3]}`;
      const all = state.compare.get(key);
      let status = state.compareStatus.get(key);
      if (typeof status === "object" && status !== null) {
        if (status.failures > 0) {
          status.failures -= 1;
          return json(res, 502, { message: "Server Error" });
        }
        status = status.status;
      }
      if (!all && !status) {
        violations.push(`compare ${key} the test did not set up`);
        return json(res, 404, { message: "Not Found" });
      }
      if (!all) return json(res, 200, { status, ahead_by: 0, behind_by: 0, total_commits: 0, commits: [] });
      const perPage = Number(url.searchParams.get("per_page") ?? 250);
      const page = Number(url.searchParams.get("page") ?? 1);
      const slice = all.slice((page - 1) * perPage, page * perPage);
      const headers = { "content-type": "application/json" };
      if (page * perPage < all.length) {
        const next = new URL(req.url, `http://127.0.0.1:${server.address().port}`);
        next.searchParams.set("page", String(page + 1));
        headers.link = `<${next.href}>; rel="next"`;
      }
      res.writeHead(200, headers);
      return res.end(JSON.stringify({ status: status ?? "ahead", total_commits: all.length, commits: slice }));
    }
    if (req.method === "GET" && (m = path.match(/^\/repos\/([^/]+\/[^/]+)\/commits\/([0-9a-f]{40})$/))) {
      return json(res, 200, { sha: m[2], parents: state.parents.get(m[2]) ?? [{ sha: "0".repeat(40) }] });
    }
    if (req.method === "GET" && (m = path.match(/^\/repos\/([^/]+\/[^/]+)\/commits\/([0-9a-f]{40})\/pulls$/))) {
      return json(res, 200, state.pulls.get(m[2]) ?? []);
    }
    if (req.method === "POST" && path === "/graphql") {
      const id = body?.variables?.id;
      const pull = [...state.repos.values()].flatMap((r) => r.pulls).find((p) => p.node_id === id);
      const mutation = /enablePullRequestAutoMerge|mergePullRequest/.exec(body?.query ?? "")?.[0];
      if (!pull || !mutation || !["MERGE", "SQUASH", "REBASE"].includes(body.variables.method)) {
        violations.push(`GraphQL ${mutation ?? "query"} for ${id}`);
        return json(res, 200, { data: null, errors: [{ type: "NOT_FOUND", message: `Could not resolve to a node with the global id of '${id}'` }] });
      }
      state.graphql.push({ mutation, number: pull.number, repo: pull.repo, method: body.variables.method });
      pull.autoMerge = body.variables.method;
      return json(res, 200, { data: { [mutation]: { clientMutationId: null } } });
    }
    const repoPath = path.match(/^\/repos\/([^/]+\/[^/]+)(\/.*)?$/);
    const repo = repoPath && state.repos.get(repoPath[1]);
    if (repo) {
      const [name, rest = ""] = [repoPath[1], repoPath[2]];
      if (req.method === "GET" && rest === "") return json(res, 200, { full_name: name, default_branch: repo.defaultBranch });
      if (req.method === "GET" && (m = rest.match(/^\/branches\/(.+)$/))) {
        const sha = repo.branches.get(m[1]);
        return sha ? json(res, 200, { name: m[1], commit: { sha } }) : json(res, 404, { message: "Branch not found" });
      }
      if (req.method === "POST" && rest === "/git/refs") {
        const branch = (body?.ref ?? "").replace(/^refs\/heads\//, "");
        if (body?.sha !== repo.head) violations.push(`${name}: branch ${branch} made from ${body?.sha}, not the default branch's head`);
        if (repo.branches.has(branch)) return json(res, 422, { message: "Reference already exists" });
        repo.branches.set(branch, body.sha);
        return json(res, 201, { ref: body.ref, object: { sha: body.sha } });
      }
      if ((m = rest.match(/^\/contents\/(.+)$/))) {
        const file = m[1];
        if (req.method === "GET") {
          const at = url.searchParams.get("ref") ?? repo.defaultBranch;
          const text = repo.files.get(`${at}:${file}`) ?? repo.files.get(`${repo.defaultBranch}:${file}`);
          if (text === undefined) return json(res, 404, { message: "Not Found" });
          return json(res, 200, { type: "file", encoding: "base64", content: Buffer.from(text).toString("base64"), sha: blobSha(text), path: file });
        }
        if (req.method === "PUT") {
          const branch = body?.branch;
          if (!repo.branches.has(branch) || branch === repo.defaultBranch) {
            violations.push(`${name}: contents written to ${branch}`);
            return json(res, 422, { message: "Branch not found" });
          }
          const current = repo.files.get(`${branch}:${file}`) ?? repo.files.get(`${repo.defaultBranch}:${file}`);
          if ((current === undefined) !== (body.sha === undefined) || (current !== undefined && body.sha !== blobSha(current))) {
            violations.push(`${name}: ${file} written with sha ${body.sha}`);
            return json(res, 409, { message: `${file} does not match ${body.sha}` });
          }
          if (typeof body.message !== "string" || !body.message) violations.push(`${name}: ${file} written without a message`);
          const text = Buffer.from(body.content ?? "", "base64").toString("utf8");
          repo.files.set(`${branch}:${file}`, text);
          repo.branches.set(branch, createHash("sha1").update(`${branch}:${file}:${text}`).digest("hex"));
          return json(res, current === undefined ? 201 : 200, { content: { path: file, sha: blobSha(text) } });
        }
      }
      if ((m = rest.match(/^\/pulls$/))) {
        if (req.method === "GET") {
          const head = url.searchParams.get("head") ?? "";
          const state_ = url.searchParams.get("state") ?? "open";
          return json(res, 200, repo.pulls.filter((p) => `${name.split("/")[0]}:${p.head.ref}` === head && (state_ === "all" || p.state === state_)));
        }
        if (req.method === "POST") {
          if (!repo.branches.has(body?.head) || body?.base !== repo.defaultBranch || !body?.title) {
            violations.push(`${name}: PR from ${body?.head} to ${body?.base}`);
            return json(res, 422, { message: "Validation Failed" });
          }
          if (repo.pulls.some((p) => p.head.ref === body.head && p.state === "open")) {
            return json(res, 422, { message: "Validation Failed", errors: [{ message: `A pull request already exists for ${body.head}.` }] });
          }
          const number = state.nextPull++;
          const pull = {
            number, state: "open", title: body.title, body: body.body, repo: name,
            node_id: `PR_kw${number}`, html_url: `https://github.com/${name}/pull/${number}`,
            head: { ref: body.head, sha: repo.branches.get(body.head) }, base: { ref: body.base, sha: repo.head },
          };
          repo.pulls.push(pull);
          return json(res, 201, pull);
        }
      }
    }
    if (req.method === "GET" && path === "/user") {
      // An installation token has no user: GitHub refuses it.
      if (bearer !== token) {
        violations.push("GET /user with an installation token");
        return json(res, 403, { message: "Resource not accessible by integration" });
      }
      return json(res, 200, { login: tokenUser, id: 4242, type: "User" });
    }
    if ((m = path.match(/^\/repos\/([^/]+\/[^/]+)\/issues\/(\d+)\/comments$/))) {
      const [repo, number] = [m[1], Number(m[2])];
      if (req.method === "GET") {
        const perPage = Number(url.searchParams.get("per_page") ?? 30);
        const list = [...state.comments].filter(([, c]) => c.repo === repo && c.number === number);
        return json(res, 200, list.slice(0, perPage).map(([id, c]) => ({ id, body: c.body, user: { login: c.author } })));
      }
      if (req.method === "POST") {
        if (typeof body?.body !== "string" || !body.body) violations.push(`comment on #${number} without a body`);
        const id = state.addComment(repo, number, body.body, authorOf(bearer));
        return json(res, 201, { id, body: body.body, user: { login: authorOf(bearer) } });
      }
    }
    if (req.method === "PATCH" && (m = path.match(/^\/repos\/([^/]+\/[^/]+)\/issues\/comments\/(\d+)$/))) {
      const c = state.comments.get(Number(m[2]));
      if (!c || c.repo !== m[1]) return json(res, 404, { message: "Not Found" });
      // The Worker edits only the comments it wrote.
      if (c.author !== authorOf(bearer)) violations.push(`edit of ${c.author}'s comment ${m[2]} as ${authorOf(bearer)}`);
      if (typeof body?.body !== "string" || !body.body) violations.push(`comment edit without a body`);
      c.body = body.body;
      c.edits++;
      return json(res, 200, { id: Number(m[2]), body: c.body });
    }
    if (req.method === "DELETE" && (m = path.match(/^\/repos\/([^/]+\/[^/]+)\/environments\/([^/]+)$/))) {
      state.deletedEnvironments.push(`${m[1]}:${decodeURIComponent(m[2])}`);
      res.writeHead(204);
      return res.end();
    }
    violations.push(`unexpected ${req.method} ${path}`);
    return json(res, 404, { message: "Not Found" });
  });
  return {
    base: `http://127.0.0.1:${server.address().port}`,
    requests,
    violations,
    state,
    /** The comments on one pull request. */
    commentsOn(repo, number) {
      return [...state.comments.values()].filter((c) => c.repo === repo && c.number === number);
    },
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }),
  };
}

function verifyAppJwt(jwt, appId, publicKey) {
  if (!appId || !publicKey) return "no App configured in the fake";
  const parts = jwt.split(".");
  if (parts.length !== 3) return "a token that is not a JWT";
  const header = JSON.parse(Buffer.from(parts[0], "base64url").toString());
  const claims = JSON.parse(Buffer.from(parts[1], "base64url").toString());
  if (header.alg !== "RS256") return `alg ${header.alg}`;
  const ok = cryptoVerify("RSA-SHA256", Buffer.from(`${parts[0]}.${parts[1]}`), publicKey, Buffer.from(parts[2], "base64url"));
  if (!ok) return "a signature the public key does not verify";
  const now = Math.floor(Date.now() / 1000);
  if (String(claims.iss) !== String(appId)) return `iss ${claims.iss}`;
  if (!(claims.iat <= now + 60) || !(claims.exp > now) || claims.exp - claims.iat > 600) return "bad iat/exp";
  return null;
}

/**
 * A deploy hook and a health endpoint whose answers the test sets. The hook is
 * posted JSON naming the app and the commit, as the Worker promises.
 */
export async function fakeTarget() {
  const hooks = [];
  const health = [];
  const violations = [];
  const state = { hookStatus: 200, healthStatus: 200, healthDelayMs: 0, failHookFor: new Set() };
  const server = await listen(violations, async (req, raw, res) => {
    const path = new URL(req.url, "http://x").pathname;
    if (req.method === "POST" && path === "/hook") {
      if (!(req.headers["content-type"] ?? "").startsWith("application/json")) {
        violations.push(`deploy hook with content-type ${req.headers["content-type"]}`);
      }
      const body = parseJson(raw, "deploy hook");
      if (typeof body?.app !== "string" || !/^[0-9a-f]{40}$/.test(body?.sha ?? "")) {
        violations.push(`deploy hook for app ${body?.app} at ${body?.sha}`);
      }
      hooks.push(body);
      const status = state.failHookFor.has(body?.sha) ? 422 : state.hookStatus;
      return json(res, status, { ok: status < 300 });
    }
    if (req.method === "GET" && path === "/health") {
      health.push(Date.now());
      if (state.healthDelayMs) await new Promise((r) => setTimeout(r, state.healthDelayMs));
      res.writeHead(state.healthStatus, { "content-type": "text/plain" });
      return res.end(state.healthStatus < 300 ? "ok" : "down");
    }
    violations.push(`unexpected ${req.method} ${path}`);
    return json(res, 404, {});
  });
  return {
    base: `http://127.0.0.1:${server.address().port}`, hooks, health, state, violations,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }),
  };
}

/** The Fly.io Machines API for one app's machines; checks the token on every call. */
export async function fakeFly({ token }) {
  const requests = [];
  const violations = [];
  const machines = new Map(); // app -> [{ id, config }]
  // Apps made through the API (production targets' apps are only in `machines`),
  // their IP assignments, and what to break: { createMachine: { status, error } }.
  const apps = new Map(); // name -> { org, ips: [] }
  const state = { fail: {}, nextMachine: 1 };
  const server = await listen(violations, (req, raw, res) => {
    const url = new URL(req.url, "http://x");
    const body = raw ? parseJson(raw, `${req.method} ${url.pathname}`) : null;
    requests.push({ method: req.method, path: url.pathname, search: url.search, body });
    if (req.headers.authorization !== `Bearer ${token}`) {
      violations.push(`${req.method} ${url.pathname} without the Fly token`);
      return json(res, 401, { error: "unauthorized" });
    }
    let m;
    if (req.method === "POST" && url.pathname === "/v1/apps") {
      if (!/^[a-z][a-z0-9-]{0,62}$/.test(body?.app_name ?? "") || !body?.org_slug) {
        violations.push(`app creation with name ${body?.app_name} org ${body?.org_slug}`);
        return json(res, 400, { error: "invalid app" });
      }
      if (apps.has(body.app_name)) return json(res, 422, { error: `app name "${body.app_name}" is already taken` });
      apps.set(body.app_name, { org: body.org_slug, ips: [] });
      return json(res, 201, { id: `app-${body.app_name}`, created_at: Date.now() });
    }
    if ((m = url.pathname.match(/^\/v1\/apps\/([^/]+)$/)) && ["GET", "DELETE"].includes(req.method)) {
      if (!apps.has(m[1])) return json(res, 404, { error: "app not found" });
      if (req.method === "GET") return json(res, 200, { name: m[1], organization: { slug: apps.get(m[1]).org } });
      apps.delete(m[1]);
      machines.delete(m[1]);
      return json(res, 202, {});
    }
    if ((m = url.pathname.match(/^\/v1\/apps\/([^/]+)\/ip_assignments$/))) {
      const app = apps.get(m[1]);
      if (!app) return json(res, 404, { error: "app not found" });
      if (req.method === "GET") return json(res, 200, { ips: app.ips });
      if (req.method === "POST") {
        if (!["shared_v4", "v6"].includes(body?.type)) violations.push(`ip assignment of type ${body?.type}`);
        app.ips.push({ type: body.type, ip: body.type === "v6" ? "2a09::1" : "66.241.124.1" });
        return json(res, 200, app.ips.at(-1));
      }
    }
    if (req.method === "GET" && (m = url.pathname.match(/^\/v1\/apps\/([^/]+)\/machines$/))) {
      return json(res, 200, machines.get(m[1]) ?? []);
    }
    if (req.method === "POST" && (m = url.pathname.match(/^\/v1\/apps\/([^/]+)\/machines$/))) {
      if (!apps.has(m[1])) return json(res, 404, { error: "app not found" });
      const c = body?.config;
      if (typeof c?.image !== "string" || !Array.isArray(c?.services) || typeof c?.env !== "object") {
        violations.push(`machine for ${m[1]} without image, services or env`);
        return json(res, 400, { error: "bad config" });
      }
      if (state.fail.createMachine) return json(res, state.fail.createMachine.status, { error: state.fail.createMachine.error });
      const machine = { id: `m-${m[1]}-${state.nextMachine++}`, config: c, region: body.region, state: "created" };
      machines.set(m[1], [...(machines.get(m[1]) ?? []), machine]);
      return json(res, 200, machine);
    }
    if (req.method === "POST" && (m = url.pathname.match(/^\/v1\/apps\/([^/]+)\/machines\/([^/]+)$/))) {
      const machine = (machines.get(m[1]) ?? []).find((x) => x.id === m[2]);
      if (!machine || typeof body?.config?.image !== "string") {
        violations.push(`update of ${m[2]} without a machine or an image`);
        return json(res, 400, { error: "bad request" });
      }
      machine.config = body.config;
      return json(res, 200, { id: machine.id, config: machine.config, state: "replacing" });
    }
    if (req.method === "GET" && (m = url.pathname.match(/^\/v1\/apps\/([^/]+)\/machines\/([^/]+)\/wait$/))) {
      if (url.searchParams.get("state") !== "started") violations.push(`wait for ${url.searchParams.get("state")}`);
      return json(res, 200, { ok: true });
    }
    violations.push(`unexpected ${req.method} ${url.pathname}`);
    return json(res, 404, { error: "not found" });
  });
  return { base: `http://127.0.0.1:${server.address().port}`, requests, violations, machines, apps, state, close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }) };
}

/**
 * Cloudflare Access for one team: key pairs made here, the team's JWKS served at
 * `/cdn-cgi/access/certs` (the keys in `served`, which a test may change to
 * rotate), every request recorded, anything else a violation. `token()` signs a
 * JWT the way Access does (RS256, `kid` in the header) with any of the keys,
 * served or not.
 */
export async function fakeAccess({ team, aud }) {
  const keys = new Map();
  const makeKey = (kid) => {
    const pair = generateKeyPairSync("rsa", { modulusLength: 2048 });
    keys.set(kid, pair);
    return pair;
  };
  makeKey("key-1");
  makeKey("key-2");
  const served = ["key-1"];
  const requests = [];
  const violations = [];
  const server = await listen(violations, async (req, _raw, res) => {
    const path = new URL(req.url, "http://x").pathname;
    requests.push(`${req.method} ${path}`);
    if (req.method === "GET" && path === "/cdn-cgi/access/certs") {
      const jwks = served.map((kid) => ({ kid, alg: "RS256", use: "sig", ...keys.get(kid).publicKey.export({ format: "jwk" }) }));
      return json(res, 200, { keys: jwks, public_cert: { kid: served[0], cert: "-----BEGIN CERTIFICATE-----" }, public_certs: [] });
    }
    violations.push(`unexpected ${req.method} ${path}`);
    return json(res, 404, {});
  });
  const b64 = (v) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");
  const now = () => Math.floor(Date.now() / 1000);
  return {
    base: `http://127.0.0.1:${server.address().port}`,
    certsUrl: `http://127.0.0.1:${server.address().port}/cdn-cgi/access/certs`,
    requests,
    violations,
    served,
    makeKey,
    /** The certs fetches so far. */
    fetches: () => requests.filter((r) => r === "GET /cdn-cgi/access/certs").length,
    /** A token as Access issues it, with `claims` over the defaults; `signWith` forges. */
    token({ email = "dev@example.com", kid = "key-1", signWith = kid, claims = {} } = {}) {
      const t = now();
      const body = {
        aud: [aud], email, exp: t + 3600, iat: t - 5, nbf: t - 5, iss: `https://${team}`,
        type: "app", identity_nonce: "e2e-nonce", sub: `sub-${email}`, country: "NL", ...claims,
      };
      const input = `${b64({ alg: "RS256", kid, typ: "JWT" })}.${b64(body)}`;
      const signature = cryptoSign("sha256", Buffer.from(input), keys.get(signWith).privateKey);
      return `${input}.${signature.toString("base64url")}`;
    },
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }),
  };
}
