//! The e2e harness: real binaries (`ramp-sim`, `ramp-operator`, `kubectl`,
//! `kubectl-ramp`) against a cluster.
//!
//! By default every scenario starts its own embedded cluster (`ramp-sim
//! serve`). With `RAMP_E2E_KUBECONFIG` set, scenarios run against that cluster
//! instead (each in its own namespace), and the operator is expected to run
//! there already unless `RAMP_E2E_START_OPERATOR=1`.
//!
//! On failure (a panic while an [`Env`] is alive) the objects the scenario
//! touched and the operator's log are printed.

// A test harness: a failed step fails the scenario that called it, with
// its context (the workspace denies unwrap/expect in product code only).
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod crashes;
pub mod prometheus;
mod routing;
pub mod simapi;

pub use routing::{ProbeResult, RouteProbe};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Directory of the workspace's built binaries (next to this test binary).
pub fn bin_dir() -> PathBuf {
    if let Ok(d) = std::env::var("RAMP_BIN_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test> -> target/<profile>
    let mut dir = exe.parent().expect("deps dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// Path of a workspace binary; panics with a hint when it was not built.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (make test does)",
        p.display()
    );
    p
}

/// Where the upstream Istio / Gateway API CRDs are.
pub fn shared_crds_dir() -> PathBuf {
    if let Ok(d) = std::env::var("RAMP_SHARED_CRDS") {
        return PathBuf::from(d);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/crds")
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One scenario's environment.
pub struct Env {
    /// Namespace of the scenario.
    pub ns: String,
    /// Kubeconfig of the cluster.
    pub kubeconfig: PathBuf,
    dir: tempfile::TempDir,
    sim: Option<Child>,
    operator: Option<Child>,
    operator_runs: usize,
    operator_env: Vec<(String, String)>,
    operator_args: Vec<String>,
    all_namespaces: bool,
}

/// How [`Env::start_with`] sets a scenario up.
#[derive(Clone, Debug, Default)]
pub struct StartOptions {
    /// Use this running cluster (its kubeconfig) instead of starting one; its CRDs are
    /// expected to be installed.
    pub cluster: Option<PathBuf>,
    /// Do not start the operator (start it with [`Env::start_operator`]).
    pub no_operator: bool,
    /// Extra environment of the operator (e.g. `POD_NAME`, its identity and User-Agent).
    pub operator_env: Vec<(String, String)>,
    /// Extra arguments of `ramp-operator run` (e.g. `--leader-elect`).
    pub operator_args: Vec<String>,
    /// The operator watches every namespace (not only the scenario's).
    pub all_namespaces: bool,
}

impl Env {
    /// Start a fresh cluster (unless `RAMP_E2E_KUBECONFIG`), create the
    /// namespace, install the CRDs and start the operator for the namespace.
    pub fn start(scenario: &str) -> Env {
        Env::start_with(scenario, StartOptions::default())
    }

    /// [`Env::start`] with options: a shared cluster, no operator, the operator's environment.
    pub fn start_with(scenario: &str, opts: StartOptions) -> Env {
        let dir = tempfile::Builder::new()
            .prefix(&format!("ramp-e2e-{scenario}-"))
            .tempdir()
            .expect("temp dir");
        let ns = format!("e2e-{scenario}");
        let shared = opts
            .cluster
            .clone()
            .or_else(|| std::env::var("RAMP_E2E_KUBECONFIG").ok().map(PathBuf::from));
        let (kubeconfig, sim) = match shared {
            Some(kc) => (kc, None),
            None => {
                let kc = dir.path().join("kubeconfig");
                let log = std::fs::File::create(dir.path().join("sim.log")).expect("sim log");
                let child = Command::new(bin("ramp-sim"))
                    .args(["serve", "--listen", "127.0.0.1:0", "--kubeconfig"])
                    .arg(&kc)
                    .arg("--crds")
                    .arg(shared_crds_dir())
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .expect("start ramp-sim");
                let deadline = Instant::now() + Duration::from_secs(20);
                while !kc.exists() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                (kc, Some(child))
            }
        };
        let mut env = Env {
            ns,
            kubeconfig,
            dir,
            sim,
            operator: None,
            operator_runs: 0,
            operator_env: opts.operator_env.clone(),
            operator_args: opts.operator_args.clone(),
            all_namespaces: opts.all_namespaces,
        };
        env.wait_until("the API server answers", Duration::from_secs(20), |e| {
            e.kubectl_try(&["get", "--raw", "/version"])
                .status
                .success()
        });
        if opts.cluster.is_none() {
            env.kubectl(&["apply", "--server-side", "-f"])
                .arg(repo_root().join("charts/ramp/crds"))
                .ok();
        }
        env.kubectl(&["create", "namespace", &env.ns.clone()]).ok();
        env.kubectl(&[
            "wait",
            "--for=condition=Established",
            "crd/rollouts.rollouts.ramp.dev",
        ])
        .ok();
        let own_cluster = env.sim.is_some() || opts.cluster.is_some();
        if !opts.no_operator
            && (own_cluster || std::env::var("RAMP_E2E_START_OPERATOR").is_ok_and(|v| v == "1"))
        {
            env.start_operator();
        }
        env
    }

    /// Path of a file in the scenario's temporary directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Start (or restart) the operator binary for this namespace.
    pub fn start_operator(&mut self) {
        self.spawn_operator();
        // Ready when its webhook configuration is registered.
        let name = format!("ramp-{}", self.ns);
        self.wait_until(
            "the operator registered its webhooks",
            Duration::from_secs(30),
            |e| {
                e.kubectl_try(&["get", "mutatingwebhookconfiguration", &name])
                    .status
                    .success()
            },
        );
    }

    /// Start the operator binary for this namespace without waiting for it.
    pub fn spawn_operator(&mut self) {
        self.operator_runs += 1;
        let log = std::fs::File::create(self.path(&format!("operator-{}.log", self.operator_runs)))
            .expect("operator log");
        let child = Command::new(bin("ramp-operator"))
            .args([
                "run",
                "--operator-namespace",
                &self.ns,
                "--metrics-listen",
                "127.0.0.1:0",
                "--webhook-listen",
                "127.0.0.1:0",
                "--webhook-url",
                "https://127.0.0.1:0",
                "--webhook-configuration",
                &format!("ramp-{}", self.ns),
            ])
            .args(if self.all_namespaces {
                vec![]
            } else {
                vec!["--namespace".to_string(), self.ns.clone()]
            })
            .args(&self.operator_args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("RUST_LOG", "info,kube=warn")
            .envs(self.operator_env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start ramp-operator");
        self.operator = Some(child);
    }

    /// The running operator's process id.
    pub fn operator_pid(&self) -> Option<u32> {
        self.operator.as_ref().map(Child::id)
    }

    /// Whether the operator started last has exited (it is then reaped).
    pub fn operator_exited(&mut self) -> bool {
        match self.operator.as_mut().map(Child::try_wait) {
            Some(Ok(Some(_))) | Some(Err(_)) => {
                self.operator = None;
                true
            }
            Some(Ok(None)) => false,
            None => true,
        }
    }

    /// How many times the operator was started.
    pub fn operator_runs(&self) -> usize {
        self.operator_runs
    }

    /// Kill the operator with SIGKILL (a crash) and wait for it to be gone.
    pub fn kill_operator(&mut self) {
        if let Some(mut c) = self.operator.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A kubectl command for this cluster and namespace, with its own discovery cache.
    pub fn kubectl(&self, args: &[&str]) -> Kubectl {
        let mut c = Command::new("kubectl");
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.path("kube-cache"))
            .arg("-n")
            .arg(&self.ns)
            .args(args);
        // Plugins (kubectl-ramp) are found on PATH next to the other binaries.
        let path = std::env::var("PATH").unwrap_or_default();
        c.env("PATH", format!("{}:{path}", bin_dir().display()));
        c.env("NO_COLOR", "1");
        Kubectl(c)
    }

    /// Run kubectl and return its output whatever the exit status.
    pub fn kubectl_try(&self, args: &[&str]) -> Output {
        self.kubectl(args).output()
    }

    /// Apply a YAML manifest (string) in the namespace.
    pub fn apply(&self, yaml: &str) -> String {
        let f = self.path("apply.yaml");
        std::fs::write(&f, yaml).expect("write manifest");
        self.kubectl(&["apply", "-f"]).arg(&f).ok()
    }

    /// Apply the manifests of a directory of the repository (e.g. `examples/canary-istio`).
    pub fn apply_dir(&self, rel: &str) -> String {
        self.kubectl(&["apply", "-f"])
            .arg(repo_root().join(rel))
            .ok()
    }

    /// `kubectl get KIND NAME -o json`, or None when it does not exist.
    pub fn get(&self, kind: &str, name: &str) -> Option<Value> {
        let out = self.kubectl_try(&["get", kind, name, "-o", "json"]);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// `kubectl get KIND -o json` items.
    pub fn list(&self, kind: &str, selector: Option<&str>) -> Vec<Value> {
        let mut args = vec!["get", kind, "-o", "json"];
        if let Some(s) = selector {
            args.extend(["-l", s]);
        }
        let out = self.kubectl(&args).ok();
        let v: Value = serde_json::from_str(&out).unwrap_or_default();
        v["items"].as_array().cloned().unwrap_or_default()
    }

    /// Route `n` requests to `host` from inside the mesh (`ramp-sim route`).
    pub fn route(&self, host: &str, headers: &[&str], n: u32) -> Value {
        self.route_via(None, host, headers, n)
    }

    /// Route `n` requests to `host`, entering through an Istio Gateway when given.
    pub fn route_via(&self, gateway: Option<&str>, host: &str, headers: &[&str], n: u32) -> Value {
        let mut c = Command::new(bin("ramp-sim"));
        if let Some(g) = gateway {
            c.args(["route", "--gateway", g]);
        } else {
            c.arg("route");
        }
        c.arg("--kubeconfig").arg(&self.kubeconfig).args([
            "-n",
            &self.ns,
            "--host",
            host,
            "--requests",
            &n.to_string(),
            "-o",
            "json",
        ]);
        for h in headers {
            c.args(["-H", h]);
        }
        let out = c.output().expect("run ramp-sim route");
        assert!(
            out.status.success(),
            "ramp-sim route failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("route JSON")
    }

    /// Poll `cond` until it holds; panics with `what` after `timeout`.
    pub fn wait_until(&self, what: &str, timeout: Duration, mut cond: impl FnMut(&Env) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            if cond(self) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting until {what}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The Rollout's status, or Null.
    pub fn rollout_status(&self, name: &str) -> Value {
        self.get("rollout", name)
            .map(|r| r["status"].clone())
            .unwrap_or_default()
    }

    /// Wait until the Rollout is at `step` in `state` (e.g. 1, "StepPaused").
    pub fn wait_step(&self, name: &str, step: i64, state: &str) {
        self.wait_until(
            &format!("rollout {name} is at step {step} {state}"),
            Duration::from_secs(60),
            |e| {
                let s = e.rollout_status(name);
                s["canaryStatus"]["currentStepIndex"] == step
                    && s["canaryStatus"]["currentStepState"] == state
            },
        );
    }

    /// Wait until the Rollout's phase is `phase`.
    pub fn wait_phase(&self, name: &str, phase: &str) {
        self.wait_until(
            &format!("rollout {name} is {phase}"),
            Duration::from_secs(90),
            |e| e.rollout_status(name)["phase"] == phase,
        );
    }

    fn dump(&self) {
        eprintln!("==== e2e diagnostics for namespace {} ====", self.ns);
        for kind in [
            "rollouts",
            "deployments",
            "replicasets",
            "services",
            "virtualservices",
            "destinationrules",
            "httproutes",
            "pods",
            "events",
        ] {
            let out = self.kubectl_try(&["get", kind, "-o", "yaml"]);
            eprintln!("---- {kind}\n{}", String::from_utf8_lossy(&out.stdout));
        }
        for i in 1..=self.operator_runs {
            let log = std::fs::read_to_string(self.path(&format!("operator-{i}.log")))
                .unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            eprintln!(
                "---- operator log (run {i}, last lines)\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump();
        }
        self.kill_operator();
        if let Some(mut s) = self.sim.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
    }
}

/// A kubectl invocation being built.
pub struct Kubectl(Command);

impl Kubectl {
    /// Add an argument.
    pub fn arg(mut self, a: impl AsRef<std::ffi::OsStr>) -> Self {
        self.0.arg(a);
        self
    }

    /// Run and return the output whatever the status.
    pub fn output(mut self) -> Output {
        self.0.output().expect("run kubectl")
    }

    /// Run; panic with stderr unless it succeeds; return stdout.
    pub fn ok(self) -> String {
        let desc = format!("{:?}", self.0);
        let out = self.output();
        assert!(
            out.status.success(),
            "{desc} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Count in a route result's `byPod`-style map for keys matching `pred`.
pub fn count(map: &Value, pred: impl Fn(&str) -> bool) -> u64 {
    map.as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| pred(k))
                .map(|(_, v)| v.as_u64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(0)
}

impl Env {
    /// Kill the operator with SIGKILL and start it again; returns once the new
    /// process answers `/readyz` (its watch caches are synced) — unlike
    /// [`Env::start_operator`], which cannot tell a fresh registration from
    /// the one the killed process left behind.
    pub fn restart_operator(&mut self) {
        self.kill_operator();
        self.start_operator();
        self.wait_operator_ready();
    }

    /// Wait until the running operator answers `/readyz` with 200.
    pub fn wait_operator_ready(&self) {
        let log = self.path(&format!("operator-{}.log", self.operator_runs));
        self.wait_until(
            "the operator is ready (/readyz)",
            Duration::from_secs(30),
            |_| {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let Some(addr) = text
                    .lines()
                    .find(|l| l.contains("metrics and health listening"))
                    .and_then(|l| l.split("addr=").nth(1))
                    .and_then(|a| a.split_whitespace().next())
                else {
                    return false;
                };
                http_status(addr, "/readyz") == Some(200)
            },
        );
    }

    /// Record every version of one object from now on (`kubectl get -w`).
    pub fn record(&self, kind: &str, name: &str) -> Recording {
        Recording::start(self, kind, name)
    }
}

/// The status code of a plain-HTTP GET, or None when it cannot be had.
fn http_status(addr: &str, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let addr: std::net::SocketAddr = addr.parse().ok()?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut head = [0u8; 32];
    let n = s.read(&mut head).ok()?;
    let line = String::from_utf8_lossy(&head[..n]);
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Every version of one object seen by a `kubectl get -w -o json`, in order.
/// The watch is re-established (from the last version seen) if it ends.
pub struct Recording {
    seen: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    child: std::sync::Arc<std::sync::Mutex<Option<Child>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Recording {
    fn start(env: &Env, kind: &str, name: &str) -> Recording {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::{Arc, Mutex};
        let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let child: Arc<Mutex<Option<Child>>> = Arc::default();
        let base: Vec<std::ffi::OsString> = vec![
            "--kubeconfig".into(),
            env.kubeconfig.clone().into(),
            "--cache-dir".into(),
            env.path("kube-cache-watch").into(),
            "-n".into(),
            env.ns.clone().into(),
            "get".into(),
            kind.into(),
            name.into(),
            "-w".into(),
            "-o".into(),
            "json".into(),
        ];
        let (s, st, ch) = (seen.clone(), stop.clone(), child.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                let spawned = Command::new("kubectl")
                    .args(&base)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn();
                let Ok(mut c) = spawned else {
                    return;
                };
                let Some(out) = c.stdout.take() else {
                    return;
                };
                {
                    let mut slot = ch.lock().unwrap();
                    if st.load(Ordering::SeqCst) {
                        let _ = c.kill();
                        let _ = c.wait();
                        return;
                    }
                    *slot = Some(c);
                }
                let stream = serde_json::Deserializer::from_reader(std::io::BufReader::new(out))
                    .into_iter::<Value>();
                for v in stream {
                    let Ok(v) = v else { break };
                    let mut seen = s.lock().unwrap();
                    // A re-established watch starts with the current version again.
                    let rv = |o: &Value| o["metadata"]["resourceVersion"].clone();
                    if seen.last().map(rv) != Some(rv(&v)) {
                        seen.push(v);
                    }
                }
                if let Some(mut c) = ch.lock().unwrap().take() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Recording {
            seen,
            stop,
            child,
            thread: Some(thread),
        }
    }

    /// The versions seen so far.
    pub fn seen(&self) -> Vec<Value> {
        self.seen.lock().unwrap().clone()
    }

    /// Stop watching and return every version seen.
    pub fn finish(mut self) -> Vec<Value> {
        self.halt();
        self.seen()
    }

    fn halt(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(mut c) = self.child.lock().unwrap().take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        self.halt();
    }
}

impl Env {
    /// `kubectl ramp ARGS` — the plugin run through kubectl — for this cluster
    /// and namespace. (kubectl allows no flags before a plugin's name, so the
    /// kubeconfig and namespace go after the plugin's arguments.)
    pub fn ramp(&self, args: &[&str]) -> Kubectl {
        let mut c = Command::new("kubectl");
        c.arg("ramp")
            .args(args)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("-n")
            .arg(&self.ns);
        let path = std::env::var("PATH").unwrap_or_default();
        c.env("PATH", format!("{}:{path}", bin_dir().display()));
        c.env("NO_COLOR", "1");
        Kubectl(c)
    }
}

impl Kubectl {
    /// The command, to spawn it (e.g. a long-running `--watch`) or change its environment.
    pub fn into_command(self) -> Command {
        self.0
    }
}

impl Env {
    /// Every Event in the namespace (the operator records through `events.k8s.io/v1`,
    /// kubectl-ramp through `v1`; both are one storage, read here through `v1`), normalised to
    /// `{"type", "reason", "message", "object": "Kind/name"}`.
    pub fn events(&self) -> Vec<Value> {
        self.list("events", None)
            .into_iter()
            .map(|e| {
                serde_json::json!({
                    "type": e["type"],
                    "reason": e["reason"],
                    "message": e["message"],
                    "object": format!(
                        "{}/{}",
                        e["involvedObject"]["kind"].as_str().unwrap_or_default(),
                        e["involvedObject"]["name"].as_str().unwrap_or_default()
                    ),
                })
            })
            .collect()
    }
}

// ----- Helpers for the scenarios on examples/canary-istio ---------------------

impl Env {
    /// Approve `step` of `rollout` with the guarded status patch `kubectl ramp
    /// approve` sends (StepPaused → StepReady, pinned to the step); returns
    /// kubectl's output whatever the outcome (the patch fails when the step
    /// or its state moved on).
    pub fn approve_try(&self, rollout: &str, step: i64) -> Output {
        let patch = serde_json::json!([
            {"op": "test", "path": "/status/canaryStatus/currentStepIndex", "value": step},
            {"op": "test", "path": "/status/canaryStatus/currentStepState", "value": "StepPaused"},
            {"op": "replace", "path": "/status/canaryStatus/currentStepState", "value": "StepReady"}
        ]);
        self.kubectl_try(&[
            "patch",
            "rollout",
            rollout,
            "--subresource=status",
            "--type=json",
            "-p",
            &patch.to_string(),
        ])
    }

    /// Asserts that exactly one ReplicaSet selected by `selector` runs pods, with `replicas` of
    /// them: the stable one (nothing was scaled up for a canary).
    pub fn assert_only_one_replicaset_has_pods(&self, selector: &str, replicas: i64) {
        let with_pods: Vec<Value> = self
            .list("replicasets", Some(selector))
            .into_iter()
            .filter(|rs| rs["status"]["replicas"].as_i64().unwrap_or(0) > 0)
            .collect();
        assert_eq!(with_pods.len(), 1, "only the old ReplicaSet has pods");
        assert_eq!(with_pods[0]["status"]["replicas"], replicas);
    }

    /// Apply examples/canary-istio and wait until `rollouts-demo` is Healthy
    /// and `workload-demo` has its 3 pods ready. Returns the VirtualService
    /// `vs-demo` as applied (the original ramp must restore).
    pub fn start_canary_example(&self) -> Value {
        self.apply_dir("examples/canary-istio");
        let original = self.get("virtualservice", "vs-demo").expect("vs-demo");
        self.wait_phase("rollouts-demo", "Healthy");
        self.wait_until(
            "workload-demo has 3 ready pods",
            Duration::from_secs(30),
            |e| {
                e.get("deployment", "workload-demo")
                    .is_some_and(|d| d["status"]["readyReplicas"] == 3)
            },
        );
        original
    }

    /// Pods (not being deleted) of the ReplicaSets `deployment` owns, counted
    /// by their `pod-template-hash` label.
    pub fn pod_hashes(&self, deployment: &str) -> std::collections::BTreeMap<String, u64> {
        let owned: Vec<String> = self
            .list("replicasets", None)
            .into_iter()
            .filter(|rs| owner_name(rs) == Some(deployment))
            .filter_map(|rs| rs["metadata"]["name"].as_str().map(str::to_string))
            .collect();
        let mut out = std::collections::BTreeMap::new();
        for pod in self.list("pods", None) {
            if pod["metadata"]["deletionTimestamp"].is_string() {
                continue;
            }
            if !owner_name(&pod).is_some_and(|o| owned.iter().any(|n| n == o)) {
                continue;
            }
            let hash = pod["metadata"]["labels"]["pod-template-hash"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            *out.entry(hash).or_insert(0) += 1;
        }
        out
    }

    /// Change `workload-demo`'s template (`version=canary`) and approve
    /// `rollouts-demo` until it waits at `step` (StepPaused).
    pub fn example_to_step(&self, step: i64) {
        self.kubectl(&["set", "env", "deployment/workload-demo", "version=canary"])
            .ok();
        self.wait_step("rollouts-demo", 1, "StepPaused");
        for s in 1..step {
            let out = self.approve_try("rollouts-demo", s);
            assert!(
                out.status.success(),
                "approve step {s}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            self.wait_step("rollouts-demo", s + 1, "StepPaused");
        }
    }

    /// While ramp winds a rollout of examples/canary-istio down, check that
    /// routing is restored first: whenever the canary Deployment is gone (or
    /// being deleted), `vs-demo`'s spec already equals `original_vs`'s, and
    /// some observation saw the restored VirtualService while the canary
    /// Deployment still existed. Observes through the API directly (every
    /// 20 ms, much faster than kubectl) until the canary Deployment is gone,
    /// then waits until `done` holds.
    pub fn wait_routing_restored_first(
        &self,
        what: &str,
        original_vs: &Value,
        done: impl FnMut(&Env) -> bool,
    ) {
        use k8s_openapi::api::apps::v1::Deployment;
        use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};

        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        rt.block_on(async {
            let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("kubeconfig");
            let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .expect("client config");
            let client = kube::Client::try_from(cfg).expect("client");
            let deployments: Api<Deployment> = Api::namespaced(client.clone(), &self.ns);
            let gvk = GroupVersionKind::gvk("networking.istio.io", "v1", "VirtualService");
            let ar = ApiResource::from_gvk_with_plural(&gvk, "virtualservices");
            let vss: Api<DynamicObject> = Api::namespaced_with(client, &self.ns, &ar);
            let deadline = Instant::now() + Duration::from_secs(90);
            let mut restored_while_canary_ran = false;
            loop {
                // Canary first: if it is gone now, the VirtualService read
                // after it must be the original.
                let canary = deployments
                    .get_opt("workload-demo-canary")
                    .await
                    .expect("get the canary Deployment");
                let canary_gone = canary
                    .as_ref()
                    .is_none_or(|c| c.metadata.deletion_timestamp.is_some());
                let vs = vss.get("vs-demo").await.expect("get vs-demo");
                let vs_original = vs.data["spec"] == original_vs["spec"];
                if canary_gone {
                    assert!(
                        vs_original,
                        "the canary Deployment went before vs-demo was restored: {}",
                        vs.data["spec"]
                    );
                    break;
                }
                restored_while_canary_ran |= vs_original;
                assert!(
                    Instant::now() < deadline,
                    "timed out waiting until the canary Deployment is gone ({what})"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert!(
                restored_while_canary_ran,
                "vs-demo was never seen restored while the canary Deployment still existed"
            );
        });
        self.wait_until(what, Duration::from_secs(90), done);
    }

    /// Traffic on examples/canary-istio is back where it was before the
    /// rollout: `vs-demo` equals `original` (spec) and has no annotation of
    /// ramp's, `service-demo` selects `app: demo` only, and the canary
    /// Service and Deployment are gone.
    pub fn assert_example_restored(&self, original_vs: &Value) {
        let vs = self.get("virtualservice", "vs-demo").expect("vs-demo");
        assert_eq!(vs["spec"], original_vs["spec"], "vs-demo restored exactly");
        assert!(
            vs["metadata"]["annotations"]
                .get(ramp_api::names::ORIGINAL_SPEC_ANNOTATION)
                .is_none(),
            "vs-demo keeps no annotation of ramp's: {}",
            vs["metadata"]
        );
        let svc = self.get("service", "service-demo").expect("service-demo");
        assert_eq!(
            svc["spec"]["selector"],
            serde_json::json!({"app": "demo"}),
            "service-demo's selector is the original"
        );
        assert!(
            self.get("service", "service-demo-canary").is_none(),
            "the canary Service is gone"
        );
        assert!(
            self.get("deployment", "workload-demo-canary").is_none(),
            "the canary Deployment is gone"
        );
    }

    /// Wait until `workload-demo` is unpaused and runs 3 pods of one
    /// template, not `old_hash`, and all requests through the gateway reach
    /// them. Returns their `pod-template-hash`.
    pub fn wait_example_rolled_out_from(&self, old_hash: &str) -> String {
        let mut live = String::new();
        self.wait_until(
            &format!(
                "workload-demo runs 3 pods of a template other than {old_hash} and gets all traffic"
            ),
            Duration::from_secs(60),
            |e| {
                let Some(d) = e.get("deployment", "workload-demo") else {
                    return false;
                };
                if d["spec"]["paused"] == true {
                    return false;
                }
                let hashes = e.pod_hashes("workload-demo");
                let Some((hash, n)) = hashes.iter().next() else {
                    return false;
                };
                if hashes.len() != 1 || *n != 3 || hash == old_hash {
                    return false;
                }
                let r = e.route_via(Some("simple-gateway"), "service-demo", &[], 200);
                live = hash.clone();
                r["byPodTemplateHash"][hash] == 200
            },
        );
        live
    }
}

/// Name of an object's controller owner.
pub fn owner_name(obj: &Value) -> Option<&str> {
    obj["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|o| o["controller"] == true)
        .or_else(|| obj["metadata"]["ownerReferences"].get(0))?["name"]
        .as_str()
}
