//! Every validation rule, with the field path and message a user sees.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use ramp_api::{FieldError, Rollout, validate_rollout, validate_rollout_update};

const VALID: &str = r#"
apiVersion: rollouts.ramp.dev/v1beta1
kind: Rollout
metadata: {name: rollouts-demo, namespace: default}
spec:
  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: workload-demo}
  strategy:
    canary:
      steps:
      - replicas: 1
        matches:
        - headers: [{type: Exact, name: version, value: canary}]
      - {traffic: "50%", replicas: "50%"}
      - {traffic: "80%", replicas: "80%", pause: {duration: 60}}
      trafficRoutings:
      - service: service-demo
        gracePeriodSeconds: 3
        customNetworkRefs:
        - {apiVersion: networking.istio.io/v1beta1, kind: VirtualService, name: vs-demo}
"#;

fn rollout_with(edit: impl FnOnce(&mut serde_json::Value)) -> Rollout {
    let mut v: serde_json::Value = serde_yaml::from_str(VALID).unwrap();
    edit(&mut v);
    serde_json::from_value(v).unwrap()
}

fn errors(edit: impl FnOnce(&mut serde_json::Value)) -> Vec<FieldError> {
    validate_rollout(&rollout_with(edit))
}

/// Asserts exactly one error, at `path`, whose message contains `needle`.
fn assert_one(errs: &[FieldError], path: &str, needle: &str) {
    assert_eq!(errs.len(), 1, "expected one error at {path}, got {errs:#?}");
    assert_eq!(errs[0].path, path);
    assert!(
        errs[0].message.contains(needle),
        "message {:?} should contain {needle:?}",
        errs[0].message
    );
}

#[test]
fn the_walk_through_is_valid() {
    assert_eq!(errors(|_| {}), vec![]);
}

#[test]
fn a_kruise_manifest_with_other_istio_versions_is_valid() {
    for v in ["networking.istio.io/v1", "networking.istio.io/v1alpha3"] {
        let errs = errors(|r| {
            r["spec"]["strategy"]["canary"]["trafficRoutings"][0]["customNetworkRefs"][0]["apiVersion"] =
                v.into()
        });
        assert_eq!(errs, vec![], "{v}");
    }
}

#[test]
fn table_of_rules() {
    type Edit = fn(&mut serde_json::Value);
    let cases: Vec<(&str, Edit, &str, &str)> = vec![
        (
            "no steps",
            |r| r["spec"]["strategy"]["canary"]["steps"] = serde_json::json!([]),
            "spec.strategy.canary.steps",
            "at least one step",
        ),
        (
            "no canary",
            |r| r["spec"]["strategy"] = serde_json::json!({}),
            "spec.strategy.canary",
            "required",
        ),
        (
            "decreasing replicas",
            |r| r["spec"]["strategy"]["canary"]["steps"][2]["replicas"] = "40%".into(),
            "spec.strategy.canary.steps[2].replicas",
            "must not decrease",
        ),
        (
            "decreasing int replicas",
            |r| {
                r["spec"]["strategy"]["canary"]["steps"][1]["replicas"] = 3.into();
                r["spec"]["strategy"]["canary"]["steps"][2]["replicas"] = 2.into();
            },
            "spec.strategy.canary.steps[2].replicas",
            "must not decrease",
        ),
        (
            "missing replicas",
            |r| {
                r["spec"]["strategy"]["canary"]["steps"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("replicas");
            },
            "spec.strategy.canary.steps[0].replicas",
            "required",
        ),
        (
            "zero replicas",
            |r| r["spec"]["strategy"]["canary"]["steps"][0]["replicas"] = 0.into(),
            "spec.strategy.canary.steps[0].replicas",
            "at least 1",
        ),
        (
            "replicas 150%",
            |r| r["spec"]["strategy"]["canary"]["steps"][2]["replicas"] = "150%".into(),
            "spec.strategy.canary.steps[2].replicas",
            "0 < NN <= 100",
        ),
        (
            "traffic 150%",
            |r| r["spec"]["strategy"]["canary"]["steps"][2]["traffic"] = "150%".into(),
            "spec.strategy.canary.steps[2].traffic",
            "0 < NN <= 100",
        ),
        (
            "traffic 0%",
            |r| r["spec"]["strategy"]["canary"]["steps"][1]["traffic"] = "0%".into(),
            "spec.strategy.canary.steps[1].traffic",
            "0 < NN <= 100",
        ),
        (
            "traffic not a percentage",
            |r| r["spec"]["strategy"]["canary"]["steps"][1]["traffic"] = "50".into(),
            "spec.strategy.canary.steps[1].traffic",
            "percentage",
        ),
        (
            "traffic and matches",
            |r| r["spec"]["strategy"]["canary"]["steps"][0]["traffic"] = "10%".into(),
            "spec.strategy.canary.steps[0].matches",
            "not both",
        ),
        (
            "empty header name",
            |r| {
                r["spec"]["strategy"]["canary"]["steps"][0]["matches"][0]["headers"][0]["name"] =
                    "".into()
            },
            "spec.strategy.canary.steps[0].matches[0].headers[0].name",
            "must not be empty",
        ),
        (
            "header name with a space",
            |r| {
                r["spec"]["strategy"]["canary"]["steps"][0]["matches"][0]["headers"][0]["name"] =
                    "x y".into()
            },
            "spec.strategy.canary.steps[0].matches[0].headers[0].name",
            "invalid header name",
        ),
        (
            "bad regex",
            |r| {
                r["spec"]["strategy"]["canary"]["steps"][0]["matches"][0]["headers"][0] = serde_json::json!({"type": "RegularExpression", "name": "user", "value": "jason("})
            },
            "spec.strategy.canary.steps[0].matches[0].headers[0].value",
            "invalid regular expression",
        ),
        (
            "empty exact value",
            |r| {
                r["spec"]["strategy"]["canary"]["steps"][0]["matches"][0]["headers"][0]["value"] =
                    "".into()
            },
            "spec.strategy.canary.steps[0].matches[0].headers[0].value",
            "must not be empty",
        ),
        (
            "empty match",
            |r| r["spec"]["strategy"]["canary"]["steps"][0]["matches"][0] = serde_json::json!({}),
            "spec.strategy.canary.steps[0].matches[0]",
            "at least one of",
        ),
        (
            "path without slash",
            |r| {
                r["spec"]["strategy"]["canary"]["steps"][0]["matches"][0]["path"] =
                    serde_json::json!({"value": "api"})
            },
            "spec.strategy.canary.steps[0].matches[0].path.value",
            "must start with '/'",
        ),
        (
            "negative pause",
            |r| r["spec"]["strategy"]["canary"]["steps"][2]["pause"]["duration"] = (-1).into(),
            "spec.strategy.canary.steps[2].pause.duration",
            ">= 0",
        ),
        (
            "no routing",
            |r| r["spec"]["strategy"]["canary"]["trafficRoutings"] = serde_json::json!([]),
            "spec.strategy.canary.trafficRoutings",
            "exactly one",
        ),
        (
            "two routings",
            |r| {
                let first = r["spec"]["strategy"]["canary"]["trafficRoutings"][0].clone();
                r["spec"]["strategy"]["canary"]["trafficRoutings"]
                    .as_array_mut()
                    .unwrap()
                    .push(first);
            },
            "spec.strategy.canary.trafficRoutings",
            "exactly one traffic routing is supported, got 2",
        ),
        (
            "no service",
            |r| r["spec"]["strategy"]["canary"]["trafficRoutings"][0]["service"] = "".into(),
            "spec.strategy.canary.trafficRoutings[0].service",
            "must not be empty",
        ),
        (
            "no network refs",
            |r| {
                r["spec"]["strategy"]["canary"]["trafficRoutings"][0]["customNetworkRefs"] =
                    serde_json::json!([])
            },
            "spec.strategy.canary.trafficRoutings[0].customNetworkRefs",
            "at least one routing object",
        ),
        (
            "unsupported network ref",
            |r| {
                r["spec"]["strategy"]["canary"]["trafficRoutings"][0]["customNetworkRefs"][0]["kind"] =
                    "Ingress".into()
            },
            "spec.strategy.canary.trafficRoutings[0].customNetworkRefs[0]",
            "supported are VirtualService",
        ),
        (
            "negative grace period",
            |r| {
                r["spec"]["strategy"]["canary"]["trafficRoutings"][0]["gracePeriodSeconds"] =
                    (-3).into()
            },
            "spec.strategy.canary.trafficRoutings[0].gracePeriodSeconds",
            ">= 0",
        ),
        (
            "workload not a Deployment",
            |r| r["spec"]["workloadRef"]["kind"] = "StatefulSet".into(),
            "spec.workloadRef",
            "only apiVersion apps/v1, kind Deployment",
        ),
        (
            "workload bad name",
            |r| r["spec"]["workloadRef"]["name"] = "Workload_Demo".into(),
            "spec.workloadRef.name",
            "invalid name",
        ),
        (
            "in-place canary",
            |r| r["spec"]["strategy"]["canary"]["enableExtraWorkloadForCanary"] = false.into(),
            "spec.strategy.canary.enableExtraWorkloadForCanary",
            "not supported",
        ),
    ];
    for (name, edit, path, needle) in cases {
        let errs = errors(edit);
        assert_eq!(errs.len(), 1, "{name}: {errs:#?}");
        assert_eq!(errs[0].path, path, "{name}");
        assert!(
            errs[0].message.contains(needle),
            "{name}: {:?} lacks {needle:?}",
            errs[0].message
        );
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let errs = errors(|r| {
        let steps = &mut r["spec"]["strategy"]["canary"]["steps"];
        steps[0]["matches"][0]["headers"][0]["name"] = "".into();
        steps[2]["traffic"] = "150%".into();
        steps[2]["replicas"] = "10%".into();
    });
    let paths: Vec<_> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "spec.strategy.canary.steps[0].matches[0].headers[0].name",
            "spec.strategy.canary.steps[2].traffic",
            "spec.strategy.canary.steps[2].replicas",
        ]
    );
    assert_eq!(
        errs[1].to_string(),
        "spec.strategy.canary.steps[2].traffic: invalid value \"150%\": must be a percentage \"NN%\" with 0 < NN <= 100"
    );
}

#[test]
fn progressing_rollouts_keep_their_shape() {
    let mut old = rollout_with(|_| {});
    old.status = Some(ramp_api::RolloutStatus {
        phase: Some(ramp_api::RolloutPhase::Progressing),
        ..Default::default()
    });
    let new = rollout_with(|r| {
        r["spec"]["workloadRef"]["name"] = "other".into();
        r["spec"]["strategy"]["canary"]["steps"]
            .as_array_mut()
            .unwrap()
            .pop();
    });
    let errs = validate_rollout_update(&old, &new);
    let paths: Vec<_> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        vec!["spec.workloadRef", "spec.strategy.canary.steps"]
    );
    assert!(errs[1].message.contains("was 3, now 2"));

    // A healthy rollout may change anything valid.
    old.status = None;
    assert_eq!(validate_rollout_update(&old, &new), vec![]);
    assert_one(
        &validate_rollout_update(
            &old,
            &rollout_with(|r| r["spec"]["strategy"]["canary"]["steps"][0]["replicas"] = 0.into()),
        ),
        "spec.strategy.canary.steps[0].replicas",
        "at least 1",
    );
}

fn routing_edit(edit: impl FnOnce(&mut serde_json::Value)) -> Vec<FieldError> {
    errors(|r| edit(&mut r["spec"]["strategy"]["canary"]["trafficRoutings"][0]))
}

const TR: &str = "spec.strategy.canary.trafficRoutings[0]";

#[test]
fn subset_routing_gateway_routes_and_mirror_steps_are_valid() {
    let subsets = routing_edit(|t| {
        t["customNetworkRefs"] = serde_json::json!([
            {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "name": "reviews"},
            {"apiVersion": "networking.istio.io/v1beta1", "kind": "DestinationRule", "name": "reviews"},
        ]);
        t["canarySubsetName"] = "preview".into();
    });
    assert_eq!(subsets, vec![]);
    let gateway = routing_edit(|t| {
        t["customNetworkRefs"] = serde_json::json!([]);
        t["gateway"] = serde_json::json!({"httpRouteName": "service-demo"});
    });
    assert_eq!(gateway, vec![]);
    let http_routes = routing_edit(|t| {
        t["customNetworkRefs"] = serde_json::json!([
            {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "name": "a"},
            {"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "HTTPRoute", "name": "b"},
        ]);
    });
    assert_eq!(http_routes, vec![]);
    let mirror = errors(|r| {
        r["spec"]["strategy"]["canary"]["steps"][0] =
            serde_json::json!({"replicas": 1, "mirror": {"percent": 100}});
        r["spec"]["strategy"]["canary"]["steps"][1]["mirror"] = serde_json::json!({"percent": 1});
    });
    assert_eq!(mirror, vec![]);
}

#[test]
fn routing_rules_for_subsets_gateways_and_mirrors() {
    type Edit = fn(&mut serde_json::Value);
    let cases: Vec<(&str, Edit, String, &str)> = vec![
        (
            "two DestinationRules",
            |t| {
                t["customNetworkRefs"] = serde_json::json!([
                    {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "name": "reviews"},
                    {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "name": "a"},
                    {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "name": "b"},
                ])
            },
            format!("{TR}.customNetworkRefs[2]"),
            "only one DestinationRule is allowed (customNetworkRefs[1] is one already)",
        ),
        (
            "a DestinationRule without a VirtualService",
            |t| {
                t["customNetworkRefs"] = serde_json::json!([
                    {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "name": "reviews"},
                ])
            },
            format!("{TR}.customNetworkRefs[0]"),
            "a DestinationRule needs a VirtualService next to it",
        ),
        (
            "a DestinationRule with an HTTPRoute",
            |t| {
                t["customNetworkRefs"] = serde_json::json!([
                    {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "name": "reviews"},
                    {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "name": "reviews"},
                ]);
                t["gateway"] = serde_json::json!({"httpRouteName": "reviews"});
            },
            format!("{TR}.customNetworkRefs[1]"),
            "cannot be combined with HTTPRoutes",
        ),
        (
            "canarySubsetName without a DestinationRule",
            |t| t["canarySubsetName"] = "preview".into(),
            format!("{TR}.canarySubsetName"),
            "only used with subset routing",
        ),
        (
            "gateway without httpRouteName",
            |t| t["gateway"] = serde_json::json!({}),
            format!("{TR}.gateway.httpRouteName"),
            "required",
        ),
        (
            "bad httpRouteName",
            |t| t["gateway"] = serde_json::json!({"httpRouteName": "Demo_Route"}),
            format!("{TR}.gateway.httpRouteName"),
            "invalid name",
        ),
        (
            "an HTTPRoute named twice",
            |t| {
                t["customNetworkRefs"] = serde_json::json!([
                    {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "name": "demo"},
                ]);
                t["gateway"] = serde_json::json!({"httpRouteName": "demo"});
            },
            format!("{TR}.customNetworkRefs[0]"),
            "also named by gateway.httpRouteName",
        ),
        (
            "an HTTPRoute version Gateway API does not serve",
            |t| {
                t["customNetworkRefs"] = serde_json::json!([
                    {"apiVersion": "gateway.networking.k8s.io/v1alpha2", "kind": "HTTPRoute", "name": "demo"},
                ])
            },
            format!("{TR}.customNetworkRefs[0]"),
            "HTTPRoute gateway.networking.k8s.io/{v1,v1beta1}",
        ),
    ];
    for (name, edit, path, needle) in cases {
        let errs = routing_edit(edit);
        assert_eq!(errs.len(), 1, "{name}: {errs:#?}");
        assert_eq!(errs[0].path, path, "{name}");
        assert!(
            errs[0].message.contains(needle),
            "{name}: {:?} lacks {needle:?}",
            errs[0].message
        );
    }
    // A subset name must be a DNS label (Istio's rule), with a DestinationRule present.
    let errs = routing_edit(|t| {
        t["customNetworkRefs"] = serde_json::json!([
            {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "name": "reviews"},
            {"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "name": "reviews"},
        ]);
        t["canarySubsetName"] = "canary.v2".into();
    });
    assert_one(
        &errs,
        &format!("{TR}.canarySubsetName"),
        "must be a lowercase RFC 1123 label",
    );
}

#[test]
fn mirror_percent_must_be_in_range() {
    for bad in [0, -5, 101] {
        let errs = errors(|r| {
            r["spec"]["strategy"]["canary"]["steps"][1]["mirror"] =
                serde_json::json!({"percent": bad})
        });
        assert_one(
            &errs,
            "spec.strategy.canary.steps[1].mirror.percent",
            &format!("invalid value {bad}: must be more than 0 and at most 100"),
        );
    }
}

#[test]
fn routing_refs_include_the_gateway_http_route_once() {
    let ro = rollout_with(|r| {
        r["spec"]["strategy"]["canary"]["trafficRoutings"][0]["gateway"] =
            serde_json::json!({"httpRouteName": "service-demo"})
    });
    let t = &ro.spec.strategy.canary.as_ref().unwrap().traffic_routings[0];
    let refs = t.routing_refs();
    assert_eq!(refs.len(), 2);
    assert_eq!(refs[0].kind, "VirtualService");
    assert_eq!(
        (
            refs[1].api_version.as_str(),
            refs[1].kind.as_str(),
            refs[1].name.as_str()
        ),
        ("gateway.networking.k8s.io/v1", "HTTPRoute", "service-demo")
    );
    assert_eq!(t.canary_subset(), "canary");
}

#[test]
fn request_header_modifier_is_checked_like_a_gateway_api_header_filter() {
    const STEP: &str = "spec.strategy.canary.steps[0].requestHeaderModifier";
    let ok = errors(|r| {
        r["spec"]["strategy"]["canary"]["steps"][0]["requestHeaderModifier"] = serde_json::json!(
            {"set": [{"name": "x-env", "value": "canary"}], "add": [{"name": "x-a", "value": "1"}], "remove": ["x-debug"]});
        r["spec"]["strategy"]["canary"]["steps"][1]["requestHeaderModifier"] =
            serde_json::json!({"set": [{"name": "x-env", "value": "canary"}]});
    });
    assert_eq!(ok, vec![]);
    let set = |m: serde_json::Value| {
        errors(|r| r["spec"]["strategy"]["canary"]["steps"][0]["requestHeaderModifier"] = m)
    };
    assert_one(
        &set(serde_json::json!({})),
        STEP,
        "needs at least one of set, add or remove",
    );
    assert_one(
        &set(serde_json::json!({"set": [{"name": "bad name", "value": "v"}]})),
        &format!("{STEP}.set[0].name"),
        "invalid header name \"bad name\"",
    );
    assert_one(
        &set(serde_json::json!({"remove": ["X-A", "x-a"]})),
        &format!("{STEP}.remove[1]"),
        "listed twice",
    );
    let many: Vec<serde_json::Value> = (0..17)
        .map(|i| serde_json::json!({"name": format!("h{i}"), "value": "v"}))
        .collect();
    assert_one(
        &set(serde_json::json!({"add": many})),
        &format!("{STEP}.add"),
        "17 entries: at most 16",
    );
    // A step that only pauses has no canary route to change.
    let errs = errors(|r| {
        r["spec"]["strategy"]["canary"]["steps"][2] = serde_json::json!(
            {"replicas": 1, "requestHeaderModifier": {"set": [{"name": "x", "value": "y"}]}});
    });
    assert_one(
        &errs,
        "spec.strategy.canary.steps[2].requestHeaderModifier",
        "needs matches or traffic",
    );
}

const AN: &str = "spec.strategy.canary.analysis";

/// The issue's analysis example.
fn with_analysis(edit: impl FnOnce(&mut serde_json::Value)) -> Vec<FieldError> {
    errors(|r| {
        let mut a: serde_json::Value = serde_yaml::from_str(
            r#"
prometheus: {address: "http://prometheus.monitoring:9090"}
interval: 30s
metrics:
- name: request-success-rate
  thresholdRange: {min: 99}
- name: request-duration
  thresholdRange: {max: 500}
- name: error-budget
  query: sum(rate(istio_requests_total{destination_workload="{{ canaryWorkload }}",response_code=~"5.."}[{{ interval }}]))
  thresholdRange: {max: 0.5}
  failureLimit: 2
  minSamples: 20
"#,
        )
        .unwrap();
        edit(&mut a);
        r["spec"]["strategy"]["canary"]["analysis"] = a;
    })
}

#[test]
fn the_issues_analysis_example_is_valid_and_parses() {
    assert_eq!(with_analysis(|_| {}), vec![]);
    let ro = rollout_with(|r| {
        r["spec"]["strategy"]["canary"]["analysis"] = serde_json::json!({
            "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}}]
        })
    });
    let a = ro.spec.strategy.canary.unwrap().analysis.unwrap();
    assert_eq!(a.interval(), Some(std::time::Duration::from_secs(30)));
    assert_eq!(a.metrics[0].failure_limit(), 1);
    assert_eq!(a.metrics[0].min_samples(), 10);
}

#[test]
fn a_metric_without_query_must_be_built_in() {
    let errs = with_analysis(|a| a["metrics"][1]["name"] = "request-latency".into());
    assert_one(
        &errs,
        &format!("{AN}.metrics[1].name"),
        "unknown built-in metric \"request-latency\": built in are request-success-rate, request-duration",
    );
}

#[test]
fn empty_queries_and_names_are_rejected() {
    let errs = with_analysis(|a| a["metrics"][2]["query"] = "  ".into());
    assert_one(
        &errs,
        &format!("{AN}.metrics[2].query"),
        "must not be empty",
    );
    let errs = with_analysis(|a| a["metrics"][2]["name"] = "".into());
    assert_one(&errs, &format!("{AN}.metrics[2].name"), "must not be empty");
    let errs = with_analysis(|a| a["metrics"][2]["name"] = "request-duration".into());
    assert_one(&errs, &format!("{AN}.metrics[2].name"), "listed twice");
    let errs = with_analysis(|a| a["metrics"] = serde_json::json!([]));
    assert_one(&errs, &format!("{AN}.metrics"), "at least one metric");
}

#[test]
fn a_range_needs_min_or_max() {
    let errs = with_analysis(|a| a["metrics"][0]["thresholdRange"] = serde_json::json!({}));
    assert_one(
        &errs,
        &format!("{AN}.metrics[0].thresholdRange"),
        "needs min, max or both",
    );
    let errs = with_analysis(|a| {
        a["metrics"][0]
            .as_object_mut()
            .unwrap()
            .remove("thresholdRange");
    });
    assert_one(
        &errs,
        &format!("{AN}.metrics[0].thresholdRange"),
        "needs min, max or both",
    );
    let errs = with_analysis(|a| {
        a["metrics"][0]["thresholdRange"] = serde_json::json!({"min": 5, "max": 1})
    });
    assert_one(
        &errs,
        &format!("{AN}.metrics[0].thresholdRange"),
        "min 5 is greater than max 1",
    );
}

#[test]
fn the_interval_is_a_duration_of_at_least_a_second() {
    for ok in ["1s", "2s", "1m", "1m30s"] {
        assert_eq!(with_analysis(|a| a["interval"] = ok.into()), vec![], "{ok}");
    }
    let errs = with_analysis(|a| a["interval"] = "500ms".into());
    assert_one(&errs, &format!("{AN}.interval"), "must be at least 1s");
    let errs = with_analysis(|a| a["interval"] = "30".into());
    assert_one(&errs, &format!("{AN}.interval"), "invalid duration \"30\"");
}

#[test]
fn queries_must_parse_as_templates() {
    let errs =
        with_analysis(|a| a["metrics"][2]["query"] = "sum(x{w=\"{{ canary_workload }}\"})".into());
    assert_one(
        &errs,
        &format!("{AN}.metrics[2].query"),
        "invalid template: unknown variable \"canary_workload\"",
    );
    let errs =
        with_analysis(|a| a["metrics"][2]["query"] = "sum(x{w=\"{{ canaryWorkload\"})".into());
    assert_one(
        &errs,
        &format!("{AN}.metrics[2].query"),
        "invalid template: unbalanced \"{{\"",
    );
}

#[test]
fn limits_and_address_are_checked() {
    let errs = with_analysis(|a| a["metrics"][2]["failureLimit"] = 0.into());
    assert_one(
        &errs,
        &format!("{AN}.metrics[2].failureLimit"),
        "must be at least 1",
    );
    let errs = with_analysis(|a| a["metrics"][2]["minSamples"] = (-1).into());
    assert_one(
        &errs,
        &format!("{AN}.metrics[2].minSamples"),
        "must be >= 0",
    );
    let errs = with_analysis(|a| a["prometheus"]["address"] = "".into());
    assert_one(
        &errs,
        &format!("{AN}.prometheus.address"),
        "must not be empty",
    );
    let errs = with_analysis(|a| a["prometheus"]["address"] = "prometheus:9090".into());
    assert_one(
        &errs,
        &format!("{AN}.prometheus.address"),
        "must be an http:// or https:// URL",
    );
    let errs = with_analysis(|a| a["prometheus"]["address"] = "https://".into());
    assert_one(&errs, &format!("{AN}.prometheus.address"), "has no host");
    let errs = with_analysis(|a| a["prometheus"]["address"] = "http://p:9090/?x=1".into());
    assert_one(
        &errs,
        &format!("{AN}.prometheus.address"),
        "without spaces, query or fragment",
    );
    for ok in [
        "https://prometheus.example.com",
        "http://prometheus.monitoring:9090/prom",
    ] {
        let errs = with_analysis(|a| a["prometheus"]["address"] = ok.into());
        assert!(errs.is_empty(), "{ok}: {errs:?}");
    }
    // The provider of the built-in queries is one of two words.
    let errs = with_analysis(|a| a["provider"] = "envoy".into());
    assert!(errs.is_empty(), "{errs:?}");
}

#[test]
fn the_analysis_example_is_valid() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/analysis/rollout.yaml"
    );
    let mut ro: Rollout = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    ro.metadata.namespace = Some("default".into());
    assert_eq!(validate_rollout(&ro), vec![]);
    let a = ro.spec.strategy.canary.unwrap().analysis.unwrap();
    assert_eq!(a.interval(), Some(std::time::Duration::from_secs(2)));
    assert_eq!(a.metrics.len(), 2);
}
