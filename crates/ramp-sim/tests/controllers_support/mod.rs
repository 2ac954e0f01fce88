//! Helpers for controller tests against an in-process store.
#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use ramp_sim::Store;
use ramp_sim::controllers::{ControllerConfig, Controllers};
use ramp_sim::resources::GroupResource;
use ramp_sim::store::{ListOptions, PatchType, WriteOptions};
use serde_json::{Value, json};
use tokio::time::Instant;

pub const NS: &str = "default";

pub fn deployments() -> GroupResource {
    GroupResource::new("apps", "deployments")
}
pub fn replicasets() -> GroupResource {
    GroupResource::new("apps", "replicasets")
}
pub fn pods() -> GroupResource {
    GroupResource::new("", "pods")
}
pub fn services() -> GroupResource {
    GroupResource::new("", "services")
}
pub fn endpoints() -> GroupResource {
    GroupResource::new("", "endpoints")
}

pub fn start() -> (Store, Controllers) {
    let store = Store::new();
    let c = Controllers::start(store.clone(), ControllerConfig::default());
    (store, c)
}

pub fn deployment(name: &str, replicas: i64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]}
            }
        }
    })
}

pub fn create(store: &Store, gr: &GroupResource, obj: Value) -> Arc<Value> {
    store
        .create(gr, Some(NS), obj, &WriteOptions::default())
        .unwrap()
        .object
}

pub fn patch(store: &Store, gr: &GroupResource, name: &str, patch: Value) -> Arc<Value> {
    store
        .patch(
            gr,
            Some(NS),
            name,
            PatchType::Merge,
            &patch,
            None,
            &WriteOptions::default(),
        )
        .unwrap()
        .object
}

pub fn get(store: &Store, gr: &GroupResource, name: &str) -> Option<Arc<Value>> {
    store.get(gr, Some(NS), name).ok()
}

pub fn list(store: &Store, gr: &GroupResource, selector: &str) -> Vec<Arc<Value>> {
    store
        .list(
            gr,
            Some(NS),
            &ListOptions {
                label_selector: Some(selector.to_owned()),
                ..Default::default()
            },
        )
        .unwrap()
        .items
}

pub fn name(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or_default()
}

pub fn label<'a>(obj: &'a Value, key: &str) -> &'a str {
    obj["metadata"]["labels"][key].as_str().unwrap_or_default()
}

pub fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

pub fn ready(pod: &Value) -> bool {
    ramp_sim::mesh::pod_is_ready(pod)
}

/// Polls `f` every 10 ms until it returns Some, or fails after `timeout`.
pub async fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The rollout is complete as `kubectl rollout status` judges it.
pub fn rollout_complete(d: &Value) -> bool {
    let desired = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let s = &d["status"];
    s["observedGeneration"] == d["metadata"]["generation"]
        && s["updatedReplicas"].as_i64() == Some(desired)
        && s["replicas"].as_i64() == Some(desired)
        && s["availableReplicas"].as_i64() == Some(desired)
        && condition(d, "Progressing").is_some_and(|c| c["reason"] == "NewReplicaSetAvailable")
}

pub async fn wait_complete(store: &Store, deployment: &str, timeout: Duration) -> Arc<Value> {
    eventually(
        timeout,
        &format!("Deployment {deployment} to complete its rollout"),
        || get(store, &deployments(), deployment).filter(|d| rollout_complete(d)),
    )
    .await
}
