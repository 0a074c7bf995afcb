-- Chat-ops: acting on deploy jobs from Telegram (buttons on their messages and
-- commands), with the updates taken once, the buttons' tokens and an audit trail.

-- A job is a push's deploy, or one asked for from chat: a rollback of job
-- `source_job` to an earlier commit, or a retry of it. `requested_by` names who
-- asked (`@alice`); `request_key` (the Telegram update that asked) makes the
-- request create its job once, however often it is processed.
ALTER TABLE deploy_jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'deploy'
  CHECK (kind IN ('deploy', 'rollback', 'retry'));
ALTER TABLE deploy_jobs ADD COLUMN source_job INTEGER;
ALTER TABLE deploy_jobs ADD COLUMN requested_by TEXT;
ALTER TABLE deploy_jobs ADD COLUMN request_key TEXT;
CREATE UNIQUE INDEX deploy_jobs_by_request ON deploy_jobs (request_key)
  WHERE request_key IS NOT NULL;

-- A live message's buttons: `buttons` the actions it should offer now
-- (`cancel`, `rollback`, …, comma-separated; '' none), `minted` the actions its
-- `markup` (the inline keyboard, with one token each) was made for. A change of
-- `buttons` is a new version, like a change of text.
ALTER TABLE telegram_live ADD COLUMN buttons TEXT NOT NULL DEFAULT '';
ALTER TABLE telegram_live ADD COLUMN minted TEXT NOT NULL DEFAULT '';
ALTER TABLE telegram_live ADD COLUMN markup TEXT;

-- Telegram's webhook updates, each `update_id` taken once: a command or a button
-- press, its parsed form (`payload`, edge_core::chatops::Update as JSON) for the
-- queue consumer. queued → done.
CREATE TABLE telegram_updates (
  update_id    INTEGER PRIMARY KEY,
  kind         TEXT    NOT NULL CHECK (kind IN ('command', 'press')),
  payload      TEXT    NOT NULL,
  status       TEXT    NOT NULL CHECK (status IN ('queued', 'done')),
  detail       TEXT,
  attempts     INTEGER NOT NULL DEFAULT 0,
  received_at  INTEGER NOT NULL,
  updated_at   INTEGER NOT NULL
);
CREATE INDEX telegram_updates_queued ON telegram_updates (status, updated_at);

-- A button's `callback_data`: a random token naming what it does (`action` on
-- `subject`, `job:12`), where it may be pressed (the chat, and the message: live
-- message `live_id`'s, or `message_id` for a reply), whose operators may press it
-- (`app`), until when, and the one press that used it.
CREATE TABLE telegram_buttons (
  token       TEXT    PRIMARY KEY,
  subject     TEXT    NOT NULL,
  action      TEXT    NOT NULL,
  app         TEXT,
  chat_id     TEXT    NOT NULL,
  live_id     INTEGER,
  message_id  INTEGER,
  expires_at  INTEGER NOT NULL,
  used_at     INTEGER,
  used_by     INTEGER,
  update_id   INTEGER,
  created_at  INTEGER NOT NULL
);
CREATE INDEX telegram_buttons_by_live ON telegram_buttons (live_id);

-- Every action asked for from chat, and every refused attempt: who (a Telegram
-- user's id and name, or `actor` alone), where, on what (`subject_kind` and
-- `subject_id`: a job, later a notification or a protection request), what, when
-- and how it ended. One row per Telegram update.
CREATE TABLE audit_log (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  subject_kind  TEXT    NOT NULL,
  subject_id    TEXT    NOT NULL,
  action        TEXT    NOT NULL,
  result        TEXT    NOT NULL CHECK (result IN ('done', 'refused', 'failed')),
  detail        TEXT,
  actor         TEXT    NOT NULL,
  user_id       INTEGER,
  chat_id       TEXT,
  update_id     INTEGER,
  created_at    INTEGER NOT NULL
);
CREATE INDEX audit_log_by_subject ON audit_log (subject_kind, subject_id, id);
CREATE UNIQUE INDEX audit_log_by_update ON audit_log (update_id) WHERE update_id IS NOT NULL;
