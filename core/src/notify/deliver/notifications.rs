//! Notifications: routed into one row per destination, each row sent once at its
//! chat's pace, retried on its own, or joining a digest.

use super::post::{Offer, Post, Posted, Text};
use super::*;

/// The id a row attempted before it is added has ([`Rows::New`]).
const NEW_ROW: i64 = 0;

/// Which rows [`Courier::run_claimed`] attempts.
#[derive(Clone, Copy)]
enum Rows {
    /// A first routing's: not added yet, held by their notification's claim.
    New,
    /// Claimed rows, logged by their notification.
    Claimed,
    /// Claimed rows, logged by their own id (`telegram_send` messages).
    ById,
}

/// What one destination row's attempt came to, and what waits on the queue.
struct Attempted {
    outcome: SendOutcome,
    later: Option<(JobMessage, u32)>,
    log: String,
}

impl<'a, H: Http, S: Sql + Copy, Q: Queue> Courier<'a, H, S, Q> {
    /// Routes and delivers the notifications `ids` (one batch of `notify` messages).
    pub async fn deliver(&self, route: &Router<'_>, ids: &[i64], now: Timestamp) -> Vec<Delivered> {
        let claimed = self.claim(ids, now).await;
        self.deliver_claimed(route, ids, claimed, now).await
    }

    /// Claims the notifications `ids` for this consumer (those still to deliver).
    pub async fn claim(
        &self,
        ids: &[i64],
        now: Timestamp,
    ) -> Result<Vec<ClaimedNotification>, StoreError> {
        self.notifications()
            .claim(ids, now, Self::stale_before(now))
            .await
    }

    /// Gives back claimed notifications that cannot be routed now (`why`): they are
    /// due again after the backoff, when the retried queue message comes.
    pub async fn release(
        &self,
        ids: &[i64],
        claimed: Result<Vec<ClaimedNotification>, StoreError>,
        why: &str,
        now: Timestamp,
    ) -> Vec<Delivered> {
        let delay = crate::retry::BACKOFF_BASE_SECONDS;
        let back: Vec<Outcome> = claimed
            .unwrap_or_default()
            .iter()
            .map(|c| Outcome::Retrying {
                id: c.id,
                error: why.to_owned(),
                next_attempt_at: now.plus_seconds(i64::from(delay)),
            })
            .collect();
        let saved = self.notifications().record(&back, now).await;
        ids.iter()
            .map(|&id| {
                let mut log = format!("notification {id}: {why}");
                if let Err(e) = &saved {
                    log.push_str(&format!(" (and giving its claim back failed: {e})"));
                }
                Delivered {
                    id,
                    verdict: Verdict::Retry {
                        delay_seconds: delay,
                    },
                    log,
                }
            })
            .collect()
    }

    /// Routes and delivers what [`Courier::claim`] claimed of `ids`.
    pub async fn deliver_claimed(
        &self,
        route: &Router<'_>,
        ids: &[i64],
        claimed: Result<Vec<ClaimedNotification>, StoreError>,
        now: Timestamp,
    ) -> Vec<Delivered> {
        let claimed = match claimed {
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
        // Routed for the first time (the usual case), its rows are new: they are
        // attempted at once, under the notification's claim, and added with what came
        // of them (one round trip for the rows and the notifications' status).
        let first = claimed.iter().all(|c| c.attempt <= 1);
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
        let log = if first {
            let sends = rows
                .iter()
                .filter_map(|&(notification, recipient)| {
                    let c = claimed.iter().find(|c| c.id == notification)?;
                    Some(ClaimedSend {
                        id: NEW_ROW,
                        notification_id: notification,
                        recipient: recipient.clone(),
                        slot_at: None,
                        attempts: 0,
                        deployment: c.deployment.clone(),
                    })
                })
                .collect();
            self.run_claimed(telegram, sends, Rows::New, now).await
        } else {
            // Routed again (its consumer died): the rows it has are kept, the missing
            // ones added, and whichever are due claimed as usual.
            match self.sends().add(&rows, now).await {
                Ok(()) => self.run_rows(telegram, &routed, false, now).await,
                Err(e) => Err(e),
            }
        };
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
        let rows = if by_row { Rows::ById } else { Rows::Claimed };
        self.run_claimed(telegram, claimed, rows, now).await
    }

    /// Attempts each claimed row, records the outcomes and queues what waits.
    /// Returns a log line per notification (per row, for [`Rows::ById`]).
    async fn run_claimed(
        &self,
        telegram: &TelegramConfig,
        claimed: Vec<ClaimedSend>,
        rows: Rows,
        now: Timestamp,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        // A paced chat's rows one after another (each takes the chat's next slot in
        // turn, so they go out in order); everything else side by side, a few at a
        // time.
        let mut groups: Vec<Vec<ClaimedSend>> = Vec::new();
        for c in claimed {
            let paced = c.recipient.pace().is_some();
            match groups.iter_mut().find(|g| {
                paced
                    && g[0].recipient.pace().is_some()
                    && g[0].recipient.chat_id == c.recipient.chat_id
            }) {
                Some(g) => g.push(c),
                None => groups.push(vec![c]),
            }
        }
        // All at once: the runtime sends six at a time, and each request's timeout
        // allows for the rounds ahead of it, so it counts from when it goes out.
        let runs: Vec<crate::concurrent::Boxed<'_, Vec<(ClaimedSend, Attempted)>>> = groups
            .into_iter()
            .enumerate()
            .map(|(ahead, group)| {
                let client = TelegramClient::new(self.http, telegram).behind(ahead);
                Box::pin(async move {
                    let mut out = Vec::with_capacity(group.len());
                    for c in group {
                        let a = self.attempt(&client, &c, now).await;
                        out.push((c, a));
                    }
                    out
                }) as crate::concurrent::Boxed<'_, _>
            })
            .collect();
        let attempted = crate::concurrent::all(runs).await;
        let attempted: Vec<(ClaimedSend, Attempted)> = attempted.into_iter().flatten().collect();
        let mut notifications: Vec<i64> =
            attempted.iter().map(|(c, _)| c.notification_id).collect();
        notifications.dedup();
        let added = match rows {
            Rows::New => {
                let new: Vec<(i64, &Recipient, &SendOutcome)> = attempted
                    .iter()
                    .map(|(c, a)| (c.notification_id, &c.recipient, &a.outcome))
                    .collect();
                let waits = attempted
                    .iter()
                    .any(|(_, a)| matches!(a.later, Some((JobMessage::TelegramSend { .. }, _))));
                self.sends()
                    .record_new(&new, &notifications, waits, now)
                    .await?
            }
            Rows::Claimed | Rows::ById => {
                let outcomes: Vec<SendOutcome> =
                    attempted.iter().map(|(_, a)| a.outcome.clone()).collect();
                self.sends().record(&outcomes, &notifications, now).await?;
                Vec::new()
            }
        };
        let mut lines = Vec::new();
        for (c, a) in attempted {
            let mut log = a.log;
            if let Some((mut message, delay)) = a.later {
                // A new row's wait names the row it now is.
                if let JobMessage::TelegramSend { id } = &mut message {
                    if *id == NEW_ROW {
                        *id = added
                            .iter()
                            .find(|(_, n, chat, thread)| {
                                *n == c.notification_id
                                    && *chat == c.recipient.chat_id
                                    && *thread == c.recipient.thread
                            })
                            .map_or(NEW_ROW, |(row, ..)| *row);
                    }
                }
                if let Err(e) = self.queue.send_later(&message, delay).await {
                    log.push_str(&format!(" (queueing it failed: {e}; the sweep will)"));
                }
            }
            let key = match rows {
                Rows::ById => c.id,
                Rows::New | Rows::Claimed => c.notification_id,
            };
            lines.push((key, log));
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
        let subject = crate::chatops::SubjectRef {
            kind: crate::audit::SubjectKind::Notification,
            id: c.notification_id,
        }
        .text();
        let offer = crate::cloudflare::rollback::offers_rollback(self.config, d).then_some(Offer {
            subject: &subject,
            app: Some(&d.project_name),
            actions: &[crate::chatops::Action::Rollback],
        });
        let holds = c.slot_at.is_some_and(|s| s.millis() <= now.millis() + 999);
        let posted = self
            .post(
                client,
                Post {
                    recipient: r,
                    project: &d.project_name,
                    holds,
                    may_digest: true,
                    text: Text::New(&message, offer),
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
pub(crate) fn message_for(recipient: &Recipient, d: &Deployment) -> telegram::Rendered {
    use crate::template::{Template, Values};
    match recipient.template.as_deref().map(Template::parse) {
        Some(Ok(t)) => t.render(&Values::from_deployment(d)),
        _ => render(d),
    }
}
