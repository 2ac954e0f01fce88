//! The real `kubectl-ramp` binary against the embedded API server (ramp-sim),
//! with the Rollout status set by hand (no operator): approve, double approve,
//! stale `--step`, the server-side guard, abort, retry, pause, undo, watch,
//! and the one-line errors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
use kube::{CustomResourceExt, ResourceExt};
use kubectl_ramp::actions;
use kubectl_ramp::cli::GlobalArgs;
use kubectl_ramp::{Error, cluster};
use ramp_api::{Rollout, RolloutAction, StepState};
use ramp_sim::TestCluster;
use serde::Deserialize;
use serde_json::{Value, json};

const NAME: &str = "rollouts-demo";

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn run(c: &TestCluster, args: &[&str]) -> Out {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-ramp"))
        .args(args)
        .arg("--kubeconfig")
        .arg(c.kubeconfig_path())
        .env_remove("KUBECONFIG")
        .env("NO_COLOR", "1")
        .output()
        .await
        .unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A sim with the Rollout CRD installed.
async fn cluster() -> TestCluster {
    let c = TestCluster::start().await.unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(c.client());
    crds.create(&PostParams::default(), &Rollout::crd())
        .await
        .unwrap();
    let ro: Api<Rollout> = Api::default_namespaced(c.client());
    for _ in 0..100 {
        if ro.list(&ListParams::default()).await.is_ok() {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the Rollout CRD was not served");
}

/// The first document (the Rollout) of a render fixture.
fn fixture(state: &str) -> Value {
    let path = format!("{}/tests/fixtures/{state}.yaml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    Value::deserialize(serde_yaml::Deserializer::from_str(&text).next().unwrap()).unwrap()
}

async fn ensure_namespace(c: &TestCluster, ns: &str) {
    let api: Api<Namespace> = Api::all(c.client());
    if api.get_opt(ns).await.unwrap().is_none() {
        let n: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        api.create(&PostParams::default(), &n).await.unwrap();
    }
}

/// Creates the fixture's Rollout in `ns` and writes its status as the operator would.
async fn put_rollout(c: &TestCluster, ns: &str, state: &str) -> Rollout {
    ensure_namespace(c, ns).await;
    let mut v = fixture(state);
    let status = v.as_object_mut().unwrap().remove("status");
    let meta = v["metadata"].as_object_mut().unwrap();
    meta.remove("creationTimestamp");
    meta.remove("generation");
    meta.insert("namespace".into(), json!(ns));
    let api: Api<Rollout> = Api::namespaced(c.client(), ns);
    let ro: Rollout = serde_json::from_value(v).unwrap();
    let created = api.create(&PostParams::default(), &ro).await.unwrap();
    match status {
        Some(mut s) => {
            s["observedGeneration"] = json!(created.metadata.generation.unwrap_or(1));
            set_status(c, ns, s).await
        }
        None => created,
    }
}

async fn set_status(c: &TestCluster, ns: &str, status: Value) -> Rollout {
    let api: Api<Rollout> = Api::namespaced(c.client(), ns);
    api.patch_status(
        NAME,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": status})),
    )
    .await
    .unwrap()
}

async fn set_step(c: &TestCluster, index: i32, state: StepState) -> Rollout {
    set_status(
        c,
        "default",
        json!({"canaryStatus": {"currentStepIndex": index, "currentStepState": state}}),
    )
    .await
}

async fn get(c: &TestCluster, ns: &str) -> Rollout {
    Api::<Rollout>::namespaced(c.client(), ns)
        .get(NAME)
        .await
        .unwrap()
}

fn step_state(ro: &Rollout) -> (i32, StepState) {
    let cs = ro.status.as_ref().unwrap().canary_status.as_ref().unwrap();
    (cs.current_step_index, cs.current_step_state)
}

async fn events(c: &TestCluster) -> Vec<Event> {
    Api::<Event>::namespaced(c.client(), "default")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
}

#[tokio::test]
async fn approve_then_double_approve() {
    let c = cluster().await;
    put_rollout(&c, "default", "step2-paused").await;

    let out = run(&c, &["approve", "ro/rollouts-demo"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "rollout 'rollouts-demo' approved step 2/3\n");
    assert_eq!(out.stderr, "");
    let after = get(&c, "default").await;
    assert_eq!(step_state(&after), (2, StepState::StepReady));

    // Who approved is on record.
    let ev = events(&c).await;
    assert_eq!(ev.len(), 1, "{ev:#?}");
    assert_eq!(ev[0].reason.as_deref(), Some("Approved"));
    assert_eq!(
        ev[0].message.as_deref(),
        Some("step 2/3 approved by ramp-sim-admin (kubectl ramp)")
    );
    assert_eq!(ev[0].involved_object.kind.as_deref(), Some("Rollout"));
    assert_eq!(ev[0].involved_object.name.as_deref(), Some(NAME));
    assert_eq!(ev[0].involved_object.uid, after.metadata.uid);

    // The second approve finds nothing to approve and changes nothing.
    let out = run(&c, &["approve", NAME]).await;
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        "error: rollout 'rollouts-demo' is at step 2/3 in state StepReady (approved; moving to the next step); nothing to approve\n"
    );
    assert_eq!(out.stdout, "");
    assert_eq!(
        get(&c, "default").await.resource_version(),
        after.resource_version()
    );
    assert_eq!(events(&c).await.len(), 1);
}

#[tokio::test]
async fn stale_step_and_not_paused_change_nothing() {
    let c = cluster().await;
    put_rollout(&c, "default", "step2-paused").await;
    let before = set_step(&c, 3, StepState::StepPaused).await;

    let out = run(&c, &["approve", NAME, "--step", "2"]).await;
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        "error: rollout 'rollouts-demo' is at step 3/3 (StepPaused), not step 2; not approved\n"
    );

    let before2 = set_status(
        &c,
        "default",
        json!({"canaryStatus": {"currentStepIndex": 2, "currentStepState": "StepUpgrade",
                                "canaryReplicas": 2, "canaryReadyReplicas": 1}}),
    )
    .await;
    assert_ne!(before.resource_version(), before2.resource_version());
    let out = run(&c, &["approve", NAME]).await;
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        "error: rollout 'rollouts-demo' is at step 2/3 in state StepUpgrade (waiting for 1/2 canary pods to be ready); nothing to approve\n"
    );
    assert_eq!(
        get(&c, "default").await.resource_version(),
        before2.resource_version()
    );
    assert!(events(&c).await.is_empty());
}

#[tokio::test]
async fn the_server_side_guard_stops_an_approval_that_lost_the_race() {
    let c = cluster().await;
    put_rollout(&c, "default", "step2-paused").await;
    let global = GlobalArgs {
        kubeconfig: Some(c.kubeconfig_path().to_path_buf()),
        ..Default::default()
    };
    let k = cluster::connect(&global).await.unwrap();
    // The user reads step 2 paused and plans the approval…
    let seen = k.get_rollout(NAME).await.unwrap();
    let plan = actions::approve(&seen, None).unwrap();
    // …meanwhile someone else approves and the operator moves on to step 3.
    set_step(&c, 3, StepState::StepUpgrade).await;
    let err = k.apply(&seen, &plan).await.unwrap_err();
    assert_eq!(
        err,
        Error::Race(
            "rollout 'rollouts-demo' moved on (now step 3/3 StepUpgrade); not approved".into()
        )
    );
    assert_eq!(
        step_state(&get(&c, "default").await),
        (3, StepState::StepUpgrade)
    );

    // And when the state changed but not the index (already approved).
    set_step(&c, 2, StepState::StepReady).await;
    let err = k.apply(&seen, &plan).await.unwrap_err();
    assert_eq!(
        err,
        Error::Race(
            "rollout 'rollouts-demo' moved on (now step 2/3 StepReady); not approved".into()
        )
    );
}

#[tokio::test]
async fn abort_retry_and_promote() {
    let c = cluster().await;
    put_rollout(&c, "default", "step2-paused").await;

    let out = run(&c, &["abort", NAME]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "rollout 'rollouts-demo' abort requested at step 2/3\n"
    );
    let ro = get(&c, "default").await;
    let cs = ro.status.as_ref().unwrap().canary_status.as_ref().unwrap();
    assert_eq!(cs.requested_action, Some(RolloutAction::Abort));

    let out = run(&c, &["abort", NAME]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("already has an abort requested"),
        "{}",
        out.stderr
    );

    let out = run(&c, &["retry", NAME]).await;
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        "error: rollout 'rollouts-demo' is step 2/3 StepPaused, not Aborted; nothing to retry\n"
    );

    // The operator carries out the abort.
    set_status(
        &c,
        "default",
        json!({"phase": "Aborted", "canaryStatus": {"requestedAction": null}}),
    )
    .await;
    let out = run(&c, &["retry", NAME]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let ro = get(&c, "default").await;
    assert_eq!(
        ro.status.unwrap().canary_status.unwrap().requested_action,
        Some(RolloutAction::Retry)
    );

    set_status(
        &c,
        "default",
        json!({"phase": "Progressing", "canaryStatus": {"requestedAction": null, "currentStepIndex": 1}}),
    )
    .await;
    let out = run(&c, &["promote", NAME, "--full"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "rollout 'rollouts-demo' full promotion requested at step 1/3: skipping the remaining steps\n"
    );
    let reasons: Vec<String> = events(&c)
        .await
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    let mut sorted = reasons.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec!["AbortRequested", "PromoteFullRequested", "RetryRequested"]
    );
}

#[tokio::test]
async fn pause_and_resume() {
    let c = cluster().await;
    put_rollout(&c, "default", "step2-paused").await;
    let out = run(&c, &["pause", NAME]).await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "rollout 'rollouts-demo' paused\n")
    );
    assert!(get(&c, "default").await.spec.strategy.paused);
    let out = run(&c, &["pause", NAME]).await;
    assert_eq!(out.stdout, "rollout 'rollouts-demo' is already paused\n");
    let out = run(&c, &["resume", NAME]).await;
    assert_eq!(out.stdout, "rollout 'rollouts-demo' resumed\n");
    assert!(!get(&c, "default").await.spec.strategy.paused);
}

#[tokio::test]
async fn undo_restores_the_stable_template() {
    let c = cluster().await;
    put_rollout(&c, "default", "step2-paused").await;
    let deploys: Api<Deployment> = Api::default_namespaced(c.client());
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "workload-demo"},
        "spec": {"replicas": 3, "paused": true,
            "selector": {"matchLabels": {"app": "demo"}},
            "template": {"metadata": {"labels": {"app": "demo"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27",
                    "env": [{"name": "version", "value": "canary"}]}]}}}
    }))
    .unwrap();
    let d = deploys.create(&PostParams::default(), &d).await.unwrap();
    let rs: k8s_openapi::api::apps::v1::ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": "workload-demo-6c7d8f9b5",
            "labels": {"app": "demo", "pod-template-hash": "6c7d8f9b5"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                "name": "workload-demo", "uid": d.metadata.uid.clone().unwrap(), "controller": true}]},
        "spec": {"replicas": 3,
            "selector": {"matchLabels": {"app": "demo", "pod-template-hash": "6c7d8f9b5"}},
            "template": {"metadata": {"labels": {"app": "demo", "pod-template-hash": "6c7d8f9b5"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27",
                    "env": [{"name": "version", "value": "base"}]}]}}}
    }))
    .unwrap();
    Api::<k8s_openapi::api::apps::v1::ReplicaSet>::default_namespaced(c.client())
        .create(&PostParams::default(), &rs)
        .await
        .unwrap();

    let out = run(&c, &["undo", NAME]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let d = deploys.get("workload-demo").await.unwrap();
    let t = d.spec.unwrap().template;
    let env = &t.spec.unwrap().containers[0].env.clone().unwrap()[0];
    assert_eq!(env.value.as_deref(), Some("base"));
    assert!(
        !t.metadata
            .unwrap()
            .labels
            .unwrap()
            .contains_key("pod-template-hash")
    );

    let out = run(&c, &["undo", NAME]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("already has the stable pod template"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn status_and_list_read_the_cluster() {
    let c = cluster().await;
    put_rollout(&c, "default", "step2-paused").await;
    let out = run(&c, &["status", NAME]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("Step:         2/3 · StepPaused · waiting for approval"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("├── ▶  2  replicas 50% · traffic 50% · until approved  ← StepPaused")
    );
    assert!(
        out.stdout
            .contains("Deployment      workload-demo         stable   missing"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains('\x1b'));

    let out = run(&c, &["status", NAME, "-o", "json"]).await;
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        v["status"]["canaryStatus"]["currentStepState"],
        "StepPaused"
    );

    let out = run(&c, &["list"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", out.stdout);
    assert!(lines[0].starts_with("NAME "));
    let cols: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        &cols[..6],
        &[NAME, "Progressing", "2/3", "StepPaused", "50%", "2/2"]
    );

    let out = run(&c, &["list", "-n", "empty"]).await;
    assert_eq!((out.code, out.stdout.as_str()), (0, ""));
    assert_eq!(out.stderr, "No rollouts found in namespace 'empty'.\n");
}

#[tokio::test]
async fn one_line_errors() {
    let c = TestCluster::start().await.unwrap();
    // No CRD.
    let out = run(&c, &["list"]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .starts_with("error: the Rollout CRD (rollouts.rollouts.ramp.dev) is not installed"),
        "{}",
        out.stderr
    );
    let out = run(&c, &["approve", NAME]).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("is not installed"), "{}", out.stderr);
    drop(c);

    let c = cluster().await;
    put_rollout(&c, "team-a", "step2-paused").await;
    let out = run(&c, &["approve", NAME]).await;
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        "error: rollout 'rollouts-demo' not found in namespace 'default' (it exists in namespace 'team-a': add -n team-a)\n"
    );
    let out = run(&c, &["approve", NAME, "-n", "team-a"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);

    // Bad flags: exit 2, before touching the cluster.
    let out = run(&c, &["approve", "deployment/x"]).await;
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("'deployment' is not a rollout"),
        "{}",
        out.stderr
    );
    let out = run(&c, &["status", NAME, "--context", "nope"]).await;
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .starts_with("error: context 'nope' is not in the kubeconfig"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn an_operator_that_never_wrote_a_status_is_named() {
    let c = cluster().await;
    put_rollout(&c, "default", "no-operator").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-ramp"))
        .args(["approve", NAME, "--kubeconfig"])
        .arg(c.kubeconfig_path())
        .env("KUBECTL_RAMP_OPERATOR_TIMEOUT", "1")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: rollout 'rollouts-demo' has no status ")
            && stderr.ends_with(
                "s after it was created: the ramp operator is not running or not watching namespace 'default'\n"
            ),
        "{stderr}"
    );
    // With the default threshold (30 s) it is simply not approvable yet.
    let out = run(&c, &["approve", NAME]).await;
    assert_eq!(
        out.stderr,
        "error: rollout 'rollouts-demo' has no status yet; nothing to approve\n"
    );
}

#[tokio::test]
async fn an_unreachable_server_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    std::fs::write(
        &kc,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\nusers: [{name: u, user: {}}]\ncontexts: [{name: x, context: {cluster: c, user: u, namespace: shop}}]\ncurrent-context: x\n",
    )
    .unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-ramp"))
        .args(["status", NAME, "--kubeconfig"])
        .arg(&kc)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.starts_with("error: cannot reach the API server at http://127.0.0.1:9/"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

async fn watch_until(c: &TestCluster, end: Value) -> (i32, String, String) {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-ramp"))
        .args([
            "status",
            NAME,
            "--watch",
            "--timeout",
            "30s",
            "--kubeconfig",
        ])
        .arg(c.kubeconfig_path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    set_step(c, 3, StepState::StepPaused).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    set_status(c, "default", end).await;
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("the watch did not end")
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn watch_exits_zero_when_healthy() {
    let c = cluster().await;
    put_rollout(&c, "default", "step2-paused").await;
    let (code, stdout, stderr) = watch_until(
        &c,
        json!({"phase": "Healthy", "canaryStatus": {"currentStepState": "Completed", "finalisingStep": "Done"}}),
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    // One frame per change, appended (not a terminal): step 2, step 3, healthy.
    assert!(
        stdout.contains("Step:         2/3 · StepPaused"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Step:         3/3 · StepPaused"),
        "{stdout}"
    );
    assert!(stdout.contains("Status:       ✔ Healthy"), "{stdout}");
    assert!(
        stdout.ends_with("rollout 'rollouts-demo' is Healthy\n"),
        "{stdout}"
    );
    assert!(!stdout.contains('\x1b'));
}

#[tokio::test]
async fn watch_exits_non_zero_when_aborted() {
    let c = cluster().await;
    put_rollout(&c, "default", "step2-paused").await;
    let (code, stdout, stderr) = watch_until(
        &c,
        json!({"phase": "Aborted", "message": "aborted by request at step 3/3"}),
    )
    .await;
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(
        stderr,
        "error: rollout 'rollouts-demo' was aborted (Aborted at step 3/3): aborted by request at step 3/3\n"
    );
    assert!(stdout.contains("Status:       ✖ Aborted"), "{stdout}");
}

/// The documents of a render fixture after the Rollout.
fn fixture_objects(state: &str) -> Vec<Value> {
    let path = format!("{}/tests/fixtures/{state}.yaml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .skip(1)
        .map(|d| Value::deserialize(d).unwrap())
        .collect()
}

/// `status --watch` follows every routing object, including the HTTPRoute
/// named by `gateway.httpRouteName` (not only `customNetworkRefs`): a change
/// to it is drawn in a new frame.
#[tokio::test]
async fn watch_redraws_when_the_gateway_http_route_changes() {
    let c = cluster().await;
    c.load_crds(&[
        ramp_sim::client::shared_crds_dir().join("gateway.networking.k8s.io_httproutes.yaml")
    ])
    .unwrap();
    let mut route = fixture_objects("httproute-mirror")
        .into_iter()
        .find(|o| o["kind"] == "HTTPRoute")
        .unwrap();
    let routes: Api<DynamicObject> = Api::namespaced_with(
        c.client(),
        "default",
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute"),
            "httproutes",
        ),
    );
    let mut created = None;
    for _ in 0..100 {
        // The CRD is served a moment after it is stored.
        match routes
            .create(
                &PostParams::default(),
                &serde_json::from_value(route.clone()).unwrap(),
            )
            .await
        {
            Ok(r) => {
                created = Some(r);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    created.expect("the HTTPRoute was not created");
    let mut v = fixture("httproute-mirror");
    v["metadata"]["name"] = json!(NAME);
    let mut status = v.as_object_mut().unwrap().remove("status").unwrap();
    for k in ["creationTimestamp", "generation"] {
        v["metadata"].as_object_mut().unwrap().remove(k);
    }
    let api: Api<Rollout> = Api::default_namespaced(c.client());
    let ro = api
        .create(&PostParams::default(), &serde_json::from_value(v).unwrap())
        .await
        .unwrap();
    status["observedGeneration"] = json!(ro.metadata.generation.unwrap_or(1));
    set_status(&c, "default", status).await;

    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-ramp"))
        .args([
            "status",
            NAME,
            "--watch",
            "--timeout",
            "30s",
            "--kubeconfig",
        ])
        .arg(c.kubeconfig_path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // Someone re-weights the second rule: 1:1 instead of 3:1.
    route["spec"]["rules"][1]["backendRefs"][0]["weight"] = json!(1);
    routes
        .patch(
            "httpbin",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": route["spec"]})),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    set_status(
        &c,
        "default",
        json!({"phase": "Healthy", "canaryStatus": {"currentStepState": "Completed", "finalisingStep": "Done"}}),
    )
    .await;
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("the watch did not end")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("rules[1]  path ^=/ → httpbin 75%, httpbin-other 25%"),
        "{stdout}"
    );
    assert!(
        stdout.contains("rules[1]  path ^=/ → httpbin 50%, httpbin-other 50%"),
        "the HTTPRoute change was not redrawn:\n{stdout}"
    );
}
