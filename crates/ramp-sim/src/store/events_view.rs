//! `events.k8s.io/v1` Events as a view of the core `v1` Events.
//!
//! A real kube-apiserver keeps one storage for Events and serves it through both APIs,
//! converting between them (`pkg/apis/events/v1` conversion). The sim does the same: the
//! `events.k8s.io` `events` resource has no table of its own. Each data entry point of the
//! [`Store`] (get, list, watch, create, update, patch, delete, deletecollection) hands requests
//! for it to the functions here, which convert request bodies to core Events, run the core
//! operation and convert what comes back: objects, list items, watch events (`previous`
//! included). An Event written through either API is seen by both, with the same name, uid
//! and resourceVersion; `kubectl describe` and `kubectl get events` (core `v1`) show Events
//! that kube-runtime's `Recorder` wrote through `events.k8s.io/v1`.
//!
//! - Fields: see [`RENAMES`]; metadata, `eventTime`, `series`, `action`, `reason`, `related`,
//!   `reportingInstance` and `type` have the same name in both APIs.
//! - Field selectors given to the view use its names (`regarding.name`, `reportingController`,
//!   `note`, ...) and are translated to the core names; a core name (`involvedObject.name`) is
//!   refused, as kube-apiserver does.
//! - Core field names in a body sent to the view are unknown fields of `events.k8s.io/v1`: they
//!   are dropped (with a warning; `fieldValidation=Strict` refuses the request), never taken
//!   for the core field.
//! - A patch through the view is applied to the view of the live core object, under the store's
//!   write lock, then converted back and written with the object's resourceVersion as a
//!   precondition (a stale resourceVersion in the patch itself is a conflict).
//! - Converted objects get a JSON cache of their own: the core object's cached bytes are never
//!   handed out as a view object.

use super::*;
use crate::selector::FieldRequirement;

/// The group of the view.
const GROUP: &str = "events.k8s.io";
/// `apiVersion` of the view's objects.
const API_VERSION: &str = "events.k8s.io/v1";
/// `apiVersion` of the core Events.
const CORE_API_VERSION: &str = "v1";

/// Top-level fields named differently in the two APIs: (`events.k8s.io/v1`, core `v1`).
pub(crate) const RENAMES: [(&str, &str); 7] = [
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
    ("reportingController", "reportingComponent"),
];

/// True for `events.k8s.io` `events`, the resource served as a view of core `events`.
pub(super) fn is_view(gr: &GroupResource) -> bool {
    gr.resource == "events" && gr.group == GROUP
}

fn core_gr() -> GroupResource {
    GroupResource::new("", "events")
}

fn view_gr() -> GroupResource {
    GroupResource::new(GROUP, "events")
}

fn view_name(core_field: &str) -> Option<&'static str> {
    RENAMES
        .iter()
        .find(|(_, c)| *c == core_field)
        .map(|(v, _)| *v)
}

fn core_name(view_field: &str) -> Option<&'static str> {
    RENAMES
        .iter()
        .find(|(v, _)| *v == view_field)
        .map(|(_, c)| *c)
}

/// A core `v1` Event as an `events.k8s.io/v1` Event. Fields that only exist in the view's
/// vocabulary (unknown fields of a core Event, which the sim keeps) are left out, so they
/// cannot shadow the converted ones.
pub(crate) fn core_to_view(core: &Value) -> Value {
    let Some(o) = core.as_object() else {
        return core.clone();
    };
    let mut out = Map::new();
    for (k, v) in o {
        if core_name(k).is_some() {
            continue;
        }
        let key = view_name(k).map_or_else(|| k.clone(), String::from);
        out.insert(key, v.clone());
    }
    out.insert("apiVersion".into(), json!(API_VERSION));
    out.insert("kind".into(), json!("Event"));
    Value::Object(out)
}

/// An `events.k8s.io/v1` Event as a core `v1` Event, and the core-only field names it carried
/// (unknown fields of `events.k8s.io/v1`, left out), sorted.
pub(crate) fn view_to_core(view: Value) -> (Value, Vec<String>) {
    let Value::Object(o) = view else {
        return (view, Vec::new());
    };
    let mut out = Map::new();
    let mut unknown = Vec::new();
    for (k, v) in o {
        if view_name(&k).is_some() {
            unknown.push(k);
            continue;
        }
        let key = core_name(&k).map_or(k, String::from);
        out.insert(key, v);
    }
    out.insert("apiVersion".into(), json!(CORE_API_VERSION));
    out.insert("kind".into(), json!("Event"));
    unknown.sort();
    (Value::Object(out), unknown)
}

fn view_arc(core: &Arc<Value>) -> Arc<Value> {
    Arc::new(core_to_view(core))
}

/// A dotted field path of the view as the core path (`regarding.name` → `involvedObject.name`);
/// a core-only name is refused.
fn core_path(field: &str) -> Result<String, String> {
    let (head, rest) = match field.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (field, None),
    };
    let join = |name: &str| match rest {
        Some(r) => format!("{name}.{r}"),
        None => name.to_string(),
    };
    if let Some(view) = view_name(head) {
        return Err(join(view));
    }
    Ok(core_name(head).map_or_else(|| field.to_string(), join))
}

/// A core dotted path in the view's names (`involvedObject.name` → `regarding.name`).
fn view_path(field: &str) -> String {
    let (head, rest) = match field.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (field, None),
    };
    match (view_name(head), rest) {
        (Some(v), Some(r)) => format!("{v}.{r}"),
        (Some(v), None) => v.to_string(),
        (None, _) => field.to_string(),
    }
}

/// A field selector given to the view, in core field names.
pub(crate) fn core_field_selector(selector: Option<&str>) -> ApiResult<Option<String>> {
    let Some(selector) = selector.filter(|s| !s.trim().is_empty()) else {
        return Ok(None);
    };
    let parsed = FieldSelector::parse(selector)
        .map_err(|e| ApiError::bad_request(format!("invalid field selector: {e}")))?;
    let mut terms = Vec::with_capacity(parsed.requirements().len());
    for r in parsed.requirements() {
        let field = core_path(&r.field).map_err(|view| {
            ApiError::bad_request(format!(
                "field label not supported: \"{}\" (events.k8s.io/v1 Events call it \"{view}\")",
                r.field
            ))
        })?;
        terms.push(
            FieldRequirement {
                field,
                negated: r.negated,
                value: r.value.clone(),
            }
            .to_string(),
        );
    }
    Ok(Some(terms.join(",")))
}

/// An error of the core operation as the view's: `events.events.k8s.io "x" not found`, group
/// `events.k8s.io`, causes in the view's field names.
fn view_error(mut e: ApiError) -> ApiError {
    if e.group.as_deref() != Some("") {
        return e;
    }
    let (from, to) = match e.kind.as_deref() {
        Some("events") => ("events \"", "events.events.k8s.io \""),
        Some("Event") => ("Event \"", "Event.events.k8s.io \""),
        _ => return e,
    };
    if e.message.starts_with(from) || e.message.contains(&format!(" {from}")) {
        e.message = e.message.replacen(from, to, 1);
    }
    e.group = Some(GROUP.to_string());
    for c in e.causes.iter_mut() {
        c.field = view_path(&c.field);
    }
    e
}

/// A watch event of the core table as the view's, with its own JSON cache.
fn view_watch_event(ev: &Arc<WatchEvent>) -> Arc<WatchEvent> {
    Arc::new(WatchEvent {
        kind: ev.kind,
        object: view_arc(&ev.object),
        previous: ev.previous.as_ref().map(view_arc),
        resource_version: ev.resource_version,
        json: JsonCell::default(),
        encoded: OnceLock::new(),
    })
}

/// A write's result as the view's, with the conversion's warnings first.
fn view_written(mut w: Written, mut warnings: Vec<String>) -> Written {
    w.object = view_arc(&w.object);
    warnings.append(&mut w.warnings);
    w.warnings = warnings;
    w
}

fn no_subresource(sub: Subresource, name: &str) -> ApiError {
    let sub = match sub {
        Subresource::Status => "status",
        Subresource::Scale => "scale",
    };
    ApiError::not_found(GROUP, &format!("events/{sub}"), name)
}

/// Checks a body sent to the view against the view's type and converts it; core-only field
/// names are warned about, or refused under `fieldValidation=Strict`.
fn body_to_core(
    rt: &ResourceType,
    body: Value,
    name: &str,
    opts: &WriteOptions,
) -> ApiResult<(Value, Vec<String>)> {
    check_kind(rt, &body)?;
    let (core, unknown) = view_to_core(body);
    if unknown.is_empty() {
        return Ok((core, Vec::new()));
    }
    let unknown: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    match opts.field_validation {
        FieldValidation::Strict => Err(ApiError::bad_request(format!(
            "{}.{} \"{name}\": strict decoding error: {}",
            rt.kind,
            rt.group,
            unknown.join(", ")
        ))
        .with_details(&rt.group, &rt.kind, name)),
        FieldValidation::Warn => Ok((core, unknown)),
        FieldValidation::Ignore => Ok((core, Vec::new())),
    }
}

impl Store {
    pub(super) fn view_get(&self, namespace: Option<&str>, name: &str) -> ApiResult<Arc<Value>> {
        self.get(&core_gr(), namespace, name)
            .map(|o| view_arc(&o))
            .map_err(view_error)
    }

    pub(super) fn view_list(
        &self,
        namespace: Option<&str>,
        opts: &ListOptions,
    ) -> ApiResult<ObjectList> {
        let opts = ListOptions {
            field_selector: core_field_selector(opts.field_selector.as_deref())?,
            ..opts.clone()
        };
        let list = self
            .list(&core_gr(), namespace, &opts)
            .map_err(view_error)?;
        let items: Vec<Arc<Value>> = list.items.iter().map(view_arc).collect();
        // One fresh cache per item (not one shared by all).
        let json = items.iter().map(|_| JsonCell::default()).collect();
        Ok(ObjectList {
            items,
            json,
            ..list
        })
    }

    pub(super) fn view_watch(
        &self,
        namespace: Option<&str>,
        opts: &WatchOptions,
    ) -> ApiResult<Watch> {
        let opts = WatchOptions {
            field_selector: core_field_selector(opts.field_selector.as_deref())?,
            ..opts.clone()
        };
        let mut w = self
            .watch(&core_gr(), namespace, &opts)
            .map_err(view_error)?;
        w.backlog = w
            .backlog
            .into_iter()
            .map(|d| Delivered {
                kind: d.kind,
                event: view_watch_event(&d.event),
            })
            .collect();
        w.convert = Some(view_watch_event);
        Ok(w)
    }

    pub(super) fn view_create(
        &self,
        namespace: Option<&str>,
        obj: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        let mut st = self.write();
        let rt = Self::stored_type(&st, &view_gr())?;
        let name = match meta_str(&obj, "name") {
            "" => meta_str(&obj, "generateName").to_string(),
            n => n.to_string(),
        };
        let (core, warnings) = body_to_core(&rt, obj, &name, opts)?;
        self.create_locked(&mut st, &core_gr(), namespace, core, opts)
            .map(|w| view_written(w, warnings))
            .map_err(view_error)
    }

    pub(super) fn view_update(
        &self,
        namespace: Option<&str>,
        name: &str,
        obj: Value,
        subresource: Option<Subresource>,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        if let Some(sub) = subresource {
            return Err(no_subresource(sub, name));
        }
        let mut st = self.write();
        let rt = Self::stored_type(&st, &view_gr())?;
        let (core, warnings) = body_to_core(&rt, obj, name, opts)?;
        self.update_locked(&mut st, &core_gr(), namespace, name, core, None, opts)
            .map(|w| view_written(w, warnings))
            .map_err(view_error)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn view_patch(
        &self,
        namespace: Option<&str>,
        name: &str,
        patch_type: PatchType,
        patch: &Value,
        subresource: Option<Subresource>,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        if let Some(sub) = subresource {
            return Err(no_subresource(sub, name));
        }
        // Read, patch and write under one write lock: nothing can change the Event in between.
        let mut st = self.write();
        let rt = Self::stored_type(&st, &view_gr())?;
        let ns = Self::scope_check(&rt, namespace)?;
        if patch_type == PatchType::Apply && opts.field_manager.as_deref().is_none_or(str::is_empty)
        {
            return Err(ApiError::bad_request(
                "PATCH requests with the apply content type require fieldManager to be set",
            ));
        }
        let current = st
            .tables
            .get(&core_gr())
            .and_then(|t| t.objects.get(&(ns, name.to_string())))
            .cloned();
        let Some(current) = current else {
            if patch_type != PatchType::Apply {
                return Err(ApiError::not_found(GROUP, "events", name));
            }
            // Server-side apply creates a missing Event.
            let mut obj = patch::apply_patch(None, patch, &rt.kind, true)
                .map_err(|e| ApiError::bad_request(format!("invalid apply patch: {e}")))?;
            let body_name = meta_str(&obj, "name");
            if !body_name.is_empty() && body_name != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({body_name}) does not match the name on the URL ({name})"
                )));
            }
            set_meta(&mut obj, "name", json!(name));
            let (core, warnings) = body_to_core(&rt, obj, name, opts)?;
            return self
                .create_locked(&mut st, &core_gr(), namespace, core, opts)
                .map(|w| view_written(w, warnings))
                .map_err(view_error);
        };
        let mut target = core_to_view(&current);
        apply_patch_document(&rt, name, &mut target, patch_type, patch, None)?;
        if meta_str(&target, "resourceVersion").is_empty() {
            set_meta(
                &mut target,
                "resourceVersion",
                json!(meta_str(&current, "resourceVersion")),
            );
        }
        let (core, warnings) = body_to_core(&rt, target, name, opts)?;
        self.update_locked(&mut st, &core_gr(), namespace, name, core, None, opts)
            .map(|w| view_written(w, warnings))
            .map_err(view_error)
    }

    pub(super) fn view_delete(
        &self,
        namespace: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<Deleted> {
        Ok(
            match self
                .delete(&core_gr(), namespace, name, opts)
                .map_err(view_error)?
            {
                Deleted::Gone(o) => Deleted::Gone(view_arc(&o)),
                Deleted::Pending(o) => Deleted::Pending(view_arc(&o)),
            },
        )
    }

    pub(super) fn view_delete_collection(
        &self,
        namespace: Option<&str>,
        list: &ListOptions,
        opts: &DeleteOptions,
    ) -> ApiResult<Vec<Arc<Value>>> {
        let list = ListOptions {
            field_selector: core_field_selector(list.field_selector.as_deref())?,
            ..list.clone()
        };
        self.delete_collection(&core_gr(), namespace, &list, opts)
            .map(|gone| gone.iter().map(view_arc).collect())
            .map_err(view_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::Cause;
    use pretty_assertions::assert_eq;

    #[test]
    fn conversion_renames_fields_both_ways_and_keeps_the_rest() {
        let view = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e", "labels": {"a": "b"}},
            "regarding": {"kind": "Pod", "name": "p"}, "note": "n",
            "deprecatedSource": {"component": "c"}, "deprecatedFirstTimestamp": "t1",
            "deprecatedLastTimestamp": "t2", "deprecatedCount": 3,
            "reportingController": "rc", "reportingInstance": "ri",
            "eventTime": "t0", "series": {"count": 2}, "action": "A", "reason": "R",
            "related": {"kind": "Node"}, "type": "Normal", "extra": {"kept": true},
        });
        let (core, unknown) = view_to_core(view.clone());
        assert!(unknown.is_empty());
        assert_eq!(
            core,
            json!({
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": "e", "labels": {"a": "b"}},
                "involvedObject": {"kind": "Pod", "name": "p"}, "message": "n",
                "source": {"component": "c"}, "firstTimestamp": "t1",
                "lastTimestamp": "t2", "count": 3,
                "reportingComponent": "rc", "reportingInstance": "ri",
                "eventTime": "t0", "series": {"count": 2}, "action": "A", "reason": "R",
                "related": {"kind": "Node"}, "type": "Normal", "extra": {"kept": true},
            })
        );
        assert_eq!(core_to_view(&core), view);
    }

    #[test]
    fn names_of_the_other_api_never_shadow_converted_fields() {
        let (core, unknown) =
            view_to_core(json!({"note": "right", "message": "wrong", "count": 1}));
        assert_eq!(core["message"], "right");
        assert!(core.get("count").is_none());
        assert_eq!(unknown, vec!["count", "message"]);
        let view = core_to_view(&json!({"message": "right", "note": "wrong", "regarding": {}}));
        assert_eq!(view["note"], "right");
        assert!(view.get("regarding").is_none());
    }

    #[test]
    fn field_selectors_are_translated_with_their_values_escaped() {
        let sel = core_field_selector(Some(
            "regarding.name=a\\,b,reportingController!=x,deprecatedSource.component==c,\
             note=n,deprecatedCount=2,type=Normal,metadata.name=e",
        ))
        .unwrap()
        .unwrap();
        assert_eq!(
            sel,
            "involvedObject.name=a\\,b,reportingComponent!=x,source.component=c,\
             message=n,count=2,type=Normal,metadata.name=e"
        );
        let parsed = FieldSelector::parse(&sel).unwrap();
        assert_eq!(parsed.required_value("involvedObject.name"), Some("a,b"));
        assert_eq!(core_field_selector(Some(" ")).unwrap(), None);
        assert_eq!(core_field_selector(None).unwrap(), None);
        let err = core_field_selector(Some("source.component=c")).unwrap_err();
        assert_eq!(
            err.message,
            "field label not supported: \"source.component\" (events.k8s.io/v1 Events call it \"deprecatedSource.component\")"
        );
        assert_eq!(core_field_selector(Some("a=b=c")).unwrap_err().code, 400);
    }

    #[test]
    fn errors_name_the_view() {
        let e = view_error(ApiError::invalid(
            "",
            "Event",
            "e",
            vec![Cause::new(
                "FieldValueRequired",
                "involvedObject.name",
                "Required value",
            )],
        ));
        assert_eq!(e.group.as_deref(), Some("events.k8s.io"));
        assert_eq!(e.causes[0].field, "regarding.name");
        assert!(
            e.message
                .starts_with("Event.events.k8s.io \"e\" is invalid"),
            "{}",
            e.message
        );
        let e = view_error(ApiError::not_found("", "namespaces", "nope"));
        assert_eq!(e.message, "namespaces \"nope\" not found");
        assert_eq!(e.group.as_deref(), Some(""));
    }
}
