//! The mesh router: where would a service mesh send these requests?
//!
//! [`route`] is a pure function over a [`Snapshot`] of one namespace's
//! routing objects (Istio VirtualServices and DestinationRules, Gateway API
//! HTTPRoutes attached to Services, Services, Pods). Given a request (host,
//! path, method, headers) it decides, for each of N copies, which pod serves
//! it, which copies are mirrored and where, and which fail and why, and
//! returns the counts as a [`RouteReport`].
//!
//! Which object decides, for a request to host `H` (short name, `name.ns`,
//! or FQDN):
//! 1. the mesh-bound VirtualService whose `hosts` match `H` most specifically
//!    (exact name beats wildcard, longer wildcard beats shorter); several at
//!    the same level are an IST0109 conflict and the oldest is used, as Istio
//!    does;
//! 2. otherwise, when `H` is a Service, the HTTPRoutes whose `parentRefs` name
//!    that Service (GAMMA), all their rules merged by the Gateway API
//!    precedence; a VirtualService and HTTPRoutes on the same host are also
//!    reported as a conflict, and the older configuration is used;
//! 3. otherwise the Service itself: its ready pods, evenly.
//!
//! A request entering through a Gateway API `Gateway` (`HttpRequest::gateway`
//! naming one in the snapshot) is decided by the HTTPRoutes attached to the
//! listener that takes it (port, most specific hostname, `allowedRoutes`,
//! `sectionName`, route `hostnames`) instead.
//!
//! A request addressed to a pod IP reaches that pod directly.
//!
//! Simplifications: requests carry no source workload (only, optionally, a
//! source namespace: GAMMA consumer routes, Istio `sourceNamespace`), so
//! Istio `sourceLabels` matches never match; query strings are not
//! percent-decoded; ports only matter through `port` matches and `parentRefs`
//! `port`; only objects in the snapshot's namespace are considered (and consumer
//! HTTPRoutes of other namespaces naming its Services).

mod backend;
mod gateway;
mod headers;
pub mod host;
mod istio;
mod json;
mod live;
mod plan;
mod report;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use backend::{POD_TEMPLATE_HASH_LABEL, VERSION_LABEL, pod_is_ready};
pub use live::{RouteQuery, route_in_store, snapshot_from_store};
pub use report::{Conflict, NONE_LABEL, RouteReport, ShadowReport};

use backend::World;
use json::{name_of, namespace_of};

/// Errors from [`route`]: bad input, never a routing outcome (those are counted
/// in the report).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MeshError {
    /// A routing object has a field a mesh would reject.
    #[error("{kind} {name}: {field}: {message}")]
    InvalidObject {
        kind: &'static str,
        name: String,
        field: String,
        message: String,
    },
    /// The request itself is malformed.
    #[error("invalid request: {field}: {message}")]
    InvalidRequest { field: String, message: String },
    /// Reading the objects from the store failed.
    #[error("reading the cluster: {0}")]
    Store(String),
}

/// The routing-relevant objects of one namespace, as JSON (the shape the API
/// server stores).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub namespace: String,
    pub virtual_services: Vec<Value>,
    pub destination_rules: Vec<Value>,
    pub http_routes: Vec<Value>,
    /// HTTPRoutes of other namespaces with a `parentRefs` entry naming a
    /// Service of this one (GAMMA consumer routes): they apply to requests
    /// from their own namespace only.
    pub consumer_http_routes: Vec<Value>,
    /// Gateway API Gateways (`gateway.networking.k8s.io`), for requests that
    /// enter through one.
    pub gateways: Vec<Value>,
    pub services: Vec<Value>,
    pub pods: Vec<Value>,
}

impl Snapshot {
    /// An empty snapshot of `namespace`.
    pub fn new(namespace: impl Into<String>) -> Self {
        Snapshot {
            namespace: namespace.into(),
            ..Default::default()
        }
    }

    /// A snapshot holding those of `objects` that matter for routing; see [`Snapshot::add`].
    pub fn from_objects(
        namespace: impl Into<String>,
        objects: impl IntoIterator<Item = Value>,
    ) -> Self {
        let mut s = Snapshot::new(namespace);
        for o in objects {
            s.add(o);
        }
        s
    }

    /// Adds an object by its `apiVersion`/`kind`. Objects of other kinds or
    /// other namespaces are ignored (returns false), except HTTPRoutes of
    /// other namespaces whose `parentRefs` name a Service in this one
    /// (consumer routes); objects without a namespace are taken to be in this one.
    pub fn add(&mut self, obj: Value) -> bool {
        if namespace_of(&obj).is_some_and(|ns| ns != self.namespace) {
            let is_route = obj.get("kind").and_then(Value::as_str) == Some("HTTPRoute")
                && obj
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .is_some_and(|v| v.starts_with("gateway.networking.k8s.io/"));
            let names_ours = obj
                .pointer("/spec/parentRefs")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|p| {
                    p.get("kind").and_then(Value::as_str) == Some("Service")
                        && p.get("namespace").and_then(Value::as_str) == Some(&self.namespace)
                });
            if is_route && names_ours {
                self.consumer_http_routes.push(obj);
                return true;
            }
            return false;
        }
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
        let api_version = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        let list = match (group, kind) {
            ("networking.istio.io", "VirtualService") => &mut self.virtual_services,
            ("networking.istio.io", "DestinationRule") => &mut self.destination_rules,
            ("gateway.networking.k8s.io", "HTTPRoute") => &mut self.http_routes,
            ("gateway.networking.k8s.io", "Gateway") => &mut self.gateways,
            ("", "Service") => &mut self.services,
            ("", "Pod") => &mut self.pods,
            _ => return false,
        };
        list.push(obj);
        true
    }
}

/// One HTTP request, as sent N times by [`route`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpRequest {
    /// `reviews`, `reviews.ns`, `reviews.ns.svc.cluster.local`, optionally `:port`.
    pub host: String,
    /// Path, optionally with `?query`. Defaults to `/`.
    #[serde(default = "default_path")]
    pub path: String,
    /// Defaults to `GET`.
    #[serde(default = "default_method")]
    pub method: String,
    /// Header names are case-insensitive.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The gateway the request enters through (`name` or `namespace/name`);
    /// `None` is a request from inside the mesh. When the snapshot holds a
    /// Gateway API `Gateway` of that name, the HTTPRoutes attached to it decide
    /// (and `host` is the `Host` header, matched against listener and route
    /// hostnames); otherwise it names an Istio Gateway, and VirtualServices
    /// bound to it apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Namespace of the client workload (mesh requests): consumer HTTPRoutes
    /// of that namespace for the destination Service apply, in place of the
    /// Service's own routes. `None`: the destination's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_namespace: Option<String>,
}

fn default_path() -> String {
    "/".to_owned()
}

fn default_method() -> String {
    "GET".to_owned()
}

impl HttpRequest {
    /// `GET /` to `host`.
    pub fn new(host: impl Into<String>) -> Self {
        HttpRequest {
            host: host.into(),
            path: default_path(),
            method: default_method(),
            headers: BTreeMap::new(),
            gateway: None,
            source_namespace: None,
        }
    }

    /// Send from a client in namespace `ns` (see [`HttpRequest::source_namespace`]).
    pub fn from_namespace(mut self, ns: impl Into<String>) -> Self {
        self.source_namespace = Some(ns.into());
        self
    }

    /// Enter through the Istio Gateway `name` (or `namespace/name`).
    pub fn through_gateway(mut self, name: impl Into<String>) -> Self {
        self.gateway = Some(name.into());
        self
    }

    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    pub fn method(mut self, method: impl Into<String>) -> Self {
        self.method = method.into();
        self
    }

    /// Adds a header; a repeated name appends the value after a comma, as proxies join them.
    pub fn header(mut self, name: impl AsRef<str>, value: impl Into<String>) -> Self {
        let name = name.as_ref().to_ascii_lowercase();
        let value = value.into();
        self.headers
            .entry(name)
            .and_modify(|v| {
                v.push(',');
                v.push_str(&value);
            })
            .or_insert(value);
        self
    }

    /// Parses a `Name: value` header line (as given to `-H`).
    pub fn parse_header(line: &str) -> Result<(String, String), MeshError> {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| MeshError::InvalidRequest {
                field: "header".into(),
                message: format!("{line:?} is not of the form 'Name: value'"),
            })?;
        let name = name.trim();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(MeshError::InvalidRequest {
                field: "header".into(),
                message: format!("{line:?} has no valid header name"),
            });
        }
        Ok((name.to_ascii_lowercase(), value.trim().to_owned()))
    }
}

/// How many requests to send and the seed for weighted choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteOptions {
    pub requests: u64,
    pub seed: u64,
}

impl Default for RouteOptions {
    fn default() -> Self {
        RouteOptions {
            requests: 1000,
            seed: 0,
        }
    }
}

impl RouteOptions {
    pub fn new(requests: u64) -> Self {
        RouteOptions { requests, seed: 0 }
    }

    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

/// The request as matchers see it.
#[derive(Debug)]
pub(crate) struct ReqView<'r> {
    /// Host as written, with its port if one was given (the `:authority`).
    pub authority: &'r str,
    pub fqdn: String,
    pub port: Option<u16>,
    pub path: &'r str,
    /// Path with its query string, as the `:path` pseudo-header carries it.
    pub raw_path: &'r str,
    pub query: Vec<(String, String)>,
    pub method: String,
    pub headers: BTreeMap<String, &'r str>,
    /// The gateway the request entered through, if any.
    pub gateway: Option<&'r str>,
    /// Namespace the request is routed in (for `ns/name` gateway references).
    pub namespace: String,
    /// Namespace of the client, when not the routing namespace.
    pub source_namespace: Option<&'r str>,
    /// Namespace of the client as given (Istio `sourceNamespace` matches).
    pub client_namespace: Option<&'r str>,
}

impl ReqView<'_> {
    /// Whether a `gateways` list (of a VirtualService or a match) admits this
    /// request: an empty list means the mesh only; `mesh` admits requests from
    /// inside the mesh; a gateway name (`name` or `ns/name`) admits requests
    /// entering through that gateway.
    pub fn admitted_by(&self, gateways: &[&str], ns: &str) -> bool {
        match self.gateway {
            None => gateways.is_empty() || gateways.contains(&"mesh"),
            Some(gw) => {
                let (gw_ns, gw_name) = gw.split_once('/').unwrap_or((ns, gw));
                gateways.iter().any(|g| {
                    let (g_ns, g_name) = g.split_once('/').unwrap_or((ns, g));
                    g_name == gw_name && g_ns == gw_ns
                })
            }
        }
    }

    /// A request header by (case-insensitive) name. The HTTP/2 pseudo-headers
    /// `:method`, `:path`, `:authority` and `:scheme` read the request itself,
    /// as Envoy's header matchers do.
    pub fn header(&self, name: &str) -> Option<&str> {
        match name {
            ":method" => Some(&self.method),
            ":path" => Some(self.raw_path),
            ":authority" => Some(self.authority),
            ":scheme" => Some("http"),
            _ => self.headers.get(&name.to_ascii_lowercase()).copied(),
        }
    }

    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Routes `options.requests` copies of `request` through the namespace in
/// `snapshot` and counts where they went. Reproducible for a given seed.
///
/// Routing failures a proxy would answer with an error status (no Service,
/// undefined subset, no ready pods, no matching rule) are counted in the
/// report; `Err` means the request or a routing object is malformed.
pub fn route(
    snapshot: &Snapshot,
    request: &HttpRequest,
    options: &RouteOptions,
) -> Result<RouteReport, MeshError> {
    let world = World::new(snapshot);
    let req = view(&world, request)?;
    let mut report = RouteReport::default();
    let headers: BTreeMap<String, String> = request
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();

    // Through a Gateway API Gateway: only the HTTPRoutes attached to it decide.
    if let Some(gw) = gateway::entry_gateway(&world, &req) {
        let routes = gateway::attached_to_gateway(&world, gw, &req, &mut report)?;
        let mut plan = if routes.is_empty() {
            let name = name_of(gw).unwrap_or_default();
            plan::Plan::respond(
                format!("Gateway/{name}"),
                404,
                format!("no route: no HTTPRoute attached to Gateway {name} takes this host"),
            )
        } else {
            gateway::plan(&world, &routes, &req)?
        };
        plan::run(
            &mut plan,
            &headers,
            options.requests,
            options.seed,
            &mut report,
        );
        return Ok(report);
    }

    // To a pod IP: that pod, no routing rules (they bind to hosts and Services).
    if let Some(target) = host::split_port(req.authority)
        .0
        .parse::<std::net::IpAddr>()
        .ok()
        .and_then(|ip| world.pod_ip_target(&ip.to_string()))
    {
        let mut plan = plan::Plan::forward(
            format!("pod IP {}", host::split_port(req.authority).0),
            vec![plan::Backend::new(1, target)],
            Vec::new(),
        );
        plan::run(
            &mut plan,
            &headers,
            options.requests,
            options.seed,
            &mut report,
        );
        return Ok(report);
    }

    let vs = istio::select(&world, &req, &mut report)?;
    let gw = match host::service_name(&req.fqdn, world.ns) {
        Some(svc) if world.service(svc).is_some() => {
            gateway::attached(&world, svc, &req, &mut report)?
        }
        _ => Vec::new(),
    };

    let mut plan = match (vs, gw.is_empty()) {
        (Some(vs), true) => istio::plan(&world, vs, &req)?,
        (Some(vs), false) => {
            // Istio turns GAMMA HTTPRoutes into VirtualServices for the same
            // host: two configurations, the older one wins.
            let mut objects = vec![format!(
                "VirtualService/{}",
                name_of(vs).unwrap_or_default()
            )];
            objects.extend(
                gw.iter()
                    .map(|r| format!("HTTPRoute/{}", name_of(r).unwrap_or_default())),
            );
            let vs_first = json::age_key(vs) <= json::age_key(gw[0]);
            let used = if vs_first { &objects[0] } else { &objects[1] };
            report.conflicts.push(Conflict {
                code: "IST0109".into(),
                host: req.fqdn.clone(),
                message: format!(
                    "{} all route host {} for the mesh; only the oldest configuration, {used}, is used",
                    objects.join(", "),
                    req.fqdn
                ),
                objects: objects.clone(),
            });
            if vs_first {
                istio::plan(&world, vs, &req)?
            } else {
                gateway::plan(&world, &gw, &req)?
            }
        }
        (None, false) => gateway::plan(&world, &gw, &req)?,
        (None, true) => default_plan(&world, &req)?,
    };
    plan::run(
        &mut plan,
        &headers,
        options.requests,
        options.seed,
        &mut report,
    );
    Ok(report)
}

fn view<'r>(world: &World<'_>, request: &'r HttpRequest) -> Result<ReqView<'r>, MeshError> {
    let authority = request.host.trim();
    let (name, port) = host::split_port(authority);
    if name.is_empty() {
        return Err(MeshError::InvalidRequest {
            field: "host".into(),
            message: "must not be empty".into(),
        });
    }
    let fqdn = host::qualify(name, world.ns);
    let port =
        port.or_else(|| host::service_name(&fqdn, world.ns).and_then(|s| world.first_port(s)));
    let raw_path = if request.path.is_empty() {
        "/"
    } else {
        request.path.as_str()
    };
    if !raw_path.starts_with('/') {
        return Err(MeshError::InvalidRequest {
            field: "path".into(),
            message: format!("{raw_path:?} must start with /"),
        });
    }
    let (path, query) = match raw_path.split_once('?') {
        Some((p, q)) => (p, q),
        None => (raw_path, ""),
    };
    let query = query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (kv.to_owned(), String::new()),
        })
        .collect();
    let headers = request
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str()))
        .collect();
    Ok(ReqView {
        authority,
        fqdn,
        port,
        path,
        raw_path,
        query,
        method: request.method.to_ascii_uppercase(),
        headers,
        gateway: request.gateway.as_deref(),
        namespace: world.ns.to_string(),
        source_namespace: request
            .source_namespace
            .as_deref()
            .filter(|ns| *ns != world.ns),
        client_namespace: request.source_namespace.as_deref(),
    })
}

/// No VirtualService, no HTTPRoute: the Service's ready pods, evenly.
fn default_plan(world: &World<'_>, req: &ReqView<'_>) -> Result<plan::Plan, MeshError> {
    let Some(svc) = host::service_name(&req.fqdn, world.ns).filter(|s| world.service(s).is_some())
    else {
        return Ok(plan::Plan::respond(
            format!("host {}", req.fqdn),
            503,
            format!(
                "no route: no VirtualService, HTTPRoute or Service for host {} in namespace {}",
                req.fqdn, world.ns
            ),
        ));
    };
    let target = world.service_target(svc, &[], svc.to_owned(), 503)?;
    Ok(plan::Plan::forward(
        format!("Service/{svc}"),
        vec![plan::Backend::new(1, target)],
        Vec::new(),
    ))
}

#[cfg(test)]
mod gateway_entry_tests {
    use super::*;
    use serde_json::json;

    fn world() -> Snapshot {
        let mut s = Snapshot::new("default");
        s.add(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}));
        for (name, v) in [("web-a", "a"), ("web-canary-a", "canary")] {
            s.add(json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": "default", "labels": {"app": if v == "a" {"web"} else {"web-canary"}, "version": v}},
                "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}));
        }
        s.add(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web-canary", "namespace": "default"},
            "spec": {"selector": {"app": "web-canary"}, "ports": [{"port": 80}]}}));
        s.add(json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "vs", "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"gateways": ["simple-gateway"], "hosts": ["*"], "http": [
                {"match": [{"headers": {"version": {"exact": "canary"}}}], "route": [{"destination": {"host": "web-canary"}}]},
                {"route": [{"destination": {"host": "web"}}]}]}}));
        s
    }

    #[test]
    fn a_gateway_bound_virtual_service_applies_only_through_its_gateway() {
        let w = world();
        let opts = RouteOptions::new(10);
        let canary = HttpRequest::new("web").header("version", "canary");
        // From inside the mesh the VirtualService does not apply.
        let r = route(&w, &canary, &opts).unwrap();
        assert_eq!(r.by_version.get("a"), Some(&10), "{r:?}");
        // Through the gateway it does.
        let r = route(&w, &canary.clone().through_gateway("simple-gateway"), &opts).unwrap();
        assert_eq!(r.by_version.get("canary"), Some(&10), "{r:?}");
        let r = route(&w, &canary.through_gateway("default/simple-gateway"), &opts).unwrap();
        assert_eq!(r.by_version.get("canary"), Some(&10), "{r:?}");
        // Another gateway: not bound.
        let r = route(&w, &HttpRequest::new("web").through_gateway("other"), &opts).unwrap();
        assert!(
            r.warnings
                .iter()
                .any(|m| m.contains("not bound to gateway other")),
            "{r:?}"
        );
    }
}
