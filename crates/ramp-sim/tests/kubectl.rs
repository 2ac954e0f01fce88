//! Unmodified kubectl (1.33, via the machine's dispatcher) against the sim. Each test starts
//! its own sim with its own kubeconfig and discovery cache.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers

use std::process::Stdio;
use std::time::Duration;

use ramp_sim::TestCluster;
use ramp_sim::resources::GroupResource;
use ramp_sim::store::{PatchType, WriteOptions};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

async fn kubectl_in(c: &TestCluster, args: &[&str], stdin: Option<&str>) -> Out {
    let out = c.kubectl_output(args, stdin).await.expect("kubectl runs");
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn kubectl(c: &TestCluster, args: &[&str]) -> Out {
    kubectl_in(c, args, None).await
}

async fn ok(c: &TestCluster, args: &[&str]) -> String {
    let o = kubectl(c, args).await;
    assert!(o.ok, "kubectl {args:?} failed:\n{}\n{}", o.stdout, o.stderr);
    o.stdout
}

const APP: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        env: [{name: MODE, value: blue}]
      - name: sidecar
        image: envoy:1.30
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {color: blue}
"#;

fn get_json(s: &str) -> Value {
    serde_json::from_str(s).unwrap()
}

#[tokio::test]
async fn apply_client_side_then_server_side() {
    let c = TestCluster::start().await.unwrap();
    let out = kubectl_in(&c, &["apply", "-f", "-"], Some(APP)).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stdout.contains("deployment.apps/web created"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("service/web created"));
    assert!(out.stdout.contains("configmap/settings created"));
    assert!(
        !out.stderr.to_lowercase().contains("warning"),
        "no warnings expected: {}",
        out.stderr
    );

    // Re-apply unchanged, then a change merged into the containers list by name.
    let out = kubectl_in(&c, &["apply", "-f", "-"], Some(APP)).await;
    assert!(
        out.stdout.contains("deployment.apps/web unchanged"),
        "{}",
        out.stdout
    );
    let changed = APP.replace("value: blue", "value: green");
    let out = kubectl_in(&c, &["apply", "-f", "-"], Some(&changed)).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stdout.contains("deployment.apps/web configured"),
        "{}",
        out.stdout
    );
    let d = get_json(&ok(&c, &["get", "deploy", "web", "-o", "json"]).await);
    let containers = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 2);
    assert_eq!(containers[0]["env"][0]["value"], "green");
    assert_eq!(containers[0]["image"], "nginx:1.27");
    assert_eq!(d["metadata"]["generation"], 2);

    // Server-side apply takes over and changes replicas.
    let ssa = changed.replace("replicas: 2", "replicas: 4");
    let out = kubectl_in(
        &c,
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        Some(&ssa),
    )
    .await;
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("deployment.apps/web serverside-applied"),
        "{}",
        out.stdout
    );
    let d = get_json(&ok(&c, &["get", "deploy", "web", "-o", "json"]).await);
    assert_eq!(d["spec"]["replicas"], 4);

    // Server-side apply of a new object creates it.
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa-new}\ndata: {a: b}\n";
    let out = kubectl_in(&c, &["apply", "--server-side", "-f", "-"], Some(cm)).await;
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(
        ok(&c, &["get", "cm", "ssa-new", "-o", "jsonpath={.data.a}"]).await,
        "b"
    );
}

#[tokio::test]
async fn get_table_yaml_and_watch() {
    let c = TestCluster::start().await.unwrap();
    assert!(kubectl_in(&c, &["apply", "-f", "-"], Some(APP)).await.ok);
    let table = ok(&c, &["get", "deploy,svc,cm"]).await;
    let header = table.lines().next().unwrap();
    for col in ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"] {
        assert!(header.contains(col), "{header}");
    }
    assert!(table.contains("deployment.apps/web   0/2"), "{table}");
    assert!(table.contains("CLUSTER-IP"), "{table}");
    assert!(table.contains("80/TCP"), "{table}");
    let ns = ok(&c, &["get", "ns"]).await;
    assert!(ns.contains("default") && ns.contains("kube-system") && ns.contains("Active"));

    let yaml = ok(&c, &["get", "cm", "settings", "-o", "yaml"]).await;
    let v: Value = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(v["data"]["color"], "blue");
    assert_eq!(v["metadata"]["namespace"], "default");
    assert!(v["metadata"]["resourceVersion"].as_str().is_some());
    assert!(v["metadata"]["uid"].as_str().is_some());

    let none = kubectl(&c, &["get", "cm", "missing"]).await;
    assert!(!none.ok);
    assert!(
        none.stderr.contains("configmaps \"missing\" not found"),
        "{}",
        none.stderr
    );

    // get -w: the existing object, then a change made elsewhere.
    let mut cmd = Command::from(c.kubectl());
    cmd.args(["get", "cm", "settings", "-w", "--output-watch-events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut first = Vec::new();
    while first.len() < 2 {
        let l = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        first.push(l);
    }
    assert!(
        first[0].contains("EVENT") && first[0].contains("NAME"),
        "{first:?}"
    );
    assert!(
        first[1].contains("ADDED") && first[1].contains("settings"),
        "{first:?}"
    );
    // kubectl prints the object it got, then opens its watch: give it a moment.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    c.store()
        .patch(
            &GroupResource::new("", "configmaps"),
            Some("default"),
            "settings",
            PatchType::Merge,
            &json!({"data": {"size": "xl"}}),
            None,
            &WriteOptions::default(),
        )
        .unwrap();
    let l = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(l.contains("MODIFIED") && l.contains("settings"), "{l}");
    child.kill().await.unwrap();
}

#[tokio::test]
async fn patch_merge_json_strategic_and_status() {
    let c = TestCluster::start().await.unwrap();
    assert!(kubectl_in(&c, &["apply", "-f", "-"], Some(APP)).await.ok);
    ok(
        &c,
        &["patch", "cm", "settings", "-p", r#"{"data":{"size":"m"}}"#],
    )
    .await;
    ok(
        &c,
        &[
            "patch",
            "deploy",
            "web",
            "--type=json",
            "-p",
            r#"[{"op":"replace","path":"/spec/replicas","value":3}]"#,
        ],
    )
    .await;
    ok(
        &c,
        &[
            "patch",
            "deploy",
            "web",
            "--type=strategic",
            "-p",
            r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"envoy:1.31"}]}}}}"#,
        ],
    )
    .await;
    let d = get_json(&ok(&c, &["get", "deploy", "web", "-o", "json"]).await);
    assert_eq!(d["spec"]["replicas"], 3);
    let cs = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(cs.len(), 2);
    assert_eq!(cs[1]["image"], "envoy:1.31");
    assert_eq!(cs[0]["image"], "nginx:1.27");
    assert_eq!(
        ok(
            &c,
            &["get", "cm", "settings", "-o", "jsonpath={.data.size}"]
        )
        .await,
        "m"
    );
    ok(
        &c,
        &[
            "patch",
            "deploy",
            "web",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"readyReplicas":3,"replicas":3},"spec":{"replicas":9}}"#,
        ],
    )
    .await;
    let d = get_json(&ok(&c, &["get", "deploy", "web", "-o", "json"]).await);
    assert_eq!(d["status"]["readyReplicas"], 3);
    assert_eq!(d["spec"]["replicas"], 3, "status patches leave spec alone");
    // A failing json patch test is reported.
    let bad = kubectl(
        &c,
        &[
            "patch",
            "deploy",
            "web",
            "--type=json",
            "-p",
            r#"[{"op":"test","path":"/spec/replicas","value":1}]"#,
        ],
    )
    .await;
    assert!(!bad.ok);
    assert!(bad.stderr.contains("/spec/replicas"), "{}", bad.stderr);
}

#[tokio::test]
async fn delete_waits_for_finalizer_removal() {
    let c = TestCluster::start().await.unwrap();
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  finalizers: [example.com/hold]\n";
    assert!(kubectl_in(&c, &["apply", "-f", "-"], Some(cm)).await.ok);
    let store = c.store().clone();
    let remover = tokio::spawn(async move {
        let cms = GroupResource::new("", "configmaps");
        // Wait until the delete has started, then release the finalizer.
        loop {
            let o = store.get(&cms, Some("default"), "held").unwrap();
            if o.pointer("/metadata/deletionTimestamp").is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        store
            .patch(
                &cms,
                Some("default"),
                "held",
                PatchType::Json,
                &json!([{"op": "remove", "path": "/metadata/finalizers"}]),
                None,
                &WriteOptions::default(),
            )
            .unwrap();
    });
    let start = std::time::Instant::now();
    let out = kubectl(&c, &["delete", "cm", "held", "--timeout=30s"]).await;
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stdout.contains("configmap \"held\" deleted"),
        "{}",
        out.stdout
    );
    assert!(
        start.elapsed() >= Duration::from_millis(1400),
        "kubectl delete must wait for the finalizer ({:?})",
        start.elapsed()
    );
    remover.await.unwrap();
    assert!(!kubectl(&c, &["get", "cm", "held"]).await.ok);
}

#[tokio::test]
async fn wait_for_crd_established_and_rollout_status() {
    let c = TestCluster::start().await.unwrap();
    let crd = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Phase, type: string, jsonPath: .status.phase}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
          status:
            type: object
            properties:
              phase: {type: string}
"#;
    assert!(kubectl_in(&c, &["apply", "-f", "-"], Some(crd)).await.ok);
    let out = ok(
        &c,
        &[
            "wait",
            "--for=condition=Established",
            "crd/widgets.example.com",
            "--timeout=20s",
        ],
    )
    .await;
    assert!(out.contains("condition met"), "{out}");
    let w = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 3}\n";
    let out = kubectl_in(&c, &["apply", "-f", "-"], Some(w)).await;
    assert!(out.ok, "{}", out.stderr);
    ok(
        &c,
        &[
            "patch",
            "wd",
            "w1",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"phase":"Ready"}}"#,
        ],
    )
    .await;
    let table = ok(&c, &["get", "widgets"]).await;
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, vec!["NAME", "SIZE", "PHASE"]);
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(row, vec!["w1", "3", "Ready"]);

    // rollout status: waits while the status lags, succeeds once it is set by hand.
    assert!(kubectl_in(&c, &["apply", "-f", "-"], Some(APP)).await.ok);
    let mut cmd = Command::from(c.kubectl());
    cmd.args(["rollout", "status", "deployment/web", "--timeout=30s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let deploys = GroupResource::new("apps", "deployments");
    let d = c.store().get(&deploys, Some("default"), "web").unwrap();
    let generation = d["metadata"]["generation"].clone();
    c.store()
        .patch(
            &deploys,
            Some("default"),
            "web",
            PatchType::Merge,
            &json!({"status": {"observedGeneration": generation, "replicas": 2,
                               "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2}}),
            Some(ramp_sim::store::Subresource::Status),
            &WriteOptions::default(),
        )
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("successfully rolled out"), "{stdout}");
}

#[tokio::test]
async fn auth_and_api_resources() {
    let c = TestCluster::start().await.unwrap();
    assert_eq!(
        ok(&c, &["auth", "can-i", "create", "deployments"])
            .await
            .trim(),
        "yes"
    );
    let who = ok(
        &c,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    )
    .await;
    assert_eq!(who, "ramp-sim-admin");
    let res = ok(&c, &["api-resources", "-o", "name"]).await;
    for r in [
        "deployments.apps",
        "customresourcedefinitions.apiextensions.k8s.io",
        "leases.coordination.k8s.io",
        "events.events.k8s.io",
        "mutatingwebhookconfigurations.admissionregistration.k8s.io",
        "rolebindings.rbac.authorization.k8s.io",
    ] {
        assert!(res.lines().any(|l| l == r), "{r} missing from:\n{res}");
    }
    let v = ok(&c, &["version", "-o", "json"]).await;
    let v: Value = serde_json::from_str(&v).unwrap();
    assert_eq!(v["serverVersion"]["minor"], "33");
}
