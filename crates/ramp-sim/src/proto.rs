//! Kubernetes protobuf request bodies, as client-go (inside Helm) sends them.
//!
//! A body is the 4 magic bytes `k8s\0` followed by a `runtime.Unknown`
//! message whose `raw` field holds the object's own message. This module
//! decodes the objects such clients send as protobuf into the JSON the server
//! would have received: core `v1` `Secret` and `ConfigMap`, and `DeleteOptions`
//! (under whatever group version the client put it). Anything else is
//! [`ProtoError::Unsupported`] (answer 415).
//!
//! The messages are written by hand with the field numbers of
//! `k8s.io/api/core/v1/generated.proto`,
//! `k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto` and
//! `k8s.io/apimachinery/pkg/runtime/generated.proto`. `managedFields` is not
//! decoded (the server does not keep it).

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Map, Value, json};

/// The content type of Kubernetes protobuf bodies.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The bytes every Kubernetes protobuf body starts with.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// Whether a `Content-Type` header value names Kubernetes protobuf
/// (parameters such as `;stream=watch` are allowed).
pub fn is_protobuf(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(CONTENT_TYPE))
}

/// Why a protobuf body could not be turned into JSON (or JSON into protobuf).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProtoError {
    /// The body does not start with `k8s\0`.
    #[error(
        "the body is not a Kubernetes protobuf message: it does not start with the magic bytes \"k8s\\0\""
    )]
    MissingMagic,
    /// The bytes are not a valid message.
    #[error("malformed protobuf {what}: {source}")]
    Decode {
        /// Which message failed to decode.
        what: &'static str,
        /// The decoder's error.
        source: prost::DecodeError,
    },
    /// The envelope declares a content encoding (e.g. gzip) this server does not read.
    #[error("protobuf content encoding {0:?} is not supported")]
    ContentEncoding(String),
    /// The object's type is not one this server decodes from protobuf.
    #[error("decoding {kind} ({api_version}) from protobuf is not supported; send it as JSON")]
    Unsupported {
        /// The envelope's apiVersion.
        api_version: String,
        /// The envelope's kind.
        kind: String,
    },
    /// A JSON object could not be encoded (only for [`encode`]).
    #[error("cannot encode as protobuf: {0}")]
    Encode(String),
}

impl ProtoError {
    /// The HTTP status the server answers with: 415 for an unsupported type
    /// or encoding, 400 otherwise.
    pub fn code(&self) -> u16 {
        match self {
            ProtoError::Unsupported { .. } | ProtoError::ContentEncoding(_) => 415,
            _ => 400,
        }
    }
}

/// The protobuf messages, with the upstream field numbers.
pub mod wire {
    use std::collections::BTreeMap;

    /// `runtime.TypeMeta`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TypeMeta {
        /// `apiVersion`.
        #[prost(string, optional, tag = "1")]
        pub api_version: Option<String>,
        /// `kind`.
        #[prost(string, optional, tag = "2")]
        pub kind: Option<String>,
    }

    /// `runtime.Unknown`, the envelope after the magic bytes.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Unknown {
        /// The object's type.
        #[prost(message, optional, tag = "1")]
        pub type_meta: Option<TypeMeta>,
        /// The object's own message.
        #[prost(bytes = "vec", optional, tag = "2")]
        pub raw: Option<Vec<u8>>,
        /// Compression of `raw`; empty for none.
        #[prost(string, optional, tag = "3")]
        pub content_encoding: Option<String>,
        /// Content type of `raw`; empty for protobuf.
        #[prost(string, optional, tag = "4")]
        pub content_type: Option<String>,
    }

    /// `meta.v1.Time` (a Timestamp; an empty message is the zero time).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Time {
        /// Seconds since the Unix epoch.
        #[prost(int64, optional, tag = "1")]
        pub seconds: Option<i64>,
        /// Nanoseconds within the second.
        #[prost(int32, optional, tag = "2")]
        pub nanos: Option<i32>,
    }

    /// `meta.v1.OwnerReference`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct OwnerReference {
        /// `kind`.
        #[prost(string, optional, tag = "1")]
        pub kind: Option<String>,
        /// `name`.
        #[prost(string, optional, tag = "3")]
        pub name: Option<String>,
        /// `uid`.
        #[prost(string, optional, tag = "4")]
        pub uid: Option<String>,
        /// `apiVersion`.
        #[prost(string, optional, tag = "5")]
        pub api_version: Option<String>,
        /// `controller`.
        #[prost(bool, optional, tag = "6")]
        pub controller: Option<bool>,
        /// `blockOwnerDeletion`.
        #[prost(bool, optional, tag = "7")]
        pub block_owner_deletion: Option<bool>,
    }

    /// `meta.v1.ObjectMeta` (without `managedFields`, field 17, which is skipped).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ObjectMeta {
        /// `name`.
        #[prost(string, optional, tag = "1")]
        pub name: Option<String>,
        /// `generateName`.
        #[prost(string, optional, tag = "2")]
        pub generate_name: Option<String>,
        /// `namespace`.
        #[prost(string, optional, tag = "3")]
        pub namespace: Option<String>,
        /// `selfLink`.
        #[prost(string, optional, tag = "4")]
        pub self_link: Option<String>,
        /// `uid`.
        #[prost(string, optional, tag = "5")]
        pub uid: Option<String>,
        /// `resourceVersion`.
        #[prost(string, optional, tag = "6")]
        pub resource_version: Option<String>,
        /// `generation`.
        #[prost(int64, optional, tag = "7")]
        pub generation: Option<i64>,
        /// `creationTimestamp`.
        #[prost(message, optional, tag = "8")]
        pub creation_timestamp: Option<Time>,
        /// `deletionTimestamp`.
        #[prost(message, optional, tag = "9")]
        pub deletion_timestamp: Option<Time>,
        /// `deletionGracePeriodSeconds`.
        #[prost(int64, optional, tag = "10")]
        pub deletion_grace_period_seconds: Option<i64>,
        /// `labels`.
        #[prost(btree_map = "string, string", tag = "11")]
        pub labels: BTreeMap<String, String>,
        /// `annotations`.
        #[prost(btree_map = "string, string", tag = "12")]
        pub annotations: BTreeMap<String, String>,
        /// `ownerReferences`.
        #[prost(message, repeated, tag = "13")]
        pub owner_references: Vec<OwnerReference>,
        /// `finalizers`.
        #[prost(string, repeated, tag = "14")]
        pub finalizers: Vec<String>,
    }

    /// `core.v1.Secret`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Secret {
        /// `metadata`.
        #[prost(message, optional, tag = "1")]
        pub metadata: Option<ObjectMeta>,
        /// `data`.
        #[prost(btree_map = "string, bytes", tag = "2")]
        pub data: BTreeMap<String, Vec<u8>>,
        /// `type`.
        #[prost(string, optional, tag = "3")]
        pub r#type: Option<String>,
        /// `stringData`.
        #[prost(btree_map = "string, string", tag = "4")]
        pub string_data: BTreeMap<String, String>,
        /// `immutable`.
        #[prost(bool, optional, tag = "5")]
        pub immutable: Option<bool>,
    }

    /// `core.v1.ConfigMap`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ConfigMap {
        /// `metadata`.
        #[prost(message, optional, tag = "1")]
        pub metadata: Option<ObjectMeta>,
        /// `data`.
        #[prost(btree_map = "string, string", tag = "2")]
        pub data: BTreeMap<String, String>,
        /// `binaryData`.
        #[prost(btree_map = "string, bytes", tag = "3")]
        pub binary_data: BTreeMap<String, Vec<u8>>,
        /// `immutable`.
        #[prost(bool, optional, tag = "4")]
        pub immutable: Option<bool>,
    }

    /// `meta.v1.Preconditions`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Preconditions {
        /// `uid`.
        #[prost(string, optional, tag = "1")]
        pub uid: Option<String>,
        /// `resourceVersion`.
        #[prost(string, optional, tag = "2")]
        pub resource_version: Option<String>,
    }

    /// `meta.v1.DeleteOptions`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct DeleteOptions {
        /// `gracePeriodSeconds`.
        #[prost(int64, optional, tag = "1")]
        pub grace_period_seconds: Option<i64>,
        /// `preconditions`.
        #[prost(message, optional, tag = "2")]
        pub preconditions: Option<Preconditions>,
        /// `orphanDependents`.
        #[prost(bool, optional, tag = "3")]
        pub orphan_dependents: Option<bool>,
        /// `propagationPolicy`.
        #[prost(string, optional, tag = "4")]
        pub propagation_policy: Option<String>,
        /// `dryRun`.
        #[prost(string, repeated, tag = "5")]
        pub dry_run: Vec<String>,
        /// `ignoreStoreReadErrorWithClusterBreakingPotential`.
        #[prost(bool, optional, tag = "6")]
        pub ignore_store_read_error_with_cluster_breaking_potential: Option<bool>,
    }
}

use prost::Message as _;
use wire::{ConfigMap, DeleteOptions, ObjectMeta, OwnerReference, Preconditions, Secret, Time};

/// Go's zero `time.Time` as Unix seconds; it marshals to JSON `null`.
const GO_ZERO_TIME_SECONDS: i64 = -62_135_596_800;

fn b64(bytes: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// Inserts a string unless it is empty (the `omitempty` of the JSON tags).
fn put_str(m: &mut Map<String, Value>, key: &str, v: Option<String>) {
    if let Some(s) = v.filter(|s| !s.is_empty()) {
        m.insert(key.to_string(), Value::String(s));
    }
}

fn string_map(m: BTreeMap<String, String>) -> Value {
    Value::Object(m.into_iter().map(|(k, v)| (k, Value::String(v))).collect())
}

fn bytes_map(m: BTreeMap<String, Vec<u8>>) -> Value {
    Value::Object(m.into_iter().map(|(k, v)| (k, b64(&v))).collect())
}

/// RFC 3339 in UTC with second precision, as `metav1.Time` marshals; `None` for the zero time.
fn time_json(t: Option<Time>) -> Option<Value> {
    let t = t?;
    let seconds = t.seconds?;
    if seconds == GO_ZERO_TIME_SECONDS && t.nanos.unwrap_or(0) == 0 {
        return None;
    }
    let dt = chrono::DateTime::from_timestamp(seconds, 0)?;
    Some(Value::String(dt.format("%Y-%m-%dT%H:%M:%SZ").to_string()))
}

fn owner_json(o: OwnerReference) -> Value {
    let mut m = Map::new();
    m.insert(
        "apiVersion".into(),
        json!(o.api_version.unwrap_or_default()),
    );
    m.insert("kind".into(), json!(o.kind.unwrap_or_default()));
    m.insert("name".into(), json!(o.name.unwrap_or_default()));
    m.insert("uid".into(), json!(o.uid.unwrap_or_default()));
    if let Some(c) = o.controller {
        m.insert("controller".into(), json!(c));
    }
    if let Some(b) = o.block_owner_deletion {
        m.insert("blockOwnerDeletion".into(), json!(b));
    }
    Value::Object(m)
}

fn meta_json(meta: ObjectMeta) -> Value {
    let mut m = Map::new();
    put_str(&mut m, "name", meta.name);
    put_str(&mut m, "generateName", meta.generate_name);
    put_str(&mut m, "namespace", meta.namespace);
    put_str(&mut m, "selfLink", meta.self_link);
    put_str(&mut m, "uid", meta.uid);
    put_str(&mut m, "resourceVersion", meta.resource_version);
    if let Some(g) = meta.generation.filter(|g| *g != 0) {
        m.insert("generation".into(), json!(g));
    }
    if let Some(t) = time_json(meta.creation_timestamp) {
        m.insert("creationTimestamp".into(), t);
    }
    if let Some(t) = time_json(meta.deletion_timestamp) {
        m.insert("deletionTimestamp".into(), t);
    }
    if let Some(g) = meta.deletion_grace_period_seconds {
        m.insert("deletionGracePeriodSeconds".into(), json!(g));
    }
    if !meta.labels.is_empty() {
        m.insert("labels".into(), string_map(meta.labels));
    }
    if !meta.annotations.is_empty() {
        m.insert("annotations".into(), string_map(meta.annotations));
    }
    if !meta.owner_references.is_empty() {
        let refs = meta.owner_references.into_iter().map(owner_json).collect();
        m.insert("ownerReferences".into(), Value::Array(refs));
    }
    if !meta.finalizers.is_empty() {
        m.insert("finalizers".into(), json!(meta.finalizers));
    }
    Value::Object(m)
}

fn object_head(api_version: &str, kind: &str, meta: Option<ObjectMeta>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("apiVersion".into(), json!(api_version));
    m.insert("kind".into(), json!(kind));
    m.insert("metadata".into(), meta_json(meta.unwrap_or_default()));
    m
}

fn decode_raw<M: prost::Message + Default>(
    raw: &[u8],
    what: &'static str,
) -> Result<M, ProtoError> {
    M::decode(raw).map_err(|source| ProtoError::Decode { what, source })
}

/// Decodes a protobuf request body (`k8s\0` + `runtime.Unknown`) into the
/// JSON object the server would have received, with `apiVersion` and `kind`
/// set: a `v1` `Secret` or `ConfigMap`, or a `DeleteOptions`.
pub fn decode(body: &[u8]) -> Result<Value, ProtoError> {
    let rest = body
        .strip_prefix(MAGIC.as_slice())
        .ok_or(ProtoError::MissingMagic)?;
    let envelope: wire::Unknown = decode_raw(rest, "runtime.Unknown envelope")?;
    if let Some(enc) = envelope
        .content_encoding
        .as_deref()
        .filter(|e| !e.is_empty())
    {
        return Err(ProtoError::ContentEncoding(enc.to_string()));
    }
    let type_meta = envelope.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    let raw = envelope.raw.unwrap_or_default();
    match (api_version.as_str(), kind.as_str()) {
        ("v1", "Secret") => {
            let s: Secret = decode_raw(&raw, "v1 Secret")?;
            let mut m = object_head("v1", "Secret", s.metadata);
            if !s.data.is_empty() {
                m.insert("data".into(), bytes_map(s.data));
            }
            if !s.string_data.is_empty() {
                m.insert("stringData".into(), string_map(s.string_data));
            }
            put_str(&mut m, "type", s.r#type);
            if let Some(i) = s.immutable {
                m.insert("immutable".into(), json!(i));
            }
            Ok(Value::Object(m))
        }
        ("v1", "ConfigMap") => {
            let c: ConfigMap = decode_raw(&raw, "v1 ConfigMap")?;
            let mut m = object_head("v1", "ConfigMap", c.metadata);
            if !c.data.is_empty() {
                m.insert("data".into(), string_map(c.data));
            }
            if !c.binary_data.is_empty() {
                m.insert("binaryData".into(), bytes_map(c.binary_data));
            }
            if let Some(i) = c.immutable {
                m.insert("immutable".into(), json!(i));
            }
            Ok(Value::Object(m))
        }
        (_, "DeleteOptions") => {
            let d: DeleteOptions = decode_raw(&raw, "DeleteOptions")?;
            let mut m = Map::new();
            m.insert("apiVersion".into(), json!(api_version));
            m.insert("kind".into(), json!("DeleteOptions"));
            if let Some(g) = d.grace_period_seconds {
                m.insert("gracePeriodSeconds".into(), json!(g));
            }
            if let Some(p) = d.preconditions {
                let mut pm = Map::new();
                if let Some(uid) = p.uid {
                    pm.insert("uid".into(), json!(uid));
                }
                if let Some(rv) = p.resource_version {
                    pm.insert("resourceVersion".into(), json!(rv));
                }
                m.insert("preconditions".into(), Value::Object(pm));
            }
            if let Some(o) = d.orphan_dependents {
                m.insert("orphanDependents".into(), json!(o));
            }
            if let Some(p) = d.propagation_policy {
                m.insert("propagationPolicy".into(), json!(p));
            }
            if !d.dry_run.is_empty() {
                m.insert("dryRun".into(), json!(d.dry_run));
            }
            if let Some(i) = d.ignore_store_read_error_with_cluster_breaking_potential {
                m.insert(
                    "ignoreStoreReadErrorWithClusterBreakingPotential".into(),
                    json!(i),
                );
            }
            Ok(Value::Object(m))
        }
        _ => Err(ProtoError::Unsupported { api_version, kind }),
    }
}

// ---------------------------------------------------------------------------
// Encoding (the reverse, for tests of servers and clients)

fn enc_err(what: &str) -> ProtoError {
    ProtoError::Encode(what.to_string())
}

fn get_str(v: &Value, key: &str) -> Result<Option<String>, ProtoError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(enc_err(&format!("{key} must be a string"))),
    }
}

fn get_string_map(v: &Value, key: &str) -> Result<BTreeMap<String, String>, ProtoError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(enc_err(&format!("{key}.{k} must be a string"))),
            })
            .collect(),
        Some(_) => Err(enc_err(&format!("{key} must be an object"))),
    }
}

fn get_bytes_map(v: &Value, key: &str) -> Result<BTreeMap<String, Vec<u8>>, ProtoError> {
    get_string_map(v, key)?
        .into_iter()
        .map(|(k, s)| {
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map(|b| (k.clone(), b))
                .map_err(|_| enc_err(&format!("{key}.{k} must be base64")))
        })
        .collect()
}

fn time_wire(v: &Value, key: &str) -> Result<Option<Time>, ProtoError> {
    match get_str(v, key)? {
        None => Ok(None),
        Some(s) => {
            let t = chrono::DateTime::parse_from_rfc3339(&s)
                .map_err(|_| enc_err(&format!("{key} must be an RFC 3339 time")))?;
            Ok(Some(Time {
                seconds: Some(t.timestamp()),
                nanos: Some(0),
            }))
        }
    }
}

fn meta_wire(v: &Value) -> Result<ObjectMeta, ProtoError> {
    let owner_references = match v.get("ownerReferences") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(refs)) => refs
            .iter()
            .map(|r| {
                Ok(OwnerReference {
                    api_version: get_str(r, "apiVersion")?,
                    kind: get_str(r, "kind")?,
                    name: get_str(r, "name")?,
                    uid: get_str(r, "uid")?,
                    controller: r.get("controller").and_then(Value::as_bool),
                    block_owner_deletion: r.get("blockOwnerDeletion").and_then(Value::as_bool),
                })
            })
            .collect::<Result<_, ProtoError>>()?,
        Some(_) => return Err(enc_err("metadata.ownerReferences must be a list")),
    };
    let finalizers = match v.get("finalizers") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(f)) => f
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| enc_err("metadata.finalizers must be strings"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(enc_err("metadata.finalizers must be a list")),
    };
    Ok(ObjectMeta {
        name: get_str(v, "name")?,
        generate_name: get_str(v, "generateName")?,
        namespace: get_str(v, "namespace")?,
        self_link: get_str(v, "selfLink")?,
        uid: get_str(v, "uid")?,
        resource_version: get_str(v, "resourceVersion")?,
        generation: v.get("generation").and_then(Value::as_i64),
        creation_timestamp: time_wire(v, "creationTimestamp")?,
        deletion_timestamp: time_wire(v, "deletionTimestamp")?,
        deletion_grace_period_seconds: v.get("deletionGracePeriodSeconds").and_then(Value::as_i64),
        labels: get_string_map(v, "labels")?,
        annotations: get_string_map(v, "annotations")?,
        owner_references,
        finalizers,
    })
}

/// Encodes a JSON `v1` `Secret`, `v1` `ConfigMap` or `DeleteOptions` as a
/// Kubernetes protobuf body (`k8s\0` + `runtime.Unknown`), the way client-go
/// does. The inverse of [`decode`] for these kinds.
pub fn encode(obj: &Value) -> Result<Vec<u8>, ProtoError> {
    let api_version = get_str(obj, "apiVersion")?.unwrap_or_default();
    let kind = get_str(obj, "kind")?.unwrap_or_default();
    let meta = || meta_wire(obj.get("metadata").unwrap_or(&Value::Null));
    let raw = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Secret") => Secret {
            metadata: Some(meta()?),
            data: get_bytes_map(obj, "data")?,
            r#type: get_str(obj, "type")?,
            string_data: get_string_map(obj, "stringData")?,
            immutable: obj.get("immutable").and_then(Value::as_bool),
        }
        .encode_to_vec(),
        ("v1", "ConfigMap") => ConfigMap {
            metadata: Some(meta()?),
            data: get_string_map(obj, "data")?,
            binary_data: get_bytes_map(obj, "binaryData")?,
            immutable: obj.get("immutable").and_then(Value::as_bool),
        }
        .encode_to_vec(),
        (_, "DeleteOptions") => {
            let preconditions = match obj.get("preconditions") {
                None | Some(Value::Null) => None,
                Some(p) => Some(Preconditions {
                    uid: get_str(p, "uid")?,
                    resource_version: get_str(p, "resourceVersion")?,
                }),
            };
            let dry_run = match obj.get("dryRun") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(d)) => d
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect(),
                Some(_) => return Err(enc_err("dryRun must be a list")),
            };
            DeleteOptions {
                grace_period_seconds: obj.get("gracePeriodSeconds").and_then(Value::as_i64),
                preconditions,
                orphan_dependents: obj.get("orphanDependents").and_then(Value::as_bool),
                propagation_policy: get_str(obj, "propagationPolicy")?,
                dry_run,
                ignore_store_read_error_with_cluster_breaking_potential: obj
                    .get("ignoreStoreReadErrorWithClusterBreakingPotential")
                    .and_then(Value::as_bool),
            }
            .encode_to_vec()
        }
        _ => {
            return Err(ProtoError::Unsupported { api_version, kind });
        }
    };
    let envelope = wire::Unknown {
        type_meta: Some(wire::TypeMeta {
            api_version: Some(api_version),
            kind: Some(kind),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut out = MAGIC.to_vec();
    envelope
        .encode(&mut out)
        .map_err(|e| ProtoError::Encode(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A length-delimited field (wire type 2) with a one-byte tag and length.
    fn ld(field: u8, bytes: &[u8]) -> Vec<u8> {
        assert!(bytes.len() < 128 && field < 16);
        let mut out = vec![(field << 3) | 2, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }

    /// A varint field (wire type 0) with a small value.
    fn varint(field: u8, value: u8) -> Vec<u8> {
        assert!(value < 128 && field < 16);
        vec![field << 3, value]
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let type_meta = [ld(1, api_version.as_bytes()), ld(2, kind.as_bytes())].concat();
        let mut body = b"k8s\0".to_vec();
        body.extend(ld(1, &type_meta));
        body.extend(ld(2, raw));
        body.extend(ld(3, b""));
        body.extend(ld(4, b""));
        body
    }

    #[test]
    fn decodes_a_hand_built_helm_release_secret() {
        // metadata: name, namespace, creationTimestamp (empty = zero), labels{owner: helm}
        let label = [ld(1, b"owner"), ld(2, b"helm")].concat();
        let meta = [
            ld(1, b"sh.helm.release.v1.demo.v1"),
            ld(2, b""),
            ld(3, b"default"),
            ld(8, b""),
            ld(11, &label),
        ]
        .concat();
        let data_entry = [ld(1, b"release"), ld(2, b"H4sI\x00\xff")].concat();
        let secret = [
            ld(1, &meta),
            ld(2, &data_entry),
            ld(3, b"helm.sh/release.v1"),
            varint(5, 1),
        ]
        .concat();
        let body = envelope("v1", "Secret", &secret);
        assert_eq!(
            decode(&body).unwrap(),
            json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": "sh.helm.release.v1.demo.v1",
                    "namespace": "default",
                    "labels": {"owner": "helm"}
                },
                "data": {"release": "SDRzSQD/"},
                "type": "helm.sh/release.v1",
                "immutable": true
            })
        );
    }

    #[test]
    fn decodes_hand_built_delete_options() {
        let preconditions = [ld(1, b"abc-123"), ld(2, b"42")].concat();
        let opts = [
            varint(1, 0),
            ld(2, &preconditions),
            ld(4, b"Foreground"),
            ld(5, b"All"),
        ]
        .concat();
        let body = envelope("v1", "DeleteOptions", &opts);
        assert_eq!(
            decode(&body).unwrap(),
            json!({
                "apiVersion": "v1",
                "kind": "DeleteOptions",
                "gracePeriodSeconds": 0,
                "preconditions": {"uid": "abc-123", "resourceVersion": "42"},
                "propagationPolicy": "Foreground",
                "dryRun": ["All"]
            })
        );
        // client-go registers DeleteOptions in every group version.
        let body = envelope("apps/v1", "DeleteOptions", &varint(3, 1));
        assert_eq!(
            decode(&body).unwrap(),
            json!({"apiVersion": "apps/v1", "kind": "DeleteOptions", "orphanDependents": true})
        );
    }

    #[test]
    fn secret_round_trips_through_prost() {
        let secret = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": "s",
                "generateName": "s-",
                "namespace": "ns",
                "uid": "u-1",
                "resourceVersion": "17",
                "generation": 3,
                "creationTimestamp": "2024-05-01T10:20:30Z",
                "deletionTimestamp": "2024-05-02T00:00:00Z",
                "deletionGracePeriodSeconds": 30,
                "labels": {"a": "1"},
                "annotations": {"b": "2"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "d",
                                     "uid": "u-0", "controller": true, "blockOwnerDeletion": false}],
                "finalizers": ["x/y"]
            },
            "data": {"k": "dmFsdWU=", "empty": ""},
            "stringData": {"plain": "text"},
            "type": "Opaque"
        });
        let body = encode(&secret).unwrap();
        assert!(body.starts_with(b"k8s\0"));
        assert_eq!(decode(&body).unwrap(), secret);
    }

    #[test]
    fn config_map_and_delete_options_round_trip() {
        let cm = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "default"},
            "data": {"a": "b"},
            "binaryData": {"bin": "AAEC"},
            "immutable": false
        });
        assert_eq!(decode(&encode(&cm).unwrap()).unwrap(), cm);
        let opts = json!({
            "apiVersion": "meta.k8s.io/v1",
            "kind": "DeleteOptions",
            "propagationPolicy": "Background",
            "gracePeriodSeconds": 30,
            "preconditions": {"resourceVersion": "9"}
        });
        assert_eq!(decode(&encode(&opts).unwrap()).unwrap(), opts);
    }

    #[test]
    fn go_zero_time_is_omitted() {
        let meta = ObjectMeta {
            name: Some("n".into()),
            creation_timestamp: Some(Time {
                seconds: Some(GO_ZERO_TIME_SECONDS),
                nanos: Some(0),
            }),
            ..Default::default()
        };
        let raw = Secret {
            metadata: Some(meta),
            ..Default::default()
        }
        .encode_to_vec();
        let decoded = decode(&envelope("v1", "Secret", &raw)).unwrap();
        assert_eq!(decoded["metadata"], json!({"name": "n"}));
    }

    #[test]
    fn errors() {
        assert_eq!(
            decode(b"{\"kind\":\"Secret\"}"),
            Err(ProtoError::MissingMagic)
        );
        let err = decode(b"k8s\0\x0a\x05ab").unwrap_err();
        assert!(matches!(err, ProtoError::Decode { .. }), "{err}");
        assert_eq!(err.code(), 400);
        let err = decode(&envelope("apps/v1", "Deployment", b"")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "decoding Deployment (apps/v1) from protobuf is not supported; send it as JSON"
        );
        assert_eq!(err.code(), 415);
        let mut gz = envelope("v1", "Secret", b"");
        gz.truncate(gz.len() - 4);
        gz.extend(ld(3, b"gzip"));
        assert_eq!(decode(&gz), Err(ProtoError::ContentEncoding("gzip".into())));
        let err = decode(&envelope("v1", "Secret", &ld(1, b"\xff\xff"))).unwrap_err();
        assert!(
            err.to_string().starts_with("malformed protobuf v1 Secret"),
            "{err}"
        );
        assert!(encode(&json!({"apiVersion": "v1", "kind": "Pod"})).is_err());
        assert!(
            encode(&json!({"apiVersion": "v1", "kind": "Secret", "data": {"k": "%%"}})).is_err()
        );
    }

    #[test]
    fn recognises_the_content_type() {
        assert!(is_protobuf("application/vnd.kubernetes.protobuf"));
        assert!(is_protobuf(
            "application/vnd.kubernetes.protobuf; charset=utf-8"
        ));
        assert!(is_protobuf(
            "Application/Vnd.Kubernetes.Protobuf;stream=watch"
        ));
        assert!(!is_protobuf("application/json"));
        assert!(!is_protobuf("application/vnd.kubernetes.protobuf+json"));
    }
}
