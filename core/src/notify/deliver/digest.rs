//! Digests: a burst into one destination as one message, edited in place as lines
//! arrive, sent and edited at the chat's own slots.

use super::*;

impl<'a, H: Http, S: Sql + Copy, Q: Queue> Courier<'a, H, S, Q> {
    /// Schedules digest `id`'s next send or edit unless one is scheduled: takes the
    /// chat's next slot and returns the message to queue for it.
    pub(super) async fn schedule_digest(
        &self,
        id: i64,
        chat: &str,
        thread: &str,
        pace: Pace,
        now: Timestamp,
    ) -> Result<Option<(JobMessage, u32)>, StoreError> {
        if !self.sends().take_flush(id).await? {
            return Ok(None);
        }
        self.schedule_flush(id, chat, thread, pace, now, now)
            .await
            .map(Some)
    }

    async fn schedule_flush(
        &self,
        id: i64,
        chat: &str,
        thread: &str,
        pace: Pace,
        not_before: Timestamp,
        now: Timestamp,
    ) -> Result<(JobMessage, u32), StoreError> {
        let at = match self
            .pace()
            .reserve(chat, thread, pace, true, not_before)
            .await?
        {
            Slot::At(at) => at,
            Slot::Digest => not_before,
        };
        self.sends().schedule_flush(id, at, now).await?;
        Ok((
            JobMessage::TelegramDigest { id },
            delay_seconds(now, at).unwrap_or(0),
        ))
    }

    /// Sends or edits digest `id` (a `telegram_digest` message at its slot).
    pub async fn flush_digest(&self, id: i64, now: Timestamp) -> Delivered {
        let done = |verdict, log| Delivered { id, verdict, log };
        let Ok(telegram) = &self.config.telegram else {
            return done(
                Verdict::Ack,
                format!("digest {id}: Telegram is not configured"),
            );
        };
        let digest = match self
            .sends()
            .claim_digest(id, now, Self::stale_before(now))
            .await
        {
            Ok(Some(d)) => d,
            Ok(None) => return done(Verdict::Ack, format!("digest {id}: nothing due")),
            Err(e) => {
                return done(
                    Verdict::Retry { delay_seconds: 2 },
                    format!("digest {id}: {e}"),
                )
            }
        };
        match self.send_digest(telegram, &digest, now).await {
            Ok(log) => done(Verdict::Ack, log),
            Err(e) => done(
                Verdict::Retry { delay_seconds: 2 },
                format!("digest {id}: {e}"),
            ),
        }
    }

    async fn send_digest(
        &self,
        telegram: &TelegramConfig,
        digest: &ClaimedDigest,
        now: Timestamp,
    ) -> Result<String, StoreError> {
        let id = digest.id;
        let pace = digest.recipient.pace().unwrap_or(Pace::TELEGRAM);
        let deployments: Vec<&Deployment> = digest.items.iter().map(|i| &i.deployment).collect();
        let text = render_digest(&deployments, digest.opened_at, now);
        let (shown, overflow) = digest.items.split_at(text.shown);
        let client = TelegramClient::new(self.http, telegram);
        let target = Target {
            chat_id: &digest.chat_id,
            thread: digest.thread.parse().ok(),
            silent: digest.recipient.silent,
            link_preview: false,
        };
        let mut sent = match digest.message_id {
            Some(m) => client.edit_in(&digest.chat_id, m, &text.html).await,
            None => client.send_html_to(&target, &text.html).await,
        };
        if digest.message_id.is_some()
            && matches!(&sent, telegram::SendOutcome::Permanent { error } if error.contains("message to edit not found"))
        {
            // Someone deleted the digest: it starts again as a new message.
            sent = client.send_html_to(&target, &text.html).await;
        }
        let notifications: Vec<i64> = digest.items.iter().map(|i| i.notification_id).collect();
        let log = match sent {
            telegram::SendOutcome::Sent { message_id } => {
                let shown_ids: Vec<i64> = shown.iter().map(|i| i.id).collect();
                let overflow_ids: Vec<i64> = overflow
                    .iter()
                    .filter(|i| i.waiting)
                    .map(|i| i.id)
                    .collect();
                let sent = self
                    .sends()
                    .digest_sent(digest, message_id, &shown_ids, &overflow_ids, now)
                    .await?;
                let mut log = format!(
                    "digest {id}: message {message_id} shows {} deployments",
                    shown.len()
                );
                if sent.more {
                    let (m, delay) = self
                        .schedule_flush(id, &digest.chat_id, &digest.thread, pace, now, now)
                        .await?;
                    self.queue_later(&m, delay, &mut log).await;
                }
                if let Some(next) = sent.next {
                    log.push_str(&format!("; {} more start a new digest", overflow_ids.len()));
                    if let Some((m, delay)) = self
                        .schedule_digest(next, &digest.chat_id, &digest.thread, pace, now)
                        .await?
                    {
                        self.queue_later(&m, delay, &mut log).await;
                    }
                }
                log
            }
            telegram::SendOutcome::RateLimited { retry_after } => {
                let until = now.plus_seconds(i64::from(retry_after));
                self.pace().block(&digest.chat_id, until).await?;
                let (m, delay) = self
                    .schedule_flush(id, &digest.chat_id, &digest.thread, pace, now, now)
                    .await?;
                let mut log = format!(
                    "digest {id}: Telegram 429: retry after {retry_after} s (not an attempt)"
                );
                self.queue_later(&m, delay, &mut log).await;
                log
            }
            other => match telegram::decide(other, digest.attempts + 1) {
                telegram::DeliveryAction::Retry {
                    delay_seconds,
                    error,
                } => {
                    let at = now.plus_seconds(i64::from(delay_seconds));
                    self.sends()
                        .digest_failed(id, &error, Some(at), true, now)
                        .await?;
                    let mut log = format!("digest {id}: {error}; retrying in {delay_seconds} s");
                    self.queue_later(&JobMessage::TelegramDigest { id }, delay_seconds, &mut log)
                        .await;
                    log
                }
                telegram::DeliveryAction::GiveUp { error }
                | telegram::DeliveryAction::Fail { error } => {
                    self.sends()
                        .digest_failed(id, &error, None, true, now)
                        .await?;
                    format!("digest {id}: failed: {error}")
                }
                telegram::DeliveryAction::Sent { .. } => format!("digest {id}: sent"),
            },
        };
        self.sends().settle(&notifications, now).await?;
        Ok(log)
    }
}
