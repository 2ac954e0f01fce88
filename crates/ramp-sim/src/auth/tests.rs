use serde_json::json;

use super::rbac::{Attributes, attributes, forbidden, rule_allows};
use super::*;

fn attrs(method: &str, path: &str, query: Option<&str>) -> Attributes {
    attributes(method, path, query)
}

#[test]
fn request_attributes_are_parsed_like_kube_apiserver() {
    let a = attrs(
        "PATCH",
        "/apis/apps/v1/namespaces/default/deployments/web/status",
        None,
    );
    assert_eq!(
        (a.verb.as_str(), a.group.as_str(), a.resource.as_str()),
        ("patch", "apps", "deployments")
    );
    assert_eq!((a.subresource.as_str(), a.name.as_str()), ("status", "web"));
    assert_eq!(a.namespace, "default");
    assert_eq!(attrs("GET", "/api/v1/pods", None).verb, "list");
    assert_eq!(
        attrs("GET", "/api/v1/pods", Some("watch=true")).verb,
        "watch"
    );
    assert_eq!(
        attrs("GET", "/api/v1/watch/namespaces/a/pods", None).verb,
        "watch"
    );
    assert_eq!(
        attrs("DELETE", "/api/v1/namespaces/a/pods", None).verb,
        "deletecollection"
    );
    let one = attrs(
        "GET",
        "/apis/coordination.k8s.io/v1/namespaces/a/leases",
        Some("fieldSelector=metadata.name%3Dlead&watch=1"),
    );
    assert_eq!((one.verb.as_str(), one.name.as_str()), ("watch", "lead"));
    let ns = attrs("GET", "/api/v1/namespaces/a", None);
    assert_eq!(
        (
            ns.resource.as_str(),
            ns.name.as_str(),
            ns.namespace.as_str()
        ),
        ("namespaces", "a", "a")
    );
    let fin = attrs("PUT", "/api/v1/namespaces/a/finalize", None);
    assert_eq!(
        (fin.resource.as_str(), fin.subresource.as_str()),
        ("namespaces", "finalize")
    );
    let v = attrs("GET", "/version", None);
    assert!(!v.resource_request);
    assert_eq!((v.verb.as_str(), v.path.as_str()), ("get", "/version"));
    assert!(!attrs("GET", "/apis/apps/v1", None).resource_request);
}

#[test]
fn rules_match_verbs_groups_subresources_and_names() {
    let a = attrs(
        "PATCH",
        "/apis/apps/v1/namespaces/d/deployments/web/scale",
        None,
    );
    let rule = |v: serde_json::Value| rule_allows(&v, &a);
    assert!(rule(
        json!({"verbs": ["patch"], "apiGroups": ["apps"], "resources": ["deployments/scale"]})
    ));
    assert!(rule(
        json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*/scale"]})
    ));
    assert!(rule(
        json!({"verbs": ["patch"], "apiGroups": ["apps"], "resources": ["*"]})
    ));
    assert!(
        !rule(json!({"verbs": ["patch"], "apiGroups": ["apps"], "resources": ["deployments"]})),
        "the main resource does not cover a subresource"
    );
    assert!(!rule(
        json!({"verbs": ["update"], "apiGroups": ["apps"], "resources": ["deployments/scale"]})
    ));
    assert!(!rule(
        json!({"verbs": ["patch"], "apiGroups": [""], "resources": ["deployments/scale"]})
    ));
    assert!(rule(
        json!({"verbs": ["patch"], "apiGroups": ["apps"], "resources": ["deployments/scale"], "resourceNames": ["web"]})
    ));
    assert!(!rule(
        json!({"verbs": ["patch"], "apiGroups": ["apps"], "resources": ["deployments/scale"], "resourceNames": ["api"]})
    ));
    let list = attrs("GET", "/apis/apps/v1/deployments", None);
    assert!(
        !rule_allows(
            &json!({"verbs": ["list"], "apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["web"]}),
            &list
        ),
        "resourceNames never allow an unnamed list"
    );
    let path = attrs("GET", "/metrics/cadvisor", None);
    assert!(rule_allows(
        &json!({"verbs": ["get"], "nonResourceURLs": ["/metrics/*"]}),
        &path
    ));
    assert!(!rule_allows(
        &json!({"verbs": ["get"], "nonResourceURLs": ["/metrics"]}),
        &path
    ));
}

#[test]
fn forbidden_messages_are_kube_apiservers() {
    let u = User::named("system:serviceaccount:ramp:ramp", &[]);
    let e = forbidden(
        &u,
        &attrs(
            "PATCH",
            "/apis/apps/v1/namespaces/default/deployments/web",
            None,
        ),
        "",
    );
    assert_eq!(
        e.to_status(),
        json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"deployments.apps \"web\" is forbidden: User \"system:serviceaccount:ramp:ramp\" cannot patch resource \"deployments\" in API group \"apps\" in the namespace \"default\"","reason":"Forbidden","details":{"name":"web","group":"apps","kind":"deployments"},"code":403})
    );
    let e = forbidden(
        &u,
        &attrs(
            "PUT",
            "/apis/apps/v1/namespaces/default/deployments/web/status",
            None,
        ),
        "",
    );
    assert!(
        e.message
            .contains("cannot update resource \"deployments/status\""),
        "{}",
        e.message
    );
    let e = forbidden(&u, &attrs("GET", "/api/v1/nodes", None), "");
    assert_eq!(
        e.message,
        "nodes is forbidden: User \"system:serviceaccount:ramp:ramp\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"
    );
    assert_eq!(e.to_status()["details"], json!({"kind": "nodes"}));
    let e = forbidden(&u, &attrs("GET", "/logs", None), "");
    assert_eq!(
        e.message,
        "forbidden: User \"system:serviceaccount:ramp:ramp\" cannot get path \"/logs\""
    );
}
