//! `batch/v1`: Job and CronJob.

use serde_json::{Value, json};

use super::pod::{default_pod_spec, validate_pod_spec};
use super::{Strategy, Write, default_field, obj_mut, required};
use crate::errors::{ApiResult, Cause};
use crate::object::meta_str;

/// The label a Job's pods carry with its uid (and its selector matches).
pub const JOB_CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
/// The label a Job's pods carry with its name.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";

/// Completions, parallelism, backoff and the other defaults; a generated selector and template
/// labels (kept on update); completions, selector and (unless suspended) template immutable;
/// pods that restart `Never` or `OnFailure`.
pub(super) struct Job;

impl Strategy for Job {
    fn prepare(&self, w: &Write<'_>, obj: &mut Value) -> ApiResult<()> {
        let Some(spec) = obj_mut(obj, "spec") else {
            return Ok(());
        };
        if spec.get("completions").is_none_or(Value::is_null)
            && spec.get("parallelism").is_none_or(Value::is_null)
        {
            spec.insert("completions".into(), json!(1));
        }
        default_field(spec, "parallelism", json!(1));
        default_field(spec, "backoffLimit", json!(6));
        default_field(spec, "completionMode", Value::String("NonIndexed".into()));
        default_field(spec, "suspend", Value::Bool(false));
        default_field(
            spec,
            "podReplacementPolicy",
            Value::String("TerminatingOrFailed".into()),
        );
        default_field(spec, "manualSelector", Value::Bool(false));
        // The selector and template labels the server generated are kept on update.
        if let Some(old_spec) = w.old.and_then(|o| o.get("spec")) {
            for field in ["selector", "template"] {
                if spec.get(field).is_none()
                    && let Some(was) = old_spec.get(field)
                {
                    spec.insert(field.into(), was.clone());
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
            causes.push(required("spec.template.spec.containers"));
            return;
        };
        for field in ["parallelism", "completions", "backoffLimit"] {
            if let Some(v) = spec.get(field)
                && v.as_i64().is_some_and(|n| n < 0)
            {
                causes.push(Cause::new(
                    "FieldValueInvalid",
                    format!("spec.{field}"),
                    format!("Invalid value: {v}: must be greater than or equal to 0"),
                ));
            }
        }
        if let Some(old_spec) = w.old.and_then(|o| o.get("spec")) {
            for field in ["completions", "selector"] {
                let (was, is) = (old_spec.get(field), spec.get(field));
                if was != is {
                    causes.push(Cause::new(
                        "FieldValueInvalid",
                        format!("spec.{field}"),
                        format!(
                            "Invalid value: {}: field is immutable",
                            is.cloned().unwrap_or(Value::Null)
                        ),
                    ));
                }
            }
        }
        match spec.get("template").and_then(|t| t.get("spec")) {
            Some(pod) => {
                validate_pod_spec(pod, "spec.template.spec", causes);
                check_job_restart_policy(pod, "spec.template.spec", causes);
            }
            None => causes.push(required("spec.template.spec.containers")),
        }
        if let Some(old_tpl) = w.old.and_then(|o| o.pointer("/spec/template/spec"))
            && spec.get("template").and_then(|t| t.get("spec")) != Some(old_tpl)
            && spec.get("suspend") != Some(&Value::Bool(true))
        {
            // Only a suspended Job's pod template may change (the sim takes any change then).
            causes.push(Cause::new(
                "FieldValueInvalid",
                "spec.template",
                "Invalid value: field is immutable",
            ));
        }
    }

    /// A Job's generated selector (`batch.kubernetes.io/controller-uid`) and its pod template
    /// labels, as kube-apiserver's Job strategy sets them unless `manualSelector` is set.
    fn prepare_for_create(&self, obj: &mut Value) {
        let uid = meta_str(obj, "uid").to_string();
        let name = meta_str(obj, "name").to_string();
        let Some(spec) = obj_mut(obj, "spec") else {
            return;
        };
        if spec.get("manualSelector") == Some(&Value::Bool(true)) && spec.get("selector").is_some()
        {
            return;
        }
        spec.insert(
            "selector".into(),
            json!({"matchLabels": {JOB_CONTROLLER_UID_LABEL: uid}}),
        );
        if let Some(meta) = spec
            .get_mut("template")
            .and_then(Value::as_object_mut)
            .map(|t| t.entry("metadata").or_insert_with(|| json!({})))
            .and_then(Value::as_object_mut)
        {
            let labels = meta.entry("labels").or_insert_with(|| json!({}));
            if let Some(l) = labels.as_object_mut() {
                for (k, v) in [
                    (JOB_CONTROLLER_UID_LABEL, &uid),
                    (JOB_NAME_LABEL, &name),
                    ("controller-uid", &uid),
                    ("job-name", &name),
                ] {
                    l.insert(k.into(), Value::String(v.clone()));
                }
            }
        }
    }
}

/// Concurrency, suspension and history defaults; a valid schedule; a Job template whose pods
/// restart `Never` or `OnFailure`.
pub(super) struct CronJob;

impl Strategy for CronJob {
    fn prepare(&self, _w: &Write<'_>, obj: &mut Value) -> ApiResult<()> {
        let Some(spec) = obj_mut(obj, "spec") else {
            return Ok(());
        };
        default_field(spec, "concurrencyPolicy", Value::String("Allow".into()));
        default_field(spec, "suspend", Value::Bool(false));
        default_field(spec, "successfulJobsHistoryLimit", json!(3));
        default_field(spec, "failedJobsHistoryLimit", json!(1));
        if let Some(pod) = job_template_pod_mut(spec) {
            default_pod_spec(pod);
        }
        Ok(())
    }

    fn validate(&self, _w: &Write<'_>, obj: &Value, causes: &mut Vec<Cause>) {
        let Some(spec) = obj.get("spec").and_then(Value::as_object) else {
            causes.push(required("spec.schedule"));
            return;
        };
        match spec.get("schedule").and_then(Value::as_str) {
            None | Some("") => causes.push(required("spec.schedule")),
            Some(sched) => {
                if let Err(e) = check_cron_schedule(sched) {
                    causes.push(Cause::new(
                        "FieldValueInvalid",
                        "spec.schedule",
                        format!("Invalid value: {sched:?}: {e}"),
                    ));
                }
            }
        }
        let path = "spec.jobTemplate.spec.template.spec";
        match spec
            .get("jobTemplate")
            .and_then(|t| t.pointer("/spec/template/spec"))
        {
            Some(pod) => {
                validate_pod_spec(pod, path, causes);
                check_job_restart_policy(pod, path, causes);
            }
            None => causes.push(required(format!("{path}.containers"))),
        }
    }
}

/// `jobTemplate.spec.template.spec` of a CronJob spec.
fn job_template_pod_mut(spec: &mut serde_json::Map<String, Value>) -> Option<&mut Value> {
    spec.get_mut("jobTemplate")
        .and_then(|t| t.get_mut("spec"))
        .and_then(|s| s.get_mut("template"))
        .and_then(|t| t.get_mut("spec"))
}

/// A Job's pods restart `Never` or `OnFailure` (the pod default, `Always`, is refused).
fn check_job_restart_policy(pod: &Value, path: &str, causes: &mut Vec<Cause>) {
    let policy = pod.get("restartPolicy").and_then(Value::as_str);
    if !matches!(policy, Some("Never" | "OnFailure")) {
        let shown = policy.unwrap_or_default();
        causes.push(Cause::new(
            if shown.is_empty() || shown == "Always" {
                "FieldValueRequired"
            } else {
                "FieldValueNotSupported"
            },
            format!("{path}.restartPolicy"),
            if shown.is_empty() || shown == "Always" {
                "Required value: valid values: \"OnFailure\", \"Never\"".to_string()
            } else {
                format!("Unsupported value: {shown:?}: supported values: \"OnFailure\", \"Never\"")
            },
        ));
    }
}

/// Checks a five-field cron schedule (or a `@hourly`-style macro), as the CronJob
/// validation does: each field a `*`, number, range, list or step within its bounds.
pub fn check_cron_schedule(schedule: &str) -> Result<(), String> {
    let s = schedule.trim();
    let s = s
        .strip_prefix("TZ=")
        .or_else(|| s.strip_prefix("CRON_TZ="))
        .map_or(s, |rest| rest.split_once(' ').map_or("", |(_, r)| r.trim()));
    if s.starts_with('@') {
        return match s {
            "@yearly" | "@annually" | "@monthly" | "@weekly" | "@daily" | "@midnight"
            | "@hourly" => Ok(()),
            _ => Err(format!("unrecognized descriptor: {s}")),
        };
    }
    let fields: Vec<&str> = s.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: {s}",
            fields.len()
        ));
    }
    let bounds = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];
    for (field, (lo, hi)) in fields.iter().zip(bounds) {
        for part in field.split(',') {
            let (range, step) = match part.split_once('/') {
                Some((r, st)) => (r, Some(st)),
                None => (part, None),
            };
            if let Some(st) = step
                && st.parse::<u32>().map_or(true, |n| n == 0)
            {
                return Err(format!("failed to parse int from {st}"));
            }
            if range == "*" || range == "?" {
                continue;
            }
            let (a, b) = range.split_once('-').unwrap_or((range, range));
            let parse = |x: &str| -> Result<u32, String> {
                let named = [
                    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
                    "dec",
                ];
                let days = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
                let lx = x.to_ascii_lowercase();
                if let Some(i) = named.iter().position(|m| *m == lx)
                    && hi == 12
                {
                    return u32::try_from(i + 1).map_err(|e| e.to_string());
                }
                if let Some(i) = days.iter().position(|d| *d == lx)
                    && hi == 7
                {
                    return u32::try_from(i).map_err(|e| e.to_string());
                }
                x.parse::<u32>()
                    .map_err(|_| format!("failed to parse int from {x}"))
            };
            let (a, b) = (parse(a)?, parse(b)?);
            if a < lo || b > hi || a > b {
                return Err(format!("end of range ({b}) above maximum ({hi}): {range}"));
            }
        }
    }
    Ok(())
}
