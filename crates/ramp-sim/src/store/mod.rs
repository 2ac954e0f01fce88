//! The in-memory object store: every object the sim serves lives here.
//!
//! # Model
//! - Objects are JSON ([`serde_json::Value`]) behind [`Arc`]s, keyed by
//!   ([`GroupResource`], namespace, name). Reads hand out `Arc` clones, never deep copies.
//! - One global `resourceVersion` counter, bumped on every write (like etcd's revision).
//! - Objects are stored in their type's storage version (`apiVersion` rewritten on write);
//!   the HTTP layer rewrites `apiVersion` for other served versions (no conversion webhooks:
//!   versions are assumed schema-compatible, as with a CRD's `conversion: None`).
//! - Every write appends a [`WatchEvent`] to a bounded per-resource history and broadcasts it.
//!   [`Store::watch`] resumes from any `resourceVersion` still in that history and fails with
//!   `410 Expired` when it is older.
//! - `events.k8s.io/v1` Events have no table of their own: they are a converted view of the
//!   core `v1` Events (see `events_view`), as on a real apiserver.
//! - Writes are serialised by one lock, so the sequence of resource versions is the sequence of
//!   events. Garbage collection, finalization and CRD (un)registration run synchronously inside
//!   the write that triggers them.
//!
//! # Using it from Rust (controllers run in-process)
//! ```no_run
//! # async fn demo() -> Result<(), ramp_sim::errors::ApiError> {
//! use ramp_sim::store::{Store, ListOptions, WriteOptions, PatchType, DeleteOptions};
//! use ramp_sim::resources::GroupResource;
//! let store = Store::new();
//! let deploys = GroupResource::new("apps", "deployments");
//! let created = store.create(&deploys, Some("default"), serde_json::json!({
//!     "apiVersion": "apps/v1", "kind": "Deployment",
//!     "metadata": {"name": "web"},
//!     "spec": {"selector": {"matchLabels": {"app": "web"}},
//!              "template": {"metadata": {"labels": {"app": "web"}},
//!                           "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}
//! }), &WriteOptions::default())?;
//! let list = store.list(&deploys, Some("default"), &ListOptions::default())?;
//! store.patch(&deploys, Some("default"), "web", PatchType::Merge,
//!     &serde_json::json!({"status": {"readyReplicas": 1}}), Some(ramp_sim::store::Subresource::Status),
//!     &WriteOptions::default())?;
//! let mut w = store.watch(&deploys, None, &ramp_sim::store::WatchOptions::default())?;
//! while let Some(Ok(ev)) = w.next().await { let _ = (ev.kind, &ev.event.object); break; }
//! store.delete(&deploys, Some("default"), "web", &DeleteOptions::default())?;
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

use base64::Engine as _;
use bytes::Bytes;
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use crate::errors::{ApiError, ApiResult};
use crate::patch;
use crate::resources::{self, GroupResource, ResourceType, builtin_types, crd_to_resource_type};
use crate::schema;
use crate::selector::{FieldSelector, LabelSelector};

/// Tuning knobs.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Watch events kept per resource type for resuming watches.
    pub watch_history: usize,
    /// Capacity of each resource's broadcast channel (a watcher that falls this far behind
    /// gets `410 Expired`).
    pub watch_channel: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            watch_history: 20_000,
            watch_channel: 32_768,
        }
    }
}

/// Which subresource a write addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subresource {
    /// `/status`: only `.status` changes.
    Status,
    /// `/scale`: reads/writes an `autoscaling/v1` `Scale`.
    Scale,
}

/// Patch content types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply; creates when missing).
    Apply,
}

impl PatchType {
    /// From a `Content-Type` header value.
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let base = ct.split(';').next().unwrap_or_default().trim();
        match base {
            "application/merge-patch+json" => Some(Self::Merge),
            "application/json-patch+json" => Some(Self::Json),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(Self::Apply),
            _ => None,
        }
    }
}

/// How unknown fields are treated (`fieldValidation`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FieldValidation {
    /// Drop them silently.
    Ignore,
    /// Drop them and return a warning per field (the apiserver default).
    #[default]
    Warn,
    /// Reject the request (400) naming the fields.
    Strict,
}

/// Options for create/update/patch.
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    /// `dryRun=All`: validate and return the result without storing it.
    pub dry_run: bool,
    /// `fieldValidation`.
    pub field_validation: FieldValidation,
    /// `fieldManager` (required for server-side apply; creates and updates that name one are
    /// recorded in `managedFields`).
    pub field_manager: Option<String>,
    /// `force` (server-side apply): take over fields other managers own instead of a 409.
    pub force: bool,
}

/// The result of a write.
#[derive(Clone, Debug)]
pub struct Written {
    /// The object as stored (or as it would be, for dry runs).
    pub object: Arc<Value>,
    /// True when the write created the object (HTTP 201).
    pub created: bool,
    /// Warnings for the `Warning` header (e.g. pruned unknown fields).
    pub warnings: Vec<String>,
}

/// `propagationPolicy` of a delete.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Propagation {
    /// Orphan the dependents (remove their owner references).
    Orphan,
    /// Delete the owner now, the dependents right after (the default).
    #[default]
    Background,
    /// Delete the dependents first; the owner keeps a `foregroundDeletion` finalizer until then.
    Foreground,
}

/// Options for delete.
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    /// `propagationPolicy` (None = Background).
    pub propagation: Option<Propagation>,
    /// `preconditions.uid`.
    pub precondition_uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub precondition_resource_version: Option<String>,
    /// `dryRun=All`.
    pub dry_run: bool,
}

/// The result of a delete.
#[derive(Clone, Debug)]
pub enum Deleted {
    /// The object is gone; this is its last state.
    Gone(Arc<Value>),
    /// The object has finalizers: it got a `deletionTimestamp` and stays until they are removed.
    Pending(Arc<Value>),
}

impl Deleted {
    /// The object either way.
    pub fn object(&self) -> &Arc<Value> {
        match self {
            Deleted::Gone(o) | Deleted::Pending(o) => o,
        }
    }
}

/// Options for list.
#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    /// `labelSelector`.
    pub label_selector: Option<String>,
    /// `fieldSelector` (`metadata.name`, `metadata.namespace`, ...).
    pub field_selector: Option<String>,
    /// `limit` (0/None = everything).
    pub limit: Option<usize>,
    /// `continue` token from a previous page.
    pub continue_token: Option<String>,
}

/// One page of a list.
#[derive(Clone, Debug)]
pub struct ObjectList {
    /// The objects, sorted by namespace then name.
    pub items: Vec<Arc<Value>>,
    /// Their JSON caches, index by index.
    json: Vec<JsonCell>,
    /// The store's resourceVersion when the page was read.
    pub resource_version: u64,
    /// Token for the next page, if any.
    pub continue_token: Option<String>,
    /// How many objects are left after this page (only when paging).
    pub remaining: Option<u64>,
}

impl ObjectList {
    /// The JSON of item `i` (in the stored `apiVersion`), serialized at most once per stored
    /// version of the object however many LISTs and watchers read it.
    pub fn item_json(&self, i: usize) -> Option<Bytes> {
        Some(json_of(self.json.get(i)?, self.items.get(i)?))
    }
}

type Key = (String, String);

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ObjKey {
    gr: GroupResource,
    namespace: String,
    name: String,
}

/// A stored object and the cache of its JSON.
struct Entry {
    obj: Arc<Value>,
    json: JsonCell,
}

/// The objects of one resource type, ordered by (namespace, name).
#[derive(Default)]
struct Objects(BTreeMap<Key, Entry>);

impl Objects {
    fn get(&self, k: &Key) -> Option<&Arc<Value>> {
        self.0.get(k).map(|e| &e.obj)
    }
    fn entry(&self, k: &Key) -> Option<&Entry> {
        self.0.get(k)
    }
    fn contains_key(&self, k: &Key) -> bool {
        self.0.contains_key(k)
    }
    fn keys(&self) -> impl Iterator<Item = &Key> {
        self.0.keys()
    }
    fn values(&self) -> impl Iterator<Item = &Entry> {
        self.0.values()
    }
    fn range<R: std::ops::RangeBounds<Key>>(
        &self,
        r: R,
    ) -> impl Iterator<Item = (&Key, &Arc<Value>)> {
        self.0.range(r).map(|(k, e)| (k, &e.obj))
    }
    fn entries(
        &self,
        r: (std::ops::Bound<Key>, std::ops::Bound<Key>),
    ) -> std::collections::btree_map::Range<'_, Key, Entry> {
        self.0.range(r)
    }
    fn insert(&mut self, k: Key, e: Entry) {
        self.0.insert(k, e);
    }
    fn remove(&mut self, k: &Key) -> Option<Entry> {
        self.0.remove(k)
    }
}

struct Table {
    objects: Objects,
    history: VecDeque<Arc<WatchEvent>>,
    compacted_rv: u64,
    tx: broadcast::Sender<Arc<WatchEvent>>,
}

impl Table {
    fn new(capacity: usize, rv: u64) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(16));
        Self {
            objects: Objects::default(),
            history: VecDeque::new(),
            compacted_rv: rv,
            tx,
        }
    }
}

struct State {
    rv: u64,
    types: HashMap<GroupResource, Arc<ResourceType>>,
    tables: HashMap<GroupResource, Table>,
    /// owner uid -> dependents.
    dependents: HashMap<String, HashSet<ObjKey>>,
    /// uid -> object.
    uids: HashMap<String, ObjKey>,
    types_generation: u64,
}

struct Inner {
    state: RwLock<State>,
    config: StoreConfig,
    types_changed: tokio::sync::watch::Sender<u64>,
}

/// The object store. Cheap to clone (an `Arc`).
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

/// Annotation marking the bookmark that ends the initial events of a `sendInitialEvents` watch.
pub const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

const FOREGROUND: &str = "foregroundDeletion";

const ORPHAN: &str = "orphan";

impl Store {
    /// A store with the built-in types and the `default`, `kube-system`, `kube-public` and
    /// `kube-node-lease` namespaces.
    pub fn new() -> Self {
        Self::with_config(StoreConfig::default())
    }
    /// A store with custom tuning.
    pub fn with_config(config: StoreConfig) -> Self {
        let (types_changed, _) = tokio::sync::watch::channel(0);
        let store = Store {
            inner: Arc::new(Inner {
                state: RwLock::new(State {
                    rv: 1,
                    types: HashMap::new(),
                    tables: HashMap::new(),
                    dependents: HashMap::new(),
                    uids: HashMap::new(),
                    types_generation: 0,
                }),
                config,
                types_changed,
            }),
        };
        {
            let mut st = store.write();
            for rt in builtin_types() {
                store.register_locked(&mut st, rt);
            }
        }
        let ns = GroupResource::new("", "namespaces");
        for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let res = store.create(
                &ns,
                None,
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
                &WriteOptions::default(),
            );
            if let Err(e) = res {
                tracing::error!(error = %e, "creating namespace {name}");
            }
        }
        store
    }
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.inner
            .state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.inner
            .state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
    fn register_locked(&self, st: &mut State, rt: ResourceType) {
        let gr = rt.group_resource();
        let rv = st.rv;
        // A view keeps its objects in another table.
        if !events_view::is_view(&gr) {
            st.tables
                .entry(gr.clone())
                .or_insert_with(|| Table::new(self.inner.config.watch_channel, rv));
        }
        st.types.insert(gr, Arc::new(rt));
        st.types_generation += 1;
        self.inner.types_changed.send_replace(st.types_generation);
    }
    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.read().rv
    }
    /// Every registered resource type (built-ins and CRD-defined), sorted by group then resource.
    pub fn resource_types(&self) -> Vec<Arc<ResourceType>> {
        let mut v: Vec<_> = self.read().types.values().cloned().collect();
        v.sort_by(|a, b| (&a.group, &a.resource).cmp(&(&b.group, &b.resource)));
        v
    }
    /// A receiver that changes whenever a resource type is added or removed (discovery caches).
    pub fn types_changed(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.types_changed.subscribe()
    }
    /// The type registered for a group/resource.
    pub fn resource_type(&self, gr: &GroupResource) -> Option<Arc<ResourceType>> {
        self.read().types.get(gr).cloned()
    }
    /// `obj` as JSON. When `obj` is the version currently stored (as returned by a read or a
    /// write), its cached JSON is used, or made and kept for the LISTs and watch events that
    /// follow; otherwise it is serialized.
    pub fn object_json(&self, gr: &GroupResource, obj: &Arc<Value>) -> Bytes {
        let key = (
            meta_str(obj, "namespace").to_string(),
            meta_str(obj, "name").to_string(),
        );
        let st = self.read();
        match st.tables.get(gr).and_then(|t| t.objects.entry(&key)) {
            Some(entry) if Arc::ptr_eq(&entry.obj, obj) => json_of(&entry.json, obj),
            _ => json_of(&OnceLock::new(), obj),
        }
    }
    /// Resolves `group/version/resource` (the resource may also be a kind-less plural only).
    pub fn resolve(&self, group: &str, version: &str, resource: &str) -> Option<Arc<ResourceType>> {
        let rt = self.resource_type(&GroupResource::new(group, resource))?;
        rt.serves(version).then_some(rt)
    }
    /// Finds the type for an `apiVersion` + `kind` pair.
    pub fn resolve_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceType>> {
        let (group, version) = split_api_version(api_version);
        self.read()
            .types
            .values()
            .find(|rt| rt.group == group && rt.kind == kind && rt.serves(version))
            .cloned()
    }
    fn stored_type(st: &State, gr: &GroupResource) -> ApiResult<Arc<ResourceType>> {
        match st.types.get(gr) {
            Some(rt) if rt.stored => Ok(rt.clone()),
            Some(rt) => Err(ApiError::method_not_allowed(format!(
                "{gr} only supports create (verbs: {})",
                rt.verbs.join(", ")
            ))),
            None => Err(
                ApiError::not_found(&gr.group, &gr.resource, "").with_message(format!(
                    "the server could not find the requested resource ({gr})"
                )),
            ),
        }
    }
    fn scope_check(rt: &ResourceType, namespace: Option<&str>) -> ApiResult<String> {
        match (rt.namespaced, namespace) {
            (true, Some(ns)) if !ns.is_empty() => Ok(ns.to_string()),
            (true, _) => Err(ApiError::bad_request(format!(
                "{} is namespaced: a namespace is required",
                rt.group_resource()
            ))),
            (false, None) | (false, Some("")) => Ok(String::new()),
            (false, Some(_)) => Err(
                ApiError::not_found(&rt.group, &rt.resource, "").with_message(format!(
                    "{} is cluster-scoped: it cannot be addressed in a namespace",
                    rt.group_resource()
                )),
            ),
        }
    }
    /// One object.
    pub fn get(
        &self,
        gr: &GroupResource,
        namespace: Option<&str>,
        name: &str,
    ) -> ApiResult<Arc<Value>> {
        if events_view::is_view(gr) {
            return self.view_get(namespace, name);
        }
        let st = self.read();
        let rt = Self::stored_type(&st, gr)?;
        let ns = Self::scope_check(&rt, namespace)?;
        st.tables
            .get(gr)
            .and_then(|t| t.objects.get(&(ns, name.to_string())))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&gr.group, &gr.resource, name))
    }
    /// Lists objects (all namespaces when `namespace` is None for a namespaced type).
    pub fn list(
        &self,
        gr: &GroupResource,
        namespace: Option<&str>,
        opts: &ListOptions,
    ) -> ApiResult<ObjectList> {
        if events_view::is_view(gr) {
            return self.view_list(namespace, opts);
        }
        let filter = Filter::new(
            None,
            opts.label_selector.as_deref(),
            opts.field_selector.as_deref(),
        )?;
        // A continued list is answered at the resourceVersion of its first page, as
        // kube-apiserver's consistent pages are: a client that watches from there replays what
        // changed meanwhile. (Reporting the current version instead lost, for good, every object
        // created during the listing under a key the pages had already passed.)
        let (start_after, snapshot_rv) =
            match opts.continue_token.as_deref().filter(|t| !t.is_empty()) {
                Some(tok) => {
                    let (key, rv) = decode_continue(tok)?;
                    (Some(key), rv)
                }
                None => (None, None),
            };
        let st = self.read();
        let rt = Self::stored_type(&st, gr)?;
        if !rt.namespaced && namespace.is_some_and(|n| !n.is_empty()) {
            Self::scope_check(&rt, namespace)?;
        }
        let Some(table) = st.tables.get(gr) else {
            return Err(ApiError::not_found(&gr.group, &gr.resource, ""));
        };
        let ns = namespace.filter(|n| !n.is_empty() && rt.namespaced);
        let limit = opts.limit.filter(|l| *l > 0);
        let mut items = Vec::new();
        let mut json = Vec::new();
        let mut last: Option<Key> = None;
        let mut remaining = 0u64;
        use std::ops::Bound;
        let bounds = match (&start_after, ns) {
            (Some(after), _) => (Bound::Excluded(after.clone()), Bound::Unbounded),
            (None, Some(n)) => (
                Bound::Included((n.to_string(), String::new())),
                Bound::Unbounded,
            ),
            (None, None) => (Bound::Unbounded, Bound::Unbounded),
        };
        for (k, entry) in table.objects.entries(bounds) {
            if let Some(n) = ns
                && k.0 != n
            {
                if start_after.is_none() {
                    break;
                }
                continue;
            }
            if !filter.matches(&entry.obj) {
                continue;
            }
            if let Some(l) = limit
                && items.len() >= l
            {
                remaining += 1;
                continue;
            }
            items.push(entry.obj.clone());
            json.push(entry.json.clone());
            last = Some(k.clone());
        }
        let list_rv = snapshot_rv.unwrap_or(st.rv);
        let continue_token = if remaining > 0 {
            last.map(|k| encode_continue(&k, list_rv))
        } else {
            None
        };
        Ok(ObjectList {
            items,
            json,
            resource_version: list_rv,
            remaining: continue_token.as_ref().map(|_| remaining),
            continue_token,
        })
    }
}

pub use crate::object::{meta_str, new_uid, now_rfc3339, split_api_version};
pub use admit::pruned_paths;
pub use history::{
    Delivered, EventKind, Watch, WatchEvent, WatchItem, WatchOptions, WatchSignal,
    encode_event_line,
};
pub use scale::{format_label_selector, jsonpath_to_pointer};

use admit::{apply_error, apply_patch_document, check_kind};
use gc::{finalizers, owner_uids};
use history::{Filter, JsonCell, decode_continue, encode_continue, json_of};
use meta::{
    meta_mut, object_version, random_suffix, set_meta, spec_changed, tracks_generation, uid_of,
    validate_metadata,
};
use scale::{object_to_scale, scale_to_object};

mod admit;
mod crd;
mod delete;
mod events_view;
mod gc;
mod history;
mod meta;
mod namespace;
mod scale;
mod write;

#[cfg(test)]
mod tests;
