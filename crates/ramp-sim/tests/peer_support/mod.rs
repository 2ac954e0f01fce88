//! Running the peers' own test data (`$RAMP_SHARED_PEER`, default
//! `<workspace>/../shared/peer`) against the sim: load manifests into a sim
//! running its controllers, wait for the pods, route requests through the
//! live objects, and tally PASS / FAIL / SKIP per case.
#![allow(dead_code, clippy::unwrap_used, clippy::panic)] // test helpers outside #[test] fns

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ramp_sim::TestCluster;
use ramp_sim::controllers::{ControllerConfig, Controllers};
use ramp_sim::mesh::{HttpRequest, MeshError, RouteOptions, RouteReport, route_in_store};
use ramp_sim::resources::GroupResource;
use ramp_sim::store::{DeleteOptions, ListOptions, WriteOptions};
use serde_json::{Value, json};

/// A peer corpus folder, e.g. `peer_dir("istio")`.
pub fn peer_dir(corpus: &str) -> PathBuf {
    ramp_sim::shared_peer_dir().join(corpus)
}

pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("reading {}: {e} (set RAMP_SHARED_PEER)", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Kinds the peer manifests use whose CRDs are not among the shared upstream
/// CRDs: registered with a schema that keeps every field (the router reads
/// them; the sim does not validate them).
fn extra_crds() -> Vec<Value> {
    let crd = |group: &str, plural: &str, kind: &str, versions: &[&str]| {
        let versions: Vec<Value> = versions
            .iter()
            .enumerate()
            .map(|(i, v)| {
                json!({"name": v, "served": true, "storage": i == 0,
                       "subresources": {"status": {}},
                       "schema": {"openAPIV3Schema": {"type": "object",
                           "x-kubernetes-preserve-unknown-fields": true}}})
            })
            .collect();
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("{plural}.{group}")},
            "spec": {"group": group, "scope": "Namespaced",
                     "names": {"plural": plural, "singular": kind.to_lowercase(), "kind": kind,
                               "listKind": format!("{kind}List")},
                     "versions": versions}
        })
    };
    vec![
        crd(
            "gateway.networking.k8s.io",
            "gateways",
            "Gateway",
            &["v1", "v1beta1"],
        ),
        crd(
            "networking.istio.io",
            "gateways",
            "Gateway",
            &["v1", "v1beta1", "v1alpha3"],
        ),
    ]
}

/// A sim with the shared CRDs and its controllers (Deployments make pods that
/// become ready).
pub struct PeerSim {
    pub cluster: TestCluster,
    _controllers: Controllers,
}

impl PeerSim {
    pub async fn start() -> PeerSim {
        let cluster = TestCluster::start().await.unwrap();
        cluster.load_crds(&[ramp_sim::shared_crds_dir()]).unwrap();
        let store = cluster.store();
        let crds = GroupResource::new("apiextensions.k8s.io", "customresourcedefinitions");
        for crd in extra_crds() {
            let name = crd["metadata"]["name"].as_str().unwrap().to_owned();
            if store.get(&crds, None, &name).is_err() {
                store
                    .create(&crds, None, crd, &WriteOptions::default())
                    .unwrap();
            }
        }
        let controllers = Controllers::start(store.clone(), ControllerConfig::default());
        PeerSim {
            cluster,
            _controllers: controllers,
        }
    }

    /// Applies every document of `yaml` (created, or replaced when it exists);
    /// objects without a namespace go to `default_ns`; namespaces are created
    /// as needed. Returns `(group, resource, namespace, name)` of each.
    pub fn apply(
        &self,
        yaml: &str,
        default_ns: &str,
    ) -> Result<Vec<(GroupResource, Option<String>, String)>, String> {
        let store = self.cluster.store();
        let mut out = Vec::new();
        for de in serde_yaml::Deserializer::from_str(yaml) {
            let mut obj: Value =
                serde::Deserialize::deserialize(de).map_err(|e| format!("YAML: {e}"))?;
            if obj.is_null() {
                continue;
            }
            let api_version = obj["apiVersion"].as_str().unwrap_or_default().to_owned();
            let kind = obj["kind"].as_str().unwrap_or_default().to_owned();
            let rt = store
                .resolve_kind(&api_version, &kind)
                .ok_or_else(|| format!("{api_version} {kind} is not served"))?;
            let gr = rt.group_resource();
            let name = obj["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let ns = if rt.namespaced {
                let ns = obj["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or(default_ns)
                    .to_owned();
                obj["metadata"]["namespace"] = json!(ns);
                self.ensure_namespace(&ns)?;
                Some(ns)
            } else {
                None
            };
            let opts = WriteOptions::default();
            match store.create(&gr, ns.as_deref(), obj.clone(), &opts) {
                Ok(_) => {}
                Err(e) if e.reason == "AlreadyExists" => {
                    store
                        .update(&gr, ns.as_deref(), &name, obj, None, &opts)
                        .map_err(|e| format!("replacing {kind} {name}: {e}"))?;
                }
                Err(e) => return Err(format!("creating {kind} {name}: {e}")),
            }
            out.push((gr, ns, name));
        }
        Ok(out)
    }

    pub fn ensure_namespace(&self, ns: &str) -> Result<(), String> {
        let store = self.cluster.store();
        let gr = GroupResource::new("", "namespaces");
        if store.get(&gr, None, ns).is_ok() {
            return Ok(());
        }
        store
            .create(
                &gr,
                None,
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                &WriteOptions::default(),
            )
            .map(|_| ())
            .map_err(|e| format!("creating namespace {ns}: {e}"))
    }

    /// Deletes what [`PeerSim::apply`] created.
    pub fn delete(&self, objects: &[(GroupResource, Option<String>, String)]) {
        for (gr, ns, name) in objects {
            let _ = self
                .cluster
                .store()
                .delete(gr, ns.as_deref(), name, &DeleteOptions::default());
        }
    }

    /// Waits until every Deployment in `namespaces` has all its replicas
    /// available and updated.
    pub async fn wait_ready(&self, namespaces: &BTreeSet<String>) {
        let store = self.cluster.store();
        let deployments = GroupResource::new("apps", "deployments");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let pending: Vec<String> = namespaces
                .iter()
                .flat_map(|ns| {
                    store
                        .list(&deployments, Some(ns), &ListOptions::default())
                        .unwrap()
                        .items
                })
                .filter(|d| {
                    let want = d["spec"]["replicas"].as_u64().unwrap_or(1);
                    d["status"]["availableReplicas"].as_u64() != Some(want)
                        || d["status"]["updatedReplicas"].as_u64() != Some(want)
                })
                .map(|d| {
                    d["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned()
                })
                .collect();
            if pending.is_empty() {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "Deployments never became ready: {pending:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn route(&self, ns: &str, req: &HttpRequest, n: u64) -> Result<RouteReport, MeshError> {
        route_in_store(self.cluster.store(), ns, req, &RouteOptions::new(n).seed(1))
    }

    /// The IP of the first pod in `ns` whose name starts with `prefix`.
    pub fn pod_ip(&self, ns: &str, prefix: &str) -> Option<String> {
        let pods = GroupResource::new("", "pods");
        self.cluster
            .store()
            .list(&pods, Some(ns), &ListOptions::default())
            .ok()?
            .items
            .iter()
            .filter(|p| {
                p["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(prefix))
            })
            .find_map(|p| p["status"]["podIP"].as_str().map(str::to_owned))
    }
}

/// The verdict on one case.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Pass,
    Fail(String),
    Skip(String),
}

/// Collects the verdicts and prints them, one line per case, then the totals.
#[derive(Debug, Default)]
pub struct Tally {
    pub passed: usize,
    pub failed: Vec<String>,
    pub skipped: usize,
}

impl Tally {
    pub fn record(&mut self, id: &str, outcome: Outcome) {
        match outcome {
            Outcome::Pass => {
                self.passed += 1;
                println!("PASS {id}");
            }
            Outcome::Fail(why) => {
                println!("FAIL {id}: {why}");
                self.failed.push(format!("{id}: {why}"));
            }
            Outcome::Skip(why) => {
                self.skipped += 1;
                println!("SKIP {id} ({why})");
            }
        }
    }

    /// Prints `peer <corpus>: N passed, N failed, N skipped` and fails the
    /// test if any case failed or no case passed.
    pub fn finish(self, corpus: &str, expected_cases: usize) {
        let total = self.passed + self.failed.len() + self.skipped;
        println!(
            "peer {corpus}: {} passed, {} failed, {} skipped",
            self.passed,
            self.failed.len(),
            self.skipped
        );
        assert_eq!(total, expected_cases, "every case of {corpus} is judged");
        assert!(
            self.failed.is_empty(),
            "peer {corpus}: {} failed:\n{}",
            self.failed.len(),
            self.failed.join("\n")
        );
        assert!(self.passed > 0, "peer {corpus}: nothing passed");
    }
}

/// Header lookup by case-insensitive name in a report's header map.
pub fn header<'m>(
    headers: Option<&'m std::collections::BTreeMap<String, String>>,
    name: &str,
) -> Option<&'m str> {
    headers?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Requests served by pods whose name starts with `prefix-` (a Deployment's pods).
pub fn served_by_prefix(r: &RouteReport, prefix: &str) -> u64 {
    let p = format!("{prefix}-");
    r.by_pod
        .iter()
        .filter(|(k, _)| k.starts_with(&p))
        .map(|(_, v)| v)
        .sum()
}

/// Checks collected for one case; `Outcome::Fail` lists every mismatch.
#[derive(Debug, Default)]
pub struct Checks(Vec<String>);

impl Checks {
    pub fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.0.push(what());
        }
    }

    pub fn outcome(self, report: &RouteReport) -> Outcome {
        if self.0.is_empty() {
            Outcome::Pass
        } else {
            Outcome::Fail(format!(
                "{}; by destination {:?}, by rule {:?}, errors {:?}, shadow {:?}, warnings {:?}",
                self.0.join("; "),
                report.by_destination,
                report.by_rule,
                report.error_reasons,
                report.shadow.by_destination,
                report.warnings
            ))
        }
    }
}
