//! The step machine against a simulated cluster: timers, rollback, new
//! revisions, user actions, holding, disabling, deletion, drift, several
//! VirtualServices, missing objects and crashes at any point.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns unwrap fixtures too

mod common;

use std::time::Duration;

use common::World;
use k8s_openapi::api::core::v1::Pod;
use pretty_assertions::assert_eq;
use ramp_api::names::{CONTROLLED_BY_LABEL, ORIGINAL_SPEC_ANNOTATION, STABLE_SELECTOR_ANNOTATION};
use ramp_api::{FinalisingStep, RolloutAction, RolloutPause, RolloutPhase, StepState};
use ramp_core::{Action, EventType, plan, template_revision};
use serde_json::{Value, json};

fn walkthrough() -> World {
    let mut w = World::load("walkthrough");
    w.run_to_phase(RolloutPhase::Healthy);
    w
}

fn revision(w: &World) -> String {
    template_revision(&w.workload().spec.as_ref().unwrap().template)
}

fn http(w: &World) -> Value {
    w.vs("vs-demo")["spec"]["http"].clone()
}

fn original_http() -> Value {
    json!([{"route": [{"destination": {"host": "service-demo"}}]}])
}

fn weights(w: &World) -> Vec<(String, i64)> {
    w.vs("vs-demo")["spec"]["http"][0]["route"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["destination"]["host"].as_str().unwrap().to_string(),
                d["weight"].as_i64().unwrap_or(100),
            )
        })
        .collect()
}

fn condition(w: &World, type_: &str) -> (String, String) {
    let c = w
        .rollout
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition"));
    (c.status.clone(), c.reason.clone().unwrap_or_default())
}

/// Everything ramp changed is gone: routing, Services, canary objects.
fn assert_restored(w: &World) {
    assert_eq!(http(w), original_http());
    assert!(
        w.vs("vs-demo")["metadata"]["annotations"]
            .get(ORIGINAL_SPEC_ANNOTATION)
            .is_none()
    );
    let svc = w.service("service-demo").unwrap();
    assert_eq!(
        svc.spec.as_ref().unwrap().selector.as_ref().unwrap(),
        &[("app".to_string(), "nginx".to_string())].into()
    );
    assert!(
        !svc.metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(STABLE_SELECTOR_ANNOTATION))
    );
    assert!(w.service("service-demo-canary").is_none());
    assert!(w.canary().is_none());
}

#[test]
fn timed_pause_says_when_to_look_again_and_advances_by_itself() {
    let mut w = walkthrough();
    w.rollout.spec.strategy.canary.as_mut().unwrap().steps[1].pause =
        Some(RolloutPause { duration: Some(60) });
    w.set_version("canary");
    w.run_to_step(1, StepState::StepPaused);
    w.approve();
    w.run_to_step(2, StepState::StepPaused);

    let p = w.step();
    assert_eq!(p.requeue_after, Some(Duration::from_secs(60)));
    assert!(p.actions.is_empty());
    w.advance(Duration::from_secs(45));
    let p = w.step();
    assert_eq!(p.requeue_after, Some(Duration::from_secs(15)));
    assert_eq!(w.cs().current_step_state, StepState::StepPaused);
    w.advance(Duration::from_secs(15));
    w.step();
    assert_eq!(w.cs().current_step_state, StepState::StepReady);
    // No approval needed: the next step starts.
    w.run_to_step(3, StepState::StepPaused);
    assert_eq!(weights(&w)[1], ("service-demo-canary".to_string(), 80));
}

#[test]
fn rollback_restores_routing_first_then_cleans_up() {
    let mut w = walkthrough();
    let v1 = revision(&w);
    w.set_version("canary");
    w.run_to_step(1, StepState::StepPaused);
    w.approve();
    w.run_to_step(2, StepState::StepPaused);

    // The user reverts the template (kubectl rollout undo or re-apply v1).
    w.set_version("base");
    assert_eq!(revision(&w), v1);
    let first = w.step();
    assert!(
        matches!(first.actions.first(), Some(Action::PatchRouting { .. })),
        "routing first: {:?}",
        first.actions
    );
    assert_eq!(first.actions.len(), 1);
    assert_eq!(http(&w), original_http());
    assert!(first.events.iter().any(|e| e.reason == "RollingBack"));
    // The canary is still there until the grace period has passed.
    assert!(w.canary().is_some());
    let before = w.plans.len();
    w.run_to_phase(RolloutPhase::Healthy);
    let rest: Vec<String> = w.plans[before..]
        .iter()
        .flat_map(|p| p.actions.iter().map(|a| a.to_string()))
        .collect();
    assert_eq!(
        rest,
        [
            "delete Deployment workload-demo-canary",
            "patch Service service-demo",
            "delete Service service-demo-canary",
            "patch Deployment workload-demo",
        ]
    );
    assert_restored(&w);
    assert_eq!(w.cs().stable_revision, v1);
    assert_eq!(w.cs().canary_revision, v1);
    assert_eq!(w.ready_pods_of_revision("workload-demo", &v1), 3);
    assert_eq!(w.workload().spec.as_ref().unwrap().paused, Some(false));
    assert_eq!(
        condition(&w, "Succeeded"),
        ("False".into(), "RolledBack".into())
    );
}

#[test]
fn new_revision_mid_rollout_restores_routing_and_restarts_at_step_one() {
    let mut w = walkthrough();
    let v1 = revision(&w);
    w.set_version("v2");
    let v2 = revision(&w);
    w.run_to_step(1, StepState::StepPaused);
    w.approve();
    w.run_to_step(2, StepState::StepPaused);
    let v2_canary_hash = w.pod_hash_of("workload-demo-canary");

    w.set_version("v3");
    let v3 = revision(&w);
    let first = w.step();
    assert!(
        matches!(first.actions.as_slice(), [Action::PatchRouting { .. }]),
        "{:?}",
        first.actions
    );
    assert_eq!(http(&w), original_http());
    w.run_to_step(1, StepState::BeforeStepUpgrade);
    assert_eq!(w.cs().canary_revision, v3);
    assert_eq!(w.cs().stable_revision, v1);
    assert!(
        w.plans
            .last()
            .unwrap()
            .events
            .iter()
            .any(|e| e.reason == "Restarted")
    );

    w.run_to_step(1, StepState::StepPaused);
    // The canary now runs v3 and the canary Service selects its pods only.
    let canary_hash = w.pod_hash_of("workload-demo-canary");
    assert_ne!(canary_hash, v2_canary_hash);
    assert_eq!(
        w.service("service-demo-canary")
            .unwrap()
            .spec
            .as_ref()
            .unwrap()
            .selector
            .as_ref()
            .unwrap()["pod-template-hash"],
        canary_hash
    );
    assert_eq!(w.cs().current_step_index, 1);
    assert_eq!(
        http(&w)[0]["match"][0]["headers"]["version"]["exact"],
        "canary"
    );
    for i in 2..=3 {
        w.approve();
        w.run_to_step(i, StepState::StepPaused);
    }
    w.approve();
    w.run_to_phase(RolloutPhase::Healthy);
    assert_restored(&w);
    assert_eq!(w.cs().stable_revision, v3);
    assert_eq!(w.ready_pods_of_revision("workload-demo", &v3), 3);
    assert_eq!(w.ready_pods_of_revision("workload-demo", &v2), 0);
}

#[test]
fn disabled_restores_everything_and_releases_the_deployment() {
    let mut w = walkthrough();
    w.set_version("canary");
    let v2 = revision(&w);
    w.run_to_step(1, StepState::StepPaused);
    w.approve();
    w.run_to_step(2, StepState::StepPaused);

    w.rollout.spec.disabled = true;
    let first = w.step();
    assert_eq!(w.phase(), Some(RolloutPhase::Disabling));
    assert!(
        matches!(first.actions.as_slice(), [Action::PatchRouting { .. }]),
        "{:?}",
        first.actions
    );
    w.run_to_phase(RolloutPhase::Disabled);
    assert_restored(&w);
    let workload = w.workload();
    assert_eq!(workload.spec.as_ref().unwrap().paused, Some(false));
    assert!(
        workload
            .metadata
            .labels
            .as_ref()
            .unwrap()
            .get(CONTROLLED_BY_LABEL)
            .is_none(),
        "released"
    );
    // The Deployment rolls out natively.
    assert_eq!(w.ready_pods_of_revision("workload-demo", &v2), 3);
    // Disabled stays quiet.
    let quiet = w.step();
    assert!(quiet.actions.is_empty());
    assert_eq!(
        condition(&w, "Progressing"),
        ("False".into(), "Disabled".into())
    );

    // Enabling again: the Deployment is adopted at the revision it runs.
    w.rollout.spec.disabled = false;
    w.run_to_phase(RolloutPhase::Healthy);
    assert_eq!(w.cs().stable_revision, v2);
    assert_eq!(
        w.workload().metadata.labels.as_ref().unwrap()[CONTROLLED_BY_LABEL],
        "rollouts-demo"
    );
}

#[test]
fn deletion_mid_rollout_cleans_up_then_releases_the_finalizer() {
    let mut w = walkthrough();
    w.set_version("canary");
    w.run_to_step(1, StepState::StepPaused);
    w.approve();
    w.run_to_step(2, StepState::StepPaused);
    w.rollout.metadata.deletion_timestamp = Some(ramp_core::time::to_k8s_time(w.now));
    let mut done = false;
    for _ in 0..20 {
        let p = w.step();
        if p.cleanup_complete {
            done = true;
            break;
        }
        if p.actions.is_empty()
            && let Some(d) = p.requeue_after
        {
            w.advance(d);
        }
    }
    assert!(done, "cleanup never completed: {:#?}", w.rollout.status);
    assert_eq!(w.phase(), Some(RolloutPhase::Terminating));
    assert_restored(&w);
    assert_eq!(w.workload().spec.as_ref().unwrap().paused, Some(false));

    // Deleting a Rollout that changed nothing only releases the Deployment.
    let mut w = walkthrough();
    w.rollout.metadata.deletion_timestamp = Some(ramp_core::time::to_k8s_time(w.now));
    let p = w.step();
    assert!(!p.cleanup_complete, "not before the label is gone");
    assert_eq!(p.actions.len(), 1, "{:?}", p.actions);
    assert_eq!(p.actions[0].to_string(), "patch Deployment workload-demo");
    let p = w.step();
    assert!(p.cleanup_complete);
    assert!(p.actions.is_empty());
    assert!(
        w.workload()
            .metadata
            .labels
            .as_ref()
            .unwrap()
            .get(CONTROLLED_BY_LABEL)
            .is_none()
    );
}

#[test]
fn abort_then_retry() {
    let mut w = walkthrough();
    w.set_version("canary");
    let v2 = revision(&w);
    w.run_to_step(1, StepState::StepPaused);
    w.approve();
    w.run_to_step(2, StepState::StepPaused);

    w.request(RolloutAction::Abort);
    let p = w.step();
    assert_eq!(w.phase(), Some(RolloutPhase::Aborted));
    assert_eq!(w.cs().requested_action, None, "consumed");
    assert!(
        matches!(p.actions.as_slice(), [Action::PatchRouting { .. }]),
        "{:?}",
        p.actions
    );
    assert_eq!(http(&w), original_http());
    assert!(
        p.events
            .iter()
            .any(|e| e.reason == "Aborted" && e.type_ == EventType::Warning)
    );
    w.run_until("canary at 0", |w| {
        w.canary()
            .is_some_and(|c| c.spec.as_ref().unwrap().replicas == Some(0))
    });
    assert_eq!(w.phase(), Some(RolloutPhase::Aborted));
    assert_eq!(w.cs().finalising_step, None);
    assert_eq!(w.workload().spec.as_ref().unwrap().paused, Some(true));
    assert_eq!(w.ready_pods_of_revision("workload-demo", &v2), 0);
    // Aborted is a resting state.
    let quiet = w.step();
    assert!(quiet.actions.is_empty(), "{:?}", quiet.actions);
    assert!(w.message().contains("aborted at step 2"), "{}", w.message());
    assert_eq!(
        condition(&w, "Progressing"),
        ("False".into(), "Aborted".into())
    );

    w.request(RolloutAction::Retry);
    let p = w.step();
    assert_eq!(w.phase(), Some(RolloutPhase::Progressing));
    assert_eq!(w.cs().current_step_index, 1);
    assert_eq!(w.cs().current_step_state, StepState::BeforeStepUpgrade);
    assert_eq!(w.cs().requested_action, None);
    assert!(p.events.iter().any(|e| e.reason == "Retry"));
    w.run_to_step(1, StepState::StepPaused);
    assert_eq!(w.canary().unwrap().spec.as_ref().unwrap().replicas, Some(1));
    for i in 2..=3 {
        w.approve();
        w.run_to_step(i, StepState::StepPaused);
    }
    w.approve();
    w.run_to_phase(RolloutPhase::Healthy);
    assert_restored(&w);
    assert_eq!(w.cs().stable_revision, v2);
}

#[test]
fn abort_then_undo_rolls_back() {
    let mut w = walkthrough();
    let v1 = revision(&w);
    w.set_version("canary");
    w.run_to_step(1, StepState::StepPaused);
    w.request(RolloutAction::Abort);
    w.run_until("aborted and settled", |w| {
        w.phase() == Some(RolloutPhase::Aborted) && w.cs().finalising_step.is_none()
    });
    w.set_version("base");
    w.run_to_phase(RolloutPhase::Healthy);
    assert_restored(&w);
    assert_eq!(w.cs().stable_revision, v1);
    assert_eq!(w.workload().spec.as_ref().unwrap().paused, Some(false));
}

#[test]
fn promote_full_skips_the_remaining_steps() {
    let mut w = walkthrough();
    w.set_version("canary");
    let v2 = revision(&w);
    w.run_to_step(1, StepState::StepPaused);
    w.request(RolloutAction::PromoteFull);
    let p = w.step();
    assert_eq!(w.cs().requested_action, None);
    assert_eq!(w.cs().current_step_state, StepState::Completed);
    assert!(matches!(
        p.actions.as_slice(),
        [Action::PatchRouting { .. }]
    ));
    w.run_to_phase(RolloutPhase::Healthy);
    assert_restored(&w);
    assert_eq!(w.cs().stable_revision, v2);
    assert_eq!(w.ready_pods_of_revision("workload-demo", &v2), 3);
    // Steps 2 and 3 never ran: the canary never had more than 1 replica.
    let max_canary = w
        .plans
        .iter()
        .flat_map(|p| p.actions.iter())
        .filter_map(|a| match a {
            Action::ApplyDeployment(d) => d.spec.as_ref().unwrap().replicas,
            _ => None,
        })
        .max();
    assert_eq!(max_canary, Some(1));
}

#[test]
fn strategy_paused_holds_steps_and_timers() {
    let mut w = walkthrough();
    w.rollout.spec.strategy.canary.as_mut().unwrap().steps[0].pause =
        Some(RolloutPause { duration: Some(30) });
    w.set_version("canary");
    w.run_to_step(1, StepState::StepPaused);
    w.rollout.spec.strategy.paused = true;
    let p = w.step();
    assert!(p.actions.is_empty());
    assert_eq!(p.requeue_after, None, "no timer while paused");
    assert!(
        w.message().contains("spec.strategy.paused"),
        "{}",
        w.message()
    );
    assert_eq!(
        condition(&w, "Progressing"),
        ("True".into(), "Paused".into())
    );
    w.advance(Duration::from_secs(600));
    w.step();
    assert_eq!(w.cs().current_step_state, StepState::StepPaused);
    // Approval is held too.
    w.approve();
    w.step();
    assert_eq!(w.cs().current_step_state, StepState::StepReady);
    assert_eq!(w.cs().current_step_index, 1);

    w.rollout.spec.strategy.paused = false;
    w.run_to_step(2, StepState::StepPaused);
}

#[test]
fn paused_before_the_canary_exists_changes_nothing() {
    let mut w = walkthrough();
    w.rollout.spec.strategy.paused = true;
    w.set_version("canary");
    for _ in 0..3 {
        let p = w.step();
        assert!(p.actions.is_empty(), "{:?}", p.actions);
    }
    assert!(w.canary().is_none());
    assert_eq!(w.cs().current_step_state, StepState::BeforeStepUpgrade);
}

#[test]
fn drift_keeps_the_users_edit_and_reapplies_the_step() {
    let mut w = walkthrough();
    w.set_version("canary");
    w.run_to_step(1, StepState::StepPaused);
    w.approve();
    w.run_to_step(2, StepState::StepPaused);
    let step2 = w.vs("vs-demo")["spec"].clone();

    // Someone re-applies the original VirtualService (the annotation survives
    // a client-side apply, the spec does not).
    w.edit_routing("vs-demo", |vs| vs["spec"]["http"] = original_http());
    let p = w.step();
    assert!(
        matches!(p.actions.as_slice(), [Action::PatchRouting { .. }]),
        "{:?}",
        p.actions
    );
    assert!(
        p.events
            .iter()
            .any(|e| e.reason == "RoutingDrift" && e.type_ == EventType::Warning)
    );
    assert_eq!(w.vs("vs-demo")["spec"], step2);
    assert_eq!(
        w.cs().current_step_state,
        StepState::StepPaused,
        "the step stays"
    );

    // Someone adds a route for another host: it is kept, now and after the rollout.
    w.edit_routing("vs-demo", |vs| {
        let http = vs["spec"]["http"].as_array_mut().unwrap();
        http.insert(
            0,
            json!({"match": [{"uri": {"prefix": "/admin"}}], "route": [{"destination": {"host": "admin"}}]}),
        );
    });
    let p = w.step();
    assert!(p.events.iter().any(|e| e.reason == "RoutingDrift"));
    // The routes already are the user's plus step 2's; only the saved original is updated.
    assert!(
        matches!(p.actions.as_slice(), [Action::PatchRouting { .. }]),
        "{:?}",
        p.actions
    );
    let saved: Value = serde_json::from_str(
        w.vs("vs-demo")["metadata"]["annotations"][ORIGINAL_SPEC_ANNOTATION]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        saved["spec"]["http"][0]["route"][0]["destination"]["host"],
        "admin"
    );
    assert_eq!(saved["spec"]["http"].as_array().unwrap().len(), 2);

    w.approve();
    w.run_to_step(3, StepState::StepPaused);
    let http3 = http(&w);
    assert_eq!(http3[0]["route"][0]["destination"]["host"], "admin");
    assert_eq!(http3[1]["route"][1]["weight"], 80);
    w.approve();
    w.run_to_phase(RolloutPhase::Healthy);
    let final_http = http(&w);
    assert_eq!(
        final_http,
        json!([
            {"match": [{"uri": {"prefix": "/admin"}}], "route": [{"destination": {"host": "admin"}}]},
            {"route": [{"destination": {"host": "service-demo"}}]}
        ])
    );
    assert!(
        w.vs("vs-demo")["metadata"]["annotations"]
            .get(ORIGINAL_SPEC_ANNOTATION)
            .is_none()
    );
}

#[test]
fn a_concurrent_edit_makes_the_routing_patch_fail_instead_of_overwriting() {
    let mut w = walkthrough();
    w.set_version("canary");
    w.run_to_step(1, StepState::StepUpgrade);
    // Plan while the world still looks one way...
    let mut p = plan(&w.observe());
    while !p
        .actions
        .iter()
        .any(|a| matches!(a, Action::PatchRouting { .. }))
    {
        w.apply(&p).unwrap();
        w.settle();
        p = plan(&w.observe());
    }
    // ...someone edits the VirtualService before the patch is sent.
    w.edit_routing("vs-demo", |vs| {
        vs["metadata"]["labels"]["owner"] = json!("alice")
    });
    let err = w.apply(&p).unwrap_err();
    assert!(err.contains("patch VirtualService vs-demo"), "{err}");
    assert_eq!(w.vs("vs-demo")["metadata"]["labels"]["owner"], "alice");
    // Planning again from the new object keeps the edit.
    w.run_to_step(1, StepState::StepPaused);
    assert_eq!(w.vs("vs-demo")["metadata"]["labels"]["owner"], "alice");
    w.approve();
    w.run_to_step(2, StepState::StepPaused);
    w.approve();
    w.run_to_step(3, StepState::StepPaused);
    w.approve();
    w.run_to_phase(RolloutPhase::Healthy);
    assert_eq!(w.vs("vs-demo")["metadata"]["labels"]["owner"], "alice");
}

#[test]
fn several_virtual_services_change_and_restore_together() {
    let mut w = World::load("two-virtualservices");
    let originals = (w.vs("vs-gateway").clone(), w.vs("vs-mesh").clone());
    w.run_to_phase(RolloutPhase::Healthy);
    w.set_version("canary");
    w.run_to_step(1, StepState::StepPaused);
    assert_eq!(
        w.vs("vs-gateway")["spec"]["http"][0]["route"][1],
        json!({"destination": {"host": "service-demo-canary"}, "weight": 10})
    );
    assert_eq!(
        w.vs("vs-mesh")["spec"]["http"][0]["route"],
        json!([
            {"destination": {"host": "service-demo.default.svc.cluster.local"}, "weight": 90},
            {"destination": {"host": "service-demo-canary.default.svc.cluster.local"}, "weight": 10}
        ])
    );
    w.approve();
    w.run_to_step(2, StepState::StepPaused);
    assert_eq!(
        w.vs("vs-mesh")["spec"]["http"][0]["route"][1]["weight"],
        json!(60)
    );
    w.approve();
    w.run_to_phase(RolloutPhase::Healthy);
    assert_eq!(w.vs("vs-gateway")["spec"], originals.0["spec"]);
    assert_eq!(w.vs("vs-mesh")["spec"], originals.1["spec"]);
    assert_eq!(
        w.vs("vs-gateway")["metadata"]["annotations"],
        originals.0["metadata"]["annotations"]
    );
    assert_eq!(w.vs("vs-mesh")["metadata"].get("annotations"), None);
}

#[test]
fn missing_objects_stop_before_anything_changes() {
    for missing in ["VirtualService vs-demo", "Service service-demo"] {
        let mut w = walkthrough();
        match missing {
            "VirtualService vs-demo" => {
                w.routing.remove("VirtualService/vs-demo");
            }
            _ => {
                w.services.remove("service-demo");
            }
        }
        w.set_version("canary");
        let before = w.clone();
        w.step(); // starts the rollout (status only)
        let p = w.step();
        assert!(p.actions.is_empty(), "{missing}: {:?}", p.actions);
        let err = p.error.as_ref().expect("an error");
        assert_eq!(err.kind(), "object_not_found");
        let text = format!("{missing} not found in namespace default");
        assert_eq!(w.message(), text);
        assert_eq!(
            condition(&w, "Progressing"),
            ("True".into(), "ObjectNotFound".into())
        );
        assert!(
            p.events
                .iter()
                .any(|e| e.type_ == EventType::Warning && e.message == text)
        );
        // The Warning is not repeated while nothing changes.
        let again = w.step();
        assert!(again.events.is_empty(), "{:?}", again.events);
        assert_eq!(w.cs().current_step_state, StepState::BeforeStepUpgrade);
        assert!(w.canary().is_none());
        assert_eq!(w.services.len(), before.services.len());
        assert_eq!(w.routing, before.routing);
    }

    let mut w = World::load("walkthrough");
    w.deployments.clear();
    let p = w.step();
    assert_eq!(
        p.error.as_ref().unwrap().to_string(),
        "Deployment workload-demo not found in namespace default"
    );
    assert_eq!(p.status.phase, Some(RolloutPhase::Initial));
}

#[test]
fn a_virtual_service_without_a_route_to_the_service_is_reported() {
    let mut w = walkthrough();
    w.edit_routing("vs-demo", |vs| {
        vs["spec"]["http"][0]["route"][0]["destination"]["host"] = json!("reviews")
    });
    w.set_version("canary");
    w.step();
    let p = w.step();
    let err = p.error.unwrap();
    assert_eq!(err.kind(), "no_route_to_service");
    assert!(
        w.message()
            .starts_with("VirtualService vs-demo has no http route to Service service-demo")
    );
    assert!(w.canary().is_none());
}

#[test]
fn compact_canary_pods_plan_exactly_like_full_ones() {
    let mut w = walkthrough();
    w.unready.push("workload-demo-canary".into());
    w.set_version("canary");
    w.run_until("canary created", |w| w.canary().is_some());
    w.step();
    let full: Vec<Pod> = [
        json!({
            "metadata": {"name": "workload-demo-canary-abc", "namespace": "default",
                         "labels": {"app": "demo"}, "annotations": {"big": "x".repeat(4000)},
                         "resourceVersion": "12", "generateName": "workload-demo-canary-"},
            "spec": {"containers": [{"name": "nginx", "image": "nginx:nope",
                                     "env": [{"name": "A", "value": "b"}]}]},
            "status": {
                "phase": "Pending", "hostIP": "10.0.0.1", "podIP": "10.1.0.7",
                "conditions": [
                    {"type": "Initialized", "status": "True"},
                    {"type": "PodScheduled", "status": "True"},
                    {"type": "Ready", "status": "False", "reason": "ContainersNotReady"}
                ],
                "initContainerStatuses": [{
                    "name": "init", "image": "busybox", "imageID": "sha", "ready": false,
                    "restartCount": 3,
                    "state": {"terminated": {"exitCode": 2, "reason": "Error"}}
                }],
                "containerStatuses": [{
                    "name": "nginx", "image": "nginx:nope", "imageID": "", "ready": false,
                    "restartCount": 0,
                    "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off"}}
                }]
            }
        }),
        json!({
            "metadata": {"name": "workload-demo-canary-def"},
            "status": {"phase": "Pending", "conditions": [{
                "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": "0/3 nodes are available: 3 Insufficient cpu."
            }]}
        }),
    ]
    .into_iter()
    .map(|v| serde_json::from_value(v).unwrap())
    .collect();
    let mut compact = full.clone();
    compact.iter_mut().for_each(ramp_core::compact_pod);
    assert!(
        compact
            .iter()
            .all(|p| p.spec.is_none() && p.metadata.annotations.is_none())
    );
    let mut o = w.observe();
    o.canary_pods = full;
    let from_full = plan(&o);
    o.canary_pods = compact;
    let from_compact = plan(&o);
    assert_eq!(from_full, from_compact);
    let msg = from_full.status.message.unwrap();
    for reason in [
        "ImagePullBackOff: Back-off",
        "Error (exit code 2)",
        "Unschedulable: 0/3 nodes",
    ] {
        assert!(msg.contains(reason), "{reason} in {msg}");
    }
}

#[test]
fn canary_pods_that_never_get_ready_wait_with_the_reason_and_abort_restores() {
    let mut w = walkthrough();
    w.unready.push("workload-demo-canary".into());
    w.set_version("canary");
    w.run_until("canary created", |w| w.canary().is_some());
    w.step();
    assert_eq!(w.cs().current_step_state, StepState::StepUpgrade);

    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "workload-demo-canary-abc"},
        "status": {"containerStatuses": [{
            "name": "nginx", "image": "nginx:nope", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"nginx:nope\""}}
        }]}
    }))
    .unwrap();
    let mut o = w.observe();
    o.canary_pods = vec![pod];
    let p = plan(&o);
    let msg = p.status.message.clone().unwrap();
    assert!(
        msg.contains("waiting for canary Deployment workload-demo-canary: 0/1 pods ready"),
        "{msg}"
    );
    assert!(
        msg.contains("pod workload-demo-canary-abc: ImagePullBackOff: Back-off pulling image"),
        "{msg}"
    );
    assert!(p.actions.is_empty());
    assert_eq!(p.requeue_after, None, "watch-driven");
    assert_eq!(http(&w), original_http(), "routing untouched");

    w.request(RolloutAction::Abort);
    w.run_until("aborted", |w| {
        w.phase() == Some(RolloutPhase::Aborted) && w.cs().finalising_step.is_none()
    });
    w.step();
    assert_eq!(w.canary().unwrap().spec.as_ref().unwrap().replicas, Some(0));
    assert_eq!(http(&w), original_http());
}

#[test]
fn without_the_webhook_the_planner_pauses_the_deployment_and_warns() {
    let mut w = walkthrough();
    w.edit_workload(|d| {
        let c = &mut d
            .spec
            .as_mut()
            .unwrap()
            .template
            .spec
            .as_mut()
            .unwrap()
            .containers[0];
        c.image = Some("nginx:1.26".into());
    });
    let p = w.step();
    assert_eq!(
        p.actions.first().map(|a| a.to_string()).as_deref(),
        Some("patch Deployment workload-demo")
    );
    assert!(
        p.events
            .iter()
            .any(|e| e.reason == "WorkloadNotPaused" && e.type_ == EventType::Warning)
    );
    assert_eq!(w.workload().spec.as_ref().unwrap().paused, Some(true));
    assert_eq!(w.phase(), Some(RolloutPhase::Progressing));
}

#[test]
fn an_invalid_spec_waits_for_a_change_and_names_the_fields() {
    let mut w = walkthrough();
    {
        let canary = w.rollout.spec.strategy.canary.as_mut().unwrap();
        canary.steps[1].traffic = Some("150%".into());
        canary.steps[2].replicas = None;
    }
    w.set_version("canary");
    let p = w.step();
    assert!(
        p.actions
            .iter()
            .all(|a| a.to_string() == "patch Deployment workload-demo")
    );
    let err = p.error.unwrap();
    assert_eq!(err.kind(), "invalid_spec");
    let text = err.to_string();
    assert!(
        text.contains("spec.strategy.canary.steps[1].traffic"),
        "{text}"
    );
    assert!(
        text.contains("spec.strategy.canary.steps[2].replicas"),
        "{text}"
    );
    assert_eq!(p.requeue_after, None);

    let mut w = walkthrough();
    w.rollout
        .spec
        .strategy
        .canary
        .as_mut()
        .unwrap()
        .enable_extra_workload_for_canary = Some(false);
    // The webhook's and the planner's reading are one (ramp_api::validate):
    // an invalid spec, naming the field.
    let p = w.step();
    let err = p.error.unwrap();
    assert_eq!(err.kind(), "invalid_spec");
    assert!(
        err.to_string()
            .contains("spec.strategy.canary.enableExtraWorkloadForCanary: false is not supported"),
        "{err}"
    );
}

#[test]
fn a_foreign_object_with_the_canary_name_is_not_taken_over() {
    let mut w = walkthrough();
    let mut foreign = w.workload().clone();
    foreign.metadata.name = Some("workload-demo-canary".into());
    foreign.metadata.labels = None;
    foreign.metadata.uid = Some("uid-someone-else".into());
    w.deployments.insert("workload-demo-canary".into(), foreign);
    w.set_version("canary");
    w.step();
    let p = w.step();
    assert_eq!(p.error.unwrap().kind(), "object_conflict");
    assert!(w.message().contains(
        "Deployment workload-demo-canary already exists and is not managed by Rollout rollouts-demo"
    ));
    assert!(p.actions.is_empty());
}

/// Crash after any prefix of any plan's actions (status not written), then
/// carry on: the rollout ends exactly as an uninterrupted one.
#[test]
fn a_crash_after_any_action_changes_nothing_in_the_outcome() {
    fn drive(w: &mut World, crash: Option<(usize, usize)>) {
        let mut calls = 0usize;
        let mut crash = crash;
        let mut approvals = 0;
        for _ in 0..300 {
            if w.phase() == Some(RolloutPhase::Healthy) && approvals == 3 {
                return;
            }
            if w.cs().current_step_state == StepState::StepPaused
                && w.cs().finalising_step.is_none()
            {
                w.approve();
                approvals += 1;
            }
            let before = w.rollout.status.clone();
            let p = plan(&w.observe());
            calls += 1;
            if let Some((at, keep)) = crash
                && calls == at
            {
                let n = keep.min(p.actions.len());
                w.apply_actions(&p.actions[..n]).unwrap();
                w.settle();
                crash = None;
                continue;
            }
            w.apply(&p).unwrap();
            w.settle();
            if p.actions.is_empty()
                && Some(&p.status) == before.as_ref()
                && let Some(d) = p.requeue_after
            {
                w.advance(d);
            }
        }
        panic!("did not finish: {:#?}", w.rollout.status);
    }

    let mut start = walkthrough();
    start.set_version("canary");
    let mut reference = start.clone();
    drive(&mut reference, None);
    let calls_with_actions: Vec<(usize, usize)> = {
        // Replay to learn how many actions each call had.
        let mut w = start.clone();
        let mut out = Vec::new();
        let mut approvals = 0;
        for call in 1..300 {
            if w.phase() == Some(RolloutPhase::Healthy) && approvals == 3 {
                break;
            }
            if w.cs().current_step_state == StepState::StepPaused
                && w.cs().finalising_step.is_none()
            {
                w.approve();
                approvals += 1;
            }
            let before = w.rollout.status.clone();
            let p = plan(&w.observe());
            out.push((call, p.actions.len()));
            w.apply(&p).unwrap();
            w.settle();
            if p.actions.is_empty()
                && Some(&p.status) == before.as_ref()
                && let Some(d) = p.requeue_after
            {
                w.advance(d);
            }
        }
        out
    };
    let mut tried = 0;
    for (call, n) in calls_with_actions {
        for keep in 0..=n {
            let mut w = start.clone();
            drive(&mut w, Some((call, keep)));
            assert_eq!(
                w.routing, reference.routing,
                "crash at call {call} after {keep} actions"
            );
            assert_eq!(
                w.services, reference.services,
                "crash at call {call} after {keep} actions"
            );
            let specs = |w: &World| {
                w.deployments
                    .iter()
                    .map(|(k, d)| (k.clone(), d.spec.clone(), d.metadata.labels.clone()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(
                specs(&w),
                specs(&reference),
                "crash at call {call} after {keep} actions"
            );
            assert_eq!(w.cs().stable_revision, reference.cs().stable_revision);
            tried += 1;
        }
    }
    assert!(tried > 20, "only {tried} crash points");
}

#[test]
fn status_of_a_finished_step_machine_is_consistent() {
    let mut w = walkthrough();
    w.set_version("canary");
    for i in 1..=3 {
        w.run_to_step(i, StepState::StepPaused);
        w.approve();
    }
    w.run_to_phase(RolloutPhase::Healthy);
    let cs = w.cs();
    assert_eq!(cs.finalising_step, Some(FinalisingStep::Done));
    assert_eq!(cs.current_step_state, StepState::Completed);
    assert_eq!(cs.stable_revision, cs.canary_revision);
    assert_eq!(
        w.rollout.status.as_ref().unwrap().observed_generation,
        Some(1)
    );
}

#[test]
fn finishing_waits_for_the_deployment_to_roll_out_before_removing_the_canary() {
    let mut w = walkthrough();
    w.set_version("canary");
    for i in 1..=3 {
        w.run_to_step(i, StepState::StepPaused);
        w.approve();
    }
    w.unready.push("workload-demo".into());
    w.run_until("resuming", |w| {
        w.cs().finalising_step == Some(FinalisingStep::ResumeWorkload)
            && w.workload().spec.as_ref().unwrap().paused == Some(false)
    });
    for _ in 0..3 {
        let p = w.step();
        assert!(p.actions.is_empty(), "{:?}", p.actions);
    }
    assert!(
        w.message()
            .contains("waiting for Deployment workload-demo to roll out revision"),
        "{}",
        w.message()
    );
    assert!(
        w.canary().is_some(),
        "the canary stays while the Deployment rolls out"
    );
    w.unready.clear();
    w.settle();
    w.run_to_phase(RolloutPhase::Healthy);
    assert_restored(&w);
}

#[test]
fn a_lost_stable_revision_is_found_again() {
    let mut w = walkthrough();
    let v1 = revision(&w);
    w.set_version("canary");
    w.run_to_step(1, StepState::StepUpgrade);
    w.rollout
        .status
        .as_mut()
        .unwrap()
        .canary_status
        .as_mut()
        .unwrap()
        .stable_revision = String::new();
    w.run_to_step(1, StepState::StepPaused);
    assert_eq!(w.cs().stable_revision, v1);
}

/// A new Rollout naming a missing Service or VirtualService, or a
/// VirtualService without a route to the Service, says so at once — not only
/// when a template change starts a rollout. Its only action is the adoption
/// label (so that a template change is held, not rolled out natively); once
/// the object is right the Rollout is Healthy and the problem is gone.
#[test]
fn a_new_rollout_reports_missing_or_unusable_objects_at_once() {
    type Breakage = fn(&mut World);
    let cases: [(&str, &str, Breakage); 3] = [
        (
            "Service service-demo not found in namespace default",
            "ObjectNotFound",
            |w| {
                w.services.remove("service-demo");
            },
        ),
        (
            "VirtualService vs-demo not found in namespace default",
            "ObjectNotFound",
            |w| {
                w.routing
                    .remove(&common::routing_key("VirtualService", "vs-demo"));
            },
        ),
        (
            "VirtualService vs-demo has no http route to Service service-demo",
            "NoRouteToService",
            |w| {
                w.edit_routing("vs-demo", |vs| {
                    vs["spec"]["http"][0]["route"][0]["destination"]["host"] = json!("elsewhere");
                });
            },
        ),
    ];
    for (text, reason, break_it) in cases {
        let fixed = World::load("walkthrough");
        let mut w = fixed.clone();
        // As created: no status, not adopted.
        w.rollout.status = None;
        w.deployments
            .get_mut("workload-demo")
            .unwrap()
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .remove(CONTROLLED_BY_LABEL);
        break_it(&mut w);
        let p = w.step();
        let err = p
            .error
            .as_ref()
            .unwrap_or_else(|| panic!("{text}: no error"));
        assert!(err.to_string().starts_with(text), "{err}");
        let actions: Vec<String> = p.actions.iter().map(ToString::to_string).collect();
        assert_eq!(actions, ["patch Deployment workload-demo"], "{text}");
        assert_eq!(
            w.workload().metadata.labels.as_ref().unwrap()[CONTROLLED_BY_LABEL],
            "rollouts-demo"
        );
        assert!(!w.workload().spec.as_ref().unwrap().paused.unwrap_or(false));
        assert_eq!(w.phase(), Some(RolloutPhase::Initial));
        assert!(w.message().starts_with(text), "{}", w.message());
        assert_eq!(
            condition(&w, "Progressing"),
            ("False".into(), reason.into())
        );
        assert!(
            p.events
                .iter()
                .any(|e| e.type_ == EventType::Warning && e.message.starts_with(text)),
            "{:?}",
            p.events
        );
        // Nothing more while nothing changes; the Warning is not repeated.
        let again = w.step();
        assert!(
            again.actions.is_empty() && again.events.is_empty(),
            "{again:?}"
        );

        // The object is fixed: Healthy, the condition no longer names it.
        w.services = fixed.services.clone();
        w.routing = fixed.routing.clone();
        let p = w.step();
        assert!(p.error.is_none(), "{:?}", p.error);
        assert_eq!(w.phase(), Some(RolloutPhase::Healthy));
        let (status, reason) = condition(&w, "Progressing");
        assert_eq!((status.as_str(), reason.as_str()), ("False", "Healthy"));
        assert!(!format!("{:?}", w.rollout.status).contains(text));
    }
}
