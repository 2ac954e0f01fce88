//! Gateway API for meshes (GAMMA): HTTPRoutes whose `parentRefs` name a Service.

use std::cmp::Reverse;

use regex::Regex;
use serde_json::{Map, Value};

use super::backend::World;
use super::headers::HeaderOps;
use super::istio::full_regex;
use super::json::{Ctx, age_key, name_of, namespace_of};
use super::plan::{Backend, Mirror, Plan, Target};
use super::report::RouteReport;
use super::{MeshError, ReqView};

/// The HTTPRoutes attached to Service `svc` (a `parentRefs` entry with group
/// `""`, kind `Service`, that name, this namespace, and no port or the request's
/// port), oldest first, then by name: the order the Gateway API uses to break
/// precedence ties between routes. For a client in another namespace that has
/// consumer routes for `svc` (routes in its own namespace naming `svc` here),
/// those are used instead (GAMMA: consumer routes take precedence for their
/// namespace's clients).
pub(crate) fn attached<'a>(
    world: &World<'a>,
    svc: &str,
    req: &ReqView<'_>,
    report: &mut RouteReport,
) -> Result<Vec<&'a Value>, MeshError> {
    if let Some(src) = req.source_namespace {
        let consumer: Vec<&'a Value> = world
            .snapshot
            .consumer_http_routes
            .iter()
            .filter(|r| namespace_of(r) == Some(src))
            .collect();
        let out = attached_from(world, &consumer, svc, req.port, report)?;
        if !out.is_empty() {
            return Ok(out);
        }
    }
    let producer: Vec<&'a Value> = world.snapshot.http_routes.iter().collect();
    attached_from(world, &producer, svc, req.port, report)
}

fn attached_from<'a>(
    world: &World<'a>,
    routes: &[&'a Value],
    svc: &str,
    port: Option<u16>,
    report: &mut RouteReport,
) -> Result<Vec<&'a Value>, MeshError> {
    let mut out = Vec::new();
    for r in routes.iter().copied() {
        let ctx = Ctx::new("HTTPRoute", r);
        let ns = namespace_of(r).unwrap_or(world.ns);
        let mut attached = false;
        for (i, p) in ctx
            .arr(r.pointer("/spec/parentRefs"), "spec.parentRefs")?
            .iter()
            .enumerate()
        {
            let f = format!("spec.parentRefs[{i}]");
            let ParentRef {
                group,
                kind,
                name,
                namespace: pns,
                port: pport,
                ..
            } = parent_ref(&ctx, p, &f, ns)?;
            if group == "gateway.networking.k8s.io"
                && kind == "Service"
                && name == svc
                && pns == world.ns
            {
                report.warnings.push(format!(
                    "HTTPRoute {} {f} names kind Service in group gateway.networking.k8s.io (the default when group is unset), not the core Service {svc}; write group: \"\" to attach it; ignored",
                    ctx.name
                ));
            }
            if matches!(group, "" | "core") && kind == "Service" && name == svc && pns == world.ns {
                match (pport, port) {
                    (Some(want), Some(have)) if want != u64::from(have) => report.warnings.push(format!(
                        "HTTPRoute {} attaches to Service {svc} port {want}, not the request's port {have}; ignored",
                        ctx.name
                    )),
                    _ => attached = true,
                }
            }
        }
        if attached {
            out.push(r);
        }
    }
    out.sort_by_key(|r| age_key(r));
    Ok(out)
}

/// The Gateway API `Gateway` a request enters through, when `req.gateway`
/// names one in the snapshot (`name` or `namespace/name`).
pub(crate) fn entry_gateway<'a>(world: &World<'a>, req: &ReqView<'_>) -> Option<&'a Value> {
    let gw = req.gateway?;
    let (ns, name) = gw.split_once('/').unwrap_or((world.ns, gw));
    world
        .snapshot
        .gateways
        .iter()
        .find(|g| name_of(g) == Some(name) && namespace_of(g).unwrap_or(world.ns) == ns)
}

/// A listener of a Gateway, as far as routing HTTP goes.
struct Listener<'v> {
    name: &'v str,
    port: u64,
    hostname: Option<String>,
    /// `allowedRoutes.namespaces.from`: `Same` (default), `All` or `Selector`.
    from: &'v str,
    /// `allowedRoutes.kinds` admits HTTPRoutes (the default for HTTP listeners).
    http_routes: bool,
}

fn listeners<'v>(ctx: &Ctx, gw: &'v Value) -> Result<Vec<Listener<'v>>, MeshError> {
    let mut out = Vec::new();
    for (i, l) in ctx
        .arr(gw.pointer("/spec/listeners"), "spec.listeners")?
        .iter()
        .enumerate()
    {
        let f = format!("spec.listeners[{i}]");
        ctx.obj(Some(l), &f)?;
        let name = ctx
            .str(l.get("name"), &format!("{f}.name"))?
            .ok_or_else(|| ctx.err(&format!("{f}.name"), "is required"))?;
        let port = ctx
            .uint(l.get("port"), &format!("{f}.port"))?
            .ok_or_else(|| ctx.err(&format!("{f}.port"), "is required"))?;
        let protocol = ctx
            .str(l.get("protocol"), &format!("{f}.protocol"))?
            .ok_or_else(|| ctx.err(&format!("{f}.protocol"), "is required"))?;
        if !matches!(protocol, "HTTP" | "HTTPS") {
            continue;
        }
        let from = ctx
            .str(
                l.pointer("/allowedRoutes/namespaces/from"),
                &format!("{f}.allowedRoutes.namespaces.from"),
            )?
            .unwrap_or("Same");
        if !matches!(from, "Same" | "All" | "Selector") {
            return Err(ctx.err(
                &format!("{f}.allowedRoutes.namespaces.from"),
                format!("{from:?} is not one of Same, All, Selector"),
            ));
        }
        let kinds = ctx.arr(
            l.pointer("/allowedRoutes/kinds"),
            &format!("{f}.allowedRoutes.kinds"),
        )?;
        let http_routes = kinds.is_empty()
            || kinds.iter().any(|k| {
                k.get("kind").and_then(Value::as_str) == Some("HTTPRoute")
                    && k.get("group")
                        .and_then(Value::as_str)
                        .is_none_or(|g| g == "gateway.networking.k8s.io")
            });
        out.push(Listener {
            name,
            port,
            hostname: ctx
                .str(l.get("hostname"), &format!("{f}.hostname"))?
                .map(str::to_ascii_lowercase),
            from,
            http_routes,
        });
    }
    Ok(out)
}

/// Does a Gateway API hostname (`*.example.com` or `a.example.com`) match `host`?
fn hostname_matches(pattern: &str, host: &str) -> Option<super::host::Specificity> {
    super::host::matches(&pattern.to_ascii_lowercase(), host)
}

/// The HTTPRoutes that take a request entering through Gateway `gw`: attached
/// (a Gateway `parentRefs` entry with that name and namespace, and the
/// listener's `sectionName`/`port` if given) to the listener that accepts the
/// request (its port, the most specific hostname matching the request's
/// `Host`), allowed by that listener, and with a `hostnames` entry matching the
/// request's host if they list any. Oldest first, then by name.
pub(crate) fn attached_to_gateway<'a>(
    world: &World<'a>,
    gw: &'a Value,
    req: &ReqView<'_>,
    report: &mut RouteReport,
) -> Result<Vec<&'a Value>, MeshError> {
    let gctx = Ctx::new("Gateway", gw);
    let gw_ns = namespace_of(gw).unwrap_or(world.ns);
    let (host, port) = super::host::split_port(req.authority);
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let mut best: Option<(Option<super::host::Specificity>, Listener<'_>)> = None;
    for l in listeners(&gctx, gw)? {
        if port.is_some_and(|p| u64::from(p) != l.port) {
            continue;
        }
        let spec = match &l.hostname {
            None => None,
            Some(h) => match hostname_matches(h, &host) {
                Some(s) => Some(s),
                None => continue,
            },
        };
        if best.as_ref().is_none_or(|(s, _)| spec > *s) {
            best = Some((spec, l));
        }
    }
    let Some((_, listener)) = best else {
        report.warnings.push(format!(
            "Gateway {}/{} has no HTTP listener for host {host}{}",
            gw_ns,
            gctx.name,
            port.map(|p| format!(" port {p}")).unwrap_or_default()
        ));
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for r in &world.snapshot.http_routes {
        let ctx = Ctx::new("HTTPRoute", r);
        let ns = namespace_of(r).unwrap_or(world.ns);
        let mut attached = false;
        for (i, p) in ctx
            .arr(r.pointer("/spec/parentRefs"), "spec.parentRefs")?
            .iter()
            .enumerate()
        {
            let f = format!("spec.parentRefs[{i}]");
            let ParentRef {
                group,
                kind,
                name,
                namespace: pns,
                section,
                port: pport,
            } = parent_ref(&ctx, p, &f, ns)?;
            if group != "gateway.networking.k8s.io"
                || kind != "Gateway"
                || name != gctx.name
                || pns != gw_ns
                || section.is_some_and(|s| s != listener.name)
                || pport.is_some_and(|p| p != listener.port)
            {
                continue;
            }
            match listener.from {
                _ if !listener.http_routes => report.warnings.push(format!(
                    "HTTPRoute {} attaches to Gateway {gw_ns}/{} listener {}, which does not allow HTTPRoutes; ignored",
                    ctx.name, gctx.name, listener.name
                )),
                "Same" if ns != gw_ns => report.warnings.push(format!(
                    "HTTPRoute {ns}/{} attaches to Gateway {gw_ns}/{} listener {}, which allows routes from its own namespace only; ignored",
                    ctx.name, gctx.name, listener.name
                )),
                "Selector" => report.warnings.push(format!(
                    "HTTPRoute {} attaches to Gateway {gw_ns}/{} listener {}, which selects route namespaces by label; namespace labels are not modelled, ignored",
                    ctx.name, gctx.name, listener.name
                )),
                _ => attached = true,
            }
        }
        if !attached {
            continue;
        }
        let hostnames = ctx.arr(r.pointer("/spec/hostnames"), "spec.hostnames")?;
        let mut host_ok = hostnames.is_empty();
        for (i, h) in hostnames.iter().enumerate() {
            let f = format!("spec.hostnames[{i}]");
            let h = ctx
                .str(Some(h), &f)?
                .ok_or_else(|| ctx.err(&f, "must be a host name"))?;
            host_ok |= hostname_matches(h, &host).is_some();
        }
        if host_ok {
            out.push(r);
        }
    }
    out.sort_by_key(|r| age_key(r));
    Ok(out)
}

#[derive(Debug)]
enum PathMatch {
    Exact(String),
    Prefix(String),
    Regex(Regex, usize),
}

#[derive(Debug)]
enum ValueMatch {
    Exact(String),
    Regex(Regex),
}

impl ValueMatch {
    fn matches(&self, v: &str) -> bool {
        match self {
            ValueMatch::Exact(e) => e == v,
            ValueMatch::Regex(r) => r.is_match(v),
        }
    }
}

#[derive(Debug)]
struct RouteMatch {
    path: PathMatch,
    method: Option<String>,
    headers: Vec<(String, ValueMatch)>,
    query: Vec<(String, ValueMatch)>,
}

impl RouteMatch {
    /// A rule without `matches` matches every request: `PathPrefix /`.
    fn everything() -> Self {
        RouteMatch {
            path: PathMatch::Prefix("/".into()),
            method: None,
            headers: Vec::new(),
            query: Vec::new(),
        }
    }

    fn parse(ctx: &Ctx, m: &Value, field: &str) -> Result<Self, MeshError> {
        let f = |k: &str| format!("{field}.{k}");
        let empty = Map::new();
        let m = ctx.obj(Some(m), field)?.unwrap_or(&empty);
        let path = match ctx.obj(m.get("path"), &f("path"))? {
            None => PathMatch::Prefix("/".into()),
            Some(p) => {
                let ty = ctx
                    .str(p.get("type"), &f("path.type"))?
                    .unwrap_or("PathPrefix");
                let value = ctx.str(p.get("value"), &f("path.value"))?.unwrap_or("/");
                match ty {
                    "Exact" | "PathPrefix" if !value.starts_with('/') => {
                        return Err(
                            ctx.err(&f("path.value"), format!("{value:?} must start with /"))
                        );
                    }
                    "Exact" => PathMatch::Exact(value.to_owned()),
                    "PathPrefix" => PathMatch::Prefix(value.to_owned()),
                    "RegularExpression" => {
                        PathMatch::Regex(full_regex(ctx, value, &f("path.value"))?, value.len())
                    }
                    other => {
                        return Err(ctx.err(
                            &f("path.type"),
                            format!("{other:?} is not one of Exact, PathPrefix, RegularExpression"),
                        ));
                    }
                }
            }
        };
        Ok(RouteMatch {
            path,
            method: ctx
                .str(m.get("method"), &f("method"))?
                .map(str::to_ascii_uppercase),
            headers: value_matches(ctx, m.get("headers"), &f("headers"), true)?,
            query: value_matches(ctx, m.get("queryParams"), &f("queryParams"), false)?,
        })
    }

    fn matches(&self, req: &ReqView<'_>) -> bool {
        let path_ok = match &self.path {
            PathMatch::Exact(p) => req.path == p,
            PathMatch::Prefix(p) => prefix_matches(p, req.path),
            PathMatch::Regex(r, _) => r.is_match(req.path),
        };
        path_ok
            && self.method.as_ref().is_none_or(|m| *m == req.method)
            && self
                .headers
                .iter()
                .all(|(k, m)| req.header(k).is_some_and(|v| m.matches(v)))
            && self
                .query
                .iter()
                .all(|(k, m)| req.query_param(k).is_some_and(|v| m.matches(v)))
    }

    /// Smaller sorts first: exact path, then longer prefix, (then regex, as
    /// Istio orders them), then a method match, then more header matches, then
    /// more query parameter matches.
    fn precedence(
        &self,
    ) -> (
        u8,
        Reverse<usize>,
        Reverse<bool>,
        Reverse<usize>,
        Reverse<usize>,
    ) {
        let (rank, len) = match &self.path {
            PathMatch::Exact(p) => (0, p.len()),
            PathMatch::Prefix(p) => (1, p.len()),
            PathMatch::Regex(_, len) => (2, *len),
        };
        (
            rank,
            Reverse(len),
            Reverse(self.method.is_some()),
            Reverse(self.headers.len()),
            Reverse(self.query.len()),
        )
    }
}

/// `PathPrefix` matches whole path elements: `/foo` matches `/foo` and
/// `/foo/bar`, not `/foobar`; a trailing `/` in the prefix is ignored.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    let p = prefix.trim_end_matches('/');
    p.is_empty() || path == p || (path.starts_with(p) && path[p.len()..].starts_with('/'))
}

fn value_matches(
    ctx: &Ctx,
    v: Option<&Value>,
    field: &str,
    lower: bool,
) -> Result<Vec<(String, ValueMatch)>, MeshError> {
    let mut out = Vec::new();
    for (i, h) in ctx.arr(v, field)?.iter().enumerate() {
        let f = format!("{field}[{i}]");
        ctx.obj(Some(h), &f)?;
        let name = ctx
            .str(h.get("name"), &format!("{f}.name"))?
            .ok_or_else(|| ctx.err(&format!("{f}.name"), "is required"))?;
        let value = ctx
            .str(h.get("value"), &format!("{f}.value"))?
            .ok_or_else(|| ctx.err(&format!("{f}.value"), "is required"))?;
        let m = match ctx
            .str(h.get("type"), &format!("{f}.type"))?
            .unwrap_or("Exact")
        {
            "Exact" => ValueMatch::Exact(value.to_owned()),
            "RegularExpression" => {
                ValueMatch::Regex(full_regex(ctx, value, &format!("{f}.value"))?)
            }
            other => {
                return Err(ctx.err(
                    &format!("{f}.type"),
                    format!("{other:?} is not one of Exact, RegularExpression"),
                ));
            }
        };
        let name = if lower {
            name.to_ascii_lowercase()
        } else {
            name.to_owned()
        };
        out.push((name, m));
    }
    Ok(out)
}

/// The rule that wins for `req` among all rules of `routes` (already ordered
/// oldest first), as a plan. All rules are checked for validity.
pub(crate) fn plan(
    world: &World<'_>,
    routes: &[&Value],
    req: &ReqView<'_>,
) -> Result<Plan, MeshError> {
    type Key = (
        (
            u8,
            Reverse<usize>,
            Reverse<bool>,
            Reverse<usize>,
            Reverse<usize>,
        ),
        usize,
        usize,
        usize,
    );
    let mut best: Option<(Key, Plan)> = None;
    for (ri, r) in routes.iter().enumerate() {
        let ctx = Ctx::new("HTTPRoute", r);
        let ns = namespace_of(r).unwrap_or(world.ns);
        for (i, rule) in ctx
            .arr(r.pointer("/spec/rules"), "spec.rules")?
            .iter()
            .enumerate()
        {
            let field = format!("spec.rules[{i}]");
            ctx.obj(Some(rule), &field)?;
            let raw = ctx.arr(rule.get("matches"), &format!("{field}.matches"))?;
            let matches = if raw.is_empty() {
                vec![RouteMatch::everything()]
            } else {
                raw.iter()
                    .enumerate()
                    .map(|(j, m)| RouteMatch::parse(&ctx, m, &format!("{field}.matches[{j}]")))
                    .collect::<Result<Vec<_>, _>>()?
            };
            let mut rule_plan = rule_plan(world, &ctx, rule, &field, ns)?;
            for (j, m) in matches.iter().enumerate() {
                if !m.matches(req) {
                    continue;
                }
                let key = (m.precedence(), ri, i, j);
                if best.as_ref().is_none_or(|(k, _)| key < *k) {
                    rule_plan.rule = if raw.is_empty() {
                        format!("HTTPRoute/{} rules[{i}]", ctx.name)
                    } else {
                        format!("HTTPRoute/{} rules[{i}].matches[{j}]", ctx.name)
                    };
                    best = Some((key, rule_plan.clone()));
                }
            }
        }
    }
    Ok(match best {
        Some((_, plan)) => plan,
        None => {
            let names: Vec<String> = routes
                .iter()
                .map(|r| format!("HTTPRoute/{}", name_of(r).unwrap_or_default()))
                .collect();
            Plan::respond(
                names.join(","),
                404,
                format!(
                    "no route: no rule of {} matches the request",
                    names.join(", ")
                ),
            )
        }
    })
}

fn rule_plan(
    world: &World<'_>,
    ctx: &Ctx,
    rule: &Value,
    field: &str,
    ns: &str,
) -> Result<Plan, MeshError> {
    let Filters {
        mirrors,
        redirect,
        request_headers,
        response_headers,
    } = filters(
        world,
        ctx,
        rule.get("filters"),
        &format!("{field}.filters"),
        ns,
    )?;
    let label = String::new();
    if let Some(status) = redirect {
        return Ok(Plan::respond(label, status, "redirect".into()));
    }
    let refs = ctx.arr(rule.get("backendRefs"), &format!("{field}.backendRefs"))?;
    if refs.is_empty() {
        return Ok(Plan::respond(
            label,
            500,
            format!("HTTPRoute {} {field} has no backendRefs", ctx.name),
        ));
    }
    let mut backends = Vec::new();
    for (k, b) in refs.iter().enumerate() {
        let bf = format!("{field}.backendRefs[{k}]");
        ctx.obj(Some(b), &bf)?;
        let weight = ctx
            .uint(b.get("weight"), &format!("{bf}.weight"))?
            .unwrap_or(1);
        let bfl = filters(world, ctx, b.get("filters"), &format!("{bf}.filters"), ns)?;
        if bfl.redirect.is_some() {
            return Err(ctx.err(
                &format!("{bf}.filters"),
                "RequestRedirect is not allowed on a backendRef",
            ));
        }
        let mut backend = Backend::new(weight, backend_target(world, ctx, b, &bf, ns)?);
        backend.mirrors = bfl.mirrors;
        backend.request_headers = bfl.request_headers;
        backend.response_headers = bfl.response_headers;
        backends.push(backend);
    }
    let mut plan = Plan::forward(label, backends, mirrors);
    plan.request_headers = request_headers;
    plan.response_headers = response_headers;
    Ok(plan)
}

/// A Gateway API backend reference resolved to pods. Invalid references get
/// 500, as the spec requires; a valid Service without ready pods gets 503.
fn backend_target(
    world: &World<'_>,
    ctx: &Ctx,
    b: &Value,
    field: &str,
    ns: &str,
) -> Result<Target, MeshError> {
    let group = ctx
        .str(b.get("group"), &format!("{field}.group"))?
        .unwrap_or("");
    let kind = ctx
        .str(b.get("kind"), &format!("{field}.kind"))?
        .unwrap_or("Service");
    let name = ctx
        .str(b.get("name"), &format!("{field}.name"))?
        .ok_or_else(|| ctx.err(&format!("{field}.name"), "is required"))?;
    let bns = ctx
        .str(b.get("namespace"), &format!("{field}.namespace"))?
        .unwrap_or(ns);
    if !matches!(group, "" | "core") || kind != "Service" {
        return Ok(Target::fail(
            500,
            format!("invalid backendRef: {kind}.{group} {name} is not a Service"),
        ));
    }
    if bns != world.ns {
        return Ok(Target::fail(
            500,
            format!("invalid backendRef: Service {bns}/{name} is in another namespace"),
        ));
    }
    if world.service(name).is_none() {
        return Ok(Target::fail(
            500,
            format!(
                "invalid backendRef: no Service {name} in namespace {}",
                world.ns
            ),
        ));
    }
    world.service_target(name, &[], name.to_owned(), 500)
}

/// What a list of filters does to where a request goes and what it carries.
#[derive(Default)]
struct Filters {
    /// RequestMirror filters.
    mirrors: Vec<Mirror>,
    /// A RequestRedirect's status.
    redirect: Option<u16>,
    /// RequestHeaderModifier filters, in order.
    request_headers: HeaderOps,
    /// ResponseHeaderModifier filters, in order.
    response_headers: HeaderOps,
}

fn filters(
    world: &World<'_>,
    ctx: &Ctx,
    v: Option<&Value>,
    field: &str,
    ns: &str,
) -> Result<Filters, MeshError> {
    let mut mirrors = Vec::new();
    let mut redirect = None;
    let mut request_headers = HeaderOps::default();
    let mut response_headers = HeaderOps::default();
    for (i, flt) in ctx.arr(v, field)?.iter().enumerate() {
        let f = format!("{field}[{i}]");
        ctx.obj(Some(flt), &f)?;
        match ctx.str(flt.get("type"), &format!("{f}.type"))? {
            Some("RequestMirror") => {
                let mf = format!("{f}.requestMirror");
                let m = ctx
                    .obj(flt.get("requestMirror"), &mf)?
                    .ok_or_else(|| ctx.err(&mf, "is required for type RequestMirror"))?;
                let backend = m
                    .get("backendRef")
                    .filter(|b| !b.is_null())
                    .ok_or_else(|| ctx.err(&format!("{mf}.backendRef"), "is required"))?;
                let percent = ctx.uint(m.get("percent"), &format!("{mf}.percent"))?;
                let fraction = ctx.obj(m.get("fraction"), &format!("{mf}.fraction"))?;
                let share = match (percent, fraction) {
                    (Some(_), Some(_)) => {
                        return Err(ctx.err(&mf, "only one of percent and fraction may be set"));
                    }
                    (Some(p), None) if p <= 100 => p as f64 / 100.0,
                    (Some(p), None) => {
                        return Err(ctx.err(&format!("{mf}.percent"), format!("{p} is over 100")));
                    }
                    (None, Some(fr)) => {
                        let ff = format!("{mf}.fraction");
                        let num = ctx
                            .uint(fr.get("numerator"), &format!("{ff}.numerator"))?
                            .ok_or_else(|| ctx.err(&format!("{ff}.numerator"), "is required"))?;
                        let den = ctx
                            .uint(fr.get("denominator"), &format!("{ff}.denominator"))?
                            .unwrap_or(100);
                        if den == 0 || num > den {
                            return Err(ctx.err(
                                &ff,
                                format!("{num}/{den} is not a fraction between 0 and 1"),
                            ));
                        }
                        num as f64 / den as f64
                    }
                    (None, None) => 1.0,
                };
                mirrors.push(Mirror {
                    fraction: share,
                    target: backend_target(world, ctx, backend, &format!("{mf}.backendRef"), ns)?,
                });
            }
            Some("RequestRedirect") => {
                let code = ctx.uint(
                    flt.pointer("/requestRedirect/statusCode"),
                    &format!("{f}.requestRedirect.statusCode"),
                )?;
                redirect = Some(match code {
                    None => 302,
                    Some(c) if (300..=399).contains(&c) => c as u16,
                    Some(c) => {
                        return Err(ctx.err(
                            &format!("{f}.requestRedirect.statusCode"),
                            format!("{c} is not a redirect status"),
                        ));
                    }
                });
            }
            Some("RequestHeaderModifier") => {
                let ops = HeaderOps::gateway_api(
                    ctx,
                    flt.get("requestHeaderModifier"),
                    &format!("{f}.requestHeaderModifier"),
                )?;
                request_headers = request_headers.then(&ops);
            }
            Some("ResponseHeaderModifier") => {
                let ops = HeaderOps::gateway_api(
                    ctx,
                    flt.get("responseHeaderModifier"),
                    &format!("{f}.responseHeaderModifier"),
                )?;
                response_headers = response_headers.then(&ops);
            }
            // Rewrites, CORS...: they do not change where a request goes.
            _ => {}
        }
    }
    Ok(Filters {
        mirrors,
        redirect,
        request_headers,
        response_headers,
    })
}

/// One `spec.parentRefs[i]` of an HTTPRoute, with Gateway API's defaults.
struct ParentRef<'a> {
    group: &'a str,
    kind: &'a str,
    name: &'a str,
    namespace: &'a str,
    section: Option<&'a str>,
    port: Option<u64>,
}

/// Read the parentRef `p` (at field path `f`) of a route in namespace `ns`.
fn parent_ref<'a>(
    ctx: &Ctx,
    p: &'a Value,
    f: &str,
    ns: &'a str,
) -> Result<ParentRef<'a>, MeshError> {
    ctx.obj(Some(p), f)?;
    Ok(ParentRef {
        group: ctx
            .str(p.get("group"), &format!("{f}.group"))?
            .unwrap_or("gateway.networking.k8s.io"),
        kind: ctx
            .str(p.get("kind"), &format!("{f}.kind"))?
            .unwrap_or("Gateway"),
        name: ctx
            .str(p.get("name"), &format!("{f}.name"))?
            .ok_or_else(|| ctx.err(&format!("{f}.name"), "is required"))?,
        namespace: ctx
            .str(p.get("namespace"), &format!("{f}.namespace"))?
            .unwrap_or(ns),
        section: ctx.str(p.get("sectionName"), &format!("{f}.sectionName"))?,
        port: ctx.uint(p.get("port"), &format!("{f}.port"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_prefix_matches_whole_elements() {
        assert!(prefix_matches("/", "/anything"));
        assert!(prefix_matches("/foo", "/foo"));
        assert!(prefix_matches("/foo", "/foo/bar"));
        assert!(prefix_matches("/foo/", "/foo"));
        assert!(!prefix_matches("/foo", "/foobar"));
        assert!(!prefix_matches("/foo", "/"));
    }
}
