//! The embedded Kubernetes-compatible cluster.
pub mod admission;
