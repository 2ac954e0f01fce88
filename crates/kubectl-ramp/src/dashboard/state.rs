//! The watched snapshot: kube-runtime watchers keep the Rollouts, the
//! Deployments and Services, the routing objects the Rollouts name and the
//! Rollouts' Events in memory; every change bumps one version number that
//! the SSE streams wait on (a `tokio::sync::watch` channel: one slot, no
//! queue per client).
//!
//! Everything kept is bounded: objects are replaced in place, Events are the
//! last [`EVENTS_PER_ROLLOUT`] per Rollout, and the analysis history is the
//! last [`HISTORY_POINTS`] measurements per metric.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Pod, Service};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::watcher;
use kube::{Api, Client, Resource};
use ramp_api::Rollout;
use serde::Serialize;
use serde_json::Value;

/// Events kept per Rollout (the newest).
pub const EVENTS_PER_ROLLOUT: usize = 50;
/// Measurements kept per analysis metric of a Rollout (the newest).
pub const HISTORY_POINTS: usize = 240;

/// `(namespace, name)`.
pub type Key = (String, String);

/// One Event on a Rollout, as the page shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EventRow {
    /// The Event's uid (updates of a counted Event replace the row).
    #[serde(skip)]
    pub uid: String,
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub type_: String,
    /// CamelCase reason.
    pub reason: String,
    /// The message.
    pub message: String,
    /// Last time it happened (RFC 3339), if known.
    pub time: Option<String>,
    /// How many times.
    pub count: i32,
}

/// One analysis measurement seen in a Rollout's status.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Point {
    /// Measurement time, seconds since the epoch.
    pub t: i64,
    /// The value (absent for NoData/Error).
    pub v: Option<f64>,
    /// Passed, Failed, NoData, Error.
    pub phase: String,
    /// The step it was measured in (1-based).
    pub step: i32,
}

/// A canary pod, as the page shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PodRow {
    /// The Rollout it belongs to (its `rollouts.ramp.dev/rollout` label).
    #[serde(skip)]
    pub rollout: String,
    /// Pod name.
    pub name: String,
    /// Pending, Running, ...
    pub phase: String,
    /// Whether its Ready condition is True.
    pub ready: bool,
    /// Why it is not ready: a container's waiting/terminated reason and
    /// message, else a condition's reason and message.
    pub reason: Option<String>,
}

impl PodRow {
    fn of(p: &Pod) -> PodRow {
        let st = p.status.as_ref();
        let conditions = st.and_then(|s| s.conditions.as_ref());
        let ready = conditions
            .into_iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        let container = st
            .and_then(|s| s.container_statuses.as_ref())
            .into_iter()
            .flatten()
            .filter(|c| !c.ready)
            .find_map(|c| {
                let state = c.state.as_ref()?;
                if let Some(w) = &state.waiting {
                    return Some((w.reason.clone(), w.message.clone()));
                }
                state
                    .terminated
                    .as_ref()
                    .map(|t| (t.reason.clone(), t.message.clone()))
            });
        let condition = || {
            conditions
                .into_iter()
                .flatten()
                .find(|c| c.status != "True" && (c.reason.is_some() || c.message.is_some()))
                .map(|c| (c.reason.clone(), c.message.clone()))
        };
        let reason = if ready {
            None
        } else {
            container.or_else(condition).map(|(r, m)| match (r, m) {
                (Some(r), Some(m)) => format!("{r}: {m}"),
                (Some(r), None) => r,
                (None, Some(m)) => m,
                (None, None) => String::new(),
            })
        };
        PodRow {
            rollout: p
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(ramp_api::names::MANAGED_BY_ROLLOUT_LABEL))
                .cloned()
                .unwrap_or_default(),
            name: p.metadata.name.clone().unwrap_or_default(),
            phase: st.and_then(|s| s.phase.clone()).unwrap_or_default(),
            ready,
            reason: reason.filter(|r| !r.is_empty()),
        }
    }
}

/// The objects the dashboard shows.
#[derive(Default)]
pub struct Snapshot {
    /// Rollouts by key.
    pub rollouts: BTreeMap<Key, Rollout>,
    /// Deployments by key.
    pub deployments: BTreeMap<Key, Deployment>,
    /// Services by key.
    pub services: BTreeMap<Key, Service>,
    /// Canary pods (labelled by ramp) by key.
    pub pods: BTreeMap<Key, PodRow>,
    /// Routing objects as JSON by `(kind, namespace, name)`.
    pub routing: BTreeMap<(String, String, String), Value>,
    /// Events by the Rollout they are about, oldest first.
    pub events: BTreeMap<Key, VecDeque<EventRow>>,
    /// Analysis measurements by `(rollout, metric)`, oldest first.
    pub history: BTreeMap<(Key, String), VecDeque<Point>>,
    /// Errors of the watchers (e.g. forbidden), by what they watch.
    pub watch_errors: BTreeMap<String, String>,
}

/// How much the store holds (for the `/api/stats` endpoint and tests).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Sizes {
    /// Rollouts.
    pub rollouts: usize,
    /// Deployments + Services + routing objects.
    pub objects: usize,
    /// Events kept in all.
    pub events: usize,
    /// The most Events kept for one Rollout.
    pub max_events_per_rollout: usize,
    /// Analysis points kept in all.
    pub history_points: usize,
    /// The most points kept for one metric.
    pub max_points_per_metric: usize,
    /// Open SSE streams.
    pub streams: usize,
    /// Snapshot version (bumped on every change).
    pub version: u64,
}

/// The snapshot and its change signal.
pub struct Store {
    snap: Mutex<Snapshot>,
    changed: tokio::sync::watch::Sender<u64>,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            snap: Mutex::new(Snapshot::default()),
            changed: tokio::sync::watch::Sender::new(0),
        }
    }
}

fn key_of<K: Resource>(o: &K) -> Key {
    (
        o.meta().namespace.clone().unwrap_or_default(),
        o.meta().name.clone().unwrap_or_default(),
    )
}

impl Store {
    /// Read access to the snapshot.
    pub fn read(&self) -> MutexGuard<'_, Snapshot> {
        self.snap.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the snapshot and tells the streams.
    pub fn update(&self, f: impl FnOnce(&mut Snapshot)) {
        f(&mut self.read());
        self.changed.send_modify(|v| *v += 1);
    }

    /// A receiver that wakes on every change (changes in between coalesce).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// How much is held.
    pub fn sizes(&self) -> Sizes {
        let s = self.read();
        Sizes {
            rollouts: s.rollouts.len(),
            objects: s.deployments.len() + s.services.len() + s.routing.len() + s.pods.len(),
            events: s.events.values().map(VecDeque::len).sum(),
            max_events_per_rollout: s.events.values().map(VecDeque::len).max().unwrap_or(0),
            history_points: s.history.values().map(VecDeque::len).sum(),
            max_points_per_metric: s.history.values().map(VecDeque::len).max().unwrap_or(0),
            streams: self.changed.receiver_count(),
            version: *self.changed.borrow(),
        }
    }
}

impl Snapshot {
    fn put_rollout(&mut self, mut ro: Rollout) {
        ro.metadata.managed_fields = None;
        let key = key_of(&ro);
        if let Some(c) = ro.status.as_ref().and_then(|s| s.canary_status.as_ref()) {
            for m in &c.analysis {
                let Some(t) = m.last_measurement_time.as_ref().map(|t| t.0.as_second()) else {
                    continue;
                };
                let h = self
                    .history
                    .entry((key.clone(), m.name.clone()))
                    .or_default();
                if h.back().is_some_and(|p| p.t >= t) {
                    continue;
                }
                h.push_back(Point {
                    t,
                    v: m.last_value,
                    phase: m.phase.map(|p| p.to_string()).unwrap_or_default(),
                    step: m.step_index,
                });
                while h.len() > HISTORY_POINTS {
                    h.pop_front();
                }
            }
        }
        self.rollouts.insert(key, ro);
    }

    fn drop_rollout(&mut self, key: &Key) {
        self.rollouts.remove(key);
        self.events.remove(key);
        self.history.retain(|(k, _), _| k != key);
    }

    fn put_event(&mut self, e: &Event) {
        let io = &e.involved_object;
        if io.kind.as_deref() != Some("Rollout") {
            return;
        }
        let key = (
            io.namespace
                .clone()
                .or_else(|| e.metadata.namespace.clone())
                .unwrap_or_default(),
            io.name.clone().unwrap_or_default(),
        );
        let time = e
            .last_timestamp
            .as_ref()
            .map(|t| t.0)
            .or_else(|| e.event_time.as_ref().map(|t| t.0))
            .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
            .map(|t| t.to_string());
        let row = EventRow {
            uid: e
                .metadata
                .uid
                .clone()
                .or_else(|| e.metadata.name.clone())
                .unwrap_or_default(),
            type_: e.type_.clone().unwrap_or_else(|| "Normal".into()),
            reason: e.reason.clone().unwrap_or_default(),
            message: e.message.clone().unwrap_or_default(),
            time,
            count: e.count.unwrap_or(1),
        };
        let list = self.events.entry(key).or_default();
        list.retain(|r| r.uid != row.uid);
        list.push_back(row);
        while list.len() > EVENTS_PER_ROLLOUT {
            list.pop_front();
        }
    }

    /// The routing object kinds the Rollouts name, as `(apiVersion, kind)`.
    fn routing_kinds(&self) -> BTreeSet<(String, String)> {
        self.rollouts
            .values()
            .filter_map(|ro| ro.spec.strategy.canary.as_ref())
            .flat_map(|c| c.traffic_routings.iter())
            .flat_map(|r| r.routing_refs())
            .map(|r| (r.api_version, r.kind))
            .collect()
    }
}

/// Where to watch: one namespace or all.
#[derive(Clone)]
pub struct Scope {
    /// The client.
    pub client: Client,
    /// `None`: all namespaces.
    pub namespace: Option<String>,
}

impl Scope {
    fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        match &self.namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        }
    }
}

/// How a watched kind goes into the snapshot.
trait Slot: Sized {
    fn put(snap: &mut Snapshot, o: Self);
    fn remove(snap: &mut Snapshot, o: &Self);
    /// Drops every object of the kind (before a relist).
    fn clear(snap: &mut Snapshot);
}

impl Slot for Rollout {
    fn put(snap: &mut Snapshot, o: Self) {
        snap.put_rollout(o);
    }
    fn remove(snap: &mut Snapshot, o: &Self) {
        snap.drop_rollout(&key_of(o));
    }
    fn clear(snap: &mut Snapshot) {
        snap.rollouts.clear();
    }
}

impl Slot for Deployment {
    fn put(snap: &mut Snapshot, mut o: Self) {
        o.metadata.managed_fields = None;
        snap.deployments.insert(key_of(&o), o);
    }
    fn remove(snap: &mut Snapshot, o: &Self) {
        snap.deployments.remove(&key_of(o));
    }
    fn clear(snap: &mut Snapshot) {
        snap.deployments.clear();
    }
}

impl Slot for Service {
    fn put(snap: &mut Snapshot, mut o: Self) {
        o.metadata.managed_fields = None;
        snap.services.insert(key_of(&o), o);
    }
    fn remove(snap: &mut Snapshot, o: &Self) {
        snap.services.remove(&key_of(o));
    }
    fn clear(snap: &mut Snapshot) {
        snap.services.clear();
    }
}

impl Slot for Pod {
    fn put(snap: &mut Snapshot, o: Self) {
        snap.pods.insert(key_of(&o), PodRow::of(&o));
    }
    fn remove(snap: &mut Snapshot, o: &Self) {
        snap.pods.remove(&key_of(o));
    }
    fn clear(snap: &mut Snapshot) {
        snap.pods.clear();
    }
}

impl Slot for Event {
    fn put(snap: &mut Snapshot, o: Self) {
        snap.put_event(&o);
    }
    fn remove(_: &mut Snapshot, _: &Self) {}
    fn clear(_: &mut Snapshot) {}
}

/// Runs one watcher into the store until the stream ends.
async fn run_watcher<K>(store: Arc<Store>, api: Api<K>, config: watcher::Config, what: &'static str)
where
    K: Resource + Slot + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let mut stream = watcher(api, config).boxed();
    let mut relist: Vec<K> = Vec::new();
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(watcher::Event::Init) => relist.clear(),
            Ok(watcher::Event::InitApply(o)) => relist.push(o),
            Ok(watcher::Event::InitDone) => {
                let items = std::mem::take(&mut relist);
                store.update(|s| {
                    K::clear(s);
                    s.watch_errors.remove(what);
                    for o in items {
                        K::put(s, o);
                    }
                });
            }
            Ok(watcher::Event::Apply(o)) => store.update(|s| K::put(s, o)),
            Ok(watcher::Event::Delete(o)) => store.update(|s| K::remove(s, &o)),
            Err(e) => {
                let msg = format!("watching {what}: {e}");
                store.update(|s| {
                    s.watch_errors.insert(what.to_string(), msg);
                });
                // The watcher retries on its own; do not spin on errors.
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
}

/// Watches one routing kind (e.g. VirtualService) into the store.
async fn run_routing_watcher(store: Arc<Store>, scope: Scope, api_version: String, kind: String) {
    let (group, version) = api_version
        .split_once('/')
        .unwrap_or(("", api_version.as_str()));
    let gvk = GroupVersionKind::gvk(group, version, &kind);
    let plural = format!("{}s", kind.to_ascii_lowercase());
    let ar = ApiResource::from_gvk_with_plural(&gvk, &plural);
    let api: Api<DynamicObject> = match &scope.namespace {
        Some(ns) => Api::namespaced_with(scope.client.clone(), ns, &ar),
        None => Api::all_with(scope.client.clone(), &ar),
    };
    let what = format!("{plural}.{group}");
    let key = |o: &DynamicObject| {
        (
            kind.clone(),
            o.metadata.namespace.clone().unwrap_or_default(),
            o.metadata.name.clone().unwrap_or_default(),
        )
    };
    let json = |mut o: DynamicObject| {
        o.metadata.managed_fields = None;
        serde_json::to_value(o).unwrap_or(Value::Null)
    };
    let mut stream = watcher(api, watcher::Config::default()).boxed();
    let mut relist = Vec::new();
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(watcher::Event::Init) => relist.clear(),
            Ok(watcher::Event::InitApply(o)) => relist.push(o),
            Ok(watcher::Event::InitDone) => {
                let items = std::mem::take(&mut relist);
                store.update(|s| {
                    s.routing.retain(|(k, _, _), _| k != &kind);
                    s.watch_errors.remove(&what);
                    for o in items {
                        s.routing.insert(key(&o), json(o));
                    }
                });
            }
            Ok(watcher::Event::Apply(o)) => store.update(|s| {
                s.routing.insert(key(&o), json(o));
            }),
            Ok(watcher::Event::Delete(o)) => store.update(|s| {
                s.routing.remove(&key(&o));
            }),
            Err(e) => {
                let msg = format!("watching {what}: {e}");
                store.update(|s| {
                    s.watch_errors.insert(what.clone(), msg);
                });
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
}

/// Starts the watchers; a routing watcher starts for each routing kind a
/// Rollout names, once.
pub fn spawn_watchers(store: Arc<Store>, scope: Scope) -> Vec<tokio::task::JoinHandle<()>> {
    let all = watcher::Config::default;
    let mut tasks = vec![
        tokio::spawn(run_watcher::<Rollout>(
            store.clone(),
            scope.api(),
            all(),
            "rollouts.rollouts.ramp.dev",
        )),
        tokio::spawn(run_watcher::<Deployment>(
            store.clone(),
            scope.api(),
            all(),
            "deployments.apps",
        )),
        tokio::spawn(run_watcher::<Service>(
            store.clone(),
            scope.api(),
            all(),
            "services",
        )),
        // Only the canary pods (ramp labels them with their Rollout).
        tokio::spawn(run_watcher::<Pod>(
            store.clone(),
            scope.api(),
            all().labels(ramp_api::names::MANAGED_BY_ROLLOUT_LABEL),
            "pods",
        )),
        tokio::spawn(run_watcher::<Event>(
            store.clone(),
            scope.api(),
            all(),
            "events",
        )),
    ];
    tasks.push(tokio::spawn(async move {
        let mut rx = store.subscribe();
        let mut started: BTreeSet<(String, String)> = BTreeSet::new();
        // Aborted with this task (a JoinSet aborts its tasks when dropped).
        let mut routing_tasks = tokio::task::JoinSet::new();
        loop {
            let kinds = store.read().routing_kinds();
            for (api_version, kind) in kinds {
                if started.insert((api_version.clone(), kind.clone())) {
                    routing_tasks.spawn(run_routing_watcher(
                        store.clone(),
                        scope.clone(),
                        api_version,
                        kind,
                    ));
                }
            }
            if rx.changed().await.is_err() {
                break;
            }
        }
    }));
    tasks
}
