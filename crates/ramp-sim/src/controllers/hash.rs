//! The pod-template hash: the `pod-template-hash` label value and the suffix of a
//! Deployment's ReplicaSet names.
//!
//! Kubernetes hashes the pod template (FNV-32a over a deep dump of the Go
//! struct) and renders it with a vowel-free alphabet. The sim keeps the
//! properties that matter — same template, same hash; a changed template, a
//! different hash; short, lowercase, DNS-safe — with a definition any other
//! crate (the ramp planner) can reproduce exactly:
//!
//! 1. take the pod template (`spec.template` of a Deployment or ReplicaSet) as
//!    JSON, without a `metadata.labels["pod-template-hash"]` entry (so hashing
//!    a ReplicaSet's template gives the Deployment's hash);
//! 2. serialise it canonically: object keys sorted by byte order, no
//!    whitespace, strings and numbers as `serde_json` writes them (UTF-8, only
//!    `"`, `\` and control characters escaped) — the same bytes as Python's
//!    `json.dumps(t, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`
//!    for integer-only templates;
//! 3. hash the bytes with 64-bit FNV-1a;
//! 4. write the hash in base 27 over the alphabet `bcdfghjklmnpqrstvwxz2456789`,
//!    least significant digit first, as exactly 10 characters.
//!
//! For example `{}` hashes to `l7t7jbdt44`, and
//! `{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"image":"nginx:1.25","name":"app"}]}}`
//! to `q6626797mc`.

use serde_json::Value;

/// Label Kubernetes puts on ReplicaSets and their pods.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// Kubernetes' alphabet for generated names: no vowels (no words), no 0/1/3
/// (confusable with o/l/e).
const ALPHABET: &[u8; 27] = b"bcdfghjklmnpqrstvwxz2456789";
const HASH_LEN: usize = 10;

/// The `pod-template-hash` of a pod template (see the module docs for the
/// exact definition).
pub fn pod_template_hash(template: &Value) -> String {
    let mut canonical = String::new();
    write_canonical(template, &mut canonical, true);
    let mut h = fnv1a64(canonical.as_bytes());
    let mut out = String::with_capacity(HASH_LEN);
    for _ in 0..HASH_LEN {
        out.push(ALPHABET[(h % 27) as usize] as char);
        h /= 27;
    }
    out
}

/// The canonical JSON text of a value: keys sorted, no whitespace. At the
/// top level (`root`), a `pod-template-hash` label is left out.
fn write_canonical(v: &Value, out: &mut String, root: bool) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            let mut first = true;
            for k in keys {
                let Some(child) = m.get(k) else { continue };
                if root && k == "metadata" {
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    push_string(k, out);
                    out.push(':');
                    write_metadata(child, out);
                    continue;
                }
                if !first {
                    out.push(',');
                }
                first = false;
                push_string(k, out);
                out.push(':');
                write_canonical(child, out, false);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out, false);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Template metadata, with `labels` stripped of `pod-template-hash`.
fn write_metadata(meta: &Value, out: &mut String) {
    let Some(m) = meta.as_object() else {
        write_canonical(meta, out, false);
        return;
    };
    let mut copy = m.clone();
    if let Some(Value::Object(labels)) = copy.get_mut("labels") {
        labels.remove(POD_TEMPLATE_HASH_LABEL);
    }
    write_canonical(&Value::Object(copy), out, false);
}

fn push_string(s: &str, out: &mut String) {
    out.push_str(&Value::String(s.to_owned()).to_string());
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(image: &str) -> Value {
        json!({
            "metadata": {"labels": {"app": "web", "version": "v1"}},
            "spec": {"containers": [{"name": "web", "image": image, "ports": [{"containerPort": 80}]}]}
        })
    }

    #[test]
    fn same_template_same_hash_regardless_of_key_order() {
        let a = template("nginx:1.25");
        let b: Value = serde_json::from_str(
            r#"{"spec": {"containers": [{"ports": [{"containerPort": 80}], "image": "nginx:1.25", "name": "web"}]},
                "metadata": {"labels": {"version": "v1", "app": "web"}}}"#,
        )
        .unwrap();
        assert_eq!(pod_template_hash(&a), pod_template_hash(&b));
    }

    #[test]
    fn a_changed_template_changes_the_hash() {
        assert_ne!(
            pod_template_hash(&template("nginx:1.25")),
            pod_template_hash(&template("nginx:1.26"))
        );
        let mut t = template("nginx:1.25");
        t["metadata"]["annotations"] = json!({"a": "b"});
        assert_ne!(
            pod_template_hash(&t),
            pod_template_hash(&template("nginx:1.25"))
        );
    }

    #[test]
    fn the_hash_label_itself_is_ignored() {
        let mut t = template("nginx:1.25");
        let h = pod_template_hash(&t);
        t["metadata"]["labels"]["pod-template-hash"] = json!(h.clone());
        assert_eq!(pod_template_hash(&t), h);
    }

    #[test]
    fn the_hash_is_short_lowercase_and_dns_safe() {
        let h = pod_template_hash(&template("nginx:1.25"));
        assert_eq!(h.len(), 10);
        assert!(h.bytes().all(|b| ALPHABET.contains(&b)), "{h}");
    }

    #[test]
    fn the_definition_is_pinned() {
        // Other crates reproduce this function; these values must never change.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        let mut s = String::new();
        write_canonical(
            &json!({"b": 1, "a": [true, null, "x"], "metadata": {"labels": {"pod-template-hash": "z", "k": "v"}}}),
            &mut s,
            true,
        );
        assert_eq!(
            s,
            r#"{"a":[true,null,"x"],"b":1,"metadata":{"labels":{"k":"v"}}}"#
        );
        // Values checked against an independent implementation.
        assert_eq!(pod_template_hash(&json!({})), "l7t7jbdt44");
        let t = json!({"metadata": {"labels": {"app": "web"}},
                       "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]}});
        assert_eq!(pod_template_hash(&t), "q6626797mc");
    }
}
