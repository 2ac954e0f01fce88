//! Object metadata: reading and writing `metadata` fields, names, labels and annotations
//! validation, generation tracking and generated names (the pure helpers are in
//! [`crate::object`]).

use serde_json::{Map, Value};

use crate::errors::{ApiError, ApiResult, Cause};
use crate::object::{json_type, meta_str, split_api_version};
use crate::resources::ResourceType;

pub(super) fn meta_mut(obj: &mut Value) -> ApiResult<&mut Map<String, Value>> {
    let o = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the request body must be a JSON object"))?;
    let m = o
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if m.is_null() {
        *m = Value::Object(Map::new());
    }
    m.as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))
}

pub(super) fn set_meta(obj: &mut Value, field: &str, value: Value) {
    if let Some(o) = obj.as_object_mut() {
        let m = o
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(m) = m.as_object_mut() {
            m.insert(field.into(), value);
        }
    }
}

pub(super) fn uid_of(obj: &Value) -> Option<String> {
    let u = meta_str(obj, "uid");
    (!u.is_empty()).then(|| u.to_string())
}

pub(super) fn object_version(rt: &ResourceType, obj: &Value) -> String {
    obj.get("apiVersion")
        .and_then(Value::as_str)
        .map(|av| split_api_version(av).1.to_string())
        .filter(|v| rt.serves(v))
        .unwrap_or_else(|| rt.storage_version.clone())
}

pub(super) fn tracks_generation(rt: &ResourceType, obj: &Value) -> bool {
    rt.is_custom() || obj.get("spec").is_some() || rt.kind == "CustomResourceDefinition"
}

/// True when anything but metadata and status differs.
pub(super) fn spec_changed(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| -> Map<String, Value> {
        v.as_object()
            .map(|o| {
                o.iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "metadata" | "status" | "apiVersion"))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    strip(old) != strip(new)
}

pub(super) fn validate_metadata(rt: &ResourceType, name: &str, obj: &Value) -> ApiResult<()> {
    let mut causes = Vec::new();
    let dns_label = matches!(
        (rt.group.as_str(), rt.resource.as_str()),
        ("", "namespaces") | ("", "services")
    );
    if let Some(msg) = check_name(name, dns_label) {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "metadata.name",
            format!("Invalid value: \"{name}\": {msg}"),
        ));
    }
    for field in ["labels", "annotations"] {
        match obj.pointer(&format!("/metadata/{field}")) {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (k, v) in m {
                    if !v.is_string() {
                        return Err(ApiError::bad_request(format!(
                            "{} in version \"{}\" cannot be handled as a {}: json: cannot unmarshal {} into Go struct field ObjectMeta.metadata.{field} of type string (metadata.{field}.{k})",
                            rt.kind,
                            rt.preferred_version(),
                            rt.kind,
                            json_type(v)
                        )));
                    }
                    if field == "labels" {
                        let value = v.as_str().unwrap_or_default();
                        if !valid_label_value(value) {
                            causes.push(Cause::new(
                                "FieldValueInvalid",
                                format!("metadata.labels.{k}"),
                                format!(
                                    "Invalid value: \"{value}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (at most 63 characters)"
                                ),
                            ));
                        }
                    }
                    if !valid_qualified_key(k) {
                        causes.push(Cause::new(
                            "FieldValueInvalid",
                            format!("metadata.{field}"),
                            format!("Invalid value: \"{k}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"),
                        ));
                    }
                }
            }
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "{} in version \"{}\" cannot be handled as a {}: json: cannot unmarshal {} into Go struct field ObjectMeta.metadata.{field} of type map[string]string",
                    rt.kind,
                    rt.preferred_version(),
                    rt.kind,
                    json_type(other)
                )));
            }
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(&rt.group, &rt.kind, name, causes))
    }
}

pub(super) fn check_name(name: &str, dns_label: bool) -> Option<String> {
    let max = if dns_label { 63 } else { 253 };
    if name.len() > max {
        return Some(format!("must be no more than {max} characters"));
    }
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    let valid = !name.is_empty()
        && name.chars().all(|c| ok_char(c) && !(dns_label && c == '.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if valid {
        None
    } else if dns_label {
        Some("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character".into())
    } else {
        Some("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character".into())
    }
}

pub(super) fn valid_label_value(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

pub(super) fn valid_qualified_key(k: &str) -> bool {
    let name = match k.rsplit_once('/') {
        Some((prefix, name)) => {
            if prefix.is_empty() || prefix.len() > 253 {
                return false;
            }
            name
        }
        None => k,
    };
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

pub(super) fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}
