//! How a simulated pod answers: its error rate and latency, from the pod
//! template's annotations.
//!
//! - `sim.ramp.dev/error-rate: "0.2"`: each request is answered `500` with
//!   probability 0.2 (a number from 0 to 1; default 0).
//! - `sim.ramp.dev/latency-ms: "350"`: the mean latency in milliseconds
//!   (default [`DEFAULT_LATENCY_MS`]). Latencies are log-normal around that
//!   mean with a log-spread of [`LATENCY_SIGMA`]: the median is about 0.97× the
//!   mean, p90 1.35×, p99 1.74×.
//!
//! Latency is simulated, not slept: it is what the histogram records, so a slow
//! pod never caps the request rate.

use rand::Rng;
use serde_json::Value;

/// Annotation: fraction of requests a pod answers with a 5xx.
pub const ERROR_RATE_ANNOTATION: &str = "sim.ramp.dev/error-rate";
/// Annotation: mean latency of a pod's answers, in milliseconds.
pub const LATENCY_MS_ANNOTATION: &str = "sim.ramp.dev/latency-ms";
/// Mean latency of a pod without the annotation.
pub const DEFAULT_LATENCY_MS: f64 = 10.0;
/// Spread of the latencies: the standard deviation of their logarithm.
pub const LATENCY_SIGMA: f64 = 0.25;
/// The status of a simulated application error.
pub const ERROR_STATUS: u16 = 500;
/// Largest accepted `latency-ms` (one hour, the last finite Istio bucket).
pub const MAX_LATENCY_MS: f64 = 3_600_000.0;

/// How one pod answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PodBehaviour {
    /// Probability (0..=1) of answering [`ERROR_STATUS`].
    pub error_rate: f64,
    /// Mean latency in milliseconds.
    pub latency_ms: f64,
}

impl Default for PodBehaviour {
    fn default() -> Self {
        PodBehaviour {
            error_rate: 0.0,
            latency_ms: DEFAULT_LATENCY_MS,
        }
    }
}

/// One simulated answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub latency_ms: f64,
}

impl PodBehaviour {
    /// The behaviour a pod's annotations ask for. An annotation that is not a
    /// valid value is ignored (the default is used) and described in the
    /// returned warnings, naming the pod and the annotation.
    pub fn from_pod(pod: &Value) -> (PodBehaviour, Vec<String>) {
        let mut b = PodBehaviour::default();
        let mut warnings = Vec::new();
        let name = pod
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("?");
        let ns = pod
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("?");
        let ann = pod.pointer("/metadata/annotations");
        let get = |key: &str| ann.and_then(|a| a.get(key)).and_then(Value::as_str);
        if let Some(v) = get(ERROR_RATE_ANNOTATION) {
            match parse_error_rate(v) {
                Ok(r) => b.error_rate = r,
                Err(e) => warnings.push(format!(
                    "pod {ns}/{name}: metadata.annotations[{ERROR_RATE_ANNOTATION}]: {e}; ignored"
                )),
            }
        }
        if let Some(v) = get(LATENCY_MS_ANNOTATION) {
            match parse_latency(v) {
                Ok(l) => b.latency_ms = l,
                Err(e) => warnings.push(format!(
                    "pod {ns}/{name}: metadata.annotations[{LATENCY_MS_ANNOTATION}]: {e}; ignored"
                )),
            }
        }
        (b, warnings)
    }

    /// Draws one answer.
    pub fn answer(&self, rng: &mut impl Rng) -> Answer {
        let status = if self.error_rate > 0.0 && rng.random::<f64>() < self.error_rate {
            ERROR_STATUS
        } else {
            200
        };
        Answer {
            status,
            latency_ms: self.sample_latency(rng),
        }
    }

    /// A log-normal latency whose mean is `latency_ms`.
    pub fn sample_latency(&self, rng: &mut impl Rng) -> f64 {
        if self.latency_ms <= 0.0 {
            return 0.0;
        }
        let mu = self.latency_ms.ln() - LATENCY_SIGMA * LATENCY_SIGMA / 2.0;
        (mu + LATENCY_SIGMA * standard_normal(rng)).exp()
    }
}

/// A standard normal draw (Box–Muller).
fn standard_normal(rng: &mut impl Rng) -> f64 {
    // 1 - u is in (0, 1], so its logarithm is finite.
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn parse_error_rate(v: &str) -> Result<f64, String> {
    match v.trim().parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("{v:?} is not a number from 0 to 1")),
    }
}

fn parse_latency(v: &str) -> Result<f64, String> {
    match v.trim().parse::<f64>() {
        Ok(l) if (0.0..=MAX_LATENCY_MS).contains(&l) => Ok(l),
        _ => Err(format!(
            "{v:?} is not a number of milliseconds from 0 to {MAX_LATENCY_MS}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use serde_json::json;

    fn pod(annotations: Value) -> Value {
        json!({"metadata": {"name": "web-1", "namespace": "shop", "annotations": annotations}})
    }

    #[test]
    fn annotations_set_the_behaviour() {
        let (b, w) = PodBehaviour::from_pod(&pod(json!({
            ERROR_RATE_ANNOTATION: "0.2", LATENCY_MS_ANNOTATION: "350"
        })));
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(
            b,
            PodBehaviour {
                error_rate: 0.2,
                latency_ms: 350.0
            }
        );
        let (b, w) = PodBehaviour::from_pod(&json!({"metadata": {"name": "p"}}));
        assert!(w.is_empty());
        assert_eq!(b, PodBehaviour::default());
    }

    #[test]
    fn bad_annotations_are_ignored_with_a_warning_naming_pod_and_annotation() {
        let (b, w) = PodBehaviour::from_pod(&pod(json!({
            ERROR_RATE_ANNOTATION: "1.5", LATENCY_MS_ANNOTATION: "fast"
        })));
        assert_eq!(b, PodBehaviour::default());
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("pod shop/web-1")
                && w[0].contains("metadata.annotations[sim.ramp.dev/error-rate]")
                && w[0].contains("\"1.5\""),
            "{w:?}"
        );
        assert!(
            w[1].contains("sim.ramp.dev/latency-ms") && w[1].contains("\"fast\""),
            "{w:?}"
        );
        let (_, w) = PodBehaviour::from_pod(&pod(json!({ERROR_RATE_ANNOTATION: "-0.1"})));
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn the_error_fraction_follows_the_rate() {
        let b = PodBehaviour {
            error_rate: 0.3,
            latency_ms: 5.0,
        };
        let mut rng = StdRng::seed_from_u64(7);
        let n = 20_000;
        let errors = (0..n)
            .filter(|_| b.answer(&mut rng).status == ERROR_STATUS)
            .count();
        let share = errors as f64 / n as f64;
        assert!((share - 0.3).abs() < 0.02, "error share {share}");
        let ok = PodBehaviour::default();
        assert!((0..1000).all(|_| ok.answer(&mut rng).status == 200));
        let all = PodBehaviour {
            error_rate: 1.0,
            latency_ms: 5.0,
        };
        assert!((0..1000).all(|_| all.answer(&mut rng).status == ERROR_STATUS));
    }

    #[test]
    fn latencies_have_the_mean_and_a_spread() {
        let b = PodBehaviour {
            error_rate: 0.0,
            latency_ms: 900.0,
        };
        let mut rng = StdRng::seed_from_u64(1);
        let mut v: Vec<f64> = (0..20_000).map(|_| b.sample_latency(&mut rng)).collect();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        assert!((mean - 900.0).abs() < 15.0, "mean {mean}");
        v.sort_by(f64::total_cmp);
        let p50 = v[v.len() / 2];
        let p99 = v[v.len() * 99 / 100];
        assert!((820.0..920.0).contains(&p50), "p50 {p50}");
        assert!((1450.0..1700.0).contains(&p99), "p99 {p99}");
        assert!(v.iter().all(|x| x.is_finite() && *x > 0.0));
        let zero = PodBehaviour {
            error_rate: 0.0,
            latency_ms: 0.0,
        };
        assert_eq!(zero.sample_latency(&mut rng), 0.0);
    }
}
