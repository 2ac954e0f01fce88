//! The controller in process: `controller::run` (observe, plan, execute)
//! against `ramp_sim::TestCluster`, with every API request it makes counted
//! by the client's tower layer (`ramp_operator::requests`), the same layer
//! the binary uses for `ramp_api_requests_total`.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::runtime::events::Reporter;
use kube::{Client, CustomResourceExt};
use ramp_api::{Rollout, RolloutPhase, StepState};
use ramp_operator::controller::{self, Scope};
use ramp_operator::metrics::Metrics;
use ramp_sim::TestCluster;
use ramp_sim::controllers::{ControllerConfig, Controllers};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const NS: &str = "default";

fn example(file: &str) -> Value {
    let path = format!(
        "{}/../../examples/canary-istio/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn vs_api(client: &Client) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("networking.istio.io", "v1", "VirtualService"),
        "virtualservices",
    );
    Api::namespaced_with(client.clone(), NS, &ar)
}

/// The embedded cluster with its controllers (Deployments, ReplicaSets,
/// pods, endpoints), the Rollout and Istio CRDs, and the walk-through's
/// Deployment, Service and VirtualService.
async fn cluster() -> (TestCluster, Controllers) {
    let c = TestCluster::start().await.unwrap();
    let controllers = Controllers::start(c.store().clone(), ControllerConfig::default());
    c.load_crds(&[ramp_sim::client::shared_crds_dir()]).unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(c.client());
    crds.create(&PostParams::default(), &Rollout::crd())
        .await
        .unwrap();
    let client = c.client();
    for _ in 0..100 {
        if Api::<Rollout>::namespaced(client.clone(), NS)
            .list(&Default::default())
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Api::<Deployment>::namespaced(client.clone(), NS)
        .create(
            &PostParams::default(),
            &serde_json::from_value(example("deployment.yaml")).unwrap(),
        )
        .await
        .unwrap();
    Api::<k8s_openapi::api::core::v1::Service>::namespaced(client.clone(), NS)
        .create(
            &PostParams::default(),
            &serde_json::from_value(example("service.yaml")).unwrap(),
        )
        .await
        .unwrap();
    vs_api(&client)
        .create(
            &PostParams::default(),
            &serde_json::from_value(example("virtualservice.yaml")).unwrap(),
        )
        .await
        .unwrap();
    (c, controllers)
}

/// The controller, in this process, on a client counting its requests.
struct Operator {
    metrics: Metrics,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Operator {
    async fn start(c: &TestCluster) -> Operator {
        let kc = kube::config::Kubeconfig::read_from(c.kubeconfig_path()).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        let metrics = Metrics::new();
        let client = ramp_operator::requests::counted_client(config, &metrics).unwrap();
        let stop = CancellationToken::new();
        // The admission webhooks, as the binary serves them: the sim calls
        // them on every Deployment update (the template change is paused in
        // the same write) and every Rollout write.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let bundle =
            ramp_operator::certs::CertBundle::generate(&["127.0.0.1".to_string()]).unwrap();
        ramp_operator::registration::ensure(
            &client,
            &ramp_operator::registration::Mode::Url(format!("https://127.0.0.1:{port}")),
            "ramp",
            &bundle.ca_cert_pem,
        )
        .await
        .unwrap();
        tokio::spawn(ramp_operator::webhook::run(
            client.clone(),
            listener,
            bundle.server_config().unwrap(),
            stop.clone().cancelled_owned(),
        ));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let ready_tx = std::sync::Mutex::new(Some(ready_tx));
        let task = tokio::spawn(controller::run(
            client,
            Scope { namespace: None },
            metrics.clone(),
            Reporter {
                controller: "ramp-operator".into(),
                instance: Some("in-process".into()),
            },
            true,
            ramp_operator::analysis::Analyzer::default(),
            stop.clone().cancelled_owned(),
            move || {
                if let Some(tx) = ready_tx.lock().unwrap().take() {
                    let _ = tx.send(());
                }
            },
        ));
        tokio::time::timeout(Duration::from_secs(20), ready_rx)
            .await
            .expect("the controller's caches did not sync")
            .unwrap();
        Operator {
            metrics,
            stop,
            task,
        }
    }

    /// Requests made so far, by verb.
    fn requests(&self) -> std::collections::BTreeMap<String, u64> {
        self.metrics
            .encode()
            .lines()
            .filter_map(|l| {
                let rest = l.strip_prefix("ramp_api_requests_total{verb=\"")?;
                let (verb, n) = rest.split_once("\"} ")?;
                Some((verb.to_string(), n.trim().parse().ok()?))
            })
            .collect()
    }

    fn writes(&self) -> u64 {
        let r = self.requests();
        ["create", "update", "patch", "delete"]
            .iter()
            .map(|v| r.get(*v).copied().unwrap_or(0))
            .sum()
    }

    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the controller did not stop on cancellation")
            .unwrap();
    }
}

async fn wait_for(c: &TestCluster, what: &str, done: impl Fn(&Rollout) -> bool) -> Rollout {
    let api: Api<Rollout> = Api::namespaced(c.client(), NS);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let ro = api.get("rollouts-demo").await.unwrap();
        if done(&ro) {
            return ro;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}: {:#?}",
            ro.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn phase(ro: &Rollout) -> Option<RolloutPhase> {
    ro.status.as_ref().and_then(|s| s.phase)
}

fn at(ro: &Rollout, step: i32, state: StepState) -> bool {
    ro.status
        .as_ref()
        .and_then(|s| s.canary_status.as_ref())
        .is_some_and(|c| {
            phase(ro) == Some(RolloutPhase::Progressing)
                && c.current_step_index == step
                && c.current_step_state == state
        })
}

async fn approve(c: &TestCluster, step: i32) {
    Api::<Rollout>::namespaced(c.client(), NS)
        .patch_status(
            "rollouts-demo",
            &PatchParams::default(),
            &Patch::<()>::Json(
                serde_json::from_value(json!([
                    {"op": "test", "path": "/status/canaryStatus/currentStepIndex", "value": step},
                    {"op": "test", "path": "/status/canaryStatus/currentStepState", "value": "StepPaused"},
                    {"op": "replace", "path": "/status/canaryStatus/currentStepState", "value": "StepReady"},
                ]))
                .unwrap(),
            ),
        )
        .await
        .unwrap();
}

async fn virtual_service(c: &TestCluster) -> Value {
    serde_json::to_value(vs_api(&c.client()).get("vs-demo").await.unwrap()).unwrap()
}

fn canary_weight(vs: &Value) -> Option<i64> {
    vs["spec"]["http"]
        .as_array()?
        .iter()
        .flat_map(|r| r["route"].as_array().cloned().unwrap_or_default())
        .find(|d| d["destination"]["host"] == "service-demo-canary")
        .and_then(|d| d["weight"].as_i64())
}

#[tokio::test]
async fn the_walkthrough_in_process_with_every_api_request_counted() {
    let (c, _controllers) = cluster().await;
    let op = Operator::start(&c).await;
    let started = op.requests();
    // Starting is the webhook registration (two applies), then watches
    // (with their first lists) and discovery.
    assert!(
        started.get("watch").copied().unwrap_or(0) >= 6,
        "{started:?}"
    );
    let registration = op.writes();
    assert_eq!(registration, 2, "{started:?}");

    let mut ro = example("rollout.yaml");
    ro["metadata"]["namespace"] = json!(NS);
    ro["spec"]["strategy"]["canary"]["trafficRoutings"][0]["gracePeriodSeconds"] = json!(0);
    Api::<Rollout>::namespaced(c.client(), NS)
        .create(&PostParams::default(), &serde_json::from_value(ro).unwrap())
        .await
        .unwrap();
    wait_for(&c, "Healthy", |r| phase(r) == Some(RolloutPhase::Healthy)).await;
    let original = virtual_service(&c).await;

    // Idle: no request at all (no polling, no resync).
    let before = op.requests();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(op.requests(), before, "requests while idle");

    // A template change: paused at the header step, the VirtualService
    // sending `version: canary` to the canary.
    let writes_before = op.writes();
    Api::<Deployment>::namespaced(c.client(), NS)
        .patch(
            "workload-demo",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"metadata": {"annotations": {"v": "2"}}}}})),
        )
        .await
        .unwrap();
    wait_for(&c, "step 1 paused", |r| at(r, 1, StepState::StepPaused)).await;
    let vs = virtual_service(&c).await;
    assert_eq!(
        vs["spec"]["http"][0]["match"][0]["headers"]["version"]["exact"], "canary",
        "{vs:#}"
    );
    for (step, weight) in [(1, 50), (2, 80)] {
        approve(&c, step).await;
        wait_for(&c, "the next step paused", |r| {
            at(r, step + 1, StepState::StepPaused)
        })
        .await;
        assert_eq!(canary_weight(&virtual_service(&c).await), Some(weight));
    }
    approve(&c, 3).await;
    wait_for(&c, "Healthy again", |r| {
        phase(r) == Some(RolloutPhase::Healthy)
            && r.status
                .as_ref()
                .and_then(|s| s.canary_status.as_ref())
                .is_some_and(|c| c.stable_revision == c.canary_revision)
    })
    .await;
    // Routing restored exactly, canary objects gone.
    let restored = virtual_service(&c).await;
    assert_eq!(restored["spec"], original["spec"]);
    assert_eq!(
        restored["metadata"]["annotations"],
        original["metadata"]["annotations"]
    );
    assert!(
        Api::<Deployment>::namespaced(c.client(), NS)
            .get_opt("workload-demo-canary")
            .await
            .unwrap()
            .is_none()
    );

    // What the rollout cost: no reads (everything came from the watches)
    // and a bounded number of writes (the README enumerates a minimum of 39:
    // object writes, status transitions and Events).
    let after = op.requests();
    let get = |m: &std::collections::BTreeMap<String, u64>, v: &str| m.get(v).copied().unwrap_or(0);
    assert_eq!(
        get(&after, "list"),
        get(&before, "list"),
        "lists during the rollout: {after:?}"
    );
    assert_eq!(
        get(&after, "get"),
        get(&before, "get"),
        "gets during the rollout: {after:?}"
    );
    let writes = op.writes() - writes_before;
    assert!((39..=60).contains(&writes), "{writes} writes: {after:?}");
    assert!(registration > 0);
    eprintln!(
        "measured: in-process walk-through: {writes} writes from the template change to Healthy; all requests: {after:?}"
    );
    op.stop().await;
}

#[tokio::test]
async fn a_rollout_without_its_virtual_service_reports_it_and_writes_nothing_else() {
    let (c, _controllers) = cluster().await;
    vs_api(&c.client())
        .delete("vs-demo", &Default::default())
        .await
        .unwrap();
    let op = Operator::start(&c).await;
    let mut ro = example("rollout.yaml");
    ro["metadata"]["namespace"] = json!(NS);
    Api::<Rollout>::namespaced(c.client(), NS)
        .create(&PostParams::default(), &serde_json::from_value(ro).unwrap())
        .await
        .unwrap();
    Api::<Deployment>::namespaced(c.client(), NS)
        .patch(
            "workload-demo",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"metadata": {"annotations": {"v": "2"}}}}})),
        )
        .await
        .unwrap();
    let ro = wait_for(&c, "the missing VirtualService reported", |r| {
        r.status
            .as_ref()
            .and_then(|s| s.message.as_deref())
            .is_some_and(|m| m.contains("vs-demo"))
    })
    .await;
    let message = ro.status.unwrap().message.unwrap();
    assert!(message.contains("not found"), "{message}");
    // No canary was created for a rollout that cannot route.
    assert!(
        Api::<Deployment>::namespaced(c.client(), NS)
            .get_opt("workload-demo-canary")
            .await
            .unwrap()
            .is_none()
    );
    op.stop().await;
}
