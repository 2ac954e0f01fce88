//! The drift function: given the live routing object and what the current
//! step wants, tell in-sync / ramp's own older shape / someone else's edit,
//! and for an edit derive the new original so the edit is kept.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use pretty_assertions::assert_eq;
use ramp_api::names::ORIGINAL_SPEC_ANNOTATION;
use ramp_api::{HttpHeaderMatch, HttpRouteMatch};
use ramp_core::routing::{
    IstioVirtualService, OriginalConfiguration, RoutingContext, RoutingVerdict, StepRouting,
    assess, desired_object, routing_patch,
};
use serde_json::{Value, json};

fn ctx() -> RoutingContext {
    RoutingContext {
        namespace: "default".into(),
        stable_service: "service-demo".into(),
        canary_service: "service-demo-canary".into(),
        ..Default::default()
    }
}

fn original() -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "VirtualService",
        "metadata": {"name": "vs-demo", "namespace": "default", "resourceVersion": "7",
                     "labels": {"team": "demo"}},
        "spec": {"hosts": ["*"], "http": [{"route": [{"destination": {"host": "service-demo"}}]}]}
    })
}

fn header_step() -> StepRouting {
    StepRouting {
        weight: None,
        matches: vec![HttpRouteMatch {
            headers: vec![HttpHeaderMatch {
                name: "version".into(),
                value: "canary".into(),
                type_: None,
            }],
            ..Default::default()
        }],
        mirror: None,
        request_header_modifier: None,
    }
}

fn weight(w: i32) -> StepRouting {
    StepRouting {
        weight: Some(w),
        matches: vec![],
        mirror: None,
        request_header_modifier: None,
    }
}

fn known() -> Vec<StepRouting> {
    vec![header_step(), weight(50), weight(80)]
}

fn at_step(live: &Value, step: &StepRouting) -> Value {
    let p = IstioVirtualService;
    let original = OriginalConfiguration::from_object(live);
    desired_object(&p, live, &original, Some(step), &ctx()).unwrap()
}

#[test]
fn untouched_original_is_behind_and_the_desired_object_saves_it() {
    let p = IstioVirtualService;
    let live = original();
    let RoutingVerdict::Behind { desired } =
        assess(&p, &live, Some(&weight(50)), &known(), &ctx()).unwrap()
    else {
        panic!("expected Behind");
    };
    let saved = OriginalConfiguration::saved(&desired).unwrap().unwrap();
    assert_eq!(saved, OriginalConfiguration::from_object(&live));
    assert_eq!(
        serde_json::to_value(&saved).unwrap(),
        json!({"spec": live["spec"], "labels": {"team": "demo"}})
    );
    assert_eq!(desired["metadata"]["labels"], json!({"team": "demo"}));
    assert_eq!(desired["spec"]["http"][0]["route"][1]["weight"], 50);
    // Restoring an untouched object is a no-op.
    assert_eq!(
        assess(&p, &live, None, &known(), &ctx()).unwrap(),
        RoutingVerdict::InSync
    );
}

#[test]
fn the_wanted_shape_is_in_sync_and_another_steps_shape_is_behind() {
    let p = IstioVirtualService;
    let step2 = at_step(&original(), &weight(50));
    assert_eq!(
        assess(&p, &step2, Some(&weight(50)), &known(), &ctx()).unwrap(),
        RoutingVerdict::InSync
    );
    let step1 = at_step(&original(), &header_step());
    match assess(&p, &step1, Some(&weight(50)), &known(), &ctx()).unwrap() {
        RoutingVerdict::Behind { desired } => {
            assert_eq!(desired["spec"], step2["spec"]);
            assert_eq!(
                desired["metadata"]["annotations"][ORIGINAL_SPEC_ANNOTATION],
                step2["metadata"]["annotations"][ORIGINAL_SPEC_ANNOTATION]
            );
        }
        other => panic!("expected Behind, got {other:?}"),
    }
    // Restoring from step 2 gives the original back exactly.
    let RoutingVerdict::Behind { desired } = assess(&p, &step2, None, &known(), &ctx()).unwrap()
    else {
        panic!()
    };
    assert_eq!(desired, original());
}

#[test]
fn an_edit_by_someone_else_becomes_the_new_original() {
    let p = IstioVirtualService;
    let mut live = at_step(&original(), &weight(50));
    let admin = json!({"match": [{"uri": {"prefix": "/admin"}}], "route": [{"destination": {"host": "admin"}}]});
    live["spec"]["http"]
        .as_array_mut()
        .unwrap()
        .insert(0, admin.clone());
    live["metadata"]["labels"]["owner"] = json!("alice");
    let RoutingVerdict::Drifted {
        original: new_original,
        desired,
    } = assess(&p, &live, Some(&weight(50)), &known(), &ctx()).unwrap()
    else {
        panic!("expected Drifted");
    };
    assert_eq!(
        new_original.spec["http"],
        json!([admin, {"route": [{"destination": {"host": "service-demo"}}]}])
    );
    assert_eq!(new_original.labels.as_ref().unwrap()["owner"], "alice");
    // The routes already are what the step wants; only the saved original changes.
    assert_eq!(desired["spec"], live["spec"]);
    assert_eq!(
        OriginalConfiguration::saved(&desired).unwrap().unwrap(),
        new_original
    );
    // Finishing after the edit restores the edited original.
    let RoutingVerdict::Behind { desired: restored } =
        assess(&p, &desired, None, &known(), &ctx()).unwrap()
    else {
        panic!()
    };
    assert_eq!(restored["spec"], new_original.spec);
    assert!(restored["metadata"].get("annotations").is_none());
}

#[test]
fn hand_edited_weights_are_put_back() {
    let p = IstioVirtualService;
    let mut live = at_step(&original(), &weight(50));
    live["spec"]["http"][0]["route"][0]["weight"] = json!(90);
    live["spec"]["http"][0]["route"][1]["weight"] = json!(10);
    let RoutingVerdict::Drifted {
        original: o,
        desired,
    } = assess(&p, &live, Some(&weight(50)), &known(), &ctx()).unwrap()
    else {
        panic!("expected Drifted");
    };
    assert_eq!(o.spec, original()["spec"]);
    assert_eq!(desired["spec"]["http"][0]["route"][0]["weight"], 50);
    assert_eq!(desired["spec"]["http"][0]["route"][1]["weight"], 50);
}

#[test]
fn a_removed_annotation_is_recovered_by_stripping() {
    let p = IstioVirtualService;
    let mut live = at_step(&original(), &weight(80));
    live["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("annotations");
    let RoutingVerdict::Drifted {
        original: o,
        desired,
    } = assess(&p, &live, Some(&weight(80)), &known(), &ctx()).unwrap()
    else {
        panic!("expected Drifted");
    };
    assert_eq!(o, OriginalConfiguration::from_object(&original()));
    assert_eq!(desired["spec"], live["spec"], "no duplicated canary routes");
}

#[test]
fn patches_are_guarded_by_the_resource_version() {
    let live = original();
    let desired = at_step(&live, &weight(50));
    let patch = routing_patch(&live, &desired).unwrap();
    let ops = serde_json::to_value(&patch).unwrap();
    assert_eq!(
        ops[0],
        json!({"op": "test", "path": "/metadata/resourceVersion", "value": "7"})
    );
    let mut doc = live.clone();
    json_patch::patch(&mut doc, &patch).unwrap();
    assert_eq!(doc, desired);
    let mut edited = live.clone();
    edited["metadata"]["resourceVersion"] = json!("8");
    assert!(json_patch::patch(&mut edited, &patch).is_err());
    assert_eq!(routing_patch(&desired, &desired), None);
}

mod destination_rule {
    use super::*;
    use pretty_assertions::assert_eq;
    use ramp_core::routing::IstioDestinationRule;
    use std::collections::BTreeMap;

    fn ctx(canary_hash: Option<&str>) -> RoutingContext {
        RoutingContext {
            namespace: "default".into(),
            stable_service: "reviews".into(),
            canary_service: "reviews-canary".into(),
            stable_pod_template_hash: Some("stable1".into()),
            canary_pod_template_hash: canary_hash.map(str::to_string),
            stable_pod_labels: BTreeMap::from([
                ("app".into(), "reviews".into()),
                ("version".into(), "v1".into()),
                ("pod-template-hash".into(), "stable1".into()),
            ]),
            ..Default::default()
        }
    }

    fn original() -> Value {
        json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "DestinationRule",
            "metadata": {"name": "reviews", "namespace": "default", "resourceVersion": "3"},
            "spec": {"host": "reviews", "subsets": [
                {"name": "v1", "labels": {"version": "v1"}},
                {"name": "v3", "labels": {"version": "v3"}}
            ]}
        })
    }

    /// ramp's DestinationRule for `canary_hash` (None: before the canary pods' hash is known).
    fn written(canary_hash: Option<&str>) -> Value {
        let live = original();
        let saved = OriginalConfiguration::from_object(&live);
        desired_object(
            &IstioDestinationRule,
            &live,
            &saved,
            Some(&StepRouting::default()),
            &ctx(canary_hash),
        )
        .unwrap()
    }

    #[test]
    fn ramps_own_earlier_subsets_are_behind_not_drift() {
        let p = IstioDestinationRule;
        // Written before the canary pods' hash was known, and for an earlier canary.
        for earlier in [written(None), written(Some("old-canary"))] {
            let wanted = StepRouting::default();
            match assess(&p, &earlier, Some(&wanted), &[], &ctx(Some("canary1"))).unwrap() {
                RoutingVerdict::Behind { desired } => {
                    assert_eq!(desired, written(Some("canary1")))
                }
                other => panic!("expected Behind, got {other:?}"),
            }
        }
    }

    #[test]
    fn the_original_reapplied_over_ramps_subsets_is_drift() {
        let p = IstioDestinationRule;
        // kubectl apply of the original manifest: ramp's annotation (not in
        // the manifest) stays, the subsets are the original ones again.
        let mut reapplied = written(Some("canary1"));
        reapplied["spec"] = original()["spec"].clone();
        reapplied["metadata"]["resourceVersion"] = json!("9");
        match assess(
            &p,
            &reapplied,
            Some(&StepRouting::default()),
            &[],
            &ctx(Some("canary1")),
        )
        .unwrap()
        {
            RoutingVerdict::Drifted {
                original: o,
                desired,
            } => {
                assert_eq!(o.spec, original()["spec"]);
                assert_eq!(desired["spec"], written(Some("canary1"))["spec"]);
                assert!(
                    desired["metadata"]["annotations"]
                        .get(ORIGINAL_SPEC_ANNOTATION)
                        .is_some()
                );
            }
            other => panic!("expected Drifted, got {other:?}"),
        }
    }
}
