//! `/workflows/{name}`: an orchestration workflow (the newest of that service
//! name): its steps as a dependency list, each with what it waits for (`after`),
//! its PR (link), `merged_sha`, its workflow run (link), its error and the events
//! that moved it.
//!
//! Selectors: `h1`, `#summary .state[data-state]`, `#steps li.step[data-step]
//! [data-state]` (`.after a` to the steps it waits for, `.pr-link a`, `.merged .sha`,
//! `.run-link a`, `.error`, `ol.events li.event[data-source]`).
//!
//! Two round trips: the workflow, its steps.

use maud::html;

use super::{badge, label, link_or_text, short, PageError};
use crate::orchestrate::store::{Workflow, WorkflowStore};
use crate::ports::Sql;
use crate::time::Timestamp;
use crate::web::layout::{page, when};
use crate::web::viewer::Viewer;

pub async fn load<S: Sql + Copy>(sql: S, name: &str) -> Result<Workflow, PageError> {
    WorkflowStore::new(sql)
        .get_by_name(name)
        .await?
        .ok_or(PageError::NotFound)
}

pub fn render(wf: &Workflow, viewer: &Viewer, now: Timestamp) -> String {
    let after = |id: &str| {
        wf.definition
            .steps
            .iter()
            .find(|d| d.id.as_str() == id)
            .map(|d| {
                d.after
                    .iter()
                    .map(|a| a.as_str().to_owned())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    let body = html! {
        h1 { "Workflow " (wf.name) }
        section #summary .card {
            p { (badge(wf.status.as_str())) " " (label(&wf.kind)) " · workflow " (wf.id) }
            p.muted {
                "started " (when(Timestamp::from_millis(wf.created_at), now))
                @if let Some(f) = wf.finished_at { " · ended " (when(Timestamp::from_millis(f), now)) }
            }
            @if let Some(e) = &wf.error { p.error { (e) } }
        }
        section #steps {
            h2 { "Steps" }
            ol.steps {
                @for s in &wf.steps {
                    li.step.card id={ "step-" (s.id.as_str()) } data-step=(s.id.as_str()) data-state=(s.status.as_str()) {
                        strong { (s.id.as_str()) } " " span.muted { (label(s.kind.as_str())) } " " (badge(s.status.as_str()))
                        @let deps = after(s.id.as_str());
                        @if !deps.is_empty() {
                            p.after { "after "
                                @for (i, d) in deps.iter().enumerate() {
                                    @if i > 0 { ", " } a href={ "#step-" (d) } { (d) }
                                }
                            }
                        }
                        @if let Some(r) = &s.repository { p.repo { "in " (r) } }
                        @if let Some(pr) = &s.pr {
                            p { "PR "
                                @match &pr.html_url {
                                    Some(u) => span.pr-link { (link_or_text(u, &format!("#{}", pr.number))) },
                                    None => span { "#" (pr.number) },
                                }
                            }
                        }
                        @if let Some(m) = &s.merged_sha { p.merged { "merged as " code.sha { (short(m)) } } }
                        @if let Some(run) = &s.run {
                            p { "workflow run "
                                @match &run.html_url {
                                    Some(u) => span.run-link { (link_or_text(u, &run.id.to_string())) },
                                    None => span { (run.id) },
                                }
                                @if let Some(c) = &run.conclusion { " · " (c) }
                            }
                        }
                        @if let Some(e) = &s.error { p.error { (e) } }
                        @if !s.events.is_empty() {
                            ol.events {
                                @for e in &s.events {
                                    li.event data-source=(e.source) {
                                        (when(Timestamp::from_millis(e.at), now)) " " (e.source) ": " (e.detail)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page(&format!("Workflow {}", wf.name), Some(viewer), body)
}

#[cfg(test)]
mod tests;
