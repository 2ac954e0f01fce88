//! The classic Istio traffic-management scenarios, and each VirtualService
//! feature the router honours, as pure routing fixtures.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

mod mesh_support;

use mesh_support::*;
use pretty_assertions::assert_eq;
use ramp_sim::mesh::{HttpRequest, MeshError, RouteOptions, route};
use serde_json::{Value, json};

fn reviews_jason_v2_else_v3() -> Vec<Value> {
    let mut objs = bookinfo_reviews();
    objs.push(version_subsets("reviews", "reviews", &["v1", "v2", "v3"]));
    objs.push(virtual_service(
        "reviews",
        "2024-01-01T00:00:00Z",
        json!({
            "hosts": ["reviews"],
            "http": [
                {"match": [{"headers": {"end-user": {"exact": "jason"}}}],
                 "route": [{"destination": {"host": "reviews", "subset": "v2"}}]},
                {"route": [{"destination": {"host": "reviews", "subset": "v3"}}]}
            ]
        }),
    ));
    objs
}

#[test]
fn bookinfo_jason_reaches_v2_and_everyone_else_v3() {
    let snap = snapshot(reviews_jason_v2_else_v3());

    let jason = send(
        &snap,
        &HttpRequest::new("reviews").header("end-user", "jason"),
        1000,
    );
    assert_eq!(jason.requests, 1000);
    assert_eq!(jason.version("v2"), 1000);
    assert_eq!(jason.by_version.len(), 1, "{:?}", jason.by_version);
    // Both v2 pods share the load evenly, and only they serve it.
    assert_eq!(jason.by_pod.get("reviews-v2-5c8b7d9f6-p0"), Some(&500));
    assert_eq!(jason.by_pod.get("reviews-v2-5c8b7d9f6-p1"), Some(&500));
    assert_eq!(jason.by_pod_template_hash.get("5c8b7d9f6"), Some(&1000));
    assert_eq!(jason.total_errors(), 0);

    let anon = send(&snap, &HttpRequest::new("reviews"), 1000);
    assert_eq!(anon.version("v3"), 1000);
    assert_eq!(anon.by_version.len(), 1);

    // Exact header matches are case-sensitive on the value.
    let other = send(
        &snap,
        &HttpRequest::new("reviews").header("end-user", "Jason"),
        100,
    );
    assert_eq!(other.version("v3"), 100);
    // Header names are not.
    let upper = send(
        &snap,
        &HttpRequest::new("reviews").header("End-User", "jason"),
        100,
    );
    assert_eq!(upper.version("v2"), 100);
}

#[test]
fn the_request_host_may_be_short_partial_or_fully_qualified() {
    let snap = snapshot(reviews_jason_v2_else_v3());
    for host in [
        "reviews",
        "reviews.default",
        "reviews.default.svc",
        "reviews.default.svc.cluster.local",
        "reviews:9080",
    ] {
        let r = send(
            &snap,
            &HttpRequest::new(host).header("end-user", "jason"),
            10,
        );
        assert_eq!(r.version("v2"), 10, "host {host}");
    }
}

#[test]
fn bookinfo_all_traffic_to_v1_and_then_half_to_v3() {
    let mut objs = bookinfo_reviews();
    objs.push(version_subsets(
        "reviews",
        "reviews.default.svc.cluster.local",
        &["v1", "v2", "v3"],
    ));
    let all_v1 = virtual_service(
        "reviews",
        "2024-01-01T00:00:00Z",
        json!({"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews", "subset": "v1"}}]}]}),
    );
    let snap = snapshot(objs.iter().cloned().chain([all_v1]));
    assert_eq!(
        send(&snap, &HttpRequest::new("reviews"), 1000).version("v1"),
        1000
    );

    let fifty = virtual_service(
        "reviews",
        "2024-01-01T00:00:00Z",
        json!({"hosts": ["reviews"], "http": [{"route": [
            {"destination": {"host": "reviews", "subset": "v1"}, "weight": 50},
            {"destination": {"host": "reviews", "subset": "v3"}, "weight": 50}
        ]}]}),
    );
    let snap = snapshot(objs.into_iter().chain([fifty]));
    let r = send(&snap, &HttpRequest::new("reviews"), 1000);
    assert_within(r.version("v1"), 500, 30, "v1");
    assert_eq!(r.version("v1") + r.version("v3"), 1000);
}

fn echo_backend(route: Value) -> ramp_sim::mesh::Snapshot {
    let mut objs = vec![service("backend", json!({"app": "backend"}))];
    objs.extend(pods("backend", "v0", "aaaa1111", 3));
    objs.extend(pods("backend", "v1", "bbbb2222", 1));
    objs.push(version_subsets("backend", "backend", &["v0", "v1"]));
    objs.push(virtual_service(
        "backend",
        "2024-01-01T00:00:00Z",
        json!({"hosts": ["backend"], "http": [{"route": route}]}),
    ));
    snapshot(objs)
}

#[test]
fn echo_backend_subset_only_routes_all_traffic_there() {
    let v0 = echo_backend(json!([{"destination": {"host": "backend", "subset": "v0"}}]));
    let r = send(&v0, &HttpRequest::new("backend"), 1000);
    assert_eq!(r.version("v0"), 1000);
    assert_eq!(r.by_pod.len(), 3);
    assert!(
        r.by_pod.values().all(|n| (333..=334).contains(n)),
        "{:?}",
        r.by_pod
    );

    let v1 =
        echo_backend(json!([{"destination": {"host": "backend", "subset": "v1"}, "weight": 100}]));
    let r = send(&v1, &HttpRequest::new("backend"), 1000);
    assert_eq!(r.version("v1"), 1000);
    assert_eq!(r.by_pod_template_hash.get("bbbb2222"), Some(&1000));
}

#[test]
fn echo_backend_90_10_split_is_within_three_percent_and_reproducible() {
    let snap = echo_backend(json!([
        {"destination": {"host": "backend", "subset": "v0"}, "weight": 90},
        {"destination": {"host": "backend", "subset": "v1"}, "weight": 10}
    ]));
    let req = HttpRequest::new("backend");
    for seed in 0..20 {
        let r = route(&snap, &req, &RouteOptions::new(1000).seed(seed)).unwrap();
        assert_within(r.version("v0"), 900, 30, &format!("v0 with seed {seed}"));
        assert_within(r.version("v1"), 100, 30, &format!("v1 with seed {seed}"));
        assert_eq!(r.version("v0") + r.version("v1"), 1000);
    }
    let a = route(&snap, &req, &RouteOptions::new(1000).seed(42)).unwrap();
    let b = route(&snap, &req, &RouteOptions::new(1000).seed(42)).unwrap();
    assert_eq!(a, b);
    let differs =
        (0..10).any(|s| route(&snap, &req, &RouteOptions::new(1000).seed(s)).unwrap() != a);
    assert!(differs, "the seed should change the exact split");
}

#[test]
fn weights_absent_on_several_destinations_split_evenly() {
    let snap = echo_backend(json!([
        {"destination": {"host": "backend", "subset": "v0"}},
        {"destination": {"host": "backend", "subset": "v1"}}
    ]));
    let r = send(&snap, &HttpRequest::new("backend"), 2000);
    assert_within(r.version("v0"), 1000, 60, "v0");
    assert_within(r.version("v1"), 1000, 60, "v1");
}

#[test]
fn a_zero_weight_destination_gets_nothing() {
    let snap = echo_backend(json!([
        {"destination": {"host": "backend", "subset": "v0"}, "weight": 100},
        {"destination": {"host": "backend", "subset": "v1"}, "weight": 0}
    ]));
    let r = send(&snap, &HttpRequest::new("backend"), 1000);
    assert_eq!(r.version("v0"), 1000);
    assert_eq!(r.version("v1"), 0);
}

fn httpbin() -> Vec<Value> {
    let mut objs = vec![service("httpbin", json!({"app": "httpbin"}))];
    objs.extend(pods("httpbin", "v1", "11aa", 1));
    objs.extend(pods("httpbin", "v2", "22bb", 1));
    objs.push(version_subsets("httpbin", "httpbin", &["v1", "v2"]));
    objs
}

#[test]
fn httpbin_v1_with_everything_mirrored_to_v2() {
    let mut objs = httpbin();
    objs.push(virtual_service(
        "httpbin",
        "2024-01-01T00:00:00Z",
        json!({"hosts": ["httpbin"], "http": [{
            "route": [{"destination": {"host": "httpbin", "subset": "v1"}, "weight": 100}],
            "mirror": {"host": "httpbin", "subset": "v2"},
            "mirrorPercentage": {"value": 100.0}
        }]}),
    ));
    let r = send(
        &snapshot(objs),
        &HttpRequest::new("httpbin").path("/headers"),
        1000,
    );
    assert_eq!(r.version("v1"), 1000);
    assert_eq!(r.version("v2"), 0);
    assert_eq!(r.shadow.requests, 1000);
    assert_eq!(r.shadow.version("v2"), 1000);
    assert_eq!(r.shadow.by_pod.get("httpbin-v2-22bb-p0"), Some(&1000));
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["shadow"]["byVersion"], json!({"v2": 1000}));
}

#[test]
fn mirror_percentage_mirrors_that_share_and_defaults_to_all() {
    let mut objs = httpbin();
    objs.push(virtual_service(
        "httpbin",
        "2024-01-01T00:00:00Z",
        json!({"hosts": ["httpbin"], "http": [{
            "route": [{"destination": {"host": "httpbin", "subset": "v1"}}],
            "mirror": {"host": "httpbin", "subset": "v2"},
            "mirrorPercentage": {"value": 25.0}
        }]}),
    ));
    let r = send(&snapshot(objs), &HttpRequest::new("httpbin"), 2000);
    assert_eq!(r.version("v1"), 2000);
    assert_within(r.shadow.version("v2"), 500, 60, "25% mirrored");

    // No mirrorPercentage: Istio mirrors 100%.
    let mut objs = httpbin();
    objs.push(virtual_service(
        "httpbin",
        "2024-01-01T00:00:00Z",
        json!({"hosts": ["httpbin"], "http": [{
            "route": [{"destination": {"host": "httpbin", "subset": "v1"}}],
            "mirror": {"host": "httpbin", "subset": "v2"}
        }]}),
    ));
    assert_eq!(
        send(&snapshot(objs), &HttpRequest::new("httpbin"), 300)
            .shadow
            .version("v2"),
        300
    );
}

#[test]
fn the_mirrors_list_copies_to_each_destination_at_its_percentage() {
    let mut objs = vec![service("httpbin", json!({"app": "httpbin"}))];
    for (v, hash) in [("v1", "11aa"), ("v2", "22bb"), ("v3", "33cc")] {
        objs.extend(pods("httpbin", v, hash, 1));
    }
    objs.push(version_subsets("httpbin", "httpbin", &["v1", "v2", "v3"]));
    objs.push(virtual_service(
        "httpbin",
        "2024-01-01T00:00:00Z",
        json!({"hosts": ["httpbin"], "http": [{
            "route": [{"destination": {"host": "httpbin", "subset": "v1"}}],
            "mirrors": [
                {"destination": {"host": "httpbin", "subset": "v2"}},
                {"destination": {"host": "httpbin", "subset": "v3"}, "percentage": {"value": 50}}
            ]
        }]}),
    ));
    let r = send(&snapshot(objs), &HttpRequest::new("httpbin"), 1000);
    assert_eq!(r.version("v1"), 1000);
    assert_eq!(r.shadow.version("v2"), 1000);
    assert_within(r.shadow.version("v3"), 500, 50, "v3 mirrored");
}

#[test]
fn a_mirror_to_a_missing_service_fails_only_the_shadow() {
    let mut objs = httpbin();
    objs.push(virtual_service(
        "httpbin",
        "2024-01-01T00:00:00Z",
        json!({"hosts": ["httpbin"], "http": [{
            "route": [{"destination": {"host": "httpbin", "subset": "v1"}}],
            "mirror": {"host": "nowhere"}
        }]}),
    ));
    let r = send(&snapshot(objs), &HttpRequest::new("httpbin"), 100);
    assert_eq!(r.version("v1"), 100);
    assert_eq!(r.total_errors(), 0);
    assert_eq!(r.shadow.errors.get("503"), Some(&100));
}

#[test]
fn two_virtual_services_for_one_host_are_a_conflict_and_the_oldest_wins() {
    let mut objs = bookinfo_reviews();
    objs.push(version_subsets("reviews", "reviews", &["v1", "v2", "v3"]));
    objs.push(virtual_service(
        "reviews-new",
        "2024-05-01T00:00:00Z",
        json!({"hosts": ["reviews.default.svc.cluster.local"],
               "http": [{"route": [{"destination": {"host": "reviews", "subset": "v3"}}]}]}),
    ));
    objs.push(virtual_service(
        "reviews-old",
        "2024-01-01T00:00:00Z",
        json!({"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews", "subset": "v1"}}]}]}),
    ));
    let r = send(&snapshot(objs), &HttpRequest::new("reviews"), 100);
    assert_eq!(r.conflicts.len(), 1, "{:?}", r.conflicts);
    let c = &r.conflicts[0];
    assert_eq!(c.code, "IST0109");
    assert_eq!(c.host, "reviews.default.svc.cluster.local");
    assert_eq!(
        c.objects,
        vec!["VirtualService/reviews-old", "VirtualService/reviews-new"]
    );
    assert!(
        c.message.contains("reviews-old") && c.message.contains("reviews-new"),
        "{}",
        c.message
    );
    assert_eq!(r.version("v1"), 100);
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["conflicts"][0]["code"], "IST0109");
    assert!(r.to_table().contains("CONFLICT IST0109"));
}

#[test]
fn an_exact_host_beats_a_wildcard_without_conflict() {
    let mut objs = bookinfo_reviews();
    objs.push(version_subsets("reviews", "reviews", &["v1", "v2", "v3"]));
    objs.push(virtual_service(
        "catch-all",
        "2023-01-01T00:00:00Z",
        json!({"hosts": ["*.default.svc.cluster.local"],
               "http": [{"route": [{"destination": {"host": "reviews", "subset": "v1"}}]}]}),
    ));
    let snap = snapshot(objs.clone());
    // Only the wildcard applies: it routes.
    assert_eq!(
        send(&snap, &HttpRequest::new("reviews"), 10).version("v1"),
        10
    );

    objs.push(virtual_service(
        "reviews",
        "2024-01-01T00:00:00Z",
        json!({"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews", "subset": "v2"}}]}]}),
    ));
    let r = send(&snapshot(objs), &HttpRequest::new("reviews"), 10);
    assert_eq!(r.version("v2"), 10);
    assert!(r.conflicts.is_empty());
}

#[test]
fn a_virtual_service_bound_only_to_a_gateway_does_not_route_mesh_traffic() {
    let mut objs = bookinfo_reviews();
    objs.push(version_subsets("reviews", "reviews", &["v1", "v2", "v3"]));
    objs.push(virtual_service(
        "reviews",
        "2024-01-01T00:00:00Z",
        json!({"hosts": ["reviews"], "gateways": ["bookinfo-gateway"],
               "http": [{"route": [{"destination": {"host": "reviews", "subset": "v1"}}]}]}),
    ));
    let r = send(&snapshot(objs.clone()), &HttpRequest::new("reviews"), 600);
    // Falls through to the Service: all six pods evenly.
    assert_eq!(r.by_pod.len(), 6);
    assert!(r.by_pod.values().all(|n| *n == 100), "{:?}", r.by_pod);
    assert!(
        r.warnings.iter().any(|w| w.contains("bookinfo-gateway")),
        "{:?}",
        r.warnings
    );

    // With "mesh" among the gateways it applies.
    let last = objs.len() - 1;
    objs[last]["spec"]["gateways"] = json!(["bookinfo-gateway", "mesh"]);
    assert_eq!(
        send(&snapshot(objs), &HttpRequest::new("reviews"), 10).version("v1"),
        10
    );
}

#[test]
fn without_a_virtual_service_the_service_ready_pods_share_evenly() {
    let mut objs = bookinfo_reviews();
    objs.push(pod(
        "reviews-v3-6d4f8c7b5-starting",
        json!({"app": "reviews", "version": "v3", "pod-template-hash": "6d4f8c7b5"}),
        false,
    ));
    let mut terminating = pod(
        "reviews-v1-7f9c6b5d4-leaving",
        json!({"app": "reviews", "version": "v1", "pod-template-hash": "7f9c6b5d4"}),
        true,
    );
    terminating["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
    objs.push(terminating);
    objs.push(pod(
        "ratings-v1-x",
        json!({"app": "ratings", "version": "v1"}),
        true,
    ));
    let r = send(&snapshot(objs), &HttpRequest::new("reviews"), 600);
    assert_eq!(r.by_pod.len(), 6, "{:?}", r.by_pod);
    assert!(r.by_pod.values().all(|n| *n == 100));
    for v in ["v1", "v2", "v3"] {
        assert_eq!(r.version(v), 200, "{v}");
    }
    assert_eq!(r.by_rule.get("Service/reviews"), Some(&600));
}

#[test]
fn pods_without_version_label_count_as_none() {
    let objs = vec![
        service("web", json!({"app": "web"})),
        pod("web-1", json!({"app": "web"}), true),
    ];
    let r = send(&snapshot(objs), &HttpRequest::new("web"), 5);
    assert_eq!(r.version("none"), 5);
    assert_eq!(r.by_pod_template_hash.get("none"), Some(&5));
}

#[test]
fn broken_destinations_are_503s_with_the_reason() {
    let mut objs = bookinfo_reviews();
    objs.push(version_subsets("reviews", "reviews", &["v1", "v2"]));
    objs.push(service("ghost", json!({"app": "ghost"})));
    objs.push(virtual_service(
        "reviews",
        "2024-01-01T00:00:00Z",
        json!({"hosts": ["reviews"], "http": [
            {"match": [{"headers": {"x-case": {"exact": "no-service"}}}],
             "route": [{"destination": {"host": "details"}}]},
            {"match": [{"headers": {"x-case": {"exact": "no-subset"}}}],
             "route": [{"destination": {"host": "reviews", "subset": "v4"}}]},
            {"match": [{"headers": {"x-case": {"exact": "no-pods"}}}],
             "route": [{"destination": {"host": "ghost"}}]},
            {"match": [{"headers": {"x-case": {"exact": "no-rule"}}}],
             "route": [{"destination": {"host": "ghost", "subset": "v1"}}]},
            {"match": [{"headers": {"x-case": {"exact": "ok"}}}],
             "route": [{"destination": {"host": "reviews", "subset": "v1"}}]}
        ]}),
    ));
    let snap = snapshot(objs);
    let case = |c: &str| send(&snap, &HttpRequest::new("reviews").header("x-case", c), 50);

    let r = case("no-service");
    assert_eq!(r.errors_with(503), 50);
    assert!(
        r.error_reasons
            .keys()
            .any(|k| k.contains("details") && k.contains("not a Service")),
        "{:?}",
        r.error_reasons
    );
    assert!(r.by_pod.is_empty());

    let r = case("no-subset");
    assert_eq!(r.errors_with(503), 50);
    assert!(
        r.error_reasons
            .keys()
            .any(|k| k.contains("subset v4") && k.contains("DestinationRule reviews")),
        "{:?}",
        r.error_reasons
    );

    let r = case("no-pods");
    assert_eq!(r.errors_with(503), 50);
    assert!(
        r.error_reasons
            .keys()
            .any(|k| k.contains("no ready pods for Service ghost")),
        "{:?}",
        r.error_reasons
    );

    let r = case("no-rule");
    assert_eq!(r.errors_with(503), 50);
    assert!(
        r.error_reasons
            .keys()
            .any(|k| k.contains("no DestinationRule")),
        "{:?}",
        r.error_reasons
    );

    assert_eq!(case("ok").version("v1"), 50);

    // No http route matches at all: 404, as Envoy's "no route".
    let r = case("something-else");
    assert_eq!(r.errors_with(404), 50);
}

#[test]
fn subset_labels_are_anded_with_the_service_selector() {
    let mut objs = bookinfo_reviews();
    // A pod with the right version but another app must not receive reviews traffic.
    objs.push(pod(
        "ratings-v2-z",
        json!({"app": "ratings", "version": "v2"}),
        true,
    ));
    objs.push(version_subsets("reviews", "reviews", &["v2"]));
    objs.push(virtual_service(
        "reviews",
        "2024-01-01T00:00:00Z",
        json!({"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews", "subset": "v2"}}]}]}),
    ));
    let r = send(&snapshot(objs), &HttpRequest::new("reviews"), 100);
    assert_eq!(r.version("v2"), 100);
    assert!(!r.by_pod.contains_key("ratings-v2-z"));
    assert_eq!(r.by_destination.get("reviews/v2"), Some(&100));
}

#[test]
fn a_service_with_no_ready_pods_is_503_without_a_virtual_service_too() {
    let objs = vec![
        service("reviews", json!({"app": "reviews"})),
        pod("reviews-1", json!({"app": "reviews"}), false),
    ];
    let r = send(&snapshot(objs), &HttpRequest::new("reviews"), 20);
    assert_eq!(r.errors_with(503), 20);
    assert_eq!(r.total_served(), 0);
}

#[test]
fn an_unknown_host_is_a_503_no_route() {
    let r = send(
        &snapshot(bookinfo_reviews()),
        &HttpRequest::new("nothing-here"),
        10,
    );
    assert_eq!(r.errors_with(503), 10);
    assert!(
        r.error_reasons.keys().any(|k| k.contains("no route")),
        "{:?}",
        r.error_reasons
    );
}

/// One VirtualService whose routes each send to a distinct subset, to check which matched.
fn matcher_fixture(http: Value) -> ramp_sim::mesh::Snapshot {
    let mut objs = bookinfo_reviews();
    objs.push(version_subsets("reviews", "reviews", &["v1", "v2", "v3"]));
    objs.push(virtual_service(
        "reviews",
        "2024-01-01T00:00:00Z",
        json!({"hosts": ["reviews"], "http": http}),
    ));
    snapshot(objs)
}

fn to(subset: &str) -> Value {
    json!([{"destination": {"host": "reviews", "subset": subset}}])
}

fn version_for(snap: &ramp_sim::mesh::Snapshot, req: HttpRequest) -> String {
    let r = send(snap, &req, 3);
    if r.by_version.len() == 1 {
        r.by_version.keys().next().cloned().unwrap_or_default()
    } else {
        format!("{:?} {:?}", r.by_version, r.errors)
    }
}

#[test]
fn uri_matches_exact_prefix_regex_and_ignore_case() {
    let snap = matcher_fixture(json!([
        {"match": [{"uri": {"exact": "/login"}}], "route": to("v1")},
        {"match": [{"uri": {"prefix": "/api/"}, "ignoreUriCase": true}], "route": to("v2")},
        {"match": [{"uri": {"regex": "/items/[0-9]+"}}], "route": to("v3")}
    ]));
    let v = |p: &str| version_for(&snap, HttpRequest::new("reviews").path(p));
    assert_eq!(v("/login"), "v1");
    assert_eq!(
        v("/login?next=/"),
        "v1",
        "the query string is not part of the uri"
    );
    assert_eq!(v("/api/x"), "v2");
    assert_eq!(v("/API/x"), "v2");
    assert_eq!(v("/items/42"), "v3");
    assert!(
        v("/items/42/x").contains("404"),
        "regex must match the whole path"
    );
    assert!(v("/login/x").contains("404"));
}

#[test]
fn header_matches_prefix_regex_presence_and_absence() {
    let snap = matcher_fixture(json!([
        {"match": [{"headers": {"x-beta": {}}}], "route": to("v1")},
        {"match": [{"headers": {"user-agent": {"prefix": "Mozilla"}}, "withoutHeaders": {"x-bot": {}}}], "route": to("v2")},
        {"match": [{"headers": {"cookie": {"regex": ".*group=canary.*"}}}], "route": to("v3")}
    ]));
    let v = |r: HttpRequest| version_for(&snap, r);
    assert_eq!(v(HttpRequest::new("reviews").header("x-beta", "")), "v1");
    assert_eq!(
        v(HttpRequest::new("reviews").header("user-agent", "Mozilla/5.0")),
        "v2"
    );
    assert!(
        v(HttpRequest::new("reviews")
            .header("user-agent", "Mozilla/5.0")
            .header("x-bot", "1"))
        .contains("404")
    );
    assert_eq!(
        v(HttpRequest::new("reviews").header("cookie", "a=1; group=canary; b=2")),
        "v3"
    );
    assert!(v(HttpRequest::new("reviews").header("cookie", "group=stable")).contains("404"));
}

#[test]
fn match_blocks_are_ored_and_conditions_within_a_block_anded() {
    let snap = matcher_fixture(json!([
        {"match": [
            {"headers": {"end-user": {"exact": "jason"}}, "uri": {"prefix": "/reviews"}},
            {"queryParams": {"canary": {"exact": "true"}}}
        ], "route": to("v2")},
        {"route": to("v1")}
    ]));
    let v = |r: HttpRequest| version_for(&snap, r);
    assert_eq!(
        v(HttpRequest::new("reviews")
            .path("/reviews/1")
            .header("end-user", "jason")),
        "v2"
    );
    assert_eq!(
        v(HttpRequest::new("reviews")
            .path("/other")
            .header("end-user", "jason")),
        "v1"
    );
    assert_eq!(v(HttpRequest::new("reviews").path("/reviews/1")), "v1");
    assert_eq!(
        v(HttpRequest::new("reviews").path("/x?a=b&canary=true")),
        "v2"
    );
    assert_eq!(v(HttpRequest::new("reviews").path("/x?canary=false")), "v1");
}

#[test]
fn method_authority_and_port_matches() {
    let snap = matcher_fixture(json!([
        {"match": [{"method": {"exact": "POST"}}], "route": to("v1")},
        {"match": [{"port": 8080}], "route": to("v2")},
        {"match": [{"authority": {"prefix": "reviews.default"}}], "route": to("v3")},
        {"route": to("v2")}
    ]));
    let v = |r: HttpRequest| version_for(&snap, r);
    assert_eq!(v(HttpRequest::new("reviews").method("post")), "v1");
    assert_eq!(v(HttpRequest::new("reviews:8080")), "v2");
    assert_eq!(
        v(HttpRequest::new("reviews.default.svc.cluster.local")),
        "v3"
    );
    assert_eq!(v(HttpRequest::new("reviews")), "v2");
}

#[test]
fn routes_are_tried_in_order_and_source_label_matches_never_apply() {
    let snap = matcher_fixture(json!([
        {"match": [{"sourceLabels": {"app": "productpage"}}], "route": to("v3")},
        {"match": [{"uri": {"prefix": "/"}}], "route": to("v1")},
        {"route": to("v2")}
    ]));
    let r = send(&snap, &HttpRequest::new("reviews"), 10);
    assert_eq!(r.version("v1"), 10);
    assert_eq!(r.by_rule.get("VirtualService/reviews http[1]"), Some(&10));
}

#[test]
fn fault_abort_redirect_and_direct_response() {
    let snap = matcher_fixture(json!([
        {"match": [{"headers": {"end-user": {"exact": "jason"}}}],
         "fault": {"abort": {"httpStatus": 500, "percentage": {"value": 100.0}}}, "route": to("v1")},
        {"match": [{"headers": {"end-user": {"exact": "half"}}}],
         "fault": {"abort": {"httpStatus": 503, "percentage": {"value": 50}}}, "route": to("v1")},
        {"match": [{"uri": {"exact": "/old"}}], "redirect": {"uri": "/new"}},
        {"match": [{"uri": {"exact": "/teapot"}}], "directResponse": {"status": 418}},
        {"route": to("v2")}
    ]));
    let r = send(
        &snap,
        &HttpRequest::new("reviews").header("end-user", "jason"),
        100,
    );
    assert_eq!(r.errors_with(500), 100);
    assert!(r.error_reasons.keys().any(|k| k.contains("fault injected")));

    let r = send(
        &snap,
        &HttpRequest::new("reviews").header("end-user", "half"),
        1000,
    );
    assert_within(r.errors_with(503), 500, 50, "aborted");
    assert_eq!(r.errors_with(503) + r.version("v1"), 1000);

    let r = send(&snap, &HttpRequest::new("reviews").path("/old"), 10);
    assert_eq!(r.direct_responses.get("301"), Some(&10));
    assert_eq!(r.total_errors(), 0);

    let r = send(&snap, &HttpRequest::new("reviews").path("/teapot"), 10);
    assert_eq!(r.errors_with(418), 10);
}

fn invalid(http: Value) -> MeshError {
    let mut objs = bookinfo_reviews();
    objs.push(virtual_service(
        "bad",
        "2024-01-01T00:00:00Z",
        json!({"hosts": ["reviews"], "http": http}),
    ));
    route(
        &snapshot(objs),
        &HttpRequest::new("reviews"),
        &RouteOptions::new(1),
    )
    .unwrap_err()
}

#[test]
fn malformed_virtual_services_are_errors_naming_the_object_and_field() {
    let e = invalid(json!([{"match": [{"headers": {"x": {"regex": "(["}}}], "route": to("v1")}]));
    let msg = e.to_string();
    assert!(
        msg.starts_with(
            "VirtualService bad: spec.http[0].match[0].headers.x.regex: invalid regular expression"
        ),
        "{msg}"
    );

    let e = invalid(json!([{"route": [{"destination": {"host": "reviews"}, "weight": "fifty"}]}]));
    assert_eq!(
        e.to_string(),
        "VirtualService bad: spec.http[0].route[0].weight: expected a non-negative integer, found a string"
    );

    let e = invalid(json!([{"route": [{"destination": {"subset": "v1"}}]}]));
    assert_eq!(
        e.to_string(),
        "VirtualService bad: spec.http[0].route[0].destination.host: is required"
    );

    let e =
        invalid(json!([{"match": [{"uri": {"exact": "/a", "prefix": "/b"}}], "route": to("v1")}]));
    assert!(
        e.to_string()
            .contains("spec.http[0].match[0].uri: only one of exact, prefix and regex"),
        "{e}"
    );

    // A later broken route is reported even though an earlier one matches.
    let e = invalid(
        json!([{"route": to("v1")}, {"mirrorPercentage": {"value": 150}, "mirror": {"host": "x"}, "route": to("v1")}]),
    );
    assert!(
        e.to_string()
            .contains("spec.http[1].mirrorPercentage.value: 150 is not between 0 and 100"),
        "{e}"
    );

    let e = invalid(json!([{"match": [{"uri": {"exact": "/"}}]}]));
    assert!(
        e.to_string()
            .contains("spec.http[0]: needs one of route, redirect or directResponse"),
        "{e}"
    );
}

#[test]
fn malformed_requests_are_errors() {
    let snap = snapshot(bookinfo_reviews());
    let e = route(&snap, &HttpRequest::new(""), &RouteOptions::new(1)).unwrap_err();
    assert!(e.to_string().contains("host"), "{e}");
    let e = route(
        &snap,
        &HttpRequest::new("reviews").path("nope"),
        &RouteOptions::new(1),
    )
    .unwrap_err();
    assert!(e.to_string().contains("path"), "{e}");
    assert!(HttpRequest::parse_header("no colon").is_err());
    assert_eq!(
        HttpRequest::parse_header("End-User: jason ").unwrap(),
        ("end-user".to_string(), "jason".to_string())
    );
}

#[test]
fn objects_from_other_namespaces_are_ignored() {
    let mut other = virtual_service(
        "reviews",
        "2024-01-01T00:00:00Z",
        json!({"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "nowhere"}}]}]}),
    );
    other["metadata"]["namespace"] = json!("elsewhere");
    let mut objs = bookinfo_reviews();
    objs.push(other);
    let snap = snapshot(objs);
    assert!(snap.virtual_services.is_empty());
    assert_eq!(
        send(&snap, &HttpRequest::new("reviews"), 6).total_served(),
        6
    );
}

#[test]
fn the_json_report_has_the_documented_shape() {
    let snap = snapshot(reviews_jason_v2_else_v3());
    let r = send(
        &snap,
        &HttpRequest::new("reviews").header("end-user", "jason"),
        4,
    );
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["requests"], 4);
    assert_eq!(
        v["byPod"],
        json!({"reviews-v2-5c8b7d9f6-p0": 2, "reviews-v2-5c8b7d9f6-p1": 2})
    );
    assert_eq!(v["byVersion"], json!({"v2": 4}));
    assert_eq!(v["byPodTemplateHash"], json!({"5c8b7d9f6": 4}));
    assert_eq!(v["shadow"]["byPod"], json!({}));
    assert_eq!(v["shadow"]["byVersion"], json!({}));
    assert_eq!(v["errors"], json!({}));
    let table = r.to_table();
    assert!(table.contains("reviews-v2-5c8b7d9f6-p0"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("v2 ") && l.ends_with("100.0%")),
        "{table}"
    );
}

#[test]
fn pseudo_header_matches_read_the_request_itself() {
    // Istio matches `:method`, `:path`, `:authority` and `:scheme` written as
    // header names against the request line, not against a header of that name.
    let snap = matcher_fixture(json!([
        {"match": [{"headers": {":method": {"exact": "POST"}}}], "route": to("v1")},
        {"match": [{"headers": {":path": {"prefix": "/api?x="}}}], "route": to("v2")},
        {"match": [{"headers": {":authority": {"exact": "reviews:9080"}}}], "route": to("v3")},
        {"match": [{"headers": {":scheme": {"exact": "https"}}}], "route": to("v3")}
    ]));
    let v = |r: HttpRequest| version_for(&snap, r);
    assert_eq!(v(HttpRequest::new("reviews").method("POST")), "v1");
    assert!(v(HttpRequest::new("reviews").header(":method", "POST")).contains("404"));
    assert_eq!(v(HttpRequest::new("reviews").path("/api?x=1")), "v2");
    assert_eq!(v(HttpRequest::new("reviews:9080")), "v3");
    assert!(v(HttpRequest::new("reviews")).contains("404"));
}

#[test]
fn regex_star_is_a_presence_match() {
    // Istio turns `regex: "*"` (not a valid RE2 pattern) into "the header is present".
    let snap = matcher_fixture(json!([
        {"match": [{"headers": {"x-canary": {"regex": "*"}}}], "route": to("v2")},
        {"route": to("v1")}
    ]));
    let v = |r: HttpRequest| version_for(&snap, r);
    assert_eq!(v(HttpRequest::new("reviews").header("x-canary", "")), "v2");
    assert_eq!(
        v(HttpRequest::new("reviews").header("x-canary", "yes")),
        "v2"
    );
    assert_eq!(v(HttpRequest::new("reviews")), "v1");
}

#[test]
fn without_headers_compares_a_missing_header_as_empty() {
    // withoutHeaders is an inverted match that treats a missing header as "",
    // so `exact: jason` holds for a request without the header (the rule
    // applies), `regex: .*` matches "" (the rule does not apply), and the
    // presence match `regex: "*"` applies only when the header is absent.
    for (m, absent, empty, jason) in [
        (json!({"exact": "jason"}), "v2", "v2", "v1"),
        (json!({"regex": ".*"}), "v1", "v1", "v1"),
        (json!({"regex": "*"}), "v2", "v1", "v1"),
        (json!({}), "v2", "v1", "v1"),
    ] {
        let snap = matcher_fixture(json!([
            {"match": [{"withoutHeaders": {"end-user": m}}], "route": to("v2")},
            {"route": to("v1")}
        ]));
        let v = |r: HttpRequest| version_for(&snap, r);
        assert_eq!(v(HttpRequest::new("reviews")), absent, "{m}: header absent");
        assert_eq!(
            v(HttpRequest::new("reviews").header("end-user", "")),
            empty,
            "{m}: empty"
        );
        assert_eq!(
            v(HttpRequest::new("reviews").header("end-user", "jason")),
            jason,
            "{m}: jason"
        );
    }
}

#[test]
fn header_operations_change_what_the_backend_and_the_client_see() {
    let snap = matcher_fixture(json!([
        {"headers": {"request": {"set": {"X-Env": "canary"}, "add": {"x-trace": "mesh"}, "remove": ["cookie"]},
                     "response": {"set": {"x-served-by": "reviews"}}},
         "route": [{"destination": {"host": "reviews", "subset": "v2"},
                    "headers": {"request": {"set": {"x-subset": "v2"}}}}]}
    ]));
    let r = send(
        &snap,
        &HttpRequest::new("reviews")
            .header("x-env", "prod")
            .header("x-trace", "client")
            .header("cookie", "a=1")
            .header("end-user", "jason"),
        4,
    );
    let seen = &r.request_headers["reviews/v2"];
    assert_eq!(seen.get("x-env").map(String::as_str), Some("canary"));
    assert_eq!(seen.get("x-trace").map(String::as_str), Some("client,mesh"));
    assert_eq!(seen.get("x-subset").map(String::as_str), Some("v2"));
    assert_eq!(seen.get("end-user").map(String::as_str), Some("jason"));
    assert!(!seen.contains_key("cookie"), "{seen:?}");
    assert_eq!(
        r.response_headers["reviews/v2"]
            .get("x-served-by")
            .map(String::as_str),
        Some("reviews")
    );
    let bad = matcher_fixture(json!([
        {"headers": {"request": {"set": {"x": 1}}}, "route": to("v1")}
    ]));
    let e = route(&bad, &HttpRequest::new("reviews"), &RouteOptions::new(1)).unwrap_err();
    assert!(
        e.to_string().contains("spec.http[0].headers.request.set.x"),
        "{e}"
    );
}

#[test]
fn source_namespace_matches_requests_from_that_namespace() {
    let snap = matcher_fixture(json!([
        {"match": [{"sourceNamespace": "shop"}], "route": to("v2")},
        {"route": to("v1")}
    ]));
    let v = |r: HttpRequest| version_for(&snap, r);
    assert_eq!(v(HttpRequest::new("reviews").from_namespace("shop")), "v2");
    assert_eq!(v(HttpRequest::new("reviews").from_namespace("other")), "v1");
    // Without a source namespace the match never holds.
    assert_eq!(v(HttpRequest::new("reviews")), "v1");
}
