//! The Telegram message of a deploy job: one per job, edited in place as it moves,
//! and the buttons it offers as it moves ([`buttons`]).

use super::approval::{gate, Approval};
use super::store::{Job, Standing};
use super::{JobKind, JobStatus, StepState};
use crate::chatops::Action;
use crate::telegram::escape_html;
use crate::time::Timestamp;

/// What job `id` offers from chat now, given where it stands among its app's
/// jobs: Cancel while it waits or runs; Roll back when it is the app's latest
/// (nothing newer but cancelled jobs) and finalized, with an earlier finalized
/// commit to go back to; Retry when it is the latest and failed or was reverted.
pub fn buttons(id: i64, standing: &Standing) -> Vec<Action> {
    let latest = standing.newest == Some(id);
    match standing.status {
        JobStatus::Processing if standing.awaiting => vec![Action::Approve, Action::Reject],
        JobStatus::Waiting | JobStatus::Processing => vec![Action::Cancel],
        JobStatus::Finalized if latest && standing.previous.is_some() => vec![Action::Rollback],
        JobStatus::Failed | JobStatus::Reverted if latest => vec![Action::Retry],
        _ => Vec::new(),
    }
}

pub(super) fn status_icon(s: JobStatus) -> &'static str {
    match s {
        JobStatus::Waiting => "🕒",
        JobStatus::Processing => "🚀",
        JobStatus::Finalized => "✅",
        JobStatus::Failed => "❌",
        JobStatus::Reverting => "↩️",
        JobStatus::Reverted => "↩️",
        JobStatus::Cancelled => "🚫",
    }
}

fn step_icon(s: StepState) -> &'static str {
    match s {
        StepState::Pending => "⏳",
        StepState::Started => "🔄",
        StepState::Done => "✅",
        StepState::Failed => "❌",
        StepState::Skipped => "➖",
    }
}

/// The job's status as its message and its template's `status` show it: a job
/// waiting for a decision is `awaiting_approval` (it is `processing` in the API).
pub fn status(job: &Job) -> &'static str {
    if gate::is_awaiting(job) {
        "awaiting_approval"
    } else {
        job.status.as_str()
    }
}

/// The approval's line, if the job has one worth a line.
fn approval_line(job: &Job) -> Option<String> {
    let text = match gate::of(job)? {
        Approval::Required => "needed once it starts".to_owned(),
        Approval::Awaiting { deadline: Some(d) } => format!(
            "awaiting approval until {}",
            Timestamp::from_millis(d).to_human()
        ),
        Approval::Awaiting { deadline: None } => "awaiting approval".to_owned(),
        Approval::Approved { by, .. } => format!("approved by {}", escape_html(&by)),
        Approval::Rejected { by, .. } => format!("rejected by {}", escape_html(&by)),
        Approval::TimedOut { .. } => gate::TIMED_OUT.to_owned(),
        Approval::Cancelled | Approval::Failed { .. } => return None,
    };
    Some(format!("<b>Approval:</b> {text}\n"))
}

/// HTML for Telegram; every value from outside is escaped. With `PUBLIC_URL` set
/// (`public_url`) the message ends with a link to the job's page; without it, it
/// is as it always was.
pub fn render(job: &Job, public_url: Option<&str>) -> String {
    let icon = if gate::is_awaiting(job) {
        "⏸"
    } else {
        status_icon(job.status)
    };
    let mut out = format!(
        "<b>{} {} {} → {}</b>\n",
        icon,
        match job.kind {
            JobKind::Rollback => "Rollback",
            JobKind::Deploy | JobKind::Retry => "Deploy",
        },
        escape_html(&job.app),
        escape_html(&job.environment)
    );
    if let (Some(source), Some(by)) = (job.source_job, &job.requested_by) {
        let what = match job.kind {
            JobKind::Retry => "Retry of",
            JobKind::Rollback | JobKind::Deploy => "Rolls back",
        };
        out.push_str(&format!(
            "<b>{what}</b> job {source}, asked by {}\n",
            escape_html(by)
        ));
    }
    let short = &job.sha[..job.sha.len().min(7)];
    let subject = job
        .commits
        .iter()
        .find(|c| c.id.as_str() == job.sha)
        .or(job.commits.last())
        .map(|c| c.subject.clone())
        .unwrap_or_default();
    out.push_str(&format!(
        "<b>Commit:</b> <code>{short}</code> {}",
        escape_html(&subject)
    ));
    if job.commits.len() > 1 {
        out.push_str(&format!(" (+{} more)", job.commits.len() - 1));
    }
    out.push('\n');
    if let Some(p) = &job.pusher {
        out.push_str(&format!("<b>By:</b> {}\n", escape_html(p)));
    }
    out.push_str(&format!(
        "<b>Status:</b> {}\n",
        status(job).replace('_', " ")
    ));
    out.extend(approval_line(job));
    if let Some(sha) = &job.revert_sha {
        out.push_str(&format!(
            "<b>Reverting to:</b> <code>{}</code>\n",
            escape_html(&sha[..sha.len().min(7)])
        ));
    }
    if let Some(e) = &job.error {
        let e: String = e.chars().take(500).collect();
        out.push_str(&format!("<b>Error:</b> {}\n", escape_html(&e)));
    }
    // A decision on the job's approval is said once, by its approval line.
    let approval = |e: &&crate::audit::Entry| matches!(e.action.as_str(), "approve" | "reject");
    for said in job
        .actions
        .iter()
        .filter(|e| !approval(e))
        .filter_map(crate::audit::Entry::said)
    {
        out.push_str(&format!("<b>{}</b>\n", escape_html(&said)));
    }
    out.push('\n');
    for s in &job.steps {
        out.push_str(&format!("{} {}\n", step_icon(s.state), s.name.label()));
    }
    let mut out = out.trim_end().to_owned();
    if let Some(u) = public_url {
        out.push_str(&format!(
            "\n\n<a href=\"{}/jobs/{}\">Job page</a>",
            escape_html(u),
            job.id
        ));
    }
    out
}
