//! What the planner returns: actions for the operator to carry out, in order,
//! and the status to write afterwards.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use ramp_api::RolloutStatus;
use serde_json::Value;
use std::time::Duration;

use crate::error::PlanError;

/// The result of one planning call.
///
/// The operator carries out `actions` in order, stopping at the first failure
/// (then it plans again from fresh observations: every action is safe to
/// repeat); when all succeeded it writes `status` (with a precondition on the
/// Rollout's resourceVersion), records `events`, and plans again after
/// `requeue_after` if set, or when a watched object changes.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Changes to make, in order.
    pub actions: Vec<Action>,
    /// The Rollout's new status (may equal the old one).
    pub status: RolloutStatus,
    /// Look again after this long even if nothing changes (timers: grace
    /// periods and pause durations). `None`: wait for a watch event.
    pub requeue_after: Option<Duration>,
    /// Events to record on the Rollout.
    pub events: Vec<PlannedEvent>,
    /// The problem that stopped progress, if any (for logs and error metrics;
    /// it is also in `status.message` and the `Progressing` condition).
    pub error: Option<PlanError>,
    /// The Rollout is being deleted and everything ramp changed is restored:
    /// the operator may remove its finalizer.
    pub cleanup_complete: bool,
}

/// One idempotent change. Each carries the desired state (not a delta), so
/// repeating it after a crash is harmless.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Make the Deployment exist with this content: create it, or bring the
    /// fields ramp sets to these values (server-side apply by field manager
    /// `ramp`, forced).
    ApplyDeployment(Box<Deployment>),
    /// JSON merge patch (RFC 7386) on a Deployment.
    PatchDeployment {
        /// Deployment name (in the Rollout's namespace).
        name: String,
        /// The merge patch.
        patch: Value,
    },
    /// Delete a Deployment (absent is success).
    DeleteDeployment {
        /// Deployment name.
        name: String,
    },
    /// Make the Service exist with this content (server-side apply, forced;
    /// allocated cluster IPs are kept).
    ApplyService(Box<Service>),
    /// JSON merge patch on a Service.
    PatchService {
        /// Service name.
        name: String,
        /// The merge patch.
        patch: Value,
    },
    /// Delete a Service (absent is success).
    DeleteService {
        /// Service name.
        name: String,
    },
    /// JSON patch (RFC 6902) on a routing object. It starts with a `test` of
    /// `/metadata/resourceVersion`, so it fails rather than overwrite a
    /// concurrent edit; the operator then plans again from the new object.
    PatchRouting {
        /// e.g. `networking.istio.io/v1beta1`.
        api_version: String,
        /// e.g. `VirtualService`.
        kind: String,
        /// Object name.
        name: String,
        /// The JSON patch.
        patch: json_patch::Patch,
    },
}

impl Action {
    /// Short label for logs and metrics: `apply`, `patch` or `delete`.
    pub fn verb(&self) -> &'static str {
        match self {
            Action::ApplyDeployment(_) | Action::ApplyService(_) => "apply",
            Action::PatchDeployment { .. }
            | Action::PatchService { .. }
            | Action::PatchRouting { .. } => "patch",
            Action::DeleteDeployment { .. } | Action::DeleteService { .. } => "delete",
        }
    }

    /// `(kind, name)` of the object the action changes.
    pub fn target(&self) -> (&str, &str) {
        match self {
            Action::ApplyDeployment(d) => ("Deployment", d.metadata.name.as_deref().unwrap_or("")),
            Action::ApplyService(s) => ("Service", s.metadata.name.as_deref().unwrap_or("")),
            Action::PatchDeployment { name, .. } | Action::DeleteDeployment { name } => {
                ("Deployment", name)
            }
            Action::PatchService { name, .. } | Action::DeleteService { name } => ("Service", name),
            Action::PatchRouting { kind, name, .. } => (kind, name),
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, name) = self.target();
        write!(f, "{} {kind} {name}", self.verb())
    }
}

/// Kubernetes event type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    /// Normal progress.
    Normal,
    /// Something needs attention.
    Warning,
}

/// An event to record on the Rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedEvent {
    /// Normal or Warning.
    pub type_: EventType,
    /// CamelCase reason, from a small fixed set.
    pub reason: String,
    /// Human-readable message naming the objects involved.
    pub message: String,
}
