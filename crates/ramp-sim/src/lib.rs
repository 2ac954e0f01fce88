//! The embedded cluster: a Kubernetes-compatible API server that keeps everything in memory.
//!
//! - [`store`]: the object store (resource versions, watch history, finalizers, garbage
//!   collection, CRD registration). In-process controllers use it directly.
//! - [`server`]: the HTTP API on top of it (discovery, OpenAPI, all verbs, watch, tables).
//! - [`controllers`]: Deployments, ReplicaSets, a kubelet and Endpoints, running in-process.
//! - [`mesh`]: where a service mesh would send requests (Istio, Gateway API).
//! - [`TestCluster`]: start one on a random port from a test and get a `kube::Client`.
//! - [`schema`], [`patch`], [`selector`], [`proto`]: pure building blocks (CRD structural
//!   schemas, the four patch types, label/field selectors, protobuf request bodies).
//! - [`auth`]: authentication (the admin token, ServiceAccount tokens) and RBAC.
//! - [`admission`]: admission webhooks, called as kube-apiserver calls them.
//! - [`telemetry`]: background load through the mesh ([`load`]), pod behaviour from
//!   annotations, and Istio's request metrics on `/metrics`.

pub mod admission;
pub mod auth;
pub mod client;
pub mod controllers;
pub mod discovery;
pub mod errors;
pub mod faults;
pub mod list_body;
pub mod mesh;
pub mod object;
pub mod openapi;
pub mod patch;
pub mod proto;
pub mod resources;
pub mod schema;
pub mod selector;
pub mod server;
pub mod store;
pub mod table;
pub mod telemetry;
pub mod watch;

pub use client::{ClusterError, TestCluster, load_manifests, shared_crds_dir, shared_peer_dir};
pub use server::{Server, ServerConfig};
pub use store::Store;
pub use telemetry::load;
