//! The messages that follow something as it moves: a deploy job, a preview, a
//! workflow. A flow says what its message should read now ([`show`]); every
//! destination its routes name gets one message, edited in place as the text
//! changes. The sends and edits themselves go through the `TELEGRAM` queue
//! (`telegram_live` messages), where they take their chat's pace slot like every
//! other message, so a flow never waits on Telegram and never floods a chat.

use crate::config::Config;
use crate::jobs::JobMessage;
use crate::names::AppName;
use crate::ports::{Queue, Sql, StoreError};
use crate::routes::{Outcome, Source, Subject};
use crate::routing::{Recipient, Routes};
use crate::row::Columns;
use crate::time::Timestamp;

/// What a flow's message is about and what it reads now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Live<'a> {
    /// `job:12`, `preview:3`, `workflow:7`: one message per subject and destination.
    pub subject: String,
    pub source: Source,
    /// The app (or workflow) it belongs to.
    pub project: &'a str,
    pub environment: Option<&'a str>,
    pub branch: Option<&'a str>,
    pub outcome: Outcome,
    /// Telegram HTML; the flow escapes what it puts in.
    pub html: String,
    /// Its fields, for a destination that names a template (`status`, `job_url`, …).
    pub values: crate::template::Values,
    /// Without a sound wherever it goes.
    pub silent: bool,
    /// The app's `telegram_chat_id`: a route of its own for its messages.
    pub app_chat: Option<&'a str>,
    /// The buttons it offers now, in every destination (none: no keyboard).
    pub buttons: Vec<crate::chatops::Action>,
}

/// Brings `live`'s message up to date in every destination its routes name now: a
/// destination new to it gets the message, one that shows older text is edited.
/// Best effort (Telegram never holds a flow up); returns a line for the log.
pub async fn show<S: Sql + Copy, Q: Queue>(
    config: &Config,
    sql: S,
    queue: &Q,
    live: &Live<'_>,
    now: Timestamp,
) -> Option<String> {
    config.telegram.as_ref().ok()?;
    let app = AppName::parse(live.project).ok();
    let own = match (&app, live.app_chat) {
        (Some(name), Some(chat)) => Some((name, chat)),
        _ => None,
    };
    let routes = match Routes::load_for(sql, config, own).await {
        Ok(r) => r,
        Err(e) => return Some(format!("telegram: routes: {e}")),
    };
    let subject = Subject {
        source: live.source,
        project: live.project,
        environment: live.environment,
        branch: live.branch,
        outcome: live.outcome,
    };
    let mut recipients = routes.recipients(&subject);
    for r in &mut recipients {
        r.silent |= live.silent;
    }
    // A destination's template renders the message's fields (checked when its route
    // was saved; one that no longer parses falls back to the built-in text).
    let shown: Vec<(Recipient, String)> = recipients
        .into_iter()
        .map(|r| {
            let html = match r.template.as_deref().map(crate::template::Template::parse) {
                Some(Ok(t)) => t.render(&live.values).html,
                _ => live.html.clone(),
            };
            (r, html)
        })
        .collect();
    let buttons = crate::chatops::actions_text(&live.buttons);
    let changed = match LiveStore::new(sql)
        .upsert(&live.subject, live.project, &shown, &buttons, now)
        .await
    {
        Ok(ids) => ids,
        Err(e) => return Some(format!("telegram: {e}")),
    };
    for id in &changed {
        if let Err(e) = queue.send(&JobMessage::TelegramLive { id: *id }).await {
            return Some(format!("telegram: {e}; the sweep will send it"));
        }
    }
    None
}

/// A live message row claimed for one send or edit.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedLive {
    pub id: i64,
    /// `job:12`.
    pub subject: String,
    pub project: String,
    pub recipient: Recipient,
    pub html: String,
    /// The version of `html` this attempt shows.
    pub version: i64,
    pub message_id: Option<i64>,
    pub slot_at: Option<Timestamp>,
    pub attempts: u32,
    /// The actions it should offer (`telegram_live.buttons`).
    pub buttons: String,
    /// The actions `markup` was made for: when they differ from `buttons`, new
    /// tokens are minted before the send.
    pub minted: String,
    /// The inline keyboard (JSON), with its tokens.
    pub markup: Option<String>,
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveOutcome {
    /// Telegram shows `version` as message `message_id`.
    Shown { version: i64, message_id: i64 },
    /// Again at `at`, holding that slot (`slot`) or none.
    Wait { at: Timestamp, slot: bool },
    /// Failed transiently (an attempt): again at `at`.
    Retry { error: String, at: Timestamp },
    /// Failed for good: this version is given up on (a later one is tried).
    Failed { version: i64, error: String },
}

/// A message sent before, as Telegram shows it, for [`LiveStore::adopt`] (a
/// notification's: `crate::notify::sends::SendStore::shown`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    pub route: String,
    pub chat_id: String,
    /// The thread it went to (`""`: the chat itself).
    pub thread: String,
    /// The destination as its row keeps it (a [`Recipient`] as JSON).
    pub destination: String,
    pub message_id: i64,
}

/// The `telegram_live` rows.
pub struct LiveStore<S> {
    sql: S,
}

impl<S: Sql> LiveStore<S> {
    pub fn new(sql: S) -> Self {
        LiveStore { sql }
    }

    /// Records what `subject`'s message should read in each destination, and the
    /// buttons it offers, in one statement; returns the rows that are new or whose
    /// text or buttons changed.
    pub async fn upsert(
        &self,
        subject: &str,
        project: &str,
        shown: &[(Recipient, String)],
        buttons: &str,
        now: Timestamp,
    ) -> Result<Vec<i64>, StoreError> {
        if shown.is_empty() {
            return Ok(Vec::new());
        }
        let list: Vec<serde_json::Value> = shown
            .iter()
            .map(|(r, html)| {
                serde_json::json!({
                    "route": r.route, "chat": r.chat_id, "thread": r.thread, "html": html,
                    "dest": serde_json::to_string(r).unwrap_or_default(),
                })
            })
            .collect();
        let rows = self
            .sql
            .query(
                "INSERT INTO telegram_live \
                 (subject, project, route, chat_id, thread, destination, html, buttons, created_at, updated_at) \
                 SELECT ?1, ?2, json_extract(value, '$.route'), json_extract(value, '$.chat'), \
                   json_extract(value, '$.thread'), json_extract(value, '$.dest'), \
                   json_extract(value, '$.html'), ?5, ?3, ?3 \
                 FROM json_each(?4) WHERE true \
                 ON CONFLICT (subject, chat_id, thread) DO UPDATE SET html = excluded.html, \
                   buttons = excluded.buttons, version = telegram_live.version + 1, \
                   updated_at = excluded.updated_at \
                 WHERE telegram_live.html <> excluded.html OR telegram_live.buttons <> excluded.buttons \
                 RETURNING id",
                &[
                    subject.into(),
                    project.into(),
                    now.millis().into(),
                    crate::json::text(&serde_json::Value::Array(list)).into(),
                    buttons.into(),
                ],
            )
            .await?;
        Ok(rows.iter().filter_map(|r| r.opt_int("id")).collect())
    }

    /// Claims row `id` when it shows older text than it should, is due, and no
    /// consumer holds a fresh claim on it.
    pub async fn claim(
        &self,
        id: i64,
        now: Timestamp,
        stale_before: Timestamp,
    ) -> Result<Option<ClaimedLive>, StoreError> {
        let rows = self
            .sql
            .query(
                "UPDATE telegram_live SET claimed_at = ?2 WHERE id = ?1 AND shown < version \
                   AND (claimed_at IS NULL OR claimed_at < ?3) \
                   AND (next_attempt_at IS NULL OR next_attempt_at <= ?2 + 999) \
                 RETURNING id, subject, project, destination, html, version, message_id, slot_at, attempts, \
                   buttons, minted, markup",
                &[id.into(), now.millis().into(), stale_before.millis().into()],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let recipient = crate::json::read(row.opt_str("destination").unwrap_or(""))
            .map_err(|e| StoreError::Row(format!("live message {id}: destination: {e}")))?;
        Ok(Some(ClaimedLive {
            id,
            subject: row.text("subject")?,
            project: row.text("project").map_err(StoreError::row)?,
            recipient,
            html: row.text("html").map_err(StoreError::row)?,
            version: row.int("version").map_err(StoreError::row)?,
            message_id: row.opt_int("message_id"),
            slot_at: row.opt_int("slot_at").map(Timestamp::from_millis),
            attempts: row
                .opt_int("attempts")
                .and_then(|a| u32::try_from(a).ok())
                .unwrap_or(0),
            buttons: row.opt_text("buttons").unwrap_or_default(),
            minted: row.opt_text("minted").unwrap_or_default(),
            markup: row.opt_text("markup"),
        }))
    }

    /// Keeps row `id`'s keyboard: `markup` (JSON, or none), made for `minted`.
    pub async fn set_markup(
        &self,
        id: i64,
        minted: &str,
        markup: Option<&str>,
    ) -> Result<(), StoreError> {
        self.sql
            .execute(
                "UPDATE telegram_live SET minted = ?2, markup = ?3 WHERE id = ?1",
                &[id.into(), minted.into(), markup.into()],
            )
            .await
            .map(drop)
    }

    /// Gives row `id` fresh buttons (their tokens expired): a new version whose
    /// send mints them again. `false` when there is no such row.
    pub async fn remint(&self, id: i64, now: Timestamp) -> Result<bool, StoreError> {
        let done = self
            .sql
            .execute(
                "UPDATE telegram_live SET minted = '-', version = version + 1, updated_at = ?2 WHERE id = ?1",
                &[id.into(), now.millis().into()],
            )
            .await?;
        Ok(done.changes == 1)
    }

    /// Records an attempt and frees the row; `true` when newer text is waiting (then
    /// the caller queues the row again).
    pub async fn record(
        &self,
        id: i64,
        outcome: &LiveOutcome,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let (sql, params): (&str, Vec<crate::ports::SqlValue>) = match outcome {
            LiveOutcome::Shown {
                version,
                message_id,
            } => (
                "UPDATE telegram_live SET shown = MAX(shown, ?2), message_id = ?3, slot_at = NULL, \
                   attempts = 0, last_error = NULL, next_attempt_at = NULL, claimed_at = NULL, updated_at = ?4 \
                 WHERE id = ?1 RETURNING shown < version AS more",
                vec![id.into(), (*version).into(), (*message_id).into(), now.millis().into()],
            ),
            LiveOutcome::Wait { at, slot } => (
                "UPDATE telegram_live SET slot_at = CASE WHEN ?3 = 1 THEN ?2 END, next_attempt_at = ?2, \
                   claimed_at = NULL, updated_at = ?4 WHERE id = ?1 RETURNING 0 AS more",
                vec![id.into(), at.millis().into(), i64::from(*slot).into(), now.millis().into()],
            ),
            LiveOutcome::Retry { error, at } => (
                "UPDATE telegram_live SET attempts = attempts + 1, last_error = ?3, next_attempt_at = ?2, \
                   slot_at = NULL, claimed_at = NULL, updated_at = ?4 WHERE id = ?1 RETURNING 0 AS more",
                vec![id.into(), at.millis().into(), error.as_str().into(), now.millis().into()],
            ),
            LiveOutcome::Failed { version, error } => (
                "UPDATE telegram_live SET shown = MAX(shown, ?2), last_error = ?3, attempts = 0, \
                   next_attempt_at = NULL, slot_at = NULL, claimed_at = NULL, updated_at = ?4 \
                 WHERE id = ?1 RETURNING shown < version AS more",
                vec![id.into(), (*version).into(), error.as_str().into(), now.millis().into()],
            ),
        };
        let rows = self.sql.query(sql, &params).await?;
        Ok(rows.first().and_then(|r| r.opt_int("more")) == Some(1))
    }

    /// Rows behind their text whose queue message was evidently lost (due, or
    /// claimed, before `cutoff`).
    pub async fn lost(&self, cutoff: Timestamp) -> Result<Vec<i64>, StoreError> {
        let rows = self
            .sql
            .query(
                "SELECT id FROM telegram_live WHERE shown < version AND \
                   ((claimed_at IS NULL AND COALESCE(next_attempt_at, updated_at) < ?1) OR claimed_at < ?1) \
                 ORDER BY id LIMIT 100",
                &[cutoff.millis().into()],
            )
            .await?;
        Ok(rows.iter().filter_map(|r| r.opt_int("id")).collect())
    }

    /// After the sweep queued row `id` again: due now, free.
    pub async fn requeued(&self, id: i64, now: Timestamp) -> Result<(), StoreError> {
        self.sql
            .execute(
                "UPDATE telegram_live SET claimed_at = NULL, slot_at = NULL, next_attempt_at = ?2, \
                   updated_at = ?2 WHERE id = ?1",
                &[id.into(), now.millis().into()],
            )
            .await
            .map(drop)
    }

    /// Takes over messages sent before (a notification's): each becomes `subject`'s
    /// live row in its destination, to be edited to `html` with `buttons` (the
    /// actions it offers, as [`LiveStore::upsert`] takes them); returns the rows that
    /// are new or whose text or buttons changed.
    pub async fn adopt(
        &self,
        subject: &str,
        project: &str,
        shown: &[(&SentMessage, String)],
        buttons: &str,
        now: Timestamp,
    ) -> Result<Vec<i64>, StoreError> {
        if shown.is_empty() {
            return Ok(Vec::new());
        }
        let list: Vec<serde_json::Value> = shown
            .iter()
            .map(|(m, html)| {
                serde_json::json!({
                    "route": m.route, "chat": m.chat_id, "thread": m.thread, "html": html,
                    "dest": m.destination, "message": m.message_id,
                })
            })
            .collect();
        let rows = self
            .sql
            .query(
                "INSERT INTO telegram_live \
                 (subject, project, route, chat_id, thread, destination, html, buttons, message_id, \
                   created_at, updated_at) \
                 SELECT ?1, ?2, json_extract(value, '$.route'), json_extract(value, '$.chat'), \
                   json_extract(value, '$.thread'), json_extract(value, '$.dest'), \
                   json_extract(value, '$.html'), ?5, json_extract(value, '$.message'), ?3, ?3 \
                 FROM json_each(?4) WHERE true \
                 ON CONFLICT (subject, chat_id, thread) DO UPDATE SET html = excluded.html, \
                   buttons = excluded.buttons, version = telegram_live.version + 1, \
                   updated_at = excluded.updated_at \
                 WHERE telegram_live.html <> excluded.html OR telegram_live.buttons <> excluded.buttons \
                 RETURNING id",
                &[
                    subject.into(),
                    project.into(),
                    now.millis().into(),
                    crate::json::text(&serde_json::Value::Array(list)).into(),
                    buttons.into(),
                ],
            )
            .await?;
        Ok(rows.iter().filter_map(|r| r.opt_int("id")).collect())
    }

    /// `subject`'s message in each destination: (chat, thread, message id).
    pub async fn messages(
        &self,
        subject: &str,
    ) -> Result<Vec<(String, String, Option<i64>)>, StoreError> {
        let rows = self
            .sql
            .query(
                "SELECT chat_id, thread, message_id FROM telegram_live WHERE subject = ?1 ORDER BY id",
                &[subject.into()],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.opt_text("chat_id").unwrap_or_default(),
                    r.opt_text("thread").unwrap_or_default(),
                    r.opt_int("message_id"),
                )
            })
            .collect())
    }
}
