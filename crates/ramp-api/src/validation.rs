//! Spec validation: pure functions returning every problem with its field path.
//!
//! The admission webhook and the controller both call these; a Rollout that
//! fails validation is never acted on.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::{
    CanaryStep, CustomNetworkRef, HttpHeaderModifier, HttpRouteMatch, PathMatchType, Rollout,
    RolloutPhase, TrafficRoutingRef, ValueMatchType,
};

/// One problem in a Rollout spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FieldError {
    /// Field path, e.g. `spec.strategy.canary.steps[1].traffic`.
    pub path: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl FieldError {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// A routing object kind ramp can drive, with the API versions it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkRefKind {
    /// API group, e.g. `networking.istio.io`.
    pub group: &'static str,
    /// Kind, e.g. `VirtualService`.
    pub kind: &'static str,
    /// Accepted versions.
    pub versions: &'static [&'static str],
}

/// Routing object kinds accepted in `customNetworkRefs`.
pub const SUPPORTED_NETWORK_REFS: &[NetworkRefKind] = &[
    NetworkRefKind {
        group: "networking.istio.io",
        kind: "VirtualService",
        versions: &["v1", "v1beta1", "v1alpha3"],
    },
    NetworkRefKind {
        group: "networking.istio.io",
        kind: "DestinationRule",
        versions: &["v1", "v1beta1", "v1alpha3"],
    },
    NetworkRefKind {
        group: "gateway.networking.k8s.io",
        kind: "HTTPRoute",
        versions: &["v1", "v1beta1"],
    },
];

/// Find the supported kind a reference names, if any.
pub fn network_ref_kind(r: &CustomNetworkRef) -> Option<&'static NetworkRefKind> {
    let (group, version) = r.api_version.split_once('/')?;
    SUPPORTED_NETWORK_REFS
        .iter()
        .find(|k| k.group == group && k.kind == r.kind && k.versions.contains(&version))
}

/// A parsed `"NN%"` value.
pub fn parse_percent(s: &str) -> Option<i32> {
    let n = s.trim().strip_suffix('%')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || n.len() > 4 {
        return None;
    }
    n.parse().ok()
}

/// Validate a Rollout; returns every problem found (empty when valid).
pub fn validate_rollout(ro: &Rollout) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = &ro.spec;

    let w = &spec.workload_ref;
    if w.api_version != "apps/v1" || w.kind != "Deployment" {
        errs.push(FieldError::new(
            "spec.workloadRef",
            format!(
                "unsupported workload {}/{}: only apiVersion apps/v1, kind Deployment is supported",
                w.api_version, w.kind
            ),
        ));
    }
    check_name(&mut errs, "spec.workloadRef.name", &w.name);

    let Some(canary) = &spec.strategy.canary else {
        errs.push(FieldError::new(
            "spec.strategy.canary",
            "required: ramp rolls out with a canary strategy",
        ));
        return errs;
    };
    if !canary.extra_workload() {
        errs.push(FieldError::new(
            "spec.strategy.canary.enableExtraWorkloadForCanary",
            "false is not supported: ramp runs the canary as a separate `<workload>-canary` Deployment; remove the field or set it to true",
        ));
    }

    if canary.steps.is_empty() {
        errs.push(FieldError::new(
            "spec.strategy.canary.steps",
            "at least one step is required",
        ));
    }
    let mut prev: Option<(usize, &IntOrString)> = None;
    for (i, step) in canary.steps.iter().enumerate() {
        let path = format!("spec.strategy.canary.steps[{i}]");
        validate_step(&mut errs, &path, step);
        if let Some(cur) = &step.replicas {
            if let Some((pi, p)) = prev
                && let (Some(a), Some(b)) = (comparable(p), comparable(cur))
                && a.0 == b.0
                && b.1 < a.1
            {
                errs.push(FieldError::new(
                    format!("{path}.replicas"),
                    format!(
                        "must not decrease: {} is less than steps[{pi}].replicas {}",
                        show(cur),
                        show(p)
                    ),
                ));
            }
            prev = Some((i, cur));
        }
    }

    if let Some(a) = &canary.analysis {
        crate::analysis::validate_analysis(&mut errs, "spec.strategy.canary.analysis", a);
    }

    match canary.traffic_routings.len() {
        0 => errs.push(FieldError::new(
            "spec.strategy.canary.trafficRoutings",
            "exactly one traffic routing is required (a service and the routing objects that send traffic to it)",
        )),
        1 => validate_routing(
            &mut errs,
            "spec.strategy.canary.trafficRoutings[0]",
            &canary.traffic_routings[0],
        ),
        n => errs.push(FieldError::new(
            "spec.strategy.canary.trafficRoutings",
            format!("exactly one traffic routing is supported, got {n}"),
        )),
    }
    errs
}

/// Validate an update: `validate_rollout` on the new object, plus the fields
/// that cannot change while a rollout is in progress.
pub fn validate_rollout_update(old: &Rollout, new: &Rollout) -> Vec<FieldError> {
    let mut errs = validate_rollout(new);
    let progressing = old
        .status
        .as_ref()
        .and_then(|s| s.phase)
        .is_some_and(|p| p == RolloutPhase::Progressing);
    if !progressing {
        return errs;
    }
    let hint = "cannot change while a rollout is in progress; finish, abort or disable it first";
    if old.spec.workload_ref != new.spec.workload_ref {
        errs.push(FieldError::new("spec.workloadRef", hint));
    }
    let (oc, nc) = (&old.spec.strategy.canary, &new.spec.strategy.canary);
    let routings =
        |c: &Option<crate::CanaryStrategy>| c.as_ref().map(|c| c.traffic_routings.clone());
    if routings(oc) != routings(nc) {
        errs.push(FieldError::new(
            "spec.strategy.canary.trafficRoutings",
            hint,
        ));
    }
    let steps = |c: &Option<crate::CanaryStrategy>| c.as_ref().map_or(0, |c| c.steps.len());
    if steps(oc) != steps(nc) {
        errs.push(FieldError::new(
            "spec.strategy.canary.steps",
            format!(
                "the number of steps {hint} (was {}, now {})",
                steps(oc),
                steps(nc)
            ),
        ));
    }
    errs
}

fn validate_step(errs: &mut Vec<FieldError>, path: &str, step: &CanaryStep) {
    match &step.replicas {
        None => errs.push(FieldError::new(
            format!("{path}.replicas"),
            "required: a number of canary pods (>= 1) or a percentage of the workload's replicas (\"NN%\", 0 < NN <= 100)",
        )),
        Some(IntOrString::Int(n)) if *n < 1 => errs.push(FieldError::new(
            format!("{path}.replicas"),
            format!("invalid value {n}: must be at least 1"),
        )),
        Some(IntOrString::String(s)) => match parse_percent(s) {
            Some(p) if (1..=100).contains(&p) => {}
            _ => errs.push(FieldError::new(
                format!("{path}.replicas"),
                format!("invalid value {s:?}: must be an integer or a percentage \"NN%\" with 0 < NN <= 100"),
            )),
        },
        Some(IntOrString::Int(_)) => {}
    }
    if let Some(t) = &step.traffic {
        match parse_percent(t) {
            Some(p) if (1..=100).contains(&p) => {}
            _ => errs.push(FieldError::new(
                format!("{path}.traffic"),
                format!("invalid value {t:?}: must be a percentage \"NN%\" with 0 < NN <= 100"),
            )),
        }
        if !step.matches.is_empty() {
            errs.push(FieldError::new(
                format!("{path}.matches"),
                "a step routes either by traffic weight or by request matches, not both: split it into two steps",
            ));
        }
    }
    for (j, m) in step.matches.iter().enumerate() {
        validate_match(errs, &format!("{path}.matches[{j}]"), m);
    }
    if let Some(m) = &step.mirror
        && !(1..=100).contains(&m.percent)
    {
        errs.push(FieldError::new(
            format!("{path}.mirror.percent"),
            format!(
                "invalid value {}: must be more than 0 and at most 100 (the percent of stable requests copied to the canary)",
                m.percent
            ),
        ));
    }
    if let Some(m) = &step.request_header_modifier {
        validate_header_modifier(errs, &format!("{path}.requestHeaderModifier"), m);
        if step.matches.is_empty() && step.traffic.is_none() {
            errs.push(FieldError::new(
                format!("{path}.requestHeaderModifier"),
                "applies to the canary routes of a step: the step needs matches or traffic",
            ));
        }
    }
    if let Some(d) = step.pause.as_ref().and_then(|p| p.duration)
        && d < 0
    {
        errs.push(FieldError::new(
            format!("{path}.pause.duration"),
            format!("invalid value {d}: seconds must be >= 0 (omit it to wait for approval)"),
        ));
    }
}

/// Gateway API's limits for an `HTTPHeaderFilter`: at most 16 entries per
/// list, valid header names, each name at most once per list.
fn validate_header_modifier(errs: &mut Vec<FieldError>, path: &str, m: &HttpHeaderModifier) {
    if m.set.is_empty() && m.add.is_empty() && m.remove.is_empty() {
        errs.push(FieldError::new(
            path,
            "needs at least one of set, add or remove",
        ));
    }
    let lists: [(&str, Vec<&str>); 3] = [
        ("set", m.set.iter().map(|h| h.name.as_str()).collect()),
        ("add", m.add.iter().map(|h| h.name.as_str()).collect()),
        ("remove", m.remove.iter().map(String::as_str).collect()),
    ];
    for (list, names) in lists {
        if names.len() > 16 {
            errs.push(FieldError::new(
                format!("{path}.{list}"),
                format!("{} entries: at most 16 are allowed", names.len()),
            ));
        }
        let mut seen: Vec<String> = Vec::new();
        for (k, name) in names.iter().enumerate() {
            let p = if list == "remove" {
                format!("{path}.{list}[{k}]")
            } else {
                format!("{path}.{list}[{k}].name")
            };
            if name.is_empty() || !name.bytes().all(is_token_char) {
                errs.push(FieldError::new(
                    p,
                    format!("invalid header name {name:?}: only letters, digits and !#$%&'*+-.^_`|~ are allowed"),
                ));
                continue;
            }
            let lower = name.to_ascii_lowercase();
            if seen.contains(&lower) {
                errs.push(FieldError::new(
                    p,
                    format!("header {name:?} is listed twice (names are case-insensitive)"),
                ));
            }
            seen.push(lower);
        }
    }
}

fn validate_match(errs: &mut Vec<FieldError>, path: &str, m: &HttpRouteMatch) {
    if m.headers.is_empty() && m.query_params.is_empty() && m.path.is_none() {
        errs.push(FieldError::new(
            path,
            "a match needs at least one of headers, queryParams or path",
        ));
    }
    for (k, h) in m.headers.iter().enumerate() {
        let p = format!("{path}.headers[{k}]");
        if h.name.trim().is_empty() {
            errs.push(FieldError::new(
                format!("{p}.name"),
                "must not be empty: name the header to match",
            ));
        } else if !h.name.bytes().all(is_token_char) {
            errs.push(FieldError::new(
                format!("{p}.name"),
                format!("invalid header name {:?}: only letters, digits and !#$%&'*+-.^_`|~ are allowed", h.name),
            ));
        }
        check_value(errs, &p, h.type_, &h.value);
    }
    for (k, q) in m.query_params.iter().enumerate() {
        let p = format!("{path}.queryParams[{k}]");
        if q.name.trim().is_empty() {
            errs.push(FieldError::new(
                format!("{p}.name"),
                "must not be empty: name the query parameter to match",
            ));
        }
        check_value(errs, &p, q.type_, &q.value);
    }
    if let Some(pm) = &m.path {
        let p = format!("{path}.path");
        match pm.type_.unwrap_or_default() {
            PathMatchType::RegularExpression => check_regex(errs, &p, &pm.value),
            _ if !pm.value.starts_with('/') => errs.push(FieldError::new(
                format!("{p}.value"),
                format!("invalid path {:?}: must start with '/'", pm.value),
            )),
            _ => {}
        }
    }
}

fn check_value(errs: &mut Vec<FieldError>, path: &str, ty: Option<ValueMatchType>, value: &str) {
    match ty.unwrap_or_default() {
        ValueMatchType::Exact if value.is_empty() => errs.push(FieldError::new(
            format!("{path}.value"),
            "must not be empty for an Exact match",
        )),
        ValueMatchType::Exact => {}
        ValueMatchType::RegularExpression => check_regex(errs, path, value),
    }
}

fn check_regex(errs: &mut Vec<FieldError>, path: &str, value: &str) {
    if let Err(e) = regex::Regex::new(value) {
        let first = e.to_string();
        let detail = first.lines().last().unwrap_or_default().trim();
        errs.push(FieldError::new(
            format!("{path}.value"),
            format!("invalid regular expression {value:?}: {detail}"),
        ));
    }
}

fn validate_routing(errs: &mut Vec<FieldError>, path: &str, r: &TrafficRoutingRef) {
    check_name(errs, &format!("{path}.service"), &r.service);
    if let Some(g) = r.grace_period_seconds
        && g < 0
    {
        errs.push(FieldError::new(
            format!("{path}.gracePeriodSeconds"),
            format!("invalid value {g}: must be >= 0"),
        ));
    }
    let http_route_name = r
        .gateway
        .as_ref()
        .and_then(|g| g.http_route_name.as_deref());
    if let Some(g) = &r.gateway {
        match &g.http_route_name {
            None => errs.push(FieldError::new(
                format!("{path}.gateway.httpRouteName"),
                "required: the name of the HTTPRoute to change (or remove `gateway`)",
            )),
            Some(name) => check_name(errs, &format!("{path}.gateway.httpRouteName"), name),
        }
    }
    if r.custom_network_refs.is_empty() && http_route_name.is_none() {
        errs.push(FieldError::new(
            format!("{path}.customNetworkRefs"),
            "at least one routing object is required (an Istio VirtualService, or a Gateway API HTTPRoute here or in gateway.httpRouteName)",
        ));
    }
    let allowed = SUPPORTED_NETWORK_REFS
        .iter()
        .map(|k| format!("{} {}/{{{}}}", k.kind, k.group, k.versions.join(",")))
        .collect::<Vec<_>>()
        .join("; ");
    for (i, n) in r.custom_network_refs.iter().enumerate() {
        let p = format!("{path}.customNetworkRefs[{i}]");
        if network_ref_kind(n).is_none() {
            errs.push(FieldError::new(
                p.clone(),
                format!(
                    "unsupported routing object {} {}: supported are {allowed}",
                    n.api_version, n.kind
                ),
            ));
        }
        check_name(errs, &format!("{p}.name"), &n.name);
        if r.custom_network_refs[..i]
            .iter()
            .any(|o| o.kind == n.kind && o.name == n.name)
        {
            errs.push(FieldError::new(
                p.clone(),
                format!("{} {:?} is listed twice", n.kind, n.name),
            ));
        }
        if n.kind == "HTTPRoute" && Some(n.name.as_str()) == http_route_name {
            errs.push(FieldError::new(
                p,
                format!(
                    "HTTPRoute {:?} is also named by gateway.httpRouteName: list it once",
                    n.name
                ),
            ));
        }
    }
    validate_subset_routing(errs, path, r, http_route_name.is_some());
}

/// A DestinationRule switches the VirtualServices to subset routing: it
/// needs a VirtualService, cannot be combined with HTTPRoutes (they have no
/// subsets) and is the only one for the Service's host.
fn validate_subset_routing(
    errs: &mut Vec<FieldError>,
    path: &str,
    r: &TrafficRoutingRef,
    gateway_route: bool,
) {
    let of_kind = |kind: &str| {
        r.custom_network_refs
            .iter()
            .enumerate()
            .filter(|(_, n)| n.kind == kind && network_ref_kind(n).is_some())
            .map(|(i, _)| i)
            .collect::<Vec<_>>()
    };
    let rules = of_kind("DestinationRule");
    let services = of_kind("VirtualService");
    let routes = of_kind("HTTPRoute");
    if let Some(&second) = rules.get(1) {
        errs.push(FieldError::new(
            format!("{path}.customNetworkRefs[{second}]"),
            format!(
                "only one DestinationRule is allowed (customNetworkRefs[{}] is one already): Istio merges several DestinationRules for one host unpredictably; keep the one defining the Service's subsets",
                rules[0]
            ),
        ));
    }
    if let Some(&first) = rules.first() {
        if services.is_empty() {
            errs.push(FieldError::new(
                format!("{path}.customNetworkRefs[{first}]"),
                "a DestinationRule needs a VirtualService next to it: ramp routes to its subsets from the VirtualService's routes; add the VirtualService to customNetworkRefs",
            ));
        }
        if !routes.is_empty() || gateway_route {
            errs.push(FieldError::new(
                format!("{path}.customNetworkRefs[{first}]"),
                "a DestinationRule (subset routing) cannot be combined with HTTPRoutes, which route to Services and have no subsets: use either VirtualService + DestinationRule, or HTTPRoutes",
            ));
        }
    }
    if let Some(name) = &r.canary_subset_name {
        if rules.is_empty() {
            errs.push(FieldError::new(
                format!("{path}.canarySubsetName"),
                "only used with subset routing: add the DestinationRule to customNetworkRefs, or remove canarySubsetName",
            ));
        }
        if !is_dns_label(name) {
            errs.push(FieldError::new(
                format!("{path}.canarySubsetName"),
                format!("invalid subset name {name:?}: must be a lowercase RFC 1123 label (a-z, 0-9, '-'), at most 63 characters"),
            ));
        }
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty() && !s.contains('.') && is_dns_subdomain(s)
}

fn check_name(errs: &mut Vec<FieldError>, path: &str, name: &str) {
    if name.is_empty() {
        errs.push(FieldError::new(path, "must not be empty"));
    } else if !is_dns_subdomain(name) {
        errs.push(FieldError::new(
            path,
            format!("invalid name {name:?}: must be a lowercase RFC 1123 name (a-z, 0-9, '-', '.'), at most 253 characters"),
        ));
    }
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// (is_percent, value) when a replicas value can be compared.
fn comparable(v: &IntOrString) -> Option<(bool, i32)> {
    match v {
        IntOrString::Int(n) => Some((false, *n)),
        IntOrString::String(s) => parse_percent(s).map(|p| (true, p)),
    }
}

fn show(v: &IntOrString) -> String {
    match v {
        IntOrString::Int(n) => n.to_string(),
        IntOrString::String(s) => format!("{s:?}"),
    }
}
