//! The embedded Kubernetes-compatible cluster.
