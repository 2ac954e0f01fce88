//! API discovery documents: legacy (`APIVersions`, `APIGroupList`, `APIGroup`,
//! `APIResourceList`) and aggregated (`apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::resources::{ResourceType, compare_versions};

/// Content type of aggregated discovery v2 responses.
pub const AGGREGATED_V2: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// True if the `Accept` header asks for aggregated discovery v2.
pub fn wants_aggregated(accept: &str) -> bool {
    crate::server::media_types(accept).iter().any(|m| {
        m.param("g") == Some("apidiscovery.k8s.io")
            && m.param("v") == Some("v2")
            && m.param("as") == Some("APIGroupDiscoveryList")
    })
}

/// Groups (name → versions, preferred first) among the types; the core group is excluded.
fn groups(types: &[Arc<ResourceType>]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for rt in types.iter().filter(|t| !t.group.is_empty()) {
        let e = out.entry(rt.group.clone()).or_default();
        for v in &rt.versions {
            if !e.contains(&v.name) {
                e.push(v.name.clone());
            }
        }
    }
    for v in out.values_mut() {
        v.sort_by(|a, b| compare_versions(a, b));
    }
    out
}

/// `GET /api`.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_json(name: &str, versions: &[String]) -> Value {
    let gv = |v: &str| json!({"groupVersion": format!("{name}/{v}"), "version": v});
    json!({
        "name": name,
        "versions": versions.iter().map(|v| gv(v)).collect::<Vec<_>>(),
        "preferredVersion": versions.first().map(|v| gv(v)).unwrap_or(Value::Null),
    })
}

/// `GET /apis`.
pub fn api_group_list(types: &[Arc<ResourceType>]) -> Value {
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": groups(types).iter().map(|(g, vs)| group_json(g, vs)).collect::<Vec<_>>(),
    })
}

/// `GET /apis/{group}`.
pub fn api_group(types: &[Arc<ResourceType>], group: &str) -> Option<Value> {
    let gs = groups(types);
    let vs = gs.get(group)?;
    let mut g = group_json(group, vs);
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Some(g)
}

/// `GET /api/v1` or `/apis/{group}/{version}`; None when nothing is served there.
pub fn api_resource_list(types: &[Arc<ResourceType>], group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for rt in types
        .iter()
        .filter(|t| t.group == group && t.serves(version))
    {
        let mut r = json!({
            "name": rt.resource,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": rt.verbs,
        });
        if !rt.short_names.is_empty() {
            r["shortNames"] = json!(rt.short_names);
        }
        if !rt.categories.is_empty() {
            r["categories"] = json!(rt.categories);
        }
        resources.push(r);
        if rt.has_status(version) {
            resources.push(json!({
                "name": format!("{}/status", rt.resource), "singularName": "",
                "namespaced": rt.namespaced, "kind": rt.kind, "verbs": ["get", "patch", "update"],
            }));
        }
        if rt.group.is_empty() && rt.resource == "serviceaccounts" {
            resources.push(json!({
                "name": "serviceaccounts/token", "singularName": "",
                "namespaced": true, "group": "authentication.k8s.io", "version": "v1",
                "kind": "TokenRequest", "verbs": ["create"],
            }));
        }
        if rt.scale(version).is_some() {
            resources.push(json!({
                "name": format!("{}/scale", rt.resource), "singularName": "",
                "namespaced": rt.namespaced, "group": "autoscaling", "version": "v1",
                "kind": "Scale", "verbs": ["get", "patch", "update"],
            }));
        }
    }
    if resources.is_empty() {
        return None;
    }
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": if group.is_empty() { version.to_string() } else { format!("{group}/{version}") },
        "resources": resources,
    }))
}

fn discovery_resource(rt: &ResourceType, version: &str) -> Value {
    let mut r = json!({
        "resource": rt.resource,
        "responseKind": {"group": rt.group, "version": version, "kind": rt.kind},
        "scope": if rt.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": rt.singular,
        "verbs": rt.verbs,
    });
    if !rt.short_names.is_empty() {
        r["shortNames"] = json!(rt.short_names);
    }
    if !rt.categories.is_empty() {
        r["categories"] = json!(rt.categories);
    }
    let mut subs = Vec::new();
    if rt.has_status(version) {
        subs.push(json!({
            "subresource": "status",
            "responseKind": {"group": rt.group, "version": version, "kind": rt.kind},
            "verbs": ["get", "patch", "update"],
        }));
    }
    if rt.group.is_empty() && rt.resource == "serviceaccounts" {
        subs.push(json!({
            "subresource": "token",
            "responseKind": {"group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest"},
            "verbs": ["create"],
        }));
    }
    if rt.scale(version).is_some() {
        subs.push(json!({
            "subresource": "scale",
            "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
            "verbs": ["get", "patch", "update"],
        }));
    }
    if !subs.is_empty() {
        r["subresources"] = Value::Array(subs);
    }
    r
}

/// Aggregated discovery for `/api` (`core = true`) or `/apis`.
pub fn aggregated(types: &[Arc<ResourceType>], core: bool) -> Value {
    let mut items = Vec::new();
    if core {
        let resources: Vec<Value> = types
            .iter()
            .filter(|t| t.group.is_empty() && t.serves("v1"))
            .map(|t| discovery_resource(t, "v1"))
            .collect();
        items.push(json!({
            "metadata": {"creationTimestamp": null},
            "versions": [{"version": "v1", "resources": resources, "freshness": "Current"}],
        }));
    } else {
        for (g, versions) in groups(types) {
            let vs: Vec<Value> = versions
                .iter()
                .map(|v| {
                    let resources: Vec<Value> = types
                        .iter()
                        .filter(|t| t.group == g && t.serves(v))
                        .map(|t| discovery_resource(t, v))
                        .collect();
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            items.push(json!({
                "metadata": {"name": g, "creationTimestamp": null},
                "versions": vs,
            }));
        }
    }
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::builtin_types;

    fn types() -> Vec<Arc<ResourceType>> {
        builtin_types().into_iter().map(Arc::new).collect()
    }

    #[test]
    fn resource_list_has_subresources() {
        let l = api_resource_list(&types(), "apps", "v1").unwrap();
        let names: Vec<&str> = l["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"deployments"));
        assert!(names.contains(&"deployments/status"));
        assert!(names.contains(&"deployments/scale"));
        assert!(api_resource_list(&types(), "apps", "v9").is_none());
    }

    #[test]
    fn aggregated_accept_detection() {
        assert!(wants_aggregated(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
        ));
        assert!(!wants_aggregated("application/json, */*"));
    }
}
