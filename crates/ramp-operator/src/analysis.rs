//! Metric analysis, the IO half: a small typed client for the Prometheus
//! HTTP API (`GET /api/v1/query`, instant queries) and the measurement of a
//! [`ramp_core::analysis::MeasurementRequest`].
//!
//! The client is built on the `hyper`/`hyper-util` the operator already
//! uses (the `prometheus-http-query` crate would bring `reqwest` and a
//! second HTTP stack for one endpoint). Every request has a timeout.
//! `https://` addresses are verified with rustls against the system's roots
//! and, when given, the operator's `--prometheus-ca-file`.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use ramp_core::analysis::{Measurement, MeasurementRequest, Outcome};
use serde::Deserialize;

/// Time allowed for one query (connect, answer and body).
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// What an instant query returned.
#[derive(Clone, Debug, PartialEq)]
pub enum QueryValue {
    /// One number (a one-series vector or a scalar; may be NaN).
    Number(f64),
    /// An empty vector: no series matched.
    Empty,
}

/// Why a query has no answer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QueryError {
    /// Could not connect, or the connection broke.
    #[error("Prometheus at {address} is unreachable: {detail}")]
    Unreachable {
        /// The base URL.
        address: String,
        /// What failed.
        detail: String,
    },
    /// No answer within the client's timeout.
    #[error("Prometheus at {address} did not answer within {}s", after.as_secs_f64())]
    Timeout {
        /// The base URL.
        address: String,
        /// The timeout.
        after: Duration,
    },
    /// Prometheus refused the query (`status: error`, e.g. a parse error).
    #[error("Prometheus at {address} rejected the query ({kind}): {detail}")]
    Rejected {
        /// The base URL.
        address: String,
        /// `errorType`, e.g. `bad_data`.
        kind: String,
        /// `error`.
        detail: String,
    },
    /// An answer ramp cannot use: not JSON, a matrix, several series.
    #[error("Prometheus at {address}: {detail}")]
    Unusable {
        /// The base URL.
        address: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The address is not an `http://` or `https://` URL.
    #[error("invalid Prometheus address {address:?}: {detail}")]
    BadAddress {
        /// The address as given.
        address: String,
        /// What is wrong.
        detail: String,
    },
}

#[derive(Deserialize)]
struct ApiResponse {
    status: String,
    #[serde(default)]
    data: Option<ApiData>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct ApiData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct Sample {
    #[serde(default)]
    metric: serde_json::Map<String, serde_json::Value>,
    value: (f64, String),
}

/// A Prometheus HTTP API client.
#[derive(Clone)]
pub struct Prometheus {
    http: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    timeout: Duration,
}

impl Default for Prometheus {
    fn default() -> Self {
        Self::new(QUERY_TIMEOUT)
    }
}

/// Why the client's TLS trust could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The CA file could not be read.
    #[error("reading the Prometheus CA file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The CA file holds no usable PEM certificate.
    #[error("the Prometheus CA file {path} holds no PEM certificate{detail}")]
    NoCertificate {
        /// The file.
        path: String,
        /// What rustls said, if anything.
        detail: String,
    },
}

impl Prometheus {
    /// A client whose queries give up after `timeout`, trusting the system's
    /// root certificates for `https://` addresses.
    pub fn new(timeout: Duration) -> Self {
        Self::build(timeout, system_roots())
    }

    /// Like [`Prometheus::new`], also trusting the PEM certificates of
    /// `ca_pem` (for a Prometheus behind a private CA).
    pub fn with_ca_pem(timeout: Duration, ca_pem: &[u8]) -> Result<Self, String> {
        let mut roots = system_roots();
        let mut added = 0;
        for cert in rustls_pemfile::certs(&mut &*ca_pem) {
            let cert = cert.map_err(|e| e.to_string())?;
            roots.add(cert).map_err(|e| e.to_string())?;
            added += 1;
        }
        if added == 0 {
            return Err(String::new());
        }
        Ok(Self::build(timeout, roots))
    }

    /// [`Prometheus::with_ca_pem`] with the certificates of the file at `path`.
    pub fn with_ca_file(timeout: Duration, path: &str) -> Result<Self, TlsSetupError> {
        let pem = std::fs::read(path).map_err(|source| TlsSetupError::Read {
            path: path.to_string(),
            source,
        })?;
        Self::with_ca_pem(timeout, &pem).map_err(|e| TlsSetupError::NoCertificate {
            path: path.to_string(),
            detail: if e.is_empty() {
                String::new()
            } else {
                format!(" ({e})")
            },
        })
    }

    fn build(timeout: Duration, roots: rustls::RootCertStore) -> Self {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(timeout));
        http.enforce_http(false);
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map(|b| b.with_root_certificates(roots).with_no_client_auth());
        let connector = match tls {
            Ok(tls) => hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls)
                .https_or_http()
                .enable_http1()
                .wrap_connector(http),
            // The ring provider always supports the default versions; should
            // that ever change, https:// queries fail with the reason.
            Err(e) => {
                tracing::error!(error = %e, "TLS for Prometheus queries is unavailable");
                hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(
                        rustls::ClientConfig::builder()
                            .with_root_certificates(rustls::RootCertStore::empty())
                            .with_no_client_auth(),
                    )
                    .https_or_http()
                    .enable_http1()
                    .wrap_connector(HttpConnector::new())
            }
        };
        Prometheus {
            http: Client::builder(TokioExecutor::new()).build(connector),
            timeout,
        }
    }

    /// Run an instant query against the Prometheus at `address` (its base
    /// URL, e.g. `http://prometheus.monitoring:9090`).
    pub async fn query(&self, address: &str, promql: &str) -> Result<QueryValue, QueryError> {
        let base = address.trim().trim_end_matches('/');
        if let Err(detail) = ramp_api::analysis::check_address(base) {
            return Err(QueryError::BadAddress {
                address: address.to_string(),
                detail,
            });
        }
        let url = format!("{base}/api/v1/query?query={}", encode(promql));
        let uri: http::Uri =
            url.parse()
                .map_err(|e: http::uri::InvalidUri| QueryError::BadAddress {
                    address: address.to_string(),
                    detail: e.to_string(),
                })?;
        let addr = base.to_string();
        let fetch = async {
            let resp = self
                .http
                .get(uri)
                .await
                .map_err(|e| QueryError::Unreachable {
                    address: addr.clone(),
                    detail: error_chain(&e),
                })?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| QueryError::Unreachable {
                    address: addr.clone(),
                    detail: e.to_string(),
                })?
                .to_bytes();
            Ok::<_, QueryError>((status, body))
        };
        let (status, body) = tokio::time::timeout(self.timeout, fetch)
            .await
            .map_err(|_| QueryError::Timeout {
                address: addr.clone(),
                after: self.timeout,
            })??;
        let parsed: ApiResponse =
            serde_json::from_slice(&body).map_err(|e| QueryError::Unusable {
                address: addr.clone(),
                detail: format!(
                    "HTTP {status} with a body that is not the query API's JSON ({e}): {}",
                    String::from_utf8_lossy(&body[..body.len().min(200)])
                ),
            })?;
        if parsed.status != "success" {
            return Err(QueryError::Rejected {
                address: addr,
                kind: parsed.error_type.unwrap_or_else(|| "error".into()),
                detail: parsed.error.unwrap_or_else(|| format!("HTTP {status}")),
            });
        }
        let data = parsed.data.ok_or_else(|| QueryError::Unusable {
            address: addr.clone(),
            detail: "a success without data".into(),
        })?;
        let unusable = |detail: String| QueryError::Unusable {
            address: addr.clone(),
            detail,
        };
        match data.result_type.as_str() {
            "scalar" => {
                let (_, v): (f64, String) = serde_json::from_value(data.result)
                    .map_err(|e| unusable(format!("a scalar that does not parse: {e}")))?;
                Ok(QueryValue::Number(number(&v).map_err(unusable)?))
            }
            "vector" => {
                let samples: Vec<Sample> = serde_json::from_value(data.result)
                    .map_err(|e| unusable(format!("a vector that does not parse: {e}")))?;
                match samples.as_slice() {
                    [] => Ok(QueryValue::Empty),
                    [one] => Ok(QueryValue::Number(number(&one.value.1).map_err(unusable)?)),
                    many => Err(unusable(format!(
                        "the query returned {} series (first {}); it must return one number: aggregate it, e.g. with sum(...)",
                        many.len(),
                        serde_json::Value::Object(many[0].metric.clone())
                    ))),
                }
            }
            other => Err(unusable(format!(
                "the query returned a {other}; it must return one number (an instant vector of one series, or a scalar)"
            ))),
        }
    }

    /// Measure every metric of `req` (queries run concurrently), at `now`.
    /// `default_address` is the operator's `--prometheus-url`.
    pub async fn measure(
        &self,
        req: &MeasurementRequest,
        default_address: Option<&str>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Vec<Measurement> {
        let all = |outcome: Outcome| {
            req.metrics
                .iter()
                .map(|m| Measurement {
                    metric: m.name.clone(),
                    at: now,
                    outcome: outcome.clone(),
                })
                .collect::<Vec<_>>()
        };
        let Some(address) = req.address.as_deref().or(default_address) else {
            return all(Outcome::Error(
                "no Prometheus address: set spec.strategy.canary.analysis.prometheus.address, or start the operator with --prometheus-url".into(),
            ));
        };
        let samples = match self.query(address, &req.samples_query).await {
            Ok(QueryValue::Number(n)) if n.is_finite() => n,
            Ok(_) => 0.0,
            Err(e) => return all(Outcome::Error(e.to_string())),
        };
        let queries = req.metrics.iter().map(|m| self.query(address, &m.query));
        let results = futures::future::join_all(queries).await;
        req.metrics
            .iter()
            .zip(results)
            .map(|(m, r)| Measurement {
                metric: m.name.clone(),
                at: now,
                outcome: match r {
                    Ok(QueryValue::Number(value)) => Outcome::Value {
                        value,
                        samples: Some(samples),
                    },
                    Ok(QueryValue::Empty) => Outcome::Empty {
                        samples: Some(samples),
                    },
                    Err(e) => Outcome::Error(e.to_string()),
                },
            })
            .collect()
    }
}

/// The system's trusted root certificates (none when they cannot be read:
/// `https://` queries then fail, naming the certificate problem).
fn system_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::debug!(error = %e, "a system root certificate could not be loaded");
    }
    roots.add_parsable_certificates(found.certs);
    roots
}

/// Measurements for the reconciler: the client and the operator's default address.
#[derive(Clone, Default)]
pub struct Analyzer {
    /// The Prometheus client.
    pub prometheus: Prometheus,
    /// `--prometheus-url`: used when a Rollout names no address.
    pub default_url: Option<String>,
}

impl Analyzer {
    /// An analyzer querying `default_url` unless a Rollout names its own Prometheus.
    pub fn new(default_url: Option<String>) -> Self {
        Analyzer {
            prometheus: Prometheus::default(),
            default_url,
        }
    }

    /// An analyzer with its own client (e.g. one trusting a private CA).
    pub fn with_client(prometheus: Prometheus, default_url: Option<String>) -> Self {
        Analyzer {
            prometheus,
            default_url,
        }
    }

    /// Take the measurements the planner asks for (none when none is due).
    pub async fn observe(&self, obs: &mut ramp_core::Observed) {
        if let Some(req) = ramp_core::analysis::measurement_due(obs) {
            obs.measurements = self
                .prometheus
                .measure(&req, self.default_url.as_deref(), obs.now)
                .await;
        }
    }
}

/// Count the measurements the plan judged and export the values.
pub fn record_metrics(
    metrics: &crate::metrics::Metrics,
    ro: &ramp_api::Rollout,
    obs: &ramp_core::Observed,
    plan: &ramp_core::Plan,
) {
    use kube::ResourceExt;
    let Some(cs) = plan.status.canary_status.as_ref() else {
        return;
    };
    for m in &obs.measurements {
        let Some(r) = cs.analysis.iter().find(|r| r.name == m.metric) else {
            continue;
        };
        let Some(phase) = r.phase else { continue };
        metrics
            .analysis_measurements
            .get_or_create(&crate::metrics::MeasurementLabels {
                metric: m.metric.clone(),
                phase: phase.to_string(),
            })
            .inc();
        let labels = crate::metrics::AnalysisValueLabels {
            namespace: ro.namespace().unwrap_or_default(),
            name: ro.name_any(),
            metric: m.metric.clone(),
        };
        metrics.set_analysis_value(&labels, r.last_value);
    }
}

fn number(s: &str) -> Result<f64, String> {
    match s {
        "NaN" => Ok(f64::NAN),
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => s
            .parse()
            .map_err(|_| format!("the value {s:?} is not a number")),
    }
}

/// The error and its sources, e.g. "client error (Connect): tcp connect
/// error: Connection refused (os error 111)".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

/// Percent-encode a query parameter value (RFC 3986 unreserved kept).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            encode("sum(rate(x{a=\"b c\"}[1m]))"),
            "sum%28rate%28x%7Ba%3D%22b%20c%22%7D%5B1m%5D%29%29"
        );
    }

    #[test]
    fn prometheus_numbers_parse() {
        assert_eq!(number("1.5"), Ok(1.5));
        assert!(number("NaN").unwrap().is_nan());
        assert_eq!(number("+Inf"), Ok(f64::INFINITY));
        assert!(number("x").is_err());
    }
}
