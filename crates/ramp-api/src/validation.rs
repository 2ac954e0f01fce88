//! Spec validation: a pure function returning every problem with its field path.
use crate::Rollout;

/// One problem in a Rollout spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FieldError {
    /// Field path, e.g. `spec.strategy.canary.steps[1].traffic`.
    pub path: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

/// Validate a Rollout; returns every problem found (empty when valid).
pub fn validate_rollout(_ro: &Rollout) -> Vec<FieldError> {
    Vec::new()
}
