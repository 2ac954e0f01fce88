//! The `/scale` subresource: an object seen as an `autoscaling/v1` `Scale`, and back.

use serde_json::{Map, Value, json};

use super::*;
use crate::errors::{ApiError, ApiResult, Cause};
use crate::resources::{GroupResource, ResourceType};

/// `.spec.replicas` → `/spec/replicas`.
pub fn jsonpath_to_pointer(path: &str) -> String {
    let p = path.trim().trim_start_matches('$');
    p.split('.')
        .filter(|s| !s.is_empty())
        .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
        .collect()
}

pub(super) fn set_pointer(obj: &mut Value, pointer: &str, value: Value) {
    let parts: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|p| p.replace("~1", "/").replace("~0", "~"))
        .collect();
    let mut cur = obj;
    for (i, p) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Some(map) = cur.as_object_mut() else {
            return;
        };
        if i + 1 == parts.len() {
            map.insert(p.clone(), value);
            return;
        }
        cur = map
            .entry(p.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

/// `spec.selector` as a label selector string (`app=web,tier in (a,b)`).
pub fn format_label_selector(sel: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in m {
            parts.push(format!("{k}={}", v.as_str().unwrap_or_default()));
        }
    }
    if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
            let values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            match e
                .get("operator")
                .and_then(Value::as_str)
                .unwrap_or_default()
            {
                "In" => parts.push(format!("{key} in ({})", values.join(","))),
                "NotIn" => parts.push(format!("{key} notin ({})", values.join(","))),
                "Exists" => parts.push(key.to_string()),
                "DoesNotExist" => parts.push(format!("!{key}")),
                _ => {}
            }
        }
    }
    parts.join(",")
}

pub(super) fn object_to_scale(rt: &ResourceType, obj: &Value) -> ApiResult<Value> {
    let version = object_version(rt, obj);
    let scale = rt.scale(&version).cloned().ok_or_else(|| {
        ApiError::not_found(
            &rt.group,
            &format!("{}/scale", rt.resource),
            meta_str(obj, "name"),
        )
    })?;
    let replicas = obj
        .pointer(&jsonpath_to_pointer(&scale.spec_replicas_path))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let status_replicas = obj
        .pointer(&jsonpath_to_pointer(&scale.status_replicas_path))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let selector = if rt.is_custom() {
        scale
            .label_selector_path
            .as_deref()
            .and_then(|p| obj.pointer(&jsonpath_to_pointer(p)))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    } else {
        obj.pointer("/spec/selector")
            .map(format_label_selector)
            .unwrap_or_default()
    };
    let mut meta = Map::new();
    for f in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = obj.pointer(&format!("/metadata/{f}")) {
            meta.insert(f.into(), v.clone());
        }
    }
    let mut status = json!({"replicas": status_replicas});
    if !selector.is_empty() {
        status["selector"] = json!(selector);
    }
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": meta,
        "spec": {"replicas": replicas},
        "status": status,
    }))
}

pub(super) fn scale_to_object(
    rt: &ResourceType,
    current: &Value,
    scale: &Value,
) -> ApiResult<Value> {
    let version = object_version(rt, current);
    let sub = rt.scale(&version).cloned().ok_or_else(|| {
        ApiError::not_found(
            &rt.group,
            &format!("{}/scale", rt.resource),
            meta_str(current, "name"),
        )
    })?;
    let replicas = match scale.pointer("/spec/replicas") {
        Some(Value::Number(n)) if n.as_i64().is_some_and(|r| r >= 0) => n.as_i64().unwrap_or(0),
        None | Some(Value::Null) => 0,
        Some(other) => {
            return Err(ApiError::invalid(
                "autoscaling",
                "Scale",
                meta_str(current, "name"),
                vec![Cause::new(
                    "FieldValueInvalid",
                    "spec.replicas",
                    format!("Invalid value: {other}: must be greater than or equal to 0"),
                )],
            ));
        }
    };
    let mut obj = current.clone();
    set_pointer(
        &mut obj,
        &jsonpath_to_pointer(&sub.spec_replicas_path),
        json!(replicas),
    );
    let rv = meta_str(scale, "resourceVersion");
    set_meta(&mut obj, "resourceVersion", json!(rv));
    Ok(obj)
}

impl Store {
    /// Reads the `autoscaling/v1` `Scale` of an object with a scale subresource.
    pub fn get_scale(
        &self,
        gr: &GroupResource,
        namespace: Option<&str>,
        name: &str,
    ) -> ApiResult<Value> {
        let obj = self.get(gr, namespace, name)?;
        let rt = self
            .resource_type(gr)
            .ok_or_else(|| ApiError::not_found(&gr.group, &gr.resource, name))?;
        object_to_scale(&rt, &obj)
    }
}
