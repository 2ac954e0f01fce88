//! Server-side apply field ownership (`metadata.managedFields`).
//!
//! Each manager's fields are a `FieldsV1` set, the format kube-apiserver
//! stores: nested maps of `f:<field>` (a map field), `k:{"name":"x"}` (a list
//! item by its merge key), `v:<json>` (an item of a set list) and `.` (the item
//! itself), with `{}` for a leaf. An apply
//!
//! - computes the set of the applied configuration;
//! - reports a conflict for each leaf it sets to a value different from the
//!   live one while another manager owns it (409, unless `force`, which takes
//!   the field over);
//! - removes from the object the fields this manager applied before, left out
//!   now, and owned by nobody else;
//! - merges the configuration into the object and records the set.
//!
//! A create that names a field manager records it as owning every field
//! (operation `Update`); a later non-apply write that names one, to an object
//! that has managed fields, records the leaves it changed for it, taking them
//! from the other managers. The work is proportional to the object's size.

use serde_json::{Map, Value, json};

use super::{ListStrategy, PatchError, builtin_list_strategy, metadata_list_strategy};

/// A field another manager owns and an apply would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The manager as kube-apiserver names it: `"alice"`, or `"bob" using v1` for an update.
    pub manager: String,
    /// The field, as `.spec.template.spec.containers[name="app"].image`.
    pub path: String,
}

/// Why a server-side apply failed.
#[derive(Debug, Clone, PartialEq)]
pub enum ApplyError {
    /// The configuration cannot be merged.
    Patch(PatchError),
    /// Fields owned by other managers would change (and `force` was not set).
    Conflicts(Vec<Conflict>),
}

impl ApplyError {
    /// kube-apiserver's message for conflicts (`Apply failed with N conflict(s): ...`).
    pub fn message(&self) -> String {
        match self {
            ApplyError::Patch(e) => e.to_string(),
            ApplyError::Conflicts(cs) => conflicts_message(cs),
        }
    }
}

/// `Apply failed with 1 conflict: conflict with "alice": .data.color`, or with several, the
/// conflicts grouped by manager, one `- path` line each.
pub fn conflicts_message(cs: &[Conflict]) -> String {
    let n = cs.len();
    let body = if n == 1 {
        format!("conflict with {}: {}", cs[0].manager, cs[0].path)
    } else {
        let mut managers: Vec<&str> = cs.iter().map(|c| c.manager.as_str()).collect();
        managers.sort_unstable();
        managers.dedup();
        let mut lines = Vec::new();
        for m in managers {
            lines.push(format!("conflicts with {m}:"));
            for c in cs.iter().filter(|c| c.manager == m) {
                lines.push(format!("- {}", c.path));
            }
        }
        lines.join("\n")
    };
    format!(
        "Apply failed with {n} conflict{}: {body}",
        if n == 1 { "" } else { "s" }
    )
}

/// Who applies or updates, and when.
#[derive(Debug, Clone, Copy)]
pub struct Writer<'a> {
    /// The field manager.
    pub manager: &'a str,
    /// The apiVersion the write used.
    pub api_version: &'a str,
    /// RFC 3339 time of the write.
    pub time: &'a str,
    /// The subresource written (`"scale"`), if any.
    pub subresource: Option<&'a str>,
}

struct Entry {
    raw: Map<String, Value>,
    set: Map<String, Value>,
}

impl Entry {
    fn manager(&self) -> &str {
        self.raw
            .get("manager")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
    fn operation(&self) -> &str {
        self.raw
            .get("operation")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
    fn subresource(&self) -> &str {
        self.raw
            .get("subresource")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
    fn display(&self) -> String {
        if self.operation() == "Apply" {
            format!("{:?}", self.manager())
        } else {
            let av = self
                .raw
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or_default();
            format!("{:?} using {av}", self.manager())
        }
    }
    fn into_value(mut self) -> Value {
        self.raw.insert("fieldsType".into(), json!("FieldsV1"));
        self.raw.insert("fieldsV1".into(), Value::Object(self.set));
        Value::Object(self.raw)
    }
}

fn entries(obj: Option<&Value>) -> Vec<Entry> {
    obj.and_then(|o| o.pointer("/metadata/managedFields"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let raw = e.as_object()?.clone();
            let set = raw
                .get("fieldsV1")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            raw.get("manager")?;
            Some(Entry { raw, set })
        })
        .collect()
}

fn store_entries(obj: &mut Value, list: Vec<Entry>) {
    let list: Vec<Value> = list
        .into_iter()
        .filter(|e| !e.set.is_empty())
        .map(Entry::into_value)
        .collect();
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            m.remove("managedFields");
        } else {
            m.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// Whether `obj` carries managed fields (only then are non-apply writes recorded).
pub fn has_managed_fields(obj: &Value) -> bool {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
}

// ---- field sets --------------------------------------------------------------------------

/// Metadata fields the server owns: never part of a manager's set.
const SYSTEM_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

struct Ctx<'a> {
    kind: &'a str,
    keyed: bool,
}

impl Ctx<'_> {
    fn strategy(&self, names: &[&str]) -> ListStrategy {
        if self.keyed {
            builtin_list_strategy(self.kind, names)
        } else {
            metadata_list_strategy(names).unwrap_or(ListStrategy::Replace)
        }
    }

    /// The field set of a whole object (main resource: `status` left out unless asked).
    fn object_set(&self, obj: &Value, with_status: bool) -> Map<String, Value> {
        let mut out = Map::new();
        let Some(o) = obj.as_object() else {
            return out;
        };
        for (k, v) in o {
            match k.as_str() {
                "apiVersion" | "kind" => {}
                "status" if !with_status => {}
                "metadata" => {
                    let Some(m) = v.as_object() else { continue };
                    let mut meta = Map::new();
                    for (mk, mv) in m {
                        if SYSTEM_METADATA.contains(&mk.as_str()) {
                            continue;
                        }
                        let mut names = vec!["metadata", mk.as_str()];
                        meta.insert(format!("f:{mk}"), self.value_set(mv, &mut names));
                    }
                    if !meta.is_empty() {
                        out.insert("f:metadata".into(), Value::Object(meta));
                    }
                }
                _ => {
                    let mut names = vec![k.as_str()];
                    out.insert(format!("f:{k}"), self.value_set(v, &mut names));
                }
            }
        }
        out
    }

    fn value_set<'v>(&self, v: &'v Value, names: &mut Vec<&'v str>) -> Value {
        match v {
            Value::Object(m) => {
                let mut out = Map::new();
                for (k, x) in m {
                    names.push(k);
                    out.insert(format!("f:{k}"), self.value_set(x, names));
                    names.pop();
                }
                Value::Object(out)
            }
            Value::Array(items) => match self.strategy(names) {
                ListStrategy::Replace => json!({}),
                ListStrategy::Set => {
                    let mut out = Map::new();
                    for x in items {
                        out.insert(format!("v:{x}"), json!({}));
                    }
                    Value::Object(out)
                }
                ListStrategy::Key(key) => {
                    let mut out = Map::new();
                    for x in items {
                        let Some(kv) = x.get(key) else {
                            return json!({});
                        };
                        let mut item = match self.value_set(x, names) {
                            Value::Object(m) => m,
                            _ => Map::new(),
                        };
                        item.insert(".".into(), json!({}));
                        out.insert(format!("k:{}", json!({ key: kv })), Value::Object(item));
                    }
                    Value::Object(out)
                }
            },
            _ => json!({}),
        }
    }
}

/// Every leaf of a set, as its path of keys.
fn leaves(set: &Map<String, Value>) -> Vec<Vec<String>> {
    fn walk(set: &Map<String, Value>, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        for (k, v) in set {
            prefix.push(k.clone());
            match v.as_object() {
                Some(m) if !m.is_empty() => walk(m, prefix, out),
                _ => out.push(prefix.clone()),
            }
            prefix.pop();
        }
    }
    let mut out = Vec::new();
    walk(set, &mut Vec::new(), &mut out);
    out
}

fn contains(set: &Map<String, Value>, path: &[String]) -> bool {
    let mut cur = set;
    for (i, k) in path.iter().enumerate() {
        match cur.get(k) {
            None => return false,
            Some(v) if i + 1 == path.len() => return v.is_object(),
            Some(v) => match v.as_object() {
                Some(m) => cur = m,
                None => return false,
            },
        }
    }
    true
}

/// Removes the node at `path` and the parents it leaves empty. True when `set` became empty.
fn remove_from_set(set: &mut Map<String, Value>, path: &[String]) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    if rest.is_empty() {
        set.remove(first);
    } else if let Some(child) = set.get_mut(first).and_then(Value::as_object_mut)
        && !child.is_empty()
        && remove_from_set(child, rest)
    {
        set.remove(first);
    }
    set.is_empty()
}

fn union(into: &mut Map<String, Value>, from: &Map<String, Value>) {
    for (k, v) in from {
        match (into.get_mut(k), v.as_object()) {
            (Some(Value::Object(a)), Some(b)) => {
                let a_leaf = a.is_empty();
                if !a_leaf && !b.is_empty() {
                    union(a, b);
                }
            }
            (None, _) => {
                into.insert(k.clone(), v.clone());
            }
            _ => {}
        }
    }
}

fn item_matches(item: &Value, key: &str) -> bool {
    if let Some(k) = key.strip_prefix("k:") {
        let Ok(Value::Object(want)) = serde_json::from_str::<Value>(k) else {
            return false;
        };
        want.iter().all(|(f, v)| item.get(f) == Some(v))
    } else if let Some(v) = key.strip_prefix("v:") {
        serde_json::from_str::<Value>(v).is_ok_and(|want| item == &want)
    } else {
        false
    }
}

fn get<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    for k in path {
        if k == "." {
            return Some(cur);
        }
        cur = if let Some(f) = k.strip_prefix("f:") {
            cur.get(f)?
        } else if let Some(i) = k.strip_prefix("i:") {
            cur.get(i.parse::<usize>().ok()?)?
        } else {
            cur.as_array()?.iter().find(|x| item_matches(x, k))?
        };
    }
    Some(cur)
}

fn remove_value(obj: &mut Value, path: &[String]) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    if last == "." {
        // The item itself: `parent` ends with its k:/v: key.
        remove_value(obj, parent);
        return;
    }
    let mut cur = obj;
    for k in parent {
        let next = if let Some(f) = k.strip_prefix("f:") {
            cur.get_mut(f)
        } else if let Some(i) = k.strip_prefix("i:") {
            i.parse::<usize>().ok().and_then(|i| cur.get_mut(i))
        } else {
            cur.as_array_mut()
                .and_then(|a| a.iter_mut().find(|x| item_matches(x, k)))
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(f) = last.strip_prefix("f:") {
        if let Some(m) = cur.as_object_mut() {
            m.remove(f);
        }
    } else if let Some(a) = cur.as_array_mut() {
        a.retain(|x| !item_matches(x, last));
    }
}

/// `.spec.containers[name="app"].image`.
fn display_path(path: &[String]) -> String {
    let mut out = String::new();
    for k in path {
        if let Some(f) = k.strip_prefix("f:") {
            out.push('.');
            out.push_str(f);
        } else if let Some(kv) = k.strip_prefix("k:") {
            let inner = serde_json::from_str::<Value>(kv)
                .ok()
                .and_then(|v| v.as_object().cloned())
                .map(|m| {
                    m.iter()
                        .map(|(f, v)| format!("{f}={v}"))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            out.push_str(&format!("[{inner}]"));
        } else if let Some(v) = k.strip_prefix("v:") {
            out.push_str(&format!("[={v}]"));
        } else if let Some(i) = k.strip_prefix("i:") {
            out.push_str(&format!("[{i}]"));
        }
    }
    out
}

fn new_entry(w: &Writer<'_>, operation: &str, set: Map<String, Value>) -> Entry {
    let mut raw = Map::new();
    raw.insert("manager".into(), json!(w.manager));
    raw.insert("operation".into(), json!(operation));
    raw.insert("apiVersion".into(), json!(w.api_version));
    raw.insert("time".into(), json!(w.time));
    if let Some(s) = w.subresource {
        raw.insert("subresource".into(), json!(s));
    }
    Entry { raw, set }
}

/// Server-side apply of `config` by `w.manager` over `live` (`None`: create), with
/// ownership: see the module documentation. Returns the object to store, with its
/// `managedFields`.
pub fn server_side_apply(
    live: Option<&Value>,
    config: &Value,
    kind: &str,
    keyed: bool,
    w: &Writer<'_>,
    force: bool,
) -> Result<Value, ApplyError> {
    let mut config = config.clone();
    if let Some(meta) = config.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    let ctx = Ctx { kind, keyed };
    let new_set = ctx.object_set(&config, false);
    let mut list = entries(live);
    let is_mine = |e: &Entry| e.manager() == w.manager && e.operation() == "Apply";
    let empty = Value::Null;
    let live_v = live.unwrap_or(&empty);

    let mut conflicts = Vec::new();
    let mut taken: Vec<(usize, Vec<String>)> = Vec::new();
    for leaf in leaves(&new_set) {
        if leaf.last().is_some_and(|k| k == ".") {
            continue;
        }
        let (Some(want), Some(have)) = (get(&config, &leaf), get(live_v, &leaf)) else {
            continue;
        };
        // Maps merge (an applied `{}` changes nothing); scalars and atomic lists replace.
        if want == have || want.is_object() {
            continue;
        }
        for (i, e) in list.iter().enumerate() {
            if !is_mine(e) && contains(&e.set, &leaf) {
                conflicts.push(Conflict {
                    manager: e.display(),
                    path: display_path(&leaf),
                });
                taken.push((i, leaf.clone()));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(ApplyError::Conflicts(conflicts));
    }
    for (i, leaf) in taken {
        remove_from_set(&mut list[i].set, &leaf);
    }

    // Fields this manager applied before and leaves out now: removed unless someone else
    // owns them.
    let mut doc = live.cloned().unwrap_or_else(|| json!({}));
    if let Some(mine) = list.iter().find(|e| is_mine(e)) {
        let others: Vec<&Map<String, Value>> = list
            .iter()
            .filter(|e| !is_mine(e))
            .map(|e| &e.set)
            .collect();
        for leaf in leaves(&mine.set) {
            if contains(&new_set, &leaf) {
                continue;
            }
            let owned_elsewhere = if leaf.last().is_some_and(|k| k == ".") {
                // The item goes only if nobody owns anything in it.
                let item = &leaf[..leaf.len() - 1];
                others.iter().any(|s| contains(s, item)) || contains(&new_set, item)
            } else {
                others.iter().any(|s| contains(s, &leaf))
            };
            if !owned_elsewhere {
                remove_value(&mut doc, &leaf);
            }
        }
    }
    let mut out =
        super::apply_patch(Some(&doc), &config, kind, keyed).map_err(ApplyError::Patch)?;
    list.retain(|e| !is_mine(e));
    list.push(new_entry(w, "Apply", new_set));
    store_entries(&mut out, list);
    Ok(out)
}

/// Records a non-apply write (operation `Update`) of `w.manager` that turned `old` into
/// `new`: the leaves it changed become its own and leave the other managers' sets; leaves
/// it removed leave every set. Only for objects that have managed fields (`new`'s, as the
/// client sent or kept them).
pub fn record_update(old: &Value, new: &mut Value, kind: &str, keyed: bool, w: &Writer<'_>) {
    if !has_managed_fields(new) {
        return;
    }
    let ctx = Ctx { kind, keyed };
    let with_status = w.subresource == Some("status");
    let new_set = ctx.object_set(new, with_status);
    let old_set = ctx.object_set(old, with_status);
    let mut changed = Map::new();
    let mut list = entries(Some(new));
    for leaf in leaves(&new_set) {
        if leaf.last().is_some_and(|k| k == ".") {
            continue;
        }
        if get(old, &leaf) != get(new, &leaf) {
            let mut one = Map::new();
            insert_path(&mut one, &leaf);
            union(&mut changed, &one);
            for e in &mut list {
                remove_from_set(&mut e.set, &leaf);
            }
        }
    }
    for leaf in leaves(&old_set) {
        if get(new, &leaf).is_none() {
            for e in &mut list {
                remove_from_set(&mut e.set, &leaf);
            }
        }
    }
    if !changed.is_empty() {
        let subresource = w.subresource.unwrap_or_default();
        match list.iter_mut().find(|e| {
            e.manager() == w.manager && e.operation() == "Update" && e.subresource() == subresource
        }) {
            Some(e) => {
                union(&mut e.set, &changed);
                e.raw.insert("time".into(), json!(w.time));
            }
            None => list.push(new_entry(w, "Update", changed)),
        }
    }
    store_entries(new, list);
}

/// Records a create (operation `Update`, as kube-apiserver names it) by `w.manager`: it owns
/// every field of the new object but its status. Nothing when the object already carries
/// managed fields (a create through apply).
pub fn record_create(obj: &mut Value, kind: &str, keyed: bool, w: &Writer<'_>) {
    if has_managed_fields(obj) {
        return;
    }
    let set = Ctx { kind, keyed }.object_set(obj, false);
    if set.is_empty() {
        return;
    }
    store_entries(obj, vec![new_entry(w, "Update", set)]);
}

fn insert_path(set: &mut Map<String, Value>, path: &[String]) {
    let mut cur = set;
    for k in path {
        cur = match cur
            .entry(k.clone())
            .or_insert_with(|| json!({}))
            .as_object_mut()
        {
            Some(m) => m,
            None => return,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(manager: &str) -> Writer<'_> {
        Writer {
            manager,
            api_version: "v1",
            time: "2025-01-01T00:00:00Z",
            subresource: None,
        }
    }

    fn managers(obj: &Value) -> Vec<(String, Value)> {
        obj["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["manager"].as_str().unwrap().to_string(),
                    e["fieldsV1"].clone(),
                )
            })
            .collect()
    }

    fn cm(data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": data})
    }

    #[test]
    fn a_field_dropped_by_the_same_manager_is_removed() {
        let one = server_side_apply(
            None,
            &cm(json!({"a": "1", "b": "2"})),
            "ConfigMap",
            true,
            &w("alice"),
            false,
        )
        .unwrap();
        assert_eq!(
            managers(&one),
            [(
                "alice".to_string(),
                json!({"f:data": {"f:a": {}, "f:b": {}}})
            )]
        );
        let two = server_side_apply(
            Some(&one),
            &cm(json!({"a": "1"})),
            "ConfigMap",
            true,
            &w("alice"),
            false,
        )
        .unwrap();
        assert_eq!(two["data"], json!({"a": "1"}));
        assert_eq!(
            managers(&two),
            [("alice".to_string(), json!({"f:data": {"f:a": {}}}))]
        );
    }

    #[test]
    fn another_managers_field_conflicts_unless_forced_and_is_then_taken_over() {
        let one = server_side_apply(
            None,
            &cm(json!({"a": "1", "b": "2"})),
            "ConfigMap",
            true,
            &w("alice"),
            false,
        )
        .unwrap();
        // The same value is shared ownership, not a conflict.
        let shared = server_side_apply(
            Some(&one),
            &cm(json!({"a": "1"})),
            "ConfigMap",
            true,
            &w("bob"),
            false,
        )
        .unwrap();
        assert_eq!(managers(&shared).len(), 2);
        let err = server_side_apply(
            Some(&one),
            &cm(json!({"a": "9", "b": "8"})),
            "ConfigMap",
            true,
            &w("bob"),
            false,
        )
        .unwrap_err();
        assert_eq!(
            err.message(),
            "Apply failed with 2 conflicts: conflicts with \"alice\":\n- .data.a\n- .data.b"
        );
        let err = server_side_apply(
            Some(&one),
            &cm(json!({"a": "9"})),
            "ConfigMap",
            true,
            &w("bob"),
            false,
        )
        .unwrap_err();
        assert_eq!(
            err.message(),
            "Apply failed with 1 conflict: conflict with \"alice\": .data.a"
        );
        let forced = server_side_apply(
            Some(&one),
            &cm(json!({"a": "9"})),
            "ConfigMap",
            true,
            &w("bob"),
            true,
        )
        .unwrap();
        assert_eq!(forced["data"], json!({"a": "9", "b": "2"}));
        assert_eq!(
            managers(&forced),
            [
                ("alice".to_string(), json!({"f:data": {"f:b": {}}})),
                ("bob".to_string(), json!({"f:data": {"f:a": {}}}))
            ]
        );
        // alice no longer owns a: dropping it from her configuration keeps bob's value.
        let after = server_side_apply(
            Some(&forced),
            &cm(json!({"b": "2"})),
            "ConfigMap",
            true,
            &w("alice"),
            false,
        )
        .unwrap();
        assert_eq!(after["data"], json!({"a": "9", "b": "2"}));
    }

    #[test]
    fn list_items_by_merge_key_and_updates_by_other_writers() {
        let deploy = |containers: Value| {
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                   "spec": {"replicas": 2, "template": {"spec": {"containers": containers}}}})
        };
        let one = server_side_apply(
            None,
            &deploy(json!([{"name": "app", "image": "a:1"}, {"name": "side", "image": "s:1"}])),
            "Deployment",
            true,
            &w("alice"),
            false,
        )
        .unwrap();
        let set = &managers(&one)[0].1;
        assert_eq!(
            set["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"side\"}"],
            json!({".": {}, "f:name": {}, "f:image": {}})
        );
        // Dropping a container removes it.
        let two = server_side_apply(
            Some(&one),
            &deploy(json!([{"name": "app", "image": "a:1"}])),
            "Deployment",
            true,
            &w("alice"),
            false,
        )
        .unwrap();
        assert_eq!(
            two["spec"]["template"]["spec"]["containers"],
            json!([{"name": "app", "image": "a:1"}])
        );
        // An update by another manager takes the field over.
        let mut scaled = two.clone();
        scaled["spec"]["replicas"] = json!(5);
        let upd = Writer {
            subresource: Some("scale"),
            ..w("kubectl-scale")
        };
        record_update(&two, &mut scaled, "Deployment", true, &upd);
        let ms = managers(&scaled);
        assert_eq!(
            ms[1],
            (
                "kubectl-scale".to_string(),
                json!({"f:spec": {"f:replicas": {}}})
            )
        );
        assert_eq!(
            scaled["metadata"]["managedFields"][1]["operation"],
            "Update"
        );
        let err = server_side_apply(
            Some(&scaled),
            &deploy(json!([{"name": "app", "image": "a:2"}])),
            "Deployment",
            true,
            &w("alice"),
            false,
        )
        .unwrap_err();
        assert_eq!(
            err.message(),
            "Apply failed with 1 conflict: conflict with \"kubectl-scale\" using v1: .spec.replicas"
        );
    }
}
