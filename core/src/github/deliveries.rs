//! The delivery log: one row per `X-GitHub-Delivery` and per raw body (both are
//! idempotency keys: only the body is signed), with its outcome for audit, its
//! processing attempts, and its typed event for replay.

use serde::Serialize;
use serde_json::Value;

use super::events::GithubEvent;
use crate::json::{FromJson, Names};
use crate::ports::{Sql, SqlValue, StoreError};
use crate::row::Columns;
use crate::time::Timestamp;

/// A webhook delivery id (GitHub sends a GUID).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, FromJson)]
#[serde(transparent)]
pub struct DeliveryId(String);

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

/// The SHA-256 of a delivery's raw body, lower-case hex: the same signed body under
/// another delivery id is the same delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyHash(String);

impl BodyHash {
    /// From the 32-byte digest the runtime computed.
    pub fn from_digest(digest: &[u8]) -> Option<Self> {
        (digest.len() == 32).then(|| BodyHash(super::webhook::to_hex(digest)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Processing attempts a delivery gets: after this many transient failures it is
/// marked failed with its last error (a replay starts the count again). With the
/// default base the attempts spread over about four hours (30 s, 1, 2, 4, 8, 16,
/// 32, 64 and 128 minutes apart), which outlasts an upstream outage without
/// retrying a poison delivery forever.
pub const MAX_PROCESS_ATTEMPTS: u32 = 10;

/// Default `DELIVERY_RETRY_BASE_SECONDS`: the wait after the first failed attempt;
/// it doubles per attempt.
pub const DEFAULT_RETRY_BASE_SECONDS: u32 = 30;

/// Ceiling of one wait between attempts (Cloudflare Queues delay a retry by at most
/// 12 hours).
pub const MAX_RETRY_DELAY_SECONDS: u32 = 4 * 3600;

/// What follows a delivery's failed attempt number `attempts` (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    RetryIn(u32),
    GiveUp,
}

/// Pure: `base_seconds`, doubling per attempt up to [`MAX_RETRY_DELAY_SECONDS`],
/// until [`MAX_PROCESS_ATTEMPTS`] have failed.
pub fn after_failure(attempts: u32, base_seconds: u32) -> AfterFailure {
    if attempts >= MAX_PROCESS_ATTEMPTS {
        return AfterFailure::GiveUp;
    }
    let exp = attempts.saturating_sub(1).min(20);
    AfterFailure::RetryIn(
        base_seconds
            .saturating_mul(1 << exp)
            .min(MAX_RETRY_DELAY_SECONDS),
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Names)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Its work was enqueued.
    Queued,
    /// No app uses this event (or it needs no work); recorded only.
    Ignored,
    /// Handled completely.
    Processed,
    Failed,
}

/// A delivery as the API lists it.
#[derive(Debug, Clone, PartialEq, Serialize, FromJson)]
pub struct DeliveryRecord {
    pub id: String,
    pub event: String,
    pub action: Option<String>,
    pub repository: Option<String>,
    pub outcome: Outcome,
    pub detail: Option<String>,
    /// Processing attempts that failed transiently (reset by a replay).
    pub attempts: i64,
    pub last_error: Option<String>,
    pub received_at: i64,
    pub updated_at: i64,
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
        self.record_body(id, None, event, outcome, detail, now)
            .await
    }

    /// Records a delivery unless its id or its body was seen before; `false` for a
    /// redelivery, or the same body under another id.
    pub async fn record_body(
        &self,
        id: &DeliveryId,
        body: Option<&BodyHash>,
        event: &GithubEvent,
        outcome: Outcome,
        detail: Option<&str>,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let (name, action, repository) = event.summary();
        let payload = serde_json::to_string(event).map_err(StoreError::encode)?;
        let done = self
            .sql
            .execute(
                // No conflict target: a repeated id and a repeated body are both skipped.
                "INSERT INTO deliveries (id, event, action, repository, outcome, detail, payload, received_at, updated_at, body_sha256) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9) ON CONFLICT DO NOTHING",
                &[
                    id.as_str().into(),
                    name.into(),
                    action.into(),
                    repository.into(),
                    outcome.as_str().into(),
                    detail.into(),
                    payload.into(),
                    now.millis().into(),
                    body.map(BodyHash::as_str).into(),
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
        let Some(text) = rows.first().and_then(|r| r.opt_str("payload")) else {
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
        Ok(rows.first().and_then(|r| r.opt_int("seq")))
    }

    /// Deliveries still `queued` whose next attempt (or, with none scheduled, last
    /// change) was due before `cutoff`: their message was lost or dead-lettered.
    pub async fn lost(&self, cutoff: Timestamp, limit: u32) -> Result<Vec<DeliveryId>, StoreError> {
        let rows = self
            .sql
            .query(
                "SELECT id FROM deliveries WHERE outcome = 'queued' AND COALESCE(next_attempt_at, updated_at) < ?1 \
                 ORDER BY received_at LIMIT ?2",
                &[cutoff.millis().into(), limit.into()],
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|r| r.opt_str("id").and_then(DeliveryId::parse))
            .collect())
    }

    /// Marks a delivery as just re-enqueued by the sweep; its attempts count on.
    pub async fn touch(&self, id: &DeliveryId, now: Timestamp) -> Result<(), StoreError> {
        self.sql
            .execute(
                "UPDATE deliveries SET outcome = 'queued', next_attempt_at = NULL, updated_at = ?2 WHERE id = ?1",
                &[id.as_str().into(), now.millis().into()],
            )
            .await
            .map(drop)
    }

    /// Marks a delivery as enqueued again by a replay: its attempts start over.
    pub async fn replay(&self, id: &DeliveryId, now: Timestamp) -> Result<(), StoreError> {
        self.replay_seen(id, None, now).await.map(drop)
    }

    /// Replays delivery `id` only if it is still as it was `seen` (its
    /// `updated_at`), so that of two submits of one page's form exactly one
    /// replays; `None` replays whatever its state. A replay moves `updated_at` on
    /// by at least a millisecond. Answers whether it replayed.
    pub async fn replay_seen(
        &self,
        id: &DeliveryId,
        seen: Option<i64>,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.sql
            .execute(
                "UPDATE deliveries SET outcome = 'queued', attempts = 0, last_error = NULL, \
                 next_attempt_at = NULL, updated_at = MAX(?2, updated_at + 1) \
                 WHERE id = ?1 AND (?3 IS NULL OR updated_at = ?3)",
                &[id.as_str().into(), now.millis().into(), seen.into()],
            )
            .await
            .map(|done| done.changes == 1)
    }

    /// Counts a failed attempt at a queued delivery and schedules the next one, or,
    /// at the cap, marks it failed with `error`. Returns the attempts so far and
    /// what follows; `None` when the delivery is not queued (another copy of its
    /// message finished it).
    pub async fn record_failure(
        &self,
        id: &DeliveryId,
        error: &str,
        base_seconds: u32,
        now: Timestamp,
    ) -> Result<Option<(u32, AfterFailure)>, StoreError> {
        let rows = self
            .sql
            .query(
                "UPDATE deliveries SET attempts = attempts + 1, last_error = ?2, updated_at = ?3 \
                 WHERE id = ?1 AND outcome = 'queued' RETURNING attempts",
                &[id.as_str().into(), error.into(), now.millis().into()],
            )
            .await?;
        let Some(attempts) = rows
            .first()
            .and_then(|r| r.opt_int("attempts"))
            .and_then(|a| u32::try_from(a).ok())
        else {
            return Ok(None);
        };
        let next = after_failure(attempts, base_seconds);
        let (sql, value): (&str, SqlValue) = match next {
            AfterFailure::RetryIn(delay) => (
                "UPDATE deliveries SET next_attempt_at = ?2 WHERE id = ?1 AND outcome = 'queued'",
                now.plus_seconds(i64::from(delay)).millis().into(),
            ),
            AfterFailure::GiveUp => (
                "UPDATE deliveries SET outcome = 'failed', detail = ?2, next_attempt_at = NULL \
                 WHERE id = ?1 AND outcome = 'queued'",
                format!("gave up after {attempts} attempts: {error}").into(),
            ),
        };
        self.sql.execute(sql, &[id.as_str().into(), value]).await?;
        Ok(Some((attempts, next)))
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
        for text in rows.iter().filter_map(|r| r.opt_str("payload")) {
            if let GithubEvent::WorkflowRun(run) = decode(text, "workflow_run")? {
                runs.push(run);
            }
        }
        Ok(runs)
    }

    /// The newest deliveries first.
    /// A page of the log, newest first (ties: highest id first), below `bound`
    /// ([`crate::cursor`]), of one outcome or all; at most `limit`.
    pub async fn page(
        &self,
        bound: &crate::cursor::Bound,
        outcome: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let [at, mode, id] = bound.params();
        let rows = self
            .sql
            .query(
                &format!(
                    "SELECT id, event, action, repository, outcome, detail, attempts, last_error, received_at, updated_at \
                     FROM deliveries WHERE {} AND (?4 IS NULL OR outcome = ?4) \
                     ORDER BY received_at DESC, id DESC LIMIT ?5",
                    crate::cursor::Cursor::condition("received_at", "id", 1)
                ),
                &[at, mode, id, outcome.into(), limit.into()],
            )
            .await?;
        rows.into_iter()
            .map(|r| crate::json::from_value(&Value::Object(r)).map_err(StoreError::row))
            .collect()
    }

    pub async fn recent(&self, limit: u32) -> Result<Vec<DeliveryRecord>, StoreError> {
        let rows = self
            .sql
            .query(
                "SELECT id, event, action, repository, outcome, detail, attempts, last_error, received_at, updated_at \
                 FROM deliveries ORDER BY received_at DESC, id LIMIT ?1",
                &[limit.into()],
            )
            .await?;
        rows.into_iter()
            .map(|r| crate::json::from_value(&Value::Object(r)).map_err(StoreError::row))
            .collect()
    }
}

/// A stored event, as [`DeliveryStore::record`] wrote it.
fn decode(text: &str, what: &str) -> Result<GithubEvent, StoreError> {
    crate::json::read(text)
        .map_err(|e| StoreError::Row(format!("delivery {what}: stored event: {e}")))
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

    fn push_event() -> GithubEvent {
        GithubEvent::Other {
            event: "push".into(),
            action: None,
            repository: Some("a/b".into()),
        }
    }

    #[test]
    fn the_same_body_under_another_id_is_the_same_delivery() {
        let db = SqliteSql::migrated();
        let store = DeliveryStore::new(&db);
        let t = Timestamp::from_millis(1_000);
        let body = BodyHash::from_digest(&[7; 32]).expect("32 bytes");
        let other = BodyHash::from_digest(&[8; 32]).expect("32 bytes");
        let id = |s: &str| DeliveryId::parse(s).expect("id");
        let record = |i: &str, b: Option<&BodyHash>| {
            block_on(store.record_body(&id(i), b, &push_event(), Outcome::Queued, None, t))
                .expect("record")
        };
        assert!(record("d-1", Some(&body)));
        assert!(!record("d-2", Some(&body)), "re-posted under a fresh id");
        assert!(!record("d-1", Some(&other)), "the same id");
        assert!(record("d-3", Some(&other)));
        // Rows without a body hash (recorded before it was kept) never collide.
        assert!(record("d-4", None));
        assert!(record("d-5", None));
        let ids: Vec<String> = block_on(store.recent(10))
            .expect("recent")
            .into_iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(ids, vec!["d-1", "d-3", "d-4", "d-5"]);
        assert_eq!(BodyHash::from_digest(&[0; 31]), None);
        assert_eq!(body.as_str(), "07".repeat(32));
    }

    #[test]
    fn attempts_back_off_then_give_up() {
        let delays: Vec<AfterFailure> = (1..=MAX_PROCESS_ATTEMPTS)
            .map(|n| after_failure(n, DEFAULT_RETRY_BASE_SECONDS))
            .collect();
        assert_eq!(delays[0], AfterFailure::RetryIn(30));
        assert_eq!(delays[8], AfterFailure::RetryIn(7680));
        assert_eq!(delays[9], AfterFailure::GiveUp);
        assert_eq!(
            after_failure(9, 3600),
            AfterFailure::RetryIn(MAX_RETRY_DELAY_SECONDS),
            "capped"
        );
        assert_eq!(after_failure(3, 0), AfterFailure::RetryIn(0));
        assert_eq!(after_failure(u32::MAX, 30), AfterFailure::GiveUp);
    }

    #[test]
    fn failed_attempts_are_counted_scheduled_and_capped_and_a_replay_resets_them() {
        let db = SqliteSql::migrated();
        let store = DeliveryStore::new(&db);
        let id = DeliveryId::parse("d-1").expect("id");
        let t = |s: i64| Timestamp::from_millis(1_000_000 + s * 1000);
        block_on(store.record(&id, &push_event(), Outcome::Queued, None, t(0))).expect("record");
        assert_eq!(
            block_on(store.record_failure(&id, "GitHub 502", 30, t(1))).expect("fail"),
            Some((1, AfterFailure::RetryIn(30)))
        );
        // Due at t(31): lost only for a cutoff (now - SWEEP_AFTER) past that, although
        // its last change, t(1), is older.
        assert!(block_on(store.lost(t(30), 10)).expect("lost").is_empty());
        assert_eq!(
            block_on(store.lost(t(32), 10)).expect("lost"),
            vec![id.clone()]
        );
        block_on(store.touch(&id, t(152))).expect("touch");
        for n in 2..MAX_PROCESS_ATTEMPTS {
            assert!(matches!(
                block_on(store.record_failure(&id, "GitHub 502", 30, t(200))).expect("fail"),
                Some((m, AfterFailure::RetryIn(_))) if m == n
            ));
        }
        assert_eq!(
            block_on(store.record_failure(&id, "GitHub 503", 30, t(300))).expect("fail"),
            Some((10, AfterFailure::GiveUp))
        );
        let listed = &block_on(store.recent(1)).expect("recent")[0];
        assert_eq!(listed.outcome, Outcome::Failed);
        assert_eq!(listed.attempts, 10);
        assert_eq!(listed.last_error.as_deref(), Some("GitHub 503"));
        assert_eq!(
            listed.detail.as_deref(),
            Some("gave up after 10 attempts: GitHub 503")
        );
        assert_eq!(
            block_on(store.record_failure(&id, "late copy", 30, t(301))).expect("fail"),
            None,
            "a failed delivery counts no more"
        );
        assert!(block_on(store.lost(t(100_000), 10))
            .expect("lost")
            .is_empty());
        block_on(store.replay(&id, t(400))).expect("replay");
        let listed = &block_on(store.recent(1)).expect("recent")[0];
        assert_eq!(
            (
                listed.outcome,
                listed.attempts,
                listed.last_error.as_deref()
            ),
            (Outcome::Queued, 0, None)
        );
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
                attempts: 3,
                last_error: action.map(|_| "GitHub 502: Server Error".to_owned()),
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
