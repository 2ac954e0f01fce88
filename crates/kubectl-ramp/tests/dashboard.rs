//! `kubectl ramp dashboard`'s JSON/SSE API against the embedded API server
//! (ramp-sim, in process, no operator: the Rollout status is set by hand):
//! the list and rollout views, live pushes, the guarded actions through the
//! CLI's code, read-only mode, and the bounded snapshot.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::net::SocketAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Namespace, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{CustomResourceExt, ResourceExt};
use kubectl_ramp::cli::GlobalArgs;
use kubectl_ramp::cluster;
use kubectl_ramp::dashboard::{self, Options, Running, state};
use ramp_api::{Rollout, StepState};
use ramp_sim::TestCluster;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NAME: &str = "rollouts-demo";

async fn sim() -> TestCluster {
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

fn fixture(state: &str) -> Value {
    let path = format!("{}/tests/fixtures/{state}.yaml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    Value::deserialize(serde_yaml::Deserializer::from_str(&text).next().unwrap()).unwrap()
}

async fn put_rollout(c: &TestCluster, ns: &str, state: &str) -> Rollout {
    let nss: Api<Namespace> = Api::all(c.client());
    if nss.get_opt(ns).await.unwrap().is_none() {
        let n: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        nss.create(&PostParams::default(), &n).await.unwrap();
    }
    let mut v = fixture(state);
    let mut status = v.as_object_mut().unwrap().remove("status").unwrap();
    let meta = v["metadata"].as_object_mut().unwrap();
    meta.remove("creationTimestamp");
    meta.remove("generation");
    meta.insert("namespace".into(), json!(ns));
    let api: Api<Rollout> = Api::namespaced(c.client(), ns);
    let ro: Rollout = serde_json::from_value(v).unwrap();
    let created = api.create(&PostParams::default(), &ro).await.unwrap();
    status["observedGeneration"] = json!(created.metadata.generation.unwrap_or(1));
    set_status(c, ns, status).await
}

async fn set_status(c: &TestCluster, ns: &str, status: Value) -> Rollout {
    Api::<Rollout>::namespaced(c.client(), ns)
        .patch_status(
            NAME,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": status})),
        )
        .await
        .unwrap()
}

async fn start(c: &TestCluster, ns: Option<&str>, read_only: bool) -> Running {
    let cl = cluster::connect(&GlobalArgs {
        namespace: Some(ns.unwrap_or("default").into()),
        context: None,
        kubeconfig: Some(c.kubeconfig_path().to_path_buf()),
    })
    .await
    .unwrap();
    dashboard::start(
        cl,
        Options {
            listen: "127.0.0.1:0".parse().unwrap(),
            namespace: ns.map(str::to_string),
            read_only,
            prometheus_url: None,
        },
    )
    .await
    .unwrap()
}

/// One HTTP/1.0 request (the server closes the connection after the answer).
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &str,
) -> (u16, Value) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.0\r\n");
    if !headers.iter().any(|h| h.starts_with("Host:")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out);
    let (head, rest) = text.split_once("\r\n\r\n").unwrap();
    let code = head.split(' ').nth(1).unwrap().parse().unwrap();
    (
        code,
        serde_json::from_str(rest).unwrap_or(Value::String(rest.to_string())),
    )
}

async fn get(addr: SocketAddr, path: &str) -> Value {
    let (code, v) = http(addr, "GET", path, &[], "").await;
    assert_eq!(code, 200, "GET {path}: {v}");
    v
}

async fn post(addr: SocketAddr, action: &str, body: Value) -> (u16, Value) {
    http(
        addr,
        "POST",
        &format!("/api/rollouts/default/{NAME}/actions/{action}"),
        &["Content-Type: application/json", "X-Ramp-Dashboard: 1"],
        &body.to_string(),
    )
    .await
}

/// Waits (bounded) until `f` holds for the rollout page's JSON.
async fn wait_view(addr: SocketAddr, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let path = format!("/api/rollouts/default/{NAME}");
    for _ in 0..100 {
        let (code, v) = http(addr, "GET", &path, &[], "").await;
        if code == 200 && f(&v) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: never seen");
}

/// An SSE stream read from a raw connection.
struct Sse {
    s: tokio::net::TcpStream,
    buf: String,
}

impl Sse {
    async fn open(addr: SocketAddr, path: &str) -> Sse {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        Sse {
            s,
            buf: String::new(),
        }
    }

    /// The next `snapshot` event's data, within 5 s.
    async fn next(&mut self) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(i) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..i + 2).collect();
                let mut event = "";
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(e) = line.strip_prefix("event: ") {
                        event = e;
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data.push_str(d);
                    }
                }
                if event == "snapshot" {
                    return serde_json::from_str(&data).unwrap();
                }
                continue;
            }
            let mut chunk = [0u8; 65536];
            let n = tokio::time::timeout_at(deadline, self.s.read(&mut chunk))
                .await
                .expect("no SSE event within 5 s")
                .unwrap();
            assert!(n > 0, "SSE stream closed");
            self.buf
                .push_str(&String::from_utf8_lossy(&chunk[..n]).replace("\r\n", "\n"));
        }
    }
}

#[tokio::test]
async fn list_and_rollout_views_use_the_plugin_words() {
    let c = sim().await;
    put_rollout(&c, "default", "step2-paused").await;
    let d = start(&c, None, false).await;

    let page = wait_view(d.addr, "the rollout", |_| true).await;
    let list = get(d.addr, "/api/rollouts").await;
    let row = &list["rollouts"][0];
    assert_eq!(row["name"], NAME);
    assert_eq!(row["namespace"], "default");
    assert_eq!(row["phase"], "Progressing");
    assert_eq!(row["step"], "2/3");
    assert_eq!(row["state"], "StepPaused");
    assert_eq!(row["weight"], "50%");
    assert_eq!(row["ready"], "2/2");
    assert_eq!(row["analysis"], "-");

    assert_eq!(page["position"], "step 2/3 StepPaused");
    assert_eq!(page["waitingFor"], "waiting for approval");
    assert_eq!(page["traffic"], "50% of traffic");
    let steps = page["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    assert_eq!(steps[1]["current"], true);
    assert_eq!(steps[0]["done"], true);
    assert_eq!(steps[0]["weight"], "match");
    assert_eq!(
        steps[1]["text"],
        "replicas 50% · traffic 50% · until approved"
    );
    // What the buttons offer is what the plans allow.
    assert_eq!(
        page["actions"],
        json!(["approve", "promote-full", "abort", "pause", "undo"])
    );
    // The routing object is named but does not exist in this cluster.
    assert_eq!(page["routing"][0]["kind"], "VirtualService");
    assert_eq!(page["routing"][0]["missing"], true);

    // The page of a rollout that does not exist.
    let (code, v) = http(d.addr, "GET", "/api/rollouts/default/nope", &[], "").await;
    assert_eq!(code, 404);
    assert_eq!(
        v["message"],
        "rollout 'nope' not found in namespace 'default'"
    );

    // A page on another domain rebound to 127.0.0.1 gets nothing.
    let (code, v) = http(
        d.addr,
        "GET",
        "/api/rollouts",
        &["Host: evil.example:3100"],
        "",
    )
    .await;
    assert_eq!(code, 403, "{v}");
    let (code, _) = http(d.addr, "GET", "/api/rollouts", &["Host: localhost"], "").await;
    assert_eq!(code, 200);

    // The app and its assets come from the binary.
    let (code, html) = http(d.addr, "GET", "/", &[], "").await;
    assert_eq!(code, 200);
    assert!(html.as_str().unwrap().contains("/assets/app.js"));
    let (code, _) = http(d.addr, "GET", "/assets/charts.js", &[], "").await;
    assert_eq!(code, 200);
}

#[tokio::test]
async fn changes_are_pushed_over_sse() {
    let c = sim().await;
    put_rollout(&c, "default", "step2-paused").await;
    let d = start(&c, Some("default"), false).await;
    wait_view(d.addr, "the rollout", |_| true).await;

    let mut list = Sse::open(d.addr, "/api/stream").await;
    let mut one = Sse::open(d.addr, &format!("/api/rollouts/default/{NAME}/stream")).await;
    assert_eq!(list.next().await["rollouts"][0]["step"], "2/3");
    assert_eq!(one.next().await["rollout"]["state"], "StepPaused");

    set_status(
        &c,
        "default",
        json!({"canaryStatus": {"currentStepIndex": 3, "currentStepState": "StepUpgrade",
                                "canaryReplicas": 3, "canaryReadyReplicas": 1}}),
    )
    .await;
    let v = one.next().await;
    assert_eq!(v["rollout"]["step"], "3/3");
    assert_eq!(v["waitingFor"], "waiting for 1/3 canary pods to be ready");
    // Step 3's routing is not in place yet: the weight shown is step 2's.
    assert_eq!(v["rollout"]["weight"], "50%");
    assert_eq!(
        v["actions"],
        json!(["promote-full", "abort", "pause", "undo"])
    );
    let l = list.next().await;
    assert_eq!(l["rollouts"][0]["ready"], "1/3");
}

#[tokio::test]
async fn approve_from_the_page_is_guarded_like_the_cli() {
    let c = sim().await;
    put_rollout(&c, "default", "step2-paused").await;
    let d = start(&c, Some("default"), false).await;
    wait_view(d.addr, "the rollout", |_| true).await;
    let seen = json!({"step": 2, "state": "StepPaused"});

    // Without the dashboard's header (a form on another site): refused.
    let (code, v) = http(
        d.addr,
        "POST",
        &format!("/api/rollouts/default/{NAME}/actions/approve"),
        &["Content-Type: application/json"],
        &seen.to_string(),
    )
    .await;
    assert_eq!(code, 403, "{v}");

    let (code, v) = post(d.addr, "approve", seen.clone()).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["message"], "rollout 'rollouts-demo' approved step 2/3");
    let ro = Api::<Rollout>::namespaced(c.client(), "default")
        .get(NAME)
        .await
        .unwrap();
    let cs = ro.status.as_ref().unwrap().canary_status.as_ref().unwrap();
    assert_eq!(cs.current_step_state, StepState::StepReady);
    let events = Api::<Event>::namespaced(c.client(), "default")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].message.as_deref(),
        Some("step 2/3 approved by ramp-sim-admin (kubectl ramp)")
    );
    // The Event shows on the page.
    wait_view(d.addr, "the Approved event", |v| {
        v["events"][0]["reason"] == "Approved"
    })
    .await;

    // The same click again (the page still showed step 2 paused): the
    // server refuses the guard, nothing changes.
    let (code, v) = post(d.addr, "approve", seen).await;
    assert_eq!(code, 409, "{v}");
    assert_eq!(v["kind"], "race");
    assert_eq!(
        v["message"],
        "rollout 'rollouts-demo' moved on (now step 2/3 StepReady); not approved"
    );
    let after = Api::<Rollout>::namespaced(c.client(), "default")
        .get(NAME)
        .await
        .unwrap();
    assert_eq!(after.resource_version(), ro.resource_version());

    // Without a seen step, the plan refuses from the state just read.
    let (code, v) = post(d.addr, "approve", json!({})).await;
    assert_eq!(code, 409);
    assert_eq!(v["kind"], "refused");

    // Abort through the same path as `kubectl ramp abort`.
    let (code, v) = post(d.addr, "abort", json!({"step": 2, "state": "StepReady"})).await;
    assert_eq!(code, 200, "{v}");
    let (code, v) = post(d.addr, "nonsense", json!({})).await;
    assert_eq!(code, 404);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("unknown action 'nonsense'")
    );
    let (code, v) = post(d.addr, "approve", json!({"step": "two"})).await;
    assert_eq!(code, 400, "{v}");
}

#[tokio::test]
async fn read_only_shows_no_actions_and_refuses_them() {
    let c = sim().await;
    let before = put_rollout(&c, "default", "step2-paused").await;
    let d = start(&c, Some("default"), true).await;
    let v = wait_view(d.addr, "the rollout", |_| true).await;
    assert_eq!(v["actions"], json!([]));
    assert_eq!(v["readOnly"], true);
    let (code, v) = post(d.addr, "approve", json!({"step": 2, "state": "StepPaused"})).await;
    assert_eq!(code, 403);
    assert_eq!(v["kind"], "read_only");
    let after = Api::<Rollout>::namespaced(c.client(), "default")
        .get(NAME)
        .await
        .unwrap();
    assert_eq!(after.resource_version(), before.resource_version());
}

#[tokio::test]
async fn the_snapshot_stays_bounded_after_many_updates() {
    let c = sim().await;
    put_rollout(&c, "default", "analysis-failing").await;
    let d = start(&c, Some("default"), false).await;
    wait_view(d.addr, "the rollout", |_| true).await;
    let mut sse = Sse::open(d.addr, &format!("/api/rollouts/default/{NAME}/stream")).await;
    sse.next().await;

    // 300 measurements of one metric, one second apart, as the operator writes them.
    let n = state::HISTORY_POINTS + 60;
    for i in 0..n {
        let t = jiff::Timestamp::from_second(1_780_000_000 + i64::try_from(i).unwrap()).unwrap();
        set_status(
            &c,
            "default",
            json!({"canaryStatus": {"analysis": [{
                "name": "request-success-rate", "stepIndex": 2, "phase": "Passed",
                "lastValue": 99.0 + (i % 10) as f64 / 10.0, "thresholdRange": {"min": 99.0},
                "measurements": i + 1, "lastMeasurementTime": t.to_string()
            }]}}),
        )
        .await;
    }
    // And more Events than are kept.
    let events: Api<Event> = Api::namespaced(c.client(), "default");
    for i in 0..(state::EVENTS_PER_ROLLOUT + 20) {
        let e: Event = serde_json::from_value(json!({
            "metadata": {"name": format!("{NAME}.{i}"), "namespace": "default"},
            "involvedObject": {"kind": "Rollout", "name": NAME, "namespace": "default"},
            "reason": "Test", "message": format!("event {i}"), "type": "Normal"
        }))
        .unwrap();
        events.create(&PostParams::default(), &e).await.unwrap();
    }
    let last = format!("event {}", state::EVENTS_PER_ROLLOUT + 19);
    let page = wait_view(d.addr, "the last event", |v| {
        v["events"]
            .as_array()
            .unwrap()
            .last()
            .is_some_and(|e| e["message"] == last.as_str())
    })
    .await;
    let sizes = d.store.sizes();
    assert_eq!(
        sizes.max_points_per_metric,
        state::HISTORY_POINTS,
        "{sizes:?}"
    );
    assert_eq!(
        sizes.max_events_per_rollout,
        state::EVENTS_PER_ROLLOUT,
        "{sizes:?}"
    );
    assert_eq!(sizes.rollouts, 1);
    let history = page["metrics"][0]["history"].as_array().unwrap();
    assert_eq!(history.len(), state::HISTORY_POINTS);
    assert_eq!(history.last().unwrap()["t"], 1_780_000_000 + n as i64 - 1);
    // The open stream still answers.
    let v = sse.next().await;
    assert!(v["events"].as_array().unwrap().len() <= state::EVENTS_PER_ROLLOUT);
    let stats = get(d.addr, "/api/stats").await;
    assert_eq!(stats["max_points_per_metric"], state::HISTORY_POINTS);
    assert_eq!(stats["max_events_per_rollout"], state::EVENTS_PER_ROLLOUT);
}

#[tokio::test]
async fn canary_pods_show_why_they_are_not_ready() {
    let c = sim().await;
    put_rollout(&c, "default", "step2-upgrade").await;
    let d = start(&c, Some("default"), false).await;
    wait_view(d.addr, "the rollout", |_| true).await;
    let pods: Api<Pod> = Api::namespaced(c.client(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "workload-demo-canary-x1", "labels": {"rollouts.ramp.dev/rollout": NAME}},
        "spec": {"containers": [{"name": "web", "image": "nginx:nope"}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    // Another rollout's pod and an unlabelled pod are not shown.
    for (name, labels) in [
        ("other-x", json!({"rollouts.ramp.dev/rollout": "other"})),
        ("plain", json!({})),
    ] {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "web", "image": "nginx"}]}
        }))
        .unwrap();
        pods.create(&PostParams::default(), &p).await.unwrap();
    }
    pods.patch_status(
        "workload-demo-canary-x1",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {
            "phase": "Pending",
            "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
            "containerStatuses": [{"name": "web", "ready": false, "restartCount": 0, "image": "nginx:nope", "imageID": "",
                "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"nginx:nope\""}}}]
        }})),
    )
    .await
    .unwrap();
    let v = wait_view(d.addr, "the pod's reason", |v| {
        v["canaryPods"][0]["reason"].is_string()
    })
    .await;
    assert_eq!(
        v["canaryPods"],
        json!([{"name": "workload-demo-canary-x1", "phase": "Pending", "ready": false,
                "reason": "ImagePullBackOff: Back-off pulling image \"nginx:nope\""}])
    );
}

#[tokio::test]
async fn a_timed_pause_has_a_countdown() {
    let c = sim().await;
    put_rollout(&c, "default", "timed-pause").await;
    let since = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(18);
    set_status(
        &c,
        "default",
        json!({"canaryStatus": {"lastUpdateTime": since.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()}}),
    )
    .await;
    let d = start(&c, Some("default"), false).await;
    let v = wait_view(d.addr, "the countdown", |v| v["countdown"].is_object()).await;
    assert_eq!(v["countdown"]["duration"], 60);
    let left = v["countdown"]["remaining"].as_i64().unwrap();
    assert!((40..=42).contains(&left), "{v}");
    assert_eq!(v["waitingFor"], "paused for 60s before the next step");
    assert_eq!(
        v["steps"][2]["text"],
        "replicas 80% · traffic 80% · pause 60s"
    );
}

#[tokio::test]
async fn a_failing_metric_offers_approve_anyway_and_the_event_says_so() {
    let c = sim().await;
    put_rollout(&c, "default", "analysis-failing").await;
    let d = start(&c, Some("default"), false).await;
    let v = wait_view(d.addr, "the rollout", |_| true).await;
    let actions = v["actions"].as_array().unwrap();
    assert_eq!(actions[0], "approve-force", "{v}");
    assert!(!actions.contains(&json!("approve")), "{v}");
    assert_eq!(v["metrics"][0]["phase"], "Failed");

    let (code, v) = post(d.addr, "approve", json!({"step": 2, "state": "StepPaused"})).await;
    assert_eq!(code, 409, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("analysis is failing"),
        "{v}"
    );
    let (code, v) = post(
        d.addr,
        "approve-force",
        json!({"step": 2, "state": "StepPaused"}),
    )
    .await;
    assert_eq!(code, 200, "{v}");
    assert!(v["message"].as_str().unwrap().contains("forced"), "{v}");
    let events = Api::<Event>::namespaced(c.client(), "default")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert!(
        events[0]
            .message
            .as_deref()
            .unwrap()
            .contains("with --force while analysis was failing: request-success-rate"),
        "{:?}",
        events[0].message
    );
}
