//! The admin API's delivery log: one listing of GitHub deliveries and `/notify`
//! notifications, newest first, and the replay of a recorded GitHub delivery.

use serde_json::Value;

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
    deliveries
        .replay(&id, now)
        .await
        .map_err(store("delivery"))?;
    queue
        .send(&JobMessage::GithubDelivery {
            id: id.as_str().to_owned(),
        })
        .await
        .map_err(LogError::Queue)
}

/// The newest `limit` entries of both logs, newest first: GitHub deliveries by
/// `received_at`, notifications by `created_at` (the two stores list them in that
/// order). Entries of the same millisecond keep that order, deliveries first.
pub async fn deliveries<S: Sql + Copy>(sql: S, limit: u32) -> Result<Vec<Value>, LogError> {
    let github = DeliveryStore::new(sql)
        .recent(limit)
        .await
        .map_err(store("deliveries"))?;
    let notify = NotificationStore::new(sql)
        .recent(limit)
        .await
        .map_err(store("notifications"))?;
    let github = github.into_iter().map(|d| {
        let at = d.received_at;
        let mut v = serde_json::to_value(d).unwrap_or_default();
        v["source"] = "github".into();
        (at, v)
    });
    let ids: Vec<i64> = notify.iter().map(|n| n.id).collect();
    let sends = crate::notify::sends::SendStore::new(sql)
        .of(&ids)
        .await
        .map_err(store("telegram deliveries"))?;
    let notify = notify.into_iter().map(|n| {
        let destinations: Vec<Value> = sends
            .iter()
            .filter(|r| crate::row::Columns::opt_int(*r, "notification_id") == Some(n.id))
            .map(destination)
            .collect();
        (
            n.created_at,
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
    });
    Ok(newest_first(github, notify, limit as usize))
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

/// Merges two lists that are each newest first into the first `limit` of both,
/// newest first; on a tie the first list's entry comes first. One pass, no sort.
fn newest_first(
    first: impl Iterator<Item = (i64, Value)>,
    second: impl Iterator<Item = (i64, Value)>,
    limit: usize,
) -> Vec<Value> {
    let (mut first, mut second) = (first.peekable(), second.peekable());
    let mut merged = Vec::new();
    while merged.len() < limit {
        let from_first = match (first.peek(), second.peek()) {
            (Some((a, _)), Some((b, _))) => a >= b,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let next = if from_first {
            first.next()
        } else {
            second.next()
        };
        merged.extend(next.map(|(_, v)| v));
    }
    merged
}

#[cfg(test)]
mod tests;
