//! Crash at every write: a scenario runs once without faults to count the operator's writes,
//! then once per write index k with the operator SIGKILLed by the sim right after its k-th
//! write is answered (`killAfterWrites`: the sim only counts, it is not told which write
//! matters). The harness restarts the operator and drives the scenario on; every run must
//! end in the same objects as the crash-free run, pause at the same steps exactly once each
//! and in order, and take the routing object through the same shapes in the same order.
//!
//! Runs share one embedded cluster, each in its own namespace with its own namespace-scoped
//! operator (whose webhooks admit only that namespace), a few at a time.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{Env, StartOptions, simapi};

/// How the Rollout routes traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Routing {
    /// A VirtualService with a canary Service (examples/canary-istio).
    Istio,
    /// A VirtualService and a DestinationRule: ramp adds a canary subset.
    Subsets,
    /// A Gateway API HTTPRoute (examples/httproute).
    HttpRoute,
}

/// What the user does during the rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// Approve every step; the rollout finishes.
    Finish,
    /// Approve step 1; abort at step 2.
    Abort,
    /// Approve step 1; at step 2 put the old template back.
    Rollback,
    /// Approve step 1; at step 2 set `spec.disabled`.
    Disable,
    /// Approve step 1; at step 2 delete the Rollout.
    Delete,
}

/// One scenario: a routing provider and a path.
#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    /// Short name (namespaces are `e2e-cw-<name>-<k>`).
    pub name: &'static str,
    /// The routing provider.
    pub routing: Routing,
    /// The user's path.
    pub path: Path,
}

const RO: &str = "demo";
const WORKLOAD: &str = "workload-demo";
const SERVICE: &str = "service-demo";

impl Scenario {
    fn manifests(&self) -> String {
        let labels = match self.routing {
            Routing::Subsets => "{app: demo, track: stable}",
            _ => "{app: demo}",
        };
        let deployment = format!(
            "apiVersion: apps/v1
kind: Deployment
metadata: {{name: {WORKLOAD}, labels: {{app: demo}}}}
spec:
  replicas: 3
  selector: {{matchLabels: {labels}}}
  template:
    metadata: {{labels: {labels}}}
    spec:
      containers:
        - name: main
          image: nginx:1.27
          ports: [{{containerPort: 80}}]
          env: [{{name: version, value: base}}]
---
apiVersion: v1
kind: Service
metadata: {{name: {SERVICE}}}
spec:
  selector: {{app: demo}}
  ports: [{{name: http, port: 80, targetPort: 80}}]
"
        );
        let steps = "      steps:
        - replicas: 1
          matches:
            - headers: [{type: Exact, name: version, value: canary}]
        - {traffic: \"50%\", replicas: \"50%\"}
        - {traffic: \"80%\", replicas: \"80%\"}
";
        let (routing_objects, refs) = match self.routing {
            Routing::Istio => (
                format!(
                    "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: vs-demo}}
spec:
  hosts: [{SERVICE}]
  http:
    - route: [{{destination: {{host: {SERVICE}}}}}]
"
                ),
                "          customNetworkRefs:
            - {apiVersion: networking.istio.io/v1, kind: VirtualService, name: vs-demo}
"
                .to_string(),
            ),
            Routing::Subsets => (
                format!(
                    "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: vs-demo}}
spec:
  hosts: [{SERVICE}]
  http:
    - route: [{{destination: {{host: {SERVICE}, subset: stable}}}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: dr-demo}}
spec:
  host: {SERVICE}
  subsets:
    - name: stable
      labels: {{track: stable}}
"
                ),
                "          customNetworkRefs:
            - {apiVersion: networking.istio.io/v1, kind: VirtualService, name: vs-demo}
            - {apiVersion: networking.istio.io/v1, kind: DestinationRule, name: dr-demo}
"
                .to_string(),
            ),
            Routing::HttpRoute => (
                format!(
                    "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: route-demo}}
spec:
  parentRefs: [{{group: \"\", kind: Service, name: {SERVICE}}}]
  rules:
    - backendRefs: [{{name: {SERVICE}, port: 80}}]
"
                ),
                "          gateway: {httpRouteName: route-demo}
"
                .to_string(),
            ),
        };
        format!(
            "{deployment}---
{routing_objects}---
apiVersion: rollouts.ramp.dev/v1beta1
kind: Rollout
metadata: {{name: {RO}}}
spec:
  workloadRef: {{apiVersion: apps/v1, kind: Deployment, name: {WORKLOAD}}}
  strategy:
    canary:
{steps}      trafficRoutings:
        - service: {SERVICE}
          gracePeriodSeconds: 0
{refs}"
        )
    }

    /// The routing objects whose every version is recorded.
    fn routing_objects(&self) -> Vec<(&'static str, &'static str)> {
        match self.routing {
            Routing::Istio => vec![("virtualservice", "vs-demo")],
            Routing::Subsets => vec![
                ("virtualservice", "vs-demo"),
                ("destinationrule", "dr-demo"),
            ],
            Routing::HttpRoute => vec![("httproute", "route-demo")],
        }
    }
}

/// What one run saw.
#[derive(Debug)]
pub struct RunReport {
    /// The kill index (0: the crash-free run).
    pub k: u64,
    /// Whether the sim killed the operator in this run.
    pub killed: bool,
    /// The write the operator was killed after (`verb resource name`).
    pub killed_after: Option<String>,
    /// The operator's writes during the scenario (crash-free run: the number of runs).
    pub writes: u64,
    /// Approvals (or other user actions) sent while the operator was down.
    pub actions_while_down: u32,
    /// The end state (see [`fingerprint`]).
    pub end: Value,
    /// The steps the Rollout paused at, in order.
    pub paused: Vec<i64>,
    /// Each routing object's distinct specs, in order.
    pub shapes: Vec<Vec<Value>>,
}

/// The shared cluster of a crash campaign.
pub struct Campaign {
    host: Env,
}

impl Default for Campaign {
    fn default() -> Self {
        Self::new()
    }
}

impl Campaign {
    /// Starts the embedded cluster the runs share.
    pub fn new() -> Campaign {
        let host = Env::start_with(
            "crash-every-write",
            StartOptions {
                no_operator: true,
                ..Default::default()
            },
        );
        Campaign { host }
    }

    fn kubeconfig(&self) -> PathBuf {
        self.host.kubeconfig.clone()
    }

    /// Runs `scenario` crash-free, then with a kill after each of the writes `ks(n)` picks
    /// (n: the crash-free run's count), `parallel` runs at a time; asserts that every run
    /// converged like the crash-free one; returns (writes crashed at, runs converged).
    pub fn run(
        &self,
        scenario: Scenario,
        ks: impl Fn(u64) -> Vec<u64>,
        parallel: usize,
    ) -> (u64, u64) {
        let started = Instant::now();
        let reference = run_once(&self.kubeconfig(), scenario, 0);
        assert!(
            reference.writes > 0,
            "{}: the crash-free run made no write",
            scenario.name
        );
        let ks = ks(reference.writes);
        let mut reports = vec![];
        for chunk in ks.chunks(parallel.max(1)) {
            let kc = self.kubeconfig();
            let handles: Vec<_> = chunk
                .iter()
                .map(|&k| {
                    let kc = kc.clone();
                    std::thread::spawn(move || run_once(&kc, scenario, k))
                })
                .collect();
            for h in handles {
                match h.join() {
                    Ok(r) => reports.push(r),
                    Err(p) => std::panic::resume_unwind(p),
                }
            }
        }
        let mut crashed = 0;
        for r in &reports {
            if r.killed {
                crashed += 1;
            }
            let at = r.killed_after.as_deref().unwrap_or("(no kill)");
            assert_eq!(
                r.end, reference.end,
                "{} k={} (after {at}): the end state differs from the crash-free run",
                scenario.name, r.k
            );
            assert_eq!(
                r.paused, reference.paused,
                "{} k={} (after {at}): paused at other steps than the crash-free run",
                scenario.name, r.k
            );
            assert_eq!(
                r.shapes, reference.shapes,
                "{} k={} (after {at}): routing went through other shapes than the crash-free run",
                scenario.name, r.k
            );
        }
        let down: u32 = reports.iter().map(|r| r.actions_while_down).sum();
        eprintln!(
            "{}: crash-free run: {} operator writes, paused at {:?}; writes crashed at: {crashed}, runs converged: {} (of {}); {down} user actions sent while the operator was down; {:.0?}",
            scenario.name,
            reference.writes,
            reference.paused,
            reports.len(),
            ks.len(),
            started.elapsed()
        );
        (crashed, reports.len() as u64)
    }
}

/// Every write index from 1 to n.
pub fn every(n: u64) -> Vec<u64> {
    (1..=n).collect()
}

/// Every `step`-th write index (1, 1 + step, …) up to n.
pub fn every_nth(step: usize) -> impl Fn(u64) -> Vec<u64> {
    move |n| (1..=n).step_by(step.max(1)).collect()
}

fn run_once(kubeconfig: &std::path::Path, scenario: Scenario, k: u64) -> RunReport {
    let scn = format!("cw-{}-{k}", scenario.name);
    let ns = format!("e2e-{scn}");
    let mut env = Env::start_with(
        &scn,
        StartOptions {
            cluster: Some(kubeconfig.to_path_buf()),
            operator_env: vec![("POD_NAME".into(), ns.clone())],
            ..Default::default()
        },
    );
    env.wait_operator_ready();
    env.apply(&scenario.manifests());
    env.wait_until(
        "the Rollout is Healthy and the Deployment has 3 ready pods",
        Duration::from_secs(60),
        |e| {
            e.rollout_status(RO)["phase"] == "Healthy"
                && e.get("deployment", WORKLOAD)
                    .is_some_and(|d| d["status"]["readyReplicas"] == 3)
        },
    );
    let rollout_rec = env.record("rollout", RO);
    let routing_recs: Vec<_> = scenario
        .routing_objects()
        .into_iter()
        .map(|(kind, name)| env.record(kind, name))
        .collect();
    // The operator's User-Agent carries its identity: POD_NAME and a suffix.
    let ua = format!("({ns}-");
    let since = simapi::last_write_seq(&env);
    let rule = (k > 0).then(|| {
        simapi::add_fault(
            &env,
            &json!({
                "userAgent": ua,
                "killAfterWrites": k,
                "killPid": env.operator_pid().expect("the operator runs"),
            }),
        )
    });

    let mut actions_while_down = 0;
    let mut approved = std::collections::BTreeSet::new();
    let mut acted = false;
    let mut template_changed = false;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(
            Instant::now() < deadline,
            "{scn}: the scenario did not end within 2 minutes (status {})",
            env.rollout_status(RO)
        );
        let down = env.operator_exited();
        if !template_changed && !down {
            // Through ramp's webhook (which may die under it: then again).
            template_changed = env
                .kubectl_try(&[
                    "set",
                    "env",
                    &format!("deployment/{WORKLOAD}"),
                    "version=canary",
                ])
                .status
                .success();
        }
        let ro = env.get("rollout", RO);
        if done(&env, scenario.path, ro.as_ref()) {
            break;
        }
        let status = ro.as_ref().map(|r| r["status"].clone()).unwrap_or_default();
        let c = &status["canaryStatus"];
        let paused_at = (c["currentStepState"] == "StepPaused")
            .then(|| c["currentStepIndex"].as_i64())
            .flatten();
        if let Some(step) = paused_at {
            let user_acts = if scenario.path == Path::Finish || step < 2 {
                !approved.contains(&step) && env.approve_try(RO, step).status.success() && {
                    approved.insert(step);
                    true
                }
            } else if step == 2 && !acted {
                acted = act(&env, scenario.path);
                acted
            } else {
                false
            };
            if user_acts && down {
                actions_while_down += 1;
            }
        }
        if down {
            env.spawn_operator();
            env.wait_operator_ready();
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    // Let the last Events and status writes land, then stop counting.
    std::thread::sleep(Duration::from_millis(500));
    let killed = rule.is_some_and(|id| {
        let st = simapi::fault(&env, id).unwrap_or_default();
        simapi::remove_fault(&env, id);
        st["killed"] == true
    });
    if env.operator_exited() {
        // Killed after one of its last writes: it must come back to the same end.
        assert!(killed, "{scn}: the operator exited on its own");
        env.spawn_operator();
        env.wait_operator_ready();
        env.wait_until(
            "the scenario's end holds after a restart",
            Duration::from_secs(60),
            |e| done(e, scenario.path, e.get("rollout", RO).as_ref()),
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let writes = simapi::writes_of(&env, &ua, since);
    let killed_after = killed
        .then(|| writes.get(k as usize - 1))
        .flatten()
        .map(|w| format!("{} {} {}", w["verb"], w["resource"], w["name"]));
    assert!(
        !env.operator_exited(),
        "{scn}: the operator exited on its own"
    );
    let end = fingerprint(&env, scenario);
    let paused = paused_steps(&rollout_rec.finish());
    let shapes = routing_recs
        .into_iter()
        .map(|r| distinct_specs(&r.finish()))
        .collect();
    RunReport {
        k,
        killed,
        killed_after,
        writes: writes.len() as u64,
        actions_while_down,
        end,
        paused,
        shapes,
    }
}

/// The user's action at step 2 for paths other than [`Path::Finish`]; false when it was
/// refused (a Deployment or Rollout spec change needs ramp's webhooks: not while the operator
/// is down), to be tried again.
fn act(env: &Env, path: Path) -> bool {
    let out = match path {
        Path::Finish => return true,
        Path::Abort => env.ramp(&["abort", RO]).output(),
        Path::Rollback => env.kubectl_try(&[
            "set",
            "env",
            &format!("deployment/{WORKLOAD}"),
            "version=base",
        ]),
        Path::Disable => env.kubectl_try(&[
            "patch",
            "rollout",
            RO,
            "--type=merge",
            "-p",
            r#"{"spec":{"disabled":true}}"#,
        ]),
        Path::Delete => env.kubectl_try(&["delete", "rollout", RO, "--wait=false"]),
    };
    out.status.success()
}

fn done(env: &Env, path: Path, ro: Option<&Value>) -> bool {
    let canary = env.get("deployment", &format!("{WORKLOAD}-canary"));
    let phase = ro.map(|r| r["status"]["phase"].clone()).unwrap_or_default();
    let settled = |e: &Env| {
        e.get("deployment", WORKLOAD).is_some_and(|d| {
            d["spec"]["paused"] != true
                && d["status"]["updatedReplicas"] == 3
                && d["status"]["readyReplicas"] == 3
                && d["status"]["replicas"] == 3
        })
    };
    match path {
        Path::Finish | Path::Rollback => phase == "Healthy" && canary.is_none() && settled(env),
        Path::Disable => phase == "Disabled" && canary.is_none() && settled(env),
        Path::Delete => ro.is_none() && canary.is_none() && settled(env),
        Path::Abort => {
            phase == "Aborted"
                && canary.is_some_and(|c| {
                    c["spec"]["replicas"] == 0 && c["status"]["replicas"].as_i64().unwrap_or(0) == 0
                })
        }
    }
}

/// The objects a user sees at the end, without what differs between runs (names of the
/// namespace, uids, versions, times, generated hashes).
pub fn fingerprint(env: &Env, scenario: Scenario) -> Value {
    let mut out = serde_json::Map::new();
    for (kind, name) in scenario.routing_objects() {
        let o = env.get(kind, name).unwrap_or_default();
        let mut annotations = o["metadata"]["annotations"].clone();
        if let Some(a) = annotations.as_object_mut() {
            a.remove("kubectl.kubernetes.io/last-applied-configuration");
        }
        out.insert(
            format!("{kind}/{name}"),
            json!({"spec": o["spec"], "annotations": annotations}),
        );
    }
    let svc = env.get("service", SERVICE).unwrap_or_default();
    out.insert("service".into(), svc["spec"]["selector"].clone());
    for name in [format!("{SERVICE}-canary"), format!("{WORKLOAD}-canary")] {
        let kind = if name.starts_with(SERVICE) {
            "service"
        } else {
            "deployment"
        };
        let o = env.get(kind, &name);
        out.insert(
            format!("{kind}/{name}"),
            json!(o.map(|o| json!({"replicas": o["spec"]["replicas"]}))),
        );
    }
    let d = env.get("deployment", WORKLOAD).unwrap_or_default();
    let mut labels = d["metadata"]["labels"].clone();
    if let Some(l) = labels.as_object_mut() {
        l.retain(|k, _| !k.starts_with("rollouts.ramp.dev/"));
    }
    out.insert(
        "deployment".into(),
        json!({
            "paused": d["spec"]["paused"],
            "env": d["spec"]["template"]["spec"]["containers"][0]["env"],
            "replicas": d["status"]["replicas"],
            "updated": d["status"]["updatedReplicas"],
            "labels": labels,
        }),
    );
    let ro = env.get("rollout", RO);
    out.insert(
        "rollout".into(),
        json!(ro.map(|r| {
            let s = &r["status"];
            let conditions: Vec<Value> = s["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| json!([c["type"], c["status"], c["reason"]]))
                .collect();
            json!({
                "phase": s["phase"],
                "step": s["canaryStatus"]["currentStepIndex"],
                "state": s["canaryStatus"]["currentStepState"],
                "finalisingStep": s["canaryStatus"]["finalisingStep"],
                "conditions": conditions,
                "finalizers": r["metadata"]["finalizers"],
            })
        })),
    );
    Value::Object(out)
}

/// The steps a recorded Rollout paused at, in order: each visit of StepPaused once.
pub fn paused_steps(versions: &[Value]) -> Vec<i64> {
    let mut out = vec![];
    let mut last: Option<(i64, String)> = None;
    for v in versions {
        let c = &v["status"]["canaryStatus"];
        let at = (
            c["currentStepIndex"].as_i64().unwrap_or(0),
            c["currentStepState"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
        if last.as_ref() != Some(&at) {
            if at.1 == "StepPaused" {
                out.push(at.0);
            }
            last = Some(at);
        }
    }
    out
}

/// The distinct consecutive specs of a recorded object.
pub fn distinct_specs(versions: &[Value]) -> Vec<Value> {
    let mut out: Vec<Value> = vec![];
    for v in versions {
        let spec = v["spec"].clone();
        if out.last() != Some(&spec) {
            out.push(spec);
        }
    }
    out
}
