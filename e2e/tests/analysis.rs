//! Metric analysis (issue #16) with the real binaries.
//!
//! - A Rollout whose analysis breaks a rule is rejected at `kubectl apply`
//!   with each field path.
//! - A Prometheus that does not answer holds the step with Error naming the
//!   address, past its pause, and never aborts; `kubectl ramp status` shows
//!   the Analysis tree, `kubectl ramp list` the ANALYSIS column, and
//!   `kubectl ramp approve` still approves (nothing is failing).

use std::time::Duration;

use ramp_e2e::Env;
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
