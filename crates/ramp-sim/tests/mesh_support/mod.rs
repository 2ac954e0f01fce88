//! Builders for the mesh routing fixtures: objects as the API server stores them.
#![allow(dead_code, clippy::unwrap_used)]

use ramp_sim::mesh::{HttpRequest, RouteOptions, RouteReport, Snapshot, route};
use serde_json::{Value, json};

pub const NS: &str = "default";

/// A pod of a Deployment-made ReplicaSet: `<app>-<version>-<hash>-<i>`, labels
/// `app`, `version`, `pod-template-hash`.
pub fn pod(name: &str, labels: Value, ready: bool) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "spec": {"containers": [{"name": "app", "image": "example/app:1"}]},
        "status": {
            "phase": if ready { "Running" } else { "Pending" },
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]
        }
    })
}

/// `n` ready pods of `app` at `version`, with pod-template-hash `hash`.
pub fn pods(app: &str, version: &str, hash: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            pod(
                &format!("{app}-{version}-{hash}-p{i}"),
                json!({"app": app, "version": version, "pod-template-hash": hash}),
                true,
            )
        })
        .collect()
}

pub fn service(name: &str, selector: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"selector": selector, "ports": [{"name": "http", "port": 9080}]}
    })
}

pub fn virtual_service(name: &str, created: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": name, "namespace": NS, "creationTimestamp": created},
        "spec": spec
    })
}

pub fn destination_rule(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
        "metadata": {"name": name, "namespace": NS, "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": spec
    })
}

/// A DestinationRule for `host` with one subset per version, selecting `version: <v>`.
pub fn version_subsets(name: &str, host: &str, versions: &[&str]) -> Value {
    let subsets: Vec<Value> = versions
        .iter()
        .map(|v| json!({"name": v, "labels": {"version": v}}))
        .collect();
    destination_rule(name, json!({"host": host, "subsets": subsets}))
}

pub fn http_route(name: &str, created: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": NS, "creationTimestamp": created},
        "spec": spec
    })
}

/// `parentRefs` attaching a route to Service `name` (GAMMA).
pub fn service_parent(name: &str) -> Value {
    json!([{"group": "", "kind": "Service", "name": name}])
}

pub fn snapshot(objects: impl IntoIterator<Item = Value>) -> Snapshot {
    Snapshot::from_objects(NS, objects)
}

pub fn send(snapshot: &Snapshot, request: &HttpRequest, n: u64) -> RouteReport {
    route(snapshot, request, &RouteOptions::new(n).seed(7)).unwrap()
}

/// The bookinfo `reviews` service: v1, v2, v3 with two pods each.
pub fn bookinfo_reviews() -> Vec<Value> {
    let mut objs = vec![service("reviews", json!({"app": "reviews"}))];
    objs.extend(pods("reviews", "v1", "7f9c6b5d4", 2));
    objs.extend(pods("reviews", "v2", "5c8b7d9f6", 2));
    objs.extend(pods("reviews", "v3", "6d4f8c7b5", 2));
    objs
}

pub fn assert_within(actual: u64, expected: u64, tolerance: u64, what: &str) {
    assert!(
        actual.abs_diff(expected) <= tolerance,
        "{what}: {actual} is not within ±{tolerance} of {expected}"
    );
}
