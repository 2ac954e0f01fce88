//! Authentication and authorization of API requests, as kube-apiserver does them.
//!
//! [`check`] runs first for every request: it finds the user ([`authn`]: the admin token,
//! or a ServiceAccount token from TokenRequest; `Impersonate-User`/`Impersonate-Group` when
//! the caller may impersonate), parses what the request does ([`rbac::attributes`]) and asks
//! the RBAC authorizer ([`rbac::authorize`]); a denied request gets kube-apiserver's
//! `403 Forbidden` Status and changes nothing. A server-side apply that would create its
//! object must be allowed to `create` too. [`access_review`] answers
//! SelfSubjectAccessReviews, SubjectAccessReviews, SelfSubjectRulesReviews,
//! SelfSubjectReviews and TokenReviews from the same rules and credentials.

pub mod authn;
pub mod rbac;

use http::{HeaderMap, Method, Uri};
use serde_json::{Value, json};

pub use authn::User;
pub use rbac::Attributes;

use crate::errors::{ApiError, ApiResult, Cause};
use crate::resources::GroupResource;
use crate::store::Store;

fn header_values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}

fn allow(store: &Store, user: &User, a: &Attributes) -> ApiResult<()> {
    let d = rbac::authorize(store, user, a);
    if d.allowed {
        Ok(())
    } else {
        Err(rbac::forbidden(user, a, &d.reason))
    }
}

/// Authenticate and authorize one request: the user it runs as and what it does, or the
/// `401`/`403` to answer.
pub fn check(
    store: &Store,
    headers: &HeaderMap,
    method: &Method,
    uri: &Uri,
    admin_token: &str,
) -> ApiResult<(User, Attributes)> {
    let authorization = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let mut user = authn::authenticate(store, authorization, admin_token)?;
    let as_user = header_values(headers, "impersonate-user");
    let as_groups = header_values(headers, "impersonate-group");
    if let Some(name) = as_user.first() {
        let target = match authn::service_account_namespace(name) {
            Some(ns) => Attributes {
                verb: "impersonate".into(),
                resource_request: true,
                resource: "serviceaccounts".into(),
                namespace: ns.into(),
                name: name.rsplit(':').next().unwrap_or_default().into(),
                ..Default::default()
            },
            None => impersonate("users", name),
        };
        allow(store, &user, &target)?;
        for g in &as_groups {
            allow(store, &user, &impersonate("groups", g))?;
        }
        let groups: Vec<String> = as_groups.iter().map(|g| g.to_string()).collect();
        user = User::named(name, &groups);
    } else if !as_groups.is_empty() {
        return Err(ApiError::bad_request(format!(
            "requested {as_groups:?} without impersonating a user"
        )));
    }
    let a = rbac::attributes(method.as_str(), uri.path(), uri.query());
    allow(store, &user, &a)?;
    // A server-side apply of an object that does not exist creates it: kube-apiserver then
    // asks for `create` as well.
    let apply = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/apply-patch"));
    if a.verb == "patch" && apply && a.subresource.is_empty() && !user.is_master() {
        let gr = GroupResource::new(a.group.clone(), a.resource.clone());
        let ns = (!a.namespace.is_empty()).then_some(a.namespace.as_str());
        if store.get(&gr, ns, &a.name).is_err_and(|e| e.is_not_found()) {
            let create = Attributes {
                verb: "create".into(),
                ..a.clone()
            };
            allow(store, &user, &create)?;
        }
    }
    Ok((user, a))
}

fn impersonate(resource: &str, name: &str) -> Attributes {
    Attributes {
        verb: "impersonate".into(),
        resource_request: true,
        resource: resource.into(),
        name: name.into(),
        ..Default::default()
    }
}

/// The review kinds answered by [`access_review`], by `(group, resource)`.
pub fn is_review(a: &Attributes) -> bool {
    a.resource_request
        && a.verb == "create"
        && a.name.is_empty()
        && a.subresource.is_empty()
        && matches!(
            (a.group.as_str(), a.resource.as_str()),
            (
                "authorization.k8s.io",
                "selfsubjectaccessreviews" | "subjectaccessreviews" | "selfsubjectrulesreviews"
            ) | (
                "authentication.k8s.io",
                "selfsubjectreviews" | "tokenreviews"
            )
        )
}

fn invalid(kind: &str, field: &str, message: &str) -> ApiError {
    ApiError::invalid(
        "authorization.k8s.io",
        kind,
        "",
        vec![Cause::new("FieldValueInvalid", field, message)],
    )
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

/// The attributes a review's spec asks about.
fn spec_attributes(kind: &str, spec: &Value) -> ApiResult<Attributes> {
    match (
        spec.get("resourceAttributes").filter(|v| !v.is_null()),
        spec.get("nonResourceAttributes").filter(|v| !v.is_null()),
    ) {
        (Some(r), None) => Ok(Attributes {
            verb: str_at(r, "/verb").into(),
            resource_request: true,
            group: str_at(r, "/group").into(),
            version: str_at(r, "/version").into(),
            resource: str_at(r, "/resource").into(),
            subresource: str_at(r, "/subresource").into(),
            name: str_at(r, "/name").into(),
            namespace: str_at(r, "/namespace").into(),
            path: String::new(),
        }),
        (None, Some(n)) => Ok(Attributes {
            verb: str_at(n, "/verb").into(),
            path: str_at(n, "/path").into(),
            ..Default::default()
        }),
        _ => Err(invalid(
            kind,
            "spec.resourceAttributes",
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )),
    }
}

/// The answer to a review created by `user` (`a` is the create request itself).
pub fn access_review(
    store: &Store,
    user: &User,
    a: &Attributes,
    body: Value,
    admin_token: &str,
) -> ApiResult<Value> {
    let (kind, api_version) = match a.resource.as_str() {
        "selfsubjectaccessreviews" => ("SelfSubjectAccessReview", "authorization.k8s.io/v1"),
        "subjectaccessreviews" => ("SubjectAccessReview", "authorization.k8s.io/v1"),
        "selfsubjectrulesreviews" => ("SelfSubjectRulesReview", "authorization.k8s.io/v1"),
        "tokenreviews" => ("TokenReview", "authentication.k8s.io/v1"),
        _ => ("SelfSubjectReview", "authentication.k8s.io/v1"),
    };
    if let Some(k) = body.get("kind").and_then(Value::as_str)
        && k != kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind of the object ({k}) does not match the kind of the resource ({kind})"
        )));
    }
    let mut out = body;
    out["apiVersion"] = json!(api_version);
    out["kind"] = json!(kind);
    let meta = out.get("metadata").cloned().unwrap_or(json!({}));
    out["metadata"] = meta;
    out["metadata"]["creationTimestamp"] = Value::Null;
    let spec = out.get("spec").cloned().unwrap_or(json!({}));
    out["status"] = match kind {
        "SelfSubjectReview" => json!({"userInfo": {
            "username": user.name, "uid": user.uid, "groups": user.groups}}),
        "TokenReview" => {
            let token = str_at(&spec, "/token");
            let header = format!("Bearer {token}");
            match authn::authenticate(store, Some(&header), admin_token) {
                Ok(u) if !token.is_empty() => json!({"authenticated": true,
                    "user": {"username": u.name, "uid": u.uid, "groups": u.groups},
                    "audiences": spec.get("audiences").cloned().unwrap_or(json!([]))}),
                _ => json!({"authenticated": false, "error": "invalid bearer token"}),
            }
        }
        "SelfSubjectRulesReview" => {
            let ns = str_at(&spec, "/namespace");
            let (resource_rules, non_resource_rules) = rbac::rules_for(store, user, ns);
            json!({"resourceRules": resource_rules, "nonResourceRules": non_resource_rules,
                   "incomplete": false})
        }
        _ => {
            let asked = spec_attributes(kind, &spec)?;
            let subject = if kind == "SelfSubjectAccessReview" {
                user.clone()
            } else {
                let name = str_at(&spec, "/user");
                let groups: Vec<String> = spec
                    .get("groups")
                    .and_then(Value::as_array)
                    .map(|g| {
                        g.iter()
                            .filter_map(Value::as_str)
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default();
                if name.is_empty() && groups.is_empty() {
                    return Err(invalid(
                        kind,
                        "spec.user",
                        "at least one of user or group must be specified",
                    ));
                }
                // The groups are the ones given: a SubjectAccessReview does not add any.
                User {
                    name: name.to_string(),
                    uid: str_at(&spec, "/uid").to_string(),
                    groups,
                }
            };
            let d = rbac::authorize(store, &subject, &asked);
            let mut status = json!({"allowed": d.allowed});
            if !d.reason.is_empty() {
                status["reason"] = json!(d.reason);
            }
            status
        }
    };
    Ok(out)
}

#[cfg(test)]
mod tests;
