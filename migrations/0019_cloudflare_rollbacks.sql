-- A notification's Roll back button (CLOUDFLARE_ROLLBACK=on): at most one rollback
-- per notification, whoever presses and however often. The rollback deployment is
-- sent at most once: only the attempt that moves the row from 'choosing' to
-- 'posting' sends it, and a rollback whose answer never came ('unconfirmed') is
-- only ever looked for among the deployments, never sent again.
-- choosing → posting → done | refused | unconfirmed → done | failed;
-- choosing → failed (nothing to roll back to, moved on, refused, out of attempts).
CREATE TABLE cloudflare_rollbacks (
  id               INTEGER PRIMARY KEY AUTOINCREMENT,
  notification_id  INTEGER NOT NULL UNIQUE,
  kind             TEXT    NOT NULL CHECK (kind IN ('worker', 'pages')),
  project          TEXT    NOT NULL,
  -- Who pressed (the Telegram user, as the message names them).
  requested_by     TEXT    NOT NULL,
  status           TEXT    NOT NULL CHECK (status IN
                     ('choosing', 'posting', 'unconfirmed', 'done', 'refused', 'failed')),
  -- Once chosen: the deployment that was live, what goes live (a Worker version
  -- id or a Pages deployment id), how the message names it, and the annotation
  -- sent with it (`workers/message`).
  live_deployment  TEXT,
  target           TEXT,
  target_label     TEXT,
  message          TEXT,
  -- The deployment Cloudflare made for it (Workers).
  new_deployment   TEXT,
  -- What the message says of it: Cloudflare's refusal, or why it failed.
  result           TEXT,
  attempts         INTEGER NOT NULL DEFAULT 0,
  claimed_at       INTEGER,
  posted_at        INTEGER,
  created_at       INTEGER NOT NULL,
  updated_at       INTEGER NOT NULL
);
