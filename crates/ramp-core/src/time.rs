//! Conversions between `chrono` (the planner's clock) and k8s-openapi's
//! `Time` (which wraps `jiff::Timestamp`).

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// A chrono instant as a Kubernetes `Time`. Kubernetes stores whole seconds,
/// so the sub-second part is dropped (what a status round-trip would do anyway).
pub fn to_k8s_time(t: DateTime<Utc>) -> Time {
    Time(jiff::Timestamp::from_second(t.timestamp()).unwrap_or(jiff::Timestamp::UNIX_EPOCH))
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

    #[test]
    fn round_trip_keeps_whole_seconds() {
        let t = DateTime::parse_from_rfc3339("2025-03-01T10:00:05.750Z")
            .unwrap()
            .with_timezone(&Utc);
        let back = from_k8s_time(&to_k8s_time(t));
        assert_eq!(back.to_rfc3339(), "2025-03-01T10:00:05+00:00");
        let json = serde_json::to_value(to_k8s_time(t)).unwrap();
        assert_eq!(json, "2025-03-01T10:00:05Z");
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
