//! Retry policy for deliveries to upstream APIs, and the one rule for when a deploy
//! or orchestration step may be claimed ([`StepClaims`]).

use crate::time::Timestamp;

/// How many times the queue may deliver one notification message before it is given
/// up on. Must equal `max_retries + 1` of the `JOBS` consumer in `wrangler.toml`, so
/// that the delivery that gives up is also the one the queue moves to the
/// dead-letter queue.
pub const MAX_DELIVERY_ATTEMPTS: u32 = 6;

/// First retry delay after a 5xx or network error; doubles per attempt.
pub const BACKOFF_BASE_SECONDS: u32 = 2;

/// Ceiling for one retry delay. Together with the base and the attempt count this
/// keeps retrying for about a minute (2+4+8+16+32 s), long enough to ride out a
/// short upstream blip, short enough that a notification is still timely.
pub const BACKOFF_MAX_SECONDS: u32 = 300;

/// Ceiling for a `retry_after` an upstream asks for; Cloudflare Queues accept retry
/// delays of up to 12 hours, but a notification delayed by more than an hour is no
/// longer news.
pub const MAX_RETRY_AFTER_SECONDS: u32 = 3600;

/// The delay before the next delivery after failed attempt number `attempt` (1-based).
pub fn backoff_seconds(attempt: u32) -> u32 {
    let exp = attempt.saturating_sub(1).min(16);
    BACKOFF_BASE_SECONDS
        .saturating_mul(1u32 << exp)
        .min(BACKOFF_MAX_SECONDS)
}

/// Clamps an upstream's `retry_after` to something the queue accepts.
pub fn clamp_retry_after(seconds: u64) -> u32 {
    u32::try_from(seconds)
        .unwrap_or(MAX_RETRY_AFTER_SECONDS)
        .clamp(1, MAX_RETRY_AFTER_SECONDS)
}

/// Default `STEP_STALE_SECONDS`: a claim older than this belongs to a consumer that
/// died. A step's calls take a minute or so at most (a dozen GitHub calls of 15 s,
/// a Fly machine update and its wait, a 30 s health check).
pub const DEFAULT_STEP_STALE_SECONDS: u32 = 180;

/// A retry's queue message may come this much before its recorded due time (the
/// queue's timers and the Worker's clock differ by milliseconds, and the due time is
/// taken when the step starts): it still counts as due, rather than being sent
/// back at the cost of one of the message's queue retries.
pub const DUE_SLACK_MS: i64 = 1000;

/// When a step was claimed and when it is next due, as its store keeps them
/// (`claimed_at`, `due_at`, both milliseconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepClock {
    /// Set while an attempt holds the step; `None` once it is released.
    pub claimed_at: Option<i64>,
    /// When a released step's retry is due; `None` for "any time".
    pub due_at: Option<i64>,
}

/// The one rule for claiming a step, shared by deploy and orchestration steps and by
/// their cron sweeps: a held step only once its claim is stale, a released one only
/// once its scheduled time has come. Nothing else re-runs a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepClaims {
    pub stale_seconds: u32,
}

impl StepClaims {
    pub fn new(stale_seconds: u32) -> Self {
        StepClaims { stale_seconds }
    }

    /// Claims made before this are stale.
    pub fn stale_before(self, now: Timestamp) -> Timestamp {
        now.minus_seconds(i64::from(self.stale_seconds))
    }

    /// A retry due by this time counts as due at `now` ([`DUE_SLACK_MS`]).
    pub fn due_by(self, now: Timestamp) -> Timestamp {
        Timestamp::from_millis(now.millis().saturating_add(DUE_SLACK_MS))
    }

    /// Whether a step with these times may be claimed at `now`.
    pub fn may_claim(self, step: StepClock, now: Timestamp) -> bool {
        match step.claimed_at {
            Some(claimed) => claimed < self.stale_before(now).millis(),
            None => step
                .due_at
                .is_none_or(|due| due <= self.due_by(now).millis()),
        }
    }

    /// When a step that may not be claimed now may be: its claim goes stale, or its
    /// retry comes due. `None` when it may be claimed now.
    pub fn claimable_at(self, step: StepClock, now: Timestamp) -> Option<Timestamp> {
        if self.may_claim(step, now) {
            return None;
        }
        match step.claimed_at {
            Some(claimed) => {
                Some(Timestamp::from_millis(claimed).plus_seconds(i64::from(self.stale_seconds)))
            }
            None => step.due_at.map(Timestamp::from_millis),
        }
    }

    /// [`Self::may_claim`] as an SQL condition over the columns `claimed_at` and
    /// `due_at`, with [`Self::stale_before`] in parameter `?{stale}` and
    /// [`Self::due_by`] in `?{due}`.
    pub fn sql_condition(stale: u8, due: u8) -> String {
        format!(
            "(CASE WHEN claimed_at IS NOT NULL THEN claimed_at < ?{stale} \
             ELSE (due_at IS NULL OR due_at <= ?{due}) END)"
        )
    }
}

/// Seconds (at least one) from `now` until `at`, for a queue retry's delay.
pub fn seconds_until(at: Timestamp, now: Timestamp) -> u32 {
    let ms = at.millis().saturating_sub(now.millis()).max(1);
    u32::try_from(ms.saturating_add(999) / 1000).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_is_claimed_only_once_its_claim_is_stale_or_its_retry_due() {
        let claims = StepClaims::new(180);
        let now = Timestamp::from_millis(1_000_000);
        let at = |s: i64| Some(now.minus_seconds(s).millis());
        let free = StepClock::default();
        assert!(claims.may_claim(free, now), "a fresh pending step");
        let held = |s| StepClock {
            claimed_at: at(s),
            due_at: None,
        };
        assert!(!claims.may_claim(held(10), now), "a fresh claim holds");
        assert!(!claims.may_claim(held(180), now), "to the second");
        assert!(claims.may_claim(held(181), now), "a stale claim is taken");
        assert_eq!(
            claims.claimable_at(held(10), now),
            Some(now.plus_seconds(170))
        );
        let retry = |in_s: i64| StepClock {
            claimed_at: None,
            due_at: at(-in_s),
        };
        assert!(
            !claims.may_claim(retry(160), now),
            "a retry 160 s out waits"
        );
        assert_eq!(
            claims.claimable_at(retry(160), now),
            Some(now.plus_seconds(160))
        );
        assert!(claims.may_claim(retry(0), now), "due now");
        let just_early = StepClock {
            claimed_at: None,
            due_at: Some(now.millis() + DUE_SLACK_MS),
        };
        assert!(
            claims.may_claim(just_early, now),
            "its message a moment early"
        );
        assert!(!claims.may_claim(retry(2), now));
        assert!(claims.may_claim(retry(-5), now), "overdue");
        assert_eq!(claims.claimable_at(retry(-5), now), None);
        assert_eq!(seconds_until(now.plus_seconds(160), now), 160);
        assert_eq!(seconds_until(Timestamp::from_millis(1_000_001), now), 1);
        assert_eq!(seconds_until(now.minus_seconds(3), now), 1);
    }

    #[test]
    fn the_sql_condition_is_the_same_rule() {
        let db = crate::testing::SqliteSql::migrated();
        let conn = db.conn_for_tests();
        let claims = StepClaims::new(180);
        let now = Timestamp::from_millis(10_000_000);
        let sql = format!(
            "SELECT {} AS ok FROM (SELECT ?3 AS claimed_at, ?4 AS due_at)",
            StepClaims::sql_condition(1, 2)
        );
        let times = [
            None,
            Some(0),
            Some(9_819_999),
            Some(9_820_000),
            Some(9_999_999),
            Some(10_000_000),
            Some(10_160_000),
        ];
        for claimed_at in times {
            for due_at in times {
                let step = StepClock { claimed_at, due_at };
                let ok: bool = conn
                    .query_row(
                        &sql,
                        rusqlite::params![
                            claims.stale_before(now).millis(),
                            now.millis(),
                            claimed_at,
                            due_at
                        ],
                        |r| r.get(0),
                    )
                    .expect("query");
                assert_eq!(ok, claims.may_claim(step, now), "{step:?}");
            }
        }
    }

    #[test]
    fn backoff_doubles_then_caps() {
        let delays: Vec<u32> = (1..=6).map(backoff_seconds).collect();
        assert_eq!(delays, vec![2, 4, 8, 16, 32, 64]);
        assert_eq!(backoff_seconds(9), 300);
        assert_eq!(backoff_seconds(u32::MAX), 300);
        assert_eq!(backoff_seconds(0), 2);
    }

    #[test]
    fn retry_after_is_clamped() {
        assert_eq!(clamp_retry_after(0), 1);
        assert_eq!(clamp_retry_after(30), 30);
        assert_eq!(clamp_retry_after(1 << 40), 3600);
    }
}
