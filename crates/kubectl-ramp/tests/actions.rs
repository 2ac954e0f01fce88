//! The exact patches each action sends, the guards (`test` ops) in them, and
//! the refusals a user reads when an action does not apply. Patches are also
//! applied to the Rollout JSON with a real JSON-patch implementation, to show
//! that a repeated or stale command cannot apply.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kubectl_ramp::Error;
use kubectl_ramp::actions::{self, Write};
use pretty_assertions::assert_eq;
use ramp_api::{Rollout, RolloutAction, RolloutPhase, StepState};
use serde::Deserialize;
use serde_json::{Value, json};

fn fixture_rollout(state: &str) -> Rollout {
    let path = format!("{}/tests/fixtures/{state}.yaml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    let de = serde_yaml::Deserializer::from_str(&text).next().unwrap();
    let v = Value::deserialize(de).unwrap();
    serde_json::from_value(v).unwrap()
}

/// The step-2-paused rollout with its canary status edited.
fn at(step: i32, state: StepState) -> Rollout {
    let mut ro = fixture_rollout("step2-paused");
    let c = ro.status.as_mut().unwrap().canary_status.as_mut().unwrap();
    c.current_step_index = step;
    c.current_step_state = state;
    ro
}

fn with_phase(mut ro: Rollout, phase: RolloutPhase) -> Rollout {
    ro.status.as_mut().unwrap().phase = Some(phase);
    ro
}

fn refused(r: Result<actions::Plan, Error>) -> String {
    match r {
        Err(Error::Refused(m)) => m,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Applies a status patch to the Rollout as JSON, like the API server does.
fn apply(ro: &Rollout, plan: &actions::Plan) -> Result<Rollout, String> {
    let Write::RolloutStatus(p) = &plan.write else {
        panic!("not a status patch: {:?}", plan.write)
    };
    let mut v = serde_json::to_value(ro).unwrap();
    json_patch::patch(&mut v, p).map_err(|e| e.to_string())?;
    Ok(serde_json::from_value(v).unwrap())
}

#[test]
fn approve_tests_index_and_state_then_sets_step_ready() {
    let ro = at(2, StepState::StepPaused);
    let plan = actions::approve(&ro, None).unwrap();
    assert_eq!(
        plan.patch_json(),
        json!([
            {"op": "test", "path": "/status/canaryStatus/currentStepIndex", "value": 2},
            {"op": "test", "path": "/status/canaryStatus/currentStepState", "value": "StepPaused"},
            {"op": "replace", "path": "/status/canaryStatus/currentStepState", "value": "StepReady"},
        ])
    );
    assert_eq!(plan.done, "rollout 'rollouts-demo' approved step 2/3");
    assert_eq!(plan.event.reason, "Approved");
    assert_eq!(plan.event.what, "step 2/3 approved");
    // --step naming the shown step sends the same patch.
    assert_eq!(actions::approve(&ro, Some(2)).unwrap(), plan);

    let approved = apply(&ro, &plan).unwrap();
    assert_eq!(
        approved
            .status
            .as_ref()
            .unwrap()
            .canary_status
            .as_ref()
            .unwrap()
            .current_step_state,
        StepState::StepReady
    );
    // The same patch sent twice (two people approving at once) fails its guard.
    let err = apply(&approved, &plan).unwrap_err();
    assert!(
        err.contains("/status/canaryStatus/currentStepState"),
        "{err}"
    );
}

#[test]
fn a_stale_approval_cannot_approve_a_later_step() {
    // The user looked at step 2; by the time the patch lands the rollout is
    // paused at step 3. The index test fails.
    let plan = actions::approve(&at(2, StepState::StepPaused), None).unwrap();
    assert!(apply(&at(3, StepState::StepPaused), &plan).is_err());
    // And --step 2 refuses up front when the rollout is already at step 3.
    assert_eq!(
        refused(actions::approve(&at(3, StepState::StepPaused), Some(2))),
        "rollout 'rollouts-demo' is at step 3/3 (StepPaused), not step 2; not approved"
    );
    assert_eq!(
        refused(actions::approve(&at(2, StepState::StepPaused), Some(7))),
        "rollout 'rollouts-demo' has 3 steps; there is no step 7 to approve"
    );
}

#[test]
fn approve_says_why_when_not_paused() {
    let mut ro = at(2, StepState::StepUpgrade);
    {
        let c = ro.status.as_mut().unwrap().canary_status.as_mut().unwrap();
        c.canary_replicas = 2;
        c.canary_ready_replicas = 1;
    }
    assert_eq!(
        refused(actions::approve(&ro, None)),
        "rollout 'rollouts-demo' is at step 2/3 in state StepUpgrade (waiting for 1/2 canary pods to be ready); nothing to approve"
    );
    assert_eq!(
        refused(actions::approve(&at(2, StepState::StepReady), None)),
        "rollout 'rollouts-demo' is at step 2/3 in state StepReady (approved; moving to the next step); nothing to approve"
    );
    assert_eq!(
        refused(actions::approve(
            &at(2, StepState::StepTrafficRouting),
            None
        )),
        "rollout 'rollouts-demo' is at step 2/3 in state StepTrafficRouting (moving traffic for the step); nothing to approve"
    );
    assert_eq!(
        refused(actions::approve(&fixture_rollout("healthy"), None)),
        "rollout 'rollouts-demo' is Healthy (no rollout in progress); nothing to approve"
    );
    assert_eq!(
        refused(actions::approve(&fixture_rollout("aborted"), None)),
        "rollout 'rollouts-demo' is Aborted at step 2/3; nothing to approve (`kubectl ramp retry rollouts-demo` starts again from step 1)"
    );
    assert_eq!(
        refused(actions::approve(&fixture_rollout("no-operator"), None)),
        "rollout 'rollouts-demo' has no status yet; nothing to approve"
    );
}

#[test]
fn approving_a_timed_pause_ends_it_early() {
    let ro = fixture_rollout("timed-pause");
    let plan = actions::approve(&ro, None).unwrap();
    assert_eq!(plan.done, "rollout 'rollouts-demo' approved step 3/3");
}

#[test]
fn approving_a_paused_rollout_says_it_waits_for_resume() {
    let mut ro = at(2, StepState::StepPaused);
    ro.spec.strategy.paused = true;
    let plan = actions::approve(&ro, None).unwrap();
    assert_eq!(
        plan.done,
        "rollout 'rollouts-demo' approved step 2/3 (the rollout is paused: it moves on after `kubectl ramp resume rollouts-demo`)"
    );
}

#[test]
fn abort_is_guarded_by_phase_and_step() {
    let ro = at(2, StepState::StepUpgrade);
    let plan = actions::abort(&ro).unwrap();
    assert_eq!(
        plan.patch_json(),
        json!([
            {"op": "test", "path": "/status/phase", "value": "Progressing"},
            {"op": "test", "path": "/status/canaryStatus/currentStepIndex", "value": 2},
            {"op": "add", "path": "/status/canaryStatus/requestedAction", "value": "Abort"},
        ])
    );
    assert_eq!(
        plan.done,
        "rollout 'rollouts-demo' abort requested at step 2/3"
    );
    assert_eq!(plan.event.reason, "AbortRequested");
    let requested = apply(&ro, &plan).unwrap();
    assert_eq!(
        requested
            .status
            .as_ref()
            .unwrap()
            .canary_status
            .as_ref()
            .unwrap()
            .requested_action,
        Some(RolloutAction::Abort)
    );
    assert_eq!(
        refused(actions::abort(&requested)),
        "rollout 'rollouts-demo' already has an abort requested at step 2/3; the operator has not acted on it yet"
    );
    // Guard: the rollout finished in the meantime.
    assert!(apply(&with_phase(ro.clone(), RolloutPhase::Healthy), &plan).is_err());
    assert_eq!(
        refused(actions::abort(&fixture_rollout("aborted"))),
        "rollout 'rollouts-demo' is already Aborted at step 2/3; nothing to abort"
    );
    assert_eq!(
        refused(actions::abort(&fixture_rollout("healthy"))),
        "rollout 'rollouts-demo' is Healthy (no rollout in progress); nothing to abort"
    );
}

#[test]
fn retry_is_guarded_by_the_aborted_phase() {
    let ro = fixture_rollout("aborted");
    let plan = actions::retry(&ro).unwrap();
    assert_eq!(
        plan.patch_json(),
        json!([
            {"op": "test", "path": "/status/phase", "value": "Aborted"},
            {"op": "add", "path": "/status/canaryStatus/requestedAction", "value": "Retry"},
        ])
    );
    assert_eq!(
        plan.done,
        "rollout 'rollouts-demo' retry requested: starting again from step 1"
    );
    assert!(apply(&with_phase(ro, RolloutPhase::Progressing), &plan).is_err());
    assert_eq!(
        refused(actions::retry(&at(2, StepState::StepPaused))),
        "rollout 'rollouts-demo' is step 2/3 StepPaused, not Aborted; nothing to retry"
    );
}

#[test]
fn promote_full_is_guarded_by_phase_and_step() {
    let ro = at(1, StepState::StepPaused);
    let plan = actions::promote_full(&ro).unwrap();
    assert_eq!(
        plan.patch_json(),
        json!([
            {"op": "test", "path": "/status/phase", "value": "Progressing"},
            {"op": "test", "path": "/status/canaryStatus/currentStepIndex", "value": 1},
            {"op": "add", "path": "/status/canaryStatus/requestedAction", "value": "PromoteFull"},
        ])
    );
    assert_eq!(plan.event.reason, "PromoteFullRequested");
    assert!(apply(&at(2, StepState::StepPaused), &plan).is_err());
    assert_eq!(
        refused(actions::promote_full(&fixture_rollout("finishing"))),
        "rollout 'rollouts-demo' has done all its steps and is finishing; nothing to promote"
    );
}

#[test]
fn pause_and_resume_are_merge_patches_on_the_spec() {
    let ro = at(2, StepState::StepPaused);
    let plan = actions::set_paused(&ro, true);
    assert_eq!(
        plan.write,
        Write::RolloutMerge(json!({"spec": {"strategy": {"paused": true}}}))
    );
    assert_eq!(plan.done, "rollout 'rollouts-demo' paused");
    assert_eq!(plan.event.reason, "Paused");
    let already = actions::set_paused(&ro, false);
    assert_eq!(already.write, Write::Nothing);
    assert_eq!(
        already.done,
        "rollout 'rollouts-demo' is already not paused"
    );

    let mut paused = ro;
    paused.spec.strategy.paused = true;
    let plan = actions::set_paused(&paused, false);
    assert_eq!(
        plan.write,
        Write::RolloutMerge(json!({"spec": {"strategy": {"paused": false}}}))
    );
    assert_eq!(plan.done, "rollout 'rollouts-demo' resumed");
}

fn workload() -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "workload-demo", "namespace": "default", "uid": "d-uid", "resourceVersion": "42"},
        "spec": {
            "replicas": 3, "paused": true,
            "selector": {"matchLabels": {"app": "demo"}},
            "template": {"metadata": {"labels": {"app": "demo"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27",
                    "env": [{"name": "version", "value": "canary"}]}]}}
        }
    }))
    .unwrap()
}

fn replicaset(name: &str, hash: &str, owner_uid: &str, version: &str) -> ReplicaSet {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": "default",
            "labels": {"app": "demo", "pod-template-hash": hash},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "workload-demo", "uid": owner_uid, "controller": true}]},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "demo", "pod-template-hash": hash}},
            "template": {"metadata": {"labels": {"app": "demo", "pod-template-hash": hash}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27",
                    "env": [{"name": "version", "value": version}]}]}}
        }
    }))
    .unwrap()
}

#[test]
fn undo_puts_back_the_stable_template_guarded_by_resource_version() {
    let ro = at(2, StepState::StepPaused);
    let rss = vec![
        // Same hash, but another Deployment's: ignored.
        replicaset("other-6c7d8f9b5", "6c7d8f9b5", "someone-else", "other"),
        replicaset("workload-demo-6c7d8f9b5", "6c7d8f9b5", "d-uid", "base"),
    ];
    let plan = actions::undo(&ro, &workload(), &rss).unwrap();
    assert_eq!(
        plan.patch_json(),
        json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": "42"},
            {"op": "replace", "path": "/spec/template", "value": {
                "metadata": {"labels": {"app": "demo"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27",
                    "env": [{"name": "version", "value": "base"}]}]}
            }},
        ])
    );
    assert!(matches!(&plan.write, Write::Deployment { name, .. } if name == "workload-demo"));
    assert_eq!(
        plan.done,
        "rollout 'rollouts-demo' undone: deployment 'workload-demo' is back on the stable pod template (pod-template-hash 6c7d8f9b5)"
    );
    assert_eq!(plan.event.reason, "UndoRequested");
}

#[test]
fn undo_refusals_name_what_is_missing() {
    let ro = at(2, StepState::StepPaused);
    let err = actions::undo(
        &ro,
        &workload(),
        &[replicaset("x", "6c7d8f9b5", "someone-else", "base")],
    )
    .unwrap_err();
    assert_eq!(
        err,
        Error::NotFound(
            "no ReplicaSet of deployment 'workload-demo' has pod-template-hash=6c7d8f9b5 (the stable revision of rollout 'rollouts-demo'); cannot undo".into()
        )
    );
    // Already on the stable template.
    let mut d = workload();
    d.spec.as_mut().unwrap().template = replicaset("s", "6c7d8f9b5", "d-uid", "base")
        .spec
        .unwrap()
        .template
        .unwrap();
    d.spec
        .as_mut()
        .unwrap()
        .template
        .metadata
        .as_mut()
        .unwrap()
        .labels
        .as_mut()
        .unwrap()
        .remove("pod-template-hash");
    let msg = refused(actions::undo(
        &ro,
        &d,
        &[replicaset("s", "6c7d8f9b5", "d-uid", "base")],
    ));
    assert!(msg.contains("already has the stable pod template"), "{msg}");
    let msg = refused(actions::undo(&fixture_rollout("healthy"), &workload(), &[]));
    assert!(
        msg.starts_with(
            "rollout 'rollouts-demo' is Healthy: there is no rollout in progress to undo"
        ),
        "{msg}"
    );
}

#[test]
fn race_message_names_where_the_rollout_is_now() {
    assert_eq!(
        actions::race_message(&at(3, StepState::StepUpgrade), "not approved"),
        "rollout 'rollouts-demo' moved on (now step 3/3 StepUpgrade); not approved"
    );
    assert_eq!(
        actions::race_message(&fixture_rollout("healthy"), "not aborted"),
        "rollout 'rollouts-demo' moved on (now Healthy); not aborted"
    );
}

#[test]
fn approve_refuses_while_a_metric_fails_unless_forced() {
    let ro = fixture_rollout("analysis-failing");
    assert_eq!(
        refused(actions::approve(&ro, None)),
        "rollout 'rollouts-demo' step 2/2: analysis is failing: request-success-rate 97.5 (range >= 99); not approved (`kubectl ramp approve rollouts-demo --force` approves anyway, and the Event says so)"
    );
    let plan = actions::approve_with(&ro, None, true).unwrap();
    assert_eq!(
        plan.event.what,
        "step 2/2 approved with --force while analysis was failing: request-success-rate 97.5 (range >= 99)"
    );
    assert_eq!(
        plan.done,
        "rollout 'rollouts-demo' approved step 2/2 (forced: request-success-rate 97.5 (range >= 99) failing)"
    );
    let approved = apply(&ro, &plan).unwrap();
    assert_eq!(
        approved
            .status
            .unwrap()
            .canary_status
            .unwrap()
            .current_step_state,
        StepState::StepReady
    );
    // Results of an earlier step do not count; nor do NoData and Error.
    let mut earlier = ro.clone();
    let c = earlier
        .status
        .as_mut()
        .unwrap()
        .canary_status
        .as_mut()
        .unwrap();
    c.analysis[0].step_index = 1;
    let plan = actions::approve(&earlier, None).unwrap();
    assert_eq!(plan.event.what, "step 2/2 approved");
}
