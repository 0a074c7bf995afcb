//! Correlating GitHub workflow runs with the deploy steps waiting for them: by run
//! id when the dispatch returned one, else by repository and head sha. A run that
//! completes before its step starts waiting is found in the delivery log.

use serde_json::json;

use super::pipeline::StepOutcome;
use crate::github::deliveries::DeliveryStore;
use crate::github::events::WorkflowRunEvent;
use crate::ports::{Sql, StoreError};
use crate::time::Timestamp;

/// The newest completed run matching what an await step waits for
/// (`{"workflow_run_id", "repository", "head_sha"}`).
pub async fn find_completed_run<S: Sql>(
    sql: S,
    waiting: &serde_json::Value,
) -> Result<Option<WorkflowRunEvent>, StoreError> {
    DeliveryStore::new(sql)
        .completed_run(
            waiting["workflow_run_id"].as_u64(),
            waiting["repository"].as_str(),
            waiting["head_sha"].as_str(),
        )
        .await
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

/// Await steps waiting for `run`: made claimable again so their next run finds it.
/// Returns (job, position) of each, to enqueue.
pub async fn wake_waiting_steps<S: Sql>(
    sql: S,
    run: &WorkflowRunEvent,
    now: Timestamp,
) -> Result<Vec<(i64, i64)>, StoreError> {
    let rows = sql
        .query(
            "UPDATE deploy_steps SET state = 'pending', claimed_at = NULL, due_at = NULL, updated_at = ?4 \
             WHERE state = 'started' AND name IN ('await_result', 'revert_await') \
             AND json_extract(result, '$.waiting_for') = 'workflow_run' \
             AND (json_extract(result, '$.workflow_run_id') = ?1 \
               OR (json_extract(result, '$.workflow_run_id') IS NULL \
                   AND lower(json_extract(result, '$.repository')) = lower(?2) \
                   AND json_extract(result, '$.head_sha') = ?3)) \
             AND job_id IN (SELECT id FROM deploy_jobs WHERE status IN ('processing', 'reverting')) \
             RETURNING job_id, position",
            &[
                i64::try_from(run.id).unwrap_or(i64::MAX).into(),
                run.repository.as_str().into(),
                run.head_sha.as_str().into(),
                now.millis().into(),
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| Some((r.get("job_id")?.as_i64()?, r.get("position")?.as_i64()?)))
        .collect())
}
