//! Metric analysis, the pure half: when to measure, what to query, and what
//! a step does with the results.
//!
//! The operator asks [`measurement_due`] whether the observed Rollout needs
//! a measurement now. If so it runs the [`MeasurementRequest`]'s queries
//! against Prometheus and puts one [`Measurement`] per metric (a raw
//! [`Outcome`]: a value and the canary's request count, no data, or an
//! error) into [`crate::Observed::measurements`]; [`crate::plan`] then judges
//! each ([`judge`]), folds it into `status.canaryStatus.analysis` and decides:
//!
//! - **abort** (reason `AnalysisFailed`, as `kubectl ramp abort` does) when a
//!   metric failed `failureLimit` times in a row;
//! - **advance** a timed step only when its pause is over and every metric's
//!   last measurement in the step passed;
//! - otherwise **hold**, naming what is missing (NoData and Error never
//!   promote and never abort).
//!
//! Measurements run while a step is `StepPaused` (its traffic has moved and
//! the grace period is over), the first one `interval` after the pause
//! began, then every `interval`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use ramp_api::analysis::{
    AnalysisMetric, MeasurementPhase, MetricAnalysisStatus, MetricsProvider, REQUEST_DURATION,
    REQUEST_SUCCESS_RATE, RolloutAnalysis, render_template,
};
use ramp_api::names::{canary_service_name, canary_workload_name};
use ramp_api::{CanaryStatus, FinalisingStep, Rollout, RolloutPhase, StepState};

use crate::objects;
use crate::observed::Observed;
use crate::time::{from_k8s_time, to_k8s_time};

/// The shortest window a query covers: a rate needs at least two scrapes
/// inside its window, so an interval shorter than this still queries this much.
pub const MIN_WINDOW: Duration = Duration::from_secs(10);

/// What one metric's query returned.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// One number, and the requests the canary served in the window (when counted).
    Value {
        /// The query's value (may be NaN: then NoData).
        value: f64,
        /// Requests the canary served in the window, from the request-count query.
        samples: Option<f64>,
    },
    /// The query returned nothing (an empty vector), and the requests the
    /// canary served in the window (when counted).
    Empty {
        /// Requests the canary served in the window.
        samples: Option<f64>,
    },
    /// Prometheus did not answer: unreachable, timeout, bad query.
    Error(String),
}

/// One metric measured once.
#[derive(Clone, Debug, PartialEq)]
pub struct Measurement {
    /// The metric's name, as in the spec.
    pub metric: String,
    /// When it was measured.
    pub at: DateTime<Utc>,
    /// What Prometheus returned.
    pub outcome: Outcome,
}

/// The queries to run now.
#[derive(Clone, Debug, PartialEq)]
pub struct MeasurementRequest {
    /// `spec.strategy.canary.analysis.prometheus.address`; `None`: the operator's default.
    pub address: Option<String>,
    /// The window every query covers, as a PromQL duration (e.g. `10s`).
    pub window: String,
    /// Requests the canary served in the window (one number), for `minSamples`.
    pub samples_query: String,
    /// One query per metric, in spec order.
    pub metrics: Vec<MetricQuery>,
}

/// One metric's query, rendered.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricQuery {
    /// The metric's name.
    pub name: String,
    /// PromQL, variables substituted.
    pub query: String,
}

/// Built-in query templates, by provider and metric name.
///
/// - Istio: the canary pods' sidecars report (`reporter="destination"`),
///   selected by `destination_workload`, the canary Deployment.
/// - Envoy: the gateway's upstream cluster statistics, selected by a cluster
///   name holding the namespace and the canary Service, as Contour names its
///   clusters (`<namespace>_<service>_<port>`) or with `/` separators.
pub fn builtin_query(provider: MetricsProvider, name: &str) -> Option<&'static str> {
    match (provider, name) {
        (MetricsProvider::Istio, REQUEST_SUCCESS_RATE) => Some(concat!(
            "100 * (sum(rate(istio_requests_total{reporter=\"destination\",",
            "destination_workload_namespace=\"{{ namespace }}\",",
            "destination_workload=\"{{ canaryWorkload }}\",response_code!~\"5..\"}[{{ interval }}]))",
            " or vector(0))",
            " / sum(rate(istio_requests_total{reporter=\"destination\",",
            "destination_workload_namespace=\"{{ namespace }}\",",
            "destination_workload=\"{{ canaryWorkload }}\"}[{{ interval }}]))"
        )),
        (MetricsProvider::Istio, REQUEST_DURATION) => Some(concat!(
            "histogram_quantile(0.99, sum by (le) (rate(istio_request_duration_milliseconds_bucket{",
            "reporter=\"destination\",destination_workload_namespace=\"{{ namespace }}\",",
            "destination_workload=\"{{ canaryWorkload }}\"}[{{ interval }}])))"
        )),
        (MetricsProvider::Envoy, REQUEST_SUCCESS_RATE) => Some(concat!(
            "100 * (sum(rate(envoy_cluster_upstream_rq{",
            "envoy_cluster_name=~\"{{ namespace }}[_/]{{ canaryService }}[_/].*\",",
            "envoy_response_code!~\"5..\"}[{{ interval }}]))",
            " or vector(0))",
            " / sum(rate(envoy_cluster_upstream_rq{",
            "envoy_cluster_name=~\"{{ namespace }}[_/]{{ canaryService }}[_/].*\"}[{{ interval }}]))"
        )),
        (MetricsProvider::Envoy, REQUEST_DURATION) => Some(concat!(
            "histogram_quantile(0.99, sum by (le) (rate(envoy_cluster_upstream_rq_time_bucket{",
            "envoy_cluster_name=~\"{{ namespace }}[_/]{{ canaryService }}[_/].*\"}[{{ interval }}])))"
        )),
        _ => None,
    }
}

/// The request-count query behind `minSamples`, by provider.
pub fn samples_query(provider: MetricsProvider) -> &'static str {
    match provider {
        MetricsProvider::Istio => concat!(
            "sum(increase(istio_requests_total{reporter=\"destination\",",
            "destination_workload_namespace=\"{{ namespace }}\",",
            "destination_workload=\"{{ canaryWorkload }}\"}[{{ interval }}]))"
        ),
        MetricsProvider::Envoy => concat!(
            "sum(increase(envoy_cluster_upstream_rq{",
            "envoy_cluster_name=~\"{{ namespace }}[_/]{{ canaryService }}[_/].*\"}[{{ interval }}]))"
        ),
    }
}

/// The analysis spec of a Rollout, if it has one.
pub fn analysis_of(ro: &Rollout) -> Option<&RolloutAnalysis> {
    ro.spec
        .strategy
        .canary
        .as_ref()
        .and_then(|c| c.analysis.as_ref())
        .filter(|a| !a.metrics.is_empty())
}

/// The window queries cover for `analysis`, as a PromQL duration.
pub fn window(analysis: &RolloutAnalysis) -> String {
    let interval = analysis.interval().unwrap_or(MIN_WINDOW);
    let w = interval.max(MIN_WINDOW);
    if w.subsec_millis() == 0 {
        format!("{}s", w.as_secs())
    } else {
        format!("{}ms", w.as_millis())
    }
}

/// The interval between measurements (defaulted; at least 1 s).
fn interval_of(analysis: &RolloutAnalysis) -> Duration {
    analysis
        .interval()
        .unwrap_or(Duration::from_secs(30))
        .max(Duration::from_secs(1))
}

/// When the current step's pause began, if the Rollout is in a step that
/// measures: phase Progressing, `StepPaused`, not finishing, nothing
/// requested, not held by `spec.strategy.paused`.
fn measuring_since(ro: &Rollout) -> Option<(&CanaryStatus, DateTime<Utc>)> {
    if ro.metadata.deletion_timestamp.is_some() || ro.spec.disabled || ro.spec.strategy.paused {
        return None;
    }
    let status = ro.status.as_ref()?;
    if status.phase != Some(RolloutPhase::Progressing) {
        return None;
    }
    let cs = status.canary_status.as_ref()?;
    if cs.current_step_state != StepState::StepPaused
        || cs
            .finalising_step
            .is_some_and(|f| f != FinalisingStep::Done)
        || cs.requested_action.is_some()
    {
        return None;
    }
    Some((cs, from_k8s_time(cs.last_update_time.as_ref()?)))
}

/// Whether a status record belongs to the step paused since `since`.
fn of_step(r: &MetricAnalysisStatus, step: i32, since: DateTime<Utc>) -> bool {
    r.step_index == step
        && r.last_measurement_time
            .as_ref()
            .is_none_or(|t| from_k8s_time(t) >= since)
}

/// The next measurement's time for the step paused since `since`.
fn next_due(
    analysis: &RolloutAnalysis,
    records: &[MetricAnalysisStatus],
    step: i32,
    since: DateTime<Utc>,
) -> DateTime<Utc> {
    let last = records
        .iter()
        .filter(|r| of_step(r, step, since))
        .filter_map(|r| r.last_measurement_time.as_ref().map(from_k8s_time))
        .max()
        .unwrap_or(since);
    last + chrono::Duration::from_std(interval_of(analysis)).unwrap_or_default()
}

/// The queries to run now, or `None` when no measurement is due.
pub fn measurement_due(obs: &Observed) -> Option<MeasurementRequest> {
    let ro = &obs.rollout;
    let analysis = analysis_of(ro)?;
    if ramp_api::validate(ro).is_err() {
        return None;
    }
    let (cs, since) = measuring_since(ro)?;
    if obs.now < next_due(analysis, &cs.analysis, cs.current_step_index, since) {
        return None;
    }
    let vars = Variables::of(obs, analysis);
    let metrics = analysis
        .metrics
        .iter()
        .filter_map(|m| {
            let template = query_template(analysis.provider(), m)?;
            Some(MetricQuery {
                name: m.name.clone(),
                query: vars.render(template)?,
            })
        })
        .collect();
    Some(MeasurementRequest {
        address: analysis.prometheus.as_ref().map(|p| p.address.clone()),
        window: window(analysis),
        samples_query: vars.render(samples_query(analysis.provider()))?,
        metrics,
    })
}

/// A metric's query template: its own, else the provider's built-in one.
pub fn query_template(provider: MetricsProvider, m: &AnalysisMetric) -> Option<&str> {
    match &m.query {
        Some(q) => Some(q.as_str()),
        None => builtin_query(provider, &m.name),
    }
}

/// The template variables of a Rollout.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Variables {
    /// The Rollout's namespace.
    pub namespace: String,
    /// The stable Service.
    pub service: String,
    /// The canary Service.
    pub canary_service: String,
    /// The stable Deployment.
    pub stable_workload: String,
    /// The canary Deployment.
    pub canary_workload: String,
    /// `pod-template-hash` of the canary pods.
    pub canary_pod_template_hash: String,
    /// `pod-template-hash` of the stable pods.
    pub stable_pod_template_hash: String,
    /// The query window.
    pub interval: String,
}

impl Variables {
    fn of(obs: &Observed, analysis: &RolloutAnalysis) -> Self {
        let ro = &obs.rollout;
        let cs = ro
            .status
            .as_ref()
            .and_then(|s| s.canary_status.clone())
            .unwrap_or_default();
        let stable_pod_template_hash = obs
            .workload
            .as_ref()
            .and_then(|w| objects::find_rs(&obs.replica_sets, w, &cs.stable_revision))
            .and_then(objects::pod_hash_label)
            .unwrap_or_default();
        Self::for_rollout(ro, analysis, stable_pod_template_hash)
    }

    /// The variables of `ro` judged by `analysis`, given the stable pods'
    /// `pod-template-hash` (which only the stable ReplicaSet tells).
    pub fn for_rollout(
        ro: &Rollout,
        analysis: &RolloutAnalysis,
        stable_pod_template_hash: String,
    ) -> Self {
        let service = ro
            .spec
            .strategy
            .canary
            .as_ref()
            .and_then(|c| c.traffic_routings.first())
            .map(|t| t.service.clone())
            .unwrap_or_default();
        let canary_pod_template_hash = ro
            .status
            .as_ref()
            .and_then(|s| s.canary_status.as_ref())
            .map(|c| c.pod_template_hash.clone())
            .unwrap_or_default();
        let stable_workload = ro.spec.workload_ref.name.clone();
        Variables {
            namespace: ro.metadata.namespace.clone().unwrap_or_default(),
            canary_service: canary_service_name(&service),
            service,
            canary_workload: canary_workload_name(&stable_workload),
            stable_workload,
            canary_pod_template_hash,
            stable_pod_template_hash,
            interval: window(analysis),
        }
    }

    /// The value of a variable by its template name.
    pub fn get(&self, name: &str) -> String {
        match name {
            "namespace" => &self.namespace,
            "service" => &self.service,
            "canaryService" => &self.canary_service,
            "stableWorkload" => &self.stable_workload,
            "canaryWorkload" => &self.canary_workload,
            "canaryPodTemplateHash" => &self.canary_pod_template_hash,
            "stablePodTemplateHash" => &self.stable_pod_template_hash,
            "interval" => &self.interval,
            _ => "",
        }
        .to_string()
    }

    /// Render a template (validated at apply, so `None` only for a spec
    /// that bypassed validation).
    pub fn render(&self, template: &str) -> Option<String> {
        render_template(template, |v| self.get(v)).ok()
    }
}

/// How one measurement of `metric` ends, with the reason for NoData/Error.
pub fn judge(
    metric: &AnalysisMetric,
    window: &str,
    outcome: &Outcome,
) -> (MeasurementPhase, Option<String>) {
    let min = f64::from(metric.min_samples());
    let too_few = |samples: &Option<f64>| {
        samples.filter(|s| *s < min).map(|s| {
            format!(
                "the canary served {} requests in the last {window}, fewer than minSamples {}",
                show(s),
                metric.min_samples()
            )
        })
    };
    match outcome {
        Outcome::Error(e) => (MeasurementPhase::Error, Some(e.clone())),
        Outcome::Empty { samples } => (
            MeasurementPhase::NoData,
            Some(too_few(samples).unwrap_or_else(|| {
                format!(
                    "the query returned no series (the canary served {} requests in the last {window})",
                    samples.map_or("an unknown number of".into(), show)
                )
            })),
        ),
        Outcome::Value { value, samples } => {
            if let Some(why) = too_few(samples) {
                return (MeasurementPhase::NoData, Some(why));
            }
            if !value.is_finite() {
                return (
                    MeasurementPhase::NoData,
                    Some(format!(
                        "the query returned {} (no requests to compute it from)",
                        show(*value)
                    )),
                );
            }
            if metric.threshold_range.contains(*value) {
                (MeasurementPhase::Passed, None)
            } else {
                (MeasurementPhase::Failed, None)
            }
        }
    }
}

/// A number as people read it: integers without a fraction, others with at
/// most 3 decimals.
pub fn show(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// What the analysis says about the current step.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Judgement {
    /// The records for `status.canaryStatus.analysis`.
    pub records: Vec<MetricAnalysisStatus>,
    /// A metric failed `failureLimit` times in a row: the abort message.
    pub abort: Option<String>,
    /// Every metric's last measurement in this step passed.
    pub ready: bool,
    /// Why the step cannot advance yet (when not ready), and the condition
    /// reason: `AnalysisNoData`, `AnalysisError`, `AnalysisFailing` or `AnalysisPending`.
    pub hold: Option<(&'static str, String)>,
    /// One line per metric for the status message.
    pub summary: String,
    /// Time until the next measurement.
    pub next_in: Duration,
    /// Metrics whose phase changed in this call: (name, old, new, detail).
    pub changes: Vec<(String, Option<MeasurementPhase>, MeasurementPhase, String)>,
}

/// Fold `measurements` into the records of step `step` (paused since
/// `since`) and judge the step.
pub(crate) fn evaluate(
    analysis: &RolloutAnalysis,
    old: &[MetricAnalysisStatus],
    step: i32,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    measurements: &[Measurement],
) -> Judgement {
    let window = window(analysis);
    let mut records = Vec::new();
    let mut changes = Vec::new();
    for m in &analysis.metrics {
        let prev = old.iter().find(|r| r.name == m.name);
        let mut r = match prev {
            Some(r) if of_step(r, step, since) => r.clone(),
            Some(r) => MetricAnalysisStatus {
                name: m.name.clone(),
                step_index: step,
                // Totals cover the rollout; going back to an earlier step
                // (a retry) starts them again.
                total: if r.step_index < step {
                    r.total
                } else {
                    Default::default()
                },
                ..Default::default()
            },
            None => MetricAnalysisStatus {
                name: m.name.clone(),
                step_index: step,
                ..Default::default()
            },
        };
        r.threshold_range = m.threshold_range;
        for ms in measurements.iter().filter(|x| x.metric == m.name) {
            let before = r.phase;
            let (phase, why) = judge(m, &window, &ms.outcome);
            if let Outcome::Value { value, samples } = &ms.outcome {
                r.last_value = value.is_finite().then_some(*value);
                r.last_samples = *samples;
            } else {
                r.last_value = None;
                r.last_samples = None;
            }
            let (failures, no_data, errors) = (
                r.consecutive_failures,
                r.consecutive_no_data,
                r.consecutive_errors,
            );
            r.consecutive_failures = 0;
            r.consecutive_no_data = 0;
            r.consecutive_errors = 0;
            match phase {
                MeasurementPhase::Passed => r.passed_in_step = r.passed_in_step.saturating_add(1),
                MeasurementPhase::Failed => r.consecutive_failures = failures.saturating_add(1),
                MeasurementPhase::NoData => r.consecutive_no_data = no_data.saturating_add(1),
                MeasurementPhase::Error => r.consecutive_errors = errors.saturating_add(1),
            }
            r.phase = Some(phase);
            r.measurements = r.measurements.saturating_add(1);
            r.total.add(phase);
            r.last_error = why;
            r.last_measurement_time = Some(to_k8s_time(ms.at));
            if before != Some(phase) {
                changes.push((m.name.clone(), before, phase, describe(m, &r)));
            }
        }
        records.push(r);
    }

    let abort = analysis.metrics.iter().zip(&records).find_map(|(m, r)| {
        (r.phase == Some(MeasurementPhase::Failed) && r.consecutive_failures >= m.failure_limit())
            .then(|| {
                format!(
                    "analysis failed at step {step}: {} {} (failureLimit {})",
                    describe(m, r),
                    if r.consecutive_failures == 1 {
                        "once".to_string()
                    } else {
                        format!("{} times in a row", r.consecutive_failures)
                    },
                    m.failure_limit()
                )
            })
    });
    let ready = records
        .iter()
        .all(|r| r.phase == Some(MeasurementPhase::Passed));
    let hold = (!ready).then(|| hold_reason(analysis, &records));
    let summary = analysis
        .metrics
        .iter()
        .zip(&records)
        .map(|(m, r)| describe(m, r))
        .collect::<Vec<_>>()
        .join("; ");
    let due = next_due(analysis, &records, step, since);
    let next_in = (due - now).to_std().unwrap_or(Duration::ZERO);
    Judgement {
        records,
        abort,
        ready,
        hold,
        summary,
        next_in,
        changes,
    }
}

/// One metric in words: `request-success-rate 70.2 Failed (range >= 99)`.
fn describe(m: &AnalysisMetric, r: &MetricAnalysisStatus) -> String {
    let range = &m.threshold_range;
    match r.phase {
        None => format!("{} not measured yet (range {range})", m.name),
        Some(MeasurementPhase::Passed) => format!(
            "{} {} Passed (range {range})",
            m.name,
            r.last_value.map_or("-".into(), show)
        ),
        Some(MeasurementPhase::Failed) => format!(
            "{} was {}, outside the range {range}, Failed",
            m.name,
            r.last_value.map_or("-".into(), show)
        ),
        Some(p @ (MeasurementPhase::NoData | MeasurementPhase::Error)) => format!(
            "{} {p}: {}",
            m.name,
            r.last_error.as_deref().unwrap_or("no detail")
        ),
    }
}

fn hold_reason(
    analysis: &RolloutAnalysis,
    records: &[MetricAnalysisStatus],
) -> (&'static str, String) {
    let pick = |phase: Option<MeasurementPhase>| {
        analysis
            .metrics
            .iter()
            .zip(records)
            .filter(|(_, r)| r.phase == phase)
            .map(|(m, r)| describe(m, r))
            .collect::<Vec<_>>()
    };
    for (phase, reason) in [
        (Some(MeasurementPhase::Error), "AnalysisError"),
        (Some(MeasurementPhase::NoData), "AnalysisNoData"),
        (Some(MeasurementPhase::Failed), "AnalysisFailing"),
        (None, "AnalysisPending"),
    ] {
        let found = pick(phase);
        if !found.is_empty() {
            return (reason, found.join("; "));
        }
    }
    ("AnalysisPending", String::new())
}

/// The analysis records and judgement of a Rollout in `StepPaused`, for the
/// planner. `None` without analysis.
pub(crate) fn judge_step(obs: &Observed, cs: &CanaryStatus) -> Option<Judgement> {
    let analysis = analysis_of(&obs.rollout)?;
    let since = from_k8s_time(cs.last_update_time.as_ref()?);
    Some(evaluate(
        analysis,
        &cs.analysis,
        cs.current_step_index,
        since,
        obs.now,
        &obs.measurements,
    ))
}

/// How long after a step's pause begins the first measurement is due
/// (`None` without analysis).
pub fn first_measurement_in(ro: &Rollout) -> Option<Duration> {
    analysis_of(ro).map(interval_of)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ramp_api::ThresholdRange;

    fn metric(name: &str, min: Option<f64>, max: Option<f64>) -> AnalysisMetric {
        AnalysisMetric {
            name: name.into(),
            threshold_range: ThresholdRange { min, max },
            ..Default::default()
        }
    }

    fn value(v: f64, samples: f64) -> Outcome {
        Outcome::Value {
            value: v,
            samples: Some(samples),
        }
    }

    #[test]
    fn judge_table() {
        let m = metric(REQUEST_SUCCESS_RATE, Some(99.0), None);
        let cases: Vec<(Outcome, MeasurementPhase, Option<&str>)> = vec![
            (value(100.0, 50.0), MeasurementPhase::Passed, None),
            (value(99.0, 50.0), MeasurementPhase::Passed, None),
            (value(70.0, 50.0), MeasurementPhase::Failed, None),
            (
                value(100.0, 3.0),
                MeasurementPhase::NoData,
                Some("the canary served 3 requests in the last 10s, fewer than minSamples 10"),
            ),
            (
                value(f64::NAN, 50.0),
                MeasurementPhase::NoData,
                Some("the query returned NaN"),
            ),
            (
                Outcome::Empty { samples: Some(3.0) },
                MeasurementPhase::NoData,
                Some("the canary served 3 requests in the last 10s, fewer than minSamples 10"),
            ),
            (
                Outcome::Empty {
                    samples: Some(30.0),
                },
                MeasurementPhase::NoData,
                Some(
                    "the query returned no series (the canary served 30 requests in the last 10s)",
                ),
            ),
            (
                Outcome::Error("connection refused".into()),
                MeasurementPhase::Error,
                Some("connection refused"),
            ),
        ];
        for (outcome, phase, why) in cases {
            let (p, w) = judge(&m, "10s", &outcome);
            assert_eq!(p, phase, "{outcome:?}");
            match why {
                None => assert_eq!(w, None),
                Some(s) => assert!(w.as_deref().unwrap_or("").contains(s), "{w:?} ~ {s}"),
            }
        }
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(show(99.0), "99");
        assert_eq!(show(70.12345), "70.123");
        assert_eq!(show(0.5), "0.5");
        assert_eq!(show(f64::NAN), "NaN");
    }

    #[test]
    fn the_window_is_the_interval_but_at_least_ten_seconds() {
        let mut a = RolloutAnalysis {
            interval: Some("2s".into()),
            ..Default::default()
        };
        assert_eq!(window(&a), "10s");
        a.interval = Some("1m".into());
        assert_eq!(window(&a), "60s");
    }

    #[test]
    fn builtin_queries_render_every_variable() {
        let v = Variables {
            namespace: "shop".into(),
            canary_workload: "web-canary".into(),
            interval: "30s".into(),
            ..Default::default()
        };
        let q = v
            .render(builtin_query(MetricsProvider::Istio, REQUEST_SUCCESS_RATE).unwrap())
            .unwrap();
        assert_eq!(
            q,
            "100 * (sum(rate(istio_requests_total{reporter=\"destination\",destination_workload_namespace=\"shop\",destination_workload=\"web-canary\",response_code!~\"5..\"}[30s])) or vector(0)) / sum(rate(istio_requests_total{reporter=\"destination\",destination_workload_namespace=\"shop\",destination_workload=\"web-canary\"}[30s]))"
        );
        let q = v
            .render(builtin_query(MetricsProvider::Istio, REQUEST_DURATION).unwrap())
            .unwrap();
        assert!(q.starts_with("histogram_quantile(0.99, sum by (le) (rate(istio_request_duration_milliseconds_bucket{"), "{q}");
        assert!(
            q.contains("destination_workload=\"web-canary\"}[30s]"),
            "{q}"
        );
        assert_eq!(
            v.render(samples_query(MetricsProvider::Istio)).unwrap(),
            "sum(increase(istio_requests_total{reporter=\"destination\",destination_workload_namespace=\"shop\",destination_workload=\"web-canary\"}[30s]))"
        );
    }

    #[test]
    fn envoy_builtin_queries_select_the_canary_services_clusters() {
        let v = Variables {
            namespace: "shop".into(),
            canary_service: "web-canary".into(),
            canary_workload: "web-canary".into(),
            interval: "30s".into(),
            ..Default::default()
        };
        let cluster = "envoy_cluster_name=~\"shop[_/]web-canary[_/].*\"";
        let q = v
            .render(builtin_query(MetricsProvider::Envoy, REQUEST_SUCCESS_RATE).unwrap())
            .unwrap();
        assert_eq!(
            q,
            format!(
                "100 * (sum(rate(envoy_cluster_upstream_rq{{{cluster},envoy_response_code!~\"5..\"}}[30s])) or vector(0)) / sum(rate(envoy_cluster_upstream_rq{{{cluster}}}[30s]))"
            )
        );
        let q = v
            .render(builtin_query(MetricsProvider::Envoy, REQUEST_DURATION).unwrap())
            .unwrap();
        assert_eq!(
            q,
            format!(
                "histogram_quantile(0.99, sum by (le) (rate(envoy_cluster_upstream_rq_time_bucket{{{cluster}}}[30s])))"
            )
        );
        assert_eq!(
            v.render(samples_query(MetricsProvider::Envoy)).unwrap(),
            format!("sum(increase(envoy_cluster_upstream_rq{{{cluster}}}[30s]))")
        );
        // Every built-in metric exists for every provider.
        for p in [MetricsProvider::Istio, MetricsProvider::Envoy] {
            for m in ramp_api::analysis::BUILTIN_METRICS {
                assert!(builtin_query(p, m).is_some(), "{p:?} {m}");
            }
        }
    }
}
