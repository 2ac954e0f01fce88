//! Scenario 9: bad input.
//!
//! - An invalid Rollout is rejected at `kubectl apply` by the validating
//!   webhook, with every field path in the message.
//! - A Rollout naming a missing Service or VirtualService says so at once (a
//!   `Progressing` condition and a Warning Event naming the object) and
//!   changes nothing: ramp only labels the Deployment it controls, so that a
//!   template change made meanwhile is held (paused, no new pods) instead of
//!   rolling out without a canary. Once the object exists the rollout goes on.
//! - A canary that never becomes ready waits at StepUpgrade with the pod's
//!   reason in `message`; `kubectl ramp abort` puts all traffic back on the
//!   stable pods and `kubectl ramp undo` then removes everything.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::time::Duration;

use ramp_api::names::{
    CONTROLLED_BY_LABEL, MANAGED_BY_ROLLOUT_LABEL, ORIGINAL_SPEC_ANNOTATION,
    STABLE_SELECTOR_ANNOTATION,
};
use ramp_e2e::{Env, repo_root};
use serde_json::{Value, json};

const RO: &str = "rollouts-demo";
const GW: Option<&str> = Some("simple-gateway");

fn example(file: &str) -> String {
    std::fs::read_to_string(repo_root().join("examples/canary-istio").join(file)).unwrap()
}

/// A Rollout with the walk-through's routing and the given steps.
fn rollout_with_steps(steps: &str) -> String {
    format!(
        r#"apiVersion: rollouts.ramp.dev/v1beta1
kind: Rollout
metadata:
  name: rollouts-demo
spec:
  workloadRef: {{apiVersion: apps/v1, kind: Deployment, name: workload-demo}}
  strategy:
    canary:
      steps:
{steps}
      trafficRoutings:
        - service: service-demo
          customNetworkRefs:
            - {{apiVersion: networking.istio.io/v1beta1, kind: VirtualService, name: vs-demo}}
"#
    )
}

/// Apply a manifest and return the failed command's stderr (panics if it succeeds).
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

#[test]
fn an_invalid_rollout_is_rejected_at_apply_with_field_paths() {
    let env = Env::start("bad-spec");
    let paths = [
        "spec.strategy.canary.steps[0].matches[0].headers[0].name",
        "spec.strategy.canary.steps[0].matches[0].headers[1].value",
        "spec.strategy.canary.steps[1].traffic",
        "spec.strategy.canary.steps[1].replicas",
    ];
    // All four problems at once: each is reported with its path.
    let all = rollout_with_steps(
        r#"        - replicas: 2
          matches:
            - headers:
                - {type: Exact, name: "", value: canary}
                - {type: RegularExpression, name: user, value: "([a-z"}
        - {traffic: "150%", replicas: 1}"#,
    );
    let err = apply_rejected(&env, &all);
    assert!(err.contains("denied the request"), "{err}");
    for p in paths {
        assert!(err.contains(p), "the message names {p}: {err}");
    }
    assert!(err.contains("150%") && err.contains("([a-z"), "{err}");

    // Each problem alone is enough to be rejected, and names only its field.
    let one_by_one = [
        (
            paths[0],
            r#"        - replicas: 1
          matches:
            - headers: [{type: Exact, name: "", value: canary}]"#,
        ),
        (
            paths[1],
            r#"        - replicas: 1
          matches:
            - headers:
                - {type: Exact, name: version, value: canary}
                - {type: RegularExpression, name: user, value: "([a-z"}"#,
        ),
        (
            paths[2],
            r#"        - {traffic: "10%", replicas: 1}
        - {traffic: "150%", replicas: 1}"#,
        ),
        (
            paths[3],
            r#"        - {traffic: "20%", replicas: 2}
        - {traffic: "50%", replicas: 1}"#,
        ),
    ];
    for (path, steps) in one_by_one {
        let err = apply_rejected(&env, &rollout_with_steps(steps));
        assert!(err.contains(path), "the message names {path}: {err}");
        for other in paths.iter().filter(|p| **p != path) {
            assert!(!err.contains(other), "only {path} is wrong: {err}");
        }
    }
    assert!(
        env.get("rollout", RO).is_none(),
        "no invalid Rollout was stored"
    );
    // The same Rollout with the problems fixed is accepted.
    env.apply(&rollout_with_steps(
        r#"        - replicas: 1
          matches:
            - headers:
                - {type: Exact, name: version, value: canary}
                - {type: RegularExpression, name: user, value: "[a-z]+"}
        - {traffic: "50%", replicas: 2}"#,
    ));
    assert!(env.get("rollout", RO).is_some());
}

/// The condition and the Warning Event name the missing object.
fn reports_missing(env: &Env, what: &str) {
    let needle = format!("{what} not found in namespace {}", env.ns);
    env.wait_until(
        &format!("the Rollout reports {what} missing"),
        Duration::from_secs(30),
        |e| {
            let s = e.rollout_status(RO);
            let cond = s["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["type"] == "Progressing")
                .cloned()
                .unwrap_or_default();
            cond["reason"] == "ObjectNotFound"
                && cond["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(&needle))
                && s["message"].as_str().is_some_and(|m| m.contains(&needle))
        },
    );
    env.wait_until(
        &format!("a Warning Event names {what}"),
        Duration::from_secs(30),
        |e| {
            e.events().iter().any(|ev| {
                ev["type"] == "Warning"
                    && ev["object"] == format!("Rollout/{RO}")
                    && ev["message"].as_str().is_some_and(|m| m.contains(&needle))
            })
        },
    );
}

/// Spec, labels and annotations of an object, for "nothing changed".
fn essence(v: &Value) -> Value {
    let mut annotations = v["metadata"]["annotations"].clone();
    if let Some(a) = annotations.as_object_mut() {
        // Written by the Deployment controller.
        a.remove("deployment.kubernetes.io/revision");
    }
    json!({"spec": v["spec"], "labels": v["metadata"]["labels"], "annotations": annotations})
}

fn no_canary_objects(env: &Env) {
    assert!(env.get("deployment", "workload-demo-canary").is_none());
    assert!(env.get("service", "service-demo-canary").is_none());
    assert!(
        env.list("pods", Some(&format!("{MANAGED_BY_ROLLOUT_LABEL}={RO}")))
            .is_empty()
    );
}

#[test]
fn a_rollout_naming_a_missing_service_says_so_and_changes_nothing() {
    let env = Env::start("missing-svc");
    env.apply(&example("deployment.yaml"));
    env.apply(&example("virtualservice.yaml"));
    env.wait_until(
        "workload-demo has 3 ready pods",
        Duration::from_secs(30),
        |e| {
            e.get("deployment", "workload-demo")
                .is_some_and(|d| d["status"]["readyReplicas"] == 3)
        },
    );
    let deployment = env.get("deployment", "workload-demo").unwrap();
    let vs = env.get("virtualservice", "vs-demo").unwrap();
    env.apply(&example("rollout.yaml"));
    reports_missing(&env, "Service service-demo");

    // Nothing changed but the control label on the Deployment.
    let d = env.get("deployment", "workload-demo").unwrap();
    assert_eq!(d["metadata"]["labels"][CONTROLLED_BY_LABEL], RO);
    assert_eq!(d["spec"], deployment["spec"], "not paused, not changed");
    assert_eq!(
        essence(&env.get("virtualservice", "vs-demo").unwrap()),
        essence(&vs)
    );
    no_canary_objects(&env);
    assert_ne!(env.rollout_status(RO)["phase"], "Progressing");

    // A new template meanwhile is held: paused, no pod of it, no canary.
    env.kubectl(&["set", "env", "deployment/workload-demo", "version=canary"])
        .ok();
    let d = env.get("deployment", "workload-demo").unwrap();
    assert_eq!(d["spec"]["paused"], true);
    std::thread::sleep(Duration::from_secs(3));
    reports_missing(&env, "Service service-demo");
    env.assert_only_one_replicaset_has_pods("app=demo", 3);
    no_canary_objects(&env);
    assert_eq!(
        essence(&env.get("virtualservice", "vs-demo").unwrap()),
        essence(&vs)
    );

    // The Service appears: the rollout goes on to step 1.
    env.apply(&example("service.yaml"));
    env.wait_step(RO, 1, "StepPaused");
    let s = env.rollout_status(RO);
    let hash = s["canaryStatus"]["podTemplateHash"].as_str().unwrap();
    let r = env.route_via(GW, "service-demo", &["version: canary"], 100);
    assert_eq!(r["byPodTemplateHash"][hash], 100, "{r}");
}

#[test]
fn a_rollout_naming_a_missing_virtual_service_says_so_and_changes_nothing() {
    let env = Env::start("missing-vs");
    env.apply(&example("deployment.yaml"));
    env.apply(&example("service.yaml"));
    env.wait_until(
        "workload-demo has 3 ready pods",
        Duration::from_secs(30),
        |e| {
            e.get("deployment", "workload-demo")
                .is_some_and(|d| d["status"]["readyReplicas"] == 3)
        },
    );
    let deployment = env.get("deployment", "workload-demo").unwrap();
    let svc = env.get("service", "service-demo").unwrap();
    env.apply(&example("rollout.yaml"));
    reports_missing(&env, "VirtualService vs-demo");

    let d = env.get("deployment", "workload-demo").unwrap();
    assert_eq!(d["spec"], deployment["spec"], "not paused, not changed");
    let s = env.get("service", "service-demo").unwrap();
    assert_eq!(essence(&s), essence(&svc));
    assert!(
        s["metadata"]["annotations"]
            .get(STABLE_SELECTOR_ANNOTATION)
            .is_none()
    );
    no_canary_objects(&env);
    assert_ne!(env.rollout_status(RO)["phase"], "Progressing");

    // Once it exists, the Rollout is Healthy and the problem is gone.
    env.apply(&example("virtualservice.yaml"));
    env.wait_phase(RO, "Healthy");
    env.wait_until("the condition clears", Duration::from_secs(30), |e| {
        !e.rollout_status(RO).to_string().contains("not found")
    });
    let vs = env.get("virtualservice", "vs-demo").unwrap();
    assert!(
        vs["metadata"]["annotations"]
            .get(ORIGINAL_SPEC_ANNOTATION)
            .is_none()
    );
}

/// Walk a canary that never becomes ready: it waits at StepUpgrade with the
/// pod's reason, abort puts traffic back, undo removes everything.
fn never_ready(env: &Env, patch: &str, reason: &str) {
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
    let original_vs = env.get("virtualservice", "vs-demo").unwrap();
    let original_svc = env.get("service", "service-demo").unwrap();
    let stable = env.rollout_status(RO)["canaryStatus"]["stableRevision"]
        .as_str()
        .unwrap()
        .to_string();
    env.kubectl(&["patch", "deployment", "workload-demo", "-p", patch])
        .ok();

    env.wait_until(
        &format!("step 1 waits at StepUpgrade with {reason} in its message"),
        Duration::from_secs(60),
        |e| {
            let c = &e.rollout_status(RO)["canaryStatus"];
            c["currentStepIndex"] == 1
                && c["currentStepState"] == "StepUpgrade"
                && c["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(reason) && m.contains("workload-demo-canary"))
        },
    );
    // It stays there: no routing change towards a canary that is not ready.
    std::thread::sleep(Duration::from_secs(4));
    let s = env.rollout_status(RO);
    assert_eq!(s["canaryStatus"]["currentStepState"], "StepUpgrade", "{s}");
    assert!(s["message"].as_str().unwrap().contains(reason), "{s}");
    assert_eq!(
        env.get("virtualservice", "vs-demo").unwrap()["spec"],
        original_vs["spec"]
    );
    let r = env.route_via(GW, "service-demo", &["version: canary"], 200);
    assert_eq!(r["byPodTemplateHash"][&stable], 200, "{r}");

    // Abort: traffic stays on stable, the canary goes to 0, the Deployment stays paused.
    let out = env.ramp(&["abort", RO]).ok();
    assert!(out.contains(RO), "{out}");
    env.wait_phase(RO, "Aborted");
    env.wait_until(
        "the canary is scaled to 0 with no pods left",
        Duration::from_secs(60),
        |e| {
            e.get("deployment", "workload-demo-canary")
                .is_none_or(|c| c["spec"]["replicas"] == 0)
                && e.list("pods", Some(&format!("{MANAGED_BY_ROLLOUT_LABEL}={RO}")))
                    .is_empty()
        },
    );
    let vs = env.get("virtualservice", "vs-demo").unwrap();
    assert_eq!(vs["spec"], original_vs["spec"]);
    assert_eq!(
        env.get("deployment", "workload-demo").unwrap()["spec"]["paused"],
        true
    );
    let r = env.route_via(GW, "service-demo", &[], 200);
    assert_eq!(r["byPodTemplateHash"][&stable], 200, "{r}");

    // Undo: the template goes back, ramp removes everything it made.
    env.ramp(&["undo", RO]).ok();
    env.wait_phase(RO, "Healthy");
    env.wait_until("the canary is gone", Duration::from_secs(60), |e| {
        e.get("deployment", "workload-demo-canary").is_none()
            && e.get("service", "service-demo-canary").is_none()
    });
    let vs = env.get("virtualservice", "vs-demo").unwrap();
    assert_eq!(vs["spec"], original_vs["spec"]);
    assert!(
        vs["metadata"]["annotations"]
            .get(ORIGINAL_SPEC_ANNOTATION)
            .is_none()
    );
    let svc = env.get("service", "service-demo").unwrap();
    assert_eq!(svc["spec"]["selector"], original_svc["spec"]["selector"]);
    let d = env.get("deployment", "workload-demo").unwrap();
    assert_ne!(d["spec"]["paused"], true);
    assert_eq!(
        env.rollout_status(RO)["canaryStatus"]["stableRevision"],
        stable.as_str()
    );
    env.wait_until(
        "all traffic on the stable pods, 3 ready",
        Duration::from_secs(30),
        |e| {
            e.get("deployment", "workload-demo")
                .is_some_and(|d| d["status"]["readyReplicas"] == 3)
                && e.route_via(GW, "service-demo", &[], 100)["byPodTemplateHash"][&stable] == 100
        },
    );
}

#[test]
fn a_canary_that_never_becomes_ready_waits_with_the_pod_reason_and_abort_restores() {
    let env = Env::start("never-ready");
    never_ready(
        &env,
        r#"{"spec":{"template":{"metadata":{"annotations":{"sim.ramp.dev/never-ready":"true"}}}}}"#,
        "CrashLoopBackOff",
    );
}

#[test]
fn a_canary_whose_image_cannot_be_pulled_waits_with_the_pod_reason_and_abort_restores() {
    let env = Env::start("bad-image");
    never_ready(
        &env,
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"main","image":"nginx:bad"}]}}}}"#,
        "ImagePullBackOff",
    );
}
