//! Pure rollout planning for ramp: observed state in, the next actions and
//! the new status out. No IO, no Kubernetes client: the operator reads the
//! objects, calls [`plan`], carries out [`Plan::actions`] in order, then
//! writes [`Plan::status`].
//!
//! ```text
//! Observed { Rollout, Deployment + ReplicaSets, canary Deployment, Services,
//!            routing objects and the namespace's VirtualServices (JSON), now }
//!      │ plan()
//!      ▼
//! Plan { actions (idempotent, in order), status, requeue_after, events, error }
//! ```
//!
//! # The state machine
//!
//! One call makes at most one transition; every action carries desired state
//! (create = "make it exist like this", patches computed from the saved
//! original, never deltas), so the operator may crash after any action and
//! simply plan again.
//!
//! ## Phases
//! - `Initial` → `Healthy`: ramp records the revision the workload runs
//!   (`canaryStatus.stableRevision`) and labels the Deployment
//!   `rollouts.ramp.dev/controlled-by=<rollout>`.
//! - `Healthy` → `Progressing`: the Deployment's pod template changed (a new
//!   revision). ramp keeps the Deployment paused (its webhook pauses it in the
//!   same write; without the webhook the planner pauses it and warns) and
//!   starts step 1.
//! - `Progressing` → `Healthy` when the finishing sequence is done.
//! - `Aborted`, `Disabling` → `Disabled`, `Terminating`: see below.
//!
//! ## Steps (`canaryStatus.currentStepIndex`, 1-based, and `currentStepState`)
//! ```text
//! BeforeStepUpgrade ─► StepUpgrade ─► StepTrafficRouting ─► StepPaused ─► StepReady ─┐
//!   (checks, then       (canary        (canary Service,       (approval     next step: │
//!    isolate stable      Deployment     routing for the step,  or timer)   StepUpgrade ◄┘
//!    Service, create     at the step's  then the grace period)             last step:
//!    canary)             replicas, wait                                    Completed
//!                        until ready)
//! ```
//! - **BeforeStepUpgrade** checks, before changing anything, that the stable
//!   Service and every routing object exist, that each routing object has a
//!   route to the stable Service and that every step's routing can be
//!   computed. Then the stable Service's selector gains
//!   `pod-template-hash: <stable pods' hash>` (recorded in annotation
//!   `rollouts.ramp.dev/stable-selector-hash`) so it never reaches canary
//!   pods, and the canary Deployment `<workload>-canary` is created.
//! - **StepUpgrade** waits until the canary Deployment runs the step's
//!   replicas (an integer, or a percentage of the Deployment's
//!   `spec.replicas`, rounded up), all ready; the message names pods that are
//!   not, with their reason. Then it creates/updates the canary Service
//!   `<service>-canary` (selector plus the canary pods' `pod-template-hash`)
//!   and changes routing for the step.
//! - **StepTrafficRouting** waits `gracePeriodSeconds` after the last routing
//!   change (`requeue_after` says when to look again).
//! - **StepPaused** waits for approval — a user or plugin patching
//!   `currentStepState` from `StepPaused` to `StepReady` — or, with
//!   `pause.duration`, for that many seconds after `lastUpdateTime`.
//! - **StepReady** moves to the next step's `StepUpgrade`, or after the last
//!   step to `Completed` and the finishing sequence.
//!
//! While a step runs, the planner keeps its world as it should be: it
//! re-creates deleted objects and re-applies routing when someone else
//! changed it (drift, see [`routing::assess`]), keeping their edit.
//!
//! ## Routing
//! The first routing change saves the object's spec, labels and annotations
//! in annotation `rollouts.ramp.dev/original-spec-configuration`; each step's
//! object is computed from that saved original (so step 2's weights replace
//! step 1's header route); restoring puts it back exactly and removes the
//! annotation. A step with neither traffic, matches nor mirror keeps the
//! previous step's routing. Providers: [`routing::IstioVirtualService`],
//! [`routing::IstioDestinationRule`] (subset routing: the VirtualServices
//! route to a canary subset, the DestinationRule's stable subsets are
//! narrowed instead of the stable Service, no canary Service) and
//! [`routing::GatewayHttpRoute`]. Before routing changes,
//! [`routing::virtual_service_conflicts`] checks that no other VirtualService
//! of the namespace claims the same hosts (Istio IST0109).
//!
//! ## Finishing (`canaryStatus.finalisingStep`)
//! Each finishing step acts only if its result is not yet visible, so the
//! sequence survives crashes and changes of mind:
//! - after the last step or on `PromoteFull`: `RestoreRouting` (then the
//!   grace period) → `RestoreStableService` (grace) → `DeleteCanaryService` →
//!   `ResumeWorkload` (unpause, wait until the Deployment has rolled out) →
//!   `DeleteCanaryWorkload` → `Done`: phase `Healthy`, `stableRevision` = the
//!   new revision, condition `Succeeded=True`.
//! - rollback (template back to the stable revision): `RestoreRouting` →
//!   `DeleteCanaryWorkload` → `RestoreStableService` → `DeleteCanaryService`
//!   → `ResumeWorkload` → `Done` (`Succeeded=False`, reason `RolledBack`).
//!   The canary goes first so that it never gets stable traffic.
//! - new revision mid-rollout (v1→v2→v3): `RestoreRouting`, then step 1 with
//!   the new revision.
//! - `spec.disabled: true` (phase `Disabling` → `Disabled`) and deletion
//!   (`Terminating`, then [`Plan::cleanup_complete`]): as for rollback, and
//!   the Deployment is unpaused (if ramp paused it or a revision was pending)
//!   and released (label removed).
//!
//! ## User actions (`canaryStatus.requestedAction`, consumed and cleared)
//! - `Abort` while steps run: routing restored (grace), phase `Aborted`,
//!   canary scaled to 0, Deployment stays paused. Honoured even when paused.
//! - `Retry` from `Aborted`: step 1 again with the same revision.
//! - `PromoteFull` while steps run or from `Aborted`: skip to finishing.
//! - From `Aborted`, changing the template back rolls back; a newer template
//!   restarts at step 1.
//!
//! ## Holding
//! `spec.strategy.paused: true` holds everything except deletion, disabling
//! and abort: no step advances and no timer fires (the Deployment is still
//! kept paused).
//!
//! ## Problems
//! Missing objects, an invalid spec, routing objects without a route to the
//! Service and the like stop progress: no actions (except keeping the
//! Deployment paused), the status is unchanged except `message` and the
//! `Progressing` condition's reason, a Warning event when the message is
//! new, and [`Plan::error`] with a [`PlanError::kind`] for metrics.

pub mod analysis;
pub mod conditions;
mod error;
mod hash;
mod machine;
mod objects;
mod observed;
mod plan;
pub mod routing;
pub mod time;

pub use error::{PlanError, RoutingError};
pub use hash::{HASH_LEN, pod_template_hash, template_revision};
pub use machine::{CONDITION_PROGRESSING, CONDITION_SUCCEEDED, plan};
pub use observed::Observed;
pub use plan::{Action, EventType, Plan, PlannedEvent};

/// Annotation on a [`compact_replica_set`]: the revision of the template it
/// no longer carries. Never written to the cluster.
pub const COMPACT_REVISION_ANNOTATION: &str = "rollouts.ramp.dev/cached-template-revision";

/// A ReplicaSet reduced to what the planner reads, for a watch cache of
/// every ReplicaSet: name, uid, labels, owners, the revision annotations,
/// `spec.replicas`, the template's labels and `status.replicas`. The pod
/// template itself (most of the object) is replaced by its revision in
/// [`COMPACT_REVISION_ANNOTATION`]; the planner reads the same answers from
/// either form.
pub fn compact_replica_set(rs: &mut k8s_openapi::api::apps::v1::ReplicaSet) {
    use k8s_openapi::api::core::v1::PodTemplateSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    let revision = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .map(template_revision);
    let meta = &mut rs.metadata;
    meta.managed_fields = None;
    let mut annotations: std::collections::BTreeMap<String, String> = meta
        .annotations
        .take()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k == "deployment.kubernetes.io/revision")
        .collect();
    if let Some(r) = revision {
        annotations.insert(COMPACT_REVISION_ANNOTATION.to_string(), r);
    }
    meta.annotations = (!annotations.is_empty()).then_some(annotations);
    if let Some(spec) = rs.spec.as_mut()
        && let Some(t) = spec.template.as_mut()
    {
        let labels = t.metadata.as_ref().and_then(|m| m.labels.clone());
        *t = PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels,
                ..ObjectMeta::default()
            }),
            spec: None,
        };
    }
    if let Some(st) = rs.status.as_mut() {
        st.conditions = None;
    }
}

/// A pod reduced to what the planner reads of a canary pod, for a watch
/// cache: name, namespace, labels, owners, resourceVersion, and of its
/// status the container states that are waiting or failed and the
/// `PodScheduled` condition (see the reasons in a waiting step's message).
/// The spec, most of the object, is dropped; the planner gives the same
/// answers from either form.
pub fn compact_pod(pod: &mut k8s_openapi::api::core::v1::Pod) {
    use k8s_openapi::api::core::v1::{ContainerStatus, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    let m = std::mem::take(&mut pod.metadata);
    pod.metadata = ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        labels: m.labels,
        owner_references: m.owner_references,
        resource_version: m.resource_version,
        uid: m.uid,
        deletion_timestamp: m.deletion_timestamp,
        ..ObjectMeta::default()
    };
    pod.spec = None;
    let Some(st) = pod.status.take() else {
        return;
    };
    let keep = |list: Option<Vec<ContainerStatus>>| {
        list.map(|l| {
            l.into_iter()
                .map(|c| ContainerStatus {
                    name: c.name,
                    ready: c.ready,
                    state: c.state,
                    ..ContainerStatus::default()
                })
                .collect::<Vec<_>>()
        })
    };
    pod.status = Some(PodStatus {
        conditions: st.conditions.map(|cs| {
            cs.into_iter()
                .filter(|c| c.type_ == "PodScheduled" || c.type_ == "Ready")
                .collect()
        }),
        container_statuses: keep(st.container_statuses),
        init_container_statuses: keep(st.init_container_statuses),
        phase: st.phase,
        ..PodStatus::default()
    });
}
