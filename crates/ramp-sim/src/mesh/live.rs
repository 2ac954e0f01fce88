//! Routing against the objects in a running sim's [`Store`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::resources::GroupResource;
use crate::store::{ListOptions, Store};

use super::{HttpRequest, MeshError, RouteOptions, RouteReport, Snapshot, route};

/// The resource types a [`Snapshot`] is made of. Types not registered (the
/// Istio or Gateway API CRDs not installed) are simply absent.
const RESOURCES: [(&str, &str); 6] = [
    ("networking.istio.io", "virtualservices"),
    ("networking.istio.io", "destinationrules"),
    ("gateway.networking.k8s.io", "httproutes"),
    ("gateway.networking.k8s.io", "gateways"),
    ("", "services"),
    ("", "pods"),
];

/// A snapshot of `namespace` as stored now.
pub fn snapshot_from_store(store: &Store, namespace: &str) -> Result<Snapshot, MeshError> {
    let nsgr = GroupResource::new("", "namespaces");
    if let Err(e) = store.get(&nsgr, None, namespace) {
        return Err(if e.is_not_found() {
            MeshError::InvalidRequest {
                field: "namespace".into(),
                message: format!("namespace {namespace} not found"),
            }
        } else {
            MeshError::Store(e.to_string())
        });
    }
    let mut snapshot = Snapshot::new(namespace);
    for (group, resource) in RESOURCES {
        let gr = GroupResource::new(group, resource);
        if store.resource_type(&gr).is_none() {
            continue;
        }
        let list = store
            .list(&gr, Some(namespace), &ListOptions::default())
            .map_err(|e| MeshError::Store(e.to_string()))?;
        for obj in list.items {
            snapshot.add((*obj).clone());
        }
    }
    Ok(snapshot)
}

/// Routes `options.requests` copies of `request` through `namespace` as stored now.
/// A client in another namespace also brings that namespace's HTTPRoutes
/// (its consumer routes for Services here).
pub fn route_in_store(
    store: &Store,
    namespace: &str,
    request: &HttpRequest,
    options: &RouteOptions,
) -> Result<RouteReport, MeshError> {
    let mut snapshot = snapshot_from_store(store, namespace)?;
    if let Some(src) = request
        .source_namespace
        .as_deref()
        .filter(|src| *src != namespace)
    {
        let gr = GroupResource::new("gateway.networking.k8s.io", "httproutes");
        if store.resource_type(&gr).is_some() {
            let list = store
                .list(&gr, Some(src), &ListOptions::default())
                .map_err(|e| MeshError::Store(e.to_string()))?;
            for obj in list.items {
                snapshot.add((*obj).clone());
            }
        }
    }
    route(&snapshot, request, options)
}

/// One routing question, as the CLI and `/sim/v1/route` take it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteQuery {
    pub namespace: String,
    pub host: String,
    #[serde(default = "slash")]
    pub path: String,
    #[serde(default = "get")]
    pub method: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "thousand")]
    pub requests: u64,
    #[serde(default)]
    pub seed: u64,
    /// Enter through this gateway (`name` or `namespace/name`): a Gateway
    /// API Gateway in the namespace, else an Istio Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Namespace of the client (consumer routes of that namespace apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_namespace: Option<String>,
}

fn slash() -> String {
    "/".into()
}

fn get() -> String {
    "GET".into()
}

fn thousand() -> u64 {
    1000
}

impl RouteQuery {
    /// The request this query sends.
    pub fn request(&self) -> HttpRequest {
        let mut r = HttpRequest::new(self.host.clone())
            .path(self.path.clone())
            .method(self.method.clone());
        for (k, v) in &self.headers {
            r = r.header(k, v.clone());
        }
        if let Some(g) = &self.gateway {
            r = r.through_gateway(g.clone());
        }
        if let Some(ns) = &self.source_namespace {
            r = r.from_namespace(ns.clone());
        }
        r
    }

    /// Answers the query against `store`.
    pub fn run(&self, store: &Store) -> Result<RouteReport, MeshError> {
        route_in_store(
            store,
            &self.namespace,
            &self.request(),
            &RouteOptions {
                requests: self.requests,
                seed: self.seed,
            },
        )
    }
}
