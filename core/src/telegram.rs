//! Telegram's Bot API: how its answers are classified, what a delivery does next,
//! and the client. The client is generic over [`Http`] and
//! takes its API base from config, so tests point it at a fake.

pub use crate::html::{escape_html, utf16_len, Rendered, MAX_MESSAGE_CHARS};
use crate::http::{HttpError, HttpRequest, HttpResponse};
use crate::ports::Http;
use crate::retry::{backoff_seconds, clamp_retry_after, MAX_DELIVERY_ATTEMPTS};
use crate::secret::Secret;

/// How long one `sendMessage` may take before it counts as a network failure.
pub const SEND_TIMEOUT_MS: u32 = 10_000;

/// The Workers runtime keeps at most this many connections of one invocation open;
/// the others wait their turn inside `fetch`.
pub const RUNTIME_CONNECTIONS: usize = 6;

/// What Telegram's answer to a send means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    Sent {
        message_id: i64,
    },
    /// 429: try again after this many seconds.
    RateLimited {
        retry_after: u32,
    },
    /// 400 "can't parse entities": the HTML was refused; resend as plain text.
    UnparsableEntities {
        description: String,
    },
    /// 5xx, a network error or a timeout: worth retrying.
    Transient {
        error: String,
    },
    /// Any other 4xx: retrying will not help.
    Permanent {
        error: String,
    },
}

/// Fallback wait when a 429 carries no `retry_after`.
const DEFAULT_RETRY_AFTER_SECONDS: u64 = 5;

/// Classifies Telegram's answer to `sendMessage`.
pub fn classify(result: Result<HttpResponse, HttpError>) -> SendOutcome {
    let resp = match result {
        Ok(r) => r,
        Err(e) => {
            return SendOutcome::Transient {
                error: format!("Telegram: {e}"),
            }
        }
    };
    // {"ok", "description", "result": {"message_id"}, "parameters": {"retry_after"}}
    let answer = crate::json::value(&resp.body).unwrap_or_default();
    let description = crate::json::str_at(&answer, "/description")
        .unwrap_or("no description")
        .to_owned();
    let sent = crate::json::int_at(&answer, "/result/message_id")
        .filter(|_| answer.get("ok") == Some(&serde_json::Value::Bool(true)));
    match resp.status {
        200..=299 => match sent {
            Some(message_id) => SendOutcome::Sent { message_id },
            None => SendOutcome::Transient {
                error: format!("Telegram {}: unexpected answer", resp.status),
            },
        },
        429 => SendOutcome::RateLimited {
            retry_after: clamp_retry_after(
                answer
                    .pointer("/parameters/retry_after")
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(DEFAULT_RETRY_AFTER_SECONDS),
            ),
        },
        400 if description
            .to_ascii_lowercase()
            .contains("can't parse entities") =>
        {
            SendOutcome::UnparsableEntities { description }
        }
        500..=599 => SendOutcome::Transient {
            error: format!("Telegram {}: {description}", resp.status),
        },
        status => SendOutcome::Permanent {
            error: format!("Telegram {status}: {description}"),
        },
    }
}

/// What to do with a queue message after a delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryAction {
    /// Record the message id; acknowledge.
    Sent { message_id: i64 },
    /// Record the error; redeliver after the delay.
    Retry { delay_seconds: u32, error: String },
    /// Retries are exhausted: mark failed and hand the message to the dead-letter queue.
    GiveUp { error: String },
    /// Permanent failure: mark failed, log, acknowledge without retrying.
    Fail { error: String },
}

/// Decides the next step from the outcome and this delivery's number (1-based).
pub fn decide(outcome: SendOutcome, attempt: u32) -> DeliveryAction {
    let last = attempt >= MAX_DELIVERY_ATTEMPTS;
    match outcome {
        SendOutcome::Sent { message_id } => DeliveryAction::Sent { message_id },
        SendOutcome::RateLimited { retry_after } if !last => DeliveryAction::Retry {
            delay_seconds: retry_after,
            error: format!("Telegram 429: retry after {retry_after} s"),
        },
        SendOutcome::RateLimited { retry_after } => DeliveryAction::GiveUp {
            error: format!("Telegram 429: still rate limited (retry after {retry_after} s) after {attempt} attempts"),
        },
        SendOutcome::Transient { error } if !last => DeliveryAction::Retry {
            delay_seconds: backoff_seconds(attempt),
            error,
        },
        SendOutcome::Transient { error } => DeliveryAction::GiveUp {
            error: format!("{error} (gave up after {attempt} attempts)"),
        },
        SendOutcome::UnparsableEntities { description } => DeliveryAction::Fail {
            error: format!("Telegram 400: {description}"),
        },
        SendOutcome::Permanent { error } => DeliveryAction::Fail { error },
    }
}

/// Where and as whom to send.
#[derive(Debug, Clone)]
pub struct TelegramConfig {
    /// `TELEGRAM_API_BASE`, without a trailing slash.
    pub api_base: String,
    pub bot_token: Secret,
    pub chat_id: String,
}

/// Where one message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    pub chat_id: &'a str,
    /// A forum topic (`message_thread_id`).
    pub thread: Option<i64>,
    /// `disable_notification`.
    pub silent: bool,
    /// Link previews are off unless asked for.
    pub link_preview: bool,
}

impl<'a> Target<'a> {
    /// The chat itself, with a sound and no link preview.
    pub fn chat(chat_id: &'a str) -> Self {
        Target {
            chat_id,
            thread: None,
            silent: false,
            link_preview: false,
        }
    }
}

/// Whether Telegram refused a message because of its topic: the chat is not a
/// forum, or the topic is gone or closed. The message then goes to the chat itself.
pub fn topic_refused(outcome: &SendOutcome) -> bool {
    let SendOutcome::Permanent { error } = outcome else {
        return false;
    };
    let e = error.to_ascii_lowercase();
    [
        "thread not found",
        "not a forum",
        "topic_closed",
        "topic_deleted",
        "topic closed",
        "topic deleted",
    ]
    .iter()
    .any(|s| e.contains(s))
}

/// The Bot API client.
pub struct TelegramClient<'a, H> {
    http: &'a H,
    config: &'a TelegramConfig,
    /// How long one call may take ([`TelegramClient::behind`]).
    timeout_ms: u32,
}

impl<'a, H: Http> TelegramClient<'a, H> {
    pub fn new(http: &'a H, config: &'a TelegramConfig) -> Self {
        TelegramClient {
            http,
            config,
            timeout_ms: SEND_TIMEOUT_MS,
        }
    }

    /// A client for a request made together with `ahead` others: the runtime sends
    /// six at a time, so its [`SEND_TIMEOUT_MS`] counts from when its turn can come
    /// (each earlier round ends, at the latest, by its own timeout) rather than from
    /// the call.
    pub fn behind(mut self, ahead: usize) -> Self {
        let rounds = u32::try_from(ahead / RUNTIME_CONNECTIONS).unwrap_or(u32::MAX);
        self.timeout_ms = SEND_TIMEOUT_MS.saturating_mul(rounds.saturating_add(1));
        self
    }

    /// Sends one message to the configured chat: HTML first; if Telegram cannot
    /// parse the HTML, the same message as plain text, so a formatting slip never
    /// loses a notification.
    pub async fn deliver(&self, message: &Rendered, silent: bool) -> SendOutcome {
        let target = Target {
            silent,
            ..Target::chat(&self.config.chat_id)
        };
        self.deliver_to(&target, message, None).await
    }

    /// Sends one message to `target`, HTML first and plain text if Telegram cannot
    /// parse the HTML, with an inline keyboard (`markup`) either way.
    pub async fn deliver_to(
        &self,
        target: &Target<'_>,
        message: &Rendered,
        markup: Option<&serde_json::Value>,
    ) -> SendOutcome {
        match self.send(target, &message.html, true, markup, None).await {
            SendOutcome::UnparsableEntities { .. } => {
                self.send(target, &message.plain, false, markup, None).await
            }
            other => other,
        }
    }

    /// Sends one HTML message as it is (callers escape what they put in it).
    pub async fn send_html(&self, html: &str, silent: bool) -> SendOutcome {
        let target = Target {
            silent,
            ..Target::chat(&self.config.chat_id)
        };
        self.send(&target, html, true, None, None).await
    }

    /// Sends one HTML message as it is to `target`.
    pub async fn send_html_to(&self, target: &Target<'_>, html: &str) -> SendOutcome {
        self.send(target, html, true, None, None).await
    }

    /// Sends one HTML message to `target` with an inline keyboard (`markup`), as a
    /// reply to message `reply_to` when given.
    pub async fn send_with(
        &self,
        target: &Target<'_>,
        html: &str,
        markup: Option<&serde_json::Value>,
        reply_to: Option<i64>,
    ) -> SendOutcome {
        self.send(target, html, true, markup, reply_to).await
    }

    /// Replaces the text of a message sent earlier (`editMessageText`) in the
    /// configured chat.
    pub async fn edit_html(&self, message_id: i64, html: &str) -> SendOutcome {
        self.edit_in(&self.config.chat_id, message_id, html).await
    }

    /// Replaces the text of message `message_id` in `chat_id`. Telegram's "message
    /// is not modified" means it already shows this text: a success.
    pub async fn edit_in(&self, chat_id: &str, message_id: i64, html: &str) -> SendOutcome {
        self.edit_with(chat_id, message_id, html, None).await
    }

    /// [`TelegramClient::edit_in`] with an inline keyboard; without one, the message
    /// keeps none.
    pub async fn edit_with(
        &self,
        chat_id: &str,
        message_id: i64,
        html: &str,
        markup: Option<&serde_json::Value>,
    ) -> SendOutcome {
        let mut body = serde_json::json!({
            "chat_id": chat_id,
            "message_id": message_id,
            "text": html,
            "parse_mode": "HTML",
            "link_preview_options": { "is_disabled": true },
        });
        if let Some(m) = markup {
            body["reply_markup"] = m.clone();
        }
        match self.call("editMessageText", &body).await {
            SendOutcome::Permanent { error } if error.contains("message is not modified") => {
                SendOutcome::Sent { message_id }
            }
            other => other,
        }
    }

    /// Makes a forum topic named `name` in `chat_id` (`createForumTopic`; the bot
    /// must be an admin allowed to manage topics): its thread id, or what Telegram
    /// answered.
    pub async fn create_forum_topic(&self, chat_id: &str, name: &str) -> Result<i64, SendOutcome> {
        let body = serde_json::json!({ "chat_id": chat_id, "name": name });
        let request = HttpRequest::post_json(
            self.method_url("createForumTopic"),
            crate::json::text(&body),
            self.timeout_ms,
        );
        let answer = self.http.send(request).await;
        if let Ok(resp) = &answer {
            if resp.status == 200 {
                if let Some(thread) = crate::json::value(&resp.body)
                    .ok()
                    .and_then(|v| crate::json::int_at(&v, "/result/message_thread_id"))
                {
                    return Ok(thread);
                }
            }
        }
        Err(match self.scrub(classify(answer)) {
            SendOutcome::Sent { .. } => SendOutcome::Transient {
                error: "Telegram: createForumTopic answered without a thread id".into(),
            },
            other => other,
        })
    }

    async fn send(
        &self,
        target: &Target<'_>,
        text: &str,
        html: bool,
        markup: Option<&serde_json::Value>,
        reply_to: Option<i64>,
    ) -> SendOutcome {
        let mut body = serde_json::json!({
            "chat_id": target.chat_id,
            "text": text,
            "link_preview_options": { "is_disabled": !target.link_preview },
            "disable_notification": target.silent,
        });
        if let Some(thread) = target.thread {
            body["message_thread_id"] = thread.into();
        }
        if html {
            body["parse_mode"] = "HTML".into();
        }
        if let Some(m) = markup {
            body["reply_markup"] = m.clone();
        }
        if let Some(id) = reply_to {
            // A command deleted meanwhile still gets its answer.
            body["reply_parameters"] =
                serde_json::json!({ "message_id": id, "allow_sending_without_reply": true });
        }
        self.call("sendMessage", &body).await
    }

    /// Calls Bot API `method` with `body`: its `result` when Telegram says `ok`, else
    /// what it said (scrubbed of the token), for calls whose answer is reported as
    /// it is (`setWebhook`, `setMyCommands`, `getMe`).
    pub async fn ask(
        &self,
        method: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        let request = HttpRequest::post_json(
            self.method_url(method),
            crate::json::text(body),
            self.timeout_ms,
        );
        let answer = match self.http.send(request).await {
            Ok(r) => r,
            Err(e) => return Err(self.clean(format!("Telegram: {e}"))),
        };
        let v = crate::json::value(&answer.body).unwrap_or_default();
        match v.get("result") {
            Some(result) if v.get("ok") == Some(&serde_json::Value::Bool(true)) => {
                Ok(result.clone())
            }
            _ => Err(self.clean(format!(
                "Telegram {}: {}",
                answer.status,
                crate::json::str_at(&v, "/description").unwrap_or("no description")
            ))),
        }
    }

    fn clean(&self, s: String) -> String {
        let token = self.config.bot_token.expose();
        if token.is_empty() {
            s
        } else {
            s.replace(token, "***")
        }
    }

    fn method_url(&self, method: &str) -> String {
        format!(
            "{}/bot{}/{method}",
            self.config.api_base,
            self.config.bot_token.expose()
        )
    }

    /// One Bot API call, its answer classified and scrubbed of the token.
    async fn call(&self, method: &str, body: &serde_json::Value) -> SendOutcome {
        let request = HttpRequest::post_json(
            self.method_url(method),
            crate::json::text(body),
            self.timeout_ms,
        );
        self.scrub(classify(self.http.send(request).await))
    }

    /// A network error's text can quote the URL, and the URL holds the token.
    fn scrub(&self, outcome: SendOutcome) -> SendOutcome {
        let clean = |s: String| self.clean(s);
        match outcome {
            SendOutcome::Transient { error } => SendOutcome::Transient {
                error: clean(error),
            },
            SendOutcome::Permanent { error } => SendOutcome::Permanent {
                error: clean(error),
            },
            SendOutcome::UnparsableEntities { description } => SendOutcome::UnparsableEntities {
                description: clean(description),
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests;
