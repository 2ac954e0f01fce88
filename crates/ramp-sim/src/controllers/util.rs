//! Small helpers shared by the controllers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::{Value, json};

use crate::errors::ApiError;
use crate::resources::GroupResource;
use crate::store::{Delivered, EventKind, PatchType, Store, Subresource, WriteOptions, meta_str};

use super::runner::Key;

pub(crate) fn gr(group: &str, resource: &str) -> GroupResource {
    GroupResource::new(group, resource)
}

pub(crate) fn deployments() -> GroupResource {
    gr("apps", "deployments")
}

pub(crate) fn replicasets() -> GroupResource {
    gr("apps", "replicasets")
}

pub(crate) fn pods() -> GroupResource {
    gr("", "pods")
}

pub(crate) fn services() -> GroupResource {
    gr("", "services")
}

pub(crate) fn endpoints() -> GroupResource {
    gr("", "endpoints")
}

pub(crate) fn key_of(obj: &Value) -> Key {
    (
        meta_str(obj, "namespace").to_owned(),
        meta_str(obj, "name").to_owned(),
    )
}

pub(crate) fn is_deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

/// The controlling owner reference: (kind, name, uid).
pub(crate) fn controller_of(obj: &Value) -> Option<(&str, &str, &str)> {
    obj.pointer("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .map(|r| {
            (
                r.get("kind").and_then(Value::as_str).unwrap_or_default(),
                r.get("name").and_then(Value::as_str).unwrap_or_default(),
                r.get("uid").and_then(Value::as_str).unwrap_or_default(),
            )
        })
}

/// An owner reference making `owner` the controller of the object that carries it.
pub(crate) fn controller_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": owner.get("apiVersion").cloned().unwrap_or(Value::Null),
        "kind": owner.get("kind").cloned().unwrap_or(Value::Null),
        "name": meta_str(owner, "name"),
        "uid": meta_str(owner, "uid"),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// Children (ReplicaSets of a Deployment, pods of a ReplicaSet) by the uid of
/// their controller, kept from the controller's watch of the child kind and
/// from the children it creates itself, so that a reconcile reads its own
/// children instead of listing (and parsing) every object of the namespace:
/// that made a mass change quadratic in the objects per namespace.
///
/// The store stays the truth: [`Children::owned_by`] reads each child from it
/// and keeps only those still controlled by the owner. A child created by
/// someone else shows up when its watch event arrives, which also triggers
/// the owner's reconcile.
#[derive(Debug, Default)]
pub(crate) struct Children {
    by_owner: HashMap<(String, String), BTreeSet<String>>,
    owner_of: HashMap<(String, String), String>,
}

impl Children {
    /// Follow one watch event of the child kind.
    pub fn observe(&mut self, d: &Delivered) {
        let o = &d.event.object;
        let ns = meta_str(o, "namespace");
        let name = meta_str(o, "name");
        match (d.kind, controller_of(o)) {
            (EventKind::Deleted, _) | (_, None) => self.forget(ns, name),
            (_, Some((_, _, uid))) => self.insert(ns, name, uid),
        }
    }

    /// Record a child this controller created.
    pub fn insert(&mut self, ns: &str, name: &str, owner_uid: &str) {
        let id = (ns.to_owned(), name.to_owned());
        if self.owner_of.get(&id).map(String::as_str) == Some(owner_uid) {
            return;
        }
        self.forget(ns, name);
        self.by_owner
            .entry((ns.to_owned(), owner_uid.to_owned()))
            .or_default()
            .insert(name.to_owned());
        self.owner_of.insert(id, owner_uid.to_owned());
    }

    fn forget(&mut self, ns: &str, name: &str) {
        let Some(uid) = self.owner_of.remove(&(ns.to_owned(), name.to_owned())) else {
            return;
        };
        let key = (ns.to_owned(), uid);
        if let Some(set) = self.by_owner.get_mut(&key) {
            set.remove(name);
            if set.is_empty() {
                self.by_owner.remove(&key);
            }
        }
    }

    /// The objects in `namespace` whose controller has this uid, read from
    /// the store (sorted by name).
    pub fn owned_by(
        &self,
        store: &Store,
        resource: &GroupResource,
        namespace: &str,
        owner_uid: &str,
    ) -> Result<Vec<Arc<Value>>, ApiError> {
        let Some(names) = self
            .by_owner
            .get(&(namespace.to_owned(), owner_uid.to_owned()))
        else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            match store.get(resource, Some(namespace), name) {
                Ok(o) if controller_of(&o).is_some_and(|(_, _, uid)| uid == owner_uid) => {
                    out.push(o)
                }
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

pub(crate) fn int_at(obj: &Value, pointer: &str) -> Option<i64> {
    obj.pointer(pointer).and_then(Value::as_i64)
}

pub(crate) fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// An int-or-percent field (`maxSurge: 25%`) against `total`; percentages
/// round up or down as Kubernetes does for each field.
pub(crate) fn int_or_percent(v: Option<&Value>, total: i64, round_up: bool, default: i64) -> i64 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(default).max(0),
        Some(Value::String(s)) => match s
            .strip_suffix('%')
            .and_then(|p| p.trim().parse::<i64>().ok())
        {
            Some(p) => {
                let scaled = p.max(0) * total;
                if round_up {
                    (scaled + 99) / 100
                } else {
                    scaled / 100
                }
            }
            None => s.trim().parse::<i64>().unwrap_or(default).max(0),
        },
        _ => default,
    }
}

/// Writes `status` through the status subresource, unless it is unchanged.
pub(crate) fn write_status(
    store: &Store,
    resource: &GroupResource,
    obj: &Value,
    status: Value,
) -> Result<(), ApiError> {
    if obj.get("status") == Some(&status) {
        return Ok(());
    }
    let mut whole = obj.clone();
    if let Some(o) = whole.as_object_mut() {
        o.insert("status".into(), status);
    }
    store.update(
        resource,
        Some(meta_str(obj, "namespace")),
        meta_str(obj, "name"),
        whole,
        Some(Subresource::Status),
        &WriteOptions::default(),
    )?;
    Ok(())
}

/// Merge-patches an object's main resource.
pub(crate) fn merge_patch(
    store: &Store,
    resource: &GroupResource,
    obj: &Value,
    patch: Value,
) -> Result<Arc<Value>, ApiError> {
    Ok(store
        .patch(
            resource,
            Some(meta_str(obj, "namespace")),
            meta_str(obj, "name"),
            PatchType::Merge,
            &patch,
            None,
            &WriteOptions::default(),
        )?
        .object)
}

/// Sets `replicas` on a ReplicaSet, guarded by its resourceVersion.
pub(crate) fn scale(store: &Store, rs: &Value, replicas: i64) -> Result<(), ApiError> {
    if int_at(rs, "/spec/replicas") == Some(replicas) {
        return Ok(());
    }
    merge_patch(
        store,
        &replicasets(),
        rs,
        json!({"metadata": {"resourceVersion": meta_str(rs, "resourceVersion")}, "spec": {"replicas": replicas}}),
    )?;
    Ok(())
}

/// A condition object as Kubernetes writes them.
pub(crate) fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    previous: Option<&Value>,
    now: &str,
    with_update_time: bool,
) -> Value {
    let same_status = previous
        .and_then(|p| p.get("status"))
        .and_then(Value::as_str)
        == Some(status);
    let transition = if same_status {
        previous
            .and_then(|p| p.get("lastTransitionTime"))
            .cloned()
            .unwrap_or_else(|| json!(now))
    } else {
        json!(now)
    };
    let mut c = json!({
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": transition,
    });
    if with_update_time {
        let unchanged = previous.is_some_and(|p| {
            p.get("status") == c.get("status")
                && p.get("reason") == c.get("reason")
                && p.get("message") == c.get("message")
        });
        let update = if unchanged {
            previous
                .and_then(|p| p.get("lastUpdateTime"))
                .cloned()
                .unwrap_or_else(|| json!(now))
        } else {
            json!(now)
        };
        if let Some(o) = c.as_object_mut() {
            o.insert("lastUpdateTime".into(), update);
        }
    }
    c
}

/// The condition of this type in `status.conditions`.
pub(crate) fn find_condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_or_percent_rounds_like_kubernetes() {
        assert_eq!(int_or_percent(Some(&json!("25%")), 10, true, 0), 3);
        assert_eq!(int_or_percent(Some(&json!("25%")), 10, false, 0), 2);
        assert_eq!(int_or_percent(Some(&json!(2)), 10, false, 0), 2);
        assert_eq!(int_or_percent(Some(&json!("0%")), 10, true, 0), 0);
        assert_eq!(int_or_percent(None, 10, true, 1), 1);
        assert_eq!(int_or_percent(Some(&json!("100%")), 3, true, 0), 3);
    }

    #[test]
    fn a_condition_keeps_its_transition_time_while_its_status_holds() {
        let prev = condition("Available", "True", "A", "m", None, "t1", true);
        let same = condition("Available", "True", "A", "m", Some(&prev), "t2", true);
        assert_eq!(same["lastTransitionTime"], "t1");
        assert_eq!(same["lastUpdateTime"], "t1");
        let reworded = condition("Available", "True", "B", "m2", Some(&prev), "t3", true);
        assert_eq!(reworded["lastTransitionTime"], "t1");
        assert_eq!(reworded["lastUpdateTime"], "t3");
        let flipped = condition("Available", "False", "B", "m2", Some(&prev), "t4", false);
        assert_eq!(flipped["lastTransitionTime"], "t4");
        assert!(flipped.get("lastUpdateTime").is_none());
    }
}
