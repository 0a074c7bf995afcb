-- The order of a pull request's events, so a late or replayed delivery cannot undo
-- a newer one: `event_at` is the payload's `pull_request.updated_at` (epoch ms) of
-- the event the row last took, `event_seq` that delivery's place in the delivery
-- log (the tie-break within the same second). Existing rows keep NULL, which is
-- older than any event.
ALTER TABLE previews ADD COLUMN event_at INTEGER;
ALTER TABLE previews ADD COLUMN event_seq INTEGER;
