//! Telegram's webhook and its updates, above the flows: a press goes to the flow of
//! its subject's kind, a command to the flows it reads.
//!
//! [`receive`] takes an update from the webhook (its secret checked by the caller):
//! it is recorded once by `update_id`, a press is decided at once ([`verdict`]: whose
//! button, whether they may, whether it is still good, then its one claim) and
//! answered in the webhook's own response, and the work goes through the `TELEGRAM`
//! queue to [`run_update`]: the action and its audit row, the message brought up to
//! date, a command's reply. A press's subject kind is one arm in [`offers`], [`act`]
//! and [`show`] (and [`on_reply`]): another kind is one more `SubjectKind` variant
//! and one more arm in each, as a GitHub protection-rule request and a
//! notification's Cloudflare rollback are.

use serde_json::Value;

use crate::apps::{AppStore, NamedApp};
use crate::audit::{AuditStore, Entry, Outcome, SubjectKind};
use crate::chatops::store::{Button, ButtonStore, On, UpdateStore};
use crate::chatops::{self, Action, Actor, Command, SubjectRef, Update};
use crate::cloudflare::rollback::RollbackError;
use crate::deploy::chatops::{self as deploy_ops, Acted, RollbackOffer};
use crate::flow::{Deps, Ports, ProcessError, Run};
use crate::jobs::JobMessage;
use crate::json::Names;
use crate::live::LiveStore;
use crate::names::AppName;
use crate::notify::rollback as notify_ops;
use crate::ports::{Kv, Queue, StoreError};
use crate::protection;
use crate::telegram::{escape_html, SendOutcome, Target, TelegramClient};
use crate::time::Timestamp;

/// Attempts at a reply before it is given up (5xx, network), as for any message.
const MAX_REPLY_ATTEMPTS: u32 = crate::retry::MAX_DELIVERY_ATTEMPTS;

/// What the webhook answers, and sends after.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// The response body: `answerCallbackQuery` for a press, else `{}`.
    pub body: Value,
    /// The update to queue once the answer is out.
    pub queue: Option<i64>,
    /// A line for the log.
    pub log: Option<String>,
}

impl Received {
    fn nothing(log: Option<String>) -> Received {
        Received {
            body: serde_json::json!({}),
            queue: None,
            log,
        }
    }

    /// Sends the queued update's message; the error is the log line (the row stays
    /// queued, and the cron sweep sends it).
    pub async fn send<Q: Queue>(id: i64, queue: &Q) -> Result<(), String> {
        queue
            .send(&JobMessage::TelegramUpdate { id })
            .await
            .map_err(|e| format!("telegram: update {id} recorded, not queued ({e}); the cron sweep will queue it"))
    }
}

/// Why the webhook refuses an update (a 400, or a 503 when the database failed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiveError {
    #[error(transparent)]
    Bad(#[from] chatops::BadUpdate),
    #[error("telegram: update not recorded: {0}")]
    Store(StoreError),
}

/// Takes one webhook body whose secret header was right: records its update once
/// and, for a press, decides and claims it at once, so the answer goes back in the
/// response. An update we do nothing with (an ordinary message) is answered and
/// forgotten; one recorded before (Telegram sent it again) changes nothing.
pub async fn receive<P: Ports>(
    deps: &Deps<'_, P>,
    body: &[u8],
    now: Timestamp,
) -> Result<Received, ReceiveError> {
    let incoming = chatops::parse_update(body)?;
    let Some(update) = incoming.update else {
        return Ok(Received::nothing(None));
    };
    let id = incoming.update_id;
    // A press is decided (and claimed) before it is recorded: the claim names this
    // update, so an update Telegram sends again, after a failure here, comes to the
    // same decision.
    let decided = match &update {
        Update::Press {
            callback_id,
            by,
            chat_id,
            message_id,
            token,
        } => {
            let press = Press {
                update_id: id,
                by,
                chat_id: chat_id.as_deref(),
                message_id: *message_id,
                token,
            };
            let (decision, button) = verdict(deps, &press, now)
                .await
                .map_err(ReceiveError::Store)?;
            Some((callback_id, decision, button))
        }
        Update::Command { .. } => None,
    };
    let fresh = UpdateStore::new(deps.sql)
        .record(
            id,
            &update,
            body,
            decided.as_ref().map(|d| d.1.as_str()),
            now,
        )
        .await
        .map_err(ReceiveError::Store)?;
    let log = (!fresh).then(|| format!("telegram: update {id} was taken before"));
    Ok(Received {
        body: match decided {
            Some((callback, decision, button)) => {
                chatops::answer(callback, &answer(decision, button.as_ref()))
            }
            None => serde_json::json!({}),
        },
        queue: fresh.then_some(id),
        log,
    })
}

/// A press, as [`verdict`] reads it.
struct Press<'a> {
    update_id: i64,
    by: &'a Actor,
    chat_id: Option<&'a str>,
    message_id: Option<i64>,
    token: &'a str,
}

/// What a press comes to, as the webhook decided it (`telegram_updates.verdict`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Names)]
#[serde(rename_all = "snake_case")]
enum Decision {
    /// It is this update's to do.
    Act,
    /// Not one of our tokens, or pressed elsewhere than on its message.
    Unknown,
    NotAllowed,
    /// Its one press was made before (a double tap).
    Used,
    Expired,
    /// Its subject no longer offers the action.
    MovedOn,
}

/// The answer the button shows.
fn answer(decision: Decision, button: Option<&Button>) -> String {
    let action = button.and_then(|b| b.action);
    match (decision, action) {
        (Decision::Act, Some(action)) => action.doing(),
        (Decision::NotAllowed, _) => "You are not allowed to do this",
        (Decision::Used, _) => "This was already done",
        (Decision::Expired, _) => "This button has expired; the message gets fresh ones",
        (Decision::MovedOn, _) => {
            let kind = button
                .and_then(|b| SubjectRef::parse(&b.subject))
                .map(|s| s.kind);
            moved_on(kind.unwrap_or(SubjectKind::Job))
        }
        (Decision::Act | Decision::Unknown, _) => "This button is no longer valid",
    }
    .to_owned()
}

/// "This job has moved on", per kind of subject.
fn moved_on(kind: SubjectKind) -> &'static str {
    match kind {
        SubjectKind::Job | SubjectKind::App => "This job has moved on",
        SubjectKind::Protection => "This review has been decided",
        SubjectKind::Notification => "This deployment has moved on",
        SubjectKind::Delivery => "This delivery has moved on",
    }
}

/// Decides a press: whose button it is (pressed on its own message in its own
/// chat), whether the one pressing may act on its app, whether it is unused and
/// unexpired and its subject still offers it; then claims it for this update (of
/// two quick taps, one claims it, the other is told it was done). A button this
/// update claimed before is its to do.
async fn verdict<P: Ports>(
    deps: &Deps<'_, P>,
    press: &Press<'_>,
    now: Timestamp,
) -> Result<(Decision, Option<Button>), StoreError> {
    let buttons = ButtonStore::new(deps.sql);
    let Some(button) = buttons.find(press.token).await? else {
        return Ok((Decision::Unknown, None));
    };
    let decision = decide(deps, press, &button, now).await?;
    Ok((decision, Some(button)))
}

async fn decide<P: Ports>(
    deps: &Deps<'_, P>,
    press: &Press<'_>,
    button: &Button,
    now: Timestamp,
) -> Result<Decision, StoreError> {
    let (Some(subject), Some(action)) = (SubjectRef::parse(&button.subject), button.action) else {
        return Ok(Decision::Unknown);
    };
    // Its own message; or, not placed yet (the press came before the send's answer
    // was recorded), any message in its chat: the token is only on that one.
    let here = press.chat_id == Some(button.chat_id.as_str())
        && press.message_id.is_some()
        && (button.message_id.is_none() || press.message_id == button.message_id);
    Ok(if !here {
        Decision::Unknown
    } else if button.used_by_update == Some(press.update_id) {
        Decision::Act
    } else if !may_act(deps, button.app.as_deref(), press.by.user_id).await? {
        Decision::NotAllowed
    } else if button.used {
        Decision::Used
    } else if button.expires_at.millis() <= now.millis() {
        Decision::Expired
    } else if !offers(deps, subject, action).await? {
        Decision::MovedOn
    } else if ButtonStore::new(deps.sql)
        .claim(press.token, press.by.user_id, press.update_id, now)
        .await?
    {
        Decision::Act
    } else {
        Decision::Used
    })
}

/// Whether `user` is an operator: of every app (`TELEGRAM_OPERATORS`), or of `app`.
async fn may_act<P: Ports>(
    deps: &Deps<'_, P>,
    app: Option<&str>,
    user: i64,
) -> Result<bool, StoreError> {
    if chatops::may_act(&deps.config.telegram_operators, &[], user) {
        return Ok(true);
    }
    let Some(name) = app.and_then(|a| AppName::parse(a).ok()) else {
        return Ok(false);
    };
    let app = AppStore::new(deps.sql).get(&name).await?;
    Ok(app.is_some_and(|a| chatops::may_act(&[], &a.app.operators, user)))
}

// ---- The subject kinds: one arm each. ----

/// Whether `subject` still offers `action`.
async fn offers<P: Ports>(
    deps: &Deps<'_, P>,
    subject: SubjectRef,
    action: Action,
) -> Result<bool, StoreError> {
    match subject.kind {
        SubjectKind::Job => deploy_ops::offers(deps.sql, subject.id, action).await,
        // Subjects of an audit row only: no button acts on them.
        SubjectKind::App | SubjectKind::Delivery => Ok(false),
        SubjectKind::Protection => protection::offers(deps.sql, subject.id, action).await,
        SubjectKind::Notification => Ok(action == Action::Rollback
            && notify_ops::offers(deps.config, deps.sql, subject.id).await?),
    }
}

/// Does `action` to `subject` for `by`, once per `key`.
async fn act<P: Ports>(
    deps: &Deps<'_, P>,
    subject: SubjectRef,
    action: Action,
    by: &Actor,
    key: &str,
    now: Timestamp,
) -> Result<Acted, ProcessError> {
    match subject.kind {
        SubjectKind::Job => deploy_ops::act(deps, subject.id, action, &by.name, key, now).await,
        SubjectKind::App | SubjectKind::Delivery => Ok(Acted::Refused(format!(
            "{} is no button's subject",
            subject.kind.as_str()
        ))),
        SubjectKind::Protection => review(deps, subject.id, action, by, key, now).await,
        SubjectKind::Notification => roll_back(deps, subject.id, action, &by.name, now).await,
    }
}

/// Approve or Reject on a deployment protection request: decided for `by` (named,
/// with their Telegram id, in GitHub's review comment), and the review sent.
async fn review<P: Ports>(
    deps: &Deps<'_, P>,
    id: i64,
    action: Action,
    by: &Actor,
    key: &str,
    now: Timestamp,
) -> Result<Acted, ProcessError> {
    let state = match action {
        Action::Approve => protection::Review::Approved,
        Action::Reject => protection::Review::Rejected,
        other => {
            return Ok(Acted::Refused(format!(
                "a review request offers no {}",
                other.as_str()
            )))
        }
    };
    let reviewer = protection::Reviewer {
        name: &by.name,
        telegram_user: Some(by.user_id),
        key: Some(key),
    };
    match protection::decide(deps, id, state, reviewer, now).await {
        Ok(decided) => decided
            .outcome()
            .map(|done| Acted::Done(Some(done)))
            .map_err(ProcessError::Permanent),
        Err(protection::DecideError::Store(e)) => Err(e.into()),
        Err(e) => Ok(Acted::Refused(e.to_string())),
    }
}

/// Brings `subject`'s message up to date after a press.
async fn show<P: Ports>(deps: &Deps<'_, P>, subject: SubjectRef, now: Timestamp) -> Option<String> {
    match subject.kind {
        SubjectKind::Job => deploy_ops::show(deps, subject.id, now).await,
        SubjectKind::App | SubjectKind::Delivery => None,
        SubjectKind::Protection => protection::show_request(deps, subject.id, now).await,
        SubjectKind::Notification => notify_ops::show(deps, subject.id, now).await,
    }
}

/// Whether a button is on a reply of ours (a `/rollback` offer), which the press
/// settles in place, rather than on its subject's own message.
fn on_reply(subject: SubjectRef, button: &Button) -> bool {
    match subject.kind {
        SubjectKind::Job | SubjectKind::App | SubjectKind::Protection | SubjectKind::Delivery => {
            button.live_id.is_none()
        }
        // The notification's own messages, which its rollback edits.
        SubjectKind::Notification => false,
    }
}

/// A notification's Roll back press: its Cloudflare rollback, done once however
/// often this runs (a retry of the update continues it). Cloudflare's refusal and
/// what cannot be done are failures for good; a read that failed, or a rollback
/// whose answer did not come, is retried.
async fn roll_back<P: Ports>(
    deps: &Deps<'_, P>,
    id: i64,
    action: Action,
    by: &str,
    now: Timestamp,
) -> Result<Acted, ProcessError> {
    if action != Action::Rollback {
        return Ok(Acted::Refused(format!(
            "a notification offers no {}",
            action.as_str()
        )));
    }
    match notify_ops::roll_back(deps, id, by, now).await {
        Ok(done) => Ok(Acted::Done(Some(format!(
            "{} {} to {}",
            done.kind.as_str(),
            done.project,
            done.label
        )))),
        Err(RollbackError::NotConfigured(missing)) => {
            Ok(Acted::Refused(format!("{missing} is not configured")))
        }
        Err(e) => Err(e.into()),
    }
}

// ---- The consumer ----

/// Processes recorded update `id` (a `telegram_update` message) once: a press's
/// action (or refusal) with its audit row and the message brought up to date, or a
/// command's reply. A database failure is retried; the update stays queued until
/// it is done, and the cron sweep queues it again if its message is lost.
pub async fn run_update<P: Ports>(deps: &Deps<'_, P>, id: i64, now: Timestamp) -> Run {
    let updates = UpdateStore::new(deps.sql);
    let retry = |log: String| Run::retry(crate::retry::BACKOFF_BASE_SECONDS, log);
    let recorded = match updates.get(id).await {
        Ok(Some(r)) => r,
        Ok(None) => return Run::ack(format!("update {id}: not recorded")),
        Err(e) => return retry(format!("update {id}: {e}")),
    };
    if recorded.done {
        return Run::ack(format!("update {id}: done before"));
    }
    let done = match &recorded.update {
        Update::Press {
            by,
            chat_id,
            message_id,
            token,
            ..
        } => {
            let press = Press {
                update_id: id,
                by,
                chat_id: chat_id.as_deref(),
                message_id: *message_id,
                token,
            };
            // What the webhook decided (and claimed).
            let decision = recorded
                .verdict
                .as_deref()
                .and_then(Decision::parse)
                .unwrap_or(Decision::Unknown);
            pressed(deps, &press, decision, now).await
        }
        Update::Command {
            chat_id,
            chat_name,
            thread,
            message_id,
            by,
            text,
        } => {
            let said = Said {
                update_id: id,
                attempts: recorded.attempts,
                chat_id,
                thread: *thread,
                message_id: *message_id,
                by,
            };
            match command(deps, &said, chat_name.as_deref(), text, now).await {
                Ok(Replied::Done(detail)) => Ok(detail),
                Ok(Replied::Later(run)) => return run,
                Err(e) => Err(e),
            }
        }
    };
    match done {
        Ok(detail) => match updates.finish(id, &detail, now).await {
            Ok(()) => Run::ack(format!("update {id}: {detail}")),
            Err(e) => retry(format!("update {id}: {detail} (not recorded: {e})")),
        },
        Err(e) if e.is_transient() => retry(format!("update {id}: {e}")),
        Err(e) => {
            let detail = format!("failed: {e}");
            let _ = updates.finish(id, &detail, now).await;
            Run::ack(format!("update {id}: {detail}"))
        }
    }
}

/// A press, processed: the action or the refusal, its audit row, the messages.
async fn pressed<P: Ports>(
    deps: &Deps<'_, P>,
    press: &Press<'_>,
    decision: Decision,
    now: Timestamp,
) -> Result<String, ProcessError> {
    let by = entry(press.by, press.chat_id, press.update_id, now);
    let entry = |subject: SubjectRef, action: Action, outcome, detail: Option<String>| {
        by(
            subject.kind,
            subject.id.to_string(),
            action,
            outcome,
            detail,
        )
    };
    let audit = AuditStore::new(deps.sql);
    let Some(button) = ButtonStore::new(deps.sql).find(press.token).await? else {
        return Ok("an unknown button".into());
    };
    let (Some(subject), Some(action)) = (SubjectRef::parse(&button.subject), button.action) else {
        return Ok("an unknown button".into());
    };
    match decision {
        Decision::Act => {
            let key = format!("telegram:{}", press.update_id);
            let acted = act(deps, subject, action, press.by, &key, now).await;
            let (outcome, detail) = match acted {
                Ok(Acted::Done(detail)) => (Outcome::Done, detail),
                Ok(Acted::Refused(why)) => (Outcome::Refused, Some(why)),
                Err(e) if e.is_transient() => return Err(e),
                Err(e) => (Outcome::Failed, Some(e.to_string())),
            };
            audit
                .record(&entry(subject, action, outcome, detail.clone()))
                .await?;
            let mut said = format!(
                "{} {} of {} by {}",
                action.as_str(),
                outcome.as_str(),
                subject.text(),
                press.by.name
            );
            if let Some(d) = &detail {
                said.push_str(&format!(": {d}"));
            }
            if on_reply(subject, &button) {
                let e = entry(subject, action, outcome, detail.clone());
                let text = match e.said() {
                    Some(done) => escape_html(&done),
                    None => format!(
                        "Not done: {}",
                        escape_html(detail.as_deref().unwrap_or("refused"))
                    ),
                };
                if let Some(problem) = settle_reply(deps, &button, &text, now).await {
                    said.push_str(&format!(" ({problem})"));
                }
            }
            if let Some(problem) = show(deps, subject, now).await {
                said.push_str(&format!(" ({problem})"));
            }
            Ok(said)
        }
        why => {
            let detail = match why {
                Decision::Act | Decision::Unknown => {
                    return Ok("a button pressed elsewhere than on its message".into())
                }
                Decision::Used => return Ok("a button used before".into()),
                Decision::NotAllowed => "not an operator",
                Decision::Expired => "the button had expired",
                Decision::MovedOn => "the subject had moved on",
            };
            audit
                .record(&entry(
                    subject,
                    action,
                    Outcome::Refused,
                    Some(detail.into()),
                ))
                .await?;
            let mut said = format!(
                "{} of {} refused to {}: {detail}",
                action.as_str(),
                subject.text(),
                press.by.name
            );
            if matches!(why, Decision::Expired | Decision::MovedOn) {
                // Fresh buttons for what the subject offers now.
                match button.live_id {
                    Some(live) => {
                        if LiveStore::new(deps.sql).remint(live, now).await? {
                            if let Err(e) = deps
                                .queue
                                .send(&JobMessage::TelegramLive { id: live })
                                .await
                            {
                                said.push_str(&format!(" (the refresh was not queued: {e})"));
                            }
                        }
                        if let Some(problem) = show(deps, subject, now).await {
                            said.push_str(&format!(" ({problem})"));
                        }
                    }
                    None if on_reply(subject, &button) => {
                        let text = "This offer has expired or its job has moved on; ask again.";
                        if let Some(problem) = settle_reply(deps, &button, text, now).await {
                            said.push_str(&format!(" ({problem})"));
                        }
                    }
                    None => {
                        if let Some(problem) = show(deps, subject, now).await {
                            said.push_str(&format!(" ({problem})"));
                        }
                    }
                }
            }
            Ok(said)
        }
    }
}

/// The audit rows of one update: what `by` asked for in `chat`, made by the
/// function returned.
fn entry<'a>(
    by: &'a Actor,
    chat: Option<&'a str>,
    update: i64,
    now: Timestamp,
) -> impl Fn(SubjectKind, String, Action, Outcome, Option<String>) -> Entry + 'a {
    move |subject_kind, subject_id, action, result, detail| Entry {
        subject_kind,
        subject_id,
        action: action.as_str().to_owned(),
        result,
        detail,
        actor: by.name.clone(),
        user_id: Some(by.user_id),
        chat_id: chat.map(str::to_owned),
        update_id: Some(update),
        at: now.millis(),
    }
}

/// Edits a reply whose button was pressed (a `/rollback` offer) to what came of it,
/// without its keyboard; what went wrong, for the log.
async fn settle_reply<P: Ports>(
    deps: &Deps<'_, P>,
    button: &Button,
    html: &str,
    now: Timestamp,
) -> Option<String> {
    let telegram = deps.config.telegram.as_ref().ok()?;
    let message = button.message_id?;
    take_slot(deps, &button.chat_id, None, now).await;
    match TelegramClient::new(deps.http, telegram)
        .edit_with(&button.chat_id, message, html, None)
        .await
    {
        SendOutcome::Sent { .. } => None,
        SendOutcome::RateLimited { retry_after } => Some(format!(
            "the offer was not updated: Telegram 429, retry after {retry_after} s"
        )),
        SendOutcome::Transient { error }
        | SendOutcome::Permanent { error }
        | SendOutcome::UnparsableEntities { description: error } => {
            Some(format!("the offer was not updated: {error}"))
        }
    }
}

/// A reply takes the chat's next pace slot, so what follows it in the chat waits
/// its turn, but goes out at once: someone is waiting for it. (A 429 holds it like
/// any message.)
async fn take_slot<P: Ports>(deps: &Deps<'_, P>, chat: &str, thread: Option<i64>, now: Timestamp) {
    if let Some(pace) = deps.config.telegram_pace {
        let thread = thread.map(|t| t.to_string()).unwrap_or_default();
        let _ = crate::pace::PaceStore::new(deps.sql)
            .reserve(chat, &thread, pace, true, now)
            .await;
    }
}

/// A command, as its reply needs it.
struct Said<'a> {
    update_id: i64,
    attempts: u32,
    chat_id: &'a str,
    thread: Option<i64>,
    message_id: i64,
    by: &'a Actor,
}

/// What came of a command.
enum Replied {
    Done(String),
    /// Its reply waits (a 429, a failed send): the update's queue verdict.
    Later(Run),
}

/// A command: in a chat we post to, answered in the same chat and topic.
async fn command<P: Ports>(
    deps: &Deps<'_, P>,
    said: &Said<'_>,
    chat_name: Option<&str>,
    text: &str,
    now: Timestamp,
) -> Result<Replied, ProcessError> {
    let apps = AppStore::new(deps.sql).list().await?;
    if !chatops::chat_is_configured(
        said.chat_id,
        chat_name,
        &configured_chats(deps, &apps).await?,
    ) {
        return Ok(Replied::Done(format!(
            "a command in chat {}, which no route or app posts to: ignored",
            said.chat_id
        )));
    }
    let bot = deps.kv.get(chatops::BOT_NAME_KEY).await.ok().flatten();
    let public_url = deps.config.public_url.as_deref();
    let find = |name: &str| {
        let name = AppName::parse(name).ok();
        apps.iter().find(|a| Some(&a.name) == name.as_ref())
    };
    let unknown = |name: &str| {
        format!(
            "Unknown app <code>{}</code>. /status lists the apps.",
            escape_html(&crate::text::cut(name, 64))
        )
    };
    let mut buttons = Vec::new();
    let html = match Command::parse(text, bot.as_deref()) {
        Command::NotOurs => return Ok(Replied::Done("a command for another bot".into())),
        Command::Status => deploy_ops::board(deps.sql, &apps, public_url).await?,
        Command::Help => chatops::help_text(),
        Command::Usage(name) => format!("Usage: /{name} &lt;app&gt;"),
        Command::Unknown(name) => format!(
            "Unknown command /{}. /help lists the commands.",
            escape_html(&name)
        ),
        Command::Deploys(name) => match find(&name) {
            None => unknown(&name),
            Some(app) => deploy_ops::recent(deps.sql, &app.name, public_url).await?,
        },
        Command::Rollback(name) => match find(&name) {
            None => unknown(&name),
            Some(app)
                if !chatops::may_act(
                    &deps.config.telegram_operators,
                    &app.app.operators,
                    said.by.user_id,
                ) =>
            {
                let app_name = app.name.as_str();
                let refused = entry(said.by, Some(said.chat_id), said.update_id, now);
                AuditStore::new(deps.sql)
                    .record(&refused(
                        SubjectKind::App,
                        app_name.to_owned(),
                        Action::Rollback,
                        Outcome::Refused,
                        Some("not an operator".into()),
                    ))
                    .await?;
                "You are not allowed to do this.".to_owned()
            }
            Some(app) => match deploy_ops::rollback_offer(deps.sql, app).await? {
                RollbackOffer::Nothing(why) => {
                    format!("Nothing to roll back: {}.", escape_html(&why))
                }
                RollbackOffer::Offer {
                    job,
                    environment,
                    from,
                    to,
                } => {
                    let subject = SubjectRef {
                        kind: SubjectKind::Job,
                        id: job,
                    }
                    .text();
                    let on = On::Reply {
                        chat_id: said.chat_id,
                    };
                    buttons = ButtonStore::new(deps.sql)
                        .mint(
                            on,
                            said.chat_id,
                            &subject,
                            Some(app.name.as_str()),
                            &[Action::Rollback],
                            now,
                        )
                        .await?;
                    format!(
                        "Roll back <b>{}</b> in {} from <code>{}</code> (job {job}) to <code>{}</code>?",
                        escape_html(app.name.as_str()),
                        escape_html(&environment),
                        from.chars().take(7).collect::<String>(),
                        to.chars().take(7).collect::<String>()
                    )
                }
            },
        },
    };
    let what = crate::text::cut(text, 64);
    reply(deps, said, &html, &buttons, what, now).await
}

/// The chats a route, an app or `TELEGRAM_CHAT_ID` posts to, as they name them.
async fn configured_chats<P: Ports>(
    deps: &Deps<'_, P>,
    apps: &[NamedApp],
) -> Result<Vec<String>, StoreError> {
    let routes = crate::routes::RouteStore::new(deps.sql).list().await?;
    let mut chats: Vec<String> = routes
        .iter()
        .flat_map(|r| r.spec.destinations.iter())
        .map(|d| d.chat_id.as_str().to_owned())
        .collect();
    chats.extend(apps.iter().filter_map(|a| a.app.telegram_chat_id.clone()));
    if let Ok(t) = &deps.config.telegram {
        chats.push(t.chat_id.clone());
    }
    Ok(crate::maps::unique(chats))
}

/// Sends a command's reply (with `buttons`, a `/rollback` offer's), in its chat and
/// topic, as a reply to it.
async fn reply<P: Ports>(
    deps: &Deps<'_, P>,
    said: &Said<'_>,
    html: &str,
    buttons: &[(Action, String)],
    what: String,
    now: Timestamp,
) -> Result<Replied, ProcessError> {
    let Ok(telegram) = &deps.config.telegram else {
        return Ok(Replied::Done(format!(
            "{what}; not answered: Telegram is not configured"
        )));
    };
    take_slot(deps, said.chat_id, said.thread, now).await;
    let target = Target {
        chat_id: said.chat_id,
        thread: said.thread,
        silent: false,
        link_preview: false,
    };
    let markup = chatops::keyboard(buttons);
    let sent = TelegramClient::new(deps.http, telegram)
        .send_with(&target, html, markup.as_ref(), Some(said.message_id))
        .await;
    let id = said.update_id;
    let error = match sent {
        SendOutcome::Sent { message_id } => {
            if !buttons.is_empty() {
                let tokens: Vec<String> = buttons.iter().map(|(_, t)| t.clone()).collect();
                ButtonStore::new(deps.sql)
                    .placed(&tokens, message_id)
                    .await?;
            }
            return Ok(Replied::Done(format!(
                "{what}; answered as message {message_id}"
            )));
        }
        SendOutcome::RateLimited { retry_after } => {
            let until = now.plus_seconds(i64::from(retry_after));
            let _ = crate::pace::PaceStore::new(deps.sql)
                .block(said.chat_id, until)
                .await;
            return Ok(Replied::Later(Run::retry(
                retry_after,
                format!("update {id}: {what}; Telegram 429, answering in {retry_after} s"),
            )));
        }
        SendOutcome::Transient { error } => error,
        SendOutcome::Permanent { error }
        | SendOutcome::UnparsableEntities { description: error } => {
            return Ok(Replied::Done(format!("{what}; not answered: {error}")));
        }
    };
    let attempts = UpdateStore::new(deps.sql).failed(id, &error, now).await?;
    if attempts.max(said.attempts + 1) >= MAX_REPLY_ATTEMPTS {
        return Ok(Replied::Done(format!(
            "{what}; not answered: {error} (gave up after {attempts} attempts)"
        )));
    }
    let delay = crate::retry::backoff_seconds(attempts);
    Ok(Replied::Later(Run::retry(
        delay,
        format!("update {id}: {what}; {error}; answering in {delay} s"),
    )))
}

/// The cron's part: updates still queued after `SWEEP_AFTER_SECONDS` lost their
/// queue message; they are queued again.
pub async fn sweep<P: Ports>(deps: &Deps<'_, P>, now: Timestamp) -> Vec<String> {
    let cutoff = now.minus_seconds(i64::from(deps.config.sweep_after_seconds));
    let lost = match UpdateStore::new(deps.sql).lost(cutoff, now).await {
        Ok(ids) => ids,
        Err(e) => return vec![format!("updates: {e}")],
    };
    let mut log = Vec::new();
    for id in lost {
        match deps.queue.send(&JobMessage::TelegramUpdate { id }).await {
            Ok(()) => log.push(format!("update {id} queued again")),
            Err(e) => log.push(format!("update {id}: {e}")),
        }
    }
    log
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod protection_tests;
