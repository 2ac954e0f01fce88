//! The Helm chart `charts/ramp`, driven through helm-python-sdk (Helm 4's Go SDK) by
//! `e2e/helm/ramp_chart.py`:
//!
//! - it lints clean in strict mode, with default and with non-default values;
//! - rendered with several sets of values, it grants exactly the RBAC the operator's code uses,
//!   passes the `restricted` Pod Security Standard, passes only flags `ramp-operator run`
//!   accepts, and makes the PDB and the webhook objects only when they apply;
//! - installed into a fresh embedded cluster (`ramp-sim serve`), every object is there with the
//!   same content, the operator binary started with the Deployment's own arguments finds the
//!   chart's webhook configurations, Lease and Secret names; `upgrade` changes what the values
//!   change; `uninstall` removes the objects and keeps the CRD; invalid values fail at install
//!   with the schema's message naming the field.
//!
//! The operator image cannot run inside the embedded cluster (its pods are simulated), so the
//! in-cluster checks are on the chart's objects; the operator runs beside it as a local process.
//!
//! Needs the Python venv made by `make venv` (mk/python.mk): `$RAMP_VENV`, else `.venv` at the
//! repository root. Without it the tests are skipped with a message, unless `CI` is set, when a
//! missing venv is a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::ListParams;
use kube::{Api, Client};
use ramp_e2e::{bin, repo_root, shared_crds_dir};
use serde_json::{Value, json};

/// Namespace of the install test (the one the README's `helm install` uses).
const NAMESPACE: &str = "ramp-system";
/// Longest a single Helm action may take before the test gives up on it.
const STEP_TIMEOUT: Duration = Duration::from_secs(180);
/// The label the mutating webhook's objectSelector requires (ramp_api::names::CONTROLLED_BY_LABEL).
const CONTROLLED_BY_LABEL: &str = "rollouts.ramp.dev/controlled-by";

// ---------------------------------------------------------------------------------------------
// The Python driver

fn venv_dir() -> PathBuf {
    match std::env::var_os("RAMP_VENV") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => repo_root().join(".venv"),
    }
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The venv's Python, or `None` when the test must be skipped (no venv, not in CI).
fn python(test: &str) -> Option<PathBuf> {
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
        "SKIPPED {test}: no Python venv at {} (run `make venv` to enable the Helm chart tests; \
         with CI set, a missing venv fails instead)",
        venv.display()
    );
    None
}

/// Runs ramp_chart.py and its Go SDK; Helm's state (cache, config) lives in a temporary home.
struct Helm {
    python: PathBuf,
    home: tempfile::TempDir,
    kubeconfig: Option<PathBuf>,
}

/// What one driver run reported.
struct Outcome {
    ok: bool,
    report: Value,
    log: String,
}

impl Helm {
    fn new(python: PathBuf, kubeconfig: Option<PathBuf>) -> Helm {
        let home = tempfile::Builder::new()
            .prefix("ramp-chart-helm-")
            .tempdir()
            .unwrap();
        Helm {
            python,
            home,
            kubeconfig,
        }
    }

    fn run(&self, args: &[&str], values: Option<&Value>) -> Outcome {
        let mut command = Command::new(&self.python);
        command
            .arg(repo_root().join("e2e/helm/ramp_chart.py"))
            .arg("--chart")
            .arg(repo_root().join("charts/ramp"))
            .args(["--namespace", NAMESPACE, "--verbose"])
            .env("HELM_CACHE_HOME", self.home.path().join("cache"))
            .env("HELM_CONFIG_HOME", self.home.path().join("config"))
            .env("HELM_DATA_HOME", self.home.path().join("data"))
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(kc) = &self.kubeconfig {
            command.arg("--kubeconfig").arg(kc);
        }
        if let Some(v) = values {
            command.arg("--values").arg(v.to_string());
        }
        command.args(args);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.python.display()));
        let output = wait_with_timeout(child, STEP_TIMEOUT)
            .unwrap_or_else(|| panic!("helm {args:?} did not finish within {STEP_TIMEOUT:?}"));
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
        Outcome {
            ok: output.status.success() && report["ok"] == true,
            report,
            log: stderr.into_owned(),
        }
    }

    /// Runs an action that must succeed; returns its report.
    fn ok(&self, args: &[&str], values: Option<&Value>) -> Value {
        let out = self.run(args, values);
        assert!(
            out.ok,
            "helm {args:?} with values {values:?} failed: {}\n--- Helm log ---\n{}",
            out.report["error"], out.log
        );
        out.report
    }

    /// Every object the chart renders for `values` as release `release`, by (kind, name).
    fn render(&self, release: &str, values: &Value) -> Objects {
        let report = self.ok(&["render", release], Some(values));
        assert_eq!(
            report["crds"],
            json!(["crds/rollouts.ramp.dev.yaml"]),
            "the chart ships the Rollout CRD in crds/"
        );
        let mut objects = BTreeMap::new();
        for (template, text) in report["templates"].as_object().unwrap() {
            if template.ends_with("NOTES.txt") {
                continue;
            }
            for doc in serde_yaml::Deserializer::from_str(text.as_str().unwrap()) {
                let v: Value = serde::Deserialize::deserialize(doc)
                    .unwrap_or_else(|e| panic!("{template} is not valid YAML: {e}\n{text}"));
                if v.is_null() {
                    continue;
                }
                let kind = v["kind"].as_str().unwrap().to_string();
                let name = v["metadata"]["name"].as_str().unwrap().to_string();
                let prev = objects.insert((kind.clone(), name.clone()), v);
                assert!(prev.is_none(), "{kind} {name} rendered twice");
            }
        }
        Objects(objects)
    }
}

fn wait_with_timeout(mut child: Child, timeout: Duration) -> Option<std::process::Output> {
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait().ok().flatten().is_some() {
            return child.wait_with_output().ok();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------
// What the chart should make

/// Objects by (kind, name): rendered, or read back from the cluster.
struct Objects(BTreeMap<(String, String), Value>);

impl Objects {
    fn get(&self, kind: &str, name: &str) -> &Value {
        self.0
            .get(&(kind.to_string(), name.to_string()))
            .unwrap_or_else(|| panic!("no {kind} {name}; the objects are {:?}", self.keys()))
    }

    fn keys(&self) -> BTreeSet<(String, String)> {
        self.0.keys().cloned().collect()
    }
}

/// The values a test renders or installs with, and what they should produce.
#[derive(Clone)]
struct Expect {
    /// Helm values passed.
    values: Value,
    /// Release name.
    release: &'static str,
    /// The chart's full name for the release (the name of most objects).
    fullname: &'static str,
    replicas: i64,
    leader_election: bool,
    /// (port, timeoutSeconds, cert Secret) when the webhooks are on.
    webhook: Option<(i64, i64, &'static str)>,
    watch_namespace: Option<&'static str>,
    metrics_port: i64,
    image: &'static str,
    pull_policy: &'static str,
    resources: Value,
    log_level: &'static str,
    log_format: &'static str,
    /// Extra labels of the ServiceMonitor when it is on.
    service_monitor: Option<(Value, &'static str)>,
    /// `--prometheus-url` when `analysis.prometheusUrl` is set.
    prometheus_url: Option<&'static str>,
    /// The ConfigMap of `analysis.prometheusCaConfigMap`.
    prometheus_ca: Option<&'static str>,
}

fn defaults() -> Expect {
    Expect {
        values: json!({}),
        release: "ramp",
        fullname: "ramp",
        replicas: 2,
        leader_election: true,
        webhook: Some((9443, 5, "ramp-webhook-cert")),
        watch_namespace: None,
        metrics_port: 8080,
        image: "ghcr.io/ramp-dev/ramp-operator:0.1.0",
        pull_policy: "IfNotPresent",
        resources: json!({"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}),
        log_level: "info",
        log_format: "json",
        service_monitor: None,
        prometheus_url: None,
        prometheus_ca: None,
    }
}

/// One replica, no leader election, no webhooks, one namespace, a ServiceMonitor with labels,
/// another image, tag, resources and log settings, another release name.
fn minimal_single_namespace() -> Expect {
    let resources = json!({"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}});
    Expect {
        values: json!({
            "replicaCount": 1,
            "leaderElection": {"enabled": false},
            "webhook": {"enabled": false},
            "watchNamespace": "apps",
            "metrics": {"port": 9090, "serviceMonitor": {"enabled": true, "interval": "15s", "labels": {"release": "prom", "team": "platform"}}},
            "image": {"repository": "registry.example.com/ramp/operator", "tag": "v9.9.9", "pullPolicy": "Always"},
            "resources": resources,
            "logLevel": "info,ramp_operator=debug",
            "logFormat": "text",
            "analysis": {"prometheusUrl": "https://prometheus.monitoring:9090", "prometheusCaConfigMap": "prometheus-ca"},
        }),
        release: "edge",
        fullname: "edge-ramp",
        replicas: 1,
        leader_election: false,
        webhook: None,
        watch_namespace: Some("apps"),
        metrics_port: 9090,
        image: "registry.example.com/ramp/operator:v9.9.9",
        pull_policy: "Always",
        resources,
        log_level: "info,ramp_operator=debug",
        log_format: "text",
        service_monitor: Some((json!({"release": "prom", "team": "platform"}), "15s")),
        prometheus_url: Some("https://prometheus.monitoring:9090"),
        prometheus_ca: Some("prometheus-ca"),
    }
}

/// Webhooks on with another port, timeout and Secret, scoped to one namespace; three replicas
/// without leader election.
fn webhooks_in_one_namespace() -> Expect {
    Expect {
        values: json!({
            "replicaCount": 3,
            "leaderElection": {"enabled": false},
            "watchNamespace": "shop",
            "webhook": {"port": 10250, "timeoutSeconds": 12, "certSecretName": "shop-ramp-tls"},
        }),
        release: "shop",
        fullname: "shop-ramp",
        replicas: 3,
        leader_election: false,
        webhook: Some((10250, 12, "shop-ramp-tls")),
        watch_namespace: Some("shop"),
        ..defaults()
    }
}

impl Expect {
    fn webhook_service(&self) -> String {
        format!("{}-webhook", self.fullname)
    }

    fn lease(&self) -> String {
        format!("{}-leader", self.fullname)
    }

    /// Exactly the objects the chart should make.
    fn object_keys(&self, with_service_monitor: bool) -> BTreeSet<(String, String)> {
        let f = self.fullname;
        let mut keys = vec![
            ("ServiceAccount", f.to_string()),
            ("ClusterRole", f.to_string()),
            ("ClusterRoleBinding", f.to_string()),
            ("Deployment", f.to_string()),
            ("Service", format!("{f}-metrics")),
        ];
        if self.leader_election || self.webhook.is_some() {
            keys.push(("Role", f.to_string()));
            keys.push(("RoleBinding", f.to_string()));
        }
        if self.webhook.is_some() {
            keys.push(("Service", self.webhook_service()));
            keys.push(("MutatingWebhookConfiguration", f.to_string()));
            keys.push(("ValidatingWebhookConfiguration", f.to_string()));
        }
        if self.replicas > 1 {
            keys.push(("PodDisruptionBudget", f.to_string()));
        }
        if with_service_monitor && self.service_monitor.is_some() {
            keys.push(("ServiceMonitor", f.to_string()));
        }
        keys.into_iter().map(|(k, n)| (k.to_string(), n)).collect()
    }

    /// The ClusterRole's rules, derived from every API call in crates/ramp-operator/src.
    fn cluster_rules(&self) -> Rules {
        let mut rules = rules(&[
            // controller.rs: Controller::new(rollouts) and main.rs's webhook reflector
            // (list, watch); patch_finalizers (JSON patch). Never read one by one.
            (
                "rollouts.ramp.dev",
                "rollouts",
                &[],
                &["list", "watch", "patch"],
            ),
            // controller.rs write_status: replace_status (PUT).
            ("rollouts.ramp.dev", "rollouts/status", &[], &["update"]),
            // controller.rs: watchers (list, watch); observe get_opt (get); ApplyDeployment is
            // server-side apply, authorized as create when it creates the canary; PatchDeployment
            // (merge patch); DeleteDeployment.
            (
                "apps",
                "deployments",
                &[],
                &["get", "list", "watch", "create", "patch", "delete"],
            ),
            // controller.rs: ReplicaSets watched into a compacted cache (list, watch).
            ("apps", "replicasets", &[], &["list", "watch"]),
            // controller.rs: canary pods watched by ramp's label; listed by selector in observe.
            ("", "pods", &[], &["list", "watch"]),
            // controller.rs: watcher (list, watch); ApplyService (SSA: create, patch);
            // PatchService; DeleteService. No get.
            (
                "",
                "services",
                &[],
                &["list", "watch", "create", "patch", "delete"],
            ),
            // controller.rs: routing watchers (list, watch), get_opt when no cache, and
            // PatchRouting (JSON patch), for VirtualService, DestinationRule and HTTPRoute.
            (
                "networking.istio.io",
                "virtualservices",
                &[],
                &["get", "list", "watch", "patch"],
            ),
            (
                "networking.istio.io",
                "destinationrules",
                &[],
                &["get", "list", "watch", "patch"],
            ),
            (
                "gateway.networking.k8s.io",
                "httproutes",
                &[],
                &["get", "list", "watch", "patch"],
            ),
            // kube-runtime Recorder::publish: events.k8s.io/v1 create, then merge patch of a series.
            ("events.k8s.io", "events", &[], &["create", "patch"]),
        ]);
        if self.webhook.is_some() {
            // registration.rs inject: get_opt, then a JSON patch of caBundle; only ramp's own.
            let name = [self.fullname];
            rules.extend(self::rules(&[
                (
                    "admissionregistration.k8s.io",
                    "mutatingwebhookconfigurations",
                    &name,
                    &["get", "patch"],
                ),
                (
                    "admissionregistration.k8s.io",
                    "validatingwebhookconfigurations",
                    &name,
                    &["get", "patch"],
                ),
            ]));
        }
        rules
    }

    /// The namespaced Role's rules: the Lease (leader.rs) and the certificate Secret (certs.rs).
    fn role_rules(&self) -> Rules {
        let mut out = Rules::new();
        if self.leader_election {
            let lease = self.lease();
            // leader.rs: get_opt, create, replace (renew / take over / release).
            out.extend(rules(&[
                ("coordination.k8s.io", "leases", &[], &["create"]),
                (
                    "coordination.k8s.io",
                    "leases",
                    &[lease.as_str()],
                    &["get", "update"],
                ),
            ]));
        }
        if let Some((_, _, secret)) = self.webhook {
            // certs.rs load_or_create: get_opt, create, replace; get again after a 409.
            out.extend(rules(&[
                ("", "secrets", &[], &["create"]),
                ("", "secrets", &[secret], &["get", "update"]),
            ]));
        }
        out
    }
}

/// RBAC grants normalised: (apiGroup, resource, resourceNames) -> verbs.
type Rules = BTreeMap<(String, String, Vec<String>), BTreeSet<String>>;

type RuleSpec<'a> = (&'a str, &'a str, &'a [&'a str], &'a [&'a str]);

fn rules(spec: &[RuleSpec<'_>]) -> Rules {
    let mut out = Rules::new();
    for (group, resource, names, verbs) in spec {
        let mut names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        names.sort();
        let entry = out
            .entry((group.to_string(), resource.to_string(), names))
            .or_default();
        for v in *verbs {
            assert!(entry.insert(v.to_string()), "verb {v} listed twice");
        }
    }
    out
}

/// A ClusterRole's or Role's rules, normalised; wildcards and non-resource rules are refused.
fn rules_of(role: &Value) -> Rules {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    let mut out = Rules::new();
    for rule in role["rules"].as_array().cloned().unwrap_or_default() {
        assert!(
            rule.get("nonResourceURLs").is_none(),
            "no non-resource rules: {rule}"
        );
        let mut names = strings(&rule["resourceNames"]);
        names.sort();
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                for verb in strings(&rule["verbs"]) {
                    assert!(
                        !group.contains('*') && !resource.contains('*') && verb != "*",
                        "no wildcards in RBAC: {rule}"
                    );
                    out.entry((group.clone(), resource.clone(), names.clone()))
                        .or_default()
                        .insert(verb);
                }
            }
        }
    }
    out
}

/// Granted rules equal the expected ones; on failure, says what is granted but unused and what
/// is used but not granted.
fn assert_rules(granted: &Rules, want: &Rules, what: &str) {
    let flat = |r: &Rules| -> BTreeSet<(String, String, Vec<String>, String)> {
        r.iter()
            .flat_map(|((g, res, names), verbs)| {
                verbs
                    .iter()
                    .map(|v| (g.clone(), res.clone(), names.clone(), v.clone()))
            })
            .collect()
    };
    let (granted, want) = (flat(granted), flat(want));
    let extra: Vec<_> = granted.difference(&want).collect();
    let missing: Vec<_> = want.difference(&granted).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "{what}: (apiGroup, resource, resourceNames, verb)\n  granted but not used by the operator: {extra:?}\n  used by the operator but not granted: {missing:?}"
    );
}

/// `ramp-operator run --help`: each `--flag` and whether it takes a value.
fn operator_flags() -> BTreeMap<String, bool> {
    let out = Command::new(bin("ramp-operator"))
        .args(["run", "--help"])
        .output()
        .expect("run ramp-operator run --help");
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let mut flags = BTreeMap::new();
    for line in help.lines() {
        let line = line.trim_start();
        let line = line.strip_prefix("-h, ").unwrap_or(line);
        let Some(rest) = line.strip_prefix("--") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let name = words.next().unwrap().to_string();
        let takes_value = words.next().is_some_and(|w| w.starts_with('<'));
        flags.insert(name, takes_value);
    }
    assert!(
        flags.contains_key("leader-elect") && flags.contains_key("webhook-service"),
        "unexpected help text:\n{help}"
    );
    flags
}

fn str_list(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

fn env_value<'a>(container: &'a Value, name: &str) -> &'a Value {
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("container has no env {name}: {}", container["env"]))
}

/// Check every object against `exp`; `rendered` when the objects come from a render (the live
/// objects carry server defaults, so only the chart's own fields are compared).
fn check_objects(objs: &Objects, exp: &Expect, flags: &BTreeMap<String, bool>, rendered: bool) {
    let f = exp.fullname;
    assert_eq!(
        objs.keys(),
        exp.object_keys(rendered),
        "the set of objects for values {}",
        exp.values
    );
    let namespaced = [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "ServiceMonitor",
    ];
    for ((kind, name), obj) in &objs.0 {
        let meta = &obj["metadata"];
        if namespaced.contains(&kind.as_str()) {
            assert_eq!(meta["namespace"], NAMESPACE, "{kind} {name}");
        } else {
            assert!(
                meta["namespace"].is_null(),
                "{kind} {name} is cluster-scoped"
            );
        }
        assert_eq!(
            meta["labels"]["app.kubernetes.io/name"], "ramp",
            "{kind} {name}"
        );
        assert_eq!(
            meta["labels"]["app.kubernetes.io/instance"], exp.release,
            "{kind} {name}"
        );
        assert_eq!(
            meta["labels"]["app.kubernetes.io/managed-by"], "Helm",
            "{kind} {name}"
        );
    }

    // RBAC: exactly the access the code uses.
    assert_rules(
        &rules_of(objs.get("ClusterRole", f)),
        &exp.cluster_rules(),
        &format!("ClusterRole {f} for values {}", exp.values),
    );
    let cluster = exp.cluster_rules();
    assert!(
        !cluster
            .keys()
            .any(|(_, r, _)| r == "secrets" || r == "leases"),
        "no Secrets or Leases cluster-wide"
    );
    let sa = f;
    let subject = json!([{"kind": "ServiceAccount", "name": sa, "namespace": NAMESPACE}]);
    let crb = objs.get("ClusterRoleBinding", f);
    assert_eq!(crb["roleRef"]["kind"], "ClusterRole");
    assert_eq!(crb["roleRef"]["name"], f);
    assert_eq!(crb["subjects"], subject);
    if exp.leader_election || exp.webhook.is_some() {
        assert_rules(
            &rules_of(objs.get("Role", f)),
            &exp.role_rules(),
            &format!("Role {f} for values {}", exp.values),
        );
        let rb = objs.get("RoleBinding", f);
        assert_eq!(rb["roleRef"]["kind"], "Role");
        assert_eq!(rb["roleRef"]["name"], f);
        assert_eq!(rb["subjects"], subject);
    }
    assert_eq!(objs.get("ServiceAccount", sa)["metadata"]["name"], sa);

    // The Deployment.
    let dep = objs.get("Deployment", f);
    let spec = &dep["spec"];
    assert_eq!(spec["replicas"], exp.replicas);
    let selector = spec["selector"]["matchLabels"].clone();
    assert_eq!(
        selector,
        json!({"app.kubernetes.io/name": "ramp", "app.kubernetes.io/instance": exp.release})
    );
    let pod_labels = &spec["template"]["metadata"]["labels"];
    for (k, v) in selector.as_object().unwrap() {
        assert_eq!(&pod_labels[k], v, "pod label {k} matches the selector");
    }
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], sa);
    // Pod Security Standard `restricted`, pod level.
    let psc = &pod["securityContext"];
    assert_eq!(psc["runAsNonRoot"], true, "pod securityContext {psc}");
    assert_eq!(psc["seccompProfile"]["type"], "RuntimeDefault");
    assert_ne!(psc["runAsUser"], 0);
    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        assert_ne!(pod[host], true, "{host}");
    }
    assert!(
        pod["volumes"]
            .as_array()
            .is_none_or(|v| v.iter().all(|v| v.get("hostPath").is_none())),
        "no hostPath volumes"
    );
    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert_eq!(c["image"], exp.image);
    assert_eq!(c["imagePullPolicy"], exp.pull_policy);
    assert_eq!(c["resources"], exp.resources);
    // ... and container level.
    let csc = &c["securityContext"];
    assert_eq!(
        csc["allowPrivilegeEscalation"], false,
        "container securityContext {csc}"
    );
    assert_eq!(csc["readOnlyRootFilesystem"], true);
    assert_eq!(csc["runAsNonRoot"], true);
    assert_ne!(csc["privileged"], true);
    assert_eq!(csc["capabilities"]["drop"], json!(["ALL"]));
    assert!(csc["capabilities"].get("add").is_none());
    assert_eq!(csc["seccompProfile"]["type"], "RuntimeDefault");
    assert_ne!(csc["runAsUser"], 0);
    // Ports: metrics always, webhook when on; never a hostPort.
    let ports: BTreeMap<&str, i64> = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert!(p.get("hostPort").is_none(), "no hostPort: {p}");
            (
                p["name"].as_str().unwrap(),
                p["containerPort"].as_i64().unwrap(),
            )
        })
        .collect();
    let mut want_ports = BTreeMap::from([("metrics", exp.metrics_port)]);
    if let Some((port, _, _)) = exp.webhook {
        want_ports.insert("webhook", port);
    }
    assert_eq!(ports, want_ports);
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "metrics");
    // Environment: the operator reads POD_NAMESPACE (--operator-namespace), POD_NAME, RUST_LOG
    // and RAMP_LOG_FORMAT.
    assert_eq!(
        env_value(c, "POD_NAMESPACE")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    assert_eq!(
        env_value(c, "POD_NAME")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    assert_eq!(env_value(c, "RUST_LOG")["value"], exp.log_level);
    assert_eq!(env_value(c, "RAMP_LOG_FORMAT")["value"], exp.log_format);

    // Arguments: only flags `ramp-operator run` accepts, each with a value iff it takes one.
    let args = str_list(&c["args"]);
    assert_eq!(args[0], "run");
    for arg in &args[1..] {
        let flag = arg
            .strip_prefix("--")
            .unwrap_or_else(|| panic!("argument {arg:?} is not a --flag"));
        let (name, value) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (flag, None),
        };
        let takes_value = *flags.get(name).unwrap_or_else(|| {
            panic!("`ramp-operator run` has no flag --{name}; it has {flags:?}")
        });
        assert_eq!(
            value.is_some(),
            takes_value,
            "--{name} {} a value",
            if takes_value { "needs" } else { "takes no" }
        );
    }
    let mut want_args = vec![format!("--metrics-listen=0.0.0.0:{}", exp.metrics_port)];
    if exp.leader_election {
        want_args.push("--leader-elect".into());
        want_args.push(format!("--leader-election-id={}", exp.lease()));
    }
    if let Some(ns) = exp.watch_namespace {
        want_args.push(format!("--namespace={ns}"));
    }
    match exp.webhook {
        Some((port, _, secret)) => {
            want_args.push(format!("--webhook-listen=0.0.0.0:{port}"));
            want_args.push(format!("--webhook-service={}", exp.webhook_service()));
            want_args.push(format!("--webhook-configuration={f}"));
            want_args.push(format!("--cert-secret={secret}"));
        }
        None => want_args.push("--no-webhook".into()),
    }
    if let Some(url) = exp.prometheus_url {
        want_args.push(format!("--prometheus-url={url}"));
    }
    if exp.prometheus_ca.is_some() {
        want_args.push("--prometheus-ca-file=/etc/ramp/prometheus-ca/ca.crt".into());
    }
    assert_eq!(args[1..].to_vec(), want_args);
    // The CA ConfigMap is mounted read-only where --prometheus-ca-file points.
    let pod_spec = pod;
    match exp.prometheus_ca {
        Some(cm) => {
            assert_eq!(
                pod_spec["volumes"],
                json!([{"name": "prometheus-ca", "configMap": {"name": cm, "items": [{"key": "ca.crt", "path": "ca.crt"}]}}])
            );
            assert_eq!(
                pod_spec["containers"][0]["volumeMounts"],
                json!([{"name": "prometheus-ca", "mountPath": "/etc/ramp/prometheus-ca", "readOnly": true}])
            );
        }
        None => {
            assert!(pod_spec["volumes"].is_null(), "{pod_spec:#}");
            assert!(pod_spec["containers"][0]["volumeMounts"].is_null());
        }
    }

    // Services: metrics always; the webhook Service on 443 in front of the webhook port.
    let metrics = objs.get("Service", &format!("{f}-metrics"));
    assert_eq!(
        metrics["metadata"]["labels"]["app.kubernetes.io/component"],
        "metrics"
    );
    assert_eq!(metrics["spec"]["selector"], selector);
    assert_eq!(metrics["spec"]["ports"][0]["port"], exp.metrics_port);
    assert_eq!(metrics["spec"]["ports"][0]["targetPort"], "metrics");
    if exp.webhook.is_some() {
        let svc = objs.get("Service", &exp.webhook_service());
        assert_eq!(svc["spec"]["selector"], selector);
        assert_eq!(svc["spec"]["ports"].as_array().unwrap().len(), 1);
        assert_eq!(svc["spec"]["ports"][0]["port"], 443);
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], "webhook");
    }

    // Webhook configurations: fail closed, timeouts set, scoped.
    if let Some((_, timeout, _)) = exp.webhook {
        let service = |path: &str| json!({"name": exp.webhook_service(), "namespace": NAMESPACE, "path": path, "port": 443});
        let ns_selector = exp
            .watch_namespace
            .map(|ns| json!({"matchLabels": {"kubernetes.io/metadata.name": ns}}));
        let mutating = objs.get("MutatingWebhookConfiguration", f);
        let hooks = mutating["webhooks"].as_array().unwrap();
        assert_eq!(hooks.len(), 1);
        let m = &hooks[0];
        assert_eq!(m["name"], "pause-deployment.rollouts.ramp.dev");
        assert_eq!(m["failurePolicy"], "Fail");
        assert_eq!(m["timeoutSeconds"], timeout);
        assert_eq!(m["sideEffects"], "None");
        assert_eq!(m["admissionReviewVersions"], json!(["v1"]));
        assert_eq!(
            m["objectSelector"],
            json!({"matchExpressions": [{"key": CONTROLLED_BY_LABEL, "operator": "Exists"}]}),
            "only Deployments a Rollout controls"
        );
        assert_eq!(m["clientConfig"]["service"], service("/mutate-deployment"));
        let rules = m["rules"].as_array().unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0]["apiGroups"], json!(["apps"]));
        assert_eq!(rules[0]["resources"], json!(["deployments"]));
        assert_eq!(rules[0]["operations"], json!(["UPDATE"]));
        let validating = objs.get("ValidatingWebhookConfiguration", f);
        let hooks = validating["webhooks"].as_array().unwrap();
        assert_eq!(hooks.len(), 1);
        let v = &hooks[0];
        assert_eq!(v["name"], "validate-rollout.rollouts.ramp.dev");
        assert_eq!(v["failurePolicy"], "Fail");
        assert_eq!(v["timeoutSeconds"], timeout);
        assert_eq!(v["sideEffects"], "None");
        assert_eq!(v["clientConfig"]["service"], service("/validate-rollout"));
        let rules = v["rules"].as_array().unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0]["apiGroups"], json!(["rollouts.ramp.dev"]));
        assert_eq!(
            rules[0]["resources"],
            json!(["rollouts"]),
            "only Rollouts are reviewed"
        );
        assert_eq!(rules[0]["operations"], json!(["CREATE", "UPDATE"]));
        for hook in [m, v] {
            match &ns_selector {
                Some(sel) => assert_eq!(&hook["namespaceSelector"], sel, "{}", hook["name"]),
                // Unscoped: no selector, or the API server's default (everything).
                None => assert!(
                    hook["namespaceSelector"].is_null() || hook["namespaceSelector"] == json!({}),
                    "{}",
                    hook["name"]
                ),
            }
        }
    }

    // The PDB (only with more than one replica).
    if exp.replicas > 1 {
        let pdb = objs.get("PodDisruptionBudget", f);
        assert_eq!(pdb["spec"]["minAvailable"], 1);
        assert_eq!(pdb["spec"]["selector"]["matchLabels"], selector);
    }

    // The ServiceMonitor (rendered only: the embedded cluster has no Prometheus Operator CRDs).
    if rendered && let Some((labels, interval)) = &exp.service_monitor {
        let sm = objs.get("ServiceMonitor", f);
        assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
        for (k, v) in labels.as_object().unwrap() {
            assert_eq!(&sm["metadata"]["labels"][k], v, "ServiceMonitor label {k}");
        }
        let mut want = selector.clone();
        want["app.kubernetes.io/component"] = json!("metrics");
        assert_eq!(
            sm["spec"]["selector"]["matchLabels"], want,
            "selects the metrics Service"
        );
        assert_eq!(
            sm["spec"]["endpoints"],
            json!([{"port": "metrics", "path": "/metrics", "interval": interval}])
        );
    }
}

/// The rendered arguments parse: `ramp-operator run ARGS` gets past argument parsing (clap
/// exits 2 on a bad argument) and stops only because there is no cluster.
fn check_operator_parses(objs: &Objects, exp: &Expect) {
    let dep = objs.get("Deployment", exp.fullname);
    let args = str_list(&dep["spec"]["template"]["spec"]["containers"][0]["args"]);
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(bin("ramp-operator"))
        .args(&args)
        .env("KUBECONFIG", home.path().join("no-such-kubeconfig"))
        .env("HOME", home.path())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env("POD_NAMESPACE", NAMESPACE)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "ramp-operator {args:?} should fail only for want of a cluster: {stderr}"
    );
    assert!(stderr.contains("connecting to the cluster"), "{stderr}");
}

// ---------------------------------------------------------------------------------------------
// Offline: lint and render

#[test]
fn the_chart_lints_clean_in_strict_mode() {
    let Some(python) = python("the_chart_lints_clean_in_strict_mode") else {
        return;
    };
    let helm = Helm::new(python, None);
    for exp in [
        defaults(),
        minimal_single_namespace(),
        webhooks_in_one_namespace(),
    ] {
        let report = helm.ok(&["lint"], Some(&exp.values))["lint"].clone();
        assert_eq!(report["total_charts_linted"], 1, "{report}");
        assert_eq!(
            report["errors"],
            json!([]),
            "lint errors with {}: {report}",
            exp.values
        );
        let problems: Vec<&Value> = report["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["severity"].as_i64().unwrap_or(3) >= 2)
            .collect();
        assert!(
            problems.is_empty(),
            "lint warnings or errors with {}: {problems:?}",
            exp.values
        );
    }
}

#[test]
fn rendered_with_default_values() {
    let Some(python) = python("rendered_with_default_values") else {
        return;
    };
    let helm = Helm::new(python, None);
    let exp = defaults();
    let objs = helm.render(exp.release, &exp.values);
    check_objects(&objs, &exp, &operator_flags(), true);
    check_operator_parses(&objs, &exp);
}

#[test]
fn rendered_with_one_replica_no_webhooks_one_namespace_and_a_service_monitor() {
    let Some(python) = python("rendered_with_one_replica_no_webhooks") else {
        return;
    };
    let helm = Helm::new(python, None);
    let exp = minimal_single_namespace();
    let objs = helm.render(exp.release, &exp.values);
    check_objects(&objs, &exp, &operator_flags(), true);
    check_operator_parses(&objs, &exp);
}

#[test]
fn rendered_with_webhooks_scoped_to_the_watched_namespace() {
    let Some(python) = python("rendered_with_webhooks_scoped_to_the_watched_namespace") else {
        return;
    };
    let helm = Helm::new(python, None);
    let exp = webhooks_in_one_namespace();
    let objs = helm.render(exp.release, &exp.values);
    check_objects(&objs, &exp, &operator_flags(), true);
    check_operator_parses(&objs, &exp);
}

#[test]
fn invalid_values_fail_to_render_with_the_schema_message() {
    let Some(python) = python("invalid_values_fail_to_render_with_the_schema_message") else {
        return;
    };
    let helm = Helm::new(python, None);
    for (values, needles) in invalid_values() {
        let out = helm.run(&["render", "ramp"], Some(&values));
        assert!(!out.ok, "values {values} must be refused");
        assert_eq!(
            out.report["error_type"], "HelmValuesError",
            "{}",
            out.report
        );
        let error = out.report["error"].as_str().unwrap();
        for needle in needles {
            assert!(
                error.contains(needle),
                "error for {values} lacks {needle:?}: {error}"
            );
        }
    }
}

/// Values the schema refuses, and what the message must say.
fn invalid_values() -> Vec<(Value, Vec<&'static str>)> {
    vec![
        (
            json!({"replicaCount": 0}),
            vec!["at '/replicaCount'", "minimum"],
        ),
        (
            json!({"logFormat": "xml"}),
            vec!["at '/logFormat'", "'json', 'text'"],
        ),
        (
            json!({"webhook": {"timeoutSeconds": 60}}),
            vec!["at '/webhook/timeoutSeconds'", "maximum"],
        ),
        (
            json!({"replicas": 3}),
            vec!["additional properties 'replicas' not allowed"],
        ),
        (
            json!({"webhook": {"enable": false}}),
            vec![
                "at '/webhook'",
                "additional properties 'enable' not allowed",
            ],
        ),
        (
            json!({"watchNamespace": "Apps"}),
            vec!["at '/watchNamespace'"],
        ),
        (
            json!({"image": {"pullPolicy": "Sometimes"}}),
            vec!["at '/image/pullPolicy'"],
        ),
        (
            json!({"dashboard": {"readonly": false}}),
            vec![
                "at '/dashboard'",
                "additional properties 'readonly' not allowed",
            ],
        ),
        (
            json!({"dashboard": {"port": 80}}),
            vec!["at '/dashboard/port'", "minimum"],
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// The in-cluster dashboard (`dashboard.*` values)

/// The rules of a rendered ClusterRole as `(group, resource) -> verbs`.
fn dashboard_rules(role: &Value) -> BTreeMap<(String, String), BTreeSet<String>> {
    let mut out: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for r in role["rules"].as_array().unwrap() {
        for g in str_list(&r["apiGroups"]) {
            for res in str_list(&r["resources"]) {
                out.entry((g.to_string(), res.to_string()))
                    .or_default()
                    .extend(str_list(&r["verbs"]).into_iter().map(str::to_string));
            }
        }
    }
    out
}

#[test]
fn the_dashboard_is_off_by_default_and_read_only_when_enabled() {
    let Some(python) = python("the_dashboard_is_off_by_default_and_read_only_when_enabled") else {
        return;
    };
    let helm = Helm::new(python, None);
    let objs = helm.render("ramp", &json!({}));
    assert!(
        !objs.keys().iter().any(|(_, n)| n.contains("dashboard")),
        "no dashboard object by default: {:?}",
        objs.keys()
    );

    let values = json!({"dashboard": {"enabled": true}});
    let report = helm.ok(&["lint"], Some(&values))["lint"].clone();
    assert_eq!(report["errors"], json!([]), "{report}");
    let objs = helm.render("ramp", &values);
    let d = objs.get("Deployment", "ramp-dashboard");
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "ghcr.io/ramp-dev/kubectl-ramp:0.1.0");
    assert_eq!(
        str_list(&c["args"]),
        vec![
            "dashboard",
            "--address=0.0.0.0",
            "--port=3100",
            "--all-namespaces",
            "--read-only"
        ]
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["serviceAccountName"],
        "ramp-dashboard"
    );
    // The operator's selector does not pick up the dashboard's pods, and back.
    let pod_labels = &d["spec"]["template"]["metadata"]["labels"];
    let op = objs.get("Deployment", "ramp");
    let op_selector = op["spec"]["selector"]["matchLabels"].as_object().unwrap();
    assert!(
        !op_selector.iter().all(|(k, v)| &pod_labels[k] == v),
        "the operator's selector {op_selector:?} matches the dashboard's pods {pod_labels}"
    );
    let svc = objs.get("Service", "ramp-dashboard");
    for (k, v) in svc["spec"]["selector"].as_object().unwrap() {
        assert_eq!(
            &pod_labels[k], v,
            "the Service selects the dashboard's pods"
        );
    }
    assert_eq!(svc["spec"]["ports"][0]["port"], 3100);
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    objs.get("ServiceAccount", "ramp-dashboard");
    let binding = objs.get("ClusterRoleBinding", "ramp-dashboard");
    assert_eq!(binding["roleRef"]["name"], "ramp-dashboard");
    assert_eq!(binding["subjects"][0]["name"], "ramp-dashboard");
    // Read-only: the ClusterRole only reads.
    let rules = dashboard_rules(objs.get("ClusterRole", "ramp-dashboard"));
    for ((g, r), verbs) in &rules {
        for v in verbs {
            assert!(
                ["get", "list", "watch"].contains(&v.as_str()),
                "read-only dashboard may {v} {r}.{g}"
            );
        }
    }
    assert!(rules.contains_key(&("rollouts.ramp.dev".into(), "rollouts".into())));
    assert!(rules.contains_key(&("networking.istio.io".into(), "virtualservices".into())));
}

#[test]
fn the_dashboard_with_actions_in_one_namespace() {
    let Some(python) = python("the_dashboard_with_actions_in_one_namespace") else {
        return;
    };
    let helm = Helm::new(python, None);
    let values = json!({"dashboard": {
        "enabled": true, "readOnly": false, "namespace": "shop", "port": 8081,
        "image": {"repository": "registry.example.com/kubectl-ramp", "tag": "v2", "pullPolicy": "Always"}
    }});
    let report = helm.ok(&["lint"], Some(&values))["lint"].clone();
    assert_eq!(report["errors"], json!([]), "{report}");
    let objs = helm.render("edge", &values);
    let d = objs.get("Deployment", "edge-ramp-dashboard");
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "registry.example.com/kubectl-ramp:v2");
    assert_eq!(c["imagePullPolicy"], "Always");
    assert_eq!(
        str_list(&c["args"]),
        vec![
            "dashboard",
            "--address=0.0.0.0",
            "--port=8081",
            "--namespace=shop"
        ]
    );
    assert_eq!(c["ports"][0]["containerPort"], 8081);
    // Bound in the namespace it shows only.
    let binding = objs.get("RoleBinding", "edge-ramp-dashboard");
    assert_eq!(binding["metadata"]["namespace"], "shop");
    assert!(
        !objs
            .keys()
            .contains(&("ClusterRoleBinding".into(), "edge-ramp-dashboard".into()))
    );
    // The writes of the plugin's actions, and no more.
    let rules = dashboard_rules(objs.get("ClusterRole", "edge-ramp-dashboard"));
    let verbs = |g: &str, r: &str| -> Vec<String> {
        rules
            .get(&(g.to_string(), r.to_string()))
            .map(|v| v.iter().cloned().collect())
            .unwrap_or_default()
    };
    assert_eq!(verbs("rollouts.ramp.dev", "rollouts/status"), vec!["patch"]);
    assert_eq!(
        verbs("rollouts.ramp.dev", "rollouts"),
        vec!["get", "list", "patch", "watch"]
    );
    assert_eq!(
        verbs("apps", "deployments"),
        vec!["get", "list", "patch", "watch"]
    );
    assert_eq!(verbs("", "events"), vec!["create", "list", "watch"]);
    assert_eq!(verbs("", "services"), vec!["list", "watch"]);
    assert!(!rules.values().flatten().any(|v| v == "delete" || v == "*"));
}

// ---------------------------------------------------------------------------------------------
// In the embedded cluster: install, upgrade, uninstall

/// A process killed when the test ends, however it ends.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A fresh `ramp-sim serve` with the upstream Istio / Gateway API CRDs, and a client for it.
async fn start_cluster(dir: &Path) -> (Proc, PathBuf, Client) {
    let kubeconfig = dir.join("kubeconfig");
    let log = std::fs::File::create(dir.join("sim.log")).unwrap();
    let sim = Proc(
        Command::new(bin("ramp-sim"))
            .args(["serve", "--listen", "127.0.0.1:0", "--kubeconfig"])
            .arg(&kubeconfig)
            .arg("--crds")
            .arg(shared_crds_dir())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start ramp-sim"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !kubeconfig.exists() {
        assert!(Instant::now() < deadline, "ramp-sim wrote no kubeconfig");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let kc = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap();
    let client = Client::try_from(config).unwrap();
    loop {
        if client.apiserver_version().await.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "ramp-sim does not answer");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (sim, kubeconfig, client)
}

async fn get_value<K>(api: &Api<K>, name: &str) -> Option<Value>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    api.get_opt(name)
        .await
        .unwrap()
        .map(|o| serde_json::to_value(o).unwrap())
}

/// Every object the chart could make for `exp`'s release, as the cluster has them.
async fn live_objects(client: &Client, exp: &Expect) -> Objects {
    let f = exp.fullname;
    let c = client.clone();
    let mut found = BTreeMap::new();
    let mut put = |kind: &str, name: &str, v: Option<Value>| {
        if let Some(v) = v {
            found.insert((kind.to_string(), name.to_string()), v);
        }
    };
    let ns = NAMESPACE;
    put(
        "ServiceAccount",
        f,
        get_value(&Api::<ServiceAccount>::namespaced(c.clone(), ns), f).await,
    );
    put(
        "ClusterRole",
        f,
        get_value(&Api::<ClusterRole>::all(c.clone()), f).await,
    );
    put(
        "ClusterRoleBinding",
        f,
        get_value(&Api::<ClusterRoleBinding>::all(c.clone()), f).await,
    );
    put(
        "Role",
        f,
        get_value(&Api::<Role>::namespaced(c.clone(), ns), f).await,
    );
    put(
        "RoleBinding",
        f,
        get_value(&Api::<RoleBinding>::namespaced(c.clone(), ns), f).await,
    );
    put(
        "Deployment",
        f,
        get_value(&Api::<Deployment>::namespaced(c.clone(), ns), f).await,
    );
    let services = Api::<Service>::namespaced(c.clone(), ns);
    let metrics = format!("{f}-metrics");
    put("Service", &metrics, get_value(&services, &metrics).await);
    let webhook = exp.webhook_service();
    put("Service", &webhook, get_value(&services, &webhook).await);
    put(
        "MutatingWebhookConfiguration",
        f,
        get_value(&Api::<MutatingWebhookConfiguration>::all(c.clone()), f).await,
    );
    put(
        "ValidatingWebhookConfiguration",
        f,
        get_value(&Api::<ValidatingWebhookConfiguration>::all(c.clone()), f).await,
    );
    put(
        "PodDisruptionBudget",
        f,
        get_value(&Api::<PodDisruptionBudget>::namespaced(c.clone(), ns), f).await,
    );
    Objects(found)
}

/// Helm's release records (`sh.helm.release.v1.*` Secrets): (revision, status).
async fn release_records(client: &Client, release: &str) -> Vec<(String, String)> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    let mut out: Vec<(String, String)> = secrets
        .list(&ListParams::default().labels(&format!("owner=helm,name={release}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|s| {
            let l = s.metadata.labels.unwrap_or_default();
            (l["version"].clone(), l["status"].clone())
        })
        .collect();
    out.sort();
    out
}

/// Start the operator binary beside the cluster with the installed Deployment's arguments and
/// environment (listen addresses moved to free loopback ports), as the pod would run it.
fn start_operator_like_the_pod(dep: &Value, kubeconfig: &Path, log: &Path) -> Proc {
    let c = &dep["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<String> = str_list(&c["args"])
        .into_iter()
        .map(|a| {
            if a.starts_with("--metrics-listen=") {
                "--metrics-listen=127.0.0.1:0".to_string()
            } else if a.starts_with("--webhook-listen=") {
                "--webhook-listen=127.0.0.1:0".to_string()
            } else {
                a.to_string()
            }
        })
        .collect();
    let mut cmd = Command::new(bin("ramp-operator"));
    cmd.args(&args)
        .env("KUBECONFIG", kubeconfig)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(log).unwrap())
        .stderr(std::fs::File::create(log.with_extension("err")).unwrap());
    for e in c["env"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap();
        let value = match (
            e["value"].as_str(),
            e["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
        ) {
            (Some(v), _) => v.to_string(),
            (None, Some("metadata.namespace")) => NAMESPACE.to_string(),
            (None, Some("metadata.name")) => "ramp-pod-0".to_string(),
            other => panic!("env {name}: cannot resolve {other:?} outside a pod"),
        };
        cmd.env(name, value);
    }
    Proc(cmd.spawn().expect("start ramp-operator"))
}

async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut cond: F, diag: impl Fn() -> String)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !cond().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting until {what}\n{}",
            diag()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn ca_bundle(cfg: &Value) -> Option<String> {
    cfg["webhooks"][0]["clientConfig"]["caBundle"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(String::from)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_installs_upgrades_and_uninstalls_the_chart_in_the_embedded_cluster() {
    let Some(python) = python("helm_installs_upgrades_and_uninstalls_the_chart") else {
        return;
    };
    let dir = tempfile::Builder::new()
        .prefix("ramp-chart-")
        .tempdir()
        .unwrap();
    let (_sim, kubeconfig, client) = start_cluster(dir.path()).await;
    let helm = Helm::new(python, Some(kubeconfig.clone()));
    let flags = operator_flags();
    let exp = defaults();
    let f = exp.fullname;

    // Invalid values: refused at install with the schema's message; nothing is made.
    for (values, needles) in invalid_values() {
        let out = helm.run(&["install", "ramp", "--create-namespace"], Some(&values));
        assert!(!out.ok, "install with {values} must fail");
        let error = out.report["error"].as_str().unwrap();
        for needle in needles {
            assert!(
                error.contains(needle),
                "install error for {values} lacks {needle:?}: {error}"
            );
        }
    }
    assert!(
        live_objects(&client, &exp).await.0.is_empty(),
        "a refused install makes no objects"
    );
    assert!(release_records(&client, "ramp").await.is_empty());

    // Install with the default values into a namespace Helm creates.
    let report = helm.ok(&["install", "ramp", "--create-namespace"], None);
    assert_eq!(report["release"]["revision"], 1);
    assert_eq!(report["release"]["status"], "deployed");
    let notes = report["release"]["notes"].as_str().unwrap_or_default();
    assert!(
        notes.contains("kubectl ramp status") && notes.contains("kubectl apply --server-side -f"),
        "NOTES.txt prints the next commands and the CRD upgrade step: {notes}"
    );
    Api::<Namespace>::all(client.clone())
        .get(NAMESPACE)
        .await
        .unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = crds.get("rollouts.rollouts.ramp.dev").await.unwrap();
    let established = crd
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .any(|c| c.type_ == "Established" && c.status == "True");
    assert!(established, "the Rollout CRD from crds/ is established");
    assert_eq!(crd.spec.names.kind, "Rollout");
    let live = live_objects(&client, &exp).await;
    check_objects(&live, &exp, &flags, false);
    assert_eq!(
        release_records(&client, "ramp").await,
        vec![("1".into(), "deployed".into())]
    );

    // The operator binary, run with the Deployment's own arguments and environment, finds what
    // the chart made: it fills in the caBundle of the chart's webhook configurations, and its
    // Lease and certificate Secret carry the names the chart's Role grants.
    let dep = live.get("Deployment", f).clone();
    let log = dir.path().join("operator.log");
    let operator = start_operator_like_the_pod(&dep, &kubeconfig, &log);
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let validating: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    let leases: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    let (_, _, cert_secret) = exp.webhook.unwrap();
    let diag = || {
        format!(
            "--- operator log ---\n{}{}",
            std::fs::read_to_string(&log).unwrap_or_default(),
            std::fs::read_to_string(log.with_extension("err")).unwrap_or_default()
        )
    };
    wait_for(
        "the operator injected its CA into both webhook configurations and holds the Lease",
        Duration::from_secs(30),
        || async {
            let m = get_value(&mutating, f).await.and_then(|v| ca_bundle(&v));
            let v = get_value(&validating, f).await.and_then(|v| ca_bundle(&v));
            let lease = leases.get_opt(&exp.lease()).await.unwrap();
            let held = lease
                .and_then(|l| l.spec)
                .and_then(|s| s.holder_identity)
                .is_some_and(|h| h.starts_with("ramp-pod-0"));
            m.is_some()
                && v.is_some()
                && held
                && secrets.get_opt(cert_secret).await.unwrap().is_some()
        },
        diag,
    )
    .await;
    drop(operator);
    let secret = secrets.get(cert_secret).await.unwrap();
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
    let ca_pem = String::from_utf8(secret.data.unwrap()["ca.crt"].0.clone()).unwrap();
    let injected = ca_bundle(&get_value(&mutating, f).await.unwrap()).unwrap();
    let decoded: k8s_openapi::ByteString = serde_json::from_value(json!(injected)).unwrap();
    assert_eq!(
        String::from_utf8(decoded.0).unwrap(),
        ca_pem,
        "the caBundle is the CA in the chart-named Secret"
    );
    // The names the operator used are the ones the Role grants.
    let role = rules_of(live.get("Role", f));
    assert!(role.contains_key(&(
        "coordination.k8s.io".into(),
        "leases".into(),
        vec![exp.lease()]
    )));
    assert!(role.contains_key(&("".into(), "secrets".into(), vec![cert_secret.to_string()])));

    // Upgrade: three replicas and debug logs change the Deployment; the rest stays.
    let up = Expect {
        values: json!({"replicaCount": 3, "logLevel": "debug"}),
        replicas: 3,
        log_level: "debug",
        ..defaults()
    };
    let report = helm.ok(&["upgrade", "ramp"], Some(&up.values));
    assert_eq!(report["release"]["revision"], 2);
    assert_eq!(report["release"]["status"], "deployed");
    check_objects(&live_objects(&client, &up).await, &up, &flags, false);
    // Helm re-applies the webhook configurations without a caBundle; `webhooks` merge by name,
    // so the CA the operator injected stays and admission keeps working through the upgrade.
    for cfg in [
        get_value(&mutating, f).await.unwrap(),
        get_value(&validating, f).await.unwrap(),
    ] {
        assert_eq!(ca_bundle(&cfg).as_deref(), Some(injected.as_str()), "{cfg}");
    }
    assert_eq!(
        release_records(&client, "ramp").await,
        vec![
            ("1".into(), "superseded".into()),
            ("2".into(), "deployed".into())
        ]
    );

    // Upgrade to one replica: the PodDisruptionBudget goes.
    // (Turning the webhooks off is checked rendered only: installed, the operator would then
    // need --no-webhook's other setup.)
    let single = Expect {
        values: json!({"replicaCount": 1}),
        replicas: 1,
        ..defaults()
    };
    let report = helm.ok(&["upgrade", "ramp"], Some(&single.values));
    assert_eq!(report["release"]["revision"], 3);
    let live = live_objects(&client, &single).await;
    check_objects(&live, &single, &flags, false);
    assert!(
        !live
            .keys()
            .contains(&("PodDisruptionBudget".to_string(), f.to_string())),
        "the PDB is removed by the upgrade to one replica"
    );

    // Uninstall: every templated object and the release records go; the CRD stays (Helm never
    // deletes what it installed from crds/), and so does the Secret the operator made.
    let report = helm.ok(&["uninstall", "ramp"], None);
    assert_eq!(report["release"]["status"], "uninstalled");
    let left = live_objects(&client, &exp).await;
    assert!(left.0.is_empty(), "left after uninstall: {:?}", left.keys());
    assert!(release_records(&client, "ramp").await.is_empty());
    assert!(
        crds.get_opt("rollouts.rollouts.ramp.dev")
            .await
            .unwrap()
            .is_some(),
        "the CRD is kept"
    );
    assert!(
        secrets.get_opt(cert_secret).await.unwrap().is_some(),
        "the operator's certificate Secret is not Helm's and stays"
    );
}
