//! Helm 4 (through helm-python-sdk, which embeds Helm's Go SDK) against the embedded cluster:
//! install a chart with a Deployment, a Service, a CRD, a custom resource and RBAC objects,
//! upgrade it, roll it back and uninstall it, checking the cluster after each step.
//!
//! Needs the Python venv made by `make venv` (mk/python.mk): `$RAMP_VENV`, else `.venv` at the
//! repository root. Without it the test is skipped with a message, unless `CI` is set, when a
//! missing venv is a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{DynamicObject, ListParams};
use kube::discovery::ApiResource;
use ramp_sim::TestCluster;

mod admission_support;
use admission_support::{Pki, WebhookServer};
use serde_json::{Value, json};

const NAMESPACE: &str = "helm-test";
const RELEASE: &str = "probe";
/// Longest a single Helm action may take before the test gives up on it.
const STEP_TIMEOUT: Duration = Duration::from_secs(180);

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn venv_dir() -> PathBuf {
    match std::env::var_os("RAMP_VENV") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => manifest_dir().join("../../.venv"),
    }
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The venv's Python, or `None` when the test must be skipped (no venv, not in CI).
fn python() -> Option<PathBuf> {
    let venv = venv_dir();
    let python = venv.join("bin/python");
    if python.exists() {
        return Some(python);
    }
    assert!(
        !in_ci(),
        "CI is set but there is no Python venv with helm-python-sdk at {}: run `make venv` first \
         (or point RAMP_VENV at one)",
        venv.display()
    );
    eprintln!(
        "SKIPPED helm_lifecycle: no Python venv at {} (run `make venv` to enable the Helm test; \
         with CI set, a missing venv fails instead)",
        venv.display()
    );
    None
}

/// Runs one helm_release.py action and returns its JSON report; panics with Helm's log on failure.
async fn helm(python: &Path, cluster: &TestCluster, helm_home: &Path, args: &[&str]) -> Value {
    let (ok, report, log) = run_helm(python, cluster, helm_home, args).await;
    assert!(
        ok,
        "helm {args:?} failed: {}\n--- Helm log ---\n{log}",
        report["error"]
    );
    report
}

/// Runs one helm_release.py action: (succeeded, JSON report, Helm's log).
async fn run_helm(
    python: &Path,
    cluster: &TestCluster,
    helm_home: &Path,
    args: &[&str],
) -> (bool, Value, String) {
    let script = manifest_dir().join("tests/helm/helm_release.py");
    let chart = manifest_dir().join("tests/helm/chart");
    let mut command = tokio::process::Command::new(python);
    command
        .arg(&script)
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .args(["--namespace", NAMESPACE, "--verbose"])
        .arg("--chart")
        .arg(&chart)
        .args(args)
        .env("HELM_CACHE_HOME", helm_home.join("cache"))
        .env("HELM_CONFIG_HOME", helm_home.join("config"))
        .env("HELM_DATA_HOME", helm_home.join("data"))
        .env_remove("KUBECONFIG")
        .kill_on_drop(true);
    let output = tokio::time::timeout(STEP_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| panic!("helm {args:?} did not finish within {STEP_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report: Value = stdout
        .lines()
        .last()
        .and_then(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| {
            panic!(
                "helm {args:?}: no JSON report (exit {:?})\nstdout:\n{stdout}\nstderr:\n{stderr}",
                output.status
            )
        });
    (
        output.status.success() && report["ok"] == true,
        report,
        stderr.into_owned(),
    )
}

fn widgets(cluster: &TestCluster) -> Api<DynamicObject> {
    let ar = ApiResource {
        group: "probe.ramp.dev".into(),
        version: "v1".into(),
        api_version: "probe.ramp.dev/v1".into(),
        kind: "Widget".into(),
        plural: "widgets".into(),
    };
    Api::namespaced_with(cluster.client(), NAMESPACE, &ar)
}

/// Release Secrets by revision: `(version label, status label)`.
async fn release_secrets(cluster: &TestCluster) -> Vec<(String, String)> {
    let secrets: Api<Secret> = Api::namespaced(cluster.client(), NAMESPACE);
    let list = secrets
        .list(&ListParams::default().labels(&format!("owner=helm,name={RELEASE}")))
        .await
        .unwrap();
    let mut out: Vec<(String, String)> = list
        .items
        .iter()
        .map(|s| {
            let labels = s.metadata.labels.clone().unwrap_or_default();
            assert_eq!(s.type_.as_deref(), Some("helm.sh/release.v1"));
            assert!(
                s.data.as_ref().is_some_and(|d| d.contains_key("release")),
                "release payload stored"
            );
            (labels["version"].clone(), labels["status"].clone())
        })
        .collect();
    out.sort_by_key(|(v, _)| v.parse::<u32>().unwrap_or(0));
    out
}

/// The state the chart's values should produce.
async fn assert_release_objects(
    cluster: &TestCluster,
    replicas: i32,
    image: &str,
    size: &str,
    extra_config: bool,
) {
    let client = cluster.client();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let web = deployments.get("probe-web").await.unwrap();
    let spec = web.spec.unwrap();
    assert_eq!(spec.replicas, Some(replicas));
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.containers[0].image.as_deref(), Some(image));
    assert_eq!(pod.service_account_name.as_deref(), Some("probe-sa"));
    let annotations = web.metadata.annotations.unwrap_or_default();
    assert_eq!(
        annotations
            .get("meta.helm.sh/release-name")
            .map(String::as_str),
        Some(RELEASE)
    );
    assert_eq!(
        web.metadata.labels.unwrap_or_default()["app.kubernetes.io/managed-by"],
        "Helm"
    );

    let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    let svc = services.get("probe-web").await.unwrap().spec.unwrap();
    assert_eq!(svc.ports.unwrap()[0].port, 80);

    let widget = widgets(cluster).get("probe-widget").await.unwrap();
    assert_eq!(
        widget.data["spec"],
        json!({ "size": size, "replicas": replicas })
    );

    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
    let extra = configmaps.get_opt("probe-extra").await.unwrap();
    assert_eq!(
        extra.is_some(),
        extra_config,
        "ConfigMap probe-extra present: {extra:?}"
    );
    if let Some(cm) = extra {
        assert_eq!(cm.data.unwrap()["image"], image);
    }

    Api::<ServiceAccount>::namespaced(client.clone(), NAMESPACE)
        .get("probe-sa")
        .await
        .unwrap();
    let role = Api::<Role>::namespaced(client.clone(), NAMESPACE)
        .get("probe-reader")
        .await
        .unwrap();
    assert_eq!(
        role.rules.unwrap()[0].resources.as_deref(),
        Some(&["configmaps".to_string()][..])
    );
    let binding = Api::<RoleBinding>::namespaced(client.clone(), NAMESPACE)
        .get("probe-reader")
        .await
        .unwrap();
    assert_eq!(binding.role_ref.name, "probe-reader");
    Api::<ClusterRole>::all(client.clone())
        .get("helm-test-probe-widgets")
        .await
        .unwrap();
    let crb = Api::<ClusterRoleBinding>::all(client.clone())
        .get("helm-test-probe-widgets")
        .await
        .unwrap();
    assert_eq!(
        crb.subjects.unwrap()[0].namespace.as_deref(),
        Some(NAMESPACE)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_installs_upgrades_rolls_back_and_uninstalls_a_chart() {
    let Some(python) = python() else { return };
    let cluster = TestCluster::start().await.unwrap();
    let helm_home = tempfile::tempdir().unwrap();
    let home = helm_home.path();

    // Offline first: the chart lints clean and renders every template.
    let lint = helm(&python, &cluster, home, &["lint"]).await;
    assert_eq!(lint["crds"], json!(["crds/widgets.probe.ramp.dev.yaml"]));
    assert_eq!(lint["templates"].as_array().unwrap().len(), 5);

    // Install (into a namespace Helm creates): CRD from crds/, then the templates.
    let report = helm(
        &python,
        &cluster,
        home,
        &["install", RELEASE, "--create-namespace"],
    )
    .await;
    assert_eq!(report["release"]["revision"], 1);
    assert_eq!(report["release"]["status"], "deployed");
    let crds: Api<CustomResourceDefinition> = Api::all(cluster.client());
    let crd = crds.get("widgets.probe.ramp.dev").await.unwrap();
    let established = crd
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .any(|c| c.type_ == "Established" && c.status == "True");
    assert!(established, "the chart's CRD is established");
    assert_release_objects(&cluster, 1, "nginx:1.27", "small", false).await;
    assert_eq!(
        release_secrets(&cluster).await,
        vec![("1".into(), "deployed".into())]
    );

    // Upgrade with new values: changed objects, one new object, a second release revision.
    let values = json!({ "replicas": 3, "image": { "tag": "1.28" }, "widget": { "size": "large" }, "extraConfig": true });
    let report = helm(
        &python,
        &cluster,
        home,
        &["upgrade", RELEASE, "--values", &values.to_string()],
    )
    .await;
    assert_eq!(report["release"]["revision"], 2);
    assert_release_objects(&cluster, 3, "nginx:1.28", "large", true).await;
    assert_eq!(
        release_secrets(&cluster).await,
        vec![
            ("1".into(), "superseded".into()),
            ("2".into(), "deployed".into())
        ]
    );

    // Roll back to revision 1: revision 3 restores the old values and deletes the ConfigMap.
    let report = helm(
        &python,
        &cluster,
        home,
        &["rollback", RELEASE, "--revision", "1"],
    )
    .await;
    assert_eq!(report["release"]["revision"], 3);
    assert_eq!(report["release"]["status"], "deployed");
    assert_release_objects(&cluster, 1, "nginx:1.27", "small", false).await;
    let history = helm(&python, &cluster, home, &["history", RELEASE]).await;
    let statuses: Vec<&str> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["superseded", "superseded", "deployed"]);

    // Uninstall: every templated object and the release history go; the CRD stays (Helm never
    // deletes what it installed from crds/).
    let report = helm(&python, &cluster, home, &["uninstall", RELEASE]).await;
    assert_eq!(report["release"]["status"], "uninstalled");
    let client = cluster.client();
    assert!(
        Api::<Deployment>::namespaced(client.clone(), NAMESPACE)
            .get_opt("probe-web")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        Api::<Service>::namespaced(client.clone(), NAMESPACE)
            .get_opt("probe-web")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        Api::<ServiceAccount>::namespaced(client.clone(), NAMESPACE)
            .get_opt("probe-sa")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        Api::<Role>::namespaced(client.clone(), NAMESPACE)
            .get_opt("probe-reader")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        Api::<RoleBinding>::namespaced(client.clone(), NAMESPACE)
            .get_opt("probe-reader")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        Api::<ClusterRole>::all(client.clone())
            .get_opt("helm-test-probe-widgets")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        Api::<ClusterRoleBinding>::all(client.clone())
            .get_opt("helm-test-probe-widgets")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        widgets(&cluster)
            .get_opt("probe-widget")
            .await
            .unwrap()
            .is_none()
    );
    assert!(release_secrets(&cluster).await.is_empty());
    assert!(
        crds.get_opt("widgets.probe.ramp.dev")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_writes_go_through_admission_webhooks() {
    let Some(python) = python() else { return };
    let cluster = TestCluster::start().await.unwrap();
    let helm_home = tempfile::tempdir().unwrap();
    let pki = Pki::new(&["127.0.0.1"]);
    let webhook = WebhookServer::start(&pki, Duration::ZERO, |request: &Value| {
        if request["object"]["spec"]["size"] == "large" {
            json!({ "allowed": false, "status": { "message": "large widgets need approval" } })
        } else {
            json!({ "allowed": true })
        }
    })
    .await;
    let config = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": { "name": "widget-size" },
        "webhooks": [{
            "name": "size.probe.ramp.dev",
            "clientConfig": { "url": webhook.url("/validate"), "caBundle": pki.ca_bundle() },
            "rules": [{ "operations": ["CREATE", "UPDATE"], "apiGroups": ["probe.ramp.dev"], "apiVersions": ["v1"], "resources": ["widgets"] }],
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
        }],
    });
    let ar = ApiResource {
        group: "admissionregistration.k8s.io".into(),
        version: "v1".into(),
        api_version: "admissionregistration.k8s.io/v1".into(),
        kind: "ValidatingWebhookConfiguration".into(),
        plural: "validatingwebhookconfigurations".into(),
    };
    Api::<DynamicObject>::all_with(cluster.client(), &ar)
        .create(
            &Default::default(),
            &serde_json::from_value(config).unwrap(),
        )
        .await
        .unwrap();

    let home = helm_home.path();
    helm(
        &python,
        &cluster,
        home,
        &["install", RELEASE, "--create-namespace"],
    )
    .await;
    assert_eq!(
        webhook.calls(),
        1,
        "Helm's create of the Widget was reviewed"
    );

    let values = json!({ "widget": { "size": "large" } }).to_string();
    let (ok, report, log) = run_helm(
        &python,
        &cluster,
        home,
        &["upgrade", RELEASE, "--values", &values],
    )
    .await;
    assert!(!ok, "the upgrade must fail: {report}\n{log}");
    let error = report["error"].as_str().unwrap();
    assert!(
        error.contains("admission webhook \"size.probe.ramp.dev\" denied the request: large widgets need approval"),
        "Helm reports the webhook's message: {error}"
    );
    let widget = widgets(&cluster).get("probe-widget").await.unwrap();
    assert_eq!(
        widget.data["spec"]["size"], "small",
        "the denied change is not stored"
    );
}
