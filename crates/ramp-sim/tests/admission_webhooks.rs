//! The admission chain against real HTTPS webhook servers on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admission_support;

use std::time::{Duration, Instant};

use admission_support::{
    Pki, WebhookServer, closed_port_addr, configuration, deployment, deployment_webhook,
    patch_response,
};
use ramp_sim::admission::{
    AdmissionAttributes, AdmissionChain, AdmissionError, Operation, ServiceMap,
};
use serde_json::{Value, json};

const NO_DELAY: Duration = Duration::ZERO;

fn create_deployment(namespace: &str, name: &str) -> AdmissionAttributes {
    AdmissionAttributes::new(
        Operation::Create,
        ("apps", "v1", "deployments"),
        "Deployment",
        namespace,
        name,
    )
}

fn mutating(webhook: Value) -> AdmissionChain {
    let config = configuration("MutatingWebhookConfiguration", "test-mutating", webhook);
    AdmissionChain::new([&config], []).unwrap()
}

fn validating(webhook: Value) -> AdmissionChain {
    let config = configuration("ValidatingWebhookConfiguration", "test-validating", webhook);
    AdmissionChain::new([], [&config]).unwrap()
}

fn url_client_config(server: &WebhookServer, pki: &Pki, path: &str) -> Value {
    json!({ "url": server.url(path), "caBundle": pki.ca_bundle() })
}

fn add_label_webhook() -> impl Fn(&Value) -> Value + Send + Sync + 'static {
    |_request: &Value| {
        patch_response(
            json!([{ "op": "add", "path": "/metadata/labels/injected", "value": "yes" }]),
        )
    }
}

#[tokio::test]
async fn mutating_webhook_patches_the_object_and_receives_a_full_review() {
    let pki = Pki::new(&["127.0.0.1"]);
    let server = WebhookServer::start(&pki, NO_DELAY, add_label_webhook()).await;
    let chain = mutating(deployment_webhook(
        "inject.ramp.test",
        url_client_config(&server, &pki, "/mutate"),
    ));

    let mut attrs = create_deployment("shop", "web");
    attrs.user_info.username = "alice".into();
    attrs.user_info.groups = vec!["system:authenticated".into()];
    let object = deployment("shop", "web", json!({ "app": "web" }));
    let outcome = chain
        .admit(&attrs, object.clone(), None, Some(&json!({})))
        .await
        .unwrap();

    assert!(outcome.mutated);
    assert_eq!(
        outcome.object["metadata"]["labels"],
        json!({ "app": "web", "injected": "yes" })
    );
    assert_eq!(
        outcome.object["spec"], object["spec"],
        "only the patched path changes"
    );

    let requests = server.recorded();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request["operation"], "CREATE");
    assert_eq!(
        request["kind"],
        json!({ "group": "apps", "version": "v1", "kind": "Deployment" })
    );
    assert_eq!(
        request["resource"],
        json!({ "group": "apps", "version": "v1", "resource": "deployments" })
    );
    assert_eq!(request["namespace"], "shop");
    assert_eq!(request["name"], "web");
    assert_eq!(request["userInfo"]["username"], "alice");
    assert_eq!(request["object"], object);
    assert_eq!(request["oldObject"], Value::Null);
    assert_eq!(request["dryRun"], false);
    assert_eq!(request["uid"].as_str().unwrap().len(), 36);
}

#[tokio::test]
async fn service_reference_is_reached_through_the_service_map_and_verified_by_service_name() {
    // The certificate names the service as a real cluster would; the map only gives the address.
    let pki = Pki::new(&["webhook.ramp-system.svc"]);
    let server = WebhookServer::start(&pki, NO_DELAY, add_label_webhook()).await;
    let services = ServiceMap::new();
    services
        .insert(
            "ramp-system",
            "webhook",
            443,
            &format!("https://{}", server.addr),
        )
        .unwrap();
    let client_config = json!({
        "service": { "namespace": "ramp-system", "name": "webhook", "path": "/mutate" },
        "caBundle": pki.ca_bundle(),
    });
    let chain = mutating(deployment_webhook("inject.ramp.test", client_config))
        .with_service_map(services.clone());

    let outcome = chain
        .admit(
            &create_deployment("shop", "web"),
            deployment("shop", "web", json!({})),
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(outcome.object["metadata"]["labels"]["injected"], "yes");

    // Without a route the call fails closed, naming the service URL the apiserver would use.
    assert!(services.remove("ramp-system", "webhook", 443));
    let err = chain
        .admit(
            &create_deployment("shop", "web"),
            deployment("shop", "web", json!({})),
            None,
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.status_code(), 500);
    assert!(
        err.to_string().starts_with(
            "Internal error occurred: failed calling webhook \"inject.ramp.test\": failed to call webhook: \
             Post \"https://webhook.ramp-system.svc:443/mutate?timeout=10s\": no endpoints available for service \"webhook\""
        ),
        "{err}"
    );
}

#[tokio::test]
async fn object_selector_skips_objects_whose_labels_do_not_match() {
    let pki = Pki::new(&["127.0.0.1"]);
    let server = WebhookServer::start(&pki, NO_DELAY, add_label_webhook()).await;
    let mut webhook = deployment_webhook(
        "inject.ramp.test",
        url_client_config(&server, &pki, "/mutate"),
    );
    webhook["objectSelector"] = json!({ "matchLabels": { "inject": "true" } });
    let chain = mutating(webhook);

    let plain = deployment("shop", "plain", json!({ "app": "plain" }));
    let outcome = chain
        .admit(
            &create_deployment("shop", "plain"),
            plain.clone(),
            None,
            None,
        )
        .await
        .unwrap();
    assert!(!outcome.mutated);
    assert_eq!(outcome.object, plain);
    assert_eq!(
        server.calls(),
        0,
        "the webhook must not be called for a non-matching object"
    );

    let opted_in = deployment("shop", "opted", json!({ "inject": "true" }));
    let outcome = chain
        .admit(&create_deployment("shop", "opted"), opted_in, None, None)
        .await
        .unwrap();
    assert!(outcome.mutated);
    assert_eq!(server.calls(), 1);

    // On UPDATE the old object's labels count too: removing the label still goes to the webhook.
    let mut update = create_deployment("shop", "opted");
    update.operation = Operation::Update;
    let old = deployment("shop", "opted", json!({ "inject": "true" }));
    let new = deployment("shop", "opted", json!({}));
    chain.admit(&update, new, Some(old), None).await.unwrap();
    assert_eq!(server.calls(), 2);
}

#[tokio::test]
async fn namespace_selector_uses_the_namespace_labels() {
    let pki = Pki::new(&["127.0.0.1"]);
    let server = WebhookServer::start(&pki, NO_DELAY, add_label_webhook()).await;
    let mut webhook = deployment_webhook(
        "inject.ramp.test",
        url_client_config(&server, &pki, "/mutate"),
    );
    webhook["namespaceSelector"] = json!({
        "matchExpressions": [{ "key": "ramp.dev/webhooks", "operator": "NotIn", "values": ["off"] }]
    });
    let chain = mutating(webhook);
    let object = deployment("quiet", "web", json!({}));

    let off = json!({ "ramp.dev/webhooks": "off" });
    let outcome = chain
        .admit(
            &create_deployment("quiet", "web"),
            object.clone(),
            None,
            Some(&off),
        )
        .await
        .unwrap();
    assert!(!outcome.mutated);
    assert_eq!(server.calls(), 0);

    let on = json!({ "team": "shop" });
    let outcome = chain
        .admit(&create_deployment("quiet", "web"), object, None, Some(&on))
        .await
        .unwrap();
    assert!(outcome.mutated);
    assert_eq!(server.calls(), 1);
}

#[tokio::test]
async fn rules_decide_which_requests_reach_the_webhook() {
    let pki = Pki::new(&["127.0.0.1"]);
    let server = WebhookServer::start(&pki, NO_DELAY, add_label_webhook()).await;
    let chain = mutating(deployment_webhook(
        "inject.ramp.test",
        url_client_config(&server, &pki, "/mutate"),
    ));
    let object = deployment("shop", "web", json!({}));

    // Different resource, subresource, operation: not called.
    let pods = AdmissionAttributes::new(Operation::Create, ("", "v1", "pods"), "Pod", "shop", "p");
    chain
        .admit(&pods, json!({"metadata": {}}), None, None)
        .await
        .unwrap();
    let status = create_deployment("shop", "web").with_subresource("status");
    chain
        .admit(&status, object.clone(), None, None)
        .await
        .unwrap();
    let mut delete = create_deployment("shop", "web");
    delete.operation = Operation::Delete;
    chain
        .admit(&delete, Value::Null, Some(object.clone()), None)
        .await
        .unwrap();
    assert_eq!(server.calls(), 0);
    assert!(!chain.may_apply(&pods));
    assert!(chain.may_apply(&create_deployment("shop", "web")));

    // Webhook configurations themselves are never sent to webhooks.
    let config = AdmissionAttributes::new(
        Operation::Create,
        (
            "admissionregistration.k8s.io",
            "v1",
            "mutatingwebhookconfigurations",
        ),
        "MutatingWebhookConfiguration",
        "",
        "x",
    );
    let everything = configuration(
        "MutatingWebhookConfiguration",
        "everything",
        json!({
            "name": "all.ramp.test",
            "clientConfig": url_client_config(&server, &pki, "/mutate"),
            "rules": [{ "operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*/*"] }],
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
        }),
    );
    let all = AdmissionChain::new([&everything], []).unwrap();
    all.admit(&config, json!({"metadata": {"name": "x"}}), None, None)
        .await
        .unwrap();
    assert_eq!(server.calls(), 0);
    all.admit(&status, object, None, None).await.unwrap();
    assert_eq!(server.calls(), 1, "*/* matches subresources");
}

#[tokio::test]
async fn validating_webhook_denies_with_its_message_and_code() {
    let pki = Pki::new(&["127.0.0.1"]);
    let server = WebhookServer::start(&pki, NO_DELAY, |request: &Value| {
        if request["object"]["spec"]["replicas"].as_i64() == Some(13) {
            json!({
                "allowed": false,
                "status": { "code": 403, "reason": "Forbidden", "message": "13 replicas are unlucky" },
            })
        } else {
            json!({ "allowed": true, "warnings": ["replicas checked"] })
        }
    })
    .await;
    let chain = validating(deployment_webhook(
        "replicas.ramp.test",
        url_client_config(&server, &pki, "/validate"),
    ));

    let mut object = deployment("shop", "web", json!({}));
    let outcome = chain
        .admit(
            &create_deployment("shop", "web"),
            object.clone(),
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(outcome.warnings, vec!["replicas checked".to_string()]);
    assert!(!outcome.mutated);

    object["spec"]["replicas"] = json!(13);
    let err = chain
        .admit(&create_deployment("shop", "web"), object, None, None)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "admission webhook \"replicas.ramp.test\" denied the request: 13 replicas are unlucky"
    );
    assert_eq!(err.status_code(), 403);
    assert_eq!(err.reason(), "Forbidden");
    assert_eq!(err.webhook(), Some("replicas.ramp.test"));
    let status = err.to_status();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["code"], 403);
}

#[tokio::test]
async fn validating_webhooks_see_the_mutated_object() {
    let pki = Pki::new(&["127.0.0.1"]);
    let mutator = WebhookServer::start(&pki, NO_DELAY, add_label_webhook()).await;
    let validator = WebhookServer::start(&pki, NO_DELAY, |request: &Value| {
        let injected = request["object"]["metadata"]["labels"]["injected"] == "yes";
        json!({ "allowed": injected, "status": { "message": "not injected" } })
    })
    .await;
    let m = configuration(
        "MutatingWebhookConfiguration",
        "m",
        deployment_webhook("inject.ramp.test", url_client_config(&mutator, &pki, "/")),
    );
    let v = configuration(
        "ValidatingWebhookConfiguration",
        "v",
        deployment_webhook("check.ramp.test", url_client_config(&validator, &pki, "/")),
    );
    let chain = AdmissionChain::new([&m], [&v]).unwrap();
    let outcome = chain
        .admit(
            &create_deployment("shop", "web"),
            deployment("shop", "web", json!({})),
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(outcome.object["metadata"]["labels"]["injected"], "yes");
    assert_eq!(validator.calls(), 1);
}

#[tokio::test]
async fn failure_policy_fail_rejects_when_the_webhook_is_down() {
    let addr = closed_port_addr().await;
    let pki = Pki::new(&["127.0.0.1"]);
    let client_config =
        json!({ "url": format!("https://{addr}/mutate"), "caBundle": pki.ca_bundle() });
    let chain = mutating(deployment_webhook("inject.ramp.test", client_config));

    let err = chain
        .admit(
            &create_deployment("shop", "web"),
            deployment("shop", "web", json!({})),
            None,
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "Internal error occurred: failed calling webhook \"inject.ramp.test\": failed to call webhook: \
             Post \"https://{addr}/mutate?timeout=10s\": dial tcp {addr}: connect: connection refused"
        )
    );
    assert_eq!(err.status_code(), 500);
    assert_eq!(err.reason(), "InternalError");
    assert!(matches!(err, AdmissionError::CallFailed { .. }));
}

#[tokio::test]
async fn failure_policy_ignore_lets_the_write_through_unchanged() {
    let addr = closed_port_addr().await;
    let pki = Pki::new(&["127.0.0.1"]);
    let mut webhook = deployment_webhook(
        "inject.ramp.test",
        json!({ "url": format!("https://{addr}/mutate"), "caBundle": pki.ca_bundle() }),
    );
    webhook["failurePolicy"] = json!("Ignore");
    let chain = mutating(webhook);
    let object = deployment("shop", "web", json!({}));
    let outcome = chain
        .admit(
            &create_deployment("shop", "web"),
            object.clone(),
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(outcome.object, object);
    assert!(!outcome.mutated);
}

#[tokio::test]
async fn a_certificate_from_another_ca_fails_tls() {
    let pki = Pki::new(&["127.0.0.1"]);
    let other = Pki::with_ca_name("another CA", &["127.0.0.1"]);
    let server = WebhookServer::start(&pki, NO_DELAY, add_label_webhook()).await;
    let chain = mutating(deployment_webhook(
        "inject.ramp.test",
        json!({ "url": server.url("/mutate"), "caBundle": other.ca_bundle() }),
    ));
    let err = chain
        .admit(
            &create_deployment("shop", "web"),
            deployment("shop", "web", json!({})),
            None,
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "Internal error occurred: failed calling webhook \"inject.ramp.test\": failed to call webhook: \
             Post \"{}?timeout=10s\": tls: failed to verify certificate: x509: certificate signed by unknown authority",
            server.url("/mutate")
        )
    );
    assert_eq!(server.calls(), 0);

    // A different CA that happens to carry the same name is no better.
    let same_name = Pki::new(&["127.0.0.1"]);
    let chain = mutating(deployment_webhook(
        "inject.ramp.test",
        json!({ "url": server.url("/mutate"), "caBundle": same_name.ca_bundle() }),
    ));
    let err = chain
        .admit(
            &create_deployment("shop", "web"),
            deployment("shop", "web", json!({})),
            None,
            None,
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(
            "tls: failed to verify certificate: x509: certificate signed by unknown authority"
        ),
        "{err}"
    );
    assert_eq!(server.calls(), 0);
}

#[tokio::test]
async fn a_certificate_for_another_host_fails_tls() {
    // The service map routes to a server whose certificate names a different service.
    let pki = Pki::new(&["other.ramp-system.svc"]);
    let server = WebhookServer::start(&pki, NO_DELAY, add_label_webhook()).await;
    let services = ServiceMap::new();
    services
        .insert(
            "ramp-system",
            "webhook",
            8443,
            &format!("https://{}", server.addr),
        )
        .unwrap();
    let chain = mutating(deployment_webhook(
        "inject.ramp.test",
        json!({
            "service": { "namespace": "ramp-system", "name": "webhook", "port": 8443 },
            "caBundle": pki.ca_bundle(),
        }),
    ))
    .with_service_map(services);
    let err = chain
        .admit(
            &create_deployment("shop", "web"),
            deployment("shop", "web", json!({})),
            None,
            None,
        )
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.ends_with(
            "Post \"https://webhook.ramp-system.svc:8443/?timeout=10s\": tls: failed to verify certificate: \
             x509: certificate is valid for other.ramp-system.svc, not webhook.ramp-system.svc"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn a_webhook_without_ca_bundle_is_not_trusted() {
    let pki = Pki::new(&["127.0.0.1"]);
    let server = WebhookServer::start(&pki, NO_DELAY, add_label_webhook()).await;
    let chain = mutating(deployment_webhook(
        "inject.ramp.test",
        json!({ "url": server.url("/") }),
    ));
    let err = chain
        .admit(
            &create_deployment("shop", "web"),
            deployment("shop", "web", json!({})),
            None,
            None,
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("certificate signed by unknown authority"),
        "{err}"
    );
}

#[tokio::test]
async fn timeout_seconds_is_honoured() {
    let pki = Pki::new(&["127.0.0.1"]);
    let server = WebhookServer::start(&pki, Duration::from_secs(5), add_label_webhook()).await;
    let mut webhook = deployment_webhook(
        "slow.ramp.test",
        url_client_config(&server, &pki, "/mutate"),
    );
    webhook["timeoutSeconds"] = json!(1);
    let chain = mutating(webhook);

    let started = Instant::now();
    let err = chain
        .admit(
            &create_deployment("shop", "web"),
            deployment("shop", "web", json!({})),
            None,
            None,
        )
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900),
        "gave up too early: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(4),
        "timeoutSeconds: 1 not honoured: {elapsed:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "Internal error occurred: failed calling webhook \"slow.ramp.test\": failed to call webhook: \
             Post \"{}?timeout=1s\": context deadline exceeded",
            server.url("/mutate")
        )
    );
}

#[tokio::test]
async fn invalid_responses_are_call_failures_subject_to_failure_policy() {
    let pki = Pki::new(&["127.0.0.1"]);
    let server = WebhookServer::start(
        &pki,
        NO_DELAY,
        |_: &Value| json!({ "uid": "not-the-request", "allowed": true }),
    )
    .await;
    let webhook = deployment_webhook("liar.ramp.test", url_client_config(&server, &pki, "/"));
    let err = mutating(webhook.clone())
        .admit(
            &create_deployment("shop", "web"),
            deployment("shop", "web", json!({})),
            None,
            None,
        )
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(
            "Internal error occurred: failed calling webhook \"liar.ramp.test\": received invalid webhook response: \
             expected response.uid"
        ),
        "{text}"
    );
    let mut ignore = webhook;
    ignore["failurePolicy"] = json!("Ignore");
    mutating(ignore)
        .admit(
            &create_deployment("shop", "web"),
            deployment("shop", "web", json!({})),
            None,
            None,
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_patch_that_does_not_apply_is_an_internal_error_even_with_ignore() {
    let pki = Pki::new(&["127.0.0.1"]);
    let server = WebhookServer::start(&pki, NO_DELAY, |_: &Value| {
        patch_response(json!([{ "op": "replace", "path": "/spec/missing/field", "value": 1 }]))
    })
    .await;
    let mut webhook =
        deployment_webhook("bad-patch.ramp.test", url_client_config(&server, &pki, "/"));
    webhook["failurePolicy"] = json!("Ignore");
    let err = mutating(webhook)
        .admit(
            &create_deployment("shop", "web"),
            deployment("shop", "web", json!({})),
            None,
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, AdmissionError::PatchFailed { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("\"bad-patch.ramp.test\" returned a patch that does not apply"),
        "{err}"
    );
    assert_eq!(err.status_code(), 500);
}

#[tokio::test]
async fn mutating_webhooks_run_in_configuration_name_order_and_reinvoke_if_needed() {
    let pki = Pki::new(&["127.0.0.1"]);
    // "a-first" records the labels it sees; "b-second" adds a label. Sorted by configuration name,
    // a-first runs before b-second; with IfNeeded it runs again and sees b-second's label.
    let first = WebhookServer::start(&pki, NO_DELAY, |_: &Value| json!({ "allowed": true })).await;
    let second = WebhookServer::start(&pki, NO_DELAY, |request: &Value| {
        if request["object"]["metadata"]["labels"]["second"].is_null() {
            patch_response(
                json!([{ "op": "add", "path": "/metadata/labels/second", "value": "1" }]),
            )
        } else {
            json!({ "allowed": true })
        }
    })
    .await;
    let mut hook_a = deployment_webhook("first.ramp.test", url_client_config(&first, &pki, "/"));
    hook_a["reinvocationPolicy"] = json!("IfNeeded");
    let a = configuration("MutatingWebhookConfiguration", "a-first", hook_a);
    let b = configuration(
        "MutatingWebhookConfiguration",
        "b-second",
        deployment_webhook("second.ramp.test", url_client_config(&second, &pki, "/")),
    );
    let chain = AdmissionChain::new([&b, &a], []).unwrap();
    let outcome = chain
        .admit(
            &create_deployment("shop", "web"),
            deployment("shop", "web", json!({})),
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(outcome.object["metadata"]["labels"]["second"], "1");
    let seen = first.recorded();
    assert_eq!(seen.len(), 2, "first.ramp.test must be reinvoked once");
    assert!(seen[0]["object"]["metadata"]["labels"]["second"].is_null());
    assert_eq!(seen[1]["object"]["metadata"]["labels"]["second"], "1");
    assert_eq!(second.calls(), 1, "a Never webhook is not reinvoked");
}

#[tokio::test]
async fn delete_sends_the_old_object() {
    let pki = Pki::new(&["127.0.0.1"]);
    let server = WebhookServer::start(&pki, NO_DELAY, |_: &Value| json!({ "allowed": true })).await;
    let mut webhook = deployment_webhook("audit.ramp.test", url_client_config(&server, &pki, "/"));
    webhook["rules"][0]["operations"] = json!(["DELETE"]);
    webhook["objectSelector"] = json!({ "matchLabels": { "audit": "yes" } });
    let chain = validating(webhook);
    let mut attrs = create_deployment("shop", "web");
    attrs.operation = Operation::Delete;
    attrs.options = Some(
        json!({ "kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1", "propagationPolicy": "Background" }),
    );
    let old = deployment("shop", "web", json!({ "audit": "yes" }));
    chain
        .admit(&attrs, Value::Null, Some(old.clone()), None)
        .await
        .unwrap();
    let seen = server.recorded();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0]["operation"], "DELETE");
    assert_eq!(seen[0]["object"], Value::Null);
    assert_eq!(seen[0]["oldObject"], old);
    assert_eq!(seen[0]["options"]["propagationPolicy"], "Background");
}

#[test]
fn invalid_configurations_are_refused_with_field_paths() {
    let config = configuration(
        "ValidatingWebhookConfiguration",
        "broken",
        json!({
            "name": "short",
            "clientConfig": { "url": "http://example.com/validate" },
            "rules": [{ "operations": ["PATCH"], "apiGroups": ["apps"], "apiVersions": ["v1"], "resources": [] }],
            "timeoutSeconds": 31,
            "objectSelector": { "matchExpressions": [{ "key": "app", "operator": "Like", "values": ["x"] }] },
            "admissionReviewVersions": ["v1"],
        }),
    );
    let err = AdmissionChain::new([], [&config]).unwrap_err();
    let fields: Vec<&str> = err.errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        vec![
            "webhooks[0].name",
            "webhooks[0].clientConfig.url",
            "webhooks[0].rules[0].operations[0]",
            "webhooks[0].rules[0].resources",
            "webhooks[0].sideEffects",
            "webhooks[0].timeoutSeconds",
            "webhooks[0].objectSelector",
        ]
    );
    let text = err.to_string();
    assert!(
        text.starts_with(
            "ValidatingWebhookConfiguration.admissionregistration.k8s.io \"broken\" is invalid: ["
        ),
        "{text}"
    );
    assert!(text.contains("webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 seconds"), "{text}");
    assert!(
        text.contains("webhooks[0].rules[0].operations[0]: Unsupported value: \"PATCH\""),
        "{text}"
    );
}
