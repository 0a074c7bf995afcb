//! A notification's messages, one row per destination (`telegram_deliveries`), the
//! forum topics made for projects (`telegram_topics`) and the digests that carry
//! bursts (`telegram_digests`): every SQL statement of Telegram delivery but the
//! pace's ([`crate::pace`]).

use crate::live::SentMessage;
use crate::notify::Deployment;
use crate::ports::{Row, Sql, Statement, StoreError};
pub use crate::routing::Recipient;
use crate::row::Columns;
use crate::time::Timestamp;

/// A destination row claimed for one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedSend {
    pub id: i64,
    pub notification_id: i64,
    pub recipient: Recipient,
    /// The slot it holds, if it took one.
    pub slot_at: Option<Timestamp>,
    /// Failed attempts before this one.
    pub attempts: u32,
    pub deployment: Deployment,
}

/// What happened to one claimed row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    Sent {
        id: i64,
        message_id: i64,
        /// The thread it went to, when it differs from the row's (a topic made for
        /// it, or the chat itself after a topic was refused).
        thread: Option<String>,
    },
    /// Waiting for its slot (or for Telegram's `retry_after`): not an attempt.
    Waiting {
        id: i64,
        slot_at: Timestamp,
    },
    /// To be tried again at `at`, holding no slot; not an attempt.
    Later {
        id: i64,
        at: Timestamp,
    },
    /// Failed transiently: an attempt; due again at `next`.
    Retrying {
        id: i64,
        error: String,
        next: Timestamp,
    },
    /// In digest `digest_id`.
    Digested {
        id: i64,
        digest_id: i64,
    },
    Failed {
        id: i64,
        error: String,
    },
}

/// Telegram delivery's rows over any [`Sql`].
pub struct SendStore<S> {
    sql: S,
}

const CLAIMABLE: &str =
    "(status IN ('pending', 'retrying') OR (status = 'waiting' AND slot_at <= ?2 + 999) \
     OR (status = 'sending' AND claimed_at < ?3))";

impl<S: Sql> SendStore<S> {
    pub fn new(sql: S) -> Self {
        SendStore { sql }
    }

    /// Adds each `(notification, recipient)` row unless it exists (a notification
    /// routed again, after its consumer died, gets its rows once), in one statement.
    pub async fn add(&self, rows: &[(i64, &Recipient)], now: Timestamp) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let list: Vec<serde_json::Value> = rows
            .iter()
            .map(|(n, r)| {
                serde_json::json!({
                    "n": n, "route": r.route, "chat": r.chat_id, "thread": r.thread,
                    "dest": serde_json::to_string(r).unwrap_or_default(),
                })
            })
            .collect();
        self.sql
            .execute(
                "INSERT INTO telegram_deliveries \
                 (notification_id, route, chat_id, thread, destination, status, created_at, updated_at) \
                 SELECT json_extract(value, '$.n'), json_extract(value, '$.route'), json_extract(value, '$.chat'), \
                   json_extract(value, '$.thread'), json_extract(value, '$.dest'), 'pending', ?2, ?2 \
                 FROM json_each(?1) WHERE true \
                 ON CONFLICT (notification_id, chat_id, thread) DO NOTHING",
                &[
                    crate::json::text(&serde_json::Value::Array(list)).into(),
                    now.millis().into(),
                ],
            )
            .await
            .map(drop)
    }

    /// Claims the rows of `notifications` (or, with `by_row`, the rows `ids`) that
    /// are due: pending, retrying, waiting for a slot that has come, or held by a
    /// consumer that died (claimed before `stale_before`).
    pub async fn claim(
        &self,
        ids: &[i64],
        by_row: bool,
        now: Timestamp,
        stale_before: Timestamp,
    ) -> Result<Vec<ClaimedSend>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = serde_json::to_string(ids).map_err(StoreError::encode)?;
        let column = if by_row { "id" } else { "notification_id" };
        let rows = self
            .sql
            .query(
                &format!(
                    "UPDATE telegram_deliveries SET status = 'sending', claimed_at = ?2, updated_at = ?2 \
                     WHERE {column} IN (SELECT value FROM json_each(?1)) AND {CLAIMABLE} \
                     RETURNING id, notification_id, destination, slot_at, attempts, \
                       (SELECT deployment FROM notifications WHERE notifications.id = notification_id) AS deployment"
                ),
                &[list.into(), now.millis().into(), stale_before.millis().into()],
            )
            .await?;
        rows.iter().map(claimed).collect()
    }

    /// Records outcomes, then brings their notifications' status up to their rows'
    /// ([`SendStore::settle`]): two statements in one round trip.
    pub async fn record(
        &self,
        outcomes: &[SendOutcome],
        notifications: &[i64],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let statements: Vec<Statement> = [
            record_statement(outcomes, now),
            settle_statement(notifications, now)?,
        ]
        .into_iter()
        .flatten()
        .collect();
        if statements.is_empty() {
            return Ok(());
        }
        self.sql.batch(&statements).await
    }

    /// A notification routed for the first time: its rows are added as their first
    /// attempts came out (`(notification, recipient, outcome)`; each outcome's row id
    /// is not known yet), and the notifications settled, in one round trip. The
    /// notification's claim covered them until now. With `ids`, returns the new
    /// rows as (row, notification, chat, thread), for the messages that wait.
    pub async fn record_new(
        &self,
        rows: &[(i64, &Recipient, &SendOutcome)],
        notifications: &[i64],
        ids: bool,
        now: Timestamp,
    ) -> Result<Vec<(i64, i64, String, String)>, StoreError> {
        let list: Vec<serde_json::Value> = rows
            .iter()
            .map(|(n, r, o)| {
                let mut v = outcome_fields(o);
                v["n"] = (*n).into();
                v["route"] = r.route.as_str().into();
                v["chat"] = r.chat_id.as_str().into();
                v["thread"] = r.thread.as_str().into();
                v["dest"] = serde_json::to_string(r).unwrap_or_default().into();
                v
            })
            .collect();
        let mut statements = vec![Statement {
            sql: "INSERT INTO telegram_deliveries \
                 (notification_id, route, chat_id, thread, destination, status, message_id, thread_sent, \
                  slot_at, digest_id, last_error, attempts, next_attempt_at, created_at, updated_at) \
                 SELECT json_extract(value, '$.n'), json_extract(value, '$.route'), json_extract(value, '$.chat'), \
                   json_extract(value, '$.thread'), json_extract(value, '$.dest'), json_extract(value, '$.s'), \
                   json_extract(value, '$.m'), json_extract(value, '$.t'), json_extract(value, '$.slot'), \
                   json_extract(value, '$.d'), json_extract(value, '$.e'), COALESCE(json_extract(value, '$.a'), 0), \
                   json_extract(value, '$.next'), ?2, ?2 \
                 FROM json_each(?1) WHERE true \
                 ON CONFLICT (notification_id, chat_id, thread) DO NOTHING",
            params: vec![
                crate::json::text(&serde_json::Value::Array(list)).into(),
                now.millis().into(),
            ],
        }];
        statements.extend(settle_statement(notifications, now)?);
        self.sql.batch(&statements).await?;
        if !ids {
            return Ok(Vec::new());
        }
        let list = serde_json::to_string(notifications).map_err(StoreError::encode)?;
        self.sql
            .query(
                "SELECT id, notification_id, chat_id, thread FROM telegram_deliveries \
                 WHERE notification_id IN (SELECT value FROM json_each(?1))",
                &[list.into()],
            )
            .await?
            .iter()
            .map(|r| {
                Ok((
                    r.int("id").map_err(StoreError::row)?,
                    r.int("notification_id").map_err(StoreError::row)?,
                    r.text("chat_id").map_err(StoreError::row)?,
                    r.text("thread").map_err(StoreError::row)?,
                ))
            })
            .collect()
    }

    /// Brings each of `notifications`' own status up to its rows': sent once every
    /// row is sent, failed once every row is final and one failed; while any is
    /// still on its way it stays `sending`, unclaimed (its rows have their own
    /// claims and sweep).
    pub async fn settle(&self, notifications: &[i64], now: Timestamp) -> Result<(), StoreError> {
        match settle_statement(notifications, now)? {
            Some(s) => self.sql.execute(s.sql, &s.params).await.map(drop),
            None => Ok(()),
        }
    }

    /// Marks a dead-lettered row failed unless it is final; returns its
    /// notification when it moved.
    pub async fn mark_dead_lettered(
        &self,
        id: i64,
        now: Timestamp,
    ) -> Result<Option<i64>, StoreError> {
        let rows = self
            .sql
            .query(
                "UPDATE telegram_deliveries SET status = 'failed', \
                 last_error = COALESCE(last_error, 'delivery failed') || ' (dead-lettered)', updated_at = ?2 \
                 WHERE id = ?1 AND status IN ('pending', 'waiting', 'sending', 'retrying') \
                 RETURNING notification_id",
                &[id.into(), now.millis().into()],
            )
            .await?;
        Ok(rows.first().and_then(|r| r.opt_int("notification_id")))
    }

    /// Rows whose queue message was evidently lost: due (or claimed) before `cutoff`.
    pub async fn lost(&self, cutoff: Timestamp, limit: u32) -> Result<Vec<i64>, StoreError> {
        let rows = self
            .sql
            .query(
                "SELECT id FROM telegram_deliveries WHERE \
                 (status IN ('pending', 'retrying', 'waiting') AND COALESCE(next_attempt_at, created_at) < ?1) \
                 OR (status = 'sending' AND claimed_at < ?1) ORDER BY id LIMIT ?2",
                &[cutoff.millis().into(), i64::from(limit).into()],
            )
            .await?;
        Ok(rows.iter().filter_map(|r| r.opt_int("id")).collect())
    }

    /// After the sweep re-enqueued row `id`: due now, so the next sweep leaves it
    /// alone for another grace period. A row some consumer died holding is free
    /// again (it holds no slot any more).
    pub async fn requeued(&self, id: i64, now: Timestamp) -> Result<(), StoreError> {
        self.sql
            .execute(
                "UPDATE telegram_deliveries SET \
                 status = CASE status WHEN 'sending' THEN 'retrying' WHEN 'waiting' THEN 'retrying' ELSE status END, \
                 slot_at = NULL, next_attempt_at = ?2, updated_at = ?2 \
                 WHERE id = ?1 AND status IN ('pending', 'retrying', 'waiting', 'sending')",
                &[id.into(), now.millis().into()],
            )
            .await
            .map(drop)
    }

    /// Every destination row of `notifications`, for the delivery log.
    pub async fn of(&self, notifications: &[i64]) -> Result<Vec<Row>, StoreError> {
        if notifications.is_empty() {
            return Ok(Vec::new());
        }
        let list = serde_json::to_string(notifications).map_err(StoreError::encode)?;
        self.sql
            .query(
                "SELECT notification_id, route, chat_id, thread, thread_sent, status, attempts, message_id, \
                   digest_id, last_error FROM telegram_deliveries \
                 WHERE notification_id IN (SELECT value FROM json_each(?1)) ORDER BY id",
                &[list.into()],
            )
            .await
    }

    /// The messages Telegram shows for notification `id` on their own (not as a
    /// digest's line): (route, chat, thread it went to, destination, message id).
    pub async fn shown(&self, id: i64) -> Result<Vec<SentMessage>, StoreError> {
        let rows = self
            .sql
            .query(
                "SELECT route, chat_id, COALESCE(thread_sent, thread) AS thread, destination, message_id \
                 FROM telegram_deliveries WHERE notification_id = ?1 AND status = 'sent' \
                   AND message_id IS NOT NULL AND digest_id IS NULL ORDER BY id",
                &[id.into()],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(SentMessage {
                    route: r.text("route").map_err(StoreError::row)?,
                    chat_id: r.text("chat_id").map_err(StoreError::row)?,
                    thread: r.opt_text("thread").unwrap_or_default(),
                    destination: r.text("destination").map_err(StoreError::row)?,
                    message_id: r.int("message_id").map_err(StoreError::row)?,
                })
            })
            .collect()
    }

    // Forum topics.

    /// The topic made for `project` in `chat`: `Ok(Some(id))` when known (0: the chat
    /// is not a forum), `Ok(None)` when this caller now holds the claim to create
    /// it, and `Err` on a database failure. A claim older than `stale_before` is
    /// taken over; a fresh one held by another consumer reads as `Some(-1)`.
    pub async fn topic(
        &self,
        chat: &str,
        project: &str,
        now: Timestamp,
        stale_before: Timestamp,
    ) -> Result<Option<i64>, StoreError> {
        let claimed = self
            .sql
            .execute(
                "INSERT INTO telegram_topics (chat_id, project, thread_id, claimed_at) VALUES (?1, ?2, NULL, ?3) \
                 ON CONFLICT (chat_id, project) DO UPDATE SET claimed_at = excluded.claimed_at \
                 WHERE telegram_topics.thread_id IS NULL AND telegram_topics.claimed_at < ?4",
                &[chat.into(), project.into(), now.millis().into(), stale_before.millis().into()],
            )
            .await?;
        if claimed.changes == 1 {
            return Ok(None);
        }
        let rows = self
            .sql
            .query(
                "SELECT thread_id FROM telegram_topics WHERE chat_id = ?1 AND project = ?2",
                &[chat.into(), project.into()],
            )
            .await?;
        Ok(Some(
            rows.first()
                .and_then(|r| r.opt_int("thread_id"))
                .unwrap_or(-1),
        ))
    }

    /// Remembers the topic made (or 0: the chat is not a forum).
    pub async fn set_topic(
        &self,
        chat: &str,
        project: &str,
        thread: i64,
    ) -> Result<(), StoreError> {
        self.sql
            .execute(
                "UPDATE telegram_topics SET thread_id = ?3 WHERE chat_id = ?1 AND project = ?2",
                &[chat.into(), project.into(), thread.into()],
            )
            .await
            .map(drop)
    }

    /// Forgets a topic Telegram says is gone (the next message makes a new one).
    pub async fn forget_topic(&self, chat: &str, project: &str) -> Result<(), StoreError> {
        self.sql
            .execute(
                "DELETE FROM telegram_topics WHERE chat_id = ?1 AND project = ?2",
                &[chat.into(), project.into()],
            )
            .await
            .map(drop)
    }

    // Digests.

    /// The open digest of a destination (one still taking lines, active within the
    /// last `window_ms`), opened now if there is none. One of several concurrent
    /// callers opens it; all get the same id.
    pub async fn open_digest(
        &self,
        recipient: &Recipient,
        thread: &str,
        window_ms: i64,
        now: Timestamp,
    ) -> Result<i64, StoreError> {
        let dest = serde_json::to_string(recipient).map_err(StoreError::encode)?;
        let chat = recipient.chat_id.as_str();
        self.sql
            .execute(
                "INSERT INTO telegram_digests (chat_id, thread, destination, last_item_at, created_at, updated_at) \
                 SELECT ?1, ?2, ?3, ?4, ?4, ?4 WHERE NOT EXISTS (SELECT 1 FROM telegram_digests \
                   WHERE chat_id = ?1 AND thread = ?2 AND full = 0 AND last_item_at > ?4 - ?5)",
                &[chat.into(), thread.into(), dest.into(), now.millis().into(), window_ms.into()],
            )
            .await?;
        let rows = self
            .sql
            .query(
                "UPDATE telegram_digests SET last_item_at = ?3, updated_at = ?3 WHERE id = \
                   (SELECT id FROM telegram_digests WHERE chat_id = ?1 AND thread = ?2 AND full = 0 \
                    ORDER BY id DESC LIMIT 1) RETURNING id",
                &[chat.into(), thread.into(), now.millis().into()],
            )
            .await?;
        rows.first()
            .and_then(|r| r.opt_int("id"))
            .ok_or_else(|| StoreError::Row("no open digest after opening one".into()))
    }

    /// Takes the right to schedule digest `id`'s next send or edit; `false` when one
    /// is already scheduled (it will carry the new lines too).
    pub async fn take_flush(&self, id: i64) -> Result<bool, StoreError> {
        let done = self
            .sql
            .execute(
                "UPDATE telegram_digests SET flush_at = -1 WHERE id = ?1 AND flush_at IS NULL",
                &[id.into()],
            )
            .await?;
        Ok(done.changes == 1)
    }

    /// Schedules digest `id`'s next send or edit at `at`.
    pub async fn schedule_flush(
        &self,
        id: i64,
        at: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.sql
            .execute(
                "UPDATE telegram_digests SET flush_at = ?2, claimed_at = NULL, updated_at = ?3 WHERE id = ?1",
                &[id.into(), at.millis().into(), now.millis().into()],
            )
            .await
            .map(drop)
    }

    /// Claims digest `id` for its scheduled flush when that is due (or its holder
    /// died), with every line it carries.
    pub async fn claim_digest(
        &self,
        id: i64,
        now: Timestamp,
        stale_before: Timestamp,
    ) -> Result<Option<ClaimedDigest>, StoreError> {
        let rows = self
            .sql
            .query(
                "UPDATE telegram_digests SET claimed_at = ?2 WHERE id = ?1 AND flush_at IS NOT NULL \
                   AND flush_at <= ?2 + 999 AND (claimed_at IS NULL OR claimed_at < ?3) \
                 RETURNING id, chat_id, thread, destination, message_id, attempts, created_at",
                &[id.into(), now.millis().into(), stale_before.millis().into()],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let recipient: Recipient = crate::json::read(row.opt_str("destination").unwrap_or(""))
            .map_err(|e| StoreError::Row(format!("digest {id}: destination: {e}")))?;
        let lines = self
            .sql
            .query(
                "SELECT d.id, d.notification_id, d.status, n.deployment FROM telegram_deliveries d \
                 JOIN notifications n ON n.id = d.notification_id WHERE d.digest_id = ?1 ORDER BY d.id",
                &[id.into()],
            )
            .await?;
        let mut items = Vec::with_capacity(lines.len());
        for line in &lines {
            let deployment = crate::json::read(line.opt_str("deployment").unwrap_or(""))
                .map_err(|e| StoreError::Row(format!("digest {id}: deployment: {e}")))?;
            items.push(DigestItem {
                id: line.int("id").map_err(StoreError::row)?,
                notification_id: line.int("notification_id").map_err(StoreError::row)?,
                waiting: line.opt_str("status") == Some("digested"),
                deployment,
            });
        }
        Ok(Some(ClaimedDigest {
            id,
            chat_id: row.text("chat_id").map_err(StoreError::row)?,
            thread: row.text("thread").map_err(StoreError::row)?,
            recipient,
            message_id: row.opt_int("message_id"),
            attempts: row
                .opt_int("attempts")
                .and_then(|a| u32::try_from(a).ok())
                .unwrap_or(0),
            opened_at: Timestamp::from_millis(row.opt_int("created_at").unwrap_or(0)),
            items,
        }))
    }

    /// After a digest's message shows `shown` (its message `message_id`): those lines
    /// are sent, lines that did not fit (`overflow`) move to a new digest (this one is
    /// full), and the digest is free again. Returns whether lines are still waiting
    /// in it (they came meanwhile), and the new digest the overflow went to: the
    /// caller schedules a flush of each.
    pub async fn digest_sent(
        &self,
        digest: &ClaimedDigest,
        message_id: i64,
        shown: &[i64],
        overflow: &[i64],
        now: Timestamp,
    ) -> Result<DigestSent, StoreError> {
        let shown_list = serde_json::to_string(shown).map_err(StoreError::encode)?;
        self.sql
            .execute(
                "UPDATE telegram_deliveries SET status = 'sent', message_id = ?2, last_error = NULL, \
                   next_attempt_at = NULL, updated_at = ?3 \
                 WHERE id IN (SELECT value FROM json_each(?1)) AND status = 'digested'",
                &[shown_list.into(), message_id.into(), now.millis().into()],
            )
            .await?;
        let mut next = None;
        if !overflow.is_empty() {
            let made = self
                .sql
                .query(
                    "INSERT INTO telegram_digests (chat_id, thread, destination, last_item_at, created_at, updated_at) \
                     SELECT chat_id, thread, destination, ?2, ?2, ?2 FROM telegram_digests WHERE id = ?1 \
                     RETURNING id",
                    &[digest.id.into(), now.millis().into()],
                )
                .await?;
            let made = made
                .first()
                .and_then(|r| r.opt_int("id"))
                .ok_or_else(|| StoreError::Row("the next digest was not made".into()))?;
            let list = serde_json::to_string(overflow).map_err(StoreError::encode)?;
            self.sql
                .execute(
                    "UPDATE telegram_deliveries SET digest_id = ?2, updated_at = ?3 \
                     WHERE id IN (SELECT value FROM json_each(?1)) AND status = 'digested'",
                    &[list.into(), made.into(), now.millis().into()],
                )
                .await?;
            next = Some(made);
        }
        let rows = self
            .sql
            .query(
                "UPDATE telegram_digests SET message_id = ?2, attempts = 0, last_error = NULL, claimed_at = NULL, \
                   updated_at = ?3, full = MAX(full, ?4), flush_at = CASE WHEN EXISTS (SELECT 1 FROM telegram_deliveries \
                     WHERE digest_id = ?1 AND status = 'digested') THEN -1 END \
                 WHERE id = ?1 RETURNING flush_at",
                &[
                    digest.id.into(),
                    message_id.into(),
                    now.millis().into(),
                    i64::from(next.is_some()).into(),
                ],
            )
            .await?;
        Ok(DigestSent {
            more: rows.first().and_then(|r| r.opt_int("flush_at")).is_some(),
            next,
        })
    }

    /// A digest's send failed: for good (`retry_at` none: every waiting line fails
    /// with `error`) or until `retry_at` (`attempt` counts when it is one).
    pub async fn digest_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: Option<Timestamp>,
        attempt: bool,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        match retry_at {
            Some(at) => self
                .sql
                .execute(
                    "UPDATE telegram_digests SET flush_at = ?2, claimed_at = NULL, last_error = ?3, \
                       attempts = attempts + ?4, updated_at = ?5 WHERE id = ?1",
                    &[
                        id.into(),
                        at.millis().into(),
                        error.into(),
                        i64::from(attempt).into(),
                        now.millis().into(),
                    ],
                )
                .await
                .map(drop),
            None => {
                self.sql
                    .execute(
                        "UPDATE telegram_deliveries SET status = 'failed', last_error = ?2, updated_at = ?3 \
                         WHERE digest_id = ?1 AND status = 'digested'",
                        &[id.into(), error.into(), now.millis().into()],
                    )
                    .await?;
                self.sql
                    .execute(
                        "UPDATE telegram_digests SET flush_at = NULL, claimed_at = NULL, full = 1, last_error = ?2, \
                           updated_at = ?3 WHERE id = ?1",
                        &[id.into(), error.into(), now.millis().into()],
                    )
                    .await
                    .map(drop)
            }
        }
    }

    /// Digests whose scheduled flush is overdue by `cutoff` (its queue message was lost).
    pub async fn lost_digests(&self, cutoff: Timestamp) -> Result<Vec<i64>, StoreError> {
        let rows = self
            .sql
            .query(
                "SELECT id FROM telegram_digests WHERE flush_at IS NOT NULL AND \
                   ((claimed_at IS NULL AND flush_at < ?1) OR claimed_at < ?1) ORDER BY id LIMIT 100",
                &[cutoff.millis().into()],
            )
            .await?;
        Ok(rows.iter().filter_map(|r| r.opt_int("id")).collect())
    }
}

/// What [`SendStore::digest_sent`] left to schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigestSent {
    /// Lines came meanwhile: the digest needs another send or edit.
    pub more: bool,
    /// The digest the lines that did not fit went to (this one is full).
    pub next: Option<i64>,
}

/// A digest claimed for its next send or edit.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedDigest {
    pub id: i64,
    pub chat_id: String,
    /// The concrete thread (`""` or a topic id).
    pub thread: String,
    pub recipient: Recipient,
    pub message_id: Option<i64>,
    pub attempts: u32,
    pub opened_at: Timestamp,
    pub items: Vec<DigestItem>,
}

/// One line of a digest.
#[derive(Debug, Clone, PartialEq)]
pub struct DigestItem {
    /// Its destination row.
    pub id: i64,
    pub notification_id: i64,
    /// Not yet shown in the digest's message.
    pub waiting: bool,
    pub deployment: Deployment,
}

/// An outcome as the columns it sets (`s` status, `m` message, `t` thread sent to,
/// `slot`, `next`, `d` digest, `e` error, `a` an attempt), with its row's `id`.
fn outcome_fields(o: &SendOutcome) -> serde_json::Value {
    match o {
        SendOutcome::Sent {
            id,
            message_id,
            thread,
        } => serde_json::json!({"id": id, "s": "sent", "m": message_id, "t": thread}),
        SendOutcome::Waiting { id, slot_at } => {
            serde_json::json!({"id": id, "s": "waiting", "slot": slot_at.millis(), "next": slot_at.millis()})
        }
        SendOutcome::Later { id, at } => {
            serde_json::json!({"id": id, "s": "retrying", "next": at.millis()})
        }
        SendOutcome::Retrying { id, error, next } => serde_json::json!({
            "id": id, "s": "retrying", "e": error, "next": next.millis(), "a": 1,
        }),
        SendOutcome::Digested { id, digest_id } => {
            serde_json::json!({"id": id, "s": "digested", "d": digest_id})
        }
        SendOutcome::Failed { id, error } => {
            serde_json::json!({"id": id, "s": "failed", "e": error, "a": 1})
        }
    }
}

/// The outcomes as one statement; only rows still claimed move.
fn record_statement(outcomes: &[SendOutcome], now: Timestamp) -> Option<Statement> {
    if outcomes.is_empty() {
        return None;
    }
    let rows: Vec<serde_json::Value> = outcomes.iter().map(outcome_fields).collect();
    Some(Statement {
        sql: "UPDATE telegram_deliveries SET status = json_extract(o.value, '$.s'), \
             message_id = COALESCE(json_extract(o.value, '$.m'), message_id), \
             thread_sent = COALESCE(json_extract(o.value, '$.t'), thread_sent), \
             slot_at = json_extract(o.value, '$.slot'), \
             digest_id = COALESCE(json_extract(o.value, '$.d'), digest_id), \
             last_error = json_extract(o.value, '$.e'), \
             attempts = attempts + COALESCE(json_extract(o.value, '$.a'), 0), \
             next_attempt_at = json_extract(o.value, '$.next'), claimed_at = NULL, updated_at = ?2 \
             FROM json_each(?1) AS o \
             WHERE telegram_deliveries.id = json_extract(o.value, '$.id') \
               AND telegram_deliveries.status = 'sending'",
        params: vec![
            crate::json::text(&serde_json::Value::Array(rows)).into(),
            now.millis().into(),
        ],
    })
}

/// The notifications' status from their rows' ([`SendStore::settle`]).
fn settle_statement(
    notifications: &[i64],
    now: Timestamp,
) -> Result<Option<Statement>, StoreError> {
    if notifications.is_empty() {
        return Ok(None);
    }
    let list = serde_json::to_string(notifications).map_err(StoreError::encode)?;
    Ok(Some(Statement {
        sql: "UPDATE notifications SET status = COALESCE(agg.s, notifications.status), \
               telegram_message_id = CASE WHEN agg.s IS NULL THEN telegram_message_id ELSE agg.m END, \
               last_error = CASE WHEN agg.s IS NULL THEN last_error ELSE agg.e END, \
               next_attempt_at = NULL, claimed_at = NULL, updated_at = ?2 \
             FROM (SELECT notification_id AS nid, \
                     CASE WHEN SUM(status NOT IN ('sent', 'failed', 'not_sent')) > 0 THEN NULL \
                          WHEN SUM(status = 'failed') > 0 THEN 'failed' ELSE 'sent' END AS s, \
                     MIN(message_id) AS m, \
                     group_concat(CASE WHEN status = 'failed' THEN chat_id || ': ' || last_error END, '; ') AS e \
                   FROM telegram_deliveries WHERE notification_id IN (SELECT value FROM json_each(?1)) \
                   GROUP BY notification_id) AS agg \
             WHERE notifications.id = agg.nid \
               AND notifications.status IN ('pending', 'sending', 'retrying')",
        params: vec![list.into(), now.millis().into()],
    }))
}

fn claimed(row: &Row) -> Result<ClaimedSend, StoreError> {
    let id = row.int("id").map_err(StoreError::row)?;
    let recipient = crate::json::read(row.opt_str("destination").unwrap_or(""))
        .map_err(|e| StoreError::Row(format!("telegram delivery {id}: destination: {e}")))?;
    let deployment = crate::json::read(row.opt_str("deployment").unwrap_or(""))
        .map_err(|e| StoreError::Row(format!("telegram delivery {id}: deployment: {e}")))?;
    Ok(ClaimedSend {
        id,
        notification_id: row.int("notification_id").map_err(StoreError::row)?,
        recipient,
        slot_at: row.opt_int("slot_at").map(Timestamp::from_millis),
        attempts: row
            .opt_int("attempts")
            .and_then(|a| u32::try_from(a).ok())
            .unwrap_or(0),
        deployment,
    })
}
