//! The embedded Kubernetes-compatible cluster.

pub mod admission;
pub mod patch;
pub mod proto;
pub mod schema;
pub mod selector;
