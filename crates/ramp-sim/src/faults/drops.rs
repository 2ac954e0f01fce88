//! Watch streams ended by `closeWatchEverySeconds`, and how fast their clients came back.
//!
//! A stream ends at the time its rule set when it started. The client's recovery time is
//! from that moment to its next watch request on the same resource and namespace (one
//! that no rule failed). Two watches of one client on one resource (different selectors)
//! are told apart by their end times: the next request takes the earliest ended one.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::RequestInfo;

/// Counts of ended watch streams, as listed under `watchDrops` by `GET /sim/v1/faults`.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchDrops {
    /// Watch streams given an end time.
    pub scheduled: u64,
    /// Ended streams whose client watched again.
    pub recovered: u64,
    /// The longest time from a stream's end to its client's next watch, in milliseconds.
    pub max_recovery_ms: u64,
    /// The sum of those times, in milliseconds (with `recovered`, the mean).
    pub total_recovery_ms: u64,
    #[serde(skip)]
    pending: BTreeMap<(String, String, String), Vec<Instant>>,
}

impl WatchDrops {
    /// A watch request was accepted at `now`; `close_after` is when a rule ends it.
    pub fn watch_started(&mut self, r: &RequestInfo, now: Instant, close_after: Option<Duration>) {
        let key = (
            r.user_agent.clone(),
            r.resource.clone(),
            r.namespace.clone().unwrap_or_default(),
        );
        let ends = self.pending.entry(key).or_default();
        ends.sort();
        if let Some(first) = ends.first().copied()
            && first <= now
        {
            ends.remove(0);
            let ms = u64::try_from(now.duration_since(first).as_millis()).unwrap_or(u64::MAX);
            self.recovered += 1;
            self.max_recovery_ms = self.max_recovery_ms.max(ms);
            self.total_recovery_ms = self.total_recovery_ms.saturating_add(ms);
        }
        if let Some(after) = close_after {
            self.scheduled += 1;
            ends.push(now + after);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    #[test]
    fn recovery_is_measured_from_the_end_of_the_stream_to_the_next_watch() {
        let w = RequestInfo::classify(
            &Method::GET,
            "/api/v1/namespaces/d/pods",
            Some("watch=1"),
            "op",
        );
        let other = RequestInfo::classify(
            &Method::GET,
            "/api/v1/namespaces/d/services",
            Some("watch=1"),
            "op",
        );
        let mut d = WatchDrops::default();
        let t0 = Instant::now();
        d.watch_started(&w, t0, Some(Duration::from_secs(5)));
        // Another resource, and a second watch before the first ended: no recovery.
        d.watch_started(&other, t0 + Duration::from_secs(6), None);
        d.watch_started(&w, t0 + Duration::from_secs(1), None);
        assert_eq!((d.scheduled, d.recovered), (1, 0));
        d.watch_started(
            &w,
            t0 + Duration::from_millis(5_300),
            Some(Duration::from_secs(5)),
        );
        assert_eq!((d.scheduled, d.recovered, d.max_recovery_ms), (2, 1, 300));
        d.watch_started(&w, t0 + Duration::from_millis(10_400), None);
        assert_eq!(
            (d.recovered, d.max_recovery_ms, d.total_recovery_ms),
            (2, 300, 400)
        );
    }
}
