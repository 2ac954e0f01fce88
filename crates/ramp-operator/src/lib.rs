//! The ramp operator: a kube-runtime controller over Rollouts that executes
//! the plans of `ramp-core`, plus the admission webhooks and the metrics and
//! health endpoints.

pub mod analysis;
pub mod cache;
pub mod certs;
pub mod controller;
pub mod events;
pub mod http;
pub mod index;
pub mod leader;
pub mod metrics;
pub mod registration;
pub mod requests;
pub mod webhook;
pub mod writes;
