//! Background load: steady request streams through the mesh router.
//!
//! A stream sends `rps` requests per second to `host` in `namespace`
//! (optionally entering through an Istio Gateway, with headers). Every
//! [`TICK`] it takes the namespace's routing objects as stored at that moment
//! and routes the requests due since the last tick with
//! [`crate::mesh::route`] — the same entry point as `ramp-sim route` — so
//! traffic follows the VirtualService or HTTPRoute as it is at each step of a
//! rollout. Each request a pod serves is answered as that pod's annotations say
//! ([`super::behaviour`]) and counted in the Istio metrics
//! ([`super::metrics`]).
//!
//! ```no_run
//! # async fn demo(c: &ramp_sim::TestCluster) -> Result<(), ramp_sim::load::LoadError> {
//! use ramp_sim::load::LoadSpec;
//! let status = c.start_load(LoadSpec::new("shop", "web", 200.0).header("x-user", "a"))?;
//! // ... later
//! c.stop_load(&status.id)?;
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::mesh::{self, HttpRequest, RouteOptions, host};

use super::Telemetry;
use super::metrics::Source;
use super::workload::PodIndex;

/// How often a stream routes the requests that fell due.
pub const TICK: Duration = Duration::from_millis(100);
/// The highest accepted rate.
pub const MAX_RPS: f64 = 20_000.0;
/// At most this many distinct warnings are kept per stream.
const MAX_WARNINGS: usize = 20;

/// A request stream to start (`POST /sim/v1/load`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadSpec {
    /// Namespace the requests are routed in (it must exist).
    pub namespace: String,
    /// Host the requests go to: a Service name (short or FQDN), optionally `:port`.
    pub host: String,
    /// Enter through this Istio Gateway (`name` or `namespace/name`); `None`
    /// sends from inside the mesh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Requests per second (more than 0, at most [`MAX_RPS`]; fractions allowed).
    pub rps: f64,
    /// Request headers (names are case-insensitive).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Request path (default `/`).
    #[serde(default = "slash")]
    pub path: String,
    /// Seed of the weighted choices and the pods' answers (random by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

fn slash() -> String {
    "/".to_owned()
}

impl LoadSpec {
    /// `rps` requests per second to `host` in `namespace`, from inside the mesh.
    pub fn new(namespace: impl Into<String>, host: impl Into<String>, rps: f64) -> Self {
        LoadSpec {
            namespace: namespace.into(),
            host: host.into(),
            gateway: None,
            rps,
            headers: BTreeMap::new(),
            path: slash(),
            seed: None,
        }
    }

    /// Enter through the Istio Gateway `name` (or `namespace/name`).
    pub fn gateway(mut self, name: impl Into<String>) -> Self {
        self.gateway = Some(name.into());
        self
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), LoadError> {
        let bad = |field: &str, message: String| {
            Err(LoadError::Invalid {
                field: field.to_owned(),
                message,
            })
        };
        if self.namespace.trim().is_empty() {
            return bad("namespace", "must not be empty".into());
        }
        if self.host.trim().is_empty() {
            return bad("host", "must not be empty".into());
        }
        if !(self.rps.is_finite() && self.rps > 0.0 && self.rps <= MAX_RPS) {
            return bad(
                "rps",
                format!(
                    "must be more than 0 and at most {MAX_RPS}, got {}",
                    self.rps
                ),
            );
        }
        if let Some(g) = &self.gateway
            && (g.trim().is_empty()
                || g.split('/').any(str::is_empty)
                || g.matches('/').count() > 1)
        {
            return bad(
                "gateway",
                format!("{g:?} is not `name` or `namespace/name`"),
            );
        }
        for name in self.headers.keys() {
            if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == ':') {
                return bad(
                    &format!("headers[{name:?}]"),
                    "is not a valid header name".into(),
                );
            }
        }
        if !self.path.starts_with('/') {
            return bad("path", format!("{:?} must start with /", self.path));
        }
        Ok(())
    }

    /// The request each copy of the stream is.
    pub fn request(&self) -> HttpRequest {
        let mut r = HttpRequest::new(self.host.clone()).path(self.path.clone());
        for (k, v) in &self.headers {
            r = r.header(k, v.clone());
        }
        if let Some(g) = &self.gateway {
            r = r.through_gateway(g.clone());
        }
        r
    }
}

/// A running (or just stopped) stream and what it has sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadStatus {
    pub id: String,
    #[serde(flatten)]
    pub spec: LoadSpec,
    /// Requests sent so far.
    pub sent: u64,
    /// Requests a pod answered (any status).
    pub served: u64,
    /// Requests answered 5xx, by a pod or by the proxy.
    pub errors: u64,
    /// Mirrored copies a pod answered.
    pub shadow: u64,
    /// RFC 3339 time the stream started.
    pub started_at: String,
    /// Why the last tick sent nothing (namespace deleted, a malformed routing
    /// object); cleared by the next tick that routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Ignored pod annotations and similar notes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// False once stopped.
    pub running: bool,
}

/// Errors of the load API.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadError {
    /// A field of the spec is invalid.
    #[error("invalid load spec: {field}: {message}")]
    Invalid { field: String, message: String },
    /// No stream has this id.
    #[error("load stream {0:?} not found")]
    NotFound(String),
    /// Streams need a Tokio runtime.
    #[error("starting a load stream needs a Tokio runtime: {0}")]
    NoRuntime(String),
}

#[derive(Debug, Default)]
struct Counts {
    sent: u64,
    served: u64,
    errors: u64,
    shadow: u64,
    last_error: Option<String>,
    warnings: BTreeSet<String>,
}

/// One stream: what it was asked, what it did, and how to stop it.
#[derive(Debug)]
pub(super) struct Stream {
    id: String,
    spec: LoadSpec,
    started_at: String,
    counts: Mutex<Counts>,
    pub(super) cancel: CancellationToken,
}

impl Stream {
    pub(super) fn new(id: String, spec: LoadSpec, cancel: CancellationToken) -> Stream {
        Stream {
            id,
            spec,
            started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            counts: Mutex::default(),
            cancel,
        }
    }

    pub(super) fn status(&self) -> LoadStatus {
        let c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        LoadStatus {
            id: self.id.clone(),
            spec: self.spec.clone(),
            sent: c.sent,
            served: c.served,
            errors: c.errors,
            shadow: c.shadow,
            started_at: self.started_at.clone(),
            last_error: c.last_error.clone(),
            warnings: c.warnings.iter().cloned().collect(),
            running: !self.cancel.is_cancelled(),
        }
    }
}

/// The stream's loop: every [`TICK`], route what fell due; after a stall,
/// at most one second's worth at once (the rest is skipped, not sent late).
pub(super) async fn run(telemetry: Telemetry, stream: Arc<Stream>) {
    let spec = &stream.spec;
    let request = spec.request();
    let source = Source::of(spec.gateway.as_deref(), &spec.namespace);
    let host_name = host_name(&spec.host, &spec.namespace);
    let mut rng = StdRng::seed_from_u64(spec.seed.unwrap_or_else(rand::random));
    let start = Instant::now();
    let burst = spec.rps.ceil().max(1.0) as u64;
    let mut scheduled: u64 = 0;
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stream.cancel.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let due = (spec.rps * start.elapsed().as_secs_f64()) as u64;
        let mut n = due.saturating_sub(scheduled);
        if n > burst {
            n = burst;
        }
        scheduled = due;
        if n == 0 {
            continue;
        }
        let outcome = send(&telemetry, spec, &request, &source, &host_name, n, &mut rng);
        let mut c = stream.counts.lock().unwrap_or_else(|e| e.into_inner());
        match outcome {
            Ok((rec, warnings)) => {
                c.sent += n;
                c.served += rec.served;
                c.errors += rec.errors;
                c.shadow += rec.shadow;
                c.last_error = None;
                for w in warnings {
                    if c.warnings.len() < MAX_WARNINGS {
                        c.warnings.insert(w);
                    }
                }
            }
            Err(e) => {
                if c.last_error.as_deref() != Some(e.as_str()) {
                    tracing::warn!(stream = %stream.id, error = %e, "load stream sent nothing");
                }
                c.last_error = Some(e);
            }
        }
    }
}

/// Routes `n` copies of `request` through the namespace as stored now and
/// counts them.
fn send(
    telemetry: &Telemetry,
    spec: &LoadSpec,
    request: &HttpRequest,
    source: &Source,
    host_name: &str,
    n: u64,
    rng: &mut StdRng,
) -> Result<(super::metrics::Recorded, Vec<String>), String> {
    let store = telemetry.store();
    let snapshot = mesh::snapshot_from_store(store, &spec.namespace).map_err(|e| e.to_string())?;
    let options = RouteOptions::new(n).seed(rng.random());
    let report = mesh::route(&snapshot, request, &options).map_err(|e| e.to_string())?;
    let rs = crate::resources::GroupResource::new("apps", "replicasets");
    let mut pods = PodIndex::new(snapshot.pods.iter(), |name| {
        store.get(&rs, Some(&spec.namespace), name).ok()
    });
    pods.ports = super::metrics::ServicePorts::of(&snapshot.services);
    let rec = telemetry
        .metrics()
        .record(&spec.namespace, host_name, source, &report, &pods, rng);
    let mut warnings = pods.warnings;
    warnings.extend(report.warnings);
    Ok((rec, warnings))
}

/// The Service name a request host designates in `namespace` (`web`,
/// `web.ns`, `web.ns.svc.cluster.local`, with or without `:port`), else the
/// host as written.
fn host_name(host: &str, namespace: &str) -> String {
    let (name, _) = host::split_port(host.trim());
    let fqdn = host::qualify(name, namespace);
    host::service_name(&fqdn, namespace)
        .map(str::to_owned)
        .unwrap_or(fqdn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_with_defaults_and_refuse_unknown_fields() {
        let s: LoadSpec =
            serde_json::from_str(r#"{"namespace": "shop", "host": "web", "rps": 200}"#).unwrap();
        assert_eq!(s, LoadSpec::new("shop", "web", 200.0));
        assert!(s.validate().is_ok());
        let e = serde_json::from_str::<LoadSpec>(
            r#"{"namespace": "shop", "host": "web", "rps": 1, "rate": 3}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown field `rate`"), "{e}");
        let s: LoadSpec = serde_json::from_str(
            r#"{"namespace": "shop", "host": "web", "gateway": "gw", "rps": 0.5, "headers": {"X-User": "a"}}"#,
        )
        .unwrap();
        let r = s.request();
        assert_eq!(r.gateway.as_deref(), Some("gw"));
        assert_eq!(r.headers.get("x-user").map(String::as_str), Some("a"));
    }

    #[test]
    fn invalid_specs_name_the_field() {
        let field = |s: LoadSpec| match s.validate() {
            Err(LoadError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(LoadSpec::new("", "web", 1.0)), "namespace");
        assert_eq!(field(LoadSpec::new("a", " ", 1.0)), "host");
        assert_eq!(field(LoadSpec::new("a", "web", 0.0)), "rps");
        assert_eq!(field(LoadSpec::new("a", "web", -3.0)), "rps");
        assert_eq!(field(LoadSpec::new("a", "web", f64::NAN)), "rps");
        assert_eq!(field(LoadSpec::new("a", "web", MAX_RPS + 1.0)), "rps");
        assert_eq!(
            field(LoadSpec::new("a", "web", 1.0).gateway("a/b/c")),
            "gateway"
        );
        assert_eq!(
            field(LoadSpec::new("a", "web", 1.0).gateway("/b")),
            "gateway"
        );
        assert_eq!(
            field(LoadSpec::new("a", "web", 1.0).header("bad name", "x")),
            "headers[\"bad name\"]"
        );
        assert_eq!(field(LoadSpec::new("a", "web", 1.0).path("x")), "path");
        let msg = LoadSpec::new("a", "web", -3.0)
            .validate()
            .unwrap_err()
            .to_string();
        assert_eq!(
            msg,
            "invalid load spec: rps: must be more than 0 and at most 20000, got -3"
        );
    }

    #[test]
    fn host_names() {
        assert_eq!(host_name("web", "shop"), "web");
        assert_eq!(host_name("web.shop:8080", "shop"), "web");
        assert_eq!(host_name("web.shop.svc.cluster.local", "shop"), "web");
        assert_eq!(host_name("example.com", "shop"), "example.com");
    }
}
