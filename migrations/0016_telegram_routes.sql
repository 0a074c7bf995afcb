-- Telegram delivery for a busy team: routes, one delivery row per notification and
-- destination, per-chat pacing, forum topics and digests.

-- Routes, tried in `position` order (ties by name); the first match wins unless it
-- says `continue`. `definition` is the validated route as JSON
-- (edge_core::routes::Route); TELEGRAM_CHAT_ID stays the default route after them.
CREATE TABLE telegram_routes (
  name        TEXT    PRIMARY KEY,
  position    INTEGER NOT NULL,
  definition  TEXT    NOT NULL,
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL
);
CREATE INDEX telegram_routes_by_position ON telegram_routes (position, name);

-- A notification's message to one destination: sent exactly once, retried on its
-- own. `thread` is '' (the chat itself), 'auto' (the project's forum topic) or a
-- topic id; `destination` is the destination as JSON (silent, link preview,
-- template, pace).
-- pending → (waiting for its slot) → sending → sent | retrying → … | failed;
-- digested (waiting in digest `digest_id`) → sent (in the digest's message);
-- not_sent (Telegram is not configured).
CREATE TABLE telegram_deliveries (
  id               INTEGER PRIMARY KEY AUTOINCREMENT,
  notification_id  INTEGER NOT NULL,
  route            TEXT    NOT NULL,
  chat_id          TEXT    NOT NULL,
  thread           TEXT    NOT NULL DEFAULT '',
  -- Where it went when that differs: the topic made for 'auto', or '' when
  -- Telegram refused the topic and it went to the chat itself.
  thread_sent      TEXT,
  destination      TEXT    NOT NULL,
  status           TEXT    NOT NULL CHECK (status IN
                     ('pending', 'waiting', 'sending', 'retrying', 'digested', 'sent', 'failed', 'not_sent')),
  -- Failed attempts so far (a 429 or a wait for the pace is not one).
  attempts         INTEGER NOT NULL DEFAULT 0,
  -- The pace slot this row holds (ms since the epoch), once it has taken one.
  slot_at          INTEGER,
  message_id       INTEGER,
  digest_id        INTEGER,
  last_error       TEXT,
  next_attempt_at  INTEGER,
  claimed_at       INTEGER,
  created_at       INTEGER NOT NULL,
  updated_at       INTEGER NOT NULL,
  UNIQUE (notification_id, chat_id, thread)
);
CREATE INDEX telegram_deliveries_by_status ON telegram_deliveries (status, next_attempt_at);

-- Per chat: until when Telegram told us to wait (its 429 `retry_after`).
CREATE TABLE telegram_chats (
  chat_id        TEXT    PRIMARY KEY,
  blocked_until  INTEGER NOT NULL DEFAULT 0
);

-- The pace: every send or edit into a chat first takes the chat's next free slot,
-- in one statement, so the limits hold across isolates and batches. Slots older
-- than a minute are pruned.
CREATE TABLE telegram_slots (
  chat_id  TEXT    NOT NULL,
  at       INTEGER NOT NULL
);
CREATE INDEX telegram_slots_by_chat ON telegram_slots (chat_id, at);

-- `topic: "auto"`: the forum topic made for a project in a chat. A row with no
-- thread id is a creation in progress (claimed at `claimed_at`).
CREATE TABLE telegram_topics (
  chat_id     TEXT    NOT NULL,
  project     TEXT    NOT NULL,
  thread_id   INTEGER,
  claimed_at  INTEGER NOT NULL,
  PRIMARY KEY (chat_id, project)
);

-- A digest: one message for a burst into one destination, edited in place as more
-- arrive, until it is full. `flush_at` is the slot of its next send or edit (NULL
-- when none is scheduled).
CREATE TABLE telegram_digests (
  id             INTEGER PRIMARY KEY AUTOINCREMENT,
  chat_id        TEXT    NOT NULL,
  thread         TEXT    NOT NULL DEFAULT '',
  destination    TEXT    NOT NULL,
  message_id     INTEGER,
  full           INTEGER NOT NULL DEFAULT 0,
  flush_at       INTEGER,
  claimed_at     INTEGER,
  last_error     TEXT,
  attempts       INTEGER NOT NULL DEFAULT 0,
  last_item_at   INTEGER NOT NULL,
  created_at     INTEGER NOT NULL,
  updated_at     INTEGER NOT NULL
);
CREATE INDEX telegram_digests_by_destination ON telegram_digests (chat_id, thread, full, last_item_at);

-- The messages that follow a deploy job, a preview or a workflow (`subject`:
-- `job:12`, `preview:3`, `workflow:7`), one per destination its routes name, kept
-- current: `html` is what it should show now (`version` counts its changes),
-- `shown` the version Telegram shows in `message_id`. A send or edit takes the
-- chat's pace slot like any other.
CREATE TABLE telegram_live (
  id               INTEGER PRIMARY KEY AUTOINCREMENT,
  subject          TEXT    NOT NULL,
  project          TEXT    NOT NULL,
  route            TEXT    NOT NULL,
  chat_id          TEXT    NOT NULL,
  thread           TEXT    NOT NULL DEFAULT '',
  destination      TEXT    NOT NULL,
  html             TEXT    NOT NULL,
  version          INTEGER NOT NULL DEFAULT 1,
  shown            INTEGER NOT NULL DEFAULT 0,
  message_id       INTEGER,
  slot_at          INTEGER,
  attempts         INTEGER NOT NULL DEFAULT 0,
  last_error       TEXT,
  next_attempt_at  INTEGER,
  claimed_at       INTEGER,
  created_at       INTEGER NOT NULL,
  updated_at       INTEGER NOT NULL,
  UNIQUE (subject, chat_id, thread)
);
CREATE INDEX telegram_live_due ON telegram_live (shown, version, next_attempt_at);
