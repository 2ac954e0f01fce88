//! How each built-in kind is written, after kube-apiserver's per-kind `rest` strategies.
//!
//! A write of a built-in kind (custom resources are checked against their CRD's schema instead)
//! goes through its [`Strategy`] in three steps:
//! 1. [`Strategy::prepare`]: the defaults a real apiserver fills in, and `400 BadRequest` for
//!    wrongly typed fields (what kube-apiserver's decoder refuses before any strategy runs);
//! 2. [`Strategy::validate`]: the field problems of the defaulted object, answered together
//!    as one `422 Invalid` naming each field;
//! 3. [`Strategy::prepare_for_create`]: on create, once the object has its uid, what depends
//!    on it (a Job's generated selector).
//!
//! Kinds with nothing of their own to do have no strategy; [`strategy_for`] finds the one of
//! a resource type.

use serde_json::{Map, Value};

use super::ResourceType;
use crate::errors::{ApiError, ApiResult, Cause};
use crate::object::{json_type, meta_str};

mod apps;
mod batch;
mod core;
mod pod;
mod scheduling;

pub use batch::{JOB_CONTROLLER_UID_LABEL, JOB_NAME_LABEL, check_cron_schedule};

/// What one write of a built-in kind is about.
#[derive(Clone, Copy, Debug)]
pub struct Write<'a> {
    /// The object's type.
    pub rt: &'a ResourceType,
    /// `metadata.name` of the object written.
    pub name: &'a str,
    /// The stored object an update replaces (None on create).
    pub old: Option<&'a Value>,
}

impl Write<'_> {
    /// A `400` for a field of the wrong JSON type, worded as kube-apiserver's decoder words it.
    pub fn type_error(&self, field: &str, want: &str, got: &Value) -> ApiError {
        let rt = self.rt;
        ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: json: cannot unmarshal {} into Go value of type {want} ({field})",
            rt.kind,
            rt.preferred_version(),
            rt.kind,
            json_type(got),
        ))
    }
}

/// The create/update behaviour of one built-in kind.
pub trait Strategy: Sync {
    /// Fills in defaults; `Err` (a `400`) for a field of the wrong type.
    fn prepare(&self, _w: &Write<'_>, _obj: &mut Value) -> ApiResult<()> {
        Ok(())
    }

    /// Adds a cause per invalid field of the prepared object.
    fn validate(&self, _w: &Write<'_>, _obj: &Value, _causes: &mut Vec<Cause>) {}

    /// On create, after the uid is set and before the object is stored.
    fn prepare_for_create(&self, _obj: &mut Value) {}
}

/// The strategy of a built-in resource type (None for custom resources and for kinds stored as
/// they come).
pub fn strategy_for(rt: &ResourceType) -> Option<&'static dyn Strategy> {
    if rt.is_custom() {
        return None;
    }
    let s: &'static dyn Strategy = match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Namespace") => &core::Namespace,
        ("", "ConfigMap") => &core::ConfigMap,
        ("", "Secret") => &core::Secret,
        ("", "Service") => &core::Service,
        ("", "Pod") => &core::Pod,
        ("", "ResourceQuota") => &core::ResourceQuota,
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet") => &apps::Workload,
        ("batch", "Job") => &batch::Job,
        ("batch", "CronJob") => &batch::CronJob,
        ("scheduling.k8s.io", "PriorityClass") => &scheduling::PriorityClass,
        _ => return None,
    };
    Some(s)
}

/// Applies the defaults a real apiserver would (the ones clients look at) and the validation
/// that matters to them. Errors are `400` for wrongly typed fields and `422 Invalid` naming the
/// field otherwise.
pub fn default_and_validate_builtin(
    rt: &ResourceType,
    obj: &mut Value,
    old: Option<&Value>,
) -> ApiResult<()> {
    let name = meta_str(obj, "name").to_string();
    let w = Write {
        rt,
        name: &name,
        old,
    };
    for top in ["spec", "status", "data", "stringData"] {
        if let Some(v) = obj.get(top)
            && !v.is_object()
            && !v.is_null()
        {
            return Err(w.type_error(top, "object", v));
        }
    }
    let Some(strategy) = strategy_for(rt) else {
        return Ok(());
    };
    strategy.prepare(&w, obj)?;
    let mut causes = Vec::new();
    strategy.validate(&w, obj, &mut causes);
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(&rt.group, &rt.kind, &name, causes))
    }
}

/// What the server fills in once the object has its uid, before it is stored (see
/// [`Strategy::prepare_for_create`]).
pub fn prepare_for_create(rt: &ResourceType, obj: &mut Value) {
    if let Some(s) = strategy_for(rt) {
        s.prepare_for_create(obj);
    }
}

/// `v[key]` as an object, created (or replacing `null`) when absent.
fn obj_mut<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut Map<String, Value>> {
    let o = v.as_object_mut()?;
    let e = o.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if e.is_null() {
        *e = Value::Object(Map::new());
    }
    e.as_object_mut()
}

/// Sets `m[key]` unless it holds a non-null value.
fn default_field(m: &mut Map<String, Value>, key: &str, value: Value) {
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.into(), value);
    }
}

/// A `FieldValueRequired` cause.
fn required(field: impl Into<String>) -> Cause {
    Cause::new("FieldValueRequired", field, "Required value")
}
