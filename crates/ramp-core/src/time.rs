//! Conversions between `chrono` (the planner's clock) and k8s-openapi's
//! `Time` (which wraps `jiff::Timestamp`).

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// A chrono instant as a Kubernetes `Time`. Kubernetes stores whole seconds,
/// so the instant is rounded *up* to the next whole second: timers measured
/// from a recorded time (grace periods, pause durations) are then never cut
/// short by the round trip through the status (truncating would let a 2 s
/// pause end after barely 1 s).
pub fn to_k8s_time(t: DateTime<Utc>) -> Time {
    let secs = if t.timestamp_subsec_nanos() > 0 {
        t.timestamp().saturating_add(1)
    } else {
        t.timestamp()
    };
    Time(jiff::Timestamp::from_second(secs).unwrap_or(jiff::Timestamp::UNIX_EPOCH))
}

/// A Kubernetes `Time` as a chrono instant.
pub fn from_k8s_time(t: &Time) -> DateTime<Utc> {
    let nanos = u32::try_from(t.0.subsec_nanosecond()).unwrap_or(0);
    DateTime::from_timestamp(t.0.as_second(), nanos).unwrap_or_default()
}

/// Time left until `since + wait`, or `None` when that moment has passed.
pub(crate) fn remaining(
    now: DateTime<Utc>,
    since: Option<&Time>,
    wait: std::time::Duration,
) -> Option<std::time::Duration> {
    let since = since.map(from_k8s_time)?;
    let wait = chrono::Duration::from_std(wait).ok()?;
    let due = since + wait;
    if now >= due {
        None
    } else {
        (due - now).to_std().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn recorded_times_are_whole_seconds_never_before_the_instant() {
        let t = at("2025-03-01T10:00:05.750Z");
        let back = from_k8s_time(&to_k8s_time(t));
        assert_eq!(back.to_rfc3339(), "2025-03-01T10:00:06+00:00");
        let json = serde_json::to_value(to_k8s_time(t)).unwrap();
        assert_eq!(json, "2025-03-01T10:00:06Z");
        // A whole second stays as it is.
        let whole = at("2025-03-01T10:00:05Z");
        assert_eq!(from_k8s_time(&to_k8s_time(whole)), whole);
    }

    #[test]
    fn a_wait_is_never_cut_short_by_the_status_round_trip() {
        let wait = std::time::Duration::from_secs(2);
        for started_ms in [0_i64, 1, 250, 500, 999] {
            let started = at("2025-03-01T10:00:05Z") + chrono::Duration::milliseconds(started_ms);
            let recorded = to_k8s_time(started);
            // A millisecond before the wait is over: still waiting.
            let almost = started + chrono::Duration::milliseconds(1999);
            assert!(
                remaining(almost, Some(&recorded), wait).is_some(),
                "a 2 s wait started at +{started_ms}ms ended early"
            );
            // Less than a second late, it is over.
            let late = started + chrono::Duration::milliseconds(2999);
            assert!(
                remaining(late, Some(&recorded), wait).is_none(),
                "a 2 s wait started at +{started_ms}ms lasted 3 s or more"
            );
        }
    }

    #[test]
    fn remaining_counts_down_and_ends() {
        let start = DateTime::parse_from_rfc3339("2025-03-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let since = to_k8s_time(start);
        let wait = std::time::Duration::from_secs(60);
        let now = start + chrono::Duration::seconds(45);
        assert_eq!(
            remaining(now, Some(&since), wait),
            Some(std::time::Duration::from_secs(15))
        );
        let later = start + chrono::Duration::seconds(60);
        assert_eq!(remaining(later, Some(&since), wait), None);
        assert_eq!(remaining(now, None, wait), None);
    }
}
