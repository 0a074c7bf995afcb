//! The delivery log: one row per `X-GitHub-Delivery`, the idempotency key, with its
//! outcome for audit and its typed event for replay.

use serde::Serialize;
use serde_json::Value;

use super::events::GithubEvent;
use crate::json::{FromJson, Invalid, Obj, Path};
use crate::ports::{Sql, StoreError};
use crate::time::Timestamp;

/// A webhook delivery id (GitHub sends a GUID).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct DeliveryId(String);

/// Stored values are read back as written (validation happened on the way in).
impl FromJson for DeliveryId {
    fn from_json(v: &Value, at: Path<'_>) -> Result<Self, Invalid> {
        String::from_json(v, at).map(DeliveryId)
    }
}

impl DeliveryId {
    /// GitHub's ids are GUIDs; accept any short printable token so other senders
    /// (and replays) work, but nothing that could be mistaken for a path or a query.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        (!s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'))
        .then(|| DeliveryId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Its work was enqueued.
    Queued,
    /// No app uses this event (or it needs no work); recorded only.
    Ignored,
    /// Handled completely.
    Processed,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        crate::json::Names::name(self)
    }
}

impl crate::json::Names for Outcome {
    const NAMES: &'static [(&'static str, Self)] = &[
        ("queued", Outcome::Queued),
        ("ignored", Outcome::Ignored),
        ("processed", Outcome::Processed),
        ("failed", Outcome::Failed),
    ];
}

crate::named!(Outcome);

/// A delivery as the API lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryRecord {
    pub id: String,
    pub event: String,
    pub action: Option<String>,
    pub repository: Option<String>,
    pub outcome: Outcome,
    pub detail: Option<String>,
    pub received_at: i64,
    pub updated_at: i64,
}

impl FromJson for DeliveryRecord {
    fn from_json(v: &Value, at: Path<'_>) -> Result<Self, Invalid> {
        let o = Obj::new(v, at)?;
        Ok(DeliveryRecord {
            id: o.req("id")?,
            event: o.req("event")?,
            action: o.opt("action")?,
            repository: o.opt("repository")?,
            outcome: o.req("outcome")?,
            detail: o.opt("detail")?,
            received_at: o.req("received_at")?,
            updated_at: o.req("updated_at")?,
        })
    }
}

pub struct DeliveryStore<S> {
    sql: S,
}

impl<S: Sql> DeliveryStore<S> {
    pub fn new(sql: S) -> Self {
        DeliveryStore { sql }
    }

    /// Records a delivery unless its id was seen before; `false` for a redelivery.
    pub async fn record(
        &self,
        id: &DeliveryId,
        event: &GithubEvent,
        outcome: Outcome,
        detail: Option<&str>,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let (name, action, repository) = event.summary();
        let payload = serde_json::to_string(event).map_err(|e| StoreError(e.to_string()))?;
        let done = self
            .sql
            .execute(
                "INSERT INTO deliveries (id, event, action, repository, outcome, detail, payload, received_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8) ON CONFLICT (id) DO NOTHING",
                &[
                    id.as_str().into(),
                    name.into(),
                    action.into(),
                    repository.into(),
                    outcome.as_str().into(),
                    detail.into(),
                    payload.into(),
                    now.millis().into(),
                ],
            )
            .await?;
        Ok(done.changes == 1)
    }

    pub async fn set_outcome(
        &self,
        id: &DeliveryId,
        outcome: Outcome,
        detail: Option<&str>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.sql
            .execute(
                "UPDATE deliveries SET outcome = ?2, detail = ?3, updated_at = ?4 WHERE id = ?1",
                &[
                    id.as_str().into(),
                    outcome.as_str().into(),
                    detail.into(),
                    now.millis().into(),
                ],
            )
            .await
            .map(drop)
    }

    /// The stored event of a delivery, for processing and replay.
    pub async fn event(&self, id: &DeliveryId) -> Result<Option<GithubEvent>, StoreError> {
        let rows = self
            .sql
            .query(
                "SELECT payload FROM deliveries WHERE id = ?1",
                &[id.as_str().into()],
            )
            .await?;
        let Some(text) = rows
            .first()
            .and_then(|r| r.get("payload"))
            .and_then(|p| p.as_str())
        else {
            return Ok(None);
        };
        decode(text, id.as_str()).map(Some)
    }

    /// The delivery's place in the log: its row's `rowid`, which only grows as
    /// deliveries are recorded (a replay keeps its place). Orders a pull
    /// request's events that GitHub dated the same second.
    pub async fn sequence(&self, id: &DeliveryId) -> Result<Option<i64>, StoreError> {
        let rows = self
            .sql
            .query(
                "SELECT rowid AS seq FROM deliveries WHERE id = ?1",
                &[id.as_str().into()],
            )
            .await?;
        Ok(rows
            .first()
            .and_then(|r| r.get("seq"))
            .and_then(serde_json::Value::as_i64))
    }

    /// Deliveries still `queued` since before `cutoff`: their message was lost.
    pub async fn lost(&self, cutoff: Timestamp, limit: u32) -> Result<Vec<DeliveryId>, StoreError> {
        let rows = self
            .sql
            .query(
                "SELECT id FROM deliveries WHERE outcome = 'queued' AND updated_at < ?1 ORDER BY received_at LIMIT ?2",
                &[cutoff.millis().into(), limit.into()],
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                r.get("id")
                    .and_then(|v| v.as_str())
                    .and_then(DeliveryId::parse)
            })
            .collect())
    }

    /// Marks a delivery as just (re-)enqueued.
    pub async fn touch(&self, id: &DeliveryId, now: Timestamp) -> Result<(), StoreError> {
        self.sql
            .execute(
                "UPDATE deliveries SET outcome = 'queued', updated_at = ?2 WHERE id = ?1",
                &[id.as_str().into(), now.millis().into()],
            )
            .await
            .map(drop)
    }

    /// Recorded `workflow_run` completed events for `run_id`, or, without one, for
    /// the repository and head sha; newest first, at most `limit`.
    pub async fn completed_runs(
        &self,
        run_id: Option<u64>,
        repository: Option<&str>,
        head_sha: Option<&str>,
        limit: u32,
    ) -> Result<Vec<super::events::WorkflowRunEvent>, StoreError> {
        let rows = self
            .sql
            .query(
                "SELECT payload FROM deliveries WHERE event = 'workflow_run' AND action = 'completed' \
                 AND ((?1 IS NOT NULL AND json_extract(payload, '$.workflow_run.id') = ?1) \
                   OR (?1 IS NULL AND lower(repository) = lower(?2) AND json_extract(payload, '$.workflow_run.head_sha') = ?3)) \
                 ORDER BY received_at DESC LIMIT ?4",
                &[
                    run_id.and_then(|r| i64::try_from(r).ok()).into(),
                    repository.into(),
                    head_sha.into(),
                    limit.into(),
                ],
            )
            .await?;
        let mut runs = Vec::new();
        for text in rows
            .iter()
            .filter_map(|r| r.get("payload").and_then(|p| p.as_str()))
        {
            if let GithubEvent::WorkflowRun(run) = decode(text, "workflow_run")? {
                runs.push(run);
            }
        }
        Ok(runs)
    }

    /// The newest deliveries first.
    pub async fn recent(&self, limit: u32) -> Result<Vec<DeliveryRecord>, StoreError> {
        let rows = self
            .sql
            .query(
                "SELECT id, event, action, repository, outcome, detail, received_at, updated_at \
                 FROM deliveries ORDER BY received_at DESC, id LIMIT ?1",
                &[limit.into()],
            )
            .await?;
        rows.into_iter()
            .map(|r| {
                crate::json::from_value(&Value::Object(r)).map_err(|e| StoreError(e.to_string()))
            })
            .collect()
    }
}

/// A stored event, as [`DeliveryStore::record`] wrote it.
fn decode(text: &str, what: &str) -> Result<GithubEvent, StoreError> {
    crate::json::read(text).map_err(|e| StoreError(format!("delivery {what}: stored event: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{block_on, SqliteSql};

    #[test]
    fn a_redelivery_is_recognised_and_the_event_kept() {
        let db = SqliteSql::migrated();
        let store = DeliveryStore::new(&db);
        let id = DeliveryId::parse("72d3162e-cc78-11e3-81ab-4c9367dc0958").expect("valid");
        let event = GithubEvent::Other {
            event: "star".into(),
            action: Some("created".into()),
            repository: Some("a/b".into()),
        };
        let t = Timestamp::from_millis(1_000);
        assert!(
            block_on(store.record(&id, &event, Outcome::Ignored, Some("no app uses it"), t))
                .expect("record")
        );
        assert!(!block_on(store.record(&id, &event, Outcome::Ignored, None, t)).expect("record"));
        assert_eq!(block_on(store.event(&id)).expect("event"), Some(event));
        block_on(store.set_outcome(&id, Outcome::Processed, None, Timestamp::from_millis(2_000)))
            .expect("update");
        let listed = block_on(store.recent(10)).expect("recent");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].outcome, Outcome::Processed);
        assert_eq!(
            (listed[0].event.as_str(), listed[0].action.as_deref()),
            ("star", Some("created"))
        );
        assert_eq!(listed[0].updated_at, 2_000);
    }

    #[test]
    fn each_delivery_keeps_its_place_in_the_log() {
        let db = SqliteSql::migrated();
        let store = DeliveryStore::new(&db);
        let event = GithubEvent::Other {
            event: "star".into(),
            action: None,
            repository: None,
        };
        let t = Timestamp::from_millis(1_000);
        let ids: Vec<_> = ["b-first", "a-second", "c-third"]
            .iter()
            .map(|s| DeliveryId::parse(s).expect("valid"))
            .collect();
        for id in &ids {
            block_on(store.record(id, &event, Outcome::Queued, None, t)).expect("record");
        }
        let places: Vec<_> = ids
            .iter()
            .map(|id| {
                block_on(store.sequence(id))
                    .expect("seq")
                    .expect("recorded")
            })
            .collect();
        assert!(places.windows(2).all(|w| w[0] < w[1]), "{places:?}");
        // A redelivery, a replay or a new outcome keeps the first place.
        block_on(store.record(&ids[0], &event, Outcome::Queued, None, t)).expect("record");
        block_on(store.set_outcome(&ids[0], Outcome::Processed, None, t)).expect("update");
        assert_eq!(
            block_on(store.sequence(&ids[0])).expect("seq"),
            Some(places[0])
        );
        let unknown = DeliveryId::parse("never-seen").expect("valid");
        assert_eq!(block_on(store.sequence(&unknown)).expect("seq"), None);
    }

    #[test]
    fn listed_records_round_trip() {
        let id = DeliveryId::parse("72d3162e-cc78-11e3-81ab-4c9367dc0958").expect("valid");
        let text = serde_json::to_string(&id).expect("serialises");
        assert_eq!(crate::json::read::<DeliveryId>(&text).expect("reads"), id);
        for (outcome, action) in [
            (Outcome::Queued, Some("opened")),
            (Outcome::Ignored, None),
            (Outcome::Processed, None),
            (Outcome::Failed, Some("closed")),
        ] {
            let record = DeliveryRecord {
                id: "d-1".into(),
                event: "pull_request".into(),
                action: action.map(str::to_owned),
                repository: action.map(|_| "octo/app".to_owned()),
                outcome,
                detail: action.map(|_| "why".to_owned()),
                received_at: 1_000,
                updated_at: 2_000,
            };
            let text = serde_json::to_string(&record).expect("serialises");
            assert_eq!(
                crate::json::read::<DeliveryRecord>(&text).expect("reads"),
                record
            );
        }
    }

    #[test]
    fn delivery_ids() {
        assert!(DeliveryId::parse("72d3162e-cc78-11e3-81ab-4c9367dc0958").is_some());
        assert!(DeliveryId::parse("../x").is_none());
        assert!(DeliveryId::parse("").is_none());
    }
}
