//! Delete and delete-collection: preconditions, finalizers, `deletionTimestamp`, and the
//! final removal that triggers garbage collection, namespace and CRD clean-up.

use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::errors::{ApiError, ApiResult};
use crate::resources::GroupResource;

impl Store {
    /// Deletes an object. With finalizers (or `Foreground`) it only gets a `deletionTimestamp`.
    pub fn delete(
        &self,
        gr: &GroupResource,
        namespace: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<Deleted> {
        if events_view::is_view(gr) {
            return self.view_delete(namespace, name, opts);
        }
        let mut st = self.write();
        self.delete_locked(&mut st, gr, namespace, name, opts)
    }
    pub(super) fn delete_locked(
        &self,
        st: &mut State,
        gr: &GroupResource,
        namespace: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<Deleted> {
        let rt = Self::stored_type(st, gr)?;
        let ns = Self::scope_check(&rt, namespace)?;
        let old = st
            .tables
            .get(gr)
            .and_then(|t| t.objects.get(&(ns.clone(), name.to_string())))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&gr.group, &gr.resource, name))?;
        if let Some(uid) = opts.precondition_uid.as_deref().filter(|u| !u.is_empty())
            && uid != meta_str(&old, "uid")
        {
            return Err(ApiError::conflict(
                &gr.group,
                &gr.resource,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(&old, "uid")
                ),
            ));
        }
        if let Some(rv) = opts
            .precondition_resource_version
            .as_deref()
            .filter(|r| !r.is_empty())
            && rv != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::conflict(
                &gr.group,
                &gr.resource,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    meta_str(&old, "resourceVersion")
                ),
            ));
        }
        if opts.dry_run {
            return Ok(Deleted::Gone(old));
        }
        let key = ObjKey {
            gr: gr.clone(),
            namespace: ns,
            name: name.to_string(),
        };
        let policy = opts.propagation.unwrap_or_default();
        let mut new = (*old).clone();
        let mut fins = finalizers(&new);
        match policy {
            Propagation::Foreground
                if self.has_dependents(st, &old) && !fins.iter().any(|f| f == FOREGROUND) =>
            {
                fins.push(FOREGROUND.into());
            }
            Propagation::Orphan => {
                if let Some(uid) = uid_of(&old) {
                    self.orphan_dependents(st, &uid)?;
                }
            }
            _ => {}
        }
        let is_namespace = gr.group.is_empty() && gr.resource == "namespaces";
        if fins.is_empty() && !is_namespace {
            let gone = self.remove_locked(st, &key, None, policy)?;
            return Ok(Deleted::Gone(gone));
        }
        if old.pointer("/metadata/deletionTimestamp").is_none() {
            set_meta(&mut new, "deletionTimestamp", json!(now_rfc3339()));
            set_meta(&mut new, "deletionGracePeriodSeconds", json!(0));
            set_meta(
                &mut new,
                "finalizers",
                Value::Array(fins.iter().map(|f| json!(f)).collect()),
            );
            if is_namespace && let Some(o) = new.as_object_mut() {
                o.insert("status".into(), json!({"phase": "Terminating"}));
            }
            self.commit(st, &key, Some(new), EventKind::Modified)?;
        } else if fins != finalizers(&old) {
            set_meta(
                &mut new,
                "finalizers",
                Value::Array(fins.iter().map(|f| json!(f)).collect()),
            );
            self.commit(st, &key, Some(new), EventKind::Modified)?;
        }
        if fins.iter().any(|f| f == FOREGROUND) {
            if let Some(uid) = uid_of(&old) {
                self.delete_dependents(st, &uid, Propagation::Foreground)?;
            }
            self.maybe_finish_foreground(st, &key)?;
        }
        if is_namespace {
            self.delete_namespace_contents(st, name)?;
        }
        let now = st
            .tables
            .get(gr)
            .and_then(|t| t.objects.get(&(key.namespace.clone(), key.name.clone())))
            .cloned();
        Ok(match now {
            Some(o) => Deleted::Pending(o),
            None => Deleted::Gone(old),
        })
    }
    /// Deletes every object matching the list options (`deletecollection`).
    pub fn delete_collection(
        &self,
        gr: &GroupResource,
        namespace: Option<&str>,
        list: &ListOptions,
        opts: &DeleteOptions,
    ) -> ApiResult<Vec<Arc<Value>>> {
        if events_view::is_view(gr) {
            return self.view_delete_collection(namespace, list, opts);
        }
        let items = self
            .list(
                gr,
                namespace,
                &ListOptions {
                    limit: None,
                    continue_token: None,
                    ..list.clone()
                },
            )?
            .items;
        let mut st = self.write();
        let mut out = Vec::new();
        for obj in items {
            let ns = meta_str(&obj, "namespace").to_string();
            let name = meta_str(&obj, "name").to_string();
            match self.delete_locked(
                &mut st,
                gr,
                Some(ns.as_str()).filter(|n| !n.is_empty()),
                &name,
                opts,
            ) {
                Ok(d) => out.push(d.object().clone()),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
    /// Removes an object for good (DELETED event), then collects garbage.
    pub(super) fn remove_locked(
        &self,
        st: &mut State,
        key: &ObjKey,
        last_state: Option<Value>,
        policy: Propagation,
    ) -> ApiResult<Arc<Value>> {
        let gone = self.commit(st, key, last_state, EventKind::Deleted)?;
        let uid = uid_of(&gone);
        // Dependents: orphaned or deleted.
        if let Some(uid) = &uid {
            match policy {
                Propagation::Orphan => self.orphan_dependents(st, uid)?,
                _ => self.delete_dependents(st, uid, Propagation::Background)?,
            }
        }
        // Owners waiting in foreground deletion.
        for owner in owner_uids(&gone) {
            if let Some(okey) = st.uids.get(&owner).cloned() {
                self.maybe_finish_foreground(st, &okey)?;
            }
        }
        // A CRD takes its objects and its type with it.
        if key.gr.group == "apiextensions.k8s.io" && key.gr.resource == "customresourcedefinitions"
        {
            self.crd_removed(st, &gone)?;
        }
        // A terminating namespace disappears once empty.
        if !key.namespace.is_empty() {
            self.maybe_finish_namespace(st, &key.namespace)?;
        }
        Ok(gone)
    }
}
