//! The Rollout's conditions: their types, statuses and reasons, as the
//! planner writes them (the reasons of errors are [`crate::PlanError::reason`]).

/// Condition type: a rollout is (or is not) under way.
pub const PROGRESSING: &str = "Progressing";
/// Condition type: how the last rollout ended.
pub const SUCCEEDED: &str = "Succeeded";

/// A condition's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// `True`.
    True,
    /// `False`.
    False,
    /// `Unknown`.
    Unknown,
}

impl Status {
    /// As written in `status.conditions[].status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::True => "True",
            Status::False => "False",
            Status::Unknown => "Unknown",
        }
    }

    /// Read back; anything else is `Unknown`.
    pub fn parse(s: &str) -> Status {
        match s {
            "True" => Status::True,
            "False" => Status::False,
            _ => Status::Unknown,
        }
    }
}

/// Condition reasons the planner writes besides error reasons.
pub mod reason {
    /// A rollout is under way.
    pub const IN_ROLLING: &str = "InRolling";
    /// The Rollout is paused (`spec.strategy.paused`).
    pub const PAUSED: &str = "Paused";
    /// No rollout under way; the workload is rolled out.
    pub const HEALTHY: &str = "Healthy";
    /// The last rollout finished.
    pub const COMPLETED: &str = "Completed";
    /// The last rollout was rolled back (the template went back to stable).
    pub const ROLLED_BACK: &str = "RolledBack";
    /// The Rollout is disabled.
    pub const DISABLED: &str = "Disabled";
}
