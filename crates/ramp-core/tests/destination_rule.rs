//! Table tests for the Istio DestinationRule provider (subset routing):
//! each case in tests/fixtures/destinationrule/cases.yaml is an original
//! spec and the pods' hashes, and the spec ramp must produce (or the error).

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns unwrap fixtures too

mod common;

use std::collections::BTreeMap;

use common::{assert_restores_exactly, fixtures, load};
use pretty_assertions::assert_eq;
use ramp_core::routing::{
    IstioDestinationRule, RoutingContext, StepRouting, TrafficProvider, subset_routing,
};
use serde::Deserialize;
use serde_json::{Value, json};

const STABLE_HASH: &str = "5d9c7f8b6a";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Case {
    name: String,
    #[serde(default)]
    canary_hash: Option<String>,
    #[serde(default)]
    canary_subset: Option<String>,
    #[serde(default)]
    stable_labels: Option<BTreeMap<String, String>>,
    original: Value,
    #[serde(default)]
    subsets: Option<ExpectedSubsets>,
    #[serde(default)]
    expected: Option<Value>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct ExpectedSubsets {
    stable: Vec<String>,
    defined: Vec<String>,
}

fn ctx(case: &Case) -> RoutingContext {
    let labels = case.stable_labels.clone().unwrap_or_else(|| {
        BTreeMap::from([
            ("app".to_string(), "reviews".to_string()),
            ("version".to_string(), "v1".to_string()),
            ("pod-template-hash".to_string(), STABLE_HASH.to_string()),
        ])
    });
    RoutingContext {
        namespace: "default".into(),
        stable_service: "reviews".into(),
        canary_service: "reviews-canary".into(),
        stable_pod_template_hash: Some(STABLE_HASH.into()),
        canary_pod_template_hash: case.canary_hash.clone(),
        stable_pod_labels: labels,
        canary_subset_name: case.canary_subset.clone().unwrap_or_default(),
        subsets: None,
    }
}

#[test]
fn istio_destination_rule_table() {
    let cases: Vec<Case> = load(&fixtures().join("destinationrule/cases.yaml"));
    assert!(cases.len() >= 8);
    let p = IstioDestinationRule;
    let object = "DestinationRule reviews";
    // The step does not matter to a DestinationRule: the VirtualServices
    // carry weights and matches.
    let steps = [
        StepRouting {
            weight: Some(50),
            ..Default::default()
        },
        StepRouting {
            mirror: Some(100),
            ..Default::default()
        },
    ];
    for case in cases {
        let ctx = ctx(&case);
        let got = p.step_spec(object, &case.original, &steps[0], &ctx);
        match (&case.expected, &case.error) {
            (Some(expected), None) => {
                let got = got.unwrap_or_else(|e| panic!("{}: {e}", case.name));
                assert_eq!(&got, expected, "{}", case.name);
                assert_eq!(
                    p.step_spec(object, &case.original, &steps[1], &ctx)
                        .unwrap(),
                    got,
                    "{}: another step, the same subsets",
                    case.name
                );
                p.check(object, &case.original, &ctx).unwrap();
                let routing = subset_routing(object, &case.original, &ctx).unwrap();
                let want = case
                    .subsets
                    .as_ref()
                    .expect("cases with expected give subsets");
                assert_eq!(routing.stable, want.stable, "{}: stable subsets", case.name);
                assert_eq!(routing.defined, want.defined, "{}: defined", case.name);
                assert_eq!(routing.canary, ctx.canary_subset(), "{}", case.name);
                assert_eq!(routing.destination_rule, object);
                assert_eq!(
                    p.strip_spec(object, &got, &ctx).unwrap(),
                    case.original,
                    "{}: strip(expected) != original",
                    case.name
                );
                assert_restores_exactly(
                    &p,
                    "networking.istio.io/v1",
                    "DestinationRule",
                    &case.original,
                    &steps[0],
                    &ctx,
                    &case.name,
                );
            }
            (None, Some(kind)) => {
                let err = got.expect_err(&case.name);
                assert_eq!(err.kind(), kind, "{}: {err}", case.name);
                let text = err.to_string();
                let needle = case.message.as_deref().unwrap_or(object);
                assert!(text.contains(needle), "{}: {text}", case.name);
                assert!(text.starts_with(object), "{}: {text}", case.name);
                assert_eq!(
                    p.check(object, &case.original, &ctx).unwrap_err(),
                    err,
                    "{}: check gives the same error",
                    case.name
                );
            }
            _ => panic!("{}: give exactly one of expected and error", case.name),
        }
    }
}

#[test]
fn the_stable_hash_must_be_known() {
    let p = IstioDestinationRule;
    let ctx = RoutingContext {
        namespace: "default".into(),
        stable_service: "reviews".into(),
        stable_pod_labels: BTreeMap::from([("version".into(), "v1".into())]),
        ..Default::default()
    };
    let spec = json!({"host": "reviews", "subsets": [{"name": "v1", "labels": {"version": "v1"}}]});
    let err = p
        .step_spec(
            "DestinationRule reviews",
            &spec,
            &StepRouting::default(),
            &ctx,
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("pod-template-hash is not known"),
        "{err}"
    );
}
