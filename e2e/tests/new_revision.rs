//! Scenario 3: a newer revision (v3) arrives while v2 is at step 2. ramp
//! resets routing, moves the canary to v3 and starts again at step 1; the
//! rollout then finishes on v3.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::time::Duration;

use ramp_e2e::Env;
use serde_json::{Value, json};

const RO: &str = "rollouts-demo";
const GW: Option<&str> = Some("simple-gateway");

fn env_of(template: &Value) -> Value {
    template["spec"]["containers"][0]["env"].clone()
}

#[test]
fn new_revision_at_step_2_resets_routing_and_restarts_at_step_1() {
    let env = Env::start("newrevision");
    let original_vs = env.start_canary_example();
    let stable_pods = env.pod_hashes("workload-demo");
    let stable = stable_pods.keys().next().unwrap().clone();

    env.example_to_step(2);
    let s2 = env.rollout_status(RO);
    let v2_revision = s2["canaryStatus"]["canaryRevision"]
        .as_str()
        .unwrap()
        .to_string();
    let v2_hash = s2["canaryStatus"]["podTemplateHash"]
        .as_str()
        .unwrap()
        .to_string();
    let stable_revision = s2["canaryStatus"]["stableRevision"].clone();

    // v3 replaces v2 under way.
    env.kubectl(&["set", "env", "deployment/workload-demo", "version=v3"])
        .ok();
    let d = env.get("deployment", "workload-demo").unwrap();
    assert_eq!(d["spec"]["paused"], true, "the Deployment stays paused");

    // Until the canary waits at step 1 with v3: routing goes back to the
    // original first, the step index never goes past 2, and it comes back to 1.
    let mut saw_reset = false;
    let mut max_step = 0;
    env.wait_until(
        "the rollout restarted at step 1 (StepPaused) with revision v3",
        Duration::from_secs(90),
        |e| {
            // Canary first: once it runs v3, v3 pods must not get step 2's weight.
            let canary_v3 = e
                .get("deployment", "workload-demo-canary")
                .is_some_and(|c| env_of(&c["spec"]["template"])[0]["value"] == "v3");
            let vs = e.get("virtualservice", "vs-demo").unwrap();
            if vs["spec"] == original_vs["spec"] {
                saw_reset = true;
            }
            if canary_v3 {
                assert!(
                    vs["spec"]["http"][0]["route"][1].get("weight").is_none(),
                    "the canary runs v3 while vs-demo still sends it step 2's weight: {}",
                    vs["spec"]
                );
            }
            let s = e.rollout_status(RO);
            let c = &s["canaryStatus"];
            max_step = max_step.max(c["currentStepIndex"].as_i64().unwrap_or(0));
            s["phase"] == "Progressing"
                && c["currentStepIndex"] == 1
                && c["currentStepState"] == "StepPaused"
                && c["canaryRevision"] != v2_revision.as_str()
        },
    );
    assert!(
        saw_reset,
        "vs-demo was put back to the original before step 1 started again"
    );
    assert!(
        max_step <= 2,
        "the step index never passed 2 (saw {max_step})"
    );

    let s = env.rollout_status(RO);
    let c = &s["canaryStatus"];
    assert_eq!(
        c["stableRevision"], stable_revision,
        "the stable revision is kept"
    );
    let v3_hash = c["podTemplateHash"].as_str().unwrap().to_string();
    assert!(
        v3_hash != v2_hash && v3_hash != stable,
        "the canary pods are a new template: {s}"
    );

    // The canary Deployment and its pods are v3.
    let canary = env.get("deployment", "workload-demo-canary").unwrap();
    assert_eq!(
        env_of(&canary["spec"]["template"]),
        json!([{"name": "version", "value": "v3"}])
    );
    assert_eq!(canary["spec"]["replicas"], 1, "step 1: one canary pod");
    env.wait_until(
        "the canary runs exactly one pod, of v3",
        Duration::from_secs(30),
        |e| e.pod_hashes("workload-demo-canary") == [(v3_hash.clone(), 1)].into_iter().collect(),
    );
    let pods = env.list("pods", Some(&format!("pod-template-hash={v3_hash}")));
    assert_eq!(pods.len(), 1);
    assert_eq!(
        env_of(&pods[0]),
        json!([{"name": "version", "value": "v3"}]),
        "the canary pod runs v3"
    );
    env.wait_until("no v2 pod is left", Duration::from_secs(30), |e| {
        e.list("pods", Some(&format!("pod-template-hash={v2_hash}")))
            .is_empty()
    });

    // Step 1's header route again, and the mesh routes by it.
    assert_eq!(
        env.get("virtualservice", "vs-demo").unwrap()["spec"]["http"],
        json!([
            {"match": [{"headers": {"version": {"exact": "canary"}}}],
             "route": [{"destination": {"host": "service-demo-canary"}}]},
            {"route": [{"destination": {"host": "service-demo"}}]}
        ])
    );
    let r = env.route_via(GW, "service-demo", &["version: canary"], 300);
    assert_eq!(r["byPodTemplateHash"][&v3_hash], 300, "{r}");
    let r = env.route_via(GW, "service-demo", &[], 300);
    assert_eq!(r["byPodTemplateHash"][&stable], 300, "{r}");

    // The steps walk again from 1 and the rollout ends on v3.
    for step in 1..=3 {
        let out = env.approve_try(RO, step);
        assert!(
            out.status.success(),
            "approve {step}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if step < 3 {
            env.wait_step(RO, step + 1, "StepPaused");
        }
    }
    env.wait_phase(RO, "Healthy");
    env.assert_example_restored(&original_vs);
    let fresh = env.wait_example_rolled_out_from(&stable);
    let d = env.get("deployment", "workload-demo").unwrap();
    assert_eq!(
        env_of(&d["spec"]["template"]),
        json!([{"name": "version", "value": "v3"}])
    );
    let pods = env.list("pods", Some(&format!("pod-template-hash={fresh}")));
    assert_eq!(pods.len(), 3);
    for p in &pods {
        assert_eq!(env_of(p), json!([{"name": "version", "value": "v3"}]));
    }
}
