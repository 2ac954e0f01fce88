//! Custom resources: the upstream Istio and Gateway API CRDs load and are served at once
//! (discovery, OpenAPI); objects are validated and pruned against the version's schema;
//! deleting a CRD deletes its objects.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers

use std::time::Duration;

use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::Discovery;
use ramp_sim::TestCluster;
use serde_json::{Value, json};

async fn cluster_with_shared_crds() -> TestCluster {
    let c = TestCluster::start().await.unwrap();
    let loaded = c.load_crds(&[ramp_sim::shared_crds_dir()]).unwrap();
    assert_eq!(loaded.len(), 3, "{loaded:?}");
    c
}

fn vs_api(c: &TestCluster, version: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("networking.istio.io", version, "VirtualService");
    Api::namespaced_with(
        c.client(),
        "default",
        &ApiResource::from_gvk_with_plural(&gvk, "virtualservices"),
    )
}

fn dynamic(v: Value) -> DynamicObject {
    serde_json::from_value(v).unwrap()
}

async fn get_text(c: &TestCluster, path: &str) -> String {
    c.client()
        .request_text(http::Request::get(path).body(Vec::new()).unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn upstream_crds_are_served_with_all_versions() {
    let c = cluster_with_shared_crds().await;
    let d = Discovery::new(c.client()).run().await.unwrap();
    let istio = d
        .get("networking.istio.io")
        .expect("istio group discovered");
    let versions: Vec<&str> = istio.versions().collect();
    assert_eq!(versions, vec!["v1", "v1beta1", "v1alpha3"]);
    assert!(
        istio
            .recommended_resources()
            .iter()
            .any(|(r, caps)| r.kind == "VirtualService"
                && caps.subresources.iter().any(|(s, _)| s.plural == "status"))
    );
    let gw = d.get("gateway.networking.k8s.io").expect("gateway group");
    assert!(
        gw.recommended_resources()
            .iter()
            .any(|(r, _)| r.kind == "HTTPRoute")
    );

    // Every served version gets an OpenAPI document whose PATCH takes fieldValidation.
    let index: Value = serde_json::from_str(&get_text(&c, "/openapi/v3").await).unwrap();
    for v in ["v1", "v1beta1", "v1alpha3"] {
        let url = index["paths"][format!("apis/networking.istio.io/{v}")]["serverRelativeURL"]
            .as_str()
            .unwrap_or_else(|| panic!("no openapi entry for {v}: {index}"))
            .to_string();
        let doc: Value = serde_json::from_str(&get_text(&c, &url).await).unwrap();
        let op = &doc["paths"][format!(
            "/apis/networking.istio.io/{v}/namespaces/{{namespace}}/virtualservices/{{name}}"
        )]["patch"];
        assert_eq!(
            op["x-kubernetes-group-version-kind"]["kind"],
            "VirtualService"
        );
        assert!(
            op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        let schema =
            &doc["components"]["schemas"][format!("io.istio.networking.{v}.VirtualService")];
        assert!(
            schema["properties"]["spec"]["properties"]["hosts"].is_object(),
            "{schema}"
        );
    }
}

#[tokio::test]
async fn unknown_fields_are_pruned_and_wrong_types_rejected() {
    let c = cluster_with_shared_crds().await;
    let api = vs_api(&c, "v1");
    let created = api
        .create(
            &PostParams::default(),
            &dynamic(json!({
                "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                "metadata": {"name": "reviews"},
                "spec": {
                    "hosts": ["reviews"],
                    "bogus": true,
                    "http": [{"route": [
                        {"destination": {"host": "reviews", "subset": "v1", "colour": "red"}, "weight": 90},
                        {"destination": {"host": "reviews", "subset": "v2"}, "weight": 10}
                    ]}]
                }
            })),
        )
        .await
        .unwrap();
    let spec = &created.data["spec"];
    assert!(spec.get("bogus").is_none(), "unknown field kept: {spec}");
    assert!(
        spec["http"][0]["route"][0]["destination"]
            .get("colour")
            .is_none()
    );
    assert_eq!(spec["http"][0]["route"][0]["weight"], 90);
    // Stored pruned, not just returned pruned.
    let got = api.get("reviews").await.unwrap();
    assert!(got.data["spec"].get("bogus").is_none());

    let err = api
        .create(
            &PostParams::default(),
            &dynamic(json!({
                "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                "metadata": {"name": "broken"},
                "spec": {"hosts": "reviews"}
            })),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("expected an API error, got {err:?}")
    };
    assert_eq!(status.code, 422);
    assert_eq!(status.reason, "Invalid");
    assert!(status.message.contains("spec.hosts"), "{}", status.message);
    let causes = status.details.unwrap().causes;
    assert!(causes.iter().any(|c| c.field == "spec.hosts"), "{causes:?}");
    assert!(api.get_opt("broken").await.unwrap().is_none());
}

// kubectl runs as a blocking child process here: keep the server on other worker threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_reports_unknown_fields_and_prunes_without_validation() {
    let c = cluster_with_shared_crds().await;
    let vs = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs}
spec:
  hosts: [web]
  bogus: 1
  http:
  - route:
    - destination: {host: web}
"#;
    let run = |args: &[&str]| {
        let mut cmd = c.kubectl();
        cmd.args(args).stdin(std::process::Stdio::piped());
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(vs.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    // Default kubectl apply asks for strict server-side field validation.
    let strict = run(&["apply", "-f", "-"]);
    assert!(!strict.status.success());
    let err = String::from_utf8_lossy(&strict.stderr);
    assert!(err.contains("unknown field \"spec.bogus\""), "{err}");
    // Without validation the object is stored pruned.
    let lax = run(&["apply", "--validate=false", "-f", "-"]);
    assert!(
        lax.status.success(),
        "{}",
        String::from_utf8_lossy(&lax.stderr)
    );
    let got = c
        .kubectl()
        .args(["get", "vs", "vs", "-o", "json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&got.stdout).unwrap();
    assert_eq!(
        v["spec"],
        json!({"hosts": ["web"], "http": [{"route": [{"destination": {"host": "web"}}]}]})
    );
}

#[tokio::test]
async fn versions_share_storage_and_crd_deletion_removes_objects() {
    let c = cluster_with_shared_crds().await;
    vs_api(&c, "v1beta1")
        .create(
            &PostParams::default(),
            &dynamic(json!({
                "apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
                "metadata": {"name": "old"}, "spec": {"hosts": ["old"]}
            })),
        )
        .await
        .unwrap();
    let via_v1 = vs_api(&c, "v1").get("old").await.unwrap();
    assert_eq!(
        via_v1.types.as_ref().unwrap().api_version,
        "networking.istio.io/v1"
    );
    let via_alpha = vs_api(&c, "v1alpha3").get("old").await.unwrap();
    assert_eq!(
        via_alpha.types.as_ref().unwrap().api_version,
        "networking.istio.io/v1alpha3"
    );

    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(c.client());
    crds.delete("virtualservices.networking.istio.io", &Default::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let err = vs_api(&c, "v1").get("old").await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 404),
        "{err:?}"
    );
    let d = Discovery::new(c.client()).run().await.unwrap();
    let istio = d.get("networking.istio.io").unwrap();
    assert!(
        !istio
            .recommended_resources()
            .iter()
            .any(|(r, _)| r.kind == "VirtualService")
    );
    assert!(
        istio
            .recommended_resources()
            .iter()
            .any(|(r, _)| r.kind == "DestinationRule")
    );
}

#[tokio::test]
async fn crd_created_over_the_api_is_established_and_served_at_once() {
    let c = TestCluster::start().await.unwrap();
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(c.client());
    let crd = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {"group": "example.com", "scope": "Cluster",
                 "names": {"plural": "gadgets", "kind": "Gadget"},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                   "subresources": {"scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}, "status": {}},
                   "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                     "spec": {"type": "object", "required": ["replicas"], "properties": {
                        "replicas": {"type": "integer", "minimum": 0},
                        "mode": {"type": "string", "enum": ["a", "b"], "default": "a"}}},
                     "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}]}
    }))
    .unwrap();
    let created = crds.create(&PostParams::default(), &crd).await.unwrap();
    let conds = created.status.unwrap().conditions.unwrap();
    assert!(
        conds
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    );
    assert!(
        conds
            .iter()
            .any(|c| c.type_ == "NamesAccepted" && c.status == "True")
    );

    let gvk = GroupVersionKind::gvk("example.com", "v1", "Gadget");
    let api: Api<DynamicObject> = Api::all_with(
        c.client(),
        &ApiResource::from_gvk_with_plural(&gvk, "gadgets"),
    );
    let g = api
        .create(
            &PostParams::default(),
            &dynamic(json!({"apiVersion": "example.com/v1", "kind": "Gadget",
                            "metadata": {"name": "g1"}, "spec": {"replicas": 2}})),
        )
        .await
        .unwrap();
    assert_eq!(g.data["spec"]["mode"], "a", "schema defaults apply");
    assert_eq!(g.metadata.generation, Some(1));
    let err = api
        .create(
            &PostParams::default(),
            &dynamic(json!({"apiVersion": "example.com/v1", "kind": "Gadget",
                            "metadata": {"name": "g2"}, "spec": {"mode": "c"}})),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(s) = err else { panic!() };
    let fields: Vec<String> = s
        .details
        .unwrap()
        .causes
        .into_iter()
        .map(|c| c.field)
        .collect();
    assert!(fields.contains(&"spec.replicas".to_string()), "{fields:?}");
    assert!(fields.contains(&"spec.mode".to_string()), "{fields:?}");

    // Scale subresource declared by the CRD.
    let scale = api.get_scale("g1").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(2));
    // Status changes do not bump generation; spec changes do.
    let s = api
        .patch_status(
            "g1",
            &Default::default(),
            &kube::api::Patch::Merge(json!({"status": {"replicas": 2}})),
        )
        .await
        .unwrap();
    assert_eq!(s.metadata.generation, Some(1));
    let s = api
        .patch(
            "g1",
            &Default::default(),
            &kube::api::Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(s.metadata.generation, Some(2));
}
