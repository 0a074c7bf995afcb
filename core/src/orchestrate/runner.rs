//! The effects: creating a workflow from an admin request, running one step per
//! queue message, applying webhook events, the cron's timeouts and recovery, and
//! the Telegram message. What to do is decided by the pure functions in the parent
//! module; this file performs it.
//!
//! After every change, [`settle`] looks at the whole workflow again: it completes
//! waits whose event has come, ends the workflow (a failed step fails it and skips
//! what has not run), or names the steps now ready, which the caller enqueues
//! (`JobMessage::WorkflowStep`). Enqueuing a step twice is harmless: only one claim
//! of it succeeds.

use super::definition::{
    Action, OrchestrateConfig, ServiceRequest, StepDef, DEFAULT_WAIT_TIMEOUT_MINUTES,
};
use super::github::AutoMerge;
use super::store::{EventRecord, Workflow, WorkflowStore};
use super::{
    deps_done, derived_moves, pr_move, progress, run_move, timed_out, Move, Progress, StepRef,
    StepStatus, WorkflowStatus,
};
use crate::config::Config;
use crate::error::ApiError;
use crate::flow::{Verdict, MAX_STEP_ATTEMPTS};
use crate::github::client::{GithubClient, GithubConfig, GithubError};
use crate::github::deliveries::DeliveryId;
use crate::github::events::GithubEvent;
use crate::github::RepoFullName;
use crate::live::Live;
use crate::ports::Queue;
use crate::ports::{Http, Sql, StoreError};
use crate::retry::{backoff_seconds, seconds_until, StepClaims};
use crate::routes::{Outcome, Source};
use crate::template::{Field, Values};
use crate::time::Timestamp;

/// The `kind` of workflows made by `POST /api/services`.
pub const CREATE_SERVICE: &str = "create_service";
/// Steps, workflows and kept events handled per cron run; the rest wait for the next.
pub const SWEEP_BATCH: u32 = 50;
/// Events kept for later are forgotten after this long: every wait times out well
/// before (`ORCHESTRATE_WAIT_TIMEOUT_MINUTES`).
pub const EARLY_EVENT_RETENTION_SECONDS: i64 = 7 * 24 * 3600;

/// An admin API failure: a caller's mistake, a duplicate, or storage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Api(#[from] ApiError),
    /// A workflow for this name is running (409).
    #[error("a workflow for {0} is already running")]
    Conflict(String),
    /// The detail is for the log; the caller sees a fixed 503.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AdminError {
    pub fn status(&self) -> u16 {
        match self {
            AdminError::Api(e) => e.status(),
            AdminError::Conflict(_) => 409,
            AdminError::Store(_) => ApiError::Unavailable.status(),
        }
    }

    /// The JSON body of the error response.
    pub fn body(&self) -> String {
        match self {
            AdminError::Api(e) => e.body(),
            AdminError::Conflict(_) => crate::json::text(
                &serde_json::json!({ "success": false, "error": self.to_string() }),
            ),
            AdminError::Store(_) => ApiError::Unavailable.body(),
        }
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Api(e) => e,
            AdminError::Conflict(_) => ApiError::Conflict(e.to_string()),
            AdminError::Store(_) => ApiError::Unavailable,
        }
    }
}

/// A workflow just created, and its first steps to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct Created {
    pub workflow: Workflow,
    pub ready: Vec<StepRef>,
}

/// `POST /api/services`: validates the request and starts its workflow.
pub async fn create_service<S: Sql>(
    sql: S,
    config: &OrchestrateConfig,
    body: &[u8],
    now: Timestamp,
) -> Result<Created, AdminError> {
    let request = ServiceRequest::parse(body, config).map_err(ApiError::from)?;
    let definition = config
        .definition()
        .render(&request.vars(config), config.wait_timeout_minutes);
    // The name and team are validated to be safe in paths and branch names, so
    // this only fails for a configured definition that needs more.
    definition.validate().map_err(|e| {
        ApiError::BadRequest(format!("repositoryName: makes an invalid workflow: {e}"))
    })?;
    let input = serde_json::to_value(&request).map_err(StoreError::encode)?;
    let store = WorkflowStore::new(&sql);
    let name = request.repository_name.as_str();
    let id = store
        .create(name, CREATE_SERVICE, &definition, &input, now)
        .await?
        .ok_or_else(|| AdminError::Conflict(name.to_owned()))?;
    let workflow = store
        .get(id)
        .await?
        .ok_or_else(|| StoreError::Row(format!("workflow {id} vanished")))?;
    let ready = match progress(&workflow.definition, &workflow.steps) {
        Progress::Continue(ready) => refs(id, ready),
        _ => Vec::new(),
    };
    Ok(Created { workflow, ready })
}

/// `GET /api/services/{name}`: the newest workflow for the name, with its steps.
pub async fn get_service<S: Sql>(sql: S, name: &str) -> Result<Workflow, AdminError> {
    WorkflowStore::new(&sql)
        .get_by_name(name)
        .await?
        .ok_or(AdminError::Api(ApiError::NotFound))
}

/// `GET /api/services`: workflows newest first, without their steps.
pub async fn list_services<S: Sql>(
    sql: S,
    status: Option<WorkflowStatus>,
    limit: u32,
) -> Result<Vec<Workflow>, AdminError> {
    Ok(WorkflowStore::new(&sql).list(status, limit).await?)
}

/// A page of workflows for `GET /api/services?before=`: newest first, below
/// `bound`.
pub async fn page_services<S: Sql>(
    sql: S,
    status: Option<WorkflowStatus>,
    bound: &crate::cursor::Bound,
    limit: u32,
) -> Result<Vec<Workflow>, AdminError> {
    Ok(WorkflowStore::new(&sql).page(status, bound, limit).await?)
}

fn refs(workflow_id: i64, steps: Vec<super::definition::StepId>) -> Vec<StepRef> {
    steps
        .into_iter()
        .map(|step| StepRef { workflow_id, step })
        .collect()
}

/// What a change left to do: steps to enqueue, workflows whose message to update.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Effects {
    pub ready: Vec<StepRef>,
    /// Workflows that changed (announce them).
    pub changed: Vec<i64>,
    /// For the log.
    pub log: Vec<String>,
}

impl Effects {
    fn add(&mut self, workflow_id: i64, ready: Vec<StepRef>) {
        if !self.changed.contains(&workflow_id) {
            self.changed.push(workflow_id);
        }
        for r in ready {
            if !self.ready.contains(&r) {
                self.ready.push(r);
            }
        }
    }
}

/// Looks at a workflow after a change: completes waits whose event has come, ends
/// it when it has succeeded or failed, else returns the steps now ready.
async fn settle<S: Sql>(
    store: &WorkflowStore<S>,
    id: i64,
    now: Timestamp,
) -> Result<Vec<StepRef>, StoreError> {
    let Some(mut wf) = store.get(id).await? else {
        return Ok(Vec::new());
    };
    if wf.status != WorkflowStatus::Running {
        return Ok(Vec::new());
    }
    let derived = derived_moves(&wf.definition, &wf.steps);
    if !derived.is_empty() {
        for (step, mv) in &derived {
            store.advance(id, step, mv, now).await?;
        }
        if let Some(again) = store.get(id).await? {
            wf = again;
        }
    }
    match progress(&wf.definition, &wf.steps) {
        Progress::Continue(ready) => Ok(refs(id, ready)),
        Progress::Succeeded => {
            store
                .finish(id, WorkflowStatus::Succeeded, None, now)
                .await?;
            Ok(Vec::new())
        }
        Progress::Failed(error) => {
            store
                .finish(id, WorkflowStatus::Failed, Some(&error), now)
                .await?;
            Ok(Vec::new())
        }
    }
}

/// Applies one event to the steps it concerns. Returns whether any step of a
/// running workflow matched (else it may be early), and the workflows moved.
async fn apply_one<S: Sql>(
    store: &WorkflowStore<S>,
    delivery: &DeliveryId,
    event: &GithubEvent,
    now: Timestamp,
) -> Result<(bool, Vec<i64>), StoreError> {
    let record = |source: &str, detail: String| EventRecord {
        source: source.to_owned(),
        delivery: Some(delivery.as_str().to_owned()),
        at: now.millis(),
        detail,
    };
    let (found, source, detail) = match event {
        GithubEvent::PullRequest(ev) if ev.action == "closed" => {
            let found = store
                .pr_steps(ev.repository.as_str(), ev.number, &ev.node_id)
                .await?;
            let detail = match (&ev.merged, &ev.merge_commit_sha) {
                (true, Some(sha)) => format!("PR #{} merged as {}", ev.number, sha.short()),
                _ => format!("PR #{} closed without merging", ev.number),
            };
            (found, "pull_request", detail)
        }
        GithubEvent::WorkflowRun(ev) if ev.action == "completed" => {
            let Some(path) = ev.path.as_deref() else {
                return Ok((false, Vec::new()));
            };
            let found = store
                .run_steps(ev.repository.as_str(), ev.head_sha.as_str(), path)
                .await?;
            let detail = format!(
                "run {} of {path} on {} completed: {}",
                ev.id,
                ev.head_sha.short(),
                ev.conclusion.as_deref().unwrap_or("no conclusion")
            );
            (found, "workflow_run", detail)
        }
        // Nothing a workflow waits for.
        _ => return Ok((true, Vec::new())),
    };
    let mut moved = Vec::new();
    for (id, step_id) in &found {
        let Some(wf) = store.get(*id).await? else {
            continue;
        };
        let Some(step) = wf.steps.iter().find(|s| &s.id == step_id) else {
            continue;
        };
        let mv = match event {
            GithubEvent::PullRequest(ev) => pr_move(step, ev, record(source, detail.clone())),
            GithubEvent::WorkflowRun(ev) => run_move(step, ev, record(source, detail.clone())),
            _ => None,
        };
        if let Some(mv) = mv {
            // A duplicate or late event is refused here (forward only).
            if store.advance(*id, step_id, &mv, now).await? && !moved.contains(id) {
                moved.push(*id);
            }
        }
    }
    Ok((!found.is_empty(), moved))
}

/// Applies kept events that a step now matches (of one workflow, or any).
async fn consume_early<S: Sql>(
    store: &WorkflowStore<S>,
    workflow_id: Option<i64>,
    now: Timestamp,
) -> Result<Vec<i64>, StoreError> {
    let mut moved = Vec::new();
    for (delivery, event) in store.matchable_early(workflow_id, SWEEP_BATCH).await? {
        let (_, m) = apply_one(store, &delivery, &event, now).await?;
        store.mark_matched(&delivery, now).await?;
        moved.extend(
            m.into_iter()
                .filter(|id| !moved.contains(id))
                .collect::<Vec<_>>(),
        );
    }
    Ok(moved)
}

/// Applies a webhook event (a PR closed, a workflow run completed) to the running
/// workflows it concerns. An event no step is ready for yet is kept and applied
/// when the state catches up; a duplicate changes nothing.
pub async fn apply_event<S: Sql>(
    sql: S,
    delivery: &DeliveryId,
    event: &GithubEvent,
    now: Timestamp,
) -> Result<Effects, StoreError> {
    let store = WorkflowStore::new(&sql);
    let mut effects = Effects::default();
    let (matched, moved) = apply_one(&store, delivery, event, now).await?;
    if !matched && store.keep_early(delivery, event, now).await? {
        effects
            .log
            .push(format!("delivery {}: kept for later", delivery.as_str()));
    }
    for id in moved {
        let ready = settle(&store, id, now).await?;
        effects.add(id, ready);
    }
    Ok(effects)
}

#[derive(Debug, Clone, PartialEq)]
pub struct StepRun {
    pub verdict: Verdict,
    /// Steps to enqueue.
    pub next: Vec<StepRef>,
    pub log: String,
}

/// How one attempt at a step went.
struct Done {
    mv: Move,
    /// A move of another step that goes with it (a PR step mirroring auto-merge).
    also: Option<(super::definition::StepId, Move)>,
    note: String,
}

/// Runs workflow steps against GitHub (the caller announces each change in
/// Telegram, [`announce`]).
pub struct Runner<'a, H, S> {
    pub http: &'a H,
    pub sql: S,
    pub github: &'a GithubConfig,
    /// When a step may be claimed (`STEP_STALE_SECONDS`).
    pub claims: StepClaims,
}

impl<H: Http, S: Sql> Runner<'_, H, S> {
    /// Runs one step once (a `WorkflowStep` queue message).
    pub async fn run_step(&self, r: &StepRef, now: Timestamp) -> StepRun {
        match self.try_run(r, now).await {
            Ok(run) => run,
            // The database failed: retry the message; the claim makes that safe.
            Err(e) => StepRun {
                verdict: Verdict::Retry {
                    delay_seconds: backoff_seconds(1),
                },
                next: Vec::new(),
                log: format!("workflow {} {}: {e}", r.workflow_id, r.step.as_str()),
            },
        }
    }

    async fn try_run(&self, r: &StepRef, now: Timestamp) -> Result<StepRun, StoreError> {
        let store = WorkflowStore::new(&self.sql);
        let (id, step_id) = (r.workflow_id, &r.step);
        let prefix = format!("workflow {id} {}", step_id.as_str());
        let ack = |why: &str| {
            Ok(StepRun {
                verdict: Verdict::Ack,
                next: Vec::new(),
                log: format!("{prefix}: {why}"),
            })
        };
        let Some(wf) = store.get(id).await? else {
            return ack("no such workflow");
        };
        if wf.status != WorkflowStatus::Running {
            return ack(wf.status.as_str());
        }
        let Some(def) = wf.definition.step(step_id) else {
            return ack("no such step");
        };
        if !deps_done(def, &wf.steps) {
            return ack("not ready");
        }
        let Some(claimed) = store.claim(id, step_id, now, self.claims).await? else {
            // A retry's message that came before its time goes back to wait for it.
            let due = wf
                .steps
                .iter()
                .find(|s| {
                    &s.id == step_id && s.status == StepStatus::Running && s.claimed_at.is_none()
                })
                .and_then(|s| self.claims.claimable_at(s.clock(), now));
            if let Some(due) = due {
                return Ok(StepRun {
                    verdict: Verdict::Retry {
                        delay_seconds: seconds_until(due, now),
                    },
                    next: Vec::new(),
                    log: format!("{prefix}: not due yet"),
                });
            }
            return ack("finished or held elsewhere");
        };
        let (verdict, note) = match self.perform(&wf, def, now).await {
            Ok(done) => {
                store.advance(id, step_id, &done.mv, now).await?;
                if let Some((other, mv)) = &done.also {
                    store.advance(id, other, mv, now).await?;
                }
                (Verdict::Ack, done.note)
            }
            Err(e) if e.is_transient() && claimed.attempts < MAX_STEP_ATTEMPTS => {
                let delay_seconds = backoff_seconds(u32::try_from(claimed.attempts).unwrap_or(1));
                let due = now.plus_seconds(i64::from(delay_seconds));
                store.release(id, step_id, &e.to_string(), due, now).await?;
                (Verdict::Retry { delay_seconds }, format!("will retry: {e}"))
            }
            Err(e) => {
                let error = if e.is_transient() {
                    format!("{e} (after {} attempts)", claimed.attempts)
                } else {
                    e.to_string()
                };
                store
                    .advance(id, step_id, &Move::failed(error.clone(), None), now)
                    .await?;
                (Verdict::Ack, format!("failed: {error}"))
            }
        };
        // Events that came before this step could take them (a merge before the PR
        // number was stored, a run before the wait began).
        consume_early(&store, Some(id), now).await?;
        let next = settle(&store, id, now).await?;
        Ok(StepRun {
            verdict,
            next,
            log: format!("{prefix}: {note}"),
        })
    }

    async fn perform(
        &self,
        wf: &Workflow,
        def: &StepDef,
        now: Timestamp,
    ) -> Result<Done, GithubError> {
        let gh = GithubClient::new(self.http, self.github);
        let repo = |r: &str| {
            RepoFullName::parse(r)
                .ok_or_else(|| GithubError::Rejected(format!("{r:?} is not owner/repo")))
        };
        let find = |id: &super::definition::StepId| {
            wf.steps
                .iter()
                .find(|s| &s.id == id)
                .ok_or_else(|| GithubError::Rejected(format!("step {} has no record", id.as_str())))
        };
        let wait = || {
            let minutes = def.timeout_minutes.unwrap_or(DEFAULT_WAIT_TIMEOUT_MINUTES);
            Some((now, now.plus_seconds(i64::from(minutes) * 60)))
        };
        let done = |mv: Move, note: String| Done {
            mv,
            also: None,
            note,
        };
        match &def.action {
            Action::OpenPr {
                repository,
                branch,
                title,
                body,
                files,
            } => {
                let pr = gh
                    .open_pr(&repo(repository)?, branch, title, body, files)
                    .await?;
                let note = format!("raised {repository}#{}", pr.number);
                Ok(done(
                    Move {
                        to: StepStatus::Raised,
                        pr: Some(pr),
                        ..Move::default()
                    },
                    note,
                ))
            }
            Action::EnableAutoMerge { pr, merge_method } => {
                let pr_step = find(pr)?;
                let Some(p) = &pr_step.pr else {
                    return Err(GithubError::Rejected(format!(
                        "step {} raised no PR",
                        pr.as_str()
                    )));
                };
                let note = if pr_step.status == StepStatus::Merged {
                    "the PR is merged already".to_owned()
                } else {
                    match gh.enable_auto_merge(&p.node_id, *merge_method).await? {
                        AutoMerge::Enabled => format!("auto-merge enabled on #{}", p.number),
                        AutoMerge::MergedNow => format!(
                            "#{} had nothing to wait for, so it was merged now",
                            p.number
                        ),
                        AutoMerge::AlreadyMerged => format!("#{} is merged already", p.number),
                    }
                };
                Ok(Done {
                    mv: Move {
                        to: StepStatus::AutoMergeEnabled,
                        pr: Some(p.clone()),
                        ..Move::default()
                    },
                    // The PR's own step shows it too; a merge recorded meanwhile stays.
                    also: Some((pr.clone(), Move::to(StepStatus::AutoMergeEnabled))),
                    note,
                })
            }
            Action::AwaitMerge { pr } => {
                // Completed by `settle` once the PR step records the merge, which
                // may have happened already.
                Ok(done(
                    Move {
                        to: StepStatus::Waiting,
                        pr: find(pr)?.pr.clone(),
                        wait: wait(),
                        ..Move::default()
                    },
                    "waiting for the merge".into(),
                ))
            }
            Action::AwaitWorkflow { merge, workflow } => {
                let merged = find(merge)?;
                let Some(sha) = merged.merged_sha.clone() else {
                    return Err(GithubError::Rejected(format!(
                        "step {} recorded no merge commit",
                        merge.as_str()
                    )));
                };
                let note = format!("waiting for {workflow} on {}", &sha[..sha.len().min(7)]);
                Ok(done(
                    Move {
                        to: StepStatus::Waiting,
                        pr: merged.pr.clone(),
                        merged_sha: Some(sha),
                        wait: wait(),
                        ..Move::default()
                    },
                    note,
                ))
            }
            Action::DispatchWorkflow {
                repository,
                workflow,
                git_ref,
                inputs,
            } => {
                let r = repo(repository)?;
                let git_ref = match git_ref {
                    Some(g) => g.clone(),
                    None => gh.default_branch(&r).await?,
                };
                let run = gh.dispatch(&r, workflow, &git_ref, inputs).await?;
                Ok(done(
                    Move {
                        to: StepStatus::Succeeded,
                        run,
                        ..Move::default()
                    },
                    format!("dispatched {workflow} in {repository} on {git_ref}"),
                ))
            }
        }
    }
}

/// Brings the workflow's Telegram message up to date wherever its routes send it
/// (best effort: a Telegram failure never holds up a workflow). What went wrong, if
/// anything, for the log.
pub async fn announce<S: Sql + Copy, Q: Queue>(
    config: &Config,
    sql: S,
    queue: &Q,
    workflow_id: i64,
    now: Timestamp,
) -> Option<String> {
    config.telegram.as_ref().ok()?;
    let wf = match WorkflowStore::new(&sql).get(workflow_id).await {
        Ok(Some(wf)) => wf,
        Ok(None) => return None,
        Err(e) => return Some(format!("telegram: workflow {workflow_id}: {e}")),
    };
    let outcome = match wf.status {
        WorkflowStatus::Running => Outcome::InProgress,
        WorkflowStatus::Succeeded => Outcome::Success,
        WorkflowStatus::Failed => Outcome::Failure,
    };
    let values = Values::default()
        .with(Field::Project, wf.name.as_str())
        .with(Field::Status, wf.status.as_str())
        .with(Field::Time, now.to_human());
    let live = Live {
        values,
        subject: format!("workflow:{workflow_id}"),
        source: Source::Workflow,
        project: &wf.name,
        environment: None,
        branch: None,
        outcome,
        html: super::message::render(&wf),
        silent: false,
        app_chat: None,
        buttons: Vec::new(),
    };
    crate::live::show(config, sql, queue, &live, now).await
}

/// The cron's part: fails waits past their deadline, applies kept events that now
/// match, re-enqueues steps whose message was lost or whose consumer died, ends
/// workflows stranded between their last step and their status, and forgets old
/// kept events.
pub async fn sweep<S: Sql>(sql: S, claims: StepClaims, now: Timestamp) -> Effects {
    let store = WorkflowStore::new(&sql);
    let mut fx = Effects::default();
    if let Err(e) = sweep_into(&store, claims, now, &mut fx).await {
        fx.log.push(format!("workflow sweep: {e}"));
    }
    fx
}

async fn sweep_into<S: Sql>(
    store: &WorkflowStore<S>,
    claims: StepClaims,
    now: Timestamp,
    fx: &mut Effects,
) -> Result<(), StoreError> {
    for (id, step_id) in store.overdue(now, SWEEP_BATCH).await? {
        let Some(wf) = store.get(id).await? else {
            continue;
        };
        let Some(error) = wf
            .steps
            .iter()
            .find(|s| s.id == step_id)
            .and_then(|s| timed_out(s, now))
        else {
            continue;
        };
        let event = EventRecord {
            source: "timeout".into(),
            delivery: None,
            at: now.millis(),
            detail: error.clone(),
        };
        if store
            .advance(id, &step_id, &Move::failed(error.clone(), Some(event)), now)
            .await?
        {
            fx.log
                .push(format!("workflow {id} {}: {error}", step_id.as_str()));
            let ready = settle(store, id, now).await?;
            fx.add(id, ready);
        }
    }
    for id in consume_early(store, None, now).await? {
        let ready = settle(store, id, now).await?;
        fx.add(id, ready);
    }
    // Untouched this long, a step's message may be lost.
    let cutoff = claims.stale_before(now);
    for id in store.stale(cutoff, SWEEP_BATCH).await? {
        let mut ready = settle(store, id, now).await?;
        let Some(wf) = store.get(id).await? else {
            continue;
        };
        if wf.status != WorkflowStatus::Running {
            fx.log.push(format!(
                "workflow {id}: {} after an interruption",
                wf.status.as_str()
            ));
            fx.add(id, ready);
            continue;
        }
        // A step released for a retry whose message was lost (once its retry is
        // due), or whose consumer died holding it (once the claim is stale).
        for s in &wf.steps {
            let dropped = s.status == StepStatus::Running
                && s.updated_at < cutoff.millis()
                && claims.may_claim(s.clock(), now);
            if dropped {
                ready.push(StepRef {
                    workflow_id: id,
                    step: s.id.clone(),
                });
            }
        }
        for r in ready {
            if !fx.ready.contains(&r) {
                fx.ready.push(r);
            }
        }
    }
    let pruned = store
        .prune_early(now.minus_seconds(EARLY_EVENT_RETENTION_SECONDS))
        .await?;
    if pruned > 0 {
        fx.log.push(format!("forgot {pruned} old kept events"));
    }
    Ok(())
}
