//! Deterministic pod-template hashing.
//!
//! Kubernetes labels every ReplicaSet (and its pods) with `pod-template-hash`,
//! a short hash of the pod template. ramp needs the same kind of identity for
//! a revision, computed without a cluster: [`pod_template_hash`] hashes the
//! canonical JSON of a template (object keys sorted, absent fields omitted)
//! with 64-bit FNV-1a and renders it as 10 characters from the alphabet
//! Kubernetes uses for generated names (no vowels, no look-alike digits).
//!
//! ramp's embedded cluster labels ReplicaSets with this same function, so
//! there `pod-template-hash` and ramp's revision are equal. On a real cluster
//! the label is Kubernetes' own hash; the planner never assumes the two are
//! equal: it finds ReplicaSets by comparing [`template_revision`]s and reads
//! the label from the ReplicaSet it found.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use ramp_api::names::POD_TEMPLATE_HASH_LABEL;
use serde_json::Value;

/// Characters of a rendered hash (Kubernetes' `SafeEncodeString` alphabet).
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
/// Length of a rendered hash.
pub const HASH_LEN: usize = 10;

/// The hash of a pod template: 10 lowercase alphanumeric characters, the same
/// for equal templates on every machine and every run.
pub fn pod_template_hash(template: &PodTemplateSpec) -> String {
    let value = serde_json::to_value(template).unwrap_or(Value::Null);
    let mut canonical = String::new();
    write_canonical(&value, &mut canonical);
    render(fnv1a64(canonical.as_bytes()))
}

/// The revision a template stands for: [`pod_template_hash`] of the template
/// with any `pod-template-hash` label removed. A ReplicaSet's template and the
/// Deployment template it was made from have the same revision.
pub fn template_revision(template: &PodTemplateSpec) -> String {
    let mut t = template.clone();
    if let Some(meta) = t.metadata.as_mut()
        && let Some(labels) = meta.labels.as_mut()
    {
        labels.remove(POD_TEMPLATE_HASH_LABEL);
        if labels.is_empty() {
            meta.labels = None;
        }
    }
    pod_template_hash(&t)
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn render(mut h: u64) -> String {
    let base = ALPHABET.len() as u64;
    let mut out = String::with_capacity(HASH_LEN);
    for _ in 0..HASH_LEN {
        out.push(char::from(ALPHABET[(h % base) as usize]));
        h /= base;
    }
    out
}

/// JSON with object keys sorted, independent of serde_json's map ordering.
pub(crate) fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                if let Some(child) = map.get(*k) {
                    write_canonical(child, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Canonical JSON text of a value (sorted keys).
pub(crate) fn canonical_string(v: &Value) -> String {
    let mut s = String::new();
    write_canonical(v, &mut s);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn template(image: &str, extra_label: Option<(&str, &str)>) -> PodTemplateSpec {
        let mut labels = BTreeMap::from([("app".to_string(), "nginx".to_string())]);
        if let Some((k, v)) = extra_label {
            labels.insert(k.into(), v.into());
        }
        serde_json::from_value(serde_json::json!({
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "main", "image": image}]}
        }))
        .unwrap()
    }

    #[test]
    fn equal_templates_hash_equal_and_different_ones_differ() {
        let a = pod_template_hash(&template("nginx:1.25", None));
        let b = pod_template_hash(&template("nginx:1.25", None));
        let c = pod_template_hash(&template("nginx:1.26", None));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), HASH_LEN);
        assert!(a.bytes().all(|ch| ALPHABET.contains(&ch)), "{a}");
    }

    #[test]
    fn revision_ignores_the_pod_template_hash_label() {
        let plain = template("nginx:1.25", None);
        let labelled = template("nginx:1.25", Some((POD_TEMPLATE_HASH_LABEL, "abc")));
        assert_eq!(template_revision(&plain), template_revision(&labelled));
        assert_eq!(template_revision(&plain), pod_template_hash(&plain));
        assert_ne!(pod_template_hash(&plain), pod_template_hash(&labelled));
    }

    #[test]
    fn hash_is_pinned_so_the_embedded_cluster_agrees_across_versions() {
        // If this changes, every recorded revision in running clusters changes too.
        let empty = PodTemplateSpec::default();
        assert_eq!(
            canonical_string(&serde_json::to_value(&empty).unwrap()),
            "{}"
        );
        assert_eq!(pod_template_hash(&empty), render(fnv1a64(b"{}")));
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let v = serde_json::json!({"b": 1, "a": {"d": [ {"z": 1, "y": 2} ], "c": null}});
        assert_eq!(
            canonical_string(&v),
            r#"{"a":{"c":null,"d":[{"y":2,"z":1}]},"b":1}"#
        );
    }
}
