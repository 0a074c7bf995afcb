-- Whether this preview made its Fly app: set when Fly answers the create with
-- "created", cleared when the cron has seen the app gone. Only an app the row made
-- is reused when Fly says the name exists, or deleted at teardown: a name another
-- app or person holds is left alone and the preview fails saying so.
ALTER TABLE previews ADD COLUMN fly_owned INTEGER NOT NULL DEFAULT 0;

-- Rows from before: every row that may have made its Fly app keeps the clean-up it
-- had (a preview holding a slot or a machine, or a teardown nobody checked yet).
UPDATE previews SET fly_owned = 1
 WHERE status IN ('deploying', 'ready') OR machine_id IS NOT NULL
    OR (status IN ('destroyed', 'failed', 'skipped') AND fly_checked_at IS NULL);
