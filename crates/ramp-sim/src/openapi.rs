//! OpenAPI v3: the `/openapi/v3` index and one document per group-version.
//!
//! What clients read from it: kubectl and Helm look for the `PATCH` operation of a kind (by its
//! `x-kubernetes-group-version-kind`) and check that it accepts the `fieldValidation` query
//! parameter before asking for server-side field validation; `kubectl explain` walks the schemas.
//! Custom resources carry their CRD schema; built-in kinds carry the Kubernetes 1.33 schemas as
//! k8s-openapi describes them (generated with `schemars`, with every type they refer to), and a
//! permissive schema (`x-kubernetes-preserve-unknown-fields`) for a kind not in that list.
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
        // The schemas the built-in kinds refer to never change: hashing without them is as
        // good a version and much cheaper.
        let doc = document_with(types, &g, &v, false);
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

/// The OpenAPI schemas of the built-in kinds (by group, version, kind), and every schema they
/// refer to (by component name), generated once from k8s-openapi's `JsonSchema` impls.
struct BuiltinSchemas {
    kinds: std::collections::HashMap<(&'static str, &'static str, &'static str), Value>,
    components: Map<String, Value>,
}

fn builtin_schemas() -> &'static BuiltinSchemas {
    static SCHEMAS: std::sync::LazyLock<BuiltinSchemas> = std::sync::LazyLock::new(|| {
        use k8s_openapi::api as a;
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
        let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
        let mut kinds = std::collections::HashMap::new();
        macro_rules! kinds {
            ($($g:literal $v:literal $k:literal => $t:ty,)*) => {$(
                let schema = generator.subschema_for::<$t>();
                kinds.insert(($g, $v, $k), serde_json::to_value(schema).unwrap_or(Value::Null));
            )*};
        }
        kinds! {
            "" "v1" "Namespace" => a::core::v1::Namespace,
            "" "v1" "Pod" => a::core::v1::Pod,
            "" "v1" "Service" => a::core::v1::Service,
            "" "v1" "Endpoints" => a::core::v1::Endpoints,
            "" "v1" "ConfigMap" => a::core::v1::ConfigMap,
            "" "v1" "Secret" => a::core::v1::Secret,
            "" "v1" "ServiceAccount" => a::core::v1::ServiceAccount,
            "" "v1" "Event" => a::core::v1::Event,
            "" "v1" "Node" => a::core::v1::Node,
            "" "v1" "PersistentVolume" => a::core::v1::PersistentVolume,
            "" "v1" "PersistentVolumeClaim" => a::core::v1::PersistentVolumeClaim,
            "" "v1" "ReplicationController" => a::core::v1::ReplicationController,
            "" "v1" "ResourceQuota" => a::core::v1::ResourceQuota,
            "apps" "v1" "Deployment" => a::apps::v1::Deployment,
            "apps" "v1" "ReplicaSet" => a::apps::v1::ReplicaSet,
            "apps" "v1" "StatefulSet" => a::apps::v1::StatefulSet,
            "apps" "v1" "DaemonSet" => a::apps::v1::DaemonSet,
            "batch" "v1" "Job" => a::batch::v1::Job,
            "batch" "v1" "CronJob" => a::batch::v1::CronJob,
            "autoscaling" "v2" "HorizontalPodAutoscaler" => a::autoscaling::v2::HorizontalPodAutoscaler,
            "policy" "v1" "PodDisruptionBudget" => a::policy::v1::PodDisruptionBudget,
            "networking.k8s.io" "v1" "Ingress" => a::networking::v1::Ingress,
            "events.k8s.io" "v1" "Event" => a::events::v1::Event,
            "coordination.k8s.io" "v1" "Lease" => a::coordination::v1::Lease,
            "scheduling.k8s.io" "v1" "PriorityClass" => a::scheduling::v1::PriorityClass,
            "apiextensions.k8s.io" "v1" "CustomResourceDefinition" => apiext::CustomResourceDefinition,
            "admissionregistration.k8s.io" "v1" "MutatingWebhookConfiguration" => a::admissionregistration::v1::MutatingWebhookConfiguration,
            "admissionregistration.k8s.io" "v1" "ValidatingWebhookConfiguration" => a::admissionregistration::v1::ValidatingWebhookConfiguration,
            "rbac.authorization.k8s.io" "v1" "ClusterRole" => a::rbac::v1::ClusterRole,
            "rbac.authorization.k8s.io" "v1" "ClusterRoleBinding" => a::rbac::v1::ClusterRoleBinding,
            "rbac.authorization.k8s.io" "v1" "Role" => a::rbac::v1::Role,
            "rbac.authorization.k8s.io" "v1" "RoleBinding" => a::rbac::v1::RoleBinding,
            "authentication.k8s.io" "v1" "SelfSubjectReview" => a::authentication::v1::SelfSubjectReview,
            "authentication.k8s.io" "v1" "TokenReview" => a::authentication::v1::TokenReview,
            "authorization.k8s.io" "v1" "SelfSubjectAccessReview" => a::authorization::v1::SelfSubjectAccessReview,
            "authorization.k8s.io" "v1" "SelfSubjectRulesReview" => a::authorization::v1::SelfSubjectRulesReview,
            "authorization.k8s.io" "v1" "SubjectAccessReview" => a::authorization::v1::SubjectAccessReview,
            "autoscaling" "v1" "Scale" => a::autoscaling::v1::Scale,
        }
        let mut components: Map<String, Value> =
            generator.take_definitions(true).into_iter().collect();
        // k8s-openapi marks `metadata` required (it is not optional in its Rust types);
        // kube-apiserver's schemas do not.
        for schema in components.values_mut() {
            if let Some(req) = schema.get_mut("required").and_then(Value::as_array_mut) {
                req.retain(|r| r != "metadata");
                if req.is_empty()
                    && let Some(o) = schema.as_object_mut()
                {
                    o.remove("required");
                }
            }
        }
        // The kinds are referred to by name: the schema itself is the component.
        for ((g, v, k), schema) in &mut kinds {
            let name = schema
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
                .map(str::to_string);
            if let Some(name) = name
                && let Some(full) = components.get_mut(&name)
            {
                if let Some(o) = full.as_object_mut() {
                    o.insert(
                        "x-kubernetes-group-version-kind".into(),
                        json!([gvk(g, v, k)]),
                    );
                }
                *schema = full.clone();
            }
        }
        BuiltinSchemas { kinds, components }
    });
    &SCHEMAS
}

/// The component names `schema` refers to (`$ref: #/components/schemas/NAME`).
fn collect_refs(schema: &Value, out: &mut Vec<String>) {
    match schema {
        Value::Object(o) => {
            for (k, v) in o {
                if k == "$ref"
                    && let Some(name) = v
                        .as_str()
                        .and_then(|r| r.strip_prefix("#/components/schemas/"))
                {
                    out.push(name.to_string());
                } else {
                    collect_refs(v, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

fn kind_schema(rt: &ResourceType, version: &str) -> Value {
    if !rt.is_custom()
        && let Some(s) =
            builtin_schemas()
                .kinds
                .get(&(rt.group.as_str(), version, rt.kind.as_str()))
    {
        return s.clone();
    }
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
    document_with(types, group, version, true)
}

fn document_with(
    types: &[Arc<ResourceType>],
    group: &str,
    version: &str,
    referenced_schemas: bool,
) -> Value {
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
    let builtin = builtin_schemas();
    let mut wanted: Vec<String> = Vec::new();
    for rt in types
        .iter()
        .filter(|t| t.group == group && t.serves(version))
    {
        let name = schema_name(rt, version);
        let sref = format!("#/components/schemas/{name}");
        let schema = kind_schema(rt, version);
        collect_refs(&schema, &mut wanted);
        schemas.insert(name.clone(), schema);
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
    // The built-in kinds refer to their parts (and to ObjectMeta) by component name: add
    // every schema reachable from them.
    let mut seen = std::collections::HashSet::new();
    if !referenced_schemas {
        wanted.clear();
    }
    while let Some(name) = wanted.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        if let Some(schema) = builtin.components.get(&name) {
            collect_refs(schema, &mut wanted);
            schemas.insert(name, schema.clone());
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
