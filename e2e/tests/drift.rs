//! Scenario 7: the VirtualService changes under a progressing Rollout (a
//! GitOps tool or a person re-applies it). ramp re-applies the current step
//! within a second, keeps the user's edit as the new original, and after the
//! rollout the edit is still there and nothing of ramp's is.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ramp_e2e::{Env, bin, count};
use serde_json::{Value, json};

const RO: &str = "rollouts-demo";
const GW: Option<&str> = Some("simple-gateway");

/// The two scenarios measure a one-second reaction: run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// vs-demo with a route for another host in front of the service-demo route.
const EDITED_VS: &str = r#"apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: vs-demo
spec:
  gateways: [simple-gateway]
  hosts: ["*"]
  http:
    - match:
        - uri: {prefix: /other}
      route:
        - destination:
            host: other-demo
    - route:
        - destination:
            host: service-demo
"#;

/// A second application the added route sends `/other` to.
const OTHER_APP: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: other-demo
spec:
  replicas: 1
  selector:
    matchLabels: {app: other}
  template:
    metadata:
      labels: {app: other}
    spec:
      containers:
        - name: main
          image: nginx:1.27
---
apiVersion: v1
kind: Service
metadata:
  name: other-demo
spec:
  selector: {app: other}
  ports:
    - name: http
      port: 80
      targetPort: 80
"#;

fn approve(env: &Env, step: i64) {
    let out = env.ramp(&["approve", RO, "--step", &step.to_string()]).ok();
    assert!(out.contains(&format!("approved step {step}/3")), "{out}");
}

fn vs(env: &Env) -> Value {
    env.get("virtualservice", "vs-demo").expect("vs-demo")
}

fn weighted(stable: i64, canary: i64) -> Value {
    json!({"route": [
        {"destination": {"host": "service-demo"}, "weight": stable},
        {"destination": {"host": "service-demo-canary"}, "weight": canary}
    ]})
}

fn other_route() -> Value {
    json!({"match": [{"uri": {"prefix": "/other"}}],
           "route": [{"destination": {"host": "other-demo"}}]})
}

/// Set up the walk-through and bring the rollout to step 2 (50/50).
fn at_step_2(env: &Env) {
    env.apply_dir("examples/canary-istio");
    env.wait_phase(RO, "Healthy");
    env.wait_until(
        "workload-demo has 3 ready pods",
        Duration::from_secs(30),
        |e| {
            e.get("deployment", "workload-demo")
                .is_some_and(|d| d["status"]["readyReplicas"] == 3)
        },
    );
    env.kubectl(&["set", "env", "deployment/workload-demo", "version=canary"])
        .ok();
    env.wait_step(RO, 1, "StepPaused");
    approve(env, 1);
    env.wait_step(RO, 2, "StepPaused");
    assert_eq!(vs(env)["spec"]["http"], json!([weighted(50, 50)]));
}

/// Apply `yaml` as the user would and measure until `http` is back to
/// `expected`; panics unless that takes at most one second.
fn apply_and_expect_within_1s(env: &Env, file: &str, yaml: &str, expected: &Value) {
    let f = env.path(file);
    std::fs::write(&f, yaml).unwrap();
    let out = env.kubectl(&["apply", "-f"]).arg(&f).ok();
    let applied = Instant::now();
    assert!(
        out.contains("configured"),
        "kubectl apply changed the live object: {out}"
    );
    let mut last = Value::Null;
    while applied.elapsed() <= Duration::from_secs(1) {
        last = vs(env)["spec"]["http"].clone();
        if last == *expected {
            eprintln!(
                "routing re-applied {:?} after kubectl apply",
                applied.elapsed()
            );
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "routing not re-applied within 1 s of kubectl apply: http is {last}, expected {expected}"
    );
}

fn drift_events(env: &Env) -> Vec<String> {
    env.events()
        .into_iter()
        .filter(|e| e["reason"] == "RoutingDrift" && e["object"] == format!("Rollout/{RO}"))
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Requests to `path` entering through the gateway: count by app label.
fn route_path(env: &Env, path: &str, n: u32) -> Value {
    let out = Command::new(bin("ramp-sim"))
        .arg("route")
        .args(["--gateway", "simple-gateway", "--kubeconfig"])
        .arg(&env.kubeconfig)
        .args(["-n", &env.ns, "--host", "service-demo", "--path", path])
        .args(["--requests", &n.to_string(), "-o", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn nothing_of_ramp_left(env: &Env) {
    let v = vs(env);
    assert!(
        v["metadata"]["annotations"]
            .get(ramp_api::names::ORIGINAL_SPEC_ANNOTATION)
            .is_none(),
        "{v}"
    );
    assert!(
        !v["spec"].to_string().contains("service-demo-canary"),
        "{v}"
    );
    assert!(env.get("service", "service-demo-canary").is_none());
    assert!(env.get("deployment", "workload-demo-canary").is_none());
    let svc = env.get("service", "service-demo").unwrap();
    assert_eq!(svc["spec"]["selector"], json!({"app": "demo"}));
}

#[test]
fn reapplying_the_original_virtual_service_at_step_2_is_undone_within_a_second() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env::start("drift-reapply");
    at_step_2(&env);
    let before = drift_events(&env).len();

    // The original manifest, as a GitOps tool would re-apply it.
    let original = std::fs::read_to_string(
        ramp_e2e::repo_root().join("examples/canary-istio/virtualservice.yaml"),
    )
    .unwrap();
    apply_and_expect_within_1s(
        &env,
        "vs-original.yaml",
        &original,
        &json!([weighted(50, 50)]),
    );
    env.wait_until("a RoutingDrift event", Duration::from_secs(10), |e| {
        drift_events(e).len() > before
    });
    let msg = drift_events(&env).pop().unwrap();
    assert!(msg.contains("vs-demo"), "{msg}");

    // Traffic splits again, and the step did not move.
    let s = env.rollout_status(RO);
    assert_eq!(s["canaryStatus"]["currentStepIndex"], 2);
    assert_eq!(s["canaryStatus"]["currentStepState"], "StepPaused");
    let canary_hash = s["canaryStatus"]["podTemplateHash"]
        .as_str()
        .unwrap()
        .to_string();
    let r = env.route_via(GW, "service-demo", &[], 1000);
    let to_canary = count(&r["byPodTemplateHash"], |h| h == canary_hash);
    assert!((450..=550).contains(&to_canary), "50% ±5%: {r}");

    // The rest of the rollout is unaffected and restores the original.
    approve(&env, 2);
    env.wait_step(RO, 3, "StepPaused");
    assert_eq!(vs(&env)["spec"]["http"], json!([weighted(20, 80)]));
    approve(&env, 3);
    env.wait_phase(RO, "Healthy");
    assert_eq!(
        vs(&env)["spec"]["http"],
        json!([{"route": [{"destination": {"host": "service-demo"}}]}])
    );
    nothing_of_ramp_left(&env);
}

#[test]
fn a_route_added_at_step_2_survives_the_rollout() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let env = Env::start("drift-edit");
    env.apply(OTHER_APP);
    at_step_2(&env);

    // The user adds a route for another host and applies the edited manifest.
    apply_and_expect_within_1s(
        &env,
        "vs-edited.yaml",
        EDITED_VS,
        &json!([other_route(), weighted(50, 50)]),
    );
    let user_annotations = {
        let mut a = vs(&env)["metadata"]["annotations"].clone();
        a.as_object_mut()
            .unwrap()
            .remove(ramp_api::names::ORIGINAL_SPEC_ANNOTATION);
        a
    };
    env.wait_until("other-demo is ready", Duration::from_secs(30), |e| {
        e.get("deployment", "other-demo")
            .is_some_and(|d| d["status"]["readyReplicas"] == 1)
    });
    let r = route_path(&env, "/other", 200);
    assert_eq!(
        count(&r["byDestination"], |s| s == "other-demo"),
        200,
        "{r}"
    );

    // Step 3 keeps the user's route too.
    approve(&env, 2);
    env.wait_step(RO, 3, "StepPaused");
    assert_eq!(
        vs(&env)["spec"]["http"],
        json!([other_route(), weighted(20, 80)])
    );

    approve(&env, 3);
    env.wait_phase(RO, "Healthy");
    let v = vs(&env);
    let edited: Value = serde_yaml::from_str(EDITED_VS).unwrap();
    assert_eq!(
        v["spec"], edited["spec"],
        "the user's edit is the original now"
    );
    assert_eq!(
        v["metadata"]["annotations"], user_annotations,
        "annotations as the user's apply left them"
    );
    nothing_of_ramp_left(&env);
    let r = route_path(&env, "/other", 200);
    assert_eq!(
        count(&r["byDestination"], |s| s == "other-demo"),
        200,
        "{r}"
    );
}
