//! Instants as milliseconds since the Unix epoch, with the two text forms we use.

use chrono::{DateTime, Datelike, TimeZone, Timelike, Utc};
use serde::Serialize;

/// An instant, in milliseconds since the Unix epoch (UTC). The Worker gets it from
/// `Date.now()`, tests pick it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, crate::json::FromJson,
)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }

    pub const fn millis(self) -> i64 {
        self.0
    }

    pub fn plus_seconds(self, s: i64) -> Self {
        Timestamp(self.0.saturating_add(s.saturating_mul(1000)))
    }

    pub fn minus_seconds(self, s: i64) -> Self {
        Timestamp(self.0.saturating_sub(s.saturating_mul(1000)))
    }

    /// Parses an RFC 3339 date-time with any offset (`2025-01-15T10:30:00Z`,
    /// `2025-01-15T12:30:00.123+02:00`).
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        DateTime::parse_from_rfc3339(s.trim())
            .ok()
            .map(|d| Timestamp(d.timestamp_millis()))
    }

    fn utc(self) -> Option<DateTime<Utc>> {
        Utc.timestamp_millis_opt(self.0).single()
    }

    /// `2025-01-15T10:30:00.000Z`.
    pub fn to_rfc3339(self) -> String {
        // Formatted by hand: chrono's strftime machinery is a sizeable part of the
        // Worker's wasm for two fixed layouts.
        match self.utc() {
            Some(d) => format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                d.year(),
                d.month(),
                d.day(),
                d.hour(),
                d.minute(),
                d.second(),
                d.timestamp_subsec_millis()
            ),
            None => self.0.to_string(),
        }
    }

    /// The human form the Telegram messages use: `Jan 15, 2025, 10:30 AM UTC`.
    pub fn to_human(self) -> String {
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        match self.utc() {
            Some(d) => {
                let (pm, hour) = d.hour12();
                format!(
                    "{} {}, {}, {}:{:02} {} UTC",
                    MONTHS[d.month0() as usize],
                    d.day(),
                    d.year(),
                    hour,
                    d.minute(),
                    if pm { "PM" } else { "AM" }
                )
            }
            None => self.0.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_offsets_and_fractions() {
        let a = Timestamp::parse_rfc3339("2025-01-15T10:30:00Z").expect("parses");
        let b = Timestamp::parse_rfc3339("2025-01-15T12:30:00.000+02:00").expect("parses");
        assert_eq!(a, b);
        assert_eq!(a.millis(), 1_736_937_000_000);
        assert!(Timestamp::parse_rfc3339("2025-01-15").is_none());
        assert!(Timestamp::parse_rfc3339("not a date").is_none());
    }

    #[test]
    fn human_form_matches_the_reference_message() {
        let t = Timestamp::parse_rfc3339("2025-01-15T10:30:00Z").expect("parses");
        assert_eq!(t.to_human(), "Jan 15, 2025, 10:30 AM UTC");
        let t = Timestamp::parse_rfc3339("2025-03-05T00:05:00Z").expect("parses");
        assert_eq!(t.to_human(), "Mar 5, 2025, 12:05 AM UTC");
        let t = Timestamp::parse_rfc3339("2025-12-31T23:59:59.999Z").expect("parses");
        assert_eq!(t.to_human(), "Dec 31, 2025, 11:59 PM UTC");
        assert_eq!(t.to_rfc3339(), "2025-12-31T23:59:59.999Z");
    }

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp::from_millis(10_000);
        assert_eq!(t.minus_seconds(2).millis(), 8_000);
        assert_eq!(t.plus_seconds(2).millis(), 12_000);
        assert_eq!(
            Timestamp::from_millis(i64::MAX).plus_seconds(1).millis(),
            i64::MAX
        );
    }
}
