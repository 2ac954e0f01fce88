//! Table tests for the Istio VirtualService provider: each case in
//! tests/fixtures/istio/cases.yaml (Service routing) and
//! tests/fixtures/istio/subsets.yaml (subset routing with a DestinationRule)
//! is an original spec, a step, and the spec ramp must produce (or the error
//! it must give).

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns unwrap fixtures too

mod common;

use common::{assert_restores_exactly, fixtures, load, step_routing};
use pretty_assertions::assert_eq;
use ramp_api::CanaryStep;
use ramp_core::routing::{
    IstioVirtualService, RoutingContext, StepRouting, SubsetRouting, TrafficProvider, provider_for,
};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Case {
    name: String,
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    canary_subset: Option<String>,
    step: CanaryStep,
    original: Value,
    #[serde(default)]
    expected: Option<Value>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default = "yes")]
    round_trip: bool,
}

fn yes() -> bool {
    true
}

fn ctx(service: &str) -> RoutingContext {
    RoutingContext {
        namespace: "default".into(),
        stable_service: service.into(),
        canary_service: format!("{service}-canary"),
        ..Default::default()
    }
}

/// bookinfo's reviews: DestinationRule `reviews` with subsets v1, v2, v3;
/// v1 selects the stable pods.
fn subset_ctx(canary: Option<&str>) -> RoutingContext {
    let canary = canary.unwrap_or("canary");
    RoutingContext {
        canary_subset_name: canary.into(),
        subsets: Some(SubsetRouting {
            destination_rule: "DestinationRule reviews".into(),
            stable: vec!["v1".into()],
            canary: canary.into(),
            defined: vec!["v1".into(), "v2".into(), "v3".into()],
        }),
        ..ctx("reviews")
    }
}

fn run_table(file: &str, min: usize, ctx_of: impl Fn(&Case) -> RoutingContext) {
    let cases: Vec<Case> = load(&fixtures().join(file));
    assert!(cases.len() >= min, "{file}: {} cases", cases.len());
    let p = IstioVirtualService;
    for case in cases {
        let ctx = ctx_of(&case);
        let step = step_routing(&case.step);
        let got = p.step_spec("VirtualService vs", &case.original, &step, &ctx);
        match (&case.expected, &case.error) {
            (Some(expected), None) => {
                let got = got.unwrap_or_else(|e| panic!("{}: {e}", case.name));
                assert_eq!(&got, expected, "{}", case.name);
                p.check("VirtualService vs", &case.original, &ctx)
                    .unwrap_or_else(|e| panic!("{}: check: {e}", case.name));
                if case.round_trip {
                    let back = p.strip_spec("VirtualService vs", &got, &ctx).unwrap();
                    assert_eq!(
                        back, case.original,
                        "{}: strip(expected) != original",
                        case.name
                    );
                }
                // The original is unchanged by stripping (nothing of ramp's in it).
                assert_eq!(
                    p.strip_spec("VirtualService vs", &case.original, &ctx)
                        .unwrap(),
                    case.original,
                    "{}: strip(original)",
                    case.name
                );
                assert_restores_exactly(
                    &p,
                    "networking.istio.io/v1",
                    "VirtualService",
                    &case.original,
                    &step,
                    &ctx,
                    &case.name,
                );
            }
            (None, Some(kind)) => {
                let err = got.expect_err(&case.name);
                assert_eq!(err.kind(), kind, "{}: {err}", case.name);
                assert!(
                    err.to_string().contains("VirtualService vs"),
                    "{}: {err}",
                    case.name
                );
            }
            _ => panic!("{}: give exactly one of expected and error", case.name),
        }
    }
}

#[test]
fn istio_virtual_service_table() {
    run_table("istio/cases.yaml", 20, |case| {
        ctx(case.service.as_deref().unwrap_or("service-demo"))
    });
}

#[test]
fn istio_virtual_service_subset_table() {
    run_table("istio/subsets.yaml", 8, |case| {
        subset_ctx(case.canary_subset.as_deref())
    });
}

#[test]
fn errors_name_the_object_and_the_field() {
    let p = IstioVirtualService;
    let ctx = ctx("service-demo");
    let step = StepRouting {
        weight: Some(10),
        matches: vec![],
        mirror: None,
        request_header_modifier: None,
    };
    let bad_host = json!({"http": [{"route": [{"destination": {"port": {"number": 80}}}]}]});
    let err = p
        .step_spec("VirtualService vs-demo", &bad_host, &step, &ctx)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "VirtualService vs-demo: spec.http[0].route[0].destination.host: must be a string"
    );
    let no_route = json!({"http": [{"route": [{"destination": {"host": "reviews"}}]}]});
    let err = p
        .step_spec("VirtualService vs-demo", &no_route, &step, &ctx)
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("VirtualService vs-demo has no http route to Service service-demo"),
        "{err}"
    );
    assert_eq!(err.reason(), "NoRouteToService");
    assert!(p.check("VirtualService vs-demo", &no_route, &ctx).is_err());
}

#[test]
fn subset_errors_name_the_virtual_service_the_destination_rule_and_the_field() {
    let p = IstioVirtualService;
    let step = StepRouting {
        weight: Some(50),
        ..Default::default()
    };
    let v4 = json!({"http": [{"route": [{"destination": {"host": "reviews", "subset": "v4"}}]}]});
    let err = p
        .check("VirtualService reviews", &v4, &subset_ctx(None))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "VirtualService reviews: spec.http[0].route[0].destination.subset: subset \"v4\" is not defined in DestinationRule reviews, the DestinationRule of Service reviews (it defines v1, v2, v3); add the subset there or fix the route"
    );
    assert_eq!(err.reason(), "UndefinedSubset");
    let v2 = json!({"http": [{"route": [{"destination": {"host": "reviews", "subset": "v2"}}]}]});
    let err = p
        .step_spec("VirtualService reviews", &v2, &step, &subset_ctx(None))
        .unwrap_err();
    assert!(
        err.to_string().starts_with(
            "VirtualService reviews has no http route to a stable subset (v1) of Service reviews from DestinationRule reviews"
        ),
        "{err}"
    );
}

#[test]
fn mirror_conflict_says_how_to_fix_it() {
    let p = IstioVirtualService;
    let step = StepRouting {
        mirror: Some(100),
        ..Default::default()
    };
    let spec = json!({"http": [{"route": [{"destination": {"host": "service-demo"}}], "mirror": {"host": "audit"}}]});
    let err = p
        .step_spec("VirtualService vs-demo", &spec, &step, &ctx("service-demo"))
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("VirtualService vs-demo: spec.http[0].mirror: the route already mirrors to {\"host\":\"audit\"}"),
        "{text}"
    );
    assert!(text.contains("mirrors"), "{text}");
}

#[test]
fn providers_are_found_by_group_and_kind() {
    assert!(provider_for("networking.istio.io/v1beta1", "VirtualService").is_some());
    assert!(provider_for("networking.istio.io/v1", "VirtualService").is_some());
    for (api_version, kind, name) in [
        (
            "networking.istio.io/v1alpha3",
            "DestinationRule",
            "istio-destinationrule",
        ),
        (
            "gateway.networking.k8s.io/v1",
            "HTTPRoute",
            "gateway-httproute",
        ),
        (
            "gateway.networking.k8s.io/v1beta1",
            "HTTPRoute",
            "gateway-httproute",
        ),
    ] {
        assert_eq!(provider_for(api_version, kind).unwrap().name(), name);
    }
    assert!(provider_for("gateway.networking.k8s.io/v1", "GRPCRoute").is_none());
    assert!(provider_for("example.com/v1", "VirtualService").is_none());
    assert!(provider_for("example.com/v1", "HTTPRoute").is_none());
}
