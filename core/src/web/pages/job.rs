//! `/jobs/{id}`: one deploy job. Its step timeline (each step a bar on the job's
//! time axis, drawn with SVG attributes so the CSP needs no inline style), its
//! commits, the GitHub deployment and run links, its Telegram messages, the audit
//! trail, and for an operator the actions it offers now (the ones its Telegram
//! message offers: [`crate::deploy::message::buttons`]).
//!
//! Selectors: `h1` (the job), `#summary` (`.state[data-state]`: the job's state as
//! its message names it), `#timeline` (`li.step[data-step][data-state]`, its
//! `.error`, `rect.bar.{ok,bad,warn,run,idle}`), `#commits` (`li.commit`, `.sha`),
//! `#links` (`a.deployment`, `a.run`), `#telegram` (`li.message`), `#audit`
//! (`li.entry[data-result]`), `#actions` (`form[action$="/approve"]` …, each with a
//! `button[name=action][value=approve]`, and hidden `csrf` and `version` fields).
//!
//! One round trip: the job's row with its steps, its trail, its live messages,
//! where it stands among its app's jobs, and its app's repository, as JSON columns.

use maud::{html, Markup};

use super::{badge, github_url, label, link_or_text, linkable, short, PageError};
use crate::chatops::Action;
use crate::deploy::message::buttons;
use crate::deploy::store::{Job, Standing, Step};
use crate::deploy::{JobStatus, StepState};
use crate::ports::Sql;
use crate::row::Columns;
use crate::time::Timestamp;
use crate::web::layout::{page, when};
use crate::web::viewer::Viewer;

/// A job as its page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobView {
    pub job: Job,
    /// The app's repository (`octo/app`), for links; `None` once the app is gone.
    pub repository: Option<String>,
    /// What it offers now, of Approve, Reject, Roll back and Retry.
    pub offers: Vec<Action>,
    /// Changes whenever the job, a step of it or the app's newest job does: a form
    /// carries the one it was shown with, and a stale one is refused.
    pub version: String,
    pub trail: Vec<TrailEntry>,
    pub messages: Vec<Message>,
}

/// One line of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, crate::json::FromJson)]
pub struct TrailEntry {
    pub action: String,
    pub result: String,
    pub detail: Option<String>,
    pub actor: String,
    pub at: i64,
}

/// A Telegram message that follows the job, in one chat.
#[derive(Debug, Clone, PartialEq, Eq, crate::json::FromJson)]
pub struct Message {
    pub chat_id: String,
    pub thread: String,
    pub message_id: Option<i64>,
    /// The message's HTML, as Telegram shows it now (or is about to).
    pub html: String,
}

/// The actions the web offers on a job (Cancel stays with chat).
const WEB_ACTIONS: [Action; 4] = [
    Action::Approve,
    Action::Reject,
    Action::Rollback,
    Action::Retry,
];

const QUERY: &str = "SELECT j.id, j.app, j.environment, j.sha, j.git_ref, j.delivery_id, j.pusher, \
   j.installation_id, j.status, j.revert_sha, j.github_deployment_id, j.telegram_message_id, j.error, \
   j.created_at, j.updated_at, j.started_at, j.finished_at, j.commits, j.kind, j.source_job, j.requested_by, \
   (SELECT json_group_array(json_object('position', position, 'name', name, 'state', state, \
      'attempts', attempts, 'result', json(result), 'error', error, 'started_at', started_at, \
      'finished_at', finished_at, 'claimed_at', claimed_at, 'due_at', due_at)) \
    FROM (SELECT * FROM deploy_steps WHERE job_id = j.id ORDER BY position)) AS steps, \
   (SELECT MAX(updated_at) FROM deploy_steps WHERE job_id = j.id) AS steps_updated, \
   (SELECT json_group_array(json_object('action', action, 'result', result, 'detail', detail, \
      'actor', actor, 'at', created_at)) \
    FROM (SELECT * FROM audit_log WHERE subject_kind = 'job' AND subject_id = CAST(j.id AS TEXT) \
          ORDER BY id)) AS trail, \
   (SELECT json_group_array(json_object('chat_id', chat_id, 'thread', thread, 'message_id', message_id, \
      'html', html)) FROM telegram_live WHERE subject = 'job:' || j.id) AS messages, \
   (SELECT MAX(id) FROM deploy_jobs WHERE app = j.app AND environment = j.environment \
      AND status != 'cancelled') AS newest, \
   (SELECT p.id FROM deploy_jobs p WHERE p.app = j.app AND p.environment = j.environment \
      AND p.status = 'finalized' AND p.id < j.id AND p.sha != j.sha ORDER BY p.id DESC LIMIT 1) AS previous, \
   (SELECT repository FROM apps WHERE name = j.app) AS repository \
 FROM deploy_jobs j WHERE j.id = ?1";

/// Reads job `id` and all its page shows, in one round trip.
pub async fn load<S: Sql>(sql: S, id: i64) -> Result<JobView, PageError> {
    let rows = sql.query(QUERY, &[id.into()]).await?;
    let row = rows.into_iter().next().ok_or(PageError::NotFound)?;
    let steps: Vec<Step> = super::json_list(&row, "steps")?;
    let trail = super::json_list(&row, "trail")?;
    let messages = super::json_list(&row, "messages")?;
    let newest = row.opt_int("newest");
    let previous = row.opt_int("previous");
    let repository = row.opt_text("repository");
    let version = format!(
        "{}.{}.{}",
        row.opt_int("updated_at").unwrap_or(0),
        row.opt_int("steps_updated").unwrap_or(0),
        newest.unwrap_or(0)
    );
    let mut job = crate::deploy::store::job(row)?;
    job.steps = steps;
    let standing = Standing {
        status: job.status,
        newest,
        previous,
        awaiting: crate::deploy::approval::gate::is_awaiting(&job),
    };
    let offers = buttons(job.id, &standing)
        .into_iter()
        .filter(|a| WEB_ACTIONS.contains(a))
        .collect();
    Ok(JobView {
        job,
        repository,
        offers,
        version,
        trail,
        messages,
    })
}

/// The job's state as its message says it (`awaiting_approval` while it waits).
fn state(job: &Job) -> &'static str {
    crate::deploy::message::status(job)
}

/// The head commit's subject.
pub(crate) fn subject(job: &Job) -> String {
    job.commits
        .iter()
        .find(|c| c.id.as_str() == job.sha)
        .or(job.commits.last())
        .map(|c| c.subject.clone())
        .unwrap_or_default()
}

/// The time axis: from when the job was made to when it (or its last step) ended,
/// or now while it runs.
fn axis(job: &Job, now: Timestamp) -> (i64, i64) {
    let start = job.created_at;
    let last_step = job
        .steps
        .iter()
        .filter_map(|s| s.finished_at.or(s.started_at))
        .max();
    let end = if job.status.is_final() {
        job.finished_at
            .into_iter()
            .chain(last_step)
            .max()
            .unwrap_or(job.updated_at)
    } else {
        now.millis()
    };
    (start, end.max(start + 1))
}

/// A bar's `x` and `width` on a 1000-wide axis (at least 4 wide, so a short step
/// still shows).
fn bar(axis: (i64, i64), from: i64, to: i64) -> (i64, i64) {
    let span = axis.1 - axis.0;
    let x = ((from - axis.0).clamp(0, span) * 1000 / span).min(996);
    let w = ((to.max(from) - from).min(span) * 1000 / span).max(4);
    (x, w.min(1000 - x))
}

fn step_tone(s: StepState) -> &'static str {
    match s {
        StepState::Done => "ok",
        StepState::Failed => "bad",
        StepState::Started => "run",
        StepState::Pending | StepState::Skipped => "idle",
    }
}

fn duration(ms: i64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s} s"),
        60..=3_599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3_600, (s % 3_600) / 60),
    }
}

fn track(axis: (i64, i64), from: Option<i64>, to: Option<i64>, tone: &str) -> Markup {
    html! {
        svg.track viewBox="0 0 1000 12" preserveAspectRatio="none" role="img" aria-hidden="true" {
            @if let Some(from) = from {
                @let (x, w) = bar(axis, from, to.unwrap_or(axis.1));
                rect class={ "bar " (tone) } x=(x) y="0" width=(w) height="12" {}
            }
        }
    }
}

fn timeline(job: &Job, now: Timestamp) -> Markup {
    let axis = axis(job, now);
    html! {
        section #timeline {
            h2 { "Timeline" }
            p.muted.axis {
                "From " (when(Timestamp::from_millis(axis.0), now))
                " · " (duration(axis.1 - axis.0)) " in all"
            }
            ol.timeline {
                li.step data-step="queued" data-state=(if job.started_at.is_some() { "done" } else { "pending" }) {
                    span.name { "Queued" }
                    (track(axis, Some(job.created_at), job.started_at.or(Some(axis.1)), if job.started_at.is_some() { "ok" } else { "warn" }))
                    span.times {
                        @if let Some(s) = job.started_at { "started after " (duration(s - job.created_at)) }
                        @else { "waiting" }
                    }
                }
                @for s in &job.steps {
                    li.step data-step=(s.name.as_str()) data-state=(s.state.as_str()) {
                        span.name { (s.name.label()) " " (badge(s.state.as_str())) }
                        (track(axis, s.started_at, s.finished_at.or(s.started_at.map(|_| axis.1)), step_tone(s.state)))
                        span.times {
                            @if let Some(from) = s.started_at {
                                (when(Timestamp::from_millis(from), now))
                                @if let Some(to) = s.finished_at {
                                    " → " (when(Timestamp::from_millis(to), now))
                                    " (" (duration(to - from)) ")"
                                }
                            } @else {
                                span.muted { "not started" }
                            }
                            @if s.attempts > 1 { " · " span.attempts { (s.attempts) " attempts" } }
                            @else if s.attempts == 1 { " · " span.attempts { "1 attempt" } }
                        }
                        @if let Some(e) = &s.error {
                            p.error { (e) }
                        }
                    }
                }
            }
        }
    }
}

/// The workflow runs the steps started or waited for.
fn runs(job: &Job) -> Vec<String> {
    job.steps
        .iter()
        .filter_map(|s| s.result.as_ref()?.get("html_url")?.as_str())
        .map(str::to_owned)
        .collect()
}

/// A Telegram message's text without its markup, as a person reads it.
fn text_of(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

/// `https://t.me/c/…/{message}` for a supergroup's message.
fn message_link(chat_id: &str, message_id: i64) -> Option<String> {
    let inner = chat_id.strip_prefix("-100")?;
    (!inner.is_empty() && inner.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("https://t.me/c/{inner}/{message_id}"))
}

fn action_form(id: i64, action: Action, viewer: &Viewer, version: &str) -> Markup {
    let name = action.as_str();
    let text = match action {
        Action::Approve => "Approve",
        Action::Reject => "Reject",
        Action::Rollback => "Roll back",
        Action::Retry => "Retry",
        Action::Cancel => "Cancel",
    };
    let danger = matches!(action, Action::Reject | Action::Rollback);
    html! {
        form.inline.action method="post" action={ "/jobs/" (id) "/" (name) } {
            input type="hidden" name="csrf" value=(viewer.csrf);
            input type="hidden" name="version" value=(version);
            button type="submit" name="action" value=(name) class=[danger.then_some("danger")] { (text) }
        }
    }
}

pub fn render(view: &JobView, viewer: &Viewer, now: Timestamp) -> String {
    let job = &view.job;
    let repo = view.repository.as_deref();
    let title = format!("Job {} · {}", job.id, job.app);
    let body = html! {
        h1 { "Job " (job.id) ": " a href={ "/apps/" (job.app) } { (job.app) } " → " (job.environment) }
        section #summary .card {
            p {
                (badge(state(job)))
                " " (label(job.kind.as_str()))
                " of " code.sha { (short(&job.sha)) } " " span.subject { (subject(job)) }
            }
            p.muted {
                @if let Some(p) = &job.pusher { "pushed by " (p) " · " }
                "made " (when(Timestamp::from_millis(job.created_at), now))
                @if let Some(f) = job.finished_at { " · ended " (when(Timestamp::from_millis(f), now)) }
            }
            @if let (Some(source), Some(by)) = (job.source_job, &job.requested_by) {
                p { (label(job.kind.as_str())) " of " a href={ "/jobs/" (source) } { "job " (source) } ", asked by " (by) }
            }
            @if let Some(sha) = &job.revert_sha {
                p { "Reverting to " code.sha { (short(sha)) } }
            }
            @if let Some(e) = &job.error {
                p.error #job-error { (e) }
            }
        }
        @if viewer.operator && !view.offers.is_empty() {
            section #actions {
                h2 { "Actions" }
                @for a in &view.offers { (action_form(job.id, *a, viewer, &view.version)) " " }
            }
        }
        (timeline(job, now))
        section #commits {
            h2 { "Commits" }
            @if job.commits.is_empty() { p.muted { "No commits recorded." } }
            ul {
                @for c in &job.commits {
                    li.commit {
                        @match repo.and_then(|r| github_url(r, &format!("/commit/{}", c.id.as_str()))) {
                            Some(url) => a.sha href=(url) { (short(c.id.as_str())) },
                            None => code.sha { (short(c.id.as_str())) },
                        }
                        " " (c.subject)
                        @if let Some(a) = &c.author { span.muted { " — " (a) } }
                    }
                }
            }
        }
        section #links {
            h2 { "GitHub" }
            ul {
                @if let Some(d) = job.github_deployment_id {
                    li {
                        "Deployment " (d) ": "
                        @match repo.and_then(|r| github_url(r, "/deployments")) {
                            Some(url) => a.deployment href=(url) { "deployments" },
                            None => span.muted { "no repository" },
                        }
                    }
                } @else {
                    li.muted { "No GitHub deployment yet." }
                }
                @for run in runs(job) {
                    li { "Workflow run: " @if linkable(&run) { a.run href=(run) { (run) } } @else { (link_or_text(&run, &run)) } }
                }
            }
        }
        section #telegram {
            h2 { "Telegram" }
            @if view.messages.is_empty() { p.muted { "No Telegram message." } }
            ul {
                @for m in &view.messages {
                    li.message {
                        "Chat " code { (m.chat_id) }
                        @if !m.thread.is_empty() { " topic " (m.thread) }
                        @match m.message_id {
                            Some(id) => {
                                " · message "
                                @match message_link(&m.chat_id, id) {
                                    Some(url) => a href=(url) { (id) },
                                    None => (id),
                                }
                            }
                            None => " · not sent yet",
                        }
                        pre.message-text { (text_of(&m.html)) }
                    }
                }
            }
        }
        section #audit {
            h2 { "Audit trail" }
            @if view.trail.is_empty() { p.muted { "Nobody has acted on this job." } }
            ol {
                @for e in &view.trail {
                    li.entry data-result=(e.result) {
                        (when(Timestamp::from_millis(e.at), now)) " "
                        strong { (e.actor) } " " (e.action) " — " (badge(&e.result))
                        @if let Some(d) = &e.detail { " " span.detail { (d) } }
                    }
                }
            }
        }
    };
    page(&title, Some(viewer), body)
}

/// Whether the job has failed in a way the overview calls out.
pub fn failed(status: JobStatus) -> bool {
    matches!(status, JobStatus::Failed | JobStatus::Reverted)
}

#[cfg(test)]
mod tests;
