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

mod strategy;
mod token;

pub use strategy::{
    JOB_CONTROLLER_UID_LABEL, JOB_NAME_LABEL, Strategy, check_cron_schedule,
    default_and_validate_builtin, prepare_for_create, strategy_for,
};
pub use token::token_request;

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
