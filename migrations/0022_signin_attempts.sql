-- The status page's sign-in form, rate-limited per client (an IPv4 address, or an
-- IPv6 /64): one row per client with the start of its current 15-minute window and
-- the attempts made in it. An attempt is one upsert (counted before the token is
-- compared); a successful sign-in deletes its client's row and any whose window has
-- long ended.
CREATE TABLE signin_attempts (
  client TEXT PRIMARY KEY,
  window_start INTEGER NOT NULL,
  attempts INTEGER NOT NULL
) WITHOUT ROWID;
