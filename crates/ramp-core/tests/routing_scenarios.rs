//! Whole rollouts through the other ways of moving traffic, driven by
//! calling `plan()` repeatedly against the simulated cluster: DestinationRule
//! subsets (bookinfo's reviews), a Gateway API HTTPRoute attached to the
//! Service (GAMMA), mirror steps, and conflicting VirtualServices.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns unwrap fixtures too

mod common;

use common::{World, routing_key};
use pretty_assertions::assert_eq;
use ramp_api::names::{ORIGINAL_SPEC_ANNOTATION, POD_TEMPLATE_HASH_LABEL};
use ramp_api::{CanaryStep, RolloutAction, RolloutPhase, StepState};
use ramp_core::{Action, EventType, Plan};
use serde_json::{Value, json};

fn without_rv(v: &Value) -> Value {
    let mut v = v.clone();
    v["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    v
}

fn selector(w: &World, name: &str) -> Value {
    serde_json::to_value(
        w.service(name)
            .unwrap()
            .spec
            .as_ref()
            .unwrap()
            .selector
            .clone(),
    )
    .unwrap()
}

fn stable_hash(w: &World, deployment: &str) -> String {
    w.replica_sets
        .iter()
        .find(|rs| {
            rs.metadata
                .name
                .as_deref()
                .unwrap()
                .starts_with(&format!("{deployment}-"))
                && rs.spec.as_ref().unwrap().replicas.unwrap_or(0) > 0
        })
        .and_then(|rs| {
            rs.metadata
                .labels
                .as_ref()
                .unwrap()
                .get(POD_TEMPLATE_HASH_LABEL)
                .cloned()
        })
        .unwrap()
}

/// Index in `plans` of the first plan patching routing object `kind/name`
/// whose result satisfies nothing in particular (any patch), from `from`.
fn routing_patches(plans: &[Plan], kind: &str, name: &str) -> Vec<usize> {
    plans
        .iter()
        .enumerate()
        .filter(|(_, p)| {
            p.actions.iter().any(|a| {
                matches!(a, Action::PatchRouting { kind: k, name: n, .. } if k == kind && n == name)
            })
        })
        .map(|(i, _)| i)
        .collect()
}

fn action_index(p: &Plan, kind: &str, name: &str) -> Option<usize> {
    p.actions.iter().position(|a| a.target() == (kind, name))
}

fn set_steps(w: &mut World, steps: Value) {
    w.rollout.spec.strategy.canary.as_mut().unwrap().steps =
        serde_json::from_value::<Vec<CanaryStep>>(steps).unwrap();
}

// ----- DestinationRule subsets -------------------------------------------------

fn bookinfo() -> World {
    let mut w = World::load("bookinfo-subsets");
    w.run_to_phase(RolloutPhase::Healthy);
    w
}

fn reviews_http(w: &World) -> Value {
    w.vs("reviews")["spec"]["http"].clone()
}

fn subsets(w: &World) -> Value {
    w.object("DestinationRule", "reviews")["spec"]["subsets"].clone()
}

#[test]
fn bookinfo_reviews_through_subsets_header_then_half_then_finish() {
    let mut w = bookinfo();
    let vs0 = without_rv(w.vs("reviews"));
    let dr0 = without_rv(w.object("DestinationRule", "reviews"));
    let stable = stable_hash(&w, "reviews-v1");

    w.set_version("v1-patched");
    w.step(); // RolloutStarted
    assert_eq!(w.cs().current_step_state, StepState::BeforeStepUpgrade);

    // Before the canary exists, the stable subset is narrowed to the stable
    // pods (the Service is left whole: the canary subset needs its endpoints).
    let p = w.step();
    let dr_patch = action_index(&p, "DestinationRule", "reviews").expect("DestinationRule patched");
    let canary = action_index(&p, "Deployment", "reviews-v1-canary").expect("canary created");
    assert!(dr_patch < canary, "{:?}", p.actions);
    assert_eq!(
        subsets(&w),
        json!([
            {"name": "v1", "labels": {"version": "v1", POD_TEMPLATE_HASH_LABEL: stable}},
            {"name": "v2", "labels": {"version": "v2"}},
            {"name": "v3", "labels": {"version": "v3"}},
        ])
    );
    assert_eq!(selector(&w, "reviews"), json!({"app": "reviews"}));

    // Step 1: the canary subset appears before the VirtualService uses it.
    w.run_to_step(1, StepState::StepPaused);
    let canary_hash = w.pod_hash_of("reviews-v1-canary");
    let routed = *routing_patches(&w.plans, "VirtualService", "reviews")
        .first()
        .unwrap();
    let p = &w.plans[routed];
    assert!(
        action_index(p, "DestinationRule", "reviews").unwrap()
            < action_index(p, "VirtualService", "reviews").unwrap(),
        "{:?}",
        p.actions
    );
    assert_eq!(
        subsets(&w),
        json!([
            {"name": "v1", "labels": {"version": "v1", POD_TEMPLATE_HASH_LABEL: stable}},
            {"name": "v2", "labels": {"version": "v2"}},
            {"name": "v3", "labels": {"version": "v3"}},
            {"name": "canary", "labels": {POD_TEMPLATE_HASH_LABEL: canary_hash}},
        ])
    );
    assert_eq!(
        reviews_http(&w),
        json!([
            {"match": [{"headers": {"end-user": {"exact": "bill"}}}],
             "route": [{"destination": {"host": "reviews", "subset": "v3"}}]},
            {"match": [{"headers": {"end-user": {"exact": "jason"}}}],
             "route": [{"destination": {"host": "reviews", "subset": "canary"}}]},
            {"route": [{"destination": {"host": "reviews", "subset": "v1"}}]},
        ])
    );
    assert!(
        w.service("reviews-canary").is_none(),
        "subset routing needs no canary Service"
    );
    assert_eq!(selector(&w, "reviews"), json!({"app": "reviews"}));

    // Step 2: half of the stable subset's traffic.
    w.approve();
    w.run_to_step(2, StepState::StepPaused);
    assert_eq!(
        reviews_http(&w)[1],
        json!({"route": [
            {"destination": {"host": "reviews", "subset": "v1"}, "weight": 50},
            {"destination": {"host": "reviews", "subset": "canary"}, "weight": 50},
        ]})
    );
    assert_eq!(subsets(&w)[3]["name"], "canary");
    assert_eq!(w.canary().unwrap().spec.as_ref().unwrap().replicas, Some(1));

    // Finish: the VirtualService stops using the canary subset first, then
    // the DestinationRule is restored; both exactly as they were.
    let before_finish = w.plans.len();
    w.approve();
    w.run_to_phase(RolloutPhase::Healthy);
    let plans = &w.plans[before_finish..];
    let vs_restored = *routing_patches(plans, "VirtualService", "reviews")
        .first()
        .unwrap();
    let dr_restored = *routing_patches(plans, "DestinationRule", "reviews")
        .first()
        .unwrap();
    assert!(vs_restored < dr_restored, "VirtualService first");
    assert_eq!(without_rv(w.vs("reviews")), vs0);
    assert_eq!(without_rv(w.object("DestinationRule", "reviews")), dr0);
    assert!(w.canary().is_none());
    assert!(w.service("reviews-canary").is_none());
    assert_eq!(selector(&w, "reviews"), json!({"app": "reviews"}));
}

#[test]
fn subset_rollback_restores_the_destination_rule_only_after_the_canary_is_gone() {
    let mut w = bookinfo();
    let dr0 = without_rv(w.object("DestinationRule", "reviews"));
    let vs0 = without_rv(w.vs("reviews"));
    w.set_version("v1-broken");
    w.run_to_step(1, StepState::StepPaused);
    let from = w.plans.len();
    w.set_version("base");
    w.run_to_phase(RolloutPhase::Healthy);
    let plans = &w.plans[from..];
    let deleted = plans
        .iter()
        .position(|p| {
            p.actions.iter().any(
                |a| matches!(a, Action::DeleteDeployment { name } if name == "reviews-v1-canary"),
            )
        })
        .unwrap();
    let vs_restored = routing_patches(plans, "VirtualService", "reviews")[0];
    let dr_restored = routing_patches(plans, "DestinationRule", "reviews")[0];
    assert!(
        vs_restored < deleted && deleted < dr_restored,
        "the stable subset must not widen to the canary pods while they exist"
    );
    assert_eq!(without_rv(w.object("DestinationRule", "reviews")), dr0);
    assert_eq!(without_rv(w.vs("reviews")), vs0);
}

#[test]
fn subset_mistakes_stop_before_anything_changes_naming_the_objects() {
    type Edit = fn(&mut World);
    let cases: [(&str, Edit, &str, &[&str]); 4] = [
        (
            "a DestinationRule for another host",
            |w| {
                w.edit_object("DestinationRule", "reviews", |o| {
                    o["spec"]["host"] = json!("ratings")
                })
            },
            "invalid_subsets",
            &["DestinationRule reviews: spec.host: is \"ratings\", not Service reviews"],
        ),
        (
            "a route to a subset the DestinationRule lacks",
            |w| {
                w.edit_routing("reviews", |o| {
                    o["spec"]["http"][0]["route"][0]["destination"]["subset"] = json!("v4")
                })
            },
            "undefined_subset",
            &[
                "VirtualService reviews: spec.http[0].route[0].destination.subset: subset \"v4\"",
                "DestinationRule reviews",
            ],
        ),
        (
            "no subset for the stable pods",
            |w| {
                w.edit_object("DestinationRule", "reviews", |o| {
                    o["spec"]["subsets"][0]["labels"]["version"] = json!("v0")
                })
            },
            "invalid_subsets",
            &["no subset selects the stable pods (labels app=reviews, version=v1)"],
        ),
        (
            "the DestinationRule is missing",
            |w| {
                w.routing.remove(&routing_key("DestinationRule", "reviews"));
            },
            "object_not_found",
            &["DestinationRule reviews not found in namespace default"],
        ),
    ];
    for (what, edit, kind, needles) in cases {
        let mut w = bookinfo();
        edit(&mut w);
        w.set_version("v1-patched");
        w.step();
        let before = w.clone();
        let p = w.step();
        let err = p
            .error
            .as_ref()
            .unwrap_or_else(|| panic!("{what}: no error"));
        assert_eq!(err.kind(), kind, "{what}: {err}");
        for n in needles {
            assert!(err.to_string().contains(n), "{what}: {err}");
        }
        assert!(p.actions.is_empty(), "{what}: {:?}", p.actions);
        assert_eq!(w.routing, before.routing, "{what}");
        assert!(w.canary().is_none(), "{what}");
        assert!(w.message().contains(needles[0]), "{what}: {}", w.message());
    }
}

#[test]
fn a_custom_canary_subset_name_is_used_and_restored() {
    let mut w = bookinfo();
    let dr0 = without_rv(w.object("DestinationRule", "reviews"));
    w.rollout
        .spec
        .strategy
        .canary
        .as_mut()
        .unwrap()
        .traffic_routings[0]
        .canary_subset_name = Some("preview".into());
    w.set_version("v1-patched");
    w.run_to_step(1, StepState::StepPaused);
    assert_eq!(subsets(&w)[3]["name"], "preview");
    assert_eq!(
        reviews_http(&w)[1]["route"][0]["destination"],
        json!({"host": "reviews", "subset": "preview"})
    );
    w.request(RolloutAction::PromoteFull);
    w.run_to_phase(RolloutPhase::Healthy);
    assert_eq!(without_rv(w.object("DestinationRule", "reviews")), dr0);
}

#[test]
fn a_new_revision_mid_rollout_moves_the_canary_subset_to_the_new_pods() {
    let mut w = bookinfo();
    w.set_version("v2");
    w.run_to_step(1, StepState::StepPaused);
    let old_hash = w.pod_hash_of("reviews-v1-canary");
    w.set_version("v3");
    w.step();
    assert_eq!(
        w.cs().finalising_step,
        Some(ramp_api::FinalisingStep::RestoreRouting)
    );
    w.run_to_step(1, StepState::StepPaused);
    let new_hash = w.pod_hash_of("reviews-v1-canary");
    assert_ne!(old_hash, new_hash);
    assert_eq!(
        subsets(&w)[3],
        json!({"name": "canary", "labels": {POD_TEMPLATE_HASH_LABEL: new_hash}})
    );
    // ramp's own rewrites of the DestinationRule are not someone else's edits.
    assert!(
        !w.plans
            .iter()
            .flat_map(|p| &p.events)
            .any(|e| e.reason == "RoutingDrift"),
        "no drift warnings"
    );
}

// ----- Gateway API HTTPRoute (GAMMA) -------------------------------------------

fn gamma() -> World {
    let mut w = World::load("httproute-gamma");
    w.run_to_phase(RolloutPhase::Healthy);
    w
}

fn rules(w: &World) -> Value {
    w.object("HTTPRoute", "service-demo")["spec"]["rules"].clone()
}

fn backends(weights: &[(&str, i64)]) -> Value {
    Value::Array(
        weights
            .iter()
            .map(|(name, weight)| {
                json!({"group": "", "kind": "Service", "name": name, "port": 80, "weight": weight})
            })
            .collect(),
    )
}

#[test]
fn the_walk_through_on_an_http_route_attached_to_the_service() {
    let mut w = gamma();
    let route0 = without_rv(w.object("HTTPRoute", "service-demo"));
    let all = json!([{"path": {"type": "PathPrefix", "value": "/"}}]);

    w.set_version("canary");
    w.run_to_step(1, StepState::StepPaused);
    assert_eq!(
        rules(&w),
        json!([
            {"matches": [{"path": {"type": "PathPrefix", "value": "/"},
                          "headers": [{"type": "Exact", "name": "version", "value": "canary"}]}],
             "backendRefs": backends(&[("service-demo-canary", 1)])},
            {"matches": all, "backendRefs": backends(&[("service-demo", 1)])},
        ])
    );
    // The Service path: a canary Service, the stable one narrowed.
    let canary_hash = w.pod_hash_of("workload-demo-canary");
    assert_eq!(
        selector(&w, "service-demo-canary"),
        json!({"app": "nginx", POD_TEMPLATE_HASH_LABEL: canary_hash})
    );
    assert!(selector(&w, "service-demo")[POD_TEMPLATE_HASH_LABEL].is_string());
    let saved =
        &w.object("HTTPRoute", "service-demo")["metadata"]["annotations"][ORIGINAL_SPEC_ANNOTATION];
    assert!(saved.is_string());

    w.approve();
    w.run_to_step(2, StepState::StepPaused);
    assert_eq!(
        rules(&w),
        json!([{"matches": all, "backendRefs": backends(&[("service-demo", 50), ("service-demo-canary", 50)])}])
    );
    w.approve();
    w.run_to_step(3, StepState::StepPaused);
    assert_eq!(
        rules(&w),
        json!([{"matches": all, "backendRefs": backends(&[("service-demo", 20), ("service-demo-canary", 80)])}])
    );

    w.approve();
    w.run_to_phase(RolloutPhase::Healthy);
    assert_eq!(
        without_rv(w.object("HTTPRoute", "service-demo")),
        route0,
        "restored exactly, weights included"
    );
    assert!(w.service("service-demo-canary").is_none());
    assert_eq!(selector(&w, "service-demo"), json!({"app": "nginx"}));
}

#[test]
fn a_missing_http_route_is_reported_by_its_gateway_field_name() {
    let mut w = gamma();
    w.routing.remove(&routing_key("HTTPRoute", "service-demo"));
    w.set_version("canary");
    w.step();
    let p = w.step();
    assert_eq!(
        p.error.unwrap().to_string(),
        "HTTPRoute service-demo not found in namespace default"
    );
    assert!(w.canary().is_none());
}

// ----- mirror steps --------------------------------------------------------------

#[test]
fn mirror_then_real_traffic_on_a_virtual_service() {
    let mut w = World::load("walkthrough");
    set_steps(
        &mut w,
        json!([
            {"replicas": 1, "mirror": {"percent": 100}},
            {"replicas": 1, "traffic": "20%"},
        ]),
    );
    w.run_to_phase(RolloutPhase::Healthy);
    let vs0 = without_rv(w.vs("vs-demo"));
    w.set_version("canary");
    w.run_to_step(1, StepState::StepPaused);
    assert_eq!(
        w.vs("vs-demo")["spec"]["http"],
        json!([{
            "route": [{"destination": {"host": "service-demo"}}],
            "mirror": {"host": "service-demo-canary"},
            "mirrorPercentage": {"value": 100},
        }])
    );
    assert!(
        w.message()
            .contains("plus a copy of 100% of the stable requests"),
        "{}",
        w.message()
    );
    assert!(w.service("service-demo-canary").is_some());
    w.approve();
    w.run_to_step(2, StepState::StepPaused);
    assert_eq!(
        w.vs("vs-demo")["spec"]["http"],
        json!([{"route": [
            {"destination": {"host": "service-demo"}, "weight": 80},
            {"destination": {"host": "service-demo-canary"}, "weight": 20},
        ]}])
    );
    w.approve();
    w.run_to_phase(RolloutPhase::Healthy);
    assert_eq!(without_rv(w.vs("vs-demo")), vs0);
}

#[test]
fn mirror_on_an_http_route_adds_a_request_mirror_filter() {
    let mut w = World::load("httproute-gamma");
    set_steps(
        &mut w,
        json!([{"replicas": 1, "mirror": {"percent": 100}}, {"replicas": 2, "traffic": "50%", "mirror": {"percent": 10}}]),
    );
    w.run_to_phase(RolloutPhase::Healthy);
    let route0 = without_rv(w.object("HTTPRoute", "service-demo"));
    w.set_version("canary");
    w.run_to_step(1, StepState::StepPaused);
    assert_eq!(
        rules(&w)[0]["filters"],
        json!([{"type": "RequestMirror", "requestMirror": {"backendRef":
            {"group": "", "kind": "Service", "name": "service-demo-canary", "port": 80}}}])
    );
    assert_eq!(
        rules(&w)[0]["backendRefs"],
        backends(&[("service-demo", 1)])
    );
    w.approve();
    w.run_to_step(2, StepState::StepPaused);
    assert_eq!(rules(&w)[0]["filters"][0]["requestMirror"]["percent"], 10);
    w.request(RolloutAction::Abort);
    w.run_to_phase(RolloutPhase::Aborted);
    assert_eq!(without_rv(w.object("HTTPRoute", "service-demo")), route0);
}

#[test]
fn a_mirror_step_without_canary_pods_is_refused() {
    let mut w = World::load("walkthrough");
    set_steps(
        &mut w,
        json!([{"replicas": "50%", "mirror": {"percent": 100}}]),
    );
    w.edit_workload(|d| d.spec.as_mut().unwrap().replicas = Some(0));
    w.run_to_phase(RolloutPhase::Healthy);
    w.set_version("canary");
    w.step();
    let p = w.step();
    let err = p.error.unwrap();
    assert_eq!(err.kind(), "invalid_spec");
    assert!(
        err.to_string().contains("needs at least one canary pod"),
        "{err}"
    );
    assert!(w.canary().is_none());
}

// ----- conflicting VirtualServices ---------------------------------------------------

fn other_vs(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": "default", "resourceVersion": "1"},
        "spec": spec,
    })
}

#[test]
fn a_second_virtual_service_for_the_same_host_stops_the_rollout_before_anything_changes() {
    let mut w = World::load("walkthrough");
    w.run_to_phase(RolloutPhase::Healthy);
    w.routing.insert(
        routing_key("VirtualService", "vs-legacy"),
        other_vs(
            "vs-legacy",
            json!({"gateways": ["default/simple-gateway"], "hosts": ["*"],
                   "http": [{"route": [{"destination": {"host": "legacy"}}]}]}),
        ),
    );
    w.set_version("canary");
    w.step();
    let before = w.clone();
    let p = w.step();
    let err = p.error.as_ref().unwrap();
    assert_eq!(err.kind(), "conflicting_virtual_services");
    assert_eq!(err.reason(), "ConflictingVirtualServices");
    let text = err.to_string();
    assert!(
        text.starts_with(
            "VirtualService vs-demo and VirtualService vs-legacy both define host * for gateway default/simple-gateway (Istio IST0109"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "merge the http routes of VirtualService vs-legacy into VirtualService vs-demo"
        ),
        "{text}"
    );
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert!(
        p.events
            .iter()
            .any(|e| e.type_ == EventType::Warning && e.reason == "ConflictingVirtualServices")
    );
    assert_eq!(w.routing, before.routing);
    assert_eq!(w.services, before.services);
    assert!(w.canary().is_none());
    let progressing = w
        .rollout
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == "Progressing")
        .unwrap();
    assert_eq!(
        progressing.reason.as_deref(),
        Some("ConflictingVirtualServices")
    );
    assert_eq!(progressing.message.as_deref(), Some(text.as_str()));

    // Merged by the user: the rollout goes on.
    w.routing
        .remove(&routing_key("VirtualService", "vs-legacy"));
    w.run_to_step(1, StepState::StepPaused);
}

#[test]
fn two_virtual_services_claiming_the_service_host_for_the_mesh_conflict_whatever_the_host_form() {
    let mut w = World::load("two-virtualservices");
    w.run_to_phase(RolloutPhase::Healthy);
    w.routing.insert(
        routing_key("VirtualService", "vs-extra"),
        other_vs(
            "vs-extra",
            json!({"hosts": ["service-demo"],
                   "http": [{"route": [{"destination": {"host": "service-demo"}}]}]}),
        ),
    );
    w.set_version("canary");
    w.step();
    let p = w.step();
    let text = p.error.unwrap().to_string();
    assert!(
        text.starts_with(
            "VirtualService vs-mesh and VirtualService vs-extra both define host service-demo.default.svc.cluster.local for the mesh (sidecars)"
        ),
        "{text}"
    );
    assert!(w.canary().is_none());
}

#[test]
fn a_conflict_appearing_mid_rollout_holds_the_step_and_abort_still_restores() {
    let mut w = World::load("walkthrough");
    w.run_to_phase(RolloutPhase::Healthy);
    let vs0 = without_rv(w.vs("vs-demo"));
    w.set_version("canary");
    w.run_to_step(1, StepState::StepPaused);
    let step1 = w.vs("vs-demo").clone();
    w.routing.insert(
        routing_key("VirtualService", "vs-copy"),
        other_vs(
            "vs-copy",
            json!({"gateways": ["simple-gateway"], "hosts": ["*"], "http": []}),
        ),
    );
    let canary = w.canary().unwrap().spec.clone();
    w.approve();
    // Step 2 does not start: the approval is kept, nothing is scaled or routed.
    let p = w.step();
    assert_eq!(p.error.unwrap().kind(), "conflicting_virtual_services");
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    let again = w.step();
    assert_eq!(again.error.unwrap().kind(), "conflicting_virtual_services");
    assert!(again.actions.is_empty());
    assert_eq!(w.cs().current_step_index, 1);
    assert_eq!(w.cs().current_step_state, StepState::StepReady);
    assert_eq!(w.canary().unwrap().spec, canary, "canary not scaled");
    assert_eq!(w.vs("vs-demo"), &step1, "routing untouched");
    w.request(RolloutAction::Abort);
    w.run_to_phase(RolloutPhase::Aborted);
    assert_eq!(without_rv(w.vs("vs-demo")), vs0);
}

// ----- crashes ---------------------------------------------------------------------

/// Run a rollout to the end, approving every pause; with `crash = (call,
/// keep)` the `call`-th plan is carried out only up to `keep` actions and
/// its status is not written, as when the operator dies mid-plan.
fn drive(w: &mut World, approvals: usize, crash: Option<(usize, usize)>) -> Vec<usize> {
    let mut crash = crash;
    let mut approved = 0;
    let mut actions_per_call = Vec::new();
    for call in 1..400 {
        if w.phase() == Some(RolloutPhase::Healthy) && approved == approvals {
            return actions_per_call;
        }
        if w.cs().current_step_state == StepState::StepPaused && w.cs().finalising_step.is_none() {
            w.approve();
            approved += 1;
        }
        let before = w.rollout.status.clone();
        let p = ramp_core::plan(&w.observe());
        actions_per_call.push(p.actions.len());
        if let Some((at, keep)) = crash
            && call == at
        {
            w.apply_actions(&p.actions[..keep.min(p.actions.len())])
                .unwrap();
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

fn assert_crash_safe(start: &World, approvals: usize) {
    let mut reference = start.clone();
    let calls = drive(&mut reference, approvals, None);
    let routing = |w: &World| {
        w.routing
            .iter()
            .map(|(k, v)| (k.clone(), without_rv(v)))
            .collect::<Vec<_>>()
    };
    let mut tried = 0;
    for (i, n) in calls.iter().enumerate() {
        for keep in 0..=*n {
            let mut w = start.clone();
            drive(&mut w, approvals, Some((i + 1, keep)));
            let at = format!("crash at call {} after {keep} actions", i + 1);
            assert_eq!(routing(&w), routing(&reference), "{at}");
            assert_eq!(
                w.services.keys().collect::<Vec<_>>(),
                reference.services.keys().collect::<Vec<_>>(),
                "{at}"
            );
            assert_eq!(
                selector(
                    &w,
                    &w.rollout
                        .spec
                        .strategy
                        .canary
                        .as_ref()
                        .unwrap()
                        .traffic_routings[0]
                        .service
                        .clone()
                ),
                selector(
                    &reference,
                    &reference
                        .rollout
                        .spec
                        .strategy
                        .canary
                        .as_ref()
                        .unwrap()
                        .traffic_routings[0]
                        .service
                        .clone()
                ),
                "{at}"
            );
            assert!(w.canary().is_none(), "{at}");
            assert_eq!(
                w.cs().stable_revision,
                reference.cs().stable_revision,
                "{at}"
            );
            tried += 1;
        }
    }
    assert!(tried > 20, "only {tried} crash points");
}

#[test]
fn a_crash_after_any_action_of_a_subset_rollout_changes_nothing_in_the_outcome() {
    let mut start = bookinfo();
    start.set_version("v1-patched");
    assert_crash_safe(&start, 2);
}

#[test]
fn a_crash_after_any_action_of_an_http_route_rollout_changes_nothing_in_the_outcome() {
    let mut start = gamma();
    start.set_version("canary");
    assert_crash_safe(&start, 3);
}

#[test]
fn an_edit_to_the_destination_rule_mid_rollout_is_kept_and_warned_about_once() {
    let mut w = bookinfo();
    w.set_version("v1-patched");
    w.run_to_step(1, StepState::StepPaused);
    let canary_subset = subsets(&w)[3].clone();
    // Someone adds a subset, and in passing drops ramp's narrowing of v1.
    w.edit_object("DestinationRule", "reviews", |o| {
        let subsets = o["spec"]["subsets"].as_array_mut().unwrap();
        subsets[0]["labels"] = json!({"version": "v1"});
        subsets.push(json!({"name": "v4", "labels": {"version": "v4"}}));
    });
    let p = w.step();
    let drift: Vec<_> = p
        .events
        .iter()
        .filter(|e| e.reason == "RoutingDrift")
        .collect();
    assert_eq!(drift.len(), 1, "{:?}", p.events);
    assert!(
        drift[0]
            .message
            .starts_with("DestinationRule reviews was changed by someone else")
    );
    let stable = stable_hash(&w, "reviews-v1");
    let now = subsets(&w);
    assert_eq!(
        now[0]["labels"],
        json!({"version": "v1", POD_TEMPLATE_HASH_LABEL: stable})
    );
    assert_eq!(now[3], json!({"name": "v4", "labels": {"version": "v4"}}));
    assert_eq!(now[4], canary_subset);
    w.request(RolloutAction::PromoteFull);
    w.run_to_phase(RolloutPhase::Healthy);
    assert_eq!(
        subsets(&w),
        json!([
            {"name": "v1", "labels": {"version": "v1"}},
            {"name": "v2", "labels": {"version": "v2"}},
            {"name": "v3", "labels": {"version": "v3"}},
            {"name": "v4", "labels": {"version": "v4"}},
        ])
    );
    assert!(
        w.object("DestinationRule", "reviews")["metadata"]["annotations"]
            .get(ORIGINAL_SPEC_ANNOTATION)
            .is_none()
    );
}

#[test]
fn a_conflict_resolved_mid_rollout_lets_the_approved_step_go_on() {
    let mut w = World::load("walkthrough");
    w.run_to_phase(RolloutPhase::Healthy);
    w.set_version("canary");
    w.run_to_step(1, StepState::StepPaused);
    w.routing.insert(
        routing_key("VirtualService", "vs-copy"),
        other_vs(
            "vs-copy",
            json!({"gateways": ["simple-gateway"], "hosts": ["*"], "http": []}),
        ),
    );
    w.approve();
    assert!(w.step().error.is_some());
    assert_eq!(w.cs().current_step_state, StepState::StepReady);
    w.routing.remove(&routing_key("VirtualService", "vs-copy"));
    w.run_to_step(2, StepState::StepPaused);
    let http = &w.vs("vs-demo")["spec"]["http"];
    assert_eq!(http[0]["route"][1]["weight"], 50, "{http}");
    assert_eq!(w.canary().unwrap().spec.as_ref().unwrap().replicas, Some(2));
}
