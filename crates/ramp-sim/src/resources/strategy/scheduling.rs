//! `scheduling.k8s.io/v1`: PriorityClass.

use serde_json::Value;

use super::{Strategy, Write, default_field};
use crate::errors::{ApiResult, Cause};

/// `preemptionPolicy` defaults to `PreemptLowerPriority`; a user-defined `value` is at most one
/// billion and never changes.
pub(super) struct PriorityClass;

impl Strategy for PriorityClass {
    fn prepare(&self, w: &Write<'_>, obj: &mut Value) -> ApiResult<()> {
        let Some(o) = obj.as_object_mut() else {
            return Ok(());
        };
        default_field(
            o,
            "preemptionPolicy",
            Value::String("PreemptLowerPriority".into()),
        );
        match o.get("value") {
            Some(Value::Number(n)) if n.as_i64().is_some() => Ok(()),
            Some(v) if !v.is_null() => Err(w.type_error("value", "int32", v)),
            _ => Ok(()),
        }
    }

    fn validate(&self, w: &Write<'_>, obj: &Value, causes: &mut Vec<Cause>) {
        let Some(o) = obj.as_object() else {
            return;
        };
        if let Some(v) = o.get("value").and_then(Value::as_i64)
            && v > 1_000_000_000
            && !w.name.starts_with("system-")
        {
            causes.push(Cause::new(
                "FieldValueForbidden",
                "value",
                "Forbidden: maximum allowed value of a user defined priority is 1000000000",
            ));
        }
        if let Some(old) = w.old
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
