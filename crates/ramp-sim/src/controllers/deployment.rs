//! The Deployment controller: one ReplicaSet per pod template, rolling updates,
//! pausing, scaling, and the status `kubectl rollout status` reads.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::errors::ApiError;
use crate::resources::GroupResource;
use crate::store::{DeleteOptions, Delivered, Store, WriteOptions, meta_str, now_rfc3339};

use super::hash::{POD_TEMPLATE_HASH_LABEL, pod_template_hash};
use super::runner::{Key, Reconciler};
use super::util::{
    Children, condition, controller_of, controller_ref, deployments, find_condition, int_at,
    int_or_percent, is_deleting, key_of, merge_patch, replicasets, scale, write_status,
};

/// Annotation on ReplicaSets (and Deployments) holding the rollout revision.
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";

pub(crate) struct DeploymentController {
    template_delay: Duration,
    /// Per Deployment: the template hash last seen and when it was first seen.
    seen: HashMap<Key, (String, Instant)>,
    /// Per Deployment: when it last made progress (precise; the condition's
    /// timestamp only has seconds).
    progress: HashMap<Key, Instant>,
    /// ReplicaSets by their Deployment's uid.
    children: Children,
}

impl DeploymentController {
    pub fn new(template_delay: Duration) -> Self {
        DeploymentController {
            template_delay,
            seen: HashMap::new(),
            children: Children::default(),
            progress: HashMap::new(),
        }
    }
}

/// A ReplicaSet as the rollout sees it.
#[derive(Debug, Clone)]
struct Rs {
    obj: Value,
    name: String,
    revision: i64,
    spec: i64,
    replicas: i64,
    ready: i64,
    available: i64,
}

impl Rs {
    fn from(obj: &Value) -> Self {
        Rs {
            name: meta_str(obj, "name").to_owned(),
            revision: obj
                .pointer(&format!(
                    "/metadata/annotations/{}",
                    REVISION_ANNOTATION.replace('/', "~1")
                ))
                .and_then(Value::as_str)
                .and_then(|r| r.parse().ok())
                .unwrap_or(0),
            spec: int_at(obj, "/spec/replicas").unwrap_or(0),
            replicas: int_at(obj, "/status/replicas").unwrap_or(0),
            ready: int_at(obj, "/status/readyReplicas").unwrap_or(0),
            available: int_at(obj, "/status/availableReplicas").unwrap_or(0),
            obj: obj.clone(),
        }
    }
}

impl Reconciler for DeploymentController {
    const NAME: &'static str = "deployment";

    fn watches(&self) -> Vec<GroupResource> {
        vec![deployments(), replicasets()]
    }

    fn keys_for(&mut self, _store: &Store, index: usize, d: &Delivered) -> Vec<Key> {
        let obj = &d.event.object;
        if index == 0 {
            return vec![key_of(obj)];
        }
        self.children.observe(d);
        let mut keys = Vec::new();
        for o in std::iter::once(obj).chain(d.event.previous.as_ref()) {
            if let Some(("Deployment", name, _)) = controller_of(o) {
                keys.push((meta_str(o, "namespace").to_owned(), name.to_owned()));
            }
        }
        keys.dedup();
        keys
    }

    fn reconcile(&mut self, store: &Store, key: &Key) -> Result<Option<Duration>, ApiError> {
        let d = match store.get(&deployments(), Some(&key.0), &key.1) {
            Ok(d) => d,
            Err(e) if e.is_not_found() => {
                self.seen.remove(key);
                self.progress.remove(key);
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if is_deleting(&d) {
            return Ok(None);
        }
        let template = d
            .pointer("/spec/template")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let hash = pod_template_hash(&template);

        // A template change is noticed only after a short delay, as in a real
        // cluster, so a controller pausing the Deployment right after can win.
        let now = Instant::now();
        let first_sight = !self.seen.contains_key(key);
        let entry = self.seen.entry(key.clone()).or_insert_with(|| {
            (
                hash.clone(),
                now.checked_sub(self.template_delay).unwrap_or(now),
            )
        });
        if entry.0 != hash {
            *entry = (hash.clone(), now);
        }
        let noticed_at = entry.1 + self.template_delay;
        if !first_sight && now < noticed_at {
            return Ok(Some(noticed_at - now));
        }

        let uid = meta_str(&d, "uid");
        let mut all: Vec<Rs> = self
            .children
            .owned_by(store, &replicasets(), &key.0, uid)?
            .iter()
            .filter(|r| !is_deleting(r))
            .map(|r| Rs::from(r))
            .collect();
        all.sort_by(|a, b| (a.revision, &a.name).cmp(&(b.revision, &b.name)));
        let desired = int_at(&d, "/spec/replicas").unwrap_or(1).max(0);
        let paused = d
            .pointer("/spec/paused")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let recreate = d.pointer("/spec/strategy/type").and_then(Value::as_str) == Some("Recreate");
        let (max_surge, max_unavailable) = if recreate {
            (0, 0)
        } else {
            let ru = d.pointer("/spec/strategy/rollingUpdate");
            let surge = int_or_percent(ru.and_then(|r| r.get("maxSurge")), desired, true, 1);
            let mut unavail =
                int_or_percent(ru.and_then(|r| r.get("maxUnavailable")), desired, false, 0);
            if surge == 0 && unavail == 0 {
                unavail = 1;
            }
            (surge, unavail)
        };
        let new_idx = all.iter().position(|r| {
            r.obj
                .pointer(&format!("/metadata/labels/{POD_TEMPLATE_HASH_LABEL}"))
                .and_then(Value::as_str)
                == Some(hash.as_str())
        });
        let mut created_new = None;

        if paused {
            // No progress toward a new template; a lone ReplicaSet still follows scaling.
            let active: Vec<usize> = (0..all.len()).filter(|i| all[*i].spec > 0).collect();
            if let [only] = active.as_slice() {
                scale(store, &all[*only].obj, desired)?;
            }
        } else {
            let max_revision = all.iter().map(|r| r.revision).max().unwrap_or(0);
            let new_idx = match new_idx {
                Some(i) => {
                    if all[i].revision < max_revision {
                        // Rolling back to an older template makes it the newest revision.
                        merge_patch(
                            store,
                            &replicasets(),
                            &all[i].obj,
                            json!({"metadata": {"annotations": {REVISION_ANNOTATION: (max_revision + 1).to_string()}}}),
                        )?;
                        return Ok(Some(Duration::ZERO));
                    }
                    i
                }
                None => {
                    let total: i64 = all.iter().map(|r| r.spec).sum();
                    let initial = if recreate {
                        0
                    } else if total == 0 {
                        desired
                    } else {
                        (desired + max_surge - total).clamp(0, desired)
                    };
                    let rs = new_replica_set(&d, &hash, initial, max_revision + 1);
                    let w = match store.create(
                        &replicasets(),
                        Some(&key.0),
                        rs,
                        &WriteOptions::default(),
                    ) {
                        Ok(w) => w,
                        Err(e) if e.code == 409 => {
                            return adopt(store, &d, &key.0, &format!("{}-{hash}", key.1));
                        }
                        Err(e) => return Err(e),
                    };
                    created_new = Some(meta_str(&w.object, "name").to_owned());
                    self.children
                        .insert(&key.0, meta_str(&w.object, "name"), uid);
                    all.push(Rs::from(&w.object));
                    all.len() - 1
                }
            };
            if recreate {
                rollout_recreate(store, &all, new_idx, desired)?;
            } else {
                rollout_rolling(store, &all, new_idx, desired, max_surge, max_unavailable)?;
            }
            cleanup_history(store, &d, &all, new_idx)?;
        }

        // Status, from the ReplicaSets as they are now.
        let all: Vec<Rs> = self
            .children
            .owned_by(store, &replicasets(), &key.0, uid)?
            .iter()
            .filter(|r| !is_deleting(r))
            .map(|r| Rs::from(r))
            .collect();
        let new_rs = all.iter().find(|r| {
            r.obj
                .pointer(&format!("/metadata/labels/{POD_TEMPLATE_HASH_LABEL}"))
                .and_then(Value::as_str)
                == Some(hash.as_str())
        });
        self.update_status(
            store,
            key,
            &d,
            &all,
            new_rs,
            desired,
            max_unavailable,
            paused,
            created_new,
        )
    }
}

impl DeploymentController {
    #[allow(clippy::too_many_arguments)]
    fn update_status(
        &mut self,
        store: &Store,
        key: &Key,
        d: &Value,
        all: &[Rs],
        new_rs: Option<&Rs>,
        desired: i64,
        max_unavailable: i64,
        paused: bool,
        created_new: Option<String>,
    ) -> Result<Option<Duration>, ApiError> {
        let replicas: i64 = all.iter().map(|r| r.replicas).sum();
        let updated = new_rs.map_or(0, |r| r.replicas);
        let ready: i64 = all.iter().map(|r| r.ready).sum();
        let available: i64 = all.iter().map(|r| r.available).sum();
        let total_spec: i64 = all.iter().map(|r| r.spec).sum();
        let unavailable = (total_spec - available).max(0);
        let generation = d
            .pointer("/metadata/generation")
            .cloned()
            .unwrap_or(json!(1));
        let old = d.get("status").cloned().unwrap_or_else(|| json!({}));
        let ts = now_rfc3339();
        let new_name = new_rs.map(|r| r.name.clone()).unwrap_or_default();

        let prev_avail = find_condition(d, "Available");
        let available_cond = if available >= desired - max_unavailable {
            condition(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
                prev_avail,
                &ts,
                true,
            )
        } else {
            condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
                prev_avail,
                &ts,
                true,
            )
        };

        let prev = find_condition(d, "Progressing");
        let prev_reason = prev
            .and_then(|p| p.get("reason"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let complete = new_rs.is_some()
            && updated == desired
            && replicas == desired
            && available == desired
            && new_rs.is_some_and(|r| r.spec == desired);
        let old_int = |f: &str| old.get(f).and_then(Value::as_i64).unwrap_or(0);
        let progressed = updated > old_int("updatedReplicas")
            || replicas < old_int("replicas")
            || ready > old_int("readyReplicas")
            || available > old_int("availableReplicas")
            || old.get("observedGeneration") != Some(&generation);
        let deadline = Duration::from_secs(
            int_at(d, "/spec/progressDeadlineSeconds")
                .unwrap_or(600)
                .max(0) as u64,
        );
        let now = Instant::now();
        let since = self.progress.get(key).copied().unwrap_or(now);
        let mut progressing = |status: &str, reason: &str, message: String, moved: bool| {
            if moved {
                self.progress.insert(key.clone(), now);
            }
            condition("Progressing", status, reason, &message, prev, &ts, true)
        };
        let mut wake = None;
        let progressing_cond = if paused {
            if prev_reason == "DeploymentPaused" {
                prev.cloned().unwrap_or(Value::Null)
            } else {
                progressing(
                    "Unknown",
                    "DeploymentPaused",
                    "Deployment is paused".into(),
                    false,
                )
            }
        } else if prev_reason == "DeploymentPaused" {
            progressing(
                "Unknown",
                "DeploymentResumed",
                "Deployment is resumed".into(),
                true,
            )
        } else if let Some(name) = created_new {
            progressing(
                "True",
                "NewReplicaSetCreated",
                format!("Created new replica set \"{name}\""),
                true,
            )
        } else if complete {
            progressing(
                "True",
                "NewReplicaSetAvailable",
                format!("ReplicaSet \"{new_name}\" has successfully progressed."),
                true,
            )
        } else if progressed || prev.is_none() {
            progressing(
                "True",
                "ReplicaSetUpdated",
                format!("ReplicaSet \"{new_name}\" is progressing."),
                true,
            )
        } else {
            if prev_reason == "ProgressDeadlineExceeded" {
                prev.cloned().unwrap_or(Value::Null)
            } else if now >= since + deadline {
                progressing(
                    "False",
                    "ProgressDeadlineExceeded",
                    format!("ReplicaSet \"{new_name}\" has timed out progressing."),
                    false,
                )
            } else {
                wake = Some(since + deadline - now + Duration::from_millis(5));
                prev.cloned().unwrap_or(Value::Null)
            }
        };
        // A rollout in progress times out unless something moves: check again at the deadline.
        let cond_reason = progressing_cond
            .get("reason")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !paused
            && !complete
            && wake.is_none()
            && matches!(
                cond_reason,
                "ReplicaSetUpdated" | "NewReplicaSetCreated" | "DeploymentResumed"
            )
        {
            wake = Some(deadline + Duration::from_millis(5));
        }

        let mut status = old.clone();
        if let Some(s) = status.as_object_mut() {
            s.insert("observedGeneration".into(), generation);
            s.insert("replicas".into(), json!(replicas));
            s.insert("updatedReplicas".into(), json!(updated));
            s.insert("readyReplicas".into(), json!(ready));
            s.insert("availableReplicas".into(), json!(available));
            s.insert("unavailableReplicas".into(), json!(unavailable));
            s.insert(
                "conditions".into(),
                json!([available_cond, progressing_cond]),
            );
        }
        write_status(store, &deployments(), d, status)?;
        if let Some(rs) = new_rs {
            let want = rs.revision.to_string();
            let have = d
                .pointer(&format!(
                    "/metadata/annotations/{}",
                    REVISION_ANNOTATION.replace('/', "~1")
                ))
                .and_then(Value::as_str);
            if rs.revision > 0 && have != Some(want.as_str()) {
                let fresh = store.get(&deployments(), Some(&key.0), &key.1)?;
                merge_patch(
                    store,
                    &deployments(),
                    &fresh,
                    json!({"metadata": {"annotations": {REVISION_ANNOTATION: want}}}),
                )?;
            }
        }
        Ok(wake)
    }
}

/// The ReplicaSet we meant to create exists already: adopt it if nobody
/// controls it, else report the clash.
fn adopt(store: &Store, d: &Value, ns: &str, name: &str) -> Result<Option<Duration>, ApiError> {
    let rs = store.get(&replicasets(), Some(ns), name)?;
    match controller_of(&rs) {
        Some((_, _, uid)) if uid == meta_str(d, "uid") => Ok(Some(Duration::ZERO)),
        Some((kind, owner, _)) => Err(ApiError::already_exists("apps", "replicasets", name)
            .with_message(format!(
                "ReplicaSet {name} is controlled by {kind} {owner}, not by Deployment {}",
                meta_str(d, "name")
            ))),
        None => {
            let mut refs = rs
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            refs.push(controller_ref(d));
            merge_patch(
                store,
                &replicasets(),
                &rs,
                json!({"metadata": {"resourceVersion": meta_str(&rs, "resourceVersion"), "ownerReferences": refs}}),
            )?;
            Ok(Some(Duration::ZERO))
        }
    }
}

/// The ReplicaSet for `hash`: `<deployment>-<hash>`, the template with the
/// `pod-template-hash` label, the selector narrowed to it, owned by the Deployment.
fn new_replica_set(d: &Value, hash: &str, replicas: i64, revision: i64) -> Value {
    let name = format!("{}-{hash}", meta_str(d, "name"));
    let mut template = d
        .pointer("/spec/template")
        .cloned()
        .unwrap_or_else(|| json!({}));
    template["metadata"]["labels"][POD_TEMPLATE_HASH_LABEL] = json!(hash);
    let mut selector = d
        .pointer("/spec/selector")
        .cloned()
        .unwrap_or_else(|| json!({}));
    selector["matchLabels"][POD_TEMPLATE_HASH_LABEL] = json!(hash);
    let mut labels = template
        .pointer("/metadata/labels")
        .cloned()
        .unwrap_or_else(|| json!({}));
    labels[POD_TEMPLATE_HASH_LABEL] = json!(hash);
    let mut spec = json!({"replicas": replicas, "selector": selector, "template": template});
    if let Some(m) = d.pointer("/spec/minReadySeconds") {
        spec["minReadySeconds"] = m.clone();
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": name,
            "namespace": meta_str(d, "namespace"),
            "labels": labels,
            "annotations": {
                REVISION_ANNOTATION: revision.to_string(),
                "deployment.kubernetes.io/desired-replicas": int_at(d, "/spec/replicas").unwrap_or(1).to_string(),
            },
            "ownerReferences": [controller_ref(d)],
        },
        "spec": spec,
    })
}

/// One step of a rolling update: scale the new ReplicaSet up within
/// `desired + maxSurge` pods, else scale old ones down while keeping
/// `desired - maxUnavailable` available.
fn rollout_rolling(
    store: &Store,
    all: &[Rs],
    new_idx: usize,
    desired: i64,
    max_surge: i64,
    max_unavailable: i64,
) -> Result<(), ApiError> {
    let new = &all[new_idx];
    let olds: Vec<&Rs> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != new_idx)
        .map(|(_, r)| r)
        .collect();
    let total: i64 = all.iter().map(|r| r.spec).sum();
    let old_total: i64 = olds.iter().map(|r| r.spec).sum();

    // Scale the new ReplicaSet.
    if new.spec > desired {
        return scale(store, &new.obj, desired);
    }
    if old_total == 0 {
        return scale(store, &new.obj, desired);
    }
    if new.spec < desired {
        let room = desired + max_surge - total;
        if room > 0 {
            return scale(store, &new.obj, new.spec + room.min(desired - new.spec));
        }
    }

    // Scale old ReplicaSets down, oldest first.
    let min_available = desired - max_unavailable;
    let new_unavailable = (new.spec - new.available).max(0);
    let max_scaled_down = total - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Ok(());
    }
    let mut sizes: Vec<i64> = olds.iter().map(|r| r.spec).collect();
    // First the old pods that are not available anyway.
    let mut cleaned = 0;
    for (i, r) in olds.iter().enumerate() {
        if cleaned >= max_scaled_down {
            break;
        }
        let unhealthy = (r.spec - r.available).max(0);
        let n = unhealthy.min(max_scaled_down - cleaned);
        sizes[i] -= n;
        cleaned += n;
    }
    // Then available ones, as far as availability allows.
    let available: i64 = all.iter().map(|r| r.available).sum();
    let mut budget = (available - min_available)
        .max(0)
        .min(max_scaled_down - cleaned);
    for size in sizes.iter_mut() {
        if budget <= 0 {
            break;
        }
        let n = (*size).min(budget);
        *size -= n;
        budget -= n;
    }
    for (r, size) in olds.iter().zip(sizes) {
        scale(store, &r.obj, size)?;
    }
    Ok(())
}

/// Recreate: old pods all gone before the new ReplicaSet is scaled up.
fn rollout_recreate(
    store: &Store,
    all: &[Rs],
    new_idx: usize,
    desired: i64,
) -> Result<(), ApiError> {
    let mut old_running = 0;
    for (i, r) in all.iter().enumerate() {
        if i != new_idx {
            scale(store, &r.obj, 0)?;
            old_running += r.replicas;
        }
    }
    if old_running == 0 {
        scale(store, &all[new_idx].obj, desired)?;
    }
    Ok(())
}

/// Deletes the oldest scaled-down ReplicaSets beyond `revisionHistoryLimit`.
fn cleanup_history(store: &Store, d: &Value, all: &[Rs], new_idx: usize) -> Result<(), ApiError> {
    let limit = int_at(d, "/spec/revisionHistoryLimit").unwrap_or(10).max(0) as usize;
    let idle: Vec<&Rs> = all
        .iter()
        .enumerate()
        .filter(|(i, r)| *i != new_idx && r.spec == 0 && r.replicas == 0)
        .map(|(_, r)| r)
        .collect();
    if idle.len() <= limit {
        return Ok(());
    }
    for r in &idle[..idle.len() - limit] {
        match store.delete(
            &replicasets(),
            Some(meta_str(d, "namespace")),
            &r.name,
            &DeleteOptions::default(),
        ) {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
