//! The audit trail: every action asked for from chat, and every refused attempt, in
//! one table (`audit_log`) for every kind of subject: a deploy job today, a
//! notification's Cloudflare rollback or a GitHub protection-rule review next. A
//! row says who (a Telegram user, or an actor by name), where (the chat), on what,
//! what, when and how it ended; one Telegram update records one row, however often
//! it is processed.

use serde::Serialize;

use crate::json::Names;
use crate::ports::{Sql, StoreError};
use crate::row::Columns;

/// What an action was about. Another kind of subject is one more variant (its
/// name is the `subject_kind` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Names)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    /// A deploy job (`deploy_jobs.id`).
    Job,
    /// A notification (`notifications.id`): its Cloudflare rollback.
    Notification,
    /// An app (its name), for what was asked of it before any job: a `/rollback`
    /// refused to someone who is not an operator.
    App,
    /// A GitHub deployment protection request (`protection_requests.id`).
    Protection,
    /// A GitHub delivery (`deliveries.id`): its replay from the status page.
    Delivery,
}

/// How an action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Names)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Done,
    /// Not done: who asked may not, the subject moved on, the button expired.
    Refused,
    /// Tried, and it failed.
    Failed,
}

/// One row of the trail, as it is recorded and as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub subject_kind: SubjectKind,
    pub subject_id: String,
    /// `cancel`, `rollback`, `retry`, …
    pub action: String,
    pub result: Outcome,
    /// What came of it (`job 14`) or why not (`not an operator`).
    pub detail: Option<String>,
    /// Who, as people read it: `@alice`, or a name.
    pub actor: String,
    /// The Telegram user's id, when it came from Telegram.
    pub user_id: Option<i64>,
    pub chat_id: Option<String>,
    /// The Telegram update it came from: one row per update.
    #[serde(skip)]
    pub update_id: Option<i64>,
    pub at: i64,
}

pub struct AuditStore<S> {
    sql: S,
}

impl<S: Sql> AuditStore<S> {
    pub fn new(sql: S) -> Self {
        AuditStore { sql }
    }

    /// Records `entry`; once per Telegram update (a second record of the same
    /// update changes nothing).
    pub async fn record(&self, entry: &Entry) -> Result<(), StoreError> {
        self.sql
            .execute(
                "INSERT INTO audit_log (subject_kind, subject_id, action, result, detail, actor, \
                   user_id, chat_id, update_id, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT DO NOTHING",
                &[
                    entry.subject_kind.as_str().into(),
                    entry.subject_id.as_str().into(),
                    entry.action.as_str().into(),
                    entry.result.as_str().into(),
                    entry.detail.as_deref().into(),
                    entry.actor.as_str().into(),
                    entry.user_id.into(),
                    entry.chat_id.as_deref().into(),
                    entry.update_id.into(),
                    entry.at.into(),
                ],
            )
            .await
            .map(drop)
    }

    /// The trail of one subject, oldest first.
    pub async fn of(&self, kind: SubjectKind, id: &str) -> Result<Vec<Entry>, StoreError> {
        let rows = self
            .sql
            .query(
                "SELECT action, result, detail, actor, user_id, chat_id, update_id, created_at \
                 FROM audit_log WHERE subject_kind = ?1 AND subject_id = ?2 ORDER BY id",
                &[kind.as_str().into(), id.into()],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Entry {
                    subject_kind: kind,
                    subject_id: id.to_owned(),
                    action: r.text("action")?,
                    result: r
                        .opt_text("result")
                        .and_then(|s| Outcome::parse(&s))
                        .ok_or_else(|| StoreError::Row("audit result".into()))?,
                    detail: r.opt_text("detail"),
                    actor: r.text("actor")?,
                    user_id: r.opt_int("user_id"),
                    chat_id: r.opt_text("chat_id"),
                    update_id: r.opt_int("update_id"),
                    at: r.opt_int("created_at").unwrap_or(0),
                })
            })
            .collect()
    }
}

impl Entry {
    /// "Rolled back by @alice" and what came of it, for the subject's message; `None`
    /// for what was not done.
    pub fn said(&self) -> Option<String> {
        if self.result != Outcome::Done {
            return None;
        }
        let done = match self.action.as_str() {
            "cancel" => "Cancelled",
            "rollback" => "Rolled back",
            "retry" => "Retried",
            "approve" => "Approved",
            "reject" => "Rejected",
            other => other,
        };
        Some(match &self.detail {
            Some(d) => format!("{done} by {} ({d})", self.actor),
            None => format!("{done} by {}", self.actor),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{block_on, SqliteSql};

    fn entry(action: &str, result: Outcome, update: Option<i64>) -> Entry {
        Entry {
            subject_kind: SubjectKind::Job,
            subject_id: "12".into(),
            action: action.into(),
            result,
            detail: Some("job 14".into()),
            actor: "@alice".into(),
            user_id: Some(42),
            chat_id: Some("-100".into()),
            update_id: update,
            at: 1_000,
        }
    }

    #[test]
    fn an_update_is_recorded_once_and_read_back_per_subject() {
        let db = SqliteSql::migrated();
        let store = AuditStore::new(&db);
        block_on(store.record(&entry("rollback", Outcome::Done, Some(7)))).expect("recorded");
        block_on(store.record(&entry("rollback", Outcome::Done, Some(7)))).expect("again");
        block_on(store.record(&entry("cancel", Outcome::Refused, Some(8)))).expect("recorded");
        // Without an update (an action asked for elsewhere), every record counts.
        block_on(store.record(&entry("retry", Outcome::Failed, None))).expect("recorded");
        block_on(store.record(&entry("retry", Outcome::Failed, None))).expect("recorded");
        let trail = block_on(store.of(SubjectKind::Job, "12")).expect("read");
        let got: Vec<(&str, Outcome)> = trail
            .iter()
            .map(|e| (e.action.as_str(), e.result))
            .collect();
        use Outcome::*;
        assert_eq!(
            got,
            vec![
                ("rollback", Done),
                ("cancel", Refused),
                ("retry", Failed),
                ("retry", Failed)
            ]
        );
        assert_eq!(trail[0], entry("rollback", Done, Some(7)));
        assert!(block_on(store.of(SubjectKind::Job, "13"))
            .expect("read")
            .is_empty());
    }

    #[test]
    fn only_what_was_done_is_said_in_the_message() {
        assert_eq!(
            entry("rollback", Outcome::Done, None).said().as_deref(),
            Some("Rolled back by @alice (job 14)")
        );
        let mut cancel = entry("cancel", Outcome::Done, None);
        cancel.detail = None;
        assert_eq!(cancel.said().as_deref(), Some("Cancelled by @alice"));
        assert_eq!(entry("retry", Outcome::Refused, None).said(), None);
    }
}
