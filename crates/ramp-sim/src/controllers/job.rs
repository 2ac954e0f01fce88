//! The Job controller: runs a Job's pods to completion.
//!
//! Keeps up to `parallelism` pods running (never more than the completions
//! still needed), counts the pods that the kubelet reports `Succeeded` or
//! `Failed`, and finishes the Job the way kube-controller-manager does:
//! `SuccessCriteriaMet` then `Complete` once `completions` pods succeeded, or
//! `FailureTarget` then `Failed` (reason `BackoffLimitExceeded`) once more than
//! `backoffLimit` pods failed. A suspended Job gets no pods (and its running
//! pods are deleted). Pods are `<job>-<5 chars>`, owned by the Job, with the
//! template's labels (which include the server-generated
//! `batch.kubernetes.io/controller-uid` and `batch.kubernetes.io/job-name`).
//!
//! Simplified: `Indexed` completion mode, pod failure policies, success
//! policies, `activeDeadlineSeconds` and `ttlSecondsAfterFinished` are not
//! acted on; finished pods are kept (as with the default pod GC threshold).

use std::time::Duration;

use serde_json::{Value, json};

use crate::errors::ApiError;
use crate::resources::GroupResource;
use crate::store::{DeleteOptions, Delivered, Store, WriteOptions, meta_str, now_rfc3339};

use super::runner::{Key, Reconciler};
use super::util::{
    Children, controller_of, controller_ref, gr, int_at, is_deleting, key_of, pods, write_status,
};

pub(crate) fn jobs() -> GroupResource {
    gr("batch", "jobs")
}

/// The Job controller: pods of each Job, by its uid.
#[derive(Default)]
pub(crate) struct JobController {
    children: Children,
}

fn phase(pod: &Value) -> &str {
    pod.pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("Pending")
}

fn has_condition(obj: &Value, ty: &str) -> bool {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some(ty)
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

fn condition(ty: &str, reason: &str, message: &str, now: &str) -> Value {
    json!({"type": ty, "status": "True", "reason": reason, "message": message,
           "lastProbeTime": now, "lastTransitionTime": now})
}

impl Reconciler for JobController {
    const NAME: &'static str = "job";

    fn watches(&self) -> Vec<GroupResource> {
        vec![jobs(), pods()]
    }

    fn keys_for(&mut self, _store: &Store, index: usize, d: &Delivered) -> Vec<Key> {
        let obj = &d.event.object;
        if index == 0 {
            return vec![key_of(obj)];
        }
        self.children.observe(d);
        let mut keys = Vec::new();
        for o in std::iter::once(obj).chain(d.event.previous.as_ref()) {
            if let Some(("Job", name, _)) = controller_of(o) {
                keys.push((meta_str(o, "namespace").to_owned(), name.to_owned()));
            }
        }
        keys.dedup();
        keys
    }

    fn reconcile(&mut self, store: &Store, key: &Key) -> Result<Option<Duration>, ApiError> {
        let job = match store.get(&jobs(), Some(&key.0), &key.1) {
            Ok(j) => j,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        if is_deleting(&job) {
            return Ok(None);
        }
        let uid = meta_str(&job, "uid").to_owned();
        let owned = self.children.owned_by(store, &pods(), &key.0, &uid)?;
        let finished = has_condition(&job, "Complete") || has_condition(&job, "Failed");
        let succeeded = owned.iter().filter(|p| phase(p) == "Succeeded").count() as i64;
        let failed = owned.iter().filter(|p| phase(p) == "Failed").count() as i64;
        let running = |p: &&std::sync::Arc<Value>| {
            !is_deleting(p) && !matches!(phase(p), "Succeeded" | "Failed")
        };
        let mut active = owned.iter().filter(running).count();

        let completions = int_at(&job, "/spec/completions");
        let parallelism = int_at(&job, "/spec/parallelism").unwrap_or(1).max(0);
        let backoff_limit = int_at(&job, "/spec/backoffLimit").unwrap_or(6).max(0);
        let suspended = job.pointer("/spec/suspend") == Some(&json!(true));
        let done = completions.map_or(succeeded > 0 && active == 0, |c| succeeded >= c);
        let failed_out = failed > backoff_limit;

        if !finished && !done && !failed_out {
            let wanted = if suspended {
                0
            } else {
                let left = completions.map_or(parallelism, |c| (c - succeeded).max(0));
                parallelism.min(left)
            };
            let wanted = usize::try_from(wanted).unwrap_or(0);
            while active < wanted {
                let w = store.create(
                    &pods(),
                    Some(&key.0),
                    new_pod(&job),
                    &WriteOptions::default(),
                )?;
                self.children
                    .insert(&key.0, meta_str(&w.object, "name"), &uid);
                active += 1;
            }
            if active > wanted {
                for p in owned.iter().filter(running) {
                    match store.delete(
                        &pods(),
                        Some(&key.0),
                        meta_str(p, "name"),
                        &DeleteOptions::default(),
                    ) {
                        Ok(_) => {}
                        Err(e) if e.is_not_found() => {}
                        Err(e) => return Err(e),
                    }
                }
                active = 0;
            }
        }

        let now = now_rfc3339();
        let mut status = job.get("status").cloned().unwrap_or_else(|| json!({}));
        let Some(s) = status.as_object_mut() else {
            return Ok(None);
        };
        if !suspended && !s.contains_key("startTime") {
            s.insert("startTime".into(), json!(now));
        }
        s.insert("active".into(), json!(active));
        s.insert("succeeded".into(), json!(succeeded));
        s.insert("failed".into(), json!(failed));
        s.insert(
            "ready".into(),
            json!(owned.iter().filter(|p| super::kubelet::is_ready(p)).count()),
        );
        s.insert("terminating".into(), json!(0));
        s.insert("uncountedTerminatedPods".into(), json!({}));
        if !finished {
            let conditions = s
                .entry("conditions")
                .or_insert_with(|| json!([]))
                .as_array_mut()
                .map(std::mem::take)
                .unwrap_or_default();
            let mut conditions: Vec<Value> = conditions
                .into_iter()
                .filter(|c| c.get("type") != Some(&json!("Suspended")))
                .collect();
            if done {
                conditions.push(condition(
                    "SuccessCriteriaMet",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                    &now,
                ));
                conditions.push(condition(
                    "Complete",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                    &now,
                ));
                s.insert("completionTime".into(), json!(now));
                s.insert("active".into(), json!(0));
            } else if failed_out {
                let msg = "Job has reached the specified backoff limit";
                conditions.push(condition(
                    "FailureTarget",
                    "BackoffLimitExceeded",
                    msg,
                    &now,
                ));
                conditions.push(condition("Failed", "BackoffLimitExceeded", msg, &now));
                s.insert("active".into(), json!(0));
            } else if suspended {
                conditions.push(condition(
                    "Suspended",
                    "JobSuspended",
                    "Job suspended",
                    &now,
                ));
            }
            if conditions.is_empty() {
                s.remove("conditions");
            } else {
                s.insert("conditions".into(), Value::Array(conditions));
            }
        }
        write_status(store, &jobs(), &job, status)?;
        Ok(None)
    }
}

/// A pod from the Job's template: `generateName: <job>-`, the template's labels
/// and annotations, owned by the Job.
fn new_pod(job: &Value) -> Value {
    let template = job
        .pointer("/spec/template")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let mut metadata = json!({
        "generateName": format!("{}-", meta_str(job, "name")),
        "namespace": meta_str(job, "namespace"),
        "ownerReferences": [controller_ref(job)],
    });
    for field in ["labels", "annotations"] {
        if let Some(v) = template.pointer(&format!("/metadata/{field}")) {
            metadata[field] = v.clone();
        }
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
    })
}
