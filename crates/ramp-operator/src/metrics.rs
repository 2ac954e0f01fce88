//! Prometheus metrics, all in one registry with the `ramp` prefix.
//!
//! Labels are bounded: error *kinds* (never error text), phases, verbs, and
//! the namespace/name of Rollouts (one series per Rollout, removed when the
//! Rollout goes away).

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use ramp_api::RolloutPhase;

/// Labels naming one Rollout.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RolloutLabels {
    /// Namespace of the Rollout.
    pub namespace: String,
    /// Name of the Rollout.
    pub name: String,
}

/// Labels of the reconcile error counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// Low-cardinality error kind (see `Error::kind`).
    pub kind: String,
}

/// Labels of the phase gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    /// Rollout phase.
    pub phase: PhaseLabel,
}

/// A phase as a label value.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelValue)]
pub enum PhaseLabel {
    /// See [`RolloutPhase`].
    Initial,
    /// See [`RolloutPhase`].
    Healthy,
    /// See [`RolloutPhase`].
    Progressing,
    /// See [`RolloutPhase`].
    Aborted,
    /// See [`RolloutPhase`].
    Terminating,
    /// See [`RolloutPhase`].
    Disabling,
    /// See [`RolloutPhase`].
    Disabled,
}

impl From<RolloutPhase> for PhaseLabel {
    fn from(p: RolloutPhase) -> Self {
        match p {
            RolloutPhase::Initial => Self::Initial,
            RolloutPhase::Healthy => Self::Healthy,
            RolloutPhase::Progressing => Self::Progressing,
            RolloutPhase::Aborted => Self::Aborted,
            RolloutPhase::Terminating => Self::Terminating,
            RolloutPhase::Disabling => Self::Disabling,
            RolloutPhase::Disabled => Self::Disabled,
        }
    }
}

/// Labels of the API request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerbLabels {
    /// `get`, `list`, `create`, `patch`, `replace`, `delete`.
    pub verb: &'static str,
}

/// Every metric ramp exports.
/// Labels of `ramp_analysis_measurements_total`: the metric's name from the
/// spec and the measurement's phase (never an object name).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MeasurementLabels {
    /// `analysis.metrics[].name`.
    pub metric: String,
    /// Passed, Failed, NoData or Error.
    pub phase: String,
}

/// Labels of `ramp_rollout_analysis_value`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AnalysisValueLabels {
    /// The Rollout's namespace.
    pub namespace: String,
    /// The Rollout's name.
    pub name: String,
    /// `analysis.metrics[].name`.
    pub metric: String,
}

/// Analysis metric names exported per Rollout `(namespace, name)`.
type AnalysisNames =
    std::collections::BTreeMap<(String, String), std::collections::BTreeSet<String>>;

#[derive(Clone)]
pub struct Metrics {
    /// Reconcile duration in seconds.
    pub reconcile_duration: Histogram,
    /// Reconcile errors by kind.
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    /// Rollouts per phase (set from the reflector on every reconcile).
    pub rollouts_by_phase: Family<PhaseLabels, Gauge>,
    /// Current 1-based step per Rollout (0 when none is under way).
    pub current_step: Family<RolloutLabels, Gauge>,
    /// Percentage of traffic sent to the canary per Rollout.
    pub canary_weight: Family<RolloutLabels, Gauge>,
    /// Step transitions (a step state changed).
    pub step_transitions: Family<RolloutLabels, Counter>,
    /// Total seconds Rollouts spent in `StepPaused`.
    pub paused_seconds: Family<RolloutLabels, Counter<f64, std::sync::atomic::AtomicU64>>,
    /// API requests the operator made, by verb.
    pub api_requests: Family<VerbLabels, Counter>,
    /// Analysis measurements by metric name and phase.
    pub analysis_measurements: Family<MeasurementLabels, Counter>,
    /// The last measured value of each Rollout's metrics.
    pub analysis_value: Family<AnalysisValueLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// The metric names exported per Rollout, so that a deleted Rollout's
    /// values can be removed.
    analysis_names: Arc<std::sync::Mutex<AnalysisNames>>,
    registry: Arc<Registry>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Create the metrics and register them.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ramp");
        let reconcile_duration = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        let rollouts_by_phase = Family::<PhaseLabels, Gauge>::default();
        let current_step = Family::<RolloutLabels, Gauge>::default();
        let canary_weight = Family::<RolloutLabels, Gauge>::default();
        let step_transitions = Family::<RolloutLabels, Counter>::default();
        let paused_seconds = Family::default();
        let api_requests = Family::<VerbLabels, Counter>::default();
        registry.register_with_unit(
            "reconcile_duration",
            "Time spent in one reconcile of a Rollout",
            prometheus_client::registry::Unit::Seconds,
            reconcile_duration.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconcile errors by error kind",
            reconcile_errors.clone(),
        );
        registry.register("rollouts", "Rollouts by phase", rollouts_by_phase.clone());
        registry.register(
            "rollout_current_step",
            "Current canary step (1-based; 0 when no rollout is under way)",
            current_step.clone(),
        );
        registry.register(
            "rollout_canary_weight_percent",
            "Share of traffic routed to the canary",
            canary_weight.clone(),
        );
        registry.register(
            "rollout_step_transitions",
            "Changes of step or step state",
            step_transitions.clone(),
        );
        registry.register_with_unit(
            "rollout_paused",
            "Time spent waiting in StepPaused",
            prometheus_client::registry::Unit::Seconds,
            paused_seconds.clone(),
        );
        registry.register(
            "api_requests",
            "Kubernetes API requests made by the operator, by verb",
            api_requests.clone(),
        );
        let analysis_measurements = Family::<MeasurementLabels, Counter>::default();
        let analysis_value = Family::default();
        registry.register(
            "analysis_measurements",
            "Analysis measurements by metric name and phase (Passed, Failed, NoData, Error)",
            analysis_measurements.clone(),
        );
        registry.register(
            "rollout_analysis_value",
            "The last measured value of a Rollout's analysis metric",
            analysis_value.clone(),
        );
        Self {
            analysis_measurements,
            analysis_value,
            analysis_names: Arc::default(),
            reconcile_duration,
            reconcile_errors,
            rollouts_by_phase,
            current_step,
            canary_weight,
            step_transitions,
            paused_seconds,
            api_requests,
            registry: Arc::new(registry),
        }
    }

    /// Text exposition (OpenMetrics).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Start timing a reconcile; the duration is recorded when the guard drops.
    pub fn time_reconcile(&self) -> ReconcileTimer {
        ReconcileTimer {
            start: Instant::now(),
            histogram: self.reconcile_duration.clone(),
        }
    }

    /// Count an API request.
    pub fn api_request(&self, verb: &'static str) {
        self.api_requests.get_or_create(&VerbLabels { verb }).inc();
    }

    /// Forget the per-Rollout series of a deleted Rollout.
    pub fn forget_rollout(&self, namespace: &str, name: &str) {
        let l = RolloutLabels {
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        self.current_step.remove(&l);
        self.canary_weight.remove(&l);
        self.step_transitions.remove(&l);
        self.paused_seconds.remove(&l);
        let names = self
            .analysis_names
            .lock()
            .map(|mut m| m.remove(&(l.namespace.clone(), l.name.clone())))
            .unwrap_or_default();
        for metric in names.into_iter().flatten() {
            self.analysis_value.remove(&AnalysisValueLabels {
                namespace: l.namespace.clone(),
                name: l.name.clone(),
                metric,
            });
        }
    }

    /// Export the last value of a Rollout's analysis metric (`None`: remove it).
    pub fn set_analysis_value(&self, labels: &AnalysisValueLabels, value: Option<f64>) {
        match value {
            Some(v) => {
                self.analysis_value.get_or_create(labels).set(v);
                if let Ok(mut m) = self.analysis_names.lock() {
                    m.entry((labels.namespace.clone(), labels.name.clone()))
                        .or_default()
                        .insert(labels.metric.clone());
                }
            }
            None => {
                self.analysis_value.remove(labels);
            }
        }
    }

    /// Record time spent paused.
    pub fn add_paused(&self, labels: &RolloutLabels, d: Duration) {
        self.paused_seconds
            .get_or_create(labels)
            .inc_by(d.as_secs_f64());
    }
}

/// Records the reconcile duration on drop (also when the reconcile errors).
pub struct ReconcileTimer {
    start: Instant,
    histogram: Histogram,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_every_metric_with_the_prefix() {
        let m = Metrics::new();
        let l = RolloutLabels {
            namespace: "default".into(),
            name: "rollouts-demo".into(),
        };
        m.current_step.get_or_create(&l).set(2);
        m.canary_weight.get_or_create(&l).set(50);
        m.reconcile_errors
            .get_or_create(&ErrorLabels {
                kind: "kube".into(),
            })
            .inc();
        m.rollouts_by_phase
            .get_or_create(&PhaseLabels {
                phase: RolloutPhase::Progressing.into(),
            })
            .set(1);
        m.api_request("patch");
        drop(m.time_reconcile());
        let text = m.encode();
        for needle in [
            "ramp_rollout_current_step{namespace=\"default\",name=\"rollouts-demo\"} 2",
            "ramp_rollout_canary_weight_percent{namespace=\"default\",name=\"rollouts-demo\"} 50",
            "ramp_reconcile_errors_total{kind=\"kube\"} 1",
            "ramp_rollouts{phase=\"Progressing\"} 1",
            "ramp_api_requests_total{verb=\"patch\"} 1",
            "ramp_reconcile_duration_seconds_count 1",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        m.forget_rollout("default", "rollouts-demo");
        assert!(!m.encode().contains("rollouts-demo"));
    }

    #[test]
    fn analysis_metrics_are_named_by_metric_and_phase() {
        let m = Metrics::new();
        m.analysis_measurements
            .get_or_create(&MeasurementLabels {
                metric: "request-success-rate".into(),
                phase: "Failed".into(),
            })
            .inc();
        m.set_analysis_value(
            &AnalysisValueLabels {
                namespace: "default".into(),
                name: "rollouts-demo".into(),
                metric: "request-success-rate".into(),
            },
            Some(70.5),
        );
        let text = m.encode();
        for needle in [
            "ramp_analysis_measurements_total{metric=\"request-success-rate\",phase=\"Failed\"} 1",
            "ramp_rollout_analysis_value{namespace=\"default\",name=\"rollouts-demo\",metric=\"request-success-rate\"} 70.5",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        m.forget_rollout("default", "rollouts-demo");
        assert!(!m.encode().contains("rollouts-demo"));
    }
}
