//! OpenKruise Rollouts' own fixtures (`peer/kruise`, `$RAMP_SHARED_PEER`):
//! each Kruise Rollout that ramp can express is converted with `kubectl ramp
//! convert`, run through the real operator on the embedded cluster, and the
//! routing object at each paused step and after finishing is compared with
//! the object Kruise's tests expect.
//!
//! Every comparison is one of:
//! - `PASS (equal)`: ramp writes what Kruise expects;
//! - `PASS (differs as documented: Dn)`: ramp's documented result, derived
//!   from Kruise's expected object by the rule of difference Dn (listed in
//!   crates/ramp-core/README.md, "Compared with OpenKruise Rollout");
//! - `SKIP (ramp lacks …)`: the fixture needs a feature ramp does not have;
//! - `FAIL`: anything else (the test fails).

use std::path::{Path, PathBuf};
use std::process::Command;

use ramp_e2e::{Env, bin};
use serde_json::{Value, json};

const KRUISE_ANNOTATION: &str = "rollouts.kruise.io/original-spec-configuration";
const RAMP_ANNOTATION: &str = "rollouts.ramp.dev/original-spec-configuration";

/// D1: a step's ORed matches. Kruise inserts one route per match at the top,
/// in reverse order; ramp inserts, before each route to the stable Service,
/// one copy whose `match` lists the step's matches in order (each ANDed with
/// the route's own matches). Same requests reach the canary.
const D1: &str = "D1 (ORed matches: one canary route with the matches in order, not one route per match in reverse order)";
/// D2: the saved original. Kruise saves `{"spec": …}` in
/// rollouts.kruise.io/original-spec-configuration; ramp saves the same spec
/// with the labels and annotations in rollouts.ramp.dev/original-spec-configuration.
const D2: &str = "D2 (original saved under rollouts.ramp.dev/original-spec-configuration, with labels and annotations)";

fn peer_dir() -> PathBuf {
    match std::env::var_os("RAMP_SHARED_PEER").filter(|p| !p.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/peer"),
    }
    .join("kruise")
}

fn read(rel: &str) -> String {
    let p = peer_dir().join(rel);
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e} (set RAMP_SHARED_PEER)", p.display()))
}

fn yaml_docs(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn to_yaml(v: &Value) -> String {
    serde_yaml::to_string(v).unwrap()
}

#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    Equal,
    Documented(&'static str),
    Lacks(String),
    Fail(String),
}

#[derive(Default)]
struct Tally {
    lines: Vec<(String, Verdict)>,
}

impl Tally {
    fn record(&mut self, what: String, v: Verdict) {
        match &v {
            Verdict::Equal => println!("PASS {what} (equal)"),
            Verdict::Documented(d) => println!("PASS {what} (differs as documented: {d})"),
            Verdict::Lacks(f) => println!("SKIP {what} (ramp lacks {f})"),
            Verdict::Fail(m) => println!("FAIL {what}: {m}"),
        }
        self.lines.push((what, v));
    }

    fn count(&self, f: impl Fn(&Verdict) -> bool) -> usize {
        self.lines.iter().filter(|(_, v)| f(v)).count()
    }
}

/// Kruise's expected VirtualService spec rewritten by D1: the canary routes
/// Kruise put at the top (only canary destinations, each with a `match`)
/// become one route whose `match` lists theirs in reverse (= the step's) order.
fn d1(kruise: &Value, canary_host: &str) -> Option<Value> {
    let http = kruise["http"].as_array()?;
    let is_canary = |r: &Value| {
        r["match"].is_array()
            && r["route"].as_array().is_some_and(|d| {
                !d.is_empty()
                    && d.iter()
                        .all(|d| d["destination"]["host"].as_str() == Some(canary_host))
            })
    };
    let n = http.iter().take_while(|r| is_canary(r)).count();
    if n < 2 {
        return None;
    }
    let mut merged = http[0].clone();
    let mut matches = Vec::new();
    for r in http[..n].iter().rev() {
        let mut rest = r.clone();
        rest.as_object_mut()?.remove("match");
        let mut first = merged.clone();
        first.as_object_mut()?.remove("match");
        if rest != first {
            return None;
        }
        matches.extend(r["match"].as_array()?.iter().cloned());
    }
    merged["match"] = Value::Array(matches);
    let mut out = kruise.clone();
    let mut list = vec![merged];
    list.extend(http[n..].iter().cloned());
    out["http"] = Value::Array(list);
    Some(out)
}

fn compare_vs_spec(live: &Value, kruise: &Value, canary_host: &str) -> Verdict {
    if live == kruise {
        return Verdict::Equal;
    }
    if d1(kruise, canary_host).as_ref() == Some(live) {
        return Verdict::Documented(D1);
    }
    Verdict::Fail(format!("ramp wrote {live}\nKruise expects {kruise}"))
}

/// Kruise's annotation value (`""` = absent) against ramp's.
fn compare_annotation(obj: &Value, kruise: &str) -> Verdict {
    let ann = &obj["metadata"]["annotations"];
    if ann.get(KRUISE_ANNOTATION).is_some() {
        return Verdict::Fail(format!("ramp wrote Kruise's annotation: {ann}"));
    }
    let ramp = ann.get(RAMP_ANNOTATION).and_then(Value::as_str);
    match (kruise, ramp) {
        ("", None) => Verdict::Equal,
        ("", Some(r)) => Verdict::Fail(format!("the saved original should be gone: {r}")),
        (_, None) => Verdict::Fail("no saved original".into()),
        (k, Some(r)) => {
            let k: Value = serde_json::from_str(k).unwrap();
            let r: Value = serde_json::from_str(r).unwrap();
            if k["spec"] == r["spec"] {
                Verdict::Documented(D2)
            } else {
                Verdict::Fail(format!(
                    "saved spec {} != Kruise's {}",
                    r["spec"], k["spec"]
                ))
            }
        }
    }
}

/// Kruise's e2e `getHTTPRouteWeight`: the canary backendRef's weight (`-1`
/// when 0 or absent) and the weight of the other backendRefs (the last wins).
fn http_route_weights(route: &Value) -> (i64, i64) {
    let (mut stable, mut canary) = (-1, -1);
    for rule in route["spec"]["rules"].as_array().into_iter().flatten() {
        for b in rule["backendRefs"].as_array().into_iter().flatten() {
            let w = b["weight"].as_i64().unwrap_or(1);
            if b["name"].as_str().is_some_and(|n| n.ends_with("-canary")) {
                canary = w;
            } else {
                stable = w;
            }
        }
    }
    (stable, if canary == 0 { -1 } else { canary })
}

/// `kubectl ramp convert` on a Kruise Rollout: the ramp Rollout, and the notes.
fn convert(env: &Env, kruise: &Value) -> (Value, String) {
    let f = env.path("kruise-rollout.yaml");
    std::fs::write(&f, to_yaml(kruise)).unwrap();
    let out = Command::new(bin("kubectl-ramp"))
        .args(["convert", "-f"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl ramp convert: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ro: Value = serde_yaml::from_slice(&out.stdout).unwrap();
    (ro, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Applies `objects`, converts and applies the Rollout (with a grace period
/// of 0 s, which changes nothing but the wait) and waits until it is Healthy.
fn start(env: &Env, objects: &[Value], kruise_rollout: &Value) -> Value {
    for o in objects {
        env.apply(&to_yaml(o));
    }
    let (mut ro, notes) = convert(env, kruise_rollout);
    println!("kubectl ramp convert notes: {}", notes.trim());
    for r in ro["spec"]["strategy"]["canary"]["trafficRoutings"]
        .as_array_mut()
        .unwrap()
    {
        r["gracePeriodSeconds"] = json!(0);
    }
    env.apply(&to_yaml(&ro));
    let name = ro["metadata"]["name"].as_str().unwrap().to_owned();
    env.wait_phase(&name, "Healthy");
    ro
}

/// A new revision of `workload`: the rollout starts.
fn new_revision(env: &Env, workload: &str) {
    env.kubectl(&[
        "set",
        "env",
        &format!("deployment/{workload}"),
        "KRUISE_PEER=v2",
    ])
    .ok();
}

fn with_replicas(mut deployment: Value, n: i64) -> Value {
    deployment["spec"]["replicas"] = json!(n);
    deployment
}

fn e2e_case(id: &str) -> Value {
    let all: Value = serde_json::from_str(&read("transcribed/e2e_steps.json")).unwrap();
    all["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no case {id}"))
        .clone()
}

fn base_objects(deployment_replicas: i64) -> Vec<Value> {
    vec![
        yaml_docs(&read("upstream/test/e2e/test_data/rollout/service.yaml")).remove(0),
        with_replicas(
            yaml_docs(&read("upstream/test/e2e/test_data/rollout/deployment.yaml")).remove(0),
            deployment_replicas,
        ),
    ]
}

/// Kruise e2e "Route traffic with header/queryParams/path matches and weight
/// using rollout for VirtualService" (and its twin with an nginx Ingress as
/// a second provider, which ramp lacks).
fn vs_matches_then_weight(tally: &mut Tally, case_id: &str, rollout_file: &str, env_name: &str) {
    let case = e2e_case(case_id);
    let env = Env::start(env_name);
    let mut objects = base_objects(4);
    objects.extend(yaml_docs(&read(
        "upstream/test/e2e/test_data/customNetworkProvider/virtualservice_without_destinationrule.yaml",
    )));
    let kruise = yaml_docs(&read(rollout_file)).remove(0);
    let ro = start(&env, &objects, &kruise);
    new_revision(&env, "echoserver");
    let name = ro["metadata"]["name"].as_str().unwrap().to_owned();
    let steps = case["steps"].as_array().unwrap();
    for (i, s) in steps.iter().enumerate() {
        let step = i as i64 + 1;
        env.wait_step(&name, step, "StepPaused");
        let vs = env.get("virtualservice", "vs-demo").unwrap();
        tally.record(
            format!("{case_id} step {step} VirtualService spec"),
            compare_vs_spec(&vs["spec"], &s["expect"]["spec"], "echoserver-canary"),
        );
        tally.record(
            format!("{case_id} step {step} original-spec annotation"),
            compare_annotation(&vs, s["expect"]["annotation"].as_str().unwrap()),
        );
        if let Some(ing) = s.get("ingress_echoserver-canary_annotations") {
            tally.record(
                format!("{case_id} step {step} canary Ingress annotations {ing}"),
                Verdict::Lacks("the nginx Ingress provider".into()),
            );
        }
        env.approve(&name, step);
    }
    env.wait_phase(&name, "Healthy");
    let after = &case["after_finish"]["expect"];
    let vs = env.get("virtualservice", "vs-demo").unwrap();
    tally.record(
        format!("{case_id} after finishing: VirtualService spec"),
        compare_vs_spec(&vs["spec"], &after["spec"], "echoserver-canary"),
    );
    tally.record(
        format!("{case_id} after finishing: original-spec annotation"),
        compare_annotation(&vs, after["annotation"].as_str().unwrap()),
    );
    if let Some(ing) = case["after_finish"].get("ingress") {
        tally.record(
            format!("{case_id} after finishing: {ing}"),
            Verdict::Lacks("the nginx Ingress provider".into()),
        );
    }
}

/// Kruise e2e "Canary rollout with Gateway API": weights 20..90 on an
/// HTTPRoute named by gateway.httpRouteName.
fn gateway_weights(tally: &mut Tally) {
    let case = e2e_case("kruise-e2e-gateway-weights");
    let env = Env::start("peer-kruise-gw");
    let mut objects = base_objects(3);
    let mut route = yaml_docs(&read(
        "upstream/test/e2e/test_data/gateway/httproute-test.yaml",
    ))
    .remove(0);
    // gateway.networking.k8s.io/v1alpha2 HTTPRoutes are no longer served by
    // the Gateway API v1.6 CRD; the fields used here are the same in v1.
    route["apiVersion"] = json!("gateway.networking.k8s.io/v1");
    objects.push(route);
    let mut kruise = yaml_docs(&read(
        "upstream/test/e2e/test_data/gateway/rollout-test.yaml",
    ))
    .remove(0);
    // The Go test replaces the steps: five weights, replicas following them.
    let steps: Vec<Value> = case["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| json!({"weight": s["weight"], "replicas": format!("{}%", s["weight"])}))
        .collect();
    kruise["spec"]["strategy"]["canary"]["steps"] = Value::Array(steps);
    let ro = start(&env, &objects, &kruise);
    let original = env.get("httproute", "echoserver").unwrap();
    new_revision(&env, "echoserver");
    let name = ro["metadata"]["name"].as_str().unwrap().to_owned();
    for (i, s) in case["steps"].as_array().unwrap().iter().enumerate() {
        let step = i as i64 + 1;
        env.wait_step(&name, step, "StepPaused");
        let live = env.get("httproute", "echoserver").unwrap();
        let want = (
            s["expect"]["stable"].as_i64().unwrap(),
            s["expect"]["canary"].as_i64().unwrap(),
        );
        let got = http_route_weights(&live);
        let replicas = env
            .get("deployment", "echoserver-canary")
            .and_then(|d| d["spec"]["replicas"].as_i64());
        let want_replicas = s["canaryReplicas"].as_i64();
        tally.record(
            format!("kruise-e2e-gateway-weights step {step} HTTPRoute weights stable/canary {want:?}, canary replicas {want_replicas:?}"),
            if got == want && replicas == want_replicas {
                Verdict::Equal
            } else {
                Verdict::Fail(format!("got weights {got:?}, canary replicas {replicas:?}: {}", live["spec"]))
            },
        );
        env.approve(&name, step);
    }
    env.wait_phase(&name, "Healthy");
    let live = env.get("httproute", "echoserver").unwrap();
    let after = &case["after_finish"]["expect"];
    let want = (
        after["stable"].as_i64().unwrap(),
        after["canary"].as_i64().unwrap(),
    );
    let got = http_route_weights(&live);
    // ramp restores the HTTPRoute exactly (the stored original has the API
    // server's default weight 1, which is what Kruise resets to).
    tally.record(
        format!(
            "kruise-e2e-gateway-weights after finishing: HTTPRoute weights {want:?}, route restored"
        ),
        if got == want && live["spec"] == original["spec"] {
            Verdict::Equal
        } else {
            Verdict::Fail(format!(
                "got {got:?}: {} (original {})",
                live["spec"], original["spec"]
            ))
        },
    );
    let svc = env.get("service", "echoserver").unwrap();
    tally.record(
        "kruise-e2e-gateway-weights after finishing: canary Service gone, stable selector without pod-template-hash".into(),
        if env.get("service", "echoserver-canary").is_none()
            && svc["spec"]["selector"].get("pod-template-hash").is_none()
        {
            Verdict::Equal
        } else {
            Verdict::Fail(format!("stable Service {}", svc["spec"]))
        },
    );
}

/// Kruise's Lua testdata `rollout_with_three_steps.yaml`: each step's
/// expected VirtualService (Kruise computes each from the original, as ramp does).
fn lua_three_steps(tally: &mut Tally) {
    let id = "lua rollout_with_three_steps";
    let doc = yaml_docs(&read(
        "upstream/lua_configuration/networking.istio.io/VirtualService/testdata/rollout_with_three_steps.yaml",
    ))
    .remove(0);
    let env = Env::start("peer-kruise-lua");
    let mut kruise = doc["rollout"].clone();
    // The Lua test passes only each step's routing; ramp needs canary
    // replicas for every step: one pod.
    for s in kruise["spec"]["strategy"]["canary"]["steps"]
        .as_array_mut()
        .unwrap()
    {
        s["replicas"] = json!(1);
    }
    // The workload and Service the fixture names but does not define.
    let objects = vec![
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc-demo"},
               "spec": {"selector": {"app": "demo"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "deploy-demo"},
               "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "demo"}},
                        "template": {"metadata": {"labels": {"app": "demo"}},
                                     "spec": {"containers": [{"name": "demo", "image": "demo:1"}]}}}}),
        doc["original"].clone(),
    ];
    let ro = start(&env, &objects, &kruise);
    let original = env.get("virtualservice", "vs-demo").unwrap();
    new_revision(&env, "deploy-demo");
    let name = ro["metadata"]["name"].as_str().unwrap().to_owned();
    for (i, expected) in doc["expected"].as_array().unwrap().iter().enumerate() {
        let step = i as i64 + 1;
        env.wait_step(&name, step, "StepPaused");
        let vs = env.get("virtualservice", "vs-demo").unwrap();
        tally.record(
            format!("{id} step {step} VirtualService spec"),
            compare_vs_spec(&vs["spec"], &expected["spec"], "svc-demo-canary"),
        );
        env.approve(&name, step);
    }
    env.wait_phase(&name, "Healthy");
    // Kruise's Lua test has no finish state; ramp restores the original exactly.
    env.assert_restored("virtualservice", "vs-demo", &original);
    assert_eq!(original["spec"], doc["original"]["spec"]);
}

/// Kruise e2e "VirtualService and DestinationRule" with a standalone
/// TrafficRouting object: ramp has no TrafficRouting, and its subset routing
/// needs the VirtualService to route to a stable subset (this one routes to
/// the bare host); Kruise adds a `canary` subset labelled
/// `istio.service.tag: gray`, ramp one selecting the canary pods' hash.
fn vs_dr_traffic_routing(tally: &mut Tally) {
    let case = e2e_case("kruise-e2e-vs-dr-trafficrouting-cr");
    let why = "a standalone TrafficRouting object (and subset routing from a VirtualService that routes to the bare host)";
    for s in case["steps"].as_array().unwrap() {
        for kind in ["VirtualService", "DestinationRule"] {
            if s["expect"].get(kind).is_some() {
                tally.record(
                    format!(
                        "kruise-e2e-vs-dr-trafficrouting-cr step {} {kind}",
                        s["step"]
                    ),
                    Verdict::Lacks(why.into()),
                );
            }
        }
    }
    for kind in ["VirtualService", "DestinationRule"] {
        tally.record(
            format!("kruise-e2e-vs-dr-trafficrouting-cr after finishing: {kind}"),
            Verdict::Lacks(why.into()),
        );
    }
}

#[test]
fn peer_kruise_fixtures_through_the_operator() {
    let mut tally = Tally::default();
    vs_matches_then_weight(
        &mut tally,
        "kruise-e2e-vs-matches-then-weight",
        "upstream/test/e2e/test_data/customNetworkProvider/rollout_with_trafficrouting.yaml",
        "peer-kruise-vs",
    );
    vs_matches_then_weight(
        &mut tally,
        "kruise-e2e-vs-plus-ingress",
        "upstream/test/e2e/test_data/customNetworkProvider/rollout_with_multi_trafficrouting.yaml",
        "peer-kruise-ing",
    );
    gateway_weights(&mut tally);
    lua_three_steps(&mut tally);
    vs_dr_traffic_routing(&mut tally);

    let equal = tally.count(|v| *v == Verdict::Equal);
    let documented = tally.count(|v| matches!(v, Verdict::Documented(_)));
    let lacks = tally.count(|v| matches!(v, Verdict::Lacks(_)));
    let failed: Vec<&String> = tally
        .lines
        .iter()
        .filter(|(_, v)| matches!(v, Verdict::Fail(_)))
        .map(|(w, _)| w)
        .collect();
    println!(
        "peer kruise: {} passed ({equal} equal, {documented} differ as documented), {} failed, {lacks} skipped (features ramp lacks)",
        equal + documented,
        failed.len()
    );
    assert!(failed.is_empty(), "failed: {failed:#?}");
    assert!(equal > 0 && documented > 0);
}
