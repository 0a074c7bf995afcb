//! Chat-ops in D1: the updates taken from the webhook (`telegram_updates`, each
//! `update_id` once) and the buttons' tokens (`telegram_buttons`: what a press may
//! do, where, until when, and the one press that used it).

use super::{Action, Update};
use crate::ports::{Sql, StoreError};
use crate::row::Columns;
use crate::time::Timestamp;

/// The recorded updates.
pub struct UpdateStore<S> {
    sql: S,
}

/// A recorded update as the consumer takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub update: Update,
    pub done: bool,
    /// Failed attempts so far (a reply Telegram did not take).
    pub attempts: u32,
}

impl<S: Sql> UpdateStore<S> {
    pub fn new(sql: S) -> Self {
        UpdateStore { sql }
    }

    /// Records update `id` as queued; `false` when it was recorded before (Telegram
    /// sent it again): then nothing more is done with it.
    pub async fn record(
        &self,
        id: i64,
        update: &Update,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let payload = serde_json::to_string(update).map_err(StoreError::encode)?;
        let done = self
            .sql
            .execute(
                "INSERT INTO telegram_updates (update_id, kind, payload, status, received_at, updated_at) \
                 VALUES (?1, ?2, ?3, 'queued', ?4, ?4) ON CONFLICT DO NOTHING",
                &[id.into(), update.kind().into(), payload.into(), now.millis().into()],
            )
            .await?;
        Ok(done.changes == 1)
    }

    pub async fn get(&self, id: i64) -> Result<Option<Recorded>, StoreError> {
        let rows = self
            .sql
            .query(
                "SELECT payload, status, attempts FROM telegram_updates WHERE update_id = ?1",
                &[id.into()],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let update = crate::json::read(row.opt_str("payload").unwrap_or(""))
            .map_err(|e| StoreError::Row(format!("update {id}: {e}")))?;
        Ok(Some(Recorded {
            update,
            done: row.opt_str("status") == Some("done"),
            attempts: row
                .opt_int("attempts")
                .and_then(|a| u32::try_from(a).ok())
                .unwrap_or(0),
        }))
    }

    /// Update `id` is done with; `detail` says what came of it.
    pub async fn finish(&self, id: i64, detail: &str, now: Timestamp) -> Result<(), StoreError> {
        self.sql
            .execute(
                "UPDATE telegram_updates SET status = 'done', detail = ?2, updated_at = ?3 \
                 WHERE update_id = ?1",
                &[id.into(), detail.into(), now.millis().into()],
            )
            .await
            .map(drop)
    }

    /// A failed attempt at update `id` (it stays queued); returns the attempts so far.
    pub async fn failed(&self, id: i64, error: &str, now: Timestamp) -> Result<u32, StoreError> {
        let rows = self
            .sql
            .query(
                "UPDATE telegram_updates SET attempts = attempts + 1, detail = ?2, updated_at = ?3 \
                 WHERE update_id = ?1 RETURNING attempts",
                &[id.into(), error.into(), now.millis().into()],
            )
            .await?;
        Ok(rows
            .first()
            .and_then(|r| r.opt_int("attempts"))
            .and_then(|a| u32::try_from(a).ok())
            .unwrap_or(0))
    }

    /// Queued updates untouched since `cutoff`: their queue message was lost.
    /// Touched again, so the next sweep gives the message its time.
    pub async fn lost(&self, cutoff: Timestamp, now: Timestamp) -> Result<Vec<i64>, StoreError> {
        let rows = self
            .sql
            .query(
                "UPDATE telegram_updates SET updated_at = ?2 WHERE update_id IN \
                 (SELECT update_id FROM telegram_updates WHERE status = 'queued' AND updated_at < ?1 \
                  ORDER BY update_id LIMIT 100) RETURNING update_id",
                &[cutoff.millis().into(), now.millis().into()],
            )
            .await?;
        Ok(rows.iter().filter_map(|r| r.opt_int("update_id")).collect())
    }
}

/// A button's token row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Button {
    pub token: String,
    /// `job:12`.
    pub subject: String,
    pub action: Option<Action>,
    /// Whose operators may press it.
    pub app: Option<String>,
    pub chat_id: String,
    /// The live message it is on, if it is on one.
    pub live_id: Option<i64>,
    /// The message it is on (a live message's current one, or a reply's).
    pub message_id: Option<i64>,
    pub expires_at: Timestamp,
    pub used: bool,
    /// The update whose press used it.
    pub used_by_update: Option<i64>,
}

/// Where new buttons go: on a live message, or on a reply (whose message id is
/// recorded once it is sent, [`ButtonStore::placed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum On<'a> {
    Live(i64),
    Reply { chat_id: &'a str },
}

pub struct ButtonStore<S> {
    sql: S,
}

impl<S: Sql> ButtonStore<S> {
    pub fn new(sql: S) -> Self {
        ButtonStore { sql }
    }

    /// Makes a token for each of `actions` on `subject` (random, from D1's
    /// `randomblob`, 18 characters: far inside Telegram's 64 bytes of
    /// `callback_data`), good for [`super::BUTTON_TTL_HOURS`]. `chat_id` is the live
    /// message's chat for [`On::Live`]. In the order of `actions`.
    pub async fn mint(
        &self,
        on: On<'_>,
        chat_id: &str,
        subject: &str,
        app: Option<&str>,
        actions: &[Action],
        now: Timestamp,
    ) -> Result<Vec<(Action, String)>, StoreError> {
        if actions.is_empty() {
            return Ok(Vec::new());
        }
        let live = match on {
            On::Live(id) => Some(id),
            On::Reply { .. } => None,
        };
        let chat = match on {
            On::Live(_) => chat_id,
            On::Reply { chat_id } => chat_id,
        };
        let names = super::actions_text(actions);
        let list: Vec<&str> = names.split(',').collect();
        let rows = self
            .sql
            .query(
                "INSERT INTO telegram_buttons (token, subject, action, app, chat_id, live_id, expires_at, created_at) \
                 SELECT lower(hex(randomblob(9))), ?1, value, ?2, ?3, ?4, ?5, ?6 FROM json_each(?7) WHERE true \
                 RETURNING token, action",
                &[
                    subject.into(),
                    app.into(),
                    chat.into(),
                    live.into(),
                    now.plus_seconds(super::BUTTON_TTL_HOURS * 3600).millis().into(),
                    now.millis().into(),
                    serde_json::to_string(&list).map_err(StoreError::encode)?.into(),
                ],
            )
            .await?;
        let mut out = Vec::with_capacity(actions.len());
        for action in actions {
            let token = rows
                .iter()
                .find(|r| r.opt_str("action") == Some(action.as_str()))
                .and_then(|r| r.opt_text("token"))
                .ok_or_else(|| StoreError::Row("a button was not made".into()))?;
            out.push((*action, token));
        }
        Ok(out)
    }

    /// Records the message a reply's buttons went out on.
    pub async fn placed(&self, tokens: &[String], message_id: i64) -> Result<(), StoreError> {
        let list = serde_json::to_string(tokens).map_err(StoreError::encode)?;
        self.sql
            .execute(
                "UPDATE telegram_buttons SET message_id = ?2 WHERE token IN (SELECT value FROM json_each(?1))",
                &[list.into(), message_id.into()],
            )
            .await
            .map(drop)
    }

    pub async fn find(&self, token: &str) -> Result<Option<Button>, StoreError> {
        let rows = self
            .sql
            .query(
                "SELECT b.token, b.subject, b.action, b.app, b.chat_id, b.live_id, \
                   COALESCE(l.message_id, b.message_id) AS message_id, b.expires_at, b.used_at, b.update_id \
                 FROM telegram_buttons b LEFT JOIN telegram_live l ON l.id = b.live_id WHERE b.token = ?1",
                &[token.into()],
            )
            .await?;
        let Some(r) = rows.first() else {
            return Ok(None);
        };
        Ok(Some(Button {
            token: r.text("token")?,
            subject: r.text("subject")?,
            action: r.opt_str("action").and_then(Action::parse),
            app: r.opt_text("app"),
            chat_id: r.text("chat_id")?,
            live_id: r.opt_int("live_id"),
            message_id: r.opt_int("message_id"),
            expires_at: Timestamp::from_millis(r.int("expires_at")?),
            used: r.opt_int("used_at").is_some(),
            used_by_update: r.opt_int("update_id"),
        }))
    }

    /// Uses the button for `update` by `user`, if nothing used it yet and it has not
    /// expired: one conditional update, so of two quick taps exactly one gets `true`.
    pub async fn claim(
        &self,
        token: &str,
        user: i64,
        update: i64,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let done = self
            .sql
            .execute(
                "UPDATE telegram_buttons SET used_at = ?4, used_by = ?2, update_id = ?3 \
                 WHERE token = ?1 AND used_at IS NULL AND expires_at > ?4",
                &[
                    token.into(),
                    user.into(),
                    update.into(),
                    now.millis().into(),
                ],
            )
            .await?;
        Ok(done.changes == 1)
    }
}
