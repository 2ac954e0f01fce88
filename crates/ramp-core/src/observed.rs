//! What the planner looks at: plain state, read by the operator (or a test).

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, Service};
use ramp_api::Rollout;
use serde_json::Value;

/// Everything [`crate::plan`] needs, read from the cluster at one moment.
///
/// Objects that do not exist are `None` (or absent from the lists); the
/// planner names missing objects in the Rollout's status.
#[derive(Clone, Debug)]
pub struct Observed {
    /// The Rollout, with its status as last written.
    pub rollout: Rollout,
    /// The Deployment named by `spec.workloadRef` (the stable workload).
    pub workload: Option<Deployment>,
    /// ReplicaSets owned by the workload or by the canary Deployment (others are ignored).
    pub replica_sets: Vec<ReplicaSet>,
    /// The canary Deployment `<workload>-canary`, if it exists.
    pub canary_workload: Option<Deployment>,
    /// Pods of the canary Deployment (optional: used only to say why they are not ready).
    pub canary_pods: Vec<Pod>,
    /// The Service named by `trafficRoutings[0].service`.
    pub stable_service: Option<Service>,
    /// The canary Service `<service>-canary`, if it exists.
    pub canary_service: Option<Service>,
    /// Each routing object named by `trafficRoutings[0]` that exists, as
    /// JSON (with `apiVersion`, `kind`, `metadata`, `spec`): every entry of
    /// [`ramp_api::TrafficRoutingRef::routing_refs`], which is
    /// `customNetworkRefs` plus the HTTPRoute of `gateway.httpRouteName`.
    pub routing_objects: Vec<Value>,
    /// Every Istio VirtualService in the Rollout's namespace, as JSON (at
    /// least `metadata.name`, `metadata.namespace` and `spec`), for conflict
    /// detection: another VirtualService claiming a host ramp changes stops
    /// the rollout before anything changes. Empty when Istio's CRD is not
    /// installed (then only the referenced VirtualServices are compared).
    pub namespace_virtual_services: Vec<Value>,
    /// Measurements the operator took for this call, when
    /// [`crate::analysis::measurement_due`] asked for them (else empty).
    pub measurements: Vec<crate::analysis::Measurement>,
    /// The current time.
    pub now: DateTime<Utc>,
}

impl Observed {
    /// Observed state with only the Rollout; fill in the rest field by field.
    pub fn new(rollout: Rollout, now: DateTime<Utc>) -> Self {
        Observed {
            rollout,
            workload: None,
            replica_sets: Vec::new(),
            canary_workload: None,
            canary_pods: Vec::new(),
            stable_service: None,
            canary_service: None,
            routing_objects: Vec::new(),
            namespace_virtual_services: Vec::new(),
            measurements: Vec::new(),
            now,
        }
    }

    /// The routing object of `kind` named `name`, if observed.
    pub fn routing_object(&self, api_version: &str, kind: &str, name: &str) -> Option<&Value> {
        let group = api_group(api_version);
        self.routing_objects.iter().find(|o| {
            o.get("kind").and_then(Value::as_str) == Some(kind)
                && o.pointer("/metadata/name").and_then(Value::as_str) == Some(name)
                && o.get("apiVersion")
                    .and_then(Value::as_str)
                    .is_none_or(|v| api_group(v) == group)
        })
    }
}

/// The group part of an `apiVersion` (`networking.istio.io/v1beta1` → `networking.istio.io`).
pub(crate) fn api_group(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}
