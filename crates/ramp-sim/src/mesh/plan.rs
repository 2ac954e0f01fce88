//! What the proxy does with a request once a rule has matched, and the loop
//! that sends N requests through it.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::report::{PodRef, RouteReport};

/// A place requests can be sent: a set of ready pods, or a failure.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// Ready pods, served round-robin in name order.
    Pods {
        destination: String,
        pods: Vec<PodRef>,
        next: usize,
    },
    /// The proxy answers with an error instead (no Service, no subset, no pods).
    Fail { status: u16, reason: String },
}

impl Target {
    pub fn fail(status: u16, reason: String) -> Self {
        Target::Fail { status, reason }
    }
}

/// A mirror: a fraction (0..=1) of requests copied to a target.
#[derive(Debug, Clone)]
pub(crate) struct Mirror {
    pub fraction: f64,
    pub target: Target,
}

/// One weighted destination of a rule.
#[derive(Debug, Clone)]
pub(crate) struct Backend {
    pub weight: u64,
    pub target: Target,
    /// Mirrors applied only when this backend is chosen (Gateway API
    /// backendRef-level filters).
    pub mirrors: Vec<Mirror>,
}

/// What the matched rule does.
#[derive(Debug, Clone)]
pub(crate) enum Action {
    /// Send to one of the backends by weight; copy to the mirrors.
    Forward {
        backends: Vec<Backend>,
        mirrors: Vec<Mirror>,
    },
    /// The proxy answers by itself.
    Respond { status: u16, reason: String },
}

/// Fault injection: a fraction of requests aborted with a status.
#[derive(Debug, Clone)]
pub(crate) struct Abort {
    pub fraction: f64,
    pub status: u16,
    pub reason: String,
}

/// The decision for a request: which rule matched and what it does.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub rule: String,
    pub abort: Option<Abort>,
    pub action: Action,
}

impl Plan {
    pub fn respond(rule: String, status: u16, reason: String) -> Self {
        Plan {
            rule,
            abort: None,
            action: Action::Respond { status, reason },
        }
    }

    pub fn forward(rule: String, backends: Vec<Backend>, mirrors: Vec<Mirror>) -> Self {
        Plan {
            rule,
            abort: None,
            action: Action::Forward { backends, mirrors },
        }
    }
}

/// Sends `requests` identical requests through `plan`, counting where each
/// went. Weighted choices and fractional mirrors draw from a generator seeded
/// with `seed`, so the same inputs always give the same report.
pub(crate) fn run(plan: &mut Plan, requests: u64, seed: u64, report: &mut RouteReport) {
    let mut rng = StdRng::seed_from_u64(seed);
    report.requests += requests;
    for _ in 0..requests {
        report.ruled(&plan.rule);
        if let Some(abort) = &plan.abort
            && sample(&mut rng, abort.fraction)
        {
            report.failed(abort.status, &abort.reason);
            continue;
        }
        match &mut plan.action {
            Action::Respond { status, reason } => report.failed(*status, reason),
            Action::Forward { backends, mirrors } => {
                let total: u64 = backends.iter().map(|b| b.weight).sum();
                if total == 0 {
                    report.failed(500, "every backend has weight 0");
                    continue;
                }
                let mut pick = if backends.len() == 1 {
                    0
                } else {
                    rng.random_range(0..total)
                };
                let mut chosen = None;
                for b in backends.iter_mut() {
                    if pick < b.weight {
                        chosen = Some(b);
                        break;
                    }
                    pick -= b.weight;
                }
                let Some(backend) = chosen else {
                    continue;
                };
                match serve(&mut backend.target) {
                    Ok((pod, dest)) => report.served(&pod, &dest),
                    Err((status, reason)) => report.failed(status, &reason),
                }
                for m in mirrors.iter_mut().chain(backend.mirrors.iter_mut()) {
                    if sample(&mut rng, m.fraction) {
                        match serve(&mut m.target) {
                            Ok((pod, dest)) => report.shadow.served(&pod, &dest),
                            Err((status, reason)) => report.shadow.failed(status, &reason),
                        }
                    }
                }
            }
        }
    }
}

/// True with probability `fraction`; certain at 1, never at 0 (no draw then).
fn sample(rng: &mut StdRng, fraction: f64) -> bool {
    if fraction >= 1.0 {
        true
    } else if fraction <= 0.0 {
        false
    } else {
        rng.random::<f64>() < fraction
    }
}

fn serve(target: &mut Target) -> Result<(PodRef, String), (u16, String)> {
    match target {
        Target::Pods {
            destination,
            pods,
            next,
        } => {
            let Some(pod) = pods.get(*next).or_else(|| pods.first()).cloned() else {
                return Err((
                    503,
                    format!("no healthy upstream: no ready pods for {destination}"),
                ));
            };
            *next = (*next + 1) % pods.len();
            Ok((pod, destination.clone()))
        }
        Target::Fail { status, reason } => Err((*status, reason.clone())),
    }
}
