//! The consumer's side of live messages ([`crate::live`]): a deploy job's, preview's
//! or workflow's text, sent or edited at the chat's pace.

use super::post::{Post, Posted, Text};
use super::*;

impl<'a, H: Http, S: Sql + Copy, Q: Queue> Courier<'a, H, S, Q> {
    /// Sends or edits live message `id` (a `telegram_live` message): the deploy job's,
    /// preview's or workflow's text as it stands, at the chat's pace.
    pub async fn flush_live(&self, id: i64, now: Timestamp) -> Delivered {
        use crate::live::{LiveOutcome, LiveStore};
        let done = |verdict, log| Delivered { id, verdict, log };
        let Ok(telegram) = &self.config.telegram else {
            return done(
                Verdict::Ack,
                format!("live message {id}: Telegram is not configured"),
            );
        };
        let store = LiveStore::new(self.sql);
        let c = match store.claim(id, now, Self::stale_before(now)).await {
            Ok(Some(c)) => c,
            Ok(None) => return done(Verdict::Ack, format!("live message {id}: nothing due")),
            Err(e) => {
                return done(
                    Verdict::Retry {
                        delay_seconds: crate::retry::BACKOFF_BASE_SECONDS,
                    },
                    format!("live message {id}: {e}"),
                )
            }
        };
        let client = TelegramClient::new(self.http, telegram);
        let r = &c.recipient;
        let tag = format!("live message {id} → {}{}", r.chat_id, thread_tag(&r.thread));
        let markup = match self.keyboard(&store, &c, now).await {
            Ok(m) => m,
            Err(e) => {
                let error = format!("its buttons: {e}");
                let delay = crate::retry::BACKOFF_BASE_SECONDS;
                let at = now.plus_seconds(i64::from(delay));
                let _ = store
                    .record(id, &LiveOutcome::Retry { error, at }, now)
                    .await;
                return done(
                    Verdict::Retry {
                        delay_seconds: crate::retry::BACKOFF_BASE_SECONDS,
                    },
                    format!("{tag}: its buttons: {e}"),
                );
            }
        };
        let markup = markup.as_ref();
        let holds = c.slot_at.is_some_and(|s| s.millis() <= now.millis() + 999);
        let text = match c.message_id {
            Some(m) => Text::Edit(m, &c.html, markup),
            None => Text::Html(&c.html, markup),
        };
        let mut posted = self
            .post(
                &client,
                Post {
                    recipient: r,
                    project: &c.project,
                    holds,
                    may_digest: false,
                    text,
                },
                now,
            )
            .await;
        if let (Some(_), Posted::Failed(telegram::SendOutcome::Permanent { error })) =
            (c.message_id, &posted)
        {
            if error.contains("message to edit not found") {
                // Someone deleted it: it starts again as a new message (in the slot
                // the refused edit did not use).
                posted = self
                    .post(
                        &client,
                        Post {
                            recipient: r,
                            project: &c.project,
                            holds: true,
                            may_digest: false,
                            text: Text::Html(&c.html, markup),
                        },
                        now,
                    )
                    .await;
            }
        }
        let (outcome, later, log) = match posted {
            Posted::Sent {
                message_id, note, ..
            } => (
                LiveOutcome::Shown {
                    version: c.version,
                    message_id,
                },
                None,
                format!(
                    "{tag}: shows version {} as message {message_id}{note}",
                    c.version
                ),
            ),
            Posted::Wait { at, slot, why } => (
                LiveOutcome::Wait { at, slot },
                Some(delay_seconds(now, at).unwrap_or(0)),
                format!("{tag}: {why}"),
            ),
            Posted::Digest { .. } => {
                // A live message takes its slot whatever waits (`may_digest` false).
                let at = now.plus_seconds(1);
                (
                    LiveOutcome::Wait { at, slot: false },
                    Some(1),
                    format!("{tag}: waits"),
                )
            }
            Posted::Failed(e) => match telegram::decide(e, c.attempts + 1) {
                telegram::DeliveryAction::Sent { message_id } => (
                    LiveOutcome::Shown {
                        version: c.version,
                        message_id,
                    },
                    None,
                    format!("{tag}: shown as message {message_id}"),
                ),
                telegram::DeliveryAction::Retry {
                    delay_seconds,
                    error,
                } => (
                    LiveOutcome::Retry {
                        at: now.plus_seconds(i64::from(delay_seconds)),
                        error: error.clone(),
                    },
                    Some(delay_seconds),
                    format!("{tag}: {error}; retrying in {delay_seconds} s"),
                ),
                telegram::DeliveryAction::GiveUp { error }
                | telegram::DeliveryAction::Fail { error } => (
                    LiveOutcome::Failed {
                        version: c.version,
                        error: error.clone(),
                    },
                    None,
                    format!("{tag}: failed: {error}"),
                ),
            },
        };
        let mut log = log;
        match store.record(id, &outcome, now).await {
            Ok(more) => {
                let message = JobMessage::TelegramLive { id };
                if let Some(delay) = later {
                    self.queue_later(&message, delay, &mut log).await;
                } else if more {
                    // Its flow moved on meanwhile: show the newer text too.
                    self.queue_later(&message, 0, &mut log).await;
                }
                done(Verdict::Ack, log)
            }
            Err(e) => done(
                Verdict::Retry {
                    delay_seconds: crate::retry::BACKOFF_BASE_SECONDS,
                },
                format!("{log} (not recorded: {e})"),
            ),
        }
    }

    /// The keyboard claimed row `c` is to show: the one made for its buttons, or,
    /// when its buttons changed (or their tokens expired), one with new tokens.
    async fn keyboard(
        &self,
        store: &crate::live::LiveStore<S>,
        c: &crate::live::ClaimedLive,
        now: Timestamp,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        use crate::chatops::store::{ButtonStore, On};
        if c.buttons == c.minted {
            return Ok(c.markup.as_deref().and_then(|m| crate::json::value(m).ok()));
        }
        let actions = crate::chatops::actions_of(&c.buttons);
        let tokens = ButtonStore::new(self.sql)
            .mint(
                On::Live(c.id),
                &c.recipient.chat_id,
                &c.subject,
                Some(&c.project),
                &actions,
                now,
            )
            .await?;
        let markup = crate::chatops::keyboard(&tokens);
        let text = markup.as_ref().map(crate::json::text);
        store.set_markup(c.id, &c.buttons, text.as_deref()).await?;
        Ok(markup)
    }
}
