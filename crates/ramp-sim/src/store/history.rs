//! Watch history and list paging: the events every write records, the watches that replay
//! and follow them, the selector filter that decides what a watcher sees, and the `continue`
//! tokens of paged lists.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::*;
use crate::errors::{ApiError, ApiResult};
use crate::resources::GroupResource;

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
    pub(super) json: JsonCell,
    pub(super) encoded: OnceLock<Bytes>,
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
pub(super) type JsonCell = Arc<OnceLock<Bytes>>;

pub(super) fn json_of(cell: &OnceLock<Bytes>, object: &Value) -> Bytes {
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
pub(super) fn event_line(kind: &str, object: impl FnOnce(&mut Vec<u8>)) -> Bytes {
    let mut buf = Vec::with_capacity(2048);
    buf.extend_from_slice(b"{\"type\":\"");
    buf.extend_from_slice(kind.as_bytes());
    buf.extend_from_slice(b"\",\"object\":");
    object(&mut buf);
    buf.extend_from_slice(b"}\n");
    Bytes::from(buf)
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
    pub(super) backlog: VecDeque<Delivered>,
    pub(super) rx: broadcast::Receiver<Arc<WatchEvent>>,
    pub(super) filter: Filter,
    pub(super) initial_end: Option<u64>,
    pub(super) last_rv: u64,
    /// Converts each delivered event (a watch on a view: `events.k8s.io` Events).
    pub(super) convert: Option<ConvertEvent>,
}

/// Turns a stored watch event into the one a view's watcher gets.
pub(super) type ConvertEvent = fn(&Arc<WatchEvent>) -> Arc<WatchEvent>;

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
pub(super) struct Filter {
    namespace: Option<String>,
    labels: Option<LabelSelector>,
    fields: Option<FieldSelector>,
}

impl Filter {
    pub(super) fn new(
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

    pub(super) fn matches(&self, obj: &Value) -> bool {
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

    pub(super) fn deliver_kind(&self, ev: &WatchEvent) -> Option<EventKind> {
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

pub(super) fn encode_continue(last: &Key, rv: u64) -> String {
    let raw = json!({"rv": rv, "ns": last.0, "name": last.1}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

pub(super) fn decode_continue(tok: &str) -> ApiResult<(Key, Option<u64>)> {
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

impl Store {
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
}
