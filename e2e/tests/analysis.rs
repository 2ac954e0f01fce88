//! Metric analysis (issue #16) with the real binaries.
//!
//! - A Rollout whose analysis breaks a rule is rejected at `kubectl apply`
//!   with each field path.
//! - A Prometheus that does not answer holds the step with Error naming the
//!   address, past its pause, and never aborts; `kubectl ramp status` shows
//!   the Analysis tree, `kubectl ramp list` the ANALYSIS column, and
//!   `kubectl ramp approve` still approves (nothing is failing).
//!
//! With the sim's background load (100 requests/s through the gateway) and a
//! real Prometheus scraping the sim every second, judged on the built-in
//! metrics every 2 s:
//! - a good canary goes from the template change to Healthy without any
//!   approval, through a mirror step whose analysis measured the shadow
//!   copies on the canary, and the status shows the measured values;
//! - a bad canary (`sim.ramp.dev/error-rate: "0.3"`) and then a slow one
//!   (`latency-ms: "900"`) are aborted at their first traffic step within
//!   `failureLimit × interval` + one scrape (+ polling slack), routing
//!   restored, the message naming the metric, its value and the range, no
//!   later step reached;
//! - with the load stopped the step holds with NoData past its pause, then
//!   moves on once the load is back; with Prometheus stopped mid-step it
//!   holds with Error naming the address, and finishes once it is restarted.
//!   Nothing is aborted.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::process::Command;
use std::time::{Duration, Instant};

use ramp_e2e::prometheus::{Prometheus, scrape_target_of};
use ramp_e2e::{Env, bin};
use serde_json::Value;

const RO: &str = "rollouts-demo";

fn example(file: &str) -> String {
    std::fs::read_to_string(
        ramp_e2e::repo_root()
            .join("examples/canary-istio")
            .join(file),
    )
    .unwrap()
}

/// The walk-through's Rollout with timed steps and `analysis`.
fn rollout(analysis: &str, steps: &str) -> String {
    format!(
        r#"apiVersion: rollouts.ramp.dev/v1beta1
kind: Rollout
metadata:
  name: rollouts-demo
spec:
  workloadRef: {{apiVersion: apps/v1, kind: Deployment, name: workload-demo}}
  strategy:
    canary:
      analysis:
{analysis}
      steps:
{steps}
      trafficRoutings:
        - service: service-demo
          gracePeriodSeconds: 1
          customNetworkRefs:
            - {{apiVersion: networking.istio.io/v1beta1, kind: VirtualService, name: vs-demo}}
"#
    )
}

const TIMED_STEPS: &str = r#"        - {replicas: 1, traffic: "20%", pause: {duration: 4}}
        - {replicas: "50%", traffic: "50%", pause: {duration: 4}}"#;

fn apply_rejected(env: &Env, yaml: &str) -> String {
    let f = env.path("rejected.yaml");
    std::fs::write(&f, yaml).unwrap();
    let out = env.kubectl(&["apply", "-f"]).arg(&f).output();
    assert!(
        !out.status.success(),
        "kubectl apply should have been rejected:\n{yaml}"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn status(env: &Env) -> Value {
    env.rollout_status(RO)
}

fn record<'a>(s: &'a Value, metric: &str) -> &'a Value {
    s["canaryStatus"]["analysis"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["name"] == metric))
        .unwrap_or(&Value::Null)
}

#[test]
fn an_invalid_analysis_is_rejected_at_apply_with_field_paths() {
    let env = Env::start("analysis-bad-spec");
    let stderr = apply_rejected(
        &env,
        &rollout(
            r#"        interval: 500ms
        metrics:
          - {name: request-latency, thresholdRange: {max: 500}}
          - {name: request-success-rate, thresholdRange: {}}
          - name: budget
            query: 'sum(rate(x{w="{{ canaryWorklod }}"}[{{ interval }}]))'
            thresholdRange: {max: 1}
          - {name: empty, query: "", thresholdRange: {max: 1}}"#,
            TIMED_STEPS,
        ),
    );
    let a = "spec.strategy.canary.analysis";
    for needle in [
        format!("{a}.interval: invalid duration \"500ms\": must be at least 1s"),
        format!("{a}.metrics[0].name: unknown built-in metric \"request-latency\""),
        format!("{a}.metrics[1].thresholdRange: needs min, max or both"),
        format!("{a}.metrics[2].query: invalid template: unknown variable \"canaryWorklod\""),
        format!("{a}.metrics[3].query: must not be empty"),
    ] {
        assert!(stderr.contains(&needle), "missing {needle:?} in:\n{stderr}");
    }
    assert!(env.get("rollout", RO).is_none(), "nothing was created");
}

#[test]
fn an_unreachable_prometheus_holds_the_step_with_error_and_never_aborts() {
    let env = Env::start("analysis-unreachable");
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("http://127.0.0.1:{port}");
    for f in ["deployment.yaml", "service.yaml", "virtualservice.yaml"] {
        env.apply(&example(f));
    }
    env.apply(&rollout(
        &format!(
            r#"        prometheus: {{address: "{address}"}}
        interval: 1s
        metrics:
          - {{name: request-success-rate, thresholdRange: {{min: 99}}}}"#
        ),
        TIMED_STEPS,
    ));
    env.wait_phase(RO, "Healthy");
    env.kubectl(&["set", "env", "deployment/workload-demo", "version=canary"])
        .ok();
    env.wait_step(RO, 1, "StepPaused");
    env.wait_until(
        "the first measurement is an Error",
        Duration::from_secs(30),
        |e| record(&status(e), "request-success-rate")["phase"] == "Error",
    );
    // Past the 4 s pause and several intervals: still at step 1, Progressing.
    std::thread::sleep(Duration::from_secs(8));
    let s = status(&env);
    assert_eq!(s["phase"], "Progressing", "{s:#}");
    assert_eq!(s["canaryStatus"]["currentStepIndex"], 1, "{s:#}");
    assert_eq!(s["canaryStatus"]["currentStepState"], "StepPaused", "{s:#}");
    let r = record(&s, "request-success-rate");
    assert!(r["consecutiveErrors"].as_i64().unwrap() >= 3, "{r:#}");
    assert_eq!(r["passedInStep"], 0);
    let err = r["lastError"].as_str().unwrap();
    assert!(
        err.contains(&format!("Prometheus at {address} is unreachable")),
        "{err}"
    );
    let message = s["message"].as_str().unwrap();
    assert!(
        message.contains("holding until every metric passes")
            && message.contains(&format!("Prometheus at {address} is unreachable")),
        "{message}"
    );
    let progressing = s["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Progressing")
        .unwrap();
    assert_eq!(progressing["reason"], "AnalysisError");

    // The plugin shows it.
    let tree = env.ramp(&["status", RO]).ok();
    assert!(tree.contains("Analysis (every 1s)"), "{tree}");
    assert!(tree.contains("request-success-rate"), "{tree}");
    assert!(
        tree.contains(&format!("Prometheus at {address} is unreachable")),
        "{tree}"
    );
    let list = env.ramp(&["list"]).ok();
    assert!(list.lines().next().unwrap().contains("ANALYSIS"), "{list}");
    assert!(list.contains("1/1 Error"), "{list}");
    let events = env.events();
    assert!(
        events
            .iter()
            .any(|e| e["reason"] == "AnalysisError" && e["type"] == "Warning"),
        "{events:#?}"
    );
    assert!(
        !events.iter().any(|e| e["reason"] == "AnalysisFailed"),
        "{events:#?}"
    );

    // Error is not failing: approving moves on (by hand; the timer cannot).
    env.ramp(&["approve", RO]).ok();
    env.wait_step(RO, 2, "StepPaused");
}

// ----- With the sim's load generator and a real Prometheus ----------------

/// Prometheus scraping this scenario's sim every second.
fn prometheus(env: &Env) -> Prometheus {
    Prometheus::start(&scrape_target_of(&env.kubeconfig).unwrap()).unwrap_or_else(|e| panic!("{e}"))
}

fn sim_ok(env: &Env, args: &[&str]) -> String {
    let out = Command::new(bin("ramp-sim"))
        .args(args)
        .arg("--kubeconfig")
        .arg(&env.kubeconfig)
        .output()
        .expect("run ramp-sim");
    assert!(
        out.status.success(),
        "ramp-sim {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Steady traffic to the walk-through's host through its gateway; returns the stream id.
fn start_load(env: &Env, rps: u32) -> String {
    sim_ok(
        env,
        &[
            "load",
            "start",
            "-n",
            &env.ns,
            "--host",
            "service-demo",
            "--gateway",
            "simple-gateway",
            "--rps",
            &rps.to_string(),
        ],
    )
}

fn stop_load(env: &Env, id: &str) {
    sim_ok(env, &["load", "stop", id]);
}

const BUILTINS: &str = r#"        metrics:
          - {name: request-success-rate, thresholdRange: {min: 99}}
          - {name: request-duration, thresholdRange: {max: 500}}"#;

/// The walk-through's objects and a Rollout judged by both built-ins every
/// 2 s on `prom`, Healthy, with load flowing.
fn analysed_example(env: &Env, prom: &Prometheus, steps: &str, extra: &str) -> (Value, String) {
    for f in ["deployment.yaml", "service.yaml", "virtualservice.yaml"] {
        env.apply(&example(f));
    }
    let original = env.get("virtualservice", "vs-demo").unwrap();
    env.apply(&rollout(
        &format!(
            "        prometheus: {{address: \"{}\"}}\n        interval: 2s\n{BUILTINS}\n{extra}",
            prom.url()
        ),
        steps,
    ));
    env.wait_phase(RO, "Healthy");
    let load = start_load(env, 100);
    (original, load)
}

/// Change the pod template: a new revision whose pods behave per `annotations`.
fn new_template(env: &Env, annotations: &str) {
    env.kubectl(&[
        "patch",
        "deployment",
        "workload-demo",
        "--type=merge",
        "-p",
        &format!(r#"{{"spec":{{"template":{{"metadata":{{"annotations":{annotations}}}}}}}}}"#),
    ])
    .ok();
}

fn condition<'a>(s: &'a Value, type_: &str) -> &'a Value {
    s["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == type_))
        .unwrap_or(&Value::Null)
}

/// Polls the status every 100 ms until `done`, returning every status seen.
fn watch_until(
    env: &Env,
    what: &str,
    timeout: Duration,
    done: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        let s = status(env);
        let finished = done(&s);
        seen.push(s);
        if finished {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting until {what}: {:#}",
            seen.last().unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn at_step(s: &Value, step: i64, state: &str) -> bool {
    s["phase"] == "Progressing"
        && s["canaryStatus"]["currentStepIndex"] == step
        && s["canaryStatus"]["currentStepState"] == state
}

#[test]
fn a_good_canary_is_promoted_without_approvals_and_a_mirror_step_judges_the_shadow_traffic() {
    let env = Env::start("analysis-good");
    let prom = prometheus(&env);
    let (original, _load) = analysed_example(
        &env,
        &prom,
        r#"        - {replicas: 1, mirror: {percent: 100}, pause: {duration: 4}}
        - {replicas: 1, traffic: "20%", pause: {duration: 4}}
        - {replicas: "50%", traffic: "50%", pause: {duration: 4}}"#,
        "",
    );
    new_template(&env, r#"{"sim.ramp.dev/latency-ms":"40"}"#);
    let started = Instant::now();
    let seen = watch_until(
        &env,
        "Healthy without approvals",
        Duration::from_secs(120),
        |s| {
            s["phase"] == "Healthy"
                && s["canaryStatus"]["canaryRevision"] == s["canaryStatus"]["stableRevision"]
                && s["canaryStatus"]["stableRevision"].is_string()
                && condition(s, "Succeeded")["status"] == "True"
        },
    );
    let took = started.elapsed();
    // The mirror step (no real traffic on the canary) passed on the shadow copies.
    let mirror_pass = seen
        .iter()
        .filter(|s| s["canaryStatus"]["currentStepIndex"] == 1)
        .filter_map(|s| {
            let r = record(s, "request-success-rate");
            (r["stepIndex"] == 1 && r["phase"] == "Passed").then_some(r.clone())
        })
        .next_back()
        .expect("the mirror step's success rate passed");
    assert!(
        mirror_pass["lastSamples"].as_f64().unwrap() >= 10.0,
        "{mirror_pass:#}"
    );
    assert_eq!(mirror_pass["lastValue"], 100.0, "{mirror_pass:#}");
    // Each step passed both metrics before moving on; values were measured.
    for step in 1..=3 {
        let passed = seen.iter().any(|s| {
            let a = record(s, "request-duration");
            a["stepIndex"] == step
                && a["phase"] == "Passed"
                && a["lastValue"]
                    .as_f64()
                    .is_some_and(|v| v > 0.0 && v <= 500.0)
        });
        assert!(
            passed,
            "step {step}: request-duration never passed with a value"
        );
    }
    let last = seen.last().unwrap();
    let d = record(last, "request-duration");
    assert!(d["total"]["passed"].as_i64().unwrap() >= 3, "{d:#}");
    assert_eq!(d["total"]["failed"].as_i64().unwrap_or(0), 0, "{d:#}");
    let events = env.events();
    assert!(
        !events.iter().any(|e| e["reason"] == "Approved"),
        "nobody approved"
    );
    assert!(
        events.iter().any(|e| e["reason"] == "StepReady"
            && e["message"]
                .as_str()
                .unwrap_or("")
                .contains("analysis passed")),
        "{events:#?}"
    );
    env.assert_restored("virtualservice", "vs-demo", &original);
    eprintln!(
        "measured: good canary from template change to Healthy in {took:?} (3 steps of 4 s, interval 2 s)"
    );
    let value = prom.value(&format!(
        "count(istio_requests_total{{destination_workload=\"workload-demo-canary\",destination_workload_namespace=\"{}\"}})",
        env.ns
    ));
    assert!(
        value.unwrap().is_some(),
        "the canary's requests reached Prometheus"
    );
}

#[test]
fn a_bad_canary_and_a_slow_canary_are_aborted_at_their_first_step() {
    let env = Env::start("analysis-bad");
    let prom = prometheus(&env);
    let (original, _load) = analysed_example(
        &env,
        &prom,
        r#"        - {replicas: 1, traffic: "20%", pause: {duration: 30}}
        - {replicas: "50%", traffic: "50%", pause: {duration: 4}}"#,
        "",
    );
    for (annotations, metric, range, check) in [
        (
            r#"{"sim.ramp.dev/error-rate":"0.3"}"#,
            "request-success-rate",
            ">= 99",
            (|v: f64| v > 50.0 && v < 90.0) as fn(f64) -> bool,
        ),
        (
            // "0" rather than removing the annotation: ramp-sim's server-side
            // apply keeps template annotations the new apply no longer sets.
            r#"{"sim.ramp.dev/error-rate":"0","sim.ramp.dev/latency-ms":"900"}"#,
            "request-duration",
            "<= 500",
            (|v: f64| v > 500.0) as fn(f64) -> bool,
        ),
    ] {
        if metric == "request-duration" {
            // The aborted canary's answers leave the 10 s query window first
            // (the canary Deployment keeps its name across revisions).
            std::thread::sleep(Duration::from_secs(11));
        }
        new_template(&env, annotations);
        watch_until(&env, "step 1 paused", Duration::from_secs(90), |s| {
            at_step(s, 1, "StepPaused")
        });
        let paused = Instant::now();
        let seen = watch_until(&env, "aborted", Duration::from_secs(30), |s| {
            s["phase"] == "Aborted"
        });
        let took = paused.elapsed();
        // failureLimit 1 × interval 2 s + one scrape, plus the operator's and this poll's latency.
        assert!(
            took <= Duration::from_secs(2 + 1 + 3),
            "{metric}: aborted {took:?} after the pause began"
        );
        assert!(
            seen.iter()
                .all(|s| s["canaryStatus"]["currentStepIndex"] == 1),
            "a later step was reached"
        );
        let done = watch_until(&env, "the abort settled", Duration::from_secs(30), |s| {
            s["phase"] == "Aborted"
                && s["canaryStatus"]["canaryReplicas"] == 0
                && s["canaryStatus"]["finalisingStep"].is_null()
        });
        let s = done.last().unwrap();
        assert_eq!(
            condition(s, "Succeeded")["reason"],
            "AnalysisFailed",
            "{s:#}"
        );
        let message = s["message"].as_str().unwrap();
        let r = record(s, metric);
        let value = r["lastValue"].as_f64().unwrap();
        assert!(check(value), "{metric} {value}");
        let shown = message
            .split(&format!("{metric} was "))
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .unwrap_or_else(|| panic!("the message does not name {metric}: {message}"));
        assert!(
            (shown.parse::<f64>().unwrap() - value).abs() < 0.01,
            "{message}"
        );
        assert!(
            message.contains(&format!("outside the range {range}")),
            "{message}"
        );
        env.assert_restored("virtualservice", "vs-demo", &original);
        let events = env.events();
        assert!(
            events.iter().any(|e| e["type"] == "Warning"
                && e["reason"] == "AnalysisFailed"
                && e["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains(&format!("{metric} was"))),
            "{events:#?}"
        );
        let canary = env.get("deployment", "workload-demo-canary").unwrap();
        assert_eq!(canary["spec"]["replicas"], 0, "canary scaled to 0");
        eprintln!("measured: {metric} failed, aborted {took:?} after step 1 paused; value {value}");
    }
}

#[test]
fn no_traffic_holds_with_no_data_and_a_prometheus_outage_holds_with_error() {
    let env = Env::start("analysis-hold");
    let prom = prometheus(&env);
    let (_original, load) = analysed_example(
        &env,
        &prom,
        r#"        - {replicas: 1, traffic: "20%", pause: {duration: 2}}
        - {replicas: "50%", traffic: "50%", pause: {duration: 2}}"#,
        "",
    );
    // No traffic from the start: step 1 holds with NoData, past its pause.
    stop_load(&env, &load);
    new_template(&env, r#"{"sim.ramp.dev/latency-ms":"20"}"#);
    watch_until(&env, "step 1 paused", Duration::from_secs(90), |s| {
        at_step(s, 1, "StepPaused")
    });
    watch_until(&env, "NoData", Duration::from_secs(30), |s| {
        condition(s, "Progressing")["reason"] == "AnalysisNoData"
    });
    let held = watch_until(&env, "a long hold", Duration::from_secs(30), |s| {
        record(s, "request-success-rate")["consecutiveNoData"]
            .as_i64()
            .unwrap_or(0)
            >= 4
    });
    assert!(
        held.iter().all(|s| at_step(s, 1, "StepPaused")),
        "moved on without data"
    );
    let s = held.last().unwrap();
    let message = s["message"].as_str().unwrap();
    assert!(
        message.contains("holding until every metric passes"),
        "{message}"
    );
    assert!(message.contains("fewer than minSamples 10"), "{message}");
    // Traffic back: the step passes and the rollout moves on.
    let _load = start_load(&env, 100);
    watch_until(&env, "step 2 paused", Duration::from_secs(60), |s| {
        at_step(s, 2, "StepPaused")
    });

    // Prometheus stops mid-step: Error naming its address; nothing aborts.
    prom.stop().unwrap();
    let held = watch_until(&env, "Error", Duration::from_secs(30), |s| {
        record(s, "request-duration")["consecutiveErrors"]
            .as_i64()
            .unwrap_or(0)
            >= 3
    });
    assert!(
        held.iter()
            .all(|s| s["phase"] == "Progressing" && s["canaryStatus"]["currentStepIndex"] == 2)
    );
    let s = held.last().unwrap();
    assert_eq!(
        condition(s, "Progressing")["reason"],
        "AnalysisError",
        "{s:#}"
    );
    let err = record(s, "request-duration")["lastError"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        err.contains(&format!("Prometheus at {} is unreachable", prom.url())),
        "{err}"
    );
    assert!(
        s["message"].as_str().unwrap().contains(&prom.url()),
        "{s:#}"
    );
    // Restarted: the rollout finishes.
    prom.restart().unwrap();
    watch_until(&env, "Healthy", Duration::from_secs(90), |s| {
        s["phase"] == "Healthy"
    });
    let events = env.events();
    assert!(
        !events
            .iter()
            .any(|e| e["reason"] == "AnalysisFailed" || e["reason"] == "Aborted"),
        "{events:#?}"
    );
    let metrics = operator_metrics(&env);
    for needle in [
        "ramp_analysis_measurements_total{metric=\"request-success-rate\",phase=\"NoData\"}",
        "ramp_analysis_measurements_total{metric=\"request-duration\",phase=\"Error\"}",
        "ramp_analysis_measurements_total{metric=\"request-duration\",phase=\"Passed\"}",
        "ramp_rollout_analysis_value{",
    ] {
        assert!(metrics.contains(needle), "missing {needle} in\n{metrics}");
    }
}

/// The operator's `/metrics` text (its address from its log).
fn operator_metrics(env: &Env) -> String {
    use std::io::{Read, Write};
    let log = std::fs::read_to_string(env.path("operator-1.log")).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("metrics and health listening"))
        .unwrap_or_else(|| panic!("no metrics address in the operator log:\n{log}"));
    let addr = line
        .split("addr=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .trim_matches(|c: char| !c.is_ascii_digit() && c != '.' && c != ':');
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: ramp\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

/// `make demo-analysis` (scripts/demo-analysis.sh) runs to the end: an
/// automatic promotion and an automatic abort, with the measured numbers.
#[test]
fn the_analysis_demo_promotes_then_aborts_by_itself() {
    if std::env::var("RAMP_E2E_KUBECONFIG").is_ok() {
        eprintln!("SKIPPED: the demo starts its own embedded cluster");
        return;
    }
    let out = Command::new("bash")
        .arg(ramp_e2e::repo_root().join("scripts/demo-analysis.sh"))
        .env("RAMP_BIN_DIR", ramp_e2e::bin_dir())
        .env("RAMP_SHARED_CRDS", ramp_e2e::shared_crds_dir())
        .env_remove("KEEP")
        .output()
        .expect("run scripts/demo-analysis.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    for needle in [
        "Promoted without an approval",
        "step 3/3: pause of 4s is over; analysis passed: request-success-rate 100 Passed (range >= 99)",
        "Status:       ✖ Aborted",
        "analysis failed at step 1: request-success-rate was ",
        r#"[{"route":[{"destination":{"host":"service-demo"}}]}]"#,
        "Done: automatic promotion and automatic abort",
    ] {
        assert!(
            stdout.contains(needle),
            "demo output lacks {needle:?}:\n{stdout}"
        );
    }
    assert!(!stdout.contains("<invalid>"), "{stdout}");
}

// ----- Envoy's cluster statistics, through a Gateway API Gateway ----------

/// A Gateway CRD for this test (the shared CRDs carry HTTPRoute only; the
/// sim's router reads Gateways' listeners, nothing else needs the schema).
const GATEWAY_CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gateways.gateway.networking.k8s.io}
spec:
  group: gateway.networking.k8s.io
  scope: Namespaced
  names: {plural: gateways, singular: gateway, kind: Gateway, listKind: GatewayList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#;

#[test]
fn envoy_metrics_through_a_gateway_promote_a_good_canary_and_abort_a_bad_one() {
    let env = Env::start("analysis-envoy");
    let prom = prometheus(&env);
    env.apply(GATEWAY_CRD);
    env.kubectl(&[
        "wait",
        "--for=condition=Established",
        "crd/gateways.gateway.networking.k8s.io",
        "--timeout=30s",
    ])
    .ok();
    env.apply(
        r#"apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  gatewayClassName: contour
  listeners: [{name: http, port: 80, protocol: HTTP}]
"#,
    );
    for f in ["deployment.yaml", "service.yaml"] {
        env.apply(
            &std::fs::read_to_string(ramp_e2e::repo_root().join("examples/httproute").join(f))
                .unwrap(),
        );
    }
    env.apply(
        r#"apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: route-demo}
spec:
  parentRefs: [{name: edge}]
  rules:
  - backendRefs: [{name: service-demo, port: 80}]
"#,
    );
    let original = env.get("httproute", "route-demo").unwrap();
    env.apply(&format!(
        r#"apiVersion: rollouts.ramp.dev/v1beta1
kind: Rollout
metadata: {{name: rollouts-demo}}
spec:
  workloadRef: {{apiVersion: apps/v1, kind: Deployment, name: workload-demo}}
  strategy:
    canary:
      analysis:
        provider: envoy
        prometheus: {{address: "{}"}}
        interval: 2s
{BUILTINS}
      steps:
{TIMED_STEPS}
      trafficRoutings:
        - service: service-demo
          gracePeriodSeconds: 1
          gateway: {{httpRouteName: route-demo}}
"#,
        prom.url()
    ));
    env.wait_phase(RO, "Healthy");
    sim_ok(
        &env,
        &[
            "load",
            "start",
            "-n",
            &env.ns,
            "--host",
            "service-demo",
            "--gateway",
            "edge",
            "--rps",
            "100",
        ],
    );

    // A good canary: Healthy without approvals, judged on the canary
    // Service's Envoy cluster.
    new_template(&env, r#"{"sim.ramp.dev/latency-ms":"40"}"#);
    let seen = watch_until(&env, "Healthy", Duration::from_secs(120), |s| {
        s["phase"] == "Healthy"
            && s["canaryStatus"]["stableRevision"].is_string()
            && s["canaryStatus"]["canaryRevision"] == s["canaryStatus"]["stableRevision"]
            && condition(s, "Succeeded")["status"] == "True"
    });
    let passed = seen
        .iter()
        .map(|s| record(s, "request-success-rate"))
        .find(|r| r["phase"] == "Passed" && r["lastSamples"].as_f64().is_some_and(|n| n >= 10.0))
        .unwrap_or_else(|| {
            panic!(
                "request-success-rate never passed: {:#}",
                seen.last().unwrap()
            )
        });
    assert_eq!(passed["lastValue"], 100.0, "{passed:#}");
    assert!(
        !env.events().iter().any(|e| e["reason"] == "Approved"),
        "nobody approved"
    );
    env.assert_restored("httproute", "route-demo", &original);
    let cluster = format!("{}_service-demo-canary_80", env.ns);
    let served = prom
        .value(&format!(
            "sum(envoy_cluster_upstream_rq{{envoy_cluster_name=\"{cluster}\"}})"
        ))
        .unwrap();
    assert!(served.is_some_and(|n| n > 0.0), "{cluster}: {served:?}");

    // A bad canary: aborted at its first step on the Envoy success rate.
    std::thread::sleep(Duration::from_secs(11));
    new_template(&env, r#"{"sim.ramp.dev/error-rate":"0.3"}"#);
    let done = watch_until(&env, "aborted and settled", Duration::from_secs(90), |s| {
        s["phase"] == "Aborted"
            && s["canaryStatus"]["canaryReplicas"] == 0
            && s["canaryStatus"]["finalisingStep"].is_null()
    });
    let s = done.last().unwrap();
    assert_eq!(
        condition(s, "Succeeded")["reason"],
        "AnalysisFailed",
        "{s:#}"
    );
    assert!(
        done.iter().all(|s| s["canaryStatus"]["currentStepIndex"]
            .as_i64()
            .is_none_or(|i| i <= 1)),
        "a later step was reached"
    );
    let message = s["message"].as_str().unwrap();
    assert!(
        message.contains("request-success-rate was") && message.contains("outside the range >= 99"),
        "{message}"
    );
    env.assert_restored("httproute", "route-demo", &original);
    eprintln!("measured: envoy provider: good canary promoted, bad canary aborted: {message}");
}
