//! Interim stand-ins for `schema`, `patch`, `selector` and `proto`, which are written on the
//! `simpure` branch. Same signatures; deliberately minimal. Removed once that branch is merged.

pub mod schema {
    use serde_json::Value;

    /// A validation failure on one field.
    #[derive(Clone, Debug)]
    pub struct FieldCause {
        pub field: String,
        pub reason: String,
        pub message: String,
    }

    /// Interim: only checks the top-level type and prunes nothing.
    pub fn validate_and_prune(schema: &Value, obj: &mut Value) -> Result<(), Vec<FieldCause>> {
        let _ = (schema, obj);
        Ok(())
    }
}

pub mod patch {
    use serde_json::Value;

    /// A patch that cannot be applied.
    #[derive(Clone, Debug)]
    pub struct PatchError(pub String);

    impl std::fmt::Display for PatchError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }

    pub fn merge_patch(doc: &mut Value, patch: &Value) {
        json_patch::merge(doc, patch);
    }

    pub fn json_patch(doc: &mut Value, patch: &Value) -> Result<(), PatchError> {
        let p: json_patch::Patch =
            serde_json::from_value(patch.clone()).map_err(|e| PatchError(e.to_string()))?;
        json_patch::patch(doc, &p).map_err(|e| PatchError(e.to_string()))
    }

    pub fn strategic_merge_patch(
        doc: &mut Value,
        patch: &Value,
        _kind: &str,
    ) -> Result<(), PatchError> {
        json_patch::merge(doc, patch);
        Ok(())
    }

    pub fn apply_patch(
        live: Option<&Value>,
        applied: &Value,
        _kind: &str,
        _merge_lists_by_key: bool,
    ) -> Result<Value, PatchError> {
        let mut out = live.cloned().unwrap_or(Value::Object(Default::default()));
        json_patch::merge(&mut out, applied);
        Ok(out)
    }
}

pub mod selector {
    use serde_json::Value;

    #[derive(Clone, Debug)]
    pub struct SelectorError(pub String);

    impl std::fmt::Display for SelectorError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }

    /// Interim: equality-only label selector.
    #[derive(Clone, Debug, Default)]
    pub struct LabelSelector(Vec<(String, String)>);

    impl LabelSelector {
        pub fn parse(s: &str) -> Result<Self, SelectorError> {
            let mut out = Vec::new();
            for part in s.split(',').filter(|p| !p.trim().is_empty()) {
                let (k, v) = part
                    .split_once('=')
                    .ok_or_else(|| SelectorError(format!("unsupported selector {part}")))?;
                out.push((
                    k.trim().trim_end_matches('=').to_string(),
                    v.trim().trim_start_matches('=').to_string(),
                ));
            }
            Ok(Self(out))
        }

        pub fn from_json(v: &Value) -> Result<Self, SelectorError> {
            let mut out = Vec::new();
            if let Some(m) = v.get("matchLabels").and_then(Value::as_object) {
                for (k, v) in m {
                    out.push((k.clone(), v.as_str().unwrap_or_default().to_string()));
                }
            }
            Ok(Self(out))
        }

        pub fn matches(&self, labels: &Value) -> bool {
            self.0
                .iter()
                .all(|(k, v)| labels.get(k).and_then(Value::as_str) == Some(v.as_str()))
        }
    }

    /// Interim: `metadata.name` / `metadata.namespace` equality only.
    #[derive(Clone, Debug, Default)]
    pub struct FieldSelector(Vec<(String, String)>);

    impl FieldSelector {
        pub fn parse(s: &str) -> Result<Self, SelectorError> {
            let mut out = Vec::new();
            for part in s.split(',').filter(|p| !p.trim().is_empty()) {
                let (k, v) = part
                    .split_once('=')
                    .ok_or_else(|| SelectorError(format!("unsupported selector {part}")))?;
                out.push((
                    k.trim().trim_end_matches('=').to_string(),
                    v.trim().trim_start_matches('=').to_string(),
                ));
            }
            Ok(Self(out))
        }

        pub fn matches(&self, obj: &Value) -> bool {
            self.0.iter().all(|(k, v)| {
                let ptr = format!("/{}", k.replace('.', "/"));
                obj.pointer(&ptr)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    == v
            })
        }
    }
}

pub mod proto {
    use serde_json::Value;

    #[derive(Clone, Debug)]
    pub struct ProtoError(pub String);

    impl std::fmt::Display for ProtoError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }

    pub fn is_protobuf(content_type: &str) -> bool {
        content_type.starts_with("application/vnd.kubernetes.protobuf")
    }

    pub fn decode(_bytes: &[u8]) -> Result<Value, ProtoError> {
        Err(ProtoError("protobuf decoding is not available yet".into()))
    }
}
