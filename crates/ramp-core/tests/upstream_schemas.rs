//! What ramp writes into routing objects must be what the API server stores:
//! every original and expected spec of the provider tables is validated,
//! pruned and defaulted against the upstream CRDs (Istio 1.30
//! VirtualService and DestinationRule, Gateway API v1.6 standard HTTPRoute,
//! from `$RAMP_SHARED_CRDS`) with ramp-sim's schema code, and must come out
//! valid and unchanged. A field the server would drop or default differently
//! would otherwise make ramp re-apply the same step forever.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers outside #[test] fns unwrap fixtures too

mod common;

use common::{fixtures, load};
use pretty_assertions::assert_eq;
use ramp_sim::schema::{validate_and_prune, version_schema};
use serde_json::{Value, json};

fn schema(file: &str, version: &str) -> Value {
    let path = ramp_sim::shared_crds_dir().join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (set RAMP_SHARED_CRDS)", path.display()));
    let crd: Value = serde_yaml::from_str(&text).unwrap();
    version_schema(&crd, version).unwrap().clone()
}

fn check_table(table: &str, crd: &str, api_version: &str, kind: &str, min: usize) {
    let version = api_version.rsplit_once('/').unwrap().1;
    let schema = schema(crd, version);
    let cases: Vec<Value> = load(&fixtures().join(table));
    let mut checked = 0;
    for case in cases {
        let name = case["name"].as_str().unwrap().to_string();
        for which in ["original", "expected"] {
            let Some(spec) = case.get(which) else {
                continue;
            };
            if case.get("error").is_some() {
                // Refused inputs may be invalid on purpose.
                continue;
            }
            let object = json!({
                "apiVersion": api_version,
                "kind": kind,
                "metadata": {"name": "obj", "namespace": "default"},
                "spec": spec,
            });
            let mut stored = object.clone();
            if let Err(causes) = validate_and_prune(&schema, &mut stored) {
                panic!("{table}: {name}: {which} is invalid: {causes:?}");
            }
            assert_eq!(
                stored, object,
                "{table}: {name}: {which} changes when stored"
            );
            checked += 1;
        }
    }
    assert!(checked >= min, "{table}: only {checked} objects checked");
}

#[test]
fn virtual_services_ramp_writes_are_stored_as_written() {
    let crd = "istio-networking.istio.io_virtualservices.yaml";
    check_table(
        "istio/cases.yaml",
        crd,
        "networking.istio.io/v1",
        "VirtualService",
        30,
    );
    check_table(
        "istio/subsets.yaml",
        crd,
        "networking.istio.io/v1",
        "VirtualService",
        12,
    );
}

#[test]
fn destination_rules_ramp_writes_are_stored_as_written() {
    check_table(
        "destinationrule/cases.yaml",
        "istio-networking.istio.io_destinationrules.yaml",
        "networking.istio.io/v1",
        "DestinationRule",
        6,
    );
}

#[test]
fn http_routes_ramp_writes_are_stored_as_written() {
    for version in ["v1", "v1beta1"] {
        check_table(
            "gateway/cases.yaml",
            "gateway.networking.k8s.io_httproutes.yaml",
            &format!("gateway.networking.k8s.io/{version}"),
            "HTTPRoute",
            20,
        );
    }
}

#[test]
fn a_field_the_server_would_drop_is_caught() {
    // The check above can fail: an unknown field is pruned by the server.
    let schema = schema("gateway.networking.k8s.io_httproutes.yaml", "v1");
    let object = json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "obj", "namespace": "default"},
        "spec": {"rules": [{"backendRefs": [{"group": "", "kind": "Service", "name": "a", "port": 80, "weight": 1, "subset": "v1"}],
                            "matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}]},
    });
    let mut stored = object.clone();
    validate_and_prune(&schema, &mut stored).unwrap();
    assert_ne!(stored, object);
    // And a missing default is filled in.
    let mut bare = json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "obj", "namespace": "default"},
        "spec": {"rules": [{"backendRefs": [{"name": "a", "port": 80}]}]},
    });
    validate_and_prune(&schema, &mut bare).unwrap();
    assert_eq!(
        bare["spec"]["rules"][0]["backendRefs"][0],
        json!({"group": "", "kind": "Service", "name": "a", "port": 80, "weight": 1})
    );
}
