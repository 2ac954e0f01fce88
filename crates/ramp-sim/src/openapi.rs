//! OpenAPI v3: the `/openapi/v3` index and one document per group-version.
//!
//! What clients read from it: kubectl and Helm look for the `PATCH` operation of a kind (by its
//! `x-kubernetes-group-version-kind`) and check that it accepts the `fieldValidation` query
//! parameter before asking for server-side field validation. Custom resources carry their CRD
//! schema; built-in kinds get a permissive schema (`x-kubernetes-preserve-unknown-fields`).
//!
//! The `PATCH` request bodies deliberately do not list `application/strategic-merge-patch+json`:
//! kubectl would then build strategic merge patches from these (metadata-free) schemas; without
//! it kubectl uses its compiled-in type information, as it does against older servers.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::resources::ResourceType;

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// Every served group-version, as `(group, version)`.
pub fn group_versions(types: &[Arc<ResourceType>]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for rt in types {
        for v in &rt.versions {
            let gv = (rt.group.clone(), v.name.clone());
            if !out.contains(&gv) {
                out.push(gv);
            }
        }
    }
    out.sort();
    out
}

/// `GET /openapi/v3`.
pub fn index(types: &[Arc<ResourceType>]) -> Value {
    let mut paths = Map::new();
    for (g, v) in group_versions(types) {
        let doc = document(types, &g, &v);
        let mut h = DefaultHasher::new();
        doc.to_string().hash(&mut h);
        let p = gv_path(&g, &v);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={:016X}", h.finish())}),
        );
    }
    json!({"paths": paths})
}

/// The schema component name of a kind.
pub fn schema_name(rt: &ResourceType, version: &str) -> String {
    if rt.is_custom() {
        let rev: Vec<&str> = rt.group.split('.').rev().collect();
        format!("{}.{version}.{}", rev.join("."), rt.kind)
    } else {
        let g = if rt.group.is_empty() {
            "core"
        } else {
            rt.group.split('.').next().unwrap_or(&rt.group)
        };
        format!("io.k8s.api.{g}.{version}.{}", rt.kind)
    }
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "version": version, "kind": kind})
}

fn query(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description,
           "schema": {"type": "string", "uniqueItems": true}})
}

fn path_param(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true,
           "description": format!("{name} of the resource"),
           "schema": {"type": "string", "uniqueItems": true}})
}

fn ok_response(schema_ref: &str) -> Value {
    json!({"200": {"description": "OK", "content": {
        "application/json": {"schema": {"$ref": schema_ref}},
        "application/yaml": {"schema": {"$ref": schema_ref}},
    }}, "401": {"description": "Unauthorized"}})
}

fn write_params() -> Vec<Value> {
    vec![
        query(
            "dryRun",
            "When present, indicates that modifications should not be persisted.",
        ),
        query(
            "fieldManager",
            "fieldManager is a name associated with the actor or entity that is making these changes.",
        ),
        query(
            "fieldValidation",
            "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: Ignore, Warn, Strict.",
        ),
    ]
}

#[allow(clippy::too_many_arguments)]
fn operation(
    action: &str,
    op_id: &str,
    gvk_v: &Value,
    schema_ref: &str,
    mut params: Vec<Value>,
    body: Option<Vec<&str>>,
) -> Value {
    if matches!(action, "patch" | "put" | "post") {
        params.extend(write_params());
    }
    if action == "patch" {
        params.push(query(
            "force",
            "Force is going to \"force\" Apply requests.",
        ));
    }
    let mut op = json!({
        "operationId": op_id,
        "parameters": params,
        "responses": ok_response(schema_ref),
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk_v,
    });
    if let Some(types) = body {
        let mut content = Map::new();
        for t in types {
            let schema = if t.contains("patch") {
                json!({"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"})
            } else {
                json!({"$ref": schema_ref})
            };
            content.insert(t.into(), json!({"schema": schema}));
        }
        op["requestBody"] = json!({"content": content, "required": true});
    }
    op
}

const PATCH_TYPES: [&str; 3] = [
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
];

fn kind_schema(rt: &ResourceType, version: &str) -> Value {
    let mut schema = rt
        .version(version)
        .and_then(|v| v.schema.as_deref().cloned())
        .unwrap_or_else(|| {
            json!({
                "type": "object",
                "description": format!("{} ({})", rt.kind, rt.api_version(version)),
                "x-kubernetes-preserve-unknown-fields": true,
            })
        });
    if let Some(o) = schema.as_object_mut() {
        let props = o
            .entry("properties")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(p) = props.as_object_mut() {
            p.entry("apiVersion")
                .or_insert_with(|| json!({"type": "string"}));
            p.entry("kind").or_insert_with(|| json!({"type": "string"}));
            p.insert(
                "metadata".into(),
                json!({"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}),
            );
        }
        o.insert(
            "x-kubernetes-group-version-kind".into(),
            json!([gvk(&rt.group, version, &rt.kind)]),
        );
    }
    schema
}

/// `GET /openapi/v3/api/v1` or `/openapi/v3/apis/{group}/{version}`.
pub fn document(types: &[Arc<ResourceType>], group: &str, version: &str) -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    schemas.insert(
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta".into(),
        json!({"type": "object", "description": "Standard object metadata.",
               "x-kubernetes-preserve-unknown-fields": true}),
    );
    schemas.insert(
        "io.k8s.apimachinery.pkg.apis.meta.v1.Patch".into(),
        json!({"type": "object", "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body."}),
    );
    schemas.insert(
        "io.k8s.apimachinery.pkg.apis.meta.v1.Status".into(),
        json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true,
               "x-kubernetes-group-version-kind": [gvk("", "v1", "Status")]}),
    );
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    for rt in types
        .iter()
        .filter(|t| t.group == group && t.serves(version))
    {
        let name = schema_name(rt, version);
        let sref = format!("#/components/schemas/{name}");
        schemas.insert(name.clone(), kind_schema(rt, version));
        let list_name = format!("{name}List");
        schemas.insert(
            list_name.clone(),
            json!({"type": "object", "properties": {"items": {"type": "array", "items": {"$ref": sref}}},
                   "x-kubernetes-group-version-kind": [gvk(&rt.group, version, &rt.list_kind)]}),
        );
        let g = gvk(&rt.group, version, &rt.kind);
        let ns_seg = if rt.namespaced {
            "/namespaces/{namespace}"
        } else {
            ""
        };
        let mut base_params = vec![path_param("name")];
        if rt.namespaced {
            base_params.push(path_param("namespace"));
        }
        let k = &rt.kind;
        if !rt.stored {
            paths.insert(
                format!("{prefix}/{}", rt.resource),
                json!({"post": operation("post", &format!("create{k}"), &g, &sref, vec![], Some(vec!["application/json"]))}),
            );
            continue;
        }
        let item = format!("{prefix}{ns_seg}/{}/{{name}}", rt.resource);
        paths.insert(
            item.clone(),
            json!({
                "get": operation("get", &format!("read{k}"), &g, &sref, vec![], None),
                "put": operation("put", &format!("replace{k}"), &g, &sref, vec![], Some(vec!["application/json"])),
                "patch": operation("patch", &format!("patch{k}"), &g, &sref, vec![], Some(PATCH_TYPES.to_vec())),
                "delete": operation("delete", &format!("delete{k}"), &g, &sref, vec![], None),
                "parameters": base_params,
            }),
        );
        let mut coll_params = Vec::new();
        if rt.namespaced {
            coll_params.push(path_param("namespace"));
        }
        paths.insert(
            format!("{prefix}{ns_seg}/{}", rt.resource),
            json!({
                "get": operation("list", &format!("list{k}"), &g, &format!("#/components/schemas/{list_name}"), vec![], None),
                "post": operation("post", &format!("create{k}"), &g, &sref, vec![], Some(vec!["application/json"])),
                "parameters": coll_params,
            }),
        );
        if rt.has_status(version) {
            paths.insert(
                format!("{item}/status"),
                json!({
                    "get": operation("get", &format!("read{k}Status"), &g, &sref, vec![], None),
                    "put": operation("put", &format!("replace{k}Status"), &g, &sref, vec![], Some(vec!["application/json"])),
                    "patch": operation("patch", &format!("patch{k}Status"), &g, &sref, vec![], Some(PATCH_TYPES.to_vec())),
                }),
            );
        }
        if rt.scale(version).is_some() {
            let sg = gvk("autoscaling", "v1", "Scale");
            let scale_ref = "#/components/schemas/io.k8s.api.autoscaling.v1.Scale";
            schemas.insert(
                "io.k8s.api.autoscaling.v1.Scale".into(),
                json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                       "x-kubernetes-group-version-kind": [sg]}),
            );
            paths.insert(
                format!("{item}/scale"),
                json!({
                    "get": operation("get", &format!("read{k}Scale"), &sg, scale_ref, vec![], None),
                    "put": operation("put", &format!("replace{k}Scale"), &sg, scale_ref, vec![], Some(vec!["application/json"])),
                    "patch": operation("patch", &format!("patch{k}Scale"), &sg, scale_ref, vec![], Some(PATCH_TYPES.to_vec())),
                }),
            );
        }
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0-ramp-sim"},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::builtin_types;

    #[test]
    fn patch_operation_has_gvk_and_field_validation() {
        let types: Vec<_> = builtin_types().into_iter().map(Arc::new).collect();
        let doc = document(&types, "apps", "v1");
        let op = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(op["x-kubernetes-group-version-kind"]["kind"], "Deployment");
        assert!(
            op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation" && p["in"] == "query")
        );
        let idx = index(&types);
        assert!(
            idx["paths"]["apis/apps/v1"]["serverRelativeURL"]
                .as_str()
                .unwrap()
                .starts_with("/openapi/v3/apis/apps/v1?hash=")
        );
    }
}
