//! Scenario 4: deleting the Rollout at step 2, and setting `spec.disabled`
//! at step 2, both put everything back the way it was and let the
//! Deployment roll out natively; a disabled Rollout stays, phase Disabled.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use ramp_e2e::Env;
use serde_json::{Value, json};

const RO: &str = "rollouts-demo";

/// Nothing of ramp's is left on the Deployment: no label or annotation.
fn assert_released(env: &Env) {
    let d = env.get("deployment", "workload-demo").unwrap();
    for key in ["labels", "annotations"] {
        if let Some(m) = d["metadata"][key].as_object() {
            assert!(
                m.keys().all(|k| !k.starts_with(ramp_api::names::GROUP)),
                "workload-demo keeps ramp's {key}: {m:?}"
            );
        }
    }
}

fn template_env(env: &Env, hash: &str) -> Vec<Value> {
    env.list("pods", Some(&format!("pod-template-hash={hash}")))
        .iter()
        .map(|p| p["spec"]["containers"][0]["env"].clone())
        .collect()
}

/// After ramp let go: a further template change is not held by the webhook
/// and rolls out natively.
fn assert_native_rollout(env: &Env, from_hash: &str) {
    env.kubectl(&["set", "env", "deployment/workload-demo", "version=v4"])
        .ok();
    let d = env.get("deployment", "workload-demo").unwrap();
    assert_ne!(
        d["spec"]["paused"], true,
        "a released Deployment is not paused by ramp's webhook"
    );
    let hash = env.wait_example_rolled_out_from(from_hash);
    assert_eq!(
        template_env(env, &hash),
        vec![json!([{"name": "version", "value": "v4"}]); 3]
    );
    assert!(env.get("deployment", "workload-demo-canary").is_none());
}

#[test]
fn deleting_the_rollout_at_step_2_restores_everything() {
    let env = Env::start("delete");
    let original_vs = env.start_canary_example();
    let stable = env
        .pod_hashes("workload-demo")
        .keys()
        .next()
        .unwrap()
        .clone();
    env.example_to_step(2);
    let svc = env.get("service", "service-demo").unwrap();
    assert_ne!(
        svc["spec"]["selector"],
        json!({"app": "demo"}),
        "at step 2 ramp narrowed the stable Service to the stable pods"
    );

    env.kubectl(&["delete", "rollout", RO, "--wait=false"]).ok();
    env.wait_routing_restored_first("the Rollout is gone", &original_vs, |e| {
        e.get("rollout", RO).is_none()
    });
    env.assert_example_restored(&original_vs);
    assert_released(&env);

    // The Deployment is unpaused and rolls out the template it was given.
    let fresh = env.wait_example_rolled_out_from(&stable);
    assert_eq!(
        template_env(&env, &fresh),
        vec![json!([{"name": "version", "value": "canary"}]); 3]
    );
    // The operator records events.k8s.io/v1 Events (the kube-rs recorder).
    let events = env
        .kubectl(&["get", "events.events.k8s.io", "-o", "json"])
        .ok();
    let events: Value = serde_json::from_str(&events).unwrap();
    assert!(
        events["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| { e["reason"] == "Terminating" && e["regarding"]["name"] == RO }),
        "a Terminating event on the Rollout was recorded: {events}"
    );

    assert_native_rollout(&env, &fresh);
}

#[test]
fn disabling_the_rollout_at_step_2_restores_everything_and_keeps_it() {
    let env = Env::start("disable");
    let original_vs = env.start_canary_example();
    let stable = env
        .pod_hashes("workload-demo")
        .keys()
        .next()
        .unwrap()
        .clone();
    env.example_to_step(2);

    env.kubectl(&[
        "patch",
        "rollout",
        RO,
        "--type=merge",
        "-p",
        r#"{"spec":{"disabled":true}}"#,
    ])
    .ok();
    env.wait_routing_restored_first("the Rollout is Disabled", &original_vs, |e| {
        e.rollout_status(RO)["phase"] == "Disabled"
    });
    env.assert_example_restored(&original_vs);
    assert_released(&env);
    let ro = env.get("rollout", RO).expect("the Rollout is kept");
    assert_eq!(ro["spec"]["disabled"], true);
    let progressing = ro["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Progressing")
        .unwrap()
        .clone();
    assert_eq!(progressing["reason"], "Disabled", "{progressing}");

    let fresh = env.wait_example_rolled_out_from(&stable);
    assert_eq!(
        template_env(&env, &fresh),
        vec![json!([{"name": "version", "value": "canary"}]); 3]
    );

    // Disabled means hands off: the next change rolls out natively and the
    // Rollout stays Disabled, without a canary.
    assert_native_rollout(&env, &fresh);
    assert_eq!(env.rollout_status(RO)["phase"], "Disabled");
    env.assert_example_restored(&original_vs);
}
