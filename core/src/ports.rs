//! The small interfaces the flows use to reach the outside world. The Worker crate
//! implements them over D1, KV, Queues and `fetch`; tests implement them in memory
//! or over native SQLite. Methods return `impl Future` without `Send`, because the
//! Workers runtime types are `!Send`.

use std::future::Future;

use crate::http::{HttpError, HttpRequest, HttpResponse};

/// Outgoing HTTP.
pub trait Http {
    fn send(&self, request: HttpRequest) -> impl Future<Output = Result<HttpResponse, HttpError>>;
}

/// A bound SQL parameter; D1 and SQLite both take these three.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Null,
    Integer(i64),
    Text(String),
}

impl From<i64> for SqlValue {
    fn from(v: i64) -> Self {
        SqlValue::Integer(v)
    }
}

impl From<u32> for SqlValue {
    fn from(v: u32) -> Self {
        SqlValue::Integer(i64::from(v))
    }
}

impl From<&str> for SqlValue {
    fn from(v: &str) -> Self {
        SqlValue::Text(v.to_owned())
    }
}

impl From<String> for SqlValue {
    fn from(v: String) -> Self {
        SqlValue::Text(v)
    }
}

impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(SqlValue::Null, Into::into)
    }
}

/// A failure of the database (or KV); the text is for logs, never for responses.
/// Boxed: every store call returns `Result<_, StoreError>` through the flows' async
/// state machines, and one pointer is less to keep and move than a kind and a text.
/// The kinds are built as before (`StoreError::Row(text)`, by functions of the
/// variants' names) and read with [`StoreError::failure`].
#[derive(Clone, PartialEq, Eq)]
pub struct StoreError(Box<StoreFailure>);

/// What failed in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreFailure {
    /// The binding is not there.
    Unbound(String),
    /// D1, SQLite or KV failed the call.
    Driver(String),
    /// A stored row does not read back as what was written.
    Row(String),
    /// A value could not be written (as JSON).
    Encode(String),
}

#[expect(
    non_snake_case,
    reason = "named as the kinds they make, so call sites read StoreError::Row(text)"
)]
impl StoreError {
    /// The binding is not there.
    pub fn Unbound(e: String) -> StoreError {
        StoreError(Box::new(StoreFailure::Unbound(e)))
    }

    /// D1, SQLite or KV failed the call.
    pub fn Driver(e: String) -> StoreError {
        StoreError(Box::new(StoreFailure::Driver(e)))
    }

    /// A stored row does not read back as what was written.
    pub fn Row(e: String) -> StoreError {
        StoreError(Box::new(StoreFailure::Row(e)))
    }

    /// A value could not be written (as JSON).
    pub fn Encode(e: String) -> StoreError {
        StoreError(Box::new(StoreFailure::Encode(e)))
    }
}

impl StoreError {
    pub fn row(e: impl std::fmt::Display) -> StoreError {
        StoreError::Row(e.to_string())
    }

    pub fn encode(e: impl std::fmt::Display) -> StoreError {
        StoreError::Encode(e.to_string())
    }

    pub fn failure(&self) -> &StoreFailure {
        &self.0
    }
}

// As the kind itself (`Row("...")`), as when it was not boxed.
crate::boxed::reads_as_its_kind!(StoreError);

// By hand rather than derived: one format for every kind keeps the Worker small
// (and every kind carries a String, so dropping one is one free).
impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let detail = match &*self.0 {
            StoreFailure::Unbound(e)
            | StoreFailure::Driver(e)
            | StoreFailure::Row(e)
            | StoreFailure::Encode(e) => e,
        };
        write!(f, "database error: {detail}")
    }
}

impl std::error::Error for StoreError {}

/// A row as column name → JSON value (D1 hands rows over as objects).
pub type Row = serde_json::Map<String, serde_json::Value>;

/// SQL over D1 or SQLite. The SQL text itself lives in [`crate::notify::store`].
pub trait Sql {
    /// Runs a statement and reports what it changed.
    fn execute(
        &self,
        sql: &str,
        params: &[SqlValue],
    ) -> impl Future<Output = Result<Executed, StoreError>>;
    /// Runs a query (or a statement with `RETURNING`) and returns its rows.
    fn query(
        &self,
        sql: &str,
        params: &[SqlValue],
    ) -> impl Future<Output = Result<Vec<Row>, StoreError>>;
    /// Runs several statements in one round trip, as one transaction.
    fn batch(&self, statements: &[Statement]) -> impl Future<Output = Result<(), StoreError>>;
}

/// A shared reference to a [`Sql`] is one too, so stores can borrow a connection.
impl<T: Sql + ?Sized> Sql for &T {
    fn execute(
        &self,
        sql: &str,
        params: &[SqlValue],
    ) -> impl Future<Output = Result<Executed, StoreError>> {
        (**self).execute(sql, params)
    }

    fn query(
        &self,
        sql: &str,
        params: &[SqlValue],
    ) -> impl Future<Output = Result<Vec<Row>, StoreError>> {
        (**self).query(sql, params)
    }

    fn batch(&self, statements: &[Statement]) -> impl Future<Output = Result<(), StoreError>> {
        (**self).batch(statements)
    }
}

/// What a statement changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Executed {
    /// Rows inserted, updated or deleted. For `INSERT ... ON CONFLICT DO NOTHING`
    /// exactly one of several concurrent writers of one key sees 1.
    pub changes: u64,
    /// The rowid of the last row inserted.
    pub last_row_id: i64,
}

/// One statement of a [`Sql::batch`].
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sql: &'static str,
    pub params: Vec<SqlValue>,
}

/// The KV fast path. Eventually consistent and without compare-and-set, so it only
/// ever short-cuts work the database would refuse anyway.
pub trait Kv {
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<String>, StoreError>>;
    /// `ttl_seconds` must be at least 60 (Workers KV's minimum).
    fn put(
        &self,
        key: &str,
        value: &str,
        ttl_seconds: u64,
    ) -> impl Future<Output = Result<(), StoreError>>;
}

/// A failure to enqueue; the text is for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueError {
    /// The binding is not there.
    Unbound(String),
    /// The queue refused the message.
    Send(String),
    /// The message could not be written as JSON.
    Encode(String),
}

impl std::fmt::Display for QueueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let detail = match self {
            QueueError::Unbound(e) | QueueError::Send(e) | QueueError::Encode(e) => e,
        };
        write!(f, "queue error: {detail}")
    }
}

impl std::error::Error for QueueError {}

/// The producer side of the queues: notifications and their messages go to
/// `TELEGRAM`, everything else to `JOBS` ([`crate::jobs::JobMessage::is_telegram`]).
pub trait Queue {
    fn send(
        &self,
        message: &crate::jobs::JobMessage,
    ) -> impl Future<Output = Result<(), QueueError>>;
    /// Sends a message that the queue holds back for `delay_seconds` (0: at once).
    fn send_later(
        &self,
        message: &crate::jobs::JobMessage,
        delay_seconds: u32,
    ) -> impl Future<Output = Result<(), QueueError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_and_queue_errors_read_the_same_whatever_their_kind() {
        for e in [
            StoreError::Unbound("x".into()),
            StoreError::Driver("x".into()),
            StoreError::row("x"),
            StoreError::encode("x"),
        ] {
            assert_eq!(e.to_string(), "database error: x");
        }
        for e in [
            QueueError::Unbound("x".into()),
            QueueError::Send("x".into()),
            QueueError::Encode("x".into()),
        ] {
            assert_eq!(e.to_string(), "queue error: x");
        }
    }
}
