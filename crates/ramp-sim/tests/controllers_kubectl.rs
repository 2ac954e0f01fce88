//! `kubectl rollout status` against the sim with its controllers running:
//! it completes for a good rollout, waits while paused, and fails once the
//! progress deadline passes for an image that never becomes ready.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::process::Output;
use std::time::Duration;

use ramp_sim::TestCluster;
use ramp_sim::controllers::{ControllerConfig, Controllers};

struct Sim {
    cluster: TestCluster,
    _controllers: Controllers,
}

async fn sim() -> Sim {
    let cluster = TestCluster::start().await.unwrap();
    let controllers = Controllers::start(cluster.store().clone(), ControllerConfig::default());
    Sim {
        cluster,
        _controllers: controllers,
    }
}

impl Sim {
    /// Runs kubectl off the async threads (it blocks) and returns its output.
    async fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = self.cluster.kubectl();
        cmd.args(args);
        let stdin = stdin.map(str::to_owned);
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            use std::process::Stdio;
            cmd.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = cmd.spawn().unwrap();
            if let Some(input) = stdin {
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(input.as_bytes())
                    .unwrap();
            } else {
                drop(child.stdin.take());
            }
            child.wait_with_output().unwrap()
        })
        .await
        .unwrap()
    }

    async fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kubectl(args, stdin).await;
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  replicas: 3
  progressDeadlineSeconds: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: app
        image: nginx:1.25
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_status_completes_waits_while_paused_and_fails_past_the_deadline() {
    let sim = sim().await;
    sim.ok(&["apply", "-f", "-"], Some(WEB)).await;
    let out = sim
        .ok(
            &["rollout", "status", "deployment/web", "--timeout=30s"],
            None,
        )
        .await;
    assert!(out.contains("successfully rolled out"), "{out}");

    // A new image rolls out.
    sim.ok(&["set", "image", "deployment/web", "app=nginx:1.26"], None)
        .await;
    let out = sim
        .ok(
            &["rollout", "status", "deployment/web", "--timeout=30s"],
            None,
        )
        .await;
    assert!(out.contains("successfully rolled out"), "{out}");
    let images = sim
        .ok(
            &[
                "get",
                "pods",
                "-l",
                "app=web",
                "-o",
                "jsonpath={.items[*].spec.containers[0].image}",
            ],
            None,
        )
        .await;
    assert_eq!(
        images.split_whitespace().collect::<Vec<_>>(),
        vec!["nginx:1.26"; 3]
    );

    // Paused: no progress, rollout status keeps waiting.
    sim.ok(&["rollout", "pause", "deployment/web"], None).await;
    sim.ok(&["set", "image", "deployment/web", "app=nginx:1.27"], None)
        .await;
    let out = sim
        .kubectl(
            &["rollout", "status", "deployment/web", "--timeout=1s"],
            None,
        )
        .await;
    assert!(
        !out.status.success(),
        "rollout status must not succeed while paused"
    );
    let images = sim
        .ok(
            &[
                "get",
                "pods",
                "-l",
                "app=web",
                "-o",
                "jsonpath={.items[*].spec.containers[0].image}",
            ],
            None,
        )
        .await;
    assert_eq!(
        images.split_whitespace().collect::<Vec<_>>(),
        vec!["nginx:1.26"; 3]
    );
    sim.ok(&["rollout", "resume", "deployment/web"], None).await;
    let out = sim
        .ok(
            &["rollout", "status", "deployment/web", "--timeout=30s"],
            None,
        )
        .await;
    assert!(out.contains("successfully rolled out"), "{out}");

    // An image that never becomes ready: waiting, then the deadline is exceeded.
    sim.ok(&["set", "image", "deployment/web", "app=nginx:bad"], None)
        .await;
    let out = sim
        .kubectl(
            &["rollout", "status", "deployment/web", "--timeout=30s"],
            None,
        )
        .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("exceeded its progress deadline"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Waiting for deployment \"web\" rollout to finish"),
        "{stdout}"
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
}
