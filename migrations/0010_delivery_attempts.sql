-- A GitHub delivery whose processing fails transiently is retried with a backoff and
-- given up on (outcome 'failed', with the last error) after a capped number of
-- attempts (edge_core::github::deliveries::MAX_PROCESS_ATTEMPTS). Existing rows
-- start at zero attempts.
ALTER TABLE deliveries ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN last_error TEXT;
-- When the next attempt is due (ms since the epoch); NULL when none is scheduled.
-- The cron re-enqueues a queued delivery only once this (or, without it, its last
-- update) is SWEEP_AFTER_SECONDS in the past.
ALTER TABLE deliveries ADD COLUMN next_attempt_at INTEGER;
