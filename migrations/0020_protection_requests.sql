-- GitHub custom deployment protection rules: one row per `deployment_protection_rule`
-- delivery (action `requested`), a review this Worker (through the GitHub App) owes
-- GitHub for environment `environment` of run `run_id`. Its Telegram message shows
-- Approve / Reject while it is pending.
-- pending → reviewing (decided, once: `state` and who are recorded; the review is
-- being sent) → approved | rejected | timed_out (no decision before `expires_at`:
-- rejected) | failed (GitHub refused the review, or it could not be sent).
-- A review being sent is claimed (`claimed_at`), and a retry is due at `due_at`, by
-- the rule of deploy steps (edge_core::retry::StepClaims).
CREATE TABLE protection_requests (
  id               INTEGER PRIMARY KEY AUTOINCREMENT,
  delivery_id      TEXT    NOT NULL UNIQUE,
  repository       TEXT    NOT NULL,
  environment      TEXT    NOT NULL,
  sha              TEXT    NOT NULL,
  git_ref          TEXT,
  run_id           INTEGER NOT NULL,
  installation_id  INTEGER NOT NULL,
  -- What started the run (`push`, …) and who (`sender.login`), for the message.
  trigger          TEXT,
  sender           TEXT,
  status           TEXT    NOT NULL CHECK (status IN
                     ('pending', 'reviewing', 'approved', 'rejected', 'timed_out', 'failed')),
  -- What the review tells GitHub, once decided.
  state            TEXT    CHECK (state IN ('approved', 'rejected')),
  -- Who decided (`@user`, or `admin API`) and their Telegram user id; NULL for a
  -- timeout.
  decided_by       TEXT,
  decided_by_id    INTEGER,
  decided_at       INTEGER,
  -- What decided it (`telegram:{update_id}`, the press's update): that update,
  -- processed again, finds its own decision.
  decided_key      TEXT,
  attempts         INTEGER NOT NULL DEFAULT 0,
  claimed_at       INTEGER,
  due_at           INTEGER,
  last_error       TEXT,
  expires_at       INTEGER NOT NULL,
  created_at       INTEGER NOT NULL,
  updated_at       INTEGER NOT NULL
);
-- The cron's look for requests past `expires_at` and reviews whose message was lost.
CREATE INDEX protection_requests_by_status ON protection_requests (status, expires_at);
