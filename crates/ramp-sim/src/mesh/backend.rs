//! Services, their selectors and the ready pods behind them.

use std::collections::BTreeMap;

use serde_json::Value;

use super::json::{Ctx, name_of};
use super::plan::Target;
use super::report::{NONE_LABEL, PodRef};
use super::{MeshError, Snapshot};

/// Label counted in `byVersion`.
pub const VERSION_LABEL: &str = "version";
/// Label counted in `byPodTemplateHash`.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

#[derive(Debug, Clone)]
struct PodInfo {
    name: String,
    labels: BTreeMap<String, String>,
    ready: bool,
    ip: Option<String>,
}

/// Is this pod ready to serve: condition `Ready` is `True` and it is not being deleted.
pub fn pod_is_ready(pod: &Value) -> bool {
    if pod
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
    {
        return false;
    }
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| {
            c.get("type").and_then(Value::as_str) == Some("Ready")
                && c.get("status").and_then(Value::as_str) == Some("True")
        })
}

/// The namespace's Services and pods, indexed for routing.
pub(crate) struct World<'a> {
    pub ns: &'a str,
    pub snapshot: &'a Snapshot,
    services: BTreeMap<&'a str, &'a Value>,
    pods: Vec<PodInfo>,
}

impl<'a> World<'a> {
    pub fn new(snapshot: &'a Snapshot) -> Self {
        let services = snapshot
            .services
            .iter()
            .filter_map(|s| name_of(s).map(|n| (n, s)))
            .collect();
        let mut pods: Vec<PodInfo> = snapshot
            .pods
            .iter()
            .filter_map(|p| {
                let name = name_of(p)?.to_owned();
                let labels = p
                    .pointer("/metadata/labels")
                    .and_then(Value::as_object)
                    .map(|m| {
                        m.iter()
                            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                            .collect()
                    })
                    .unwrap_or_default();
                Some(PodInfo {
                    name,
                    labels,
                    ready: pod_is_ready(p),
                    ip: p
                        .pointer("/status/podIP")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                })
            })
            .collect();
        pods.sort_by(|a, b| a.name.cmp(&b.name));
        World {
            ns: &snapshot.namespace,
            snapshot,
            services,
            pods,
        }
    }

    /// A request addressed to a pod IP goes to that pod, whatever routes its
    /// Services have (a sidecar passes it through). `None` when no pod has it.
    pub fn pod_ip_target(&self, ip: &str) -> Option<Target> {
        let p = self.pods.iter().find(|p| p.ip.as_deref() == Some(ip))?;
        if !p.ready {
            return Some(Target::fail(
                503,
                format!("no healthy upstream: pod {} is not ready", p.name),
            ));
        }
        Some(Target::Pods {
            destination: format!("pod/{}", p.name),
            pods: vec![PodRef {
                name: p.name.clone(),
                version: label_or_none(&p.labels, VERSION_LABEL),
                hash: label_or_none(&p.labels, POD_TEMPLATE_HASH_LABEL),
            }],
            next: 0,
        })
    }

    pub fn service(&self, name: &str) -> Option<&'a Value> {
        self.services.get(name).copied()
    }

    /// The first port of a Service, used as the request port when none is given.
    pub fn first_port(&self, name: &str) -> Option<u16> {
        self.service(name)?
            .pointer("/spec/ports/0/port")
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
    }

    /// The ready pods behind Service `name`, further restricted to `subset`
    /// labels. `destination` names the target in the report; a missing
    /// Service fails with `missing_status` (503 for Istio, 500 for Gateway API).
    pub fn service_target(
        &self,
        name: &str,
        subset: &[(String, String)],
        destination: String,
        missing_status: u16,
    ) -> Result<Target, MeshError> {
        let Some(svc) = self.service(name) else {
            return Ok(Target::fail(
                missing_status,
                format!("no Service {name} in namespace {}", self.ns),
            ));
        };
        let ctx = Ctx::new("Service", svc);
        let selector = ctx.string_map(svc.pointer("/spec/selector"), "spec.selector")?;
        if selector.is_empty() {
            return Ok(Target::fail(
                503,
                format!("Service {name} has no selector, so no endpoints"),
            ));
        }
        let pods: Vec<PodRef> = self
            .pods
            .iter()
            .filter(|p| p.ready)
            .filter(|p| {
                selector
                    .iter()
                    .chain(subset)
                    .all(|(k, v)| p.labels.get(k) == Some(v))
            })
            .map(|p| PodRef {
                name: p.name.clone(),
                version: label_or_none(&p.labels, VERSION_LABEL),
                hash: label_or_none(&p.labels, POD_TEMPLATE_HASH_LABEL),
            })
            .collect();
        if pods.is_empty() {
            let what = if subset.is_empty() {
                format!("Service {name}")
            } else {
                let labels: Vec<String> = subset.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("Service {name} with subset labels {}", labels.join(","))
            };
            return Ok(Target::fail(
                503,
                format!("no healthy upstream: no ready pods for {what}"),
            ));
        }
        Ok(Target::Pods {
            destination,
            pods,
            next: 0,
        })
    }
}

fn label_or_none(labels: &BTreeMap<String, String>, key: &str) -> String {
    labels
        .get(key)
        .cloned()
        .unwrap_or_else(|| NONE_LABEL.to_owned())
}
