//! The `Rollout` custom resource (`rollouts.ramp.dev/v1beta1`).
//!
//! Field names follow OpenKruise Rollout `v1beta1` so that a Kruise manifest
//! works after changing only its `apiVersion`. Integers are signed (i32/i64),
//! as Kubernetes API conventions ask.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A progressive canary rollout of one Deployment.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "rollouts.ramp.dev",
    version = "v1beta1",
    kind = "Rollout",
    namespaced,
    status = "RolloutStatus",
    shortname = "ro",
    category = "ramp",
    printcolumn = r#"{"name":"STATUS","type":"string","jsonPath":".status.phase","description":"The rollout's phase"}"#,
    printcolumn = r#"{"name":"CANARY_STEP","type":"integer","jsonPath":".status.canaryStatus.currentStepIndex","description":"The current canary step (1-based)"}"#,
    printcolumn = r#"{"name":"CANARY_STATE","type":"string","jsonPath":".status.canaryStatus.currentStepState","description":"The state within the current step"}"#,
    printcolumn = r#"{"name":"MESSAGE","type":"string","jsonPath":".status.message","description":"What the rollout is doing or waiting for"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSpec {
    /// When true, ramp restores routing, removes its canary objects, lets the
    /// workload roll out natively and otherwise leaves it alone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
    /// The workload this Rollout controls: an `apps/v1` Deployment in the same namespace.
    pub workload_ref: WorkloadRef,
    /// How new revisions of the workload are rolled out.
    pub strategy: RolloutStrategy,
}

/// Reference to the controlled workload.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadRef {
    /// API version of the workload; ramp supports `apps/v1`.
    pub api_version: String,
    /// Kind of the workload; ramp supports `Deployment`.
    pub kind: String,
    /// Name of the workload in the Rollout's namespace.
    pub name: String,
}

/// Rollout strategy.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStrategy {
    /// Hold the rollout where it is (no step advances, timers do not fire).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    /// The canary strategy (the only one ramp implements).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStrategy>,
}

/// A canary strategy: steps and the traffic routing they act on.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStrategy {
    /// The steps, walked in order. Each waits for approval unless it has a `pause.duration`.
    #[serde(default)]
    pub steps: Vec<CanaryStep>,
    /// Where traffic is moved. Exactly one entry.
    #[serde(default)]
    pub traffic_routings: Vec<TrafficRoutingRef>,
    /// Run the canary as a separate `<workload>-canary` Deployment (the only
    /// mode ramp supports; `false` is rejected). Defaults to true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_extra_workload_for_canary: Option<bool>,
    /// Judge the canary on live metrics while each step is paused: a timed
    /// step advances only when every metric passed, a metric failing
    /// `failureLimit` times in a row aborts the rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<crate::analysis::RolloutAnalysis>,
}

impl CanaryStrategy {
    /// Whether the canary runs as an extra Deployment (the default).
    pub fn extra_workload(&self) -> bool {
        self.enable_extra_workload_for_canary.unwrap_or(true)
    }
}

/// One canary step.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStep {
    /// Share of traffic sent to the canary, as `"NN%"` (0 < NN <= 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<String>,
    /// Canary replicas: a number, or `"NN%"` of the stable Deployment's `spec.replicas`, rounded up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<IntOrString>,
    /// Requests matching any of these go to the canary (OR across matches, AND within one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<HttpRouteMatch>,
    /// How the step ends: after `duration` seconds, or (no duration) on approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<RolloutPause>,
    /// Copy (shadow) a share of the stable Service's requests to the canary,
    /// with or without `traffic`: the copies' responses are discarded, so
    /// callers only ever see the stable answer. Needs at least one canary pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<TrafficMirror>,
    /// Changes to the request headers the canary receives on this step's
    /// canary routes (OpenKruise Rollout's field; the Gateway API
    /// `HTTPHeaderFilter` shape). Istio: `headers.request` on the canary
    /// route or destination; HTTPRoute: a `RequestHeaderModifier` filter on
    /// the canary rule or backendRef. Needs `matches` or `traffic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_header_modifier: Option<HttpHeaderModifier>,
}

/// Request header changes: `set` overwrites, `add` appends (after a comma
/// when the header is already there), `remove` deletes. Names are
/// case-insensitive.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpHeaderModifier {
    /// Headers to set, replacing any value the request has.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<HttpHeader>,
    /// Headers to add to the request's values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<HttpHeader>,
    /// Header names to remove.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// One header name and value.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpHeader {
    /// Header name.
    pub name: String,
    /// Header value.
    pub value: String,
}

/// Request mirroring for a step.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrafficMirror {
    /// Percent of the requests to the stable Service that are also sent to
    /// the canary (0 < percent <= 100).
    pub percent: i32,
}

/// A request match; all conditions inside one match must hold.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteMatch {
    /// Request path condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<HttpPathMatch>,
    /// Header conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HttpHeaderMatch>,
    /// Query parameter conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query_params: Vec<HttpQueryParamMatch>,
}

/// How a header or query parameter value is compared.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum ValueMatchType {
    /// The value must be equal.
    #[default]
    Exact,
    /// The value must match an RE2-style regular expression.
    RegularExpression,
}

/// Header condition.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpHeaderMatch {
    /// `Exact` (default) or `RegularExpression`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<ValueMatchType>,
    /// Header name (case-insensitive on the wire).
    pub name: String,
    /// Value or expression.
    pub value: String,
}

/// Query parameter condition.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpQueryParamMatch {
    /// `Exact` (default) or `RegularExpression`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<ValueMatchType>,
    /// Parameter name.
    pub name: String,
    /// Value or expression.
    pub value: String,
}

/// How a path is compared.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum PathMatchType {
    /// The path must be equal.
    Exact,
    /// The path must start with the value (by path segments).
    #[default]
    PathPrefix,
    /// The path must match a regular expression.
    RegularExpression,
}

/// Path condition.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpPathMatch {
    /// `PathPrefix` (default), `Exact` or `RegularExpression`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<PathMatchType>,
    /// The path or expression.
    pub value: String,
}

/// How a step ends.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutPause {
    /// Seconds to wait once the step is ready; absent means wait for approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<i32>,
}

/// Where a canary's traffic is routed.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrafficRoutingRef {
    /// The stable Service the routing objects send traffic to.
    pub service: String,
    /// Seconds to wait after each routing change before the next action. Default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period_seconds: Option<i32>,
    /// Routing objects to change: Istio `VirtualService`s (with at most one
    /// `DestinationRule` of the Service's host for subset routing), or
    /// Gateway API `HTTPRoute`s.
    #[serde(default)]
    pub custom_network_refs: Vec<CustomNetworkRef>,
    /// A Gateway API `HTTPRoute` to change (OpenKruise Rollout's field);
    /// the same as listing it in `customNetworkRefs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewayTrafficRouting>,
    /// With a `DestinationRule` in `customNetworkRefs`: the name of the subset
    /// ramp adds for the canary pods (labels: their `pod-template-hash`).
    /// Default `canary`. It must not already exist in the DestinationRule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_subset_name: Option<String>,
}

/// Gateway API routing.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayTrafficRouting {
    /// Name of the `HTTPRoute` (gateway.networking.k8s.io) in the Rollout's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_route_name: Option<String>,
}

impl TrafficRoutingRef {
    /// Default grace period between traffic moves, in seconds.
    pub const DEFAULT_GRACE_PERIOD_SECONDS: i32 = 3;

    /// Default name of the canary subset ramp adds to a DestinationRule.
    pub const DEFAULT_CANARY_SUBSET_NAME: &'static str = "canary";

    /// API version ramp uses for the HTTPRoute named by `gateway.httpRouteName`.
    pub const GATEWAY_HTTP_ROUTE_API_VERSION: &'static str = "gateway.networking.k8s.io/v1";

    /// The grace period in seconds, defaulted.
    pub fn grace_period(&self) -> i32 {
        self.grace_period_seconds
            .unwrap_or(Self::DEFAULT_GRACE_PERIOD_SECONDS)
    }

    /// The canary subset's name, defaulted.
    pub fn canary_subset(&self) -> &str {
        self.canary_subset_name
            .as_deref()
            .unwrap_or(Self::DEFAULT_CANARY_SUBSET_NAME)
    }

    /// Every routing object ramp changes, in order: `customNetworkRefs`,
    /// then the HTTPRoute named by `gateway.httpRouteName` (as
    /// `gateway.networking.k8s.io/v1`, unless `customNetworkRefs` already
    /// lists an HTTPRoute of that name).
    pub fn routing_refs(&self) -> Vec<CustomNetworkRef> {
        let mut refs = self.custom_network_refs.clone();
        if let Some(name) = self
            .gateway
            .as_ref()
            .and_then(|g| g.http_route_name.as_ref())
            && !refs
                .iter()
                .any(|r| r.kind == "HTTPRoute" && &r.name == name)
        {
            refs.push(CustomNetworkRef {
                api_version: Self::GATEWAY_HTTP_ROUTE_API_VERSION.into(),
                kind: "HTTPRoute".into(),
                name: name.clone(),
            });
        }
        refs
    }
}

/// Reference to a routing object in the Rollout's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomNetworkRef {
    /// e.g. `networking.istio.io/v1beta1`.
    pub api_version: String,
    /// e.g. `VirtualService`.
    pub kind: String,
    /// Object name.
    pub name: String,
}

/// Observed state of a Rollout.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// The Rollout generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Overall phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RolloutPhase>,
    /// What the rollout is doing or waiting for, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `Progressing` and `Succeeded` conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<RolloutCondition>,
    /// Progress of the current canary rollout, if one is under way or just finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_status: Option<CanaryStatus>,
}

/// Overall phase of a Rollout.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum RolloutPhase {
    /// Just created; ramp has not looked at the workload yet.
    Initial,
    /// The workload runs one revision; nothing to roll out.
    Healthy,
    /// A canary rollout is under way.
    Progressing,
    /// An abort was requested: traffic is back on stable, the canary is
    /// scaled to zero and the workload stays paused until a retry or undo.
    Aborted,
    /// The Rollout is being deleted; ramp is restoring routing and cleaning up.
    Terminating,
    /// `spec.disabled` was set; ramp is restoring routing and cleaning up.
    Disabling,
    /// `spec.disabled` is set and everything ramp changed is restored.
    Disabled,
}

/// A status condition.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutCondition {
    /// `Progressing` or `Succeeded`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Machine-readable reason, CamelCase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Last time the condition was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<Time>,
    /// Last time `status` changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}

/// Progress of a canary rollout.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStatus {
    /// The workload generation this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_workload_generation: Option<i64>,
    /// Pod-template hash of the revision serving before the rollout started.
    #[serde(default)]
    pub stable_revision: String,
    /// Pod-template hash of the revision being rolled out.
    #[serde(default)]
    pub canary_revision: String,
    /// Pod-template hash of the canary pods (equals `canaryRevision`).
    #[serde(default)]
    pub pod_template_hash: String,
    /// Current step, 1-based.
    #[serde(default)]
    pub current_step_index: i32,
    /// State within the current step.
    #[serde(default)]
    pub current_step_state: StepState,
    /// Last time the step or its state changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<Time>,
    /// Desired canary replicas for the current step.
    #[serde(default)]
    pub canary_replicas: i32,
    /// Ready canary replicas.
    #[serde(default)]
    pub canary_ready_replicas: i32,
    /// Where the finishing sequence is, once all steps are done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finalising_step: Option<FinalisingStep>,
    /// A user action waiting to be carried out (written by `kubectl ramp`
    /// with a guarded JSON patch; cleared by the operator when it acts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_action: Option<RolloutAction>,
    /// What the current step is waiting for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Metric analysis results of the current step, one entry per metric.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub analysis: Vec<crate::analysis::MetricAnalysisStatus>,
}

/// State within a canary step. `StepPaused -> StepReady` is the approval.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default, JsonSchema)]
pub enum StepState {
    /// The step has not started.
    #[default]
    BeforeStepUpgrade,
    /// Scaling the canary to the step's replicas and waiting for them to be ready.
    StepUpgrade,
    /// Changing routing for the step and waiting for the grace period.
    StepTrafficRouting,
    /// Waiting for approval or for the pause duration.
    StepPaused,
    /// Approved (or timer elapsed): the next reconcile moves to the next step.
    StepReady,
    /// All steps done; the finishing sequence runs.
    Completed,
}

/// The finishing sequence, in order.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum FinalisingStep {
    /// Put every routing object back to its saved original.
    RestoreRouting,
    /// Remove ramp's `pod-template-hash` from the stable Service's selector.
    RestoreStableService,
    /// Delete the canary Service.
    DeleteCanaryService,
    /// Unpause the workload and wait until it has fully rolled out.
    ResumeWorkload,
    /// Delete the canary Deployment.
    DeleteCanaryWorkload,
    /// Done.
    Done,
}

/// A user action requested through the status subresource.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum RolloutAction {
    /// Move traffic back to stable, scale the canary to zero, keep the workload paused.
    Abort,
    /// After an abort: start again from step 1.
    Retry,
    /// Skip the remaining steps and finish.
    PromoteFull,
}

macro_rules! display_as_serde_name {
    ($($t:ty),*) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                // Unit variants serialize to their bare name.
                let v = serde_json::to_value(self).map_err(|_| std::fmt::Error)?;
                f.write_str(v.as_str().unwrap_or_default())
            }
        }
    )*};
}
display_as_serde_name!(
    RolloutPhase,
    StepState,
    FinalisingStep,
    RolloutAction,
    ValueMatchType,
    PathMatchType
);

#[cfg(test)]
mod tests {
    use super::*;

    const KRUISE_WALK_THROUGH: &str = r#"
apiVersion: rollouts.ramp.dev/v1beta1
kind: Rollout
metadata: {name: rollouts-demo, namespace: default}
spec:
  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: workload-demo}
  strategy:
    canary:
      steps:
      - replicas: 1
        matches:
        - headers: [{type: Exact, name: version, value: canary}]
      - {traffic: "50%", replicas: "50%"}
      - traffic: "80%"
        replicas: "80%"
        pause: {duration: 60}
      trafficRoutings:
      - service: service-demo
        gracePeriodSeconds: 3
        customNetworkRefs:
        - {apiVersion: networking.istio.io/v1beta1, kind: VirtualService, name: vs-demo}
"#;

    #[test]
    fn kruise_manifest_parses_with_its_field_names() {
        let ro: Rollout = serde_yaml::from_str(KRUISE_WALK_THROUGH).unwrap();
        let canary = ro.spec.strategy.canary.as_ref().unwrap();
        assert_eq!(canary.steps.len(), 3);
        assert!(canary.extra_workload());
        assert_eq!(canary.steps[0].replicas, Some(IntOrString::Int(1)));
        assert_eq!(canary.steps[0].matches[0].headers[0].name, "version");
        assert_eq!(
            canary.steps[0].matches[0].headers[0].type_,
            Some(ValueMatchType::Exact)
        );
        assert_eq!(canary.steps[1].traffic.as_deref(), Some("50%"));
        assert_eq!(canary.steps[2].pause.as_ref().unwrap().duration, Some(60));
        assert_eq!(canary.traffic_routings[0].grace_period(), 3);
        assert_eq!(
            canary.traffic_routings[0].custom_network_refs[0].kind,
            "VirtualService"
        );
    }

    #[test]
    fn status_round_trips_with_kruise_names() {
        let status = RolloutStatus {
            phase: Some(RolloutPhase::Progressing),
            canary_status: Some(CanaryStatus {
                current_step_index: 2,
                current_step_state: StepState::StepPaused,
                ..Default::default()
            }),
            ..Default::default()
        };
        let v = serde_json::to_value(&status).unwrap();
        assert_eq!(v["phase"], "Progressing");
        assert_eq!(v["canaryStatus"]["currentStepIndex"], 2);
        assert_eq!(v["canaryStatus"]["currentStepState"], "StepPaused");
        assert_eq!(StepState::StepPaused.to_string(), "StepPaused");
    }
}
