//! Fleet benchmark: the release `ramp-operator` holding N apps on a release
//! `ramp-sim` (see `make bench-fleet`).
//!
//! Each app is what the README's walk-through uses: a 1-replica Deployment, a
//! Service, a VirtualService with one route and a Rollout with a header step
//! then 50% and 80% (`gracePeriodSeconds: 0`), spread over the namespaces.
//! The run prints, per phase, the operator's RSS and CPU, the time taken and
//! the API requests the operator made (counted by the sim per user agent):
//!
//! 1. start the operator on the created fleet, until every Rollout is Healthy;
//! 2. idle for a few seconds (requests while idle);
//! 3. full rollouts of a few apps, approved at every pause (writes per rollout);
//! 4. one template change on every other app, until all are paused at step 1;
//! 5. approvals one at a time: approval answered → VirtualService watch event.
//!
//! Flags: `--apps N` (1000), `--namespaces N` (10), `--approvals N` (50),
//! `--full N` (10), `--heap-profile` (runs the operator under heaptrack),
//! `--cpu-profile` (runs it under `perf record` when installed),
//! `--watch-coalesce-ms N` (the sim's watch coalescing window; its default 20). The operator's
//! log level is `RAMP_BENCH_OPERATOR_LOG` (default `warn`), in `operator.log`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, Config, ResourceExt};
use ramp_api::Rollout;
use ramp_e2e::{bin, repo_root, shared_crds_dir};
use serde_json::{Value, json};

const BENCH_UA: &str = "ramp-bench";

struct Args {
    apps: usize,
    namespaces: usize,
    approvals: usize,
    full: usize,
    heap_profile: bool,
    cpu_profile: bool,
    /// The sim's `--watch-coalesce-ms` (its default when `None`).
    watch_coalesce_ms: Option<u64>,
}

fn parse_args() -> Args {
    let mut a = Args {
        apps: 1000,
        namespaces: 10,
        approvals: 50,
        full: 10,
        heap_profile: false,
        cpu_profile: false,
        watch_coalesce_ms: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let num = |i: usize| -> usize {
            argv.get(i + 1)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{} needs a number", argv[i]))
        };
        match argv[i].as_str() {
            "--apps" => {
                a.apps = num(i);
                i += 1;
            }
            "--namespaces" => {
                a.namespaces = num(i);
                i += 1;
            }
            "--watch-coalesce-ms" => {
                a.watch_coalesce_ms = Some(num(i) as u64);
                i += 1;
            }
            "--approvals" => {
                a.approvals = num(i);
                i += 1;
            }
            "--full" => {
                a.full = num(i);
                i += 1;
            }
            "--heap-profile" => a.heap_profile = true,
            "--cpu-profile" => a.cpu_profile = true,
            // cargo bench passes --bench.
            _ => {}
        }
        i += 1;
    }
    assert!(
        a.full + a.approvals <= a.apps,
        "--full + --approvals must not exceed --apps"
    );
    a
}

/// CPU seconds (user + system) and RSS of a process, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may contain spaces) start after ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Samples a process's RSS every 50 ms; `take()` returns the peak since the last take.
struct RssPeak {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl RssPeak {
    fn start(pid: u32) -> RssPeak {
        let peak = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let kib = (rss_mib(pid) * 1024.0) as u64;
                p.fetch_max(kib, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        RssPeak { peak, stop }
    }
    fn take(&self) -> f64 {
        self.peak.swap(0, Ordering::Relaxed) as f64 / 1024.0
    }
}

impl Drop for RssPeak {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

struct Proc {
    child: Child,
    /// The process measured (under a profiler, the profiled child).
    pid: u32,
}

impl Drop for Proc {
    fn drop(&mut self) {
        // SIGTERM first so that a profiler writes its file.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The pid of the (only) child process of `parent` named `name`, for profilers
/// that run the operator as their child.
fn child_pid(parent: u32, name: &str) -> Option<u32> {
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let comm = stat.split_once('(').and_then(|(_, r)| r.split_once(')'));
        if let Some((c, rest)) = comm {
            let ppid = rest
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u32>().ok());
            if ppid == Some(parent) && name.starts_with(c) {
                return Some(pid);
            }
        }
    }
    None
}

/// Operator requests since the last reset, by verb, from `/sim/v1/stats`.
async fn operator_requests(client: &Client) -> BTreeMap<String, u64> {
    let req = http::Request::get("/sim/v1/stats")
        .body(Vec::new())
        .expect("request");
    let text = client.request_text(req).await.expect("sim stats");
    let v: Value = serde_json::from_str(&text).expect("stats JSON");
    let mut out = BTreeMap::new();
    for r in v["requests"].as_array().into_iter().flatten() {
        let ua = r["userAgent"].as_str().unwrap_or_default();
        if !ua.starts_with("ramp-operator") {
            continue;
        }
        let verb = r["verb"].as_str().unwrap_or_default();
        let resource = r["resource"].as_str().unwrap_or_default();
        let n = r["count"].as_u64().unwrap_or(0);
        *out.entry(format!("{verb} {resource}")).or_default() += n;
        *out.entry(format!("= {verb}")).or_default() += n;
    }
    out
}

async fn reset_stats(client: &Client) {
    let req = http::Request::delete("/sim/v1/stats")
        .body(Vec::new())
        .expect("request");
    client.request_text(req).await.expect("reset sim stats");
}

fn reads(r: &BTreeMap<String, u64>) -> u64 {
    ["= get", "= list", "= watch"]
        .iter()
        .map(|k| r.get(*k).copied().unwrap_or(0))
        .sum()
}

fn writes(r: &BTreeMap<String, u64>) -> u64 {
    ["= create", "= update", "= patch", "= delete"]
        .iter()
        .map(|k| r.get(*k).copied().unwrap_or(0))
        .sum()
}

fn vs_resource() -> ApiResource {
    ApiResource {
        group: "networking.istio.io".into(),
        version: "v1".into(),
        api_version: "networking.istio.io/v1".into(),
        kind: "VirtualService".into(),
        plural: "virtualservices".into(),
    }
}

fn app_ns(args: &Args, i: usize) -> String {
    format!("fleet-{}", i % args.namespaces)
}

async fn create_app(client: Client, ns: String, i: usize) {
    let name = format!("app-{i}");
    let labels = json!({"app": name});
    let pp = PostParams::default();
    let dep: Deployment = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "main", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]}
            }
        }
    }))
    .expect("deployment");
    Api::<Deployment>::namespaced(client.clone(), &ns)
        .create(&pp, &dep)
        .await
        .expect("create deployment");
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": 80}]}
    }))
    .expect("service");
    Api::<Service>::namespaced(client.clone(), &ns)
        .create(&pp, &svc)
        .await
        .expect("create service");
    let vs: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": name},
        "spec": {"hosts": [name], "http": [{"route": [{"destination": {"host": name}}]}]}
    }))
    .expect("virtualservice");
    Api::<DynamicObject>::namespaced_with(client.clone(), &ns, &vs_resource())
        .create(&pp, &vs)
        .await
        .expect("create virtualservice");
    let ro: Rollout = serde_json::from_value(json!({
        "apiVersion": "rollouts.ramp.dev/v1beta1", "kind": "Rollout",
        "metadata": {"name": name},
        "spec": {
            "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "strategy": {"canary": {
                "steps": [
                    {"replicas": 1, "matches": [{"headers": [{"type": "Exact", "name": "version", "value": "canary"}]}]},
                    {"traffic": "50%", "replicas": "50%"},
                    {"traffic": "80%", "replicas": "80%"}
                ],
                "trafficRoutings": [{
                    "service": name, "gracePeriodSeconds": 0,
                    "customNetworkRefs": [{"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "name": name}]
                }]
            }}
        }
    }))
    .expect("rollout");
    Api::<Rollout>::namespaced(client, &ns)
        .create(&pp, &ro)
        .await
        .expect("create rollout");
}

async fn change_template(client: Client, ns: String, i: usize, rev: &str) {
    let patch =
        json!({"spec": {"template": {"metadata": {"annotations": {"bench/revision": rev}}}}});
    Api::<Deployment>::namespaced(client, &ns)
        .patch(
            &format!("app-{i}"),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .expect("change template");
}

fn step_of(r: &Rollout) -> (String, i32, String) {
    let s = r.status.as_ref();
    let phase = s
        .and_then(|s| s.phase)
        .map(|p| format!("{p:?}"))
        .unwrap_or_default();
    let c = s.and_then(|s| s.canary_status.as_ref());
    (
        phase,
        c.map_or(0, |c| c.current_step_index),
        c.map(|c| format!("{:?}", c.current_step_state))
            .unwrap_or_default(),
    )
}

/// Rollouts by `ns/name`, kept current by a watch.
#[derive(Clone, Default)]
struct Fleet(Arc<std::sync::Mutex<HashMap<String, Rollout>>>);

impl Fleet {
    fn start(client: Client) -> Fleet {
        let fleet = Fleet::default();
        let f = fleet.clone();
        tokio::spawn(async move {
            let api: Api<Rollout> = Api::all(client);
            let mut s = watcher(api, watcher::Config::default()).boxed();
            while let Some(ev) = s.next().await {
                let Ok(ev) = ev else { continue };
                let mut m = f.0.lock().expect("fleet");
                match ev {
                    watcher::Event::Apply(r) | watcher::Event::InitApply(r) => {
                        m.insert(key(&r), r);
                    }
                    watcher::Event::Delete(r) => {
                        m.remove(&key(&r));
                    }
                    _ => {}
                }
            }
        });
        fleet
    }

    fn count(&self, f: impl Fn(&Rollout) -> bool) -> usize {
        self.0
            .lock()
            .expect("fleet")
            .values()
            .filter(|r| f(r))
            .count()
    }

    fn get(&self, k: &str) -> Option<Rollout> {
        self.0.lock().expect("fleet").get(k).cloned()
    }

    async fn wait(&self, what: &str, timeout: Duration, want: usize, f: impl Fn(&Rollout) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            let n = self.count(&f);
            if n >= want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {n} of {want}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn key(r: &Rollout) -> String {
    format!("{}/{}", r.namespace().unwrap_or_default(), r.name_any())
}

async fn approve(client: &Client, ns: &str, name: &str, step: i32) -> bool {
    let patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/status/canaryStatus/currentStepIndex", "value": step},
        {"op": "test", "path": "/status/canaryStatus/currentStepState", "value": "StepPaused"},
        {"op": "replace", "path": "/status/canaryStatus/currentStepState", "value": "StepReady"},
    ]))
    .expect("patch");
    Api::<Rollout>::namespaced(client.clone(), ns)
        .patch_status(name, &PatchParams::default(), &Patch::<()>::Json(patch))
        .await
        .is_ok()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn start_sim(dir: &Path, args: &Args) -> (Proc, PathBuf) {
    let kc = dir.join("kubeconfig");
    let crds = shared_crds_dir();
    let child = Command::new(bin("ramp-sim"))
        .args(["serve", "--listen", "127.0.0.1:0", "--kubeconfig"])
        .arg(&kc)
        .arg("--crds")
        .arg(crds)
        .args(
            args.watch_coalesce_ms
                .map(|ms| vec!["--watch-coalesce-ms".to_string(), ms.to_string()])
                .unwrap_or_default(),
        )
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("sim.log")).expect("sim log"))
        .spawn()
        .expect("start ramp-sim");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !kc.exists() {
        assert!(Instant::now() < deadline, "ramp-sim did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = child.id();
    (Proc { child, pid }, kc)
}

fn start_operator(dir: &Path, kc: &Path, args: &Args) -> Proc {
    let op = bin("ramp-operator");
    let op_args = [
        "run",
        "--operator-namespace",
        "ramp-system",
        "--metrics-listen",
        "127.0.0.1:0",
        "--webhook-listen",
        "127.0.0.1:0",
        "--webhook-url",
        "https://127.0.0.1:0",
        "--webhook-configuration",
        "ramp-bench",
    ];
    let mut cmd = if args.heap_profile {
        let mut c = Command::new("heaptrack");
        c.arg("-o").arg(dir.join("operator.heaptrack")).arg(&op);
        c
    } else if args.cpu_profile {
        let mut c = Command::new("perf");
        c.args(["record", "-g", "-F", "199", "-o"])
            .arg(dir.join("operator.perf"))
            .arg("--")
            .arg(&op);
        c
    } else {
        Command::new(&op)
    };
    let child = cmd
        .args(op_args)
        .env("KUBECONFIG", kc)
        .env(
            "RUST_LOG",
            std::env::var("RAMP_BENCH_OPERATOR_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("operator.log")).expect("operator log"))
        .spawn()
        .expect("start ramp-operator");
    let mut pid = child.id();
    if args.heap_profile || args.cpu_profile {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(p) = child_pid(child.id(), "ramp-operator") {
                pid = p;
                break;
            }
            assert!(Instant::now() < deadline, "profiled operator did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Proc { child, pid }
}

async fn client_for(kc: &Path) -> Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(kc).expect("kubeconfig");
    let mut config =
        Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
            .await
            .expect("config");
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(BENCH_UA),
    ));
    Client::try_from(config).expect("client")
}

struct Row {
    what: String,
    value: String,
}

fn row(rows: &mut Vec<Row>, what: impl Into<String>, value: impl Into<String>) {
    let (what, value) = (what.into(), value.into());
    println!("  {what}: {value}");
    rows.push(Row { what, value });
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let dir = tempfile::Builder::new()
        .prefix("ramp-bench-fleet-")
        .tempdir()
        .expect("temp dir");
    let dir_path = dir.path().to_path_buf();
    println!(
        "fleet benchmark: {} apps in {} namespaces ({} cores), files in {}",
        args.apps,
        args.namespaces,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        dir_path.display()
    );
    let (sim, kc) = start_sim(&dir_path, &args);
    let client = client_for(&kc).await;
    let mut rows = Vec::new();

    // The Rollout CRD, applied server-side and established.
    let crd_yaml =
        std::fs::read_to_string(repo_root().join("charts/ramp/crds/rollouts.ramp.dev.yaml"))
            .expect("Rollout CRD");
    let crd: CustomResourceDefinition = serde_yaml::from_str(&crd_yaml).expect("CRD YAML");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(
        "rollouts.rollouts.ramp.dev",
        &PatchParams::apply("ramp-bench").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("apply CRD");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let c = crds.get("rollouts.rollouts.ramp.dev").await.expect("CRD");
        let established = c.status.and_then(|s| s.conditions).is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        });
        if established {
            break;
        }
        assert!(Instant::now() < deadline, "CRD not established");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let nss: Api<Namespace> = Api::all(client.clone());
    let mut names: Vec<String> = (0..args.namespaces).map(|i| format!("fleet-{i}")).collect();
    names.push("ramp-system".into());
    for n in names {
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": n}})).expect("ns");
        nss.create(&PostParams::default(), &ns)
            .await
            .expect("namespace");
    }

    let t = Instant::now();
    futures::stream::iter(0..args.apps)
        .map(|i| create_app(client.clone(), app_ns(&args, i), i))
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
    println!(
        "created {} apps in {:.1} s",
        args.apps,
        t.elapsed().as_secs_f64()
    );
    let sim_rss = RssPeak::start(sim.pid);

    // 1. Start on the fleet.
    reset_stats(&client).await;
    let fleet = Fleet::start(client.clone());
    let t = Instant::now();
    let operator = start_operator(&dir_path, &kc, &args);
    let op_pid = operator.pid;
    let op_rss = RssPeak::start(op_pid);
    let healthy = |r: &Rollout| step_of(r).0 == "Healthy";
    fleet
        .wait("all Healthy", Duration::from_secs(600), args.apps, healthy)
        .await;
    println!("phase 1: start on the fleet");
    row(
        &mut rows,
        "start → all Healthy",
        format!("{:.1} s", t.elapsed().as_secs_f64()),
    );
    let r = operator_requests(&client).await;
    row(
        &mut rows,
        "start: operator reads / writes",
        format!("{} / {}", reads(&r), writes(&r)),
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    row(
        &mut rows,
        "RSS, all Healthy",
        format!("{:.1} MiB", rss_mib(op_pid)),
    );
    op_rss.take();

    // 2. Idle.
    reset_stats(&client).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let r = operator_requests(&client).await;
    println!("phase 2: idle for 10 s");
    row(
        &mut rows,
        "requests while idle (10 s)",
        format!("{}", reads(&r) + writes(&r)),
    );

    // 3. Full rollouts of the first `full` apps.
    reset_stats(&client).await;
    let t = Instant::now();
    let full: Vec<usize> = (0..args.full).collect();
    for &i in &full {
        change_template(client.clone(), app_ns(&args, i), i, "full").await;
    }
    let succeeded = |r: &Rollout| {
        healthy(r)
            && r.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Succeeded" && c.status == "True")
            })
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let mut done = 0;
        for &i in &full {
            let (ns, name) = (app_ns(&args, i), format!("app-{i}"));
            let Some(r) = fleet.get(&format!("{ns}/{name}")) else {
                continue;
            };
            let (phase, step, state) = step_of(&r);
            if succeeded(&r) {
                done += 1;
            } else if phase == "Progressing" && state == "StepPaused" {
                approve(&client, &ns, &name, step).await;
            }
        }
        if done == full.len() {
            break;
        }
        assert!(Instant::now() < deadline, "full rollouts did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = operator_requests(&client).await;
    println!(
        "phase 3: {} full rollouts (3 steps, approved at once)",
        args.full
    );
    row(
        &mut rows,
        "full rollout: wall time",
        format!("{:.1} s", t.elapsed().as_secs_f64()),
    );
    row(
        &mut rows,
        "full rollout: operator writes per rollout",
        format!("{:.1}", writes(&r) as f64 / args.full as f64),
    );
    for (k, v) in &r {
        if !k.starts_with('=') && !k.starts_with("watch") {
            println!("    {k}: {:.1} per rollout", *v as f64 / args.full as f64);
        }
    }
    row(
        &mut rows,
        "full rollout: operator reads per rollout",
        format!("{:.1}", reads(&r) as f64 / args.full as f64),
    );

    // 4. Mass change of every other app.
    let mass: Vec<usize> = (args.full..args.apps).collect();
    reset_stats(&client).await;
    op_rss.take();
    let cpu0 = cpu_seconds(op_pid);
    let sim_cpu0 = cpu_seconds(sim.pid);
    let t = Instant::now();
    futures::stream::iter(mass.clone())
        .map(|i| change_template(client.clone(), app_ns(&args, i), i, "mass"))
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
    let patched = t.elapsed().as_secs_f64();
    let at_step1 = |r: &Rollout| {
        let (phase, step, state) = step_of(r);
        phase == "Progressing" && step == 1 && state == "StepPaused"
    };
    fleet
        .wait(
            "all paused at step 1",
            Duration::from_secs(1800),
            mass.len(),
            at_step1,
        )
        .await;
    let took = t.elapsed().as_secs_f64();
    let cpu = cpu_seconds(op_pid) - cpu0;
    let sim_cpu = cpu_seconds(sim.pid) - sim_cpu0;
    let r = operator_requests(&client).await;
    let n = mass.len() as f64;
    println!("phase 4: one template change on {} apps", mass.len());
    row(
        &mut rows,
        "mass change: template patches sent",
        format!("{patched:.1} s"),
    );
    row(
        &mut rows,
        "mass change → all paused at step 1",
        format!("{took:.1} s"),
    );
    row(
        &mut rows,
        "mass change: operator CPU",
        format!("{cpu:.1} s ({:.2} ms per app)", cpu * 1000.0 / n),
    );
    row(
        &mut rows,
        "mass change: operator peak RSS",
        format!("{:.1} MiB", op_rss.take()),
    );
    row(
        &mut rows,
        "mass change: operator reads / writes per app",
        format!("{:.2} / {:.2}", reads(&r) as f64 / n, writes(&r) as f64 / n),
    );
    for (k, v) in &r {
        if !k.starts_with('=') {
            println!("    {k}: {:.2} per app", *v as f64 / n);
        }
    }
    row(&mut rows, "mass change: sim CPU", format!("{sim_cpu:.1} s"));

    // 5. Approvals, one at a time, with every other Rollout active.
    let vs_api: Api<DynamicObject> = Api::all_with(client.clone(), &vs_resource());
    let seen: Arc<std::sync::Mutex<HashMap<String, Instant>>> = Arc::default();
    let s2 = seen.clone();
    tokio::spawn(async move {
        let mut s = watcher(vs_api, watcher::Config::default()).boxed();
        while let Ok(Some(ev)) = s.try_next().await {
            if let watcher::Event::Apply(o) = ev {
                let weighted = o.data["spec"]["http"][0]["route"][1]["weight"] == json!(50);
                if weighted {
                    let k = format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any());
                    s2.lock()
                        .expect("seen")
                        .entry(k)
                        .or_insert_with(Instant::now);
                }
            }
        }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut lat = Vec::new();
    for &i in mass.iter().take(args.approvals) {
        let (ns, name) = (app_ns(&args, i), format!("app-{i}"));
        let k = format!("{ns}/{name}");
        assert!(approve(&client, &ns, &name, 1).await, "approve {k}");
        let answered = Instant::now();
        let deadline = answered + Duration::from_secs(30);
        loop {
            if let Some(t) = seen.lock().expect("seen").get(&k) {
                lat.push(t.saturating_duration_since(answered).as_secs_f64() * 1000.0);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "VirtualService {k} never got 50%"
            );
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
    lat.sort_by(f64::total_cmp);
    println!(
        "phase 5: {} approvals with {} active rollouts",
        lat.len(),
        mass.len()
    );
    row(
        &mut rows,
        "approval → VirtualService written, p50 / p99",
        format!(
            "{:.1} / {:.1} ms",
            percentile(&lat, 50.0),
            percentile(&lat, 99.0)
        ),
    );
    row(
        &mut rows,
        "operator RSS at the end",
        format!("{:.1} MiB", rss_mib(op_pid)),
    );
    row(
        &mut rows,
        "sim peak RSS",
        format!("{:.1} MiB", sim_rss.take()),
    );

    println!();
    println!(
        "| {} apps, {} namespaces | value |",
        args.apps, args.namespaces
    );
    println!("| --- | --- |");
    for r in &rows {
        println!("| {} | {} |", r.what, r.value);
    }
    drop(operator);
    if args.heap_profile
        || args.cpu_profile
        || std::env::var_os("RAMP_BENCH_OPERATOR_LOG").is_some()
    {
        let keep = std::env::temp_dir().join("ramp-bench-fleet-profile");
        let _ = std::fs::remove_dir_all(&keep);
        std::fs::create_dir_all(&keep).expect("profile dir");
        for e in std::fs::read_dir(&dir_path).expect("dir").flatten() {
            let n = e.file_name().to_string_lossy().to_string();
            if n.starts_with("operator.") {
                let _ = std::fs::copy(e.path(), keep.join(&n));
            }
        }
        println!("profiles in {}", keep.display());
    }
    drop(sim);
}
