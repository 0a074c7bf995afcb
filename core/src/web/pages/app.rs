//! `/apps/{name}`: one app. Its settings (`#settings`; a deploy hook's URL shows
//! only its host, being a secret of its own; environment values and workflow inputs
//! by name only), its secrets by name only (`#secrets`, never a value), its previews
//! (`#previews`: URL, head sha, state, expiry) and its job history (`#jobs`, paged
//! with `?before=`).
//!
//! Selectors: `h1`, `#settings dl`, `#secrets li.secret[data-env]`,
//! `#previews tr.preview[data-pr]` (`.state[data-state]`, `.url a`, `.sha`),
//! `#jobs tr.job[data-job]` (`.state[data-state]`), `a.older`.
//!
//! Three round trips: the app; its secrets' names and its previews (one query, as
//! JSON parts); a page of its jobs.

use maud::{html, Markup};

use super::{badge, label, link_or_text, short, PageError, PAGE_SIZE};
use crate::apps::{AppStore, DeployTarget, NamedApp};
use crate::cursor::{self, Cursor};
use crate::names::AppName;
use crate::ports::{Row, Sql};
use crate::row::Columns;
use crate::time::Timestamp;
use crate::web::layout::{page, when};
use crate::web::viewer::Viewer;

#[derive(Debug, Clone, PartialEq)]
pub struct AppView {
    pub app: NamedApp,
    /// `(env_type, name)` of each secret, never its value.
    pub secrets: Vec<(String, String)>,
    pub previews: Vec<PreviewRow>,
    pub jobs: Vec<JobRow>,
    pub next: Option<Cursor>,
}

#[derive(Debug, Clone, PartialEq, Eq, crate::json::FromJson)]
pub struct PreviewRow {
    pub id: i64,
    pub app: String,
    pub pr_number: i64,
    pub url: String,
    pub head_sha: String,
    pub status: String,
    pub wanted: String,
    pub expires_at: Option<i64>,
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRow {
    pub id: i64,
    pub sha: String,
    pub subject: String,
    pub kind: String,
    pub status: String,
    pub pusher: Option<String>,
    pub created_at: i64,
}

/// The JSON object of a preview row, for `json_group_array` (`p` is the row).
pub(crate) const PREVIEW_JSON: &str = "json_object('id', p.id, 'app', p.app, 'pr_number', p.pr_number, \
   'url', p.url, 'head_sha', p.head_sha, 'status', p.status, 'wanted', p.wanted, \
   'expires_at', p.expires_at, 'error', p.error, 'created_at', p.created_at, 'updated_at', p.updated_at)";

/// A page of app `?1`'s job rows, bound at `?2..?4`, at most `?5`.
fn jobs_query() -> String {
    format!(
        "SELECT id, sha, kind, status, pusher, created_at, commits FROM deploy_jobs \
         WHERE app = ?1 AND {} ORDER BY created_at DESC, id DESC LIMIT ?5",
        Cursor::condition("created_at", "id", 2)
    )
}

fn job_row(r: &Row) -> JobRow {
    let sha = r.opt_text("sha").unwrap_or_default();
    let commits = r
        .opt_str("commits")
        .and_then(|c| crate::json::read::<Vec<crate::github::events::PushCommit>>(c).ok())
        .unwrap_or_default();
    let subject = commits
        .iter()
        .find(|c| c.id.as_str() == sha)
        .or(commits.last())
        .map(|c| c.subject.clone())
        .unwrap_or_default();
    JobRow {
        id: r.opt_int("id").unwrap_or(0),
        sha,
        subject,
        kind: r.opt_text("kind").unwrap_or_default(),
        status: r.opt_text("status").unwrap_or_default(),
        pusher: r.opt_text("pusher"),
        created_at: r.opt_int("created_at").unwrap_or(0),
    }
}

pub async fn load<S: Sql + Copy>(
    sql: S,
    name: &str,
    before: Option<&Cursor>,
) -> Result<AppView, PageError> {
    let name = AppName::parse(name).map_err(|_| PageError::NotFound)?;
    let app = AppStore::new(sql)
        .get(&name)
        .await?
        .ok_or(PageError::NotFound)?;
    let rows = sql
        .query(
            &format!(
                "SELECT (SELECT json_group_array(json_array(env_type, name)) FROM \
                   (SELECT env_type, name FROM app_secrets WHERE app = ?1 ORDER BY env_type, name)) AS secrets, \
                 (SELECT json_group_array({PREVIEW_JSON}) FROM \
                   (SELECT * FROM previews WHERE app = ?1 ORDER BY pr_number DESC LIMIT 200) p) AS previews"
            ),
            &[name.as_str().into()],
        )
        .await?;
    let row = rows.first().cloned().unwrap_or_default();
    let secrets: Vec<Vec<String>> = super::json_list(&row, "secrets")?;
    let secrets = secrets
        .into_iter()
        .filter_map(|pair| match pair.as_slice() {
            [env, name] => Some((env.clone(), name.clone())),
            _ => None,
        })
        .collect();
    let previews = super::json_list(&row, "previews")?;
    let mut params = vec![name.as_str().into()];
    params.extend(Cursor::bound_of(before, 'j', "j", true)?.params());
    params.push((PAGE_SIZE + 1).into());
    let jobs: Vec<JobRow> = sql
        .query(&jobs_query(), &params)
        .await?
        .iter()
        .map(job_row)
        .collect();
    let (jobs, next) = cursor::page(jobs, PAGE_SIZE as usize, |j| {
        Cursor::new(j.created_at, 'j', j.id.to_string())
    });
    Ok(AppView {
        app,
        secrets,
        previews,
        jobs,
        next,
    })
}

/// A URL's host, for a URL that is itself a secret (a deploy hook).
fn host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', '?', '#', '@'])
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn settings(app: &NamedApp) -> Markup {
    let a = &app.app;
    html! {
        dl.settings {
            dt { "Repository" } dd { (a.repository.as_str()) }
            @if let Some(chat) = &a.telegram_chat_id { dt { "Telegram chat" } dd { code { (chat) } } }
            @if let Some(d) = &a.deploy {
                dt { "Production" } dd { "branch " code { (d.production_branch) } " → " (d.environment) ", on " (d.deploy_on.as_str()) }
                dt { "Deploys with" }
                dd {
                    @match &d.target {
                        DeployTarget::GithubWorkflow { repository, workflow, git_ref, inputs } => {
                            "GitHub workflow " code { (workflow) }
                            @if let Some(r) = repository { " in " (r.as_str()) }
                            @if let Some(r) = git_ref { " on " code { (r) } }
                            @if !inputs.is_empty() {
                                " · inputs: " @for (i, k) in inputs.keys().enumerate() { @if i > 0 { ", " } code { (k) } }
                            }
                        }
                        DeployTarget::DeployHook { url } => { "deploy hook at " (host(url)) }
                        DeployTarget::Fly { app, image } => { "Fly app " code { (app) } ", image " code { (image) } }
                    }
                }
                dt { "Approval" }
                dd {
                    @match &d.approval {
                        Some(ap) if ap.required => { "required, " (ap.timeout_minutes) " min to decide" }
                        _ => "not required",
                    }
                }
            } @else {
                dt { "Production" } dd.muted { "deploys nothing" }
            }
            @if let Some(h) = &a.health_url { dt { "Health check" } dd { (h) } }
            @if let Some(p) = &a.preview {
                dt { "Previews" }
                dd {
                    @if p.enabled { "on" } @else { "off" }
                    ", Fly org " code { (p.org) } ", image " code { (p.image) } ", " (p.ttl_hours) " h"
                    @if !p.env.is_empty() {
                        " · env: " @for (i, k) in p.env.keys().enumerate() { @if i > 0 { ", " } code { (k) } }
                    }
                }
            }
            @if !a.operators.is_empty() {
                dt { "Operators" } dd { @for (i, o) in a.operators.iter().enumerate() { @if i > 0 { ", " } (o) } }
            }
        }
    }
}

/// A previews table (this page and `/previews`); `with_app` adds the app column.
pub(crate) fn previews_table(previews: &[PreviewRow], with_app: bool, now: Timestamp) -> Markup {
    html! {
        div.scroll { table {
            thead { tr {
                @if with_app { th { "App" } }
                th { "PR" } th { "State" } th { "URL" } th { "Head" } th { "Expires" } th { "Updated" }
            } }
            tbody {
                @for pv in previews {
                    tr.preview data-pr=(pv.pr_number) data-app=(pv.app) {
                        @if with_app { td { a href={ "/apps/" (pv.app) } { (pv.app) } } }
                        td { "#" (pv.pr_number) }
                        td {
                            (badge(&pv.status))
                            @if pv.wanted != "live" { " " span.muted { (label(&pv.wanted)) } }
                            @if let Some(e) = &pv.error { p.error { (e) } }
                        }
                        td { span.url { (link_or_text(&pv.url, &pv.url)) } }
                        td { code.sha { (short(&pv.head_sha)) } }
                        td { @match pv.expires_at { Some(e) => (when(Timestamp::from_millis(e), now)), None => span.muted { "—" } } }
                        td { (when(Timestamp::from_millis(pv.updated_at), now)) }
                    }
                }
            }
        } }
    }
}

pub fn render(view: &AppView, viewer: &Viewer, now: Timestamp) -> String {
    let name = view.app.name.as_str();
    let body = html! {
        h1 { "App " (name) }
        section #settings { h2 { "Settings" } (settings(&view.app)) }
        section #secrets {
            h2 { "Secrets" }
            @if view.secrets.is_empty() { p.muted { "No secrets." } }
            ul {
                @for (env, secret) in &view.secrets {
                    li.secret data-env=(env) { code { (secret) } " " span.muted { "(" (env) ")" } }
                }
            }
        }
        section #previews {
            h2 { "Previews" }
            @if view.previews.is_empty() { p.muted { "No previews." } }
            @else { (previews_table(&view.previews, false, now)) }
        }
        section #jobs {
            h2 { "Jobs" }
            @if view.jobs.is_empty() { p.muted { "No jobs yet." } }
            @else {
                div.scroll { table {
                    thead { tr { th { "Job" } th { "State" } th { "Commit" } th { "Made" } } }
                    tbody {
                        @for j in &view.jobs {
                            tr.job data-job=(j.id) {
                                td { a href={ "/jobs/" (j.id) } { (j.id) } " " span.muted { (label(&j.kind)) } }
                                td { (badge(&j.status)) }
                                td { code.sha { (short(&j.sha)) } " " span.subject { (j.subject) }
                                     @if let Some(p) = &j.pusher { span.muted { " — " (p) } } }
                                td { (when(Timestamp::from_millis(j.created_at), now)) }
                            }
                        }
                    }
                } }
            }
            (super::pager(&format!("/apps/{name}"), "", view.next.as_ref()))
        }
    };
    page(&format!("App {name}"), Some(viewer), body)
}

#[cfg(test)]
mod tests;
