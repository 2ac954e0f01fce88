//! What the proxy does with a request once a rule has matched, and the loop
//! that sends N requests through it.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::headers::HeaderOps;
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
    /// Header changes applied only when this backend is chosen, after the rule's.
    pub request_headers: HeaderOps,
    pub response_headers: HeaderOps,
}

impl Backend {
    pub fn new(weight: u64, target: Target) -> Self {
        Backend {
            weight,
            target,
            mirrors: Vec::new(),
            request_headers: HeaderOps::default(),
            response_headers: HeaderOps::default(),
        }
    }
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
    /// Header changes on the way to the backend and on the way back.
    pub request_headers: HeaderOps,
    pub response_headers: HeaderOps,
}

impl Plan {
    pub fn respond(rule: String, status: u16, reason: String) -> Self {
        Plan {
            rule,
            abort: None,
            action: Action::Respond { status, reason },
            request_headers: HeaderOps::default(),
            response_headers: HeaderOps::default(),
        }
    }

    pub fn forward(rule: String, backends: Vec<Backend>, mirrors: Vec<Mirror>) -> Self {
        Plan {
            rule,
            abort: None,
            action: Action::Forward { backends, mirrors },
            request_headers: HeaderOps::default(),
            response_headers: HeaderOps::default(),
        }
    }
}

/// Sends `requests` identical requests through `plan`, counting where each
/// went. Weighted choices and fractional mirrors draw from a generator seeded
/// with `seed`, so the same inputs always give the same report. `headers` are
/// the request's (lower-case names); the report records, per destination, the
/// headers its pods received and the response headers the mesh set.
pub(crate) fn run(
    plan: &mut Plan,
    headers: &BTreeMap<String, String>,
    requests: u64,
    seed: u64,
    report: &mut RouteReport,
) {
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
                    Ok((pod, dest)) => {
                        report.served(&pod, &dest);
                        if !report.request_headers.contains_key(&dest) {
                            let mut sent = headers.clone();
                            plan.request_headers
                                .then(&backend.request_headers)
                                .apply(&mut sent);
                            let mut back = BTreeMap::new();
                            plan.response_headers
                                .then(&backend.response_headers)
                                .apply(&mut back);
                            report.request_headers.insert(dest.clone(), sent);
                            if !back.is_empty() {
                                report.response_headers.insert(dest, back);
                            }
                        }
                    }
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
