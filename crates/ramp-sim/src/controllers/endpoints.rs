//! The Endpoints controller: each Service with a selector gets an Endpoints
//! object listing its matching pods, ready ones under `addresses`, the others
//! under `notReadyAddresses`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::{Value, json};

use crate::errors::ApiError;
use crate::resources::GroupResource;
use crate::store::{
    DeleteOptions, Delivered, EventKind, ListOptions, Store, WriteOptions, meta_str,
};

use super::runner::{Key, Reconciler};
use super::util::{endpoints, is_deleting, key_of, pods, services, string_map};

/// The Endpoints controller, with the selectors of the Services it watches
/// (so that a pod event finds the Services selecting it by a lookup, not by
/// listing and parsing every Service of the namespace).
#[derive(Default)]
pub(crate) struct EndpointsController {
    /// Selector of each Service that has one, by (namespace, name).
    selectors: HashMap<Key, BTreeMap<String, String>>,
    /// Services by (namespace, one label of their selector, its value): the
    /// selector's first pair, which every selected pod carries.
    by_label: HashMap<(String, String, String), Vec<String>>,
}

impl EndpointsController {
    fn forget(&mut self, key: &Key) {
        if let Some(sel) = self.selectors.remove(key)
            && let Some((k, v)) = sel.iter().next()
        {
            let idx = (key.0.clone(), k.clone(), v.clone());
            if let Some(list) = self.by_label.get_mut(&idx) {
                list.retain(|n| n != &key.1);
                if list.is_empty() {
                    self.by_label.remove(&idx);
                }
            }
        }
    }

    fn observe_service(&mut self, d: &Delivered) {
        let key = key_of(&d.event.object);
        self.forget(&key);
        if d.kind == EventKind::Deleted {
            return;
        }
        let sel = string_map(d.event.object.pointer("/spec/selector"));
        let Some((k, v)) = sel.iter().next() else {
            return;
        };
        self.by_label
            .entry((key.0.clone(), k.clone(), v.clone()))
            .or_default()
            .push(key.1.clone());
        self.selectors.insert(key, sel);
    }
}

impl Reconciler for EndpointsController {
    const NAME: &'static str = "endpoints";

    fn watches(&self) -> Vec<GroupResource> {
        vec![services(), pods()]
    }

    fn keys_for(&mut self, _store: &Store, index: usize, d: &Delivered) -> Vec<Key> {
        let obj = &d.event.object;
        if index == 0 {
            self.observe_service(d);
            return vec![key_of(obj)];
        }
        // A pod changed: the Services selecting it, before or after the change.
        let ns = meta_str(obj, "namespace");
        let mut keys: Vec<Key> = Vec::new();
        for labels in std::iter::once(obj)
            .chain(d.event.previous.as_ref())
            .map(|p| string_map(p.pointer("/metadata/labels")))
        {
            for (k, v) in &labels {
                let Some(names) = self.by_label.get(&(ns.to_owned(), k.clone(), v.clone())) else {
                    continue;
                };
                for n in names {
                    let key = (ns.to_owned(), n.clone());
                    if self
                        .selectors
                        .get(&key)
                        .is_some_and(|sel| sel.iter().all(|(sk, sv)| labels.get(sk) == Some(sv)))
                        && !keys.contains(&key)
                    {
                        keys.push(key);
                    }
                }
            }
        }
        keys
    }

    fn reconcile(&mut self, store: &Store, key: &Key) -> Result<Option<Duration>, ApiError> {
        if key.1.is_empty() {
            let list = match store.list(&services(), Some(&key.0), &ListOptions::default()) {
                Ok(l) => l,
                Err(e) if e.is_not_found() => return Ok(None),
                Err(e) => return Err(e),
            };
            for svc in list.items {
                sync(store, &svc)?;
            }
            return Ok(None);
        }
        match store.get(&services(), Some(&key.0), &key.1) {
            Ok(svc) => sync(store, &svc)?,
            Err(e) if e.is_not_found() => {
                // The Service is gone: so are its endpoints.
                match store.delete(
                    &endpoints(),
                    Some(&key.0),
                    &key.1,
                    &DeleteOptions::default(),
                ) {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
        Ok(None)
    }
}

/// The label selector string for a Service's `spec.selector`.
fn selector_string(svc: &Value) -> Option<String> {
    let sel = string_map(svc.pointer("/spec/selector"));
    if sel.is_empty() {
        return None;
    }
    Some(
        sel.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
    )
}

fn sync(store: &Store, svc: &Value) -> Result<(), ApiError> {
    if is_deleting(svc) {
        return Ok(());
    }
    let Some(selector) = selector_string(svc) else {
        // No selector: endpoints are managed by hand.
        return Ok(());
    };
    let ns = meta_str(svc, "namespace");
    let name = meta_str(svc, "name");
    let mut matching: Vec<_> = store
        .list(
            &pods(),
            Some(ns),
            &ListOptions {
                label_selector: Some(selector),
                ..Default::default()
            },
        )?
        .items
        .into_iter()
        .filter(|p| !is_deleting(p))
        .collect();
    matching.sort_by(|a, b| meta_str(a, "name").cmp(meta_str(b, "name")));
    let mut ready = Vec::new();
    let mut not_ready = Vec::new();
    for p in &matching {
        let Some(ip) = p.pointer("/status/podIP").and_then(Value::as_str) else {
            continue;
        };
        let addr = json!({
            "ip": ip,
            "nodeName": super::kubelet::NODE_NAME,
            "targetRef": {"kind": "Pod", "namespace": ns, "name": meta_str(p, "name"), "uid": meta_str(p, "uid")}
        });
        if super::kubelet::is_ready(p) {
            ready.push(addr);
        } else {
            not_ready.push(addr);
        }
    }
    let ports: Vec<Value> = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            let port = p
                .get("targetPort")
                .filter(|t| t.is_number())
                .or_else(|| p.get("port"))
                .cloned()
                .unwrap_or(Value::Null);
            let mut out = json!({"port": port, "protocol": p.get("protocol").cloned().unwrap_or(json!("TCP"))});
            if let Some(n) = p.get("name") {
                out["name"] = n.clone();
            }
            out
        })
        .collect();
    let subsets = if ready.is_empty() && not_ready.is_empty() {
        json!([])
    } else {
        let mut s = json!({"ports": ports});
        if !ready.is_empty() {
            s["addresses"] = json!(ready);
        }
        if !not_ready.is_empty() {
            s["notReadyAddresses"] = json!(not_ready);
        }
        json!([s])
    };
    let labels = svc
        .pointer("/metadata/labels")
        .cloned()
        .unwrap_or_else(|| json!({}));
    match store.get(&endpoints(), Some(ns), name) {
        Ok(existing) => {
            if existing.get("subsets").unwrap_or(&json!([])) == &subsets {
                return Ok(());
            }
            let mut updated = (*existing).clone();
            updated["subsets"] = subsets;
            store.update(
                &endpoints(),
                Some(ns),
                name,
                updated,
                None,
                &WriteOptions::default(),
            )?;
        }
        Err(e) if e.is_not_found() => {
            let ep = json!({
                "apiVersion": "v1", "kind": "Endpoints",
                "metadata": {"name": name, "namespace": ns, "labels": labels},
                "subsets": subsets,
            });
            match store.create(&endpoints(), Some(ns), ep, &WriteOptions::default()) {
                Ok(_) => {}
                // Namespace terminating, or a concurrent create: the next event settles it.
                Err(e) if e.is_conflict() => {}
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    }
    Ok(())
}
