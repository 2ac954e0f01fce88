//! Telemetry of the embedded mesh: background request streams ([`load`]),
//! pods that answer as their annotations say ([`behaviour`]), and Istio's
//! standard metrics on `/metrics` ([`metrics`]).
//!
//! HTTP, on the sim's own port:
//! - `GET /metrics`: OpenMetrics text (`istio_requests_total`,
//!   `istio_request_duration_milliseconds`).
//! - `POST /sim/v1/load` with a [`load::LoadSpec`]: `201` and the new
//!   stream's [`load::LoadStatus`] (its `id`); `400` naming the bad field.
//! - `GET /sim/v1/load`: `{"streams": [LoadStatus...]}`, the running streams
//!   with their counts; `GET /sim/v1/load/{id}` one of them.
//! - `DELETE /sim/v1/load/{id}`: stops it (`200` and its last status, `404`
//!   when unknown); `DELETE /sim/v1/load` stops them all.

pub mod behaviour;
pub mod load;
pub mod metrics;
pub mod workload;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use prometheus_client::registry::Registry;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::errors::ApiError;
use crate::resources::GroupResource;
use crate::store::Store;

use load::{LoadError, LoadSpec, LoadStatus, Stream};
use metrics::MeshMetrics;

/// The content type of `/metrics`.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The mesh's metrics and the load streams feeding them. Cheap to clone.
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    metrics: MeshMetrics,
    registry: Registry,
    streams: Mutex<BTreeMap<u64, Arc<Stream>>>,
    next_id: AtomicU64,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("streams", &self.loads().len())
            .finish()
    }
}

impl Telemetry {
    /// Telemetry over `store`; every stream stops when `shutdown` is cancelled.
    pub fn new(store: Store, shutdown: CancellationToken) -> Telemetry {
        let metrics = MeshMetrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        Telemetry {
            inner: Arc::new(Inner {
                store,
                metrics,
                registry,
                streams: Mutex::default(),
                next_id: AtomicU64::new(1),
                shutdown,
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The metric families (to record or read directly).
    pub fn metrics(&self) -> &MeshMetrics {
        &self.inner.metrics
    }

    /// The metrics as OpenMetrics text (what `/metrics` serves).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.inner.registry);
        out
    }

    /// Starts a stream (see [`load`]): checks the spec and that its namespace
    /// exists, then sends in the background until stopped or the server shuts
    /// down. Must be called inside a Tokio runtime.
    pub fn start_load(&self, spec: LoadSpec) -> Result<LoadStatus, LoadError> {
        spec.validate()?;
        let ns = GroupResource::new("", "namespaces");
        if self.store().get(&ns, None, &spec.namespace).is_err() {
            return Err(LoadError::Invalid {
                field: "namespace".into(),
                message: format!("namespace {} not found", spec.namespace),
            });
        }
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| LoadError::NoRuntime(e.to_string()))?;
        let n = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let stream = Arc::new(Stream::new(
            format!("load-{n}"),
            spec,
            self.inner.shutdown.child_token(),
        ));
        self.lock().insert(n, stream.clone());
        let status = stream.status();
        runtime.spawn(load::run(self.clone(), stream));
        Ok(status)
    }

    /// The running streams, oldest first.
    pub fn loads(&self) -> Vec<LoadStatus> {
        self.lock().values().map(|s| s.status()).collect()
    }

    /// One running stream.
    pub fn load(&self, id: &str) -> Result<LoadStatus, LoadError> {
        let key = Self::key(id)?;
        self.lock()
            .get(&key)
            .map(|s| s.status())
            .ok_or_else(|| LoadError::NotFound(id.to_owned()))
    }

    /// Stops a stream; returns what it had sent.
    pub fn stop_load(&self, id: &str) -> Result<LoadStatus, LoadError> {
        let key = Self::key(id)?;
        let stream = self
            .lock()
            .remove(&key)
            .ok_or_else(|| LoadError::NotFound(id.to_owned()))?;
        stream.cancel.cancel();
        Ok(stream.status())
    }

    /// Stops every stream.
    pub fn stop_all_loads(&self) -> Vec<LoadStatus> {
        let streams = std::mem::take(&mut *self.lock());
        streams
            .into_values()
            .map(|s| {
                s.cancel.cancel();
                s.status()
            })
            .collect()
    }

    fn key(id: &str) -> Result<u64, LoadError> {
        id.strip_prefix("load-")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| LoadError::NotFound(id.to_owned()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Stream>>> {
        self.inner.streams.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `/metrics` and `/sim/v1/load[/{id}]`.
    pub fn router(&self) -> Router {
        use axum::routing::get;
        Router::new()
            .route("/metrics", get(get_metrics))
            .route(
                "/sim/v1/load",
                get(list_loads).post(start_load).delete(stop_all),
            )
            .route("/sim/v1/load/{id}", get(get_load).delete(stop_load))
            .with_state(self.clone())
    }
}

fn error(e: &LoadError) -> Response {
    let e = match e {
        LoadError::Invalid { .. } => ApiError::new(400, "BadRequest", e.to_string()),
        LoadError::NotFound(_) => ApiError::new(404, "NotFound", e.to_string()),
        LoadError::NoRuntime(_) => ApiError::new(500, "InternalError", e.to_string()),
    };
    crate::server::error_response(&e)
}

async fn get_metrics(State(t): State<Telemetry>) -> Response {
    (
        [(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)],
        t.encode(),
    )
        .into_response()
}

async fn start_load(State(t): State<Telemetry>, body: bytes::Bytes) -> Response {
    let spec: LoadSpec = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => {
            return crate::server::error_response(&ApiError::new(
                400,
                "BadRequest",
                format!("invalid load spec: {e}"),
            ));
        }
    };
    match t.start_load(spec) {
        Ok(status) => (StatusCode::CREATED, axum::Json(status)).into_response(),
        Err(e) => error(&e),
    }
}

async fn list_loads(State(t): State<Telemetry>) -> Response {
    axum::Json(json!({"streams": t.loads()})).into_response()
}

async fn get_load(State(t): State<Telemetry>, Path(id): Path<String>) -> Response {
    match t.load(&id) {
        Ok(s) => axum::Json(s).into_response(),
        Err(e) => error(&e),
    }
}

async fn stop_load(State(t): State<Telemetry>, Path(id): Path<String>) -> Response {
    match t.stop_load(&id) {
        Ok(s) => axum::Json(s).into_response(),
        Err(e) => error(&e),
    }
}

async fn stop_all(State(t): State<Telemetry>) -> Response {
    axum::Json(json!({"streams": t.stop_all_loads()})).into_response()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::{Value, json};

    use crate::TestCluster;
    use crate::controllers::{ControllerConfig, Controllers};
    use crate::resources::GroupResource;
    use crate::store::{ListOptions, WriteOptions};

    fn deployment(name: &str, annotations: Value) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}, "annotations": annotations},
                    "spec": {"containers": [{"name": "app", "image": "web:1"}]}}}})
    }

    fn service(name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "shop"},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80}]}})
    }

    fn virtual_service(to: &str) -> Value {
        json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"hosts": ["web"], "http": [{"route": [{"destination": {"host": to}}]}]}})
    }

    /// `istio_requests_total` of `workload` by the destination reporter, summed.
    fn served_by(c: &TestCluster, workload: &str) -> u64 {
        let needle = format!("destination_workload=\"{workload}\"");
        c.server()
            .telemetry()
            .encode()
            .lines()
            .filter(|l| {
                l.starts_with("istio_requests_total{reporter=\"destination\"")
                    && l.contains(&needle)
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    async fn call(
        c: &TestCluster,
        method: http::Method,
        path: &str,
        body: &str,
    ) -> Result<Value, kube::Error> {
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(body.as_bytes().to_vec())
            .unwrap();
        let text = c.client().request_text(req).await?;
        Ok(serde_json::from_str(&text).unwrap())
    }

    #[tokio::test]
    async fn a_stream_follows_the_virtual_service_and_stops_on_delete() {
        let c = TestCluster::start().await.unwrap();
        c.load_crds(&[crate::shared_crds_dir()]).unwrap();
        let _controllers = Controllers::start(c.store().clone(), ControllerConfig::default());
        let store = c.store();
        let opts = WriteOptions::default();
        store
            .create(
                &GroupResource::new("", "namespaces"),
                None,
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
                &opts,
            )
            .unwrap();
        let deployments = GroupResource::new("apps", "deployments");
        let services = GroupResource::new("", "services");
        let vs = GroupResource::new("networking.istio.io", "virtualservices");
        for (name, ann) in [
            ("web", json!({})),
            ("web-canary", json!({"sim.ramp.dev/error-rate": "1"})),
        ] {
            store
                .create(&deployments, Some("shop"), deployment(name, ann), &opts)
                .unwrap();
            store
                .create(&services, Some("shop"), service(name), &opts)
                .unwrap();
        }
        store
            .create(&vs, Some("shop"), virtual_service("web"), &opts)
            .unwrap();
        let pods = GroupResource::new("", "pods");
        for _ in 0..100 {
            let list = store
                .list(&pods, Some("shop"), &ListOptions::default())
                .unwrap();
            if list
                .items
                .iter()
                .filter(|p| crate::mesh::pod_is_ready(p))
                .count()
                == 2
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        // Bad input: 400 naming the field, nothing started.
        let err = call(
            &c,
            http::Method::POST,
            "/sim/v1/load",
            r#"{"namespace": "shop", "host": "web", "rps": 0}"#,
        )
        .await
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("invalid load spec: rps: must be more than 0"),
            "{err}"
        );
        let err = call(
            &c,
            http::Method::POST,
            "/sim/v1/load",
            r#"{"namespace": "nowhere", "host": "web", "rps": 5}"#,
        )
        .await
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("namespace: namespace nowhere not found"),
            "{err}"
        );
        assert!(c.loads().is_empty());

        let started = call(
            &c,
            http::Method::POST,
            "/sim/v1/load",
            r#"{"namespace": "shop", "host": "web", "rps": 200}"#,
        )
        .await
        .unwrap();
        let id = started["id"].as_str().unwrap().to_owned();
        assert_eq!(started["running"], true);
        tokio::time::sleep(Duration::from_millis(600)).await;
        let web = served_by(&c, "web");
        assert!(web >= 60, "web served {web}");
        assert_eq!(served_by(&c, "web-canary"), 0);

        // The VirtualService moves all traffic: the stream follows.
        let mut moved = virtual_service("web-canary");
        moved["metadata"]["resourceVersion"] = json!("");
        store
            .update(&vs, Some("shop"), "web", moved, None, &opts)
            .unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
        let web_after = served_by(&c, "web");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(served_by(&c, "web"), web_after, "web kept getting traffic");
        let canary = served_by(&c, "web-canary");
        assert!(canary >= 50, "canary served {canary}");

        let list = call(&c, http::Method::GET, "/sim/v1/load", "")
            .await
            .unwrap();
        let streams = list["streams"].as_array().unwrap();
        assert_eq!(streams.len(), 1);
        assert_eq!(streams[0]["id"], id.as_str());
        assert!(streams[0]["sent"].as_u64().unwrap() >= web_after + canary);
        assert!(streams[0]["errors"].as_u64().unwrap() >= canary);

        let stopped = call(&c, http::Method::DELETE, &format!("/sim/v1/load/{id}"), "")
            .await
            .unwrap();
        assert_eq!(stopped["running"], false);
        tokio::time::sleep(Duration::from_millis(250)).await;
        let total = served_by(&c, "web") + served_by(&c, "web-canary");
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(
            served_by(&c, "web") + served_by(&c, "web-canary"),
            total,
            "still sending"
        );
        let list = call(&c, http::Method::GET, "/sim/v1/load", "")
            .await
            .unwrap();
        assert_eq!(list["streams"], json!([]));
        let err = call(&c, http::Method::DELETE, &format!("/sim/v1/load/{id}"), "")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not found"), "{err}");

        // /metrics is OpenMetrics text.
        let req = http::Request::get("/metrics").body(Vec::new()).unwrap();
        let text = c.client().request_text(req).await.unwrap();
        assert!(text.contains("# TYPE istio_requests counter"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");

        // The namespace goes away under a running stream: it says why it sends nothing.
        let status = c
            .start_load(super::LoadSpec::new("shop", "web", 50.0))
            .unwrap();
        let nsgr = GroupResource::new("", "namespaces");
        store
            .delete(&nsgr, None, "shop", &crate::store::DeleteOptions::default())
            .unwrap();
        let mut last_error = None;
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            last_error = c.loads()[0].last_error.clone();
            if last_error.is_some() && store.get(&nsgr, None, "shop").is_err() {
                break;
            }
        }
        let last_error = last_error.unwrap_or_default();
        assert!(
            last_error.contains("namespace shop not found"),
            "{last_error:?}"
        );
        c.stop_load(&status.id).unwrap();
        assert!(c.loads().is_empty());
    }
}
