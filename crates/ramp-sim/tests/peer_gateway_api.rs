//! The Gateway API conformance cases (`peer/gateway-api/cases.json`: 25 tests
//! from kubernetes-sigs/gateway-api v1.6.1, through a Gateway and in the mesh)
//! checked against the mesh router: the conformance base manifests are applied
//! to a sim running its controllers, then each test's manifests, and each
//! case's request is routed through the live objects (through the Gateway
//! `same-namespace` for Gateway tests, from inside the mesh for GAMMA tests).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers outside #[test] fns

mod peer_support;

use std::collections::BTreeSet;

use peer_support::*;
use ramp_sim::mesh::{HttpRequest, RouteReport};
use serde_json::Value;

/// The address a Gateway test sends to when the case sets no `Host` (the
/// harness uses the Gateway's address; a TEST-NET-1 address stands for it).
const GATEWAY_ADDRESS: &str = "192.0.2.1";

/// How a case's request is sent: the namespace it is routed in and the request.
fn request_for(sim: &PeerSim, case: &Value) -> Result<(String, HttpRequest), Outcome> {
    let r = &case["request"];
    let client = match &case["client"] {
        Value::Array(clients) => clients
            .iter()
            .find(|c| Some(c["namespace"].as_str()) == Some(r["client_namespace"].as_str()))
            .cloned()
            .unwrap_or_else(|| clients[0].clone()),
        c => c.clone(),
    };
    let (ns, gateway, default_host) = match client["kind"].as_str() {
        Some("gateway") => {
            let gw = client["gateway"].as_str().unwrap();
            let (ns, _) = gw.split_once('/').unwrap();
            (ns.to_owned(), Some(gw.to_owned()), GATEWAY_ADDRESS)
        }
        _ => (
            client["namespace"].as_str().unwrap().to_owned(),
            None,
            "echo",
        ),
    };
    let mut host = r["host"].as_str().unwrap_or(default_host).to_owned();
    if let Some(rest) = host.strip_prefix("{echo-v2 pod IP}") {
        let ip = sim
            .pod_ip(&ns, "echo-v2-")
            .ok_or_else(|| Outcome::Fail("no echo-v2 pod IP".into()))?;
        host = format!("{ip}{rest}");
    }
    let mut req = HttpRequest::new(host)
        .path(r["path"].as_str().unwrap_or("/"))
        .method(r["method"].as_str().unwrap_or("GET"));
    for (k, v) in r["headers"].as_object().into_iter().flatten() {
        req = req.header(k, v.as_str().unwrap_or_default());
    }
    if let Some(gw) = gateway {
        req = req.through_gateway(gw);
    }
    if let Some(client_ns) = r["client_namespace"].as_str() {
        // Which routes apply depends on the client's namespace (consumer
        // routes); the request is routed in the destination's namespace.
        req = req.from_namespace(client_ns);
        if let Some(dest_ns) = req.host.split('.').nth(1) {
            return Ok((dest_ns.to_owned(), req));
        }
    }
    Ok((ns, req))
}

fn requests_for(case: &Value) -> u64 {
    let e = &case["expect"];
    e["distribution_check"]["requests"].as_u64().unwrap_or(
        if e.get("mirrored_to").is_some() || e.get("backend_one_of").is_some() {
            500
        } else {
            20
        },
    )
}

fn judge(case: &Value, ns: &str, r: &RouteReport, n: u64) -> Outcome {
    let e = &case["expect"];
    let mut c = Checks::default();
    let status = e["status"].as_u64().unwrap_or(200);
    if status == 200 {
        c.check(r.total_errors() == 0 && r.total_served() == n, || {
            format!(
                "expected all {n} requests served, got errors {:?}",
                r.errors
            )
        });
    } else {
        c.check(r.errors_with(status as u16) == n, || {
            format!("expected {n} responses {status}, got {:?}", r.errors)
        });
    }
    if let Some(backend) = e["backend"].as_str() {
        c.check(served_by_prefix(r, backend) == n, || {
            format!(
                "expected every request served by {backend}-*, got {:?}",
                r.by_pod
            )
        });
    }
    if let Some(bns) = e["backend_namespace"].as_str() {
        c.check(bns == ns || r.total_served() == 0, || {
            format!("expected backends in {bns}, routed in {ns}")
        });
    }
    // The destination (backend Service) that served the requests, for the
    // header checks.
    let served: Vec<&String> = r.by_destination.keys().collect();
    let dest = served.first().copied().cloned().unwrap_or_default();
    if let Some(want) = e["expected_request"].as_object() {
        let seen = r.request_headers.get(&dest);
        for (k, v) in want
            .get("headers")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let got = header(seen, k);
            c.check(got == v.as_str(), || {
                format!("{dest} should receive {k}: {v}, got {got:?}")
            });
        }
        for k in want
            .get("absent_headers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let k = k.as_str().unwrap();
            c.check(header(seen, k).is_none(), || {
                format!("{dest} should not receive {k}")
            });
        }
    }
    for (k, v) in e["response_headers"].as_object().into_iter().flatten() {
        let got = header(r.response_headers.get(&dest), k);
        c.check(got == v.as_str(), || {
            format!("responses from {dest} should carry {k}: {v}, got {got:?}")
        });
    }
    for k in e["absent_response_headers"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let k = k.as_str().unwrap();
        c.check(header(r.response_headers.get(&dest), k).is_none(), || {
            format!("responses from {dest} should not carry {k}")
        });
    }
    if let Some(dist) = e["distribution"].as_object() {
        let tol = e["distribution_check"]["tolerance_abs"]
            .as_f64()
            .unwrap_or(0.05);
        let mut listed = 0;
        for (backend, share) in dist {
            let want = share.as_f64().unwrap();
            let got = served_by_prefix(r, backend);
            listed += got;
            let observed = got as f64 / n as f64;
            let ok = if want == 0.0 {
                got == 0
            } else {
                got > 0 && (observed - want).abs() <= tol
            };
            c.check(ok, || {
                format!("{backend}: expected share {want} (±{tol}), got {observed}")
            });
        }
        c.check(listed == n, || {
            format!(
                "requests reached pods outside the distribution: {:?}",
                r.by_pod
            )
        });
    }
    for m in e["mirrored_to"].as_array().into_iter().flatten() {
        let name = m["name"].as_str().unwrap();
        let want = m["percent"].as_f64().unwrap_or(100.0) / 100.0;
        let got = r.shadow.by_destination.get(name).copied().unwrap_or(0);
        let observed = got as f64 / n as f64;
        c.check((observed - want).abs() <= 0.05, || {
            format!("mirror to {name}: expected share {want} (±0.05), got {observed}")
        });
        c.check(
            r.shadow
                .by_pod
                .keys()
                .any(|p| p.starts_with(&format!("{name}-"))),
            || {
                format!(
                    "no mirrored copy reached a {name} pod: {:?}",
                    r.shadow.by_pod
                )
            },
        );
    }
    if let Some(one_of) = e["backend_one_of"].as_array() {
        // Each request carries the Backend header of the backendRef that was
        // chosen, and only that one.
        let allowed: Vec<&str> = one_of.iter().filter_map(Value::as_str).collect();
        for d in r.by_destination.keys() {
            c.check(allowed.contains(&d.as_str()), || {
                format!("{d} is not one of {allowed:?}")
            });
            let got = header(r.request_headers.get(d), "Backend");
            c.check(got == Some(d.as_str()), || {
                format!("requests to {d} carry Backend: {got:?}")
            });
        }
        c.check(r.by_destination.len() == allowed.len(), || {
            format!(
                "expected every one of {allowed:?} chosen: {:?}",
                r.by_destination
            )
        });
    }
    c.outcome(r)
}

/// For the first case through a Gateway and each consumer-route case: the
/// same question as `ramp-sim route` and `POST /sim/v1/route` send it (the
/// JSON `RouteQuery`, with `gateway` / `sourceNamespace`) gets the same answer.
fn same_through_the_query_api(
    sim: &PeerSim,
    case: &Value,
    ns: &str,
    req: &HttpRequest,
    n: u64,
    r: &RouteReport,
) -> Option<String> {
    let id = case["id"].as_str().unwrap();
    if id != "HTTPRouteMatching/0" && !id.starts_with("MeshConsumerRoute/") {
        return None;
    }
    let mut q = serde_json::json!({"namespace": ns, "host": req.host, "path": req.path,
                                   "headers": req.headers, "requests": n, "seed": 1});
    if let Some(g) = &req.gateway {
        q["gateway"] = g.clone().into();
    }
    if let Some(src) = &req.source_namespace {
        q["sourceNamespace"] = src.clone().into();
    }
    let q: ramp_sim::mesh::RouteQuery = serde_json::from_value(q).unwrap();
    match q.run(sim.cluster.store()) {
        Ok(via)
            if via.by_destination == r.by_destination
                && via.response_headers == r.response_headers =>
        {
            None
        }
        Ok(via) => Some(format!(
            "the RouteQuery form answers {:?} {:?}, the request {:?} {:?}",
            via.by_destination, via.response_headers, r.by_destination, r.response_headers
        )),
        Err(e) => Some(format!("the RouteQuery form fails: {e}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_gateway_api_conformance_cases_route_as_the_spec_requires() {
    let dir = peer_dir("gateway-api");
    let corpus = read_json(&dir.join("cases.json"));
    let cases = corpus["cases"].as_array().unwrap();
    let sim = PeerSim::start().await;
    let mut namespaces = BTreeSet::new();
    for key in ["gateway", "mesh"] {
        let path = dir.join(
            corpus["conventions"]["base_manifests"][key]
                .as_str()
                .unwrap(),
        );
        let yaml = std::fs::read_to_string(&path)
            .unwrap()
            .replace("{GATEWAY_CLASS_NAME}", "ramp-sim");
        for (_, ns, _) in sim.apply(&yaml, "default").unwrap() {
            namespaces.extend(ns);
        }
    }
    sim.wait_ready(&namespaces).await;

    let mut tally = Tally::default();
    let mut tests: Vec<&str> = Vec::new();
    for c in cases {
        let t = c["test"].as_str().unwrap();
        if !tests.contains(&t) {
            tests.push(t);
        }
    }
    for test in tests {
        let mut applied = Vec::new();
        let group: Vec<&Value> = cases.iter().filter(|c| c["test"] == test).collect();
        for m in group[0]["manifests"].as_array().unwrap() {
            let yaml = std::fs::read_to_string(dir.join(m.as_str().unwrap())).unwrap();
            applied.extend(sim.apply(&yaml, "default").unwrap());
        }
        for case in group {
            let id = case["id"].as_str().unwrap();
            let outcome = match request_for(&sim, case) {
                Err(o) => o,
                Ok((ns, req)) => {
                    let n = requests_for(case);
                    match sim.route(&ns, &req, n) {
                        Ok(r) => match same_through_the_query_api(&sim, case, &ns, &req, n, &r) {
                            Some(problem) => Outcome::Fail(problem),
                            None => judge(case, &ns, &r, n),
                        },
                        Err(e) => Outcome::Fail(format!("routing: {e}")),
                    }
                }
            };
            tally.record(id, outcome);
        }
        sim.delete(&applied);
    }
    tally.finish("gateway-api", cases.len());
}
