//! Scenario 1: the walk-through users know from Kruise Rollout's Istio guide,
//! with routing checked by sending requests through the embedded mesh.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::time::Duration;

use ramp_e2e::{Env, count};
use serde_json::{Value, json};

const RO: &str = "rollouts-demo";
/// vs-demo is bound to this gateway: requests enter through it.
const GW: Option<&str> = Some("simple-gateway");

/// Approve the paused step with the guarded status patch `kubectl ramp approve` sends.
fn approve(env: &Env, step: i64) {
    let out = env.approve_try(RO, step);
    assert!(
        out.status.success(),
        "approving step {step} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn vs_http(env: &Env) -> Value {
    env.get("virtualservice", "vs-demo").expect("vs-demo")["spec"]["http"].clone()
}

fn hashes(env: &Env) -> (String, String) {
    let s = env.rollout_status(RO);
    let c = &s["canaryStatus"];
    (
        c["stableRevision"].as_str().unwrap_or_default().to_string(),
        c["podTemplateHash"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

#[test]
fn walk_through_header_then_weights_then_restore() {
    let env = Env::start("walkthrough");
    env.apply_dir("examples/canary-istio");
    let original_vs = env.get("virtualservice", "vs-demo").unwrap();
    env.wait_phase(RO, "Healthy");
    env.wait_until(
        "workload-demo has 3 ready pods",
        Duration::from_secs(30),
        |e| {
            e.get("deployment", "workload-demo")
                .is_some_and(|d| d["status"]["readyReplicas"] == 3)
        },
    );

    // Change the pod template: the webhook pauses the Deployment in the same write.
    env.kubectl(&["set", "env", "deployment/workload-demo", "version=canary"])
        .ok();
    let d = env.get("deployment", "workload-demo").unwrap();
    assert_eq!(
        d["spec"]["paused"], true,
        "paused by the webhook in the same write"
    );
    let owned: Vec<Value> = env
        .list("replicasets", Some("app=demo"))
        .into_iter()
        .filter(|rs| rs["metadata"]["ownerReferences"][0]["name"] == "workload-demo")
        .collect();
    assert_eq!(
        owned.len(),
        1,
        "no ReplicaSet of workload-demo for the new template"
    );

    // Step 1: header match to one canary pod.
    env.wait_step(RO, 1, "StepPaused");
    let canary = env
        .get("deployment", "workload-demo-canary")
        .expect("canary Deployment");
    assert_eq!(canary["status"]["readyReplicas"], 1);
    assert!(env.get("service", "service-demo-canary").is_some());
    assert_eq!(
        vs_http(&env),
        json!([
            {"match": [{"headers": {"version": {"exact": "canary"}}}],
             "route": [{"destination": {"host": "service-demo-canary"}}]},
            {"route": [{"destination": {"host": "service-demo"}}]}
        ])
    );
    let (stable, canary_hash) = hashes(&env);
    assert!(!stable.is_empty() && !canary_hash.is_empty() && stable != canary_hash);
    let r = env.route_via(GW, "service-demo", &["version: canary"], 500);
    assert_eq!(r["byPodTemplateHash"][&canary_hash], 500, "{r}");
    let r = env.route_via(GW, "service-demo", &[], 500);
    assert_eq!(r["byPodTemplateHash"][&stable], 500, "{r}");

    // Step 2: 50/50.
    approve(&env, 1);
    env.wait_step(RO, 2, "StepPaused");
    let http = vs_http(&env);
    assert_eq!(http.as_array().unwrap().len(), 1, "{http}");
    let weights: Vec<(String, i64)> = http[0]["route"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["destination"]["host"].as_str().unwrap().to_string(),
                d["weight"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        weights,
        vec![
            ("service-demo".to_string(), 50),
            ("service-demo-canary".to_string(), 50)
        ]
    );
    let r = env.route_via(GW, "service-demo", &[], 1000);
    let to_canary = count(&r["byPodTemplateHash"], |h| h == canary_hash);
    assert!((450..=550).contains(&to_canary), "50% ±5%: {r}");
    assert_eq!(
        count(&r["byPodTemplateHash"], |h| h == stable) + to_canary,
        1000
    );

    // Step 3: 20/80.
    approve(&env, 2);
    env.wait_step(RO, 3, "StepPaused");
    let http = vs_http(&env);
    assert_eq!(http[0]["route"][0]["weight"], 20);
    assert_eq!(http[0]["route"][1]["weight"], 80);

    // Finish: everything restored, the Deployment on the new template.
    approve(&env, 3);
    env.wait_phase(RO, "Healthy");
    let vs = env.get("virtualservice", "vs-demo").unwrap();
    assert_eq!(vs["spec"], original_vs["spec"]);
    assert!(
        vs["metadata"]["annotations"]
            .get(ramp_api::names::ORIGINAL_SPEC_ANNOTATION)
            .is_none()
    );
    assert!(env.get("service", "service-demo-canary").is_none());
    assert!(env.get("deployment", "workload-demo-canary").is_none());
    let d = env.get("deployment", "workload-demo").unwrap();
    assert_ne!(d["spec"]["paused"], true);
    env.wait_until(
        "all traffic reaches pods of the new template",
        Duration::from_secs(30),
        |e| {
            // The ReplicaSets of workload-demo that still have pods: only the new one.
            let live: Vec<String> = e
                .list("replicasets", Some("app=demo"))
                .into_iter()
                .filter(|rs| rs["metadata"]["ownerReferences"][0]["name"] == "workload-demo")
                .filter(|rs| rs["status"]["replicas"].as_i64().unwrap_or(0) > 0)
                .map(|rs| {
                    rs["metadata"]["labels"]["pod-template-hash"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string()
                })
                .collect();
            if live.len() != 1 || live[0] == stable {
                return false;
            }
            let r = e.route_via(GW, "service-demo", &[], 200);
            r["byPodTemplateHash"][&live[0]] == 200
        },
    );
    let svc = env.get("service", "service-demo").unwrap();
    assert_eq!(svc["spec"]["selector"], json!({"app": "demo"}));
}
