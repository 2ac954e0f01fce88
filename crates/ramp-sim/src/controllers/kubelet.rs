//! The kubelet: starts every pod, and after a delay makes it Running and Ready —
//! or, for failure scenarios, never Ready.
//!
//! - A pod whose container image contains `:bad` stays `Pending` with its
//!   container waiting in `ImagePullBackOff`.
//! - A pod annotated `sim.ramp.dev/never-ready: "true"` (the annotation comes
//!   from the pod template) runs but never becomes Ready; its container waits
//!   in `CrashLoopBackOff`.
//! - `sim.ramp.dev/ready-after-ms: "<n>"` overrides the delay for one pod.
//! - A pod whose `restartPolicy` is `Never` or `OnFailure` (a Job's, or
//!   `kubectl run --restart=Never`) runs to completion after the delay: its
//!   containers terminate with exit code 0 and it is `Succeeded`, or with
//!   `sim.ramp.dev/exit-code: "<n>"` (n > 0) it is `Failed`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::errors::ApiError;
use crate::resources::GroupResource;
use crate::store::{Delivered, EventKind, Store, meta_str, now_rfc3339};

use super::runner::{Key, Reconciler};
use super::util::{find_condition, is_deleting, key_of, pods, write_status};

/// Annotation: this pod never becomes Ready.
pub const NEVER_READY_ANNOTATION: &str = "sim.ramp.dev/never-ready";
/// Annotation: milliseconds from start until this pod is Ready.
pub const READY_AFTER_MS_ANNOTATION: &str = "sim.ramp.dev/ready-after-ms";
/// Annotation: the exit code of a run-to-completion pod's containers (default 0).
pub const EXIT_CODE_ANNOTATION: &str = "sim.ramp.dev/exit-code";
/// The image tag marker that makes image pulls fail.
pub const BAD_IMAGE_MARKER: &str = ":bad";
/// The single node every pod runs on.
pub const NODE_NAME: &str = "sim-node";

/// Is the pod Ready (and not being deleted)?
pub fn is_ready(pod: &Value) -> bool {
    crate::mesh::pod_is_ready(pod)
}

pub(crate) struct Kubelet {
    ready_delay: Duration,
    /// When this kubelet first saw each pod, by uid.
    started: HashMap<String, Instant>,
}

static NEXT_IP: AtomicU32 = AtomicU32::new(2);

/// A fresh pod IP in 10.244.0.0/16.
fn next_pod_ip() -> String {
    let n = NEXT_IP.fetch_add(1, Ordering::Relaxed) % 65_000 + 2;
    format!("10.244.{}.{}", n / 256, n % 256)
}

impl Kubelet {
    pub fn new(ready_delay: Duration) -> Self {
        Kubelet {
            ready_delay,
            started: HashMap::new(),
        }
    }
}

enum Fate {
    Ready,
    Completes(i32),
    BadImage(String, String),
    NeverReady,
}

fn containers(pod: &Value) -> Vec<(String, String)> {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("app")
                    .to_owned(),
                c.get("image")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

fn annotation<'a>(pod: &'a Value, key: &str) -> Option<&'a str> {
    pod.pointer("/metadata/annotations")?.get(key)?.as_str()
}

fn fate(pod: &Value) -> Fate {
    if let Some((name, image)) = containers(pod)
        .into_iter()
        .find(|(_, i)| i.contains(BAD_IMAGE_MARKER))
    {
        return Fate::BadImage(name, image);
    }
    if annotation(pod, NEVER_READY_ANNOTATION) == Some("true") {
        return Fate::NeverReady;
    }
    if matches!(
        pod.pointer("/spec/restartPolicy").and_then(Value::as_str),
        Some("Never" | "OnFailure")
    ) {
        let code = annotation(pod, EXIT_CODE_ANNOTATION)
            .and_then(|c| c.trim().parse::<i32>().ok())
            .unwrap_or(0);
        return Fate::Completes(code);
    }
    Fate::Ready
}

impl Reconciler for Kubelet {
    const NAME: &'static str = "kubelet";

    fn watches(&self) -> Vec<GroupResource> {
        vec![pods()]
    }

    fn keys_for(&mut self, _store: &Store, _index: usize, d: &Delivered) -> Vec<Key> {
        if d.kind == EventKind::Deleted {
            self.started.remove(meta_str(&d.event.object, "uid"));
            return Vec::new();
        }
        vec![key_of(&d.event.object)]
    }

    fn reconcile(&mut self, store: &Store, key: &Key) -> Result<Option<Duration>, ApiError> {
        let pod = match store.get(&pods(), Some(&key.0), &key.1) {
            Ok(p) => p,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        if is_deleting(&pod) {
            return Ok(None);
        }
        // Done once the Ready condition has been decided (by us or by a test).
        if find_condition(&pod, "Ready")
            .and_then(|c| c.get("reason"))
            .and_then(Value::as_str)
            != Some("Starting")
            && find_condition(&pod, "Ready").is_some()
        {
            return Ok(None);
        }
        let uid = meta_str(&pod, "uid").to_owned();
        let now = Instant::now();
        let started = *self.started.entry(uid).or_insert(now);
        let delay = annotation(&pod, READY_AFTER_MS_ANNOTATION)
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_millis)
            .unwrap_or(self.ready_delay);
        let ts = now_rfc3339();
        let containers = containers(&pod);
        let names: Vec<&str> = containers.iter().map(|(n, _)| n.as_str()).collect();
        let pod_ip = pod
            .pointer("/status/podIP")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(next_pod_ip);
        let unready_msg = format!("containers with unready status: [{}]", names.join(" "));
        let base = |phase: &str, ready: bool, statuses: Vec<Value>| {
            let (st, reason, msg) = if ready {
                ("True", "", "")
            } else {
                ("False", "ContainersNotReady", unready_msg.as_str())
            };
            let mut ready_cond = json!({"type": "Ready", "status": st, "lastProbeTime": null, "lastTransitionTime": ts});
            let mut cready_cond = json!({"type": "ContainersReady", "status": st, "lastProbeTime": null, "lastTransitionTime": ts});
            if !ready {
                for c in [&mut ready_cond, &mut cready_cond] {
                    c["reason"] = json!(reason);
                    c["message"] = json!(msg);
                }
            }
            json!({
                "phase": phase,
                "hostIP": "10.0.0.1",
                "podIP": pod_ip,
                "podIPs": [{"ip": pod_ip}],
                "startTime": pod.pointer("/status/startTime").cloned().unwrap_or(json!(ts)),
                "qosClass": "BestEffort",
                "conditions": [
                    {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": ts},
                    {"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": ts},
                    cready_cond,
                    ready_cond,
                ],
                "containerStatuses": statuses,
            })
        };
        let waiting = |reason: &str, message: &str| -> Vec<Value> {
            containers
                .iter()
                .map(|(n, i)| {
                    json!({"name": n, "image": i, "imageID": "", "ready": false, "started": false, "restartCount": 0,
                           "state": {"waiting": {"reason": reason, "message": message}}})
                })
                .collect()
        };

        if now < started + delay {
            // Starting: scheduled, containers being created.
            let mut status = base("Pending", false, waiting("ContainerCreating", ""));
            if let Some(c) = status.pointer_mut("/conditions/3") {
                c["reason"] = json!("Starting");
            }
            if pod.pointer("/status/podIP").is_none() {
                write_status(store, &pods(), &pod, status)?;
            }
            return Ok(Some(started + delay - now));
        }

        let status = match fate(&pod) {
            Fate::Ready => {
                let running: Vec<Value> = containers
                    .iter()
                    .map(|(n, i)| {
                        json!({"name": n, "image": i, "imageID": format!("sim://{i}"),
                               "containerID": format!("sim://{}-{n}", meta_str(&pod, "uid")),
                               "ready": true, "started": true, "restartCount": 0,
                               "state": {"running": {"startedAt": ts}}})
                    })
                    .collect();
                base("Running", true, running)
            }
            Fate::Completes(code) => {
                let reason = if code == 0 { "Completed" } else { "Error" };
                let finished: Vec<Value> = containers
                    .iter()
                    .map(|(n, i)| {
                        json!({"name": n, "image": i, "imageID": format!("sim://{i}"),
                               "containerID": format!("sim://{}-{n}", meta_str(&pod, "uid")),
                               "ready": false, "started": false, "restartCount": 0,
                               "state": {"terminated": {"exitCode": code, "reason": reason,
                                         "startedAt": ts, "finishedAt": ts}}})
                    })
                    .collect();
                let phase = if code == 0 { "Succeeded" } else { "Failed" };
                let mut status = base(phase, false, finished);
                for i in [2, 3] {
                    if let Some(c) = status.pointer_mut(&format!("/conditions/{i}")) {
                        c["reason"] = json!("PodCompleted");
                        if let Some(o) = c.as_object_mut() {
                            o.remove("message");
                        }
                    }
                }
                status
            }
            Fate::BadImage(name, image) => {
                let mut statuses = waiting("ContainerCreating", "");
                for s in &mut statuses {
                    if s["name"] == json!(name) {
                        s["state"] = json!({"waiting": {"reason": "ImagePullBackOff",
                            "message": format!("Back-off pulling image \"{image}\"")}});
                    }
                }
                base("Pending", false, statuses)
            }
            Fate::NeverReady => {
                let msg = format!(
                    "back-off 10s restarting failed container in pod {}",
                    meta_str(&pod, "name")
                );
                let mut statuses = waiting("CrashLoopBackOff", &msg);
                for s in &mut statuses {
                    s["restartCount"] = json!(1);
                }
                base("Running", false, statuses)
            }
        };
        write_status(store, &pods(), &pod, status)?;
        Ok(None)
    }
}
