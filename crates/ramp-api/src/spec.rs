//! The one meaning of a Rollout's spec.
//!
//! [`validate`] checks a Rollout and, when it is valid, returns a
//! [`ValidSpec`]: the steps with their percentages resolved and the routing in
//! force at every step. The planner, the operator's metrics and the plugin all
//! read a rollout's steps through it, so none of them interprets the raw spec
//! on its own (and none can disagree about, say, the traffic a replicas-only
//! step keeps).

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::validation::{FieldError, parse_percent};
use crate::{
    CanaryStatus, CustomNetworkRef, HttpHeaderModifier, HttpRouteMatch, Rollout, RolloutAnalysis,
    RolloutPhase, RolloutStatus, StepState, TrafficRoutingRef,
};

/// What one step asks of routing.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct StepRouting {
    /// Percent of the stable Service's traffic sent to the canary (1..=100).
    pub weight: Option<i32>,
    /// Requests matching any of these go to the canary.
    pub matches: Vec<HttpRouteMatch>,
    /// Percent of the stable routes' requests also copied to the canary
    /// (1..=100); the copies' responses are discarded.
    pub mirror: Option<i32>,
    /// Request header changes on the step's canary routes (header-step
    /// copies, weight-step canary destinations).
    pub request_header_modifier: Option<HttpHeaderModifier>,
}

/// A step's canary replicas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replicas {
    /// A number of pods (at least 1).
    Count(i32),
    /// A percentage (1..=100) of the stable Deployment's `spec.replicas`.
    Percent(i32),
}

impl Replicas {
    /// The number of canary pods for a stable Deployment of `stable`
    /// replicas; a percentage rounds up.
    pub fn resolve(self, stable: i32) -> i32 {
        match self {
            Replicas::Count(n) => n,
            Replicas::Percent(p) => {
                let total = i64::from(stable.max(0)) * i64::from(p);
                i32::try_from((total + 99) / 100).unwrap_or(i32::MAX)
            }
        }
    }
}

impl std::fmt::Display for Replicas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Replicas::Count(n) => write!(f, "{n}"),
            Replicas::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// One step, parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// Canary replicas.
    pub replicas: Replicas,
    /// The routing in force during this step: its own when it sets traffic,
    /// matches or a mirror, else the previous step's (as in Kruise Rollout);
    /// `None` when no step so far routed anything to the canary.
    pub routing: Option<StepRouting>,
    /// Whether the step sets its own routing (rather than keeping the
    /// previous step's).
    pub sets_routing: bool,
    /// Pause in seconds; `None`: wait for approval.
    pub pause_seconds: Option<i32>,
}

impl Step {
    /// Percent of traffic the canary gets during this step (0 for none or
    /// request matches only).
    pub fn weight(&self) -> i32 {
        self.routing.as_ref().and_then(|r| r.weight).unwrap_or(0)
    }
}

/// A valid Rollout spec, parsed: what every stage reads.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidSpec {
    /// The Deployment rolled out.
    pub workload: String,
    /// The one traffic routing.
    pub routing: TrafficRoutingRef,
    /// Every routing object, in order (`customNetworkRefs`, then
    /// `gateway.httpRouteName`).
    pub refs: Vec<CustomNetworkRef>,
    /// The steps, in order (step `i` of the status is `steps[i - 1]`).
    pub steps: Vec<Step>,
    /// Metric analysis, if any.
    pub analysis: Option<RolloutAnalysis>,
}

impl ValidSpec {
    /// Number of steps.
    pub fn len(&self) -> i32 {
        i32::try_from(self.steps.len()).unwrap_or(i32::MAX)
    }

    /// Whether there are no steps (never, for a valid spec).
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Step `i` (1-based, as in the status).
    pub fn step(&self, i: i32) -> Option<&Step> {
        let idx = usize::try_from(i).ok()?.checked_sub(1)?;
        self.steps.get(idx)
    }

    /// The routing in force at step `i` (1-based; 0 = before any step).
    pub fn routing_at(&self, i: i32) -> Option<&StepRouting> {
        self.step(i).and_then(|s| s.routing.as_ref())
    }

    /// Every distinct routing the steps use, in step order.
    pub fn known_routings(&self) -> Vec<StepRouting> {
        let mut known: Vec<StepRouting> = Vec::new();
        for r in self.steps.iter().filter_map(|s| s.routing.as_ref()) {
            if !known.contains(r) {
                known.push(r.clone());
            }
        }
        known
    }

    /// The step whose routing is in force given `status`, with it: the
    /// current step's once it reached its pause (or is done), else the
    /// previous one's; `None` when no rollout is moving traffic (not
    /// Progressing, or finishing).
    pub fn routed_step(&self, status: &RolloutStatus) -> Option<(i32, Option<&StepRouting>)> {
        let c: &CanaryStatus = status.canary_status.as_ref()?;
        if status.phase != Some(RolloutPhase::Progressing) || c.finalising_step.is_some() {
            return None;
        }
        let i = match c.current_step_state {
            StepState::StepPaused | StepState::StepReady | StepState::Completed => {
                c.current_step_index
            }
            StepState::BeforeStepUpgrade
            | StepState::StepUpgrade
            | StepState::StepTrafficRouting => c.current_step_index - 1,
        }
        .clamp(0, self.len());
        Some((i, self.routing_at(i)))
    }

    /// Percent of traffic the canary gets given `status` (0 when none).
    pub fn weight_now(&self, status: &RolloutStatus) -> i32 {
        self.routed_step(status)
            .and_then(|(_, r)| r.and_then(|r| r.weight))
            .unwrap_or(0)
    }
}

/// Validate a Rollout: every problem with its field path, or the parsed spec.
pub fn validate(ro: &Rollout) -> Result<ValidSpec, Vec<FieldError>> {
    let errs = crate::validation::validate_rollout(ro);
    if !errs.is_empty() {
        return Err(errs);
    }
    // Validation passed: every field below is present and in range.
    let invalid = || {
        vec![FieldError::new(
            "spec",
            "could not be parsed after validation (a bug in ramp: please report it)",
        )]
    };
    let canary = ro.spec.strategy.canary.as_ref().ok_or_else(invalid)?;
    let routing = canary.traffic_routings.first().ok_or_else(invalid)?.clone();
    let mut steps = Vec::with_capacity(canary.steps.len());
    let mut previous: Option<StepRouting> = None;
    for s in &canary.steps {
        let replicas = match s.replicas.as_ref().ok_or_else(invalid)? {
            IntOrString::Int(n) => Replicas::Count(*n),
            IntOrString::String(p) => Replicas::Percent(parse_percent(p).ok_or_else(invalid)?),
        };
        let weight = match &s.traffic {
            Some(t) => Some(parse_percent(t).ok_or_else(invalid)?),
            None => None,
        };
        let mirror = s.mirror.as_ref().map(|m| m.percent);
        let sets_routing = weight.is_some() || !s.matches.is_empty() || mirror.is_some();
        let routing = if sets_routing {
            Some(StepRouting {
                weight,
                matches: s.matches.clone(),
                mirror,
                request_header_modifier: s.request_header_modifier.clone(),
            })
        } else {
            previous.clone()
        };
        previous = routing.clone();
        steps.push(Step {
            replicas,
            routing,
            sets_routing,
            pause_seconds: s.pause.as_ref().and_then(|p| p.duration),
        });
    }
    Ok(ValidSpec {
        workload: ro.spec.workload_ref.name.clone(),
        refs: routing.routing_refs(),
        routing,
        steps,
        analysis: canary.analysis.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rollout(steps: serde_json::Value) -> Rollout {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "rollouts.ramp.dev/v1beta1", "kind": "Rollout",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {
                "workloadRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "strategy": {"canary": {"steps": steps, "trafficRoutings": [{
                    "service": "web",
                    "customNetworkRefs": [{"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "name": "web"}]
                }]}}
            }
        }))
        .unwrap()
    }

    #[test]
    fn a_step_without_traffic_matches_or_mirror_keeps_the_previous_routing() {
        let spec = validate(&rollout(serde_json::json!([
            {"replicas": 1},
            {"replicas": 2, "traffic": "20%"},
            {"replicas": "50%"},
            {"replicas": "80%", "matches": [{"headers": [{"name": "version", "value": "canary"}]}]},
        ])))
        .unwrap();
        assert_eq!(spec.len(), 4);
        assert_eq!(spec.routing_at(0), None);
        assert_eq!(spec.routing_at(1), None);
        assert_eq!(spec.step(2).unwrap().weight(), 20);
        assert_eq!(spec.step(3).unwrap().weight(), 20, "kept from step 2");
        assert!(!spec.step(3).unwrap().sets_routing);
        // Matches replace the weight: the canary gets only matching requests.
        assert_eq!(spec.step(4).unwrap().weight(), 0);
        assert_eq!(spec.known_routings().len(), 2);
        assert_eq!(spec.step(3).unwrap().replicas, Replicas::Percent(50));
    }

    #[test]
    fn percentages_of_replicas_round_up() {
        assert_eq!(Replicas::Count(1).resolve(3), 1);
        assert_eq!(Replicas::Percent(50).resolve(3), 2);
        assert_eq!(Replicas::Percent(80).resolve(3), 3);
        assert_eq!(Replicas::Percent(100).resolve(3), 3);
        assert_eq!(Replicas::Percent(50).resolve(0), 0);
        assert_eq!(Replicas::Percent(50).to_string(), "50%");
    }

    #[test]
    fn the_routing_in_force_follows_the_step_state() {
        let spec = validate(&rollout(serde_json::json!([
            {"replicas": 1, "traffic": "50%"},
            {"replicas": 2},
            {"replicas": 3, "traffic": "80%"},
        ])))
        .unwrap();
        let status = |phase, index, state, finishing: bool| RolloutStatus {
            phase: Some(phase),
            canary_status: Some(CanaryStatus {
                current_step_index: index,
                current_step_state: state,
                finalising_step: finishing.then_some(crate::FinalisingStep::RestoreRouting),
                ..Default::default()
            }),
            ..Default::default()
        };
        use RolloutPhase::*;
        use StepState::*;
        assert_eq!(
            spec.weight_now(&status(Progressing, 1, StepUpgrade, false)),
            0
        );
        assert_eq!(
            spec.weight_now(&status(Progressing, 1, StepPaused, false)),
            50
        );
        // A replicas-only step keeps step 1's traffic, before and at its pause.
        assert_eq!(
            spec.weight_now(&status(Progressing, 2, StepUpgrade, false)),
            50
        );
        assert_eq!(
            spec.weight_now(&status(Progressing, 2, StepPaused, false)),
            50
        );
        assert_eq!(
            spec.weight_now(&status(Progressing, 3, StepTrafficRouting, false)),
            50
        );
        assert_eq!(
            spec.weight_now(&status(Progressing, 3, Completed, false)),
            80
        );
        assert_eq!(spec.weight_now(&status(Progressing, 3, Completed, true)), 0);
        assert_eq!(spec.weight_now(&status(Healthy, 3, Completed, false)), 0);
        assert_eq!(
            spec.routed_step(&status(Aborted, 2, StepPaused, false)),
            None
        );
    }

    #[test]
    fn an_invalid_spec_gives_its_problems_and_no_parse() {
        let errs = validate(&rollout(
            serde_json::json!([{"replicas": 1, "traffic": "50"}]),
        ))
        .unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].path, "spec.strategy.canary.steps[0].traffic");
    }
}
