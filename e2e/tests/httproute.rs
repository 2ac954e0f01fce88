//! Gateway API routing (issue #8): the walk-through of examples/canary-istio
//! (header step, 50%, 80%) expressed as an HTTPRoute attached to the Service
//! itself (GAMMA), with the user's own weights — restored exactly at the end —
//! and a second HTTPRoute on the same Service that never reaches the stable
//! Service and so is never touched.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::time::Duration;

use ramp_e2e::{Env, count};
use serde_json::Value;

const RO: &str = "rollouts-demo";
const HOST: &str = "service-demo";

/// Requests served by the pods of workload-other.
fn to_other(r: &Value) -> u64 {
    count(&r["byPod"], |p| p.starts_with("workload-other-"))
}

/// What did not land on the stable or canary pods or service-other.
fn assert_all_served(r: &Value, stable: &str, canary: &str, what: &str) {
    let served = count(&r["byPodTemplateHash"], |h| h == stable || h == canary) + to_other(r);
    assert_eq!(served, 1000, "{what}: every request served: {r}");
}

/// `n` of 1000 within ±5 percentage points of `percent`.
fn assert_near(n: u64, percent: u64, what: &str, r: &Value) {
    let (lo, hi) = ((percent * 10).saturating_sub(50), percent * 10 + 50);
    assert!(
        (lo..=hi).contains(&n),
        "{what}: {n} of 1000, expected {percent}% ±5%: {r}"
    );
}

/// The tester route: jason2 always reaches service-other.
fn assert_jason2(env: &Env, when: &str) {
    let r = env.route(HOST, &["end-user: jason2"], 1000);
    assert_eq!(to_other(&r), 1000, "{when}: jason2 → service-other: {r}");
}

/// Route 1,000 requests to /legacy: 3/4 of service-demo's share and 1/4 for
/// service-other, whatever the step; of the service-demo share, `canary`
/// percent go to the canary.
fn assert_legacy(env: &Env, stable: &str, canary: &str, canary_percent: u64, when: &str) {
    let mut c = std::process::Command::new(ramp_e2e::bin("ramp-sim"));
    c.arg("route")
        .arg("--kubeconfig")
        .arg(&env.kubeconfig)
        .args(["-n", &env.ns, "--host", HOST, "--path", "/legacy/items"])
        .args(["--requests", "1000", "-o", "json"]);
    let out = c.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_all_served(&r, stable, canary, when);
    assert_near(
        to_other(&r),
        25,
        &format!("{when}: /legacy to service-other"),
        &r,
    );
    let to_canary = count(&r["byPodTemplateHash"], |h| h == canary);
    assert_near(
        to_canary,
        75 * canary_percent / 100,
        &format!("{when}: /legacy to the canary"),
        &r,
    );
}

#[test]
fn walk_through_as_a_gamma_httproute_with_weights_restored_exactly() {
    let env = Env::start("httproute");
    env.apply_dir("examples/httproute");
    let original = env.get("httproute", "route-demo").unwrap();
    let jason2 = env.get("httproute", "route-jason2").unwrap();
    let jason2_versions = env.record("httproute", "route-jason2");
    env.wait_phase(RO, "Healthy");
    env.wait_ready_replicas("workload-demo", 3);
    env.wait_ready_replicas("workload-other", 1);
    assert_jason2(&env, "before the rollout");

    // From now on no request may fail, not even between steps.
    let probes = [
        env.probe_routes(None, HOST, &[]),
        env.probe_routes(None, HOST, &["version: canary"]),
    ];
    env.kubectl(&["set", "env", "deployment/workload-demo", "version=canary"])
        .ok();

    // Step 1: the header to the canary, everything else as before.
    env.wait_step(RO, 1, "StepPaused");
    let (stable, canary) = env.rollout_hashes(RO);
    assert!(!stable.is_empty() && !canary.is_empty() && stable != canary);
    let r = env.route(HOST, &["version: canary"], 1000);
    assert_eq!(
        r["byPodTemplateHash"][&canary], 1000,
        "header → canary: {r}"
    );
    let r = env.route(HOST, &[], 1000);
    assert_eq!(
        r["byPodTemplateHash"][&stable], 1000,
        "others → stable: {r}"
    );
    assert_legacy(&env, &stable, &canary, 0, "step 1");
    assert_jason2(&env, "step 1");

    // Step 2: 50/50 of service-demo's share.
    env.approve(RO, 1);
    env.wait_step(RO, 2, "StepPaused");
    let r = env.route(HOST, &[], 1000);
    assert_all_served(&r, &stable, &canary, "step 2");
    assert_near(
        count(&r["byPodTemplateHash"], |h| h == canary),
        50,
        "step 2: to the canary",
        &r,
    );
    assert_legacy(&env, &stable, &canary, 50, "step 2");
    assert_jason2(&env, "step 2");

    // Step 3: 80% to the canary.
    env.approve(RO, 2);
    env.wait_step(RO, 3, "StepPaused");
    let r = env.route(HOST, &[], 1000);
    assert_all_served(&r, &stable, &canary, "step 3");
    assert_near(
        count(&r["byPodTemplateHash"], |h| h == canary),
        80,
        "step 3: to the canary",
        &r,
    );
    assert_legacy(&env, &stable, &canary, 80, "step 3");
    assert_jason2(&env, "step 3");

    // Finish: the HTTPRoute exactly as applied, weights included.
    env.approve(RO, 3);
    env.wait_phase(RO, "Healthy");
    env.assert_restored("httproute", "route-demo", &original);
    assert!(env.get("service", "service-demo-canary").is_none());
    assert!(env.get("deployment", "workload-demo-canary").is_none());
    let live = env.wait_example_rolled_out_in_mesh(&stable);
    // All of service-demo's share of /legacy on the new pods.
    assert_legacy(&env, &live, &live, 100, "after the rollout");
    assert_jason2(&env, "after the rollout");
    for p in probes {
        p.assert_no_failures("requests to service-demo during the rollout", 20);
    }

    // The tester route was never written to.
    let seen = jason2_versions.finish();
    assert_eq!(seen.len(), 1, "route-jason2 never changed: {seen:#?}");
    env.assert_restored("httproute", "route-jason2", &jason2);
    assert_eq!(
        env.get("httproute", "route-jason2").unwrap()["metadata"]["resourceVersion"],
        jason2["metadata"]["resourceVersion"]
    );
}

trait MeshRollout {
    fn wait_example_rolled_out_in_mesh(&self, old_hash: &str) -> String;
}

impl MeshRollout for Env {
    /// Like [`Env::wait_example_rolled_out_from`], with the requests sent from
    /// inside the mesh (the HTTPRoute is attached to the Service, not a gateway).
    fn wait_example_rolled_out_in_mesh(&self, old_hash: &str) -> String {
        let mut live = String::new();
        self.wait_until(
            "workload-demo runs 3 pods of the new template and gets all traffic",
            Duration::from_secs(60),
            |e| {
                let d = e.get("deployment", "workload-demo").unwrap();
                if d["spec"]["paused"] == true {
                    return false;
                }
                let hashes = e.pod_hashes("workload-demo");
                let Some((hash, 3)) = hashes.iter().next() else {
                    return false;
                };
                if hashes.len() != 1 || hash == old_hash {
                    return false;
                }
                live = hash.clone();
                e.route(HOST, &[], 200)["byPodTemplateHash"][hash] == 200
            },
        );
        live
    }
}
