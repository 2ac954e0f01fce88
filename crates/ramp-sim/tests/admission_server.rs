//! Admission webhooks through the API server: real clients (kube-rs) writing to a sim whose
//! webhook configurations point at HTTPS test webhooks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admission_support;

use std::time::Duration;

use admission_support::{Pki, WebhookServer, closed_port_addr, patch_response};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use ramp_sim::TestCluster;
use serde_json::{Value, json};

const NO_DELAY: Duration = Duration::ZERO;

fn deployment(name: &str, labels: Value) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name, "labels": labels },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{ "name": "app", "image": "nginx:1.27" }] },
            },
        },
    }))
    .unwrap()
}

fn webhook_configuration(kind: &str, name: &str, webhooks: Value) -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": { "name": name },
        "webhooks": webhooks,
    })
}

async fn apply_configuration(cluster: &TestCluster, config: Value) {
    let kind = config["kind"].as_str().unwrap().to_string();
    let name = config["metadata"]["name"].as_str().unwrap().to_string();
    let ar = kube::discovery::ApiResource {
        group: "admissionregistration.k8s.io".into(),
        version: "v1".into(),
        api_version: "admissionregistration.k8s.io/v1".into(),
        plural: format!("{}s", kind.to_lowercase()),
        kind,
    };
    let api: Api<kube::api::DynamicObject> = Api::all_with(cluster.client(), &ar);
    api.patch(
        &name,
        &PatchParams::apply("admission-test").force(),
        &Patch::Apply(config),
    )
    .await
    .unwrap();
}

fn error_of(result: Result<impl std::fmt::Debug, kube::Error>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_mutating_webhook_changes_objects_written_through_the_api() {
    let cluster = TestCluster::start().await.unwrap();
    let pki = Pki::new(&["webhook.ramp-system.svc"]);
    let server = WebhookServer::start(&pki, NO_DELAY, |request: &Value| {
        let mut ops = vec![json!({ "op": "add", "path": "/metadata/labels/injected", "value": request["operation"] })];
        if request["operation"] == "UPDATE" {
            ops.push(json!({ "op": "add", "path": "/metadata/annotations", "value": { "seen-old-replicas": request["oldObject"]["spec"]["replicas"].to_string() } }));
        }
        patch_response(Value::Array(ops))
    })
    .await;
    cluster
        .server()
        .webhook_services()
        .insert(
            "ramp-system",
            "webhook",
            443,
            &format!("https://{}", server.addr),
        )
        .unwrap();
    apply_configuration(
        &cluster,
        webhook_configuration(
            "MutatingWebhookConfiguration",
            "inject",
            json!([{
                "name": "inject.ramp.test",
                "clientConfig": {
                    "service": { "namespace": "ramp-system", "name": "webhook", "path": "/mutate" },
                    "caBundle": pki.ca_bundle(),
                },
                "rules": [{ "operations": ["CREATE", "UPDATE"], "apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["deployments"] }],
                "objectSelector": { "matchLabels": { "inject": "true" } },
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
            }]),
        ),
    )
    .await;

    let api: Api<Deployment> = Api::namespaced(cluster.client(), "default");
    let created = api
        .create(
            &PostParams::default(),
            &deployment("web", json!({ "inject": "true" })),
        )
        .await
        .unwrap();
    assert_eq!(
        created.metadata.labels.as_ref().unwrap()["injected"],
        "CREATE"
    );
    let stored = api.get("web").await.unwrap();
    assert_eq!(
        stored.metadata.labels.as_ref().unwrap()["injected"],
        "CREATE",
        "the mutation is stored"
    );
    assert!(stored.metadata.uid.is_some());

    // A merge patch is admitted as an UPDATE, with the stored object as oldObject.
    let patched = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 4 } })),
        )
        .await
        .unwrap();
    assert_eq!(patched.spec.as_ref().unwrap().replicas, Some(4));
    assert_eq!(
        patched.metadata.labels.as_ref().unwrap()["injected"],
        "UPDATE"
    );
    assert_eq!(
        patched.metadata.annotations.as_ref().unwrap()["seen-old-replicas"],
        "1"
    );

    // Objects without the label are not sent to the webhook.
    let calls = server.calls();
    let plain = api
        .create(&PostParams::default(), &deployment("plain", json!({})))
        .await
        .unwrap();
    assert!(
        plain
            .metadata
            .labels
            .as_ref()
            .is_none_or(|l| !l.contains_key("injected"))
    );
    assert_eq!(server.calls(), calls);

    // Status writes are their own subresource: the rule for "deployments" does not match them.
    api.patch_status(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": { "replicas": 4 } })),
    )
    .await
    .unwrap();
    assert_eq!(server.calls(), calls);
}

#[tokio::test]
async fn a_validating_webhook_denial_reaches_the_client_and_nothing_is_stored() {
    let cluster = TestCluster::start().await.unwrap();
    let pki = Pki::new(&["127.0.0.1"]);
    let server = WebhookServer::start(&pki, NO_DELAY, |request: &Value| {
        let data = &request["object"]["data"];
        if data.get("forbidden").is_some() {
            json!({ "allowed": false, "status": { "code": 403, "reason": "Forbidden", "message": "key \"forbidden\" is not allowed" } })
        } else {
            json!({ "allowed": true, "warnings": ["configmap checked by policy.ramp.test"] })
        }
    })
    .await;
    apply_configuration(
        &cluster,
        webhook_configuration(
            "ValidatingWebhookConfiguration",
            "policy",
            json!([{
                "name": "policy.ramp.test",
                "clientConfig": { "url": server.url("/validate"), "caBundle": pki.ca_bundle() },
                "rules": [{ "operations": ["CREATE", "UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"], "scope": "Namespaced" }],
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
            }]),
        ),
    )
    .await;
    let api: Api<ConfigMap> = Api::namespaced(cluster.client(), "default");
    let bad: ConfigMap = serde_json::from_value(
        json!({ "metadata": { "name": "bad" }, "data": { "forbidden": "x" } }),
    )
    .unwrap();
    let status = error_of(api.create(&PostParams::default(), &bad).await);
    assert_eq!(status.code, 403);
    assert_eq!(status.reason, "Forbidden");
    assert_eq!(
        status.message,
        "admission webhook \"policy.ramp.test\" denied the request: key \"forbidden\" is not allowed"
    );
    assert!(
        error_of(api.get("bad").await).code == 404,
        "a denied create stores nothing"
    );

    let good: ConfigMap =
        serde_json::from_value(json!({ "metadata": { "name": "good" }, "data": { "a": "b" } }))
            .unwrap();
    api.create(&PostParams::default(), &good).await.unwrap();
    // Server-side apply goes through the webhooks too.
    let status = error_of(
        api.patch(
            "good",
            &PatchParams::apply("test"),
            &Patch::Apply(json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "good" }, "data": { "forbidden": "y" } })),
        )
        .await,
    );
    assert_eq!(status.code, 403);
    assert_eq!(
        api.get("good")
            .await
            .unwrap()
            .data
            .unwrap()
            .get("forbidden"),
        None
    );
    // A dry run is admitted too.
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let status = error_of(api.create(&dry, &bad).await);
    assert_eq!(status.code, 403);
}

#[tokio::test]
async fn failure_policy_fail_with_the_webhook_down_rejects_writes_with_a_clear_message() {
    let cluster = TestCluster::start().await.unwrap();
    let api: Api<Deployment> = Api::namespaced(cluster.client(), "default");
    api.create(&PostParams::default(), &deployment("before", json!({})))
        .await
        .unwrap();

    let addr = closed_port_addr().await;
    let pki = Pki::new(&["127.0.0.1"]);
    apply_configuration(
        &cluster,
        webhook_configuration(
            "MutatingWebhookConfiguration",
            "down",
            json!([{
                "name": "down.ramp.test",
                "clientConfig": { "url": format!("https://{addr}/mutate"), "caBundle": pki.ca_bundle() },
                "rules": [{ "operations": ["*"], "apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["deployments"] }],
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
            }]),
        ),
    )
    .await;
    let status = error_of(
        api.create(&PostParams::default(), &deployment("web", json!({})))
            .await,
    );
    assert_eq!(status.code, 500);
    assert_eq!(status.reason, "InternalError");
    assert_eq!(
        status.message,
        format!(
            "Internal error occurred: failed calling webhook \"down.ramp.test\": failed to call webhook: \
             Post \"https://{addr}/mutate?timeout=10s\": dial tcp {addr}: connect: connection refused"
        )
    );
    assert_eq!(error_of(api.get("web").await).code, 404);

    // "*" covers DELETE: an object written before the webhook existed cannot be deleted now.
    let status = error_of(api.delete("before", &DeleteParams::default()).await);
    assert_eq!(status.code, 500);
    assert!(
        status
            .message
            .contains("failed calling webhook \"down.ramp.test\""),
        "{}",
        status.message
    );
    api.get("before").await.unwrap();

    // The configuration itself is never subject to webhooks: it can always be removed.
    let ar = kube::discovery::ApiResource {
        group: "admissionregistration.k8s.io".into(),
        version: "v1".into(),
        api_version: "admissionregistration.k8s.io/v1".into(),
        kind: "MutatingWebhookConfiguration".into(),
        plural: "mutatingwebhookconfigurations".into(),
    };
    let configs: Api<kube::api::DynamicObject> = Api::all_with(cluster.client(), &ar);
    configs
        .delete("down", &DeleteParams::default())
        .await
        .unwrap();
    api.create(&PostParams::default(), &deployment("web", json!({})))
        .await
        .unwrap();
    api.delete("before", &DeleteParams::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn namespace_selector_reads_the_stored_namespace_labels() {
    let cluster = TestCluster::start().await.unwrap();
    let pki = Pki::new(&["127.0.0.1"]);
    let server = WebhookServer::start(&pki, NO_DELAY, |_: &Value| {
        json!({ "allowed": false, "status": { "message": "deployments are frozen here" } })
    })
    .await;
    apply_configuration(
        &cluster,
        webhook_configuration(
            "ValidatingWebhookConfiguration",
            "freeze",
            json!([{
                "name": "freeze.ramp.test",
                "clientConfig": { "url": server.url("/"), "caBundle": pki.ca_bundle() },
                "rules": [{ "operations": ["CREATE"], "apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["deployments"] }],
                "namespaceSelector": { "matchLabels": { "freeze": "true" } },
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
            }]),
        ),
    )
    .await;
    let namespaces: Api<Namespace> = Api::all(cluster.client());
    for (name, labels) in [("frozen", json!({ "freeze": "true" })), ("open", json!({}))] {
        let ns: Namespace =
            serde_json::from_value(json!({ "metadata": { "name": name, "labels": labels } }))
                .unwrap();
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
    }
    let frozen: Api<Deployment> = Api::namespaced(cluster.client(), "frozen");
    let status = error_of(
        frozen
            .create(&PostParams::default(), &deployment("web", json!({})))
            .await,
    );
    assert_eq!(status.code, 400);
    assert_eq!(
        status.message,
        "admission webhook \"freeze.ramp.test\" denied the request: deployments are frozen here"
    );
    let open: Api<Deployment> = Api::namespaced(cluster.client(), "open");
    open.create(&PostParams::default(), &deployment("web", json!({})))
        .await
        .unwrap();
    assert_eq!(server.calls(), 1);
}

#[tokio::test]
async fn an_invalid_webhook_configuration_is_refused_naming_the_fields() {
    let cluster = TestCluster::start().await.unwrap();
    let ar = kube::discovery::ApiResource {
        group: "admissionregistration.k8s.io".into(),
        version: "v1".into(),
        api_version: "admissionregistration.k8s.io/v1".into(),
        kind: "ValidatingWebhookConfiguration".into(),
        plural: "validatingwebhookconfigurations".into(),
    };
    let api: Api<kube::api::DynamicObject> = Api::all_with(cluster.client(), &ar);
    let obj: kube::api::DynamicObject = serde_json::from_value(webhook_configuration(
        "ValidatingWebhookConfiguration",
        "broken",
        json!([{
            "name": "broken.ramp.test",
            "clientConfig": { "url": "https://127.0.0.1:1/" },
            "rules": [{ "operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"] }],
            "timeoutSeconds": 45,
            "sideEffects": "Some",
            "admissionReviewVersions": ["v1"],
        }]),
    ))
    .unwrap();
    let status = error_of(api.create(&PostParams::default(), &obj).await);
    assert_eq!(status.code, 422);
    assert_eq!(status.reason, "Invalid");
    assert!(
        status.message.starts_with(
            "ValidatingWebhookConfiguration.admissionregistration.k8s.io \"broken\" is invalid: ["
        ),
        "{}",
        status.message
    );
    assert!(
        status
            .message
            .contains("webhooks[0].sideEffects: Unsupported value: \"Some\""),
        "{}",
        status.message
    );
    assert!(
        status
            .message
            .contains("webhooks[0].timeoutSeconds: Invalid value: 45"),
        "{}",
        status.message
    );
    assert_eq!(error_of(api.get("broken").await).code, 404);

    // A valid one is stored with kube-apiserver's defaults filled in.
    let mut good = serde_json::to_value(&obj).unwrap();
    good["webhooks"][0]["timeoutSeconds"] = json!(5);
    good["webhooks"][0]["sideEffects"] = json!("None");
    let stored = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(good).unwrap(),
        )
        .await
        .unwrap();
    let hook = &stored.data["webhooks"][0];
    assert_eq!(hook["failurePolicy"], "Fail");
    assert_eq!(hook["matchPolicy"], "Equivalent");
    assert_eq!(hook["timeoutSeconds"], 5);
    assert_eq!(hook["rules"][0]["scope"], "*");
    assert_eq!(hook["namespaceSelector"], json!({}));
}
