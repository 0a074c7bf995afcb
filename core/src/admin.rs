//! The admin API's delivery log: one listing of GitHub deliveries and `/notify`
//! notifications, newest first, and the replay of a recorded GitHub delivery.

use serde_json::Value;

use crate::cursor::Cursor;
use crate::github::deliveries::{DeliveryId, DeliveryStore};
use crate::jobs::JobMessage;
use crate::notify::store::NotificationStore;
use crate::ports::{Queue, QueueError, Sql, StoreError};
use crate::time::Timestamp;

/// Why the delivery log could not answer. The store and queue failures say more,
/// for the log; the caller sees a fixed message (`From<LogError> for ApiError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    #[error("not found")]
    NotFound,
    #[error("{what}: {error}")]
    Store {
        what: &'static str,
        error: StoreError,
    },
    #[error("queue: {0}")]
    Queue(QueueError),
    /// A query parameter is wrong (a 400, saying which).
    #[error("{0}")]
    Invalid(String),
}

fn store(what: &'static str) -> impl Fn(StoreError) -> LogError {
    move |error| LogError::Store { what, error }
}

/// Replays delivery `id`: its recorded event is processed again from the start
/// (its attempts count from zero). Unknown ids are not found.
pub async fn replay<S: Sql + Copy, Q: Queue>(
    sql: S,
    queue: &Q,
    id: &str,
    now: Timestamp,
) -> Result<(), LogError> {
    replay_seen(sql, queue, id, None, now).await.map(drop)
}

/// [`replay`], only if the delivery is still as it was `seen` (its `updated_at`,
/// as a page showed it): of two submits of one form exactly one replays. Answers
/// whether it replayed; `seen: None` always does.
pub async fn replay_seen<S: Sql + Copy, Q: Queue>(
    sql: S,
    queue: &Q,
    id: &str,
    seen: Option<i64>,
    now: Timestamp,
) -> Result<bool, LogError> {
    let id = DeliveryId::parse(id).ok_or(LogError::NotFound)?;
    let deliveries = DeliveryStore::new(sql);
    if deliveries
        .event(&id)
        .await
        .map_err(store("delivery"))?
        .is_none()
    {
        return Err(LogError::NotFound);
    }
    if !deliveries
        .replay_seen(&id, seen, now)
        .await
        .map_err(store("delivery"))?
    {
        return Ok(false);
    }
    queue
        .send(&JobMessage::GithubDelivery {
            id: id.as_str().to_owned(),
        })
        .await
        .map_err(LogError::Queue)?;
    Ok(true)
}

/// Which log an entry comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSource {
    /// A GitHub webhook delivery.
    Github,
    /// A `/notify` or poll notification.
    Notify,
}

/// The outcomes a GitHub delivery may have.
pub const GITHUB_OUTCOMES: [&str; 4] = ["queued", "ignored", "processed", "failed"];
/// The states a notification may be in.
pub const NOTIFY_OUTCOMES: [&str; 7] = [
    "pending", "sending", "retrying", "sent", "failed", "not_sent", "recorded",
];
/// The sources of the log at one time, in their order: deliveries first.
const LOG_SOURCES: &str = "gn";

/// What part of the log to list: one source or both, one outcome or all, below a
/// cursor, at most `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogQuery {
    pub source: Option<LogSource>,
    pub outcome: Option<String>,
    pub before: Option<Cursor>,
    pub limit: u32,
}

impl LogQuery {
    /// Reads the query's parameters (`source`, `outcome`, `before`); what is wrong
    /// with one is said in [`LogError::Invalid`].
    pub fn parse(
        source: Option<&str>,
        outcome: Option<&str>,
        before: Option<&str>,
        limit: u32,
    ) -> Result<LogQuery, LogError> {
        let source = match source.filter(|s| !s.is_empty()) {
            None => None,
            Some("github") => Some(LogSource::Github),
            Some("notify") => Some(LogSource::Notify),
            Some(_) => return Err(LogError::Invalid("source must be github or notify".into())),
        };
        let outcome = match outcome.filter(|s| !s.is_empty()) {
            None => None,
            Some(o) if GITHUB_OUTCOMES.contains(&o) || NOTIFY_OUTCOMES.contains(&o) => {
                Some(o.to_owned())
            }
            Some(_) => {
                return Err(LogError::Invalid(
                    "outcome must be one of queued, ignored, processed, pending, sending, retrying, sent, failed, not_sent, recorded".into(),
                ))
            }
        };
        let before = Cursor::from_param(before, LOG_SOURCES)
            .map_err(|e| LogError::Invalid(e.to_string()))?;
        Ok(LogQuery {
            source,
            outcome,
            before,
            limit,
        })
    }

    /// Whether the query reads `source`'s log at all (an outcome only the other
    /// source has rules it out).
    fn reads(&self, source: LogSource, outcomes: &[&str]) -> bool {
        self.source.is_none_or(|s| s == source)
            && self
                .outcome
                .as_deref()
                .is_none_or(|o| outcomes.contains(&o))
    }
}

/// A page of the log and where the next one starts (`None` at the end).
#[derive(Debug, Clone, PartialEq)]
pub struct LogPage {
    pub entries: Vec<Value>,
    pub next: Option<Cursor>,
}

/// A page of both logs, newest first: GitHub deliveries by `received_at`,
/// notifications by `created_at`. Entries of the same millisecond come deliveries
/// first, then by id, highest first. Three round trips at most.
pub async fn deliveries<S: Sql + Copy>(sql: S, q: &LogQuery) -> Result<LogPage, LogError> {
    let bound = |source: char| {
        Cursor::bound_of(q.before.as_ref(), source, LOG_SOURCES, source == 'n')
            .map_err(|e| LogError::Invalid(e.to_string()))
    };
    let outcome = q.outcome.as_deref();
    let fetch = q.limit + 1;
    let github = if q.reads(LogSource::Github, &GITHUB_OUTCOMES) {
        DeliveryStore::new(sql)
            .page(&bound('g')?, outcome, fetch)
            .await
            .map_err(store("deliveries"))?
    } else {
        Vec::new()
    };
    let notify = if q.reads(LogSource::Notify, &NOTIFY_OUTCOMES) {
        NotificationStore::new(sql)
            .page(&bound('n')?, outcome, fetch)
            .await
            .map_err(store("notifications"))?
    } else {
        Vec::new()
    };
    let github: Vec<(i64, Cursor, Value)> = github
        .into_iter()
        .map(|d| {
            let at = d.received_at;
            let key = Cursor::new(at, 'g', d.id.clone());
            let mut v = serde_json::to_value(d).unwrap_or_default();
            v["source"] = "github".into();
            (at, key, v)
        })
        .collect();
    let ids: Vec<i64> = notify.iter().map(|n| n.id).collect();
    let sends = if ids.is_empty() {
        Vec::new()
    } else {
        crate::notify::sends::SendStore::new(sql)
            .of(&ids)
            .await
            .map_err(store("telegram deliveries"))?
    };
    let notify: Vec<(i64, Cursor, Value)> = notify
        .into_iter()
        .map(|n| {
            let destinations: Vec<Value> = sends
                .iter()
                .filter(|r| crate::row::Columns::opt_int(*r, "notification_id") == Some(n.id))
                .map(destination)
                .collect();
            (
                n.created_at,
                Cursor::new(n.created_at, 'n', n.id.to_string()),
                serde_json::json!({
                    "source": "notify",
                    "id": crate::notify::dedupe_key(&n.kind, &n.project_name, &n.deployment_id),
                    "event": format!("{} deployment", n.kind),
                    "repository": null,
                    "project": n.project_name,
                    "via": n.source,
                    "outcome": n.status.as_str(),
                    "detail": n.last_error,
                    "attempts": n.attempts,
                    "destinations": destinations,
                    "received_at": n.created_at,
                    "updated_at": n.updated_at,
                }),
            )
        })
        .collect();
    let merged = crate::cursor::merge_newest(github, notify, |e| e.0);
    let (page, next) = crate::cursor::page(merged, q.limit as usize, |e| e.1.clone());
    Ok(LogPage {
        entries: page.into_iter().map(|e| e.2).collect(),
        next,
    })
}

/// One destination row as the delivery log shows it: where it went and how it
/// stands; a line of a digest says which message carried it.
fn destination(row: &crate::ports::Row) -> Value {
    use crate::row::Columns;
    let status = row.opt_str("status").unwrap_or_default();
    let detail = match (status, row.opt_int("digest_id"), row.opt_int("message_id")) {
        ("sent", Some(_), Some(m)) => Some(format!("sent in digest message {m}")),
        ("digested", Some(d), _) => Some(format!("waiting in digest {d}")),
        _ => row.opt_text("last_error"),
    };
    serde_json::json!({
        "route": row.opt_str("route"),
        "chat_id": row.opt_str("chat_id"),
        "thread": row.opt_str("thread_sent").or(row.opt_str("thread")).filter(|t| !t.is_empty()),
        "status": status,
        "attempts": row.opt_int("attempts"),
        "message_id": row.opt_int("message_id"),
        "digest": row.opt_int("digest_id"),
        "detail": detail,
    })
}

#[cfg(test)]
mod tests;
