//! Metric analysis of a canary: the spec (`spec.strategy.canary.analysis`),
//! the status it produces (`status.canaryStatus.analysis`), duration strings,
//! query templates and their validation.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::validation::FieldError;

/// Judge the canary on live metrics from Prometheus while each step is paused.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutAnalysis {
    /// The Prometheus to query; without it, the operator's `--prometheus-url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusProvider>,
    /// Time between measurements, and the window each query covers: a
    /// duration such as `30s`, `2s`, `1m` or `1m30s` (at least 1s). Default `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Whose metrics the built-in queries read: `istio` (default; Istio's
    /// `istio_requests_total` and `istio_request_duration_milliseconds`) or
    /// `envoy` (Envoy's cluster statistics `envoy_cluster_upstream_rq` and
    /// `envoy_cluster_upstream_rq_time`, as exported by Envoy-based Gateway API
    /// implementations such as Contour). Queries you write yourself are not
    /// affected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<MetricsProvider>,
    /// The metrics; each is measured every `interval` while a step is paused.
    #[serde(default)]
    pub metrics: Vec<AnalysisMetric>,
}

/// The telemetry the built-in metrics are computed from.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum MetricsProvider {
    /// Istio's standard metrics, reported by the canary pods' sidecars
    /// (`reporter="destination"`), selected by `destination_workload`.
    #[default]
    Istio,
    /// Envoy's upstream cluster statistics of the gateway, selected by a
    /// cluster name holding the namespace and the canary Service
    /// (`<namespace>_<service>_<port>` or `<namespace>/<service>/<port>`).
    Envoy,
}

impl RolloutAnalysis {
    /// Default interval.
    pub const DEFAULT_INTERVAL: &'static str = "30s";

    /// The interval string, defaulted.
    pub fn interval_text(&self) -> &str {
        self.interval.as_deref().unwrap_or(Self::DEFAULT_INTERVAL)
    }

    /// The provider of the built-in metrics, defaulted.
    pub fn provider(&self) -> MetricsProvider {
        self.provider.unwrap_or_default()
    }

    /// The interval, defaulted; `None` when it does not parse.
    pub fn interval(&self) -> Option<std::time::Duration> {
        parse_duration(self.interval_text())
    }
}

/// Where Prometheus answers.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusProvider {
    /// Base URL of the Prometheus HTTP API, e.g. `http://prometheus.monitoring:9090`
    /// or `https://prometheus.example.com` (verified against the system's roots
    /// and the operator's `--prometheus-ca-file`).
    pub address: String,
}

/// One metric the canary is judged on.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisMetric {
    /// The metric's name. Without `query` it must be a built-in:
    /// `request-success-rate` (percent of non-5xx answers of the canary) or
    /// `request-duration` (p99 latency of the canary, milliseconds).
    pub name: String,
    /// Your own PromQL query returning one number. Variables, written
    /// `{{ name }}`: `namespace`, `service`, `canaryService`,
    /// `stableWorkload`, `canaryWorkload`, `canaryPodTemplateHash`,
    /// `stablePodTemplateHash`, `interval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// The values that pass: `min` and/or `max`, both inclusive.
    #[serde(default)]
    pub threshold_range: ThresholdRange,
    /// Failed measurements in a row before the rollout is aborted. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_limit: Option<i32>,
    /// Requests the canary must have served in the window for a measurement
    /// to count; fewer is NoData. Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_samples: Option<i32>,
}

impl AnalysisMetric {
    /// Default `failureLimit`.
    pub const DEFAULT_FAILURE_LIMIT: i32 = 1;
    /// Default `minSamples`.
    pub const DEFAULT_MIN_SAMPLES: i32 = 10;

    /// `failureLimit`, defaulted.
    pub fn failure_limit(&self) -> i32 {
        self.failure_limit.unwrap_or(Self::DEFAULT_FAILURE_LIMIT)
    }

    /// `minSamples`, defaulted.
    pub fn min_samples(&self) -> i32 {
        self.min_samples.unwrap_or(Self::DEFAULT_MIN_SAMPLES)
    }
}

/// Built-in metric: percent of the canary's answers that are not 5xx.
pub const REQUEST_SUCCESS_RATE: &str = "request-success-rate";
/// Built-in metric: p99 latency of the canary's answers, milliseconds.
pub const REQUEST_DURATION: &str = "request-duration";
/// Every built-in metric name.
pub const BUILTIN_METRICS: &[&str] = &[REQUEST_SUCCESS_RATE, REQUEST_DURATION];

/// Inclusive bounds of the passing values.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ThresholdRange {
    /// Lowest passing value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Highest passing value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

impl ThresholdRange {
    /// Whether `v` passes.
    pub fn contains(&self, v: f64) -> bool {
        self.min.is_none_or(|m| v >= m) && self.max.is_none_or(|m| v <= m)
    }
}

impl std::fmt::Display for ThresholdRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.min, self.max) {
            (Some(a), Some(b)) => write!(f, "[{a}, {b}]"),
            (Some(a), None) => write!(f, ">= {a}"),
            (None, Some(b)) => write!(f, "<= {b}"),
            (None, None) => f.write_str("any value"),
        }
    }
}

/// How one measurement ended.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum MeasurementPhase {
    /// The value is inside the range.
    Passed,
    /// The value is outside the range.
    Failed,
    /// Too few requests in the window (`minSamples`), an empty result or NaN.
    NoData,
    /// Prometheus could not answer: unreachable, timeout, bad query.
    Error,
}

impl std::fmt::Display for MeasurementPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MeasurementPhase::Passed => "Passed",
            MeasurementPhase::Failed => "Failed",
            MeasurementPhase::NoData => "NoData",
            MeasurementPhase::Error => "Error",
        })
    }
}

/// Measurements of one metric, per phase.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeasurementCounts {
    /// Passed measurements.
    #[serde(default)]
    pub passed: i32,
    /// Failed measurements.
    #[serde(default)]
    pub failed: i32,
    /// NoData measurements.
    #[serde(default)]
    pub no_data: i32,
    /// Error measurements.
    #[serde(default)]
    pub error: i32,
}

impl MeasurementCounts {
    /// Count one measurement.
    pub fn add(&mut self, phase: MeasurementPhase) {
        let c = match phase {
            MeasurementPhase::Passed => &mut self.passed,
            MeasurementPhase::Failed => &mut self.failed,
            MeasurementPhase::NoData => &mut self.no_data,
            MeasurementPhase::Error => &mut self.error,
        };
        *c = c.saturating_add(1);
    }

    /// Measurements of every phase.
    pub fn total(&self) -> i32 {
        self.passed
            .saturating_add(self.failed)
            .saturating_add(self.no_data)
            .saturating_add(self.error)
    }
}

/// The results of one metric in the current step.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricAnalysisStatus {
    /// The metric's name (`spec.strategy.canary.analysis.metrics[].name`).
    pub name: String,
    /// The step (1-based) these results belong to.
    pub step_index: i32,
    /// How the last measurement ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<MeasurementPhase>,
    /// The value of the last measurement that returned one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_value: Option<f64>,
    /// Requests the canary served in the last measurement's window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_samples: Option<f64>,
    /// The passing range the value was compared with.
    #[serde(default)]
    pub threshold_range: ThresholdRange,
    /// Measurements in this step.
    #[serde(default)]
    pub measurements: i32,
    /// Passed measurements in this step.
    #[serde(default)]
    pub passed_in_step: i32,
    /// Failed measurements in a row (the rollout aborts at `failureLimit`).
    #[serde(default)]
    pub consecutive_failures: i32,
    /// NoData measurements in a row.
    #[serde(default)]
    pub consecutive_no_data: i32,
    /// Error measurements in a row.
    #[serde(default)]
    pub consecutive_errors: i32,
    /// Measurements of this rollout so far, per phase (every step).
    #[serde(default)]
    pub total: MeasurementCounts,
    /// When the last measurement was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_measurement_time: Option<Time>,
    /// Why the last NoData or Error measurement had no value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Parse a duration such as `30s`, `2s`, `1m`, `1m30s`, `500ms`, `1h`.
/// Units: `ms`, `s`, `m`, `h`; each number is a whole number.
pub fn parse_duration(s: &str) -> Option<std::time::Duration> {
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = std::time::Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (std::time::Duration::from_millis(1), 2)
        } else if rest.starts_with('s') {
            (std::time::Duration::from_secs(1), 1)
        } else if rest.starts_with('m') {
            (std::time::Duration::from_secs(60), 1)
        } else if rest.starts_with('h') {
            (std::time::Duration::from_secs(3600), 1)
        } else {
            return None;
        };
        rest = &rest[len..];
        total = total.checked_add(unit.checked_mul(u32::try_from(n).ok()?)?)?;
    }
    Some(total)
}

/// Variables a query may use.
pub const TEMPLATE_VARIABLES: &[&str] = &[
    "namespace",
    "service",
    "canaryService",
    "stableWorkload",
    "canaryWorkload",
    "canaryPodTemplateHash",
    "stablePodTemplateHash",
    "interval",
];

/// A piece of a parsed query template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplatePart<'a> {
    /// Text copied as it is.
    Text(&'a str),
    /// A variable, by name.
    Var(&'a str),
}

/// Parse a query template: text with `{{ variable }}` (a leading `.` is
/// allowed, as in Go templates). Errors name the problem and its position.
pub fn parse_template(query: &str) -> Result<Vec<TemplatePart<'_>>, String> {
    let mut parts = Vec::new();
    let mut rest = query;
    let mut offset = 0;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            parts.push(TemplatePart::Text(&rest[..open]));
        }
        let inner_start = open + 2;
        let Some(close) = rest[inner_start..].find("}}") else {
            return Err(format!(
                "unbalanced \"{{{{\" at character {}: no closing \"}}}}\"",
                offset + open + 1
            ));
        };
        let inner = &rest[inner_start..inner_start + close];
        if inner.contains("{{") {
            return Err(format!(
                "unbalanced \"{{{{\" at character {}: no closing \"}}}}\" before the next \"{{{{\"",
                offset + open + 1
            ));
        }
        let name = inner.trim();
        let name = name.strip_prefix('.').unwrap_or(name);
        if !TEMPLATE_VARIABLES.contains(&name) {
            return Err(format!(
                "unknown variable {name:?} at character {}: known are {}",
                offset + open + 1,
                TEMPLATE_VARIABLES.join(", ")
            ));
        }
        parts.push(TemplatePart::Var(name));
        let consumed = inner_start + close + 2;
        offset += consumed;
        rest = &rest[consumed..];
    }
    if !rest.is_empty() {
        parts.push(TemplatePart::Text(rest));
    }
    Ok(parts)
}

/// Render a template with `value(variable)`; a template that does not
/// parse is an error (the same text as [`parse_template`]).
pub fn render_template(query: &str, value: impl Fn(&str) -> String) -> Result<String, String> {
    let parts = parse_template(query)?;
    let mut out = String::with_capacity(query.len());
    for p in parts {
        match p {
            TemplatePart::Text(t) => out.push_str(t),
            TemplatePart::Var(v) => out.push_str(&value(v)),
        }
    }
    Ok(out)
}

/// Checks a Prometheus base URL: `http://` or `https://`, a host, no query
/// or fragment. The error says what is wrong.
pub fn check_address(addr: &str) -> Result<(), String> {
    let rest = addr
        .strip_prefix("http://")
        .or_else(|| addr.strip_prefix("https://"))
        .ok_or("must be an http:// or https:// URL, e.g. http://prometheus.monitoring:9090")?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err("has no host, e.g. http://prometheus.monitoring:9090".into());
    }
    if rest.contains(['?', '#']) || rest.contains(char::is_whitespace) {
        return Err("must be a base URL without spaces, query or fragment".into());
    }
    Ok(())
}

/// Validate `spec.strategy.canary.analysis` (at `path`).
pub fn validate_analysis(errs: &mut Vec<FieldError>, path: &str, a: &RolloutAnalysis) {
    if let Some(p) = &a.prometheus {
        let addr = p.address.trim();
        if addr.is_empty() {
            errs.push(FieldError::new(
                format!("{path}.prometheus.address"),
                "must not be empty: the Prometheus base URL, e.g. http://prometheus.monitoring:9090 (or remove `prometheus` to use the operator's --prometheus-url)",
            ));
        } else if let Err(why) = check_address(addr) {
            errs.push(FieldError::new(
                format!("{path}.prometheus.address"),
                format!("invalid address {addr:?}: {why}"),
            ));
        }
    }
    match a.interval() {
        None => errs.push(FieldError::new(
            format!("{path}.interval"),
            format!(
                "invalid duration {:?}: write whole numbers with units ms, s, m, h, e.g. 30s, 1m, 1m30s",
                a.interval_text()
            ),
        )),
        Some(d) if d < std::time::Duration::from_secs(1) => errs.push(FieldError::new(
            format!("{path}.interval"),
            format!(
                "invalid duration {:?}: must be at least 1s",
                a.interval_text()
            ),
        )),
        Some(_) => {}
    }
    if a.metrics.is_empty() {
        errs.push(FieldError::new(
            format!("{path}.metrics"),
            format!(
                "at least one metric is required, e.g. {{name: {REQUEST_SUCCESS_RATE}, thresholdRange: {{min: 99}}}}"
            ),
        ));
    }
    for (i, m) in a.metrics.iter().enumerate() {
        let p = format!("{path}.metrics[{i}]");
        if m.name.trim().is_empty() {
            errs.push(FieldError::new(format!("{p}.name"), "must not be empty"));
        } else if a.metrics[..i].iter().any(|o| o.name == m.name) {
            errs.push(FieldError::new(
                format!("{p}.name"),
                format!("metric {:?} is listed twice", m.name),
            ));
        }
        match &m.query {
            None if !BUILTIN_METRICS.contains(&m.name.as_str()) => errs.push(FieldError::new(
                format!("{p}.name"),
                format!(
                    "unknown built-in metric {:?}: built in are {}; for another metric give its `query`",
                    m.name,
                    BUILTIN_METRICS.join(", ")
                ),
            )),
            None => {}
            Some(q) if q.trim().is_empty() => errs.push(FieldError::new(
                format!("{p}.query"),
                "must not be empty: a PromQL query returning one number (or remove it to use a built-in metric)",
            )),
            Some(q) => {
                if let Err(e) = parse_template(q) {
                    errs.push(FieldError::new(
                        format!("{p}.query"),
                        format!("invalid template: {e}"),
                    ));
                }
            }
        }
        let r = &m.threshold_range;
        if r.min.is_none() && r.max.is_none() {
            errs.push(FieldError::new(
                format!("{p}.thresholdRange"),
                "needs min, max or both: the values that pass",
            ));
        }
        if let (Some(lo), Some(hi)) = (r.min, r.max)
            && lo > hi
        {
            errs.push(FieldError::new(
                format!("{p}.thresholdRange"),
                format!("min {lo} is greater than max {hi}: no value could pass"),
            ));
        }
        if [r.min, r.max].iter().flatten().any(|v| !v.is_finite()) {
            errs.push(FieldError::new(
                format!("{p}.thresholdRange"),
                "min and max must be finite numbers",
            ));
        }
        if let Some(f) = m.failure_limit
            && f < 1
        {
            errs.push(FieldError::new(
                format!("{p}.failureLimit"),
                format!("invalid value {f}: must be at least 1 (failed measurements in a row before the abort)"),
            ));
        }
        if let Some(s) = m.min_samples
            && s < 0
        {
            errs.push(FieldError::new(
                format!("{p}.minSamples"),
                format!("invalid value {s}: must be >= 0 (requests the canary must have served in the window)"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        for bad in ["", "30", "s", "1x", "1.5s", "-1s", "1m 30s"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn templates_render_known_variables_and_reject_the_rest() {
        let q = r#"sum(rate(x{w="{{ canaryWorkload }}",ns="{{.namespace}}"}[{{interval}}]))"#;
        let out = render_template(q, |v| format!("<{v}>")).unwrap();
        assert_eq!(
            out,
            r#"sum(rate(x{w="<canaryWorkload>",ns="<namespace>"}[<interval>]))"#
        );
        let e = parse_template("x{a=\"{{ canaryWorklod }}\"}").unwrap_err();
        assert!(e.contains("unknown variable \"canaryWorklod\""), "{e}");
        let e = parse_template("x{a=\"{{ canaryWorkload \"}").unwrap_err();
        assert!(e.contains("unbalanced"), "{e}");
        let e = parse_template("{{ namespace {{ service }}").unwrap_err();
        assert!(e.contains("unbalanced"), "{e}");
        assert_eq!(
            parse_template("up{job=\"a\"}").unwrap(),
            vec![TemplatePart::Text("up{job=\"a\"}")]
        );
    }

    #[test]
    fn ranges_are_inclusive() {
        let r = ThresholdRange {
            min: Some(99.0),
            max: None,
        };
        assert!(r.contains(99.0));
        assert!(!r.contains(98.9));
        let r = ThresholdRange {
            min: None,
            max: Some(500.0),
        };
        assert!(r.contains(500.0));
        assert!(!r.contains(500.1));
        assert_eq!(r.to_string(), "<= 500");
    }
}
