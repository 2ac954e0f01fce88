//! The CRD committed in the chart must be what the Rust types generate.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

#[test]
fn committed_crd_matches_the_types() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../charts/ramp/crds/rollouts.ramp.dev.yaml"
    );
    let committed = std::fs::read_to_string(path).expect("the chart's CRD file exists");
    let generated = ramp_api::crd_yaml();
    assert!(
        committed == generated,
        "charts/ramp/crds/rollouts.ramp.dev.yaml is stale: run `make crds` and commit the result"
    );
}

#[test]
fn crd_schema_uses_signed_integers_and_status_subresource() {
    let crd: serde_json::Value = serde_yaml::from_str(&ramp_api::crd_yaml()).unwrap();
    let version = &crd["spec"]["versions"][0];
    assert_eq!(version["name"], "v1beta1");
    assert!(version["subresources"]["status"].is_object());
    let text = serde_json::to_string(&crd).unwrap();
    assert!(
        !text.contains("\"format\":\"uint"),
        "unsigned integer in the CRD schema"
    );
}
