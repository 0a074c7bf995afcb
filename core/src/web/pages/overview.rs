//! `/`: the overview. What needs someone first (`#attention`: an app's latest job
//! failed or reverted, a job awaiting approval, a job stuck, a failed preview or
//! workflow), then every app (`#apps`: its production commit, its state, its last
//! job's outcome, its live previews), the latest workflows (`#workflows`), and the
//! recent deployments from every source (`#recent`: `/notify` and poll
//! notifications, deploy jobs), newest first and paged (`?before=`).
//!
//! Selectors: `#attention li.item[data-kind][data-state]` (with a link to the job,
//! preview or workflow), `#apps tr.app[data-app]` (`.production .sha`,
//! `.production .subject`, `.state[data-state]` of the app and of its last job,
//! `.previews a`), `#workflows li.workflow`, `#recent tr.deployment[data-source]`
//! (`notify` or `job`), `a.older` (the next page).
//!
//! Three round trips: the apps; every app's production and last job, the jobs
//! awaiting approval or stuck, the live previews and the latest workflows (one
//! row of JSON lists); and the page of recent deployments (each
//! source cut at the page's size, merged).

use maud::{html, Markup};
use serde_json::Value;

use super::{badge, label, short, PageError, PAGE_SIZE};
use crate::apps::{AppStore, NamedApp};
use crate::cursor::{self, Cursor};
use crate::ports::{Row, Sql};
use crate::row::Columns;
use crate::time::Timestamp;
use crate::web::layout::{page, when};
use crate::web::viewer::Viewer;

/// A step held by an attempt for this long (15 minutes) is stuck: a step's own
/// attempts time out long before (a claim is stale after minutes).
pub const STUCK_STEP_MS: i64 = 15 * 60 * 1000;
/// A job processing for this long (an hour) is stuck, whatever its steps say: the
/// longest await (a workflow run) gives up well before.
pub const STUCK_JOB_MS: i64 = 60 * 60 * 1000;

/// The sources of recent deployments, in their order at one time.
const RECENT_SOURCES: &str = "nj";

/// What the overview shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Overview {
    pub attention: Vec<Attention>,
    pub apps: Vec<AppLine>,
    pub workflows: Vec<WorkflowLine>,
    pub recent: Vec<Recent>,
    pub next: Option<Cursor>,
}

/// Something that needs a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attention {
    /// `job`, `preview` or `workflow`.
    pub kind: &'static str,
    /// `failed`, `reverted`, `awaiting_approval`, `stuck`.
    pub state: String,
    pub title: String,
    pub href: String,
    pub detail: Option<String>,
    pub at: i64,
}

/// A commit a job deployed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub job: i64,
    pub sha: String,
    pub subject: String,
    pub author: Option<String>,
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastJob {
    pub id: i64,
    pub sha: String,
    pub status: String,
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewLink {
    pub id: i64,
    pub pr: i64,
    pub url: String,
    pub status: String,
}

/// One app's line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppLine {
    pub name: String,
    pub repository: String,
    pub environment: Option<String>,
    pub production: Option<Commit>,
    pub last: Option<LastJob>,
    pub previews: Vec<PreviewLink>,
}

impl AppLine {
    /// The app's state: its last job's, `idle` without one.
    pub fn state(&self) -> &str {
        self.last.as_ref().map_or("idle", |j| j.status.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowLine {
    pub name: String,
    pub status: String,
    pub at: i64,
}

/// A recent deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recent {
    /// `n` (a notification) or `j` (a deploy job).
    pub source: char,
    pub id: i64,
    pub at: i64,
    /// The project or app.
    pub project: String,
    /// `worker`, `pages` (notifications) or `deploy`, `rollback`, `retry` (jobs).
    pub kind: String,
    /// `hook` or `poll` for a notification, the environment for a job.
    pub via: String,
    pub sha: Option<String>,
    pub subject: Option<String>,
    pub author: Option<String>,
    pub status: String,
}

/// Each part a JSON list (D1 refuses a compound SELECT of this many terms).
const STATE_QUERY: &str = "SELECT \
 (SELECT json_group_array(json_object('app', j.app, 'id', j.id, 'sha', j.sha, 'commits', json(j.commits), \
   'pusher', j.pusher, 'at', COALESCE(j.finished_at, j.updated_at))) \
  FROM deploy_jobs j WHERE j.id IN (SELECT MAX(id) FROM deploy_jobs WHERE status = 'finalized' GROUP BY app)) \
  AS production, \
 (SELECT json_group_array(json_object('app', j.app, 'id', j.id, 'sha', j.sha, 'status', j.status, \
   'at', j.updated_at, 'error', j.error, 'commits', json(j.commits))) \
  FROM deploy_jobs j WHERE j.id IN (SELECT MAX(id) FROM deploy_jobs WHERE status != 'cancelled' GROUP BY app)) \
  AS last, \
 (SELECT json_group_array(json_object('app', j.app, 'id', j.id, 'sha', j.sha, \
   'at', COALESCE(s.started_at, j.updated_at), 'commits', json(j.commits))) \
  FROM deploy_steps s JOIN deploy_jobs j ON j.id = s.job_id \
  WHERE s.name = 'awaiting_approval' AND s.state = 'started' AND j.status = 'processing' \
    AND json_extract(s.result, '$.decision') IS NULL) AS awaiting, \
 (SELECT json_group_array(json_object('app', j.app, 'id', j.id, 'sha', j.sha, 'status', j.status, \
   'at', COALESCE((SELECT MIN(s.claimed_at) FROM deploy_steps s WHERE s.job_id = j.id AND s.state = 'started'), \
     j.started_at, j.updated_at), 'commits', json(j.commits))) \
  FROM deploy_jobs j WHERE j.status IN ('processing', 'reverting') \
    AND NOT EXISTS (SELECT 1 FROM deploy_steps s WHERE s.job_id = j.id AND s.name = 'awaiting_approval' \
      AND s.state = 'started') \
    AND (j.started_at < ?1 OR EXISTS (SELECT 1 FROM deploy_steps s WHERE s.job_id = j.id \
      AND s.state = 'started' AND s.claimed_at < ?2))) AS stuck, \
 (SELECT json_group_array(json_object('app', p.app, 'id', p.id, 'pr', p.pr_number, 'url', p.url, \
   'status', p.status, 'error', p.error, 'at', p.updated_at)) \
  FROM previews p WHERE p.wanted = 'live' AND p.status IN ('new', 'queued', 'deploying', 'ready', 'failed')) \
  AS preview, \
 (SELECT json_group_array(json_object('app', w.name, 'id', w.id, 'status', w.status, 'error', w.error, \
   'at', w.updated_at)) FROM (SELECT * FROM workflows WHERE id IN (SELECT MAX(id) FROM workflows GROUP BY name) \
   ORDER BY id DESC LIMIT 20) w) AS workflow";

/// The parts of [`STATE_QUERY`]'s one row, in its order.
const STATE_PARTS: [&str; 6] = [
    "production",
    "last",
    "awaiting",
    "stuck",
    "preview",
    "workflow",
];

/// `(part, app, fields)` of every item of every part.
fn parts(rows: &[Row]) -> Vec<(&'static str, String, Value)> {
    let mut out = Vec::new();
    let Some(row) = rows.first() else {
        return out;
    };
    for part in STATE_PARTS {
        let items = row
            .opt_str(part)
            .and_then(|t| crate::json::value(t).ok())
            .unwrap_or(Value::Null);
        for item in items.as_array().map(Vec::as_slice).unwrap_or_default() {
            out.push((part, text(item, "app").unwrap_or_default(), item.clone()));
        }
    }
    out
}

/// Recent notifications and jobs below a cursor: each source's first `?7` rows.
fn recent_query() -> String {
    format!(
        "SELECT * FROM (SELECT 'n' AS src, id, created_at AS at, project_name AS project, kind, source AS via, \
           commit_hash AS sha, json_extract(deployment, '$.commit_message') AS subject, \
           json_extract(deployment, '$.author') AS author, status, NULL AS commits \
         FROM notifications WHERE {} ORDER BY created_at DESC, id DESC LIMIT ?7) \
         UNION ALL \
         SELECT * FROM (SELECT 'j', id, created_at, app, kind, environment, sha, NULL, pusher, status, commits \
         FROM deploy_jobs WHERE {} ORDER BY created_at DESC, id DESC LIMIT ?7)",
        Cursor::condition("created_at", "id", 1),
        Cursor::condition("created_at", "id", 4),
    )
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn int(v: &Value, key: &str) -> i64 {
    v.get(key).and_then(Value::as_i64).unwrap_or(0)
}

/// The head commit's subject and author of a job's `commits` (a JSON list).
fn head(commits: &Value, sha: &str) -> (String, Option<String>) {
    let list = commits.as_array().map(Vec::as_slice).unwrap_or_default();
    let c = list
        .iter()
        .find(|c| c.get("id").and_then(Value::as_str) == Some(sha))
        .or(list.last());
    match c {
        Some(c) => (text(c, "subject").unwrap_or_default(), text(c, "author")),
        None => (String::new(), None),
    }
}

fn job_attention(app: &str, v: &Value, state: &str, detail: Option<String>) -> Attention {
    let id = int(v, "id");
    let sha = text(v, "sha").unwrap_or_default();
    let (subject, _) = head(v.get("commits").unwrap_or(&Value::Null), &sha);
    Attention {
        kind: "job",
        state: state.to_owned(),
        title: format!("{app}: job {id} ({} {subject})", short(&sha)),
        href: format!("/jobs/{id}"),
        detail,
        at: int(v, "at"),
    }
}

/// Reads the overview: `before` is the page of recent deployments.
pub async fn load<S: Sql + Copy>(
    sql: S,
    before: Option<&Cursor>,
    now: Timestamp,
) -> Result<Overview, PageError> {
    let apps = AppStore::new(sql).list().await?;
    let rows = sql
        .query(
            STATE_QUERY,
            &[
                (now.millis() - STUCK_JOB_MS).into(),
                (now.millis() - STUCK_STEP_MS).into(),
            ],
        )
        .await?;
    let mut params = Vec::with_capacity(7);
    params.extend(Cursor::bound_of(before, 'n', RECENT_SOURCES, true)?.params());
    params.extend(Cursor::bound_of(before, 'j', RECENT_SOURCES, true)?.params());
    params.push((PAGE_SIZE + 1).into());
    let recent = sql.query(&recent_query(), &params).await?;
    let (recent, next) = recent_page(recent);
    Ok(assemble(&apps, parts(&rows), recent, next))
}

fn recent_page(rows: Vec<Row>) -> (Vec<Recent>, Option<Cursor>) {
    let read = |r: &Row| {
        let source = if r.opt_str("src") == Some("n") {
            'n'
        } else {
            'j'
        };
        let sha = r.opt_text("sha");
        let (subject, author) = match (source, r.opt_str("commits")) {
            ('j', Some(c)) => {
                let commits = crate::json::value(c).unwrap_or(Value::Null);
                let (s, a) = head(&commits, sha.as_deref().unwrap_or_default());
                (Some(s), a.or(r.opt_text("author")))
            }
            _ => (r.opt_text("subject"), r.opt_text("author")),
        };
        Recent {
            source,
            id: r.opt_int("id").unwrap_or(0),
            at: r.opt_int("at").unwrap_or(0),
            project: r.opt_text("project").unwrap_or_default(),
            kind: r.opt_text("kind").unwrap_or_default(),
            via: r.opt_text("via").unwrap_or_default(),
            sha,
            subject,
            author,
            status: r.opt_text("status").unwrap_or_default(),
        }
    };
    let (notes, jobs): (Vec<Recent>, Vec<Recent>) =
        rows.iter().map(read).partition(|r| r.source == 'n');
    let merged = cursor::merge_newest(notes, jobs, |r| r.at);
    cursor::page(merged, PAGE_SIZE as usize, |r| {
        Cursor::new(r.at, r.source, r.id.to_string())
    })
}

fn assemble(
    apps: &[NamedApp],
    parts: Vec<(&'static str, String, Value)>,
    recent: Vec<Recent>,
    next: Option<Cursor>,
) -> Overview {
    let mut attention = Vec::new();
    let mut lines: Vec<AppLine> = apps
        .iter()
        .map(|a| AppLine {
            name: a.name.as_str().to_owned(),
            repository: a.app.repository.as_str().to_owned(),
            environment: a.app.deploy.as_ref().map(|d| d.environment.clone()),
            production: None,
            last: None,
            previews: Vec::new(),
        })
        .collect();
    let mut workflows = Vec::new();
    for (part, app, v) in parts {
        let line = lines.iter_mut().find(|l| l.name == app);
        match part {
            "production" => {
                let sha = text(&v, "sha").unwrap_or_default();
                let (subject, author) = head(v.get("commits").unwrap_or(&Value::Null), &sha);
                if let Some(line) = line {
                    line.production = Some(Commit {
                        job: int(&v, "id"),
                        sha,
                        subject,
                        author: author.or(text(&v, "pusher")),
                        at: int(&v, "at"),
                    });
                }
            }
            "last" => {
                let status = text(&v, "status").unwrap_or_default();
                if matches!(status.as_str(), "failed" | "reverted") {
                    attention.push(job_attention(&app, &v, &status, text(&v, "error")));
                }
                if let Some(line) = line {
                    line.last = Some(LastJob {
                        id: int(&v, "id"),
                        sha: text(&v, "sha").unwrap_or_default(),
                        status,
                        at: int(&v, "at"),
                    });
                }
            }
            "awaiting" => attention.push(job_attention(&app, &v, "awaiting_approval", None)),
            "stuck" => {
                let since = format!(
                    "no progress since {}",
                    Timestamp::from_millis(int(&v, "at")).to_human()
                );
                attention.push(job_attention(&app, &v, "stuck", Some(since)));
            }
            "preview" => {
                let status = text(&v, "status").unwrap_or_default();
                let id = int(&v, "id");
                if status == "failed" {
                    attention.push(Attention {
                        kind: "preview",
                        state: status.clone(),
                        title: format!("{app}: preview of PR #{}", int(&v, "pr")),
                        href: format!("/apps/{app}#previews"),
                        detail: text(&v, "error"),
                        at: int(&v, "at"),
                    });
                } else if let Some(line) = line {
                    line.previews.push(PreviewLink {
                        id,
                        pr: int(&v, "pr"),
                        url: text(&v, "url").unwrap_or_default(),
                        status,
                    });
                }
            }
            "workflow" => {
                let status = text(&v, "status").unwrap_or_default();
                if status == "failed" {
                    attention.push(Attention {
                        kind: "workflow",
                        state: status.clone(),
                        title: format!("workflow {app}"),
                        href: format!("/workflows/{app}"),
                        detail: text(&v, "error"),
                        at: int(&v, "at"),
                    });
                }
                workflows.push(WorkflowLine {
                    name: app,
                    status,
                    at: int(&v, "at"),
                });
            }
            _ => {}
        }
    }
    Overview {
        attention,
        apps: lines,
        workflows,
        recent,
        next,
    }
}

fn app_row(line: &AppLine, now: Timestamp) -> Markup {
    html! {
        tr.app data-app=(line.name) {
            td { a href={ "/apps/" (line.name) } { strong { (line.name) } } br; span.muted { (line.repository) } }
            td { (badge(line.state())) }
            td.production {
                @match &line.production {
                    Some(c) => {
                        a.sha href={ "/jobs/" (c.job) } { (short(&c.sha)) } " "
                        span.subject { (c.subject) } br;
                        span.muted { @if let Some(a) = &c.author { (a) " · " } (when(Timestamp::from_millis(c.at), now)) }
                    }
                    None => span.muted { "nothing deployed yet" },
                }
            }
            td.last {
                @match &line.last {
                    Some(j) => { a href={ "/jobs/" (j.id) } { "job " (j.id) } " " (badge(&j.status)) }
                    None => span.muted { "no job yet" },
                }
            }
            td.previews {
                @if line.previews.is_empty() { span.muted { "none" } }
                @for p in &line.previews {
                    span.preview {
                        (super::link_or_text(&p.url, &format!("#{}", p.pr))) " " (badge(&p.status))
                    } " "
                }
            }
        }
    }
}

fn recent_row(r: &Recent, now: Timestamp) -> Markup {
    let source = if r.source == 'n' { "notify" } else { "job" };
    html! {
        tr.deployment data-source=(source) {
            td { (when(Timestamp::from_millis(r.at), now)) }
            td {
                @if r.source == 'j' {
                    a href={ "/jobs/" (r.id) } { (r.project) } " " span.muted { (label(&r.kind)) " → " (r.via) }
                } @else {
                    (r.project) " " span.muted { (r.kind) " · " (r.via) }
                }
            }
            td {
                @if let Some(sha) = &r.sha { code.sha { (short(sha)) } " " }
                @if let Some(s) = &r.subject { span.subject { (s) } }
                @if let Some(a) = &r.author { span.muted { " — " (a) } }
            }
            td { (badge(&r.status)) }
        }
    }
}

pub fn render(view: &Overview, viewer: &Viewer, now: Timestamp) -> String {
    let body = html! {
        h1 { "Overview" }
        section #attention {
            h2 { "Needs attention" }
            @if view.attention.is_empty() {
                p.muted.all-clear { "Nothing failed, stuck or awaiting approval." }
            } @else {
                ul {
                    @for a in &view.attention {
                        li.item.card.attention data-kind=(a.kind) data-state=(a.state) {
                            (badge(&a.state)) " " a href=(a.href) { (a.title) } " "
                            span.ago { (crate::web::layout::ago(Timestamp::from_millis(a.at), now)) }
                            @if let Some(d) = &a.detail { p.error { (d) } }
                        }
                    }
                }
            }
        }
        section #apps {
            h2 { "Apps" }
            @if view.apps.is_empty() { p.muted { "No app is registered yet." } }
            @else {
                div.scroll { table {
                    thead { tr { th { "App" } th { "State" } th { "Production" } th { "Last job" } th { "Previews" } } }
                    tbody { @for line in &view.apps { (app_row(line, now)) } }
                } }
            }
        }
        @if !view.workflows.is_empty() {
            section #workflows {
                h2 { "Workflows" }
                ul {
                    @for w in &view.workflows {
                        li.workflow { a href={ "/workflows/" (w.name) } { (w.name) } " " (badge(&w.status)) " "
                            span.ago { (crate::web::layout::ago(Timestamp::from_millis(w.at), now)) } }
                    }
                }
            }
        }
        section #recent {
            h2 { "Recent deployments" }
            @if view.recent.is_empty() { p.muted { "No deployment yet." } }
            @else {
                div.scroll { table {
                    thead { tr { th { "When" } th { "What" } th { "Commit" } th { "State" } } }
                    tbody { @for r in &view.recent { (recent_row(r, now)) } }
                } }
            }
            (super::pager("/", "", view.next.as_ref()))
        }
    };
    page("Overview", Some(viewer), body)
}

#[cfg(test)]
mod tests;
