//! `/deliveries`: the delivery log, GitHub deliveries and notifications newest
//! first, filtered by source and outcome (`?source=github&outcome=failed`, a plain
//! GET form) and paged with `?before=`; each GitHub delivery with a Replay button
//! (a form POST with the CSRF token) that does what
//! `POST /api/deliveries/{id}/replay` does. The listing is the admin API's own
//! ([`crate::admin::deliveries`]).
//!
//! Selectors: `form#filter` (`select[name=source]`, `select[name=outcome]`),
//! `#deliveries tr.delivery[data-source][data-id]` (`.state[data-state]`),
//! `form.replay[action="/deliveries/{id}/replay"]` with
//! `button[name=action][value=replay]`, `p.notice` (after a replay), `a.older`.
//!
//! Three round trips at most: the deliveries, the notifications, their Telegram
//! rows.

use maud::{html, Markup};
use serde_json::Value;

use super::{badge, PageError, PAGE_SIZE};
use crate::admin::{self, LogError, LogPage, LogQuery, GITHUB_OUTCOMES, NOTIFY_OUTCOMES};
use crate::ports::Sql;
use crate::time::Timestamp;
use crate::web::layout::{page, when};
use crate::web::viewer::Viewer;

/// The deliveries page: the filter it was asked for, and the page of the log.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveriesView {
    pub source: Option<String>,
    pub outcome: Option<String>,
    pub entries: Vec<Entry>,
    pub next: Option<String>,
    /// A replay was just queued.
    pub replayed: bool,
}

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `github` or `notify`.
    pub source: String,
    pub id: String,
    pub event: String,
    /// The repository (GitHub) or project (notify).
    pub subject: Option<String>,
    pub outcome: String,
    pub detail: Option<String>,
    pub attempts: i64,
    pub at: i64,
    /// Its `updated_at`: a Replay form carries it, so a second submit replays
    /// nothing.
    pub version: i64,
}

fn entry(v: &Value) -> Entry {
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let event = match (text("event"), text("action")) {
        (Some(e), Some(a)) => format!("{e}.{a}"),
        (e, _) => e.unwrap_or_default(),
    };
    Entry {
        source: text("source").unwrap_or_default(),
        id: text("id").unwrap_or_default(),
        event,
        subject: text("repository").or(text("project")),
        outcome: text("outcome").unwrap_or_default(),
        detail: text("detail").or(text("last_error")),
        attempts: v.get("attempts").and_then(Value::as_i64).unwrap_or(0),
        at: v.get("received_at").and_then(Value::as_i64).unwrap_or(0),
        version: v.get("updated_at").and_then(Value::as_i64).unwrap_or(0),
    }
}

/// Reads a page of the log for the page's query parameters.
pub async fn load<S: Sql + Copy>(
    sql: S,
    source: Option<&str>,
    outcome: Option<&str>,
    before: Option<&str>,
    replayed: bool,
) -> Result<DeliveriesView, PageError> {
    let query = LogQuery::parse(source, outcome, before, PAGE_SIZE).map_err(log_error)?;
    let LogPage { entries, next } = admin::deliveries(sql, &query).await.map_err(log_error)?;
    Ok(DeliveriesView {
        source: source.filter(|s| !s.is_empty()).map(str::to_owned),
        outcome: outcome.filter(|s| !s.is_empty()).map(str::to_owned),
        entries: entries.iter().map(entry).collect(),
        next: next.map(|c| c.encode()),
        replayed,
    })
}

pub(crate) fn log_error(e: LogError) -> PageError {
    match e {
        LogError::NotFound => PageError::NotFound,
        LogError::Invalid(why) => PageError::BadRequest(why),
        LogError::Store { error, .. } => PageError::Store(error),
        LogError::Queue(q) => PageError::Store(crate::ports::StoreError::Driver(q.to_string())),
    }
}

fn option(value: &str, text: &str, chosen: Option<&str>) -> Markup {
    html! { option value=(value) selected[chosen == Some(value)] { (text) } }
}

fn filter(view: &DeliveriesView) -> Markup {
    let source = view.source.as_deref();
    let outcome = view.outcome.as_deref();
    let mut outcomes: Vec<&str> = GITHUB_OUTCOMES.to_vec();
    outcomes.extend(
        NOTIFY_OUTCOMES
            .iter()
            .filter(|o| !GITHUB_OUTCOMES.contains(o)),
    );
    html! {
        form #filter method="get" action="/deliveries" {
            label { "Source " select name="source" {
                (option("", "any", source))
                (option("github", "GitHub", source))
                (option("notify", "notify", source))
            } }
            " "
            label { "Outcome " select name="outcome" {
                (option("", "any", outcome))
                @for o in outcomes { (option(o, &super::label(o), outcome)) }
            } }
            " "
            button type="submit" { "Filter" }
        }
    }
}

/// The filter's query string, for the pager.
fn filter_query(view: &DeliveriesView) -> String {
    let mut parts = Vec::new();
    if let Some(s) = &view.source {
        parts.push(format!("source={s}"));
    }
    if let Some(o) = &view.outcome {
        parts.push(format!("outcome={o}"));
    }
    parts.join("&")
}

pub fn render(view: &DeliveriesView, viewer: &Viewer, now: Timestamp) -> String {
    let next = view
        .next
        .as_deref()
        .and_then(|n| crate::cursor::Cursor::parse(n, "gn").ok());
    let body = html! {
        h1 { "Deliveries" }
        @if view.replayed { p.notice { "Replay queued: the delivery is processed again from the start." } }
        (filter(view))
        section #deliveries {
            @if view.entries.is_empty() { p.muted { "Nothing in the log." } }
            @else {
                div.scroll { table {
                    thead { tr { th { "When" } th { "What" } th { "Outcome" } th {} } }
                    tbody {
                        @for e in &view.entries {
                            tr.delivery data-source=(e.source) data-id=(e.id) {
                                td { (when(Timestamp::from_millis(e.at), now)) }
                                td {
                                    code { (e.event) } " "
                                    @if let Some(s) = &e.subject { (s) " " }
                                    br; span.muted { (e.source) " · " code { (e.id) } }
                                }
                                td {
                                    (badge(&e.outcome))
                                    @if e.attempts > 0 { " " span.muted { (e.attempts) " attempts" } }
                                    @if let Some(d) = &e.detail { p.detail { (d) } }
                                }
                                td {
                                    @if e.source == "github" && viewer.operator {
                                        form.inline.replay method="post" action={ "/deliveries/" (e.id) "/replay" } {
                                            input type="hidden" name="csrf" value=(viewer.csrf);
                                            input type="hidden" name="version" value=(e.version);
                                            button type="submit" name="action" value="replay" { "Replay" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                } }
            }
            (super::pager("/deliveries", &filter_query(view), next.as_ref()))
        }
    };
    page("Deliveries", Some(viewer), body)
}

#[cfg(test)]
mod tests;
