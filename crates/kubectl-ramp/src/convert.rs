//! `convert`: OpenKruise Rollouts (`rollouts.kruise.io/v1beta1`, and the
//! older `v1alpha1`) to ramp Rollouts (`rollouts.ramp.dev/v1beta1`).
//!
//! The conversion walks the Kruise object field by field; every field it does
//! not carry over is reported with its path, so nothing is dropped silently.
//! The result must pass `ramp_api::validate_rollout`.

use ramp_api::validation::network_ref_kind;
use ramp_api::{CustomNetworkRef, Rollout, validate_rollout};
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};

/// A finding about a field that was not carried over as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Field path in the Kruise object, e.g. `spec.strategy.canary.failureThreshold`.
    pub path: String,
    /// What happened to it.
    pub message: String,
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// The outcome of converting a manifest.
#[derive(Debug, Clone)]
pub struct Converted {
    /// The output YAML (one document per input document).
    pub yaml: String,
    /// The converted ramp Rollouts, in order.
    pub rollouts: Vec<Rollout>,
    /// Everything not carried over, prefixed with the document it came from.
    pub notes: Vec<String>,
}

const KRUISE_GROUP: &str = "rollouts.kruise.io";

/// Server-written metadata that never belongs in a manifest.
const SERVER_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// A JSON object being consumed; whatever is left at the end is reported.
struct Obj<'a> {
    path: String,
    map: Map<String, Value>,
    notes: &'a mut Vec<Note>,
}

impl<'a> Obj<'a> {
    fn new(path: impl Into<String>, v: &Value, notes: &'a mut Vec<Note>) -> Result<Self> {
        let path = path.into();
        match v {
            Value::Object(m) => Ok(Obj {
                path,
                map: m.clone(),
                notes,
            }),
            other => Err(Error::Invalid(format!(
                "{path}: expected an object, got {}",
                type_name(other)
            ))),
        }
    }

    fn at(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn take(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key).filter(|v| !v.is_null())
    }

    fn note(&mut self, path: String, message: impl Into<String>) {
        self.notes.push(Note {
            path,
            message: message.into(),
        });
    }

    /// Drops `key`, reporting it when present.
    fn unsupported(&mut self, key: &str, why: &str) {
        if let Some(v) = self.take(key)
            && !is_empty(&v)
        {
            let p = self.at(key);
            self.note(p, format!("not supported by ramp ({why}); dropped"));
        }
    }

    /// Reports every field not consumed.
    fn finish(mut self) {
        let left: Vec<(String, Value)> = std::mem::take(&mut self.map).into_iter().collect();
        for (k, v) in left {
            if !v.is_null() {
                let p = self.at(&k);
                self.note(p, "not supported by ramp; dropped");
            }
        }
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn array(path: &str, v: Option<Value>) -> Result<Vec<Value>> {
    match v {
        None => Ok(Vec::new()),
        Some(Value::Array(a)) => Ok(a),
        Some(other) => Err(Error::Invalid(format!(
            "{path}: expected a list, got {}",
            type_name(&other)
        ))),
    }
}

/// Which Kruise API a document is, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KruiseVersion {
    V1beta1,
    V1alpha1,
}

fn kruise_version(doc: &Value) -> Option<KruiseVersion> {
    if doc.get("kind").and_then(Value::as_str) != Some("Rollout") {
        return None;
    }
    match doc.get("apiVersion").and_then(Value::as_str)? {
        v if v == format!("{KRUISE_GROUP}/v1beta1") => Some(KruiseVersion::V1beta1),
        v if v == format!("{KRUISE_GROUP}/v1alpha1") => Some(KruiseVersion::V1alpha1),
        _ => None,
    }
}

/// Converts one Kruise Rollout document.
fn convert_rollout(doc: &Value, version: KruiseVersion, notes: &mut Vec<Note>) -> Result<Rollout> {
    let mut top = Obj::new("", doc, notes)?;
    top.take("apiVersion");
    top.take("kind");
    top.take("status");
    let metadata = convert_metadata(top.take("metadata"), top.notes)?;
    let spec = match top.take("spec") {
        Some(s) => convert_spec(&s, version, top.notes)?,
        None => return Err(Error::Invalid("spec: required".into())),
    };
    top.finish();
    let out = json!({
        "apiVersion": format!("{}/{}", ramp_api::names::GROUP, ramp_api::names::VERSION),
        "kind": "Rollout",
        "metadata": metadata,
        "spec": spec,
    });
    serde_json::from_value(out).map_err(|e| Error::Invalid(format!("the converted Rollout: {e}")))
}

fn convert_metadata(v: Option<Value>, notes: &mut Vec<Note>) -> Result<Value> {
    let Some(v) = v else {
        return Err(Error::Invalid("metadata.name: required".into()));
    };
    let mut m = Obj::new("metadata", &v, notes)?;
    let mut out = Map::new();
    for k in ["name", "namespace", "generateName", "labels"] {
        if let Some(x) = m.take(k) {
            out.insert(k.into(), x);
        }
    }
    for k in SERVER_METADATA {
        m.take(k);
    }
    if let Some(Value::Object(ann)) = m.take("annotations") {
        let mut kept = Map::new();
        for (k, val) in ann {
            if k == "kubectl.kubernetes.io/last-applied-configuration" {
                continue;
            }
            if k.starts_with(&format!("{KRUISE_GROUP}/")) {
                let msg = if k == "rollouts.kruise.io/rolling-style" {
                    format!(
                        "{val}: ramp always runs the canary as a separate `<workload>-canary` Deployment; dropped"
                    )
                } else if k == "rollouts.kruise.io/trafficrouting" {
                    format!(
                        "{val}: binds the Rollout to a standalone TrafficRouting, which ramp does not have: put its routing in spec.strategy.canary.trafficRoutings; dropped"
                    )
                } else {
                    "an OpenKruise annotation ramp does not read; dropped".into()
                };
                m.note(format!("metadata.annotations[{k}]"), msg);
                continue;
            }
            kept.insert(k, val);
        }
        if !kept.is_empty() {
            out.insert("annotations".into(), Value::Object(kept));
        }
    }
    if let Some(Value::Array(fins)) = m.take("finalizers") {
        let kept: Vec<Value> = fins
            .into_iter()
            .filter(|f| {
                !f.as_str()
                    .is_some_and(|s| s.starts_with(&format!("{KRUISE_GROUP}/")))
            })
            .collect();
        if !kept.is_empty() {
            out.insert("finalizers".into(), Value::Array(kept));
        }
    }
    m.unsupported(
        "ownerReferences",
        "the owners are OpenKruise objects' owners",
    );
    m.finish();
    if !out.contains_key("name") && !out.contains_key("generateName") {
        return Err(Error::Invalid("metadata.name: required".into()));
    }
    Ok(Value::Object(out))
}

fn convert_spec(v: &Value, version: KruiseVersion, notes: &mut Vec<Note>) -> Result<Value> {
    let mut s = Obj::new("spec", v, notes)?;
    let mut out = Map::new();
    let workload = match version {
        KruiseVersion::V1beta1 => s.take("workloadRef"),
        KruiseVersion::V1alpha1 => match s.take("objectRef") {
            Some(o) => {
                let mut o = Obj::new("spec.objectRef", &o, s.notes)?;
                let w = o.take("workloadRef");
                o.finish();
                w
            }
            None => None,
        },
    };
    let Some(workload) = workload else {
        let path = match version {
            KruiseVersion::V1beta1 => "spec.workloadRef",
            KruiseVersion::V1alpha1 => "spec.objectRef.workloadRef",
        };
        return Err(Error::Invalid(format!("{path}: required")));
    };
    let wpath = match version {
        KruiseVersion::V1beta1 => "spec.workloadRef",
        KruiseVersion::V1alpha1 => "spec.objectRef.workloadRef",
    };
    let mut w = Obj::new(wpath, &workload, s.notes)?;
    let mut wout = Map::new();
    for k in ["apiVersion", "kind", "name"] {
        if let Some(x) = w.take(k) {
            wout.insert(k.into(), x);
        }
    }
    w.finish();
    out.insert("workloadRef".into(), Value::Object(wout));

    if let Some(d) = s.take("disabled") {
        out.insert("disabled".into(), d);
    }
    s.unsupported(
        "trafficRoutingRef",
        "ramp's routing is set in spec.strategy.canary.trafficRoutings",
    );
    s.unsupported(
        "rolloutID",
        "deprecated in OpenKruise; ramp tracks revisions itself",
    );
    if let Some(st) = s.take("strategy") {
        out.insert("strategy".into(), convert_strategy(&st, version, s.notes)?);
    } else {
        return Err(Error::Invalid("spec.strategy: required".into()));
    }
    s.finish();
    Ok(Value::Object(out))
}

fn convert_strategy(v: &Value, version: KruiseVersion, notes: &mut Vec<Note>) -> Result<Value> {
    let mut s = Obj::new("spec.strategy", v, notes)?;
    let mut out = Map::new();
    if let Some(p) = s.take("paused") {
        out.insert("paused".into(), p);
    }
    s.unsupported("blueGreen", "ramp rolls out with a canary strategy only");
    if let Some(c) = s.take("canary") {
        out.insert("canary".into(), convert_canary(&c, version, s.notes)?);
    }
    s.finish();
    Ok(Value::Object(out))
}

fn convert_canary(v: &Value, version: KruiseVersion, notes: &mut Vec<Note>) -> Result<Value> {
    let mut c = Obj::new("spec.strategy.canary", v, notes)?;
    let mut out = Map::new();

    let extra = c.take("enableExtraWorkloadForCanary");
    if version == KruiseVersion::V1beta1 && extra.as_ref().and_then(Value::as_bool) != Some(true) {
        let p = c.at("enableExtraWorkloadForCanary");
        let how = if extra.is_some() {
            "false"
        } else {
            "absent (OpenKruise's default is false)"
        };
        c.note(
            p,
            format!(
                "{how}: OpenKruise would roll the Deployment's own pods in batches; ramp always runs the canary as a separate `<workload>-canary` Deployment"
            ),
        );
    }

    let steps_path = c.at("steps");
    let steps = array(&steps_path, c.take("steps"))?;
    let mut steps_out = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        steps_out.push(convert_step(
            &format!("{steps_path}[{i}]"),
            step,
            version,
            c.notes,
        )?);
    }
    out.insert("steps".into(), Value::Array(steps_out));

    let tr_path = c.at("trafficRoutings");
    let routings = array(&tr_path, c.take("trafficRoutings"))?;
    let mut routings_out = Vec::new();
    for (i, r) in routings.iter().enumerate() {
        routings_out.push(convert_routing(&format!("{tr_path}[{i}]"), r, c.notes)?);
    }
    out.insert("trafficRoutings".into(), Value::Array(routings_out));

    c.unsupported(
        "failureThreshold",
        "ramp waits at StepUpgrade until every canary pod is ready",
    );
    c.unsupported(
        "patchPodTemplateMetadata",
        "the canary Deployment gets the workload's pod template unchanged",
    );
    c.unsupported(
        "disableGenerateCanaryService",
        "ramp always creates the `<service>-canary` Service",
    );
    c.finish();
    Ok(Value::Object(out))
}

fn convert_step(
    path: &str,
    v: &Value,
    version: KruiseVersion,
    notes: &mut Vec<Note>,
) -> Result<Value> {
    let mut s = Obj::new(path, v, notes)?;
    let mut out = Map::new();
    match version {
        KruiseVersion::V1beta1 => {
            if let Some(t) = s.take("traffic") {
                let t = match t {
                    Value::Number(n) => Value::String(format!("{n}%")),
                    other => other,
                };
                out.insert("traffic".into(), t);
            }
        }
        KruiseVersion::V1alpha1 => {
            if let Some(w) = s.take("weight") {
                let Some(n) = w.as_i64() else {
                    return Err(Error::Invalid(format!(
                        "{path}.weight: expected a number, got {}",
                        type_name(&w)
                    )));
                };
                out.insert("traffic".into(), Value::String(format!("{n}%")));
            }
        }
    }
    if let Some(r) = s.take("replicas") {
        out.insert("replicas".into(), r);
    }
    if let Some(p) = s.take("pause") {
        let mut po = Obj::new(format!("{path}.pause"), &p, s.notes)?;
        let mut pout = Map::new();
        if let Some(d) = po.take("duration") {
            pout.insert("duration".into(), d);
        }
        po.finish();
        out.insert("pause".into(), Value::Object(pout));
    }
    let matches = array(&format!("{path}.matches"), s.take("matches"))?;
    if !matches.is_empty() {
        let mut mout = Vec::new();
        for (j, m) in matches.iter().enumerate() {
            mout.push(convert_match(&format!("{path}.matches[{j}]"), m, s.notes)?);
        }
        out.insert("matches".into(), Value::Array(mout));
    }
    if let Some(h) = s.take("requestHeaderModifier") {
        out.insert(
            "requestHeaderModifier".into(),
            convert_header_modifier(&format!("{path}.requestHeaderModifier"), &h, s.notes)?,
        );
    }
    s.finish();
    Ok(Value::Object(out))
}

/// A Gateway API `HTTPHeaderFilter` (`set`/`add` of `{name, value}`, `remove`
/// of names), the shape both OpenKruise and ramp use.
fn convert_header_modifier(path: &str, v: &Value, notes: &mut Vec<Note>) -> Result<Value> {
    let mut h = Obj::new(path, v, notes)?;
    let mut out = Map::new();
    for key in ["set", "add"] {
        let list = array(&format!("{path}.{key}"), h.take(key))?;
        if list.is_empty() {
            continue;
        }
        let mut entries = Vec::new();
        for (k, e) in list.iter().enumerate() {
            let mut e = Obj::new(format!("{path}.{key}[{k}]"), e, h.notes)?;
            let mut eout = Map::new();
            for f in ["name", "value"] {
                if let Some(x) = e.take(f) {
                    eout.insert(f.into(), x);
                }
            }
            e.finish();
            entries.push(Value::Object(eout));
        }
        out.insert(key.into(), Value::Array(entries));
    }
    let remove = array(&format!("{path}.remove"), h.take("remove"))?;
    if !remove.is_empty() {
        out.insert("remove".into(), Value::Array(remove));
    }
    h.finish();
    Ok(Value::Object(out))
}

fn convert_match(path: &str, v: &Value, notes: &mut Vec<Note>) -> Result<Value> {
    let mut m = Obj::new(path, v, notes)?;
    let mut out = Map::new();
    for key in ["headers", "queryParams"] {
        let list = array(&format!("{path}.{key}"), m.take(key))?;
        if list.is_empty() {
            continue;
        }
        let mut conds = Vec::new();
        for (k, h) in list.iter().enumerate() {
            let mut h = Obj::new(format!("{path}.{key}[{k}]"), h, m.notes)?;
            let mut hout = Map::new();
            for f in ["type", "name", "value"] {
                if let Some(x) = h.take(f) {
                    hout.insert(f.into(), x);
                }
            }
            h.finish();
            conds.push(Value::Object(hout));
        }
        out.insert(key.into(), Value::Array(conds));
    }
    if let Some(p) = m.take("path") {
        let mut po = Obj::new(format!("{path}.path"), &p, m.notes)?;
        let mut pout = Map::new();
        for f in ["type", "value"] {
            if let Some(x) = po.take(f) {
                pout.insert(f.into(), x);
            }
        }
        po.finish();
        out.insert("path".into(), Value::Object(pout));
    }
    m.finish();
    Ok(Value::Object(out))
}

fn convert_routing(path: &str, v: &Value, notes: &mut Vec<Note>) -> Result<Value> {
    let mut r = Obj::new(path, v, notes)?;
    let mut out = Map::new();
    for k in ["service", "gracePeriodSeconds"] {
        if let Some(x) = r.take(k) {
            out.insert(k.into(), x);
        }
    }
    let refs_path = format!("{path}.customNetworkRefs");
    let refs = array(&refs_path, r.take("customNetworkRefs"))?;
    let mut refs_out = Vec::new();
    for (i, nref) in refs.iter().enumerate() {
        let p = format!("{refs_path}[{i}]");
        let mut o = Obj::new(p.clone(), nref, r.notes)?;
        let mut rout = Map::new();
        for f in ["apiVersion", "kind", "name"] {
            if let Some(x) = o.take(f) {
                rout.insert(f.into(), x);
            }
        }
        o.finish();
        let rout = Value::Object(rout);
        let parsed: Option<CustomNetworkRef> = serde_json::from_value(rout.clone()).ok();
        match parsed {
            Some(n) if network_ref_kind(&n).is_none() => r.note(
                p,
                format!(
                    "{} {} {:?}: OpenKruise changes this kind with a Lua custom script (the `lua.traffic.routing.{}.{}` key of its kruise-rollout-configuration ConfigMap); ramp runs no Lua scripts and changes only Istio VirtualServices and DestinationRules and Gateway API HTTPRoutes; dropped",
                    n.api_version,
                    n.kind,
                    n.name,
                    n.kind,
                    n.api_version.split('/').next().unwrap_or_default()
                ),
            ),
            _ => refs_out.push(rout),
        }
    }
    out.insert("customNetworkRefs".into(), Value::Array(refs_out));
    if let Some(g) = r.take("gateway") {
        let mut go = Obj::new(format!("{path}.gateway"), &g, r.notes)?;
        let mut gout = Map::new();
        if let Some(name) = go.take("httpRouteName") {
            gout.insert("httpRouteName".into(), name);
        }
        go.finish();
        if !gout.is_empty() {
            out.insert("gateway".into(), Value::Object(gout));
        }
    }
    if let Some(ing) = r.take("ingress")
        && !is_empty(&ing)
    {
        let class = ing
            .get("classType")
            .and_then(Value::as_str)
            .unwrap_or("nginx");
        let name = ing.get("name").and_then(Value::as_str).unwrap_or("?");
        let p = format!("{path}.ingress");
        r.note(
            p,
            format!(
                "the {class} Ingress provider (Ingress {name:?}) is not supported: ramp changes Istio VirtualServices and DestinationRules and Gateway API HTTPRoutes, not Ingresses or their canary annotations; dropped"
            ),
        );
    }
    r.unsupported("createOverlayIngress", "ramp changes no Ingresses");
    r.finish();
    Ok(Value::Object(out))
}

/// Converts every OpenKruise Rollout in a (multi-document) YAML manifest.
/// Other documents are copied unchanged, with a note. Fails when a converted
/// Rollout does not pass ramp's validation, listing every problem.
pub fn convert_manifest(source: &str, text: &str) -> Result<Converted> {
    use serde::Deserialize;
    let mut docs_out = Vec::new();
    let mut rollouts = Vec::new();
    let mut notes_out = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let doc = Value::deserialize(de)
            .map_err(|e| Error::Invalid(format!("{source}: document {}: {e}", i + 1)))?;
        if doc.is_null() {
            continue;
        }
        let label = describe_doc(&doc, i + 1);
        if let Some(why) = dropped_document(&doc) {
            notes_out.push(format!("{source}: {label}: {why}; dropped"));
            continue;
        }
        let Some(version) = kruise_version(&doc) else {
            notes_out.push(format!(
                "{source}: {label} is not an OpenKruise Rollout; copied unchanged"
            ));
            docs_out.push(
                serde_yaml::to_string(&doc).map_err(|e| Error::Io(format!("writing YAML: {e}")))?,
            );
            continue;
        };
        let mut notes = Vec::new();
        let ro = convert_rollout(&doc, version, &mut notes)
            .map_err(|e| Error::Invalid(format!("{source}: {label}: {e}")))?;
        notes_out.extend(notes.iter().map(|n| format!("{source}: {label}: {n}")));
        let errs = validate_rollout(&ro);
        if !errs.is_empty() {
            let list: Vec<String> = errs.iter().map(|e| format!("  {e}")).collect();
            return Err(Error::Invalid(format!(
                "{source}: {label} does not convert to a valid ramp Rollout:\n{}",
                list.join("\n")
            )));
        }
        docs_out
            .push(serde_yaml::to_string(&ro).map_err(|e| Error::Io(format!("writing YAML: {e}")))?);
        rollouts.push(ro);
    }
    if rollouts.is_empty() {
        return Err(Error::Invalid(format!(
            "{source}: no OpenKruise Rollout found (apiVersion rollouts.kruise.io/v1beta1 or v1alpha1, kind Rollout)"
        )));
    }
    Ok(Converted {
        yaml: docs_out.join("---\n"),
        rollouts,
        notes: notes_out,
    })
}

/// Documents that only mean something to OpenKruise and are left out of the
/// output, with the reason.
fn dropped_document(doc: &Value) -> Option<String> {
    let kind = doc.get("kind").and_then(Value::as_str)?;
    let api_version = doc.get("apiVersion").and_then(Value::as_str)?;
    if kind == "TrafficRouting" && api_version.starts_with(&format!("{KRUISE_GROUP}/")) {
        return Some(
            "a standalone OpenKruise TrafficRouting; ramp has none: write its objectRef (service, customNetworkRefs) \
             as a Rollout's spec.strategy.canary.trafficRoutings and its strategy (matches, traffic, \
             requestHeaderModifier) as that Rollout's steps"
                .into(),
        );
    }
    if kind == "ConfigMap"
        && doc.pointer("/metadata/name").and_then(Value::as_str)
            == Some("kruise-rollout-configuration")
    {
        let keys: Vec<&str> = doc
            .get("data")
            .and_then(Value::as_object)
            .map(|d| d.keys().map(String::as_str).collect())
            .unwrap_or_default();
        return Some(format!(
            "OpenKruise's Lua custom traffic-routing scripts ({}); ramp runs no Lua scripts",
            if keys.is_empty() {
                "no data".to_string()
            } else {
                keys.join(", ")
            }
        ));
    }
    None
}

fn describe_doc(doc: &Value, n: usize) -> String {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("object");
    match doc.pointer("/metadata/name").and_then(Value::as_str) {
        Some(name) => format!("{kind} '{name}'"),
        None => format!("document {n} ({kind})"),
    }
}
