//! Conflicting VirtualServices (issue #8, Istio IST0109): two
//! VirtualServices claim the stable Service's host, so which one the mesh
//! applies is undefined and a change ramp makes to one may not take effect.
//! The Rollout says so — naming both objects and how to merge them — and
//! changes nothing: not the VirtualServices, not the Service, not the
//! Deployment (a new template is held, no canary is created). Once one of
//! them is deleted the rollout proceeds.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::time::Duration;

use ramp_api::names::CONTROLLED_BY_LABEL;
use ramp_e2e::{Env, repo_root};
use serde_json::{Value, json};

const RO: &str = "rollouts-demo";

fn example(file: &str) -> String {
    std::fs::read_to_string(repo_root().join("examples/canary-istio").join(file)).unwrap()
}

/// The VirtualService the Rollout names: mesh routing for service-demo.
const VS_DEMO: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: vs-demo
spec:
  hosts: [service-demo]
  http:
    - route:
        - destination:
            host: service-demo
"#;

/// Another one for the same host (its FQDN), e.g. a team adding a timeout.
fn vs_timeouts(ns: &str) -> String {
    format!(
        r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: vs-demo-timeouts
spec:
  hosts: [service-demo.{ns}.svc.cluster.local]
  http:
    - timeout: 5s
      route:
        - destination:
            host: service-demo.{ns}.svc.cluster.local
"#
    )
}

fn progressing(env: &Env) -> Value {
    env.rollout_status(RO)["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Progressing")
        .cloned()
        .unwrap_or_default()
}

/// A text names both VirtualServices, the host and says how to merge them.
fn names_the_conflict(text: &str, host: &str) -> bool {
    text.contains("VirtualService vs-demo ")
        && text.contains("VirtualService vs-demo-timeouts")
        && text.contains(host)
        && text.contains("IST0109")
        && text.contains("merge the http routes of")
}

fn reports_conflict(env: &Env, host: &str) {
    env.wait_until(
        "the Rollout reports the two VirtualServices",
        Duration::from_secs(30),
        |e| {
            let c = progressing(e);
            c["reason"] == "ConflictingVirtualServices"
                && c["message"]
                    .as_str()
                    .is_some_and(|m| names_the_conflict(m, host))
                && e.rollout_status(RO)["message"]
                    .as_str()
                    .is_some_and(|m| names_the_conflict(m, host))
        },
    );
    env.wait_until(
        "a Warning Event names the two VirtualServices",
        Duration::from_secs(30),
        |e| {
            e.events().iter().any(|ev| {
                ev["type"] == "Warning"
                    && ev["object"] == format!("Rollout/{RO}")
                    && ev["message"]
                        .as_str()
                        .is_some_and(|m| names_the_conflict(m, host))
            })
        },
    );
}

/// Everything of an object a write would change: spec, labels, annotations
/// and the resourceVersion.
fn version_of(env: &Env, kind: &str, name: &str) -> Value {
    let o = env.get(kind, name).unwrap();
    json!({
        "spec": o["spec"],
        "labels": o["metadata"]["labels"],
        "annotations": o["metadata"]["annotations"],
        "resourceVersion": o["metadata"]["resourceVersion"],
    })
}

fn no_canary_objects(env: &Env) {
    assert!(env.get("deployment", "workload-demo-canary").is_none());
    assert!(env.get("service", "service-demo-canary").is_none());
    env.assert_only_one_replicaset_has_pods("app=demo", 3);
}

#[test]
fn two_virtual_services_for_one_host_are_reported_and_nothing_is_touched() {
    let env = Env::start("conflict");
    let host = format!("service-demo.{}.svc.cluster.local", env.ns);
    env.apply(&example("deployment.yaml"));
    env.apply(&example("service.yaml"));
    env.apply(VS_DEMO);
    env.apply(&vs_timeouts(&env.ns));
    env.wait_ready_replicas("workload-demo", 3);

    // The mesh itself flags the two (what istioctl analyze would say).
    let r = env.route("service-demo", &[], 100);
    let conflicts = r["conflicts"].to_string();
    assert!(
        conflicts.contains("vs-demo") && conflicts.contains("vs-demo-timeouts"),
        "the mesh reports IST0109: {r}"
    );

    let vs_before = version_of(&env, "virtualservice", "vs-demo");
    let other_before = version_of(&env, "virtualservice", "vs-demo-timeouts");
    let svc_before = version_of(&env, "service", "service-demo");
    let deployment_before = env.get("deployment", "workload-demo").unwrap();

    env.apply(&example("rollout.yaml"));
    reports_conflict(&env, &host);
    assert_ne!(env.rollout_status(RO)["phase"], "Progressing");

    // Nothing changed but the control label on the Deployment.
    let d = env.get("deployment", "workload-demo").unwrap();
    assert_eq!(d["metadata"]["labels"][CONTROLLED_BY_LABEL], RO);
    assert_eq!(
        d["spec"], deployment_before["spec"],
        "not paused, not changed"
    );
    let unchanged = |env: &Env, when: &str| {
        assert_eq!(
            version_of(env, "virtualservice", "vs-demo"),
            vs_before,
            "{when}: vs-demo never written"
        );
        assert_eq!(
            version_of(env, "virtualservice", "vs-demo-timeouts"),
            other_before,
            "{when}: vs-demo-timeouts never written"
        );
        assert_eq!(
            version_of(env, "service", "service-demo"),
            svc_before,
            "{when}: service-demo never written"
        );
    };
    unchanged(&env, "after the Rollout was applied");
    no_canary_objects(&env);

    // A new template meanwhile is held: paused by the webhook, no pod of
    // it, no canary, routing untouched, the conflict still reported.
    env.kubectl(&["set", "env", "deployment/workload-demo", "version=canary"])
        .ok();
    assert_eq!(
        env.get("deployment", "workload-demo").unwrap()["spec"]["paused"],
        true
    );
    std::thread::sleep(Duration::from_secs(3));
    reports_conflict(&env, &host);
    no_canary_objects(&env);
    unchanged(&env, "with a new template held");
    let r = env.route("service-demo", &[], 1000);
    assert_eq!(r["byPod"].as_object().unwrap().len(), 3, "{r}");
    assert_eq!(r["requests"], 1000);

    // Merged by deleting the other one: the rollout proceeds to step 1.
    env.kubectl(&["delete", "virtualservice", "vs-demo-timeouts"])
        .ok();
    env.wait_step(RO, 1, "StepPaused");
    let (stable, canary) = env.rollout_hashes(RO);
    let r = env.route("service-demo", &["version: canary"], 1000);
    assert_eq!(r["byPodTemplateHash"][&canary], 1000, "{r}");
    let r = env.route("service-demo", &[], 1000);
    assert_eq!(r["byPodTemplateHash"][&stable], 1000, "{r}");
    assert_eq!(r["conflicts"], json!([]), "{r}");
    env.wait_until("the condition clears", Duration::from_secs(30), |e| {
        !e.rollout_status(RO).to_string().contains("IST0109")
    });
}

#[test]
fn a_conflicting_virtual_service_appearing_mid_rollout_holds_the_step() {
    let env = Env::start("conflict-mid");
    let host = format!("service-demo.{}.svc.cluster.local", env.ns);
    env.apply(&example("deployment.yaml"));
    env.apply(&example("service.yaml"));
    env.apply(VS_DEMO);
    let original = env.get("virtualservice", "vs-demo").unwrap();
    env.apply(&example("rollout.yaml"));
    env.wait_phase(RO, "Healthy");
    env.wait_ready_replicas("workload-demo", 3);
    env.kubectl(&["set", "env", "deployment/workload-demo", "version=canary"])
        .ok();
    env.wait_step(RO, 1, "StepPaused");
    env.approve(RO, 1);
    env.wait_step(RO, 2, "StepPaused");
    let (stable, canary) = env.rollout_hashes(RO);
    let split = |env: &Env| {
        let r = env.route("service-demo", &[], 1000);
        let to_canary = r["byPodTemplateHash"][&canary].as_u64().unwrap_or(0);
        let to_stable = r["byPodTemplateHash"][&stable].as_u64().unwrap_or(0);
        assert_eq!(to_canary + to_stable, 1000, "{r}");
        to_canary
    };
    assert!((450..=550).contains(&split(&env)), "50% at step 2");

    // Someone adds a second VirtualService for the host at step 2.
    env.apply(&vs_timeouts(&env.ns));
    reports_conflict(&env, &host);
    let vs_at_step_2 = version_of(&env, "virtualservice", "vs-demo");
    let other = version_of(&env, "virtualservice", "vs-demo-timeouts");
    let canary_at_step_2 = version_of(&env, "deployment", "workload-demo-canary");

    // The approval is taken, but step 3 does not start while the conflict
    // lasts: no traffic moved, the canary not scaled, nothing written.
    env.approve(RO, 2);
    env.wait_step(RO, 2, "StepReady");
    std::thread::sleep(Duration::from_secs(3));
    reports_conflict(&env, &host);
    let s = env.rollout_status(RO);
    assert_eq!(s["canaryStatus"]["currentStepIndex"], 2, "{s:#}");
    assert_eq!(s["canaryStatus"]["currentStepState"], "StepReady", "{s:#}");
    assert_eq!(version_of(&env, "virtualservice", "vs-demo"), vs_at_step_2);
    assert_eq!(
        version_of(&env, "virtualservice", "vs-demo-timeouts"),
        other
    );
    assert_eq!(
        version_of(&env, "deployment", "workload-demo-canary"),
        canary_at_step_2,
        "the canary is not scaled for step 3"
    );

    // Merged: step 3 goes on with the approval already given.
    env.kubectl(&["delete", "virtualservice", "vs-demo-timeouts"])
        .ok();
    env.wait_step(RO, 3, "StepPaused");
    assert!((750..=850).contains(&split(&env)), "80% at step 3");
    env.approve(RO, 3);
    env.wait_phase(RO, "Healthy");
    env.assert_restored("virtualservice", "vs-demo", &original);
}
