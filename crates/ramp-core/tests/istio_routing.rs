//! Table tests for the Istio VirtualService provider: each case in
//! tests/fixtures/istio/cases.yaml is an original spec, a step, and the spec
//! ramp must produce (or the error it must give).

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap fixtures too

mod common;

use common::{fixtures, load};
use pretty_assertions::assert_eq;
use ramp_api::CanaryStep;
use ramp_core::routing::{
    IstioVirtualService, RoutingContext, StepRouting, TrafficProvider, provider_for,
};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Case {
    name: String,
    #[serde(default)]
    service: Option<String>,
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

fn routing(step: &CanaryStep) -> StepRouting {
    StepRouting {
        weight: step
            .traffic
            .as_deref()
            .map(|t| ramp_core::parse_percent(t, "traffic").unwrap()),
        matches: step.matches.clone(),
        mirror: step.mirror.as_ref().map(|m| m.percent),
    }
}

#[test]
fn istio_virtual_service_table() {
    let cases: Vec<Case> = load(&fixtures().join("istio/cases.yaml"));
    assert!(cases.len() >= 15);
    let p = IstioVirtualService;
    for case in cases {
        let ctx = ctx(case.service.as_deref().unwrap_or("service-demo"));
        let step = routing(&case.step);
        let got = p.step_spec("VirtualService vs", &case.original, &step, &ctx);
        match (&case.expected, &case.error) {
            (Some(expected), None) => {
                let got = got.unwrap_or_else(|e| panic!("{}: {e}", case.name));
                assert_eq!(&got, expected, "{}", case.name);
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
fn errors_name_the_object_and_the_field() {
    let p = IstioVirtualService;
    let ctx = ctx("service-demo");
    let step = StepRouting {
        weight: Some(10),
        matches: vec![],
        mirror: None,
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
