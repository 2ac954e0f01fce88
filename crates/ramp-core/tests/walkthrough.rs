//! Golden walk-through (Kruise Rollout's Istio guide): workload-demo v1 → v2
//! through a header step and two weight steps, driven by calling `plan()`
//! repeatedly against a simulated cluster. Expected states per step are YAML
//! fixtures under tests/fixtures/walkthrough/expected/.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns unwrap fixtures too

mod common;

use std::collections::BTreeMap;

use common::{World, fixtures, load, substitute};
use pretty_assertions::assert_eq;
use ramp_api::names::{
    CONTROLLED_BY_LABEL, ORIGINAL_SPEC_ANNOTATION, PAUSED_BY_RAMP_ANNOTATION,
    STABLE_SELECTOR_ANNOTATION,
};
use ramp_api::{RolloutPhase, StepState};
use ramp_core::routing::OriginalConfiguration;
use ramp_core::{Action, template_revision};
use serde_json::{Value, json};

fn selector(w: &World, name: &str) -> Value {
    match w.service(name) {
        Some(s) => serde_json::to_value(s.spec.as_ref().unwrap().selector.clone()).unwrap(),
        None => Value::Null,
    }
}

/// Compare the world with `expected/<file>`.
fn check(w: &World, file: &str, original_vs: &Value) {
    let mut expected: Value = load(&fixtures().join("walkthrough/expected").join(file));
    let stable_hash = w
        .replica_sets
        .iter()
        .find(|rs| {
            rs.metadata
                .name
                .as_deref()
                .unwrap()
                .starts_with("workload-demo-")
        })
        .and_then(|rs| {
            rs.metadata
                .labels
                .as_ref()
                .unwrap()
                .get("pod-template-hash")
                .cloned()
        })
        .unwrap();
    let canary_hash = w
        .canary()
        .map(|_| w.pod_hash_of("workload-demo-canary"))
        .unwrap_or_default();
    substitute(
        &mut expected,
        &BTreeMap::from([("STABLE_HASH", stable_hash), ("CANARY_HASH", canary_hash)]),
    );

    let status = serde_json::to_value(w.rollout.status.as_ref().unwrap()).unwrap();
    for (k, v) in expected["status"].as_object().unwrap() {
        let actual = status
            .get(k)
            .or_else(|| status["canaryStatus"].get(k))
            .cloned()
            .unwrap_or(Value::Null);
        assert_eq!(&actual, v, "{file}: status field {k}");
    }

    let vs = w.vs("vs-demo");
    assert_eq!(
        vs["spec"], expected["virtualServiceSpec"],
        "{file}: VirtualService spec"
    );
    let saved = OriginalConfiguration::saved(vs).unwrap();
    if vs["spec"] == original_vs["spec"] {
        assert_eq!(saved, None, "{file}: annotation must be gone once restored");
        assert_eq!(
            vs["metadata"]["annotations"],
            original_vs["metadata"]["annotations"]
        );
        assert_eq!(vs["metadata"]["labels"], original_vs["metadata"]["labels"]);
    } else {
        let saved = saved.expect("a changed VirtualService carries its original");
        assert_eq!(saved, OriginalConfiguration::from_object(original_vs));
        // The user's labels and annotations stay on the object meanwhile.
        assert_eq!(vs["metadata"]["labels"], original_vs["metadata"]["labels"]);
        assert_eq!(vs["metadata"]["annotations"]["note"], "kept as is");
    }

    assert_eq!(
        selector(w, "service-demo"),
        expected["stableServiceSelector"],
        "{file}: stable selector"
    );
    assert_eq!(
        selector(w, "service-demo-canary"),
        expected["canaryServiceSelector"],
        "{file}: canary selector"
    );
    let replicas = w
        .canary()
        .map(|c| json!(c.spec.as_ref().unwrap().replicas))
        .unwrap_or(Value::Null);
    assert_eq!(
        replicas, expected["canaryReplicas"],
        "{file}: canary replicas"
    );
}

#[test]
fn walk_through_header_then_50_then_80_then_finish() {
    let mut w = World::load("walkthrough");
    let original_vs = w.vs("vs-demo").clone();
    let v1 = template_revision(&w.workload().spec.as_ref().unwrap().template);

    // First look: Healthy, the Deployment is adopted.
    w.run_to_phase(RolloutPhase::Healthy);
    assert_eq!(w.cs().stable_revision, v1);
    assert_eq!(
        w.workload().metadata.labels.as_ref().unwrap()[CONTROLLED_BY_LABEL],
        "rollouts-demo"
    );
    let quiet = w.step();
    assert!(
        quiet.actions.is_empty(),
        "a healthy rollout does nothing: {:?}",
        quiet.actions
    );

    // The user changes the template; the webhook pauses the Deployment.
    w.set_version("canary");
    let v2 = template_revision(&w.workload().spec.as_ref().unwrap().template);
    assert_ne!(v1, v2);
    let started = w.step();
    assert_eq!(w.phase(), Some(RolloutPhase::Progressing));
    assert_eq!(w.cs().canary_revision, v2);
    assert_eq!(w.cs().stable_revision, v1);
    assert!(started.events.iter().any(|e| e.reason == "RolloutStarted"));
    // Nothing but the status changes when the webhook already paused it.
    assert!(started.actions.is_empty(), "{:?}", started.actions);

    w.run_to_step(1, StepState::StepPaused);
    check(&w, "step1.yaml", &original_vs);
    assert_eq!(
        w.service("service-demo")
            .unwrap()
            .metadata
            .annotations
            .as_ref()
            .unwrap()[STABLE_SELECTOR_ANNOTATION],
        w.replica_sets[0].metadata.labels.as_ref().unwrap()["pod-template-hash"]
    );
    // The stable Deployment never started a pod of the new revision.
    assert_eq!(w.ready_pods_of_revision("workload-demo", &v2), 0);
    assert_eq!(w.ready_pods_of_revision("workload-demo", &v1), 3);
    assert!(
        w.message().contains("waiting for approval"),
        "{}",
        w.message()
    );
    // Waiting for approval: no timer, nothing to do.
    let waiting = w.step();
    assert!(waiting.actions.is_empty());
    assert_eq!(waiting.requeue_after, None);

    w.approve();
    w.run_to_step(2, StepState::StepPaused);
    check(&w, "step2.yaml", &original_vs);

    w.approve();
    w.run_to_step(3, StepState::StepPaused);
    check(&w, "step3.yaml", &original_vs);

    w.approve();
    w.run_to_phase(RolloutPhase::Healthy);
    check(&w, "final.yaml", &original_vs);
    assert_eq!(
        w.vs("vs-demo")["metadata"]["annotations"].get(ORIGINAL_SPEC_ANNOTATION),
        None
    );
    assert_eq!(w.vs("vs-demo")["metadata"], {
        let mut m = original_vs["metadata"].clone();
        m["resourceVersion"] = w.vs("vs-demo")["metadata"]["resourceVersion"].clone();
        m
    });
    let workload = w.workload();
    assert_eq!(workload.spec.as_ref().unwrap().paused, Some(false));
    assert!(
        !workload
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(PAUSED_BY_RAMP_ANNOTATION))
    );
    assert_eq!(w.ready_pods_of_revision("workload-demo", &v2), 3);
    assert_eq!(w.ready_pods_of_revision("workload-demo", &v1), 0);
    assert!(w.canary().is_none());
    assert!(w.service("service-demo-canary").is_none());
    let cs = w.cs();
    assert_eq!(cs.stable_revision, v2);
    let status = w.rollout.status.as_ref().unwrap();
    let succeeded = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Succeeded")
        .unwrap();
    assert_eq!(
        (succeeded.status.as_str(), succeeded.reason.as_deref()),
        ("True", Some("Completed"))
    );

    // And then it stays quiet: no writes, not even of the status, whose
    // message keeps the outcome.
    let before = w.rollout.status.clone().unwrap();
    let after = w.step();
    assert!(after.actions.is_empty(), "{:?}", after.actions);
    assert_eq!(after.status, before, "no status write once Healthy");
    assert!(
        before
            .message
            .as_deref()
            .unwrap()
            .starts_with("rollout complete: Deployment workload-demo runs revision"),
        "{:?}",
        before.message
    );
}

#[test]
fn finishing_runs_in_order_with_the_grace_period_between_traffic_moves() {
    let mut w = World::load("walkthrough");
    w.run_to_phase(RolloutPhase::Healthy);
    w.set_version("canary");
    for i in 1..=3 {
        w.run_to_step(i, StepState::StepPaused);
        w.approve();
    }
    let mut order: Vec<String> = Vec::new();
    let mut times: Vec<chrono::DateTime<chrono::Utc>> = Vec::new();
    w.run_until("healthy", |w| w.phase() == Some(RolloutPhase::Healthy));
    for p in &w.plans {
        for a in &p.actions {
            order.push(a.to_string());
        }
    }
    // The tail of the action log is the finishing sequence.
    let tail: Vec<&str> = order
        .iter()
        .rev()
        .take(5)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(
        tail,
        [
            "patch VirtualService vs-demo",
            "patch Service service-demo",
            "delete Service service-demo-canary",
            "patch Deployment workload-demo",
            "delete Deployment workload-demo-canary",
        ]
    );
    // The two traffic moves are at least the grace period apart: replay the
    // plans' statuses to find when each happened.
    let mut last_update = None;
    for p in &w.plans {
        let cs = p.status.canary_status.as_ref().unwrap();
        if p.actions
            .iter()
            .any(|a| matches!(a, Action::PatchRouting { .. } | Action::PatchService { .. }))
            && cs.current_step_state == StepState::Completed
        {
            let t = ramp_core::time::from_k8s_time(cs.last_update_time.as_ref().unwrap());
            if last_update != Some(t) {
                times.push(t);
            }
            last_update = Some(t);
        }
    }
    assert_eq!(times.len(), 2, "{times:?}");
    assert!(
        times[1] - times[0] >= chrono::Duration::seconds(3),
        "{times:?}"
    );
}

/// The operator caches ReplicaSets compacted (`compact_replica_set`: the pod
/// template replaced by its revision). At every call of a whole walk-through
/// the planner must decide the same from the compact form as from the full
/// ReplicaSets.
#[test]
fn compact_replica_sets_plan_exactly_like_full_ones() {
    let mut w = World::load("walkthrough");
    let mut calls = 0;
    let mut compare = |w: &World| {
        let full = w.observe();
        let mut compact = full.clone();
        for rs in &mut compact.replica_sets {
            ramp_core::compact_replica_set(rs);
            assert!(
                rs.spec
                    .as_ref()
                    .unwrap()
                    .template
                    .as_ref()
                    .unwrap()
                    .spec
                    .is_none()
            );
        }
        assert_eq!(ramp_core::plan(&full), ramp_core::plan(&compact));
        calls += 1;
    };
    w.run_to_phase(RolloutPhase::Healthy);
    compare(&w);
    w.set_version("canary");
    let v2 = template_revision(&w.workload().spec.as_ref().unwrap().template);
    for _ in 0..200 {
        compare(&w);
        if w.phase() == Some(RolloutPhase::Healthy) && w.cs().stable_revision == v2 {
            break;
        }
        if w.cs().current_step_state == StepState::StepPaused {
            w.approve();
        }
        let p = w.step();
        if p.actions.is_empty()
            && p.status == *w.rollout.status.as_ref().unwrap()
            && let Some(d) = p.requeue_after
        {
            w.advance(d);
        }
    }
    assert_eq!(w.phase(), Some(RolloutPhase::Healthy));
    assert!(
        calls > 10,
        "the walk-through was compared at every call ({calls})"
    );
}
