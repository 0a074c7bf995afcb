//! The Roll back button of a Worker's or a Pages project's notification
//! (`CLOUDFLARE_ROLLBACK=on`): which notifications offer it ([`offers_rollback`])
//! and what a press does ([`roll_back`]): list the deployments, pick what goes live
//! again (`crate::cloudflare::rollback`), send the rollback, and show the outcome in
//! place in each of the notification's messages.
//!
//! A press is idempotent and resumable. One row per notification
//! (`cloudflare_rollbacks`) holds who asked, what was chosen and how far it got; a
//! second press, or a retry, continues it. The rollback is sent only by the attempt
//! that moves the row from `choosing` to `posting`, so at most once. One that got no
//! answer (a 5xx, a timeout) is `unconfirmed`: later attempts look for it among the
//! deployments and never send it again. A refusal is final.

use crate::audit::SubjectKind;
use crate::chatops::{Action, SubjectRef};
pub use crate::cloudflare::rollback::offers_rollback;
use crate::cloudflare::rollback::{annotation, Choice, RollbackError, Target};
use crate::cloudflare::CloudflareClient;
use crate::config::{CloudflareConfig, Config};
use crate::flow::{Deps, Ports, MAX_STEP_ATTEMPTS};
use crate::html::{escape_html, utf16_len, Rendered, MAX_MESSAGE_CHARS};
use crate::jobs::JobMessage;
use crate::json::{FromJson, Names};
use crate::live::LiveStore;
use crate::notify::deliver::message_for;
use crate::notify::sends::SendStore;
use crate::notify::store::NotificationStore;
use crate::notify::{DeployKind, Deployment, Source};
use crate::ports::{Queue, Row, Sql, StoreError};
use crate::routing::Recipient;
use crate::time::Timestamp;

/// A rollback that happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolledBack {
    pub kind: DeployKind,
    pub project: String,
    /// The deployment that was live.
    pub from: String,
    /// What is live again: a Worker version id or a Pages deployment id.
    pub to: String,
    /// How the message names it.
    pub label: String,
    /// The deployment live now, when Cloudflare named it (a Worker's new one).
    pub deployment: Option<String>,
    /// Who pressed.
    pub by: String,
}

/// Where a rollback is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Names)]
#[serde(rename_all = "snake_case")]
enum Status {
    Choosing,
    Posting,
    Unconfirmed,
    Done,
    Refused,
    Failed,
}

impl Status {
    fn is_final(self) -> bool {
        matches!(self, Status::Done | Status::Refused | Status::Failed)
    }
}

/// A `cloudflare_rollbacks` row.
#[derive(Debug, Clone, PartialEq, FromJson)]
struct Rollback {
    id: i64,
    requested_by: String,
    status: Status,
    live_deployment: Option<String>,
    target: Option<String>,
    target_label: Option<String>,
    message: Option<String>,
    new_deployment: Option<String>,
    result: Option<String>,
    attempts: i64,
    claimed_at: Option<i64>,
    posted_at: Option<i64>,
}

impl Rollback {
    fn choice(&self) -> Choice {
        Choice {
            live: self.live_deployment.clone().unwrap_or_default(),
            to: self.target.clone().unwrap_or_default(),
            label: self.target_label.clone().unwrap_or_default(),
        }
    }

    fn result(&self) -> String {
        self.result.clone().unwrap_or_default()
    }

    /// What a final row came to (a row still on its way: try again later).
    fn outcome(&self, d: &Deployment) -> Result<RolledBack, RollbackError> {
        let choice = self.choice();
        match self.status {
            Status::Done => Ok(RolledBack {
                kind: d.kind,
                project: d.project_name.clone(),
                from: choice.live,
                to: choice.to,
                label: choice.label,
                deployment: self.new_deployment.clone(),
                by: self.requested_by.clone(),
            }),
            Status::Refused => Err(RollbackError::Refused(self.result())),
            Status::Failed => Err(RollbackError::Final(self.result())),
            Status::Choosing | Status::Posting | Status::Unconfirmed => Err(under_way(d)),
        }
    }

    /// The line the notification's messages show for a final row.
    fn line(&self) -> String {
        let by = &self.requested_by;
        let line = match self.status {
            Status::Done => format!(
                "↩️ Rolled back by {by} to {}",
                self.target_label
                    .as_deref()
                    .unwrap_or("the previous version")
            ),
            Status::Refused => format!(
                "⛔ Rollback by {by} refused by Cloudflare: {}",
                self.result()
            ),
            _ => format!("⚠️ Rollback by {by} failed: {}", self.result()),
        };
        crate::text::cut(&line, MAX_LINE)
    }
}

/// The outcome line is cut to this many characters (Cloudflare's refusals can be
/// long; the message must stay within Telegram's 4,096).
const MAX_LINE: usize = 1024;

const COLUMNS: &str = "id, requested_by, status, live_deployment, target, target_label, message, \
     new_deployment, result, attempts, claimed_at, posted_at";

/// The `cloudflare_rollbacks` rows.
struct RollbackStore<S> {
    sql: S,
}

impl<S: Sql> RollbackStore<S> {
    async fn one(
        &self,
        sql: &str,
        params: &[crate::ports::SqlValue],
    ) -> Result<Option<Rollback>, StoreError> {
        let rows = self.sql.query(sql, params).await?;
        rows.into_iter()
            .next()
            .map(|r: Row| {
                crate::json::from_value(&serde_json::Value::Object(r)).map_err(StoreError::row)
            })
            .transpose()
    }

    /// Notification `id`'s rollback, opened for `by` unless it has one.
    async fn open(
        &self,
        id: i64,
        d: &Deployment,
        by: &str,
        now: Timestamp,
    ) -> Result<Rollback, StoreError> {
        self.one(
            &format!(
                "INSERT INTO cloudflare_rollbacks \
                 (notification_id, kind, project, requested_by, status, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, 'choosing', ?5, ?5) \
                 ON CONFLICT (notification_id) DO UPDATE SET notification_id = excluded.notification_id \
                 RETURNING {COLUMNS}"
            ),
            &[
                id.into(),
                d.kind.as_str().into(),
                d.project_name.as_str().into(),
                by.into(),
                now.millis().into(),
            ],
        )
        .await?
        .ok_or_else(|| StoreError::Row(format!("rollback of notification {id}: not returned")))
    }

    /// Notification `id`'s rollback, if one was asked for.
    async fn of(&self, id: i64) -> Result<Option<Rollback>, StoreError> {
        self.one(
            &format!("SELECT {COLUMNS} FROM cloudflare_rollbacks WHERE notification_id = ?1"),
            &[id.into()],
        )
        .await
    }

    /// Claims rollback `id` for one attempt, unless it is final or a fresh claim
    /// holds it. A stale claim on `posting` (its attempt died, maybe after sending)
    /// makes it `unconfirmed`.
    async fn claim(
        &self,
        id: i64,
        now: Timestamp,
        stale_before: Timestamp,
    ) -> Result<Option<Rollback>, StoreError> {
        self.one(
            &format!(
                "UPDATE cloudflare_rollbacks SET claimed_at = ?2, attempts = attempts + 1, updated_at = ?2, \
                   status = CASE status WHEN 'posting' THEN 'unconfirmed' ELSE status END \
                 WHERE id = ?1 AND status IN ('choosing', 'posting', 'unconfirmed') \
                   AND (claimed_at IS NULL OR claimed_at < ?3) \
                 RETURNING {COLUMNS}"
            ),
            &[id.into(), now.millis().into(), stale_before.millis().into()],
        )
        .await
    }

    /// Records the choice and with it the one right to send it; `false` when the
    /// claim `claim` no longer holds the row.
    async fn chosen(
        &self,
        id: i64,
        claim: i64,
        choice: &Choice,
        message: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let done = self
            .sql
            .execute(
                "UPDATE cloudflare_rollbacks SET status = 'posting', live_deployment = ?3, target = ?4, \
                   target_label = ?5, message = ?6, posted_at = ?7, updated_at = ?7 \
                 WHERE id = ?1 AND status = 'choosing' AND claimed_at = ?2",
                &[
                    id.into(),
                    claim.into(),
                    choice.live.as_str().into(),
                    choice.to.as_str().into(),
                    choice.label.as_str().into(),
                    message.into(),
                    now.millis().into(),
                ],
            )
            .await?;
        Ok(done.changes == 1)
    }

    /// Ends the attempt holding claim `claim`; the row as it is now, or `None` when
    /// the claim no longer held it.
    async fn settle(
        &self,
        id: i64,
        claim: i64,
        status: Status,
        result: Option<String>,
        deployment: Option<String>,
        now: Timestamp,
    ) -> Result<Option<Rollback>, StoreError> {
        self.one(
            &format!(
                "UPDATE cloudflare_rollbacks SET status = ?3, result = COALESCE(?4, result), \
                   new_deployment = COALESCE(?5, new_deployment), claimed_at = NULL, updated_at = ?6 \
                 WHERE id = ?1 AND claimed_at = ?2 RETURNING {COLUMNS}"
            ),
            &[
                id.into(),
                claim.into(),
                status.as_str().into(),
                result.into(),
                deployment.into(),
                now.millis().into(),
            ],
        )
        .await
    }
}

/// Another attempt holds the rollback: try again later.
fn under_way(d: &Deployment) -> RollbackError {
    RollbackError::Later(format!("the rollback of {} is under way", d.project_name))
}

fn later(e: StoreError) -> RollbackError {
    RollbackError::Later(e.to_string())
}

/// What a press on notification `id`'s Roll back button does, for user `by` (the
/// name the message and the annotation show, e.g. `@alice`): the rollback, once,
/// however often it is called. Its outcome is shown in the notification's
/// messages (edited at their chats' pace) and answered: what went live, or why
/// nothing did ([`RollbackError::Refused`] in Cloudflare's words, or
/// [`RollbackError::Final`]). [`RollbackError::Later`] asks the caller to call
/// again later (through the queue): a read failed, another attempt holds it, or the
/// rollback got no answer and is to be looked for. After [`MAX_STEP_ATTEMPTS`]
/// attempts it fails.
pub async fn roll_back<P: Ports>(
    deps: &Deps<'_, P>,
    id: i64,
    by: &str,
    now: Timestamp,
) -> Result<RolledBack, RollbackError> {
    let config = deps.config;
    let cf = match (&config.cloudflare, config.cloudflare_rollback) {
        (Ok(cf), true) => cf,
        (Err(missing), _) => return Err(RollbackError::NotConfigured(missing)),
        (Ok(_), false) => return Err(RollbackError::NotConfigured("CLOUDFLARE_ROLLBACK")),
    };
    let d = NotificationStore::new(deps.sql)
        .deployment(id)
        .await
        .map_err(later)?
        .ok_or_else(|| RollbackError::Final(format!("notification {id} does not exist")))?;
    if !offers_rollback(config, &d) {
        return Err(RollbackError::Final(format!(
            "{} is not a production deployment: nothing to roll back",
            d.project_name
        )));
    }
    let store = RollbackStore { sql: deps.sql };
    let mut row = store.open(id, &d, by, now).await.map_err(later)?;
    if !row.status.is_final() {
        let stale_before = config.step_claims().stale_before(now);
        row = match store
            .claim(row.id, now, stale_before)
            .await
            .map_err(later)?
        {
            Some(claimed) => attempt(deps, cf, &store, &d, claimed, now).await?,
            None => return row.outcome(&d),
        };
        if !row.status.is_final() {
            return Err(RollbackError::Later(row.result()));
        }
    }
    announce(deps, id, &d, Some(&row.line()), now)
        .await
        .map_err(later)?;
    row.outcome(&d)
}

/// The chat-ops subject of notification `id`'s buttons: `notification:12`.
pub fn subject(id: i64) -> String {
    SubjectRef {
        kind: SubjectKind::Notification,
        id,
    }
    .text()
}

/// Whether notification `id` still offers its Roll back button: it does, and no
/// rollback was asked for yet (a press on another of its messages, or before).
pub async fn offers<S: Sql + Copy>(config: &Config, sql: S, id: i64) -> Result<bool, StoreError> {
    let Some(d) = NotificationStore::new(sql).deployment(id).await? else {
        return Ok(false);
    };
    Ok(offers_rollback(config, &d) && RollbackStore { sql }.of(id).await?.is_none())
}

/// Brings notification `id`'s messages up to date after a press that did nothing
/// (a stale or expired button): the rollback's outcome once it has one, else, while
/// it still offers it, the message with a fresh button. What went wrong, for the log.
pub async fn show<P: Ports>(deps: &Deps<'_, P>, id: i64, now: Timestamp) -> Option<String> {
    let shown = async {
        let Some(d) = NotificationStore::new(deps.sql).deployment(id).await? else {
            return Ok(());
        };
        match (RollbackStore { sql: deps.sql }).of(id).await? {
            Some(row) if row.status.is_final() => {
                announce(deps, id, &d, Some(&row.line()), now).await
            }
            None if offers_rollback(deps.config, &d) => announce(deps, id, &d, None, now).await,
            _ => Ok(()),
        }
    };
    shown
        .await
        .err()
        .map(|e: StoreError| format!("notification {id}'s messages: {e}"))
}

/// One attempt on a claimed row: choose and send, or look for a rollback that got
/// no answer. Answers the row as it is afterwards.
async fn attempt<P: Ports>(
    deps: &Deps<'_, P>,
    cf: &CloudflareConfig,
    store: &RollbackStore<P::S>,
    d: &Deployment,
    row: Rollback,
    now: Timestamp,
) -> Result<Rollback, RollbackError> {
    let client = CloudflareClient::new(deps.http, cf);
    let target = Target {
        kind: d.kind,
        name: &d.project_name,
        announced: (d.source == Source::Poll).then(|| d.deployment_id.as_str()),
    };
    let claim = row.claimed_at.unwrap_or_default();
    let last = row.attempts >= MAX_STEP_ATTEMPTS;
    let (status, result, deployment) = if row.status == Status::Unconfirmed {
        let message = row.message.clone().unwrap_or_default();
        let sent = Timestamp::from_millis(row.posted_at.unwrap_or(claim));
        match client
            .find_rollback(target, &row.choice(), &message, sent)
            .await
        {
            Ok(Some(live)) => (Status::Done, None, Some(live)),
            Ok(None) => (
                Status::Failed,
                Some(format!(
                    "{}; it does not show among the deployments, and it was not sent again",
                    row.result()
                )),
                None,
            ),
            Err(RollbackError::Later(_)) if !last => (Status::Unconfirmed, None, None),
            Err(e) => (
                Status::Failed,
                Some(format!(
                    "{}; whether it happened could not be read ({e}), and it was not sent again: \
                     see the Cloudflare dashboard",
                    row.result()
                )),
                None,
            ),
        }
    } else {
        match client.choose(target).await {
            Ok(choice) => {
                let message = annotation(&row.requested_by);
                if !store
                    .chosen(row.id, claim, &choice, &message, now)
                    .await
                    .map_err(later)?
                {
                    return Err(under_way(d));
                }
                match client.send_rollback(target, &choice, &message).await {
                    Ok(live) => (Status::Done, None, live),
                    Err(RollbackError::Refused(e)) => (Status::Refused, Some(e), None),
                    Err(e @ RollbackError::Unconfirmed(_)) => {
                        (Status::Unconfirmed, Some(e.to_string()), None)
                    }
                    Err(e) => (Status::Failed, Some(e.to_string()), None),
                }
            }
            Err(RollbackError::Later(e)) if !last => (Status::Choosing, Some(e), None),
            Err(RollbackError::Later(e)) => (
                Status::Failed,
                Some(format!("{e} (gave up after {} attempts)", row.attempts)),
                None,
            ),
            Err(e) => (Status::Failed, Some(e.to_string()), None),
        }
    };
    store
        .settle(row.id, claim, status, result, deployment, now)
        .await
        .map_err(later)?
        .ok_or_else(|| under_way(d))
}

/// Shows `line` under each of notification `id`'s messages (their live rows,
/// edited at their chats' pace, the button gone); without a line, the message as it
/// was with a fresh Roll back button.
async fn announce<P: Ports>(
    deps: &Deps<'_, P>,
    id: i64,
    d: &Deployment,
    line: Option<&str>,
    now: Timestamp,
) -> Result<(), StoreError> {
    let sent = SendStore::new(deps.sql).shown(id).await?;
    let shown: Vec<_> = sent
        .iter()
        .filter_map(|m| {
            let r: Recipient = crate::json::read(&m.destination).ok()?;
            let message = message_for(&r, d);
            let html = match line {
                Some(line) => with_line(&message, line, &d.project_name),
                None => message.html,
            };
            Some((m, html))
        })
        .collect();
    let buttons = match line {
        Some(_) => String::new(),
        None => crate::chatops::actions_text(&[Action::Rollback]),
    };
    let changed = LiveStore::new(deps.sql)
        .adopt(&subject(id), &d.project_name, &shown, &buttons, now)
        .await?;
    for live in changed {
        // A message that does not get onto the queue is found by the sweep.
        let _ = deps
            .queue
            .send(&JobMessage::TelegramLive { id: live })
            .await;
    }
    Ok(())
}

/// The message with the outcome under it; just the project and the outcome when
/// both would not fit in one Telegram message.
fn with_line(message: &Rendered, line: &str, project: &str) -> String {
    let escaped = escape_html(line);
    if utf16_len(&message.plain) + 2 + utf16_len(line) <= MAX_MESSAGE_CHARS {
        format!("{}\n\n{escaped}", message.html)
    } else {
        format!(
            "<b>{}</b>\n\n{escaped}",
            escape_html(&crate::text::cut(project, 128))
        )
    }
}

#[cfg(test)]
mod tests;
