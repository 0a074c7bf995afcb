//! The notification store: every SQL statement the notify, telegram and cron flows
//! run, over the [`Sql`] port. The same text runs on D1 in the Worker and on native
//! SQLite (with the real `migrations/`) in the tests.

use crate::json::{FromJson, Names};
use crate::notify::{CommitHash, DeployKind, Deployment, DeploymentId};
use crate::ports::{Row, Sql, StoreError};
use crate::row::Columns;
use crate::time::Timestamp;

/// Where a notification row is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Names)]
#[serde(rename_all = "snake_case")]
pub enum NotificationStatus {
    /// Accepted and committed; its queue message may or may not have been sent.
    Pending,
    /// A consumer claimed it and is talking to Telegram.
    Sending,
    /// A delivery failed transiently; the queue will deliver it again.
    Retrying,
    Sent,
    Failed,
    /// Telegram is not configured; recorded, never sent.
    NotSent,
    /// Known (an old or already-announced polled deployment), deliberately not announced.
    Recorded,
}

/// A row a consumer claimed for delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedNotification {
    pub id: i64,
    /// This delivery's number, 1-based.
    pub attempt: u32,
    pub deployment: Deployment,
}

/// What happened to one claimed row; see [`NotificationStore::record`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Telegram accepted it: keep its message id so it is never sent again.
    Sent { id: i64, message_id: i64 },
    /// Failed transiently; the queue delivers it again at `next_attempt_at`.
    Retrying {
        id: i64,
        error: String,
        next_attempt_at: Timestamp,
    },
    /// Finished without sending: failed for good, or not sent by configuration.
    Final {
        id: i64,
        status: NotificationStatus,
        error: String,
    },
}

/// A row as the status API and the tests read it.
#[derive(Debug, Clone, PartialEq, FromJson)]
pub struct NotificationRecord {
    pub id: i64,
    pub kind: String,
    pub deployment_id: String,
    pub project_name: String,
    pub source: String,
    pub status: NotificationStatus,
    pub attempts: i64,
    pub telegram_message_id: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Notification rows over any [`Sql`].
pub struct NotificationStore<S> {
    sql: S,
}

const RECORD_COLUMNS: &str = "id, kind, deployment_id, project_name, source, status, attempts, \
     telegram_message_id, last_error, created_at, updated_at";

impl<S: Sql> NotificationStore<S> {
    pub fn new(sql: S) -> Self {
        NotificationStore { sql }
    }

    /// Inserts a deployment unless one with the same kind, project and id exists. Returns the
    /// new row's id, or `None` for a repeat. Of several concurrent inserts of one
    /// deployment exactly one gets an id (the unique constraint decides).
    pub async fn insert(
        &self,
        deployment: &Deployment,
        status: NotificationStatus,
        now: Timestamp,
    ) -> Result<Option<i64>, StoreError> {
        let json = serde_json::to_string(deployment).map_err(StoreError::encode)?;
        let done = self
            .sql
            .execute(
                "INSERT INTO notifications \
                 (kind, deployment_id, project_name, commit_hash, source, deployment, status, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8) \
                 ON CONFLICT (kind, project_name, deployment_id) DO NOTHING",
                &[
                    deployment.kind.as_str().into(),
                    deployment.deployment_id.as_str().into(),
                    deployment.project_name.as_str().into(),
                    deployment.commit_hash.as_ref().map(CommitHash::as_str).into(),
                    deployment.source.as_str().into(),
                    json.into(),
                    status.as_str().into(),
                    now.millis().into(),
                ],
            )
            .await?;
        Ok((done.changes == 1).then_some(done.last_row_id))
    }

    /// Whether this deployment (by kind, project and id), or another deployment of the same project at
    /// the same commit, is already known. The poll uses it to avoid announcing what a
    /// hook announced under its own build id.
    pub async fn is_known(
        &self,
        kind: DeployKind,
        id: &DeploymentId,
        project_name: &str,
        commit: Option<&CommitHash>,
    ) -> Result<bool, StoreError> {
        let rows = self
            .sql
            .query(
                "SELECT 1 AS known FROM notifications \
                 WHERE (kind = ?1 AND project_name = ?3 AND deployment_id = ?2) \
                 OR (?4 IS NOT NULL AND project_name = ?3 AND commit_hash = ?4) LIMIT 1",
                &[
                    kind.as_str().into(),
                    id.as_str().into(),
                    project_name.into(),
                    commit.map(CommitHash::as_str).into(),
                ],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    /// Claims rows for one delivery each, in one statement. Returns the rows claimed;
    /// a row is left out when it is finished or another consumer holds a fresh
    /// claim. A claim older than `stale_before` is taken over (that consumer died).
    pub async fn claim(
        &self,
        ids: &[i64],
        now: Timestamp,
        stale_before: Timestamp,
    ) -> Result<Vec<ClaimedNotification>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = serde_json::to_string(ids).map_err(StoreError::encode)?;
        let rows = self
            .sql
            .query(
                "UPDATE notifications SET status = 'sending', attempts = attempts + 1, \
                 claimed_at = ?2, updated_at = ?2 \
                 WHERE id IN (SELECT value FROM json_each(?1)) AND (status IN ('pending', 'retrying') \
                   OR (status = 'sending' AND claimed_at < ?3)) \
                 RETURNING id, attempts, deployment",
                &[list.into(), now.millis().into(), stale_before.millis().into()],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let id = row.int("id")?;
                let json = row.opt_str("deployment").ok_or_else(|| {
                    StoreError::Row(format!("notification {id} has no deployment"))
                })?;
                let deployment: Deployment = crate::json::read(json).map_err(|e| {
                    StoreError::Row(format!("notification {id}: stored deployment: {e}"))
                })?;
                Ok(ClaimedNotification {
                    id,
                    attempt: row
                        .opt_int("attempts")
                        .and_then(|a| u32::try_from(a).ok())
                        .unwrap_or(1),
                    deployment,
                })
            })
            .collect()
    }

    /// Records the outcome of deliveries in one statement (the outcomes travel as one
    /// JSON parameter, so a batch of any size is one round trip and one statement for
    /// D1 to run). Only the holder of a claim moves its row on, so a row already sent
    /// stays sent.
    pub async fn record(&self, outcomes: &[Outcome], now: Timestamp) -> Result<(), StoreError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let rows: Vec<serde_json::Value> = outcomes
            .iter()
            .map(|o| match o {
                Outcome::Sent { id, message_id } => serde_json::json!({
                    "id": id, "status": NotificationStatus::Sent.as_str(), "message_id": message_id,
                }),
                Outcome::Retrying {
                    id,
                    error,
                    next_attempt_at,
                } => serde_json::json!({
                    "id": id, "status": NotificationStatus::Retrying.as_str(), "error": error,
                    "next": next_attempt_at.millis(),
                }),
                Outcome::Final { id, status, error } => serde_json::json!({
                    "id": id, "status": status.as_str(), "error": error,
                }),
            })
            .collect();
        self.sql
            .execute(
                "UPDATE notifications SET status = json_extract(o.value, '$.status'), \
                 telegram_message_id = COALESCE(json_extract(o.value, '$.message_id'), telegram_message_id), \
                 last_error = json_extract(o.value, '$.error'), \
                 next_attempt_at = json_extract(o.value, '$.next'), updated_at = ?2 \
                 FROM json_each(?1) AS o \
                 WHERE notifications.id = json_extract(o.value, '$.id') AND notifications.status = 'sending'",
                &[crate::json::text(&serde_json::Value::Array(rows)).into(), now.millis().into()],
            )
            .await
            .map(drop)
    }

    /// Marks a dead-lettered row failed unless it already reached an end state.
    pub async fn mark_dead_lettered(&self, id: i64, now: Timestamp) -> Result<bool, StoreError> {
        let changed = self
            .sql
            .execute(
                "UPDATE notifications SET status = 'failed', \
                 last_error = COALESCE(last_error, 'delivery failed') || ' (dead-lettered)', \
                 next_attempt_at = NULL, updated_at = ?2 \
                 WHERE id = ?1 AND status IN ('pending', 'sending', 'retrying')",
                &[id.into(), now.millis().into()],
            )
            .await?;
        Ok(changed.changes > 0)
    }

    /// Rows whose queue message was evidently lost: pending (the send failed, or
    /// never happened) since before `cutoff`, retrying past their due time by more
    /// than the grace, or claimed by a consumer that never finished.
    pub async fn lost_rows(&self, cutoff: Timestamp, limit: u32) -> Result<Vec<i64>, StoreError> {
        let rows = self
            .sql
            .query(
                "SELECT id FROM notifications WHERE \
                 (status IN ('pending', 'retrying') AND COALESCE(next_attempt_at, created_at) < ?1) \
                 OR (status = 'sending' AND claimed_at < ?1) \
                 ORDER BY id LIMIT ?2",
                &[cutoff.millis().into(), i64::from(limit).into()],
            )
            .await?;
        Ok(rows.iter().filter_map(|r| r.opt_int("id")).collect())
    }

    /// After the sweep re-enqueued a row: due now, so the next sweep leaves it alone
    /// for another grace period.
    pub async fn mark_requeued(&self, id: i64, now: Timestamp) -> Result<(), StoreError> {
        self.sql
            .execute(
                "UPDATE notifications SET \
                 status = CASE status WHEN 'sending' THEN 'retrying' ELSE status END, \
                 next_attempt_at = ?2, updated_at = ?2 \
                 WHERE id = ?1 AND status IN ('pending', 'retrying', 'sending')",
                &[id.into(), now.millis().into()],
            )
            .await
            .map(drop)
    }

    /// One deployment's row, by its identity (kind, project, id).
    pub async fn get(
        &self,
        kind: DeployKind,
        project_name: &str,
        id: &DeploymentId,
    ) -> Result<Option<NotificationRecord>, StoreError> {
        let rows = self
            .sql
            .query(
                &format!(
                    "SELECT {RECORD_COLUMNS} FROM notifications \
                     WHERE kind = ?1 AND project_name = ?2 AND deployment_id = ?3"
                ),
                &[
                    kind.as_str().into(),
                    project_name.into(),
                    id.as_str().into(),
                ],
            )
            .await?;
        rows.into_iter().next().map(record).transpose()
    }

    /// Notification `id`'s deployment, as it was announced.
    pub async fn deployment(&self, id: i64) -> Result<Option<Deployment>, StoreError> {
        let rows = self
            .sql
            .query(
                "SELECT deployment FROM notifications WHERE id = ?1",
                &[id.into()],
            )
            .await?;
        rows.first()
            .map(|r| {
                crate::json::read(r.opt_str("deployment").unwrap_or(""))
                    .map_err(|e| StoreError::Row(format!("notification {id}: deployment: {e}")))
            })
            .transpose()
    }

    /// The newest rows first, by when they were recorded (ties by id).
    /// A page of notifications, newest first, below `bound` ([`crate::cursor`]),
    /// of one status or all; at most `limit`.
    pub async fn page(
        &self,
        bound: &crate::cursor::Bound,
        status: Option<&str>,
        limit: u32,
    ) -> Result<Vec<NotificationRecord>, StoreError> {
        let [at, mode, id] = bound.params();
        let rows = self
            .sql
            .query(
                &format!(
                    "SELECT {RECORD_COLUMNS} FROM notifications WHERE {} AND (?4 IS NULL OR status = ?4) \
                     ORDER BY created_at DESC, id DESC LIMIT ?5",
                    crate::cursor::Cursor::condition("created_at", "id", 1)
                ),
                &[at, mode, id, status.into(), i64::from(limit).into()],
            )
            .await?;
        rows.into_iter().map(record).collect()
    }

    pub async fn recent(&self, limit: u32) -> Result<Vec<NotificationRecord>, StoreError> {
        let rows = self
            .sql
            .query(
                &format!(
                    "SELECT {RECORD_COLUMNS} FROM notifications ORDER BY created_at DESC, id DESC LIMIT ?1"
                ),
                &[i64::from(limit).into()],
            )
            .await?;
        rows.into_iter().map(record).collect()
    }
}

fn record(row: Row) -> Result<NotificationRecord, StoreError> {
    crate::json::from_value(&serde_json::Value::Object(row)).map_err(StoreError::row)
}

#[cfg(test)]
mod tests;
