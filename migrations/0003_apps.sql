-- Apps: what to deploy for which repository. `config` is the whole app as JSON
-- (edge_core::apps::App); `repository` is lower-cased for matching webhooks.
CREATE TABLE apps (
  name       TEXT    PRIMARY KEY,
  repository TEXT    NOT NULL,
  config     TEXT    NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);

CREATE INDEX apps_by_repository ON apps (repository);
