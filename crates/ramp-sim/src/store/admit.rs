//! Admission inside the store: kind and version checks, schema validation and pruning (with
//! `fieldValidation`), built-in defaulting, and applying patch documents.

use serde_json::{Value, json};

use super::*;
use crate::errors::{ApiError, ApiResult, Cause};
use crate::resources::ResourceType;

pub(super) fn check_kind(rt: &ResourceType, obj: &Value) -> ApiResult<()> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    let api_version = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !kind.is_empty() && kind != rt.kind {
        return Err(ApiError::bad_request(format!(
            "the kind of the object ({kind}) does not match the kind of the resource ({}, served at {})",
            rt.kind,
            rt.group_resource()
        )));
    }
    if !api_version.is_empty() {
        let (g, v) = split_api_version(api_version);
        if g != rt.group || !rt.serves(v) {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({api_version}) does not match the expected API version ({})",
                rt.api_version(rt.preferred_version())
            )));
        }
    }
    Ok(())
}

/// Paths present in `before` but not in `after` (what pruning removed), as `a.b[0].c`.
pub fn pruned_paths(before: &Value, after: &Value) -> Vec<String> {
    fn walk(b: &Value, a: &Value, path: &str, out: &mut Vec<String>) {
        match (b, a) {
            (Value::Object(bo), Value::Object(ao)) => {
                for (k, bv) in bo {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    match ao.get(k) {
                        Some(av) => walk(bv, av, &p, out),
                        None => out.push(p),
                    }
                }
            }
            (Value::Array(ba), Value::Array(aa)) => {
                for (i, (bv, av)) in ba.iter().zip(aa.iter()).enumerate() {
                    walk(bv, av, &format!("{path}[{i}]"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(before, after, "", &mut out);
    out
}

/// Applies a patch document of `patch_type` to `target` (an object of type `rt`, or its `Scale`
/// when `subresource` is `scale`). Errors name the object and, for failed operations, the field.
pub(super) fn apply_patch_document(
    rt: &ResourceType,
    name: &str,
    target: &mut Value,
    patch_type: PatchType,
    patch: &Value,
    subresource: Option<Subresource>,
) -> ApiResult<()> {
    let bad = |e: patch::PatchError| {
        let code = e.code();
        let reason = e.reason();
        if code == 400 {
            return ApiError::new(code, reason, e.to_string())
                .with_details(&rt.group, &rt.kind, name);
        }
        let field = match &e {
            patch::PatchError::TestFailed { path, .. }
            | patch::PatchError::OperationFailed { path, .. } => {
                path.trim_start_matches('/').replace('/', ".")
            }
            _ => String::new(),
        };
        let mut err = ApiError::invalid(
            &rt.group,
            &rt.kind,
            name,
            vec![Cause::new("FieldValueInvalid", field, e.to_string())],
        );
        err.code = code;
        err.reason = reason;
        err
    };
    match patch_type {
        PatchType::Merge => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("a merge patch must be a JSON object"));
            }
            patch::merge_patch(target, patch);
        }
        PatchType::Json => {
            if !patch.is_array() {
                return Err(ApiError::bad_request(
                    "a JSON patch must be a JSON array of operations",
                ));
            }
            patch::json_patch(target, patch).map_err(bad)?;
        }
        PatchType::Strategic => {
            if rt.is_custom() {
                return Err(ApiError::unsupported_media_type(
                    "strategic merge patch is not supported for custom resources; use a merge patch",
                ));
            }
            if !patch.is_object() {
                return Err(ApiError::bad_request(
                    "a strategic merge patch must be a JSON object",
                ));
            }
            let kind = if subresource == Some(Subresource::Scale) {
                "Scale"
            } else {
                rt.kind.as_str()
            };
            patch::strategic_merge_patch(target, patch, kind).map_err(bad)?;
        }
        PatchType::Apply => {
            *target = patch::apply_patch(Some(&*target), patch, &rt.kind, !rt.is_custom())
                .map_err(bad)?;
        }
    }
    Ok(())
}

/// A failed server-side apply as kube-apiserver answers it: 409 `Conflict` with one
/// `FieldManagerConflict` cause per field, or the merge error.
pub(super) fn apply_error(
    rt: &ResourceType,
    name: &str,
    e: patch::managed::ApplyError,
) -> ApiError {
    match &e {
        patch::managed::ApplyError::Conflicts(cs) => {
            let mut err = ApiError::new(409, "Conflict", e.message()).with_details(
                &rt.group,
                &rt.resource,
                name,
            );
            err.causes = cs
                .iter()
                .map(|c| {
                    Cause::new(
                        "FieldManagerConflict",
                        c.path.clone(),
                        format!("conflict with {}", c.manager),
                    )
                })
                .collect();
            err
        }
        patch::managed::ApplyError::Patch(p) => ApiError::new(p.code(), p.reason(), p.to_string())
            .with_details(&rt.group, &rt.kind, name),
    }
}

impl Store {
    /// Defaulting and validation shared by create and update.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn admit(
        &self,
        _st: &State,
        rt: &ResourceType,
        version: &str,
        obj: &mut Value,
        old: Option<&Value>,
        opts: &WriteOptions,
        warnings: &mut Vec<String>,
    ) -> ApiResult<()> {
        let name = meta_str(obj, "name").to_string();
        if let Some(o) = obj.as_object_mut() {
            o.insert("apiVersion".into(), json!(rt.api_version(version)));
            o.insert("kind".into(), json!(rt.kind));
        }
        if let Some(schema) = rt.version(version).and_then(|v| v.schema.clone()) {
            if !obj.is_object() {
                return Err(ApiError::bad_request("object must be a JSON object"));
            }
            let before = obj.clone();
            let res = schema::validate_and_prune(&schema, obj);
            let pruned = pruned_paths(&before, obj);
            if let Err(causes) = res {
                return Err(ApiError::invalid(
                    &rt.group,
                    &rt.kind,
                    &name,
                    causes
                        .into_iter()
                        .map(|c| Cause::new(c.reason_str(), c.field, c.message))
                        .collect(),
                ));
            }
            if !pruned.is_empty() {
                match opts.field_validation {
                    FieldValidation::Strict => {
                        return Err(ApiError::bad_request(format!(
                            "{}.{} \"{name}\": strict decoding error: {}",
                            rt.kind,
                            rt.group,
                            pruned
                                .iter()
                                .map(|p| format!("unknown field \"{p}\""))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                        .with_details(&rt.group, &rt.kind, &name));
                    }
                    FieldValidation::Warn => {
                        warnings.extend(pruned.iter().map(|p| format!("unknown field \"{p}\"")));
                    }
                    FieldValidation::Ignore => {}
                }
            }
        } else if !rt.is_custom() {
            resources::default_and_validate_builtin(rt, obj, old)?;
        }
        Ok(())
    }
}
