//! Authentication and RBAC over HTTP: ServiceAccount tokens from TokenRequest, kube-apiserver's
//! 401 and 403 answers, rules with verbs, subresources and resourceNames, server-side apply
//! that creates, impersonation, and access reviews answering from the same rules.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers

use http::{Method, Request};
use http_body_util::BodyExt;
use kube::client::Body;
use ramp_sim::TestCluster;
use serde_json::{Value, json};

async fn send(
    client: &kube::Client,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Value,
) -> (u16, Value) {
    let mut b = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let bytes = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(&body).unwrap()
    };
    let res = client
        .send(b.body(Body::from(bytes)).unwrap())
        .await
        .unwrap();
    let status = res.status().as_u16();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into())),
    )
}

const JSON: (&str, &str) = ("content-type", "application/json");

async fn admin(c: &TestCluster, method: Method, path: &str, body: Value) -> Value {
    let (code, v) = send(&c.client(), method.clone(), path, &[JSON], body).await;
    assert!(code < 300, "{method} {path}: {code} {v}");
    v
}

async fn client_with_token(c: &TestCluster, token: &str) -> kube::Client {
    let yaml = ramp_sim::server::kubeconfig_yaml(&c.url(), token);
    let kc = kube::config::Kubeconfig::from_yaml(&yaml).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// A namespace `ramp` with ServiceAccount `op`, and a client holding its token.
async fn service_account(c: &TestCluster) -> (kube::Client, String) {
    admin(
        c,
        Method::POST,
        "/api/v1/namespaces",
        json!({"metadata": {"name": "ramp"}}),
    )
    .await;
    admin(
        c,
        Method::POST,
        "/api/v1/namespaces/ramp/serviceaccounts",
        json!({"metadata": {"name": "op"}}),
    )
    .await;
    let tr = admin(
        c,
        Method::POST,
        "/api/v1/namespaces/ramp/serviceaccounts/op/token",
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}),
    )
    .await;
    let token = tr["status"]["token"].as_str().unwrap().to_string();
    (client_with_token(c, &token).await, token)
}

fn deployment(name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "x"}]}}}})
}

const SA: &str = "system:serviceaccount:ramp:op";

#[tokio::test]
async fn service_account_tokens_are_authorized_by_rbac_with_kube_apiservers_answers() {
    let c = TestCluster::start().await.unwrap();
    let (sa, token) = service_account(&c).await;
    for name in ["web", "api"] {
        admin(
            &c,
            Method::POST,
            "/apis/apps/v1/namespaces/default/deployments",
            deployment(name),
        )
        .await;
    }

    // Unknown and forged tokens: 401 as kube-apiserver answers.
    let stranger = client_with_token(&c, "not-a-token").await;
    let (code, body) = send(
        &stranger,
        Method::GET,
        "/api/v1/namespaces",
        &[],
        Value::Null,
    )
    .await;
    assert_eq!(code, 401);
    assert_eq!(
        body,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
    );
    let (head, _) = token.rsplit_once('.').unwrap();
    let forged = client_with_token(&c, &format!("{head}.AAAA")).await;
    assert_eq!(
        send(&forged, Method::GET, "/version", &[], Value::Null)
            .await
            .0,
        401
    );

    // Discovery and /version: every authenticated user (system:discovery).
    assert_eq!(
        send(&sa, Method::GET, "/version", &[], Value::Null).await.0,
        200
    );
    assert_eq!(
        send(&sa, Method::GET, "/apis/apps/v1", &[], Value::Null)
            .await
            .0,
        200
    );

    // No binding: the exact 403 of kube-apiserver, and nothing changes.
    let before = admin(
        &c,
        Method::GET,
        "/apis/apps/v1/namespaces/default/deployments/web",
        Value::Null,
    )
    .await;
    let patch = ("content-type", "application/merge-patch+json");
    let (code, body) = send(
        &sa,
        Method::PATCH,
        "/apis/apps/v1/namespaces/default/deployments/web",
        &[patch],
        json!({"spec": {"paused": true}}),
    )
    .await;
    assert_eq!(code, 403);
    assert_eq!(
        body,
        json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"deployments.apps \"web\" is forbidden: User \"system:serviceaccount:ramp:op\" cannot patch resource \"deployments\" in API group \"apps\" in the namespace \"default\"","reason":"Forbidden","details":{"name":"web","group":"apps","kind":"deployments"},"code":403})
    );
    let after = admin(
        &c,
        Method::GET,
        "/apis/apps/v1/namespaces/default/deployments/web",
        Value::Null,
    )
    .await;
    assert_eq!(before, after, "a forbidden patch changes nothing");
    let (code, body) = send(&sa, Method::GET, "/api/v1/nodes", &[], Value::Null).await;
    assert_eq!(code, 403);
    assert_eq!(
        body["message"],
        "nodes is forbidden: User \"system:serviceaccount:ramp:op\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"
    );

    // A Role with resourceNames and a subresource, bound to the ServiceAccount.
    admin(
        &c,
        Method::POST,
        "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles",
        json!({"metadata": {"name": "web-only"}, "rules": [
            {"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["web"], "verbs": ["get", "patch"]},
            {"apiGroups": ["apps"], "resources": ["deployments/status"], "verbs": ["update"]},
            {"apiGroups": ["apps"], "resources": ["*/scale"], "verbs": ["get"]}]}),
    )
    .await;
    admin(
        &c,
        Method::POST,
        "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings",
        json!({"metadata": {"name": "op-web"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "web-only"},
               "subjects": [{"kind": "ServiceAccount", "name": "op", "namespace": "ramp"}]}),
    )
    .await;
    let web = "/apis/apps/v1/namespaces/default/deployments/web";
    let (code, body) = send(
        &sa,
        Method::PATCH,
        web,
        &[patch],
        json!({"spec": {"paused": true}}),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["spec"]["paused"], true);
    let (code, body) = send(
        &sa,
        Method::PATCH,
        "/apis/apps/v1/namespaces/default/deployments/api",
        &[patch],
        json!({"spec": {"paused": true}}),
    )
    .await;
    assert_eq!(code, 403, "resourceNames: only web");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("deployments.apps \"api\" is forbidden")
    );
    let (code, body) = send(
        &sa,
        Method::PATCH,
        &format!("{web}/status"),
        &[patch],
        json!({"status": {}}),
    )
    .await;
    assert_eq!(code, 403);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("cannot patch resource \"deployments/status\""),
        "{body}"
    );
    let current = send(&sa, Method::GET, web, &[], Value::Null).await.1;
    let (code, body) = send(&sa, Method::PUT, &format!("{web}/status"), &[JSON], current).await;
    assert_eq!(code, 200, "update on deployments/status: {body}");
    assert_eq!(
        send(&sa, Method::GET, &format!("{web}/scale"), &[], Value::Null)
            .await
            .0,
        200
    );
    let (code, _) = send(
        &sa,
        Method::GET,
        "/apis/apps/v1/namespaces/default/deployments",
        &[],
        Value::Null,
    )
    .await;
    assert_eq!(code, 403, "resourceNames never allow a list");

    // A server-side apply that would create needs create as well as patch.
    admin(
        &c,
        Method::POST,
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        json!({"metadata": {"name": "cm-patch"}, "rules": [
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["patch"]}]}),
    )
    .await;
    admin(
        &c,
        Method::POST,
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        json!({"metadata": {"name": "sa-cm"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cm-patch"},
               "subjects": [{"kind": "Group", "name": "system:serviceaccounts:ramp"}]}),
    )
    .await;
    let apply = [("content-type", "application/apply-patch+yaml")];
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "1"}});
    let path = "/api/v1/namespaces/default/configmaps/cfg?fieldManager=op";
    let (code, body) = send(&sa, Method::PATCH, path, &apply, cm.clone()).await;
    assert_eq!(code, 403);
    assert_eq!(
        body["message"],
        "configmaps \"cfg\" is forbidden: User \"system:serviceaccount:ramp:op\" cannot create resource \"configmaps\" in API group \"\" in the namespace \"default\""
    );
    admin(
        &c,
        Method::POST,
        "/api/v1/namespaces/default/configmaps",
        json!({"metadata": {"name": "cfg"}}),
    )
    .await;
    let (code, body) = send(&sa, Method::PATCH, path, &apply, cm).await;
    assert_eq!(code, 200, "apply to an existing object is a patch: {body}");

    // SelfSubjectAccessReview and SubjectAccessReview answer from the same rules.
    let ssar = |ns: &str, verb: &str, resource: &str, sub: &str, name: &str| {
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {"namespace": ns, "verb": verb, "group": "apps",
                     "resource": resource, "subresource": sub, "name": name}}})
    };
    let path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
    let (code, r) = send(
        &sa,
        Method::POST,
        path,
        &[JSON],
        ssar("default", "patch", "deployments", "", "web"),
    )
    .await;
    assert_eq!(code, 201);
    assert_eq!(r["status"]["allowed"], true, "{r}");
    assert_eq!(
        r["status"]["reason"],
        "RBAC: allowed by RoleBinding \"op-web/default\" of Role \"web-only\" to ServiceAccount \"op/ramp\""
    );
    let (_, r) = send(
        &sa,
        Method::POST,
        path,
        &[JSON],
        ssar("default", "patch", "deployments", "", "api"),
    )
    .await;
    assert_eq!(r["status"]["allowed"], false, "{r}");
    let (_, r) = send(
        &sa,
        Method::POST,
        path,
        &[JSON],
        ssar("other", "patch", "deployments", "", "web"),
    )
    .await;
    assert_eq!(
        r["status"]["allowed"], false,
        "a RoleBinding grants only its namespace"
    );
    let sar = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": SA, "groups": ["system:serviceaccounts", "system:serviceaccounts:ramp"],
                 "resourceAttributes": {"namespace": "default", "verb": "update", "group": "apps",
                                        "resource": "deployments", "subresource": "status"}}});
    let sar_path = "/apis/authorization.k8s.io/v1/subjectaccessreviews";
    let r = admin(&c, Method::POST, sar_path, sar.clone()).await;
    assert_eq!(r["status"]["allowed"], true, "{r}");
    let (code, _) = send(&sa, Method::POST, sar_path, &[JSON], sar).await;
    assert_eq!(
        code, 403,
        "a SubjectAccessReview needs create on subjectaccessreviews"
    );
    let (_, who) = send(
        &sa,
        Method::POST,
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        &[JSON],
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}),
    )
    .await;
    assert_eq!(who["status"]["userInfo"]["username"], SA);

    // Impersonation (kubectl --as): the admin may; the request is then authorized as the user.
    let (code, body) = send(
        &c.client(),
        Method::GET,
        "/apis/apps/v1/namespaces/default/deployments/api",
        &[("Impersonate-User", SA)],
        Value::Null,
    )
    .await;
    assert_eq!(code, 403);
    assert!(body["message"].as_str().unwrap().contains(SA), "{body}");
    let (code, _) = send(
        &c.client(),
        Method::GET,
        web,
        &[("Impersonate-User", SA)],
        Value::Null,
    )
    .await;
    assert_eq!(code, 200);
    let (code, body) = send(
        &sa,
        Method::GET,
        web,
        &[("Impersonate-User", "alice")],
        Value::Null,
    )
    .await;
    assert_eq!(code, 403);
    assert_eq!(
        body["message"],
        "users \"alice\" is forbidden: User \"system:serviceaccount:ramp:op\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
    );

    // A bound token dies with its ServiceAccount.
    admin(
        &c,
        Method::DELETE,
        "/api/v1/namespaces/ramp/serviceaccounts/op",
        Value::Null,
    )
    .await;
    assert_eq!(
        send(&sa, Method::GET, "/version", &[], Value::Null).await.0,
        401
    );
}
