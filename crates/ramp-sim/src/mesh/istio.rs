//! Istio: VirtualService selection and matching, DestinationRule subsets.

use regex::Regex;
use serde_json::{Map, Value};

use super::backend::World;
use super::headers::HeaderOps;
use super::host::{self, Specificity};
use super::json::{Ctx, age_key, name_of, namespace_of};
use super::plan::{Abort, Backend, Mirror, Plan, Target};
use super::report::{Conflict, RouteReport};
use super::{MeshError, ReqView};

/// An Istio `StringMatch`.
#[derive(Debug, Clone)]
pub(crate) enum StringMatch {
    Exact(String),
    Prefix(String),
    Regex(Regex),
    /// `{}`: the header or parameter only has to be present.
    Present,
}

impl StringMatch {
    fn matches(&self, s: &str, ignore_case: bool) -> bool {
        match self {
            StringMatch::Exact(e) if ignore_case => e.eq_ignore_ascii_case(s),
            StringMatch::Exact(e) => e == s,
            StringMatch::Prefix(p) if ignore_case => {
                s.len() >= p.len()
                    && s.is_char_boundary(p.len())
                    && s[..p.len()].eq_ignore_ascii_case(p)
            }
            StringMatch::Prefix(p) => s.starts_with(p.as_str()),
            StringMatch::Regex(r) => r.is_match(s),
            StringMatch::Present => true,
        }
    }
}

/// Compiles an RE2-style pattern that must match the whole value, as Envoy does.
pub(crate) fn full_regex(ctx: &Ctx, pattern: &str, field: &str) -> Result<Regex, MeshError> {
    Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
        ctx.err(
            field,
            format!("invalid regular expression {pattern:?}: {e}"),
        )
    })
}

fn string_match(ctx: &Ctx, v: &Value, field: &str) -> Result<StringMatch, MeshError> {
    string_match_with(ctx, v, field, false)
}

/// A header `StringMatch`: there Istio reads `regex: "*"` (not a valid RE2
/// pattern) as "the header is present".
fn header_match(ctx: &Ctx, v: &Value, field: &str) -> Result<StringMatch, MeshError> {
    string_match_with(ctx, v, field, true)
}

fn string_match_with(
    ctx: &Ctx,
    v: &Value,
    field: &str,
    star_is_presence: bool,
) -> Result<StringMatch, MeshError> {
    let empty = Map::new();
    let m = ctx.obj(Some(v), field)?.unwrap_or(&empty);
    let exact = ctx.str(m.get("exact"), &format!("{field}.exact"))?;
    let prefix = ctx.str(m.get("prefix"), &format!("{field}.prefix"))?;
    let regex = ctx.str(m.get("regex"), &format!("{field}.regex"))?;
    match (exact, prefix, regex) {
        (None, None, None) => Ok(StringMatch::Present),
        (Some(e), None, None) => Ok(StringMatch::Exact(e.to_owned())),
        (None, Some(p), None) => Ok(StringMatch::Prefix(p.to_owned())),
        (None, None, Some("*")) if star_is_presence => Ok(StringMatch::Present),
        (None, None, Some(r)) => Ok(StringMatch::Regex(full_regex(
            ctx,
            r,
            &format!("{field}.regex"),
        )?)),
        _ => Err(ctx.err(field, "only one of exact, prefix and regex may be set")),
    }
}

fn string_matches(
    ctx: &Ctx,
    v: Option<&Value>,
    field: &str,
    parse: fn(&Ctx, &Value, &str) -> Result<StringMatch, MeshError>,
) -> Result<Vec<(String, StringMatch)>, MeshError> {
    let mut out = Vec::new();
    if let Some(m) = ctx.obj(v, field)? {
        for (k, sm) in m {
            out.push((k.clone(), parse(ctx, sm, &format!("{field}.{k}"))?));
        }
    }
    Ok(out)
}

/// One `HTTPMatchRequest`: every condition must hold.
#[derive(Debug)]
struct MatchRequest {
    uri: Option<StringMatch>,
    ignore_uri_case: bool,
    scheme: Option<StringMatch>,
    method: Option<StringMatch>,
    authority: Option<StringMatch>,
    headers: Vec<(String, StringMatch)>,
    without_headers: Vec<(String, StringMatch)>,
    query_params: Vec<(String, StringMatch)>,
    port: Option<u64>,
    /// The match's own `gateways` (empty: those of the VirtualService).
    gateways: Vec<String>,
    /// `sourceNamespace`: met by requests sent from that namespace
    /// ([`super::HttpRequest::source_namespace`]; never when it is unset).
    source_namespace: Option<String>,
    /// Conditions a request from outside any workload never meets
    /// (`sourceLabels`, `sourceNamespace`).
    never: bool,
}

impl MatchRequest {
    fn parse(ctx: &Ctx, m: &Value, field: &str) -> Result<Self, MeshError> {
        let f = |k: &str| format!("{field}.{k}");
        let opt = |k: &str| -> Result<Option<StringMatch>, MeshError> {
            m.get(k)
                .filter(|v| !v.is_null())
                .map(|v| string_match(ctx, v, &f(k)))
                .transpose()
        };
        ctx.obj(Some(m), field)?;
        let gateways = ctx
            .arr(m.get("gateways"), &f("gateways"))?
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect::<Vec<_>>();
        let source_labels = ctx.string_map(m.get("sourceLabels"), &f("sourceLabels"))?;
        let source_ns = ctx.str(m.get("sourceNamespace"), &f("sourceNamespace"))?;
        Ok(MatchRequest {
            uri: opt("uri")?,
            ignore_uri_case: ctx
                .bool(m.get("ignoreUriCase"), &f("ignoreUriCase"))?
                .unwrap_or(false),
            scheme: opt("scheme")?,
            method: opt("method")?,
            authority: opt("authority")?,
            headers: lower_keys(string_matches(
                ctx,
                m.get("headers"),
                &f("headers"),
                header_match,
            )?),
            without_headers: lower_keys(string_matches(
                ctx,
                m.get("withoutHeaders"),
                &f("withoutHeaders"),
                header_match,
            )?),
            query_params: string_matches(
                ctx,
                m.get("queryParams"),
                &f("queryParams"),
                string_match,
            )?,
            port: ctx.uint(m.get("port"), &f("port"))?,
            gateways,
            source_namespace: source_ns.map(str::to_owned),
            never: !source_labels.is_empty(),
        })
    }

    fn matches(&self, req: &ReqView<'_>) -> bool {
        let opt = |m: &Option<StringMatch>, v: &str| m.as_ref().is_none_or(|m| m.matches(v, false));
        !self.never
            && self
                .source_namespace
                .as_deref()
                .is_none_or(|ns| req.client_namespace == Some(ns))
            && (self.gateways.is_empty() || {
                let gws: Vec<&str> = self.gateways.iter().map(String::as_str).collect();
                req.admitted_by(&gws, &req.namespace)
            })
            && self
                .uri
                .as_ref()
                .is_none_or(|m| m.matches(req.path, self.ignore_uri_case))
            && opt(&self.scheme, "http")
            && opt(&self.method, &req.method)
            && opt(&self.authority, req.authority)
            && self
                .headers
                .iter()
                .all(|(k, m)| req.header(k).is_some_and(|v| m.matches(v, false)))
            && !self
                .without_headers
                .iter()
                .any(|(k, m)| match req.header(k) {
                    // An inverted match compares a missing header as empty, as
                    // Istio configures Envoy (`treat_missing_header_as_empty`);
                    // a presence match still needs the header.
                    None => !matches!(m, StringMatch::Present) && m.matches("", false),
                    Some(v) => m.matches(v, false),
                })
            && self
                .query_params
                .iter()
                .all(|(k, m)| req.query_param(k).is_some_and(|v| m.matches(v, false)))
            && self.port.is_none_or(|p| req.port.map(u64::from) == Some(p))
    }
}

fn lower_keys(v: Vec<(String, StringMatch)>) -> Vec<(String, StringMatch)> {
    v.into_iter()
        .map(|(k, m)| (k.to_ascii_lowercase(), m))
        .collect()
}

/// The VirtualService that decides traffic to `req`'s host, if any. Records
/// an IST0109 conflict when several are equally specific, and uses the
/// oldest, as Istio's sidecars do.
pub(crate) fn select<'a>(
    world: &World<'a>,
    req: &ReqView<'_>,
    report: &mut RouteReport,
) -> Result<Option<&'a Value>, MeshError> {
    let mut best: Option<Specificity> = None;
    let mut chosen: Vec<&'a Value> = Vec::new();
    for vs in &world.snapshot.virtual_services {
        let ctx = Ctx::new("VirtualService", vs);
        let ns = namespace_of(vs).unwrap_or(world.ns);
        let mut spec = None;
        for (i, h) in ctx
            .arr(vs.pointer("/spec/hosts"), "spec.hosts")?
            .iter()
            .enumerate()
        {
            let field = format!("spec.hosts[{i}]");
            let h = ctx
                .str(Some(h), &field)?
                .ok_or_else(|| ctx.err(&field, "must be a host name"))?;
            if let Some(s) = host::matches(&host::qualify(h, ns), &req.fqdn) {
                spec = spec.max(Some(s));
            }
        }
        let Some(spec) = spec else { continue };
        let gateways: Vec<&str> = ctx
            .arr(vs.pointer("/spec/gateways"), "spec.gateways")?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        if !req.admitted_by(&gateways, ns) {
            report.warnings.push(match req.gateway {
                None => format!(
                    "VirtualService {} matches host {} but is bound only to gateways [{}], not the mesh; ignored (route with --gateway to enter through one)",
                    ctx.name,
                    req.fqdn,
                    gateways.join(", ")
                ),
                Some(gw) => format!(
                    "VirtualService {} matches host {} but is not bound to gateway {gw}; ignored",
                    ctx.name, req.fqdn
                ),
            });
            continue;
        }
        match best.cmp(&Some(spec)) {
            std::cmp::Ordering::Less => {
                best = Some(spec);
                chosen = vec![vs];
            }
            std::cmp::Ordering::Equal => chosen.push(vs),
            std::cmp::Ordering::Greater => {}
        }
    }
    chosen.sort_by_key(|vs| age_key(vs));
    if chosen.len() > 1 {
        let names: Vec<&str> = chosen
            .iter()
            .map(|v| name_of(v).unwrap_or_default())
            .collect();
        report.conflicts.push(Conflict {
            code: "IST0109".into(),
            host: req.fqdn.clone(),
            objects: names.iter().map(|n| format!("VirtualService/{n}")).collect(),
            message: format!(
                "the VirtualServices {} associated with the mesh define the same host {}, which leads to undefined behaviour; \
                 merge them into one. The oldest, {}, is used",
                names.join(" and "),
                req.fqdn,
                names[0]
            ),
        });
    }
    Ok(chosen.first().copied())
}

/// The first `http` route of `vs` that matches `req`, as a plan. Every route is
/// checked for validity, so a broken VirtualService is reported even when an
/// earlier route matches.
pub(crate) fn plan(world: &World<'_>, vs: &Value, req: &ReqView<'_>) -> Result<Plan, MeshError> {
    let ctx = Ctx::new("VirtualService", vs);
    let ns = namespace_of(vs).unwrap_or(world.ns);
    let mut first = None;
    for (i, r) in ctx
        .arr(vs.pointer("/spec/http"), "spec.http")?
        .iter()
        .enumerate()
    {
        let field = format!("spec.http[{i}]");
        ctx.obj(Some(r), &field)?;
        let matches = ctx
            .arr(r.get("match"), &format!("{field}.match"))?
            .iter()
            .enumerate()
            .map(|(j, m)| MatchRequest::parse(&ctx, m, &format!("{field}.match[{j}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let mut label = format!("VirtualService/{} http[{i}]", ctx.name);
        if let Some(n) = ctx.str(r.get("name"), &format!("{field}.name"))? {
            label.push_str(&format!(" ({n})"));
        }
        let plan = route_plan(world, &ctx, r, &field, ns, label)?;
        if first.is_none() && (matches.is_empty() || matches.iter().any(|m| m.matches(req))) {
            first = Some(plan);
        }
    }
    Ok(first.unwrap_or_else(|| {
        Plan::respond(
            format!("VirtualService/{}", ctx.name),
            404,
            format!(
                "no route: no http route of VirtualService {} matches the request",
                ctx.name
            ),
        )
    }))
}

fn percentage(ctx: &Ctx, v: Option<&Value>, field: &str) -> Result<Option<f64>, MeshError> {
    let Some(p) = ctx.obj(v, field)? else {
        return Ok(None);
    };
    let value = ctx
        .num(p.get("value"), &format!("{field}.value"))?
        .unwrap_or(0.0);
    if !(0.0..=100.0).contains(&value) {
        return Err(ctx.err(
            &format!("{field}.value"),
            format!("{value} is not between 0 and 100"),
        ));
    }
    Ok(Some(value / 100.0))
}

fn status_code(ctx: &Ctx, v: Option<&Value>, field: &str) -> Result<Option<u16>, MeshError> {
    match ctx.uint(v, field)? {
        None => Ok(None),
        Some(c) if (200..=599).contains(&c) => Ok(Some(c as u16)),
        Some(c) => Err(ctx.err(field, format!("{c} is not an HTTP status code (200-599)"))),
    }
}

fn route_plan(
    world: &World<'_>,
    ctx: &Ctx,
    r: &Value,
    field: &str,
    ns: &str,
    label: String,
) -> Result<Plan, MeshError> {
    let f = |k: &str| format!("{field}.{k}");
    let abort = match ctx.obj(r.pointer("/fault/abort"), &f("fault.abort"))? {
        None => None,
        Some(a) => {
            let status =
                status_code(ctx, a.get("httpStatus"), &f("fault.abort.httpStatus"))?.unwrap_or(503);
            Some(Abort {
                fraction: percentage(ctx, a.get("percentage"), &f("fault.abort.percentage"))?
                    .unwrap_or(1.0),
                status,
                reason: format!("fault injected by {label}"),
            })
        }
    };
    let mut plan = if let Some(redirect) = ctx.obj(r.get("redirect"), &f("redirect"))? {
        let status = status_code(
            ctx,
            redirect.get("redirectCode"),
            &f("redirect.redirectCode"),
        )?
        .unwrap_or(301);
        Plan::respond(label, status, "redirect".into())
    } else if let Some(direct) = ctx.obj(r.get("directResponse"), &f("directResponse"))? {
        let status = status_code(ctx, direct.get("status"), &f("directResponse.status"))?
            .ok_or_else(|| ctx.err(&f("directResponse.status"), "is required"))?;
        Plan::respond(label, status, "direct response".into())
    } else {
        let routes = ctx.arr(r.get("route"), &f("route"))?;
        if routes.is_empty() {
            return Err(ctx.err(field, "needs one of route, redirect or directResponse"));
        }
        let mut dests = Vec::new();
        for (k, d) in routes.iter().enumerate() {
            let df = format!("{field}.route[{k}]");
            ctx.obj(Some(d), &df)?;
            let (host, subset) =
                destination(ctx, d.get("destination"), &format!("{df}.destination"))?;
            let weight = ctx.uint(d.get("weight"), &format!("{df}.weight"))?;
            let (req_ops, resp_ops) = header_operations(ctx, d, &df)?;
            dests.push((host, subset, weight, req_ops, resp_ops));
        }
        // Absent weights: a lone destination takes everything, several share evenly.
        let all_absent = dests.iter().all(|(_, _, w, _, _)| w.is_none());
        let mut backends = Vec::new();
        for (host, subset, weight, req_ops, resp_ops) in dests {
            let mut b = Backend::new(
                if all_absent { 1 } else { weight.unwrap_or(0) },
                target(world, host, subset, ns)?,
            );
            b.request_headers = req_ops;
            b.response_headers = resp_ops;
            backends.push(b);
        }
        if backends.iter().all(|b| b.weight == 0) {
            return Err(ctx.err(&f("route"), "every destination has weight 0"));
        }
        let mut mirrors = Vec::new();
        if r.get("mirror").is_some_and(|m| !m.is_null()) {
            let (host, subset) = destination(ctx, r.get("mirror"), &f("mirror"))?;
            let fraction = match percentage(ctx, r.get("mirrorPercentage"), &f("mirrorPercentage"))?
            {
                Some(p) => p,
                None => match ctx.uint(r.get("mirrorPercent"), &f("mirrorPercent"))? {
                    Some(p) => (p.min(100) as f64) / 100.0,
                    None => 1.0,
                },
            };
            mirrors.push(Mirror {
                fraction,
                target: target(world, host, subset, ns)?,
            });
        }
        for (k, m) in ctx.arr(r.get("mirrors"), &f("mirrors"))?.iter().enumerate() {
            let mf = format!("{field}.mirrors[{k}]");
            ctx.obj(Some(m), &mf)?;
            let (host, subset) =
                destination(ctx, m.get("destination"), &format!("{mf}.destination"))?;
            mirrors.push(Mirror {
                fraction: percentage(ctx, m.get("percentage"), &format!("{mf}.percentage"))?
                    .unwrap_or(1.0),
                target: target(world, host, subset, ns)?,
            });
        }
        Plan::forward(label, backends, mirrors)
    };
    plan.abort = abort;
    (plan.request_headers, plan.response_headers) = header_operations(ctx, r, field)?;
    Ok(plan)
}

/// `headers.request` and `headers.response` of an http route or a destination.
fn header_operations(
    ctx: &Ctx,
    v: &Value,
    field: &str,
) -> Result<(HeaderOps, HeaderOps), MeshError> {
    let f = format!("{field}.headers");
    let Some(h) = ctx.obj(v.get("headers"), &f)? else {
        return Ok(Default::default());
    };
    Ok((
        HeaderOps::istio(ctx, h.get("request"), &format!("{f}.request"))?,
        HeaderOps::istio(ctx, h.get("response"), &format!("{f}.response"))?,
    ))
}

fn destination<'v>(
    ctx: &Ctx,
    v: Option<&'v Value>,
    field: &str,
) -> Result<(&'v str, Option<&'v str>), MeshError> {
    let d = ctx
        .obj(v, field)?
        .ok_or_else(|| ctx.err(field, "is required"))?;
    let host = ctx
        .str(d.get("host"), &format!("{field}.host"))?
        .filter(|h| !h.is_empty())
        .ok_or_else(|| ctx.err(&format!("{field}.host"), "is required"))?;
    let subset = ctx
        .str(d.get("subset"), &format!("{field}.subset"))?
        .filter(|s| !s.is_empty());
    Ok((host, subset))
}

/// A VirtualService destination: Service by host, pods by selector and subset.
fn target(
    world: &World<'_>,
    host: &str,
    subset: Option<&str>,
    vs_ns: &str,
) -> Result<Target, MeshError> {
    let fqdn = host::qualify(host, vs_ns);
    let Some(svc) = host::service_name(&fqdn, world.ns).filter(|s| world.service(s).is_some())
    else {
        return Ok(Target::fail(
            503,
            format!(
                "no cluster: destination host {host} is not a Service in namespace {}",
                world.ns
            ),
        ));
    };
    let (labels, destination) = match subset {
        None => (Vec::new(), svc.to_owned()),
        Some(s) => match subset_labels(world, &fqdn, s)? {
            Ok(labels) => (labels, format!("{svc}/{s}")),
            Err(reason) => return Ok(Target::fail(503, reason)),
        },
    };
    world.service_target(svc, &labels, destination, 503)
}

/// The labels of `subset` in the DestinationRule(s) for `fqdn`: the most
/// specific host wins; among several for the same host the oldest defining the
/// subset wins. `Ok(Err(reason))` when no DestinationRule defines it.
fn subset_labels(
    world: &World<'_>,
    fqdn: &str,
    subset: &str,
) -> Result<Result<Vec<(String, String)>, String>, MeshError> {
    let mut found: Vec<(Specificity, &Value)> = Vec::new();
    for dr in &world.snapshot.destination_rules {
        let ctx = Ctx::new("DestinationRule", dr);
        let Some(h) = ctx.str(dr.pointer("/spec/host"), "spec.host")? else {
            continue;
        };
        let ns = namespace_of(dr).unwrap_or(world.ns);
        if let Some(s) = host::matches(&host::qualify(h, ns), fqdn) {
            found.push((s, dr));
        }
    }
    let Some(best) = found.iter().map(|(s, _)| *s).max() else {
        return Ok(Err(format!(
            "no cluster: subset {subset} of host {fqdn} is used but no DestinationRule is defined for that host"
        )));
    };
    let mut rules: Vec<&Value> = found
        .into_iter()
        .filter(|(s, _)| *s == best)
        .map(|(_, d)| d)
        .collect();
    rules.sort_by_key(|d| age_key(d));
    for dr in &rules {
        let ctx = Ctx::new("DestinationRule", dr);
        for (i, s) in ctx
            .arr(dr.pointer("/spec/subsets"), "spec.subsets")?
            .iter()
            .enumerate()
        {
            let field = format!("spec.subsets[{i}]");
            ctx.obj(Some(s), &field)?;
            if ctx.str(s.get("name"), &format!("{field}.name"))? == Some(subset) {
                return Ok(Ok(
                    ctx.string_map(s.get("labels"), &format!("{field}.labels"))?
                ));
            }
        }
    }
    let names: Vec<&str> = rules
        .iter()
        .map(|d| name_of(d).unwrap_or_default())
        .collect();
    Ok(Err(format!(
        "no cluster: subset {subset} is not defined in DestinationRule {} for host {fqdn}",
        names.join(", ")
    )))
}
