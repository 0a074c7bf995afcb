//! A deploy job's part in chat-ops: whether it still offers an action ([`offers`];
//! what its message offers is [`super::message::buttons`]), what an action does to
//! it ([`act`]: Cancel, Roll back, Retry), bringing its message up to date after a
//! press ([`show`]), and what the commands read (`/status`: [`board`], `/deploys`:
//! [`recent`], `/rollback`: [`rollback_offer`]). `dispatch::telegram` calls these
//! for a subject of kind `job`.

use super::approval::{ApprovalError, Decision};
use super::message::{buttons, status_icon};
use super::pipeline::{notify_job, start_next};
use super::store::{Job, JobStore, Requested, Standing};
use super::{plan, JobKind, JobStatus};
use crate::apps::{App, AppStore, NamedApp};
use crate::chatops::Action;
use crate::flow::{Deps, Ports, ProcessError};
use crate::names::AppName;
use crate::ports::{Sql, StoreError};
use crate::telegram::escape_html;
use crate::time::Timestamp;

/// How many jobs `/deploys` lists.
pub const RECENT_JOBS: u32 = 5;

/// What an action came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acted {
    /// Done; what came of it (`job 14`), if more than the job's own change.
    Done(Option<String>),
    /// Not done, and why (for the audit trail).
    Refused(String),
}

/// The job's app, if it is still registered.
async fn app_of<S: Sql>(sql: S, job: &Job) -> Result<Option<App>, StoreError> {
    let Ok(name) = AppName::parse(&job.app) else {
        return Ok(None);
    };
    Ok(AppStore::new(sql).get(&name).await?.map(|a| a.app))
}

/// What job `id` offers now (nothing when there is no such job), and where it
/// stands.
async fn offered<S: Sql>(sql: S, id: i64) -> Result<(Option<Standing>, Vec<Action>), StoreError> {
    let standing = JobStore::new(sql).standing(id).await?;
    let offer = standing.map(|s| buttons(id, &s)).unwrap_or_default();
    Ok((standing, offer))
}

/// Whether job `id` still offers `action` (a press of a button it no longer offers
/// is answered "This job has moved on").
pub async fn offers<S: Sql>(sql: S, id: i64, action: Action) -> Result<bool, StoreError> {
    Ok(offered(sql, id).await?.1.contains(&action))
}

/// Does `action` to job `id` for `by` (`@alice`), once per `key` (the Telegram
/// update that asked): Cancel moves a waiting or running job to cancelled (its
/// running step finishes; nothing after it runs); Roll back and Retry make a new job
/// (kind `rollback`: the previous finalized job's commit; `retry`: the job's own
/// commit) through the app's own deploy target and start it. The job must still
/// offer the action.
pub async fn act<P: Ports>(
    deps: &Deps<'_, P>,
    id: i64,
    action: Action,
    by: &str,
    key: &str,
    now: Timestamp,
) -> Result<Acted, ProcessError> {
    let moved_on = || Ok(Acted::Refused("the job has moved on".into()));
    let jobs = JobStore::new(deps.sql);
    let (standing, offer) = offered(deps.sql, id).await?;
    let (Some(standing), Some(job)) = (standing, jobs.get(id).await?) else {
        return Ok(Acted::Refused(format!("there is no job {id}")));
    };
    if !offer.contains(&action) {
        // A retried message finds the job it already made: done, not moved on.
        if let Some(made) = made_by(deps.sql, key).await? {
            return Ok(Acted::Done(Some(format!("job {made}"))));
        }
        return moved_on();
    }
    let app = app_of(deps.sql, &job).await?;
    let kind = match action {
        Action::Cancel => {
            if !jobs.set_status(id, JobStatus::Cancelled, None, now).await? {
                return moved_on();
            }
            jobs.skip_pending(id, now).await?;
            let why = format!("Cancelled by {by}");
            super::pipeline::report_failure(deps, &job, app.as_ref(), &why).await;
            start_next(deps, &job.app, &job.environment, now).await?;
            return Ok(Acted::Done(None));
        }
        Action::Rollback => JobKind::Rollback,
        Action::Retry => JobKind::Retry,
        Action::Approve | Action::Reject => {
            let decision = if action == Action::Approve {
                Decision::Approve
            } else {
                Decision::Reject
            };
            return match super::approval::decide(deps, id, decision, by, now).await {
                Ok(d) if d.acted => Ok(Acted::Done(d.problem)),
                Ok(_) => Ok(Acted::Refused(format!(
                    "job {id} was already {}",
                    decision.as_str()
                ))),
                // The database failed: the press's update is tried again.
                Err(ApprovalError::Store { error, .. }) => Err(error.into()),
                Err(e) => Ok(Acted::Refused(e.to_string())),
            };
        }
    };
    let Some(app) = app.filter(|a| a.deploy.is_some()) else {
        return Ok(Acted::Refused(format!("app {} no longer deploys", job.app)));
    };
    let from = match (kind, standing.previous) {
        (JobKind::Rollback, Some(p)) => jobs.get(p).await?,
        (JobKind::Rollback, None) => None,
        _ => Some(job.clone()),
    };
    let Some(from) = from else {
        return moved_on();
    };
    let (made, created) = jobs
        .create_requested(
            &Requested {
                kind,
                from: &from,
                source_job: id,
                installation_id: job.installation_id,
                requested_by: by,
                key,
                steps: &plan(&app),
            },
            now,
        )
        .await?;
    if created {
        let started = start_next(deps, &job.app, &job.environment, now).await?;
        if started != Some(made) {
            notify_job(deps, made, Some(&app), now).await;
        }
    }
    Ok(Acted::Done(Some(format!("job {made}"))))
}

/// The job request `key` made, if it made one.
async fn made_by<S: Sql>(sql: S, key: &str) -> Result<Option<i64>, StoreError> {
    use crate::row::Columns;
    let rows = sql
        .query(
            "SELECT id FROM deploy_jobs WHERE request_key = ?1",
            &[key.into()],
        )
        .await?;
    Ok(rows.first().and_then(|r| r.opt_int("id")))
}

/// Brings job `id`'s message up to date (after a press: its audit line, its
/// buttons); what went wrong, for the log.
pub async fn show<P: Ports>(deps: &Deps<'_, P>, id: i64, now: Timestamp) -> Option<String> {
    let app = match JobStore::new(deps.sql).get(id).await {
        Ok(Some(job)) => app_of(deps.sql, &job).await.ok().flatten(),
        _ => None,
    };
    notify_job(deps, id, app.as_ref(), now).await
}

fn short(sha: &str) -> String {
    sha.chars().take(7).collect()
}

/// A job's subject line: its commit's first line, cut.
fn subject(job: &Job) -> String {
    let head = job
        .commits
        .iter()
        .find(|c| c.id.as_str() == job.sha)
        .or(job.commits.last());
    head.map(|c| crate::text::cut(&c.subject, 60))
        .unwrap_or_default()
}

/// `job 12`, linked to its page (`PUBLIC_URL/jobs/12`) when there is one.
fn job_link(public_url: Option<&str>, id: i64) -> String {
    match public_url {
        Some(u) => format!("<a href=\"{}/jobs/{id}\">job {id}</a>", escape_html(u)),
        None => format!("job {id}"),
    }
}

/// `/status`: each app's production commit and what is running or waiting.
pub async fn board<S: Sql>(
    sql: S,
    apps: &[NamedApp],
    public_url: Option<&str>,
) -> Result<String, StoreError> {
    let jobs = JobStore::new(sql).board().await?;
    let mut out = String::from("<b>Status</b>\n");
    let mut any = false;
    for named in apps {
        let Some(deploy) = &named.app.deploy else {
            continue;
        };
        any = true;
        let mine: Vec<&Job> = jobs
            .iter()
            .filter(|j| j.app == named.name.as_str() && j.environment == deploy.environment)
            .collect();
        out.push_str(&format!(
            "\n<b>{}</b> → {}: ",
            escape_html(named.name.as_str()),
            escape_html(&deploy.environment)
        ));
        match mine.iter().find(|j| j.status == JobStatus::Finalized) {
            Some(j) => out.push_str(&format!(
                "<code>{}</code> {} ({})\n",
                short(&j.sha),
                escape_html(&subject(j)),
                job_link(public_url, j.id)
            )),
            None => out.push_str("nothing deployed yet\n"),
        }
        for j in mine.iter().filter(|j| j.status != JobStatus::Finalized) {
            out.push_str(&format!(
                "  {} {} <code>{}</code> ({})\n",
                status_icon(j.status),
                j.status.as_str(),
                short(&j.sha),
                job_link(public_url, j.id)
            ));
        }
    }
    if !any {
        out.push_str("\nNo app deploys anything yet.");
    }
    Ok(out.trim_end().to_owned())
}

/// `/deploys <app>`: its last [`RECENT_JOBS`] jobs, with links.
pub async fn recent<S: Sql>(
    sql: S,
    app: &AppName,
    public_url: Option<&str>,
) -> Result<String, StoreError> {
    let jobs = JobStore::new(sql)
        .list(Some(app.as_str()), None, RECENT_JOBS)
        .await?;
    let mut out = format!("<b>Last deploys of {}</b>\n", escape_html(app.as_str()));
    if jobs.is_empty() {
        out.push_str("\nNone yet.");
    }
    for j in &jobs {
        out.push_str(&format!(
            "\n{} {} <code>{}</code> {} — {}{}, {}",
            status_icon(j.status),
            job_link(public_url, j.id),
            short(&j.sha),
            escape_html(&subject(j)),
            j.status.as_str(),
            match j.kind {
                JobKind::Deploy => "",
                JobKind::Rollback => " (rollback)",
                JobKind::Retry => " (retry)",
            },
            Timestamp::from_millis(j.updated_at).to_human()
        ));
    }
    Ok(out)
}

/// What `/rollback <app>` can offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollbackOffer {
    /// Roll job `job` (at commit `from`) back to commit `to`.
    Offer {
        job: i64,
        environment: String,
        from: String,
        to: String,
    },
    /// Nothing to offer, and why.
    Nothing(String),
}

/// What `/rollback <app>` offers: the app's latest job, when it is finalized and
/// an earlier finalized commit exists.
pub async fn rollback_offer<S: Sql + Copy>(
    sql: S,
    app: &NamedApp,
) -> Result<RollbackOffer, StoreError> {
    let name = app.name.as_str();
    let Some(deploy) = &app.app.deploy else {
        return Ok(RollbackOffer::Nothing(format!("{name} deploys nothing")));
    };
    let jobs = JobStore::new(sql);
    let latest = jobs
        .list(Some(name), None, 20)
        .await?
        .into_iter()
        .find(|j| j.environment == deploy.environment && j.status != JobStatus::Cancelled);
    let Some(latest) = latest else {
        return Ok(RollbackOffer::Nothing(format!("{name} has no deploy yet")));
    };
    let Some(standing) = jobs.standing(latest.id).await? else {
        return Ok(RollbackOffer::Nothing(format!("{name} has no deploy yet")));
    };
    if !buttons(latest.id, &standing).contains(&Action::Rollback) {
        return Ok(RollbackOffer::Nothing(match latest.status {
            JobStatus::Finalized => format!("{name} has no earlier commit to roll back to"),
            other => format!("{name}'s latest job ({}) is {}", latest.id, other.as_str()),
        }));
    }
    let to = match standing.previous {
        Some(p) => jobs.get(p).await?.map(|j| j.sha),
        None => None,
    };
    Ok(match to {
        Some(to) => RollbackOffer::Offer {
            job: latest.id,
            environment: latest.environment.clone(),
            from: latest.sha.clone(),
            to,
        },
        None => RollbackOffer::Nothing(format!("{name} has no earlier commit to roll back to")),
    })
}

#[cfg(test)]
mod tests;
