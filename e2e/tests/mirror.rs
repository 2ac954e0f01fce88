//! Mirroring (issue #8): httpbin v1 → v2 with a first step that only
//! shadows requests to the canary (`mirror: {percent: 100}`, no real
//! traffic), then 20% real traffic — once through an Istio VirtualService
//! (`mirror` + `mirrorPercentage`) and once through a GAMMA HTTPRoute (a
//! `RequestMirror` filter). Routing is checked with the embedded mesh, which
//! counts mirrored copies apart from the answers callers get.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::time::Duration;

use ramp_e2e::Env;
use serde_json::Value;

const RO: &str = "httpbin";

fn served(r: &Value, version: &str) -> u64 {
    r["byVersion"][version].as_u64().unwrap_or(0)
}

fn mirror_scenario(scenario: &str, dir: &str, kind: &str) {
    let env = Env::start(scenario);
    env.apply_dir("examples/mirror");
    env.apply_dir(dir);
    let original = env.get(kind, "httpbin").unwrap();
    env.wait_phase(RO, "Healthy");
    env.wait_ready_replicas("httpbin", 2);
    let r = env.route("httpbin", &[], 1000);
    assert_eq!(served(&r, "v1"), 1000, "{r}");
    assert_eq!(r["shadow"]["requests"], 0, "no mirroring before: {r}");

    // From now on no request (nor mirrored copy) may fail.
    let probe = env.probe_routes(None, "httpbin", &[]);

    // v2: a new pod template (its `version` label).
    env.kubectl(&[
        "patch",
        "deployment",
        "httpbin",
        "--type=merge",
        "-p",
        r#"{"spec":{"template":{"metadata":{"labels":{"version":"v2"}}}}}"#,
    ])
    .ok();

    // Step 1: every answer from v1; a copy of every request to v2.
    env.wait_step(RO, 1, "StepPaused");
    let (stable, canary) = env.rollout_hashes(RO);
    assert!(!stable.is_empty() && !canary.is_empty() && stable != canary);
    let r = env.route("httpbin", &[], 1000);
    assert_eq!(served(&r, "v1"), 1000, "100% answered by v1: {r}");
    assert_eq!(r["byPodTemplateHash"][&stable], 1000, "{r}");
    assert_eq!(r["errors"], serde_json::json!({}), "{r}");
    assert_eq!(r["shadow"]["requests"], 1000, "every request mirrored: {r}");
    assert_eq!(
        r["shadow"]["byVersion"]["v2"], 1000,
        "shadows reach v2: {r}"
    );
    assert_eq!(r["shadow"]["byPodTemplateHash"][&canary], 1000, "{r}");
    assert_eq!(r["shadow"]["errors"], serde_json::json!({}), "{r}");
    let status = env.ramp(&["status", RO]).ok();
    assert!(
        status.contains("mirror 100%")
            && status.contains("no traffic + a copy of 100% of requests (mirrored)"),
        "kubectl ramp status shows the mirror step: {status}"
    );
    assert!(
        status.contains("mirror → httpbin-canary 100%"),
        "the {kind} under Resources shows where copies go: {status}"
    );

    // Step 2: 20% real traffic, no more mirroring.
    env.approve(RO, 1);
    env.wait_step(RO, 2, "StepPaused");
    let r = env.route("httpbin", &[], 1000);
    let v2 = served(&r, "v2");
    assert!((150..=250).contains(&v2), "20% ±5% answered by v2: {r}");
    assert_eq!(served(&r, "v1") + v2, 1000, "{r}");
    assert_eq!(r["shadow"]["requests"], 0, "the mirror is gone: {r}");

    // Finish: the routing object exactly as applied; everything on v2.
    env.approve(RO, 2);
    env.wait_phase(RO, "Healthy");
    env.assert_restored(kind, "httpbin", &original);
    assert!(env.get("deployment", "httpbin-canary").is_none());
    assert!(env.get("service", "httpbin-canary").is_none());
    env.wait_until(
        "every request is answered by v2, none mirrored",
        Duration::from_secs(60),
        |e| {
            let r = e.route("httpbin", &[], 200);
            served(&r, "v2") == 200 && r["shadow"]["requests"] == 0
        },
    );
    probe.assert_no_failures("requests to httpbin during the rollout", 20);
}

#[test]
fn mirror_step_through_a_virtual_service() {
    mirror_scenario("mirror-vs", "examples/mirror/istio", "virtualservice");
}

#[test]
fn mirror_percent_out_of_range_is_rejected_at_apply() {
    let env = Env::start("mirror-bad");
    let rollout =
        std::fs::read_to_string(ramp_e2e::repo_root().join("examples/mirror/istio/rollout.yaml"))
            .unwrap();
    for bad in ["0", "150"] {
        let yaml = rollout.replace("percent: 100", &format!("percent: {bad}"));
        let f = env.path("bad-rollout.yaml");
        std::fs::write(&f, yaml).unwrap();
        let out = env.kubectl(&["apply", "-f"]).arg(&f).output();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "percent {bad} accepted");
        assert!(
            stderr.contains("spec.strategy.canary.steps[0].mirror.percent")
                && stderr.contains(&format!("invalid value {bad}")),
            "the error names the field and the value: {stderr}"
        );
    }
    assert!(env.get("rollout", RO).is_none());
}

#[test]
fn mirror_step_through_an_httproute_request_mirror() {
    mirror_scenario(
        "mirror-httproute",
        "examples/mirror/gateway-api",
        "httproute",
    );
}
