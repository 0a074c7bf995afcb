//! The `protection_requests` rows. Every move is a conditional update that names
//! the status it comes from, so a request is decided once (a tap and the timeout,
//! or two taps, race for one `pending` row) and a late or repeated message changes
//! nothing.

use serde::Serialize;

use crate::github::deliveries::DeliveryId;
use crate::github::events::ProtectionRuleEvent;
use crate::json::Names;
use crate::ports::{Row, Sql, StoreError};
use crate::retry::StepClaims;
use crate::row::Columns;
use crate::time::Timestamp;

/// A request's status; each move names the one it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Names)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Its message shows Approve / Reject.
    Pending,
    /// Decided; the review is being sent to GitHub.
    Reviewing,
    Approved,
    Rejected,
    /// Nobody decided in time: rejected on GitHub.
    TimedOut,
    /// GitHub refused the review, or it could not be sent.
    Failed,
}

/// The review's `state`, as GitHub spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Names)]
#[serde(rename_all = "snake_case")]
pub enum Review {
    Approved,
    Rejected,
}

/// A review request as its row keeps it (and the admin API shows it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Request {
    pub id: i64,
    pub delivery_id: String,
    pub repository: String,
    pub environment: String,
    pub sha: String,
    pub git_ref: Option<String>,
    pub run_id: i64,
    pub installation_id: i64,
    pub trigger: Option<String>,
    pub sender: Option<String>,
    pub status: Status,
    /// What the review tells GitHub, once decided.
    pub state: Option<Review>,
    /// `@user` or `admin API`; none for a timeout.
    pub decided_by: Option<String>,
    /// The Telegram user who decided.
    pub decided_by_id: Option<i64>,
    pub decided_at: Option<i64>,
    /// What decided it (`telegram:{update_id}`), so that it finds its own decision.
    #[serde(skip)]
    pub decided_key: Option<String>,
    /// Failed attempts at sending the review.
    pub attempts: i64,
    pub claimed_at: Option<i64>,
    pub due_at: Option<i64>,
    pub last_error: Option<String>,
    pub expires_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, delivery_id, repository, environment, sha, git_ref, run_id, \
     installation_id, trigger, sender, status, state, decided_by, decided_by_id, decided_at, decided_key, \
     attempts, claimed_at, due_at, last_error, expires_at, created_at, updated_at";

fn request(row: &Row) -> Result<Request, StoreError> {
    let status = row.text("status")?;
    Ok(Request {
        id: row.int("id")?,
        delivery_id: row.text("delivery_id")?,
        repository: row.text("repository")?,
        environment: row.text("environment")?,
        sha: row.text("sha")?,
        git_ref: row.opt_text("git_ref"),
        run_id: row.int("run_id")?,
        installation_id: row.int("installation_id")?,
        trigger: row.opt_text("trigger"),
        sender: row.opt_text("sender"),
        status: Status::parse(&status)
            .ok_or_else(|| StoreError::Row(format!("protection request status {status:?}")))?,
        state: row.opt_str("state").and_then(Review::parse),
        decided_by: row.opt_text("decided_by"),
        decided_by_id: row.opt_int("decided_by_id"),
        decided_at: row.opt_int("decided_at"),
        decided_key: row.opt_text("decided_key"),
        attempts: row.opt_int("attempts").unwrap_or(0),
        claimed_at: row.opt_int("claimed_at"),
        due_at: row.opt_int("due_at"),
        last_error: row.opt_text("last_error"),
        expires_at: row.int("expires_at")?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
    })
}

fn first(rows: Vec<Row>) -> Result<Option<Request>, StoreError> {
    rows.first().map(request).transpose()
}

fn ids(rows: &[Row]) -> Vec<i64> {
    rows.iter().filter_map(|r| r.opt_int("id")).collect()
}

/// Requests the cron looks at per run; the rest wait for the next.
const SWEEP_BATCH: u32 = 50;

pub struct ProtectionStore<S> {
    sql: S,
}

impl<S: Sql> ProtectionStore<S> {
    pub fn new(sql: S) -> Self {
        ProtectionStore { sql }
    }

    /// Records delivery `delivery`'s request, pending until `expires_at`, once: a
    /// delivery processed again finds its row. Returns its id.
    pub async fn insert(
        &self,
        delivery: &DeliveryId,
        rule: &ProtectionRuleEvent,
        installation_id: u64,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<i64, StoreError> {
        let number = |n: u64| i64::try_from(n).map_err(StoreError::encode);
        self.sql
            .execute(
                "INSERT INTO protection_requests (delivery_id, repository, environment, sha, git_ref, \
                   run_id, installation_id, trigger, sender, status, expires_at, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'pending', ?10, ?11, ?11) \
                 ON CONFLICT (delivery_id) DO NOTHING",
                &[
                    delivery.as_str().into(),
                    rule.repository.as_str().into(),
                    rule.environment.as_str().into(),
                    rule.sha.as_str().into(),
                    rule.git_ref.as_deref().into(),
                    number(rule.run_id)?.into(),
                    number(installation_id)?.into(),
                    rule.trigger.as_deref().into(),
                    rule.sender.as_deref().into(),
                    expires_at.millis().into(),
                    now.millis().into(),
                ],
            )
            .await?;
        let rows = self
            .sql
            .query(
                "SELECT id FROM protection_requests WHERE delivery_id = ?1",
                &[delivery.as_str().into()],
            )
            .await?;
        ids(&rows)
            .first()
            .copied()
            .ok_or_else(|| StoreError::Row(format!("delivery {}: no request", delivery.as_str())))
    }

    pub async fn get(&self, id: i64) -> Result<Option<Request>, StoreError> {
        first(
            self.sql
                .query(
                    &format!("SELECT {COLUMNS} FROM protection_requests WHERE id = ?1"),
                    &[id.into()],
                )
                .await?,
        )
    }

    /// The newest `limit` requests, newest first.
    pub async fn recent(&self, limit: u32) -> Result<Vec<Request>, StoreError> {
        self.sql
            .query(
                &format!("SELECT {COLUMNS} FROM protection_requests ORDER BY id DESC LIMIT ?1"),
                &[limit.into()],
            )
            .await?
            .iter()
            .map(request)
            .collect()
    }

    /// A page of requests newest first (by when they came, then id), below `bound`
    /// ([`crate::cursor`]); at most `limit`.
    pub async fn page(
        &self,
        bound: &crate::cursor::Bound,
        limit: u32,
    ) -> Result<Vec<Request>, StoreError> {
        let [at, mode, id] = bound.params();
        self.sql
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM protection_requests WHERE {} \
                     ORDER BY created_at DESC, id DESC LIMIT ?4",
                    crate::cursor::Cursor::condition("created_at", "id", 1)
                ),
                &[at, mode, id, limit.into()],
            )
            .await?
            .iter()
            .map(request)
            .collect()
    }

    /// Decides pending request `id` (not yet expired at `now`): `state`, by whom,
    /// asked by `key`. `None` when it is not pending or has expired: someone else
    /// decided first (or `key` did, before).
    pub async fn decide(
        &self,
        id: i64,
        state: Review,
        by: (&str, Option<i64>),
        key: Option<&str>,
        now: Timestamp,
    ) -> Result<Option<Request>, StoreError> {
        first(
            self.sql
                .query(
                    &format!(
                        "UPDATE protection_requests SET status = 'reviewing', state = ?2, decided_by = ?3, \
                           decided_by_id = ?4, decided_key = ?5, decided_at = ?6, updated_at = ?6 \
                         WHERE id = ?1 AND status = 'pending' AND expires_at > ?6 RETURNING {COLUMNS}"
                    ),
                    &[
                        id.into(),
                        state.as_str().into(),
                        by.0.into(),
                        by.1.into(),
                        key.into(),
                        now.millis().into(),
                    ],
                )
                .await?,
        )
    }

    /// Pending requests past their `expires_at`: decided `rejected` by nobody (their
    /// timeout). Returns their ids.
    pub async fn expire(&self, now: Timestamp) -> Result<Vec<i64>, StoreError> {
        let rows = self
            .sql
            .query(
                "UPDATE protection_requests SET status = 'reviewing', state = 'rejected', \
                   decided_at = ?1, updated_at = ?1 \
                 WHERE id IN (SELECT id FROM protection_requests WHERE status = 'pending' \
                   AND expires_at <= ?1 ORDER BY expires_at LIMIT ?2) AND status = 'pending' \
                 RETURNING id",
                &[now.millis().into(), SWEEP_BATCH.into()],
            )
            .await?;
        Ok(ids(&rows))
    }

    /// Claims request `id`'s review for one attempt at sending it, when it is
    /// decided and the claim rule allows: no fresh claim, and its retry is due.
    pub async fn claim(
        &self,
        id: i64,
        claims: StepClaims,
        now: Timestamp,
    ) -> Result<Option<Request>, StoreError> {
        first(
            self.sql
                .query(
                    &format!(
                        "UPDATE protection_requests SET claimed_at = ?2, updated_at = ?2 \
                         WHERE id = ?1 AND status = 'reviewing' AND {} RETURNING {COLUMNS}",
                        StepClaims::sql_condition(3, 4)
                    ),
                    &[
                        id.into(),
                        now.millis().into(),
                        claims.stale_before(now).millis().into(),
                        claims.due_by(now).millis().into(),
                    ],
                )
                .await?,
        )
    }

    /// Ends a claimed review: GitHub took it (`approved`, `rejected`, `timed_out`),
    /// or it failed for good (`failed`, with why).
    pub async fn finish(
        &self,
        id: i64,
        status: Status,
        error: Option<&str>,
        now: Timestamp,
    ) -> Result<Option<Request>, StoreError> {
        first(
            self.sql
                .query(
                    &format!(
                        "UPDATE protection_requests SET status = ?2, last_error = ?3, claimed_at = NULL, \
                           due_at = NULL, updated_at = ?4 \
                         WHERE id = ?1 AND status = 'reviewing' RETURNING {COLUMNS}"
                    ),
                    &[
                        id.into(),
                        status.as_str().into(),
                        error.into(),
                        now.millis().into(),
                    ],
                )
                .await?,
        )
    }

    /// Frees a claimed review after a transient failure, due again at `due`;
    /// returns its failed attempts so far.
    pub async fn release(
        &self,
        id: i64,
        error: &str,
        due: Timestamp,
        now: Timestamp,
    ) -> Result<Option<i64>, StoreError> {
        let rows = self
            .sql
            .query(
                "UPDATE protection_requests SET attempts = attempts + 1, last_error = ?2, \
                   claimed_at = NULL, due_at = ?3, updated_at = ?4 \
                 WHERE id = ?1 AND status = 'reviewing' RETURNING attempts",
                &[
                    id.into(),
                    error.into(),
                    due.millis().into(),
                    now.millis().into(),
                ],
            )
            .await?;
        Ok(rows.first().and_then(|r| r.opt_int("attempts")))
    }

    /// Decided reviews untouched since `cutoff` that may be claimed now: their
    /// queue message was lost, or their consumer died holding them.
    pub async fn lost(
        &self,
        cutoff: Timestamp,
        claims: StepClaims,
        now: Timestamp,
    ) -> Result<Vec<i64>, StoreError> {
        let rows = self
            .sql
            .query(
                &format!(
                    "SELECT id FROM protection_requests WHERE status = 'reviewing' AND updated_at < ?1 \
                       AND {} ORDER BY id LIMIT ?2",
                    StepClaims::sql_condition(3, 4)
                ),
                &[
                    cutoff.millis().into(),
                    SWEEP_BATCH.into(),
                    claims.stale_before(now).millis().into(),
                    claims.due_by(now).millis().into(),
                ],
            )
            .await?;
        Ok(ids(&rows))
    }
}
