//! Resource types: the built-in kinds the sim serves and the ones CRDs add.
//!
//! A [`ResourceType`] is everything discovery, OpenAPI, tables and the store need to know about
//! one `group/resource`: its kind, its served versions (with their schema and printer columns for
//! CRDs), its scope, its subresources.

use std::cmp::Ordering;
use std::sync::Arc;

use serde_json::Value;

use crate::errors::{ApiError, ApiResult, Cause};

/// `group` + plural `resource`: the identity of a resource type (the store's first key).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupResource {
    /// API group; `""` for the core group.
    pub group: String,
    /// Plural lower-case resource name, e.g. `deployments`.
    pub resource: String,
}

impl GroupResource {
    /// `GroupResource::new("apps", "deployments")`.
    pub fn new(group: impl Into<String>, resource: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            resource: resource.into(),
        }
    }
}

impl std::fmt::Display for GroupResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.group.is_empty() {
            write!(f, "{}", self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

/// The scale subresource: where replicas and the selector live in the object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScaleSubresource {
    /// e.g. `.spec.replicas`.
    pub spec_replicas_path: String,
    /// e.g. `.status.replicas`.
    pub status_replicas_path: String,
    /// e.g. `.status.selector` (a serialized label selector string), if any.
    pub label_selector_path: Option<String>,
}

/// A printer column (`additionalPrinterColumns`): a name and a JSONPath.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrinterColumn {
    /// Column header.
    pub name: String,
    /// OpenAPI type: `string`, `integer`, `number`, `boolean`, `date`.
    pub type_: String,
    /// OpenAPI format (e.g. `name`), may be empty.
    pub format: String,
    /// Description.
    pub description: String,
    /// 0 = shown by default; higher = only with `-o wide`.
    pub priority: i64,
    /// JSONPath such as `.spec.replicas`.
    pub json_path: String,
}

/// One served version of a resource.
#[derive(Clone, Debug)]
pub struct VersionInfo {
    /// e.g. `v1`.
    pub name: String,
    /// The `openAPIV3Schema` of a CRD version (None for built-ins).
    pub schema: Option<Arc<Value>>,
    /// CRD `additionalPrinterColumns` (empty: built-in columns or NAME/AGE).
    pub columns: Vec<PrinterColumn>,
    /// Has a `status` subresource.
    pub status: bool,
    /// Has a `scale` subresource.
    pub scale: Option<ScaleSubresource>,
}

/// Everything the sim knows about one resource type.
#[derive(Clone, Debug)]
pub struct ResourceType {
    /// API group (`""` = core).
    pub group: String,
    /// Served versions; the first one is the preferred version.
    pub versions: Vec<VersionInfo>,
    /// The version objects are stored in (their `apiVersion` in the store).
    pub storage_version: String,
    /// Plural name.
    pub resource: String,
    /// Singular name.
    pub singular: String,
    /// Kind, e.g. `Deployment`.
    pub kind: String,
    /// List kind, e.g. `DeploymentList`.
    pub list_kind: String,
    /// Short names (`deploy`).
    pub short_names: Vec<String>,
    /// Categories (`all`).
    pub categories: Vec<String>,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Verbs advertised by discovery.
    pub verbs: Vec<String>,
    /// Objects are kept in the store (false for review resources that only answer `create`).
    pub stored: bool,
    /// Name of the CRD that defines this type (None for built-ins).
    pub crd_name: Option<String>,
}

const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

impl ResourceType {
    /// The group/resource key.
    pub fn group_resource(&self) -> GroupResource {
        GroupResource::new(self.group.clone(), self.resource.clone())
    }

    /// `apiVersion` string for a version of this group (`v1` or `apps/v1`).
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    /// `apiVersion` objects are stored with.
    pub fn storage_api_version(&self) -> String {
        self.api_version(&self.storage_version)
    }

    /// The preferred (first) version.
    pub fn preferred_version(&self) -> &str {
        self.versions
            .first()
            .map(|v| v.name.as_str())
            .unwrap_or(self.storage_version.as_str())
    }

    /// Information on one served version.
    pub fn version(&self, version: &str) -> Option<&VersionInfo> {
        self.versions.iter().find(|v| v.name == version)
    }

    /// True if `version` is served.
    pub fn serves(&self, version: &str) -> bool {
        self.version(version).is_some()
    }

    /// True if any served version has a status subresource.
    pub fn has_status(&self, version: &str) -> bool {
        self.version(version).is_some_and(|v| v.status)
    }

    /// The scale subresource of a version.
    pub fn scale(&self, version: &str) -> Option<&ScaleSubresource> {
        self.version(version).and_then(|v| v.scale.as_ref())
    }

    /// True for custom resources.
    pub fn is_custom(&self) -> bool {
        self.crd_name.is_some()
    }

    fn builtin(
        group: &str,
        version: &str,
        resource: &str,
        kind: &str,
        namespaced: bool,
        short: &[&str],
        status: bool,
    ) -> Self {
        Self {
            group: group.into(),
            versions: vec![VersionInfo {
                name: version.into(),
                schema: None,
                columns: Vec::new(),
                status,
                scale: None,
            }],
            storage_version: version.into(),
            resource: resource.into(),
            singular: kind.to_lowercase(),
            kind: kind.into(),
            list_kind: format!("{kind}List"),
            short_names: short.iter().map(|s| s.to_string()).collect(),
            categories: Vec::new(),
            namespaced,
            verbs: ALL_VERBS.iter().map(|s| s.to_string()).collect(),
            stored: true,
            crd_name: None,
        }
    }

    fn with_scale(mut self) -> Self {
        for v in &mut self.versions {
            v.scale = Some(ScaleSubresource {
                spec_replicas_path: ".spec.replicas".into(),
                status_replicas_path: ".status.replicas".into(),
                label_selector_path: Some(".status.selector".into()),
            });
        }
        self
    }

    fn in_all(mut self) -> Self {
        self.categories = vec!["all".into()];
        self
    }

    fn create_only(mut self) -> Self {
        self.verbs = vec!["create".into()];
        self.stored = false;
        self
    }
}

/// The built-in resource types served from start-up.
pub fn builtin_types() -> Vec<ResourceType> {
    use ResourceType as R;
    vec![
        R::builtin("", "v1", "namespaces", "Namespace", false, &["ns"], true),
        R::builtin("", "v1", "pods", "Pod", true, &["po"], true).in_all(),
        R::builtin("", "v1", "services", "Service", true, &["svc"], true).in_all(),
        R::builtin("", "v1", "endpoints", "Endpoints", true, &["ep"], false),
        R::builtin("", "v1", "configmaps", "ConfigMap", true, &["cm"], false),
        R::builtin("", "v1", "secrets", "Secret", true, &[], false),
        R::builtin(
            "",
            "v1",
            "serviceaccounts",
            "ServiceAccount",
            true,
            &["sa"],
            false,
        ),
        R::builtin("", "v1", "events", "Event", true, &["ev"], false),
        R::builtin(
            "",
            "v1",
            "resourcequotas",
            "ResourceQuota",
            true,
            &["quota"],
            true,
        ),
        R::builtin("", "v1", "nodes", "Node", false, &["no"], true),
        R::builtin(
            "",
            "v1",
            "persistentvolumes",
            "PersistentVolume",
            false,
            &["pv"],
            true,
        ),
        R::builtin(
            "",
            "v1",
            "replicationcontrollers",
            "ReplicationController",
            true,
            &["rc"],
            true,
        )
        .with_scale()
        .in_all(),
        R::builtin(
            "",
            "v1",
            "persistentvolumeclaims",
            "PersistentVolumeClaim",
            true,
            &["pvc"],
            true,
        ),
        R::builtin(
            "apps",
            "v1",
            "deployments",
            "Deployment",
            true,
            &["deploy"],
            true,
        )
        .with_scale()
        .in_all(),
        R::builtin(
            "apps",
            "v1",
            "replicasets",
            "ReplicaSet",
            true,
            &["rs"],
            true,
        )
        .with_scale()
        .in_all(),
        R::builtin(
            "apps",
            "v1",
            "statefulsets",
            "StatefulSet",
            true,
            &["sts"],
            true,
        )
        .with_scale()
        .in_all(),
        R::builtin("apps", "v1", "daemonsets", "DaemonSet", true, &["ds"], true).in_all(),
        R::builtin("batch", "v1", "jobs", "Job", true, &[], true).in_all(),
        R::builtin("batch", "v1", "cronjobs", "CronJob", true, &["cj"], true).in_all(),
        R::builtin(
            "scheduling.k8s.io",
            "v1",
            "priorityclasses",
            "PriorityClass",
            false,
            &["pc"],
            false,
        ),
        R::builtin(
            "autoscaling",
            "v2",
            "horizontalpodautoscalers",
            "HorizontalPodAutoscaler",
            true,
            &["hpa"],
            true,
        )
        .in_all(),
        R::builtin(
            "policy",
            "v1",
            "poddisruptionbudgets",
            "PodDisruptionBudget",
            true,
            &["pdb"],
            true,
        ),
        R::builtin(
            "networking.k8s.io",
            "v1",
            "ingresses",
            "Ingress",
            true,
            &["ing"],
            true,
        ),
        R::builtin(
            "events.k8s.io",
            "v1",
            "events",
            "Event",
            true,
            &["ev"],
            false,
        ),
        R::builtin(
            "coordination.k8s.io",
            "v1",
            "leases",
            "Lease",
            true,
            &[],
            false,
        ),
        R::builtin(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            &["crd", "crds"],
            true,
        ),
        R::builtin(
            "admissionregistration.k8s.io",
            "v1",
            "mutatingwebhookconfigurations",
            "MutatingWebhookConfiguration",
            false,
            &[],
            false,
        ),
        R::builtin(
            "admissionregistration.k8s.io",
            "v1",
            "validatingwebhookconfigurations",
            "ValidatingWebhookConfiguration",
            false,
            &[],
            false,
        ),
        R::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterroles",
            "ClusterRole",
            false,
            &[],
            false,
        ),
        R::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterrolebindings",
            "ClusterRoleBinding",
            false,
            &[],
            false,
        ),
        R::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "roles",
            "Role",
            true,
            &[],
            false,
        ),
        R::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "rolebindings",
            "RoleBinding",
            true,
            &[],
            false,
        ),
        R::builtin(
            "authentication.k8s.io",
            "v1",
            "selfsubjectreviews",
            "SelfSubjectReview",
            false,
            &[],
            false,
        )
        .create_only(),
        R::builtin(
            "authentication.k8s.io",
            "v1",
            "tokenreviews",
            "TokenReview",
            false,
            &[],
            false,
        )
        .create_only(),
        R::builtin(
            "authorization.k8s.io",
            "v1",
            "selfsubjectaccessreviews",
            "SelfSubjectAccessReview",
            false,
            &[],
            false,
        )
        .create_only(),
        R::builtin(
            "authorization.k8s.io",
            "v1",
            "selfsubjectrulesreviews",
            "SelfSubjectRulesReview",
            false,
            &[],
            false,
        )
        .create_only(),
        R::builtin(
            "authorization.k8s.io",
            "v1",
            "subjectaccessreviews",
            "SubjectAccessReview",
            false,
            &[],
            false,
        )
        .create_only(),
    ]
}

/// Orders Kubernetes version strings the way the apiserver prefers them:
/// GA before beta before alpha, higher numbers first, non-Kubernetes-like names last.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    fn key(v: &str) -> (u8, i64, i64, String) {
        let Some(rest) = v.strip_prefix('v') else {
            return (0, 0, 0, v.to_string());
        };
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let Ok(major) = digits.parse::<i64>() else {
            return (0, 0, 0, v.to_string());
        };
        let tail = &rest[digits.len()..];
        if tail.is_empty() {
            return (3, major, 0, String::new());
        }
        for (prefix, rank) in [("beta", 2u8), ("alpha", 1u8)] {
            if let Some(n) = tail.strip_prefix(prefix)
                && let Ok(minor) = n.parse::<i64>()
            {
                return (rank, major, minor, String::new());
            }
        }
        (0, 0, 0, v.to_string())
    }
    let (ka, kb) = (key(a), key(b));
    // Higher rank/major/minor first; plain names alphabetically.
    kb.0.cmp(&ka.0)
        .then(kb.1.cmp(&ka.1))
        .then(kb.2.cmp(&ka.2))
        .then(ka.3.cmp(&kb.3))
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

fn strings_at(v: &Value, path: &[&str]) -> Vec<String> {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(x) => cur = x,
            None => return Vec::new(),
        }
    }
    cur.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Checks a CustomResourceDefinition object and turns it into the resource type it defines.
/// Errors are `422 Invalid` with causes naming the CRD fields.
pub fn crd_to_resource_type(crd: &Value) -> ApiResult<ResourceType> {
    let name = str_at(crd, &["metadata", "name"]).unwrap_or_default();
    let mut causes = Vec::new();
    let group = str_at(crd, &["spec", "group"]).unwrap_or_default();
    let plural = str_at(crd, &["spec", "names", "plural"]).unwrap_or_default();
    let kind = str_at(crd, &["spec", "names", "kind"]).unwrap_or_default();
    let scope = str_at(crd, &["spec", "scope"]).unwrap_or_default();
    if group.is_empty() {
        causes.push(Cause::new(
            "FieldValueRequired",
            "spec.group",
            "Required value",
        ));
    } else if !group.contains('.') {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "spec.group",
            format!("Invalid value: \"{group}\": should be a domain with at least one dot"),
        ));
    }
    if plural.is_empty() {
        causes.push(Cause::new(
            "FieldValueRequired",
            "spec.names.plural",
            "Required value",
        ));
    } else if plural != plural.to_lowercase() {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "spec.names.plural",
            format!("Invalid value: \"{plural}\": must be lower case"),
        ));
    }
    if kind.is_empty() {
        causes.push(Cause::new(
            "FieldValueRequired",
            "spec.names.kind",
            "Required value",
        ));
    }
    if !plural.is_empty() && !group.is_empty() && name != format!("{plural}.{group}") {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "metadata.name",
            format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    let namespaced = match scope {
        "Namespaced" => true,
        "Cluster" => false,
        other => {
            causes.push(Cause::new(
                "FieldValueNotSupported",
                "spec.scope",
                format!(
                    "Unsupported value: \"{other}\": supported values: \"Cluster\", \"Namespaced\""
                ),
            ));
            true
        }
    };
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        causes.push(Cause::new(
            "FieldValueRequired",
            "spec.versions",
            "Required value: must have exactly one version marked as storage version",
        ));
    }
    let mut storage = None;
    let mut served = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        let vname = v.get("name").and_then(Value::as_str).unwrap_or_default();
        if vname.is_empty() {
            causes.push(Cause::new(
                "FieldValueRequired",
                format!("spec.versions[{i}].name"),
                "Required value",
            ));
            continue;
        }
        if v.get("storage").and_then(Value::as_bool) == Some(true) {
            if storage.is_some() {
                causes.push(Cause::new(
                    "FieldValueInvalid",
                    "spec.versions",
                    "Invalid value: must have exactly one version marked as storage version",
                ));
            }
            storage = Some(vname.to_string());
        }
        let schema = v.pointer("/schema/openAPIV3Schema").cloned();
        if let Some(s) = &schema
            && !s.is_object()
        {
            causes.push(Cause::new(
                "FieldValueInvalid",
                format!("spec.versions[{i}].schema.openAPIV3Schema"),
                "Invalid value: must be an object",
            ));
        }
        let columns = v
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .map(|cols| {
                cols.iter()
                    .map(|c| PrinterColumn {
                        name: c
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .into(),
                        type_: c
                            .get("type")
                            .and_then(Value::as_str)
                            .unwrap_or("string")
                            .into(),
                        format: c
                            .get("format")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .into(),
                        description: c
                            .get("description")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .into(),
                        priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                        json_path: c
                            .get("jsonPath")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .into(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let sub = v.get("subresources");
        let status = sub.and_then(|s| s.get("status")).is_some();
        let scale = sub.and_then(|s| s.get("scale")).map(|s| ScaleSubresource {
            spec_replicas_path: s
                .get("specReplicasPath")
                .and_then(Value::as_str)
                .unwrap_or(".spec.replicas")
                .into(),
            status_replicas_path: s
                .get("statusReplicasPath")
                .and_then(Value::as_str)
                .unwrap_or(".status.replicas")
                .into(),
            label_selector_path: s
                .get("labelSelectorPath")
                .and_then(Value::as_str)
                .map(String::from),
        });
        if v.get("served").and_then(Value::as_bool).unwrap_or(false) {
            served.push(VersionInfo {
                name: vname.into(),
                schema: schema.map(Arc::new),
                columns,
                status,
                scale,
            });
        }
    }
    if storage.is_none() && !versions.is_empty() {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "spec.versions",
            "Invalid value: must have exactly one version marked as storage version",
        ));
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            name,
            causes,
        ));
    }
    served.sort_by(|a, b| compare_versions(&a.name, &b.name));
    let singular = str_at(crd, &["spec", "names", "singular"])
        .map(String::from)
        .unwrap_or_else(|| kind.to_lowercase());
    let list_kind = str_at(crd, &["spec", "names", "listKind"])
        .map(String::from)
        .unwrap_or_else(|| format!("{kind}List"));
    Ok(ResourceType {
        group: group.into(),
        versions: served,
        storage_version: storage.unwrap_or_default(),
        resource: plural.into(),
        singular,
        kind: kind.into(),
        list_kind,
        short_names: strings_at(crd, &["spec", "names", "shortNames"]),
        categories: strings_at(crd, &["spec", "names", "categories"]),
        namespaced,
        verbs: ALL_VERBS.iter().map(|s| s.to_string()).collect(),
        stored: true,
        crd_name: Some(name.into()),
    })
}

// ----- built-in defaulting and validation ------------------------------------------------------

fn obj_mut<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut serde_json::Map<String, Value>> {
    let o = v.as_object_mut()?;
    let e = o
        .entry(key)
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    if e.is_null() {
        *e = Value::Object(serde_json::Map::new());
    }
    e.as_object_mut()
}

fn default_field(m: &mut serde_json::Map<String, Value>, key: &str, value: Value) {
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.into(), value);
    }
}

fn type_error(rt: &ResourceType, field: &str, want: &str, got: &Value) -> ApiError {
    ApiError::bad_request(format!(
        "{} in version \"{}\" cannot be handled as a {}: json: cannot unmarshal {} into Go value of type {want} ({field})",
        rt.kind,
        rt.preferred_version(),
        rt.kind,
        crate::store::json_type(got),
    ))
}

/// Applies the defaults a real apiserver would (the ones clients look at) and the validation
/// that matters to them. Errors are `400` for wrongly typed fields and `422 Invalid` naming the
/// field otherwise.
pub fn default_and_validate_builtin(
    rt: &ResourceType,
    obj: &mut Value,
    old: Option<&Value>,
) -> ApiResult<()> {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut causes = Vec::new();
    for top in ["spec", "status", "data", "stringData"] {
        if let Some(v) = obj.get(top)
            && !v.is_object()
            && !v.is_null()
        {
            return Err(type_error(rt, top, "object", v));
        }
    }
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Namespace") => {
            if let Some(m) = obj_mut(obj, "metadata") {
                let labels = m
                    .entry("labels")
                    .or_insert_with(|| Value::Object(serde_json::Map::new()));
                if let Some(l) = labels.as_object_mut() {
                    l.insert(
                        "kubernetes.io/metadata.name".into(),
                        Value::String(name.clone()),
                    );
                }
            }
            if let Some(s) = obj_mut(obj, "status") {
                default_field(s, "phase", Value::String("Active".into()));
            }
        }
        ("", "ConfigMap") => {
            for field in ["data", "binaryData"] {
                if let Some(Value::Object(m)) = obj.get(field) {
                    for (k, v) in m {
                        if !v.is_string() {
                            return Err(type_error(rt, &format!("{field}.{k}"), "string", v));
                        }
                    }
                }
            }
        }
        ("", "Secret") => {
            if let Some(Value::Object(sd)) = obj.get("stringData").cloned() {
                let data = obj_mut(obj, "data");
                if let Some(data) = data {
                    for (k, v) in sd {
                        let Some(s) = v.as_str() else {
                            return Err(type_error(rt, &format!("stringData.{k}"), "string", &v));
                        };
                        data.insert(
                            k,
                            Value::String(base64::Engine::encode(
                                &base64::engine::general_purpose::STANDARD,
                                s,
                            )),
                        );
                    }
                }
                if let Some(o) = obj.as_object_mut() {
                    o.remove("stringData");
                }
            }
            if let Some(Value::Object(m)) = obj.get("data") {
                for (k, v) in m {
                    let Some(s) = v.as_str() else {
                        return Err(type_error(rt, &format!("data.{k}"), "[]byte", v));
                    };
                    if base64::Engine::decode(&base64::engine::general_purpose::STANDARD, s)
                        .is_err()
                    {
                        return Err(ApiError::bad_request(format!(
                            "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data in data.{k}"
                        )));
                    }
                }
            }
            if let Some(o) = obj.as_object_mut() {
                default_field(o, "type", Value::String("Opaque".into()));
            }
        }
        ("", "Service") => {
            let old_ip = old.and_then(|o| o.pointer("/spec/clusterIP")).cloned();
            if let Some(spec) = obj_mut(obj, "spec") {
                default_field(spec, "type", Value::String("ClusterIP".into()));
                default_field(spec, "sessionAffinity", Value::String("None".into()));
                let ty = spec
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("ClusterIP")
                    .to_string();
                if ty != "ExternalName" {
                    match (&old_ip, spec.get("clusterIP").and_then(Value::as_str)) {
                        (Some(ip), None | Some("")) => {
                            spec.insert("clusterIP".into(), ip.clone());
                        }
                        (None, None | Some("")) => {
                            let ip = format!(
                                "10.96.{}.{}",
                                rand::random_range(0..=255u8),
                                rand::random_range(1..=254u8)
                            );
                            spec.insert("clusterIP".into(), Value::String(ip));
                        }
                        _ => {}
                    }
                    if let Some(ip) = spec.get("clusterIP").cloned() {
                        spec.insert("clusterIPs".into(), Value::Array(vec![ip]));
                    }
                    default_field(spec, "ipFamilies", serde_json::json!(["IPv4"]));
                    default_field(spec, "ipFamilyPolicy", Value::String("SingleStack".into()));
                    default_field(
                        spec,
                        "internalTrafficPolicy",
                        Value::String("Cluster".into()),
                    );
                }
                let node_ports = matches!(ty.as_str(), "NodePort" | "LoadBalancer");
                if node_ports {
                    default_field(
                        spec,
                        "externalTrafficPolicy",
                        Value::String("Cluster".into()),
                    );
                }
                let old_ports = old
                    .and_then(|o| o.pointer("/spec/ports"))
                    .and_then(Value::as_array);
                if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                    for (i, p) in ports.iter_mut().enumerate() {
                        let Some(pm) = p.as_object_mut() else {
                            continue;
                        };
                        default_field(pm, "protocol", Value::String("TCP".into()));
                        // NodePort and LoadBalancer Services get a node port from
                        // 30000-32767 (kept across updates, as kube-apiserver does).
                        if node_ports
                            && pm
                                .get("nodePort")
                                .and_then(Value::as_i64)
                                .is_none_or(|n| n == 0)
                        {
                            let kept = old_ports
                                .and_then(|ps| {
                                    ps.iter().find(|o| {
                                        o.get("port") == pm.get("port")
                                            && o.get("name") == pm.get("name")
                                    })
                                })
                                .and_then(|o| o.get("nodePort"))
                                .filter(|n| n.as_i64().is_some_and(|n| n > 0))
                                .cloned();
                            let port = kept.unwrap_or_else(|| {
                                serde_json::json!(rand::random_range(30000..=32767u16))
                            });
                            pm.insert("nodePort".into(), port);
                        }
                        match pm.get("port").and_then(Value::as_i64) {
                            Some(port) if (1..=65535).contains(&port) => {
                                default_field(pm, "targetPort", serde_json::json!(port));
                            }
                            _ => causes.push(Cause::new(
                                "FieldValueInvalid",
                                format!("spec.ports[{i}].port"),
                                format!(
                                    "Invalid value: {}: must be between 1 and 65535, inclusive",
                                    pm.get("port").cloned().unwrap_or(Value::Null)
                                ),
                            )),
                        }
                    }
                }
            }
            if let Some(s) = obj_mut(obj, "status") {
                default_field(s, "loadBalancer", serde_json::json!({}));
            }
        }
        ("", "Pod") => {
            if let Some(spec) = obj.get_mut("spec") {
                default_pod_spec(spec, "spec", &mut causes);
            } else {
                causes.push(Cause::new(
                    "FieldValueRequired",
                    "spec.containers",
                    "Required value",
                ));
            }
            if old.is_none()
                && let Some(s) = obj_mut(obj, "status")
            {
                default_field(s, "phase", Value::String("Pending".into()));
            }
        }
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet") => {
            let kind = rt.kind.clone();
            if let Some(spec) = obj_mut(obj, "spec") {
                if kind != "DaemonSet" {
                    default_field(spec, "replicas", serde_json::json!(1));
                    match spec.get("replicas") {
                        Some(Value::Number(n)) if n.as_i64().is_some_and(|r| r >= 0) => {}
                        Some(v) if !v.is_number() => {
                            return Err(type_error(rt, "spec.replicas", "int32", v));
                        }
                        Some(v) => causes.push(Cause::new(
                            "FieldValueInvalid",
                            "spec.replicas",
                            format!("Invalid value: {v}: must be greater than or equal to 0"),
                        )),
                        None => {}
                    }
                }
                default_field(spec, "revisionHistoryLimit", serde_json::json!(10));
                if kind == "Deployment" {
                    default_field(spec, "progressDeadlineSeconds", serde_json::json!(600));
                    default_field(
                        spec,
                        "strategy",
                        serde_json::json!({"type": "RollingUpdate",
                            "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}),
                    );
                    if let Some(st) = spec.get_mut("strategy").and_then(Value::as_object_mut) {
                        default_field(st, "type", Value::String("RollingUpdate".into()));
                        if st.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
                            default_field(
                                st,
                                "rollingUpdate",
                                serde_json::json!({"maxUnavailable": "25%", "maxSurge": "25%"}),
                            );
                        }
                    }
                }
                let selector = spec.get("selector").cloned();
                let labels = spec
                    .get("template")
                    .and_then(|t| t.pointer("/metadata/labels"))
                    .cloned();
                match &selector {
                    None | Some(Value::Null) => causes.push(Cause::new(
                        "FieldValueRequired",
                        "spec.selector",
                        "Required value",
                    )),
                    Some(sel) => {
                        let empty = sel
                            .get("matchLabels")
                            .is_none_or(|m| m.as_object().is_none_or(serde_json::Map::is_empty))
                            && sel
                                .get("matchExpressions")
                                .is_none_or(|m| m.as_array().is_none_or(Vec::is_empty));
                        if empty {
                            causes.push(Cause::new(
                                "FieldValueInvalid",
                                "spec.selector",
                                "Invalid value: {}: empty selector is invalid for deployment",
                            ));
                        } else if let Some(ml) = sel.get("matchLabels").and_then(Value::as_object) {
                            let ok = ml
                                .iter()
                                .all(|(k, v)| labels.as_ref().and_then(|l| l.get(k)) == Some(v));
                            if !ok {
                                causes.push(Cause::new(
                                    "FieldValueInvalid",
                                    "spec.template.metadata.labels",
                                    format!(
                                        "Invalid value: {}: `selector` does not match template `labels`",
                                        labels.clone().unwrap_or(serde_json::json!({}))
                                    ),
                                ));
                            }
                        }
                    }
                }
                if let Some(old_sel) = old.and_then(|o| o.pointer("/spec/selector"))
                    && selector.as_ref() != Some(old_sel)
                {
                    causes.push(Cause::new(
                        "FieldValueInvalid",
                        "spec.selector",
                        format!(
                            "Invalid value: {}: field is immutable",
                            selector.clone().unwrap_or(Value::Null)
                        ),
                    ));
                }
                match spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
                    Some(pod) => default_pod_spec(pod, "spec.template.spec", &mut causes),
                    None => causes.push(Cause::new(
                        "FieldValueRequired",
                        "spec.template.spec.containers",
                        "Required value",
                    )),
                }
            }
        }
        ("batch", "Job") => default_job(obj, old, &mut causes),
        ("batch", "CronJob") => {
            if let Some(spec) = obj_mut(obj, "spec") {
                default_field(spec, "concurrencyPolicy", Value::String("Allow".into()));
                default_field(spec, "suspend", Value::Bool(false));
                default_field(spec, "successfulJobsHistoryLimit", serde_json::json!(3));
                default_field(spec, "failedJobsHistoryLimit", serde_json::json!(1));
                match spec.get("schedule").and_then(Value::as_str) {
                    None | Some("") => causes.push(Cause::new(
                        "FieldValueRequired",
                        "spec.schedule",
                        "Required value",
                    )),
                    Some(sched) => {
                        if let Err(e) = check_cron_schedule(sched) {
                            causes.push(Cause::new(
                                "FieldValueInvalid",
                                "spec.schedule",
                                format!("Invalid value: {sched:?}: {e}"),
                            ));
                        }
                    }
                }
                match spec
                    .get_mut("jobTemplate")
                    .and_then(|t| t.get_mut("spec"))
                    .and_then(|s| s.get_mut("template"))
                    .and_then(|t| t.get_mut("spec"))
                {
                    Some(pod) => {
                        default_pod_spec(pod, "spec.jobTemplate.spec.template.spec", &mut causes);
                        check_job_restart_policy(
                            pod,
                            "spec.jobTemplate.spec.template.spec",
                            &mut causes,
                        );
                    }
                    None => causes.push(Cause::new(
                        "FieldValueRequired",
                        "spec.jobTemplate.spec.template.spec.containers",
                        "Required value",
                    )),
                }
            } else {
                causes.push(Cause::new(
                    "FieldValueRequired",
                    "spec.schedule",
                    "Required value",
                ));
            }
        }
        ("scheduling.k8s.io", "PriorityClass") => {
            if let Some(o) = obj.as_object_mut() {
                default_field(
                    o,
                    "preemptionPolicy",
                    Value::String("PreemptLowerPriority".into()),
                );
                match o.get("value") {
                    Some(Value::Number(n)) if n.as_i64().is_some() => {
                        let v = n.as_i64().unwrap_or_default();
                        if v > 1_000_000_000 && !name.starts_with("system-") {
                            causes.push(Cause::new(
                                "FieldValueForbidden",
                                "value",
                                "Forbidden: maximum allowed value of a user defined priority is 1000000000",
                            ));
                        }
                    }
                    Some(v) if !v.is_null() => {
                        return Err(type_error(rt, "value", "int32", v));
                    }
                    _ => {}
                }
                if let Some(old) = old
                    && old.get("value") != o.get("value")
                {
                    causes.push(Cause::new(
                        "FieldValueForbidden",
                        "value",
                        "Forbidden: may not be changed in an update.",
                    ));
                }
            }
        }
        ("", "ResourceQuota") => {
            if let Some(Value::Object(hard)) = obj.pointer("/spec/hard") {
                for (k, v) in hard {
                    let ok = match v {
                        Value::String(q) => is_quantity(q),
                        Value::Number(_) => true,
                        _ => false,
                    };
                    if !ok {
                        causes.push(Cause::new(
                            "FieldValueInvalid",
                            format!("spec.hard[{k}]"),
                            format!("Invalid value: {v}: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"),
                        ));
                    }
                }
            }
        }
        _ => {}
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(&rt.group, &rt.kind, &name, causes))
    }
}

/// The label a Job's pods carry with its uid (and its selector matches).
pub const JOB_CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
/// The label a Job's pods carry with its name.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";

fn default_job(obj: &mut Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
    let Some(spec) = obj_mut(obj, "spec") else {
        causes.push(Cause::new(
            "FieldValueRequired",
            "spec.template.spec.containers",
            "Required value",
        ));
        return;
    };
    if spec.get("completions").is_none_or(Value::is_null)
        && spec.get("parallelism").is_none_or(Value::is_null)
    {
        spec.insert("completions".into(), serde_json::json!(1));
    }
    default_field(spec, "parallelism", serde_json::json!(1));
    default_field(spec, "backoffLimit", serde_json::json!(6));
    default_field(spec, "completionMode", Value::String("NonIndexed".into()));
    default_field(spec, "suspend", Value::Bool(false));
    default_field(
        spec,
        "podReplacementPolicy",
        Value::String("TerminatingOrFailed".into()),
    );
    default_field(spec, "manualSelector", Value::Bool(false));
    for field in ["parallelism", "completions", "backoffLimit"] {
        if let Some(v) = spec.get(field)
            && v.as_i64().is_some_and(|n| n < 0)
        {
            causes.push(Cause::new(
                "FieldValueInvalid",
                format!("spec.{field}"),
                format!("Invalid value: {v}: must be greater than or equal to 0"),
            ));
        }
    }
    if let Some(old_spec) = old.and_then(|o| o.get("spec")) {
        for field in ["completions", "selector", "template"] {
            let (was, is) = (old_spec.get(field), spec.get(field));
            // The selector and template labels the server generated are kept on update.
            if field != "completions" && is.is_none() {
                if let Some(w) = was {
                    spec.insert(field.into(), w.clone());
                }
                continue;
            }
            if field == "template" {
                continue;
            }
            if was != is {
                causes.push(Cause::new(
                    "FieldValueInvalid",
                    format!("spec.{field}"),
                    format!(
                        "Invalid value: {}: field is immutable",
                        is.cloned().unwrap_or(Value::Null)
                    ),
                ));
            }
        }
    }
    match spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
        Some(pod) => {
            default_pod_spec(pod, "spec.template.spec", causes);
            check_job_restart_policy(pod, "spec.template.spec", causes);
        }
        None => causes.push(Cause::new(
            "FieldValueRequired",
            "spec.template.spec.containers",
            "Required value",
        )),
    }
    if let Some(old_tpl) = old.and_then(|o| o.pointer("/spec/template/spec"))
        && spec.get("template").and_then(|t| t.get("spec")) != Some(old_tpl)
        && spec.get("suspend") != Some(&Value::Bool(true))
    {
        // Only a suspended Job's pod template may change (the sim takes any change then).
        causes.push(Cause::new(
            "FieldValueInvalid",
            "spec.template",
            "Invalid value: field is immutable",
        ));
    }
}

/// A Job's pods restart `Never` or `OnFailure` (the pod default, `Always`, is refused).
fn check_job_restart_policy(pod: &Value, path: &str, causes: &mut Vec<Cause>) {
    let policy = pod.get("restartPolicy").and_then(Value::as_str);
    if !matches!(policy, Some("Never" | "OnFailure")) {
        let shown = policy.unwrap_or_default();
        causes.push(Cause::new(
            if shown.is_empty() || shown == "Always" {
                "FieldValueRequired"
            } else {
                "FieldValueNotSupported"
            },
            format!("{path}.restartPolicy"),
            if shown.is_empty() || shown == "Always" {
                "Required value: valid values: \"OnFailure\", \"Never\"".to_string()
            } else {
                format!("Unsupported value: {shown:?}: supported values: \"OnFailure\", \"Never\"")
            },
        ));
    }
}

/// What the server fills in once the object has its uid, before it is stored: a Job's
/// generated selector (`batch.kubernetes.io/controller-uid`) and its pod template labels,
/// as kube-apiserver's Job strategy does unless `manualSelector` is set.
pub fn prepare_for_create(rt: &ResourceType, obj: &mut Value) {
    if !(rt.group == "batch" && rt.kind == "Job") {
        return;
    }
    let uid = crate::store::meta_str(obj, "uid").to_string();
    let name = crate::store::meta_str(obj, "name").to_string();
    let Some(spec) = obj_mut(obj, "spec") else {
        return;
    };
    if spec.get("manualSelector") == Some(&Value::Bool(true)) && spec.get("selector").is_some() {
        return;
    }
    spec.insert(
        "selector".into(),
        serde_json::json!({"matchLabels": {JOB_CONTROLLER_UID_LABEL: uid}}),
    );
    if let Some(meta) = spec
        .get_mut("template")
        .and_then(Value::as_object_mut)
        .map(|t| t.entry("metadata").or_insert_with(|| serde_json::json!({})))
        .and_then(Value::as_object_mut)
    {
        let labels = meta
            .entry("labels")
            .or_insert_with(|| serde_json::json!({}));
        if let Some(l) = labels.as_object_mut() {
            for (k, v) in [
                (JOB_CONTROLLER_UID_LABEL, &uid),
                (JOB_NAME_LABEL, &name),
                ("controller-uid", &uid),
                ("job-name", &name),
            ] {
                l.insert(k.into(), Value::String(v.clone()));
            }
        }
    }
}

/// Checks a five-field cron schedule (or a `@hourly`-style macro), as the CronJob
/// validation does: each field a `*`, number, range, list or step within its bounds.
pub fn check_cron_schedule(schedule: &str) -> Result<(), String> {
    let s = schedule.trim();
    let s = s
        .strip_prefix("TZ=")
        .or_else(|| s.strip_prefix("CRON_TZ="))
        .map_or(s, |rest| rest.split_once(' ').map_or("", |(_, r)| r.trim()));
    if s.starts_with('@') {
        return match s {
            "@yearly" | "@annually" | "@monthly" | "@weekly" | "@daily" | "@midnight"
            | "@hourly" => Ok(()),
            _ => Err(format!("unrecognized descriptor: {s}")),
        };
    }
    let fields: Vec<&str> = s.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: {s}",
            fields.len()
        ));
    }
    let bounds = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];
    for (field, (lo, hi)) in fields.iter().zip(bounds) {
        for part in field.split(',') {
            let (range, step) = match part.split_once('/') {
                Some((r, st)) => (r, Some(st)),
                None => (part, None),
            };
            if let Some(st) = step
                && st.parse::<u32>().map_or(true, |n| n == 0)
            {
                return Err(format!("failed to parse int from {st}"));
            }
            if range == "*" || range == "?" {
                continue;
            }
            let (a, b) = range.split_once('-').unwrap_or((range, range));
            let parse = |x: &str| -> Result<u32, String> {
                let named = [
                    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
                    "dec",
                ];
                let days = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
                let lx = x.to_ascii_lowercase();
                if let Some(i) = named.iter().position(|m| *m == lx)
                    && hi == 12
                {
                    return u32::try_from(i + 1).map_err(|e| e.to_string());
                }
                if let Some(i) = days.iter().position(|d| *d == lx)
                    && hi == 7
                {
                    return u32::try_from(i).map_err(|e| e.to_string());
                }
                x.parse::<u32>()
                    .map_err(|_| format!("failed to parse int from {x}"))
            };
            let (a, b) = (parse(a)?, parse(b)?);
            if a < lo || b > hi || a > b {
                return Err(format!("end of range ({b}) above maximum ({hi}): {range}"));
            }
        }
    }
    Ok(())
}

/// A Kubernetes quantity (`100m`, `1Gi`, `2`, `1e3`).
fn is_quantity(q: &str) -> bool {
    static RE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|[numkKMGTPE]|[KMGTPE]i)?$",
        )
        .unwrap_or_else(|_| unreachable!("a valid regex"))
    });
    RE.is_match(q)
}

fn default_pod_spec(spec: &mut Value, path: &str, causes: &mut Vec<Cause>) {
    let Some(spec) = spec.as_object_mut() else {
        causes.push(Cause::new(
            "FieldValueInvalid",
            path,
            "Invalid value: must be an object",
        ));
        return;
    };
    default_field(spec, "restartPolicy", Value::String("Always".into()));
    default_field(spec, "dnsPolicy", Value::String("ClusterFirst".into()));
    default_field(
        spec,
        "schedulerName",
        Value::String("default-scheduler".into()),
    );
    default_field(spec, "terminationGracePeriodSeconds", serde_json::json!(30));
    default_field(spec, "securityContext", serde_json::json!({}));
    let containers = spec.get_mut("containers").and_then(Value::as_array_mut);
    match containers {
        None => causes.push(Cause::new(
            "FieldValueRequired",
            format!("{path}.containers"),
            "Required value",
        )),
        Some(cs) if cs.is_empty() => causes.push(Cause::new(
            "FieldValueRequired",
            format!("{path}.containers"),
            "Required value",
        )),
        Some(cs) => {
            for (i, c) in cs.iter_mut().enumerate() {
                let Some(c) = c.as_object_mut() else {
                    continue;
                };
                if c.get("name")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    causes.push(Cause::new(
                        "FieldValueRequired",
                        format!("{path}.containers[{i}].name"),
                        "Required value",
                    ));
                }
                let image = c
                    .get("image")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                if image.is_empty() {
                    causes.push(Cause::new(
                        "FieldValueRequired",
                        format!("{path}.containers[{i}].image"),
                        "Required value",
                    ));
                }
                let last = image.rsplit('/').next().unwrap_or_default();
                let latest = !last.contains(':') || last.ends_with(":latest");
                default_field(
                    c,
                    "imagePullPolicy",
                    Value::String(if latest { "Always" } else { "IfNotPresent" }.into()),
                );
                default_field(
                    c,
                    "terminationMessagePath",
                    Value::String("/dev/termination-log".into()),
                );
                default_field(c, "terminationMessagePolicy", Value::String("File".into()));
                if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
                    for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                        default_field(p, "protocol", Value::String("TCP".into()));
                    }
                }
            }
        }
    }
}

/// The answer to a TokenRequest (`POST .../serviceaccounts/NAME/token`) for `sa`: the
/// request with defaults (`expirationSeconds` 3600, the API server's audience) and a status
/// holding a JWT-shaped token for `system:serviceaccount:NS:NAME`, signed so that the sim
/// accepts it as that ServiceAccount's credential (see [`crate::auth::authn`]).
pub fn token_request(sa: &Value, req: Value) -> ApiResult<Value> {
    use base64::Engine as _;
    let kind = req
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("TokenRequest");
    if kind != "TokenRequest" {
        return Err(ApiError::bad_request(format!(
            "the kind of the object ({kind}) does not match the kind of the resource (TokenRequest)"
        )));
    }
    let (ns, name) = (
        crate::store::meta_str(sa, "namespace"),
        crate::store::meta_str(sa, "name"),
    );
    let mut out = req;
    out["apiVersion"] = serde_json::json!("authentication.k8s.io/v1");
    out["kind"] = serde_json::json!("TokenRequest");
    out["metadata"] = serde_json::json!({"name": name, "namespace": ns, "creationTimestamp": null});
    let spec = out
        .get("spec")
        .cloned()
        .unwrap_or_else(|| serde_json::json!({}));
    let expiration = match spec.get("expirationSeconds") {
        None | Some(Value::Null) => 3600,
        Some(v) => match v.as_i64() {
            Some(s) if s >= 600 => s,
            _ => {
                return Err(ApiError::invalid(
                    "authentication.k8s.io",
                    "TokenRequest",
                    name,
                    vec![Cause::new(
                        "FieldValueInvalid",
                        "spec.expirationSeconds",
                        format!(
                            "Invalid value: {v}: may not specify a duration less than 10 minutes"
                        ),
                    )],
                ));
            }
        },
    };
    let audiences = spec
        .get("audiences")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .cloned()
        .unwrap_or_else(|| {
            vec![serde_json::json!(
                "https://kubernetes.default.svc.cluster.local"
            )]
        });
    out["spec"]["expirationSeconds"] = serde_json::json!(expiration);
    out["spec"]["audiences"] = Value::Array(audiences.clone());
    let now = chrono::Utc::now();
    let exp = now + chrono::Duration::seconds(expiration);
    let b64 = |v: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
    };
    let header = serde_json::json!({"alg": "RS256", "kid": "ramp-sim"});
    let claims = serde_json::json!({
        "aud": audiences,
        "exp": exp.timestamp(),
        "iat": now.timestamp(),
        "nbf": now.timestamp(),
        "iss": "https://kubernetes.default.svc.cluster.local",
        "jti": crate::store::new_uid(),
        "sub": format!("system:serviceaccount:{ns}:{name}"),
        "kubernetes.io": {"namespace": ns, "serviceaccount": {
            "name": name, "uid": crate::store::meta_str(sa, "uid")}},
    });
    let signed = format!("{}.{}", b64(&header), b64(&claims));
    let token = format!("{signed}.{}", crate::auth::authn::signature(&signed));
    out["status"] = serde_json::json!({
        "token": token,
        "expirationTimestamp": exp.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions_sort_like_the_apiserver() {
        let mut v = vec![
            "v1alpha1",
            "foo",
            "v1beta2",
            "v2",
            "v1",
            "v1beta1",
            "v10alpha1",
        ];
        v.sort_by(|a, b| compare_versions(a, b));
        assert_eq!(
            v,
            vec![
                "v2",
                "v1",
                "v1beta2",
                "v1beta1",
                "v10alpha1",
                "v1alpha1",
                "foo"
            ]
        );
    }

    #[test]
    fn crd_becomes_a_resource_type() {
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com",
                "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
                "versions": [
                    {"name": "v1alpha1", "served": true, "storage": false},
                    {"name": "v1", "served": true, "storage": true,
                     "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.size", "statusReplicasPath": ".status.size"}},
                     "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}],
                     "schema": {"openAPIV3Schema": {"type": "object"}}}
                ]
            }
        });
        let rt = crd_to_resource_type(&crd).unwrap();
        assert_eq!(rt.preferred_version(), "v1");
        assert_eq!(rt.storage_version, "v1");
        assert_eq!(rt.list_kind, "WidgetList");
        assert_eq!(rt.singular, "widget");
        assert!(rt.has_status("v1"));
        assert!(!rt.has_status("v1alpha1"));
        assert_eq!(rt.scale("v1").unwrap().spec_replicas_path, ".spec.size");
        assert_eq!(rt.version("v1").unwrap().columns[0].name, "Size");
    }

    #[test]
    fn crd_with_wrong_name_is_invalid() {
        let crd = json!({
            "metadata": {"name": "wrong"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                     "names": {"plural": "widgets", "kind": "Widget"},
                     "versions": [{"name": "v1", "served": true, "storage": true}]}
        });
        let err = crd_to_resource_type(&crd).unwrap_err();
        assert_eq!(err.code, 422);
        assert_eq!(err.causes[0].field, "metadata.name");
    }
}
