//! Reverse indexes kept beside the watch caches, so that mapping a change to
//! the Rollouts it concerns, and finding the VirtualServices that may claim a
//! Rollout's hosts, cost a hash lookup instead of a scan of every cached
//! object (which made a mass change quadratic in the number of Rollouts).
//!
//! An [`Index`] is fed the same watch events as its reflector store (before
//! the controller's mappers see them), keyed by a function of the object.
//! A re-list builds a fresh table aside and swaps it in at `InitDone`, like
//! the reflector does, so lookups stay answered meanwhile.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use kube::ResourceExt;
use kube::api::DynamicObject;
use kube::runtime::watcher;
use ramp_api::Rollout;
use ramp_api::names::canary_service_name;
use ramp_core::routing::normalize_host;

/// `(namespace, name)` of an indexed object.
pub type Id = (String, String);

#[derive(Default)]
struct Table {
    /// Sorted, without duplicates; most keys name one object, and a `Vec`
    /// of one costs a tenth of a B-tree node.
    by_key: HashMap<String, Vec<Id>>,
    keys_of: HashMap<Id, Vec<String>>,
}

impl Table {
    fn remove(&mut self, id: &Id) {
        for k in self.keys_of.remove(id).unwrap_or_default() {
            if let Some(set) = self.by_key.get_mut(&k) {
                if let Ok(i) = set.binary_search(id) {
                    set.remove(i);
                }
                if set.is_empty() {
                    self.by_key.remove(&k);
                }
            }
        }
    }

    fn apply(&mut self, id: Id, keys: Vec<String>) {
        self.remove(&id);
        for k in &keys {
            let set = self.by_key.entry(k.clone()).or_default();
            if let Err(i) = set.binary_search(&id) {
                set.insert(i, id.clone());
            }
        }
        self.keys_of.insert(id, keys);
    }
}

#[derive(Default)]
struct State {
    live: Table,
    building: Option<Table>,
}

/// Objects of kind `K` by the keys `keys` gives them.
pub struct Index<K> {
    keys: fn(&K) -> Vec<String>,
    state: RwLock<State>,
}

impl<K: ResourceExt> Index<K> {
    /// An empty index keyed by `keys`.
    pub fn new(keys: fn(&K) -> Vec<String>) -> Self {
        Index {
            keys,
            state: RwLock::default(),
        }
    }

    fn id(o: &K) -> Id {
        (o.namespace().unwrap_or_default(), o.name_any())
    }

    /// Follow one watch event.
    pub fn observe(&self, ev: &watcher::Event<K>) {
        let mut s = self.state.write().unwrap_or_else(PoisonError::into_inner);
        match ev {
            watcher::Event::Init => s.building = Some(Table::default()),
            watcher::Event::InitApply(o) => {
                let keys = (self.keys)(o);
                match s.building.as_mut() {
                    Some(t) => t.apply(Self::id(o), keys),
                    None => s.live.apply(Self::id(o), keys),
                }
            }
            watcher::Event::InitDone => {
                if let Some(t) = s.building.take() {
                    s.live = t;
                }
            }
            watcher::Event::Apply(o) => {
                let keys = (self.keys)(o);
                s.live.apply(Self::id(o), keys);
            }
            watcher::Event::Delete(o) => s.live.remove(&Self::id(o)),
        }
    }

    /// The objects indexed under `key`.
    pub fn get(&self, key: &str) -> Vec<Id> {
        let s = self.state.read().unwrap_or_else(PoisonError::into_inner);
        s.live
            .by_key
            .get(key)
            .map(|set| set.to_vec())
            .unwrap_or_default()
    }

    /// The keys an object is indexed under (as last seen).
    pub fn keys_of(&self, ns: &str, name: &str) -> Vec<String> {
        let s = self.state.read().unwrap_or_else(PoisonError::into_inner);
        s.live
            .keys_of
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
            .unwrap_or_default()
    }
}

/// Key of a Deployment a Rollout names in `workloadRef`.
pub fn workload_key(ns: &str, name: &str) -> String {
    format!("workload/{ns}/{name}")
}

/// Key of a Service a Rollout uses (stable or canary).
pub fn service_key(ns: &str, name: &str) -> String {
    format!("service/{ns}/{name}")
}

/// Key of a routing object a Rollout names.
pub fn routing_key(ns: &str, kind: &str, name: &str) -> String {
    format!("routing/{ns}/{kind}/{name}")
}

/// Key of a fully qualified host, as claimed in a namespace (by a
/// VirtualService's `hosts`, or by a Rollout's stable Service).
pub fn host_key(ns: &str, host: &str) -> String {
    format!("host/{ns}/{host}")
}

/// What a Rollout is found by: its Deployment, its Services, its routing
/// objects and its stable Service's host.
pub fn rollout_keys(r: &Rollout) -> Vec<String> {
    let ns = r.namespace().unwrap_or_default();
    let mut keys = vec![workload_key(&ns, &r.spec.workload_ref.name)];
    if let Some(t) = r
        .spec
        .strategy
        .canary
        .as_ref()
        .and_then(|c| c.traffic_routings.first())
    {
        keys.push(service_key(&ns, &t.service));
        keys.push(service_key(&ns, &canary_service_name(&t.service)));
        keys.push(host_key(&ns, &normalize_host(&t.service, &ns)));
        for n in t.routing_refs() {
            keys.push(routing_key(&ns, &n.kind, &n.name));
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

/// The hosts a VirtualService claims, fully qualified in its namespace.
pub fn virtual_service_hosts(o: &DynamicObject) -> Vec<String> {
    let ns = o.namespace().unwrap_or_default();
    let mut hosts: Vec<String> = o.data["spec"]["hosts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(serde_json::Value::as_str)
        .map(|h| normalize_host(h, &ns))
        .collect();
    hosts.sort();
    hosts.dedup();
    hosts
}

/// A VirtualService is found by the hosts it claims.
pub fn virtual_service_keys(o: &DynamicObject) -> Vec<String> {
    let ns = o.namespace().unwrap_or_default();
    virtual_service_hosts(o)
        .iter()
        .map(|h| host_key(&ns, h))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vs(name: &str, hosts: &[&str]) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"hosts": hosts},
        }))
        .unwrap()
    }

    fn id(name: &str) -> Id {
        ("ns".into(), name.into())
    }

    #[test]
    fn short_and_qualified_hosts_meet_under_one_key() {
        let idx = Index::new(virtual_service_keys);
        idx.observe(&watcher::Event::Apply(vs("a", &["reviews"])));
        idx.observe(&watcher::Event::Apply(vs(
            "b",
            &["reviews.ns.svc.cluster.local"],
        )));
        idx.observe(&watcher::Event::Apply(vs("c", &["ratings"])));
        let key = host_key("ns", "reviews.ns.svc.cluster.local");
        assert_eq!(idx.get(&key), vec![id("a"), id("b")]);
    }

    #[test]
    fn a_changed_or_deleted_object_leaves_its_old_keys() {
        let idx = Index::new(virtual_service_keys);
        idx.observe(&watcher::Event::Apply(vs("a", &["reviews"])));
        idx.observe(&watcher::Event::Apply(vs("a", &["ratings"])));
        assert!(
            idx.get(&host_key("ns", "reviews.ns.svc.cluster.local"))
                .is_empty()
        );
        assert_eq!(
            idx.get(&host_key("ns", "ratings.ns.svc.cluster.local")),
            vec![id("a")]
        );
        idx.observe(&watcher::Event::Delete(vs("a", &["ratings"])));
        assert!(
            idx.get(&host_key("ns", "ratings.ns.svc.cluster.local"))
                .is_empty()
        );
    }

    #[test]
    fn a_relist_replaces_the_table_when_done_and_answers_meanwhile() {
        let idx = Index::new(virtual_service_keys);
        idx.observe(&watcher::Event::Apply(vs("gone", &["reviews"])));
        idx.observe(&watcher::Event::Init);
        idx.observe(&watcher::Event::InitApply(vs("kept", &["reviews"])));
        let key = host_key("ns", "reviews.ns.svc.cluster.local");
        assert_eq!(idx.get(&key), vec![id("gone")], "old table until InitDone");
        idx.observe(&watcher::Event::InitDone);
        assert_eq!(idx.get(&key), vec![id("kept")]);
    }

    #[test]
    fn a_rollout_is_found_by_everything_it_names() {
        let r: Rollout = serde_json::from_value(json!({
            "apiVersion": "rollouts.ramp.dev/v1beta1", "kind": "Rollout",
            "metadata": {"name": "demo", "namespace": "ns"},
            "spec": {
                "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "strategy": {"canary": {"steps": [{"replicas": 1}], "trafficRoutings": [{
                    "service": "svc",
                    "customNetworkRefs": [{"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "name": "vs"}],
                    "gateway": {"httpRouteName": "route"}
                }]}}
            }
        }))
        .unwrap();
        let idx = Index::new(rollout_keys);
        idx.observe(&watcher::Event::Apply(r));
        for key in [
            workload_key("ns", "web"),
            service_key("ns", "svc"),
            service_key("ns", "svc-canary"),
            routing_key("ns", "VirtualService", "vs"),
            routing_key("ns", "HTTPRoute", "route"),
            host_key("ns", "svc.ns.svc.cluster.local"),
        ] {
            assert_eq!(idx.get(&key), vec![id("demo")], "{key}");
        }
        assert!(idx.get(&workload_key("other", "web")).is_empty());
    }
}
