-- The admin API lists notifications newest first by when they were accepted
-- (`ORDER BY created_at DESC, id DESC`), merged with the delivery log by time; this
-- index keeps that listing from reading the whole table.
CREATE INDEX IF NOT EXISTS notifications_by_time ON notifications (created_at, id);
