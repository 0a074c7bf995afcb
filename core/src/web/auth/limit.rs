//! The sign-in form's rate limit per client, across every isolate: each attempt is
//! counted in D1 by one atomic statement before the token is compared, so guessing
//! `ADMIN_TOKEN` goes at [`MAX_ATTEMPTS`] tries per [`WINDOW_SECONDS`] per address.
//! A successful sign-in starts the count again.

use crate::ports::{Sql, StoreError};
use crate::row::Columns;
use crate::time::Timestamp;

/// Attempts a client may make in one window; the next one is refused with 429.
/// Five leaves room for a few typos and makes guessing a token hopeless.
pub const MAX_ATTEMPTS: i64 = 5;

/// The window, from a client's first attempt: 15 minutes.
pub const WINDOW_SECONDS: i64 = 15 * 60;

/// What the count says about one more attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Compare the token.
    Allowed,
    /// Answer 429 with `Retry-After` this many seconds.
    Refused { retry_after_seconds: u32 },
}

/// Who is counted: an IPv4 address as it is, an IPv6 address by its /64 (one
/// subscriber's whole block), anything else (a missing `CF-Connecting-IP`, which
/// Cloudflare always sets) all together as `unknown`.
pub fn client(ip: Option<&str>) -> String {
    match ip
        .map(str::trim)
        .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
    {
        Some(std::net::IpAddr::V4(v4)) => v4.to_string(),
        Some(std::net::IpAddr::V6(v6)) => {
            let [a, b, c, d, ..] = v6.segments();
            format!("{a:x}:{b:x}:{c:x}:{d:x}::/64")
        }
        None => "unknown".to_owned(),
    }
}

/// The `signin_attempts` rows.
pub struct SignInLimits<S> {
    sql: S,
}

impl<S: Sql> SignInLimits<S> {
    pub fn new(sql: S) -> Self {
        SignInLimits { sql }
    }

    /// Counts one attempt by `client` at `now`, in one statement: a window that
    /// has ended starts again at `now`; past [`MAX_ATTEMPTS`] in the window the
    /// attempt is refused until the window ends.
    pub async fn attempt(&self, client: &str, now: Timestamp) -> Result<Attempt, StoreError> {
        let window_ms = WINDOW_SECONDS * 1000;
        let rows = self
            .sql
            .query(
                "INSERT INTO signin_attempts (client, window_start, attempts) VALUES (?1, ?2, 1) \
                 ON CONFLICT (client) DO UPDATE SET \
                   window_start = CASE WHEN window_start <= ?2 - ?3 THEN ?2 ELSE window_start END, \
                   attempts = CASE WHEN window_start <= ?2 - ?3 THEN 1 ELSE attempts + 1 END \
                 RETURNING window_start, attempts",
                &[client.into(), now.millis().into(), window_ms.into()],
            )
            .await?;
        let row = rows
            .first()
            .ok_or_else(|| StoreError::row("the attempt was not counted"))?;
        let (start, attempts) = (row.int("window_start")?, row.int("attempts")?);
        if attempts <= MAX_ATTEMPTS {
            return Ok(Attempt::Allowed);
        }
        let left_ms = (start + window_ms - now.millis()).max(1_000);
        Ok(Attempt::Refused {
            retry_after_seconds: u32::try_from((left_ms + 999) / 1000).unwrap_or(u32::MAX),
        })
    }

    /// Forgets the clients whose window has ended (the cron's sweep calls it), so
    /// rows of clients that never sign in do not pile up: the table holds only the
    /// clients of the current windows. Returns how many went.
    pub async fn prune(&self, now: Timestamp) -> Result<u64, StoreError> {
        let done = self
            .sql
            .execute(
                "DELETE FROM signin_attempts WHERE window_start <= ?1",
                &[(now.millis() - WINDOW_SECONDS * 1000).into()],
            )
            .await?;
        Ok(done.changes)
    }

    /// `client` signed in: its count starts again, and rows whose window ended long
    /// ago go (so the table holds only the clients of the last windows).
    pub async fn succeeded(&self, client: &str, now: Timestamp) -> Result<(), StoreError> {
        self.sql
            .execute(
                "DELETE FROM signin_attempts WHERE client = ?1 OR window_start < ?2",
                &[
                    client.into(),
                    (now.millis() - 2 * WINDOW_SECONDS * 1000).into(),
                ],
            )
            .await
            .map(drop)
    }
}
