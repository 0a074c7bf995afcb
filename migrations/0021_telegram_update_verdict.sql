-- A Telegram update is kept as Telegram sent it (`payload`, read again by the queue
-- consumer), and a press with what the webhook decided before recording it
-- (`verdict`: act, unknown, not_allowed, used, expired, moved_on). Updates still
-- queued from before were kept in another form: they are closed, not read.
ALTER TABLE telegram_updates ADD COLUMN verdict TEXT;
UPDATE telegram_updates SET status = 'done',
  detail = 'recorded in the form before 0021; not processed'
  WHERE status = 'queued';
