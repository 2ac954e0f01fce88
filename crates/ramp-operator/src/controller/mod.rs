//! The Rollout controller: fetch → plan (ramp-core) → apply → status.
//!
//! Watch-driven: besides Rollouts it watches the Deployments ramp controls or
//! created, Services, and VirtualServices, and maps each change back to the
//! Rollouts that reference the object. It requeues only for timers (grace
//! periods, pause durations) and errors (with backoff).

mod execute;
mod observe;
mod report;

use execute::*;
use observe::*;
use report::record_metrics;
pub use report::{canary_weight, count_phases};

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action as Requeue, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use ramp_api::names::{
    CONTROLLED_BY_LABEL, FIELD_MANAGER, FINALIZER, MANAGED_BY_ROLLOUT_LABEL, canary_service_name,
    canary_workload_name,
};
use ramp_api::{Rollout, RolloutStatus};
use ramp_core::{Action, Observed, Plan};
use serde_json::{Value, json};

use crate::cache::Compact;
use crate::index::{self, Index};
use crate::metrics::{Metrics, PhaseLabel, PhaseLabels, RolloutLabels};
use crate::writes::{self, OwnWrites};

/// Controller errors, by stage.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading observed state failed.
    #[error("reading {what}: {source}")]
    Fetch {
        /// What was being read.
        what: String,
        /// The API error.
        source: kube::Error,
    },
    /// Carrying out a planned action failed.
    #[error("{action}: {source}")]
    Apply {
        /// The action.
        action: String,
        /// The API error.
        source: kube::Error,
    },
    /// Someone else changed an object between our read and our write; the next
    /// reconcile plans again from the new state.
    #[error("{what} changed concurrently; planning again")]
    Conflict {
        /// The object.
        what: String,
    },
    /// Writing the Rollout's status or finalizer failed.
    #[error("writing Rollout {name}: {source}")]
    Write {
        /// Rollout name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// An object could not be (de)serialized.
    #[error("encoding {what}: {source}")]
    Encode {
        /// What was being encoded.
        what: String,
        /// The serde error.
        source: serde_json::Error,
    },
}

impl Error {
    /// Low-cardinality kind for the error metric.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Fetch { .. } => "fetch",
            Error::Apply { .. } => "apply",
            Error::Conflict { .. } => "conflict",
            Error::Write { .. } => "write_status",
            Error::Encode { .. } => "encode",
        }
    }
}

fn is_conflict(e: &kube::Error) -> bool {
    // 409 Conflict (stale resourceVersion) or 422 from a failed JSON-patch `test`.
    matches!(e, kube::Error::Api(s) if s.code == 409 || (s.code == 422 && s.message.contains("test")))
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// What the controller's own store keeps of a Rollout: a few metadata
/// fields. The Rollout itself is in [`Context::rollouts`], as compact JSON.
pub type RolloutMeta = kube::core::PartialObjectMeta<Rollout>;

fn rollout_meta(r: &Rollout) -> RolloutMeta {
    let m = &r.metadata;
    kube::core::PartialObjectMeta {
        types: None,
        metadata: kube::api::ObjectMeta {
            name: m.name.clone(),
            namespace: m.namespace.clone(),
            uid: m.uid.clone(),
            resource_version: m.resource_version.clone(),
            deletion_timestamp: m.deletion_timestamp.clone(),
            ..Default::default()
        },
        _phantom: std::marker::PhantomData,
    }
}

fn meta_event(e: watcher::Event<Rollout>) -> watcher::Event<RolloutMeta> {
    match e {
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(r) => watcher::Event::InitApply(rollout_meta(&r)),
        watcher::Event::InitDone => watcher::Event::InitDone,
        watcher::Event::Apply(r) => watcher::Event::Apply(rollout_meta(&r)),
        watcher::Event::Delete(r) => watcher::Event::Delete(rollout_meta(&r)),
    }
}

/// The phase of every Rollout, kept from the Rollout watch (for the
/// `ramp_rollouts` gauge and for waking only progressing Rollouts).
#[derive(Default)]
pub struct Phases(std::sync::RwLock<std::collections::HashMap<index::Id, ramp_api::RolloutPhase>>);

impl Phases {
    fn observe(&self, e: &watcher::Event<Rollout>) {
        let mut m = self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let id = |r: &Rollout| (r.namespace().unwrap_or_default(), r.name_any());
        let phase = |r: &Rollout| {
            r.status
                .as_ref()
                .and_then(|s| s.phase)
                .unwrap_or(ramp_api::RolloutPhase::Initial)
        };
        match e {
            // A re-list overwrites every Rollout it lists; the ones deleted
            // meanwhile are dropped at the end.
            watcher::Event::Init => {}
            watcher::Event::InitApply(r) | watcher::Event::Apply(r) => {
                m.insert(id(r), phase(r));
            }
            watcher::Event::InitDone => {}
            watcher::Event::Delete(r) => {
                m.remove(&id(r));
            }
        }
    }

    /// Keep only the Rollouts `keep` says exist.
    fn retain(&self, keep: impl Fn(&str, &str) -> bool) {
        let mut m = self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        m.retain(|(ns, n), _| keep(ns, n));
    }

    /// The phase of `ns/name`.
    pub fn get(&self, ns: &str, name: &str) -> Option<ramp_api::RolloutPhase> {
        let m = self
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        m.get(&(ns.to_string(), name.to_string())).copied()
    }

    /// How many Rollouts are in each phase.
    pub fn counts(&self) -> BTreeMap<PhaseLabel, i64> {
        let m = self
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = BTreeMap::new();
        for p in m.values() {
            *out.entry(PhaseLabel::from(*p)).or_default() += 1;
        }
        out
    }
}

/// Shared state of the reconciler.
pub struct Context {
    /// API client.
    pub client: Client,
    /// Metrics.
    pub metrics: Metrics,
    /// Event recorder.
    pub recorder: crate::events::Publisher,
    /// Deployments ramp controls (stable, labelled).
    pub deployments: Arc<Compact<Deployment>>,
    /// Deployments ramp created (canaries).
    pub canary_deployments: Arc<Compact<Deployment>>,
    /// Services.
    pub services: Arc<Compact<Service>>,
    /// Watch caches of the routing kinds whose CRDs are installed
    /// (VirtualService, DestinationRule, HTTPRoute), by kind.
    pub routing: BTreeMap<&'static str, Arc<Compact<DynamicObject>>>,
    /// The API resources of those kinds, as discovered at start.
    pub routing_resources: BTreeMap<String, ApiResource>,
    /// Whether the admission webhook pauses Deployments (else the controller
    /// pauses them itself and warns about the race).
    pub webhook_enabled: bool,
    /// Our writes (status, Services, Deployments, routing) the watches have
    /// not delivered yet.
    pub own_writes: OwnWrites,
    /// Every ReplicaSet, compacted (see `ramp_core::compact_replica_set`).
    pub replica_sets: Arc<Compact<ReplicaSet>>,
    /// ReplicaSets by the Deployment owning them.
    pub replica_set_owners: Arc<Index<ReplicaSet>>,
    /// Canary pods, compacted (see `ramp_core::compact_pod`).
    pub canary_pods: Arc<Compact<Pod>>,
    /// Canary pods by their Rollout.
    pub canary_pod_index: Arc<Index<Pod>>,
    /// Every Rollout, as compact JSON.
    pub rollouts: Arc<Compact<Rollout>>,
    /// Every Rollout's phase.
    pub phases: Arc<Phases>,
    /// Rollouts by what they name.
    pub rollout_index: Arc<Index<Rollout>>,
    /// VirtualServices by the hosts they claim.
    pub virtual_service_hosts: Arc<Index<DynamicObject>>,
    /// Metric analysis: the Prometheus client and default address.
    pub analyzer: crate::analysis::Analyzer,
    /// True once every watch cache has listed its objects. Until then no
    /// Rollout is planned: after a restart the Rollouts may be listed before
    /// the Deployments, Services or routing objects, and a plan from a
    /// half-filled cache would recreate (or report missing) what exists.
    pub synced: tokio::sync::watch::Receiver<bool>,
}

/// Drop what ramp never reads before an object reaches a cache: field
/// ownership (`managedFields`). Annotations stay, even kubectl's
/// `last-applied-configuration`: a routing object's annotations are part of
/// the original ramp saves and restores exactly.
pub fn strip<K: Resource>(o: &mut K) {
    o.meta_mut().managed_fields = None;
}

/// Key of a ReplicaSet's owning Deployment.
fn owner_key(ns: &str, name: &str) -> String {
    format!("owner/{ns}/{name}")
}

/// Key of the canary pods of a Rollout.
fn canary_pod_key(ns: &str, rollout: &str) -> String {
    format!("canary-pods/{ns}/{rollout}")
}

fn canary_pod_keys(p: &Pod) -> Vec<String> {
    let ns = p.namespace().unwrap_or_default();
    p.labels()
        .get(MANAGED_BY_ROLLOUT_LABEL)
        .map(|r| canary_pod_key(&ns, r))
        .into_iter()
        .collect()
}

fn replica_set_owner_keys(rs: &ReplicaSet) -> Vec<String> {
    let ns = rs.namespace().unwrap_or_default();
    rs.owner_references()
        .iter()
        .filter(|o| o.kind == "Deployment")
        .map(|o| owner_key(&ns, &o.name))
        .collect()
}

/// Where the controller looks.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// One namespace, or all when `None`.
    pub namespace: Option<String>,
}

impl Scope {
    fn api<K>(&self, client: &Client) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match &self.namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
}

/// The selector `key` (the label exists, any value).
fn has_label(key: &str) -> kube::core::Selector {
    kube::core::Selector::from(kube::core::Expression::Exists(key.to_string()))
}

/// The routing kinds ramp drives, with the versions it accepts, newest first.
fn routing_kinds() -> impl Iterator<Item = &'static ramp_api::validation::NetworkRefKind> {
    ramp_api::validation::SUPPORTED_NETWORK_REFS.iter()
}

/// The API resource of `kind` as the cluster serves it: the first of
/// `versions` discovery finds, with the plural discovery names (never
/// guessed). `None` when no version is served (the CRD is not installed).
async fn discover(
    client: &Client,
    group: &str,
    kind: &str,
    versions: &[&str],
) -> Option<ApiResource> {
    for v in versions {
        let gvk = kube::core::GroupVersionKind::gvk(group, v, kind);
        if let Ok((ar, _)) = kube::discovery::pinned_kind(client, &gvk).await {
            return Some(ar);
        }
    }
    None
}

/// The API resource to read or write a routing object named at
/// `api_version`: the kind's plural as discovered at start (or now, for a
/// CRD installed since), at the version the reference names. `None` when the
/// kind is not served.
async fn routing_resource(ctx: &Context, api_version: &str, kind: &str) -> Option<ApiResource> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let known = ctx
        .routing_resources
        .get(kind)
        .filter(|ar| ar.group == group)
        .cloned();
    let ar = match known {
        Some(ar) => ar,
        None => discover(&ctx.client, group, kind, &[version]).await?,
    };
    Some(ApiResource {
        version: version.to_string(),
        api_version: api_version.to_string(),
        ..ar
    })
}

/// Rollouts to wake for a change of a routing object: those naming it, and
/// for VirtualServices also the progressing Rollouts whose VirtualServices or
/// stable Service share a host with it (a new VirtualService may claim the
/// same host: a conflict to report).
fn routing_object_rollouts(
    phases: &Phases,
    by_ref: &Index<Rollout>,
    hosts: &Index<DynamicObject>,
    o: &DynamicObject,
) -> Vec<ObjectRef<RolloutMeta>> {
    let ns = o.namespace().unwrap_or_default();
    let name = o.name_any();
    let kind = o.types.as_ref().map(|t| t.kind.clone()).unwrap_or_default();
    let mut ids: BTreeSet<index::Id> = by_ref
        .get(&index::routing_key(&ns, &kind, &name))
        .into_iter()
        .collect();
    if kind == "VirtualService" {
        let mut sharing: BTreeSet<index::Id> = BTreeSet::new();
        for h in index::virtual_service_hosts(o) {
            let key = index::host_key(&ns, &h);
            sharing.extend(by_ref.get(&key));
            for (_, other) in hosts.get(&key) {
                sharing.extend(by_ref.get(&index::routing_key(&ns, "VirtualService", &other)));
            }
        }
        ids.extend(
            sharing
                .into_iter()
                .filter(|(ns, n)| phases.get(ns, n) == Some(ramp_api::RolloutPhase::Progressing)),
        );
    }
    refs(ids)
}

fn refs(ids: impl IntoIterator<Item = index::Id>) -> Vec<ObjectRef<RolloutMeta>> {
    ids.into_iter()
        .map(|(ns, n)| ObjectRef::new(&n).within(&ns))
        .collect()
}

fn routing_of(r: &Rollout) -> Option<&ramp_api::TrafficRoutingRef> {
    r.spec
        .strategy
        .canary
        .as_ref()
        .and_then(|c| c.traffic_routings.first())
}

/// Reconciles in flight at once.
const RECONCILE_CONCURRENCY: u16 = 32;

/// Build and run the controller until shutdown.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    client: Client,
    scope: Scope,
    metrics: Metrics,
    reporter: Reporter,
    webhook_enabled: bool,
    analyzer: crate::analysis::Analyzer,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
    ready: impl Fn() + Send + Sync + 'static,
) {
    let rollouts: Api<Rollout> = scope.api(&client);

    // Deployments: the stable ones ramp adopted (labelled) and the canaries it made.
    let dep_api: Api<Deployment> = scope.api(&client);
    let caches = deployment_caches(
        watcher(
            dep_api.clone(),
            watcher::Config::default().labels_from(&has_label(CONTROLLED_BY_LABEL)),
        )
        .default_backoff()
        .modify(strip),
        watcher(
            dep_api,
            watcher::Config::default().labels_from(&has_label(MANAGED_BY_ROLLOUT_LABEL)),
        )
        .default_backoff()
        .modify(strip),
    );
    let deployments = caches.events;
    let mut synced = caches.synced;

    // Canary pods, compacted, found by their Rollout: a pod that fails to
    // start changes no Deployment field, yet its reason belongs in the
    // message; no LIST per reconcile while the canary is not ready.
    let pod_cache = Arc::new(Compact::<Pod>::new());
    let canary_pod_index = Arc::new(Index::new(canary_pod_keys));
    let (pod_events, pods_synced) = flag_synced(
        watcher(
            scope.api::<Pod>(&client),
            watcher::Config::default().labels_from(&has_label(MANAGED_BY_ROLLOUT_LABEL)),
        )
        .default_backoff()
        .modify(ramp_core::compact_pod),
    );
    synced.push(pods_synced);
    let canary_pods = {
        let (idx, cache) = (canary_pod_index.clone(), pod_cache.clone());
        pod_events
            .inspect(move |e| {
                if let Ok(e) = e {
                    idx.observe(e);
                    cache.observe(e);
                }
            })
            .touched_objects()
    };

    // ReplicaSets, compacted, found by their Deployment: no LIST per reconcile.
    let rs_cache = Arc::new(Compact::<ReplicaSet>::new());
    let replica_set_owners = Arc::new(Index::new(replica_set_owner_keys));
    let (rs_events, rs_synced) = flag_synced(
        watcher(scope.api::<ReplicaSet>(&client), watcher::Config::default())
            .default_backoff()
            .modify(ramp_core::compact_replica_set),
    );
    synced.push(rs_synced);
    {
        let (owners, cache) = (replica_set_owners.clone(), rs_cache.clone());
        let events = rs_events.inspect(move |e| {
            if let Ok(e) = e {
                owners.observe(e);
                cache.observe(e);
            }
        });
        // Nothing reconciles on a ReplicaSet change (its Deployment's status
        // changes with it); the stream only feeds the cache.
        tokio::spawn(events.for_each(|_| async {}));
    }

    let svc_cache = Arc::new(Compact::<Service>::new());
    let (services, svc_synced) = flag_synced(
        watcher(scope.api::<Service>(&client), watcher::Config::default())
            .default_backoff()
            .modify(strip),
    );
    synced.push(svc_synced);
    let services = {
        let cache = svc_cache.clone();
        services
            .inspect(move |e| {
                if let Ok(e) = e {
                    cache.observe(e);
                }
            })
            .touched_objects()
    };

    // Routing objects: one watch cache per kind whose CRD is installed.
    let mut routing = BTreeMap::new();
    let mut routing_streams = Vec::new();
    let virtual_service_hosts = Arc::new(Index::new(index::virtual_service_keys));
    let mut routing_resources = BTreeMap::new();
    for rk in routing_kinds() {
        let kind = rk.kind;
        let Some(ar) = discover(&client, rk.group, kind, rk.versions).await else {
            tracing::info!(
                kind,
                "the {kind} CRD is not installed; Rollouts naming one will report it missing until it is installed and ramp restarts"
            );
            continue;
        };
        routing_resources.insert(kind.to_string(), ar.clone());
        let api: Api<DynamicObject> = match &scope.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
            None => Api::all_with(client.clone(), &ar),
        };
        let cache = Arc::new(Compact::<DynamicObject>::new());
        routing.insert(kind, cache.clone());
        let (events, flag) = flag_synced(
            watcher(api, watcher::Config::default())
                .default_backoff()
                .modify(strip),
        );
        synced.push(flag);
        let hosts = (kind == "VirtualService").then(|| virtual_service_hosts.clone());
        let events = events.inspect(move |e| {
            if let Ok(e) = e {
                if let Some(hosts) = &hosts {
                    hosts.observe(e);
                }
                cache.observe(e);
            }
        });
        let stream = events.touched_objects().map(move |r| {
            r.map(|mut o| {
                // Watch events carry no TypeMeta on some servers: name the kind.
                o.types.get_or_insert_with(|| kube::core::TypeMeta {
                    api_version: String::new(),
                    kind: kind.to_string(),
                });
                o
            })
        });
        routing_streams.push((stream.boxed(), ar));
    }

    let (ro_reader, ro_writer) = reflector::store::<RolloutMeta>();
    let rollout_index = Arc::new(Index::new(index::rollout_keys));
    let rollout_cache = Arc::new(Compact::<Rollout>::new());
    let phases = Arc::new(Phases::default());
    let (ro_events, ro_synced) = flag_synced(
        watcher(rollouts, watcher::Config::default())
            .default_backoff()
            .modify(strip),
    );
    synced.push(ro_synced);
    let ro_events = {
        let (idx, cache, phases) = (rollout_index.clone(), rollout_cache.clone(), phases.clone());
        ro_events
            .inspect(move |e| {
                if let Ok(e) = e {
                    idx.observe(e);
                    cache.observe(e);
                    phases.observe(e);
                    if matches!(e, watcher::Event::InitDone) {
                        phases.retain(|ns, n| cache.contains(ns, n));
                    }
                }
            })
            .map(|e| e.map(meta_event))
    };
    let controller =
        Controller::for_stream(ro_events.reflect(ro_writer).applied_objects(), ro_reader)
            // Bounded: each reconcile holds its observed state, and two cores
            // gain nothing from thousands in flight.
            .with_config(
                kube::runtime::controller::Config::default().concurrency(RECONCILE_CONCURRENCY),
            );
    tokio::spawn(count_phases(phases.clone(), metrics.clone()));
    let (all_synced_tx, all_synced) = tokio::sync::watch::channel(false);
    let ctx = Arc::new(Context {
        client: client.clone(),
        metrics,
        recorder: crate::events::Publisher::new(client.clone(), reporter),
        deployments: caches.controlled,
        canary_deployments: caches.canaries,
        services: svc_cache,
        routing,
        routing_resources,
        webhook_enabled,
        own_writes: OwnWrites::default(),
        replica_sets: rs_cache,
        replica_set_owners,
        canary_pods: pod_cache,
        canary_pod_index,
        rollouts: rollout_cache,
        phases: phases.clone(),
        rollout_index: rollout_index.clone(),
        virtual_service_hosts: virtual_service_hosts.clone(),
        analyzer,
        synced: all_synced,
    });

    let (i1, i2) = (rollout_index.clone(), rollout_index.clone());
    tokio::spawn(async move {
        // Ready once every watch has listed its objects.
        for mut flag in synced {
            let _ = flag.wait_for(|s| *s).await;
        }
        all_synced_tx.send_replace(true);
        ready();
    });

    let mut controller = controller;
    for (stream, ar) in routing_streams {
        let phases = phases.clone();
        let (by_ref, hosts) = (rollout_index.clone(), virtual_service_hosts.clone());
        controller = controller.watches_stream_with(
            stream,
            move |o: DynamicObject| routing_object_rollouts(&phases, &by_ref, &hosts, &o),
            ar,
        );
    }
    controller
        .watches_stream(deployments, move |d: Deployment| {
            let ns = d.metadata.namespace.clone();
            let labels = d.labels();
            let name = labels
                .get(CONTROLLED_BY_LABEL)
                .or_else(|| labels.get(MANAGED_BY_ROLLOUT_LABEL))
                .cloned();
            let mut refs: Vec<ObjectRef<RolloutMeta>> = name
                .into_iter()
                .map(|n| ObjectRef::new(&n).within(ns.as_deref().unwrap_or_default()))
                .collect();
            // A Deployment named by a Rollout but not yet adopted.
            let ns = ns.unwrap_or_default();
            refs.extend(self::refs(i1.get(&index::workload_key(&ns, &d.name_any()))));
            refs
        })
        .watches_stream(services, move |s: Service| {
            let ns = s.namespace().unwrap_or_default();
            refs(i2.get(&index::service_key(&ns, &s.name_any())))
        })
        // Canary pods: a pod that fails to start (image pull, crash loop)
        // changes no Deployment field, yet its reason belongs in the message.
        .watches_stream(canary_pods, |p: Pod| rollout_of_canary_pod(&p.metadata))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => tracing::debug!(rollout = %obj, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile failed"),
            }
        })
        .await;
}

/// The Rollout a canary pod belongs to (from ramp's label on it).
pub fn rollout_of_canary_pod(meta: &kube::api::ObjectMeta) -> Option<ObjectRef<RolloutMeta>> {
    let name = meta.labels.as_ref()?.get(MANAGED_BY_ROLLOUT_LABEL)?;
    Some(ObjectRef::new(name).within(meta.namespace.as_deref().unwrap_or_default()))
}

/// A watch stream, and a flag that turns true once it has listed every
/// object (its first `InitDone`).
///
/// Readiness waits on these flags rather than on `Store::wait_until_ready`:
/// that wakes only the last of several concurrent waiters, and the controller
/// itself waits on the Rollout store.
pub fn flag_synced<K, S>(
    events: S,
) -> (
    impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    tokio::sync::watch::Receiver<bool>,
)
where
    K: Send + 'static,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
{
    let (tx, rx) = tokio::sync::watch::channel(false);
    let events = events.inspect(move |e| {
        if matches!(e, Ok(watcher::Event::InitDone)) {
            tx.send_replace(true);
        }
    });
    (events, rx)
}

/// The Deployment caches and the merged stream of their changes.
pub struct DeploymentCaches<S> {
    /// Stable Deployments ramp adopted.
    pub controlled: Arc<Compact<Deployment>>,
    /// Canary Deployments ramp created.
    pub canaries: Arc<Compact<Deployment>>,
    /// Changes of either, for the controller's mapper.
    pub events: S,
    /// One flag per watch, true once it has listed everything.
    pub synced: Vec<tokio::sync::watch::Receiver<bool>>,
}

/// One store per watch: two watches feeding one store would each replace the
/// whole store with their own list when they (re)start, so after a restart
/// the cache would miss the other watch's Deployments (for instance the
/// canary, which then would never be scaled down or deleted).
pub fn deployment_caches<A, B>(
    controlled: A,
    canaries: B,
) -> DeploymentCaches<impl Stream<Item = Result<Deployment, watcher::Error>> + Send + 'static>
where
    A: Stream<Item = Result<watcher::Event<Deployment>, watcher::Error>> + Send + 'static,
    B: Stream<Item = Result<watcher::Event<Deployment>, watcher::Error>> + Send + 'static,
{
    let controlled_cache = Arc::new(Compact::<Deployment>::new());
    let canary_cache = Arc::new(Compact::<Deployment>::new());
    let (a, a_synced) = flag_synced(controlled);
    let (b, b_synced) = flag_synced(canaries);
    let feed = |cache: &Arc<Compact<Deployment>>| {
        let cache = cache.clone();
        move |e: &Result<watcher::Event<Deployment>, watcher::Error>| {
            if let Ok(e) = e {
                cache.observe(e);
            }
        }
    };
    let events = futures::stream::select(
        a.inspect(feed(&controlled_cache)).touched_objects(),
        b.inspect(feed(&canary_cache)).touched_objects(),
    );
    DeploymentCaches {
        controlled: controlled_cache,
        canaries: canary_cache,
        events,
        synced: vec![a_synced, b_synced],
    }
}

/// One reconcile of one Rollout: observe, plan, execute, write the status.
/// Every log line inside carries the Rollout's reference.
#[tracing::instrument(skip_all, fields(rollout = %ObjectRef::from_obj(meta.as_ref())))]
async fn reconcile(meta: Arc<RolloutMeta>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    let ns = meta.namespace().unwrap_or_default();
    let name = meta.name_any();
    if !*ctx.synced.borrow() {
        // Wait (bounded, so that shutdown is not held up) for the caches.
        let mut synced = ctx.synced.clone();
        if tokio::time::timeout(Duration::from_secs(2), synced.wait_for(|s| *s))
            .await
            .is_err()
        {
            tracing::debug!(rollout = %format!("{ns}/{name}"), "waiting for the watch caches to sync");
            return Ok(Requeue::requeue(Duration::from_millis(100)));
        }
    }
    let _timer = ctx.metrics.time_reconcile();
    // The store and the cache follow the same events: absent only if
    // deleted since the reconcile was scheduled.
    let Some(ro) = ctx.rollouts.get(&ns, &name) else {
        return Ok(Requeue::await_change());
    };
    let api: Api<Rollout> = Api::namespaced(ctx.client.clone(), &ns);

    // The finalizer first, so that deletion always restores what ramp changed.
    if ro.metadata.deletion_timestamp.is_none() && !ro.finalizers().iter().any(|f| f == FINALIZER) {
        add_finalizer(&api, &ro).await?;
        // The write triggers the next reconcile.
        return Ok(Requeue::await_change());
    }
    if ro.metadata.deletion_timestamp.is_some() && !ro.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Requeue::await_change());
    }

    if let Some(what) = ctx.own_writes.undelivered(&ns, &name, |kind, n| {
        if kind == writes::ROLLOUT {
            ro.resource_version()
        } else {
            cached_version(&ctx, &ns, kind, n)
        }
    }) {
        // The watch brings what we wrote (and with it a reconcile); planning
        // from the older cache would repeat the write. The fallback requeue
        // covers a watch that restarts meanwhile.
        tracing::debug!(rollout = %format!("{ns}/{name}"), write = %what, "waiting for the watch to deliver our write");
        return Ok(Requeue::requeue(Duration::from_secs(1)));
    }
    let mut observed = observe(&ro, &ctx).await?;
    ctx.analyzer.observe(&mut observed).await;
    let plan = ramp_core::plan(&observed);
    if let Some(e) = &plan.error {
        tracing::info!(rollout = %format!("{ns}/{name}"), problem = %e, "rollout waits");
    }
    for action in &plan.actions {
        execute(action, &ns, &name, &ctx).await?;
    }
    publish_events(&ro, &plan, &ctx).await;
    record_metrics(&ro, &plan, &ctx);
    crate::analysis::record_metrics(&ctx.metrics, &ro, &observed, &plan);
    let old_status = ro.status.clone().unwrap_or_default();
    if plan.status != old_status {
        write_status(&api, &ro, &plan.status, &ctx).await?;
    }
    if ro.metadata.deletion_timestamp.is_some() && plan.cleanup_complete {
        remove_finalizer(&api, &ro).await?;
        ctx.metrics.forget_rollout(&ns, &name);
        ctx.own_writes.forget(&ns, &name);
        return Ok(Requeue::await_change());
    }
    Ok(match plan.requeue_after {
        Some(d) => Requeue::requeue(d),
        None => Requeue::await_change(),
    })
}

fn error_policy(ro: Arc<RolloutMeta>, err: &Error, ctx: Arc<Context>) -> Requeue {
    ctx.metrics
        .reconcile_errors
        .get_or_create(&crate::metrics::ErrorLabels {
            kind: err.kind().to_string(),
        })
        .inc();
    match err {
        // Someone else wrote first: plan again soon from the new state.
        Error::Conflict { .. } => Requeue::requeue(Duration::from_millis(200)),
        _ => {
            tracing::warn!(rollout = %format!("{}/{}", ro.namespace().unwrap_or_default(), ro.name_any()), error = %err, "reconcile failed");
            Requeue::requeue(Duration::from_secs(5))
        }
    }
}

#[cfg(test)]
mod tests;
