//! Deploy jobs and steps in D1. Every state change is a conditional update (the
//! state machine's allowed moves), so redelivered or late messages change nothing.

use serde::Serialize;

use super::stale::PushLink;
use super::{JobKind, JobStatus, StepName, StepState};
use crate::github::deliveries::DeliveryId;
use crate::github::events::PushCommit;
use crate::github::CommitSha;
use crate::json::FromJson;
use crate::names::AppName;
use crate::ports::{Row, Sql, SqlValue, Statement, StoreError};
use crate::retry::{StepClaims, StepClock};
use crate::row::Columns;
use crate::time::Timestamp;

/// A job as the API shows it, with its steps. Never read back as JSON: it is
/// assembled from its row ([`job`]) and its steps' rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    pub id: i64,
    pub app: String,
    pub environment: String,
    pub sha: String,
    pub git_ref: String,
    pub delivery_id: Option<String>,
    pub pusher: Option<String>,
    /// The GitHub App installation the push came from, if any.
    pub installation_id: Option<i64>,
    pub status: JobStatus,
    pub revert_sha: Option<String>,
    pub github_deployment_id: Option<i64>,
    pub telegram_message_id: Option<i64>,
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub commits: Vec<PushCommit>,
    pub steps: Vec<Step>,
    /// A push's deploy, or a rollback or retry asked for from chat.
    pub kind: JobKind,
    /// The job a rollback or retry was asked for on.
    pub source_job: Option<i64>,
    /// Who asked for it (`@alice`).
    pub requested_by: Option<String>,
    /// What was asked for on it from chat, and by whom (the audit trail; only
    /// [`JobStore::get`] reads it).
    pub actions: Vec<crate::audit::Entry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, FromJson)]
pub struct Step {
    pub position: i64,
    pub name: StepName,
    pub state: StepState,
    pub attempts: i64,
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// Set while an attempt holds the step ([`crate::retry::StepClaims`]).
    pub claimed_at: Option<i64>,
    /// When a step released for a retry is due again.
    pub due_at: Option<i64>,
}

impl Step {
    /// What the claim rule looks at.
    pub fn clock(&self) -> StepClock {
        StepClock {
            claimed_at: self.claimed_at,
            due_at: self.due_at,
        }
    }
}

/// What a push asks for.
pub struct NewJob<'a> {
    pub app: &'a AppName,
    pub environment: &'a str,
    pub sha: &'a CommitSha,
    /// The commit the push was made on top of (`None` for a new branch).
    pub before: Option<&'a CommitSha>,
    /// A forced push (`before` need not be an ancestor of `sha`).
    pub forced: bool,
    pub git_ref: &'a str,
    pub delivery_id: Option<&'a DeliveryId>,
    pub pusher: Option<&'a str>,
    pub installation_id: Option<u64>,
    pub commits: &'a [PushCommit],
    pub steps: &'a [(StepName, StepState)],
}

pub struct JobStore<S> {
    sql: S,
}

const JOB_COLUMNS: &str = "id, app, environment, sha, git_ref, delivery_id, pusher, installation_id, status, revert_sha, \
     github_deployment_id, telegram_message_id, error, created_at, updated_at, started_at, finished_at, commits, \
     kind, source_job, requested_by";

const STEP_COLUMNS: &str =
    "position, name, state, attempts, result, error, started_at, finished_at, claimed_at, due_at";

fn step_inserts(
    job_id: Option<i64>,
    first_position: i64,
    steps: &[(StepName, StepState)],
    now: Timestamp,
) -> Vec<Statement> {
    steps
        .iter()
        .enumerate()
        .map(|(i, (name, state))| Statement {
            sql: "INSERT OR IGNORE INTO deploy_steps (job_id, position, name, state, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params: vec![
                job_id.into(),
                (first_position + i as i64).into(),
                name.as_str().into(),
                state.as_str().into(),
                now.millis().into(),
            ],
        })
        .collect()
}

impl<S: Sql> JobStore<S> {
    pub fn new(sql: S) -> Self {
        JobStore { sql }
    }

    /// The job an earlier delivery of this push made: the one this delivery made (a
    /// replay), or the app's newest job when it is for the same commit (the same
    /// push delivered again, by a second hook or late).
    pub async fn existing(
        &self,
        app: &AppName,
        environment: &str,
        sha: &CommitSha,
        delivery_id: Option<&DeliveryId>,
    ) -> Result<Option<i64>, StoreError> {
        if let Some(delivery) = delivery_id {
            let rows = self
                .sql
                .query(
                    "SELECT id FROM deploy_jobs WHERE app = ?1 AND delivery_id = ?2 ORDER BY id LIMIT 1",
                    &[app.as_str().into(), delivery.as_str().into()],
                )
                .await?;
            if let Some(id) = rows.first().and_then(|r| r.opt_int("id")) {
                return Ok(Some(id));
            }
        }
        let newest = self
            .sql
            .query(
                "SELECT id, sha FROM deploy_jobs WHERE app = ?1 AND environment = ?2 AND status != 'cancelled' \
                 ORDER BY id DESC LIMIT 1",
                &[app.as_str().into(), environment.into()],
            )
            .await?;
        Ok(newest
            .first()
            .filter(|row| row.opt_str("sha") == Some(sha.as_str()))
            .and_then(|row| row.opt_int("id")))
    }

    /// Creates a waiting job with its steps, unless [`JobStore::existing`] finds one
    /// or a live job for the same app, environment and commit exists. Returns the
    /// job's id and whether this call created it.
    pub async fn create(
        &self,
        job: &NewJob<'_>,
        now: Timestamp,
    ) -> Result<(i64, bool), StoreError> {
        if let Some(id) = self
            .existing(job.app, job.environment, job.sha, job.delivery_id)
            .await?
        {
            return Ok((id, false));
        }
        let commits = serde_json::to_string(job.commits).map_err(StoreError::encode)?;
        let done = self
            .sql
            .execute(
                "INSERT OR IGNORE INTO deploy_jobs \
                 (app, environment, sha, git_ref, delivery_id, pusher, commits, status, created_at, updated_at, \
                  installation_id, before_sha, forced) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'waiting', ?8, ?8, ?9, ?10, ?11)",
                &[
                    job.app.as_str().into(),
                    job.environment.into(),
                    job.sha.as_str().into(),
                    job.git_ref.into(),
                    job.delivery_id.map(DeliveryId::as_str).into(),
                    job.pusher.into(),
                    commits.into(),
                    now.millis().into(),
                    job.installation_id.and_then(|i| i64::try_from(i).ok()).into(),
                    job.before.map(CommitSha::as_str).into(),
                    i64::from(job.forced).into(),
                ],
            )
            .await?;
        if done.changes == 1 {
            self.sql
                .batch(&step_inserts(Some(done.last_row_id), 0, job.steps, now))
                .await?;
            return Ok((done.last_row_id, true));
        }
        let rows = self
            .sql
            .query(
                "SELECT id FROM deploy_jobs WHERE app = ?1 AND environment = ?2 AND sha = ?3 \
                 AND status IN ('waiting', 'processing', 'reverting')",
                &[
                    job.app.as_str().into(),
                    job.environment.into(),
                    job.sha.as_str().into(),
                ],
            )
            .await?;
        let id = rows
            .first()
            .and_then(|r| r.opt_int("id"))
            .ok_or_else(|| StoreError::Row("job neither created nor found".into()))?;
        Ok((id, false))
    }

    /// Cancels the app's jobs older than `newest` that have deployed nothing: the
    /// waiting ones, and a started one whose approval nobody has decided yet (a
    /// decision on it can no longer be recorded: [`JobStore::decide_step`] requires
    /// that no newer job exists). Returns their ids.
    pub async fn supersede(
        &self,
        app: &str,
        environment: &str,
        newest: i64,
        now: Timestamp,
    ) -> Result<Vec<i64>, StoreError> {
        let rows = self
            .sql
            .query(
                "UPDATE deploy_jobs SET status = 'cancelled', error = ?5, \
                 updated_at = ?4, finished_at = ?4 \
                 WHERE app = ?1 AND environment = ?2 AND id < ?3 AND (status = 'waiting' \
                   OR (status = 'processing' AND EXISTS (SELECT 1 FROM deploy_steps s \
                       WHERE s.job_id = deploy_jobs.id AND s.name = 'awaiting_approval' \
                       AND s.state IN ('pending', 'started') \
                       AND json_extract(s.result, '$.decision') IS NULL))) \
                 RETURNING id",
                &[
                    app.into(),
                    environment.into(),
                    newest.into(),
                    now.millis().into(),
                    format!("superseded by job {newest}").into(),
                ],
            )
            .await?;
        let ids: Vec<i64> = rows.iter().filter_map(|r| r.opt_int("id")).collect();
        if !ids.is_empty() {
            let list = serde_json::to_string(&ids).map_err(StoreError::encode)?;
            // A waiting approval step is started: it is skipped with the rest.
            self.sql
                .execute(
                    "UPDATE deploy_steps SET state = 'skipped', claimed_at = NULL, due_at = NULL, updated_at = ?2 \
                     WHERE job_id IN (SELECT value FROM json_each(?1)) AND state IN ('pending', 'started')",
                    &[list.into(), now.millis().into()],
                )
                .await?;
        }
        Ok(ids)
    }

    /// The newest job of the app and environment after `id`, if a newer push made
    /// one (it supersedes `id` while `id` awaits approval).
    pub async fn newer_job(
        &self,
        app: &str,
        environment: &str,
        id: i64,
    ) -> Result<Option<i64>, StoreError> {
        let rows = self
            .sql
            .query(
                "SELECT MAX(id) AS id FROM deploy_jobs WHERE app = ?1 AND environment = ?2 AND id > ?3",
                &[app.into(), environment.into(), id.into()],
            )
            .await?;
        Ok(rows.first().and_then(|r| r.opt_int("id")))
    }

    /// Records a decision (`approved` or `rejected`, by whom, when: a whole number,
    /// though D1 binds numbers as reals) in the result of
    /// the approval step at `position` of job `job_id`, and makes the step
    /// claimable at once: its next run reads the decision and moves the job on.
    /// One conditional update, so of two decisions, or a decision and the cron's
    /// timeout or a newer push, exactly one wins: it applies only while the job is
    /// processing and no newer job of its app and environment exists, the step is
    /// unfinished, undecided and not held by a fresh claim ([`StepClaims`]), and
    /// its deadline (in its result, once it waited) has not passed. `false` changes
    /// nothing.
    pub async fn decide_step(
        &self,
        job_id: i64,
        position: i64,
        (decision, by): (&str, &str),
        now: Timestamp,
        claims: StepClaims,
    ) -> Result<bool, StoreError> {
        let done = self
            .sql
            .execute(
                "UPDATE deploy_steps SET result = json_set(COALESCE(result, '{}'), '$.decision', ?3, '$.by', ?4, \
                 '$.at', CAST(?5 AS INTEGER)), \
                 due_at = NULL, updated_at = ?5 \
                 WHERE job_id = ?1 AND position = ?2 AND name = 'awaiting_approval' \
                 AND state IN ('pending', 'started') AND json_extract(result, '$.decision') IS NULL \
                 AND (claimed_at IS NULL OR claimed_at < ?6) \
                 AND COALESCE(json_extract(result, '$.deadline'), ?5 + 1) > ?5 \
                 AND EXISTS (SELECT 1 FROM deploy_jobs j WHERE j.id = ?1 AND j.status = 'processing' \
                   AND NOT EXISTS (SELECT 1 FROM deploy_jobs n WHERE n.app = j.app \
                     AND n.environment = j.environment AND n.id > j.id))",
                &[
                    job_id.into(),
                    position.into(),
                    decision.into(),
                    by.into(),
                    now.millis().into(),
                    claims.stale_before(now).millis().into(),
                ],
            )
            .await?;
        Ok(done.changes == 1)
    }

    /// Approval steps waiting past their deadline (`due_at`), whose jobs still
    /// await them: the cron fails them with "approval timed out". A held step is
    /// left to its holder.
    pub async fn expired_approvals(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<(i64, i64)>, StoreError> {
        let rows = self
            .sql
            .query(
                "SELECT s.job_id, s.position FROM deploy_steps s JOIN deploy_jobs j ON j.id = s.job_id \
                 WHERE s.name = 'awaiting_approval' AND s.state = 'started' AND s.claimed_at IS NULL \
                 AND s.due_at <= ?1 AND j.status = 'processing' ORDER BY s.due_at LIMIT ?2",
                &[now.millis().into(), limit.into()],
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| Some((r.opt_int("job_id")?, r.opt_int("position")?)))
            .collect())
    }

    /// Starts the app's newest waiting job unless a job is active for it; returns the
    /// started job. One statement, so two consumers cannot both start one.
    pub async fn try_start(
        &self,
        app: &str,
        environment: &str,
        now: Timestamp,
    ) -> Result<Option<i64>, StoreError> {
        let rows = self
            .sql
            .query(
                "UPDATE deploy_jobs SET status = 'processing', started_at = ?3, updated_at = ?3 \
                 WHERE id = (SELECT id FROM deploy_jobs WHERE app = ?1 AND environment = ?2 AND status = 'waiting' \
                             ORDER BY id DESC LIMIT 1) \
                 AND NOT EXISTS (SELECT 1 FROM deploy_jobs WHERE app = ?1 AND environment = ?2 \
                                 AND status IN ('processing', 'reverting')) \
                 RETURNING id",
                &[app.into(), environment.into(), now.millis().into()],
            )
            .await?;
        Ok(rows.first().and_then(|r| r.opt_int("id")))
    }

    /// Moves a job to `to` if its current status allows it; `false` changes nothing.
    pub async fn set_status(
        &self,
        id: i64,
        to: JobStatus,
        error: Option<&str>,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let from: Vec<&str> = to.allowed_from().iter().map(|s| s.as_str()).collect();
        let from = serde_json::to_string(&from).map_err(StoreError::encode)?;
        let finished = to.is_final() || to == JobStatus::Failed;
        let done = self
            .sql
            .execute(
                "UPDATE deploy_jobs SET status = ?2, error = COALESCE(?3, error), updated_at = ?4, \
                 finished_at = CASE WHEN ?5 THEN ?4 ELSE finished_at END \
                 WHERE id = ?1 AND status IN (SELECT value FROM json_each(?6))",
                &[
                    id.into(),
                    to.as_str().into(),
                    error.into(),
                    now.millis().into(),
                    i64::from(finished).into(),
                    from.into(),
                ],
            )
            .await?;
        Ok(done.changes == 1)
    }

    /// Records the GitHub deployment, Telegram message or revert sha of a job.
    pub async fn set_field(
        &self,
        id: i64,
        field: JobField,
        value: SqlValue,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let sql = match field {
            JobField::GithubDeploymentId => {
                "UPDATE deploy_jobs SET github_deployment_id = ?2, updated_at = ?3 WHERE id = ?1"
            }
            JobField::TelegramMessageId => {
                "UPDATE deploy_jobs SET telegram_message_id = ?2, updated_at = ?3 WHERE id = ?1"
            }
            JobField::RevertSha => {
                "UPDATE deploy_jobs SET revert_sha = ?2, updated_at = ?3 WHERE id = ?1"
            }
        };
        self.sql
            .execute(sql, &[id.into(), value, now.millis().into()])
            .await
            .map(drop)
    }

    /// Appends steps after the last one (the revert steps).
    pub async fn append_steps(
        &self,
        id: i64,
        steps: &[(StepName, StepState)],
        now: Timestamp,
    ) -> Result<i64, StoreError> {
        let rows = self
            .sql
            .query("SELECT COALESCE(MAX(position), -1) + 1 AS next FROM deploy_steps WHERE job_id = ?1", &[id.into()])
            .await?;
        let first = rows.first().and_then(|r| r.opt_int("next")).unwrap_or(0);
        self.sql
            .batch(&step_inserts(Some(id), first, steps, now))
            .await?;
        Ok(first)
    }

    /// Claims a step for one attempt if [`StepClaims`] allows it: a pending or
    /// released step once it is due, a held one once its claim is stale (its
    /// consumer died). `None` when it is finished, held, or not due yet.
    pub async fn claim_step(
        &self,
        job_id: i64,
        position: i64,
        now: Timestamp,
        claims: StepClaims,
    ) -> Result<Option<Step>, StoreError> {
        self.claim_with(
            job_id,
            position,
            now,
            claims.stale_before(now),
            claims.due_by(now),
        )
        .await
    }

    /// Takes an unfinished step whatever its claim or due time (the cron's timeout).
    pub async fn take_step(
        &self,
        job_id: i64,
        position: i64,
        now: Timestamp,
    ) -> Result<Option<Step>, StoreError> {
        self.claim_with(
            job_id,
            position,
            now,
            Timestamp::from_millis(i64::MAX),
            Timestamp::from_millis(i64::MAX),
        )
        .await
    }

    async fn claim_with(
        &self,
        job_id: i64,
        position: i64,
        now: Timestamp,
        stale_before: Timestamp,
        due_by: Timestamp,
    ) -> Result<Option<Step>, StoreError> {
        let rows = self
            .sql
            .query(
                &format!(
                    "UPDATE deploy_steps SET state = 'started', attempts = attempts + 1, \
                     started_at = COALESCE(started_at, ?3), claimed_at = ?3, due_at = NULL, updated_at = ?3 \
                     WHERE job_id = ?1 AND position = ?2 AND state IN ('pending', 'started') AND {} \
                     RETURNING {STEP_COLUMNS}",
                    StepClaims::sql_condition(4, 5)
                ),
                &[
                    job_id.into(),
                    position.into(),
                    now.millis().into(),
                    stale_before.millis().into(),
                    due_by.millis().into(),
                ],
            )
            .await?;
        rows.into_iter().next().map(step).transpose()
    }

    /// Puts a claimed step back to pending after a transient failure, due again at
    /// `due` (when its retried message comes), keeping the error for the record.
    /// (A job cancelled while the step ran has it skipped instead: nothing runs it
    /// again.)
    pub async fn release_step(
        &self,
        job_id: i64,
        position: i64,
        error: &str,
        due: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.sql
            .execute(
                "UPDATE deploy_steps SET \
                   state = CASE WHEN j.status IN ('processing', 'reverting') THEN 'pending' ELSE 'skipped' END, \
                   due_at = CASE WHEN j.status IN ('processing', 'reverting') THEN ?5 END, \
                   claimed_at = NULL, error = ?3, updated_at = ?4 \
                 FROM (SELECT status FROM deploy_jobs WHERE id = ?1) AS j \
                 WHERE job_id = ?1 AND position = ?2 AND state = 'started'",
                &[
                    job_id.into(),
                    position.into(),
                    error.into(),
                    now.millis().into(),
                    due.millis().into(),
                ],
            )
            .await
            .map(drop)
    }

    /// Keeps a started step waiting (an await step between checks): records what it
    /// waits for and lets go of the claim (nothing runs while it waits); the event
    /// it waits for wakes it, and the sweep looks again after `SWEEP_AFTER_SECONDS`,
    /// or, with `until` (an approval's deadline), not before then.
    pub async fn touch_step(
        &self,
        job_id: i64,
        position: i64,
        result: &serde_json::Value,
        until: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.sql
            .execute(
                "UPDATE deploy_steps SET result = ?3, claimed_at = NULL, due_at = ?5, updated_at = ?4 \
                 WHERE job_id = ?1 AND position = ?2 AND state = 'started'",
                &[
                    job_id.into(),
                    position.into(),
                    crate::json::text(result).into(),
                    now.millis().into(),
                    until.map(Timestamp::millis).into(),
                ],
            )
            .await
            .map(drop)
    }

    /// Finishes a started step; `false` when it was not started (already finished).
    pub async fn finish_step(
        &self,
        job_id: i64,
        position: i64,
        state: StepState,
        result: Option<&serde_json::Value>,
        error: Option<&str>,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let done = self
            .sql
            .execute(
                "UPDATE deploy_steps SET state = ?3, result = COALESCE(?4, result), error = ?5, \
                 finished_at = ?6, updated_at = ?6, claimed_at = NULL, due_at = NULL \
                 WHERE job_id = ?1 AND position = ?2 AND state IN ('started', 'pending')",
                &[
                    job_id.into(),
                    position.into(),
                    state.as_str().into(),
                    result.map(crate::json::text).into(),
                    error.into(),
                    now.millis().into(),
                ],
            )
            .await?;
        Ok(done.changes == 1)
    }

    /// Skips the pending steps of a job (after a failure).
    pub async fn skip_pending(&self, job_id: i64, now: Timestamp) -> Result<(), StoreError> {
        self.sql
            .execute(
                "UPDATE deploy_steps SET state = 'skipped', updated_at = ?2 WHERE job_id = ?1 AND state = 'pending'",
                &[job_id.into(), now.millis().into()],
            )
            .await
            .map(drop)
    }

    pub async fn get(&self, id: i64) -> Result<Option<Job>, StoreError> {
        let rows = self
            .sql
            .query(
                &format!("SELECT {JOB_COLUMNS} FROM deploy_jobs WHERE id = ?1"),
                &[id.into()],
            )
            .await?;
        let Some(row) = rows.into_iter().next() else {
            return Ok(None);
        };
        let mut job = job(row)?;
        let steps = self
            .sql
            .query(
                &format!(
                    "SELECT {STEP_COLUMNS} FROM deploy_steps WHERE job_id = ?1 ORDER BY position"
                ),
                &[id.into()],
            )
            .await?;
        job.steps = steps.into_iter().map(step).collect::<Result<_, _>>()?;
        job.actions = crate::audit::AuditStore::new(&self.sql)
            .of(crate::audit::SubjectKind::Job, &id.to_string())
            .await?;
        Ok(Some(job))
    }

    /// Where job `id` stands among its app's jobs: its status, the newest job of its
    /// app and environment that was not cancelled, and the finalized job before it
    /// with another commit (what a rollback would go back to). One query.
    pub async fn standing(&self, id: i64) -> Result<Option<Standing>, StoreError> {
        let rows = self
            .sql
            .query(
                "SELECT j.status, (SELECT MAX(id) FROM deploy_jobs WHERE app = j.app \
                   AND environment = j.environment AND status != 'cancelled') AS newest, \
                 (SELECT p.id FROM deploy_jobs p WHERE p.app = j.app AND p.environment = j.environment \
                   AND p.status = 'finalized' AND p.id < j.id AND p.sha != j.sha ORDER BY p.id DESC LIMIT 1) \
                   AS previous, \
                 j.status = 'processing' AND EXISTS (SELECT 1 FROM deploy_steps s WHERE s.job_id = j.id \
                   AND s.name = 'awaiting_approval' AND s.state IN ('pending', 'started') \
                   AND json_extract(s.result, '$.decision') IS NULL) AS awaiting \
                 FROM deploy_jobs j WHERE j.id = ?1",
                &[id.into()],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        Ok(Some(Standing {
            status: row
                .opt_str("status")
                .and_then(JobStatus::parse)
                .ok_or_else(|| StoreError::Row("job status".into()))?,
            newest: row.opt_int("newest"),
            previous: row.opt_int("previous"),
            awaiting: row.opt_int("awaiting").unwrap_or(0) != 0,
        }))
    }

    /// Creates the job a chat request asks for (a rollback or a retry), once per
    /// request key; returns its id and whether this call created it. A live job of
    /// the same commit is the request's job too.
    pub async fn create_requested(
        &self,
        job: &Requested<'_>,
        now: Timestamp,
    ) -> Result<(i64, bool), StoreError> {
        let commits = serde_json::to_string(&job.from.commits).map_err(StoreError::encode)?;
        let done = self
            .sql
            .execute(
                "INSERT OR IGNORE INTO deploy_jobs \
                 (app, environment, sha, git_ref, pusher, commits, status, created_at, updated_at, \
                  installation_id, kind, source_job, requested_by, request_key) \
                 VALUES (?1, ?2, ?3, ?4, NULL, ?5, 'waiting', ?6, ?6, ?7, ?8, ?9, ?10, ?11)",
                &[
                    job.from.app.as_str().into(),
                    job.from.environment.as_str().into(),
                    job.from.sha.as_str().into(),
                    job.from.git_ref.as_str().into(),
                    commits.into(),
                    now.millis().into(),
                    job.installation_id.into(),
                    job.kind.as_str().into(),
                    job.source_job.into(),
                    job.requested_by.into(),
                    job.key.into(),
                ],
            )
            .await?;
        if done.changes == 1 {
            self.sql
                .batch(&step_inserts(Some(done.last_row_id), 0, job.steps, now))
                .await?;
            return Ok((done.last_row_id, true));
        }
        let rows = self
            .sql
            .query(
                "SELECT id FROM deploy_jobs WHERE request_key = ?1 \
                 UNION ALL SELECT id FROM deploy_jobs WHERE app = ?2 AND environment = ?3 AND sha = ?4 \
                   AND status IN ('waiting', 'processing', 'reverting') LIMIT 1",
                &[
                    job.key.into(),
                    job.from.app.as_str().into(),
                    job.from.environment.as_str().into(),
                    job.from.sha.as_str().into(),
                ],
            )
            .await?;
        let id = rows
            .first()
            .and_then(|r| r.opt_int("id"))
            .ok_or_else(|| StoreError::Row("requested job neither created nor found".into()))?;
        Ok((id, false))
    }

    /// For `/status`: each app and environment's newest finalized job, and every
    /// job waiting or running, by app, environment and id (without steps).
    pub async fn board(&self) -> Result<Vec<Job>, StoreError> {
        let rows = self
            .sql
            .query(
                &format!(
                    "SELECT {JOB_COLUMNS} FROM deploy_jobs WHERE id IN \
                     (SELECT MAX(id) FROM deploy_jobs WHERE status = 'finalized' GROUP BY app, environment) \
                     OR status IN ('waiting', 'processing', 'reverting') ORDER BY app, environment, id LIMIT 200"
                ),
                &[],
            )
            .await?;
        rows.into_iter().map(job).collect()
    }

    /// Jobs newest first, optionally of one app and in one status (without steps).
    pub async fn list(
        &self,
        app: Option<&str>,
        status: Option<JobStatus>,
        limit: u32,
    ) -> Result<Vec<Job>, StoreError> {
        let rows = self
            .sql
            .query(
                &format!(
                    "SELECT {JOB_COLUMNS} FROM deploy_jobs WHERE (?1 IS NULL OR app = ?1) \
                     AND (?2 IS NULL OR status = ?2) ORDER BY id DESC LIMIT ?3"
                ),
                &[
                    app.into(),
                    status.map(JobStatus::as_str).into(),
                    limit.into(),
                ],
            )
            .await?;
        rows.into_iter().map(job).collect()
    }

    /// A page of jobs newest first (by when they were made, then id), below
    /// `bound` ([`crate::cursor`]), optionally of one app and in one status
    /// (without steps); at most `limit`.
    pub async fn page(
        &self,
        app: Option<&str>,
        status: Option<JobStatus>,
        bound: &crate::cursor::Bound,
        limit: u32,
    ) -> Result<Vec<Job>, StoreError> {
        let [at, mode, id] = bound.params();
        // One app's jobs start at its own index; without one, at the jobs' by time.
        let of_app = if app.is_some() {
            "app = ?1"
        } else {
            "?1 IS NULL"
        };
        let rows = self
            .sql
            .query(
                &format!(
                    "SELECT {JOB_COLUMNS} FROM deploy_jobs WHERE {of_app} \
                     AND (?2 IS NULL OR status = ?2) AND {} ORDER BY created_at DESC, id DESC LIMIT ?6",
                    crate::cursor::Cursor::condition("created_at", "id", 3)
                ),
                &[
                    app.into(),
                    status.map(JobStatus::as_str).into(),
                    at,
                    mode,
                    id,
                    limit.into(),
                ],
            )
            .await?;
        rows.into_iter().map(job).collect()
    }

    /// The commits a new push must be newer than: the app's last finalized job's,
    /// its active job's and its newest waiting job's, in that order.
    pub async fn references(
        &self,
        app: &str,
        environment: &str,
    ) -> Result<Vec<CommitSha>, StoreError> {
        let rows = self
            .sql
            .query(
                "SELECT sha, CASE status WHEN 'finalized' THEN 0 WHEN 'waiting' THEN 2 ELSE 1 END AS rank \
                 FROM deploy_jobs WHERE id IN \
                 (SELECT MAX(id) FROM deploy_jobs WHERE app = ?1 AND environment = ?2 \
                  AND status IN ('finalized', 'processing', 'reverting', 'waiting') \
                  GROUP BY CASE status WHEN 'finalized' THEN 0 WHEN 'waiting' THEN 2 ELSE 1 END) \
                 ORDER BY rank",
                &[app.into(), environment.into()],
            )
            .await?;
        let mut shas: Vec<CommitSha> = Vec::new();
        for sha in rows
            .iter()
            .filter_map(|r| r.opt_text("sha").and_then(|s| CommitSha::parse(&s)))
        {
            if !shas.contains(&sha) {
                shas.push(sha);
            }
        }
        Ok(shas)
    }

    /// The pushes the app's newest `limit` jobs came from, newest first: the chain
    /// [`super::stale`] walks.
    pub async fn push_history(
        &self,
        app: &str,
        environment: &str,
        limit: u32,
    ) -> Result<Vec<PushLink>, StoreError> {
        let rows = self
            .sql
            .query(
                "SELECT sha, before_sha, forced, \
                 (SELECT json_group_array(json_extract(c.value, '$.id')) FROM json_each(j.commits) c) AS ids \
                 FROM deploy_jobs j WHERE app = ?1 AND environment = ?2 ORDER BY id DESC LIMIT ?3",
                &[app.into(), environment.into(), limit.into()],
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let ids: Vec<String> = r
                    .opt_text("ids")
                    .and_then(|t| crate::json::read(&t).ok())
                    .unwrap_or_default();
                Some(PushLink {
                    after: r.opt_text("sha").and_then(|s| CommitSha::parse(&s))?,
                    before: r.opt_text("before_sha").and_then(|s| CommitSha::parse(&s)),
                    forced: r.bool("forced"),
                    commits: ids.iter().filter_map(|s| CommitSha::parse(s)).collect(),
                })
            })
            .collect())
    }

    /// The sha of the app's newest finalized job before `before`, for a revert.
    pub async fn last_finalized_sha(
        &self,
        app: &str,
        environment: &str,
        before: i64,
    ) -> Result<Option<String>, StoreError> {
        let rows = self
            .sql
            .query(
                "SELECT sha FROM deploy_jobs WHERE app = ?1 AND environment = ?2 AND status = 'finalized' \
                 AND id < ?3 ORDER BY id DESC LIMIT 1",
                &[app.into(), environment.into(), before.into()],
            )
            .await?;
        Ok(rows
            .first()
            .and_then(|r| r.opt_str("sha"))
            .map(str::to_owned))
    }

    /// Steps of active jobs the sweep runs again: untouched since `cutoff` (and not
    /// due since), and claimable by `claims` at `now`: started ones whose consumer
    /// died (a stale claim) or whose wait is due another look, a retry whose
    /// message never came, and a job's next pending step whose message was lost
    /// (dead-lettered, or never sent).
    pub async fn stale_steps(
        &self,
        cutoff: Timestamp,
        claims: StepClaims,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<(i64, i64)>, StoreError> {
        let rows = self
            .sql
            .query(
                &format!(
                    "SELECT s.job_id, s.position FROM deploy_steps s JOIN deploy_jobs j ON j.id = s.job_id \
                     WHERE s.updated_at < ?1 AND (s.due_at IS NULL OR s.due_at < ?1) \
                     AND j.status IN ('processing', 'reverting') AND {} \
                     AND (s.state = 'started' OR (s.state = 'pending' AND s.position = \
                          (SELECT MIN(position) FROM deploy_steps WHERE job_id = s.job_id AND state IN ('pending', 'started')))) \
                     ORDER BY s.job_id LIMIT ?2",
                    StepClaims::sql_condition(3, 4)
                ),
                &[
                    cutoff.millis().into(),
                    limit.into(),
                    claims.stale_before(now).millis().into(),
                    claims.due_by(now).millis().into(),
                ],
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| Some((r.opt_int("job_id")?, r.opt_int("position")?)))
            .collect())
    }
}

impl<S: Sql> JobStore<S> {
    /// Active jobs untouched since `cutoff` with no step left to run, or whose
    /// approval failed (nothing after it may run): the Worker died between
    /// finishing the last step and moving the job on.
    pub async fn stranded(&self, cutoff: Timestamp, limit: u32) -> Result<Vec<i64>, StoreError> {
        let rows = self
            .sql
            .query(
                "SELECT id FROM deploy_jobs j WHERE status IN ('processing', 'reverting') AND updated_at < ?1 \
                 AND (NOT EXISTS (SELECT 1 FROM deploy_steps s WHERE s.job_id = j.id AND s.state IN ('pending', 'started')) \
                   OR EXISTS (SELECT 1 FROM deploy_steps a WHERE a.job_id = j.id AND a.name = 'awaiting_approval' \
                     AND a.state = 'failed')) \
                 ORDER BY id LIMIT ?2",
                &[cutoff.millis().into(), limit.into()],
            )
            .await?;
        Ok(rows.iter().filter_map(|r| r.opt_int("id")).collect())
    }
}

/// Where a job stands among its app's jobs ([`JobStore::standing`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub status: JobStatus,
    /// The newest job of the app and environment that was not cancelled.
    pub newest: Option<i64>,
    /// The finalized job before it, of another commit.
    pub previous: Option<i64>,
    /// It waits for its approval, undecided.
    pub awaiting: bool,
}

/// A job asked for from chat: `from`'s commit (with its ref and commits) deployed
/// again, as a rollback or a retry of job `source_job`.
pub struct Requested<'a> {
    pub kind: JobKind,
    pub from: &'a Job,
    pub source_job: i64,
    pub installation_id: Option<i64>,
    pub requested_by: &'a str,
    /// Once per key: the Telegram update that asked.
    pub key: &'a str,
    pub steps: &'a [(StepName, StepState)],
}

/// Job columns set after creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobField {
    GithubDeploymentId,
    TelegramMessageId,
    RevertSha,
}

pub(crate) fn job(row: Row) -> Result<Job, StoreError> {
    let status = row
        .opt_text("status")
        .and_then(|s| JobStatus::parse(&s))
        .ok_or_else(|| StoreError::Row("job status".into()))?;
    Ok(Job {
        id: row.int("id")?,
        app: row.opt_text("app").unwrap_or_default(),
        environment: row.opt_text("environment").unwrap_or_default(),
        sha: row.opt_text("sha").unwrap_or_default(),
        git_ref: row.opt_text("git_ref").unwrap_or_default(),
        delivery_id: row.opt_text("delivery_id"),
        pusher: row.opt_text("pusher"),
        installation_id: row.opt_int("installation_id"),
        status,
        revert_sha: row.opt_text("revert_sha"),
        github_deployment_id: row.opt_int("github_deployment_id"),
        telegram_message_id: row.opt_int("telegram_message_id"),
        error: row.opt_text("error"),
        created_at: row.opt_int("created_at").unwrap_or(0),
        updated_at: row.opt_int("updated_at").unwrap_or(0),
        started_at: row.opt_int("started_at"),
        finished_at: row.opt_int("finished_at"),
        commits: row
            .opt_text("commits")
            .map(|c| crate::json::read(&c))
            .transpose()
            .map_err(StoreError::row)?
            .unwrap_or_default(),
        steps: Vec::new(),
        kind: row
            .opt_str("kind")
            .and_then(JobKind::parse)
            .unwrap_or(JobKind::Deploy),
        source_job: row.opt_int("source_job"),
        requested_by: row.opt_text("requested_by"),
        actions: Vec::new(),
    })
}

fn step(row: Row) -> Result<Step, StoreError> {
    Ok(Step {
        position: row.int("position")?,
        name: row
            .opt_text("name")
            .and_then(|n| StepName::parse(&n))
            .ok_or_else(|| StoreError::Row("step name".into()))?,
        state: match row.opt_text("state").as_deref() {
            Some("pending") => StepState::Pending,
            Some("started") => StepState::Started,
            Some("done") => StepState::Done,
            Some("failed") => StepState::Failed,
            Some("skipped") => StepState::Skipped,
            _ => return Err(StoreError::Row("step state".into())),
        },
        attempts: row.opt_int("attempts").unwrap_or(0),
        result: row
            .opt_text("result")
            .and_then(|r| crate::json::value(&r).ok()),
        error: row.opt_text("error"),
        started_at: row.opt_int("started_at"),
        finished_at: row.opt_int("finished_at"),
        claimed_at: row.opt_int("claimed_at"),
        due_at: row.opt_int("due_at"),
    })
}

#[cfg(test)]
mod tests;
