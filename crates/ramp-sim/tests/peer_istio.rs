//! Istio's own routing expectations (`peer/istio/cases.json`: bookinfo and
//! httpbin task tests from istio.io, integration-test cases from istio/istio)
//! checked against the mesh router: each case's manifests are applied to a sim
//! running its controllers, in a namespace of its own, and its request is
//! routed through the live objects.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers outside #[test] fns

mod peer_support;

use std::collections::BTreeSet;

use peer_support::*;
use ramp_sim::mesh::{HttpRequest, RouteReport};
use serde_json::{Value, json};

/// The echo apps of Istio's integration tests (`a`, `b`, `c`, `d`): one
/// Deployment (one pod, `version: v1`) and one Service (port `http` 80) each.
/// The rendered VirtualServices route between them.
fn echo_apps() -> String {
    let mut out = String::new();
    for app in ["a", "b", "c", "d"] {
        let objs = [
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": app, "labels": {"app": app}},
                   "spec": {"selector": {"app": app},
                            "ports": [{"name": "http", "port": 80, "targetPort": 8080},
                                      {"name": "grpc", "port": 7070, "targetPort": 7070}]}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": app},
                   "spec": {"replicas": 1, "selector": {"matchLabels": {"app": app, "version": "v1"}},
                            "template": {"metadata": {"labels": {"app": app, "version": "v1"}},
                                         "spec": {"containers": [{"name": "app", "image": "echo:1"}]}}}}),
        ];
        for o in objs {
            out.push_str(&serde_yaml::to_string(&o).unwrap());
            out.push_str("---\n");
        }
    }
    out
}

/// The request host: the Service, with the port when the case names one.
fn request_for(case: &Value) -> HttpRequest {
    let r = &case["request"];
    let mut host = r["to_host"].as_str().unwrap().to_owned();
    if let Some(p) = r["port"].as_u64() {
        host = format!("{host}:{p}");
    }
    let path = match r["path"].as_str() {
        // "any path": bookinfo's productpage calls /reviews/<id>.
        None => "/reviews/0",
        Some(p) if p.starts_with("/<") => "/peer-test-id",
        Some(p) => p,
    };
    let mut req = HttpRequest::new(host)
        .path(path)
        .method(r["method"].as_str().unwrap_or("GET"));
    for (k, v) in r["headers"].as_object().into_iter().flatten() {
        req = req.header(k, v.as_str().unwrap_or_default());
    }
    req
}

/// `service` or `service/subset`, as the report names destinations.
fn destination_key(d: &Value) -> String {
    let svc = d["service"].as_str().unwrap();
    match d["subset"].as_str() {
        Some(s) => format!("{svc}/{s}"),
        None => svc.to_owned(),
    }
}

/// The tolerance, in percentage points, of a "within X of Y" check; 0 if none.
fn within(check: &str) -> f64 {
    check
        .split_once("within ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0)
}

/// An HTTPRoute in `yaml` whose parentRef says `kind: Service` without
/// `group: ""`: by the Gateway API (the CRD says "To set the core API group
/// (such as for a Service kind referent), Group must be explicitly set to ''")
/// it names a `gateway.networking.k8s.io` Service, not the core one.
fn service_parent_without_core_group(yaml: &[String]) -> Option<String> {
    for y in yaml {
        for de in serde_yaml::Deserializer::from_str(y) {
            let v: Value = serde::Deserialize::deserialize(de).ok()?;
            if v["kind"] != "HTTPRoute" {
                continue;
            }
            for p in v["spec"]["parentRefs"].as_array().into_iter().flatten() {
                if p["kind"] == "Service" && p.get("group").is_none() {
                    return Some(
                        v["metadata"]["name"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    );
                }
            }
        }
    }
    None
}

fn judge(case: &Value, r: &RouteReport, n: u64) -> Outcome {
    let e = &case["expect"];
    let mut c = Checks::default();
    let status = e["status"].as_u64().unwrap_or(200);
    if status == 200 {
        c.check(r.total_errors() == 0, || {
            format!("expected every request served, got errors {:?}", r.errors)
        });
    } else {
        c.check(r.errors_with(status as u16) == n, || {
            format!(
                "expected {n} responses with status {status}, got {:?}",
                r.errors
            )
        });
    }
    match e.get("destination") {
        Some(Value::Null) => c.check(r.total_served() == 0, || {
            format!("expected no destination, got {:?}", r.by_destination)
        }),
        Some(d) if d.is_object() => {
            let key = destination_key(d);
            c.check(r.by_destination.get(&key) == Some(&n), || {
                format!("expected all {n} requests at {key}")
            });
            if let Some(prefix) = d["pods"].as_str() {
                c.check(served_by_prefix(r, prefix) == n, || {
                    format!(
                        "expected all {n} requests served by pods {prefix}-*, got {:?}",
                        r.by_pod
                    )
                });
            }
        }
        _ => {}
    }
    if let Some(i) = e["matched_rule"].as_u64() {
        let name = case["rendered"]
            .as_str()
            .and_then(|y| serde_yaml::from_str::<Value>(y).ok())
            .and_then(|v| v["metadata"]["name"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let rule = format!("VirtualService/{name} http[{i}]");
        let got: u64 = r
            .by_rule
            .iter()
            .filter(|(k, _)| **k == rule || k.starts_with(&format!("{rule} (")))
            .map(|(_, v)| v)
            .sum();
        c.check(got == n, || {
            format!("expected all {n} requests decided by {rule}")
        });
    }
    if let Some(dist) = e["distribution"].as_object() {
        // Upstream: per destination, the count out of 100 must be within ±10
        // of its weight (the traffic-shifting task: strictly within).
        for (dest, share) in dist {
            let want = share.as_f64().unwrap() * n as f64;
            let got = served_by_prefix(r, dest) as f64;
            let ok = if want == 0.0 || want == n as f64 {
                got == want
            } else {
                (got - want).abs() < 10.0 * n as f64 / 100.0
            };
            c.check(ok, || format!("{dest}: expected {want} of {n}, got {got}"));
        }
    }
    if let Some(mirrors) = e["mirrored_to"].as_array() {
        if mirrors.is_empty() {
            c.check(r.shadow.requests == 0, || {
                format!(
                    "expected no mirrored copies, got {:?}",
                    r.shadow.by_destination
                )
            });
        }
        for m in mirrors {
            let key = destination_key(m);
            let pct = m["percent"].as_f64().unwrap_or(100.0);
            let got = r.shadow.by_destination.get(&key).copied().unwrap_or(0);
            let served = r.total_served().max(1);
            let observed = got as f64 * 100.0 / served as f64;
            let tol = within(e["check"].as_str().unwrap_or_default());
            c.check((observed - pct).abs() <= tol, || {
                format!("mirror to {key}: expected {pct}% (±{tol}), got {observed}%")
            });
            if let Some(prefix) = m["pods"].as_str() {
                let p = format!("{prefix}-");
                c.check(r.shadow.by_pod.keys().all(|k| k.starts_with(&p)), || {
                    format!(
                        "mirrored copies reached {:?}, not only {prefix}-*",
                        r.shadow.by_pod
                    )
                });
            }
        }
    }
    if let Some(want) = e["request_headers_at_backend"].as_object() {
        let key = destination_key(&e["destination"]);
        for (k, v) in want {
            let got = header(r.request_headers.get(&key), k);
            c.check(got == v.as_str(), || {
                format!("{key} should receive {k}: {v}, got {got:?}")
            });
        }
    }
    c.outcome(r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_istio_cases_route_as_istio_expects() {
    let dir = peer_dir("istio");
    let corpus = read_json(&dir.join("cases.json"));
    let cases = corpus["cases"].as_array().unwrap();
    let sim = PeerSim::start().await;
    let mut tally = Tally::default();
    for (i, case) in cases.iter().enumerate() {
        let id = case["id"].as_str().unwrap();
        let ns = format!("peer-istio-{i}");
        sim.ensure_namespace(&ns).unwrap();
        let mut yaml: Vec<String> = Vec::new();
        if let Some(rendered) = case["rendered"].as_str() {
            yaml.push(echo_apps());
            yaml.push(rendered.to_owned());
        } else {
            for m in case["manifests"].as_array().unwrap() {
                let path = dir.join(m.as_str().unwrap());
                yaml.push(
                    std::fs::read_to_string(&path)
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display())),
                );
            }
        }
        let mut failed = None;
        for y in &yaml {
            if let Err(e) = sim.apply(y, &ns) {
                failed = Some(e);
                break;
            }
        }
        if let Some(e) = failed {
            tally.record(id, Outcome::Fail(format!("loading the manifests: {e}")));
            continue;
        }
        sim.wait_ready(&BTreeSet::from([ns.clone()])).await;
        let n = case["request"]["count"].as_u64().unwrap_or(100);
        let route = service_parent_without_core_group(&yaml);
        let outcome = match (sim.route(&ns, &request_for(case), n), route) {
            // The case expects the route to apply; by the Gateway API it does
            // not attach. Checked: the router ignores it and says why.
            (Ok(r), Some(name)) => {
                if r.warnings.iter().any(|w| {
                    w.contains(&format!("HTTPRoute {name} ")) && w.contains("write group: \"\"")
                }) && r.by_rule.keys().all(|k| k.starts_with("Service/"))
                {
                    Outcome::Skip(format!(
                        "HTTPRoute {name} (istio.io snippet) has a Service parentRef without group: \"\", \
                         which the Gateway API reads as group gateway.networking.k8s.io; the router ignores \
                         it and warns, the expectation was assumed upstream (gtwapi_test.sh not read)"
                    ))
                } else {
                    Outcome::Fail(format!(
                        "HTTPRoute {name} should be ignored with a warning: {:?} {:?}",
                        r.by_rule, r.warnings
                    ))
                }
            }
            (Ok(r), None) => judge(case, &r, n),
            (Err(e), _) => Outcome::Fail(format!("routing: {e}")),
        };
        tally.record(id, outcome);
    }
    tally.finish("istio", cases.len());
}
