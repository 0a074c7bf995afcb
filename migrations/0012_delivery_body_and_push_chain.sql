-- The SHA-256 (hex) of a delivery's raw body: only the body is signed, so the same
-- signed body re-posted under a fresh X-GitHub-Delivery is the same delivery.
-- Rows recorded before this migration have none (their bodies were not kept).
ALTER TABLE deliveries ADD COLUMN body_sha256 TEXT;
CREATE UNIQUE INDEX deliveries_body ON deliveries (body_sha256) WHERE body_sha256 IS NOT NULL;

-- The push a job came from: the commit it was pushed on top of (NULL for a new
-- branch) and whether it was forced (then `before` is not an ancestor of `sha`).
-- Stale pushes are recognised from this chain.
ALTER TABLE deploy_jobs ADD COLUMN before_sha TEXT;
ALTER TABLE deploy_jobs ADD COLUMN forced INTEGER NOT NULL DEFAULT 0;
-- Existing jobs: from their recorded delivery, where it is still there.
UPDATE deploy_jobs SET
  before_sha = (SELECT json_extract(d.payload, '$.push.before') FROM deliveries d
                WHERE d.id = deploy_jobs.delivery_id AND d.event = 'push'),
  forced = COALESCE((SELECT json_extract(d.payload, '$.push.forced') FROM deliveries d
                     WHERE d.id = deploy_jobs.delivery_id AND d.event = 'push'), 0)
WHERE delivery_id IS NOT NULL;
-- The all-zero id is GitHub's "no commit" (a new branch).
UPDATE deploy_jobs SET before_sha = NULL WHERE ltrim(before_sha, '0') = '';
