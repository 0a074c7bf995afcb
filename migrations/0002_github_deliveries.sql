-- Every webhook delivery, for idempotency (X-GitHub-Delivery is the key) and audit.
CREATE TABLE deliveries (
  id          TEXT    PRIMARY KEY,
  event       TEXT    NOT NULL,
  action      TEXT,
  repository  TEXT,
  -- queued (work enqueued) | ignored (no app uses it) | processed | failed
  outcome     TEXT    NOT NULL CHECK (outcome IN ('queued', 'ignored', 'processed', 'failed')),
  detail      TEXT,
  -- The typed event as JSON (edge_core::github::events::GithubEvent), for replay.
  payload     TEXT,
  received_at INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL
);

CREATE INDEX deliveries_by_time ON deliveries (received_at);
