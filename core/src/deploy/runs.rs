//! Correlating GitHub workflow runs with the deploy steps waiting for them: by run
//! id when the dispatch returned one, else by repository and head sha, and then only
//! a run of the target's own workflow created at or after the dispatch ([`decides`]),
//! so another workflow's run on the same commit (a lint run) or an older run of the
//! same workflow (a revert's commit was deployed before) decides nothing. A run that
//! completes before its step starts waiting is found in the delivery log.

use serde_json::json;

use super::StepOutcome;
use crate::github::deliveries::DeliveryStore;
use crate::github::events::WorkflowRunEvent;
use crate::github::RepoFullName;
use crate::ports::{Sql, StoreError};
use crate::time::Timestamp;

/// Runs of one repository and commit looked at per lookup, newest first.
const RUN_CANDIDATES: u32 = 50;

/// Pure: whether `run` is the one an await step waits for (`waiting` is what the
/// step recorded: `{"workflow_run_id", "repository", "head_sha", "workflow",
/// "dispatched_at"}`). With a run id, that run; else a run on the repository and
/// head sha, of the target's workflow, created at or after the dispatch (to the
/// second, GitHub's precision).
pub fn decides(waiting: &serde_json::Value, run: &WorkflowRunEvent) -> bool {
    if let Some(id) = waiting["workflow_run_id"].as_u64() {
        return run.id == id;
    }
    let same_repository = waiting["repository"]
        .as_str()
        .and_then(RepoFullName::parse)
        .is_some_and(|r| r.same_as(&run.repository));
    let same_commit = waiting["head_sha"].as_str() == Some(run.head_sha.as_str());
    let same_workflow = waiting["workflow"]
        .as_str()
        .is_some_and(|w| of_workflow(w, run));
    let dispatched = waiting["dispatched_at"].as_i64();
    let created = run.created_at.as_deref().and_then(Timestamp::parse_rfc3339);
    let after_dispatch = match (dispatched, created) {
        (Some(d), Some(c)) => c.millis() >= d - d.rem_euclid(1000),
        _ => false,
    };
    same_repository && same_commit && same_workflow && after_dispatch
}

/// Whether `run` is of the target's `workflow`: named as the dispatch API takes it,
/// by file name (`deploy.yml`, the run's path `.github/workflows/deploy.yml`), by
/// path, or by numeric id.
fn of_workflow(workflow: &str, run: &WorkflowRunEvent) -> bool {
    if !workflow.is_empty() && workflow.bytes().all(|b| b.is_ascii_digit()) {
        return run.workflow_id.is_some_and(|id| id.to_string() == workflow);
    }
    run.path.as_deref().is_some_and(|path| {
        // A path may carry the ref it ran from (`…/deploy.yml@refs/heads/main`).
        let path = path.split_once('@').map_or(path, |(p, _)| p);
        path == workflow || path.strip_prefix(".github/workflows/") == Some(workflow)
    })
}

/// The newest completed run that [`decides`] what an await step waits for.
pub async fn find_completed_run<S: Sql>(
    sql: S,
    waiting: &serde_json::Value,
) -> Result<Option<WorkflowRunEvent>, StoreError> {
    let candidates = DeliveryStore::new(sql)
        .completed_runs(
            waiting["workflow_run_id"].as_u64(),
            waiting["repository"].as_str(),
            waiting["head_sha"].as_str(),
            RUN_CANDIDATES,
        )
        .await?;
    Ok(candidates.into_iter().find(|run| decides(waiting, run)))
}

/// A completed run decides its step: success continues, anything else fails.
pub fn outcome_of(run: &WorkflowRunEvent) -> StepOutcome {
    let result = json!({
        "workflow_run_id": run.id,
        "name": run.name,
        "path": run.path,
        "html_url": run.html_url,
        "conclusion": run.conclusion,
        "head_sha": run.head_sha.as_str(),
    });
    match run.conclusion.as_deref() {
        Some("success") => StepOutcome::Done(result),
        other => StepOutcome::Failed(format!(
            "workflow run {} concluded {}",
            run.id,
            other.unwrap_or("without a conclusion")
        )),
    }
}

/// Await steps that `run` [`decides`]: made claimable again so their next run
/// finds it. Returns (job, position) of each, to enqueue.
pub async fn wake_waiting_steps<S: Sql>(
    sql: S,
    run: &WorkflowRunEvent,
    now: Timestamp,
) -> Result<Vec<(i64, i64)>, StoreError> {
    let rows = sql
        .query(
            "SELECT job_id, position, result FROM deploy_steps \
             WHERE state = 'started' AND name IN ('await_result', 'revert_await') \
             AND json_extract(result, '$.waiting_for') = 'workflow_run' \
             AND (json_extract(result, '$.workflow_run_id') = ?1 \
               OR (json_extract(result, '$.workflow_run_id') IS NULL \
                   AND lower(json_extract(result, '$.repository')) = lower(?2) \
                   AND json_extract(result, '$.head_sha') = ?3)) \
             AND job_id IN (SELECT id FROM deploy_jobs WHERE status IN ('processing', 'reverting'))",
            &[
                i64::try_from(run.id).unwrap_or(i64::MAX).into(),
                run.repository.as_str().into(),
                run.head_sha.as_str().into(),
            ],
        )
        .await?;
    let mut woken = Vec::new();
    for row in &rows {
        let (Some(job_id), Some(position)) = (
            row.get("job_id").and_then(|v| v.as_i64()),
            row.get("position").and_then(|v| v.as_i64()),
        ) else {
            continue;
        };
        let waiting = row
            .get("result")
            .and_then(|v| v.as_str())
            .and_then(|r| crate::json::value(r).ok())
            .unwrap_or_default();
        if !decides(&waiting, run) {
            continue;
        }
        let done = sql
            .execute(
                "UPDATE deploy_steps SET state = 'pending', claimed_at = NULL, due_at = NULL, updated_at = ?3 \
                 WHERE job_id = ?1 AND position = ?2 AND state = 'started'",
                &[job_id.into(), position.into(), now.millis().into()],
            )
            .await?;
        if done.changes == 1 {
            woken.push((job_id, position));
        }
    }
    Ok(woken)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::github::CommitSha;

    fn run(path: &str, created_at: &str) -> WorkflowRunEvent {
        WorkflowRunEvent {
            action: "completed".into(),
            repository: RepoFullName::parse("Octo/App").expect("repo"),
            id: 7,
            name: Some("Deploy".into()),
            path: Some(path.into()),
            workflow_id: Some(161_335),
            head_sha: CommitSha::parse(&"a".repeat(40)).expect("sha"),
            head_branch: Some("main".into()),
            status: Some("completed".into()),
            conclusion: Some("failure".into()),
            html_url: None,
            created_at: Some(created_at.into()),
            updated_at: None,
            installation_id: None,
        }
    }

    #[test]
    fn only_a_run_of_the_targets_workflow_created_after_the_dispatch_decides() {
        let dispatched = Timestamp::parse_rfc3339("2025-01-15T10:30:00.700Z").expect("time");
        let waiting = |workflow: &str| {
            json!({"waiting_for": "workflow_run", "workflow_run_id": null, "repository": "octo/app",
                   "head_sha": "a".repeat(40), "workflow": workflow, "dispatched_at": dispatched.millis()})
        };
        let deploy = waiting("deploy.yml");
        let ours = ".github/workflows/deploy.yml";
        assert!(decides(&deploy, &run(ours, "2025-01-15T10:30:05Z")));
        assert!(
            decides(&deploy, &run(ours, "2025-01-15T10:30:00Z")),
            "the dispatch's own second"
        );
        assert!(decides(
            &deploy,
            &run(&format!("{ours}@refs/heads/main"), "2025-01-15T10:31:00Z")
        ));
        assert!(
            !decides(
                &deploy,
                &run(".github/workflows/ci.yml", "2025-01-15T10:30:05Z")
            ),
            "another workflow's run on the same commit"
        );
        assert!(
            !decides(
                &deploy,
                &run(".github/workflows/predeploy.yml", "2025-01-15T10:30:05Z")
            ),
            "a name that merely ends the same"
        );
        assert!(
            !decides(&deploy, &run(ours, "2025-01-15T10:29:59Z")),
            "a run from before the dispatch (the commit deployed earlier)"
        );
        assert!(!decides(&deploy, &run(ours, "yesterday")));
        let mut undated = run(ours, "");
        undated.created_at = None;
        assert!(!decides(&deploy, &undated), "no date, no proof");
        let mut elsewhere = run(ours, "2025-01-15T10:30:05Z");
        elsewhere.head_sha = CommitSha::parse(&"b".repeat(40)).expect("sha");
        assert!(!decides(&deploy, &elsewhere));
        assert!(decides(
            &waiting(".github/workflows/deploy.yml"),
            &run(ours, "2025-01-15T10:30:05Z")
        ));
        assert!(
            decides(&waiting("161335"), &run(ours, "2025-01-15T10:30:05Z")),
            "a workflow named by id"
        );
        assert!(!decides(
            &waiting("161336"),
            &run(ours, "2025-01-15T10:30:05Z")
        ));
        // With the run id from the dispatch, that run and no other.
        let by_id = json!({"workflow_run_id": 7});
        assert!(decides(
            &by_id,
            &run(".github/workflows/ci.yml", "2020-01-01T00:00:00Z")
        ));
        assert!(!decides(
            &json!({"workflow_run_id": 8}),
            &run(ours, "2025-01-15T10:30:05Z")
        ));
    }
}
