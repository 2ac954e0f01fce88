//! Scenario 2: the pod template goes back to the stable one mid-rollout.
//! ramp restores routing first, then removes the canary, and the Deployment
//! runs the old template again with every request on the stable pods.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::time::Duration;

use ramp_e2e::Env;
use serde_json::json;

const RO: &str = "rollouts-demo";

#[test]
fn template_reverted_at_step_2_restores_routing_then_removes_the_canary() {
    let env = Env::start("rollback");
    let original_vs = env.start_canary_example();
    let before = env.pod_hashes("workload-demo");
    assert_eq!(
        before.len(),
        1,
        "one template before the rollout: {before:?}"
    );
    let stable = before.keys().next().unwrap().clone();

    env.example_to_step(2);
    let status = env.rollout_status(RO);
    let canary_hash = status["canaryStatus"]["podTemplateHash"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(status["canaryStatus"]["stableRevision"], "", "{status}");
    let vs = env.get("virtualservice", "vs-demo").unwrap();
    assert_eq!(
        vs["spec"]["http"][0]["route"][1],
        json!({"destination": {"host": "service-demo-canary"}, "weight": 50}),
        "at step 2 half the traffic goes to the canary"
    );

    // Revert the template: the Deployment now asks for the stable revision.
    env.kubectl(&["set", "env", "deployment/workload-demo", "version=base"])
        .ok();

    env.wait_routing_restored_first(
        "the rollback finished (Healthy, canary Deployment gone)",
        &original_vs,
        |e| {
            e.rollout_status(RO)["phase"] == "Healthy"
                && e.get("deployment", "workload-demo-canary").is_none()
        },
    );
    env.assert_example_restored(&original_vs);

    let status = env.rollout_status(RO);
    let conditions = status["conditions"].as_array().unwrap();
    let succeeded = conditions
        .iter()
        .find(|c| c["type"] == "Succeeded")
        .expect("a Succeeded condition");
    assert_eq!(succeeded["status"], "False", "{succeeded}");
    assert_eq!(succeeded["reason"], "RolledBack", "{succeeded}");
    assert_eq!(
        status["canaryStatus"]["canaryRevision"], status["canaryStatus"]["stableRevision"],
        "after the rollback the stable revision is the one rolled out: {status}"
    );

    // The Deployment runs the old template, unpaused.
    let d = env.get("deployment", "workload-demo").unwrap();
    assert_ne!(d["spec"]["paused"], true, "workload-demo is unpaused");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["env"],
        json!([{"name": "version", "value": "base"}])
    );
    // No pod of the canary template is left anywhere; the stable pods serve.
    env.wait_until(
        "no pod of the canary template is left",
        Duration::from_secs(30),
        |e| {
            e.list("pods", Some(&format!("pod-template-hash={canary_hash}")))
                .is_empty()
        },
    );
    env.wait_until(
        "workload-demo has its 3 stable pods ready",
        Duration::from_secs(30),
        |e| {
            e.get("deployment", "workload-demo").is_some_and(|d| {
                d["status"]["readyReplicas"] == 3 && d["status"]["updatedReplicas"] == 3
            })
        },
    );
    let after = env.pod_hashes("workload-demo");
    assert_eq!(
        after,
        [(stable.clone(), 3)].into_iter().collect(),
        "only the stable pods run, the same template as before"
    );
    let r = env.route_via(Some("simple-gateway"), "service-demo", &[], 500);
    assert_eq!(r["byPodTemplateHash"][&stable], 500, "{r}");
    let r = env.route_via(
        Some("simple-gateway"),
        "service-demo",
        &["version: canary"],
        200,
    );
    assert_eq!(
        r["byPodTemplateHash"][&stable], 200,
        "the header route is gone too: {r}"
    );
    // No ReplicaSet for the canary template was ever scaled up in workload-demo.
    for rs in env.list("replicasets", None) {
        if ramp_e2e::owner_name(&rs) == Some("workload-demo") {
            let hash = rs["metadata"]["labels"]["pod-template-hash"]
                .as_str()
                .unwrap();
            if hash != stable {
                assert_eq!(rs["spec"]["replicas"], 0, "{rs}");
            }
        }
    }
}
