//! Retry policy for deliveries to upstream APIs.

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

#[cfg(test)]
mod tests {
    use super::*;

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
