//! Telegram's pace, per chat and across every isolate: each send or edit into a chat
//! first takes the chat's next free slot in D1, in one statement, so two consumers
//! can never both take the same second. A slot in the future means the message
//! waits on the queue (`delaySeconds`) until then; a 429 moves the chat's next slot
//! past Telegram's `retry_after` and delays that chat only.

use crate::ports::{Sql, StoreError};
use crate::row::Columns;
use crate::time::Timestamp;

/// Telegram's documented limits with a margin. A waiting message goes out when the
/// queue brings it back, after whole seconds (`delaySeconds`), so a send can be up
/// to a second later than its slot while the next one is on time: slots of one chat
/// are a gap plus that second apart, and a window plus that second and some.
const ROUNDING_MS: i64 = 1_000;
const WINDOW_MS: i64 = 60_000;
const WINDOW_MARGIN_MS: i64 = 2_500;

/// How fast one destination chat may be written to, and when a burst becomes a
/// digest: a route's `pace` (checked where routes are read, `crate::routes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, crate::json::FromJson)]
#[json(deny_unknown_fields)]
pub struct Pace {
    /// At most this many messages a second. Default 1 (Telegram's limit per chat).
    #[serde(default = "Pace::default_per_second")]
    pub per_second: u32,
    /// At most this many in any minute. Default 20 (Telegram's limit per group or
    /// channel).
    #[serde(default = "Pace::default_per_minute")]
    pub per_minute: u32,
    /// With this many messages already waiting for their slots, the next ones go
    /// into a digest. Default 5.
    #[serde(default = "Pace::default_digest_threshold")]
    pub digest_threshold: u32,
}

impl Pace {
    /// Telegram's limits for a group or channel: one a second, 20 a minute.
    pub const TELEGRAM: Pace = Pace {
        per_second: 1,
        per_minute: 20,
        digest_threshold: 5,
    };

    fn default_per_second() -> u32 {
        Pace::TELEGRAM.per_second
    }

    fn default_per_minute() -> u32 {
        Pace::TELEGRAM.per_minute
    }

    fn default_digest_threshold() -> u32 {
        Pace::TELEGRAM.digest_threshold
    }

    fn gap_ms(&self) -> i64 {
        1000 / i64::from(self.per_second.max(1)) + ROUNDING_MS
    }
}

impl Default for Pace {
    fn default() -> Self {
        Pace::TELEGRAM
    }
}

/// What [`PaceStore::reserve`] gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Send at this time (now or later).
    At(Timestamp),
    /// Too many are already waiting for this chat (or a digest is open for the
    /// destination): join the digest instead.
    Digest,
}

/// The `telegram_slots` and `telegram_chats` rows.
pub struct PaceStore<S> {
    sql: S,
}

impl<S: Sql> PaceStore<S> {
    pub fn new(sql: S) -> Self {
        PaceStore { sql }
    }

    /// Takes `chat`'s next free slot under `pace`, in one statement: no earlier than
    /// `now`, a gap after the chat's latest slot, a minute after the slot
    /// `per_minute` back, and after the chat's 429 block. Unless `force`, a chat
    /// that already has `digest_threshold` slots waiting in the future (or an open
    /// digest for `thread`) gets [`Slot::Digest`] and takes nothing.
    pub async fn reserve(
        &self,
        chat: &str,
        thread: &str,
        pace: Pace,
        force: bool,
        now: Timestamp,
    ) -> Result<Slot, StoreError> {
        let rows = self
            .sql
            .query(
                "INSERT INTO telegram_slots (chat_id, at) \
                 SELECT ?1, MAX(?2, \
                   COALESCE((SELECT MAX(at) FROM telegram_slots WHERE chat_id = ?1), 0) + ?3, \
                   COALESCE((SELECT at FROM telegram_slots WHERE chat_id = ?1 AND at > ?2 - ?5 \
                             ORDER BY at DESC LIMIT 1 OFFSET ?4 - 1), -?5) + ?5, \
                   COALESCE((SELECT blocked_until FROM telegram_chats WHERE chat_id = ?1), 0)) \
                 WHERE ?6 = 1 OR ((SELECT COUNT(*) FROM telegram_slots WHERE chat_id = ?1 AND at > ?2) < ?7 \
                   AND NOT EXISTS (SELECT 1 FROM telegram_digests WHERE chat_id = ?1 AND thread = ?8 \
                                   AND full = 0 AND last_item_at > ?2 - ?9)) \
                 RETURNING at",
                &[
                    chat.into(),
                    now.millis().into(),
                    pace.gap_ms().into(),
                    i64::from(pace.per_minute.max(1)).into(),
                    (WINDOW_MS + WINDOW_MARGIN_MS).into(),
                    i64::from(force).into(),
                    i64::from(pace.digest_threshold.max(1)).into(),
                    thread.into(),
                    WINDOW_MS.into(),
                ],
            )
            .await?;
        Ok(match rows.first().and_then(|r| r.opt_int("at")) {
            Some(at) => Slot::At(Timestamp::from_millis(at)),
            None => Slot::Digest,
        })
    }

    /// Telegram answered 429 for `chat`: nothing is sent there before `until`, and
    /// the slots already handed out after now are given back (their holders take
    /// new ones after the block).
    pub async fn block(&self, chat: &str, until: Timestamp) -> Result<(), StoreError> {
        self.sql
            .execute(
                "INSERT INTO telegram_chats (chat_id, blocked_until) VALUES (?1, ?2) \
                 ON CONFLICT (chat_id) DO UPDATE SET blocked_until = MAX(blocked_until, excluded.blocked_until)",
                &[chat.into(), until.millis().into()],
            )
            .await
            .map(drop)
    }

    /// Forgets slots that can no longer limit anything (older than a minute).
    pub async fn prune(&self, now: Timestamp) -> Result<u64, StoreError> {
        let done = self
            .sql
            .execute(
                "DELETE FROM telegram_slots WHERE at < ?1",
                &[(now.millis() - 2 * WINDOW_MS).into()],
            )
            .await?;
        Ok(done.changes)
    }
}

/// Whole seconds from `now` until `at` (at least 1 when `at` is in the future),
/// for the queue's `delaySeconds`.
pub fn delay_seconds(now: Timestamp, at: Timestamp) -> Option<u32> {
    let ms = at.millis() - now.millis();
    (ms > 0).then(|| u32::try_from((ms + 999) / 1000).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{block_on, SqliteSql};

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_millis(1_700_000_000_000 + ms)
    }

    fn at(slot: Slot) -> i64 {
        match slot {
            Slot::At(at) => at.millis() - t(0).millis(),
            Slot::Digest => panic!("expected a slot"),
        }
    }

    const UNPACED_DIGEST: Pace = Pace {
        digest_threshold: 1000,
        ..Pace::TELEGRAM
    };

    #[test]
    fn slots_in_one_chat_are_a_second_apart_and_twenty_a_minute() {
        let db = SqliteSql::migrated();
        let pace = PaceStore::new(&db);
        let take = |now: i64| {
            at(block_on(pace.reserve("-1", "", UNPACED_DIGEST, false, t(now))).expect("slot"))
        };
        let slots: Vec<i64> = (0..22).map(|_| take(0)).collect();
        for w in slots.windows(2) {
            assert!(w[1] - w[0] >= 1000, "{slots:?}");
        }
        // The 21st slot waits until a minute after the first.
        assert!(slots[20] - slots[0] >= 60_000, "{slots:?}");
        assert!(slots[19] - slots[0] < 60_000, "{slots:?}");
        // Any window of a minute holds at most 20.
        for (i, s) in slots.iter().enumerate() {
            let within = slots[i..].iter().filter(|x| **x < s + 60_000).count();
            assert!(within <= 20, "{slots:?}");
        }
    }

    #[test]
    fn chats_are_paced_independently() {
        let db = SqliteSql::migrated();
        let pace = PaceStore::new(&db);
        let take = |chat: &str| {
            at(block_on(pace.reserve(chat, "", UNPACED_DIGEST, false, t(0))).expect("slot"))
        };
        assert_eq!(take("-1"), 0);
        assert_eq!(take("-2"), 0);
        assert!(take("-1") >= 1000);
        assert!(take("-2") >= 1000);
    }

    #[test]
    fn a_429_delays_that_chat_only() {
        let db = SqliteSql::migrated();
        let pace = PaceStore::new(&db);
        block_on(pace.block("-1", t(30_000))).expect("block");
        // A shorter block later never shortens it.
        block_on(pace.block("-1", t(5_000))).expect("block");
        let take = |chat: &str| {
            at(block_on(pace.reserve(chat, "", UNPACED_DIGEST, false, t(0))).expect("slot"))
        };
        assert_eq!(take("-1"), 30_000);
        assert_eq!(take("-2"), 0);
    }

    #[test]
    fn a_backlog_past_the_threshold_turns_into_a_digest_unless_forced() {
        let db = SqliteSql::migrated();
        let pace = PaceStore::new(&db);
        let p = Pace {
            digest_threshold: 3,
            ..Pace::TELEGRAM
        };
        let take = |force| block_on(pace.reserve("-1", "", p, force, t(0))).expect("slot");
        // The first is due now; two more wait in the future: the threshold counts
        // those waiting.
        for _ in 0..4 {
            assert!(matches!(take(false), Slot::At(_)));
        }
        assert_eq!(take(false), Slot::Digest);
        assert!(
            matches!(take(true), Slot::At(_)),
            "a digest's own send is forced"
        );
    }

    #[test]
    fn old_slots_are_pruned() {
        let db = SqliteSql::migrated();
        let pace = PaceStore::new(&db);
        block_on(pace.reserve("-1", "", Pace::TELEGRAM, false, t(0))).expect("slot");
        assert_eq!(block_on(pace.prune(t(60_000))).expect("prune"), 0);
        assert_eq!(block_on(pace.prune(t(121_000))).expect("prune"), 1);
    }

    #[test]
    fn delays_round_up_to_whole_seconds() {
        assert_eq!(delay_seconds(t(0), t(0)), None);
        assert_eq!(delay_seconds(t(0), t(-5)), None);
        assert_eq!(delay_seconds(t(0), t(1)), Some(1));
        assert_eq!(delay_seconds(t(0), t(1000)), Some(1));
        assert_eq!(delay_seconds(t(0), t(1001)), Some(2));
    }
}
