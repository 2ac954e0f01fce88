//! `apps/v1` workloads: Deployment, ReplicaSet, StatefulSet, DaemonSet.

use serde_json::{Map, Value, json};

use super::pod::{default_pod_spec, validate_pod_spec};
use super::{Strategy, Write, default_field, obj_mut, required};
use crate::errors::{ApiResult, Cause};

/// Replicas (not for DaemonSets), history limit, a Deployment's strategy and deadline, the
/// pod template; a selector that is not empty, matches the template and never changes.
pub(super) struct Workload;

impl Strategy for Workload {
    fn prepare(&self, w: &Write<'_>, obj: &mut Value) -> ApiResult<()> {
        let kind = w.rt.kind.as_str();
        let Some(spec) = obj_mut(obj, "spec") else {
            return Ok(());
        };
        if kind != "DaemonSet" {
            default_field(spec, "replicas", json!(1));
            if let Some(v) = spec.get("replicas")
                && !v.is_number()
            {
                return Err(w.type_error("spec.replicas", "int32", v));
            }
        }
        default_field(spec, "revisionHistoryLimit", json!(10));
        if kind == "Deployment" {
            default_field(spec, "progressDeadlineSeconds", json!(600));
            default_field(
                spec,
                "strategy",
                json!({"type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}),
            );
            if let Some(st) = spec.get_mut("strategy").and_then(Value::as_object_mut) {
                default_field(st, "type", Value::String("RollingUpdate".into()));
                if st.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
                    default_field(
                        st,
                        "rollingUpdate",
                        json!({"maxUnavailable": "25%", "maxSurge": "25%"}),
                    );
                }
            }
        }
        if let Some(pod) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
            default_pod_spec(pod);
        }
        Ok(())
    }

    fn validate(&self, w: &Write<'_>, obj: &Value, causes: &mut Vec<Cause>) {
        let Some(spec) = obj.get("spec").and_then(Value::as_object) else {
            return;
        };
        if w.rt.kind != "DaemonSet"
            && let Some(v) = spec.get("replicas")
            && v.as_i64().is_none_or(|r| r < 0)
        {
            causes.push(Cause::new(
                "FieldValueInvalid",
                "spec.replicas",
                format!("Invalid value: {v}: must be greater than or equal to 0"),
            ));
        }
        let selector = spec.get("selector");
        let labels = spec
            .get("template")
            .and_then(|t| t.pointer("/metadata/labels"));
        match selector {
            None | Some(Value::Null) => causes.push(required("spec.selector")),
            Some(sel) => {
                let empty = sel
                    .get("matchLabels")
                    .is_none_or(|m| m.as_object().is_none_or(Map::is_empty))
                    && sel
                        .get("matchExpressions")
                        .is_none_or(|m| m.as_array().is_none_or(Vec::is_empty));
                if empty {
                    causes.push(Cause::new(
                        "FieldValueInvalid",
                        "spec.selector",
                        "Invalid value: {}: empty selector is invalid for deployment",
                    ));
                } else if let Some(ml) = sel.get("matchLabels").and_then(Value::as_object) {
                    let ok = ml
                        .iter()
                        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
                    if !ok {
                        causes.push(Cause::new(
                            "FieldValueInvalid",
                            "spec.template.metadata.labels",
                            format!(
                                "Invalid value: {}: `selector` does not match template `labels`",
                                labels.cloned().unwrap_or(json!({}))
                            ),
                        ));
                    }
                }
            }
        }
        if let Some(old_sel) = w.old.and_then(|o| o.pointer("/spec/selector"))
            && selector != Some(old_sel)
        {
            causes.push(Cause::new(
                "FieldValueInvalid",
                "spec.selector",
                format!(
                    "Invalid value: {}: field is immutable",
                    selector.cloned().unwrap_or(Value::Null)
                ),
            ));
        }
        match spec.get("template").and_then(|t| t.get("spec")) {
            Some(pod) => validate_pod_spec(pod, "spec.template.spec", causes),
            None => causes.push(required("spec.template.spec.containers")),
        }
    }
}
