//! The scheduled handler's two jobs: the poll fallback (announce deployments that no
//! hook announced) and the sweep (re-enqueue notifications whose queue message was
//! lost). Deciding is pure ([`triage`], [`Summary`]); [`poll`] and [`sweep`] do it.

use serde::Serialize;

use crate::cloudflare::{CloudflareClient, PolledDeployment, PolledState};
use crate::config::Config;
use crate::jobs::JobMessage;
use crate::notify::store::{NotificationStatus, NotificationStore};
use crate::notify::{project_scoped, DeployKind};
use crate::ports::{Http, Kv, Queue, Sql};
use crate::time::Timestamp;

/// KV key of the poll summary `{"workers":[...],"pages":[...],"lastCheck":...}`.
pub const SUMMARY_KEY: &str = "deployments:summary";
/// Ids kept per kind in the summary: far more than one page of the API returns, so
/// every id the poll can see again is in it.
pub const SUMMARY_LIMIT: usize = 100;
/// How long the summary lives in KV without a poll refreshing it (a week).
pub const SUMMARY_TTL_SECONDS: u64 = 7 * 24 * 3600;
/// Rows the sweep re-enqueues per run; the rest wait for the next run.
pub const SWEEP_BATCH: u32 = 100;

/// The deployments the poll has already handled, newest first, per kind, each as
/// `<project>:<id>` ([`project_scoped`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, crate::json::FromJson)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    #[serde(default)]
    pub workers: Vec<String>,
    #[serde(default)]
    pub pages: Vec<String>,
    pub last_check: Option<String>,
}

impl Summary {
    /// Reads the stored summary; an unreadable one is treated as empty (D1 still
    /// prevents repeats, the summary only saves lookups).
    pub fn parse(text: Option<&str>) -> Summary {
        text.and_then(|t| crate::json::read(t).ok())
            .unwrap_or_default()
    }

    fn ids(&self, kind: DeployKind) -> &Vec<String> {
        match kind {
            DeployKind::Worker => &self.workers,
            DeployKind::Pages => &self.pages,
        }
    }

    pub fn contains(&self, kind: DeployKind, project: &str, id: &str) -> bool {
        let entry = project_scoped(project, id);
        self.ids(kind).contains(&entry)
    }

    /// Puts the deployment first, removing an older copy, keeping at most
    /// [`SUMMARY_LIMIT`].
    pub fn remember(&mut self, kind: DeployKind, project: &str, id: &str) {
        let entry = project_scoped(project, id);
        let ids = match kind {
            DeployKind::Worker => &mut self.workers,
            DeployKind::Pages => &mut self.pages,
        };
        ids.retain(|x| *x != entry);
        ids.insert(0, entry);
        ids.truncate(SUMMARY_LIMIT);
    }
}

/// What the poll does with one deployment the API reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Triage {
    /// Handled by an earlier poll (in the summary).
    Seen,
    /// Still building: look again next time.
    NotYet,
    /// Record it without announcing: older than the lookback, or failed.
    RecordOnly,
    /// Announce it unless the database already knows it.
    Announce,
}

pub fn triage(
    d: &PolledDeployment,
    summary: &Summary,
    now: Timestamp,
    lookback_minutes: u32,
) -> Triage {
    let dep = &d.deployment;
    if summary.contains(dep.kind, &dep.project_name, dep.deployment_id.as_str()) {
        return Triage::Seen;
    }
    match d.state {
        PolledState::InProgress => Triage::NotYet,
        PolledState::Failed => Triage::RecordOnly,
        PolledState::Live => {
            let cutoff = now.minus_seconds(i64::from(lookback_minutes) * 60);
            if dep.timestamp < cutoff {
                Triage::RecordOnly
            } else {
                Triage::Announce
            }
        }
    }
}

/// What one poll run did, for the log and the tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PollReport {
    pub announced: Vec<String>,
    pub recorded: Vec<String>,
    /// One line per name that failed (the others still ran).
    pub errors: Vec<String>,
}

/// Polls every watched Worker and Pages project, records what is new and enqueues an
/// announcement for what no hook announced. One failing name does not stop the rest.
pub async fn poll<H: Http, S: Sql, K: Kv, Q: Queue>(
    config: &Config,
    http: &H,
    store: &NotificationStore<S>,
    kv: &K,
    queue: &Q,
    now: Timestamp,
) -> PollReport {
    let mut report = PollReport::default();
    if config.watch_workers.is_empty() && config.watch_pages.is_empty() {
        return report;
    }
    let cf = match &config.cloudflare {
        Ok(cf) => cf,
        Err(missing) => {
            report
                .errors
                .push(format!("poll skipped: {missing} is not configured"));
            return report;
        }
    };
    let client = CloudflareClient::new(http, cf);
    let mut summary = match kv.get(SUMMARY_KEY).await {
        Ok(text) => Summary::parse(text.as_deref()),
        Err(e) => {
            report
                .errors
                .push(format!("summary unreadable, polling without it: {e}"));
            Summary::default()
        }
    };

    let targets = config
        .watch_workers
        .iter()
        .map(|n| (DeployKind::Worker, n))
        .chain(config.watch_pages.iter().map(|n| (DeployKind::Pages, n)));
    for (kind, name) in targets {
        let listed = match kind {
            DeployKind::Worker => client.worker_deployments(name).await,
            DeployKind::Pages => client.pages_deployments(name).await,
        };
        let deployments = match listed {
            Ok(d) => d,
            Err(e) => {
                report.errors.push(format!("{} {name}: {e}", kind.as_str()));
                continue;
            }
        };
        // Oldest first, so the summary ends newest first and messages go out in order.
        for listed in deployments.iter().rev() {
            let d = match listed {
                Ok(d) => d,
                Err(e) => {
                    // This one alone: the rest of the page is still polled.
                    report.errors.push(format!("{} {name}: {e}", kind.as_str()));
                    continue;
                }
            };
            let dep = &d.deployment;
            let key = dep.dedupe_key();
            let status = match triage(d, &summary, now, config.poll_lookback_minutes) {
                Triage::Seen | Triage::NotYet => continue,
                Triage::RecordOnly => NotificationStatus::Recorded,
                Triage::Announce => {
                    match store
                        .is_known(
                            dep.kind,
                            &dep.deployment_id,
                            &dep.project_name,
                            dep.commit_hash.as_ref(),
                        )
                        .await
                    {
                        Ok(true) => NotificationStatus::Recorded,
                        Ok(false) => NotificationStatus::Pending,
                        Err(e) => {
                            report.errors.push(format!("{key}: {e}"));
                            continue;
                        }
                    }
                }
            };
            match store.insert(dep, status, now).await {
                Ok(Some(id)) if status == NotificationStatus::Pending => {
                    // A failed send leaves the row pending; the sweep enqueues it.
                    if let Err(e) = queue.send(&JobMessage::Notify { id }).await {
                        report
                            .errors
                            .push(format!("{key}: {e}; the sweep will retry"));
                    }
                    report.announced.push(key);
                }
                Ok(Some(_)) => report.recorded.push(key),
                Ok(None) => {}
                Err(e) => {
                    report.errors.push(format!("{key}: {e}"));
                    continue;
                }
            }
            summary.remember(dep.kind, &dep.project_name, dep.deployment_id.as_str());
        }
    }

    summary.last_check = Some(now.to_rfc3339());
    let text = serde_json::to_string(&summary).unwrap_or_default();
    if let Err(e) = kv.put(SUMMARY_KEY, &text, SUMMARY_TTL_SECONDS).await {
        report.errors.push(format!("summary not saved: {e}"));
    }
    report
}

/// What one sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    pub requeued: Vec<i64>,
    pub errors: Vec<String>,
}

/// Re-enqueues notifications whose queue message was evidently lost (see
/// [`NotificationStore::lost_rows`]). A duplicate delivery is harmless: consumers
/// claim a row before sending.
pub async fn sweep<S: Sql, Q: Queue>(
    config: &Config,
    store: &NotificationStore<S>,
    queue: &Q,
    now: Timestamp,
) -> SweepReport {
    let mut report = SweepReport::default();
    let cutoff = now.minus_seconds(i64::from(config.sweep_after_seconds));
    let ids = match store.lost_rows(cutoff, SWEEP_BATCH).await {
        Ok(ids) => ids,
        Err(e) => {
            report.errors.push(e.to_string());
            return report;
        }
    };
    for id in ids {
        match queue.send(&JobMessage::Notify { id }).await {
            Ok(()) => {
                if let Err(e) = store.mark_requeued(id, now).await {
                    report.errors.push(format!("notification {id}: {e}"));
                }
                report.requeued.push(id);
            }
            Err(e) => report.errors.push(format!("notification {id}: {e}")),
        }
    }
    report
}

#[cfg(test)]
mod tests;
