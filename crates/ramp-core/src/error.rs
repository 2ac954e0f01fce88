//! Errors of the planner. Each has a `kind()`: a short, fixed label for
//! metrics (never the object name or the message), and a CamelCase `reason()`
//! for the Rollout's `Progressing` condition and Events.

/// A routing object ramp cannot work with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RoutingError {
    /// The object has no route that sends traffic to the stable Service.
    #[error(
        "{object} has no http route to Service {service} (hosts {service}, {service}.<namespace>, {service}.<namespace>.svc or {service}.<namespace>.svc.cluster.local); add one or remove the object from spec.strategy.canary.trafficRoutings[0].customNetworkRefs"
    )]
    NoRouteToService {
        /// `Kind name` of the object.
        object: String,
        /// The stable Service.
        service: String,
    },
    /// A field of the object does not have the shape the API defines.
    #[error("{object}: {field}: {message}")]
    InvalidObject {
        /// `Kind name` of the object.
        object: String,
        /// Field path, e.g. `spec.http[0].route`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A step's match cannot be combined with a route's own match.
    #[error("{object}: {field}: {message}")]
    ConflictingMatch {
        /// `Kind name` of the object.
        object: String,
        /// Field path of the route's match.
        field: String,
        /// What conflicts.
        message: String,
    },
    /// No traffic provider handles this kind of object.
    #[error(
        "{kind} {name} ({api_version}) is not a supported routing object; supported: networking.istio.io VirtualService"
    )]
    UnsupportedKind {
        /// The reference's apiVersion.
        api_version: String,
        /// The reference's kind.
        kind: String,
        /// The object name.
        name: String,
    },
    /// The saved original in the annotation cannot be read.
    #[error("{object}: annotation {annotation} does not hold a saved original: {message}")]
    InvalidOriginal {
        /// `Kind name` of the object.
        object: String,
        /// The annotation key.
        annotation: &'static str,
        /// The parse error.
        message: String,
    },
}

impl RoutingError {
    /// Metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            RoutingError::NoRouteToService { .. } => "no_route_to_service",
            RoutingError::InvalidObject { .. } => "invalid_routing_object",
            RoutingError::ConflictingMatch { .. } => "conflicting_match",
            RoutingError::UnsupportedKind { .. } => "unsupported_routing_kind",
            RoutingError::InvalidOriginal { .. } => "invalid_original_annotation",
        }
    }

    /// Condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            RoutingError::NoRouteToService { .. } => "NoRouteToService",
            RoutingError::InvalidObject { .. } => "InvalidRoutingObject",
            RoutingError::ConflictingMatch { .. } => "ConflictingMatch",
            RoutingError::UnsupportedKind { .. } => "UnsupportedRoutingKind",
            RoutingError::InvalidOriginal { .. } => "InvalidOriginalAnnotation",
        }
    }
}

/// Why the planner cannot make progress.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The Rollout's spec is invalid; it waits for a change.
    #[error("invalid Rollout spec: {}", problems.join("; "))]
    InvalidSpec {
        /// Every problem, each naming its field path.
        problems: Vec<String>,
    },
    /// The spec asks for something ramp does not do.
    #[error("{field}: {message}")]
    Unsupported {
        /// Field path.
        field: String,
        /// What is not supported and what to use instead.
        message: String,
    },
    /// An object the Rollout refers to does not exist.
    #[error("{kind} {name} not found in namespace {namespace}")]
    NotFound {
        /// Kind of the missing object.
        kind: String,
        /// Its name.
        name: String,
        /// The Rollout's namespace.
        namespace: String,
    },
    /// An object with the name ramp uses for its own objects belongs to someone else.
    #[error(
        "{kind} {name} already exists and is not managed by Rollout {rollout}; rename or delete it"
    )]
    NotOwned {
        /// Kind of the object.
        kind: String,
        /// Its name.
        name: String,
        /// The Rollout.
        rollout: String,
    },
    /// No ReplicaSet of the workload runs the stable revision, so the stable
    /// Service cannot be narrowed to the stable pods.
    #[error(
        "no ReplicaSet of Deployment {workload} runs the stable revision {revision}; ramp cannot tell stable pods from canary pods"
    )]
    NoStableReplicaSet {
        /// The workload.
        workload: String,
        /// The stable revision.
        revision: String,
    },
    /// A routing object cannot be changed.
    #[error(transparent)]
    Routing(#[from] RoutingError),
}

impl PlanError {
    /// Metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            PlanError::InvalidSpec { .. } => "invalid_spec",
            PlanError::Unsupported { .. } => "unsupported",
            PlanError::NotFound { .. } => "object_not_found",
            PlanError::NotOwned { .. } => "object_conflict",
            PlanError::NoStableReplicaSet { .. } => "no_stable_replicaset",
            PlanError::Routing(e) => e.kind(),
        }
    }

    /// Condition reason and Event reason.
    pub fn reason(&self) -> &'static str {
        match self {
            PlanError::InvalidSpec { .. } => "InvalidSpec",
            PlanError::Unsupported { .. } => "Unsupported",
            PlanError::NotFound { .. } => "ObjectNotFound",
            PlanError::NotOwned { .. } => "ObjectConflict",
            PlanError::NoStableReplicaSet { .. } => "NoStableReplicaSet",
            PlanError::Routing(e) => e.reason(),
        }
    }

    /// Whether retrying without any change can help. None of the planner's
    /// errors can: they all wait for an object to change (the operator's
    /// watches wake it), so the operator should not retry them on a timer.
    pub fn is_permanent(&self) -> bool {
        true
    }
}
