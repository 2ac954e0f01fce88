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

use crate::errors::{ApiError, ApiResult, Cause};
use crate::patch;
use crate::resources::{self, GroupResource, ResourceType, builtin_types, crd_to_resource_type};
use crate::schema;
use crate::selector::{FieldSelector, LabelSelector};

/// The kind of a watch event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// Object created (or, for a filtered watch, started to match).
    Added,
    /// Object changed.
    Modified,
    /// Object removed (or, for a filtered watch, stopped matching).
    Deleted,
}

impl EventKind {
    /// `ADDED`, `MODIFIED`, `DELETED`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Added => "ADDED",
            EventKind::Modified => "MODIFIED",
            EventKind::Deleted => "DELETED",
        }
    }
}

/// One change to one object, as recorded in the watch history.
#[derive(Debug)]
pub struct WatchEvent {
    /// What happened.
    pub kind: EventKind,
    /// The object after the change (for `Deleted`: its last state, with a new resourceVersion).
    pub object: Arc<Value>,
    /// The object before the change (None for `Added`).
    pub previous: Option<Arc<Value>>,
    /// The resourceVersion of this change.
    pub resource_version: u64,
    /// `object` as JSON, shared with the stored object (so LISTs reuse it).
    json: JsonCell,
    encoded: OnceLock<Bytes>,
}

impl WatchEvent {
    /// `{"type":..., "object":...}` followed by a newline, serialized once and shared by every
    /// watcher that sees this event with the object's stored `apiVersion`.
    pub fn encoded_line(&self, kind: EventKind) -> Bytes {
        if kind == self.kind {
            return self.encoded.get_or_init(|| self.line(kind)).clone();
        }
        self.line(kind)
    }

    /// The object as JSON (serialized once per stored version of the object).
    pub fn object_json(&self) -> Bytes {
        json_of(&self.json, &self.object)
    }

    fn line(&self, kind: EventKind) -> Bytes {
        event_line(kind.as_str(), |buf| {
            buf.extend_from_slice(&self.object_json())
        })
    }
}

/// An object's JSON, serialized on first use, then shared by every LIST and watch event that
/// carries this version of the object. Objects are immutable once stored (a write stores a new
/// `Arc`), so the bytes never go stale.
type JsonCell = Arc<OnceLock<Bytes>>;

fn json_of(cell: &OnceLock<Bytes>, object: &Value) -> Bytes {
    cell.get_or_init(|| match serde_json::to_vec(object) {
        Ok(v) => Bytes::from(v),
        Err(_) => Bytes::from_static(b"null"),
    })
    .clone()
}

/// Serializes one watch event line.
pub fn encode_event_line(kind: &str, object: &Value) -> Bytes {
    event_line(kind, |buf| {
        if serde_json::to_writer(&mut *buf, object).is_err() {
            buf.extend_from_slice(b"null");
        }
    })
}

/// `{"type":KIND,"object":` + what `object` writes + `}` and a newline.
fn event_line(kind: &str, object: impl FnOnce(&mut Vec<u8>)) -> Bytes {
    let mut buf = Vec::with_capacity(2048);
    buf.extend_from_slice(b"{\"type\":\"");
    buf.extend_from_slice(kind.as_bytes());
    buf.extend_from_slice(b"\",\"object\":");
    object(&mut buf);
    buf.extend_from_slice(b"}\n");
    Bytes::from(buf)
}

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

/// Options for watch.
#[derive(Clone, Debug, Default)]
pub struct WatchOptions {
    /// Start after this resourceVersion. None or `"0"`: first deliver every existing object as
    /// `ADDED`, then changes.
    pub resource_version: Option<String>,
    /// `labelSelector`.
    pub label_selector: Option<String>,
    /// `fieldSelector`.
    pub field_selector: Option<String>,
    /// `sendInitialEvents=true`: deliver existing objects, then an initial-events-end bookmark.
    pub send_initial_events: bool,
}

/// An event as a particular watcher sees it: the kind may differ from the stored event when a
/// selector filter makes an update look like an add or a delete.
#[derive(Clone, Debug)]
pub struct Delivered {
    /// The kind for this watcher.
    pub kind: EventKind,
    /// The shared event.
    pub event: Arc<WatchEvent>,
}

impl ObjectList {
    /// The JSON of item `i` (in the stored `apiVersion`), serialized at most once per stored
    /// version of the object however many LISTs and watchers read it.
    pub fn item_json(&self, i: usize) -> Option<Bytes> {
        Some(json_of(self.json.get(i)?, self.items.get(i)?))
    }
}

impl Delivered {
    /// The newline-terminated JSON line for this event.
    pub fn encoded_line(&self) -> Bytes {
        self.event.encoded_line(self.kind)
    }
}

/// What a watch yields when it has nothing regular to say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchSignal {
    /// The initial events (for `sendInitialEvents`) have all been delivered; resourceVersion
    /// to put in the `k8s.io/initial-events-end` bookmark.
    InitialEventsEnd(u64),
}

/// A live watch on one resource type (optionally one namespace, filtered by selectors).
pub struct Watch {
    backlog: VecDeque<Delivered>,
    rx: broadcast::Receiver<Arc<WatchEvent>>,
    filter: Filter,
    initial_end: Option<u64>,
    last_rv: u64,
    /// Converts each delivered event (a watch on a view: `events.k8s.io` Events).
    convert: Option<ConvertEvent>,
}

/// Turns a stored watch event into the one a view's watcher gets.
type ConvertEvent = fn(&Arc<WatchEvent>) -> Arc<WatchEvent>;

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("backlog", &self.backlog.len())
            .field("last_rv", &self.last_rv)
            .finish()
    }
}

/// Item produced by [`Watch::next_item`].
#[derive(Clone, Debug)]
pub enum WatchItem {
    /// A change.
    Event(Delivered),
    /// A marker (initial events done).
    Signal(WatchSignal),
}

impl Watch {
    /// The next event. `None` when the resource type went away (CRD deleted) or the store was
    /// dropped; `Some(Err(410 Expired))` when this watcher fell too far behind.
    pub async fn next(&mut self) -> Option<ApiResult<Delivered>> {
        loop {
            match self.next_item().await? {
                Ok(WatchItem::Event(d)) => return Some(Ok(d)),
                Ok(WatchItem::Signal(_)) => continue,
                Err(e) => return Some(Err(e)),
            }
        }
    }

    /// Like [`Watch::next`], also yielding the initial-events-end marker.
    pub async fn next_item(&mut self) -> Option<ApiResult<WatchItem>> {
        if let Some(d) = self.backlog.pop_front() {
            self.last_rv = self.last_rv.max(d.event.resource_version);
            return Some(Ok(WatchItem::Event(d)));
        }
        if let Some(rv) = self.initial_end.take() {
            return Some(Ok(WatchItem::Signal(WatchSignal::InitialEventsEnd(rv))));
        }
        loop {
            match self.rx.recv().await {
                Ok(ev) => {
                    if ev.resource_version <= self.last_rv {
                        continue;
                    }
                    self.last_rv = ev.resource_version;
                    if let Some(kind) = self.filter.deliver_kind(&ev) {
                        let event = match self.convert {
                            Some(f) => f(&ev),
                            None => ev,
                        };
                        return Some(Ok(WatchItem::Event(Delivered { kind, event })));
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return None,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    return Some(Err(ApiError::expired(format!(
                        "the watcher fell {n} events behind; too old resource version: {}",
                        self.last_rv
                    ))));
                }
            }
        }
    }

    /// Like [`Watch::next_item`], without waiting: `None` when nothing is ready right now
    /// (or the channel is closed; the next `next_item` call reports that).
    pub fn try_next_item(&mut self) -> Option<ApiResult<WatchItem>> {
        if let Some(d) = self.backlog.pop_front() {
            self.last_rv = self.last_rv.max(d.event.resource_version);
            return Some(Ok(WatchItem::Event(d)));
        }
        if let Some(rv) = self.initial_end.take() {
            return Some(Ok(WatchItem::Signal(WatchSignal::InitialEventsEnd(rv))));
        }
        loop {
            match self.rx.try_recv() {
                Ok(ev) => {
                    if ev.resource_version <= self.last_rv {
                        continue;
                    }
                    self.last_rv = ev.resource_version;
                    if let Some(kind) = self.filter.deliver_kind(&ev) {
                        let event = match self.convert {
                            Some(f) => f(&ev),
                            None => ev,
                        };
                        return Some(Ok(WatchItem::Event(Delivered { kind, event })));
                    }
                }
                Err(
                    broadcast::error::TryRecvError::Empty | broadcast::error::TryRecvError::Closed,
                ) => {
                    return None;
                }
                Err(broadcast::error::TryRecvError::Lagged(n)) => {
                    return Some(Err(ApiError::expired(format!(
                        "the watcher fell {n} events behind; too old resource version: {}",
                        self.last_rv
                    ))));
                }
            }
        }
    }

    /// The resourceVersion of the last event delivered (or the start point).
    pub fn last_resource_version(&self) -> u64 {
        self.last_rv
    }

    /// A resourceVersion safe to put in a bookmark now: every event up to it has been delivered
    /// (or filtered out). When nothing is queued this is the store's current version.
    pub fn bookmark_resource_version(&mut self, store: &Store) -> u64 {
        // Read the store's version first: events up to it have already been sent to the channel
        // (sending happens under the write lock), so an empty channel means all were seen.
        let current = store.resource_version();
        if self.backlog.is_empty() && self.initial_end.is_none() && self.rx.is_empty() {
            self.last_rv = self.last_rv.max(current);
        }
        self.last_rv
    }
}

#[derive(Clone, Debug, Default)]
struct Filter {
    namespace: Option<String>,
    labels: Option<LabelSelector>,
    fields: Option<FieldSelector>,
}

impl Filter {
    fn new(
        namespace: Option<&str>,
        label_selector: Option<&str>,
        field_selector: Option<&str>,
    ) -> ApiResult<Self> {
        let labels =
            match label_selector.filter(|s| !s.trim().is_empty()) {
                Some(s) => Some(LabelSelector::parse(s).map_err(|e| {
                    ApiError::bad_request(format!("unable to parse requirement: {e}"))
                })?),
                None => None,
            };
        let fields = match field_selector.filter(|s| !s.trim().is_empty()) {
            Some(s) => Some(
                FieldSelector::parse(s)
                    .map_err(|e| ApiError::bad_request(format!("invalid field selector: {e}")))?,
            ),
            None => None,
        };
        Ok(Self {
            namespace: namespace.map(String::from),
            labels,
            fields,
        })
    }

    fn matches(&self, obj: &Value) -> bool {
        if let Some(ns) = &self.namespace
            && meta_str(obj, "namespace") != ns
        {
            return false;
        }
        if let Some(l) = &self.labels {
            let empty = Value::Object(Map::new());
            let labels = obj.pointer("/metadata/labels").unwrap_or(&empty);
            if !l.matches(labels) {
                return false;
            }
        }
        if let Some(f) = &self.fields
            && !f.matches(obj)
        {
            return false;
        }
        true
    }

    fn deliver_kind(&self, ev: &WatchEvent) -> Option<EventKind> {
        let now = self.matches(&ev.object);
        match ev.kind {
            EventKind::Added | EventKind::Deleted => now.then_some(ev.kind),
            EventKind::Modified => {
                let before = ev.previous.as_deref().is_some_and(|p| self.matches(p));
                match (before, now) {
                    (true, true) => Some(EventKind::Modified),
                    (false, true) => Some(EventKind::Added),
                    (true, false) => Some(EventKind::Deleted),
                    (false, false) => None,
                }
            }
        }
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

    /// Starts a watch. See [`WatchOptions`] for where it starts.
    pub fn watch(
        &self,
        gr: &GroupResource,
        namespace: Option<&str>,
        opts: &WatchOptions,
    ) -> ApiResult<Watch> {
        if events_view::is_view(gr) {
            return self.view_watch(namespace, opts);
        }
        let ns = namespace.filter(|n| !n.is_empty());
        let filter = Filter::new(
            ns,
            opts.label_selector.as_deref(),
            opts.field_selector.as_deref(),
        )?;
        let from =
            match opts.resource_version.as_deref() {
                None | Some("") | Some("0") => None,
                Some(s) => Some(s.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(format!("invalid resource version: {s:?}"))
                })?),
            };
        let st = self.read();
        let rt = Self::stored_type(&st, gr)?;
        if !rt.namespaced && ns.is_some() {
            Self::scope_check(&rt, ns)?;
        }
        let Some(table) = st.tables.get(gr) else {
            return Err(ApiError::not_found(&gr.group, &gr.resource, ""));
        };
        let rx = table.tx.subscribe();
        let mut backlog = VecDeque::new();
        let mut initial_end = None;
        match from {
            Some(rv) if !opts.send_initial_events => {
                if rv < table.compacted_rv {
                    return Err(ApiError::expired(format!(
                        "too old resource version: {rv} ({})",
                        table.compacted_rv
                    )));
                }
                for ev in table.history.iter().filter(|e| e.resource_version > rv) {
                    if let Some(kind) = filter.deliver_kind(ev) {
                        backlog.push_back(Delivered {
                            kind,
                            event: ev.clone(),
                        });
                    }
                }
            }
            _ => {
                for entry in table.objects.values() {
                    if filter.matches(&entry.obj) {
                        backlog.push_back(Delivered {
                            kind: EventKind::Added,
                            event: Arc::new(WatchEvent {
                                kind: EventKind::Added,
                                object: entry.obj.clone(),
                                previous: None,
                                resource_version: 0,
                                json: entry.json.clone(),
                                encoded: OnceLock::new(),
                            }),
                        });
                    }
                }
                if opts.send_initial_events {
                    initial_end = Some(st.rv);
                }
            }
        }
        Ok(Watch {
            backlog,
            rx,
            filter,
            initial_end,
            last_rv: from.unwrap_or(st.rv),
            convert: None,
        })
    }

    /// Drops all watch history (like an etcd compaction): watches resuming from any earlier
    /// resourceVersion get `410 Expired`. For tests of clients' re-list logic.
    pub fn compact(&self) {
        let mut st = self.write();
        let rv = st.rv;
        for t in st.tables.values_mut() {
            t.history.clear();
            t.compacted_rv = rv;
        }
    }

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

    fn create_locked(
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
    fn update_locked(
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

    /// Reads the `autoscaling/v1` `Scale` of an object with a scale subresource.
    pub fn get_scale(
        &self,
        gr: &GroupResource,
        namespace: Option<&str>,
        name: &str,
    ) -> ApiResult<Value> {
        let obj = self.get(gr, namespace, name)?;
        let rt = self
            .resource_type(gr)
            .ok_or_else(|| ApiError::not_found(&gr.group, &gr.resource, name))?;
        object_to_scale(&rt, &obj)
    }

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

    fn delete_locked(
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

    // ----- internals -------------------------------------------------------------------------

    /// Stores (or removes, with `obj = None`) an object, bumps the resourceVersion, records the
    /// event and maintains the indexes. Returns the stored object.
    fn commit(
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

    /// Removes an object for good (DELETED event), then collects garbage.
    fn remove_locked(
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

    fn has_dependents(&self, st: &State, obj: &Value) -> bool {
        uid_of(obj)
            .and_then(|u| st.dependents.get(&u))
            .is_some_and(|s| !s.is_empty())
    }

    fn orphan_dependents(&self, st: &mut State, owner_uid: &str) -> ApiResult<()> {
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

    fn delete_dependents(
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

    fn maybe_finish_foreground(&self, st: &mut State, key: &ObjKey) -> ApiResult<()> {
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

    fn delete_namespace_contents(&self, st: &mut State, ns: &str) -> ApiResult<()> {
        let mut keys = Vec::new();
        for (gr, table) in &st.tables {
            if !st.types.get(gr).is_some_and(|t| t.namespaced) {
                continue;
            }
            for ((n, name), obj) in table
                .objects
                .range((ns.to_string(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
            {
                if obj.pointer("/metadata/deletionTimestamp").is_none() {
                    keys.push((gr.clone(), n.clone(), name.clone()));
                }
            }
        }
        for (gr, n, name) in keys {
            match self.delete_locked(st, &gr, Some(&n), &name, &DeleteOptions::default()) {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        self.maybe_finish_namespace(st, ns)
    }

    fn maybe_finish_namespace(&self, st: &mut State, ns: &str) -> ApiResult<()> {
        let nsgr = GroupResource::new("", "namespaces");
        let Some(nsobj) = st
            .tables
            .get(&nsgr)
            .and_then(|t| t.objects.get(&(String::new(), ns.to_string())))
            .cloned()
        else {
            return Ok(());
        };
        if nsobj.pointer("/metadata/deletionTimestamp").is_none() || !finalizers(&nsobj).is_empty()
        {
            return Ok(());
        }
        let empty = st.tables.iter().all(|(gr, t)| {
            !st.types.get(gr).is_some_and(|ty| ty.namespaced)
                || t.objects
                    .range((ns.to_string(), String::new())..)
                    .next()
                    .is_none_or(|((n, _), _)| n != ns)
        });
        if empty {
            let key = ObjKey {
                gr: nsgr,
                namespace: String::new(),
                name: ns.to_string(),
            };
            self.remove_locked(st, &key, None, Propagation::Background)?;
        }
        Ok(())
    }

    /// After a CRD write: register its type and set its status conditions.
    fn crd_established(&self, st: &mut State, key: &ObjKey) -> ApiResult<Arc<Value>> {
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

    fn crd_removed(&self, st: &mut State, crd: &Value) -> ApiResult<()> {
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

    /// Defaulting and validation shared by create and update.
    #[allow(clippy::too_many_arguments)]
    fn admit(
        &self,
        _st: &State,
        rt: &ResourceType,
        version: &str,
        obj: &mut Value,
        old: Option<&Value>,
        opts: &WriteOptions,
        warnings: &mut Vec<String>,
    ) -> ApiResult<()> {
        let name = meta_str(obj, "name").to_string();
        if let Some(o) = obj.as_object_mut() {
            o.insert("apiVersion".into(), json!(rt.api_version(version)));
            o.insert("kind".into(), json!(rt.kind));
        }
        if let Some(schema) = rt.version(version).and_then(|v| v.schema.clone()) {
            if !obj.is_object() {
                return Err(ApiError::bad_request("object must be a JSON object"));
            }
            let before = obj.clone();
            let res = schema::validate_and_prune(&schema, obj);
            let pruned = pruned_paths(&before, obj);
            if let Err(causes) = res {
                return Err(ApiError::invalid(
                    &rt.group,
                    &rt.kind,
                    &name,
                    causes
                        .into_iter()
                        .map(|c| Cause::new(c.reason_str(), c.field, c.message))
                        .collect(),
                ));
            }
            if !pruned.is_empty() {
                match opts.field_validation {
                    FieldValidation::Strict => {
                        return Err(ApiError::bad_request(format!(
                            "{}.{} \"{name}\": strict decoding error: {}",
                            rt.kind,
                            rt.group,
                            pruned
                                .iter()
                                .map(|p| format!("unknown field \"{p}\""))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                        .with_details(&rt.group, &rt.kind, &name));
                    }
                    FieldValidation::Warn => {
                        warnings.extend(pruned.iter().map(|p| format!("unknown field \"{p}\"")));
                    }
                    FieldValidation::Ignore => {}
                }
            }
        } else if !rt.is_custom() {
            resources::default_and_validate_builtin(rt, obj, old)?;
        }
        Ok(())
    }
}

impl ApiError {
    /// Replaces the message.
    pub fn with_message(mut self, message: String) -> Self {
        self.message = message;
        self
    }
}

// ----- helpers -------------------------------------------------------------------------------

/// Splits `apps/v1` into (`apps`, `v1`) and `v1` into (``, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.rsplit_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// `metadata.<field>` as a string (empty when absent).
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn meta_mut(obj: &mut Value) -> ApiResult<&mut Map<String, Value>> {
    let o = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the request body must be a JSON object"))?;
    let m = o
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if m.is_null() {
        *m = Value::Object(Map::new());
    }
    m.as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))
}

fn set_meta(obj: &mut Value, field: &str, value: Value) {
    if let Some(o) = obj.as_object_mut() {
        let m = o
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(m) = m.as_object_mut() {
            m.insert(field.into(), value);
        }
    }
}

fn uid_of(obj: &Value) -> Option<String> {
    let u = meta_str(obj, "uid");
    (!u.is_empty()).then(|| u.to_string())
}

fn owner_uids(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str).map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn remove_owner_ref(obj: &mut Value, owner_uid: &str) {
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut)
        && let Some(refs) = m.get_mut("ownerReferences").and_then(Value::as_array_mut)
    {
        refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid));
        if refs.is_empty() {
            m.remove("ownerReferences");
        }
    }
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Applies a patch document of `patch_type` to `target` (an object of type `rt`, or its `Scale`
/// when `subresource` is `scale`). Errors name the object and, for failed operations, the field.
fn apply_patch_document(
    rt: &ResourceType,
    name: &str,
    target: &mut Value,
    patch_type: PatchType,
    patch: &Value,
    subresource: Option<Subresource>,
) -> ApiResult<()> {
    let bad = |e: patch::PatchError| {
        let code = e.code();
        let reason = e.reason();
        if code == 400 {
            return ApiError::new(code, reason, e.to_string())
                .with_details(&rt.group, &rt.kind, name);
        }
        let field = match &e {
            patch::PatchError::TestFailed { path, .. }
            | patch::PatchError::OperationFailed { path, .. } => {
                path.trim_start_matches('/').replace('/', ".")
            }
            _ => String::new(),
        };
        let mut err = ApiError::invalid(
            &rt.group,
            &rt.kind,
            name,
            vec![Cause::new("FieldValueInvalid", field, e.to_string())],
        );
        err.code = code;
        err.reason = reason;
        err
    };
    match patch_type {
        PatchType::Merge => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("a merge patch must be a JSON object"));
            }
            patch::merge_patch(target, patch);
        }
        PatchType::Json => {
            if !patch.is_array() {
                return Err(ApiError::bad_request(
                    "a JSON patch must be a JSON array of operations",
                ));
            }
            patch::json_patch(target, patch).map_err(bad)?;
        }
        PatchType::Strategic => {
            if rt.is_custom() {
                return Err(ApiError::unsupported_media_type(
                    "strategic merge patch is not supported for custom resources; use a merge patch",
                ));
            }
            if !patch.is_object() {
                return Err(ApiError::bad_request(
                    "a strategic merge patch must be a JSON object",
                ));
            }
            let kind = if subresource == Some(Subresource::Scale) {
                "Scale"
            } else {
                rt.kind.as_str()
            };
            patch::strategic_merge_patch(target, patch, kind).map_err(bad)?;
        }
        PatchType::Apply => {
            *target = patch::apply_patch(Some(&*target), patch, &rt.kind, !rt.is_custom())
                .map_err(bad)?;
        }
    }
    Ok(())
}

/// A failed server-side apply as kube-apiserver answers it: 409 `Conflict` with one
/// `FieldManagerConflict` cause per field, or the merge error.
fn apply_error(rt: &ResourceType, name: &str, e: patch::managed::ApplyError) -> ApiError {
    match &e {
        patch::managed::ApplyError::Conflicts(cs) => {
            let mut err = ApiError::new(409, "Conflict", e.message()).with_details(
                &rt.group,
                &rt.resource,
                name,
            );
            err.causes = cs
                .iter()
                .map(|c| {
                    Cause::new(
                        "FieldManagerConflict",
                        c.path.clone(),
                        format!("conflict with {}", c.manager),
                    )
                })
                .collect();
            err
        }
        patch::managed::ApplyError::Patch(p) => ApiError::new(p.code(), p.reason(), p.to_string())
            .with_details(&rt.group, &rt.kind, name),
    }
}

fn check_kind(rt: &ResourceType, obj: &Value) -> ApiResult<()> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    let api_version = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !kind.is_empty() && kind != rt.kind {
        return Err(ApiError::bad_request(format!(
            "the kind of the object ({kind}) does not match the kind of the resource ({}, served at {})",
            rt.kind,
            rt.group_resource()
        )));
    }
    if !api_version.is_empty() {
        let (g, v) = split_api_version(api_version);
        if g != rt.group || !rt.serves(v) {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({api_version}) does not match the expected API version ({})",
                rt.api_version(rt.preferred_version())
            )));
        }
    }
    Ok(())
}

fn object_version(rt: &ResourceType, obj: &Value) -> String {
    obj.get("apiVersion")
        .and_then(Value::as_str)
        .map(|av| split_api_version(av).1.to_string())
        .filter(|v| rt.serves(v))
        .unwrap_or_else(|| rt.storage_version.clone())
}

fn tracks_generation(rt: &ResourceType, obj: &Value) -> bool {
    rt.is_custom() || obj.get("spec").is_some() || rt.kind == "CustomResourceDefinition"
}

/// True when anything but metadata and status differs.
fn spec_changed(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| -> Map<String, Value> {
        v.as_object()
            .map(|o| {
                o.iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "metadata" | "status" | "apiVersion"))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    strip(old) != strip(new)
}

/// Paths present in `before` but not in `after` (what pruning removed), as `a.b[0].c`.
pub fn pruned_paths(before: &Value, after: &Value) -> Vec<String> {
    fn walk(b: &Value, a: &Value, path: &str, out: &mut Vec<String>) {
        match (b, a) {
            (Value::Object(bo), Value::Object(ao)) => {
                for (k, bv) in bo {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    match ao.get(k) {
                        Some(av) => walk(bv, av, &p, out),
                        None => out.push(p),
                    }
                }
            }
            (Value::Array(ba), Value::Array(aa)) => {
                for (i, (bv, av)) in ba.iter().zip(aa.iter()).enumerate() {
                    walk(bv, av, &format!("{path}[{i}]"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(before, after, "", &mut out);
    out
}

fn validate_metadata(rt: &ResourceType, name: &str, obj: &Value) -> ApiResult<()> {
    let mut causes = Vec::new();
    let dns_label = matches!(
        (rt.group.as_str(), rt.resource.as_str()),
        ("", "namespaces") | ("", "services")
    );
    if let Some(msg) = check_name(name, dns_label) {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "metadata.name",
            format!("Invalid value: \"{name}\": {msg}"),
        ));
    }
    for field in ["labels", "annotations"] {
        match obj.pointer(&format!("/metadata/{field}")) {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (k, v) in m {
                    if !v.is_string() {
                        return Err(ApiError::bad_request(format!(
                            "{} in version \"{}\" cannot be handled as a {}: json: cannot unmarshal {} into Go struct field ObjectMeta.metadata.{field} of type string (metadata.{field}.{k})",
                            rt.kind,
                            rt.preferred_version(),
                            rt.kind,
                            json_type(v)
                        )));
                    }
                    if field == "labels" {
                        let value = v.as_str().unwrap_or_default();
                        if !valid_label_value(value) {
                            causes.push(Cause::new(
                                "FieldValueInvalid",
                                format!("metadata.labels.{k}"),
                                format!(
                                    "Invalid value: \"{value}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (at most 63 characters)"
                                ),
                            ));
                        }
                    }
                    if !valid_qualified_key(k) {
                        causes.push(Cause::new(
                            "FieldValueInvalid",
                            format!("metadata.{field}"),
                            format!("Invalid value: \"{k}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"),
                        ));
                    }
                }
            }
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "{} in version \"{}\" cannot be handled as a {}: json: cannot unmarshal {} into Go struct field ObjectMeta.metadata.{field} of type map[string]string",
                    rt.kind,
                    rt.preferred_version(),
                    rt.kind,
                    json_type(other)
                )));
            }
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(&rt.group, &rt.kind, name, causes))
    }
}

pub(crate) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn check_name(name: &str, dns_label: bool) -> Option<String> {
    let max = if dns_label { 63 } else { 253 };
    if name.len() > max {
        return Some(format!("must be no more than {max} characters"));
    }
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    let valid = !name.is_empty()
        && name.chars().all(|c| ok_char(c) && !(dns_label && c == '.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if valid {
        None
    } else if dns_label {
        Some("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character".into())
    } else {
        Some("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character".into())
    }
}

fn valid_label_value(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

fn valid_qualified_key(k: &str) -> bool {
    let name = match k.rsplit_once('/') {
        Some((prefix, name)) => {
            if prefix.is_empty() || prefix.len() > 253 {
                return false;
            }
            name
        }
        None => k,
    };
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// A random RFC 4122 version 4 UUID.
pub fn new_uid() -> String {
    let b: [u8; 16] = rand::random();
    let mut b = b;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Now, as RFC 3339 with second precision (`2025-01-02T03:04:05Z`).
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn encode_continue(last: &Key, rv: u64) -> String {
    let raw = json!({"rv": rv, "ns": last.0, "name": last.1}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_continue(tok: &str) -> ApiResult<(Key, Option<u64>)> {
    let bad = || ApiError::bad_request(format!("continue key is not valid: {tok}"));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(tok.trim_end_matches('='))
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let ns = v.get("ns").and_then(Value::as_str).ok_or_else(bad)?;
    let name = v.get("name").and_then(Value::as_str).ok_or_else(bad)?;
    let rv = v.get("rv").and_then(Value::as_u64);
    Ok(((ns.to_string(), name.to_string()), rv))
}

/// `.spec.replicas` → `/spec/replicas`.
pub fn jsonpath_to_pointer(path: &str) -> String {
    let p = path.trim().trim_start_matches('$');
    p.split('.')
        .filter(|s| !s.is_empty())
        .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
        .collect()
}

fn set_pointer(obj: &mut Value, pointer: &str, value: Value) {
    let parts: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|p| p.replace("~1", "/").replace("~0", "~"))
        .collect();
    let mut cur = obj;
    for (i, p) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Some(map) = cur.as_object_mut() else {
            return;
        };
        if i + 1 == parts.len() {
            map.insert(p.clone(), value);
            return;
        }
        cur = map
            .entry(p.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

/// `spec.selector` as a label selector string (`app=web,tier in (a,b)`).
pub fn format_label_selector(sel: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in m {
            parts.push(format!("{k}={}", v.as_str().unwrap_or_default()));
        }
    }
    if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
            let values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            match e
                .get("operator")
                .and_then(Value::as_str)
                .unwrap_or_default()
            {
                "In" => parts.push(format!("{key} in ({})", values.join(","))),
                "NotIn" => parts.push(format!("{key} notin ({})", values.join(","))),
                "Exists" => parts.push(key.to_string()),
                "DoesNotExist" => parts.push(format!("!{key}")),
                _ => {}
            }
        }
    }
    parts.join(",")
}

fn object_to_scale(rt: &ResourceType, obj: &Value) -> ApiResult<Value> {
    let version = object_version(rt, obj);
    let scale = rt.scale(&version).cloned().ok_or_else(|| {
        ApiError::not_found(
            &rt.group,
            &format!("{}/scale", rt.resource),
            meta_str(obj, "name"),
        )
    })?;
    let replicas = obj
        .pointer(&jsonpath_to_pointer(&scale.spec_replicas_path))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let status_replicas = obj
        .pointer(&jsonpath_to_pointer(&scale.status_replicas_path))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let selector = if rt.is_custom() {
        scale
            .label_selector_path
            .as_deref()
            .and_then(|p| obj.pointer(&jsonpath_to_pointer(p)))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    } else {
        obj.pointer("/spec/selector")
            .map(format_label_selector)
            .unwrap_or_default()
    };
    let mut meta = Map::new();
    for f in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = obj.pointer(&format!("/metadata/{f}")) {
            meta.insert(f.into(), v.clone());
        }
    }
    let mut status = json!({"replicas": status_replicas});
    if !selector.is_empty() {
        status["selector"] = json!(selector);
    }
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": meta,
        "spec": {"replicas": replicas},
        "status": status,
    }))
}

fn scale_to_object(rt: &ResourceType, current: &Value, scale: &Value) -> ApiResult<Value> {
    let version = object_version(rt, current);
    let sub = rt.scale(&version).cloned().ok_or_else(|| {
        ApiError::not_found(
            &rt.group,
            &format!("{}/scale", rt.resource),
            meta_str(current, "name"),
        )
    })?;
    let replicas = match scale.pointer("/spec/replicas") {
        Some(Value::Number(n)) if n.as_i64().is_some_and(|r| r >= 0) => n.as_i64().unwrap_or(0),
        None | Some(Value::Null) => 0,
        Some(other) => {
            return Err(ApiError::invalid(
                "autoscaling",
                "Scale",
                meta_str(current, "name"),
                vec![Cause::new(
                    "FieldValueInvalid",
                    "spec.replicas",
                    format!("Invalid value: {other}: must be greater than or equal to 0"),
                )],
            ));
        }
    };
    let mut obj = current.clone();
    set_pointer(
        &mut obj,
        &jsonpath_to_pointer(&sub.spec_replicas_path),
        json!(replicas),
    );
    let rv = meta_str(scale, "resourceVersion");
    set_meta(&mut obj, "resourceVersion", json!(rv));
    Ok(obj)
}

mod events_view;

#[cfg(test)]
mod tests;
