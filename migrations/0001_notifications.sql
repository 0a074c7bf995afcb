-- Deployment notifications: one row per deployment (kind + id), whoever reported it
-- first. The UNIQUE constraint is the authority for "already processed"; KV only
-- short-cuts repeats.
CREATE TABLE notifications (
  id                  INTEGER PRIMARY KEY AUTOINCREMENT,
  kind                TEXT    NOT NULL CHECK (kind IN ('worker', 'pages')),
  deployment_id       TEXT    NOT NULL,
  project_name        TEXT    NOT NULL,
  commit_hash         TEXT,
  source              TEXT    NOT NULL CHECK (source IN ('hook', 'poll')),
  -- The validated deployment as JSON; what the Telegram message is made from.
  deployment          TEXT    NOT NULL,
  -- pending → sending → sent | retrying → … | failed; not_sent (Telegram not
  -- configured); recorded (known, deliberately not announced).
  status              TEXT    NOT NULL CHECK (status IN
                        ('pending', 'sending', 'retrying', 'sent', 'failed', 'not_sent', 'recorded')),
  -- Deliveries claimed so far; the queue does not expose its own count.
  attempts            INTEGER NOT NULL DEFAULT 0,
  telegram_message_id INTEGER,
  last_error          TEXT,
  next_attempt_at     INTEGER,
  claimed_at          INTEGER,
  created_at          INTEGER NOT NULL,
  updated_at          INTEGER NOT NULL,
  UNIQUE (kind, deployment_id)
);

CREATE INDEX notifications_by_status ON notifications (status, created_at);
CREATE INDEX notifications_by_commit ON notifications (project_name, commit_hash);
