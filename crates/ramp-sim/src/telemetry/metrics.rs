//! Istio's standard request metrics, counted from routed requests, and the
//! Envoy cluster statistics a gateway exports for the requests it proxies.
//!
//! `istio_requests_total` (counter) and `istio_request_duration_milliseconds`
//! (histogram, Istio's default buckets), both with the labels of
//! [`RequestLabels`]. One series per label set: per workload, service,
//! version, response code and source, never per request or pod.
//!
//! Requests entering through a gateway are also counted as the gateway's
//! Envoy reports its upstream clusters: `envoy_cluster_upstream_rq`
//! (`envoy_cluster_name`, `envoy_response_code`; Envoy exports it without a
//! `_total` suffix, so it is encoded untyped) and the histogram
//! `envoy_cluster_upstream_rq_time` (milliseconds, Envoy's default buckets),
//! with clusters named as Contour names them: `<namespace>_<service>_<port>`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;
use rand::Rng;

use crate::mesh::RouteReport;
use crate::mesh::host;

use super::workload::{PodIndex, UNKNOWN};

/// Istio's default buckets of `istio_request_duration_milliseconds`.
pub const ISTIO_DURATION_BUCKETS_MS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// The labels of both metrics, as Istio's standard metrics name them.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct RequestLabels {
    /// `destination` (counted by the serving pod's proxy) or `source` (by the
    /// client's proxy or the gateway).
    pub reporter: String,
    /// The gateway the request entered through, else `unknown`.
    pub source_workload: String,
    pub source_workload_namespace: String,
    /// The serving pod's owning Deployment; `unknown` when no pod answered.
    pub destination_workload: String,
    pub destination_workload_namespace: String,
    /// FQDN of the destination Service.
    pub destination_service: String,
    pub destination_service_name: String,
    pub destination_service_namespace: String,
    /// The serving pod's `version` label, else `unknown`.
    pub destination_version: String,
    pub request_protocol: String,
    pub response_code: String,
    /// Envoy's response flags: `-`, `UH` (no healthy upstream), `NR` (no
    /// route), `FI` (fault injected).
    pub response_flags: String,
}

/// The labels of Envoy's upstream request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct EnvoyRequestLabels {
    pub envoy_cluster_name: String,
    pub envoy_response_code: String,
}

/// The label of Envoy's upstream request time histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct EnvoyClusterLabels {
    pub envoy_cluster_name: String,
}

/// A counter encoded without the `_total` suffix OpenMetrics gives counters,
/// as Envoy names `envoy_cluster_upstream_rq` (untyped in the exposition;
/// `rate()` reads it the same).
#[derive(Debug, Clone, Default)]
pub struct UnsuffixedCounter(Arc<AtomicU64>);

impl UnsuffixedCounter {
    pub fn inc_by(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl TypedMetric for UnsuffixedCounter {
    const TYPE: MetricType = MetricType::Unknown;
}

impl EncodeMetric for UnsuffixedCounter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&self.get())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Unknown
    }
}

/// The first port of each Service of a namespace, for Envoy cluster names.
#[derive(Debug, Default, Clone)]
pub struct ServicePorts(BTreeMap<String, i64>);

impl ServicePorts {
    /// The ports of `services` (JSON as stored).
    pub fn of<'a>(services: impl IntoIterator<Item = &'a serde_json::Value>) -> Self {
        ServicePorts(
            services
                .into_iter()
                .filter_map(|s| {
                    let name = s.pointer("/metadata/name")?.as_str()?;
                    let port = s.pointer("/spec/ports/0/port")?.as_i64()?;
                    Some((name.to_owned(), port))
                })
                .collect(),
        )
    }

    /// The Envoy cluster of `service` in `namespace`, as Contour names it
    /// (`80` when the Service is unknown or has no port).
    pub fn cluster(&self, namespace: &str, service: &str) -> String {
        let port = self.0.get(service).copied().unwrap_or(80);
        format!("{namespace}_{service}_{port}")
    }
}

/// Where requests come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub workload: String,
    pub namespace: String,
}

impl Source {
    /// Whether the requests entered through a gateway (whose Envoy then
    /// reports its upstream clusters).
    pub fn through_gateway(&self) -> bool {
        self.workload != UNKNOWN
    }

    /// The source of requests entering through `gateway` (`name` or
    /// `namespace/name`) in `namespace`; from inside the mesh, `unknown`.
    pub fn of(gateway: Option<&str>, namespace: &str) -> Source {
        match gateway {
            Some(g) => {
                let (ns, name) = g.split_once('/').unwrap_or((namespace, g));
                Source {
                    workload: name.to_owned(),
                    namespace: ns.to_owned(),
                }
            }
            None => Source {
                workload: UNKNOWN.to_owned(),
                namespace: UNKNOWN.to_owned(),
            },
        }
    }
}

/// What one batch of routed requests added up to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recorded {
    /// Requests a pod answered (any status).
    pub served: u64,
    /// Requests answered 5xx, by a pod or by the proxy.
    pub errors: u64,
    /// Mirrored copies a pod answered.
    pub shadow: u64,
}

type HistogramFamily = Family<RequestLabels, Histogram, fn() -> Histogram>;

fn istio_histogram() -> Histogram {
    Histogram::new(ISTIO_DURATION_BUCKETS_MS)
}

type EnvoyHistogramFamily = Family<EnvoyClusterLabels, Histogram, fn() -> Histogram>;

/// The metric families, registered in one registry.
#[derive(Debug, Clone)]
pub struct MeshMetrics {
    pub requests: Family<RequestLabels, Counter>,
    pub duration: HistogramFamily,
    pub envoy_requests: Family<EnvoyRequestLabels, UnsuffixedCounter>,
    pub envoy_time: EnvoyHistogramFamily,
}

impl Default for MeshMetrics {
    fn default() -> Self {
        MeshMetrics {
            requests: Family::default(),
            duration: Family::new_with_constructor(istio_histogram as fn() -> Histogram),
            envoy_requests: Family::default(),
            // Envoy's default histogram buckets are the ones Istio uses.
            envoy_time: Family::new_with_constructor(istio_histogram as fn() -> Histogram),
        }
    }
}

impl MeshMetrics {
    /// Registers both families in `registry` (no prefix: Istio's names).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "istio_requests",
            "Requests, as Istio's proxies count them",
            self.requests.clone(),
        );
        registry.register(
            "istio_request_duration_milliseconds",
            "Request duration in milliseconds, as Istio's proxies measure it",
            self.duration.clone(),
        );
        registry.register(
            "envoy_cluster_upstream_rq",
            "Upstream requests per response code, as a gateway's Envoy counts them",
            self.envoy_requests.clone(),
        );
        registry.register(
            "envoy_cluster_upstream_rq_time",
            "Upstream request time in milliseconds, as a gateway's Envoy measures it",
            self.envoy_time.clone(),
        );
    }

    /// Counts the requests of `report` (routed in `namespace`, to `host`, from
    /// `source`): each request a pod served gets an answer drawn from that
    /// pod's behaviour and is counted by both reporters; a request the proxy
    /// answered itself (no healthy upstream, no route, a fault) is counted by
    /// the `source` reporter only; a mirrored copy is counted by the mirror
    /// target's `destination` reporter (its answer goes nowhere). Requests
    /// through a gateway are also counted on the Envoy cluster of the Service
    /// that served them (named with `pods.ports`), mirrored copies too.
    pub fn record(
        &self,
        namespace: &str,
        host_name: &str,
        source: &Source,
        report: &RouteReport,
        pods: &PodIndex,
        rng: &mut impl Rng,
    ) -> Recorded {
        let mut out = Recorded::default();
        let base = |reporter: &str, service: &str| RequestLabels {
            reporter: reporter.to_owned(),
            source_workload: source.workload.clone(),
            source_workload_namespace: source.namespace.clone(),
            destination_workload: UNKNOWN.to_owned(),
            destination_workload_namespace: UNKNOWN.to_owned(),
            destination_service: if service.contains('.') {
                service.to_owned()
            } else {
                host::service_fqdn(service, namespace)
            },
            destination_service_name: service.to_owned(),
            destination_service_namespace: namespace.to_owned(),
            destination_version: UNKNOWN.to_owned(),
            request_protocol: "http".to_owned(),
            response_code: String::new(),
            response_flags: "-".to_owned(),
        };
        let served = [
            (&report.by_destination_pod, false),
            (&report.shadow.by_destination_pod, true),
        ];
        for (by_destination_pod, shadow) in served {
            for (destination, by_pod) in by_destination_pod {
                // `service` or `service/subset`.
                let service = destination.split('/').next().unwrap_or(destination);
                for (pod, count) in by_pod {
                    let (workload, version, behaviour) = match pods.get(pod) {
                        Some(p) => (p.workload.as_str(), p.version.as_str(), p.behaviour),
                        None => (UNKNOWN, UNKNOWN, Default::default()),
                    };
                    let mut latencies: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
                    for _ in 0..*count {
                        let a = behaviour.answer(rng);
                        latencies[usize::from(a.status >= 500)].push(a.latency_ms);
                    }
                    for (is_error, values) in latencies.iter().enumerate() {
                        if values.is_empty() {
                            continue;
                        }
                        let code = if is_error == 1 {
                            super::behaviour::ERROR_STATUS
                        } else {
                            200
                        };
                        let reporters: &[&str] = if shadow {
                            &["destination"]
                        } else {
                            &["destination", "source"]
                        };
                        for reporter in reporters {
                            let mut l = base(reporter, service);
                            l.destination_workload = workload.to_owned();
                            l.destination_workload_namespace = namespace.to_owned();
                            l.destination_version = version.to_owned();
                            l.response_code = code.to_string();
                            self.observe(&l, values);
                        }
                        if source.through_gateway() {
                            let cluster = pods.ports.cluster(namespace, service);
                            self.observe_envoy(&cluster, code, values);
                        }
                        let n = values.len() as u64;
                        if shadow {
                            out.shadow += n;
                        } else {
                            out.served += n;
                            if is_error == 1 {
                                out.errors += n;
                            }
                        }
                    }
                }
            }
        }
        // Answered by the proxy: error statuses with their reasons, and direct
        // responses (redirects, fixed answers).
        let answered_by_proxy = report
            .error_reasons
            .iter()
            .filter_map(|(key, n)| {
                let (code, reason) = key.split_once(' ')?;
                Some((code, response_flags(reason), *n))
            })
            .chain(
                report
                    .direct_responses
                    .iter()
                    .map(|(code, n)| (code.as_str(), "-", *n)),
            );
        for (code, flags, n) in answered_by_proxy {
            let mut l = base("source", host_name);
            l.response_code = code.to_owned();
            l.response_flags = flags.to_owned();
            self.requests.get_or_create(&l).inc_by(n);
            let h = self.duration.get_or_create(&l);
            for _ in 0..n {
                h.observe(0.0);
            }
            if code.starts_with('5') {
                out.errors += n;
            }
        }
        out
    }

    fn observe_envoy(&self, cluster: &str, code: u16, latencies: &[f64]) {
        self.envoy_requests
            .get_or_create(&EnvoyRequestLabels {
                envoy_cluster_name: cluster.to_owned(),
                envoy_response_code: code.to_string(),
            })
            .inc_by(latencies.len() as u64);
        let h = self.envoy_time.get_or_create(&EnvoyClusterLabels {
            envoy_cluster_name: cluster.to_owned(),
        });
        for v in latencies {
            h.observe(*v);
        }
    }

    fn observe(&self, labels: &RequestLabels, latencies: &[f64]) {
        self.requests
            .get_or_create(labels)
            .inc_by(latencies.len() as u64);
        let h = self.duration.get_or_create(labels);
        for v in latencies {
            h.observe(*v);
        }
    }
}

/// Envoy's response flag for a proxy-side failure reason of the router.
fn response_flags(reason: &str) -> &'static str {
    if reason.contains("no healthy upstream") || reason.contains("no ready pods") {
        "UH"
    } else if reason.starts_with("no route") || reason.starts_with("no cluster") {
        "NR"
    } else if reason.contains("fault") || reason.contains("abort") {
        "FI"
    } else {
        "-"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::{HttpRequest, RouteOptions, Snapshot, route};
    use prometheus_client::encoding::text::encode;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use serde_json::{Value, json};

    fn pod(name: &str, app: &str, version: &str, deployment: &str, annotations: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "shop",
                "labels": {"app": app, "version": version, "pod-template-hash": "h1"},
                "annotations": annotations,
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": format!("{deployment}-h1"), "uid": "u", "controller": true}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}})
    }

    fn service(name: &str, app: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "shop"},
            "spec": {"selector": {"app": app}, "ports": [{"port": 80}]}})
    }

    fn world(mirror: bool) -> Snapshot {
        let mut s = Snapshot::new("shop");
        s.add(service("web", "web"));
        s.add(service("web-canary", "web-canary"));
        s.add(service("web-shadow", "web-shadow"));
        s.add(pod("web-h1-a", "web", "v1", "web", json!({})));
        s.add(pod("web-h1-b", "web", "v1", "web", json!({})));
        s.add(pod(
            "web-canary-h1-a",
            "web-canary",
            "v2",
            "web-canary",
            json!({"sim.ramp.dev/error-rate": "1"}),
        ));
        let mut shadow = pod("web-shadow-h1-a", "web-shadow", "", "web-shadow", json!({}));
        shadow["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove("version");
        s.add(shadow);
        let mut http = json!({"route": [
            {"destination": {"host": "web"}, "weight": 75},
            {"destination": {"host": "web-canary"}, "weight": 25}]});
        if mirror {
            http["mirror"] = json!({"host": "web-shadow"});
            http["mirrorPercentage"] = json!({"value": 50.0});
        }
        s.add(
            json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"hosts": ["web"], "http": [http]}}),
        );
        s
    }

    fn send(metrics: &MeshMetrics, snapshot: &Snapshot, req: &HttpRequest, n: u64) -> Recorded {
        let report = route(snapshot, req, &RouteOptions::new(n).seed(3)).unwrap();
        let mut pods = PodIndex::new(snapshot.pods.iter(), |_| None);
        pods.ports = ServicePorts::of(&snapshot.services);
        let source = Source::of(req.gateway.as_deref(), "shop");
        metrics.record(
            "shop",
            "web",
            &source,
            &report,
            &pods,
            &mut StdRng::seed_from_u64(1),
        )
    }

    fn labels(
        reporter: &str,
        workload: &str,
        version: &str,
        service: &str,
        code: u16,
    ) -> RequestLabels {
        RequestLabels {
            reporter: reporter.into(),
            source_workload: "unknown".into(),
            source_workload_namespace: "unknown".into(),
            destination_workload: workload.into(),
            destination_workload_namespace: "shop".into(),
            destination_service: format!("{service}.shop.svc.cluster.local"),
            destination_service_name: service.into(),
            destination_service_namespace: "shop".into(),
            destination_version: version.into(),
            request_protocol: "http".into(),
            response_code: code.to_string(),
            response_flags: "-".into(),
        }
    }

    fn encoded(m: &MeshMetrics) -> String {
        let mut text = String::new();
        let mut registry = Registry::default();
        m.register(&mut registry);
        encode(&mut text, &registry).unwrap();
        text
    }

    /// The counter's value for exactly these labels, read from the encoded
    /// text (so that reading creates no series); 0 when absent.
    fn count(m: &MeshMetrics, l: &RequestLabels) -> u64 {
        let want = [
            ("reporter", &l.reporter),
            ("source_workload", &l.source_workload),
            ("source_workload_namespace", &l.source_workload_namespace),
            ("destination_workload", &l.destination_workload),
            (
                "destination_workload_namespace",
                &l.destination_workload_namespace,
            ),
            ("destination_service", &l.destination_service),
            ("destination_service_name", &l.destination_service_name),
            (
                "destination_service_namespace",
                &l.destination_service_namespace,
            ),
            ("destination_version", &l.destination_version),
            ("request_protocol", &l.request_protocol),
            ("response_code", &l.response_code),
            ("response_flags", &l.response_flags),
        ]
        .iter()
        .map(|(k, v)| format!("{k}=\"{v}\""))
        .collect::<Vec<_>>()
        .join(",");
        let prefix = format!("istio_requests_total{{{want}}} ");
        encoded(m)
            .lines()
            .find_map(|line| line.strip_prefix(&prefix)?.parse().ok())
            .unwrap_or(0)
    }

    #[test]
    fn served_requests_are_counted_per_workload_by_both_reporters() {
        let m = MeshMetrics::default();
        let rec = send(&m, &world(false), &HttpRequest::new("web"), 4000);
        assert_eq!(rec.served, 4000);
        let web = count(&m, &labels("destination", "web", "v1", "web", 200));
        let canary = count(
            &m,
            &labels("destination", "web-canary", "v2", "web-canary", 500),
        );
        assert_eq!(web + canary, 4000);
        assert!((900..1100).contains(&canary), "canary {canary}");
        // error-rate 1: every canary answer is a 500, none a 200.
        assert_eq!(
            count(
                &m,
                &labels("destination", "web-canary", "v2", "web-canary", 200)
            ),
            0
        );
        assert_eq!(rec.errors, canary);
        assert_eq!(count(&m, &labels("source", "web", "v1", "web", 200)), web);
        // Two pods of one Deployment are one series.
        let text = encoded(&m);
        let series = text
            .lines()
            .filter(|l| l.starts_with("istio_requests_total{"))
            .count();
        assert_eq!(series, 4, "{text}");
        assert!(text.contains("# TYPE istio_request_duration_milliseconds histogram"));
        assert!(text.contains("le=\"3600000.0\""), "{text}");
    }

    #[test]
    fn mirrored_copies_count_on_the_mirror_target_only_as_destination() {
        let m = MeshMetrics::default();
        let rec = send(&m, &world(true), &HttpRequest::new("web"), 2000);
        assert_eq!(rec.served, 2000);
        assert!((850..1150).contains(&rec.shadow), "shadow {}", rec.shadow);
        let shadow = count(
            &m,
            &labels("destination", "web-shadow", "unknown", "web-shadow", 200),
        );
        assert_eq!(shadow, rec.shadow);
        assert_eq!(
            count(
                &m,
                &labels("source", "web-shadow", "unknown", "web-shadow", 200)
            ),
            0
        );
        let text = encoded(&m);
        let shadow_count = text
            .lines()
            .find(|l| {
                l.starts_with("istio_request_duration_milliseconds_count{")
                    && l.contains("destination_workload=\"web-shadow\"")
            })
            .unwrap_or_else(|| panic!("{text}"));
        assert!(
            shadow_count.ends_with(&format!(" {}", rec.shadow)),
            "{shadow_count}"
        );
    }

    #[test]
    fn gateway_traffic_names_its_source_and_pods_not_ready_leave_503s_at_the_source() {
        let m = MeshMetrics::default();
        let mut snapshot = world(false);
        // The canary's only pod is not ready: it answers nothing, and the
        // canary's share is answered 503 by the proxy.
        for p in &mut snapshot.pods {
            if p["metadata"]["name"] == "web-canary-h1-a" {
                p["status"]["conditions"][0]["status"] = json!("False");
            }
        }
        let req = HttpRequest::new("web").through_gateway("istio-system/ingress");
        snapshot.virtual_services[0]["spec"]["gateways"] = json!(["istio-system/ingress"]);
        let rec = send(&m, &snapshot, &req, 1000);
        let mut l = labels("source", "unknown", "unknown", "web", 503);
        l.source_workload = "ingress".into();
        l.source_workload_namespace = "istio-system".into();
        l.response_flags = "UH".into();
        l.destination_workload_namespace = "unknown".into();
        let failed = count(&m, &l);
        assert!((150..350).contains(&failed), "503s {failed}");
        assert_eq!(rec.served + failed, 1000);
        assert_eq!(rec.errors, failed);
        let mut ok = labels("destination", "web", "v1", "web", 200);
        ok.source_workload = "ingress".into();
        ok.source_workload_namespace = "istio-system".into();
        assert_eq!(count(&m, &ok), rec.served);
        let mut canary = labels("destination", "web-canary", "v2", "web-canary", 500);
        canary.source_workload = "ingress".into();
        canary.source_workload_namespace = "istio-system".into();
        assert_eq!(count(&m, &canary), 0, "a pod that is not ready answered");
    }

    #[test]
    fn small_batches_with_fresh_seeds_keep_the_fractions() {
        // What a load stream does: a few requests per tick, a new seed each time.
        let m = MeshMetrics::default();
        let snapshot = world(true);
        let pods = PodIndex::new(snapshot.pods.iter(), |_| None);
        let source = Source::of(None, "shop");
        let mut rng = StdRng::seed_from_u64(9);
        let mut total = Recorded::default();
        for _ in 0..2000 {
            let opts = RouteOptions::new(5).seed(rng.random());
            let report = route(&snapshot, &HttpRequest::new("web"), &opts).unwrap();
            let r = m.record("shop", "web", &source, &report, &pods, &mut rng);
            total.served += r.served;
            total.shadow += r.shadow;
        }
        let canary = count(
            &m,
            &labels("destination", "web-canary", "v2", "web-canary", 500),
        );
        let share = canary as f64 / total.served as f64;
        let mirrored = total.shadow as f64 / total.served as f64;
        assert!((share - 0.25).abs() < 0.02, "canary share {share}");
        assert!((mirrored - 0.5).abs() < 0.02, "mirrored {mirrored}");
    }

    #[test]
    fn an_http_route_split_is_counted_per_backend_service() {
        let m = MeshMetrics::default();
        let mut snapshot = world(false);
        snapshot.virtual_services.clear();
        snapshot.add(json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "web", "namespace": "shop", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "web"}],
                "rules": [{"backendRefs": [
                    {"name": "web", "port": 80, "weight": 90},
                    {"name": "web-canary", "port": 80, "weight": 10}]}]}}));
        let rec = send(&m, &snapshot, &HttpRequest::new("web"), 2000);
        assert_eq!(rec.served, 2000);
        let canary = count(
            &m,
            &labels("destination", "web-canary", "v2", "web-canary", 500),
        );
        assert!((140..260).contains(&canary), "canary {canary}");
        assert_eq!(
            count(&m, &labels("destination", "web", "v1", "web", 200)),
            2000 - canary
        );
    }

    /// The value of the untyped Envoy counter series with exactly `labels`.
    fn envoy_count(m: &MeshMetrics, cluster: &str, code: u16) -> u64 {
        let prefix = format!(
            "envoy_cluster_upstream_rq{{envoy_cluster_name=\"{cluster}\",envoy_response_code=\"{code}\"}} "
        );
        encoded(m)
            .lines()
            .find_map(|line| line.strip_prefix(&prefix)?.parse().ok())
            .unwrap_or(0)
    }

    #[test]
    fn gateway_traffic_is_counted_on_envoy_clusters_named_after_each_service() {
        let m = MeshMetrics::default();
        let mut snapshot = world(true);
        snapshot.virtual_services[0]["spec"]["gateways"] = json!(["istio-system/ingress"]);
        let req = HttpRequest::new("web").through_gateway("istio-system/ingress");
        let rec = send(&m, &snapshot, &req, 2000);
        let stable = envoy_count(&m, "shop_web_80", 200);
        let canary = envoy_count(&m, "shop_web-canary_80", 500);
        assert_eq!(stable + canary, rec.served);
        assert_eq!(envoy_count(&m, "shop_web-canary_80", 200), 0);
        // The mirror target's cluster counts the shadow copies.
        assert_eq!(envoy_count(&m, "shop_web-shadow_80", 200), rec.shadow);
        let text = encoded(&m);
        assert!(
            text.contains("# TYPE envoy_cluster_upstream_rq unknown"),
            "{text}"
        );
        assert!(!text.contains("envoy_cluster_upstream_rq_total"), "{text}");
        let time_count = text
            .lines()
            .find(|l| {
                l.starts_with("envoy_cluster_upstream_rq_time_count{")
                    && l.contains("\"shop_web-canary_80\"")
            })
            .unwrap_or_else(|| panic!("{text}"));
        assert!(time_count.ends_with(&format!(" {canary}")), "{time_count}");

        // Inside the mesh there is no gateway Envoy: no cluster series.
        let inside = MeshMetrics::default();
        send(&inside, &world(false), &HttpRequest::new("web"), 100);
        assert!(
            !encoded(&inside).contains("envoy_cluster_upstream_rq{"),
            "{}",
            encoded(&inside)
        );
    }

    #[test]
    fn source_of_a_request() {
        assert_eq!(
            Source::of(Some("gw"), "shop"),
            Source {
                workload: "gw".into(),
                namespace: "shop".into()
            }
        );
        assert_eq!(Source::of(None, "shop").workload, "unknown");
    }
}
