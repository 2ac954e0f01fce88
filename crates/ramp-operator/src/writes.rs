//! Our own writes that the watch caches have not delivered yet.
//!
//! A reconcile writes several objects (a Service, the VirtualService, the
//! Rollout's status) and each write wakes the Rollout again, often before
//! the other watches have delivered the rest. Planning from such a cache
//! repeats writes that are already done (the same Service apply, the same
//! VirtualService patch) or, for the Rollout itself, a transition without its
//! grace period (for example, deleting the canary a few milliseconds after
//! restoring routing). So each write is recorded with the resourceVersion it
//! wrote over, and the Rollout's next reconcile waits while a cache still
//! shows that version.
//!
//! No ordering of resourceVersions is assumed (they are opaque): a cache is
//! caught up as soon as it shows anything other than the version written
//! over. A write that changed nothing (same version back) is not recorded,
//! and a record older than [`CATCH_UP_LIMIT`] is dropped, so that a watch
//! that never delivers (a filtered watch the object left, a restart) cannot
//! hold a Rollout for longer than that.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How long a write may stay undelivered before the caches are trusted again.
pub const CATCH_UP_LIMIT: Duration = Duration::from_secs(10);

/// Kind of the Rollout's own record (its status write).
pub const ROLLOUT: &str = "Rollout";

#[derive(Debug)]
struct Pending {
    kind: String,
    name: String,
    /// The version written over; `None`: the object was absent (a create).
    before: Option<String>,
    at: Instant,
}

/// Writes per Rollout (`namespace`, `name`) not yet seen in the caches.
#[derive(Debug, Default)]
pub struct OwnWrites(Mutex<HashMap<(String, String), Vec<Pending>>>);

impl OwnWrites {
    fn lock(&self) -> MutexGuard<'_, HashMap<(String, String), Vec<Pending>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The Rollout `ns/rollout` wrote `kind/name` over version `before`
    /// (`None`: created it) and got version `after` back (`None`: unknown,
    /// for example a delete answered with a Status).
    pub fn record(
        &self,
        ns: &str,
        rollout: &str,
        kind: &str,
        name: &str,
        before: Option<&str>,
        after: Option<&str>,
    ) {
        if before.is_some() && before == after {
            return; // nothing changed: no event will come
        }
        let mut m = self.lock();
        let list = m.entry((ns.to_string(), rollout.to_string())).or_default();
        list.retain(|p| !(p.kind == kind && p.name == name));
        list.push(Pending {
            kind: kind.to_string(),
            name: name.to_string(),
            before: before.map(str::to_string),
            at: Instant::now(),
        });
    }

    /// The first write of `ns/rollout` a cache has not delivered yet, as
    /// `kind/name`; `current(kind, name)` is the version the cache holds
    /// (`None`: absent). Records that caught up or expired are dropped.
    pub fn undelivered(
        &self,
        ns: &str,
        rollout: &str,
        current: impl Fn(&str, &str) -> Option<String>,
    ) -> Option<String> {
        self.undelivered_at(ns, rollout, Instant::now(), current)
    }

    fn undelivered_at(
        &self,
        ns: &str,
        rollout: &str,
        now: Instant,
        current: impl Fn(&str, &str) -> Option<String>,
    ) -> Option<String> {
        let key = (ns.to_string(), rollout.to_string());
        let mut m = self.lock();
        let list = m.get_mut(&key)?;
        list.retain(|p| {
            now.duration_since(p.at) < CATCH_UP_LIMIT && current(&p.kind, &p.name) == p.before
        });
        let first = list.first().map(|p| format!("{}/{}", p.kind, p.name));
        if list.is_empty() {
            m.remove(&key);
        }
        first
    }

    /// Drop the records of a Rollout that is gone.
    pub fn forget(&self, ns: &str, rollout: &str) {
        self.lock().remove(&(ns.to_string(), rollout.to_string()));
    }

    /// Rollouts with records (for tests and memory accounting).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no Rollout has records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(&str, &str, &str)]) -> impl Fn(&str, &str) -> Option<String> {
        let m: HashMap<(String, String), String> = entries
            .iter()
            .map(|(k, n, rv)| ((k.to_string(), n.to_string()), rv.to_string()))
            .collect();
        move |k, n| m.get(&(k.to_string(), n.to_string())).cloned()
    }

    #[test]
    fn a_rollout_read_before_our_status_write_arrived_waits_until_a_newer_one() {
        let w = OwnWrites::default();
        let old = cache(&[(ROLLOUT, "demo", "10")]);
        assert_eq!(
            w.undelivered("ns", "demo", &old),
            None,
            "nothing written yet"
        );
        w.record("ns", "demo", ROLLOUT, "demo", Some("10"), Some("11"));
        // The cache still has version 10: plan nothing from it, again and again.
        assert_eq!(
            w.undelivered("ns", "demo", &old).as_deref(),
            Some("Rollout/demo")
        );
        assert_eq!(
            w.undelivered("ns", "demo", &old).as_deref(),
            Some("Rollout/demo")
        );
        // Other Rollouts are not affected.
        assert_eq!(w.undelivered("ns", "other", &old), None);
        assert_eq!(w.undelivered("other-ns", "demo", &old), None);
        // The watch delivered our write (or anything else): fresh again, and
        // the record is gone even if the old version shows up later.
        assert_eq!(
            w.undelivered("ns", "demo", cache(&[(ROLLOUT, "demo", "11")])),
            None
        );
        assert_eq!(w.undelivered("ns", "demo", &old), None);
        assert!(w.is_empty());
    }

    #[test]
    fn a_created_object_is_awaited_until_the_cache_has_it() {
        let w = OwnWrites::default();
        w.record("ns", "demo", "Service", "demo-canary", None, Some("5"));
        assert_eq!(
            w.undelivered("ns", "demo", cache(&[])).as_deref(),
            Some("Service/demo-canary")
        );
        assert_eq!(
            w.undelivered("ns", "demo", cache(&[("Service", "demo-canary", "5")])),
            None
        );
    }

    #[test]
    fn a_deleted_object_is_awaited_until_the_cache_drops_it() {
        let w = OwnWrites::default();
        w.record("ns", "demo", "Service", "demo-canary", Some("5"), None);
        let still = cache(&[("Service", "demo-canary", "5")]);
        assert!(w.undelivered("ns", "demo", &still).is_some());
        assert_eq!(w.undelivered("ns", "demo", cache(&[])), None);
    }

    #[test]
    fn a_write_that_changed_nothing_is_not_awaited() {
        let w = OwnWrites::default();
        w.record("ns", "demo", "VirtualService", "demo", Some("8"), Some("8"));
        assert_eq!(
            w.undelivered("ns", "demo", cache(&[("VirtualService", "demo", "8")])),
            None
        );
        assert!(w.is_empty());
    }

    #[test]
    fn every_write_of_a_reconcile_is_awaited() {
        let w = OwnWrites::default();
        w.record("ns", "demo", "Service", "demo", Some("1"), Some("2"));
        w.record("ns", "demo", "VirtualService", "demo", Some("3"), Some("4"));
        // The Service arrived, the VirtualService not yet.
        let half = cache(&[("Service", "demo", "2"), ("VirtualService", "demo", "3")]);
        assert_eq!(
            w.undelivered("ns", "demo", &half).as_deref(),
            Some("VirtualService/demo")
        );
        let all = cache(&[("Service", "demo", "2"), ("VirtualService", "demo", "4")]);
        assert_eq!(w.undelivered("ns", "demo", &all), None);
    }

    #[test]
    fn a_write_the_caches_never_deliver_stops_holding_after_the_limit() {
        let w = OwnWrites::default();
        w.record("ns", "demo", "Deployment", "demo", Some("1"), Some("2"));
        let stuck = cache(&[("Deployment", "demo", "1")]);
        let later = Instant::now() + CATCH_UP_LIMIT;
        assert_eq!(w.undelivered_at("ns", "demo", later, &stuck), None);
        assert!(w.is_empty());
    }

    #[test]
    fn a_deleted_rollout_is_forgotten() {
        let w = OwnWrites::default();
        w.record("ns", "demo", ROLLOUT, "demo", Some("7"), Some("8"));
        w.forget("ns", "demo");
        assert_eq!(
            w.undelivered("ns", "demo", cache(&[(ROLLOUT, "demo", "7")])),
            None
        );
    }
}
