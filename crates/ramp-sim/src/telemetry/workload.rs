//! Who a pod is, as Istio labels it: its workload (the owning Deployment), its
//! version, and how it answers.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use super::behaviour::PodBehaviour;

/// Label value Istio uses when it does not know.
pub const UNKNOWN: &str = "unknown";

/// What the telemetry needs to know about a pod that served requests.
#[derive(Debug, Clone, PartialEq)]
pub struct PodInfo {
    /// `destination_workload`: the owning Deployment (or other controller).
    pub workload: String,
    /// `destination_version`: the pod's `version` label, else `unknown`.
    pub version: String,
    pub behaviour: PodBehaviour,
}

/// The controller owner reference of `obj`, as `(kind, name)`.
fn controller_of(obj: &Value) -> Option<(&str, &str)> {
    let refs = obj.pointer("/metadata/ownerReferences")?.as_array()?;
    let r = refs
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .or_else(|| refs.first())?;
    Some((r.get("kind")?.as_str()?, r.get("name")?.as_str()?))
}

/// The workload name Istio reports for `pod`: for a pod of a ReplicaSet, the
/// ReplicaSet's owning Deployment (looked up with `replica_set`; when the
/// ReplicaSet is gone, its name without the `-<pod-template-hash>` suffix);
/// for a pod of another controller (StatefulSet, DaemonSet, Job), that
/// controller; for a bare pod, the pod's name.
pub fn workload_name(pod: &Value, replica_set: impl Fn(&str) -> Option<Arc<Value>>) -> String {
    let pod_name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or(UNKNOWN);
    let Some((kind, owner)) = controller_of(pod) else {
        return pod_name.to_owned();
    };
    if kind != "ReplicaSet" {
        return owner.to_owned();
    }
    if let Some(rs) = replica_set(owner) {
        return match controller_of(&rs) {
            Some((_, deployment)) => deployment.to_owned(),
            None => owner.to_owned(),
        };
    }
    let hash = pod
        .pointer("/metadata/labels/pod-template-hash")
        .and_then(Value::as_str);
    match hash.and_then(|h| owner.strip_suffix(h)?.strip_suffix('-')) {
        Some(deployment) if !deployment.is_empty() => deployment.to_owned(),
        _ => owner.to_owned(),
    }
}

/// The `version` label of `pod`, else `unknown`.
pub fn version_of(pod: &Value) -> String {
    pod.pointer("/metadata/labels/version")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .unwrap_or(UNKNOWN)
        .to_owned()
}

/// Pods by name, with what the telemetry needs of each.
#[derive(Debug, Default)]
pub struct PodIndex {
    pods: BTreeMap<String, PodInfo>,
    /// Invalid annotations met while indexing.
    pub warnings: Vec<String>,
    /// The namespace's Service ports, naming a gateway's Envoy clusters.
    pub ports: super::metrics::ServicePorts,
}

impl PodIndex {
    /// Indexes `pods` (JSON as stored), resolving owners with `replica_set`.
    pub fn new<'a>(
        pods: impl IntoIterator<Item = &'a Value>,
        replica_set: impl Fn(&str) -> Option<Arc<Value>>,
    ) -> PodIndex {
        let mut index = PodIndex::default();
        for pod in pods {
            let Some(name) = pod.pointer("/metadata/name").and_then(Value::as_str) else {
                continue;
            };
            let (behaviour, warnings) = PodBehaviour::from_pod(pod);
            index.warnings.extend(warnings);
            index.pods.insert(
                name.to_owned(),
                PodInfo {
                    workload: workload_name(pod, &replica_set),
                    version: version_of(pod),
                    behaviour,
                },
            );
        }
        index
    }

    pub fn get(&self, name: &str) -> Option<&PodInfo> {
        self.pods.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn owned(kind: &str, name: &str) -> Value {
        json!([{"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": "u", "controller": true}])
    }

    #[test]
    fn a_replica_set_pod_belongs_to_the_deployment_owning_the_replica_set() {
        let pod = json!({"metadata": {"name": "web-canary-7d9f-abcde",
            "labels": {"pod-template-hash": "7d9f", "version": "canary"},
            "ownerReferences": owned("ReplicaSet", "web-canary-7d9f")}});
        let rs = Arc::new(json!({"metadata": {"name": "web-canary-7d9f",
            "ownerReferences": owned("Deployment", "web-canary")}}));
        let found = |n: &str| (n == "web-canary-7d9f").then(|| rs.clone());
        assert_eq!(workload_name(&pod, found), "web-canary");
        // The ReplicaSet gone: its name without the pod-template-hash.
        assert_eq!(workload_name(&pod, |_| None), "web-canary");
        // A ReplicaSet without an owner is the workload itself.
        let bare_rs = Arc::new(json!({"metadata": {"name": "web-canary-7d9f"}}));
        assert_eq!(
            workload_name(&pod, |_| Some(bare_rs.clone())),
            "web-canary-7d9f"
        );
        assert_eq!(version_of(&pod), "canary");
    }

    #[test]
    fn other_owners_and_bare_pods() {
        let sts =
            json!({"metadata": {"name": "db-0", "ownerReferences": owned("StatefulSet", "db")}});
        assert_eq!(workload_name(&sts, |_| None), "db");
        let bare = json!({"metadata": {"name": "debug", "labels": {}}});
        assert_eq!(workload_name(&bare, |_| None), "debug");
        assert_eq!(version_of(&bare), "unknown");
        // No hash label and no ReplicaSet: the owner's name as it is.
        let odd =
            json!({"metadata": {"name": "x-1", "ownerReferences": owned("ReplicaSet", "x-rs")}});
        assert_eq!(workload_name(&odd, |_| None), "x-rs");
    }

    #[test]
    fn the_index_carries_behaviour_and_warnings() {
        let pods = [
            json!({"metadata": {"name": "a", "namespace": "n", "annotations": {"sim.ramp.dev/error-rate": "0.5"}}}),
            json!({"metadata": {"name": "b", "namespace": "n", "annotations": {"sim.ramp.dev/latency-ms": "-1"}}}),
        ];
        let index = PodIndex::new(pods.iter(), |_| None);
        assert_eq!(index.get("a").unwrap().behaviour.error_rate, 0.5);
        assert_eq!(index.get("b").unwrap().behaviour, PodBehaviour::default());
        assert_eq!(index.warnings.len(), 1);
        assert!(
            index.warnings[0].contains("pod n/b"),
            "{:?}",
            index.warnings
        );
        assert!(index.get("c").is_none());
    }
}
