-- Multi-repository orchestration workflows (edge_core::orchestrate). A workflow
-- runs its steps as their `after` dependencies finish and ends succeeded or failed;
-- its definition is stored resolved (templates filled in), so a config change
-- never alters a workflow already running.
CREATE TABLE workflows (
  id                  INTEGER PRIMARY KEY AUTOINCREMENT,
  -- The service (new repository) name the workflow is about.
  name                TEXT    NOT NULL,
  kind                TEXT    NOT NULL,
  -- The resolved definition (edge_core::orchestrate::definition::Definition), JSON.
  definition          TEXT    NOT NULL,
  -- The request that started it, JSON.
  input               TEXT    NOT NULL,
  status              TEXT    NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
  error               TEXT,
  telegram_message_id INTEGER,
  created_at          INTEGER NOT NULL,
  updated_at          INTEGER NOT NULL,
  finished_at         INTEGER
);

-- One live workflow per service name: a second request while one runs is a 409.
CREATE UNIQUE INDEX workflows_live_name ON workflows (name) WHERE status = 'running';
CREATE INDEX workflows_by_status ON workflows (status, id);

-- Steps move forward only: pending < running < waiting < raised < auto_merge_enabled
-- < merged < succeeded; failed and skipped are terminal.
CREATE TABLE workflow_steps (
  workflow_id   INTEGER NOT NULL REFERENCES workflows (id),
  step_id       TEXT    NOT NULL,
  position      INTEGER NOT NULL,
  kind          TEXT    NOT NULL,
  status        TEXT    NOT NULL CHECK (status IN ('pending', 'running', 'waiting', 'raised',
                  'auto_merge_enabled', 'merged', 'succeeded', 'failed', 'skipped')),
  -- The repository the step acts on or waits in, lower-cased (GitHub compares
  -- names case-insensitively; events are matched on this).
  repository    TEXT,
  pr_number     INTEGER,
  pr_node_id    TEXT,
  pr_sha        TEXT,
  pr_ref        TEXT,
  pr_base       TEXT,
  pr_html_url   TEXT,
  merged_sha    TEXT,
  -- For await_workflow: the workflow file path a run must have.
  workflow_path TEXT,
  -- The workflow run (name, id, html_url, created_at, updated_at, path, conclusion), JSON.
  run           TEXT,
  error         TEXT,
  attempts      INTEGER NOT NULL DEFAULT 0,
  -- Set while an attempt holds the step; NULL when released for a retry.
  claimed_at    INTEGER,
  waiting_since INTEGER,
  deadline      INTEGER,
  -- The events that moved the step, JSON list, oldest first.
  events        TEXT    NOT NULL DEFAULT '[]',
  updated_at    INTEGER NOT NULL,
  PRIMARY KEY (workflow_id, step_id)
);

CREATE INDEX workflow_steps_pr ON workflow_steps (repository, pr_number);
CREATE INDEX workflow_steps_node ON workflow_steps (pr_node_id);
CREATE INDEX workflow_steps_merged ON workflow_steps (repository, merged_sha);
CREATE INDEX workflow_steps_deadline ON workflow_steps (status, deadline);

-- Events no step was ready for yet (a workflow_run before its merge was recorded,
-- a merge before its PR number was stored), kept to be matched when the state
-- catches up. One row per GitHub delivery, so a redelivery is stored once.
CREATE TABLE workflow_events (
  delivery_id   TEXT    PRIMARY KEY,
  kind          TEXT    NOT NULL CHECK (kind IN ('pull_request', 'workflow_run')),
  repository    TEXT    NOT NULL,
  pr_number     INTEGER,
  pr_node_id    TEXT,
  head_sha      TEXT,
  workflow_path TEXT,
  -- The typed event (edge_core::github::events::GithubEvent), JSON.
  event         TEXT    NOT NULL,
  received_at   INTEGER NOT NULL,
  matched_at    INTEGER
);

CREATE INDEX workflow_events_pr ON workflow_events (repository, pr_number);
CREATE INDEX workflow_events_run ON workflow_events (repository, head_sha);
CREATE INDEX workflow_events_received ON workflow_events (received_at);
