//! Helpers shared by the kubectl conformance tests (`kubectl_verbs.rs`, `kubectl_everyday.rs`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub use ramp_sim::TestCluster;
pub use ramp_sim::controllers::{ControllerConfig, Controllers};
use serde_json::Value;

pub struct Out {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

pub async fn run(c: &TestCluster, args: &[&str], stdin: Option<&str>) -> Out {
    let out = c.kubectl_output(args, stdin).await.expect("kubectl runs");
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs kubectl, which must succeed, and returns its stdout.
pub async fn ok(c: &TestCluster, args: &[&str]) -> String {
    let o = run(c, args, None).await;
    assert!(o.ok, "kubectl {args:?} failed:\n{}\n{}", o.stdout, o.stderr);
    o.stdout
}

/// `kubectl get TYPE NAME -o json`, parsed.
pub async fn get(c: &TestCluster, args: &[&str]) -> Value {
    let mut a = vec!["get"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&ok(c, &a).await).unwrap()
}

/// Creates with a generator and checks kubectl's line (`<resource>/<name> created`).
pub async fn create(c: &TestCluster, args: &[&str], printed: &str) {
    let mut a = vec!["create"];
    a.extend_from_slice(args);
    let out = ok(c, &a).await;
    assert_eq!(out.trim(), printed, "kubectl {a:?}");
}

/// A cluster with its controllers (Deployments, ReplicaSets, kubelet, Endpoints, Jobs).
pub async fn cluster_with_controllers() -> (TestCluster, Controllers) {
    let c = TestCluster::start().await.unwrap();
    let controllers = Controllers::start(c.store().clone(), ControllerConfig::default());
    (c, controllers)
}
