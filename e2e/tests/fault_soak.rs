//! Fault soak (issue #15, part 2): Rollouts in 10 namespaces progress at once, each approved
//! step by step by a scripted user with random delays, while the sim fails 10% of the
//! operator's requests (500, 429 with Retry-After, 409), delays each by 20–200 ms and ends
//! every watch stream of the operator after 5 s. Every Rollout must reach Healthy with its
//! routing restored exactly, pause at each step exactly once, in order (seen on a watch),
//! need exactly one approval per step, and the operator must never exit.
//!
//! `make test`: 20 Rollouts, one rollout each, within 3 minutes. `make soak` (`RAMP_SOAK=1`):
//! 100 Rollouts, rolling out one new template after another for 15 minutes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::runtime::watcher;
use ramp_e2e::{Env, StartOptions, simapi};
use serde_json::{Value, json};

const NAMESPACES: usize = 10;
const REPLICAS: i64 = 2;

struct Plan {
    rollouts: usize,
    budget: Duration,
    soak: bool,
}

fn plan() -> Plan {
    if std::env::var("RAMP_SOAK").is_ok_and(|v| v == "1") {
        Plan {
            rollouts: 100,
            budget: Duration::from_secs(15 * 60),
            soak: true,
        }
    } else {
        Plan {
            rollouts: 20,
            budget: Duration::from_secs(3 * 60),
            soak: false,
        }
    }
}

fn namespace(i: usize) -> String {
    format!("soak-{}", i % NAMESPACES)
}

fn manifests(i: usize) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: web-{i}, labels: {{app: web-{i}}}}}
spec:
  replicas: {REPLICAS}
  selector: {{matchLabels: {{app: web-{i}}}}}
  template:
    metadata: {{labels: {{app: web-{i}}}}}
    spec:
      containers:
        - name: main
          image: nginx:1.27
          env: [{{name: version, value: v0}}]
---
apiVersion: v1
kind: Service
metadata: {{name: svc-{i}}}
spec:
  selector: {{app: web-{i}}}
  ports: [{{name: http, port: 80}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: vs-{i}}}
spec:
  hosts: [svc-{i}]
  http:
    - route: [{{destination: {{host: svc-{i}}}}}]
---
apiVersion: rollouts.ramp.dev/v1beta1
kind: Rollout
metadata: {{name: ro-{i}}}
spec:
  workloadRef: {{apiVersion: apps/v1, kind: Deployment, name: web-{i}}}
  strategy:
    canary:
      steps:
        - replicas: 1
          matches:
            - headers: [{{type: Exact, name: version, value: canary}}]
        - {{traffic: \"50%\", replicas: \"50%\"}}
        - {{traffic: \"80%\", replicas: \"80%\"}}
      trafficRoutings:
        - service: svc-{i}
          gracePeriodSeconds: 0
          customNetworkRefs:
            - {{apiVersion: networking.istio.io/v1, kind: VirtualService, name: vs-{i}}}
"
    )
}

fn kubectl_in(env: &Env, ns: &str, args: &[&str], stdin: Option<&str>) {
    use std::io::Write;
    let mut c = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&env.kubeconfig)
        .arg("--cache-dir")
        .arg(env.path("kube-cache"))
        .args(["-n", ns])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        c.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    }
    drop(c.stdin.take());
    let out = c.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kubectl -n {ns} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Per Rollout: the (step, state) it went through, consecutive repeats dropped.
type Journeys = Arc<Mutex<BTreeMap<String, Vec<(i64, String)>>>>;

fn paused(journey: &[(i64, String)]) -> Vec<i64> {
    journey
        .iter()
        .filter(|(_, s)| s == "StepPaused")
        .map(|(i, _)| *i)
        .collect()
}

struct Outcome {
    approvals: BTreeMap<i64, u32>,
}

/// The scripted user of one Rollout for one round: change the template, approve each paused
/// step once after a random delay, until the new template runs everywhere.
async fn user(
    client: kube::Client,
    ar: ApiResource,
    i: usize,
    round: usize,
    deadline: Instant,
) -> Result<Outcome, String> {
    let ns = namespace(i);
    let rollouts: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let name = format!("ro-{i}");
    let version = format!("v{round}");
    let template = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "main", "env": [{"name": "version", "value": version}]}
    ]}}}});
    loop {
        match deployments
            .patch(
                &format!("web-{i}"),
                &PatchParams::default(),
                &Patch::Strategic(&template),
            )
            .await
        {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                eprintln!("{ns}/web-{i}: template change refused ({e}); again");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(format!("{ns}/web-{i}: {e}")),
        }
    }
    let mut approvals: BTreeMap<i64, u32> = BTreeMap::new();
    loop {
        if Instant::now() > deadline {
            let ro = rollouts.get(&name).await.map(|r| r.data["status"].clone());
            return Err(format!("{ns}/{name} did not finish in time: {ro:?}"));
        }
        let ro = rollouts.get(&name).await.map_err(|e| e.to_string())?;
        let c = &ro.data["status"]["canaryStatus"];
        if c["currentStepState"] == "StepPaused"
            && let Some(step) = c["currentStepIndex"].as_i64()
            && !approvals.contains_key(&step)
        {
            let delay = rand_ms(800);
            tokio::time::sleep(Duration::from_millis(delay)).await;
            let patch: json_patch::Patch = serde_json::from_value(json!([
                {"op": "test", "path": "/status/canaryStatus/currentStepIndex", "value": step},
                {"op": "test", "path": "/status/canaryStatus/currentStepState", "value": "StepPaused"},
                {"op": "replace", "path": "/status/canaryStatus/currentStepState", "value": "StepReady"}
            ]))
            .unwrap();
            if rollouts
                .patch_status(&name, &PatchParams::default(), &Patch::<()>::Json(patch))
                .await
                .is_ok()
            {
                *approvals.entry(step).or_default() += 1;
            }
        }
        if approvals.len() == 3 && ro.data["status"]["phase"] == "Healthy" {
            let d = deployments
                .get(&format!("web-{i}"))
                .await
                .map_err(|e| e.to_string())?;
            let canary = deployments
                .get_opt(&format!("web-{i}-canary"))
                .await
                .map_err(|e| e.to_string())?;
            let s = d.status.clone().unwrap_or_default();
            let unpaused = !d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
            if canary.is_none()
                && unpaused
                && s.updated_replicas == Some(REPLICAS as i32)
                && s.ready_replicas == Some(REPLICAS as i32)
                && s.replicas == Some(REPLICAS as i32)
            {
                return Ok(Outcome { approvals });
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn rand_ms(max: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish() % max
}

#[test]
fn rollouts_progress_and_restore_routing_under_faults() {
    let plan = plan();
    let started = Instant::now();
    let mut env = Env::start_with(
        "soak",
        StartOptions {
            no_operator: true,
            all_namespaces: true,
            ..Default::default()
        },
    );
    for n in 0..NAMESPACES.min(plan.rollouts) {
        env.kubectl(&["create", "namespace", &namespace(n)]).ok();
    }
    for i in 0..plan.rollouts {
        kubectl_in(
            &env,
            &namespace(i),
            &["apply", "-f", "-"],
            Some(&manifests(i)),
        );
    }
    // The faults, from the operator's start on: only its requests.
    let op = "ramp-operator";
    for (code, fraction) in [(500, 0.04), (429, 0.03), (409, 0.03)] {
        simapi::add_fault(
            &env,
            &json!({"userAgent": op, "fraction": fraction, "code": code, "retryAfterSeconds": 1}),
        );
    }
    simapi::add_fault(
        &env,
        &json!({"userAgent": op, "latencyMs": 20, "latencyMaxMs": 200}),
    );
    simapi::add_fault(&env, &json!({"userAgent": op, "closeWatchEverySeconds": 5}));

    env.start_operator();
    env.wait_operator_ready();
    env.wait_until("every Rollout is Healthy", Duration::from_secs(120), |e| {
        let all = e.kubectl(&["get", "rollouts", "-A", "-o", "json"]).ok();
        let v: Value = serde_json::from_str(&all).unwrap();
        let items = v["items"].as_array().cloned().unwrap_or_default();
        items.len() == plan.rollouts && items.iter().all(|r| r["status"]["phase"] == "Healthy")
    });
    let originals: Vec<Value> = (0..plan.rollouts)
        .map(|i| {
            let out = Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&env.kubeconfig)
                .args(["-n", &namespace(i), "get", "virtualservice"])
                .arg(format!("vs-{i}"))
                .args(["-o", "json"])
                .output()
                .unwrap();
            serde_json::from_slice::<Value>(&out.stdout).unwrap()["spec"].clone()
        })
        .collect();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let kubeconfig = env.kubeconfig.clone();
    let journeys: Journeys = Arc::default();
    let gvk = GroupVersionKind::gvk("rollouts.ramp.dev", "v1beta1", "Rollout");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "rollouts");
    let deadline = started + plan.budget;
    let (completed, rounds, approvals) = rt.block_on(async {
        let kc = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        let client = kube::Client::try_from(cfg).unwrap();
        // Every version of every Rollout, from a watch of our own (no faults on it).
        {
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
            let journeys = journeys.clone();
            tokio::spawn(async move {
                let mut events = watcher(api, watcher::Config::default()).boxed();
                while let Some(ev) = events.next().await {
                    let objs = match ev {
                        Ok(watcher::Event::Apply(o)) | Ok(watcher::Event::InitApply(o)) => vec![o],
                        _ => vec![],
                    };
                    for o in objs {
                        let key = format!(
                            "{}/{}",
                            o.metadata.namespace.clone().unwrap_or_default(),
                            o.metadata.name.clone().unwrap_or_default()
                        );
                        let c = &o.data["status"]["canaryStatus"];
                        let at = (
                            c["currentStepIndex"].as_i64().unwrap_or(0),
                            c["currentStepState"]
                                .as_str()
                                .unwrap_or_default()
                                .to_string(),
                        );
                        let mut j = journeys.lock().unwrap();
                        let seen = j.entry(key).or_default();
                        if seen.last() != Some(&at) {
                            seen.push(at);
                        }
                    }
                }
            });
        }
        let mut completed = 0;
        let mut rounds = 0;
        let mut approvals: BTreeMap<i64, u32> = BTreeMap::new();
        loop {
            rounds += 1;
            let tasks: Vec<_> = (0..plan.rollouts)
                .map(|i| tokio::spawn(user(client.clone(), ar.clone(), i, rounds, deadline)))
                .collect();
            for t in tasks {
                let outcome = t.await.unwrap();
                let outcome = outcome.unwrap_or_else(|e| panic!("{e}"));
                for (step, n) in outcome.approvals {
                    *approvals.entry(step).or_default() += n;
                }
                completed += 1;
            }
            // A soak rolls out again while time remains for a whole round.
            let per_round = started.elapsed() / rounds as u32;
            if !plan.soak || Instant::now() + per_round * 2 > deadline {
                break;
            }
        }
        (completed, rounds, approvals)
    });
    assert!(!env.operator_exited(), "the operator exited");

    let figures = simapi::faults(&env);
    let stats = simapi::stats(&env);
    simapi::clear_faults(&env);
    let injected: u64 = figures["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["failed"].as_u64().unwrap_or(0))
        .sum();
    let failed_answers: u64 = stats["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["userAgent"].as_str().unwrap_or_default().starts_with(op))
        .filter(|r| matches!(r["code"].as_u64(), Some(500 | 429 | 409)))
        .map(|r| r["count"].as_u64().unwrap_or(0))
        .sum();
    let operator_requests: u64 = stats["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["userAgent"].as_str().unwrap_or_default().starts_with(op))
        .map(|r| r["count"].as_u64().unwrap_or(0))
        .sum();

    // Every Rollout paused at 1, 2, 3 once per round, in order; one approval per step each.
    let journeys = journeys.lock().unwrap().clone();
    let expected: Vec<i64> = (0..rounds).flat_map(|_| [1, 2, 3]).collect();
    for i in 0..plan.rollouts {
        let key = format!("{}/ro-{i}", namespace(i));
        let j = journeys.get(&key).cloned().unwrap_or_default();
        assert_eq!(paused(&j), expected, "{key}: paused steps; journey {j:?}");
    }
    let want: BTreeSet<(i64, u32)> = [1, 2, 3].into_iter().map(|s| (s, completed)).collect();
    let got: BTreeSet<(i64, u32)> = approvals.into_iter().collect();
    assert_eq!(got, want, "exactly one approval per step and rollout");
    // Routing restored exactly, no canary Service left.
    for (i, original) in originals.iter().enumerate() {
        let ns = namespace(i);
        let vs = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&env.kubeconfig)
            .args(["-n", &ns, "get", "virtualservice"])
            .arg(format!("vs-{i}"))
            .args(["-o", "json"])
            .output()
            .unwrap();
        let vs: Value = serde_json::from_slice(&vs.stdout).unwrap();
        assert_eq!(&vs["spec"], original, "{ns}/vs-{i} restored exactly");
        assert!(
            vs["metadata"]["annotations"]
                .get(ramp_api::names::ORIGINAL_SPEC_ANNOTATION)
                .is_none(),
            "{ns}/vs-{i} keeps no annotation of ramp's"
        );
    }
    let canary_services = env.kubectl(&["get", "services", "-A", "-o", "name"]).ok();
    assert!(
        !canary_services.contains("-canary"),
        "no canary Service is left: {canary_services}"
    );
    let drops = &figures["watchDrops"];
    eprintln!(
        "fault soak: rollouts completed: {completed} ({} Rollouts x {rounds} round(s)) in {:.1?}; faults injected: {injected}; operator requests answered 500/429/409 (retried): {failed_answers} of {operator_requests}; watch streams ended: {}, re-established: {}, max recovery after a watch drop: {} ms (mean {} ms)",
        plan.rollouts,
        started.elapsed(),
        drops["scheduled"],
        drops["recovered"],
        drops["maxRecoveryMs"],
        drops["totalRecoveryMs"].as_u64().unwrap_or(0)
            / drops["recovered"].as_u64().unwrap_or(1).max(1),
    );
    assert!(injected > 0, "faults were injected");
    assert!(
        drops["recovered"].as_u64().unwrap_or(0) > 0,
        "watch streams were ended and re-established"
    );
}
