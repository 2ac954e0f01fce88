//! Talking to the API server: kubeconfig resolution the way kubectl does it,
//! reads, guarded writes, Events, and turning API errors into one-line
//! messages that name the object.

use std::path::Path;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{
    ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use ramp_api::names::{canary_service_name, canary_workload_name};
use ramp_api::{CustomNetworkRef, Rollout};
use serde_json::Value;

use crate::actions::{EventNote, Plan, Write, race_message};
use crate::cli::GlobalArgs;
use crate::error::{Error, Result};
use crate::model;

/// The plugin's name in Events and field managers.
pub const COMPONENT: &str = "kubectl-ramp";

/// A connection to the cluster and the namespace to work in.
#[derive(Clone)]
pub struct Cluster {
    /// The client.
    pub client: Client,
    /// `-n`, else the kubeconfig context's namespace, else `default`.
    pub namespace: String,
    /// The kubeconfig context's user entry, for Events when the server
    /// cannot say who we are.
    pub kube_user: Option<String>,
    /// The API server URL, for messages.
    pub server: String,
}

/// The objects `status` shows next to the Rollout.
#[derive(Debug, Clone, Default)]
pub struct Related {
    /// Stable and canary Deployments that exist.
    pub deployments: Vec<Deployment>,
    /// Stable and canary Services that exist.
    pub services: Vec<Service>,
    /// Routing objects that exist, as JSON.
    pub routing: Vec<Value>,
}

impl Related {
    /// The workload Deployment of `ro`, if read.
    pub fn workload(&self, ro: &Rollout) -> Option<&Deployment> {
        self.deployments
            .iter()
            .find(|d| d.metadata.name.as_deref() == Some(ro.spec.workload_ref.name.as_str()))
    }
}

fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

fn is_test_failure(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => {
            matches!(s.code, 409 | 422)
                || s.message.contains("test operation")
                || s.message.contains("testing value")
        }
        _ => false,
    }
}

/// Reads the kubeconfig as kubectl would: `--kubeconfig`, else `$KUBECONFIG`
/// (a list of files, merged), else `~/.kube/config`.
pub fn read_kubeconfig(path: Option<&Path>) -> Result<Option<Kubeconfig>> {
    match path {
        Some(p) => Kubeconfig::read_from(p).map(Some).map_err(|e| {
            Error::Connection(format!("cannot read kubeconfig '{}': {e}", p.display()))
        }),
        None => match Kubeconfig::read() {
            Ok(k) => Ok(Some(k)),
            Err(e) => {
                if std::env::var_os("KUBECONFIG").is_some() {
                    Err(Error::Connection(format!(
                        "cannot read the kubeconfig named by $KUBECONFIG: {e}"
                    )))
                } else {
                    Ok(None)
                }
            }
        },
    }
}

/// Connects using the kubectl flags.
pub async fn connect(g: &GlobalArgs) -> Result<Cluster> {
    let kubeconfig = read_kubeconfig(g.kubeconfig.as_deref())?;
    let (config, kube_user) = match kubeconfig {
        Some(kc) => {
            let context_name = g.context.clone().or_else(|| kc.current_context.clone());
            if let Some(c) = &g.context
                && !kc.contexts.iter().any(|n| &n.name == c)
            {
                return Err(Error::Usage(format!(
                    "context '{c}' is not in the kubeconfig (contexts: {})",
                    kc.contexts
                        .iter()
                        .map(|n| n.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            let user = context_name.as_ref().and_then(|name| {
                kc.contexts
                    .iter()
                    .find(|n| &n.name == name)
                    .and_then(|n| n.context.as_ref())
                    .and_then(|c| c.user.clone())
            });
            let opts = KubeConfigOptions {
                context: g.context.clone(),
                cluster: None,
                user: None,
            };
            let config = Config::from_custom_kubeconfig(kc, &opts)
                .await
                .map_err(|e| Error::Connection(format!("kubeconfig: {e}")))?;
            (config, user)
        }
        None => {
            if g.context.is_some() {
                return Err(Error::Connection(
                    "--context given but no kubeconfig found (use --kubeconfig or set KUBECONFIG)"
                        .into(),
                ));
            }
            let config = Config::incluster().map_err(|_| {
                Error::Connection(
                    "no kubeconfig found: set KUBECONFIG, pass --kubeconfig, or create ~/.kube/config"
                        .into(),
                )
            })?;
            (config, None)
        }
    };
    let namespace = g
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let server = config.cluster_url.to_string();
    let client = Client::try_from(config)
        .map_err(|e| Error::Connection(format!("cannot set up a client for {server}: {e}")))?;
    Ok(Cluster {
        client,
        namespace,
        kube_user,
        server,
    })
}

impl Cluster {
    /// Turns an API error into a one-line error naming what we tried.
    /// `resource` is e.g. `rollouts/status`, `group` its API group ("" for core).
    pub fn error(
        &self,
        e: kube::Error,
        verb: &str,
        resource: &str,
        group: &str,
        object: Option<&str>,
    ) -> Error {
        let what = match object {
            Some(o) => format!("{resource} '{o}'"),
            None => resource.to_string(),
        };
        let group_note = if group.is_empty() {
            String::new()
        } else {
            format!(" (API group {group})")
        };
        match &e {
            kube::Error::Api(s) => match s.code {
                401 => Error::Connection(format!(
                    "unauthorized: the API server at {} rejected the kubeconfig credentials",
                    self.server
                )),
                403 => Error::Forbidden(format!(
                    "forbidden: you may not {verb} {resource}{group_note} in namespace '{}'{}",
                    self.namespace,
                    object
                        .map(|o| format!(" (object '{o}')"))
                        .unwrap_or_default()
                )),
                404 => Error::NotFound(format!(
                    "{what} not found in namespace '{}'",
                    self.namespace
                )),
                code => Error::Api(format!(
                    "{verb} {what} in namespace '{}' failed: {} (HTTP {code})",
                    self.namespace,
                    if s.message.is_empty() {
                        s.reason.as_str()
                    } else {
                        s.message.as_str()
                    }
                )),
            },
            kube::Error::HyperError(_) | kube::Error::Service(_) => Error::Connection(format!(
                "cannot reach the API server at {}: {}",
                self.server,
                root_cause(&e)
            )),
            _ => Error::Api(format!("{verb} {what}: {}", root_cause(&e))),
        }
    }

    fn rollouts(&self) -> Api<Rollout> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// The Rollout; not found gets a CRD check and a hint about other namespaces.
    pub async fn get_rollout(&self, name: &str) -> Result<Rollout> {
        match self.rollouts().get(name).await {
            Ok(r) => Ok(r),
            Err(e) if status_code(&e) == Some(404) => Err(self.rollout_not_found(name).await),
            Err(e) => Err(self.error(e, "get", "rollouts", ramp_api::names::GROUP, Some(name))),
        }
    }

    fn crd_missing(&self) -> Error {
        Error::CrdMissing(format!(
            "the Rollout CRD (rollouts.{}) is not installed on the cluster at {} (install the ramp chart, or `ramp-operator crd | kubectl apply -f -`)",
            ramp_api::names::GROUP,
            self.server
        ))
    }

    async fn rollout_not_found(&self, name: &str) -> Error {
        let lp = ListParams::default().limit(1);
        if let Err(e) = self.rollouts().list(&lp).await
            && status_code(&e) == Some(404)
        {
            return self.crd_missing();
        }
        let all: Api<Rollout> = Api::all(self.client.clone());
        let lp = ListParams::default().fields(&format!("metadata.name={name}"));
        let elsewhere: Vec<String> = match all.list(&lp).await {
            Ok(list) => list
                .items
                .iter()
                .filter(|r| r.metadata.name.as_deref() == Some(name))
                .filter_map(|r| r.metadata.namespace.clone())
                .filter(|ns| ns != &self.namespace)
                .collect(),
            Err(_) => Vec::new(),
        };
        let hint = match elsewhere.as_slice() {
            [] => String::new(),
            [one] => format!(" (it exists in namespace '{one}': add -n {one})"),
            many => format!(" (it exists in namespaces {})", many.join(", ")),
        };
        Error::NotFound(format!(
            "rollout '{name}' not found in namespace '{}'{hint}",
            self.namespace
        ))
    }

    /// Rollouts in the namespace, or in all namespaces.
    pub async fn list_rollouts(&self, all_namespaces: bool) -> Result<Vec<Rollout>> {
        let api: Api<Rollout> = if all_namespaces {
            Api::all(self.client.clone())
        } else {
            self.rollouts()
        };
        match api.list(&ListParams::default()).await {
            Ok(l) => Ok(l.items),
            Err(e) if status_code(&e) == Some(404) => Err(self.crd_missing()),
            Err(e) => Err(self.error(e, "list", "rollouts", ramp_api::names::GROUP, None)),
        }
    }

    /// A Deployment, or None when it does not exist.
    pub async fn deployment(&self, name: &str) -> Result<Option<Deployment>> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &self.namespace);
        api.get_opt(name)
            .await
            .map_err(|e| self.error(e, "get", "deployments", "apps", Some(name)))
    }

    /// A Service, or None when it does not exist.
    pub async fn service(&self, name: &str) -> Result<Option<Service>> {
        let api: Api<Service> = Api::namespaced(self.client.clone(), &self.namespace);
        api.get_opt(name)
            .await
            .map_err(|e| self.error(e, "get", "services", "", Some(name)))
    }

    /// The API for a routing object reference (e.g. a VirtualService).
    pub fn routing_api(&self, r: &CustomNetworkRef) -> Api<DynamicObject> {
        let (group, version) = r
            .api_version
            .split_once('/')
            .unwrap_or(("", r.api_version.as_str()));
        let gvk = GroupVersionKind::gvk(group, version, &r.kind);
        let plural = format!("{}s", r.kind.to_ascii_lowercase());
        let ar = ApiResource::from_gvk_with_plural(&gvk, &plural);
        Api::namespaced_with(self.client.clone(), &self.namespace, &ar)
    }

    /// A routing object as JSON, or None when it (or its CRD) does not exist.
    pub async fn routing_object(&self, r: &CustomNetworkRef) -> Result<Option<Value>> {
        let plural = format!("{}s", r.kind.to_ascii_lowercase());
        let group = r.api_version.split_once('/').map_or("", |(g, _)| g);
        match self.routing_api(r).get_opt(&r.name).await {
            Ok(Some(o)) => Ok(serde_json::to_value(o).ok()),
            Ok(None) => Ok(None),
            Err(e) if status_code(&e) == Some(404) => Ok(None),
            Err(e) => Err(self.error(e, "get", &plural, group, Some(&r.name))),
        }
    }

    /// The objects around a Rollout, for `status`.
    pub async fn related(&self, ro: &Rollout) -> Result<Related> {
        let mut rel = Related::default();
        let w = &ro.spec.workload_ref.name;
        for name in [w.clone(), canary_workload_name(w)] {
            if let Some(d) = self.deployment(&name).await? {
                rel.deployments.push(d);
            }
        }
        if let Some(r) = ro
            .spec
            .strategy
            .canary
            .as_ref()
            .and_then(|c| c.traffic_routings.first())
        {
            for name in [r.service.clone(), canary_service_name(&r.service)] {
                if let Some(s) = self.service(&name).await? {
                    rel.services.push(s);
                }
            }
            for n in &r.routing_refs() {
                if let Some(v) = self.routing_object(n).await? {
                    rel.routing.push(v);
                }
            }
        }
        Ok(rel)
    }

    /// ReplicaSets in the namespace with `pod-template-hash=hash`.
    pub async fn replicasets_with_hash(&self, hash: &str) -> Result<Vec<ReplicaSet>> {
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &self.namespace);
        let selector = kube::core::Selector::from(kube::core::Expression::Equal(
            ramp_api::names::POD_TEMPLATE_HASH_LABEL.into(),
            hash.into(),
        ));
        let lp = ListParams::default().labels_from(&selector);
        api.list(&lp)
            .await
            .map(|l| l.items)
            .map_err(|e| self.error(e, "list", "replicasets", "apps", None))
    }

    /// Sends a planned write. A failed guard comes back as `Error::Race`,
    /// describing where the rollout is now.
    pub async fn apply(&self, ro: &Rollout, plan: &Plan) -> Result<()> {
        let name = model::name(ro);
        let pp = PatchParams::default();
        let group = ramp_api::names::GROUP;
        match &plan.write {
            Write::Nothing => Ok(()),
            Write::RolloutStatus(p) => {
                match self
                    .rollouts()
                    .patch_status(name, &pp, &Patch::<()>::Json(p.clone()))
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(e) if is_test_failure(&e) => {
                        let now = self.get_rollout(name).await?;
                        Err(Error::Race(race_message(&now, plan.not_done)))
                    }
                    Err(e) => Err(self.error(e, "patch", "rollouts/status", group, Some(name))),
                }
            }
            Write::RolloutMerge(v) => self
                .rollouts()
                .patch(name, &pp, &Patch::Merge(v))
                .await
                .map(|_| ())
                .map_err(|e| self.error(e, "patch", "rollouts", group, Some(name))),
            Write::Deployment { name: d, patch } => {
                let api: Api<Deployment> = Api::namespaced(self.client.clone(), &self.namespace);
                match api.patch(d, &pp, &Patch::<()>::Json(patch.clone())).await {
                    Ok(_) => Ok(()),
                    Err(e) if is_test_failure(&e) => Err(Error::Race(format!(
                        "deployment '{d}' changed while undoing rollout '{name}'; {}: run the command again",
                        plan.not_done
                    ))),
                    Err(e) => Err(self.error(e, "patch", "deployments", "apps", Some(d))),
                }
            }
        }
    }

    /// Who we are: the server's answer to a SelfSubjectReview, else the
    /// kubeconfig user entry.
    pub async fn whoami(&self) -> String {
        let api: Api<SelfSubjectReview> = Api::all(self.client.clone());
        let review = SelfSubjectReview::default();
        if let Ok(r) = api.create(&PostParams::default(), &review).await
            && let Some(u) = r
                .status
                .and_then(|s| s.user_info)
                .and_then(|u| u.username)
                .filter(|u| !u.is_empty())
        {
            return u;
        }
        self.kube_user
            .clone()
            .unwrap_or_else(|| "an unknown user".into())
    }

    /// Records a Normal Event on the Rollout naming the action and the user.
    pub async fn record(&self, ro: &Rollout, note: &EventNote, user: &str) -> Result<()> {
        let name = model::name(ro);
        let now = jiff::Timestamp::now();
        let event = Event {
            metadata: ObjectMeta {
                name: Some(format!("{name}.{:x}", now.as_nanosecond())),
                namespace: Some(self.namespace.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some(format!(
                    "{}/{}",
                    ramp_api::names::GROUP,
                    ramp_api::names::VERSION
                )),
                kind: Some("Rollout".into()),
                name: Some(name.to_string()),
                namespace: Some(self.namespace.clone()),
                uid: ro.metadata.uid.clone(),
                resource_version: ro.metadata.resource_version.clone(),
                ..Default::default()
            },
            reason: Some(note.reason.into()),
            action: Some(note.action.into()),
            message: Some(format!("{} by {user} (kubectl ramp)", note.what)),
            type_: Some("Normal".into()),
            source: Some(EventSource {
                component: Some(COMPONENT.into()),
                host: None,
            }),
            reporting_component: Some(COMPONENT.into()),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            count: Some(1),
            ..Default::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &self.namespace);
        api.create(&PostParams::default(), &event)
            .await
            .map(|_| ())
            .map_err(|e| self.error(e, "create", "events", "", None))
    }
}

/// The innermost error message (hyper/tower wrap the interesting part).
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur: &(dyn std::error::Error + 'static) = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> Cluster {
        let config = Config::new("http://127.0.0.1:1".parse().unwrap());
        Cluster {
            client: Client::try_from(config).unwrap(),
            namespace: "shop".into(),
            kube_user: None,
            server: "http://127.0.0.1:1/".into(),
        }
    }

    fn api_error(code: u16, message: &str) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure(message, "Whatever")
                .with_code(code)
                .boxed(),
        )
    }

    #[tokio::test]
    async fn forbidden_names_the_verb_and_the_resource() {
        let c = cluster();
        let e = c.error(
            api_error(403, "rollouts.rollouts.ramp.dev \"web\" is forbidden: User \"bob\" cannot patch resource \"rollouts/status\""),
            "patch",
            "rollouts/status",
            ramp_api::names::GROUP,
            Some("web"),
        );
        assert_eq!(
            e,
            Error::Forbidden(
                "forbidden: you may not patch rollouts/status (API group rollouts.ramp.dev) in namespace 'shop' (object 'web')".into()
            )
        );
        let e = c.error(api_error(403, ""), "create", "events", "", None);
        assert_eq!(
            e,
            Error::Forbidden("forbidden: you may not create events in namespace 'shop'".into())
        );
    }

    #[tokio::test]
    async fn other_api_errors_are_one_line_with_the_object() {
        let c = cluster();
        assert_eq!(
            c.error(
                api_error(404, "nope"),
                "get",
                "deployments",
                "apps",
                Some("web")
            ),
            Error::NotFound("deployments 'web' not found in namespace 'shop'".into())
        );
        assert_eq!(
            c.error(api_error(401, "Unauthorized"), "get", "rollouts", "", Some("web")),
            Error::Connection(
                "unauthorized: the API server at http://127.0.0.1:1/ rejected the kubeconfig credentials".into()
            )
        );
        assert_eq!(
            c.error(api_error(500, "etcd is sad"), "list", "rollouts", "", None),
            Error::Api("list rollouts in namespace 'shop' failed: etcd is sad (HTTP 500)".into())
        );
    }

    #[test]
    fn failed_guards_are_recognised() {
        assert!(is_test_failure(&api_error(
            422,
            "the server rejected our request"
        )));
        assert!(is_test_failure(&api_error(409, "conflict")));
        assert!(is_test_failure(&api_error(
            500,
            "jsonpatch test operation does not apply"
        )));
        assert!(!is_test_failure(&api_error(403, "forbidden")));
    }
}
