//! Scenario 6: the operator is killed with SIGKILL in every step state and
//! started again. The rollout continues where it was: no step is skipped or
//! repeated (checked on every version of the Rollout and of the
//! VirtualService recorded by a watch), routing is right at each pause, and
//! nothing of ramp's is left behind at the end.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::time::Duration;

use ramp_e2e::{Env, count};
use serde_json::{Value, json};

const RO: &str = "rollouts-demo";
const GW: Option<&str> = Some("simple-gateway");

/// Approve `step` with the guarded status patch `kubectl ramp approve` sends.
fn approve(env: &Env, step: i64) {
    let patch = json!([
        {"op": "test", "path": "/status/canaryStatus/currentStepIndex", "value": step},
        {"op": "test", "path": "/status/canaryStatus/currentStepState", "value": "StepPaused"},
        {"op": "replace", "path": "/status/canaryStatus/currentStepState", "value": "StepReady"}
    ]);
    env.kubectl(&[
        "patch",
        "rollout",
        RO,
        "--subresource=status",
        "--type=json",
        "-p",
        &patch.to_string(),
    ])
    .ok();
}

/// The VirtualService's `spec.http` in each phase of the walk-through, in order.
fn shapes() -> Vec<(&'static str, Value)> {
    let weights = |stable: i64, canary: i64| {
        json!([{"route": [
            {"destination": {"host": "service-demo"}, "weight": stable},
            {"destination": {"host": "service-demo-canary"}, "weight": canary}
        ]}])
    };
    vec![
        (
            "original",
            json!([{"route": [{"destination": {"host": "service-demo"}}]}]),
        ),
        (
            "step 1 (header)",
            json!([
                {"match": [{"headers": {"version": {"exact": "canary"}}}],
                 "route": [{"destination": {"host": "service-demo-canary"}}]},
                {"route": [{"destination": {"host": "service-demo"}}]}
            ]),
        ),
        ("step 2 (50/50)", weights(50, 50)),
        ("step 3 (20/80)", weights(20, 80)),
    ]
}

fn shape_name(http: &Value) -> Option<&'static str> {
    shapes()
        .into_iter()
        .find(|(_, s)| s == http)
        .map(|(n, _)| n)
}

fn vs_http(env: &Env) -> Value {
    env.get("virtualservice", "vs-demo").expect("vs-demo")["spec"]["http"].clone()
}

fn state_rank(s: &str) -> i64 {
    match s {
        "BeforeStepUpgrade" => 0,
        "StepUpgrade" => 1,
        "StepTrafficRouting" => 2,
        "StepPaused" => 3,
        "StepReady" => 4,
        "Completed" => 5,
        other => panic!("unknown step state {other}"),
    }
}

fn finalising_rank(s: &str) -> i64 {
    match s {
        "RestoreRouting" => 0,
        "RestoreStableService" => 1,
        "DeleteCanaryService" => 2,
        "ResumeWorkload" => 3,
        "DeleteCanaryWorkload" => 4,
        "Done" => 5,
        other => panic!("unknown finalising step {other}"),
    }
}

fn step_of(env: &Env) -> (i64, String, String) {
    let s = env.rollout_status(RO);
    let c = &s["canaryStatus"];
    (
        c["currentStepIndex"].as_i64().unwrap_or(0),
        c["currentStepState"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        c["finalisingStep"].as_str().unwrap_or_default().to_string(),
    )
}

/// Kill and restart, logging where the rollout was.
fn crash(env: &mut Env, at: &str) {
    env.kill_operator();
    // Read after the kill: nothing moves the status while the operator is down.
    let phase = env.rollout_status(RO)["phase"].clone();
    eprintln!(
        "killed the operator {at}: status was {phase} {:?}",
        step_of(env)
    );
    env.start_operator();
    env.wait_operator_ready();
}

/// The rollout stays at `step` StepPaused for a while with a live operator.
fn stays_paused(env: &Env, step: i64) {
    for _ in 0..10 {
        let (i, state, _) = step_of(env);
        assert_eq!(
            (i, state.as_str()),
            (step, "StepPaused"),
            "a restarted operator must not move a paused step"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn killed_in_every_state_the_rollout_neither_skips_nor_repeats_a_step() {
    let mut env = Env::start("crash");
    env.apply_dir("examples/canary-istio");
    let original_vs = env.get("virtualservice", "vs-demo").unwrap();
    let original_svc = env.get("service", "service-demo").unwrap();
    env.wait_phase(RO, "Healthy");
    env.wait_until(
        "workload-demo has 3 ready pods",
        Duration::from_secs(30),
        |e| {
            e.get("deployment", "workload-demo")
                .is_some_and(|d| d["status"]["readyReplicas"] == 3)
        },
    );
    let rollout_history = env.record("rollout", RO);
    let vs_history = env.record("virtualservice", "vs-demo");

    // The new template; its pods take 4 s to become ready, so every
    // StepUpgrade (and the final native rollout) lasts long enough to crash in.
    env.kubectl(&[
        "patch",
        "deployment",
        "workload-demo",
        "-p",
        r#"{"spec":{"template":{"metadata":{"annotations":{"sim.ramp.dev/ready-after-ms":"4000"}},"spec":{"containers":[{"name":"main","env":[{"name":"version","value":"canary"}]}]}}}}"#,
    ])
    .ok();
    // 1. Right after the template change (the webhook paused it in the same write).
    crash(&mut env, "right after the template change");
    assert_eq!(
        env.get("deployment", "workload-demo").unwrap()["spec"]["paused"],
        true
    );
    env.wait_step(RO, 1, "StepPaused");
    assert_eq!(shape_name(&vs_http(&env)), Some("step 1 (header)"));

    // 2. At a paused step: it stays paused, routing unchanged.
    crash(&mut env, "at step 1 StepPaused");
    stays_paused(&env, 1);
    assert_eq!(shape_name(&vs_http(&env)), Some("step 1 (header)"));
    let s = env.rollout_status(RO);
    let (stable, canary_hash) = (
        s["canaryStatus"]["stableRevision"]
            .as_str()
            .unwrap()
            .to_string(),
        s["canaryStatus"]["podTemplateHash"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    let r = env.route_via(GW, "service-demo", &["version: canary"], 300);
    assert_eq!(r["byPodTemplateHash"][&canary_hash], 300, "{r}");
    let r = env.route_via(GW, "service-demo", &[], 300);
    assert_eq!(r["byPodTemplateHash"][&stable], 300, "{r}");

    // 3. At StepUpgrade of step 2 (the canary is scaling to 2 pods).
    approve(&env, 1);
    env.wait_step(RO, 2, "StepUpgrade");
    crash(&mut env, "at step 2 StepUpgrade");
    // Step 1's routing holds until the canary is ready.
    let http = vs_http(&env);
    assert!(
        matches!(
            shape_name(&http),
            Some("step 1 (header)" | "step 2 (50/50)")
        ),
        "{http}"
    );

    // 4. During the grace period after step 2's routing change (or at its pause).
    env.wait_until(
        "step 2 reaches StepTrafficRouting",
        Duration::from_secs(60),
        |e| {
            let (i, state, _) = step_of(e);
            i == 2 && (state == "StepTrafficRouting" || state == "StepPaused")
        },
    );
    crash(&mut env, "at step 2 StepTrafficRouting");
    env.wait_step(RO, 2, "StepPaused");

    // 5. At step 2 StepPaused: the weights stay, traffic splits.
    crash(&mut env, "at step 2 StepPaused");
    stays_paused(&env, 2);
    assert_eq!(shape_name(&vs_http(&env)), Some("step 2 (50/50)"));
    let r = env.route_via(GW, "service-demo", &[], 1000);
    let to_canary = count(&r["byPodTemplateHash"], |h| h == canary_hash);
    assert!((450..=550).contains(&to_canary), "50% ±5%: {r}");

    // 6. Right after an approval (StepReady, or just past it).
    approve(&env, 2);
    crash(&mut env, "right after approving step 2");
    env.wait_step(RO, 3, "StepPaused");
    assert_eq!(shape_name(&vs_http(&env)), Some("step 3 (20/80)"));

    // 7. During the finishing sequence: while routing is restored ...
    approve(&env, 3);
    env.wait_until(
        "the finishing sequence restores routing",
        Duration::from_secs(60),
        |e| {
            let (_, _, f) = step_of(e);
            f == "RestoreRouting" || f == "RestoreStableService"
        },
    );
    crash(&mut env, "while restoring routing");
    // ... and while the Deployment rolls out natively.
    env.wait_until(
        "the finishing sequence resumes the Deployment",
        Duration::from_secs(60),
        |e| step_of(e).2 == "ResumeWorkload",
    );
    crash(&mut env, "while the Deployment rolls out");
    env.wait_phase(RO, "Healthy");

    // Nothing is left behind.
    let vs = env.get("virtualservice", "vs-demo").unwrap();
    assert_eq!(vs["spec"], original_vs["spec"]);
    assert!(
        vs["metadata"]["annotations"]
            .get(ramp_api::names::ORIGINAL_SPEC_ANNOTATION)
            .is_none(),
        "{vs}"
    );
    let svc = env.get("service", "service-demo").unwrap();
    assert_eq!(svc["spec"]["selector"], original_svc["spec"]["selector"]);
    assert!(
        svc["metadata"]["annotations"]
            .get(ramp_api::names::STABLE_SELECTOR_ANNOTATION)
            .is_none(),
        "{svc}"
    );
    assert!(env.get("service", "service-demo-canary").is_none());
    assert!(env.get("deployment", "workload-demo-canary").is_none());
    let d = env.get("deployment", "workload-demo").unwrap();
    assert_ne!(d["spec"]["paused"], true);
    assert!(
        d["metadata"]["annotations"]
            .get(ramp_api::names::PAUSED_BY_RAMP_ANNOTATION)
            .is_none(),
        "{d}"
    );
    env.wait_until(
        "the canary pods are gone and all traffic reaches the new template",
        Duration::from_secs(60),
        |e| {
            let canary_pods = e.list(
                "pods",
                Some(&format!(
                    "{}={RO}",
                    ramp_api::names::MANAGED_BY_ROLLOUT_LABEL
                )),
            );
            let live: Vec<Value> = e
                .list("replicasets", Some("app=demo"))
                .into_iter()
                .filter(|rs| rs["status"]["replicas"].as_i64().unwrap_or(0) > 0)
                .collect();
            if !canary_pods.is_empty() || live.len() != 1 {
                return false;
            }
            let hash = live[0]["metadata"]["labels"]["pod-template-hash"].clone();
            let r = e.route_via(GW, "service-demo", &[], 200);
            hash != json!(stable) && r["byPodTemplateHash"][hash.as_str().unwrap()] == 200
        },
    );

    // The recorded history: every step in order, each exactly once.
    let history = rollout_history.finish();
    let mut keys: Vec<(String, i64, String, String)> = Vec::new();
    for ro in &history {
        let s = &ro["status"];
        let c = &s["canaryStatus"];
        let key = (
            s["phase"].as_str().unwrap_or_default().to_string(),
            c["currentStepIndex"].as_i64().unwrap_or(0),
            c["currentStepState"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            c["finalisingStep"].as_str().unwrap_or_default().to_string(),
        );
        if keys.last() != Some(&key) {
            keys.push(key);
        }
    }
    eprintln!("rollout history: {keys:#?}");
    let progressing: Vec<&(String, i64, String, String)> =
        keys.iter().filter(|k| k.0 == "Progressing").collect();
    for w in progressing.windows(2) {
        let (a, b) = (w[0], w[1]);
        assert!(
            (a.1, state_rank(&a.2)) <= (b.1, state_rank(&b.2)),
            "the rollout went back from {a:?} to {b:?}"
        );
        if !a.3.is_empty() {
            assert!(
                !b.3.is_empty() && finalising_rank(&a.3) <= finalising_rank(&b.3),
                "the finishing sequence went back from {a:?} to {b:?}"
            );
        }
    }
    for step in 1..=3 {
        assert!(
            progressing
                .iter()
                .any(|k| k.1 == step && k.2 == "StepPaused"),
            "step {step} never paused: {keys:#?}"
        );
        assert_eq!(
            progressing
                .iter()
                .filter(|k| k.1 == step && k.2 == "StepReady")
                .count(),
            1,
            "step {step} approved once: {keys:#?}"
        );
    }
    let mut phases: Vec<&str> = keys.iter().map(|k| k.0.as_str()).collect();
    phases.dedup();
    // Under load the watch may start after the operator already left
    // Healthy; the Healthy before the rollout is then not seen, and
    // that is no detour.
    if phases.first() != Some(&"Healthy") {
        phases.insert(0, "Healthy");
    }
    assert_eq!(
        phases,
        ["Healthy", "Progressing", "Healthy"],
        "one rollout, no detour: {keys:#?}"
    );

    // Routing went original → step 1 → 2 → 3 → original, nothing else.
    let mut routing: Vec<&'static str> = Vec::new();
    for vs in vs_history.finish() {
        let http = &vs["spec"]["http"];
        let name = shape_name(http).unwrap_or_else(|| panic!("unexpected routing {http}"));
        if routing.last() != Some(&name) {
            routing.push(name);
        }
    }
    assert_eq!(
        routing,
        [
            "original",
            "step 1 (header)",
            "step 2 (50/50)",
            "step 3 (20/80)",
            "original"
        ]
    );
}
