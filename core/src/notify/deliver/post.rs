//! Taking one message to Telegram: its forum topic, its pace slot, the send or edit,
//! the topic's fallback and a 429's block. Notifications, digests' lines and live
//! messages all go through [`Courier::post`].

use super::*;
use crate::chatops::store::{ButtonStore, On};

/// What a [`Courier::post`] takes to Telegram: a new message, or an edit of one.
#[derive(Clone, Copy)]
pub(crate) enum Text<'a> {
    /// A notification: HTML, and plain text if Telegram cannot parse it; with the
    /// buttons it offers.
    New(&'a telegram::Rendered, Option<Offer<'a>>),
    /// A live message's HTML (its flow escaped every value), with its keyboard.
    Html(&'a str, Option<&'a serde_json::Value>),
    Edit(i64, &'a str, Option<&'a serde_json::Value>),
}

/// The buttons a new message offers: their tokens are made for its chat just before
/// it is sent (not for a message that waits or joins a digest), and placed on it once
/// it is.
#[derive(Clone, Copy)]
pub(crate) struct Offer<'a> {
    /// `notification:12`.
    pub subject: &'a str,
    /// Whose operators may press them, besides `TELEGRAM_OPERATORS`.
    pub app: Option<&'a str>,
    pub actions: &'a [crate::chatops::Action],
}

/// One message for [`Courier::post`].
#[derive(Clone, Copy)]
pub(crate) struct Post<'a> {
    pub recipient: &'a Recipient,
    /// Whose topic `topic: "auto"` means.
    pub project: &'a str,
    /// It holds a pace slot that has come.
    pub holds: bool,
    /// A burst may turn it into a digest line.
    pub may_digest: bool,
    pub text: Text<'a>,
}

/// What came of a [`Courier::post`].
pub(crate) enum Posted {
    Sent {
        message_id: i64,
        /// The thread it went to, when that is not the recipient's own.
        went_to: Option<String>,
        /// For the log: a topic was refused.
        note: String,
    },
    /// Not now: at `at`, holding that pace slot (`slot`) or none (a topic is being
    /// made).
    Wait {
        at: Timestamp,
        slot: bool,
        why: String,
    },
    /// The chat has too many waiting: join the destination's digest.
    Digest { thread: String, pace: Pace },
    /// Telegram (or the database) failed; the caller counts the attempt.
    Failed(telegram::SendOutcome),
}

impl<'a, H: Http, S: Sql + Copy, Q: Queue> Courier<'a, H, S, Q> {
    /// Takes a message to Telegram: its topic (made for the project when it is
    /// `auto`), its pace slot (unless it holds one; a burst may become a digest when
    /// it may), then the send or edit, with the chat itself when the topic is refused
    /// and the chat's block and a new slot after a 429.
    pub(crate) async fn post(
        &self,
        client: &TelegramClient<'_, H>,
        post: Post<'_>,
        now: Timestamp,
    ) -> Posted {
        let Post {
            recipient: r,
            project,
            holds,
            may_digest,
            text,
        } = post;
        let thread = match self.thread(client, r, project, now).await {
            Ok(Some(t)) => t,
            Ok(None) => {
                return Posted::Wait {
                    at: now.plus_seconds(i64::from(TOPIC_WAIT_SECONDS)),
                    slot: false,
                    why: format!(
                        "its topic is being made; looking again in {TOPIC_WAIT_SECONDS} s"
                    ),
                }
            }
            Err(e) => return Posted::Failed(e),
        };
        let thread_key = thread.map(|t| t.to_string()).unwrap_or_default();
        if let (Some(pace), false) = (r.pace(), holds) {
            match self
                .pace()
                .reserve(&r.chat_id, &thread_key, pace, !may_digest, now)
                .await
            {
                Ok(Slot::At(at)) if at.millis() > now.millis() => {
                    return Posted::Wait {
                        at,
                        slot: true,
                        why: "waits for its slot".into(),
                    }
                }
                Ok(Slot::At(_)) => {}
                Ok(Slot::Digest) => {
                    return Posted::Digest {
                        thread: thread_key,
                        pace,
                    }
                }
                Err(e) => {
                    return Posted::Failed(telegram::SendOutcome::Transient {
                        error: e.to_string(),
                    })
                }
            }
        }
        let target = Target {
            chat_id: &r.chat_id,
            thread,
            silent: r.silent,
            link_preview: r.link_preview,
        };
        let tokens = match text {
            Text::New(_, Some(offer)) => match ButtonStore::new(self.sql)
                .mint(
                    On::Reply {
                        chat_id: &r.chat_id,
                    },
                    &r.chat_id,
                    offer.subject,
                    offer.app,
                    offer.actions,
                    now,
                )
                .await
            {
                Ok(tokens) => tokens,
                Err(e) => {
                    return Posted::Failed(telegram::SendOutcome::Transient {
                        error: format!("its buttons: {e}"),
                    })
                }
            },
            _ => Vec::new(),
        };
        let markup = crate::chatops::keyboard(&tokens);
        let mut sent = send_text(client, &target, text, markup.as_ref()).await;
        let mut went_to = (r.thread != thread_key).then(|| thread_key.clone());
        let mut note = String::new();
        let new = !matches!(text, Text::Edit(..));
        if new && thread.is_some() && telegram::topic_refused(&sent) {
            // The chat is not a forum, or the topic is gone: the chat itself.
            if r.thread == "auto" {
                let _ = self.sends().forget_topic(&r.chat_id, project).await;
            }
            note = format!(" (Telegram refused topic {thread_key}; sent to the chat itself)");
            sent = send_text(
                client,
                &Target {
                    thread: None,
                    ..target
                },
                text,
                markup.as_ref(),
            )
            .await;
            went_to = Some(String::new());
        }
        match sent {
            telegram::SendOutcome::Sent { message_id } => {
                if !tokens.is_empty() {
                    let tokens: Vec<String> = tokens.into_iter().map(|(_, t)| t).collect();
                    if let Err(e) = ButtonStore::new(self.sql).placed(&tokens, message_id).await {
                        note.push_str(&format!(" (its buttons were not placed: {e})"));
                    }
                }
                Posted::Sent {
                    message_id,
                    went_to,
                    note,
                }
            }
            telegram::SendOutcome::RateLimited { retry_after } => {
                let until = now.plus_seconds(i64::from(retry_after));
                let pace = self.pace();
                let at = match r.pace() {
                    Some(p) => match pace.block(&r.chat_id, until).await {
                        Ok(()) => match pace.reserve(&r.chat_id, "", p, true, now).await {
                            Ok(Slot::At(at)) => at,
                            _ => until,
                        },
                        Err(_) => until,
                    },
                    None => until,
                };
                Posted::Wait {
                    at,
                    slot: true,
                    why: format!("Telegram 429: retry after {retry_after} s (not an attempt)"),
                }
            }
            other => Posted::Failed(other),
        }
    }

    /// The thread to send to: `Ok(None)` while another consumer makes the project's
    /// topic, `Err` when making it failed in a way worth retrying.
    async fn thread(
        &self,
        client: &TelegramClient<'_, H>,
        r: &Recipient,
        project: &str,
        now: Timestamp,
    ) -> Result<Option<Option<i64>>, telegram::SendOutcome> {
        match r.thread.as_str() {
            "" => return Ok(Some(None)),
            "auto" => {}
            id => return Ok(Some(id.parse().ok())),
        }
        let store_error = |e: StoreError| telegram::SendOutcome::Transient {
            error: e.to_string(),
        };
        match self
            .sends()
            .topic(&r.chat_id, project, now, Self::stale_before(now))
            .await
            .map_err(store_error)?
        {
            Some(-1) => return Ok(None),
            Some(0) => return Ok(Some(None)),
            Some(t) => return Ok(Some(Some(t))),
            None => {}
        }
        match client
            .create_forum_topic(&r.chat_id, &crate::text::cut(project, 128))
            .await
        {
            Ok(t) => {
                self.sends()
                    .set_topic(&r.chat_id, project, t)
                    .await
                    .map_err(store_error)?;
                Ok(Some(Some(t)))
            }
            Err(telegram::SendOutcome::Permanent { .. }) => {
                // Not a forum (or the bot may not manage topics): the chat itself,
                // remembered so that every message does not ask again.
                self.sends()
                    .set_topic(&r.chat_id, project, 0)
                    .await
                    .map_err(store_error)?;
                Ok(Some(None))
            }
            Err(other) => {
                let _ = self.sends().forget_topic(&r.chat_id, project).await;
                Err(other)
            }
        }
    }
}

/// One send or edit of `text` to `target`; a notification with `keyboard`, the
/// inline keyboard made for its offer.
async fn send_text<H: Http>(
    client: &TelegramClient<'_, H>,
    target: &Target<'_>,
    text: Text<'_>,
    keyboard: Option<&serde_json::Value>,
) -> telegram::SendOutcome {
    match text {
        Text::New(m, _) => client.deliver_to(target, m, keyboard).await,
        Text::Html(html, markup) => client.send_with(target, html, markup, None).await,
        Text::Edit(id, html, markup) => client.edit_with(target.chat_id, id, html, markup).await,
    }
}
