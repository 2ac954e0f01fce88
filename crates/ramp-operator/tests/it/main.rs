//! ramp-operator's integration tests, one binary (one link) for all:
//! - `reconcile`: the controller in process against an embedded cluster;
//! - `prometheus_client`: the analysis client against a real Prometheus;
//! - `logs`: the binary's log output.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod logs;
mod prometheus_client;
mod reconcile;
