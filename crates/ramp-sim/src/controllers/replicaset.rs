//! The ReplicaSet controller: keeps `spec.replicas` pods, named `<rs>-<5 chars>`,
//! labelled and annotated from the template, owned by the ReplicaSet.

use std::cmp::Reverse;
use std::time::Duration;

use serde_json::{Value, json};

use crate::errors::ApiError;
use crate::resources::GroupResource;
use crate::store::{DeleteOptions, Delivered, Store, WriteOptions, meta_str};

use super::runner::{Key, Reconciler};
use super::util::{
    Children, controller_of, controller_ref, int_at, is_deleting, key_of, pods, replicasets,
    write_status,
};

/// The ReplicaSet controller: pods of each ReplicaSet, by its uid.
#[derive(Default)]
pub(crate) struct ReplicaSetController {
    children: Children,
}

impl Reconciler for ReplicaSetController {
    const NAME: &'static str = "replicaset";

    fn watches(&self) -> Vec<GroupResource> {
        vec![replicasets(), pods()]
    }

    fn keys_for(&mut self, _store: &Store, index: usize, d: &Delivered) -> Vec<Key> {
        let obj = &d.event.object;
        if index == 0 {
            return vec![key_of(obj)];
        }
        self.children.observe(d);
        let mut keys = Vec::new();
        for o in std::iter::once(obj).chain(d.event.previous.as_ref()) {
            if let Some(("ReplicaSet", name, _)) = controller_of(o) {
                keys.push((meta_str(o, "namespace").to_owned(), name.to_owned()));
            }
        }
        keys.dedup();
        keys
    }

    fn reconcile(&mut self, store: &Store, key: &Key) -> Result<Option<Duration>, ApiError> {
        let rs = match store.get(&replicasets(), Some(&key.0), &key.1) {
            Ok(rs) => rs,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        if is_deleting(&rs) {
            return Ok(None);
        }
        let desired = int_at(&rs, "/spec/replicas").unwrap_or(1).max(0) as usize;
        let mut active: Vec<Value> = self
            .children
            .owned_by(store, &pods(), &key.0, meta_str(&rs, "uid"))?
            .into_iter()
            .filter(|p| !is_deleting(p))
            .map(|p| (*p).clone())
            .collect();

        if active.len() < desired {
            for _ in active.len()..desired {
                let pod = new_pod(&rs);
                match store.create(&pods(), Some(&key.0), pod, &WriteOptions::default()) {
                    Ok(w) => {
                        self.children.insert(
                            &key.0,
                            meta_str(&w.object, "name"),
                            meta_str(&rs, "uid"),
                        );
                        active.push((*w.object).clone())
                    }
                    Err(e) => {
                        tracing::debug!(replicaset = %key.1, error = %e, "creating a pod");
                        return Err(e);
                    }
                }
            }
        } else if active.len() > desired {
            // Delete the least useful first: not ready before ready, newest before oldest.
            active.sort_by_key(|p| {
                (
                    super::kubelet::is_ready(p),
                    Reverse(meta_str(p, "creationTimestamp").to_owned()),
                    Reverse(meta_str(p, "name").to_owned()),
                )
            });
            let surplus = active.len() - desired;
            for p in active.drain(..surplus) {
                match store.delete(
                    &pods(),
                    Some(&key.0),
                    meta_str(&p, "name"),
                    &DeleteOptions::default(),
                ) {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e),
                }
            }
        }

        let min_ready = int_at(&rs, "/spec/minReadySeconds").unwrap_or(0).max(0);
        let now = chrono::Utc::now();
        let mut ready = 0;
        let mut available = 0;
        let mut recheck: Option<Duration> = None;
        for p in &active {
            if !super::kubelet::is_ready(p) {
                continue;
            }
            ready += 1;
            let since = super::util::find_condition(p, "Ready")
                .and_then(|c| c.get("lastTransitionTime"))
                .and_then(Value::as_str)
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&chrono::Utc));
            let ready_for = since.map(|s| now - s).unwrap_or_default();
            let needed = chrono::Duration::seconds(min_ready);
            if min_ready == 0 || ready_for >= needed {
                available += 1;
            } else {
                let left =
                    (needed - ready_for).to_std().unwrap_or_default() + Duration::from_millis(10);
                recheck = Some(recheck.map_or(left, |r| r.min(left)));
            }
        }
        let mut status = rs.get("status").cloned().unwrap_or_else(|| json!({}));
        if let Some(s) = status.as_object_mut() {
            s.insert("replicas".into(), json!(active.len()));
            s.insert("fullyLabeledReplicas".into(), json!(active.len()));
            s.insert("readyReplicas".into(), json!(ready));
            s.insert("availableReplicas".into(), json!(available));
            s.insert(
                "observedGeneration".into(),
                rs.pointer("/metadata/generation")
                    .cloned()
                    .unwrap_or(json!(1)),
            );
        }
        write_status(store, &replicasets(), &rs, status)?;
        Ok(recheck)
    }
}

/// A pod from the ReplicaSet's template: `generateName: <rs>-`, the template's
/// labels and annotations, owned by the ReplicaSet.
fn new_pod(rs: &Value) -> Value {
    let template = rs
        .pointer("/spec/template")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let mut metadata = json!({
        "generateName": format!("{}-", meta_str(rs, "name")),
        "namespace": meta_str(rs, "namespace"),
        "ownerReferences": [controller_ref(rs)],
    });
    for field in ["labels", "annotations"] {
        if let Some(v) = template.pointer(&format!("/metadata/{field}")) {
            metadata[field] = v.clone();
        }
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
    })
}
