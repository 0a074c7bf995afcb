//! What the pages' forms do: a job's Approve, Reject, Roll back and Retry
//! (`POST /jobs/{id}/{action}`), through the very code a Telegram press goes
//! through ([`crate::deploy::chatops::act`]), and a delivery's Replay
//! (`POST /deliveries/{id}/replay`, [`crate::admin::replay`]). The CSRF token is
//! checked by the Worker before these run.
//!
//! A job's form carries the version of the job it was shown with: a form from
//! before the job moved is refused ("this job has moved on"), so a double submit
//! acts once. Each action leaves an audit row naming the viewer, done or refused
//! (a stale form's refusal too).

use super::{job, PageError};
use crate::audit::{AuditStore, Entry, Outcome, SubjectKind};
use crate::chatops::Action;
use crate::deploy::chatops::{act, Acted};
use crate::flow::{Deps, Ports, ProcessError};
use crate::ports::Queue;
use crate::time::Timestamp;
use crate::web::viewer::Viewer;

/// The action a job form's path names (`approve`, `reject`, `rollback`, `retry`).
pub fn job_action(segment: &str) -> Option<Action> {
    match segment {
        "approve" => Some(Action::Approve),
        "reject" => Some(Action::Reject),
        "rollback" => Some(Action::Rollback),
        "retry" => Some(Action::Retry),
        _ => None,
    }
}

const MOVED_ON: &str =
    "This job has moved on since the page was shown. Look at it again before you act.";

/// What an action was done to, as its audit row names it.
struct Subject<'a> {
    kind: SubjectKind,
    id: String,
    action: &'a str,
}

impl Subject<'_> {
    fn job(id: i64, action: Action) -> Subject<'static> {
        Subject {
            kind: SubjectKind::Job,
            id: id.to_string(),
            action: action.as_str(),
        }
    }
}

async fn audit<S: crate::ports::Sql>(
    sql: S,
    subject: &Subject<'_>,
    viewer: &Viewer,
    result: Outcome,
    detail: Option<String>,
    now: Timestamp,
) -> Result<(), PageError> {
    let entry = Entry {
        subject_kind: subject.kind,
        subject_id: subject.id.clone(),
        action: subject.action.to_owned(),
        result,
        detail,
        actor: viewer.name.clone(),
        user_id: None,
        chat_id: None,
        update_id: None,
        at: now.millis(),
    };
    Ok(AuditStore::new(sql).record(&entry).await?)
}

/// Does `action` to job `id` for `viewer`, if the job is still at `version` (what
/// the form was shown with) and offers it; the page to go back to. A viewer who is
/// not an operator is refused, and so is a stale form, each with its audit row.
pub async fn on_job<P: Ports>(
    deps: &Deps<'_, P>,
    viewer: &Viewer,
    id: i64,
    action: Action,
    version: &str,
    now: Timestamp,
) -> Result<String, PageError> {
    let view = job::load(deps.sql, id).await?;
    let back = format!("/jobs/{id}");
    let subject = Subject::job(id, action);
    let refused = |why: &str| {
        audit(
            deps.sql,
            &subject,
            viewer,
            Outcome::Refused,
            Some(why.into()),
            now,
        )
    };
    if !viewer.operator {
        let why = "only an operator may act on a job";
        refused(why).await?;
        return Err(PageError::Forbidden(format!("Not done: {why}.")));
    }
    if view.version != version || !view.offers.contains(&action) {
        refused("the job has moved on since the page was shown").await?;
        return Err(PageError::MovedOn(MOVED_ON.into()));
    }
    // One request per form shown: a second submit of the same form finds the job
    // the first made (a rollback or retry) instead of making another.
    let key = format!("web:{id}:{}:{version}", action.as_str());
    let acted = act(deps, id, action, &viewer.name, &key, now)
        .await
        .map_err(|e: ProcessError| {
            PageError::Store(crate::ports::StoreError::Driver(e.to_string()))
        })?;
    match acted {
        Acted::Done(detail) => {
            audit(deps.sql, &subject, viewer, Outcome::Done, detail, now).await?;
            Ok(back)
        }
        Acted::Refused(why) => {
            refused(&why).await?;
            Err(PageError::MovedOn(format!("Not done: {why}.")))
        }
    }
}

/// Replays GitHub delivery `id` from the deliveries page for `viewer`, as the
/// admin API does, if it is still at `version` (its `updated_at` as the page showed
/// it): a second submit of the form, or a stale tab, replays nothing ("this
/// delivery has moved on"). The page to go back to. A viewer who is not an operator
/// is refused; each outcome leaves an audit row.
pub async fn replay<S: crate::ports::Sql + Copy, Q: Queue>(
    sql: S,
    queue: &Q,
    viewer: &Viewer,
    id: &str,
    version: &str,
    now: Timestamp,
) -> Result<String, PageError> {
    let subject = Subject {
        kind: SubjectKind::Delivery,
        id: id.to_owned(),
        action: "replay",
    };
    let refused = |why: &str| {
        audit(
            sql,
            &subject,
            viewer,
            Outcome::Refused,
            Some(why.into()),
            now,
        )
    };
    if !viewer.operator {
        let why = "only an operator may replay a delivery";
        refused(why).await?;
        return Err(PageError::Forbidden(format!("Not done: {why}.")));
    }
    let seen = version
        .parse::<i64>()
        .map_err(|_| PageError::BadRequest("The form's version is not a number.".into()))?;
    let replayed = crate::admin::replay_seen(sql, queue, id, Some(seen), now)
        .await
        .map_err(super::deliveries::log_error)?;
    if !replayed {
        refused("the delivery has moved on since the page was shown").await?;
        return Err(PageError::MovedOn(REPLAY_MOVED_ON.into()));
    }
    audit(sql, &subject, viewer, Outcome::Done, None, now).await?;
    Ok("/deliveries?replayed=1".to_owned())
}

const REPLAY_MOVED_ON: &str = "This delivery has moved on since the page was shown (it was \
     replayed or processed again). Look at it again before you replay it.";
