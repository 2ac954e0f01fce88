//! Typed reads of JSON fields that report the object and the field path on error.

use serde_json::{Map, Value};

use super::MeshError;

/// The object being read, for error messages.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub kind: &'static str,
    pub name: String,
}

impl Ctx {
    pub fn new(kind: &'static str, obj: &Value) -> Self {
        Ctx {
            kind,
            name: name_of(obj).unwrap_or("<unnamed>").to_owned(),
        }
    }

    pub fn err(&self, field: &str, message: impl Into<String>) -> MeshError {
        MeshError::InvalidObject {
            kind: self.kind,
            name: self.name.clone(),
            field: field.to_owned(),
            message: message.into(),
        }
    }

    pub fn str<'v>(&self, v: Option<&'v Value>, field: &str) -> Result<Option<&'v str>, MeshError> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.err(
                field,
                format!("expected a string, found {}", type_name(other)),
            )),
        }
    }

    pub fn obj<'v>(
        &self,
        v: Option<&'v Value>,
        field: &str,
    ) -> Result<Option<&'v Map<String, Value>>, MeshError> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(other) => Err(self.err(
                field,
                format!("expected an object, found {}", type_name(other)),
            )),
        }
    }

    /// A list; absent or null reads as empty.
    pub fn arr<'v>(&self, v: Option<&'v Value>, field: &str) -> Result<&'v [Value], MeshError> {
        match v {
            None | Some(Value::Null) => Ok(&[]),
            Some(Value::Array(a)) => Ok(a),
            Some(other) => Err(self.err(
                field,
                format!("expected a list, found {}", type_name(other)),
            )),
        }
    }

    /// A non-negative integer (a float with no fractional part is accepted).
    pub fn uint(&self, v: Option<&Value>, field: &str) -> Result<Option<u64>, MeshError> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => {
                if let Some(u) = n.as_u64() {
                    return Ok(Some(u));
                }
                match n.as_f64() {
                    Some(f) if f >= 0.0 && f.fract() == 0.0 && f <= u64::MAX as f64 => {
                        Ok(Some(f as u64))
                    }
                    _ => {
                        Err(self.err(field, format!("expected a non-negative integer, found {n}")))
                    }
                }
            }
            Some(other) => Err(self.err(
                field,
                format!(
                    "expected a non-negative integer, found {}",
                    type_name(other)
                ),
            )),
        }
    }

    pub fn num(&self, v: Option<&Value>, field: &str) -> Result<Option<f64>, MeshError> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.err(field, format!("expected a number, found {n}"))),
            Some(other) => Err(self.err(
                field,
                format!("expected a number, found {}", type_name(other)),
            )),
        }
    }

    pub fn bool(&self, v: Option<&Value>, field: &str) -> Result<Option<bool>, MeshError> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.err(
                field,
                format!("expected true or false, found {}", type_name(other)),
            )),
        }
    }

    /// A map of string values (labels, selectors).
    pub fn string_map(
        &self,
        v: Option<&Value>,
        field: &str,
    ) -> Result<Vec<(String, String)>, MeshError> {
        let mut out = Vec::new();
        if let Some(m) = self.obj(v, field)? {
            for (k, val) in m {
                let s = self
                    .str(Some(val), &format!("{field}.{k}"))?
                    .unwrap_or_default();
                out.push((k.clone(), s.to_owned()));
            }
        }
        Ok(out)
    }
}

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

pub(crate) fn name_of(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/name").and_then(Value::as_str)
}

pub(crate) fn namespace_of(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/namespace").and_then(Value::as_str)
}

pub(crate) fn created_of(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
}

/// Sort key putting older objects first: creation time (objects without one
/// last), then name.
pub(crate) fn age_key(obj: &Value) -> (bool, String, String) {
    let created = created_of(obj);
    (
        created.is_none(),
        created.map(normalise_timestamp).unwrap_or_default(),
        name_of(obj).unwrap_or_default().to_owned(),
    )
}

/// RFC 3339 timestamps compare correctly as strings once in UTC with the same
/// precision; parse them so `2024-01-01T00:00:00Z` and `...00.5Z` order right.
fn normalise_timestamp(ts: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(ts) {
        Ok(t) => t
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%dT%H:%M:%S%.9fZ")
            .to_string(),
        Err(_) => ts.to_owned(),
    }
}
