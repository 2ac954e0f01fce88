//! The pod spec, alone (Pods) or as a template (workloads, Jobs, CronJobs).

use serde_json::Value;

use super::{default_field, required};
use crate::errors::Cause;

/// The defaults of a pod spec and of its containers.
pub(super) fn default_pod_spec(spec: &mut Value) {
    let Some(spec) = spec.as_object_mut() else {
        return;
    };
    default_field(spec, "restartPolicy", Value::String("Always".into()));
    default_field(spec, "dnsPolicy", Value::String("ClusterFirst".into()));
    default_field(
        spec,
        "schedulerName",
        Value::String("default-scheduler".into()),
    );
    default_field(spec, "terminationGracePeriodSeconds", serde_json::json!(30));
    default_field(spec, "securityContext", serde_json::json!({}));
    let Some(containers) = spec.get_mut("containers").and_then(Value::as_array_mut) else {
        return;
    };
    for c in containers.iter_mut().filter_map(Value::as_object_mut) {
        let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
        let last = image.rsplit('/').next().unwrap_or_default();
        let latest = !last.contains(':') || last.ends_with(":latest");
        default_field(
            c,
            "imagePullPolicy",
            Value::String(if latest { "Always" } else { "IfNotPresent" }.into()),
        );
        default_field(
            c,
            "terminationMessagePath",
            Value::String("/dev/termination-log".into()),
        );
        default_field(c, "terminationMessagePolicy", Value::String("File".into()));
        if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
            for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                default_field(p, "protocol", Value::String("TCP".into()));
            }
        }
    }
}

/// A cause per missing container list, container name or image of the pod spec at `path`.
pub(super) fn validate_pod_spec(spec: &Value, path: &str, causes: &mut Vec<Cause>) {
    let Some(spec) = spec.as_object() else {
        causes.push(Cause::new(
            "FieldValueInvalid",
            path,
            "Invalid value: must be an object",
        ));
        return;
    };
    match spec.get("containers").and_then(Value::as_array) {
        None => causes.push(required(format!("{path}.containers"))),
        Some(cs) if cs.is_empty() => causes.push(required(format!("{path}.containers"))),
        Some(cs) => {
            for (i, c) in cs.iter().enumerate() {
                let Some(c) = c.as_object() else {
                    continue;
                };
                if c.get("name")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    causes.push(required(format!("{path}.containers[{i}].name")));
                }
                if c.get("image")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    causes.push(required(format!("{path}.containers[{i}].image")));
                }
            }
        }
    }
}
