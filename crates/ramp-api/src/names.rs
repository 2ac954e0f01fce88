//! Every label, annotation, finalizer and object-name convention ramp uses.
//!
//! Other crates, the chart, the e2e suite and the docs refer to these names;
//! change them only together with those.

/// API group of the Rollout resource.
pub const GROUP: &str = "rollouts.ramp.dev";
/// Served (and storage) version of the Rollout resource.
pub const VERSION: &str = "v1beta1";

/// Finalizer ramp puts on every Rollout it manages, so that deleting one
/// mid-rollout restores routing before the object goes away.
pub const FINALIZER: &str = "rollouts.ramp.dev/finalizer";

/// Annotation holding `{"spec":…,"labels":…,"annotations":…}` of a routing
/// object (VirtualService, DestinationRule, HTTPRoute) as it was before ramp
/// changed it. Same shape as OpenKruise Rollout's annotation.
pub const ORIGINAL_SPEC_ANNOTATION: &str = "rollouts.ramp.dev/original-spec-configuration";

/// Label ramp puts on the workload a Rollout controls; the mutating webhook's
/// objectSelector matches on it. The value is the Rollout's name.
pub const CONTROLLED_BY_LABEL: &str = "rollouts.ramp.dev/controlled-by";

/// Label on every object ramp creates (canary Deployment, canary Service).
/// The value is the Rollout's name.
pub const MANAGED_BY_ROLLOUT_LABEL: &str = "rollouts.ramp.dev/rollout";

/// `app.kubernetes.io/managed-by` value on objects ramp creates.
pub const MANAGED_BY_VALUE: &str = "ramp";

/// Standard `app.kubernetes.io/managed-by` label key.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";

/// Annotation on the stable Service recording the selector ramp added, so that
/// finishing removes exactly that and nothing the user wrote.
pub const STABLE_SELECTOR_ANNOTATION: &str = "rollouts.ramp.dev/stable-selector-hash";

/// Annotation on the workload recording that ramp paused it (and so must unpause it).
pub const PAUSED_BY_RAMP_ANNOTATION: &str = "rollouts.ramp.dev/paused-by-ramp";

/// The label Kubernetes puts on ReplicaSets and pods: the pod template's hash.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// Suffix of the canary Deployment and canary Service names.
pub const CANARY_SUFFIX: &str = "-canary";

/// Field manager ramp uses for its writes.
pub const FIELD_MANAGER: &str = "ramp";

/// Name of the canary Deployment for a workload.
pub fn canary_workload_name(workload: &str) -> String {
    format!("{workload}{CANARY_SUFFIX}")
}

/// Name of the canary Service for a stable Service.
pub fn canary_service_name(service: &str) -> String {
    format!("{service}{CANARY_SUFFIX}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canary_names_follow_the_walk_through() {
        assert_eq!(
            canary_workload_name("workload-demo"),
            "workload-demo-canary"
        );
        assert_eq!(canary_service_name("service-demo"), "service-demo-canary");
    }
}
