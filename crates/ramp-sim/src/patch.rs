//! The four patch types of the Kubernetes API, on `serde_json::Value`:
//!
//! - [`merge_patch`]: JSON merge patch (RFC 7386), `application/merge-patch+json`.
//! - [`json_patch`]: JSON patch (RFC 6902), `application/json-patch+json`, with
//!   the apiserver's quirks: a `test` of a missing member (whose parent exists)
//!   compares equal to `null`; the patch applies all or nothing.
//! - [`strategic_merge_patch`]: `application/strategic-merge-patch+json` for
//!   built-in kinds, merging lists by their patch merge keys (containers by
//!   `name`, ports by `containerPort`/`port`, ...), with the `$patch`,
//!   `$retainKeys`, `$deleteFromPrimitiveList/<field>` and
//!   `$setElementOrder/<field>` directives.
//! - [`apply_patch`]: the merge of a server-side apply (`application/apply-patch+yaml`);
//!   [`managed`] adds field ownership (`managedFields`, conflicts, removals).
//!
//! Every error is a [`PatchError`] whose text is fit for the `message` of a
//! Status; [`PatchError::code`] and [`PatchError::reason`] give its HTTP code
//! and Status reason.

pub mod managed;

use serde_json::{Map, Value};

/// Why a patch could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch document itself is malformed (HTTP 400 `BadRequest`).
    #[error("invalid patch: {0}")]
    Malformed(String),
    /// A JSON patch operation could not be applied (HTTP 422 `Invalid`).
    #[error("json patch operation {index} ({op} {path}) failed: {reason}")]
    OperationFailed {
        /// Zero-based position of the operation in the patch.
        index: usize,
        /// The operation name (`add`, `remove`, ...).
        op: String,
        /// The operation's `path`.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A JSON patch `test` operation found a different value (HTTP 422 `Invalid`).
    #[error(
        "json patch operation {index} (test {path}) failed: the value is {actual}, not {expected}"
    )]
    TestFailed {
        /// Zero-based position of the operation in the patch.
        index: usize,
        /// The tested path.
        path: String,
        /// The value the patch expected, as JSON.
        expected: String,
        /// The value found, as JSON (`null` when absent).
        actual: String,
    },
    /// A strategic merge patch or apply configuration cannot be merged (HTTP 422 `Invalid`).
    #[error("{0}")]
    Unmergeable(String),
}

impl PatchError {
    /// The HTTP status code the apiserver answers with for this error.
    pub fn code(&self) -> u16 {
        match self {
            PatchError::Malformed(_) => 400,
            _ => 422,
        }
    }

    /// The Status `reason` for this error.
    pub fn reason(&self) -> &'static str {
        match self {
            PatchError::Malformed(_) => "BadRequest",
            _ => "Invalid",
        }
    }
}

/// Applies a JSON merge patch (RFC 7386) to `target`: objects merge
/// recursively, `null` removes a member, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target_map) = target {
        for (k, v) in patch_map {
            if v.is_null() {
                target_map.remove(k);
            } else {
                merge_patch(target_map.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// JSON patch (RFC 6902)

/// Parses an RFC 6901 JSON pointer into its unescaped tokens.
fn parse_pointer(pointer: &str) -> Result<Vec<String>, String> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(format!("path {pointer:?} does not start with '/'"));
    };
    rest.split('/')
        .map(|t| {
            let mut out = String::with_capacity(t.len());
            let mut chars = t.chars();
            while let Some(c) = chars.next() {
                if c == '~' {
                    match chars.next() {
                        Some('0') => out.push('~'),
                        Some('1') => out.push('/'),
                        _ => return Err(format!("path {pointer:?} has an invalid '~' escape")),
                    }
                } else {
                    out.push(c);
                }
            }
            Ok(out)
        })
        .collect()
}

fn array_index(token: &str, len: usize, allow_end: bool) -> Result<usize, String> {
    if allow_end && token == "-" {
        return Ok(len);
    }
    let valid = !token.is_empty()
        && token.bytes().all(|b| b.is_ascii_digit())
        && (token == "0" || !token.starts_with('0'));
    let idx: usize = if valid {
        token
            .parse()
            .map_err(|_| format!("invalid array index {token:?}"))?
    } else {
        return Err(format!("invalid array index {token:?}"));
    };
    let max = if allow_end {
        len
    } else {
        len.saturating_sub(1)
    };
    if idx > max || (!allow_end && len == 0) {
        return Err(format!("array index {idx} is out of bounds (length {len})"));
    }
    Ok(idx)
}

/// The container that holds the member named by `tokens` (all but the last token).
fn parent_mut<'a>(doc: &'a mut Value, tokens: &[String]) -> Result<&'a mut Value, String> {
    let mut cur = doc;
    for (i, t) in tokens.iter().enumerate() {
        let here = || format!("/{}", tokens[..=i].join("/"));
        cur = match cur {
            Value::Object(m) => m
                .get_mut(t)
                .ok_or_else(|| format!("doc is missing path: {}", here()))?,
            Value::Array(a) => {
                let idx = array_index(t, a.len(), false)?;
                &mut a[idx]
            }
            _ => return Err(format!("doc is missing path: {}", here())),
        };
    }
    Ok(cur)
}

fn get_at<'a>(doc: &'a Value, tokens: &[String]) -> Option<&'a Value> {
    let mut cur = doc;
    for t in tokens {
        cur = match cur {
            Value::Object(m) => m.get(t)?,
            Value::Array(a) => a.get(array_index(t, a.len(), false).ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn add_at(doc: &mut Value, tokens: &[String], value: Value) -> Result<(), String> {
    let Some((last, parents)) = tokens.split_last() else {
        *doc = value;
        return Ok(());
    };
    match parent_mut(doc, parents)? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(a) => {
            let idx = array_index(last, a.len(), true)?;
            a.insert(idx, value);
            Ok(())
        }
        _ => Err("the parent is neither an object nor an array".to_string()),
    }
}

fn remove_at(doc: &mut Value, tokens: &[String]) -> Result<Value, String> {
    let Some((last, parents)) = tokens.split_last() else {
        return Ok(std::mem::replace(doc, Value::Null));
    };
    match parent_mut(doc, parents)? {
        Value::Object(m) => m
            .remove(last)
            .ok_or_else(|| format!("doc is missing key: {last}")),
        Value::Array(a) => {
            let idx = array_index(last, a.len(), false)?;
            Ok(a.remove(idx))
        }
        _ => Err("the parent is neither an object nor an array".to_string()),
    }
}

fn replace_at(doc: &mut Value, tokens: &[String], value: Value) -> Result<(), String> {
    let Some((last, parents)) = tokens.split_last() else {
        *doc = value;
        return Ok(());
    };
    match parent_mut(doc, parents)? {
        Value::Object(m) => match m.get_mut(last) {
            Some(slot) => {
                *slot = value;
                Ok(())
            }
            None => Err(format!("doc is missing key: {last}")),
        },
        Value::Array(a) => {
            let idx = array_index(last, a.len(), false)?;
            a[idx] = value;
            Ok(())
        }
        _ => Err("the parent is neither an object nor an array".to_string()),
    }
}

/// Applies a JSON patch (RFC 6902). All operations apply or none do: on error
/// `target` is unchanged. A `test` of a member that is absent (in an existing
/// parent) compares equal to `null`, as in the apiserver.
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let Value::Array(ops) = patch else {
        return Err(PatchError::Malformed(
            "a JSON patch must be a JSON array of operations".to_string(),
        ));
    };
    let mut doc = target.clone();
    for (index, op) in ops.iter().enumerate() {
        apply_op(&mut doc, index, op)?;
    }
    *target = doc;
    Ok(())
}

fn apply_op(doc: &mut Value, index: usize, op: &Value) -> Result<(), PatchError> {
    let malformed =
        |what: &str| PatchError::Malformed(format!("json patch operation {index}: {what}"));
    let Value::Object(o) = op else {
        return Err(malformed("an operation must be a JSON object"));
    };
    let name = o
        .get("op")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("missing \"op\""))?;
    let path = o
        .get("path")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("missing \"path\""))?;
    let tokens = parse_pointer(path).map_err(|e| malformed(&e))?;
    let value = || {
        o.get("value")
            .cloned()
            .ok_or_else(|| malformed(&format!("{name} needs a \"value\"")))
    };
    let from = || -> Result<(String, Vec<String>), PatchError> {
        let f = o
            .get("from")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed(&format!("{name} needs a \"from\"")))?;
        Ok((f.to_string(), parse_pointer(f).map_err(|e| malformed(&e))?))
    };
    let failed = |reason: String| PatchError::OperationFailed {
        index,
        op: name.to_string(),
        path: path.to_string(),
        reason,
    };
    match name {
        "add" => add_at(doc, &tokens, value()?).map_err(failed),
        "remove" => remove_at(doc, &tokens).map(drop).map_err(failed),
        "replace" => replace_at(doc, &tokens, value()?).map_err(failed),
        "move" => {
            let (from_path, from_tokens) = from()?;
            if tokens.len() > from_tokens.len() && tokens.starts_with(&from_tokens) {
                return Err(failed(format!(
                    "cannot move {from_path} into its own child"
                )));
            }
            let moved = remove_at(doc, &from_tokens)
                .map_err(|e| failed(format!("from {from_path}: {e}")))?;
            add_at(doc, &tokens, moved).map_err(failed)
        }
        "copy" => {
            let (from_path, from_tokens) = from()?;
            let copied = get_at(doc, &from_tokens)
                .cloned()
                .ok_or_else(|| failed(format!("from {from_path}: doc is missing path")))?;
            add_at(doc, &tokens, copied).map_err(failed)
        }
        "test" => {
            let expected = value()?;
            let actual = match tokens.split_last() {
                None => Some(doc.clone()),
                Some((last, parents)) => {
                    let parent = get_at(doc, parents).ok_or_else(|| {
                        failed(format!("doc is missing path: /{}", parents.join("/")))
                    })?;
                    match parent {
                        Value::Object(m) => Some(m.get(last).cloned().unwrap_or(Value::Null)),
                        Value::Array(a) => match array_index(last, a.len(), false) {
                            Ok(i) => a.get(i).cloned(),
                            Err(e) => return Err(failed(e)),
                        },
                        _ => None,
                    }
                }
            };
            let actual = actual.unwrap_or(Value::Null);
            if actual == expected {
                Ok(())
            } else {
                Err(PatchError::TestFailed {
                    index,
                    path: path.to_string(),
                    expected: expected.to_string(),
                    actual: actual.to_string(),
                })
            }
        }
        other => Err(malformed(&format!("unknown op {other:?}"))),
    }
}

// ---------------------------------------------------------------------------
// Strategic merge patch and apply

/// How a list at some field path of a built-in kind is merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListStrategy {
    /// The patch's list replaces the live list (the default).
    Replace,
    /// A list of scalars merged as a set (e.g. `metadata.finalizers`).
    Set,
    /// A list of objects merged by the value of a key field.
    Key(&'static str),
}

const CONTAINER_LISTS: &[&str] = &["containers", "initContainers", "ephemeralContainers"];

/// Where the PodSpec sits in each built-in kind that embeds one.
fn pod_spec_prefix(kind: &str) -> Option<&'static [&'static str]> {
    match kind {
        "Pod" => Some(&["spec"]),
        "Deployment"
        | "ReplicaSet"
        | "StatefulSet"
        | "DaemonSet"
        | "Job"
        | "ReplicationController" => Some(&["spec", "template", "spec"]),
        "CronJob" => Some(&["spec", "jobTemplate", "spec", "template", "spec"]),
        "PodTemplate" => Some(&["template", "spec"]),
        _ => None,
    }
}

/// Lists every object shares, whatever its kind.
fn metadata_list_strategy(path: &[&str]) -> Option<ListStrategy> {
    match path {
        ["metadata", "finalizers"] => Some(ListStrategy::Set),
        ["metadata", "ownerReferences"] => Some(ListStrategy::Key("uid")),
        _ => None,
    }
}

/// The patch strategy of the list at `path` (field names only, list indices
/// left out) in a built-in `kind`, after the `patchStrategy`/`patchMergeKey`
/// tags of the Kubernetes API types.
fn builtin_list_strategy(kind: &str, path: &[&str]) -> ListStrategy {
    use ListStrategy::{Key, Replace};
    if let Some(s) = metadata_list_strategy(path) {
        return s;
    }
    if let Some(prefix) = pod_spec_prefix(kind)
        && path.len() > prefix.len()
        && path[..prefix.len()] == *prefix
    {
        return match &path[prefix.len()..] {
            ["volumes"] | ["imagePullSecrets"] | ["resourceClaims"] | ["schedulingGates"] => {
                Key("name")
            }
            [c] if CONTAINER_LISTS.contains(c) => Key("name"),
            ["hostAliases"] => Key("ip"),
            [c, field] if CONTAINER_LISTS.contains(c) => match *field {
                "ports" => Key("containerPort"),
                "env" => Key("name"),
                "volumeMounts" => Key("mountPath"),
                "volumeDevices" => Key("devicePath"),
                _ => Replace,
            },
            _ => Replace,
        };
    }
    match (kind, path) {
        (_, ["status", "conditions"]) => Key("type"),
        ("Pod", ["status", "containerStatuses"]) => Replace,
        ("Service", ["spec", "ports"]) => Key("port"),
        ("ServiceAccount", ["secrets"]) => Key("name"),
        // A webhook's caBundle is often set by another manager (the webhook's own operator or
        // cert-manager); re-applying the configuration must merge webhooks by name, not drop it.
        ("MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration", ["webhooks"]) => {
            Key("name")
        }
        _ => Replace,
    }
}

#[derive(Clone, Copy)]
struct Merger<'a> {
    kind: &'a str,
    /// Interpret `$patch` & co. (strategic merge patch) or treat them as data (apply).
    directives: bool,
    /// Use the built-in list strategies; otherwise only `metadata`'s lists merge.
    keyed_lists: bool,
}

/// What the caller must do with a map after merging into it.
enum Outcome {
    Keep,
    /// `$patch: delete` asked for the map itself to go.
    Delete,
}

fn path_strs(path: &[String]) -> Vec<&str> {
    path.iter().map(String::as_str).collect()
}

fn dotted(path: &[String]) -> String {
    if path.is_empty() {
        "the object".to_string()
    } else {
        path.join(".")
    }
}

impl Merger<'_> {
    fn strategy(&self, path: &[String]) -> ListStrategy {
        let p = path_strs(path);
        if self.keyed_lists {
            builtin_list_strategy(self.kind, &p)
        } else {
            metadata_list_strategy(&p).unwrap_or(ListStrategy::Replace)
        }
    }

    fn merge_map(
        &self,
        target: &mut Map<String, Value>,
        patch: &Map<String, Value>,
        path: &mut Vec<String>,
    ) -> Result<Outcome, PatchError> {
        if self.directives {
            match patch.get("$patch") {
                None => {}
                Some(Value::String(s)) if s == "merge" => {}
                Some(Value::String(s)) if s == "delete" => return Ok(Outcome::Delete),
                Some(Value::String(s)) if s == "replace" => {
                    let mut fresh = Map::new();
                    let mut rest = patch.clone();
                    rest.remove("$patch");
                    self.merge_map(&mut fresh, &rest, path)?;
                    *target = fresh;
                    return Ok(Outcome::Keep);
                }
                Some(other) => {
                    return Err(PatchError::Unmergeable(format!(
                        "unknown patch directive $patch: {other} in {}",
                        dotted(path)
                    )));
                }
            }
            // Deletions from primitive lists come first, so the same patch may also add.
            for (k, v) in patch {
                if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
                    let Value::Array(gone) = v else {
                        return Err(PatchError::Unmergeable(format!(
                            "{k} in {} must be a list",
                            dotted(path)
                        )));
                    };
                    if let Some(Value::Array(live)) = target.get_mut(field) {
                        live.retain(|x| !gone.contains(x));
                    }
                }
            }
        }
        for (k, pv) in patch {
            if self.directives && k.starts_with('$') {
                if k == "$patch"
                    || k == "$retainKeys"
                    || k.starts_with("$deleteFromPrimitiveList/")
                    || k.starts_with("$setElementOrder/")
                {
                    continue;
                }
                return Err(PatchError::Unmergeable(format!(
                    "unknown patch directive {k} in {}",
                    dotted(path)
                )));
            }
            if pv.is_null() {
                target.remove(k);
                continue;
            }
            path.push(k.clone());
            let result = self.merge_field(target, k, pv, path);
            path.pop();
            result?;
        }
        if self.directives
            && let Some(retain) = patch.get("$retainKeys")
        {
            let Value::Array(keys) = retain else {
                return Err(PatchError::Unmergeable(format!(
                    "$retainKeys in {} must be a list of field names",
                    dotted(path)
                )));
            };
            let keys: Vec<&str> = keys.iter().filter_map(Value::as_str).collect();
            target.retain(|k, _| keys.contains(&k.as_str()));
        }
        Ok(Outcome::Keep)
    }

    fn merge_field(
        &self,
        target: &mut Map<String, Value>,
        key: &str,
        pv: &Value,
        path: &mut Vec<String>,
    ) -> Result<(), PatchError> {
        match pv {
            Value::Object(pm) => {
                let slot = target
                    .entry(key.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                let outcome = match slot {
                    Value::Object(tm) => self.merge_map(tm, pm, path)?,
                    _ => Outcome::Keep,
                };
                if let Outcome::Delete = outcome {
                    target.remove(key);
                }
            }
            Value::Array(pa) => {
                let slot = target
                    .entry(key.to_string())
                    .or_insert_with(|| Value::Array(Vec::new()));
                if !slot.is_array() {
                    *slot = Value::Array(Vec::new());
                }
                if let Value::Array(ta) = slot {
                    self.merge_list(ta, pa, path)?;
                }
            }
            scalar => {
                target.insert(key.to_string(), scalar.clone());
            }
        }
        Ok(())
    }

    /// A list element or value with directives interpreted and nulls dropped.
    fn clean(&self, v: &Value, path: &mut Vec<String>) -> Result<Option<Value>, PatchError> {
        match v {
            Value::Object(pm) => {
                let mut fresh = Map::new();
                match self.merge_map(&mut fresh, pm, path)? {
                    Outcome::Keep => Ok(Some(Value::Object(fresh))),
                    Outcome::Delete => Ok(None),
                }
            }
            other => Ok(Some(other.clone())),
        }
    }

    fn is_directive(&self, v: &Value, directive: &str) -> bool {
        self.directives && v.get("$patch").and_then(Value::as_str) == Some(directive)
    }

    fn merge_list(
        &self,
        target: &mut Vec<Value>,
        patch: &[Value],
        path: &mut Vec<String>,
    ) -> Result<(), PatchError> {
        let strategy = self.strategy(path);
        // `{"$patch": "replace"}` as an element replaces the whole list.
        let replace_all = patch.iter().any(|e| {
            self.is_directive(e, "replace") && e.as_object().is_some_and(|m| m.len() == 1)
        });
        if replace_all || strategy == ListStrategy::Replace {
            let mut out = Vec::with_capacity(patch.len());
            for e in patch {
                if self.directives
                    && e.as_object()
                        .is_some_and(|m| m.len() == 1 && m.contains_key("$patch"))
                {
                    continue;
                }
                if let Some(v) = self.clean(e, path)? {
                    out.push(v);
                }
            }
            *target = out;
            return Ok(());
        }
        match strategy {
            ListStrategy::Set => {
                for e in patch {
                    if e.is_object() || e.is_array() {
                        return Err(PatchError::Unmergeable(format!(
                            "{} is a list of values, but the patch has {e}",
                            dotted(path)
                        )));
                    }
                    if !target.contains(e) {
                        target.push(e.clone());
                    }
                }
            }
            ListStrategy::Key(key) => {
                for e in patch {
                    let Value::Object(pm) = e else {
                        return Err(PatchError::Unmergeable(format!(
                            "{} is a list of objects merged by {key:?}, but the patch has {e}",
                            dotted(path)
                        )));
                    };
                    let Some(kv) = pm.get(key) else {
                        return Err(PatchError::Unmergeable(format!(
                            "an item of {} does not contain its merge key {key:?}: {e}",
                            dotted(path)
                        )));
                    };
                    if self.is_directive(e, "delete") {
                        target.retain(|t| t.get(key) != Some(kv));
                        continue;
                    }
                    match target.iter_mut().find(|t| t.get(key) == Some(kv)) {
                        Some(Value::Object(tm)) => {
                            if let Outcome::Delete = self.merge_map(tm, pm, path)? {
                                target.retain(|t| t.get(key) != Some(kv));
                            }
                        }
                        Some(other) => {
                            if let Some(v) = self.clean(e, path)? {
                                *other = v;
                            }
                        }
                        None => {
                            if let Some(v) = self.clean(e, path)? {
                                target.push(v);
                            }
                        }
                    }
                }
            }
            ListStrategy::Replace => {}
        }
        Ok(())
    }
}

/// Applies a strategic merge patch to an object of the built-in `kind`
/// (e.g. `"Deployment"`): maps merge, `null` deletes, lists merge by their
/// patch merge key where Kubernetes declares one (containers, init and
/// ephemeral containers, volumes, imagePullSecrets by `name`; container
/// `ports` by `containerPort`; `env` by `name`; `volumeMounts` by `mountPath`;
/// Service `ports` by `port`; `status.conditions` by `type`;
/// `metadata.ownerReferences` by `uid`; `metadata.finalizers` as a set) and
/// are replaced otherwise (e.g. `tolerations`, `args`).
///
/// Directives: `$patch: delete` (on a list item: remove the item with that
/// key; on a map: remove the map), `$patch: replace` (on a map: replace it; as
/// a `{"$patch": "replace"}` list item: replace the list), `$retainKeys`,
/// `$deleteFromPrimitiveList/<field>`. `$setElementOrder/<field>` is accepted
/// and ignored (order is: live items first, new items appended).
///
/// For kinds this module does not know (custom resources) every list is
/// replaced; the apiserver itself refuses strategic merge patches for custom
/// resources, which is the caller's decision. On error `target` is unchanged.
pub fn strategic_merge_patch(
    target: &mut Value,
    patch: &Value,
    kind: &str,
) -> Result<(), PatchError> {
    let Value::Object(pm) = patch else {
        return Err(PatchError::Malformed(
            "a strategic merge patch must be a JSON object".to_string(),
        ));
    };
    let merger = Merger {
        kind,
        directives: true,
        keyed_lists: true,
    };
    let mut doc = match target {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    let outcome = merger.merge_map(&mut doc, pm, &mut Vec::new())?;
    *target = match outcome {
        Outcome::Keep => Value::Object(doc),
        Outcome::Delete => Value::Object(Map::new()),
    };
    Ok(())
}

/// Server-side apply, simplified: returns the object to store when the
/// configuration `applied` is applied over `live` (`None`: the object does
/// not exist yet, so it is created from `applied`).
///
/// The applied configuration is merged into the live object: maps merge
/// recursively, `null` removes a field, scalars replace. Lists merge by key
/// like [`strategic_merge_patch`] when `merge_lists_by_key` is true (pass it
/// for built-in kinds); otherwise (custom resources) each list in the applied
/// configuration replaces the live list whole, except `metadata.finalizers`
/// (a set) and `metadata.ownerReferences` (keyed by `uid`), which always merge.
/// `$patch`-style directives are not interpreted. `metadata.managedFields` in
/// the configuration is ignored.
///
/// Field ownership (what a later apply removes, and conflicts between managers)
/// is [`managed::server_side_apply`]'s: this is only the merge.
pub fn apply_patch(
    live: Option<&Value>,
    applied: &Value,
    kind: &str,
    merge_lists_by_key: bool,
) -> Result<Value, PatchError> {
    let Value::Object(config) = applied else {
        return Err(PatchError::Malformed(
            "an apply configuration must be an object".to_string(),
        ));
    };
    let mut config = config.clone();
    if let Some(Value::Object(meta)) = config.get_mut("metadata") {
        meta.remove("managedFields");
    }
    let mut doc = match live {
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            return Err(PatchError::Unmergeable(
                "the live object is not a JSON object".to_string(),
            ));
        }
        None => Map::new(),
    };
    let merger = Merger {
        kind,
        directives: false,
        keyed_lists: merge_lists_by_key,
    };
    merger.merge_map(&mut doc, &config, &mut Vec::new())?;
    Ok(Value::Object(doc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        // The examples of RFC 7386, appendix A.
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": "b", "b": "c"}),
                json!({"a": null}),
                json!({"b": "c"}),
            ),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a": "b"}), json!(["c"]), json!(["c"])),
            (json!({"a": "foo"}), json!(null), json!(null)),
            (json!({"a": "foo"}), json!("bar"), json!("bar")),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!([1, 2]),
                json!({"a": "b", "c": null}),
                json!({"a": "b"}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ];
        for (mut target, patch, want) in cases {
            merge_patch(&mut target, &patch);
            assert_eq!(target, want, "patch {patch}");
        }
    }

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}, "finalizers": ["a"]},
            "spec": {
                "replicas": 3,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [
                            {"name": "app", "image": "web:1",
                             "ports": [{"containerPort": 80, "name": "http"}],
                             "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                             "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
                            {"name": "sidecar", "image": "proxy:1"}
                        ],
                        "volumes": [{"name": "data", "emptyDir": {}}],
                        "tolerations": [{"key": "a", "operator": "Exists"}]
                    }
                }
            }
        })
    }

    #[test]
    fn json_patch_operations() {
        let mut d = json!({"spec": {"replicas": 1, "list": [1, 2, 3]}, "x~y": {"a/b": 1}});
        json_patch(
            &mut d,
            &json!([
                {"op": "test", "path": "/spec/replicas", "value": 1},
                {"op": "replace", "path": "/spec/replicas", "value": 5},
                {"op": "add", "path": "/spec/list/1", "value": 9},
                {"op": "add", "path": "/spec/list/-", "value": 4},
                {"op": "remove", "path": "/spec/list/0"},
                {"op": "copy", "from": "/spec/replicas", "path": "/spec/copied"},
                {"op": "move", "from": "/x~0y/a~1b", "path": "/moved"},
                {"op": "test", "path": "/spec/absent", "value": null}
            ]),
        )
        .unwrap();
        assert_eq!(
            d,
            json!({"spec": {"replicas": 5, "list": [9, 2, 3, 4], "copied": 5}, "x~y": {}, "moved": 1})
        );
    }

    #[test]
    fn json_patch_failures_name_the_operation_and_leave_target_unchanged() {
        let original = json!({"metadata": {"resourceVersion": "7"}, "spec": {"a": 1}});
        let mut d = original.clone();
        let err = json_patch(
            &mut d,
            &json!([
                {"op": "replace", "path": "/spec/a", "value": 2},
                {"op": "test", "path": "/metadata/resourceVersion", "value": "6"}
            ]),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"json patch operation 1 (test /metadata/resourceVersion) failed: the value is "7", not "6""#
        );
        assert_eq!(err.code(), 422);
        assert_eq!(d, original);

        let err = json_patch(&mut d, &json!([{"op": "remove", "path": "/spec/b"}])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "json patch operation 0 (remove /spec/b) failed: doc is missing key: b"
        );
        let err = json_patch(
            &mut d,
            &json!([{"op": "replace", "path": "/spec/b", "value": 1}]),
        )
        .unwrap_err();
        assert!(
            matches!(err, PatchError::OperationFailed { index: 0, .. }),
            "{err}"
        );
        let err = json_patch(
            &mut d,
            &json!([{"op": "add", "path": "/status/x", "value": 1}]),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "json patch operation 0 (add /status/x) failed: doc is missing path: /status"
        );
        let err = json_patch(
            &mut d,
            &json!([{"op": "test", "path": "/status/x", "value": null}]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("missing path: /status"), "{err}");
        let err = json_patch(
            &mut d,
            &json!([{"op": "add", "path": "/spec/l/5", "value": 1}]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("missing path: /spec/l"), "{err}");
    }

    #[test]
    fn json_patch_malformed_is_a_bad_request() {
        let mut d = json!({});
        for (patch, want) in [
            (
                json!({"op": "add"}),
                "a JSON patch must be a JSON array of operations",
            ),
            (
                json!([{"path": "/a"}]),
                "json patch operation 0: missing \"op\"",
            ),
            (
                json!([{"op": "add", "path": "/a"}]),
                "json patch operation 0: add needs a \"value\"",
            ),
            (
                json!([{"op": "jump", "path": "/a"}]),
                "json patch operation 0: unknown op \"jump\"",
            ),
            (
                json!([{"op": "remove", "path": "a"}]),
                "json patch operation 0: path \"a\" does not start with '/'",
            ),
            (
                json!([{"op": "move", "path": "/a"}]),
                "json patch operation 0: move needs a \"from\"",
            ),
        ] {
            let err = json_patch(&mut d, &patch).unwrap_err();
            assert_eq!(err.code(), 400, "{err}");
            assert_eq!(err.reason(), "BadRequest");
            assert_eq!(err.to_string(), format!("invalid patch: {want}"));
        }
    }

    #[test]
    fn json_patch_array_indices() {
        let mut d = json!({"l": [0, 1]});
        let err =
            json_patch(&mut d, &json!([{"op": "add", "path": "/l/3", "value": 1}])).unwrap_err();
        assert!(err.to_string().contains("out of bounds"), "{err}");
        let err = json_patch(
            &mut d,
            &json!([{"op": "replace", "path": "/l/01", "value": 1}]),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("invalid array index \"01\""),
            "{err}"
        );
        json_patch(&mut d, &json!([{"op": "add", "path": "/l/2", "value": 2}])).unwrap();
        json_patch(&mut d, &json!([{"op": "test", "path": "/l/2", "value": 2}])).unwrap();
        assert_eq!(d, json!({"l": [0, 1, 2]}));
        json_patch(
            &mut d,
            &json!([{"op": "move", "from": "/l/0", "path": "/l/-"}]),
        )
        .unwrap();
        assert_eq!(d, json!({"l": [1, 2, 0]}));
        let err = json_patch(
            &mut d,
            &json!([{"op": "move", "from": "/l", "path": "/l/0"}]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("into its own child"), "{err}");
    }

    #[test]
    fn strategic_patch_merges_containers_env_ports_and_mounts_by_key() {
        let mut d = deployment();
        strategic_merge_patch(
            &mut d,
            &json!({"spec": {"template": {"spec": {
                "containers": [{
                    "name": "app",
                    "image": "web:2",
                    "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}],
                    "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 9090, "name": "metrics"}],
                    "volumeMounts": [{"mountPath": "/cache", "name": "cache"}]
                }],
                "volumes": [{"name": "cache", "emptyDir": {}}],
                "tolerations": [{"key": "b", "operator": "Exists"}]
            }}}}),
            "Deployment",
        )
        .unwrap();
        let spec = &d["spec"]["template"]["spec"];
        assert_eq!(
            spec["containers"],
            json!([
                {"name": "app", "image": "web:2",
                 "ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"},
                           {"containerPort": 9090, "name": "metrics"}],
                 "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "20"}, {"name": "C", "value": "3"}],
                 "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"mountPath": "/cache", "name": "cache"}]},
                {"name": "sidecar", "image": "proxy:1"}
            ])
        );
        assert_eq!(
            spec["volumes"],
            json!([{"name": "data", "emptyDir": {}}, {"name": "cache", "emptyDir": {}}])
        );
        // tolerations have no merge key: replaced.
        assert_eq!(
            spec["tolerations"],
            json!([{"key": "b", "operator": "Exists"}])
        );
        assert_eq!(d["spec"]["replicas"], 3);
    }

    #[test]
    fn strategic_patch_directives() {
        let mut d = deployment();
        strategic_merge_patch(
            &mut d,
            &json!({
                "metadata": {"labels": {"app": null, "tier": "web"}, "finalizers": ["b"],
                             "$deleteFromPrimitiveList/finalizers": ["a"]},
                "spec": {
                    "strategy": {"$retainKeys": ["type"], "type": "Recreate"},
                    "template": {"spec": {
                        "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}],
                        "containers": [
                            {"name": "sidecar", "$patch": "delete"},
                            {"name": "app", "env": [{"name": "A", "$patch": "delete"}]}
                        ],
                        "volumes": [{"$patch": "replace"}, {"name": "fresh", "configMap": {"name": "c"}}]
                    }}
                }
            }),
            "Deployment",
        )
        .unwrap();
        assert_eq!(d["metadata"]["labels"], json!({"tier": "web"}));
        assert_eq!(d["metadata"]["finalizers"], json!(["b"]));
        assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
        let spec = &d["spec"]["template"]["spec"];
        assert_eq!(spec["containers"].as_array().unwrap().len(), 1);
        assert_eq!(
            spec["containers"][0]["env"],
            json!([{"name": "B", "value": "2"}])
        );
        assert_eq!(
            spec["volumes"],
            json!([{"name": "fresh", "configMap": {"name": "c"}}])
        );

        let mut d = deployment();
        strategic_merge_patch(
            &mut d,
            &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]},
                    "spec": {"strategy": {"$patch": "delete"},
                             "template": {"metadata": {"$patch": "replace", "labels": {"x": "y"}}}}}),
            "Deployment",
        )
        .unwrap();
        assert_eq!(d["metadata"]["finalizers"], json!([]));
        assert!(d["spec"].get("strategy").is_none());
        assert_eq!(
            d["spec"]["template"]["metadata"],
            json!({"labels": {"x": "y"}})
        );
    }

    #[test]
    fn strategic_patch_service_ports_conditions_and_owner_references() {
        let mut svc = json!({
            "kind": "Service",
            "metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]},
            "spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]},
            "status": {"conditions": [{"type": "Ready", "status": "False"}]}
        });
        strategic_merge_patch(
            &mut svc,
            &json!({
                "metadata": {"ownerReferences": [{"uid": "2", "name": "b"}]},
                "spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 443, "$patch": "delete"}]},
                "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Other", "status": "True"}]}
            }),
            "Service",
        )
        .unwrap();
        assert_eq!(
            svc["metadata"]["ownerReferences"],
            json!([{"uid": "1", "name": "a"}, {"uid": "2", "name": "b"}])
        );
        assert_eq!(
            svc["spec"]["ports"],
            json!([{"port": 80, "targetPort": 9090}])
        );
        assert_eq!(
            svc["status"]["conditions"],
            json!([{"type": "Ready", "status": "True"}, {"type": "Other", "status": "True"}])
        );
    }

    #[test]
    fn strategic_patch_for_unknown_kinds_replaces_lists() {
        let mut cr = json!({"spec": {"items": [{"name": "a"}], "containers": [{"name": "x"}]}});
        strategic_merge_patch(
            &mut cr,
            &json!({"spec": {"containers": [{"name": "y"}]}}),
            "Widget",
        )
        .unwrap();
        assert_eq!(cr["spec"]["containers"], json!([{"name": "y"}]));
        assert_eq!(cr["spec"]["items"], json!([{"name": "a"}]));
    }

    #[test]
    fn strategic_patch_errors() {
        let original = deployment();
        let mut d = original.clone();
        let err = strategic_merge_patch(
            &mut d,
            &json!({"spec": {"replicas": 1, "template": {"spec": {"containers": [{"image": "x"}]}}}}),
            "Deployment",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"an item of spec.template.spec.containers does not contain its merge key "name": {"image":"x"}"#
        );
        assert_eq!(err.code(), 422);
        assert_eq!(d, original, "a failed patch changes nothing");
        let err = strategic_merge_patch(
            &mut d,
            &json!({"spec": {"$patch": "explode"}}),
            "Deployment",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"unknown patch directive $patch: "explode" in spec"#
        );
        let err = strategic_merge_patch(&mut d, &json!({"metadata": {"$bogus": 1}}), "Deployment")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown patch directive $bogus in metadata"
        );
        let err = strategic_merge_patch(&mut d, &json!([1]), "Deployment").unwrap_err();
        assert_eq!(err.code(), 400);
        let err = strategic_merge_patch(
            &mut d,
            &json!({"metadata": {"finalizers": [{"a": 1}]}}),
            "Deployment",
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("metadata.finalizers is a list of values"),
            "{err}"
        );
    }

    #[test]
    fn strategic_patch_pod_and_cronjob_paths() {
        let mut pod = json!({"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]}});
        strategic_merge_patch(
            &mut pod,
            &json!({"spec": {"containers": [{"name": "b", "image": "2"}]}}),
            "Pod",
        )
        .unwrap();
        assert_eq!(pod["spec"]["containers"][0]["image"], "1");
        assert_eq!(pod["spec"]["containers"][1]["image"], "2");

        let mut cj = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {
            "initContainers": [{"name": "i", "image": "1"}]}}}}}});
        strategic_merge_patch(
            &mut cj,
            &json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {
                "initContainers": [{"name": "j", "image": "2"}]}}}}}}),
            "CronJob",
        )
        .unwrap();
        assert_eq!(
            cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["initContainers"],
            json!([{"name": "i", "image": "1"}, {"name": "j", "image": "2"}])
        );
    }

    #[test]
    fn apply_creates_and_merges() {
        let created = apply_patch(
            None,
            &json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "c", "managedFields": [{"manager": "x"}]},
                    "data": {"a": "1", "gone": null}}),
            "ConfigMap",
            true,
        )
        .unwrap();
        assert_eq!(
            created,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}})
        );

        let live = deployment();
        let applied = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "finalizers": ["b"]},
            "spec": {"replicas": 5, "template": {"spec": {"containers": [{"name": "app", "image": "web:3"}]}}}
        });
        let merged = apply_patch(Some(&live), &applied, "Deployment", true).unwrap();
        assert_eq!(merged["spec"]["replicas"], 5);
        assert_eq!(merged["metadata"]["finalizers"], json!(["a", "b"]));
        let containers = merged["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap();
        assert_eq!(containers.len(), 2, "keyed merge keeps the sidecar");
        assert_eq!(containers[0]["image"], "web:3");
        assert_eq!(
            containers[0]["env"][0]["name"], "A",
            "omitted fields are kept"
        );
        assert_eq!(merged["spec"]["strategy"], live["spec"]["strategy"]);
    }

    #[test]
    fn reapplying_a_webhook_configuration_keeps_a_ca_bundle_set_by_another_manager() {
        let chart = json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "ramp"},
            "webhooks": [
                {"name": "a.ramp.dev", "clientConfig": {"service": {"name": "ramp", "namespace": "ramp"}},
                 "failurePolicy": "Fail"},
                {"name": "b.ramp.dev", "clientConfig": {"service": {"name": "ramp", "namespace": "ramp"}}}
            ]
        });
        let mut live = chart.clone();
        live["webhooks"][0]["clientConfig"]["caBundle"] = json!("Q0E=");
        live["webhooks"][1]["clientConfig"]["caBundle"] = json!("Q0E=");
        let mut upgraded = chart.clone();
        upgraded["webhooks"][0]["failurePolicy"] = json!("Ignore");
        for kind in [
            "ValidatingWebhookConfiguration",
            "MutatingWebhookConfiguration",
        ] {
            let out = apply_patch(Some(&live), &upgraded, kind, true).unwrap();
            assert_eq!(out["webhooks"][0]["failurePolicy"], "Ignore");
            for i in 0..2 {
                assert_eq!(
                    out["webhooks"][i]["clientConfig"]["caBundle"], "Q0E=",
                    "{kind} {i}"
                );
            }
        }
    }

    #[test]
    fn apply_to_custom_resources_replaces_lists_whole() {
        let live = json!({"apiVersion": "x/v1", "kind": "Widget",
                          "metadata": {"name": "w", "finalizers": ["keep"]},
                          "spec": {"items": [{"name": "a"}, {"name": "b"}], "size": 1},
                          "status": {"phase": "Ready"}});
        let applied = json!({"apiVersion": "x/v1", "kind": "Widget",
                             "metadata": {"name": "w", "finalizers": ["mine"]},
                             "spec": {"items": [{"name": "c"}], "color": null, "size": null}});
        let merged = apply_patch(Some(&live), &applied, "Widget", false).unwrap();
        assert_eq!(merged["spec"], json!({"items": [{"name": "c"}]}));
        assert_eq!(merged["metadata"]["finalizers"], json!(["keep", "mine"]));
        assert_eq!(merged["status"], json!({"phase": "Ready"}));
        // Directives are plain data under apply.
        let applied = json!({"spec": {"$patch": "delete"}});
        let merged = apply_patch(Some(&live), &applied, "Widget", false).unwrap();
        assert_eq!(merged["spec"]["$patch"], "delete");
    }

    #[test]
    fn apply_errors() {
        let err = apply_patch(None, &json!("x"), "ConfigMap", true).unwrap_err();
        assert_eq!(err.code(), 400);
        let live = json!({"metadata": {"ownerReferences": [{"uid": "1"}]}});
        let err = apply_patch(
            Some(&live),
            &json!({"metadata": {"ownerReferences": [{"name": "no-uid"}]}}),
            "Widget",
            false,
        )
        .unwrap_err();
        assert!(err.to_string().contains("merge key \"uid\""), "{err}");
    }
}
