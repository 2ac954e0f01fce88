//! `meta.k8s.io/v1` `Table` output (what `kubectl get` prints).
//!
//! Built-in kinds get the columns kubectl users know (Deployments: READY, UP-TO-DATE,
//! AVAILABLE; Pods: READY, STATUS, RESTARTS; ...). Custom resources get their CRD's
//! `additionalPrinterColumns`, evaluated as (simple) JSONPath. Everything else: NAME, AGE.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::resources::{PrinterColumn, ResourceType};

/// What each row carries in `object` (`includeObject` query parameter).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IncludeObject {
    /// Nothing.
    None,
    /// `PartialObjectMetadata` (the default).
    #[default]
    Metadata,
    /// The full object.
    Object,
}

impl IncludeObject {
    /// From the query parameter value.
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("None") => Self::None,
            Some("Object") => Self::Object,
            _ => Self::Metadata,
        }
    }
}

struct Col {
    name: &'static str,
    type_: &'static str,
    priority: i64,
    description: &'static str,
}

const fn col(name: &'static str, type_: &'static str, priority: i64) -> Col {
    Col {
        name,
        type_,
        priority,
        description: "",
    }
}

/// The column definitions for a type/version.
pub fn column_definitions(rt: &ResourceType, version: &str) -> Vec<Value> {
    let mut defs = vec![json!({
        "name": "Name", "type": "string", "format": "name", "priority": 0,
        "description": "Name must be unique within a namespace."
    })];
    if let Some(cols) = custom_columns(rt, version) {
        for c in cols {
            defs.push(json!({
                "name": c.name, "type": c.type_, "format": c.format,
                "description": c.description, "priority": c.priority
            }));
        }
        return defs;
    }
    for c in builtin_columns(rt) {
        defs.push(json!({
            "name": c.name, "type": c.type_, "format": "", "description": c.description,
            "priority": c.priority
        }));
    }
    defs
}

fn custom_columns(rt: &ResourceType, version: &str) -> Option<Vec<PrinterColumn>> {
    let v = rt.version(version)?;
    if !rt.is_custom() {
        return None;
    }
    if v.columns.is_empty() {
        return Some(vec![PrinterColumn {
            name: "Age".into(),
            type_: "date".into(),
            format: String::new(),
            description: "CreationTimestamp is a timestamp representing the server time when this object was created.".into(),
            priority: 0,
            json_path: ".metadata.creationTimestamp".into(),
        }]);
    }
    Some(v.columns.clone())
}

fn builtin_columns(rt: &ResourceType) -> Vec<Col> {
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("apps", "Deployment") => vec![
            col("Ready", "string", 0),
            col("Up-to-date", "integer", 0),
            col("Available", "integer", 0),
            col("Age", "string", 0),
            col("Containers", "string", 1),
            col("Images", "string", 1),
            col("Selector", "string", 1),
        ],
        ("apps", "ReplicaSet") => vec![
            col("Desired", "integer", 0),
            col("Current", "integer", 0),
            col("Ready", "integer", 0),
            col("Age", "string", 0),
            col("Containers", "string", 1),
            col("Images", "string", 1),
            col("Selector", "string", 1),
        ],
        ("", "Pod") => vec![
            col("Ready", "string", 0),
            col("Status", "string", 0),
            col("Restarts", "string", 0),
            col("Age", "string", 0),
            col("IP", "string", 1),
            col("Node", "string", 1),
        ],
        ("", "Service") => vec![
            col("Type", "string", 0),
            col("Cluster-IP", "string", 0),
            col("External-IP", "string", 0),
            col("Port(s)", "string", 0),
            col("Age", "string", 0),
            col("Selector", "string", 1),
        ],
        ("batch", "Job") => vec![
            col("Status", "string", 0),
            col("Completions", "string", 0),
            col("Duration", "string", 0),
            col("Age", "string", 0),
            col("Containers", "string", 1),
            col("Images", "string", 1),
            col("Selector", "string", 1),
        ],
        ("batch", "CronJob") => vec![
            col("Schedule", "string", 0),
            col("Timezone", "string", 0),
            col("Suspend", "boolean", 0),
            col("Active", "integer", 0),
            col("Last Schedule", "string", 0),
            col("Age", "string", 0),
            col("Containers", "string", 1),
            col("Images", "string", 1),
            col("Selector", "string", 1),
        ],
        ("scheduling.k8s.io", "PriorityClass") => vec![
            col("Value", "integer", 0),
            col("Global-Default", "boolean", 0),
            col("Age", "string", 0),
            col("PreemptionPolicy", "string", 0),
        ],
        ("", "ResourceQuota") => vec![
            col("Age", "string", 0),
            col("Request", "string", 0),
            col("Limit", "string", 0),
        ],
        ("", "Namespace") => vec![col("Status", "string", 0), col("Age", "string", 0)],
        ("", "ConfigMap") => vec![col("Data", "integer", 0), col("Age", "string", 0)],
        ("", "Secret") => vec![
            col("Type", "string", 0),
            col("Data", "integer", 0),
            col("Age", "string", 0),
        ],
        ("", "Endpoints") => vec![col("Endpoints", "string", 0), col("Age", "string", 0)],
        ("coordination.k8s.io", "Lease") => {
            vec![col("Holder", "string", 0), col("Age", "string", 0)]
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            vec![col("Created At", "date", 0)]
        }
        ("", "Event") | ("events.k8s.io", "Event") => vec![
            col("Last Seen", "string", 0),
            col("Type", "string", 0),
            col("Reason", "string", 0),
            col("Object", "string", 0),
            col("Message", "string", 0),
        ],
        _ => vec![col("Age", "string", 0)],
    }
}

fn i(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

/// `creationTimestamp` → `5m3s`, like kubectl's AGE column.
pub fn age(obj: &Value) -> String {
    let ts = s(obj, "/metadata/creationTimestamp");
    since(ts)
}

fn since(ts: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(ts) {
        Ok(t) => {
            let d = chrono::Utc::now().signed_duration_since(t.with_timezone(&chrono::Utc));
            human_duration(d.num_seconds())
        }
        Err(_) => "<unknown>".into(),
    }
}

/// Formats seconds the way Kubernetes' `duration.HumanDuration` does.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let secs = secs.max(0);
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        let s = secs % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    format!("{}y", hours / 24 / 365)
}

fn containers_and_images(obj: &Value, ptr: &str) -> (String, String) {
    let cs = obj
        .pointer(ptr)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = cs
        .iter()
        .map(|c| c.get("name").and_then(Value::as_str).unwrap_or_default())
        .collect();
    let images: Vec<&str> = cs
        .iter()
        .map(|c| c.get("image").and_then(Value::as_str).unwrap_or_default())
        .collect();
    (names.join(","), images.join(","))
}

fn builtin_cells(rt: &ResourceType, obj: &Value) -> Vec<Value> {
    let terminating = obj.pointer("/metadata/deletionTimestamp").is_some();
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("apps", "Deployment") => {
            let (c, im) = containers_and_images(obj, "/spec/template/spec/containers");
            vec![
                json!(format!(
                    "{}/{}",
                    i(obj, "/status/readyReplicas"),
                    i(obj, "/spec/replicas")
                )),
                json!(i(obj, "/status/updatedReplicas")),
                json!(i(obj, "/status/availableReplicas")),
                json!(age(obj)),
                json!(c),
                json!(im),
                json!(
                    obj.pointer("/spec/selector")
                        .map(crate::store::format_label_selector)
                        .unwrap_or_default()
                ),
            ]
        }
        ("batch", "Job") => {
            let (c, im) = containers_and_images(obj, "/spec/template/spec/containers");
            let cond = |t: &str| {
                obj.pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .is_some_and(|cs| {
                        cs.iter().any(|c| {
                            c.get("type").and_then(Value::as_str) == Some(t)
                                && c.get("status").and_then(Value::as_str) == Some("True")
                        })
                    })
            };
            let status = if cond("Complete") {
                "Complete"
            } else if cond("Failed") {
                "Failed"
            } else if obj.pointer("/spec/suspend") == Some(&json!(true)) {
                "Suspended"
            } else if terminating {
                "Terminating"
            } else {
                "Running"
            };
            let completions = match obj.pointer("/spec/completions").and_then(Value::as_i64) {
                Some(n) => format!("{}/{n}", i(obj, "/status/succeeded")),
                None => format!(
                    "{}/1 of {}",
                    i(obj, "/status/succeeded"),
                    i(obj, "/spec/parallelism")
                ),
            };
            let parse = |p: &str| {
                obj.pointer(p)
                    .and_then(Value::as_str)
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            };
            let duration = match (parse("/status/startTime"), parse("/status/completionTime")) {
                (Some(start), Some(end)) => human_duration((end - start).num_seconds()),
                (Some(start), None) => human_duration(
                    (chrono::Utc::now() - start.with_timezone(&chrono::Utc)).num_seconds(),
                ),
                _ => String::new(),
            };
            vec![
                json!(status),
                json!(completions),
                json!(duration),
                json!(age(obj)),
                json!(c),
                json!(im),
                json!(
                    obj.pointer("/spec/selector")
                        .map(crate::store::format_label_selector)
                        .unwrap_or_default()
                ),
            ]
        }
        ("batch", "CronJob") => {
            let (c, im) =
                containers_and_images(obj, "/spec/jobTemplate/spec/template/spec/containers");
            let last = s(obj, "/status/lastScheduleTime");
            vec![
                json!(s(obj, "/spec/schedule")),
                json!(
                    obj.pointer("/spec/timeZone")
                        .and_then(Value::as_str)
                        .unwrap_or("<none>")
                ),
                json!(
                    obj.pointer("/spec/suspend")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                ),
                json!(
                    obj.pointer("/status/active")
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len)
                ),
                json!(if last.is_empty() {
                    "<none>".to_string()
                } else {
                    since(last)
                }),
                json!(age(obj)),
                json!(c),
                json!(im),
                json!(
                    obj.pointer("/spec/jobTemplate/spec/selector")
                        .map(crate::store::format_label_selector)
                        .unwrap_or_else(|| "<none>".into())
                ),
            ]
        }
        ("scheduling.k8s.io", "PriorityClass") => vec![
            json!(i(obj, "/value")),
            json!(
                obj.get("globalDefault")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            ),
            json!(age(obj)),
            json!(s(obj, "/preemptionPolicy")),
        ],
        ("", "ResourceQuota") => {
            let used = |k: &str| {
                obj.pointer("/status/used")
                    .and_then(|u| u.get(k))
                    .and_then(Value::as_str)
                    .unwrap_or("0")
                    .to_string()
            };
            let mut requests = Vec::new();
            let mut limits = Vec::new();
            if let Some(hard) = obj.pointer("/spec/hard").and_then(Value::as_object) {
                for (k, v) in hard {
                    let hv = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                    let cell = format!("{k}: {}/{hv}", used(k));
                    if k.starts_with("limits.") {
                        limits.push(cell);
                    } else {
                        requests.push(cell);
                    }
                }
            }
            vec![
                json!(age(obj)),
                json!(requests.join(", ")),
                json!(limits.join(", ")),
            ]
        }
        ("apps", "ReplicaSet") => {
            let (c, im) = containers_and_images(obj, "/spec/template/spec/containers");
            vec![
                json!(i(obj, "/spec/replicas")),
                json!(i(obj, "/status/replicas")),
                json!(i(obj, "/status/readyReplicas")),
                json!(age(obj)),
                json!(c),
                json!(im),
                json!(
                    obj.pointer("/spec/selector")
                        .map(crate::store::format_label_selector)
                        .unwrap_or_default()
                ),
            ]
        }
        ("", "Pod") => {
            let total = obj
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map(Vec::len)
                .unwrap_or(0);
            let statuses = obj
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let ready = statuses
                .iter()
                .filter(|c| c.get("ready").and_then(Value::as_bool) == Some(true))
                .count();
            let restarts: i64 = statuses
                .iter()
                .map(|c| c.get("restartCount").and_then(Value::as_i64).unwrap_or(0))
                .sum();
            let mut status = s(obj, "/status/reason").to_string();
            if status.is_empty() {
                status = s(obj, "/status/phase").to_string();
            }
            if terminating {
                status = "Terminating".into();
            }
            let ip = s(obj, "/status/podIP");
            let node = s(obj, "/spec/nodeName");
            vec![
                json!(format!("{ready}/{total}")),
                json!(status),
                json!(restarts.to_string()),
                json!(age(obj)),
                json!(if ip.is_empty() { "<none>" } else { ip }),
                json!(if node.is_empty() { "<none>" } else { node }),
            ]
        }
        ("", "Service") => {
            let ports: Vec<String> = obj
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .map(|p| {
                            let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
                            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                            match p.get("nodePort").and_then(Value::as_i64) {
                                Some(np) => format!("{port}:{np}/{proto}"),
                                None => format!("{port}/{proto}"),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            let selector = obj
                .pointer("/spec/selector")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            let cip = s(obj, "/spec/clusterIP");
            vec![
                json!(s(obj, "/spec/type")),
                json!(if cip.is_empty() { "<none>" } else { cip }),
                json!("<none>"),
                json!(if ports.is_empty() {
                    "<none>".to_string()
                } else {
                    ports.join(",")
                }),
                json!(age(obj)),
                json!(if selector.is_empty() {
                    "<none>".to_string()
                } else {
                    selector
                }),
            ]
        }
        ("", "Namespace") => vec![json!(s(obj, "/status/phase")), json!(age(obj))],
        ("", "ConfigMap") => {
            let n = ["data", "binaryData"]
                .iter()
                .filter_map(|f| obj.get(f).and_then(Value::as_object))
                .map(|m| m.len())
                .sum::<usize>();
            vec![json!(n), json!(age(obj))]
        }
        ("", "Secret") => vec![
            json!(s(obj, "/type")),
            json!(
                obj.get("data")
                    .and_then(Value::as_object)
                    .map(|m| m.len())
                    .unwrap_or(0)
            ),
            json!(age(obj)),
        ],
        ("", "Endpoints") => {
            let mut eps = Vec::new();
            for subset in obj
                .get("subsets")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
            {
                let ports: Vec<i64> = subset
                    .get("ports")
                    .and_then(Value::as_array)
                    .map(|p| {
                        p.iter()
                            .filter_map(|x| x.get("port").and_then(Value::as_i64))
                            .collect()
                    })
                    .unwrap_or_default();
                for a in subset
                    .get("addresses")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
                {
                    let ip = a.get("ip").and_then(Value::as_str).unwrap_or_default();
                    if ports.is_empty() {
                        eps.push(ip.to_string());
                    }
                    for p in &ports {
                        eps.push(format!("{ip}:{p}"));
                    }
                }
            }
            vec![
                json!(if eps.is_empty() {
                    "<none>".to_string()
                } else {
                    eps.join(",")
                }),
                json!(age(obj)),
            ]
        }
        ("coordination.k8s.io", "Lease") => {
            vec![json!(s(obj, "/spec/holderIdentity")), json!(age(obj))]
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            vec![json!(s(obj, "/metadata/creationTimestamp"))]
        }
        ("", "Event") | ("events.k8s.io", "Event") => {
            // As kube-apiserver's printer: a series' last observation, else the last
            // timestamp, else the first one (both APIs' field names).
            let last = [
                "/series/lastObservedTime",
                "/lastTimestamp",
                "/deprecatedLastTimestamp",
                "/firstTimestamp",
                "/deprecatedFirstTimestamp",
                "/eventTime",
                "/metadata/creationTimestamp",
            ]
            .iter()
            .map(|p| s(obj, p))
            .find(|t| !t.is_empty())
            .unwrap_or_default();
            let (kind, name) = if obj.get("regarding").is_some() {
                (s(obj, "/regarding/kind"), s(obj, "/regarding/name"))
            } else {
                (
                    s(obj, "/involvedObject/kind"),
                    s(obj, "/involvedObject/name"),
                )
            };
            let message = if obj.get("note").is_some() {
                s(obj, "/note")
            } else {
                s(obj, "/message")
            };
            vec![
                json!(since(last)),
                json!(s(obj, "/type")),
                json!(s(obj, "/reason")),
                json!(format!("{}/{name}", kind.to_lowercase())),
                json!(message),
            ]
        }
        _ => vec![json!(age(obj))],
    }
}

/// Evaluates the subset of JSONPath used in printer columns: `.a.b`, `.a[0]`, `.a[*].b`
/// (first match), `.a[?(@.type=="Ready")].status`, escaped dots (`\.`).
pub fn json_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    let path = path.trim_start_matches('$');
    let mut segments: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            '.' => {
                if !cur.is_empty() {
                    segments.push(std::mem::take(&mut cur));
                }
            }
            '[' => {
                if !cur.is_empty() {
                    segments.push(std::mem::take(&mut cur));
                }
                let mut inner = String::from("[");
                for n in chars.by_ref() {
                    inner.push(n);
                    if n == ']' {
                        break;
                    }
                }
                segments.push(inner);
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        segments.push(cur);
    }
    eval(obj, &segments)
}

fn eval<'a>(v: &'a Value, segs: &[String]) -> Option<&'a Value> {
    let Some((first, rest)) = segs.split_first() else {
        return Some(v);
    };
    if let Some(inner) = first.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
        let arr = v.as_array()?;
        if inner == "*" {
            return arr.iter().find_map(|x| eval(x, rest));
        }
        if let Ok(idx) = inner.parse::<i64>() {
            let idx = if idx < 0 { arr.len() as i64 + idx } else { idx };
            return arr
                .get(usize::try_from(idx).ok()?)
                .and_then(|x| eval(x, rest));
        }
        if let Some(filter) = inner.strip_prefix("?(").and_then(|x| x.strip_suffix(')')) {
            let (lhs, rhs) = filter.split_once("==")?;
            let field = lhs.trim().trim_start_matches("@.");
            let want = rhs.trim().trim_matches('"').trim_matches('\'');
            return arr
                .iter()
                .filter(|x| {
                    x.get(field).is_some_and(|f| match f {
                        Value::String(s) => s == want,
                        other => {
                            *other == serde_json::from_str::<Value>(want).unwrap_or(Value::Null)
                        }
                    })
                })
                .find_map(|x| eval(x, rest));
        }
        return None;
    }
    match v {
        Value::Object(m) => eval(m.get(first.as_str())?, rest),
        Value::Array(a) => a.iter().find_map(|x| eval(x, segs)),
        _ => None,
    }
}

fn custom_cell(c: &PrinterColumn, obj: &Value) -> Value {
    let Some(v) = json_path(obj, &c.json_path) else {
        return Value::Null;
    };
    match c.type_.as_str() {
        "date" => v.as_str().map(|t| json!(since(t))).unwrap_or(Value::Null),
        "integer" => v
            .as_i64()
            .map(|n| json!(n))
            .unwrap_or_else(|| json!(v.to_string())),
        "number" => v.as_f64().map(|n| json!(n)).unwrap_or(Value::Null),
        "boolean" => v.as_bool().map(|b| json!(b)).unwrap_or(Value::Null),
        _ => match v {
            Value::String(s) => json!(s),
            Value::Null => Value::Null,
            other => json!(other.to_string()),
        },
    }
}

/// `PartialObjectMetadata` for an object.
pub fn partial_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
    })
}

/// One table row.
pub fn row(rt: &ResourceType, version: &str, obj: &Value, include: IncludeObject) -> Value {
    let mut cells = vec![json!(
        obj.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    )];
    match custom_columns(rt, version) {
        Some(cols) => cells.extend(cols.iter().map(|c| custom_cell(c, obj))),
        None => cells.extend(builtin_cells(rt, obj)),
    }
    let mut r = json!({"cells": cells});
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => r["object"] = partial_metadata(obj),
        IncludeObject::Object => r["object"] = obj.clone(),
    }
    r
}

/// A whole `Table` for some objects.
pub fn table(
    rt: &ResourceType,
    version: &str,
    objects: &[Arc<Value>],
    include: IncludeObject,
    list_meta: Value,
    with_columns: bool,
) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": if with_columns { Value::Array(column_definitions(rt, version)) } else { Value::Null },
        "rows": objects.iter().map(|o| row(rt, version, o, include)).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_last_seen_is_the_last_observation_of_a_series() {
        let ago = |secs: i64| {
            (chrono::Utc::now() - chrono::Duration::seconds(secs))
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        };
        let types = crate::resources::builtin_types();
        for (group, recorded) in [
            // kube-runtime's Recorder: eventTime, then a series on repeats.
            (
                "events.k8s.io",
                json!({"eventTime": ago(3600), "note": "n",
                "regarding": {"kind": "Pod", "name": "p"}}),
            ),
            (
                "",
                json!({"eventTime": ago(3600), "message": "n",
                "involvedObject": {"kind": "Pod", "name": "p"}}),
            ),
        ] {
            let rt = types
                .iter()
                .find(|t| t.group == group && t.resource == "events")
                .unwrap();
            let cells = |o: &Value| row(rt, "v1", o, IncludeObject::None)["cells"].clone();
            assert_eq!(cells(&recorded)[1], "60m", "{group}");
            assert_eq!(cells(&recorded)[4], "pod/p", "{group}");
            assert_eq!(cells(&recorded)[5], "n", "{group}");
            let mut repeated = recorded.clone();
            repeated["series"] = json!({"count": 2, "lastObservedTime": ago(120)});
            assert_eq!(cells(&repeated)[1], "2m", "{group}");
        }
        // Legacy core Events: lastTimestamp, else firstTimestamp.
        let rt = types
            .iter()
            .find(|t| t.group.is_empty() && t.resource == "events")
            .unwrap();
        let legacy = json!({"firstTimestamp": ago(600), "lastTimestamp": ago(60)});
        assert_eq!(
            row(rt, "v1", &legacy, IncludeObject::None)["cells"][1],
            "60s"
        );
        let legacy = json!({"firstTimestamp": ago(600)});
        assert_eq!(
            row(rt, "v1", &legacy, IncludeObject::None)["cells"][1],
            "10m"
        );
    }

    #[test]
    fn json_path_subset() {
        let o = json!({"status": {"conditions": [
            {"type": "Ready", "status": "False"}, {"type": "Established", "status": "True"}]},
            "metadata": {"labels": {"app.kubernetes.io/name": "x"}}, "spec": {"hosts": ["a", "b"]}});
        assert_eq!(
            json_path(&o, ".status.conditions[?(@.type==\"Established\")].status"),
            Some(&json!("True"))
        );
        assert_eq!(json_path(&o, ".spec.hosts[1]"), Some(&json!("b")));
        assert_eq!(
            json_path(&o, ".metadata.labels.app\\.kubernetes\\.io/name"),
            Some(&json!("x"))
        );
        assert_eq!(json_path(&o, ".spec.missing"), None);
    }

    #[test]
    fn human_durations() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(125), "2m5s");
        assert_eq!(human_duration(3600 * 3 + 60), "3h1m");
        assert_eq!(human_duration(3600 * 30), "30h");
        assert_eq!(human_duration(86400 * 3), "3d");
    }
}
