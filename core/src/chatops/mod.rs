//! Chat-ops: what people do from Telegram, below the flows. Telegram's webhook
//! updates ([`parse_update`], after [`check_secret`]) become a command in a chat or
//! a button press; who may act ([`may_act`]: `TELEGRAM_OPERATORS` and an app's own
//! `operators`) and where ([`chat_is_configured`]: the chats a route or an app posts
//! to); the buttons' tokens and the updates in D1 ([`store`]); the commands
//! ([`Command`]) and the keyboards ([`keyboard`]).
//!
//! What an action does to its subject belongs to the subject's flow (a deploy job's
//! to `deploy::chatops`); `dispatch::telegram` above the flows routes each press to
//! it by the subject's kind.

pub mod store;

use serde::Serialize;
use serde_json::Value;

use crate::audit::SubjectKind;
use crate::json::{FromJson, Invalid, Names, Obj, Path};
use crate::secret::Secret;

/// Largest webhook body taken: an update is a few KiB (a message of 4,096
/// characters with its entities); Telegram's own limit is far below this.
pub const MAX_UPDATE_BYTES: usize = 1024 * 1024;

/// A button is good for this long after it was put on its message; pressed later, it
/// is refused as expired and the message gets fresh ones (when its subject still
/// offers them). Long enough for "roll back yesterday's deploy", short enough that a
/// message copied around does not stay a lever for good.
pub const BUTTON_TTL_HOURS: i64 = 24;

/// What a button or a command asks for. Which of them a subject offers, and what
/// they do to it, is the subject's flow's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Names)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Cancel,
    Rollback,
    Retry,
    Approve,
    Reject,
}

impl Action {
    /// The button's label.
    pub fn label(self) -> &'static str {
        match self {
            Action::Cancel => "✖️ Cancel",
            Action::Rollback => "↩️ Roll back",
            Action::Retry => "🔁 Retry",
            Action::Approve => "✅ Approve",
            Action::Reject => "❌ Reject",
        }
    }

    /// The answer to an accepted press.
    pub fn doing(self) -> &'static str {
        match self {
            Action::Cancel => "Cancelling…",
            Action::Rollback => "Rolling back…",
            Action::Retry => "Retrying…",
            Action::Approve => "Approving…",
            Action::Reject => "Rejecting…",
        }
    }
}

/// A list of actions as a `telegram_live.buttons` value: `cancel`, `approve,reject`.
pub fn actions_text(actions: &[Action]) -> String {
    let names: Vec<&str> = actions.iter().map(|a| a.as_str()).collect();
    names.join(",")
}

/// The actions of a `telegram_live.buttons` value (unknown names are dropped).
pub fn actions_of(text: &str) -> Vec<Action> {
    text.split(',').filter_map(Action::parse).collect()
}

/// What a button acts on: `job:12`, as a live message's subject is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubjectRef {
    pub kind: SubjectKind,
    pub id: i64,
}

impl SubjectRef {
    pub fn parse(s: &str) -> Option<SubjectRef> {
        let (kind, id) = s.split_once(':')?;
        Some(SubjectRef {
            kind: SubjectKind::parse(kind)?,
            id: id.parse().ok()?,
        })
    }

    pub fn text(self) -> String {
        format!("{}:{}", self.kind.as_str(), self.id)
    }
}

/// Who pressed or wrote: a Telegram user's id and the name people know them by
/// (`@username`, else their first name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromJson)]
pub struct Actor {
    pub user_id: i64,
    pub name: String,
}

/// An update worth processing, as it is kept (`telegram_updates.payload`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromJson)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Update {
    /// A message starting with `/`: a command.
    Command {
        /// The chat's id, as Telegram gives it (`-1001234567890`).
        chat_id: String,
        /// A public chat's `@name` (lower-case), which a route may name instead.
        #[serde(skip_serializing_if = "Option::is_none")]
        chat_name: Option<String>,
        /// The forum topic it was written in.
        #[serde(skip_serializing_if = "Option::is_none")]
        thread: Option<i64>,
        message_id: i64,
        by: Actor,
        text: String,
    },
    /// A press of one of our buttons.
    Press {
        callback_id: String,
        by: Actor,
        /// The message the button is on (absent for a message Telegram no longer
        /// shows the bot).
        #[serde(skip_serializing_if = "Option::is_none")]
        chat_id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        message_id: Option<i64>,
        /// The button's `callback_data`.
        token: String,
    },
}

impl Update {
    pub fn kind(&self) -> &'static str {
        match self {
            Update::Command { .. } => "command",
            Update::Press { .. } => "press",
        }
    }
}

/// A webhook body: its `update_id` and what it holds for us (`None`: an update we do
/// nothing with, an ordinary message, an edit, a member change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub update_id: i64,
    pub update: Option<Update>,
}

/// Why a webhook body is refused (a 400 with this text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadUpdate(pub String);

/// The secret header's check: `Ok` only for the configured secret, compared in
/// constant time.
pub fn check_secret(header: Option<&str>, secret: &Secret) -> bool {
    header.is_some_and(|h| crate::auth::constant_time_eq(h.as_bytes(), secret.expose().as_bytes()))
}

/// Reads a webhook body. Hand-written: Telegram's update nests what we keep
/// (`message.chat.id`, `callback_query.from`) in objects whose other fields we
/// ignore, and a number-or-string chat id becomes one string.
pub fn parse_update(body: &[u8]) -> Result<Incoming, BadUpdate> {
    let v: Value = crate::json::read_slice(body).map_err(|e| BadUpdate(e.to_string()))?;
    let read = || -> Result<Incoming, Invalid> {
        let o = Obj::new(&v, Path::Root)?;
        let update_id: i64 = o.req("update_id")?;
        let update = if let Some(m) = o.opt_obj("message")? {
            command(&m)?
        } else if let Some(q) = o.opt_obj("callback_query")? {
            press(&q)?
        } else {
            None
        };
        Ok(Incoming { update_id, update })
    };
    read().map_err(|e| BadUpdate(e.to_string()))
}

/// Longest command text kept (a command and its argument; Telegram allows 4,096).
const MAX_COMMAND_CHARS: usize = 256;

fn actor(o: &Obj<'_>) -> Result<Option<Actor>, Invalid> {
    let Some(from) = o.opt_obj("from")? else {
        return Ok(None);
    };
    let user_id: i64 = from.req("id")?;
    let username: Option<String> = from.opt("username")?;
    let first: Option<String> = from.opt("first_name")?;
    let name = match (username, first) {
        (Some(u), _) if !u.is_empty() => format!("@{}", crate::text::cut(&u, 64)),
        (_, Some(f)) if !f.trim().is_empty() => crate::text::cut(f.trim(), 64),
        _ => format!("user {user_id}"),
    };
    Ok(Some(Actor { user_id, name }))
}

/// A chat id as a string, from the number Telegram sends.
fn chat_of(o: &Obj<'_>) -> Result<(String, Option<String>), Invalid> {
    let chat = o.obj("chat")?;
    let id: i64 = chat.req("id")?;
    let name: Option<String> = chat.opt("username")?;
    Ok((
        id.to_string(),
        name.map(|n| format!("@{}", n.to_ascii_lowercase())),
    ))
}

fn command(m: &Obj<'_>) -> Result<Option<Update>, Invalid> {
    let Some(text) = m.opt::<String>("text")? else {
        return Ok(None);
    };
    if !text.starts_with('/') {
        return Ok(None);
    }
    let Some(by) = actor(m)? else {
        // A channel post has no sender: nobody to answer to or hold to account.
        return Ok(None);
    };
    let (chat_id, chat_name) = chat_of(m)?;
    let topic: bool = m.opt("is_topic_message")?.unwrap_or(false);
    Ok(Some(Update::Command {
        chat_id,
        chat_name,
        thread: if topic {
            m.opt("message_thread_id")?
        } else {
            None
        },
        message_id: m.req("message_id")?,
        by,
        text: crate::text::cut(&text, MAX_COMMAND_CHARS),
    }))
}

fn press(q: &Obj<'_>) -> Result<Option<Update>, Invalid> {
    let Some(by) = actor(q)? else {
        return Ok(None);
    };
    let Some(token) = q.opt::<String>("data")? else {
        return Ok(None);
    };
    let (chat_id, message_id) = match q.opt_obj("message")? {
        Some(m) => (Some(chat_of(&m)?.0), m.opt("message_id")?),
        None => (None, None),
    };
    Ok(Some(Update::Press {
        callback_id: q.req("id")?,
        by,
        chat_id,
        message_id,
        token: crate::text::cut(&token, 64),
    }))
}

/// A command, read from a message's text: `/name`, `/name@bot` (`bot` our own
/// username, when we know it) and its argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Status,
    Deploys(String),
    Rollback(String),
    Help,
    /// Needs an argument it did not get: the command's name.
    Usage(&'static str),
    Unknown(String),
    /// Addressed to another bot (`/status@otherbot`): not ours to answer.
    NotOurs,
}

/// The commands, as `setMyCommands` lists them and `/help` shows them.
pub const COMMANDS: &[(&str, &str, &str)] = &[
    (
        "status",
        "",
        "each app's production commit and what is running or waiting",
    ),
    ("deploys", " <app>", "the app's last 5 deploy jobs"),
    (
        "rollback",
        " <app>",
        "roll the app back to its previous commit (asks first)",
    ),
    ("help", "", "these commands"),
];

impl Command {
    pub fn parse(text: &str, bot: Option<&str>) -> Command {
        let mut words = text.split_whitespace();
        let first = words.next().unwrap_or("");
        let name = first.strip_prefix('/').unwrap_or(first);
        let (name, to) = match name.split_once('@') {
            Some((n, to)) => (n, Some(to)),
            None => (name, None),
        };
        if let (Some(to), Some(bot)) = (to, bot) {
            if !to.eq_ignore_ascii_case(bot.trim_start_matches('@')) {
                return Command::NotOurs;
            }
        }
        let arg = words.next().map(str::to_owned);
        match (name.to_ascii_lowercase().as_str(), arg) {
            ("status", _) => Command::Status,
            ("help" | "start", _) => Command::Help,
            ("deploys", Some(app)) => Command::Deploys(app),
            ("deploys", None) => Command::Usage("deploys"),
            ("rollback", Some(app)) => Command::Rollback(app),
            ("rollback", None) => Command::Usage("rollback"),
            (other, _) => Command::Unknown(crate::text::cut(other, 32)),
        }
    }
}

/// `/help`'s text (Telegram HTML).
pub fn help_text() -> String {
    let mut out = String::from("<b>Commands</b>\n");
    for (name, args, what) in COMMANDS {
        out.push_str(&format!(
            "/{name}{} — {what}\n",
            crate::telegram::escape_html(args)
        ));
    }
    out.push_str("\nButtons and /rollback act only for operators.");
    out
}

/// Whether `user` may act on something of `app`: listed in `TELEGRAM_OPERATORS`, or
/// among the app's own `operators`.
pub fn may_act(operators: &[i64], app_operators: &[i64], user: i64) -> bool {
    operators.contains(&user) || app_operators.contains(&user)
}

/// Whether a message's chat (its id, and a public chat's `@name`) is one of
/// `configured` (the chats the routes, the apps and `TELEGRAM_CHAT_ID` post to, as
/// they name them).
pub fn chat_is_configured(chat_id: &str, chat_name: Option<&str>, configured: &[String]) -> bool {
    configured
        .iter()
        .any(|c| c == chat_id || chat_name.is_some_and(|n| c.eq_ignore_ascii_case(n)))
}

/// An inline keyboard of `buttons` (label, token), one row each; `None` for none.
pub fn keyboard(buttons: &[(Action, String)]) -> Option<Value> {
    if buttons.is_empty() {
        return None;
    }
    let rows: Vec<Value> = buttons
        .iter()
        .map(|(action, token)| {
            serde_json::json!([{ "text": action.label(), "callback_data": token }])
        })
        .collect();
    Some(serde_json::json!({ "inline_keyboard": rows }))
}

/// The answer to a press, in the webhook's own response: Telegram calls
/// `answerCallbackQuery` with it, so the button stops spinning at once.
pub fn answer(callback_id: &str, text: &str) -> Value {
    serde_json::json!({
        "method": "answerCallbackQuery",
        "callback_query_id": callback_id,
        "text": text,
    })
}

/// Where the bot's own username is kept (learned from `getMe` at
/// `POST /api/telegram/setup`), so that `/status@otherbot` is left to the other bot.
pub const BOT_NAME_KEY: &str = "telegram:bot";

/// How long the bot's username is remembered: until the next setup, in practice
/// (a bot's username changes only through @BotFather).
const BOT_NAME_TTL_SECONDS: u64 = 400 * 86_400;

/// Why `POST /api/telegram/setup` cannot call Telegram: the setting it lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not configured")]
pub struct SetupError(pub &'static str);

/// `POST /api/telegram/setup`: points Telegram's webhook at `PUBLIC_URL/telegram`
/// with the secret and the two kinds of update used (`setWebhook`), lists the
/// commands (`setMyCommands`) and learns the bot's username (`getMe`). Returns the
/// status (200 when Telegram took all three, else 502) and what Telegram answered
/// to each.
pub async fn setup<H: crate::ports::Http, K: crate::ports::Kv>(
    http: &H,
    kv: &K,
    config: &crate::config::Config,
) -> Result<(u16, Value), SetupError> {
    let telegram = config.telegram.as_ref().map_err(|m| SetupError(m))?;
    let secret = config
        .telegram_webhook_secret
        .as_ref()
        .map_err(|m| SetupError(m))?;
    let base = config
        .public_url
        .as_deref()
        .ok_or(SetupError("PUBLIC_URL"))?;
    let client = crate::telegram::TelegramClient::new(http, telegram);
    let url = format!("{base}/telegram");
    let webhook = client
        .ask(
            "setWebhook",
            &serde_json::json!({
                "url": url,
                "secret_token": secret.expose(),
                "allowed_updates": ["message", "callback_query"],
            }),
        )
        .await;
    let commands: Vec<Value> = COMMANDS
        .iter()
        .map(|(name, args, what)| {
            serde_json::json!({ "command": name, "description": format!("{}{what}", if args.is_empty() { "" } else { "<app>: " }) })
        })
        .collect();
    let listed = client
        .ask(
            "setMyCommands",
            &serde_json::json!({ "commands": commands }),
        )
        .await;
    let me = client.ask("getMe", &serde_json::json!({})).await;
    let username = me
        .as_ref()
        .ok()
        .and_then(|r| r.get("username"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut problems = Vec::new();
    let mut said = |what: &str, r: &Result<Value, String>| match r {
        Ok(_) => serde_json::json!({ "ok": true }),
        Err(e) => {
            problems.push(format!("{what}: {e}"));
            serde_json::json!({ "ok": false, "error": e })
        }
    };
    let mut body = serde_json::json!({
        "webhook": said("setWebhook", &webhook),
        "commands": said("setMyCommands", &listed),
        "bot": said("getMe", &me),
    });
    body["webhook"]["url"] = url.into();
    if let Some(name) = &username {
        body["bot"]["username"] = name.as_str().into();
        if let Err(e) = kv.put(BOT_NAME_KEY, name, BOT_NAME_TTL_SECONDS).await {
            problems.push(format!("the bot's username was not kept: {e}"));
        }
    }
    body["success"] = problems.is_empty().into();
    if problems.is_empty() {
        Ok((200, body))
    } else {
        body["error"] = problems.join("; ").into();
        Ok((502, body))
    }
}

#[cfg(test)]
mod tests;
