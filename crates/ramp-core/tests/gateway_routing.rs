//! Table tests for the Gateway API HTTPRoute provider: each case in
//! tests/fixtures/gateway/cases.yaml is an original spec, a step, and the
//! spec ramp must produce (or the error it must give).

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns unwrap fixtures too

mod common;

use common::{assert_restores_exactly, fixtures, load, step_routing};
use pretty_assertions::assert_eq;
use ramp_api::CanaryStep;
use ramp_core::routing::{GatewayHttpRoute, RoutingContext, StepRouting, TrafficProvider};
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
}

fn ctx(service: &str) -> RoutingContext {
    RoutingContext {
        namespace: "default".into(),
        stable_service: service.into(),
        canary_service: format!("{service}-canary"),
        ..Default::default()
    }
}

#[test]
fn gateway_http_route_table() {
    let cases: Vec<Case> = load(&fixtures().join("gateway/cases.yaml"));
    assert!(cases.len() >= 15);
    let p = GatewayHttpRoute;
    let object = "HTTPRoute route";
    for case in cases {
        let ctx = ctx(case.service.as_deref().unwrap_or("service-demo"));
        let step = step_routing(&case.step);
        let got = p.step_spec(object, &case.original, &step, &ctx);
        match (&case.expected, &case.error) {
            (Some(expected), None) => {
                let got = got.unwrap_or_else(|e| panic!("{}: {e}", case.name));
                assert_eq!(&got, expected, "{}", case.name);
                p.check(object, &case.original, &ctx).unwrap();
                assert_eq!(
                    p.strip_spec(object, &got, &ctx).unwrap(),
                    case.original,
                    "{}: strip(expected) != original",
                    case.name
                );
                assert_eq!(
                    p.strip_spec(object, &case.original, &ctx).unwrap(),
                    case.original,
                    "{}: strip(original)",
                    case.name
                );
                assert_restores_exactly(
                    &p,
                    "gateway.networking.k8s.io/v1",
                    "HTTPRoute",
                    &case.original,
                    &step,
                    &ctx,
                    &case.name,
                );
            }
            (None, Some(kind)) => {
                let err = got.expect_err(&case.name);
                assert_eq!(err.kind(), kind, "{}: {err}", case.name);
                assert!(err.to_string().contains(object), "{}: {err}", case.name);
            }
            _ => panic!("{}: give exactly one of expected and error", case.name),
        }
    }
}

#[test]
fn errors_name_the_route_and_the_field() {
    let p = GatewayHttpRoute;
    let ctx = ctx("service-demo");
    let weight = StepRouting {
        weight: Some(10),
        ..Default::default()
    };
    let no_name = json!({"rules": [{"backendRefs": [{"port": 80}]}]});
    assert_eq!(
        p.step_spec("HTTPRoute demo", &no_name, &weight, &ctx)
            .unwrap_err()
            .to_string(),
        "HTTPRoute demo: spec.rules[0].backendRefs[0].name: must be a string"
    );
    let elsewhere = json!({"rules": [{"backendRefs": [{"name": "reviews", "port": 80}]}]});
    let err = p.check("HTTPRoute demo", &elsewhere, &ctx).unwrap_err();
    assert_eq!(
        err.to_string(),
        "HTTPRoute demo has no http route to Service service-demo (a rule with a backendRef to Service service-demo in namespace default); add one or remove the object from spec.strategy.canary.trafficRoutings[0]"
    );
    let header = StepRouting {
        matches: vec![ramp_api::HttpRouteMatch {
            path: Some(ramp_api::HttpPathMatch {
                type_: Some(ramp_api::PathMatchType::Exact),
                value: "/login".into(),
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let api = json!({"rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
        "backendRefs": [{"name": "service-demo", "port": 80}]}]});
    let err = p
        .step_spec("HTTPRoute demo", &api, &header, &ctx)
        .unwrap_err();
    assert!(
        err.to_string().starts_with(
            "HTTPRoute demo: spec.rules[0].matches[0].path: the rule already requires path"
        ),
        "{err}"
    );
}

#[test]
fn a_route_that_would_exceed_sixteen_rules_is_refused() {
    let p = GatewayHttpRoute;
    let rule = json!({"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
        "backendRefs": [{"group": "", "kind": "Service", "name": "service-demo", "port": 80, "weight": 1}]});
    let spec = json!({"rules": vec![rule; 9]});
    let header = StepRouting {
        matches: vec![ramp_api::HttpRouteMatch {
            headers: vec![ramp_api::HttpHeaderMatch {
                name: "version".into(),
                value: "canary".into(),
                type_: None,
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let err = p
        .step_spec("HTTPRoute demo", &spec, &header, &ctx("service-demo"))
        .unwrap_err();
    assert!(
        err.to_string().contains("needs 18 rules") && err.to_string().contains("at most 16"),
        "{err}"
    );
    // Weights alone add no rules.
    let weight = StepRouting {
        weight: Some(5),
        ..Default::default()
    };
    assert!(
        p.step_spec("HTTPRoute demo", &spec, &weight, &ctx("service-demo"))
            .is_ok()
    );
}
