//! Structural-schema handling of custom resources, as a kube-apiserver does it:
//! pruning of unknown fields, defaulting, and OpenAPI v3 validation against a
//! CRD version's `openAPIV3Schema`.
//!
//! The order is the apiserver's: prune, then default, then validate
//! ([`validate_and_prune`]). Errors are reported as [`FieldCause`]s whose
//! `field`, `reason` and `message` read like the causes of a real `Invalid`
//! Status, e.g. field `spec.hosts`, reason `FieldValueTypeInvalid`, message
//! `Invalid value: "string": spec.hosts in body must be of type array: "string"`.
//!
//! Supported: `type` (object, array, string, integer, number, boolean),
//! `nullable`, `required`, `enum`, `properties`, `items`, `additionalProperties`
//! (boolean or schema), `x-kubernetes-int-or-string`,
//! `x-kubernetes-preserve-unknown-fields`, `x-kubernetes-embedded-resource`,
//! `x-kubernetes-list-type` (`set` and `map` uniqueness), `default`, `minimum`,
//! `maximum`, `exclusiveMinimum`, `exclusiveMaximum`, `multipleOf`,
//! `minLength`, `maxLength`, `minItems`, `maxItems`, `minProperties`,
//! `maxProperties`, `pattern`, string `format`s (`byte`, `date-time`, `date`,
//! `uuid`, `ipv4`, `ipv6`, `cidr`; others are accepted unchecked) and the
//! junctors `allOf`, `anyOf`, `oneOf` and `not`.
//!
//! Not supported, on purpose:
//! - CEL rules (`x-kubernetes-validations`) are **ignored**: there is no CEL
//!   interpreter here. Objects a real apiserver rejects through CEL are accepted.
//! - Numeric `format`s (`int32`, `int64`, `float`, `double`) are not range-checked,
//!   as the apiserver does not check them either.
//! - `metadata` (at the root and in embedded resources) is pruned to the
//!   ObjectMeta field names but its content is not validated here (name syntax
//!   is the server's job).

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Mutex, OnceLock};

use base64::Engine as _;
use regex::Regex;
use serde_json::{Map, Value};

/// One validation failure, shaped like a `StatusCause`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldCause {
    /// The field path, e.g. `spec.http[0].route[0].weight`.
    pub field: String,
    /// The kind of failure.
    pub reason: CauseReason,
    /// The apiserver-style error body, e.g. `Required value` or
    /// `Invalid value: "string": spec.hosts in body must be of type array: "string"`.
    pub message: String,
}

/// The `reason` of a [`FieldCause`], named as Kubernetes names `field.ErrorType`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CauseReason {
    /// `FieldValueInvalid`: the value breaks a constraint (pattern, range, junctor...).
    FieldValueInvalid,
    /// `FieldValueRequired`: a required field is missing.
    FieldValueRequired,
    /// `FieldValueNotSupported`: the value is not one of the `enum` values.
    FieldValueNotSupported,
    /// `FieldValueTypeInvalid`: the value has the wrong JSON type or string format.
    FieldValueTypeInvalid,
    /// `FieldValueTooLong`: a string is longer than `maxLength`.
    FieldValueTooLong,
    /// `FieldValueTooMany`: more items/properties than `maxItems`/`maxProperties`.
    FieldValueTooMany,
    /// `FieldValueDuplicate`: a duplicate in an `x-kubernetes-list-type` set or map.
    FieldValueDuplicate,
}

impl CauseReason {
    /// Kubernetes' string for this reason, e.g. `"FieldValueInvalid"`.
    pub fn as_str(self) -> &'static str {
        match self {
            CauseReason::FieldValueInvalid => "FieldValueInvalid",
            CauseReason::FieldValueRequired => "FieldValueRequired",
            CauseReason::FieldValueNotSupported => "FieldValueNotSupported",
            CauseReason::FieldValueTypeInvalid => "FieldValueTypeInvalid",
            CauseReason::FieldValueTooLong => "FieldValueTooLong",
            CauseReason::FieldValueTooMany => "FieldValueTooMany",
            CauseReason::FieldValueDuplicate => "FieldValueDuplicate",
        }
    }
}

impl fmt::Display for CauseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FieldCause {
    /// Kubernetes' string for the reason, e.g. `"FieldValueRequired"`.
    pub fn reason_str(&self) -> &'static str {
        self.reason.as_str()
    }

    fn new(field: &str, reason: CauseReason, message: String) -> Self {
        FieldCause {
            field: field.to_string(),
            reason,
            message,
        }
    }
}

/// `field: message`, as kubectl prints each cause.
impl fmt::Display for FieldCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// Joins causes the way the apiserver's aggregate error does: one cause as is,
/// several as `[a, b]`. Used after `<Kind>.<group> "<name>" is invalid: `.
pub fn join_causes(causes: &[FieldCause]) -> String {
    match causes {
        [one] => one.to_string(),
        many => {
            let parts: Vec<String> = many.iter().map(ToString::to_string).collect();
            format!("[{}]", parts.join(", "))
        }
    }
}

/// The `openAPIV3Schema` of `version` in a CustomResourceDefinition object, if any.
pub fn version_schema<'a>(crd: &'a Value, version: &str) -> Option<&'a Value> {
    crd.pointer("/spec/versions")?
        .as_array()?
        .iter()
        .find(|v| v.get("name").and_then(Value::as_str) == Some(version))?
        .pointer("/schema/openAPIV3Schema")
}

/// Prunes, defaults and validates a custom resource against a CRD version's
/// `openAPIV3Schema`, in the apiserver's order. On success `obj` has been
/// pruned of unknown fields and defaulted. On failure `obj` may have been
/// pruned and defaulted already; every cause found is returned.
///
/// `apiVersion`, `kind` and `metadata` at the top level are always kept and
/// are not validated against the schema.
pub fn validate_and_prune(schema: &Value, obj: &mut Value) -> Result<(), Vec<FieldCause>> {
    prune_only(schema, obj);
    apply_defaults(schema, obj);
    let causes = validate(schema, obj);
    if causes.is_empty() {
        Ok(())
    } else {
        Err(causes)
    }
}

/// Removes the fields the schema does not specify, like the apiserver's
/// pruning: below `x-kubernetes-preserve-unknown-fields: true` unknown fields
/// are kept; `apiVersion`, `kind` and `metadata` at the root and in
/// `x-kubernetes-embedded-resource` objects are kept (metadata is pruned to
/// the ObjectMeta field names).
pub fn prune_only(schema: &Value, obj: &mut Value) {
    prune(schema, obj, true);
}

/// Sets `default`s of absent fields (and of `null` fields that are not
/// `nullable`), inside objects that exist. Defaults are themselves defaulted.
pub fn apply_defaults(schema: &Value, obj: &mut Value) {
    default_value(schema, obj, true);
}

/// Validates `obj` without changing it. Returns every cause found (empty when
/// valid), ordered by field path (stable, so a junctor's summary comes before
/// the causes of its best alternative).
pub fn validate(schema: &Value, obj: &Value) -> Vec<FieldCause> {
    let mut out = Vec::new();
    validate_value(schema, obj, "", true, &mut out);
    out.sort_by(|a, b| a.field.cmp(&b.field));
    out
}

/// The ObjectMeta field names the apiserver keeps in `metadata`.
const OBJECT_META_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// Drops fields of `metadata` that are not ObjectMeta fields.
pub fn prune_object_meta(meta: &mut Value) {
    if let Value::Object(m) = meta {
        m.retain(|k, _| OBJECT_META_FIELDS.contains(&k.as_str()));
    }
}

const RESOURCE_KEYS: &[&str] = &["apiVersion", "kind", "metadata"];

fn flag(s: &Value, name: &str) -> bool {
    s.get(name).and_then(Value::as_bool).unwrap_or(false)
}

fn schema_type(s: &Value) -> Option<&str> {
    s.get("type").and_then(Value::as_str)
}

/// The schema that applies to a property `key` of an object described by `s`.
fn property_schema<'a>(s: &'a Value, key: &str) -> Option<&'a Value> {
    if let Some(p) = s.get("properties").and_then(|p| p.get(key)) {
        return Some(p);
    }
    match s.get("additionalProperties") {
        Some(ap @ Value::Object(_)) => Some(ap),
        _ => None,
    }
}

fn additional_properties_allowed(s: &Value) -> bool {
    match s.get("additionalProperties") {
        Some(Value::Bool(b)) => *b,
        Some(Value::Object(_)) => true,
        _ => false,
    }
}

fn prune(s: &Value, v: &mut Value, keep_resource_keys: bool) {
    match v {
        Value::Object(map) => {
            let preserve = flag(s, "x-kubernetes-preserve-unknown-fields");
            let keep_meta = keep_resource_keys || flag(s, "x-kubernetes-embedded-resource");
            let allow_extra = additional_properties_allowed(s);
            map.retain(|k, _| {
                preserve
                    || allow_extra
                    || (keep_meta && RESOURCE_KEYS.contains(&k.as_str()))
                    || s.get("properties").and_then(|p| p.get(k)).is_some()
            });
            for (k, child) in map.iter_mut() {
                if keep_meta && RESOURCE_KEYS.contains(&k.as_str()) {
                    if k == "metadata" {
                        prune_object_meta(child);
                    }
                    continue;
                }
                if let Some(cs) = property_schema(s, k) {
                    prune(cs, child, false);
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = s.get("items") {
                for item in items.iter_mut() {
                    prune(is, item, false);
                }
            }
        }
        _ => {}
    }
}

fn default_value(s: &Value, v: &mut Value, root: bool) {
    match v {
        Value::Object(map) => {
            let skip_meta = root || flag(s, "x-kubernetes-embedded-resource");
            if let Some(Value::Object(props)) = s.get("properties") {
                for (k, ps) in props {
                    if skip_meta && RESOURCE_KEYS.contains(&k.as_str()) {
                        continue;
                    }
                    let Some(def) = ps.get("default") else {
                        continue;
                    };
                    match map.get(k) {
                        None => {
                            map.insert(k.clone(), def.clone());
                        }
                        Some(Value::Null) if !flag(ps, "nullable") => {
                            map.insert(k.clone(), def.clone());
                        }
                        _ => {}
                    }
                }
            }
            for (k, child) in map.iter_mut() {
                if skip_meta && RESOURCE_KEYS.contains(&k.as_str()) {
                    continue;
                }
                if let Some(cs) = property_schema(s, k) {
                    default_value(cs, child, false);
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = s.get("items") {
                for item in items.iter_mut() {
                    if item.is_null()
                        && !flag(is, "nullable")
                        && let Some(def) = is.get("default")
                    {
                        *item = def.clone();
                    }
                    default_value(is, item, false);
                }
            }
        }
        _ => {}
    }
}

/// The JSON type name the apiserver reports for a value.
fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(ty: &str, v: &Value) -> bool {
    match (ty, v) {
        ("object", Value::Object(_))
        | ("array", Value::Array(_))
        | ("string", Value::String(_))
        | ("boolean", Value::Bool(_))
        | ("number", Value::Number(_)) => true,
        // A float with an integral value is accepted as an integer, as upstream does.
        ("integer", Value::Number(n)) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

/// Formats a bad value like `field.Error` does: strings quoted, simple values
/// plain, anything else as JSON.
fn show(v: &Value) -> String {
    match v {
        Value::Null => "\"null\"".to_string(),
        Value::String(s) => quote(s),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

fn quote(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn invalid(path: &str, value: &Value, detail: String) -> FieldCause {
    FieldCause::new(
        path,
        CauseReason::FieldValueInvalid,
        format!("Invalid value: {}: {detail}", show(value)),
    )
}

fn type_invalid(path: &str, shown: &str, detail: String) -> FieldCause {
    FieldCause::new(
        path,
        CauseReason::FieldValueTypeInvalid,
        format!("Invalid value: {shown}: {detail}"),
    )
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn show_num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| values_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, p)| y.get(k).is_some_and(|q| values_equal(p, q)))
        }
        _ => a == b,
    }
}

fn cached_regex(pattern: &str) -> Option<Regex> {
    static CACHE: OnceLock<Mutex<HashMap<String, Option<Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut guard = cache.lock().unwrap_or_else(|e| e.into_inner());
    guard
        .entry(pattern.to_string())
        .or_insert_with(|| Regex::new(pattern).ok())
        .clone()
}

fn format_ok(format: &str, s: &str) -> bool {
    match format {
        "byte" => base64::engine::general_purpose::STANDARD.decode(s).is_ok(),
        "date-time" | "datetime" => chrono::DateTime::parse_from_rfc3339(s).is_ok(),
        "date" => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok(),
        "uuid" => {
            let b = s.as_bytes();
            b.len() == 36
                && b.iter().enumerate().all(|(i, c)| match i {
                    8 | 13 | 18 | 23 => *c == b'-',
                    _ => c.is_ascii_hexdigit(),
                })
        }
        "ipv4" => s.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<std::net::Ipv6Addr>().is_ok(),
        "cidr" => match s.split_once('/') {
            Some((ip, bits)) => match (ip.parse::<std::net::IpAddr>(), bits.parse::<u8>()) {
                (Ok(std::net::IpAddr::V4(_)), Ok(b)) => b <= 32,
                (Ok(std::net::IpAddr::V6(_)), Ok(b)) => b <= 128,
                _ => false,
            },
            None => false,
        },
        _ => true,
    }
}

fn validate_value(s: &Value, v: &Value, path: &str, root: bool, out: &mut Vec<FieldCause>) {
    if !s.is_object() {
        return;
    }
    if v.is_null() && flag(s, "nullable") {
        return;
    }
    let int_or_string = flag(s, "x-kubernetes-int-or-string");
    if let Some(ty) = schema_type(s) {
        if !type_matches(ty, v) {
            let actual = json_type(v);
            out.push(type_invalid(
                path,
                &quote(actual),
                format!("{path} in body must be of type {ty}: {}", quote(actual)),
            ));
            return;
        }
    } else if int_or_string && s.get("anyOf").is_none() && !matches!(v, Value::String(_)) {
        // Upstream validates int-or-string through an implied anyOf of integer and string.
        if !type_matches("integer", v) {
            let actual = json_type(v);
            out.push(invalid(
                path,
                &Value::String(String::new()),
                format!("{} must validate at least one schema (anyOf)", quote(path)),
            ));
            out.push(type_invalid(
                path,
                &quote(actual),
                format!("{path} in body must be of type integer: {}", quote(actual)),
            ));
            return;
        }
    }

    if let Some(Value::Array(allowed)) = s.get("enum")
        && !allowed.iter().any(|a| values_equal(a, v))
    {
        let list: Vec<String> = allowed.iter().map(show).collect();
        out.push(FieldCause::new(
            path,
            CauseReason::FieldValueNotSupported,
            format!(
                "Unsupported value: {}: supported values: {}",
                show(v),
                list.join(", ")
            ),
        ));
    }

    match v {
        Value::Object(map) => validate_object(s, map, path, root, out),
        Value::Array(items) => validate_array(s, items, path, out),
        Value::String(text) => validate_string(s, text, v, path, out),
        Value::Number(_) => validate_number(s, v, path, out),
        _ => {}
    }

    validate_junctors(s, v, path, out);
}

fn validate_object(
    s: &Value,
    map: &Map<String, Value>,
    path: &str,
    root: bool,
    out: &mut Vec<FieldCause>,
) {
    let embedded = flag(s, "x-kubernetes-embedded-resource");
    let skip_meta = root || embedded;
    if embedded {
        for key in ["apiVersion", "kind"] {
            let present = map
                .get(key)
                .and_then(Value::as_str)
                .is_some_and(|x| !x.is_empty());
            if !present {
                out.push(FieldCause::new(
                    &child_path(path, key),
                    CauseReason::FieldValueRequired,
                    "Required value: must not be empty".to_string(),
                ));
            }
        }
    }
    if let Some(Value::Array(required)) = s.get("required") {
        for r in required.iter().filter_map(Value::as_str) {
            if skip_meta && RESOURCE_KEYS.contains(&r) {
                continue;
            }
            if !map.contains_key(r) {
                out.push(FieldCause::new(
                    &child_path(path, r),
                    CauseReason::FieldValueRequired,
                    "Required value".to_string(),
                ));
            }
        }
    }
    let count = map.len() as u64;
    if let Some(max) = s.get("maxProperties").and_then(Value::as_u64)
        && count > max
    {
        out.push(FieldCause::new(
            path,
            CauseReason::FieldValueTooMany,
            format!("Too many: {count}: must have at most {max} items"),
        ));
    }
    if let Some(min) = s.get("minProperties").and_then(Value::as_u64)
        && count < min
    {
        out.push(invalid(
            path,
            &Value::from(count),
            format!("{path} in body should have at least {min} properties"),
        ));
    }
    for (k, child) in map {
        if skip_meta && RESOURCE_KEYS.contains(&k.as_str()) {
            continue;
        }
        if let Some(cs) = property_schema(s, k) {
            validate_value(cs, child, &child_path(path, k), false, out);
        }
    }
}

fn validate_array(s: &Value, items: &[Value], path: &str, out: &mut Vec<FieldCause>) {
    let len = items.len() as u64;
    if let Some(max) = s.get("maxItems").and_then(Value::as_u64)
        && len > max
    {
        out.push(FieldCause::new(
            path,
            CauseReason::FieldValueTooMany,
            format!("Too many: {len}: must have at most {max} items"),
        ));
    }
    if let Some(min) = s.get("minItems").and_then(Value::as_u64)
        && len < min
    {
        out.push(invalid(
            path,
            &Value::from(len),
            format!("{path} in body should have at least {min} items"),
        ));
    }
    if let Some(is) = s.get("items") {
        for (i, item) in items.iter().enumerate() {
            validate_value(is, item, &format!("{path}[{i}]"), false, out);
        }
    }
    match s.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("set") => {
            let mut seen = BTreeSet::new();
            for (i, item) in items.iter().enumerate() {
                if !seen.insert(item.to_string()) {
                    out.push(FieldCause::new(
                        &format!("{path}[{i}]"),
                        CauseReason::FieldValueDuplicate,
                        format!("Duplicate value: {}", show(item)),
                    ));
                }
            }
        }
        Some("map") => {
            let keys: Vec<&str> = s
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|ks| ks.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut seen = BTreeSet::new();
            for (i, item) in items.iter().enumerate() {
                let Value::Object(m) = item else { continue };
                let mut key = Map::new();
                for k in &keys {
                    // A missing key takes the key field's default, if the item schema has one.
                    let val = m.get(*k).cloned().or_else(|| {
                        s.get("items")
                            .and_then(|is| is.get("properties"))
                            .and_then(|p| p.get(*k))
                            .and_then(|p| p.get("default"))
                            .cloned()
                    });
                    if let Some(val) = val {
                        key.insert((*k).to_string(), val);
                    }
                }
                let key = Value::Object(key);
                if !seen.insert(key.to_string()) {
                    out.push(FieldCause::new(
                        &format!("{path}[{i}]"),
                        CauseReason::FieldValueDuplicate,
                        format!("Duplicate value: {key}"),
                    ));
                }
            }
        }
        _ => {}
    }
}

fn validate_string(s: &Value, text: &str, v: &Value, path: &str, out: &mut Vec<FieldCause>) {
    let chars = text.chars().count() as u64;
    if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
        && chars > max
    {
        out.push(FieldCause::new(
            path,
            CauseReason::FieldValueTooLong,
            format!("Too long: may not be more than {max} bytes"),
        ));
    }
    if let Some(min) = s.get("minLength").and_then(Value::as_u64)
        && chars < min
    {
        out.push(invalid(
            path,
            v,
            format!("{path} in body should be at least {min} chars long"),
        ));
    }
    if let Some(pattern) = s.get("pattern").and_then(Value::as_str)
        && let Some(re) = cached_regex(pattern)
        && !re.is_match(text)
    {
        out.push(invalid(
            path,
            v,
            format!("{path} in body should match '{pattern}'"),
        ));
    }
    if let Some(format) = s.get("format").and_then(Value::as_str)
        && !format_ok(format, text)
    {
        out.push(type_invalid(
            path,
            &show(v),
            format!("{path} in body must be of type {format}: {}", show(v)),
        ));
    }
}

fn validate_number(s: &Value, v: &Value, path: &str, out: &mut Vec<FieldCause>) {
    let Some(x) = num(v) else { return };
    if let Some(max) = s.get("maximum").and_then(num) {
        let exclusive = flag(s, "exclusiveMaximum");
        if (exclusive && x >= max) || (!exclusive && x > max) {
            let rel = if exclusive {
                "less than"
            } else {
                "less than or equal to"
            };
            out.push(invalid(
                path,
                v,
                format!("{path} in body should be {rel} {}", show_num(max)),
            ));
        }
    }
    if let Some(min) = s.get("minimum").and_then(num) {
        let exclusive = flag(s, "exclusiveMinimum");
        if (exclusive && x <= min) || (!exclusive && x < min) {
            let rel = if exclusive {
                "greater than"
            } else {
                "greater than or equal to"
            };
            out.push(invalid(
                path,
                v,
                format!("{path} in body should be {rel} {}", show_num(min)),
            ));
        }
    }
    if let Some(m) = s.get("multipleOf").and_then(num)
        && m > 0.0
    {
        let q = x / m;
        if (q - q.round()).abs() > 1e-9 {
            out.push(invalid(
                path,
                v,
                format!("{path} in body should be a multiple of {}", show_num(m)),
            ));
        }
    }
}

/// Validates `v` against each branch schema in isolation.
fn branch_results(branches: &[Value], v: &Value, path: &str) -> Vec<Vec<FieldCause>> {
    branches
        .iter()
        .map(|b| {
            let mut errs = Vec::new();
            validate_value(b, v, path, false, &mut errs);
            errs
        })
        .collect()
}

fn validate_junctors(s: &Value, v: &Value, path: &str, out: &mut Vec<FieldCause>) {
    let empty = Value::String(String::new());
    if let Some(Value::Array(branches)) = s.get("allOf") {
        let failures: Vec<FieldCause> = branch_results(branches, v, path)
            .into_iter()
            .flatten()
            .collect();
        if !failures.is_empty() {
            out.push(invalid(
                path,
                &empty,
                format!("{} must validate all the schemas (allOf)", quote(path)),
            ));
            out.extend(failures);
        }
    }
    if let Some(Value::Array(branches)) = s.get("anyOf") {
        let results = branch_results(branches, v, path);
        if !results.is_empty() && results.iter().all(|r| !r.is_empty()) {
            out.push(invalid(
                path,
                &empty,
                format!("{} must validate at least one schema (anyOf)", quote(path)),
            ));
            if let Some(best) = results.into_iter().min_by_key(Vec::len) {
                out.extend(best);
            }
        }
    }
    if let Some(Value::Array(branches)) = s.get("oneOf") {
        let results = branch_results(branches, v, path);
        let valid = results.iter().filter(|r| r.is_empty()).count();
        if !results.is_empty() && valid != 1 {
            let found = if valid == 0 {
                "Found none valid".to_string()
            } else {
                format!("Found {valid} valid alternatives")
            };
            out.push(invalid(
                path,
                &empty,
                format!(
                    "{} must validate one and only one schema (oneOf). {found}",
                    quote(path)
                ),
            ));
            if valid == 0
                && let Some(best) = results.into_iter().min_by_key(Vec::len)
            {
                out.extend(best);
            }
        }
    }
    if let Some(not) = s.get("not") {
        let mut errs = Vec::new();
        validate_value(not, v, path, false, &mut errs);
        if errs.is_empty() {
            out.push(invalid(
                path,
                &empty,
                format!("{} must not validate the schema (not)", quote(path)),
            ));
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;
    use std::path::PathBuf;

    /// The directory with the upstream CRDs: `$RAMP_SHARED_CRDS`, or
    /// `../../../shared/crds` relative to this crate.
    pub(crate) fn shared_crds_dir() -> PathBuf {
        match std::env::var_os("RAMP_SHARED_CRDS") {
            Some(dir) => PathBuf::from(dir),
            None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/crds"),
        }
    }

    pub(crate) fn load_crd(file: &str) -> Value {
        let path = shared_crds_dir().join(file);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        serde_yaml::from_str(&text).unwrap()
    }

    fn vs_schema() -> Value {
        let crd = load_crd("istio-networking.istio.io_virtualservices.yaml");
        version_schema(&crd, "v1").unwrap().clone()
    }

    fn vs(spec: Value) -> Value {
        json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": "reviews", "namespace": "default", "labels": {"app": "r"}},
            "spec": spec,
        })
    }

    fn fields(causes: &[FieldCause]) -> Vec<(&str, &str)> {
        causes
            .iter()
            .map(|c| (c.field.as_str(), c.reason_str()))
            .collect()
    }

    #[test]
    fn virtual_service_with_unknown_fields_is_pruned() {
        let schema = vs_schema();
        let mut obj = vs(json!({
            "hosts": ["reviews"],
            "bogus": true,
            "http": [{
                "name": "primary",
                "extra": {"deep": 1},
                "route": [
                    {"destination": {"host": "reviews", "subset": "stable", "nope": 1}, "weight": 90},
                    {"destination": {"host": "reviews", "subset": "canary"}, "weight": 10}
                ]
            }]
        }));
        obj["topLevelJunk"] = json!("x");
        obj["metadata"]["clusterName"] = json!("gone");
        validate_and_prune(&schema, &mut obj).unwrap();
        assert_eq!(
            obj,
            json!({
                "apiVersion": "networking.istio.io/v1",
                "kind": "VirtualService",
                "metadata": {"name": "reviews", "namespace": "default", "labels": {"app": "r"}},
                "spec": {
                    "hosts": ["reviews"],
                    "http": [{
                        "name": "primary",
                        "route": [
                            {"destination": {"host": "reviews", "subset": "stable"}, "weight": 90},
                            {"destination": {"host": "reviews", "subset": "canary"}, "weight": 10}
                        ]
                    }]
                }
            })
        );
    }

    #[test]
    fn virtual_service_with_wrong_types_is_rejected_naming_the_field() {
        let schema = vs_schema();
        let mut obj = vs(json!({
            "hosts": "reviews",
            "http": [{"route": [{"destination": {"host": "reviews"}, "weight": "ninety"}]}]
        }));
        let causes = validate_and_prune(&schema, &mut obj).unwrap_err();
        assert_eq!(
            fields(&causes),
            vec![
                ("spec.hosts", "FieldValueTypeInvalid"),
                ("spec.http[0].route[0].weight", "FieldValueTypeInvalid"),
            ]
        );
        assert_eq!(
            causes[0].to_string(),
            r#"spec.hosts: Invalid value: "string": spec.hosts in body must be of type array: "string""#
        );
        assert_eq!(
            causes[1].message,
            r#"Invalid value: "string": spec.http[0].route[0].weight in body must be of type integer: "string""#
        );
    }

    #[test]
    fn virtual_service_missing_required_destination_host() {
        let schema = vs_schema();
        let mut obj = vs(json!({
            "hosts": ["reviews"],
            "http": [{"route": [{"destination": {"subset": "v1"}}, {"weight": 5}]}]
        }));
        let causes = validate_and_prune(&schema, &mut obj).unwrap_err();
        assert_eq!(
            fields(&causes),
            vec![
                (
                    "spec.http[0].route[0].destination.host",
                    "FieldValueRequired"
                ),
                ("spec.http[0].route[1].destination", "FieldValueRequired"),
            ]
        );
        assert_eq!(
            causes[0].to_string(),
            "spec.http[0].route[0].destination.host: Required value"
        );
    }

    #[test]
    fn virtual_service_one_of_rejects_two_alternatives() {
        let schema = vs_schema();
        let mut ok = vs(json!({
            "hosts": ["r"],
            "http": [{"match": [{"uri": {"prefix": "/api"}}], "route": [{"destination": {"host": "r"}}]}]
        }));
        validate_and_prune(&schema, &mut ok).unwrap();
        let mut bad = vs(json!({
            "hosts": ["r"],
            "http": [{"match": [{"uri": {"prefix": "/api", "exact": "/x"}}], "route": [{"destination": {"host": "r"}}]}]
        }));
        let causes = validate_and_prune(&schema, &mut bad).unwrap_err();
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(causes[0].field, "spec.http[0].match[0].uri");
        assert!(
            causes[0].message.ends_with(
                "must validate one and only one schema (oneOf). Found 2 valid alternatives"
            ),
            "{}",
            causes[0].message
        );
    }

    #[test]
    fn virtual_service_status_preserves_unknown_fields_and_int_or_string() {
        let schema = vs_schema();
        let mut obj = vs(json!({"hosts": ["r"]}));
        obj["status"] = json!({"observedGeneration": "3", "anything": {"goes": [1, 2]}});
        validate_and_prune(&schema, &mut obj).unwrap();
        assert_eq!(obj["status"]["anything"], json!({"goes": [1, 2]}));
        obj["status"]["observedGeneration"] = json!(true);
        let causes = validate(&schema, &obj);
        assert!(
            causes.iter().any(|c| c.field == "status.observedGeneration"
                && c.message
                    .contains("must validate at least one schema (anyOf)")),
            "{causes:?}"
        );
    }

    #[test]
    fn destination_rule_with_nested_all_of_one_of_validates() {
        let crd = load_crd("istio-networking.istio.io_destinationrules.yaml");
        let schema = version_schema(&crd, "v1").unwrap();
        let mut obj = json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "DestinationRule",
            "metadata": {"name": "reviews"},
            "spec": {
                "host": "reviews",
                "subsets": [
                    {"name": "stable", "labels": {"version": "v1"}},
                    {"name": "canary", "labels": {"version": "v2"}, "junk": 1}
                ],
                "trafficPolicy": {"loadBalancer": {"simple": "ROUND_ROBIN"}}
            }
        });
        validate_and_prune(schema, &mut obj).unwrap();
        assert!(obj["spec"]["subsets"][1].get("junk").is_none());

        obj["spec"]["trafficPolicy"]["loadBalancer"]["simple"] = json!("FASTEST");
        let causes = validate(schema, &obj);
        assert_eq!(
            fields(&causes),
            vec![(
                "spec.trafficPolicy.loadBalancer.simple",
                "FieldValueNotSupported"
            )]
        );
        assert!(
            causes[0].message.starts_with(
                r#"Unsupported value: "FASTEST": supported values: "UNSPECIFIED", "LEAST_CONN""#
            ),
            "{}",
            causes[0].message
        );
    }

    fn httproute_schema() -> Value {
        let crd = load_crd("gateway.networking.k8s.io_httproutes.yaml");
        version_schema(&crd, "v1").unwrap().clone()
    }

    #[test]
    fn httproute_defaults_are_applied() {
        let schema = httproute_schema();
        let mut obj = json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "r"},
            "spec": {"parentRefs": [{"name": "gw"}]}
        });
        validate_and_prune(&schema, &mut obj).unwrap();
        assert_eq!(
            obj["spec"]["parentRefs"][0]["group"],
            "gateway.networking.k8s.io"
        );
        assert_eq!(obj["spec"]["parentRefs"][0]["kind"], "Gateway");
        assert_eq!(
            obj["spec"]["rules"],
            json!([{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}])
        );

        let mut obj = json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "r"},
            "spec": {"rules": [{"backendRefs": [{"name": "svc", "port": 80}]}]}
        });
        validate_and_prune(&schema, &mut obj).unwrap();
        let backend = &obj["spec"]["rules"][0]["backendRefs"][0];
        assert_eq!(backend["weight"], 1);
        assert_eq!(backend["kind"], "Service");
        assert_eq!(backend["group"], "");
    }

    #[test]
    fn httproute_limits_are_enforced() {
        let schema = httproute_schema();
        let hostnames: Vec<Value> = (0..17)
            .map(|i| json!(format!("h{i}.example.com")))
            .collect();
        let mut obj = json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "r"},
            "spec": {
                "hostnames": hostnames,
                "rules": [{"backendRefs": [{"name": "svc", "port": 70000, "weight": -1}]}]
            }
        });
        let causes = validate_and_prune(&schema, &mut obj).unwrap_err();
        let got = fields(&causes);
        assert!(
            got.contains(&("spec.hostnames", "FieldValueTooMany")),
            "{got:?}"
        );
        assert!(
            got.contains(&("spec.rules[0].backendRefs[0].port", "FieldValueInvalid")),
            "{got:?}"
        );
        assert!(
            got.contains(&("spec.rules[0].backendRefs[0].weight", "FieldValueInvalid")),
            "{got:?}"
        );
        let port = causes
            .iter()
            .find(|c| c.field == "spec.rules[0].backendRefs[0].port")
            .unwrap();
        assert_eq!(
            port.message,
            "Invalid value: 70000: spec.rules[0].backendRefs[0].port in body should be less than or equal to 65535"
        );
        let many = causes.iter().find(|c| c.field == "spec.hostnames").unwrap();
        assert_eq!(many.message, "Too many: 17: must have at most 16 items");
    }

    #[test]
    fn httproute_pattern_and_length() {
        let schema = httproute_schema();
        let mut obj = json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "r"},
            "spec": {"hostnames": ["Not_A_Host!"], "parentRefs": [{"name": ""}]}
        });
        let causes = validate_and_prune(&schema, &mut obj).unwrap_err();
        let got = fields(&causes);
        assert!(
            got.contains(&("spec.hostnames[0]", "FieldValueInvalid")),
            "{got:?}"
        );
        assert!(
            got.contains(&("spec.parentRefs[0].name", "FieldValueInvalid")),
            "{got:?}"
        );
        let host = causes
            .iter()
            .find(|c| c.field == "spec.hostnames[0]")
            .unwrap();
        assert!(
            host.message.starts_with(
                r#"Invalid value: "Not_A_Host!": spec.hostnames[0] in body should match '"#
            ),
            "{}",
            host.message
        );
    }

    #[test]
    fn cel_rules_are_ignored() {
        let schema = json!({
            "type": "object",
            "properties": {"spec": {
                "type": "object",
                "x-kubernetes-validations": [{"rule": "false", "message": "never"}],
                "properties": {"a": {"type": "string"}}
            }}
        });
        let mut obj =
            json!({"apiVersion": "x/v1", "kind": "X", "metadata": {}, "spec": {"a": "b"}});
        validate_and_prune(&schema, &mut obj).unwrap();
    }

    fn small_schema() -> Value {
        json!({
            "type": "object",
            "required": ["spec"],
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["replicas"],
                    "properties": {
                        "replicas": {"type": "integer", "format": "int32", "minimum": 0, "maximum": 10},
                        "mode": {"type": "string", "enum": ["a", "b"], "default": "a"},
                        "ratio": {"type": "number", "exclusiveMaximum": true, "maximum": 1, "multipleOf": 0.25},
                        "name": {"type": "string", "minLength": 2, "maxLength": 4},
                        "maybe": {"type": "string", "nullable": true},
                        "flag": {"type": "boolean", "default": false},
                        "port": {"x-kubernetes-int-or-string": true},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": 2},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                                 "properties": {"known": {"type": "object", "properties": {"x": {"type": "integer"}}}}},
                        "anything": {"type": "object", "additionalProperties": true},
                        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                                 "x-kubernetes-list-type": "set"},
                        "ports": {"type": "array", "x-kubernetes-list-type": "map",
                                  "x-kubernetes-list-map-keys": ["port", "protocol"],
                                  "items": {"type": "object", "required": ["port"], "properties": {
                                      "port": {"type": "integer"},
                                      "protocol": {"type": "string", "default": "TCP"}}}},
                        "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                                     "properties": {"spec": {"type": "object", "properties": {"a": {"type": "string"}}}}},
                        "created": {"type": "string", "format": "date-time"},
                        "blob": {"type": "string", "format": "byte"},
                        "items": {"type": "array", "items": {"type": "object", "properties": {
                            "w": {"type": "integer", "default": 1}}}}
                    }
                }
            }
        })
    }

    fn obj(spec: Value) -> Value {
        json!({"apiVersion": "x.io/v1", "kind": "X", "metadata": {"name": "n"}, "spec": spec})
    }

    #[test]
    fn defaults_apply_to_absent_and_non_nullable_null_fields() {
        let s = small_schema();
        let mut o =
            obj(json!({"replicas": 1, "flag": null, "maybe": null, "items": [{}, {"w": 3}]}));
        validate_and_prune(&s, &mut o).unwrap();
        assert_eq!(o["spec"]["mode"], "a");
        assert_eq!(o["spec"]["flag"], false);
        assert_eq!(o["spec"]["maybe"], Value::Null, "nullable null is kept");
        assert_eq!(o["spec"]["items"], json!([{"w": 1}, {"w": 3}]));
        // No default is invented for an absent parent object.
        assert!(o["spec"].get("labels").is_none());
    }

    #[test]
    fn null_without_default_is_a_type_error() {
        let s = small_schema();
        let mut o = obj(json!({"replicas": 1, "name": null}));
        let causes = validate_and_prune(&s, &mut o).unwrap_err();
        assert_eq!(
            causes[0].to_string(),
            r#"spec.name: Invalid value: "null": spec.name in body must be of type string: "null""#
        );
    }

    #[test]
    fn scalar_constraints() {
        let s = small_schema();
        let mut o = obj(json!({"replicas": 11, "mode": "c", "ratio": 1.0, "name": "toolong"}));
        let causes = validate_and_prune(&s, &mut o).unwrap_err();
        let msgs: Vec<String> = causes.iter().map(ToString::to_string).collect();
        assert_eq!(
            msgs,
            vec![
                r#"spec.mode: Unsupported value: "c": supported values: "a", "b""#,
                "spec.name: Too long: may not be more than 4 bytes",
                "spec.ratio: Invalid value: 1.0: spec.ratio in body should be less than 1",
                "spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10",
            ]
        );
        let mut o = obj(json!({"replicas": -1, "ratio": 0.3, "name": "x"}));
        let causes = validate_and_prune(&s, &mut o).unwrap_err();
        let msgs: Vec<String> = causes.iter().map(ToString::to_string).collect();
        assert_eq!(
            msgs,
            vec![
                r#"spec.name: Invalid value: "x": spec.name in body should be at least 2 chars long"#,
                "spec.ratio: Invalid value: 0.3: spec.ratio in body should be a multiple of 0.25",
                "spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0",
            ]
        );
    }

    #[test]
    fn integral_float_is_an_integer_but_fraction_is_not() {
        let s = small_schema();
        let mut o = obj(json!({"replicas": 2.0}));
        validate_and_prune(&s, &mut o).unwrap();
        let mut o = obj(json!({"replicas": 2.5}));
        let causes = validate_and_prune(&s, &mut o).unwrap_err();
        assert_eq!(causes[0].reason, CauseReason::FieldValueTypeInvalid);
        assert!(
            causes[0]
                .message
                .ends_with(r#"must be of type integer: "number""#)
        );
    }

    #[test]
    fn int_or_string_accepts_both_and_rejects_others() {
        let s = small_schema();
        for port in [json!(8080), json!("http")] {
            let mut o = obj(json!({"replicas": 1, "port": port}));
            validate_and_prune(&s, &mut o).unwrap();
        }
        let mut o = obj(json!({"replicas": 1, "port": [1]}));
        let causes = validate_and_prune(&s, &mut o).unwrap_err();
        assert!(causes.iter().all(|c| c.field == "spec.port"), "{causes:?}");
        assert!(
            causes
                .iter()
                .any(|c| c.message.contains(r#"must be of type integer: "array""#))
        );
    }

    #[test]
    fn required_at_root_and_nested() {
        let s = small_schema();
        let mut o = json!({"apiVersion": "x.io/v1", "kind": "X", "metadata": {"name": "n"}});
        let causes = validate_and_prune(&s, &mut o).unwrap_err();
        assert_eq!(causes[0].to_string(), "spec: Required value");
        let mut o = obj(json!({}));
        let causes = validate_and_prune(&s, &mut o).unwrap_err();
        assert_eq!(
            fields(&causes),
            vec![("spec.replicas", "FieldValueRequired")]
        );
    }

    #[test]
    fn additional_properties_and_preserve_unknown_fields() {
        let s = small_schema();
        let mut o = obj(json!({
            "replicas": 1,
            "labels": {"a": "1"},
            "free": {"whatever": {"x": 1}, "known": {"x": 2, "pruned": true}},
            "anything": {"k": [1, {"z": null}]}
        }));
        validate_and_prune(&s, &mut o).unwrap();
        assert_eq!(
            o["spec"]["free"],
            json!({"whatever": {"x": 1}, "known": {"x": 2}})
        );
        assert_eq!(o["spec"]["anything"], json!({"k": [1, {"z": null}]}));

        let mut o = obj(json!({"replicas": 1, "labels": {"a": 1, "b": "x", "c": "y"}}));
        let causes = validate_and_prune(&s, &mut o).unwrap_err();
        assert_eq!(
            fields(&causes),
            vec![
                ("spec.labels", "FieldValueTooMany"),
                ("spec.labels.a", "FieldValueTypeInvalid")
            ]
        );
    }

    #[test]
    fn list_types_reject_duplicates() {
        let s = small_schema();
        let mut o = obj(json!({
            "replicas": 1,
            "tags": ["a", "b", "a"],
            "ports": [{"port": 80}, {"port": 80, "protocol": "UDP"}, {"port": 80, "protocol": "TCP"}]
        }));
        let causes = validate_and_prune(&s, &mut o).unwrap_err();
        let msgs: Vec<String> = causes.iter().map(ToString::to_string).collect();
        assert_eq!(
            msgs,
            vec![
                r#"spec.ports[2]: Duplicate value: {"port":80,"protocol":"TCP"}"#,
                r#"spec.tags[2]: Duplicate value: "a""#,
            ]
        );
        let mut o = obj(json!({"replicas": 1, "tags": []}));
        let causes = validate_and_prune(&s, &mut o).unwrap_err();
        assert_eq!(
            causes[0].to_string(),
            "spec.tags: Invalid value: 0: spec.tags in body should have at least 1 items"
        );
    }

    #[test]
    fn embedded_resource_keeps_type_and_metadata_and_requires_them() {
        let s = small_schema();
        let mut o = obj(json!({
            "replicas": 1,
            "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "bogus": 1},
                         "spec": {"a": "b", "c": "pruned"}, "other": "pruned"}
        }));
        validate_and_prune(&s, &mut o).unwrap();
        assert_eq!(
            o["spec"]["template"],
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"a": "b"}})
        );
        let mut o = obj(json!({"replicas": 1, "template": {"spec": {}}}));
        let causes = validate_and_prune(&s, &mut o).unwrap_err();
        assert_eq!(
            fields(&causes),
            vec![
                ("spec.template.apiVersion", "FieldValueRequired"),
                ("spec.template.kind", "FieldValueRequired")
            ]
        );
    }

    #[test]
    fn string_formats() {
        let s = small_schema();
        let mut o =
            obj(json!({"replicas": 1, "created": "2024-05-01T10:00:00Z", "blob": "aGVsbG8="}));
        validate_and_prune(&s, &mut o).unwrap();
        let mut o = obj(json!({"replicas": 1, "created": "yesterday", "blob": "!!"}));
        let causes = validate_and_prune(&s, &mut o).unwrap_err();
        let msgs: Vec<String> = causes.iter().map(ToString::to_string).collect();
        assert_eq!(
            msgs,
            vec![
                r#"spec.blob: Invalid value: "!!": spec.blob in body must be of type byte: "!!""#,
                r#"spec.created: Invalid value: "yesterday": spec.created in body must be of type date-time: "yesterday""#,
            ]
        );
    }

    #[test]
    fn root_metadata_is_never_pruned_or_validated() {
        let s = json!({"type": "object", "properties": {"spec": {"type": "object"}}});
        let mut o = json!({
            "apiVersion": "x/v1", "kind": "X",
            "metadata": {"name": "n", "annotations": {"a": "b"}, "finalizers": ["f"]},
            "spec": {}, "status": {"gone": 1}
        });
        validate_and_prune(&s, &mut o).unwrap();
        assert_eq!(
            o,
            json!({"apiVersion": "x/v1", "kind": "X",
                   "metadata": {"name": "n", "annotations": {"a": "b"}, "finalizers": ["f"]},
                   "spec": {}})
        );
    }

    #[test]
    fn any_of_and_not() {
        let s = json!({"type": "object", "properties": {"spec": {
            "type": "object",
            "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
            "anyOf": [{"required": ["a"]}, {"required": ["b"]}],
            "not": {"required": ["a", "b"]}
        }}});
        for ok in [json!({"a": "x"}), json!({"b": "y"})] {
            assert_eq!(validate(&s, &json!({"spec": ok})), vec![]);
        }
        let causes = validate(&s, &json!({"spec": {}}));
        assert_eq!(
            causes.iter().map(ToString::to_string).collect::<Vec<_>>(),
            vec![
                r#"spec: Invalid value: "": "spec" must validate at least one schema (anyOf)"#,
                "spec.a: Required value"
            ]
        );
        let causes = validate(&s, &json!({"spec": {"a": "x", "b": "y"}}));
        assert_eq!(
            causes[0].to_string(),
            r#"spec: Invalid value: "": "spec" must not validate the schema (not)"#
        );
    }

    #[test]
    fn join_causes_formats_like_the_apiserver() {
        let a = FieldCause::new(
            "spec.a",
            CauseReason::FieldValueRequired,
            "Required value".into(),
        );
        let b = FieldCause::new(
            "spec.b",
            CauseReason::FieldValueRequired,
            "Required value".into(),
        );
        assert_eq!(
            join_causes(std::slice::from_ref(&a)),
            "spec.a: Required value"
        );
        assert_eq!(
            join_causes(&[a, b]),
            "[spec.a: Required value, spec.b: Required value]"
        );
    }
}
