//! Subset routing (issue #8): bookinfo's `reviews` moved from v1 to a new pod
//! template through DestinationRule subsets instead of a canary Service —
//! a header step for the user jason, then 50% — with every step checked by
//! routing 1,000 requests through the embedded mesh, and the DestinationRule
//! and VirtualService back to their originals at the end.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::time::Duration;

use ramp_e2e::{Env, count};
use serde_json::{Value, json};

const RO: &str = "reviews";
const NEW_IMAGE: &str = "docker.io/istio/examples-bookinfo-reviews-v2:1.20.2";

/// Route 1,000 requests to `reviews` with `headers`.
fn route(env: &Env, headers: &[&str]) -> Value {
    env.route("reviews", headers, 1000)
}

/// bill's requests all reach the v3 pods, whatever ramp does to the routes to v1.
fn assert_bill_on_v3(env: &Env, step: &str) {
    let r = route(env, &["end-user: bill"]);
    assert_eq!(r["byVersion"]["v3"], 1000, "{step}: bill → v3: {r}");
    assert_eq!(r["byDestination"]["reviews/v3"], 1000, "{step}: {r}");
}

#[test]
fn bookinfo_reviews_through_subsets_header_then_half_then_restore() {
    let env = Env::start("subsets");
    env.apply_dir("examples/bookinfo-subsets");
    let original_vs = env.get("virtualservice", "reviews").unwrap();
    let original_dr = env.get("destinationrule", "reviews").unwrap();
    let original_svc = env.get("service", "reviews").unwrap();
    env.wait_phase(RO, "Healthy");
    env.wait_ready_replicas("reviews-v1", 2);
    env.wait_ready_replicas("reviews-v3", 1);

    // Before: everyone on v1, bill on v3.
    let r = route(&env, &[]);
    assert_eq!(r["byDestination"]["reviews/v1"], 1000, "{r}");
    assert_bill_on_v3(&env, "before the rollout");
    let v1_hashes = env.pod_hashes("reviews-v1");
    assert_eq!(v1_hashes.len(), 1, "{v1_hashes:?}");

    // From now on no request may fail, not even between steps.
    let probes = [
        env.probe_routes(None, "reviews", &[]),
        env.probe_routes(None, "reviews", &["end-user: jason"]),
    ];

    // A new template for reviews-v1: the webhook pauses it in the same write.
    env.kubectl(&[
        "set",
        "image",
        "deployment/reviews-v1",
        &format!("reviews={NEW_IMAGE}"),
    ])
    .ok();
    assert_eq!(
        env.get("deployment", "reviews-v1").unwrap()["spec"]["paused"],
        true
    );

    // Step 1: jason → the canary subset, everyone else → the stable pods.
    env.wait_step(RO, 1, "StepPaused");
    let (stable, canary) = env.rollout_hashes(RO);
    assert!(!stable.is_empty() && !canary.is_empty() && stable != canary);
    assert_eq!(v1_hashes.keys().next(), Some(&stable));
    let dr = env.get("destinationrule", "reviews").unwrap();
    assert_eq!(
        dr["spec"]["subsets"],
        json!([
            {"name": "v1", "labels": {"version": "v1", "pod-template-hash": stable}},
            {"name": "v2", "labels": {"version": "v2"}},
            {"name": "v3", "labels": {"version": "v3"}},
            {"name": "canary", "labels": {"pod-template-hash": canary}},
        ]),
        "the stable subset narrowed to the stable pods, the canary subset added"
    );
    assert_eq!(
        env.get("service", "reviews").unwrap()["spec"],
        original_svc["spec"],
        "with subsets the Service stays whole"
    );
    assert!(
        env.get("service", "reviews-canary").is_none(),
        "no canary Service with subset routing"
    );
    let r = route(&env, &["end-user: jason"]);
    assert_eq!(r["byPodTemplateHash"][&canary], 1000, "jason → canary: {r}");
    assert_eq!(r["byDestination"]["reviews/canary"], 1000, "{r}");
    let r = route(&env, &[]);
    assert_eq!(
        r["byPodTemplateHash"][&stable], 1000,
        "others → stable: {r}"
    );
    assert_eq!(r["byDestination"]["reviews/v1"], 1000, "{r}");
    assert_bill_on_v3(&env, "step 1");

    // Step 2: half of the requests to the canary, ±5%.
    env.approve(RO, 1);
    env.wait_step(RO, 2, "StepPaused");
    for headers in [&[][..], &["end-user: jason"][..]] {
        let r = route(&env, headers);
        let to_canary = count(&r["byPodTemplateHash"], |h| h == canary);
        let to_stable = count(&r["byPodTemplateHash"], |h| h == stable);
        assert!(
            (450..=550).contains(&to_canary),
            "50% ±5% to the canary ({headers:?}): {r}"
        );
        assert_eq!(to_canary + to_stable, 1000, "{r}");
    }
    assert_bill_on_v3(&env, "step 2");

    // Finish: the DestinationRule and the VirtualService exactly as applied.
    env.approve(RO, 2);
    env.wait_phase(RO, "Healthy");
    env.assert_restored("virtualservice", "reviews", &original_vs);
    env.assert_restored("destinationrule", "reviews", &original_dr);
    env.assert_restored("service", "reviews", &original_svc);
    assert!(env.get("deployment", "reviews-v1-canary").is_none());
    env.wait_until(
        "reviews-v1 runs 2 pods of the new template and everyone but bill reaches them",
        Duration::from_secs(60),
        |e| {
            let d = e.get("deployment", "reviews-v1").unwrap();
            if d["spec"]["paused"] == true
                || d["spec"]["template"]["spec"]["containers"][0]["image"] != NEW_IMAGE
            {
                return false;
            }
            let hashes = e.pod_hashes("reviews-v1");
            let Some((hash, 2)) = hashes.iter().next() else {
                return false;
            };
            if hashes.len() != 1 || *hash == stable {
                return false;
            }
            let r = e.route("reviews", &[], 200);
            r["byPodTemplateHash"][hash] == 200
        },
    );
    assert_bill_on_v3(&env, "after the rollout");
    for p in probes {
        p.assert_no_failures("requests to reviews during the rollout", 20);
    }
}

#[test]
fn subsets_survive_a_reapplied_destination_rule_and_a_rollback_restores_them() {
    let env = Env::start("subsets-back");
    env.apply_dir("examples/bookinfo-subsets");
    let original_vs = env.get("virtualservice", "reviews").unwrap();
    let original_dr = env.get("destinationrule", "reviews").unwrap();
    env.wait_phase(RO, "Healthy");
    env.wait_ready_replicas("reviews-v1", 2);
    let old_image = env.get("deployment", "reviews-v1").unwrap()["spec"]["template"]["spec"]
        ["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_string();
    let probe = env.probe_routes(None, "reviews", &[]);
    env.kubectl(&[
        "set",
        "image",
        "deployment/reviews-v1",
        &format!("reviews={NEW_IMAGE}"),
    ])
    .ok();
    env.wait_step(RO, 1, "StepPaused");
    let (stable, canary) = env.rollout_hashes(RO);
    let narrowed = env.get("destinationrule", "reviews").unwrap()["spec"].clone();

    // A GitOps tool re-applies the DestinationRule: ramp puts its subsets back.
    env.apply(
        &std::fs::read_to_string(
            ramp_e2e::repo_root().join("examples/bookinfo-subsets/destinationrule.yaml"),
        )
        .unwrap(),
    );
    env.wait_until(
        "the canary subset and the narrowed v1 are back",
        Duration::from_secs(10),
        |e| e.get("destinationrule", "reviews").unwrap()["spec"] == narrowed,
    );
    assert!(
        env.events().iter().any(|e| e["reason"] == "RoutingDrift"
            && e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("DestinationRule reviews was changed"))),
        "a RoutingDrift event names the DestinationRule: {:#?}",
        env.events()
    );
    let r = route(&env, &["end-user: jason"]);
    assert_eq!(r["byPodTemplateHash"][&canary], 1000, "{r}");

    // Step 2, then the template goes back to v1: a rollback.
    env.approve(RO, 1);
    env.wait_step(RO, 2, "StepPaused");
    env.kubectl(&[
        "set",
        "image",
        "deployment/reviews-v1",
        &format!("reviews={old_image}"),
    ])
    .ok();
    env.wait_phase(RO, "Healthy");
    env.wait_until(
        "the canary Deployment is gone",
        Duration::from_secs(60),
        |e| e.get("deployment", "reviews-v1-canary").is_none(),
    );
    env.assert_restored("virtualservice", "reviews", &original_vs);
    env.assert_restored("destinationrule", "reviews", &original_dr);
    let r = route(&env, &["end-user: jason"]);
    assert_eq!(r["byPodTemplateHash"][&stable], 1000, "{r}");
    assert_eq!(env.pod_hashes("reviews-v1").len(), 1);
    probe.assert_no_failures("requests to reviews during the rollback", 20);
}
