-- Production deploy jobs and their steps. A job moves waiting → processing →
-- finalized, or → failed → reverting → reverted (or stays failed); a newer push
-- cancels older waiting jobs. Steps move pending → started → done | failed | skipped.
CREATE TABLE deploy_jobs (
  id                   INTEGER PRIMARY KEY AUTOINCREMENT,
  app                  TEXT    NOT NULL,
  environment          TEXT    NOT NULL,
  sha                  TEXT    NOT NULL,
  git_ref              TEXT    NOT NULL,
  delivery_id          TEXT,
  pusher               TEXT,
  -- The complete commit list as JSON (edge_core::github::events::PushCommit).
  commits              TEXT    NOT NULL,
  status               TEXT    NOT NULL CHECK (status IN
                         ('waiting', 'processing', 'finalized', 'failed', 'reverting', 'reverted', 'cancelled')),
  -- The sha a revert re-deploys (the app's last finalized sha), once reverting.
  revert_sha           TEXT,
  github_deployment_id INTEGER,
  telegram_message_id  INTEGER,
  error                TEXT,
  created_at           INTEGER NOT NULL,
  updated_at           INTEGER NOT NULL,
  started_at           INTEGER,
  finished_at          INTEGER
);

-- One live job per app, environment and commit: concurrent deliveries of one push
-- (a repository hook and an organization hook) create it once.
CREATE UNIQUE INDEX deploy_jobs_live_commit ON deploy_jobs (app, environment, sha)
  WHERE status IN ('waiting', 'processing', 'reverting');
CREATE INDEX deploy_jobs_by_app ON deploy_jobs (app, environment, status, id);

CREATE TABLE deploy_steps (
  job_id      INTEGER NOT NULL REFERENCES deploy_jobs (id),
  position    INTEGER NOT NULL,
  name        TEXT    NOT NULL,
  state       TEXT    NOT NULL CHECK (state IN ('pending', 'started', 'done', 'failed', 'skipped')),
  attempts    INTEGER NOT NULL DEFAULT 0,
  result      TEXT,
  error       TEXT,
  started_at  INTEGER,
  finished_at INTEGER,
  updated_at  INTEGER NOT NULL,
  PRIMARY KEY (job_id, position)
);

CREATE INDEX deploy_steps_started ON deploy_steps (state, started_at);
