//! GitHub custom deployment protection rules. When the GitHub App is one of an
//! environment's protection rules, GitHub holds each workflow job that deploys to it
//! and sends `deployment_protection_rule` (action `requested`); this flow records a
//! request per delivery, posts a message for that environment and commit (Approve /
//! Reject while it is pending) wherever the routes send `deploy` messages, and sends
//! the decision back as the review (`POST
//! /repos/{repository}/actions/runs/{run_id}/deployment_protection_rule`, with the
//! installation's token): `approved` or `rejected`, with a comment naming who decided.
//!
//! A request is decided once ([`decide`]: a conditional update from `pending`), and
//! expires after `PROTECTION_TIMEOUT_MINUTES`: the cron then rejects it on GitHub
//! ([`sweep`]), so a run never waits out GitHub's own 30 days on a button nobody
//! pressed. The review is sent by the one attempt that claims it
//! ([`run_review`], a `protection_review` message); a transient failure is retried
//! with a backing-off delay, [`MAX_STEP_ATTEMPTS`] attempts in all.

pub mod store;

use crate::audit::{AuditStore, Entry, Outcome as AuditOutcome, SubjectKind};
use crate::chatops::Action;
use crate::flow::{github_for, Deps, Ports, ProcessError, Run, MAX_STEP_ATTEMPTS};
use crate::github::client::GithubClient;
use crate::github::deliveries::DeliveryId;
use crate::github::events::ProtectionRuleEvent;
use crate::http::Method;
use crate::jobs::JobMessage;
use crate::live::Live;
use crate::ports::{Queue, Sql, StoreError};
use crate::routes::{Outcome, Source};
use crate::telegram::escape_html;
use crate::template::{Field, Values};
use crate::time::Timestamp;
pub use store::{ProtectionStore, Request, Review, Status};

/// Who decides: a Telegram user (`@name` and their id) or the admin API, and what
/// asked (`telegram:{update_id}`: the same update, processed again, finds its own
/// decision rather than someone else's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reviewer<'a> {
    pub name: &'a str,
    pub telegram_user: Option<i64>,
    pub key: Option<&'a str>,
}

/// Why a decision was not taken; each maps to one HTTP answer (`answers.rs`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecideError {
    #[error("not found")]
    NotFound,
    /// Someone (or the timeout) decided first.
    #[error("{0}")]
    Decided(String),
    #[error("this review request expired; GitHub is told it was rejected")]
    Expired,
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for DecideError {
    fn from(e: StoreError) -> Self {
        DecideError::Store(e)
    }
}

/// A decision taken, and what became of its review so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    pub request: Request,
    /// A line for the log.
    pub log: String,
}

fn minutes_text(minutes: i64) -> String {
    if minutes >= 60 && minutes % 60 == 0 {
        format!("{} h", minutes / 60)
    } else {
        format!("{minutes} min")
    }
}

/// How long request `r` waited for a decision before it expired.
fn timeout_text(r: &Request) -> String {
    minutes_text((r.expires_at - r.created_at) / 60_000)
}

/// The review's body: its state, the environment, and a comment naming who decided
/// (a Telegram user by name and id).
pub fn review_body(r: &Request, state: Review) -> serde_json::Value {
    let verb = match state {
        Review::Approved => "Approved",
        Review::Rejected => "Rejected",
    };
    let comment = match (&r.decided_by, r.decided_by_id) {
        (Some(by), Some(id)) => {
            format!("{verb} in Telegram by {by} (Telegram user {id}) via edge-notifier")
        }
        (Some(by), None) => format!("{verb} by {by} via edge-notifier"),
        (None, _) => format!(
            "{verb} by edge-notifier: nobody decided within {}",
            timeout_text(r)
        ),
    };
    serde_json::json!({
        "environment_name": r.environment,
        "state": state.as_str(),
        "comment": comment,
    })
}

/// The status a review GitHub took ends in.
fn reviewed(r: &Request, state: Review) -> Status {
    match (state, &r.decided_by) {
        (Review::Rejected, None) => Status::TimedOut,
        (Review::Rejected, Some(_)) => Status::Rejected,
        (Review::Approved, _) => Status::Approved,
    }
}

/// The branch of a request's ref, when it is one.
fn branch(r: &Request) -> Option<&str> {
    let git_ref = r.git_ref.as_deref()?;
    Some(git_ref.strip_prefix("refs/heads/").unwrap_or(git_ref)).filter(|b| !b.starts_with("refs/"))
}

/// The run's page, on github.com only (a GitHub Enterprise Server's web host is not
/// known from its API base).
fn run_url(r: &Request, api_base: &str) -> Option<String> {
    (api_base == crate::github::client::DEFAULT_API_BASE).then(|| {
        format!(
            "https://github.com/{}/actions/runs/{}",
            r.repository, r.run_id
        )
    })
}

/// Its message, Telegram HTML; every value from outside is escaped. `project` is the
/// app it belongs to (or the repository).
pub fn render(r: &Request, project: &str, run_url: Option<&str>) -> String {
    // Pushed piece by piece: one `format!` per line costs the upload more.
    let mut out = String::with_capacity(512);
    let mut put = |pieces: &[&str]| pieces.iter().for_each(|p| out.push_str(p));
    let short = &r.sha[..r.sha.len().min(7)];
    put(&[
        "<b>🛡 Deployment review: ",
        &escape_html(project),
        " → ",
        &escape_html(&r.environment),
        "</b>\n<b>Repository:</b> ",
        &escape_html(&r.repository),
        "\n<b>Commit:</b> <code>",
        short,
        "</code>",
    ]);
    if let Some(b) = branch(r) {
        put(&[" on ", &escape_html(b)]);
    }
    let run = r.run_id.to_string();
    match run_url {
        Some(url) => put(&[
            "\n<b>Run:</b> <a href=\"",
            &escape_html(url),
            "\">",
            &run,
            "</a>",
        ]),
        None => put(&["\n<b>Run:</b> ", &run]),
    }
    match (&r.trigger, &r.sender) {
        (Some(t), Some(s)) => put(&[" (", &escape_html(t), " by ", &escape_html(s), ")"]),
        (Some(t), None) => put(&[" (", &escape_html(t), ")"]),
        (None, Some(s)) => put(&[" (by ", &escape_html(s), ")"]),
        (None, None) => {}
    }
    put(&["\n<b>Status:</b> "]);
    let by = escape_html(r.decided_by.as_deref().unwrap_or(""));
    let state = r.state.map_or("decided", Review::as_str);
    match (r.status, r.decided_by.is_some()) {
        (Status::Pending, _) => put(&[
            "⏳ waiting for approval until ",
            &Timestamp::from_millis(r.expires_at).to_human(),
        ]),
        (Status::Reviewing, false) => put(&[
            "⌛ nobody decided within ",
            &timeout_text(r),
            "; rejecting it on GitHub",
        ]),
        (Status::Reviewing, true) => put(&["📨 ", state, " by ", &by, "; telling GitHub"]),
        (Status::Approved, _) => put(&["✅ approved by ", &by]),
        (Status::Rejected, _) => put(&["❌ rejected by ", &by]),
        (Status::TimedOut, _) => put(&[
            "⌛ rejected on GitHub: nobody decided within ",
            &timeout_text(r),
        ]),
        (Status::Failed, decided) => {
            let error: String = r
                .last_error
                .as_deref()
                .unwrap_or("no answer")
                .chars()
                .take(500)
                .collect();
            if decided {
                put(&["⚠️ ", state, " by ", &by]);
            } else {
                put(&["⚠️ rejected for the timeout"]);
            }
            put(&[
                ", but GitHub did not take the review: ",
                &escape_html(&error),
            ]);
        }
    }
    out
}

/// The app a request's message belongs to: the one registered for its repository
/// that deploys to its environment, else the first registered for it. Its name is
/// the routes' `project` and its `telegram_chat_id` a route of its own; without one
/// the repository is the project.
async fn owner<P: Ports>(
    deps: &Deps<'_, P>,
    r: &Request,
) -> Result<(String, Option<String>), StoreError> {
    let Some(repo) = crate::github::RepoFullName::parse(&r.repository) else {
        return Ok((r.repository.clone(), None));
    };
    let apps = crate::apps::AppStore::new(deps.sql)
        .for_repository(&repo)
        .await?;
    let named = apps
        .iter()
        .find(|a| {
            a.app
                .deploy
                .as_ref()
                .is_some_and(|d| d.environment == r.environment)
        })
        .or(apps.first());
    Ok(match named {
        Some(a) => (a.name.as_str().to_owned(), a.app.telegram_chat_id.clone()),
        None => (r.repository.clone(), None),
    })
}

/// Brings request `r`'s message up to date wherever the routes send it (`source`
/// `deploy`, the app or repository as `project`). Best effort; a line for the log
/// if something went wrong.
async fn show<P: Ports>(deps: &Deps<'_, P>, r: &Request, now: Timestamp) -> Option<String> {
    let (project, app_chat) = match owner(deps, r).await {
        Ok(o) => o,
        Err(e) => return Some(format!("telegram: protection request {}: {e}", r.id)),
    };
    let api_base = deps
        .config
        .github
        .as_ref()
        .map_or("", |g| g.api_base.as_str());
    let url = run_url(r, api_base);
    let outcome = match r.status {
        Status::Pending | Status::Reviewing => Outcome::InProgress,
        Status::Approved => Outcome::Success,
        Status::Rejected | Status::TimedOut | Status::Failed => Outcome::Failure,
    };
    let mut values = Values::default()
        .with(Field::Project, project.as_str())
        .with(Field::Environment, r.environment.as_str())
        .with(
            Field::EnvironmentEmoji,
            crate::html::env_emoji(&r.environment),
        )
        .with(Field::Commit, r.sha.as_str())
        .with(
            Field::CommitShort,
            r.sha.chars().take(7).collect::<String>(),
        )
        .with(Field::Status, r.status.as_str())
        .with(Field::Time, Timestamp::from_millis(r.updated_at).to_human());
    values.set(Field::Branch, branch(r).map(str::to_owned));
    values.set(Field::Author, r.sender.clone());
    values.set(Field::Url, url.clone());
    let live = Live {
        subject: format!("protection:{}", r.id),
        source: Source::Deploy,
        project: &project,
        environment: Some(&r.environment),
        branch: branch(r),
        outcome,
        html: render(r, &project, url.as_deref()),
        values,
        silent: false,
        app_chat: app_chat.as_deref(),
        buttons: offered(r).to_vec(),
    };
    crate::live::show(deps.config, deps.sql, deps.queue, &live, now).await
}

/// The buttons request `r`'s message offers: Approve and Reject while it is pending.
fn offered(r: &Request) -> &'static [Action] {
    match r.status {
        Status::Pending => &[Action::Approve, Action::Reject],
        _ => &[],
    }
}

/// Whether request `id` still offers `action` (a button pressed on its message).
pub async fn offers<S: Sql>(sql: S, id: i64, action: Action) -> Result<bool, StoreError> {
    Ok(ProtectionStore::new(sql)
        .get(id)
        .await?
        .is_some_and(|r| offered(&r).contains(&action)))
}

/// Brings request `id`'s message up to date (after a press); what went wrong, for
/// the log.
pub async fn show_request<P: Ports>(deps: &Deps<'_, P>, id: i64, now: Timestamp) -> Option<String> {
    match ProtectionStore::new(deps.sql).get(id).await {
        Ok(Some(r)) => show(deps, &r, now).await,
        Ok(None) => None,
        Err(e) => Some(format!("telegram: protection request {id}: {e}")),
    }
}

/// Why a protection rule's review cannot be sent by this Worker, if it cannot.
fn unreviewable(deps_config: &crate::config::Config) -> Option<&'static str> {
    let app = deps_config
        .github
        .as_ref()
        .ok()
        .and_then(|g| g.app.as_ref());
    app.is_none().then_some(
        "deployment protection rules are reviewed through the GitHub App, and GITHUB_APP_ID is not configured",
    )
}

/// A recorded `deployment_protection_rule` delivery: its request (once per
/// delivery) and its message. Returns the delivery log's detail.
pub async fn on_event<P: Ports>(
    deps: &Deps<'_, P>,
    delivery: &DeliveryId,
    rule: &ProtectionRuleEvent,
    now: Timestamp,
) -> Result<String, ProcessError> {
    if rule.action != "requested" {
        return Ok(format!("nothing to do for action {}", rule.action));
    }
    if let Some(why) = unreviewable(deps.config) {
        return Ok(why.to_owned());
    }
    let Some(installation) = rule.installation_id else {
        return Ok("the delivery names no installation to review it as".to_owned());
    };
    let minutes = deps.config.protection_timeout_minutes;
    let expires_at = now.plus_seconds(i64::from(minutes) * 60);
    let requests = ProtectionStore::new(deps.sql);
    let id = requests
        .insert(delivery, rule, installation, expires_at, now)
        .await
        .map_err(ProcessError::during("protection request"))?;
    let Some(request) = requests
        .get(id)
        .await
        .map_err(ProcessError::during("protection request"))?
    else {
        return Err(ProcessError::Permanent(format!(
            "protection request {id} is gone"
        )));
    };
    let mut detail = format!(
        "protection request {id}: {} to {} at {} is {}",
        rule.repository.as_str(),
        rule.environment,
        rule.sha.short(),
        request.status.as_str()
    );
    if let Some(problem) = show(deps, &request, now).await {
        detail.push_str(&format!(" ({problem})"));
    }
    Ok(detail)
}

/// Decides request `id` for `reviewer`, once: the first decision (or the timeout)
/// wins, and a request past its expiry takes none. The review is then sent at once
/// (or scheduled again after a transient failure), and the message shows it.
pub async fn decide<P: Ports>(
    deps: &Deps<'_, P>,
    id: i64,
    state: Review,
    reviewer: Reviewer<'_>,
    now: Timestamp,
) -> Result<Decided, DecideError> {
    let requests = ProtectionStore::new(deps.sql);
    let taken = requests
        .decide(
            id,
            state,
            (reviewer.name, reviewer.telegram_user),
            reviewer.key,
            now,
        )
        .await?;
    if taken.is_none() {
        let r = requests.get(id).await?.ok_or(DecideError::NotFound)?;
        let ours = reviewer.key.is_some() && r.decided_key.as_deref() == reviewer.key;
        if !ours {
            return Err(match &r.decided_by {
                // Pending past its expiry (the cron has not come yet), or its timeout.
                None => DecideError::Expired,
                Some(by) => DecideError::Decided(format!(
                    "already {} by {by}",
                    r.state.map_or(r.status.as_str(), Review::as_str)
                )),
            });
        }
    }
    let log = match send_review(deps, id, now).await {
        Ok(Some(line)) => line,
        Ok(None) => format!("protection request {id}: its review is being sent"),
        Err(e) => format!("protection request {id}: decided; {e}; the cron sends the review"),
    };
    let request = requests.get(id).await?.ok_or(DecideError::NotFound)?;
    Ok(Decided { request, log })
}

impl Decided {
    /// What came of the decision, for the audit trail: the review GitHub took, or
    /// one being sent again; `Err` when GitHub did not take it.
    pub fn outcome(&self) -> Result<String, String> {
        let r = &self.request;
        match r.status {
            Status::Failed => Err(format!(
                "GitHub did not take the review: {}",
                r.last_error.as_deref().unwrap_or("no answer")
            )),
            Status::Reviewing => Ok("the review is being sent again".into()),
            _ => Ok("GitHub took the review".into()),
        }
    }
}

/// A decision through the admin API (`POST /api/protection/{id}/approve|reject`),
/// recorded in the audit trail as the admin API's, taken or refused.
pub async fn decide_for_admin<P: Ports>(
    deps: &Deps<'_, P>,
    id: i64,
    state: Review,
    now: Timestamp,
) -> Result<Decided, DecideError> {
    const ADMIN: &str = "admin API";
    let reviewer = Reviewer {
        name: ADMIN,
        telegram_user: None,
        key: None,
    };
    let decided = decide(deps, id, state, reviewer, now).await;
    let (result, detail) = match &decided {
        Ok(d) => match d.outcome() {
            Ok(done) => (AuditOutcome::Done, done),
            Err(failed) => (AuditOutcome::Failed, failed),
        },
        Err(DecideError::NotFound | DecideError::Store(_)) => return decided,
        Err(e) => (AuditOutcome::Refused, e.to_string()),
    };
    let entry = Entry {
        subject_kind: SubjectKind::Protection,
        subject_id: id.to_string(),
        action: match state {
            Review::Approved => Action::Approve,
            Review::Rejected => Action::Reject,
        }
        .as_str()
        .to_owned(),
        result,
        detail: Some(detail),
        actor: ADMIN.into(),
        user_id: None,
        chat_id: None,
        update_id: None,
        at: now.millis(),
    };
    AuditStore::new(deps.sql).record(&entry).await?;
    decided
}

/// A `protection_review` message: sends request `id`'s review if it is decided and
/// its claim allows.
pub async fn run_review<P: Ports>(deps: &Deps<'_, P>, id: i64, now: Timestamp) -> Run {
    match send_review(deps, id, now).await {
        Ok(Some(line)) => Run::ack(line),
        Ok(None) => Run::ack(format!("protection request {id}: no review due")),
        Err(e) => Run::retry(
            crate::retry::BACKOFF_BASE_SECONDS,
            format!("protection request {id}: {e}"),
        ),
    }
}

/// One attempt at sending request `id`'s review, under its claim. `None` when there
/// is nothing to send now (not decided, finished, or held by another attempt).
async fn send_review<P: Ports>(
    deps: &Deps<'_, P>,
    id: i64,
    now: Timestamp,
) -> Result<Option<String>, StoreError> {
    let requests = ProtectionStore::new(deps.sql);
    let Some(r) = requests.claim(id, deps.config.step_claims(), now).await? else {
        return Ok(None);
    };
    let Some(state) = r.state else {
        // Every decision records its state; a row without one is told so.
        let why = "decided without a state";
        requests.finish(id, Status::Failed, Some(why), now).await?;
        return Ok(Some(format!("protection request {id}: {why}")));
    };
    let sent = match unreviewable(deps.config) {
        Some(why) => Err(crate::github::client::GithubError::Rejected(why.to_owned())),
        None => match u64::try_from(r.installation_id) {
            Ok(installation) => match github_for(deps, Some(installation), now).await {
                Ok(gh) => GithubClient::new(deps.http, &gh)
                    .call(
                        Method::Post,
                        &format!(
                            "/repos/{}/actions/runs/{}/deployment_protection_rule",
                            r.repository, r.run_id
                        ),
                        Some(review_body(&r, state)),
                    )
                    .await
                    .map(drop),
                Err(e) => Err(e),
            },
            Err(_) => Err(crate::github::client::GithubError::Rejected(
                "the installation id is not a GitHub installation".into(),
            )),
        },
    };
    let (after, mut line) = match sent {
        Ok(()) => {
            let status = reviewed(&r, state);
            (
                requests.finish(id, status, None, now).await?,
                format!(
                    "protection request {id}: GitHub took the review ({})",
                    status.as_str()
                ),
            )
        }
        Err(e) if e.is_transient() && r.attempts + 1 < MAX_STEP_ATTEMPTS => {
            let attempt = u32::try_from(r.attempts + 1).unwrap_or(u32::MAX);
            let delay = crate::retry::backoff_seconds(attempt);
            requests
                .release(id, &e.to_string(), now.plus_seconds(i64::from(delay)), now)
                .await?;
            let mut line =
                format!("protection request {id}: {e}; the review is sent again in {delay} s");
            if let Err(q) = deps
                .queue
                .send_later(&JobMessage::ProtectionReview { id }, delay)
                .await
            {
                line.push_str(&format!(" ({q}; the cron will send it)"));
            }
            (requests.get(id).await?, line)
        }
        Err(e) => (
            requests
                .finish(id, Status::Failed, Some(&e.to_string()), now)
                .await?,
            format!("protection request {id}: the review failed: {e}"),
        ),
    };
    if let Some(r) = after {
        if let Some(problem) = show(deps, &r, now).await {
            line.push_str(&format!(" ({problem})"));
        }
    }
    Ok(Some(line))
}

/// The cron's part: requests past their expiry are rejected (their reviews sent),
/// and decided reviews whose message was lost are sent again. Lines for the log.
pub async fn sweep<P: Ports>(deps: &Deps<'_, P>, now: Timestamp) -> Vec<String> {
    let requests = ProtectionStore::new(deps.sql);
    let mut due = match requests.expire(now).await {
        Ok(ids) => ids,
        Err(e) => return vec![format!("protection sweep: {e}")],
    };
    let mut log: Vec<String> = due
        .iter()
        .map(|id| format!("protection request {id} expired: rejecting it"))
        .collect();
    let cutoff = now.minus_seconds(i64::from(deps.config.sweep_after_seconds));
    match requests.lost(cutoff, deps.config.step_claims(), now).await {
        Ok(ids) => {
            for id in ids {
                if due.contains(&id) {
                    continue;
                }
                log.push(format!("protection request {id}: its review is sent again"));
                due.push(id);
            }
        }
        Err(e) => log.push(format!("protection sweep: {e}")),
    }
    for id in due {
        if let Err(e) = deps.queue.send(&JobMessage::ProtectionReview { id }).await {
            log.push(format!("protection request {id}: {e}"));
        }
    }
    log
}

#[cfg(test)]
mod tests;
