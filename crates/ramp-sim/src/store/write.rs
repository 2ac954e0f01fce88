//! Create, update and patch, and the commit every write ends in (resource version, watch
//! event, uid and owner indexes).

use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::errors::{ApiError, ApiResult, Cause};
use crate::resources::GroupResource;

impl Store {
    /// Creates an object (`POST`). `namespace` is the request's namespace (the object's
    /// `metadata.namespace` must be empty or equal).
    pub fn create(
        &self,
        gr: &GroupResource,
        namespace: Option<&str>,
        obj: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        if events_view::is_view(gr) {
            return self.view_create(namespace, obj, opts);
        }
        let mut st = self.write();
        self.create_locked(&mut st, gr, namespace, obj, opts)
    }
    pub(super) fn create_locked(
        &self,
        st: &mut State,
        gr: &GroupResource,
        namespace: Option<&str>,
        mut obj: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        let rt = Self::stored_type(st, gr)?;
        let ns = Self::scope_check(&rt, namespace)?;
        check_kind(&rt, &obj)?;
        if !obj.get("metadata").is_none_or(Value::is_object) {
            return Err(ApiError::bad_request(
                "metadata must be an object".to_string(),
            ));
        }
        let meta = meta_mut(&mut obj)?;
        match meta.get("namespace").and_then(Value::as_str) {
            Some(n) if !n.is_empty() && n != ns && rt.namespaced => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => {}
        }
        if rt.namespaced {
            meta.insert("namespace".into(), json!(ns));
        } else {
            meta.remove("namespace");
        }
        let mut name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if name.is_empty() {
            let prefix = meta
                .get("generateName")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if prefix.is_empty() {
                return Err(ApiError::invalid(
                    &rt.group,
                    &rt.kind,
                    "",
                    vec![Cause::new(
                        "FieldValueRequired",
                        "metadata.name",
                        "Required value: name or generateName is required",
                    )],
                ));
            }
            let table = st.tables.get(gr);
            loop {
                let candidate = format!("{prefix}{}", random_suffix());
                if !table.is_some_and(|t| t.objects.contains_key(&(ns.clone(), candidate.clone())))
                {
                    name = candidate;
                    break;
                }
            }
            meta.insert("name".into(), json!(name));
        }
        // System-owned fields are never taken from the client.
        for f in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "selfLink",
        ] {
            meta.remove(f);
        }
        validate_metadata(&rt, &name, &obj)?;
        if rt.namespaced && gr.resource != "namespaces" {
            let nsgr = GroupResource::new("", "namespaces");
            match st
                .tables
                .get(&nsgr)
                .and_then(|t| t.objects.get(&(String::new(), ns.clone())))
            {
                None => return Err(ApiError::not_found("", "namespaces", &ns)),
                Some(n) if n.pointer("/metadata/deletionTimestamp").is_some() => {
                    return Err(ApiError::forbidden(format!(
                        "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                        gr
                    ))
                    .with_details(&gr.group, &gr.resource, &name));
                }
                Some(_) => {}
            }
        }
        if st
            .tables
            .get(gr)
            .is_some_and(|t| t.objects.contains_key(&(ns.clone(), name.clone())))
        {
            return Err(ApiError::already_exists(&gr.group, &gr.resource, &name));
        }
        let version = object_version(&rt, &obj);
        // Status is owned by the status subresource: a create does not set it.
        if rt.has_status(&version)
            && !matches!(rt.kind.as_str(), "CustomResourceDefinition")
            && let Some(o) = obj.as_object_mut()
        {
            o.remove("status");
        }
        let mut warnings = Vec::new();
        self.admit(st, &rt, &version, &mut obj, None, opts, &mut warnings)?;
        let meta = meta_mut(&mut obj)?;
        meta.insert("uid".into(), json!(new_uid()));
        meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
        resources::prepare_for_create(&rt, &mut obj);
        if let Some(manager) = opts.field_manager.as_deref().filter(|m| !m.is_empty()) {
            let api_version = rt.api_version(&version);
            let now = now_rfc3339();
            let writer = patch::managed::Writer {
                manager,
                api_version: &api_version,
                time: &now,
                subresource: None,
            };
            patch::managed::record_create(&mut obj, &rt.kind, !rt.is_custom(), &writer);
        }
        if tracks_generation(&rt, &obj)
            && let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut)
        {
            m.insert("generation".into(), json!(1));
        }
        if opts.dry_run {
            set_meta(&mut obj, "resourceVersion", json!(st.rv.to_string()));
            return Ok(Written {
                object: Arc::new(obj),
                created: true,
                warnings,
            });
        }
        let key = ObjKey {
            gr: gr.clone(),
            namespace: ns,
            name,
        };
        let stored = self.commit(st, &key, Some(obj), EventKind::Added)?;
        if rt.kind == "CustomResourceDefinition" && rt.group == "apiextensions.k8s.io" {
            return self.crd_established(st, &key).map(|object| Written {
                object,
                created: true,
                warnings,
            });
        }
        Ok(Written {
            object: stored,
            created: true,
            warnings,
        })
    }
    /// Replaces an object (`PUT`), or its status/scale subresource. A non-empty
    /// `metadata.resourceVersion` must equal the stored one (else `409 Conflict`).
    pub fn update(
        &self,
        gr: &GroupResource,
        namespace: Option<&str>,
        name: &str,
        obj: Value,
        subresource: Option<Subresource>,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        if events_view::is_view(gr) {
            return self.view_update(namespace, name, obj, subresource, opts);
        }
        let mut st = self.write();
        self.update_locked(&mut st, gr, namespace, name, obj, subresource, opts)
    }
    #[allow(clippy::too_many_arguments)]
    pub(super) fn update_locked(
        &self,
        st: &mut State,
        gr: &GroupResource,
        namespace: Option<&str>,
        name: &str,
        mut obj: Value,
        subresource: Option<Subresource>,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        let rt = Self::stored_type(st, gr)?;
        let ns = Self::scope_check(&rt, namespace)?;
        let key = (ns.clone(), name.to_string());
        let old = st
            .tables
            .get(gr)
            .and_then(|t| t.objects.get(&key))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&gr.group, &gr.resource, name))?;
        if subresource == Some(Subresource::Scale) {
            obj = scale_to_object(&rt, &old, &obj)?;
        } else {
            check_kind(&rt, &obj)?;
        }
        let body_name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !body_name.is_empty() && body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        if let Some(n) = obj.pointer("/metadata/namespace").and_then(Value::as_str)
            && rt.namespaced
            && !n.is_empty()
            && n != ns
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let old_rv = meta_str(&old, "resourceVersion").to_string();
        let body_rv = meta_str(&obj, "resourceVersion").to_string();
        if !body_rv.is_empty() && body_rv != old_rv {
            return Err(ApiError::conflict(
                &gr.group,
                &gr.resource,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
        let body_uid = meta_str(&obj, "uid").to_string();
        if !body_uid.is_empty() && body_uid != meta_str(&old, "uid") {
            return Err(ApiError::conflict(
                &gr.group,
                &gr.resource,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {body_uid}, UID in object meta: {}",
                    meta_str(&old, "uid")
                ),
            ));
        }
        let version = object_version(&rt, &obj);
        let mut new = match subresource {
            Some(Subresource::Status) => {
                // Only .status changes through /status.
                let mut n = (*old).clone();
                if let Some(o) = n.as_object_mut() {
                    match obj.get("status") {
                        Some(s) => o.insert("status".into(), s.clone()),
                        None => o.remove("status"),
                    };
                }
                n
            }
            _ => {
                let mut n = obj;
                if rt.has_status(&version) && subresource.is_none() {
                    // The main resource ignores status changes.
                    if let Some(o) = n.as_object_mut() {
                        match old.get("status") {
                            Some(s) => o.insert("status".into(), s.clone()),
                            None => o.remove("status"),
                        };
                    }
                }
                let m = meta_mut(&mut n)?;
                for f in [
                    "uid",
                    "creationTimestamp",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                    "generation",
                    "name",
                    "namespace",
                ] {
                    match old.pointer(&format!("/metadata/{f}")) {
                        Some(v) => m.insert(f.into(), v.clone()),
                        None => m.remove(f),
                    };
                }
                // managedFields: the client's when it sends some (`[{}]` clears them, as on
                // kube-apiserver), else the stored ones.
                let managed = match m.remove("managedFields") {
                    Some(Value::Array(a)) if a.len() == 1 && a[0] == json!({}) => None,
                    Some(Value::Array(a)) if !a.is_empty() => Some(Value::Array(a)),
                    _ => old.pointer("/metadata/managedFields").cloned(),
                };
                if let Some(mf) = managed {
                    m.insert("managedFields".into(), mf);
                }
                m.remove("selfLink");
                validate_metadata(&rt, name, &n)?;
                if let Some(manager) = opts.field_manager.as_deref().filter(|m| !m.is_empty()) {
                    let api_version = rt.api_version(&version);
                    let now = now_rfc3339();
                    let writer = patch::managed::Writer {
                        manager,
                        api_version: &api_version,
                        time: &now,
                        subresource: (subresource == Some(Subresource::Scale)).then_some("scale"),
                    };
                    patch::managed::record_update(&old, &mut n, &rt.kind, !rt.is_custom(), &writer);
                }
                n
            }
        };
        set_meta(&mut new, "resourceVersion", json!(old_rv));
        if let Some(o) = new.as_object_mut() {
            o.insert("apiVersion".into(), json!(rt.api_version(&version)));
            o.insert("kind".into(), json!(rt.kind));
        }
        // No new finalizers once deletion has started.
        if old.pointer("/metadata/deletionTimestamp").is_some() {
            let old_f = finalizers(&old);
            if let Some(f) = finalizers(&new).iter().find(|f| !old_f.contains(f)) {
                return Err(ApiError::forbidden(format!(
                    "{} \"{name}\" is forbidden: no new finalizers can be added if the object is being deleted, found new finalizers [\"{f}\"]",
                    gr
                ))
                .with_details(&gr.group, &gr.resource, name));
            }
        }
        let mut warnings = Vec::new();
        self.admit(st, &rt, &version, &mut new, Some(&old), opts, &mut warnings)?;
        if let Some(o) = new.as_object_mut() {
            o.insert("apiVersion".into(), json!(rt.storage_api_version()));
        }
        if tracks_generation(&rt, &new) && spec_changed(&old, &new) {
            let g = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            set_meta(&mut new, "generation", json!(g + 1));
        }
        if new == *old {
            // A no-op write: nothing changes, no event.
            return Ok(Written {
                object: old,
                created: false,
                warnings,
            });
        }
        if opts.dry_run {
            return Ok(Written {
                object: Arc::new(new),
                created: false,
                warnings,
            });
        }
        let okey = ObjKey {
            gr: gr.clone(),
            namespace: ns,
            name: name.to_string(),
        };
        let deleting = new.pointer("/metadata/deletionTimestamp").is_some();
        if deleting && finalizers(&new).is_empty() {
            let gone = self.remove_locked(st, &okey, Some(new), Propagation::Background)?;
            return Ok(Written {
                object: gone,
                created: false,
                warnings,
            });
        }
        let stored = self.commit(st, &okey, Some(new), EventKind::Modified)?;
        if rt.kind == "CustomResourceDefinition" && rt.group == "apiextensions.k8s.io" {
            let object = self.crd_established(st, &okey)?;
            return Ok(Written {
                object,
                created: false,
                warnings,
            });
        }
        Ok(Written {
            object: stored,
            created: false,
            warnings,
        })
    }
    /// Patches an object (or its status/scale). `Apply` creates a missing object.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        gr: &GroupResource,
        namespace: Option<&str>,
        name: &str,
        patch_type: PatchType,
        patch: &Value,
        subresource: Option<Subresource>,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        if events_view::is_view(gr) {
            return self.view_patch(namespace, name, patch_type, patch, subresource, opts);
        }
        let mut st = self.write();
        let rt = Self::stored_type(&st, gr)?;
        let ns = Self::scope_check(&rt, namespace)?;
        if patch_type == PatchType::Apply && opts.field_manager.as_deref().is_none_or(str::is_empty)
        {
            return Err(ApiError::bad_request(
                "PATCH requests with the apply content type require fieldManager to be set",
            ));
        }
        let current = st
            .tables
            .get(gr)
            .and_then(|t| t.objects.get(&(ns.clone(), name.to_string())))
            .cloned();
        let Some(current) = current else {
            if patch_type == PatchType::Apply && subresource.is_none() {
                let version = object_version(&rt, patch);
                let api_version = rt.api_version(&version);
                let now = now_rfc3339();
                let writer = patch::managed::Writer {
                    manager: opts.field_manager.as_deref().unwrap_or_default(),
                    api_version: &api_version,
                    time: &now,
                    subresource: None,
                };
                let mut obj = patch::managed::server_side_apply(
                    None,
                    patch,
                    &rt.kind,
                    !rt.is_custom(),
                    &writer,
                    opts.force,
                )
                .map_err(|e| {
                    ApiError::bad_request(format!("invalid apply patch: {}", e.message()))
                })?;
                let body_name = obj
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if !body_name.is_empty() && body_name != name {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({body_name}) does not match the name on the URL ({name})"
                    )));
                }
                set_meta(&mut obj, "name", json!(name));
                return self.create_locked(&mut st, gr, namespace, obj, opts);
            }
            return Err(ApiError::not_found(&gr.group, &gr.resource, name));
        };
        let version = patch
            .get("apiVersion")
            .and_then(Value::as_str)
            .map(|av| split_api_version(av).1.to_string())
            .filter(|v| rt.serves(v))
            .unwrap_or_else(|| rt.storage_version.clone());
        let mut target = if subresource == Some(Subresource::Scale) {
            object_to_scale(&rt, &current)?
        } else {
            let mut c = (*current).clone();
            if let Some(o) = c.as_object_mut() {
                o.insert("apiVersion".into(), json!(rt.api_version(&version)));
            }
            c
        };
        // A server-side apply records its own managed fields; the write is not recorded
        // again as an update (update_locked records writes that name a field manager).
        let mut update_opts = std::borrow::Cow::Borrowed(opts);
        if patch_type == PatchType::Apply && subresource != Some(Subresource::Scale) {
            let api_version = rt.api_version(&version);
            let now = now_rfc3339();
            let writer = patch::managed::Writer {
                manager: opts.field_manager.as_deref().unwrap_or_default(),
                api_version: &api_version,
                time: &now,
                subresource: match subresource {
                    Some(Subresource::Status) => Some("status"),
                    _ => None,
                },
            };
            target = patch::managed::server_side_apply(
                Some(&target),
                patch,
                &rt.kind,
                !rt.is_custom(),
                &writer,
                opts.force,
            )
            .map_err(|e| apply_error(&rt, name, e))?;
            update_opts.to_mut().field_manager = None;
        } else {
            apply_patch_document(&rt, name, &mut target, patch_type, patch, subresource)?;
        }
        if subresource == Some(Subresource::Scale) {
            // update_locked converts the Scale back.
        } else if target
            .pointer("/metadata/resourceVersion")
            .is_none_or(|v| v.as_str().is_none_or(str::is_empty))
        {
            set_meta(
                &mut target,
                "resourceVersion",
                json!(meta_str(&current, "resourceVersion")),
            );
        }
        self.update_locked(
            &mut st,
            gr,
            namespace,
            name,
            target,
            subresource,
            &update_opts,
        )
    }
    /// Stores (or removes, with `obj = None`) an object, bumps the resourceVersion, records the
    /// event and maintains the indexes. Returns the stored object.
    pub(super) fn commit(
        &self,
        st: &mut State,
        key: &ObjKey,
        obj: Option<Value>,
        kind: EventKind,
    ) -> ApiResult<Arc<Value>> {
        st.rv += 1;
        let rv = st.rv;
        let k = (key.namespace.clone(), key.name.clone());
        let history_cap = self.inner.config.watch_history;
        let table = st
            .tables
            .get_mut(&key.gr)
            .ok_or_else(|| ApiError::not_found(&key.gr.group, &key.gr.resource, &key.name))?;
        let previous = table.objects.get(&k).cloned();
        let mut obj = match (obj, &previous) {
            (Some(o), _) => o,
            (None, Some(p)) => (**p).clone(),
            (None, None) => {
                return Err(ApiError::not_found(
                    &key.gr.group,
                    &key.gr.resource,
                    &key.name,
                ));
            }
        };
        set_meta(&mut obj, "resourceVersion", json!(rv.to_string()));
        let obj = Arc::new(obj);
        let json = JsonCell::default();
        if kind == EventKind::Deleted {
            table.objects.remove(&k);
        } else {
            table.objects.insert(
                k,
                Entry {
                    obj: obj.clone(),
                    json: json.clone(),
                },
            );
        }
        let ev = Arc::new(WatchEvent {
            kind,
            object: obj.clone(),
            previous: previous.clone(),
            resource_version: rv,
            json,
            encoded: OnceLock::new(),
        });
        table.history.push_back(ev.clone());
        while table.history.len() > history_cap {
            if let Some(old) = table.history.pop_front() {
                table.compacted_rv = old.resource_version;
            }
        }
        let _ = table.tx.send(ev);
        // Indexes: uid and owner -> dependents.
        if let Some(prev) = &previous {
            for owner in owner_uids(prev) {
                if let Some(set) = st.dependents.get_mut(&owner) {
                    set.remove(key);
                    if set.is_empty() {
                        st.dependents.remove(&owner);
                    }
                }
            }
        }
        if kind == EventKind::Deleted {
            if let Some(uid) = uid_of(&obj) {
                st.uids.remove(&uid);
            }
        } else {
            if let Some(uid) = uid_of(&obj) {
                st.uids.insert(uid, key.clone());
            }
            for owner in owner_uids(&obj) {
                st.dependents.entry(owner).or_default().insert(key.clone());
            }
        }
        Ok(obj)
    }
}
