//! Admission webhooks served by the operator over HTTPS.
//!
//! - `POST /mutate-deployment`: on UPDATE of a Deployment that a Rollout
//!   controls (it carries [`CONTROLLED_BY_LABEL`]), sets `spec.paused: true` in
//!   the same write whenever the pod template changes, so the native rolling
//!   update never starts.
//! - `POST /validate-rollout`: on CREATE/UPDATE of a Rollout, runs the API
//!   crate's validation, checks that no other Rollout controls the same
//!   workload, and that a progressing Rollout keeps its shape.
//!
//! The decisions are pure functions; the server is a thin shell around them.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use k8s_openapi::api::apps::v1::Deployment;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use ramp_api::Rollout;
use ramp_api::names::{CONTROLLED_BY_LABEL, PAUSED_BY_RAMP_ANNOTATION};
use serde_json::json;

/// Path of the Deployment-pausing webhook.
pub const MUTATE_DEPLOYMENT_PATH: &str = "/mutate-deployment";
/// Path of the Rollout-validating webhook.
pub const VALIDATE_ROLLOUT_PATH: &str = "/validate-rollout";

/// The JSON patch that pauses a controlled Deployment whose template changed,
/// or `None` when the write may pass unchanged.
pub fn deployment_pause_patch(old: &Deployment, new: &Deployment) -> Option<json_patch::Patch> {
    let labels = new.metadata.labels.as_ref()?;
    if !labels.contains_key(CONTROLLED_BY_LABEL) {
        return None;
    }
    let new_spec = new.spec.as_ref()?;
    let old_template = old.spec.as_ref().map(|s| &s.template);
    if old_template == Some(&new_spec.template) || new_spec.paused == Some(true) {
        return None;
    }
    let mut ops = vec![json!({"op": "add", "path": "/spec/paused", "value": true})];
    let key = PAUSED_BY_RAMP_ANNOTATION
        .replace('~', "~0")
        .replace('/', "~1");
    if new.metadata.annotations.is_some() {
        ops.push(
            json!({"op": "add", "path": format!("/metadata/annotations/{key}"), "value": "true"}),
        );
    } else {
        ops.push(json!({"op": "add", "path": "/metadata/annotations", "value": {PAUSED_BY_RAMP_ANNOTATION: "true"}}));
    }
    serde_json::from_value(serde_json::Value::Array(ops)).ok()
}

/// Why a Rollout write is refused, or `Ok` when it may pass.
///
/// `others` are the other Rollouts in the same namespace.
/// `controlling`: the names of the Rollouts (not being deleted) that already
/// control `new`'s workload.
pub fn review_rollout(
    old: Option<&Rollout>,
    new: &Rollout,
    controlling: &[String],
) -> Result<(), String> {
    let mut problems: Vec<String> = match old {
        Some(old) => ramp_api::validate_rollout_update(old, new),
        None => ramp_api::validate_rollout(new),
    }
    .into_iter()
    .map(|e| e.to_string())
    .collect();
    let name = new.metadata.name.as_deref().unwrap_or_default();
    let w = &new.spec.workload_ref;
    if let Some(other) = controlling.iter().find(|o| o.as_str() != name) {
        problems.push(format!(
            "spec.workloadRef: {} {:?} is already controlled by Rollout {other:?}; one Rollout per workload",
            w.kind, w.name,
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "Rollout {name:?} is invalid: {}",
            problems.join("; ")
        ))
    }
}

/// Source of the Rollouts the validating webhook compares against.
pub trait RolloutLister: Send + Sync + 'static {
    /// Names of the Rollouts in `namespace`, not being deleted, whose
    /// `workloadRef` is `kind/name`.
    fn controlling(&self, namespace: &str, kind: &str, name: &str) -> Vec<String>;
}

fn workload_key(ns: &str, kind: &str, name: &str) -> String {
    format!("{ns}/{kind}/{name}")
}

fn workload_keys(r: &Rollout) -> Vec<String> {
    if r.metadata.deletion_timestamp.is_some() {
        return Vec::new();
    }
    let w = &r.spec.workload_ref;
    vec![workload_key(
        r.metadata.namespace.as_deref().unwrap_or_default(),
        &w.kind,
        &w.name,
    )]
}

/// Rollouts by the workload they name, fed by a Rollout watch: what the
/// validating webhook needs (a hash lookup per review, a few hundred bytes
/// per Rollout, instead of a cache of every Rollout scanned per review).
pub struct WorkloadOwners(crate::index::Index<Rollout>);

impl Default for WorkloadOwners {
    fn default() -> Self {
        WorkloadOwners(crate::index::Index::new(workload_keys))
    }
}

impl WorkloadOwners {
    /// Follow one watch event.
    pub fn observe(&self, ev: &kube::runtime::watcher::Event<Rollout>) {
        self.0.observe(ev);
    }
}

impl RolloutLister for WorkloadOwners {
    fn controlling(&self, namespace: &str, kind: &str, name: &str) -> Vec<String> {
        self.0
            .get(&workload_key(namespace, kind, name))
            .into_iter()
            .map(|(_, n)| n)
            .collect()
    }
}

fn respond(res: AdmissionResponse) -> Json<AdmissionReview<DynamicObject>> {
    Json(res.into_review())
}

async fn mutate_deployment(
    Json(review): Json<AdmissionReview<Deployment>>,
) -> Json<AdmissionReview<DynamicObject>> {
    let req: AdmissionRequest<Deployment> = match review.try_into() {
        Ok(r) => r,
        Err(e) => return respond(AdmissionResponse::invalid(e.to_string())),
    };
    let res = AdmissionResponse::from(&req);
    if req.operation != Operation::Update {
        return respond(res);
    }
    let (Some(old), Some(new)) = (&req.old_object, &req.object) else {
        return respond(res);
    };
    match deployment_pause_patch(old, new) {
        None => respond(res),
        Some(patch) => {
            tracing::info!(
                namespace = req.namespace.as_deref().unwrap_or_default(),
                deployment = req.name,
                "pod template changed: pausing the Deployment for its Rollout"
            );
            match res.with_patch(patch) {
                Ok(r) => respond(r),
                Err(e) => respond(AdmissionResponse::invalid(e.to_string())),
            }
        }
    }
}

async fn validate_rollout(
    State(lister): State<Arc<dyn RolloutLister>>,
    Json(review): Json<AdmissionReview<Rollout>>,
) -> Json<AdmissionReview<DynamicObject>> {
    let req: AdmissionRequest<Rollout> = match review.try_into() {
        Ok(r) => r,
        Err(e) => return respond(AdmissionResponse::invalid(e.to_string())),
    };
    let res = AdmissionResponse::from(&req);
    let Some(new) = &req.object else {
        return respond(res);
    };
    if !matches!(req.operation, Operation::Create | Operation::Update) {
        return respond(res);
    }
    let w = &new.spec.workload_ref;
    let controlling = lister.controlling(
        req.namespace.as_deref().unwrap_or_default(),
        &w.kind,
        &w.name,
    );
    match review_rollout(req.old_object.as_ref(), new, &controlling) {
        Ok(()) => respond(res),
        Err(msg) => respond(res.deny(msg)),
    }
}

/// The webhook routes.
pub fn router(lister: Arc<dyn RolloutLister>) -> Router {
    Router::new()
        .route(MUTATE_DEPLOYMENT_PATH, post(mutate_deployment))
        .route(VALIDATE_ROLLOUT_PATH, post(validate_rollout))
        .with_state(lister)
}

/// Serve the webhooks on `listener` over TLS until `shutdown` resolves, the
/// validating webhook looking Rollouts up by the workload they name in a
/// watch of every Rollout `client` can see (every replica serves webhooks,
/// leader or not, so this watch is its own, not the controller's).
pub async fn run(
    client: kube::Client,
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    use futures::StreamExt;
    use kube::runtime::WatchStreamExt;
    let owners = Arc::new(WorkloadOwners::default());
    let lister: Arc<dyn RolloutLister> = owners.clone();
    let api: kube::Api<Rollout> = kube::Api::all(client);
    let watch = kube::runtime::watcher(api, kube::runtime::watcher::Config::default())
        .default_backoff()
        .for_each(move |e| {
            if let Ok(e) = &e {
                owners.observe(e);
            }
            async {}
        });
    tokio::select! {
        _ = serve(listener, tls, router(lister), shutdown) => {}
        _ = watch => {}
    }
}

/// Serve the webhooks over TLS until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer): (tokio::net::TcpStream, SocketAddr) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook accept failed");
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(stream).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "webhook TLS handshake failed");
                    return;
                }
            };
            let svc = hyper_util::service::TowerToHyperService::new(app);
            let builder =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            if let Err(e) = builder
                .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                .await
            {
                tracing::debug!(%peer, error = %e, "webhook connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(image: &str, labelled: bool, paused: bool) -> Deployment {
        let mut d: Deployment = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "workload-demo", "namespace": "default"},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "demo"}},
                "template": {
                    "metadata": {"labels": {"app": "demo"}},
                    "spec": {"containers": [{"name": "main", "image": image}]}
                }
            }
        }))
        .unwrap();
        if labelled {
            d.metadata.labels =
                Some([(CONTROLLED_BY_LABEL.to_string(), "rollouts-demo".to_string())].into());
        }
        if paused {
            d.spec.as_mut().unwrap().paused = Some(true);
        }
        d
    }

    fn apply(d: &Deployment, p: &json_patch::Patch) -> Deployment {
        let mut v = serde_json::to_value(d).unwrap();
        json_patch::patch(&mut v, p).unwrap();
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_template_change_on_a_controlled_deployment_is_paused() {
        let old = deployment("nginx:1.0", true, false);
        let new = deployment("nginx:2.0", true, false);
        let patch = deployment_pause_patch(&old, &new).expect("patched");
        let out = apply(&new, &patch);
        assert_eq!(out.spec.unwrap().paused, Some(true));
        assert_eq!(
            out.metadata.annotations.unwrap()[PAUSED_BY_RAMP_ANNOTATION],
            "true"
        );
    }

    #[test]
    fn other_writes_pass_unchanged() {
        // Not controlled by a Rollout.
        assert!(
            deployment_pause_patch(
                &deployment("a", false, false),
                &deployment("b", false, false)
            )
            .is_none()
        );
        // Same template (a scale, a label change, ramp's own unpause).
        assert!(
            deployment_pause_patch(&deployment("a", true, true), &deployment("a", true, false))
                .is_none()
        );
        // Already paused.
        assert!(
            deployment_pause_patch(&deployment("a", true, false), &deployment("b", true, true))
                .is_none()
        );
    }

    #[test]
    fn existing_annotations_are_kept() {
        let old = deployment("a", true, false);
        let mut new = deployment("b", true, false);
        new.metadata.annotations = Some([("team".to_string(), "payments".to_string())].into());
        let out = apply(&new, &deployment_pause_patch(&old, &new).unwrap());
        let ann = out.metadata.annotations.unwrap();
        assert_eq!(ann["team"], "payments");
        assert_eq!(ann[PAUSED_BY_RAMP_ANNOTATION], "true");
    }

    fn rollout(name: &str, workload: &str) -> Rollout {
        serde_json::from_value(json!({
            "apiVersion": "rollouts.ramp.dev/v1beta1", "kind": "Rollout",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": workload},
                "strategy": {"canary": {
                    "steps": [{"replicas": 1, "traffic": "20%"}],
                    "trafficRoutings": [{"service": "svc", "customNetworkRefs": [
                        {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "name": "vs"}]}]
                }}
            }
        }))
        .unwrap()
    }

    fn controlling(owners: &WorkloadOwners, r: &Rollout) -> Vec<String> {
        let w = &r.spec.workload_ref;
        owners.controlling("default", &w.kind, &w.name)
    }

    #[test]
    fn one_rollout_per_workload() {
        use kube::runtime::watcher::Event;
        let owners = WorkloadOwners::default();
        let a = rollout("a", "web");
        owners.observe(&Event::Apply(a.clone()));
        let b = rollout("b", "web");
        let err = review_rollout(None, &b, &controlling(&owners, &b)).unwrap_err();
        assert_eq!(
            err,
            "Rollout \"b\" is invalid: spec.workloadRef: Deployment \"web\" is already controlled by Rollout \"a\"; one Rollout per workload"
        );
        // Updating the same Rollout is fine; another workload too.
        assert_eq!(
            review_rollout(Some(&a), &a, &controlling(&owners, &a)),
            Ok(())
        );
        let c = rollout("c", "api");
        assert_eq!(review_rollout(None, &c, &controlling(&owners, &c)), Ok(()));
        // A Rollout being deleted no longer holds its workload.
        let mut gone = a.clone();
        gone.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            ));
        owners.observe(&Event::Apply(gone));
        assert_eq!(review_rollout(None, &b, &controlling(&owners, &b)), Ok(()));
    }

    #[test]
    fn invalid_specs_are_denied_with_field_paths() {
        let mut r = rollout("a", "web");
        r.spec.strategy.canary.as_mut().unwrap().steps[0].traffic = Some("150%".into());
        let err = review_rollout(None, &r, &[]).unwrap_err();
        assert!(
            err.contains("spec.strategy.canary.steps[0].traffic: invalid value \"150%\""),
            "{err}"
        );
    }
}
