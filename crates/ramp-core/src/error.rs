//! Errors of the planner. Each has a `kind()`: a short, fixed label for
//! metrics (never the object name or the message), and a CamelCase `reason()`
//! for the Rollout's `Progressing` condition and Events.

/// A routing object ramp cannot work with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RoutingError {
    /// The object has no route that sends traffic to the stable Service.
    #[error(
        "{object} has no http route to Service {service} ({expected}); add one or remove the object from spec.strategy.canary.trafficRoutings[0]"
    )]
    NoRouteToService {
        /// `Kind name` of the object.
        object: String,
        /// The stable Service.
        service: String,
        /// What counts as a route to the Service in this kind of object.
        expected: String,
    },
    /// With subset routing: the VirtualService has no route to a subset
    /// that selects the stable pods.
    #[error(
        "{object} has no http route to a stable subset ({subsets}) of Service {service} from {destination_rule}; route to one of them (destination host {service} with that subset), or remove the object from spec.strategy.canary.trafficRoutings[0].customNetworkRefs"
    )]
    NoRouteToStableSubset {
        /// `Kind name` of the VirtualService.
        object: String,
        /// The stable Service.
        service: String,
        /// The stable subsets, comma-separated.
        subsets: String,
        /// `DestinationRule name`.
        destination_rule: String,
    },
    /// A VirtualService route names a subset its DestinationRule does not define.
    #[error(
        "{object}: {field}: subset {subset:?} is not defined in {defined_in}; add the subset there or fix the route"
    )]
    UndefinedSubset {
        /// `Kind name` of the VirtualService.
        object: String,
        /// Field path of the destination's subset.
        field: String,
        /// The subset named.
        subset: String,
        /// `DestinationRule name (it defines …)`.
        defined_in: String,
    },
    /// The DestinationRule cannot carry subset routing for the Service.
    #[error("{object}: {field}: {message}")]
    InvalidSubsets {
        /// `DestinationRule name`.
        object: String,
        /// Field path.
        field: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// Another VirtualService claims the same host on the same gateway
    /// (Istio's IST0109): which one Istio uses is undefined.
    #[error(
        "{object} and {other} both define host {host} for {gateway} (Istio IST0109: which one applies is undefined, so ramp's change might not take effect); merge the http routes of {other} into {object} (or the other way round), delete the one left empty, and list the merged VirtualService in spec.strategy.canary.trafficRoutings[0].customNetworkRefs"
    )]
    ConflictingVirtualServices {
        /// `VirtualService name` ramp would change (or the first claimant).
        object: String,
        /// `VirtualService name` of the other claimant.
        other: String,
        /// The host both claim (as normalised: short names made FQDNs).
        host: String,
        /// `gateway ns/name` or `the mesh (sidecars)`.
        gateway: String,
    },
    /// A mirror step cannot be added to a route that already mirrors.
    #[error("{object}: {field}: {message}")]
    ConflictingMirror {
        /// `Kind name` of the object.
        object: String,
        /// Field path of the route's mirror.
        field: String,
        /// What conflicts and what to do.
        message: String,
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
        "{kind} {name} ({api_version}) is not a supported routing object; supported: networking.istio.io VirtualService and DestinationRule, gateway.networking.k8s.io HTTPRoute"
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
            RoutingError::NoRouteToStableSubset { .. } => "no_route_to_stable_subset",
            RoutingError::UndefinedSubset { .. } => "undefined_subset",
            RoutingError::InvalidSubsets { .. } => "invalid_subsets",
            RoutingError::ConflictingVirtualServices { .. } => "conflicting_virtual_services",
            RoutingError::ConflictingMirror { .. } => "conflicting_mirror",
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
            RoutingError::NoRouteToStableSubset { .. } => "NoRouteToStableSubset",
            RoutingError::UndefinedSubset { .. } => "UndefinedSubset",
            RoutingError::InvalidSubsets { .. } => "InvalidSubsets",
            RoutingError::ConflictingVirtualServices { .. } => "ConflictingVirtualServices",
            RoutingError::ConflictingMirror { .. } => "ConflictingMirror",
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
            PlanError::NotFound { .. } => "ObjectNotFound",
            PlanError::NotOwned { .. } => "ObjectConflict",
            PlanError::NoStableReplicaSet { .. } => "NoStableReplicaSet",
            PlanError::Routing(e) => e.reason(),
        }
    }
}
