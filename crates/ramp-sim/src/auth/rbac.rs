//! Authorization: the RBAC authorizer (`rbac.authorization.k8s.io/v1`), as kube-apiserver's.
//!
//! A request is allowed when a rule of a Role or ClusterRole bound to the user (by a
//! RoleBinding in the request's namespace or a ClusterRoleBinding) matches its verb, API
//! group, resource (`deployments`, `deployments/status`, `*`, `*/scale`), `resourceNames`
//! and namespace, or, for paths outside the resource API, its `nonResourceURLs`. Members of
//! `system:masters` may do everything. Like kube's bootstrap `system:discovery`,
//! `system:public-info-viewer` and `system:basic-user` ClusterRoles, every authenticated user
//! may read discovery, OpenAPI, `/version` and the health paths, and create
//! SelfSubjectAccessReviews, SelfSubjectRulesReviews and SelfSubjectReviews. Aggregated
//! ClusterRoles (`aggregationRule`) are not expanded.

use serde_json::Value;

use super::authn::User;
use crate::errors::ApiError;
use crate::resources::GroupResource;
use crate::store::{ListOptions, Store, meta_str};

/// What a request does, as kube's `authorizer.Attributes`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attributes {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`, or
    /// for non-resource paths the lower-case HTTP method.
    pub verb: String,
    /// True for `/api/...` and `/apis/...` requests on a resource.
    pub resource_request: bool,
    /// API group (`""` for core).
    pub group: String,
    /// API version (only for messages).
    pub version: String,
    /// Plural resource name.
    pub resource: String,
    /// Subresource (`status`, `scale`, `token`...), or empty.
    pub subresource: String,
    /// Object name, or empty.
    pub name: String,
    /// Namespace, or empty for cluster-scoped requests.
    pub namespace: String,
    /// The URL path (for non-resource requests).
    pub path: String,
}

impl Attributes {
    /// `resource` or `resource/subresource`.
    pub fn combined_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

/// The attributes of a request, parsed as kube's `RequestInfoFactory` does.
pub fn attributes(method: &str, path: &str, query: Option<&str>) -> Attributes {
    let lower = method.to_ascii_lowercase();
    let non_resource = Attributes {
        verb: lower.clone(),
        path: path.to_string(),
        ..Default::default()
    };
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, mut rest) = match parts.as_slice() {
        ["api", v, rest @ ..] if !rest.is_empty() => ("", *v, rest),
        ["apis", g, v, rest @ ..] if !rest.is_empty() => (*g, *v, rest),
        _ => return non_resource,
    };
    let mut a = Attributes {
        resource_request: true,
        group: group.to_string(),
        version: version.to_string(),
        path: path.to_string(),
        ..Default::default()
    };
    let mut watch = false;
    if rest.first() == Some(&"watch") {
        watch = true;
        rest = &rest[1..];
    }
    if rest.first() == Some(&"namespaces")
        && let Some(ns) = rest.get(1)
    {
        a.namespace = (*ns).to_string();
        if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
            rest = &rest[2..];
        }
    }
    a.resource = rest.first().map(|s| s.to_string()).unwrap_or_default();
    a.name = rest.get(1).map(|s| s.to_string()).unwrap_or_default();
    a.subresource = rest.get(2).map(|s| s.to_string()).unwrap_or_default();
    let query = crate::server::parse_query(query);
    let watch_param = query.get("watch").is_some_and(|v| v == "true" || v == "1");
    a.verb = match lower.as_str() {
        "get" | "head" if watch || watch_param => "watch".into(),
        "get" | "head" if a.name.is_empty() => "list".into(),
        "get" | "head" => "get".into(),
        "post" => "create".into(),
        "put" => "update".into(),
        "patch" => "patch".into(),
        "delete" if a.name.is_empty() => "deletecollection".into(),
        "delete" => "delete".into(),
        other => other.to_string(),
    };
    // A list or watch of one object by field selector is authorized on that name.
    if matches!(a.verb.as_str(), "list" | "watch" | "deletecollection")
        && a.name.is_empty()
        && let Some(fs) = query.get("fieldSelector")
    {
        for term in fs.split(',') {
            if let Some(n) = term
                .strip_prefix("metadata.name=")
                .or_else(|| term.strip_prefix("metadata.name=="))
            {
                a.name = n.to_string();
            }
        }
    }
    a
}

/// Why a request was allowed (kube's RBAC reason), or `None` when no rule allows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Allowed.
    pub allowed: bool,
    /// `RBAC: allowed by ...`, or the errors met while resolving bindings.
    pub reason: String,
}

fn rbac(resource: &str) -> GroupResource {
    GroupResource::new("rbac.authorization.k8s.io", resource)
}

fn strs(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn subject_matches(subject: &Value, binding_ns: &str, user: &User) -> Option<String> {
    let kind = subject
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let name = subject
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match kind {
        "User" if name == user.name => Some(format!("User {name:?}")),
        "Group" if user.groups.iter().any(|g| g == name) => Some(format!("Group {name:?}")),
        "ServiceAccount" => {
            let ns = subject
                .get("namespace")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .unwrap_or(binding_ns);
            (user.name == format!("system:serviceaccount:{ns}:{name}"))
                .then(|| format!("ServiceAccount \"{name}/{ns}\""))
        }
        _ => None,
    }
}

fn verb_matches(rule: &Value, verb: &str) -> bool {
    strs(rule.get("verbs"))
        .iter()
        .any(|v| *v == "*" || *v == verb)
}

/// Does one PolicyRule allow the request?
pub fn rule_allows(rule: &Value, a: &Attributes) -> bool {
    if !verb_matches(rule, &a.verb) {
        return false;
    }
    if !a.resource_request {
        return strs(rule.get("nonResourceURLs")).iter().any(|u| {
            *u == "*" || *u == a.path || u.strip_suffix('*').is_some_and(|p| a.path.starts_with(p))
        });
    }
    if !strs(rule.get("apiGroups"))
        .iter()
        .any(|g| *g == "*" || *g == a.group)
    {
        return false;
    }
    let combined = a.combined_resource();
    let resource_ok = strs(rule.get("resources")).iter().any(|r| {
        *r == "*"
            || *r == combined
            || (!a.subresource.is_empty() && r.strip_prefix("*/") == Some(a.subresource.as_str()))
    });
    if !resource_ok {
        return false;
    }
    let names = strs(rule.get("resourceNames"));
    names.is_empty() || names.contains(&a.name.as_str())
}

/// The bootstrap roles every authenticated user has (`system:discovery`,
/// `system:public-info-viewer`, `system:basic-user`).
fn bootstrap_allows(user: &User, a: &Attributes) -> Option<&'static str> {
    if !user.groups.iter().any(|g| g == "system:authenticated") {
        return None;
    }
    if !a.resource_request {
        let p = a.path.as_str();
        let discovery = matches!(
            p,
            "/api"
                | "/apis"
                | "/version"
                | "/version/"
                | "/healthz"
                | "/livez"
                | "/readyz"
                | "/openapi"
                | "/.well-known/openid-configuration"
                | "/openid/v1/jwks"
        ) || p.starts_with("/api/")
            || p.starts_with("/apis/")
            || p.starts_with("/openapi/")
            || p.starts_with("/healthz/")
            || p.starts_with("/livez/")
            || p.starts_with("/readyz/");
        return (a.verb == "get" && discovery).then_some("system:discovery");
    }
    let basic = a.verb == "create"
        && a.subresource.is_empty()
        && matches!(
            (a.group.as_str(), a.resource.as_str()),
            (
                "authorization.k8s.io",
                "selfsubjectaccessreviews" | "selfsubjectrulesreviews"
            ) | ("authentication.k8s.io", "selfsubjectreviews")
        );
    basic.then_some("system:basic-user")
}

/// Decide `a` for `user` from the RBAC objects in `store`.
pub fn authorize(store: &Store, user: &User, a: &Attributes) -> Decision {
    if user.is_master() {
        return Decision {
            allowed: true,
            reason: String::new(),
        };
    }
    if let Some(role) = bootstrap_allows(user, a) {
        return Decision {
            allowed: true,
            reason: format!(
                "RBAC: allowed by ClusterRoleBinding {role:?} of ClusterRole {role:?} to Group \"system:authenticated\""
            ),
        };
    }
    let mut errors: Vec<String> = Vec::new();
    let all = ListOptions::default();
    let role_rules = |kind: &str, name: &str, ns: &str, errors: &mut Vec<String>| {
        let got = if kind == "ClusterRole" {
            store.get(&rbac("clusterroles"), None, name)
        } else {
            store.get(&rbac("roles"), Some(ns), name)
        };
        match got {
            Ok(role) => role
                .get("rules")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            Err(_) => {
                let what = if kind == "ClusterRole" {
                    "clusterrole"
                } else {
                    "role"
                };
                errors.push(format!(
                    "{what}.rbac.authorization.k8s.io {name:?} not found"
                ));
                Vec::new()
            }
        }
    };
    let cluster_bindings = store
        .list(&rbac("clusterrolebindings"), None, &all)
        .map(|l| l.items)
        .unwrap_or_default();
    for b in &cluster_bindings {
        let Some(subject) = strs_subjects(b)
            .iter()
            .find_map(|s| subject_matches(s, "", user))
        else {
            continue;
        };
        let role = b
            .pointer("/roleRef/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if role_rules("ClusterRole", role, "", &mut errors)
            .iter()
            .any(|r| rule_allows(r, a))
        {
            return Decision {
                allowed: true,
                reason: format!(
                    "RBAC: allowed by ClusterRoleBinding {:?} of ClusterRole {role:?} to {subject}",
                    meta_str(b, "name")
                ),
            };
        }
    }
    if !a.namespace.is_empty() {
        let bindings = store
            .list(&rbac("rolebindings"), Some(&a.namespace), &all)
            .map(|l| l.items)
            .unwrap_or_default();
        for b in &bindings {
            let Some(subject) = strs_subjects(b)
                .iter()
                .find_map(|s| subject_matches(s, &a.namespace, user))
            else {
                continue;
            };
            let kind = b
                .pointer("/roleRef/kind")
                .and_then(Value::as_str)
                .unwrap_or("Role");
            let role = b
                .pointer("/roleRef/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if role_rules(kind, role, &a.namespace, &mut errors)
                .iter()
                .any(|r| rule_allows(r, a))
            {
                return Decision {
                    allowed: true,
                    reason: format!(
                        "RBAC: allowed by RoleBinding \"{}/{}\" of {kind} {role:?} to {subject}",
                        meta_str(b, "name"),
                        a.namespace
                    ),
                };
            }
        }
    }
    Decision {
        allowed: false,
        reason: if errors.is_empty() {
            String::new()
        } else {
            format!("RBAC: {}", errors.join(", "))
        },
    }
}

fn strs_subjects(binding: &Value) -> Vec<Value> {
    binding
        .get("subjects")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The `403 Forbidden` kube-apiserver answers for a denied request.
pub fn forbidden(user: &User, a: &Attributes, reason: &str) -> ApiError {
    let mut msg = if a.resource_request {
        let scope = if a.namespace.is_empty() {
            "at the cluster scope".to_string()
        } else {
            format!("in the namespace {:?}", a.namespace)
        };
        format!(
            "User {:?} cannot {} resource {:?} in API group {:?} {scope}",
            user.name,
            a.verb,
            a.combined_resource(),
            a.group
        )
    } else {
        format!("User {:?} cannot {} path {:?}", user.name, a.verb, a.path)
    };
    if !reason.is_empty() {
        msg = format!("{msg}: {reason}");
    }
    if !a.resource_request {
        return ApiError::new(403, "Forbidden", format!("forbidden: {msg}"));
    }
    let qualified = if a.group.is_empty() {
        a.resource.clone()
    } else {
        format!("{}.{}", a.resource, a.group)
    };
    let message = if a.name.is_empty() {
        format!("{qualified} is forbidden: {msg}")
    } else {
        format!("{qualified} {:?} is forbidden: {msg}", a.name)
    };
    let mut e = ApiError::new(403, "Forbidden", message);
    if !a.group.is_empty() {
        e.group = Some(a.group.clone());
    }
    e.kind = Some(a.resource.clone());
    if !a.name.is_empty() {
        e.name = Some(a.name.clone());
    }
    e
}

/// Every rule that applies to `user` in `namespace` (ClusterRoleBindings, and the namespace's
/// RoleBindings), split as SelfSubjectRulesReview reports them: resource rules and
/// non-resource rules.
pub fn rules_for(store: &Store, user: &User, namespace: &str) -> (Vec<Value>, Vec<Value>) {
    if user.is_master() {
        return (
            vec![serde_json::json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})],
            vec![serde_json::json!({"verbs": ["*"], "nonResourceURLs": ["*"]})],
        );
    }
    let mut rules: Vec<Value> = vec![
        serde_json::json!({"verbs": ["create"], "apiGroups": ["authorization.k8s.io"],
            "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]}),
        serde_json::json!({"verbs": ["create"], "apiGroups": ["authentication.k8s.io"],
            "resources": ["selfsubjectreviews"]}),
        serde_json::json!({"verbs": ["get"], "nonResourceURLs": ["/api", "/api/*", "/apis",
            "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz", "/version",
            "/version/"]}),
    ];
    let all = ListOptions::default();
    let mut bound: Vec<(String, String, String)> = Vec::new();
    for b in store
        .list(&rbac("clusterrolebindings"), None, &all)
        .map(|l| l.items)
        .unwrap_or_default()
    {
        if strs_subjects(&b)
            .iter()
            .any(|s| subject_matches(s, "", user).is_some())
        {
            let role = b
                .pointer("/roleRef/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            bound.push(("ClusterRole".into(), role.into(), String::new()));
        }
    }
    if !namespace.is_empty() {
        for b in store
            .list(&rbac("rolebindings"), Some(namespace), &all)
            .map(|l| l.items)
            .unwrap_or_default()
        {
            if strs_subjects(&b)
                .iter()
                .any(|s| subject_matches(s, namespace, user).is_some())
            {
                let kind = b
                    .pointer("/roleRef/kind")
                    .and_then(Value::as_str)
                    .unwrap_or("Role");
                let role = b
                    .pointer("/roleRef/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                bound.push((kind.into(), role.into(), namespace.into()));
            }
        }
    }
    for (kind, name, ns) in bound {
        let got = if kind == "ClusterRole" {
            store.get(&rbac("clusterroles"), None, &name)
        } else {
            store.get(&rbac("roles"), Some(&ns), &name)
        };
        if let Ok(role) = got {
            rules.extend(
                role.get("rules")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            );
        }
    }
    rules
        .into_iter()
        .partition(|r| r.get("nonResourceURLs").is_none())
}
