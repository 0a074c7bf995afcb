//! The Telegram message of a deploy job: one per job, edited in place as it moves.

use super::store::Job;
use super::{JobStatus, StepState};
use crate::telegram::escape_html;

fn status_icon(s: JobStatus) -> &'static str {
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

/// HTML for Telegram; every value from outside is escaped.
pub fn render(job: &Job) -> String {
    let mut out = format!(
        "<b>{} Deploy {} → {}</b>\n",
        status_icon(job.status),
        escape_html(&job.app),
        escape_html(&job.environment)
    );
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
    out.push_str(&format!("<b>Status:</b> {}\n", job.status.as_str()));
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
    out.push('\n');
    for s in &job.steps {
        out.push_str(&format!("{} {}\n", step_icon(s.state), s.name.label()));
    }
    out.trim_end().to_owned()
}
