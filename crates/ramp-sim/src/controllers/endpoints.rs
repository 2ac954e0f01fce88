//! The Endpoints controller: each Service with a selector gets an Endpoints
//! object listing its matching pods, ready ones under `addresses`, the others
//! under `notReadyAddresses`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::errors::ApiError;
use crate::resources::GroupResource;
use crate::store::{DeleteOptions, Delivered, ListOptions, Store, WriteOptions, meta_str};

use super::runner::{Key, Reconciler};
use super::util::{endpoints, is_deleting, key_of, pods, services, string_map};

pub(crate) struct EndpointsController;

impl Reconciler for EndpointsController {
    const NAME: &'static str = "endpoints";

    fn watches(&self) -> Vec<GroupResource> {
        vec![services(), pods()]
    }

    fn keys_for(&mut self, store: &Store, index: usize, d: &Delivered) -> Vec<Key> {
        let obj = &d.event.object;
        if index == 0 {
            return vec![key_of(obj)];
        }
        // A pod changed: the Services selecting it, before or after the change.
        let ns = meta_str(obj, "namespace");
        let Ok(list) = store.list(&services(), Some(ns), &ListOptions::default()) else {
            // Cannot tell which: resync the whole namespace ("" = all).
            return vec![(ns.to_owned(), String::new())];
        };
        let labels: Vec<_> = std::iter::once(obj)
            .chain(d.event.previous.as_ref())
            .map(|p| string_map(p.pointer("/metadata/labels")))
            .collect();
        list.items
            .iter()
            .filter(|svc| {
                let sel = string_map(svc.pointer("/spec/selector"));
                !sel.is_empty()
                    && labels
                        .iter()
                        .any(|l| sel.iter().all(|(k, v)| l.get(k) == Some(v)))
            })
            .map(|svc| key_of(svc))
            .collect()
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
