//! Gateway API `HTTPRoute` (gateway.networking.k8s.io): routes to the canary
//! Service.
//!
//! The route may be attached to a Gateway or, in the mesh (GAMMA) form, to
//! the Service itself (`parentRefs: [{group: "", kind: Service, name: …}]`);
//! ramp only looks at `spec.rules`. A rule "reaches the stable Service" when
//! one of its `backendRefs` is the stable Service (group `""`, kind
//! `Service`, no other namespace). In each such rule:
//! - **weight step** `w`: a stable backend of weight `s` gets `s·(100−w)`, a
//!   canary backend (one per port, a copy of the stable backend with the
//!   canary Service's name) gets the stable backends' total times `w`, and
//!   other backends `×100`, so the stable share moves exactly `w`% and all
//!   proportions are kept (one backend of weight 1: stable `100−w`, canary
//!   `w`);
//! - **match step**: a copy of the rule (without its `name`) just before it,
//!   with only the canary backend and the rule's matches ANDed with the
//!   step's (each × each; paths combine when one contains the other);
//! - **mirror step**: a `RequestMirror` filter to the canary Service, with
//!   `percent` when below 100 (100 is the filter's default).
//!
//! Gateway API orders rules by how specific their matches are, not by
//! position; an ANDed match is always more specific than the rule it came
//! from, so matching requests reach the canary.
//!
//! The API server fills in defaults (backendRef `group`, `kind`, `weight`;
//! match `path`, header `type`); ramp writes them explicitly in everything it
//! adds, so what it writes is what the server stores.

use ramp_api::{HttpHeaderModifier, HttpRouteMatch, PathMatchType, ValueMatchType};
use serde_json::{Map, Value, json};

use super::istio::distribute;
use super::{RoutingContext, StepRouting, TrafficProvider, invalid, spec_list};
use crate::error::RoutingError;
use crate::observed::api_group;

/// Gateway API's limits on an HTTPRoute.
const MAX_RULES: usize = 16;
const MAX_MATCHES: usize = 64;
const MAX_FILTERS: usize = 16;
const MAX_WEIGHT: i64 = 1_000_000;

/// The Gateway API HTTPRoute provider.
#[derive(Clone, Copy, Debug, Default)]
pub struct GatewayHttpRoute;

impl TrafficProvider for GatewayHttpRoute {
    fn name(&self) -> &'static str {
        "gateway-httproute"
    }

    fn handles(&self, api_version: &str, kind: &str) -> bool {
        kind == "HTTPRoute" && api_group(api_version) == "gateway.networking.k8s.io"
    }

    fn check(
        &self,
        object: &str,
        original_spec: &Value,
        ctx: &RoutingContext,
    ) -> Result<(), RoutingError> {
        for (i, rule) in rules(object, original_spec)?.iter().enumerate() {
            let refs = backend_refs(object, rule, &format!("spec.rules[{i}]"))?;
            if refs.iter().any(|b| is_service(b, &ctx.stable_service, ctx)) {
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
        let mut out = Vec::new();
        let mut found = false;
        for (i, rule) in rules(object, original_spec)?.iter().enumerate() {
            let field = format!("spec.rules[{i}]");
            let refs = backend_refs(object, rule, &field)?;
            let Some(first_stable) = refs
                .iter()
                .position(|b| is_service(b, &ctx.stable_service, ctx))
            else {
                out.push(rule.clone());
                continue;
            };
            found = true;
            if !step.matches.is_empty() {
                let mut copy = rule.clone();
                if let Some(o) = copy.as_object_mut() {
                    // Rule names are unique within a route; the copy goes without.
                    o.remove("name");
                }
                let matched = and_matches(object, &field, rule.get("matches"), &step.matches)?;
                if matched.len() > MAX_MATCHES {
                    return Err(invalid(
                        object,
                        &format!("{field}.matches"),
                        &format!(
                            "the step's matches ANDed with this rule's give {} matches; an HTTPRoute rule allows at most {MAX_MATCHES}",
                            matched.len()
                        ),
                    ));
                }
                copy["matches"] = Value::Array(matched);
                copy["backendRefs"] = json!([canary_ref(&refs[first_stable], ctx, 1)]);
                if let Some(m) = &step.request_header_modifier {
                    add_header_filter(object, &format!("{field}.filters"), &mut copy, m)?;
                }
                out.push(copy);
            }
            let mut kept = rule.clone();
            if let Some(w) = step.weight {
                let mut split = split(object, &field, &refs, i64::from(w), ctx)?;
                if let Some(m) = &step.request_header_modifier {
                    // The canary backendRefs `split` appended.
                    for (k, b) in split.iter_mut().enumerate().skip(refs.len()) {
                        add_header_filter(
                            object,
                            &format!("{field}.backendRefs[{k}].filters"),
                            b,
                            m,
                        )?;
                    }
                }
                kept["backendRefs"] = Value::Array(split);
            }
            if let Some(percent) = step.mirror {
                add_mirror(object, &field, &mut kept, &refs[first_stable], percent, ctx)?;
            }
            out.push(kept);
        }
        if !found {
            return Err(no_route(object, ctx));
        }
        if out.len() > MAX_RULES {
            return Err(invalid(
                object,
                "spec.rules",
                &format!(
                    "the step needs {} rules (a canary copy before each rule reaching Service {}), and an HTTPRoute allows at most {MAX_RULES}; split the route into several HTTPRoutes",
                    out.len(),
                    ctx.stable_service
                ),
            ));
        }
        let mut spec = original_spec.clone();
        spec["rules"] = Value::Array(out);
        Ok(spec)
    }

    fn strip_spec(
        &self,
        object: &str,
        live_spec: &Value,
        ctx: &RoutingContext,
    ) -> Result<Value, RoutingError> {
        if live_spec.get("rules").is_none() {
            return Ok(live_spec.clone());
        }
        let canary = &ctx.canary_service;
        let mut out = Vec::new();
        for (i, rule) in rules(object, live_spec)?.iter().enumerate() {
            let refs = backend_refs(object, rule, &format!("spec.rules[{i}]"))?;
            let is_canary = |b: &Value| is_service(b, canary, ctx);
            if !refs.is_empty() && refs.iter().all(is_canary) {
                // A rule ramp inserted for a match step.
                continue;
            }
            let mut kept = strip_mirror(rule, ctx);
            if refs.iter().any(is_canary) {
                kept["backendRefs"] = Value::Array(give_back(&refs, ctx));
            }
            out.push(kept);
        }
        let mut spec = live_spec.clone();
        spec["rules"] = Value::Array(out);
        Ok(spec)
    }
}

/// Merges a step's `requestHeaderModifier` into the `RequestHeaderModifier`
/// filter of a rule or backendRef (Gateway API allows one per list), adding
/// the filter when there is none: `set`/`add` entries by name
/// (case-insensitive; the step's win), `remove` names appended once.
fn add_header_filter(
    object: &str,
    field: &str,
    target: &mut Value,
    m: &HttpHeaderModifier,
) -> Result<(), RoutingError> {
    if !target.get("filters").is_some_and(Value::is_array) {
        target["filters"] = json!([]);
    }
    let Some(filters) = target["filters"].as_array_mut() else {
        return Ok(());
    };
    let pos = match filters
        .iter()
        .position(|f| f.get("type").and_then(Value::as_str) == Some("RequestHeaderModifier"))
    {
        Some(p) => p,
        None => {
            if filters.len() >= MAX_FILTERS {
                return Err(invalid(
                    object,
                    field,
                    &format!(
                        "the step's requestHeaderModifier needs one more filter, and Gateway API allows at most {MAX_FILTERS}"
                    ),
                ));
            }
            filters.push(json!({"type": "RequestHeaderModifier", "requestHeaderModifier": {}}));
            filters.len() - 1
        }
    };
    let hm = &mut filters[pos]["requestHeaderModifier"];
    if !hm.is_object() {
        *hm = json!({});
    }
    for (key, list) in [("set", &m.set), ("add", &m.add)] {
        if list.is_empty() {
            continue;
        }
        if !hm.get(key).is_some_and(Value::is_array) {
            hm[key] = json!([]);
        }
        if let Some(entries) = hm[key].as_array_mut() {
            for h in list {
                entries.retain(|e| {
                    !e.get("name")
                        .and_then(Value::as_str)
                        .is_some_and(|n| n.eq_ignore_ascii_case(&h.name))
                });
                entries.push(json!({"name": h.name, "value": h.value}));
            }
        }
    }
    if !m.remove.is_empty() {
        if !hm.get("remove").is_some_and(Value::is_array) {
            hm["remove"] = json!([]);
        }
        if let Some(entries) = hm["remove"].as_array_mut() {
            for name in &m.remove {
                if !entries
                    .iter()
                    .any(|v| v.as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))
                {
                    entries.push(json!(name));
                }
            }
        }
    }
    Ok(())
}

fn no_route(object: &str, ctx: &RoutingContext) -> RoutingError {
    RoutingError::NoRouteToService {
        object: object.to_string(),
        service: ctx.stable_service.clone(),
        expected: format!(
            "a rule with a backendRef to Service {} in namespace {}",
            ctx.stable_service, ctx.namespace
        ),
    }
}

fn rules<'a>(object: &str, spec: &'a Value) -> Result<&'a Vec<Value>, RoutingError> {
    spec_list(
        object,
        spec,
        "rules",
        "rules",
        "ramp changes the rules of an HTTPRoute, and this one has none",
    )
}

/// The `backendRefs` of a rule (empty for redirects and the like).
fn backend_refs(object: &str, rule: &Value, field: &str) -> Result<Vec<Value>, RoutingError> {
    match rule.get("backendRefs") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => {
            for (j, b) in items.iter().enumerate() {
                if !matches!(b.get("name"), Some(Value::String(_))) {
                    return Err(invalid(
                        object,
                        &format!("{field}.backendRefs[{j}].name"),
                        "must be a string",
                    ));
                }
                if let Some(w) = b.get("weight")
                    && !w.is_i64()
                {
                    return Err(invalid(
                        object,
                        &format!("{field}.backendRefs[{j}].weight"),
                        "must be an integer",
                    ));
                }
            }
            Ok(items.clone())
        }
        Some(_) => Err(invalid(
            object,
            &format!("{field}.backendRefs"),
            "must be a list",
        )),
    }
}

/// Whether a backendRef names Service `name` in the Rollout's namespace.
fn is_service(b: &Value, name: &str, ctx: &RoutingContext) -> bool {
    let field = |k: &str| b.get(k).and_then(Value::as_str);
    field("name") == Some(name)
        && field("group").is_none_or(str::is_empty)
        && field("kind").is_none_or(|k| k == "Service")
        && field("namespace").is_none_or(|n| n == ctx.namespace)
}

/// A backendRef's weight (Gateway API's default is 1).
fn weight_of(b: &Value) -> i64 {
    b.get("weight").and_then(Value::as_i64).unwrap_or(1)
}

/// A copy of the stable backendRef that names the canary Service, with the
/// server's defaults explicit.
fn canary_ref(stable: &Value, ctx: &RoutingContext, weight: i64) -> Value {
    let mut b = stable.clone();
    b["name"] = json!(ctx.canary_service);
    b["group"] = json!("");
    b["kind"] = json!("Service");
    b["weight"] = json!(weight);
    b
}

/// Move `w`% of the stable backends' share to canary backends (one per port).
fn split(
    object: &str,
    field: &str,
    refs: &[Value],
    w: i64,
    ctx: &RoutingContext,
) -> Result<Vec<Value>, RoutingError> {
    let stable: Vec<usize> = (0..refs.len())
        .filter(|&i| is_service(&refs[i], &ctx.stable_service, ctx))
        .collect();
    let stable_total: i64 = stable.iter().map(|&i| weight_of(&refs[i])).sum();
    if stable_total == 0 {
        return Ok(refs.to_vec());
    }
    let mut out: Vec<Value> = refs.to_vec();
    for (i, b) in out.iter_mut().enumerate() {
        let share = if stable.contains(&i) { 100 - w } else { 100 };
        b["weight"] = json!(weight_of(&refs[i]) * share);
    }
    // One canary backend per port of the stable backends.
    let mut groups: Vec<(Value, i64, usize)> = Vec::new();
    for &i in &stable {
        let port = refs[i].get("port").cloned().unwrap_or(Value::Null);
        match groups.iter_mut().find(|g| g.0 == port) {
            Some(g) => g.1 += weight_of(&refs[i]),
            None => groups.push((port, weight_of(&refs[i]), i)),
        }
    }
    for (_, group_weight, first) in &groups {
        out.push(canary_ref(&refs[*first], ctx, group_weight * w));
    }
    if let Some(max) = out.iter().map(weight_of).max()
        && max > MAX_WEIGHT
    {
        return Err(invalid(
            object,
            &format!("{field}.backendRefs"),
            &format!(
                "ramp scales the weights by 100 to move whole percents, which gives {max}, above Gateway API's limit of {MAX_WEIGHT}; use smaller weights (their proportions are what counts)"
            ),
        ));
    }
    Ok(out)
}

/// The backendRefs without canary backends: their weight goes back to the
/// stable backends (in proportion), then all weights are divided by their
/// greatest common divisor, which undoes [`split`].
fn give_back(refs: &[Value], ctx: &RoutingContext) -> Vec<Value> {
    let canary_total: i64 = refs
        .iter()
        .filter(|b| is_service(b, &ctx.canary_service, ctx))
        .map(weight_of)
        .sum();
    let mut rest: Vec<Value> = refs
        .iter()
        .filter(|b| !is_service(b, &ctx.canary_service, ctx))
        .cloned()
        .collect();
    let stable: Vec<usize> = (0..rest.len())
        .filter(|&i| is_service(&rest[i], &ctx.stable_service, ctx))
        .collect();
    if !stable.is_empty() {
        let current: Vec<i64> = stable.iter().map(|&i| weight_of(&rest[i])).collect();
        let total = current.iter().sum::<i64>() + canary_total;
        for (&i, w) in stable.iter().zip(distribute(total, &current)) {
            rest[i]["weight"] = json!(w);
        }
    }
    let divisor = rest.iter().map(weight_of).fold(0, gcd);
    if divisor > 1 {
        for b in &mut rest {
            b["weight"] = json!(weight_of(b) / divisor);
        }
    }
    rest
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a.abs() } else { gcd(b, a % b) }
}

fn is_canary_mirror(filter: &Value, ctx: &RoutingContext) -> bool {
    filter.get("type").and_then(Value::as_str) == Some("RequestMirror")
        && filter
            .pointer("/requestMirror/backendRef")
            .is_some_and(|b| is_service(b, &ctx.canary_service, ctx))
}

fn add_mirror(
    object: &str,
    field: &str,
    rule: &mut Value,
    stable: &Value,
    percent: i32,
    ctx: &RoutingContext,
) -> Result<(), RoutingError> {
    let mut backend = Map::new();
    backend.insert("group".into(), json!(""));
    backend.insert("kind".into(), json!("Service"));
    backend.insert("name".into(), json!(ctx.canary_service));
    if let Some(port) = stable.get("port") {
        backend.insert("port".into(), port.clone());
    }
    let mut mirror = Map::new();
    mirror.insert("backendRef".into(), Value::Object(backend));
    if percent < 100 {
        mirror.insert("percent".into(), json!(percent));
    }
    let filter = json!({"type": "RequestMirror", "requestMirror": mirror});
    let Some(r) = rule.as_object_mut() else {
        return Err(invalid(object, field, "must be an object"));
    };
    match r.entry("filters").or_insert_with(|| json!([])) {
        Value::Array(filters) => {
            if filters.len() >= MAX_FILTERS {
                return Err(invalid(
                    object,
                    &format!("{field}.filters"),
                    &format!(
                        "already has {MAX_FILTERS} filters, the most an HTTPRoute rule allows; ramp cannot add the RequestMirror filter of the mirror step"
                    ),
                ));
            }
            filters.push(filter);
            Ok(())
        }
        _ => Err(invalid(
            object,
            &format!("{field}.filters"),
            "must be a list",
        )),
    }
}

fn strip_mirror(rule: &Value, ctx: &RoutingContext) -> Value {
    let mut out = rule.clone();
    if let Some(r) = out.as_object_mut()
        && let Some(Value::Array(filters)) = r.get_mut("filters")
        && filters.iter().any(|f| is_canary_mirror(f, ctx))
    {
        filters.retain(|f| !is_canary_mirror(f, ctx));
        if filters.is_empty() {
            r.remove("filters");
        }
    }
    out
}

/// The rule's matches ANDed with the step's (each × each); a rule without
/// matches: the step's alone. Every match comes back with the API server's
/// defaults filled in.
fn and_matches(
    object: &str,
    field: &str,
    rule_matches: Option<&Value>,
    step: &[HttpRouteMatch],
) -> Result<Vec<Value>, RoutingError> {
    let step: Vec<Map<String, Value>> = step.iter().map(gateway_match).collect();
    let originals: Vec<&Map<String, Value>> = match rule_matches {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(j, m)| {
                m.as_object().ok_or_else(|| {
                    invalid(
                        object,
                        &format!("{field}.matches[{j}]"),
                        "must be an object",
                    )
                })
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(invalid(
                object,
                &format!("{field}.matches"),
                "must be a list",
            ));
        }
    };
    if originals.is_empty() {
        return Ok(step.into_iter().map(with_defaults).collect());
    }
    let mut out = Vec::with_capacity(originals.len() * step.len());
    for (j, original) in originals.iter().enumerate() {
        for s in &step {
            let merged = merge_match(object, &format!("{field}.matches[{j}]"), original, s)?;
            out.push(with_defaults(merged));
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
    if let Some(path) = step.get("path") {
        let combined = match original.get("path") {
            None | Some(Value::Null) => path.clone(),
            Some(existing) => combine_paths(existing, path).ok_or_else(|| {
                RoutingError::ConflictingMatch {
                    object: object.to_string(),
                    field: format!("{field}.path"),
                    message: format!(
                        "the rule already requires path {existing}; the step's path {path} does not lie within it, so no request could match both"
                    ),
                }
            })?,
        };
        merged.insert("path".into(), combined);
    }
    for (key, case_insensitive) in [("headers", true), ("queryParams", false)] {
        let Some(Value::Array(conditions)) = step.get(key) else {
            continue;
        };
        let target = merged.entry(key).or_insert_with(|| json!([]));
        let Some(target) = target.as_array_mut() else {
            return Err(invalid(object, &format!("{field}.{key}"), "must be a list"));
        };
        for cond in conditions {
            let name = cond.get("name").and_then(Value::as_str).unwrap_or("");
            let same_name = |c: &&Value| {
                let n = c.get("name").and_then(Value::as_str).unwrap_or("");
                if case_insensitive {
                    n.eq_ignore_ascii_case(name)
                } else {
                    n == name
                }
            };
            match target.iter().find(same_name) {
                Some(existing) if with_type(existing) != with_type(cond) => {
                    return Err(RoutingError::ConflictingMatch {
                        object: object.to_string(),
                        field: format!("{field}.{key}"),
                        message: format!(
                            "the rule already requires {existing}; the step's condition {cond} on the same name cannot be added to it"
                        ),
                    });
                }
                Some(_) => {}
                None => target.push(cond.clone()),
            }
        }
    }
    Ok(merged)
}

/// A header or query condition with its `type` defaulted, for comparing.
fn with_type(cond: &Value) -> Value {
    let mut c = cond.clone();
    if let Some(o) = c.as_object_mut() {
        o.entry("type").or_insert_with(|| json!("Exact"));
        if let Some(Value::String(n)) = o.get_mut("name") {
            *n = n.to_ascii_lowercase();
        }
    }
    c
}

/// The narrower of two paths when one contains the other.
fn combine_paths(a: &Value, b: &Value) -> Option<Value> {
    let parse = |p: &Value| {
        let t = p
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("PathPrefix")
            .to_string();
        let v = p
            .get("value")
            .and_then(Value::as_str)
            .unwrap_or("/")
            .to_string();
        (t, v)
    };
    let (ta, va) = parse(a);
    let (tb, vb) = parse(b);
    if ta == tb && va == vb {
        return Some(a.clone());
    }
    let within = |prefix: &str, v: &str| {
        prefix == "/" || v == prefix || v.starts_with(&format!("{}/", prefix.trim_end_matches('/')))
    };
    let literal = |t: &str| t == "Exact" || t == "PathPrefix";
    if ta == "PathPrefix" && literal(&tb) && within(&va, &vb) {
        return Some(b.clone());
    }
    if tb == "PathPrefix" && literal(&ta) && within(&vb, &va) {
        return Some(a.clone());
    }
    None
}

/// The match with the defaults the API server would fill in.
fn with_defaults(mut m: Map<String, Value>) -> Value {
    let path = m
        .entry("path")
        .or_insert_with(|| json!({"type": "PathPrefix", "value": "/"}));
    if let Some(p) = path.as_object_mut() {
        p.entry("type").or_insert_with(|| json!("PathPrefix"));
        p.entry("value").or_insert_with(|| json!("/"));
    }
    for key in ["headers", "queryParams"] {
        if let Some(Value::Array(list)) = m.get_mut(key) {
            for c in list.iter_mut().filter_map(Value::as_object_mut) {
                c.entry("type").or_insert_with(|| json!("Exact"));
            }
        }
    }
    Value::Object(m)
}

fn value_type(t: Option<ValueMatchType>) -> &'static str {
    match t.unwrap_or_default() {
        ValueMatchType::Exact => "Exact",
        ValueMatchType::RegularExpression => "RegularExpression",
    }
}

/// A ramp match as a Gateway API `HTTPRouteMatch` (without defaults).
fn gateway_match(m: &HttpRouteMatch) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(path) = &m.path {
        let t = match path.type_.unwrap_or_default() {
            PathMatchType::Exact => "Exact",
            PathMatchType::PathPrefix => "PathPrefix",
            PathMatchType::RegularExpression => "RegularExpression",
        };
        out.insert("path".into(), json!({"type": t, "value": path.value}));
    }
    if !m.headers.is_empty() {
        let headers: Vec<Value> = m
            .headers
            .iter()
            .map(|h| json!({"type": value_type(h.type_), "name": h.name, "value": h.value}))
            .collect();
        out.insert("headers".into(), Value::Array(headers));
    }
    if !m.query_params.is_empty() {
        let params: Vec<Value> = m
            .query_params
            .iter()
            .map(|q| json!({"type": value_type(q.type_), "name": q.name, "value": q.value}))
            .collect();
        out.insert("queryParams".into(), Value::Array(params));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_combine_only_when_one_contains_the_other() {
        let p = |t: &str, v: &str| json!({"type": t, "value": v});
        assert_eq!(
            combine_paths(&p("PathPrefix", "/"), &p("Exact", "/login")),
            Some(p("Exact", "/login"))
        );
        assert_eq!(
            combine_paths(&p("PathPrefix", "/api"), &p("PathPrefix", "/api/v2")),
            Some(p("PathPrefix", "/api/v2"))
        );
        assert_eq!(
            combine_paths(&p("Exact", "/api/x"), &p("PathPrefix", "/api")),
            Some(p("Exact", "/api/x"))
        );
        assert_eq!(
            combine_paths(&p("PathPrefix", "/api"), &p("PathPrefix", "/apix")),
            None
        );
        assert_eq!(combine_paths(&p("Exact", "/a"), &p("Exact", "/b")), None);
        assert_eq!(
            combine_paths(&p("RegularExpression", "/a.*"), &p("PathPrefix", "/a")),
            None
        );
    }

    #[test]
    fn giving_back_undoes_the_split() {
        let ctx = RoutingContext {
            namespace: "default".into(),
            stable_service: "web".into(),
            canary_service: "web-canary".into(),
            ..Default::default()
        };
        let b = |name: &str, w: i64| json!({"group": "", "kind": "Service", "name": name, "port": 80, "weight": w});
        for original in [
            vec![b("web", 1)],
            vec![b("web", 2), b("web", 1)],
            vec![b("web", 3), b("other", 1)],
        ] {
            for w in [1, 20, 50, 99] {
                let split = split("HTTPRoute r", "spec.rules[0]", &original, w, &ctx).unwrap();
                assert_eq!(give_back(&split, &ctx), original, "{original:?} at {w}%");
            }
        }
    }
}
