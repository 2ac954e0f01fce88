//! Core (`v1`) kinds: Namespace, ConfigMap, Secret, Service, Pod, ResourceQuota.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use super::pod::{default_pod_spec, validate_pod_spec};
use super::{Strategy, Write, default_field, obj_mut, required};
use crate::errors::{ApiError, ApiResult, Cause};

/// Labels itself `kubernetes.io/metadata.name` and starts `Active`.
pub(super) struct Namespace;

impl Strategy for Namespace {
    fn prepare(&self, w: &Write<'_>, obj: &mut Value) -> ApiResult<()> {
        if let Some(m) = obj_mut(obj, "metadata") {
            let labels = m
                .entry("labels")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(l) = labels.as_object_mut() {
                l.insert(
                    "kubernetes.io/metadata.name".into(),
                    Value::String(w.name.to_string()),
                );
            }
        }
        if let Some(s) = obj_mut(obj, "status") {
            default_field(s, "phase", Value::String("Active".into()));
        }
        Ok(())
    }
}

/// `data` and `binaryData` hold strings.
pub(super) struct ConfigMap;

impl Strategy for ConfigMap {
    fn prepare(&self, w: &Write<'_>, obj: &mut Value) -> ApiResult<()> {
        for field in ["data", "binaryData"] {
            if let Some(Value::Object(m)) = obj.get(field) {
                for (k, v) in m {
                    if !v.is_string() {
                        return Err(w.type_error(&format!("{field}.{k}"), "string", v));
                    }
                }
            }
        }
        Ok(())
    }
}

/// `stringData` folded into `data` (base64), `data` must be base64, `type` defaults to `Opaque`.
pub(super) struct Secret;

impl Strategy for Secret {
    fn prepare(&self, w: &Write<'_>, obj: &mut Value) -> ApiResult<()> {
        if let Some(Value::Object(sd)) = obj.get("stringData").cloned() {
            if let Some(data) = obj_mut(obj, "data") {
                for (k, v) in sd {
                    let Some(s) = v.as_str() else {
                        return Err(w.type_error(&format!("stringData.{k}"), "string", &v));
                    };
                    data.insert(k, Value::String(STANDARD.encode(s)));
                }
            }
            if let Some(o) = obj.as_object_mut() {
                o.remove("stringData");
            }
        }
        if let Some(Value::Object(m)) = obj.get("data") {
            for (k, v) in m {
                let Some(s) = v.as_str() else {
                    return Err(w.type_error(&format!("data.{k}"), "[]byte", v));
                };
                if STANDARD.decode(s).is_err() {
                    return Err(ApiError::bad_request(format!(
                        "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data in data.{k}"
                    )));
                }
            }
        }
        if let Some(o) = obj.as_object_mut() {
            default_field(o, "type", Value::String("Opaque".into()));
        }
        Ok(())
    }
}

/// A cluster IP (kept across updates), node ports for `NodePort`/`LoadBalancer` (kept too),
/// port defaults; every port between 1 and 65535.
pub(super) struct Service;

impl Strategy for Service {
    fn prepare(&self, w: &Write<'_>, obj: &mut Value) -> ApiResult<()> {
        let old_ip = w.old.and_then(|o| o.pointer("/spec/clusterIP")).cloned();
        if let Some(spec) = obj_mut(obj, "spec") {
            default_field(spec, "type", Value::String("ClusterIP".into()));
            default_field(spec, "sessionAffinity", Value::String("None".into()));
            let ty = spec
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("ClusterIP")
                .to_string();
            if ty != "ExternalName" {
                match (&old_ip, spec.get("clusterIP").and_then(Value::as_str)) {
                    (Some(ip), None | Some("")) => {
                        spec.insert("clusterIP".into(), ip.clone());
                    }
                    (None, None | Some("")) => {
                        let ip = format!(
                            "10.96.{}.{}",
                            rand::random_range(0..=255u8),
                            rand::random_range(1..=254u8)
                        );
                        spec.insert("clusterIP".into(), Value::String(ip));
                    }
                    _ => {}
                }
                if let Some(ip) = spec.get("clusterIP").cloned() {
                    spec.insert("clusterIPs".into(), Value::Array(vec![ip]));
                }
                default_field(spec, "ipFamilies", json!(["IPv4"]));
                default_field(spec, "ipFamilyPolicy", Value::String("SingleStack".into()));
                default_field(
                    spec,
                    "internalTrafficPolicy",
                    Value::String("Cluster".into()),
                );
            }
            let node_ports = matches!(ty.as_str(), "NodePort" | "LoadBalancer");
            if node_ports {
                default_field(
                    spec,
                    "externalTrafficPolicy",
                    Value::String("Cluster".into()),
                );
            }
            let old_ports = w
                .old
                .and_then(|o| o.pointer("/spec/ports"))
                .and_then(Value::as_array);
            if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                for pm in ports.iter_mut().filter_map(Value::as_object_mut) {
                    default_field(pm, "protocol", Value::String("TCP".into()));
                    // NodePort and LoadBalancer Services get a node port from
                    // 30000-32767 (kept across updates, as kube-apiserver does).
                    if node_ports
                        && pm
                            .get("nodePort")
                            .and_then(Value::as_i64)
                            .is_none_or(|n| n == 0)
                    {
                        let kept = old_ports
                            .and_then(|ps| {
                                ps.iter().find(|o| {
                                    o.get("port") == pm.get("port")
                                        && o.get("name") == pm.get("name")
                                })
                            })
                            .and_then(|o| o.get("nodePort"))
                            .filter(|n| n.as_i64().is_some_and(|n| n > 0))
                            .cloned();
                        let port =
                            kept.unwrap_or_else(|| json!(rand::random_range(30000..=32767u16)));
                        pm.insert("nodePort".into(), port);
                    }
                    if let Some(port) = valid_port(pm) {
                        default_field(pm, "targetPort", json!(port));
                    }
                }
            }
        }
        if let Some(s) = obj_mut(obj, "status") {
            default_field(s, "loadBalancer", json!({}));
        }
        Ok(())
    }

    fn validate(&self, _w: &Write<'_>, obj: &Value, causes: &mut Vec<Cause>) {
        let Some(ports) = obj.pointer("/spec/ports").and_then(Value::as_array) else {
            return;
        };
        for (i, p) in ports.iter().enumerate() {
            let Some(pm) = p.as_object() else {
                continue;
            };
            if valid_port(pm).is_none() {
                causes.push(Cause::new(
                    "FieldValueInvalid",
                    format!("spec.ports[{i}].port"),
                    format!(
                        "Invalid value: {}: must be between 1 and 65535, inclusive",
                        pm.get("port").cloned().unwrap_or(Value::Null)
                    ),
                ));
            }
        }
    }
}

/// `port` of a Service port when it is between 1 and 65535.
fn valid_port(port: &Map<String, Value>) -> Option<i64> {
    port.get("port")
        .and_then(Value::as_i64)
        .filter(|p| (1..=65535).contains(p))
}

/// Pod spec defaults and checks; a new Pod starts `Pending`.
pub(super) struct Pod;

impl Strategy for Pod {
    fn prepare(&self, w: &Write<'_>, obj: &mut Value) -> ApiResult<()> {
        if let Some(spec) = obj.get_mut("spec") {
            default_pod_spec(spec);
        }
        if w.old.is_none()
            && let Some(s) = obj_mut(obj, "status")
        {
            default_field(s, "phase", Value::String("Pending".into()));
        }
        Ok(())
    }

    fn validate(&self, _w: &Write<'_>, obj: &Value, causes: &mut Vec<Cause>) {
        match obj.get("spec") {
            Some(spec) => validate_pod_spec(spec, "spec", causes),
            None => causes.push(required("spec.containers")),
        }
    }
}

/// Every `spec.hard` entry a quantity.
pub(super) struct ResourceQuota;

impl Strategy for ResourceQuota {
    fn validate(&self, _w: &Write<'_>, obj: &Value, causes: &mut Vec<Cause>) {
        if let Some(Value::Object(hard)) = obj.pointer("/spec/hard") {
            for (k, v) in hard {
                let ok = match v {
                    Value::String(q) => is_quantity(q),
                    Value::Number(_) => true,
                    _ => false,
                };
                if !ok {
                    causes.push(Cause::new(
                        "FieldValueInvalid",
                        format!("spec.hard[{k}]"),
                        format!("Invalid value: {v}: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"),
                    ));
                }
            }
        }
    }
}

/// A Kubernetes quantity (`100m`, `1Gi`, `2`, `1e3`).
fn is_quantity(q: &str) -> bool {
    static RE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|[numkKMGTPE]|[KMGTPE]i)?$",
        )
        .unwrap_or_else(|_| unreachable!("a valid regex"))
    });
    RE.is_match(q)
}
