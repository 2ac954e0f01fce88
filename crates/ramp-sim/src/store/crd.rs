//! CustomResourceDefinitions: establishing a CRD registers its type and writes its status
//! conditions; removing it takes its objects and its type with it.

use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::errors::{ApiError, ApiResult};

impl Store {
    /// After a CRD write: register its type and set its status conditions.
    pub(super) fn crd_established(&self, st: &mut State, key: &ObjKey) -> ApiResult<Arc<Value>> {
        let obj = st
            .tables
            .get(&key.gr)
            .and_then(|t| t.objects.get(&(String::new(), key.name.clone())))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&key.gr.group, &key.gr.resource, &key.name))?;
        if obj.pointer("/metadata/deletionTimestamp").is_some() {
            return Ok(obj);
        }
        let rt = crd_to_resource_type(&obj)?;
        let conflict = st
            .types
            .get(&rt.group_resource())
            .is_some_and(|existing| existing.crd_name.as_deref() != Some(key.name.as_str()));
        let mut new = (*obj).clone();
        let now = now_rfc3339();
        let cond = |t: &str, ok: bool, reason: &str, msg: &str| {
            json!({"type": t, "status": if ok {"True"} else {"False"}, "reason": reason,
                   "message": msg, "lastTransitionTime": now})
        };
        let mut accepted = obj.pointer("/spec/names").cloned().unwrap_or(json!({}));
        if let Some(a) = accepted.as_object_mut() {
            a.insert("singular".into(), json!(rt.singular));
            a.insert("listKind".into(), json!(rt.list_kind));
        }
        let mut stored_versions: Vec<String> = obj
            .pointer("/status/storedVersions")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if !stored_versions.contains(&rt.storage_version) {
            stored_versions.push(rt.storage_version.clone());
        }
        let old_conds = obj
            .pointer("/status/conditions")
            .cloned()
            .unwrap_or(json!([]));
        let keep_time = |c: Value| -> Value {
            // Keep lastTransitionTime when the status did not change.
            let mut c = c;
            if let Some(prev) = old_conds.as_array().and_then(|a| {
                a.iter()
                    .find(|p| p.get("type") == c.get("type") && p.get("status") == c.get("status"))
            }) && let Some(t) = prev.get("lastTransitionTime")
            {
                c["lastTransitionTime"] = t.clone();
            }
            c
        };
        let status = if conflict {
            json!({
                "conditions": [
                    keep_time(cond("NamesAccepted", false, "NameConflict",
                        &format!("\"{}\" is already in use", rt.resource))),
                    keep_time(cond("Established", false, "NotAccepted", "not all names are accepted")),
                ],
                "acceptedNames": {"plural": "", "kind": ""},
                "storedVersions": stored_versions,
            })
        } else {
            json!({
                "conditions": [
                    keep_time(cond("NamesAccepted", true, "NoConflicts", "no conflicts found")),
                    keep_time(cond("Established", true, "InitialNamesAccepted",
                        "the initial names have been accepted")),
                ],
                "acceptedNames": accepted,
                "storedVersions": stored_versions,
            })
        };
        if let Some(o) = new.as_object_mut() {
            o.insert("status".into(), status);
        }
        if !conflict {
            self.register_locked(st, rt);
        }
        if new == *obj {
            return Ok(obj);
        }
        self.commit(st, key, Some(new), EventKind::Modified)
    }
    pub(super) fn crd_removed(&self, st: &mut State, crd: &Value) -> ApiResult<()> {
        let Ok(rt) = crd_to_resource_type(crd) else {
            return Ok(());
        };
        let gr = rt.group_resource();
        if st.types.get(&gr).and_then(|t| t.crd_name.as_deref()) != Some(meta_str(crd, "name")) {
            return Ok(());
        }
        let keys: Vec<Key> = st
            .tables
            .get(&gr)
            .map(|t| t.objects.keys().cloned().collect())
            .unwrap_or_default();
        for (ns, name) in keys {
            let key = ObjKey {
                gr: gr.clone(),
                namespace: ns,
                name,
            };
            // Finalizers on custom resources do not hold up the CRD's deletion here.
            self.remove_locked(st, &key, None, Propagation::Background)?;
        }
        st.types.remove(&gr);
        st.tables.remove(&gr);
        st.types_generation += 1;
        self.inner.types_changed.send_replace(st.types_generation);
        Ok(())
    }
}
