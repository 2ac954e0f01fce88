//! Istio `VirtualService` (networking.istio.io): routes to the canary Service,
//! or with a DestinationRule to the canary subset.
//!
//! Only `spec.http` routes are changed. A route "goes to the stable Service"
//! when one of its destinations' `host` names the stable Service in the
//! Rollout's namespace: `svc`, `svc.ns`, `svc.ns.svc` or
//! `svc.ns.svc.cluster.local`. The canary destination uses the same form of
//! host with the canary Service's name, the same port, and no subset.
//!
//! With subset routing ([`RoutingContext::subsets`]) a stable destination is
//! one to the stable Service's host naming a stable subset; the canary
//! destination is the same host and port with the canary subset. Every
//! subset a route names for that host must exist in the DestinationRule.
//!
//! A step's `requestHeaderModifier` becomes `headers.request` (`set`, `add`,
//! `remove`) on its canary copies of header steps and on the canary
//! destinations of weight steps.
//!
//! A mirror step gives each route to the stable Service `mirror` (the
//! canary destination) and `mirrorPercentage: {value: N}`; a route using the
//! newer `mirrors` list gets the canary appended there instead.

use ramp_api::{HttpHeaderModifier, HttpRouteMatch, PathMatchType, ValueMatchType};
use serde_json::{Map, Value, json};

use super::{
    RoutingContext, StepRouting, TrafficProvider, invalid, service_host_suffix, spec_list,
};
use crate::error::RoutingError;
use crate::observed::api_group;

/// The Istio VirtualService provider.
#[derive(Clone, Copy, Debug, Default)]
pub struct IstioVirtualService;

impl TrafficProvider for IstioVirtualService {
    fn name(&self) -> &'static str {
        "istio-virtualservice"
    }

    fn handles(&self, api_version: &str, kind: &str) -> bool {
        kind == "VirtualService" && api_group(api_version) == "networking.istio.io"
    }

    fn check(
        &self,
        object: &str,
        original_spec: &Value,
        ctx: &RoutingContext,
    ) -> Result<(), RoutingError> {
        let hosts = Hosts::new(ctx);
        check_subsets(object, original_spec, &hosts)?;
        for (i, route) in http_routes(object, original_spec)?.iter().enumerate() {
            let dests = destinations(object, route, &format!("spec.http[{i}]"))?;
            if dests.iter().any(|d| hosts.is_stable(d)) {
                return Ok(());
            }
        }
        Err(no_route(object, ctx))
    }

    fn step_spec(
        &self,
        object: &str,
        original_spec: &Value,
        step: &StepRouting,
        ctx: &RoutingContext,
    ) -> Result<Value, RoutingError> {
        let hosts = Hosts::new(ctx);
        check_subsets(object, original_spec, &hosts)?;
        let mut out = Vec::new();
        let mut found = false;
        for (i, route) in http_routes(object, original_spec)?.iter().enumerate() {
            let field = format!("spec.http[{i}]");
            let dests = destinations(object, route, &field)?;
            let Some(first_stable) = dests.iter().position(|d| hosts.is_stable(d)) else {
                out.push(route.clone());
                continue;
            };
            found = true;
            if !step.matches.is_empty() {
                let mut copy = route.clone();
                let matched = and_matches(object, &field, route.get("match"), &step.matches)?;
                copy["match"] = Value::Array(matched);
                copy["route"] = json!([hosts.canary_destination(&dests[first_stable], None)]);
                if let Some(m) = &step.request_header_modifier {
                    add_request_headers(&mut copy, m);
                }
                out.push(copy);
            }
            let mut kept = route.clone();
            if let Some(w) = step.weight {
                let mut routed = split(&hosts, &dests, i64::from(w));
                if let Some(m) = &step.request_header_modifier {
                    // The canary destinations `split` appended.
                    for d in routed.iter_mut().skip(dests.len()) {
                        add_request_headers(d, m);
                    }
                }
                kept["route"] = Value::Array(routed);
            }
            if let Some(percent) = step.mirror {
                let target =
                    hosts.canary_destination(&dests[first_stable], None)["destination"].clone();
                add_mirror(object, &field, &mut kept, target, percent)?;
            }
            out.push(kept);
        }
        if !found {
            return Err(no_route(object, ctx));
        }
        let mut spec = original_spec.clone();
        spec["http"] = Value::Array(out);
        Ok(spec)
    }

    fn strip_spec(
        &self,
        object: &str,
        live_spec: &Value,
        ctx: &RoutingContext,
    ) -> Result<Value, RoutingError> {
        if live_spec.get("http").is_none() {
            return Ok(live_spec.clone());
        }
        let hosts = Hosts::new(ctx);
        let mut out = Vec::new();
        for (i, route) in http_routes(object, live_spec)?.iter().enumerate() {
            let dests = destinations(object, route, &format!("spec.http[{i}]"))?;
            let (canary, rest): (Vec<&Value>, Vec<&Value>) =
                dests.iter().partition(|d| hosts.is_canary(d));
            let route = &strip_mirror(&hosts, route);
            if canary.is_empty() {
                out.push(route.clone());
                continue;
            }
            if rest.is_empty() {
                // A route ramp inserted for a header step.
                continue;
            }
            let n = dests.len();
            let canary_total: i64 = canary.iter().map(|d| weight_of(d, n)).sum();
            let mut rest: Vec<Value> = rest.into_iter().cloned().collect();
            let stable: Vec<usize> = (0..rest.len())
                .filter(|&k| hosts.is_stable(&rest[k]))
                .collect();
            if !stable.is_empty() {
                let current: Vec<i64> = stable.iter().map(|&k| weight_of(&rest[k], n)).collect();
                let total = current.iter().sum::<i64>() + canary_total;
                for (k, w) in stable.iter().zip(distribute(total, &current)) {
                    rest[*k]["weight"] = json!(w);
                }
            }
            if rest.len() == 1
                && rest[0].get("weight").and_then(Value::as_i64) == Some(100)
                && let Some(d) = rest[0].as_object_mut()
            {
                d.remove("weight");
            }
            let mut kept = route.clone();
            kept["route"] = Value::Array(rest);
            out.push(kept);
        }
        let mut spec = live_spec.clone();
        spec["http"] = Value::Array(out);
        Ok(spec)
    }
}

/// Merges a step's `requestHeaderModifier` into `headers.request` of a route
/// or a destination: `set`/`add` entries by name (the step's win), `remove`
/// names appended once.
fn add_request_headers(target: &mut Value, m: &HttpHeaderModifier) {
    if !target.get("headers").is_some_and(Value::is_object) {
        target["headers"] = json!({});
    }
    if !target["headers"]
        .get("request")
        .is_some_and(Value::is_object)
    {
        target["headers"]["request"] = json!({});
    }
    let req = &mut target["headers"]["request"];
    for (key, list) in [("set", &m.set), ("add", &m.add)] {
        if list.is_empty() {
            continue;
        }
        if !req.get(key).is_some_and(Value::is_object) {
            req[key] = json!({});
        }
        for h in list {
            req[key][h.name.as_str()] = json!(h.value);
        }
    }
    if !m.remove.is_empty() {
        if !req.get("remove").is_some_and(Value::is_array) {
            req["remove"] = json!([]);
        }
        if let Some(list) = req["remove"].as_array_mut() {
            for name in &m.remove {
                if !list.iter().any(|v| v.as_str() == Some(name.as_str())) {
                    list.push(json!(name));
                }
            }
        }
    }
}

fn no_route(object: &str, ctx: &RoutingContext) -> RoutingError {
    let service = ctx.stable_service.clone();
    match &ctx.subsets {
        Some(s) => RoutingError::NoRouteToStableSubset {
            object: object.to_string(),
            subsets: s.stable.join(", "),
            destination_rule: s.destination_rule.clone(),
            service,
        },
        None => RoutingError::NoRouteToService {
            object: object.to_string(),
            expected: format!(
                "a destination host {service}, {service}.<namespace>, {service}.<namespace>.svc or {service}.<namespace>.svc.cluster.local"
            ),
            service,
        },
    }
}

/// With subset routing: every subset a route names for the stable
/// Service's host must be defined in the DestinationRule.
fn check_subsets(object: &str, spec: &Value, hosts: &Hosts<'_>) -> Result<(), RoutingError> {
    let Some(subsets) = &hosts.ctx.subsets else {
        return Ok(());
    };
    for (i, route) in http_routes(object, spec)?.iter().enumerate() {
        let field = format!("spec.http[{i}]");
        for (j, d) in destinations(object, route, &field)?.iter().enumerate() {
            if !hosts.is_stable_host(d) {
                continue;
            }
            let Some(subset) = d.pointer("/destination/subset") else {
                continue;
            };
            let Some(subset) = subset.as_str() else {
                return Err(invalid(
                    object,
                    &format!("{field}.route[{j}].destination.subset"),
                    "must be a string",
                ));
            };
            if !subsets.defined.iter().any(|s| s == subset) {
                let defined = if subsets.defined.is_empty() {
                    "no subsets".to_string()
                } else {
                    subsets.defined.join(", ")
                };
                return Err(RoutingError::UndefinedSubset {
                    object: object.to_string(),
                    field: format!("{field}.route[{j}].destination.subset"),
                    subset: subset.to_string(),
                    defined_in: format!(
                        "{}, the DestinationRule of Service {} (it defines {defined})",
                        subsets.destination_rule, hosts.ctx.stable_service
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Give a route to the stable Service a mirror to the canary.
fn add_mirror(
    object: &str,
    field: &str,
    route: &mut Value,
    target: Value,
    percent: i32,
) -> Result<(), RoutingError> {
    let Some(r) = route.as_object_mut() else {
        return Err(invalid(object, field, "must be an object"));
    };
    let percentage = json!({"value": percent});
    match r.get_mut("mirrors") {
        Some(Value::Array(list)) => {
            list.push(json!({"destination": target, "percentage": percentage}));
            return Ok(());
        }
        Some(Value::Null) | None => {}
        Some(_) => {
            return Err(invalid(
                object,
                &format!("{field}.mirrors"),
                "must be a list",
            ));
        }
    }
    if let Some(existing) = r.get("mirror").filter(|m| !m.is_null()) {
        return Err(RoutingError::ConflictingMirror {
            object: object.to_string(),
            field: format!("{field}.mirror"),
            message: format!(
                "the route already mirrors to {existing}, and `mirror` takes one destination; write it as `mirrors: [{{destination: …}}]` so ramp can add the canary next to it"
            ),
        });
    }
    r.insert("mirror".into(), target);
    r.insert("mirrorPercentage".into(), percentage);
    Ok(())
}

/// A route without the mirrors ramp added.
fn strip_mirror(hosts: &Hosts<'_>, route: &Value) -> Value {
    let mut out = route.clone();
    let Some(r) = out.as_object_mut() else {
        return out;
    };
    let is_canary = |m: &Value| hosts.is_canary(&json!({"destination": m}));
    if r.get("mirror").is_some_and(is_canary) {
        r.remove("mirror");
        r.remove("mirrorPercentage");
    }
    if let Some(Value::Array(list)) = r.get_mut("mirrors") {
        list.retain(|m| !m.get("destination").is_some_and(is_canary));
        if list.is_empty() {
            r.remove("mirrors");
        }
    }
    out
}

fn http_routes<'a>(object: &str, spec: &'a Value) -> Result<&'a Vec<Value>, RoutingError> {
    spec_list(
        object,
        spec,
        "http",
        "routes",
        "ramp changes http routes, and this VirtualService has none",
    )
}

/// The `route` entries of an http route (empty for redirects, delegates...).
fn destinations(object: &str, route: &Value, field: &str) -> Result<Vec<Value>, RoutingError> {
    match route.get("route") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => {
            for (j, d) in items.iter().enumerate() {
                let host = d.pointer("/destination/host");
                if !matches!(host, Some(Value::String(_))) {
                    return Err(invalid(
                        object,
                        &format!("{field}.route[{j}].destination.host"),
                        "must be a string",
                    ));
                }
                if let Some(w) = d.get("weight")
                    && !w.is_i64()
                {
                    return Err(invalid(
                        object,
                        &format!("{field}.route[{j}].weight"),
                        "must be an integer",
                    ));
                }
            }
            Ok(items.clone())
        }
        Some(_) => Err(invalid(object, &format!("{field}.route"), "must be a list")),
    }
}

/// Weight of a destination; a lone destination without weight carries 100.
fn weight_of(dest: &Value, count: usize) -> i64 {
    dest.get("weight")
        .and_then(Value::as_i64)
        .unwrap_or(if count == 1 { 100 } else { 0 })
}

struct Hosts<'a> {
    ctx: &'a RoutingContext,
}

impl<'a> Hosts<'a> {
    fn new(ctx: &'a RoutingContext) -> Self {
        Hosts { ctx }
    }

    /// The suffix after the service name if `host` names `service` in the
    /// Rollout's namespace.
    fn suffix<'h>(&self, host: &'h str, service: &str) -> Option<&'h str> {
        service_host_suffix(host, service, &self.ctx.namespace)
    }

    fn host(dest: &Value) -> &str {
        dest.pointer("/destination/host")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    fn subset(dest: &Value) -> Option<&str> {
        dest.pointer("/destination/subset").and_then(Value::as_str)
    }

    /// The destination's host is the stable Service (any subset).
    fn is_stable_host(&self, dest: &Value) -> bool {
        self.suffix(Self::host(dest), &self.ctx.stable_service)
            .is_some()
    }

    /// The destination reaches the stable pods: the stable Service, or with
    /// subset routing one of its stable subsets.
    fn is_stable(&self, dest: &Value) -> bool {
        if !self.is_stable_host(dest) {
            return false;
        }
        match &self.ctx.subsets {
            None => true,
            Some(s) => Self::subset(dest).is_some_and(|n| s.stable.iter().any(|x| x == n)),
        }
    }

    /// The destination is one ramp adds: the canary Service, or with subset
    /// routing the canary subset of the stable Service.
    fn is_canary(&self, dest: &Value) -> bool {
        if self
            .suffix(Self::host(dest), &self.ctx.canary_service)
            .is_some()
        {
            return true;
        }
        match &self.ctx.subsets {
            Some(s) => self.is_stable_host(dest) && Self::subset(dest) == Some(s.canary.as_str()),
            None => false,
        }
    }

    /// A destination like `stable` (same host form, port and destination
    /// options) that goes to the canary Service, or with subset routing to
    /// the canary subset of the same host.
    fn canary_destination(&self, stable: &Value, weight: Option<i64>) -> Value {
        let mut d = stable.clone();
        match &self.ctx.subsets {
            Some(s) => d["destination"]["subset"] = json!(s.canary),
            None => {
                let host = Self::host(stable);
                let suffix = self.suffix(host, &self.ctx.stable_service).unwrap_or("");
                d["destination"]["host"] = json!(format!("{}{suffix}", self.ctx.canary_service));
                if let Some(dest) = d["destination"].as_object_mut() {
                    dest.remove("subset");
                }
            }
        }
        match weight {
            Some(w) => d["weight"] = json!(w),
            None => {
                if let Some(o) = d.as_object_mut() {
                    o.remove("weight");
                }
            }
        }
        d
    }
}

/// Move `w` percent of the stable destinations' weight to canary
/// destinations (one per port used by the stable destinations), keeping the
/// proportions among stable destinations; other destinations are untouched.
fn split(hosts: &Hosts<'_>, dests: &[Value], w: i64) -> Vec<Value> {
    let n = dests.len();
    let weights: Vec<i64> = dests.iter().map(|d| weight_of(d, n)).collect();
    let stable: Vec<usize> = (0..n).filter(|&i| hosts.is_stable(&dests[i])).collect();
    let stable_weights: Vec<i64> = stable.iter().map(|&i| weights[i]).collect();
    let total: i64 = stable_weights.iter().sum();
    if total == 0 {
        return dests.to_vec();
    }
    let canary_total = (total * w + 50) / 100;
    let mut out = dests.to_vec();
    for (&i, nw) in stable
        .iter()
        .zip(distribute(total - canary_total, &stable_weights))
    {
        out[i]["weight"] = json!(nw);
    }
    // One canary destination per port of the stable destinations.
    let mut groups: Vec<(Value, i64, usize)> = Vec::new();
    for &i in &stable {
        let port = dests[i]
            .pointer("/destination/port")
            .cloned()
            .unwrap_or(Value::Null);
        match groups.iter_mut().find(|g| g.0 == port) {
            Some(g) => g.1 += weights[i],
            None => groups.push((port, weights[i], i)),
        }
    }
    let group_weights: Vec<i64> = groups.iter().map(|g| g.1).collect();
    for (g, cw) in groups.iter().zip(distribute(canary_total, &group_weights)) {
        out.push(hosts.canary_destination(&dests[g.2], Some(cw)));
    }
    out
}

/// Split `total` into integers proportional to `parts` (largest remainder;
/// equal shares when all parts are 0).
pub(crate) fn distribute(total: i64, parts: &[i64]) -> Vec<i64> {
    if parts.is_empty() {
        return Vec::new();
    }
    let sum: i64 = parts.iter().sum();
    let parts: Vec<i64> = if sum == 0 {
        vec![1; parts.len()]
    } else {
        parts.to_vec()
    };
    let sum: i64 = parts.iter().sum();
    let mut out: Vec<i64> = parts.iter().map(|p| total * p / sum).collect();
    let mut left = total - out.iter().sum::<i64>();
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(total * parts[i] % sum), i));
    for i in order {
        if left <= 0 {
            break;
        }
        out[i] += 1;
        left -= 1;
    }
    out
}

/// The route's matches ANDed with the step's (each × each); no route match:
/// the step's matches alone.
fn and_matches(
    object: &str,
    field: &str,
    route_match: Option<&Value>,
    step: &[HttpRouteMatch],
) -> Result<Vec<Value>, RoutingError> {
    let step: Vec<Map<String, Value>> = step.iter().map(istio_match).collect();
    let originals: Vec<&Map<String, Value>> = match route_match {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(j, m)| {
                m.as_object().ok_or_else(|| {
                    invalid(object, &format!("{field}.match[{j}]"), "must be an object")
                })
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(invalid(object, &format!("{field}.match"), "must be a list")),
    };
    if originals.is_empty() {
        return Ok(step.into_iter().map(Value::Object).collect());
    }
    let mut out = Vec::with_capacity(originals.len() * step.len());
    for (j, original) in originals.iter().enumerate() {
        for s in &step {
            out.push(Value::Object(merge_match(
                object,
                &format!("{field}.match[{j}]"),
                original,
                s,
            )?));
        }
    }
    Ok(out)
}

fn merge_match(
    object: &str,
    field: &str,
    original: &Map<String, Value>,
    step: &Map<String, Value>,
) -> Result<Map<String, Value>, RoutingError> {
    let mut merged = original.clone();
    for (key, value) in step {
        match (key.as_str(), value) {
            ("headers" | "queryParams", Value::Object(conditions)) => {
                let target = merged
                    .entry(key.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                let Some(target) = target.as_object_mut() else {
                    return Err(invalid(
                        object,
                        &format!("{field}.{key}"),
                        "must be an object",
                    ));
                };
                for (name, cond) in conditions {
                    let existing = target
                        .iter()
                        .find(|(k, _)| {
                            (key == "headers" && k.eq_ignore_ascii_case(name)) || *k == name
                        })
                        .map(|(_, v)| v.clone());
                    match existing {
                        Some(e) if &e != cond => {
                            return Err(RoutingError::ConflictingMatch {
                                object: object.to_string(),
                                field: format!("{field}.{key}.{name}"),
                                message: format!(
                                    "the route already requires {e}; the step's condition {cond} on the same name cannot be added to it"
                                ),
                            });
                        }
                        Some(_) => {}
                        None => {
                            target.insert(name.clone(), cond.clone());
                        }
                    }
                }
            }
            _ => match merged.get(key) {
                Some(e) if e != value => {
                    return Err(RoutingError::ConflictingMatch {
                        object: object.to_string(),
                        field: format!("{field}.{key}"),
                        message: format!(
                            "the route already requires {e}; the step's condition {value} cannot be added to it"
                        ),
                    });
                }
                _ => {
                    merged.insert(key.clone(), value.clone());
                }
            },
        }
    }
    Ok(merged)
}

fn string_match(kind: Option<ValueMatchType>, value: &str) -> Value {
    match kind.unwrap_or_default() {
        ValueMatchType::Exact => json!({"exact": value}),
        ValueMatchType::RegularExpression => json!({"regex": value}),
    }
}

/// A ramp match as an Istio `HTTPMatchRequest`.
fn istio_match(m: &HttpRouteMatch) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(path) = &m.path {
        let key = match path.type_.unwrap_or_default() {
            PathMatchType::Exact => "exact",
            PathMatchType::PathPrefix => "prefix",
            PathMatchType::RegularExpression => "regex",
        };
        out.insert("uri".into(), json!({key: path.value}));
    }
    if !m.headers.is_empty() {
        let headers: Map<String, Value> = m
            .headers
            .iter()
            .map(|h| (h.name.to_ascii_lowercase(), string_match(h.type_, &h.value)))
            .collect();
        out.insert("headers".into(), Value::Object(headers));
    }
    if !m.query_params.is_empty() {
        let params: Map<String, Value> = m
            .query_params
            .iter()
            .map(|q| (q.name.clone(), string_match(q.type_, &q.value)))
            .collect();
        out.insert("queryParams".into(), Value::Object(params));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distribute_keeps_the_total_and_the_proportions() {
        assert_eq!(distribute(50, &[100]), vec![50]);
        assert_eq!(distribute(50, &[60, 40]), vec![30, 20]);
        assert_eq!(distribute(67, &[60, 40]), vec![40, 27]);
        assert_eq!(distribute(67, &[50, 50]), vec![34, 33]);
        assert_eq!(distribute(10, &[0, 0]), vec![5, 5]);
        assert_eq!(distribute(0, &[3, 7]), vec![0, 0]);
        assert!(distribute(5, &[]).is_empty());
    }

    fn ctx() -> RoutingContext {
        RoutingContext {
            namespace: "default".into(),
            stable_service: "service-demo".into(),
            canary_service: "service-demo-canary".into(),
            ..Default::default()
        }
    }

    #[test]
    fn hosts_match_only_the_service_in_the_rollout_namespace() {
        let c = ctx();
        let h = Hosts::new(&c);
        let d = |host: &str| json!({"destination": {"host": host}});
        for host in [
            "service-demo",
            "service-demo.default",
            "service-demo.default.svc",
            "service-demo.default.svc.cluster.local",
        ] {
            assert!(h.is_stable(&d(host)), "{host}");
        }
        for host in [
            "service-demo.other",
            "service-demo.other.svc.cluster.local",
            "service-demo-canary",
            "service-demo.default.svc.example.com",
            "service-demox",
            "service-demo.com",
        ] {
            assert!(!h.is_stable(&d(host)), "{host}");
        }
        assert!(h.is_canary(&d("service-demo-canary.default.svc.cluster.local")));
        assert_eq!(
            h.canary_destination(&d("service-demo.default.svc.cluster.local"), None),
            d("service-demo-canary.default.svc.cluster.local")
        );
    }
}
