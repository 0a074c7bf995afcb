-- Preview environments: one row per app and pull request. The row holds what the
-- latest pull_request event wants (`wanted`, head sha, draft) and what exists
-- (`status`, Fly machine, GitHub deployment, PR comment). Every change of what is
-- wanted bumps `revision`; a reconcile run settles a revision by setting
-- `done_revision` to it, so a change that lands while a run is under way is never
-- lost (the run's conditional release fails and it goes round again).
CREATE TABLE previews (
  id                   INTEGER PRIMARY KEY AUTOINCREMENT,
  app                  TEXT    NOT NULL,
  repository           TEXT    NOT NULL,
  pr_number            INTEGER NOT NULL,
  installation_id      INTEGER,
  head_ref             TEXT    NOT NULL,
  head_sha             TEXT    NOT NULL,
  draft                INTEGER NOT NULL DEFAULT 0,
  fork                 INTEGER NOT NULL DEFAULT 0,
  wanted               TEXT    NOT NULL CHECK (wanted IN ('live', 'closed', 'expired')),
  revision             INTEGER NOT NULL DEFAULT 1,
  done_revision        INTEGER NOT NULL DEFAULT 0,
  status               TEXT    NOT NULL DEFAULT 'new' CHECK (status IN
                         ('new', 'queued', 'deploying', 'ready', 'failed', 'destroyed', 'skipped')),
  -- Fixed when the row is created, so teardown removes exactly what was made.
  fly_app              TEXT    NOT NULL,
  url                  TEXT    NOT NULL,
  machine_id           TEXT,
  deployed_sha         TEXT,
  deployment_id        INTEGER,
  deployment_sha       TEXT,
  comment_id           INTEGER,
  telegram_message_id  INTEGER,
  error                TEXT,
  -- Transient failures of the current revision; a permanent failure or the last
  -- attempt marks the preview failed and cleans up.
  attempts             INTEGER NOT NULL DEFAULT 0,
  -- Waiting order for a slot: when the pull request last asked for a preview.
  queued_at            INTEGER NOT NULL,
  queue_ahead          INTEGER,
  expires_at           INTEGER,
  -- A reconcile run holds the row while this is set (stale after a few minutes).
  claimed_at           INTEGER,
  -- When the cron last confirmed a torn-down preview's Fly app is gone.
  fly_checked_at       INTEGER,
  created_at           INTEGER NOT NULL,
  updated_at           INTEGER NOT NULL,
  UNIQUE (app, pr_number)
);

CREATE INDEX previews_by_status ON previews (app, status);
CREATE INDEX previews_unsettled ON previews (updated_at) WHERE revision <> done_revision;
