-- A deployment's identity takes in its project: (kind, project_name, deployment_id).
-- One CI run that deploys several Workers reports them all under the run's id
-- (notify-deploy's `gh-<run>-<attempt>-<project>`, or an id a build passes for all
-- of them), and each is its own deployment.
--
-- SQLite cannot change a UNIQUE constraint in place: build the table anew, copy every
-- row (ids included, so queued messages still find their rows), drop the old one and
-- take its name. Nothing references this table. The indexes go with the old table
-- and are made again.
CREATE TABLE notifications_by_project (
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
  UNIQUE (kind, project_name, deployment_id)
);

INSERT INTO notifications_by_project
  (id, kind, deployment_id, project_name, commit_hash, source, deployment, status, attempts,
   telegram_message_id, last_error, next_attempt_at, claimed_at, created_at, updated_at)
SELECT id, kind, deployment_id, project_name, commit_hash, source, deployment, status, attempts,
       telegram_message_id, last_error, next_attempt_at, claimed_at, created_at, updated_at
FROM notifications;

DROP TABLE notifications;
ALTER TABLE notifications_by_project RENAME TO notifications;

CREATE INDEX notifications_by_status ON notifications (status, created_at);
CREATE INDEX notifications_by_commit ON notifications (project_name, commit_hash);
