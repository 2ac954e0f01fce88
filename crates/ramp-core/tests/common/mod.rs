//! A small simulated cluster for driving the planner: it executes a plan's
//! actions the way the operator would (stopping at the first failure, status
//! written only after all actions succeeded), and plays the Deployment
//! controller (ReplicaSets labelled with `pod-template-hash`, pods becoming
//! ready), so tests can walk whole rollouts by calling `plan()` repeatedly.
#![allow(dead_code)]
// Test harness: panicking on a broken fixture is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec, ReplicaSetStatus,
};
use k8s_openapi::api::core::v1::{PodTemplateSpec, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use ramp_api::names::POD_TEMPLATE_HASH_LABEL;
use ramp_api::{CanaryStatus, Rollout, RolloutAction, RolloutPhase, StepState};
use ramp_core::{Action, Observed, Plan, plan, pod_template_hash};
use serde::de::DeserializeOwned;
use serde_json::Value;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn load<T: DeserializeOwned>(path: &Path) -> T {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn yaml<T: DeserializeOwned>(text: &str) -> T {
    serde_yaml::from_str(text).unwrap()
}

pub fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-06-01T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

#[derive(Clone, Debug)]
pub struct World {
    pub rollout: Rollout,
    pub deployments: BTreeMap<String, Deployment>,
    pub replica_sets: Vec<ReplicaSet>,
    pub services: BTreeMap<String, Service>,
    /// Routing objects by `Kind/name` (VirtualServices, DestinationRules,
    /// HTTPRoutes), referenced by the Rollout or not.
    pub routing: BTreeMap<String, Value>,
    pub now: DateTime<Utc>,
    /// Names of Deployments whose pods never become ready.
    pub unready: Vec<String>,
    counter: u64,
    pub plans: Vec<Plan>,
}

impl World {
    /// Loads `rollout.yaml`, `deployment.yaml`, `service.yaml` and every
    /// `virtualservice*.yaml`, `destinationrule*.yaml` and `httproute*.yaml`
    /// from a fixture directory, and settles it.
    pub fn load(dir: &str) -> World {
        let dir = fixtures().join(dir);
        let rollout: Rollout = load(&dir.join("rollout.yaml"));
        let deployment: Deployment = load(&dir.join("deployment.yaml"));
        let service: Service = load(&dir.join("service.yaml"));
        let mut vs_files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    ["virtualservice", "destinationrule", "httproute"]
                        .iter()
                        .any(|k| n.starts_with(k))
                })
            })
            .collect();
        vs_files.sort();
        let routing: Vec<Value> = vs_files.iter().map(|p| load(p)).collect();
        World::new(rollout, deployment, vec![service], routing)
    }

    pub fn new(
        rollout: Rollout,
        workload: Deployment,
        services: Vec<Service>,
        routing: Vec<Value>,
    ) -> World {
        let mut w = World {
            rollout,
            deployments: BTreeMap::new(),
            replica_sets: Vec::new(),
            services: BTreeMap::new(),
            routing: BTreeMap::new(),
            now: t0(),
            unready: Vec::new(),
            counter: 100,
            plans: Vec::new(),
        };
        w.create_deployment(workload);
        for s in services {
            w.create_service(s);
        }
        for mut r in routing {
            let key = routing_key(
                r["kind"].as_str().unwrap(),
                r["metadata"]["name"].as_str().unwrap(),
            );
            r["metadata"]["resourceVersion"] = Value::String(w.next_rv());
            w.routing.insert(key, r);
        }
        w.settle();
        w
    }

    fn next_rv(&mut self) -> String {
        self.counter += 1;
        self.counter.to_string()
    }

    pub fn workload_name(&self) -> String {
        self.rollout.spec.workload_ref.name.clone()
    }

    pub fn workload(&self) -> &Deployment {
        &self.deployments[&self.workload_name()]
    }

    pub fn canary(&self) -> Option<&Deployment> {
        self.deployments
            .get(&format!("{}-canary", self.workload_name()))
    }

    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.get(name)
    }

    pub fn vs(&self, name: &str) -> &Value {
        self.object("VirtualService", name)
    }

    pub fn object(&self, kind: &str, name: &str) -> &Value {
        &self.routing[&routing_key(kind, name)]
    }

    pub fn cs(&self) -> CanaryStatus {
        self.rollout
            .status
            .as_ref()
            .and_then(|s| s.canary_status.clone())
            .unwrap_or_default()
    }

    pub fn phase(&self) -> Option<RolloutPhase> {
        self.rollout.status.as_ref().and_then(|s| s.phase)
    }

    pub fn message(&self) -> String {
        self.rollout
            .status
            .as_ref()
            .and_then(|s| s.message.clone())
            .unwrap_or_default()
    }

    pub fn observe(&self) -> Observed {
        let mut o = Observed::new(self.rollout.clone(), self.now);
        o.workload = self.deployments.get(&self.workload_name()).cloned();
        o.canary_workload = self.canary().cloned();
        o.replica_sets = self.replica_sets.clone();
        if let Some(canary) = self.rollout.spec.strategy.canary.as_ref()
            && let Some(tr) = canary.traffic_routings.first()
        {
            o.stable_service = self.services.get(&tr.service).cloned();
            o.canary_service = self
                .services
                .get(&format!("{}-canary", tr.service))
                .cloned();
            for r in &tr.routing_refs() {
                if let Some(obj) = self.routing.get(&routing_key(&r.kind, &r.name)) {
                    o.routing_objects.push(obj.clone());
                }
            }
        }
        o.namespace_virtual_services = self
            .routing
            .values()
            .filter(|v| v["kind"] == "VirtualService")
            .cloned()
            .collect();
        o
    }

    // ----- the executor -------------------------------------------------------

    /// Carry out actions in order; stop at the first failure.
    pub fn apply_actions(&mut self, actions: &[Action]) -> Result<(), String> {
        for a in actions {
            self.apply_action(a)?;
        }
        Ok(())
    }

    /// Actions, then status (only if every action succeeded).
    pub fn apply(&mut self, plan: &Plan) -> Result<(), String> {
        self.apply_actions(&plan.actions)?;
        self.rollout.status = Some(plan.status.clone());
        Ok(())
    }

    fn apply_action(&mut self, a: &Action) -> Result<(), String> {
        match a {
            Action::ApplyDeployment(d) => {
                let name = d.metadata.name.clone().unwrap();
                match self.deployments.get(&name).cloned() {
                    None => self.create_deployment((**d).clone()),
                    Some(mut live) => {
                        let old_spec = live.spec.clone();
                        let mut labels = live.metadata.labels.clone().unwrap_or_default();
                        labels.extend(d.metadata.labels.clone().unwrap_or_default());
                        live.metadata.labels = Some(labels);
                        live.metadata.owner_references = d.metadata.owner_references.clone();
                        live.spec = d.spec.clone();
                        if live.spec != old_spec {
                            live.metadata.generation =
                                Some(live.metadata.generation.unwrap_or(0) + 1);
                        }
                        live.metadata.resource_version = Some(self.next_rv());
                        self.deployments.insert(name, live);
                    }
                }
            }
            Action::PatchDeployment { name, patch } => {
                let live = self
                    .deployments
                    .get(name)
                    .ok_or_else(|| format!("patch: Deployment {name} not found"))?
                    .clone();
                let old_spec = live.spec.clone();
                let mut v = serde_json::to_value(&live).unwrap();
                json_patch::merge(&mut v, patch);
                let mut d: Deployment = serde_json::from_value(v).map_err(|e| e.to_string())?;
                if d.spec != old_spec {
                    d.metadata.generation = Some(d.metadata.generation.unwrap_or(0) + 1);
                }
                d.metadata.resource_version = Some(self.next_rv());
                self.deployments.insert(name.clone(), d);
            }
            Action::DeleteDeployment { name } => {
                if let Some(d) = self.deployments.remove(name) {
                    let uid = d.metadata.uid.clone().unwrap_or_default();
                    self.replica_sets.retain(|rs| {
                        !rs.metadata
                            .owner_references
                            .iter()
                            .flatten()
                            .any(|o| o.uid == uid)
                    });
                }
            }
            Action::ApplyService(s) => {
                let name = s.metadata.name.clone().unwrap();
                match self.services.get(&name).cloned() {
                    None => self.create_service((**s).clone()),
                    Some(mut live) => {
                        let mut spec = s.spec.clone().unwrap_or_default();
                        let old = live.spec.clone().unwrap_or_default();
                        spec.cluster_ip = old.cluster_ip;
                        spec.cluster_ips = old.cluster_ips;
                        live.spec = Some(spec);
                        let mut labels = live.metadata.labels.clone().unwrap_or_default();
                        labels.extend(s.metadata.labels.clone().unwrap_or_default());
                        live.metadata.labels = Some(labels);
                        live.metadata.owner_references = s.metadata.owner_references.clone();
                        live.metadata.resource_version = Some(self.next_rv());
                        self.services.insert(name, live);
                    }
                }
            }
            Action::PatchService { name, patch } => {
                let live = self
                    .services
                    .get(name)
                    .ok_or_else(|| format!("patch: Service {name} not found"))?;
                let mut v = serde_json::to_value(live).unwrap();
                json_patch::merge(&mut v, patch);
                let mut s: Service = serde_json::from_value(v).map_err(|e| e.to_string())?;
                s.metadata.resource_version = Some(self.next_rv());
                self.services.insert(name.clone(), s);
            }
            Action::DeleteService { name } => {
                self.services.remove(name);
            }
            Action::PatchRouting {
                kind, name, patch, ..
            } => {
                let rv = self.next_rv();
                let obj = self
                    .routing
                    .get_mut(&routing_key(kind, name))
                    .ok_or_else(|| format!("patch: {kind} {name} not found"))?;
                let mut copy = obj.clone();
                json_patch::patch(&mut copy, patch)
                    .map_err(|e| format!("patch {kind} {name}: {e}"))?;
                copy["metadata"]["resourceVersion"] = Value::String(rv);
                *obj = copy;
            }
        }
        Ok(())
    }

    fn create_deployment(&mut self, mut d: Deployment) {
        let name = d.metadata.name.clone().unwrap();
        d.metadata.uid = Some(format!("uid-{name}"));
        d.metadata.generation = Some(1);
        d.metadata.resource_version = Some(self.next_rv());
        d.metadata.namespace.get_or_insert_with(|| "default".into());
        self.deployments.insert(name, d);
    }

    fn create_service(&mut self, mut s: Service) {
        let name = s.metadata.name.clone().unwrap();
        let ip = format!("10.96.1.{}", self.services.len() + 20);
        let spec = s.spec.get_or_insert_with(Default::default);
        if spec.cluster_ip.is_none() {
            spec.cluster_ip = Some(ip.clone());
            spec.cluster_ips = Some(vec![ip]);
        }
        s.metadata.resource_version = Some(self.next_rv());
        self.services.insert(name, s);
    }

    // ----- the Deployment controller -------------------------------------------

    /// Play the Deployment controller until quiet: unpaused Deployments get a
    /// ReplicaSet for their template (labelled with `pod_template_hash`, as
    /// ramp's embedded cluster does) scaled to spec.replicas, old ones scaled
    /// to 0; paused ones only have their status refreshed.
    pub fn settle(&mut self) {
        let names: Vec<String> = self.deployments.keys().cloned().collect();
        for name in names {
            let d = self.deployments[&name].clone();
            let spec = d.spec.clone().unwrap();
            let replicas = spec.replicas.unwrap_or(1);
            let hash = pod_template_hash(&spec.template);
            let uid = d.metadata.uid.clone().unwrap();
            let ready_ok = !self.unready.contains(&name);
            if !spec.paused.unwrap_or(false) {
                let rs_name = format!("{name}-{hash}");
                if !self
                    .replica_sets
                    .iter()
                    .any(|rs| rs.metadata.name.as_deref() == Some(&rs_name))
                {
                    let revision = self
                        .replica_sets
                        .iter()
                        .filter(|rs| owned(rs, &uid))
                        .count()
                        + 1;
                    let mut template: PodTemplateSpec = spec.template.clone();
                    let meta = template.metadata.get_or_insert_with(Default::default);
                    meta.labels
                        .get_or_insert_with(BTreeMap::new)
                        .insert(POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
                    let mut labels = meta.labels.clone().unwrap();
                    labels.insert(POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
                    self.replica_sets.push(ReplicaSet {
                        metadata: ObjectMeta {
                            name: Some(rs_name.clone()),
                            namespace: d.metadata.namespace.clone(),
                            labels: Some(labels),
                            annotations: Some(BTreeMap::from([(
                                "deployment.kubernetes.io/revision".to_string(),
                                revision.to_string(),
                            )])),
                            owner_references: Some(vec![OwnerReference {
                                api_version: "apps/v1".into(),
                                kind: "Deployment".into(),
                                name: name.clone(),
                                uid: uid.clone(),
                                controller: Some(true),
                                block_owner_deletion: Some(true),
                            }]),
                            ..Default::default()
                        },
                        spec: Some(ReplicaSetSpec {
                            replicas: Some(0),
                            selector: spec.selector.clone(),
                            template: Some(template),
                            ..Default::default()
                        }),
                        status: None,
                    });
                }
                for rs in self.replica_sets.iter_mut().filter(|rs| owned(rs, &uid)) {
                    let current = rs.metadata.name.as_deref() == Some(&rs_name);
                    let n = if current { replicas } else { 0 };
                    rs.spec.as_mut().unwrap().replicas = Some(n);
                    rs.status = Some(ReplicaSetStatus {
                        replicas: n,
                        ready_replicas: Some(if ready_ok { n } else { 0 }),
                        available_replicas: Some(if ready_ok { n } else { 0 }),
                        ..Default::default()
                    });
                }
            }
            // Status from the ReplicaSets.
            let mut total = 0;
            let mut updated = 0;
            let mut ready = 0;
            for rs in self.replica_sets.iter().filter(|rs| owned(rs, &uid)) {
                let n = rs.spec.as_ref().unwrap().replicas.unwrap_or(0);
                total += n;
                ready += rs
                    .status
                    .as_ref()
                    .and_then(|s| s.ready_replicas)
                    .unwrap_or(0);
                if ramp_core::template_revision(
                    rs.spec.as_ref().unwrap().template.as_ref().unwrap(),
                ) == hash
                {
                    updated += n;
                }
            }
            let d = self.deployments.get_mut(&name).unwrap();
            d.status = Some(DeploymentStatus {
                observed_generation: d.metadata.generation,
                replicas: Some(total),
                updated_replicas: Some(updated),
                ready_replicas: Some(ready),
                available_replicas: Some(ready),
                ..Default::default()
            });
        }
    }

    // ----- driving -------------------------------------------------------------

    /// Plan once, carry the plan out, let the cluster settle.
    pub fn step(&mut self) -> Plan {
        let p = plan(&self.observe());
        self.apply(&p)
            .unwrap_or_else(|e| panic!("executing {:?} failed: {e}", p.actions));
        self.settle();
        self.plans.push(p.clone());
        p
    }

    /// Step until `done`, advancing the clock by `requeue_after` whenever the
    /// planner has nothing to do but wait. Panics when stuck.
    pub fn run_until(&mut self, what: &str, done: impl Fn(&World) -> bool) {
        for _ in 0..200 {
            if done(self) {
                return;
            }
            let before = self.rollout.status.clone();
            let p = self.step();
            assert_one_transition(before.as_ref(), &p);
            if p.actions.is_empty() && Some(&p.status) == before.as_ref() {
                match p.requeue_after {
                    Some(d) => self.advance(d),
                    None => {
                        if done(self) {
                            return;
                        }
                        panic!(
                            "stuck before {what}: status {:#?}\nlast plan {p:#?}",
                            self.rollout.status
                        )
                    }
                }
            }
        }
        panic!(
            "{what} not reached after 200 plans: {:#?}",
            self.rollout.status
        );
    }

    pub fn advance(&mut self, d: Duration) {
        self.now += chrono::Duration::from_std(d).unwrap();
    }

    pub fn run_to_step(&mut self, index: i32, state: StepState) {
        self.run_until(&format!("step {index} {state}"), |w| {
            let cs = w.cs();
            w.phase() == Some(RolloutPhase::Progressing)
                && cs.current_step_index == index
                && cs.current_step_state == state
                && cs.finalising_step.is_none()
        });
    }

    pub fn run_to_phase(&mut self, phase: RolloutPhase) {
        self.run_until(&format!("phase {phase}"), |w| {
            w.phase() == Some(phase)
                && w.cs()
                    .finalising_step
                    .is_none_or(|f| f == ramp_api::FinalisingStep::Done)
        });
    }

    /// Approve the current step as `kubectl ramp approve` would (StepPaused → StepReady).
    pub fn approve(&mut self) {
        let status = self.rollout.status.as_mut().unwrap();
        let cs = status.canary_status.as_mut().unwrap();
        assert_eq!(
            cs.current_step_state,
            StepState::StepPaused,
            "approve needs StepPaused"
        );
        cs.current_step_state = StepState::StepReady;
    }

    pub fn request(&mut self, action: RolloutAction) {
        let status = self.rollout.status.get_or_insert_with(Default::default);
        status
            .canary_status
            .get_or_insert_with(Default::default)
            .requested_action = Some(action);
    }

    /// Change the workload's container env `version` and pause it, as the
    /// user's edit plus ramp's mutating webhook would.
    pub fn set_version(&mut self, version: &str) {
        self.edit_workload(|d| {
            let spec = d.spec.as_mut().unwrap();
            spec.paused = Some(true);
            let c = &mut spec.template.spec.as_mut().unwrap().containers[0];
            for e in c.env.get_or_insert_with(Vec::new).iter_mut() {
                if e.name == "version" {
                    e.value = Some(version.to_string());
                }
            }
        });
    }

    pub fn edit_workload(&mut self, f: impl FnOnce(&mut Deployment)) {
        let name = self.workload_name();
        let rv = self.next_rv();
        let d = self.deployments.get_mut(&name).unwrap();
        let old = d.spec.clone();
        f(d);
        if d.spec != old {
            d.metadata.generation = Some(d.metadata.generation.unwrap_or(0) + 1);
        }
        d.metadata.resource_version = Some(rv);
        self.settle();
    }

    /// Edit a routing object as someone else would (bumps its resourceVersion).
    pub fn edit_routing(&mut self, name: &str, f: impl FnOnce(&mut Value)) {
        self.edit_object("VirtualService", name, f);
    }

    /// Edit any routing object as someone else would.
    pub fn edit_object(&mut self, kind: &str, name: &str, f: impl FnOnce(&mut Value)) {
        let rv = self.next_rv();
        let obj = self.routing.get_mut(&routing_key(kind, name)).unwrap();
        f(obj);
        obj["metadata"]["resourceVersion"] = Value::String(rv);
    }

    /// pod-template-hash of the pods of a Deployment's current template.
    pub fn pod_hash_of(&self, deployment: &str) -> String {
        pod_template_hash(&self.deployments[deployment].spec.as_ref().unwrap().template)
    }

    pub fn ready_pods_of_revision(&self, deployment: &str, revision: &str) -> i32 {
        let uid = self.deployments[deployment].metadata.uid.clone().unwrap();
        self.replica_sets
            .iter()
            .filter(|rs| owned(rs, &uid))
            .filter(|rs| {
                ramp_core::template_revision(rs.spec.as_ref().unwrap().template.as_ref().unwrap())
                    == revision
            })
            .map(|rs| {
                rs.status
                    .as_ref()
                    .and_then(|s| s.ready_replicas)
                    .unwrap_or(0)
            })
            .sum()
    }
}

/// Key of a routing object in [`World::routing`].
pub fn routing_key(kind: &str, name: &str) -> String {
    format!("{kind}/{name}")
}

fn owned(rs: &ReplicaSet, uid: &str) -> bool {
    rs.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == uid)
}

/// The planner's contract: at most one step-state transition per call
/// (StepReady → next step's StepUpgrade counts as one).
pub fn assert_one_transition(before: Option<&ramp_api::RolloutStatus>, p: &Plan) {
    let Some(before) = before.and_then(|s| s.canary_status.as_ref()) else {
        return;
    };
    let Some(after) = p.status.canary_status.as_ref() else {
        return;
    };
    if before.current_step_index == after.current_step_index {
        return;
    }
    let advanced = after.current_step_index == before.current_step_index + 1
        && before.current_step_state == StepState::StepReady
        && after.current_step_state == StepState::StepUpgrade;
    let restarted =
        after.current_step_index == 1 && after.current_step_state == StepState::BeforeStepUpgrade;
    assert!(
        advanced || restarted,
        "more than one transition in one plan: {before:?} -> {after:?}"
    );
}

/// Substitute `${NAME}` placeholders in a YAML value.
pub fn substitute(v: &mut Value, vars: &BTreeMap<&str, String>) {
    match v {
        Value::String(s) => {
            for (k, val) in vars {
                *s = s.replace(&format!("${{{k}}}"), val);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| substitute(x, vars)),
        Value::Object(o) => o.values_mut().for_each(|x| substitute(x, vars)),
        _ => {}
    }
}

/// The routing a step asks for, as the planner reads it.
pub fn step_routing(step: &ramp_api::CanaryStep) -> ramp_core::routing::StepRouting {
    ramp_core::routing::StepRouting {
        weight: step
            .traffic
            .as_deref()
            .map(|t| ramp_api::validation::parse_percent(t).unwrap()),
        matches: step.matches.clone(),
        mirror: step.mirror.as_ref().map(|m| m.percent),
        request_header_modifier: step.request_header_modifier.clone(),
    }
}

/// A routing object's whole life through ramp: the step's object carries
/// the original in its annotation (user labels and annotations kept), and
/// restoring it gives back the original object exactly — also when the
/// restore is carried out as the JSON patch the operator sends.
pub fn assert_restores_exactly(
    provider: &dyn ramp_core::routing::TrafficProvider,
    api_version: &str,
    kind: &str,
    spec: &Value,
    step: &ramp_core::routing::StepRouting,
    ctx: &ramp_core::routing::RoutingContext,
    case: &str,
) {
    use ramp_core::routing::{OriginalConfiguration, desired_object, routing_patch};
    let object = serde_json::json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {
            "name": "obj",
            "namespace": "default",
            "resourceVersion": "7",
            "labels": {"team": "reviews"},
            "annotations": {"note": "kept as is"},
        },
        "spec": spec,
    });
    let original = OriginalConfiguration::from_object(&object);
    let stepped = desired_object(provider, &object, &original, Some(step), ctx)
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    assert_eq!(
        stepped["metadata"]["labels"], object["metadata"]["labels"],
        "{case}"
    );
    assert_eq!(
        stepped["metadata"]["annotations"]["note"], "kept as is",
        "{case}"
    );
    let saved = OriginalConfiguration::saved(&stepped)
        .unwrap()
        .unwrap_or_else(|| panic!("{case}: the stepped object carries no saved original"));
    assert_eq!(saved, original, "{case}: saved original");
    let restored = desired_object(provider, &stepped, &saved, None, ctx).unwrap();
    assert_eq!(restored, object, "{case}: restored object");
    let patch = routing_patch(&stepped, &restored).unwrap();
    let mut patched = stepped.clone();
    json_patch::patch(&mut patched, &patch).unwrap();
    assert_eq!(patched, object, "{case}: restored by patch");
}
