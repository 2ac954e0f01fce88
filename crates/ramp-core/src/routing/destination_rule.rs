//! Istio `DestinationRule` (networking.istio.io): subset routing.
//!
//! When a Rollout names a DestinationRule next to its VirtualServices, the
//! VirtualServices route to a subset of the stable Service's host instead of
//! a canary Service. For the duration of the rollout ramp changes the
//! DestinationRule so that:
//! - every *stable subset* — a subset whose labels all appear on the stable
//!   pods — also requires `pod-template-hash: <stable pods' hash>`, so it
//!   never reaches canary pods (the canary Deployment's pods carry the same
//!   labels when only the image changed);
//! - a canary subset (default name `canary`) selects
//!   `pod-template-hash: <canary pods' hash>`, with the first stable subset's
//!   `trafficPolicy`. It is added once the canary pods' hash is known.
//!
//! The rest of the DestinationRule (host, top-level trafficPolicy, other
//! subsets such as other versions' `v2`/`v3`) is untouched. Like every
//! routing object the original is saved in the annotation and restored
//! exactly; the planner restores the DestinationRule after the
//! VirtualServices no longer route to its canary subset.

use ramp_api::names::POD_TEMPLATE_HASH_LABEL;
use serde_json::{Map, Value, json};

use super::{RoutingContext, StepRouting, SubsetRouting, TrafficProvider, service_host_suffix};
use crate::error::RoutingError;
use crate::observed::api_group;

/// The Istio DestinationRule provider.
#[derive(Clone, Copy, Debug, Default)]
pub struct IstioDestinationRule;

impl TrafficProvider for IstioDestinationRule {
    fn name(&self) -> &'static str {
        "istio-destinationrule"
    }

    fn handles(&self, api_version: &str, kind: &str) -> bool {
        kind == "DestinationRule" && api_group(api_version) == "networking.istio.io"
    }

    fn check(
        &self,
        object: &str,
        original_spec: &Value,
        ctx: &RoutingContext,
    ) -> Result<(), RoutingError> {
        subset_routing(object, original_spec, ctx).map(|_| ())
    }

    /// The subsets for the rollout; the step itself does not matter (the
    /// VirtualServices carry the weights and matches).
    fn step_spec(
        &self,
        object: &str,
        original_spec: &Value,
        _step: &StepRouting,
        ctx: &RoutingContext,
    ) -> Result<Value, RoutingError> {
        let routing = subset_routing(object, original_spec, ctx)?;
        let Some(stable_hash) = ctx.stable_pod_template_hash.as_deref() else {
            return Err(invalid(
                object,
                "spec.subsets",
                "the stable pods' pod-template-hash is not known yet, so the stable subsets cannot be narrowed to them",
            ));
        };
        let mut spec = original_spec.clone();
        let Some(subsets) = spec.get_mut("subsets").and_then(Value::as_array_mut) else {
            return Err(invalid(object, "spec.subsets", "must be a list"));
        };
        let mut policy: Option<Value> = None;
        for subset in subsets.iter_mut() {
            let name = subset.get("name").and_then(Value::as_str).unwrap_or("");
            if !routing.stable.iter().any(|s| s == name) {
                continue;
            }
            if policy.is_none() {
                policy = subset.get("trafficPolicy").cloned();
            }
            let labels = subset
                .as_object_mut()
                .map(|o| o.entry("labels").or_insert_with(|| json!({})));
            if let Some(Value::Object(labels)) = labels {
                labels.insert(POD_TEMPLATE_HASH_LABEL.into(), json!(stable_hash));
            }
        }
        if let Some(canary_hash) = ctx.canary_pod_template_hash.as_deref() {
            let mut canary = Map::new();
            canary.insert("name".into(), json!(routing.canary));
            canary.insert(
                "labels".into(),
                json!({POD_TEMPLATE_HASH_LABEL: canary_hash}),
            );
            if let Some(p) = policy {
                canary.insert("trafficPolicy".into(), p);
            }
            subsets.push(Value::Object(canary));
        }
        Ok(spec)
    }

    fn strip_spec(
        &self,
        object: &str,
        live_spec: &Value,
        ctx: &RoutingContext,
    ) -> Result<Value, RoutingError> {
        let mut spec = live_spec.clone();
        let Some(subsets) = spec.get_mut("subsets") else {
            return Ok(spec);
        };
        let Some(list) = subsets.as_array_mut() else {
            return Err(invalid(object, "spec.subsets", "must be a list"));
        };
        let canary = ctx.canary_subset();
        list.retain(|s| s.get("name").and_then(Value::as_str) != Some(canary));
        if let Some(stable_hash) = ctx.stable_pod_template_hash.as_deref() {
            for s in list.iter_mut() {
                if let Some(Value::Object(labels)) = s.get_mut("labels")
                    && labels.get(POD_TEMPLATE_HASH_LABEL).and_then(Value::as_str)
                        == Some(stable_hash)
                {
                    labels.remove(POD_TEMPLATE_HASH_LABEL);
                }
            }
        }
        Ok(spec)
    }

    fn shape_follows_pods(&self) -> bool {
        true
    }
}

fn invalid(object: &str, field: &str, message: &str) -> RoutingError {
    RoutingError::InvalidSubsets {
        object: object.to_string(),
        field: field.to_string(),
        message: message.to_string(),
    }
}

/// Read a DestinationRule's original spec: it must be for the stable
/// Service's host, have a subset selecting the stable pods and no subset
/// with the canary subset's name. `object` is `DestinationRule name`.
pub fn subset_routing(
    object: &str,
    original_spec: &Value,
    ctx: &RoutingContext,
) -> Result<SubsetRouting, RoutingError> {
    let service = &ctx.stable_service;
    let ns = &ctx.namespace;
    let host = match original_spec.get("host") {
        Some(Value::String(h)) => h.as_str(),
        Some(_) => return Err(invalid(object, "spec.host", "must be a string")),
        None => return Err(invalid(object, "spec.host", "missing")),
    };
    if service_host_suffix(host, service, ns).is_none() {
        return Err(invalid(
            object,
            "spec.host",
            &format!(
                "is {host:?}, not Service {service} of namespace {ns} ({service}, {service}.{ns}, {service}.{ns}.svc or {service}.{ns}.svc.cluster.local); name the DestinationRule of {service}'s host in customNetworkRefs"
            ),
        ));
    }
    let subsets = match original_spec.get("subsets") {
        Some(Value::Array(items)) => items.as_slice(),
        None | Some(Value::Null) => &[],
        Some(_) => return Err(invalid(object, "spec.subsets", "must be a list")),
    };
    let canary = ctx.canary_subset().to_string();
    let mut defined = Vec::with_capacity(subsets.len());
    let mut stable = Vec::new();
    for (i, s) in subsets.iter().enumerate() {
        let field = format!("spec.subsets[{i}]");
        let Some(name) = s.get("name").and_then(Value::as_str) else {
            return Err(invalid(
                object,
                &format!("{field}.name"),
                "must be a string",
            ));
        };
        if name == canary {
            return Err(invalid(
                object,
                &format!("{field}.name"),
                &format!(
                    "a subset named {canary:?} already exists, and ramp adds the canary subset under that name; set spec.strategy.canary.trafficRoutings[0].canarySubsetName to a name the DestinationRule does not use"
                ),
            ));
        }
        let labels = match s.get("labels") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => {
                return Err(invalid(
                    object,
                    &format!("{field}.labels"),
                    "must be a map of strings",
                ));
            }
        };
        let selects_stable = !labels.is_empty()
            && labels.iter().all(|(k, v)| {
                v.as_str()
                    .is_some_and(|v| ctx.stable_pod_labels.get(k).is_some_and(|x| x == v))
            });
        if selects_stable {
            stable.push(name.to_string());
        }
        defined.push(name.to_string());
    }
    if stable.is_empty() {
        let pods = ctx
            .stable_pod_labels
            .iter()
            .filter(|(k, _)| k.as_str() != POD_TEMPLATE_HASH_LABEL)
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(invalid(
            object,
            "spec.subsets",
            &format!(
                "no subset selects the stable pods (labels {pods}): ramp needs the subset the VirtualService routes the stable version to, with labels that the Deployment's pods carry (defined: {})",
                if defined.is_empty() {
                    "no subsets".to_string()
                } else {
                    defined.join(", ")
                }
            ),
        ));
    }
    Ok(SubsetRouting {
        destination_rule: object.to_string(),
        stable,
        canary,
        defined,
    })
}
