//! The Telegram consumer's notification flow.
//!
//! A `notify` message routes its notifications: each matching destination becomes
//! its own row ([`crate::notify::sends`]), sent exactly once and retried on its own.
//! A row is sent when its chat's pace allows ([`crate::pace`]); until then it waits
//! on the queue (a `telegram_send` message with `delaySeconds`), never in a loop.
//! When too many are already waiting for one chat, further rows join the
//! destination's digest, one message edited in place as lines arrive (a
//! `telegram_digest` message sends or edits it at its own slot). A 429 delays that
//! chat only, by Telegram's `retry_after`, and is not a failed attempt.

use crate::config::Config;
use crate::flow::Verdict;
use crate::jobs::JobMessage;
use crate::notify::burst::render_digest;
use crate::notify::sends::{ClaimedDigest, ClaimedSend, Recipient, SendOutcome, SendStore};
use crate::notify::store::{ClaimedNotification, NotificationStatus, NotificationStore, Outcome};
use crate::notify::Deployment;
use crate::pace::{delay_seconds, Pace, PaceStore, Slot};
use crate::ports::{Http, Queue, Sql, StoreError};
use crate::telegram::{self, Target, TelegramClient, TelegramConfig};
use crate::template::render;
use crate::time::Timestamp;

/// A claim older than this belongs to a consumer that died: a delivery takes at most
/// a few Telegram calls of [`crate::telegram::SEND_TIMEOUT_MS`] each.
pub const CLAIM_STALE_SECONDS: i64 = 60;

/// At most this many Telegram requests of one batch are in flight at once (the
/// Workers runtime queues more than six connections, and a request's timeout must
/// start when it actually goes out, not while it waits behind others).
pub const MAX_CONCURRENT_SENDS: usize = 6;

/// A digest takes lines for this long after its last one.
const DIGEST_WINDOW_MS: i64 = 60_000;

/// Another consumer is making the project's topic: look again this much later.
const TOPIC_WAIT_SECONDS: u32 = 2;

/// The verdict for one message plus a line for the log (never containing a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub id: i64,
    pub verdict: Verdict,
    pub log: String,
}

/// What the flow needs: configuration, Telegram, the database and the queue for
/// messages that wait.
pub struct Courier<'a, H, S, Q> {
    pub config: &'a Config,
    pub http: &'a H,
    pub sql: S,
    pub queue: &'a Q,
}

/// The destinations a deployment goes to (the routes, resolved), or none.
pub type Router<'r> = dyn Fn(&Deployment) -> Vec<Recipient> + 'r;

/// What a [`Courier::post`] takes to Telegram: a new message, or an edit of one.
#[derive(Clone, Copy)]
pub(crate) enum Text<'a> {
    /// A notification: HTML, and plain text if Telegram cannot parse it.
    New(&'a telegram::Rendered),
    /// A live message's HTML (its flow escaped every value).
    Html(&'a str),
    Edit(i64, &'a str),
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

/// What one destination row's attempt came to, and what waits on the queue.
struct Attempted {
    outcome: SendOutcome,
    later: Option<(JobMessage, u32)>,
    log: String,
}

impl<'a, H: Http, S: Sql + Copy, Q: Queue> Courier<'a, H, S, Q> {
    fn notifications(&self) -> NotificationStore<S> {
        NotificationStore::new(self.sql)
    }

    fn sends(&self) -> SendStore<S> {
        SendStore::new(self.sql)
    }

    fn pace(&self) -> PaceStore<S> {
        PaceStore::new(self.sql)
    }

    fn stale_before(now: Timestamp) -> Timestamp {
        now.minus_seconds(CLAIM_STALE_SECONDS)
    }

    /// Routes and delivers the notifications `ids` (one batch of `notify` messages).
    pub async fn deliver(&self, route: &Router<'_>, ids: &[i64], now: Timestamp) -> Vec<Delivered> {
        let claimed = match self
            .notifications()
            .claim(ids, now, Self::stale_before(now))
            .await
        {
            Ok(c) => c,
            Err(e) => return retry_all(ids, &format!("claim failed: {e}")),
        };
        let mut results: Vec<Delivered> = ids
            .iter()
            .filter(|id| !claimed.iter().any(|c| c.id == **id))
            .map(|&id| Delivered {
                id,
                verdict: Verdict::Ack,
                log: format!("notification {id}: already handled"),
            })
            .collect();
        let telegram = match &self.config.telegram {
            Ok(t) => t,
            Err(missing) => {
                let outcomes: Vec<Outcome> =
                    claimed.iter().map(|c| not_configured(c, missing)).collect();
                let saved = self.notifications().record(&outcomes, now).await;
                results.extend(claimed.iter().zip(&outcomes).map(|(c, o)| {
                    let error = match o {
                        Outcome::Final { error, .. } => error.as_str(),
                        _ => "",
                    };
                    with_saved(
                        c.id,
                        format!(
                            "notification {} ({}): {error}",
                            c.id,
                            c.deployment.dedupe_key()
                        ),
                        &saved,
                    )
                }));
                return results;
            }
        };

        // Route: every destination its own row, added once however often this runs.
        let mut unrouted = Vec::new();
        let mut planned = Vec::new();
        for c in &claimed {
            let recipients = route(&c.deployment);
            if recipients.is_empty() {
                unrouted.push(Outcome::Final {
                    id: c.id,
                    status: NotificationStatus::NotSent,
                    error: "no route: no route matches this deployment".into(),
                });
            }
            planned.push((c.id, recipients));
        }
        let rows: Vec<(i64, &Recipient)> = planned
            .iter()
            .flat_map(|(id, rs)| rs.iter().map(move |r| (*id, r)))
            .collect();
        let routed: Vec<i64> = planned
            .iter()
            .filter(|(_, rs)| !rs.is_empty())
            .map(|(id, _)| *id)
            .collect();
        let added = self.sends().add(&rows, now).await;
        let saved = self.notifications().record(&unrouted, now).await;
        for o in &unrouted {
            if let Outcome::Final { id, .. } = o {
                results.push(with_saved(
                    *id,
                    format!("notification {id}: no route matches it; recorded as not sent"),
                    &saved,
                ));
            }
        }
        if let Err(e) = added {
            results.extend(retry_all(&routed, &format!("routing failed: {e}")));
            return results;
        }
        let log = self.run_rows(telegram, &routed, false, now).await;
        match log {
            Ok(lines) => results.extend(routed.iter().map(|&id| Delivered {
                id,
                verdict: Verdict::Ack,
                log: lines_for(&lines, id, || format!("notification {id}: nothing due")),
            })),
            Err(e) => results.extend(retry_all(&routed, &e.to_string())),
        }
        results
    }

    /// Delivers destination rows `ids` whose wait is over (`telegram_send` messages).
    pub async fn deliver_rows(&self, ids: &[i64], now: Timestamp) -> Vec<Delivered> {
        let Ok(telegram) = &self.config.telegram else {
            return ids
                .iter()
                .map(|&id| Delivered {
                    id,
                    verdict: Verdict::Ack,
                    log: format!(
                        "telegram delivery {id}: Telegram is not configured; left waiting"
                    ),
                })
                .collect();
        };
        match self.run_rows(telegram, ids, true, now).await {
            Ok(lines) => ids
                .iter()
                .map(|&id| Delivered {
                    id,
                    verdict: Verdict::Ack,
                    log: lines_for(&lines, id, || {
                        format!("telegram delivery {id}: nothing due")
                    }),
                })
                .collect(),
            Err(e) => retry_all(ids, &e.to_string()),
        }
    }

    /// Claims the due rows (of notifications `ids`, or the rows `ids`), attempts each,
    /// records the outcomes and queues what waits. Returns a log line per
    /// notification id (or row id, `by_row`).
    async fn run_rows(
        &self,
        telegram: &TelegramConfig,
        ids: &[i64],
        by_row: bool,
        now: Timestamp,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let claimed = self
            .sends()
            .claim(ids, by_row, now, Self::stale_before(now))
            .await?;
        // Rows of one destination one after another (each takes the chat's next
        // slot in turn); destinations side by side, a few at a time.
        let mut groups: Vec<Vec<ClaimedSend>> = Vec::new();
        for c in claimed {
            match groups
                .iter_mut()
                .find(|g| g[0].recipient.chat_id == c.recipient.chat_id)
            {
                Some(g) => g.push(c),
                None => groups.push(vec![c]),
            }
        }
        let client = TelegramClient::new(self.http, telegram);
        let client = &client;
        let runs: Vec<crate::concurrent::Boxed<'_, Vec<(i64, i64, Attempted)>>> = groups
            .into_iter()
            .map(|group| {
                Box::pin(async move {
                    let mut out = Vec::with_capacity(group.len());
                    for c in group {
                        let a = self.attempt(client, &c, now).await;
                        out.push((c.id, c.notification_id, a));
                    }
                    out
                }) as crate::concurrent::Boxed<'_, _>
            })
            .collect();
        let attempted = crate::concurrent::bounded(runs, MAX_CONCURRENT_SENDS).await;
        let attempted: Vec<(i64, i64, Attempted)> = attempted.into_iter().flatten().collect();
        let outcomes: Vec<SendOutcome> = attempted
            .iter()
            .map(|(_, _, a)| a.outcome.clone())
            .collect();
        self.sends().record(&outcomes, now).await?;
        let mut notifications: Vec<i64> = attempted.iter().map(|(_, n, _)| *n).collect();
        notifications.dedup();
        self.sends().settle(&notifications, now).await?;
        let mut lines = Vec::new();
        for (id, notification, a) in attempted {
            let mut log = a.log;
            if let Some((message, delay)) = a.later {
                if let Err(e) = self.queue.send_later(&message, delay).await {
                    log.push_str(&format!(" (queueing it failed: {e}; the sweep will)"));
                }
            }
            lines.push((if by_row { id } else { notification }, log));
        }
        Ok(lines)
    }

    /// One destination row: its topic, its slot, its send.
    async fn attempt(
        &self,
        client: &TelegramClient<'_, H>,
        c: &ClaimedSend,
        now: Timestamp,
    ) -> Attempted {
        let r = &c.recipient;
        let d = &c.deployment;
        let tag = format!(
            "notification {} → {}{}",
            c.notification_id,
            r.chat_id,
            thread_tag(&r.thread)
        );
        let message = message_for(r, d);
        let holds = c.slot_at.is_some_and(|s| s.millis() <= now.millis() + 999);
        let posted = self
            .post(
                client,
                Post {
                    recipient: r,
                    project: &d.project_name,
                    holds,
                    may_digest: true,
                    text: Text::New(&message),
                },
                now,
            )
            .await;
        match posted {
            Posted::Sent {
                message_id,
                went_to,
                note,
            } => Attempted {
                outcome: SendOutcome::Sent {
                    id: c.id,
                    message_id,
                    thread: went_to,
                },
                later: None,
                log: format!("{tag}: sent as message {message_id}{note}"),
            },
            Posted::Wait { at, slot, why } => {
                let outcome = if slot {
                    SendOutcome::Waiting {
                        id: c.id,
                        slot_at: at,
                    }
                } else {
                    SendOutcome::Later { id: c.id, at }
                };
                Attempted {
                    outcome,
                    later: Some((
                        JobMessage::TelegramSend { id: c.id },
                        delay_seconds(now, at).unwrap_or(0),
                    )),
                    log: format!("{tag}: {why}"),
                }
            }
            Posted::Digest { thread, pace } => self.join_digest(c, &thread, pace, now, &tag).await,
            Posted::Failed(e) => self.failed_attempt(c, e, now, &tag),
        }
    }

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
        let mut sent = send_text(client, &target, text).await;
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
            )
            .await;
            went_to = Some(String::new());
        }
        match sent {
            telegram::SendOutcome::Sent { message_id } => Posted::Sent {
                message_id,
                went_to,
                note,
            },
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
            Err(telegram::SendOutcome::Permanent { error }) => {
                // Not a forum (or the bot may not manage topics): the chat itself,
                // remembered so that every message does not ask again.
                let _ = error;
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

    fn failed_attempt(
        &self,
        c: &ClaimedSend,
        sent: telegram::SendOutcome,
        now: Timestamp,
        tag: &str,
    ) -> Attempted {
        let attempt = c.attempts + 1;
        match telegram::decide(sent, attempt) {
            telegram::DeliveryAction::Sent { message_id } => Attempted {
                outcome: SendOutcome::Sent {
                    id: c.id,
                    message_id,
                    thread: None,
                },
                later: None,
                log: format!("{tag}: sent as message {message_id}"),
            },
            telegram::DeliveryAction::Retry {
                delay_seconds,
                error,
            } => Attempted {
                log: format!(
                    "{tag}: attempt {attempt} failed: {error}; retrying in {delay_seconds} s"
                ),
                outcome: SendOutcome::Retrying {
                    id: c.id,
                    error,
                    next: now.plus_seconds(i64::from(delay_seconds)),
                },
                later: Some((JobMessage::TelegramSend { id: c.id }, delay_seconds)),
            },
            telegram::DeliveryAction::GiveUp { error } => Attempted {
                log: format!("{tag}: failed: {error}"),
                outcome: SendOutcome::Failed { id: c.id, error },
                later: None,
            },
            telegram::DeliveryAction::Fail { error } => Attempted {
                log: format!("{tag}: failed permanently: {error}"),
                outcome: SendOutcome::Failed { id: c.id, error },
                later: None,
            },
        }
    }

    /// The row joins its destination's open digest; the first to join schedules the
    /// digest's send at the chat's next slot.
    async fn join_digest(
        &self,
        c: &ClaimedSend,
        thread: &str,
        pace: Pace,
        now: Timestamp,
        tag: &str,
    ) -> Attempted {
        let store_failed = |e: StoreError| telegram::SendOutcome::Transient {
            error: e.to_string(),
        };
        let digest = match self
            .sends()
            .open_digest(&c.recipient, thread, DIGEST_WINDOW_MS, now)
            .await
        {
            Ok(id) => id,
            Err(e) => return self.failed_attempt(c, store_failed(e), now, tag),
        };
        let later = match self
            .schedule_digest(digest, &c.recipient.chat_id, thread, pace, now)
            .await
        {
            Ok(later) => later,
            Err(e) => return self.failed_attempt(c, store_failed(e), now, tag),
        };
        Attempted {
            outcome: SendOutcome::Digested {
                id: c.id,
                digest_id: digest,
            },
            later,
            log: format!("{tag}: joins digest {digest}"),
        }
    }

    /// Schedules digest `id`'s next send or edit unless one is scheduled: takes the
    /// chat's next slot and returns the message to queue for it.
    async fn schedule_digest(
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
                let more = self
                    .sends()
                    .digest_sent(digest, message_id, &shown_ids, &overflow_ids, now)
                    .await?;
                let mut log = format!(
                    "digest {id}: message {message_id} shows {} deployments",
                    shown.len()
                );
                if more {
                    let (m, delay) = self
                        .schedule_flush(id, &digest.chat_id, &digest.thread, pace, now, now)
                        .await?;
                    self.queue_later(&m, delay, &mut log).await;
                }
                if !overflow_ids.is_empty() {
                    log.push_str(&format!("; {} more start a new digest", overflow_ids.len()));
                    if let Some(next) = self.next_digest(&overflow_ids).await? {
                        if let Some((m, delay)) = self
                            .schedule_digest(next, &digest.chat_id, &digest.thread, pace, now)
                            .await?
                        {
                            self.queue_later(&m, delay, &mut log).await;
                        }
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
        let holds = c.slot_at.is_some_and(|s| s.millis() <= now.millis() + 999);
        let text = match c.message_id {
            Some(m) => Text::Edit(m, &c.html),
            None => Text::Html(&c.html),
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
                            text: Text::Html(&c.html),
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

    async fn next_digest(&self, rows: &[i64]) -> Result<Option<i64>, StoreError> {
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let found = self
            .sql
            .query(
                "SELECT digest_id FROM telegram_deliveries WHERE id = ?1",
                &[(*first).into()],
            )
            .await?;
        Ok(found
            .first()
            .and_then(|r| crate::row::Columns::opt_int(r, "digest_id")))
    }

    async fn queue_later(&self, message: &JobMessage, delay: u32, log: &mut String) {
        if let Err(e) = self.queue.send_later(message, delay).await {
            log.push_str(&format!(" (queueing it failed: {e}; the sweep will)"));
        }
    }
}

/// The cron's part: destination rows and digests whose queue message was evidently
/// lost (due or claimed more than `SWEEP_AFTER_SECONDS` ago) are queued again, and
/// pace slots that can no longer limit anything are forgotten. A duplicate message
/// is harmless: rows and digests are claimed before anything is sent.
pub async fn sweep<S: Sql + Copy, Q: Queue>(
    config: &Config,
    sql: S,
    queue: &Q,
    now: Timestamp,
) -> Vec<String> {
    let mut log = Vec::new();
    let cutoff = now.minus_seconds(i64::from(config.sweep_after_seconds));
    let sends = SendStore::new(sql);
    match sends.lost(cutoff, 100).await {
        Ok(ids) => {
            for id in ids {
                let line = match queue.send(&JobMessage::TelegramSend { id }).await {
                    Ok(()) => match sends.requeued(id, now).await {
                        Ok(()) => format!("telegram delivery {id} re-enqueued"),
                        Err(e) => format!("telegram delivery {id} re-enqueued, not marked: {e}"),
                    },
                    Err(e) => format!("telegram delivery {id}: {e}"),
                };
                log.push(line);
            }
        }
        Err(e) => log.push(format!("telegram deliveries: {e}")),
    }
    match sends.lost_digests(cutoff).await {
        Ok(ids) => {
            for id in ids {
                let line = match queue.send(&JobMessage::TelegramDigest { id }).await {
                    Ok(()) => match sends.schedule_flush(id, now, now).await {
                        Ok(()) => format!("digest {id} re-enqueued"),
                        Err(e) => format!("digest {id} re-enqueued, not marked: {e}"),
                    },
                    Err(e) => format!("digest {id}: {e}"),
                };
                log.push(line);
            }
        }
        Err(e) => log.push(format!("digests: {e}")),
    }
    let live = crate::live::LiveStore::new(sql);
    match live.lost(cutoff).await {
        Ok(ids) => {
            for id in ids {
                let line = match queue.send(&JobMessage::TelegramLive { id }).await {
                    Ok(()) => match live.requeued(id, now).await {
                        Ok(()) => format!("live message {id} re-enqueued"),
                        Err(e) => format!("live message {id} re-enqueued, not marked: {e}"),
                    },
                    Err(e) => format!("live message {id}: {e}"),
                };
                log.push(line);
            }
        }
        Err(e) => log.push(format!("live messages: {e}")),
    }
    if let Err(e) = PaceStore::new(sql).prune(now).await {
        log.push(format!("pace: {e}"));
    }
    log
}

fn thread_tag(thread: &str) -> String {
    if thread.is_empty() {
        String::new()
    } else {
        format!(" (topic {thread})")
    }
}

fn retry_all(ids: &[i64], why: &str) -> Vec<Delivered> {
    ids.iter()
        .map(|&id| Delivered {
            id,
            verdict: Verdict::Retry {
                delay_seconds: crate::retry::BACKOFF_BASE_SECONDS,
            },
            log: format!("notification {id}: {why}"),
        })
        .collect()
}

fn lines_for(lines: &[(i64, String)], id: i64, none: impl Fn() -> String) -> String {
    let mine: Vec<&str> = lines
        .iter()
        .filter(|(i, _)| *i == id)
        .map(|(_, l)| l.as_str())
        .collect();
    if mine.is_empty() {
        none()
    } else {
        mine.join("; ")
    }
}

fn with_saved(id: i64, mut log: String, saved: &Result<(), StoreError>) -> Delivered {
    if let Err(e) = saved {
        log.push_str(&format!(" (and recording it failed: {e})"));
    }
    Delivered {
        id,
        verdict: Verdict::Ack,
        log,
    }
}

/// What a notification would have said, when Telegram is not configured: in the
/// log and in `/api/deliveries`, so a newcomer sees the product work before
/// setting up a bot.
fn not_configured(c: &ClaimedNotification, missing: &str) -> Outcome {
    Outcome::Final {
        id: c.id,
        status: NotificationStatus::NotSent,
        error: format!(
            "not sent: Telegram is not configured ({missing} is missing); it would have read:\n{}",
            render(&c.deployment).plain
        ),
    }
}

/// One send or edit of `text` to `target`.
async fn send_text<H: Http>(
    client: &TelegramClient<'_, H>,
    target: &Target<'_>,
    text: Text<'_>,
) -> telegram::SendOutcome {
    match text {
        Text::New(m) => client.deliver_to(target, m).await,
        Text::Html(html) => client.send_html_to(target, html).await,
        Text::Edit(id, html) => client.edit_in(target.chat_id, id, html).await,
    }
}

/// A deployment as routes see it: reported by a hook or found by the poll, it went
/// out (a success).
pub fn subject_of(d: &Deployment) -> crate::routes::Subject<'_> {
    use crate::routes::{Outcome, Source};
    crate::routes::Subject {
        source: match d.source {
            crate::notify::Source::Hook => Source::Notify,
            crate::notify::Source::Poll => Source::Poll,
        },
        project: &d.project_name,
        environment: Some(&d.environment),
        branch: d.branch.as_deref(),
        outcome: Outcome::Success,
    }
}

/// A destination's message: its template's rendering, or the built-in message (a
/// template is checked when its route is saved; one that no longer parses falls
/// back to the built-in message rather than losing the notification).
fn message_for(recipient: &Recipient, d: &Deployment) -> telegram::Rendered {
    use crate::template::{Template, Values};
    match recipient.template.as_deref().map(Template::parse) {
        Some(Ok(t)) => t.render(&Values::from_deployment(d)),
        _ => render(d),
    }
}

#[cfg(test)]
mod tests;
