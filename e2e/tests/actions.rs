//! Scenario 8: user actions. Two concurrent approvals of one step advance it
//! once; abort at step 2 puts traffic back on stable and holds, retry starts
//! again at step 1; promote-full at step 1 finishes the rollout at once.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::sync::Barrier;
use std::time::Duration;

use ramp_e2e::Env;
use serde_json::{Value, json};

const RO: &str = "rollouts-demo";
const GW: Option<&str> = Some("simple-gateway");

fn step_1_routing() -> Value {
    json!([
        {"match": [{"headers": {"version": {"exact": "canary"}}}],
         "route": [{"destination": {"host": "service-demo-canary"}}]},
        {"route": [{"destination": {"host": "service-demo"}}]}
    ])
}

fn vs_http(env: &Env) -> Value {
    env.get("virtualservice", "vs-demo").unwrap()["spec"]["http"].clone()
}

/// Run `f` twice at the same moment on two threads.
fn twice_at_once<T: Send>(f: impl Fn() -> T + Sync) -> (T, T) {
    let barrier = Barrier::new(2);
    std::thread::scope(|s| {
        let a = s.spawn(|| {
            barrier.wait();
            f()
        });
        let b = s.spawn(|| {
            barrier.wait();
            f()
        });
        (a.join().unwrap(), b.join().unwrap())
    })
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn two_concurrent_approvals_advance_exactly_one_step() {
    let env = Env::start("approvetwice");
    env.start_canary_example();
    env.example_to_step(1);

    // Two guarded status patches for step 1 at once: one wins.
    let (a, b) = twice_at_once(|| env.approve_try(RO, 1));
    assert_eq!(
        [a.status.success(), b.status.success()]
            .iter()
            .filter(|ok| **ok)
            .count(),
        1,
        "exactly one approval of step 1 is accepted:\n{}\n{}",
        stderr(&a),
        stderr(&b)
    );
    let loser = if a.status.success() { &b } else { &a };
    assert!(
        stderr(loser).contains("test"),
        "the other fails its test operation: {}",
        stderr(loser)
    );
    env.wait_step(RO, 2, "StepPaused");
    let http = vs_http(&env);
    assert_eq!(
        http[0]["route"][1],
        json!({"destination": {"host": "service-demo-canary"}, "weight": 50}),
        "step 2's routing, not step 3's: {http}"
    );

    // The same race through the plugin at step 2.
    let (a, b) = twice_at_once(|| env.ramp(&["approve", RO]).output());
    assert_eq!(
        [a.status.success(), b.status.success()]
            .iter()
            .filter(|ok| **ok)
            .count(),
        1,
        "exactly one `kubectl ramp approve` is accepted:\n{}{}\n{}{}",
        String::from_utf8_lossy(&a.stdout),
        stderr(&a),
        String::from_utf8_lossy(&b.stdout),
        stderr(&b)
    );
    env.wait_step(RO, 3, "StepPaused");
    let s = env.rollout_status(RO);
    assert_eq!(
        s["phase"], "Progressing",
        "step 3 waits, it did not finish: {s}"
    );
    let http = vs_http(&env);
    assert_eq!(http[0]["route"][1]["weight"], 80, "{http}");
}

#[test]
fn abort_at_step_2_then_retry_starts_again_at_step_1() {
    let env = Env::start("abortretry");
    let original_vs = env.start_canary_example();
    let stable = env
        .pod_hashes("workload-demo")
        .keys()
        .next()
        .unwrap()
        .clone();
    env.example_to_step(2);
    let canary_hash = env.rollout_status(RO)["canaryStatus"]["podTemplateHash"]
        .as_str()
        .unwrap()
        .to_string();

    env.ramp(&["abort", RO]).ok();
    env.wait_phase(RO, "Aborted");
    env.wait_until(
        "the canary is scaled to 0 and has no pods",
        Duration::from_secs(60),
        |e| {
            e.get("deployment", "workload-demo-canary")
                .is_some_and(|c| c["spec"]["replicas"] == 0)
                && e.pod_hashes("workload-demo-canary").is_empty()
        },
    );
    assert_eq!(
        env.get("virtualservice", "vs-demo").unwrap()["spec"],
        original_vs["spec"],
        "traffic is back on the stable Service"
    );
    let s = env.rollout_status(RO);
    assert_eq!(s["phase"], "Aborted", "{s}");
    assert!(s["canaryStatus"].get("requestedAction").is_none(), "{s}");
    assert!(s["message"].as_str().unwrap().contains("aborted"), "{s}");
    let d = env.get("deployment", "workload-demo").unwrap();
    assert_eq!(d["spec"]["paused"], true, "the Deployment stays paused");
    assert_eq!(
        env.pod_hashes("workload-demo"),
        [(stable.clone(), 3)].into_iter().collect(),
        "the stable pods keep running"
    );
    let r = env.route_via(GW, "service-demo", &[], 500);
    assert_eq!(r["byPodTemplateHash"][&stable], 500, "{r}");
    let r = env.route_via(GW, "service-demo", &["version: canary"], 200);
    assert_eq!(r["byPodTemplateHash"][&stable], 200, "{r}");

    // Retry: step 1 again, with the same canary template.
    env.ramp(&["retry", RO]).ok();
    env.wait_step(RO, 1, "StepPaused");
    let s = env.rollout_status(RO);
    assert_eq!(s["phase"], "Progressing", "{s}");
    assert_eq!(vs_http(&env), step_1_routing());
    let canary = env.get("deployment", "workload-demo-canary").unwrap();
    assert_eq!(canary["spec"]["replicas"], 1);
    assert_eq!(canary["status"]["readyReplicas"], 1);
    assert_eq!(s["canaryStatus"]["podTemplateHash"], canary_hash.as_str());
    let r = env.route_via(GW, "service-demo", &["version: canary"], 300);
    assert_eq!(r["byPodTemplateHash"][&canary_hash], 300, "{r}");
    let r = env.route_via(GW, "service-demo", &[], 300);
    assert_eq!(r["byPodTemplateHash"][&stable], 300, "{r}");

    // And the steps walk on from there.
    let out = env.approve_try(RO, 1);
    assert!(out.status.success(), "{}", stderr(&out));
    env.wait_step(RO, 2, "StepPaused");
    assert_eq!(vs_http(&env)[0]["route"][1]["weight"], 50);
}

#[test]
fn promote_full_at_step_1_finishes_without_walking_the_steps() {
    let env = Env::start("promotefull");
    let original_vs = env.start_canary_example();
    let stable = env
        .pod_hashes("workload-demo")
        .keys()
        .next()
        .unwrap()
        .clone();
    env.example_to_step(1);

    env.ramp(&["promote", "--full", RO]).ok();
    env.wait_until(
        "the rollout finished (Healthy)",
        Duration::from_secs(90),
        |e| {
            let s = e.rollout_status(RO);
            let i = s["canaryStatus"]["currentStepIndex"].as_i64().unwrap_or(0);
            assert!(i <= 1, "promote-full walked on to step {i}: {s}");
            let http = vs_http(e);
            assert!(
                !http.to_string().contains("weight"),
                "promote-full sent a share of traffic by weight: {http}"
            );
            s["phase"] == "Healthy"
        },
    );
    env.assert_example_restored(&original_vs);
    let s = env.rollout_status(RO);
    let succeeded = s["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Succeeded")
        .unwrap()
        .clone();
    assert_eq!(succeeded["status"], "True", "{succeeded}");
    assert_eq!(
        s["canaryStatus"]["stableRevision"], s["canaryStatus"]["canaryRevision"],
        "{s}"
    );

    let fresh = env.wait_example_rolled_out_from(&stable);
    let d = env.get("deployment", "workload-demo").unwrap();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["env"],
        json!([{"name": "version", "value": "canary"}])
    );
    for p in env.list("pods", Some(&format!("pod-template-hash={fresh}"))) {
        assert_eq!(
            p["spec"]["containers"][0]["env"],
            json!([{"name": "version", "value": "canary"}])
        );
    }
}
