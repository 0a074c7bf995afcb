//! The Telegram message of a workflow: one per workflow, edited in place as its
//! steps move.

use super::store::{StepRecord, Workflow};
use super::{StepKind, StepStatus, WorkflowStatus};
use crate::telegram::escape_html;

/// Errors are cut to this many characters: the message must stay far below
/// Telegram's 4096 with a dozen steps listed.
const MAX_ERROR_CHARS: usize = 500;

fn status_icon(s: WorkflowStatus) -> &'static str {
    match s {
        WorkflowStatus::Running => "🛠",
        WorkflowStatus::Succeeded => "✅",
        WorkflowStatus::Failed => "❌",
    }
}

fn step_icon(s: StepStatus) -> &'static str {
    match s {
        StepStatus::Pending => "⏳",
        StepStatus::Running => "🔄",
        StepStatus::Waiting => "⏱",
        StepStatus::Raised => "📬",
        StepStatus::AutoMergeEnabled => "🔁",
        StepStatus::Merged => "🟣",
        StepStatus::Succeeded => "✅",
        StepStatus::Failed => "❌",
        StepStatus::Skipped => "➖",
    }
}

fn link(url: Option<&str>, text: &str) -> String {
    match url {
        Some(u) => format!("<a href=\"{}\">{}</a>", escape_html(u), escape_html(text)),
        None => escape_html(text),
    }
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(7)]
}

/// What a step is about, in a few words, with links.
fn describe(s: &StepRecord) -> String {
    let repo = s.repository.as_deref().unwrap_or("?");
    let pr =
        s.pr.as_ref()
            .map(|p| link(p.html_url.as_deref(), &format!("{repo}#{}", p.number)));
    let run = s
        .run
        .as_ref()
        .map(|r| link(r.html_url.as_deref(), &format!("run {}", r.id)));
    let merged = s
        .merged_sha
        .as_deref()
        .map(|m| format!(" <code>{}</code>", escape_html(short(m))))
        .unwrap_or_default();
    match s.kind {
        StepKind::OpenPr => match pr {
            Some(pr) => format!("PR {pr}{merged}"),
            None => format!("PR in {}", escape_html(repo)),
        },
        StepKind::EnableAutoMerge => {
            format!("Auto-merge {}", pr.unwrap_or_else(|| escape_html(repo)))
        }
        StepKind::AwaitMerge => format!(
            "Merge of {}{merged}",
            pr.unwrap_or_else(|| escape_html(repo))
        ),
        StepKind::AwaitWorkflow => {
            let path = s.workflow_path.as_deref().unwrap_or("workflow");
            let file = path.rsplit('/').next().unwrap_or(path);
            format!(
                "{} in {}{merged}{}",
                escape_html(file),
                escape_html(repo),
                run.map(|r| format!(" ({r})")).unwrap_or_default()
            )
        }
        StepKind::DispatchWorkflow => format!(
            "Dispatch in {}{}",
            escape_html(repo),
            run.map(|r| format!(" ({r})")).unwrap_or_default()
        ),
    }
}

/// HTML for Telegram; every value from outside is escaped.
pub fn render(wf: &Workflow) -> String {
    let field = |k: &str| wf.input.get(k).and_then(|v| v.as_str()).unwrap_or("?");
    let mut out = format!(
        "<b>{} Create service {}</b>\n<b>Team:</b> {} · <b>Type:</b> {}\n<b>Status:</b> {}\n",
        status_icon(wf.status),
        escape_html(&wf.name),
        escape_html(field("owningTeam")),
        escape_html(field("serviceType")),
        wf.status.as_str()
    );
    if let Some(e) = &wf.error {
        let e: String = e.chars().take(MAX_ERROR_CHARS).collect();
        out.push_str(&format!("<b>Error:</b> {}\n", escape_html(&e)));
    }
    out.push('\n');
    for s in &wf.steps {
        out.push_str(&format!(
            "{} {} <i>{}</i>\n",
            step_icon(s.status),
            describe(s),
            s.status.as_str().replace('_', " ")
        ));
    }
    out.trim_end().to_owned()
}
