//! The SQL of the `previews` table. Every move that could race is one conditional
//! statement: the claim, the settle (only if no newer revision arrived), the slot
//! reservation (only if the app has a free slot and nobody older is waiting).

use super::{Preview, Status, Wanted};
use crate::github::{CommitSha, RepoFullName};
use crate::ports::{Row, Sql, SqlValue, StoreError};
use crate::row::Columns;
use crate::time::Timestamp;

const COLUMNS: &str = "id, app, repository, pr_number, installation_id, head_ref, head_sha, draft, fork, \
    wanted, revision, done_revision, status, fly_app, url, machine_id, deployed_sha, deployment_id, \
    deployment_sha, comment_id, telegram_message_id, error, attempts, queued_at, queue_ahead, expires_at, \
    claimed_at, created_at, updated_at, fly_owned";

/// What a `pull_request` event says about a preview.
pub struct Observed<'a> {
    pub app: &'a str,
    pub repository: &'a RepoFullName,
    pub pr_number: u64,
    pub installation_id: Option<u64>,
    pub head_ref: &'a str,
    pub head_sha: &'a CommitSha,
    pub draft: bool,
    pub fork: bool,
    /// `None` when the event does not change whether the PR wants a preview
    /// (`ready_for_review`, `converted_to_draft`).
    pub wanted: Option<Wanted>,
    /// Fixed at creation: the Fly app and its URL.
    pub fly_app: &'a str,
    pub url: &'a str,
    /// Where the event stands among the pull request's events.
    pub order: EventOrder,
    /// A `reopened` event: the only one that may move a closed row.
    pub reopens: bool,
}

/// The order of a pull request's events: the payload's `pull_request.updated_at`
/// (epoch ms; 0 when absent, so such an event never undoes a dated one), then the
/// delivery's place in the delivery log (a replay keeps its place).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventOrder {
    pub at: i64,
    pub seq: i64,
}

/// What [`PreviewStore::observe`] did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// Recorded: preview `id` follows it.
    Taken(i64),
    /// Older than the event the row last took: left as it was.
    Stale(i64),
    /// The pull request is closed, and this is not a newer `reopened`.
    Closed(i64),
}

/// The columns a flow sets directly.
#[derive(Debug, Clone, Copy)]
pub enum Field {
    Status,
    MachineId,
    DeployedSha,
    DeploymentId,
    DeploymentSha,
    CommentId,
    TelegramMessageId,
    Error,
    ExpiresAt,
    QueueAhead,
    FlyCheckedAt,
    FlyOwned,
}

impl Field {
    fn column(self) -> &'static str {
        match self {
            Field::Status => "status",
            Field::MachineId => "machine_id",
            Field::DeployedSha => "deployed_sha",
            Field::DeploymentId => "deployment_id",
            Field::DeploymentSha => "deployment_sha",
            Field::CommentId => "comment_id",
            Field::TelegramMessageId => "telegram_message_id",
            Field::Error => "error",
            Field::ExpiresAt => "expires_at",
            Field::QueueAhead => "queue_ahead",
            Field::FlyCheckedAt => "fly_checked_at",
            Field::FlyOwned => "fly_owned",
        }
    }
}

pub struct PreviewStore<S> {
    sql: S,
}

impl<S: Sql> PreviewStore<S> {
    pub fn new(sql: S) -> Self {
        PreviewStore { sql }
    }

    /// Records what an event says, if it is newer than the one the row last took
    /// (by `pull_request.updated_at`, then by its place in the delivery log) and
    /// the row is not closed (only a newer `reopened` opens it again). A change of
    /// head, draft state or wish bumps the revision (a duplicate delivery changes
    /// nothing), and a preview asked for again joins the back of the queue.
    pub async fn observe(
        &self,
        o: &Observed<'_>,
        now: Timestamp,
    ) -> Result<Observation, StoreError> {
        let rows = self
            .sql
            .query(
                "INSERT INTO previews (app, repository, pr_number, installation_id, head_ref, head_sha, draft, fork, \
                   wanted, fly_app, url, queued_at, created_at, updated_at, event_at, event_seq) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, COALESCE(?9, 'live'), ?10, ?11, ?12, ?12, ?12, ?13, ?14) \
                 ON CONFLICT (app, pr_number) DO UPDATE SET \
                   installation_id = COALESCE(excluded.installation_id, previews.installation_id), \
                   head_ref = excluded.head_ref, head_sha = excluded.head_sha, draft = excluded.draft, \
                   fork = excluded.fork, \
                   wanted = COALESCE(?9, previews.wanted), \
                   queued_at = CASE WHEN ?9 = 'live' AND previews.wanted <> 'live' THEN ?12 ELSE previews.queued_at END, \
                   attempts = CASE WHEN previews.head_sha <> excluded.head_sha OR COALESCE(?9, previews.wanted) <> previews.wanted \
                     THEN 0 ELSE previews.attempts END, \
                   revision = previews.revision + CASE WHEN previews.head_sha <> excluded.head_sha \
                     OR previews.draft <> excluded.draft OR COALESCE(?9, previews.wanted) <> previews.wanted \
                     THEN 1 ELSE 0 END, \
                   event_at = excluded.event_at, event_seq = excluded.event_seq, \
                   updated_at = ?12 \
                 WHERE (previews.event_at IS NULL OR excluded.event_at > previews.event_at \
                     OR (excluded.event_at = previews.event_at AND excluded.event_seq > COALESCE(previews.event_seq, -1))) \
                   AND (previews.wanted <> 'closed' OR ?15 = 1) \
                 RETURNING id",
                &[
                    o.app.into(),
                    o.repository.as_str().into(),
                    i64::try_from(o.pr_number).unwrap_or(i64::MAX).into(),
                    o.installation_id
                        .and_then(|i| i64::try_from(i).ok())
                        .into(),
                    o.head_ref.into(),
                    o.head_sha.as_str().into(),
                    i64::from(o.draft).into(),
                    i64::from(o.fork).into(),
                    o.wanted.map(Wanted::as_str).into(),
                    o.fly_app.into(),
                    o.url.into(),
                    now.millis().into(),
                    o.order.at.into(),
                    o.order.seq.into(),
                    i64::from(o.reopens).into(),
                ],
            )
            .await?;
        if let Some(id) = rows.first().and_then(|r| r.opt_int("id")) {
            return Ok(Observation::Taken(id));
        }
        // The row was left as it was: say why.
        let rows = self
            .sql
            .query(
                "SELECT id, wanted FROM previews WHERE app = ?1 AND pr_number = ?2",
                &[
                    o.app.into(),
                    i64::try_from(o.pr_number).unwrap_or(i64::MAX).into(),
                ],
            )
            .await?;
        let row = rows
            .first()
            .ok_or_else(|| StoreError::Row("preview upsert returned no id".into()))?;
        let id = row.int("id")?;
        Ok(if row.opt_str("wanted") == Some(Wanted::Closed.as_str()) {
            Observation::Closed(id)
        } else {
            Observation::Stale(id)
        })
    }

    pub async fn get(&self, id: i64) -> Result<Option<Preview>, StoreError> {
        let rows = self
            .sql
            .query(
                &format!("SELECT {COLUMNS} FROM previews WHERE id = ?1"),
                &[id.into()],
            )
            .await?;
        rows.into_iter().next().map(preview).transpose()
    }

    /// An app's previews, newest first (the admin API).
    pub async fn list(&self, app: &str) -> Result<Vec<Preview>, StoreError> {
        let rows = self
            .sql
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM previews WHERE app = ?1 ORDER BY pr_number DESC LIMIT 200"
                ),
                &[app.into()],
            )
            .await?;
        rows.into_iter().map(preview).collect()
    }

    /// A page of an app's previews newest first (by when they were asked for,
    /// then id), below `bound` ([`crate::cursor`]); at most `limit`.
    pub async fn page(
        &self,
        app: &str,
        bound: &crate::cursor::Bound,
        limit: u32,
    ) -> Result<Vec<Preview>, StoreError> {
        let [at, mode, id] = bound.params();
        let rows = self
            .sql
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM previews WHERE app = ?1 AND {} \
                     ORDER BY created_at DESC, id DESC LIMIT ?5",
                    crate::cursor::Cursor::condition("created_at", "id", 2)
                ),
                &[app.into(), at, mode, id, limit.into()],
            )
            .await?;
        rows.into_iter().map(preview).collect()
    }

    /// Takes the row for one run; `false` when another live run holds it.
    pub async fn claim(
        &self,
        id: i64,
        now: Timestamp,
        stale_before: Timestamp,
    ) -> Result<bool, StoreError> {
        let done = self
            .sql
            .execute(
                "UPDATE previews SET claimed_at = ?2 WHERE id = ?1 AND (claimed_at IS NULL OR claimed_at < ?3)",
                &[id.into(), now.millis().into(), stale_before.millis().into()],
            )
            .await?;
        Ok(done.changes > 0)
    }

    /// Marks `revision` carried out and lets go of the row, unless a newer revision
    /// arrived meanwhile (then `false`, and the run keeps the row and goes again).
    pub async fn settle(&self, id: i64, revision: i64, now: Timestamp) -> Result<bool, StoreError> {
        let done = self
            .sql
            .execute(
                "UPDATE previews SET done_revision = ?2, claimed_at = NULL, attempts = 0, updated_at = ?3 \
                 WHERE id = ?1 AND revision = ?2",
                &[id.into(), revision.into(), now.millis().into()],
            )
            .await?;
        Ok(done.changes > 0)
    }

    /// Lets go of the row after a transient failure; returns the attempts so far.
    pub async fn release_failed_attempt(
        &self,
        id: i64,
        error: &str,
        now: Timestamp,
    ) -> Result<i64, StoreError> {
        let rows = self
            .sql
            .query(
                "UPDATE previews SET attempts = attempts + 1, error = ?2, claimed_at = NULL, updated_at = ?3 \
                 WHERE id = ?1 RETURNING attempts",
                &[id.into(), error.into(), now.millis().into()],
            )
            .await?;
        Ok(rows
            .first()
            .and_then(|r| r.opt_int("attempts"))
            .unwrap_or(0))
    }

    /// Takes a slot for the preview: it already holds one, or the app's live
    /// previews plus those queued before it leave room. `false` means wait.
    pub async fn reserve_slot(
        &self,
        id: i64,
        max: u32,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let done = self
            .sql
            .execute(
                "UPDATE previews SET status = 'deploying', queue_ahead = NULL, updated_at = ?3 \
                 WHERE id = ?1 AND (status IN ('deploying', 'ready') OR \
                   (SELECT COUNT(*) FROM previews o WHERE o.app = previews.app AND o.id <> previews.id \
                      AND o.status IN ('deploying', 'ready')) \
                   + (SELECT COUNT(*) FROM previews o WHERE o.app = previews.app AND o.id <> previews.id \
                      AND o.status = 'queued' AND o.wanted = 'live' \
                      AND (o.queued_at < previews.queued_at OR (o.queued_at = previews.queued_at AND o.id < previews.id))) \
                   < ?2)",
                &[id.into(), max.into(), now.millis().into()],
            )
            .await?;
        Ok(done.changes > 0)
    }

    /// How many previews of the same app wait ahead of this one.
    pub async fn ahead_of(&self, p: &Preview) -> Result<i64, StoreError> {
        let rows = self
            .sql
            .query(
                "SELECT COUNT(*) AS n FROM previews WHERE app = ?1 AND id <> ?2 AND status = 'queued' \
                 AND wanted = 'live' AND (queued_at < ?3 OR (queued_at = ?3 AND id < ?2))",
                &[p.app.as_str().into(), p.id.into(), p.queued_at.into()],
            )
            .await?;
        Ok(rows.first().and_then(|r| r.opt_int("n")).unwrap_or(0))
    }

    /// The previews of `app` waiting for a slot, oldest first.
    pub async fn queued(&self, app: &str) -> Result<Vec<i64>, StoreError> {
        self.ids(
            "SELECT id FROM previews WHERE app = ?1 AND status = 'queued' AND wanted = 'live' \
             ORDER BY queued_at, id LIMIT 50",
            &[app.into()],
        )
        .await
    }

    pub async fn set(
        &self,
        id: i64,
        fields: &[(Field, SqlValue)],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut sets = String::new();
        let mut params = vec![SqlValue::Integer(id), now.millis().into()];
        for (field, value) in fields {
            params.push(value.clone());
            sets.push_str(&format!("{} = ?{}, ", field.column(), params.len()));
        }
        self.sql
            .execute(
                &format!("UPDATE previews SET {sets}updated_at = ?2 WHERE id = ?1"),
                &params,
            )
            .await
            .map(drop)
    }

    /// Ready previews past their expiry are wanted gone; returns their ids.
    pub async fn expire(&self, now: Timestamp) -> Result<Vec<i64>, StoreError> {
        self.ids(
            "UPDATE previews SET wanted = 'expired', revision = revision + 1, updated_at = ?1 \
             WHERE wanted = 'live' AND status = 'ready' AND expires_at < ?1 RETURNING id",
            &[now.millis().into()],
        )
        .await
    }

    /// Previews whose run died (a stale claim), whose last change was never carried
    /// out (a lost or dead-lettered message), or that wait for a slot.
    pub async fn needing_a_run(
        &self,
        unsettled_before: Timestamp,
        stale_before: Timestamp,
    ) -> Result<Vec<i64>, StoreError> {
        self.ids(
            "SELECT id FROM previews WHERE claimed_at < ?2 \
               OR (claimed_at IS NULL AND revision <> done_revision AND updated_at < ?1) \
               OR (claimed_at IS NULL AND status = 'queued' AND wanted = 'live') \
             ORDER BY id LIMIT 50",
            &[
                unsettled_before.millis().into(),
                stale_before.millis().into(),
            ],
        )
        .await
    }

    /// Torn-down or failed previews whose Fly app (one they made) nobody has
    /// confirmed gone.
    pub async fn unchecked_teardowns(&self, limit: u32) -> Result<Vec<(i64, String)>, StoreError> {
        let rows = self
            .sql
            .query(
                "SELECT id, fly_app FROM previews WHERE status IN ('destroyed', 'failed', 'skipped') \
                 AND fly_owned = 1 AND fly_checked_at IS NULL AND claimed_at IS NULL AND revision = done_revision \
                 ORDER BY updated_at LIMIT ?1",
                &[limit.into()],
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| Some((r.opt_int("id")?, r.opt_text("fly_app")?)))
            .collect())
    }

    async fn ids(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<i64>, StoreError> {
        Ok(self
            .sql
            .query(sql, params)
            .await?
            .iter()
            .filter_map(|r| r.opt_int("id"))
            .collect())
    }
}

fn preview(row: Row) -> Result<Preview, StoreError> {
    let id = row.int("id")?;
    let bad = |what: &str| StoreError::Row(format!("preview {id}: bad {what}"));
    Ok(Preview {
        id,
        app: row.opt_text("app").ok_or_else(|| bad("app"))?,
        repository: row
            .opt_text("repository")
            .and_then(|r| RepoFullName::parse(&r))
            .ok_or_else(|| bad("repository"))?,
        pr_number: row
            .opt_int("pr_number")
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| bad("pr_number"))?,
        installation_id: row
            .opt_int("installation_id")
            .and_then(|n| u64::try_from(n).ok()),
        head_ref: row.opt_text("head_ref").unwrap_or_default(),
        head_sha: row
            .opt_text("head_sha")
            .and_then(|s| CommitSha::parse(&s))
            .ok_or_else(|| bad("head_sha"))?,
        draft: row.bool("draft"),
        fork: row.bool("fork"),
        wanted: row
            .opt_text("wanted")
            .and_then(|w| Wanted::parse(&w))
            .ok_or_else(|| bad("wanted"))?,
        revision: row.opt_int("revision").unwrap_or(0),
        done_revision: row.opt_int("done_revision").unwrap_or(0),
        status: row
            .opt_text("status")
            .and_then(|s| Status::parse(&s))
            .ok_or_else(|| bad("status"))?,
        fly_app: row.opt_text("fly_app").unwrap_or_default(),
        url: row.opt_text("url").unwrap_or_default(),
        machine_id: row.opt_text("machine_id"),
        deployed_sha: row.opt_text("deployed_sha"),
        deployment_id: row.opt_int("deployment_id"),
        deployment_sha: row.opt_text("deployment_sha"),
        comment_id: row.opt_int("comment_id"),
        telegram_message_id: row.opt_int("telegram_message_id"),
        error: row.opt_text("error"),
        attempts: row.opt_int("attempts").unwrap_or(0),
        queued_at: row.opt_int("queued_at").unwrap_or(0),
        queue_ahead: row.opt_int("queue_ahead"),
        expires_at: row.opt_int("expires_at"),
        claimed_at: row.opt_int("claimed_at"),
        created_at: row.opt_int("created_at").unwrap_or(0),
        updated_at: row.opt_int("updated_at").unwrap_or(0),
        fly_owned: row.bool("fly_owned"),
    })
}
