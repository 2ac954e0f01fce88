//! Conflicting VirtualServices (Istio's IST0109).
//!
//! Istio merges VirtualServices that define the same host for the same
//! gateway in an undefined way, so a change ramp makes to one of them may
//! not take effect. Before touching routing ramp checks, among the
//! VirtualServices of the Rollout's namespace:
//! - that no other VirtualService claims a host (for a gateway) that a
//!   VirtualService ramp changes claims;
//! - that at most one claims the stable Service's own host for the mesh.
//!
//! Hosts are compared after making short names fully qualified in the
//! VirtualService's namespace (`reviews`, `reviews.ns` and `reviews.ns.svc`
//! become `reviews.ns.svc.cluster.local`); gateways after making them
//! `namespace/name` (no `gateways` means the mesh).

use std::collections::BTreeSet;

use serde_json::Value;

use super::RoutingContext;
use crate::error::RoutingError;

/// The gateway name Istio uses for sidecars.
const MESH: &str = "mesh";

/// A host as Istio resolves it in `namespace`: short names fully qualified.
pub fn normalize_host(host: &str, namespace: &str) -> String {
    let host = host.to_ascii_lowercase();
    if host.starts_with('*') {
        return host;
    }
    let labels: Vec<&str> = host.split('.').collect();
    match labels.as_slice() {
        [name] => format!("{name}.{namespace}.svc.cluster.local"),
        [name, ns] => format!("{name}.{ns}.svc.cluster.local"),
        [name, ns, "svc"] => format!("{name}.{ns}.svc.cluster.local"),
        _ => host,
    }
}

/// A gateway reference as `namespace/name` (or `mesh`).
pub fn normalize_gateway(gateway: &str, namespace: &str) -> String {
    if gateway == MESH || gateway.contains('/') {
        gateway.to_string()
    } else {
        format!("{namespace}/{gateway}")
    }
}

fn name_of(vs: &Value) -> &str {
    vs.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>")
}

/// The (host, gateway) pairs a VirtualService claims.
fn claims(vs: &Value, default_namespace: &str) -> BTreeSet<(String, String)> {
    let ns = vs
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or(default_namespace);
    let strings = |key: &str| -> Vec<String> {
        vs.pointer(&format!("/spec/{key}"))
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut gateways: Vec<String> = strings("gateways")
        .iter()
        .map(|g| normalize_gateway(g, ns))
        .collect();
    if gateways.is_empty() {
        gateways.push(MESH.to_string());
    }
    let mut out = BTreeSet::new();
    for host in strings("hosts") {
        for gateway in &gateways {
            out.insert((normalize_host(&host, ns), gateway.clone()));
        }
    }
    out
}

fn describe_gateway(gateway: &str) -> String {
    if gateway == MESH {
        "the mesh (sidecars)".to_string()
    } else {
        format!("gateway {gateway}")
    }
}

/// Check that the VirtualServices ramp will change (`changed`) share no
/// host and gateway with any other VirtualService of the namespace
/// (`in_namespace`, which may include them), and that at most one
/// VirtualService claims the stable Service's host for the mesh.
pub fn virtual_service_conflicts(
    changed: &[&Value],
    in_namespace: &[Value],
    ctx: &RoutingContext,
) -> Result<(), RoutingError> {
    let mut all: Vec<&Value> = changed.to_vec();
    let mut others: Vec<&Value> = in_namespace
        .iter()
        .filter(|o| !changed.iter().any(|c| name_of(c) == name_of(o)))
        .collect();
    others.sort_by_key(|o| name_of(o));
    all.extend(others);
    let claimed: Vec<BTreeSet<(String, String)>> =
        all.iter().map(|v| claims(v, &ctx.namespace)).collect();
    let conflict = |a: usize, b: usize, (host, gateway): &(String, String)| {
        RoutingError::ConflictingVirtualServices {
            object: format!("VirtualService {}", name_of(all[a])),
            other: format!("VirtualService {}", name_of(all[b])),
            host: host.clone(),
            gateway: describe_gateway(gateway),
        }
    };
    for a in 0..changed.len() {
        for b in 0..all.len() {
            if a == b {
                continue;
            }
            if let Some(shared) = claimed[a].intersection(&claimed[b]).next() {
                return Err(conflict(a, b, shared));
            }
        }
    }
    let service_host = (
        normalize_host(&ctx.stable_service, &ctx.namespace),
        MESH.to_string(),
    );
    let claimants: Vec<usize> = (0..all.len())
        .filter(|&i| claimed[i].contains(&service_host))
        .collect();
    if let [a, b, ..] = claimants.as_slice() {
        return Err(conflict(*a, *b, &service_host));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_gateways_are_compared_fully_qualified() {
        assert_eq!(
            normalize_host("reviews", "bookinfo"),
            "reviews.bookinfo.svc.cluster.local"
        );
        assert_eq!(
            normalize_host("reviews.bookinfo", "default"),
            "reviews.bookinfo.svc.cluster.local"
        );
        assert_eq!(
            normalize_host("reviews.bookinfo.svc", "default"),
            "reviews.bookinfo.svc.cluster.local"
        );
        assert_eq!(normalize_host("Demo.Example.com", "x"), "demo.example.com");
        assert_eq!(normalize_host("*", "x"), "*");
        assert_eq!(normalize_gateway("mesh", "x"), "mesh");
        assert_eq!(normalize_gateway("simple-gateway", "x"), "x/simple-gateway");
        assert_eq!(
            normalize_gateway("istio-system/ingress", "x"),
            "istio-system/ingress"
        );
    }
}
