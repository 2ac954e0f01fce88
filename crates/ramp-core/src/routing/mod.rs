//! Routing: how a step's traffic split becomes a change to a routing object.
//!
//! The rules every provider shares live here:
//! - the first change saves `{"spec":…,"labels":…,"annotations":…}` of the
//!   object in the annotation [`ORIGINAL_SPEC_ANNOTATION`] (that key itself
//!   excluded);
//! - every step's object is computed from that saved original, never from the
//!   previous step's object;
//! - restoring puts spec, labels and annotations back exactly and removes the
//!   annotation;
//! - a patch always starts with a `test` of `metadata.resourceVersion`, so a
//!   concurrent edit is never overwritten;
//! - drift: when the live object is neither what the step wants nor any shape
//!   ramp itself writes, someone else changed it; the new original is the
//!   live object with ramp's additions stripped, so the edit is kept.
//!
//! A [`TrafficProvider`] knows one kind of object and only transforms `spec`:
//! Istio's VirtualService is [`IstioVirtualService`], its DestinationRule
//! (subset routing) [`IstioDestinationRule`], Gateway API's HTTPRoute
//! [`GatewayHttpRoute`]. [`virtual_service_conflicts`] checks that no other
//! VirtualService claims the hosts ramp is about to change.

mod conflicts;
mod destination_rule;
mod gateway;
mod istio;

pub use conflicts::{normalize_gateway, normalize_host, virtual_service_conflicts};
pub use destination_rule::{IstioDestinationRule, subset_routing};
pub use gateway::GatewayHttpRoute;
pub use istio::IstioVirtualService;

use std::collections::BTreeMap;

use ramp_api::names::ORIGINAL_SPEC_ANNOTATION;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::RoutingError;
use crate::hash::canonical_string;

/// What one step asks of routing (parsed in ramp-api, the one reading of the spec).
pub use ramp_api::StepRouting;

/// Rollout-wide facts a provider needs.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RoutingContext {
    /// The Rollout's namespace (routing objects are in it too).
    pub namespace: String,
    /// The stable Service.
    pub stable_service: String,
    /// The canary Service.
    pub canary_service: String,
    /// `pod-template-hash` of the stable pods, when known.
    pub stable_pod_template_hash: Option<String>,
    /// `pod-template-hash` of the canary pods, when known.
    pub canary_pod_template_hash: Option<String>,
    /// Labels of the stable pods (their template's labels, with
    /// `pod-template-hash`); a DestinationRule's stable subsets are those
    /// whose labels all appear here.
    pub stable_pod_labels: BTreeMap<String, String>,
    /// Name of the canary subset ramp adds to a DestinationRule (empty:
    /// [`ramp_api::TrafficRoutingRef::DEFAULT_CANARY_SUBSET_NAME`]).
    pub canary_subset_name: String,
    /// Subset routing: set when the Rollout names a DestinationRule, from
    /// that DestinationRule's original (see [`subset_routing`]).
    pub subsets: Option<SubsetRouting>,
}

impl RoutingContext {
    /// The canary subset's name, defaulted.
    pub fn canary_subset(&self) -> &str {
        if self.canary_subset_name.is_empty() {
            ramp_api::TrafficRoutingRef::DEFAULT_CANARY_SUBSET_NAME
        } else {
            &self.canary_subset_name
        }
    }
}

/// How VirtualServices route to the canary when a DestinationRule is used:
/// to a subset of the stable Service's host instead of the canary Service.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SubsetRouting {
    /// `DestinationRule name`, for messages.
    pub destination_rule: String,
    /// The subsets selecting the stable pods: routes naming one of them get
    /// the canary subset next to them.
    pub stable: Vec<String>,
    /// The canary subset ramp adds.
    pub canary: String,
    /// Every subset the DestinationRule's original defines.
    pub defined: Vec<String>,
}

/// One kind of routing object. Pure: spec in, spec out.
pub trait TrafficProvider: Send + Sync {
    /// Short name, for logs.
    fn name(&self) -> &'static str;

    /// Whether this provider handles objects of `apiVersion`/`kind`.
    fn handles(&self, api_version: &str, kind: &str) -> bool;

    /// Check that the original can be routed at all (for example, that it
    /// has a route to the stable Service). `object` is `Kind name`, for errors.
    fn check(
        &self,
        object: &str,
        original_spec: &Value,
        ctx: &RoutingContext,
    ) -> Result<(), RoutingError>;

    /// The spec for `step`, computed from the original spec.
    fn step_spec(
        &self,
        object: &str,
        original_spec: &Value,
        step: &StepRouting,
        ctx: &RoutingContext,
    ) -> Result<Value, RoutingError>;

    /// The live spec with everything ramp adds removed (canary routes and
    /// destinations; weights given back to the stable destinations).
    fn strip_spec(
        &self,
        object: &str,
        live_spec: &Value,
        ctx: &RoutingContext,
    ) -> Result<Value, RoutingError>;

    /// Whether ramp's shape of the object depends on the pods (their
    /// `pod-template-hash`) rather than only on the step: then a live object
    /// that differs from the saved original only by ramp's additions is
    /// ramp's own earlier write, not someone else's edit.
    fn shape_follows_pods(&self) -> bool {
        false
    }
}

static ISTIO_VIRTUAL_SERVICE: IstioVirtualService = IstioVirtualService;
static ISTIO_DESTINATION_RULE: IstioDestinationRule = IstioDestinationRule;
static GATEWAY_HTTP_ROUTE: GatewayHttpRoute = GatewayHttpRoute;

/// The provider for objects of `apiVersion`/`kind`, if ramp supports them.
pub fn provider_for(api_version: &str, kind: &str) -> Option<&'static dyn TrafficProvider> {
    let all: [&'static dyn TrafficProvider; 3] = [
        &ISTIO_VIRTUAL_SERVICE,
        &ISTIO_DESTINATION_RULE,
        &GATEWAY_HTTP_ROUTE,
    ];
    all.into_iter().find(|p| p.handles(api_version, kind))
}

/// Whether `apiVersion`/`kind` is an Istio DestinationRule (subset routing).
pub fn is_destination_rule(api_version: &str, kind: &str) -> bool {
    ISTIO_DESTINATION_RULE.handles(api_version, kind)
}

/// Whether `apiVersion`/`kind` is an Istio VirtualService.
pub fn is_virtual_service(api_version: &str, kind: &str) -> bool {
    ISTIO_VIRTUAL_SERVICE.handles(api_version, kind)
}

/// The suffix after `service` if `host` names that Service in `namespace`:
/// `svc`, `svc.ns`, `svc.ns.svc` or `svc.ns.svc.cluster.local`.
pub(crate) fn service_host_suffix<'h>(
    host: &'h str,
    service: &str,
    namespace: &str,
) -> Option<&'h str> {
    let rest = host.strip_prefix(service)?;
    let ok = rest.is_empty()
        || rest.strip_prefix('.').is_some_and(|r| {
            r == namespace
                || r.strip_prefix(namespace)
                    .is_some_and(|s| s == ".svc" || s == ".svc.cluster.local")
        });
    ok.then_some(rest)
}

/// `Kind name` of an object, for messages.
pub fn object_label(obj: &Value) -> String {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("object");
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>");
    format!("{kind} {name}")
}

/// The part of a routing object that ramp saves before its first change and
/// restores at the end (Kruise Rollout's annotation shape).
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct OriginalConfiguration {
    /// The object's `spec`.
    #[serde(default)]
    pub spec: Value,
    /// `metadata.labels`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// `metadata.annotations`, without [`ORIGINAL_SPEC_ANNOTATION`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl OriginalConfiguration {
    /// The object's current spec, labels and annotations (ramp's annotation excluded).
    pub fn from_object(obj: &Value) -> Self {
        let labels = string_map(obj.pointer("/metadata/labels"));
        let mut annotations = string_map(obj.pointer("/metadata/annotations"));
        if let Some(a) = annotations.as_mut() {
            a.remove(ORIGINAL_SPEC_ANNOTATION);
        }
        OriginalConfiguration {
            spec: obj.get("spec").cloned().unwrap_or(Value::Null),
            labels: labels.filter(|m| !m.is_empty()),
            annotations: annotations.filter(|m| !m.is_empty()),
        }
    }

    /// The original saved in the object's annotation, if there is one.
    pub fn saved(obj: &Value) -> Result<Option<Self>, RoutingError> {
        let Some(text) = obj
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(ORIGINAL_SPEC_ANNOTATION))
            .and_then(Value::as_str)
        else {
            return Ok(None);
        };
        let mut parsed: OriginalConfiguration =
            serde_json::from_str(text).map_err(|e| RoutingError::InvalidOriginal {
                object: object_label(obj),
                annotation: ORIGINAL_SPEC_ANNOTATION,
                message: e.to_string(),
            })?;
        parsed.labels = parsed.labels.filter(|m| !m.is_empty());
        parsed.annotations = parsed.annotations.filter(|m| !m.is_empty());
        Ok(Some(parsed))
    }

    /// The annotation value (canonical JSON: stable across runs).
    pub fn to_annotation(&self) -> String {
        canonical_string(&serde_json::to_value(self).unwrap_or(Value::Null))
    }
}

fn string_map(v: Option<&Value>) -> Option<BTreeMap<String, String>> {
    let obj = v?.as_object()?;
    Some(
        obj.iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_string),
                )
            })
            .collect(),
    )
}

/// The original of a live object: the saved one, else the live object itself
/// with anything that looks like ramp's additions stripped (in case only the
/// annotation was removed).
pub fn original_of(
    provider: &dyn TrafficProvider,
    live: &Value,
    ctx: &RoutingContext,
) -> Result<OriginalConfiguration, RoutingError> {
    if let Some(saved) = OriginalConfiguration::saved(live)? {
        return Ok(saved);
    }
    stripped_original(provider, live, ctx)
}

/// The live object's spec, labels and annotations with ramp's additions removed.
pub fn stripped_original(
    provider: &dyn TrafficProvider,
    live: &Value,
    ctx: &RoutingContext,
) -> Result<OriginalConfiguration, RoutingError> {
    let mut original = OriginalConfiguration::from_object(live);
    original.spec = provider.strip_spec(&object_label(live), &original.spec, ctx)?;
    Ok(original)
}

/// The object ramp wants: the step's routing computed from `original`, with
/// the original saved in the annotation; or, for `step: None` (or a step that
/// changes nothing), the original restored exactly with no annotation.
pub fn desired_object(
    provider: &dyn TrafficProvider,
    live: &Value,
    original: &OriginalConfiguration,
    step: Option<&StepRouting>,
    ctx: &RoutingContext,
) -> Result<Value, RoutingError> {
    let label = object_label(live);
    let spec = match step {
        Some(step) => provider.step_spec(&label, &original.spec, step, ctx)?,
        None => original.spec.clone(),
    };
    let changed = spec != original.spec;
    let mut out = live.clone();
    let Some(root) = out.as_object_mut() else {
        return Err(RoutingError::InvalidObject {
            object: label,
            field: "(root)".into(),
            message: "not a JSON object".into(),
        });
    };
    root.insert("spec".into(), spec);
    let meta = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(meta) = meta.as_object_mut() else {
        return Err(RoutingError::InvalidObject {
            object: label,
            field: "metadata".into(),
            message: "not a JSON object".into(),
        });
    };
    set_map(meta, "labels", original.labels.clone().unwrap_or_default());
    let mut annotations = original.annotations.clone().unwrap_or_default();
    if changed {
        annotations.insert(ORIGINAL_SPEC_ANNOTATION.into(), original.to_annotation());
    }
    set_map(meta, "annotations", annotations);
    Ok(out)
}

fn set_map(meta: &mut Map<String, Value>, key: &str, map: BTreeMap<String, String>) {
    if map.is_empty() {
        meta.remove(key);
    } else {
        let obj: Map<String, Value> = map
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        meta.insert(key.into(), Value::Object(obj));
    }
}

/// Whether two versions of an object route the same: equal spec, labels and
/// annotations (the saved-original annotation compared as JSON).
pub fn same_routing(a: &Value, b: &Value) -> bool {
    if a.get("spec") != b.get("spec") {
        return false;
    }
    let labels = |o: &Value| string_map(o.pointer("/metadata/labels")).unwrap_or_default();
    if labels(a) != labels(b) {
        return false;
    }
    let annotations = |o: &Value| {
        let mut m = string_map(o.pointer("/metadata/annotations")).unwrap_or_default();
        let saved = m.remove(ORIGINAL_SPEC_ANNOTATION);
        let saved = saved.map(|s| serde_json::from_str::<Value>(&s).unwrap_or(Value::String(s)));
        (m, saved)
    };
    annotations(a) == annotations(b)
}

/// The JSON patch turning `live` into `desired` (only spec, labels and
/// annotations differ between them), led by a `test` of the live
/// resourceVersion. `None` when there is nothing to change.
pub fn routing_patch(live: &Value, desired: &Value) -> Option<json_patch::Patch> {
    let diff = json_patch::diff(live, desired);
    if diff.0.is_empty() {
        return None;
    }
    let mut ops = Vec::with_capacity(diff.0.len() + 1);
    if let Some(rv) = live.pointer("/metadata/resourceVersion") {
        ops.push(json_patch::PatchOperation::Test(
            json_patch::TestOperation {
                path: json_patch::jsonptr::PointerBuf::from_tokens(["metadata", "resourceVersion"]),
                value: rv.clone(),
            },
        ));
    }
    ops.extend(diff.0);
    Some(json_patch::Patch(ops))
}

/// How a live routing object stands against what ramp wants.
#[derive(Clone, Debug, PartialEq)]
pub enum RoutingVerdict {
    /// The live object is what ramp wants.
    InSync,
    /// The live object is a shape ramp itself writes (another step's, or the
    /// untouched original): `desired` is the wanted shape, from the saved original.
    Behind {
        /// The object to write.
        desired: Value,
    },
    /// Someone else changed the object. Their edit is kept: `original` is the
    /// live object with ramp's additions stripped, and `desired` is the wanted
    /// shape computed from it (with `original` in the annotation).
    Drifted {
        /// The new original.
        original: OriginalConfiguration,
        /// The object to write.
        desired: Value,
    },
}

/// Compare a live routing object with what ramp wants (`wanted`: the step's
/// routing; `None`: the original restored). `known` lists every routing the
/// Rollout's steps use: a live object equal to one of them (or to the
/// original) is ramp's own doing, not drift.
pub fn assess(
    provider: &dyn TrafficProvider,
    live: &Value,
    wanted: Option<&StepRouting>,
    known: &[StepRouting],
    ctx: &RoutingContext,
) -> Result<RoutingVerdict, RoutingError> {
    let original = original_of(provider, live, ctx)?;
    let desired = desired_object(provider, live, &original, wanted, ctx)?;
    if same_routing(live, &desired) {
        return Ok(RoutingVerdict::InSync);
    }
    let restored = desired_object(provider, live, &original, None, ctx)?;
    if same_routing(live, &restored) {
        return Ok(RoutingVerdict::Behind { desired });
    }
    for step in known {
        if same_routing(
            live,
            &desired_object(provider, live, &original, Some(step), ctx)?,
        ) {
            return Ok(RoutingVerdict::Behind { desired });
        }
    }
    let stripped = stripped_original(provider, live, ctx)?;
    if provider.shape_follows_pods()
        && live.get("spec") != Some(&stripped.spec)
        && OriginalConfiguration::saved(live)?.is_some_and(|saved| saved == stripped)
    {
        // Only ramp's own additions differ (a DestinationRule written before
        // the canary pods' hash was known, or for an earlier canary): not drift.
        // Without any of ramp's additions left (the original re-applied, say
        // by a GitOps tool) it is someone else's doing, reported as drift.
        return Ok(RoutingVerdict::Behind { desired });
    }
    let original = stripped;
    let desired = desired_object(provider, live, &original, wanted, ctx)?;
    if same_routing(live, &desired) {
        return Ok(RoutingVerdict::InSync);
    }
    Ok(RoutingVerdict::Drifted { original, desired })
}

/// An `InvalidObject` error naming the routing object and the field.
pub(crate) fn invalid(object: &str, field: &str, message: &str) -> RoutingError {
    RoutingError::InvalidObject {
        object: object.to_string(),
        field: field.to_string(),
        message: message.to_string(),
    }
}

/// `spec.<key>` of a routing object as a list of objects (`http` of a
/// VirtualService, `rules` of an HTTPRoute), or an error naming the field.
pub(crate) fn spec_list<'a>(
    object: &str,
    spec: &'a Value,
    key: &str,
    items: &str,
    missing: &str,
) -> Result<&'a Vec<Value>, RoutingError> {
    if !spec.is_object() {
        return Err(invalid(object, "spec", "must be an object"));
    }
    let field = format!("spec.{key}");
    match spec.get(key) {
        Some(Value::Array(list)) => {
            if let Some(i) = list.iter().position(|r| !r.is_object()) {
                return Err(invalid(
                    object,
                    &format!("{field}[{i}]"),
                    "must be an object",
                ));
            }
            Ok(list)
        }
        Some(_) => Err(invalid(
            object,
            &field,
            &format!("must be a list of {items}"),
        )),
        None => Err(invalid(object, &field, &format!("missing: {missing}"))),
    }
}
