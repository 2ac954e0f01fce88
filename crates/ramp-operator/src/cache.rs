//! Watch caches that keep each object as its compact JSON.
//!
//! kube-runtime's reflector keeps every object decoded: a Deployment of the
//! README's walk-through takes about 9.6 KiB of heap that way (every map a
//! B-tree node, every field a `String`), against 2.2 KiB as JSON. At 10,000
//! Rollouts the decoded caches alone were over 300 MiB. A [`Compact`] cache
//! holds the JSON bytes (and the resourceVersion beside them, which
//! [`crate::writes`] compares without decoding) and decodes an object only
//! when a reconcile reads it, which is a few objects per reconcile. The
//! JSON is LZ4-compressed (about half the bytes again for a Deployment;
//! compressing or expanding one object takes microseconds).
//!
//! It is fed the watch events the controller's streams carry, before the
//! mappers see them, and rebuilds on a re-list aside, swapping at `InitDone`
//! like the reflector does, so lookups stay answered meanwhile.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{PoisonError, RwLock};

use kube::ResourceExt;
use kube::runtime::watcher;
use serde::Serialize;
use serde::de::DeserializeOwned;

struct Entry {
    version: Box<str>,
    /// LZ4 block with the size prepended.
    json: Box<[u8]>,
}

/// Objects by namespace, then name.
type Table = HashMap<Box<str>, HashMap<Box<str>, Entry>>;

#[derive(Default)]
struct State {
    live: Table,
    building: Option<Table>,
}

/// A watch cache of `K` objects kept as JSON.
pub struct Compact<K> {
    state: RwLock<State>,
    _kind: PhantomData<fn() -> K>,
}

impl<K> Default for Compact<K> {
    fn default() -> Self {
        Compact {
            state: RwLock::default(),
            _kind: PhantomData,
        }
    }
}

fn put<K: ResourceExt + Serialize>(t: &mut Table, o: &K) {
    let Ok(json) = serde_json::to_vec(o) else {
        // Every object decoded from the API server encodes again; should
        // one not, it is absent from the cache rather than stale in it.
        remove(t, o);
        return;
    };
    let ns = o.namespace().unwrap_or_default();
    let entry = Entry {
        version: o.resource_version().unwrap_or_default().into(),
        json: lz4_flex::compress_prepend_size(&json).into_boxed_slice(),
    };
    match t.get_mut(ns.as_str()) {
        Some(m) => {
            m.insert(o.name_any().into(), entry);
        }
        None => {
            t.entry(ns.into())
                .or_default()
                .insert(o.name_any().into(), entry);
        }
    }
}

fn remove<K: ResourceExt>(t: &mut Table, o: &K) {
    let ns = o.namespace().unwrap_or_default();
    if let Some(m) = t.get_mut(ns.as_str()) {
        m.remove(o.name_any().as_str());
        if m.is_empty() {
            t.remove(ns.as_str());
        }
    }
}

impl<K: ResourceExt + Serialize + DeserializeOwned> Compact<K> {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Follow one watch event.
    pub fn observe(&self, ev: &watcher::Event<K>) {
        let mut s = self.write();
        match ev {
            watcher::Event::Init => s.building = Some(Table::default()),
            watcher::Event::InitApply(o) => match s.building.as_mut() {
                Some(t) => put(t, o),
                None => put(&mut s.live, o),
            },
            watcher::Event::InitDone => {
                if let Some(t) = s.building.take() {
                    s.live = t;
                }
            }
            watcher::Event::Apply(o) => put(&mut s.live, o),
            watcher::Event::Delete(o) => remove(&mut s.live, o),
        }
    }

    /// The object `ns/name`, decoded.
    pub fn get(&self, ns: &str, name: &str) -> Option<K> {
        self.get_as(ns, name)
    }

    /// The object `ns/name` decoded as `T` (for example straight to a
    /// `serde_json::Value`, for a planner that reads JSON).
    pub fn get_as<T: DeserializeOwned>(&self, ns: &str, name: &str) -> Option<T> {
        let s = self.read();
        let e = s.live.get(ns)?.get(name)?;
        let json = lz4_flex::decompress_size_prepended(&e.json).ok()?;
        serde_json::from_slice(&json).ok()
    }

    /// The resourceVersion of `ns/name`.
    pub fn version(&self, ns: &str, name: &str) -> Option<String> {
        let s = self.read();
        Some(s.live.get(ns)?.get(name)?.version.to_string())
    }

    /// Whether `ns/name` is cached.
    pub fn contains(&self, ns: &str, name: &str) -> bool {
        self.read()
            .live
            .get(ns)
            .is_some_and(|m| m.contains_key(name))
    }

    /// How many objects are cached.
    pub fn len(&self) -> usize {
        self.read().live.values().map(HashMap::len).sum()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held, compressed.
    pub fn json_bytes(&self) -> usize {
        self.read()
            .live
            .values()
            .flat_map(HashMap::values)
            .map(|e| e.json.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Service;
    use serde_json::json;

    fn svc(ns: &str, name: &str, rv: &str, selector: &str) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns, "resourceVersion": rv,
                         "labels": {"app": selector}},
            "spec": {"selector": {"app": selector}, "ports": [{"port": 80}]}
        }))
        .unwrap()
    }

    #[test]
    fn objects_come_back_as_they_were_stored() {
        let c = Compact::<Service>::new();
        let s = svc("ns", "web", "7", "web");
        c.observe(&watcher::Event::Apply(s.clone()));
        assert_eq!(c.get("ns", "web"), Some(s.clone()));
        assert_eq!(
            c.get_as::<serde_json::Value>("ns", "web"),
            Some(serde_json::to_value(&s).unwrap())
        );
        assert_eq!(c.version("ns", "web").as_deref(), Some("7"));
        assert_eq!(c.get("other", "web"), None);
        assert_eq!(c.get("ns", "other"), None);
        assert!(c.json_bytes() > 0);
    }

    #[test]
    fn updates_replace_and_deletes_remove() {
        let c = Compact::<Service>::new();
        c.observe(&watcher::Event::Apply(svc("ns", "web", "1", "a")));
        c.observe(&watcher::Event::Apply(svc("ns", "web", "2", "b")));
        assert_eq!(c.version("ns", "web").as_deref(), Some("2"));
        assert_eq!(c.len(), 1);
        c.observe(&watcher::Event::Delete(svc("ns", "web", "3", "b")));
        assert!(!c.contains("ns", "web"));
        assert!(c.is_empty());
    }

    #[test]
    fn a_relist_replaces_the_cache_at_init_done_and_answers_meanwhile() {
        let c = Compact::<Service>::new();
        c.observe(&watcher::Event::Apply(svc("ns", "gone", "1", "a")));
        c.observe(&watcher::Event::Apply(svc("ns", "kept", "1", "a")));
        c.observe(&watcher::Event::Init);
        c.observe(&watcher::Event::InitApply(svc("ns", "kept", "5", "b")));
        // Until the list is complete, the old content answers.
        assert!(c.contains("ns", "gone"));
        assert_eq!(c.version("ns", "kept").as_deref(), Some("1"));
        c.observe(&watcher::Event::InitDone);
        assert!(
            !c.contains("ns", "gone"),
            "deleted while the watch was down"
        );
        assert_eq!(c.version("ns", "kept").as_deref(), Some("5"));
    }
}
