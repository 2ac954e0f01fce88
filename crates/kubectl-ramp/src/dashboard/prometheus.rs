//! The analysis metrics over time from Prometheus, when it is reachable from
//! where the dashboard runs: the same queries the operator runs (built-in
//! templates and variables from `ramp-core`), as a range query over the last
//! 15 minutes. The page asks for it when it opens and after each new
//! measurement; measurements in the Rollout's status are charted either way.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use ramp_api::Rollout;
use ramp_core::analysis::{Variables, query_template};
use serde_json::{Value, json};

/// How far back the charts go.
pub const RANGE_SECONDS: i64 = 15 * 60;
/// At most this many points per series.
pub const MAX_POINTS: i64 = 240;
const TIMEOUT: Duration = Duration::from_secs(5);

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

/// The query of each metric of `ro`, rendered as the operator renders it;
/// `Err` says why a metric has none here.
pub fn queries(ro: &Rollout) -> Vec<(String, Result<String, String>)> {
    let Some(a) = crate::model::analysis_spec(ro) else {
        return Vec::new();
    };
    // The stable pods' hash needs the stable ReplicaSet, which the
    // dashboard does not read (queries using it are refused below).
    let vars = Variables::for_rollout(ro, a, String::new());
    a.metrics
        .iter()
        .map(|m| {
            let template = query_template(a.provider(), m);
            let q = match template {
                None => Err(format!("'{}' has no query", m.name)),
                // The stable pods' hash needs the stable ReplicaSet, which
                // the dashboard does not read.
                Some(t) if t.contains("stablePodTemplateHash") => Err(
                    "the query uses stablePodTemplateHash, which the dashboard does not know"
                        .to_string(),
                ),
                Some(t) => vars
                    .render(t)
                    .ok_or_else(|| format!("the query of '{}' does not render", m.name)),
            };
            (m.name.clone(), q)
        })
        .collect()
}

/// The Prometheus address of `ro`: its `analysis.prometheus.address`, else `default`.
pub fn address(ro: &Rollout, default: Option<&str>) -> Option<String> {
    crate::model::analysis_spec(ro)
        .and_then(|a| a.prometheus.as_ref())
        .map(|p| p.address.clone())
        .or_else(|| default.map(str::to_string))
        .filter(|a| !a.is_empty())
}

/// A small client for `query_range`.
#[derive(Clone)]
pub struct Prometheus {
    http: Client<HttpConnector, Empty<Bytes>>,
}

impl Default for Prometheus {
    fn default() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(TIMEOUT));
        Prometheus {
            http: Client::builder(TokioExecutor::new()).build(connector),
        }
    }
}

impl Prometheus {
    /// `[[t, v], ...]` of the first series of `promql` over `[start, end]`.
    pub async fn range(
        &self,
        address: &str,
        promql: &str,
        start: i64,
        end: i64,
        step: i64,
    ) -> Result<Vec<(i64, f64)>, String> {
        let base = address.trim().trim_end_matches('/');
        if !base.starts_with("http://") {
            return Err(format!(
                "Prometheus at '{address}': only http:// URLs are supported"
            ));
        }
        let url = format!(
            "{base}/api/v1/query_range?query={}&start={start}&end={end}&step={step}",
            encode(promql)
        );
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("Prometheus at '{address}': {e}"))?;
        let fetch = async {
            let resp = self
                .http
                .get(uri)
                .await
                .map_err(|e| format!("Prometheus at {base} is unreachable: {e}"))?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("Prometheus at {base}: {e}"))?
                .to_bytes();
            Ok::<_, String>((status, body))
        };
        let (status, body) = tokio::time::timeout(TIMEOUT, fetch)
            .await
            .map_err(|_| format!("Prometheus at {base} did not answer within {TIMEOUT:?}"))??;
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| format!("Prometheus at {base}: HTTP {status}, not the API's JSON: {e}"))?;
        if v["status"] != "success" {
            return Err(format!(
                "Prometheus at {base}: {}",
                v["error"].as_str().unwrap_or("the query failed")
            ));
        }
        let values = v["data"]["result"][0]["values"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        Ok(values
            .iter()
            .filter_map(|p| {
                let t = p[0].as_f64()?;
                let x: f64 = p[1].as_str()?.parse().ok()?;
                #[allow(clippy::cast_possible_truncation)]
                let t = t as i64;
                x.is_finite().then_some((t, x))
            })
            .collect())
    }

    /// Every metric of `ro` over the last [`RANGE_SECONDS`], for the page.
    pub async fn series(&self, ro: &Rollout, default: Option<&str>, now: i64) -> Value {
        let Some(addr) = address(ro, default) else {
            return json!({"address": null, "metrics": [],
                "error": "no Prometheus address (spec.strategy.canary.analysis.prometheus.address, or --prometheus-url)"});
        };
        let interval = crate::model::analysis_spec(ro)
            .and_then(|a| a.interval())
            .map_or(30, |d| i64::try_from(d.as_secs()).unwrap_or(30))
            .max(1);
        let step = interval.max(RANGE_SECONDS / MAX_POINTS);
        let start = now - RANGE_SECONDS;
        let mut metrics = Vec::new();
        for (name, q) in queries(ro) {
            let (query, points, error) = match q {
                Err(e) => (None, Vec::new(), Some(e)),
                Ok(q) => match self.range(&addr, &q, start, now, step).await {
                    Ok(p) => (Some(q), p, None),
                    Err(e) => (Some(q), Vec::new(), Some(e)),
                },
            };
            metrics.push(json!({
                "name": name,
                "query": query,
                "points": points.iter().map(|(t, v)| json!({"t": t, "v": v})).collect::<Vec<_>>(),
                "error": error,
            }));
        }
        json!({"address": addr, "start": start, "end": now, "step": step, "metrics": metrics})
    }
}
