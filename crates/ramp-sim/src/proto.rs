//! Kubernetes protobuf request bodies, as client-go (kubectl, Helm) sends them.
//!
//! A body is the 4 magic bytes `k8s\0` followed by a `runtime.Unknown`
//! message whose `raw` field holds the object's own message. The messages are
//! the `k8s-pb` crate's (prost types generated from Kubernetes' own
//! `generated.proto` files); [`generated`] turns each of them into the JSON
//! the server would have received and back. It is written by
//! `codegen/proto_json.py` from the k8s-pb sources (field numbers) and the
//! k8s-openapi sources (JSON names), so every built-in type the sim serves —
//! and the other types of their API groups — is covered by one code path,
//! not one decoder per kind. `DeleteOptions` is taken under any group version
//! (client-go registers it in each). Anything else is
//! [`ProtoError::Unsupported`] (answer 415).

use prost::Message as _;
use serde_json::Value;

mod generated;

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
        what: String,
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

use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime;

/// The (apiVersion, kind) pairs [`decode`] takes, besides `DeleteOptions` in
/// any group version.
pub fn supported_types() -> &'static [(&'static str, &'static str)] {
    generated::TYPES
}

fn decode_typed(
    api_version: &str,
    kind: &str,
    raw: &[u8],
) -> Option<Result<Value, prost::DecodeError>> {
    if kind == "DeleteOptions" {
        return Some(conv::decode_as::<meta::DeleteOptions>(raw));
    }
    generated::decode_object(api_version, kind, raw)
}

/// Decodes a protobuf request body (`k8s\0` + `runtime.Unknown`) into the
/// JSON object the server would have received, with `apiVersion` and `kind`
/// set.
pub fn decode(body: &[u8]) -> Result<Value, ProtoError> {
    let rest = body
        .strip_prefix(MAGIC.as_slice())
        .ok_or(ProtoError::MissingMagic)?;
    let envelope = runtime::Unknown::decode(rest).map_err(|source| ProtoError::Decode {
        what: "runtime.Unknown envelope".into(),
        source,
    })?;
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
    let Some(decoded) = decode_typed(&api_version, &kind, &raw) else {
        return Err(ProtoError::Unsupported { api_version, kind });
    };
    let body = decoded.map_err(|source| ProtoError::Decode {
        what: format!("{api_version} {kind}"),
        source,
    })?;
    let mut out = serde_json::Map::new();
    out.insert("apiVersion".into(), Value::String(api_version));
    out.insert("kind".into(), Value::String(kind));
    if let Value::Object(fields) = body {
        out.extend(fields);
    }
    Ok(Value::Object(out))
}

/// Encodes a JSON object of any type [`decode`] takes as a Kubernetes
/// protobuf body (`k8s\0` + `runtime.Unknown`), the way client-go does. The
/// inverse of [`decode`] (for tests of servers and clients).
pub fn encode(obj: &Value) -> Result<Vec<u8>, ProtoError> {
    let field = |k: &str| {
        obj.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (api_version, kind) = (field("apiVersion"), field("kind"));
    let encoded = if kind == "DeleteOptions" {
        Some(conv::encode_as::<meta::DeleteOptions>(obj))
    } else {
        generated::encode_object(&api_version, &kind, obj)
    };
    let raw = match encoded {
        None => return Err(ProtoError::Unsupported { api_version, kind }),
        Some(r) => r.map_err(ProtoError::Encode)?,
    };
    let envelope = runtime::Unknown {
        type_meta: Some(runtime::TypeMeta {
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

/// The JSON <-> message conversion: the traits [`generated`] implements, the
/// helpers it calls per protobuf field shape, and the messages whose JSON is
/// not an object of their fields (times, quantities, int-or-string, raw JSON).
pub(crate) mod conv {
    use std::collections::BTreeMap;

    use base64::Engine as _;
    use serde_json::{Map, Value};

    use k8s_pb::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
    use k8s_pb::apimachinery::pkg::api::resource::Quantity;
    use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
    use k8s_pb::apimachinery::pkg::runtime::RawExtension;
    use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;

    /// A message as the JSON the API server reads; `Null` means "leave the field out".
    pub trait ToJson {
        /// The JSON form.
        fn to_json(&self) -> Value;
    }

    /// A message from its JSON form.
    pub trait FromJson: Sized {
        /// Parses the JSON form; the error names the offending field.
        fn from_json(v: &Value) -> Result<Self, String>;
    }

    pub fn decode_as<M: prost::Message + Default + ToJson>(
        raw: &[u8],
    ) -> Result<Value, prost::DecodeError> {
        Ok(M::decode(raw)?.to_json())
    }

    pub fn encode_as<M: prost::Message + FromJson>(obj: &Value) -> Result<Vec<u8>, String> {
        Ok(M::from_json(obj)?.encode_to_vec())
    }

    fn b64(bytes: &[u8]) -> Value {
        Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    fn unb64(k: &str, v: &Value) -> Result<Vec<u8>, String> {
        let s = v
            .as_str()
            .ok_or_else(|| format!("{k}: expected a base64 string"))?;
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|e| format!("{k}: illegal base64 data: {e}"))
    }

    // ---- to JSON, one helper per field shape ------------------------------

    // Go encodes a non-pointer string field even when empty; JSON leaves it out.
    pub fn put_opt_string(m: &mut Map<String, Value>, k: &str, v: &Option<String>) {
        if let Some(s) = v.as_ref().filter(|s| !s.is_empty()) {
            m.insert(k.into(), Value::String(s.clone()));
        }
    }
    pub fn put_opt_scalar<T: Copy + Into<Value>>(
        m: &mut Map<String, Value>,
        k: &str,
        v: &Option<T>,
    ) {
        if let Some(x) = v {
            m.insert(k.into(), (*x).into());
        }
    }
    /// A non-pointer `omitempty` field: its zero is left out, as Go's JSON does.
    pub fn put_opt_scalar_omitempty<T: Copy + Default + PartialEq + Into<Value>>(
        m: &mut Map<String, Value>,
        k: &str,
        v: &Option<T>,
    ) {
        if let Some(x) = v.filter(|x| *x != T::default()) {
            m.insert(k.into(), x.into());
        }
    }
    pub fn put_opt_bytes(m: &mut Map<String, Value>, k: &str, v: &Option<Vec<u8>>) {
        if let Some(b) = v {
            m.insert(k.into(), b64(b));
        }
    }
    pub fn put_opt_message<T: ToJson>(m: &mut Map<String, Value>, k: &str, v: Option<&T>) {
        if let Some(x) = v {
            let j = x.to_json();
            if !j.is_null() {
                m.insert(k.into(), j);
            }
        }
    }
    pub fn put_inline<T: ToJson>(m: &mut Map<String, Value>, v: Option<&T>) {
        if let Some(Value::Object(fields)) = v.map(ToJson::to_json) {
            m.extend(fields);
        }
    }
    pub fn put_rep_string(m: &mut Map<String, Value>, k: &str, v: &[String]) {
        if !v.is_empty() {
            m.insert(k.into(), v.iter().cloned().map(Value::String).collect());
        }
    }
    pub fn put_rep_scalar<T: Copy + Into<Value>>(m: &mut Map<String, Value>, k: &str, v: &[T]) {
        if !v.is_empty() {
            m.insert(k.into(), v.iter().map(|x| (*x).into()).collect());
        }
    }
    pub fn put_rep_message<T: ToJson>(m: &mut Map<String, Value>, k: &str, v: &[T]) {
        if !v.is_empty() {
            m.insert(k.into(), v.iter().map(ToJson::to_json).collect());
        }
    }
    pub fn put_map_string(m: &mut Map<String, Value>, k: &str, v: &BTreeMap<String, String>) {
        if !v.is_empty() {
            let o = v.iter().map(|(a, b)| (a.clone(), Value::String(b.clone())));
            m.insert(k.into(), Value::Object(o.collect()));
        }
    }
    pub fn put_map_bytes(m: &mut Map<String, Value>, k: &str, v: &BTreeMap<String, Vec<u8>>) {
        if !v.is_empty() {
            let o = v.iter().map(|(a, b)| (a.clone(), b64(b)));
            m.insert(k.into(), Value::Object(o.collect()));
        }
    }
    pub fn put_map_message<T: ToJson>(
        m: &mut Map<String, Value>,
        k: &str,
        v: &BTreeMap<String, T>,
    ) {
        if !v.is_empty() {
            let o = v.iter().map(|(a, b)| (a.clone(), b.to_json()));
            m.insert(k.into(), Value::Object(o.collect()));
        }
    }

    // ---- from JSON --------------------------------------------------------

    pub fn as_object(v: &Value) -> Result<&Map<String, Value>, String> {
        v.as_object()
            .ok_or_else(|| format!("expected an object, got {v}"))
    }

    fn present<'a>(o: &'a Map<String, Value>, k: &str) -> Option<&'a Value> {
        o.get(k).filter(|v| !v.is_null())
    }

    /// A scalar protobuf field's value from JSON.
    pub trait Scalar: Sized {
        /// The value, if `v` has the right JSON type.
        fn from_value(v: &Value) -> Option<Self>;
    }
    impl Scalar for bool {
        fn from_value(v: &Value) -> Option<Self> {
            v.as_bool()
        }
    }
    impl Scalar for i32 {
        fn from_value(v: &Value) -> Option<Self> {
            v.as_i64().and_then(|x| i32::try_from(x).ok())
        }
    }
    impl Scalar for i64 {
        fn from_value(v: &Value) -> Option<Self> {
            v.as_i64()
        }
    }
    impl Scalar for f64 {
        fn from_value(v: &Value) -> Option<Self> {
            v.as_f64()
        }
    }

    fn list<'a>(o: &'a Map<String, Value>, k: &str) -> Result<&'a [Value], String> {
        match present(o, k) {
            None => Ok(&[]),
            Some(Value::Array(a)) => Ok(a),
            Some(other) => Err(format!("{k}: expected a list, got {other}")),
        }
    }
    fn object<'a>(
        o: &'a Map<String, Value>,
        k: &str,
    ) -> Result<Option<&'a Map<String, Value>>, String> {
        match present(o, k) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(other) => Err(format!("{k}: expected an object, got {other}")),
        }
    }
    fn string(k: &str, v: &Value) -> Result<String, String> {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("{k}: expected a string, got {v}"))
    }

    pub fn get_opt_string(o: &Map<String, Value>, k: &str) -> Result<Option<String>, String> {
        present(o, k).map(|v| string(k, v)).transpose()
    }
    pub fn get_opt_scalar<T: Scalar>(o: &Map<String, Value>, k: &str) -> Result<Option<T>, String> {
        present(o, k)
            .map(|v| T::from_value(v).ok_or_else(|| format!("{k}: unexpected value {v}")))
            .transpose()
    }
    pub fn get_opt_bytes(o: &Map<String, Value>, k: &str) -> Result<Option<Vec<u8>>, String> {
        present(o, k).map(|v| unb64(k, v)).transpose()
    }
    pub fn get_opt_message<T: FromJson>(
        o: &Map<String, Value>,
        k: &str,
    ) -> Result<Option<T>, String> {
        present(o, k)
            .map(|v| T::from_json(v).map_err(|e| format!("{k}.{e}")))
            .transpose()
    }
    pub fn get_rep_string(o: &Map<String, Value>, k: &str) -> Result<Vec<String>, String> {
        list(o, k)?.iter().map(|v| string(k, v)).collect()
    }
    pub fn get_rep_scalar<T: Scalar>(o: &Map<String, Value>, k: &str) -> Result<Vec<T>, String> {
        list(o, k)?
            .iter()
            .map(|v| T::from_value(v).ok_or_else(|| format!("{k}: unexpected value {v}")))
            .collect()
    }
    pub fn get_rep_message<T: FromJson>(o: &Map<String, Value>, k: &str) -> Result<Vec<T>, String> {
        list(o, k)?
            .iter()
            .enumerate()
            .map(|(i, v)| T::from_json(v).map_err(|e| format!("{k}[{i}].{e}")))
            .collect()
    }
    pub fn get_map_string(
        o: &Map<String, Value>,
        k: &str,
    ) -> Result<BTreeMap<String, String>, String> {
        let Some(m) = object(o, k)? else {
            return Ok(BTreeMap::new());
        };
        m.iter()
            .map(|(a, v)| Ok((a.clone(), string(k, v)?)))
            .collect()
    }
    pub fn get_map_bytes(
        o: &Map<String, Value>,
        k: &str,
    ) -> Result<BTreeMap<String, Vec<u8>>, String> {
        let Some(m) = object(o, k)? else {
            return Ok(BTreeMap::new());
        };
        m.iter()
            .map(|(a, v)| Ok((a.clone(), unb64(k, v)?)))
            .collect()
    }
    pub fn get_map_message<T: FromJson>(
        o: &Map<String, Value>,
        k: &str,
    ) -> Result<BTreeMap<String, T>, String> {
        let Some(m) = object(o, k)? else {
            return Ok(BTreeMap::new());
        };
        m.iter()
            .map(|(a, v)| {
                Ok((
                    a.clone(),
                    T::from_json(v).map_err(|e| format!("{k}.{a}.{e}"))?,
                ))
            })
            .collect()
    }

    // ---- messages with their own JSON form --------------------------------

    /// `time.Time{}` as Go's protobuf marshalling writes it (0001-01-01).
    pub const GO_ZERO_TIME_SECONDS: i64 = -62_135_596_800;

    fn time_json(seconds: Option<i64>, nanos: Option<i32>, micros: bool) -> Value {
        let (Some(s), n) = (seconds, nanos.unwrap_or(0)) else {
            return Value::Null;
        };
        if s == GO_ZERO_TIME_SECONDS && n == 0 {
            return Value::Null;
        }
        let Some(dt) = chrono::DateTime::from_timestamp(s, u32::try_from(n).unwrap_or(0)) else {
            return Value::Null;
        };
        let fmt = if micros {
            "%Y-%m-%dT%H:%M:%S%.6fZ"
        } else {
            "%Y-%m-%dT%H:%M:%SZ"
        };
        Value::String(dt.format(fmt).to_string())
    }

    fn time_parse(v: &Value) -> Result<(i64, i32), String> {
        let s = v
            .as_str()
            .ok_or_else(|| format!("expected an RFC 3339 time, got {v}"))?;
        let t = chrono::DateTime::parse_from_rfc3339(s).map_err(|e| format!("time {s:?}: {e}"))?;
        Ok((
            t.timestamp(),
            i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
        ))
    }

    impl ToJson for meta::Time {
        fn to_json(&self) -> Value {
            time_json(self.seconds, None, false)
        }
    }
    impl FromJson for meta::Time {
        fn from_json(v: &Value) -> Result<Self, String> {
            let (s, _) = time_parse(v)?;
            Ok(Self {
                seconds: Some(s),
                nanos: Some(0),
            })
        }
    }
    impl ToJson for meta::MicroTime {
        fn to_json(&self) -> Value {
            time_json(self.seconds, self.nanos, true)
        }
    }
    impl FromJson for meta::MicroTime {
        fn from_json(v: &Value) -> Result<Self, String> {
            let (s, n) = time_parse(v)?;
            Ok(Self {
                seconds: Some(s),
                nanos: Some(n / 1000 * 1000),
            })
        }
    }

    /// `metav1.Duration`: nanoseconds in protobuf, Go's `time.Duration` string in JSON.
    impl ToJson for meta::Duration {
        fn to_json(&self) -> Value {
            Value::String(go_duration(self.duration.unwrap_or(0)))
        }
    }
    impl FromJson for meta::Duration {
        fn from_json(v: &Value) -> Result<Self, String> {
            let s = v
                .as_str()
                .ok_or_else(|| format!("expected a duration, got {v}"))?;
            Ok(Self {
                duration: Some(parse_go_duration(s)?),
            })
        }
    }

    /// Go's `time.Duration.String()` for whole seconds and below (`1h2m3s`, `1.5s`, `0s`).
    pub fn go_duration(nanos: i64) -> String {
        if nanos == 0 {
            return "0s".into();
        }
        let sign = if nanos < 0 { "-" } else { "" };
        let n = nanos.unsigned_abs();
        let (h, m) = (n / 3_600_000_000_000, n / 60_000_000_000 % 60);
        let (s, frac) = (n / 1_000_000_000 % 60, n % 1_000_000_000);
        let mut out = sign.to_string();
        if h > 0 {
            out += &format!("{h}h");
        }
        if h > 0 || m > 0 {
            out += &format!("{m}m");
        }
        if frac == 0 {
            out += &format!("{s}s");
        } else {
            let f = format!("{frac:09}");
            out += &format!("{s}.{}s", f.trim_end_matches('0'));
        }
        out
    }

    /// Parses a Go duration string (`300ms`, `1h30m`, `2.5s`) into nanoseconds.
    pub fn parse_go_duration(s: &str) -> Result<i64, String> {
        let bad = || format!("invalid duration {s:?}");
        let (neg, mut rest) = match s.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        if rest == "0" {
            return Ok(0);
        }
        let mut total = 0f64;
        while !rest.is_empty() {
            let num_end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(bad)?;
            let n: f64 = rest[..num_end].parse().map_err(|_| bad())?;
            rest = &rest[num_end..];
            let unit_end = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let scale = match &rest[..unit_end] {
                "ns" => 1.0,
                "us" | "µs" => 1e3,
                "ms" => 1e6,
                "s" => 1e9,
                "m" => 60e9,
                "h" => 3600e9,
                _ => return Err(bad()),
            };
            total += n * scale;
            rest = &rest[unit_end..];
        }
        #[allow(clippy::cast_possible_truncation)]
        let t = total.round() as i64;
        Ok(if neg { -t } else { t })
    }

    /// Raw bytes that hold a JSON document (RawExtension, FieldsV1, apiextensions JSON).
    fn raw_json(raw: &Option<Vec<u8>>) -> Value {
        match raw.as_deref() {
            None | Some([]) => Value::Null,
            Some(b) => serde_json::from_slice(b)
                .or_else(|_| serde_yaml::from_slice(b))
                .unwrap_or_else(|_| b64(b)),
        }
    }
    fn raw_bytes(v: &Value) -> Result<Option<Vec<u8>>, String> {
        serde_json::to_vec(v).map(Some).map_err(|e| e.to_string())
    }

    macro_rules! raw_json_message {
        ($($ty:ty),*) => {$(
            impl ToJson for $ty {
                fn to_json(&self) -> Value {
                    raw_json(&self.raw)
                }
            }
            impl FromJson for $ty {
                fn from_json(v: &Value) -> Result<Self, String> {
                    Ok(Self { raw: raw_bytes(v)? })
                }
            }
        )*};
    }
    raw_json_message!(RawExtension, meta::FieldsV1, apiext::Json);

    impl ToJson for Quantity {
        fn to_json(&self) -> Value {
            Value::String(self.string.clone().unwrap_or_default())
        }
    }
    impl FromJson for Quantity {
        fn from_json(v: &Value) -> Result<Self, String> {
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                other => return Err(format!("expected a quantity, got {other}")),
            };
            Ok(Self { string: Some(s) })
        }
    }

    /// `intstr.IntOrString`: `type` 1 is the string form.
    impl ToJson for IntOrString {
        fn to_json(&self) -> Value {
            if self.r#type == Some(1) {
                Value::String(self.str_val.clone().unwrap_or_default())
            } else {
                Value::from(self.int_val.unwrap_or(0))
            }
        }
    }
    impl FromJson for IntOrString {
        fn from_json(v: &Value) -> Result<Self, String> {
            match v {
                Value::String(s) => Ok(Self {
                    r#type: Some(1),
                    int_val: Some(0),
                    str_val: Some(s.clone()),
                }),
                other => match i32::from_value(other) {
                    Some(i) => Ok(Self {
                        r#type: Some(0),
                        int_val: Some(i),
                        str_val: Some(String::new()),
                    }),
                    None => Err(format!("expected an integer or a string, got {other}")),
                },
            }
        }
    }

    /// `items`: one schema or a list of them.
    impl ToJson for apiext::JsonSchemaPropsOrArray {
        fn to_json(&self) -> Value {
            match &self.schema {
                Some(s) => s.to_json(),
                None => self.j_son_schemas.iter().map(ToJson::to_json).collect(),
            }
        }
    }
    impl FromJson for apiext::JsonSchemaPropsOrArray {
        fn from_json(v: &Value) -> Result<Self, String> {
            Ok(match v {
                Value::Array(a) => Self {
                    schema: None,
                    j_son_schemas: a
                        .iter()
                        .map(FromJson::from_json)
                        .collect::<Result<_, _>>()?,
                },
                other => Self {
                    schema: Some(Box::new(FromJson::from_json(other)?)),
                    j_son_schemas: vec![],
                },
            })
        }
    }
    /// `additionalProperties` / `additionalItems`: a bool or a schema.
    impl ToJson for apiext::JsonSchemaPropsOrBool {
        fn to_json(&self) -> Value {
            match &self.schema {
                Some(s) => s.to_json(),
                None => Value::Bool(self.allows.unwrap_or(false)),
            }
        }
    }
    impl FromJson for apiext::JsonSchemaPropsOrBool {
        fn from_json(v: &Value) -> Result<Self, String> {
            Ok(match v {
                Value::Bool(b) => Self {
                    allows: Some(*b),
                    schema: None,
                },
                other => Self {
                    allows: Some(true),
                    schema: Some(Box::new(FromJson::from_json(other)?)),
                },
            })
        }
    }
    /// `dependencies` values: a schema or a list of property names.
    impl ToJson for apiext::JsonSchemaPropsOrStringArray {
        fn to_json(&self) -> Value {
            match &self.schema {
                Some(s) => s.to_json(),
                None => self.property.iter().cloned().map(Value::String).collect(),
            }
        }
    }
    impl FromJson for apiext::JsonSchemaPropsOrStringArray {
        fn from_json(v: &Value) -> Result<Self, String> {
            Ok(match v {
                Value::Array(a) => Self {
                    schema: None,
                    property: a
                        .iter()
                        .map(|x| string("dependencies", x))
                        .collect::<Result<_, _>>()?,
                },
                other => Self {
                    schema: Some(FromJson::from_json(other)?),
                    property: vec![],
                },
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_pb::api::core::v1::{Namespace, Secret};
    use meta::{ObjectMeta, Time};
    use serde_json::json;

    const GO_ZERO_TIME_SECONDS: i64 = conv::GO_ZERO_TIME_SECONDS;

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
    fn decodes_a_namespace_as_kubectl_create_sends_it() {
        let ns = Namespace {
            metadata: Some(ObjectMeta {
                name: Some("team-a".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let body = envelope("v1", "Namespace", &prost::Message::encode_to_vec(&ns));
        assert_eq!(
            decode(&body).unwrap(),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}})
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
        let err = decode(&envelope("example.com/v1", "Widget", b"")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "decoding Widget (example.com/v1) from protobuf is not supported; send it as JSON"
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
        assert!(encode(&json!({"apiVersion": "v1", "kind": "Widget"})).is_err());
        assert!(
            encode(&json!({"apiVersion": "v1", "kind": "Secret", "data": {"k": "%%"}})).is_err()
        );
    }

    /// Encodes `obj`, decodes it back and checks it is unchanged; then checks
    /// that k8s-openapi's typed form keeps every field (a field under a wrong
    /// JSON name would be dropped there), so the names are the API's own.
    fn round_trip<K>(obj: Value)
    where
        K: serde::de::DeserializeOwned + serde::Serialize,
    {
        let body = encode(&obj).unwrap_or_else(|e| panic!("encode {obj}: {e}"));
        let back = decode(&body).unwrap();
        pretty_assertions::assert_eq!(back, obj);
        let typed: K = serde_json::from_value(back.clone()).unwrap();
        pretty_assertions::assert_eq!(serde_json::to_value(typed).unwrap(), back);
    }

    #[test]
    fn kubectl_create_kinds_round_trip_with_the_api_field_names() {
        use k8s_openapi::api as k;
        round_trip::<k::apps::v1::Deployment>(json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"},
                         "creationTimestamp": "2025-01-02T03:04:05Z"},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"},
                             "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]},
                "strategy": {"type": "RollingUpdate",
                             "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
                "revisionHistoryLimit": 10,
                "progressDeadlineSeconds": 600,
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [{
                            "name": "nginx",
                            "image": "nginx:1.27",
                            "args": ["-g", "daemon off;"],
                            "ports": [{"containerPort": 80, "protocol": "TCP", "name": "http"}],
                            "env": [
                                {"name": "A", "value": "1"},
                                {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k", "optional": true}}},
                                {"name": "C", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
                            ],
                            "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "100m"}},
                            "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 5},
                            "livenessProbe": {"tcpSocket": {"port": 80}, "initialDelaySeconds": 3},
                            "volumeMounts": [{"name": "conf", "mountPath": "/etc/conf", "readOnly": true}],
                            "imagePullPolicy": "IfNotPresent"
                        }],
                        "volumes": [
                            {"name": "conf", "configMap": {"name": "cm", "defaultMode": 420}},
                            {"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}}
                        ],
                        "restartPolicy": "Always",
                        "terminationGracePeriodSeconds": 30,
                        "dnsPolicy": "ClusterFirst",
                        "serviceAccountName": "web",
                        "securityContext": {"runAsNonRoot": true, "runAsUser": 1000},
                        "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 60}]
                    }
                }
            },
            "status": {"observedGeneration": 1, "replicas": 3, "readyReplicas": 3,
                       "conditions": [{"type": "Available", "status": "True",
                                       "lastTransitionTime": "2025-01-02T03:04:05Z", "reason": "MinimumReplicasAvailable"}]}
        }));
        round_trip::<k::core::v1::Service>(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "NodePort", "selector": {"app": "web"}, "clusterIP": "10.0.0.1",
                     "clusterIPs": ["10.0.0.1"], "ipFamilies": ["IPv4"],
                     "ports": [{"name": "80-8080", "port": 80, "targetPort": 8080, "protocol": "TCP", "nodePort": 30080}]}
        }));
        round_trip::<k::rbac::v1::ClusterRole>(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "reader"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
                      {"nonResourceURLs": ["/healthz"], "verbs": ["get"]}],
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"agg": "true"}}]}
        }));
        round_trip::<k::rbac::v1::RoleBinding>(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "rb", "namespace": "default"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "web", "namespace": "default"},
                         {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}]
        }));
        round_trip::<k::networking::v1::Ingress>(json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "web", "namespace": "default", "annotations": {"a": "b"}},
            "spec": {"ingressClassName": "nginx",
                     "rules": [{"host": "foo.com", "http": {"paths": [{"path": "/", "pathType": "Exact",
                         "backend": {"service": {"name": "svc", "port": {"number": 8080}}}}]}}],
                     "tls": [{"hosts": ["foo.com"], "secretName": "tls"}]}
        }));
        round_trip::<k::policy::v1::PodDisruptionBudget>(json!({
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "pdb", "namespace": "default"},
            "spec": {"minAvailable": "50%", "selector": {"matchLabels": {"app": "web"}}}
        }));
        round_trip::<k::batch::v1::CronJob>(json!({
            "apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "cj", "namespace": "default"},
            "spec": {"schedule": "*/1 * * * *", "jobTemplate": {"metadata": {"name": "cj"},
                "spec": {"backoffLimit": 6, "template": {"spec": {"restartPolicy": "OnFailure",
                    "containers": [{"name": "cj", "image": "busybox", "command": ["date"]}]}}}}}
        }));
        round_trip::<k::authentication::v1::TokenRequest>(json!({
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"audiences": ["https://kubernetes.default.svc"], "expirationSeconds": 3600,
                     "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p", "uid": "u"}}
        }));
        round_trip::<k::core::v1::ResourceQuota>(json!({
            "apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": {"name": "q", "namespace": "default"},
            "spec": {"hard": {"pods": "10", "requests.cpu": "2"}, "scopes": ["BestEffort"]}
        }));
        round_trip::<k::scheduling::v1::PriorityClass>(json!({
            "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": "high"}, "value": 1000, "globalDefault": false,
            "description": "high", "preemptionPolicy": "Never"
        }));
        round_trip::<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>(json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                     "names": {"plural": "widgets", "kind": "Widget"},
                     "versions": [{"name": "v1", "served": true, "storage": true,
                        "subresources": {"status": {}},
                        "schema": {"openAPIV3Schema": {"type": "object",
                            "x-kubernetes-preserve-unknown-fields": true,
                            "properties": {"spec": {"type": "object", "default": {"a": 1},
                                "additionalProperties": {"type": "string"},
                                "properties": {"list": {"type": "array", "items": {"type": "integer"}}}}}}}}]}
        }));
    }

    #[test]
    fn every_built_in_kind_the_sim_serves_is_decoded() {
        for rt in crate::resources::builtin_types() {
            for v in &rt.versions {
                let api_version = rt.api_version(&v.name);
                assert!(
                    supported_types().contains(&(api_version.as_str(), rt.kind.as_str())),
                    "{} ({api_version}) is served but not decoded from protobuf: add its module to codegen/proto_json.py",
                    rt.kind
                );
            }
        }
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
