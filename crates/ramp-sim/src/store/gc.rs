//! Garbage collection by owner references: orphaning, background and foreground deletion of
//! dependents.

use serde_json::{Value, json};

use super::*;
use crate::errors::ApiResult;

pub(super) fn owner_uids(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str).map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn remove_owner_ref(obj: &mut Value, owner_uid: &str) {
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut)
        && let Some(refs) = m.get_mut("ownerReferences").and_then(Value::as_array_mut)
    {
        refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid));
        if refs.is_empty() {
            m.remove("ownerReferences");
        }
    }
}

pub(super) fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

impl Store {
    pub(super) fn has_dependents(&self, st: &State, obj: &Value) -> bool {
        uid_of(obj)
            .and_then(|u| st.dependents.get(&u))
            .is_some_and(|s| !s.is_empty())
    }
    pub(super) fn orphan_dependents(&self, st: &mut State, owner_uid: &str) -> ApiResult<()> {
        let deps: Vec<ObjKey> = st
            .dependents
            .get(owner_uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        for dep in deps {
            let Some(obj) = st
                .tables
                .get(&dep.gr)
                .and_then(|t| t.objects.get(&(dep.namespace.clone(), dep.name.clone())))
                .cloned()
            else {
                continue;
            };
            let mut new = (*obj).clone();
            remove_owner_ref(&mut new, owner_uid);
            self.commit(st, &dep, Some(new), EventKind::Modified)?;
        }
        Ok(())
    }
    pub(super) fn delete_dependents(
        &self,
        st: &mut State,
        owner_uid: &str,
        policy: Propagation,
    ) -> ApiResult<()> {
        let mut deps: Vec<ObjKey> = st
            .dependents
            .get(owner_uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        deps.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        let owner_gone = !st.uids.contains_key(owner_uid);
        for dep in deps {
            let Some(obj) = st
                .tables
                .get(&dep.gr)
                .and_then(|t| t.objects.get(&(dep.namespace.clone(), dep.name.clone())))
                .cloned()
            else {
                continue;
            };
            // Another owner still alive: only drop the reference to the deleted one.
            let others_alive = owner_uids(&obj)
                .iter()
                .any(|u| u != owner_uid && st.uids.contains_key(u));
            if others_alive {
                if owner_gone {
                    let mut new = (*obj).clone();
                    remove_owner_ref(&mut new, owner_uid);
                    self.commit(st, &dep, Some(new), EventKind::Modified)?;
                }
                continue;
            }
            if obj.pointer("/metadata/deletionTimestamp").is_some() {
                continue;
            }
            let ns = dep.namespace.clone();
            let res = self.delete_locked(
                st,
                &dep.gr,
                Some(ns.as_str()).filter(|n| !n.is_empty()),
                &dep.name,
                &DeleteOptions {
                    propagation: Some(policy),
                    ..Default::default()
                },
            );
            match res {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
    pub(super) fn maybe_finish_foreground(&self, st: &mut State, key: &ObjKey) -> ApiResult<()> {
        let Some(obj) = st
            .tables
            .get(&key.gr)
            .and_then(|t| t.objects.get(&(key.namespace.clone(), key.name.clone())))
            .cloned()
        else {
            return Ok(());
        };
        if obj.pointer("/metadata/deletionTimestamp").is_none()
            || !finalizers(&obj).iter().any(|f| f == FOREGROUND)
            || self.has_dependents(st, &obj)
        {
            return Ok(());
        }
        let mut new = (*obj).clone();
        let fins: Vec<String> = finalizers(&new)
            .into_iter()
            .filter(|f| f != FOREGROUND && f != ORPHAN)
            .collect();
        if fins.is_empty() {
            if let Some(m) = new.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("finalizers");
            }
            self.remove_locked(st, key, Some(new), Propagation::Background)?;
        } else {
            set_meta(
                &mut new,
                "finalizers",
                Value::Array(fins.iter().map(|f| json!(f)).collect()),
            );
            self.commit(st, key, Some(new), EventKind::Modified)?;
        }
        Ok(())
    }
}
