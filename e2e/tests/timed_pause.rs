//! Scenario 5: a step with `pause: {duration: N}` moves on by itself after N
//! seconds; `spec.strategy.paused: true` holds a running pause past its
//! duration, and un-pausing lets the rollout continue.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ramp_e2e::Env;
use serde_json::Value;

const RO: &str = "rollouts-demo";

const TIMED_ROLLOUT: &str = r#"
apiVersion: rollouts.ramp.dev/v1beta1
kind: Rollout
metadata:
  name: rollouts-demo
spec:
  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: workload-demo}
  strategy:
    canary:
      steps:
        - {replicas: 1, traffic: "20%", pause: {duration: 2}}
        - {replicas: "50%", traffic: "50%", pause: {duration: 5}}
        - {replicas: "80%", traffic: "80%"}
      trafficRoutings:
        - service: service-demo
          gracePeriodSeconds: 1
          customNetworkRefs:
            - {apiVersion: networking.istio.io/v1beta1, kind: VirtualService, name: vs-demo}
"#;

/// Seconds since the epoch of a Kubernetes time (`2025-03-01T10:00:05Z`).
fn epoch_seconds(t: &Value) -> i64 {
    let s = t.as_str().unwrap_or_else(|| panic!("not a time: {t}"));
    let num = |a: usize, b: usize| -> i64 { s[a..b].parse().unwrap() };
    let (y, m, d) = (num(0, 4), num(5, 7), num(8, 10));
    let (hh, mm, ss) = (num(11, 13), num(14, 16), num(17, 19));
    // Days from the civil date (proleptic Gregorian calendar).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + hh * 3_600 + mm * 60 + ss
}

fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn step_and_state(env: &Env) -> (i64, String, Value) {
    let s = env.rollout_status(RO);
    let c = &s["canaryStatus"];
    (
        c["currentStepIndex"].as_i64().unwrap_or(0),
        c["currentStepState"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        s,
    )
}

fn set_paused(env: &Env, paused: bool) {
    env.kubectl(&[
        "patch",
        "rollout",
        RO,
        "--type=merge",
        "-p",
        &format!(r#"{{"spec":{{"strategy":{{"paused":{paused}}}}}}}"#),
    ])
    .ok();
}

#[test]
fn parse_kubernetes_times() {
    assert_eq!(epoch_seconds(&"1970-01-01T00:00:00Z".into()), 0);
    assert_eq!(epoch_seconds(&"2000-03-01T00:00:01Z".into()), 951_868_801);
    assert_eq!(epoch_seconds(&"2025-12-31T23:59:59Z".into()), 1_767_225_599);
}

#[test]
fn timed_pause_advances_by_itself_and_strategy_paused_holds_it() {
    let env = Env::start("timedpause");
    let original_vs = env.start_canary_example();
    env.apply(TIMED_ROLLOUT);
    env.wait_until(
        "the operator saw the timed Rollout",
        Duration::from_secs(30),
        |e| {
            e.get("rollout", RO).is_some_and(|r| {
                r["status"]["observedGeneration"] == r["metadata"]["generation"]
                    && r["status"]["phase"] == "Healthy"
            })
        },
    );

    env.kubectl(&["set", "env", "deployment/workload-demo", "version=canary"])
        .ok();

    // Step 1 pauses 2 s and moves on without an approval.
    env.wait_step(RO, 1, "StepPaused");
    let (_, _, s) = step_and_state(&env);
    let paused_at = epoch_seconds(&s["canaryStatus"]["lastUpdateTime"]);
    assert!(s["message"].as_str().unwrap().contains("pausing 2s"), "{s}");
    let mut left_at = 0;
    env.wait_until(
        "step 1's pause ended by itself",
        Duration::from_secs(30),
        |e| {
            let (i, state, s) = step_and_state(e);
            if i >= 2 || state == "StepReady" {
                left_at = epoch_seconds(&s["canaryStatus"]["lastUpdateTime"]);
                true
            } else {
                false
            }
        },
    );
    assert!(
        left_at - paused_at >= 2,
        "step 1 left its 2 s pause after {}s",
        left_at - paused_at
    );
    assert!(
        left_at - paused_at <= 10,
        "step 1 left its 2 s pause only after {}s",
        left_at - paused_at
    );

    // Step 2 pauses 5 s; spec.strategy.paused holds it while the timer runs.
    env.wait_step(RO, 2, "StepPaused");
    set_paused(&env, true);
    let (i, state, s) = step_and_state(&env);
    assert_eq!(
        (i, state.as_str()),
        (2, "StepPaused"),
        "the pause was set while step 2's timer ran: {s}"
    );
    let step2_paused_at = epoch_seconds(&s["canaryStatus"]["lastUpdateTime"]);
    env.wait_until(
        "the Rollout says it is paused by spec.strategy.paused",
        Duration::from_secs(30),
        |e| {
            e.rollout_status(RO)["message"]
                .as_str()
                .is_some_and(|m| m.contains("spec.strategy.paused"))
        },
    );
    // Held: still at step 2 several seconds after its 5 s were over.
    let hold_until = step2_paused_at as f64 + 5.0 + 5.0;
    let mut polls = 0;
    while now_seconds() < hold_until {
        let (i, state, s) = step_and_state(&env);
        assert_eq!(
            (i, state.as_str()),
            (2, "StepPaused"),
            "spec.strategy.paused did not hold step 2: {s}"
        );
        polls += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(polls > 0);
    let vs = env.get("virtualservice", "vs-demo").unwrap();
    assert_eq!(
        vs["spec"]["http"][0]["route"][1]["weight"], 50,
        "step 2's routing stays while paused: {}",
        vs["spec"]
    );
    let d = env.get("deployment", "workload-demo").unwrap();
    assert_eq!(d["spec"]["paused"], true, "the Deployment stays paused");

    // Un-paused: the pause is long over, so the rollout moves on to step 3,
    // which has no duration and waits for an approval.
    set_paused(&env, false);
    env.wait_step(RO, 3, "StepPaused");
    let vs = env.get("virtualservice", "vs-demo").unwrap();
    assert_eq!(vs["spec"]["http"][0]["route"][1]["weight"], 80);
    let s = env.rollout_status(RO);
    assert!(
        s["message"]
            .as_str()
            .unwrap()
            .contains("waiting for approval"),
        "{s}"
    );

    let out = env.approve_try(RO, 3);
    assert!(out.status.success(), "{out:?}");
    env.wait_phase(RO, "Healthy");
    env.assert_example_restored(&original_vs);
}
