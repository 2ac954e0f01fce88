//! The objects ramp creates and the patches it makes to the user's objects.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec, Service, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use ramp_api::Rollout;
use ramp_api::names::{
    CONTROLLED_BY_LABEL, GROUP, MANAGED_BY_LABEL, MANAGED_BY_ROLLOUT_LABEL, MANAGED_BY_VALUE,
    PAUSED_BY_RAMP_ANNOTATION, POD_TEMPLATE_HASH_LABEL, STABLE_SELECTOR_ANNOTATION, VERSION,
    canary_service_name, canary_workload_name,
};
use serde_json::{Value, json};

use crate::hash::template_revision;

/// Owner reference pointing at the Rollout (controller, blocks deletion).
pub(crate) fn rollout_owner_ref(ro: &Rollout) -> OwnerReference {
    OwnerReference {
        api_version: format!("{GROUP}/{VERSION}"),
        kind: "Rollout".into(),
        name: ro.metadata.name.clone().unwrap_or_default(),
        uid: ro.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Labels on every object ramp creates.
pub(crate) fn ramp_labels(rollout: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_ROLLOUT_LABEL.to_string(), rollout.to_string()),
        (MANAGED_BY_LABEL.to_string(), MANAGED_BY_VALUE.to_string()),
    ])
}

/// Whether an object was made by this Rollout (owner reference or ramp's label).
pub(crate) fn is_ours(meta: &ObjectMeta, ro: &Rollout) -> bool {
    let name = ro.metadata.name.as_deref().unwrap_or_default();
    let uid = ro.metadata.uid.as_deref();
    let owned = meta.owner_references.iter().flatten().any(|o| {
        o.kind == "Rollout"
            && o.name == name
            && (uid.is_none() || o.uid.is_empty() || Some(o.uid.as_str()) == uid)
    });
    let labelled = meta
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY_ROLLOUT_LABEL))
        .is_some_and(|v| v == name);
    owned || labelled
}

fn owned_by_deployment(rs: &ReplicaSet, d: &Deployment) -> bool {
    let name = d.metadata.name.as_deref().unwrap_or_default();
    rs.metadata.owner_references.iter().flatten().any(|o| {
        o.kind == "Deployment"
            && o.name == name
            && d.metadata.uid.as_deref().is_none_or(|uid| uid == o.uid)
    })
}

fn rs_revision_number(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("deployment.kubernetes.io/revision"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The ReplicaSets a Deployment owns, newest first.
pub(crate) fn replica_sets_of<'a>(all: &'a [ReplicaSet], d: &Deployment) -> Vec<&'a ReplicaSet> {
    let mut out: Vec<&ReplicaSet> = all.iter().filter(|rs| owned_by_deployment(rs, d)).collect();
    out.sort_by_key(|rs| std::cmp::Reverse(rs_revision_number(rs)));
    out
}

/// The revision a ReplicaSet runs: from its template, or from the
/// annotation a cache left when it dropped the template (see
/// [`crate::compact_replica_set`]).
pub(crate) fn rs_revision(rs: &ReplicaSet) -> Option<String> {
    if let Some(r) = rs
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(crate::COMPACT_REVISION_ANNOTATION))
    {
        return Some(r.clone());
    }
    rs.spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .map(template_revision)
}

/// The ReplicaSet of `owner` running `revision`.
pub(crate) fn find_rs<'a>(
    all: &'a [ReplicaSet],
    owner: &Deployment,
    revision: &str,
) -> Option<&'a ReplicaSet> {
    replica_sets_of(all, owner)
        .into_iter()
        .find(|rs| rs_revision(rs).as_deref() == Some(revision))
}

/// Whether a ReplicaSet has (or wants) pods.
pub(crate) fn rs_has_pods(rs: &ReplicaSet) -> bool {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0) > 0
        || rs.status.as_ref().is_some_and(|s| s.replicas > 0)
}

/// The `pod-template-hash` label of a ReplicaSet.
pub(crate) fn pod_hash_label(rs: &ReplicaSet) -> Option<String> {
    rs.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(POD_TEMPLATE_HASH_LABEL))
        .cloned()
        .or_else(|| {
            rs.spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .and_then(|t| t.metadata.as_ref())
                .and_then(|m| m.labels.as_ref())
                .and_then(|l| l.get(POD_TEMPLATE_HASH_LABEL))
                .cloned()
        })
}

/// The workload's pod template (empty if it has none).
pub(crate) fn template_of(d: &Deployment) -> PodTemplateSpec {
    d.spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default()
}

/// `spec.replicas` of a Deployment (Kubernetes' default 1).
pub(crate) fn spec_replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

pub(crate) fn is_paused(d: &Deployment) -> bool {
    d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false)
}

pub(crate) fn has_annotation(meta: &ObjectMeta, key: &str) -> bool {
    meta.annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(key))
}

pub(crate) fn label<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
}

/// The canary Deployment for a step: the workload's (new) pod template and
/// selector, both with ramp's rollout label added so that the canary
/// Deployment never selects the stable pods; owned by the Rollout.
pub(crate) fn canary_deployment(ro: &Rollout, workload: &Deployment, replicas: i32) -> Deployment {
    let rollout = ro.metadata.name.clone().unwrap_or_default();
    let workload_name = workload.metadata.name.clone().unwrap_or_default();
    let spec = workload.spec.clone().unwrap_or_default();
    let mut labels = workload.metadata.labels.clone().unwrap_or_default();
    labels.remove(CONTROLLED_BY_LABEL);
    labels.extend(ramp_labels(&rollout));

    let mut selector = spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .insert(MANAGED_BY_ROLLOUT_LABEL.into(), rollout.clone());
    let mut template = spec.template.clone();
    template
        .metadata
        .get_or_insert_with(ObjectMeta::default)
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(MANAGED_BY_ROLLOUT_LABEL.into(), rollout.clone());

    Deployment {
        metadata: ObjectMeta {
            name: Some(canary_workload_name(&workload_name)),
            namespace: ro.metadata.namespace.clone(),
            labels: Some(labels),
            owner_references: Some(vec![rollout_owner_ref(ro)]),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector,
            template,
            min_ready_seconds: spec.min_ready_seconds,
            progress_deadline_seconds: spec.progress_deadline_seconds,
            revision_history_limit: spec.revision_history_limit,
            strategy: spec.strategy.clone(),
            paused: None,
        }),
        status: None,
    }
}

fn labels_contain(
    have: Option<&BTreeMap<String, String>>,
    want: Option<&BTreeMap<String, String>>,
) -> bool {
    let empty = BTreeMap::new();
    let have = have.unwrap_or(&empty);
    want.unwrap_or(&empty)
        .iter()
        .all(|(k, v)| have.get(k) == Some(v))
}

fn has_owner(meta: &ObjectMeta, want: &ObjectMeta) -> bool {
    want.owner_references.iter().flatten().all(|w| {
        meta.owner_references
            .iter()
            .flatten()
            .any(|o| o.kind == w.kind && o.name == w.name && o.uid == w.uid)
    })
}

/// Whether the observed canary Deployment differs from the desired one in a
/// field ramp sets.
pub(crate) fn deployment_differs(observed: &Deployment, desired: &Deployment) -> bool {
    let (Some(o), Some(d)) = (observed.spec.as_ref(), desired.spec.as_ref()) else {
        return true;
    };
    o.replicas != d.replicas
        || o.template != d.template
        || o.selector != d.selector
        || o.paused.unwrap_or(false)
        || o.min_ready_seconds != d.min_ready_seconds
        || (d.strategy.is_some() && o.strategy != d.strategy)
        || !labels_contain(
            observed.metadata.labels.as_ref(),
            desired.metadata.labels.as_ref(),
        )
        || !has_owner(&observed.metadata, &desired.metadata)
}

/// The Deployment controller has seen the latest spec.
fn observed_latest(d: &Deployment) -> bool {
    let generation = d.metadata.generation.unwrap_or(0);
    d.status
        .as_ref()
        .and_then(|s| s.observed_generation)
        .unwrap_or(0)
        >= generation
}

/// All `replicas` pods run the latest template and are ready, and no old pod is left.
pub(crate) fn deployment_ready(d: &Deployment, replicas: i32) -> bool {
    let Some(status) = d.status.as_ref() else {
        return replicas == 0 && observed_latest(d);
    };
    observed_latest(d)
        && status.updated_replicas.unwrap_or(0) >= replicas
        && status.ready_replicas.unwrap_or(0) >= replicas
        && status.replicas.unwrap_or(0) == replicas
}

/// The Deployment runs its template everywhere, with every pod available.
pub(crate) fn rolled_out(d: &Deployment) -> bool {
    let replicas = spec_replicas(d);
    let Some(status) = d.status.as_ref() else {
        return false;
    };
    observed_latest(d)
        && status.updated_replicas.unwrap_or(0) >= replicas
        && status.available_replicas.unwrap_or(0) >= replicas
        && status.replicas.unwrap_or(0) == replicas
}

pub(crate) fn ready_replicas(d: &Deployment) -> i32 {
    d.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

pub(crate) fn updated_replicas(d: &Deployment) -> i32 {
    d.status
        .as_ref()
        .and_then(|s| s.updated_replicas)
        .unwrap_or(0)
}

/// The hash ramp added to the stable Service's selector, if any.
pub(crate) fn stable_isolation(svc: &Service) -> Option<&str> {
    svc.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(STABLE_SELECTOR_ANNOTATION))
        .map(String::as_str)
}

/// Whether the stable Service selects only pods with `hash`, as recorded by ramp.
pub(crate) fn isolated_with(svc: &Service, hash: &str) -> bool {
    stable_isolation(svc) == Some(hash)
        && svc
            .spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .and_then(|s| s.get(POD_TEMPLATE_HASH_LABEL))
            .is_some_and(|h| h == hash)
}

/// Merge patch narrowing the stable Service to the stable pods.
pub(crate) fn isolate_patch(hash: &str) -> Value {
    json!({
        "metadata": {"annotations": {STABLE_SELECTOR_ANNOTATION: hash}},
        "spec": {"selector": {POD_TEMPLATE_HASH_LABEL: hash}},
    })
}

/// Merge patch removing exactly what [`isolate_patch`] added.
pub(crate) fn unisolate_patch() -> Value {
    json!({
        "metadata": {"annotations": {STABLE_SELECTOR_ANNOTATION: null}},
        "spec": {"selector": {POD_TEMPLATE_HASH_LABEL: null}},
    })
}

/// The stable Service's selector without ramp's addition.
fn user_selector(svc: &Service) -> BTreeMap<String, String> {
    let mut sel = svc
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default();
    if stable_isolation(svc).is_some() {
        sel.remove(POD_TEMPLATE_HASH_LABEL);
    }
    sel
}

/// The canary Service: the stable Service's ports and selector, plus the
/// canary pods' `pod-template-hash`; a plain ClusterIP Service (no node ports,
/// no load balancer); owned by the Rollout.
pub(crate) fn canary_service(ro: &Rollout, stable: &Service, canary_pod_hash: &str) -> Service {
    let rollout = ro.metadata.name.clone().unwrap_or_default();
    let stable_name = stable.metadata.name.clone().unwrap_or_default();
    let spec = stable.spec.clone().unwrap_or_default();
    let mut selector = user_selector(stable);
    selector.insert(POD_TEMPLATE_HASH_LABEL.into(), canary_pod_hash.into());
    let ports = spec.ports.clone().map(|ports| {
        ports
            .into_iter()
            .map(|mut p| {
                p.node_port = None;
                p
            })
            .collect()
    });
    let mut labels = stable.metadata.labels.clone().unwrap_or_default();
    labels.extend(ramp_labels(&rollout));
    let headless = spec.cluster_ip.as_deref() == Some("None");
    Service {
        metadata: ObjectMeta {
            name: Some(canary_service_name(&stable_name)),
            namespace: ro.metadata.namespace.clone(),
            labels: Some(labels),
            owner_references: Some(vec![rollout_owner_ref(ro)]),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            cluster_ip: headless.then(|| "None".to_string()),
            ports,
            selector: Some(selector),
            publish_not_ready_addresses: spec.publish_not_ready_addresses,
            session_affinity: spec.session_affinity.clone(),
            session_affinity_config: spec.session_affinity_config.clone(),
            ip_families: spec.ip_families.clone(),
            ip_family_policy: spec.ip_family_policy.clone(),
            ..Default::default()
        }),
        status: None,
    }
}

/// Whether the observed canary Service differs from the desired one in a field ramp sets.
pub(crate) fn service_differs(observed: &Service, desired: &Service) -> bool {
    let (Some(o), Some(d)) = (observed.spec.as_ref(), desired.spec.as_ref()) else {
        return true;
    };
    let strip = |ports: &Option<Vec<k8s_openapi::api::core::v1::ServicePort>>| {
        ports.clone().map(|ps| {
            ps.into_iter()
                .map(|mut p| {
                    p.node_port = None;
                    p
                })
                .collect::<Vec<_>>()
        })
    };
    o.selector != d.selector
        || strip(&o.ports) != d.ports
        || o.type_.as_deref().unwrap_or("ClusterIP") != d.type_.as_deref().unwrap_or("ClusterIP")
        || !labels_contain(
            observed.metadata.labels.as_ref(),
            desired.metadata.labels.as_ref(),
        )
        || !has_owner(&observed.metadata, &desired.metadata)
}

/// Merge patch pausing the workload (and recording that ramp did).
pub(crate) fn pause_patch() -> Value {
    json!({
        "metadata": {"annotations": {PAUSED_BY_RAMP_ANNOTATION: "true"}},
        "spec": {"paused": true},
    })
}

/// Merge patch resuming the workload; optionally also releasing it from the Rollout.
pub(crate) fn resume_patch(release: bool) -> Value {
    let mut patch = json!({
        "metadata": {"annotations": {PAUSED_BY_RAMP_ANNOTATION: null}},
        "spec": {"paused": false},
    });
    if release {
        patch["metadata"]["labels"] = json!({CONTROLLED_BY_LABEL: null});
    }
    patch
}

/// Merge patch removing the controlled-by label only.
pub(crate) fn release_patch() -> Value {
    json!({"metadata": {"labels": {CONTROLLED_BY_LABEL: null}}})
}

/// Merge patch labelling the workload as controlled by the Rollout.
pub(crate) fn adopt_patch(rollout: &str) -> Value {
    json!({"metadata": {"labels": {CONTROLLED_BY_LABEL: rollout}}})
}

/// Merge patch setting a Deployment's replicas.
pub(crate) fn scale_patch(replicas: i32) -> Value {
    json!({"spec": {"replicas": replicas}})
}

/// Why canary pods are not ready, one line per distinct reason
/// (`pod x: ImagePullBackOff: message`).
pub(crate) fn pod_problems(pods: &[Pod]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for pod in pods {
        let name = pod.metadata.name.as_deref().unwrap_or("<pod>");
        let Some(status) = pod.status.as_ref() else {
            continue;
        };
        let mut reasons = Vec::new();
        for cs in status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten())
        {
            let state = cs.state.as_ref();
            if let Some(w) = state.and_then(|s| s.waiting.as_ref())
                && let Some(reason) = w.reason.as_deref()
                && reason != "ContainerCreating"
                && reason != "PodInitializing"
            {
                reasons.push(match &w.message {
                    Some(m) => format!("{reason}: {m}"),
                    None => reason.to_string(),
                });
            } else if let Some(t) = state.and_then(|s| s.terminated.as_ref())
                && t.exit_code != 0
            {
                reasons.push(format!(
                    "{} (exit code {})",
                    t.reason.as_deref().unwrap_or("Terminated"),
                    t.exit_code
                ));
            }
        }
        for c in status.conditions.iter().flatten() {
            if c.type_ == "PodScheduled" && c.status == "False" {
                reasons.push(format!(
                    "{}: {}",
                    c.reason.as_deref().unwrap_or("Unschedulable"),
                    c.message.as_deref().unwrap_or("")
                ));
            }
        }
        for r in reasons {
            let line = format!("pod {name}: {r}");
            if !out
                .iter()
                .any(|o| o.split_once(": ").map(|x| x.1) == line.split_once(": ").map(|x| x.1))
            {
                out.push(line);
            }
        }
    }
    out
}
