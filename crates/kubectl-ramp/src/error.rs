//! Errors: each is one line naming the object, and maps to an exit code
//! (1 for errors, 2 for usage).

/// Everything that can go wrong, by kind. The message is the full line shown
/// to the user (after `error: `).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// Bad flags or arguments (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// The action does not apply to the rollout's current state; nothing was written.
    #[error("{0}")]
    Refused(String),
    /// A guarded write failed because the object moved on; nothing was written.
    #[error("{0}")]
    Race(String),
    /// The object does not exist.
    #[error("{0}")]
    NotFound(String),
    /// RBAC denied a request.
    #[error("{0}")]
    Forbidden(String),
    /// The Rollout CRD is not installed on the cluster.
    #[error("{0}")]
    CrdMissing(String),
    /// The operator has not made progress on the rollout.
    #[error("{0}")]
    OperatorStalled(String),
    /// A manifest did not convert into a valid ramp Rollout.
    #[error("{0}")]
    Invalid(String),
    /// kubeconfig problems, unreachable API server, bad credentials.
    #[error("{0}")]
    Connection(String),
    /// Any other API error.
    #[error("{0}")]
    Api(String),
    /// Reading files or writing to the terminal.
    #[error("{0}")]
    Io(String),
    /// `status --watch` ended with the rollout not Healthy (aborted, disabled,
    /// deleted, timed out).
    #[error("{0}")]
    WatchFailed(String),
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => 2,
            _ => 1,
        }
    }

    /// A short, fixed name for the kind of error.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Usage(_) => "usage",
            Error::Refused(_) => "refused",
            Error::Race(_) => "race",
            Error::NotFound(_) => "not_found",
            Error::Forbidden(_) => "forbidden",
            Error::CrdMissing(_) => "crd_missing",
            Error::OperatorStalled(_) => "operator_stalled",
            Error::Invalid(_) => "invalid",
            Error::Connection(_) => "connection",
            Error::Api(_) => "api",
            Error::Io(_) => "io",
            Error::WatchFailed(_) => "watch_failed",
        }
    }
}

/// Result with this crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
