//! Gateway API for meshes (GAMMA): HTTPRoutes attached to a Service, as pure
//! routing fixtures.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod mesh_support;

use mesh_support::*;
use pretty_assertions::assert_eq;
use ramp_sim::mesh::{HttpRequest, RouteOptions, Snapshot, route};
use serde_json::{Value, json};

/// bookinfo reviews with one Service per version, as Gateway API users write it.
fn reviews_per_version_services() -> Vec<Value> {
    let mut objs = bookinfo_reviews();
    for v in ["v1", "v2", "v3"] {
        objs.push(service(
            &format!("reviews-{v}"),
            json!({"app": "reviews", "version": v}),
        ));
    }
    objs
}

fn backend(name: &str) -> Value {
    json!({"name": name, "port": 9080})
}

fn jason_route() -> Value {
    http_route(
        "reviews",
        "2024-01-01T00:00:00Z",
        json!({
            "parentRefs": service_parent("reviews"),
            "rules": [
                {"matches": [{"headers": [{"name": "end-user", "value": "jason"}]}],
                 "backendRefs": [backend("reviews-v2")]},
                {"backendRefs": [backend("reviews-v3")]}
            ]
        }),
    )
}

#[test]
fn jason_routing_as_an_http_route_on_the_reviews_service() {
    let mut objs = reviews_per_version_services();
    objs.push(jason_route());
    let snap = snapshot(objs);

    let r = send(
        &snap,
        &HttpRequest::new("reviews").header("end-user", "jason"),
        1000,
    );
    assert_eq!(r.version("v2"), 1000);
    assert_eq!(
        r.by_rule.get("HTTPRoute/reviews rules[0].matches[0]"),
        Some(&1000)
    );
    assert_eq!(r.by_destination.get("reviews-v2"), Some(&1000));

    let r = send(&snap, &HttpRequest::new("reviews"), 1000);
    assert_eq!(r.version("v3"), 1000);
    assert_eq!(r.by_rule.get("HTTPRoute/reviews rules[1]"), Some(&1000));
}

#[test]
fn a_second_http_route_on_the_same_service_also_takes_effect() {
    let mut objs = reviews_per_version_services();
    objs.push(jason_route());
    objs.push(http_route(
        "reviews-jason2",
        "2024-02-01T00:00:00Z",
        json!({
            "parentRefs": service_parent("reviews"),
            "rules": [{"matches": [{"headers": [{"name": "end-user", "value": "jason2"}]}],
                       "backendRefs": [backend("reviews-v1")]}]
        }),
    ));
    let snap = snapshot(objs);
    assert_eq!(
        send(
            &snap,
            &HttpRequest::new("reviews").header("end-user", "jason2"),
            500
        )
        .version("v1"),
        500
    );
    assert_eq!(
        send(
            &snap,
            &HttpRequest::new("reviews").header("end-user", "jason"),
            500
        )
        .version("v2"),
        500
    );
    assert_eq!(
        send(&snap, &HttpRequest::new("reviews"), 500).version("v3"),
        500
    );
    // Two routes on one Service merge; that is not a conflict.
    assert!(
        send(&snap, &HttpRequest::new("reviews"), 1)
            .conflicts
            .is_empty()
    );
}

#[test]
fn weighted_backend_refs_split_by_weight_and_default_to_one_each() {
    let mut objs = reviews_per_version_services();
    objs.push(http_route(
        "reviews",
        "2024-01-01T00:00:00Z",
        json!({"parentRefs": service_parent("reviews"), "rules": [
            {"matches": [{"path": {"type": "PathPrefix", "value": "/weighted"}}],
             "backendRefs": [
                {"name": "reviews-v1", "port": 9080, "weight": 90},
                {"name": "reviews-v2", "port": 9080, "weight": 10},
                {"name": "reviews-v3", "port": 9080, "weight": 0}
             ]},
            {"backendRefs": [backend("reviews-v1"), backend("reviews-v3")]}
        ]}),
    ));
    let snap = snapshot(objs);
    let r = send(&snap, &HttpRequest::new("reviews").path("/weighted"), 1000);
    assert_within(r.version("v1"), 900, 30, "v1");
    assert_within(r.version("v2"), 100, 30, "v2");
    assert_eq!(r.version("v3"), 0);

    let r = send(&snap, &HttpRequest::new("reviews"), 2000);
    assert_within(r.version("v1"), 1000, 60, "v1");
    assert_within(r.version("v3"), 1000, 60, "v3");
}

fn precedence_snapshot() -> Snapshot {
    let mut objs = reviews_per_version_services();
    objs.push(http_route(
        "older",
        "2024-01-01T00:00:00Z",
        json!({"parentRefs": service_parent("reviews"), "rules": [
            {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}], "backendRefs": [backend("reviews-v1")]},
            {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}, "method": "POST"}], "backendRefs": [backend("reviews-v2")]},
            {"matches": [{"path": {"type": "PathPrefix", "value": "/tie"}}], "backendRefs": [backend("reviews-v1")]},
            {"matches": [{"path": {"type": "PathPrefix", "value": "/q"}, "queryParams": [{"name": "a", "value": "1"}]}],
             "backendRefs": [backend("reviews-v1")]}
        ]}),
    ));
    objs.push(http_route(
        "newer",
        "2024-03-01T00:00:00Z",
        json!({"parentRefs": service_parent("reviews"), "rules": [
            {"matches": [{"path": {"type": "Exact", "value": "/api/login"}}], "backendRefs": [backend("reviews-v3")]},
            {"matches": [{"path": {"type": "PathPrefix", "value": "/api/v2"}}], "backendRefs": [backend("reviews-v3")]},
            {"matches": [{"path": {"type": "PathPrefix", "value": "/tie"}}], "backendRefs": [backend("reviews-v3")]},
            {"matches": [{"path": {"type": "PathPrefix", "value": "/api"},
                          "headers": [{"name": "x-a", "value": "1"}, {"name": "x-b", "value": "2"}]}],
             "backendRefs": [backend("reviews-v3")]},
            {"matches": [{"path": {"type": "PathPrefix", "value": "/q"},
                          "queryParams": [{"name": "a", "value": "1"}, {"name": "b", "type": "RegularExpression", "value": "[0-9]+"}]}],
             "backendRefs": [backend("reviews-v2")]}
        ]}),
    ));
    snapshot(objs)
}

fn version_of(snap: &Snapshot, req: HttpRequest) -> String {
    let r = send(snap, &req, 2);
    assert_eq!(
        r.by_version.len(),
        1,
        "{:?} {:?}",
        r.by_version,
        r.error_reasons
    );
    r.by_version.keys().next().cloned().unwrap_or_default()
}

#[test]
fn rules_across_routes_follow_the_gateway_api_precedence() {
    let snap = precedence_snapshot();
    let v = |r: HttpRequest| version_of(&snap, r);
    // Exact path beats any prefix, even from a newer route.
    assert_eq!(
        v(HttpRequest::new("reviews")
            .path("/api/login")
            .method("POST")),
        "v3"
    );
    // A longer prefix beats a shorter one.
    assert_eq!(
        v(HttpRequest::new("reviews").path("/api/v2/x").method("POST")),
        "v3"
    );
    // Same path: a method match beats none.
    assert_eq!(
        v(HttpRequest::new("reviews").path("/api/x").method("POST")),
        "v2"
    );
    assert_eq!(v(HttpRequest::new("reviews").path("/api/x")), "v1");
    // Same path, no method: more header matches win.
    assert_eq!(
        v(HttpRequest::new("reviews")
            .path("/api/x")
            .header("x-a", "1")
            .header("x-b", "2")),
        "v3"
    );
    // ...but a method match outranks header matches.
    assert_eq!(
        v(HttpRequest::new("reviews")
            .path("/api/x")
            .method("POST")
            .header("x-a", "1")
            .header("x-b", "2")),
        "v2"
    );
    // More query parameter matches win.
    assert_eq!(v(HttpRequest::new("reviews").path("/q?a=1&b=22")), "v2");
    assert_eq!(v(HttpRequest::new("reviews").path("/q?a=1&b=x")), "v1");
    // A full tie goes to the older route.
    assert_eq!(v(HttpRequest::new("reviews").path("/tie")), "v1");
    // PathPrefix matches whole segments only.
    let r = send(&snap, &HttpRequest::new("reviews").path("/apix"), 5);
    assert_eq!(r.errors_with(404), 5);
}

#[test]
fn a_tie_within_one_route_goes_to_the_first_rule() {
    let mut objs = reviews_per_version_services();
    objs.push(http_route(
        "reviews",
        "2024-01-01T00:00:00Z",
        json!({"parentRefs": service_parent("reviews"), "rules": [
            {"matches": [{"headers": [{"name": "x", "value": "1"}]}], "backendRefs": [backend("reviews-v2")]},
            {"matches": [{"headers": [{"name": "x", "type": "RegularExpression", "value": "[0-9]"}]}],
             "backendRefs": [backend("reviews-v1")]}
        ]}),
    ));
    let snap = snapshot(objs);
    assert_eq!(
        version_of(&snap, HttpRequest::new("reviews").header("x", "1")),
        "v2"
    );
    assert_eq!(
        version_of(&snap, HttpRequest::new("reviews").header("x", "7")),
        "v1"
    );
}

#[test]
fn routes_attach_only_through_a_core_service_parent_ref() {
    let mut objs = reviews_per_version_services();
    objs.push(http_route(
        "via-gateway",
        "2024-01-01T00:00:00Z",
        json!({"parentRefs": [{"name": "reviews"}], "rules": [{"backendRefs": [backend("reviews-v1")]}]}),
    ));
    objs.push(http_route(
        "other-port",
        "2024-01-01T00:00:00Z",
        json!({"parentRefs": [{"group": "", "kind": "Service", "name": "reviews", "port": 9999}],
               "rules": [{"backendRefs": [backend("reviews-v1")]}]}),
    ));
    objs.push(http_route(
        "other-service",
        "2024-01-01T00:00:00Z",
        json!({"parentRefs": service_parent("ratings"), "rules": [{"backendRefs": [backend("reviews-v1")]}]}),
    ));
    let r = send(&snapshot(objs), &HttpRequest::new("reviews"), 600);
    // None applies: the reviews Service spreads over its six pods.
    assert_eq!(r.by_pod.len(), 6, "{:?}", r.by_pod);
    assert_eq!(r.by_rule.get("Service/reviews"), Some(&600));
    assert!(
        r.warnings.iter().any(|w| w.contains("other-port")),
        "{:?}",
        r.warnings
    );
}

#[test]
fn a_parent_ref_port_matching_the_service_port_attaches() {
    let mut objs = reviews_per_version_services();
    objs.push(http_route(
        "reviews",
        "2024-01-01T00:00:00Z",
        json!({"parentRefs": [{"group": "", "kind": "Service", "name": "reviews", "port": 9080}],
               "rules": [{"backendRefs": [backend("reviews-v1")]}]}),
    ));
    assert_eq!(
        version_of(&snapshot(objs), HttpRequest::new("reviews")),
        "v1"
    );
}

#[test]
fn invalid_backend_refs_get_500_and_empty_backends_get_503() {
    let mut objs = reviews_per_version_services();
    objs.push(service("empty", json!({"app": "nothing"})));
    objs.push(http_route(
        "reviews",
        "2024-01-01T00:00:00Z",
        json!({"parentRefs": service_parent("reviews"), "rules": [
            {"matches": [{"path": {"value": "/missing"}}], "backendRefs": [backend("nope")]},
            {"matches": [{"path": {"value": "/kind"}}], "backendRefs": [{"group": "example.com", "kind": "Bucket", "name": "b"}]},
            {"matches": [{"path": {"value": "/xns"}}], "backendRefs": [{"name": "reviews-v1", "namespace": "other", "port": 9080}]},
            {"matches": [{"path": {"value": "/zero"}}], "backendRefs": [{"name": "reviews-v1", "port": 9080, "weight": 0}]},
            {"matches": [{"path": {"value": "/none"}}]},
            {"matches": [{"path": {"value": "/empty"}}], "backendRefs": [backend("empty")]}
        ]}),
    ));
    let snap = snapshot(objs);
    let r = |p: &str| send(&snap, &HttpRequest::new("reviews").path(p), 10);
    for p in ["/missing", "/kind", "/xns", "/zero", "/none"] {
        let rep = r(p);
        assert_eq!(rep.errors_with(500), 10, "{p}: {:?}", rep.error_reasons);
    }
    assert!(
        r("/missing")
            .error_reasons
            .keys()
            .any(|k| k.contains("no Service nope"))
    );
    let rep = r("/empty");
    assert_eq!(rep.errors_with(503), 10);
    assert!(
        rep.error_reasons
            .keys()
            .any(|k| k.contains("no ready pods for Service empty"))
    );
    assert_eq!(r("/elsewhere").errors_with(404), 10);
}

fn httpbin_services() -> Vec<Value> {
    let mut objs = vec![service("httpbin", json!({"app": "httpbin"}))];
    objs.extend(pods("httpbin", "v1", "11aa", 1));
    objs.extend(pods("httpbin", "v2", "22bb", 1));
    objs.push(service(
        "httpbin-v1",
        json!({"app": "httpbin", "version": "v1"}),
    ));
    objs.push(service(
        "httpbin-v2",
        json!({"app": "httpbin", "version": "v2"}),
    ));
    objs
}

fn mirror_route(mirror: Value) -> Value {
    http_route(
        "httpbin",
        "2024-01-01T00:00:00Z",
        json!({"parentRefs": service_parent("httpbin"), "rules": [{
            "filters": [{"type": "RequestMirror", "requestMirror": mirror}],
            "backendRefs": [{"name": "httpbin-v1", "port": 8000}]
        }]}),
    )
}

#[test]
fn httpbin_v1_mirrored_to_v2_with_a_request_mirror_filter() {
    let mut objs = httpbin_services();
    objs.push(mirror_route(
        json!({"backendRef": {"name": "httpbin-v2", "port": 8000}}),
    ));
    let r = send(&snapshot(objs), &HttpRequest::new("httpbin"), 1000);
    assert_eq!(r.version("v1"), 1000);
    assert_eq!(r.shadow.requests, 1000);
    assert_eq!(r.shadow.version("v2"), 1000);
    assert_eq!(r.shadow.by_destination.get("httpbin-v2"), Some(&1000));
}

#[test]
fn request_mirror_percent_and_fraction() {
    let mut objs = httpbin_services();
    objs.push(mirror_route(
        json!({"backendRef": {"name": "httpbin-v2", "port": 8000}, "percent": 20}),
    ));
    let r = send(&snapshot(objs), &HttpRequest::new("httpbin"), 2000);
    assert_within(r.shadow.version("v2"), 400, 60, "20%");

    let mut objs = httpbin_services();
    objs.push(mirror_route(
        json!({"backendRef": {"name": "httpbin-v2", "port": 8000}, "fraction": {"numerator": 1, "denominator": 4}}),
    ));
    let r = send(&snapshot(objs), &HttpRequest::new("httpbin"), 2000);
    assert_within(r.shadow.version("v2"), 500, 60, "1/4");
    assert_eq!(r.version("v1"), 2000);

    let mut objs = httpbin_services();
    objs.push(mirror_route(
        json!({"backendRef": {"name": "httpbin-v2", "port": 8000}, "percent": 0}),
    ));
    assert_eq!(
        send(&snapshot(objs), &HttpRequest::new("httpbin"), 100)
            .shadow
            .requests,
        0
    );
}

#[test]
fn a_backend_level_mirror_applies_only_when_that_backend_is_chosen() {
    let mut objs = httpbin_services();
    objs.push(http_route(
        "httpbin",
        "2024-01-01T00:00:00Z",
        json!({"parentRefs": service_parent("httpbin"), "rules": [{"backendRefs": [
            {"name": "httpbin-v1", "port": 8000, "weight": 50,
             "filters": [{"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "httpbin-v2", "port": 8000}}}]},
            {"name": "httpbin-v2", "port": 8000, "weight": 50}
        ]}]}),
    ));
    let r = send(&snapshot(objs), &HttpRequest::new("httpbin"), 1000);
    assert_eq!(r.shadow.requests, r.version("v1"));
    assert_within(r.version("v1"), 500, 50, "v1");
}

#[test]
fn a_virtual_service_and_an_http_route_for_one_host_conflict_and_the_older_wins() {
    let mut objs = reviews_per_version_services();
    objs.push(version_subsets("reviews", "reviews", &["v1", "v2", "v3"]));
    objs.push(jason_route()); // 2024-01-01
    objs.push(virtual_service(
        "reviews",
        "2024-06-01T00:00:00Z",
        json!({"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews", "subset": "v1"}}]}]}),
    ));
    let r = send(&snapshot(objs.clone()), &HttpRequest::new("reviews"), 10);
    assert_eq!(r.version("v3"), 10);
    assert_eq!(r.conflicts.len(), 1);
    assert_eq!(
        r.conflicts[0].objects,
        vec!["VirtualService/reviews", "HTTPRoute/reviews"]
    );
    assert!(
        r.conflicts[0]
            .message
            .contains("HTTPRoute/reviews, is used"),
        "{}",
        r.conflicts[0].message
    );

    let last = objs.len() - 1;
    objs[last]["metadata"]["creationTimestamp"] = json!("2023-01-01T00:00:00Z");
    assert_eq!(
        send(&snapshot(objs), &HttpRequest::new("reviews"), 10).version("v1"),
        10
    );
}

#[test]
fn request_redirect_is_a_direct_response() {
    let mut objs = reviews_per_version_services();
    objs.push(http_route(
        "reviews",
        "2024-01-01T00:00:00Z",
        json!({"parentRefs": service_parent("reviews"), "rules": [
            {"filters": [{"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}}]}
        ]}),
    ));
    let r = send(&snapshot(objs), &HttpRequest::new("reviews"), 10);
    assert_eq!(r.direct_responses.get("301"), Some(&10));
}

#[test]
fn malformed_http_routes_are_errors_naming_the_field() {
    let bad = |rules: Value| {
        let mut objs = reviews_per_version_services();
        objs.push(http_route(
            "bad",
            "2024-01-01T00:00:00Z",
            json!({"parentRefs": service_parent("reviews"), "rules": rules}),
        ));
        route(
            &snapshot(objs),
            &HttpRequest::new("reviews"),
            &RouteOptions::new(1),
        )
        .unwrap_err()
        .to_string()
    };
    assert_eq!(
        bad(
            json!([{"matches": [{"path": {"type": "Glob", "value": "/x"}}], "backendRefs": [backend("reviews-v1")]}])
        ),
        "HTTPRoute bad: spec.rules[0].matches[0].path.type: \"Glob\" is not one of Exact, PathPrefix, RegularExpression"
    );
    assert!(
        bad(json!([{"matches": [{"path": {"type": "Exact", "value": "x"}}]}]))
            .contains("path.value: \"x\" must start with /")
    );
    assert!(
        bad(json!([{"matches": [{"headers": [{"name": "a", "type": "RegularExpression", "value": "("}]}]}]))
            .contains("spec.rules[0].matches[0].headers[0].value: invalid regular expression")
    );
    assert!(
        bad(
            json!([{"filters": [{"type": "RequestMirror", "requestMirror": {
            "backendRef": {"name": "reviews-v2"}, "percent": 10, "fraction": {"numerator": 1}}}],
            "backendRefs": [backend("reviews-v1")]}])
        )
        .contains("spec.rules[0].filters[0].requestMirror: only one of percent and fraction")
    );
    assert!(
        bad(json!([{"backendRefs": [{"port": 80}]}]))
            .contains("spec.rules[0].backendRefs[0].name: is required")
    );
}

#[test]
fn header_modifier_filters_apply_per_rule_and_per_chosen_backend() {
    let mut objs = reviews_per_version_services();
    objs.push(http_route(
        "reviews",
        "2024-01-01T00:00:00Z",
        json!({
            "parentRefs": service_parent("reviews"),
            "rules": [{
                "filters": [
                    {"type": "RequestHeaderModifier", "requestHeaderModifier": {
                        "set": [{"name": "X-Set", "value": "set"}],
                        "add": [{"name": "X-Add", "value": "added"}],
                        "remove": ["X-Remove"]}},
                    {"type": "ResponseHeaderModifier", "responseHeaderModifier": {
                        "set": [{"name": "X-Route", "value": "reviews"}]}}
                ],
                "backendRefs": [
                    {"name": "reviews-v1", "port": 9080, "weight": 1, "filters": [
                        {"type": "RequestHeaderModifier", "requestHeaderModifier": {
                            "set": [{"name": "Backend", "value": "reviews-v1"}]}}]},
                    {"name": "reviews-v2", "port": 9080, "weight": 1, "filters": [
                        {"type": "RequestHeaderModifier", "requestHeaderModifier": {
                            "set": [{"name": "Backend", "value": "reviews-v2"}]}}]}
                ]
            }]
        }),
    ));
    let snap = snapshot(objs);
    let r = send(
        &snap,
        &HttpRequest::new("reviews")
            .header("x-set", "old")
            .header("X-Add", "mine")
            .header("x-remove", "1"),
        200,
    );
    for v in ["reviews-v1", "reviews-v2"] {
        let seen = &r.request_headers[v];
        assert_eq!(seen.get("backend").map(String::as_str), Some(v), "{seen:?}");
        assert_eq!(seen.get("x-set").map(String::as_str), Some("set"));
        assert_eq!(seen.get("x-add").map(String::as_str), Some("mine,added"));
        assert!(!seen.contains_key("x-remove"));
        assert_eq!(
            r.response_headers[v].get("x-route").map(String::as_str),
            Some("reviews")
        );
    }
}

fn gateway(name: &str, listeners: Value) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"gatewayClassName": "sim", "listeners": listeners}
    })
}

#[test]
fn requests_through_a_gateway_api_gateway_take_the_routes_attached_to_its_listener() {
    let mut objs = reviews_per_version_services();
    objs.push(gateway(
        "edge",
        json!([
            {"name": "http", "port": 80, "protocol": "HTTP"},
            {"name": "shop", "port": 80, "protocol": "HTTP", "hostname": "*.shop.example"},
            {"name": "admin", "port": 8080, "protocol": "HTTP",
             "allowedRoutes": {"kinds": [{"kind": "GRPCRoute"}]}}
        ]),
    ));
    let gw_route = |name: &str, created: &str, parent: Value, hostnames: Value, to: &str| {
        http_route(
            name,
            created,
            json!({"parentRefs": [parent], "hostnames": hostnames,
                   "rules": [{"backendRefs": [backend(to)]}]}),
        )
    };
    objs.push(gw_route(
        "any",
        "2024-01-01T00:00:00Z",
        json!({"name": "edge", "sectionName": "http"}),
        json!([]),
        "reviews-v1",
    ));
    objs.push(gw_route(
        "shop",
        "2024-01-01T00:00:00Z",
        json!({"name": "edge"}),
        json!(["cart.shop.example"]),
        "reviews-v2",
    ));
    objs.push(gw_route(
        "admin",
        "2024-01-01T00:00:00Z",
        json!({"name": "edge", "port": 8080}),
        json!([]),
        "reviews-v3",
    ));
    // A route on the Service, not the Gateway: never taken through the Gateway.
    objs.push(http_route(
        "mesh",
        "2023-01-01T00:00:00Z",
        json!({"parentRefs": service_parent("reviews"), "rules": [{"backendRefs": [backend("reviews-v3")]}]}),
    ));
    let snap = snapshot(objs);
    let via = |host: &str| send(&snap, &HttpRequest::new(host).through_gateway("edge"), 10);

    // No listener hostname: any Host; the `http` listener takes it.
    let r = via("192.0.2.1");
    assert_eq!(r.version("v1"), 10, "{r:?}");
    // `*.shop.example` is more specific than no hostname: the `shop` listener,
    // where only the `shop` route (hostname cart.shop.example) is attached.
    let r = via("cart.shop.example");
    assert_eq!(r.version("v2"), 10, "{r:?}");
    let r = via("other.shop.example");
    assert_eq!(r.errors_with(404), 10, "{r:?}");
    // The route name `reviews` is a Service, but through the Gateway Services do not route.
    assert_eq!(via("reviews").version("v1"), 10);
    // Port 8080: the listener does not allow HTTPRoutes.
    let r = via("192.0.2.1:8080");
    assert_eq!(r.errors_with(404), 10, "{r:?}");
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("does not allow HTTPRoutes")),
        "{r:?}"
    );
    // No listener on port 9999.
    let r = via("192.0.2.1:9999");
    assert_eq!(r.errors_with(404), 10);
    assert!(
        r.warnings.iter().any(|w| w.contains("no HTTP listener")),
        "{r:?}"
    );
    // From inside the mesh, the Service route applies.
    assert_eq!(
        send(&snap, &HttpRequest::new("reviews"), 10).version("v3"),
        10
    );
}

#[test]
fn consumer_routes_apply_to_clients_of_their_namespace_only() {
    let mut objs = reviews_per_version_services();
    // The producer's own route: everyone to v1.
    objs.push(http_route(
        "reviews",
        "2024-01-01T00:00:00Z",
        json!({"parentRefs": service_parent("reviews"), "rules": [{"backendRefs": [backend("reviews-v1")]}]}),
    ));
    // A consumer route in namespace shop: shop's clients go to v2.
    let mut consumer = http_route(
        "shop-reviews",
        "2024-01-01T00:00:00Z",
        json!({"parentRefs": [{"group": "", "kind": "Service", "name": "reviews", "namespace": NS}],
               "rules": [{"backendRefs": [{"name": "reviews-v2", "namespace": NS, "port": 9080}]}]}),
    );
    consumer["metadata"]["namespace"] = json!("shop");
    objs.push(consumer);
    // A route of another namespace that names no Service here is not taken in.
    let mut unrelated = http_route(
        "elsewhere",
        "2024-01-01T00:00:00Z",
        json!({"parentRefs": service_parent("reviews"), "rules": []}),
    );
    unrelated["metadata"]["namespace"] = json!("shop");
    let mut snap = snapshot(objs);
    assert!(!snap.add(unrelated));
    assert_eq!(snap.consumer_http_routes.len(), 1);

    let r = send(
        &snap,
        &HttpRequest::new("reviews").from_namespace("shop"),
        10,
    );
    assert_eq!(r.version("v2"), 10, "{r:?}");
    assert_eq!(
        send(&snap, &HttpRequest::new("reviews"), 10).version("v1"),
        10
    );
    let r = send(
        &snap,
        &HttpRequest::new("reviews").from_namespace("other"),
        10,
    );
    assert_eq!(r.version("v1"), 10, "{r:?}");
    let r = send(&snap, &HttpRequest::new("reviews").from_namespace(NS), 10);
    assert_eq!(r.version("v1"), 10, "{r:?}");
}
