//! Workflows, their steps and the events kept for later in D1. Every step change
//! is a conditional update (the status's allowed moves), so a redelivered message
//! or a late event changes nothing; the event that moved a step is appended in
//! the same statement, so the record shows why it is where it is.

use serde::Serialize;

use super::definition::{Definition, StepId};
use super::status::{StepKind, StepStatus, WorkflowStatus};
use crate::github::deliveries::DeliveryId;
use crate::github::events::GithubEvent;
use crate::json::FromJson;
use crate::ports::{Row, Sql, Statement, StoreError};
use crate::retry::{StepClaims, StepClock};
use crate::row::Columns;
use crate::time::Timestamp;

/// One forward move of a step, with what it records. Fields left `None` keep
/// their stored value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Move {
    pub to: StepStatus,
    pub pr: Option<PullRequest>,
    pub merged_sha: Option<String>,
    pub run: Option<WorkflowRun>,
    pub error: Option<String>,
    /// When the wait started and when it times out.
    pub wait: Option<(Timestamp, Timestamp)>,
    /// The event that caused the move, kept with the step.
    pub event: Option<EventRecord>,
}

impl Move {
    pub fn to(to: StepStatus) -> Move {
        Move {
            to,
            ..Move::default()
        }
    }

    pub fn failed(error: String, event: Option<EventRecord>) -> Move {
        Move {
            to: StepStatus::Failed,
            error: Some(error),
            event,
            ..Move::default()
        }
    }
}

/// The PR a step raised (or waits for).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PullRequest {
    pub number: u64,
    pub node_id: String,
    /// The head commit when it was opened.
    pub sha: Option<String>,
    /// The head branch.
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    /// The branch it merges into (the default branch).
    pub base: Option<String>,
    pub html_url: Option<String>,
}

/// The workflow run a step waited for or started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromJson)]
pub struct WorkflowRun {
    pub name: Option<String>,
    pub id: u64,
    pub html_url: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    pub path: Option<String>,
    pub conclusion: Option<String>,
}

/// An event that moved a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromJson)]
pub struct EventRecord {
    /// `pull_request`, `workflow_run`, or `timeout` (the cron).
    pub source: String,
    /// The GitHub delivery it came in.
    pub delivery: Option<String>,
    pub at: i64,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepRecord {
    pub id: StepId,
    pub kind: StepKind,
    pub status: StepStatus,
    pub repository: Option<String>,
    pub pr: Option<PullRequest>,
    pub merged_sha: Option<String>,
    pub workflow_path: Option<String>,
    pub run: Option<WorkflowRun>,
    pub error: Option<String>,
    pub attempts: i64,
    #[serde(skip)]
    pub claimed_at: Option<i64>,
    /// When a step released for a retry is due again.
    #[serde(skip)]
    pub due_at: Option<i64>,
    pub waiting_since: Option<i64>,
    pub deadline: Option<i64>,
    pub events: Vec<EventRecord>,
    pub updated_at: i64,
}

impl StepRecord {
    /// What the claim rule looks at.
    pub fn clock(&self) -> StepClock {
        StepClock {
            claimed_at: self.claimed_at,
            due_at: self.due_at,
        }
    }
}

/// A workflow as the API shows it (`GET /api/services/{name}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Workflow {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub status: WorkflowStatus,
    pub error: Option<String>,
    pub input: serde_json::Value,
    pub telegram_message_id: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
    #[serde(skip)]
    pub definition: Definition,
    /// Empty in lists.
    pub steps: Vec<StepRecord>,
}

pub struct WorkflowStore<S> {
    sql: S,
}

const WORKFLOW_COLUMNS: &str =
    "id, name, kind, definition, input, status, error, telegram_message_id, \
     created_at, updated_at, finished_at";
const STEP_COLUMNS: &str = "step_id, kind, status, repository, pr_number, pr_node_id, pr_sha, pr_ref, pr_base, \
     pr_html_url, merged_sha, workflow_path, run, error, attempts, claimed_at, due_at, waiting_since, deadline, events, updated_at";
/// Running workflows' steps, for matching events (`s` steps, `w` workflows).
const LIVE_STEPS: &str =
    "workflow_steps s JOIN workflows w ON w.id = s.workflow_id WHERE w.status = 'running'";

fn json<T: Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(StoreError::encode)
}

fn statuses(list: &[StepStatus]) -> Result<String, StoreError> {
    json(&list.iter().map(|s| s.as_str()).collect::<Vec<_>>())
}

impl<S: Sql> WorkflowStore<S> {
    pub fn new(sql: S) -> Self {
        WorkflowStore { sql }
    }

    /// Creates a running workflow with its steps pending, unless one of that name
    /// is running (`None`: the partial unique index refused it).
    pub async fn create(
        &self,
        name: &str,
        kind: &str,
        definition: &Definition,
        input: &serde_json::Value,
        now: Timestamp,
    ) -> Result<Option<i64>, StoreError> {
        let done = self
            .sql
            .execute(
                "INSERT OR IGNORE INTO workflows (name, kind, definition, input, status, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, 'running', ?5, ?5)",
                &[
                    name.into(),
                    kind.into(),
                    json(definition)?.into(),
                    crate::json::text(input).into(),
                    now.millis().into(),
                ],
            )
            .await?;
        if done.changes != 1 {
            return Ok(None);
        }
        let id = done.last_row_id;
        // A crash before this batch leaves a workflow without steps; the sweep
        // fails it (see `progress`).
        let steps = definition
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| Statement {
                sql: "INSERT OR IGNORE INTO workflow_steps \
                      (workflow_id, step_id, position, kind, status, repository, workflow_path, updated_at) \
                      VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6, ?7)",
                params: vec![
                    id.into(),
                    s.id.as_str().into(),
                    (i as i64).into(),
                    StepKind::of(&s.action).as_str().into(),
                    definition.repository_of(s).into(),
                    match &s.action {
                        super::definition::Action::AwaitWorkflow { workflow, .. } => {
                            Some(workflow.as_str())
                        }
                        _ => None,
                    }
                    .into(),
                    now.millis().into(),
                ],
            })
            .collect::<Vec<_>>();
        self.sql.batch(&steps).await?;
        Ok(Some(id))
    }

    pub async fn get(&self, id: i64) -> Result<Option<Workflow>, StoreError> {
        let rows = self
            .sql
            .query(
                &format!("SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE id = ?1"),
                &[id.into()],
            )
            .await?;
        self.with_steps(rows).await
    }

    /// The newest workflow for a service name (a failed one may be followed by a
    /// new request).
    pub async fn get_by_name(&self, name: &str) -> Result<Option<Workflow>, StoreError> {
        let rows = self
            .sql
            .query(
                &format!(
                    "SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE name = ?1 ORDER BY id DESC LIMIT 1"
                ),
                &[name.into()],
            )
            .await?;
        self.with_steps(rows).await
    }

    async fn with_steps(&self, rows: Vec<Row>) -> Result<Option<Workflow>, StoreError> {
        let Some(row) = rows.into_iter().next() else {
            return Ok(None);
        };
        let mut wf = workflow(row)?;
        let steps = self
            .sql
            .query(
                &format!(
                    "SELECT {STEP_COLUMNS} FROM workflow_steps WHERE workflow_id = ?1 ORDER BY position"
                ),
                &[wf.id.into()],
            )
            .await?;
        wf.steps = steps
            .into_iter()
            .map(step_record)
            .collect::<Result<_, _>>()?;
        Ok(Some(wf))
    }

    /// Workflows newest first, without their steps.
    pub async fn list(
        &self,
        status: Option<WorkflowStatus>,
        limit: u32,
    ) -> Result<Vec<Workflow>, StoreError> {
        let rows = self
            .sql
            .query(
                &format!(
                    "SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE (?1 IS NULL OR status = ?1) \
                     ORDER BY id DESC LIMIT ?2"
                ),
                &[status.map(WorkflowStatus::as_str).into(), limit.into()],
            )
            .await?;
        rows.into_iter().map(workflow).collect()
    }

    /// A page of workflows newest first (by when they started, then id), below
    /// `bound` ([`crate::cursor`]), without their steps; at most `limit`.
    pub async fn page(
        &self,
        status: Option<WorkflowStatus>,
        bound: &crate::cursor::Bound,
        limit: u32,
    ) -> Result<Vec<Workflow>, StoreError> {
        let [at, mode, id] = bound.params();
        let rows = self
            .sql
            .query(
                &format!(
                    "SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE (?1 IS NULL OR status = ?1) AND {} \
                     ORDER BY created_at DESC, id DESC LIMIT ?5",
                    crate::cursor::Cursor::condition("created_at", "id", 2)
                ),
                &[status.map(WorkflowStatus::as_str).into(), at, mode, id, limit.into()],
            )
            .await?;
        rows.into_iter().map(workflow).collect()
    }

    /// Claims a pending or running step of a running workflow for one attempt if
    /// [`StepClaims`] allows it: a step released for a retry once it is due, a held
    /// one once its claim is stale (its consumer died). `None`: finished, held
    /// elsewhere, not due yet, or the workflow ended.
    pub async fn claim(
        &self,
        workflow_id: i64,
        step: &StepId,
        now: Timestamp,
        claims: StepClaims,
    ) -> Result<Option<StepRecord>, StoreError> {
        let rows = self
            .sql
            .query(
                &format!(
                    "UPDATE workflow_steps SET status = 'running', attempts = attempts + 1, claimed_at = ?3, \
                     due_at = NULL, updated_at = ?3 WHERE workflow_id = ?1 AND step_id = ?2 \
                     AND status IN ('pending', 'running') AND {} \
                     AND EXISTS (SELECT 1 FROM workflows WHERE id = ?1 AND status = 'running') \
                     RETURNING {STEP_COLUMNS}",
                    StepClaims::sql_condition(4, 5)
                ),
                &[
                    workflow_id.into(),
                    step.as_str().into(),
                    now.millis().into(),
                    claims.stale_before(now).millis().into(),
                    claims.due_by(now).millis().into(),
                ],
            )
            .await?;
        rows.into_iter().next().map(step_record).transpose()
    }

    /// Lets go of a claim after a transient failure, keeping the error; the
    /// retried message claims the step again once it is due at `due`. The status
    /// stays `running`.
    pub async fn release(
        &self,
        workflow_id: i64,
        step: &StepId,
        error: &str,
        due: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.sql
            .execute(
                "UPDATE workflow_steps SET claimed_at = NULL, due_at = ?5, error = ?3, updated_at = ?4 \
                 WHERE workflow_id = ?1 AND step_id = ?2 AND status = 'running'",
                &[
                    workflow_id.into(),
                    step.as_str().into(),
                    error.into(),
                    now.millis().into(),
                    due.millis().into(),
                ],
            )
            .await
            .map(drop)
    }

    /// Applies a move if the step's status allows it (forward only); `false`
    /// changed nothing (a duplicate or a late event).
    pub async fn advance(
        &self,
        workflow_id: i64,
        step: &StepId,
        mv: &Move,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let pr = mv.pr.as_ref();
        let done = self
            .sql
            .execute(
                "UPDATE workflow_steps SET status = ?3, \
                 pr_number = COALESCE(?4, pr_number), pr_node_id = COALESCE(?5, pr_node_id), \
                 pr_sha = COALESCE(?6, pr_sha), pr_ref = COALESCE(?7, pr_ref), pr_base = COALESCE(?8, pr_base), \
                 pr_html_url = COALESCE(?9, pr_html_url), merged_sha = COALESCE(?10, merged_sha), \
                 run = COALESCE(?11, run), error = ?12, waiting_since = COALESCE(?13, waiting_since), \
                 deadline = COALESCE(?14, deadline), claimed_at = NULL, due_at = NULL, \
                 events = CASE WHEN ?15 IS NULL THEN events ELSE json_insert(events, '$[#]', json(?15)) END, \
                 updated_at = ?16 \
                 WHERE workflow_id = ?1 AND step_id = ?2 AND status IN (SELECT value FROM json_each(?17))",
                &[
                    workflow_id.into(),
                    step.as_str().into(),
                    mv.to.as_str().into(),
                    pr.and_then(|p| i64::try_from(p.number).ok()).into(),
                    pr.map(|p| p.node_id.clone()).into(),
                    pr.and_then(|p| p.sha.clone()).into(),
                    pr.and_then(|p| p.git_ref.clone()).into(),
                    pr.and_then(|p| p.base.clone()).into(),
                    pr.and_then(|p| p.html_url.clone()).into(),
                    mv.merged_sha.clone().into(),
                    mv.run.as_ref().map(json).transpose()?.into(),
                    mv.error.clone().into(),
                    mv.wait.map(|(since, _)| since.millis()).into(),
                    mv.wait.map(|(_, deadline)| deadline.millis()).into(),
                    mv.event.as_ref().map(json).transpose()?.into(),
                    now.millis().into(),
                    statuses(&mv.to.allowed_from())?.into(),
                ],
            )
            .await?;
        Ok(done.changes == 1)
    }

    /// Ends a running workflow; a failed one skips its steps that have done
    /// nothing (pending or waiting). `false`: it had ended already.
    pub async fn finish(
        &self,
        id: i64,
        status: WorkflowStatus,
        error: Option<&str>,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let done = self
            .sql
            .execute(
                "UPDATE workflows SET status = ?2, error = ?3, finished_at = ?4, updated_at = ?4 \
                 WHERE id = ?1 AND status = 'running'",
                &[
                    id.into(),
                    status.as_str().into(),
                    error.into(),
                    now.millis().into(),
                ],
            )
            .await?;
        if done.changes == 1 && status == WorkflowStatus::Failed {
            self.sql
                .execute(
                    "UPDATE workflow_steps SET status = 'skipped', updated_at = ?2 \
                     WHERE workflow_id = ?1 AND status IN (SELECT value FROM json_each(?3))",
                    &[
                        id.into(),
                        now.millis().into(),
                        statuses(&StepStatus::Skipped.allowed_from())?.into(),
                    ],
                )
                .await?;
        }
        Ok(done.changes == 1)
    }

    /// Records the workflow's Telegram message, unless one is recorded already.
    pub async fn set_telegram_message(&self, id: i64, message_id: i64) -> Result<(), StoreError> {
        self.sql
            .execute(
                "UPDATE workflows SET telegram_message_id = ?2 WHERE id = ?1 AND telegram_message_id IS NULL",
                &[id.into(), message_id.into()],
            )
            .await
            .map(drop)
    }

    /// The `open_pr` steps of running workflows that raised this PR.
    pub async fn pr_steps(
        &self,
        repository: &str,
        number: u64,
        node_id: &str,
    ) -> Result<Vec<(i64, StepId)>, StoreError> {
        let rows = self
            .sql
            .query(
                &format!(
                    "SELECT s.workflow_id, s.step_id FROM {LIVE_STEPS} AND s.kind = 'open_pr' \
                     AND s.repository = ?1 AND (s.pr_number = ?2 OR s.pr_node_id = ?3)"
                ),
                &[
                    repository.to_ascii_lowercase().into(),
                    i64::try_from(number).unwrap_or(-1).into(),
                    node_id.into(),
                ],
            )
            .await?;
        refs(rows)
    }

    /// The `await_workflow` steps of running workflows that wait (or waited) for
    /// a run of `path` on `head_sha`; the pure `run_move` decides whether it still
    /// moves them, so a duplicate is recognised as ours and not kept.
    pub async fn run_steps(
        &self,
        repository: &str,
        head_sha: &str,
        path: &str,
    ) -> Result<Vec<(i64, StepId)>, StoreError> {
        let rows = self
            .sql
            .query(
                &format!(
                    "SELECT s.workflow_id, s.step_id FROM {LIVE_STEPS} AND s.kind = 'await_workflow' \
                     AND s.repository = ?1 AND s.merged_sha = ?2 AND s.workflow_path = ?3"
                ),
                &[
                    repository.to_ascii_lowercase().into(),
                    head_sha.into(),
                    path.into(),
                ],
            )
            .await?;
        refs(rows)
    }

    /// Keeps an event no step is ready for, if a running workflow has a step in
    /// its repository (everything else the webhook sends is not ours to keep).
    /// A redelivery is kept once. `true` when kept now.
    pub async fn keep_early(
        &self,
        delivery: &DeliveryId,
        event: &GithubEvent,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let (kind, repository, number, node_id, head_sha, path) = match event {
            GithubEvent::PullRequest(p) => (
                "pull_request",
                &p.repository,
                i64::try_from(p.number).ok(),
                Some(p.node_id.as_str()),
                None,
                None,
            ),
            GithubEvent::WorkflowRun(r) => (
                "workflow_run",
                &r.repository,
                None,
                None,
                Some(r.head_sha.as_str()),
                r.path.as_deref(),
            ),
            _ => return Ok(false),
        };
        let done = self
            .sql
            .execute(
                &format!(
                    "INSERT OR IGNORE INTO workflow_events \
                     (delivery_id, kind, repository, pr_number, pr_node_id, head_sha, workflow_path, event, received_at) \
                     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9 \
                     WHERE EXISTS (SELECT 1 FROM {LIVE_STEPS} AND s.repository = ?3)"
                ),
                &[
                    delivery.as_str().into(),
                    kind.into(),
                    repository.as_str().to_ascii_lowercase().into(),
                    number.into(),
                    node_id.into(),
                    head_sha.into(),
                    path.into(),
                    json(event)?.into(),
                    now.millis().into(),
                ],
            )
            .await?;
        Ok(done.changes == 1)
    }

    /// Kept events that a step of a running workflow (of `workflow_id`, or any)
    /// now matches, oldest first.
    pub async fn matchable_early(
        &self,
        workflow_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<(DeliveryId, GithubEvent)>, StoreError> {
        let rows = self
            .sql
            .query(
                &format!(
                    "SELECT e.delivery_id, e.event FROM workflow_events e WHERE e.matched_at IS NULL AND EXISTS \
                     (SELECT 1 FROM {LIVE_STEPS} AND (?1 IS NULL OR w.id = ?1) AND s.repository = e.repository AND \
                      ((e.kind = 'pull_request' AND s.kind = 'open_pr' \
                        AND (s.pr_number = e.pr_number OR s.pr_node_id = e.pr_node_id)) \
                       OR (e.kind = 'workflow_run' AND s.kind = 'await_workflow' AND s.status = 'waiting' \
                        AND s.merged_sha = e.head_sha AND s.workflow_path = e.workflow_path))) \
                     ORDER BY e.received_at LIMIT ?2"
                ),
                &[workflow_id.into(), limit.into()],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let id = r
                    .opt_text("delivery_id")
                    .and_then(|d| DeliveryId::parse(&d))
                    .ok_or_else(|| StoreError::Row("kept event: delivery id".into()))?;
                let event = r
                    .opt_text("event")
                    .map(|e| crate::json::read(&e))
                    .transpose()
                    .map_err(StoreError::row)?
                    .ok_or_else(|| StoreError::Row("kept event: event".into()))?;
                Ok((id, event))
            })
            .collect()
    }

    pub async fn mark_matched(
        &self,
        delivery: &DeliveryId,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.sql
            .execute(
                "UPDATE workflow_events SET matched_at = ?2 WHERE delivery_id = ?1 AND matched_at IS NULL",
                &[delivery.as_str().into(), now.millis().into()],
            )
            .await
            .map(drop)
    }

    /// Forgets kept events received before `before`.
    pub async fn prune_early(&self, before: Timestamp) -> Result<u64, StoreError> {
        let done = self
            .sql
            .execute(
                "DELETE FROM workflow_events WHERE received_at < ?1",
                &[before.millis().into()],
            )
            .await?;
        Ok(done.changes)
    }

    /// Waiting steps of running workflows whose deadline has passed.
    pub async fn overdue(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<(i64, StepId)>, StoreError> {
        let rows = self
            .sql
            .query(
                &format!(
                    "SELECT s.workflow_id, s.step_id FROM {LIVE_STEPS} AND s.status = 'waiting' \
                     AND s.deadline <= ?1 ORDER BY s.deadline LIMIT ?2"
                ),
                &[now.millis().into(), limit.into()],
            )
            .await?;
        refs(rows)
    }

    /// Running workflows created before `cutoff` with a pending or running step
    /// untouched since then (its queue message may be lost), or with no steps at
    /// all (interrupted while being created).
    pub async fn stale(&self, cutoff: Timestamp, limit: u32) -> Result<Vec<i64>, StoreError> {
        let rows = self
            .sql
            .query(
                "SELECT w.id FROM workflows w WHERE w.status = 'running' AND w.created_at < ?1 AND \
                 (NOT EXISTS (SELECT 1 FROM workflow_steps s WHERE s.workflow_id = w.id) \
                  OR EXISTS (SELECT 1 FROM workflow_steps s WHERE s.workflow_id = w.id \
                             AND s.status IN ('pending', 'running') AND s.updated_at < ?1)) \
                 ORDER BY w.id LIMIT ?2",
                &[cutoff.millis().into(), limit.into()],
            )
            .await?;
        Ok(rows.iter().filter_map(|r| r.opt_int("id")).collect())
    }
}

fn refs(rows: Vec<Row>) -> Result<Vec<(i64, StepId)>, StoreError> {
    rows.iter()
        .map(|r| {
            let id = r.int("workflow_id")?;
            let step = r
                .opt_text("step_id")
                .and_then(|s| StepId::parse(&s))
                .ok_or_else(|| StoreError::Row("step id".into()))?;
            Ok((id, step))
        })
        .collect()
}

fn parsed<T: FromJson>(row: &Row, column: &str) -> Result<Option<T>, StoreError> {
    row.opt_text(column)
        .map(|t| crate::json::read(&t))
        .transpose()
        .map_err(|e| StoreError::Row(format!("{column}: {e}")))
}

fn workflow(row: Row) -> Result<Workflow, StoreError> {
    Ok(Workflow {
        id: row.int("id")?,
        name: row.opt_text("name").unwrap_or_default(),
        kind: row.opt_text("kind").unwrap_or_default(),
        status: row
            .opt_text("status")
            .and_then(|s| WorkflowStatus::parse(&s))
            .ok_or_else(|| StoreError::Row("workflow status".into()))?,
        error: row.opt_text("error"),
        // Parsed straight into a Value: reading one out of a parsed Value copies it.
        input: row
            .opt_text("input")
            .map(|t| crate::json::value(&t))
            .transpose()
            .map_err(|e| StoreError::Row(format!("input: {e}")))?
            .unwrap_or_default(),
        telegram_message_id: row.opt_int("telegram_message_id"),
        created_at: row.opt_int("created_at").unwrap_or(0),
        updated_at: row.opt_int("updated_at").unwrap_or(0),
        finished_at: row.opt_int("finished_at"),
        definition: parsed(&row, "definition")?
            .ok_or_else(|| StoreError::Row("workflow definition".into()))?,
        steps: Vec::new(),
    })
}

fn step_record(row: Row) -> Result<StepRecord, StoreError> {
    let pr = match (row.opt_int("pr_number"), row.opt_text("pr_node_id")) {
        (Some(number), Some(node_id)) => Some(PullRequest {
            number: u64::try_from(number).unwrap_or(0),
            node_id,
            sha: row.opt_text("pr_sha"),
            git_ref: row.opt_text("pr_ref"),
            base: row.opt_text("pr_base"),
            html_url: row.opt_text("pr_html_url"),
        }),
        _ => None,
    };
    Ok(StepRecord {
        id: row
            .opt_text("step_id")
            .and_then(|s| StepId::parse(&s))
            .ok_or_else(|| StoreError::Row("step id".into()))?,
        kind: row
            .opt_text("kind")
            .and_then(|k| StepKind::parse(&k))
            .ok_or_else(|| StoreError::Row("step kind".into()))?,
        status: row
            .opt_text("status")
            .and_then(|s| StepStatus::parse(&s))
            .ok_or_else(|| StoreError::Row("step status".into()))?,
        repository: row.opt_text("repository"),
        pr,
        merged_sha: row.opt_text("merged_sha"),
        workflow_path: row.opt_text("workflow_path"),
        run: parsed(&row, "run")?,
        error: row.opt_text("error"),
        attempts: row.opt_int("attempts").unwrap_or(0),
        claimed_at: row.opt_int("claimed_at"),
        due_at: row.opt_int("due_at"),
        waiting_since: row.opt_int("waiting_since"),
        deadline: row.opt_int("deadline"),
        events: parsed(&row, "events")?.unwrap_or_default(),
        updated_at: row.opt_int("updated_at").unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orchestrate::definition::{default_create_service, OrchestrateConfig};
    use crate::testing::{block_on, SqliteSql};

    fn config() -> OrchestrateConfig {
        OrchestrateConfig::from_lookup(|k| match k {
            "ORCHESTRATE_OWNER" => Some("acme".into()),
            "SERVICE_TEMPLATES" => Some("api=template-api".into()),
            _ => None,
        })
        .expect("valid config")
    }

    #[test]
    fn one_live_workflow_per_name_and_moves_only_forward() {
        let sql = SqliteSql::migrated();
        let store = WorkflowStore::new(&sql);
        let def = default_create_service(&config());
        let now = Timestamp::from_millis(1_000);
        let input = serde_json::json!({});
        let id = block_on(store.create("pay", "create_service", &def, &input, now))
            .expect("db")
            .expect("created");
        assert_eq!(
            block_on(store.create("pay", "create_service", &def, &input, now)).expect("db"),
            None,
            "a second live workflow of the same name"
        );
        let step = StepId::parse("infra_pr").expect("id");
        let claims = StepClaims::new(0);
        let claimed = block_on(store.claim(id, &step, now, claims))
            .expect("db")
            .expect("claimed");
        assert_eq!((claimed.status, claimed.attempts), (StepStatus::Running, 1));
        assert!(
            block_on(store.claim(id, &step, now, claims))
                .expect("db")
                .is_none(),
            "held by the first claim"
        );
        let merged = Move::to(StepStatus::Merged);
        assert!(block_on(store.advance(id, &step, &merged, now)).expect("db"));
        let late = Move::to(StepStatus::Raised);
        assert!(!block_on(store.advance(id, &step, &late, now)).expect("db"));
        let wf = block_on(store.get(id)).expect("db").expect("exists");
        assert_eq!(wf.steps[0].status, StepStatus::Merged);
        assert_eq!(wf.steps[0].repository.as_deref(), Some("acme/infra"));
        assert_eq!(wf.steps.len(), def.steps.len());

        assert!(block_on(store.finish(id, WorkflowStatus::Failed, Some("x"), now)).expect("db"));
        let wf = block_on(store.get_by_name("pay"))
            .expect("db")
            .expect("exists");
        assert_eq!(wf.status, WorkflowStatus::Failed);
        assert!(wf.steps[1..]
            .iter()
            .all(|s| s.status == StepStatus::Skipped));
        // The name is free again once the workflow has ended.
        assert!(
            block_on(store.create("pay", "create_service", &def, &input, now))
                .expect("db")
                .is_some()
        );
    }
}
